# Copyright: the pixltoken authors.
#
# The upgrade path, as pg_stat_statements tests its chain:
# (a) 1.0 installed (CREATE EXTENSION pixltoken VERSION '1.0') runs against
#     the current library: tokens, verification, usage, audit.
# (b) ALTER EXTENSION pixltoken UPDATE brings it to the current version
#     (1.0 -> 1.1 -> 1.2, chained by PostgreSQL), and the result is the same
#     as a fresh install in another database, and as the other paths from
#     every released version (1.1 -> 1.2; 1.0 -> 1.1, then 1.1 -> 1.2 in a
#     second command): the extension's member objects (pg_describe_object
#     over pg_depend), their ACLs and comments, the definitions of its
#     functions, views, tables (columns in order), indexes, constraints and
#     triggers, and the tables marked for pg_dump.
# (c) Every 1.0 token still verifies as before (200, revoked, old secret
#     after rotation), with the 1.1 result shape, and the usage and audit
#     rows written under 1.0 are all there.
# (d) 1.0-era grants keep working.
# (e) The install script creates each object once: no function, view or
#     table of a fresh install is created twice or altered after its
#     creation (an event trigger records what CREATE EXTENSION runs).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pixltoken'
pixltoken.database = 'upgraded,fresh'
pixltoken.flush_interval = '100ms'
pixltoken.fold_interval = '100ms'
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
$node->safe_psql('postgres', 'CREATE DATABASE fresh');

# ---------------------------------------------------------------------------
# (a) 1.0, filled
# ---------------------------------------------------------------------------
$node->safe_psql('upgraded', "CREATE EXTENSION pixltoken VERSION '1.0'");
is($node->safe_psql('upgraded', "SELECT extversion FROM pg_extension WHERE extname = 'pixltoken'"),
	'1.0', 'version 1.0 installed');

$node->safe_psql('upgraded', "SELECT pixl_set_store_plan('shop1', 'growth')");
my %secret;
my %id;
for my $t (qw(live test revoked rotated limited))
{
	my $mode = $t eq 'test' ? 'test' : 'live';
	my $limit = $t eq 'limited' ? 2 : 100;
	my $out = $node->safe_psql('upgraded', qq{
		SELECT token_id || ' ' || token FROM pixl_create_token('shop1', 'tok $t',
			ARRAY['products:read', 'orders:write'], rate_limit => $limit, mode => '$mode')});
	($id{$t}, $secret{$t}) = split / /, $out;
}
my $old_rotated = $secret{rotated};
$secret{rotated} = $node->safe_psql('upgraded', "SELECT pixl_rotate_token('$id{rotated}')");
$node->safe_psql('upgraded', "SELECT pixl_revoke_token('$id{revoked}')");
$node->safe_psql('upgraded', "SELECT pixl_update_token('$id{live}', name => 'renamed')");

# 1.0's SQL against the current library: verification and its bigint request id
is($node->safe_psql('upgraded', qq{
	SELECT status || ' ' || reason || ' ' || pg_typeof(request_id)
	  FROM pixl_verify_token('$secret{live}', 'products:read', 'shop1', 'GET', '/p', '10.0.0.1')}),
	'200 ok bigint', '1.0 definitions verify with the current library');
my $rid = $node->safe_psql('upgraded',
	"SELECT request_id FROM pixl_verify_token('$secret{live}', 'orders:read', 'shop1', 'POST', '/o')");
$node->safe_psql('upgraded', "SELECT pixl_log_response($rid, 201, 12.5)");
is($node->safe_psql('upgraded', qq{
	SELECT string_agg(status::text, ',') FROM
	  (SELECT (pixl_verify_token('$secret{limited}', 'products:read')).status FROM generate_series(1, 3)) s}),
	'200,200,429', 'the rate limit works under 1.0');

