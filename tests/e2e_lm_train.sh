#!/usr/bin/env bash
# End-to-end test of `tessera lm train` on a tiny corpus (a few stdlib
# files, one held out) with a tiny tokenizer and model: N steps straight
# must give the same checkpoint and training state, byte for byte, as
# N/2 + stop + --resume, and as a run stopped by SIGTERM at an arbitrary
# step and resumed. Bad input fails cleanly.
# Usage: tests/e2e_lm_train.sh path/to/tessera   (cwd = repository root)
set -u
BIN=${1:?usage: e2e_lm_train.sh path/to/tessera}
if ! "$BIN" lm --help 2>/dev/null | grep -q "train "; then
    echo "SKIP: this tessera build has no 'lm train' verb in its command table (src/cli/cmd_lm.c)"
    exit 0
fi
SRC=/usr/lib/python3.11
for f in abc.py bisect.py colorsys.py keyword.py fnmatch.py glob.py; do
    [ -f "$SRC/$f" ] || { echo "SKIP: $SRC/$f missing (Debian: libpython3.11-stdlib)"; exit 0; }
done
TMP=$(mktemp -d /tmp/tessera_e2e_lmtrain.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

mkdir -p "$TMP/corpus"
cp "$SRC"/{abc,bisect,colorsys,keyword,fnmatch,glob}.py "$TMP/corpus/"
echo "colorsys.py" >"$TMP/val.txt"
"$BIN" lm tokenizer-train --data "$TMP/corpus" --val-list "$TMP/val.txt" --vocab 320 --out "$TMP/tok.json" \
    --quiet >/dev/null 2>"$TMP/err.txt" && ok || bad "tokenizer-train: $(cat "$TMP/err.txt")"

COMMON=(--data "$TMP/corpus" --val-list "$TMP/val.txt" --tokenizer "$TMP/tok.json" --dim 32 --layers 2
    --heads 2 --kv-heads 1 --hidden 64 --context 32 --batch 4 --steps 24 --warmup 4 --lr 3e-3
    --eval-every 8 --eval-tokens 256 --ckpt-every 5 --log-every 4 --threads 2 --seed 3)

# 1. straight run
"$BIN" lm train "${COMMON[@]}" --out "$TMP/a.safetensors" --json >"$TMP/a.json" 2>"$TMP/a.err"
[ $? -eq 0 ] && ok || bad "straight run: $(tail -3 "$TMP/a.err")"
grep -q '"finished": true' "$TMP/a.json" && ok || bad "straight run did not finish: $(cat "$TMP/a.json")"
grep -q '"val_bpb"' "$TMP/a.json" && ok || bad "no val_bpb in --json output"
grep -q "bits/byte" "$TMP/a.err" && grep -q "tok/s" "$TMP/a.err" && ok || bad "no progress/eval lines on stderr"
[ -s "$TMP/a.bf16.safetensors" ] && ok || bad "no BF16 copy"
[ "$(ls "$TMP"/a.*.train.tok 2>/dev/null | wc -l)" -eq 1 ] && ok || bad "no token cache next to --out"

# 2. half, stop, resume
"$BIN" lm train "${COMMON[@]}" --out "$TMP/b.safetensors" --stop-after 12 >/dev/null 2>"$TMP/b.err" &&
    ok || bad "first half: $(tail -3 "$TMP/b.err")"
grep -q "checkpoint at step 12" "$TMP/b.err" && ok || bad "no checkpoint at the stop step"
"$BIN" lm train "${COMMON[@]}" --out "$TMP/b.safetensors" --resume >/dev/null 2>"$TMP/b2.err" &&
    ok || bad "resume: $(tail -3 "$TMP/b2.err")"
cmp -s "$TMP/a.safetensors" "$TMP/b.safetensors" && ok || bad "resumed checkpoint differs from the straight run"
cmp -s "$TMP/a.state.safetensors" "$TMP/b.state.safetensors" && ok || bad "resumed training state differs"
cmp -s "$TMP/a.bf16.safetensors" "$TMP/b.bf16.safetensors" && ok || bad "resumed BF16 copy differs"

# 2b. resuming a run that has already finished rewrites the same files
cp "$TMP/a.safetensors" "$TMP/f.safetensors"
cp "$TMP/a.state.safetensors" "$TMP/f.state.safetensors"
"$BIN" lm train "${COMMON[@]}" --out "$TMP/f.safetensors" --resume >/dev/null 2>"$TMP/f.err" &&
    ok || bad "resume of a finished run: $(tail -3 "$TMP/f.err")"
cmp -s "$TMP/a.safetensors" "$TMP/f.safetensors" && ok || bad "resuming a finished run changed its checkpoint"
cmp -s "$TMP/a.bf16.safetensors" "$TMP/f.bf16.safetensors" && ok || bad "resuming a finished run changed its BF16 copy"

# 2c. a new --steps on resume is refused, unless --reschedule asks for it
cp "$TMP/a.safetensors" "$TMP/g.safetensors"
cp "$TMP/a.state.safetensors" "$TMP/g.state.safetensors"
"$BIN" lm train "${COMMON[@]}" --steps 30 --out "$TMP/g.safetensors" --resume >/dev/null 2>"$TMP/g.err"
[ $? -eq 1 ] && grep -q "train.steps" "$TMP/g.err" && ok || bad "resume with other --steps not refused: $(cat "$TMP/g.err")"
"$BIN" lm train "${COMMON[@]}" --steps 30 --out "$TMP/g.safetensors" --resume --reschedule --json >"$TMP/g.json" 2>"$TMP/g.err" &&
    grep -q '"finished": true' "$TMP/g.json" && ok || bad "--reschedule resume: $(tail -3 "$TMP/g.err")"

# 3. SIGTERM at whatever step it has reached, then resume
"$BIN" lm train "${COMMON[@]}" --out "$TMP/c.safetensors" --log-every 1 >/dev/null 2>"$TMP/c.err" &
pid=$!
for _ in $(seq 1 200); do
    grep -q "^step 3/" "$TMP/c.err" 2>/dev/null && break
    sleep 0.05
done
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
[ $rc -eq 0 ] && ok || bad "SIGTERM run exited $rc: $(tail -2 "$TMP/c.err")"
"$BIN" lm train "${COMMON[@]}" --out "$TMP/c.safetensors" --resume >/dev/null 2>"$TMP/c2.err" &&
    ok || bad "resume after SIGTERM: $(tail -3 "$TMP/c2.err")"
cmp -s "$TMP/a.safetensors" "$TMP/c.safetensors" && ok || bad "checkpoint after SIGTERM + resume differs"
cmp -s "$TMP/a.state.safetensors" "$TMP/c.state.safetensors" && ok || bad "state after SIGTERM + resume differs"

# 4. bad input: usage errors exit 2, failures exit 1 with a message, nothing on stdout
"$BIN" lm train --out "$TMP/x.safetensors" >"$TMP/out.txt" 2>"$TMP/err.txt"
[ $? -eq 2 ] && grep -q "tokenizer" "$TMP/err.txt" && ok || bad "missing --tokenizer is not a usage error"
"$BIN" lm train "${COMMON[@]}" --tokenizer "$TMP/nope.json" --out "$TMP/x.safetensors" >"$TMP/out.txt" 2>"$TMP/err.txt"
[ $? -eq 1 ] && grep -q "nope.json" "$TMP/err.txt" && grep -q "tokenizer-train" "$TMP/err.txt" && [ ! -s "$TMP/out.txt" ] &&
    ok || bad "missing tokenizer file: $(cat "$TMP/err.txt")"
"$BIN" lm train "${COMMON[@]}" --out "$TMP/b.safetensors" --resume --lr 1e-3 >"$TMP/out.txt" 2>"$TMP/err.txt"
[ $? -eq 1 ] && grep -q "train.lr" "$TMP/err.txt" && ok || bad "resume with another --lr: $(cat "$TMP/err.txt")"
"$BIN" lm train "${COMMON[@]}" --out "$TMP/b.safetensors" --heads 3 >/dev/null 2>"$TMP/err.txt"
[ $? -eq 1 ] && grep -q "divisible" "$TMP/err.txt" && ok || bad "bad head count: $(cat "$TMP/err.txt")"
"$BIN" lm train "${COMMON[@]}" --out "$TMP/nodir/x.safetensors" >/dev/null 2>"$TMP/err.txt"
[ $? -eq 1 ] && ok || bad "unwritable --out: $(cat "$TMP/err.txt")"
"$BIN" lm train "${COMMON[@]}" --bogus >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "unknown flag is not a usage error"

echo "e2e_lm_train: $pass passed, $fails failed"
[ $fails -eq 0 ]
