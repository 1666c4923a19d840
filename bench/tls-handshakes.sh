#!/usr/bin/env bash
# tls-handshakes.sh: new TLS connections per second (connect, handshake,
# CONNECT, ping/pong, close) against ternd and nats-server, with full
# handshakes and resuming the previous session (tern bench --tls-resume),
# and the server's CPU milliseconds per connection (user + system, from
# /proc): on a shared machine the steadier figure. Runs interleaved;
# prints each run and the medians.
#
#   BUILD=build RUNS=5 CONNECTS=1000 bench/tls-handshakes.sh
#
# Two publishers each make CONNECTS connections per run. ternd on
# PORT_BASE+441, nats-server on +442, both TLS-only with certificates from
# scripts/make-certs.sh, stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
RUNS=${RUNS:-5}
CONNECTS=${CONNECTS:-1000}
PORT_BASE=${PORT_BASE:-27000}
P1=$((PORT_BASE + 441)) P2=$((PORT_BASE + 442))
export PATH="$PATH:/usr/sbin:/sbin"
command -v nats-server >/dev/null || { echo "tls-handshakes: nats-server not installed" >&2; exit 1; }
TMP=$(mktemp -d /tmp/tern-tls-hs.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
scripts/make-certs.sh "$TMP" >/dev/null
"$BUILD/bin/ternd" --port "$P1" --http-port 0 --log-level warn --ready-fd 3 \
  --tls-cert "$TMP/server.pem" --tls-key "$TMP/server.key" --tls-required 3>"$TMP/p1" &
PIDS+=($!)
nats-server -a 127.0.0.1 -p "$P2" --tls --tlscert "$TMP/server.pem" --tlskey "$TMP/server.key" \
  >"$TMP/nats.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
  [[ -s $TMP/p1 ]] && (exec 3<>"/dev/tcp/127.0.0.1/$P2") 2>/dev/null && break
  sleep 0.05
done
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A RATE CPU
for _ in $(seq 1 "$RUNS"); do
  for b in tern nats; do
    for mode in full resumed; do
      if [[ $b == tern ]]; then pid=${PIDS[0]} port=$P1; else pid=${PIDS[1]} port=$P2; fi
      extra=()
      [[ $mode == resumed ]] && extra=(--tls-resume)
      t0=$(ticks "$pid")
      v=$("$BUILD/bin/tern" bench --broker "$b" -s "127.0.0.1:$port" --tls-ca "$TMP/ca.pem" \
        --pub 2 --connects "$CONNECTS" "${extra[@]}" --json | jq .connects_per_sec)
      t1=$(ticks "$pid")
      RATE[$b-$mode]+="$v "
      CPU[$b-$mode]+="$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n=$((2 * CONNECTS)) \
        'BEGIN { printf "%.3f", d / hz * 1000 / n }') "
    done
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
for k in tern-full nats-full tern-resumed nats-resumed; do
  echo "$k: connections/s ${RATE[$k]}(median $(median <<<"${RATE[$k]}")); server CPU ms per connection ${CPU[$k]}(median $(median <<<"${CPU[$k]}"))"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
