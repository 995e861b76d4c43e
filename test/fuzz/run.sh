#!/usr/bin/env bash
# Builds the libFuzzer harness of the token parser/checksum and the scope
# parser (clang, AddressSanitizer, UndefinedBehaviorSanitizer) and runs it:
#
#   bash test/fuzz/run.sh              # ~30 s: what CI runs (test/static.sh)
#   FUZZ_SECONDS=600 bash test/fuzz/run.sh   # longer, by hand
#
# It starts from the corpus in test/fuzz/corpus (kept small: new inputs the
# run finds go to a scratch directory, not into the tree) and fails on the
# first crash, sanitizer report or oracle violation (see fuzz_pixl.c),
# leaving the input in $OUT.  Prints the number of executions.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
CLANG=${CLANG:-clang}
SECONDS_TO_RUN=${FUZZ_SECONDS:-30}
OUT=${FUZZ_OUT:-$(mktemp -d /tmp/pixl-fuzz.XXXXXX)}
INC=$($PG_CONFIG --includedir-server)
LIB=$($PG_CONFIG --pkglibdir)
# Debian puts the static libraries in the package's lib directory
[ -f "$LIB/libpgcommon.a" ] || LIB=$($PG_CONFIG --libdir)

mkdir -p "$OUT/corpus"
cp "$HERE"/corpus/* "$OUT/corpus/"
$CLANG -g -O2 -Wno-ignored-attributes -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-I"$HERE" -I"$ROOT/src" -I"$INC" \
	"$HERE/fuzz_pixl.c" "$HERE/stubs.c" "$ROOT/src/common/token_format.c" "$ROOT/src/common/scopes.c" \
	"$LIB/libpgcommon.a" "$LIB/libpgport.a" -lssl -lcrypto -lz -lm \
	-o "$OUT/fuzz_pixl"
echo "== fuzzing for ${SECONDS_TO_RUN}s (artifacts in $OUT)"
cd "$OUT"
ASAN_OPTIONS=detect_leaks=0 "$OUT/fuzz_pixl" -max_total_time="$SECONDS_TO_RUN" -detect_leaks=0 -max_len=512 \
	-print_final_stats=1 "$OUT/corpus" 2>&1 | tee "$OUT/fuzz.log" | grep -E "^(==|#[0-9]+ +DONE)|stat::number_of_executed_units|ERROR|SUMMARY" || true
# a crash leaves crash-*; the exit status of the pipeline above is tee's
if ls "$OUT"/crash-* "$OUT"/oom-* "$OUT"/timeout-* >/dev/null 2>&1 || \
   ! grep -q "Done [0-9]* runs" "$OUT/fuzz.log"; then
	echo "fuzz: FAILED, see $OUT" >&2
	tail -40 "$OUT/fuzz.log" >&2
	exit 1
fi
echo "== fuzz: passed ($(grep -o 'Done [0-9]* runs' "$OUT/fuzz.log"))"
rm -rf "$OUT"
