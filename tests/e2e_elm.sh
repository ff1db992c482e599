#!/usr/bin/env bash
# End-to-end tests of `tessera elm` (run by ctest with the binary as $1):
# help, usage errors (exit 2, one line), a tiny BAE and VQ tokenizer run,
# encode -> codes with the documented dtypes/shapes, decode -> a PNG grid,
# eval --json, and bad inputs (wrong codes, missing tokenizer) exiting 1.
set -u
. "$(dirname "$0")/checks.sh"
e2e_init e2e_elm "$@"
if ! "$BIN" elm --help >/dev/null 2>&1; then
    echo "SKIP: this tessera binary has no 'elm' family registered"
    exit 0
fi

expect 0 "$BIN" elm --help;                   has "$T/out" "tokenizer-train"; has "$T/out" "decode"
expect 0 "$BIN" elm tokenizer-train --help;   has "$T/out" "--kind"; has "$T/out" "--codebook"
expect 0 "$BIN" elm encode --help;            has "$T/out" "--tokenizer"
expect 0 "$BIN" elm eval --help;              has "$T/out" "--json"
expect 2 "$BIN" elm tokenizer-train --kind ae;         has "$T/err" "--kind"; lines "$T/err" 1
expect 2 "$BIN" elm tokenizer-train --bits 0;          lines "$T/err" 1
expect 2 "$BIN" elm encode --out "$T/c.safetensors";   has "$T/err" "--tokenizer"
expect 2 "$BIN" elm encode --tokenizer x --out y --split val; has "$T/err" "--split"
expect 2 "$BIN" elm decode --tokenizer x;              lines "$T/err" 1
expect 1 "$BIN" elm eval --tokenizer "$T/none.safetensors"; has "$T/err" "tessera: error:"

TINY="--ch 4 --bits 4 --epochs 1 --batch 32 --train-limit 128 --warmup 1 --log-every 0"
for kind in bae vq; do
    expect 0 "$BIN" elm tokenizer-train --kind $kind $TINY --codebook 16 --out "$T/$kind.safetensors" --json
    has "$T/out" '"finished": true'
    expect 0 "$BIN" elm encode --tokenizer "$T/$kind.safetensors" --limit 20 --out "$T/$kind.codes.safetensors" --json
    has "$T/out" '"n": 20'
    expect 0 "$BIN" elm decode --tokenizer "$T/$kind.safetensors" --codes "$T/$kind.codes.safetensors" --out "$T/$kind.png" --cols 5
    if [ "$(head -c 4 "$T/$kind.png" | tail -c 3)" = "PNG" ]; then ok; else bad "$kind.png is not a PNG"; fi
    expect 0 "$BIN" elm eval --tokenizer "$T/$kind.safetensors" --limit 64 --json --grid "$T/$kind.grid.png"
    has "$T/out" '"psnr"'; has "$T/out" '"fd"'; has "$T/out" '"recall"'; lines "$T/out" 1
    [ -s "$T/$kind.grid.png" ] && ok || bad "no eval grid for $kind"
done
# dtypes and shapes in the codes files (safetensors header is JSON)
has "$T/bae.codes.safetensors" '"bits":{"dtype":"U8","shape":\[20,7,7,4\]'
has "$T/vq.codes.safetensors" '"ids":{"dtype":"I32","shape":\[20,7,7\]'
# codes of the other kind do not fit: exit 1, no PNG
expect 1 "$BIN" elm decode --tokenizer "$T/bae.safetensors" --codes "$T/vq.codes.safetensors" --out "$T/x.png"
has "$T/err" "expected 'bits'"
[ ! -e "$T/x.png" ] && ok || bad "a failed decode left x.png"

# stage 2: generators over the tiny codes (bits K=4 -> token_each 1, 2, 4)
expect 0 "$BIN" elm train --help;  has "$T/out" "--token-each"; has "$T/out" "--kind"
expect 0 "$BIN" elm sample --help; has "$T/out" "--cfg-schedule"; has "$T/out" "--top-p"
expect 2 "$BIN" elm train --kind gpt --codes x;  has "$T/err" "--kind"; lines "$T/err" 1
expect 2 "$BIN" elm train --kind ar;             has "$T/err" "--codes"
expect 2 "$BIN" elm sample --cfg-schedule cos;   has "$T/err" "--cfg-schedule"
expect 1 "$BIN" elm sample --model "$T/none.safetensors" --out "$T/s.png"; has "$T/err" "tessera: error:"
expect 0 "$BIN" elm encode --tokenizer "$T/bae.safetensors" --split train --limit 64 --out "$T/bae.train.safetensors"
GEN="--dim 16 --layers 1 --heads 2 --hidden 16 --epochs 1 --batch 16 --warmup 1 --log-every 0"
for kind in ar mlm; do
    expect 0 "$BIN" elm train --kind $kind --codes "$T/bae.train.safetensors" --token-each 2 $GEN --out "$T/g_$kind.safetensors" --json
    has "$T/out" '"finished": true'; has "$T/out" '"params"'
    expect 0 "$BIN" elm sample --model "$T/g_$kind.safetensors" --n 3 --out "$T/g_$kind.png" --steps 4 --json
    has "$T/out" '"n": 30'; has "$T/out" '"images_per_s"'
    [ "$(head -c 4 "$T/g_$kind.png" | tail -c 3)" = "PNG" ] && ok || bad "g_$kind.png is not a PNG"
    expect 0 "$BIN" elm eval --model "$T/g_$kind.safetensors" --n-per-class 2 --real 100 --json
    has "$T/out" '"accuracy"'; has "$T/out" '"fd"'; has "$T/out" '"precision"'; lines "$T/out" 1
done
# the KV cache and recomputation give the same tokens
expect 0 "$BIN" elm sample --model "$T/g_ar.safetensors" --class 3 --n 4 --compare-cache --json
has "$T/out" '"identical_tokens": true'
expect 1 "$BIN" elm train --kind ar --codes "$T/bae.train.safetensors" --token-each 3 $GEN --out "$T/g3.safetensors"
has "$T/err" "sub-tokens"
expect 0 "$BIN" elm analyze --codes "$T/bae.codes.safetensors" --model "$T/g_ar.safetensors" --limit 4 --attn-png "$T/attn.png" --json
has "$T/out" '"image_kl_unigram"'; has "$T/out" '"attn_distance"'
[ -s "$T/attn.png" ] && ok || bad "no attention PNG"

e2e_done
