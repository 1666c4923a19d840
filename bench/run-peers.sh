#!/usr/bin/env bash
# run-peers.sh: the same `tern bench` scenarios against ternd, nats-server,
# redis-server and mosquitto on loopback; prints a table of medians and
# tern/peer ratios and adds it to bench/RESULTS.md, above the older runs.
#
#   bench/run-peers.sh [--quick]
#
# Environment (all optional):
#   BUILD=build          build directory holding bin/ternd and bin/tern
#   RUNS=3               runs per cell; the table shows the median
#   SIZES="16 1024"      payload sizes in bytes
#   BROKERS="tern nats redis mqtt"
#   MSGS=500000          messages per throughput run (mqtt runs MSGS/4: mosquitto
#                        is ~10x slower and the rate, not the count, is compared)
#   RATES="10000 20000"  fixed-rate latency scenarios (msgs/s; RATE=N alone is
#                        taken as RATES=N)
#   RATE_SECONDS=5       length of each latency run (rate x seconds messages);
#                        a p99 over 1 s of messages moved with a single stall
#                        of the shared machine, 5 s rows are stable
#   RATE_MSGS=N          a fixed message count instead of RATE_SECONDS
#   REQS=10000           requests per request/reply run
#   PORT_BASE=27000      ternd PORT_BASE+421, nats +422, redis +379, mosquitto +883
#   RESULTS=bench/RESULTS.md   where the table goes, newest first ("-" = do not write)
#   TLS=1                over TLS: ternd (--tls-required) and nats-server (--tls)
#                        with certificates from scripts/make-certs.sh, clients
#                        checking them (--tls-ca); brokers default to "tern nats";
#                        the scenarios are 1->1 and connect+close (a new
#                        connection, the handshake, CONNECT, ping/pong, close:
#                        CONNECTS per run, CONNECT_CLIENTS at once)
#
# TLS and plaintext side by side, the issue-16 table:
#   BUILD=build RUNS=5 SIZES="16 1024" TLS=1 bench/run-peers.sh
#
# Servers are child processes with temporary configs on 127.0.0.1 and are
# stopped on exit whatever happens; system services are never touched.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
RUNS=${RUNS:-3}
SIZES=${SIZES:-"16 1024"}
if [[ -n ${TLS:-} ]]; then
  BROKERS=${BROKERS:-"tern nats"}
else
  BROKERS=${BROKERS:-"tern nats redis mqtt"}
fi
MSGS=${MSGS:-500000}
RATES=${RATES:-${RATE:-"10000 20000"}}
RATE_SECONDS=${RATE_SECONDS:-5}
RATE_MSGS=${RATE_MSGS:-}
REQS=${REQS:-10000}
PORT_BASE=${PORT_BASE:-27000}
RESULTS=${RESULTS:-bench/RESULTS.md}
TLS=${TLS:-}
CONNECTS=${CONNECTS:-2000}
CONNECT_CLIENTS=${CONNECT_CLIENTS:-2}
COMMAND="bench/run-peers.sh $*"
if [[ "${1:-}" == "--quick" ]]; then
  RUNS=1 MSGS=50000 RATE_MSGS=5000 REQS=2000
  SIZES="16"
fi

declare -A PORT=([tern]=$((PORT_BASE + 421)) [nats]=$((PORT_BASE + 422))
                 [redis]=$((PORT_BASE + 379)) [mqtt]=$((PORT_BASE + 883)))

log() { printf '%s\n' "$*" >&2; }
die() { log "run-peers: $*"; exit 1; }

