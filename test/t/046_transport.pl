# Credentials over plain HTTP (transport => 'http'): the usage worker makes
# the revocation durable, exactly once, and it survives a restart; a
# revocation still queued at a clean shutdown comes back with the queue
# file, its node-local mark with it; pixltoken.insecure_revocations_per_minute
# caps the exposures per minute, a store at most a quarter of them (the
# 403 still answered, the token left alone, counted); the 403 leaves no
# pending entry for a report that cannot come; and after an update from
# 1.1 every earlier call form still resolves to the function it did, the
# eighth argument to the new one.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = pixl_node('transport',
	conf => "pixltoken.insecure_revocations_per_minute = 4\npixltoken.response_wait = '100ms'\n",
	extension => 'postgres');
wait_serving($node, 'postgres');

sub verify
{
	my ($secret, $transport) = @_;
	my $t = defined $transport ? "'$transport'" : 'NULL';
	return $node->safe_psql('postgres',
		"SELECT status || ' ' || reason FROM pixl_verify_request('$secret', 'products:read', NULL, 'GET', '/p', NULL, 1, $t)");
}

sub status
{
	my ($id) = @_;
	return $node->safe_psql('postgres', "SELECT status FROM pixl_tokens WHERE token_id = '$id'");
}

sub exposes
{
	my ($id) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) || ' ' || coalesce(string_agg(detail->>'source' || '/' || (detail->>'action'), ','), '-')
		   FROM pixl_audit WHERE token_id = '$id' AND action = 'expose'");
}

# ---------------------------------------------------------------------------
# (a) the worker revokes; durable across a restart; one audit row
# ---------------------------------------------------------------------------
my ($id1, $s1) = new_token($node, 'postgres', 'tr-a');
is(verify($s1, 'http'), '403 insecure_transport', 'over plain HTTP: 403 insecure_transport');
is(verify($s1, 'https'), '401 exposed', 'the next secure use on this node: 401 exposed at once');
wait_is($node, 'postgres', "SELECT status FROM pixl_tokens WHERE token_id = '$id1'",
	'exposed', 'the worker revoked it (exposed)');
is(exposes($id1), '1 insecure_transport/revoke', 'one expose audit row, source insecure_transport');
$node->restart;
wait_serving($node, 'postgres', 'worker serves again after the restart');
is(status($id1), 'exposed', 'still exposed after the restart');
is(verify($s1, 'https'), '401 exposed', 'and answered 401 exposed over HTTPS');
is(verify($s1, 'http'), '403 insecure_transport', 'and 403 over plain HTTP, as every token');
is(exposes($id1), '1 insecure_transport/revoke', 'still exactly one audit row');

# ---------------------------------------------------------------------------
# (b) a revocation still queued at a clean shutdown: back from the queue
# file, with its mark; made durable once
# ---------------------------------------------------------------------------
my ($id2, $s2) = new_token($node, 'postgres', 'tr-a', plan => undef, name => 'queued');
$node->safe_psql('postgres',
	"ALTER SYSTEM SET pixltoken.flush_interval = 60000; SELECT pg_reload_conf()");
# the worker's current wait (100 ms) ends and the next one is a minute long
sleep 2;
is(verify($s2, 'http'), '403 insecure_transport', 'queued: 403 over plain HTTP');
is(status($id2), 'active', 'not written yet (the worker waits a minute)');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET pixltoken.flush_interval');
# restarted without room for the worker: the record waits in the ring
$node->stop;
$node->append_conf('postgresql.conf', "max_worker_processes = 0\n");
my $log_offset = -s $node->logfile;
$node->start;
ok($node->log_contains(qr/loaded \d+ queued usage records of database "postgres"/, $log_offset),
	'the queued record came back from the queue file');
is(verify($s2, 'https'), '401 exposed', 'after the restart: 401 exposed over HTTPS');
is($node->safe_psql('postgres', "SELECT marked FROM pixl_transport_stats()")
	  . ' ' . status($id2), '1 active', 'from the mark the record brought back; not written (no worker)');
$node->stop;
$node->append_conf('postgresql.conf', "max_worker_processes = 16\n");
$node->start;
wait_is($node, 'postgres', "SELECT status FROM pixl_tokens WHERE token_id = '$id2'",
	'exposed', 'the worker revoked it after the restart');
is(exposes($id2), '1 insecure_transport/revoke', 'exactly one audit row');
wait_is($node, 'postgres', 'SELECT marked FROM pixl_transport_stats()', '0',
	'no token marked once the revocations are written');

# ---------------------------------------------------------------------------
# (c) the cap: 4 per minute on this node, a store at most a quarter (1)
# ---------------------------------------------------------------------------
# three tokens each of stores c1 and c2, one each of c3, c4 and c5, in
# that order: c1 and c2 get one each, c3 and c4 one each (the node's 4),
# c5 none
my @cap;
for my $store (qw(c1 c1 c1 c2 c2 c2 c3 c4 c5))
{
	push @cap, [ new_token($node, 'postgres', "tr-$store", name => "cap $store " . scalar(@cap)), $store ];
}
# all nine within one clock minute of the database
$node->poll_query_until('postgres', 'SELECT extract(second FROM clock_timestamp()) < 40')
  or die 'no minute start';
my ($rev0, $cap0) = split / /,
  $node->safe_psql('postgres', q{SELECT revocations || ' ' || capped FROM pixl_transport_stats()});
my $minute = $node->safe_psql('postgres', "SELECT date_trunc('minute', clock_timestamp())");
my $answers = $node->safe_psql('postgres', join("\n",
		map { "SELECT status || ' ' || reason FROM pixl_verify_request('$_->[1]', '*', NULL, NULL, NULL, NULL, 1, 'http');" } @cap));
