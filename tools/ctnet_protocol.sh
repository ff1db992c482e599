#!/bin/bash
# The measured protocol of docs/ctnet.md. For each MovieLens pair:
#  A. every method on the validation periods (3 seeds) over the same grid,
#     lr {0.001, 0.003, 0.01} x epochs per update {3, 10};
#  B. five more settings each, at its stage-A best, for ctnet (adapter std
#     0, 0.01, 0.1; source epochs 1, 5) and for the baseline with the best
#     validation AUC (weight decay 0, 1e-4, 1e-3, 1e-2, and source epochs 5
#     for fine-tune, else weight decay 0.03);
#  diagnostics (not used for any choice) at ctnet's chosen setting: target-only
#     and the ablations at the same setting, the adapters fed zeros instead of
#     the source states, and adapter std 0 .. 1;
#  then the evaluation periods once, 5 seeds, each method at the setting of
#     its best validation line (`eval --tuned`).
# usage: tools/ctnet_protocol.sh OUTDIR [PAIR...]   (default: big-animation big-horror)
# CTNET_DATA=DIR picks the MovieLens folder (default: ml-latest-small; e.g.
# ../shared/data/movielens-100k); one OUTDIR per data set.
# Writes OUTDIR/validation.jsonl (stages A and B: the --tuned file),
# OUTDIR/diagnostics.jsonl, OUTDIR/eval.jsonl, OUTDIR/auc_PAIR.png,
# OUTDIR/load.txt (time and load average at each step) and OUTDIR/tables.md
# (tools/ctnet_tables.py). Needs ../shared/data. Run it with
# OMP_NUM_THREADS=1 on a shared machine.
set -eu
out=${1:?usage: tools/ctnet_protocol.sh OUTDIR [PAIR...]}
shift
pairs=${*:-big-animation big-horror}
bin=${TSR_BIN:-build/tessera}
tools=$(dirname "$0")
data=${CTNET_DATA:-../shared/data/movielens-latest-small}
mkdir -p "$out"
export TESSERA_QUIET=1
V="$out/validation.jsonl"
D="$out/diagnostics.jsonl"
load() { echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) $*" >> "$out/load.txt"; }
val() { "$bin" ctnet eval --data "$data" --pair "$pair" --validation --seeds 3 --json "$@"; }
for pair in $pairs; do
    load "stage A $pair"
    for lr in 0.001 0.003 0.01; do
        for ep in 3 10; do
            val --lr $lr --epochs $ep --retrain-epochs $ep >> "$V"
        done
    done
    load "stage B $pair"
    read -r lr ep se wd as auc < <(python3 "$tools/ctnet_best.py" "$V" "$pair" ctnet)
    for a in 0 0.01 0.1; do val --methods ctnet --lr $lr --epochs $ep --adapter-std $a >> "$V"; done
    for s in 1 5; do val --methods ctnet --lr $lr --epochs $ep --source-epochs $s >> "$V"; done
    bl=$(python3 "$tools/ctnet_best.py" "$V" "$pair" --baseline)
    read -r lr ep se wd as auc < <(python3 "$tools/ctnet_best.py" "$V" "$pair" "$bl")
    load "best baseline on validation: $bl (lr $lr, $ep epochs)"
    b="--methods $bl --lr $lr --epochs $ep --retrain-epochs $ep"
    for w in 0 0.0001 0.001 0.01; do val $b --weight-decay $w >> "$V"; done
    if [ "$bl" = fine-tune ]; then val $b --source-epochs 5 >> "$V"; else val $b --weight-decay 0.03 >> "$V"; fi
    load "diagnostics $pair"
    read -r lr ep se wd as auc < <(python3 "$tools/ctnet_best.py" "$V" "$pair" ctnet)
    c="--lr $lr --epochs $ep --retrain-epochs $ep --source-epochs $se --weight-decay $wd"
    val $c --adapter-std $as --methods ctnet,target-only,ctnet-no-adapters,ctnet-no-gate,ctnet-random-adapters >> "$D"
    val $c --adapter-std $as --methods ctnet,ctnet-no-adapters --zero-source-states >> "$D"
    for a in 0 0.001 0.01 0.1 1; do val $c --adapter-std $a --methods ctnet >> "$D"; done
    load "evaluation $pair"
    "$bin" ctnet eval --data "$data" --pair "$pair" --tuned "$V" --seeds 5 --json \
        --plot "$out/auc_$pair.png" >> "$out/eval.jsonl"
done
load done
python3 "$tools/ctnet_tables.py" "$out" > "$out/tables.md"