# --- tools --------------------------------------------------------------
need_pkgs=()
command -v nats-server >/dev/null || need_pkgs+=(nats-server)
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
command -v mosquitto >/dev/null || need_pkgs+=(mosquitto)
command -v jq >/dev/null || need_pkgs+=(jq)
if ((${#need_pkgs[@]})); then
  [[ $(id -u) == 0 ]] || die "missing ${need_pkgs[*]}: install them (apt-get) or run as root"
  log "installing ${need_pkgs[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
# Debian puts nats-server and mosquitto in /usr/sbin.
export PATH="$PATH:/usr/sbin:/sbin"

TERND="$BUILD/bin/ternd"
[[ -x "$TERND" ]] || die "$TERND not built: cmake -S . -B $BUILD -DCMAKE_BUILD_TYPE=Release && cmake --build $BUILD"
BENCH=("$BUILD/bin/tern" bench)
[[ -x "$BUILD/bin/tern" ]] || die "$BUILD/bin/tern not built (it runs the load generator, bench/loadgen)"

# --- servers ------------------------------------------------------------
TMP=$(mktemp -d /tmp/tern-peers.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local i
  for i in $(seq 1 100); do
    port_busy "$1" && return 0
    sleep 0.1
  done
  return 1
}

TLS_TERND=() TLS_NATS=()
if [[ -n $TLS ]]; then
  "$ROOT/scripts/make-certs.sh" "$TMP/certs" >/dev/null
  TLS_TERND=(--tls-cert "$TMP/certs/server.pem" --tls-key "$TMP/certs/server.key" --tls-required)
  TLS_NATS=(--tls --tlscert "$TMP/certs/server.pem" --tlskey "$TMP/certs/server.key")
  BENCH+=(--tls-ca "$TMP/certs/ca.pem")
fi

start_server() {
  local name=$1 port=${PORT[$1]}
  port_busy "$port" && die "port $port for $name is already in use (set PORT_BASE)"
  case $name in
    tern) "$TERND" --host 127.0.0.1 --port "$port" --http-port 0 --log-level warn \
            "${TLS_TERND[@]}" >"$TMP/tern.log" 2>&1 & ;;
    nats) nats-server -a 127.0.0.1 -p "$port" "${TLS_NATS[@]}" >"$TMP/nats.log" 2>&1 & ;;
    redis) redis-server --bind 127.0.0.1 --port "$port" --save '' \
             --appendonly no --dir "$TMP" --daemonize no \
             >"$TMP/redis.log" 2>&1 & ;;
    mqtt)
      printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n' \
        "$port" >"$TMP/mosquitto.conf"
      mosquitto -c "$TMP/mosquitto.conf" >"$TMP/mqtt.log" 2>&1 & ;;
  esac
  PIDS+=($!)
  wait_port "$port" || { cat "$TMP/$name.log" >&2; die "$name did not start"; }
}

for b in $BROKERS; do start_server "$b"; done

# --- scenarios ----------------------------------------------------------
# name | tern bench arguments | metrics | brokers that have it
SCENARIOS=(
  "pub|--pub 1|pub.msgs_per_s|tern nats redis mqtt"
  "pubsub 1->1|--pub 1 --sub 1|sub.msgs_per_s|tern nats redis mqtt"
  "fan-out 1->4|--pub 1 --sub 4|sub.msgs_per_s|tern nats redis mqtt"
  "queue 1->4|--pub 1 --sub 4 --queue bench|sub.msgs_per_s|tern nats"
  "req/rep|--req --sub 1 --msgs $REQS|latency_us.p50 latency_us.p99|tern nats"
)
if [[ -n $TLS ]]; then
  SCENARIOS=(
    "pubsub 1->1|--pub 1 --sub 1|sub.msgs_per_s sub.mb_per_s|tern nats"
    "connect+close|--pub $CONNECT_CLIENTS --connects $CONNECTS|connects_per_sec|tern nats"
  )
  RATES=""
fi
for rate in $RATES; do
  SCENARIOS+=("latency @${rate}/s|--pub 1 --sub 1 --rate $rate --msgs ${RATE_MSGS:-$((rate * RATE_SECONDS))}|latency_us.p50 latency_us.p99|tern nats redis mqtt")
done

declare -A VALS LOSS
has() { [[ " $1 " == *" $2 "* ]]; }

for sc in "${SCENARIOS[@]}"; do
  IFS='|' read -r name args metrics which <<<"$sc"
  for size in $SIZES; do
    for b in $BROKERS; do
      has "$which" "$b" || continue
      n=$MSGS
      [[ $b == mqtt ]] && n=$((MSGS / 4))
      for run in $(seq 1 "$RUNS"); do
        # shellcheck disable=SC2086
        out=$(timeout 180 "${BENCH[@]}" --broker "$b" --server "127.0.0.1:${PORT[$b]}" \
                --size "$size" --msgs "$n" $args --json 2>"$TMP/err") || true
        if ! jq -e . >/dev/null 2>&1 <<<"$out"; then
          log "  $b $name ${size}B run $run: failed: $(head -c 300 "$TMP/err")"
          LOSS["$name|$size|$b"]=1
          continue
        fi
        for m in $metrics; do
          v=$(jq -r ".$m // empty" <<<"$out")
          [[ -n $v ]] && VALS["$name|$size|$b|$m"]+="$v "
        done
        if [[ $(jq -r '.lost + .failed_clients' <<<"$out") != 0 ]]; then
          LOSS["$name|$size|$b"]=1
        fi
        log "  $b $name ${size}B run $run: $(jq -c "[$(sed 's/\([^ ]*\)/.\1/g; s/ /,/g' <<<"$metrics")]" <<<"$out")"
      done
    done
  done
done

