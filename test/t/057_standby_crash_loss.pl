# Copyright: the pixltoken authors.
#
# A standby's crash loss is counted.  Verifications on a hot standby are
# counted in its shared memory and shipped to the primary in batches; a
# kill -9 of the standby's postmaster under traffic loses what was counted
# and not yet spooled.  That loss is counted: after the restart the
# standby's pixl_stats() shows it in counts_lost, so that what the primary
# received plus what the standby lost is exactly what the clients were
# answered; and the standby ships the figure to its primary, whose
# pixl_replica_nodes shows it per node.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test qw(pixl_node pixl_standby wait_is);
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);

my $primary = pixl_node('primary', init => { allows_streaming => 1 }, extension => 'postgres', conf => q{
wal_keep_size = '256MB'
log_parameter_max_length = 0
max_connections = 30
});
my ($tok, $secret) = PixlToken::Test::new_token($primary, 'postgres', 'store-crash',
	name => 'crash', rate_limit => 1000);

# A flush interval of 2 s keeps up to 2 s of verifications in shared memory
# at any moment, so the kill finds some there.
my $standby = pixl_standby($primary, 'standby', conf => q{
pixltoken.node_id = 1
cluster_name = 'standby'
wal_receiver_timeout = '2s'
wal_retrieve_retry_interval = '200ms'
pixltoken.flush_interval = '2s'
});
$primary->wait_for_catchup($standby, 'replay');
wait_is($standby, 'postgres',
	"SELECT worker_state FROM pixl_stats() WHERE datname = 'postgres'",
	'shipping', 'the standby ships');

sub standby_stat
{
	my ($col) = @_;
	return $standby->safe_psql('postgres',
		"SELECT $col FROM pixl_stats() WHERE datname = 'postgres'");
}
is(standby_stat('counts_lost'), '0', 'nothing lost before the crash');

# Traffic: pgbench verifies on the standby (200s and, past the limit,
# 429s: both counted) until the standby is killed under it.
my $script_file = $standby->basedir . '/055_script.sql';
open my $fh, '>', $script_file or die;
print $fh "SELECT status FROM pixl_verify_request('$secret', 'products' || chr(58) || 'read', NULL, 'GET', '/crash');\n";
close $fh;
my ($out, $err) = ('', '');
my $bench = IPC::Run::start(
	[ $standby->config_data('--bindir') . '/pgbench', '--no-vacuum', '--client=4',
	  '--jobs=2', '--time=60', '-f', $script_file, $standby->connstr('postgres') ],
	'>', \$out, '2>', \$err);
usleep(3_500_000);

# kill -9 of the standby's postmaster: its backends answer what they are
# verifying, then leave when they find the postmaster gone; until the last
# has left, a new postmaster refuses to start.
$standby->kill9;
$bench->finish;
my ($answers) = $out =~ /number of transactions actually processed: (\d+)/;
$answers //= 0;
cmp_ok($answers, '>', 100, "pgbench was answered $answers times before the kill")
  or diag($out . $err);

my $started = 0;
for (1 .. 100)
{
	last if ($started = $standby->start(fail_ok => 1));
	usleep(100_000);
	$standby->stop('fast', fail_ok => 1);    # forget a stale pid
}
ok($started, 'the standby restarted after kill -9');

# Everything left (the spooled batch) is shipped; what shared memory held
# at the kill is counted as lost, on the standby: the primary's count plus
# the standby's loss is every answer, exactly (a bounded poll: shipping
# takes a flush interval or two).
my ($shipped, $lost, $state);
my $deadline = time() + 60;
while (1)
{
	$shipped = $primary->safe_psql('postgres',
		"SELECT coalesce(sum(requests), 0) FROM pixl_usage_hourly WHERE token_id = '$tok'");
	$lost = standby_stat('counts_lost');
	$state = standby_stat("worker_state || ' ' || events_queued");
	last if ($state eq 'shipping 0' && $shipped + $lost == $answers) || time() > $deadline;
	usleep(200_000);
}
is($shipped + $lost, $answers,
	"answers ($answers) = shipped to the primary ($shipped) + counted as lost on the standby ($lost)");
cmp_ok($lost, '>', 0, 'the crash lost some, and they are counted in counts_lost');

# The standby ships the figure with its next batch (a batch is taken for it
# even with nothing else to ship): the primary's pixl_replica_nodes shows
# the node's loss, exactly once.
ok( $primary->poll_query_until('postgres',
		"SELECT counts_lost = $lost FROM pixl_replica_nodes WHERE node_id = 1"),
	"the primary's pixl_replica_nodes shows node 1's loss ($lost)");
$standby->safe_psql('postgres',
	"SELECT count(*) FROM generate_series(1, 5) g CROSS JOIN LATERAL pixl_verify_request(CASE WHEN g > 0 THEN '$secret' END, 'products' || chr(58) || 'read', NULL, 'GET', '/after') v");
my $after;
$deadline = time() + 30;
while (1)
{
	$after = $primary->safe_psql('postgres',
		"SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok'");
	last if $after == $shipped + 5 || time() > $deadline;
	usleep(200_000);
}
is($after, $shipped + 5, '5 more verifications after the restart are shipped')
  or diag($standby->safe_psql('postgres',
	"SELECT concat_ws(' ', worker_state, events_queued, counts_lost, last_error) FROM pixl_stats() WHERE datname = 'postgres'"));
is( $primary->safe_psql('postgres',
		"SELECT counts_lost FROM pixl_replica_nodes WHERE node_id = 1"),
	$lost, 'and still that figure after more batches (counted once)');

$standby->stop;
$primary->stop;
done_testing();
