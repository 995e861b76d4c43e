# Lifecycle events: every lifecycle change sends NOTIFY pixltoken with a
# small JSON payload in the same transaction (nothing for a rollback, never
# a secret), and pixl_lifecycle_reminders() sends 'expiring' and
# 'rotation_due' once per token, not again after a restart.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('lifecycle');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pixltoken'
# no usage worker in this database: its maintenance would send the
# reminders itself, and this test calls pixl_lifecycle_reminders() directly
pixltoken.database = 'lifecycle_unserved'
pixltoken.expiry_reminder = '3d'
pixltoken.rotation_reminder = '90d'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pixltoken');

# Runs a script in one session that LISTENs; returns the payloads received
# (psql prints each notification after the command that delivered it).
sub notifications
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', "LISTEN pixltoken;\n$sql",
		stdout => \$out, stderr => \$err, on_error_stop => 1);
	is($err, '', 'script ran without errors') or diag($err);
	my @payloads = ($out =~ /Asynchronous notification "pixltoken" with payload "(.*?)" received/g);
	return ($out, @payloads);
}

my ($out, @p) = notifications(q{
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
SELECT 'SECRETS', :'token', :'leak_token';
});
my @actions = map { /"action": "([a-z_]+)"/ ? $1 : '?' } @p;
is_deeply(\@actions,
	[qw(plan_changed created updated rotated disabled enabled plan_changed created exposed revoked)],
	'one notification per change, in order; none for the rolled-back revoke');
my @secrets = ($out =~ /SECRETS\|(\S+)\|(\S+)/);
is(scalar(@secrets), 2, 'secrets captured for the check');
ok(!(grep { my $s = $_; grep { index($_, $s) >= 0 } @p } @secrets),
	'no payload holds a secret');
ok(!(grep { /hint|sk_live_|secret_hash/ } @p), 'no payload holds a hint or hash');
like($p[1], qr/^\{"at": "[^"]+", "action": "created", "audit_id": \d+, "store_id": "life-a", "token_id": "tok_[0-9A-Za-z]{16}"\}$/,
	'payload: action, token_id, store_id, audit_id, at');

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
($out, @p) = notifications(q{
SELECT t.name, r.action FROM pixl_lifecycle_reminders() r JOIN pixl_tokens t USING (token_id)
 WHERE t.store_id = 'life-r' ORDER BY 1;
});
my @r = sort map { /"action": "([a-z_]+)"/ ? $1 : '?' } grep { /life-r/ } @p;
is_deeply(\@r, [qw(expiring rotation_due)], 'expiring and rotation_due sent once each');
like($out, qr/Expiring\|expiring/, 'the expiring token got expiring');
like($out, qr/Old\|rotation_due/, 'the old secret got rotation_due');
like(join("\n", grep { /expiring/ } @p), qr/"due_at": "[^"]+"/, 'the expiring payload says when');

($out, @p) = notifications('SELECT count(*) AS again FROM pixl_lifecycle_reminders();');
is(scalar(grep { /life-r/ } @p), 0, 'a second call sends nothing');

$node->restart;
($out, @p) = notifications('SELECT count(*) AS again FROM pixl_lifecycle_reminders();');
is(scalar(grep { /life-r/ } @p), 0, 'nothing again after a restart');

# A rotation makes a new secret: its reminder is due 90 days later, not now;
# moving the rotation back 91 days makes it due once more.
$node->safe_psql('postgres', q{
SELECT pixl_rotate_token(token_id) FROM pixl_tokens WHERE name = 'Old';
});
($out, @p) = notifications('SELECT count(*) FROM pixl_lifecycle_reminders();');
is(scalar(grep { /life-r/ } @p), 0, 'a rotated secret is not due');
$node->safe_psql('postgres', q{
UPDATE pixl_token_registry SET rotated_at = now() - interval '91 days' WHERE name = 'Old';
});
($out, @p) = notifications('SELECT count(*) FROM pixl_lifecycle_reminders();');
is(scalar(grep { /rotation_due/ && /life-r/ } @p), 1, 'the rotated secret is due once it is 91 days old');

$node->stop;
done_testing();
