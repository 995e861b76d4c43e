# Allowance events: the usage worker, after each fold, records
# 'quota_warning' when a store has used 80 % of its plan's allowance and
# 'quota_exhausted' at 100 %, each once per store and period
# (pixl_quota_notices), with the pixl_audit row and the NOTIFY pixltoken
# wake-up of every lifecycle event; never for a store under 80 % or
# without an allowance; never again after a clean restart or a crash
# restart (the counters are rebuilt from the rollups, the table remembers
# what was sent).  Store admins read them with pixl_events_since, for
# their stores only.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pixl_node('quota_events', extension => 'postgres', conf => q{
restart_after_crash = on
});
wait_serving($node, 'postgres');

$node->safe_psql('postgres', q{
	INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens, period_quota)
	VALUES ('metered', 60, 1000, 10, 10);
	CREATE ROLE ev_a_admin LOGIN;
	GRANT EXECUTE ON FUNCTION pixl_events_since(bigint, int) TO ev_a_admin;
	GRANT SELECT ON pixl_audit TO ev_a_admin;
	SELECT pixl_grant_store('ev_a_admin', 'ev-a');
});
my %secret;
for my $store (qw(ev-a ev-b ev-c ev-d))
{
	(undef, $secret{$store}) = new_token($node, 'postgres', $store, plan => 'metered');
}
(undef, $secret{'ev-none'}) = new_token($node, 'postgres', 'ev-none', plan => 'enterprise');

# n verifications of a store's token; their statuses, "status:count" sorted
sub calls
{
	my ($store, $n, $cost) = @_;
	$cost //= 1;
	return $node->safe_psql('postgres', qq{
		SELECT string_agg(status || ':' || n, ' ' ORDER BY status)
		  FROM (SELECT v.status, count(*) AS n
				  FROM generate_series(1, $n) i,
					   LATERAL pixl_verify_request('$secret{$store}', 'products:read', '$store',
												   'GET', '/x', ('10.0.' || i / 250 || '.' || i % 250)::inet,
												   cost => $cost) v
				 GROUP BY v.status) s});
}

# the events of the stores, "store action" lines in audit order
my $events_sql = q{
	SELECT coalesce(string_agg(store_id || ' ' || action, E'\n' ORDER BY audit_id), '')
	  FROM pixl_audit WHERE action IN ('quota_warning', 'quota_exhausted')};

# 7 of 10: under 80 %; a store at 50 %, and 100 calls of a store without
# an allowance
is(calls('ev-a', 7), '200:7', 'ev-a: 7 of its 10');
is(calls('ev-b', 5), '200:5', 'ev-b: 5 of its 10');
is(calls('ev-none', 100), '200:100', 'ev-none: 100 calls, no allowance');

# the 8th call of ev-a crosses 80 %: one warning, at the next fold
is(calls('ev-a', 1), '200:1', 'ev-a: the 8th call');
wait_is($node, 'postgres', $events_sql, 'ev-a quota_warning', 'ev-a: quota_warning once it used 80 %');

# two calls of cost 1 more reach 100 %; the next is refused
is(calls('ev-a', 2), '200:2', 'ev-a: the 9th and 10th');
wait_is($node, 'postgres', $events_sql, "ev-a quota_warning\nev-a quota_exhausted",
	'ev-a: quota_exhausted once it used 100 %');
is(calls('ev-a', 3), '429:3', 'ev-a: over its allowance, refused');
is($node->safe_psql('postgres', q{
	SELECT reason FROM pixl_verify_request('} . $secret{'ev-a'} . q{', 'products:read', 'ev-a')}),
	'quota_exceeded', 'ev-a: reason quota_exceeded');

# a store that passes both thresholds between two folds gets both, in order
is(calls('ev-c', 1, 10), '200:1', 'ev-c: one call of cost 10, its whole allowance');
wait_is($node, 'postgres', $events_sql,
	"ev-a quota_warning\nev-a quota_exhausted\nev-c quota_warning\nev-c quota_exhausted",
	'ev-c: warning then exhausted');

# what the events say, and who sees them
is($node->safe_psql('postgres', q{
	SELECT string_agg(format('%s %s %s %s %s', action, detail->>'percent', detail->>'used', detail->>'allowance',
							 (detail->>'period_start')::timestamptz = pixl_quota_period_start(now())
							 AND (detail->>'period_end')::timestamptz = pixl_quota_period_end(pixl_quota_period_start(now()))),
					  ', ' ORDER BY audit_id)
	  FROM pixl_audit WHERE store_id = 'ev-c' AND action LIKE 'quota%'}),
	'quota_warning 80 10 10 t, quota_exhausted 100 10 10 t',
	'detail: percent, used, allowance and the current period');
is($node->safe_psql('postgres', q{
	SELECT string_agg(store_id || ' ' || action, ', ' ORDER BY audit_id)
	  FROM pixl_events_since(0) WHERE action LIKE 'quota%'}, extra_params => [ '-U', 'ev_a_admin' ]),
	'ev-a quota_warning, ev-a quota_exhausted',
	'a store admin reads the events of its store only');
is($node->safe_psql('postgres', q{
	SELECT string_agg(store_id || ' ' || threshold || ' ' || used || ' ' || allowance, ', ' ORDER BY store_id, threshold)
	  FROM pixl_quota_notices}),
	'ev-a 80 8 10, ev-a 100 10 10, ev-c 80 10 10, ev-c 100 10 10',
	'pixl_quota_notices: what was sent, for which period');

# an operator's call sends nothing twice
is($node->safe_psql('postgres', 'SELECT count(*) FROM pixl_quota_notices()'), '0',
	'pixl_quota_notices() called again: nothing new');

# A clean restart: the counters are rebuilt from the rollups (wait until
# ev-a's is back at 10), nothing is sent twice; ev-b crossing 80 % after it
# shows that the worker sends events again
$node->restart;
wait_serving($node, 'postgres', 'the worker serves after the restart');
wait_is($node, 'postgres', q{SELECT used FROM pixl_quota_used('ev-a')}, '10',
	'ev-a: its counter rebuilt after the restart');
is(calls('ev-b', 3), '200:3', 'ev-b: 8 of 10 after the restart');
wait_is($node, 'postgres', $events_sql,
	"ev-a quota_warning\nev-a quota_exhausted\nev-c quota_warning\nev-c quota_exhausted\nev-b quota_warning",
	'after a clean restart: ev-b warned, nothing repeated');

# A crash restart (kill -9 of a backend): the same
my $offset = -s $node->logfile;
my $bg = $node->background_psql('postgres');
my $vpid = $bg->query_safe('SELECT pg_backend_pid()');
kill 'KILL', $vpid;
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $offset);
$bg->{run}->kill_kill;
ok($node->poll_query_until('postgres', 'SELECT true'), 'the server is back after the crash');
wait_serving($node, 'postgres', 'the worker serves after the crash');
wait_is($node, 'postgres', q{SELECT used FROM pixl_quota_used('ev-a')}, '10',
	'ev-a: its counter back after the crash');
is(calls('ev-d', 9), '200:9', 'ev-d: 9 of 10 after the crash');
wait_is($node, 'postgres', $events_sql,
	"ev-a quota_warning\nev-a quota_exhausted\nev-c quota_warning\nev-c quota_exhausted\nev-b quota_warning\nev-d quota_warning",
	'after a crash restart: ev-d warned, nothing repeated');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pixl_quota_notices WHERE store_id IN ('ev-b', 'ev-none')}),
	'1', 'ev-b: only its warning (8 of 10); ev-none (no allowance): nothing');

$node->stop;
done_testing();
