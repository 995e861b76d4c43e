-- Privileges: nothing for PUBLIC beyond the pure format and scope helpers;
-- the admin grants of README.md are enough to manage tokens.
\i test/helpers/setup.sql

-- Roles are cluster-wide: regress_ names, dropped at the end.
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_pixl_nobody;
DROP ROLE IF EXISTS regress_pixl_admin;
RESET client_min_messages;
CREATE ROLE regress_pixl_nobody;
CREATE ROLE regress_pixl_admin;

-- Which of the management objects a role without grants may use: only the
-- pure helpers (they see no table).
SELECT p.oid::regprocedure AS function, p.prosecdef AS security_definer,
	   has_function_privilege('regress_pixl_nobody', p.oid, 'EXECUTE') AS public_execute
  FROM pg_proc p
 WHERE p.proname IN ('pixl_assert_preloaded', 'pixl_new_token_id', 'pixl_new_secret',
					 'pixl_secret_hash', 'pixl_token_checksum', 'pixl_token_format',
					 'pixl_scope_bits', 'pixl_scope_names', 'pixl_invalidate_token_cache',
					 'pixl_check_store_id', 'pixl_check_name', 'pixl_check_expiry',
					 'pixl_resolve_rate_limit', 'pixl_lock_token', 'pixl_write_audit',
					 'pixl_set_store_plan', 'pixl_create_token', 'pixl_rotate_token',
					 'pixl_revoke_token', 'pixl_update_token',
					 -- 1.1: the public management functions are SECURITY
					 -- INVOKER wrappers of SECURITY DEFINER implementations
					 -- that check their caller (security_definer_borrow.sql)
					 'pixl_create_token_impl', 'pixl_rotate_token_impl',
					 'pixl_revoke_token_impl', 'pixl_update_token_impl',
					 'pixl_set_store_plan_impl')
 ORDER BY p.proname;
-- security definer functions all pin their search_path
SELECT count(*) AS definer_without_search_path
  FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
	   AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pixltoken')
   AND p.prosecdef
   AND NOT coalesce(p.proconfig::text[] @> ARRAY['search_path=pg_catalog, pg_temp'], false);
-- no table, view or sequence of the extension grants anything to PUBLIC
SELECT count(*) AS relations_open_to_public
  FROM pg_class c JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
	   AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pixltoken')
   AND EXISTS (SELECT 1 FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
			   WHERE a.grantee = 0);
-- every function of the extension that a role without grants may run
-- (that is, PUBLIC): the pure helpers and the three store-scoping helpers
-- README "Privileges" names, the caller ticket and the implementations
-- behind the public management and analytics functions (each admits only
-- a ticket whose role may EXECUTE its public function:
-- security_definer_borrow.sql), nothing else; a new function that misses
-- its REVOKE ... FROM PUBLIC shows up here
SELECT p.oid::regprocedure::text AS open_to_public
  FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
	   AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pixltoken')
   AND has_function_privilege('regress_pixl_nobody', p.oid, 'EXECUTE')
 ORDER BY p.oid::regprocedure::text COLLATE "C";

SELECT pixl_set_store_plan('priv-a', 'pro');
SELECT token_id AS id FROM pixl_create_token('priv-a', 'Owned by the superuser', ARRAY['orders:read']) \gset

-- A role without grants: every call and every read is denied (42501).
SET ROLE regress_pixl_nobody;
\x on
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_plan('priv-b', 'pro')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('priv-b', 'n', ARRAY['orders:read'])$$);
SELECT * FROM pg_temp.err(format('SELECT pixl_rotate_token(%L)', :'id'));
SELECT * FROM pg_temp.err(format('SELECT pixl_revoke_token(%L)', :'id'));
SELECT * FROM pg_temp.err(format('SELECT pixl_update_token(%L, name => %L)', :'id', 'x'));
SELECT * FROM pg_temp.err($$SELECT pixl_new_secret('live')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_new_token_id()$$);
SELECT * FROM pg_temp.err($$SELECT pixl_secret_hash('x')$$);
SELECT * FROM pg_temp.err(format('SELECT pixl_lock_token(%L, 0)', :'id'));
SELECT * FROM pg_temp.err($$SELECT pixl_write_audit('plan', NULL, 'priv-b', '{}')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_resolve_rate_limit('priv-a', 10)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_check_store_id('priv-a', 0)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_assert_preloaded()$$);
\x off
SELECT rel, (pg_temp.err('SELECT 1 FROM ' || rel || ' LIMIT 0')).*
  FROM unnest(ARRAY['pixl_tokens', 'pixl_audit', 'pixl_plans', 'pixl_stores',
					'pixl_token_registry', 'pixl_token_activity']) rel;
