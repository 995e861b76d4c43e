------------------------------------------------------------------------------
-- Store-scoped administration (issue #7.3)
--
-- Who is asking: pixl_calling_role(), the role in effect at the top level of
-- the session (the login role, or the one chosen with SET ROLE); SECURITY
-- DEFINER functions and views do not change it (src/store_access.c).
--
-- Platform admins: superusers and every role with the privileges of the
-- NOLOGIN role pixl_platform_admin (membership with INHERIT).  They see and
-- manage every store and grant stores to store admins.  The role is
-- cluster-wide: the first CREATE EXTENSION (or upgrade) in any database
-- creates it, later ones find it, DROP EXTENSION leaves it, and its members
-- are platform admins in every database of the cluster that has pixltoken.
--
-- Store admins: roles listed in pixl_store_admins (by name, so that a dump
-- restored into another cluster with the same roles keeps them), and every
-- role with the privileges of one of them.  Nothing else sees a store: a
-- role that is neither gets "not your store" (PX040) for every store, the
-- same answer whether or not the store or token exists.
------------------------------------------------------------------------------

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
					WHERE r.rolname OPERATOR(pg_catalog.=) 'pixl_platform_admin') THEN
		CREATE ROLE pixl_platform_admin NOLOGIN;
	END IF;
END
$$;

CREATE FUNCTION pixl_calling_role() RETURNS oid
	AS 'MODULE_PATHNAME', 'pixl_calling_role'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pixl_calling_role() IS
	'The role whose stores the session manages: the login role or the one chosen with SET ROLE, never a SECURITY DEFINER owner';

-- RAISE for SQL code whose statement may hold a secret: the statement is
-- not logged with the error, and secret shapes in the texts are masked.
CREATE FUNCTION pixl_raise_hidden(sqlstate text, message text,
								  detail text DEFAULT NULL, hint text DEFAULT NULL)
	RETURNS void
	AS 'MODULE_PATHNAME', 'pixl_raise_hidden'
	LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE FUNCTION pixl_looks_like_secret(value text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'pixl_looks_like_secret'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION pixl_looks_like_secret(text) IS
	'True when the text holds something shaped like a token secret (sk_live_/sk_test_ and base62)';

-- Values quoted into messages never show a secret (whatever argument it
-- arrived in): its characters after the prefix are masked.
CREATE OR REPLACE FUNCTION pixl_quote(value text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce('"' || regexp_replace(regexp_replace(value, '[[:cntrl:]]', '?', 'g'),
										  '(sk_(live|test)_)[0-9A-Za-z]+', '\1***', 'g')
					|| '"', 'NULL');
$$;

CREATE TABLE pixl_store_admins (
	role_name	text NOT NULL CHECK (length(role_name) BETWEEN 1 AND 63),
	store_id	text NOT NULL CHECK (length(store_id) BETWEEN 1 AND 128),
	granted_at	timestamptz NOT NULL DEFAULT now(),
	granted_by	text NOT NULL DEFAULT session_user,
	PRIMARY KEY (role_name, store_id)
);
CREATE INDEX pixl_store_admins_store ON pixl_store_admins (store_id);
COMMENT ON TABLE pixl_store_admins IS
	'Which roles (by name) administer which stores; changed with pixl_grant_store / pixl_revoke_store';
SELECT pg_catalog.pg_extension_config_dump('pixl_store_admins', '');

CREATE FUNCTION pixl_is_platform_admin() RETURNS boolean
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r
					  WHERE r.oid OPERATOR(pg_catalog.=) @extschema@.pixl_calling_role()), false)
		OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
					WHERE r.rolname OPERATOR(pg_catalog.=) 'pixl_platform_admin'
					  AND pg_catalog.pg_has_role(@extschema@.pixl_calling_role(), r.oid, 'USAGE'));
$$;
COMMENT ON FUNCTION pixl_is_platform_admin() IS
	'True for superusers and roles with the privileges of pixl_platform_admin';

