# Copyright: the pixltoken authors.
#
# The user documents do not drift from the code:
# (a) every function and view that is a member of the extension in a fresh
#     install is named in the first column of a table of README.md's
#     "Reference" section, and every name there is a member function or
#     relation of the extension;
# (b) every pixltoken.* setting of pg_settings appears in the "Settings"
#     section of docs/operations.md;
# (c) every PX SQLSTATE the source raises (written as 'PXnnn' or as
#     MAKE_SQLSTATE('P','X',...) outside comments, in the C sources under
#     src/ and in the extension's SQL sources: src/, scripts/, released/,
#     schema/ and any directory of a *.sql path the Makefile names) appears
#     in README.md.
# The documents are read from the source tree this file is in.
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Find;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $top = abs_path(dirname(__FILE__) . '/../..');

sub slurp_file_text
{
	my ($path) = @_;
	open(my $fh, '<:encoding(UTF-8)', $path) or die "cannot open $path: $!";
	local $/;
	my $text = <$fh>;
	close $fh;
	return $text;
}

# The lines of a "## <title>" section, up to the next "## " heading.
sub section
{
	my ($text, $title) = @_;
	my ($body) = $text =~ /^## \Q$title\E[^\n]*\n(.*?)(?=^## |\z)/ms;
	die "no section \"$title\"" unless defined $body;
	return $body;
}

my $readme = slurp_file_text("$top/README.md");
my $operations = slurp_file_text("$top/docs/operations.md");

my $node = PostgreSQL::Test::Cluster->new('docs');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pixltoken'
pixltoken.database = 'postgres'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pixltoken');

# ---------------------------------------------------------------------------
# (a) README's Reference and the extension's members
# ---------------------------------------------------------------------------
my %members;    # name => kind
for my $line (split /\n/, $node->safe_psql('postgres', q{
	SELECT DISTINCT p.proname, 'function'
	  FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
	 WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
	   AND d.refclassid = 'pg_extension'::regclass
	   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pixltoken')
	UNION
	SELECT c.relname, CASE c.relkind WHEN 'v' THEN 'view' ELSE 'relation' END
	  FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
	 WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e'
	   AND d.refclassid = 'pg_extension'::regclass
	   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pixltoken')
	   AND c.relkind IN ('r', 'p', 'v')}))
{
	my ($name, $kind) = split /\|/, $line;
	$members{$name} = $kind;
}
my @documented_kinds = grep { $members{$_} ne 'relation' } sort keys %members;
cmp_ok(scalar(@documented_kinds), '>', 50,
	'a fresh install has its functions and views (the check is not vacuous)');

my %reference;
for my $row (split /\n/, section($readme, 'Reference'))
{
	next unless $row =~ /^\|([^|]*)\|/;
	my $first = $1;
	$reference{$1} = 1 while $first =~ /`(pixl_[a-z0-9_]+)/g;
}
cmp_ok(scalar(keys %reference), '>', 50,
	'README\'s Reference names functions in its tables');

my @undocumented = grep { !$reference{$_} } @documented_kinds;
is_deeply(\@undocumented, [],
	'every function and view of a fresh install is in README\'s Reference');
my @unknown = grep { !exists $members{$_} } sort keys %reference;
is_deeply(\@unknown, [],
	'every name in README\'s Reference is a member of the extension');

# ---------------------------------------------------------------------------
# (b) every setting in docs/operations.md's Settings
# ---------------------------------------------------------------------------
my @settings = split /\n/, $node->safe_psql('postgres',
	"SELECT name FROM pg_settings WHERE name LIKE 'pixltoken.%' ORDER BY 1");
cmp_ok(scalar(@settings), '>', 10, 'pg_settings lists pixltoken\'s settings');
my $settings_doc = section($operations, 'Settings');
my @missing_settings = grep { index($settings_doc, "`$_`") < 0 } @settings;
is_deeply(\@missing_settings, [],
	'every pixltoken setting is in docs/operations.md\'s Settings');

$node->stop;

# ---------------------------------------------------------------------------
# (c) every PX SQLSTATE of the source in README
# ---------------------------------------------------------------------------
my %roots = map { $_ => 1 } qw(src scripts released schema);
my $makefile = slurp_file_text("$top/Makefile");
while ($makefile =~ m{([A-Za-z0-9_.\$\(\)-]+)/[^\s]*\.sql}g)
{
	my $dir = $1;
	$roots{$dir} = 1 if $dir =~ /^[A-Za-z0-9_.-]+$/;
}
# pg_regress and isolation inputs are tests, not sources
delete @roots{qw(sql expected test results)};

my (%codes, @scanned);
find(
	{
		no_chdir => 1,
		wanted => sub {
			return unless -f $_ && /\.(c|h|sql)$/;
			my $kind = $1;
			my $text = slurp_file_text($_);
			$text =~ s{/\*.*?\*/}{ }gs;
			$text =~ s{//[^\n]*}{}g if $kind ne 'sql';
			$text =~ s{--[^\n]*}{}g if $kind eq 'sql';
			$codes{$1} = 1 while $text =~ /\b(PX[0-9A-Z]{3})\b/g;
			$codes{"PX$1$2$3"} = 1
			  while $text =~
			  /MAKE_SQLSTATE\(\s*'P'\s*,\s*'X'\s*,\s*'([0-9A-Z])'\s*,\s*'([0-9A-Z])'\s*,\s*'([0-9A-Z])'\s*\)/g;
			push @scanned, $_;
		}
	},
	grep { -d } map { "$top/$_" } sort keys %roots);
cmp_ok(scalar(@scanned), '>', 10, 'the source files were found');
cmp_ok(scalar(keys %codes), '>', 40, 'the source raises PX SQLSTATEs');
my @unlisted = grep { $readme !~ /`\Q$_\E`/ } sort keys %codes;
is_deeply(\@unlisted, [], 'every PX SQLSTATE of the source is in README');

done_testing();
