#!/usr/bin/env bash
# Soak run (not part of CI): ternd under mixed load for a bounded time.
#
#   bash scripts/soak.sh [MINUTES]     (default 10)
#
# Builds build/ (RelWithDebInfo) if needed, starts ternd on an ephemeral
# port, runs build/tests/tern_soak against it (three publishers; block,
# queue-group, drop_oldest, drop_newest and disconnect subscribers, some
# of them slow; connect/subscribe/disconnect churn), then checks: every
# block subscription got every message in order, the queue group got each
# message once, each drop subscription's received + dropped == sent,
# ternd's RSS stayed under SOAK_RSS_MB (default 256), and ternd exits 0 on
# SIGTERM. Exit 0 when everything holds. Logs go to build/soak/.
#
# Beside it for the whole run, build/bin/pressure_probe: 100
# drop_newest subscribers that never read are flooded until they hold what
# the 64 MiB max_pending_total lets them, so the soak's traffic runs under
# memory pressure, and an unrelated pair exchanges one message at a time:
# its longest wait must stay under SOAK_PAIR_MAX_S seconds (default 2).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MINUTES=${1:-10}
RSS_MB=${SOAK_RSS_MB:-256}
PAIR_MAX_S=${SOAK_PAIR_MAX_S:-2}
case $MINUTES in
  '' | *[!0-9]*) echo "soak.sh: MINUTES must be a whole number" >&2; exit 2 ;;
esac
cd "$ROOT"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target ternd tern_soak pressure_probe >/dev/null

OUT=build/soak
mkdir -p "$OUT"
rm -f "$OUT/ready"
mkfifo "$OUT/ready"
# Bounded queues so the RSS limit is a real statement: 8 MiB per
# subscription pending at most, 64 MiB in all.
build/bin/ternd --host 127.0.0.1 --port 0 --ready-fd 3 --log-level warn \
  --max-pending-bytes 8388608 --max-pending-total 67108864 \
  3>"$OUT/ready" 2>"$OUT/ternd.log" &
TERND=$!
trap 'kill -KILL $TERND 2>/dev/null || true' EXIT
read -r PORT <"$OUT/ready"
rm -f "$OUT/ready"
echo "soak: ternd pid $TERND on port $PORT for $MINUTES min, RSS limit ${RSS_MB} MiB"

rc=0
build/bin/pressure_probe "$TERND" 127.0.0.1 "$PORT" 100 100000 200 \
  drop_newest $((MINUTES * 60)) >"$OUT/pressure.json" 2>&1 &
PROBE=$!
build/tests/tern_soak "$PORT" "$TERND" $((MINUTES * 60)) "$RSS_MB" |
  tee "$OUT/soak.log" || rc=1
prc=0
wait "$PROBE" || prc=$?
echo "soak: pressure probe: $(cat "$OUT/pressure.json")"
wait_s=$(sed -n 's/.*"pair_longest_wait_s":\([0-9.]*\).*/\1/p' "$OUT/pressure.json")
if [ "$prc" -ne 0 ] || [ -z "$wait_s" ] ||
  ! awk -v w="$wait_s" -v m="$PAIR_MAX_S" 'BEGIN { exit !(w <= m) }'; then
  echo "soak: FAIL: the pair beside the non-reading subscribers waited ${wait_s:-?} s (limit $PAIR_MAX_S s)"
  rc=1
fi
kill -TERM "$TERND"
trc=0
wait "$TERND" || trc=$?
trap - EXIT
echo "soak: ternd exited $trc after SIGTERM"
[ "$trc" -eq 0 ] || rc=1
exit $rc
