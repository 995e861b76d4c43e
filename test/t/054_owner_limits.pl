# Copyright: the pixltoken authors.
#
# What a database owner who is not a superuser cannot do (the owner of
# schema public, where pixltoken lives):
#  (a) change what pixl_verify_token_http tells clients: the settings
#      pixltoken.problem_base_uri and pixltoken.http_realm are superuser
#      settings, so neither SET nor ALTER DATABASE / ALTER ROLE ... SET
#      works for the owner (a superuser's ALTER DATABASE does);
#  (b) drop or alter the indexes of the usage partitions (dated and
#      default), as it cannot drop the partitions: PX063; nor drop a day of
#      lifecycle events (pixl_events_YYYYMMDD).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pixl_node('owner_limits', databases => 'shop', intervals => 0);
$node->safe_psql('postgres', q{
CREATE ROLE shop_owner LOGIN;
CREATE DATABASE shop OWNER shop_owner;
});
$node->safe_psql('shop', q{
CREATE EXTENSION pixltoken;
SELECT pixl_run_maintenance();
SELECT pixl_events_maintenance();
GRANT EXECUTE ON FUNCTION pixl_verify_token_http(text, text, text, text, text, inet) TO PUBLIC;
});
is($node->safe_psql('shop', q{SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'public'}),
	'pg_database_owner', 'schema public belongs to the database owner');

# Runs $sql as the database owner; returns "state: message" or "ok".
sub as_owner
{
	my ($sql) = @_;
	return err($node, 'shop', $sql, as => 'shop_owner');
}

# (a) settings that shape what clients are told
my $type_sql = q{SELECT problem->>'type' FROM pixl_verify_token_http(NULL, '*')};
like(as_owner(q{SET pixltoken.problem_base_uri = 'https://evil.example/'}),
	qr/^42501: permission denied to set parameter "pixltoken.problem_base_uri"/,
	'the owner cannot SET problem_base_uri');
like(as_owner(q{ALTER DATABASE shop SET pixltoken.problem_base_uri = 'https://evil.example/'}),
	qr/^42501: permission denied to set parameter "pixltoken.problem_base_uri"/,
	'nor ALTER DATABASE ... SET it for every session');
like(as_owner(q{ALTER ROLE shop_owner SET pixltoken.http_realm = 'evil'}),
	qr/^42501: permission denied to set parameter "pixltoken.http_realm"/,
	'nor ALTER ROLE ... SET http_realm');
like(as_owner(q{SET pixltoken.http_realm = 'evil'}),
	qr/^42501: permission denied to set parameter "pixltoken.http_realm"/,
	'nor SET http_realm');
is($node->safe_psql('shop', $type_sql, extra_params => [ '-U', 'shop_owner' ]),
	'urn:pixltoken:problem:missing', 'the owner\'s sessions keep the default');
is(as_owner(q{SET pixltoken.token_cache_size = 100}), 'ok',
	'token_cache_size (what a session caches, not what clients are told) stays open');

$node->safe_psql('shop',
	q{ALTER DATABASE shop SET pixltoken.problem_base_uri = 'https://docs.example.com/errors/'});
is($node->safe_psql('shop', $type_sql, extra_params => [ '-U', 'shop_owner' ]),
	'https://docs.example.com/errors/missing',
	'a superuser\'s ALTER DATABASE ... SET applies to every session');

# (b) the indexes of the usage partitions
my $day = $node->safe_psql('shop',
	q{SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')});
my @indexes = ("pixl_usage_events_${day}_token_at", "pixl_usage_events_${day}_pkey",
	'pixl_usage_events_default_token_at');
for my $idx (@indexes)
{
	like(as_owner("DROP INDEX public.$idx"),
		qr/^PX063: index (\S+ )?$idx of a usage partition can only be dropped by pixl_run_maintenance/,
		"the owner cannot drop $idx");
}
like(as_owner("DROP INDEX CONCURRENTLY public.pixl_usage_events_${day}_token_at"),
	qr/^PX063: /, 'nor concurrently');
like(as_owner("DROP TABLE public.pixl_usage_events_$day CASCADE"),
	qr/^PX063: usage partition/, 'nor the partition with CASCADE');
like(as_owner("DROP TABLE public.pixl_usage_events_$day"),
	qr/^PX063: usage partition/, 'nor the partition (as before)');
like(as_owner("DROP TABLE public.pixl_events_$day"),
	qr/^PX063: events partition pixl_events_$day can only be dropped by pixl_events_maintenance/,
	'nor a day of lifecycle events');
like(as_owner("DROP TABLE public.pixl_events_$day CASCADE"),
	qr/^PX063: events partition/, 'nor with CASCADE');
is($node->safe_psql('shop', "SELECT to_regclass('public.pixl_events_$day') IS NOT NULL"),
	't', 'the day of events is still there');
is($node->safe_psql('shop',
		"SELECT count(*) FROM pg_index WHERE indisvalid AND indislive AND indexrelid::regclass::text IN ('"
		  . join("', '", @indexes) . "')"),
	'3', 'the indexes are all there, valid and live');

# An index's owner is its table's: a role that came to own a partition
# (here by a superuser's ALTER TABLE OWNER) still cannot alter its indexes.
$node->safe_psql('shop', "ALTER TABLE public.pixl_usage_events_$day OWNER TO shop_owner");
like(as_owner("ALTER INDEX public.pixl_usage_events_${day}_token_at SET (fillfactor = 10)"),
	qr/^PX063: index pixl_usage_events_${day}_token_at of a usage partition can only be changed/,
	'ALTER INDEX on a partition\'s index is refused');
like(as_owner("ALTER TABLE public.pixl_usage_events_${day}_token_at RENAME TO x"),
	qr/^PX063: /, 'as is ALTER TABLE naming the index');
is($node->safe_psql('shop',
		"SELECT coalesce(reloptions::text, 'none') FROM pg_class WHERE relname = 'pixl_usage_events_${day}_token_at'"),
	'none', 'the index is unchanged');
# a superuser (a member of the extension's owner) may
$node->safe_psql('shop', "ALTER INDEX public.pixl_usage_events_${day}_token_at SET (fillfactor = 90)");
pass('a superuser may alter it');

$node->stop;
done_testing();
