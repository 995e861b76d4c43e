# Copyright: the pixltoken authors.
#
# Verification on a hot standby.
#
# (a) Every kind of registry change made on the primary -- creation,
#     rotation without and with grace, revocation, disable, enable, a leak
#     report, updates of scopes, rate limit, IP allowlist (checked from
#     inside and outside it) and expiry, a store's plan change, an edit of a
#     plan, and a revocation in a prepared transaction (committed with
#     COMMIT PREPARED) -- is
#     seen on the standby by the very next verification once it has been
#     replayed, and never before: replay is paused, the change committed on
#     the primary and received by the standby, and the same warm psql
#     session (its cache holds the token's row) still answers the old state;
#     replay is resumed, and that session's next verification answers the
#     new state.  Only a relcache invalidation replayed from WAL can tell a
#     standby's backend that its cached row changed, so this is the test of
#     that path.
# (b) pixl_replica_status() on the primary and on the standby, and
#     pixltoken.max_standby_staleness: an idle but connected primary keeps
#     the standby current (200 with a last replayed commit older than the
#     bound); paused replay makes the standby answer 503 'stale' once past
#     the bound, and 200 again once replay resumed; so does a stopped
#     primary, until it is back, and a cut stream, until the backlog
#     received after it is replayed.  The primary ignores the bound.
#     staleness_ms, the answer's own figure: NULL on the primary; on the
#     standby on every answer (200, 401 of well-formed and malformed
#     tokens, 503), never negative, never below how long replay has been
#     held back after the commit arrived, never above what
#     pixl_replica_status() says a moment later; past the bound above it.
#     The HTTP form of 503 stale: Retry-After 1, its problem body, no
#     challenge.
# (c) After promotion the bound no longer applies, and the warm session
#     sees a change committed on the new primary at its next verification.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";
use PixlToken::Test;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# The usage worker serves 'postgres', which has no extension: no background
# commit in 'store', so that the primary can be idle (section b).  Usage is
# not under test here.
my $primary = pixl_node('primary', init => { allows_streaming => 1 }, intervals => 0,
	conf => "max_prepared_transactions = 2\n");
$primary->safe_psql('postgres', 'CREATE DATABASE store');
$primary->safe_psql('store', 'CREATE EXTENSION pixltoken');

# The receiver asks the primary for a keepalive after half of
# wal_receiver_timeout of silence: this keeps an idle primary's standby
# measurably current (docs/replicas.md).  A quick retry after the primary
# comes back keeps the test short.
my $standby = pixl_standby($primary, 'standby', backup => 'base', start => 0, conf => q{
wal_receiver_timeout = '2s'
wal_retrieve_retry_interval = '200ms'
});
# The primary's unclean-stop marker of rate_limit.c lives in pg_stat_tmp,
# which a base backup leaves out: the new standby starts with empty windows.
ok(!-e $standby->data_dir . '/pg_stat_tmp/pixltoken_rate_limit.running',
	'the base backup holds no unclean-stop marker of the primary');
$standby->start;

# The warm session: one psql connection to the standby, kept open for the
# whole test, so that its token cache holds the rows it verified.
my $s = $standby->background_psql('store');

sub create_token
{
	my ($store, $name, $scopes, $extra) = @_;
	$extra = $extra ? ", $extra" : '';
	my $row = $primary->safe_psql('store',
		"SELECT token_id || ' ' || token FROM pixl_create_token('$store', '$name', ARRAY[$scopes]$extra)"
	);
	return split / /, $row;
}

# "status reason rate_limit" (rate_limit only when the token was found
# and checked beyond its allowlist)
sub verify_sql
{
	my ($secret, $scope, $ip) = @_;
	$scope = defined $scope ? "'$scope'" : 'NULL';
	$ip = defined $ip ? "'$ip'" : 'NULL';
	return "SELECT concat_ws(' ', status, reason, rate_limit) "
	  . "FROM pixl_verify_token('$secret', $scope, ip => $ip)";
}

sub on_standby
{
	my ($secret, $scope, $ip) = @_;
	return $s->query_safe(verify_sql($secret, $scope, $ip));
}

