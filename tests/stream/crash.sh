#!/bin/sh
# SIGKILL ternd during acknowledged publishes (sync always), dozens of
# times, and check every acknowledged message survived, in order, once.
#   tests/stream/crash.sh [--long] [ternd]
# Default: 24 kills (ctest stream_crash); --long: 200.
set -e
rounds=24
if [ "$1" = "--long" ]; then rounds=200; shift; fi
[ -n "$1" ] && export TERND="$1"
exec /usr/bin/python3 "$(dirname "$0")/crash.py" --rounds "$rounds"
