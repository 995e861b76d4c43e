-- pixl_latency: response-time histograms that merge without loss
-- (src/usage/latency.c, schema/state/30_latency.sql): text form, errors
-- with their SQLSTATEs, quantiles against percentile_disc (exact rank,
-- value within 2^(1/16) - 1 = 4.43 %, 1/32 ms below 1/16 ms), merging
-- (hourly histograms merged = the day's), the parallel (combine,
-- serialize) path, and the rollups and analytics that carry them.
\i test/helpers/setup.sql

------------------------------------------------------------------------------
-- text form
------------------------------------------------------------------------------
SELECT '{}'::pixl_latency AS empty,
	   '{0: 1, 0.0625: 2, 1: 3, 1.09051: 4, 2:5}'::pixl_latency AS some,
	   ' { 1.0905077 :7 , 1.23078e+08:1 } '::pixl_latency AS spaces_and_digits;
SELECT h::text::pixl_latency::text = h::text AS text_round_trip
  FROM (SELECT pixl_latency_of(x / 7.0) AS h FROM generate_series(0, 3000) x) s;
-- binary form (send / recv) through COPY, and back to the same text
CREATE TEMP TABLE lat_bin (h pixl_latency);
INSERT INTO lat_bin VALUES ('{}'), ('{0: 1, 0.0625: 2, 1.09051: 9223372036854775800, 1.23078e+08: 1}'), (NULL);
SELECT current_setting('data_directory') || '/pixl_latency_regress.bin' AS binfile \gset
COPY lat_bin TO :'binfile' (FORMAT binary);
CREATE TEMP TABLE lat_bin2 (h pixl_latency);
COPY lat_bin2 FROM :'binfile' (FORMAT binary);
SELECT h FROM lat_bin2;
-- tampered binary input (a bytea column's file read as pixl_latency: the
-- payload reaches pixl_latency_recv as it is): a bucket past the last,
-- buckets not increasing, a count of 0, a bucket count out of range
CREATE FUNCTION pg_temp.recv_forged(b bytea, f text) RETURNS TABLE (state text, message text, detail text)
	LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('COPY (SELECT %L::bytea) TO %L (FORMAT binary)', b, f);
	RETURN QUERY SELECT e.state, e.message, e.detail FROM pg_temp.err(format('COPY lat_bin2 FROM %L (FORMAT binary)', f)) e;
END
$$;
SELECT r.* FROM (VALUES ('\x00000001012c0000000000000001'::bytea),
						('\x00000002000500000000000000010004000000000000000001'),
						('\x0000000100050000000000000000'), ('\x000001f4')) x(b),
	LATERAL pg_temp.recv_forged(x.b, :'binfile') r;
SELECT count(*) AS nothing_more_loaded FROM lat_bin2;
SELECT pixl_latency_count('{0: 1, 1: 3, 2: 5}'), pixl_latency_count('{}');
SELECT * FROM pixl_latency_buckets('{0: 1, 0.0625: 2, 1: 3, 67108864: 1}');
SELECT pixl_latency_quantiles('{1: 50, 2: 49, 1024: 1}', '{0, 0.5, 0.99, 0.995, 1, NULL}');
SELECT pixl_latency_quantile('{}', 0.5) AS empty_is_null,
	   pixl_latency_quantiles('{}', '{0.5}') AS empty_array_is_null;
-- adding: NULL is no histogram
SELECT pixl_latency_add('{1: 1}'::pixl_latency, '{1: 2, 2: 1}'::pixl_latency) AS sum,
	   pixl_latency_add(NULL::pixl_latency, '{2: 1}'::pixl_latency) AS null_plus,
	   pixl_latency_add('{2: 1}'::pixl_latency, NULL::pixl_latency) AS plus_null,
	   pixl_latency_add(NULL::pixl_latency, NULL::pixl_latency) AS both_null,
	   pixl_latency_add(NULL::pixl_latency, 1.5::float8) AS one_value,
	   pixl_latency_add('{1: 1}'::pixl_latency, NULL::float8) AS no_value,
	   pixl_latency_add('{1: 1}'::pixl_latency, 0.01::float8) AS below_a_sixteenth;
