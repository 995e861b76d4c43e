-- Store-scoped administration: a store admin sees and manages
-- the stores granted to it and nothing else, by any function or view; a
-- platform admin sees every store.  Roles act through SET ROLE, as a login
-- role would (pixl_calling_role is the role in effect at the top level).
\i test/helpers/setup.sql

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_sa_a;
DROP ROLE IF EXISTS regress_sa_a_member;
DROP ROLE IF EXISTS regress_sa_b;
DROP ROLE IF EXISTS regress_sa_none;
DROP ROLE IF EXISTS regress_sa_platform;
RESET client_min_messages;
CREATE ROLE regress_sa_a;
CREATE ROLE regress_sa_a_member IN ROLE regress_sa_a;	-- inherits store A
CREATE ROLE regress_sa_b;
CREATE ROLE regress_sa_none;
CREATE ROLE regress_sa_platform IN ROLE pixl_platform_admin;

-- README's store-admin grants, to every one of them
DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['regress_sa_a', 'regress_sa_b', 'regress_sa_none', 'regress_sa_platform'] LOOP
		EXECUTE format($g$
			GRANT EXECUTE ON FUNCTION
				pixl_create_token(text, text, text[], timestamptz, int, text, text[], jsonb),
				pixl_rotate_token(text, interval), pixl_revoke_token(text),
				pixl_update_token(text, text, text[], int, timestamptz, text[], jsonb),
				pixl_usage_summary(text, text), pixl_usage_timeline(text, text),
				pixl_usage_endpoints(text, text), pixl_recent_calls(text, int, int)
				TO %I;
			GRANT SELECT ON pixl_tokens, pixl_audit, pixl_plans TO %I$g$, r, r);
	END LOOP;
END
$$;

-- the platform role exists once per cluster and logs in nowhere
SELECT rolname, rolcanlogin, rolsuper FROM pg_roles WHERE rolname = 'pixl_platform_admin';

SELECT pixl_set_store_plan('sa-a', 'growth'), pixl_set_store_plan('sa-b', 'growth');
SELECT token_id AS a1 FROM pixl_create_token('sa-a', 'A one', ARRAY['orders:read']) \gset
SELECT token_id AS b1 FROM pixl_create_token('sa-b', 'B one', ARRAY['orders:read']) \gset
SELECT pixl_grant_store('regress_sa_a', 'sa-a') AS granted,
	   pixl_grant_store('regress_sa_a', 'sa-a') AS granted_again,
	   pixl_grant_store('regress_sa_b', 'sa-b') AS granted_b;
SELECT role_name, store_id, granted_by = session_user AS by_me FROM pixl_store_admins ORDER BY 1, 2;

-- Store A's admin: store A only.
SET ROLE regress_sa_a;
SELECT pixl_calling_role()::regrole AS calling_role, session_user = current_user AS same;
SELECT store_id, name FROM pixl_tokens ORDER BY store_id, name;
SELECT DISTINCT store_id FROM pixl_audit ORDER BY 1;
SELECT count(*) AS b_rows FROM pixl_audit WHERE store_id = 'sa-b';
SELECT count(*) AS a2 FROM pixl_create_token('sa-a', 'A two', ARRAY['orders:read']);
\x on
-- every way at store B: PX040; an unknown token gets the same answer
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('sa-b', 'Mine now', ARRAY['orders:read'])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('sa-new', 'New store', ARRAY['orders:read'])$$);
SELECT state, replace(message, :'b1', '<b1>') AS message, hint
  FROM pg_temp.err(format('SELECT pixl_rotate_token(%L)', :'b1'));
SELECT * FROM pg_temp.err(format('SELECT pixl_rotate_token(%L)', 'tok_0000000000000000'));
\x off
SELECT q, (pg_temp.err(format(q, :'b1'))).state, (pg_temp.err(format(q, 'tok_0000000000000000'))).state AS unknown_state
  FROM unnest(ARRAY['SELECT pixl_rotate_token(%L)',
					'SELECT pixl_revoke_token(%L)',
					'SELECT pixl_update_token(%L, name => ''Mine'')',
					'SELECT pixl_update_token(%L, rate_limit => 1)',
					'SELECT * FROM pixl_usage_summary(%L)',
					'SELECT * FROM pixl_usage_timeline(%L, ''7d'')',
					'SELECT * FROM pixl_usage_endpoints(%L)',
					'SELECT * FROM pixl_recent_calls(%L)']) AS q;
