#!/usr/bin/env bash
# deploy/test-image.sh [PATH-TO-HOST-tern]
#
# Builds the image from deploy/Dockerfile as it is, then checks it for real:
#  - ternd runs as PID 1 under a non-root user;
#  - an INI file named by TERN_CONFIG_FILE (options and a [user NAME]
#    section) is applied, an environment variable wins over it, and the
#    container log holds none of its lines (no password hash);
#  - under a 256 MiB memory limit, ternd's default max_pending_total is a
#    quarter of it (ternd reads its cgroup), not of the host's RAM;
#  - a subscriber and a publisher on the host (build/bin/tern) talk through
#    the container's published port, and /healthz and /varz answer on the
#    published monitoring port (/varz only with the file's http_token);
#  - secure by default: without authentication the image refuses to start
#    (exit 2, the reason in its log); with TERN_AUTH_TOKEN, or with
#    TERN_ALLOW_ANONYMOUS=true, it runs;
#  - TLS: certificates from scripts/make-certs.sh mounted read-only and
#    named by TERN_TLS_CERT/TERN_TLS_KEY: a host tern publishes and
#    subscribes over tls://, and `openssl s_client` gets /connz over HTTPS
#    with the monitoring token;
#  - the HEALTHCHECK passes, and fails while ternd is stopped (SIGSTOP);
#    it follows a monitoring port moved by a flag, and with monitoring off
#    it checks the client port (and still fails while ternd is stopped);
#  - SIGTERM ends ternd with exit code 0 within the drain deadline, while a
#    client is connected;
#  - deploy/docker-compose.yml comes up on host ports chosen at run time,
#    its clients start only once the broker is healthy, its subscriber
#    receives its publisher's messages, and it goes down again.
# No check depends on a fixed host port: published ports are chosen by the
# engine or picked free at run time, and the whole run happens while a
# ternd listens on 127.0.0.1:7421 and :8421, as README command 1 leaves one
# (started here from the ternd next to the host tern if those are free).
#
# Uses docker if a daemon answers, else podman (with the containers.conf
# this machine needs, and podman's Docker API socket for docker-compose);
# TERN_ENGINE=docker|podman picks one. Before any real work it runs a tiny
# container (an imported rootfs holding only /bin/true) with a published
# port. Where there is no engine, or the engine cannot run that (a chroot,
# no user namespaces, mount or rlimit failures: the probe involves nothing
# of tern, so its failure is the machine's), it prints "skipped:" and the
# reason, and exits 0 (or $TERN_SKIP_STATUS: scripts/test.sh sets 77 to
# tell a skip from a pass). Everything after the probe that fails (the
# build, the image, a check) is a failure.
# Without a debian:bookworm-slim image and no registry, the base is made
# with debootstrap (root only). Prints the image size and the time taken.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
TERN_HOST_CLI=${1:-${TERN_CLI:-$REPO/build/bin/tern}}
HOST_TERND=${TERND:-$(dirname "$TERN_HOST_CLI")/ternd}
TAG=${TERN_IMAGE:-localhost/tern:test}
BASE=debian:bookworm-slim
DRAIN_DEADLINE_S=${DRAIN_DEADLINE_S:-8} # ternd's --drain-timeout-ms 5000 + margin
STEP_TIMEOUT=30
START_NS=$(date +%s%N)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tern-image-test.XXXXXX")
NAME=tern-image-test-$$
PROJECT=ternimagetest$$
ENGINE=""
SERVICE_PID=""
COMPOSE_UP=""
CLUSTER_UP=""
PROBE_IMAGE=""
HOST_TERND_PID=""
BG_PIDS=()
EXTRA_NAMES=()

