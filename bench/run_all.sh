#!/usr/bin/env bash
# Every benchmark, one after the other, on an otherwise idle machine; one
# file of JSON lines per benchmark in OUT (default bench-out/).
# Usage: bench/run_all.sh [build-dir] [out-dir]
set -u
cd "$(dirname "$0")/.."
B=${1:-build}
O=${2:-bench-out}
mkdir -p "$O"
"$B/bench_matmul" > "$O/matmul.jsonl"
"$B/bench_attention" > "$O/attention.jsonl"
THREADS=2 bash bench/bench_classify.sh "$B/tessera" > "$O/classify_t2.jsonl"
THREADS=1 bash bench/bench_classify.sh "$B/tessera" > "$O/classify_t1.jsonl"
bash bench/bench_llama.sh "$B" > "$O/llama_t2.jsonl"
OMP_WAIT_POLICY=passive bash bench/bench_llama.sh "$B" > "$O/llama_t2_passive.jsonl"
for dt in bf16 q8 f32; do
  "$B/tessera" lm bench --model models/pycode --dtype "$dt" --json > "$O/lm_pycode_$dt.json"
done
if [ -f ../shared/data/llama2c/stories260K.bin ]; then
  "$B/tessera" lm bench --model ../shared/data/llama2c/stories260K.bin --json > "$O/lm_stories260K.json"
fi
# speculative decoding: plain vs SPACE vs n-gram on the held-out prompts
if [ -d models/pycode-space ]; then
  "$B/tessera" space bench --model models/pycode-space --prompts bench/prompts_pyval.jsonl --max-tokens 256 \
    --threads 2 --json > "$O/space_t2.json"
  "$B/tessera" space bench --model models/pycode-space --prompts bench/prompts_pyval.jsonl --max-tokens 256 \
    --threads 1 --json > "$O/space_t1.json"
fi
echo "results in $O/" >&2
