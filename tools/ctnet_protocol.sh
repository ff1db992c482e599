#!/bin/bash
# The measured protocol of docs/ctnet.md. For each MovieLens pair:
#  search, on the validation periods only (more of them than the default
#     protocol's three: ml-latest-small scores 2000-2006, ml-100k weeks 3-11),
#     5 seeds per setting, the same grid for CTNet and the five baselines:
#     lr {0.001, 0.003, 0.01} x epochs per update {3, 10}; with CTNET_CARRY=1
#     the same grid again with --carry-optimizer for every continual method
#     (retrain starts from scratch each period: nothing to carry), and each
#     method's best line, carried or not, is its setting; with
#     CTNET_SCALES="X ..." CTNet's grid again with each --adapter-scale X
#     (also carried when CTNET_CARRY=1 or CTNET_SCALES_CARRY=1), and when
#     CTNet's best line then has scale 1 the pair stops there (nothing
#     changed: no evaluation is run); with CTNET_NORMS="rms match" likewise
#     CTNet's grid again with each --adapter-norm (fresh AdamW, scale 1), and
#     when CTNet's best line then has no norm the pair stops there; with
#     CTNET_COMBOS="rms:0.1 match:0.01 ..." CTNet's grid again with each
#     --adapter-norm:--adapter-scale pair (also carried when
#     CTNET_COMBOS_CARRY=1), and when CTNet's best line then is not such a
#     combination the pair stops there;
#  the three ablations get one validation line each at CTNet's chosen setting;
#  diagnostics (not used for any choice) at CTNet's setting: the adapters fed
#     zeros instead of the source states;
#  then the evaluation periods of the default protocol once, 5 seeds, each
#     method at the setting of its best validation line (`eval --tuned`;
#     with CTNET_MAX_COST=F, CTNet at its best line among those whose
#     validation train_seconds_per_period is at most F times retrain's chosen
#     line's: `--tuned-max-cost F`, the issue's bound is 0.2), and
#  the cost at matched epochs: retrain at CTNet's lr and epochs (2 seeds; cost
#     only, its AUC chooses nothing).
# usage: tools/ctnet_protocol.sh OUTDIR [PAIR...]   (default: big-animation big-horror)
# CTNET_DATA=DIR picks the MovieLens folder (default: ml-latest-small; e.g.
# ../shared/data/movielens-100k); one OUTDIR per data set. CTNET_VAL overrides
# the validation periods' flags (default: --first 1999 --val-periods 7 on
# ml-latest-small, --first 2 --val-periods 9 on ml-100k). CTNET_SEARCH_FROM=FILE
# takes the grid's lines of the pair from an earlier validation.jsonl (same
# binary behaviour, same flags) instead of running them again: the plain
# grid, its carried lines unless CTNET_CARRY=1 runs them again, and any
# adapter-scale and adapter-norm lines.
# Writes OUTDIR/validation.jsonl (the --tuned file), OUTDIR/diagnostics.jsonl,
# OUTDIR/eval.jsonl, OUTDIR/cost.jsonl, OUTDIR/auc_PAIR.png, OUTDIR/load.txt
# (time and load average at each step) and OUTDIR/tables.md
# (tools/ctnet_tables.py). Needs ../shared/data. Run it with
# OMP_NUM_THREADS=1 on a shared machine.
set -eu
out=${1:?usage: tools/ctnet_protocol.sh OUTDIR [PAIR...]}
shift
pairs=${*:-big-animation big-horror}
bin=${TSR_BIN:-build/tessera}
tools=$(dirname "$0")
data=${CTNET_DATA:-../shared/data/movielens-latest-small}
if [ -z "${CTNET_VAL:-}" ]; then
    if [ -e "$data/ml-100k.inter" ]; then CTNET_VAL="--first 2 --val-periods 9"; else CTNET_VAL="--first 1999 --val-periods 7"; fi
