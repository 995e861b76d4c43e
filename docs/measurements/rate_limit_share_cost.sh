#!/usr/bin/env bash
# Cost of pixltoken.rate_limit_share (docs/replicas.md section 4): one
# primary, pgbench, warm random token of 10,000 (limit 1000: every answer a
# 200 at either share), 8 clients, -M prepared, 10 s per run, share 1 (one
# comparison) and share 0.5 (a multiplication and floor()) interleaved
# ABBA twice.  Run as postgres with the extension installed:
#   runuser -u postgres -- env PG_CONFIG=... bash docs/measurements/rate_limit_share_cost.sh
set -euo pipefail
BIN=$(${PG_CONFIG:-pg_config} --bindir)
D=/tmp/sharebench
PORT=55462
rm -rf $D; mkdir -p $D
$BIN/initdb -D $D/p -A trust --no-sync >/dev/null
cat >> $D/p/postgresql.conf <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$D'
shared_preload_libraries = 'pixltoken'
pixltoken.database = 'store'
max_connections = 50
fsync = off
CONF
$BIN/pg_ctl -D $D/p -l $D/p.log -w start >/dev/null
trap '$BIN/pg_ctl -D $D/p -w stop -m fast >/dev/null' EXIT
P="$BIN/psql -X -q -v ON_ERROR_STOP=1 -h $D -p $PORT"
$P -d postgres -c 'CREATE DATABASE store'
$P -d store >/dev/null <<SQL
CREATE EXTENSION pixltoken;
-- ten stores: a store on the largest plan holds at most 1000 active tokens
SELECT pixl_set_store_plan('big' || s, 'enterprise') FROM generate_series(0, 9) s;
CREATE TABLE bench_tokens (i int PRIMARY KEY, secret text NOT NULL);
INSERT INTO bench_tokens
  SELECT g, (SELECT token FROM pixl_create_token('big' || (g % 10), 't' || g, ARRAY['orders:read'], rate_limit => 1000))
  FROM generate_series(1, 10000) g;
SQL
cat > $D/verify.sql <<'SQL'
\set i random(1, 10000)
SELECT v.status FROM bench_tokens b, pixl_verify_token(b.secret) v WHERE b.i = :i;
SQL
setshare() {
	$P -d store -c "ALTER SYSTEM SET pixltoken.rate_limit_share = $1" -c "SELECT pg_reload_conf()" >/dev/null
	sleep 0.5
}
run() { # label
	local tps
	tps=$($BIN/pgbench -h $D -p $PORT -n -M prepared -c 8 -j 2 -T 10 -f $D/verify.sql store 2>/dev/null | awk '/^tps/ {print int($3)}')
	echo "$1 $tps"
}
$BIN/pgbench -h $D -p $PORT -n -M prepared -c 8 -j 2 -T 3 -f $D/verify.sql store >/dev/null 2>&1
for round in 1 2; do	# ABBA: the order cannot favour one
	setshare 1; run share_1
	setshare 0.5; run share_0.5
	setshare 0.5; run share_0.5
	setshare 1; run share_1
done
# all 10,000 tokens exist; every answer was a 200 (of 100 tokens) at the
# last share, 1: rate_limit 1000
$P -d store -At -c "SELECT 'tokens', count(*) FROM bench_tokens"
$P -d store -At -c "SELECT status, min(rate_limit), count(*) FROM bench_tokens b, pixl_verify_token(b.secret) v WHERE b.i <= 100 GROUP BY 1"