-- store A's own token: every function works
SELECT length(pixl_rotate_token(:'a1')) AS rotated;
SELECT pixl_update_token(:'a1', name => 'A one renamed');
SELECT total_requests FROM pixl_usage_summary(:'a1');
SELECT count(*) AS calls FROM pixl_recent_calls(:'a1');
-- no way to the mapping or to other stores' rows
SELECT rel, (pg_temp.err(q)).state
  FROM (VALUES ('pixl_store_admins', 'SELECT 1 FROM pixl_store_admins'),
			   ('pixl_grant_store', $$SELECT pixl_grant_store('regress_sa_a', 'sa-b')$$),
			   ('pixl_revoke_store', $$SELECT pixl_revoke_store('regress_sa_b', 'sa-b')$$),
			   ('pixl_set_store_plan', $$SELECT pixl_set_store_plan('sa-b', 'free')$$),
			   ('pixl_token_registry', 'SELECT 1 FROM pixl_token_registry'),
			   ('pixl_usage_events', 'SELECT 1 FROM pixl_usage_events'),
			   ('pixl_audit (write)', 'DELETE FROM pixl_audit')) v(rel, q);
RESET ROLE;

-- A function of the reader's own in a WHERE clause sees store A's rows
-- only: the view is a security barrier.
SELECT reloptions FROM pg_class WHERE oid = 'pixl_tokens'::regclass;
CREATE TEMP TABLE seen (t text);
GRANT ALL ON seen TO PUBLIC;
CREATE FUNCTION pg_temp.leak(t text) RETURNS boolean
	LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN
	INSERT INTO pg_temp.seen VALUES (t);
	RETURN true;
END
$$;
SET ROLE regress_sa_a;
SELECT count(*) FROM pixl_tokens WHERE pg_temp.leak(store_id || ' ' || name);
RESET ROLE;
SELECT t AS seen_by_the_function FROM pg_temp.seen ORDER BY 1;

-- A member of store A's role inherits it.
SET ROLE regress_sa_a_member;
SELECT DISTINCT store_id FROM pixl_tokens;
RESET ROLE;

-- Store B's admin sees its own rows, none of A's.
SET ROLE regress_sa_b;
SELECT store_id, name FROM pixl_tokens ORDER BY store_id, name;
SELECT DISTINCT store_id FROM pixl_audit ORDER BY 1;
SELECT (pg_temp.err(format('SELECT pixl_revoke_token(%L)', :'a1'))).state AS revoke_a;
RESET ROLE;

-- A role with every grant but no store sees nothing and changes nothing.
SET ROLE regress_sa_none;
SELECT count(*) AS tokens FROM pixl_tokens;
SELECT count(*) AS audit_rows FROM pixl_audit;
SELECT (pg_temp.err($$SELECT pixl_create_token('sa-a', 'n', ARRAY['orders:read'])$$)).state AS create_a;
RESET ROLE;

-- pixl_set_store_plan, when an operator grants it, checks the store, then
-- refuses a store admin its own store too: plans are for platform admins.
GRANT EXECUTE ON FUNCTION pixl_set_store_plan(text, text) TO regress_sa_a;
SET ROLE regress_sa_a;
SELECT (pg_temp.err($$SELECT pixl_set_store_plan('sa-b', 'free')$$)).state AS plan_b,
	   (pg_temp.err($$SELECT pixl_set_store_plan('sa-a', 'pro')$$)).state AS plan_a;
RESET ROLE;
REVOKE EXECUTE ON FUNCTION pixl_set_store_plan(text, text) FROM regress_sa_a;
SELECT store_id, plan FROM pixl_stores WHERE store_id IN ('sa-a', 'sa-b') ORDER BY 1;

-- The platform admin: every store, grants and revocations.
SET ROLE regress_sa_platform;
SELECT DISTINCT store_id FROM pixl_tokens WHERE store_id LIKE 'sa-%' ORDER BY 1;
SELECT count(DISTINCT store_id) AS audit_stores FROM pixl_audit WHERE store_id IN ('sa-a', 'sa-b');
SELECT pixl_grant_store('regress_sa_b', 'sa-a') AS b_gets_a;
\x on
SELECT * FROM pg_temp.err($$SELECT pixl_grant_store('regress_no_such_role', 'sa-a')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_grant_store('regress_sa_b', E'\u200Bsa-a')$$);
\x off
SELECT role_name, store_id FROM pixl_store_admins ORDER BY 1, 2;
RESET ROLE;
SET ROLE regress_sa_b;
SELECT DISTINCT store_id FROM pixl_tokens ORDER BY 1;
RESET ROLE;
SET ROLE regress_sa_platform;
SELECT pixl_revoke_store('regress_sa_b', 'sa-a') AS revoked, pixl_revoke_store('regress_sa_b', 'sa-a') AS again;
RESET ROLE;
SET ROLE regress_sa_b;
SELECT DISTINCT store_id FROM pixl_tokens ORDER BY 1;
-- a store admin cannot make itself a platform admin
SELECT (pg_temp.err('GRANT pixl_platform_admin TO regress_sa_b')).state AS grant_platform;
RESET ROLE;

-- The audit still names the login role (session_user).
SELECT action, store_id, actor = session_user AS actor_is_session_user
  FROM pixl_audit WHERE token_id = :'a1' ORDER BY audit_id;

-- Per-store token caps by plan.
CREATE FUNCTION pg_temp.audit_count(store text) RETURNS bigint
	LANGUAGE sql AS $$ SELECT count(*) FROM pixl_audit a WHERE a.store_id = store $$;
