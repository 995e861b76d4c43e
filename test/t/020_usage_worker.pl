# Copyright: the pixltoken authors.
#
# The usage pipeline under restarts, failures and overload:
#  (a) events queued at a clean restart are all in the table afterwards
#      (saved by the postmaster, loaded and written by the next worker);
#  (b) a terminated worker is restarted and writes what was queued meanwhile;
#  (c) a full queue never makes verification wait or write: raw rows that do
#      not fit are dropped and counted, the rollups still count every one;
#  (d) a late pixl_log_response updates the flushed row and its rollup;
#  (e) maintenance creates partitions ahead and drops them past retention;
#  (f) two served databases and an unserved one never mix events; the
#      unserved one keeps nothing and counts what it lost;
#  (g) kill -9 of the postmaster loses exactly what was not yet flushed,
#      and counts it (counts_lost).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = pixl_node('usage', databases => 'postgres,db2', conf => q{
# these tests follow every call through the raw-row pipeline
pixltoken.request_log = 'all'
pixltoken.queue_size = 64
max_worker_processes = 16
});

# n verifications in one statement; returns how many were accepted
sub verify
{
	my ($db, $secret, $n) = @_;
	return $node->safe_psql($db,
		"SELECT count(*) FILTER (WHERE v.status = 200) FROM generate_series(1, $n) g
		   CROSS JOIN LATERAL pixl_verify_request(CASE WHEN g > 0 THEN '$secret' END, 'products:read') v");
}

sub events
{
	my ($db, $tok) = @_;
	return $node->safe_psql($db,
		"SELECT count(*) FROM pixl_usage_events WHERE token_id = '$tok'");
}

sub usage_stat
{
	my ($db, $col) = @_;
	return $node->safe_psql($db,
		"SELECT $col FROM pixl_stats() WHERE datname IS NOT DISTINCT FROM "
		  . ($db eq 'db3' ? 'NULL' : 'current_database()'));
}

sub set_flush
{
	my ($value) = @_;
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET pixltoken.flush_interval = '$value'; SELECT pg_reload_conf()");
	$node->poll_query_until('postgres',
		"SELECT current_setting('pixltoken.flush_interval') = '$value'");
}

$node->safe_psql('postgres', 'CREATE EXTENSION pixltoken');
wait_serving($node, 'postgres');

# (a) clean restart: with a long flush interval the events sit in the queue.
# The interval is set by a restart, not a reload: a worker woken by the
# reload's SIGHUP after the verifications below would flush them at once.
$node->safe_psql('postgres', "ALTER SYSTEM SET pixltoken.flush_interval = '1min'");
$node->restart;
wait_serving($node, 'postgres');
my ($tok, $secret) = new_token($node, 'postgres', 'store_a');
is(verify('postgres', $secret, 30), '30', '30 verifications');
is(usage_stat('postgres', 'events_queued'), '30', 'they are queued');
$node->restart;
# the postmaster saved them (the worker ends at once on SIGTERM), the next
# start loads them and the worker writes them
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 30 FROM pixl_usage_events WHERE token_id = '$tok'"),
	'all 30 events are in the table after a clean restart');
is( $node->safe_psql('postgres', "SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok'"),
	'30', 'and counted once in the rollups');

# (b) terminate the worker; verifications made meanwhile are queued and
# written by its successor
wait_serving($node, 'postgres');
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pixltoken usage worker' AND datname = 'postgres'");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
is(verify('postgres', $secret, 20), '20', '20 verifications while the worker is down');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 50 FROM pixl_usage_events WHERE token_id = '$tok'"),
	'the restarted worker wrote them');
isnt(
	$node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pixltoken usage worker' AND datname = 'postgres'"),
	$pid,
	'by a new worker process');

# (c) a full queue (64 slots): the verifying backend neither waits nor
# writes; raw rows that do not fit are dropped (counted), counts are exact
my ($tok_c, $secret_c) = new_token($node, 'postgres', 'store_c');
my $before_c = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
is(verify('postgres', $secret_c, 900), '900', '900 verifications at once');
ok( $node->poll_query_until('postgres',
		"SELECT sum(requests) = 900 FROM pixl_usage_hourly WHERE token_id = '$tok_c'"),
	'the rollups count every one of the 900, once');
my $raw_c = events('postgres', $tok_c);
cmp_ok($raw_c, '<', 900, "raw rows that did not fit were dropped ($raw_c kept)");
is(usage_stat('postgres', 'events_dropped'), 900 - $raw_c,
	'each dropped raw row is counted in events_dropped');
is(usage_stat('postgres', 'events_waited + events_written_through'), '0',
	'no verification waited or wrote a table');
is( $node->safe_psql('postgres',
		"SELECT last_used_at > '$before_c' FROM pixl_token_activity WHERE token_id = '$tok_c'"),
	't', 'last_used_at is the time of the last of them');

# (d) a response reported after its row was flushed
set_flush('100ms');
my $rid = $node->safe_psql('postgres',
	"SELECT request_id FROM pixl_verify_request('$secret_c', 'products:read', NULL, 'GET', '/late')");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pixl_usage_events WHERE token_id = '$tok_c' AND endpoint = '/late'"),
	'the event was flushed');
# (1.1 request ids are opaque text: the row is found by token and endpoint)
$node->safe_psql('postgres', "SELECT pixl_log_response('$rid', 504, 250.5)");
ok( $node->poll_query_until('postgres',
		"SELECT status = 504 AND response_ms = 250.5 FROM pixl_usage_events WHERE token_id = '$tok_c' AND endpoint = '/late'"),
	'the late response updated the row');
