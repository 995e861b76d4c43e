# The inactivity rule of a store's hygiene policy, run by the usage worker
# (pixl_hygiene_sweep() after its maintenance, which it runs when it starts
# serving and every minute): a token unused for inactive_after minus the
# warning lead gets one 'inactive_soon' event; at its due time it is
# disabled with reason 'inactive' ('disable' audited once), and its 401
# names that reason.  Each step is taken once across a clean restart and
# across a crash (immediate stop).  Enabling restarts the clock, and a use
# written by the worker (pixl_token_activity.last_used_at) keeps a token
# from being warned.  Time passes by backdating rows as superuser.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pixl_node('hygiene', extension => 'postgres');
wait_serving($node, 'postgres');

$node->safe_psql('postgres', q{
SELECT pixl_set_store_plan('hy', 'enterprise');
SELECT pixl_set_store_policy('hy', inactive_after => '30 days', inactive_warning => '7 days')});

# A token created $days days ago (never used); returns (id, secret).
my $n = 0;
sub old_token
{
	my ($days) = @_;
	$n++;
	my ($id, $secret) = new_token($node, 'postgres', 'hy', plan => undef, name => "T$n",
		scopes => ['orders:read']);
	$node->safe_psql('postgres',
		"UPDATE pixl_token_registry SET created_at = now() - interval '$days days' WHERE token_id = '$id'");
	return ($id, $secret);
}

sub count_of
{
	my ($action, $id) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pixl_audit WHERE action = '$action' AND token_id = '$id'");
}

# Restarts the node (mode 'fast' or 'immediate': a crash) with a new marker
# token due for a warning, and waits until the worker's sweep warned it:
# the sweep is one transaction, so every step of that run is then visible.
sub restart_and_sweep
{
	my ($mode, $what) = @_;
	my ($marker) = old_token(40);
	$node->stop($mode);
	$node->start;
	wait_is($node, 'postgres', "SELECT count(*) FROM pixl_audit WHERE action = 'inactive_soon' AND token_id = '$marker'",
		'1', "$what: the worker's sweep ran");
}

my ($idle, $idle_secret) = old_token(40);
my ($used, $used_secret) = old_token(40);

# a use of $used, written out by the worker as its last_used_at
my $v = $node->safe_psql('postgres', "SELECT status FROM pixl_verify_token('$used_secret', 'orders:read')");
is($v, '200', 'the used token verifies');
wait_is($node, 'postgres',
	"SELECT count(*) FROM pixl_token_activity WHERE token_id = '$used' AND last_used_at > now() - interval '1 hour'",
	'1', 'the worker wrote its last use');

# 1. the warning, once
restart_and_sweep('fast', 'first restart');
is(count_of('inactive_soon', $idle), '1', 'the idle token is warned');
is(count_of('inactive_soon', $used), '0', 'the used token is not');
my $due = $node->safe_psql('postgres', qq{
SELECT round(extract(epoch FROM (detail->>'due_at')::timestamptz - at) / 86400)
  FROM pixl_audit WHERE action = 'inactive_soon' AND token_id = '$idle'});
is($due, '7', 'its action is due a full warning lead later');
is($node->safe_psql('postgres', "SELECT status FROM pixl_tokens WHERE token_id = '$idle'"),
	'active', 'not disabled yet');

restart_and_sweep('fast', 'second restart');
is(count_of('inactive_soon', $idle), '1', 'no second warning after a restart');

# 2. the due time passes: disabled, once
$node->safe_psql('postgres',
	"UPDATE pixl_hygiene_sent SET due_at = now() - interval '1 minute' WHERE token_id = '$idle'");
restart_and_sweep('immediate', 'restart after a crash');
is($node->safe_psql('postgres', "SELECT status || ' ' || disabled_reason FROM pixl_tokens WHERE token_id = '$idle'"),
	'disabled inactive', 'disabled with reason inactive');
is(count_of('disable', $idle), '1', 'one disable audited');
is($node->safe_psql('postgres', "SELECT detail->>'reason' FROM pixl_audit WHERE action = 'disable' AND token_id = '$idle'"),
	'inactive', 'its reason is inactive');

$node->stop('immediate');
$node->start;
restart_and_sweep('immediate', 'another crash');
is(count_of('disable', $idle), '1', 'still one disable after crashes');
is(count_of('inactive_soon', $idle), '1', 'and one warning');
is(count_of('inactive_soon', $used), '0', 'the used token is still not warned');

# 3. the HTTP answer names the reason
my $answer = $node->safe_psql('postgres', qq{
SELECT status || ' ' || reason || ' ' || (problem->>'detail')
  FROM pixl_verify_token_http('$idle_secret', 'orders:read')});
like($answer, qr/^401 disabled The API token is disabled: reason inactive /, '401 disabled, detail names inactive');

# 4. enable: active again, and the clock starts at the enable
$node->safe_psql('postgres', "SELECT pixl_enable_token('$idle')");
restart_and_sweep('fast', 'restart after the enable');
is($node->safe_psql('postgres', "SELECT status FROM pixl_tokens WHERE token_id = '$idle'"),
	'active', 'the enabled token stays active');
is(count_of('inactive_soon', $idle), '1', 'and gets no new warning');
is(count_of('disable', $idle), '1', 'nor a new disable');
is($node->safe_psql('postgres', "SELECT days_until_inactive_action FROM pixl_token_hygiene WHERE token_id = '$idle'"),
	'29', 'its inactivity action is 30 days after the enable');

# every warning and disable of the store, by kind: one per token and step
is($node->safe_psql('postgres', q{
SELECT string_agg(DISTINCT n::text, ',') FROM (
	SELECT count(*) AS n FROM pixl_audit
	 WHERE store_id = 'hy' AND action IN ('inactive_soon', 'disable') GROUP BY token_id, action) c}),
	'1', 'no step taken twice');

$node->stop;
done_testing();
