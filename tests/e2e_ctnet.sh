#!/usr/bin/env bash
# End-to-end tests of `tessera ctnet` (run by ctest with the binary as $1):
# help, usage errors (exit 2, one line), a synthetic CSV log through data,
# train (killed with SIGKILL inside a period update, then resumed from its
# checkpoint: the model file is byte-identical to an uninterrupted run's), eval --json with the
# contract fields, predict with --json, and bad inputs exiting 1.
set -u
. "$(dirname "$0")/serve_wait.sh"
. "$(dirname "$0")/checks.sh"
e2e_init e2e_ctnet "$@"
export TESSERA_QUIET=1

# a synthetic log: 2000 rows over 2000..2005, click when user and item share a taste class
awk 'BEGIN { srand(7); print "user\titem\tdomain\ttimestamp\tlabel\tgenre";
  for (i = 0; i < 2000; i++) { u = int(rand() * 50); it = int(rand() * 80); t = (rand() < 0.3);
    ts = 946684800 + int(rand() * 6 * 365) * 86400; c = ((u % 3) == (it % 3)); if (rand() < 0.1) c = 1 - c;
    printf "u%d\t%s%d\t%s\t%d\t%d\tg%d|x%d\n", u, t ? "t" : "s", it, t ? "target" : "source", ts, c, it % 3, it % 5 } }' >"$T/log.tsv"
S="--data $T/log.tsv --first 2001 --last 2005 --val-periods 1"
M="--dim 4 --hidden 16,8 --epochs 3 --batch 16"

expect 0 "$BIN" ctnet --help
has "$T/out" "predict"
for v in data train eval predict bench; do expect 0 "$BIN" ctnet $v --help; has "$T/out" "usage"; done
expect 2 "$BIN" ctnet train --bogus
lines "$T/err" 1
expect 2 "$BIN" ctnet train $S --method nope
has "$T/err" "method"
expect 2 "$BIN" ctnet eval $S --seeds 0
expect 2 "$BIN" ctnet train $S --hidden 8,x
expect 2 "$BIN" ctnet data $S --period fortnight
expect 2 "$BIN" ctnet predict
expect 1 "$BIN" ctnet data --data "$T/missing.csv"
lines "$T/err" 2
printf 'user,item,domain,timestamp,label\nu,i,target,12,yes\n' >"$T/bad.csv"
expect 1 "$BIN" ctnet data --data "$T/bad.csv"
has "$T/err" "bad.csv:2: label 'yes'"

expect 0 "$BIN" ctnet data $S --json
lines "$T/out" 6
has "$T/out" '"role": "evaluate"'

# straight run, and one killed with SIGKILL inside a period update (its
# training state checkpointed every step), resumed from there: the model
# file is byte-identical to the straight run's
expect 0 "$BIN" ctnet train $S $M --out "$T/a.safetensors"
landed=0
for attempt in 1 2 3 4 5; do
    rm -f "$T"/b.safetensors*
    "$BIN" ctnet train $S $M --ckpt-every 1 --out "$T/b.safetensors" >/dev/null 2>&1 &
    pid=$!
    # past the first period's save, then inside a fresh update (its
    # training state gone and written again)
    phase=0
    for _ in $(seq 1 4000); do
        kill -0 $pid 2>/dev/null || break
        u=0; [ -f "$T/b.safetensors.state.update.state" ] && u=1
        if [ $phase -eq 0 ] && [ -f "$T/b.safetensors.state" ] && grep -aq '"steps_done":"[1-9]' "$T/b.safetensors.state"; then phase=1; fi
        if [ $phase -eq 1 ] && [ $u -eq 0 ]; then phase=2; fi
        if [ $phase -eq 2 ] && [ $u -eq 1 ]; then break; fi
        sleep 0.002
    done
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    [ -f "$T/b.safetensors.state" ] && ok || bad "no state file after the kill"
    env -u TESSERA_QUIET "$BIN" ctnet train $S $M --ckpt-every 1 --out "$T/b.safetensors" --resume >"$T/out" 2>"$T/err" && ok ||
        bad "resume after the kill failed: $(tail -1 "$T/err")"
    cmp -s "$T/a.safetensors" "$T/b.safetensors" && ok || bad "killed+resumed model file differs from the straight run's"
    if grep -q "resuming a period update at its step" "$T/err"; then landed=1; break; fi
