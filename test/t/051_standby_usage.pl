# Copyright: the pixltoken authors.
#
# Usage of verifications on hot standbys reaches the primary exactly once
# (the shipping protocol: the standby's shipper sends batches, the primary's
# ingest applies each once).  A primary and a streaming standby (node_id 1):
#  (1) 300 verifications on the standby, over several sessions, methods and
#      endpoints, land on the primary exactly as if verified there: rollups,
#      raw rows (with the standby's request ids), last_used_at, the
#      scopes the calls exercised;
#      pixl_stats() on the standby says 'shipping' with what the primary
#      acknowledged; pixl_replica_nodes knows the standby;
#  (2) 429s on the standby are counted exactly, their raw rows sampled;
#  (3) pixl_log_response() on the standby reaches the primary's raw row,
#      and its rollups once (through the standby's counts);
#      a batch counts as acknowledged only once the standby replayed the
#      primary's commit of it;
#  (4) the shipper's session on the primary killed again and again: exact;
#  (5) every batch sent twice (pixltoken.ship_test_resend): the second is
#      a duplicate that changes nothing;
#  (6) a primary restart while the standby verifies: 'waiting for
#      primary', then exact;
#  (8) a second standby (another base backup) with the same node id is
#      refused with PX065 and applies nothing; pixl_replica_reset_node()
#      is for replication operators only (not platform admins) and lets a
#      rebuilt standby take the id;
#      node id 0 ships nothing ('no node id');
#  (7) standby restarts with the primary down: a clean restart keeps both
#      the spooled batch and what was still in shared memory; kill -9 of
#      its postmaster keeps the spooled batch (applied once when the
#      primary is back) and loses exactly what was in shared memory,
#      which the standby counts (counts_lost);
#  (9) promotion with a spooled, unacknowledged batch: the promoted node
#      applies it to its own tables, once, forgets its own id's
#      registration, then writes its own usage.
# (8) runs before (7): after (7)'s crash the standby's rate-limit windows
# start full for a minute, so (9) counts whatever status it gets.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test qw(pixl_node pixl_standby err wait_is);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# track_functions: case (5) counts the calls of pixl_ingest_usage.  The
# batches, bytea parameters, are left out of the statement log.
my $primary = pixl_node('primary', init => { allows_streaming => 1 }, extension => 'postgres', conf => q{
# these tests follow every call through the raw-row pipeline
pixltoken.request_log = 'all'
track_functions = 'all'
wal_keep_size = '256MB'
log_parameter_max_length = 0
max_worker_processes = 16
});
$primary->safe_psql('postgres', q{
SELECT pixl_set_store_plan('store-ship', 'enterprise');
});

# A standby of the primary: streaming, its own node id and name.
sub new_standby
{
	my ($name, $backup, $node_id) = @_;
	return pixl_standby($primary, $name, backup => $backup, conf => qq{
pixltoken.node_id = $node_id
cluster_name = '$name'
wal_receiver_timeout = '2s'
wal_retrieve_retry_interval = '200ms'
});
}

my $standby = new_standby('standby1', 'base1', 1);

# (token_id, secret) of a new token of store-ship (its plan set above)
sub new_token
{
	my ($name, $limit) = @_;
	return PixlToken::Test::new_token($primary, 'postgres', 'store-ship', plan => undef,
		name => $name, rate_limit => $limit);
}

sub sql_str
{
	my ($v) = @_;
	return defined $v ? "'$v'" : 'NULL';
}

# $n verifications in one statement (one session); "<200s> <429s>"
sub verify
{
	my ($node, $secret, $n, $method, $endpoint) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE v.status = 200) || ' ' || count(*) FILTER (WHERE v.status = 429)
		   FROM generate_series(1, $n) g
		  CROSS JOIN LATERAL pixl_verify_request(CASE WHEN g > 0 THEN '$secret' END, 'products:read',
											   NULL, " . sql_str($method) . ', ' . sql_str($endpoint) . ') v');
}

# "requests errors rate_limited raw_rows distinct_request_ids" of a token
sub totals_sql
{
	my ($tok) = @_;
	return "SELECT concat_ws(' ',
		(SELECT coalesce(sum(requests), 0) FROM pixl_usage_hourly WHERE token_id = '$tok'),
		(SELECT coalesce(sum(errors), 0) FROM pixl_usage_hourly WHERE token_id = '$tok'),
		(SELECT coalesce(sum(rate_limited), 0) FROM pixl_usage_hourly WHERE token_id = '$tok'),
		(SELECT count(*) FROM pixl_usage_events WHERE token_id = '$tok'),
		(SELECT count(DISTINCT request_id) FROM pixl_usage_events WHERE token_id = '$tok'))";
}

