#!/bin/sh
# The matched-budget comparison of docs/higen.md: every docID variant and
# loss trained with the same model, steps, batch and schedule, the tuning
# subset of the train queries held out (train --keep-best keeps the
# evaluated step with the lowest loss on it), then evaluated on the
# validation queries; beam widths compared on the tuning subset only.
#
# usage: tools/higen_ablation.sh OUTDIR [debian|movielens|beam]...   (default: debian movielens beam)
#   debian:    OUTDIR/deb: the shipped tokenizer and encoder, the indexes of
#              higen, nci, higen-noeff, higen-nocat, dsi, and a generator
#              each for higen, higen-ce, higen-noeff, higen-nocat, nci
#              (dsi with HIGEN_DSI=1; GENS="dsi" trains that one alone):
#              dim 128, 2 layers, MLP 256, 3,000 steps x 64 (STEPS=), lr 2e-3,
#              --index-span 0.5
#   movielens: OUTDIR/ml: encoder (440 steps, dim 64), the five indexes and
#              a generator each for every variant plus one without the
#              user's profile (OUTDIR/ml-noprof): dim 64, MLP 128, 1,000
#              steps x 64 (ML_STEPS=); BM25 and the bi-encoder too
#   beam:      OUTDIR/deb's higen and higen-cluster at beam 10/20/50 on the
#              tuning subset (appstream, virtual, debtags)
# Writes OUTDIR/results.jsonl (one eval JSON a line), OUTDIR/train.jsonl
# (one train summary a line) and OUTDIR/load.txt. Needs ../shared/data and
# a built build/tessera. Run it niced with OMP_NUM_THREADS=1 on a shared
# machine; about 10 minutes a Debian generator at a load average of 10 on
# the Intel Xeon of docs/higen.md, 2 minutes a MovieLens one.
set -eu
out=${1:?usage: tools/higen_ablation.sh OUTDIR [debian|movielens|beam]...}
shift
parts=${*:-debian movielens beam}
bin=${TSR_BIN:-build/tessera}
ship=${HIGEN_MODEL:-models/higen-debian}
ml_data=../shared/data/movielens-latest-small
steps=${STEPS:-3000}
ml_steps=${ML_STEPS:-1000}
mkdir -p "$out"
load() { echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) $*" >>"$out/load.txt"; }
ev() { "$bin" higen eval --threads 1 --json "$@" 2>/dev/null >>"$out/results.jsonl"; }
gen() { # model-dir steps every variant [extra flags]
    m=$1 st=$2 every=$3 v=$4
    shift 4
    load "train $v $* ($m)"
    "$bin" higen train --what generator --model "$m" --variant "$v" --steps "$st" --batch 64 --lr 2e-3 \
        --eval-every "$every" --keep-best --threads 1 --quiet --json --log "$m/$v.train.jsonl" "$@" >>"$out/train.jsonl"
}
for part in $parts; do
    case $part in
    debian)
        d=$out/deb
        mkdir -p "$d" && cp "$ship/tokenizer.json" "$ship/encoder.safetensors" "$d/"
        for v in higen nci higen-noeff higen-nocat dsi; do
            "$bin" higen index --model "$d" --variant "$v" --threads 1 --json >>"$out/train.jsonl" 2>/dev/null
        done
        vs=${GENS:-higen higen-ce higen-noeff higen-nocat nci}
        [ "${HIGEN_DSI:-0}" = 1 ] && vs="$vs dsi"
        for v in $vs; do
            gen "$d" "$steps" 500 "$v" --dim 128 --hidden 256 --warmup 200 --index-span 0.5
            load "eval $v"
            for c in appstream virtual debtags known-item; do
                ev --model "$d" --construction "$c" --split valid --method "$v" --beam 20
            done
        done
        ;;
    movielens)
        d=$out/ml
        mkdir -p "$d" "$out/ml-noprof" && cp "$ship/tokenizer.json" "$d/"
        "$bin" higen train --what encoder --catalog "$ml_data" --model "$d" --steps 440 --dim 64 --hidden 128 \
            --lr 1e-3 --threads 1 --quiet --json >>"$out/train.jsonl"
        for v in higen nci higen-noeff higen-nocat dsi; do
            "$bin" higen index --catalog "$ml_data" --model "$d" --variant "$v" --threads 1 --json \
                >>"$out/train.jsonl" 2>/dev/null
        done
        cp "$d/tokenizer.json" "$d/encoder.safetensors" "$d/higen.index.safetensors" "$out/ml-noprof/"
        for v in higen higen-ce higen-noeff higen-nocat nci dsi; do
            gen "$d" "$ml_steps" 125 "$v" --catalog "$ml_data" --dim 64 --hidden 128 --warmup 100
        done
        gen "$out/ml-noprof" "$ml_steps" 125 higen --catalog "$ml_data" --dim 64 --hidden 128 --warmup 100 --no-profile
        load "eval movielens"
        for meth in bm25 biencoder higen higen-cluster higen-ce higen-noeff higen-nocat nci dsi; do
            ev --catalog "$ml_data" --model "$d" --method "$meth" --construction movielens --split valid --beam 20
        done
        # the same validation queries without their users: the profile's share
        "$bin" higen queries --catalog "$ml_data" --construction movielens --split valid --out "$out/ml-valid.jsonl" 2>/dev/null
        sed 's/,"user":[0-9]*//' "$out/ml-valid.jsonl" >"$out/ml-valid-nouser.jsonl"
        ev --catalog "$ml_data" --model "$d" --method biencoder --queries "$out/ml-valid-nouser.jsonl"
        ev --catalog "$ml_data" --model "$out/ml-noprof" --method higen --queries "$out/ml-valid-nouser.jsonl" --beam 20
        ;;
    beam)
        load "beam sweep"
        for b in 10 20 50; do
            for meth in higen higen-cluster; do
                for c in appstream virtual debtags; do
                    ev --model "$out/deb" --construction "$c" --split tune --method "$meth" --beam "$b"
                done
            done
        done
        ;;
    *)
        echo "unknown part '$part' (debian, movielens, beam)" >&2
        exit 2
        ;;
    esac
done
load done
