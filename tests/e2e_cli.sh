#!/usr/bin/env bash
# End-to-end tests of the tessera CLI (run by ctest with the binary as $1):
# help at every level, usage errors exit 2 with one line, library errors
# exit 1 with "tessera: error:", eval --json parses, features shape, and a
# short training run stopped + resumed is byte-identical to a straight run.
set -u
BIN=${1:?usage: e2e_cli.sh path/to/tessera}
T=$(mktemp -d /tmp/tsr_e2e_cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
export TESSERA_THREADS=${TESSERA_THREADS:-2}
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { fails=$((fails + 1)); echo "FAIL: $*" >&2; }

# expect CODE CMD...: run, capture stdout/stderr in $T/out $T/err, check exit code
expect() {
    local want=$1; shift
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then ok; else bad "exit $got (want $want): $*"; sed 's/^/  | /' "$T/err" >&2; fi
}
has() { # has FILE PATTERN
    if grep -q -- "$2" "$1"; then ok; else bad "$1 lacks '$2'"; sed 's/^/  | /' "$1" >&2; fi
}
lines() { # lines FILE N
    local n; n=$(wc -l <"$1")
    if [ "$n" -eq "$2" ]; then ok; else bad "$1 has $n lines, want $2"; sed 's/^/  | /' "$1" >&2; fi
}

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

echo "e2e_cli: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
