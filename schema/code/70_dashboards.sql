------------------------------------------------------------------------------
-- Dashboards: usage views a SQL dashboard tool (Grafana,
-- Metabase, psql) can query directly.  They read the rollups, never the raw
-- events, so any time range over 10 million events costs a scan of rollup
-- rows only (hourly: one row per token, UTC hour, method and endpoint;
-- daily: per UTC day).  Token names and stores are joined in.  Every view
-- shows only the stores the caller may see (pixl_store_visible), and is a
-- security barrier so that no function of the caller's query sees the rows
-- of other stores.  Granted to no one: README "Dashboards" shows the grant.
--
-- Columns of every view: store_id, token_id, token_name, bucket (UTC hour
-- or UTC midnight), method, endpoint ('' in the rollups shown as NULL),
-- requests, errors (final status >= 400), rate_limited (answered 429;
-- rollup rows written by 1.0 count none), response_ms_sum and response_ms_count (to
-- average correctly across rows: sum(response_ms_sum) /
-- sum(response_ms_count)), avg_response_ms, error_rate (percent); then
-- latency (the pixl_latency histogram of the response times: merge rows
-- with pixl_latency_merge, list buckets with pixl_latency_buckets for a
-- heatmap) and p50_ms, p95_ms, p99_ms of the row (within 4.43 %).
-- latency and the percentiles are NULL where responses were folded before
-- 1.1 (no histogram was kept then).
------------------------------------------------------------------------------

CREATE OR REPLACE VIEW pixl_usage_by_hour WITH (security_barrier) AS
SELECT t.store_id,
	   h.token_id,
	   t.name AS token_name,
	   h.bucket,
	   nullif(h.method, '') AS method,
	   nullif(h.endpoint, '') AS endpoint,
	   h.requests,
	   h.errors,
	   h.rate_limited,
	   h.response_ms_sum,
	   h.response_ms_count,
	   h.response_ms_sum / nullif(h.response_ms_count, 0) AS avg_response_ms,
	   100.0::double precision * h.errors / nullif(h.requests, 0) AS error_rate,
	   h.latency,
	   @extschema@.pixl_latency_quantile(h.latency, 0.5) AS p50_ms,
	   @extschema@.pixl_latency_quantile(h.latency, 0.95) AS p95_ms,
	   @extschema@.pixl_latency_quantile(h.latency, 0.99) AS p99_ms
  FROM @extschema@.pixl_usage_hourly h
  JOIN @extschema@.pixl_token_registry t ON t.token_id = h.token_id
 WHERE @extschema@.pixl_store_visible(t.store_id);

COMMENT ON VIEW pixl_usage_by_hour IS
	'Usage per token, UTC hour, method and endpoint (hourly rollups), of the stores the caller may see';


-- One row per token, UTC day, method and endpoint of the stitched rollups
-- (pixl_usage_rollups: daily rows for the days rolled up, hourly rows
-- summed per UTC day after them; each hour counted once).  The token join
-- is below the grouping, so that a filter on token_id reaches the rollups'
-- (token_id, bucket, ...) keys.
CREATE OR REPLACE VIEW pixl_usage_by_day WITH (security_barrier) AS
SELECT u.store_id,
	   u.token_id,
	   u.token_name,
	   u.bucket,
	   nullif(u.method, '') AS method,
	   nullif(u.endpoint, '') AS endpoint,
	   u.requests,
	   u.errors,
	   u.rate_limited,
	   u.response_ms_sum,
	   u.response_ms_count,
	   u.response_ms_sum / nullif(u.response_ms_count, 0) AS avg_response_ms,
	   100.0::double precision * u.errors / nullif(u.requests, 0) AS error_rate,
	   u.latency,
	   @extschema@.pixl_latency_quantile(u.latency, 0.5) AS p50_ms,
	   @extschema@.pixl_latency_quantile(u.latency, 0.95) AS p95_ms,
	   @extschema@.pixl_latency_quantile(u.latency, 0.99) AS p99_ms
  FROM (SELECT t.store_id, r.token_id, t.name AS token_name,
			   date_trunc('day', r.bucket, 'UTC') AS bucket, r.method, r.endpoint,
			   sum(r.requests)::bigint AS requests, sum(r.errors)::bigint AS errors,
			   sum(r.rate_limited)::bigint AS rate_limited,
			   sum(r.response_ms_sum) AS response_ms_sum,
			   sum(r.response_ms_count)::bigint AS response_ms_count,
			   CASE WHEN bool_or(r.latency IS NULL AND r.response_ms_count > 0) THEN NULL
					ELSE @extschema@.pixl_latency_merge(r.latency) END AS latency
		  FROM @extschema@.pixl_usage_rollups r
		  JOIN @extschema@.pixl_token_registry t ON t.token_id = r.token_id
		 GROUP BY t.store_id, r.token_id, t.name, date_trunc('day', r.bucket, 'UTC'), r.method, r.endpoint) u
 WHERE @extschema@.pixl_store_visible(u.store_id);

COMMENT ON VIEW pixl_usage_by_day IS
	'Usage per token, UTC day, method and endpoint (daily rollups, hourly ones for days not rolled up yet), of the stores the caller may see';


-- Per store and UTC day: the overview panel of a dashboard.
CREATE OR REPLACE VIEW pixl_usage_by_store WITH (security_barrier) AS
SELECT s.store_id, s.bucket, s.tokens_used, s.requests, s.errors, s.rate_limited,
	   s.response_ms_sum, s.response_ms_count, s.avg_response_ms, s.error_rate,
	   s.latency,
	   @extschema@.pixl_latency_quantile(s.latency, 0.5) AS p50_ms,
	   @extschema@.pixl_latency_quantile(s.latency, 0.95) AS p95_ms,
	   @extschema@.pixl_latency_quantile(s.latency, 0.99) AS p99_ms
  FROM (SELECT d.store_id,
			   d.bucket,
			   count(DISTINCT d.token_id) AS tokens_used,
			   sum(d.requests)::bigint AS requests,
			   sum(d.errors)::bigint AS errors,
			   sum(d.rate_limited)::bigint AS rate_limited,
			   sum(d.response_ms_sum) AS response_ms_sum,
			   sum(d.response_ms_count)::bigint AS response_ms_count,
			   sum(d.response_ms_sum) / nullif(sum(d.response_ms_count), 0) AS avg_response_ms,
			   100.0::double precision * sum(d.errors) / nullif(sum(d.requests), 0) AS error_rate,
			   CASE WHEN bool_or(d.latency IS NULL AND d.response_ms_count > 0) THEN NULL
					ELSE @extschema@.pixl_latency_merge(d.latency) END AS latency
		  FROM @extschema@.pixl_usage_by_day d
		 GROUP BY d.store_id, d.bucket) s;

COMMENT ON VIEW pixl_usage_by_store IS
	'Usage per store and UTC day, of the stores the caller may see';
