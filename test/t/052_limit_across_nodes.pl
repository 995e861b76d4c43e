# Copyright: the pixltoken authors.
#
# One limit across nodes: pixltoken.rate_limit_share.
#
# (a) The arithmetic on one node: at share 0.5 a limit-10 token is admitted
#     5 times, and rate_limit, remaining, retry_after_ms and the HTTP
#     RateLimit-Policy / RateLimit / Retry-After headers describe this
#     node's quota of 5; a limit-3 token gets 1; a limit-1 token gets 0 (429
#     with a whole window to wait; a 403 stays a 403); 0.29 x 100 gives 29
#     (not 28 from the double product 28.999...); out-of-range shares are
#     refused and a session cannot SET it; share 1 restores the full limit.
# (b) A primary and its streaming standby, share 0.5 each, hammered at once
#     by pgbench on one token of limit 60: every 200 is counted client-side
#     (pgbench runs \shell for each accepted request; the standby cannot
#     write), and the two together admit at most 60, each exactly 30.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test qw(pixl_node pixl_standby err);
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time);

my $primary = pixl_node('primary', init => { allows_streaming => 1 }, intervals => 0,
	extension => 'postgres', conf => q{
pixltoken.rate_limit_share = 0.5
max_connections = 40
});

$primary->safe_psql('postgres', q{
SELECT pixl_set_store_plan('tap-store', 'enterprise');
-- n verifications in a row through the HTTP form
CREATE FUNCTION tap_burst(tok text, n int, store text DEFAULT NULL)
	RETURNS TABLE (i int, status int, rate_limit int, remaining int,
				   retry_after_ms int, policy text, ratelimit text, retry text)
	LANGUAGE plpgsql AS $$
BEGIN
	FOR k IN 1 .. n LOOP
		SELECT k, v.status, v.rate_limit, v.remaining, v.retry_after_ms,
			   v.ratelimit_policy, v.ratelimit, v.retry_after
		  INTO i, status, rate_limit, remaining, retry_after_ms, policy, ratelimit, retry
		  FROM pixl_verify_token_http(tok, '*', store_id => store) v;
		RETURN NEXT;
	END LOOP;
END
$$;
});

# the secret of a new token of tap-store (its plan set above)
sub new_token
{
	my ($node, $name, $limit) = @_;
	my (undef, $secret) = PixlToken::Test::new_token($node, 'postgres', 'tap-store', plan => undef,
		name => $name, scopes => ['orders:read'], rate_limit => $limit);
	return $secret;
}

# ---------------------------------------------------------------- (a)
is($primary->safe_psql('postgres', 'SHOW pixltoken.rate_limit_share'),
	'0.5', 'the share is set');

my $tok10 = new_token($primary, 'ten', 10);
my $burst = $primary->safe_psql('postgres', qq{
SELECT string_agg(concat_ws(' ', i, status, rate_limit, remaining, policy, ratelimit), E'\\n' ORDER BY i)
  FROM tap_burst('$tok10', 5)});
# t: the first request leaves the window at the end of the 61st second
# after its own (61, or 60 once the burst has crossed into the next second)
my $burst_re = join("\n",
	map { my $r = 5 - $_; "$_ 200 5 $r \"default\";q=5;w=60 \"default\";r=$r;t=6[01]" } 1 .. 5);
like( $burst, qr/\A$burst_re\z/,
	'share 0.5 of limit 10: five admitted, rate_limit and the headers say 5')
  or diag($burst);
my $rejected = $primary->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE status = 429) || ' ' ||
	   count(*) FILTER (WHERE rate_limit = 5 AND remaining = 0
						  AND retry_after_ms BETWEEN 1 AND 61000
						  AND retry = ceil(retry_after_ms / 1000.0)::int::text
						  AND policy = '"default";q=5;w=60')
  FROM tap_burst('$tok10', 7)});
is($rejected, '7 7', 'the next seven are 429, with the quota, no remaining and a retry time');
like( $primary->safe_psql('postgres', qq{
SELECT problem->>'detail' FROM pixl_verify_token_http('$tok10', '*')}),
	qr/^This node's share of the API token's rate limit, 5 requests per 60 seconds, is exhausted; retry in \d+ seconds, or on another node\.\z/,
	'the 429 detail names the node\'s share');

my $tok3 = new_token($primary, 'three', 3);
is( $primary->safe_psql('postgres', qq{
SELECT string_agg(status || ' ' || rate_limit, ',' ORDER BY i) FROM tap_burst('$tok3', 3)}),
	'200 1,429 1,429 1', 'share 0.5 of limit 3: floor(1.5) = 1');

my $tok1 = new_token($primary, 'one', 1);
is( $primary->safe_psql('postgres', qq{
SELECT concat_ws(' ', status, rate_limit, remaining, retry_after_ms, policy, ratelimit, retry)
  FROM tap_burst('$tok1', 1)}),
	'429 0 0 60000 "default";q=0;w=60 "default";r=0;t=60 60',
	'share 0.5 of limit 1: quota 0, never admitted here, a whole window to wait');
