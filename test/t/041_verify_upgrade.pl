# The 1.1 library under a 1.0 schema, then ALTER EXTENSION UPDATE: the 1.0
# definition of pixl_verify_token keeps working (its own symbol, 11 columns,
# request_id bigint) and revocations are seen at once; after the update
# pixl_verify_token still has 1.0's 11 columns (request_id bigint), 1.1's
# pixl_verify_request has 14 (staleness_ms last, NULL on a primary), grants
# on the changed functions survive, and a revoke evicts only its token.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

# the extension is created at 1.0 below
my $node = pixl_node('verify_upgrade');

$node->safe_psql('postgres', q{
CREATE EXTENSION pixltoken VERSION '1.0';
CREATE ROLE app LOGIN;
CREATE ROLE admin LOGIN;
GRANT EXECUTE ON FUNCTION pixl_verify_token(text, text, text, text, text, inet) TO app;
GRANT EXECUTE ON FUNCTION pixl_create_token(text, text, text[], timestamptz, int, text),
	pixl_update_token(text, text, text[], int, timestamptz) TO admin;
CREATE TABLE toks AS
	SELECT n, c.* FROM generate_series(1, 2) n,
		   LATERAL pixl_create_token('up', 'Up ' || n, ARRAY['orders:read']) c;
GRANT SELECT ON toks TO app;
});

my $r = $node->safe_psql('postgres', q{
SELECT v.status, pg_typeof(v.request_id), v.request_id > 0
  FROM toks, LATERAL pixl_verify_token(toks.token) v WHERE n = 1;
}, extra_params => ['-U', 'app']);
is($r, '200|bigint|t', '1.0 definition on the 1.1 library: 200, request_id bigint');

# one session, its cache filled; a revoke committed by another process is
# seen by its next verification (1.0's statement trigger flushes the cache)
my ($out, $err) = ('', '');
$node->psql('postgres', q{
SELECT count(*) FROM toks, LATERAL pixl_verify_token(toks.token) v;
\! psql -X -q -d postgres -c "SELECT pixl_revoke_token(token_id) FROM toks WHERE n = 1" >/dev/null
SELECT string_agg(v.status || ' ' || v.reason, ', ' ORDER BY n) AS answers
  FROM toks, LATERAL pixl_verify_token(toks.token) v;
}, stdout => \$out, stderr => \$err, on_error_stop => 1);
is($err, '', 'no errors');
like($out, qr/^401 revoked, 200 ok$/m, '1.0 schema: revoke seen at once, other token fine');

$node->safe_psql('postgres', 'ALTER EXTENSION pixltoken UPDATE');
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'pixltoken'}),
	'1.2', 'updated to 1.2 (1.0 -> 1.1 -> 1.2)');

$r = $node->safe_psql('postgres', q{
SELECT string_agg(v.status || ' ' || v.reason || ' ' || pg_typeof(v.request_id) || ' ' || coalesce(v.previous_secret_used::text, '-') || ' ' || coalesce(v.staleness_ms::text, 'null'), ', ' ORDER BY n)
  FROM toks, LATERAL pixl_verify_request(toks.token, '*') v;
}, extra_params => ['-U', 'app']);
is($r, '401 revoked text false null, 200 ok text false null', 'app may execute pixl_verify_request; 1.1 columns');
$r = $node->safe_psql('postgres', q{
SELECT string_agg(v.status || ' ' || v.reason || ' ' || pg_typeof(v.request_id), ', ' ORDER BY n)
  FROM toks, LATERAL pixl_verify_token(toks.token) v;
SELECT pg_get_function_result('pixl_verify_token(text, text, text, text, text, inet)'::regprocedure);
}, extra_params => ['-U', 'app']);
is($r, "401 revoked bigint, 200 ok bigint\nTABLE(status integer, reason text, token_id text, store_id text, mode text, scopes text[], rate_limit integer, remaining integer, reset_at timestamp with time zone, retry_after_ms integer, request_id bigint)",
	'app keeps EXECUTE on pixl_verify_token, with 1.0\'s result type');

$r = $node->safe_psql('postgres', q{
SELECT has_function_privilege('admin', 'pixl_create_token(text, text, text[], timestamptz, int, text, text[], jsonb)', 'EXECUTE'),
	   has_function_privilege('admin', 'pixl_update_token(text, text, text[], int, timestamptz, text[], jsonb)', 'EXECUTE'),
	   has_function_privilege('app', 'pixl_verify_token_http(text, text, text, text, text, inet)', 'EXECUTE'),
	   has_function_privilege('admin', 'pixl_disable_token(text, text)', 'EXECUTE');
});
is($r, 't|t|t|f', 'grants carried over to the new signatures, nothing more');

# one session: cache filled, one token disabled elsewhere, only it is reloaded
($out, $err) = ('', '');
$node->psql('postgres', q{
SELECT count(*) FROM toks, LATERAL pixl_verify_token(toks.token) v;
SELECT misses AS m0 FROM pixl_cache_stats() \gset
\! psql -X -q -d postgres -c "SELECT pixl_disable_token(token_id) FROM toks WHERE n = 2" >/dev/null
SELECT string_agg(v.status || ' ' || v.reason, ', ' ORDER BY n) AS answers,
	   (SELECT misses FROM pixl_cache_stats()) - :m0 AS reloads,
	   (SELECT flushes FROM pixl_cache_stats()) AS flushes
  FROM toks, LATERAL pixl_verify_token(toks.token) v;
}, stdout => \$out, stderr => \$err, on_error_stop => 1);
is($err, '', 'no errors');
like($out, qr/401 revoked, 401 disabled\|1\|0$/m, 'disable seen; only that token reloaded; no flush');

$node->stop;
done_testing();
