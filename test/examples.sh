#!/usr/bin/env bash
# Runs the tests of examples/ against a throwaway cluster, as root, after the
# extension is installed (test/run.sh calls it after `make installcheck`):
#
#   bash test/examples.sh            # FAST=1 skips apt-get, EXAMPLES=0 skips all
#
# 1. examples/node (node --test) straight to PostgreSQL,
# 2. the same tests through PgBouncer (Debian 12: 1.18) in transaction pooling,
# 3. examples/python (psycopg 3) straight and through PgBouncer,
# 4. the dashboard views' and Grafana panels' queries,
# 5. the usage page in headless Chromium (screenshot checked for its numbers).
# PostgreSQL and PgBouncer run as the postgres OS user on private ports and a
# private socket directory; everything is stopped and removed at the end.
set -euo pipefail
# a free TCP port on the loopback (the machine may run other clusters)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BIN=$("$PG_CONFIG" --bindir)
PGPORT_EX=${EXAMPLES_PGPORT:-$(free_port)}
BOUNCER_PORT=${EXAMPLES_BOUNCER_PORT:-$(free_port)}
FAST=${FAST:-0}

[ "$(id -u)" = 0 ] || { echo "test/examples.sh: run as root" >&2; exit 1; }
# EXAMPLES=0 skips them (e.g. `EXAMPLES=0 FAST=1 bash test/run.sh REGRESS=...`)
[ "${EXAMPLES:-1}" = 0 ] && { echo "== examples skipped (EXAMPLES=0)"; exit 0; }
if [ "$FAST" != 1 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends pgbouncer python3-psycopg python3-psycopg-pool chromium >/dev/null
	# Node.js 20 comes with the machine; Debian's nodejs only where none is
	command -v npm >/dev/null || apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
# Debian's pgbouncer package may start its own service: ours uses its own
# ports and configuration and never touches that one.

WORK=$(mktemp -d /tmp/pixltoken-examples.XXXXXX)
chown postgres:postgres "$WORK"
chmod 755 "$WORK"
BOUNCER_PID=
cleanup() {
	[ -n "$BOUNCER_PID" ] && kill "$BOUNCER_PID" 2>/dev/null || true
	if [ -f "$WORK/data/postmaster.pid" ]; then
		runuser -u postgres -- "$BIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null || true
	fi
	if [ "${KEEP:-0}" = 1 ]; then echo "KEEP=1: left in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "== examples: cluster on 127.0.0.1:$PGPORT_EX"
runuser -u postgres -- "$BIN/initdb" -D "$WORK/data" -U postgres -A trust >/dev/null
cat >>"$WORK/data/postgresql.conf" <<CONF
port = $PGPORT_EX
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
shared_preload_libraries = 'pixltoken'
pixltoken.database = 'shop'
pixltoken.flush_interval = '100ms'
max_connections = 60
CONF
runuser -u postgres -- "$BIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null
psql_su() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT_EX" -U postgres "$@"; }
psql_su -d postgres -c 'CREATE DATABASE shop'
psql_su -d shop -c 'CREATE EXTENSION pixltoken'
psql_su -d shop -f "$HERE/examples/roles.sql"
# the usage worker serves the new extension within a few seconds
for i in $(seq 1 100); do
	[ "$(psql_su -d shop -At -c "SELECT count(*) FROM pixl_stats() WHERE datname = 'shop' AND worker_state = 'serving'")" = 1 ] && break
	[ "$i" = 100 ] && { echo "usage worker not serving"; exit 1; }
	sleep 0.1
done

export PGHOST=127.0.0.1 PGDATABASE=shop PGUSER=app_server
export ADMIN_PGUSER=postgres
export PGPORT=$PGPORT_EX

echo "== examples/node: npm ci"
(cd "$HERE/examples/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

echo "== examples/node: tests straight to PostgreSQL"
(cd "$HERE/examples/node" && USAGE_SCREENSHOT="$WORK/usage-page.png" node --test test/)

echo "== PgBouncer $(pgbouncer --version | head -1) on 127.0.0.1:$BOUNCER_PORT, transaction pooling"
sed -e "s|@PGPORT@|$PGPORT_EX|g" -e "s|@PORT@|$BOUNCER_PORT|g" -e "s|@DIR@|$WORK|g" \
	"$HERE/examples/pgbouncer/pgbouncer.ini" >"$WORK/pgbouncer.ini"
printf '"app_server" ""\n"postgres" ""\n"token_admin" ""\n"pixl_dashboard" ""\n' >"$WORK/userlist.txt"
chown postgres:postgres "$WORK/pgbouncer.ini" "$WORK/userlist.txt"
runuser -u postgres -- pgbouncer "$WORK/pgbouncer.ini" >"$WORK/pgbouncer.out" 2>&1 &
BOUNCER_PID=$!
for i in $(seq 1 50); do
	"$BIN/pg_isready" -q -h 127.0.0.1 -p "$BOUNCER_PORT" -d shop && break
	[ "$i" = 50 ] && { cat "$WORK/pgbouncer.out" "$WORK/pgbouncer.log" 2>/dev/null; exit 1; }
	sleep 0.1
done

echo "== examples/node: tests through PgBouncer"
(cd "$HERE/examples/node" && PGPORT=$BOUNCER_PORT VIA_PGBOUNCER=1 node --test test/)

if [ -f "$HERE/examples/python/test_example.py" ]; then
	echo "== examples/python: tests straight to PostgreSQL"
	/usr/bin/python3 "$HERE/examples/python/test_example.py" -v
	echo "== examples/python: tests through PgBouncer"
	PGPORT=$BOUNCER_PORT VIA_PGBOUNCER=1 /usr/bin/python3 "$HERE/examples/python/test_example.py" -v
fi

echo "== examples: all passed"
