#!/usr/bin/env bash
# Inference throughput of `tessera lm`: decode tokens/s against the memory
# bandwidth bound, prefill GFLOPS against sgemm, and the batch-cost curve
# (one forward over n = 1..64 tokens relative to n = 1), with the limits
# measured in the same run. Models: stories260K (llama2.c) and a random
# dim-384, 6-layer, vocab-4096 model written by `tessera lm convert
# --random`, each in f32, bf16 and q8; one JSON object per line.
# Usage: bench/bench_lm.sh [build-dir]   (env: TESSERA_THREADS, LM_BENCH_BIG=1
# adds a dim-1024, 8-layer model whose weights do not fit the L3 cache)
# On a shared host the per-step median is the headline figure; best and
# mean are printed beside it. OMP_WAIT_POLICY=passive (default here) keeps
# spinning workers from starving other tenants and each other.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
export TESSERA_THREADS=${TESSERA_THREADS:-$(nproc)}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
if [ ! -x "$BUILD/tessera" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j2 --target tessera_cli >/dev/null
fi
BIN=$BUILD/tessera
TMP=$(mktemp -d /tmp/tessera_bench_lm.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
S260=../shared/data/llama2c/stories260K.bin
models=()
[ -f "$S260" ] && models+=("$S260")
"$BIN" lm convert --random dim=384,layers=6,heads=6,hidden=1024,vocab=4096,seq=1024,tied=0 \
  --dtype f32 --out "$TMP/rand384.safetensors" 2>/dev/null
models+=("$TMP/rand384.safetensors")
if [ "${LM_BENCH_BIG:-0}" = 1 ]; then
  "$BIN" lm convert --random dim=1024,layers=8,heads=16,hidden=2816,vocab=8192,seq=1024,tied=0 \
    --dtype f32 --out "$TMP/rand1024.safetensors" 2>/dev/null
  models+=("$TMP/rand1024.safetensors")
fi
for m in "${models[@]}"; do
  for dt in f32 bf16 q8; do
    "$BIN" lm bench --model "$m" --dtype "$dt" --json
  done
done
echo "{\"bench\":\"lm_host\",\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"threads\":$TESSERA_THREADS,\"omp_wait_policy\":\"$OMP_WAIT_POLICY\"}"
