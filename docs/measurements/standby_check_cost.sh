#!/usr/bin/env bash
# Cost of the staleness check (docs/replicas.md): pgbench, warm random token of 10,000, 8 clients,
# -M prepared, 10 s per run, runs interleaved twice; primary and standby on
# this machine.  Run as postgres with the extension installed:
#   runuser -u postgres -- env PG_CONFIG=... bash docs/measurements/standby_check_cost.sh
set -euo pipefail
BIN=$(${PG_CONFIG:-pg_config} --bindir)
D=/tmp/replbench
rm -rf $D; mkdir -p $D
$BIN/initdb -D $D/p -A trust --no-sync >/dev/null
cat >> $D/p/postgresql.conf <<CONF
port = 55432
listen_addresses = ''
unix_socket_directories = '$D'
shared_preload_libraries = 'pixltoken'
pixltoken.database = 'store'
max_connections = 50
fsync = off
CONF
$BIN/pg_ctl -D $D/p -l $D/p.log -w start >/dev/null
P="$BIN/psql -X -q -h $D -p 55432"
$P -d postgres -c 'CREATE DATABASE store'
$P -d store -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION pixltoken;
-- ten stores: a store on the largest plan holds at most 1000 active tokens
SELECT pixl_set_store_plan('big' || s, 'enterprise') FROM generate_series(0, 9) s;
CREATE TABLE bench_tokens (i int PRIMARY KEY, secret text NOT NULL);
INSERT INTO bench_tokens
  SELECT g, (SELECT token FROM pixl_create_token('big' || (g % 10), 't' || g, ARRAY['orders:read'], rate_limit => 1000))
  FROM generate_series(1, 10000) g;
SQL
$BIN/pg_basebackup -D $D/s -R -h $D -p 55432
sed -i 's/^port = 55432/port = 55433/' $D/s/postgresql.conf
echo "wal_receiver_timeout = '2s'" >> $D/s/postgresql.conf
$BIN/pg_ctl -D $D/s -l $D/s.log -w start >/dev/null
S="$BIN/psql -X -q -h $D -p 55433"
cat > $D/verify.sql <<'SQL'
\set i random(1, 10000)
SELECT v.status FROM bench_tokens b, pixl_verify_token(b.secret) v WHERE b.i = :i;
SQL
setbound() { # port value
	$BIN/psql -X -q -h $D -p $1 -d store -c "ALTER SYSTEM SET pixltoken.max_standby_staleness = '$2'" -c "SELECT pg_reload_conf()" >/dev/null
}
run() { # label port
	$BIN/psql -X -q -h $D -p 55433 -d store -At -c "SELECT pixl_replica_status()" >/dev/null
	local tps
	tps=$($BIN/pgbench -h $D -p $2 -n -M prepared -c 8 -j 2 -T 10 -f $D/verify.sql store 2>/dev/null | awk '/^tps/ {print int($3)}')
	echo "$1 $tps"
}
# warm both nodes' buffers once
$BIN/pgbench -h $D -p 55432 -n -M prepared -c 8 -j 2 -T 3 -f $D/verify.sql store >/dev/null 2>&1
$BIN/pgbench -h $D -p 55433 -n -M prepared -c 8 -j 2 -T 3 -f $D/verify.sql store >/dev/null 2>&1
for round in 1 2; do
	setbound 55432 0; run primary_bound_0 55432
	setbound 55432 60s; run primary_bound_60s 55432
	setbound 55433 0; run standby_bound_0 55433
	setbound 55433 60s; run standby_bound_60s 55433
done
$S -d store -At -c "SELECT (SELECT count(*) FROM bench_tokens), * FROM pixl_replica_status()"
$S -d store -At -c "SELECT status, count(*) FROM bench_tokens b, pixl_verify_token(b.secret) v WHERE b.i <= 100 GROUP BY 1"
$BIN/pg_ctl -D $D/s -w stop -m fast >/dev/null
$BIN/pg_ctl -D $D/p -w stop -m fast >/dev/null
