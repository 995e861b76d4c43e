# Copyright: the pixltoken authors.
#
# The files a clean shutdown of 1.1 left in pg_stat/ are still loaded after
# an update of the library: the unfolded counts (pixltoken_aggregates.dat,
# version 5, without cost and charged) and the queued raw records
# (pixltoken_queue.dat, version 2, events without cost and charged).  Their
# calls weighed 1 each and charged nothing: folded as cost = requests,
# charged 0.  The files are made by hand in 1.1's layout (64-bit
# little-endian; test/helpers/batch.sql makes the same records for batches)
# while the server is stopped cleanly.  Then the counts file of version 6
# (with cost and charged, without scopes_used) is loaded with no scope
# used; and this build's own file (version 7) keeps the scopes the calls
# exercised across a clean restart.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pixl_node('files11', extension => 'postgres', conf => q{
pixltoken.request_log = 'all'
});
my ($tok, $secret) = new_token($node, 'postgres', 'files-store');
wait_serving($node, 'postgres');

my $helpers = slurp_file('test/helpers/batch.sql');
my $dboid = $node->safe_psql('postgres',
	"SELECT oid FROM pg_database WHERE datname = 'postgres'");
# an hour and a moment of it, an hour ago (the fold writes past hours too)
my ($hour, $at) = split /\|/, $node->safe_psql('postgres',
	"SELECT date_trunc('hour', now()) - interval '1 hour', date_trunc('hour', now()) - interval '1 hour' + interval '1 minute'");

# 1.1's count record (1400 bytes) of 6 requests, and 1.1's event record
# (344 bytes) of one verification at $at, as hex
my ($count_hex, $event_hex, $at_us) = split /\|/, $node->safe_psql('postgres', $helpers . qq{
SELECT encode(substr(pg_temp.count('$hour', '$tok', 'GET', '/old', 6, last_used => '$at'), 1, 1400), 'hex'),
	   encode(substr(pg_temp.event(0, '$at', 200, '$tok', 'GET', '/old'), 1, 344), 'hex'),
	   pg_temp.us('$at')});
is(length($count_hex), 2800, 'a count of 1400 bytes');
is(length($event_hex), 688, 'an event of 344 bytes');

$node->stop;

# the count's key names the database: its first 4 bytes (dbid)
my $count = pack('V', $dboid) . substr(pack('H*', $count_hex), 4);
my $pgstat = $node->data_dir . '/pg_stat';
unlink "$pgstat/pixltoken_aggregates.dat", "$pgstat/pixltoken_queue.dat";

# aggregates, version 5: magic, version, entry size (1400 + store key),
# padding, count; then the snapshot and its store key
open(my $fh, '>:raw', "$pgstat/pixltoken_aggregates.dat") or die $!;
print $fh pack('VVVV', 0x50584c41, 5, 1408, 0) . pack('q<', 1)
  . $count . pack('Q<', 0);
close $fh;

# queue, version 2: magic, version, record size, queues; then the queue's
# database name (64 bytes), its count, and each record's queued_at
open($fh, '>:raw', "$pgstat/pixltoken_queue.dat") or die $!;
print $fh pack('VVVl<', 0x50584c51, 2, 344, 1)
  . pack('a64', 'postgres') . pack('q<', 1)
  . pack('q<', $at_us) . pack('H*', $event_hex);
close $fh;

my $offset = -s $node->logfile;
$node->start;
ok(!$node->log_contains(qr/incompatible format/, $offset), 'neither file was refused');
ok($node->log_contains(qr/loaded 1 queued usage records of database "postgres"/, $offset),
	'the queue of 1.1 was loaded');
wait_is($node, 'postgres',
	"SELECT concat_ws(' ', sum(requests), sum(cost), sum(charged)) FROM pixl_usage_hourly WHERE token_id = '$tok'",
	'6 6 0', 'the counts of 1.1 are folded: 6 requests weighing 6, none charged');
wait_is($node, 'postgres',
	"SELECT count(*) FROM pixl_usage_events WHERE token_id = '$tok' AND endpoint = '/old'",
	'1', 'the raw row of 1.1 is written');
is($node->safe_psql('postgres',
		"SELECT last_used_at = '$at' FROM pixl_token_activity WHERE token_id = '$tok'"),
	't', 'last_used_at from the count of 1.1');

# version 6: the count of 1416 bytes (no scopes_used) of 4 requests
my $count6_hex = $node->safe_psql('postgres', $helpers . qq{
SELECT encode(substr(pg_temp.count('$hour', '$tok', 'GET', '/v6', 4, last_used => '$at', scopes => 4), 1, 1416), 'hex')});
is(length($count6_hex), 2832, 'a count of 1416 bytes');
$node->stop;
my $count6 = pack('V', $dboid) . substr(pack('H*', $count6_hex), 4);
unlink "$pgstat/pixltoken_aggregates.dat", "$pgstat/pixltoken_queue.dat";
open($fh, '>:raw', "$pgstat/pixltoken_aggregates.dat") or die $!;
print $fh pack('VVVV', 0x50584c41, 6, 1424, 0) . pack('q<', 1)
  . $count6 . pack('Q<', 0);
close $fh;
$offset = -s $node->logfile;
$node->start;
ok(!$node->log_contains(qr/incompatible format/, $offset), 'the counts file of version 6 was not refused');
wait_is($node, 'postgres',
	"SELECT concat_ws(' ', requests, cost, scopes_used) FROM pixl_usage_hourly WHERE token_id = '$tok' AND endpoint = '/v6'",
	'4 4 0', 'the counts of version 6 are folded, with no scope used');

# version 7, this build's: calls not folded at a clean shutdown keep their
# scopes (no fold for an hour; the worker folds at every new hour: this
# test does not run across one)
my ($tok7, $secret7) = new_token($node, 'postgres', 'files-store', name => 'T7',
	scopes => ['orders:read', 'settings:write']);
$node->safe_psql('postgres',
	"ALTER SYSTEM SET pixltoken.fold_interval = '1h'; SELECT pg_reload_conf()");
wait_is($node, 'postgres', q{SELECT setting FROM pg_settings WHERE name = 'pixltoken.fold_interval'},
	'3600000', 'folds once an hour');
sleep(1);	# the worker's loop has seen the new setting
is($node->safe_psql('postgres', qq{
SELECT string_agg(status::text, ' ' ORDER BY n)
  FROM (VALUES (1, 'orders:read'), (2, 'orders:read'), (3, 'settings:read'), (4, 'products:read')) AS s(n, scope),
	   LATERAL pixl_verify_request('$secret7', s.scope, NULL, 'GET', '/v7')}),
	'200 200 200 403', 'orders:read twice, settings:read through settings:write, products:read refused');
is($node->safe_psql('postgres', "SELECT count(*) FROM pixl_usage_hourly WHERE token_id = '$tok7'"),
	'0', 'not folded');
$offset = -s $node->logfile;
$node->restart;
ok($node->log_contains(qr/saved \d+ usage counts not yet in the rollups/, $offset),
	'the clean shutdown saved the counts');
wait_is($node, 'postgres',
	"SELECT concat_ws(' ', requests, errors, scopes_used, array_to_string(pixl_scope_names(scopes_used), ',')) FROM pixl_usage_hourly WHERE token_id = '$tok7'",
	'4 1 516 orders:read,settings:read',
	'after the restart: the scopes the admitted calls required (orders:read, settings:read), not the refused one');

$node->stop;
done_testing();