sub on_primary
{
	my ($secret, $scope, $ip) = @_;
	return $primary->safe_psql('store', verify_sql($secret, $scope, $ip));
}

# Polls the warm session (bounded) until $sql answers $expected.
sub poll_session
{
	my ($sql, $expected, $what) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	my $got;
	while (1)
	{
		$got = $s->query_safe($sql);
		last if $got eq $expected || time() > $deadline;
		usleep(100_000);
	}
	is($got, $expected, $what);
}

# Pauses replay on the standby, runs $change on the primary, waits until the
# standby has received (not replayed) the commit, runs $while_paused with
# the change's output, then resumes replay and waits until it is replayed.
sub with_replay_paused
{
	my ($change, $while_paused) = @_;

	$standby->safe_psql('store', 'SELECT pg_wal_replay_pause()');
	my $out = $primary->safe_psql('store', $change);
	my $lsn = $primary->lsn('flush');
	$standby->poll_query_until('store',
		"SELECT pg_last_wal_receive_lsn() >= '$lsn'::pg_lsn")
	  or die "standby did not receive $lsn";
	is( $standby->safe_psql('store',
			"SELECT pg_last_wal_replay_lsn() < '$lsn'::pg_lsn"),
		't',
		'the commit is received but not replayed');
	$while_paused->($out);
	$standby->safe_psql('store', 'SELECT pg_wal_replay_resume()');
	$primary->wait_for_catchup($standby, 'replay', $lsn);
	return;
}

# One change: the warm session answers $before (twice: once to warm its
# cache before the change, once while the commit waits for replay), then
# $after on its very next verification once replayed.  @checks are
# [secret, scope, before, after, ip] for each secret the change concerns
# (ip optional).
sub change_seen_once_replayed
{
	my ($name, $change, @checks) = @_;

	for my $c (@checks)
	{
		is(on_standby($c->[0], $c->[1], $c->[4]), $c->[2],
			"$name: standby answers '$c->[2]' before the change");
	}
	with_replay_paused(
		$change,
		sub {
			for my $c (@checks)
			{
				is(on_standby($c->[0], $c->[1], $c->[4]),
					$c->[2],
					"$name: not seen while the commit awaits replay");
			}
		});
	for my $c (@checks)
	{
		is(on_standby($c->[0], $c->[1], $c->[4]), $c->[3],
			"$name: seen by the next verification once replayed");
	}
	return;
}

# ---------------------------------------------------------------------------
# (a) changes on the primary, seen on the standby once replayed, never before
# ---------------------------------------------------------------------------
$primary->safe_psql('store', q{
	SELECT pixl_set_store_plan('store-pro', 'pro');
	SELECT pixl_set_store_plan('store-free', 'free');
	SELECT pixl_set_store_plan('store-new', 'growth');
});
my ($id_a, $s_a) = create_token('store-pro', 'rotate', "'orders:write'");
my ($id_b, $s_b) = create_token('store-pro', 'rotate with grace', "'orders:read'");
my ($id_c, $s_c) = create_token('store-pro', 'revoke', "'orders:read'");
my ($id_d, $s_d) = create_token('store-pro', 'update', "'orders:write', 'products:read'", 'rate_limit => 500');
my ($id_d2, $s_d2) = create_token('store-pro', 'update limit', "'orders:read'", 'rate_limit => 500');
my ($id_e, $s_e) = create_token('store-pro', 'expire', "'orders:read'");
my ($id_f, $s_f) = create_token('store-pro', 'plan change', "'orders:read'", 'rate_limit => 600');
my ($id_g, $s_g) = create_token('store-free', 'plan edit', "'orders:read'");
my ($id_i, $s_i) = create_token('store-pro', 'disable, enable', "'orders:read'");
my ($id_j, $s_j) = create_token('store-pro', 'allowlist', "'orders:read'");
my ($id_k, $s_k) = create_token('store-pro', 'leak report', "'orders:read'");
$primary->wait_for_catchup($standby, 'replay');

