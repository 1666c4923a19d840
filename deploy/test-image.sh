#!/usr/bin/env bash
# deploy/test-image.sh [PATH-TO-HOST-tern]
#
# Builds the image from deploy/Dockerfile as it is, then checks it for real:
#  - ternd runs as PID 1 under a non-root user;
#  - under a 256 MiB memory limit, ternd's default max_pending_total is a
#    quarter of it (ternd reads its cgroup), not of the host's RAM;
#  - a subscriber and a publisher on the host (build/bin/tern) talk through
#    the container's published port;
#  - the HEALTHCHECK passes, and fails while ternd is stopped (SIGSTOP);
#  - SIGTERM ends ternd with exit code 0 within the drain deadline, while a
#    client is connected;
#  - deploy/docker-compose.yml comes up, its subscriber receives its
#    publisher's messages, and it goes down again.
#
# Uses docker if a daemon answers, else podman (with the containers.conf
# this machine needs, and podman's Docker API socket for docker-compose).
# Without either it prints "skipped: no container engine" and the reason,
# and exits 0 (or $TERN_SKIP_STATUS: scripts/test.sh sets 77 to tell a skip
# from a pass).
# Without a debian:bookworm-slim image and no registry, the base is made
# with debootstrap (root only). Prints the image size and the time taken.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
TERN_HOST_CLI=${1:-${TERN_CLI:-$REPO/build/bin/tern}}
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
BG_PIDS=()

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
  if [ -n "$ENGINE" ]; then
    "$ENGINE" rm -f "$NAME" >/dev/null 2>&1
  fi
  if [ -n "$SERVICE_PID" ]; then
    kill "$SERVICE_PID" 2>/dev/null
    wait "$SERVICE_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- pick an engine ------------------------------------------------------
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  ENGINE=docker
  BUILD_FLAGS=()
elif command -v podman >/dev/null; then
  # The defaults fail on this sandbox's rlimits and hybrid cgroups
  # (shared/TOOLCHAIN.md); harmless elsewhere.
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
  echo "skipped: no container engine (neither a docker daemon nor podman answers)"
  [ -s "$WORK/podman-info.log" ] && sed 's/^/  podman info: /' "$WORK/podman-info.log" | tail -5
  exit "${TERN_SKIP_STATUS:-0}"
fi
[ -x "$TERN_HOST_CLI" ] ||
  fail "no host tern CLI at $TERN_HOST_CLI: build it (cmake --build build --target tern_cli) or pass its path"
step "engine: $ENGINE ($("$ENGINE" --version | head -1))"

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
  */healthz*) ;;
  *) fail "the image has no HEALTHCHECK on /healthz ($health)" ;;
esac

# ---- run it --------------------------------------------------------------
step "run"
RUN_FLAGS=()
if [ "$ENGINE" = podman ]; then
  # podman schedules health checks with systemd timers, absent here; the
  # checks below run the image's command on demand instead.
  RUN_FLAGS=(--health-interval=disable)
fi
# Settings both ways: a mounted file, and the environment, which wins.
printf '%s\n' '# test' TERN_MAX_PAYLOAD=65536 TERN_LOG_LEVEL=warn >"$WORK/ternd.env"
chmod 644 "$WORK/ternd.env"
# A memory limit, which ternd must size its pending-bytes cap by (a quarter
# of it), not by the host's RAM.
"$ENGINE" run -d "${RUN_FLAGS[@]}" --name "$NAME" --memory 256m -p 127.0.0.1::7421 \
  -v "$WORK/ternd.env:/etc/tern/ternd.env:ro" -e TERN_LOG_LEVEL=info "$TAG" \
  >/dev/null 2>"$WORK/run.log" || { cat "$WORK/run.log" >&2; fail "$ENGINE run"; }
