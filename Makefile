# pixltoken — PGXS build.  See README.md for the test and demo commands.

EXTENSION = pixltoken
EXTVERSION = 1.0

MODULE_big = pixltoken
OBJS = \
	src/pixltoken.o \
	src/token_format.o \
	src/scopes.o \
	src/management.o \
	src/token_cache.o \
	src/rate_limit.o \
	src/usage_queue.o \
	src/usage_store.o \
	src/usage_sql.o \
	src/usage_worker.o \
	src/verify.o

# The install script is assembled from one file per concern under sql/src/,
# so that each part stays readable; released scripts never change.
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*--*.sql))

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS += $(PIXL_CFLAGS)

TESTS = $(sort $(wildcard test/sql/*.sql))
REGRESS = $(patsubst test/sql/%.sql,%,$(TESTS))
REGRESS_OPTS = --inputdir=test --temp-instance=tmp_check_regress \
	--temp-config=test/pixltoken.conf
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

sql/$(EXTENSION)--$(EXTVERSION).sql: $(sort $(wildcard sql/src/*.sql))
	cat $^ > $@
