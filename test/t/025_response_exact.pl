# Copyright: the pixltoken authors.
#
# Response reports land in exact aggregates, whatever raw rows are kept:
#  (a) with a ring far too small for the load, every verification is
#      answered 500 in 25 ms through pixl_log_response: error rate 100 and
#      average 25 ms for every token, success rate 0 for every endpoint,
#      one response counted per answer;
#  (b) a second report of the same request is refused (PX068) and changes
#      nothing;
#  (c) a report that arrives after its verification was folded and written
#      out (pixl_usage_pending_responses) counts once;
#  (d) a report of a verification still pending in shared memory at a
#      clean restart counts once after it; one written out before counts
#      once too;
#  (e) after a crash, a report of a verification whose pending entry was
#      lost is refused (PX068) and changes nothing;
#  (f) latency percentiles: the rollups' histograms count every response
#      (as many as response_ms_count), p50/p95/p99 of pixl_usage_summary
#      are 25 ms within the stated bound (4.43 %), per endpoint and per
#      hour too; a row with responses but no histogram (as rollups written
#      before 1.1 have) gives NULL percentiles and stays without one when
#      the worker folds more responses into it.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pixl_node('responses', extension => 'postgres', conf => q{
pixltoken.queue_size = 64
pixltoken.response_wait = '1s'
max_worker_processes = 16
});
wait_serving($node, 'postgres', 'worker serves');

$node->safe_psql('postgres', q{
SELECT pixl_set_store_plan('resp-store', 'enterprise');
CREATE TABLE tap_tokens (i int PRIMARY KEY, token_id text, secret text);
INSERT INTO tap_tokens
SELECT g, t.token_id, t.token
  FROM generate_series(1, 104) g,
	   LATERAL pixl_create_token('resp-store', 'T' || g, ARRAY['products:read'], rate_limit => 1000) t;
GRANT SELECT ON tap_tokens TO PUBLIC;
});

# (a) pgbench: verify and report every answer as 500 in 25 ms
# (no colon in a literal: pgbench -M prepared would make it a parameter)
my $script = q{
\set i random(1, 100)
SELECT pixl_log_response(v.request_id, 500, 25)
  FROM tap_tokens t CROSS JOIN LATERAL pixl_verify_request(t.secret, 'products' || chr(58) || 'read', NULL, 'GET', '/v1/products') v
 WHERE t.i = :i;
};
my $script_file = $node->basedir . '/025_script.sql';
open my $fh, '>', $script_file or die;
print $fh $script;
close $fh;
my ($out, $err) = run_command(
	[ $node->config_data('--bindir') . '/pgbench', '--no-vacuum', '-M', 'prepared', '--client=8', '--jobs=2',
	  '--time=10', '-f', $script_file, '-d', $node->connstr('postgres') ]);
