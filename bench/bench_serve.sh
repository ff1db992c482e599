#!/usr/bin/env bash
# Load benchmark of `tessera serve` on the shipped code model (loopback
# only: the server binds 127.0.0.1 on a free port; bench_serve_client
# connects to 127.0.0.1 only). The same numbered requests (half greedy,
# half seeded sampling, streamed, --max-tokens each) run with 1 client
# (the sequential reference) and 8 concurrent clients, alternating, --reps
# times; then once with 64 clients. The server admits --max-concurrent
# requests (32): at 64 clients the rest get 429, which the client checks
# for OpenAI's error body and retries after 20 ms, as clients do, so the
# overload path runs and every request still completes. Each run prints one JSON line:
# requests/s, aggregate tokens/s, latency p50/p99, time to first token
# p50/p99, errors by status, the share of responses bit-identical (same
# completion text) to the first sequential run, and the 1-minute load
# average when it ended. A summary line gives the median tokens/s at 1 and
# 8 clients, their ratio (target >= 3) and the median of the per-repetition
# ratios, and whether the errors held: none at 1 and 8 clients, at 64 only
# clean 429/503 replies (each retried) and none left at the end.
#
# tessera runs twice per repetition: with its prompt cache (the server's
# default) and with --prompt-cache 0, each run on a freshly started server
# (so every run starts with an empty prompt cache; the warm-up uses prompts
# of its own). Each run's line gives the share of prompt tokens whose K/V
# came from the cache (from /metrics). The bench sends every prompt twice
# (request i uses prompt i mod 64), so at most about half the prompt
# tokens can be reused. Both are compared with the first sequential run
# without the cache. With TSR_BIN_BASE set to another tessera binary (an
# older build), that server (its defaults) runs in every repetition too.
#
# With LLAMA_CPP_DIR set to a llama.cpp build (llama-server in it or in its
# bin/), llama.cpp's server runs the same model (converted by `tessera lm
# convert --to gguf`, bf16 as shipped) with 8 slots and the same thread
# count, driven by the same client with the same requests, alternating with
# tessera in each repetition (the client adds top_k 0 and min_p 0 so that
# llama.cpp samples as tessera does: temperature, then top-p). The summary
# then holds both servers' medians and tessera/llama.cpp ratios. Without it,
# that part is skipped with a message.
#
#   bench/bench_serve.sh [--requests N] [--max-tokens N] [--reps N] [--threads N] [--max-concurrent N] [--soak SECONDS]
#
# --threads: the servers' compute threads (default $TESSERA_THREADS, else
# all cores; on a machine other jobs share, 1 avoids an OpenMP team waiting
# on a descheduled thread). --reps 0 skips the throughput runs. --soak S
# then starts the default server (`tessera serve` with no model flag: every
# shipped model, the EBRM catalog included) and drives 8 clients for S
# seconds, sampling its resident memory every 10 s (one JSON line per
# sample, then the figure after the first minute, the peak and the end).
# Every run is bounded by its request count; servers are stopped by their
# own pids.
set -u
. "$(dirname "$0")/../tests/serve_wait.sh"
cd "$(dirname "$0")/.."
BIN=${TSR_BIN:-build/tessera}
BASE=${TSR_BIN_BASE:-}
CLIENT=${TSR_CLIENT:-build/bench_serve_client}
REQ=128
MAXTOK=64
REPS=3
SOAK=0
MAXC=32
THREADS=${TESSERA_THREADS:-$(nproc)}
usage() {
    echo "usage: bench/bench_serve.sh [--requests N] [--max-tokens N] [--reps N] [--threads N] [--max-concurrent N] [--soak SECONDS]" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case $1 in
    --requests) REQ=$2 ;;
    --max-tokens) MAXTOK=$2 ;;
    --reps) REPS=$2 ;;
    --threads) THREADS=$2 ;;
    --soak) SOAK=$2 ;;
    --max-concurrent) MAXC=$2 ;;
    *) usage ;;
    esac
    shift 2
