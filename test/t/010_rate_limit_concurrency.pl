# The shared-memory rate limit under concurrency: pgbench with 8 and then 32
# clients hammering one token each get exactly `limit` requests accepted.
# Meanwhile a token with limit 2 waits out its window: the third request is
# admitted no earlier than 60 s after the first (the hard limit) and no more
# than 1 s later than an exact sliding log would admit it.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pixl_node('rate_limit', extension => 'postgres', conf => "max_connections = 50\n");

$node->safe_psql('postgres', q{
SELECT pixl_set_store_plan('tap-store', 'enterprise');
CREATE UNLOGGED TABLE tap_results (run int, status int, remaining int, retry_after_ms int);
-- One verification and the clock just before and just after it.
CREATE FUNCTION tap_verify_timed(tok text, OUT status int, OUT retry_after_ms int,
								 OUT t_before float8, OUT t_after float8)
	LANGUAGE plpgsql AS $$
BEGIN
	t_before := extract(epoch FROM clock_timestamp());
	SELECT v.status, v.retry_after_ms INTO status, retry_after_ms
	  FROM pixl_verify_token(tok) v;
	t_after := extract(epoch FROM clock_timestamp());
END
$$;
-- Polls every 20 ms (bounded) until a request is admitted.
CREATE FUNCTION tap_wait_admitted(tok text, OUT t_before float8, OUT t_after float8)
	LANGUAGE plpgsql AS $$
DECLARE
	r			record;
	deadline	timestamptz := clock_timestamp() + interval '90 s';
BEGIN
	LOOP
		r := tap_verify_timed(tok);
		EXIT WHEN r.status = 200 OR clock_timestamp() > deadline;
		PERFORM pg_sleep(0.02);
	END LOOP;
	t_before := r.t_before;
	t_after := CASE WHEN r.status = 200 THEN r.t_after END;
END
$$;
});

# a token of tap-store (plan set above) with the given limit
sub hammer_token
{
	my ($name, $limit) = @_;
	return new_token($node, 'postgres', 'tap-store', plan => undef, name => $name,
		scopes => ['orders:read'], rate_limit => $limit);
}

# The slow window first, so that its minute passes while pgbench runs.
my (undef, $wtok) = hammer_token('window', 2);
my ($s1, undef, $t1_before, $t1_after) = split /\|/,
  $node->safe_psql('postgres', "SELECT * FROM tap_verify_timed('$wtok')");
my ($s2) = split /\|/,
  $node->safe_psql('postgres', "SELECT * FROM tap_verify_timed('$wtok')");
my ($s3, $retry, $t3_before) = split /\|/,
  $node->safe_psql('postgres', "SELECT * FROM tap_verify_timed('$wtok')");
is("$s1 $s2 $s3", '200 200 429', 'limit 2: two accepted, the third rejected');
ok($retry >= 1 && $retry <= 61000, "retry_after_ms $retry is within the minute");

# pgbench substitutes :tok even inside the quoted literal
my $script = q{
INSERT INTO tap_results
SELECT :run, v.status, v.remaining, v.retry_after_ms FROM pixl_verify_token(':tok') v;
};

foreach my $clients (8, 32)
{
	my $limit = 500;
	my $per_client = int(2 * $limit / $clients) + 10;
	my $total = $clients * $per_client;
	my (undef, $tok) = hammer_token("hammer $clients", $limit);

	$node->pgbench(
		"--no-vacuum --client=$clients --jobs=2 --transactions=$per_client "
		  . "-D tok=$tok -D run=$clients",
		0,
		[qr{processed: $total/$total}],
		[],
		"pgbench with $clients clients",
		{ "010_hammer_$clients" => $script });

	my $res = $node->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE status = 200) || ' ' ||
	   count(*) FILTER (WHERE status = 429) || ' ' ||
	   count(*) FILTER (WHERE status NOT IN (200, 429)) || ' ' ||
	   count(*) FILTER (WHERE remaining < 0 OR remaining >= $limit) || ' ' ||
	   count(*) FILTER (WHERE status = 429 AND NOT retry_after_ms BETWEEN 1 AND 61000) || ' ' ||
	   count(*) FILTER (WHERE status = 200 AND retry_after_ms IS NOT NULL)
  FROM tap_results WHERE run = $clients});
	is($res, join(' ', $limit, $total - $limit, 0, 0, 0, 0),
		"$clients clients: exactly $limit of $total accepted, the rest 429 with a retry time");

	# each remaining value of an accepted request is handed out once
	my $dups = $node->safe_psql('postgres', qq{
SELECT count(*) FROM (SELECT remaining FROM tap_results
					   WHERE run = $clients AND status = 200
					   GROUP BY remaining HAVING count(*) > 1) d});
	is($dups, '0', "$clients clients: remaining counts down without duplicates");
}

# Back to the slow window: re-admitted within 1 s of the exact log's time.
my ($ta_before, $ta_after) = split /\|/,
  $node->safe_psql('postgres', "SELECT * FROM tap_wait_admitted('$wtok')");
ok($ta_after ne '', 'limit 2: admitted again after the window');
my $early = $ta_after - ($t1_before + 60);
my $late = $ta_before - ($t1_after + 60);
note(sprintf('admitted %.3f s after the first request + 60 s', $ta_before - $t1_after - 60));
ok($early >= 0, 'never admitted before 60 s after the first request');
ok($late <= 1.25, 'admitted at most 1 s (plus the 20 ms poll and slack) after the exact log');
# the 429's retry_after_ms predicted that moment
my $predicted = $t3_before + $retry / 1000.0;
ok(abs($predicted - $ta_before) <= 1.25,
	sprintf('retry_after_ms predicted the admission (off by %.3f s)', $predicted - $ta_before));

is($node->safe_psql('postgres',
	'SELECT rate_limit_full_rejections FROM pixl_stats() WHERE datname IS NULL'),
	'0', 'no request failed closed for a full table');

$node->stop;
done_testing();
