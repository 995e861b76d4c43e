-- Usage analytics over known data loaded with pixl_backfill_usage(), and
-- the pipeline end to end (verify -> queue -> worker -> row -> response).
-- Times are relative to now() and only counts are printed, so the output
-- does not depend on when the test runs.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pixltoken;
RESET client_min_messages;

SELECT token_id AS tok_a FROM pixl_create_token('usage_store', 'Usage A', ARRAY['products:read']) \gset
SELECT token_id AS tok_b FROM pixl_create_token('usage_store', 'Usage B', ARRAY['products:read']) \gset

-- token A: 11 events from 1 hour to 400 days ago, two of them one minute
-- inside and outside the 7-day window (the partial first hour is counted
-- from raw events, the rest from rollups)
SELECT pixl_backfill_usage(
	array_fill(:'tok_a'::text, ARRAY[11]),
	ARRAY[now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour',
		  now() - interval '3 hours',
		  now() - interval '30 hours', now() - interval '30 hours',
		  now() - interval '10 days', now() - interval '40 days', now() - interval '400 days',
		  now() - interval '7 days' + interval '1 minute',
		  now() - interval '7 days' - interval '1 minute'],
	ARRAY['GET', 'GET', 'POST', 'GET', 'GET', 'GET', 'GET', 'GET', 'DELETE', 'GET', 'GET'],
	ARRAY['/products', '/products', '/orders', '/products', '/products', '/customers',
		  '/orders', '/products', '/webhooks', '/edge', '/edge'],
	ARRAY[200, 200, 500, 404, 200, 200, 429, 200, 200, 200, 200],
	ARRAY[10, 20, 30, NULL, 40, NULL, NULL, NULL, NULL, NULL, NULL]::float8[],
	ARRAY['10.0.0.1', '10.0.0.2', '10.0.0.3', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL]::inet[]
) AS loaded;

-- summary per period: total, last 24 h, average response time, error rate
SELECT p.period, s.total_requests, s.requests_today,
	   round(s.avg_response_ms::numeric, 2) AS avg_ms, round(s.error_rate::numeric, 2) AS error_rate
  FROM unnest(ARRAY['today', '7d', '30d', 'year', 'all']) WITH ORDINALITY AS p(period, n),
	   LATERAL pixl_usage_summary(:'tok_a', p.period) s
 ORDER BY p.n;
SELECT total_requests FROM pixl_usage_summary(:'tok_a');	-- default 30d

-- timeline: bucket counts (zero-filled), sums, buckets with requests
SELECT p.period, CASE WHEN p.period <> 'all' THEN count(*) END AS buckets, sum(t.requests) AS requests, sum(t.errors) AS errors,
	   CASE WHEN p.period IN ('today', '7d')
			THEN count(*) FILTER (WHERE t.requests > 0) END AS busy_hours,
	   bool_and(t.requests >= t.errors) AS sane
  FROM unnest(ARRAY['today', '7d', '30d', 'year', 'all']) WITH ORDINALITY AS p(period, n),
	   LATERAL pixl_usage_timeline(:'tok_a', p.period) t
 GROUP BY p.period, p.n
 ORDER BY p.n;
-- hourly buckets are whole hours, consecutive, the last one is this hour
SELECT count(DISTINCT bucket) = count(*) AS distinct_buckets,
	   min(bucket) = date_trunc('hour', now() - interval '24 hours') AS first_ok,
	   max(bucket) = date_trunc('hour', now()) AS last_ok,
	   bool_and(bucket = date_trunc('hour', bucket)) AS whole_hours
  FROM pixl_usage_timeline(:'tok_a', 'today');
-- monthly buckets for all: from the month of the oldest event to this month
SELECT count(*) = 1 + (extract(year FROM date_trunc('month', now())) * 12 + extract(month FROM now()))
				   - (extract(year FROM now() - interval '400 days') * 12
					  + extract(month FROM now() - interval '400 days')) AS months_ok,
	   min(bucket) = date_trunc('month', now() - interval '400 days') AS first_month_ok
  FROM pixl_usage_timeline(:'tok_a', 'all');

