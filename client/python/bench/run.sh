#!/usr/bin/env bash
# run.sh: the Python client's benchmark (bench.py) against redis-py.
#
#   client/python/bench/run.sh [bench.py options: --runs 5 --msgs 200000 --reqs 5000 --build build]
#   client/python/bench/run.sh --tls --runs 3   (publish/subscribe: plaintext vs TLS, redis-py TLS)
#
# redis-server, redis-benchmark and redis-py (python3-redis, with
# python3-hiredis, its C reply parser, so redis-py runs at its best) are
# installed from Debian on demand, as bench/run-peers.sh does: as root, or
# install them yourself. No redis service is started or touched: bench.py
# runs its own redis-server and ternd on free loopback ports.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
/usr/bin/python3 -c "import redis" 2>/dev/null || need+=(python3-redis)
/usr/bin/python3 -c "import hiredis" 2>/dev/null || need+=(python3-hiredis)
/usr/bin/python3 -c "import msgpack" 2>/dev/null || need+=(python3-msgpack)
if ((${#need[@]})); then
  [[ $(id -u) == 0 ]] || { echo "run.sh: missing ${need[*]}: install them (apt-get) or run as root" >&2; exit 1; }
  echo "run.sh: installing ${need[*]} from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
exec /usr/bin/python3 "$HERE/bench.py" "$@"
