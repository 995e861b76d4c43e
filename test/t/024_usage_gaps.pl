# Copyright: the pixltoken authors.
#
# No count is lost in the gaps of the usage pipeline:
#  (i)   a database owner's ALTER DATABASE ... SET default_transaction_read_only
#        (and other settings that change what SQL means) changes nothing
#        the worker writes: after a restart every count is folded exactly;
#  (ii)  settings of the worker's role (session_replication_role, role,
#        TimeZone) change nothing it writes either;
#  (iii) verifications made right after CREATE EXTENSION, before the worker
#        has looked (even in the creating transaction), with a tiny ring,
#        are all counted exactly, none lost;
#  (iv)  an item whose dead-letter row cannot be written stays in shared
#        memory (pixl_stats().last_error says why) and is written, once,
#        when the dead letter can be.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use IPC::Run;
use PixlToken::Test qw(pixl_node err);   # new_token below runs through tq()
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = pixl_node('gaps', databases => 'postgres,owned,fresh,fresh2', conf => q{
# these tests follow every call through the raw-row pipeline
pixltoken.request_log = 'all'
pixltoken.queue_size = 64
max_worker_processes = 16
});
my $su = $node->safe_psql('postgres', 'SELECT current_user');

# a query of the test, undoing in its own session the settings under test
sub tq
{
	my ($db, $sql) = @_;
	return $node->safe_psql($db,
		"SET role = none; SET statement_timeout = 0; SET lock_timeout = 0; SET default_transaction_read_only = off; SET session_replication_role = origin; SET search_path = public; $sql");
}

# bounded poll of a query that becomes true
sub poll
{
	my ($db, $sql) = @_;
	for (1 .. 600)
	{
		return 1 if tq($db, $sql) eq 't';
		usleep(100_000);
	}
	return 0;
}

sub pstat
{
	my ($db, $col) = @_;
	return tq($db, "SELECT $col FROM pixl_stats() WHERE datname = '$db'");
}

sub new_token
{
	my ($db, $store, $limit) = @_;
	tq($db, "SELECT pixl_set_store_plan('$store', 'enterprise')");
	my $row = tq($db,
		"SELECT token_id || ' ' || token FROM pixl_create_token('$store', 'T', ARRAY['products:read'], rate_limit => $limit)");
	return split / /, $row;
}

