#!/usr/bin/env bash
# pixltoken on a primary and a streaming standby: each
# figure a ratio measured side by side in ONE run, interleaved (ABAB).
#
#   make && make install                          # the extension under test
#   bash bench/replicas.sh                        # as root; ~6 min, writes bench/results-replicas.md
#   PG_CONFIG=/path/to/pg_config bash bench/replicas.sh   # another PostgreSQL 15
#   bash bench/replicas.sh failover               # only the seconds without answers during an
#                                                 # automatic failover (pg_auto_failover): bench/failover.sh
#
# Two throwaway clusters in one mktemp dir under /tmp, run as the postgres
# OS user: a primary (127.0.0.1:$PGPORT, default 55435) loaded with
# bench/setup.sql's 10,000 tokens and the call-shape floor (bench/floor/),
# and a standby made from it with pg_basebackup -R (127.0.0.1:$SPORT,
# default PGPORT + 1), streaming; shared_preload_libraries = pixltoken on
# both; stopped and removed on exit (KEEP=1 keeps them).
#
# The figures (pgbench -n -M prepared -P 1, warm random token of 10,000,
# bench/pgbench/verify_random.sql and floor_random.sql as in run.sh; TPS =
# mean of the 1 s progress lines of a measured window):
#   a) standby: verification ÷ the call-shape floor with lookup on the same
#      standby, at each of $CLIENTS; REPS rounds of floor, verify;
#   b) standby: pixltoken.max_standby_staleness = $STALENESS ÷ unset
#      (wal_receiver_timeout $WAL_RECEIVER_TIMEOUT on the standby throughout),
#      at each of $CLIENTS: one pgbench run, warm once, the bound toggled by
#      a reload between 2 x REPS_BOUND windows (unset, set, unset, set, ...);
#   c) primary + standby together (pgbench against both at once, half the
#      clients each, TPS summed) ÷ the primary alone with the same total (also
#      two pgbench processes of half the clients: the same client side), at
#      each of $CLIENTS; REPS rounds of alone, together;
#   d) the usage shipper (a standby with pixltoken.node_id = 1 ships its
#      usage to the primary over libpq): if the standby's pixl_stats() says
#      worker_state 'shipping', events shipped per second and the primary's
#      backend CPU per shipped event (/proc of the session whose
#      application_name is 'pixltoken shipper%'); otherwise "shipper not
#      available".
#
# Env knobs: CLIENTS (default "8 32"), REPS (rounds of a and c, default 2),
#   REPS_BOUND (rounds of b, default 3), SLICE (measured
#   seconds per window, default 5), WARM_RANDOM (warm-up seconds of each
#   run: each client first verifies the 10,000 tokens once; default from
#   the cold cost measured on the standby), FLOOR_WARM (3), STALENESS
#   (60s), WAL_RECEIVER_TIMEOUT (2s), SHARE (pixltoken.rate_limit_share on
#   both nodes, default 0.5: one limit shared by two nodes),
#   SHIP_CLIENTS (8), SHIP_SECS (10), QUIET_WAIT (2), KEEP=1, PGPORT, SPORT.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "${1:-}" = failover ]; then exec bash "$HERE/failover.sh"; fi
PGPORT=${PGPORT:-55435}
SPORT=${SPORT:-$((PGPORT + 1))}
DB=pixlbench
CLIENTS=${CLIENTS:-"8 32"}
REPS=${REPS:-2}
REPS_BOUND=${REPS_BOUND:-3}
SLICE=${SLICE:-5}
WARM_RANDOM=${WARM_RANDOM:-}
FLOOR_WARM=${FLOOR_WARM:-3}
STALENESS=${STALENESS:-60s}
WAL_RECEIVER_TIMEOUT=${WAL_RECEIVER_TIMEOUT:-2s}
SHARE=${SHARE:-0.5}
SHIP_CLIENTS=${SHIP_CLIENTS:-8}
SHIP_SECS=${SHIP_SECS:-10}
QUIET_WAIT=${QUIET_WAIT:-2}

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_preflight
if (exec 3<>"/dev/tcp/127.0.0.1/$SPORT") 2>/dev/null; then die "port $SPORT already in use"; fi
[ -x "$PGBIN/pg_basebackup" ] || die "missing $PGBIN/pg_basebackup"
for c in $CLIENTS; do [ $((c % 2)) = 0 ] || die "CLIENTS must be even (split between the two nodes): $c"; done

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
if [ -w "$HERE" ]; then RESDIR=$HERE; else RESDIR=${BENCH_OUT:-/tmp/pixlbench-results}; fi
OUT="$RESDIR/out/replicas-$STAMP"
mkdir -p "$OUT"
T0=$(date +%s)
LIB=$("$PG_CONFIG" --pkglibdir)/pixltoken.so
LIB_SHA=$(sha256sum "$LIB" | cut -c1-12)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
UPTIME_START=$(uptime)

bench_cluster_init      # the primary: $WORK/pgdata, port $PGPORT
SDATA="$WORK/standby"
S_STARTED=0
bench_cleanup_extra() {  # called by bench_cleanup: the standby first
    if [ "$S_STARTED" = 1 ] && [ -f "$SDATA/postmaster.pid" ]; then
        log "stopping the standby (pg_ctl stop -m fast)"
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$SDATA" -m fast -w stop >/dev/null
    fi
    [ -f "$WORK/standby.log" ] && cp "$WORK/standby.log" "$OUT/standby.log" 2>/dev/null
    return 0
}

