-- Usage analytics over known data loaded with pixl_backfill_usage(), and
-- the pipeline end to end (verify -> queue -> worker -> row -> response).
-- Times are relative to now() and only counts are printed, so the output
-- does not depend on when the test runs.
\i test/helpers/setup.sql
-- (this suite runs in the session's own time zone, pg_regress's PST8PDT,
-- and switches to UTC where it says so)
RESET timezone;

SELECT token_id AS tok_a FROM pixl_create_token('usage_store', 'Usage A', ARRAY['products:read']) \gset
SELECT token_id AS tok_b FROM pixl_create_token('usage_store', 'Usage B', ARRAY['products:read']) \gset

-- token A: 11 events from 1 hour to 400 days ago, two of them one minute
-- inside and outside the 7-day window (1.1: from the rollups only, so the
-- window starts at the UTC hour of now() - 7 days)
SELECT pixl_backfill_usage(
	array_fill(:'tok_a'::text, ARRAY[11]),
	ARRAY[now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour',
		  now() - interval '3 hours',
		  now() - interval '30 hours', now() - interval '30 hours',
		  now() - interval '10 days', now() - interval '40 days', now() - interval '400 days',
		  date_trunc('hour', now() - interval '7 days', 'UTC') + interval '1 minute',
		  date_trunc('hour', now() - interval '7 days', 'UTC') - interval '1 minute'],
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

-- daily rollups: closed UTC days are read from pixl_usage_daily, made by
-- maintenance from the hourly rows; events and late responses for days
-- already rolled up go to both.  Every answer stays the one computed from
-- raw events alone (as bench/dashboards.sql does), from the start of the
-- period rounded down to its UTC hour (1.1: the analytics read rollups
-- only), with the percentiles of the raw response times' histogram.
CREATE FUNCTION pg_temp.since(period text) RETURNS timestamptz LANGUAGE sql STABLE AS $$
	SELECT date_trunc('hour', CASE period WHEN 'today' THEN now() - interval '24 hours' WHEN '7d' THEN now() - interval '7 days'
					   WHEN '30d' THEN now() - interval '30 days' WHEN 'year' THEN now() - interval '365 days'
					   ELSE '-infinity'::timestamptz END, 'UTC') $$;
CREATE FUNCTION pg_temp.raw_summary(tok text, period text)
	RETURNS TABLE (total_requests bigint, requests_today bigint, avg_response_ms float8, error_rate float8,
				   p50_ms float8, p95_ms float8, p99_ms float8)
	LANGUAGE sql STABLE AS $$
	SELECT count(*),
		   (SELECT count(*) FROM pixl_usage_events d WHERE d.token_id = tok AND d.at >= pg_temp.since('today')),
		   avg(e.response_ms), 100.0::float8 * count(*) FILTER (WHERE e.status >= 400) / nullif(count(*), 0),
		   pixl_latency_quantile(pixl_latency_of(e.response_ms), 0.5),
		   pixl_latency_quantile(pixl_latency_of(e.response_ms), 0.95),
		   pixl_latency_quantile(pixl_latency_of(e.response_ms), 0.99)
	  FROM pixl_usage_events e WHERE e.token_id = tok AND e.at >= pg_temp.since(period) $$;
CREATE FUNCTION pg_temp.raw_timeline(tok text, period text)
	RETURNS TABLE (bucket timestamptz, requests bigint, errors bigint, p95_ms float8)
	LANGUAGE sql STABLE AS $$
	WITH u AS (SELECT CASE WHEN period IN ('today', '7d') THEN 'hour' WHEN period IN ('30d', 'year') THEN 'day'
						   ELSE 'month' END AS unit),
		 f AS (SELECT date_trunc(u.unit, CASE WHEN period = 'all'
						THEN least((SELECT created_at FROM pixl_token_registry WHERE token_id = tok),
								   (SELECT min(at) FROM pixl_usage_events WHERE token_id = tok))
						ELSE pg_temp.since(period) END) AS first, u.unit FROM u),
		 c AS (SELECT greatest(date_trunc(f.unit, e.at), f.first) AS b, count(*) AS n,
					  count(*) FILTER (WHERE e.status >= 400) AS err,
					  pixl_latency_quantile(pixl_latency_of(e.response_ms), 0.95) AS p95
				 FROM pixl_usage_events e, f
				WHERE e.token_id = tok AND e.at >= pg_temp.since(period) GROUP BY 1)
	SELECT g.b, coalesce(c.n, 0), coalesce(c.err, 0), c.p95
	  FROM f, generate_series(f.first, date_trunc(f.unit, now()), ('1 ' || f.unit)::interval) AS g(b)
	  LEFT JOIN c ON c.b = g.b $$;
CREATE FUNCTION pg_temp.raw_endpoints(tok text, period text)
	RETURNS TABLE (method text, endpoint text, requests bigint, success_rate float8, avg_response_ms float8,
				   p95_ms float8)
	LANGUAGE sql STABLE AS $$
	SELECT e.method, e.endpoint, count(*),
		   100.0::float8 * count(*) FILTER (WHERE e.status < 400) / count(*), avg(e.response_ms),
		   pixl_latency_quantile(pixl_latency_of(e.response_ms), 0.95)
	  FROM pixl_usage_events e WHERE e.token_id = tok AND e.at >= pg_temp.since(period)
	 GROUP BY 1, 2 $$;
-- per period: do summary, timeline and endpoints give the raw answers
-- (numbers to 6 decimals)?
CREATE FUNCTION pg_temp.same_as_raw(tok text)
	RETURNS TABLE (period text, summary boolean, timeline boolean, endpoints boolean)
	LANGUAGE plpgsql AS $$
DECLARE
	f text;
	ok boolean;
BEGIN
	FOREACH period IN ARRAY ARRAY['today', '7d', '30d', 'year', 'all'] LOOP
		FOREACH f IN ARRAY ARRAY['summary', 'timeline', 'endpoints'] LOOP
			EXECUTE format($q$
				WITH a AS MATERIALIZED (SELECT regexp_replace(row(x.*)::text, '(\d+\.\d{6})\d+', '\1', 'g') AS r
										  FROM public.pixl_usage_%1$s(%2$L, %3$L) x),
					 b AS MATERIALIZED (SELECT regexp_replace(row(x.*)::text, '(\d+\.\d{6})\d+', '\1', 'g') AS r
										  FROM pg_temp.raw_%1$s(%2$L, %3$L) x)
				SELECT NOT EXISTS ((SELECT r FROM a EXCEPT ALL SELECT r FROM b)
								   UNION ALL (SELECT r FROM b EXCEPT ALL SELECT r FROM a))$q$,
				f, tok, period) INTO ok;
			CASE f WHEN 'summary' THEN summary := ok; WHEN 'timeline' THEN timeline := ok;
				   ELSE endpoints := ok; END CASE;
		END LOOP;
		RETURN NEXT;
	END LOOP;
END
$$;
-- do token E's daily rows count its raw events of the days before today?
CREATE FUNCTION pg_temp.daily_matches_raw(tok text) RETURNS TABLE (rows_ok boolean, requests_ok boolean, errors_ok boolean, timed_ok boolean)
	LANGUAGE sql AS $$
	SELECT count(*) = (SELECT count(DISTINCT (date_trunc('day', e.at, 'UTC'), e.method, e.endpoint))
						 FROM pixl_usage_events e
						WHERE e.token_id = tok AND e.at < date_trunc('day', now(), 'UTC')),
		   sum(d.requests) = (SELECT count(*) FROM pixl_usage_events e
							   WHERE e.token_id = tok AND e.at < date_trunc('day', now(), 'UTC')),
		   sum(d.errors) = (SELECT count(*) FILTER (WHERE e.status >= 400) FROM pixl_usage_events e
							 WHERE e.token_id = tok AND e.at < date_trunc('day', now(), 'UTC')),
		   sum(d.response_ms_count) = (SELECT count(e.response_ms) FROM pixl_usage_events e
										WHERE e.token_id = tok AND e.at < date_trunc('day', now(), 'UTC'))
	  FROM pixl_usage_daily d WHERE d.token_id = tok $$;
-- is every rolled-up day's daily row the sum of its hourly rows (cost and
-- charged too)?
CREATE FUNCTION pg_temp.daily_ok() RETURNS boolean LANGUAGE sql AS $$
	SELECT NOT EXISTS (
		(SELECT token_id, date_trunc('day', bucket, 'UTC'), method, endpoint,
				sum(requests), sum(errors), sum(response_ms_sum), sum(response_ms_count),
				sum(cost), sum(charged)
		   FROM pixl_usage_hourly
		  WHERE bucket < (SELECT rolled_up_until FROM pixl_usage_daily_state)
		  GROUP BY 1, 2, 3, 4
		 EXCEPT ALL
		 SELECT token_id, bucket, method, endpoint, requests, errors, response_ms_sum, response_ms_count,
				cost, charged
		   FROM pixl_usage_daily)
		UNION ALL
		(SELECT token_id, bucket, method, endpoint, requests, errors, response_ms_sum, response_ms_count,
				cost, charged
		   FROM pixl_usage_daily
		 EXCEPT ALL
		 SELECT token_id, date_trunc('day', bucket, 'UTC'), method, endpoint,
				sum(requests), sum(errors), sum(response_ms_sum), sum(response_ms_count),
				sum(cost), sum(charged)
		   FROM pixl_usage_hourly
		  WHERE bucket < (SELECT rolled_up_until FROM pixl_usage_daily_state)
		  GROUP BY 1, 2, 3, 4)) $$;