# counted answers (200, 403, 429) of n verifications at endpoint
sub verify
{
	my ($db, $secret, $n, $endpoint) = @_;
	return tq($db,
		"SELECT count(*) FILTER (WHERE v.status IN (200, 403, 429)) FROM generate_series(1, $n) g
		   CROSS JOIN LATERAL pixl_verify_token(CASE WHEN g > 0 THEN '$secret' END, 'products:read', NULL, 'GET', '$endpoint') v");
}

sub folded
{
	my ($db, $tok, $endpoint) = @_;
	my $where = defined $endpoint ? " AND endpoint = '$endpoint'" : '';
	return tq($db,
		"SELECT coalesce(sum(requests), 0) FROM pixl_usage_hourly WHERE token_id = '$tok'$where");
}

# (i) a non-superuser database owner makes every transaction read-only,
# serializable, and more; the worker pins them
$node->safe_psql('postgres', 'CREATE EXTENSION pixltoken');
$node->safe_psql('postgres', 'CREATE ROLE dbo LOGIN; CREATE DATABASE owned OWNER dbo');
$node->safe_psql('owned', 'CREATE EXTENSION pixltoken');
ok( $node->poll_query_until('owned',
		"SELECT worker_state = 'serving' FROM pixl_stats() WHERE datname = 'owned'"),
	'the worker serves owned');
my ($tok_o, $secret_o) = new_token('owned', 'store_o', 1000);
# role: the database owner may make sessions run as itself; read-only last
# (ALTER DATABASE is refused in a read-only transaction)
for my $set (
	"default_transaction_isolation = 'serializable'",
	"DateStyle = 'SQL, DMY'",
	"IntervalStyle = 'iso_8601'",
	"TimeZone = 'Pacific/Kiritimati'",
	'standard_conforming_strings = off',
	'row_security = off',
	"search_path = 'dbo_schema'",
	"statement_timeout = '50ms'",
	"lock_timeout = '50ms'",
	"role = 'dbo'",
	'default_transaction_read_only = on')
{
	is(err($node, 'owned', "ALTER DATABASE owned SET $set", as => 'dbo'),
		'ok', "the database owner sets $set");
}
$node->restart;
ok( poll('owned',
		"SELECT worker_state = 'serving' FROM pixl_stats() WHERE datname = 'owned'"),
	'after a restart the worker serves owned again');
my $n = 0;
$n += verify('owned', $secret_o, 40, "/ro$_") for 1 .. 5;
is($n, 200, '200 verifications answered');
ok( poll('owned', "SELECT " . "(SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok_o') = 200"),
	'every count is folded although the database owner made transactions read-only');
is(pstat('owned', 'counts_lost'), '0', 'no count lost');
is(pstat('owned', 'dead_letters'), '0', 'no dead letter');
# the tiny ring may overflow on a busy machine: a raw row that does not fit
# is dropped and counted (the aggregates above stay exact), never lost
# silently
ok( poll('owned',
		"SELECT (SELECT count(*) FROM pixl_usage_events WHERE token_id = '$tok_o')
			  + (SELECT events_dropped FROM pixl_stats() WHERE datname = 'owned') = 200"),
	'and every raw row is written or counted in events_dropped');
tq('owned', 'ALTER DATABASE owned RESET ALL');

# (ii) the worker's own role: replica mode (no triggers), another time zone
$node->safe_psql('postgres', qq{
ALTER ROLE "$su" IN DATABASE owned SET session_replication_role = replica;
ALTER ROLE "$su" IN DATABASE owned SET TimeZone = 'America/St_Johns';
ALTER ROLE "$su" IN DATABASE owned SET default_transaction_read_only = on});
tq('owned', qq{
CREATE TABLE public.seen (endpoint text);
CREATE FUNCTION public.note() RETURNS trigger LANGUAGE plpgsql AS
  \$\$BEGIN INSERT INTO public.seen VALUES (NEW.endpoint); RETURN NEW; END\$\$;
CREATE TRIGGER note AFTER INSERT ON pixl_usage_hourly FOR EACH ROW EXECUTE FUNCTION public.note()});
$node->restart;
ok( poll('owned',
		"SELECT worker_state = 'serving' FROM pixl_stats() WHERE datname = 'owned'"),
	'the worker serves owned with its role set to replica mode');
is(verify('owned', $secret_o, 7, '/replica'), '7', '7 verifications');
ok( poll('owned', "SELECT " . "(SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok_o' AND endpoint = '/replica') = 7"),
	'folded exactly');
is(tq('owned', "SELECT count(*) FROM public.seen WHERE endpoint = '/replica'"),
	'1', 'with the triggers of the rollup table fired (session_replication_role is pinned)');
$node->safe_psql('postgres', qq{ALTER ROLE "$su" IN DATABASE owned RESET ALL});

# (iii) load right after CREATE EXTENSION: first inside the creating
# transaction (the worker cannot have looked), with a ring of 64 rows
$node->safe_psql('postgres', 'CREATE DATABASE fresh; CREATE DATABASE fresh2');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM pixl_stats() WHERE datname IN ('fresh', 'fresh2') AND worker_state = 'waiting for extension'"),
	'the workers of fresh and fresh2 wait for the extension');
my $in_tx = $node->safe_psql('fresh', q{
BEGIN;
CREATE EXTENSION pixltoken;
SELECT pixl_set_store_plan('s', 'enterprise');
CREATE TEMP TABLE t AS SELECT token_id, token FROM pixl_create_token('s', 'T', ARRAY['products:read'], rate_limit => 50);
SELECT pg_sleep(1.5);
SELECT t.token_id || ' ' || count(*) FILTER (WHERE v.status IN (200, 403, 429))
  FROM t, generate_series(1, 2000) g,
       LATERAL pixl_verify_token(t.token, 'products:read', NULL, 'GET', '/e' || g % 7) v
 GROUP BY t.token_id;
SELECT pg_sleep(1.5);
COMMIT;});
my ($tok_f, $answered_f) = split / /, (split /\n/, $in_tx)[-1];
is($answered_f, 2000, '2000 verifications in the transaction that created the extension');
ok( $node->poll_query_until('fresh', "SELECT " . "(SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok_f') = 2000"),
	'all are folded exactly once the worker serves');
is(folded('fresh', $tok_f), '2000', 'not one more');
is($node->safe_psql('fresh', "SELECT sum(rate_limited) FROM pixl_usage_hourly WHERE token_id = '$tok_f'"),
	'1950', 'the 1950 429s among them');
is(pstat('fresh', 'counts_lost'), '0', 'counts_lost is 0');

# ... then several sessions that start as soon as CREATE EXTENSION commits
$node->safe_psql('fresh2', q{
CREATE EXTENSION pixltoken;
CREATE FUNCTION public.load(secret text, seconds float8) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	stop timestamptz := clock_timestamp() + seconds * interval '1 second';
	n bigint := 0;
	i int := 0;
BEGIN
	WHILE clock_timestamp() < stop LOOP
		i := i + 1;
		n := n + (SELECT count(*) FROM pixl_verify_token(secret, 'products:read', NULL, 'GET', '/p' || i % 13) v
		           WHERE v.status IN (200, 403, 429));
	END LOOP;
	RETURN n;
END $$;
SELECT pixl_set_store_plan('s2', 'enterprise');
CREATE TABLE public.tok AS SELECT token_id, token FROM pixl_create_token('s2', 'T', ARRAY['products:read'], rate_limit => 100);});
my ($tok_g, $secret_g) = split / /, $node->safe_psql('fresh2', "SELECT token_id || ' ' || token FROM public.tok");
my (@h, @outs);
for my $i (0 .. 2)
{
	$outs[$i] = '';
	push @h, IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $node->connstr('fresh2'), '-c', "SELECT public.load('$secret_g', 5)" ],
		'>', \$outs[$i], '2>', \my $e);
}
$_->finish for @h;
my $answered_g = 0;
$answered_g += $_ for @outs;
cmp_ok($answered_g, '>', 1000, "the load verified $answered_g times");
ok( $node->poll_query_until('fresh2', "SELECT " . "(SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok_g') = $answered_g"),
	'every verification of the load is folded, exactly');
