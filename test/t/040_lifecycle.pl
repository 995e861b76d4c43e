# Lifecycle events: every lifecycle change writes a pixl_audit row and
# sends NOTIFY pixltoken in the same transaction (nothing for a rollback),
# a wake-up with an empty payload (no store, no token: any role can LISTEN,
# and any role can NOTIFY); the details are read with pixl_events_since(),
# store-scoped.  pixl_lifecycle_reminders() records 'expiring' and
# 'rotation_due' once per token, not again after a restart.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

# no usage worker in this database: its maintenance would send the
# reminders itself, and this test calls pixl_lifecycle_reminders() directly
my $node = pixl_node('lifecycle', databases => 'lifecycle_unserved', intervals => 0,
	extension => 'postgres', conf => q{
pixltoken.expiry_reminder = '3d'
pixltoken.rotation_reminder = '90d'
});

# Runs a script in one session that LISTENs; returns the output and the
# number of notifications received (psql prints each after the command that
# delivered it), and checks that none carried a payload.
sub notifications
{
	my ($sql, %opts) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', "LISTEN pixltoken;\n$sql",
		stdout => \$out, stderr => \$err, on_error_stop => 1,
		$opts{user} ? (extra_params => [ '-U', $opts{user} ]) : ());
	is($err, '', 'script ran without errors') or diag($err);
	my @all = ($out =~ /(Asynchronous notification "pixltoken".*? received)/g);
	my @payloads = ($out =~ /Asynchronous notification "pixltoken" with payload "(.*?)" received/g);
	is(scalar(@payloads), 0, 'no notification carries a payload')
	  or diag(join("\n", @payloads));
	return ($out, scalar(@all));
}

# The events after an audit id, as "action store_id token_id" lines
sub events
{
	my ($after, $user) = @_;
	my ($ret, $out, $err) = $node->psql('postgres',
		"SELECT concat_ws(' ', action, store_id, token_id IS NOT NULL) FROM pixl_events_since($after)",
		$user ? (extra_params => [ '-U', $user ]) : ());
	is($ret, 0, 'pixl_events_since ran') or diag($err);
	return $out;
}

my $last = $node->safe_psql('postgres', 'SELECT coalesce(max(audit_id), 0) FROM pixl_audit');
my ($out, $n) = notifications(q{
\pset format unaligned
\pset tuples_only on
SELECT token_id, token FROM pixl_create_token('life-a', 'Life', ARRAY['orders:read']) \gset
BEGIN;
SELECT pixl_revoke_token(:'token_id');
ROLLBACK;
SELECT pixl_update_token(:'token_id', name => 'Life 2');
SELECT pixl_rotate_token(:'token_id') IS NOT NULL;
SELECT pixl_disable_token(:'token_id', 'pause');
SELECT pixl_enable_token(:'token_id');
SELECT pixl_set_store_plan('life-a', 'pro');
SELECT token_id AS leak_id, token AS leak_token FROM pixl_create_token('life-a', 'Leak', ARRAY['orders:read']) \gset
SELECT pixl_report_leaked(:'leak_token', 'tap');
SELECT pixl_revoke_token(:'token_id');
BEGIN;
SELECT token_id AS two_id FROM pixl_create_token('life-a', 'Two', ARRAY['orders:read']) \gset
SELECT pixl_disable_token(:'two_id', 'one');
COMMIT;
SELECT 'SECRETS', :'token', :'leak_token';
});
# pixl_create_token of a new store also sets its plan: one transaction
is($n, 10, 'one wake-up per committed transaction; none for the rollback, one for two changes in one transaction');
my @secrets = ($out =~ /SECRETS\|(\S+)\|(\S+)/);
is(scalar(@secrets), 2, 'secrets captured for the check');
is(events($last), join("\n",
	'plan_changed life-a f', 'created life-a t', 'updated life-a t', 'rotated life-a t',
	'disabled life-a t', 'enabled life-a t', 'plan_changed life-a f', 'created life-a t',
	'exposed life-a t', 'revoked life-a t', 'created life-a t', 'disabled life-a t'),
	'pixl_events_since: every change, in order; none for the rolled-back revoke');
my $details = $node->safe_psql('postgres',
	"SELECT string_agg(detail::text, ' ') FROM pixl_events_since($last)");
ok(!(grep { index($details, $_) >= 0 } @secrets), 'no event holds a secret');
ok($details !~ /secret_hash|previous_hash/, 'no event holds a hash (hints, as the audit keeps them, only)');

# The details are store-scoped: a store admin of life-b sees its own
# events only, a role with no store sees none; anyone can LISTEN (no
# privilege exists for it) and hears only that something changed.
$node->safe_psql('postgres', q{
CREATE ROLE life_b_admin LOGIN;
CREATE ROLE life_nobody LOGIN;
GRANT SELECT ON pixl_audit TO life_b_admin, life_nobody;
GRANT EXECUTE ON FUNCTION pixl_events_since(bigint, integer) TO life_b_admin, life_nobody;
SELECT pixl_grant_store('life_b_admin', 'life-b');
SELECT pixl_create_token('life-b', 'B', ARRAY['orders:read']);
});
is(events($last, 'life_b_admin'), "plan_changed life-b f\ncreated life-b t",
	'a store admin reads the events of its store only');
