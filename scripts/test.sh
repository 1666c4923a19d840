#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#
#   bash scripts/test.sh
#
#   1. build/       RelWithDebInfo, every ctest entry except the valgrind one
#   2. build-asan/  Debug with -DTERN_SANITIZE=address,undefined, every entry
#                   but the four-worker copies (label workers4)
#   2b. build-tsan/ ternd with clang -fsanitize=thread, driven by the
#                   multi-worker tests (ctest -L workers in build/)
#   3. valgrind     ternd under memcheck with a mixed workload (ctest -L
#                   valgrind in build/): zero errors and zero leaks
#   4. fuzz         each libFuzzer target for TERN_FUZZ_SECONDS (default 20)
#                   under ASan+UBSan via scripts/fuzz.sh; 0 skips this step
#   5. image        installs podman (deploy/install-engine.sh) and runs
#                   deploy/test-image.sh: builds deploy/Dockerfile, runs and
#                   checks the container and the compose file; 3-5 minutes
#                   from scratch, under a minute once the base image and the
#                   build stage are cached. Reported as "skipped" (not ok)
#                   where the engine installs but cannot run a container
#                   (a chroot, a machine without user namespaces: the
#                   script first imports and runs a container of nothing
#                   but /bin/true, and exits 77 with the engine's error if
#                   that fails); a failure to install it, or of the image
#                   itself, fails the step. It uses no fixed host port and
#                   runs beside a ternd on 127.0.0.1:7421/8421.
#                   TERN_TEST_IMAGE=0 leaves the step out.
#
# Exits non-zero if any step fails, after running the others, and prints
# how long each took. Environment: JOBS (build parallelism, default nproc),
# TERN_FUZZ_SECONDS, TERN_SKIP_VALGRIND=1 (only where valgrind cannot run).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${TERN_FUZZ_SECONDS:-20}
CTEST_ARGS=(--output-on-failure --no-tests=error -j2)

names=()
results=()
times=()
failed=0
SKIP_REASON=""

now() { date +%s.%N; }

# run_step NAME COMMAND...: runs it, records pass/fail and the time taken.
run_step() {
  local name=$1
  shift
  echo
  echo "==== $name"
  local t0 t1 rc
  t0=$(now)
  "$@"
  rc=$?
  t1=$(now)
  names+=("$name")
  times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')")
  if [ "$rc" -eq 0 ]; then
    results+=("ok")
  elif [ "$rc" -eq 77 ]; then
    # A step that exits 77 may leave its reason in SKIP_REASON.
    results+=("skipped: ${SKIP_REASON:-see its output}")
    SKIP_REASON=
  else
    results+=("FAILED (exit $rc)")
    failed=1
  fi
}

step_release() {
  # TERN_BUILD_TESTS=ON: README command 1 may have configured build/ without.
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTERN_BUILD_TESTS=ON \
    >/dev/null &&
    cmake --build build -j"$JOBS" &&
    ctest --test-dir build "${CTEST_ARGS[@]}" -LE valgrind
}

step_asan() {
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug \
    -DTERN_SANITIZE=address,undefined >/dev/null &&
    cmake --build build-asan -j"$JOBS" &&
    # Not the four-worker copies of the single-worker tests (label
    # workers4; release runs them): they would double this step past CI's
    # budget. test_workers and test_cluster_workers still run several
    # workers under ASan.
    ctest --test-dir build-asan "${CTEST_ARGS[@]}" -LE workers4
}

step_tsan() {
  # ternd alone built with clang's ThreadSanitizer (Criterion's forked
  # workers do not start under it): the release build's multi-worker tests
  # drive it (TERND=), and ctest fails on any "WARNING: ThreadSanitizer".
  CC=clang cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTERN_SANITIZE=thread >/dev/null &&
    cmake --build build-tsan -j"$JOBS" --target ternd &&
    TERND="$ROOT/build-tsan/bin/ternd" TSAN_OPTIONS="halt_on_error=0" \
      ctest --test-dir build "${CTEST_ARGS[@]}" -L '^workers$'
}

step_valgrind() {
  if ! command -v valgrind >/dev/null 2>&1; then
    if [ "${TERN_SKIP_VALGRIND:-0}" = 1 ]; then
      echo "valgrind not installed and TERN_SKIP_VALGRIND=1: skipped"
      return 0
    fi
    echo "valgrind is not installed (scripts/install-deps.sh installs it)" >&2
    return 1
  fi
  # build/ was configured before valgrind may have been installed: refresh.
  cmake -S . -B build >/dev/null && cmake --build build -j"$JOBS" &&
    ctest --test-dir build --output-on-failure --no-tests=error -L valgrind
}

step_fuzz() {
  bash scripts/fuzz.sh "$FUZZ_SECONDS"
}

step_image() {
  bash deploy/install-engine.sh || return 1
  local log rc
  log=$(mktemp)
  TERN_SKIP_STATUS=77 bash deploy/test-image.sh "$ROOT/build/bin/tern" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  # "skipped: REASON" (exit 77) goes into the summary line too.
  SKIP_REASON=$(sed -n 's/^skipped: //p' "$log" | head -1)
  rm -f "$log"
  return "$rc"
}

total0=$(now)
run_step "release build + ctest (build/)" step_release
run_step "asan+ubsan build + ctest (build-asan/)" step_asan
run_step "tsan ternd + multi-worker tests (build-tsan/)" step_tsan
run_step "valgrind memcheck of ternd (build/, -L valgrind)" step_valgrind
if [ "$FUZZ_SECONDS" != 0 ]; then
  run_step "fuzz ${FUZZ_SECONDS}s per target (build-fuzz/)" step_fuzz
fi
if [ "${TERN_TEST_IMAGE:-1}" != 0 ]; then
  run_step "container image (deploy/test-image.sh)" step_image
fi
total1=$(now)

echo
echo "==== summary"
for i in "${!names[@]}"; do
  printf '  %-52s %8ss  %s\n' "${names[$i]}" "${times[$i]}" "${results[$i]}"
done
printf '  %-52s %8ss\n' "total" \
  "$(awk -v a="$total0" -v b="$total1" 'BEGIN { printf "%.1f", b - a }')"
if [ "$failed" -ne 0 ]; then
  echo "test.sh: FAILED"
  exit 1
fi
echo "test.sh: all steps passed"
