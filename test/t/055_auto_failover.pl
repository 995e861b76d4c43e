# Copyright: the pixltoken authors.
#
# Automatic failover with pg_auto_failover (Debian 12's
# postgresql-15-auto-failover: pg_autoctl and the pgautofailover extension
# in the PostgreSQL installation under test), end to end: a monitor, a
# primary (a, pixltoken.node_id 1) and a secondary (b, node_id 2) made by
# pg_autoctl, pixltoken preloaded on both, rate_limit_share 0.5 each.
# Per-node settings live in a file next to each data directory, included
# by a relative path, so that the secondary's base backup (which copies
# postgresql.conf) takes its own node id.
#
# Two clients verify through multi-host connection strings, a new
# connection per call, each line of answers time-stamped:
#   - "standby first": target_session_attrs=prefer-standby (b, then a
#     once it rejoins);
#   - "primary": target_session_attrs=primary (a, then b);
# and management goes through target_session_attrs=read-write.  Then node
# a is killed whole (kill -9 of its pg_autoctl and of its postgres and
# every child: a machine gone), and
#  (1) b is promoted by the monitor, verification keeps answering: the
#      longest time without an answer is measured and printed;
#  (2) a revocation made before the failover and one made after it hold on
#      both nodes, a included once it rejoins as a secondary;
#  (3) a token limited to 20/min (10 per node) hammered on both sides
#      throughout: each node admits at most its share in any 60 s window,
#      b across its promotion, a before the kill and after it rejoined; the
#      cluster at most 20 in any 60 s window when pg_autoctl brought a back
#      unrewound (the crash's minute of full windows handed on through the
#      clean restart), at most 30 when it was rewound or made again by
#      pg_basebackup (an empty limiter admits a's share once more: the
#      stated bound of that way back);
#  (4) usage once a rejoined and shipped: the new primary's rollups hold at
#      most the answers the clients saw (nothing doubled, raw rows with
#      distinct ids), at least all of them but what a answered in its last
#      3 s before the kill when a came back unrewound (its unfolded counts,
#      lost with its shared memory), or but what a answered before the kill
#      when pg_rewind or pg_basebackup brought it back (they discard the
#      folds a committed that b had not received; no counter shows that).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IO::Handle;
use IPC::Run;
use POSIX ();
use Time::HiRes qw(time usleep);

# the PostgreSQL under test (make installcheck puts its bindir first in PATH)
my $bindir = `pg_config --bindir`;
chomp $bindir;
my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
my ($autoctl) = grep { -x $_ } map { "$_/pg_autoctl" } split /:/, $ENV{PATH};
BAIL_OUT('pg_autoctl not found: apt-get install postgresql-15-auto-failover')
  unless $autoctl;
BAIL_OUT("the pgautofailover extension is not in $sharedir/extension")
  unless -f "$sharedir/extension/pgautofailover.control";

my $base = PostgreSQL::Test::Utils::tempdir('paf');
my %port = (m => PostgreSQL::Test::Cluster::get_free_port(),
	a => PostgreSQL::Test::Cluster::get_free_port(),
	b => PostgreSQL::Test::Cluster::get_free_port());
my %pgdata = map { $_ => "$base/$_/pgdata" } qw(m a b);
mkdir "$base/$_" for qw(m a b xdg xdg/config xdg/data xdg/run);
# pg_autoctl's logs where test/run.sh shows them on a failure
my %log = map { $_ => "$PostgreSQL::Test::Utils::log_path/055_pg_autoctl_$_.log" } qw(m a b);

# pg_autoctl keeps its configuration and state under XDG directories: ours
$ENV{XDG_CONFIG_HOME} = "$base/xdg/config";
$ENV{XDG_DATA_HOME} = "$base/xdg/data";
$ENV{XDG_RUNTIME_DIR} = "$base/xdg/run";
delete $ENV{$_} for qw(PGHOST PGPORT PGDATA PGDATABASE PGUSER);

my $monitor_uri = "postgres://autoctl_node\@127.0.0.1:$port{m}/pg_auto_failover?sslmode=disable";
my $mgmt = "host=127.0.0.1,127.0.0.1 port=$port{a},$port{b} dbname=postgres "
  . 'target_session_attrs=read-write connect_timeout=2';

