#!/usr/bin/env bash
# install_test.sh BUILD_DIR SOURCE_DIR CMAKE CC
#
# Checks the installed packages as a user meets them:
#  1. cmake --install into a fresh prefix; the expected files are there.
#  2. client/examples built against that prefix three ways: pkg-config +
#     shared libtern, pkg-config --static on a relocated copy of the prefix
#     without libtern.so (proves Libs.private/Requires.private are complete),
#     and a small CMake project with find_package(tern) linking tern::tern
#     and tern::tern_static. A request for major version 1 must be refused.
#  3. The installed ternd is started (--port 0, port read from --ready-fd);
#     a subscriber built one way receives what a publisher built another way
#     sends; the async example round-trips on its own uv loop; request/reply
#     answers; SIGTERM makes ternd exit 0.
set -euo pipefail

BUILD_DIR=$(cd "$1" && pwd)
SOURCE_DIR=$(cd "$2" && pwd)
CMAKE=${3:-cmake}
CC=${4:-cc}
EXAMPLES=$SOURCE_DIR/client/examples
STEP_TIMEOUT=20

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tern-install-test.XXXXXX")
PREFIX=$WORK/prefix
TERND_PID=""
BG_PIDS=()

cleanup() {
  for pid in "${BG_PIDS[@]}" $TERND_PID; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "== $*"; }

# Starts "$@" in the background with stdout on a fifo and waits (bounded)
# for its first line, which must be "ready". Sets REPLY_FD to the fifo's
# read end (for the lines that follow) and LAST_PID.
start_ready() {
  local fifo
  fifo=$WORK/fifo.$RANDOM$RANDOM
  mkfifo "$fifo"
  timeout "$STEP_TIMEOUT" "$@" >"$fifo" &
  LAST_PID=$!
  BG_PIDS+=("$LAST_PID")
  exec {REPLY_FD}<"$fifo"
  local line=""
  read -r -t "$STEP_TIMEOUT" -u "$REPLY_FD" line ||
    fail "$1 did not print ready"
  [ "$line" = "ready" ] || fail "$1 printed '$line' instead of ready"
}

# --- 1. install --------------------------------------------------------
step "install into $PREFIX"
"$CMAKE" --install "$BUILD_DIR" --prefix "$PREFIX" >"$WORK/install.log" ||
  { cat "$WORK/install.log" >&2; fail "cmake --install"; }
LIBDIR=$(dirname "$(find "$PREFIX" -name tern.pc -path '*/pkgconfig/*')")
LIBDIR=${LIBDIR%/pkgconfig}
for f in bin/ternd bin/tern include/tern/tern.h include/tern/async.h \
         include/tern/sync.h; do
  [ -e "$PREFIX/$f" ] || fail "$f not installed"
done
for f in libtern.so libtern.so.0 libtern.a libtern_protocol.a \
         pkgconfig/tern.pc cmake/tern/ternConfig.cmake \
         cmake/tern/ternConfigVersion.cmake cmake/tern/ternTargets.cmake; do
  [ -e "$LIBDIR/$f" ] || fail "${LIBDIR#"$PREFIX"/}/$f not installed"
done
soname=$(objdump -p "$LIBDIR/libtern.so" | awk '$1 == "SONAME" {print $2}')
[ "$soname" = "libtern.so.0" ] || fail "SONAME is '$soname'"
# Only the public API may be exported from the shared library.
if nm -D --defined-only "$LIBDIR/libtern.so" | awk '$2 ~ /[TD]/ {print $3}' |
   grep -v '^tern_' | grep -v '^_' >"$WORK/leaked"; then
  fail "libtern.so exports non-tern symbols: $(head -5 "$WORK/leaked" | tr '\n' ' ')"
fi

