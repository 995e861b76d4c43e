-- Usage keys: the method and endpoint of usage that arrives
-- by other ways than a verification (a standby's batch through
-- pixl_ingest_usage, pixl_backfill_usage) are made the keys a verification
-- makes: the endpoint is its path (query string and fragment dropped) and
-- no secret shape is kept in either.  Verification itself: 031_secrets_in_logs.pl.
\i test/helpers/setup.sql

SELECT pixl_set_store_plan('keys-a', 'pro');
SELECT token_id AS tok, token AS secret
  FROM pixl_create_token('keys-a', 'Keys', ARRAY['orders:read']) \gset

-- A batch made by hand, in 1.1's layout (version 2, which this build still
-- takes: x86-64 records of 344 bytes, counts of 1400; see usage_event.h and
-- usage_aggregate.h), with one event and two counts whose keys carry the
-- secret.
CREATE FUNCTION pg_temp.le(v bigint, n int) RETURNS bytea LANGUAGE sql AS
	$$SELECT decode(string_agg(lpad(to_hex((v >> (8 * i)) & 255), 2, '0'), '' ORDER BY i), 'hex')
		FROM generate_series(0, n - 1) AS i$$;
CREATE FUNCTION pg_temp.str(t text, n int) RETURNS bytea LANGUAGE sql AS
	$$SELECT convert_to(t, 'UTF8') || decode(repeat('00', n - octet_length(convert_to(t, 'UTF8'))), 'hex')$$;
CREATE FUNCTION pg_temp.header(nrec int, ncount int) RETURNS bytea LANGUAGE sql AS
	$$SELECT pg_temp.le(1347963970, 4) || pg_temp.le(2, 4) || pg_temp.le(344, 4) ||
			 pg_temp.le(1400, 4) || pg_temp.le(nrec, 4) || pg_temp.le(ncount, 4)$$;
SELECT (regexp_match(detail, 'records of (\d+) bytes and counts of (\d+) bytes;'))[1:2] AS this_build
  FROM pg_temp.err($$SELECT pixl_ingest_usage(9, 42, 1, 0.5, 'n', pg_temp.le(1347963970, 4) || pg_temp.le(1, 4) || pg_temp.le(0, 16))$$);

SELECT ((extract(epoch FROM now()) - 946684800) * 1000000)::bigint AS at,
	   ((extract(epoch FROM date_trunc('hour', now())) - 946684800) * 1000000)::bigint AS hour \gset
-- kind, padding, request id, time, dbid, status 200, has_ip, previous,
-- counted, token id, method, endpoint, address, padding
SELECT pg_temp.le(1, 4) || pg_temp.le(0, 4) || pg_temp.le(:at * 16 + 9, 8) || pg_temp.le(:at, 8) ||
	   pg_temp.le(0, 4) || pg_temp.le(200, 2) || '\x000001'::bytea ||
	   pg_temp.str(:'tok', 20) || pg_temp.str(left(:'secret', 15), 16) ||
	   pg_temp.str('/v1/orders?key=' || :'secret', 256) || pg_temp.le(0, 18) || pg_temp.le(0, 1) AS event \gset
-- dbid, padding, hour, token id, method, endpoint, padding, entry,
-- requests, errors, rate limited, previous uses, last used, previous last
CREATE FUNCTION pg_temp.count(method text, endpoint text, at bigint, hour bigint) RETURNS bytea
	LANGUAGE sql AS
	$$SELECT pg_temp.le(0, 8) || pg_temp.le(hour, 8) || pg_temp.str((SELECT token_id FROM pixl_tokens WHERE name = 'Keys'), 20) ||
			 pg_temp.str(method, 16) || pg_temp.str(endpoint, 256) || pg_temp.le(0, 4) ||
			 pg_temp.le(0, 8) || pg_temp.le(1, 8) || pg_temp.le(0, 8) || pg_temp.le(0, 8) ||
			 pg_temp.le(0, 8) || pg_temp.le(at, 8) || pg_temp.le(0, 8) ||
			 -- responses, response_errors_up, _down, response_us_sum
			 pg_temp.le(0, 8) || pg_temp.le(0, 8) || pg_temp.le(0, 8) || pg_temp.le(0, 8) ||
			 -- latency histogram (249 uint32 buckets), padding
			 decode(repeat('00', 4 * 249 + 4), 'hex')$$;
SELECT pg_temp.header(1, 2) || :'event'::bytea ||
	   pg_temp.count(left(:'secret', 15), '/v1/orders?key=' || :'secret', :at, :hour) ||
	   pg_temp.count('GET', '/v1/keys/' || :'secret' || '/x#frag', :at, :hour) AS batch \gset
SELECT pixl_ingest_usage(9, 42, 1, 0.5, 'keys', :'batch') AS ingested;

SELECT replace(method, :'secret', '<secret>') AS method, replace(endpoint, :'secret', '<secret>') AS endpoint
  FROM pixl_usage_events WHERE token_id = :'tok';
SELECT replace(method, :'secret', '<secret>') AS method, replace(endpoint, :'secret', '<secret>') AS endpoint,
	   requests
  FROM pixl_usage_hourly WHERE token_id = :'tok' ORDER BY endpoint COLLATE "C";
SELECT count(*) AS dead_letters FROM pixl_usage_dead_letters;

-- pixl_backfill_usage: the same keys
SELECT pixl_backfill_usage(ARRAY[:'tok', :'tok', :'tok'],
						   ARRAY[now() - interval '3 hours', now() - interval '179 minutes', now() - interval '178 minutes'],
						   ARRAY['GET', :'secret', NULL],
						   ARRAY['/a?api_key=' || :'secret', '/b/' || :'secret', NULL]) AS backfilled;
SELECT replace(method, :'secret', '<secret>') AS method, replace(endpoint, :'secret', '<secret>') AS endpoint
  FROM pixl_usage_events WHERE token_id = :'tok' AND at < now() - interval '1 hour' ORDER BY at;
SELECT replace(method, :'secret', '<secret>') AS method, replace(endpoint, :'secret', '<secret>') AS endpoint,
	   sum(requests) AS requests
  FROM pixl_usage_hourly WHERE token_id = :'tok' AND bucket < date_trunc('hour', now() - interval '1 hour')
 GROUP BY 1, 2 ORDER BY 2;
SELECT pixl_backfill_usage(ARRAY[:'tok'], ARRAY[now() - interval '4 hours']) AS backfilled_without_keys;

SELECT count(*) AS rows_with_secret
  FROM (SELECT method, endpoint FROM pixl_usage_events
		UNION ALL SELECT method, endpoint FROM pixl_usage_hourly
		UNION ALL SELECT method, endpoint FROM pixl_usage_daily) u
 WHERE u.method || u.endpoint LIKE '%' || substr(:'secret', 9, 7) || '%';

DELETE FROM pixl_replica_nodes WHERE node_id = 9;
