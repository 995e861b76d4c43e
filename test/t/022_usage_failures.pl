# Copyright: the pixltoken authors.
#
# The usage pipeline cannot be stalled or poisoned, and rejected requests
# are nearly free:
#  (a) advisory locks on 1.0's keys, held by any role, stall nothing;
#  (b) a response time that cannot be summed is refused (PX060);
#  (c) a record that fails in the worker goes to the dead-letter table with
#      its error, visible in pixl_stats(), and the rest flows on;
#  (d) a worker stuck on a lock ends on SIGTERM (die), and a lock wait ends
#      at pixltoken.worker_lock_timeout, shown as last_error;
#  (e) 429s are counted exactly, their raw rows sampled; endpoints per token
#      and hour are capped into "(other)";
#  (f) kill -9 of an unrelated backend loses exactly the usage not yet
#      written, and the pipeline works on;
#  (g) maintenance: a retention below pixltoken.usage_retention is refused,
#      a schema name that needs quotes works;
#  (h) two backfilled events of one microsecond are two events;
#  (i) pixltoken.database values that cannot be served fail the start.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = pixl_node('failures', databases => 'postgres,quoted', extension => 'postgres', conf => q{
# these tests follow every call through the raw-row pipeline
pixltoken.request_log = 'all'
max_worker_processes = 16
restart_after_crash = on
});
$node->safe_psql('postgres', 'CREATE ROLE nobody LOGIN');
wait_serving($node, 'postgres');

sub verify
{
	my ($secret, $n, $endpoint) = @_;
	$endpoint //= '/x';
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM generate_series(1, $n) g
		   CROSS JOIN LATERAL pixl_verify_request(CASE WHEN g > 0 THEN '$secret' END, 'products:read', NULL, 'GET', '$endpoint') v");
}

sub pstat
{
	my ($col) = @_;
	return $node->safe_psql('postgres',
		"SELECT $col FROM pixl_stats() WHERE datname = 'postgres'");
}

sub rollup
{
	my ($tok) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(sum(requests), 0) FROM pixl_usage_hourly WHERE token_id = '$tok'");
}

# (a) any role holding 1.0's advisory keys stalls nothing
my ($tok_a, $secret_a) = new_token($node, 'postgres', 'store_a', rate_limit => 1000);
my $locker = $node->background_psql('postgres', extra_params => [ '-U', 'nobody' ]);
$locker->query_safe(
	"SELECT pg_advisory_lock(hashtext('pixltoken daily rollup')), pg_advisory_lock(hashtext('pixltoken maintenance'))");
verify($secret_a, 10);
ok($node->poll_query_until('postgres', "SELECT " . "(SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok_a') = 10"),
	'usage flows while a role holds the advisory keys');
$node->safe_psql('postgres', "DELETE FROM pixl_usage_daily_state");
is( $node->safe_psql('postgres',
		'SELECT partitions_created IS NOT NULL FROM pixl_run_maintenance()'),
	't', 'maintenance runs too');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pixl_usage_daily_state'),
	'1', 'and rolls the days up');
like(err($node, 'postgres',
	'BEGIN; LOCK TABLE pixl_usage_daily_state IN ACCESS SHARE MODE; COMMIT', as => 'nobody'),
	qr/permission denied/, 'the table maintenance locks cannot be locked by that role');
$locker->quit;

# (b) a response time that cannot be summed is refused
my $rid = $node->safe_psql('postgres',
	"SELECT request_id FROM pixl_verify_request('$secret_a', 'products:read', NULL, 'GET', '/p')");
like(err($node, 'postgres', "SELECT pixl_log_response('$rid', 200, 1e308)"),
	qr/response time 1e\+308 ms is too large/, 'pixl_log_response refuses 1e308 ms');
like(err($node, 'postgres', "SELECT pixl_log_response('$rid', 200, 1e308); SELECT 1 FROM pg_stat_activity"),
	qr/PX060/, 'with SQLSTATE PX060');

# (c) a poison record: its rollup row is made to overflow on the next count
# (a response time can no longer do that); the count goes to the
# dead-letter table with its error, and the rest of its batch flows on
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM pixl_usage_hourly WHERE token_id = '$tok_a' AND endpoint = '/p'"),
	'the rollup of /p is written');
$node->safe_psql('postgres',
	"UPDATE pixl_usage_hourly SET requests = 9223372036854775807 WHERE token_id = '$tok_a' AND endpoint = '/p'");