# ---------------------------------------------------------------- setup
bench_build_floor

# as run.sh, and the settings every node of a two-node cluster has (the
# standby inherits them through the base backup)
bench_set pixltoken.max_tracked_tokens 20000
bench_set pixltoken.database "$DB"
bench_set pixltoken.rate_limit_share "$SHARE"
bench_set cluster_name pixlbench_primary
bench_start
PRIMARY_PM=$PM_PID

"${PSQL[@]}" -d postgres -c "CREATE DATABASE $DB"
log "loading bench/setup.sql (10,002 tokens via pixl_create_token) on the primary"
"${PSQL[@]}" -f "$HERE/setup.sql" >"$OUT/setup.log" 2>&1 || { cat "$OUT/setup.log"; die "setup.sql failed"; }
"${PSQL[@]}" -c "CREATE EXTENSION pixltoken_bench_floor" >"$OUT/floor-create.log" 2>&1 \
    || { cat "$OUT/floor-create.log"; die "CREATE EXTENSION pixltoken_bench_floor failed"; }
"${PSQL[@]}" -c "VACUUM ANALYZE" -c "CHECKPOINT"

log "pg_basebackup -R of the primary into $SDATA"
runuser -u postgres -- "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PGPORT" -U postgres -D "$SDATA" -R -X stream -c fast \
    >"$OUT/basebackup.log" 2>&1 || { cat "$OUT/basebackup.log"; die "pg_basebackup failed"; }
cat >>"$SDATA/postgresql.conf" <<EOF

# --- replicas.sh: the standby ---
port = $SPORT
cluster_name = 'pixlbench_standby'
hot_standby = on
wal_receiver_timeout = '$WAL_RECEIVER_TIMEOUT'
# figure (b) rewrites this file and reloads
include_if_exists = 'bench_toggle.conf'
EOF
# the usage shipper: this standby's node number, when the
# installed pixltoken defines the setting (an unknown pixltoken.* setting
# is removed with a warning at start and makes every reload complain)
if [ "$(q "SELECT count(*) FROM pg_settings WHERE name = 'pixltoken.node_id'")" = 1 ]; then
    echo "pixltoken.node_id = 1" >>"$SDATA/postgresql.conf"
    NODE_ID_NOTE="pixltoken.node_id=1"
else
    NODE_ID_NOTE="pixltoken.node_id not set (this build does not define it)"
fi
TOGGLE="$SDATA/bench_toggle.conf"
set_bound() {  # set_bound VALUE: pixltoken.max_standby_staleness on the standby (reload)
    echo "pixltoken.max_standby_staleness = '$1'" >"$TOGGLE"
    chown postgres:postgres "$TOGGLE"
    PGPORT=$SPORT q "SELECT pg_reload_conf()" >/dev/null
}
echo "pixltoken.max_standby_staleness = 0" >"$TOGGLE"
chown postgres:postgres "$TOGGLE"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$SDATA" -l "$WORK/standby.log" -w -t 60 start >/dev/null \
    || { tail -30 "$WORK/standby.log"; die "the standby did not start"; }
S_STARTED=1
STANDBY_PM=$(head -1 "$SDATA/postmaster.pid")
PM_PIDS="$PRIMARY_PM $STANDBY_PM"     # both trees are this bench's CPU (cpu_snap)
sq() { PGPORT=$SPORT q "$1"; }        # one value from the standby
sqn() { PGPORT=$SPORT qn "$1"; }

# the standby streams and has replayed the setup
for _ in $(seq 100); do
    [ "$(PGPORT=$SPORT qn "SELECT pg_is_in_recovery() AND (SELECT count(*) FROM bench_tokens) = 10002")" = t ] && break
    sleep 0.2
done
[ "$(sq "SELECT pg_is_in_recovery()")" = t ] || die "the standby is not in recovery"
[ "$(sq "SELECT count(*) FROM bench_tokens")" = 10002 ] || die "the standby has not replayed the bench tokens"
[ "$(q "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ] || die "the standby does not stream"

# Sanity, on both nodes: every bench token answers 200; the floor 200.
log "sanity checks (primary and standby)"
SANITY_SQL="SELECT (SELECT count(*) FILTER (WHERE v.status = 200) || '/' || count(*)
       FROM bench_tokens b,
            pixl_verify_token(b.tok, 'products:read', b.store_id, 'GET', '/v1/products', '203.0.113.7') v)
    || ' ' || (SELECT status FROM pixl_bench_floor_lookup('x'))"
for node in primary standby; do
    [ $node = primary ] && port=$PGPORT || port=$SPORT
    got=$(PGPORT=$port q "$SANITY_SQL")
    echo "$node: $got" >>"$OUT/sanity.log"
    [ "$got" = "10002/10002 200" ] || die "sanity on the $node failed: got '$got' (expected '10002/10002 200')"