done
for v in "$REQ" "$MAXTOK" "$REPS" "$THREADS" "$SOAK" "$MAXC"; do
    [[ $v =~ ^[0-9]+$ ]] || usage
done
[ "$THREADS" -ge 1 ] && [ "$MAXC" -ge 8 ] || usage
[ -z "$BASE" ] || [ -x "$BASE" ] || { echo "TSR_BIN_BASE: $BASE is not an executable" >&2; exit 1; }
[ -x "$BIN" ] && [ -x "$CLIENT" ] || { echo "build first: cmake --build build (needs $BIN and $CLIENT)" >&2; exit 1; }

LS=
if [ "$REPS" -ge 1 ] && [ -n "${LLAMA_CPP_DIR:-}" ]; then
    LS=$LLAMA_CPP_DIR/bin/llama-server
    [ -x "$LS" ] || LS=$LLAMA_CPP_DIR/llama-server
    if [ ! -x "$LS" ]; then
        echo "bench_serve: no llama-server in $LLAMA_CPP_DIR or $LLAMA_CPP_DIR/bin (build its llama-server target)" >&2
        exit 1
    fi
elif [ "$REPS" -ge 1 ]; then
    echo "bench_serve: LLAMA_CPP_DIR is not set (a llama.cpp build with llama-server); the llama.cpp comparison is skipped" >&2
fi

TMP=$(mktemp -d /tmp/tessera_bench_serve.XXXXXX)
SPID=
LPID=
cleanup() {
    [ -n "$SPID" ] && kill -TERM "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
    [ -n "$LPID" ] && kill -TERM "$LPID" 2>/dev/null && wait "$LPID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

# starts `tessera serve --port 0 ARGS...` as SPID, sets PORT ($SBIN: the binary, default $BIN)
start_tessera() {
    "${SBIN:-$BIN}" serve --port 0 "$@" --quiet --threads "$THREADS" >"$TMP/serve.out" 2>"$TMP/serve.err" &
    SPID=$!
    PORT=$(serve_wait "$TMP/serve.out" "$SPID")
    [ -n "$PORT" ] || { echo "server did not start: $(cat "$TMP/serve.err")" >&2; exit 1; }
}
load1() { cut -d' ' -f1 /proc/loadavg; }
CPU=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')

if [ "$REPS" -ge 1 ]; then
# warm-up prompts that are not the bench's
for i in 0 1 2 3 4 5 6 7; do echo "{\"prompt\": \"# warm-up $i: the server's pages and caches\\n\"}"; done >"$TMP/warm.jsonl"
# (re)starts tessera for one run, warmed up: $1 on (prompt cache), off
# (--prompt-cache 0) or base ($TSR_BIN_BASE with its defaults)
fresh_tessera() {
    [ -n "$SPID" ] && kill -TERM "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
    SPID=
    case $1 in
    on) SBIN=$BIN start_tessera --lm models/pycode --space none --bita none --max-concurrent "$MAXC" ;;
    off) SBIN=$BIN start_tessera --lm models/pycode --space none --bita none --max-concurrent "$MAXC" --prompt-cache 0 ;;
    base) SBIN=$BASE start_tessera --lm models/pycode --space none --bita none --max-concurrent "$MAXC" ;;
    esac
    "$CLIENT" --port "$PORT" --clients 8 --requests 16 --max-tokens 8 --prompts "$TMP/warm.jsonl" >/dev/null
}
fresh_tessera off

