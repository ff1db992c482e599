#!/usr/bin/env bash
# End-to-end tests of `tessera lm`: greedy stories260K output must equal
# llama2.c's reference run byte for byte (run stories260K.bin -z tok512.bin
# -t 0 -n 256 -i "Once upon a time"), and bad files must fail cleanly
# (exit 1, a message naming the file, nothing on stdout).
# Usage: tests/e2e_lm.sh path/to/tessera   (cwd = repository root)
set -u
BIN=${1:?usage: e2e_lm.sh path/to/tessera}
D=../shared/data/llama2c
M=$D/stories260K.bin
T=$D/tok512.bin
TMP=$(mktemp -d /tmp/tessera_e2e_lm.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
if ! "$BIN" lm --help 2>/dev/null | grep -q generate; then
    echo "SKIP: this tessera build has no 'lm' command in its command table (src/cli/main.c)"
    exit 0
fi
fails=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# 1. golden: stdout byte for byte, stats on stderr
"$BIN" lm generate --model "$M" --tokenizer "$T" --prompt "Once upon a time" --steps 256 --temperature 0 \
    >"$TMP/out.txt" 2>"$TMP/err.txt"
rc=$?
[ $rc -eq 0 ] && ok || bad "golden run exited $rc: $(cat "$TMP/err.txt")"
cmp -s "$TMP/out.txt" "$D/golden_once_upon_a_time.txt" && ok || {
    bad "greedy output differs from golden_once_upon_a_time.txt"
    diff <(fold -w 80 "$TMP/out.txt") <(fold -w 80 "$D/golden_once_upon_a_time.txt") | head -5 >&2
}
grep -q "tok/s" "$TMP/err.txt" && ok || bad "no throughput on stderr"

# same text with one token per prefill forward and with one thread
"$BIN" lm generate --model "$M" --tokenizer "$T" --prompt "Once upon a time" --steps 256 --temperature 0 \
    --prefill-batch 1 --threads 1 >"$TMP/out1.txt" 2>/dev/null
cmp -s "$TMP/out1.txt" "$D/golden_once_upon_a_time.txt" && ok || bad "prefill-batch 1 / 1 thread differs from golden"
# the thread count left to tessera, a core kept busy: decode steps may move to
# fewer threads (tsr_step_team) and the text stays the same
(while :; do :; done) & busy=$!
env -u TESSERA_THREADS "$BIN" lm generate --model "$M" --tokenizer "$T" --prompt "Once upon a time" --steps 256 \
    --temperature 0 >"$TMP/outa.txt" 2>"$TMP/erra.txt"
kill $busy; wait $busy 2>/dev/null
cmp -s "$TMP/outa.txt" "$D/golden_once_upon_a_time.txt" && ok || bad "tuned team size differs from golden: $(tail -1 "$TMP/erra.txt")"

# --max-tokens counts new tokens only: a prefix of the golden text
"$BIN" lm generate --model "$M" --tokenizer "$T" --prompt "Once upon a time" --max-tokens 8 --temperature 0 \
    >"$TMP/short.txt" 2>/dev/null && ok || bad "--max-tokens run failed"
n=$(($(wc -c <"$TMP/short.txt") - 1))
[ "$n" -gt 16 ] && cmp -s -n "$n" "$TMP/short.txt" "$D/golden_once_upon_a_time.txt" && ok ||
    bad "--max-tokens 8 is not a prefix of the golden text"

# stop string: the completion ends right before it
"$BIN" lm generate --model "$M" --tokenizer "$T" --prompt "Once upon a time" --temperature 0 --stop "red ball" \
    --stop "zzz" >"$TMP/stop.txt" 2>/dev/null && ok || bad "--stop run failed"
want=$(printf '%s' "$(cat "$D/golden_once_upon_a_time.txt")" | sed -n '1s/red ball.*//p')
[ "$(cat "$TMP/stop.txt")" = "$want" ] && ok || bad "--stop output: '$(cat "$TMP/stop.txt")'"

# an empty prompt is allowed (llama2.c -i "")
"$BIN" lm generate --model "$M" --tokenizer "$T" --prompt "" --steps 20 --temperature 0 >"$TMP/empty.txt" 2>/dev/null &&
    [ -s "$TMP/empty.txt" ] && ok || bad "empty prompt run failed"

# sampling runs and is reproducible for a seed
"$BIN" lm generate --model "$M" --tokenizer "$T" --prompt "Once" --steps 64 --temperature 0.9 --top-p 0.9 \
    --top-k 40 --seed 7 >"$TMP/s1.txt" 2>/dev/null && ok || bad "sampling run failed"
"$BIN" lm generate --model "$M" --tokenizer "$T" --prompt "Once" --steps 64 --temperature 0.9 --top-p 0.9 \
    --top-k 40 --seed 7 >"$TMP/s2.txt" 2>/dev/null
cmp -s "$TMP/s1.txt" "$TMP/s2.txt" && ok || bad "same seed gave different samples"

# converted to safetensors (HF names, q/k rows reordered to rotate-half
# RoPE): the same golden text; bf16 and Q8 copies run and start alike
"$BIN" lm convert --model "$M" --dtype f32 --out "$TMP/s.safetensors" 2>/dev/null && ok || bad "convert f32 failed"
"$BIN" lm generate --model "$TMP/s.safetensors" --tokenizer "$T" --prompt "Once upon a time" --steps 256 \
    --temperature 0 >"$TMP/st.txt" 2>/dev/null
cmp -s "$TMP/st.txt" "$D/golden_once_upon_a_time.txt" && ok || bad "safetensors copy differs from golden"
for dt in bf16 q8; do
    "$BIN" lm convert --model "$M" --dtype $dt --out "$TMP/s_$dt.safetensors" 2>/dev/null && ok || bad "convert $dt failed"
    "$BIN" lm info --model "$TMP/s_$dt.safetensors" | grep -q "$dt weights" && ok || bad "info on $dt file"
    "$BIN" lm generate --model "$TMP/s_$dt.safetensors" --tokenizer "$T" --prompt "Once upon a time" --steps 40 \
        --temperature 0 >"$TMP/g_$dt.txt" 2>/dev/null && ok || bad "generate from $dt file failed"
    "$BIN" lm generate --model "$M" --tokenizer "$T" --prompt "Once upon a time" --steps 40 --temperature 0 \
        --dtype $dt >"$TMP/d_$dt.txt" 2>/dev/null && ok || bad "generate --dtype $dt failed"
    cmp -s -n 40 "$TMP/g_$dt.txt" "$D/golden_once_upon_a_time.txt" && ok || bad "$dt text does not start like golden"
done
# a .safetensors model needs a tokenizer: tokenizer.json next to it by default
expect_gen_fail() {
    "$BIN" lm generate "$@" >"$TMP/bad_out.txt" 2>"$TMP/bad_err.txt"
    local rc=$?
    [ $rc -eq 1 ] && [ ! -s "$TMP/bad_out.txt" ] && ok || bad "expected failure (rc $rc): $*"
}
expect_gen_fail --model "$TMP/s.safetensors" --prompt hi
grep -q "tokenizer.json" "$TMP/bad_err.txt" && ok || bad "missing tokenizer.json message: $(cat "$TMP/bad_err.txt")"
head -c 5000 "$TMP/s.safetensors" >"$TMP/cut.safetensors"
expect_gen_fail --model "$TMP/cut.safetensors" --tokenizer "$T" --prompt hi
grep -q "cut.safetensors" "$TMP/bad_err.txt" && ok || bad "truncated safetensors message: $(cat "$TMP/bad_err.txt")"
"$BIN" lm generate --model "$M" --tokenizer "$T" --dtype q4 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--dtype q4 is not a usage error"

# 2. bad files: exit 1, message naming the file, empty stdout
expect_fail() { # label, expected exit code, args...
    local label=$1 want=$2
    shift 2
    "$BIN" lm generate "$@" >"$TMP/bad_out.txt" 2>"$TMP/bad_err.txt"
    local rc=$?
    if [ $rc -ne "$want" ]; then
        bad "$label: exit $rc (want $want): $(cat "$TMP/bad_err.txt")"
    elif [ -s "$TMP/bad_out.txt" ]; then
        bad "$label: wrote to stdout"
    else
        ok
    fi
}
head -c 100000 "$M" >"$TMP/trunc.bin"
expect_fail "truncated checkpoint" 1 --model "$TMP/trunc.bin" --tokenizer "$T" --prompt hi
grep -q "trunc.bin" "$TMP/bad_err.txt" && grep -qi "truncated\|size" "$TMP/bad_err.txt" && ok ||
    bad "truncated checkpoint message: $(cat "$TMP/bad_err.txt")"
head -c 20 "$M" >"$TMP/tiny.bin"
expect_fail "20-byte checkpoint" 1 --model "$TMP/tiny.bin" --tokenizer "$T" --prompt hi
: >"$TMP/empty.bin"
expect_fail "empty checkpoint" 1 --model "$TMP/empty.bin" --tokenizer "$T" --prompt hi
head -c 3000 /dev/urandom >"$TMP/garbage.bin"
expect_fail "garbage checkpoint" 1 --model "$TMP/garbage.bin" --tokenizer "$T" --prompt hi
expect_fail "missing checkpoint" 1 --model "$TMP/nope.bin" --tokenizer "$T" --prompt hi
grep -q "nope.bin" "$TMP/bad_err.txt" && ok || bad "missing file message: $(cat "$TMP/bad_err.txt")"
head -c 3000 "$T" >"$TMP/tok_trunc.bin"
expect_fail "truncated tokenizer" 1 --model "$M" --tokenizer "$TMP/tok_trunc.bin" --prompt hi
grep -q "tok_trunc.bin" "$TMP/bad_err.txt" && ok || bad "truncated tokenizer message: $(cat "$TMP/bad_err.txt")"
expect_fail "model as tokenizer" 1 --model "$M" --tokenizer "$M" --prompt hi
expect_fail "tokenizer as model" 1 --model "$T" --tokenizer "$T" --prompt hi

# 3. usage errors: exit 2
# without --model, the shipped models/pycode (found from the working directory) is used
if [ -f models/pycode/config.json ]; then
    out=$("$BIN" lm generate --prompt 'def f(x):' --max-tokens 12 --temperature 0 --threads 1 2>"$TMP/def_err.txt")
    [ $? -eq 0 ] && [ "${out#def f(x):}" != "$out" ] && [ ${#out} -gt 10 ] && ok ||
        bad "default model: '$out' $(cat "$TMP/def_err.txt")"
    abs_bin=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
    out2=$(cd "$TMP" && "$abs_bin" lm generate --prompt 'def f(x):' --max-tokens 12 --temperature 0 --threads 1 2>/dev/null)
    [ "$out2" = "$out" ] && ok || bad "default model found beside the binary: '$out2'"
else
    expect_fail "missing --model" 2 --tokenizer "$T"
fi
expect_fail "unknown flag" 2 --model "$M" --tokenizer "$T" --bogus 1
expect_fail "negative temperature" 2 --model "$M" --tokenizer "$T" --temperature -1
expect_fail "top-p above 1" 2 --model "$M" --tokenizer "$T" --top-p 1.5

echo "e2e_lm: $pass passed, $fails failed"
[ $fails -eq 0 ]
