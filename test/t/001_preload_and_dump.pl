# Copyright: the pixltoken authors.
#
# (a) Without shared_preload_libraries, CREATE EXTENSION fails with 55000,
#     a message naming shared_preload_libraries and a hint, and leaves
#     nothing behind.
# (b) With it: plans (a custom one, a changed seeded one), stores, tokens,
#     rotations and a revocation survive pg_dump and a restore into a new
#     database; the restored database keeps issuing audit ids without
#     collisions, and secrets issued before the dump still verify there
#     with their limits.
# (c) Once installed, a server started without the library makes the
#     functions fail with the same clear error.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

# started without the library (a); (b) adds it
my $node = pixl_node('pixl', preload => undef, databases => undef, intervals => 0);

# ---------------------------------------------------------------------------
# (a) not preloaded
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE store');
my $err = err($node, 'store', 'CREATE EXTENSION pixltoken');
isnt($err, 'ok', 'CREATE EXTENSION fails without shared_preload_libraries');
like($err,
	qr/^55000: pixltoken must be loaded via shared_preload_libraries/,
	'error has SQLSTATE 55000 and names shared_preload_libraries');
like($err,
	qr/^HINT:  Add pixltoken to shared_preload_libraries in postgresql\.conf and restart the server\./m,
	'error has a hint that says what to add');
is( $node->safe_psql(
		'store',
		"SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'pixltoken')
			  + (SELECT count(*) FROM pg_class WHERE relname LIKE 'pixl\\_%')
			  + (SELECT count(*) FROM pg_proc WHERE proname LIKE 'pixl\\_%')"),
	'0',
	'the failed CREATE EXTENSION left nothing behind');

# ---------------------------------------------------------------------------
# (b) preloaded: build some state, dump, restore, compare, verify
# ---------------------------------------------------------------------------
$node->stop;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pixltoken'
pixltoken.database = 'store'
pixltoken.flush_interval = '100ms'
pixltoken.fold_interval = '100ms'
});
$node->start;

$node->safe_psql('store', 'CREATE EXTENSION pixltoken');

# Plans: a custom one, and a seeded one an operator changed.
$node->safe_psql('store', q{
	INSERT INTO pixl_plans VALUES ('partner', 60, 900);
	UPDATE pixl_plans SET max_rate_limit = 700 WHERE plan = 'pro';
	SELECT pixl_set_store_plan('store-partner', 'partner');
	SELECT pixl_set_store_plan('store-pro', 'pro');
	SELECT pixl_set_store_plan('store-growth', 'starter');
	SELECT pixl_set_store_plan('store-growth', 'growth');
});

# Tokens; the secrets are only known here.
sub create_token
{
	my ($store, $name, $scopes, $extra) = @_;
	$extra = $extra ? ", $extra" : '';
	my $row = $node->safe_psql('store',
		"SELECT token_id || ' ' || token FROM pixl_create_token('$store', '$name', ARRAY[$scopes]$extra)");
	return split / /, $row;
}

my ($id_partner, $s_partner) =
  create_token('store-partner', 'Partner 900', "'orders:read', 'products:write'", 'rate_limit => 900');
my ($id_pro, $s_pro) =
  create_token('store-pro', 'Pro 700', "'orders:read'", 'rate_limit => 700');
my ($id_free, $s_free) =
  create_token('store-free', 'Auto-created store', "'analytics:read'");
my ($id_test, $s_test) =
  create_token('store-growth', 'Test mode', "'settings:read'",
	"expires_at => now() + interval '30 days', rate_limit => 250, mode => 'test'");
my ($id_revoked, $s_revoked) =
  create_token('store-growth', 'To revoke', "'orders:read'");
my ($id_grace, $s_grace_old) =
  create_token('store-growth', 'Rotated with grace', "'orders:read'");
my ($id_rot, $s_rot_old) =
  create_token('store-growth', 'Rotated', "'orders:read'");

my $s_grace_new = $node->safe_psql('store', "SELECT pixl_rotate_token('$id_grace', '1 day')");
my $s_rot_new = $node->safe_psql('store', "SELECT pixl_rotate_token('$id_rot')");
$node->safe_psql('store', qq{
	SELECT pixl_revoke_token('$id_revoked');
	SELECT pixl_update_token('$id_partner', name => 'Partner 900 (renamed)');
});

