#!/usr/bin/env bash
# End-to-end tests of GGUF in and out: `tessera lm convert --to gguf` of the
# shipped models/pycode in F32, BF16 and Q8_0, each read back by `lm info`
# and `lm generate --model X.gguf` (the tokenizer from the file): F32 and
# BF16 give the same greedy text as the safetensors original, Q8_0 the same
# as our own q8 for this prompt; corrupt files fail cleanly (exit 1, one
# line naming the file, nothing on stdout), bad flags exit 2.
# Usage: tests/e2e_gguf.sh path/to/tessera   (cwd = repository root)
set -u
BIN=${1:?usage: e2e_gguf.sh path/to/tessera}
M=models/pycode
TMP=$(mktemp -d /tmp/tessera_e2e_gguf.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
P='def fib(n):'

gen() { "$BIN" lm generate --model "$1" --prompt "$P" --max-tokens 24 --temperature 0 "${@:2}" 2>"$TMP/gen.err"; }

gen "$M" >"$TMP/ref.txt" || bad "reference run failed: $(cat "$TMP/gen.err")"
gen "$M" --dtype f32 >"$TMP/ref_f32.txt"
for d in f32 bf16 q8; do
    "$BIN" lm convert --model "$M" --to gguf --dtype "$d" --out "$TMP/m_$d.gguf" 2>"$TMP/conv.err" && ok ||
        bad "convert --dtype $d: $(cat "$TMP/conv.err")"
    want=$d
    [ "$d" = q8 ] && want=q8
    "$BIN" lm info --model "$TMP/m_$d.gguf" --json >"$TMP/info.json" 2>/dev/null &&
        grep -q "\"dtype\":\"$want\"" "$TMP/info.json" && grep -q '"vocab_size":4096' "$TMP/info.json" && ok ||
        bad "info on the $d GGUF: $(cat "$TMP/info.json")"
done
# .gguf output is recognised from the suffix too
"$BIN" lm convert --model "$M" --dtype bf16 --out "$TMP/suffix.gguf" 2>/dev/null &&
    cmp -s "$TMP/suffix.gguf" "$TMP/m_bf16.gguf" && ok || bad "--out X.gguf without --to differs from --to gguf"

gen "$TMP/m_f32.gguf" >"$TMP/f32.txt" && cmp -s "$TMP/f32.txt" "$TMP/ref_f32.txt" && ok ||
    bad "F32 GGUF text differs: $(cat "$TMP/f32.txt")"
gen "$TMP/m_bf16.gguf" >"$TMP/bf16.txt" && cmp -s "$TMP/bf16.txt" "$TMP/ref.txt" && ok ||
    bad "BF16 GGUF text differs: $(cat "$TMP/bf16.txt")"
gen "$M" --dtype q8 >"$TMP/ref_q8.txt"
gen "$TMP/m_q8.gguf" >"$TMP/q8.txt" && cmp -s "$TMP/q8.txt" "$TMP/ref_q8.txt" && ok ||
    bad "Q8_0 GGUF text differs from our q8: $(cat "$TMP/q8.txt") vs $(cat "$TMP/ref_q8.txt")"
# GGUF -> GGUF is the identity for BF16
"$BIN" lm convert --model "$TMP/m_bf16.gguf" --to gguf --out "$TMP/again.gguf" 2>/dev/null &&
    cmp -s "$TMP/again.gguf" "$TMP/m_bf16.gguf" && ok || bad "BF16 GGUF -> GGUF is not byte-identical"

# corrupt files: exit 1, one line naming the file, no stdout
corrupt() {
    local label=$1 f=$2
    "$BIN" lm generate --model "$f" --prompt "$P" --max-tokens 4 >"$TMP/c.out" 2>"$TMP/c.err"
    local rc=$?
    [ $rc -eq 1 ] && ok || bad "$label: exit $rc (want 1)"
    [ ! -s "$TMP/c.out" ] && ok || bad "$label: wrote to stdout"
    grep -q "error: .*$(basename "$f")" "$TMP/c.err" && [ "$(grep -c 'error' "$TMP/c.err")" -eq 1 ] && ok ||
        bad "$label: message: $(cat "$TMP/c.err")"
}
head -c 100000 "$TMP/m_bf16.gguf" >"$TMP/trunc.gguf"
corrupt "truncated" "$TMP/trunc.gguf"
printf 'GGUF\003\000\000\000\377\377\377\377\377\377\377\377\001\000\000\000\000\000\000\000' >"$TMP/lying.gguf"
corrupt "lying tensor count" "$TMP/lying.gguf"
head -c 4096 /dev/urandom >"$TMP/noise.gguf"
corrupt "random bytes" "$TMP/noise.gguf"
: >"$TMP/empty.gguf"
corrupt "empty file" "$TMP/empty.gguf"
# a model without a tokenizer: the message says what to pass
"$BIN" lm convert --random dim=32,layers=1,heads=2,hidden=64,vocab=300,seq=32 --to gguf --out "$TMP/r.gguf" \
    >/dev/null 2>"$TMP/r.err"
[ $? -eq 1 ] && grep -q -- "--tokenizer" "$TMP/r.err" && ok || bad "--random to GGUF without a tokenizer: $(cat "$TMP/r.err")"
"$BIN" lm convert --random dim=32,layers=1,heads=2,hidden=64,vocab=4200,seq=32 --to gguf \
    --tokenizer "$M/tokenizer.json" --out "$TMP/r.gguf" 2>/dev/null && ok || bad "--random with --tokenizer"
"$BIN" lm generate --model "$TMP/r.gguf" --prompt "$P" --max-tokens 4 --temperature 0 >/dev/null 2>&1 && ok ||
    bad "random model with a padded tokenizer does not run"
# usage errors
"$BIN" lm convert --model "$M" --to onnx --out "$TMP/x" >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--to onnx is not a usage error"
"$BIN" lm convert --model "$M" --tokenizer "$M/tokenizer.json" --out "$TMP/x.safetensors" >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--tokenizer without GGUF output is not a usage error"
[ ! -e "$TMP/x.safetensors" ] && ok || bad "a failed convert left a file"

echo "e2e_gguf: $pass passed, $fails failed"
[ $fails -eq 0 ]
