-- Scopes granted but not exercised (pixl_token_scope_use): a verification
-- admitted with a 200 exercises the scope it required, counted in shared
-- memory and folded into the rollups' scopes_used (a bit-OR); a refused
-- call (403 insufficient_scope, 429) and a call that names no scope ('*')
-- exercise none.  The narrower set is what the admitted calls required
-- and the grant still admits; NULL when nothing was exercised.  The
-- worker folds every 100 ms here.
\i test/helpers/setup.sql

CREATE FUNCTION pg_temp.wait_for(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE ok boolean;
BEGIN
	FOR i IN 1 .. 300 LOOP
		EXECUTE q INTO ok;
		IF ok THEN RETURN true; END IF;
		PERFORM pg_sleep(0.1);
	END LOOP;
	RETURN false;
END
$$;
SELECT pg_temp.wait_for($$SELECT worker_state = 'serving' FROM pixl_stats() WHERE datname = current_database()$$) AS serving;

-- the rollups' new column, in both tables and in the one stitching view
SELECT table_name, data_type, is_nullable, column_default
  FROM information_schema.columns
 WHERE column_name = 'scopes_used' AND table_name IN ('pixl_usage_hourly', 'pixl_usage_daily', 'pixl_usage_rollups')
 ORDER BY table_name;

SELECT pixl_set_store_plan('su-a', 'enterprise');
SELECT pixl_set_store_plan('su-b', 'enterprise');
SELECT token_id AS tok_a, token AS sec_a
  FROM pixl_create_token('su-a', 'a: mixed', ARRAY['orders:read', 'orders:write', 'products:read', 'analytics:read']) \gset
SELECT token_id AS tok_b, token AS sec_b
  FROM pixl_create_token('su-a', 'b: write serves read', ARRAY['orders:write']) \gset
SELECT token_id AS tok_c, token AS sec_c
  FROM pixl_create_token('su-a', 'c: no scope named', ARRAY['products:read']) \gset
SELECT token_id AS tok_d, token AS sec_d
  FROM pixl_create_token('su-a', 'd: not called today', ARRAY['customers:read']) \gset
SELECT token_id AS tok_e, token AS sec_e
  FROM pixl_create_token('su-a', 'e: refused only', ARRAY['products:read', 'settings:read'], rate_limit => 1) \gset
SELECT token_id AS tok_f, token AS sec_f
  FROM pixl_create_token('su-a', 'f: scope removed', ARRAY['webhooks:read', 'settings:read']) \gset
SELECT token_id AS tok_z, token AS sec_z
  FROM pixl_create_token('su-b', 'z: other store', ARRAY['orders:read']) \gset

-- a: two admitted orders:read, one analytics:read, one '*' (admitted, no
-- scope), one products:write refused (403: not granted, not exercised)
SELECT status, reason FROM pixl_verify_request(:'sec_a', 'orders:read', NULL, 'GET', '/orders');
SELECT status, reason FROM pixl_verify_request(:'sec_a', 'orders:read', NULL, 'GET', '/orders/{id}');
SELECT status, reason FROM pixl_verify_request(:'sec_a', 'analytics:read', NULL, 'GET', '/stats');
SELECT status, reason FROM pixl_verify_request(:'sec_a', '*', NULL, 'GET', '/ping');
SELECT status, reason FROM pixl_verify_request(:'sec_a', 'products:write', NULL, 'POST', '/products');
-- b: orders:read admitted through its orders:write grant
SELECT status, reason FROM pixl_verify_request(:'sec_b', 'orders:read', NULL, 'GET', '/orders');
-- c: only '*'
SELECT status, reason FROM pixl_verify_request(:'sec_c', '*', NULL, 'GET', '/ping');
-- e: a '*' that takes its one call a minute, then a 429 for a scope it
-- has: it exercised nothing
SELECT status, reason FROM pixl_verify_request(:'sec_e', '*', NULL, 'GET', '/ping');
SELECT status, reason FROM pixl_verify_request(:'sec_e', 'settings:read', NULL, 'GET', '/settings');
-- f: both scopes exercised, then settings:read taken away
SELECT status, reason FROM pixl_verify_request(:'sec_f', 'webhooks:read', NULL, 'GET', '/hooks');
SELECT status, reason FROM pixl_verify_request(:'sec_f', 'settings:read', NULL, 'GET', '/settings');
SELECT pixl_update_token(:'tok_f', scopes => ARRAY['webhooks:read']);
-- z: another store's
SELECT status, reason FROM pixl_verify_request(:'sec_z', 'orders:read', NULL, 'GET', '/orders');

SELECT pg_temp.wait_for(format($$SELECT sum(requests) = 12 FROM pixl_usage_hourly
								  WHERE token_id IN (%L, %L, %L, %L, %L, %L)$$,
							   :'tok_a', :'tok_b', :'tok_c', :'tok_e', :'tok_f', :'tok_z')) AS folded;
-- the hourly rows: one bit per scope (orders:read 4, analytics:read 64,
-- webhooks:read 128, settings:read 512), 0 where nothing was exercised
SELECT t.name, h.method, h.endpoint, h.requests, h.errors, h.scopes_used
  FROM pixl_usage_hourly h JOIN pixl_tokens t USING (token_id)
 WHERE t.store_id IN ('su-a', 'su-b')
 ORDER BY t.name, h.endpoint;

-- the figures, every token of the store (a superuser: platform admin)
SELECT t.name, u.granted, u.exercised, u.unused, u.narrower_scopes, u.requests,
	   u.since = date_trunc('hour', now() - interval '90 days', 'UTC') AS since_90_days
  FROM pixl_token_scope_use() u JOIN pixl_tokens t USING (token_id)
 WHERE u.store_id = 'su-a'
 ORDER BY t.name;
-- one token
SELECT granted, exercised, unused, narrower_scopes, requests
  FROM pixl_token_scope_use(:'tok_b');

-- older usage: rollup rows of 3 days ago (two hours, two scopes) and of
-- 100 days ago, rolled up by day (maintenance rolls them up from where it
-- is told it stopped); the daily row ORs its hours' bits
UPDATE pixl_usage_daily_state SET rolled_up_until = date_trunc('day', now() - interval '101 days', 'UTC');
INSERT INTO pixl_usage_hourly (token_id, bucket, method, endpoint, requests, errors,
							   response_ms_sum, response_ms_count, scopes_used)
VALUES (:'tok_d', date_trunc('day', now() - interval '3 days', 'UTC') + interval '1 hour', 'GET', '/c', 2, 0, 0, 0, 16),
	   (:'tok_d', date_trunc('day', now() - interval '3 days', 'UTC') + interval '5 hours', 'GET', '/c', 1, 0, 0, 0, 0),
	   (:'tok_c', date_trunc('day', now() - interval '3 days', 'UTC') + interval '5 hours', 'GET', '/p', 1, 0, 0, 0, 1),
	   (:'tok_c', date_trunc('day', now() - interval '100 days', 'UTC'), 'GET', '/p', 5, 0, 0, 0, 1);
SELECT pg_temp.roll_up() AS rolled_up;
SELECT t.name, d.bucket = date_trunc('day', now() - interval '3 days', 'UTC') AS three_days_ago,
	   d.requests, d.scopes_used
  FROM pixl_usage_daily d JOIN pixl_tokens t USING (token_id)
 WHERE d.token_id IN (:'tok_c', :'tok_d') AND d.bucket > now() - interval '10 days'
 ORDER BY t.name;
-- 90 days: the rows of 3 days ago count, those of 100 days ago do not
SELECT t.name, u.exercised, u.unused, u.narrower_scopes, u.requests
  FROM pixl_token_scope_use() u JOIN pixl_tokens t USING (token_id)
 WHERE u.token_id IN (:'tok_c', :'tok_d')
 ORDER BY t.name;
-- 1 day: not even those
SELECT exercised, unused, narrower_scopes, requests FROM pixl_token_scope_use(:'tok_d', 1);
-- 200 days: the row of 100 days ago too
SELECT exercised, requests FROM pixl_token_scope_use(:'tok_c', 200);

-- a revoked token: not in the list, still answered by id
SELECT pixl_revoke_token(:'tok_d');
SELECT count(*) AS listed_d FROM pixl_token_scope_use() WHERE token_id = :'tok_d';
SELECT exercised FROM pixl_token_scope_use(:'tok_d');

-- bad input: days outside 1..3650 (PX031), a secret for an id (PX011), a
-- token that does not exist (PX011)
SELECT state, message, hint FROM pg_temp.err($$SELECT * FROM pixl_token_scope_use(NULL, 0)$$);
SELECT state, message FROM pg_temp.err($$SELECT * FROM pixl_token_scope_use(NULL, 3651)$$);
SELECT state, message FROM pg_temp.err($$SELECT * FROM pixl_token_scope_use(NULL, NULL)$$);
SELECT state, message FROM pg_temp.err(format('SELECT * FROM pixl_token_scope_use(%L)', :'sec_a'));
SELECT state, message FROM pg_temp.err($$SELECT * FROM pixl_token_scope_use('tok_doesnotexist00')$$);

-- store isolation: a store admin of su-a sees su-a's tokens only, and gets
-- PX040 for su-b's; a role without EXECUTE gets 42501
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_su_a;
DROP ROLE IF EXISTS regress_su_none;
RESET client_min_messages;
CREATE ROLE regress_su_a;
CREATE ROLE regress_su_none;
SELECT pixl_grant_store('regress_su_a', 'su-a');
GRANT EXECUTE ON FUNCTION pixl_token_scope_use(text, integer) TO regress_su_a;
SELECT has_function_privilege('public', 'pixl_token_scope_use(text, integer)', 'EXECUTE') AS public_may_call;
SET ROLE regress_su_a;
SELECT store_id, count(*) AS tokens FROM pixl_token_scope_use() GROUP BY store_id ORDER BY store_id;
SELECT exercised, narrower_scopes FROM pixl_token_scope_use(:'tok_a');
SELECT state FROM pg_temp.err(format('SELECT * FROM pixl_token_scope_use(%L)', :'tok_z'));
RESET ROLE;
SET ROLE regress_su_none;
SELECT state FROM pg_temp.err($$SELECT * FROM pixl_token_scope_use()$$);
SELECT state FROM pg_temp.err(format('SELECT * FROM pixl_token_scope_use_impl(0, %L, 90)', :'tok_a'));
RESET ROLE;

-- the hygiene view's scope columns are pixl_token_scope_use's (90 days),
-- for the stores its reader sees, without EXECUTE on the function; the
-- internal row function checks the calling role whatever caller it is told
SELECT count(*) FILTER (WHERE h.scopes_exercised IS DISTINCT FROM u.exercised
						   OR h.scopes_unused IS DISTINCT FROM u.unused
						   OR h.narrower_scopes IS DISTINCT FROM u.narrower_scopes) AS differ,
	   count(*) FILTER (WHERE cardinality(h.scopes_exercised) > 0) > 0 AS some_exercised
  FROM pixl_token_hygiene h JOIN pixl_token_scope_use() u USING (token_id);
REVOKE EXECUTE ON FUNCTION pixl_token_scope_use(text, integer) FROM regress_su_a;
GRANT SELECT ON pixl_token_hygiene TO regress_su_a, regress_su_none;
SET ROLE regress_su_a;
SELECT store_id, count(*) AS tokens, count(scopes_unused) AS with_scopes
  FROM pixl_token_hygiene GROUP BY store_id ORDER BY store_id;
SELECT scopes_exercised, narrower_scopes FROM pixl_token_hygiene WHERE token_id = :'tok_a';
RESET ROLE;
SET ROLE regress_su_none;
SELECT count(*) AS hygiene_rows FROM pixl_token_hygiene;
SELECT count(*) AS rows_for_superuser_caller
  FROM pixl_scope_use_rows(NULL, 90, (SELECT oid FROM pg_roles WHERE rolname = session_user));
RESET ROLE;
REVOKE SELECT ON pixl_token_hygiene FROM regress_su_a, regress_su_none;
SELECT pixl_revoke_store('regress_su_a', 'su-a');
DROP ROLE regress_su_a;
DROP ROLE regress_su_none;