is(events($last, 'life_nobody'), '', 'a role with no store reads none');
{
	my ($lout, $lerr) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-d', $node->connstr('postgres'), '-U', 'life_nobody',
		  '-c', 'LISTEN pixltoken', '-c', 'SELECT pg_sleep(4)' ],
		'>', \$lout, '2>', \$lerr);
	# bounded poll: the LISTEN has committed once the sleep runs
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while ($node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE usename = 'life_nobody' AND query ~ 'pg_sleep'") eq '0'
		&& time() < $deadline)
	{
		select(undef, undef, undef, 0.1);
	}
	$node->safe_psql('postgres', "SELECT pixl_create_token('life-a', 'Heard', ARRAY['orders:read'])");
	$h->finish;
	is($lerr, '', 'a role with no store may LISTEN (PostgreSQL has no privilege for it)');
	like($lout, qr/Asynchronous notification "pixltoken" received/,
		'and hears that something changed');
	unlike($lout, qr/with payload/, 'and nothing else');
}

# A forged NOTIFY (PostgreSQL lets any role send one) carries nothing a
# listener acts on: it only makes it read again, and there is nothing new.
my $seen = $node->safe_psql('postgres', 'SELECT max(audit_id) FROM pixl_events_since(0)');
$node->psql('postgres',
	q{NOTIFY pixltoken, '{"action": "exposed", "store_id": "life-a", "token_id": "tok_forged0000000000"}'},
	extra_params => [ '-U', 'life_nobody' ]);
is($node->safe_psql('postgres', "SELECT count(*) FROM pixl_events_since($seen)"), '0',
	'after a forged NOTIFY there is nothing new to read');

# Reminders: a token expiring in 2 days (reminder 3 days ahead), a token
# whose secret is 100 days old, one fresh token, one revoked old token.
$node->safe_psql('postgres', q{
SELECT pixl_create_token('life-r', 'Expiring', ARRAY['orders:read'], expires_at => now() + interval '2 days');
SELECT pixl_create_token('life-r', 'Old', ARRAY['orders:read']);
SELECT pixl_create_token('life-r', 'Fresh', ARRAY['orders:read']);
SELECT pixl_create_token('life-r', 'Old revoked', ARRAY['orders:read']);
UPDATE pixl_token_registry SET created_at = now() - interval '100 days'
 WHERE name IN ('Old', 'Old revoked');
SELECT pixl_revoke_token(token_id) FROM pixl_tokens WHERE name = 'Old revoked';
});
# The reminders of store life-r since audit id $after: "name action" lines
sub reminders
{
	my ($after) = @_;
	return $node->safe_psql('postgres', qq{
SELECT string_agg(t.name || ' ' || e.action, ',' ORDER BY t.name)
  FROM pixl_events_since($after) e JOIN pixl_tokens t USING (token_id)
 WHERE e.store_id = 'life-r' AND e.action IN ('expiring', 'rotation_due')});
}
$last = $node->safe_psql('postgres', 'SELECT max(audit_id) FROM pixl_audit');
($out, $n) = notifications(q{
SELECT t.name, r.action FROM pixl_lifecycle_reminders() r JOIN pixl_tokens t USING (token_id)
 WHERE t.store_id = 'life-r' ORDER BY 1;
});
is($n, 1, 'one wake-up for the reminders');
is(reminders($last), 'Expiring expiring,Old rotation_due', 'expiring and rotation_due recorded once each');
like($out, qr/Expiring\|expiring/, 'the expiring token got expiring');
like($out, qr/Old\|rotation_due/, 'the old secret got rotation_due');
like($node->safe_psql('postgres',
		"SELECT detail FROM pixl_events_since($last) WHERE action = 'expiring'"),
	qr/"due_at": "[^"]+"/, 'the expiring event says when');

$last = $node->safe_psql('postgres', 'SELECT max(audit_id) FROM pixl_audit');
($out, $n) = notifications('SELECT count(*) AS again FROM pixl_lifecycle_reminders();');
is(reminders($last), '', 'a second call records nothing');

$node->restart;
($out, $n) = notifications('SELECT count(*) AS again FROM pixl_lifecycle_reminders();');
is(reminders($last), '', 'nothing again after a restart');

# A rotation makes a new secret: its reminder is due 90 days later, not now;
# moving the rotation back 91 days makes it due once more.
$node->safe_psql('postgres', q{
SELECT pixl_rotate_token(token_id) FROM pixl_tokens WHERE name = 'Old';
});
$last = $node->safe_psql('postgres', 'SELECT max(audit_id) FROM pixl_audit');
($out, $n) = notifications('SELECT count(*) FROM pixl_lifecycle_reminders();');
is(reminders($last), '', 'a rotated secret is not due');
$node->safe_psql('postgres', q{
UPDATE pixl_token_registry SET rotated_at = now() - interval '91 days' WHERE name = 'Old';
});
($out, $n) = notifications('SELECT count(*) FROM pixl_lifecycle_reminders();');
is(reminders($last), 'Old rotation_due', 'the rotated secret is due once it is 91 days old');

$node->stop;
done_testing();