done
STANDBY_STATUS=$(sq "SELECT format('is_standby %s, staleness %s, basis %s', is_standby, staleness, basis) FROM pixl_replica_status()")
log "standby: $STANDBY_STATUS"
PG_VERSION=$(q "SELECT version()")
EXT_VERSION=$(q "SELECT extversion FROM pg_extension WHERE extname = 'pixltoken'")
GIT_REV=$(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$( (git -C "$HERE" status --porcelain -- ../src ../sql ../schema ../released 2>/dev/null || true) | wc -l)

WPIDS=$(worker_pids)
for _ in $(seq 100); do [ -n "$WPIDS" ] && break; sleep 0.1; WPIDS=$(worker_pids); done
[ -n "$WPIDS" ] || die "no pixltoken background worker is running on the primary (pg_stat_activity)"
log "primary's pixltoken worker pid(s): $WPIDS"

# ---------------------------------------------------------------- helpers
HOTTOK=$(q "SELECT tok FROM bench_tokens WHERE id = 0")
# rp_pgbench NAME PORT SCRIPT CLIENTS SECONDS [pgbench args]: log in $OUT/NAME.log
rp_pgbench() {
    local name=$1 port=$2 script=$3 c=$4 secs=$5; shift 5
    local j=$(( c < 2 ? c : 2 ))
    "$PGBIN/pgbench" -n -M prepared -c "$c" -j "$j" -T "$secs" -P 1 -h 127.0.0.1 -p "$port" \
        -D scope=products:read -D hottok="$HOTTOK" -D hotstore=store_hot -D warm=1 \
        "$@" -f "$HERE/pgbench/$script" "$DB" >"$OUT/$name.log" 2>&1 \
        || { tail -20 "$OUT/$name.log"; die "pgbench failed: $name"; }
    local failed
    failed=$(awk '/^number of failed transactions/ {print $5}' "$OUT/$name.log")
    [ "${failed:-0}" = 0 ] || die "$name: $failed failed transactions"
}
RESULTS="$OUT/results.tsv"
printf 'key\tclients\ttps\tlat_ms\tsd_ms\tminmax\tsteal\tother\tnote\tcpu_us\trep\n' >"$RESULTS"
ROUND=1
record() {  # record KEY C "tps lat sd minmax" STEAL OTHER NOTE CPU_US_PER_TXN (as run.sh)
    local key=$1 c=$2 tps lat sd mm
    read -r tps lat sd mm <<<"$3"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$key" "$c" "$tps" "$lat" "$sd" "$mm" "$4" "$5" "${6:-}" "${7:-}" "$ROUND" >>"$RESULTS"
    log "   $key c=$c: $tps tps, ${lat} ms, ${7:-?} µs CPU/txn (1 s min-max $mm; other CPU $5%)"
}
FIG="$OUT/figures.tsv"
: >"$FIG"
fig() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$FIG"; log "   figure $1 c=$2: $3"; }
fig_of() { awk -F'\t' -v k="$1" -v c="$2" '$1 == k && $2 == c {print $3}' "$FIG"; }
# sleep_until T: until T seconds after $RUN_T0 (the start of the current pgbench)
sleep_until() { sleep "$(awk -v t0="$RUN_T0" -v t="$1" -v now="$(date +%s.%N)" 'BEGIN {d = t0 + t - now; printf "%.3f", (d > 0) ? d : 0}')"; }
# the standby's view, sampled at the end of each window (reported)
staleness_sample() { sqn "SELECT coalesce(round(extract(epoch FROM staleness) * 1000)::text, 'NULL') || ' ' || basis FROM pixl_replica_status()" >>"$OUT/staleness.log"; }
# every bench token answers 200 on the standby at this moment (the
# bound set must not have turned answers into 503 stale): "200s/calls"
standby_200s() { sqn "SELECT count(*) FILTER (WHERE v.status = 200) || '/' || count(*) FROM bench_tokens b, pixl_verify_token(b.tok, 'products:read', b.store_id, 'GET', '/v1/products', '203.0.113.7') v WHERE b.id BETWEEN 1 AND 500"; }
CHECKS="$OUT/checks.log"
: >"$CHECKS"
check_200s() {  # check_200s WHERE: append to checks.log, warn if not all 200
    local got
    got=$(standby_200s)
    echo "$1: $got" >>"$CHECKS"
    [ "$got" = "500/500" ] || { log "WARNING: standby answers at $1: $got answered 200 (expected 500/500)"; NON200="${NON200:-} $1($got)"; }
}

# Warm-up of the random cases (as run.sh): each client verifies the 10,000
# tokens once; from the cold cost on the standby, measured here: one session,
# one statement over the 10,000 tokens (all misses) minus the same join.
log "cold cost on the standby (one pass over 10,000 tokens in a new backend)"
COLD_US=$(PGPORT=$SPORT "${PSQL[@]}" -At -F ' ' <<'EOF' | awk '{ms[$1] = $2} END {printf "%.2f", (ms["verify"] - ms["join"]) * 1000 / 10000}'
SELECT 'join', 1000 * extract(epoch FROM clock_timestamp() - statement_timestamp()) FROM (SELECT count(*) FROM bench_tokens b, LATERAL (SELECT b.tok, b.store_id) v WHERE b.id > 0) s;
SELECT 'verify', 1000 * extract(epoch FROM clock_timestamp() - statement_timestamp()) FROM (SELECT count(*) FROM bench_tokens b, pixl_verify_token(b.tok, 'products:read', b.store_id, 'GET', '/v1/products', '203.0.113.7') v WHERE b.id > 0) s;
EOF
)
log "   cold verification on the standby: $COLD_US µs per call"
warm_random() {
    if [ -n "$WARM_RANDOM" ]; then echo "$WARM_RANDOM"; return; fi
    awk -v c="$1" -v us="$COLD_US" 'BEGIN {w = 3 + c * 10000 * us * 1.5 / 1e6; printf "%d", (w == int(w)) ? w : int(w) + 1}'
}
check_warm() {  # check_warm LOGNAME C W: warn if the c x 100 warm-up transactions were not done by W s
    local ndone
    ndone=$(awk -v t="$3" '/^progress:/ && $2 + 0 <= t {s += $4} END {printf "%.0f", s}' "$OUT/$1.log")
    if [ "$ndone" -lt $(($2 * 100)) ]; then
        log "WARNING: $1: only $ndone transactions by ${3}s, the warm-up needs $(($2 * 100))"
        WARM_SHORT="${WARM_SHORT:-} $1"
    fi
}

# case_run KEY PORT SCRIPT C WARMUP [pgbench args]: SLICE measured seconds after WARMUP
case_run() {
    local key=$1 port=$2 script=$3 c=$4 w=$5; shift 5
    CASE_SEQ=$((${CASE_SEQ:-0} + 1))
    local name s0 s1 pid
    name=$(printf '%03d' "$CASE_SEQ")_${key}_c${c}_r$ROUND
    log "$key c=$c round $ROUND (warm-up ${w}s + ${SLICE}s)"
    wait_quiet
    rp_pgbench "$name" "$port" "$script" "$c" $((w + SLICE)) "$@" &
    pid=$!
    sleep "$w"; s0=$(cpu_snap); n0=$(node_cpu)
    wait "$pid" || exit 1
    s1=$(cpu_snap); n1=$(node_cpu)
    [ "$script" = verify_random.sql ] && check_warm "$name" "$c" "$w"
    record "$key" "$c" "$(window "$w" $((w + SLICE)) "$OUT/$name.log")" "$(steal_pct "$s0" "$s1")" "$(other_pct "$s0" "$s1")" \
        "$(split_note "$n0" "$n1" "$(wtxns "$w" $((w + SLICE)) "$OUT/$name.log")")" "$(cpu_per_txn "$s0" "$s1" "$w" $((w + SLICE)) "$OUT/$name.log")"
}
# node_cpu: "primary standby" CPU ticks of each server's process tree
# (utime+stime+cutime+cstime: exited backends count through their postmaster)
node_cpu() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v p="$PRIMARY_PM" -v s="$STANDBY_PM" '
        { pid = $1; sub(/^.*\) /, ""); par[pid] = $2; t[pid] = $12 + $13 + $14 + $15 }
        END {
            for (x in t) {
                q = x
                for (n = 0; n < 8 && q > 1; n++) {
                    if (q == p) { a += t[x]; break }
                    if (q == s) { b += t[x]; break }
                    q = par[q]
                }
            }
            print a + 0, b + 0
        }'
}
# split_note N0 N1 TXNS: "server CPU µs/txn: primary A, standby B"
split_note() {
    awk -v x="$1" -v y="$2" -v n="$3" -v hz="$CLK_TCK" 'BEGIN {split(x, a, " "); split(y, b, " ")
        if (n > 0) printf "server CPU µs/txn: primary %.1f, standby %.1f", (b[1] - a[1]) / hz * 1e6 / n, (b[2] - a[2]) / hz * 1e6 / n }'
}
primary_settle() { "${PSQL[@]}" -c "CHECKPOINT"; wait_drained; }   # the usage worker's backlog written, WAL flushed

