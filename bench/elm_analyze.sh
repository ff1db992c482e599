#!/usr/bin/env bash
# The paper's two analyses on the study's models (docs/elm.md): token
# randomness of the image codes next to the BPE tokens of the code corpus,
# and attention locality per layer and model size with attention-map PNGs.
#   bench/elm_analyze.sh [OUT]   (OUT: the study's folder, default /tmp/elm)
set -u
BIN=${BIN:-build/tessera}
OUT=${1:-/tmp/elm}
export TESSERA_THREADS=1 OMP_WAIT_POLICY=passive
RUN="nice -n 10 $BIN"
[ -f "$OUT/py.train.tok" ] || $RUN lm tokenize --tokenizer models/pycode/tokenizer.json \
    --out-train "$OUT/py.train.tok" --out-val "$OUT/py.val.tok" >/dev/null
: >"$OUT/kl.jsonl"
for e in 1 2 4; do
    $RUN elm analyze --codes "$OUT/bae.train.safetensors" --token-each $e --bpe-tokens "$OUT/py.train.tok" --json |
        jq -c --arg t "bae_$e" '{codes: $t} + .' >>"$OUT/kl.jsonl"
done
$RUN elm analyze --codes "$OUT/vq.train.safetensors" --bpe-tokens "$OUT/py.train.tok" --json |
    jq -c '{codes: "vq"} + .' >>"$OUT/kl.jsonl"
: >"$OUT/attn.jsonl"
for name in bae_ar_2x8_S bae_ar_2x8_M bae_mlm_2x8_S bae_mlm_2x8_M vq_ar_S vq_ar_M; do
    tok=${name%%_*}
    [ -f "$OUT/elm_$name.safetensors" ] || continue
    $RUN elm analyze --codes "$OUT/$tok.test.safetensors" --model "$OUT/elm_$name.safetensors" --limit 200 \
        --query 25 --attn-png "$OUT/attn_$name.png" --json | jq -c --arg n "$name" '{name: $n} + .' >>"$OUT/attn.jsonl"
done