SELECT plan, max_tokens FROM pixl_plans
 WHERE plan IN ('free', 'starter', 'growth', 'pro', 'enterprise') ORDER BY max_rate_limit;
INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens) VALUES ('tiny', 10, 10, 2);
SELECT pixl_set_store_plan('sa-cap', 'tiny');
SELECT count(*) FROM pixl_create_token('sa-cap', 'one', ARRAY['orders:read']);
SELECT token_id AS cap2 FROM pixl_create_token('sa-cap', 'two', ARRAY['orders:read']) \gset
\x on
SELECT * FROM pg_temp.err($$SELECT pixl_create_token('sa-cap', 'three', ARRAY['orders:read'])$$);
\x off
-- revoked and expired tokens do not count
SELECT pixl_revoke_token(:'cap2');
SELECT count(*) FROM pixl_create_token('sa-cap', 'three', ARRAY['orders:read']);
SELECT count(*) AS active FROM pixl_tokens WHERE store_id = 'sa-cap' AND status = 'active';
-- the refused create left nothing behind: three tokens, three audit rows
SELECT count(*) AS tokens, (SELECT count(*) FROM pixl_audit a
							 WHERE a.store_id = 'sa-cap' AND a.action = 'create') AS creates
  FROM pixl_token_registry WHERE store_id = 'sa-cap';
-- An expired token made active again by a new expiry (or none) counts
-- against the cap as a new one would: else tokens created short-lived and
-- extended once expired would beat it.
SELECT pixl_set_store_plan('sa-cap2', 'tiny');
SELECT token_id AS e1 FROM pixl_create_token('sa-cap2', 'short one', ARRAY['orders:read'],
											 expires_at => clock_timestamp() + interval '1 second') \gset
SELECT token_id AS e2 FROM pixl_create_token('sa-cap2', 'short two', ARRAY['orders:read'],
											 expires_at => clock_timestamp() + interval '1 second') \gset
DO $$
BEGIN
	FOR i IN 1..200 LOOP		-- at most 10 s
		EXIT WHEN NOT EXISTS (SELECT 1 FROM pixl_tokens
							   WHERE store_id = 'sa-cap2' AND status <> 'expired');
		PERFORM pg_sleep(0.05);
	END LOOP;
END
$$;
SELECT status, count(*) FROM pixl_tokens WHERE store_id = 'sa-cap2' GROUP BY 1;
SELECT token_id AS l1 FROM pixl_create_token('sa-cap2', 'long one', ARRAY['orders:read']) \gset
SELECT count(*) FROM pixl_create_token('sa-cap2', 'long two', ARRAY['orders:read']);
SELECT pg_temp.audit_count('sa-cap2') AS audited \gset
\x on
SELECT state, replace(message, :'e1', '<e1>') AS message, replace(detail, :'e1', '<e1>') AS detail, hint
  FROM pg_temp.err(format('SELECT pixl_update_token(%L, expires_at => %L)', :'e1', 'infinity'));
\x off
SELECT (pg_temp.err(format('SELECT pixl_update_token(%L, expires_at => now() + interval %L)', :'e2', '1 day'))).state AS extend_e2,
	   (pg_temp.err(format('SELECT pixl_update_token(%L, name => %L, expires_at => now() + interval %L)',
						   :'e2', 'renamed', '1 day'))).state AS rename_and_extend_e2;
-- nothing changed: two active tokens, the expired ones still expired, no update audited
SELECT name, status FROM pixl_tokens WHERE store_id = 'sa-cap2' ORDER BY name;
SELECT pg_temp.audit_count('sa-cap2') = :audited AS nothing_audited;
-- updates that leave an expired token expired are not capped
SELECT pixl_update_token(:'e1', name => 'short one renamed');
-- a disabled token counts (it is neither revoked nor expired), so enabling
-- one needs no check
SELECT pixl_disable_token(:'l1');
SELECT (pg_temp.err($$SELECT pixl_create_token('sa-cap2', 'three', ARRAY['orders:read'])$$)).state AS create_while_disabled;
SELECT pixl_enable_token(:'l1');
-- room again: the extension goes through
SELECT pixl_revoke_token(:'l1');
SELECT pixl_update_token(:'e1', expires_at => 'infinity');
SELECT name, status FROM pixl_tokens WHERE store_id = 'sa-cap2' ORDER BY name;

-- Clean up.
DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['regress_sa_a', 'regress_sa_b', 'regress_sa_none', 'regress_sa_platform'] LOOP
		EXECUTE format('REVOKE ALL ON pixl_tokens, pixl_audit, pixl_plans FROM %I', r);
		EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM %I', r);
	END LOOP;
END
$$;
DELETE FROM pixl_store_admins WHERE role_name LIKE 'regress\_sa\_%';
DROP ROLE regress_sa_a_member;
DROP ROLE regress_sa_a;
DROP ROLE regress_sa_b;
DROP ROLE regress_sa_none;
DROP ROLE regress_sa_platform;