-- aggregates: NULLs skipped, NULL when nothing
SELECT pixl_latency_of(x) FROM (VALUES (NULL::float8), (3), (NULL)) v(x);
SELECT pixl_latency_of(x) IS NULL AS all_null FROM (VALUES (NULL::float8)) v(x);
SELECT pixl_latency_of(x) IS NULL AS no_rows FROM (SELECT 1.0::float8 WHERE false) v(x);
SELECT pixl_latency_merge(h) FROM (VALUES ('{1: 1}'::pixl_latency), (NULL), ('{}'), ('{1: 2, 4: 1}')) v(h);
SELECT pixl_latency_merge(h) IS NULL AS all_null FROM (VALUES (NULL::pixl_latency)) v(h);
-- the bucket bounds: each value lands in [lower_ms, upper_ms)
SELECT bool_and(b.lower_ms <= v AND v < b.upper_ms) AS in_its_bucket, count(*)
  FROM (SELECT (2 ^ (x / 37.0 - 5))::float8 AS v FROM generate_series(0, 1180) x) s,
	   LATERAL pixl_latency_buckets(pixl_latency_add(NULL::pixl_latency, s.v)) b;

------------------------------------------------------------------------------
-- errors: PX048 (invalid histogram), PX049 (out of range), PX052 (quantile)
------------------------------------------------------------------------------
SELECT * FROM pg_temp.err($$SELECT '1: 2'::pixl_latency$$);
SELECT * FROM pg_temp.err($$SELECT '{1.05: 2}'::pixl_latency$$);
SELECT * FROM pg_temp.err($$SELECT '{2: 1, 1: 2}'::pixl_latency$$);
SELECT * FROM pg_temp.err($$SELECT '{1: 1, 1.0000001: 2}'::pixl_latency$$);
SELECT * FROM pg_temp.err($$SELECT '{1: 0}'::pixl_latency$$);
SELECT * FROM pg_temp.err($$SELECT '{1: -3}'::pixl_latency$$);
SELECT * FROM pg_temp.err($$SELECT '{1: 2.5}'::pixl_latency$$);
SELECT * FROM pg_temp.err($$SELECT '{1: 2} x'::pixl_latency$$);
SELECT * FROM pg_temp.err($$SELECT '{1: 2'::pixl_latency$$);
SELECT * FROM pg_temp.err($$SELECT '{x: 2}'::pixl_latency$$);
SELECT * FROM pg_temp.err($$SELECT '{-1: 2}'::pixl_latency$$);
SELECT * FROM pg_temp.err($$SELECT '{134217728: 2}'::pixl_latency$$);
SELECT * FROM pg_temp.err($$SELECT '{NaN: 2}'::pixl_latency$$);
SELECT * FROM pg_temp.err($$SELECT '{1: 99999999999999999999}'::pixl_latency$$);
SELECT * FROM pg_temp.err($$SELECT '{1: 9223372036854775807, 2: 1}'::pixl_latency$$);
SELECT * FROM pg_temp.err($$SELECT pixl_latency_add('{1: 9223372036854775807}'::pixl_latency, '{1: 1}'::pixl_latency)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_latency_add(NULL::pixl_latency, -1::float8)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_latency_of(x) FROM (VALUES (1), ('NaN'::float8)) v(x)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_latency_of(x) FROM (VALUES ('Infinity'::float8)) v(x)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_latency_of(x) FROM (VALUES (134217728::float8)) v(x)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_latency_quantile('{1: 1}', 1.5)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_latency_quantile('{1: 1}', -0.01)$$);
SELECT * FROM pg_temp.err($$SELECT pixl_latency_quantile('{1: 1}', 'NaN')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_latency_quantiles('{1: 1}', '{0.5, 2}')$$);

------------------------------------------------------------------------------
-- quantiles against percentile_disc: log-normal and bimodal data
------------------------------------------------------------------------------
SELECT setseed(0.42);
CREATE TEMP TABLE samples (dist text, v float8);
-- log-normal: median 40 ms, sigma 1.2 (Box-Muller normals)
INSERT INTO samples
SELECT 'lognormal', 40 * exp(1.2 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))
  FROM generate_series(1, 20000);