LPORT=
if [ -n "$LS" ]; then
    "$BIN" lm convert --model models/pycode --to gguf --dtype bf16 --tokenizer models/pycode/tokenizer.json \
        --out "$TMP/pycode.gguf" 2>"$TMP/conv.err" || { echo "convert: $(cat "$TMP/conv.err")" >&2; exit 1; }
    # a port nothing listens on yet
    for p in $(shuf -i 20000-60000 -n 20); do
        (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && continue
        LPORT=$p
        break
    done
    # 8 slots of the model's 256 positions each
    "$LS" -m "$TMP/pycode.gguf" -t "$THREADS" -tb "$THREADS" -c 2048 -np 8 --host 127.0.0.1 --port "$LPORT" \
        --no-webui >"$TMP/llama.out" 2>"$TMP/llama.err" &
    LPID=$!
    for _ in $(seq 1 300); do
        (exec 3<>/dev/tcp/127.0.0.1/$LPORT) 2>/dev/null && grep -q 'server is listening' "$TMP/llama.err" && break
        sleep 0.1
    done
    grep -q 'server is listening' "$TMP/llama.err" ||
        { echo "llama-server did not start: $(tail -3 "$TMP/llama.err")" >&2; exit 1; }
    LVER=$(grep -o 'build: [^ ]* ([^)]*)' "$TMP/llama.err" | head -1)
fi

echo "{\"bench\": \"serve\", \"cpu\": \"$CPU\", \"cores\": $(nproc), \"threads\": $THREADS, \"model\": \"models/pycode\", \"dtype\": \"bf16\", \"requests\": $REQ, \"max_tokens\": $MAXTOK, \"reps\": $REPS, \"max_concurrent\": $MAXC, \"llama_cpp\": \"${LVER:-none}\", \"load1_start\": $(load1)}"

# share of requests answered 200 in both runs whose texts are equal, and the count compared
same_as() {
    join -t $'\t' <(sort "$1") <(sort "$2") |
        awk -F'\t' '$2 == 200 && $5 == 200 {n++; if ($3 == $6) s++} END {printf "%.4f, \"compared\": %d", n ? s / n : 0, n}'
}
# errors of a run: failed requests (any status but 200) at the end, plus,
# with $6 set, rejections and unclean error replies
num() { echo "$1" | grep -o "\"$2\": [0-9]*" | grep -o '[0-9]*$'; }
# one run: server name, port, clients, output tag, extra body members, client flags
# prompt-cache counters of the tessera server on port $1: reused and looked-up tokens
pc_counts() {
    curl -s "http://127.0.0.1:$1/metrics" | awk '/^tessera_llm_prompt_cache_reused_tokens_total / {r = $2}
        /^tessera_llm_prompt_cache_lookup_tokens_total / {l = $2} END {print r + 0, l + 0}'
}
run() {
    local line ref=${1%%-*} pc0 pc1 hit=
    [[ $1 == tessera* ]] && pc0=$(pc_counts "$2")
    line=$("$CLIENT" --port "$2" --clients "$3" --requests "$REQ" --max-tokens "$MAXTOK" --out "$TMP/$4.tsv" ${5:+--extra "$5"} ${6:-})
    if [[ $1 == tessera* ]]; then
        pc1=$(pc_counts "$2")
        hit=", \"prompt_cache_hit_ratio\": $(echo "$pc0 $pc1" | awk '{printf "%.4f", ($4 > $2 ? ($3 - $1) / ($4 - $2) : 0)}')"
        echo "$pc0 $pc1" | awk '{if ($4 > $2) print ($3 - $1) / ($4 - $2)}' >>"$TMP/$1-c$3.hit"
    fi
    [ -f "$TMP/$ref-ref.tsv" ] || cp "$TMP/$4.tsv" "$TMP/$ref-ref.tsv"
    echo "{\"server\": \"$1\", ${line#\{}" | sed "s/}\$/$hit, \"identical_to_sequential\": $(same_as "$TMP/$ref-ref.tsv" "$TMP/$4.tsv"), \"load1\": $(load1)}/"
    echo "$line" | grep -o '"tok_per_s": [0-9.]*' | grep -o '[0-9.]*$' >>"$TMP/$1-c$3.tps"
    # failed (final status not 200) and unclean (an error reply without OpenAI's error body)
    echo "$1 $3 $(($(num "$line" err_429) + $(num "$line" err_503) + $(num "$line" err_other))) $(num "$line" unclean_errors) $(num "$line" rejected_retried)" >>"$TMP/errors"
}
LX='{"top_k": 0, "min_p": 0}'

# warm-up (caches, pages), not measured
[ -n "$LS" ] && "$CLIENT" --port "$LPORT" --clients 8 --requests 16 --max-tokens 8 --prompts "$TMP/warm.jsonl" --extra "$LX" >/dev/null

# each tessera run on a fresh server: the first, without the prompt cache, is the reference
for r in $(seq "$REPS"); do
    [ "$r" -gt 1 ] && fresh_tessera off
    run tessera-nocache "$PORT" 1 "n1-$r"
    fresh_tessera off
    run tessera-nocache "$PORT" 8 "n8-$r"
    fresh_tessera on
    run tessera "$PORT" 1 "t1-$r"
    fresh_tessera on
    run tessera "$PORT" 8 "t8-$r"
    if [ -n "$BASE" ]; then
        fresh_tessera base
        run tessera-base "$PORT" 1 "b1-$r"
        fresh_tessera base
        run tessera-base "$PORT" 8 "b8-$r"
    fi
    if [ -n "$LS" ]; then
        run llama.cpp "$LPORT" 1 "l1-$r" "$LX"
        run llama.cpp "$LPORT" 8 "l8-$r" "$LX"
    fi
done
# 64 clients against --max-concurrent: the overload path (429, retried)
fresh_tessera on
run tessera "$PORT" 64 t64 "" "--retry-ms 20"

median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
t1=$(median <"$TMP/tessera-c1.tps")
t8=$(median <"$TMP/tessera-c8.tps")
t64=$(cat "$TMP/tessera-c64.tps")
rr=$(paste "$TMP/tessera-c8.tps" "$TMP/tessera-c1.tps" | awk '{print $1 / $2}' | median)
# errors: none at 1 and 8 clients; at 64 only clean 429/503, each retried to a 200
e18=$(awk '$1 ~ /^tessera/ && $2 < 64 {s += $3 + $4 + $5} END {print s + 0}' "$TMP/errors")
e64=$(awk '$1 == "tessera" && $2 == 64 {print $3 + $4}' "$TMP/errors")
rej64=$(awk '$1 == "tessera" && $2 == 64 {print $5}' "$TMP/errors")
held=$([ "$e18" -eq 0 ] && [ "$e64" -eq 0 ] && echo true || echo false)
n1=$(median <"$TMP/tessera-nocache-c1.tps")
n8=$(median <"$TMP/tessera-nocache-c8.tps")
nrr=$(paste "$TMP/tessera-nocache-c8.tps" "$TMP/tessera-nocache-c1.tps" | awk '{print $1 / $2}' | median)
h1=$(median <"$TMP/tessera-c1.hit")
h8=$(median <"$TMP/tessera-c8.hit")
sum="{\"tessera_tok_s_1\": $t1, \"tessera_tok_s_8\": $t8, \"tok_s_8_over_1\": $(awk -v a="$t1" -v b="$t8" 'BEGIN {printf "%.2f", b / a}'), \"median_rep_ratio_8_over_1\": $(printf '%.2f' "$rr"), \"prompt_cache_hit_ratio_1\": $h1, \"prompt_cache_hit_ratio_8\": $h8, \"nocache_tok_s_1\": $n1, \"nocache_tok_s_8\": $n8, \"nocache_8_over_1\": $(awk -v a="$n1" -v b="$n8" 'BEGIN {printf "%.2f", b / a}'), \"nocache_median_rep_ratio_8_over_1\": $(printf '%.2f' "$nrr"), \"tok_s_64_over_1\": $(awk -v a="$t1" -v b="$t64" 'BEGIN {printf "%.2f", b / a}'), \"target_8_over_1\": 3, \"errors_1_8\": $e18, \"rejected_64_clean_429_503\": $rej64, \"failed_or_unclean_64\": $e64, \"errors_rule_held\": $held"
if [ -n "$BASE" ]; then
    b1=$(median <"$TMP/tessera-base-c1.tps")
    b8=$(median <"$TMP/tessera-base-c8.tps")
    sum="$sum, \"base_tok_s_1\": $b1, \"base_tok_s_8\": $b8, \"base_8_over_1\": $(awk -v a="$b1" -v b="$b8" 'BEGIN {printf "%.2f", b / a}')"
fi
if [ -n "$LS" ]; then
    l1=$(median <"$TMP/llama.cpp-c1.tps")
    l8=$(median <"$TMP/llama.cpp-c8.tps")
    sum="$sum, \"llama_tok_s_1\": $l1, \"llama_tok_s_8\": $l8, \"llama_8_over_1\": $(awk -v a="$l1" -v b="$l8" 'BEGIN {printf "%.2f", b / a}'), \"tessera_over_llama_1\": $(awk -v a="$l1" -v b="$t1" 'BEGIN {printf "%.2f", b / a}'), \"tessera_over_llama_8\": $(awk -v a="$l8" -v b="$t8" 'BEGIN {printf "%.2f", b / a}')"
fi
echo "$sum, \"load1\": $(load1)}"
kill -TERM "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
SPID=
[ -n "$LPID" ] && kill -TERM "$LPID" 2>/dev/null && wait "$LPID" 2>/dev/null
LPID=
fi

if [ "$SOAK" -gt 0 ]; then
    # the default server, as `tessera serve` starts it: every shipped model
    t_start=$(date +%s.%N)
    start_tessera
    rss() { awk '/^VmRSS/ {print $2}' /proc/"$SPID"/status; }
    echo "{\"soak\": \"serve\", \"cpu\": \"$CPU\", \"threads\": $THREADS, \"server\": \"default (every shipped model)\", \"start_s\": $(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'), \"rss_start_kib\": $(rss), \"endpoints_loaded\": \"$(grep -o "^[^:]*: [a-z]*: /" "$TMP/serve.err" | cut -d: -f2 | tr -d " /" | tr "\n" " " | sed "s/ $//")\", \"load1\": $(load1)}"
    t_end=$(($(date +%s) + SOAK))
    (while [ "$(date +%s)" -lt "$t_end" ]; do
        "$CLIENT" --port "$PORT" --clients 8 --requests 64 --max-tokens "$MAXTOK" >>"$TMP/soak.jsonl"
    done) &
    LOAD=$!
    t0=$(date +%s)
    first=
    peak=0
    while kill -0 "$LOAD" 2>/dev/null; do
        sleep 10
        r=$(rss)
        t=$(($(date +%s) - t0))
        echo "{\"soak_t_s\": $t, \"rss_kib\": $r, \"load1\": $(load1)}"
        [ -z "$first" ] && [ "$t" -ge 60 ] && first=$r
        [ -n "$first" ] && [ "$r" -gt "$peak" ] && peak=$r
        last=$r
    done
    wait "$LOAD"
    errs=$(grep -o '"err_[a-z0-9]*": [0-9]*' "$TMP/soak.jsonl" | awk '{s += $2} END {print s + 0}')
    reqs=$(grep -o '"ok": [0-9]*' "$TMP/soak.jsonl" | awk '{s += $2} END {print s + 0}')
    echo "{\"soak_s\": $SOAK, \"requests_ok\": $reqs, \"errors\": $errs, \"rss_after_warmup_kib\": ${first:-0}, \"rss_peak_after_warmup_kib\": $peak, \"rss_end_kib\": ${last:-0}, \"load1\": $(load1)}"
fi
