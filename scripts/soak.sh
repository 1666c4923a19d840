#!/usr/bin/env bash
# Soak run (not part of CI): ternd under load for a bounded time.
#
#   bash scripts/soak.sh [MINUTES]          both phases: mixed load for MINUTES
#                                           (default 10), then abuse for
#                                           SOAK_ABUSE_MINUTES (default 3)
#   bash scripts/soak.sh --mixed [MINUTES]  the mixed-load phase alone
#   bash scripts/soak.sh --abuse [MINUTES]  the abuse phase alone (default 3)
#   bash scripts/soak.sh --abuse-short      the abuse phase for 30 seconds
#
# Builds build/ (RelWithDebInfo) if needed. Each phase starts its own ternd
# on ephemeral loopback ports. Exit 0 when every check of every phase holds.
# Logs go to build/soak/.
#
# Mixed load (build/tests/tern_soak): three publishers; block, queue-group,
# drop_oldest, drop_newest and disconnect subscribers, some of them slow;
# connect/subscribe/disconnect churn. Checks: every block subscription got
# every message in order, the queue group got each message once, each drop
# subscription's received + dropped == sent, ternd's RSS stayed under
# SOAK_RSS_MB (default 256), and ternd exits 0 on SIGTERM. Beside it for
# the whole phase, build/bin/pressure_probe: 100 drop_newest subscribers
# that never read are flooded until they hold what the 64 MiB
# max_pending_total lets them, so the mixed traffic runs under memory
# pressure, and an unrelated pair exchanges one message at a time: its
# longest wait must stay under SOAK_PAIR_MAX_S seconds (default 2).
#
# Abuse (build/tests/tern_soak_abuse, issue 13): ternd with users (argon2id
# hashes made by `ternd --hash-password`) and --max-pending-total 64 MiB;
# beside one good publisher -> subscriber pair (2,000 msgs/s, block policy,
# sequence numbers) run at once: 100 subscribers that never read (drop_newest,
# drop_oldest, disconnect, block) under a firehose of 200 B messages; a flood
# of 100 bad-password CONNECTs a second for the pair's user, with one good
# login a second; 100 idle sockets on the monitoring port, /subz and /connz
# requests whose answers are never read, and one /healthz probe a second.
# Checks, each bound adjustable by its variable:
#   - the pair lost nothing (every message once, in order) and never stalled:
#     its largest gap between two receipts, and its largest delay from
#     publish to receipt, <= SOAK_MAX_STALL_MS (2000 ms);
#   - every good login answered within SOAK_LOGIN_MS (5000 ms, ternd's
#     --connect-timeout-ms default);
#   - every /healthz probe answered 200 within SOAK_PROBE_MS (2000 ms);
#   - ternd's RSS <= SOAK_ABUSE_RSS_MB (384 MiB: the 64 MiB pending cap, four
#     argon2id verifications in flight at 64 MiB each as `ternd
#     --hash-password` makes them today (libuv's four worker threads), and
#     64 MiB for everything else; change it with the hash parameters);
#   - on SIGTERM, sent with the abusers still connected and not reading,
#     ternd exits 0 within 60 s.
# SOAK_ABUSE_ARGS passes more name=value parameters to tern_soak_abuse
# (rates and counts: see the top of tests/soak/abuse.c); SOAK_ABUSE_FLAGS
# passes more flags to ternd (e.g. limits added after this script).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=both
SHORT=0
case ${1:-} in
  --mixed) MODE=mixed; shift ;;
  --abuse) MODE=abuse; shift ;;
  --abuse-short) MODE=abuse; SHORT=1; shift ;;
  -*) echo "usage: soak.sh [--mixed|--abuse|--abuse-short] [MINUTES]" >&2; exit 2 ;;
esac
MINUTES=${1:-}
case $MODE in
  both) MINUTES=${MINUTES:-10}; ABUSE_MINUTES=${SOAK_ABUSE_MINUTES:-3} ;;
  mixed) MINUTES=${MINUTES:-10}; ABUSE_MINUTES=0 ;;
  abuse) ABUSE_MINUTES=${MINUTES:-3}; MINUTES=0 ;;
esac
for m in "$MINUTES" "$ABUSE_MINUTES"; do
  case $m in
    '' | *[!0-9]*) echo "soak.sh: MINUTES must be a whole number" >&2; exit 2 ;;
  esac
done
ABUSE_SECONDS=$((ABUSE_MINUTES * 60))
[ "$SHORT" = 0 ] || ABUSE_SECONDS=30
cd "$ROOT"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target ternd tern_soak tern_soak_abuse \
  pressure_probe >/dev/null

OUT=build/soak
mkdir -p "$OUT"
TERND=
trap '[ -z "$TERND" ] || kill -KILL $TERND 2>/dev/null || true' EXIT