# usage: backfilled history (older than the retention too) and live events
$node->safe_psql('upgraded', qq{
	SELECT pixl_backfill_usage(ARRAY['$id{live}', '$id{live}', '$id{test}', '$id{revoked}'],
		ARRAY[now() - interval '200 days', now() - interval '3 days', now() - interval '1 hour', now() - interval '2 days'],
		ARRAY['GET', 'GET', 'POST', 'GET'], ARRAY['/a', '/a', '/b', '/c'],
		ARRAY[200, 500, 201, 200], ARRAY[5, 6, 7, 8]::float8[])});
$node->poll_query_until('upgraded', qq{
	SELECT count(*) = 2 AND count(response_ms) = 1 FROM pixl_recent_calls('$id{live}') WHERE at > now() - interval '1 minute'})
  or die 'live usage events never arrived';
$node->poll_query_until('upgraded', qq{
	SELECT total_requests = 3 FROM pixl_usage_summary('$id{limited}', 'all')})
  or die 'the rate-limited token\'s usage never arrived';
$node->safe_psql('upgraded', 'SELECT count(*) FROM pixl_run_maintenance()');

my $usage_sql = qq{
	SELECT string_agg(t || ':' || s.total_requests || '/' || round(s.error_rate::numeric, 2)
					  || '/' || coalesce(round(s.avg_response_ms::numeric, 2)::text, '-'), ' ' ORDER BY t)
	  FROM unnest(ARRAY['$id{live}', '$id{test}', '$id{revoked}', '$id{limited}']) t,
		   pixl_usage_summary(t, 'all') s};
my $usage_before = $node->safe_psql('upgraded', $usage_sql);
my $audit_sql = 'SELECT count(*) || \' \' || string_agg(DISTINCT action, \',\' ORDER BY action) FROM pixl_audit';
my $audit_before = $node->safe_psql('upgraded', $audit_sql);
my $tokens_sql = 'SELECT string_agg(token_id || \' \' || name || \' \' || status || \' \' || mode, \'; \' ORDER BY token_id) FROM pixl_tokens';
my $tokens_before = $node->safe_psql('upgraded', $tokens_sql);
like($audit_before, qr/^\d+ create,plan,revoke,rotate,update$/, "audit rows under 1.0: $audit_before");

# ---------------------------------------------------------------------------
# (b) upgrade, and compare with a fresh install and the other paths
# ---------------------------------------------------------------------------
# the version under development (the control file's default_version)
my $current = $node->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'pixltoken'");
$node->safe_psql('upgraded', 'ALTER EXTENSION pixltoken UPDATE');
is($node->safe_psql('upgraded', "SELECT extversion FROM pg_extension WHERE extname = 'pixltoken'"),
	$current, "ALTER EXTENSION pixltoken UPDATE reaches $current from 1.0");
$node->safe_psql('fresh', 'CREATE EXTENSION pixltoken');
is($node->safe_psql('fresh', "SELECT extversion FROM pg_extension WHERE extname = 'pixltoken'"),
	$current, "a fresh install is $current");
# the other paths, on empty databases
$node->safe_psql('postgres', 'CREATE DATABASE from11');
$node->safe_psql('from11', "CREATE EXTENSION pixltoken VERSION '1.1'");
$node->safe_psql('from11', 'ALTER EXTENSION pixltoken UPDATE');
$node->safe_psql('postgres', 'CREATE DATABASE stepwise');
$node->safe_psql('stepwise', "CREATE EXTENSION pixltoken VERSION '1.0'");
$node->safe_psql('stepwise', "ALTER EXTENSION pixltoken UPDATE TO '1.1'");
$node->safe_psql('stepwise', "ALTER EXTENSION pixltoken UPDATE TO '$current'");
for my $db (qw(from11 stepwise))
{
	is($node->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'pixltoken'"),
		$current, "$db reaches $current");
}

