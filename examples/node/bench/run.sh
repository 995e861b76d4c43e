#!/usr/bin/env bash
# HTTP load test of examples/node, as root after `make install` (a bench,
# not a test: it reports numbers and checks nothing but that it ran):
#
#   bash examples/node/bench/run.sh        # SECONDS=10 ROUNDS=2 CONNECTIONS=32
#
# Starts a throwaway cluster (pixltoken preloaded, the usage worker serving),
# creates 1,000 tokens over 10 stores (enterprise plan: 1,000 requests/min
# each, so the load stays under every limit), then runs examples/node/bench/http.js:
# autocannon against the example API with verification, and against the same
# server doing SELECT 1, alternately, in one run.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
. "$HERE/test/helpers/cluster.sh"
PORT=${BENCH_PGPORT:-$(free_port)}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

WORK=$(cluster_workdir pixltoken-httpbench)
trap 'cluster_stop "$WORK"' EXIT
cluster_start "$WORK" "$PORT" 127.0.0.1 "pixltoken.database = 'shop'
max_connections = 60"
psql_su() { cluster_psql "$WORK" "$PORT" "$@"; }
install -o postgres -m 644 "$HERE/examples/roles.sql" "$WORK/roles.sql"
psql_su -d postgres -c 'CREATE DATABASE shop'
psql_su -d shop -c 'CREATE EXTENSION pixltoken'
psql_su -d shop -f "$WORK/roles.sql" >/dev/null
psql_su -d shop -At -c "
	SELECT pixl_set_store_plan('bench' || s, 'enterprise') FROM generate_series(1, 10) s;" >/dev/null
psql_su -d shop -At -c "
	SELECT 'bench' || s || ' ' || (pixl_create_token('bench' || s, 'bench ' || i, ARRAY['products:read'], rate_limit => 1000)).token
	  FROM generate_series(1, 10) s, generate_series(1, 100) i" >"$WORK/tokens"
(cd "$HERE/examples/node" && [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error)
cd "$HERE/examples/node"
PGHOST=127.0.0.1 PGPORT=$PORT PGDATABASE=shop PGUSER=app_server TOKENS_FILE="$WORK/tokens" node bench/http.js
psql_su -d shop -At -c "SELECT 'usage rows: ' || count(*) || ', with a reported response: ' || count(response_ms) FROM pixl_usage_events"
