# pixltoken — PGXS build.  See README.md for the test and demo commands.

EXTENSION = pixltoken
EXTVERSION = 1.1

MODULE_big = pixltoken
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c src/*/*.c)))

# Released scripts (1.0, 1.1) are frozen in scripts/ and never edited.  A
# version under development keeps its changes readable as one file per
# concern under src/sql/<from>--<to>/ (1.1 did: see git history up to its
# release), which this Makefile concatenates into the upgrade script; its
# install script is the previous one followed by that upgrade, so a fresh
# install and an upgrade run the very same statements (test/t/090_upgrade.pl
# compares the two anyway).  At release both are committed to scripts/.
DATA = scripts/$(EXTENSION)--1.0.sql scripts/$(EXTENSION)--1.1.sql \
	scripts/$(EXTENSION)--1.0--1.1.sql

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
