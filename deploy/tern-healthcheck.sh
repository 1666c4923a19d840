#!/bin/bash
# tern-healthcheck: the image's HEALTHCHECK (installed as
# /usr/local/bin/tern-healthcheck). Exit 0 when ternd answers.
#
# It follows ternd's own configuration rather than assuming ports: it asks
# `ternd --check-config` for the effective settings, with the container's
# environment, TERN_CONFIG_FILE and the flags ternd was started with (read
# from /proc/1/cmdline when ternd is PID 1). Then:
#  - monitoring on (http_port > 0): GET /healthz must answer 200. ternd
#    answers 503 while it drains, and a stuck loop does not answer at all;
#  - monitoring off (http_port 0, or -1: a port chosen at run time): the
#    client port must send its HELLO, which ternd's loop writes to every new
#    connection. Refused while draining, silent while stuck; no credentials
#    needed (the connection is closed before CONNECT). Each check is then
#    one short client connection in ternd's info log.
# The image runs it under `timeout`, which bounds every step.
set -euo pipefail

args=()
if [ "$(cat /proc/1/comm 2>/dev/null)" = ternd ]; then
  mapfile -d '' -t args </proc/1/cmdline
  args=("${args[@]:1}")
fi
# --check-config comes first: a --config among ternd's flags then wins, as
# it does for ternd.
conf=$(ternd --check-config "${TERN_CONFIG_FILE:-/dev/null}" "${args[@]}" 2>&1) ||
  {
    echo "tern-healthcheck: ternd --check-config failed: $conf" >&2
    exit 1
  }
setting() { awk -F ' = ' -v k="$1" '$1 == k { print $2; exit }' <<<"$conf"; }
# A wildcard address is reached on loopback.
reach() {
  case $1 in
    '' | 0.0.0.0) echo 127.0.0.1 ;;
    :: | '[::]') echo ::1 ;;
    *) echo "$1" ;;
  esac
}

host=$(setting host)
http_port=$(setting http_port)
if [ "${http_port:-0}" -gt 0 ]; then
  http_host=$(setting http_host)
  addr=$(reach "${http_host:-$host}")
  exec 3<>"/dev/tcp/$addr/$http_port"
  printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3
  status=$(head -n 1 <&3)
  case $status in
    *' 200 '*) exit 0 ;;
    *)
      echo "tern-healthcheck: http://$addr:$http_port/healthz: ${status%$'\r'}" >&2
      exit 1
      ;;
  esac
fi
addr=$(reach "$host")
port=$(setting port)
exec 3<>"/dev/tcp/$addr/$port"
# HELLO: a frame of at least its 4-byte length prefix.
got=$(head -c 4 <&3 | wc -c)
[ "$got" -eq 4 ] || {
  echo "tern-healthcheck: no HELLO from $addr:$port" >&2
  exit 1
}
