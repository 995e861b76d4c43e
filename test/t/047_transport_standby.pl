# Credentials over plain HTTP on hot standbys: a standby with a node id
# answers the same 403, marks the token (401 exposed on its next secure use
# there at once) and ships the exposure with its usage batch; the primary
# revokes it once; the standby clears its mark when it sees the revocation
# replayed.  A standby without a node id keeps no usage: it answers the 403
# and exposes nothing (counted as unqueued): the documented gap.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test qw(pixl_node pixl_standby wait_is new_token);
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = pixl_node('primary', init => { allows_streaming => 1 }, extension => 'postgres',
	conf => "max_worker_processes = 16\n");
my ($id_a, $s_a) = new_token($primary, 'postgres', 'tr-standby');
my ($id_b, $s_b) = new_token($primary, 'postgres', 'tr-standby', plan => undef, name => 'B');

my $standby = pixl_standby($primary, 'standby1', backup => 'base1', conf => q{
pixltoken.node_id = 1
wal_receiver_timeout = '2s'
wal_retrieve_retry_interval = '200ms'
});
my $bare = pixl_standby($primary, 'standby0', backup => 'base0');
for my $node ($standby, $bare)
{
	$node->poll_query_until('postgres', "SELECT count(*) = 2 FROM pixl_tokens WHERE store_id = 'tr-standby'")
	  or die 'the tokens did not reach ' . $node->name;
}

sub verify
{
	my ($node, $secret, $transport) = @_;
	return $node->safe_psql('postgres',
		"SELECT status || ' ' || reason FROM pixl_verify_request('$secret', 'products:read', NULL, 'GET', '/s', NULL, 1, '$transport')");
}

# a standby with a node id
is(verify($standby, $s_a, 'http'), '403 insecure_transport', 'standby: 403 over plain HTTP');
is(verify($standby, 'sk_live_nope', 'http'), '403 insecure_transport', 'standby: the same 403 for garbage');
is(verify($standby, $s_a, 'https'), '401 exposed', 'standby: 401 exposed at once over HTTPS');
wait_is($primary, 'postgres', "SELECT status FROM pixl_tokens WHERE token_id = '$id_a'", 'exposed',
	'the primary revoked it when it took the standby\'s batch');
is($primary->safe_psql('postgres',
		"SELECT count(*) || ' ' || min(detail->>'source') FROM pixl_audit WHERE token_id = '$id_a' AND action = 'expose'"),
	'1 insecure_transport', 'one expose audit row on the primary');
is(verify($primary, $s_a, 'https'), '401 exposed', 'the primary answers 401 exposed');
wait_is($standby, 'postgres', "SELECT status FROM pixl_tokens WHERE token_id = '$id_a'", 'exposed',
	'the standby replayed the revocation');
is(verify($standby, $s_a, 'https'), '401 exposed', 'standby: still 401 exposed, now from the registry');
is($standby->safe_psql('postgres', 'SELECT marked FROM pixl_transport_stats()'), '0',
	'standby: its mark cleared once the revocation was seen');

# a standby without a node id keeps no usage: the 403, nothing exposed
is(verify($bare, $s_b, 'http'), '403 insecure_transport', 'standby without node id: 403 over plain HTTP');
is($bare->safe_psql('postgres', 'SELECT revocations || \' \' || unqueued || \' \' || marked FROM pixl_transport_stats()'),
	'1 1 0', 'handed over, but not queued: counted as unqueued, no mark');
is(verify($bare, $s_b, 'https'), '200 ok', 'so the token still verifies there');
is($primary->safe_psql('postgres', "SELECT status FROM pixl_tokens WHERE token_id = '$id_b'"), 'active',
	'and on the primary');

$bare->stop;
$standby->stop;
$primary->stop;
done_testing();
