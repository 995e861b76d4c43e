#!/usr/bin/env bash
# Timing of the dashboard views on the rollups of 10 million events, as root
# after `make install` (a bench, not a test; ~5 min):
#
#   bash grafana/bench-views.sh
#
# Writes the rollup rows that 10 million events leave (bench/dashboards.sql's
# shape: 1,000 tokens in 100 stores, 90 days, 12 endpoints, the busy token
# holding 40%) straight into pixl_usage_hourly and pixl_usage_daily (raw
# events are not needed: the views never read them), VACUUM ANALYZEs, then
# times each Grafana panel query and the typical view queries (median of 7
# runs, planning included).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
. "$HERE/test/helpers/cluster.sh"
PORT=$(free_port)
WORK=$(cluster_workdir pixltoken-viewbench)
trap 'cluster_stop "$WORK"' EXIT
# pixltoken.database = postgres: no worker maintenance on dash, the rollups are written here
cluster_start "$WORK" "$PORT" 127.0.0.1 "pixltoken.database = 'postgres'
shared_buffers = '1GB'
work_mem = '64MB'"
P=(cluster_psql "$WORK" "$PORT")
install -o postgres -m 644 "$HERE/grafana/bench-views.sql" "$WORK/bench-views.sql"
"${P[@]}" -d postgres -c 'CREATE DATABASE dash'
"${P[@]}" -d dash <<'SQL'
CREATE EXTENSION pixltoken;
CREATE TABLE toks AS
SELECT i AS n, (pixl_create_token('store_' || ((i - 1) % 100 + 1), 'dash ' || i, ARRAY['products:read'])).token_id
  FROM generate_series(1, 1000) i;
CREATE TABLE eps (k int, method text, endpoint text);
INSERT INTO eps SELECT k, (ARRAY['GET','GET','GET','POST','GET','PUT','GET','POST','GET','DELETE','GET','POST'])[k + 1],
	   '/v1/e' || k FROM generate_series(0, 11) k;
-- busy token: ~1,850 events per hour over all 12 endpoints; the 999 others
-- ~2.8 events per hour each, spread over endpoints (one hourly row per
-- event, mostly): 10.0 million events in all
INSERT INTO pixl_usage_hourly
SELECT t.token_id, h, e.method, e.endpoint, c, (c * 0.05)::bigint, c * 80.0, c
  FROM toks t, generate_series(date_trunc('hour', now()) - interval '90 days', date_trunc('hour', now()), '1 hour') h,
	   eps e, LATERAL (SELECT (1850 / 12 * (12 - e.k) / 6.5)::bigint AS c) x
 WHERE t.n = 1;
INSERT INTO pixl_usage_hourly
SELECT t.token_id, h, e.method, e.endpoint, count(*), count(*) FILTER (WHERE x.r < 0.05),
	   80.0 * count(*), count(*)
  FROM toks t, generate_series(date_trunc('hour', now()) - interval '90 days', date_trunc('hour', now()), '1 hour') h,
	   generate_series(1, 3) j,
	   LATERAL (SELECT floor(random() * 12)::int AS k, random() AS r, random() AS keep, j AS jj) x
  JOIN eps e ON e.k = x.k
 WHERE t.n > 1 AND x.keep < 0.933
 GROUP BY 1, 2, 3, 4;
SELECT 'events ~' || round(sum(requests) / 1e6, 1) || 'M, hourly rows ' || count(*) FROM pixl_usage_hourly \g
INSERT INTO pixl_usage_daily
SELECT token_id, date_trunc('day', bucket, 'UTC'), method, endpoint, sum(requests), sum(errors),
	   sum(response_ms_sum), sum(response_ms_count)
  FROM pixl_usage_hourly WHERE bucket < date_trunc('day', now(), 'UTC') GROUP BY 1, 2, 3, 4;
INSERT INTO pixl_usage_daily_state VALUES (true, date_trunc('day', now(), 'UTC'));
SELECT 'daily rows ' || count(*) FROM pixl_usage_daily \g
VACUUM ANALYZE;
SQL
"${P[@]}" -d dash -f "$WORK/bench-views.sql"