elapsed() { echo $((($(date +%s%N) - START_NS) / 1000000)); }
step() {
  local ms
  ms=$(elapsed)
  printf '== [%3d.%ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

cleanup() {
  set +e
  for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  if [ -n "$COMPOSE_UP" ]; then
    compose down -t 15 >/dev/null 2>&1
    # If down failed half-way, remove what is left by the project's label.
    "$ENGINE" ps -aq --filter "label=com.docker.compose.project=$PROJECT" |
      xargs -r "$ENGINE" rm -f >/dev/null 2>&1
    "$ENGINE" network rm "${PROJECT}_default" >/dev/null 2>&1
  fi
  if [ -n "$CLUSTER_UP" ]; then
    cluster_compose down -t 15 >/dev/null 2>&1
    "$ENGINE" ps -aq --filter "label=com.docker.compose.project=$PROJECT-cl" |
      xargs -r "$ENGINE" rm -f >/dev/null 2>&1
    "$ENGINE" network rm "${PROJECT}-cl_default" >/dev/null 2>&1
  fi
  if [ -n "$ENGINE" ]; then
    "$ENGINE" rm -f "$NAME" "${EXTRA_NAMES[@]}" >/dev/null 2>&1
    [ -n "$PROBE_IMAGE" ] && "$ENGINE" rmi -f "$PROBE_IMAGE" >/dev/null 2>&1
  fi
  if [ -n "$HOST_TERND_PID" ]; then
    kill "$HOST_TERND_PID" 2>/dev/null
    wait "$HOST_TERND_PID" 2>/dev/null
  fi
  if [ -n "$SERVICE_PID" ]; then
    kill "$SERVICE_PID" 2>/dev/null
    wait "$SERVICE_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

skip() {
  echo "skipped: $*"
  exit "${TERN_SKIP_STATUS:-0}"
}

# ---- pick an engine ------------------------------------------------------
want=${TERN_ENGINE:-}
if [ "$want" != podman ] && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  ENGINE=docker
  BUILD_FLAGS=()
elif [ "$want" != docker ] && command -v podman >/dev/null; then
  # podman's defaults fail under tight rlimits and on hosts with hybrid
  # cgroups; these settings are harmless elsewhere.
  cat >"$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF
  export CONTAINERS_CONF=${CONTAINERS_CONF:-$WORK/containers.conf}
  if podman info >"$WORK/podman-info.log" 2>&1; then
    ENGINE=podman
    # The OCI image format has no HEALTHCHECK; podman drops it without this.
    BUILD_FLAGS=(--format docker)
  fi
fi
if [ -z "$ENGINE" ]; then
  [ -s "$WORK/podman-info.log" ] && sed 's/^/  podman info: /' "$WORK/podman-info.log" | tail -5
  skip "no container engine (neither a docker daemon nor podman answers)"
fi
[ -x "$TERN_HOST_CLI" ] ||
  fail "no host tern CLI at $TERN_HOST_CLI: build it (cmake --build build --target tern_cli) or pass its path"
[ -x "$HOST_TERND" ] ||
  fail "no host ternd at $HOST_TERND: build it (cmake --build build --target ternd) or set TERND"
step "engine: $ENGINE ($("$ENGINE" --version | head -1))"

# ---- can this engine run a container here? -------------------------------
# `info` answering is not enough: in a chroot, or without user namespaces,
# the engine starts but cannot mount a container's root ("remount /, flags:
# 0x44000: invalid argument" from `podman import`) or start its process.
# The probe is an image of nothing but /bin/true and the libraries it
# loads, imported and run with a published port as the checks below do:
# none of tern is involved, so a failure here is the environment's.
probe_root=$WORK/probe-rootfs
mkdir -p "$probe_root/bin"
cp /bin/true "$probe_root/bin/true"
for lib in $(ldd /bin/true 2>/dev/null | grep -o '/[^ ]*'); do
  mkdir -p "$probe_root$(dirname "$lib")"
  cp -L "$lib" "$probe_root$lib"
done
PROBE_IMAGE=localhost/tern-probe:$$
if ! tar -C "$probe_root" -c . | "$ENGINE" import - "$PROBE_IMAGE" >/dev/null 2>"$WORK/probe.log"; then
  PROBE_IMAGE=""
  sed 's/^/  /' "$WORK/probe.log" | tail -5
  skip "$ENGINE cannot import an image here: $(grep -v '^$' "$WORK/probe.log" | tail -1)"
fi
if ! "$ENGINE" run --rm -p 127.0.0.1::9 "$PROBE_IMAGE" /bin/true >/dev/null 2>"$WORK/probe.log"; then
  sed 's/^/  /' "$WORK/probe.log" | tail -5
  skip "$ENGINE cannot run a container here: $(grep -v '^$' "$WORK/probe.log" | tail -1)"
fi
"$ENGINE" rmi -f "$PROBE_IMAGE" >/dev/null 2>&1
PROBE_IMAGE=""
step "probe: $ENGINE imports and runs a container here"

# ---- a broker on the host's default ports, as README command 1 leaves it -
# Two free ports on 127.0.0.1, from a ternd that binds port 0 twice.
free_ports() {
  local p
  "$HOST_TERND" --host 127.0.0.1 --port 0 --http-host 127.0.0.1 --http-port -1 \
    --log-level error --ready-fd 3 3>"$WORK/ports" &
  p=$!
  for _ in $(seq 1 100); do
    [ -s "$WORK/ports" ] && break
    sleep 0.05
  done
  kill "$p" 2>/dev/null
  wait "$p" 2>/dev/null || true
  read -r FREE_A FREE_B <"$WORK/ports" || fail "no free ports from $HOST_TERND"
}
if "$HOST_TERND" --host 127.0.0.1 --port 7421 --http-host 127.0.0.1 --http-port 8421 \
  --log-level warn --ready-fd 3 3>"$WORK/host-ternd.ready" 2>"$WORK/host-ternd.log" &
then
  HOST_TERND_PID=$!
fi
for _ in $(seq 1 100); do
  [ -s "$WORK/host-ternd.ready" ] && break
  kill -0 "$HOST_TERND_PID" 2>/dev/null || break
  sleep 0.05
done
if [ -s "$WORK/host-ternd.ready" ]; then
  step "host ternd on 127.0.0.1:7421 and :8421 for the whole run (README command 1's ports)"
else
  # Taken already: by a broker like command 1's, which is the case to test.
  wait "$HOST_TERND_PID" 2>/dev/null || true
  HOST_TERND_PID=""
  step "127.0.0.1:7421/:8421 are taken already: the run goes on beside them"
fi

# ---- the base image ------------------------------------------------------
# What makes the official image "slim" (its build tool's dpkg excludes and
# apt settings), applied to a debootstrap tree, so that the size measured
# here is close to what users get with the registry's image.
slim_rootfs() {
  local r=$1
  cat >"$r/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
  cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$r/etc/apt/apt.conf.d/docker-no-languages"
  find "$r/usr/share/doc" -mindepth 1 \( -type f -o -type l \) ! -name copyright -delete
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$r"/usr/share/{groff,info,linda,locale,man}/* \
    "$r"/usr/share/lintian/overrides/* \
    "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin \
    "$r"/var/cache/apt/archives/*.deb "$r"/var/log/*.log "$r"/var/log/apt/*
}

# The Debian archive this machine's apt installs bookworm from, for
# debootstrap (empty: debootstrap's own default). DEBIAN_MIRROR overrides.
apt_mirror() {
  # shellcheck disable=SC2016 # apt's own field syntax, not the shell's
  local fmt='$(REPO_URI) $(RELEASE)'
  apt-get indextargets --format "$fmt" 'Identifier: Packages' 2>/dev/null |
    awk '$2 == "bookworm" { print $1; exit }'
}

if ! "$ENGINE" image inspect "$BASE" >/dev/null 2>&1; then
  if "$ENGINE" pull -q "$BASE" >/dev/null 2>&1; then
    step "pulled $BASE"
  else
    # No registry: a minimal Debian made locally serves the same FROM line.
    command -v debootstrap >/dev/null ||
      fail "no $BASE image, no registry, and no debootstrap to make one (apt-get install debootstrap)"
    [ "$(id -u)" = 0 ] || fail "making $BASE with debootstrap needs root"
    mirror=${DEBIAN_MIRROR:-$(apt_mirror)}
    step "making $BASE with debootstrap (no registry reachable) from ${mirror:-the default mirror of debootstrap}"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" ${mirror:+"$mirror"} \
      >"$WORK/debootstrap.log" 2>&1 ||
      { tail -20 "$WORK/debootstrap.log" >&2; fail "debootstrap"; }
    slim_rootfs "$WORK/rootfs"
    tar -C "$WORK/rootfs" -c . | "$ENGINE" import - "$BASE" >/dev/null 2>"$WORK/import.log" ||
      { cat "$WORK/import.log" >&2; fail "$ENGINE import"; }
    rm -rf "$WORK/rootfs"
  fi
fi

# ---- build ---------------------------------------------------------------
step "building $TAG from deploy/Dockerfile"
build_start=$(elapsed)
# The build's apt runs on the host's network: what is tested is the image,
# not the engine's bridge and NAT (which a nested or locked-down machine
# may not have).
"$ENGINE" build "${BUILD_FLAGS[@]}" --network=host -f "$REPO/deploy/Dockerfile" -t "$TAG" \
  "$REPO" >"$WORK/build.log" 2>&1 ||
  { tail -40 "$WORK/build.log" >&2; fail "image build"; }
build_ms=$(($(elapsed) - build_start))
size=$("$ENGINE" image inspect --format '{{.Size}}' "$TAG")
base_size=$("$ENGINE" image inspect --format '{{.Size}}' "$BASE")
step "image $TAG: $((size / 1000000)) MB ($((base_size / 1000000)) MB of it the base), built in $((build_ms / 1000)) s"
health=$("$ENGINE" image inspect --format '{{json .Config.Healthcheck}}' "$TAG")
case $health in
  *tern-healthcheck*) ;;
  *) fail "the image's HEALTHCHECK is not tern-healthcheck ($health)" ;;
esac

# ---- run it --------------------------------------------------------------
step "run"
RUN_FLAGS=()
if [ "$ENGINE" = podman ]; then
  # podman schedules health checks with systemd timers, absent here; the
  # checks below run the image's command on demand instead.
  RUN_FLAGS=(--health-interval=disable)
fi
# The image's HEALTHCHECK, run on demand (podman), or docker's own verdict.
health_of() {
  if [ "$ENGINE" = podman ]; then
    podman healthcheck run "$1" >/dev/null 2>&1
  else
    local want=$2 status=""
    for _ in $(seq 1 40); do
      status=$(docker inspect --format '{{.State.Health.Status}}' "$1")
      [ "$status" = "$want" ] && return 0
      sleep 0.5
    done
    return 1
  fi
}
# Bounded wait until the container's HEALTHCHECK passes.
wait_healthy() {
  for _ in $(seq 1 100); do
    if [ "$ENGINE" = podman ]; then
      podman healthcheck run "$1" >/dev/null 2>&1 && return 0
    elif [ "$(docker inspect --format '{{.State.Health.Status}}' "$1")" = healthy ]; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}

# A user's password, hashed by the image's own ternd.
PASSWORD=image-test-$$
# (podman's complaints about systemd timers go to the file, not the output.)
hash=$(echo "$PASSWORD" | "$ENGINE" run --rm -i "${RUN_FLAGS[@]}" "$TAG" ternd --hash-password \
  2>"$WORK/hash.log") || { cat "$WORK/hash.log" >&2; fail "ternd --hash-password in the image"; }
# Settings both ways: an INI file named by TERN_CONFIG_FILE (as ternd.conf
# is written), and the environment, which wins over it.
HTTP_TOKEN=image-http-$$
cat >"$WORK/ternd.conf" <<EOF
# test
max_payload = 65536
log_level = warn
sys_interval_ms = 0
http_token = $HTTP_TOKEN

[user imagetest]
password = $hash
EOF
chmod 644 "$WORK/ternd.conf"
# A memory limit, which ternd must size its pending-bytes cap by (a quarter
# of it), not by the host's RAM.
"$ENGINE" run -d "${RUN_FLAGS[@]}" --name "$NAME" --memory 256m \
  -p 127.0.0.1::7421 -p 127.0.0.1::8421 \
  -v "$WORK/ternd.conf:/etc/tern/ternd.conf:ro" -e TERN_CONFIG_FILE=/etc/tern/ternd.conf \
  -e TERN_LOG_LEVEL=info "$TAG" \
  >/dev/null 2>"$WORK/run.log" || { cat "$WORK/run.log" >&2; fail "$ENGINE run"; }
hostport=$("$ENGINE" port "$NAME" 7421 | head -1)
PORT=${hostport##*:}
URL=127.0.0.1:$PORT
hostport=$("$ENGINE" port "$NAME" 8421 | head -1)
HTTP_PORT=${hostport##*:}

# Bounded wait for the broker to answer (no ready-fd across a container):
# its own health check, which needs no credentials.
wait_healthy "$NAME" || { "$ENGINE" logs "$NAME" >&2; fail "ternd did not become healthy in the container"; }

pid1=$("$ENGINE" exec "$NAME" cat /proc/1/comm)
[ "$pid1" = ternd ] || fail "PID 1 is '$pid1', not ternd"
uid=$("$ENGINE" exec "$NAME" id -u)
[ "$uid" != 0 ] || fail "ternd runs as root"
step "PID 1: ternd (uid $uid), published on $URL, monitoring on 127.0.0.1:$HTTP_PORT"

# GET PATH [TOKEN] on the host side of the published monitoring port.
http_get() {
  exec {h}<>"/dev/tcp/127.0.0.1/$HTTP_PORT" || return 1
  if [ -n "${2:-}" ]; then
    printf 'GET %s HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n' "$1" "$2" >&"$h"
  else
    printf 'GET %s HTTP/1.0\r\n\r\n' "$1" >&"$h"
  fi
  cat <&"$h"
  exec {h}<&-
}
http_get /healthz >"$WORK/healthz" || fail "no answer on the published monitoring port $HTTP_PORT"
head -1 "$WORK/healthz" | grep -q ' 200 ' || fail "/healthz: $(head -1 "$WORK/healthz")"
# /varz names clients' numbers and the configuration: the token's.
http_get /varz >"$WORK/varz-anon" || fail "GET /varz without the token"
head -1 "$WORK/varz-anon" | grep -q ' 401 ' ||
  fail "/varz without the monitoring token: $(head -1 "$WORK/varz-anon")"
http_get /varz "$HTTP_TOKEN" >"$WORK/varz" || fail "GET /varz"
grep -q '"max_payload":65536' "$WORK/varz" ||
  fail "TERN_CONFIG_FILE's max_payload was not applied: $(tail -1 "$WORK/varz")"
grep -q '"log_level":"info"' "$WORK/varz" ||
  fail "TERN_LOG_LEVEL from the environment did not win over the file: $(tail -1 "$WORK/varz")"
step "TERN_CONFIG_FILE applied (max_payload 65536), the environment won (log_level info)"

# (To a file first: grep -q closing the pipe early would fail it under
# pipefail.)
"$ENGINE" logs "$NAME" >"$WORK/start.log" 2>&1
grep -q "max_pending_total 64 MiB: .* of 256 MiB, the cgroup's memory limit" "$WORK/start.log" ||
  { cat "$WORK/start.log" >&2; fail "ternd did not size max_pending_total by the container's 256 MiB limit"; }
step "max_pending_total: a quarter of the container's 256 MiB memory limit"

# The users in the file are in force: no credentials, no service.
if TERN_USER="" TERN_PASSWORD="" timeout "$STEP_TIMEOUT" "$TERN_HOST_CLI" -s "$URL" \
  pub image.anon x >"$WORK/anon.log" 2>&1; then
  fail "a publish without credentials was accepted: the file's [user] section is not in force"
fi
export TERN_USER=imagetest TERN_PASSWORD=$PASSWORD

step "pub/sub from the host through the container"
mkfifo "$WORK/sub.err"
timeout "$STEP_TIMEOUT" "$TERN_HOST_CLI" -s "$URL" sub --raw --ready --count 2 'image.>' \
  >"$WORK/sub.out" 2>"$WORK/sub.err" &
SUB_PID=$!
BG_PIDS+=("$SUB_PID")
exec {sub_err}<"$WORK/sub.err"
line=""
read -r -t "$STEP_TIMEOUT" -u "$sub_err" line || fail "host subscriber never ready"
[ "$line" = ready ] || fail "host subscriber said '$line'"
"$TERN_HOST_CLI" -s "$URL" pub --count 2 image.test "through the container" \
  >"$WORK/pub.log" 2>&1 || fail "host publish: $(cat "$WORK/pub.log")"
wait "$SUB_PID" || fail "host subscriber exited with $?"
exec {sub_err}<&-
[ "$(grep -c '^through the container$' "$WORK/sub.out")" = 2 ] ||
  fail "host subscriber got: $(cat "$WORK/sub.out")"

step "health check: healthy, then unhealthy while ternd is stopped"
if [ "$ENGINE" = podman ]; then
  health_of "$NAME" healthy || fail "health check failed on a running broker"
else
  health_of "$NAME" healthy || fail "docker never reported healthy"
fi
# SIGSTOP from the host: inside its namespace PID 1 ignores what it has no
# handler for. A stopped ternd still has its socket listening, so this
# tells a real round trip from a port check.
stop_check() {
  local name=$1 host_pid
  host_pid=$("$ENGINE" inspect --format '{{.State.Pid}}' "$name")
  kill -STOP "$host_pid"
  if [ "$ENGINE" = podman ]; then
    if health_of "$name"; then
      kill -CONT "$host_pid"
      fail "$name: health check passed with ternd stopped"
    fi
  else
    health_of "$name" unhealthy || { kill -CONT "$host_pid"; fail "$name: docker never reported unhealthy"; }
  fi
  kill -CONT "$host_pid"
  health_of "$name" healthy || fail "$name: health check did not recover after SIGCONT"
}
stop_check "$NAME"

# Secure by default: the image on 0.0.0.0 with no authentication at all
# stops at once, saying why.
step "no authentication: the image refuses to start"
EXTRA_NAMES=("$NAME-anon")
"$ENGINE" run -d "${RUN_FLAGS[@]}" --name "$NAME-anon" "$TAG" \
  >/dev/null 2>"$WORK/run.log" || { cat "$WORK/run.log" >&2; fail "$ENGINE run (anon)"; }
code=$(timeout "$STEP_TIMEOUT" "$ENGINE" wait "$NAME-anon") ||
  { "$ENGINE" logs "$NAME-anon" >&2; fail "an image without authentication kept running"; }
"$ENGINE" logs "$NAME-anon" >"$WORK/anon-start.log" 2>&1
[ "$code" = 2 ] || { cat "$WORK/anon-start.log" >&2; fail "exit code $code without authentication (want 2)"; }
grep -q 'refusing to listen on 0.0.0.0 without authentication' "$WORK/anon-start.log" ||
  { cat "$WORK/anon-start.log" >&2; fail "no reason in the log of the refused start"; }
"$ENGINE" rm -f "${EXTRA_NAMES[@]}" >/dev/null 2>&1

# The check follows the configuration: monitoring moved by a flag after
# the image name, and monitoring off (then the client port's HELLO). The
# first has a token; the second runs anonymous, allowed explicitly.
step "health check with monitoring on another port (a flag), and off (TERN_HTTP_PORT=0, TERN_ALLOW_ANONYMOUS=true)"
EXTRA_NAMES=("$NAME-moved" "$NAME-nohttp")
"$ENGINE" run -d "${RUN_FLAGS[@]}" --name "$NAME-moved" -e TERN_AUTH_TOKEN=image-test \
  "$TAG" --http-port 9421 \
  >/dev/null 2>"$WORK/run.log" || { cat "$WORK/run.log" >&2; fail "$ENGINE run (moved)"; }
"$ENGINE" run -d "${RUN_FLAGS[@]}" --name "$NAME-nohttp" -e TERN_HTTP_PORT=0 \
  -e TERN_ALLOW_ANONYMOUS=true "$TAG" \
  >/dev/null 2>"$WORK/run.log" || { cat "$WORK/run.log" >&2; fail "$ENGINE run (nohttp)"; }
wait_healthy "$NAME-moved" ||
  { "$ENGINE" logs "$NAME-moved" >&2; fail "never healthy with --http-port 9421"; }
wait_healthy "$NAME-nohttp" ||
  { "$ENGINE" logs "$NAME-nohttp" >&2; fail "never healthy with monitoring off"; }
"$ENGINE" logs "$NAME-nohttp" >"$WORK/nohttp.log" 2>&1
grep -q 'no authentication (allow_anonymous)' "$WORK/nohttp.log" ||
  { cat "$WORK/nohttp.log" >&2; fail "TERN_ALLOW_ANONYMOUS=true: no warning in the log"; }
stop_check "$NAME-nohttp"
"$ENGINE" rm -f "${EXTRA_NAMES[@]}" >/dev/null 2>&1
EXTRA_NAMES=()

# TLS as deploy/README.md tells it: certificates mounted read-only, named
# by TERN_TLS_CERT and TERN_TLS_KEY (readable by uid 7421).
step "TLS: certificates mounted, tern over tls:// and HTTPS monitoring"
sh "$REPO/scripts/make-certs.sh" "$WORK/certs" >"$WORK/certs.log" 2>&1 ||
  { cat "$WORK/certs.log" >&2; fail "scripts/make-certs.sh"; }
chmod 0755 "$WORK/certs"
chmod 0644 "$WORK/certs/server.pem" "$WORK/certs/server.key"
EXTRA_NAMES=("$NAME-tls")
"$ENGINE" run -d "${RUN_FLAGS[@]}" --name "$NAME-tls" -p 127.0.0.1::7421 -p 127.0.0.1::8421 \
  -v "$WORK/certs:/etc/tern/tls:ro" -e TERN_TLS_CERT=/etc/tern/tls/server.pem \
  -e TERN_TLS_KEY=/etc/tern/tls/server.key -e TERN_AUTH_TOKEN=image-tls \
  -e TERN_HTTP_TOKEN=image-tls-http "$TAG" \
  >/dev/null 2>"$WORK/run.log" || { cat "$WORK/run.log" >&2; fail "$ENGINE run (tls)"; }
wait_healthy "$NAME-tls" || { "$ENGINE" logs "$NAME-tls" >&2; fail "never healthy with TLS"; }
hostport=$("$ENGINE" port "$NAME-tls" 7421 | head -1)
TLS_URL=tls://127.0.0.1:${hostport##*:}
hostport=$("$ENGINE" port "$NAME-tls" 8421 | head -1)
TLS_HTTP_PORT=${hostport##*:}
TERN_TOKEN=image-tls timeout "$STEP_TIMEOUT" "$TERN_HOST_CLI" -s "$TLS_URL" \
  --tls-ca "$WORK/certs/ca.pem" sub --raw --count 1 'tls.>' >"$WORK/tls-sub.out" 2>&1 &
TLS_SUB=$!
BG_PIDS+=("$TLS_SUB")
got=""
for _ in $(seq 1 "$((STEP_TIMEOUT * 5))"); do
  TERN_TOKEN=image-tls "$TERN_HOST_CLI" -s "$TLS_URL" --tls-ca "$WORK/certs/ca.pem" \
    pub tls.test "over tls" >"$WORK/tls-pub.log" 2>&1 ||
    fail "publish over TLS: $(cat "$WORK/tls-pub.log")"
  if ! kill -0 "$TLS_SUB" 2>/dev/null; then
    got=1
    break
  fi
  sleep 0.2
done
[ -n "$got" ] && wait "$TLS_SUB" && grep -q '^over tls$' "$WORK/tls-sub.out" ||
  fail "subscriber over TLS got: $(cat "$WORK/tls-sub.out")"
printf 'GET /connz HTTP/1.0\r\nAuthorization: Bearer image-tls-http\r\n\r\n' |
  timeout "$STEP_TIMEOUT" openssl s_client -connect "127.0.0.1:$TLS_HTTP_PORT" \
    -CAfile "$WORK/certs/ca.pem" -verify_return_error -quiet >"$WORK/https.out" 2>"$WORK/https.err" ||
  true
head -1 "$WORK/https.out" | grep -q ' 200 ' ||
  fail "HTTPS /connz with the token: $(head -1 "$WORK/https.out") $(tail -2 "$WORK/https.err")"
"$ENGINE" rm -f "${EXTRA_NAMES[@]}" >/dev/null 2>&1
EXTRA_NAMES=()
step "TLS: pub/sub over $TLS_URL and HTTPS /connz on $TLS_HTTP_PORT"

step "SIGTERM with a client connected: exit 0 within ${DRAIN_DEADLINE_S}s"
timeout "$STEP_TIMEOUT" "$TERN_HOST_CLI" -s "$URL" sub 'image.>' \
  >/dev/null 2>"$WORK/drain-sub.err" &
DRAIN_SUB=$!
BG_PIDS+=("$DRAIN_SUB")
sleep 0.3 # let it connect; a client that has not does not change the check
term_start=$(elapsed)
"$ENGINE" kill --signal TERM "$NAME" >/dev/null
code=$(timeout "$((DRAIN_DEADLINE_S + 5))" "$ENGINE" wait "$NAME") ||
  fail "ternd still running $((DRAIN_DEADLINE_S + 5)) s after SIGTERM"
term_ms=$(($(elapsed) - term_start))
[ "$code" = 0 ] || { "$ENGINE" logs "$NAME" >&2; fail "exit code $code after SIGTERM"; }
[ "$term_ms" -le $((DRAIN_DEADLINE_S * 1000)) ] ||
  fail "SIGTERM to exit took $term_ms ms (deadline ${DRAIN_DEADLINE_S}s)"
step "ternd exited 0, $term_ms ms after SIGTERM"

# The whole log, start to exit: no line of the configuration file in it
# (the old entrypoint echoed every INI line, password hash included).
"$ENGINE" logs "$NAME" >"$WORK/all.log" 2>&1
while IFS= read -r line; do
  case $line in '' | '#'*) continue ;; esac
  if grep -qF -- "$line" "$WORK/all.log"; then
    cat "$WORK/all.log" >&2
    fail "the container log holds the config line '$line'"
  fi
done <"$WORK/ternd.conf"
if grep -qF -- '$argon2id' "$WORK/all.log"; then
  fail "a password hash is in the container log"
fi
step "container log: $(wc -l <"$WORK/all.log") lines, none from the config file"
"$ENGINE" rm "$NAME" >/dev/null 2>&1
unset TERN_USER TERN_PASSWORD

# ---- compose -------------------------------------------------------------
compose_cmd=()
if command -v docker-compose >/dev/null; then
  compose_cmd=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
fi
COMPOSE_TOKEN=compose-$$-$RANDOM
compose() {
  TERN_IMAGE=$TAG TERN_HOST_PORT=$COMPOSE_PORT TERN_HTTP_HOST_PORT=$COMPOSE_HTTP_PORT \
    TERN_AUTH_TOKEN=$COMPOSE_TOKEN TERN_HTTP_TOKEN=$COMPOSE_TOKEN-http \
    "${compose_cmd[@]}" -p "$PROJECT" -f "$REPO/deploy/docker-compose.yml" "$@"
}
if [ "${#compose_cmd[@]}" = 0 ]; then
  step "compose: skipped (no docker-compose)"
else
  if [ "$ENGINE" = podman ]; then
    # docker-compose speaks the Docker API: podman serves it on a socket.
    podman system service --time=0 "unix://$WORK/podman.sock" \
      >"$WORK/service.log" 2>&1 &
    SERVICE_PID=$!
    for _ in $(seq 1 100); do
      [ -S "$WORK/podman.sock" ] && break
      sleep 0.05
    done
    export DOCKER_HOST=unix://$WORK/podman.sock
  fi
  # Free host ports, picked now: 7421 and 8421 are taken (see above).
  free_ports
  COMPOSE_PORT=$FREE_A
  COMPOSE_HTTP_PORT=$FREE_B
  step "compose up (${compose_cmd[*]}, host ports $COMPOSE_PORT and $COMPOSE_HTTP_PORT)"
  COMPOSE_UP=1
  # In the background: the clients wait for the broker to be healthy
  # (depends_on: service_healthy), and under podman nothing runs the health
  # check on its own here, so this script does, below.
  compose up -d --no-build >"$WORK/compose.log" 2>&1 &
  UP_PID=$!
  BG_PIDS+=("$UP_PID")
  by_service() {
    "$ENGINE" ps -q --filter "label=com.docker.compose.project=$PROJECT" \
      --filter "label=com.docker.compose.service=$1"
  }
  ternd_cid=""
  for _ in $(seq 1 "$((STEP_TIMEOUT * 10))"); do
    ternd_cid=$(by_service ternd)
    [ -n "$ternd_cid" ] && break
    kill -0 "$UP_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$ternd_cid" ] || { cat "$WORK/compose.log" >&2; fail "compose: the broker never ran"; }
  if [ "$ENGINE" = podman ]; then
    # Not one health check has run yet, so the broker is not healthy: no
    # client may have been started.
    [ -z "$(by_service subscriber)$(by_service publisher)" ] ||
      fail "compose started a client before the broker was healthy (depends_on)"
    wait_healthy "$ternd_cid" || { "$ENGINE" logs "$ternd_cid" >&2; fail "compose: the broker never became healthy"; }
  fi
  timeout 120 tail --pid="$UP_PID" -f /dev/null ||
    { cat "$WORK/compose.log" >&2; fail "compose up still waiting after 120 s"; }
  wait "$UP_PID" || { cat "$WORK/compose.log" >&2; fail "compose up"; }
  http_code=$(exec 3<>"/dev/tcp/127.0.0.1/$COMPOSE_HTTP_PORT" &&
    printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3 && head -n 1 <&3) ||
    fail "compose: nothing on the monitoring port 127.0.0.1:$COMPOSE_HTTP_PORT"
  case $http_code in *' 200 '*) ;; *) fail "compose: /healthz said '$http_code'" ;; esac
  step "compose: waiting for the subscriber to print a message"
  got=""
  for _ in $(seq 1 "$((STEP_TIMEOUT * 2))"); do
    if compose logs --no-color subscriber 2>/dev/null | grep 'demo.greeting: hello [0-9]' >/dev/null; then
      got=1
      break
    fi
    sleep 0.5
  done
  [ -n "$got" ] || { compose logs --no-color >&2; fail "the compose subscriber received nothing"; }
  # And from the host, through the compose broker's published port.
  TERN_TOKEN=$COMPOSE_TOKEN "$TERN_HOST_CLI" -s "127.0.0.1:$COMPOSE_PORT" sub --raw --count 1 'demo.>' \
    >"$WORK/compose-sub.out" 2>&1 ||
    fail "host subscriber on the compose broker: $(cat "$WORK/compose-sub.out")"
  grep -q '^hello [0-9]' "$WORK/compose-sub.out" ||
    fail "host subscriber on the compose broker got: $(cat "$WORK/compose-sub.out")"
  step "compose: stop and down"
  # Stop everything (clients first, in reverse dependency order) before
  # reading the broker's exit code: stopping the broker alone would send
  # the clients into their restart loop.
  ternd_cid=$(compose ps -q ternd)
  compose stop -t 15 >>"$WORK/compose.log" 2>&1 ||
    { cat "$WORK/compose.log" >&2; fail "compose stop"; }
  code=$("$ENGINE" inspect --format '{{.State.ExitCode}}' "$ternd_cid")
  [ "$code" = 0 ] || fail "the compose broker exited with $code"
  compose down -t 15 >>"$WORK/compose.log" 2>&1 ||
    { cat "$WORK/compose.log" >&2; fail "compose down"; }
  COMPOSE_UP=""
  step "compose: subscriber got the publisher's messages; broker stopped with 0; down"
fi

# ---- the compose cluster -------------------------------------------------
# deploy/docker-compose.cluster.yml: three nodes with client and route
# authentication (secure defaults), a round trip from a subscriber on node
# 1 to a publisher on node 3, both on the host.
CL_TOKEN=cl-$$-$RANDOM
cluster_compose() {
  TERN_IMAGE=$TAG TERN_AUTH_TOKEN=$CL_TOKEN TERN_CLUSTER_TOKEN=$CL_TOKEN-routes \
    TERN_HTTP_TOKEN=$CL_TOKEN-http \
    TERN_HOST_PORT_1=${CL_PORTS[0]} TERN_HOST_PORT_2=${CL_PORTS[1]} \
    TERN_HOST_PORT_3=${CL_PORTS[2]} TERN_HTTP_HOST_PORT_1=${CL_PORTS[3]} \
    TERN_HTTP_HOST_PORT_2=${CL_PORTS[4]} TERN_HTTP_HOST_PORT_3=${CL_PORTS[5]} \
    "${compose_cmd[@]}" -p "$PROJECT-cl" \
    -f "$REPO/deploy/docker-compose.cluster.yml" "$@"
}
routes_up_of() { # HTTP_PORT -> the count of routes up, or -1
  local body
  body=$(exec 3<>"/dev/tcp/127.0.0.1/$1" &&
    printf 'GET /routez HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n' \
      "$CL_TOKEN-http" >&3 && cat <&3) || { echo -1; return; }
  echo "$body" | grep -oE '"routes_up":[0-9]+' | grep -oE '[0-9]+$' || echo -1
}
if [ "${#compose_cmd[@]}" = 0 ]; then
  step "compose cluster: skipped (no docker-compose)"
else
  CL_PORTS=()
  for _ in 1 2 3; do
    free_ports
    CL_PORTS+=("$FREE_A" "$FREE_B")
  done
  # Clients on the first three, monitoring on the last three.
  CL_PORTS=("${CL_PORTS[0]}" "${CL_PORTS[2]}" "${CL_PORTS[4]}" \
    "${CL_PORTS[1]}" "${CL_PORTS[3]}" "${CL_PORTS[5]}")
  # Without the tokens compose refuses before anything starts.
  if env -u TERN_AUTH_TOKEN -u TERN_CLUSTER_TOKEN TERN_IMAGE=$TAG \
    "${compose_cmd[@]}" -p "$PROJECT-cl" \
    -f "$REPO/deploy/docker-compose.cluster.yml" config >"$WORK/cl-config.log" 2>&1; then
    fail "compose cluster: accepted without TERN_AUTH_TOKEN and TERN_CLUSTER_TOKEN"
  fi
  step "compose cluster up (3 nodes, client ports ${CL_PORTS[*]:0:3})"
  CLUSTER_UP=1
  cluster_compose up -d --no-build >"$WORK/cl-compose.log" 2>&1 ||
    { cat "$WORK/cl-compose.log" >&2; fail "compose cluster up"; }
  for i in 3 4 5; do
    end=$((SECONDS + STEP_TIMEOUT))
    until [ "$(routes_up_of "${CL_PORTS[$i]}")" = 2 ]; do
      [ $SECONDS -lt $end ] || {
        cluster_compose logs --no-color >&2
        fail "compose cluster: node $((i - 2)) never had 2 routes up (now $(routes_up_of "${CL_PORTS[$i]}"))"
      }
      sleep 0.5
    done
  done
  step "compose cluster: every node has its 2 routes (/routez with the monitoring token)"
  # /routez without the token: refused (it lists peers).
  code=$(exec 3<>"/dev/tcp/127.0.0.1/${CL_PORTS[3]}" &&
    printf 'GET /routez HTTP/1.0\r\n\r\n' >&3 && head -n 1 <&3)
  case $code in *' 401 '*) ;; *) fail "compose cluster: /routez without a token said '$code'" ;; esac
  # A client without the token is refused.
  if env -u TERN_TOKEN "$TERN_HOST_CLI" -s "127.0.0.1:${CL_PORTS[0]}" pub demo.x nope \
    >"$WORK/cl-anon.out" 2>&1; then
    fail "compose cluster: a client without the token could publish"
  fi
  # Round trip: subscriber on node 1, publisher on node 3 (interest crosses
  # the route asynchronously: publish until the subscriber has one).
  TERN_TOKEN=$CL_TOKEN "$TERN_HOST_CLI" -s "127.0.0.1:${CL_PORTS[0]}" \
    sub --raw --count 1 'demo.cluster' >"$WORK/cl-sub.out" 2>&1 &
  CL_SUB=$!
  BG_PIDS+=("$CL_SUB")
  end=$((SECONDS + STEP_TIMEOUT))
  while kill -0 "$CL_SUB" 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "compose cluster: node 1's subscriber never got node 3's message"
    TERN_TOKEN=$CL_TOKEN "$TERN_HOST_CLI" -s "127.0.0.1:${CL_PORTS[2]}" \
      pub demo.cluster "across $((SECONDS))" >/dev/null 2>&1 ||
      fail "compose cluster: publish on node 3"
    sleep 0.2
  done
  wait "$CL_SUB" || fail "compose cluster subscriber: $(cat "$WORK/cl-sub.out")"
  grep -q '^across [0-9]' "$WORK/cl-sub.out" ||
    fail "compose cluster subscriber got: $(cat "$WORK/cl-sub.out")"
  step "compose cluster: node 3's message reached node 1's subscriber"
  cluster_compose down -t 15 >>"$WORK/cl-compose.log" 2>&1 ||
    { cat "$WORK/cl-compose.log" >&2; fail "compose cluster down"; }
  CLUSTER_UP=""
  step "compose cluster: down"
fi

total_ms=$(elapsed)
echo "image: $TAG, $((size / 1000000)) MB; build $((build_ms / 1000)) s; whole test $((total_ms / 1000)) s"
echo "test-image: ok"