SELECT * FROM pg_temp.err($$SELECT nextval('pixl_audit_audit_id_seq')$$);
-- the pure helpers work for anyone
SELECT pixl_token_format('tok_0000000000000000') AS format, pixl_token_checksum('123456789') AS checksum,
	   pixl_scope_names(pixl_scope_bits(ARRAY['orders:write'])) AS scopes;
RESET ROLE;

-- The admin grants of README.md.
GRANT EXECUTE ON FUNCTION
	pixl_create_token(text, text, text[], timestamptz, int, text, text[], jsonb),
	pixl_rotate_token(text, interval),
	pixl_revoke_token(text),
	pixl_update_token(text, text, text[], int, timestamptz, text[], jsonb),
	pixl_set_store_plan(text, text),
	pixl_usage_summary(text, text),
	pixl_usage_timeline(text, text),
	pixl_usage_endpoints(text, text),
	pixl_recent_calls(text, int, int),
	pixl_stats()
	TO regress_pixl_admin;
GRANT SELECT ON pixl_tokens, pixl_audit, pixl_plans TO regress_pixl_admin;
-- 1.1: an admin of every store is a platform admin (store admins:
-- security_store_admins.sql)
GRANT pixl_platform_admin TO regress_pixl_admin;

SET ROLE regress_pixl_admin;
SELECT pixl_set_store_plan('priv-b', 'starter');
SELECT token_id AS aid, token AS asecret
  FROM pixl_create_token('priv-b', 'Admin made', ARRAY['orders:read'], rate_limit => 100) \gset
SELECT pixl_token_format(:'asecret') AS format;
SELECT length(pixl_rotate_token(:'aid', '1 minute')) AS rotated;
SELECT pixl_update_token(:'aid', name => 'Admin renamed', rate_limit => 120);
SELECT store_id, name, scopes, rate_limit, effective_rate_limit, status
  FROM pixl_tokens WHERE store_id = 'priv-b';
SELECT pixl_revoke_token(:'aid');
SELECT name, status FROM pixl_tokens WHERE token_id = :'aid';
-- the admin reads the audit, which names the login role (session_user)
SELECT action, actor = session_user AS actor_is_session_user, actor <> current_user AS not_the_set_role
  FROM pixl_audit WHERE store_id = 'priv-b' ORDER BY audit_id;
SELECT plan, max_rate_limit FROM pixl_plans WHERE plan = 'starter';
-- and the usage page of a token
SELECT total_requests FROM pixl_usage_summary(:'aid');
SELECT count(*) AS buckets FROM pixl_usage_timeline(:'aid', '7d');
SELECT count(*) AS endpoints FROM pixl_usage_endpoints(:'aid');
SELECT count(*) AS calls FROM pixl_recent_calls(:'aid');
SELECT count(*) > 0 AS stats FROM pixl_stats();
-- validation errors are the same for the admin
\x on
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('priv-b', 'n', ARRAY['orders:read'], rate_limit => 121)$$);
\x off
-- but the admin sees no hash and writes no table directly
SELECT rel, (pg_temp.err(q)).*
  FROM (VALUES ('pixl_token_registry', 'SELECT secret_hash FROM pixl_token_registry LIMIT 0'),
			   ('pixl_stores', 'SELECT 1 FROM pixl_stores LIMIT 0'),
			   ('pixl_token_activity', 'SELECT 1 FROM pixl_token_activity LIMIT 0'),
			   ('pixl_audit', $$INSERT INTO pixl_audit (action) VALUES ('plan')$$),
			   ('pixl_audit', 'DELETE FROM pixl_audit'),
			   ('pixl_plans', 'UPDATE pixl_plans SET max_rate_limit = 1000')) v(rel, q);
SELECT * FROM pg_temp.err($$SELECT pixl_new_secret('live')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_secret_hash('x')$$);
RESET ROLE;

-- Clean up the roles.
REVOKE pixl_platform_admin FROM regress_pixl_admin;
REVOKE ALL ON pixl_tokens, pixl_audit, pixl_plans FROM regress_pixl_admin;
REVOKE ALL ON FUNCTION
	pixl_create_token(text, text, text[], timestamptz, int, text, text[], jsonb),
	pixl_rotate_token(text, interval),
	pixl_revoke_token(text),
	pixl_update_token(text, text, text[], int, timestamptz, text[], jsonb),
	pixl_set_store_plan(text, text),
	pixl_usage_summary(text, text),
	pixl_usage_timeline(text, text),
	pixl_usage_endpoints(text, text),
	pixl_recent_calls(text, int, int),
	pixl_stats()
	FROM regress_pixl_admin;
DROP ROLE regress_pixl_admin;
DROP ROLE regress_pixl_nobody;