hostport=$("$ENGINE" port "$NAME" 7421 | head -1)
PORT=${hostport##*:}
URL=127.0.0.1:$PORT

# Bounded wait for the broker to answer (no ready-fd across a container).
ready=""
for _ in $(seq 1 100); do
  if "$ENGINE" exec "$NAME" tern-ping 127.0.0.1:7421 1000 >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.1
done
[ -n "$ready" ] || { "$ENGINE" logs "$NAME" >&2; fail "ternd did not answer in the container"; }

pid1=$("$ENGINE" exec "$NAME" cat /proc/1/comm)
[ "$pid1" = ternd ] || fail "PID 1 is '$pid1', not ternd"
uid=$("$ENGINE" exec "$NAME" id -u)
[ "$uid" != 0 ] || fail "ternd runs as root"
args=$("$ENGINE" exec "$NAME" cat /proc/1/cmdline | tr '\0' ' ')
case " $args" in
  *" --max-payload=65536 "*) ;;
  *) fail "the mounted ternd.env was not applied: $args" ;;
esac
case " $args" in
  *" --log-level=info "*) ;;
  *) fail "TERN_LOG_LEVEL from the environment did not win over the file: $args" ;;
esac
step "PID 1: $args(uid $uid), published on $URL"
# (To a file first: grep -q closing the pipe early would fail it under
# pipefail.)
"$ENGINE" logs "$NAME" >"$WORK/start.log" 2>&1
grep -q "max_pending_total 64 MiB: .* of 256 MiB, the cgroup's memory limit" "$WORK/start.log" ||
  { cat "$WORK/start.log" >&2; fail "ternd did not size max_pending_total by the container's 256 MiB limit"; }
step "max_pending_total: a quarter of the container's 256 MiB memory limit"

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
# Engine-side run of the image's own HEALTHCHECK command.
health_run() {
  if [ "$ENGINE" = podman ]; then
    podman healthcheck run "$NAME" >/dev/null 2>&1
  else
    # docker runs it on its own schedule: wait for the next verdict.
    local want=$1 status=""
    for _ in $(seq 1 40); do
      status=$(docker inspect --format '{{.State.Health.Status}}' "$NAME")
      [ "$status" = "$want" ] && return 0
      sleep 0.5
    done
    return 1
  fi
}
if [ "$ENGINE" = podman ]; then
  health_run healthy || fail "health check failed on a running broker"
else
  health_run healthy || fail "docker never reported healthy"
fi
# SIGSTOP from the host: inside its namespace PID 1 ignores what it has no
# handler for. A stopped ternd still has its socket listening, so this
# tells a real round trip from a port check.
host_pid=$("$ENGINE" inspect --format '{{.State.Pid}}' "$NAME")
kill -STOP "$host_pid"
if [ "$ENGINE" = podman ]; then
  if health_run; then
    kill -CONT "$host_pid"
    fail "health check passed with ternd stopped"
  fi
else
  health_run unhealthy || { kill -CONT "$host_pid"; fail "docker never reported unhealthy"; }
fi
kill -CONT "$host_pid"
health_run healthy || fail "health check did not recover after SIGCONT"

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
"$ENGINE" rm "$NAME" >/dev/null 2>&1

# ---- compose -------------------------------------------------------------
compose_cmd=()
if command -v docker-compose >/dev/null; then
  compose_cmd=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
fi
compose() {
  TERN_IMAGE=$TAG TERN_HOST_PORT=$COMPOSE_PORT \
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
  # A free host port: 7421 may be taken by a broker on this machine.
  COMPOSE_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 27421)
  step "compose up (${compose_cmd[*]}, host port $COMPOSE_PORT)"
  COMPOSE_UP=1
  compose up -d --no-build >"$WORK/compose.log" 2>&1 ||
    { cat "$WORK/compose.log" >&2; fail "compose up"; }
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
  "$TERN_HOST_CLI" -s "127.0.0.1:$COMPOSE_PORT" sub --raw --count 1 'demo.>' \
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

total_ms=$(elapsed)
echo "image: $TAG, $((size / 1000000)) MB; build $((build_ms / 1000)) s; whole test $((total_ms / 1000)) s"
echo "test-image: ok"