# creation: an unknown secret is never cached, so this is the negative case
{
	my $s_n;
	with_replay_paused(
		"SELECT token FROM pixl_create_token('store-new', 'created', ARRAY['orders:read'])",
		sub {
			$s_n = shift;
			is(on_standby($s_n), '401 unknown',
				'creation: not seen while the commit awaits replay');
		});
	is(on_standby($s_n), '200 ok 60',
		'creation: seen by the next verification once replayed');
}

# rotation without grace: the old secret stops, the new one starts
{
	my $s_a2;
	is(on_standby($s_a), '200 ok 60', 'rotation: old secret verifies before');
	with_replay_paused(
		"SELECT pixl_rotate_token('$id_a')",
		sub {
			$s_a2 = shift;
			is(on_standby($s_a), '200 ok 60',
				'rotation: old secret still verifies while the commit awaits replay');
			is(on_standby($s_a2), '401 unknown',
				'rotation: new secret unknown while the commit awaits replay');
		});
	is(on_standby($s_a), '401 unknown',
		'rotation: old secret refused by the next verification once replayed');
	is(on_standby($s_a2), '200 ok 60',
		'rotation: new secret verifies once replayed');
}

# rotation with grace: both secrets verify once replayed
{
	my $s_b2;
	is(on_standby($s_b), '200 ok 60',
		'rotation with grace: old secret verifies before');
	with_replay_paused(
		"SELECT pixl_rotate_token('$id_b', interval '1 hour')",
		sub {
			$s_b2 = shift;
			is(on_standby($s_b2), '401 unknown',
				'rotation with grace: new secret unknown while the commit awaits replay');
		});
	is(on_standby($s_b2), '200 ok 60',
		'rotation with grace: new secret verifies once replayed');
	is(on_standby($s_b), '200 ok 60',
		'rotation with grace: old secret still verifies in its grace');
}

change_seen_once_replayed('revocation',
	"SELECT pixl_revoke_token('$id_c')",
	[ $s_c, undef, '200 ok 60', '401 revoked' ]);

change_seen_once_replayed('disable',
	"SELECT pixl_disable_token('$id_i', 'standby test')",
	[ $s_i, undef, '200 ok 60', '401 disabled' ]);

change_seen_once_replayed('enable',
	"SELECT pixl_enable_token('$id_i')",
	[ $s_i, undef, '401 disabled', '200 ok 60' ]);

# an allowlist set on the primary: the address inside it keeps verifying,
# the one outside is refused only once replayed
change_seen_once_replayed(
	'allowlist',
	"SELECT pixl_update_token('$id_j', allowed_ips => ARRAY['192.0.2.0/24'])",
	[ $s_j, undef, '200 ok 60', '200 ok 60', '192.0.2.7' ],
	[ $s_j, undef, '200 ok 60', '403 ip_not_allowed', '198.51.100.1' ]);

change_seen_once_replayed('leak report',
	"SELECT pixl_report_leaked('$s_k', 'standby test: pasted in a ticket')",
	[ $s_k, undef, '200 ok 60', '401 exposed' ]);

change_seen_once_replayed(
	'update of scopes',
	"SELECT pixl_update_token('$id_d', scopes => ARRAY['products:read'])",
	[ $s_d, 'orders:write', '200 ok 500', '403 insufficient_scope 500' ],
	[ $s_d, 'products:read', '200 ok 500', '200 ok 500' ]);

# two requests admitted under 500 (within a second), then the limit is 2:
# the standby's own limiter applies the replayed limit at once
change_seen_once_replayed('update of the rate limit',
	"SELECT pixl_update_token('$id_d2', rate_limit => 2)",
	[ $s_d2, undef, '200 ok 500', '429 rate_limited 2' ]);

