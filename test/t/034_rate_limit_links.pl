# Copyright: the pixltoken authors.
#
# The token cache's link to a token's rate-limit slot (rate_limit.c,
# find_slot_linked): a backend keeps, per cached token, the slot where it
# last found the token's window, and must take it only while that slot
# still holds the token.  Slots move when the sweep deletes idle entries
# (later entries of a probe sequence shift back) and are reused by other
# tokens.  One backend:
#  (a) verifies the eleven tokens of store a (links made);
#  (b) a minute later (its test clock), verifies 8 x 11 tokens of other
#      stores: at 90 entries one pass evicts a's idle entries, the others
#      move into their slots;
#  (c) verifies a's tokens again: each gets a fresh window of its own, and
#      every other token's window holds exactly its own two calls.
# With pixltoken.max_tracked_tokens at its minimum (100).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pixl_node('ratelinks', intervals => 0, extension => 'postgres',
	conf => "pixltoken.max_tracked_tokens = 100\n");
$node->safe_psql('postgres', q{
	CREATE TABLE secrets (store text, n int, secret text);
});
for my $store ('a', map { "s$_" } 1 .. 8)
{
	$node->safe_psql('postgres', qq{
		SELECT pixl_set_store_plan('$store', 'enterprise');
		INSERT INTO secrets
		SELECT '$store', g, t.token
		  FROM generate_series(1, 11) g
		 CROSS JOIN LATERAL pixl_create_token('$store', 'T' || g, ARRAY['orders:read'],
											  rate_limit => 1000) t;
	});
}

# "status/remaining: count" of one verification of each token of a set
my $verify = q{
	SELECT string_agg(r, ' ' ORDER BY r) FROM (
	SELECT v.status || '/' || v.remaining || ':' || count(*) AS r
	  FROM secrets s CROSS JOIN LATERAL pixl_verify_token(s.secret) v
	 WHERE %s
	 GROUP BY v.status, v.remaining) x;
};

my $out = $node->safe_psql('postgres',
	sprintf($verify, "s.store = 'a'")
	  . "SET pixltoken.test_clock_offset = 62;"
	  . sprintf($verify, "s.store <> 'a'")
	  . "SELECT tokens_evicted || '/' || tokens_tracked FROM pixl_rate_limit_stats();"
	  . sprintf($verify, "s.store = 'a'")
	  . sprintf($verify, "s.store <> 'a'"));
my @lines = split /\n/, $out;
is($lines[0], '200/999:11', '(a) store a: one call each');
is($lines[1], '200/999:88', '(b) a minute later, 88 other tokens: one call each');
is($lines[2], '11/88', '(b) the pass evicted the eleven idle entries of store a');
is($lines[3], '200/999:11', '(c) store a again: fresh windows of their own, whatever their old slots hold');
is($lines[4], '200/998:88', '(c) every other token: its own two calls');

$node->stop;
done_testing();