is(pstat('fresh2', 'counts_lost'), '0', 'counts_lost is 0');

# (iv) a count that fails, and whose dead letter cannot be written either,
# stays in shared memory until its dead letter can be written
my ($tok_p, $secret_p) = new_token('postgres', 'store_p', 1000);
ok( $node->poll_query_until('postgres',
		"SELECT worker_state = 'serving' FROM pixl_stats() WHERE datname = 'postgres'"),
	'the worker serves postgres');
$node->safe_psql('postgres', q{
ALTER TABLE pixl_usage_hourly ADD CONSTRAINT poison CHECK (endpoint <> '/poison') NOT VALID;
ALTER TABLE pixl_usage_dead_letters ADD CONSTRAINT no_letters CHECK (false) NOT VALID});
is(verify('postgres', $secret_p, 3, '/poison'), '3', '3 verifications of a poison count');
is(verify('postgres', $secret_p, 2, '/fine'), '2', 'and 2 fine ones');
ok( $node->poll_query_until('postgres',
		"SELECT last_error LIKE '%dead letter%' FROM pixl_stats() WHERE datname = 'postgres'"),
	'last_error says the dead letter could not be written');
ok( $node->poll_query_until('postgres', "SELECT " . "(SELECT sum(requests) FROM pixl_usage_hourly WHERE token_id = '$tok_p' AND endpoint = '/fine') = 2"),
	'the rest flows on');
is(verify('postgres', $secret_p, 4, '/poison'), '4', '4 more of the poison count');
usleep(500_000);
is($node->safe_psql('postgres', 'SELECT count(*) FROM pixl_usage_dead_letters'), '0', 'no dead letter yet');
is(pstat('postgres', 'counts_lost'), '0', 'and nothing lost');
$node->safe_psql('postgres', 'ALTER TABLE pixl_usage_dead_letters DROP CONSTRAINT no_letters');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pixl_usage_dead_letters WHERE kind = 'count' AND token_id = '$tok_p'"),
	'once it can be, the dead letter is written');
is( $node->safe_psql('postgres', "SELECT detail->>'endpoint' || ' ' || (detail->>'requests') FROM pixl_usage_dead_letters WHERE token_id = '$tok_p'"),
	'/poison 7', 'holding all 7 counts, once');
is(pstat('postgres', 'dead_letters'), '1', 'counted in dead_letters');
like( $node->safe_psql('postgres', "SELECT detail->>'bucket' FROM pixl_usage_dead_letters WHERE token_id = '$tok_p'"),
	qr/^\d{4}-\d\d-\d\d \d\d:00:00\+00$/, 'its bucket in UTC, ISO style');
is(folded('postgres', $tok_p, '/poison'), '0', 'and the poison count is not in the rollup');

$node->stop;
done_testing();