# Manual pages, made from --help by help2man when the build found it.
if [ -e "$BUILD_DIR/man/ternd.8" ]; then
  for f in man8/ternd.8 man1/tern.1; do
    [ -e "$PREFIX/share/man/$f" ] || fail "share/man/$f not installed"
  done
  grep -q 'max\\-pending\\-total' "$PREFIX/share/man/man8/ternd.8" ||
    fail "ternd.8 does not list the options"
  grep -q '^\.SS tern pub' "$PREFIX/share/man/man1/tern.1" ||
    fail "tern.1 does not hold the commands' help"
elif command -v help2man >/dev/null; then
  fail "help2man is installed but the build made no manual pages"
fi

# --- 2. build the examples against the prefix --------------------------
CFLAGS_STRICT=(-std=c11 -Wall -Wextra -Werror -O1)

step "pkg-config, shared"
export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
for ex in async subscriber request; do
  # shellcheck disable=SC2046  # word splitting of pkg-config output is wanted
  "$CC" "${CFLAGS_STRICT[@]}" -o "$WORK/$ex-pc" "$EXAMPLES/$ex.c" \
    $(pkg-config --cflags --libs tern) -Wl,-rpath,"$LIBDIR" ||
    fail "building $ex with pkg-config"
done
# The blocking API's header alone builds as strict C11, no feature macros
# (tern.h pulls in uv.h, which needs them; README says so).
printf '#include <tern/sync.h>\nint main(void) { tern_client_close(NULL); return 0; }\n' \
  >"$WORK/strict.c"
# shellcheck disable=SC2046
"$CC" "${CFLAGS_STRICT[@]}" -pedantic -o "$WORK/strict" "$WORK/strict.c" \
  $(pkg-config --cflags --libs tern) || fail "tern/sync.h alone under -std=c11 -pedantic"
readelf -d "$WORK/async-pc" | grep 'NEEDED.*libtern.so.0' >/dev/null ||
  fail "async-pc is not linked against libtern.so.0"

