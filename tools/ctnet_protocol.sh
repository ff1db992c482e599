#!/bin/sh
# The measured protocol of docs/ctnet.md: for each MovieLens pair, every
# method's lr and epochs are chosen on the validation periods (3 seeds, a
# 2x2 grid), then every method runs on the evaluation periods with 5 seeds.
# usage: tools/ctnet_protocol.sh OUTDIR [PAIR...]   (default: big-animation big-horror)
# CTNET_DATA=DIR picks the MovieLens folder (default: ml-latest-small; e.g.
# ../shared/data/movielens-100k); one OUTDIR per data set.
# Writes OUTDIR/validation.jsonl, OUTDIR/eval.jsonl, OUTDIR/auc_PAIR.png,
# OUTDIR/load.txt (time and load average at each step) and OUTDIR/tables.md
# (tools/ctnet_tables.py). Needs ../shared/data. Run it with
# OMP_NUM_THREADS=1 on a shared machine.
set -eu
out=${1:?usage: tools/ctnet_protocol.sh OUTDIR [PAIR...]}
shift
pairs=${*:-big-animation big-horror}
bin=${TSR_BIN:-build/tessera}
data=${CTNET_DATA:-../shared/data/movielens-latest-small}
mkdir -p "$out"
export TESSERA_QUIET=1
load() { echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) $*" >> "$out/load.txt"; }
for pair in $pairs; do
    load "validation $pair"
    for lr in 0.001 0.003; do
        for ep in 3 10; do
            "$bin" ctnet eval --data "$data" --pair "$pair" --validation --seeds 3 --lr "$lr" --epochs "$ep" \
                --retrain-epochs "$ep" --json >> "$out/validation.jsonl"
        done
    done
    load "evaluation $pair"
    "$bin" ctnet eval --data "$data" --pair "$pair" --tuned "$out/validation.jsonl" --seeds 5 --json \
        --plot "$out/auc_$pair.png" >> "$out/eval.jsonl"
done
load done
python3 "$(dirname "$0")/ctnet_tables.py" "$out" > "$out/tables.md"
