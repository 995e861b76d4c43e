# Copyright: the pixltoken authors.
#
# An app server written against 1.0 keeps serving through ALTER EXTENSION
# pixltoken UPDATE, with no restart, and its reports keep landing.
#
# test/helpers/live_app.py holds 1.0-style connections open from before the
# update to the end: prepared and not, straight and through PgBouncer
# (transaction pooling), single and batched reports, and a NULL scope.
# (1) phase 1 under 1.0; (2) ALTER EXTENSION pixltoken UPDATE to the
# current version (1.0 -> 1.1 -> 1.2 in one command), phase 2, where 1.1-style
# calls join in; (3) a simulated 1.3 that adds a column at the end of
# pixl_verify_request, phase 3: a 1.1 statement that names its columns keeps
# working, "SELECT *" does not (which is why README says to name them).  Every call after the
# update is checked, and the reports are found on their raw rows and in the
# rollups.
use strict;
use warnings;

use File::Basename;
use File::Spec;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade_live');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pixltoken'
pixltoken.database = 'live'
pixltoken.flush_interval = '100ms'
pixltoken.fold_interval = '100ms'
pixltoken.response_wait = '100ms'
# every report is followed to its raw row
pixltoken.request_log = 'all'
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE live');

# 1.0, with README 1.0's app-server grants
$node->safe_psql('live', q{
	CREATE EXTENSION pixltoken VERSION '1.0';
	CREATE ROLE app LOGIN;
	GRANT EXECUTE ON FUNCTION pixl_verify_token(text, text, text, text, text, inet),
		pixl_log_response(bigint, int, double precision) TO app;
	SELECT pixl_set_store_plan('live-store', 'pro');
});
my $token = $node->safe_psql('live', q{
	SELECT token FROM pixl_create_token('live-store', 'live app', ARRAY['orders:read'], rate_limit => 600)});
my $token_id = $node->safe_psql('live', q{SELECT token_id FROM pixl_tokens WHERE name = 'live app'});

# PgBouncer 1.18 in front, transaction pooling, run as this (test) user
my $work = PostgreSQL::Test::Utils::tempdir();
my $bport = PostgreSQL::Test::Cluster::get_free_port();
my $host = $node->host;
my $pgport = $node->port;
open my $ini, '>', "$work/pgbouncer.ini" or die $!;
print $ini qq{[databases]
live = host=$host port=$pgport dbname=live

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = transaction
default_pool_size = 2
ignore_startup_parameters = extra_float_digits,options
};
close $ini;
open my $users, '>', "$work/userlist.txt" or die $!;
print $users qq{"app" ""\n};
close $users;
my ($bout, $berr) = ('', '');
my $bouncer = IPC::Run::start([ 'pgbouncer', "$work/pgbouncer.ini" ],
	'>', \$bout, '2>', \$berr);
my $ready = 0;
for (1 .. 100)
{
	my ($ok) = eval {
		PostgreSQL::Test::Utils::system_log('pg_isready', '-q', '-h', '127.0.0.1',
			'-p', $bport, '-d', 'live') == 0;
	};
	if ($ok) { $ready = 1; last; }
	select undef, undef, undef, 0.1;
}
ok($ready, 'PgBouncer is up');

# the app server
my $client = File::Spec->catfile(dirname(__FILE__), '..', 'helpers', 'live_app.py');
my $direct = "host=$host port=$pgport dbname=live user=app";
my $pooled = "host=127.0.0.1 port=$bport dbname=live user=app";
my ($aout, $aerr) = ('', '');
my $app = IPC::Run::start([ 'python3', $client, $direct, $pooled, $work, $token, 3 ],
	'>', \$aout, '2>', \$aerr);

sub wait_file
{
	my ($file) = @_;
	for (1 .. 1200)
	{
		return 1 if -e "$work/$file";
		$app->pump_nb;
		die "the app server ended early: $aerr" unless $app->pumpable || -e "$work/$file";
		select undef, undef, undef, 0.05;
	}
	die "no $file: $aerr";
}

wait_file('phase1.done');
# under 1.0 a report lands in the rollups once the worker has applied it:
# the phase's reports (all but the batch held for after the update) first
ok( $node->poll_query_until('live', qq{
		SELECT sum(response_ms_count) = 27 FROM pixl_usage_hourly
		 WHERE token_id = '$token_id' AND endpoint LIKE '/p1/%'}),
	'1.0: the reports of phase 1 are in the rollups');
# (2) the update, with the app's connections open and idle between calls
$node->safe_psql('live', 'ALTER EXTENSION pixltoken UPDATE');
is($node->safe_psql('live', "SELECT extversion FROM pg_extension WHERE extname = 'pixltoken'"),
	'1.2', 'updated to 1.2 (through 1.1) under a running app server');
# the README's 1.1 grant for the 1.1 connection came with the update
is($node->safe_psql('live', q{
	SELECT coalesce(has_function_privilege('app', to_regprocedure('pixl_verify_request(text, text, text, text, text, inet)'), 'EXECUTE')
	   AND has_function_privilege('app', 'pixl_log_response(text, int, double precision)', 'EXECUTE'), false)}),
	't', '1.0 grants carried over to the 1.1 functions, through 1.2');
open my $go1, '>', "$work/go1" or die $!;
close $go1;

