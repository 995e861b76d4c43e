# Copyright: the pixltoken authors.

=pod

=head1 NAME

PixlToken::Test - set-up and shared helpers of pixltoken's TAP tests

=head1 SYNOPSIS

  use strict;
  use warnings;
  use FindBin;
  use lib "$FindBin::RealBin/../lib";
  use PixlToken::Test;
  use PostgreSQL::Test::Utils;
  use Test::More;

  # started, library preloaded, the worker serving 'postgres' with 100 ms
  # intervals, the extension created in 'postgres'
  my $node = pixl_node('mytest', extension => 'postgres',
      conf => "pixltoken.request_log = 'all'\n");
  wait_serving($node, 'postgres');
  my ($id, $secret) = new_token($node, 'postgres', 'store-a', rate_limit => 10);
  like(err($node, 'postgres', "SELECT pixl_rotate_token('$id', '-1 second')"),
      qr/^PX014: invalid grace period/, 'a negative grace period is refused');
  done_testing();

=head1 DESCRIPTION

Each test file starts its own clusters (PostgreSQL::Test::Cluster); this
module makes the part every test repeats one call, and leaves what is
special to a test (several databases, standbys, crashes, roles) visible in
the test itself.  It asserts nothing by itself except where a function's
description says so (wait_serving, wait_is): every other check stays a
Test::More call in the test.

Tests load it with C<use FindBin; use lib "$FindBin::RealBin/../lib";>, so
that C<make installcheck> (PGXS's prove_installcheck, run from the tree's
root), C<test/run.sh> and a plain C<prove test/t/xxx.pl> all find it
without a prove flag.

=head1 FUNCTIONS

=over

=cut

package PixlToken::Test;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT = qw(pixl_node pixl_standby err wait_serving wait_is new_token);

=item pixl_node($name, %opt)

A new node, initialised, with our standard configuration appended to
postgresql.conf, started; returns it.  The standard configuration (the
same as test/pixltoken.conf's, which pg_regress and the isolation tester
use):

  shared_preload_libraries = 'pixltoken'
  pixltoken.database = 'postgres'
  pixltoken.flush_interval = '100ms'
  pixltoken.fold_interval = '100ms'

Options:

=over

=item databases => 'a,b' | undef

