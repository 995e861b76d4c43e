#!/usr/bin/env bash
# The checks that find what tests miss, as root on Debian 12 after
# test/run.sh has installed the packages:
#
#   bash test/static.sh
#
#  0. the floors of src/: no circle between its files, no arrow up, the
#     include rules of its directories (tools/src_graph.py --check);
#  1. scan-build --status-bugs over a clean clang build of the extension;
#  2. a build with -DUSE_ASSERT_CHECKING (our own Asserts; Debian's server
#     is not an assert build, and that is fine for an extension: Assert()
#     calls ExceptionalCondition, which every server exports), installed
#     into a private copy of the PostgreSQL installation (test/private_pg.sh)
#     and loaded by a preloading server started from that copy, which runs
#     the verification and security regression suites.  The machine's own
#     installation never holds the variant, not even for a while;
#  3. the libFuzzer harness (test/fuzz/run.sh) for ~30 s (about a million
#     executions; FUZZ_SECONDS=100 for a few million).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
WARN="-Wall -Wextra -Werror -Wno-unused-parameter"
[ "$(id -u)" = 0 ] || { echo "test/static.sh: run as root" >&2; exit 1; }
if [ "${FAST:-0}" != 1 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		clang clang-tools libclang-rt-dev zlib1g-dev libssl-dev >/dev/null
fi
cd "$HERE"

echo "== source layout (tools/src_graph.py --check)"
python3 tools/src_graph.py --check

echo "== scan-build --status-bugs"
make -s clean
scan-build --status-bugs -o /tmp/pixltoken-scan-build --use-cc=clang \
	make -s PG_CONFIG="$PG_CONFIG" CC=clang CFLAGS="-O2 -g -fno-strict-aliasing -fwrapv" \
		PIXL_CFLAGS="$WARN -Wno-ignored-attributes"

echo "== assertion build (-DUSE_ASSERT_CHECKING), in a private installation"
WORK=$(mktemp -d /tmp/pixltoken-assert.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ASSERT_PG_CONFIG=$(bash "$HERE/test/private_pg.sh" "$WORK/pg")
SYSTEM_LIB="$("$PG_CONFIG" --pkglibdir)/pixltoken.so"
system_lib_before=$(sha256sum < "$SYSTEM_LIB")
rsync -a --exclude .git "$HERE"/ "$WORK/src"/
make -C "$WORK/src" -s clean
make -C "$WORK/src" -s PG_CONFIG="$ASSERT_PG_CONFIG" PIXL_CFLAGS="$WARN -DUSE_ASSERT_CHECKING"
make -C "$WORK/src" -s PG_CONFIG="$ASSERT_PG_CONFIG" install
chown -R postgres:postgres "$WORK"
runuser -u postgres -- make -C "$WORK/src" -s PG_CONFIG="$ASSERT_PG_CONFIG" installcheck \
	REGRESS="verify security_input security_store_admins" ISOLATION= TAP_TESTS=
[ "$(sha256sum < "$SYSTEM_LIB")" = "$system_lib_before" ] ||
	{ echo "test/static.sh: the machine's $SYSTEM_LIB changed" >&2; exit 1; }
[ "$(sha256sum < "$("$ASSERT_PG_CONFIG" --pkglibdir)/pixltoken.so")" != "$system_lib_before" ] ||
	{ echo "test/static.sh: the private installation holds the normal build, not the variant" >&2; exit 1; }

echo "== libFuzzer: token parser, checksum, scope parser"
bash "$HERE/test/fuzz/run.sh"
echo "== static checks passed"
