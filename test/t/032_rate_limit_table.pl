# Copyright: the pixltoken authors.
#
# The rate limiter's table under pressure and across crashes (src/verify/rate_limit.c),
# with pixltoken.max_tracked_tokens at its minimum (100) so that the full-
# table path is reached, and pixltoken.test_clock_offset to see a minute
# later without waiting for it:
#  (a) one store's share: a store that verifies more tokens than its share
#      (an eighth of the table) fails its own extra tokens closed, and
#      another store's token is still tracked;
#  (b) a full table fails new tokens closed; the one eviction pass that
#      found nothing idle is not repeated before an entry can be idle;
#  (c) a minute later one pass evicts every idle entry and new tokens fit;
#  (d) after a crash restart of one backend the windows survive (no window
#      starts full; 033 checks the counts); after a crash of the whole
#      server every window starts full (no token exceeds its limit across
#      the crash) and is free again 61 s later; a clean restart within
#      that minute keeps them full to its end (033 checks the counts).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = pixl_node('ratetable', extension => 'postgres', conf => q{
pixltoken.max_tracked_tokens = 100
restart_after_crash = on
});
$node->safe_psql('postgres', q{
	CREATE TABLE secrets (store text, n int, secret text);
});

sub rstat
{
	my ($col) = @_;
	return $node->safe_psql('postgres', "SELECT $col FROM pixl_rate_limit_stats()");
}

sub make_tokens
{
	my ($store, $n) = @_;
	$node->safe_psql('postgres', qq{
		SELECT pixl_set_store_plan('$store', 'enterprise');
		INSERT INTO secrets
		SELECT '$store', g, t.token
		  FROM generate_series(1, $n) g
		 CROSS JOIN LATERAL pixl_create_token('$store', 'T' || g, ARRAY['orders:read']) t;
	});
}

# statuses of one verification of each of a store's tokens, as "200:n 429:m"
sub verify_store
{
	my ($store, $prefix) = @_;
	$prefix //= '';
	return $node->safe_psql('postgres', qq{
		$prefix
		SELECT string_agg(status || ':' || n, ' ' ORDER BY status)
		  FROM (SELECT v.status, count(*) AS n
				  FROM secrets s CROSS JOIN LATERAL pixl_verify_token(s.secret) v
				 WHERE s.store = '$store'
				 GROUP BY v.status) x});
}

is(rstat('max_tracked_tokens || \'/\' || store_share'), '100/12', 'capacity 100, a store may hold 12');

# (a) one store's share
make_tokens('big', 20);
make_tokens('small', 1);
is(verify_store('big'), '200:12 429:8', '(a) the big store gets its share of 12 tokens, the rest fail closed');
is(rstat('store_share_rejections'), '8', '(a) counted as share rejections');
is(verify_store('small'), '200:1', '(a) another store is still tracked');
is(verify_store('big'), '200:12 429:8', '(a) the same twelve again, the others still closed');

# (b) the full table: 12 + 1 tracked; 8 stores of 11 more fill it
for my $i (1 .. 8)
{
	make_tokens("s$i", 11);
	verify_store("s$i");
}
is(rstat('tokens_tracked'), '100', '(b) the table is full');
my $sweeps = rstat('sweeps');
# one pass: when the big store's share ran out in (a); it found nothing
# idle, so none runs before the first entry can be idle (61 s later)
is($sweeps, '1', '(b) one eviction pass ran, when a share first ran out');
is(rstat('tokens_evicted'), '0', '(b) it found nothing idle');
make_tokens('late', 5);
is(verify_store('late'), '429:5', '(b) new tokens fail closed');
is(verify_store('late'), '429:5', '(b) and again');
is(rstat('sweeps'), $sweeps, '(b) no further pass before an entry can be idle');
# 8 + 8 of the big store, the 101st entry (the last of s8), 5 + 5 late
is(rstat('table_full_rejections'), '27', '(b) every rejection counted');
# the tracked ones go on
is(verify_store('small'), '200:1', '(b) a tracked token still verifies');

# (c) a minute later (for this session's clock): one pass evicts them all
is(verify_store('late', 'SET pixltoken.test_clock_offset = 62;'), '200:5',
	'(c) a minute later the new tokens are tracked');
is(rstat('sweeps'), $sweeps + 1, '(c) in one more pass');
is(rstat('tokens_evicted'), '100', '(c) which evicted every idle entry');
is(rstat('tokens_tracked'), '5', '(c) only the new tokens are left');

