#!/usr/bin/env bash
# End-to-end tests of `tessera bigr` (run by ctest with the binary as $1):
# help, usage errors (exit 2, one line), a code cache of a few images, a
# tiny training run stopped and resumed, sample/eval/probe with --json,
# the five zero-shot applications writing PNGs, and bad inputs exiting 1.
set -u
. "$(dirname "$0")/checks.sh"
e2e_init e2e_bigr "$@"
if ! "$BIN" bigr --help >/dev/null 2>&1; then
    echo "SKIP: this tessera binary has no 'bigr' family registered"
    exit 0
fi

expect 0 "$BIN" bigr --help;              has "$T/out" "probe"; has "$T/out" "enrich"
expect 0 "$BIN" bigr train --help;        has "$T/out" "--target"
expect 0 "$BIN" bigr sample --help;       has "$T/out" "--order"
expect 2 "$BIN" bigr train --target eps;  has "$T/err" "--target"; lines "$T/err" 1
expect 2 "$BIN" bigr sample --order zigzag; has "$T/err" "--order"; lines "$T/err" 1
expect 2 "$BIN" bigr inpaint --box 3,2,0,7; has "$T/err" "--box"
expect 2 "$BIN" bigr train --dim 10 --heads 3; lines "$T/err" 1
expect 1 "$BIN" bigr sample --model "$T/none.safetensors"; has "$T/err" "tessera: error:"

C="$T/codes.safetensors" M="$T/m.safetensors"
expect 0 "$BIN" bigr codes --limit 96 --out "$C" --json;  has "$T/out" '"train": 96'
TINY=(--codes "$C" --out "$M" --dim 16 --layers 1 --heads 2 --hidden 16 --tc-hidden 8 --tc-blocks 1
      --diffusion-steps 16 --epochs 1 --batch 16 --warmup 1 --log-every 0)
expect 0 "$BIN" bigr train "${TINY[@]}" --stop-after 3 --json; has "$T/out" '"steps": 3'
expect 0 "$BIN" bigr train "${TINY[@]}" --resume --json;         has "$T/out" '"finished": true'
expect 1 "$BIN" bigr train "${TINY[@]}" --resume --lr 0.5;       has "$T/err" "cannot resume"
G=(--model "$M" --iters 2 --steps 2)
expect 0 "$BIN" bigr sample "${G[@]}" --n 1 --out "$T/s.png" --json; has "$T/out" '"images_per_s"'; png "$T/s.png"
expect 0 "$BIN" bigr sample "${G[@]}" --n 1 --order raster --deterministic --out "$T/s2.png"; png "$T/s2.png"
expect 0 "$BIN" bigr eval "${G[@]}" --n 1 --real 50 --json; has "$T/out" '"class_accuracy"'; has "$T/out" '"frechet_distance"'
expect 0 "$BIN" bigr probe --model "$M" --codes "$C" --epochs 1 --train-limit 64 --json; has "$T/out" '"best"'; has "$T/out" '"bae_bits"'
for app in inpaint outpaint edit enrich; do
    expect 0 "$BIN" bigr "$app" "${G[@]}" --codes "$C" --n 3 --real 50 --out "$T/$app.png" --json; has "$T/out" '"app"'; png "$T/$app.png"
done
expect 0 "$BIN" bigr interpolate "${G[@]}" --n 1 --points 2 --out "$T/i.png"; png "$T/i.png"
expect 1 "$BIN" bigr probe --model "$M" --codes "$T/none.safetensors" --tokenizer "$T/none.safetensors"; has "$T/err" "tessera: error:"

e2e_done
