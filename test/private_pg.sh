#!/usr/bin/env bash
# Makes a private, relocatable copy of the machine's PostgreSQL 15
# installation under DIR and prints the path of its pg_config:
#
#   PG_CONFIG=$(bash test/private_pg.sh /tmp/somewhere)
#
# PostgreSQL finds its library and share directories relative to its
# binaries, so `make install PG_CONFIG=...` puts a test variant (an
# assertion or sanitizer build) into the copy, and a cluster started from
# the copy's binaries loads it: the machine's own installation, and every
# server running from it, never sees the variant.
set -euo pipefail
SRC_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
DIR=${1:?usage: private_pg.sh DIR}
copy() {	# copy() SRC: the directory SRC, at the same path under $DIR
	mkdir -p "$DIR$(dirname "$1")"
	cp -a "$1" "$DIR$1"
}
copy "$(dirname "$("$SRC_CONFIG" --bindir)")"	# bin/ and lib/ (PGXS too)
copy "$("$SRC_CONFIG" --sharedir)"
copy "$("$SRC_CONFIG" --includedir)"	# libpq and server headers
echo "$DIR$("$SRC_CONFIG" --bindir)/pg_config"