wait_file('phase2.done');
# (3) a simulated 1.3: one column more at the end of pixl_verify_request
my ($sim_ret, $sim_out, $sim_err) = $node->psql('live', q{
	ALTER FUNCTION pixl_verify_request(text, text, text, text, text, inet) RENAME TO pixl_verify_request_1_2;
	CREATE FUNCTION pixl_verify_request(token text, scope text DEFAULT NULL, store_id text DEFAULT NULL,
										method text DEFAULT NULL, endpoint text DEFAULT NULL,
										ip inet DEFAULT NULL)
		RETURNS TABLE (status int, reason text, token_id text, store_id text,
					   mode text, scopes text[], rate_limit int, remaining int,
					   reset_at timestamptz, retry_after_ms int, request_id text,
					   metadata jsonb, previous_secret_used boolean,
					   staleness_ms bigint, added_in_1_3 int)
		LANGUAGE sql VOLATILE
		AS $$ SELECT v.*, 13 FROM pixl_verify_request_1_2($1, $2, $3, $4, $5, $6) v $$;
	GRANT EXECUTE ON FUNCTION pixl_verify_request(text, text, text, text, text, inet),
		pixl_verify_request_1_2(text, text, text, text, text, inet) TO app;
}, on_error_stop => 1);
is($sim_ret . $sim_err, '0', 'a simulated 1.3 adds a column at the end of pixl_verify_request');
open my $go2, '>', "$work/go2" or die $!;
close $go2;

$app->finish or die "the app server failed: $aerr";
$bouncer->kill_kill;
my $results = decode_json(slurp_file("$work/results.json"));

# ---------------------------------------------------------------------------
# every call, phase by phase
# ---------------------------------------------------------------------------
my %tally;
for my $r (@$results)
{
	my $what = defined $r->{error} ? "error $r->{error}" : $r->{status};
	$tally{"$r->{phase} $r->{conn} $r->{call}"}{$what}++;
}
my $summary = join "\n", map {
	my $k = $_;
	"$k: " . join(', ', map { "$_ x$tally{$k}{$_}" } sort keys %{ $tally{$k} })
} sort keys %tally;
my $expected = '';
for my $phase (1 .. 3)
{
	for my $conn (qw(bouncer plain prepared))
	{
		# batches: two of the phase's rounds, and the ids held from the
		# last round of the phase before (after phase 3: reported in 3)
		my $batches = $phase == 1 ? 2 : 3;
		$batches++ if $phase == 3;
		$expected .= "$phase $conn batch: ok/3 x$batches\n";
		$expected .= "$phase $conn report: ok x3\n";
		$expected .= "$phase $conn verify: 200/11 x12\n";
		$expected .= "$phase $conn verify_null_scope: 200/11 x3\n";
	}
	next if $phase == 1;
	$expected .= "$phase v11 report: ok x3\n";
	$expected .= "$phase v11 verify: 200/3 x3\n";
	$expected .= $phase == 2
	  ? "$phase v11 verify_star: 200/14 x3\n"
	  : "$phase v11 verify_star: error 0A000 x3\n";
}
chomp $expected;
is($summary, $expected,
	'every 1.0-style call succeeds before, across and after the update (prepared, plain, PgBouncer; '
	  . 'single and batched reports; NULL scope still "any"); 1.1 with a column list survives a 1.3 '
	  . 'that adds a column, SELECT * does not');

# ---------------------------------------------------------------------------
# the reports landed: on their raw rows and in the rollups
# ---------------------------------------------------------------------------
my %reports;    # endpoint => reports sent
for my $r (@$results)
{
	next if defined $r->{error};
	if ($r->{call} eq 'report') { $reports{ $r->{endpoint} }++; }
	elsif ($r->{call} eq 'batch') { $reports{ $r->{endpoint} } += 3; }
}
my $sent = 0;
$sent += $_ for values %reports;
is($sent, 3 * 3 * 12 + 2 * 3, 'reports sent: 12 per connection and phase, 3 per 1.1 phase');
ok( $node->poll_query_until('live', qq{
		SELECT count(*) = $sent FROM pixl_usage_events
		 WHERE token_id = '$token_id' AND response_ms IS NOT NULL}),
	"every report is on its raw row ($sent)")
  or diag($node->safe_psql('live', qq{
		SELECT endpoint, count(*), count(response_ms) FROM pixl_usage_events
		 WHERE token_id = '$token_id' GROUP BY 1 ORDER BY 1}));

# rollups: every verification is counted, and every report of a
# verification made after the update is in the response figures; the
# reports made after the update of verifications made before it (the
# batch held over from phase 1's last round) reach their raw rows only
my @endpoints = sort((grep { !/v11-star/ } keys %reports), '/p1/null-scope', '/p2/null-scope',
	'/p3/null-scope', '/p2/v11-star');
my $want = join "\n", map {
	my $ep = $_;
	my $requests = $ep =~ /null-scope/ ? 9 : $ep =~ /v11/ ? 3 : 12;
	my $responses = $reports{$ep} // 0;
	# the batch held over from phase 1, reported in phase 2
	$responses -= 3 if $ep =~ m{^/p1/} && $ep !~ /null-scope/;
	"$ep|$requests|$responses"
} @endpoints;
ok( $node->poll_query_until('live', qq{
		SELECT string_agg(endpoint || '|' || requests || '|' || ms, E'\\n' ORDER BY endpoint COLLATE "C") = \$x\$$want\$x\$
		  FROM (SELECT endpoint, sum(requests) AS requests, sum(response_ms_count) AS ms
				  FROM pixl_usage_hourly WHERE token_id = '$token_id' GROUP BY endpoint) h}),
	'rollups: every verification counted, every report after the update in the response figures')
  or diag("want\n$want\ngot\n" . $node->safe_psql('live', qq{
		SELECT endpoint || '|' || sum(requests) || '|' || sum(response_ms_count)
		  FROM pixl_usage_hourly WHERE token_id = '$token_id' GROUP BY endpoint ORDER BY endpoint COLLATE "C"}));

$node->stop;
done_testing();
