#!/usr/bin/env bash
# callgrind-delivery.sh: ternd's instructions per delivered message
# (callgrind's Ir, repeatable where timings on a shared machine are not).
# For each case, ternd runs under callgrind twice, with LOW and HIGH
# messages from one `tern bench` publisher (16 B); Ir per delivery is
# (Ir(HIGH) - Ir(LOW)) / ((HIGH - LOW) * subscribers), so start-up,
# connections and shutdown cancel out. Prints the median of RUNS.
#
#   bench/callgrind-delivery.sh            # 1->1 and 1->4 on --workers 1,
#                                          # 1->1 across two workers
# Environment: BUILD=build LOW=20000 HIGH=120000 RUNS=3 PORT=27531;
# ONE_LOOP=1 for a ternd without --workers (before issue 17).
# Across workers: with --workers 2 the subscriber and the publisher are on
# different workers (connections go to the workers in turn).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
LOW=${LOW:-20000}
HIGH=${HIGH:-120000}
RUNS=${RUNS:-3}
PORT=${PORT:-27531}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Ir of one ternd run: $1 workers, $2 subscribers, $3 messages.
ir_of() {
  local out="$TMP/cg.out"
  rm -f "$out"
  local wflag=(--workers "$1")
  [ -z "${ONE_LOOP:-}" ] || wflag=()
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$BUILD/bin/ternd" --port "$PORT" --http-port 0 --log-level error \
    "${wflag[@]}" 2>/dev/null &
  local pid=$!
  for _ in $(seq 200); do
    (echo >/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
    sleep 0.1
  done
  "$BUILD/bin/tern" bench -s "127.0.0.1:$PORT" -p 1 --sub "$2" -n "$3" \
    --size 16 --timeout 120 >/dev/null
  kill -TERM "$pid"
  wait "$pid" || true
  awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

one_case() { # name workers subs
  local vals=()
  for _ in $(seq "$RUNS"); do
    local lo hi
    lo=$(ir_of "$2" "$3" "$LOW")
    hi=$(ir_of "$2" "$3" "$HIGH")
    vals+=("$(awk -v a="$lo" -v b="$hi" -v n=$((HIGH - LOW)) -v s="$3" \
      'BEGIN { printf "%.1f", (b - a) / (n * s) }')")
  done
  printf '%-28s %s   (runs: %s)\n' "$1" \
    "$(printf '%s\n' "${vals[@]}" | median)" "${vals[*]}"
}

echo "Ir per delivery, 16 B, median of $RUNS ($LOW vs $HIGH messages)"
one_case "1->1 --workers 1" 1 1
one_case "1->4 --workers 1" 1 4
[ -n "${ONE_LOOP:-}" ] || one_case "1->1 across 2 workers" 2 1