my ($answers) = $out =~ /number of transactions actually processed: (\d+)/;
$answers //= 0;
ok($answers > 1000, "pgbench answered many requests ($answers)") or diag($out . $err);
is(($out =~ /number of failed transactions: (\d+)/)[0] // 0, 0, 'no failed transaction')
  or diag($out . $err);

ok( $node->poll_query_until('postgres', qq{
SELECT coalesce(sum(h.requests), 0) = $answers AND coalesce(sum(h.response_ms_count), 0) = $answers
  FROM pixl_usage_hourly h JOIN tap_tokens t USING (token_id) WHERE t.i <= 100}),
	'every verification and every response is folded');
ok($node->safe_psql('postgres',
		"SELECT events_dropped > 0 FROM pixl_stats() WHERE datname = current_database()") eq 't',
	'raw rows were dropped (the ring is too small)');

is($node->safe_psql('postgres', qq{
SELECT count(*) || ' ' || sum(s.total_requests) || ' ' ||
	   count(*) FILTER (WHERE s.error_rate = 100 AND s.avg_response_ms = 25)
  FROM tap_tokens t CROSS JOIN LATERAL pixl_usage_summary(t.token_id, 'today') s
 WHERE s.total_requests > 0}),
	($node->safe_psql('postgres',
		"SELECT count(DISTINCT token_id) FROM pixl_usage_hourly h JOIN tap_tokens t USING (token_id) WHERE t.i <= 100"))
	  . " $answers "
	  . $node->safe_psql('postgres',
		"SELECT count(DISTINCT token_id) FROM pixl_usage_hourly h JOIN tap_tokens t USING (token_id) WHERE t.i <= 100"),
	'pixl_usage_summary: every token 100 % errors, 25 ms on average, every answer counted');
is($node->safe_psql('postgres', qq{
SELECT sum(e.requests) || ' ' || count(*) FILTER (WHERE e.success_rate <> 0 OR e.avg_response_ms <> 25)
  FROM tap_tokens t CROSS JOIN LATERAL pixl_usage_endpoints(t.token_id, 'today') e}),
	"$answers 0", 'pixl_usage_endpoints: success rate 0, 25 ms, every answer counted');
is($node->safe_psql('postgres', qq{
SELECT sum(d.requests) = $answers AND sum(d.errors) = $answers
	   AND sum(d.response_ms_sum) / sum(d.response_ms_count) = 25
  FROM pixl_usage_by_hour d JOIN tap_tokens t USING (token_id)}),
	't', 'pixl_usage_by_hour agrees');

# (f) the histograms: one count per response, percentiles within the bound
is($node->safe_psql('postgres', qq{
SELECT sum(pixl_latency_count(h.latency)) = $answers
	   AND bool_and(pixl_latency_count(h.latency) = h.response_ms_count)
  FROM pixl_usage_hourly h JOIN tap_tokens t USING (token_id) WHERE t.i <= 100}),
	't', 'every response is in the rollups\' histograms, row by row');
is($node->safe_psql('postgres', qq{
SELECT count(*) || ' ' ||
	   count(*) FILTER (WHERE abs(s.p50_ms / 25 - 1) <= 0.0443 AND abs(s.p95_ms / 25 - 1) <= 0.0443
						  AND abs(s.p99_ms / 25 - 1) <= 0.0443
						  AND s.p99_ms = pixl_latency_quantile('{24.6754: 1}', 0.5))
  FROM tap_tokens t CROSS JOIN LATERAL pixl_usage_summary(t.token_id, 'today') s
 WHERE s.total_requests > 0}),
	$node->safe_psql('postgres',
		"SELECT count(DISTINCT token_id) || ' ' || count(DISTINCT token_id) FROM pixl_usage_hourly h JOIN tap_tokens t USING (token_id) WHERE t.i <= 100"),
	'pixl_usage_summary: p50, p95, p99 are 25 ms within 4.43 % (the bucket of 25 ms) for every token');
is($node->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE abs(e.p95_ms / 25 - 1) > 0.0443 OR e.p95_ms IS NULL)
  FROM tap_tokens t CROSS JOIN LATERAL pixl_usage_endpoints(t.token_id, 'today') e}),
	'0', 'pixl_usage_endpoints: p95 25 ms within the bound');
is($node->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE abs(l.p95_ms / 25 - 1) > 0.0443 OR l.p95_ms IS NULL)
  FROM tap_tokens t CROSS JOIN LATERAL pixl_usage_timeline(t.token_id, 'today') l
 WHERE l.requests > 0}),
	'0', 'pixl_usage_timeline: p95 25 ms within the bound in every busy hour');

# a rollup row as 1.1 found it: responses, no histogram
my $old_token = $node->safe_psql('postgres', q{
SELECT t.token_id FROM tap_tokens t JOIN pixl_usage_hourly h USING (token_id)
 WHERE t.i <= 100 AND h.endpoint = '/v1/products' ORDER BY t.i LIMIT 1});