-- endpoints: most called first, success rate and average response time
SELECT method, endpoint, requests, round(success_rate::numeric, 2) AS success_rate,
	   round(avg_response_ms::numeric, 2) AS avg_ms
  FROM pixl_usage_endpoints(:'tok_a');
SELECT method, endpoint, requests FROM pixl_usage_endpoints(:'tok_a', 'today');
SELECT method, endpoint, requests FROM pixl_usage_endpoints(:'tok_a', 'all') LIMIT 3;

-- recent calls: newest first, status filter, limit; raw events older than
-- pixltoken.usage_retention (the one of 400 days ago) are in rollups only
SELECT method, endpoint, status, ip, response_ms FROM pixl_recent_calls(:'tok_a', lim => 5);
SELECT method, endpoint, status FROM pixl_recent_calls(:'tok_a', 404);
SELECT count(*) FROM pixl_recent_calls(:'tok_a', 200);
SELECT count(*) FROM pixl_recent_calls(:'tok_a', 302);

-- ties: same time, the later request first
SELECT pixl_backfill_usage(ARRAY[:'tok_b', :'tok_b', :'tok_b']::text[],
	ARRAY[date_trunc('second', now()) - interval '2 hours',
		  date_trunc('second', now()) - interval '2 hours',
		  date_trunc('second', now()) - interval '3 hours'],
	ARRAY['GET', 'GET', 'GET'], ARRAY['/tie-first', '/tie-second', '/older']);
SELECT endpoint, status FROM pixl_recent_calls(:'tok_b');
SELECT total_requests, requests_today, avg_response_ms, error_rate FROM pixl_usage_summary(:'tok_b', 'today');

-- a token without usage: zeros, no averages
SELECT token_id AS tok_c FROM pixl_create_token('usage_store', 'Usage C', ARRAY['products:read']) \gset
SELECT * FROM pixl_usage_summary(:'tok_c', 'all');
SELECT count(*), sum(requests) FROM pixl_usage_timeline(:'tok_c', '7d');
SELECT count(*) FROM pixl_usage_endpoints(:'tok_c');

-- errors, with their SQLSTATEs
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
SELECT pg_temp.err(format('SELECT * FROM pixl_usage_summary(%L, %L)', :'tok_a', 'week'));
SELECT pg_temp.err(format('SELECT * FROM pixl_usage_timeline(%L, NULL)', :'tok_a'));
SELECT pg_temp.err(format('SELECT * FROM pixl_usage_endpoints(%L, %L)', :'tok_a', '1y'));
SELECT pg_temp.err('SELECT * FROM pixl_usage_summary(''tok_AAAAAAAAAAAAAAAA'')');
SELECT pg_temp.err('SELECT * FROM pixl_recent_calls(''tok_AAAAAAAAAAAAAAAA'')');
SELECT pg_temp.err(format('SELECT * FROM pixl_recent_calls(%L, 99)', :'tok_a'));
SELECT pg_temp.err(format('SELECT * FROM pixl_recent_calls(%L, NULL, 0)', :'tok_a'));
SELECT pg_temp.err('SELECT pixl_log_response(1234, 99, 1)');
SELECT pg_temp.err('SELECT pixl_log_response(1234, 600, 1)');
SELECT pg_temp.err('SELECT pixl_log_response(1234, 200, -1)');
SELECT pg_temp.err('SELECT pixl_log_response(1234, 200, ''NaN'')');
SELECT pg_temp.err('SELECT pixl_log_response(1234, 200, ''Infinity'')');
SELECT pg_temp.err('SELECT pixl_log_response(0, 200, 1)');
SELECT pg_temp.err('SELECT pixl_log_response(NULL, 200, 1)');
SELECT pg_temp.err(format('SELECT pixl_backfill_usage(ARRAY[%L], ARRAY[now(), now()])', :'tok_a'));
SELECT pg_temp.err(format('SELECT pixl_backfill_usage(ARRAY[%L], ARRAY[now()], statuses => ARRAY[700])', :'tok_a'));
SELECT pg_temp.err(format('SELECT pixl_backfill_usage(ARRAY[%L], ARRAY[now()], response_ms => ARRAY[-5])', :'tok_a'));
SELECT pg_temp.err('SELECT pixl_backfill_usage(ARRAY[''tok_AAAAAAAAAAAAAAAA''], ARRAY[now()])');