-- start from nothing rolled up (as after CREATE EXTENSION), so that the
-- first events below reach the daily rollups through maintenance
SELECT pg_advisory_lock(hashtext('pixltoken maintenance'));	-- no worker run meanwhile
DELETE FROM pixl_usage_daily_state;
DELETE FROM pixl_usage_daily;
SELECT pg_advisory_unlock(hashtext('pixltoken maintenance'));
SELECT token_id AS tok_e FROM pixl_create_token('usage_store', 'Usage E', ARRAY['products:read']) \gset
SELECT date_trunc('day', now(), 'UTC') AS d0 \gset
-- around UTC midnights (the last microsecond of a day, midnight itself),
-- at the edges of the 7d and 30d windows, yesterday and today
SELECT pixl_backfill_usage(
	array_fill(:'tok_e'::text, ARRAY[12]),
	ARRAY[:'d0'::timestamptz - interval '3 days' - interval '1 microsecond',
		  :'d0'::timestamptz - interval '3 days',
		  :'d0'::timestamptz - interval '3 days' + interval '1 second',
		  :'d0'::timestamptz - interval '1 day' + interval '12 hours',
		  :'d0'::timestamptz - interval '1 microsecond',
		  :'d0'::timestamptz,
		  now() - interval '1 minute',
		  now() - interval '7 days' + interval '1 minute',
		  now() - interval '7 days' - interval '1 minute',
		  now() - interval '30 days' + interval '1 minute',
		  :'d0'::timestamptz - interval '20 days' + interval '5 hours',
		  :'d0'::timestamptz - interval '29 days'],
	ARRAY['GET', 'GET', 'POST', 'GET', 'GET', 'GET', 'GET', 'GET', 'GET', 'GET', 'POST', 'GET'],
	ARRAY['/a', '/a', '/b', '/a', '/a', '/c', '/a', '/a', '/b', '/a', '/b', '/c'],
	ARRAY[200, 500, 200, 404, 200, 200, 429, 200, 200, 200, 403, 200],
	ARRAY[10, 20, NULL, 40, 50, 60, NULL, 80, 90, 100, 110, 120]::float8[]) AS loaded;
