# Copyright: the pixltoken authors.
#
# No secret in any log, table or statistics file (issue #7, item 2).
#
# The server logs everything it can: log_statement = all,
# log_min_duration_statement = 0, log_min_error_statement = debug5,
# auto_explain of every plan with its parameters, pg_stat_statements.  The
# README's recipe is applied to app_server (log_parameter_max_length = 0
# and log_parameter_max_length_on_error = 0); token_admin gets no recipe,
# so its statements exercise the extension's own guard (secret_guard.c).
# Then tokens are created, verified (as literals and as bind parameters),
# rotated, and every error path that can carry a secret is taken, also on
# a server where the library is not preloaded.  Finally the server log,
# a pg_dump of the database and every file under pg_stat/ and pg_stat_tmp/
# are searched for every secret used: zero hits.  Positive controls show
# that the statements were logged (masked) and the searches can find a
# secret.
use strict;
use warnings;

use File::Find;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('secrets');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pixltoken,auto_explain,pg_stat_statements'
pixltoken.database = 'postgres'
pixltoken.flush_interval = '100ms'
log_statement = 'all'
log_min_duration_statement = 0
log_min_error_statement = debug5
log_min_messages = debug1
log_error_verbosity = verbose
auto_explain.log_min_duration = 0
auto_explain.log_analyze = on
auto_explain.log_verbose = on
auto_explain.log_nested_statements = on
pg_stat_statements.track = all
pg_stat_statements.track_utility = on
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION pixltoken;
	CREATE EXTENSION pg_stat_statements;
	CREATE ROLE app_server LOGIN;
	CREATE ROLE token_admin LOGIN IN ROLE pixl_platform_admin;
	-- README's recipe for the API tier
	ALTER ROLE app_server SET log_parameter_max_length = 0;
	ALTER ROLE app_server SET log_parameter_max_length_on_error = 0;
	GRANT EXECUTE ON FUNCTION pixl_verify_token(text, text, text, text, text, inet)
		TO app_server;
	GRANT EXECUTE ON FUNCTION
		pixl_create_token(text, text, text[], timestamptz, int, text, text[], jsonb),
		pixl_rotate_token(text, interval), pixl_revoke_token(text),
		pixl_update_token(text, text, text[], int, timestamptz, text[], jsonb),
		pixl_set_store_plan(text, text), pixl_usage_summary(text, text),
		pixl_recent_calls(text, int, int)
		TO token_admin;
	GRANT SELECT ON pixl_tokens, pixl_audit, pixl_plans TO token_admin;
});
# pixl_log_response's signature changes in 1.1: grant every version
$node->safe_psql('postgres', q{
	DO $$
	DECLARE f regprocedure;
	BEGIN
		FOR f IN SELECT p.oid FROM pg_proc p WHERE p.proname = 'pixl_log_response' LOOP
			EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO app_server', f);
		END LOOP;
	END $$;
});

my @secrets;
my $admin = [ '-U', 'token_admin' ];
my $app = [ '-U', 'app_server' ];

sub admin_sql
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => $admin);
}

# Every statement that may fail; errors are expected, their text is not
# checked here (the regression tests do that), only what reaches the log.
sub try_sql
{
	my ($sql, $who) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, extra_params => $who);
	return $err;
}

admin_sql("SELECT pixl_set_store_plan('shop-1', 'pro')");
my ($id, $s1) = split /\|/, admin_sql(
	"SELECT token_id || '|' || token FROM pixl_create_token('shop-1', 'Logged', ARRAY['orders:read'], rate_limit => 600)");
push @secrets, $s1;
my ($id2, $s2) = split /\|/, admin_sql(
	"SELECT token_id || '|' || token FROM pixl_create_token('shop-1', 'Test mode', ARRAY['orders:read'], mode => 'test')");
push @secrets, $s2;

# Verification: literals (simple protocol) and bind parameters (pgbench
# in extended mode), by app_server.
is( $node->safe_psql('postgres',
		"SELECT status FROM pixl_verify_token('$s1', 'orders:read', 'shop-1', 'GET', '/v1/orders')",
		extra_params => $app),
	'200', 'a literal secret verifies');
my $script = PostgreSQL::Test::Utils::tempdir() . '/verify.sql';
open my $fh, '>', $script or die;
print $fh "SELECT status FROM pixl_verify_token(:secret, :scope, :store);\n";
print $fh "SELECT * FROM pixl_verify_token(:secret, :badscope);\n";
close $fh;
$node->command_ok(
	[ 'pgbench', '-n', '-t', '3', '-M', 'extended', '-U', 'app_server',
	  '-f', "$script\@1", '-D', "secret=$s1", '-D', 'scope=orders:read',
	  '-D', 'store=shop-1', '-D', 'badscope=orders:read', 'postgres' ],
	'pgbench verifies with bind parameters');
# the same with a scope that is the secret itself: PX001, every time
$node->command_fails(
	[ 'pgbench', '-n', '-t', '1', '-M', 'extended', '-U', 'app_server',
	  '-f', $script, '-D', "secret=$s2", '-D', 'scope=orders:read',
	  '-D', 'store=shop-1', '-D', "badscope=$s2", 'postgres' ],
	'pgbench with a secret as scope fails');
