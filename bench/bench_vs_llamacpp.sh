#!/usr/bin/env bash
# tessera against llama.cpp on the same GGUF files, interleaved: decode
# (tg128) and prefill (pp64) tokens/s for models/pycode and a random 135M
# Llama (dim 1024, 8 layers, 16 heads, hidden 2816, vocab 32000, untied),
# each converted by `tessera lm convert --to gguf` to F32, BF16 and Q8_0,
# at 1 and 2 threads. One JSON line per (model, dtype, threads, llama.cpp
# build) with both figures, their ratios, and llama.cpp's decode against
# the bandwidth bound `tessera lm bench` measures in the same run.
#
# Usage: LLAMA_CPP_DIR=/path/to/llama.cpp/build bench/bench_vs_llamacpp.sh [path/to/tessera]
#   LLAMA_CPP_DIR  a llama.cpp build: llama-bench in it or in its bin/;
#                  several builds separated by ':' are run in the same
#                  rounds (e.g. a native and an AVX2-only build)
#   REPS           rounds, medians reported (default 3)
#   MODELS         "pycode 135m" (default) or a subset
#   DTYPES         "f32 bf16 q8" (default) or a subset; THREADS "1 2" (default)
#   TESSERA_CPU    the kernel level tessera is held to (reported as is)
# A round runs tessera once and then each llama.cpp build, one after the
# other, so a change in the machine's load falls on every side alike; the
# load average is printed with each line. Figures (the same definition on
# both sides): decode is the average rate of a 128-token run (tessera: `lm
# bench`'s tokens_per_s_mean over 128 steps after a 16-token prompt;
# llama.cpp: llama-bench's tg128 from an empty context), the median over
# the rounds; prefill is the best 64-token forward over all rounds, 3 per
# round on each side (tessera: `lm bench`'s best of 3; llama.cpp: its 3
# pp64 samples). tessera's median step rate, which a loaded machine
# disturbs least, is reported beside them.
set -u
if [ -z "${LLAMA_CPP_DIR:-}" ]; then
    echo "bench_vs_llamacpp: LLAMA_CPP_DIR is not set (point it at a llama.cpp build with llama-bench); nothing to do"
    exit 0
fi
LBS=()
IFS=: read -r -a LDIRS <<<"$LLAMA_CPP_DIR"
for d in "${LDIRS[@]}"; do
    lb=$d/bin/llama-bench
    [ -x "$lb" ] || lb=$d/llama-bench
    if [ ! -x "$lb" ]; then
        echo "bench_vs_llamacpp: no llama-bench in $d or $d/bin" >&2
        exit 1
    fi
    LBS+=("$lb")
done
BIN=${1:-build/tessera}
REPS=${REPS:-3}
MODELS=${MODELS:-pycode 135m}
DTYPES=${DTYPES:-f32 bf16 q8}
THREADS=${THREADS:-1 2}
TMP=$(mktemp -d /tmp/tessera_vs_llamacpp.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# median of the numbers on stdin
median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# the numbers of llama-bench's "samples_ts" arrays on stdin, one a line
samples() { grep -o '"samples_ts": *\[[^]]*\]' | sed 's/.*\[//; s/\]//' | tr ', ' '\n\n' | grep -v '^$'; }
# a number field of a one-line JSON object
field() { grep -o "\"$2\":[-0-9.e+]*" <<<"$1" | head -1 | cut -d: -f2; }

src_of() {
    case $1 in
    pycode) echo models/pycode ;;
    135m)
        # written once as safetensors; the context (144) keeps `lm bench`
        # to its decode and prefill figures (no batch-cost curve)
        if [ ! -f "$TMP/r135m.safetensors" ]; then
            "$BIN" lm convert --random dim=1024,layers=8,heads=16,hidden=2816,vocab=32000,seq=144,tied=0 \
                --dtype f32 --out "$TMP/r135m.safetensors" 2>/dev/null || return 1
        fi
        echo "$TMP/r135m.safetensors"
        ;;
    esac
}

