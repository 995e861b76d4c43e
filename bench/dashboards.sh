#!/usr/bin/env bash
# pixltoken dashboard benchmark: every analytics function, every period, on
# the busy token of a 10-million-event history, against the same answer
# computed from raw events.
#
#   make && make install                   # the extension under test
#   bash bench/dashboards.sh               # as root; ~10 min on 2 cores (the load is most of it)
#   EVENTS=1000000 bash bench/dashboards.sh   # quick run
#
# Env knobs: EVENTS (default 10000000), BUSY_SHARE (share of the busy token,
#   default 0.4), DAYS (history length, default 90), BATCH (events per
#   pixl_backfill_usage call, default 200000), RUNS (timed runs per query,
#   default 15; the table shows the median), RAW_RUNS (timed runs of each
#   raw-event twin, default 3), KEEP=1.
#
# Starts a throwaway PG15 cluster (127.0.0.1:55434, settings as
# shared/bench/run.sh, pixltoken preloaded, its usage worker serving the
# dashboard database, pixltoken.usage_retention = 400 days so that all raw
# events stay for the comparison), loads bench/dashboards.sql, loads the
# events through pixl_backfill_usage in time order, VACUUM ANALYZEs, then
# times:
#   pixl_usage_summary, pixl_usage_timeline, pixl_usage_endpoints for
#   today, 7d, 30d, year, all; pixl_recent_calls (all statuses, 429, 500);
#   next to raw_* (dashboards.sql): the same answer from pixl_usage_events
#   alone.  Both are run in one transaction for the equality check (same
#   now()), floats compared to 6 decimals.
# Targets: every function under 20 ms median; for year and all at
# least 20x faster than raw.  Writes bench/results-dashboards.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PGPORT=${PGPORT:-55434}
DB=pixldash
EVENTS=${EVENTS:-10000000}
BUSY_SHARE=${BUSY_SHARE:-0.4}
DAYS=${DAYS:-90}
BATCH=${BATCH:-200000}
RUNS=${RUNS:-15}
RAW_RUNS=${RAW_RUNS:-3}
TARGET_MS=20
TARGET_X=20

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_preflight

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
if [ -w "$HERE" ]; then RESDIR=$HERE; else RESDIR=${BENCH_OUT:-/tmp/pixlbench-results}; fi
OUT="$RESDIR/out/dash-$STAMP"
mkdir -p "$OUT"
T0=$(date +%s)

bench_cluster_init
bench_set pixltoken.database "$DB"
bench_set pixltoken.usage_retention 400d
bench_start
"${PSQL[@]}" -d postgres -c "CREATE DATABASE $DB"
log "loading bench/dashboards.sql (1,000 tokens, helpers)"
"${PSQL[@]}" -f "$HERE/dashboards.sql" >"$OUT/setup.log" 2>&1 || { cat "$OUT/setup.log"; die "dashboards.sql failed"; }
BUSY=$(q "SELECT token_id FROM dash_tokens WHERE n = 1")

# ------------------------------------------------------------------ load
NB=$(( (EVENTS + BATCH - 1) / BATCH ))
log "loading $EVENTS events over $DAYS days in $NB batches of $BATCH via pixl_backfill_usage (busy token $BUSY: share $BUSY_SHARE)"
L0=$(date +%s.%N)
# time slices in order; each batch is its own transaction (psql autocommit)
{
    echo "SELECT setseed(0.42);"
    echo "SELECT now() - interval '$DAYS days' AS t0, now() AS t1 \\gset"
    for ((b = 0; b < NB; b++)); do
        n=$(( b == NB - 1 ? EVENTS - b * BATCH : BATCH ))
        echo "SELECT dash_load_batch($b, $NB, $n, :'t0', :'t1', $BUSY_SHARE);"
        [ $(( (b + 1) % 10 )) = 0 ] && echo "\\echo loaded batch $((b + 1)) of $NB"
    done
} >"$OUT/load.sql"
"${PSQL[@]}" -At -f "$OUT/load.sql" >"$OUT/load.log" 2>&1 || { tail -20 "$OUT/load.log"; die "load failed"; }
L1=$(date +%s.%N)
LOAD_S=$(awk -v a="$L0" -v b="$L1" 'BEGIN {printf "%.0f", b - a}')
LOADED=$(q "SELECT count(*) FROM pixl_usage_events")
[ "$LOADED" = "$EVENTS" ] || die "loaded $LOADED events, expected $EVENTS"
log "loaded in ${LOAD_S}s; daily rollups of the closed days (the worker's maintenance, run now); VACUUM ANALYZE"
"${PSQL[@]}" -c "DO \$\$ BEGIN FOR i IN 1 .. 600 LOOP PERFORM pixl_run_maintenance();
    EXIT WHEN EXISTS (SELECT 1 FROM pixl_usage_daily_state WHERE rolled_up_until = date_trunc('day', now(), 'UTC'));
    PERFORM pg_sleep(0.5); END LOOP; END \$\$"
