# Copyright: the pixltoken authors.
#
# The usage worker seeds the period allowance counters (src/verify/quota.c)
# from the rollups when it starts serving a database, before its first
# fold (src/writer/usage_worker.c, "Allowances"); weighted calls are folded
# as cost and charged exactly.  A store on a plan with an allowance of 1000
# has token A (the store's allowance only) and token B (an allowance of 30
# of its own):
#  (1) weighted calls: the rollups' cost and charged are the costs, and
#      charged is the store's counter;
#  (2) a clean restart: the new counters are seeded with the rollups'
#      charged, the store's and B's own (B has exactly its rest left); a
#      worker restarted without a crash restart does not seed again (a
#      store first charged after the seed keeps its count, not twice it);
#  (3) a clean restart with counts not folded yet: they come back from the
#      clean shutdown's file and are in the seed, once (not again when
#      they are folded);
#  (4) kill -9 of a backend: the counters outlive the crash restart and the
#      worker's seed after it changes nothing (the unfolded counts are lost
#      from the rollups, not from the counters);
#  (5) an immediate stop: the counters start from the rollups; what was
#      charged since the last fold (here 20, from (4) and (5)) is what such
#      a crash over-admits, as README's loss table says.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = pixl_node('quotaseed', extension => 'postgres',
	conf => "restart_after_crash = on\n");

$node->safe_psql('postgres', q{
INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens, period_quota)
VALUES ('seed_plan', 60, 1000, 100, 1000);
SELECT pixl_set_store_plan('seed-store', 'seed_plan');
});
my ($tok_a, $sec_a) = new_token($node, 'postgres', 'seed-store', plan => undef,
	name => 'A', scopes => ['orders:read'], rate_limit => 1000);
my ($tok_b, $sec_b) = new_token($node, 'postgres', 'seed-store', plan => undef,
	name => 'B', scopes => ['orders:read'], rate_limit => 1000);
$node->safe_psql('postgres', "SELECT pixl_set_token_quota('$tok_b', 30)");
wait_serving($node, 'postgres');

# n verifications of cost c in one session: "status:count ..."
sub verify_n
{
	my ($secret, $n, $cost) = @_;
	return $node->safe_psql('postgres', qq{
SELECT string_agg(status || ':' || c, ' ' ORDER BY status) FROM (
	SELECT v.status, count(*) AS c
	  FROM generate_series(1, $n) g,
		   LATERAL pixl_verify_request('$secret', 'orders:read', NULL, 'GET' || left(g::text, 0),
									   '/orders', NULL, $cost) v
	 GROUP BY v.status) s});
}

# the store's counter
sub used
{
	my ($store) = @_;
	$store //= 'seed-store';
	return $node->safe_psql('postgres',
		qq{SELECT coalesce((SELECT used FROM pixl_quota_used('$store')), 0)});
}

# B's own counter: a seed of 0 only reads it once the worker has seeded it
sub used_b
{
	return $node->safe_psql('postgres',
		"SELECT pixl_quota_seed('seed-store', pixl_quota_period_start(now()), 0, '$tok_b')");
}

# "requests cost charged" of the store's tokens in the rollups
my $rollups_sql = q{
SELECT concat_ws(' ', coalesce(sum(r.requests), 0), coalesce(sum(r.cost), 0), coalesce(sum(r.charged), 0))
  FROM pixl_usage_rollups r JOIN pixl_token_registry g USING (token_id)
 WHERE g.store_id = 'seed-store'};

# waits for the worker's seed of n counters logged after $offset
sub seeded_after
{
	my ($offset, $n) = @_;
	return $node->wait_for_log(
		qr/seeded $n allowance counters of database "postgres" from the rollups/, $offset);
}

# (1) weighted calls: 10 of cost 3 by A, 5 of cost 2 by B
is(verify_n($sec_a, 10, 3), '200:10', '(1) A: 10 calls of cost 3');
is(verify_n($sec_b, 5, 2), '200:5', '(1) B: 5 calls of cost 2');
is(used(), '40', '(1) the store\'s counter is 40');
wait_is($node, 'postgres', $rollups_sql, '15 40 40',
	'(1) folded: 15 requests, cost 40, charged 40');
is($node->safe_psql('postgres',
		"SELECT concat_ws(' ', sum(requests), sum(cost), sum(charged)) FROM pixl_usage_hourly WHERE token_id = '$tok_b'"),
	'5 10 10', '(1) B\'s hourly rows: cost and charged 10');