# expiry: set one second ahead; while replay waits, the moment passes (the
# primary already answers 'expired') and the standby still answers 200
{
	is(on_standby($s_e), '200 ok 60', 'update of the expiry: verifies before');
	with_replay_paused(
		"SELECT pixl_update_token('$id_e', expires_at => clock_timestamp() + interval '1 second')",
		sub {
			my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
			usleep(100_000)
			  while on_primary($s_e) ne '401 expired' && time() < $deadline;
			is(on_primary($s_e), '401 expired',
				'update of the expiry: the primary answers expired');
			is(on_standby($s_e), '200 ok 60',
				'update of the expiry: the standby does not know it before replay');
		});
	is(on_standby($s_e), '401 expired',
		'update of the expiry: seen by the next verification once replayed');
}

change_seen_once_replayed('plan change of the store',
	"SELECT pixl_set_store_plan('store-pro', 'starter')",
	[ $s_f, undef, '200 ok 600', '200 ok 120' ]);

change_seen_once_replayed('edit of a plan',
	"UPDATE pixl_plans SET default_rate_limit = 30, max_rate_limit = 30 WHERE plan = 'free'",
	[ $s_g, undef, '200 ok 60', '200 ok 30' ]);

# a prepared transaction (a direct write of the registry, as an operator may
# make: 1.1's management functions send NOTIFY, which PREPARE refuses): not
# seen once PREPARE is replayed, seen once COMMIT PREPARED is
{
	my ($id_p, $s_p) = create_token('store-pro', 'prepared', "'orders:read'");
	$primary->wait_for_catchup($standby, 'replay');
	is(on_standby($s_p), '200 ok 60', 'prepared revocation: verifies before');
	$primary->safe_psql('store',
		"BEGIN; UPDATE pixl_token_registry SET revoked_at = now() WHERE token_id = '$id_p'; PREPARE TRANSACTION 'revoke_p';"
	);
	$primary->wait_for_catchup($standby, 'replay');
	is(on_standby($s_p), '200 ok 60',
		'prepared revocation: not seen once PREPARE is replayed');
	change_seen_once_replayed('prepared revocation',
		"COMMIT PREPARED 'revoke_p'",
		[ $s_p, undef, '200 ok 60', '401 revoked' ]);
}

# ---------------------------------------------------------------------------
# (b) staleness: pixl_replica_status() and pixltoken.max_standby_staleness
# ---------------------------------------------------------------------------
is( $primary->safe_psql('store',
		"SELECT concat_ws(' ', is_standby, basis, staleness IS NULL, last_replayed_commit IS NULL, bound IS NULL) FROM pixl_replica_status()"),
	'f primary t t t',
	'primary: not a standby, no staleness');
is( $primary->safe_psql('store',
		"SELECT has_function_privilege('public', 'pixl_replica_status()', 'EXECUTE')"),
	'f',
	'pixl_replica_status is not granted to PUBLIC');

# A store on the enterprise plan, so that the polls below stay far below
# the token's limit.
$primary->safe_psql('store',
	"SELECT pixl_set_store_plan('store-big', 'enterprise')");
my ($id_h, $s_h) = create_token('store-big', 'staleness', "'orders:read'", 'rate_limit => 1000');
$primary->wait_for_catchup($standby, 'replay');

# staleness_ms of every answer: "status:staleness_ms" of a 200, a 401 of a
# well-formed token (revoked), a 401 malformed, and the HTTP form's 200
sub answers_sql
{
	return "SELECT concat_ws(' ', "
	  . join(', ',
		map { "(SELECT status || ':' || coalesce(staleness_ms::text, 'null') FROM $_)" }
		  ("pixl_verify_request('$s_h', '*')", "pixl_verify_request('$s_c', '*')",
			"pixl_verify_request('sk_live_garbage', '*')",
			"pixl_verify_token_http('$s_h', '*')"))
	  . ')';
}
is($primary->safe_psql('store', answers_sql()),
	'200:null 401:null 401:null 200:null',
	'primary: staleness_ms is NULL in every answer');

poll_session(
	"SELECT concat_ws(' ', is_standby, basis, staleness < interval '2 s', bound IS NULL) FROM pixl_replica_status()",
	't caught_up t t',
	'standby, connected and replayed: caught up, no bound');

