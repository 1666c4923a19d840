#!/usr/bin/env bash
# run-workers.sh: how ternd scales with --workers. For each worker count,
# PAIRS independent publisher->subscriber pairs (one `tern bench` each, a
# topic each, all at once) and a fan-out case; prints the medians of RUNS
# runs: messages delivered per second, the broker's CPU per delivered
# message (utime+stime from /proc/PID/stat) and the load generators' own
# CPU (so a rate capped by the generators on a small machine shows as such).
#
#   bench/run-workers.sh
#
# Environment (all optional):
#   BUILD=build        build directory holding bin/ternd and bin/tern
#   WORKERS="1 2 4"    worker counts to run
#   PAIRS=2            independent pub->sub pairs in the pairs case
#   MSGS=500000        messages per publisher
#   SIZE=16            payload bytes
#   RUNS=3             runs per cell; the table shows the median
#   PORT=27521         ternd's port
#
# Connections go to the workers in turn (a subscriber, then its publisher),
# so with 2 workers each pair's subscriber and publisher are on different
# workers: the pairs case also measures the cross-worker path. The cross
# case is one pair with --workers 2 (subscriber on worker 0, publisher on
# worker 1) against --workers 1 (the same pair on one loop).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
WORKERS=${WORKERS:-"1 2 4"}
PAIRS=${PAIRS:-2}
MSGS=${MSGS:-500000}
SIZE=${SIZE:-16}
RUNS=${RUNS:-3}
PORT=${PORT:-27521}
TERND="$BUILD/bin/ternd"
TERN="$BUILD/bin/tern"
[ -x "$TERND" ] && [ -x "$TERN" ] || {
  echo "run-workers: build $TERND and $TERN first" >&2
  exit 1
}
HZ=$(getconf CLK_TCK)
TMP=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && kill -INT "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

# CPU seconds (user + system) of process $1 so far.
cpu_of() {
  awk -v hz="$HZ" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' \
    "/proc/$1/stat"
}

start_ternd() {
  "$TERND" --port "$PORT" --http-port 0 --log-level warn --workers "$1" &
  PID=$!
  for _ in $(seq 100); do
    (echo >/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "run-workers: ternd did not start" >&2
  exit 1
}

stop_ternd() {
  kill -INT "$PID" && wait "$PID" || true
  PID=
}

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# One run of N concurrent pairs (or one fan-out bench with SUBS > 1):
# prints "delivered_per_s broker_us_per_msg generators_cpu_s".
run_case() {
  local pairs=$1 subs=$2
  local b0 t0 t1 b1 delivered=0 gen=0
  b0=$(cpu_of "$PID")
  t0=$(date +%s.%N)
  for i in $(seq "$pairs"); do
    /usr/bin/time -f '%U %S' -o "$TMP/time.$i" \
      "$TERN" bench -s 127.0.0.1:"$PORT" --pub 1 --sub "$subs" \
      --msgs "$MSGS" --size "$SIZE" --subject "bench.w$i" --json \
      >"$TMP/out.$i" 2>/dev/null &
  done
  wait $(jobs -p | grep -v "^$PID\$") 2>/dev/null || true
  t1=$(date +%s.%N)
  b1=$(cpu_of "$PID")
  for i in $(seq "$pairs"); do
    local got
    got=$(grep -o '"received":[0-9]*' "$TMP/out.$i" | cut -d: -f2)
    delivered=$((delivered + ${got:-0}))
    gen=$(awk -v g="$gen" '{ print g + $1 + $2 }' "$TMP/time.$i")
  done
  awk -v d="$delivered" -v t0="$t0" -v t1="$t1" -v b0="$b0" -v b1="$b1" \
    -v g="$gen" 'BEGIN { printf "%.0f %.3f %.2f\n", d / (t1 - t0),
                        d ? (b1 - b0) * 1e6 / d : 0, g }'
}

cell() { # workers pairs subs label
  local rates=() cpus=() gens=()
  start_ternd "$1"
  for _ in $(seq "$RUNS"); do
    read -r r c g < <(run_case "$2" "$3")
    rates+=("$r") cpus+=("$c") gens+=("$g")
  done
  stop_ternd
  printf '| %s | %s | %s | %s | %s |\n' "$4" "$1" \
    "$(printf '%s\n' "${rates[@]}" | median)" \
    "$(printf '%s\n' "${cpus[@]}" | median)" \
    "$(printf '%s\n' "${gens[@]}" | median)"
}

echo "# ternd --workers: $PAIRS pairs and a 1->4 fan-out, $MSGS msgs of ${SIZE} B, median of $RUNS"
echo "- machine: $(nproc) CPUs; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- command: BUILD=$BUILD WORKERS=\"$WORKERS\" PAIRS=$PAIRS MSGS=$MSGS SIZE=$SIZE RUNS=$RUNS bench/run-workers.sh"
echo
echo "| case | workers | delivered msgs/s | broker CPU us/msg | load generators' CPU s |"
echo "|---|---|---|---|---|"
for w in $WORKERS; do
  cell "$w" "$PAIRS" 1 "$PAIRS independent pairs"
done
for w in $WORKERS; do
  cell "$w" 1 4 "1 pub -> 4 subs"
done
cell 1 1 1 "1 pair, same worker"
cell 2 1 1 "1 pair, cross-worker"