# One line per member object: what it is, its ACL, its comment and its
# definition (a table's columns in their order).
my $catalog_sql = q{
	WITH m AS (
		SELECT d.classid, d.objid, d.objsubid,
			   pg_describe_object(d.classid, d.objid, d.objsubid) AS what
		  FROM pg_depend d
		 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
		   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pixltoken'))
	SELECT m.what || ' | acl=' || coalesce(
			 (SELECT relacl::text FROM pg_class WHERE m.classid = 'pg_class'::regclass AND oid = m.objid),
			 (SELECT proacl::text FROM pg_proc WHERE m.classid = 'pg_proc'::regclass AND oid = m.objid),
			 (SELECT typacl::text FROM pg_type WHERE m.classid = 'pg_type'::regclass AND oid = m.objid),
			 '-')
		   || ' | comment=' || coalesce(pg_catalog.obj_description(m.objid,
				(SELECT relname FROM pg_class WHERE oid = m.classid)), '-')
		   || ' | ' || coalesce(
			 (SELECT pg_get_functiondef(oid) FROM pg_proc
			   WHERE m.classid = 'pg_proc'::regclass AND oid = m.objid AND prokind IN ('f', 'p')),
			 (SELECT pg_get_viewdef(oid) FROM pg_class
			   WHERE m.classid = 'pg_class'::regclass AND oid = m.objid AND relkind IN ('v', 'm')),
			 (SELECT pg_get_indexdef(oid) FROM pg_class
			   WHERE m.classid = 'pg_class'::regclass AND oid = m.objid AND relkind IN ('i', 'I')),
			 (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
								|| CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
								|| coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), ''),
								', ' ORDER BY a.attnum)
				|| coalesce(' ' || (SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), ', ' ORDER BY conname)
									  FROM pg_constraint WHERE conrelid = c.oid), '')
				|| coalesce(' ' || (SELECT string_agg(pg_get_triggerdef(oid), ', ' ORDER BY tgname)
									  FROM pg_trigger WHERE tgrelid = c.oid AND NOT tgisinternal), '')
				|| coalesce(' ' || (SELECT string_agg(pg_get_indexdef(indexrelid), ', ' ORDER BY indexrelid::regclass::text)
									  FROM pg_index WHERE indrelid = c.oid), '')
				|| ' partitioned=' || (c.relkind = 'p')
				  FROM pg_class c
				  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
				  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
				 WHERE m.classid = 'pg_class'::regclass AND c.oid = m.objid AND c.relkind IN ('r', 'p')
				 GROUP BY c.oid, c.relkind),
			 '')
	  FROM m
	 ORDER BY m.what};
my $fresh = $node->safe_psql('fresh', $catalog_sql);
my @f = split /\n(?=[a-z])/, $fresh;
cmp_ok(scalar(@f), '>', 40, "a fresh $current has its member objects (" . scalar(@f) . ')');
my $config_sql = q{SELECT coalesce(string_agg(c::regclass::text, ', ' ORDER BY c::regclass::text), '')
					 FROM pg_extension, unnest(extconfig) c WHERE extname = 'pixltoken'};
my %path = (upgraded => "1.0 -> $current in one command", from11 => "1.1 -> $current",
	stepwise => "1.0 -> 1.1, then 1.1 -> $current");
for my $db (qw(upgraded from11 stepwise))
{
	my $upgraded = $node->safe_psql($db, $catalog_sql);
	my @u = split /\n(?=[a-z])/, $upgraded;
	is($upgraded, $fresh, "$path{$db} and a fresh $current have the same objects, ACLs, comments and definitions")
	  or do
	{
		my %in_f = map { $_ => 1 } @f;
		my %in_u = map { $_ => 1 } @u;
		diag("only after $path{$db}: $_") for grep { !$in_f{$_} } @u;
		diag("only in a fresh $current: $_") for grep { !$in_u{$_} } @f;
	};
	is($node->safe_psql($db, $config_sql), $node->safe_psql('fresh', $config_sql),
		"$path{$db}: the same tables are marked for pg_dump");
}

