#!/usr/bin/env bash
# pixltoken verification and ingestion benchmark: pixl_verify_token against
# its round-trip floors and the plain-SQL baseline, in one run, one cluster.
#
#   make && make install                      # the extension under test
#   bash bench/run.sh                         # as root; full run, ~10 min
#   DURATION=3 CLIENTS=8 bash bench/run.sh    # smoke run, ~2 min
#   REPS=3 DURATION=10 bash bench/run.sh      # interleaved reps, medians
#
# Env knobs: DURATION (measured seconds, default 20), WARM / WARM_RANDOM
#   (seconds each pgbench runs before the measured window, default 5, and
#   10 + 2 s per client (WARM_RANDOM_PER_CLIENT) for the random-token verify,
#   whose clients first warm their token cache;
#   TPS and latency come from the -P 1 progress lines of the window),
#   CLIENTS (default
#   "8 32"), REPS (interleaved repetitions, default 1; tables show medians),
#   PHASES (default "served"; "unserved served" adds the misconfiguration
#   case), BASELINE=0 (skip the plain-SQL baseline rows), PROFILE=0 (skip the
#   per-call timing and perf profile), PROFILE_SECONDS (perf run, default 10),
#   QUIET_WAIT (seconds to wait for the shared machine to go quiet before
#   each run, default 8), KEEP=1 (leave the /tmp cluster behind).
#
# Phases (the cluster is restarted in between, because pixltoken.database is
# a postmaster setting):
#   served    the production setup: the usage worker serves the bench
#             database (pixltoken.database = 'pixlbench').  Floors A and B,
#             pixl_verify_token (random token, hot token), and the plain-SQL
#             baseline of shared/bench (vendored in bench/baseline/).  After
#             every verify run the queue is drained and the run's events are
#             counted against pgbench's transactions (ingestion).
#   unserved  optional: no worker serves the bench database
#             (pixltoken.database = 'postgres'), so every verification writes
#             its usage event through to the tables itself (see
#             src/usage_queue.c): what a misconfigured server costs.
# Verification cannot run without recording usage (every 200/403/429 is an
# event), so "verification" and "ingestion" are measured in the same runs.
# Writes raw logs to bench/out/<stamp>/ and the tables to bench/results.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PGPORT=${PGPORT:-55433}
DB=pixlbench
DURATION=${DURATION:-20}
# Seconds run before the measured DURATION, per case: the random-token
# verify warms each backend's token cache first (10,000 loads per client).
# A cold token-cache load costs ~50-100 us here: 10,000 per client take
# about 2 s of the 2 cores per client, so that warm-up scales with clients.
WARM=${WARM:-5}
WARM_RANDOM_PER_CLIENT=${WARM_RANDOM_PER_CLIENT:-2}
WARM_RANDOM=${WARM_RANDOM:-}
CLIENTS=${CLIENTS:-"8 32"}
REPS=${REPS:-1}
PHASES=${PHASES:-"served"}
BASELINE=${BASELINE:-1}
PROFILE=${PROFILE:-1}
QUIET_WAIT=${QUIET_WAIT:-8}
# Usage events the flush lag target allows (seconds); printed next to the lag.
LAG_TARGET=2
RATIO_TARGET=0.85

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_preflight

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
if [ -w "$HERE" ]; then RESDIR=$HERE; else RESDIR=${BENCH_OUT:-/tmp/pixlbench-results}; fi
OUT="$RESDIR/out/$STAMP"
mkdir -p "$OUT"
T0=$(date +%s)

LIB=$("$PGBIN/pg_config" --pkglibdir)/pixltoken.so
LIB_SHA=$(sha256sum "$LIB" | cut -c1-12)
bench_cluster_init
# The 10,001 bench tokens (+ fixtures) would overflow the default 10,000
# rate-limit slots within one minute; an operator sizes this to the number
# of tokens active per minute, and so does the bench.
bench_set pixltoken.max_tracked_tokens 20000
# The per-client warm-up of the random case queues 10,000 events per client
# in a burst; a larger queue (~48 MB of shared memory) absorbs most of it
# instead of the backends writing it through.  Not larger: a backend's first
# write to each page of the ring is a page fault, until the ring has wrapped.
# pixltoken.queue_size stays at its default (16384): a larger queue makes
# every new connection fault in more shared-memory pages as it writes
# events (measured: 1M slots halve verify TPS at 8 clients); the warm-up
# burst of the random case just waits for the worker instead.
# the first phase's setting; later phases restart with their own
phase_db() { if [ "$1" = unserved ]; then echo postgres; else echo "$DB"; fi; }
bench_set pixltoken.database "$(phase_db "${PHASES%% *}")"
CUR_DB=$(phase_db "${PHASES%% *}")
bench_start