is( $node->safe_psql('postgres',
		"SELECT errors || '/' || requests || '/' || response_ms_sum FROM pixl_usage_hourly
		  WHERE token_id = '$tok_c' AND endpoint = '/late'"),
	'1/1/250.5', 'and its rollup');

# (e) partitions ahead, and dropped past retention (rollups stay)
$node->safe_psql('postgres',
	"SELECT pixl_backfill_usage(ARRAY['$tok'], ARRAY[now() - interval '10 days'])");
my $old = $node->safe_psql('postgres',
	"SELECT 'pixl_usage_events_' || to_char((now() - interval '10 days') AT TIME ZONE 'UTC', 'YYYYMMDD')");
my $ahead = $node->safe_psql('postgres',
	"SELECT 'pixl_usage_events_' || to_char((now() + interval '7 days') AT TIME ZONE 'UTC', 'YYYYMMDD')");
$node->safe_psql('postgres', 'SELECT pixl_run_maintenance()');
is($node->safe_psql('postgres', "SELECT to_regclass('$ahead') IS NOT NULL"),
	't', 'the partition of 7 days ahead exists');
is($node->safe_psql('postgres', "SELECT to_regclass('$old') IS NOT NULL"),
	't', 'the backfilled day has its partition');
$node->safe_psql('postgres',
	"ALTER SYSTEM SET pixltoken.usage_retention = '2d'; SELECT pg_reload_conf()");
$node->poll_query_until('postgres',
	"SELECT current_setting('pixltoken.usage_retention') = '2d'");
cmp_ok($node->safe_psql('postgres', 'SELECT partitions_dropped FROM pixl_run_maintenance()'),
	'>=', 1, 'maintenance drops partitions past retention');
is($node->safe_psql('postgres', "SELECT to_regclass('$old') IS NULL"),
	't', 'the old partition is gone');
is( $node->safe_psql('postgres',
		"SELECT total_requests FROM pixl_usage_summary('$tok', 'all')"),
	'51', 'all-time usage still counts the dropped event (rollups)');

# (f) databases: db2 is served, db3 is not; nothing crosses
$node->safe_psql('postgres', 'CREATE DATABASE db2');
$node->safe_psql('postgres', 'CREATE DATABASE db3');
$node->safe_psql('db2', 'CREATE EXTENSION pixltoken');
$node->safe_psql('db3', 'CREATE EXTENSION pixltoken');
wait_serving($node, 'db2');
my ($tok2, $secret2) = new_token($node, 'db2', 'store_2');
my ($tok3, $secret3) = new_token($node, 'db3', 'store_3');
is(verify('db2', $secret2, 10), '10', 'verifications in db2');
is(verify('db3', $secret3, 7), '7', 'verifications in db3');
ok($node->poll_query_until('db2', "SELECT count(*) = 10 FROM pixl_usage_events"),
	'db2 has its 10 events');
is(events('db3', $tok3), '0', 'db3 (no worker) keeps no raw rows');
is( $node->safe_psql('db3', "SELECT count(*) FROM pixl_usage_hourly"),
	'0', 'nor counts: no verification writes a table');
is(usage_stat('db3', 'counts_lost'), '7', 'what it lost is counted for databases without a worker');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pixl_usage_events WHERE token_id IN ('$tok2', '$tok3')"),
	'0', 'none landed in postgres');
is($node->safe_psql('db2', "SELECT count(*) FROM pixl_usage_events WHERE token_id <> '$tok2'"),
	'0', 'none of another database landed in db2');

# (g) kill -9: what was flushed before stays; at most the rest is lost
set_flush('1min');
my ($tok_k, $secret_k) = new_token($node, 'postgres', 'store_k');
is(verify('postgres', $secret_k, 5), '5', '5 verifications');
$node->restart;				# clean: the 5 are saved, loaded and written
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 5 FROM pixl_usage_events WHERE token_id = '$tok_k'"),
	'the 5 are written after the clean restart');
is(verify('postgres', $secret_k, 20), '20', '20 more, queued for up to a minute');
my $last_rid = $node->safe_psql('postgres',
	"SELECT request_id FROM pixl_verify_request('$secret_k', 'products:read')");
$node->kill9;
# the orphaned children notice the postmaster's death and leave shared
# memory; until then a new postmaster refuses to start
my $started = 0;
for (1 .. 100)
{
	last if ($started = $node->start(fail_ok => 1));
	usleep(100_000);
	$node->stop('fast', fail_ok => 1);    # forget a stale pid
}
ok($started, 'restarted after kill -9');
# the 5 written before stay, the 21 queued (raw rows and counts, in
# shared memory, flushed only every minute) are lost, nothing is doubled:
# exactly what the README's loss table says for a crash
is(events('postgres', $tok_k), '5', 'after kill -9 exactly the 5 flushed raw rows remain');
is( $node->safe_psql('postgres',
		"SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok_k'"),
	'5', 'and the rollups count exactly those 5');
# and the 21 lost are counted (the clean restart before lost nothing: its
# 5 were saved and loaded back)
is(usage_stat('postgres', 'counts_lost'), '21',
	'the 21 verifications the crash took from shared memory are counted in counts_lost');
# request ids stay unique across a crash (1.1 ids are opaque text: they
# can only be compared for equality here)
is( $node->safe_psql('postgres',
		"SELECT request_id <> '$last_rid' FROM pixl_verify_request('$secret_k', 'products:read')"),
	't', 'request ids after the crash differ from those issued before it');

$node->stop;
done_testing();