# ---------------------------------------------------------------------------
# (c) nothing written under 1.0 is lost; every 1.0 token still verifies
# ---------------------------------------------------------------------------
is($node->safe_psql('upgraded', $usage_sql), $usage_before, 'usage analytics unchanged');
is($node->safe_psql('upgraded', $tokens_sql), $tokens_before, 'pixl_tokens unchanged');
is($node->safe_psql('upgraded', $audit_sql), $audit_before, 'audit rows unchanged');
my %expect = (live => '200 ok', test => '200 ok', rotated => '200 ok',
	revoked => '401 revoked');
for my $t (sort keys %expect)
{
	is($node->safe_psql('upgraded', qq{
		SELECT status || ' ' || reason FROM pixl_verify_token('$secret{$t}', 'products:read', 'shop1')}),
		$expect{$t}, "1.0 token '$t' after the upgrade: $expect{$t}");
}
is($node->safe_psql('upgraded', "SELECT status || ' ' || reason FROM pixl_verify_token('$old_rotated')"),
	'401 unknown', 'the secret rotated away under 1.0 stays unknown');
is($node->safe_psql('upgraded', "SELECT reason FROM pixl_verify_token('$secret{limited}', 'products:read')"),
	'rate_limited', 'the rate-limit window of a 1.0 token carries over the upgrade');
is($node->safe_psql('upgraded', qq{
	SELECT pg_typeof(request_id)::text FROM pixl_verify_request('$secret{live}', 'products:read', 'shop1')}),
	'text', 'request ids are opaque text since 1.1');
is($node->safe_psql('upgraded', qq{
	SELECT pg_typeof(request_id)::text FROM pixl_verify_token('$secret{live}', 'products:read', 'shop1')}),
	'bigint', 'pixl_verify_token keeps 1.0\'s result type');

# the upgraded database goes on collecting usage
$node->poll_query_until('upgraded', qq{
	SELECT count(*) >= 1 FROM pixl_recent_calls('$id{test}') WHERE at > now() - interval '1 minute'})
  or die 'usage after the upgrade never arrived';
# the test token's only event in the last minute is its one verification
# after the upgrade (its backfilled event is an hour old)
is( $node->safe_psql('upgraded', qq{
		SELECT count(*) || ' ' || string_agg(status::text, ',')
		  FROM pixl_recent_calls('$id{test}') WHERE at > now() - interval '1 minute'}),
	'1 200', 'usage events are collected after the upgrade: exactly the one verification');

# ---------------------------------------------------------------------------
# (d) 1.0-era grants keep working: since 1.1 the public management and
# analytics functions are SECURITY INVOKER wrappers of implementations that
# check their caller; a role granted the 1.0 functions (and made a platform
# admin, as README's upgrade note says) calls them as before.
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE legacy');
$node->safe_psql('postgres', 'CREATE ROLE token_admin_10');
$node->safe_psql('legacy', q{
	CREATE EXTENSION pixltoken VERSION '1.0';
	GRANT EXECUTE ON FUNCTION pixl_create_token(text, text, text[], timestamptz, int, text),
		pixl_rotate_token(text, interval), pixl_revoke_token(text),
		pixl_update_token(text, text, text[], int, timestamptz),
		pixl_set_store_plan(text, text), pixl_usage_summary(text, text),
		pixl_recent_calls(text, int, int)
		TO token_admin_10;
	GRANT SELECT ON pixl_tokens TO token_admin_10;
	ALTER EXTENSION pixltoken UPDATE;
	GRANT pixl_platform_admin TO token_admin_10;
});
$node->safe_psql('legacy', q{
	SET ROLE token_admin_10;
	SELECT pixl_set_store_plan('legacy-1', 'growth');});
my $legacy_id = $node->safe_psql('legacy', q{
	SET ROLE token_admin_10;
	SELECT token_id FROM pixl_create_token('legacy-1', 'made after the upgrade', ARRAY['orders:read']);});