"${PSQL[@]}" -d postgres -c "CREATE DATABASE $DB"
log "loading bench/setup.sql (10,001 tokens via pixl_create_token)"
"${PSQL[@]}" -f "$HERE/setup.sql" >"$OUT/setup.log" 2>&1 || { cat "$OUT/setup.log"; die "setup.sql failed"; }
if [ "$BASELINE" = 1 ]; then
    log "loading bench/baseline/baseline.sql (plain-SQL baseline)"
    "${PSQL[@]}" -f "$HERE/baseline/baseline.sql" >"$OUT/baseline-load.log" 2>&1 \
        || { cat "$OUT/baseline-load.log"; die "baseline.sql failed"; }
fi
HOTTOK=$(q "SELECT tok FROM bench_tokens WHERE id = 0")
HOTSTORE=store_hot
HOT_TOKEN_ID=$(q "SELECT token_id FROM bench_tokens WHERE id = 0")

# Sanity: every bench token answers 200 once, the statuses the hot run can
# see are the expected ones, and a bad token is a 401 without a raise.
log "sanity checks of pixl_verify_token"
SANITY=$(q "SELECT
    (SELECT count(*) FILTER (WHERE v.status = 200) || '/' || count(*)
       FROM bench_tokens b,
            pixl_verify_token(b.tok, 'products:read', b.store_id, 'GET', '/v1/products', '203.0.113.7') v)
    || ' ' || (SELECT status || ':' || reason FROM pixl_verify_token('sk_live_nope', 'products:read'))
    || ' ' || (SELECT v.status || ':' || v.reason FROM bench_tokens b,
               pixl_verify_token(b.tok, 'orders:write', b.store_id) v WHERE b.id = 1)
    || ' ' || (SELECT v.status || ':' || v.reason FROM bench_tokens b,
               pixl_verify_token(b.tok, 'products:read', 'store_2') v WHERE b.id = 1)")
echo "$SANITY" >"$OUT/sanity.log"
[ "$SANITY" = "10001/10001 401:malformed 403:insufficient_scope 403:wrong_store" ] \
    || die "pixl_verify_token sanity failed: got '$SANITY'"
PG_VERSION=$(q "SELECT version()")
EXT_VERSION=$(q "SELECT extversion FROM pg_extension WHERE extname = 'pixltoken'")
GIT_REV=$(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$( (git -C "$HERE" status --porcelain -- ../src ../sql 2>/dev/null || true) | wc -l)

RESULTS="$OUT/results.tsv"
printf 'phase\trep\tscript\tclients\ttps\tavg_ms\tstddev_ms\tspread\tsteal\tother\ttxns\tingest\n' >"$RESULTS"

# pgbench_run NAME SCRIPT CLIENTS SECONDS: runs pgbench, leaves the log in $OUT/NAME.log
pgbench_run() {
    local name=$1 script=$2 c=$3 secs=$4
    local j=$(( c < 2 ? c : 2 ))
    "$PGBIN/pgbench" -n -M prepared -c "$c" -j "$j" -T "$secs" -P 1 \
        -D scope=products:read -D hottok="$HOTTOK" -D hotstore="$HOTSTORE" -D warm=1 \
        -f "$script" "$DB" >"$OUT/$name.log" 2>&1 \
        || { tail -20 "$OUT/$name.log"; die "pgbench failed: $name"; }
}

# ---------------------------------------------------------------- ingestion
# The worker's view of the bench database, from pixl_stats() (one row per
# served database, and one with datname NULL for all unserved ones).
# In the unserved phase the bench database's counters are in the row of
# datname NULL (all databases without a worker).
STATS_WHERE="WHERE datname = current_database()"
stats_counters() {  # "written_through dropped flushed waited"
    # events_waited: calls that found the queue full and waited for the worker
    q "SELECT coalesce(sum(events_written_through), 0) || ' ' || coalesce(sum(events_dropped), 0)
              || ' ' || coalesce(sum(events_flushed), 0) || ' ' || coalesce(sum(events_waited), 0)
         FROM pixl_stats() $STATS_WHERE"
}

# wait_drained: until the queue is empty (at most 120 s); prints seconds waited
wait_drained() {
    local t0 t1 queued
    t0=$(date +%s.%N)
    for _ in $(seq 1200); do
        queued=$(q "SELECT coalesce(sum(events_queued), 0) FROM pixl_stats() $STATS_WHERE")
        [ "$queued" = 0 ] && break
        sleep 0.1
    done
    [ "$queued" = 0 ] || log "WARNING: queue not drained after 120 s ($queued events queued)"
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}'
}

# Samples pixl_stats() every 0.2 s over one connection while pgbench runs.
lag_sampler_start() {
    local file=$1
    { while :; do echo "SELECT extract(epoch FROM clock_timestamp()), events_queued, coalesce(extract(epoch FROM flush_lag), 0) FROM pixl_stats() $STATS_WHERE;"; sleep 0.2; done; } \
        | "$PGBIN/psql" -X -q -At -F ' ' >"$file" 2>&1 &
    SAMPLER=$!
    BG_PIDS="$SAMPLER"
}
lag_sampler_stop() {
    kill "$SAMPLER" 2>/dev/null || true
    wait "$SAMPLER" 2>/dev/null || true
    BG_PIDS=""
}

# run_case PHASE LABEL SCRIPT CLIENTS
run_case() {
    local phase=$1 label=$2 script=$3 c=$4
    local name
    name=${phase}_$(echo "$label" | tr -c 'A-Za-z0-9\n' '_')_c${c}_r$REP
    log "[$phase rep $REP/$REPS] $label c=$c T=${DURATION}s"
    "${PSQL[@]}" -c "CHECKPOINT"
    local ingest_case=0
    [[ "$label" == verify* ]] && ingest_case=1
    local before="" t_start
    if [ "$ingest_case" = 1 ]; then
        wait_drained >/dev/null
        before=$(date -u '+%Y-%m-%d %H:%M:%S.%6N+00')
        read -r wt0 dr0 fl0 wa0 < <(stats_counters)
        lag_sampler_start "$OUT/$name.lag"
    fi
    local warm=$WARM extra=0
    if [[ "$script" == */pgbench/verify_random.sql ]]; then
        # its first 100 transactions per client verify 100 tokens each
        warm=${WARM_RANDOM:-$(( 10 + c * WARM_RANDOM_PER_CLIENT ))}; extra=$(( c * 9900 ))
    fi
    wait_quiet
    local s0 s1
    t_start=$(date +%s.%N)
    pgbench_run "$name" "$script" "$c" $(( warm + DURATION )) &
    local pg_pid=$!
    # the noise gauges cover the measured window only
    sleep "$warm"; s0=$(cpu_snap)
    wait "$pg_pid" || exit 1
    s1=$(cpu_snap)
    local tps avg sd n failed spread ingest="-" tps_all
    # steady state: the -P 1 progress lines after the warm-up seconds
    read -r tps avg sd spread < <(awk -v w="$warm" '/^progress:/ {t = $2 + 0; if (t <= w) next
            v = $4 + 0; n++; s += v; l += v * $7; d += $10
            if (mn == "" || v < mn) mn = v; if (v > mx) mx = v }
        END { if (n == 0 || s == 0) print "0 0 0 -"; else printf "%.1f %.3f %.3f %.0f-%.0f\n", s / n, l / s, d / n, mn, mx }' "$OUT/$name.log")
    tps_all=$(awk -F'[ =]+' '/^tps =/ {printf "%.0f", $2}' "$OUT/$name.log")
    n=$(awk -F': ' '/^number of transactions actually processed/ {print $2}' "$OUT/$name.log")
    failed=$(awk '/^number of failed transactions/ {print $5}' "$OUT/$name.log")
    [ "${failed:-0}" = 0 ] || die "$name: $failed failed transactions"
    spread="$spread (run $tps_all)"

    if [ "$ingest_case" = 1 ]; then
        # Events the worker flushed for this run, once the queue is empty.
        local t_end drain events s200 s403 s429 other_st lagmax lagall secs wt1 dr1 fl1 wa1
        t_end=$(date +%s.%N)
        drain=$(wait_drained)
        lag_sampler_stop
        read -r wt1 dr1 fl1 wa1 < <(stats_counters)
        read -r events s200 s403 s429 other_st < <(q "SELECT count(*), count(*) FILTER (WHERE status = 200),
                count(*) FILTER (WHERE status = 403), count(*) FILTER (WHERE status = 429),
                count(*) FILTER (WHERE status NOT IN (200, 403, 429))
              FROM pixl_usage_events WHERE at >= '$before'" | tr '|' ' ')
        # max lag in the measured window, and over the whole run (warm-up burst included)
        lagmax=$(awk -v t0="$t_start" -v w="$warm" '$3 ~ /^[0-9.]+$/ && $1 >= t0 + w {if ($3 > m) m = $3} END {printf "%.2f", m + 0}' "$OUT/$name.lag")
        lagall=$(awk '$3 ~ /^[0-9.]+$/ {if ($3 > m) m = $3} END {printf "%.2f", m + 0}' "$OUT/$name.lag")
        secs=$(awk -v a="$t_start" -v b="$t_end" -v d="$drain" 'BEGIN {printf "%.2f", b - a + d}')
        local eps
        eps=$(awk -v e="$events" -v s="$secs" 'BEGIN {printf "%.0f", (s > 0) ? e / s : 0}')
        local ok=OK expect=$(( n + extra ))
        [ "$events" = "$expect" ] || ok=MISMATCH
        local wt=$((wt1 - wt0)) dr=$((dr1 - dr0)) fl=$((fl1 - fl0)) wa=$((wa1 - wa0))
        # fields: events/s | drain s | max lag s | events | check | 200 | 403 | 429 | other | flushed | written through | dropped
        ingest="$eps|$drain|$lagmax|$events|$ok|$s200|$s403|$s429|$other_st|$fl|$wt|$dr|$expect|$lagall|$wa"
        log "   events=$events expected=$expect ($ok) 200=$s200 403=$s403 429=$s429 flushed=$fl written_through=$wt waited=$wa dropped=$dr drain=${drain}s max_lag=${lagmax}s (whole run ${lagall}s)"
    fi
    if [[ "$label" == baseline* ]]; then
        # the baseline keeps its rate counters and usage rows in tables
        "${PSQL[@]}" -c "TRUNCATE rate_counters, usage_events"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$phase" "$REP" "$label" "$c" "$tps" "$avg" "${sd:-}" \
        "$spread" "$(steal_pct "$s0" "$s1")" "$(other_pct "$s0" "$s1")" "$n" "$ingest" >>"$RESULTS"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
_a=$(cpu_snap); sleep 2; _b=$(cpu_snap)
OTHER_START=$(other_pct "$_a" "$_b")

for PHASE in $PHASES; do
    if [ "$(phase_db "$PHASE")" != "$CUR_DB" ]; then
        CUR_DB=$(phase_db "$PHASE")
        log "restarting with pixltoken.database = '$CUR_DB'"
        bench_stop
        bench_set pixltoken.database "$CUR_DB"
        bench_start
    fi
    if [ "$PHASE" = unserved ]; then
        STATS_WHERE="WHERE datname IS NULL"
    else
        STATS_WHERE="WHERE datname = current_database()"
        # wait (at most 30 s) until the worker serves the bench database
        for _ in $(seq 300); do
            [ "$(q "SELECT worker_state FROM pixl_stats() $STATS_WHERE" 2>/dev/null)" = serving ] && break
            sleep 0.1
        done
    fi
    q "SELECT * FROM pixl_stats()" >"$OUT/stats-start-$PHASE.log"
    log "[$PHASE] warm-up (5s verify_hot at 8 clients, not recorded)"
    pgbench_run "${PHASE}_warmup" "$HERE/pgbench/verify_hot.sql" 8 5
    for ((REP = 1; REP <= REPS; REP++)); do
        for c in $CLIENTS; do
            run_case "$PHASE" "floor A: SELECT 1" "$HERE/pgbench/floor_a.sql" "$c"
            run_case "$PHASE" "floor B: bench_tokens lookup" "$HERE/pgbench/floor_b.sql" "$c"
            run_case "$PHASE" "verify random token" "$HERE/pgbench/verify_random.sql" "$c"
            run_case "$PHASE" "verify hot token" "$HERE/pgbench/verify_hot.sql" "$c"
            if [ "$PHASE" = served ] && [ "$BASELINE" = 1 ]; then
                run_case "$PHASE" "baseline random token" "$HERE/baseline/verify_random.sql" "$c"
                run_case "$PHASE" "baseline hot token" "$HERE/baseline/verify_hot.sql" "$c"
            fi
        done
    done
done

# ---------------------------------------------------------------- per-call cost
PERCALL_MD=""
if [ "$PROFILE" = 1 ] && [ "$CUR_DB" = "$DB" ]; then
    . "$HERE/profile.sh"
    PERCALL_MD=$(profile_percall)
    PERF_MD=$(profile_perf)
fi

# ---------------------------------------------------------------- report
ELAPSED=$(( $(date +%s) - T0 ))
# The floor each case is divided by.
floor_of() {
    case "$1" in
        "verify random token"|"baseline random token"|"floor B: bench_tokens lookup") echo "floor B: bench_tokens lookup" ;;
        *) echo "floor A: SELECT 1" ;;
    esac
}
field() { awk -F'\t' -v k="$1" -v f="$2" 'NR > 1 && ($1 "\t" $3 "\t" $4) == k {print $f}' "$RESULTS"; }
table_for_phase() {
    local phase=$1 label c fl key tps avg sd steal other ratio ratios r verdict spread
    echo "| case | clients | TPS | avg latency ms | latency stddev ms | divided by | ratio | target ≥ $RATIO_TARGET | 1s TPS min-max (whole run) | CPU steal % | other CPU % |"
    echo "|---|---:|---:|---:|---:|---|---:|---|---:|---:|---:|"
    while IFS=$'\t' read -r label c; do
        key="$phase"$'\t'"$label"$'\t'"$c"
        fl=$(floor_of "$label")
        tps=$(median $(field "$key" 5)); avg=$(median $(field "$key" 6)); sd=$(median $(field "$key" 7))
        steal=$(field "$key" 9 | sort -g | tail -1); other=$(field "$key" 10 | sort -g | tail -1)
        spread=$(field "$key" 8 | paste -sd' ')
        # ratio per rep (each against the floor of the same rep), median over reps
        ratios=()
        for ((r = 1; r <= REPS; r++)); do
            local a b
            a=$(awk -F'\t' -v p="$phase" -v r="$r" -v l="$label" -v c="$c" '$1 == p && $2 == r && $3 == l && $4 == c {print $5}' "$RESULTS")
            b=$(awk -F'\t' -v p="$phase" -v r="$r" -v l="$fl" -v c="$c" '$1 == p && $2 == r && $3 == l && $4 == c {print $5}' "$RESULTS")
            [ -n "$a" ] && [ -n "$b" ] && ratios+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", a / b}')")
        done
        ratio=$(median "${ratios[@]}")
        if [[ "$label" == floor* ]]; then verdict="-"; fl="-"; ratio=$(printf '%.3f' "$ratio")
        elif [[ "$label" == baseline* ]]; then verdict="(baseline)"
        elif awk -v r="$ratio" -v t="$RATIO_TARGET" 'BEGIN {exit !(r >= t)}'; then verdict="met"
        else verdict="**missed**"; fi
        printf '| %s | %s | %.0f | %.3f | %s | %s | %s | %s | %s | %s | %s |\n' \
            "$label" "$c" "$tps" "$avg" "$sd" "${fl%%:*}" "$ratio" "$verdict" "$spread" "$steal" "$other"
    done < <(awk -F'\t' -v p="$phase" 'NR > 1 && $1 == p && !seen[$3 "\t" $4]++ {print $3 "\t" $4}' "$RESULTS" \
             | sort -t$'\t' -k2,2n -s)
}
ingest_table() {
    echo "| case | clients | rep | TPS (window) | verifications made | events in pixl_usage_events | count check | 200 / 403 / 429 / other | flushed by worker / written through / waited for a full queue / dropped (pixl_stats) | events flushed per s | drain after run s | max flush lag s, measured window (whole run) | lag target < ${LAG_TARGET} s |"
    echo "|---|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|---|"
    awk -F'\t' -v t="$LAG_TARGET" -v p="$1" 'NR > 1 && $1 == p && $12 != "-" {
        split($12, g, "|")
        v = (g[3] + 0 < t) ? "met" : "**missed**"
        printf "| %s | %s | %s | %.0f | %s | %s | %s | %s / %s / %s / %s | %s / %s / %s / %s | %s | %s | %s (%s) | %s |\n",
            $3, $4, $2, $5, g[13], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[15], g[12], g[1], g[2], g[3], g[14], v }' "$RESULTS"
}