done
[ "$landed" -eq 1 ] && ok || bad "no kill in 5 tries was resumed from inside a period update"
[ -f "$T/b.safetensors.state.update.state" ] && bad "the update's training state was left behind" || ok
ls "$T" | grep -q '\.tmp$' && bad "a .tmp file was left behind" || ok
# killed inside the warm-up update (before any period): --resume continues
# that update from its training state
rm -f "$T"/w.safetensors*
"$BIN" ctnet train $S $M --ckpt-every 1 --out "$T/w.safetensors" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 4000); do
    kill -0 $pid 2>/dev/null || break
    [ -f "$T/w.safetensors.state.update.state" ] && ! grep -aqs '"warm":"1"' "$T/w.safetensors.state" && break
    sleep 0.002
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
env -u TESSERA_QUIET "$BIN" ctnet train $S $M --ckpt-every 1 --out "$T/w.safetensors" --resume >"$T/out" 2>"$T/err" && ok ||
    bad "resume after a kill in the warm-up failed: $(tail -1 "$T/err")"
has "$T/err" "resuming a period update at its step"
cmp -s "$T/a.safetensors" "$T/w.safetensors" && ok || bad "killed-in-warm-up+resumed model file differs from the straight run's"
expect 2 "$BIN" ctnet train $S $M --out "$T/c.safetensors" --stop-after -1
expect 0 "$BIN" ctnet train $S $M --out "$T/c.safetensors" --stop-after 2
[ -f "$T/c.safetensors" ] && bad "a stopped run wrote the final model" || ok
expect 1 "$BIN" ctnet train $S $M --lr 0.01 --out "$T/c.safetensors" --resume
has "$T/err" "lr"
expect 0 "$BIN" ctnet train $S $M --out "$T/c.safetensors" --resume
cmp -s "$T/a.safetensors" "$T/c.safetensors" && ok || bad "stopped+resumed model file differs from the straight run's"
expect 2 "$BIN" ctnet train $S $M --out "$T/c.safetensors" --ckpt-every -1
# stopped before any evaluation period: --json is still JSON (no mean yet: null, not nan)
expect 0 "$BIN" ctnet train $S $M --out "$T/d.safetensors" --stop-after 1 --json
python3 -c 'import json, sys; o = json.loads(open(sys.argv[1]).read()); sys.exit(0 if o["auc_mean"] is None and o["steps_done"] == 1 else 1)' \
    "$T/out" && ok || bad "train --stop-after 1 --json: $(cat "$T/out")"
# one path for --out and --state: refused (the state would replace the model)
expect 2 "$BIN" ctnet train $S $M --out "$T/e.safetensors" --state "$T/e.safetensors"
has "$T/err" "name the same file"
head -50 "$T/log.tsv" | cut -f1,2,4,6 >"$T/rows.tsv"
expect 0 "$BIN" ctnet predict --model "$T/a.safetensors" --input "$T/rows.tsv"
cp "$T/out" "$T/pa"
lines "$T/pa" 49
expect 0 "$BIN" ctnet predict --model "$T/b.safetensors" --input "$T/rows.tsv"
cmp -s "$T/pa" "$T/out" && ok || bad "killed+resumed model scores differently from the straight run"
expect 0 "$BIN" ctnet predict --model "$T/c.safetensors" --input "$T/rows.tsv"
cmp -s "$T/pa" "$T/out" && ok || bad "stopped+resumed model scores differently from the straight run"
expect 0 "$BIN" ctnet predict --model "$T/a.safetensors" --input "$T/rows.tsv" --json
has "$T/out" '"p_click"'
expect 1 "$BIN" ctnet predict --model "$T/log.tsv" --input "$T/rows.tsv"
lines "$T/err" 2

# POST /v1/ctr on `tessera serve`: the same probabilities as predict, in
# request order; a bad row is a 400 naming the field
if command -v curl >/dev/null; then
    "$BIN" serve --port 0 --space none --bita none --ctnet "$T/a.safetensors" --quiet >"$T/srv.out" 2>"$T/srv.err" &
    spid=$!
    port=$(serve_wait "$T/srv.out" $spid)
    if [ -n "$port" ]; then
        head -6 "$T/rows.tsv" >"$T/rows5.tsv"
        awk -F'\t' 'NR > 1 { printf "%s{\"user\": \"%s\", \"item\": \"%s\", \"timestamp\": %s, \"genre\": \"%s\"}",
            (NR > 2 ? ", " : "{\"rows\": ["), $1, $2, $3, $4 } END { print "]}" }' "$T/rows5.tsv" >"$T/req.json"
        curl -s --max-time 30 "http://127.0.0.1:$port/v1/ctr" -d @"$T/req.json" >"$T/ctr.json"
        has "$T/ctr.json" '"probabilities"'
        grep -o '"probabilities": \[[^]]*' "$T/ctr.json" | sed 's/.*\[//' | tr ',' '\n' |
            awk 'NF { printf "%.6f\n", $1 }' >"$T/ctr.txt"
        expect 0 "$BIN" ctnet predict --model "$T/a.safetensors" --input "$T/rows5.tsv"
        lines "$T/ctr.txt" 5
        cmp -s "$T/ctr.txt" "$T/out" && ok || bad "POST /v1/ctr scores differ from predict's"
        code=$(curl -s --max-time 30 -o "$T/ctr.json" -w '%{http_code}' "http://127.0.0.1:$port/v1/ctr" \
            -d '{"rows": [{"user": "u1", "item": "t2"}]}')
        [ "$code" = 400 ] && ok || bad "a row without timestamp got HTTP $code"
        has "$T/ctr.json" 'rows\[0\].timestamp'
    else
        bad "tessera serve did not start: $(tail -2 "$T/srv.err")"
    fi
    kill -TERM $spid 2>/dev/null
    wait $spid
    [ $? -eq 0 ] && ok || bad "tessera serve did not exit 0 on SIGTERM"