SELECT * FROM pg_temp.same_as_raw(:'tok_e');	-- hourly rollups only
-- backfilled calls weigh 1 each and were charged to no allowance
SELECT sum(cost) = sum(requests) AS cost_is_requests, sum(charged) AS charged
  FROM pixl_usage_hourly WHERE token_id = :'tok_e';
-- weighted and charged hours, as the worker's fold writes them (a refund
-- of a call folded before can leave an hour's charged negative)
UPDATE pixl_usage_hourly
   SET cost = requests * 7 + extract(hour FROM bucket AT TIME ZONE 'UTC')::int,
	   charged = requests * 5 - extract(day FROM bucket AT TIME ZONE 'UTC')::int
 WHERE token_id = :'tok_e';
CREATE TEMP TABLE tok_e_days AS
SELECT date_trunc('day', bucket, 'UTC') AS day, sum(cost) AS cost, sum(charged) AS charged
  FROM pixl_usage_hourly WHERE token_id = :'tok_e' AND bucket < :'d0' GROUP BY 1;
-- maintenance (this call, or the worker's if it runs at the same moment)
SELECT pg_temp.roll_up() AS rolled_up;
SELECT rolled_up_until = :'d0' AS rolled_up_to_today FROM pixl_usage_daily_state;
-- the daily rows sum cost and charged exactly
SELECT count(*) = (SELECT count(*) FROM tok_e_days) AS every_day,
	   bool_and(d.cost = t.cost AND d.charged = t.charged) AS sums_exact,
	   sum(d.cost) - sum(t.cost) AS cost_diff, sum(d.charged) - sum(t.charged) AS charged_diff
  FROM tok_e_days t
  JOIN (SELECT bucket, sum(cost) AS cost, sum(charged) AS charged
		  FROM pixl_usage_daily WHERE token_id = :'tok_e' GROUP BY 1) d ON d.bucket = t.day;
SELECT * FROM pg_temp.daily_matches_raw(:'tok_e');
SELECT pg_temp.daily_ok();
SELECT * FROM pg_temp.same_as_raw(:'tok_e');
SET timezone = 'UTC';	-- day and month buckets of the timeline from the daily rollups
SELECT * FROM pg_temp.same_as_raw(:'tok_e');
RESET timezone;
-- events backfilled into days already rolled up, one a new endpoint
SELECT pixl_backfill_usage(
	array_fill(:'tok_e'::text, ARRAY[3]),
	ARRAY[:'d0'::timestamptz - interval '3 days' - interval '2 microseconds',
		  :'d0'::timestamptz - interval '2 days',
		  :'d0'::timestamptz - interval '10 days' + interval '23 hours'],
	ARRAY['GET', 'PUT', 'GET'], ARRAY['/a', '/d', '/c'],
	ARRAY[500, 200, 200], ARRAY[5, 15, 25]::float8[]) AS loaded;
SELECT * FROM pg_temp.daily_matches_raw(:'tok_e');
-- a late response on a rolled-up day (as the worker applies it): a success
-- becomes an error and gets a response time.  The raw row gets it from
-- pixl_apply_responses, the rollups from the verification written out
-- (pixl_write_pending) and its report (pixl_apply_late_responses), once
SELECT pixl_write_pending(ARRAY[request_id], ARRAY[at], ARRAY[token_id],
						  ARRAY[date_trunc('hour', at, 'UTC')], ARRAY[coalesce(method, '')],
						  ARRAY[coalesce(endpoint, '')], ARRAY[verify_status::int])
  FROM pixl_usage_events
 WHERE token_id = :'tok_e' AND at = :'d0'::timestamptz - interval '3 days' + interval '1 second';
SELECT pixl_apply_responses(ARRAY[request_id], ARRAY[at], ARRAY[502], ARRAY[7.5]::float8[]) AS applied,
	   pixl_apply_late_responses(ARRAY[request_id], ARRAY[502], ARRAY[7.5]::float8[]) AS late,
	   pixl_apply_late_responses(ARRAY[request_id], ARRAY[502], ARRAY[7.5]::float8[]) AS late_again
  FROM pixl_usage_events
 WHERE token_id = :'tok_e' AND at = :'d0'::timestamptz - interval '3 days' + interval '1 second';
SELECT * FROM pg_temp.daily_matches_raw(:'tok_e');
SELECT pg_temp.daily_ok();
SELECT * FROM pg_temp.same_as_raw(:'tok_e');
SET timezone = 'UTC';
SELECT * FROM pg_temp.same_as_raw(:'tok_e');
RESET timezone;

-- errors, with their SQLSTATEs
SELECT state, message FROM pg_temp.err(format('SELECT * FROM pixl_usage_summary(%L, %L)', :'tok_a', 'week'));
SELECT state, message FROM pg_temp.err(format('SELECT * FROM pixl_usage_timeline(%L, NULL)', :'tok_a'));
SELECT state, message FROM pg_temp.err(format('SELECT * FROM pixl_usage_endpoints(%L, %L)', :'tok_a', '1y'));
SELECT state, message FROM pg_temp.err('SELECT * FROM pixl_usage_summary(''tok_AAAAAAAAAAAAAAAA'')');
SELECT state, message FROM pg_temp.err('SELECT * FROM pixl_recent_calls(''tok_AAAAAAAAAAAAAAAA'')');
SELECT state, message FROM pg_temp.err(format('SELECT * FROM pixl_recent_calls(%L, 99)', :'tok_a'));
SELECT state, message FROM pg_temp.err(format('SELECT * FROM pixl_recent_calls(%L, NULL, 0)', :'tok_a'));
SELECT state, message FROM pg_temp.err(format('SELECT pixl_backfill_usage(ARRAY[%L], ARRAY[now(), now()])', :'tok_a'));
SELECT state, message FROM pg_temp.err(format('SELECT pixl_backfill_usage(ARRAY[%L], ARRAY[now()], statuses => ARRAY[700])', :'tok_a'));
SELECT state, message FROM pg_temp.err(format('SELECT pixl_backfill_usage(ARRAY[%L], ARRAY[now()], response_ms => ARRAY[-5])', :'tok_a'));
SELECT state, message FROM pg_temp.err('SELECT pixl_backfill_usage(ARRAY[''tok_AAAAAAAAAAAAAAAA''], ARRAY[now()])');

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
-- (an IPv4-mapped address is recorded as the IPv4 address it stands for)
SELECT status, request_id AS rid1 FROM pixl_verify_request(:'secret_d', 'orders:write', NULL, 'POST', '/orders', '::ffff:192.0.2.7') \gset
SELECT status, request_id AS rid2 FROM pixl_verify_request(:'secret_d', 'products:write', NULL, 'PUT', '/products/1') \gset
-- 1.1 request ids are opaque text
SELECT :'rid2' <> :'rid1' AS ids_differ,
	   :'rid1' !~ '^[0-9]+$' AS not_a_plain_number;
-- bad arguments of the text form
SELECT state, message FROM pg_temp.err(format('SELECT pixl_log_response(%L, 99, 1)', :'rid1'));
SELECT state, message FROM pg_temp.err(format('SELECT pixl_log_response(%L, 600, 1)', :'rid1'));
SELECT state, message FROM pg_temp.err(format('SELECT pixl_log_response(%L, 200, -1)', :'rid1'));
SELECT state, message FROM pg_temp.err(format('SELECT pixl_log_response(%L, 200, ''NaN'')', :'rid1'));
SELECT state, message FROM pg_temp.err(format('SELECT pixl_log_response(%L, 200, ''Infinity'')', :'rid1'));
SELECT state, message FROM pg_temp.err('SELECT pixl_log_response(''0'', 200, 1)');
SELECT state, message FROM pg_temp.err('SELECT pixl_log_response(NULL, 200, 1)');
-- a 401 is not counted
SELECT status, reason FROM pixl_verify_request('sk_live_' || repeat('A', 38), 'orders:write');
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
SELECT pixl_log_response(:'rid1', 201, 12.5);
SELECT pixl_log_response(:'rid2', 403, 3);
SELECT pg_temp.wait_for(format('SELECT count(*) = 2 FROM pixl_recent_calls(%L) WHERE response_ms IS NOT NULL', :'tok_d')) AS responded;
SELECT method, endpoint, status, ip, response_ms FROM pixl_recent_calls(:'tok_d');
-- a second report of a request is refused (PX068): the first counts, once
-- (request ids, 32 or 16 hex digits, are masked in the messages)
\set hexid '[0-9a-f]{32}|[0-9a-f]{16}'
SELECT state, message FROM pg_temp.err(format('SELECT pixl_log_response(%L, 502, 100)', :'rid1'), :'hexid');
SELECT pg_temp.wait_for(format('SELECT sum(response_ms_count) = 2 FROM pixl_usage_hourly WHERE token_id = %L', :'tok_d')) AS counted;
SELECT state, message FROM pg_temp.err(format('SELECT pixl_log_response(%L, 201, 12.5)', :'rid1'), :'hexid');
SELECT total_requests, round(avg_response_ms::numeric, 2) AS avg_ms, error_rate FROM pixl_usage_summary(:'tok_d', 'all');
SELECT method, endpoint, requests, success_rate, avg_response_ms FROM pixl_usage_endpoints(:'tok_d', 'year');
SELECT method, endpoint, status, response_ms FROM pixl_recent_calls(:'tok_d');

-- the batched form: all checked first, then all counted; a forged id, a
-- request reported before, or one twice in the arrays: an error, nothing
-- counted (the good ids can be reported after)
SELECT request_id AS rid3 FROM pixl_verify_request(:'secret_d', 'orders:write', NULL, 'GET', '/orders/3') \gset
SELECT request_id AS rid4 FROM pixl_verify_request(:'secret_d', 'orders:write', NULL, 'GET', '/orders/4') \gset
SELECT state, message FROM pg_temp.err(format('SELECT pixl_log_responses(ARRAY[%L, %L], ARRAY[500, 500], ARRAY[1, 1])',
							 :'rid3', '0123456789abcdef0123456789abcdef'), :'hexid');
SELECT state, message FROM pg_temp.err(format('SELECT pixl_log_responses(ARRAY[%L, %L], ARRAY[500, 500], ARRAY[1, 1])',
							 :'rid3', :'rid1'), :'hexid');
SELECT state, message FROM pg_temp.err(format('SELECT pixl_log_responses(ARRAY[%L, %L, %L], ARRAY[500, 500, 500], ARRAY[1, 1, 1])',
							 :'rid3', :'rid4', :'rid3'), :'hexid');
-- an id of this cluster's shape that it never made: forged
SELECT state, message FROM pg_temp.err(format('SELECT pixl_log_response(%L, 500, 1)',
							 left(:'rid3', 16) || repeat('0', 16)), :'hexid');
SELECT pixl_log_responses(ARRAY[:'rid3', :'rid4'], ARRAY[500, 200], ARRAY[30, 10]) AS counted;
SELECT state, message FROM pg_temp.err(format('SELECT pixl_log_responses(ARRAY[%L], ARRAY[500], ARRAY[1])', :'rid4'), :'hexid');
SELECT pg_temp.wait_for(format('SELECT sum(response_ms_count) = 4 FROM pixl_usage_hourly WHERE token_id = %L', :'tok_d')) AS counted;
SELECT total_requests, round(avg_response_ms::numeric, 2) AS avg_ms, error_rate FROM pixl_usage_summary(:'tok_d', 'all');
SELECT method, endpoint, requests, success_rate, avg_response_ms FROM pixl_usage_endpoints(:'tok_d', 'year');
SELECT pg_typeof(pixl_log_responses('{}', '{}', '{}')) AS counted_type;

-- 1.0's result type: pixl_verify_token hands out sealed bigint ids (a
-- keyed permutation, not the clock: neighbours are far apart), which
-- pixl_log_response(bigint, ...) takes, single or in 1.0's batch form, with
-- the text form's rules: counted once, a second report refused (PX068),
-- and anything this cluster did not hand out refused (PX032)
SELECT request_id AS rid5 FROM pixl_verify_token(:'secret_d', 'orders:write', NULL, 'GET', '/orders/5') \gset
SELECT request_id AS rid6 FROM pixl_verify_token(:'secret_d', 'orders:write', NULL, 'GET', '/orders/6') \gset
SELECT pg_typeof(:rid5::bigint) AS id_type, :rid5 > 0 AND :rid6 > 0 AS positive,
	   abs(:rid6::numeric - :rid5::numeric) > 1e12 AS not_a_clock;
