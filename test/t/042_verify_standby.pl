# A hot standby never sees the primary's shared-memory invalidation ring:
# it learns of token changes from the WAL-replayed relcache invalidation of
# the registry, and flushes its whole token cache on it.  A token cached on
# the standby (401 disabled, which needs no usage write) answers 401 revoked
# once the primary's revoke is replayed.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = pixl_node('primary', init => { allows_streaming => 1 }, intervals => 0,
	extension => 'postgres');
$primary->safe_psql('postgres', q{
CREATE TABLE toks AS SELECT * FROM pixl_create_token('standby', 'Standby', ARRAY['orders:read']);
SELECT pixl_disable_token(token_id, 'standby test') FROM toks;
});
my $standby = pixl_standby($primary, 'standby', backup => 'b');
$primary->wait_for_catchup($standby);

# one standby session: verify (cached), wait for the revoke's replay, verify
my ($out, $err) = ('', '');
my $lsn_file = $standby->basedir . '/revoke_lsn';
$standby->psql('postgres', qq{
SELECT v.status || ' ' || v.reason AS first FROM toks, LATERAL pixl_verify_token(toks.token) v;
SELECT hits, misses, entries FROM pixl_cache_stats();
SELECT v.status || ' ' || v.reason AS cached FROM toks, LATERAL pixl_verify_token(toks.token) v;
SELECT hits FROM pixl_cache_stats();
\\! psql -X -q -d postgres -p @{[ $primary->port ]} -h @{[ $primary->host ]} -At -c "SELECT pixl_revoke_token(token_id) FROM toks; SELECT pg_current_wal_lsn()" > $lsn_file
SELECT pg_read_file('$lsn_file') AS lsn \\gset
SELECT set_config('tap.lsn', :'lsn', false) IS NOT NULL AS lsn_set;
DO \$\$
DECLARE deadline timestamptz := clock_timestamp() + interval '60 s';
BEGIN
	WHILE pg_last_wal_replay_lsn() < btrim(split_part(current_setting('tap.lsn'), E'\\n', 2))::pg_lsn
		  AND clock_timestamp() < deadline LOOP
		PERFORM pg_sleep(0.05);
	END LOOP;
END
\$\$;
SELECT v.status || ' ' || v.reason AS after FROM toks, LATERAL pixl_verify_token(toks.token) v;
SELECT flushes > 0 AS flushed FROM pixl_cache_stats();
}, stdout => \$out, stderr => \$err, on_error_stop => 1);
is($err, '', 'no errors on the standby');
like($out, qr/^401 disabled\n0\|1\|1\n401 disabled\n1\n/m, 'the disabled token is cached on the standby');
like($out, qr/^401 revoked\nt$/m, 'the replayed revoke flushed the standby cache');

# past pixltoken.max_standby_staleness (1 ms: always), the HTTP answer is
# 503 stale with Retry-After: 1 and its problem body (standby.c decides)
$standby->append_conf('postgresql.conf', "pixltoken.max_standby_staleness = 1\n");
$standby->reload;
# a bound shorter than wal_receiver_timeout (60 s here) cannot hold for an
# idle primary's standby: the server says so once, with what to set
ok( $standby->wait_for_log(
		qr/WARNING:  pixltoken.max_standby_staleness \(1 ms\) is shorter than wal_receiver_timeout \(60000 ms\)/),
	'an inconsistent staleness bound is reported in the log');
ok( $standby->poll_query_until('postgres',
		"SELECT v.status = 503 FROM toks, LATERAL pixl_verify_token_http(toks.token, '*') v"),
	'a standby past its staleness bound answers 503');
is( $standby->safe_psql('postgres', q{
SELECT v.reason, v.www_authenticate IS NULL, v.retry_after, v.problem->>'title', v.problem->>'status',
	   v.token_id IS NULL
  FROM toks, LATERAL pixl_verify_token_http(toks.token, '*') v}),
	'stale|t|1|Replica too far behind|503|t', '503 stale: Retry-After 1, problem body, no token columns');
# garbage is still garbage: a wrong checksum answers 401 malformed, stale or not
is( $standby->safe_psql('postgres', q{
SELECT v.status || ' ' || v.reason
  FROM toks, LATERAL pixl_verify_token(left(toks.token, -1)
	|| CASE WHEN right(toks.token, 1) = 'a' THEN 'b' ELSE 'a' END) v}),
	'401 malformed', 'past the bound, a wrong checksum is still 401 malformed');

$standby->stop;
$primary->stop;
done_testing();
