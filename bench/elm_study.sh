#!/usr/bin/env bash
# The ELM design-space study at small scale (docs/elm.md): tokenizer {BAE,
# VQ} x model {AR, MLM} x vocabulary split {1x16, 2x8, 4x4} (BAE only; VQ
# codes are one 1024-way token) x two model sizes, then top-k and CFG sweeps
# for the best configuration, the full 10k-sample protocol for it and for
# the VQ+AR baseline of equal size, and KV cache vs recomputation.
# One job at a time, one thread each. Results: one JSON line per run in
# $OUT/study.jsonl (train figures merged with eval figures).
#
#   bench/elm_study.sh grid            # the grid (codes are encoded once, cached)
#   bench/elm_study.sh best NAME       # top-k and CFG sweeps for run NAME
#   bench/elm_study.sh phase2          # best run: sweeps, 10k protocol (+ baseline), KV cache; then 1x16
# (the study here ran `SKIP_1X16=1 grid` then `phase2`)
#
# Each grid run trains 1 epoch over the 60k training code maps (937 steps
# of batch 64); the 1x16 runs (a 65536-way head, ~30x the cost per step)
# are compute-matched instead: trained (full cosine) on the first 64 x N
# code maps, N the steps that fit the time
# the 2x8 run of the same size took (set by S1X16_STEPS / M1X16_STEPS).
# Grid rows are scored on 500 samples (50 per class) against the 10k test
# images; the best run and the baseline on 10k samples.
set -u
BIN=${BIN:-build/tessera}
OUT=${OUT:-/tmp/elm}
EPOCHS=${EPOCHS:-1}
NPC=${NPC:-50}
S1X16_STEPS=${S1X16_STEPS:-35}
M1X16_STEPS=${M1X16_STEPS:-60}
mkdir -p "$OUT"
export TESSERA_THREADS=1 OMP_WAIT_POLICY=passive
RUN="nice -n 10 $BIN"
RES="$OUT/study.jsonl"

size_flags() { # S: ~0.15M body params, M: ~0.4M
    case $1 in
    S) echo "--dim 64 --layers 2 --heads 4 --hidden 176" ;;
    M) echo "--dim 96 --layers 3 --heads 4 --hidden 256" ;;
    esac
}

encode() {
    for k in bae vq; do
        for s in train test; do
            [ -f "$OUT/$k.$s.safetensors" ] && continue
            $RUN elm encode --tokenizer models/fmnist_$k.safetensors --split $s \
                --out "$OUT/$k.$s.safetensors" --threads 1 --json || exit 1
        done
    done
}

# run NAME TOK KIND SPLIT SIZE [extra train flags]
run() {
    local name=$1 tok=$2 kind=$3 split=$4 size=$5; shift 5
    local model="$OUT/elm_$name.safetensors"
    if ! grep -q "\"name\": \"$name\"" "$RES" 2>/dev/null; then
        $RUN elm train --kind "$kind" --codes "$OUT/$tok.train.safetensors" \
            --tokenizer models/fmnist_$tok.safetensors --token-each "$split" $(size_flags "$size") \
            --epochs "$EPOCHS" --log-every 200 --out "$model" --threads 1 --json "$@" \
            >"$OUT/$name.train.json" 2>"$OUT/$name.train.log" || { echo "train $name failed" >&2; return 1; }
        $RUN elm eval --model "$model" --n-per-class "$NPC" --threads 1 --json \
            >"$OUT/$name.eval.json" 2>"$OUT/$name.eval.log" || { echo "eval $name failed" >&2; return 1; }
        jq -c --arg name "$name" --arg size "$size" --arg split "$split" \
            -s '{name: $name, size: $size, split: $split} + (.[0] | {steps, train_seconds: .seconds, train_images_per_s: .images_per_s, nll}) + .[1]' \
            "$OUT/$name.train.json" "$OUT/$name.eval.json" >>"$RES"
        tail -1 "$RES"
    fi
}

grid() {
    encode
    for size in S M; do
        run "vq_ar_$size" vq ar 1 $size
        run "bae_ar_2x8_$size" bae ar 2 $size
        run "bae_ar_4x4_$size" bae ar 4 $size
        run "vq_mlm_$size" vq mlm 1 $size
        run "bae_mlm_2x8_$size" bae mlm 2 $size
        run "bae_mlm_4x4_$size" bae mlm 4 $size
    done
    [ "${SKIP_1X16:-0}" = 1 ] || grid1x16
}

