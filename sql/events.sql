-- Durable lifecycle events: one outbox row per audited change, in its
-- transaction; consumers claim with a lease, acknowledge, release; leases
-- run out; dead letters; store isolation; retention; the Standard Webhooks
-- signature against the reference vectors.
\i test/helpers/setup.sql

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_ev_a;
DROP ROLE IF EXISTS regress_ev_b;
DROP ROLE IF EXISTS regress_ev_platform;
RESET client_min_messages;
CREATE ROLE regress_ev_a;
CREATE ROLE regress_ev_b;
CREATE ROLE regress_ev_platform IN ROLE pixl_platform_admin;
DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['regress_ev_a', 'regress_ev_b', 'regress_ev_platform'] LOOP
		EXECUTE format($g$
			GRANT EXECUTE ON FUNCTION
				pixl_create_token(text, text, text[], timestamptz, int, text, text[], jsonb),
				pixl_revoke_token(text),
				pixl_event_consumer_create(text, text, int, timestamptz),
				pixl_event_consumer_drop(text),
				pixl_events_claim(text, int, interval), pixl_events_ack(text, bigint[]),
				pixl_events_nack(text, bigint[], interval, text),
				pixl_event_dead_letters_retry(text, bigint[]),
				pixl_event_dead_letters_purge(text, bigint[])
				TO %I;
			GRANT SELECT ON pixl_events, pixl_event_dead_letters, pixl_event_consumer_status TO %I$g$, r, r);
	END LOOP;
END
$$;

-- the partitions of today and the coming days exist before the test's
-- events (no row of the test moves out of the default partition); the
-- worker's run may hold maintenance's lock: until ours (or its) has made them
DO $$
BEGIN
	FOR i IN 1 .. 100 LOOP
		PERFORM pixl_events_maintenance();
		EXIT WHEN to_regclass('pixl_events_' || to_char((now() AT TIME ZONE 'UTC')::date + 1, 'YYYYMMDD')) IS NOT NULL;
		PERFORM pg_sleep(0.1);
	END LOOP;
END
$$;

------------------------------------------------------------------------------
-- The signature: the Standard Webhooks reference vector (the libraries'
-- test_sign_function), with and without the whsec_ prefix, and against
-- pgcrypto's HMAC for other inputs
------------------------------------------------------------------------------
SELECT pixl_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek',
							  1614265330, '{"test": 2432232314}') AS reference,
	   pixl_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek',
							  1614265330, '{"test": 2432232314}')
		 = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' AS matches_spec,
	   pixl_webhook_signature('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek',
							  1614265330, '{"test": 2432232314}')
		 = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' AS without_prefix;
