-- pixl_verify_token: every row of the SPEC's status table, bad inputs that
-- must be 401s and never errors, scope semantics, and changes (rotate,
-- revoke, update, plan) seen by the very next verification.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pixltoken;
RESET client_min_messages;
SET timezone = 'UTC';
\set SHOW_CONTEXT never

-- Stable columns of one verification; :'id' is the token id expected.
CREATE FUNCTION pg_temp.v(tok text, scope text DEFAULT NULL, store text DEFAULT NULL)
	RETURNS TABLE (status int, reason text, token_id text, store_id text, mode text,
				   scopes text[], rate_limit int, remaining int, reset_ok boolean,
				   retry_after_ms int, has_request_id boolean)
	LANGUAGE sql AS $$
	SELECT v.status, v.reason, v.token_id, v.store_id, v.mode, v.scopes, v.rate_limit,
		   v.remaining,
		   v.reset_at IS NULL OR v.reset_at BETWEEN clock_timestamp() - interval '1 s'
												AND clock_timestamp() + interval '62 s',
		   v.retry_after_ms, v.request_id IS NOT NULL
	  FROM pixl_verify_token(tok, scope, store) v
$$;

SELECT pixl_set_store_plan('vfy-a', 'pro');
SELECT token_id AS id, token AS tok
  FROM pixl_create_token('vfy-a', 'Verify A', ARRAY['products:write', 'orders:read'],
						 rate_limit => 500) \gset
SELECT token_id AS tid, token AS ttok
  FROM pixl_create_token('vfy-a', 'Verify test mode', ARRAY['analytics:read'], mode => 'test') \gset

-- 200 ok, with every column
SELECT status, reason, token_id = :'id' AS id_ok, store_id, mode, scopes, rate_limit, remaining,
	   reset_at > clock_timestamp() AS reset_future, retry_after_ms, request_id IS NOT NULL AS rid
  FROM pixl_verify_token(:'tok');
SELECT status, reason, token_id = :'tid' AS id_ok, mode, scopes FROM pixl_verify_token(:'ttok');
-- named arguments, as an app server calls it
SELECT status, reason, remaining
  FROM pixl_verify_token(token => :'tok', scope => 'orders:read', store_id => 'vfy-a',
						 method => 'GET', endpoint => '/admin/api/orders.json', ip => '10.1.2.3');
-- request ids are opaque text, one per verification
SELECT a.request_id <> b.request_id AS distinct_ids
  FROM pixl_verify_token(:'tok') a, pixl_verify_token(:'tok') b;

-- 401 missing / malformed / token_id_not_secret: every bad input, no error
SELECT status, reason, token_id, store_id, scopes, rate_limit, remaining, reset_at,
	   retry_after_ms, request_id
  FROM pixl_verify_token(NULL);
