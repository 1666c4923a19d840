#!/usr/bin/env bash
# run-cluster.sh: a 3-node ternd cluster and a 3-node nats-server cluster on
# loopback, side by side in one run (issue 18). Prints a table of medians
# and tern/nats ratios:
#   - publisher on node A, subscriber on node B: 16 B msgs/s, 1 KiB MB/s;
#   - 1 -> 4 fan-out, the publisher on A, subscribers over A, B, C (msgs/s
#     delivered, all subscribers together);
#   - the time a new (fourth) node takes to learn the interest of N
#     subscriptions held on node A (from its start to its count reaching N).
#
#   bench/run-cluster.sh
#
# Environment (all optional):
#   BUILD=build       build directory holding bin/ternd and bin/tern
#   RUNS=3            runs per cell; the table shows the median
#   MSGS=500000       messages per throughput run
#   SUBS=100000       subscriptions for the interest-sync row
#   PORT_BASE=28000   ternd clients +100.., routes +200.., nats +300.. / +400..
#
# Servers are child processes on 127.0.0.1, stopped on exit whatever happens.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
RUNS=${RUNS:-3}
MSGS=${MSGS:-500000}
SUBS=${SUBS:-100000}
PORT_BASE=${PORT_BASE:-28000}
TERND=$ROOT/$BUILD/bin/ternd
TERN=$ROOT/$BUILD/bin/tern
NATS=${NATS_SERVER:-$(command -v nats-server || true)}
PY=/usr/bin/python3
[ -x "$TERND" ] && [ -x "$TERN" ] || { echo "run-cluster: build first ($BUILD/bin)" >&2; exit 2; }
[ -n "$NATS" ] || { echo "run-cluster: nats-server not found" >&2; exit 2; }

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

tc() { echo $((PORT_BASE + 100 + $1)); }  # ternd client port of node i
tr() { echo $((PORT_BASE + 200 + $1)); }  # ternd route port
th() { echo $((PORT_BASE + 500 + $1)); }  # ternd monitoring
nc_() { echo $((PORT_BASE + 300 + $1)); } # nats client port
nr() { echo $((PORT_BASE + 400 + $1)); }  # nats route port
nm() { echo $((PORT_BASE + 600 + $1)); }  # nats monitoring

start_tern() { # i seeds...
  local i=$1; shift
  local seeds; seeds=$(printf '127.0.0.1:%s,' "$@"); seeds=${seeds%,}
  "$TERND" --port "$(tc "$i")" --cluster-port "$(tr "$i")" --routes "$seeds" \
    --http-port "$(th "$i")" --max-subs 0 --max-pattern-bytes 0 \
    --log-level warn 2>"$TMP/tern$i.log" &
  PIDS+=($!)
  LAST_PID=$!
}

start_nats() { # i seeds...
  local i=$1; shift
  local seeds; seeds=$(printf 'nats://127.0.0.1:%s,' "$@"); seeds=${seeds%,}
  "$NATS" -a 127.0.0.1 -p "$(nc_ "$i")" -m "$(nm "$i")" \
    --cluster_name bench --cluster "nats://127.0.0.1:$(nr "$i")" \
    --routes "$seeds" >"$TMP/nats$i.log" 2>&1 &
  PIDS+=($!)
  LAST_PID=$!
}

