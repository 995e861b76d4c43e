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
cpu_snap() {
    local sys foreign
    sys=$(awk '/^cpu / {print $2+$3+$4+$5+$6+$7+$8+$9, $9; exit}' /proc/stat)
    foreign=$(cat /proc/[0-9]*/stat 2>/dev/null | awk -v a="$$" -v b="${PM_PID:-0}" '
        { pid = $1; sub(/^.*\) /, ""); par[pid] = $2; t[pid] = $12 + $13 + $14 + $15 }
        END {
            for (p in t) {
                if (p == 2 || par[p] == 2) continue
                q = p; mine = 0
                for (n = 0; n < 64 && q > 1; n++) {
                    if (q == a || q == b) { mine = 1; break }
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
