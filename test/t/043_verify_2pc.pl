# Prepared transactions: a revoke in a prepared transaction is invisible to
# other connections (cached or not) until COMMIT PREPARED, seen by their
# next verification after it, and never after ROLLBACK PREPARED.  (The
# management functions send NOTIFY, which PostgreSQL does not allow in a
# prepared transaction; an operator's direct UPDATE of the registry is what
# can be prepared.)
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pixl_node('verify_2pc', intervals => 0, extension => 'postgres',
	conf => "max_prepared_transactions = 4\n");
$node->safe_psql('postgres', q{
CREATE TABLE toks AS
	SELECT n, c.* FROM generate_series(1, 2) n,
		   LATERAL pixl_create_token('tpc', 'Two-phase ' || n, ARRAY['orders:read']) c;
-- 401 answers need no usage write: disable both, then watch revokes
SELECT pixl_disable_token(token_id) FROM toks;
});

my $psql = 'psql -X -q -At -d postgres';
my ($out, $err) = ('', '');
$node->psql('postgres', qq{
\\pset format unaligned
\\pset tuples_only on
SELECT 'a ' || string_agg(v.reason, ',' ORDER BY n) FROM toks, LATERAL pixl_verify_token(toks.token) v;
\\! $psql -c "BEGIN; UPDATE pixl_token_registry t SET revoked_at = now() FROM toks WHERE toks.n = 1 AND t.token_id = toks.token_id; PREPARE TRANSACTION 'p1';" >/dev/null
SELECT 'b ' || string_agg(v.reason, ',' ORDER BY n) FROM toks, LATERAL pixl_verify_token(toks.token) v;
\\! $psql -c "SELECT count(*) FROM pg_prepared_xacts" | sed 's/^/prepared /'
\\! $psql -c "COMMIT PREPARED 'p1'" >/dev/null
SELECT 'c ' || string_agg(v.reason, ',' ORDER BY n) FROM toks, LATERAL pixl_verify_token(toks.token) v;
\\! $psql -c "BEGIN; UPDATE pixl_token_registry t SET revoked_at = now() FROM toks WHERE toks.n = 2 AND t.token_id = toks.token_id; PREPARE TRANSACTION 'p2';" >/dev/null
\\! $psql -c "ROLLBACK PREPARED 'p2'" >/dev/null
SELECT 'd ' || string_agg(v.reason, ',' ORDER BY n) FROM toks, LATERAL pixl_verify_token(toks.token) v;
SELECT 'hits ' || (hits > 0) FROM pixl_cache_stats();
}, stdout => \$out, stderr => \$err, on_error_stop => 1);
is($err, '', 'no errors');
like($out, qr/^a disabled,disabled$/m, 'both tokens cached as disabled');
like($out, qr/^prepared 1$/m, 'the revoke is prepared');
like($out, qr/^b disabled,disabled$/m, 'a prepared revoke is not seen');
like($out, qr/^c revoked,disabled$/m, 'COMMIT PREPARED is seen by the next verification');
like($out, qr/^d revoked,disabled$/m, 'ROLLBACK PREPARED changes nothing');
like($out, qr/^hits true$/m, 'the cache was in use');

$node->stop;
done_testing();
