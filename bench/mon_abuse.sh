#!/usr/bin/env bash
# What abuse of the monitoring port, descriptors and the log costs: each
# scenario against a fresh ternd on ephemeral ports, with bench/mon_abuse.c
# as the client.
#
#   bench/mon_abuse.sh [TERND [MON_ABUSE]]   (build/bin/ternd, build/bin/mon_abuse)
#
# Prints one JSON line per scenario, plus the log figures (bytes and lines
# of ternd's stderr for one client named with 1 MiB and a forged line).
set -euo pipefail
TERND=${1:-build/bin/ternd}
TOOL=${2:-build/bin/mon_abuse}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# start [prlimit args...] -- [ternd args...]: sets PID PORT HTTP.
start() {
  local pre=()
  while [[ $1 != -- ]]; do pre+=("$1"); shift; done
  shift
  rm -f "$work/ready"
  "${pre[@]}" "$TERND" --host 127.0.0.1 --port 0 --http-port -1 \
    --ready-fd 3 "$@" 3>"$work/ready" 2>"$work/log" &
  PID=$!
  for _ in $(seq 300); do [[ -s $work/ready ]] && break; sleep 0.1; done
  read -r PORT HTTP <"$work/ready"
}
stop() { kill "$PID"; wait "$PID" || true; }

run() { start "${@:3}"; "$TOOL" "$PID" 127.0.0.1 "$PORT" "$HTTP" "$1" "$2"; stop; }

run idle 200 --
run burst 1000 --
run subz 100000 -- --max-subs 0 --max-pattern-bytes 0
run unread 64 -- --max-subs 0 --max-pattern-bytes 0
run fd 100000 prlimit --nofile=256:256 --
start -- --log-level info
"$TOOL" "$PID" 127.0.0.1 "$PORT" "$HTTP" name 1048576
stop
printf '{"mode":"log","bytes":%s,"lines":%s,"forged_lines":%s}\n' \
  "$(wc -c <"$work/log")" "$(wc -l <"$work/log")" \
  "$(grep -c '^2026-12-07T00:00:00Z' "$work/log" || true)"
