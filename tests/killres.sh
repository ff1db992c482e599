#!/usr/bin/env bash
# Kill-and-resume check for one train command, as a user meets it:
#   killres.sh DIR SEEDS CMD... (CMD names its outputs under @D@)
# 1. CMD straight into DIR/ref (the reference, and its wall time T);
# 2. for each seed: CMD into DIR/kS, SIGKILLed after a random sleep (from F/2, F the time to the
#    first training state on disk, over a window that grows each try),
#    again and again (with --resume once a training state is on disk) until
#    a run ends by itself; after every kill no finished-named file may be
#    torn (tools/st_whole.py), and at the end every file other than logs
#    and .tmp must equal the reference's byte for byte, and the metrics
#    log (*.jsonl) the reference's records, timings aside;
# 3. --resume with no state, and with another --seed, exit 1 with one
#    error line naming the state / the seed.
# KILLRES_INIT=DIR: DIR's files are copied into every run directory first
# (a model directory that a later stage trains on); KILLRES_SKIP=GLOB: files
# not compared (one that records wall-clock timings).
# Output: one line per failure, "killres: PASS ..." or "killres: FAIL ...".
set -u
DIR=${1:?usage: killres.sh DIR SEEDS CMD...}; SEEDS=${2:?}; shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
fails=0
bad() { fails=$((fails + 1)); echo "FAIL: $*"; }
cmd_in() { local d=$1; shift; A=(); for x in "$@"; do A+=("${x//@D@/$d}"); done; }  # -> A
states() { find "$1" -name '*state*' ! -name '*.tmp' 2>/dev/null | grep -q .; }
logrecs() { # each record in order, less its timings
    /usr/bin/python3 -c 'import json,sys
for l in open(sys.argv[1]):
    j=json.loads(l); print(json.dumps({a:b for a,b in j.items() if a!="time" and not a.endswith("_per_s")},sort_keys=True))' "$1"
}
compare() { # every finished file of the reference, byte for byte
    local f
    for f in $(cd "$DIR/ref" && find . -type f ! -name '*.tmp' ! -name '*.jsonl' ! -name '*.log' ! -name "${KILLRES_SKIP:-.}" | sort); do
        cmp -s "$DIR/ref/$f" "$1/$f" || bad "$1/$f differs from the straight run's"
    done
    for f in $(cd "$DIR/ref" && find . -name '*.jsonl' | sort); do # metrics logs
        logrecs "$DIR/ref/$f" >"$1/ref.recs"; logrecs "$1/$f" >"$1/got.recs"
        cmp -s "$1/ref.recs" "$1/got.recs" ||
            bad "$1/$f: $(wc -l <"$1/got.recs") records, not the straight run's $(wc -l <"$1/ref.recs") (timings aside)"
    done
}
fresh() { mkdir -p "$1" && if [ -n "${KILLRES_INIT:-}" ]; then cp -r "$KILLRES_INIT"/. "$1"/; fi; }
rm -rf "$DIR"; fresh "$DIR/ref"
now() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(now) F=-1 # F: ms until the first training state is on disk
cmd_in "$DIR/ref" "$@"; "${A[@]}" >"$DIR/ref.out" 2>"$DIR/ref.err" & pid=$!
while kill -0 $pid 2>/dev/null; do [ $F -lt 0 ] && states "$DIR/ref" && F=$(( $(now) - t0 )); sleep 0.01; done
wait $pid || { echo "killres: FAIL straight run: $(tail -2 "$DIR/ref.err")"; exit 1; }
T=$(( $(now) - t0 )); [ $F -ge 0 ] || F=$T
kills=0 resumes=0
for s in $(seq 1 "$SEEDS"); do
    RANDOM=$s; d="$DIR/k$s"; fresh "$d"; done_=0
    for try in $(seq 1 60); do
        r=(); states "$d" && r=(--resume) && resumes=$((resumes + 1))
        cmd_in "$d" "$@" "${r[@]}"; "${A[@]}" >"$d/out" 2>"$d/err" & pid=$!
        ms=$((F / 2 + RANDOM * (T - F / 2) * try / 3 / 32768)) # a window that grows
        [ "$try" -lt 60 ] && sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
        [ "$try" -lt 60 ] && kill -9 $pid 2>/dev/null
        wait $pid 2>/dev/null; rc=$?
        if [ $rc -eq 0 ]; then done_=1; break; fi
        [ $rc -eq 137 ] || { bad "seed $s try $try: exit $rc: $(tail -1 "$d/err")"; break; }
        kills=$((kills + 1))
        /usr/bin/python3 "$HERE/../tools/st_whole.py" "$d" || bad "seed $s try $try: a torn file under a final name"
    done
    [ $done_ -eq 1 ] && compare "$d"
done
fresh "$DIR/none"
cmd_in "$DIR/none" "$@" --resume; "${A[@]}" >/dev/null 2>"$DIR/none.err"; rc=$?
[ $rc -eq 1 ] && [ "$(grep -c "^tessera: error: .*state" "$DIR/none.err")" -eq 1 ] || bad "--resume with no state: exit $rc: $(head -3 "$DIR/none.err")"
cmd_in "$DIR/k1" "$@" --resume --seed 12345; "${A[@]}" >/dev/null 2>"$DIR/seed.err"; rc=$?
[ $rc -eq 1 ] && [ "$(grep -c "^tessera: error: .*seed" "$DIR/seed.err")" -eq 1 ] || bad "--resume with another --seed: exit $rc: $(head -3 "$DIR/seed.err")"
msg="straight ${T} ms (first state ${F} ms), $SEEDS seeds, $kills kills, $resumes resumes"
if [ $fails -eq 0 ]; then echo "killres: PASS $msg"; else echo "killres: FAIL ($fails) $msg"; exit 1; fi