# Every answer of the standby carries its staleness, never negative; caught
# up, it is at most what pixl_replica_status() says a moment later, plus
# one keepalive interval (wal_receiver_timeout / 2 = 1 s: a keepalive that
# arrives between the two makes the later figure smaller) and the 100 ms
# for which a backend reuses its measurement (standby.c).
{
	my @a = split / /, $s->query_safe(answers_sql());
	is(join(' ', map { (split /:/)[0] } @a),
		'200 401 401 200', 'standby: the answers');
	my @ms = map { (split /:/)[1] } @a;
	is(scalar(grep { /^\d+$/ } @ms), 4,
		'standby: staleness_ms in every answer, 401s included, never negative')
	  or diag("@a");
	my $later = $s->query_safe(
		"SELECT (extract(epoch FROM staleness) * 1000)::bigint FROM pixl_replica_status()");
	ok((grep { /^\d+$/ && $_ <= $later + 1100 + 500 } @ms) == 4,
		'standby, caught up: staleness_ms at most pixl_replica_status() a moment later, plus a keepalive interval')
	  or diag("answers @a, pixl_replica_status() $later ms");
}

# Replay held back after a commit arrived: the view is at least as old as
# the wait (N = 1.5 s, timed here: it is the quantity measured), and the
# figure of each answer is at most what pixl_replica_status() says right
# after it in the same session (replay paused, the view's "current as of"
# stands still, so only the clock moves).
{
	$standby->safe_psql('store', 'SELECT pg_wal_replay_pause()');
	$primary->safe_psql('store', "SELECT pixl_set_store_plan('store-held', 'free')");
	my $held_lsn = $primary->lsn('flush');
	$standby->poll_query_until('store',
		"SELECT pg_last_wal_receive_lsn() >= '$held_lsn'::pg_lsn")
	  or die "standby did not receive $held_lsn";
	usleep(1_500_000);
	my $r = $s->query_safe(
		"SELECT concat_ws(' ', v.status, v.staleness_ms, h.status, h.staleness_ms, "
		  . "(SELECT (extract(epoch FROM staleness) * 1000)::bigint FROM pixl_replica_status()), "
		  . "(SELECT basis FROM pixl_replica_status())) "
		  . "FROM pixl_verify_request('$s_h', '*') v, pixl_verify_token_http('$s_h', '*') h");
	my ($vst, $vms, $hst, $hms, $later, $basis) = split / /, $r;
	is("$vst $hst $basis", '200 200 behind',
		'replay held back, no bound: 200 from a view that is behind');
	ok($vms >= 1500 && $hms >= $vms && $later >= $hms,
		'replay held back 1.5 s: 1500 <= staleness_ms <= pixl_replica_status() right after')
	  or diag($r);
	$standby->safe_psql('store', 'SELECT pg_wal_replay_resume()');
	$primary->wait_for_catchup($standby, 'replay', $held_lsn);
}

# The bound is a SIGHUP setting; the warm session picks it up at its next
# command.  The primary ignores it.
$_->safe_psql('store',
	"ALTER SYSTEM SET pixltoken.max_standby_staleness = '5s'; SELECT pg_reload_conf()")
  for ($primary, $standby);
poll_session('SHOW pixltoken.max_standby_staleness', '5s',
	'the warm session sees the bound');
$primary->poll_query_until('store',
	"SELECT current_setting('pixltoken.max_standby_staleness') = '5s'")
  or die 'primary did not reload';
is(on_primary($s_h), '200 ok 1000', 'the primary ignores the bound');

# An idle primary: the last replayed commit gets older than the bound, yet
# the standby, still hearing the primary's keepalives, vouches.
poll_session(
	"SELECT concat_ws(' ', basis, now() - last_replayed_commit > bound, staleness <= bound, (" . verify_sql($s_h) . ")) FROM pixl_replica_status()",
	'caught_up t t 200 ok 1000',
	'idle primary: last commit older than the bound, the standby still current and answering 200');