# ---------------------------------------------------------------- (d) is a shipper there?
SHIP_STATE=$(sqn "SELECT string_agg(DISTINCT worker_state, ',') FROM pixl_stats() WHERE datname = '$DB'")
for _ in $(seq 25); do
    [ "$SHIP_STATE" = shipping ] && break
    sleep 0.2
    SHIP_STATE=$(sqn "SELECT string_agg(DISTINCT worker_state, ',') FROM pixl_stats() WHERE datname = '$DB'")
done
log "standby's pixl_stats() worker_state for $DB: ${SHIP_STATE:-<no row>}"

# ---------------------------------------------------------------- (a) standby ÷ floor
for c in $CLIENTS; do
    wr=$(warm_random "$c")
    for ((ROUND = 1; ROUND <= REPS; ROUND++)); do
        primary_settle
        case_run s_floor "$SPORT" floor_random.sql "$c" "$FLOOR_WARM"
        case_run s_verify "$SPORT" verify_random.sql "$c" "$wr"
        staleness_sample
        check_200s "a c=$c r$ROUND"
    done
done
ROUND=1

# ---------------------------------------------------------------- (b) bound set ÷ unset
# One pgbench run per client count, warm once; windows of SLICE s, 1 s apart:
# unset, set, unset, set, ... (REPS rounds), the bound switched by a reload
# right after each window (backends read it before their next transaction).
for c in $CLIENTS; do
    wr=$(warm_random "$c")
    primary_settle
    set_bound 0
    name=s_bound_c$c
    total=$((wr + 2 * REPS_BOUND * (SLICE + 1)))
    log "bound: verify_random on the standby, c=$c (warm-up ${wr}s, then $((2 * REPS_BOUND)) windows of ${SLICE}s: unset, $STALENESS, ...)"
    wait_quiet
    st0=$(PGPORT=$SPORT stats_snap)
    RUN_T0=$(date +%s.%N)
    rp_pgbench "$name" "$SPORT" verify_random.sql "$c" "$total" &
    pid=$!
    t=$wr
    for ((ROUND = 1; ROUND <= REPS_BOUND; ROUND++)); do
        for v in unset set; do
            sleep_until "$t"; s0=$(cpu_snap); n0=$(node_cpu)
            sleep_until $((t + SLICE)); s1=$(cpu_snap); n1=$(node_cpu)
            staleness_sample
            if [ $v = unset ]; then set_bound "$STALENESS"; else check_200s "b c=$c r$ROUND set"; set_bound 0; fi
            record "s_bound_$v" "$c" "$(window "$t" $((t + SLICE)) "$OUT/$name.log")" "$(steal_pct "$s0" "$s1")" "$(other_pct "$s0" "$s1")" \
                "one run; bound $([ $v = set ] && echo "$STALENESS" || echo 0); $(split_note "$n0" "$n1" "$(wtxns "$t" $((t + SLICE)) "$OUT/$name.log")")" "$(cpu_per_txn "$s0" "$s1" "$t" $((t + SLICE)) "$OUT/$name.log")"
            t=$((t + SLICE + 1))
        done
    done
    wait "$pid" || exit 1
    check_warm "$name" "$c" "$wr"
    set_bound 0
    fig bound_detail "$c" "calls=$(( $(txns_of "$name") + c * 9900 )); standby pixl_stats() changes: $(stats_delta "$st0" "$(PGPORT=$SPORT stats_snap)")"
