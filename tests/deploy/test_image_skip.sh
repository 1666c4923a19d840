#!/usr/bin/env bash
# tests/deploy/test_image_skip.sh: deploy/test-image.sh says "skipped"
# (exit $TERN_SKIP_STATUS) when the container engine installs and answers
# `info` but cannot import or run a container on this machine, and fails
# (exit 1) when the engine works and the image build does not. A fake
# podman first on PATH plays each case, with the errors seen in a chroot.
# No container is made; about a second.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tern-image-skip.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/bin"

cat >"$WORK/bin/podman" <<'FAKE'
#!/bin/sh
# A podman whose step $FAKE_FAIL fails as it does where containers cannot run.
remount='Error: crun: remount /, flags: 0x44000: invalid argument: OCI runtime error'
case $1 in
  --version) echo "podman version 0.0.0-fake" ;;
  info) [ "$FAKE_FAIL" != info ] || { echo 'Error: cannot set up namespace' >&2; exit 125; } ;;
  import)
    cat >/dev/null
    [ "$FAKE_FAIL" != import ] || { echo "$remount" >&2; exit 125; }
    echo sha256:0 ;;
  run) [ "$FAKE_FAIL" != run ] || { echo "$remount" >&2; exit 126; } ;;
  build)
    echo 'STEP 5/20: RUN cmake --build /build'
    echo 'Error: building at STEP "RUN cmake --build /build": exit status 2'
    exit 1 ;;
  *) ;;
esac
exit 0
FAKE
# Host programs the script wants: a CLI it never reaches, and a ternd that
# never binds (so nothing listens on 7421/8421 because of this test).
printf '#!/bin/sh\nexit 1\n' >"$WORK/bin/tern"
cp "$WORK/bin/tern" "$WORK/bin/ternd"
chmod +x "$WORK/bin/podman" "$WORK/bin/tern" "$WORK/bin/ternd"

failed=0
# expect FAIL_AT STATUS TEXT: runs the image test with the fake failing at
# FAIL_AT; wants exit STATUS and TEXT in its output.
expect() {
  local at=$1 want=$2 text=$3 rc=0
  FAKE_FAIL=$at TERN_ENGINE=podman TERN_SKIP_STATUS=77 TERND="$WORK/bin/ternd" \
    PATH="$WORK/bin:$PATH" bash "$REPO/deploy/test-image.sh" "$WORK/bin/tern" \
    >"$WORK/out" 2>&1 || rc=$?
  if [ "$rc" = "$want" ] && grep -qF -- "$text" "$WORK/out"; then
    echo "ok: podman failing at '$at': exit $rc, '$text'"
  else
    echo "FAILED: podman failing at '$at': exit $rc (want $want and '$text'):"
    sed 's/^/  | /' "$WORK/out"
    failed=1
  fi
}
expect info 77 "skipped: no container engine"
expect import 77 "skipped: podman cannot import an image here: $(printf '%s' 'Error: crun: remount /')"
expect run 77 "skipped: podman cannot run a container here: Error: crun: remount /"
# The engine works: a broken build is the project's failure, not a skip.
expect build 1 "FAIL: image build"
if grep -q '^skipped' "$WORK/out"; then
  echo "FAILED: a build failure was reported as skipped"
  failed=1
fi
exit "$failed"