"${PSQL[@]}" -c "VACUUM ANALYZE"
BUSY_EVENTS=$(q "SELECT count(*) FROM pixl_usage_events WHERE token_id = '$BUSY'")
ROLLUP_CHECK=$(q "SELECT (SELECT sum(requests) FROM pixl_usage_hourly) = $EVENTS")

# ------------------------------------------------------------------ sizes
read -r RAW_BYTES RAW_HEAP HOURLY_BYTES HOURLY_ROWS BUSY_HOURLY NPART < <(q "
    SELECT sum(pg_total_relation_size(relid)), sum(pg_relation_size(relid)),
           pg_total_relation_size('pixl_usage_hourly'),
           (SELECT count(*) FROM pixl_usage_hourly),
           (SELECT count(*) FROM pixl_usage_hourly WHERE token_id = '$BUSY'),
           count(*) FILTER (WHERE isleaf)
      FROM pg_partition_tree('pixl_usage_events')" | tr '|' ' ')
per_m() { awk -v b="$1" -v e="$EVENTS" 'BEGIN {printf "%.1f MB", b / 1048576 / (e / 1e6)}'; }
mb() { awk -v b="$1" 'BEGIN {printf "%.0f MB", b / 1048576}'; }
# other rollup tables of the extension (e.g. pixl_usage_daily), if any
OTHER_ROLLUPS=$(q "SELECT coalesce(string_agg(c.relname || ' ' || pg_total_relation_size(c.oid) || ' ' || coalesce(c.reltuples, 0)::bigint, ';' ORDER BY c.relname), '')
                     FROM pg_class c WHERE c.relkind = 'r' AND c.relname ~ '^pixl_usage_(daily|monthly|rollup)' AND NOT c.relispartition")
OTHER_BYTES=$(q "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
                  WHERE c.relkind = 'r' AND c.relname ~ '^pixl_usage_(daily|monthly|rollup)' AND NOT c.relispartition")

# ------------------------------------------------------------------ timing
# time_pair LABEL PERIOD FUNC_SQL RAW_SQL(or "") EQ_SQL(or "")
RES="$OUT/timings.tsv"
: >"$RES"
time_pair() {
    local label=$1 period=$2 fsql=$3 rsql=$4 eqsql=$5 f r="" same="-"
    log "timing $label $period"
    wait_quiet
    f=$(q "SELECT round(median_ms::numeric, 2) || ' ' || round(min_ms::numeric, 2) || ' ' || nrows FROM dash_time(\$q\$$fsql\$q\$, $RUNS)")
    if [ -n "$rsql" ]; then
        # the raw query is slow (seconds for year/all): RAW_RUNS runs
        r=$(q "SELECT round(median_ms::numeric, 2) || ' ' || round(min_ms::numeric, 2) || ' ' || nrows FROM dash_time(\$q\$$rsql\$q\$, $RAW_RUNS)")
    fi
    if [ -n "$eqsql" ]; then
        same=$(q "BEGIN ISOLATION LEVEL REPEATABLE READ; $eqsql; COMMIT;" | grep -E '^(t|f)$' || echo "?")
        [ "$same" = t ] && same=yes || same=**NO**
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$period" "$f" "${r:--}" "$same" >>"$RES"
}
# rows of a function and its raw twin, floats to 6 decimals, as text for EXCEPT;
# each side computed once (MATERIALIZED), both in one transaction (same now())
eq_sql() {  # eq_sql FUNC RAWFUNC PERIOD
    echo "WITH a AS MATERIALIZED (SELECT dash_round(row(x.*)::text) AS r FROM $1('$BUSY', '$3') x),
               b AS MATERIALIZED (SELECT dash_round(row(x.*)::text) AS r FROM $2('$BUSY', '$3') x)
          SELECT NOT EXISTS ((SELECT r FROM a EXCEPT ALL SELECT r FROM b) UNION ALL (SELECT r FROM b EXCEPT ALL SELECT r FROM a))"
}
# a row image with every number of more than 6 decimals rounded to 6
q "CREATE FUNCTION dash_round(t text) RETURNS text LANGUAGE sql IMMUTABLE AS
   \$\$ SELECT regexp_replace(t, '(\\d+\\.\\d{6})\\d+', '\\1', 'g') \$\$" >/dev/null

for period in today 7d 30d year all; do
    time_pair pixl_usage_summary "$period" "SELECT * FROM pixl_usage_summary('$BUSY', '$period')" \
        "SELECT * FROM raw_summary('$BUSY', '$period')" "$(eq_sql pixl_usage_summary raw_summary "$period")"
    time_pair pixl_usage_timeline "$period" "SELECT * FROM pixl_usage_timeline('$BUSY', '$period')" \
        "SELECT * FROM raw_timeline('$BUSY', '$period')" "$(eq_sql pixl_usage_timeline raw_timeline "$period")"
    time_pair pixl_usage_endpoints "$period" "SELECT * FROM pixl_usage_endpoints('$BUSY', '$period')" \
        "SELECT * FROM raw_endpoints('$BUSY', '$period')" "$(eq_sql pixl_usage_endpoints raw_endpoints "$period")"
done
for st in NULL 429 500; do
    time_pair pixl_recent_calls "status $st, 20 rows" "SELECT * FROM pixl_recent_calls('$BUSY', $st, 20)" "" ""
done

# ------------------------------------------------------------------ report
ELAPSED=$(( $(date +%s) - T0 ))
TABLE=$(awk -F'\t' -v tms="$TARGET_MS" -v tx="$TARGET_X" '
    BEGIN {
        print "| function | period | rows | median ms (min) | target < " tms " ms | raw events: median ms (min) | speedup vs raw | target ≥ " tx "x (year, all) | same answer as raw |"
        print "|---|---|---:|---:|---|---:|---:|---|---|"
    }
    {
        split($3, f, " "); split($4, r, " ")
        t = (f[1] + 0 < tms) ? "met" : "**missed**"
        if ($4 == "-") { raw = "-"; sp = "-"; tx2 = "-" }
        else {
            raw = sprintf("%s (%s)", r[1], r[2]); x = (f[1] > 0) ? r[1] / f[1] : 0; sp = sprintf("%.1fx", x)
            tx2 = ($2 == "year" || $2 == "all") ? ((x >= tx) ? "met" : "**missed**") : "-"
        }
        printf "| %s | %s | %s | %s (%s) | %s | %s | %s | %s | %s |\n", $1, $2, f[3], f[1], f[2], t, raw, sp, tx2, $5
    }' "$RES")
CPU=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
{
    echo "# pixltoken dashboard benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); tree: $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown); nproc $(nproc) ($CPU); $(q "SELECT version()" | cut -d, -f1)"
    echo "- data: $EVENTS events over $DAYS days, 1,000 tokens (100 stores), busy token holds $BUSY_EVENTS events ($BUSY_SHARE share), 12 method/endpoint pairs, ~5% errors; loaded in ${LOAD_S}s through pixl_backfill_usage in $NB batches ($(awk -v e="$EVENTS" -v s="$LOAD_S" 'BEGIN {printf "%.0f", e / (s > 0 ? s : 1)}') events/s); rollups sum to the event count: $ROLLUP_CHECK"
    echo "- settings as shared/bench/run.sh, pixltoken preloaded, worker serving the database, usage_retention 400 days (all raw events kept for the comparison)"
    echo "- timing: server side (PL/pgSQL EXECUTE incl. planning, \`SELECT count(*) FROM (<call>) s WHERE s::text IS NOT NULL\`), one warm-up then $RUNS runs (raw: $RAW_RUNS runs), median and min; raw = the same answer from pixl_usage_events alone (bench/dashboards.sql raw_*), compared for equality in one REPEATABLE READ transaction"
    echo "- wall time ${ELAPSED}s; raw logs bench/out/dash-$STAMP/; rerun: \`bash bench/dashboards.sh\` (as root, after \`make && make install\`)"
    echo
    echo "$TABLE"
    echo
    echo "Table size (heap + indexes + TOAST):"
    echo
    echo "| table | size | per million events |"
    echo "|---|---:|---:|"
    echo "| pixl_usage_events ($NPART partitions) | $(mb "$RAW_BYTES") (heap $(mb "$RAW_HEAP")) | $(per_m "$RAW_BYTES") |"
    echo "| pixl_usage_hourly ($HOURLY_ROWS rows, $BUSY_HOURLY of the busy token) | $(mb "$HOURLY_BYTES") | $(per_m "$HOURLY_BYTES") |"
    if [ -n "$OTHER_ROLLUPS" ]; then
        echo "$OTHER_ROLLUPS" | tr ';' '\n' | while read -r name bytes rows; do
            echo "| $name (~$rows rows) | $(mb "$bytes") | $(per_m "$bytes") |"
        done
    fi
    echo "| total | $(mb $((RAW_BYTES + HOURLY_BYTES + OTHER_BYTES))) | $(per_m $((RAW_BYTES + HOURLY_BYTES + OTHER_BYTES))) |"
} >"$OUT/results.md"
cp "$OUT/results.md" "$RESDIR/results-dashboards.md"
echo
cat "$OUT/results.md"
