#!/usr/bin/env bash
# End-to-end test of `tessera lm generate --draft ngram`: greedy decoding
# with prompt-lookup drafts prints exactly what plain greedy decoding prints
# (the golden stories260K text included), for several prompts, lengths and
# stop strings; misuse is a usage error (exit 2).
# Usage: tests/e2e_decode.sh path/to/tessera   (cwd = repository root)
set -u
BIN=${1:?usage: e2e_decode.sh path/to/tessera}
D=../shared/data/llama2c
M=$D/stories260K.bin
T=$D/tok512.bin
if [ ! -r "$M" ] || [ ! -r "$T" ]; then
    echo "SKIP: $M not found"
    exit 0
fi
if ! "$BIN" lm generate --help 2>&1 | grep -q -- "--draft"; then
    echo "SKIP: this tessera build has no 'lm generate --draft'"
    exit 0
fi
TMP=$(mktemp -d /tmp/tessera_e2e_decode.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

"$BIN" lm generate --model "$M" --tokenizer "$T" --prompt "Once upon a time" --steps 256 --temperature 0 \
    --draft ngram >"$TMP/out.txt" 2>/dev/null && ok || bad "golden run with --draft ngram failed"
cmp -s "$TMP/out.txt" "$D/golden_once_upon_a_time.txt" && ok || bad "--draft ngram differs from the golden text"

same() {
    "$BIN" lm generate --model "$M" --tokenizer "$T" --temperature 0 "$@" >"$TMP/a.txt" 2>/dev/null
    local ra=$?
    "$BIN" lm generate --model "$M" --tokenizer "$T" --temperature 0 --draft ngram "$@" >"$TMP/b.txt" 2>/dev/null
    local rb=$?
    [ $ra -eq 0 ] && [ $rb -eq 0 ] && cmp -s "$TMP/a.txt" "$TMP/b.txt" && ok || bad "--draft ngram differs: $*"
}
same --prompt "Lily and Tom went to the park. Lily and Tom" --steps 300
same --prompt "The cat sat" --max-tokens 40
same --prompt "" --steps 50 --draft-k 3
same --prompt "Once upon a time" --stop "red ball" --threads 1
same --prompt "The cat sat on the mat" --steps 5
same --prompt "One day" --steps 0

"$BIN" lm generate --model "$M" --tokenizer "$T" --prompt "x" --draft ngram >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--draft without --temperature 0 is not a usage error"
"$BIN" lm generate --model "$M" --tokenizer "$T" --prompt "x" --temperature 0 --draft medusa >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "an unknown --draft is not a usage error"

echo "e2e_decode: $pass passed, $fails failed"
[ $fails -eq 0 ]
