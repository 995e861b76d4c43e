# Copyright: the pixltoken authors.
#
# The usage worker (a superuser) and every SQL the usage pipeline runs are
# immune to search_path: a database owner who plants operators and functions
# in a schema on the database's search_path must not get them run by the
# worker, and a caller's own search_path must not reach anything
# pixl_log_response or the worker runs.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pixl_node('search_path', databases => 'shop', conf => q{
# these tests follow every call through the raw-row pipeline
pixltoken.request_log = 'all'
max_worker_processes = 16
});

# The test's own superuser sessions must not step on the traps below.
$ENV{PGOPTIONS} = '-c search_path=pg_catalog,public';

$node->safe_psql('postgres', q{
CREATE ROLE dbo LOGIN;
CREATE ROLE app LOGIN;
CREATE DATABASE shop OWNER dbo;
});
$node->safe_psql('shop', q{
CREATE EXTENSION pixltoken SCHEMA public;
GRANT EXECUTE ON FUNCTION public.pixl_verify_request(text, text, text, text, text, inet),
	public.pixl_log_response(text, int, double precision) TO app;
CREATE SCHEMA app AUTHORIZATION app;
});
ok( $node->poll_query_until('shop',
		"SELECT worker_state = 'serving' FROM public.pixl_stats() WHERE datname = 'shop'"),
	'the worker serves shop');

# The database owner (PG15 gives it schema public) plants operators for
# every comparison the old catalog query made, and functions named like
# the extension's internals, each escalating to superuser if a superuser
# runs them.
$node->safe_psql('shop', q{
CREATE FUNCTION public.evil_oid(oid, oid) RETURNS boolean
	LANGUAGE plpgsql AS $$ BEGIN ALTER ROLE dbo SUPERUSER; RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE FUNCTION public.evil_name(name, name) RETURNS boolean
	LANGUAGE plpgsql AS $$ BEGIN ALTER ROLE dbo SUPERUSER; RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE FUNCTION public.evil_text(text, text) RETURNS boolean
	LANGUAGE plpgsql AS $$ BEGIN ALTER ROLE dbo SUPERUSER; RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = public.evil_oid);
CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = name, FUNCTION = public.evil_name);
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_text);
CREATE FUNCTION public.unnest(anyarray) RETURNS SETOF anyelement
	LANGUAGE plpgsql AS $$ BEGIN ALTER ROLE dbo SUPERUSER; RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
ALTER DATABASE shop SET search_path = public, pg_catalog;
}, extra_params => [ '-U', 'dbo' ]);

# make the worker start again under the database's new search_path
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pixltoken usage worker'");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok( $node->poll_query_until('shop',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pixltoken usage worker' AND pid <> $pid"
		  . " AND wait_event = 'Extension'"),
	'a new worker runs');
ok( $node->poll_query_until('shop',
		"SELECT worker_state = 'serving' FROM public.pixl_stats() WHERE datname = 'shop'"),
	'and serves shop again');

# usage flows through the worker and maintenance runs
my $secret = $node->safe_psql('shop', q{
SELECT public.pixl_set_store_plan('s1', 'pro');
SELECT token FROM public.pixl_create_token('s1', 'T', ARRAY['products:read']);
});
$secret = (split /\n/, $secret)[-1];
my $rid = $node->safe_psql('shop',
	"SET search_path = app, public, pg_catalog; SELECT request_id FROM public.pixl_verify_request('$secret', 'products:read', NULL, 'GET', '/x')",
	extra_params => [ '-U', 'app' ]);
ok( $node->poll_query_until('shop',
		"SELECT count(*) = 1 FROM public.pixl_usage_events WHERE endpoint = '/x'"),
	'the worker wrote the event');

# the caller's own search_path (app may create objects in schema app)
$node->safe_psql('shop', q{
CREATE FUNCTION app.evil_bigint(bigint, bigint) RETURNS boolean
	LANGUAGE plpgsql AS $$ BEGIN ALTER ROLE app SUPERUSER; RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR app.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = app.evil_bigint);
}, extra_params => [ '-U', 'app' ]);
$node->safe_psql('shop',
	"SET search_path = app, public, pg_catalog; SELECT public.pixl_log_response('$rid', 500, 12.5)",
	extra_params => [ '-U', 'app' ]);
ok( $node->poll_query_until('shop',
		"SELECT status = 500 FROM public.pixl_usage_events WHERE endpoint = '/x'"),
	'the response was applied');
$node->safe_psql('shop', 'SELECT public.pixl_run_maintenance()');

# a database no worker serves: whatever pixl_verify_token and
# pixl_log_response do there for usage, they do it immune to the caller's
# search_path (the 1.0 write-through ran the catalog query as the
# extension's owner under it)
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', q{
CREATE EXTENSION pixltoken SCHEMA public;
GRANT EXECUTE ON FUNCTION public.pixl_verify_request(text, text, text, text, text, inet),
	public.pixl_log_response(text, int, double precision) TO app;
CREATE SCHEMA app AUTHORIZATION app;
});
my $secret2 = (split /\n/, $node->safe_psql('other', q{
SELECT public.pixl_set_store_plan('s2', 'pro');
SELECT token FROM public.pixl_create_token('s2', 'T', ARRAY['products:read']);
}))[-1];
$node->safe_psql('other', q{
CREATE FUNCTION app.evil_name(name, name) RETURNS boolean
	LANGUAGE plpgsql AS $$ BEGIN ALTER ROLE app SUPERUSER; RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR app.= (LEFTARG = name, RIGHTARG = name, FUNCTION = app.evil_name);
CREATE FUNCTION app.evil_oid(oid, oid) RETURNS boolean
	LANGUAGE plpgsql AS $$ BEGIN ALTER ROLE app SUPERUSER; RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR app.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = app.evil_oid);
}, extra_params => [ '-U', 'app' ]);
$node->psql('other',
	"SET search_path = app, pg_catalog;"
	  . " SELECT public.pixl_log_response(v.request_id, 200, 1)"
	  . " FROM public.pixl_verify_request('$secret2', 'products:read') v",
	extra_params => [ '-U', 'app' ]);

is( $node->safe_psql('postgres',
		"SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname IN ('dbo', 'app') AND rolsuper"),
	'', 'neither the database owner nor the app role became superuser');

$node->stop;
done_testing();
