# Copyright: the pixltoken authors.
#
# The rate limiter across a crash of one backend, and each store's own
# share of the table (src/verify/rate_limit.c), with pixltoken.max_tracked_tokens
# at its minimum (100, so a store's share is 12):
#  (s) two stores whose ids collided in the old hashtext % 1024 buckets
#      have separate shares: one filling its share leaves the other's new
#      token tracked;
#  (a) after kill -9 of one backend, a token that was under its limit
#      answers 200 within 1 s of the restart, with the window it had;
#  (b) a token that had used its whole limit is still refused after the
#      crash, with retry_after_ms pointing where its first request leaves
#      the window (the exact bound holds across the crash);
#  (c) a crash while several sessions hammer one token never lets more
#      than its limit through in the minute;
#  (d) a crash of the postmaster itself (kill -9, or an immediate stop)
#      still starts every window full (checked in 032 as well), and a
#      clean restart within that minute keeps them full to its end (as
#      pg_auto_failover restarts a crashed node: crash recovery, a clean
#      stop, then a start), never empty;
#  (e) with 9000 of 10000 slots used, a backend that crashes in the middle
#      of the sweep's moves (pixltoken.test_crash_at_move) leaving a gap in
#      a probe sequence, or an entry twice: after the rebuild every window
#      is exact, and the table holds each entry once.
use strict;
use warnings;

use IPC::Run;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $node = pixl_node('ratecrash', extension => 'postgres', conf => q{
pixltoken.max_tracked_tokens = 100
restart_after_crash = on
max_connections = 30
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
	my ($store, $n, $limit) = @_;
	$limit //= 1000;
	$node->safe_psql('postgres', qq{
		SELECT pixl_set_store_plan('$store', 'enterprise');
		INSERT INTO secrets
		SELECT '$store', g, t.token
		  FROM generate_series(1, $n) g
		 CROSS JOIN LATERAL pixl_create_token('$store', 'T' || g, ARRAY['orders:read'],
											  rate_limit => $limit) t;
	});
}

sub secret_of
{
	my ($store) = @_;
	return $node->safe_psql('postgres',
		"SELECT secret FROM secrets WHERE store = '$store' AND n = 1");
}

# statuses of one verification of each of a store's tokens, as "200:n 429:m"
sub verify_store
{
	my ($store) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT string_agg(status || ':' || n, ' ' ORDER BY status)
		  FROM (SELECT v.status, count(*) AS n
				  FROM secrets s CROSS JOIN LATERAL pixl_verify_token(s.secret) v
				 WHERE s.store = '$store'
				 GROUP BY v.status) x});
}

# one verification: "status remaining retry_after_ms"
sub verify_one
{
	my ($secret) = @_;
	return $node->safe_psql('postgres',
		"SELECT status || ' ' || remaining || ' ' || coalesce(retry_after_ms, 0) "
		  . "FROM pixl_verify_token('$secret')");
}

# kill -9 of a backend; returns once the server accepts connections again,
# with the time it did
sub crash_backend
{
	my ($pid) = @_;
	my $offset = -s $node->logfile;
	kill 'KILL', $pid;
	$node->wait_for_log(qr/all server processes terminated; reinitializing/, $offset);
	for (1 .. 600)
	{
		my ($ret) = $node->psql('postgres', 'SELECT 1');
		return time() if $ret == 0;
		usleep(50_000);
	}
	die 'the server did not come back after the crash';
}

is(rstat('max_tracked_tokens || \'/\' || store_share'), '100/12', 'capacity 100, a store may hold 12');

# (s) two stores whose ids fell into one of the old 1024 buckets
my $victim = 'victim-store';
my $attacker = $node->safe_psql('postgres', qq{
	SELECT 'attacker-' || g FROM generate_series(1, 100000) g
	 WHERE hashtext('attacker-' || g) & 1023 = hashtext('$victim') & 1023
	 ORDER BY g LIMIT 1});
