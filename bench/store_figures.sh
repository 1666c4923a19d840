#!/bin/sh
# The stream store's figures (broker/store/README.md): append msgs/s at 16 B
# (1 M records) and 1 KiB (200,000) under each sync policy, one acknowledged append at a time,
# replay and open (warm and cold) of 1 M records, disk bytes per record.
# Median of RUNS runs (5) each; one line per row.
#
#   bench/store_figures.sh [BUILD [DIR [RUNS]]]
#
# BUILD is the build tree (build), DIR a scratch directory on the disk to
# measure (/tmp/tern-store-bench; removed at the end).
set -eu
BUILD=${1:-build}
DIR=${2:-/tmp/tern-store-bench}
RUNS=${3:-5}
B=$BUILD/bin/store_bench
[ -x "$B" ] || { echo "store_figures: no $B (cmake --build $BUILD --target store_bench)" >&2; exit 2; }
trap 'rm -rf "$DIR"' EXIT

# median KEY < json lines
median() {
  /usr/bin/python3 -c '
import json, statistics, sys
v = [json.loads(l)[sys.argv[1]] for l in sys.stdin if l.strip()]
print(f"{statistics.median(v):.0f}" if v[0] >= 100 else f"{statistics.median(v):.3f}")
' "$1"
}

row() { # label, command output lines on stdin, key
  printf '%-44s %s\n' "$1" "$(median "$2")"
}

for size in 16 1024; do
  for sync in never interval always; do
    out=""
    for _ in $(seq "$RUNS"); do
      rm -rf "$DIR"
      count=1000000
      [ "$size" = 1024 ] && count=200000 # 200 MB a run
      out="$out$("$B" append "$DIR" "$count" "$size" "$sync")
"
    done
    printf '%s' "$out" | row "append ${size} B, sync $sync, window 10000 (msgs/s)" msgs_per_s
    [ "$size" = 16 ] && [ "$sync" = always ] &&
      printf '%s' "$out" | row "disk bytes per 16 B record" disk_bytes_per_msg
  done
done
for size in 16 1024; do
  out=""
  for _ in $(seq "$RUNS"); do
    rm -rf "$DIR"
    out="$out$("$B" append "$DIR" 20000 "$size" always 1 1)
"
  done
  printf '%s' "$out" | row "append ${size} B, sync always, one at a time (msgs/s)" msgs_per_s
done
rm -rf "$DIR"
"$B" append "$DIR" 1000000 16 never >/dev/null
out=""
for _ in $(seq "$RUNS"); do out="$out$("$B" replay "$DIR")
"; done
printf '%s' "$out" | row "replay 1 M x 16 B, one iterator (msgs/s)" msgs_per_s
out=""
for _ in $(seq "$RUNS"); do out="$out$("$B" replay "$DIR" 4)
"; done
printf '%s' "$out" | row "replay 1 M x 16 B to 4 iterators (deliveries/s)" msgs_per_s
for mode in warm cold; do
  out=""
  for _ in $(seq "$RUNS"); do
    if [ "$mode" = cold ]; then out="$out$("$B" open "$DIR" cold)
"; else out="$out$("$B" open "$DIR")
"; fi
  done
  printf '%s' "$out" | row "open 1 M x 16 B records, $mode cache (s)" seconds
done