# (2) a clean restart: seeded from the rollups
my $offset = -s $node->logfile;
$node->restart;
ok(seeded_after($offset, 2), '(2) the worker seeded the store\'s and B\'s counters after the restart');
is(used(), '40', '(2) the store\'s counter is 40 again');
is(used_b(), '10', '(2) B\'s own counter is 10 again');
is(verify_n($sec_b, 11, 2), '200:10 429:1', '(2) B has exactly 20 of its 30 left');
is(used(), '60', '(2) the store\'s counter is 60');
wait_is($node, 'postgres', $rollups_sql, '26 62 60',
	'(2) folded: the refused call of cost 2 is in cost (62), not in charged (60)');

# another store, first charged after the seed; then the worker is
# terminated (no crash restart) and comes back
$node->safe_psql('postgres', "SELECT pixl_set_store_plan('seed-c', 'seed_plan')");
my ($tok_c, $sec_c) = new_token($node, 'postgres', 'seed-c', plan => undef,
	name => 'C', scopes => ['orders:read'], rate_limit => 1000);
is(verify_n($sec_c, 3, 4), '200:3', '(2) C: 3 calls of cost 4');
my $c_sql = "SELECT coalesce(sum(charged), 0) FROM pixl_usage_hourly WHERE token_id = '$tok_c'";
wait_is($node, 'postgres', $c_sql, '12', '(2) C\'s 12 are folded');
my $worker_sql = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pixltoken usage worker'};
my $worker = $node->safe_psql('postgres', $worker_sql);
$offset = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($worker)");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pixltoken usage worker' AND pid <> $worker"),
	'(2) the worker is back');
is(verify_n($sec_c, 1, 1), '200:1', '(2) C: one more call of cost 1');
wait_is($node, 'postgres', $c_sql, '13', '(2) the new worker folds it');
is(used('seed-c'), '13', '(2) C\'s counter is 13: the new worker did not add the rollups again');
ok(!$node->log_contains(qr/seeded \d+ allowance counters/, $offset), '(2) and did not seed');

# (3) a clean restart with counts not folded: no fold for an hour (the
# worker folds at every new hour: this test does not run across one)
$node->safe_psql('postgres',
	"ALTER SYSTEM SET pixltoken.fold_interval = '1h'; SELECT pg_reload_conf()");
wait_is($node, 'postgres', q{SELECT setting FROM pg_settings WHERE name = 'pixltoken.fold_interval'},
	'3600000', '(3) folds once an hour');
sleep(1);	# the worker's loop has seen the new setting
is(verify_n($sec_a, 4, 5), '200:4', '(3) A: 4 calls of cost 5');
is(used(), '80', '(3) the store\'s counter is 80');
sleep(1);
is($node->safe_psql('postgres', $rollups_sql), '26 62 60', '(3) not folded');
$offset = -s $node->logfile;
$node->restart;
ok($node->log_contains(qr/saved \d+ usage counts not yet in the rollups/, $offset),
	'(3) the clean shutdown saved the counts');
ok(seeded_after($offset, 3), '(3) seeded after the restart (and C)');
is(used(), '80', '(3) the seed has the saved counts: 80');
wait_is($node, 'postgres', $rollups_sql, '30 82 80',
	'(3) the saved counts are folded after the seed: cost 82, charged 80');
is(used(), '80', '(3) and not counted twice');
is(used_b(), '30', '(3) B\'s own counter is 30');

# (4) kill -9 of a backend with counts not folded
is(verify_n($sec_a, 2, 7), '200:2', '(4) A: 2 calls of cost 7');
is(used(), '94', '(4) the store\'s counter is 94');
{
	my $bg = $node->background_psql('postgres');
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	$offset = -s $node->logfile;
	kill 'KILL', $pid;
	$node->wait_for_log(qr/all server processes terminated; reinitializing/, $offset);
	$bg->{run}->kill_kill;
}
ok(seeded_after($offset, 3), '(4) the worker seeded again after the crash restart');
is(used(), '94', '(4) the counter kept the 14 the rollups never got: 94');
is($node->safe_psql('postgres', $rollups_sql), '30 82 80',
	'(4) the crash lost the unfolded counts from the rollups (README, loss table)');
is(used_b(), '30', '(4) B\'s own counter is 30');

# (5) an immediate stop: the counters start from the rollups
is(verify_n($sec_a, 3, 2), '200:3', '(5) A: 3 calls of cost 2');
is(used(), '100', '(5) the store\'s counter is 100');
$offset = -s $node->logfile;
$node->stop('immediate');
$node->start;
ok(seeded_after($offset, 3), '(5) seeded after the immediate stop');
is(used(), '80', '(5) from the rollups: 80, the 20 charged since the last fold are admitted again');
is(used_b(), '30', '(5) B\'s own counter is 30 (its calls were all folded)');
is(verify_n($sec_b, 1, 1), '429:1', '(5) B is still refused');

$node->stop;
done_testing();
