#!/usr/bin/env bash
# Load benchmark of `tessera serve` on the shipped code model (loopback
# only: the server binds 127.0.0.1 on a free port; bench_serve_client
# connects to 127.0.0.1 only). The same numbered requests (half greedy,
# half seeded sampling, streamed, --max-tokens each) run with 1 client
# (the sequential reference), then 8, then 64 concurrent clients. Each run
# prints one JSON line: requests/s, aggregate tokens/s, latency p50/p99,
# time to first token p50/p99, errors by status, and the share of
# responses bit-identical (same completion text) to the sequential run.
# A last line gives tokens/s at 8 clients over 1 client (target >= 3).
#
#   bench/bench_serve.sh [--requests N] [--max-tokens N] [--soak SECONDS]
#
# --soak S additionally drives 8 clients for S seconds and samples the
# server's resident memory every 10 s (one JSON line per sample, then the
# growth after the first minute). Every run is bounded by its request count;
# the server is stopped by its own pid.
set -u
cd "$(dirname "$0")/.."
BIN=${TSR_BIN:-build/tessera}
CLIENT=${TSR_CLIENT:-build/bench_serve_client}
REQ=128
MAXTOK=64
SOAK=0
while [ $# -gt 0 ]; do
    case $1 in
    --requests) REQ=$2; shift 2 ;;
    --max-tokens) MAXTOK=$2; shift 2 ;;
    --soak) SOAK=$2; shift 2 ;;
    *) echo "usage: bench/bench_serve.sh [--requests N] [--max-tokens N] [--soak SECONDS]" >&2; exit 2 ;;
    esac
done
[ -x "$BIN" ] && [ -x "$CLIENT" ] || { echo "build first: cmake --build build (needs $BIN and $CLIENT)" >&2; exit 1; }
TMP=$(mktemp -d /tmp/tessera_bench_serve.XXXXXX)
SPID=
cleanup() {
    [ -n "$SPID" ] && kill -TERM "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

"$BIN" serve --port 0 --space none --bita none --quiet "$@" >"$TMP/serve.out" 2>"$TMP/serve.err" &
SPID=$!
PORT=
for _ in $(seq 1 300); do
    PORT=$(grep -o '"port": [0-9]*' "$TMP/serve.out" 2>/dev/null | grep -o '[0-9]*$')
    [ -n "$PORT" ] && break
    sleep 0.1
done
[ -n "$PORT" ] || { echo "server did not start: $(cat "$TMP/serve.err")" >&2; exit 1; }
CPU=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
echo "{\"bench\": \"serve\", \"cpu\": \"$CPU\", \"cores\": $(nproc), \"threads\": \"${TESSERA_THREADS:-all}\", \"model\": \"models/pycode\", \"requests\": $REQ, \"max_tokens\": $MAXTOK}"

# warm-up (caches, pages), not measured
"$CLIENT" --port "$PORT" --clients 4 --requests 8 --max-tokens 8 >/dev/null

declare -A TPS
for c in 1 8 64; do
    line=$("$CLIENT" --port "$PORT" --clients $c --requests "$REQ" --max-tokens "$MAXTOK" --out "$TMP/r$c.tsv")
    same=$(join -t $'\t' <(sort "$TMP/r1.tsv") <(sort "$TMP/r$c.tsv") |
        awk -F'\t' '$2 == 200 && $5 == 200 {n++; if ($3 == $6) s++} END {printf "%.4f", n ? s / n : 0}')
    cmpn=$(join -t $'\t' <(sort "$TMP/r1.tsv") <(sort "$TMP/r$c.tsv") | awk -F'\t' '$2 == 200 && $5 == 200' | wc -l)
    echo "${line%\}}, \"identical_to_sequential\": $same, \"compared\": $cmpn}"
    TPS[$c]=$(echo "$line" | grep -o '"tok_per_s": [0-9.]*' | grep -o '[0-9.]*$')
done
awk -v a="${TPS[1]}" -v b="${TPS[8]}" -v c="${TPS[64]}" \
    'BEGIN {printf "{\"tok_s_8_over_1\": %.2f, \"tok_s_64_over_1\": %.2f, \"target_8_over_1\": 3}\n", b / a, c / a}'

if [ "$SOAK" -gt 0 ]; then
    rss() { awk '/^VmRSS/ {print $2}' /proc/"$SPID"/status; }
    t_end=$(($(date +%s) + SOAK))
    (while [ "$(date +%s)" -lt "$t_end" ]; do
        "$CLIENT" --port "$PORT" --clients 8 --requests 64 --max-tokens "$MAXTOK" >>"$TMP/soak.jsonl"
    done) &
    LOAD=$!
    t0=$(date +%s)
    first=
    while kill -0 "$LOAD" 2>/dev/null; do
        sleep 10
        r=$(rss)
        t=$(($(date +%s) - t0))
        echo "{\"soak_t_s\": $t, \"rss_kib\": $r}"
        [ -z "$first" ] && [ "$t" -ge 60 ] && first=$r
        last=$r
    done
    wait "$LOAD"
    errs=$(grep -o '"err_other": [0-9]*' "$TMP/soak.jsonl" | awk '{s += $2} END {print s + 0}')
    reqs=$(grep -o '"ok": [0-9]*' "$TMP/soak.jsonl" | awk '{s += $2} END {print s + 0}')
    echo "{\"soak_s\": $SOAK, \"requests_ok\": $reqs, \"errors\": $errs, \"rss_after_warmup_kib\": ${first:-0}, \"rss_end_kib\": ${last:-0}}"
fi
