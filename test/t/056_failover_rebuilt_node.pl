# Copyright: the pixltoken authors.
#
# Two failovers in a row, the way pg_auto_failover runs them when it
# rebuilds a node with pg_basebackup (its fallback when pg_rewind fails):
# A (node 1) primary, B (node 2) its standby, shipping; B promoted; C, a new
# standby of B under node id 1 (A rebuilt), ships as node 1; B gone, C
# promoted; D, a new standby of C under node id 2 (B rebuilt).
#  (1) C, promoted, knows node 2 (B's incarnation, replicated from A
#      through B) and node 1 (its own, from when it shipped to B);
#  (2) D, a new incarnation of node 2, is refused (PX065 in its
#      pixl_stats().last_error) and keeps its usage in shared memory;
#  (3) pixl_replica_reset_node(2) on C (the operator's step of the recipe,
#      docs/operations.md "Automatic failover") and D ships, exactly: C
#      counts every verification D made, before and after the reset.
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
$a->wait_for_catchup($b, 'replay');

# B promoted (A gone); C, A rebuilt from a base backup of B, node 1
$a->stop('immediate');
$b->promote;
$b->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()') or die;
my $c = pixl_standby($b, 'c', conf => "pixltoken.node_id = 1\n");
$b->wait_for_catchup($c, 'replay');
is(verify($c, 20), '20', '20 verifications on C');
wait_is($b, 'postgres', $requests, '30', 'B, promoted, counts C\'s 20 (node 1 was never a standby)');
$b->wait_for_catchup($c, 'replay');

# (1) C promoted (B gone)
$b->stop('immediate');
$c->promote;
$c->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()') or die;
is($c->safe_psql('postgres', $registered), '1,2', 'C, promoted, has node 1 and node 2 registered');

# (2) D, B rebuilt from a base backup of C, node 2: a new incarnation
my $d = pixl_standby($c, 'd', conf => "pixltoken.node_id = 2\n");
$c->wait_for_catchup($d, 'replay');
is(verify($d, 30), '30', '30 verifications on D');
ok( $d->poll_query_until('postgres',
		"SELECT last_error LIKE '%node id 2 is registered to another standby%'
		   FROM pixl_stats() WHERE datname = 'postgres'"),
	'D, a new incarnation of node 2, is refused (PX065) until the node is reset');
is($c->safe_psql('postgres', $requests), '30', 'C has none of D\'s 30 yet');

# (3) the operator's reset: D ships what it kept, exactly once
$c->safe_psql('postgres', 'SELECT pixl_replica_reset_node(2)');
is(verify($d, 5), '5', '5 more on D after the reset');
wait_is($c, 'postgres', $requests, '65', 'C counts D\'s 30 + 5 once node 2 is reset');
wait_is($d, 'postgres',
	"SELECT worker_state || ' ' || (last_flush_at > last_error_at) FROM pixl_stats() WHERE datname = 'postgres'",
	'shipping true', 'D ships, acknowledged after its last error');

done_testing();
