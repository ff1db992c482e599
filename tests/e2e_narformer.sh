#!/usr/bin/env bash
# End-to-end test of `tessera narformer`: tokenize the ResNet-18 ONNX file
# (70 tokens, JSON fields), refuse bad files (exit 1, one-line error) and
# bad flags (exit 2), the eval JSON contract with the closed-form FLOPs
# baseline, and a few steps of training + eval of the saved model.
# Usage: tests/e2e_narformer.sh path/to/tessera   (cwd = repository root)
set -u
BIN=${1:?usage: e2e_narformer.sh path/to/tessera}
ONNX=../shared/data/nnlqp/resnet18-v1-7-no-weight.onnx
CSV=../shared/data/nas-bench-201/nats_bench.csv
TMP=$(mktemp -d /tmp/tessera_e2e_nf.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

"$BIN" narformer tokenize --bogus x >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "an unknown flag is not a usage error"
"$BIN" narformer eval --method nope >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "an unknown --method is not a usage error"
"$BIN" narformer eval --train-frac 2 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--train-frac 2 is not a usage error"
# the closed-form methods have no weights: train refuses them instead of exiting 0 with no --out written
for m in flops kernel-sum; do
    "$BIN" narformer train --method $m --out "$TMP/f.safetensors" >/dev/null 2>"$TMP/err.txt"
    [ $? -eq 2 ] && grep -q "closed-form" "$TMP/err.txt" && [ ! -e "$TMP/f.safetensors" ] && ok || bad "train --method $m is not a usage error"
done
# eval trains into a temporary file: no checkpoint or resume flags, and a bad --log fails at once
for f in --resume "--stop-after 5" "--ckpt-every 10" "--ckpt-minutes 1"; do
    "$BIN" narformer eval $f >/dev/null 2>&1
    [ $? -eq 2 ] && ok || bad "eval $f is not a usage error"
done
"$BIN" narformer eval --help | grep -q -- --resume && bad "eval --help lists --resume" || ok
"$BIN" narformer eval --method flops --log "$TMP/no-dir/log.jsonl" >/dev/null 2>"$TMP/err.txt"
[ $? -eq 1 ] && grep -q "no-dir" "$TMP/err.txt" && ok || bad "eval --log in a missing directory is not refused"
head -c 300 /dev/urandom > "$TMP/junk.onnx"
"$BIN" narformer tokenize "$TMP/junk.onnx" >/dev/null 2>"$TMP/err.txt"
[ $? -eq 1 ] && [ "$(grep -c 'error' "$TMP/err.txt")" -eq 1 ] && ok || bad "a junk file is not a one-line failure"
"$BIN" narformer tokenize "$TMP/none.onnx" >/dev/null 2>&1
[ $? -eq 1 ] && ok || bad "a missing file is not a failure"

if [ -r "$ONNX" ]; then
    "$BIN" narformer tokenize "$ONNX" --json > "$TMP/tok.json"
    [ $? -eq 0 ] && grep -q '"n_tokens": 70' "$TMP/tok.json" && grep -q '"token_dim": 152' "$TMP/tok.json" \
        && ok || bad "ResNet-18 does not give 70 tokens of 152"
    head -c 5000 "$ONNX" > "$TMP/cut.onnx"
    "$BIN" narformer tokenize "$TMP/cut.onnx" >/dev/null 2>&1
    [ $? -eq 1 ] && ok || bad "a truncated ONNX file is not a failure"
fi

if [ -r "$CSV" ]; then
    "$BIN" narformer eval --task nb201-accuracy --method flops --json > "$TMP/ev.json"
    rc=$?
    for k in task method split n_train n_test kendall_tau mape acc_10pct acc_5pct acc_1pct; do
        grep -q "\"$k\": " "$TMP/ev.json" || bad "eval JSON lacks $k"
    done
    [ $rc -eq 0 ] && grep -q '"n_train": 1563' "$TMP/ev.json" && ok || bad "eval flops failed"
    "$BIN" narformer train --method mlp --steps 30 --train-frac 0.01 --log-every 10 --out "$TMP/m.safetensors" \
        --json > "$TMP/tr.json" 2>/dev/null
    [ $? -eq 0 ] && grep -q '"method": "mlp"' "$TMP/tr.json" && [ -s "$TMP/m.safetensors" ] && ok \
        || bad "a short mlp training run failed"
    "$BIN" narformer train --method narformer --steps 4 --batch 4 --dim 16 --layers 1 --train-frac 0.002 \
        --out "$TMP/n.safetensors" --quiet --json > /dev/null 2>&1
    [ $? -eq 0 ] && ok || bad "a short narformer training run failed"
    "$BIN" narformer eval --model "$TMP/n.safetensors" --train-frac 0.002 --json > "$TMP/ne.json" 2>/dev/null
    [ $? -eq 0 ] && grep -q '"method": "narformer"' "$TMP/ne.json" && ok || bad "eval of a saved model failed"
    "$BIN" narformer eval --model "$TMP/n.safetensors" --train-frac 0.1 --json >/dev/null 2>&1
    [ $? -eq 1 ] && ok || bad "a model evaluated on another split is not refused"
    # a training flag on the shipped model's split trains a predictor instead of loading the shipped one
    "$BIN" narformer eval --epochs 1 --dim 16 --layers 1 --ensemble 1 --json > "$TMP/nr.json" 2> "$TMP/err.txt"
    [ $? -eq 0 ] && grep -q "training narformer on 1563 cells" "$TMP/err.txt" && grep -q '"n_train": 1563' "$TMP/nr.json" \
        && ok || bad "eval with training flags on the shipped split did not train"
    # --validate: a fifth of the training cells (156 at 0.01) validates, 125 are trained on
    "$BIN" narformer eval --method mlp --validate --epochs 1 --train-frac 0.01 --json > "$TMP/nv.json" 2>/dev/null
    [ $? -eq 0 ] && grep -q '"split": "validation"' "$TMP/nv.json" && grep -q '"n_train": 125' "$TMP/nv.json" \
        && grep -q '"n_test": 31' "$TMP/nv.json" && ok || bad "nb201 eval --validate failed"
    # --ensemble: K members (seeds S..S+K-1) saved beside --out, each member's tau reported
    "$BIN" narformer train --method narformer --ensemble 2 --steps 4 --batch 4 --dim 16 --layers 1 \
        --train-frac 0.002 --out "$TMP/e.safetensors" --log "$TMP/e.jsonl" --quiet --json > "$TMP/e.json" 2>/dev/null
    [ $? -eq 0 ] && grep -q '"ensemble": 2' "$TMP/e.json" && grep -q '"member_kendall_tau": \[' "$TMP/e.json" \
        && [ -s "$TMP/e.safetensors" ] && [ -s "$TMP/e.m1.safetensors" ] && ok || bad "train --ensemble 2 failed"
    # each member logs to its own file (one shared log was truncated by the next member)
    [ "$(grep -c '"kind":"train"' "$TMP/e.jsonl")" = 1 ] && [ "$(grep -c '"kind":"train"' "$TMP/e.m1.jsonl")" = 1 ] \
        && ! cmp -s "$TMP/e.jsonl" "$TMP/e.m1.jsonl" && ok || bad "train --ensemble 2 --log: not one log per member"
    t1=$("$BIN" narformer eval --model "$TMP/e.m1.safetensors" --train-frac 0.002 --json 2>/dev/null \
        | sed -n 's/.*"kendall_tau": \([-0-9.]*\).*/\1/p')
    grep -q "\"member_kendall_tau\": \[[-0-9.]*, $t1\]" "$TMP/e.json" && ok \
        || bad "the second ensemble member's file does not give its reported tau ($t1)"
    # killed after member 0 finished, before member 1's first checkpoint (here: member 0 trained
    # alone): --resume trains member 1, and both files equal the straight ensemble's
    "$BIN" narformer train --method narformer --ensemble 1 --steps 4 --batch 4 --dim 16 --layers 1 \
        --train-frac 0.002 --out "$TMP/r.safetensors" --quiet >/dev/null 2>&1
    "$BIN" narformer train --method narformer --ensemble 2 --steps 4 --batch 4 --dim 16 --layers 1 \
        --train-frac 0.002 --out "$TMP/r.safetensors" --quiet --resume >/dev/null 2>"$TMP/err.txt"
    [ $? -eq 0 ] && cmp -s "$TMP/e.safetensors" "$TMP/r.safetensors" && cmp -s "$TMP/e.m1.safetensors" "$TMP/r.m1.safetensors" \
        && ok || bad "--resume of an ensemble killed before its second member: $(tail -1 "$TMP/err.txt")"
    te=$(sed -n 's/.*"kendall_tau": \([-0-9.]*\).*/\1/p' "$TMP/e.json")
    "$BIN" narformer eval --model "$TMP/e.safetensors" --ensemble 2 --train-frac 0.002 --json > "$TMP/el.json" 2>/dev/null
    [ $? -eq 0 ] && grep -q "\"kendall_tau\": $te," "$TMP/el.json" && ok \
        || bad "the saved ensemble does not give the trained ensemble's tau ($te)"
    "$BIN" narformer eval --model "$TMP/e.safetensors" --train-frac 0.002 --json > "$TMP/ed.json" 2>/dev/null
    [ $? -eq 0 ] && grep -q "\"kendall_tau\": $te," "$TMP/ed.json" && grep -q '"ensemble": 2' "$TMP/ed.json" && ok \
        || bad "--model does not pick up the members saved beside it"
    "$BIN" narformer eval --model "$TMP/e.safetensors" --ensemble 3 --train-frac 0.002 --json >/dev/null 2>"$TMP/err.txt"
    [ $? -eq 1 ] && [ "$(grep -c 'error' "$TMP/err.txt")" -eq 1 ] && ok || bad "a missing ensemble member is not a one-line failure"
    # --validate --model: members written by train --validate, scored again on the same validation fifth
    "$BIN" narformer train --method narformer --validate --ensemble 2 --steps 4 --batch 4 --dim 16 --layers 1 \
        --train-frac 0.01 --out "$TMP/v.safetensors" --quiet --json > "$TMP/v.json" 2>/dev/null
    tv=$(sed -n 's/.*"kendall_tau": \([-0-9.]*\).*/\1/p' "$TMP/v.json")
    "$BIN" narformer eval --model "$TMP/v.safetensors" --validate --train-frac 0.01 --json > "$TMP/vl.json" 2>/dev/null
    [ $? -eq 0 ] && [ -n "$tv" ] && grep -q "\"kendall_tau\": $tv," "$TMP/vl.json" && grep -q '"split": "validation"' "$TMP/vl.json" \
        && grep -q '"n_test": 31' "$TMP/vl.json" && ok || bad "eval --validate --model does not give the validation tau of train --validate ($tv)"
    "$BIN" narformer eval --model "$TMP/e.safetensors" --validate --train-frac 0.002 --json >/dev/null 2>"$TMP/err.txt"
    [ $? -eq 1 ] && [ "$(grep -c 'error' "$TMP/err.txt")" -eq 1 ] && ok \
        || bad "--validate with a model trained on every training cell is not refused"
    "$BIN" narformer eval --task help-latency --validate >/dev/null 2>&1
    [ $? -eq 2 ] && ok || bad "help-latency --validate is not a usage error"
fi

# latency side: a tiny data set (2 families x 3), the eval contract with
# every latency method, train -> predict -> eval of the saved model, and
# the bad inputs
"$BIN" narformer dataset --out "$TMP/lat.jsonl" --families nb201,vgg --per-family 3 --warmup 0 --repeats 1 \
    --recheck 2 --clock cpu --quiet --json > "$TMP/ds.json" 2>/dev/null
[ $? -eq 0 ] && grep -q '"networks": 6' "$TMP/ds.json" && [ "$(wc -l < "$TMP/lat.jsonl")" -eq 7 ] && ok \
    || bad "a small data set was not built"
head -1 "$TMP/lat.jsonl" | grep -q '"format": "tessera-narformer-latency"' && ok || bad "data set header"
for m in flops kernel-sum; do
    "$BIN" narformer eval --task latency --data "$TMP/lat.jsonl" --method $m --json > "$TMP/le.json" 2>/dev/null
    rc=$?
    for k in task method split n_train n_test kendall_tau mape acc_10pct acc_5pct acc_1pct; do
        grep -q "\"$k\": " "$TMP/le.json" || bad "latency eval JSON ($m) lacks $k"
    done
    [ $rc -eq 0 ] && grep -q '"n_train": 5' "$TMP/le.json" && ok || bad "latency eval $m failed"
done
"$BIN" narformer eval --task latency --data "$TMP/lat.jsonl" --method flops --split unseen --json > "$TMP/lu.json" 2>/dev/null
[ $? -eq 0 ] && grep -q '"holdout": "vgg"' "$TMP/lu.json" && ok || bad "unseen-family eval failed"
# --exclude F: the same set as a file without F's lines (a nested run's inner set)
grep -v '"family": "vgg"' "$TMP/lat.jsonl" > "$TMP/lat-novgg.jsonl"
strip() { sed 's/"data": "[^"]*", //; s/"seconds": [0-9.e+-]*//g'; }
"$BIN" narformer eval --task latency --data "$TMP/lat.jsonl" --exclude vgg --method kernel-sum --json 2>/dev/null | strip > "$TMP/lx1.json"
"$BIN" narformer eval --task latency --data "$TMP/lat-novgg.jsonl" --method kernel-sum --json 2>/dev/null | strip > "$TMP/lx2.json"
grep -q '"n_train": 2' "$TMP/lx1.json" && cmp -s "$TMP/lx1.json" "$TMP/lx2.json" && ok \
    || bad "--exclude vgg differs from the file without vgg"
"$BIN" narformer eval --task latency --data "$TMP/lat.jsonl" --exclude vgg,nosuch >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--exclude with an unknown family is not a usage error"
"$BIN" narformer eval --task latency --data "$TMP/lat.jsonl" --exclude vgg --split unseen --holdout vgg >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--holdout of an excluded family is not a usage error"
"$BIN" narformer eval --task latency --data "$TMP/lat.jsonl" --exclude vgg,nb201 --method flops >/dev/null 2>"$TMP/err.txt"
[ $? -eq 1 ] && [ "$(grep -c error "$TMP/err.txt")" -eq 1 ] && grep -q "fewer than 3 networks" "$TMP/err.txt" && ok || bad "--exclude of every family is not one clear error"
# a latency that overflows a float (1e300 ms) is refused when the data set is read, not turned into inf and a NaN MAPE
python3 -c 'import re, sys; L=open(sys.argv[1]).read().splitlines(); L[2]=re.sub(r"\"latency_ms\": \[[^]]*\]", "\"latency_ms\": [1e300, 1e300]", L[2]); open(sys.argv[2], "w").write("\n".join(L) + "\n")' \
    "$TMP/lat.jsonl" "$TMP/lat-huge.jsonl"
"$BIN" narformer eval --task latency --data "$TMP/lat-huge.jsonl" --method flops --json >"$TMP/lh.json" 2>"$TMP/err.txt"
[ $? -eq 1 ] && grep -q "lat-huge.jsonl:3" "$TMP/err.txt" && ok || bad "a 1e300 ms latency is not refused: $(cat "$TMP/lh.json" "$TMP/err.txt")"
# one path for --out and --scatter: refused before any work (the scatter would replace the weights)
"$BIN" narformer train --task latency --data "$TMP/lat.jsonl" --out "$TMP/same.png" --scatter "$TMP/same.png" >/dev/null 2>"$TMP/err.txt"
[ $? -eq 2 ] && grep -q "name the same file" "$TMP/err.txt" && [ ! -e "$TMP/same.png" ] && ok || bad "--out = --scatter: $(cat "$TMP/err.txt")"
# no cpu-2t predictor ships: the error names the missing file (it was ": cannot open", an empty path)
TESSERA_MODELS=$TMP "$BIN" narformer predict "$ONNX" --platform cpu-2t >/dev/null 2>"$TMP/err.txt"
[ $? -eq 1 ] && grep -q "narformer-latency-cpu-2t.safetensors: not found" "$TMP/err.txt" && grep -q "hint:" "$TMP/err.txt" && ok ||
    bad "predict --platform cpu-2t without a shipped model: $(cat "$TMP/err.txt")"
"$BIN" narformer train --task latency --data "$TMP/lat.jsonl" --steps 3 --batch 2 --dim 16 --layers 1 \
    --out "$TMP/lat.safetensors" --quiet --json > /dev/null 2>&1
[ $? -eq 0 ] && [ -s "$TMP/lat.safetensors" ] && ok || bad "a short latency training run failed"
# --validate: settings are chosen on a fifth of the training networks (5 -> 4 train / 1 validation)
"$BIN" narformer eval --task latency --data "$TMP/lat.jsonl" --method kernel-sum --validate --json > "$TMP/lv.json" 2>/dev/null
[ $? -eq 0 ] && grep -q '"split": "validation"' "$TMP/lv.json" && grep -q '"n_train": 4' "$TMP/lv.json" \
    && grep -q '"n_test": 1' "$TMP/lv.json" && ok || bad "latency eval --validate failed"
"$BIN" narformer eval --task latency --data "$TMP/lat.jsonl" --method flops --validate --split unseen >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--validate with --split unseen is not a usage error"
"$BIN" narformer eval --task latency --data "$TMP/lat.jsonl" --method flops --ensemble 2 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--ensemble with --task latency is not a usage error"
# SIGTERM: the checkpoint is saved and the run stops (exit 0, no evaluation printed)
"$BIN" narformer train --task latency --data "$TMP/lat.jsonl" --steps 1000000 --batch 2 --dim 16 --layers 1 \
    --log-every 1 --out "$TMP/sig.safetensors" --json > "$TMP/sig.out" 2> "$TMP/sig.err" &
pid=$!
for _ in $(seq 100); do grep -q "^step" "$TMP/sig.err" && break; sleep 0.1; done
kill -TERM $pid; wait $pid; rc=$?
[ $rc -eq 0 ] && grep -q "interrupted at step" "$TMP/sig.err" && [ -s "$TMP/sig.state.safetensors" ] && ok \
    || bad "SIGTERM: exit $rc, or no checkpoint"
grep -q kendall_tau "$TMP/sig.out" && bad "SIGTERM: the run went on to its evaluation" || ok
"$BIN" narformer eval --task latency --data "$TMP/lat.jsonl" --model "$TMP/lat.safetensors" --json > "$TMP/lm.json" 2>/dev/null
[ $? -eq 0 ] && grep -q '"method": "narformer"' "$TMP/lm.json" && ok || bad "latency eval of a saved model failed"
"$BIN" narformer eval --task latency --data "$TMP/lat.jsonl" --model "$TMP/lat.safetensors" --platform cpu-2t >/dev/null 2>&1
[ $? -eq 1 ] && ok || bad "a model of another platform is not refused"
if [ -r "$ONNX" ]; then
    "$BIN" narformer predict --model "$TMP/lat.safetensors" --onnx "$ONNX" --json > "$TMP/pr.json"
    [ $? -eq 0 ] && grep -q '"latency_ms": ' "$TMP/pr.json" && grep -q '"n_tokens": 70' "$TMP/pr.json" && ok \
        || bad "predict on ResNet-18 failed"
fi
"$BIN" narformer predict --model "$TMP/lat.safetensors" --onnx "$TMP/junk.onnx" >/dev/null 2>&1
[ $? -eq 1 ] && ok || bad "predict on a junk file is not a failure"
"$BIN" narformer predict --model "$TMP/lat.jsonl" --onnx "$ONNX" >/dev/null 2>&1
[ $? -eq 1 ] && ok || bad "predict with a non-model is not a failure"
"$BIN" narformer dataset --out "$TMP/x.jsonl" --families nope >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "an unknown family is not a usage error"
"$BIN" narformer eval --task latency --data "$TMP/none.jsonl" >/dev/null 2>&1
[ $? -eq 1 ] && ok || bad "a missing data set is not a failure"
printf '{"format": "tessera-narformer-latency", "version": 1}\n{"family": 3}\n' > "$TMP/badset.jsonl"
"$BIN" narformer eval --task latency --data "$TMP/badset.jsonl" --method flops >/dev/null 2>"$TMP/err2.txt"
[ $? -eq 1 ] && grep -q 'badset.jsonl:2' "$TMP/err2.txt" && ok || bad "a malformed data set line is not named"
# export: a generated network as ONNX, read back by tokenize with the same counts
"$BIN" narformer export --family efficientnet --net-seed 3 --out "$TMP/eff.onnx" --json > "$TMP/ex.json"
[ $? -eq 0 ] && [ -s "$TMP/eff.onnx" ] && ok || bad "export failed"
"$BIN" narformer tokenize "$TMP/eff.onnx" --json > "$TMP/ex_tok.json"
if [ $? -eq 0 ]; then
    for k in n_tokens gflops gparams gmem; do
        a=$(grep -o "\"$k\": [0-9.]*" "$TMP/ex.json"); b=$(grep -o "\"$k\": [0-9.]*" "$TMP/ex_tok.json" | head -1)
        [ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "export vs tokenize: $a vs $b"
    done
else
    bad "tokenize of an exported network failed"
fi
"$BIN" narformer export --family nope --out "$TMP/n.onnx" >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "export of an unknown family is not a usage error"
"$BIN" narformer export --family vgg --out /dev/null >/dev/null 2>&1
[ $? -eq 1 ] && ok || bad "export to a device file is not refused"
echo "e2e_narformer: $pass passed, $fails failed"
[ $fails -eq 0 ]
