-- A store check holds for the calling role AND for the role whose rights
-- the call runs with.  A store admin of sdb-a writes SECURITY DEFINER
-- functions (and a view and a trigger that run them) that call every
-- store-scoped management and analytics function, and read every view,
-- for store sdb-b; a platform admin runs them: each answers PX040 (or sees
-- no row of sdb-b) and nothing is written.  The same calls made by the
-- platform admin itself work, and a platform admin's SECURITY DEFINER
-- function lends a store admin nothing.
\i test/helpers/setup.sql

SET client_min_messages = warning;
DROP SCHEMA IF EXISTS sdb CASCADE;
DROP SCHEMA IF EXISTS sdbp CASCADE;
DROP ROLE IF EXISTS regress_sdb_a;
DROP ROLE IF EXISTS regress_sdb_b;
DROP ROLE IF EXISTS regress_sdb_none;
DROP ROLE IF EXISTS regress_sdb_platform;
RESET client_min_messages;
CREATE ROLE regress_sdb_a;
CREATE ROLE regress_sdb_b;
CREATE ROLE regress_sdb_none;
CREATE ROLE regress_sdb_platform IN ROLE pixl_platform_admin, pixl_replica_operator;
CREATE SCHEMA sdb AUTHORIZATION regress_sdb_a;
CREATE SCHEMA sdbp AUTHORIZATION regress_sdb_platform;

