#!/usr/bin/env bash
# streams-cpu.sh: where an acknowledged publish's round trip goes. Runs the
# one-at-a-time and the 256-outstanding acked publish (streambench pub)
# against ternd (sync=interval) and nats-server (JetStream file storage),
# one server at a time, and prints each one's rate and its CPU time per
# message (user + system, from /proc/PID/stat). A round trip that costs
# the server a few microseconds of CPU is then bounded by the wake-ups of
# two processes, which is what a loaded machine delays.
#
#   bench/streams-cpu.sh            (BUILD=build N=30000 NW=200000 RUNS=3)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
N=${N:-30000}
NW=${NW:-200000}
RUNS=${RUNS:-3}
PT=${PORT_BASE:-28100}
D=$(mktemp -d /tmp/tern-streams-cpu.XXXXXX)
"$BUILD/bin/ternd" --port $((PT + 1)) --http-port 0 --data-dir "$D/t" \
  --log-level warn 2>"$D/t.log" &
TP=$!
nats-server -a 127.0.0.1 -p $((PT + 2)) -js -sd "$D/n" >"$D/n.log" 2>&1 &
NP=$!
trap 'kill $TP $NP 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$D"' EXIT
for s in $((PT + 1)) $((PT + 2)); do
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$s) 2>/dev/null && break
    sleep 0.1
  done
done
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
echo "| server | row | msgs/s | server CPU µs/msg |"
echo "|---|---|---:|---:|"
for run in $(seq "$RUNS"); do
  for w in 1 256; do
    n=$N
    [[ $w == 256 ]] && n=$NW
    for sz in 16 1024; do
      for s in tern nats; do
        if [[ $s == tern ]]; then P=$TP port=$((PT + 1)); else P=$NP port=$((PT + 2)); fi
        st=C$run$w$sz
        "$BUILD/bin/streambench" $s pub $port 100 $sz $w "$st" >/dev/null
        c0=$(cpu $P)
        r=$("$BUILD/bin/streambench" $s pub $port $n $sz $w "$st" | awk '/RESULT/ {print $2}')
        c1=$(cpu $P)
        echo "| $s | $sz B, window $w | $r | $(awk -v a="$c0" -v b="$c1" -v n="$n" -v t="$tck" 'BEGIN {printf "%.1f", (b - a) * 1e6 / t / n}') |"
      done
    done
  done
done
