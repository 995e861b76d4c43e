# Copyright: the pixltoken authors.
#
# Attacks on the SQL that pixltoken's C code runs as a privileged role.
# Each one plants an operator that escalates its creator to superuser when a
# superuser evaluates it, then makes a path of pixltoken run its catalog
# look-up under a search_path that finds it:
#
#  (a) the database owner (not a superuser) plants public.=(oid, oid) and
#      ALTER DATABASE ... SET search_path = public, pg_catalog; the usage
#      worker (a superuser) serves that database from its next start;
#  (b) app_server, with CREATE on a schema of its own, plants
#      app.=(name, name) and calls pixl_log_response under
#      SET search_path = app, pg_catalog in a database no worker serves
#      (write-through runs as the extension's owner);
#  (c) the owner of a database no worker serves plants public.=(name, name)
#      and sets the database's search_path; the next verification by the
#      unprivileged app_server wrote its usage event through as the
#      extension's owner (1.0; 1.1's verification writes no table).
#
# Every planted function logs each call with the role that made it into a
# table its planter owns, so the test also shows which privileged role (if
# any) evaluated attacker code.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pixl_node('attacks', databases => 'shop', conf => q{
# these tests follow every call through the raw-row pipeline
pixltoken.request_log = 'all'
max_worker_processes = 16
});

$node->safe_psql('postgres', q{
	CREATE ROLE dbo LOGIN;
	CREATE ROLE dbo2 LOGIN;
	CREATE ROLE app_server LOGIN;
	CREATE DATABASE shop OWNER dbo;
	CREATE DATABASE apps;
	CREATE DATABASE market OWNER dbo2;
	CREATE EXTENSION pixltoken;
});

# The extension (installed by a superuser, so owned by one), a token and
# README's app-server grant, in each database.
my %secret;
for my $db (qw(shop apps market))
{
	$node->safe_psql($db, q{
		CREATE EXTENSION pixltoken;
		GRANT EXECUTE ON FUNCTION pixl_verify_token(text, text, text, text, text, inet)
			TO app_server;
	});
	# pixl_log_response's signature changes in 1.1: grant every version
	$node->safe_psql($db, q{
		DO $$
		DECLARE f regprocedure;
		BEGIN
			FOR f IN SELECT p.oid FROM pg_proc p WHERE p.proname = 'pixl_log_response' LOOP
				EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO app_server', f);
			END LOOP;
		END $$;
	});
	$secret{$db} = $node->safe_psql($db,
		"SELECT token FROM pixl_create_token('store-1', 'T', ARRAY['orders:read'])");
}

# A planted operator: its function logs who evaluates it, escalates the
# planter when that is a superuser, and otherwise answers like the real one.
sub plant_sql
{
	my ($schema, $type, $planter) = @_;
	return qq{
		CREATE TABLE $schema.attack_log (at timestamptz DEFAULT clock_timestamp(),
										 who text, super boolean);
		GRANT INSERT ON $schema.attack_log TO PUBLIC;
		CREATE FUNCTION $schema.evil_eq($type, $type) RETURNS boolean
			LANGUAGE plpgsql AS \$f\$
		DECLARE
			s boolean;
		BEGIN
			SELECT r.rolsuper INTO s FROM pg_catalog.pg_roles r
			 WHERE r.rolname OPERATOR(pg_catalog.=) current_user;
			INSERT INTO $schema.attack_log (who, super) VALUES (current_user, s);
			IF s THEN
				EXECUTE 'ALTER ROLE $planter SUPERUSER';
			END IF;
			RETURN \$1 OPERATOR(pg_catalog.=) \$2;
		END
		\$f\$;
		CREATE OPERATOR $schema.= (LEFTARG = $type, RIGHTARG = $type,
								   FUNCTION = $schema.evil_eq);
	};
}

sub is_superuser
{
	my ($role) = @_;
	return $node->safe_psql('postgres',
		"SELECT rolsuper FROM pg_roles WHERE rolname = '$role'");
}