done
ROUND=1

# ---------------------------------------------------------------- (c) together ÷ primary alone
# pair_run KEY PORT_A PORT_B C W: two pgbench processes at once, C/2 clients
# each, against PORT_A and PORT_B; recorded as KEY (TPS summed) and its
# halves KEY_a, KEY_b.  The primary alone is a pair too (both halves on the
# primary), so both sides have the same client processes and threads and
# only the server of half the clients differs.
pair_run() {
    local key=$1 pa=$2 pb=$3 c=$4 w=$5 h=$(($4 / 2))
    local na nb pida pidb s0 s1 n0 n1 ta la tb lb nt row cpu
    CASE_SEQ=$((${CASE_SEQ:-0} + 1))
    na=$(printf '%03d' "$CASE_SEQ")_${key}_a_c${h}_r$ROUND
    nb=$(printf '%03d' "$CASE_SEQ")_${key}_b_c${h}_r$ROUND
    log "$key c=$c ($h on :$pa + $h on :$pb) round $ROUND (warm-up ${w}s + ${SLICE}s)"
    wait_quiet
    rp_pgbench "$na" "$pa" verify_random.sql "$h" $((w + SLICE)) &
    pida=$!
    rp_pgbench "$nb" "$pb" verify_random.sql "$h" $((w + SLICE)) &
    pidb=$!
    sleep "$w"; s0=$(cpu_snap); n0=$(node_cpu)
    wait "$pida" || exit 1
    wait "$pidb" || exit 1
    s1=$(cpu_snap); n1=$(node_cpu)
    check_warm "$na" "$h" "$w"; check_warm "$nb" "$h" "$w"
    read -r ta la _ _ <<<"$(window "$w" $((w + SLICE)) "$OUT/$na.log")"
    read -r tb lb _ _ <<<"$(window "$w" $((w + SLICE)) "$OUT/$nb.log")"
    row=$(awk -v ta="$ta" -v tb="$tb" -v la="$la" -v lb="$lb" 'BEGIN {t = ta + tb; printf "%.1f %.3f - -", t, (t > 0) ? (ta * la + tb * lb) / t : 0}')
    nt=$(( $(wtxns "$w" $((w + SLICE)) "$OUT/$na.log") + $(wtxns "$w" $((w + SLICE)) "$OUT/$nb.log") ))
    cpu=$(awk -v a="${s0##* }" -v b="${s1##* }" -v hz="$CLK_TCK" -v n="$nt" 'BEGIN {printf "%.1f", (n > 0) ? (b - a) / hz * 1e6 / n : 0}')
    record "${key}_a" "$c" "$(window "$w" $((w + SLICE)) "$OUT/$na.log")" - - "$h clients on :$pa" ""
    record "${key}_b" "$c" "$(window "$w" $((w + SLICE)) "$OUT/$nb.log")" - - "$h clients on :$pb" ""
    record "$key" "$c" "$row" "$(steal_pct "$s0" "$s1")" "$(other_pct "$s0" "$s1")" "sum of the two; $(split_note "$n0" "$n1" "$nt")" "$cpu"
}
for c in $CLIENTS; do
    wr=$(warm_random "$c")
    for ((ROUND = 1; ROUND <= REPS; ROUND++)); do
        primary_settle
        pair_run p_alone "$PGPORT" "$PGPORT" "$c" "$wr"
        primary_settle
        pair_run together "$PGPORT" "$SPORT" "$c" "$wr"
        check_200s "c c=$c r$ROUND"
    done