# What must survive, as text.  last_used_at is left out: the worker may
# set it at any time.
my %snapshot_sql = (
	plans => 'SELECT plan, default_rate_limit, max_rate_limit FROM pixl_plans ORDER BY plan',
	stores => 'SELECT store_id, plan, created_at, updated_at FROM pixl_stores ORDER BY store_id',
	tokens => 'SELECT token_id, store_id, name, mode, hint, scopes, rate_limit,
					  effective_rate_limit, expires_at, status, created_at,
					  rotated_at, revoked_at
				 FROM pixl_tokens ORDER BY token_id',
	registry => 'SELECT token_id, encode(secret_hash, \'hex\'), encode(previous_hash, \'hex\'),
						previous_valid_until
				   FROM pixl_token_registry ORDER BY token_id',
	audit => 'SELECT audit_id, at, actor, action, token_id, store_id, detail
				FROM pixl_audit ORDER BY audit_id');
my %before;
$before{$_} = $node->safe_psql('store', $snapshot_sql{$_}) for keys %snapshot_sql;
like($before{plans}, qr/^partner\|60\|900$/m, 'custom plan present before the dump');
like($before{plans}, qr/^pro\|60\|700$/m, 'changed seeded plan present before the dump');
is(scalar(() = $before{tokens} =~ /^tok_/mg), 7, 'seven tokens before the dump');
# 4 plan changes, 7 creates and the auto-created store, 2 rotations, 1
# revocation, 1 update
is(scalar(() = $before{audit} =~ /\n/g) + 1, 16, 'sixteen audit rows before the dump');

my $dumpfile = PostgreSQL::Test::Utils::tempdir() . '/store.sql';
$node->command_ok([ 'pg_dump', '-d', 'store', '-f', $dumpfile ], 'pg_dump of the store database');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', 'restored', '-f', $dumpfile ],
	'restore into a new database without errors');

for my $what (sort keys %snapshot_sql)
{
	is($node->safe_psql('restored', $snapshot_sql{$what}), $before{$what},
		"$what are the same after restore");
}

# The restored database goes on: new audit ids do not collide, new tokens
# and plan changes work.
my $max_audit = $node->safe_psql('restored', 'SELECT max(audit_id) FROM pixl_audit');
$node->safe_psql('restored', q{
	SELECT pixl_set_store_plan('store-new', 'growth');
	SELECT count(*) FROM pixl_create_token('store-partner', 'After restore', ARRAY['orders:read'], rate_limit => 850);
});
is( $node->safe_psql('restored',
		"SELECT count(*) FROM pixl_audit WHERE audit_id > $max_audit"),
	'2',
	'audit rows after the restore take new ids');
is($node->safe_psql('restored',
		"SELECT count(*) FROM pixl_tokens WHERE name = 'After restore' AND effective_rate_limit = 850"),
	'1', 'a token created after the restore uses the custom plan');

# Secrets issued before the dump verify in the restored database, with
# their limits; a revoked one stays revoked, and a value replaced without
# grace stays unknown.
sub verify
{
	my ($db, $secret, $scope) = @_;
	return $node->safe_psql($db,
		"SELECT status || ' ' || reason || ' ' || coalesce(token_id, '-') || ' ' || coalesce(rate_limit::text, '-')
		   FROM pixl_verify_token('$secret', '$scope')");
}

# No SKIP: pixl_verify_token is part of every version, so these eight
# checks always run.
# (1.0's form, and since 1.2 the ones with a cost and with a transport)
is($node->safe_psql('restored',
		"SELECT count(*) FROM pg_proc WHERE proname = 'pixl_verify_token'"),
	$node->safe_psql('store',
		"SELECT count(*) FROM pg_proc WHERE proname = 'pixl_verify_token'"),
	'pixl_verify_token exists in the restored database, every form of it');
is(verify('restored', $s_partner, 'orders:read'), "200 ok $id_partner 900",
	'custom-plan token verifies after restore with limit 900');
is(verify('restored', $s_pro, 'orders:read'), "200 ok $id_pro 700",
	'token of the changed seeded plan keeps its limit 700');
is(verify('restored', $s_free, 'analytics:read'), "200 ok $id_free 60",
	'token of an auto-created store verifies with the default 60');
is(verify('restored', $s_test, 'settings:read'), "200 ok $id_test 250",
	'test-mode token verifies with limit 250');
is(verify('restored', $s_grace_old, 'orders:read'), "200 ok $id_grace 60",
	'old secret within its grace period verifies');
is(verify('restored', $s_grace_new, 'orders:read'), "200 ok $id_grace 60",
	'new secret after a grace rotation verifies');
like(verify('restored', $s_revoked, 'orders:read'), qr/^401 revoked /,
	'revoked token stays revoked');
like(verify('restored', $s_rot_old, 'orders:read'), qr/^401 unknown /,
	'secret replaced without grace stays unknown');

# ---------------------------------------------------------------------------
# (c) installed, then the server runs without the library
# ---------------------------------------------------------------------------
$node->stop;
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''\n");
$node->start;
$err = err($node, 'restored',
	"SELECT * FROM pixl_create_token('store-x', 'n', ARRAY['orders:read'])");
isnt($err, 'ok', 'pixl_create_token fails when the library is not preloaded');
like($err,
	qr/^55000: pixltoken must be loaded via shared_preload_libraries.*HINT:  Add pixltoken to shared_preload_libraries/s,
	'with SQLSTATE 55000 and the hint');
is($node->safe_psql('restored', "SELECT count(*) FROM pixl_stores WHERE store_id = 'store-x'"),
	'0', 'and nothing was written');

$node->stop;
done_testing();