SELECT label, v.status, v.reason, v.token_id IS NULL AS no_id, v.request_id IS NULL AS no_rid
  FROM (VALUES
		('empty', ''),
		('space', ' '),
		('1 MB', repeat('x', 1024 * 1024)),
		('1 MB secret-like', :'tok' || repeat('A', 1024 * 1024)),
		('leading space', ' ' || :'tok'),
		('trailing space', :'tok' || ' '),
		('trailing newline', :'tok' || E'\n'),
		('Bearer prefix', 'Bearer ' || :'tok'),
		('lower case prefix', 'SK_LIVE_' || substr(:'tok', 9)),
		('pxl prefix', 'pxl_live_' || substr(:'tok', 9)),
		('truncated', left(:'tok', -1)),
		('one more char', :'tok' || 'a'),
		('bad checksum', left(:'tok', -1) || CASE WHEN right(:'tok', 1) = 'a' THEN 'b' ELSE 'a' END),
		('changed random char', left(:'tok', 10) || CASE WHEN substr(:'tok', 11, 1) = 'a' THEN 'b' ELSE 'a' END || substr(:'tok', 12)),
		('live/test mix-up', 'sk_test_' || substr(:'tok', 9)),
		('test/live mix-up', 'sk_live_' || substr(:'ttok', 9)),
		('non-ASCII', left(:'tok', 40) || 'ééé'),
		('non-ASCII same length', left(:'tok', 43) || 'é'),
		('control characters', E'\x01\x02'),
		('token id', :'id'),
		('token id lower bound', 'tok_'),
		('token id with junk', :'id' || ' trailing'),
		('SQL', $$' OR 1=1 --$$)
	   ) AS t(label, input),
	   LATERAL pixl_verify_token(input) v
 ORDER BY label COLLATE "C";

-- 401 unknown: well formed, right checksum, no such token (all columns NULL)
SELECT 'sk_live_' || repeat('A', 32) AS fake \gset
SELECT :'fake' || pixl_token_checksum(:'fake') AS fake \gset
SELECT pixl_token_format(:'fake') AS format_ok;
SELECT * FROM pg_temp.v(:'fake');

-- a scope outside the eleven is the caller's bug: an error with PX001
SELECT * FROM pixl_verify_token(:'tok', 'products:delete');
DO $$
BEGIN
	PERFORM * FROM pixl_verify_token('garbage', 'Products:Read');
EXCEPTION WHEN OTHERS THEN
	RAISE NOTICE 'SQLSTATE %: %', SQLSTATE, SQLERRM;
END
$$;
-- ... even with no token at all; an empty scope is not a scope either
SELECT status FROM pixl_verify_token(NULL, '');

-- 403 insufficient_scope; X:write grants X:read, not the other way
SELECT s.scope, v.status, v.reason
  FROM unnest(ARRAY['products:read', 'products:write', 'orders:read', 'orders:write',
					'customers:read', 'analytics:read', 'settings:write']) AS s(scope),
	   LATERAL pg_temp.v(:'tok', s.scope) v
 ORDER BY s.scope COLLATE "C";

-- 403 wrong_store only when store_id is given; case and spaces matter
SELECT s.store, v.status, v.reason, v.store_id
  FROM (VALUES ('vfy-a'), ('vfy-b'), ('VFY-A'), ('vfy-a '), ('')) AS s(store),
	   LATERAL pg_temp.v(:'tok', NULL, s.store) v
 ORDER BY s.store COLLATE "C";
-- wrong store is reported before the scope
SELECT status, reason FROM pg_temp.v(:'tok', 'settings:write', 'vfy-b');

-- Rotation without grace: the old secret is unknown at once, the new one works
SELECT pixl_rotate_token(:'id') AS tok2 \gset
SELECT 'old' AS secret, status, reason, token_id IS NULL AS no_id FROM pg_temp.v(:'tok')
UNION ALL
SELECT 'new', status, reason, token_id = :'id' FROM pg_temp.v(:'tok2');
-- ... inside a transaction the old secret works until the rotation's commit
BEGIN;
SELECT status, reason FROM pg_temp.v(:'tok2');
SELECT pixl_rotate_token(:'id') AS tok3 \gset
SELECT 'old (own change)' AS secret, status, reason FROM pg_temp.v(:'tok2')
UNION ALL
SELECT 'new (own change)', status, reason FROM pg_temp.v(:'tok3');
ROLLBACK;
SELECT 'old after rollback' AS secret, status, reason FROM pg_temp.v(:'tok2')
UNION ALL
SELECT 'rolled-back new', status, reason FROM pg_temp.v(:'tok3');

-- Rotation with grace: both work; the old one stops when the grace ends
SELECT pixl_rotate_token(:'id', '1 hour') AS tok4 \gset
SELECT 'old in grace' AS secret, status, reason, token_id = :'id' AS id_ok FROM pg_temp.v(:'tok2')
UNION ALL
SELECT 'new', status, reason, token_id = :'id' FROM pg_temp.v(:'tok4');
-- end the grace period as the clock would (registry owner's edit)
UPDATE pixl_token_registry SET previous_valid_until = clock_timestamp() - interval '1 s'
 WHERE token_id = :'id';
SELECT 'old after grace' AS secret, status, reason, token_id IS NULL AS no_id FROM pg_temp.v(:'tok2')
UNION ALL
SELECT 'new', status, reason, token_id = :'id' FROM pg_temp.v(:'tok4');
-- a rotation during a grace period ends it: only the newest secret works
SELECT pixl_rotate_token(:'id', '1 hour') AS tok5 \gset
SELECT pixl_rotate_token(:'id') AS tok6 \gset
SELECT x.n, v.status, v.reason
  FROM (VALUES (4, :'tok4'), (5, :'tok5'), (6, :'tok6')) AS x(n, secret),
	   LATERAL pg_temp.v(x.secret) v
 ORDER BY x.n;

-- Updates are seen by the next verification: scopes, limit, expiry
SELECT status, reason, scopes, rate_limit FROM pg_temp.v(:'tok6', 'customers:read');
SELECT pixl_update_token(:'id', scopes => ARRAY['customers:write'], rate_limit => 400);
SELECT status, reason, scopes, rate_limit FROM pg_temp.v(:'tok6', 'customers:read');
SELECT status, reason, scopes FROM pg_temp.v(:'tok6', 'products:read');

-- Plan downgrade caps the effective limit at once; an upgrade lifts it back
SELECT pixl_set_store_plan('vfy-a', 'starter');
SELECT status, rate_limit FROM pg_temp.v(:'tok6');
SELECT pixl_set_store_plan('vfy-a', 'pro');
SELECT status, rate_limit FROM pg_temp.v(:'tok6');
-- so does an operator's edit of the plan table
UPDATE pixl_plans SET max_rate_limit = 300 WHERE plan = 'pro';
SELECT status, rate_limit FROM pg_temp.v(:'tok6');
UPDATE pixl_plans SET max_rate_limit = 600 WHERE plan = 'pro';
SELECT status, rate_limit FROM pg_temp.v(:'tok6');

-- 401 revoked: token id and store are shown, no request id
SELECT pixl_revoke_token(:'id');
SELECT status, reason, token_id = :'id' AS id_ok, store_id, mode, scopes, rate_limit, remaining,
	   reset_ok, retry_after_ms, has_request_id
  FROM pg_temp.v(:'tok6');
SELECT status, reason, token_id = :'id' AS id_ok, store_id
  FROM pg_temp.v(:'tok6', 'orders:read', 'vfy-b');

-- 401 expired: an expiry two seconds ahead, then a bounded poll
SELECT token_id AS eid, token AS etok
  FROM pixl_create_token('vfy-a', 'Expiring', ARRAY['orders:read'],
						 expires_at => clock_timestamp() + interval '2 s') \gset
SELECT status, reason FROM pg_temp.v(:'etok');
SELECT set_config('vfy.etok', :'etok', false) IS NOT NULL AS set;
DO $$
DECLARE
	deadline timestamptz := clock_timestamp() + interval '30 s';
BEGIN
	WHILE (SELECT v.status FROM pixl_verify_token(current_setting('vfy.etok')) v) = 200
		  AND clock_timestamp() < deadline LOOP
		PERFORM pg_sleep(0.1);
	END LOOP;
END
$$;
SELECT status, reason, token_id = :'eid' AS id_ok, store_id, has_request_id FROM pg_temp.v(:'etok');
-- an expired token whose expiry is extended verifies again
SELECT pixl_update_token(:'eid', expires_at => 'infinity');
SELECT status, reason FROM pg_temp.v(:'etok');

-- Rate limit 3: 200 200 200 with remaining 2 1 0, then 429 (not counted).
-- (The CASE makes the call depend on n: a constant call is made only once.)
SELECT token_id AS rid, token AS rtok
  FROM pixl_create_token('vfy-r', 'Limited', ARRAY['orders:read'], rate_limit => 3) \gset
SELECT n, v.status, v.reason, v.rate_limit, v.remaining, v.retry_after_ms,
	   v.reset_at BETWEEN clock_timestamp() + interval '59 s' AND clock_timestamp() + interval '61 s' AS reset_ok
  FROM generate_series(1, 3) n,
	   LATERAL pixl_verify_token(CASE WHEN n > 0 THEN :'rtok' END) v
 ORDER BY n;
SELECT n, v.status, v.reason, v.remaining, v.retry_after_ms BETWEEN 58000 AND 61000 AS retry_ok,
	   v.reset_at BETWEEN clock_timestamp() + interval '58 s' AND clock_timestamp() + interval '61 s' AS reset_ok,
	   v.request_id IS NOT NULL AS has_rid, v.token_id = :'rid' AS id_ok
  FROM generate_series(1, 3) n,
	   LATERAL pixl_verify_token(CASE WHEN n > 0 THEN :'rtok' END, 'orders:read') v
 ORDER BY n;
-- a 403 when the quota is spent stays a 403
SELECT status, reason, remaining, retry_after_ms FROM pixl_verify_token(:'rtok', 'orders:write');

-- 403s are charged: limit 3, two 403s leave room for one 200
SELECT token_id AS cid, token AS ctok
  FROM pixl_create_token('vfy-r', 'Charged', ARRAY['orders:read'], rate_limit => 3) \gset
SELECT n, v.status, v.reason, v.remaining, v.retry_after_ms IS NOT NULL AS has_retry
  FROM (VALUES (1, 'orders:write'), (2, 'products:read'), (3, 'orders:read'), (4, 'orders:read'))
		AS x(n, scope),
	   LATERAL pixl_verify_token(:'ctok', x.scope) v
 ORDER BY n;
-- a lowered limit applies at once; retry_after_ms waits for enough to expire
SELECT pixl_update_token(:'cid', rate_limit => 1);
SELECT status, reason, rate_limit, remaining,
	   retry_after_ms BETWEEN 58000 AND 61000 AS retry_ok
  FROM pixl_verify_token(:'ctok');
-- 429s are not counted: raising the limit to 4 admits exactly one more
SELECT pixl_update_token(:'cid', rate_limit => 4);
SELECT n, v.status, v.remaining
  FROM generate_series(1, 2) n,
	   LATERAL pixl_verify_token(CASE WHEN n > 0 THEN :'ctok' END) v
 ORDER BY n;

-- Shared memory per tracked token: a million tokens fit in 256 MB
SELECT pixl_rate_limit_shmem_size(1000000) < 256 * 1024 * 1024 AS million_fits_256mb,
	   pixl_rate_limit_shmem_size(1000000) / 1000000 AS bytes_per_token;

-- It runs read-only: no transaction id is assigned.  Usage events go to the
-- worker's queue once the worker serves this database (until then they are
-- written through to the tables, a write): wait for that, bounded.
DO $$
DECLARE
	deadline timestamptz := clock_timestamp() + interval '60 s';
BEGIN
	WHILE NOT EXISTS (SELECT FROM pixl_stats() s
					   WHERE s.datname = current_database() AND s.worker_state = 'serving')
		  AND clock_timestamp() < deadline LOOP
		PERFORM pg_sleep(0.1);
	END LOOP;
END
$$;
SELECT worker_state FROM pixl_stats() WHERE datname = current_database();
BEGIN;
SELECT status FROM pixl_verify_token(:'rtok');
SELECT status FROM pixl_verify_token(:'tok6');
SELECT status FROM pixl_verify_token(:'fake');
SELECT pg_current_xact_id_if_assigned() IS NULL AS no_xid;
COMMIT;
-- ... and works in a read-only transaction
BEGIN TRANSACTION READ ONLY;
SELECT status, reason FROM pixl_verify_token(:'etok');
COMMIT;

-- Privileges: PUBLIC may not call it; EXECUTE alone is enough
SET client_min_messages = warning;
DROP ROLE IF EXISTS vfy_app;
RESET client_min_messages;
CREATE ROLE vfy_app;
SET ROLE vfy_app;
SELECT status FROM pixl_verify_token(:'etok');
RESET ROLE;
GRANT EXECUTE ON FUNCTION pixl_verify_token(text, text, text, text, text, inet) TO vfy_app;
SET ROLE vfy_app;
SELECT status, reason, token_id = :'eid' AS id_ok FROM pixl_verify_token(:'etok', 'orders:read');
RESET ROLE;
-- a registry change flushes the cache: the reload runs as the owner too
SELECT pixl_update_token(:'eid', name => 'Expiring, renamed');
SET ROLE vfy_app;
SELECT status, reason, token_id = :'eid' AS id_ok FROM pixl_verify_token(:'etok', 'orders:read');
SELECT count(*) FROM pixl_token_registry;
RESET ROLE;
REVOKE EXECUTE ON FUNCTION pixl_verify_token(text, text, text, text, text, inet) FROM vfy_app;
DROP ROLE vfy_app;