# One figure for the whole node (standby.c: "current as of" is kept in
# shared memory).  Replay is held back 1.5 s behind a commit of a quiet
# primary whose previous commit is older than the bound: the warm session
# and a fresh one (a new connection, which has measured nothing itself)
# both answer 200 with the same staleness_ms, up to the time between their
# answers, and neither is below the time since the primary committed (the
# view is current as of no later than that commit).
{
	my $q = "SELECT concat_ws(' ', status, staleness_ms) FROM pixl_verify_request('$s_h', '*')";
	$standby->safe_psql('store', 'SELECT pg_wal_replay_pause()');
	$primary->safe_psql('store', "SELECT pixl_set_store_plan('store-node', 'free')");
	my $committed = Time::HiRes::time();
	my $node_lsn = $primary->lsn('flush');
	$standby->poll_query_until('store',
		"SELECT pg_last_wal_receive_lsn() >= '$node_lsn'::pg_lsn")
	  or die "standby did not receive $node_lsn";
	usleep(1_500_000);
	my $t0 = Time::HiRes::time();
	my ($wst, $wms) = split / /, $s->query_safe($q);
	my ($fst, $fms) = split / /, $standby->safe_psql('store', $q);
	my $t1 = Time::HiRes::time();
	my $held = int(($t0 - $committed) * 1000);
	my $between = int(($t1 - $t0) * 1000) + 1;
	is("$wst $fst", '200 200',
		'replay held back 1.5 s, bound 5 s: the warm session and a fresh one both answer 200');
	ok( $wms =~ /^\d+$/ && $fms =~ /^\d+$/
		  && $wms >= $held && $fms >= $wms && $fms - $wms <= $between,
		"one node-wide figure: warm $wms ms, fresh $fms ms (replay held $held ms, $between ms between the answers)"
	) or diag("warm $wst $wms, fresh $fst $fms, held $held, between $between");
	$standby->safe_psql('store', 'SELECT pg_wal_replay_resume()');
	$primary->wait_for_catchup($standby, 'replay', $node_lsn);
}

# An idle standby of a quiet primary: nothing verified on it for longer
# than the bound, yet a fresh session finds it current (the WAL receiver
# still hears the primary's keepalives).
usleep(5_500_000);
is($standby->safe_psql('store', verify_sql($s_h)), '200 ok 1000',
	'idle for longer than the bound, quiet primary: a fresh session gets 200');

# A freshly started standby that has replayed no commit yet (no "last
# replayed commit" to fall back on) and that no session has asked: once
# it streams and has caught up, the node knows it (the usage worker
# measures it every second here: it serves no database with the
# extension).  Replay is then held back 2.5 s
# behind a commit: every session answers 200 with a staleness of at least
# the hold, not 503 with an unknown staleness.
{
	my $standby2 = pixl_standby($primary, 'standby2', backup => 'base2', conf => q{
wal_receiver_timeout = '2s'
pixltoken.max_standby_staleness = '5s'
});
	$primary->wait_for_catchup($standby2, 'replay', $primary->lsn('insert'));
	usleep(2_000_000);
	$standby2->safe_psql('store', 'SELECT pg_wal_replay_pause()');
	$primary->safe_psql('store', "SELECT pixl_set_store_plan('store-fresh', 'free')");
	my $committed = Time::HiRes::time();
	my $fresh_lsn = $primary->lsn('flush');
	$standby2->poll_query_until('store',
		"SELECT pg_last_wal_receive_lsn() >= '$fresh_lsn'::pg_lsn")
	  or die "standby2 did not receive $fresh_lsn";
	usleep(2_500_000);
	my $t0 = Time::HiRes::time();
	my ($st, $ms) = split / /, $standby2->safe_psql('store',
		"SELECT concat_ws(' ', status, coalesce(staleness_ms::text, 'null')) FROM pixl_verify_request('$s_h', '*')");
	my $held = int(($t0 - $committed) * 1000);
	ok($st eq '200' && $ms =~ /^\d+$/ && $ms >= $held && $ms <= 5000,
		"freshly started standby, replay held back $held ms: a fresh session gets 200 with staleness_ms $ms")
	  or diag("answer $st $ms, held $held ms");
	$standby2->safe_psql('store', 'SELECT pg_wal_replay_resume()');
	$primary->wait_for_catchup($standby2, 'replay', $fresh_lsn);
	$standby2->stop;
}