-- (numbers of 6 digits or more, the sealed ids, are masked in the messages)
\set longnum '-?[0-9]{6,}'
SELECT e.state, e.message
  FROM unnest(ARRAY[:rid5 - 1, :rid5 + 1, :rid6 # 1024, 1, 0, -1, 9223372036854775807]) WITH ORDINALITY AS f(g, n),
	   LATERAL pg_temp.err(format('SELECT pixl_log_response(%s::bigint, 200, 1)', f.g), :'longnum') e
 ORDER BY f.n;
SELECT pixl_log_response(:rid5::bigint, 404, 7);
SELECT state, message FROM pg_temp.err(format('SELECT pixl_log_response(%s::bigint, 200, 1)', :rid5), :'longnum');
SELECT pixl_log_response(u.id, u.st, u.ms)
  FROM unnest(ARRAY[:rid6]::bigint[], ARRAY[200], ARRAY[9]::float8[]) AS u(id, st, ms);
-- an untyped string of the id (node-postgres sends int8 values so) reaches
-- the text form, which takes the digits of a sealed id too, with the same
-- rules
SELECT request_id AS rid7 FROM pixl_verify_token(:'secret_d', 'orders:write', NULL, 'GET', '/orders/7') \gset
SELECT pixl_log_response(:'rid7', 201, 5);
SELECT state, message FROM pg_temp.err(format('SELECT pixl_log_response(%L, 200, 1)', :'rid7'), :'longnum');
SELECT e.state, e.message
  FROM unnest(ARRAY[(:rid7 - 1)::text, '0', '99999999999999999999', '-5']) WITH ORDINALITY AS f(g, n),
	   LATERAL pg_temp.err(format('SELECT pixl_log_response(%L, 200, 1)', f.g), :'longnum') e
 ORDER BY f.n;
SELECT pg_temp.wait_for(format('SELECT sum(response_ms_count) = 7 FROM pixl_usage_hourly WHERE token_id = %L', :'tok_d')) AS counted;
SELECT pg_temp.wait_for(format('SELECT count(*) = 3 FROM pixl_recent_calls(%L) WHERE endpoint IN (%L, %L, %L) AND response_ms IS NOT NULL',
							   :'tok_d', '/orders/5', '/orders/6', '/orders/7')) AS responded;
SELECT method, endpoint, status, response_ms FROM pixl_recent_calls(:'tok_d')
 WHERE endpoint IN ('/orders/5', '/orders/6', '/orders/7') ORDER BY endpoint;
SELECT total_requests, round(avg_response_ms::numeric, 2) AS avg_ms, error_rate FROM pixl_usage_summary(:'tok_d', 'all');
-- the worker folded each verification's cost (1: no cost given) and what
-- it charged (no allowance: nothing)
SELECT pg_temp.wait_for(format('SELECT sum(requests) = 7 FROM pixl_usage_hourly WHERE token_id = %L', :'tok_d')) AS folded;
SELECT sum(requests) AS requests, sum(cost) AS cost, sum(charged) AS charged
  FROM pixl_usage_hourly WHERE token_id = :'tok_d';

-- pixl_stats: one row per served database and one for the others
SELECT datname IS NULL AS others, worker_state FROM pixl_stats()
 WHERE datname IS NULL OR datname = current_database() ORDER BY 1;
SELECT events_flushed >= 2 AS counted, counts_folded >= 2 AS folded,
       events_written_through + events_waited = 0 AS never_blocked
  FROM pixl_stats() WHERE datname = current_database();
SELECT pg_temp.wait_for('SELECT events_queued = 0 FROM pixl_stats() WHERE datname = current_database()') AS drained;

-- nothing for PUBLIC
SELECT count(*) FROM information_schema.role_table_grants
 WHERE grantee = 'PUBLIC' AND table_name LIKE 'pixl_usage%';
SELECT p.proname FROM pg_proc p
 WHERE p.proname IN ('pixl_usage_summary', 'pixl_usage_timeline', 'pixl_usage_endpoints',
					 'pixl_recent_calls', 'pixl_log_response', 'pixl_stats',
					 'pixl_backfill_usage', 'pixl_run_maintenance')
   AND has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY 1;