like($attacker, qr/^attacker-\d+$/, "(s) $attacker collides with $victim in hashtext % 1024");
make_tokens($attacker, 13);
is(verify_store($attacker), '200:12 429:1', '(s) the attacker gets its share of 12 tokens, no more');
make_tokens($victim, 3);
is(verify_store($victim), '200:3', '(s) the other store\'s new tokens are still tracked');
is(rstat('store_share_rejections'), '1', '(s) only the attacker\'s 13th token hit a share');

# (a) and (b): used part of, and all of, a limit before the crash
make_tokens('under', 1, 5);
make_tokens('used', 1, 3);
my $under = secret_of('under');
my $used = secret_of('used');
is(verify_one($under), '200 4 0', '(a) first of 5');
is(verify_one($under), '200 3 0', '(a) second of 5');
my $t_used_before = time();
is(verify_one($used), '200 2 0', '(b) first of 3');
my $t_used_after = time();
is(verify_one($used), '200 1 0', '(b) second of 3');
is(verify_one($used), '200 0 0', '(b) third of 3');
like(verify_one($used), qr/^429 0 \d+$/, '(b) the fourth is refused');
my $tracked = rstat('tokens_tracked');

my $bg = $node->background_psql('postgres');
my $bgpid = $bg->query_safe('SELECT pg_backend_pid()');
my $t_up = crash_backend($bgpid);
$bg->{run}->kill_kill;

# a token under its limit answers 200 within 1 s of the restart (bounded poll)
my ($first_200, $answer) = (undef, '');
while (time() - $t_up < 5)
{
	$answer = verify_one($under);
	if ($answer =~ /^200 /)
	{
		$first_200 = time();
		last;
	}
	usleep(50_000);
}
ok(defined $first_200 && $first_200 - $t_up <= 1.0,
	sprintf('(a) a token under its limit answers 200 within 1 s of the restart (%s)',
		defined $first_200 ? sprintf('%.3f s', $first_200 - $t_up) : "last answer $answer"));
is($answer, '200 2 0', '(a) its window survived the crash: 2 left of 5 after the third');
is(rstat('full_windows_until IS NULL'), 't', '(a) no window starts full after a backend crash');
is(rstat('tokens_tracked'), $tracked, '(a) every tracked token is still tracked');
is(verify_store($victim), '200:3', '(a) and the other tokens still answer 200');

# the token that used its whole limit: still refused, until its first
# request leaves the window (at most 61 s after it, never before 60 s)
my $t_req = time();
my ($st, $rem, $retry) = split / /, verify_one($used);
is("$st $rem", '429 0', '(b) a token that used its whole limit is still refused after the crash');
cmp_ok($t_req + $retry / 1000.0, '<=', $t_used_after + 61.1,
	"(b) retry_after_ms $retry points no later than 61 s after its first request");
cmp_ok($t_req + $retry / 1000.0 + 0.2, '>=', $t_used_before + 60,
	"(b) and no earlier than 60 s after it");