# Paused replay with a commit waiting: past the bound, 503 'stale'.
$standby->safe_psql('store', 'SELECT pg_wal_replay_pause()');
$primary->safe_psql('store', "SELECT pixl_set_store_plan('store-other', 'free')");
my $lsn = $primary->lsn('flush');
$standby->poll_query_until('store',
	"SELECT pg_last_wal_receive_lsn() >= '$lsn'::pg_lsn")
  or die "standby did not receive $lsn";
poll_session(verify_sql($s_h), '503 stale',
	'replay paused behind receipt: 503 stale once past the bound');
is( $s->query_safe(
		"SELECT concat_ws(' ', basis, staleness > bound) FROM pixl_replica_status()"),
	'behind t',
	'pixl_replica_status: behind, past the bound');
is( $s->query_safe(
		"SELECT concat_ws(' ', status, reason, token_id, store_id, rate_limit, remaining, request_id) FROM pixl_verify_request('$s_h', 'orders:read')"
	),
	'503 stale',
	'503 stale carries no token columns');
is( $s->query_safe(
		"SELECT concat_ws(' ', status, reason, staleness_ms > 5000) FROM pixl_verify_request('sk_live_garbage', '*')"),
	'401 malformed t',
	'a malformed token is still refused as such, with the staleness');
is( $s->query_safe(
		"SELECT concat_ws(' ', v.staleness_ms > 5000, "
		  . "v.staleness_ms <= (SELECT (extract(epoch FROM staleness) * 1000)::bigint FROM pixl_replica_status())) "
		  . "FROM pixl_verify_request('$s_h', '*') v"),
	't t',
	'503 stale: staleness_ms past the bound, at most pixl_replica_status() right after');
# the HTTP answer: 503, Retry-After 1, a problem body that says why and
# that the token may be valid, no WWW-Authenticate (RFC 9110: 503 has no
# challenge), no rate-limit headers (nothing was charged)
is( $s->query_safe(
		"SELECT concat_ws('|', status, reason, staleness_ms > 5000, www_authenticate IS NULL, "
		  . "ratelimit_policy IS NULL AND ratelimit IS NULL, retry_after, "
		  . "problem->>'type', problem->>'title', problem->>'status', problem->>'reason', "
		  . "problem->>'detail', token_id IS NULL AND request_id IS NULL) "
		  . "FROM pixl_verify_token_http('$s_h', 'orders:read')"),
	'503|stale|t|t|t|1|urn:pixltoken:problem:stale|Replica too far behind|503|stale|'
	  . 'This database replica is too far behind its primary to vouch for API tokens; '
	  . 'the token may well be valid: retry, preferably on another node.|t',
	'503 stale over HTTP: Retry-After 1, the stale problem body, no challenge, no token columns');

$standby->safe_psql('store', 'SELECT pg_wal_replay_resume()');
$primary->wait_for_catchup($standby, 'replay', $lsn);
poll_session(verify_sql($s_h), '200 ok 1000',
	'replay resumed: 200 again');

# A stopped primary: the standby cannot vouch for more than its last
# replayed commit, which is older than the bound by now.
$primary->stop;
poll_session(verify_sql($s_h), '503 stale', 'primary stopped: 503 stale');
is($s->query_safe('SELECT basis FROM pixl_replica_status()'),
	'no_stream', 'pixl_replica_status: no stream');
$primary->start;
poll_session(verify_sql($s_h), '200 ok 1000', 'primary back: 200 again');