done
ROUND=1

# ---------------------------------------------------------------- (d) the shipper
SHIP_LINE="shipper not available (the standby's pixl_stats() worker_state for $DB: ${SHIP_STATE:-no row}; the usage shipper is not in this build)"
if [ "$SHIP_STATE" = shipping ]; then
    # shipped events: a pixl_stats() column named like '%shipped%' if there
    # is one, else events_flushed (on a standby: counts acknowledged)
    SHIP_COL=$(sqn "SELECT e.k FROM pixl_stats() s, jsonb_each_text(to_jsonb(s)) e(k, v) WHERE s.datname = '$DB' AND e.k LIKE '%shipped%' AND e.v ~ '^[0-9]+\$' ORDER BY e.k LIMIT 1")
    SHIP_COL=${SHIP_COL:-events_flushed}
    shipped() { sqn "SELECT coalesce(sum((to_jsonb(s) ->> '$SHIP_COL')::numeric), 0)::bigint FROM pixl_stats() s WHERE datname = '$DB'"; }
    shipper_pid() { qn "SELECT coalesce(string_agg(pid::text, ' '), '') FROM pg_stat_activity WHERE application_name LIKE 'pixltoken shipper%'"; }
    primary_settle
    wr=$(warm_random "$SHIP_CLIENTS")
    SPID=$(shipper_pid)
    log "shipper: primary session pid(s) '${SPID:-none}', counting $SHIP_COL; verify_random on the standby, c=$SHIP_CLIENTS (warm-up ${wr}s + ${SHIP_SECS}s)"
    e0=$(shipped); cpu0=$(proc_cpu $SPID); w0=$(proc_cpu $WPIDS); st0=$(PGPORT=$SPORT stats_snap)
    RUN_T0=$(date +%s.%N)
    rp_pgbench ship "$SPORT" verify_random.sql "$SHIP_CLIENTS" $((wr + SHIP_SECS)) &
    pid=$!
    sleep_until "$wr"; e1=$(shipped); c1=$(proc_cpu $SPID)
    sleep_until $((wr + SHIP_SECS)); e2=$(shipped); c2=$(proc_cpu $SPID)
    wait "$pid" || exit 1
    # then until the standby has nothing left to ship (at most 60 s)
    for _ in $(seq 300); do
        [ "$(PGPORT=$SPORT queued_now)" = 0 ] && break
        sleep 0.2
    done
    sleep 1
    e3=$(shipped); cpu3=$(proc_cpu $SPID); w3=$(proc_cpu $WPIDS); st3=$(PGPORT=$SPORT stats_snap)
    [ "$(shipper_pid)" = "$SPID" ] || log "WARNING: the shipper's session changed during the run ($SPID -> $(shipper_pid))"
    calls=$(( $(txns_of ship) + SHIP_CLIENTS * 9900 ))
    SHIP_RATE=$(awk -v a="$e1" -v b="$e2" -v s="$SHIP_SECS" 'BEGIN {printf "%.0f", (b - a) / s}')
    SHIP_WIN_US=$(awk -v a="$c1" -v b="$c2" -v e="$((e2 - e1))" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", (e > 0) ? (b - a) / hz * 1e6 / e : 0}')
    SHIP_US=$(awk -v a="$cpu0" -v b="$cpu3" -v e="$((e3 - e0))" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", (e > 0) ? (b - a) / hz * 1e6 / e : 0}')
    SHIP_LINE="events shipped per second while the standby verified (${SHIP_SECS}s window, $SHIP_CLIENTS clients): $SHIP_RATE; primary backend CPU per shipped event: $SHIP_US µs over the run to drained (${SHIP_WIN_US} µs in the window); events shipped $((e3 - e0)) of $calls verifications; primary's usage worker CPU meanwhile $(( (w3 - w0) * 1000 / CLK_TCK )) ms; counted by the standby's pixl_stats().$SHIP_COL (raw events acknowledged by the primary; the exact counts travel as aggregates), CPU of the primary's pid(s) ${SPID:-none}; standby pixl_stats() changes over the run: $(stats_delta "$st0" "$st3")"
    fig ship_rate "$SHIP_CLIENTS" "$SHIP_RATE"
    fig ship_us "$SHIP_CLIENTS" "$SHIP_US"
fi
log "$SHIP_LINE"
LIB_SHA_END=$(sha256sum "$LIB" | cut -c1-12)
UPTIME_END=$(uptime)

# ---------------------------------------------------------------- report
ELAPSED=$(( $(date +%s) - T0 ))
for c in $CLIENTS; do
    fig standby_ratio "$c" "$(ratio s_verify s_floor "$c")"
    fig standby_cratio "$c" "$(cratio s_verify s_floor "$c")"
    fig bound_ratio "$c" "$(ratio s_bound_set s_bound_unset "$c")"
    fig bound_cratio "$c" "$(cratio s_bound_set s_bound_unset "$c")"
    fig together_ratio "$c" "$(ratio together p_alone "$c")"
    fig together_cratio "$c" "$(cratio together p_alone "$c")"
    fig s_verify_cpu "$c" "$(mean_of s_verify "$c" 10)"
    fig p_alone_cpu "$c" "$(mean_of p_alone "$c" 10)"
done
per_c() {  # per_c KEY: "v8 / v32"
    local c out=""
    for c in $CLIENTS; do out="${out:+$out / }$(fig_of "$1" "$c")"; done
    echo "$out"
}
mean_tps() { mean_of "$1" "$2" 3; }
per_c_tps() {  # per_c_tps KEY: mean TPS per client count, "t8 / t32"
    local c out=""
    for c in $CLIENTS; do out="${out:+$out / }$(printf '%.0f' "$(mean_tps "$1" "$c")")"; done
    echo "$out"
}
CLIENT_LABEL=$(echo "$CLIENTS" | sed 's/ / \/ /g')
CPU_MODEL=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
MAX_OTHER=$(awk -F'\t' 'NR > 1 && $8 != "-" {if ($8 + 0 > m) m = $8 + 0} END {printf "%.1f", m}' "$RESULTS")
MAX_STEAL=$(awk -F'\t' 'NR > 1 && $7 != "-" {if ($7 + 0 > m) m = $7 + 0} END {printf "%.1f", m}' "$RESULTS")
STALE_SEEN=$(awk '{n++; b[$2] = 1} $1 != "NULL" {if ($1 + 0 > m) m = $1 + 0} $1 == "NULL" {u++}
    END {s = ""; for (k in b) s = s (s == "" ? "" : ", ") k; printf "%d samples, max %d ms%s (basis %s)", n, m, u ? ", " u " unknown" : "", s}' "$OUT/staleness.log" 2>/dev/null || echo "?")
CMD="bash bench/replicas.sh"
[ "$PG_CONFIG" = /usr/lib/postgresql/15/bin/pg_config ] || CMD="PG_CONFIG=$PG_CONFIG $CMD"
{
    echo "# pixltoken on a primary and a streaming standby"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); tree: $GIT_REV (uncommitted files under src/ sql/ schema/ released/: $GIT_DIRTY); pixltoken $EXT_VERSION; wall time ${ELAPSED}s; raw logs bench/out/replicas-$STAMP/"
    echo "- command: \`$CMD\` (as root; knobs: CLIENTS=\"$CLIENTS\" REPS=$REPS SLICE=$SLICE STALENESS=$STALENESS WAL_RECEIVER_TIMEOUT=$WAL_RECEIVER_TIMEOUT SHARE=$SHARE)"
    echo "- machine: nproc $(nproc) ($CPU_MODEL, $(uname -r)), shared with other engineers; primary, standby and pgbench on the same 2 cores; $PG_VERSION"
    echo "- load: at start \`$UPTIME_START\`; at end \`$UPTIME_END\`; max over the measured windows: other CPU ${MAX_OTHER}%, steal ${MAX_STEAL}% (the load average counts this bench's own processes, \"other CPU\" only the rest of the machine's)"
    echo "- nodes: primary 127.0.0.1:$PGPORT and a standby made by \`pg_basebackup -R -X stream\` streaming from it (127.0.0.1:$SPORT, async, wal_receiver_timeout $WAL_RECEIVER_TIMEOUT); both: settings of shared/bench/run.sh (shared_buffers=256MB, fsync=on, synchronous_commit=on), shared_preload_libraries=pixltoken, pixltoken.database=$DB, pixltoken.max_tracked_tokens=20000, pixltoken.rate_limit_share=$SHARE (shares summing to 1: the one-limit rule); standby: $NODE_ID_NOTE"
    echo "- pgbench -n -M prepared -P 1 -j min(2, clients), TCP; the warm random-token case of run.sh (bench/pgbench/verify_random.sql, floor_random.sql): each client first verifies the 10,000 tokens once ($(for c in $CLIENTS; do printf '%s s at %s clients; ' "$(warm_random "$c")" "$c"; done)from the cold cost on the standby, $COLD_US µs per call), then ${SLICE} s measured (TPS = mean of the 1 s progress lines); $REPS interleaved rounds for (a) and (c), $REPS_BOUND for (b), each ratio the median of its rounds' ratios"
    echo "- checks: every bench token answered 200 on both nodes before the run; 500 tokens answered 200 on the standby after each window (checks.log)${NON200:+; **NOT ALL 200:$NON200**}; staleness of the standby sampled after each window: $STALE_SEEN; pixltoken.so sha256 $LIB_SHA at start, $LIB_SHA_END at end${WARM_SHORT:+; **warm-up incomplete in:$WARM_SHORT**}"
    echo
    echo "## Figures"
    echo
    echo "| figure | TPS ratio, $CLIENT_LABEL clients | same ratio by CPU per transaction | mean TPS: reference; measured | measured as |"
    echo "|---|---:|---:|---|---|"
    echo "| a) standby: verification, warm random token of 10,000 ÷ call-shape floor with lookup, same standby | $(per_c standby_ratio) | $(per_c standby_cratio) | floor $(per_c_tps s_floor); verify $(per_c_tps s_verify) | verify_random.sql ÷ floor_random.sql on the standby, rounds floor, verify |"
    echo "| b) standby: max_standby_staleness $STALENESS ÷ unset | $(per_c bound_ratio) | $(per_c bound_cratio) | unset $(per_c_tps s_bound_unset); set $(per_c_tps s_bound_set) | one verify_random run, the bound reloaded between windows unset, set, unset, set |"
    echo "| c) primary + standby together (half the clients each, TPS summed) ÷ primary alone (all clients) | $(per_c together_ratio) | $(per_c together_cratio) | alone $(per_c_tps p_alone); together $(per_c_tps together) (primary $(per_c_tps together_a) + standby $(per_c_tps together_b)) | verify_random.sql, two pgbench processes of half the clients each (alone: both on the primary), rounds alone, together |"
    echo "| d) usage shipper: events shipped per second; primary backend CPU per shipped event | $([ "$SHIP_STATE" = shipping ] && echo "$(fig_of ship_rate "$SHIP_CLIENTS")/s; $(fig_of ship_us "$SHIP_CLIENTS") µs" || echo "shipper not available") | - | - | standby pixl_stats() worker_state 'shipping'; /proc of the primary's 'pixltoken shipper%' session |"
    echo
    echo "d) $SHIP_LINE"
    echo
    echo "\"TPS ratio\" is the figure; \"by CPU per transaction\" is the same ratio from the CPU time this bench's processes (pgbench, both servers' backends, walsender/walreceiver/startup, the usage worker) spent per transaction in each window (reference CPU ÷ measured CPU): far less sensitive to other engineers' load on the shared cores. When the two disagree, the machine was busy (\"other CPU %\" below)."
    echo
    if [ "$SHIP_STATE" = shipping ]; then
        echo "(a) is not comparable with run.sh's figure on the primary (bench/results.md): a standby writes nothing itself (its shipper sends its usage to the primary, figure d), so its verification sits closer to its floor; CPU per transaction, all processes: standby verify $(per_c s_verify_cpu) µs, primary alone $(per_c p_alone_cpu) µs (c)."
    else
        echo "(a) is not comparable with run.sh's figure on the primary (bench/results.md): on a standby the usage pipeline does nothing after the call (without a shipper its events are dropped and its counts lost: see the details of b), and nothing is written, so a standby's verification sits closer to its floor; CPU per transaction, all processes: standby verify $(per_c s_verify_cpu) µs, primary alone $(per_c p_alone_cpu) µs (c)."
    fi
    echo
    echo "Details: $(for c in $CLIENTS; do printf '[b, %s clients: %s] ' "$c" "$(fig_of bound_detail "$c")"; done)"
    echo
    echo "## Reading it: one machine"
    echo
    echo "Both servers and pgbench share the same 2 cores, so (c) cannot show scale-out: the standby brings no CPU of its own, only a second postmaster, WAL streaming and replay. What (c) measures is what serving half the clients from a second server on the same cores costs (a ratio of 1: nothing); the \"server CPU µs/txn\" notes in \"Every case\" split each window's CPU between the two servers. $(if [ "$SHIP_STATE" = shipping ]; then echo "The standby's shipper was active: the primary stored the standby's usage too, over one libpq session (figure d), inside the same windows."; else echo "Without a shipper (this build), the standby's usage events are dropped (its pixl_stats() events_dropped, counts_lost), so a standby verification does less work than a primary one, whose usage worker stores its events: that flatters \"together\"; with the shipper the primary stores them all, over one libpq session per standby (figure d)."; fi)"
    echo
    echo "What a second machine would add: verification is CPU-bound and reads nothing a standby lacks, so a standby on its own cores adds about its own cores' worth of verification (on this VM ~$(per_c_tps s_verify) TPS per 2 cores at $CLIENT_LABEL clients, figure a's verify column) while the primary keeps the writes; the together ÷ alone ratio would approach 1 + (standby cores ÷ primary cores), minus the primary's cost of the standby's shipped usage (figure d × events/s) and the network round trip per call. What one machine cannot measure: the network latency between app, primary and standby, replay lag under real network conditions (the staleness bound of figure b is never approached on one machine: $STALE_SEEN), and whether one primary can absorb the usage shipped by N standbys (figure d gives the per-event cost to size it)."
    echo
    echo "## Every case"
    echo
    echo "In the order run. s_* on the standby; p_alone and together are pairs of pgbench processes, their halves *_a (on the primary) and *_b (alone: on the primary; together: on the standby) listed before them (their CPU is in the pair's row). \"server CPU µs/txn\" splits the window's CPU by server process tree (backends, workers, walsender, walreceiver, startup), ÷ all transactions of the window."
    echo
    echo "| case | clients | round | TPS | avg latency ms | latency stddev ms | 1 s TPS min-max | CPU µs per transaction (bench processes) | CPU steal % | other CPU % | note |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    awk -F'\t' 'NR > 1 {printf "| %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $11, $3, $4, $5, $6, $10, $7, $8, $9}' "$RESULTS"
} >"$OUT/results-replicas.md"
cp "$OUT/results-replicas.md" "$RESDIR/results-replicas.md"
echo
cat "$OUT/results-replicas.md"