is( $primary->safe_psql('postgres', qq{
SELECT problem->>'detail' FROM pixl_verify_token_http('$tok1', '*')}),
	"This node admits none of the API token's requests: its share of the token's rate limit is below one request per 60 seconds; retry on another node.",
	'quota 0: the problem detail sends the client to another node');
is( $primary->safe_psql('postgres', qq{
SELECT concat_ws(' ', status, rate_limit, remaining, retry_after_ms)
  FROM tap_burst('$tok1', 1, 'another-store')}),
	'403 0 0', 'quota 0: a wrong store stays a 403');

# bad values are refused, a session cannot change it
like(err($primary, 'postgres', 'ALTER SYSTEM SET pixltoken.rate_limit_share = 0'),
	qr/invalid value for parameter "pixltoken.rate_limit_share".*greater than 0/s,
	'share 0 refused');
like(err($primary, 'postgres', 'ALTER SYSTEM SET pixltoken.rate_limit_share = 1.5'),
	qr/1\.5 is outside the valid range/, 'share 1.5 refused');
like(err($primary, 'postgres', 'SET pixltoken.rate_limit_share = 1'),
	qr/cannot be changed now/, 'a session cannot SET the share');

sub reload_share
{
	my ($node, $share) = @_;
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET pixltoken.rate_limit_share = $share; SELECT pg_reload_conf()");
	$node->poll_query_until('postgres',
		"SELECT current_setting('pixltoken.rate_limit_share') = '$share'")
	  or die "share $share not reloaded";
	return;
}

# 0.29 x 100 is 28.999999999999996 in doubles: the quota is still 29
reload_share($primary, '0.29');
my $tok100 = new_token($primary, 'hundred', 100);
is( $primary->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE status = 200) || ' ' || min(rate_limit) || ' ' || max(rate_limit)
  FROM tap_burst('$tok100', 40)}),
	'29 29 29', 'share 0.29 of limit 100: 29 admitted');

# share 1: the token's own limit (the 5 used on tok10 count against it)
reload_share($primary, '1');
is( $primary->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE status = 200) || ' ' || min(rate_limit) || ' ' || max(remaining)
  FROM tap_burst('$tok10', 8)}),
	'5 10 4', 'share 1: the full limit of 10, five already used');

reload_share($primary, '0.5');

# ---------------------------------------------------------------- (b)
my $standby = pixl_standby($primary, 'standby', backup => 'base',
	conf => "pixltoken.rate_limit_share = 0.5\n");

my $limit = 60;
my $tok = new_token($primary, 'across', $limit);
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't',
	'the standby is a standby');

# pgbench appends a line per accepted request to the node's file
my $dir = PostgreSQL::Test::Utils::tempdir;
my %script;
foreach my $name ('primary', 'standby')
{
	$script{$name} = "$dir/$name.sql";
	open my $fh, '>', $script{$name} or die $!;
	print $fh qq{SELECT status AS st FROM pixl_verify_token(':tok') \\gset
\\if :st = 200
\\shell echo ok >> $dir/$name.ok
\\endif
};
	close $fh;
	open $fh, '>', "$dir/$name.ok" or die $!;
	close $fh;
}

my ($clients, $per_client) = (4, 500);
my $total = $clients * $per_client;
my (%out, %err, %h);
my $t0 = time();
foreach my $node ($primary, $standby)
{
	my $name = $node->name;
	$h{$name} = IPC::Run::start(
		[
			'pgbench', '--no-vacuum', "--client=$clients", '--jobs=2',
			"--transactions=$per_client", "-D", "tok=$tok",
			'-f', $script{$name},
			'-h', $node->host, '-p', $node->port, 'postgres'
		],
		'>', \$out{$name}, '2>', \$err{$name});
}
foreach my $name ('primary', 'standby')
{
	$h{$name}->finish;
	like($out{$name}, qr{processed: $total/$total},
		"pgbench against the $name ran every transaction")
	  or diag($err{$name});
}
my $elapsed = time() - $t0;

my %ok;
foreach my $name ('primary', 'standby')
{
	open my $fh, '<', "$dir/$name.ok" or die $!;
	my @lines = <$fh>;
	close $fh;
	$ok{$name} = scalar @lines;
}
note("accepted: primary $ok{primary}, standby $ok{standby}, in "
	  . sprintf('%.1f', $elapsed) . ' s');
ok($ok{primary} + $ok{standby} <= $limit,
	"together at most the limit $limit: " . ($ok{primary} + $ok{standby}));
# within one window each node admits exactly its quota
ok($elapsed < 59, 'both runs fit in one window');
is($ok{primary}, $limit / 2, 'the primary admitted its half');
is($ok{standby}, $limit / 2, 'the standby admitted its half');

# both nodes report their quota, not the token's limit
foreach my $node ($primary, $standby)
{
	is( $node->safe_psql('postgres',
			"SELECT concat_ws(' ', status, rate_limit, remaining) FROM pixl_verify_token('$tok')"),
		'429 30 0', $node->name . ' answers with its quota of 30');
}

$standby->stop;
$primary->stop;
done_testing();
