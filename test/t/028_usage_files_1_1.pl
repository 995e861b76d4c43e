# Copyright: the pixltoken authors.
#
# The files a clean shutdown of 1.1 left in pg_stat/ are still loaded after
# an update of the library: the unfolded counts (pixltoken_aggregates.dat,
# version 5, without cost and charged) and the queued raw records
# (pixltoken_queue.dat, version 2, events without cost and charged).  Their
# calls weighed 1 each and charged nothing: folded as cost = requests,
# charged 0.  The files are made by hand in 1.1's layout (64-bit
# little-endian; test/helpers/batch.sql makes the same records for batches)
# while the server is stopped cleanly.
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

$node->stop;
done_testing();
