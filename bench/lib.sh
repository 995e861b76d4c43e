# shellcheck shell=bash
# Shared helpers of bench/run.sh and bench/dashboards.sh (sourced, not run).
#
# A throwaway PostgreSQL 15 cluster in a mktemp dir, run as the postgres OS
# user (PostgreSQL refuses to run as root), pixltoken preloaded, stopped and
# removed on exit; plus the noise gauges of the shared harness.
# The caller sets PGPORT, DB and HERE before sourcing, and may set KEEP=1.

# The PostgreSQL under test: PG_CONFIG (default: the system PostgreSQL 15),
# its bindir for initdb/pg_ctl/psql/pgbench.
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGBIN=${PGBIN:-$("$PG_CONFIG" --bindir)}
KEEP=${KEEP:-0}

die() { echo "$(basename "$0"): $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

bench_preflight() {
    [ "$(id -u)" = 0 ] || die "run as root (PostgreSQL is started via runuser -u postgres)"
    id postgres >/dev/null 2>&1 || die "no postgres OS user"
    local b
    for b in initdb pg_ctl pgbench psql pg_config; do
        [ -x "$PGBIN/$b" ] || die "missing $PGBIN/$b (apt-get install postgresql-15 postgresql-contrib)"
    done
    # the extension must be installed in this PostgreSQL (make && make install)
    local share
    share=$("$PG_CONFIG" --sharedir)
    [ -f "$share/extension/pixltoken.control" ] \
        || die "pixltoken is not installed in $share: run 'make && make install PG_CONFIG=$PG_CONFIG' in the repo first"
    if (exec 3<>"/dev/tcp/127.0.0.1/$PGPORT") 2>/dev/null; then die "port $PGPORT already in use"; fi
}

# bench_cluster_init: initdb + the settings of the shared harness
# (../shared/bench/run.sh), so the numbers compare with results-baseline.md.
bench_cluster_init() {
    WORK=$(mktemp -d /tmp/pixlbench-ext.XXXXXX)
    chmod 755 "$WORK"
    chown postgres:postgres "$WORK"
    PGDATA="$WORK/pgdata"
    PG_STARTED=0
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    log "initdb in $PGDATA"
    runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C \
        >"$OUT/initdb.log" 2>&1 || { cat "$OUT/initdb.log"; die "initdb failed"; }
    cat >>"$PGDATA/postgresql.conf" <<EOF

# --- pixltoken bench (same settings as shared/bench/run.sh) ---
port = $PGPORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
max_connections = 100
shared_buffers = 256MB
fsync = on
synchronous_commit = on
wal_sync_method = fdatasync
max_wal_size = 4GB
checkpoint_timeout = 30min
# --- pixltoken ---
shared_preload_libraries = 'pixltoken'
max_worker_processes = 16
EOF
    export PGHOST=127.0.0.1 PGPORT PGUSER=postgres PGDATABASE=$DB
}

# bench_set NAME VALUE: append a setting (the last one in the file wins).
# Builds the call-shape floor (bench/floor/) and installs it next to pixltoken.
bench_build_floor() {
    log "building the call-shape floor (bench/floor/) into $("$PG_CONFIG" --pkglibdir)"
    cp -r "$HERE/floor" "$WORK/floor"
    # PROFILE is also PGXS's variable of profiling flags: not ours to pass
    { env -u PROFILE make -C "$WORK/floor" PG_CONFIG="$PG_CONFIG" && env -u PROFILE make -C "$WORK/floor" PG_CONFIG="$PG_CONFIG" install; } \
        >"$OUT/floor-build.log" 2>&1 || { tail -20 "$OUT/floor-build.log"; die "building bench/floor failed"; }
}

bench_set() { printf "%s = '%s'\n" "$1" "$2" >>"$PGDATA/postgresql.conf"; }

bench_start() {
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg.log" -w -t 60 start >/dev/null \
        || { tail -30 "$WORK/pg.log"; die "postgres did not start"; }
    PG_STARTED=1
    PM_PID=$(head -1 "$PGDATA/postmaster.pid")
}

bench_stop() {
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 120 stop >/dev/null
    PG_STARTED=0
}

bench_cleanup() {
    local rc=$?
    set +e
    # background samplers etc. registered by the caller
    [ -n "${BG_PIDS:-}" ] && kill $BG_PIDS 2>/dev/null
    # more servers of the caller (replicas.sh: the standby), stopped first
    declare -F bench_cleanup_extra >/dev/null && bench_cleanup_extra
    if [ "${PG_STARTED:-0}" = 1 ] && [ -f "$PGDATA/postmaster.pid" ]; then
        log "stopping postgres (pg_ctl stop -m fast)"
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
    fi
    [ -f "$WORK/pg.log" ] && cp "$WORK/pg.log" "$OUT/postgres.log" 2>/dev/null
    if [ "$KEEP" = 1 ]; then log "KEEP=1: left $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}

PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1)
q() { "${PSQL[@]}" -Atc "$1"; }    # one value

# ------------------------------------------------------------ noise gauges
# Copied from shared/bench/run.sh.  cpu_snap prints "total steal foreign" in
# USER_HZ jiffies: total = all CPU time of the VM, steal = taken by the
# hypervisor, foreign = user-space CPU of processes that are neither this
# script's descendants nor our postmaster's (other engineers' builds and
# clusters on this shared machine), kernel threads excluded.
# A fourth field, mine, is the CPU of this script's and our postmaster's
# process trees (pgbench, backends, the usage worker; exited children count
# through their parents' cutime/cstime): run.sh divides it by transactions.
# PM_PIDS (default PM_PID): the postmasters counted as ours (replicas.sh: the
# primary's and the standby's).
cpu_snap() {
    local sys foreign
    sys=$(awk '/^cpu / {print $2+$3+$4+$5+$6+$7+$8+$9, $9; exit}' /proc/stat)
    foreign=$(cat /proc/[0-9]*/stat 2>/dev/null | awk -v a="$$" -v b="${PM_PIDS:-${PM_PID:-0}}" '
        BEGIN { nb = split(b, bl, " "); for (i = 1; i <= nb; i++) pm[bl[i]] = 1 }
        { pid = $1; sub(/^.*\) /, ""); par[pid] = $2; t[pid] = $12 + $13 + $14 + $15 }
        END {
            for (p in t) {
                if (p == 2 || par[p] == 2) continue
                q = p; mine = 0
                for (n = 0; n < 64 && q > 1; n++) {
                    if (q == a || (q in pm)) { mine = 1; break }
                    q = par[q]
                }
                if (!mine) f += t[p]; else m += t[p]
            }
            print f + 0, m + 0
        }')
    echo "$sys $foreign"
}
steal_pct() {
    awk -v a="$1" -v b="$2" 'BEGIN {split(a, x, " "); split(b, y, " "); d = y[1] - x[1]
        if (d > 0) printf "%.1f", 100 * (y[2] - x[2]) / d; else print "0.0"}'
}
other_pct() {
    awk -v a="$1" -v b="$2" 'BEGIN {split(a, x, " "); split(b, y, " "); d = y[1] - x[1]
        o = y[3] - x[3]; if (o < 0) o = 0
        if (d > 0) printf "%.1f", 100 * o / d; else print "0.0"}'
}
# Wait (at most QUIET_WAIT s) for a 1-second window in which other processes
# use < 5% CPU, so that a run does not start in the middle of someone's build.
wait_quiet() {
    local i a b o=""
    [ "${QUIET_WAIT:-8}" -gt 0 ] || return 0
    for ((i = 0; i < ${QUIET_WAIT:-8}; i++)); do
        a=$(cpu_snap); sleep 1; b=$(cpu_snap); o=$(other_pct "$a" "$b")
        awk -v o="$o" 'BEGIN {exit !(o < 5)}' && return 0
    done
    log "machine still busy (other CPU ${o:-?}%) after ${QUIET_WAIT:-8}s; measuring anyway"
}