is($answers, join("\n", ('403 insecure_transport') x 9), 'nine tokens over plain HTTP: nine 403s');
is($node->safe_psql('postgres', "SELECT revocations - $rev0 || ' ' || capped - $cap0 FROM pixl_transport_stats()"),
	'4 5', 'four revocations handed over, five capped');
my $ids = join(', ', map { "'$_->[0]'" } @cap);
wait_is($node, 'postgres', "SELECT string_agg(store_id || '=' || n, ' ' ORDER BY store_id) FROM (
		SELECT store_id, count(*) FILTER (WHERE status = 'exposed') AS n
		  FROM pixl_tokens WHERE token_id IN ($ids) GROUP BY store_id) s",
	'tr-c1=1 tr-c2=1 tr-c3=1 tr-c4=1 tr-c5=0', 'one revoked per store until the node\'s four; c5 none');
wait_is($node, 'postgres', 'SELECT marked FROM pixl_transport_stats()', '0', 'nothing marked');
my @capped = grep { status($_->[0]) eq 'active' } @cap;
is(scalar(@capped), 5, 'the five capped tokens');
is(verify($capped[0][1], 'https'), '200 ok', 'a capped token still verifies over HTTPS');
is(verify($capped[0][1], 'http'), '403 insecure_transport', 'and gets the same 403 over plain HTTP');
# the next minute has its own budget
$node->poll_query_until('postgres', "SELECT date_trunc('minute', clock_timestamp()) > '$minute'")
  or die 'the minute did not pass';
is(verify($capped[1][1], 'http'), '403 insecure_transport', 'next minute: 403');
wait_is($node, 'postgres', "SELECT status FROM pixl_tokens WHERE token_id = '$capped[1][0]'",
	'exposed', 'and, within the next minute\'s cap, revoked');
is($node->safe_psql('postgres', "SELECT count(*) FROM pixl_audit WHERE action = 'expose' AND token_id IN ($ids)"),
	'5', 'one audit row per revoked token');

# ---------------------------------------------------------------------------
# (e) the 403 of plain HTTP hands out no request id, so it leaves no
# pending entry waiting for a report (pixltoken.response_wait is 100 ms
# here: a secure call without a report is written out as a pending row)
# ---------------------------------------------------------------------------
my ($id_f, $s_f) = new_token($node, 'postgres', 'tr-f');
my ($id_e, $s_e) = new_token($node, 'postgres', 'tr-e');
is(verify($s_f, 'http') . ', ' . verify($s_f, 'http'), '403 insecure_transport, 403 insecure_transport',
	'a token over plain HTTP, twice');
is(verify($s_e, 'https'), '200 ok', 'then another over HTTPS, never reported');
wait_is($node, 'postgres', "SELECT count(*) FROM pixl_usage_pending_responses WHERE token_id = '$id_e'",
	'1', 'the secure call waits for its report as a pending row');
is($node->safe_psql('postgres', "SELECT count(*) FROM pixl_usage_pending_responses WHERE token_id = '$id_f'"),
	'0', 'the 403s of plain HTTP left none');

# ---------------------------------------------------------------------------
# (d) 1.1 -> 1.2: every call form resolves as before; the new one to the
# eighth-argument overload
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE old');
$node->safe_psql('old', "CREATE EXTENSION pixltoken VERSION '1.1'");
my %forms = (
	'token_1' => "pixl_verify_token('x')",
	'token_6' => "pixl_verify_token('x', 'orders:read', 's', 'GET', '/x', '192.0.2.1')",
	'request_2' => "pixl_verify_request('x', '*')",
	'request_named' => "pixl_verify_request(token => 'x', scope => '*', ip => NULL)",
	'http_6' => "pixl_verify_token_http('x', '*', NULL, NULL, NULL, NULL)",
	'http_named' => "pixl_verify_token_http(token => 'x', scope => '*', endpoint => '/x')");
my $resolved = sub {
	my ($db, $form) = @_;
	# a view binds the call to one function: pg_depend names it
	return $node->safe_psql($db, qq{
		BEGIN;
		CREATE TEMP VIEW v AS SELECT * FROM $form;
		SELECT d.refobjid::regprocedure FROM pg_depend d JOIN pg_rewrite r ON d.objid = r.oid
		 WHERE r.ev_class = 'v'::regclass AND d.refclassid = 'pg_proc'::regclass;
		ROLLBACK;});
};
my %before = map { $_ => $resolved->('old', $forms{$_}) } keys %forms;
$node->safe_psql('old', 'ALTER EXTENSION pixltoken UPDATE');
for my $k (sort keys %forms)
{
	is($resolved->('old', $forms{$k}), $before{$k}, "after the update $forms{$k} resolves to $before{$k}");
}
is($resolved->('old', "pixl_verify_request('x', '*', NULL, NULL, NULL, NULL, 2)"),
	'pixl_verify_request(text,text,text,text,text,inet,integer)', 'seven arguments: the cost overload');
is($resolved->('old', "pixl_verify_request(token => 'x', scope => '*', store_id => NULL, method => NULL, endpoint => NULL, ip => NULL, cost => 1, transport => 'http')"),
	'pixl_verify_request(text,text,text,text,text,inet,integer,text)', 'named, with transport: the transport overload');
is($resolved->('old', "pixl_verify_token_http('x', '*', NULL, NULL, NULL, NULL, 1, 'https')"),
	'pixl_verify_token_http(text,text,text,text,text,inet,integer,text)', 'eight positional: the transport overload');
is($node->safe_psql('old', q{
	SELECT column_default FROM information_schema.columns
	 WHERE table_name = 'pixl_stores' AND column_name = 'insecure_transport_action'}),
	q{'revoke'::text}, 'the store setting came with the update, revoke by default');

$node->stop;
done_testing();