# 1x16: compute-matched; the masked 1x16 models are scored on NPC_1X16
# samples per class (MaskGIT evaluates the 65536-way head at every masked
# position of every step, ~7x the AR cost)
# DEADLINE (epoch seconds, or in the file $OUT/deadline): start no 1x16 run after it
late() {
    local d=${DEADLINE:-}
    [ -z "$d" ] && [ -f "$OUT/deadline" ] && d=$(cat "$OUT/deadline")
    [ -n "$d" ] && [ "$(date +%s)" -ge "$d" ]
}
grid1x16() {
    late && return
    run bae_ar_1x16_S bae ar 1 S --train-limit $((64 * S1X16_STEPS)) --warmup 5
    late && return
    run bae_ar_1x16_M bae ar 1 M --train-limit $((64 * M1X16_STEPS)) --warmup 5
    late && return
    NPC=${NPC_1X16:-20} run bae_mlm_1x16_S bae mlm 1 S --train-limit $((64 * S1X16_STEPS)) --warmup 5
    late && return
    NPC=${NPC_1X16:-20} run bae_mlm_1x16_M bae mlm 1 M --train-limit $((64 * M1X16_STEPS)) --warmup 5
}

# sweeps on one trained run: top-k and CFG (scale x schedule), 500 samples
best() {
    local name=$1 model="$OUT/elm_$1.safetensors" sw="$OUT/sweep.jsonl"
    for k in 0 4 16 64; do
        $RUN elm eval --model "$model" --n-per-class "$NPC" --top-k $k --threads 1 --json |
            jq -c --arg name "$name" --arg sweep topk '{name: $name, sweep: $sweep} + .' >>"$sw"
    done
    for cs in "1 constant" "2 constant" "4 constant" "2 linear" "4 linear" "6 linear"; do
        set -- $cs
        $RUN elm eval --model "$model" --n-per-class "$NPC" --cfg $1 --cfg-schedule $2 --threads 1 --json |
            jq -c --arg name "$name" --arg sweep cfg '{name: $name, sweep: $sweep} + .' >>"$sw"
    done
}

# full protocol (10k samples, 1000 per class) with the default sampling flags
full() {
    local name=$1
    $RUN elm eval --model "$OUT/elm_$name.safetensors" --n-per-class 1000 --threads 1 --json "${@:2}" |
        jq -c --arg name "$name" '{name: $name, protocol: "10k"} + .' >>"$OUT/full.jsonl"
}

# after the grid (without 1x16): the best run by FD, its sweeps, the full
# protocol for it and for the VQ+AR baseline of its size with the sweep's
# best setting (lowest FD among settings with accuracy >= 0.85, else the
# most accurate), the KV-cache timing, then the 1x16 rows
phase2() {
    local best size flags sw="$OUT/sweep.jsonl"
    best=$(jq -s -r 'min_by(.fd) | .name' "$RES")
    size=$(jq -s -r 'min_by(.fd) | .size' "$RES")
    echo "best: $best" >&2
    best "$best"
    flags=$(jq -s -r '(map(select(.accuracy >= 0.85)) | if length > 0 then min_by(.fd) else empty end) // (max_by(.accuracy))
        | "--cfg \(.cfg) --cfg-schedule \(.cfg_schedule) --top-k \(.top_k)"' "$sw")
    echo "best setting: $flags" >&2
    echo "$best $flags" >"$OUT/best.txt"
    full "$best" $flags
    [ "$best" = "vq_ar_$size" ] || full "vq_ar_$size" $flags
    # the best BAE run too, for BAE vs VQ on the full protocol
    bbest=$(jq -s -r 'map(select(.tokenizer == "bae")) | min_by(.fd) | .name' "$RES")
    [ "$bbest" = "$best" ] || full "$bbest" $flags
    $RUN elm sample --model "$OUT/elm_$best.safetensors" --n 10 $flags --compare-cache --threads 1 --json \
        --out "$OUT/best_grid.png" >"$OUT/kv.json"
    grid1x16
}

case ${1:-grid} in
grid) grid ;;
grid1x16) encode; grid1x16 ;;
phase2) phase2 ;;
best) best "$2" ;;
full) full "${@:2}" ;;
*) echo "usage: $0 grid | grid1x16 | phase2 | best NAME | full NAME [eval flags]" >&2; exit 2 ;;
esac