-- SECURITY DEFINER: views and policies call it as their reader, who needs
-- no privilege on pixl_store_admins.
CREATE OR REPLACE FUNCTION pixl_store_visible(store_id text) RETURNS boolean
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT @extschema@.pixl_is_platform_admin()
		OR ($1 IS NOT NULL
			AND EXISTS (SELECT 1
						 FROM @extschema@.pixl_store_admins a
						 JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) a.role_name
						WHERE a.store_id OPERATOR(pg_catalog.=) $1
						  AND pg_catalog.pg_has_role(@extschema@.pixl_calling_role(), r.oid, 'USAGE')));
$$;
COMMENT ON FUNCTION pixl_store_visible(text) IS
	'True when the calling role (pixl_calling_role) is a platform admin or administers the store';

-- The "not your store" error, PX040.  Its message names the value the
-- caller passed and the calling role, never whether the store or token
-- exists.
CREATE FUNCTION pixl_raise_not_your_store(what text, value text) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_role	text := coalesce((SELECT r.rolname::text FROM pg_catalog.pg_roles r
							   WHERE r.oid OPERATOR(pg_catalog.=) @extschema@.pixl_calling_role()), '?');
BEGIN
	PERFORM @extschema@.pixl_raise_hidden('PX040',
		CASE what
			WHEN 'store' THEN format('store %s is not administered by role "%s"',
									 @extschema@.pixl_quote(left(value, 200)), v_role)
			ELSE format('%s %s is not in a store administered by role "%s"',
						what, @extschema@.pixl_quote(left(value, 200)), v_role) END,
		NULL,
		'A platform admin grants a store with pixl_grant_store(role, store_id); SET ROLE to a role that has it.');
END
$$;

CREATE OR REPLACE FUNCTION pixl_assert_store_admin(store_id text) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT @extschema@.pixl_store_visible(store_id) THEN
		PERFORM @extschema@.pixl_raise_not_your_store('store', store_id);
	END IF;
END
$$;
COMMENT ON FUNCTION pixl_assert_store_admin(text) IS
	'Raises PX040 unless the calling role administers the store (or is a platform admin)';

CREATE FUNCTION pixl_assert_platform_admin(action text) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT @extschema@.pixl_is_platform_admin() THEN
		PERFORM @extschema@.pixl_raise_hidden('PX040',
			format('only platform admins may %s', action), NULL,
			'Platform admins are superusers and members of pixl_platform_admin.');
	END IF;
END
$$;

-- A store admin may be a role that does not log in (a group): its members
-- with INHERIT administer the store too.
CREATE FUNCTION pixl_grant_store(role_name text, store_id text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_assert_platform_admin('grant stores');
	PERFORM @extschema@.pixl_check_store_id(store_id);
	IF role_name IS NULL OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
										 WHERE r.rolname OPERATOR(pg_catalog.=) role_name) THEN
		PERFORM @extschema@.pixl_raise_hidden('PX046',
			format('role %s does not exist', @extschema@.pixl_quote(left(role_name, 63))), NULL,
			'Create the role first (CREATE ROLE), then grant it the store.');
	END IF;
	INSERT INTO @extschema@.pixl_store_admins AS a (role_name, store_id)
	VALUES (role_name, store_id)
	ON CONFLICT ON CONSTRAINT pixl_store_admins_pkey DO NOTHING;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION pixl_grant_store(text, text) IS
	'Lets a role (and the roles that have its privileges) administer a store; platform admins only; false if it already did';