my $nulled = $node->safe_psql('postgres', qq{
WITH u AS (UPDATE pixl_usage_hourly SET latency = NULL
			WHERE token_id = '$old_token' AND endpoint = '/v1/products' RETURNING bucket)
SELECT string_agg(quote_literal(bucket), ', ') FROM u});
is($node->safe_psql('postgres', qq{
SELECT s.total_requests > 0 AND s.avg_response_ms = 25 AND s.p50_ms IS NULL AND s.p95_ms IS NULL AND s.p99_ms IS NULL
  FROM pixl_usage_summary('$old_token', 'today') s}),
	't', 'rollups written before 1.1: NULL percentiles');
my $before = $node->safe_psql('postgres', qq{
SELECT sum(response_ms_count) FROM pixl_usage_hourly WHERE token_id = '$old_token' AND endpoint = '/v1/products'});
$node->safe_psql('postgres', qq{
SELECT pixl_log_response(v.request_id, 200, 3)
  FROM tap_tokens t CROSS JOIN LATERAL pixl_verify_token(t.secret, 'products:read', NULL, 'GET', '/v1/products') v
 WHERE t.token_id = '$old_token'});
ok( $node->poll_query_until('postgres', qq{
SELECT sum(response_ms_count) > $before FROM pixl_usage_hourly
 WHERE token_id = '$old_token' AND endpoint = '/v1/products'}),
	'a new response is folded into that token');
is($node->safe_psql('postgres', qq{
SELECT bool_and(latency IS NULL AND response_ms_count > 0) FROM pixl_usage_hourly
 WHERE token_id = '$old_token' AND endpoint = '/v1/products' AND bucket IN ($nulled)}),
	't', 'the rows without a histogram stay without one (no partial histogram)');
is($node->safe_psql('postgres', qq{
SELECT p95_ms IS NULL FROM pixl_usage_summary('$old_token', 'today')}),
	't', 'and its percentiles stay NULL');

# one token, its figures as "requests errors responses ms_sum"
sub figures
{
	my ($i) = @_;
	return $node->safe_psql('postgres', qq{
SELECT coalesce(sum(h.requests), 0) || ' ' || coalesce(sum(h.errors), 0) || ' ' ||
	   coalesce(sum(h.response_ms_count), 0) || ' ' || coalesce(sum(h.response_ms_sum), 0)
  FROM pixl_usage_hourly h JOIN tap_tokens t USING (token_id) WHERE t.i = $i});
}

sub verify_one
{
	my ($i) = @_;
	return $node->safe_psql('postgres', qq{
SELECT v.request_id FROM tap_tokens t
 CROSS JOIN LATERAL pixl_verify_request(t.secret, 'products:read', NULL, 'GET', '/v1/one') v
 WHERE t.i = $i});
}

sub wait_figures
{
	my ($i, $want, $name) = @_;
	my $got;
	for (1 .. 300)
	{
		$got = figures($i);
		last if $got eq $want;
		select(undef, undef, undef, 0.1);
	}
	is($got, $want, $name) or diag($node->safe_psql('postgres', qq{
SELECT string_agg(concat_ws(' ', h.bucket, h.method, h.endpoint, h.requests, h.errors,
							h.response_ms_count, h.response_ms_sum), E'\n')
  FROM pixl_usage_hourly h JOIN tap_tokens t USING (token_id) WHERE t.i = $i}));
}

# 'ok', or the SQLSTATE of the refusal
sub report
{
	my ($rid, $status, $ms) = @_;
	my $e = err($node, 'postgres', "SELECT pixl_log_response('$rid', $status, $ms)");
	return $e =~ /^(\w{5}): / ? $1 : $e;
}

