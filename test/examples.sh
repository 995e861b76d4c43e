#!/usr/bin/env bash
# Runs the tests of clients/ and examples/ against a throwaway cluster, as
# root, after the extension is installed (test/run.sh calls it after
# `make installcheck`; about 2 minutes):
#
#   bash test/examples.sh            # FAST=1 skips apt-get, EXAMPLES=0 skips all
#
# 1. clients/node (pixltoken-client, npm) and examples/node (node --test,
#    using that package) straight to PostgreSQL;
# 2. the same tests through PgBouncer (Debian 12: 1.18) in transaction pooling;
# 3. clients/python (pip-installed into a venv from the repository path) and
#    examples/python (psycopg 3), straight and through PgBouncer;
# 4. the dashboard views' and Grafana panels' queries, and the usage page in
#    headless Chromium (screenshot checked for its numbers), within 1;
# 5. examples/webhooks: the webhook relay against a real HTTP receiver that
#    checks the signatures (straight to PostgreSQL: LISTEN needs a session).
# PostgreSQL and PgBouncer run as the postgres OS user on private ports
# (EXAMPLES_PGPORT, EXAMPLES_BOUNCER_PORT: free ones by default) and a private
# socket directory; everything is stopped and removed at the end (KEEP=1
# keeps the directory).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
. "$HERE/test/helpers/cluster.sh"
PGPORT_EX=${EXAMPLES_PGPORT:-$(free_port)}
BOUNCER_PORT=${EXAMPLES_BOUNCER_PORT:-$(free_port)}
FAST=${FAST:-0}
# Debian's interpreter: it sees python3-psycopg (another python3 may come first on PATH)
PY=/usr/bin/python3

[ "$(id -u)" = 0 ] || { echo "test/examples.sh: run as root" >&2; exit 1; }
# EXAMPLES=0 skips them (e.g. `EXAMPLES=0 FAST=1 bash test/run.sh REGRESS=...`)
[ "${EXAMPLES:-1}" = 0 ] && { echo "== examples skipped (EXAMPLES=0)"; exit 0; }
if [ "$FAST" != 1 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends pgbouncer python3-psycopg python3-psycopg-pool \
		python3-venv python3-pip python3-setuptools python3-wheel chromium >/dev/null
	# Node.js 20 comes with the machine; Debian's nodejs only where none is
	command -v npm >/dev/null || apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
# Debian's pgbouncer package may start its own service: ours uses its own
# ports and configuration and never touches that one.

WORK=$(cluster_workdir pixltoken-examples)
BOUNCER_PID=
cleanup() {
	[ -n "$BOUNCER_PID" ] && kill "$BOUNCER_PID" 2>/dev/null || true
	cluster_stop "$WORK"
}
trap cleanup EXIT

echo "== examples: cluster on 127.0.0.1:$PGPORT_EX"
cluster_start "$WORK" "$PGPORT_EX" 127.0.0.1 "pixltoken.database = 'shop'
pixltoken.flush_interval = '100ms'
pixltoken.fold_interval = '1s'
max_connections = 60"
cluster_psql "$WORK" "$PGPORT_EX" -d postgres -c 'CREATE DATABASE shop'
cluster_psql "$WORK" "$PGPORT_EX" -d shop -c 'CREATE EXTENSION pixltoken'
# the postgres user may not be able to read the checkout (e.g. under /root)
install -o postgres -m 644 "$HERE/examples/roles.sql" "$WORK/roles.sql"
cluster_psql "$WORK" "$PGPORT_EX" -d shop -f "$WORK/roles.sql" >/dev/null
cluster_wait_worker "$WORK" "$PGPORT_EX" shop

export PGHOST=127.0.0.1 PGDATABASE=shop PGUSER=app_server
export ADMIN_PGUSER=postgres
export PGPORT=$PGPORT_EX

echo "== clients/node, examples/node: npm ci"
(cd "$HERE/clients/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
(cd "$HERE/examples/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

echo "== clients/node: the TypeScript types compile as an app uses them"
(cd "$HERE/clients/node" && npm run -s typecheck)

echo "== clients/python: pip install into a venv"
"$PY" -m venv --system-site-packages "$WORK/venv"
# --no-build-isolation: setuptools and wheel from Debian, no index needed
# from a copy: pip builds in the source tree, and a stale build/ there could
# hold files the package no longer has
cp -r "$HERE/clients/python" "$WORK/client-python"
rm -rf "$WORK/client-python/build" "$WORK"/client-python/*.egg-info
"$WORK/venv/bin/pip" install -q --no-build-isolation --no-index "$WORK/client-python"
VPY=$WORK/venv/bin/python

node_tests() {
	(cd "$HERE/clients/node" && node --test test/)
	(cd "$HERE/examples/node" && node --test test/)
}
python_tests() {
	(cd "$WORK" && "$VPY" "$HERE/clients/python/tests/test_client.py" -v)
	(cd "$WORK" && "$VPY" "$HERE/examples/python/test_example.py" -v)
}

echo "== node: tests straight to PostgreSQL"
USAGE_SCREENSHOT="$WORK/usage-page.png" node_tests

echo "== PgBouncer $(pgbouncer --version | head -1) on 127.0.0.1:$BOUNCER_PORT, transaction pooling"
sed -e "s|@PGPORT@|$PGPORT_EX|g" -e "s|@PORT@|$BOUNCER_PORT|g" -e "s|@DIR@|$WORK|g" \
	"$HERE/examples/pgbouncer/pgbouncer.ini" >"$WORK/pgbouncer.ini"
printf '"app_server" ""\n"postgres" ""\n"token_admin" ""\n"pixl_dashboard" ""\n' >"$WORK/userlist.txt"
chown postgres:postgres "$WORK/pgbouncer.ini" "$WORK/userlist.txt"
runuser -u postgres -- pgbouncer "$WORK/pgbouncer.ini" >"$WORK/pgbouncer.out" 2>&1 &
BOUNCER_PID=$!
for i in $(seq 1 50); do
	"$CLUSTER_BIN/pg_isready" -q -h 127.0.0.1 -p "$BOUNCER_PORT" -d shop && break
	[ "$i" = 50 ] && { cat "$WORK/pgbouncer.out" "$WORK/pgbouncer.log" 2>/dev/null; exit 1; }
	sleep 0.1
done

echo "== node: tests through PgBouncer"
PGPORT=$BOUNCER_PORT VIA_PGBOUNCER=1 node_tests

echo "== python: tests straight to PostgreSQL"
python_tests
echo "== python: tests through PgBouncer"
PGPORT=$BOUNCER_PORT VIA_PGBOUNCER=1 python_tests

echo "== examples/webhooks: the relay against a real HTTP endpoint"
(cd "$WORK" && "$PY" "$HERE/examples/webhooks/test_relay.py" -v)

echo "== examples: all passed"