# Waits until GET url has "key": value >= want (JSON) or a metric >= want.
wait_count() { # url pattern want -> prints elapsed ms since $T0
  local url=$1 pat=$2 want=$3 have
  while :; do
    have=$(curl -s "$url" 2>/dev/null | grep -oE "$pat[^0-9]*[0-9]+" | grep -oE '[0-9]+$' | head -1 || true)
    if [ -n "$have" ] && [ "$have" -ge "$want" ]; then break; fi
    sleep 0.01
  done
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

bench_json() { # broker pubserver subservers extra... -> JSON line
  local b=$1 s=$2 subs=$3; shift 3
  "$TERN" bench -b "$b" -s "$s" --sub-servers "$subs" --settle-ms 500 --json "$@"
}

field() { # json path(sub.msgs_per_s) -> number
  $PY -c 'import json,sys; d=json.loads(sys.stdin.read()); k=sys.argv[1].split("."); v=d
for x in k: v=v[x]
print(v if d.get("lost",0)==0 else "nan")' "$1"
}

echo "starting 3 ternd and 3 nats-server nodes on loopback" >&2
for i in 0 1 2; do
  others=(); for j in 0 1 2; do [ "$j" != "$i" ] && others+=("$(tr "$j")"); done
  start_tern "$i" "${others[@]}"
  others=(); for j in 0 1 2; do [ "$j" != "$i" ] && others+=("$(nr "$j")"); done
  start_nats "$i" "${others[@]}"
done
for i in 0 1 2; do
  wait_count "http://127.0.0.1:$(th "$i")/routez" '"routes_up":' 2
  wait_count "http://127.0.0.1:$(nm "$i")/routez" '"num_routes":' 2
done

A_T=127.0.0.1:$(tc 0); B_T=127.0.0.1:$(tc 1); C_T=127.0.0.1:$(tc 2)
A_N=127.0.0.1:$(nc_ 0); B_N=127.0.0.1:$(nc_ 1); C_N=127.0.0.1:$(nc_ 2)

declare -A R
run_cell() { # name broker pub subs field extra...
  local name=$1 b=$2 p=$3 s=$4 f=$5; shift 5
  local vals=()
  for _ in $(seq "$RUNS"); do
    vals+=("$(bench_json "$b" "$p" "$s" "$@" | field "$f")")
  done
  R[$name.$b]=$(printf '%s\n' "${vals[@]}" | median)
  echo "  $name $b: ${vals[*]} -> ${R[$name.$b]}" >&2
}

echo "throughput (median of $RUNS)" >&2
for b in tern nats; do
  if [ $b = tern ]; then A=$A_T; B=$B_T; C=$C_T; else A=$A_N; B=$B_N; C=$C_N; fi
  run_cell x16 $b "$A" "$B" sub.msgs_per_s --pub 1 --sub 1 -n "$MSGS" --size 16 --subject x.a
  run_cell x1k $b "$A" "$B" sub.mb_per_s --pub 1 --sub 1 -n "$((MSGS / 4))" --size 1k --subject x.b
  run_cell fan $b "$A" "$A,$B,$C,$B" sub.msgs_per_s --pub 1 --sub 4 -n "$((MSGS / 4))" --size 16 --subject x.c
done

echo "interest of $SUBS subscriptions to a new node (median of $RUNS)" >&2
for b in tern nats; do
  vals=()
  for r in $(seq "$RUNS"); do
    if [ $b = tern ]; then port=$(tc 0); else port=$(nc_ 0); fi
    coproc HOLD { $PY "$ROOT/bench/cluster_subs.py" "$b" "$port" "$SUBS"; }
    read -r line <&"${HOLD[0]}"
    [ "$line" = ready ] || { echo "run-cluster: subscriber not ready" >&2; exit 1; }
    T0=$(date +%s%N)
    if [ $b = tern ]; then
      start_tern 3 "$(tr 0)"
      wait_count "http://127.0.0.1:$(th 3)/metrics" '^tern_route_remote_interest ' "$SUBS"
    else
      start_nats 3 "$(nr 0)"
      wait_count "http://127.0.0.1:$(nm 3)/subsz" '"num_subscriptions":' "$SUBS"
    fi
    T1=$(date +%s%N)
    vals+=("$(( (T1 - T0) / 1000000 ))")
    kill "$LAST_PID"; wait "$LAST_PID" 2>/dev/null || true
    exec {HOLD[1]}>&-; wait "$HOLD_PID" 2>/dev/null || true
    sleep 0.5
  done
  R[sync.$b]=$(printf '%s\n' "${vals[@]}" | median)
  echo "  sync $b: ${vals[*]} ms -> ${R[sync.$b]}" >&2
done

ratio() { $PY -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print("%.2fx" % (a/b) if b else "-")' "$1" "$2"; }
echo
echo "| scenario (3 nodes, loopback) | tern | nats 2.9 | tern/nats |"
echo "|---|---:|---:|---:|"
printf '| A->B 16 B, msgs/s | %.0f | %.0f | %s |\n' "${R[x16.tern]}" "${R[x16.nats]}" "$(ratio "${R[x16.tern]}" "${R[x16.nats]}")"
printf '| A->B 1 KiB, MB/s | %.1f | %.1f | %s |\n' "${R[x1k.tern]}" "${R[x1k.nats]}" "$(ratio "${R[x1k.tern]}" "${R[x1k.nats]}")"
printf '| 1->4 fan-out over A,B,C, 16 B, msgs/s delivered | %.0f | %.0f | %s |\n' "${R[fan.tern]}" "${R[fan.nats]}" "$(ratio "${R[fan.tern]}" "${R[fan.nats]}")"
printf '| new node learns %s subscriptions, ms (lower is better) | %s | %s | %s |\n' "$SUBS" "${R[sync.tern]}" "${R[sync.nats]}" "$(ratio "${R[sync.nats]}" "${R[sync.tern]}")"
