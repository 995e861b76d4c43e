# Copyright: the pixltoken authors.
#
# When the usage worker runs, and what is recorded before it serves:
#  (a) no worker is started in binary-upgrade mode (pg_upgrade: -b), while
#      the same node started normally has one;
#  (b) uses of a rotation's previous secret verified while no worker serves
#      the database yet (it does not exist at start; the worker waits for
#      it) reach pixl_token_activity once the worker serves it, like every
#      other count;
#  (c) raw rows carry their token's store (the worker's token -> store
#      cache), also for a token made after the cache was filled.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = pixl_node('worker_start', databases => 'postgres,late', extension => 'postgres', conf => q{
# these tests follow every call through the raw-row pipeline
pixltoken.request_log = 'all'
max_worker_processes = 16
});

my $workers = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pixltoken usage worker'";

# (a) a normal start has the worker of postgres ...
ok( $node->poll_query_until('postgres', "$workers AND datname = 'postgres'", '1'),
	'normal start: the usage worker of postgres runs');
$node->stop;

# ... binary-upgrade mode has none, for as long as a normal start needs to
# show it (polled, bounded), and pixl_stats says so.
command_ok(
	[ 'pg_ctl', '-D', $node->data_dir, '-l', $node->logfile, '-o', '-b', '-w', 'start' ],
	'start in binary-upgrade mode');
my $seen = 0;
for (my $i = 0; $i < 50 && !$seen; $i++)
{
	$seen = 1 if $node->safe_psql('postgres', $workers) ne '0';
	usleep(100_000);
}
is($seen, 0, 'binary-upgrade mode: no usage worker in pg_stat_activity for 5 s');
is( $node->safe_psql('postgres',
		"SELECT string_agg(worker_state, ',' ORDER BY datname) FROM pixl_stats() WHERE datname IS NOT NULL"),
	'not running,not running',
	'binary-upgrade mode: pixl_stats shows no worker running');
command_ok([ 'pg_ctl', '-D', $node->data_dir, '-w', '-m', 'fast', 'stop' ],
	'stop binary-upgrade mode');
$node->start;

# (b) the worker of "late" waits for that database to exist; hold it there
ok( $node->poll_query_until('postgres',
		"SELECT worker_state FROM pixl_stats() WHERE datname = 'late'",
		'waiting for database'),
	'the worker of late waits for its database');
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pixltoken usage worker' AND datname IS NULL");
like($pid, qr/^\d+$/, 'found the waiting worker');
kill 'STOP', $pid;

$node->safe_psql('postgres', 'CREATE DATABASE late');
$node->safe_psql('late', 'CREATE EXTENSION pixltoken');
my ($tok, $old) = new_token($node, 'late', 's');
my $new = $node->safe_psql('late', "SELECT pixl_rotate_token('$tok', '1 hour')");
is( $node->safe_psql('late',
		"SELECT string_agg(v.status || '/' || v.previous_secret_used, ',')
		   FROM generate_series(1, 3) g
		  CROSS JOIN LATERAL pixl_verify_request(CASE WHEN g > 0 THEN '$old' END, 'products:read') v"),
	'200/true,200/true,200/true',
	'three verifications with the previous secret');
is( $node->safe_psql('late',
		"SELECT count(*) FROM pixl_verify_request('$new', 'products:read') v WHERE v.status = 200 AND NOT v.previous_secret_used"),
	'1', 'one with the new secret');
is( $node->safe_psql('postgres',
		"SELECT worker_state || ' ' || events_queued FROM pixl_stats() WHERE datname = 'late'"),
	'waiting for database 4',
	'no worker serves late yet: its four records are queued');

kill 'CONT', $pid;
ok( $node->poll_query_until('late',
		"SELECT coalesce((SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok'), 0)",
		'4'),
	'the worker serves late: four verifications in the rollups');
is( $node->safe_psql('late',
		"SELECT previous_secret_uses || ' ' || (previous_secret_last_used_at IS NOT NULL)
		   FROM pixl_token_activity WHERE token_id = '$tok'"),
	'3 true',
	'the three previous-secret uses reached pixl_token_activity');
is( $node->safe_psql('late',
		"SELECT previous_secret_uses FROM pixl_tokens WHERE token_id = '$tok'"),
	'3', 'and pixl_tokens shows them');

# (c) raw rows written by the served worker carry their token's store (the
# worker caches token -> store; a new token, made after, gets its own)
$node->safe_psql('late', "SELECT pixl_verify_request('$new', 'products:read')");
ok( $node->poll_query_until('late',
		"SELECT count(*) FROM pixl_usage_events WHERE token_id = '$tok' AND store_id = 's'", '5'),
	'raw rows of the token in store s');
my ($tok2, $sec2) = new_token($node, 'late', 's2', name => 'T2');
$node->safe_psql('late', "SELECT pixl_verify_request('$sec2', 'products:read')");
ok( $node->poll_query_until('late',
		"SELECT count(*) FROM pixl_usage_events WHERE token_id = '$tok2' AND store_id = 's2'", '1'),
	'the raw row of a token made later is in store s2');
is($node->safe_psql('late', "SELECT count(*) FROM pixl_usage_events WHERE store_id IS NULL"),
	'0', 'no raw row without its store');

$node->stop;
done_testing();