fi
mkdir -p "$out"
export TESSERA_QUIET=1
V="$out/validation.jsonl"
D="$out/diagnostics.jsonl"
M="ctnet,target-only,retrain,fine-tune,joint,cross-domain"
load() { echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) $*" >> "$out/load.txt"; }
# shellcheck disable=SC2086
val() { "$bin" ctnet eval --data "$data" --pair "$pair" $CTNET_VAL --validation --seeds 5 --json "$@"; }
for pair in $pairs; do
    load "search $pair ($CTNET_VAL)"
    if [ -n "${CTNET_SEARCH_FROM:-}" ]; then # the plain grid's lines, not the ablations' or diagnostics'
        skip='"carry_optimizer"'
        if [ "${CTNET_CARRY:-0}" != 1 ]; then skip='"no line has this"'; fi
        grep -F "\"pair\": \"$pair\"" "$CTNET_SEARCH_FROM" | grep -F '"split": "validation"' |
            grep -vF '"zero_source_states"' | grep -vF '"method": "ctnet-' | grep -vF "$skip" >> "$V"
    else
        for lr in 0.001 0.003 0.01; do
            for ep in 3 10; do
                val --methods $M --lr $lr --epochs $ep --retrain-epochs $ep >> "$V"
            done
        done
    fi
    if [ "${CTNET_CARRY:-0}" = 1 ]; then
        load "search with --carry-optimizer $pair"
        for lr in 0.001 0.003 0.01; do
            for ep in 3 10; do
                val --methods ctnet,target-only,fine-tune,joint,cross-domain --lr $lr --epochs $ep --carry-optimizer >> "$V"
            done
        done
    fi
    for sc in ${CTNET_SCALES:-}; do
        load "search ctnet with --adapter-scale $sc $pair"
        for co in 0 1; do
            if [ $co = 1 ] && [ "${CTNET_CARRY:-0}" != 1 ] && [ "${CTNET_SCALES_CARRY:-0}" != 1 ]; then continue; fi
            for lr in 0.001 0.003 0.01; do
                for ep in 3 10; do
                    val --methods ctnet --lr $lr --epochs $ep --adapter-scale "$sc" \
                        $(if [ $co = 1 ]; then echo --carry-optimizer; fi) >> "$V"
                done
            done
        done
    done
    for an in ${CTNET_NORMS:-}; do
        load "search ctnet with --adapter-norm $an $pair"
        for lr in 0.001 0.003 0.01; do
            for ep in 3 10; do
                val --methods ctnet --lr $lr --epochs $ep --adapter-norm "$an" >> "$V"
            done
        done
    done
    for cb in ${CTNET_COMBOS:-}; do
        an=${cb%%:*} sc=${cb#*:}
        load "search ctnet with --adapter-norm $an --adapter-scale $sc $pair"
        for co in 0 1; do
            if [ $co = 1 ] && [ "${CTNET_COMBOS_CARRY:-0}" != 1 ]; then continue; fi
            for lr in 0.001 0.003 0.01; do
                for ep in 3 10; do
                    val --methods ctnet --lr $lr --epochs $ep --adapter-norm "$an" --adapter-scale "$sc" \
                        $(if [ $co = 1 ]; then echo --carry-optimizer; fi) >> "$V"
                done
            done
        done
    done
    mc=()
    if [ -n "${CTNET_MAX_COST:-}" ]; then mc=(--max-cost "$CTNET_MAX_COST"); fi
    if ! best=$(python3 "$tools/ctnet_best.py" "$V" "$pair" ctnet "${mc[@]}"); then
        load "$pair: no ctnet setting (max cost ${CTNET_MAX_COST:-none}): stop"
        continue
    fi
    read -r lr ep se wd as auc slr co asc an <<<"$best"
    if [ -n "${CTNET_SCALES:-}" ] && [ "$asc" = 1 ]; then
        load "$pair: ctnet's best validation line has adapter scale 1 (lr $lr, $ep epochs, carry $co): stop"
        continue
    fi
    if [ -n "${CTNET_NORMS:-}" ] && [ "$an" = none ]; then
        load "$pair: ctnet's best validation line has no adapter norm (lr $lr, $ep epochs, carry $co, scale $asc, auc $auc): stop"
        continue
    fi
    if [ -n "${CTNET_COMBOS:-}" ] && { [ "$an" = none ] || [ "$asc" = 1 ]; }; then
        load "$pair: ctnet's best validation line is no norm-and-scale combination (lr $lr, $ep epochs, carry $co, scale $asc, norm $an, auc $auc): stop"
        continue
    fi
    load "ablations and diagnostics $pair at ctnet's lr $lr, $ep epochs, carry $co, adapter scale $asc, adapter norm $an"
    c="--lr $lr --epochs $ep --retrain-epochs $ep --source-epochs $se --weight-decay $wd --adapter-std $as --source-lr $slr"
    if [ "$co" = 1 ]; then c="$c --carry-optimizer"; fi
    c="$c --adapter-scale $asc --adapter-norm $an"
    val $c --methods ctnet-no-adapters,ctnet-no-gate,ctnet-random-adapters >> "$V"
    val $c --methods ctnet,ctnet-no-adapters --zero-source-states >> "$D"
    load "evaluation $pair"
    "$bin" ctnet eval --data "$data" --pair "$pair" --tuned "$V" --seeds 5 --json \
        $(if [ -n "${CTNET_MAX_COST:-}" ]; then echo --tuned-max-cost "$CTNET_MAX_COST"; fi) \
        --plot "$out/auc_$pair.png" >> "$out/eval.jsonl"
    load "matched cost $pair"
    "$bin" ctnet eval --data "$data" --pair "$pair" $c --methods ctnet,retrain --seeds 2 --json >> "$out/cost.jsonl"
done
load done
if [ -s "$out/eval.jsonl" ]; then python3 "$tools/ctnet_tables.py" "$out" > "$out/tables.md"; fi