# (b)-(e) use tokens 101-104, which pgbench did not use: their
# verifications answer 200 (pgbench may have used up the others' limits)
# (b) a second report of the same request is refused, figures unchanged
my $base = figures(101);
my ($r, $e, $c, $s) = split / /, $base;
my $rid = verify_one(101);
is(report($rid, 500, 10), 'ok', 'first report accepted');
is(report($rid, 200, 1000), 'PX068', 'second report refused');
wait_figures(101, join(' ', $r + 1, $e + 1, $c + 1, $s + 10),
	'the first report counts once, the second not at all');
is(report($rid, 500, 10), 'PX068', 'a third report is refused too');

# (c) folded, then written out after pixltoken.response_wait: counts once
($r, $e, $c, $s) = split / /, figures(102);
$rid = verify_one(102);
wait_figures(102, join(' ', $r + 1, $e, $c, $s), 'the verification is folded');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pixl_usage_pending_responses WHERE request_id = x'"
		  . substr($rid, 0, 16) . "'::bit(64)::bigint"),
	'the unanswered verification is written out');
is(report($rid, 503, 40), 'ok', 'late report accepted');
is(report($rid, 503, 40), 'PX068', 'second late report refused');
wait_figures(102, join(' ', $r + 1, $e + 1, $c + 1, $s + 40), 'the late report counts once');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pixl_usage_pending_responses WHERE request_id = x'"
		  . substr($rid, 0, 16) . "'::bit(64)::bigint"),
	'and leaves the table');

# (d) clean restart: one pending in shared memory, one written out
my $spilled = verify_one(103);
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pixl_usage_pending_responses WHERE request_id = x'"
		  . substr($spilled, 0, 16) . "'::bit(64)::bigint"),
	'one verification written out');
$node->safe_psql('postgres', "ALTER SYSTEM SET pixltoken.response_wait = '1h'");
$node->reload;
ok($node->poll_query_until('postgres', "SELECT current_setting('pixltoken.response_wait') = '1h'"),
	'long response wait');
sub written_out
{
	my ($rid) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pixl_usage_pending_responses WHERE request_id = x'"
		  . substr($rid, 0, 16) . "'::bit(64)::bigint");
}
($r, $e, $c, $s) = split / /, figures(103);
my $pending = verify_one(103);
is(written_out($pending), '0', 'the other one is pending in shared memory');
$node->restart;
is(written_out($pending), '0', 'and still not written out after the restart');
is(report($pending, 404, 7), 'ok', 'pending at a clean restart: accepted after it');
is(report($spilled, 404, 5), 'ok', 'written out before a clean restart: accepted after it');
is(report($pending, 404, 7), 'PX068', 'and refused a second time');
wait_figures(103, join(' ', $r + 1, $e + 2, $c + 2, $s + 12),
	'both count once after the restart');

# (e) a crash loses what shared memory held: the report is refused
($r, $e, $c, $s) = split / /, figures(104);
my $lost = verify_one(104);
wait_figures(104, join(' ', $r + 1, $e, $c, $s), 'the verification is folded before the crash');
is(written_out($lost), '0', 'its pending entry is only in shared memory');
$node->stop('immediate');
$node->start;
is(report($lost, 500, 9), 'PX068', 'pending entry lost in a crash: the report is refused');
$node->poll_query_until('postgres',
	"SELECT worker_state = 'serving' FROM pixl_stats() WHERE datname = current_database()");
$node->safe_psql('postgres', 'SELECT pg_sleep(0.5)');
is(figures(104), join(' ', $r + 1, $e, $c, $s), 'and changes nothing');

# (f) the reports of (b)-(e), late, after a restart, are in the histograms
is($node->safe_psql('postgres', q{
SELECT bool_and(pixl_latency_count(h.latency) = h.response_ms_count) || ' ' || sum(h.response_ms_count)
  FROM pixl_usage_hourly h JOIN tap_tokens t USING (token_id) WHERE t.i > 100 AND h.response_ms_count > 0}),
	'true 4', 'late reports and reports after a restart are in the histograms, once');

$node->stop;
done_testing();
