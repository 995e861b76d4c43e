# Copyright: the pixltoken authors.
#
# Two failovers in a row, the way pg_auto_failover brings nodes back: with
# pg_rewind (which removes the usage spool with the rest of pg_stat_tmp/)
# or pg_basebackup (which does not copy it), so a node that comes back
# ships under a new incarnation of its node id.  A (node 1) primary, B
# (node 2) its standby, shipping; B promoted; C, a new standby of B under
# node id 1 (A rebuilt), ships as node 1; B gone, C promoted; D, a new
# standby of C under node id 2 (B rebuilt).
#  (1) a promoted node forgets the registration of its own node id (a
#      primary owns its id: no standby ships under it meanwhile): B, then
#      C, list no row of their own id once serving;
#  (2) so D, a new incarnation of node 2, ships at once, without
#      pixl_replica_reset_node (before, it was refused with PX065 until an
#      operator reset node 2): C counts every verification of D exactly,
#      and the whole chain's usage is there once.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test qw(pixl_node pixl_standby wait_is);
use PostgreSQL::Test::Utils;
use Test::More;

my $conf = q{
pixltoken.request_log = 'all'
wal_receiver_timeout = '2s'
wal_retrieve_retry_interval = '200ms'
};
my $a = pixl_node('a', init => { allows_streaming => 1 }, extension => 'postgres',
	conf => $conf . "pixltoken.node_id = 1\n");
my ($tok, $sec) = PixlToken::Test::new_token($a, 'postgres', 'store-rebuilt');

sub verify
{
	my ($node, $n) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE v.status = 200) FROM generate_series(1, $n) g
		  CROSS JOIN LATERAL pixl_verify_request(CASE WHEN g > 0 THEN '$sec' END, 'products:read') v");
}

my $requests = "SELECT coalesce(sum(requests), 0) FROM pixl_usage_hourly WHERE token_id = '$tok'";
my $registered = 'SELECT string_agg(node_id::text, \',\' ORDER BY node_id) FROM pixl_replica_nodes';

# B, node 2, ships 10 to A
my $b = pixl_standby($a, 'b', conf => "pixltoken.node_id = 2\n");
$a->wait_for_catchup($b, 'replay');
is(verify($b, 10), '10', '10 verifications on B');
wait_is($a, 'postgres', $requests, '10', 'A counts B\'s 10');
is($a->safe_psql('postgres', $registered), '2', 'A has node 2 registered');
$a->wait_for_catchup($b, 'replay');

# B promoted (A gone); C, A rebuilt from a base backup of B, node 1
$a->stop('immediate');
$b->promote;
$b->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()') or die;
wait_is($b, 'postgres', "SELECT coalesce(($registered), '(none)')", '(none)',
	'(1) B, promoted, forgot the registration of its own id 2');
my $c = pixl_standby($b, 'c', conf => "pixltoken.node_id = 1\n");
$b->wait_for_catchup($c, 'replay');
is(verify($c, 20), '20', '20 verifications on C');
wait_is($b, 'postgres', $requests, '30', 'B counts C\'s 20');
is($b->safe_psql('postgres', $registered), '1', 'B has node 1 registered');
$b->wait_for_catchup($c, 'replay');

# C promoted (B gone)
$b->stop('immediate');
$c->promote;
$c->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()') or die;
wait_is($c, 'postgres', "SELECT coalesce(($registered), '(none)')", '(none)',
	'(1) C, promoted, forgot the registration of its own id 1');

# (2) D, B rebuilt from a base backup of C, node 2: a new incarnation
my $d = pixl_standby($c, 'd', conf => "pixltoken.node_id = 2\n");
$c->wait_for_catchup($d, 'replay');
is(verify($d, 30), '30', '30 verifications on D');
wait_is($c, 'postgres', $requests, '60', '(2) C counts D\'s 30 without a reset: 10 + 20 + 30');
is( $d->safe_psql('postgres',
		"SELECT worker_state || ' ' || coalesce(last_error, '(none)') FROM pixl_stats() WHERE datname = 'postgres'"),
	'shipping (none)', '(2) D ships, never refused');
is($c->safe_psql('postgres', $registered), '2', 'C has node 2 registered, D\'s incarnation');
is( $c->safe_psql('postgres',
		"SELECT count(*) = count(DISTINCT request_id) FROM pixl_usage_events WHERE token_id = '$tok'"),
	't', 'raw rows: every request id once');

done_testing();
