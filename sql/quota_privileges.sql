-- Plan quotas and privileges: a store admin cannot raise its own
-- allowance by any path (a plan is platform-admin data: choosing one,
-- editing one), and an edit of a plan's allowance is audited.
\i test/helpers/setup.sql

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_qp_admin;
DROP ROLE IF EXISTS regress_qp_platform;
RESET client_min_messages;
CREATE ROLE regress_qp_admin;
CREATE ROLE regress_qp_platform IN ROLE pixl_platform_admin;
-- README's store-admin grants, and pixl_set_store_plan granted by mistake
GRANT EXECUTE ON FUNCTION
	pixl_create_token(text, text, text[], timestamptz, int, text, text[], jsonb),
	pixl_update_token(text, text, text[], int, timestamptz, text[], jsonb),
	pixl_events_since(bigint, int), pixl_set_store_plan(text, text)
	TO regress_qp_admin, regress_qp_platform;
GRANT SELECT ON pixl_tokens, pixl_audit, pixl_plans TO regress_qp_admin, regress_qp_platform;

SELECT pixl_set_store_plan('qp-a', 'starter');
SELECT pixl_grant_store('regress_qp_admin', 'qp-a') AS granted;

-- The store admin: no plan of its choosing, not even a smaller one (the
-- plan is what the store pays for), no edit of the plans or the stores.
SET ROLE regress_qp_admin;
\x on
SELECT * FROM pg_temp.err($$SELECT pixl_set_store_plan('qp-a', 'enterprise')$$);
\x off
SELECT (pg_temp.err($$SELECT pixl_set_store_plan('qp-a', 'free')$$)).state AS smaller_plan,
	   (pg_temp.err($$SELECT pixl_set_store_plan('qp-a', 'starter')$$)).state AS same_plan,
	   (pg_temp.err($$SELECT pixl_set_store_plan('qp-other', 'free')$$)).state AS other_store,
	   (pg_temp.err($$UPDATE pixl_plans SET max_rate_limit = 1000 WHERE plan = 'starter'$$)).state AS edit_plan,
	   (pg_temp.err($$INSERT INTO pixl_plans VALUES ('mine', 60, 1000, 10)$$)).state AS add_plan,
	   (pg_temp.err($$UPDATE pixl_stores SET plan = 'enterprise' WHERE store_id = 'qp-a'$$)).state AS edit_store;
RESET ROLE;
SELECT store_id, plan FROM pixl_stores WHERE store_id = 'qp-a';

-- A platform admin moves the store, audited as before.
SET ROLE regress_qp_platform;
SELECT pixl_set_store_plan('qp-a', 'pro');
RESET ROLE;
SELECT action, store_id, detail FROM pixl_audit WHERE store_id = 'qp-a' ORDER BY audit_id;

-- Clean up.
REVOKE ALL ON pixl_tokens, pixl_audit, pixl_plans FROM regress_qp_admin, regress_qp_platform;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM regress_qp_admin, regress_qp_platform;
DELETE FROM pixl_store_admins WHERE role_name LIKE 'regress\_qp\_%';
DROP ROLE regress_qp_admin;
DROP ROLE regress_qp_platform;