my $dead_before = pstat('dead_letters');
$node->safe_psql('postgres',
	"SELECT count(*) FROM (SELECT pixl_verify_request('$secret_a', 'products:read', NULL, 'GET', e) FROM unnest(ARRAY['/p', '/after', '/after', '/after', '/after', '/after']) e) x");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pixl_usage_dead_letters WHERE kind = 'count' AND token_id = '$tok_a'"),
	'the poison count is in the dead-letter table');
like( $node->safe_psql('postgres', "SELECT error FROM pixl_usage_dead_letters WHERE token_id = '$tok_a'"),
	qr/out of range/, 'with its error');
is( $node->safe_psql('postgres', "SELECT detail->>'endpoint' || ' ' || (detail->>'requests') FROM pixl_usage_dead_letters WHERE token_id = '$tok_a'"),
	'/p 1', 'and what it held');
is(pstat('dead_letters'), $dead_before + 1, 'counted in pixl_stats().dead_letters');
like(pstat('last_error'), qr/out of range/, 'and shown as last_error');
ok( $node->poll_query_until('postgres',
		"SELECT sum(requests) = 5 FROM pixl_usage_hourly WHERE token_id = '$tok_a' AND endpoint = '/after'"),
	'the rest of the batch flowed on');
verify($secret_a, 3, '/later');
ok( $node->poll_query_until('postgres',
		"SELECT sum(requests) = 3 FROM pixl_usage_hourly WHERE token_id = '$tok_a' AND endpoint = '/later'"),
	'and so do later batches');

# (d) the worker waits for a lock at most pixltoken.worker_lock_timeout
my $holder = $node->background_psql('postgres');
$holder->query_safe("BEGIN; SELECT 1 FROM pixl_token_activity WHERE token_id = '$tok_a' FOR UPDATE");
verify($secret_a, 2, '/locked');
ok( $node->poll_query_until('postgres',
		"SELECT last_error LIKE '%lock timeout%' FROM pixl_stats() WHERE datname = 'postgres'"),
	'a held row lock shows as a lock timeout in last_error');
$holder->query_safe('COMMIT');
ok( $node->poll_query_until('postgres',
		"SELECT sum(requests) = 2 FROM pixl_usage_hourly WHERE token_id = '$tok_a' AND endpoint = '/locked'"),
	'the batch is written once the lock is gone');

# ... and a worker stuck without a timeout ends on SIGTERM
$node->safe_psql('postgres',
	"ALTER SYSTEM SET pixltoken.worker_lock_timeout = '1h'; SELECT pg_reload_conf()");
$holder->query_safe("BEGIN; SELECT 1 FROM pixl_token_activity WHERE token_id = '$tok_a' FOR UPDATE");
verify($secret_a, 4, '/stuck');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pixltoken usage worker'"
		  . " AND datname = 'postgres' AND wait_event_type = 'Lock'"),
	'the worker waits on the lock');
my $wpid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pixltoken usage worker' AND datname = 'postgres'");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($wpid)");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $wpid"),
	'SIGTERM ends the stuck worker');
$node->safe_psql('postgres',
	"ALTER SYSTEM RESET pixltoken.worker_lock_timeout; SELECT pg_reload_conf()");
$holder->query_safe('COMMIT');
ok( $node->poll_query_until('postgres',
		"SELECT sum(requests) = 4 FROM pixl_usage_hourly WHERE token_id = '$tok_a' AND endpoint = '/stuck'"),
	'its successor writes the batch, once');
$holder->quit;

# (e) 429s: counted exactly, raw rows sampled; endpoint cap
my ($tok_e, $secret_e) = new_token($node, 'postgres', 'store_e', rate_limit => 1);
verify($secret_e, 300);
ok($node->poll_query_until('postgres', "SELECT " . "(SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok_e') = 300"),
	'300 verifications (1 accepted, 299 rate-limited) are all counted');
is( $node->safe_psql('postgres',
		"SELECT sum(errors) FROM pixl_usage_hourly WHERE token_id = '$tok_e'"),
	'299', 'the 299 429s as errors');
is( $node->safe_psql('postgres',
		"SELECT sum(rate_limited) FROM pixl_usage_hourly WHERE token_id = '$tok_e'"),
	'299', 'and as rate_limited, exactly, though most have no raw row');
my $raw429 = $node->safe_psql('postgres',
	"SELECT count(*) FROM pixl_usage_events WHERE token_id = '$tok_e' AND status = 429");
cmp_ok($raw429, '>=', 1, "429s have sample raw rows ($raw429)");
cmp_ok($raw429, '<=', 1 + $node->safe_psql('postgres',
		"SELECT ceil(extract(epoch FROM max(at) - min(at)))::int FROM pixl_usage_events WHERE token_id = '$tok_e'"),
	'at most one per second');
