#!/usr/bin/env bash
# Install tessera's Debian dependencies and build it (Release, in build/).
# Everything it prints goes to stderr.
# Usage: scripts/setup.sh            (root, or a user with sudo)
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
PKGS="build-essential cmake pkg-config libopenblas-dev libopenblas-openmp-dev libcjson-dev zlib1g-dev libpng-dev libmicrohttpd-dev libgdal-dev gdal-bin curl dataset-fashion-mnist libpython3.11-stdlib libpython3.11-testsuite python3"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
    echo "setup: missing Debian packages:$missing; run this as root (sudo is not installed)" >&2
    exit 1
  fi
  echo "setup: installing$missing" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >&2   # progress on stderr: stdout is left to the command after it
echo "setup: built build/tessera" >&2
