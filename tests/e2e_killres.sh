#!/usr/bin/env bash
# Kill anywhere, resume: tests/killres.sh (SIGKILL at random moments, also
# inside checkpoint writes, then --resume until done; files byte-identical
# to a straight run's, metrics log with its records, no torn file) on two
# quick train verbs. Run by ctest with the binary as $1; the other verbs:
# docs/train.md, "Kill anywhere".
set -u
BIN=${1:?usage: e2e_killres.sh path/to/tessera}
T=$(mktemp -d /tmp/tsr_e2e_killres.XXXXXX)
trap 'rm -rf "$T"' EXIT
export TESSERA_QUIET=1
H=$(dirname "$0")/killres.sh
fails=0
if [ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    "$H" "$T/classify" 3 "$BIN" classify train --train-limit 256 --batch 32 --epochs 1 --c1 4 --c2 8 --fc 16 \
        --test-limit 200 --seed 3 --ckpt-every 1 --log-every 1 --eval-every 3 --threads 1 \
        --out @D@/m.safetensors --log @D@/m.jsonl || fails=$((fails + 1))
else
    echo "e2e_killres: Fashion-MNIST not installed; classify skipped"
fi
SRC=/usr/lib/python3.11
if [ -f "$SRC/colorsys.py" ]; then
    mkdir -p "$T/corpus" && cp "$SRC"/{abc,bisect,colorsys,keyword,fnmatch,glob}.py "$T/corpus/" && echo colorsys.py >"$T/val.txt"
    "$BIN" lm tokenizer-train --data "$T/corpus" --val-list "$T/val.txt" --vocab 320 --out "$T/tok.json" --quiet >/dev/null 2>&1 &&
    "$H" "$T/lm" 2 "$BIN" lm train --data "$T/corpus" --val-list "$T/val.txt" --tokenizer "$T/tok.json" --dim 32 --layers 2 \
        --heads 2 --kv-heads 1 --hidden 64 --context 32 --batch 4 --steps 24 --warmup 4 --lr 3e-3 --eval-every 8 \
        --eval-tokens 256 --ckpt-every 1 --log-every 1 --threads 1 --seed 3 --out @D@/lm.safetensors --log @D@/lm.jsonl ||
        fails=$((fails + 1))
else
    echo "e2e_killres: $SRC missing; lm skipped"
fi
[ $fails -eq 0 ]
