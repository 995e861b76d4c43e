#!/bin/bash
# Usage worker CPU per stored event, isolated from the request path:
# a private cluster with bench/setup.sql's 10,000 tokens; the worker is
# stopped (SIGSTOP) while one session makes ROUNDS x 10,000 verifications
# (the verify_random call: 'GET', '/v1/products', an IP; half the tokens
# answer 200, half 403), then continued; its utime+stime
# (/proc/<pid>/stat) from then until the ring and the counts are drained,
# ÷ the events it stored.  PERF=1 also records a perf profile of the drain.
#   PG_CONFIG=... bash bench/worker_cpu.sh      (as root; runs as postgres)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PGBIN=$("${PG_CONFIG:-pg_config}" --bindir)
ROUNDS=${ROUNDS:-20}
PORT=${PORT:-55439}
D=$(mktemp -d /tmp/pixl-worker-cpu.XXXXXX)
chown postgres "$D"
as_pg() { runuser -u postgres -- "$@"; }
psql_() { as_pg "$PGBIN/psql" -XAtq -h "$D" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 "$@"; }
cleanup() { as_pg "$PGBIN/pg_ctl" -D "$D/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$D"; }
trap cleanup EXIT

as_pg "$PGBIN/initdb" -D "$D/data" -A trust >/dev/null
cat >>"$D/data/postgresql.conf" <<CONF
shared_preload_libraries = 'pixltoken'
pixltoken.queue_size = 262144
listen_addresses = ''
unix_socket_directories = '$D'
port = $PORT
CONF
as_pg "$PGBIN/pg_ctl" -D "$D/data" -l "$D/log" -w start >/dev/null
psql_ -f "$HERE/setup.sql" >/dev/null
for _ in $(seq 100); do
    [ "$(psql_ -c "SELECT worker_state FROM pixl_stats() WHERE datname = 'postgres'")" = serving ] && break
    sleep 0.1
done
pid=$(psql_ -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pixltoken usage worker'")
read -r flushed0 folded0 <<<"$(psql_ -F ' ' -c "SELECT events_flushed, counts_folded FROM pixl_stats() WHERE datname = 'postgres'")"
kill -STOP "$pid"
n=$(psql_ -c "SELECT count(*) FROM generate_series(1, $ROUNDS) r, bench_tokens b,
                 LATERAL pixl_verify_token(CASE WHEN r > 0 THEN b.tok END, 'products:read', b.store_id, 'GET', '/v1/products', '203.0.113.7') v
               WHERE b.id BETWEEN 1 AND 10000")
queued=$(psql_ -c "SELECT events_queued FROM pixl_stats() WHERE datname = 'postgres'")
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
c0=$(cpu)
if [ "${PERF:-0}" = 1 ]; then
    perf record -g -F 1999 -p "$pid" -o "$D/perf.data" >/dev/null 2>&1 & perf_pid=$!
    sleep 1
fi
kill -CONT "$pid"
t0=$(date +%s.%N)
for _ in $(seq 600); do
    [ "$(psql_ -c "SELECT events_queued = 0 AND counts_folded - $folded0 >= $n FROM pixl_stats() WHERE datname = 'postgres'")" = t ] && break
    sleep 0.1
done
t1=$(date +%s.%N)
c1=$(cpu)
if [ "${PERF:-0}" = 1 ]; then
    kill -INT "$perf_pid"; wait "$perf_pid" || true
    [ -n "${PERF_DATA:-}" ] && cp "$D/perf.data" "$PERF_DATA"
    perf report -i "$D/perf.data" --no-children --percent-limit 1.5 --stdio 2>/dev/null | grep -v '^$' | grep -E '^ +[0-9]' | head -40
fi
flushed=$(( $(psql_ -c "SELECT events_flushed FROM pixl_stats() WHERE datname = 'postgres'") - flushed0 ))
rows=$(psql_ -c "SELECT count(*) || ' (without store_id: ' || count(*) FILTER (WHERE store_id IS NULL) || ')' FROM pixl_usage_events")
tick=$(getconf CLK_TCK)
echo "verifications=$n queued=$queued stored-by-worker=$flushed raw-rows=$rows"
awk -v c=$((c1 - c0)) -v t="$tick" -v n="$flushed" -v a="$t0" -v b="$t1" \
    'BEGIN { printf "worker CPU %.0f ms over %.1f s wall: %.2f µs per stored event\n", c * 1000 / t, b - a, c * 1e6 / t / n }'
