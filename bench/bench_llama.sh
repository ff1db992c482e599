#!/usr/bin/env bash
# Training throughput of the Llama-style decoder: tessera (bench/bench_llama.c)
# and the same model in PyTorch (bench/llama_torch.py), same threads, in one
# run; prints one JSON line each and one with the ratio.
# Usage: bench/bench_llama.sh [build-dir]   (env: TESSERA_THREADS, BENCH_STEPS)
# Both sides use libgomp, so OMP_WAIT_POLICY applies to both alike; on a
# shared, oversubscribed host 'passive' avoids spinning threads starving the
# BLAS threads (it is recorded in the ratio line).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
export TESSERA_THREADS=${TESSERA_THREADS:-$(nproc)}
if [ ! -x "$BUILD/bench_llama" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j2 --target bench_llama >/dev/null
fi
ours=$("$BUILD/bench_llama")
echo "$ours"
theirs=$(/usr/bin/python3 bench/llama_torch.py)
echo "$theirs"
/usr/bin/python3 - "$ours" "$theirs" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
import os
print(json.dumps({"bench": "llama_train_ratio", "threads": a["threads"],
                  "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
                  "tessera_tokens_per_s": a["tokens_per_s"], "torch_tokens_per_s": b["tokens_per_s"],
                  "ratio": round(a["tokens_per_s"] / b["tokens_per_s"], 3), "target": 1.2}))
PY