-- Every management, analytics and platform function, and every view, to
-- the store admin and the platform admin: only the store checks stand in
-- the way (the leak report and the operator functions are left to their
-- EXECUTE grants, which PostgreSQL checks as the function's owner).
DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['regress_sdb_a', 'regress_sdb_platform'] LOOP
		EXECUTE format($g$
			GRANT EXECUTE ON FUNCTION
				pixl_create_token(text, text, text[], timestamptz, int, text, text[], jsonb),
				pixl_rotate_token(text, interval), pixl_revoke_token(text),
				pixl_update_token(text, text, text[], int, timestamptz, text[], jsonb),
				pixl_disable_token(text, text), pixl_enable_token(text),
				pixl_set_store_plan(text, text),
				pixl_grant_store(text, text), pixl_revoke_store(text, text),
				pixl_replica_reset_node(integer),
				pixl_usage_summary(text, text), pixl_usage_timeline(text, text),
				pixl_usage_endpoints(text, text), pixl_recent_calls(text, int, int)
				TO %I;
			GRANT SELECT ON pixl_tokens, pixl_audit, pixl_plans, pixl_store_admins,
				pixl_usage_by_hour, pixl_usage_by_day, pixl_usage_by_store TO %I$g$, r, r);
	END LOOP;
END
$$;
GRANT EXECUTE ON FUNCTION pixl_report_leaked(text, text), pixl_report_leaked(bytea, text),
	pixl_backfill_usage(text[], timestamptz[], text[], text[], int[], double precision[], inet[]),
	pixl_run_maintenance(interval), pixl_lifecycle_reminders()
	TO regress_sdb_platform;

SELECT pixl_set_store_plan('sdb-a', 'growth'), pixl_set_store_plan('sdb-b', 'growth');
SELECT token_id AS a1 FROM pixl_create_token('sdb-a', 'A one', ARRAY['orders:read']) \gset
SELECT token_id AS b1, token AS b1_secret
  FROM pixl_create_token('sdb-b', 'B one', ARRAY['orders:read']) \gset
SELECT token_id AS b2 FROM pixl_create_token('sdb-b', 'B two', ARRAY['orders:read']) \gset
SELECT pixl_disable_token(:'b2', 'for the enable attack');
SELECT pixl_grant_store('regress_sdb_a', 'sdb-a'), pixl_grant_store('regress_sdb_b', 'sdb-b');
SELECT pixl_backfill_usage(ARRAY[:'b1', :'b1'], ARRAY[now() - interval '1 hour', now() - interval '1 second'],
						   ARRAY['GET', 'GET'], ARRAY['/orders', '/orders'], ARRAY[200, 500]);

-- What must not change: store sdb-b's tokens, stores, grants and audit.
CREATE FUNCTION pg_temp.sdb_state() RETURNS text LANGUAGE sql AS $$
	SELECT md5(concat_ws('|',
		(SELECT string_agg(t::text, ',' ORDER BY t.token_id) FROM pixl_token_registry t WHERE t.store_id = 'sdb-b'),
		(SELECT string_agg(s.plan, ',') FROM pixl_stores s WHERE s.store_id = 'sdb-b'),
		(SELECT string_agg(a.role_name || a.store_id, ',' ORDER BY 1) FROM pixl_store_admins a),
		(SELECT count(*) FROM pixl_audit),
		(SELECT count(*) FROM pixl_token_registry)))
$$;
SELECT pg_temp.sdb_state() AS before \gset

-- The store admin's traps.  run(): any statement with its owner's rights,
-- the answer kept in its own table.  steal(): a token of sdb-b, its secret
-- kept; a view and a trigger run it for whoever reads or inserts.
SET ROLE regress_sdb_a;
CREATE TABLE sdb.loot (what text, val text);
CREATE FUNCTION sdb.run(q text) RETURNS text
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
	v text;
BEGIN
	EXECUTE q INTO v;
	INSERT INTO sdb.loot VALUES (q, v);
	RETURN v;
END
$$;
CREATE FUNCTION sdb.steal() RETURNS text
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
	v text;
BEGIN
	SELECT token INTO v FROM pixl_create_token('sdb-b', 'Stolen', ARRAY['orders:write']);
	INSERT INTO sdb.loot VALUES ('steal', v);
	RETURN 'thanks';
END
$$;
CREATE VIEW sdb.harmless AS SELECT sdb.steal() AS greeting;
CREATE TABLE sdb.inbox (msg text);
CREATE FUNCTION sdb.on_insert() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
	PERFORM sdb.steal();
	RETURN NEW;
END
$$;
CREATE TRIGGER inbox_steal BEFORE INSERT ON sdb.inbox FOR EACH ROW EXECUTE FUNCTION sdb.on_insert();
GRANT USAGE ON SCHEMA sdb TO PUBLIC;
GRANT SELECT ON sdb.harmless TO PUBLIC;
GRANT INSERT ON sdb.inbox TO PUBLIC;
RESET ROLE;

CREATE TEMP TABLE attacks (op text, q text);
INSERT INTO attacks VALUES
	('create', $$SELECT token FROM pixl_create_token('sdb-b', 'Mine', ARRAY['orders:read'])$$),
	('create (new store)', $$SELECT token FROM pixl_create_token('sdb-new', 'Mine', ARRAY['orders:read'])$$),
	('update', format('SELECT pixl_update_token(%L, name => %L)::text', :'b1', 'Mine')),
	('update allowlist', format('SELECT pixl_update_token(%L, allowed_ips => ARRAY[%L])::text', :'b1', '10.0.0.0/8')),
	('update expiry', format('SELECT pixl_update_token(%L, expires_at => now() + interval %L)::text', :'b1', '1 day')),
	('rotate', format('SELECT pixl_rotate_token(%L)', :'b1')),
	('revoke', format('SELECT pixl_revoke_token(%L)::text', :'b1')),
	('disable', format('SELECT pixl_disable_token(%L)::text', :'b1')),
	('enable', format('SELECT pixl_enable_token(%L)::text', :'b2')),
	('unknown token', $$SELECT pixl_rotate_token('tok_0000000000000000')$$),
	('set plan', $$SELECT pixl_set_store_plan('sdb-b', 'free')::text$$),
	('grant store', $$SELECT pixl_grant_store('regress_sdb_a', 'sdb-b')::text$$),
	('revoke store', $$SELECT pixl_revoke_store('regress_sdb_b', 'sdb-b')::text$$),
	('replica reset', 'SELECT pixl_replica_reset_node(1)::text'),
	('usage summary', format('SELECT total_requests::text FROM pixl_usage_summary(%L)', :'b1')),
	('usage timeline', format('SELECT sum(requests)::text FROM pixl_usage_timeline(%L, %L)', :'b1', '7d')),
	('usage endpoints', format('SELECT string_agg(endpoint, %L) FROM pixl_usage_endpoints(%L)', ',', :'b1')),
	('recent calls', format('SELECT string_agg(status::text, %L) FROM pixl_recent_calls(%L)', ',', :'b1'));
GRANT SELECT ON attacks TO PUBLIC;

-- The platform admin runs the store admin's function: PX040 for every one.
SET ROLE regress_sdb_platform;
SELECT a.op, e.state, replace(replace(e.message, :'b1', '<b1>'), :'b2', '<b2>') AS message
  FROM attacks a, pg_temp.err(format('SELECT sdb.run(%L)', a.q)) e;
-- the detail says whose rights the call ran with
SELECT DISTINCT e.detail
  FROM attacks a, pg_temp.err(format('SELECT sdb.run(%L)', a.q)) e;
-- through the view and the trigger
SELECT state, message FROM pg_temp.err('SELECT * FROM sdb.harmless');
SELECT state, message FROM pg_temp.err($$INSERT INTO sdb.inbox VALUES ('hello')$$);
-- the leak report and the operator functions: EXECUTE is the owner's
SELECT op, (pg_temp.err(format('SELECT sdb.run(%L)', q))).state
  FROM (VALUES ('report leaked (text)', format('SELECT pixl_report_leaked(%L, %L)::text', :'b1_secret', 'scan')),
			   ('report leaked (bytea)', format('SELECT pixl_report_leaked(sha256(convert_to(%L, %L)), %L)::text',
											 :'b1_secret', 'UTF8', 'scan')),
			   ('backfill', format('SELECT pixl_backfill_usage(ARRAY[%L], ARRAY[now()])::text', :'b1')),
			   ('maintenance', 'SELECT partitions_created::text FROM pixl_run_maintenance()'),
			   ('lifecycle reminders', 'SELECT count(*)::text FROM pixl_lifecycle_reminders()')) v(op, q);
-- Reading through the store admin's function: sdb-a's rows only, never
-- sdb-b's (the rows a platform admin would see directly).
SELECT v AS view, sdb.run(format('SELECT count(*)::text FROM %s WHERE store_id = %L', v, 'sdb-b')) AS b_rows,
	   sdb.run(format('SELECT count(*)::text FROM %s WHERE store_id = %L', v, 'sdb-a')) AS a_rows
  FROM unnest(ARRAY['pixl_tokens', 'pixl_audit', 'pixl_store_admins', 'pixl_usage_by_hour',
					'pixl_usage_by_day', 'pixl_usage_by_store']) v;
-- the store admin's own store through its function: both roles may
SELECT sdb.run(format('SELECT total_requests::text FROM pixl_usage_summary(%L)', :'a1')) AS a_summary;
RESET ROLE;

-- Nothing was written: not a token, plan, grant or audit row, and the trap
-- holds no secret (only the counts of the reads above).
SELECT pg_temp.sdb_state() = :'before' AS unchanged;
SELECT count(*) AS loot_rows, count(*) FILTER (WHERE val ~ 'sk_') AS secrets,
	   count(*) FILTER (WHERE what ~ 'sdb-b' AND val <> '0') AS b_rows_seen
  FROM sdb.loot;

-- The platform admin's own calls work.
SET ROLE regress_sdb_platform;
SELECT v AS view, (SELECT count(*) > 0 FROM pixl_tokens WHERE store_id = 'sdb-b') AS sees_b
  FROM (VALUES ('pixl_tokens')) x(v);
SELECT count(*) > 0 AS audit_b FROM pixl_audit WHERE store_id = 'sdb-b';
SELECT count(*) > 0 AS by_hour_b FROM pixl_usage_by_hour WHERE store_id = 'sdb-b';
SELECT total_requests FROM pixl_usage_summary(:'b1');
SELECT count(*) AS calls FROM pixl_recent_calls(:'b1');
SELECT count(*) AS endpoints FROM pixl_usage_endpoints(:'b1');
SELECT sum(requests) AS timeline FROM pixl_usage_timeline(:'b1', '7d');
SELECT pixl_update_token(:'b1', name => 'B one renamed');
SELECT length(pixl_rotate_token(:'b1')) AS rotated;
SELECT pixl_enable_token(:'b2');
SELECT pixl_disable_token(:'b2');
SELECT pixl_set_store_plan('sdb-b', 'pro');
SELECT pixl_grant_store('regress_sdb_none', 'sdb-b') AS granted, pixl_revoke_store('regress_sdb_none', 'sdb-b') AS revoked;
SELECT pixl_replica_reset_node(15) AS reset;
SELECT count(*) AS created FROM pixl_create_token('sdb-b', 'B three', ARRAY['orders:read']);
RESET ROLE;

-- A platform admin's SECURITY DEFINER function run by a store admin lends
-- it nothing: store sdb-a only.
SET ROLE regress_sdb_platform;
CREATE FUNCTION sdbp.run(q text) RETURNS text
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
	v text;
BEGIN
	EXECUTE q INTO v;
	RETURN v;
END
$$;
GRANT USAGE ON SCHEMA sdbp TO regress_sdb_a;
GRANT EXECUTE ON FUNCTION sdbp.run(text) TO regress_sdb_a;
RESET ROLE;
SELECT pg_temp.sdb_state() AS before \gset
SET ROLE regress_sdb_a;
SELECT a.op, e.state
  FROM attacks a, pg_temp.err(format('SELECT sdbp.run(%L)', a.q)) e;
SELECT sdbp.run($$SELECT count(*)::text FROM pixl_tokens WHERE store_id = 'sdb-b'$$) AS b_tokens,
	   sdbp.run($$SELECT count(*)::text FROM pixl_tokens WHERE store_id = 'sdb-a'$$) AS a_tokens;
RESET ROLE;
SELECT pg_temp.sdb_state() = :'before' AS unchanged;
-- and its own store through it: both roles may
SET ROLE regress_sdb_a;
SELECT sdbp.run(format('SELECT pixl_update_token(%L, name => %L)::text', :'a1', 'A via platform')) = '' AS updated;
RESET ROLE;
SELECT name FROM pixl_tokens WHERE token_id = :'a1';

-- The implementations behind the public functions take a caller ticket:
-- one made by the caller, for the caller, once.
SET ROLE regress_sdb_a;
SELECT state, message, hint
  FROM pg_temp.err(format('SELECT pixl_rotate_token_impl(12345, %L, %L)', :'a1', '0'));
SELECT length(pixl_rotate_token_impl(pixl_caller_ticket(), :'a1', '0')) AS rotated_with_own_ticket;
BEGIN;
SELECT pixl_caller_ticket() AS t \gset
SELECT pixl_update_token_impl(:t, :'a1', 'A ticket', NULL, NULL, NULL, NULL, NULL)::text = '' AS first_use;
SELECT state FROM pg_temp.err(format('SELECT pixl_update_token_impl(%s, %L, %L, NULL, NULL, NULL, NULL, NULL)', :t, :'a1', 'again'));
SELECT pixl_caller_ticket() AS t \gset
COMMIT;
-- a ticket does not outlive its transaction
SELECT state FROM pg_temp.err(format('SELECT pixl_update_token_impl(%s, %L, %L, NULL, NULL, NULL, NULL, NULL)', :t, :'a1', 'later'));
-- the store checks hold for the ticket's role too
SELECT state FROM pg_temp.err(format('SELECT pixl_rotate_token_impl(pixl_caller_ticket(), %L, %L)', :'b1', '0'));
RESET ROLE;
-- a role without EXECUTE on the public function gets nothing from its own ticket
SET ROLE regress_sdb_none;
SELECT state, message
  FROM pg_temp.err($$SELECT * FROM pixl_create_token_impl(pixl_caller_ticket(), 'sdb-b', 'n', ARRAY['orders:read'], NULL, NULL, 'live', NULL, NULL)$$);
RESET ROLE;

-- Clean up.
SET client_min_messages = warning;
DROP SCHEMA sdb CASCADE;
DROP SCHEMA sdbp CASCADE;
RESET client_min_messages;
DELETE FROM pixl_store_admins WHERE role_name LIKE 'regress\_sdb\_%';
DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['regress_sdb_a', 'regress_sdb_platform'] LOOP
		EXECUTE format('REVOKE ALL ON pixl_tokens, pixl_audit, pixl_plans, pixl_store_admins,
			pixl_usage_by_hour, pixl_usage_by_day, pixl_usage_by_store FROM %I', r);
		EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM %I', r);
	END LOOP;
END
$$;
DROP ROLE regress_sdb_a;
DROP ROLE regress_sdb_b;
DROP ROLE regress_sdb_none;
DROP ROLE regress_sdb_platform;
