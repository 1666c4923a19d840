#!/bin/sh
# Installs what tern needs to build and test on Debian 12, from Debian's own
# packages. Run as root (or with sudo). Safe to run again.
set -eu
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
# libc6-dev is only a "recommends" of gcc, so --no-install-recommends needs it
# named; libmsgpack-dev pulls boost headers through libmsgpack-cxx-dev (disk only).
# libinih (config file), http_parser (monitoring) and libsodium (password
# hashes) are ternd's operations dependencies. valgrind runs ternd under
# memcheck; clang + libclang-rt-14-dev (only a "recommends" of clang) build
# the libFuzzer targets (scripts/test.sh). help2man makes the manual pages
# from the programs' --help (cmake/man.cmake). python3-msgpack is the Python
# client's one dependency; pytest and pytest-asyncio run its tests
# (client/python; redis for its benchmark is installed by its bench script).
$SUDO apt-get install -y -qq --no-install-recommends \
  cmake make gcc libc6-dev pkg-config \
  libuv1-dev libmsgpack-dev libcriterion-dev \
  libinih-dev libhttp-parser-dev libsodium-dev \
  valgrind clang libclang-rt-14-dev help2man \
  python3-msgpack python3-pytest python3-pytest-asyncio >/dev/null
echo "install-deps: done"
