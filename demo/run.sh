#!/usr/bin/env bash
# The pixltoken demo, on a fresh Debian 12 machine, as root:
#
#   bash demo/run.sh
#
# Installs the packages it needs, builds and installs the extension, starts
# a throwaway PostgreSQL 15 cluster in a temporary directory (run as the
# postgres user, with pixltoken preloaded), and walks through the user
# guide with demo/demo.sql: a store and its tokens, a secret shown once,
# verification as an app server sees it (200, each kind of 401, 403, 429
# with its headers), rotation, revocation, and the usage analytics.  The
# cluster and its directory are removed at the end (KEEP=1 keeps them).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BIN=/usr/lib/postgresql/15/bin
PORT=${PORT:-55499}
KEEP=${KEEP:-0}

[ "$(id -u)" = 0 ] || { echo "demo/run.sh: run as root (it installs packages)" >&2; exit 1; }

echo "== installing packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	make gcc postgresql-15 postgresql-server-dev-15 >/dev/null

echo "== building and installing pixltoken"
make -s -C "$HERE" PG_CONFIG=$PG_BIN/pg_config
make -s -C "$HERE" PG_CONFIG=$PG_BIN/pg_config install

export PG_CONFIG=$PG_BIN/pg_config
. "$HERE/test/helpers/cluster.sh"
WORK=$(cluster_workdir pixltoken-demo)
trap 'cluster_stop "$WORK"' EXIT

echo "== starting a throwaway cluster in $WORK"
cluster_start "$WORK" "$PORT" '' "pixltoken.database = 'demo'
pixltoken.flush_interval = '200ms'"
cluster_psql "$WORK" "$PORT" -d postgres -c 'CREATE DATABASE demo'

# the postgres user may not be able to read the checkout (e.g. under /root)
install -o postgres -m 644 "$HERE/demo/demo.sql" "$WORK/demo.sql"
cluster_psql "$WORK" "$PORT" -d demo -f "$WORK/demo.sql"