for model in $MODELS; do
    src=$(src_of "$model") || { echo "bench_vs_llamacpp: cannot build model $model" >&2; exit 1; }
    for dt in $DTYPES; do
        g=$TMP/$model-$dt.gguf
        "$BIN" lm convert --model "$src" --to gguf --dtype "$dt" --tokenizer models/pycode/tokenizer.json \
            --out "$g" 2>"$TMP/conv.err" || { echo "convert $model $dt: $(cat "$TMP/conv.err")" >&2; exit 1; }
        for t in $THREADS; do
            : >"$TMP/tdec"
            : >"$TMP/tpre"
            : >"$TMP/tbound"
            : >"$TMP/tstep"
            for i in "${!LBS[@]}"; do : >"$TMP/ltg$i" && : >"$TMP/lpp$i"; done
            for r in $(seq "$REPS"); do
                j=$("$BIN" lm bench --model "$g" --threads "$t" --json 2>"$TMP/tb.err") ||
                    { echo "lm bench failed on $g: $(cat "$TMP/tb.err")" >&2; exit 1; }
                field "$j" tokens_per_s_mean >>"$TMP/tdec"
                field "$j" tokens_per_s >>"$TMP/tstep"
                field "$j" prefill_tokens_per_s >>"$TMP/tpre"
                field "$j" bound_tokens_per_s >>"$TMP/tbound"
                last=$j
                for i in "${!LBS[@]}"; do
                    # one tg128 and three pp64 samples per round
                    "${LBS[$i]}" -m "$g" -t "$t" -p 0 -n 128 -r 1 -o jsonl >"$TMP/lb.jsonl" 2>"$TMP/lb.err" &&
                        "${LBS[$i]}" -m "$g" -t "$t" -p 64 -n 0 -r 3 -o jsonl >>"$TMP/lb.jsonl" 2>>"$TMP/lb.err" ||
                        { echo "llama-bench failed on $g: $(tail -3 "$TMP/lb.err")" >&2; exit 1; }
                    grep '"n_gen": *128' "$TMP/lb.jsonl" | samples >>"$TMP/ltg$i"
                    grep '"n_prompt": *64' "$TMP/lb.jsonl" | samples >>"$TMP/lpp$i"
                done
            done
            t_dec=$(median <"$TMP/tdec")
            t_step=$(median <"$TMP/tstep")
            t_pre=$(sort -g "$TMP/tpre" | tail -1)
            bound=$(median <"$TMP/tbound")
            kern=$(grep -o '"kernels":"[^"]*"' <<<"$last" | cut -d'"' -f4)
            bw=$(field "$last" read_bw_gbs)
            load=$(cut -d' ' -f1-3 /proc/loadavg)
            for i in "${!LBS[@]}"; do
                l_tg=$(median <"$TMP/ltg$i")
                l_pp=$(sort -g "$TMP/lpp$i" | tail -1)
                awk -v m="$model" -v d="$dt" -v t="$t" -v k="$kern" -v td="$t_dec" -v ld="$l_tg" -v tp="$t_pre" \
                    -v lp="$l_pp" -v b="$bound" -v bw="$bw" -v ts="$t_step" -v reps="$REPS" -v cpu="${TESSERA_CPU:-native}" \
                    -v lcpp="${LDIRS[$i]}" -v load="$load" 'BEGIN {
                    printf "{\"bench\":\"vs_llamacpp\",\"model\":\"%s\",\"dtype\":\"%s\",\"threads\":%d,\"kernels\":\"%s\",", m, d, t, k
                    printf "\"tessera_cpu\":\"%s\",\"llamacpp\":\"%s\",\"reps\":%d,\"load\":\"%s\",", cpu, lcpp, reps, load
                    printf "\"tessera_decode_tok_s\":%.1f,\"llamacpp_decode_tok_s\":%.1f,\"decode_ratio\":%.3f,", td, ld, (ld > 0 ? td / ld : 0)
                    printf "\"tessera_decode_median_step_tok_s\":%.1f,", ts
                    printf "\"tessera_prefill64_tok_s\":%.1f,\"llamacpp_prefill64_tok_s\":%.1f,\"prefill_ratio\":%.3f,", tp, lp, (lp > 0 ? tp / lp : 0)
                    printf "\"read_bw_gbs\":%.2f,\"bound_decode_tok_s\":%.1f,", bw, b
                    printf "\"tessera_bandwidth_fraction\":%.3f,\"llamacpp_bandwidth_fraction\":%.3f}\n", (b > 0 ? td / b : 0), (b > 0 ? ld / b : 0)
                }'
            done
        done
    done
done
