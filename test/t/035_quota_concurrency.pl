# Copyright: the pixltoken authors.
#
# Plan quotas under concurrency (src/verify/quota.c): pgbench with 8 and
# then 32 clients spread over four tokens of one store whose plan allows
# 300 calls per period, each token limited to 100 per minute, one token
# with an allowance of its own of 40.  Checked, for each run:
#  - exactly the allowance is admitted, never more, and the store's
#    counter says so (a refused call charged nothing);
#  - no token is admitted more than its minute limit in any 60 s, and the
#    one with its own allowance exactly that;
#  - every refusal is a 429, quota_exceeded or rate_limited, and a call
#    refused by the allowance consumed nothing of its token's minute: the
#    window's remaining after the run is the limit minus what it admitted;
#  and, with pixltoken.rate_limit_share 0.3, a node admits its share of an
#  allowance and says so in RateLimit-Policy.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pixl_node('quota', extension => 'postgres', conf => "max_connections = 50\n");

my $allowance = 300;
my $limit = 100;
my $own = 40;

$node->safe_psql('postgres', qq{
INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens, period_quota)
VALUES ('tap_quota', 60, 1000, 100, $allowance);
CREATE TABLE q_secrets (run int, n int, token_id text, secret text, PRIMARY KEY (run, n));
CREATE UNLOGGED TABLE q_results (run int, n int, at timestamptz, status int, reason text);
});

# pgbench substitutes :run and :t
my $script = q{
\set t random(1, 4)
INSERT INTO q_results
SELECT :run, :t, clock_timestamp(), v.status, v.reason
  FROM q_secrets s, LATERAL pixl_verify_request(s.secret, 'orders:read') v
 WHERE s.run = :run AND s.n = :t;
};

foreach my $clients (8, 32)
{
	my $store = "tap-quota-$clients";
	my $per_client = int(4 * $allowance / $clients) + 10;
	my $total = $clients * $per_client;

	$node->safe_psql('postgres', qq{
SELECT pixl_set_store_plan('$store', 'tap_quota');
INSERT INTO q_secrets
SELECT $clients, g, t.token_id, t.token
  FROM generate_series(1, 4) g
 CROSS JOIN LATERAL pixl_create_token('$store', 'Q' || g, ARRAY['orders:read'], rate_limit => $limit) t;
SELECT pixl_set_token_quota(token_id, $own) FROM q_secrets WHERE run = $clients AND n = 4;
});

	$node->pgbench(
		"--no-vacuum --client=$clients --jobs=2 --transactions=$per_client -D run=$clients",
		0,
		[qr{processed: $total/$total}],
		[],
		"pgbench with $clients clients",
		{ "035_quota_$clients" => $script });

	my $res = $node->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE status = 200) || ' ' ||
	   count(*) FILTER (WHERE status = 429 AND reason IN ('quota_exceeded', 'rate_limited')) || ' ' ||
	   count(*) FILTER (WHERE status NOT IN (200, 429))
  FROM q_results WHERE run = $clients});
	my ($ok, $refused, $other) = split / /, $res;
	is($ok, $allowance, "$clients clients: exactly the allowance of $allowance admitted");
	is($ok + $refused, $total, "$clients clients: every other call a 429 quota_exceeded or rate_limited");
	is($other, '0', "$clients clients: no other status");
	is($node->safe_psql('postgres', "SELECT used FROM pixl_quota_used('$store')"),
		$allowance, "$clients clients: the store's counter is what was admitted: refusals charged nothing");

	# per token: the minute limit over any 60 s, the token's own allowance
	my $worst = $node->safe_psql('postgres', qq{
SELECT coalesce(max(c), 0) FROM (
	SELECT count(*) OVER (PARTITION BY n ORDER BY at
						  RANGE BETWEEN interval '60 s' PRECEDING AND CURRENT ROW) AS c
	  FROM q_results WHERE run = $clients AND status = 200) w});
	cmp_ok($worst, '<=', $limit, "$clients clients: at most $limit of a token admitted in any 60 s ($worst)");
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM q_results WHERE run = $clients AND n = 4 AND status = 200"),
		$own, "$clients clients: the token with its own allowance got exactly $own");

	# a refused call charged no window: remaining = limit - admitted
	my $bad = $node->safe_psql('postgres', qq{
SELECT count(*) FROM q_secrets s
 CROSS JOIN LATERAL pixl_verify_request(s.secret, 'orders:read') v
 WHERE s.run = $clients
   AND v.remaining IS DISTINCT FROM
	   $limit - (SELECT count(*) FROM q_results r
				  WHERE r.run = $clients AND r.n = s.n AND r.status = 200)});
	is($bad, '0', "$clients clients: each token's window holds exactly its admitted calls");
}

is($node->safe_psql('postgres', 'SELECT table_full_rejections FROM pixl_quota_stats()'),
	'0', 'no call failed closed for a full counter table');

# One allowance across nodes: each node enforces its share, by the rule of
# the minute limit, floor(allowance x share + 1e-6).
$node->append_conf('postgresql.conf', "pixltoken.rate_limit_share = 0.3\n");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('pixltoken.rate_limit_share') = '0.3'")
  or die 'the share was not reloaded';
$node->safe_psql('postgres', q{
INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens, period_quota)
VALUES ('tap_quota_ten', 60, 1000, 100, 10);
SELECT pixl_set_store_plan('tap-share', 'tap_quota_ten');
});
my (undef, $stok) = new_token($node, 'postgres', 'tap-share', plan => undef,
	scopes => ['orders:read'], rate_limit => 1000);
my $got = $node->safe_psql('postgres', qq{
SELECT string_agg(v.status || ' ' || regexp_replace(v.ratelimit_policy, 'w=\\d+\$', 'w=<w>'), ', ' ORDER BY g)
  FROM generate_series(1, 4) g,
	   LATERAL pixl_verify_token_http('$stok', 'orders:read', method => 'GET' || left(g::text, 0)) v});
is($got, join(', ', map { qq{$_ "default";q=300;w=60, "monthly";q=3;w=<w>} } (200, 200, 200, 429)),
	'share 0.3 of an allowance of 10: this node admits 3, and says so');

$node->stop;
done_testing();
