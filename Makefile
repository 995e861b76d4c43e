# pixltoken — PGXS build.  See README.md for the test and demo commands.

EXTENSION = pixltoken
EXTVERSION = 1.2
# the last released version, which the generated upgrade script starts from
PREVIOUS = 1.1

MODULE_big = pixltoken
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c src/*/*.c)))

# SQL of the extension: three directories, three meanings.
#   schema/    the current definition of every SQL object, each in one place:
#              state/ (tables with all their columns, types, roles, seed
#              rows: what an upgrade changes by hand, with ALTER) and code/
#              (functions, views, triggers, policies, grants, comments: all
#              re-runnable, CREATE OR REPLACE or DROP IF EXISTS + CREATE);
#              upgrades/ holds the hand-written part of the upgrade script
#              of the version under development;
#   released/  the install and upgrade scripts of released versions,
#              frozen (never edited);
#   sql/       the pg_regress suites (with expected/).
# The install script of the version under development, pixltoken--1.2.sql,
# is state/*.sql then code/*.sql, in file-name order.  Its upgrade script
# from the last release, pixltoken--1.1--1.2.sql, is upgrades/1.1--1.2.sql
# (the state changes, and a DROP of what CREATE OR REPLACE cannot change: a
# function's result type, argument names or defaults, a view's columns but
# for new ones at the end; a line "--#include schema/state/<file>" brings
# in a new state file whole) then code/*.sql again, so no definition is
# copied by hand.  Both scripts are generated (gitignored).  At release
# they are copied to released/ and committed, EXTVERSION and PREVIOUS move
# on, and upgrades/ starts a new file.  test/t/090_upgrade.pl checks that a
# fresh install and the upgrades from every released version end with the
# same objects, and that the install script creates each object once.
DATA_built = $(EXTENSION)--$(EXTVERSION).sql $(EXTENSION)--$(PREVIOUS)--$(EXTVERSION).sql
DATA = $(wildcard released/$(EXTENSION)--*.sql)

SCHEMA_STATE = $(sort $(wildcard schema/state/*.sql))
SCHEMA_CODE = $(sort $(wildcard schema/code/*.sql))

$(EXTENSION)--$(EXTVERSION).sql: $(SCHEMA_STATE) $(SCHEMA_CODE) Makefile
	{ printf '/* pixltoken %s install script, generated from schema/ by the Makefile: edit schema/, not this file */\n\n' $(EXTVERSION); \
	  printf '\\echo Use "CREATE EXTENSION pixltoken" to load this file. \\quit\n'; \
	  for f in $(SCHEMA_STATE) $(SCHEMA_CODE); do printf '\n-- %s\n\n' $$f; cat $$f; done; } > $@

$(EXTENSION)--$(PREVIOUS)--$(EXTVERSION).sql: schema/upgrades/$(PREVIOUS)--$(EXTVERSION).sql $(SCHEMA_STATE) $(SCHEMA_CODE) Makefile
	{ printf '/* pixltoken %s -> %s upgrade script, generated from schema/ by the Makefile: edit schema/, not this file */\n\n' $(PREVIOUS) $(EXTVERSION); \
	  printf '\\echo Use "ALTER EXTENSION pixltoken UPDATE TO '"'"'%s'"'"'" to load this file. \\quit\n' $(EXTVERSION); \
	  printf '\n-- %s\n\n' schema/upgrades/$(PREVIOUS)--$(EXTVERSION).sql; \
	  awk '/^--#include /{ print "-- " $$2; while ((getline l < $$2) > 0) print l; close($$2); next } { print }' \
		schema/upgrades/$(PREVIOUS)--$(EXTVERSION).sql; \
	  for f in $(SCHEMA_CODE); do printf '\n-- %s\n\n' $$f; cat $$f; done; } > $@

PG_CPPFLAGS = -I$(srcdir)/src -I$(libpq_srcdir)
# a hot standby ships its usage to the primary over libpq (writer/replica_ship.c)
SHLIB_LINK_INTERNAL = $(libpq)
PG_CFLAGS += $(PIXL_CFLAGS)

# pg_regress suites: sql/ + expected/ (the contrib convention).
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=. --temp-instance=tmp_check_regress \
	--temp-config=test/pixltoken.conf
# Isolation specs: test/specs + test/expected.
ISOLATION = $(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --temp-instance=tmp_check_iso \
	--temp-config=test/pixltoken.conf
TAP_TESTS = 1
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))

EXTRA_CLEAN = tmp_check_regress tmp_check_iso results output_iso \
	regression.diffs regression.out log

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# SHA-256 through libcrypto directly, with a context kept per backend
# (common/token_format.c), when the server is built with OpenSSL; needs its
# headers (libssl-dev) at build time
ifeq ($(with_ssl),openssl)
SHLIB_LINK += -lcrypto
endif

# Every object depends on every header of ours: a changed struct rebuilds
# everything that might lay it out (PGXS tracks no header dependencies).
$(OBJS): $(wildcard src/*.h src/*/*.h)