-- bimodal: 70 % around 3 ms (cache hits), 30 % around 900 ms
INSERT INTO samples
SELECT 'bimodal', CASE WHEN random() < 0.7 THEN 3 ELSE 900 END
				  * exp(0.3 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))
  FROM generate_series(1, 20000);
-- tiny values, below a sixteenth of a millisecond and around it
INSERT INTO samples SELECT 'tiny', random() * 0.2 FROM generate_series(1, 5000);
DELETE FROM samples WHERE v >= 134217728;

CREATE TEMP TABLE fractions AS
SELECT unnest('{0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.7, 0.75, 0.9, 0.95, 0.99, 0.999, 1}'::float8[]) AS f;

-- q: the histogram's quantile; d: percentile_disc's value.  Exact rank:
-- q is what the histogram of d alone reports (d's bucket); value bound:
-- within 4.43 % (r / d in (2^(-1/16), 2^(1/16)]), or 1/32 ms below 1/16 ms.
SELECT c.dist, count(*) AS checks,
	   bool_and(c.q = pixl_latency_quantile(pixl_latency_add(NULL::pixl_latency, c.d), 0.5)) AS exact_rank,
	   bool_and(CASE WHEN c.d < 0.0625 THEN abs(c.q - c.d) <= 1.0 / 32
					 ELSE c.q / c.d > 2 ^ (-1.0 / 16) AND c.q / c.d <= 2 ^ (1.0 / 16) END) AS within_bound,
	   max(abs(c.q - c.d) / c.d) FILTER (WHERE c.d >= 0.0625) <= 0.0443 AS max_error_le_4_43_pct
  FROM (SELECT s.dist, fr.f,
			   pixl_latency_quantile(h.h, fr.f) AS q,
			   (SELECT percentile_disc(fr.f) WITHIN GROUP (ORDER BY x.v) FROM samples x WHERE x.dist = s.dist) AS d
		  FROM (SELECT DISTINCT dist FROM samples) s
		  CROSS JOIN fractions fr
		  CROSS JOIN LATERAL (SELECT pixl_latency_of(x.v) AS h FROM samples x WHERE x.dist = s.dist) h) c
 GROUP BY c.dist
 ORDER BY c.dist;
-- pixl_latency_quantiles gives the same
SELECT bool_and(pixl_latency_quantiles(h, ARRAY[0.5, 0.95, 0.99]) =
				ARRAY[pixl_latency_quantile(h, 0.5), pixl_latency_quantile(h, 0.95), pixl_latency_quantile(h, 0.99)]) AS same
  FROM (SELECT dist, pixl_latency_of(v) AS h FROM samples GROUP BY dist) s;

------------------------------------------------------------------------------
-- merging: a day's hourly histograms merged = one histogram of the day
------------------------------------------------------------------------------
CREATE TEMP TABLE day_events AS
SELECT timestamptz '2026-01-10 00:00:00+00' + random() * interval '1 day' AS at, v
  FROM samples WHERE dist <> 'tiny';
SELECT (SELECT pixl_latency_merge(h) FROM (SELECT date_trunc('hour', at), pixl_latency_of(v) AS h
											 FROM day_events GROUP BY 1) hours)::text
	   = (SELECT pixl_latency_of(v) FROM day_events)::text AS hourly_merged_is_the_day,
	   (SELECT count(DISTINCT date_trunc('hour', at)) FROM day_events) AS hours;
-- and added one by one, in any order
SELECT (SELECT h FROM (WITH RECURSIVE hs AS (
			SELECT row_number() OVER (ORDER BY random()) AS n, h
			  FROM (SELECT pixl_latency_of(v) AS h FROM day_events GROUP BY date_trunc('hour', at)) x),
		  acc(n, h) AS (SELECT 0::bigint, NULL::pixl_latency
						UNION ALL
						SELECT acc.n + 1, pixl_latency_add(acc.h, hs.h) FROM acc JOIN hs ON hs.n = acc.n + 1)
		SELECT h FROM acc ORDER BY n DESC LIMIT 1) s)::text
	   = (SELECT pixl_latency_of(v) FROM day_events)::text AS added_in_any_order;

------------------------------------------------------------------------------
-- the parallel path: partial aggregates, serialized, combined
------------------------------------------------------------------------------
CREATE TABLE latency_big AS SELECT v, pixl_latency_add(NULL::pixl_latency, v) AS h FROM samples;
ANALYZE latency_big;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT pixl_latency_of(v), pixl_latency_merge(h) FROM latency_big;
SELECT pixl_latency_of(v)::text AS par_of, pixl_latency_merge(h)::text AS par_merge
  FROM latency_big \gset
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET parallel_leader_participation;
SET max_parallel_workers_per_gather = 0;
SELECT pixl_latency_of(v)::text = :'par_of' AS parallel_of_same,
	   pixl_latency_merge(h)::text = :'par_merge' AS parallel_merge_same,
	   :'par_of' = :'par_merge' AS of_equals_merge
  FROM latency_big;
RESET max_parallel_workers_per_gather;
DROP TABLE latency_big;

------------------------------------------------------------------------------
-- rollups and analytics: backfilled responses (pixl_insert_usage) get
-- their histograms; maintenance merges the hourly ones into the daily
-- row; pixl_usage_summary reports p50/p95/p99 within the bound; a row with
-- responses but no histogram (folded before 1.1) makes them NULL, and
-- stays NULL when responses are added to it.
------------------------------------------------------------------------------
SELECT pixl_set_store_plan('lat-store', 'enterprise');
SELECT token_id AS tok FROM pixl_create_token('lat-store', 'latency', ARRAY['products:read']) \gset
SELECT date_trunc('day', now() - interval '3 days', 'UTC') AS day \gset
CREATE TEMP TABLE backfilled AS
SELECT :'day'::timestamptz + (n % 24) * interval '1 hour' + (n % 3600) * interval '1 second' AS at,
	   v, CASE WHEN n % 10 = 0 THEN 500 ELSE 200 END AS status,
	   CASE WHEN n % 2 = 0 THEN '/v1/a' ELSE '/v1/b' END AS endpoint
  FROM (SELECT row_number() OVER () AS n, v FROM samples WHERE dist = 'lognormal' LIMIT 5000) s;
SELECT pixl_backfill_usage(array_agg(:'tok'::text), array_agg(at), array_agg('GET'::text),
						   array_agg(endpoint), array_agg(status), array_agg(v))
  FROM backfilled;
SELECT count(*) AS hourly_rows, sum(response_ms_count) AS responses,
	   sum(pixl_latency_count(latency)) AS in_histograms
  FROM pixl_usage_hourly WHERE token_id = :'tok';
SELECT (SELECT pixl_latency_merge(latency) FROM pixl_usage_hourly WHERE token_id = :'tok')::text
	   = (SELECT pixl_latency_of(v) FROM backfilled)::text AS rollups_hold_the_histogram;
SELECT pg_temp.roll_up() AS maintained;
SELECT count(*) AS daily_rows,
	   bool_and(d.latency::text = (SELECT pixl_latency_of(b.v) FROM backfilled b
								   WHERE b.endpoint = d.endpoint)::text) AS daily_merged_exactly
  FROM pixl_usage_daily d WHERE d.token_id = :'tok';
-- the summary's percentiles against percentile_disc of what was reported
SELECT s.total_requests,
	   abs(s.p50_ms / d.p50 - 1) <= 0.0443 AS p50_ok,
	   abs(s.p95_ms / d.p95 - 1) <= 0.0443 AS p95_ok,
	   abs(s.p99_ms / d.p99 - 1) <= 0.0443 AS p99_ok,
	   s.p50_ms = pixl_latency_quantile(pixl_latency_add(NULL::pixl_latency, d.p50), 0.5) AS p50_exact_rank
  FROM pixl_usage_summary(:'tok', '7d') s,
	   (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY v) AS p50,
			   percentile_disc(0.95) WITHIN GROUP (ORDER BY v) AS p95,
			   percentile_disc(0.99) WITHIN GROUP (ORDER BY v) AS p99 FROM backfilled) d;