# --- table --------------------------------------------------------------
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {
  if (NR == 0) exit; if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
spread() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {
  if (NR < 2) { print 0; exit }; m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
  print (m > 0) ? 100 * (a[NR] - a[1]) / m : 0 }'; }
fmt() { awk -v v="$1" -v lat="$2" 'BEGIN {
  if (v == "") { print "n/a"; exit }
  if (lat) printf "%.1f", v; else if (v >= 1e6) printf "%.2fM", v / 1e6;
  else if (v >= 1e3) printf "%.0fk", v / 1e3; else printf "%.0f", v }'; }

peers=()
for b in $BROKERS; do [[ $b != tern ]] && peers+=("$b"); done
table=$(
  printf '| scenario | size | metric |'
  for b in $BROKERS; do printf ' %s |' "$b"; done
  for p in "${peers[@]}"; do printf ' tern/%s |' "$p"; done
  printf ' max spread |\n|---|---|---|'
  for _ in $BROKERS "${peers[@]}"; do printf -- '---|'; done
  printf -- '---|\n'
  for sc in "${SCENARIOS[@]}"; do
    IFS='|' read -r name args metrics which <<<"$sc"
    for size in $SIZES; do
      for m in $metrics; do
        lat=0; label="msgs/s"
        [[ $m == latency* ]] && { lat=1; label="${m#latency_us.} us"; }
        [[ $m == pub.* && $name == pub ]] && label="pub msgs/s"
        [[ $m == sub.* ]] && label="recv msgs/s"
        [[ $m == *mb_per_s ]] && { lat=1; label="recv MB/s"; }
        [[ $m == connects_per_sec ]] && label="connections/s"
        printf '| %s | %s | %s |' "$name" "$size" "$label"
        declare -A med=()
        worst=0
        for b in $BROKERS; do
          vals=${VALS["$name|$size|$b|$m"]:-}
          med[$b]=$(median <<<"$vals")
          s=$(spread <<<"$vals")
          worst=$(awk -v a="$worst" -v b="$s" 'BEGIN { print (b > a) ? b : a }')
          mark=""; [[ -n ${LOSS["$name|$size|$b"]:-} ]] && mark=" (!)"
          if has "$which" "$b"; then printf ' %s%s |' "$(fmt "${med[$b]}" "$lat")" "$mark"
          else printf ' n/a |'; fi
        done
        for p in "${peers[@]}"; do
          if [[ -n ${med[tern]:-} && -n ${med[$p]:-} ]]; then
            printf ' %s |' "$(awk -v a="${med[tern]}" -v b="${med[$p]}" 'BEGIN { printf (b > 0) ? "%.2f" : "-", a / b }')"
          else printf ' n/a |'; fi
        done
        printf ' %.0f%% |\n' "$worst"
        unset med
      done
    done
  done
)

cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
machine="$(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r)"
version() { "$@" 2>&1 | head -1 || true; }
versions="$(version "$TERND" --version); $(version nats-server --version); $(version redis-server --version | cut -d' ' -f1-3); $(version mosquitto -h)"
section=$(cat <<MD

## $(date -u '+%Y-%m-%d %H:%M UTC')

- machine: $machine; load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)
- servers: $versions
- command: \`$COMMAND\` (${TLS:+TLS=1 }BUILD=$BUILD RUNS=$RUNS SIZES="$SIZES" MSGS=$MSGS RATES="$RATES" RATE_SECONDS=$RATE_SECONDS RATE_MSGS=${RATE_MSGS:-rate x seconds} REQS=$REQS)
- generator: \`${BENCH[*]}\`, one connection and thread per client, all on loopback

$table

Medians of $RUNS runs. Throughput rows: higher is better, tern/peer > 1 means
tern is faster. Latency rows (microseconds): lower is better, tern/peer < 1
means tern is faster. "max spread" is the largest (max - min) / median over the
runs of any broker in that row: the noise of this machine. (!) marks a cell where
a run lost messages or failed. n/a: the protocol has no such feature (Redis
pub/sub and MQTT QoS 0 have neither queue groups nor request/reply).
MD
)
printf '%s\n' "$section"
if [[ $RESULTS != "-" ]]; then
  # The header, then this run, then the older runs (first "## " onwards).
  head='# tern and its peers: `tern bench` results

Each run of bench/run-peers.sh adds a section above the older ones: the
newest is first. bench/README.md explains the scenarios and how the
figures are measured.'
  older=""
  [[ -s $RESULTS ]] && older=$(sed -n '/^## /,$p' "$RESULTS")
  { printf '%s\n%s\n' "$head" "$section"; [[ -n $older ]] && printf '\n%s\n' "$older"; } >"$RESULTS.tmp"
  mv "$RESULTS.tmp" "$RESULTS"
  log "added to $RESULTS (newest first)"
fi
