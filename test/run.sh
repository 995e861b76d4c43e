#!/usr/bin/env bash
# Runs every test suite of pixltoken on a Debian 12 machine, as root:
#
#   bash test/run.sh                     # everything (what .ci/run does)
#   FAST=1 bash test/run.sh REGRESS=verify ISOLATION= TAP_TESTS=   # a subset
#
# FAST=1 (for development) skips apt-get and the clean -Werror builds and
# only runs `make install` on the tree as it is.
# Installs the Debian packages it needs (apt-get update first), builds with
# -Werror under gcc and clang, installs the extension, then runs
# `make installcheck` (pg_regress, isolation, TAP; each against temporary
# instances with the library preloaded) as the postgres user on a private
# copy of the tree.  Extra arguments are passed to `make installcheck`.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# PG_CONFIG may point at another installation (a private copy for development).
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
# Our warnings policy.  -Wno-unused-parameter: every fmgr function receives
# fcinfo, and PostgreSQL's own headers trip it; clang also needs
# -Wno-ignored-attributes for the gnu_printf attribute of those headers.
WARN="-Wall -Wextra -Werror -Wno-unused-parameter"

[ "$(id -u)" = 0 ] || { echo "test/run.sh: run as root (it installs packages and the extension)" >&2; exit 1; }

FAST=${FAST:-0}
if [ "$FAST" != 1 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends \
		make gcc clang postgresql-15 postgresql-server-dev-15 postgresql-contrib libssl-dev \
		libipc-run-perl rsync pgbouncer python3-psycopg postgresql-15-auto-failover >/dev/null
fi
id postgres >/dev/null 2>&1 || { echo "test/run.sh: no postgres OS user" >&2; exit 1; }

cd "$HERE"
# cheap, first: the floors of src/ (no circle, include rules; see the script)
echo "== source layout (python3 tools/src_graph.py --check)"
if ! python3 tools/src_graph.py --check >/dev/null; then
	python3 tools/src_graph.py
	exit 1
fi
if [ "$FAST" != 1 ]; then
	echo "== build with clang (warnings are errors)"
	make -s clean
	make -s CC=clang CFLAGS="-O2 -g -fno-strict-aliasing -fwrapv" \
		PIXL_CFLAGS="$WARN -Wno-ignored-attributes"
	echo "== build with gcc (warnings are errors)"
	make -s clean
fi
make -s PIXL_CFLAGS="$WARN"
make -s install

WORK=$(mktemp -d /tmp/pixltoken-test.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
rsync -a --exclude .git "$HERE"/ "$WORK"/
chown -R postgres:postgres "$WORK"

echo "== make installcheck as postgres"
if ! runuser -u postgres -- make -C "$WORK" installcheck PROVE_FLAGS="--timer" "$@"; then
	for f in "$WORK"/regression.diffs "$WORK"/output_iso/regression.diffs; do
		[ -f "$f" ] && { echo "== $f"; cat "$f"; }
	done
	for f in "$WORK"/tmp_check/log/*; do
		[ -f "$f" ] && { echo "== $f (last 60 lines)"; tail -n 60 "$f"; }
	done
	exit 1
fi
[ "$FAST" = 1 ] || bash "$HERE/test/static.sh"	# scan-build, assert build, libFuzzer
bash "$HERE/test/examples.sh"   # examples/: node, PgBouncer, python, usage page
# README's first command, the demo: every statement of demo/demo.sql must run
echo "== demo (bash demo/run.sh)"
if ! bash "$HERE/demo/run.sh" >"$WORK/demo.log" 2>&1; then
	tail -n 40 "$WORK/demo.log"
	echo "== the demo failed"
	exit 1
fi
echo "== all suites passed"