-- any change of id, time, body or key changes it
SELECT count(DISTINCT s) AS distinct_signatures
  FROM (VALUES (pixl_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}')),
			   (pixl_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJeK', 1614265330, '{"test": 2432232314}')),
			   (pixl_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265331, '{"test": 2432232314}')),
			   (pixl_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test":2432232314}')),
			   (pixl_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'))) v(s);
SELECT count(*) AS inputs,
	   count(*) FILTER (WHERE pixl_webhook_signature('whsec_' || replace(encode(k, 'base64'), E'\n', ''), id, ts, body)
						 = 'v1,' || encode(hmac(convert_to(id || '.' || ts || '.' || body, 'UTF8'), k, 'sha256'), 'base64')) AS same_as_pgcrypto
  FROM (SELECT gen_random_bytes(24 + i % 41) AS k, 'evt_' || i AS id, 1700000000 + i * 7919 AS ts,
			   repeat('{"é": "x"}', i) AS body
		  FROM generate_series(0, 99) i) v;
-- bad input: its own SQLSTATE, and never the secret in the message
SELECT * FROM pg_temp.err($$SELECT pixl_webhook_signature('whsec_not*base64!', 'm', 1, 'p')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_webhook_signature('whsec_c2hvcnQ=', 'm', 1, 'p')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_webhook_signature('whsec_', 'm', 1, 'p')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_webhook_signature(NULL, 'm', 1, 'p')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'm', 1, NULL)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', '', 1, 'p')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'm', -1, 'p')$$);

------------------------------------------------------------------------------
-- Consumers: who may create which
------------------------------------------------------------------------------
SELECT pixl_set_store_plan('ev-a', 'growth'), pixl_set_store_plan('ev-b', 'growth');
SELECT pixl_grant_store('regress_ev_a', 'ev-a'), pixl_grant_store('regress_ev_b', 'ev-b');
SELECT pixl_event_consumer_create('ev-all');
SET ROLE regress_ev_a;
SELECT pixl_event_consumer_create('ev-a-hooks', 'ev-a', max_attempts => 3);
SELECT * FROM pg_temp.err($$SELECT pixl_event_consumer_create('ev-a-everything')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_event_consumer_create('ev-b-stolen', 'ev-b')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_event_consumer_create('Bad Name', 'ev-a')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_event_consumer_create('ev-a-hooks', 'ev-a')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_event_consumer_create('ev-a-zero', 'ev-a', max_attempts => 0)$$);
RESET ROLE;
SET ROLE regress_ev_b;
SELECT pixl_event_consumer_create('ev-b-hooks', 'ev-b');
RESET ROLE;
SELECT consumer, store_id, max_attempts, ready, leased, dead FROM pixl_event_consumer_status
 WHERE consumer LIKE 'ev-%' ORDER BY 1;

------------------------------------------------------------------------------
-- One event per audited change, in the change's transaction
------------------------------------------------------------------------------
SELECT max(audit_id) AS audit_start FROM pixl_audit \gset
SET ROLE regress_ev_a;
SELECT token_id AS a1 FROM pixl_create_token('ev-a', 'Events A', ARRAY['orders:read'], metadata => '{"customer": "acme"}') \gset
RESET ROLE;
SELECT token_id AS b1 FROM pixl_create_token('ev-b', 'Events B', ARRAY['orders:read']) \gset
-- a change that rolls back leaves no audit row, no event and no delivery
BEGIN;
SELECT count(*) AS created FROM pixl_create_token('ev-a', 'Rolled back', ARRAY['orders:read']);
SELECT count(*) AS events_inside FROM pixl_events WHERE event_id > :audit_start;
ROLLBACK;
SELECT (SELECT count(*) FROM pixl_audit WHERE audit_id > :audit_start) AS audit_rows,
	   (SELECT count(*) FROM pixl_events WHERE event_id > :audit_start) AS events,
	   (SELECT count(*) FROM pixl_audit a JOIN pixl_events e ON e.event_id = a.audit_id AND e.occurred_at = a.at
		 WHERE a.audit_id > :audit_start
		   AND e.type = CASE WHEN a.token_id IS NOT NULL THEN 'token.' ELSE 'store.' END || pixl_event_name(a.action)
		   AND e.store_id = a.store_id AND e.token_id IS NOT DISTINCT FROM a.token_id) AS matching;
-- the payload: thin, Standard Webhooks shaped, no metadata, no secret
SELECT e.type, e.webhook_id ~ '^evt_[0-9a-f]{32}$' AS webhook_id_ok,
	   jsonb_object_keys(e.payload) AS payload_keys,
	   e.payload->>'timestamp' = to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ts_ok
  FROM pixl_events e WHERE e.token_id = :'a1' ORDER BY 3;
SELECT (e.payload->'data') - 'token_id'::text - 'hint'::text AS data,
	   e.payload->'data'->>'token_id' = :'a1' AS token_ok,
	   e.payload->'data'->>'hint' ~ '^sk_live_…' AS hint_only,
	   pixl_looks_like_secret(e.payload::text) AS has_secret
  FROM pixl_events e WHERE e.token_id = :'a1';
-- deliveries: the all-stores consumer gets both, each store's its own
SELECT c.name, string_agg(e.store_id || ':' || e.type, ', ' ORDER BY d.event_id) AS events
  FROM pixl_event_deliveries d
  JOIN pixl_event_consumers c USING (consumer_id)
  JOIN pixl_events e ON e.event_id = d.event_id
 WHERE d.event_id > :audit_start AND c.name LIKE 'ev-%'
 GROUP BY 1 ORDER BY 1;
-- 1.1's pixl_events_since is unchanged
SELECT action, store_id FROM pixl_events_since(:audit_start) WHERE store_id LIKE 'ev-%' ORDER BY audit_id;

------------------------------------------------------------------------------
-- Claim, lease, ack; store isolation
------------------------------------------------------------------------------
SET ROLE regress_ev_a;
-- only its stores' events, in pixl_events too
SELECT DISTINCT store_id FROM pixl_events WHERE event_id > :audit_start ORDER BY 1;
CREATE TEMP TABLE a_claim AS SELECT * FROM pixl_events_claim('ev-a-hooks', 10, '1 hour');
SELECT type, store_id, attempt, body::jsonb->>'type' = type AS body_ok,
	   body::jsonb = (SELECT e.payload FROM pixl_events e WHERE e.event_id = a_claim.event_id) AS body_is_payload
  FROM a_claim;
-- leased: nothing more to claim
SELECT count(*) AS again FROM pixl_events_claim('ev-a-hooks', 10, '1 hour');
SELECT ready, leased FROM pixl_event_consumer_status;
-- another store's consumer and an unknown one answer alike
SELECT * FROM pg_temp.err($$SELECT * FROM pixl_events_claim('ev-b-hooks')$$);
SELECT * FROM pg_temp.err($$SELECT * FROM pixl_events_claim('ev-nobody')$$);
SELECT * FROM pg_temp.err($$SELECT * FROM pixl_events_claim('ev-all')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_events_ack('ev-b-hooks', ARRAY[1::bigint])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_event_consumer_drop('ev-b-hooks')$$);
-- bad arguments
SELECT * FROM pg_temp.err($$SELECT * FROM pixl_events_claim('ev-a-hooks', 0)$$);
SELECT * FROM pg_temp.err($$SELECT * FROM pixl_events_claim('ev-a-hooks', 10, '0')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_events_ack('ev-a-hooks', NULL)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_events_ack('ev-a-hooks', ARRAY[NULL::bigint])$$);
SELECT * FROM pg_temp.err($$SELECT pixl_events_nack('ev-a-hooks', ARRAY[1::bigint], '-1 s')$$);
SELECT pixl_events_ack('ev-a-hooks', array_agg(event_id)) AS acked FROM a_claim;
SELECT pixl_events_ack('ev-a-hooks', array_agg(event_id)) AS acked_again FROM a_claim;
SELECT ready, leased FROM pixl_event_consumer_status;
RESET ROLE;
SET ROLE regress_ev_b;
SELECT type, store_id, attempt FROM pixl_events_claim('ev-b-hooks', 10, '1 hour');
RESET ROLE;
SELECT consumer, ready, leased, dead FROM pixl_event_consumer_status WHERE consumer LIKE 'ev-%' ORDER BY 1;

------------------------------------------------------------------------------
-- A lease that runs out: the same event again, attempt 2, same webhook-id;
-- a release (nack) makes it claimable at once with its error
------------------------------------------------------------------------------
SET ROLE regress_ev_a;
SELECT pixl_revoke_token(:'a1');
SELECT event_id AS revoked_event, webhook_id AS revoked_webhook_id, attempt
  FROM pixl_events_claim('ev-a-hooks', 10, '1 second') \gset
SELECT :attempt AS first_attempt;
SELECT count(*) AS while_leased FROM pixl_events_claim('ev-a-hooks', 10, '1 second');
SELECT pg_sleep(1.2);
SELECT event_id = :revoked_event AS same_event, webhook_id = :'revoked_webhook_id' AS same_webhook_id, attempt
  FROM pixl_events_claim('ev-a-hooks', 10, '1 hour');
SELECT pixl_events_nack('ev-a-hooks', ARRAY[:revoked_event::bigint], '0', 'HTTP 503 from https://example.test/hook');
SELECT attempt, type FROM pixl_events_claim('ev-a-hooks', 10, '100 ms');
-- max_attempts 3 reached: once the lease runs out it is a dead letter
SELECT pg_sleep(0.3);
SELECT count(*) AS claimed_after_max FROM pixl_events_claim('ev-a-hooks', 10, '1 hour');
SELECT consumer, type, attempts, last_error, dead_at IS NOT NULL AS dead,
	   webhook_id = :'revoked_webhook_id' AS same_webhook_id
  FROM pixl_event_dead_letters;
SELECT ready, leased, dead FROM pixl_event_consumer_status;
RESET ROLE;
-- store B's admin does not see store A's dead letters
SET ROLE regress_ev_b;
SELECT count(*) AS b_sees FROM pixl_event_dead_letters;
SELECT * FROM pg_temp.err(format('SELECT pixl_event_dead_letters_retry(%L)', 'ev-a-hooks'));
RESET ROLE;
-- retried: claimable again from attempt 1; purged: gone
SET ROLE regress_ev_a;
SELECT pixl_event_dead_letters_retry('ev-a-hooks') AS retried;
SELECT type, attempt FROM pixl_events_claim('ev-a-hooks', 10, '10 ms');
SELECT pg_sleep(0.05);
SELECT type, attempt FROM pixl_events_claim('ev-a-hooks', 10, '10 ms');
SELECT pg_sleep(0.05);
SELECT type, attempt FROM pixl_events_claim('ev-a-hooks', 10, '10 ms');
SELECT pg_sleep(0.05);
SELECT count(*) AS none_left FROM pixl_events_claim('ev-a-hooks');
SELECT count(*) AS dead_again FROM pixl_event_dead_letters;
SELECT pixl_event_dead_letters_purge('ev-a-hooks', ARRAY[0::bigint]) AS purged_none,
	   pixl_event_dead_letters_purge('ev-a-hooks') AS purged;
SELECT ready, leased, dead FROM pixl_event_consumer_status;
RESET ROLE;

------------------------------------------------------------------------------
-- A consumer that dies mid-batch: what it acknowledged is done, the rest
-- comes back once after the lease, nothing twice within a lease
------------------------------------------------------------------------------
SELECT pixl_event_consumer_create('ev-batch', 'ev-b');
SELECT count(*) AS tokens FROM generate_series(1, 5) i,
	   pixl_create_token('ev-b', 'Batch ' || i, ARRAY['orders:read']);
CREATE TEMP TABLE batch AS SELECT * FROM pixl_events_claim('ev-batch', 10, '2 seconds');
SELECT count(*) AS claimed, min(attempt), max(attempt) FROM batch;
-- acknowledged two, then "died"
SELECT pixl_events_ack('ev-batch', (SELECT array_agg(event_id ORDER BY event_id) FROM
	(SELECT event_id FROM batch ORDER BY event_id LIMIT 2) x)) AS acked;
SELECT count(*) AS during_lease FROM pixl_events_claim('ev-batch', 10, '1 hour');
SELECT pg_sleep(2.2);
CREATE TEMP TABLE redelivered AS SELECT * FROM pixl_events_claim('ev-batch', 10, '1 hour');
SELECT count(*) AS redelivered, min(attempt), max(attempt),
	   count(*) FILTER (WHERE (event_id, webhook_id) IN (SELECT event_id, webhook_id FROM batch)) AS same_ids,
	   (SELECT count(*) FROM batch) - 2 AS expected
  FROM redelivered;
SELECT pixl_events_ack('ev-batch', (SELECT array_agg(event_id) FROM redelivered)) AS acked;
SELECT count(*) AS nothing_left FROM pixl_events_claim('ev-batch', 10, '10 ms');

------------------------------------------------------------------------------
-- A consumer created later gets later events; replay_from hands it the
-- events kept since then
------------------------------------------------------------------------------
SELECT pixl_event_consumer_create('ev-replay', 'ev-b', replay_from => '-infinity');
SELECT count(*) = (SELECT count(*) FROM pixl_events WHERE store_id = 'ev-b') AS replayed_all
  FROM pixl_events_claim('ev-replay', 1000);
SELECT pixl_event_consumer_drop('ev-replay');
SELECT count(*) AS deliveries_left FROM pixl_event_deliveries d
 WHERE NOT EXISTS (SELECT 1 FROM pixl_event_consumers c WHERE c.consumer_id = d.consumer_id);

------------------------------------------------------------------------------
-- Plan-wide events (no store): platform consumers only
------------------------------------------------------------------------------
SELECT max(event_id) AS before_plan FROM pixl_events \gset
INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens) VALUES ('ev_plan', 10, 10, 5);
UPDATE pixl_plans SET period_quota = 1000 WHERE plan = 'ev_plan';
SELECT type, store_id, token_id FROM pixl_events WHERE event_id > :before_plan;
SELECT c.name FROM pixl_event_deliveries d JOIN pixl_event_consumers c USING (consumer_id)
 WHERE d.event_id > :before_plan ORDER BY 1;
SET ROLE regress_ev_platform;
SELECT type FROM pixl_events_claim('ev-all', 1000) WHERE store_id IS NULL;
RESET ROLE;
DELETE FROM pixl_plans WHERE plan = 'ev_plan';

------------------------------------------------------------------------------
-- Retention: daily partitions ahead, days past pixltoken.event_retention
-- dropped with their deliveries
------------------------------------------------------------------------------
SHOW pixltoken.event_retention;
SELECT pixl_create_event_partition((now() AT TIME ZONE 'UTC')::date - 40) AS made_old;
INSERT INTO pixl_events (event_id, occurred_at, type, store_id, token_id, payload)
VALUES (-1, now() - interval '40 days', 'store.plan_changed', 'ev-b', NULL, '{}');
INSERT INTO pixl_event_deliveries (consumer_id, event_id, occurred_at)
SELECT consumer_id, -1, now() - interval '40 days' FROM pixl_event_consumers WHERE name = 'ev-b-hooks';
-- the worker's run may hold the lock: until ours (or its) has done the work
DO $$
BEGIN
	FOR i IN 1 .. 100 LOOP
		PERFORM pixl_events_maintenance();
		EXIT WHEN to_regclass('pixl_events_' || to_char((now() AT TIME ZONE 'UTC')::date - 40, 'YYYYMMDD')) IS NULL;
		PERFORM pg_sleep(0.1);
	END LOOP;
END
$$;
SELECT to_regclass('pixl_events_' || to_char((now() AT TIME ZONE 'UTC')::date - 40, 'YYYYMMDD')) AS old_partition,
	   (SELECT count(*) FROM pixl_events WHERE event_id = -1) AS old_events,
	   (SELECT count(*) FROM pixl_event_deliveries WHERE event_id = -1) AS old_deliveries;
SELECT count(*) AS days_ahead FROM generate_series(-1, 7) k
 WHERE to_regclass('pixl_events_' || to_char((now() AT TIME ZONE 'UTC')::date + k, 'YYYYMMDD')) IS NOT NULL;
-- the dated partitions are not extension members (pg_dump dumps them) and
-- only the owner reads them; the event rows went there
SELECT count(*) AS members FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
 WHERE d.deptype = 'e' AND c.relname ~ '^pixl_events_[0-9]{8}$';
SELECT has_table_privilege('regress_ev_a', 'pixl_events_' || to_char((now() AT TIME ZONE 'UTC')::date, 'YYYYMMDD'), 'SELECT') AS a_reads_partition;
SELECT count(*) AS test_events_in_default FROM pixl_events_default WHERE store_id LIKE 'ev-%';

-- clean up
SELECT pixl_event_consumer_drop(c) FROM unnest(ARRAY['ev-all', 'ev-a-hooks', 'ev-b-hooks', 'ev-batch']) c;
DROP OWNED BY regress_ev_a, regress_ev_b, regress_ev_platform;
DELETE FROM pixl_store_admins WHERE role_name LIKE 'regress_ev_%';
DROP ROLE regress_ev_a, regress_ev_b, regress_ev_platform;
