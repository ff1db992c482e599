#!/usr/bin/env bash
# Training throughput of the Fashion-MNIST CNN: tessera vs PyTorch (Debian's
# python3-torch, bench/classify_torch.py), same network, batch, data and
# thread count, in the same run. Both skip their first 2 steps (allocation,
# oneDNN primitive set-up) and time the next STEPS steps.
# usage: bench/bench_classify.sh [path/to/tessera]   env: THREADS, STEPS, BATCH, DATA
# Prints one JSON line per implementation and one with the ratio.
set -eu
BIN=${1:-build/tessera}
THREADS=${THREADS:-$(nproc)}
STEPS=${STEPS:-32}
BATCH=${BATCH:-128}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/tsr_bench_classify.XXXXXX)
trap 'rm -rf "$T"' EXIT
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
flags=$(grep -m1 'CMAKE_C_FLAGS_RELEASE' "$HERE/../CMakeLists.txt" | sed 's/.*"\(.*\)".*/\1/')

# tessera: STEPS+2 steps logged every 2; the windows after the first give
# the steady rate (equal images per window: harmonic mean of the rates)
n=$(( (STEPS + 2) * BATCH ))
"$BIN" classify train --data "$DATA" --train-limit "$n" --batch "$BATCH" --epochs 1 --warmup 10 \
    --test-limit -1 --ckpt-every 0 --log-every 2 --threads "$THREADS" --out "$T/m.safetensors" \
    >"$T/out" 2>"$T/err" || { cat "$T/err" >&2; exit 1; }
ts=$(awk '/img\/s/ { for (i = 1; i <= NF; i++) if ($i == "img/s") r = $(i-1);
                     k++; if (k > 1) { s += 1 / r; m++ } }
          END { if (m) printf "%.1f", m / s; else print 0 }' "$T/err")
kern=$("$BIN" --version | sed 's/.*kernels: \([a-z0-9]*\).*/\1/')
loss=$(awk '/img\/s/ { for (i = 1; i <= NF; i++) if ($i == "loss") l = $(i+1) } END { print l }' "$T/err")
printf '{"bench": "classify_train", "impl": "tessera", "cpu": "%s", "threads": %d, "batch": %d, "steps": %d, "images_per_s": %s, "last_loss": %s, "kernels": "%s", "build": "Release %s"}\n' \
    "$cpu" "$THREADS" "$BATCH" "$STEPS" "$ts" "$loss" "$kern" "$flags"

tp=$(/usr/bin/python3 "$HERE/classify_torch.py" --data "$DATA" --threads "$THREADS" --batch "$BATCH" \
    --steps "$STEPS" --warmup-steps 2)
echo "$tp"
pt=$(echo "$tp" | sed 's/.*"images_per_s": \([0-9.]*\).*/\1/')
awk -v a="$ts" -v b="$pt" -v th="$THREADS" 'BEGIN { printf "{\"bench\": \"classify_train\", \"threads\": %d, \"ratio_tessera_over_pytorch\": %.3f, \"target\": 1.5}\n", th, a / b }'
