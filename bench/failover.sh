#!/usr/bin/env bash
# The seconds without a verification answer during an automatic failover
# (pg_auto_failover), run by `bash bench/replicas.sh failover`:
#
#   make && make install                          # the extension under test
#   bash bench/replicas.sh failover               # as root; ~2 min a round, writes bench/results-failover.md
#   ROUNDS=3 bash bench/replicas.sh failover      # several rounds, and their median
#   PG_CONFIG=/path/to/pg_config bash bench/replicas.sh failover
#
# Each round is one run of test/t/055_auto_failover.pl (its header says
# what it builds and checks): a monitor, a primary and a secondary made by
# pg_autoctl on this machine, two clients verifying through multi-host
# connection strings (a new connection per call), the primary killed whole
# (kill -9 of its pg_autoctl, its postmaster and every child), the
# secondary promoted by the monitor, the old primary rejoining.  The test
# writes one line per round (PIXL_FAILOVER_REPORT): the longest time without
# an answer (200, 401, 403 or 429) from the kill on, the time to promotion,
# the time the old primary took to rejoin, the calls, the answers, the 503
# `stale` answers of the secondary before its promotion, and the calls that
# failed (no node to connect to, or a connection cut by the kill).  The
# test's monitor settings detect a dead primary in about 3 s (the defaults
# take about 30 s): see docs/operations.md "Automatic failover".
#
# Needs postgresql-15-auto-failover (pg_autoctl; the pgautofailover
# extension in the PostgreSQL that PG_CONFIG names) and the PostgreSQL TAP
# modules (postgresql-server-dev-15, libipc-run-perl).  Runs on a private
# copy of the tree as the postgres OS user, on free ports; removed on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
ROUNDS=${ROUNDS:-1}

die() { echo "$(basename "$0"): $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (the clusters run as the postgres OS user)"
id postgres >/dev/null 2>&1 || die "no postgres OS user"
command -v pg_autoctl >/dev/null || die "no pg_autoctl: apt-get install postgresql-15-auto-failover"
SHARE=$("$PG_CONFIG" --sharedir)
[ -f "$SHARE/extension/pixltoken.control" ] || die "pixltoken is not installed in $SHARE (make install)"
[ -f "$SHARE/extension/pgautofailover.control" ] || die "the pgautofailover extension is not installed in $SHARE"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
if [ -w "$HERE" ]; then RESDIR=$HERE; else RESDIR=${BENCH_OUT:-/tmp/pixlbench-results}; fi
OUT="$RESDIR/out/failover-$STAMP"
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/pixlbench-failover.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
rsync -a --exclude .git --exclude bench/out "$ROOT"/ "$WORK/tree/"
chown -R postgres:postgres "$WORK"
UPTIME_START=$(uptime)
T0=$(date +%s)

for r in $(seq 1 "$ROUNDS"); do
    echo "[$(date +%H:%M:%S)] round $r of $ROUNDS: test/t/055_auto_failover.pl" >&2
    if ! runuser -u postgres -- env PIXL_FAILOVER_REPORT="$WORK/report.txt" PG_CONFIG="$PG_CONFIG" \
        make -C "$WORK/tree" installcheck REGRESS= ISOLATION= PROVE_TESTS=test/t/055_auto_failover.pl \
        >"$OUT/round-$r.log" 2>&1; then
        cp -r "$WORK/tree/tmp_check/log" "$OUT/round-$r-log" 2>/dev/null || true
        tail -n 40 "$OUT/round-$r.log" >&2
        die "round $r failed (logs in $OUT)"
    fi
    cp -r "$WORK/tree/tmp_check/log" "$OUT/round-$r-log"
done
cp "$WORK/report.txt" "$OUT/report.txt"

field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" "$WORK/report.txt"; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
GAP=$(field gap_s | median)
PROMOTED=$(field promoted_s | median)
REJOINED=$(field rejoined_s | median)
CMD="bash bench/replicas.sh failover"
[ "$ROUNDS" = 1 ] || CMD="ROUNDS=$ROUNDS $CMD"
[ "$PG_CONFIG" = /usr/lib/postgresql/15/bin/pg_config ] || CMD="PG_CONFIG=$PG_CONFIG $CMD"
{
    echo "# pixltoken under pg_auto_failover: the seconds without answers during an automatic failover"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); tree: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); wall time $(( $(date +%s) - T0 ))s; raw logs bench/out/failover-$STAMP/"
    echo "- command: \`$CMD\` (as root); $(pg_autoctl --version | head -1); $("$PG_CONFIG" --version)"
    echo "- machine: nproc $(nproc), shared with other engineers; monitor, both nodes and the clients on the same cores; load at start \`$UPTIME_START\`, at end \`$(uptime)\`"
    echo "- setup: test/t/055_auto_failover.pl (monitor health checks every 1 s, a node unhealthy after 3 s, demote timeout 3 s; pixltoken.max_standby_staleness 3s, wal_receiver_timeout 2s; two clients, a new connection per call: prefer-standby and primary)"
    echo
    echo "| figure | median of $ROUNDS round(s) |"
    echo "|---|---:|"
    echo "| longest time without a verification answer from the kill on | ${GAP} s |"
    echo "| kill → secondary promoted (no longer in recovery) | ${PROMOTED} s |"
    echo "| old primary restarted → secondary again | ${REJOINED} s |"
    echo
    echo "Every round:"
    echo
    sed 's/^/    /' "$WORK/report.txt"
    echo
    echo "The gap is shorter than the promotion: until its staleness passes the bound, the secondary keeps answering (then 503 \`stale\`, counted as no answer); the clients' calls that found no node (or lost theirs to the kill) are \`failed\`."
} >"$OUT/results-failover.md"
cp "$OUT/results-failover.md" "$RESDIR/results-failover.md"
cat "$OUT/results-failover.md"
