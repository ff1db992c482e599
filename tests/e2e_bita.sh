#!/usr/bin/env bash
# End-to-end test of `tessera bita`: a tiny `bita tune` leaves the base
# model byte-for-byte unchanged and writes a small adapter; `bita generate
# --temperature 0` prints exactly what `lm generate --temperature 0` prints
# (tiny adapter and the shipped one, several held-out prompts, 256 new
# tokens); `bita bench` prints one JSON object; misuse is exit 2.
# The full held-out set runs in the bench (docs/bita.md).
# Usage: tests/e2e_bita.sh path/to/tessera   (cwd = repository root)
set -u
BIN=${1:?usage: e2e_bita.sh path/to/tessera}
M=models/pycode
A=models/bita_pycode.safetensors
CORPUS=/usr/lib/python3.11
if [ ! -r "$M/model.safetensors" ]; then
    echo "SKIP: $M not found"
    exit 0
fi
TMP=$(mktemp -d /tmp/tessera_e2e_bita.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

P1=$'def qsize(self):\n    """Number of items in the queue."""\n'
P2=$'def current_task(loop=None):\n    """Return a currently executed task."""\n'
P3=$'def parse(source, filename=\'<unknown>\', mode=\'exec\', *,\n          type_comments=False, feature_version=None):\n    """\n    Parse the source into an AST node.\n    """\n'

same() { # adapter prompt [extra bita flags]
    local ad=$1 pr=$2
    shift 2
    "$BIN" lm generate --model "$M" --prompt "$pr" --temperature 0 --max-tokens 256 >"$TMP/a.txt" 2>/dev/null
    local ra=$?
    "$BIN" bita generate --model "$M" --adapter "$ad" --prompt "$pr" --max-tokens 256 "$@" >"$TMP/b.txt" 2>/dev/null
    local rb=$?
    [ $ra -eq 0 ] && [ $rb -eq 0 ] && [ -s "$TMP/a.txt" ] && cmp -s "$TMP/a.txt" "$TMP/b.txt" && ok ||
        bad "bita generate differs from lm generate ($ad, $* , prompt ${pr:0:20})"
}

# 1. a tiny tune: base unchanged, adapter small and separate
if [ -d "$CORPUS" ]; then
    before=$(cksum <"$M/model.safetensors")
    "$BIN" bita tune --model "$M" --out "$TMP/ad.safetensors" --examples 8 --eval-examples 2 --steps 2 --batch 2 \
        --groups 4 --response 24 --prompt-max 32 --json >"$TMP/tune.json" 2>/dev/null && ok || bad "bita tune failed"
    after=$(cksum <"$M/model.safetensors")
    [ "$before" = "$after" ] && ok || bad "the base model changed"
    # SIGTERM while the examples are still being generated (before any step):
    # nothing to checkpoint, so the process ends at once (it ran on for minutes)
    "$BIN" bita tune --model "$M" --out "$TMP/term.safetensors" --examples 2400 --threads 1 >/dev/null 2>&1 &
    tp=$!
    sleep 1
    kill -TERM $tp
    for _ in $(seq 50); do kill -0 $tp 2>/dev/null || break; sleep 0.1; done
    if kill -0 $tp 2>/dev/null; then
        kill -9 $tp; wait $tp 2>/dev/null; bad "bita tune ran on 5 s after SIGTERM before its first step"
    else
        wait $tp; trc=$?
        [ $trc -eq 143 ] && [ ! -e "$TMP/term.safetensors" ] && ok || bad "bita tune after SIGTERM: exit $trc"
    fi
    grep -q '"base_unchanged":true' "$TMP/tune.json" && ok || bad "tune did not report the base unchanged"
    sz=$(stat -c %s "$TMP/ad.safetensors" 2>/dev/null || echo 999999999)
    [ "$sz" -lt 1000000 ] && ok || bad "adapter is not small ($sz bytes)"
    same "$TMP/ad.safetensors" "$P1"
    same "$TMP/ad.safetensors" "$P2" --tree-top 3 --tree-depth 4
    # stop and resume leave a loadable adapter
    "$BIN" bita tune --model "$M" --out "$TMP/ad.safetensors" --examples 8 --eval-examples 2 --steps 4 --batch 2 \
        --groups 4 --response 24 --prompt-max 32 --resume >/dev/null 2>&1 && ok || bad "bita tune --resume failed"
else
    echo "note: $CORPUS absent, tune part skipped"
fi

# 2. the shipped adapter
if [ -r "$A" ]; then
    same "$A" "$P1"
    same "$A" "$P2"
    same "$A" "$P3"
    same "$A" "$P1" --tree-top 1 --tree-depth 1
    printf '{"prompt": "def qsize(self):\\n    \\"\\"\\"Number of items in the queue.\\"\\"\\"\\n"}\n{"prompt": "import os\\n"}\n' >"$TMP/p.jsonl"
    "$BIN" bita bench --model "$M" --adapter "$A" --prompts "$TMP/p.jsonl" --max-tokens 64 --json >"$TMP/bench.json" 2>/dev/null &&
        ok || bad "bita bench failed"
    for f in prompts identical tokens_per_step speedup ngram_tokens_per_step ngram_speedup level_acceptance; do
        grep -q "\"$f\":" "$TMP/bench.json" && ok || bad "bench JSON lacks $f"
    done
    grep -q '"prompts":2,"identical":2' "$TMP/bench.json" && ok || bad "bench: not identical on 2 prompts"
    "$BIN" bita generate --model "$M" --adapter "$A" --prompt "$P1" --temperature 0.8 --max-tokens 40 --seed 3 \
        >/dev/null 2>&1 && ok || bad "sampling run failed"
else
    echo "note: $A absent, shipped-adapter part skipped"
fi

# 3. misuse
"$BIN" bita generate --bogus 1 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "unknown flag not exit 2"
"$BIN" bita generate --model "$M" >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "missing --prompt not exit 2"
"$BIN" bita tune >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "missing --out not exit 2"
"$BIN" bita generate --model "$M" --adapter "$M/config.json" --prompt x >/dev/null 2>&1
[ $? -eq 1 ] && ok || bad "a bad adapter file not exit 1"

echo "e2e_bita: $pass passed, $fails failed"
[ $fails -eq 0 ]
