-- Store-scoped administration: the platform-admin role and who administers
-- which store (the access model is described in code/20_store_admins.sql).
-- The role is cluster-wide: the first CREATE EXTENSION (or upgrade) in any
-- database creates it, later ones find it, DROP EXTENSION leaves it.
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
					WHERE r.rolname OPERATOR(pg_catalog.=) 'pixl_platform_admin') THEN
		CREATE ROLE pixl_platform_admin NOLOGIN;
	END IF;
END
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


-- Readers of the mapping and of the audit see the rows of their stores.
-- The owner (who writes through the SECURITY DEFINER functions and runs
-- pg_dump as a superuser) is not subject to them.
ALTER TABLE pixl_store_admins ENABLE ROW LEVEL SECURITY;

ALTER TABLE pixl_audit ENABLE ROW LEVEL SECURITY;
