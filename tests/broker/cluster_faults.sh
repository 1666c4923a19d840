#!/usr/bin/env bash
# tests/broker/cluster_faults.sh TERND TERN
#
# A 3-node cluster in network namespaces of its own (issue 18): each node in
# a namespace with a veth link to a hub namespace holding a bridge, the
# clients in the hub. A publisher on node A streams numbered messages to a
# subscriber on node B while node C is killed (SIGKILL) and B's link is cut
# (ip link set ... down) and restored. Checks: no node crashes (A and B
# still run and answer), interest converges (routes come back, the stream
# flows again end to end), the subscriber fails over to another node when
# its own is cut off, and every message missing at the subscriber falls
# where a loss was reported (its connection was lost, or DROPPED), never
# silently.
#
# Needs root and iproute2 (scripts/install-deps.sh); exits 77 (skipped)
# with the reason when namespaces cannot be made. Cleans up everything it
# made.
set -uo pipefail
TERND=${1:?usage: cluster_faults.sh TERND TERN}
TERN=${2:?usage: cluster_faults.sh TERND TERN}
P=tfault$$
NS=("$P-a" "$P-b" "$P-c")
HUB=$P-hub
IPS=(10.77.0.1 10.77.0.2 10.77.0.3)
CLIENT_IP=10.77.0.10
WORK=$(mktemp -d)
PIDS=()

