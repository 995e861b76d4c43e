# Copyright: the pixltoken authors.
#
# No secret in any log, table or statistics file.
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
#
# Also: a secret in a verification's method or endpoint (query
# string or path) is in no usage table, rollup, dashboard or dump, and the
# endpoint is kept as its path; a secret in a disable reason or leak source
# is stored masked, in metadata refused; node dumps of debug_print_plan &c.
# show no secret's bytes; a literal split by SQL string continuation is
# masked in the log; EXPLAIN, DECLARE CURSOR and DO keep no secret in
# pg_stat_statements when pixltoken is listed after it (the README's order),
# and the server warns at start when it is not.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use File::Find;
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pixl_node('secrets', preload => 'auto_explain,pg_stat_statements,pixltoken', conf => q{
# these tests follow every call through the raw-row pipeline
pixltoken.request_log = 'all'
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
		pixl_recent_calls(text, int, int), pixl_usage_endpoints(text, text),
		pixl_disable_token(text, text), pixl_report_leaked(text, text)
		TO token_admin;
	GRANT SELECT ON pixl_tokens, pixl_audit, pixl_plans, pixl_usage_by_hour,
		pixl_usage_by_day, pixl_usage_by_store TO token_admin;
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
# errors are expected, their text is not checked here (the regression
# tests do that), only what reaches the log
my $n_err = 0;
for my $sql (@errors)
{
	$n_err++ if err($node, 'postgres', $sql, as => 'token_admin') ne 'ok';
}
is($n_err, scalar(@errors), 'every error path failed as expected');
my $app_err = err($node, 'postgres', "SELECT * FROM pixl_verify_token('$s2', '$s2')",
	as => 'app_server', stderr => \my $app_stderr);
like($app_err, qr/unknown scope/, 'app_server: secret as scope is PX001');
unlike($app_stderr, qr/\Q$s2\E/, 'and its message does not echo the secret');

# A secret in the method and endpoint of a verification: the endpoint is
# kept as its path (query string and fragment dropped), a secret's shape
# left in the path or method is masked, before anything reaches shared
# memory; so no raw row, rollup, dashboard or dump holds it.
my ($id4, $s4) = split /\|/, admin_sql(
	"SELECT token_id || '|' || token FROM pixl_create_token('shop-1', 'Endpoint', ARRAY['orders:read'])");
push @secrets, $s4;
my $tail4 = substr($s4, 8);
my $head4 = substr($s4, 8, 7);	# what a 15-byte method keeps of it
for my $call ("'GET', '/v1/orders?api_key=$s4'",
			  "'GET', '/v1/orders#$s4'",
			  "'GET', '/v1/keys/$s4/info?x=1'",
			  "'$s4', '/v1/method'")
{
	is($node->safe_psql('postgres',
			"SELECT status FROM pixl_verify_token('$s4', 'orders:read', 'shop-1', $call)",
			extra_params => $app),
		'200', "verified with a secret in ($call)" =~ s/\Q$tail4\E/.../r);
}
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 4 FROM pixl_recent_calls('$id4')"),
	'the raw rows arrived');
ok( $node->poll_query_until('postgres',
		"SELECT coalesce(sum(requests), 0) = 4 FROM pixl_usage_hourly WHERE token_id = '$id4'"),
	'the counts were folded into the rollups');
my $masked4 = 'sk_live_' . ('*' x 38);
# (a method is kept to 15 bytes: "sk_live_" and 7 masked characters)
my $method4 = 'sk_live_' . ('*' x 7);
is( admin_sql("SELECT string_agg(method || ' ' || endpoint, ', ' ORDER BY method COLLATE \"C\", endpoint COLLATE \"C\") FROM pixl_recent_calls('$id4')"),
	"GET /v1/keys/$masked4/info, GET /v1/orders, GET /v1/orders, $method4 /v1/method",
	'pixl_recent_calls: the path, secrets masked');
is( admin_sql("SELECT string_agg(method || ' ' || endpoint || ' ' || requests, ', ' ORDER BY method COLLATE \"C\", endpoint COLLATE \"C\") FROM pixl_usage_endpoints('$id4', 'today')"),
	"GET /v1/keys/$masked4/info 1, GET /v1/orders 2, $method4 /v1/method 1",
	'pixl_usage_endpoints: the path, secrets masked');
is( admin_sql("SELECT count(*) FROM pixl_usage_by_hour WHERE token_id = '$id4' AND endpoint = '/v1/orders'"),
	'1', 'the hourly dashboard has the path');
my $db_hits = $node->safe_psql('postgres', qq{
	SELECT (SELECT count(*) FROM pixl_usage_events WHERE method || endpoint LIKE '%$head4%')
		 + (SELECT count(*) FROM pixl_usage_hourly WHERE method || endpoint LIKE '%$head4%')
		 + (SELECT count(*) FROM pixl_usage_by_hour WHERE method || endpoint LIKE '%$head4%')
		 + (SELECT count(*) FROM pixl_usage_by_day WHERE method || endpoint LIKE '%$head4%')
		 + (SELECT count(*) FROM pixl_usage_events WHERE endpoint LIKE '%?%' OR endpoint LIKE '%#%')});
is($db_hits, '0', 'no usage table or dashboard holds the secret or a query string');

# Free text that lands in pixl_audit and the registry: a disable reason and
# a leak source are stored with the secret masked (the action is not
# refused); metadata with a secret is refused (PX045), like a name.
admin_sql("SELECT pixl_disable_token('$id4', 'leaked as $s4 in a ticket')");
is( admin_sql("SELECT detail->>'reason' FROM pixl_audit WHERE token_id = '$id4' AND action = 'disable'"),
	"leaked as $masked4 in a ticket", 'the disable reason is audited masked');
like(err($node, 'postgres', "SELECT pixl_update_token('$id4', metadata => '{\"k\": {\"v\": \"$s4\"}}')",
		as => 'token_admin'),
	qr/a token secret was passed in token metadata/, 'metadata holding a secret is refused');
admin_sql("SELECT pixl_report_leaked('$s4', 'pasted: $s4')");
is( admin_sql("SELECT detail->>'source' FROM pixl_audit WHERE token_id = '$id4' AND action = 'expose'"),
	"pasted: $masked4", 'the leak source is audited masked');

# debug_print_parse/_rewritten/_plan print a Const's bytes as a node dump:
# a secret's bytes are masked.  With a literal (the statement is hidden)
# and with a bind parameter (a custom plan has it as a Const), for a
# session and for a whole database.
my ($id5, $s5) = split /\|/, admin_sql(
	"SELECT token_id || '|' || token FROM pixl_create_token('shop-1', 'Plan dump', ARRAY['orders:read'])");
push @secrets, $s5;
for my $pretty ('on', 'off')
{
	is( admin_sql("SET debug_print_plan = on; SET debug_print_parse = on; SET debug_print_rewritten = on;
				   SET debug_pretty_print = $pretty;
				   SELECT status FROM pixl_verify_token('$s5', 'orders:read', 'shop-1', 'GET', '/v1/x?k=' || '$s5')"),
		'200', "verified with debug_print_plan on, debug_pretty_print $pretty");
}
# the same byte list laid out as both formats can break it: plain (every
# space a line break) and pretty (the tag starts a line; then a line break
# and the indentation every 7 and every 11 characters, numbers cut anywhere);
# auto_explain off: it would print the test's own decimals as a literal
$node->safe_psql('postgres', qq{SET auto_explain.log_min_duration = -1; DO \$\$
DECLARE
	list text := ' 50 [ -56 0 0 0 ' ||
		(SELECT string_agg(ascii(c)::text, ' ' ORDER BY n)
		   FROM regexp_split_to_table('$s5', '') WITH ORDINALITY AS t(c, n)) || ' ]';
BEGIN
	RAISE LOG 'plain: %', replace(':constvalue' || list, ' ', E'\n');
	FOR w IN 7 .. 11 BY 4 LOOP
		RAISE LOG 'pretty:%', E'\n     :constvalue' ||
			(SELECT string_agg(substr(list, i, w), E'\n     ' ORDER BY i)
			   FROM generate_series(1, length(list), w) AS i);
	END LOOP;
END
\$\$});
$node->safe_psql('postgres', 'ALTER DATABASE postgres SET debug_print_plan = on');
$node->command_ok(
	[ 'pgbench', '-n', '-t', '2', '-M', 'extended', '-U', 'app_server',
	  '-f', "$script\@1", '-D', "secret=$s5", '-D', 'scope=orders:read',
	  '-D', 'store=shop-1', '-D', 'badscope=orders:read', 'postgres' ],
	'pgbench with debug_print_plan on for the database');
$node->safe_psql('postgres', 'ALTER DATABASE postgres RESET debug_print_plan');

# A literal split by SQL string continuation (quote, a newline, quote) is
# one literal: masked in the log like any other.
my ($id6, $s6) = split /\|/, admin_sql(
	"SELECT token_id || '|' || token FROM pixl_create_token('shop-1', 'Split', ARRAY['orders:read'])");
push @secrets, $s6;
for my $at (8, 5)
{
	my $split6 = "'" . substr($s6, 0, $at) . "' -- one\n  -- two\n\t'" . substr($s6, $at) . "'";
	is( admin_sql("SELECT status FROM pixl_verify_token($split6, 'orders:read')"),
		'200', "verified with a literal split after $at characters");
	like(err($node, 'postgres', "SELECT * FROM pixl_verify_token($split6, 'no:such') ", as => 'token_admin'),
		qr/unknown scope/, 'and its error');
}

# Utility statements: pg_stat_statements keeps their text as it is; the
# extension hands it (and everything below it) the text with secrets
# masked, when it comes after pg_stat_statements in the preload list.
my ($id7, $s7) = split /\|/, admin_sql(
	"SELECT token_id || '|' || token FROM pixl_create_token('shop-1', 'Utility', ARRAY['orders:read'])");
push @secrets, $s7;
admin_sql("EXPLAIN SELECT * FROM pixl_verify_token('$s7', 'orders:read')");
admin_sql("EXPLAIN (ANALYZE, VERBOSE) SELECT * FROM pixl_verify_token('$s7', 'orders:read')");
is( admin_sql("BEGIN; DECLARE c CURSOR FOR SELECT status FROM pixl_verify_token('$s7', 'orders:read'); FETCH c; COMMIT"),
	'200', 'DECLARE CURSOR verifies');
admin_sql("DO \$\$BEGIN PERFORM pixl_verify_token('$s7', 'orders:read'); END\$\$");
admin_sql("SELECT 1; EXPLAIN SELECT * FROM pixl_verify_token('$s7', 'orders:read'); SELECT 2");
my $tail7 = substr($s7, 8);
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%' || '$s7' || '%'"),
	'0', 'pg_stat_statements: no utility statement with the secret');
cmp_ok(
	$node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_statements WHERE query ~ '^(EXPLAIN|DECLARE|DO).*sk_live_\\*{38}'"),
	'>=', 3, 'pg_stat_statements has them, masked');
unlike(slurp_file($node->logfile), qr/pixltoken is not the last library/,
	'no warning about the preload order');

# Not preloaded: the first call in a backend loads the library; its error
# hides the statement, and with bind parameters and the recipe nothing
# else carries the secret.
# The wrong order: pg_stat_statements would see utility statements first.
$node->stop;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pixltoken,pg_stat_statements'\n");
$node->start;
like(slurp_file($node->logfile), qr/pixltoken is not the last library/,
	'the server warns when pixltoken is listed before pg_stat_statements');
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
like(err($node, 'postgres', "SELECT * FROM pixl_verify_token(NULL)", as => 'app_server'),
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

# Node dumps print a constant's bytes as decimals, broken over lines
# anywhere: search the log without its white space.  The prefix's bytes
# are there (the dumps were logged), no secret's first or last bytes are.
my $flatlog = $logtext =~ s/\s+//gr;
sub decimals { return join('', map { ord($_) } split //, $_[0]); }
ok($flatlog =~ /\Q@{[decimals('sk_live_')]}\E\*/, 'node dumps were logged, masked');

for my $i (0 .. $#secrets)
{
	# the random part and checksum: what makes a secret a secret
	my $tail = substr($secrets[$i], 8);
	is(hits($tail), 0, "secret $i: no trace in log, dump or pg_stat files")
	  or diag(join("\n", grep { /\Q$tail\E/ } split /\n/, $logtext));
	my ($first, $last) = (decimals(substr($tail, 0, 12)), decimals(substr($tail, -12)));
	ok($flatlog !~ /\Q$first\E|\Q$last\E/, "secret $i: no trace of its bytes in the log");
}
done_testing();
