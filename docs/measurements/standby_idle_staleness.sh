#!/usr/bin/env bash
# Staleness of a standby of an idle primary, default wal_receiver_timeout (60s):
# sample pixl_replica_status() every second for 75 s.  Run as postgres with
# the extension installed (WRT sets the standby's wal_receiver_timeout):
#   runuser -u postgres -- env PG_CONFIG=... [WRT=2s] bash docs/measurements/standby_idle_staleness.sh
set -euo pipefail
BIN=$(${PG_CONFIG:-pg_config} --bindir)
D=/tmp/replidle
rm -rf $D; mkdir -p $D
$BIN/initdb -D $D/p -A trust --no-sync >/dev/null
cat >> $D/p/postgresql.conf <<CONF
port = 55442
listen_addresses = ''
unix_socket_directories = '$D'
shared_preload_libraries = 'pixltoken'
pixltoken.database = 'postgres'
CONF
$BIN/pg_ctl -D $D/p -l $D/p.log -w start >/dev/null
$BIN/psql -X -q -h $D -p 55442 -d postgres -c 'CREATE DATABASE store'
$BIN/psql -X -q -h $D -p 55442 -d store -c 'CREATE EXTENSION pixltoken'
$BIN/pg_basebackup -D $D/s -R -h $D -p 55442
sed -i 's/^port = 55442/port = 55443/' $D/s/postgresql.conf
[ -n "${WRT:-}" ] && echo "wal_receiver_timeout = '$WRT'" >> $D/s/postgresql.conf
$BIN/pg_ctl -D $D/s -l $D/s.log -w start >/dev/null
sleep 2
max=0
for i in $(seq 1 75); do
	v=$($BIN/psql -X -At -h $D -p 55443 -d store -c "SELECT basis || ' ' || (extract(epoch FROM staleness) * 1000)::int FROM pixl_replica_status()")
	ms=${v##* }; [ "$ms" -gt "$max" ] && max=$ms
	[ $((i % 5)) = 0 ] && echo "t=$i $v"
	sleep 1
done
echo "max staleness ms: $max (wal_receiver_timeout=${WRT:-60s default})"
$BIN/pg_ctl -D $D/s -w stop -m fast >/dev/null
$BIN/pg_ctl -D $D/p -w stop -m fast >/dev/null
rm -rf $D