sub conninfo
{
	my ($n, $db) = @_;
	return "host=127.0.0.1 port=$port{$n} dbname=" . ($db // 'postgres') . ' connect_timeout=2';
}

# psql with a connection string: (exit code, stdout, stderr)
sub psql_at
{
	my ($conn, $sql) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ "$bindir/psql", '-X', '-Atq', '-v', 'ON_ERROR_STOP=1', '-d', $conn, '-c', $sql ],
		'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(60));
	chomp $out;
	return ($? >> 8, $out, $err);
}

sub q_ok
{
	my ($conn, $sql) = @_;
	my ($rc, $out, $err) = psql_at($conn, $sql);
	die "psql \"$conn\" failed: $sql\n$err" if $rc != 0;
	return $out;
}

# polls $code (bounded) until it returns true; returns that or undef
sub poll
{
	my ($code, $secs) = @_;
	my $deadline = time() + ($secs // $PostgreSQL::Test::Utils::timeout_default);
	while (time() < $deadline)
	{
		my $v = $code->();
		return $v if $v;
		usleep(100_000);
	}
	return undef;
}

sub autoctl
{
	my ($log, @args) = @_;
	my $ok = IPC::Run::run([ $autoctl, @args ], '<', \undef, '>>', $log, '2>&1',
		IPC::Run::timeout(180));
	die "pg_autoctl @args failed, see $log" unless $ok;
}

# pg_autoctl run (or create ... --run) in the background, in a process
# group of its own (its postgres stays in it)
my %runner;
sub start_node
{
	my ($n, @args) = @_;
	@args = ('run', '--pgdata', $pgdata{$n}) unless @args;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		POSIX::setsid();
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>>', $log{$n});
		open(STDERR, '>&', \*STDOUT);
		exec($autoctl, @args);
		die "exec: $!";
	}
	$runner{$n} = $pid;
}

END
{
	# the servers' own logs (logging_collector, in the data directories)
	# where test/run.sh shows them, if a check failed
	if (!Test::More->builder->is_passing)
	{
		for my $n (qw(m a b))
		{
			for my $f (glob("$pgdata{$n}/log/*"))
			{
				my ($leaf) = $f =~ m{([^/]+)$};
				IPC::Run::run([ 'cp', $f, "$PostgreSQL::Test::Utils::log_path/055_server_${n}_$leaf" ]);
			}
		}
	}
	# a clean stop of what is left, then nothing survives the test
	for my $n (grep { $runner{$_} } qw(b a m))
	{
		IPC::Run::run([ $autoctl, 'stop', '--pgdata', $pgdata{$n} ], '>', '/dev/null', '2>&1')
		  if $autoctl;
	}
	for my $n (keys %runner)
	{
		my $deadline = time() + 20;
		usleep(100_000) while kill(0, $runner{$n}) && waitpid($runner{$n}, POSIX::WNOHANG()) == 0
		  && time() < $deadline;
		kill('KILL', -$runner{$n});
	}
}

