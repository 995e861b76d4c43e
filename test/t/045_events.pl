# Lifecycle events across a restart and a crash, and the wake-up setting:
# the outbox is a table, so claimed, acknowledged and pending deliveries
# come back as they were after a clean restart and after a crash (an
# immediate stop); one wake-up per transaction, empty; with
# pixltoken.event_notify = off none, the events all the same; the usage
# worker's maintenance makes the days' partitions; a bad endpoint secret is
# in no error and no log line.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = pixl_node('events', extension => 'postgres');

# the worker's maintenance (every minute, and at its start) makes today's
# partition and the next days'
$node->poll_query_until('postgres', q{
	SELECT count(*) = 9 FROM generate_series(-1, 7) k
	 WHERE to_regclass('pixl_events_' || to_char((now() AT TIME ZONE 'UTC')::date + k, 'YYYYMMDD')) IS NOT NULL})
  or die 'the worker never made the events partitions';
pass('the usage worker makes the partitions of yesterday to a week ahead');

# psql prints each notification after the command that delivered it
sub notifications
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', "LISTEN pixltoken;\n$sql", stdout => \$out, stderr => \$err, on_error_stop => 1);
	is($err, '', 'script ran without errors') or diag($err);
	ok($out !~ /with payload/, 'no wake-up carries a payload');
	my @all = ($out =~ /(Asynchronous notification "pixltoken".*? received)/g);
	return scalar(@all);
}

$node->safe_psql('postgres', q{
	SELECT pixl_set_store_plan('ev-t', 'growth');
	SELECT pixl_event_consumer_create('tap', 'ev-t');
});
my $script = q{
SELECT count(*) FROM pixl_create_token('ev-t', 'one', ARRAY['orders:read']);
BEGIN;
SELECT count(*) FROM pixl_create_token('ev-t', 'two', ARRAY['orders:read']);
SELECT count(*) FROM pixl_create_token('ev-t', 'three', ARRAY['orders:read']);
COMMIT;
BEGIN;
SELECT count(*) FROM pixl_create_token('ev-t', 'rolled back', ARRAY['orders:read']);
ROLLBACK;
};
is(notifications($script), 2, 'one wake-up per committed transaction, none for a rollback');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pixl_events WHERE store_id = 'ev-t' AND type = 'token.created'}),
	3, 'an event per committed change');

$node->append_conf('postgresql.conf', "pixltoken.event_notify = off\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_setting('pixltoken.event_notify') = 'off'})
  or die 'the setting never took effect';
is(notifications($script), 0, 'pixltoken.event_notify = off: no wake-up');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pixl_events WHERE store_id = 'ev-t' AND type = 'token.created'}),
	6, 'the events all the same');

# six pending: claim two and acknowledge one, claim two more with a long
# lease; then restart and crash
$node->safe_psql('postgres', q{
	CREATE TABLE first_claim AS SELECT * FROM pixl_events_claim('tap', 2, '1 hour');
	SELECT pixl_events_ack('tap', ARRAY[(SELECT min(event_id) FROM first_claim)]);
	SELECT count(*) FROM pixl_events_claim('tap', 2, '1 hour');
});
my $state_sql = q{SELECT ready || ' ready, ' || leased || ' leased, ' || dead || ' dead'
					FROM pixl_event_consumer_status WHERE consumer = 'tap'};
is($node->safe_psql('postgres', $state_sql), '2 ready, 3 leased, 0 dead', 'before the restart');
$node->restart;
is($node->safe_psql('postgres', $state_sql), '2 ready, 3 leased, 0 dead', 'the same after a clean restart');
$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres', $state_sql), '2 ready, 3 leased, 0 dead', 'the same after a crash');
is($node->safe_psql('postgres', q{SELECT count(*) || ' ' || min(attempt) FROM pixl_events_claim('tap', 10, '1 hour')}),
	'2 1', 'the unleased ones are claimed, first attempt');
is($node->safe_psql('postgres', q{SELECT pixl_events_ack('tap', array_agg(event_id)) FROM pixl_events WHERE store_id = 'ev-t'}),
	'5', 'every event not acknowledged before is acknowledged once');

# a bad endpoint secret written as a literal: the error neither quotes it
# nor logs the statement that holds it (log_statement off for the call, as
# a relay's role has it: the tests' servers log every statement)
my $marker = 'whsec_c2VjcmV0LW1hcmtlci0wNDQ=';
my ($ret, $out, $err) = $node->psql('postgres',
	"SET log_statement = 'none';\nSELECT pixl_webhook_signature('$marker', 'msg', 1, 'body');");
like($err, qr/invalid webhook secret/, 'a short key is refused');
ok(index($err, $marker) < 0, 'the error does not show the secret');
ok(index(slurp_file($node->logfile), 'c2VjcmV0LW1hcmtlci0wNDQ') < 0,
	'the server log holds neither the secret nor the statement');

$node->stop;
done_testing();