SELECT e.endpoint, e.requests,
	   abs(e.p95_ms / (SELECT percentile_disc(0.95) WITHIN GROUP (ORDER BY b.v)
						 FROM backfilled b WHERE b.endpoint = e.endpoint) - 1) <= 0.0443 AS p95_ok
  FROM pixl_usage_endpoints(:'tok', '7d') e ORDER BY e.endpoint;
SELECT count(*) AS days, count(p95_ms) AS days_with_p95,
	   bool_and(p95_ms IS NULL OR abs(p95_ms / (SELECT percentile_disc(0.95) WITHIN GROUP (ORDER BY b.v)
												   FROM backfilled b) - 1) <= 0.0443) AS p95_ok
  FROM pixl_usage_timeline(:'tok', '30d') t WHERE t.requests > 0;
-- the dashboard views carry the histogram and the percentiles
SELECT count(*) AS hours, sum(pixl_latency_count(latency)) AS responses, count(p95_ms) AS with_p95
  FROM pixl_usage_by_hour WHERE token_id = :'tok';
SELECT bucket = :'day'::timestamptz AS the_day, pixl_latency_count(latency) AS responses,
	   p50_ms = pixl_latency_quantile(latency, 0.5) AS p50_of_latency
  FROM pixl_usage_by_store WHERE store_id = 'lat-store';