# "name:reported/goal ..." of the formation, from the monitor
sub states
{
	return q_ok(conninfo('m', 'pg_auto_failover'),
		"SELECT string_agg(nodename || ':' || reportedstate || '/' || goalstate, ' ' ORDER BY nodename)
		   FROM pgautofailover.node");
}

sub wait_states
{
	my ($want, $secs) = @_;
	my $got;
	poll(sub { ($got = states()) =~ $want }, $secs);
	return $got;
}

# ---------------------------------------------------------------------------
# The formation
# ---------------------------------------------------------------------------
my $t_setup = time();
autoctl($log{m}, 'create', 'monitor', '--pgdata', $pgdata{m}, '--pgport', $port{m},
	'--hostname', '127.0.0.1', '--auth', 'trust', '--no-ssl', '--pgctl', "$bindir/pg_ctl");
# fast detection: a few seconds instead of the defaults' half a minute
append_to_file("$pgdata{m}/postgresql.conf", q{
listen_addresses = '127.0.0.1'
pgautofailover.health_check_period = 1000
pgautofailover.health_check_timeout = 1000
pgautofailover.health_check_max_retries = 1
pgautofailover.health_check_retry_delay = 500
pgautofailover.node_considered_unhealthy_timeout = 3000
pgautofailover.primary_demote_timeout = 3000
});
start_node('m');
ok(poll(sub { (psql_at(conninfo('m', 'pg_auto_failover'), 'SELECT 1'))[0] == 0 }),
	'the monitor runs');

# node a: our own initdb, so that pixltoken is there from the first start
IPC::Run::run([ "$bindir/initdb", '-D', $pgdata{a}, '-A', 'trust', '--no-sync' ],
	'>', "$base/initdb.log", '2>&1') or die 'initdb failed';
# after pg_autoctl's include (the first line): these win
append_to_file("$pgdata{a}/postgresql.conf", q{
shared_preload_libraries = 'pg_stat_statements,pixltoken'
pixltoken.database = 'postgres'
pixltoken.flush_interval = '100ms'
pixltoken.fold_interval = '100ms'
pixltoken.request_log = 'all'
pixltoken.rate_limit_share = 0.5
pixltoken.max_standby_staleness = '3s'
wal_receiver_timeout = '2s'
shared_buffers = '32MB'
include_if_exists = '../pixltoken-node.conf'
});
append_to_file("$base/a/pixltoken-node.conf", "pixltoken.node_id = 1\n");
append_to_file("$base/b/pixltoken-node.conf", "pixltoken.node_id = 2\n");

my @node_args = ('--hostname', '127.0.0.1', '--listen', '127.0.0.1', '--auth', 'trust',
	'--no-ssl', '--pgctl', "$bindir/pg_ctl", '--monitor', $monitor_uri);
start_node('a', 'create', 'postgres', '--pgdata', $pgdata{a}, '--pgport', $port{a},
	'--name', 'a', @node_args, '--run');
like(wait_states(qr/^a:single\/single$/), qr/^a:single\/single$/, 'a is the single node');
ok(poll(sub { (psql_at(conninfo('a'), 'SELECT 1'))[0] == 0 }), 'a accepts connections');
q_ok(conninfo('a'), 'CREATE EXTENSION pixltoken');
# the standby's shipper connects as primary_conninfo's role
q_ok(conninfo('a'),
	'GRANT EXECUTE ON FUNCTION pixl_ingest_usage(integer, bigint, bigint, real, text, bytea) TO pgautofailover_replicator');
# so that the base backup's checkpoint has little to write
q_ok(conninfo('a'), 'CHECKPOINT');

start_node('b', 'create', 'postgres', '--pgdata', $pgdata{b}, '--pgport', $port{b},
	'--name', 'b', @node_args, '--run');
is(wait_states(qr/^a:primary\/primary b:secondary\/secondary$/),
	'a:primary/primary b:secondary/secondary', 'a primary, b its secondary');
ok(poll(sub { (psql_at(conninfo('b'), 'SELECT 1'))[0] == 0 }), 'b accepts connections');
is(q_ok(conninfo('a'), 'SHOW pixltoken.node_id') . ' ' . q_ok(conninfo('b'), 'SHOW pixltoken.node_id'),
	'1 2', 'each node has its own node id (the included file next to its data directory)');
note(sprintf('formation ready in %.1f s', time() - $t_setup));

# ---------------------------------------------------------------------------
# Tokens, all made through the management connection string
# ---------------------------------------------------------------------------
sub token
{
	my ($name, $limit) = @_;
	return split / /, q_ok($mgmt,
		"SELECT token_id || ' ' || token FROM pixl_create_token('store-paf', '$name', ARRAY['products:read'], rate_limit => $limit)");
}
q_ok($mgmt, "SELECT pixl_set_store_plan('store-paf', 'enterprise')");
my ($tok_t, $sec_t) = token('traffic', 1000);
my ($tok_l, $sec_l) = token('limited', 20);
my ($tok_r1, $sec_r1) = token('revoked before', 1000);
my ($tok_r2, $sec_r2) = token('revoked after', 1000);

sub status_on
{
	my ($n, $secret) = @_;
	my ($rc, $out) = psql_at(conninfo($n),
		"SELECT status FROM pixl_verify_request('$secret', 'products:read')");
	return $rc == 0 ? $out : 'error';
}

ok(poll(sub { status_on('b', $sec_r2) eq '200' }), 'b has replayed the tokens');
q_ok($mgmt, "SELECT pixl_revoke_token('$tok_r1')");
ok(poll(sub { status_on('a', $sec_r1) eq '401' && status_on('b', $sec_r1) eq '401' }),
	'revoked before the failover: 401 on a and on b');

# ---------------------------------------------------------------------------
# Clients: a process each, one connection per call, a line per call:
# "<sent> <answered> <port> <traffic status> <limited status>" or
# "<sent> <answered> error"
# ---------------------------------------------------------------------------
my $stop_file = "$base/clients.stop";
my %client;
sub start_client
{
	my ($name, $attrs) = @_;
	my $conn = "host=127.0.0.1,127.0.0.1 port=$port{b},$port{a} dbname=postgres "
	  . "target_session_attrs=$attrs connect_timeout=2";
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(my $fh, '>', "$base/client-$name.txt") or die;
		$fh->autoflush(1);
		while (!-e $stop_file)
		{
			my $t0 = time();
			my ($rc, $out) = eval {
				psql_at($conn,
					"SELECT inet_server_port() || ' ' || t.status || ' ' || l.status
					   FROM pixl_verify_request('$sec_t', 'products:read') t,
							pixl_verify_request('$sec_l', 'products:read') l");
			};
			$rc //= -1;
			my $t1 = time();
			printf $fh "%.3f %.3f %s\n", $t0, $t1, $rc == 0 && $out =~ /^\d+ \d+ \d+$/ ? $out : 'error';
			usleep(20_000) if $rc != 0;
		}
		close $fh;
		POSIX::_exit(0);
	}
	$client{$name} = $pid;
}

start_client('standby-first', 'prefer-standby');
start_client('primary', 'primary');
sleep(5);

# ---------------------------------------------------------------------------
# (1) a killed whole: b promoted, verification answers on
# ---------------------------------------------------------------------------
my $pm = (split /\n/, slurp_file("$pgdata{a}/postmaster.pid"))[0];
my @children;
for my $stat (glob('/proc/[0-9]*/stat'))
{
	open(my $fh, '<', $stat) or next;
	my $line = <$fh> // '';
	close $fh;
	push @children, $1 if $line =~ /^(\d+) \(.*\) \S (\d+) / && $2 == $pm;
}
my $t_kill = time();
kill('KILL', -$runner{a}, $pm, @children);
waitpid($runner{a}, 0);
delete $runner{a};

my $promoted = poll(sub { (psql_at(conninfo('b'), 'SELECT NOT pg_is_in_recovery()'))[1] eq 't' }, 120);
my $t_promoted = time();
ok($promoted, sprintf('b promoted by the monitor, %.1f s after the kill', $t_promoted - $t_kill));
like(wait_states(qr/b:(wait_primary|primary)\/\1/, 60), qr/b:(wait_primary|primary)\/\1/,
	'the monitor has b as the primary');
is(q_ok(conninfo('b'), "SELECT worker_state FROM pixl_stats() WHERE datname = 'postgres'"),
	'serving', 'b\'s usage worker serves as a primary\'s');

# (2) a revocation after the failover, through the management string
q_ok($mgmt, "SELECT pixl_revoke_token('$tok_r2')");
is(status_on('b', $sec_r2) . ' ' . status_on('b', $sec_r1), '401 401',
	'on the promoted b: revoked after and before the failover, 401');
sleep(3);

# a rejoins: pg_autoctl run again (pg_rewind, then a secondary of b)
my $t_restart = time();
my $log_a_offset = -s $log{a};
start_node('a');
is(wait_states(qr/^a:secondary\/secondary b:primary\/primary$/, 120),
	'a:secondary/secondary b:primary/primary', 'a rejoined as b\'s secondary');
my $t_rejoined = time();
# how pg_autoctl brought a back: pg_rewind found nothing to rewind (the
# data directory as it was), rewound it (pg_rewind removes pg_stat_tmp/'s
# files), or made it again with pg_basebackup
my $rejoin_log = slurp_file($log{a}, $log_a_offset);
my $rejoin = $rejoin_log =~ /pg_basebackup instead/ ? 'pg_basebackup'
  : $rejoin_log =~ /no rewind required/ ? 'no rewind required'
  : 'pg_rewind';
note(sprintf('a rejoined %.1f s after its restart (%s)', $t_rejoined - $t_restart, $rejoin));
ok(poll(sub { status_on('a', $sec_r2) eq '401' && status_on('a', $sec_r1) eq '401' }),
	'on the rejoined a: both revocations hold');
is(q_ok(conninfo('a'), "SELECT pg_is_in_recovery()::int || ' ' || current_setting('pixltoken.node_id')"),
	'1 1', 'a is a hot standby with its node id');
sleep(4);

append_to_file($stop_file, '');
waitpid($client{$_}, 0) for keys %client;
my $t_end = time();

# ---------------------------------------------------------------------------
# What the clients saw
# ---------------------------------------------------------------------------
my @calls;
for my $name (sort keys %client)
{
	for my $line (split /\n/, slurp_file("$base/client-$name.txt"))
	{
		my ($t0, $t1, $port, $st_t, $st_l) = split / /, $line;
		push @calls, { client => $name, t0 => $t0, t1 => $t1, port => $port,
			t => $st_t // '', l => $st_l // '' };
	}
}
@calls = sort { $a->{t1} <=> $b->{t1} } @calls;
my %answered = map { $_ => 1 } qw(200 401 403 429);
my @answers = grep { $answered{ $_->{t} } } @calls;
my %on = map { my $p = $port{$_}; $_ => scalar(grep { $_->{port} eq $p } @answers) } qw(a b);
note(sprintf('%d calls, %d answered (a %d, b %d), %d errors, %d 503 stale',
	scalar(@calls), scalar(@answers), $on{a}, $on{b},
	scalar(grep { $_->{port} eq 'error' } @calls), scalar(grep { $_->{t} eq '503' } @calls)));
ok((grep { $_->{port} eq $port{a} && $_->{t1} < $t_kill } @answers), 'a answered before the kill');
ok((grep { $_->{port} eq $port{b} && $_->{t1} < $t_kill } @answers), 'b answered before the kill');
ok((grep { $_->{port} eq $port{b} && $_->{t1} > $t_promoted } @answers), 'b answered after its promotion');
ok( (grep { $_->{port} eq $port{a} && $_->{t1} > $t_rejoined } @answers),
	'the standby-first client verifies on a again once it rejoined');

# (1) the longest time without an answer, from the kill on
my ($gap, $prev) = (0, $t_kill);
for my $c (grep { $_->{t1} >= $t_kill } @answers)
{
	$gap = $c->{t1} - $prev if $c->{t1} - $prev > $gap;
	$prev = $c->{t1};
}
$gap = $t_end - $prev if $t_end - $prev > $gap;
diag(sprintf('automatic failover: longest time without a verification answer %.2f s '
	  . '(promotion %.1f s after the kill)', $gap, $t_promoted - $t_kill));
# for bench/replicas.sh failover: one line per run
append_to_file($ENV{PIXL_FAILOVER_REPORT},
	sprintf("gap_s=%.2f promoted_s=%.1f rejoined_s=%.1f calls=%d answered=%d stale_503=%d failed=%d\n",
		$gap, $t_promoted - $t_kill, $t_rejoined - $t_restart, scalar(@calls), scalar(@answers),
		scalar(grep { $_->{t} eq '503' } @calls), scalar(grep { $_->{port} eq 'error' } @calls)))
  if $ENV{PIXL_FAILOVER_REPORT};
cmp_ok($gap, '<', 30, 'verification answered again within 30 s of the kill');

# (3) the limited token (20/min, 10 per node): the clients' clocks stamp
# after the server admitted, so a 59.5 s window of answers lies inside a
# 60 s window of admissions
sub most_in_a_minute
{
	my @t = @_;
	my $worst = 0;
	for my $i (0 .. $#t)
	{
		my $n = grep { $_ >= $t[$i] && $_ < $t[$i] + 59.5 } @t;
		$worst = $n if $n > $worst;
	}
	return $worst;
}
my @admitted = grep { $_->{l} eq '200' } @calls;
note('limited token: 200s at ' . join(' ', map {
	sprintf('%.1f(%s)', $_->{t1} - $t_kill, $_->{port} eq $port{a} ? 'a' : 'b') } @admitted)
	  . ' (s after the kill)');
my %most = (
	b => most_in_a_minute(map { $_->{t1} } grep { $_->{port} eq $port{b} } @admitted),
	a_before => most_in_a_minute(map { $_->{t1} } grep { $_->{port} eq $port{a} && $_->{t1} <= $t_kill } @admitted),
	a_after => most_in_a_minute(map { $_->{t1} } grep { $_->{port} eq $port{a} && $_->{t1} > $t_kill } @admitted),
	all => most_in_a_minute(map { $_->{t1} } @admitted));
cmp_ok($most{b}, '<=', 10, "b, standby then promoted, admitted at most its share in a minute ($most{b})");
cmp_ok($most{a_before}, '<=', 10, "a before the kill: at most its share ($most{a_before})");
cmp_ok($most{a_after}, '<=', 10, "a after it rejoined: at most its share ($most{a_after})");
cmp_ok($most{all}, '<=', 30, "the cluster: at most the limit and a's share again in a minute ($most{all})");
ok( (grep { $_->{port} eq $port{a} && $_->{t1} < $t_kill } @admitted)
	  && (grep { $_->{port} eq $port{b} && $_->{t1} < $t_kill } @admitted),
	'the limited token was admitted on both nodes before the kill');
if ($rejoin eq 'no rewind required')
{
	# a's data directory came back as it was: its crash recovery start
	# starts the windows full, and the clean stop before pg_rewind hands
	# that minute on to the start as a secondary
	cmp_ok($most{all}, '<=', 20,
		"limit 20/min across the failover (a came back unrewound): at most $most{all} admitted in a minute");
}
else
{
	# rewound (pg_rewind removes pg_stat_tmp/'s files) or made again by
	# pg_basebackup: a's limiter starts empty and may admit a's share (10)
	# again within the minute of its crash, the bound docs/operations.md
	# states for this way back; never more
	cmp_ok($most{all}, '<=', 30,
		"limit 20/min across the failover (a came back by $rejoin, its windows empty): at most $most{all} admitted in a minute, within the stated 20 + a's share");
}

# (4) usage on the new primary once a shipped (a verifies as node 1)
sub counted
{
	my ($key) = @_;
	return scalar(grep { $_->{$key} eq '200' || $_->{$key} eq '429' } @calls);
}
# what a answered in its last 3 s before the kill: counts that may not have
# been folded yet (the fold interval is 100 ms; 3 s leaves room for a
# loaded machine's worker)
# all a answered before the kill: when pg_rewind (or pg_basebackup) brings
# a back, the folds a committed that b had not received when a died are
# discarded with a's diverging WAL, whenever a committed them
sub a_before_kill
{
	my ($key) = @_;
	return scalar(grep {
		$_->{port} eq $port{a} && $_->{t1} <= $t_kill
		  && ($_->{$key} eq '200' || $_->{$key} eq '429')
	} @calls);
}
sub at_risk
{
	my ($key) = @_;
	return scalar(grep {
		$_->{port} eq $port{a} && $_->{t1} <= $t_kill && $_->{t1} > $t_kill - 3
		  && ($_->{$key} eq '200' || $_->{$key} eq '429')
	} @calls);
}
my %seen = (t => counted('t'), l => counted('l'));
my %tok = (t => $tok_t, l => $tok_l);
my $usage_sql = sub {
	my ($k) = @_;
	return "SELECT coalesce(sum(requests), 0) FROM pixl_usage_hourly WHERE token_id = '$tok{$k}'";
};
my %usage;
poll(sub {
		%usage = map { $_ => q_ok(conninfo('b'), $usage_sql->($_)) } qw(t l);
		$usage{t} == $seen{t} && $usage{l} == $seen{l};
	}, 20);
# the totals no longer move: a shipped all it had
my %again;
poll(sub {
		sleep(1);
		%again = map { $_ => q_ok(conninfo('b'), $usage_sql->($_)) } qw(t l);
		my $same = $again{t} == $usage{t} && $again{l} == $usage{l};
		%usage = %again;
		$same;
	}, 20);
for my $k (qw(t l))
{
	my $lost = $seen{$k} - $usage{$k};
	note("token $k: clients saw $seen{$k} counted answers, the new primary counts $usage{$k}, "
		  . "lost $lost (a answered " . at_risk($k) . ' in its last 3 s)');
	cmp_ok($usage{$k}, '<=', $seen{$k}, "token $k: nothing counted twice ($usage{$k} <= $seen{$k})");
	if ($rejoin eq 'no rewind required')
	{
		# everything a committed had reached b: only a's unfolded counts
		cmp_ok($lost, '<=', at_risk($k),
			"token $k: lost at most what a answered in its last 3 s before the kill");
	}
	else
	{
		# b's answers all counted; a's loss is bounded by what it answered
		cmp_ok($lost, '<=', a_before_kill($k),
			"token $k: lost at most what a answered before the kill (a came back by $rejoin, which discards what b had not received)");
	}
}
is( q_ok(conninfo('b'),
		"SELECT count(*) = count(DISTINCT request_id) FROM pixl_usage_events
		  WHERE token_id IN ('$tok_t', '$tok_l')"),
	't', 'raw rows: every request id once');
is( q_ok(conninfo('b'),
		"SELECT string_agg(node_id::text, ',' ORDER BY node_id) FROM pixl_replica_nodes
		  WHERE last_seq >= 1"),
	'1', 'the new primary registers node 1 (a now); its own id 2, under which it shipped to a, is forgotten');
my $a_state;
poll(sub {
		$a_state = q_ok(conninfo('a'), "SELECT worker_state FROM pixl_stats() WHERE datname = 'postgres'");
		$a_state eq 'shipping';
	}, 60);
is($a_state, 'shipping', 'a ships its usage to b')
  or diag(q_ok(conninfo('a'), "SELECT last_error FROM pixl_stats() WHERE datname = 'postgres'"));

done_testing();
