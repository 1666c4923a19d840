#!/usr/bin/env bash
# run-streams.sh: durable streams side by side in one run (issue 19):
# ternd (--data-dir), nats-server with JetStream file storage, and
# redis-server Streams (XADD, AOF appendfsync everysec), on loopback, each
# from an empty data directory. Prints a markdown table of medians and
# tern/peer ratios.
#
#   bench/run-streams.sh [--quick]
#
# Rows: acknowledged publish msgs/s at 16 B and 1 KiB with 256 acks
# outstanding and with one at a time; replay msgs/s of FILL stored 16 B
# messages to one consumer; fan-out to 4 consumers (total deliveries/s);
# disk bytes per stored 16 B message. Durability matched: each server
# acknowledges once the message is written to the kernel and fsyncs on a
# timer (tern sync=interval 1000 ms; Redis appendfsync everysec; JetStream
# 2.9's file store, which writes before the ack and syncs on its own
# timer). A tern row with sync=always (fsync before the ack, group commit)
# is added for reference.
#
# Environment: BUILD=build RUNS=3 FILL=1000000 PUBN=200000 PUB1N=10000
#              PORT_BASE=28000
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
RUNS=${RUNS:-3}
FILL=${FILL:-1000000}
PUBN=${PUBN:-200000}
PUB1N=${PUB1N:-10000}
PORT_BASE=${PORT_BASE:-28000}
if [[ "${1:-}" == "--quick" ]]; then
  RUNS=1 FILL=100000 PUBN=50000 PUB1N=2000
fi
SB=$BUILD/bin/streambench
TERND=$BUILD/bin/ternd
[[ -x $SB && -x $TERND ]] || { echo "run-streams: build first ($SB, $TERND)" >&2; exit 1; }
command -v nats-server >/dev/null || { echo "run-streams: nats-server missing (scripts/install-deps.sh)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "run-streams: redis-server missing (scripts/install-deps.sh)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/tern-run-streams.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
declare -A PORT=([tern]=$((PORT_BASE + 1)) [nats]=$((PORT_BASE + 2)) [redis]=$((PORT_BASE + 3)))

start_servers() { # $1: run number
  local d=$TMP/run$1
  mkdir -p "$d/tern" "$d/nats" "$d/redis"
  "$TERND" --port "${PORT[tern]}" --http-port 0 --data-dir "$d/tern" \
    --log-level warn 2>"$d/ternd.log" &
  PIDS+=($!)
  nats-server -a 127.0.0.1 -p "${PORT[nats]}" -js -sd "$d/nats" >"$d/nats.log" 2>&1 &
  PIDS+=($!)
  printf 'port %s\nbind 127.0.0.1\ndir %s\nappendonly yes\nappendfsync everysec\nsave ""\n' \
    "${PORT[redis]}" "$d/redis" >"$d/redis.conf"
  redis-server "$d/redis.conf" >"$d/redis.log" 2>&1 &
  PIDS+=($!)
  for s in tern nats redis; do
    for _ in $(seq 100); do
      (exec 3<>/dev/tcp/127.0.0.1/"${PORT[$s]}") 2>/dev/null && break
      sleep 0.1
    done
  done
}
stop_servers() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

declare -A R
add() { R["$1|$2"]+="$3 "; }
# Each row from a quiet disk: what the row before wrote is on disk first
# (the same for the three servers).
sb() { sync; timeout 600 "$SB" "$@" | awk '/^RESULT/ {print $2}'; }

for run in $(seq "$RUNS"); do
  echo "run-streams: run $run of $RUNS" >&2
  start_servers "$run"
  d=$TMP/run$run
  for s in tern nats redis; do
    p=${PORT[$s]}
    # The FILL stream first, alone on its server's disk.
    add "$s" fill "$(sb "$s" pub "$p" "$FILL" 16 256 FILL)"
    sleep 1.2 # one sync interval: what is on disk is the stream
    case $s in
    tern) bytes=$(du -sb "$d/tern/streams/FILL/log" | cut -f1) ;;
    nats) bytes=$(du -sb "$d/nats/jetstream/\$G/streams/FILL" | cut -f1) ;;
    redis) bytes=$(du -sb "$d/redis" | cut -f1) ;;
    esac
    add "$s" disk "$((bytes / FILL))"
    add "$s" replay "$(sb "$s" replay "$p" "$FILL" 16 1 FILL)"
    add "$s" fanout "$(sb "$s" fanout "$p" "$FILL" 16 1 FILL)"
    add "$s" pub16w "$(sb "$s" pub "$p" "$PUBN" 16 256 P16W)"
    add "$s" pub16s "$(sb "$s" pub "$p" "$PUB1N" 16 1 P16S)"
    add "$s" pub1kw "$(sb "$s" pub "$p" "$PUBN" 1024 256 P1KW)"
    add "$s" pub1ks "$(sb "$s" pub "$p" "$PUB1N" 1024 1 P1KS)"
  done
  add tern pub16w_always "$(TB_SYNC=always sb tern pub "${PORT[tern]}" "$PUBN" 16 256 A16W)"
  add tern pub16s_always "$(TB_SYNC=always sb tern pub "${PORT[tern]}" "$PUB1N" 16 1 A16S)"
  add tern pub1kw_always "$(TB_SYNC=always sb tern pub "${PORT[tern]}" "$PUBN" 1024 256 A1KW)"
  stop_servers
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
m() { echo "${R[$1|$2]:-}" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }

echo
echo "Durable streams, $(date -u +%Y-%m-%d), medians of $RUNS runs on this machine ($(nproc) cores)."
echo "Durability matched: ack once written to the kernel, fsync each second (tern sync=interval 1000 ms,"
echo "Redis AOF appendfsync everysec, JetStream $(nats-server --version | awk '{print $2}') file storage defaults)."
echo
echo "| row | tern | JetStream | Redis Streams | tern/JetStream | tern/Redis |"
echo "|---|---:|---:|---:|---:|---:|"
row() { # key label
  local t n r
  t=$(m tern "$1"); n=$(m nats "$1"); r=$(m redis "$1")
  echo "| $2 | $t | $n | $r | $(ratio "$t" "$n") | $(ratio "$t" "$r") |"
}
row pub16w "acked publish 16 B, 256 outstanding (msgs/s)"
row pub16s "acked publish 16 B, one at a time (msgs/s)"
row pub1kw "acked publish 1 KiB, 256 outstanding (msgs/s)"
row pub1ks "acked publish 1 KiB, one at a time (msgs/s)"
row replay "replay of $FILL stored 16 B msgs, 1 consumer (msgs/s)"
row fanout "fan-out of $FILL msgs to 4 consumers (deliveries/s)"
t=$(m tern disk); n=$(m nats disk); r=$(m redis disk)
echo "| disk bytes per stored 16 B message (lower is better) | $t | $n | $r | $(ratio "$n" "$t") smaller | $(ratio "$r" "$t") smaller |"
echo
echo "tern with sync=always (fsync before each ack, group commit): 16 B 256 outstanding $(m tern pub16w_always) msgs/s,"
echo "16 B one at a time $(m tern pub16s_always) msgs/s, 1 KiB 256 outstanding $(m tern pub1kw_always) msgs/s."