step "pkg-config --static, relocated prefix without libtern.so"
cp -a "$PREFIX" "$WORK/static-prefix"
SLIBDIR=$WORK/static-prefix/${LIBDIR#"$PREFIX"/}
rm -f "$SLIBDIR"/libtern.so*
for ex in publisher reply; do
  # shellcheck disable=SC2046
  "$CC" "${CFLAGS_STRICT[@]}" -o "$WORK/$ex-static" "$EXAMPLES/$ex.c" \
    $(PKG_CONFIG_PATH=$SLIBDIR/pkgconfig pkg-config --static --cflags --libs tern) ||
    fail "building $ex with pkg-config --static"
done
if readelf -d "$WORK/publisher-static" | grep 'NEEDED.*libtern' >/dev/null; then
  fail "publisher-static still needs libtern.so"
fi

step "find_package(tern)"
mkdir -p "$WORK/consumer"
cat >"$WORK/consumer/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.18)
project(tern_consumer C)
find_package(tern 0.1 REQUIRED)
add_executable(subscriber "$EXAMPLES/subscriber.c")
target_link_libraries(subscriber PRIVATE tern::tern)
add_executable(publisher "$EXAMPLES/publisher.c")
target_link_libraries(publisher PRIVATE tern::tern_static)
add_executable(async "$EXAMPLES/async.c")
target_link_libraries(async PRIVATE tern::tern_static)
CMAKE
"$CMAKE" -S "$WORK/consumer" -B "$WORK/consumer/build" \
  -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_C_COMPILER="$CC" \
  -DCMAKE_C_FLAGS="-Wall -Werror" >"$WORK/consumer.log" 2>&1 ||
  { cat "$WORK/consumer.log" >&2; fail "configuring the find_package project"; }
"$CMAKE" --build "$WORK/consumer/build" >>"$WORK/consumer.log" 2>&1 ||
  { cat "$WORK/consumer.log" >&2; fail "building the find_package project"; }

mkdir -p "$WORK/major1"
cat >"$WORK/major1/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.18)
project(tern_major1 NONE)
find_package(tern 1.0 REQUIRED)
CMAKE
if "$CMAKE" -S "$WORK/major1" -B "$WORK/major1/build" \
     -DCMAKE_PREFIX_PATH="$PREFIX" >"$WORK/major1.log" 2>&1; then
  fail "find_package(tern 1.0) accepted the installed 0.x package"
fi
grep -q 'not accepted' "$WORK/major1.log" ||
  { cat "$WORK/major1.log" >&2; fail "find_package(tern 1.0) failed for another reason"; }

# --- 3. run them through the installed ternd ---------------------------
step "start the installed ternd"
mkfifo "$WORK/ready"
"$PREFIX/bin/ternd" --host 127.0.0.1 --port 0 --http-port 0 --ready-fd 3 \
  3>"$WORK/ready" 2>"$WORK/ternd.log" &
TERND_PID=$!
exec {ready_fd}<"$WORK/ready"
PORT=""
read -r -t "$STEP_TIMEOUT" -u "$ready_fd" PORT _ ||
  { cat "$WORK/ternd.log" >&2; fail "ternd reported no port"; }
exec {ready_fd}<&-
URL=127.0.0.1:$PORT
echo "ternd on $URL"

step "subscriber (find_package, shared) <- publisher (pkg-config --static)"
start_ready "$WORK/consumer/build/subscriber" "$URL" 'install.>' 2
SUB_PID=$LAST_PID
SUB_FD=$REPLY_FD
timeout "$STEP_TIMEOUT" "$WORK/publisher-static" "$URL" install.test \
  "hello from the installed prefix" 2 >"$WORK/publisher.out" ||
  fail "publisher-static exited with $?"
grep -q 'reached 1 subscriptions' "$WORK/publisher.out" ||
  fail "publisher: $(cat "$WORK/publisher.out")"
for i in 1 2; do
  line=""
  read -r -t "$STEP_TIMEOUT" -u "$SUB_FD" line || fail "message $i did not arrive"
  [ "$line" = "install.test: hello from the installed prefix" ] ||
    fail "subscriber printed '$line'"
done
wait "$SUB_PID" || fail "subscriber exited with $?"

step "async example on its own uv loop (pkg-config shared, find_package static)"
for bin in "$WORK/async-pc" "$WORK/consumer/build/async"; do
  out=$(timeout "$STEP_TIMEOUT" "$bin" "$URL" install.async 3) ||
    fail "$bin exited with $?"
  [ "$(printf '%s\n' "$out" | grep -c '^install.async: message [123] of 3$')" = 3 ] ||
    fail "$bin printed: $out"
done

step "request (pkg-config shared) -> reply (pkg-config --static)"
start_ready "$WORK/reply-static" "$URL" install.time 1
REPLY_PID=$LAST_PID
answer=$(timeout "$STEP_TIMEOUT" "$WORK/request-pc" "$URL" install.time "now?" 5000) ||
  fail "request exited with $?"
[[ "$answer" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T ]] || fail "request got '$answer'"
wait "$REPLY_PID" || fail "reply exited with $?"
if timeout "$STEP_TIMEOUT" "$WORK/request-pc" "$URL" install.nobody x 5000 \
     2>"$WORK/noresp.err"; then
  fail "a request nobody answers succeeded"
fi
grep -q 'no responders' "$WORK/noresp.err" || fail "$(cat "$WORK/noresp.err")"

step "SIGTERM the installed ternd"
kill -TERM "$TERND_PID"
# Bounded wait: bash reaps the child as soon as it exits (kill -0 then
# fails) and keeps its status for wait.
for _ in $(seq 1 $((STEP_TIMEOUT * 10))); do
  kill -0 "$TERND_PID" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$TERND_PID" 2>/dev/null && fail "ternd still running ${STEP_TIMEOUT}s after SIGTERM"
rc=0
wait "$TERND_PID" || rc=$?
TERND_PID=""
[ "$rc" = 0 ] || { cat "$WORK/ternd.log" >&2; fail "ternd exited with $rc after SIGTERM"; }

echo "install test: ok"