SELECT count(*) > 0 AS heatmap_rows
  FROM pixl_usage_by_hour h, LATERAL pixl_latency_buckets(h.latency) b WHERE h.token_id = :'tok';

-- a row folded before 1.1: responses, no histogram
UPDATE pixl_usage_hourly SET latency = NULL
 WHERE token_id = :'tok' AND bucket = :'day'::timestamptz + interval '4 hours' AND endpoint = '/v1/a';
UPDATE pixl_usage_daily SET latency = NULL WHERE token_id = :'tok' AND endpoint = '/v1/a';
SELECT count(*) AS hours_nulled FROM pixl_usage_hourly
 WHERE token_id = :'tok' AND latency IS NULL AND response_ms_count > 0;
SELECT p50_ms, p95_ms, p99_ms FROM pixl_usage_summary(:'tok', '7d');
-- the hourly rows of that day (the timeline by hour reads them, not the daily ones)
SELECT count(*) AS hours, count(p95_ms) AS hours_with_p95 FROM pixl_usage_timeline(:'tok', '7d') WHERE requests > 0;
SELECT endpoint, p95_ms IS NULL AS p95_null FROM pixl_usage_endpoints(:'tok', '7d') ORDER BY endpoint;
-- responses added to it later do not make it a partial histogram
SELECT pixl_backfill_usage(ARRAY[:'tok'], ARRAY[:'day'::timestamptz + interval '4 hours 10 minutes'],
						   ARRAY['GET'], ARRAY['/v1/a'], ARRAY[200], ARRAY[12.5::float8]);
SELECT latency IS NULL AS still_null, response_ms_count > 0 AS has_responses
  FROM pixl_usage_hourly
 WHERE token_id = :'tok' AND bucket = :'day'::timestamptz + interval '4 hours' AND endpoint = '/v1/a';
SELECT latency IS NULL AS daily_still_null FROM pixl_usage_daily WHERE token_id = :'tok' AND endpoint = '/v1/a';
-- a row without responses gets one
SELECT pixl_backfill_usage(ARRAY[:'tok'], ARRAY[:'day'::timestamptz + interval '5 hours 10 minutes'],
						   ARRAY['GET'], ARRAY['/v1/c'], ARRAY[200], NULL::float8[]);
SELECT latency IS NULL AS no_responses_no_histogram FROM pixl_usage_hourly
 WHERE token_id = :'tok' AND endpoint = '/v1/c';
SELECT pixl_backfill_usage(ARRAY[:'tok'], ARRAY[:'day'::timestamptz + interval '5 hours 20 minutes'],
						   ARRAY['GET'], ARRAY['/v1/c'], ARRAY[200], ARRAY[3::float8]);
SELECT latency FROM pixl_usage_hourly WHERE token_id = :'tok' AND endpoint = '/v1/c';
DROP TABLE backfilled;
-- leave no fractional response times in the rollups for the suites after
-- this one (usage_analytics compares float sums across all tokens)
DELETE FROM pixl_usage_hourly WHERE token_id = :'tok';
DELETE FROM pixl_usage_daily WHERE token_id = :'tok';
DELETE FROM pixl_usage_events WHERE token_id = :'tok';
