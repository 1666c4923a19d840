#!/bin/sh
# Installs what tern needs to build and test on Debian 12, from Debian's own
# packages. Run as root (or with sudo). Safe to run again.
#   --build  only what building ternd, libtern and tern needs (README command
#            1, with -DTERN_BUILD_TESTS=OFF): no test tools, no help2man.
set -eu
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
# libc6-dev is only a "recommends" of gcc, so --no-install-recommends needs it
# named; libmsgpack-dev pulls boost headers through libmsgpack-cxx-dev (disk only).
# libinih (config file), http_parser (monitoring) and libsodium (password
# hashes) are ternd's operations dependencies; libssl-dev (OpenSSL 3) is
# TLS for ternd and libtern, openssl (the command) makes the test certificates
# (scripts/make-certs.sh); libxxhash (XXH3) checksums the stream store's
# records. valgrind runs ternd under
# memcheck; clang + libclang-rt-14-dev (only a "recommends" of clang) build
# the libFuzzer targets (scripts/test.sh). help2man makes the manual pages
# from the programs' --help (cmake/man.cmake). systemd (systemd-analyze) and
# python3-yaml check the unit and the manifests in deploy/ (the ctest entry
# deploy_manifests); nothing is started by them. python3-msgpack is the Python
# client's one dependency; pytest and pytest-asyncio run its tests
# (client/python; redis for its benchmark is installed by its bench script).
BUILD_ONLY="cmake make gcc libc6-dev pkg-config libuv1-dev libmsgpack-dev
  libinih-dev libhttp-parser-dev libsodium-dev libssl-dev libxxhash-dev"
if [ "${1:-}" = "--build" ]; then
  # shellcheck disable=SC2086 # a list of package names
  $SUDO apt-get install -y -qq --no-install-recommends $BUILD_ONLY >/dev/null
  echo "install-deps: done (build only)"
  exit 0
fi
$SUDO apt-get install -y -qq --no-install-recommends \
  cmake make gcc libc6-dev pkg-config \
  libuv1-dev libmsgpack-dev libcriterion-dev \
  libinih-dev libhttp-parser-dev libsodium-dev libssl-dev libxxhash-dev openssl \
  valgrind clang libclang-rt-14-dev help2man systemd python3-yaml \
  python3-msgpack python3-pytest python3-pytest-asyncio \
  iproute2 curl >/dev/null
echo "install-deps: done"