CREATE FUNCTION pixl_revoke_store(role_name text, store_id text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_assert_platform_admin('revoke stores');
	DELETE FROM @extschema@.pixl_store_admins a
	 WHERE a.role_name OPERATOR(pg_catalog.=) pixl_revoke_store.role_name
	   AND a.store_id OPERATOR(pg_catalog.=) pixl_revoke_store.store_id;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION pixl_revoke_store(text, text) IS
	'Ends a role''s administration of a store; platform admins only; false if it had none';

-- Readers of the mapping and of the audit see the rows of their stores.
-- The owner (who writes through the SECURITY DEFINER functions and runs
-- pg_dump as a superuser) is not subject to them.
ALTER TABLE pixl_store_admins ENABLE ROW LEVEL SECURITY;
CREATE POLICY pixl_store_admins_visible ON pixl_store_admins
	FOR SELECT USING (@extschema@.pixl_store_visible(store_id));
ALTER TABLE pixl_audit ENABLE ROW LEVEL SECURITY;
CREATE POLICY pixl_audit_visible ON pixl_audit
	FOR SELECT USING (@extschema@.pixl_store_visible(store_id));

------------------------------------------------------------------------------
-- The checks in the 1.0 functions that find a token or a store
------------------------------------------------------------------------------

-- The store of a token id, after the checks that the management functions
-- (pixl_lock_token) and the analytics functions (pixl_check_usage_token)
-- share: no secret where the id belongs (never echoed, statement not
-- logged), the calling role administers the token's store (a store admin
-- gets PX040 for a token of another store and for a token that does not
-- exist alike), and the token exists (PX011).  hint: the PX011 hint, which
-- 1.0 worded differently for the two families.
CREATE FUNCTION pixl_token_store_checked(token_id text, hint text) RETURNS text
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_store	text;
BEGIN
	IF @extschema@.pixl_looks_like_secret(token_id) THEN
		PERFORM @extschema@.pixl_raise_hidden('PX011',
			'a token secret was passed where a token id is expected', NULL, hint);
	END IF;
	SELECT t.store_id INTO v_store FROM @extschema@.pixl_token_registry t
	 WHERE t.token_id = pixl_token_store_checked.token_id;
	IF NOT @extschema@.pixl_store_visible(v_store) THEN	-- a platform admin sees every store, NULL included
		PERFORM @extschema@.pixl_raise_not_your_store('token', token_id);
	END IF;
	IF v_store IS NULL THEN
		PERFORM @extschema@.pixl_raise_hidden('PX011',
			format('token %s does not exist', @extschema@.pixl_quote(left(token_id, 200))), NULL, hint);
	END IF;
	RETURN v_store;
END
$$;

-- The token's row, locked, after pixl_token_store_checked; and not revoked.
CREATE OR REPLACE FUNCTION pixl_lock_token(token_id text)
	RETURNS @extschema@.pixl_token_registry
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r		@extschema@.pixl_token_registry;
BEGIN
	PERFORM @extschema@.pixl_token_store_checked(token_id,
		'Pass the token id ("tok_" and 16 characters) as listed in pixl_tokens, not the secret.');
	-- tokens are never deleted: the row is there (STRICT: else an error)
	SELECT * INTO STRICT r FROM @extschema@.pixl_token_registry t
	 WHERE t.token_id = pixl_lock_token.token_id
	   FOR NO KEY UPDATE;	-- keys never change; no conflict with FK checks of usage writes
	IF r.revoked_at IS NOT NULL THEN
		RAISE EXCEPTION 'token % is revoked', @extschema@.pixl_quote(token_id)
			USING ERRCODE = 'PX012',
				  DETAIL = format('It was revoked at %s; revocation cannot be undone.', r.revoked_at),
				  HINT = 'Create a new token with pixl_create_token().';
	END IF;
	RETURN r;
END
$$;

-- Analytics are for existing tokens (revoked ones included) of the
-- caller's stores: pixl_token_store_checked.
CREATE OR REPLACE FUNCTION pixl_check_usage_token(token_id text) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.pixl_token_store_checked(token_id,
		'Pass a token id such as ''tok_…'' as listed in pixl_tokens, not the secret.');
END
$$;

-- pixl_check_recent_calls (1.0) starts with pixl_check_usage_token: the
-- store check reaches pixl_recent_calls through it; the other analytics
-- functions call pixl_check_usage_token themselves.