else
    echo "e2e_ctnet: curl is not installed; POST /v1/ctr not checked" >&2
fi

# the shipped model is the default
if [ -f models/ctnet_ml_animation.safetensors ]; then
    printf 'user,item,timestamp,genre,year,history\n1,1,1514764800,Adventure|Animation|Children|Comedy|Fantasy,1990,2|3\n1,2,1514764801,Action|Drama,2000,\n' >"$T/ml.csv"
    expect 0 "$BIN" ctnet predict --input "$T/ml.csv"
    lines "$T/out" 2
fi

# eval: the JSON contract, one line per method
expect 0 "$BIN" ctnet eval $S $M --seeds 2 --methods ctnet,target-only,retrain --json
lines "$T/out" 3
for f in '"method": "ctnet"' '"method": "retrain"' '"pair"' '"periods"' '"auc_mean"' '"auc_ci95"' '"logloss_mean"' \
    '"auc_per_period"' '"logloss_per_period"' '"train_seconds_per_period"' '"examples_per_period"'; do has "$T/out" "$f"; done
# eval --tuned: a method takes every hyper-parameter of its best validation
# line; a line of the zero-source diagnostic is no setting
{
    echo '{"method": "ctnet", "pair": "csv", "split": "validation", "auc_mean": 0.6, "lr": 0.004, "epochs": 2, "source_epochs": 3, "weight_decay": 0.0002, "adapter_std": 0.05, "source_lr": 0.02}'
    echo '{"method": "ctnet", "pair": "csv", "split": "validation", "auc_mean": 0.9, "lr": 0.005, "epochs": 4, "zero_source_states": true}'
    echo '{"method": "ctnet", "pair": "other", "split": "validation", "auc_mean": 0.95, "lr": 0.006, "epochs": 5}'
    echo '{"method": "target-only", "pair": "csv", "split": "validation", "auc_mean": 0.5, "lr": 0.003, "epochs": 1}'
} >"$T/tuned.jsonl"
expect 0 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet,target-only --tuned "$T/tuned.jsonl" --json
lines "$T/out" 2
has "$T/out" '"method": "ctnet".*"lr": 0.004, "epochs": 2, "source_epochs": 3, "weight_decay": 0.0002, "adapter_std": 0.05}'
# ... and its source lr; CTNet reports its source tower's own next-period AUC
has "$T/out" '"method": "ctnet".*"source_auc_mean": 0\.[0-9]*, "source_auc_ci95": null, "source_lr": 0.02, "train_seconds'
has "$T/out" '"method": "target-only".*"lr": 0.003, "epochs": 1, "source_epochs": 2, "weight_decay": 1e-05,'
# the diagnostic: adapters fed zeros instead of the source states score differently
expect 0 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet --adapter-std 1 --json
sed 's/.*"logloss_mean": \([^,]*\),.*/\1/' "$T/out" >"$T/ll_src"
expect 0 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet --adapter-std 1 --zero-source-states --json
has "$T/out" '"zero_source_states": true}'
sed 's/.*"logloss_mean": \([^,]*\),.*/\1/' "$T/out" >"$T/ll_zero"
if ! cmp -s "$T/ll_src" "$T/ll_zero"; then ok; else bad "--zero-source-states changed nothing ($(cat "$T/ll_zero"))"; fi
# --carry-optimizer: a line's carry is taken by --tuned, printed, and moves a continual method
expect 0 "$BIN" ctnet eval $S $M --seeds 1 --methods target-only --lr 0.003 --epochs 1 --json
sed 's/.*"logloss_mean": \([^,]*\),.*/\1/' "$T/out" >"$T/ll_fresh"
echo '{"method": "target-only", "pair": "csv", "split": "validation", "auc_mean": 0.5, "lr": 0.003, "epochs": 1, "carry_optimizer": true}' >"$T/tuned2.jsonl"
expect 0 "$BIN" ctnet eval $S $M --seeds 1 --methods target-only --tuned "$T/tuned2.jsonl" --json
has "$T/out" '"method": "target-only".*"carry_optimizer": true, "train_seconds'
sed 's/.*"logloss_mean": \([^,]*\),.*/\1/' "$T/out" >"$T/ll_carry"
if ! cmp -s "$T/ll_fresh" "$T/ll_carry"; then ok; else bad "--carry-optimizer changed nothing ($(cat "$T/ll_carry"))"; fi
# --adapter-scale: taken by --tuned, printed for CTNet, moves it; out of range is refused
echo '{"method": "ctnet", "pair": "csv", "split": "validation", "auc_mean": 0.5, "lr": 0.003, "epochs": 1, "adapter_scale": 0.25}' >"$T/tuned3.jsonl"
expect 0 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet --lr 0.003 --epochs 1 --json
has "$T/out" '"adapter_std": 0.001}'
sed 's/.*"logloss_mean": \([^,]*\),.*/\1/' "$T/out" >"$T/ll_one"
expect 0 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet --tuned "$T/tuned3.jsonl" --json
has "$T/out" '"method": "ctnet".*"adapter_std": 0.001, "adapter_scale": 0.25}'
sed 's/.*"logloss_mean": \([^,]*\),.*/\1/' "$T/out" >"$T/ll_quarter"
if ! cmp -s "$T/ll_one" "$T/ll_quarter"; then ok; else bad "--adapter-scale changed nothing ($(cat "$T/ll_quarter"))"; fi
expect 2 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet --adapter-scale 11 --json
# --adapter-norm: taken by --tuned, printed for CTNet, moves it; a bad value
# is refused in one line; a model trained with it scores with its constants
# (predict differs from the same run without a norm) and benches
echo '{"method": "ctnet", "pair": "csv", "split": "validation", "auc_mean": 0.5, "lr": 0.003, "epochs": 1, "adapter_norm": "match"}' >"$T/tuned4.jsonl"
expect 0 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet --tuned "$T/tuned4.jsonl" --json
has "$T/out" '"method": "ctnet".*"adapter_std": 0.001, "adapter_norm": "match"}'
sed 's/.*"logloss_mean": \([^,]*\),.*/\1/' "$T/out" >"$T/ll_match"
if ! cmp -s "$T/ll_one" "$T/ll_match"; then ok; else bad "--adapter-norm changed nothing ($(cat "$T/ll_match"))"; fi
expect 0 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet --lr 0.003 --epochs 1 --adapter-norm none --json
has "$T/out" '"adapter_std": 0.001}'
sed 's/.*"logloss_mean": \([^,]*\),.*/\1/' "$T/out" >"$T/ll_none"
cmp -s "$T/ll_one" "$T/ll_none" && ok || bad "--adapter-norm none is not the default run"
expect 2 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet --adapter-norm l2 --json
lines "$T/err" 1
has "$T/err" "adapter-norm 'l2'"
expect 2 "$BIN" ctnet train $S $M --adapter-norm "" --out "$T/n.safetensors"
lines "$T/err" 1
expect 0 "$BIN" ctnet train $S $M --adapter-norm rms --out "$T/n.safetensors"
expect 0 "$BIN" ctnet predict --model "$T/n.safetensors" --input "$T/rows.tsv"
cp "$T/out" "$T/p_norm"
expect 0 "$BIN" ctnet predict --model "$T/a.safetensors" --input "$T/rows.tsv"
if ! cmp -s "$T/out" "$T/p_norm"; then ok; else bad "the model trained with --adapter-norm rms scores as the one without"; fi
expect 0 "$BIN" ctnet bench --model "$T/n.safetensors" $S --requests 20 --batch 8 --json
has "$T/out" '"rows_per_s_per_core"'
expect 0 "$BIN" ctnet bench --model "$T/a.safetensors" $S --requests 50 --batch 32 --json
has "$T/out" '"rows_per_s_per_core"'
# a log without target rows: one line and exit 1 from bench, not a division by zero
expect 1 "$BIN" ctnet bench --model "$T/a.safetensors" $S --target nosuchdomain --requests 20
lines "$T/err" 2
has "$T/err" "no target rows"
# a --tuned file with no setting of this pair (empty, or other pairs only) is an error, not a run at the flags
: >"$T/tuned_empty.jsonl"
expect 1 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet --tuned "$T/tuned_empty.jsonl" --json
has "$T/err" "no validation line of pair 'csv'"
echo '{"method": "ctnet", "pair": "other", "split": "validation", "auc_mean": 0.95, "lr": 0.006, "epochs": 5}' >"$T/tuned_other.jsonl"
expect 1 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet --tuned "$T/tuned_other.jsonl" --json
has "$T/err" "no validation line of pair 'csv'"
# --tuned-max-cost F: CTNet takes its best validation line among those whose
# train_seconds_per_period is at most F times that of retrain's chosen line
# (retrain's best AUC, not its cheapest); without the flag, its best line
{
    echo '{"method": "retrain", "pair": "csv", "split": "validation", "auc_mean": 0.7, "lr": 0.003, "epochs": 1, "train_seconds_per_period": 1.0}'
    echo '{"method": "retrain", "pair": "csv", "split": "validation", "auc_mean": 0.6, "lr": 0.002, "epochs": 1, "train_seconds_per_period": 0.1}'
    echo '{"method": "ctnet", "pair": "csv", "split": "validation", "auc_mean": 0.9, "lr": 0.005, "epochs": 4, "train_seconds_per_period": 0.5}'
    echo '{"method": "ctnet", "pair": "csv", "split": "validation", "auc_mean": 0.85, "lr": 0.007, "epochs": 3}'
    echo '{"method": "ctnet", "pair": "csv", "split": "validation", "auc_mean": 0.8, "lr": 0.006, "epochs": 3, "train_seconds_per_period": 0.2000000015}'
    echo '{"method": "ctnet", "pair": "csv", "split": "validation", "auc_mean": 0.6, "lr": 0.004, "epochs": 2, "train_seconds_per_period": 0.2}'
    echo '{"method": "ctnet", "pair": "csv", "split": "validation", "auc_mean": 0.6, "lr": 0.008, "epochs": 1, "train_seconds_per_period": 0.01}'
} >"$T/tuned5.jsonl"
expect 0 "$BIN" ctnet eval --help
has "$T/out" "tuned-max-cost"
expect 0 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet --tuned "$T/tuned5.jsonl" --json
has "$T/out" '"method": "ctnet".*"lr": 0.005, "epochs": 4,'
expect 0 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet,retrain --tuned "$T/tuned5.jsonl" --tuned-max-cost 0.2 --json
has "$T/out" '"method": "ctnet".*"lr": 0.004, "epochs": 2,.*"tuned_max_cost": 0.2}'
has "$T/out" '"method": "retrain".*"lr": 0.003, "epochs": 1,'
# the same choice from tools/ctnet_best.py
TOOLS=$(dirname "$0")/../tools
if command -v python3 >/dev/null; then
    python3 "$TOOLS/ctnet_best.py" "$T/tuned5.jsonl" csv ctnet --max-cost 0.2 >"$T/out" 2>"$T/err" && ok || bad "ctnet_best.py --max-cost"
    has "$T/out" '^0.004 2 '
    python3 "$TOOLS/ctnet_best.py" "$T/tuned5.jsonl" csv ctnet >"$T/out" 2>"$T/err" && ok || bad "ctnet_best.py"
    has "$T/out" '^0.005 4 '
    expect 1 python3 "$TOOLS/ctnet_best.py" "$T/tuned5.jsonl" csv ctnet --max-cost 0.005
    has "$T/err" "within 0.005"
    expect 1 python3 "$TOOLS/ctnet_best.py" "$T/tuned5.jsonl" csv ctnet --max-cost -1
fi
for v in 0 -0.1 11 nan x; do
    expect 2 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet --tuned "$T/tuned5.jsonl" --tuned-max-cost "$v" --json
    lines "$T/err" 1
done
expect 2 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet --tuned-max-cost 0.2 --json
has "$T/err" "needs --tuned"
# no ctnet line within the bound, or no retrain line to measure it by: an error, not a run
expect 1 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet --tuned "$T/tuned5.jsonl" --tuned-max-cost 0.005 --json
has "$T/err" "no ctnet line of pair 'csv' within 0.005"
grep -v '"retrain"' "$T/tuned5.jsonl" >"$T/tuned6.jsonl"
expect 1 "$BIN" ctnet eval $S $M --seeds 1 --methods ctnet --tuned "$T/tuned6.jsonl" --tuned-max-cost 0.2 --json
has "$T/err" "needs retrain's validation line"

e2e_done