CPU=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
{
    echo "# pixltoken verification and ingestion benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); tree: $GIT_REV (uncommitted files under src/ sql/: $GIT_DIRTY); pixltoken $EXT_VERSION"
    echo "- nproc: $(nproc) ($CPU, $(uname -r)); load generator on the same cores"
    echo "- $PG_VERSION"
    echo "- settings as shared/bench/run.sh (shared_buffers=256MB, fsync=on, synchronous_commit=on, max_wal_size=4GB, checkpoint_timeout=30min) plus shared_preload_libraries=pixltoken, pixltoken.max_tracked_tokens=20000"
    echo "- pgbench -n -M prepared -P 1 -j min(2, clients), TCP 127.0.0.1:$PGPORT, -T warm-up + $DURATION s; TPS and latency are from the progress lines of the last $DURATION s (warm-up: ${WARM} s; for verify random ${WARM_RANDOM:-10 + $WARM_RANDOM_PER_CLIENT × clients} s, whose clients first verify all 10,000 tokens once, in 100 transactions of 100, to warm their backend's token cache); reps: $REPS (interleaved; medians over reps)"
    echo "- pixltoken.queue_size = 16384 (the default), pixltoken.max_tracked_tokens = 20000"
    echo "- at start: other CPU ${OTHER_START}% (2 s sample), loadavg $LOAD_START; wall time ${ELAPSED}s; raw logs bench/out/$STAMP/"
    echo "- rerun: \`bash bench/run.sh\` (as root, after \`make && make install\`); pixltoken.so sha256 $LIB_SHA at start, $(sha256sum "$LIB" | cut -c1-12) at end (they differ if someone reinstalled the extension during the run: distrust the run, and the perf symbols)"
    echo
    echo "Cases: floor A \`SELECT 1\`; floor B \`SELECT tok FROM bench_tokens WHERE id = :id\` (random of 10,000);"
    echo "verify random: \`SELECT v.* FROM bench_tokens b, pixl_verify_token(b.tok, :scope, b.store_id, 'GET', '/v1/products', '203.0.113.7') v WHERE b.id = :id\` ÷ floor B;"
    echo "verify hot: \`SELECT * FROM pixl_verify_token(:hottok, :scope, :hotstore, …)\`, all clients on one token (limit 1000/min: after the first 1000 calls of a minute it answers 429) ÷ floor A;"
    echo "baseline: shared/bench's plain-SQL \`baseline_verify\` (bench/baseline/), random ÷ floor B, hot ÷ floor A."
    echo "1s TPS min-max: slowest–fastest 1-second progress interval of the measured window (per rep), then the TPS of the whole pgbench run incl. warm-up; steal / other CPU: measured window, max over reps (other = processes outside this bench, e.g. other engineers' builds)."
    echo
    for PHASE in $PHASES; do
        if [ "$PHASE" = served ]; then
            echo "## Verification, usage worker serving the bench database (production setup)"
        else
            echo "## Misconfiguration: no usage worker serves the bench database (every verification writes its event through)"
        fi
        echo
        table_for_phase "$PHASE"
        echo
        echo "Ingestion, after each verify run: the queue is drained (pixl_stats().events_queued = 0), then the run's rows of pixl_usage_events are counted by status."
        echo "events flushed per s = events ÷ (pgbench duration + drain time after pgbench ended). Target: count check OK (no loss), lag < ${LAG_TARGET} s."
        echo
        ingest_table "$PHASE"
        echo
    done
    if [ -n "$PERCALL_MD" ]; then
        echo "## Per-call cost"
        echo
        echo "$PERCALL_MD"
        echo
        echo "$PERF_MD"
        echo
    fi
} >"$OUT/results.md"
cp "$OUT/results.md" "$RESDIR/results.md"
ln -sfn "$STAMP" "$RESDIR/out/latest"
echo
cat "$OUT/results.md"
