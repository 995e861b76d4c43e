# Copyright: the pixltoken authors.
#
# The shared-memory count table is fair: no token or store can push other
# stores' endpoints into "(other)".  With a count table of 256 entries, one
# token sends many distinct endpoints (most of them as 429s); another
# store's new endpoint is still counted under its own name, exactly, and
# the flooding store's excess lands in its own token's "(other)", exactly.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pixl_node('fair_counts', extension => 'postgres', conf => q{
pixltoken.aggregate_entries = 256
pixltoken.max_endpoints_per_hour = 100000
});
wait_serving($node, 'postgres');

# n verifications at each of the endpoints prefix1 .. prefixK
sub verify
{
	my ($secret, $prefix, $k, $n) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE v.status IN (200, 403, 429)) FROM generate_series(0, $k * $n - 1) g
		   CROSS JOIN LATERAL pixl_verify_token('$secret', 'products:read', NULL, 'GET', '$prefix' || (g % $k + 1)) v");
}

sub rollup
{
	my ($tok, $cond) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(sum(requests), 0) FROM pixl_usage_hourly WHERE token_id = '$tok' AND $cond");
}

my ($tok_a, $secret_a) = new_token($node, 'postgres', 'flood', rate_limit => 10);
my ($tok_b, $secret_b) = new_token($node, 'postgres', 'quiet', rate_limit => 1000);

# B has an endpoint before the flood
is(verify($secret_b, '/b-old', 1, 3), '3', 'store quiet: 3 verifications of /b-old1');

# A: 400 distinct endpoints, twice each (10 accepted, the rest 429s)
is(verify($secret_a, '/a', 400, 2), '800', 'store flood: 800 verifications over 400 endpoints');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pixl_verify_token('$secret_a', 'products:read', NULL, 'GET', '/z') WHERE status = 429"),
	'1', 'the flood is rate-limited');

# B's new endpoints, after the flood
is(verify($secret_b, '/b-new', 5, 4), '20', 'store quiet: 20 verifications over 5 new endpoints');

ok( $node->poll_query_until('postgres', "SELECT " . "(SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok_a') = 801"),
	'every verification of the flood is folded');
ok( $node->poll_query_until('postgres', "SELECT " . "(SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok_b') = 23"),
	'every verification of the quiet store is folded');
is(rollup($tok_b, "endpoint = '(other)'"), '0', 'nothing of the quiet store is under (other)');
is( $node->safe_psql('postgres',
		"SELECT string_agg(endpoint || '=' || requests, ',' ORDER BY endpoint) FROM (SELECT endpoint, sum(requests) requests FROM pixl_usage_hourly WHERE token_id = '$tok_b' GROUP BY endpoint) x"),
	'/b-new1=4,/b-new2=4,/b-new3=4,/b-new4=4,/b-new5=4,/b-old1=3',
	'its new endpoints are counted under their own names, exactly');
my $named = $node->safe_psql('postgres',
	"SELECT count(DISTINCT endpoint) FROM pixl_usage_hourly WHERE token_id = '$tok_a' AND endpoint <> '(other)'");
cmp_ok($named, '<', 400, "the flood got $named endpoints under their own names");
is( rollup($tok_a, "endpoint <> '(other)'") + rollup($tok_a, "endpoint = '(other)'"),
	801, 'and the rest in its own (other), exactly');
cmp_ok(rollup($tok_a, "endpoint = '(other)'"), '>', 0, 'its (other) is not empty');
is( $node->safe_psql('postgres',
		"SELECT sum(rate_limited) FROM pixl_usage_hourly WHERE token_id = '$tok_a'"),
	'791', 'its 429s are all counted');
is($node->safe_psql('postgres', "SELECT counts_lost FROM pixl_stats() WHERE datname = 'postgres'"),
	'0', 'no count lost');

$node->stop;
done_testing();