is($node->safe_psql('legacy', qq{
	SET ROLE token_admin_10;
	SELECT pixl_update_token('$legacy_id', name => 'renamed by a 1.0 grant');
	SELECT length(pixl_rotate_token('$legacy_id')) > 0;
	SELECT total_requests FROM pixl_usage_summary('$legacy_id');
	SELECT count(*) FROM pixl_recent_calls('$legacy_id');
	SELECT pixl_revoke_token('$legacy_id');
	SELECT name || ' ' || status FROM pixl_tokens WHERE token_id = '$legacy_id'}),
	"\nt\n0\n0\n\nrenamed by a 1.0 grant revoked",
	'a role with the 1.0 grants manages tokens through the 1.1 functions');

# ---------------------------------------------------------------------------
# (e) the install script creates each object once.  Every command
# CREATE EXTENSION runs is recorded; a function, aggregate, view, table,
# trigger or policy created twice (a definition replaced later in the same
# script), or a table altered after its creation (a column added by ALTER
# TABLE), would mean the script is not one definition per object.  The one
# exception is the type pixl_latency, which is created as a shell first so
# that its input and output functions can name it.
# ---------------------------------------------------------------------------
my $record_sql = q{
	CREATE TABLE ddl_seen (n serial, tag text, identity text);
	CREATE FUNCTION record_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO ddl_seen (tag, identity)
		SELECT command_tag, object_identity FROM pg_event_trigger_ddl_commands() WHERE in_extension;
	END $$;
	CREATE EVENT TRIGGER record_ddl ON ddl_command_end EXECUTE FUNCTION record_ddl();
};
my $twice_sql = q{
	SELECT coalesce(string_agg(tag || ' ' || identity || ' x' || c, '; ' ORDER BY identity), '')
	  FROM (SELECT tag, identity, count(*) AS c FROM ddl_seen
			 WHERE tag LIKE 'CREATE %' AND NOT (tag = 'CREATE TYPE' AND identity = 'public.pixl_latency')
			 GROUP BY tag, identity HAVING count(*) > 1) d};
for my $v ('1.1', $current)
{
	my $db = 'once_' . ($v =~ tr/./_/r);
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, $record_sql);
	$node->safe_psql($db, "CREATE EXTENSION pixltoken VERSION '$v'");
	my $functions = $node->safe_psql($db, q{
		SELECT count(DISTINCT identity) FILTER (WHERE tag IN ('CREATE FUNCTION', 'CREATE AGGREGATE'))
			   || ' functions, ' || count(*) FILTER (WHERE tag IN ('CREATE FUNCTION', 'CREATE AGGREGATE'))
			   || ' CREATE FUNCTION/AGGREGATE, '
			   || count(*) FILTER (WHERE tag = 'ALTER TABLE') || ' ALTER TABLE'
		  FROM ddl_seen});
	my $twice = $node->safe_psql($db, $twice_sql);
	if ($v eq $current)
	{
		is($twice, '', "a fresh $current creates each object once ($functions)");
		# the server alters tables itself (a foreign key, a partition's
		# key), so the script's own ALTER TABLE statements are read from
		# it: each switches row-level security on, none adds a column
		my $script = slurp_file(
			$node->config_data('--sharedir') . "/extension/pixltoken--$current.sql");
		my @alter = $script =~ /^\s*(ALTER\s+TABLE\b[^;]*;)/mig;
		is(join("\n", grep { !/^ALTER TABLE \S+ ENABLE ROW LEVEL SECURITY;$/ } @alter), '',
			"the install script of $current alters no table but to enable row-level security ("
			  . scalar(@alter) . ' ALTER TABLE)');
	}
	else
	{
		# the frozen 1.1 script, for the record (it is never edited)
		my $n = () = $twice =~ /CREATE FUNCTION/g;
		note("a fresh 1.1 ($functions): $n functions created twice");
	}
}

$node->stop;
done_testing();
