------------------------------------------------------------------------------
-- Store-scoped administration (issue #7.3).  PLACEHOLDERS: the security work
-- replaces these two with the real checks; other fragments call them.
------------------------------------------------------------------------------

-- Raises (own SQLSTATE, same message whether or not the store exists) unless
-- the calling role administers store_id.
CREATE FUNCTION pixl_assert_store_admin(store_id text) RETURNS void
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$ SELECT $$;

-- True when the calling role may see store_id's tokens, usage and audit.
CREATE FUNCTION pixl_store_visible(store_id text) RETURNS boolean
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$ SELECT true $$;