is(pstat('events_sampled_out'), 299 - $raw429, 'the others are counted as sampled out');
is( $node->safe_psql('postgres',
		"SELECT count(*) > 0 FROM pixl_recent_calls('$tok_e', status => 429)"),
	't', 'pixl_recent_calls still shows 429 examples');

$node->safe_psql('postgres',
	"ALTER SYSTEM SET pixltoken.max_endpoints_per_hour = 3; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', "SELECT current_setting('pixltoken.max_endpoints_per_hour') = '3'");
my ($tok_c, $secret_c) = new_token($node, 'postgres', 'store_cap', rate_limit => 1000);
for my $i (1 .. 6)
{
	verify($secret_c, $i, "/e$i");
}
ok($node->poll_query_until('postgres', "SELECT " . "(SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok_c') = 21"),
	'21 verifications over 6 endpoints are all counted');
# the cap is kept in shared memory as counts arrive: the first three
# endpoints of the hour keep their names, whenever the worker folds
is( $node->safe_psql('postgres',
		"SELECT string_agg(endpoint || '=' || requests, ',' ORDER BY endpoint) FROM pixl_usage_hourly WHERE token_id = '$tok_c' AND endpoint <> '(other)'"),
	'/e1=1,/e2=2,/e3=3', 'the first 3 endpoints of the hour have their rows');
is( $node->safe_psql('postgres',
		"SELECT requests FROM pixl_usage_hourly WHERE token_id = '$tok_c' AND endpoint = '(other)'"),
	'15', 'and the later ones count under (other)');
$node->safe_psql('postgres',
	"ALTER SYSTEM RESET pixltoken.max_endpoints_per_hour; SELECT pg_reload_conf()");

# (f) kill -9 of an unrelated backend: usage not yet written is lost (shared
# memory is reinitialised), usage written stays, nothing is doubled
my ($tok_k, $secret_k) = new_token($node, 'postgres', 'store_k', rate_limit => 1000);
verify($secret_k, 7);
ok($node->poll_query_until('postgres', "SELECT " . "(SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok_k') = 7"),
	'7 verifications written');
$node->safe_psql('postgres',
	"ALTER SYSTEM SET pixltoken.flush_interval = '1min'; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', "SELECT current_setting('pixltoken.flush_interval') = '1min'");
usleep(300_000);    # the worker's current wait ends with the old interval
verify($secret_k, 5);
my $victim = $node->background_psql('postgres');
my $vpid = $victim->query_safe('SELECT pg_backend_pid()');
kill 'KILL', $vpid;
$victim->{run}->kill_kill;
ok( $node->poll_query_until('postgres',
		"SELECT worker_state = 'serving' FROM pixl_stats() WHERE datname = 'postgres'"),
	'the server restarted after kill -9 of a backend and the worker serves');
$node->safe_psql('postgres',
	"ALTER SYSTEM RESET pixltoken.flush_interval; SELECT pg_reload_conf()");
verify($secret_k, 2);
ok($node->poll_query_until('postgres', "SELECT " . "(SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok_k') = 9"),
	'the 5 unwritten are lost, the 7 written stay, the 2 after it arrive: 9');
# (a backend's crash keeps the rate-limit windows, so the 2 are 200s; a
# 429 here would be sampled out, which the formula allows for; the
# counters started again at 0)
is($node->safe_psql('postgres', "SELECT count(*) FROM pixl_usage_events WHERE token_id = '$tok_k'"),
	9 - pstat('events_sampled_out'), 'raw rows likewise, but for the sampled-out 429s');

# (g) maintenance: retention floor, quoted schema
like(err($node, 'postgres', "SELECT pixl_run_maintenance('1 second')"), qr/usage retention 00:00:01 is shorter than pixltoken.usage_retention/,
	'a retention below pixltoken.usage_retention is refused');
$node->safe_psql('postgres', 'CREATE DATABASE quoted');
$node->safe_psql('quoted', 'CREATE SCHEMA "my schema"; CREATE EXTENSION pixltoken SCHEMA "my schema"');
is( $node->safe_psql('quoted', 'SELECT partitions_created > 0 FROM "my schema".pixl_run_maintenance()'),
	't', 'maintenance works in a schema whose name needs quotes');
ok( $node->poll_query_until('quoted',
		"SELECT worker_state = 'serving' FROM \"my schema\".pixl_stats() WHERE datname = 'quoted'"),
	'and the worker serves it');

# the database owner owns schema public (PG15) but cannot drop the dated
# partitions there
$node->safe_psql('postgres', 'CREATE ROLE dbo LOGIN; CREATE DATABASE owned OWNER dbo');
$node->safe_psql('owned', 'CREATE EXTENSION pixltoken; SELECT pixl_run_maintenance()');
my $part = $node->safe_psql('owned',
	"SELECT 'pixl_usage_events_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')");
like(err($node, 'owned', "DROP TABLE public.$part", as => 'dbo'), qr/usage partition $part can only be dropped by pixl_run_maintenance/,
	'the database owner cannot drop a dated usage partition');
is($node->safe_psql('owned', "SELECT to_regclass('public.$part') IS NOT NULL"), 't', 'it is still there');
$node->safe_psql('owned', 'DROP EXTENSION pixltoken');
is($node->safe_psql('owned', "SELECT to_regclass('public.$part') IS NULL"), 't',
	'DROP EXTENSION by a superuser still drops everything');

# versioned entry points: a 1.0 definition of pixl_stats keeps working
# against this library, a definition of the wrong shape fails cleanly
$node->safe_psql('postgres', 'CREATE DATABASE old');
$node->safe_psql('old', "CREATE EXTENSION pixltoken VERSION '1.0'");
is($node->safe_psql('old', 'SELECT count(*) > 0 FROM pixl_stats()'), 't',
	'the 1.0 pixl_stats (12 columns) works with the 1.1 library');
$node->safe_psql('old', q{
CREATE FUNCTION bad_stats(OUT a text, OUT b text) RETURNS SETOF record
	AS '$libdir/pixltoken', 'pixl_stats_1_1' LANGUAGE C});
like(err($node, 'old', 'SELECT * FROM bad_stats()'), qr/pixl_stats returns 21 columns, its definition has 2/,
	'a definition of the wrong shape is refused');

# (h) backfill: two events of one microsecond, in two calls
my $at = "'2026-01-02 03:04:05.123456+00'";
$node->safe_psql('postgres', "SELECT pixl_backfill_usage(ARRAY['$tok_k'], ARRAY[${at}::timestamptz])") for 1 .. 2;
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pixl_usage_hourly h WHERE token_id = '$tok_k' AND bucket = date_trunc('hour', ${at}::timestamptz)"),
	'1', 'backfilled hour');
is( $node->safe_psql('postgres',
		"SELECT requests FROM pixl_usage_hourly WHERE token_id = '$tok_k' AND bucket = date_trunc('hour', ${at}::timestamptz)"),
	'2', 'two backfills of one microsecond are two events');

# (j) 1.1 request ids: a forged or malformed one is refused and touches
# nothing; the batched form checks every element before queueing any
my $applied = pstat('responses_applied');
for my $forged ('0123456789abcdef0123456789abcdef', sprintf('%016x%016x', $rid, 0), 'sk_live_' . ('a' x 40))
{
	# the whole of psql's stderr, not err()'s summary: nothing may echo it
	my ($ret, $out, $err) = $node->psql('postgres', "SELECT pixl_log_response('$forged'::text, 500, 1)");
	like($err, qr/invalid request id/, 'a forged request id is refused');
	unlike($err, qr/sk_live_/, 'and a secret pasted there is not echoed');
}
like(err($node, 'postgres',
	"SELECT pixl_log_responses(ARRAY['0123456789abcdef0123456789abcdef'], ARRAY[200, 201], ARRAY[1.0])"),
	qr/response arrays of different lengths/, 'pixl_log_responses: arrays of different lengths');
like(err($node, 'postgres',
	"SELECT pixl_log_responses(ARRAY['0123456789abcdef0123456789abcdef'], ARRAY[200], ARRAY[1.0])"),
	qr/invalid request id/, 'pixl_log_responses: a forged id');
usleep(300_000);
is(pstat('responses_applied'), $applied, 'nothing was applied');
is($node->safe_psql('postgres', "SELECT count(*) FROM pixl_usage_unmatched_responses"),
	'0', 'and no junk row was kept');

$node->stop;

# (i) pixltoken.database values that cannot be served
for my $bad ('x' x 64, join(',', map { "db$_" } 1 .. 65))
{
	$node->append_conf('postgresql.conf', "pixltoken.database = '$bad'\n");
	my $log_start = -s $node->logfile;
	ok(!$node->start(fail_ok => 1), 'the server does not start with pixltoken.database = ' . substr($bad, 0, 20) . '...');
	like(substr(slurp_file($node->logfile), $log_start),
		qr/invalid value for parameter "pixltoken.database"/, 'and says why');
}

done_testing();
