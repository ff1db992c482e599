#!/bin/sh
# The measured protocol of docs/ctnet.md: for each MovieLens pair, every
# method's lr and epochs are chosen on the validation periods (3 seeds, a
# 2x2 grid), then every method runs on the evaluation periods with 5 seeds.
# usage: tools/ctnet_protocol.sh OUTDIR [PAIR...]   (default: big-animation big-horror)
# CTNET_DATA=DIR picks the MovieLens folder (default: ml-latest-small; e.g.
# ../shared/data/movielens-100k); one OUTDIR per data set.
# Writes OUTDIR/validation.jsonl, OUTDIR/eval.jsonl and OUTDIR/auc_PAIR.png. Needs ../shared/data.
set -eu
out=${1:?usage: tools/ctnet_protocol.sh OUTDIR [PAIR...]}
shift
pairs=${*:-big-animation big-horror}
bin=${TSR_BIN:-build/tessera}
data=${CTNET_DATA:-../shared/data/movielens-latest-small}
mkdir -p "$out"
export TESSERA_QUIET=1
for pair in $pairs; do
    for lr in 0.001 0.003; do
        for ep in 3 10; do
            "$bin" ctnet eval --data "$data" --pair "$pair" --validation --seeds 3 --lr "$lr" --epochs "$ep" \
                --retrain-epochs "$ep" --json >> "$out/validation.jsonl"
        done
    done
    "$bin" ctnet eval --data "$data" --pair "$pair" --tuned "$out/validation.jsonl" --seeds 5 --json \
        --plot "$out/auc_$pair.png" >> "$out/eval.jsonl"
done