# (c) kill -9 of a backend while four sessions hammer one token
my $limit = 1000;
make_tokens('hammer', 1, $limit);
my $hsecret = secret_of('hammer');
my $script = "SELECT v.status FROM pixl_verify_token('$hsecret') v, pg_sleep(0.004) s;\n" x 3000;
my $script_file = $node->basedir . '/hammer.sql';
open(my $fh, '>', $script_file) or die "could not write $script_file: $!";
print $fh $script;
close($fh);
my @runs;
my @outs = ('') x 4;
for my $i (0 .. 3)
{
	push @runs, IPC::Run::start(
		[ $node->installed_command('psql'), '-XAtq', '-d', $node->connstr('postgres'), '-f', $script_file ],
		'>', \$outs[$i], '2>', '/dev/null');
}
# some requests admitted in every session, then the crash
my $deadline = time() + 60;
while (time() < $deadline)
{
	$_->pump_nb for @runs;
	last if (grep { ($_ =~ tr/\n//) >= 25 } @outs) == 4;
	usleep(10_000);
}
my $victim2 = $node->background_psql('postgres');
my $vpid = $victim2->query_safe('SELECT pg_backend_pid()');
crash_backend($vpid);
$victim2->{run}->kill_kill;
for my $r (@runs)
{
	eval { $r->finish; };
}
my $before = 0;
$before += () = $_ =~ /^200$/mg for @outs;
note("$before admitted before the crash");
cmp_ok($before, '>', 0, '(c) requests were admitted before the crash');
cmp_ok($before, '<', $limit, '(c) the crash came before the limit was used up');
# (the CASE makes the lateral call depend on g: one call per row)
my $after = $node->safe_psql('postgres', qq{
	SELECT count(*) FILTER (WHERE v.status = 200)
	  FROM generate_series(1, $limit + 100) g
	 CROSS JOIN LATERAL pixl_verify_token(CASE WHEN g > 0 THEN '$hsecret' END) v});
note("$after admitted after the crash");
# a request in flight when its session died may have been counted but
# never answered: at most one per session
cmp_ok($before + $after, '<=', $limit, "(c) at most $limit admitted in the minute across the crash");
cmp_ok($before + $after, '>=', $limit - 4, '(c) and all but the (at most 4) unanswered ones');

# (d) a crash of the postmaster: a new start, and windows start full
$node->kill9;
my $started = 0;
for (1 .. 100)
{
	last if ($started = $node->start(fail_ok => 1));
	usleep(100_000);
	$node->stop('fast', fail_ok => 1);    # forget a stale pid
}
ok($started, '(d) restarted after kill -9 of the postmaster');
is(rstat('full_windows_until IS NOT NULL'), 't', '(d) after kill -9 of the postmaster windows start full');
is(verify_store($victim), '429:3', '(d) and refuse');
# a backend crash within that minute keeps the windows full
my $bg3 = $node->background_psql('postgres');
my $pid3 = $bg3->query_safe('SELECT pg_backend_pid()');
crash_backend($pid3);
$bg3->{run}->kill_kill;
is(rstat('full_windows_until IS NOT NULL'), 't', '(d) a backend crash then keeps the full windows\' end');
is(verify_store('under'), '429:1', '(d) and a token new to the table still starts full');

$node->stop('immediate');
$node->start;
is(rstat('full_windows_until IS NOT NULL'), 't', '(d) an immediate stop starts windows full too');
is(verify_store($victim), '429:3', '(d) and refuses');
my $full_until = rstat('full_windows_until');
$node->restart;
is(rstat('full_windows_until'), $full_until,
	'(d) a clean restart within that minute keeps the windows full, to the same end');
is(verify_store($victim), '429:3', '(d) and still refuses');

# (e) a crash in the middle of the sweep's moves.  The windows are kept at
# the real clock (a rebuild sets a newest second in the future to now, so a
# window of test_clock_offset's future would not survive it unchanged).
# (e) wants empty windows: while the server is stopped, forget the
# crash's minute (the marker a clean stop keeps while windows start full)
$node->stop;
unlink($node->data_dir . '/pg_stat_tmp/pixltoken_rate_limit.running')
  or die "no rate-limit marker after a clean stop within the crash's minute: $!";
$node->append_conf('postgresql.conf', "pixltoken.max_tracked_tokens = 10000\n");
$node->start;
is(rstat('full_windows_until IS NULL'), 't', '(e) a clean restart with 10000 slots');
for my $i (1 .. 5)
{
	make_tokens("ea$i", 900, 1000);
	make_tokens("eb$i", 900, 3);
}
make_tokens('ec', 2, 1000);
make_tokens('ed', 1000, 1000);

# statuses of verifications of every token of the stores LIKE $like, each
# $times times
sub verify_many
{
	my ($like, $times) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT string_agg(status || ':' || n, ' ' ORDER BY status)
		  FROM (SELECT v.status, count(*) AS n
				  FROM secrets s CROSS JOIN generate_series(1, $times) g
				 CROSS JOIN LATERAL pixl_verify_token(CASE WHEN g > 0 THEN s.secret END) v
				 WHERE s.store LIKE '$like'
				 GROUP BY v.status) x});
}

# A: 4500 tokens; 3 s later B: 4500 tokens of limit 3, used twice each
is(verify_many('ea%', 1), '200:4500', '(e) A: 4500 tokens tracked');
my $a_done = $node->safe_psql('postgres', 'SELECT floor(extract(epoch FROM clock_timestamp()))');
sleep(3);
is(verify_many('eb%', 2), '200:9000', '(e) B: 4500 tokens of limit 3 used twice each');
is(rstat('tokens_tracked'), '9000', '(e) 9000 of 10000 tracked');

# A verification with the clock set so that A's entries are idle and B's
# are not (A's newest second + 61, at least 3 s before B's): a new token
# makes it sweep, shifting B's entries back
sub verify_sweeping
{
	my ($secret, $crash_at) = @_;
	return $node->psql('postgres', qq{
		SELECT set_config('pixltoken.test_clock_offset',
						  ($a_done + 61 - floor(extract(epoch FROM clock_timestamp())))::text, false);
		SET pixltoken.test_crash_at_move = $crash_at;
		SELECT status FROM pixl_verify_token('$secret')});
}

# the backend crashes at its nth move: three times once the original is
# freed (a gap in a probe sequence), twice once the copy is marked used
# (the entry twice); before each, fresh tokens fill the table to 90% again
my @ec = split /\n/, $node->safe_psql('postgres',
	"SELECT secret FROM secrets WHERE store = 'ec' ORDER BY n");
my $refill = 0;
sub refill
{
	my $missing = 9000 - rstat('tokens_tracked');
	return if $missing <= 0;
	is($node->safe_psql('postgres', qq{
		SELECT count(*) FROM secrets s CROSS JOIN LATERAL pixl_verify_token(s.secret) v
		 WHERE s.store = 'ed' AND s.n > $refill AND s.n <= $refill + $missing
		   AND v.status = 200}), $missing, "(e) $missing fresh tokens fill the table to 90%");
	$refill += $missing;
}
for my $case ([ -20, 'a gap in a probe sequence', '200:4500 429:4500' ],
	[ -15, 'a gap in a probe sequence', '429:9000' ],
	[ -25, 'a gap in a probe sequence', '429:9000' ],
	[ 20, 'an entry twice', '429:9000' ],
	[ 15, 'an entry twice', '429:9000' ])
{
	my ($at, $what, $expect) = @$case;
	refill();
	my $offset = -s $node->logfile;
	my ($ret) = verify_sweeping($ec[0], $at);
	isnt($ret, 0, "(e) the sweep crashed the backend, leaving $what");
	$node->wait_for_log(qr/terminated by signal 6/, $offset);
	$node->wait_for_log(qr/kept the rate-limit windows of \d+ tokens/, $offset);
	ok($node->poll_query_until('postgres', 'SELECT true'), '(e) the server is back');
	# B's last request: one 200 and one 429 each, then two 429s each (an
	# entry the rebuild left unreachable would start again, with 200s)
	is(verify_many('eb%', 2), $expect, "(e) after $what every B window is exact");
}
# the sweep completes: B, the fresh tokens and the new one are left, once each
refill();
my ($ret, $out) = verify_sweeping($ec[1], 0);
like($out, qr/^200$/m, '(e) the sweep completes and a new token is tracked');
is(rstat('tokens_tracked'), 4500 + $refill + 1,
	'(e) A was evicted; B, the fresh tokens and the new one are tracked once each');
is(verify_many('eb%', 1), '429:4500', '(e) B is still refused');

$node->stop;
done_testing();