# median of the numbers given as arguments
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# ------------------------------------------------------------ shared by run.sh and replicas.sh
# (they use $OUT, $RESULTS, the PG* environment of the server queried, and
# WPIDS, the pids of the usage worker(s) of the primary)
CLK_TCK=$(getconf CLK_TCK)
qn() { "${PSQL[@]}" -Atc "$1" 2>>"$OUT/query-errors.log" || true; }   # one value, "" on error

# pids of pixltoken's background workers (the usage worker) of this cluster
worker_pids() { q "SELECT coalesce(string_agg(pid::text, ' ' ORDER BY pid), '') FROM pg_stat_activity WHERE backend_type ILIKE '%pixltoken%'"; }
# CPU ticks (utime + stime, 1/CLK_TCK s) of the given pids, summed
proc_cpu() {
    local p t=0 v
    for p in "$@"; do
        v=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null) || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
stat_sum() {  # stat_sum COLUMN: sum of a pixl_stats() column over all rows, 0 if it has none
    qn "SELECT coalesce(sum((to_jsonb(s) ->> '$1')::numeric), 0)::bigint FROM pixl_stats() s"
}
# every numeric pixl_stats() column summed over its rows, "name=value ..."
stats_snap() {
    qn "SELECT string_agg(k || '=' || v, ' ' ORDER BY k) FROM (
            SELECT e.k, sum(e.v::numeric) AS v FROM pixl_stats() s, jsonb_each_text(to_jsonb(s)) AS e(k, v)
             WHERE e.v ~ '^-?[0-9]+$' GROUP BY e.k) t"
}
# stats_delta BEFORE AFTER: the counters that changed, "name +delta ..."
stats_delta() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        n = split(a, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "="); A[kv[1]] = kv[2] }
        n = split(b, y, " "); out = ""
        for (i = 1; i <= n; i++) { split(y[i], kv, "="); d = kv[2] - A[kv[1]]
            if (d != 0 && kv[1] != "events_queued" && kv[1] != "tokens_tracked" && kv[1] != "aggregate_entries" && kv[1] != "queue_capacity")
                out = out (out == "" ? "" : ", ") kv[1] " " (d > 0 ? "+" : "") d }
        print (out == "" ? "none" : out) }'
}
# events waiting for the worker: every numeric pixl_stats() column whose name
# contains "queued" (events_queued in 1.0), summed; 0 if there is none
queued_now() {
    qn "SELECT coalesce(sum(e.v::numeric), 0)::bigint FROM pixl_stats() s, jsonb_each_text(to_jsonb(s)) AS e(k, v)
         WHERE e.k LIKE '%queued%' AND e.v ~ '^[0-9]+$'"
}
# wait_drained: the queue empty (queued_now), then the worker idle (its CPU
# unchanged for 1 s), at most ~2 min.
wait_drained() {
    local queued a b
    for _ in $(seq 600); do
        queued=$(queued_now)
        [ "${queued:-0}" = 0 ] && break
        sleep 0.2
    done
    [ "${queued:-0}" = 0 ] || log "WARNING: queue not drained after 120 s ($queued events queued)"
    for _ in $(seq 60); do
        a=$(proc_cpu $WPIDS); sleep 1; b=$(proc_cpu $WPIDS)
        [ "$a" = "$b" ] && return 0
    done
    log "WARNING: the usage worker did not go idle within 60 s"
}
# window LOG FROM TO: "tps latency_ms stddev_ms min-max" of the -P 1 lines with FROM < t <= TO
window() {
    awk -v a="$1" -v b="$2" '/^progress:/ {t = $2 + 0; if (t <= a || t > b) next
            v = $4 + 0; n++; s += v; l += v * $7; d += $10
            if (mn == "" || v < mn) mn = v; if (v > mx) mx = v }
        END { if (n == 0 || s == 0) print "0 0 0 -"; else printf "%.1f %.3f %.3f %.0f-%.0f\n", s / n, l / s, d / n, mn, mx }' "$3"
}
# transactions in the -P 1 lines with FROM < t <= TO (each line is 1 s)
wtxns() { awk -v a="$1" -v b="$2" '/^progress:/ {t = $2 + 0; if (t > a && t <= b) s += $4} END {printf "%.0f", s}' "$3"; }
# cpu_per_txn S0 S1 FROM TO LOG: µs of CPU of this bench's processes (pgbench,
# backends, worker: field 4 of cpu_snap) per transaction of the window
cpu_per_txn() {
    awk -v a="${1##* }" -v b="${2##* }" -v hz="$CLK_TCK" -v n="$(wtxns "$3" "$4" "$5")" \
        'BEGIN {printf "%.1f", (n > 0) ? (b - a) / hz * 1e6 / n : 0}'
}
txns_of() { awk -F': ' '/^number of transactions actually processed/ {print $2}' "$OUT/$1.log"; }
# mean of column COL over the rows of KEY at C clients (all rounds)
mean_of() { awk -F'\t' -v k="$1" -v c="$2" -v f="$3" 'NR > 1 && $1 == k && $2 == c {s += $f; n++} END {if (n) printf "%.1f", s / n}' "$RESULTS"; }
# rratio A B C COL INV: per round, mean(A) / mean(B) of column COL over that
# round's rows (INV=1: B / A); the median over the rounds both have
rratio() {
    awk -F'\t' -v a="$1" -v b="$2" -v c="$3" -v f="$4" -v inv="$5" '
        NR > 1 && $2 == c && ($1 == a || $1 == b) { s[$1, $11] += $f; n[$1, $11]++; r[$11] = 1 }
        END {
            k = 0
            for (x in r) if (n[a, x] && n[b, x]) {
                va = s[a, x] / n[a, x]; vb = s[b, x] / n[b, x]
                if (inv) { t = va; va = vb; vb = t }
                if (vb > 0) v[++k] = va / vb
            }
            if (k == 0) { print "n/a"; exit }
            for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
            printf "%.2f", (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
        }' "$RESULTS"
}
ratio() { rratio "$1" "$2" "$3" 3 0; }     # TPS(A) / TPS(B)
cratio() { rratio "$1" "$2" "$3" 10 1; }   # CPU per txn(B) / CPU per txn(A)
