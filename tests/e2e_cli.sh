#!/usr/bin/env bash
# End-to-end tests of the tessera CLI (run by ctest with the binary as $1):
# help at every level, usage errors exit 2 with one line, library errors
# exit 1 with "tessera: error:", eval --json parses, features shape, and a
# short training run stopped + resumed is byte-identical to a straight run.
set -u
. "$(dirname "$0")/checks.sh"
e2e_init e2e_cli "$@"

# --- help at every level
expect 0 "$BIN" --help;                 has "$T/out" "classify"
expect 0 "$BIN" classify --help;        has "$T/out" "train"; has "$T/out" "features"
expect 0 "$BIN" classify train --help;  has "$T/out" "--epochs"; has "$T/out" "--threads"
expect 0 "$BIN" classify eval --help;   has "$T/out" "--model"
expect 0 "$BIN" classify features --help; has "$T/out" "--split"

# --- usage errors: exit 2, one line
expect 2 "$BIN";                                   has "$T/err" "usage"
expect 2 "$BIN" nosuchfamily;                      has "$T/err" "unknown family"; lines "$T/err" 1
expect 2 "$BIN" classify nosuchverb;               has "$T/err" "unknown verb"; lines "$T/err" 1
expect 2 "$BIN" classify train --bogus;            has "$T/err" "unknown flag '--bogus'"; lines "$T/err" 1
expect 2 "$BIN" classify train --epochs;           has "$T/err" "needs a value"; lines "$T/err" 1
expect 2 "$BIN" classify train --epochs abc;       has "$T/err" "expects an integer"; lines "$T/err" 1
expect 2 "$BIN" classify train --lr 1e-3x;         has "$T/err" "expects a number"; lines "$T/err" 1
expect 2 "$BIN" classify train --epochs 0;         lines "$T/err" 1
expect 2 "$BIN" classify train --threads -3;       lines "$T/err" 1
expect 2 "$BIN" classify train --resume=1;         has "$T/err" "takes no value"
expect 2 "$BIN" classify train positional;         has "$T/err" "unexpected argument"
expect 2 "$BIN" classify eval;                     has "$T/err" "--model is required"; lines "$T/err" 1
expect 2 "$BIN" classify features --model x --split val; has "$T/err" "--split"

# --- library errors: exit 1, "tessera: error: <msg>" naming the file, plus a hint
expect 1 "$BIN" classify eval --model "$T/none.safetensors"
has "$T/err" "^tessera: error: .*$T/none.safetensors"; has "$T/err" "hint:"
printf 'this is not a checkpoint at all' >"$T/junk.safetensors"
expect 1 "$BIN" classify eval --model "$T/junk.safetensors"; has "$T/err" "tessera: error: .*junk.safetensors"
expect 1 "$BIN" classify train --data "$T/nodata" --out "$T/x.safetensors"
has "$T/err" "tessera: error: .*$T/nodata"; has "$T/err" "hint:"
[ ! -e "$T/x.safetensors" ] && ok || bad "failed train wrote a checkpoint"

if [ ! -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "Fashion-MNIST not installed (dataset-fashion-mnist); cannot run the training checks" >&2
    exit 1
fi

# --- short training run, straight vs stopped + resumed: byte-identical files
small=(--train-limit 512 --batch 64 --epochs 2 --c1 4 --c2 8 --fc 16 --test-limit 500 --seed 3
       --ckpt-every 5 --log-every 4 --threads 2)
expect 0 "$BIN" classify train "${small[@]}" --out "$T/a.safetensors"; has "$T/err" "img/s"; has "$T/err" "ETA"
expect 0 "$BIN" classify train "${small[@]}" --out "$T/b.safetensors" --stop-after 7; has "$T/out" "stopped at 7"
expect 0 "$BIN" classify train "${small[@]}" --out "$T/b.safetensors" --resume --json; has "$T/out" '"steps": 16'
cmp "$T/a.safetensors" "$T/b.safetensors" && ok || bad "resumed checkpoint differs from straight run"
cmp "$T/a.state.safetensors" "$T/b.state.safetensors" && ok || bad "resumed state differs from straight run"
expect 1 "$BIN" classify train "${small[@]}" --out "$T/b.safetensors" --resume --seed 4; has "$T/err" "train.seed"

# --- eval --json parses; features
expect 0 "$BIN" classify eval --model "$T/a.safetensors" --limit 500 --json
if command -v /usr/bin/python3 >/dev/null; then
    /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["n"]==500 and 0<=d["accuracy"]<=1 and d["loss"]>0, d' "$T/out" && ok || bad "eval --json"
else
    has "$T/out" '"accuracy": '; has "$T/out" '"n": 500'
fi
expect 0 "$BIN" classify features --model "$T/a.safetensors" --limit 100 --split train --out "$T/f.safetensors" --json
has "$T/out" '"n": 100'; has "$T/out" '"dim": 16'
[ -s "$T/f.safetensors" ] && ok || bad "features file missing"

e2e_done
