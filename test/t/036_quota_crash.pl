# Copyright: the pixltoken authors.
#
# The period-allowance counters (src/verify/quota.c) across restarts, as
# README and docs/operations.md say:
#  (a) kill -9 of a backend: the postmaster's crash restart keeps every
#      counter (its mapping outlives the reset), so no call is admitted
#      twice and the rest of the allowance is still there;
#  (b) a later seed after that crash restart only raises a counter;
#  (c) a clean restart, and kill -9 of the postmaster, start the counters
#      empty: the first seed since the start adds (calls admitted before
#      it are not in the rollups), later ones only raise;
#  (f) with pixltoken.max_quota_counters at its minimum (100), a store
#      whose counter finds no room is refused (429 quota_exceeded, retry in
#      1 s) and counted, and a store without an allowance is not affected.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# No usage worker serves the database: the counters alone, seeded by hand
# here (the worker seeds them from the rollups at start).
my $node = pixl_node('quotacrash', extension => 'postgres', databases => '', conf => q{
restart_after_crash = on
pixltoken.max_quota_counters = 100
});

$node->safe_psql('postgres', q{
INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens, period_quota)
VALUES ('tap_quota', 60, 1000, 100, 10);
SELECT pixl_set_store_plan('crash-store', 'tap_quota');
});
my ($id, $secret) = new_token($node, 'postgres', 'crash-store', plan => undef,
	scopes => ['orders:read'], rate_limit => 1000);

# n verifications in one session: "status:count ..." in status order
sub verify_n
{
	my ($n) = @_;
	return $node->safe_psql('postgres', qq{
SELECT string_agg(status || ':' || c, ' ' ORDER BY status) FROM (
	SELECT v.status, count(*) AS c
	  FROM generate_series(1, $n) g,
		   LATERAL pixl_verify_request('$secret', 'orders:read', method => 'GET' || left(g::text, 0)) v
	 GROUP BY v.status) s});
}

sub used
{
	return $node->safe_psql('postgres',
		q{SELECT coalesce((SELECT used FROM pixl_quota_used('crash-store')), 0)});
}

sub seed
{
	my ($n) = @_;
	return $node->safe_psql('postgres',
		"SELECT pixl_quota_seed('crash-store', pixl_quota_period_start(now()), $n)");
}

# kill -9 of a backend; returns once the server accepts connections again
sub crash_backend
{
	my $bg = $node->background_psql('postgres');
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	my $offset = -s $node->logfile;
	kill 'KILL', $pid;
	$node->wait_for_log(qr/all server processes terminated; reinitializing/, $offset);
	$bg->{run}->kill_kill;
	for (1 .. 600)
	{
		my ($ret) = $node->psql('postgres', 'SELECT 1');
		return 1 if $ret == 0;
		usleep(50_000);
	}
	return 0;
}

# (a) a backend crash keeps the counter
is(verify_n(6), '200:6', '6 of the allowance of 10 admitted');
is(used(), '6', 'the counter says 6');
ok(crash_backend(), '(a) the server is back after kill -9 of a backend');
ok($node->log_contains(qr/kept \d+ allowance counters across the crash restart/),
	'(a) the postmaster kept the counters');
is(used(), '6', '(a) the counter is 6 after the crash restart');
is(verify_n(6), '200:4 429:2', '(a) the 4 left are admitted, then 429');

# (b) the worker's seed after the crash restart only raises
is(seed(7), '10', '(b) a seed below the counter changes nothing');

# (c) a clean restart starts empty; the first seed adds
$node->restart;
is(used(), '0', '(c) a clean restart starts the counters empty');
is(verify_n(2), '200:2', '(c) calls before the seed are counted');
is(seed(7), '9', '(c) the first seed since the start adds to them');
is(seed(8), '9', '(c) a second seed only raises');
is(verify_n(3), '200:1 429:2', '(c) one left, then 429');

# (f) a full counter table fails closed for stores with an allowance
$node->safe_psql('postgres', q{
CREATE TABLE full_secrets (n int, secret text);
INSERT INTO full_secrets
SELECT g, t.token
  FROM generate_series(1, 100) g,
	   LATERAL (SELECT pixl_set_store_plan('full-' || g, 'tap_quota')) p,
	   LATERAL pixl_create_token('full-' || g, 'F', ARRAY['orders:read'], rate_limit => 1000) t;
});
is($node->safe_psql('postgres', q{
SELECT string_agg(status || ':' || c, ' ' ORDER BY status) FROM (
	SELECT v.status, count(*) AS c
	  FROM full_secrets s, LATERAL pixl_verify_request(s.secret, 'orders:read') v
	 GROUP BY v.status) x}), '200:99 429:1', '(f) 99 new stores get a counter (the first store holds one), the last is refused');
is($node->safe_psql('postgres', q{
SELECT v.reason || ' ' || v.retry_after_ms
  FROM full_secrets s, LATERAL pixl_verify_request(s.secret, 'orders:read') v
 WHERE s.n = 100}), 'quota_exceeded 1000', '(f) as quota_exceeded, retry in 1 s');
is($node->safe_psql('postgres', 'SELECT counters || \' \' || table_full_rejections FROM pixl_quota_stats()'),
	'100 2', '(f) the table holds 100 counters and counted both refusals');
my (undef, $free) = new_token($node, 'postgres', 'full-no-allowance', scopes => ['orders:read']);
is($node->safe_psql('postgres', "SELECT status FROM pixl_verify_request('$free', 'orders:read')"),
	'200', '(f) a store without an allowance is not affected');

# kill -9 of the postmaster: a new mapping, empty again
$node->kill9;
my $started = 0;
for (1 .. 100)
{
	last if ($started = $node->start(fail_ok => 1));
	usleep(100_000);
	$node->stop('fast', fail_ok => 1);
}
ok($started, '(c) restarted after kill -9 of the postmaster');
is(used(), '0', '(c) after a crash of the server the counters start empty');
is(seed(10), '10', '(c) until seeded from the rollups');
# the minute windows start full after a server crash (rate_limit.c): the
# allowance alone decides nothing here, so only the counter is checked

$node->stop;
done_testing();