pixltoken.database, the databases the usage worker serves (default
'postgres'); undef leaves the line out (the server's default).

=item preload => 'list' | undef

shared_preload_libraries (default 'pixltoken'); undef leaves it out, for a
test of the extension without its library.

=item intervals => 0

Leaves out the 100 ms flush and fold intervals (the defaults then apply),
for tests that do not follow the usage pipeline and had none.

=item conf => 'text'

Further lines, appended after the standard ones (so a later setting wins).

=item init => { ... }

Arguments of PostgreSQL::Test::Cluster::init, e.g.
C<< init => { allows_streaming => 1 } >> for a primary.

=item start => 0

Do not start the node.

=item extension => 'db'

After the start, CREATE EXTENSION pixltoken in that database (which must
exist: 'postgres' does).

=back

=cut

sub pixl_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%{ $opt{init} // {} });

	my $preload = exists $opt{preload} ? $opt{preload} : 'pixltoken';
	my $databases = exists $opt{databases} ? $opt{databases} : 'postgres';
	my $conf = '';
	$conf .= "shared_preload_libraries = '$preload'\n" if defined $preload;
	$conf .= "pixltoken.database = '$databases'\n" if defined $databases;
	$conf .= "pixltoken.flush_interval = '100ms'\npixltoken.fold_interval = '100ms'\n"
	  unless defined $opt{intervals} && !$opt{intervals};
	$conf .= $opt{conf} if defined $opt{conf};
	$node->append_conf('postgresql.conf', $conf) if $conf ne '';

	return $node if defined $opt{start} && !$opt{start};
	$node->start;
	$node->safe_psql($opt{extension}, 'CREATE EXTENSION pixltoken')
	  if defined $opt{extension};
	return $node;
}

=item pixl_standby($primary, $name, %opt)

A streaming standby of $primary, made from a new base backup (named
C<backup>, default "${name}_base"), with C<conf> appended and started
(unless C<< start => 0 >>); returns it.  It inherits the primary's
configuration, the standard one included.

=cut

sub pixl_standby
{
	my ($primary, $name, %opt) = @_;
	my $backup = $opt{backup} // "${name}_base";
	$primary->backup($backup);
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init_from_backup($primary, $backup, has_streaming => 1);
	$node->append_conf('postgresql.conf', $opt{conf}) if defined $opt{conf};
	$node->start unless defined $opt{start} && !$opt{start};
	return $node;
}

=item err($node, $db, $sql, %opt)

Runs $sql in one psql session (stopping at the first error) and returns
'ok' if it succeeded, or else the error as "SQLSTATE: message", followed
by its DETAIL and HINT lines as psql prints them ("DETAIL:  ...",
"HINT:  ..."), so that a test asserts with like():

  like(err($node, 'postgres', $sql), qr/^PX060: response time/, 'refused');
  is(err($node, 'postgres', $sql, as => 'app'), 'ok', 'app may do it');

Options: C<< as => 'role' >> runs it as that role; C<extra_params> adds
psql arguments; C<< stderr => \my $all >> also hands back psql's whole
stderr (CONTEXT and LOCATION lines included), for a test that must see
everything a client was sent (that no secret is echoed, say).  If psql
failed without an ERROR line (a FATAL at connection, say), its whole stderr
is returned.

=cut

sub err
{
	my ($node, $db, $sql, %opt) = @_;
	my @params = ('-v', 'VERBOSITY=verbose');
	push @params, '-U', $opt{as} if defined $opt{as};
	push @params, @{ $opt{extra_params} } if $opt{extra_params};
	my ($ret, $out, $stderr) = $node->psql($db, $sql, extra_params => \@params);
	${ $opt{stderr} } = $stderr if $opt{stderr};
	return 'ok' if $ret == 0;

	# psql:<stdin>:N: ERROR:  XXXXX: message, then DETAIL, HINT, CONTEXT,
	# LOCATION lines; keep the state, the message, the detail and the hint
	my @lines = split /\n/, $stderr;
	my ($i) = grep { $lines[$_] =~ /\bERROR:\s+\w{5}:\s/ } 0 .. $#lines;
	return $stderr unless defined $i;
	my ($state, $message) = $lines[$i] =~ /\bERROR:\s+(\w{5}):\s+(.*)$/;
	my $result = "$state: $message";
	for my $line (@lines[ $i + 1 .. $#lines ])
	{
		last if $line =~ /^psql:|^(?:ERROR|WARNING|NOTICE|INFO|LOG):/;
		$result .= "\n$line" if $line =~ /^(?:DETAIL|HINT):/;
	}
	return $result;
}

=item wait_serving($node, $db [, $test_name])

One test: polls (bounded) until the usage worker reports 'serving' for
$db in pixl_stats().

=cut

sub wait_serving
{
	my ($node, $db, $test_name) = @_;
	return ok(
		$node->poll_query_until($db,
			"SELECT worker_state = 'serving' FROM pixl_stats() WHERE datname = current_database()"),
		$test_name // "worker serves $db");
}

=item wait_is($node, $db, $sql, $expected, $test_name)

One test: polls $sql every 100 ms until it answers $expected or
PostgreSQL::Test::Utils's timeout_default passes, then is() the last
answer, so that a failure shows what the query last said.

=cut

sub wait_is
{
	my ($node, $db, $sql, $expected, $test_name) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	my $got;
	while (1)
	{
		$got = $node->safe_psql($db, $sql);
		last if $got eq $expected || time() > $deadline;
		usleep(100_000);
	}
	return is($got, $expected, $test_name);
}

=item new_token($node, $db, $store, %opt)

Creates a token of $store and returns (token_id, secret).  Options, with
their defaults: C<< plan => 'enterprise' >> (set with pixl_set_store_plan
first; undef leaves the store's plan alone), C<< name => 'T' >>,
C<< scopes => ['products:read'] >>, C<< rate_limit => 1000 >> (undef: the
plan's default).

=cut

sub new_token
{
	my ($node, $db, $store, %opt) = @_;
	my $plan = exists $opt{plan} ? $opt{plan} : 'enterprise';
	my $name = $opt{name} // 'T';
	my $scopes = join(', ', map { "'$_'" } @{ $opt{scopes} // ['products:read'] });
	my $limit = exists $opt{rate_limit} ? $opt{rate_limit} : 1000;
	$node->safe_psql($db, "SELECT pixl_set_store_plan('$store', '$plan')")
	  if defined $plan;
	my $row = $node->safe_psql($db,
		"SELECT token_id || ' ' || token FROM pixl_create_token('$store', '$name', ARRAY[$scopes]"
		  . (defined $limit ? ", rate_limit => $limit" : '') . ')');
	return split / /, $row;
}

=back

=cut

1;
