#!/usr/bin/env bash
# tls-ratio.sh: tern's own TLS throughput against its plaintext throughput,
# 1->1 at one payload size, runs interleaved (plaintext, TLS, plaintext, ...)
# so that both see the same moments of a shared machine; prints each run's
# MB/s, the medians and TLS/plaintext.
#
#   BUILD=build RUNS=7 SIZE=1024 MSGS=300000 bench/tls-ratio.sh
#
# Two ternd on 127.0.0.1 (PORT_BASE+431 plaintext, +432 TLS only with
# certificates from scripts/make-certs.sh), stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
RUNS=${RUNS:-7}
SIZE=${SIZE:-1024}
MSGS=${MSGS:-300000}
PORT_BASE=${PORT_BASE:-27000}
P1=$((PORT_BASE + 431)) P2=$((PORT_BASE + 432))
TMP=$(mktemp -d /tmp/tern-tls-ratio.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
scripts/make-certs.sh "$TMP" >/dev/null
"$BUILD/bin/ternd" --port "$P1" --http-port 0 --log-level warn --ready-fd 3 3>"$TMP/p1" &
PIDS+=($!)
"$BUILD/bin/ternd" --port "$P2" --http-port 0 --log-level warn --ready-fd 3 \
  --tls-cert "$TMP/server.pem" --tls-key "$TMP/server.key" --tls-required 3>"$TMP/p2" &
PIDS+=($!)
for f in p1 p2; do
  for _ in $(seq 1 100); do [[ -s $TMP/$f ]] && break; sleep 0.05; done
done
run() { "$BUILD/bin/tern" bench "$@" --pub 1 --sub 1 --size "$SIZE" --msgs "$MSGS" --json | jq '.sub.mb_per_s'; }
plain=() tls=()
for _ in $(seq 1 "$RUNS"); do
  plain+=("$(run -s "127.0.0.1:$P1")")
  tls+=("$(run -s "127.0.0.1:$P2" --tls-ca "$TMP/ca.pem")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
mp=$(median "${plain[@]}") mt=$(median "${tls[@]}")
echo "plaintext MB/s: ${plain[*]} (median $mp)"
echo "TLS MB/s:       ${tls[*]} (median $mt)"
awk -v a="$mt" -v b="$mp" 'BEGIN { printf "TLS/plaintext: %.2f\n", a / b }'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