sub stats_sql
{
	my ($cols) = @_;
	return "SELECT concat_ws(' ', $cols) FROM pixl_stats() WHERE datname = 'postgres'";
}

sub node_stat
{
	my ($node, $cols) = @_;
	return $node->safe_psql('postgres', stats_sql($cols));
}

sub last_seq
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		'SELECT last_seq FROM pixl_replica_nodes WHERE node_id = 1');
}

# ---------------------------------------------------------------------------
# (1) 300 verifications on the standby reach the primary exactly
# ---------------------------------------------------------------------------
my ($tok1, $sec1) = new_token('one', 1000);
$primary->wait_for_catchup($standby, 'replay');
is($standby->safe_psql('postgres', 'SHOW pixltoken.node_id'), '1',
	'the standby has node id 1');

is(verify($standby, $sec1, 100, 'GET', '/orders'), '100 0', '100 GET /orders on the standby');
is(verify($standby, $sec1, 100, 'POST', '/orders'), '100 0', '100 POST /orders in another session');
is(verify($standby, $sec1, 50), '50 0', '50 without method or endpoint in another');
{
	my $bg = $standby->background_psql('postgres');
	my $ok = 0;
	for (1 .. 5)
	{
		$ok += $bg->query_safe(
			"SELECT count(*) FILTER (WHERE v.status = 200) FROM generate_series(1, 10) g
			  CROSS JOIN LATERAL pixl_verify_request(CASE WHEN g > 0 THEN '$sec1' END, 'products:read', NULL, 'GET', '/products') v");
	}
	$bg->quit;
	is($ok, 50, '50 GET /products in five statements of a fourth session');
}

wait_is($primary, 'postgres', totals_sql($tok1), '300 0 0 300 300',
	'primary: 300 requests in the rollups, 300 raw rows with distinct request ids');
is( $primary->safe_psql('postgres',
		"SELECT count(*) FROM pixl_usage_events WHERE token_id = '$tok1' AND request_id % 16 = 1"),
	'300', 'every raw row carries the standby\'s node id in its request id');
is( $primary->safe_psql('postgres',
		"SELECT string_agg(concat_ws('|', method, endpoint, requests), ',' ORDER BY method, endpoint)
		   FROM (SELECT method, endpoint, sum(requests) AS requests FROM pixl_usage_hourly
				  WHERE token_id = '$tok1' GROUP BY 1, 2) h"),
	'||50,GET|/orders|100,GET|/products|50,POST|/orders|100',
	'per method and endpoint, as verified');
is( $primary->safe_psql('postgres',
		"SELECT string_agg(concat_ws('|', coalesce(method, '-'), coalesce(endpoint, '-'), n), ',' ORDER BY method NULLS FIRST, endpoint)
		   FROM (SELECT method, endpoint, count(*) AS n FROM pixl_usage_events
				  WHERE token_id = '$tok1' AND status = 200 AND verify_status = 200 GROUP BY 1, 2) e"),
	'-|-|50,GET|/orders|100,GET|/products|50,POST|/orders|100',
	'raw rows likewise');
is( $primary->safe_psql('postgres',
		"SELECT concat_ws(' ', sum(cost), sum(charged)) FROM pixl_usage_hourly WHERE token_id = '$tok1'"),
	'300 0', 'the shipped counts carry cost (1 per call) and charged (no allowance: 0)');
is( $primary->safe_psql('postgres',
		"SELECT string_agg(DISTINCT scopes_used::text, ',') FROM pixl_usage_hourly WHERE token_id = '$tok1'"),
	'1', 'and the scope the calls exercised (products:read, bit 1) on every row');
is( $primary->safe_psql('postgres',
		"SELECT concat_ws(' ', exercised, unused, narrower_scopes) FROM pixl_token_scope_use('$tok1')"),
	'{products:read} {} {products:read}', 'pixl_token_scope_use on the primary: products:read exercised');
is( $primary->safe_psql('postgres',
		"SELECT last_used_at > now() - interval '1 minute' FROM pixl_token_activity WHERE token_id = '$tok1'"),
	't', 'the primary\'s last_used_at of the token is current');
is( $primary->safe_psql('postgres',
		"SELECT total_requests FROM pixl_usage_summary('$tok1', 'all')"),
	'300', 'pixl_usage_summary counts 300');
wait_is($standby, 'postgres', stats_sql('worker_state, events_flushed, counts_folded, events_queued'),
	'shipping 300 300 0',
	'standby pixl_stats: shipping, 300 events and 300 verifications acknowledged, none queued');
is(node_stat($standby, "coalesce(last_error, '(none)')"), '(none)', 'no shipping error');
is( $primary->safe_psql('postgres',
		'SELECT concat_ws(\' \', node_id, node_name, last_seq >= 1, share, incarnation > 0,
						  first_seen <= last_ack_at) FROM pixl_replica_nodes'),
	'1 standby1 t 1 t t',
	'pixl_replica_nodes: node 1, standby1, a batch applied');
is( $primary->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pixltoken shipper 1' AND datname = 'postgres'"),
	'1', 'the shipper\'s session on the primary is named after its node');
is( $primary->safe_psql('postgres', q{
	SELECT concat_ws(' ', p.prosecdef,
		has_function_privilege('public', p.oid, 'EXECUTE'),
		has_function_privilege('public', 'pixl_replica_reset_node(int)', 'EXECUTE'))
	  FROM pg_proc p WHERE p.proname = 'pixl_ingest_usage'}),
	't f f', 'pixl_ingest_usage is SECURITY DEFINER; neither it nor the reset is granted to PUBLIC');

# ---------------------------------------------------------------------------
# (2) 429s on the standby: counted exactly, raw rows sampled
# ---------------------------------------------------------------------------
my ($tok2, $sec2) = new_token('small', 2);
$primary->wait_for_catchup($standby, 'replay');
is(verify($standby, $sec2, 200, 'GET', '/hammer'), '2 198',
	'200 verifications of a limit-2 token on the standby: 2 admitted, 198 429s');
wait_is($primary, 'postgres',
	"SELECT concat_ws(' ', sum(requests), sum(errors), sum(rate_limited)) FROM pixl_usage_hourly WHERE token_id = '$tok2'",
	'200 198 198', 'primary: 200 requests, the 198 429s as errors and as rate_limited');
my $raw429 = $primary->safe_psql('postgres',
	"SELECT count(*) FROM pixl_usage_events WHERE token_id = '$tok2' AND status = 429");
is( $primary->safe_psql('postgres',
		"SELECT count(*) FROM pixl_usage_events WHERE token_id = '$tok2' AND status = 200"),
	'2', 'both 200s have their raw row');
cmp_ok($raw429, '>=', 1, "429s have sample raw rows ($raw429)");
cmp_ok( $raw429, '<=',
	1 + $primary->safe_psql('postgres',
		"SELECT ceil(extract(epoch FROM max(at) - min(at)))::int FROM pixl_usage_events WHERE token_id = '$tok2'"),
	'at most one per second');
wait_is($standby, 'postgres', stats_sql('events_flushed, counts_folded, events_sampled_out'),
	join(' ', 302 + $raw429, 500, 198 - $raw429),
	'standby pixl_stats: the raw rows and the 200 verifications acknowledged, the other 429s sampled out');

# ---------------------------------------------------------------------------
# (3) pixl_log_response on the standby updates the primary's raw row
# ---------------------------------------------------------------------------
my ($tok3, $sec3) = new_token('responses', 1000);
$primary->wait_for_catchup($standby, 'replay');
my $applied0 = node_stat($standby, 'responses_applied');
my $rid = $standby->safe_psql('postgres',
	"SELECT request_id FROM pixl_verify_request('$sec3', 'products:read', NULL, 'GET', '/late')");
wait_is($primary, 'postgres',
	"SELECT count(*) FROM pixl_usage_events WHERE token_id = '$tok3' AND endpoint = '/late'",
	'1', 'the standby\'s event reached the primary');
$standby->safe_psql('postgres', "SELECT pixl_log_response('$rid', 504, 250.5)");
# and one whose response follows at once (likely in the same batch)
$standby->safe_psql('postgres',
	"SELECT pixl_log_response(request_id, 201, 12.5) FROM pixl_verify_request('$sec3', 'products:read', NULL, 'POST', '/early')");
wait_is($primary, 'postgres',
	"SELECT string_agg(concat_ws(' ', endpoint, status, verify_status, response_ms), ',' ORDER BY endpoint)
	   FROM pixl_usage_events WHERE token_id = '$tok3'",
	'/early 201 200 12.5,/late 504 200 250.5',
	'primary: both raw rows carry the responses logged on the standby');
is( $primary->safe_psql('postgres',
		"SELECT string_agg(concat_ws('/', endpoint, errors, requests, response_ms_sum, response_ms_count), ',' ORDER BY endpoint)
		   FROM pixl_usage_hourly WHERE token_id = '$tok3'"),
	'/early/0/1/12.5/1,/late/1/1/250.5/1', 'and their rollups');
is( $primary->safe_psql('postgres',
		"SELECT string_agg(concat_ws('/', endpoint,
				latency::text = pixl_latency_add(NULL::pixl_latency, response_ms_sum)::text), ',' ORDER BY endpoint)
		   FROM pixl_usage_hourly WHERE token_id = '$tok3'"),
	'/early/t,/late/t', 'and their latency histograms, shipped with the counts');
wait_is($standby, 'postgres', stats_sql('responses_applied'), $applied0 + 2,
	'standby pixl_stats: two responses acknowledged');
# The primary takes a standby's responses only for the standby's own
# request ids (node bits): one for a request the primary verified is
# refused on the standby at once (PX067), and the row stays as it was.
my $rid0 = $primary->safe_psql('postgres',
	"SELECT request_id FROM pixl_verify_request('$sec3', 'products:read', NULL, 'GET', '/primary')");
wait_is($primary, 'postgres',
	"SELECT count(*) FROM pixl_usage_events WHERE token_id = '$tok3' AND endpoint = '/primary'",
	'1', 'the primary\'s own event is in');
$primary->wait_for_catchup($standby, 'replay');
like(err($standby, 'postgres', "SELECT pixl_log_response('$rid0', 500, 1)"), qr/PX067.*issued by node 0, not by this standby \(node 1\)/s,
	'standby: a response to another node\'s request id is refused (PX067)');
is( $primary->safe_psql('postgres',
		"SELECT concat_ws(' ', status, response_ms) FROM pixl_usage_events WHERE token_id = '$tok3' AND endpoint = '/primary'"),
	'200', 'the primary\'s row is untouched');
# A standby's request: its pending entry is on the standby, so a report on
# the primary is accepted and not counted; the one on the standby counts,
# once (a second is refused, PX068).
my $rid4 = $standby->safe_psql('postgres',
	"SELECT request_id FROM pixl_verify_request('$sec3', 'products:read', NULL, 'GET', '/both')");
wait_is($primary, 'postgres',
	"SELECT coalesce(sum(requests), 0) FROM pixl_usage_hourly WHERE token_id = '$tok3' AND endpoint = '/both'",
	'1', 'the standby\'s verification is folded on the primary');
$primary->safe_psql('postgres', "SELECT pixl_log_response('$rid4', 500, 7)");
$standby->safe_psql('postgres', "SELECT pixl_log_response('$rid4', 500, 9)");
like(err($standby, 'postgres', "SELECT pixl_log_response('$rid4', 200, 1)"), qr/PX068/, 'standby: a second report is refused (PX068)');
wait_is($primary, 'postgres',
	"SELECT concat_ws('/', errors, response_ms_sum, response_ms_count) FROM pixl_usage_hourly
	  WHERE token_id = '$tok3' AND endpoint = '/both'",
	'1/9/1', 'the report made on the standby counts once, the one made on the primary not');
is( $primary->safe_psql('postgres',
		"SELECT latency::text = pixl_latency_add(NULL::pixl_latency, 9::float8)::text FROM pixl_usage_hourly
		  WHERE token_id = '$tok3' AND endpoint = '/both'"),
	't', 'and so does its histogram (9 ms, not 7)');

# ---------------------------------------------------------------------------
# (3b) a batch is acknowledged only once the standby has replayed the
#      primary's commit of it (so that a promoted standby knows it is in)
# ---------------------------------------------------------------------------
is(last_seq($standby), last_seq($primary),
	'the standby\'s replayed pixl_replica_nodes has the last batch the primary applied');
my $flushed3 = node_stat($standby, 'events_flushed');
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
is(verify($standby, $sec3, 10, 'GET', '/paused'), '10 0', '10 verifications while replay is paused');
wait_is($primary, 'postgres',
	"SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok3' AND endpoint = '/paused'",
	'10', 'the primary applies the batch');
is(node_stat($standby, 'events_flushed'), $flushed3,
	'the standby does not count it acknowledged before it replayed the commit');
wait_is($standby, 'postgres', stats_sql('worker_state'), 'waiting for replay',
	'and pixl_stats says what it waits for');
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
wait_is($standby, 'postgres', stats_sql('events_flushed'), $flushed3 + 10,
	'it does once replay resumed');
is(last_seq($standby), last_seq($primary), 'and has replayed the batch\'s number');

# ---------------------------------------------------------------------------
# (4) the shipper's session killed on the primary, again and again
# ---------------------------------------------------------------------------
my ($tok4, $sec4) = new_token('network', 1000);
$primary->wait_for_catchup($standby, 'replay');
my ($flushed0, $folded0) = split / /, node_stat($standby, 'events_flushed, counts_folded');
# each round: verifications, then, as soon as the shipper has (re)connected
# to send them, its session is terminated (while it sends, waits for
# replay, or idles: wherever it happens to be)
my $killed = 0;
for my $i (1 .. 5)
{
	is(verify($standby, $sec4, 40, 'GET', "/net$i"), '40 0', "round $i: 40 verifications on the standby");
	$primary->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'pixltoken shipper 1'")
	  or die 'the shipper did not connect';
	$killed += $primary->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pixltoken shipper 1'");
}
is($killed, 5, 'the shipper\'s session was terminated in each of the 5 rounds');
wait_is($primary, 'postgres', totals_sql($tok4), '200 0 0 200 200',
	'primary: exactly 200 after the breaks, no raw row twice');
wait_is($standby, 'postgres', stats_sql('worker_state, events_flushed, counts_folded'),
	join(' ', 'shipping', $flushed0 + 200, $folded0 + 200),
	'standby: shipping again, the 200 acknowledged once');
like(node_stat($standby, 'last_error'), qr/terminat|closed|connection/,
	'the break is shown as last_error');
is($primary->safe_psql('postgres', totals_sql($tok4)), '200 0 0 200 200',
	'and the primary still has 200');

# ---------------------------------------------------------------------------
# (5) every batch sent twice: the second is a duplicate that changes nothing
# ---------------------------------------------------------------------------
# The shipper's session flushes its function statistics when it ends (an
# idle session only every 10 s): end it, then count pixl_ingest_usage's
# calls from zero; end it again before reading them.
sub end_shipper_session
{
	$primary->safe_psql('postgres',
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pixltoken shipper 1'");
	$primary->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'pixltoken shipper 1'")
	  or die 'the shipper session did not end';
	return;
}
end_shipper_session();
$primary->safe_psql('postgres',
	"SELECT pg_stat_reset_single_function_counters('pixl_ingest_usage'::regproc)");
my $seq5 = last_seq($primary);
$standby->safe_psql('postgres',
	'ALTER SYSTEM SET pixltoken.ship_test_resend = on; SELECT pg_reload_conf()');
$standby->poll_query_until('postgres',
	"SELECT current_setting('pixltoken.ship_test_resend') = 'on'")
  or die 'ship_test_resend not reloaded';
my ($tok5, $sec5) = new_token('resend', 1000);
$primary->wait_for_catchup($standby, 'replay');
($flushed0, $folded0) = split / /, node_stat($standby, 'events_flushed, counts_folded');
for my $i (1 .. 3)
{
	is(verify($standby, $sec5, 30, 'GET', "/twice$i"), '30 0', "resend, batch $i: 30 verifications");
	wait_is($primary, 'postgres', totals_sql($tok5), join(' ', 30 * $i, 0, 0, 30 * $i, 30 * $i),
		"resend, batch $i: the primary has exactly " . 30 * $i);
}
wait_is($standby, 'postgres', stats_sql('worker_state, events_flushed, counts_folded'),
	join(' ', 'shipping', $flushed0 + 90, $folded0 + 90),
	'resend: the standby ships and counts each acknowledged once');
my $batches5 = last_seq($primary) - $seq5;
cmp_ok($batches5, '>=', 3, "resend: $batches5 batches applied");
end_shipper_session();
wait_is($primary, 'postgres',
	"SELECT calls FROM pg_stat_user_functions WHERE funcname = 'pixl_ingest_usage'",
	2 * $batches5, 'resend: pixl_ingest_usage was called twice per batch');
is($primary->safe_psql('postgres', totals_sql($tok5)), '90 0 0 90 90',
	'resend: no usage doubled');
$standby->safe_psql('postgres',
	'ALTER SYSTEM RESET pixltoken.ship_test_resend; SELECT pg_reload_conf()');

# ---------------------------------------------------------------------------
# (6) a primary restart while the standby verifies
# ---------------------------------------------------------------------------
my ($tok6, $sec6) = new_token('restart', 1000);
$primary->wait_for_catchup($standby, 'replay');
is(verify($standby, $sec6, 50, 'GET', '/before'), '50 0', '50 before the primary stops');
$primary->stop;
is(verify($standby, $sec6, 50, 'GET', '/during'), '50 0', '50 while the primary is down');
wait_is($standby, 'postgres', stats_sql("worker_state, last_error <> '', last_error_at > now() - interval '1 minute'"),
	'waiting for primary t t', 'standby: waiting for primary, with the error');
$primary->start;
is(verify($standby, $sec6, 50, 'GET', '/after'), '50 0', '50 once it is back');
wait_is($primary, 'postgres', totals_sql($tok6), '150 0 0 150 150',
	'primary restart: exactly 150');
wait_is($standby, 'postgres', stats_sql('worker_state, events_queued'), 'shipping 0',
	'standby: shipping again');
is( $primary->safe_psql('postgres',
		"SELECT string_agg(endpoint || ' ' || requests, ',' ORDER BY endpoint) FROM pixl_usage_hourly WHERE token_id = '$tok6'"),
	'/after 50,/before 50,/during 50', 'each part once');

# ---------------------------------------------------------------------------
# (8) a second standby with the same node id; pixl_replica_reset_node
# ---------------------------------------------------------------------------
my ($tok8, $sec8) = new_token('same id', 1000);
my $inc1 = $primary->safe_psql('postgres',
	'SELECT incarnation FROM pixl_replica_nodes WHERE node_id = 1');
my $standby2 = new_standby('standby2', 'base2', 1);
is(verify($standby2, $sec8, 20, 'GET', '/second'), '20 0', '20 verifications on the second standby');
wait_is($standby2, 'postgres', stats_sql("worker_state, last_error ~ 'PX065', last_error ~ 'another standby'"),
	'waiting for primary t t',
	'second standby with node id 1: waiting for primary, PX065 (another standby) in last_error');
my $err_at = node_stat($standby2, 'last_error_at');
wait_is($standby2, 'postgres', stats_sql("last_error_at > '$err_at'"), 't',
	'it keeps retrying');
is(verify($standby, $sec8, 10, 'GET', '/first'), '10 0', '10 on the first standby meanwhile');
wait_is($primary, 'postgres', totals_sql($tok8), '10 0 0 10 10',
	'primary: only the first standby\'s 10; nothing of the second applied');
is( $primary->safe_psql('postgres',
		'SELECT concat_ws(\' \', count(*), min(node_name), min(incarnation)) FROM pixl_replica_nodes'),
	"1 standby1 $inc1", 'pixl_replica_nodes still holds the first standby only');

$primary->safe_psql('postgres', q{
CREATE ROLE plain LOGIN;
GRANT EXECUTE ON FUNCTION pixl_replica_reset_node(int) TO plain;
CREATE ROLE padmin LOGIN IN ROLE pixl_platform_admin;
CREATE ROLE ropr LOGIN IN ROLE pixl_replica_operator;
});
like(err($primary, 'postgres', 'SELECT pixl_replica_reset_node(1)', as => 'plain'), qr/only replication operators may reset replica nodes/,
	'pixl_replica_reset_node is refused to a role that is no replication operator, even with EXECUTE');
like(err($primary, 'postgres', 'SELECT pixl_replica_reset_node(1)', as => 'padmin'), qr/permission denied for function pixl_replica_reset_node/,
	'and to a platform admin (who reads usage, but does not decide what is counted)');
is($primary->safe_psql('postgres', 'SELECT count(*) FROM pixl_replica_nodes'),
	'1', 'the node is still registered');

# the first standby goes away for good; a replication operator forgets it,
# and the rebuilt one takes its id: its 20 are applied, once
$standby->stop;
my ($ret, $out, $err) = $primary->psql('postgres', 'SELECT pixl_replica_reset_node(1)',
	extra_params => [ '-U', 'ropr' ]);
is($out, 't', 'a replication operator resets node 1') or diag($err);
is( $primary->safe_psql('postgres',
		"SELECT count(*) FROM pixl_replica_retired WHERE node_id = 1 AND incarnation = $inc1"),
	'1', 'the first standby\'s incarnation is retired for ever');
wait_is($primary, 'postgres', totals_sql($tok8), '30 0 0 30 30',
	'the second standby\'s 20 are applied once the id is free');
is( $primary->safe_psql('postgres',
		"SELECT concat_ws(' ', node_name, incarnation <> $inc1) FROM pixl_replica_nodes"),
	'standby2 t', 'node 1 is now the second standby');
wait_is($standby2, 'postgres', stats_sql('worker_state'), 'shipping', 'which ships');

# node id 0: a standby ships nothing and says so; its usage is dropped and
# counted as lost (in the row of databases without a worker)
$standby2->stop;
$standby2->append_conf('postgresql.conf', "pixltoken.node_id = 0\n");
$standby2->start;
wait_is($standby2, 'postgres', stats_sql('worker_state'), 'no node id',
	'node id 0: worker_state no node id');
is(verify($standby2, $sec8, 5, 'GET', '/none'), '5 0', '5 verifications there');
is( $standby2->safe_psql('postgres',
		"SELECT concat_ws(' ', counts_lost, events_dropped) FROM pixl_stats() WHERE datname IS NULL"),
	'5 5', 'counted as lost');
$standby2->stop;

# back to the first standby: the primary forgets the second.  The first
# one's incarnation was retired when the second took its id: its batches
# are refused for ever (PX065), never counted again.
$primary->safe_psql('postgres', 'SELECT pixl_replica_reset_node(1)');
$standby->start;
is(verify($standby, $sec8, 3, 'GET', '/retired'), '3 0', '3 on the first standby, back under its old incarnation');
wait_is($standby, 'postgres', stats_sql("worker_state, last_error ~ 'PX065', last_error ~ 'was reset'"),
	'waiting for primary t t', 'its retired incarnation is refused');
is($primary->safe_psql('postgres', 'SELECT count(*) FROM pixl_replica_nodes'), '0',
	'and not registered');
# it ships again under a new incarnation once its spool is removed (the
# spooled batch, the 3, is lost with it)
$standby->stop;
unlink glob($standby->data_dir . '/pg_stat_tmp/pixltoken_ship_*.spool');
$standby->start;
is(verify($standby, $sec8, 10, 'GET', '/back'), '10 0', '10 on the first standby, back');
wait_is($primary, 'postgres', totals_sql($tok8), '40 0 0 40 40',
	'the first standby registers again and ships them once');
is($primary->safe_psql('postgres', 'SELECT node_name FROM pixl_replica_nodes'),
	'standby1', 'node 1 is the first standby again');

# ---------------------------------------------------------------------------
# (7) standby restarts while the primary is down
# ---------------------------------------------------------------------------
my ($tok7, $sec7) = new_token('spool', 1000);
$primary->wait_for_catchup($standby, 'replay');
wait_is($standby, 'postgres', stats_sql('worker_state'), 'shipping', 'the standby ships');

# (a) clean restart: the spooled batch and what is still queued survive
$primary->stop;
is(verify($standby, $sec7, 20, 'GET', '/spooled'), '20 0', '20 verifications, primary down');
wait_is($standby, 'postgres', stats_sql('worker_state'), 'waiting for primary',
	'a batch is spooled and cannot be sent');
is(verify($standby, $sec7, 30, 'GET', '/queued'), '30 0', '30 more, queued behind it');
my $queued = node_stat($standby, 'events_queued');
cmp_ok($queued, '>=', 30, "$queued raw rows wait in shared memory");
$standby->restart;
wait_is($standby, 'postgres', stats_sql('worker_state, events_queued'),
	"waiting for primary $queued",
	'clean restart: the spool is re-sent (in vain), the queue was saved and loaded');
$primary->start;
wait_is($primary, 'postgres', totals_sql($tok7), '50 0 0 50 50',
	'primary back: all 50 applied, once');

# (b) kill -9 with a batch spooled but unacknowledged.  The worker is put
# to sleep (flush_interval 1 minute) so that the 25 verifications below
# all wait in shared memory; a reload wakes it and it spools all 25.
wait_is($standby, 'postgres', stats_sql('worker_state, events_queued'), 'shipping 0',
	'the standby has shipped everything');
$standby->safe_psql('postgres',
	"ALTER SYSTEM SET pixltoken.flush_interval = '1min'; SELECT pg_reload_conf()");
$standby->poll_query_until('postgres',
	"SELECT current_setting('pixltoken.flush_interval') = '1min'")
  or die 'flush_interval not reloaded';
$primary->stop;
is(verify($standby, $sec7, 25, 'GET', '/crash-spooled'), '25 0',
	'25 verifications, primary down');
is(node_stat($standby, 'events_queued'), '25', 'they wait in shared memory');
$standby->safe_psql('postgres',
	"ALTER SYSTEM RESET pixltoken.flush_interval; SELECT pg_reload_conf()");
wait_is($standby, 'postgres', stats_sql('worker_state, events_queued'), 'waiting for primary 0',
	'woken, the worker spooled all 25 and cannot send them');
is(verify($standby, $sec7, 10, 'GET', '/crash-lost'), '10 0',
	'10 more, in shared memory only');
is(node_stat($standby, 'events_queued'), '10', 'they wait in shared memory');
# kill -9 of the standby's postmaster: its children notice and leave
# shared memory; until then a new postmaster refuses to start.  (An
# immediate stop would not do: the postmaster exits with code 0 and saves
# shared memory like a clean stop.)
$standby->kill9;
my $started = 0;
for (1 .. 100)
{
	last if ($started = $standby->start(fail_ok => 1));
	usleep(100_000);
	$standby->stop('fast', fail_ok => 1);    # forget a stale pid
}
ok($started, 'the standby restarted after kill -9');
wait_is($standby, 'postgres', stats_sql('worker_state, events_queued'), 'waiting for primary 0',
	'after the crash: the spool is re-sent (in vain), shared memory lost its 10');
is(node_stat($standby, 'counts_lost'), '10',
	'the standby counts the 10 that the crash took from shared memory as lost');
$primary->start;
wait_is($primary, 'postgres', totals_sql($tok7), '75 0 0 75 75',
	'primary back: the 25 spooled before the crash are applied, once');
wait_is($standby, 'postgres', stats_sql('worker_state'), 'shipping', 'the standby ships again');
is( $primary->safe_psql('postgres',
		"SELECT string_agg(endpoint || ' ' || requests, ',' ORDER BY endpoint) FROM pixl_usage_hourly WHERE token_id = '$tok7'"),
	'/crash-spooled 25,/queued 30,/spooled 20',
	'each part once; the 10 in shared memory at the crash are lost, as documented');

# ---------------------------------------------------------------------------
# (9) promotion with a spooled, unacknowledged batch
# ---------------------------------------------------------------------------
my ($tok9, $sec9) = new_token('promote', 1000);
$primary->wait_for_catchup($standby, 'replay');
my $seq9 = last_seq($primary);
is(last_seq($standby), $seq9, 'the standby replayed its last_seq');
$primary->stop;
# (the standby crashed less than a minute ago: its rate-limit windows
# start full, so these may be 429s; counted either way)
my ($ok9a, $rl9a) = split / /, verify($standby, $sec9, 40, 'GET', '/spooled');
is($ok9a + $rl9a, 40, '40 verifications, primary down');
wait_is($standby, 'postgres', stats_sql('worker_state'), 'waiting for primary',
	'a batch is spooled and cannot be sent');
my ($ok9b, $rl9b) = split / /, verify($standby, $sec9, 15, 'GET', '/queued');
is($ok9b + $rl9b, 15, '15 more, queued behind it');
my $log_offset = -s $standby->logfile;
$standby->promote;
wait_is($standby, 'postgres', stats_sql('worker_state, events_queued'), 'serving 0',
	'promoted: the worker serves');
my $rl9 = $rl9a + $rl9b;
wait_is($standby, 'postgres',
	"SELECT concat_ws(' ', sum(requests), sum(errors), sum(rate_limited)) FROM pixl_usage_hourly WHERE token_id = '$tok9'",
	"55 $rl9 $rl9", 'the promoted node\'s own rollups count the 55 exactly');
is( $standby->safe_psql('postgres',
		"SELECT count(*) FROM pixl_usage_events WHERE token_id = '$tok9' AND status = 200"),
	$ok9a + $ok9b, 'and has a raw row for each 200');
like(substr(slurp_file($standby->logfile), $log_offset),
	qr/usage batch @{[ $seq9 + 1 ]} of node 1, left from before the promotion: applied/,
	'the spooled batch was applied locally, as the next batch of node 1 (the log says so)');
# then, a primary owning its id, the registration of node 1 is forgotten
# (056: a node that comes back ships under a new incarnation, unrefused)
wait_is($standby, 'postgres', 'SELECT count(*) FROM pixl_replica_nodes WHERE node_id = 1', '0',
	'the promoted node forgets the registration of its own id');
my ($ok9c, $rl9c) = split / /, verify($standby, $sec9, 5, 'GET', '/promoted');
wait_is($standby, 'postgres',
	"SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok9'",
	'60', 'after promotion the node writes its own usage');
is( $standby->safe_psql('postgres',
		"SELECT string_agg(endpoint || ' ' || requests, ',' ORDER BY endpoint) FROM pixl_usage_hourly WHERE token_id = '$tok9'"),
	'/promoted 5,/queued 15,/spooled 40', 'each part once');

$standby->stop;
done_testing();
