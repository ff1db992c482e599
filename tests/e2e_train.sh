#!/usr/bin/env bash
# End-to-end tests of the shared training loop through `tessera classify
# train` (run by ctest with the binary as $1): a diverged run stops with an
# error naming the step, eval refuses non-finite weights, SIGTERM checkpoints
# and prints a resume command that works, --log writes JSON lines, outputs
# are checked before training, and failure hints fit the verb.
set -u
. "$(dirname "$0")/checks.sh"
e2e_init e2e_train "$@"

if [ ! -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "Fashion-MNIST not installed (dataset-fashion-mnist); cannot run the training checks" >&2
    exit 1
fi
small=(--train-limit 256 --batch 32 --epochs 2 --c1 4 --c2 8 --fc 16 --test-limit 200 --seed 3 --threads 2)

# --- divergence: error naming the step, exit 1, the checkpoint keeps the last good step
expect 1 "$BIN" classify train "${small[@]}" --lr 1e30 --warmup 0 --ckpt-every 1 --out "$T/n.safetensors"
has "$T/err" "diverged at step [0-9]"; has "$T/err" "keeps step"; has "$T/err" "hint: lower --lr"
hasnt "$T/err" "pass --model"
expect 0 "$BIN" classify eval --model "$T/n.safetensors" --limit 10

# --- eval and features refuse non-finite weights
expect 0 "$BIN" classify train "${small[@]}" --out "$T/a.safetensors" --log "$T/run.jsonl" --eval-every 4 --quiet
[ -s "$T/err" ] && bad "--quiet printed progress" || ok
/usr/bin/python3 - "$T/a.safetensors" "$T/nan.safetensors" <<'PY' && ok || bad "could not write a NaN checkpoint"
import json, struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
off = 8 + n + h['fc2.weight']['data_offsets'][0]
b[off:off + 4] = struct.pack('<f', float('nan'))
open(sys.argv[2], 'wb').write(b)
PY
expect 1 "$BIN" classify eval --model "$T/nan.safetensors" --limit 10; has "$T/err" "fc2.weight.*non-finite"
expect 1 "$BIN" classify features --model "$T/nan.safetensors" --limit 10 --out "$T/f.safetensors"
has "$T/err" "non-finite"; [ -e "$T/f.safetensors" ] && bad "features written from NaN weights" || ok

# --- the log: one JSON object per logged step and per evaluation
/usr/bin/python3 - "$T/run.jsonl" <<'PY' && ok || bad "run.jsonl"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
tr = [r for r in recs if r['kind'] == 'train']
ev = [r for r in recs if r['kind'] == 'eval']
assert tr and all({'step', 'time', 'loss', 'lr', 'img_per_s'} <= r.keys() for r in tr), tr[:2]
assert [r['step'] for r in ev] == [4, 8, 12, 16], ev
assert all(0 <= r['test_accuracy'] <= 1 and r['test_loss'] > 0 for r in ev), ev
PY

# --- SIGTERM: finish the step, checkpoint, print the resume command, exit 0
"$BIN" classify train "${small[@]}" --epochs 400 --out "$T/s.safetensors" >"$T/out" 2>"$T/err" &
pid=$!
for _ in $(seq 50); do grep -q "^step" "$T/err" && break; sleep 0.2; done
kill -TERM $pid; wait $pid; rc=$?
[ $rc -eq 0 ] && ok || bad "SIGTERM run exit $rc"
has "$T/err" "interrupted at step"; has "$T/err" "resume with: .*--resume"
[ -s "$T/s.state.safetensors" ] && ok || bad "no state after SIGTERM"
cmd=$(sed -n 's/^  resume with: [^ ]* //p' "$T/err")
eval "expect 0 \"\$BIN\" $cmd --stop-after 1"; has "$T/out" "stopped at"

# --- outputs are checked before any training; hints fit the verb
start=$(date +%s)
expect 1 "$BIN" classify train "${small[@]}" --epochs 50 --out "$T/nodir/x.safetensors"
[ $(( $(date +%s) - start )) -le 5 ] && ok || bad "unwritable --out found late"
has "$T/err" "nodir"; has "$T/err" "hint: check that the output directory"; hasnt "$T/err" "pass --model"
mkfifo "$T/fifo"
expect 1 "$BIN" classify train "${small[@]}" --out "$T/fifo"; has "$T/err" "not a regular file\|is a FIFO\|FIFO"
[ -p "$T/fifo" ] && ok || bad "FIFO replaced"
expect 1 "$BIN" classify train "${small[@]}" --log "$T/nodir/run.jsonl" --out "$T/l.safetensors"; has "$T/err" "nodir"
expect 1 "$BIN" classify train "${small[@]}" --out "$T/none.safetensors" --resume
has "$T/err" "start without --resume"; hasnt "$T/err" "pass --model"
# --- a mistyped --codes path is not silently filled with a 55 MB cache
expect 1 "$BIN" bigr train --codes "$T/typo.safetensors" --out "$T/g.safetensors"
has "$T/err" "--write-codes"; [ -e "$T/typo.safetensors" ] && bad "code cache created" || ok
# --- hints name only what the verb has
expect 1 "$BIN" elm tokenizer-train --train-limit 10 --batch 64 --out "$T/t.safetensors"
has "$T/err" "batch 64"; hasnt "$T/err" "without --resume"

# --- --val-list none: every file trains, no validation
SRC=/usr/lib/python3.11
if [ -f "$SRC/abc.py" ] && [ -f "$SRC/bisect.py" ]; then
    mkdir -p "$T/corpus"; cp "$SRC/abc.py" "$SRC/bisect.py" "$T/corpus/"
    expect 0 "$BIN" lm tokenizer-train --data "$T/corpus" --val-list none --vocab 300 --out "$T/tok.json" --quiet
    expect 0 "$BIN" lm train --data "$T/corpus" --val-list none --tokenizer "$T/tok.json" --dim 16 --layers 1 \
        --heads 2 --hidden 32 --context 16 --batch 2 --steps 2 --out "$T/lm.safetensors" --quiet --json
    has "$T/out" '"finished": true'
else
    echo "note: $SRC absent, --val-list none checks skipped" >&2
fi

# --- plot: a PNG from the log above
expect 0 "$BIN" plot "$T/run.jsonl" --out "$T/curve.png" --metric loss --metric test_accuracy
[ "$(head -c 4 "$T/curve.png" | od -An -c | tr -d ' ')" = "211PNG" ] && ok || bad "plot wrote no PNG"
expect 1 "$BIN" plot "$T/run.jsonl" --out "$T/c2.png" --metric nosuch; has "$T/err" "nosuch"
expect 2 "$BIN" plot "$T/run.jsonl"; has "$T/err" "--out"
expect 1 "$BIN" plot "$T/nosuch.jsonl" --out "$T/c3.png"; has "$T/err" "nosuch.jsonl.*cannot open"; has "$T/err" "--log FILE.jsonl"
expect 2 "$BIN" classify train --sched wavy; has "$T/err" "--sched"
expect 2 "$BIN" classify train --clip -1; has "$T/err" "--clip"

e2e_done