# Calls of the planted function by a superuser, as "n/total".
sub privileged_calls
{
	my ($db, $schema) = @_;
	return $node->safe_psql($db,
		"SET search_path = pg_catalog;
		 SELECT count(*) FILTER (WHERE super) || '/' || count(*) FROM $schema.attack_log");
}

# Positive control: the planter itself, under the planted search_path,
# evaluates an unqualified "=" of the planted type, so the trap is shown to
# be live (one unprivileged call logged) before anything is asked to avoid it.
sub trap_is_live
{
	my ($db, $role, $set_path, $type, $what) = @_;
	is( $node->safe_psql($db,
			"$set_path SELECT '1'::$type = '1'::$type",
			extra_params => [ '-U', $role ]),
		't', "$what: the planted operator answers like the real one");
	my $schema = $set_path =~ /app/ ? 'app' : 'public';
	like(privileged_calls($db, $schema), qr{^0/1$},
		"$what: an unqualified = under that search_path calls the planted one (positive control)");
}

# ---------------------------------------------------------------------------
# (a) database owner + ALTER DATABASE search_path -> the worker's next start
# ---------------------------------------------------------------------------
$node->safe_psql('shop', plant_sql('public', 'oid', 'dbo')
	  . 'ALTER DATABASE shop SET search_path = public, pg_catalog;',
	extra_params => [ '-U', 'dbo' ]);
is(is_superuser('dbo'), 'f', 'dbo is not a superuser before the restart');
trap_is_live('shop', 'dbo', '', 'oid', '(a)');

$node->restart;
ok( $node->poll_query_until('postgres',
		"SELECT worker_state = 'serving' FROM pixl_stats() WHERE datname = 'shop'"),
	'the worker serves shop after the restart');

# The worker looks the extension up at start and for each batch: make it
# write one (verified by the unprivileged app_server).
my $flushed_before = $node->safe_psql('postgres',
	"SELECT events_flushed FROM pixl_stats() WHERE datname = 'shop'");
is( $node->safe_psql('shop',
		"SELECT status FROM pixl_verify_token('$secret{shop}', 'orders:read')",
		extra_params => [ '-U', 'app_server' ]),
	'200', 'app_server verifies in shop');
ok( $node->poll_query_until('postgres',
		"SELECT events_flushed > $flushed_before FROM pixl_stats() WHERE datname = 'shop'"),
	'the worker wrote the event');
is(is_superuser('dbo'), 'f',
	'(a) the database owner did not become superuser through the worker');
like(privileged_calls('shop', 'public'), qr{^0/},
	'(a) no superuser evaluated the planted public.=(oid, oid)');

# ---------------------------------------------------------------------------
# (b) app_server's own schema + SET search_path + pixl_log_response
# ---------------------------------------------------------------------------
$node->safe_psql('apps', 'CREATE SCHEMA app AUTHORIZATION app_server');
$node->safe_psql('apps', plant_sql('app', 'name', 'app_server'),
	extra_params => [ '-U', 'app_server' ]);
trap_is_live('apps', 'app_server', 'SET search_path = app, pg_catalog;', 'name', '(b)');
# request_id is bigint in 1.0 and text in 1.1: keep it typed in a temp table
my ($ret, $stdout, $stderr) = $node->psql('apps', qq{
	CREATE TEMP TABLE r AS
		SELECT request_id FROM pixl_verify_token('$secret{apps}', 'orders:read');
	SET search_path = app, pg_catalog;
	SELECT public.pixl_log_response(r.request_id, 200, 1) FROM pg_temp.r r;
	SELECT 'logged ' || count(*) FROM pg_temp.r r WHERE r.request_id IS NOT NULL;
}, extra_params => [ '-U', 'app_server' ]);
like($stdout, qr/logged 1/, 'app_server verified and logged a response in apps');
is($ret, 0, 'pixl_log_response under the planted search_path returns')
  or diag($stderr);
is(is_superuser('app_server'), 'f',
	'(b) app_server did not become superuser through pixl_log_response');
like(privileged_calls('apps', 'app'), qr{^0/},
	'(b) no superuser evaluated the planted app.=(name, name)');

# ---------------------------------------------------------------------------
# (c) owner of an unserved database + ALTER DATABASE search_path -> the
#     next verification writes through as the extension's owner
# ---------------------------------------------------------------------------
$node->safe_psql('market', plant_sql('public', 'name', 'dbo2')
	  . 'ALTER DATABASE market SET search_path = public, pg_catalog;',
	extra_params => [ '-U', 'dbo2' ]);
trap_is_live('market', 'dbo2', '', 'name', '(c)');
is( $node->safe_psql('market',
		"SELECT status FROM pixl_verify_token('$secret{market}', 'orders:read')",
		extra_params => [ '-U', 'app_server' ]),
	'200', 'app_server verifies in market');
# 1.0 wrote the event through here, as the extension's owner; 1.1's
# verification writes no table at all (then this attack has no way in)
note('usage rows written through: '
	  . $node->safe_psql('market',
		"SET search_path = pg_catalog; SELECT count(*) FROM public.pixl_usage_events"));
is(is_superuser('dbo2'), 'f',
	'(c) the database owner did not become superuser through write-through');
like(privileged_calls('market', 'public'), qr{^0/},
	'(c) no superuser evaluated the planted public.=(name, name)');

$node->stop;
done_testing();
