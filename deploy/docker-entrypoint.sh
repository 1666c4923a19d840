#!/bin/sh
# Entrypoint of the tern image.
#
# ternd reads flags only, so this maps TERN_* settings to them. Settings come
# from the environment, then from /etc/tern/ternd.env (KEY=VALUE lines,
# mounted by compose or Kubernetes; no quotes, values are taken verbatim)
# for what the environment leaves unset.
# Extra arguments are appended as ternd flags; a first argument that is not
# a flag runs that command instead (e.g. "tern sub demo.>").
#
# exec keeps ternd as PID 1, so SIGTERM from "docker stop" or the kubelet
# reaches it directly and its own handler drains the connections.
set -eu

CONFIG_FILE=${TERN_CONFIG_FILE:-/etc/tern/ternd.env}

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
  exec "$@"
fi

# Only TERN_* keys are taken from the file, and it is parsed, not sourced:
# a value is never run as shell code.
if [ -r "$CONFIG_FILE" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      '' | '#'*) continue ;;
      *=*) ;;
      *)
        echo "$CONFIG_FILE: ignoring '$line' (no '=')" >&2
        continue ;;
    esac
    key=${line%%=*}
    value=${line#*=}
    case $key in
      *[!A-Z0-9_]*)
        echo "$CONFIG_FILE: ignoring '$line'" >&2
        continue ;;
      TERN_?*) ;;
      *)
        echo "$CONFIG_FILE: ignoring '$key' (not a TERN_ setting)" >&2
        continue ;;
    esac
    eval "isset=\${$key+x}"
    if [ -z "$isset" ]; then
      export "$key=$value"
    fi
  done <"$CONFIG_FILE"
fi

# Lowest priority, after the file: in a container the broker must listen on
# every interface (ternd's own default is loopback).
: "${TERN_HOST:=0.0.0.0}"

# One pair per ternd flag: VARIABLE:flag. Unset or empty means the default.
for pair in \
  TERN_HOST:--host \
  TERN_PORT:--port \
  TERN_MAX_PAYLOAD:--max-payload \
  TERN_MAX_CONNECTIONS:--max-connections \
  TERN_MAX_SUBS:--max-subs \
  TERN_CONNECT_TIMEOUT_MS:--connect-timeout-ms \
  TERN_HEARTBEAT_MS:--heartbeat-ms \
  TERN_MAX_PENDING_MSGS:--max-pending-msgs \
  TERN_MAX_PENDING_BYTES:--max-pending-bytes \
  TERN_STALL_TIMEOUT_MS:--stall-timeout-ms \
  TERN_DRAIN_TIMEOUT_MS:--drain-timeout-ms \
  TERN_LOG_LEVEL:--log-level; do
  var=${pair%%:*}
  flag=${pair#*:}
  eval "value=\${$var:-}"
  if [ -n "$value" ]; then
    # --flag=value keeps each setting one word, whatever it contains.
    set -- "$flag=$value" "$@"
  fi
done
exec ternd "$@"