skip() { echo "cluster_faults: skipped: $*"; exit 77; }
fail() {
  echo "cluster_faults: FAILED: $*"
  for f in "$WORK"/*.log; do echo "== $f"; grep -v "\[info\]" "$f" | tail -20; done
  exit 1
}

cleanup() {
  for p in "${PIDS[@]:-}" $(jobs -p); do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done
  for n in "${NS[@]}" "$HUB"; do
    ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
  done
  wait 2>/dev/null
  for n in "${NS[@]}" "$HUB"; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
command -v ip >/dev/null || skip "no ip (iproute2: scripts/install-deps.sh)"
ip netns add "$HUB" 2>/dev/null || skip "cannot make a network namespace here"
inhub() { ip netns exec "$HUB" "$@"; }
inhub ip link add br0 type bridge || skip "cannot make a bridge"
inhub ip link set br0 up
inhub ip link set lo up
inhub ip addr add "$CLIENT_IP/24" dev br0
for i in 0 1 2; do
  ip netns add "${NS[$i]}" || fail "netns add"
  ip link add "v$i-$P" type veth peer name "h$i-$P" || skip "cannot make veth links"
  ip link set "v$i-$P" netns "${NS[$i]}"
  ip link set "h$i-$P" netns "$HUB"
  ip netns exec "${NS[$i]}" ip link set lo up
  ip netns exec "${NS[$i]}" ip link set "v$i-$P" name eth0
  ip netns exec "${NS[$i]}" ip addr add "${IPS[$i]}/24" dev eth0
  ip netns exec "${NS[$i]}" ip link set eth0 up
  inhub ip link set "h$i-$P" master br0
  inhub ip link set "h$i-$P" up
done

start_node() { # i
  local i=$1
  # Secure defaults: off loopback a route port needs the cluster token;
  # clients and the monitoring pages are opened with allow_anonymous.
  ip netns exec "${NS[$i]}" env TERN_CLUSTER_TOKEN=faults-token \
    "$TERND" --host "${IPS[$i]}" --port 7421 --allow-anonymous \
    --http-port 8421 --cluster-port 7422 \
    --routes "${IPS[0]}:7422,${IPS[1]}:7422,${IPS[2]}:7422" \
    --heartbeat-ms 1000 --route-sync-ms 1000 >>"$WORK/node$i.log" 2>&1 &
  NODE_PID[$i]=$!
  PIDS+=($!)
}
routes_up() { # i -> the count, or -1
  inhub curl -s -m 2 "http://${IPS[$1]}:8421/routez" 2>/dev/null |
    grep -oE '"routes_up":[0-9]+' | grep -oE '[0-9]+$' || echo -1
}
wait_routes() { # i want
  local end=$((SECONDS + 30))
  until [ "$(routes_up "$1")" = "$2" ]; do
    [ $SECONDS -lt $end ] || fail "node $1: never $2 routes up (now $(routes_up "$1"))"
    sleep 0.1
  done
}
alive() { kill -0 "${NODE_PID[$1]}" 2>/dev/null; }

declare -a NODE_PID
for i in 0 1 2; do start_node "$i"; done
for i in 0 1 2; do wait_routes "$i" 2; done
echo "cluster_faults: 3 nodes up, full mesh"

# The subscriber on B (it learns the others from HELLO), the publisher on A:
# one numbered message every 2 ms.
inhub "$TERN" -s "${IPS[1]}:7421" sub --reconnect --raw --ready 'f.x' \
  >"$WORK/sub.out" 2>"$WORK/sub.log" &
SUB_PID=$!
PIDS+=($!)
end=$((SECONDS + 30))
until grep -q ready "$WORK/sub.log"; do
  [ $SECONDS -lt $end ] || fail "the subscriber never subscribed"
  sleep 0.05
done
( i=0; while :; do i=$((i + 1)); echo "$i" || exit 0; sleep 0.002; done ) |
  inhub "$TERN" -s "${IPS[0]}:7421" pub --reconnect f.x \
    >"$WORK/pub.out" 2>"$WORK/pub.log" &
PUB_PID=$!
PIDS+=($!)
flows() { # the subscriber's count grows within 10 s
  local n0 end
  n0=$(wc -l <"$WORK/sub.out")
  end=$((SECONDS + 30))
  while [ "$(wc -l <"$WORK/sub.out")" -le $((n0 + 20)) ]; do
    [ $SECONDS -lt $end ] || fail "the stream does not flow ($1)"
    sleep 0.05
  done
}
flows "at start"
echo "cluster_faults: streaming A -> B"

# 1. Kill node C mid-stream.
kill -9 "${NODE_PID[2]}"
wait_routes 0 1
wait_routes 1 1
flows "after node C died"
alive 0 && alive 1 || fail "a node crashed after C died"
echo "cluster_faults: C killed: A and B converged to one route, stream flows"

# 2. Cut B's link: the subscriber loses B and fails over to A (cluster_urls);
#    A loses its route to B.
inhub ip link set "h1-$P" down
wait_routes 0 0
flows "with B cut off (the subscriber on A)"
echo "cluster_faults: B cut off: the subscriber moved, stream flows"

# 3. Restore the link and restart C: the mesh forms again.
inhub ip link set "h1-$P" up
start_node 2
for i in 0 1 2; do wait_routes "$i" 2; done
flows "after the link came back"
alive 0 && alive 1 && alive 2 || fail "a node crashed"
echo "cluster_faults: link restored, C back: full mesh again"

kill "$PUB_PID" 2>/dev/null
sleep 1
kill "$SUB_PID" 2>/dev/null
wait "$SUB_PID" 2>/dev/null

# Every gap must be reported: numbers missing at the subscriber are allowed
# only if its stderr says it lost the broker (or dropped messages).
missing=$(/usr/bin/python3 - "$WORK/sub.out" <<'EOF'
import sys
seen = [int(l) for l in open(sys.argv[1]) if l.strip().isdigit()]
if not seen:
    print(-1); sys.exit()
s = set(seen)
print(sum(1 for n in range(seen[0], max(seen) + 1) if n not in s))
EOF
)
[ "$missing" != -1 ] || fail "the subscriber got nothing"
echo "cluster_faults: $(wc -l <"$WORK/sub.out") received, $missing missing"
if [ "$missing" -gt 0 ]; then
  grep -qiE 'lost|reconnect|dropped|disconnect' "$WORK/sub.log" ||
    fail "$missing messages missing and no loss reported"
  echo "cluster_faults: the losses were reported: $(grep -ciE 'lost|reconnect|dropped|disconnect' "$WORK/sub.log") report line(s)"
fi
for i in 0 1 2; do
  grep -qE 'AddressSanitizer|runtime error|Assertion' "$WORK/node$i.log" &&
    fail "node $i: a sanitizer or assertion report"
done
echo "cluster_faults: ok"