# and as token_admin, who has no recipe: bind parameters of a failing
# statement (log_parameter_max_length_on_error defaults to 0, but
# log_min_duration_statement and auto_explain print them)
$node->safe_psql('postgres', 'GRANT EXECUTE ON FUNCTION pixl_verify_token(text, text, text, text, text, inet) TO token_admin');
$node->command_ok(
	[ 'pgbench', '-n', '-t', '2', '-M', 'extended', '-U', 'token_admin',
	  '-f', "$script\@1", '-D', "secret=$s2", '-D', 'scope=orders:read',
	  '-D', 'store=shop-1', '-D', 'badscope=orders:read', 'postgres' ],
	'pgbench verifies with bind parameters, no recipe');

# Rotation, and every management path handed a secret.
my $s3 = admin_sql("SELECT pixl_rotate_token('$id', '1 hour')");
push @secrets, $s3;
like($s3, qr/^sk_live_/, 'rotated');
my @errors = (
	"SELECT pixl_rotate_token('$s1')",
	"SELECT pixl_revoke_token('$s3')",
	"SELECT pixl_update_token('$s1', name => 'x')",
	"SELECT pixl_update_token('$id', name => '$s1')",
	"SELECT * FROM pixl_create_token('shop-1', '$s1', ARRAY['orders:read'])",
	"SELECT * FROM pixl_create_token('$s1', 'n', ARRAY['orders:read'])",
	"SELECT * FROM pixl_create_token('shop-1', 'n', ARRAY['$s1'])",
	"SELECT * FROM pixl_create_token('shop-1', 'n', ARRAY['orders:read'], mode => '$s1')",
	"SELECT pixl_set_store_plan('shop-1', '$s1')",
	"SELECT * FROM pixl_usage_summary('$s1')",
	"SELECT * FROM pixl_recent_calls('x$s1')",
	"SELECT * FROM pixl_verify_token('$s1', '$s1')",
	"SELECT * FROM pixl_verify_token('$s1', 'orders:read') WHERE 1/0 = 1",
	"SELECT '$s1'::int");
my $n_err = 0;
for my $sql (@errors)
{
	$n_err++ if try_sql($sql, $admin) =~ /ERROR/;
}
is($n_err, scalar(@errors), 'every error path failed as expected');
my $app_err = try_sql("SELECT * FROM pixl_verify_token('$s2', '$s2')", $app);
like($app_err, qr/unknown scope/, 'app_server: secret as scope is PX001');
unlike($app_err, qr/\Q$s2\E/, 'and its message does not echo the secret');

# Not preloaded: the first call in a backend loads the library; its error
# hides the statement, and with bind parameters and the recipe nothing
# else carries the secret.
$node->stop;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'auto_explain,pg_stat_statements'\n");
$node->start;
$node->command_fails(
	[ 'pgbench', '-n', '-t', '1', '-M', 'extended', '-U', 'app_server',
	  '-f', "$script\@1", '-D', "secret=$s3", '-D', 'scope=orders:read',
	  '-D', 'store=shop-1', '-D', 'badscope=orders:read', 'postgres' ],
	'verification with bind parameters fails without preloading');
# (a literal would be logged by log_statement before the library is even
# loaded: README says so; the recipe's bind parameters are the defence)
like(try_sql("SELECT * FROM pixl_verify_token(NULL)", $app),
	qr/must be loaded via shared_preload_libraries/, 'the not-preloaded error');

# Dump the database, stop cleanly (statistics files are written), search.
my $dump = $node->basedir . '/dump.sql';
$node->command_ok([ 'pg_dump', '-d', 'postgres', '-f', $dump ], 'pg_dump');
$node->stop;

my @files = ($node->logfile, $dump);
find(sub { push @files, $File::Find::name if -f $_ },
	$node->data_dir . '/pg_stat', $node->data_dir . '/pg_stat_tmp');
my $logtext = slurp_file($node->logfile);

sub hits
{
	my ($needle) = @_;
	my $n = 0;
	for my $f (@files)
	{
		my $text = slurp_file($f);
		$n++ while $text =~ /\Q$needle\E/g;
	}
	return $n;
}

# Positive controls: the log has the statements (masked), and the search
# finds things that are there.
like($logtext, qr/statement: SELECT status FROM pixl_verify_token\('sk_live_\*{38}'/,
	'log_statement logged the literal verification, masked');
like($logtext, qr/sk_test_\*{38}/, 'bind parameters of the admin reached the log masked');
cmp_ok(hits('pixl_verify_token'), '>', 0, 'the search finds what the log holds');
cmp_ok(scalar(@files), '>=', 3, 'log, dump and statistics files searched');

for my $i (0 .. $#secrets)
{
	# the random part and checksum: what makes a secret a secret
	my $tail = substr($secrets[$i], 8);
	is(hits($tail), 0, "secret $i: no trace in log, dump or pg_stat files")
	  or diag(join("\n", grep { /\Q$tail\E/ } split /\n/, $logtext));
}
done_testing();
