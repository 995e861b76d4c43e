-- Dashboard views (schema/code/70_dashboards.sql) over known usage
-- loaded with pixl_backfill_usage(): every event counted once whichever
-- rollup it comes from, the same totals as the analytics functions, token
-- names and stores joined in, no raw events read, nothing for PUBLIC.
\i test/helpers/setup.sql

SELECT pixl_set_store_plan('dash_a', 'growth');
SELECT token_id AS tok_a1 FROM pixl_create_token('dash_a', 'Dash A1', ARRAY['products:read']) \gset
SELECT token_id AS tok_a2 FROM pixl_create_token('dash_a', 'Dash A2', ARRAY['orders:read']) \gset
SELECT token_id AS tok_b FROM pixl_create_token('dash_b', 'Dash B', ARRAY['orders:read']) \gset

-- 12 events: 5 days ago (A1 twice in one hour), 2 days ago, and today
-- (a second ago: so the days do not depend on when the test runs)
SELECT date_trunc('day', now(), 'UTC') AS today \gset
SELECT pixl_backfill_usage(
	ARRAY[:'tok_a1', :'tok_a1', :'tok_a1', :'tok_a1', :'tok_a1', :'tok_a2',
		  :'tok_a2', :'tok_a2', :'tok_b', :'tok_b', :'tok_b', :'tok_b'],
	ARRAY[:'today'::timestamptz - interval '5 days' + interval '1 hour',
		  :'today'::timestamptz - interval '5 days' + interval '1 hour',
		  :'today'::timestamptz - interval '2 days' + interval '12 hours',
		  now() - interval '1 second', now() - interval '1 second',
		  :'today'::timestamptz - interval '5 days' + interval '2 hours',
		  :'today'::timestamptz - interval '2 days' + interval '12 hours',
		  now() - interval '1 second',
		  :'today'::timestamptz - interval '5 days' + interval '3 hours',
		  :'today'::timestamptz - interval '2 days' + interval '12 hours',
		  :'today'::timestamptz - interval '2 days' + interval '13 hours',
		  now() - interval '1 second'],
	ARRAY['GET', 'GET', 'GET', 'POST', 'GET', 'GET', 'GET', 'GET', 'GET', 'GET', 'DELETE', 'GET'],
	ARRAY['/products', '/products', '/products', '/products', '/products', '/orders',
		  '/orders', '/orders', '/orders', '/orders', '/orders', '/orders'],
	ARRAY[200, 500, 200, 201, 404, 200, 429, 200, 200, 403, 200, 200],
	ARRAY[10, 30, 20, 40, NULL, 5, 1, 3, 100, 2, 4, NULL]::float8[]) AS loaded;
-- roll the closed days up: the day view then reads pixl_usage_daily for
-- them and the hourly rollups for today
SELECT pg_temp.roll_up() AS maintenance_ran;
SELECT rolled_up_until = :'today' AS rolled_up_to_today FROM pixl_usage_daily_state;

-- every event once, in both views
SELECT (SELECT sum(requests) FROM pixl_usage_by_hour WHERE store_id LIKE 'dash_%') AS by_hour,
	   (SELECT sum(requests) FROM pixl_usage_by_day WHERE store_id LIKE 'dash_%') AS by_day,
	   (SELECT sum(requests) FROM pixl_usage_by_store WHERE store_id LIKE 'dash_%') AS by_store;

-- the one 429, once in each view
SELECT (SELECT sum(rate_limited) FROM pixl_usage_by_hour WHERE store_id LIKE 'dash_%') AS by_hour,
	   (SELECT sum(rate_limited) FROM pixl_usage_by_day WHERE store_id LIKE 'dash_%') AS by_day,
	   (SELECT sum(rate_limited) FROM pixl_usage_by_store WHERE store_id LIKE 'dash_%') AS by_store;

-- one stitching of the rollups for every read path: pixl_usage_rows (what
-- pixl_usage_summary, _timeline and _endpoints read) has the views' figures,
-- the rate-limited requests too.  Per token over all time: A1 5 requests, 2
-- errors (500, 404); A2 3 requests, 1 error and 1 rate-limited (its 429, on
-- a rolled-up day); B 4 requests, 1 error (403)
SELECT t.name AS token_name, sum(u.requests) AS requests, sum(u.errors) AS errors,
	   sum(u.rate_limited) AS rate_limited
  FROM pixl_tokens t CROSS JOIN LATERAL pixl_usage_rows(t.token_id, '-infinity') u
 WHERE t.store_id LIKE 'dash_%'
 GROUP BY t.name ORDER BY 1;
