#!/bin/sh
# Installs a container engine from Debian's packages for deploy/test-image.sh:
# podman with runc, docker-compose (driven through podman's Docker API), the
# dnsname CNI plugin (compose services find each other by name) and
# debootstrap (the local debian:bookworm-slim base, as no registry is
# reachable here). Run as root (or with sudo). Safe to run again.
set -eu
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq podman runc docker-compose debootstrap \
  golang-github-containernetworking-plugin-dnsname >/dev/null
echo "install-engine: done"