# Starts ternd with the given flags; sets TERND and PORT (and HTTP_PORT when
# monitoring is on).
start_ternd() {
  local log=$1
  shift
  rm -f "$OUT/ready"
  mkfifo "$OUT/ready"
  build/bin/ternd --host 127.0.0.1 --port 0 --ready-fd 3 "$@" \
    3>"$OUT/ready" 2>"$log" &
  TERND=$!
  read -r PORT HTTP_PORT <"$OUT/ready"
  rm -f "$OUT/ready"
}

# Waits up to $1 seconds for ternd: 0 when it exited 0 by itself.
wait_ternd() {
  local trc=0
  for _ in $(seq 1 $(($1 * 10))); do
    kill -0 "$TERND" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$TERND" 2>/dev/null; then
    echo "soak: ternd still running $1 s more after SIGTERM; killed"
    kill -KILL "$TERND"
    wait "$TERND" || true
    TERND=
    return 1
  fi
  wait "$TERND" || trc=$?
  TERND=
  echo "soak: ternd exited $trc after SIGTERM"
  [ "$trc" -eq 0 ]
}

mixed_phase() {
  local rss_mb=${SOAK_RSS_MB:-256} pair_max_s=${SOAK_PAIR_MAX_S:-2} rc=0
  local probe prc=0 wait_s
  # Bounded queues so the RSS limit is a real statement: 8 MiB per
  # subscription pending at most, 64 MiB in all.
  start_ternd "$OUT/ternd.log" --log-level warn --max-pending-bytes 8388608 \
    --max-pending-total 67108864
  echo "soak: ternd pid $TERND on port $PORT for $MINUTES min, RSS limit ${rss_mb} MiB"
  build/bin/pressure_probe "$TERND" 127.0.0.1 "$PORT" 100 100000 200 \
    drop_newest $((MINUTES * 60)) >"$OUT/pressure.json" 2>&1 &
  probe=$!
  build/tests/tern_soak "$PORT" "$TERND" $((MINUTES * 60)) "$rss_mb" |
    tee "$OUT/soak.log" || rc=1
  wait "$probe" || prc=$?
  echo "soak: pressure probe: $(cat "$OUT/pressure.json")"
  wait_s=$(sed -n 's/.*"pair_longest_wait_s":\([0-9.]*\).*/\1/p' "$OUT/pressure.json")
  if [ "$prc" -ne 0 ] || [ -z "$wait_s" ] ||
    ! awk -v w="$wait_s" -v m="$pair_max_s" 'BEGIN { exit !(w <= m) }'; then
    echo "soak: FAIL: the pair beside the non-reading subscribers waited ${wait_s:-?} s (limit $pair_max_s s)"
    rc=1
  fi
  kill -TERM "$TERND"
  wait_ternd 60 || rc=1
  return $rc
}

abuse_phase() {
  local seconds=$ABUSE_SECONDS rc=0 conf="$OUT/abuse-ternd.conf"
  local pair_pass=pair-Corr3ct-horse noisy_pass=noisy-Battery-staple
  {
    echo "# written by scripts/soak.sh for the abuse phase"
    echo "[user pair]"
    echo "password = $(printf '%s\n' "$pair_pass" | build/bin/ternd --hash-password)"
    echo "[user noisy]"
    echo "password = $(printf '%s\n' "$noisy_pass" | build/bin/ternd --hash-password)"
  } >"$conf"
  # shellcheck disable=SC2086 # SOAK_ABUSE_FLAGS / _ARGS are word lists
  start_ternd "$OUT/abuse-ternd.log" --config "$conf" --http-port -1 \
    --log-level warn --max-pending-total 67108864 ${SOAK_ABUSE_FLAGS:-}
  echo "soak: abuse phase: ternd pid $TERND on port $PORT (monitoring $HTTP_PORT) for $seconds s"
  # shellcheck disable=SC2086
  build/tests/tern_soak_abuse "$PORT" "$HTTP_PORT" "$TERND" "$seconds" \
    max_stall_ms="${SOAK_MAX_STALL_MS:-2000}" login_ms="${SOAK_LOGIN_MS:-5000}" \
    probe_ms="${SOAK_PROBE_MS:-2000}" rss_mb="${SOAK_ABUSE_RSS_MB:-384}" \
    pair_pass="$pair_pass" noisy_pass="$noisy_pass" term=1 \
    ${SOAK_ABUSE_ARGS:-} | tee "$OUT/abuse.log" || rc=1
  # tern_soak_abuse sent ternd SIGTERM itself, with its abusers still
  # connected (a second SIGTERM would not be a clean shutdown), and waited
  # 60 s for it.
  wait_ternd 10 || rc=1
  return $rc
}

rc=0
if [ "$MINUTES" != 0 ]; then mixed_phase || rc=1; fi
if [ "$ABUSE_SECONDS" != 0 ]; then abuse_phase || rc=1; fi
echo "soak: $([ $rc -eq 0 ] && echo PASS || echo FAIL)"
exit $rc