# (d) crash restart: kill -9 of the usage worker reinitialises PostgreSQL's
#     shared memory, not the limiter's windows
is(rstat('full_windows_until IS NULL'), 't', '(d) windows start empty after a clean start');
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pixltoken usage worker'");
like($pid, qr/^\d+$/, '(d) the usage worker runs');
my $crash_offset = -s $node->logfile;
kill 'KILL', $pid;
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $crash_offset);
ok($node->poll_query_until('postgres', 'SELECT true'), '(d) the server restarted after the crash');
is(rstat('full_windows_until IS NULL'), 't', '(d) after a backend crash no window starts full');
is(rstat('tokens_tracked'), '5', '(d) the tracked tokens survived it');
is(verify_store('s1'), '200:11', '(d) and tokens answer 200');

# a whole-server crash is a crash too
$node->kill9;
# the orphaned children leave shared memory when they notice; until then a
# new postmaster refuses to start (bounded retries)
my $started = 0;
for (1 .. 100)
{
	last if ($started = $node->start(fail_ok => 1));
	usleep(100_000);
	$node->stop('fast', fail_ok => 1);    # forget a stale pid
}
ok($started, '(d) restarted after kill -9 of the server');
is(rstat('full_windows_until IS NOT NULL'), 't', '(d) after kill -9 of the server windows start full');
my $row = $node->safe_psql('postgres', q{
	SELECT v.status || ' ' || (v.retry_after_ms BETWEEN 1 AND 61000)
	  FROM secrets s CROSS JOIN LATERAL pixl_verify_token(s.secret) v
	 WHERE s.store = 'small'});
is($row, '429 true', '(d) a token used before the crash is refused, retry within 61 s');
is(verify_store('s3'), '429:11', '(d) every token is');
is(verify_store('s3', 'SET pixltoken.test_clock_offset = 62;'), '200:11',
	'(d) 61 s after the restart the windows are free');

# a clean restart within the crash's minute does not forget it
$node->restart;
is(rstat('full_windows_until IS NOT NULL'), 't', '(d) a clean restart within the minute keeps windows full');
is(verify_store('s4'), '429:11', '(d) and refuses');
is(verify_store('s4', 'SET pixltoken.test_clock_offset = 62;'), '200:11',
	'(d) until 61 s after the crash\'s restart');

# (e) an immediate shutdown is a crash, though its postmaster exits with
#     code 0 (and so removes the marker and saves what is queued): windows
#     start full, and the usage saved at exit is discarded, because the
#     worker may have written part of it already (never counted twice).
$node->safe_psql('postgres',
	"ALTER SYSTEM SET pixltoken.flush_interval = '60s'; SELECT pg_reload_conf()");
sleep(1);    # the worker's current 100 ms wait ends; the next one is 60 s
my $queued0 = $node->safe_psql('postgres',
	"SELECT events_queued FROM pixl_stats() WHERE datname = 'postgres'");
is($node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT v.status::text, ',') FROM secrets s
	 CROSS JOIN LATERAL pixl_verify_token(s.secret, endpoint => '/immediate') v
	 WHERE s.store = 's4'}), '200', '(e) eleven verifications');
is($node->safe_psql('postgres',
	"SELECT events_queued FROM pixl_stats() WHERE datname = 'postgres'"),
	$queued0 + 11, '(e) queued, not yet written');
my $logstart = -s $node->logfile;
$node->stop('immediate');
$node->start;
my $log = slurp_file($node->logfile, $logstart);
like($log, qr/discarding the usage queue saved at an immediate shutdown/,
	'(e) the saved queue is discarded');
like($log, qr/discarding the usage counts saved at an immediate shutdown/,
	'(e) and the saved counts');
like($log, qr/did not shut down cleanly; every rate-limit window starts full/,
	'(e) windows start full');
is(rstat('full_windows_until IS NOT NULL'), 't', '(e) as after a crash');
$node->safe_psql('postgres',
	"ALTER SYSTEM RESET pixltoken.flush_interval; SELECT pg_reload_conf()");
ok($node->poll_query_until('postgres',
	"SELECT events_queued = 0 FROM pixl_stats() WHERE datname = 'postgres'"),
	'(e) nothing queued after the restart');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pixl_usage_hourly WHERE endpoint = '/immediate'"),
	'0', '(e) none of it written: lost, as in a crash, never doubled');

$node->stop;
done_testing();
