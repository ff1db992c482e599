#!/usr/bin/env bash
# `tessera lm bench` per kernel level: decode and pp64 prefill tokens/s of
# models/pycode and a random 135M model (dim 1024, 8 layers, vocab 32000,
# tied: 542 MB in f32, past any L3) in f32, bf16 and q8, with 1 and 2
# threads, at each level in LEVELS (default: avx2 and the CPU's best).
# Each configuration runs REPS times (default 3), interleaved, and the
# median is printed: one JSON line per configuration.
# usage: bench/bench_lm_levels.sh [path/to/tessera]
#   env: LEVELS="avx2 avx512bf16", REPS=3, THREADS="1 2", DTYPES="f32 bf16 q8",
#        MODELS="pycode r135", DECODE=64
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/tessera}
best=$("$BIN" --version 2>/dev/null | sed "s/.*supports up to \([a-z0-9]*\).*/\1/" || true)
LEVELS=${LEVELS:-"avx2 $best"}
REPS=${REPS:-3}
THREADS=${THREADS:-"1 2"}
DTYPES=${DTYPES:-"f32 bf16 q8"}
MODELS=${MODELS:-"pycode r135"}
DECODE=${DECODE:-64}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
TMP=$(mktemp -d /tmp/tessera_bench_levels.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
for m in $MODELS; do
  case $m in
  pycode) path=models/pycode ;;
  r135)
    path=$TMP/r135.safetensors
    "$BIN" lm convert --random dim=1024,layers=8,heads=16,hidden=2816,vocab=32000,seq=1024,tied=1 \
      --dtype f32 --out "$path" 2>/dev/null ;;
  *) path=$m ;;
  esac
  for dt in $DTYPES; do
    for th in $THREADS; do
      for lv in $LEVELS; do
        : >"$TMP/runs"
        for r in $(seq "$REPS"); do
          TESSERA_CPU=$lv "$BIN" lm bench --model "$path" --dtype "$dt" --threads "$th" \
            --decode-tokens "$DECODE" --json 2>/dev/null >>"$TMP/runs"
        done
        /usr/bin/python3 - "$TMP/runs" "$m" <<'PY'
import json, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = lambda k: statistics.median(r[k] for r in rs)
r = rs[0]
print(json.dumps({"bench": "lm_levels", "model": sys.argv[2], "dtype": r["dtype"], "threads": r["threads"],
                  "kernels": r["kernels"], "reps": len(rs), "decode_tok_s": round(med("tokens_per_s"), 1),
                  "prefill_tok_s": round(med("prefill_tokens_per_s"), 1),
                  "read_bw_gbs": round(med("read_bw_gbs"), 2),
                  "bandwidth_fraction": round(med("bandwidth_fraction"), 3)}))
PY
      done
    done
  done
done
echo "{\"bench\":\"lm_levels_host\",\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