-- and per token and UTC day, no day differs from pixl_usage_by_day's
SELECT count(*) AS days_that_differ
  FROM (SELECT t.token_id, date_trunc('day', u.bucket, 'UTC') AS day, sum(u.requests) AS r,
			   sum(u.errors) AS e, sum(u.rate_limited) AS rl
		  FROM pixl_tokens t CROSS JOIN LATERAL pixl_usage_rows(t.token_id, '-infinity') u
		 WHERE t.store_id LIKE 'dash_%' GROUP BY 1, 2) u
  FULL JOIN (SELECT token_id, bucket AS day, sum(requests) AS r, sum(errors) AS e,
					sum(rate_limited) AS rl
			   FROM pixl_usage_by_day WHERE store_id LIKE 'dash_%' GROUP BY 1, 2) d
	USING (token_id, day)
 WHERE (u.r, u.e, u.rl) IS DISTINCT FROM (d.r, d.e, d.rl);

-- per token, over all time: the same numbers as pixl_usage_summary('all')
SELECT d.store_id, d.token_name, sum(d.requests) AS requests, sum(d.errors) AS errors,
	   round((sum(d.response_ms_sum) / sum(d.response_ms_count))::numeric, 2) AS avg_ms,
	   round((100.0 * sum(d.errors) / sum(d.requests))::numeric, 2) AS error_rate,
	   s.total_requests = sum(d.requests)
		 AND round(s.avg_response_ms::numeric, 2) = round((sum(d.response_ms_sum) / sum(d.response_ms_count))::numeric, 2)
		 AND round(s.error_rate::numeric, 2) = round((100.0 * sum(d.errors) / sum(d.requests))::numeric, 2)
		 AS same_as_summary
  FROM pixl_usage_by_day d
  CROSS JOIN LATERAL pixl_usage_summary(d.token_id, 'all') s
 WHERE d.store_id LIKE 'dash_%'
 GROUP BY d.store_id, d.token_name, d.token_id, s.total_requests, s.avg_response_ms, s.error_rate
 ORDER BY 1, 2;

-- per store and day (days relative to today)
SELECT store_id, :'today'::timestamptz - bucket AS days_ago, tokens_used, requests, errors,
	   round(avg_response_ms::numeric, 2) AS avg_ms, round(error_rate::numeric, 2) AS error_rate
  FROM pixl_usage_by_store WHERE store_id LIKE 'dash_%' ORDER BY 1, 2 DESC;

-- per method and endpoint, today, from the hourly view
SELECT store_id, method, endpoint, sum(requests) AS requests, sum(errors) AS errors
  FROM pixl_usage_by_hour
 WHERE store_id LIKE 'dash_%' AND bucket >= :'today'
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

-- one hour of A1 five days ago: two events on one hourly row
SELECT token_name, requests, errors, avg_response_ms, error_rate
  FROM pixl_usage_by_hour
 WHERE token_id = :'tok_a1' AND bucket = :'today'::timestamptz - interval '5 days' + interval '1 hour';

-- no view reads raw events
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; p text := '';
BEGIN
	FOR r IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP p := p || r || E'\n'; END LOOP;
	RETURN p;
END $$;
SELECT v, pg_temp.plan_of(format('SELECT * FROM %I WHERE bucket >= now() - interval ''30 days''', v))
		  LIKE '%pixl_usage_events%' AS reads_raw_events
  FROM unnest(ARRAY['pixl_usage_by_hour', 'pixl_usage_by_day', 'pixl_usage_by_store']) v;

-- nothing for PUBLIC; a role granted SELECT reads them
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_pixl_dash;
RESET client_min_messages;
CREATE ROLE regress_pixl_dash;
SET ROLE regress_pixl_dash;
SELECT (pg_temp.err('SELECT 1 FROM pixl_usage_by_hour')).state;
SELECT (pg_temp.err('SELECT 1 FROM pixl_usage_by_day')).state;
SELECT (pg_temp.err('SELECT 1 FROM pixl_usage_by_store')).state;
RESET ROLE;
GRANT SELECT ON pixl_usage_by_hour, pixl_usage_by_day, pixl_usage_by_store TO regress_pixl_dash;
SET ROLE regress_pixl_dash;
-- (which rows it sees is pixl_store_visible's business: see security_*.sql)
SELECT (pg_temp.err('SELECT 1 FROM pixl_usage_by_hour')).state;
SELECT (pg_temp.err('SELECT 1 FROM pixl_usage_by_day')).state;
SELECT (pg_temp.err('SELECT 1 FROM pixl_usage_by_store')).state;
RESET ROLE;
REVOKE ALL ON pixl_usage_by_hour, pixl_usage_by_day, pixl_usage_by_store FROM regress_pixl_dash;
DROP ROLE regress_pixl_dash;