-- usage survives rotation and revocation
SELECT length(pixl_rotate_token(:'tok_a')) > 0 AS rotated;
SELECT pixl_revoke_token(:'tok_a');
SELECT total_requests FROM pixl_usage_summary(:'tok_a', 'all');
SELECT count(*) FROM pixl_recent_calls(:'tok_a');

-- end to end: wait until the worker serves this database (bounded), then
-- verify, see the row arrive, and report its response
DO $$
BEGIN
	FOR i IN 1 .. 600 LOOP
		EXIT WHEN (SELECT worker_state FROM pixl_stats() WHERE datname = current_database()) = 'serving';
		PERFORM pg_sleep(0.1);
	END LOOP;
END
$$;
SELECT worker_state FROM pixl_stats() WHERE datname = current_database();
SELECT token_id AS tok_d, token AS secret_d
  FROM pixl_create_token('usage_store', 'Usage D', ARRAY['orders:write']) \gset
SELECT status, request_id AS rid1 FROM pixl_verify_token(:'secret_d', 'orders:write', NULL, 'POST', '/orders', '192.0.2.7') \gset
SELECT status, request_id AS rid2 FROM pixl_verify_token(:'secret_d', 'products:write', NULL, 'PUT', '/products/1') \gset
SELECT :rid2 > :rid1 AS ids_increase,
	   abs(extract(epoch FROM now() - ('2000-01-01 00:00:00+00'::timestamptz + (:rid1 / 16) * interval '1 microsecond'))) < 60 AS id_carries_time;
-- a 401 is not counted
SELECT status, reason FROM pixl_verify_token('sk_live_' || repeat('A', 38), 'orders:write');
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
SELECT pg_temp.wait_for(format('SELECT count(*) = 2 FROM pixl_recent_calls(%L)', :'tok_d')) AS flushed;
SELECT method, endpoint, status, ip, response_ms FROM pixl_recent_calls(:'tok_d');
SELECT last_used_at IS NOT NULL AS used FROM pixl_tokens WHERE token_id = :'tok_d';
SELECT pixl_log_response(:rid1, 201, 12.5);
SELECT pixl_log_response(:rid2, 403, 3);
SELECT pg_temp.wait_for(format('SELECT count(*) = 2 FROM pixl_recent_calls(%L) WHERE response_ms IS NOT NULL', :'tok_d')) AS responded;
SELECT method, endpoint, status, ip, response_ms FROM pixl_recent_calls(:'tok_d');
-- a late response turning a success into an error moves the rollups too
SELECT pixl_log_response(:rid1, 502, 100);
SELECT pg_temp.wait_for(format('SELECT count(*) = 1 FROM pixl_recent_calls(%L, 502)', :'tok_d')) AS late;
SELECT total_requests, round(avg_response_ms::numeric, 2) AS avg_ms, error_rate FROM pixl_usage_summary(:'tok_d', 'all');
SELECT method, endpoint, requests, success_rate, avg_response_ms FROM pixl_usage_endpoints(:'tok_d', 'year');

-- pixl_stats: one row per served database and one for the others
SELECT datname IS NULL AS others, worker_state FROM pixl_stats()
 WHERE datname IS NULL OR datname = current_database() ORDER BY 1;
SELECT events_flushed + events_written_through >= 2 AS counted, events_queued >= 0 AS queued
  FROM pixl_stats() WHERE datname = current_database();

-- nothing for PUBLIC
SELECT count(*) FROM information_schema.role_table_grants
 WHERE grantee = 'PUBLIC' AND table_name LIKE 'pixl_usage%';
SELECT p.proname FROM pg_proc p
 WHERE p.proname IN ('pixl_usage_summary', 'pixl_usage_timeline', 'pixl_usage_endpoints',
					 'pixl_recent_calls', 'pixl_log_response', 'pixl_stats',
					 'pixl_backfill_usage', 'pixl_run_maintenance')
   AND has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY 1;