# A backlog received after a reconnection is not fresh.  The stream is cut
# (primary_conninfo pointed nowhere) until the standby refuses, the primary
# commits, the stream is restored with that commit held back by
# recovery_min_apply_delay: the standby has heard the primary again but
# not caught up with it, and keeps refusing (the start of the WAL chunk
# being replayed would call it fresh); once replayed, 200.
$standby->safe_psql('store', q{
	ALTER SYSTEM SET primary_conninfo = 'host=/nonexistent port=1';
	SELECT pg_reload_conf();
});
poll_session(verify_sql($s_h), '503 stale', 'stream cut: 503 stale');
$primary->safe_psql('store', "SELECT pixl_set_store_plan('store-backlog', 'free')");
$lsn = $primary->lsn('flush');
$standby->safe_psql('store', q{
	ALTER SYSTEM SET recovery_min_apply_delay = '1h';
	ALTER SYSTEM RESET primary_conninfo;
	SELECT pg_reload_conf();
});
$standby->poll_query_until('store',
	"SELECT pg_last_wal_receive_lsn() >= '$lsn'::pg_lsn")
  or die "standby did not receive $lsn";
is( $s->query_safe(
		"SELECT concat_ws(' ', basis, (" . verify_sql($s_h) . ")) FROM pixl_replica_status()"),
	'behind 503 stale',
	'stream restored, backlog not replayed: behind, 503 stale');
$standby->safe_psql('store', q{
	ALTER SYSTEM RESET recovery_min_apply_delay;
	SELECT pg_reload_conf();
});
$primary->wait_for_catchup($standby, 'replay', $lsn);
poll_session(verify_sql($s_h), '200 ok 1000', 'backlog replayed: 200 again');

# A change replayed just before a promotion, while a warm session is idle:
# that session handles the change's relcache invalidation only at its next
# verification, after the promotion, when invalidations no longer flush a
# cache.  It must still see the change (token_cache.c flushes once when a
# backend that cached as a standby finds the node promoted).  The second
# session stays idle from here until after the promotion below.
my ($id_p, $s_p) = create_token('store-big', 'promotion race', "'orders:read'", 'rate_limit => 1000');
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
my $s2 = $standby->background_psql('store');
is($s2->query_safe(verify_sql($s_p)), '200 ok 1000',
	'promotion race: the idle session caches the token');
$primary->safe_psql('store', "SELECT pixl_revoke_token('$id_p')");
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));

# No bound (0): a standby whose primary is gone still answers from its view.
$standby->safe_psql('store',
	"ALTER SYSTEM RESET pixltoken.max_standby_staleness; SELECT pg_reload_conf()");
poll_session('SHOW pixltoken.max_standby_staleness', '0',
	'the warm session sees the bound removed');
$primary->stop;
poll_session("SELECT basis FROM pixl_replica_status()", 'no_stream',
	'primary stopped again: no stream');
is(on_standby($s_h), '200 ok 1000',
	'no bound: the standby answers from its view');
$standby->safe_psql('store',
	"ALTER SYSTEM SET pixltoken.max_standby_staleness = '1ms'; SELECT pg_reload_conf()");
poll_session(verify_sql($s_h), '503 stale', 'a bound of 1 ms: 503 stale');

# ---------------------------------------------------------------------------
# (c) promotion: the bound no longer applies, and the warm session of the
#     former standby sees a change committed on the new primary at its next
#     verification (its cache switches from replayed invalidations to the
#     primary's own).
# ---------------------------------------------------------------------------
$standby->promote;
poll_session("SELECT basis FROM pixl_replica_status()", 'primary',
	'promoted: no longer a standby');
is(on_standby($s_h), '200 ok 1000', 'promoted: the bound no longer applies');
is( $s->query_safe(
		"SELECT concat_ws(' ', v.status, v.staleness_ms IS NULL, h.staleness_ms IS NULL) "
		  . "FROM pixl_verify_request('$s_h', '*') v, pixl_verify_token_http('$s_h', '*') h"),
	'200 t t',
	'promoted: staleness_ms is NULL, as on any primary');
is($s2->query_safe(verify_sql($s_p)), '401 revoked',
	'promotion race: a revoke replayed before the promotion is seen by the session idle since');
$s2->quit;
$standby->safe_psql('store', "SELECT pixl_revoke_token('$id_h')");
is(on_standby($s_h), '401 revoked',
	'promoted: a change committed on the new primary is seen by the warm session');

$s->quit;
$standby->stop;
done_testing();
