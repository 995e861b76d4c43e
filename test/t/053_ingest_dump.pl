# Copyright: the pixltoken authors.
#
# Whatever a caller of pixl_ingest_usage sends, the database stays
# restorable: a batch with a last_used of year 294277, an endpoint that is
# not UTF-8 and an INT64_MAX count beside a legitimate count is refused
# whole (PX064, nothing written), a good batch of another node is applied,
# and pg_dump | psql into a fresh database restores pixl_token_activity,
# pixl_usage_hourly (with its cost and charged) and the dated event
# partitions with the same rows; pixl_usage_by_store still sums.  The batches are made by hand
# (test/helpers/batch.sql).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pixl_node('ingest_dump', databases => 'shop', conf => q{
# these tests follow every call through the raw-row pipeline
pixltoken.request_log = 'all'
});
$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->safe_psql('shop', q{
CREATE EXTENSION pixltoken;
SELECT pixl_set_store_plan('dump-store', 'enterprise');
SELECT pixl_run_maintenance();
});
my $tok = $node->safe_psql('shop',
	"SELECT token_id FROM pixl_create_token('dump-store', 'dump', ARRAY['products:read'])");

my $helpers = slurp_file('test/helpers/batch.sql');

# One session: the helpers are pg_temp functions.
like(err($node, 'shop', $helpers . qq{
\\set tok $tok
SELECT date_trunc('hour', now()) AS hour, date_trunc('hour', now()) + interval '1 minute' AS at \\gset
SELECT pixl_ingest_usage(1, 10, 1, 0.5, 'bad', pg_temp.batch(
	ARRAY[pg_temp.event(1, :'at', 200, :'tok', 'GET', '/bad' || '\\xff'::bytea)],
	ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/fine', 5),
		  pg_temp.count(:'hour', :'tok', 'GET', '/late', 1, last_used_us => 9223371331200000000),
		  pg_temp.count(:'hour', :'tok', 'GET', '/many', 9223372036854775807)]));
}), qr/PX064|invalid usage batch/, 'the bad batch is refused');

my ($ret, $out, $err) = $node->psql('shop', $helpers . qq{
\\set tok $tok
SELECT date_trunc('hour', now()) AS hour, date_trunc('hour', now()) + interval '1 minute' AS at \\gset
SELECT pixl_ingest_usage(2, 20, 1, 0.5, 'good', pg_temp.batch(
	ARRAY[pg_temp.event(2, :'at', 200, :'tok', 'GET', '/good')],
	ARRAY[pg_temp.count(:'hour', :'tok', 'GET', '/good', 7, last_used => :'at',
						cost => 19, charged => 12)]));
});
is($ret, 0, 'the good batch is applied') or diag($err);
like($out, qr/applied/, 'answered applied');

my $counts_sql = q{
SELECT concat_ws(' ',
	(SELECT count(*) FROM pixl_token_activity),
	(SELECT count(*) FROM pixl_usage_hourly),
	(SELECT coalesce(sum(requests), 0) FROM pixl_usage_hourly),
	(SELECT coalesce(sum(cost), 0) || '/' || coalesce(sum(charged), 0) FROM pixl_usage_hourly),
	(SELECT count(*) FROM pixl_usage_events),
	(SELECT count(*) FROM pixl_usage_events e WHERE e.tableoid::regclass::text ~ 'pixl_usage_events_[0-9]{8}$'))
};
my $before = $node->safe_psql('shop', $counts_sql);
is($before, '1 1 7 19/12 1 1',
	'only the good batch is in: activity, hourly, 7 requests weighing 19 (12 charged), its event in a dated partition');
is($node->safe_psql('shop',
		"SELECT requests FROM pixl_usage_by_store WHERE store_id = 'dump-store'"),
	'7', 'pixl_usage_by_store sums');

my $dumpfile = $node->basedir . '/shop.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('shop'), '-f', $dumpfile ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'), '-f', $dumpfile ],
	'the dump restores without errors');
is($node->safe_psql('restored', $counts_sql), $before,
	'the restored usage tables have the same rows');

$node->stop;
done_testing();