CREATE OR REPLACE FUNCTION pixl_set_store_plan(store_id text, plan text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_old	text;
BEGIN
	PERFORM @extschema@.pixl_check_store_id(store_id);
	PERFORM @extschema@.pixl_assert_store_admin(store_id);
	IF plan IS NULL OR NOT EXISTS (SELECT 1 FROM @extschema@.pixl_plans p WHERE p.plan = pixl_set_store_plan.plan) THEN
		RAISE EXCEPTION 'unknown plan %', @extschema@.pixl_quote(plan)
			USING ERRCODE = 'PX009',
				  HINT = 'Valid plans are ' ||
					(SELECT string_agg(p.plan, ', ' ORDER BY p.max_rate_limit, p.plan) FROM @extschema@.pixl_plans p) || '.';
	END IF;

	-- a new store; ON CONFLICT so that two sessions creating the same store
	-- at once do not fail on the primary key
	INSERT INTO @extschema@.pixl_stores (store_id, plan) VALUES (store_id, plan)
	ON CONFLICT ON CONSTRAINT pixl_stores_pkey DO NOTHING;
	IF NOT FOUND THEN
		SELECT s.plan INTO v_old FROM @extschema@.pixl_stores s
		 WHERE s.store_id = pixl_set_store_plan.store_id
		   FOR NO KEY UPDATE;	-- no conflict with token inserts of the store
		IF v_old = plan THEN
			RETURN;				-- no change, nothing to audit
		END IF;
		UPDATE @extschema@.pixl_stores s SET plan = pixl_set_store_plan.plan, updated_at = now()
		 WHERE s.store_id = pixl_set_store_plan.store_id;
	END IF;
	PERFORM @extschema@.pixl_write_audit('plan', NULL, store_id,
		jsonb_build_object('old_plan', v_old, 'new_plan', plan));
END
$$;

-- pixl_tokens shows the caller's stores only.  security_barrier: else the
-- planner may run a reader's own (leaky) function in a WHERE clause on rows
-- of other stores before the filter.  (The token fragments may redefine
-- the view with more columns: they keep both the filter and the option, which
-- CREATE OR REPLACE VIEW resets unless it is given again.)
CREATE OR REPLACE VIEW pixl_tokens WITH (security_barrier = true) AS
SELECT t.token_id,
	   t.store_id,
	   t.name,
	   t.mode,
	   t.hint,
	   @extschema@.pixl_scope_names(t.scope_bits) AS scopes,
	   t.rate_limit,
	   least(t.rate_limit, p.max_rate_limit) AS effective_rate_limit,
	   t.expires_at,
	   CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'
			WHEN t.expires_at <= clock_timestamp() THEN 'expired'
			ELSE 'active' END AS status,
	   t.created_at,
	   a.last_used_at,
	   t.rotated_at,
	   t.revoked_at
  FROM @extschema@.pixl_token_registry t
  JOIN @extschema@.pixl_stores s ON s.store_id = t.store_id
  JOIN @extschema@.pixl_plans p ON p.plan = s.plan
  LEFT JOIN @extschema@.pixl_token_activity a ON a.token_id = t.token_id
 WHERE @extschema@.pixl_store_visible(t.store_id);

REVOKE ALL ON pixl_store_admins FROM PUBLIC;
REVOKE ALL ON FUNCTION
	pixl_raise_hidden(text, text, text, text),
	pixl_is_platform_admin(), pixl_raise_not_your_store(text, text),
	pixl_token_store_checked(text, text),
	pixl_assert_store_admin(text), pixl_assert_platform_admin(text),
	pixl_grant_store(text, text), pixl_revoke_store(text, text)
	FROM PUBLIC;
-- Readers of pixl_tokens, pixl_audit and the usage views call these as
-- themselves; they say nothing about other stores.
GRANT EXECUTE ON FUNCTION pixl_store_visible(text), pixl_looks_like_secret(text),
	pixl_calling_role() TO PUBLIC;
GRANT EXECUTE ON FUNCTION pixl_grant_store(text, text), pixl_revoke_store(text, text)
	TO pixl_platform_admin;
GRANT SELECT ON pixl_store_admins TO pixl_platform_admin;
