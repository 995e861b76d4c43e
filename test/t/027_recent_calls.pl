# pixltoken.request_log = recent (the default): the last 20 calls of each
# token and final status are kept in pixl_usage_recent, not one raw row per
# request; reports move calls to their status, a late report changes the
# written row; the table holds 20 rows per token and status at most;
# request_log = all writes every call into pixl_usage_events.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pixl_node('recent', extension => 'postgres');
wait_serving($node, 'postgres');

# n calls to /p<g> in one statement; returns their request ids, in order
sub calls
{
	my ($secret, $from, $to) = @_;
	return split /,/, $node->safe_psql('postgres',
		"SELECT string_agg(v.request_id, ',' ORDER BY g) FROM generate_series($from, $to) g
		   CROSS JOIN LATERAL pixl_verify_request(CASE WHEN g > 0 THEN '$secret' END,
				'products:read', NULL, 'GET', '/p' || g) v");
}

sub recent
{
	my ($tok, $status) = @_;
	my $filter = defined $status ? ", status => $status" : '';
	return $node->safe_psql('postgres',
		"SELECT string_agg(endpoint, ',' ORDER BY at DESC) FROM pixl_recent_calls('$tok'$filter, lim => 1000)");
}

my ($tok, $secret) = new_token($node, 'postgres', 'store_recent');
my @ids = calls($secret, 1, 50);
is(scalar @ids, 50, '50 verifications');
# the last five are answered 500, at once (as an app reports)
$node->safe_psql('postgres',
	"SELECT pixl_log_responses(ARRAY['" . join("','", @ids[45 .. 49]) . "'], ARRAY[500,500,500,500,500], ARRAY[7,7,7,7,7])");

ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 5 FROM pixl_recent_calls('$tok', status => 500) WHERE response_ms = 7"),
	'the five answered calls are shown with their final status and time');
is(recent($tok, 500), '/p50,/p49,/p48,/p47,/p46', 'status 500: the five, newest first');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 20 FROM pixl_recent_calls('$tok', status => 200, lim => 1000)"),
	'status 200: twenty calls');
is( recent($tok, 200),
	join(',', map { "/p$_" } reverse 26 .. 45),
	'status 200: the last twenty answered 200 (the moved ones leave room)');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pixl_recent_calls('$tok', lim => 1000)"),
	'25', 'no filter: what is kept of every status');
is( $node->safe_psql('postgres',
		"SELECT string_agg(endpoint, ',' ORDER BY at DESC) FROM pixl_recent_calls('$tok')"),
	'/p50,/p49,/p48,/p47,/p46,' . join(',', map { "/p$_" } reverse 31 .. 45),
	'the default page: the last 20 calls');

# no raw row per request, and the counts are exact all the same
is($node->safe_psql('postgres', "SELECT count(*) FROM pixl_usage_events WHERE token_id = '$tok'"),
	'0', 'no raw rows');
ok( $node->poll_query_until('postgres',
		"SELECT sum(requests) = 50 AND sum(errors) = 5 FROM pixl_usage_hourly WHERE token_id = '$tok'"),
	'the rollups count all 50 and the 5 errors');

# a report after its call was written changes the row in place
my @late = calls($secret, 51, 51);
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pixl_recent_calls('$tok') WHERE endpoint = '/p51' AND response_ms IS NULL"),
	'an unanswered call is written after its grace');
$node->safe_psql('postgres', "SELECT pixl_log_response('$late[0]', 503, 1234.5)");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pixl_recent_calls('$tok', status => 503) WHERE endpoint = '/p51' AND response_ms = 1234.5"),
	'its late report changes it');

# storage follows tokens and statuses, not requests: 900 calls of another
# token keep 20 rows
my ($tok3, $secret3) = new_token($node, 'postgres', 'store_many');
calls($secret3, 1, 900);
ok( $node->poll_query_until('postgres',
		"SELECT sum(requests) = 900 FROM pixl_usage_hourly WHERE token_id = '$tok3'"),
	'900 counted');
ok( $node->poll_query_until('postgres',
		"SELECT string_agg(endpoint, ',' ORDER BY at DESC) = '"
		  . join(',', map { "/p$_" } reverse 881 .. 900)
		  . "' FROM pixl_recent_calls('$tok3', status => 200)"),
	'the last twenty of 900 are shown');
is($node->safe_psql('postgres', "SELECT count(*) FROM pixl_usage_recent WHERE token_id = '$tok3'"),
	'20', 'pixl_usage_recent holds 20 rows for them');

# a restart: the worker finds the slots where it left them
$node->restart;
$node->poll_query_until('postgres',
	"SELECT worker_state = 'serving' FROM pixl_stats() WHERE datname = current_database()")
  or die 'worker not serving';
calls($secret3, 5000, 5004);
ok( $node->poll_query_until('postgres',
		"SELECT string_agg(endpoint, ',' ORDER BY at DESC) = '"
		  . join(',', map { "/p$_" } (reverse(5000 .. 5004), reverse(886 .. 900)))
		  . "' FROM pixl_recent_calls('$tok3', status => 200)"),
	'after a restart, new calls replace the oldest');
is($node->safe_psql('postgres', "SELECT count(*) FROM pixl_usage_recent WHERE token_id = '$tok3'"),
	'20', 'still 20 rows');

# request_log = all: every call is a raw row again
$node->safe_psql('postgres', "ALTER SYSTEM SET pixltoken.request_log = 'all'; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', "SELECT current_setting('pixltoken.request_log') = 'all'")
  or die 'not reloaded';
my ($tok2, $secret2) = new_token($node, 'postgres', 'store_all');
calls($secret2, 1, 30);
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 30 FROM pixl_usage_events WHERE token_id = '$tok2'"),
	'request_log = all: one raw row per call');
is($node->safe_psql('postgres', "SELECT count(*) FROM pixl_recent_calls('$tok2', lim => 1000)"),
	'30', 'and pixl_recent_calls shows them all');

$node->stop;
done_testing();
