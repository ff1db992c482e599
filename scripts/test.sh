#!/usr/bin/env bash
# Build and run tessera's test suite: the Release build, then the same unit
# tests under AddressSanitizer + UndefinedBehaviorSanitizer.
# Usage: scripts/test.sh   (after scripts/setup.sh has installed the packages)
set -euo pipefail
cd "$(dirname "$0")/.."
export TESSERA_THREADS=${TESSERA_THREADS:-2}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
(cd build && ctest --output-on-failure)
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTSR_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)" >/dev/null
# unit tests only under the sanitizers (the end-to-end scripts run above)
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure -R '^test_')
