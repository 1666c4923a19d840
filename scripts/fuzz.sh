#!/bin/sh
# Builds tern's libFuzzer targets with clang and runs each one for a time
# budget over a copy of its seed corpus.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 60); TARGETs among fuzz_reader fuzz_decode
# fuzz_topic fuzz_segment (default all, one after the other). The build lives in
# build-fuzz (TERN_FUZZ_BUILD overrides). A crash, leak, timeout or OOM input
# is copied to tests/fuzz/regressions/TARGET/, where the regular test suite
# replays it from then on, and the script exits 1.
#
# Needs clang and libFuzzer's runtime; on Debian 12:
#   apt-get install --no-install-recommends clang libclang-rt-14-dev
# (libclang-rt-14-dev is only "recommended" by clang, so --no-install-recommends
# leaves it out and linking -fsanitize=fuzzer then fails).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${TERN_FUZZ_BUILD:-$ROOT/build-fuzz}
SECONDS_PER_TARGET=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=${*:-fuzz_reader fuzz_decode fuzz_topic fuzz_segment}
CC_FUZZ=${CC_FUZZ:-clang}

case $SECONDS_PER_TARGET in
  ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number" >&2; exit 2 ;;
esac

# Longest input per target: the reader gets room for several frames and for
# frames larger than its smaller initial buffers; topics need a little over
# the 1275-byte largest max_len the target tries.
max_len_for() {
  case $1 in
    fuzz_reader) echo 16384 ;;
    fuzz_decode) echo 8192 ;;
    fuzz_topic) echo 2048 ;;
    fuzz_segment) echo 16384 ;;
    *) echo "fuzz.sh: unknown target $1" >&2; exit 2 ;;
  esac
}
for t in $TARGETS; do max_len_for "$t" >/dev/null; done

# Fail early, with the package to install, if libFuzzer cannot link.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
  'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
  'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
  >"$probe/p.c"
if ! "$CC_FUZZ" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" \
     2>"$probe/err"; then
  cat "$probe/err" >&2
  echo "fuzz.sh: $CC_FUZZ cannot link libFuzzer;" \
       "install: apt-get install clang libclang-rt-14-dev" >&2
  exit 2
fi

mkdir -p "$BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER="$CC_FUZZ" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTERN_FUZZ=ON -DTERN_BUILD_TESTS=OFF \
  >"$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log" >&2; exit 2; }
# TARGETS is a list: split it into words.
# shellcheck disable=SC2086
cmake --build "$BUILD" -j"$(nproc)" --target $TARGETS

status=0
for t in $TARGETS; do
  work=$BUILD/fuzz-run/$t
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp "$ROOT/tests/fuzz/corpus/$t/"* "$work/corpus/"
  if [ -d "$ROOT/tests/fuzz/regressions/$t" ]; then
    cp "$ROOT/tests/fuzz/regressions/$t/"* "$work/corpus/" 2>/dev/null || true
  fi
  echo "== $t: ${SECONDS_PER_TARGET}s, max_len $(max_len_for "$t")"
  rc=0
  "$BUILD/fuzz/$t" -max_total_time="$SECONDS_PER_TARGET" \
    -max_len="$(max_len_for "$t")" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "$work/corpus" >"$work/log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
  cov=$(grep -E '^#[0-9]+' "$work/log" | tail -n 1 | sed -n 's/.*\(cov: [0-9]*\).*\(ft: [0-9]*\).*/\1 \2/p')
  echo "   runs ${execs:-?}, ${rate:-?} exec/s, ${cov:-no coverage line}," \
       "corpus $(find "$work/corpus" -type f | wc -l) files, log $work/log"
  found=$(ls "$work/artifacts" 2>/dev/null || true)
  if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
    status=1
    mkdir -p "$ROOT/tests/fuzz/regressions/$t"
    for a in $found; do
      cp "$work/artifacts/$a" "$ROOT/tests/fuzz/regressions/$t/$a"
      echo "   FOUND $a -> tests/fuzz/regressions/$t/$a"
      echo "   reproduce: $BUILD/fuzz/$t $ROOT/tests/fuzz/regressions/$t/$a"
    done
    grep -E 'ERROR|fuzz property failed|SUMMARY' "$work/log" | head -n 5 | sed 's/^/   /'
    [ -n "$found" ] || echo "   $t exited $rc without an artifact; see the log"
  fi
done
exit $status
