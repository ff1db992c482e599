#!/usr/bin/env bash
# Builds every libFuzzer target (clang, -DTSR_FUZZ=ON, its own build dir) and
# runs each in turn for SECONDS, seeded with valid files from the repository
# (see fuzz/README.md). Prints one line per target (executions, coverage,
# crashes) and exits non-zero when any target found a crash, leak or timeout.
#
#   scripts/fuzz.sh [SECONDS]        default 60 per target
#   BUILD=dir JOBS=n scripts/fuzz.sh  build dir (build-fuzz), make -j (2)
#   TARGETS="fuzz_png fuzz_idx" scripts/fuzz.sh 20   a subset
set -u
SECS=${1:-60}
case "$SECS" in '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD:-$ROOT/build-fuzz}
JOBS=${JOBS:-2}
command -v clang >/dev/null || { echo "fuzz.sh: clang is needed (apt-get install clang)" >&2; exit 1; }

all=$(cd "$ROOT/fuzz" && ls fuzz_*.c | sed 's/\.c$//')
targets=${TARGETS:-$all}
echo "fuzz.sh: building $(echo $targets | wc -w) targets in $B" >&2
cmake -S "$ROOT" -B "$B" -DTSR_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release >"$B.cmake.log" 2>&1 ||
    { tail -20 "$B.cmake.log" >&2; exit 1; }
# the CLI too: it writes the seeds a parser needs (a tiny model, a GGUF)
cmake --build "$B" -j"$JOBS" --target tessera_cli $targets >"$B.build.log" 2>&1 ||
    { grep -E 'error|Error' "$B.build.log" | head -20 >&2; exit 1; }
rm -f "$B.cmake.log" "$B.build.log"

# ---- seeds: valid inputs of each format, with the selector bytes some
# targets read first (fuzz/README.md)
S="$B/seeds"
rm -rf "$S"
mkdir -p "$S"
for t in $all; do mkdir -p "$S/$t"; done
TSR="$B/tessera"
D="$ROOT/../shared/data"
cp "$ROOT"/tests/refs/st_*.safetensors "$S/fuzz_safetensors/"
"$TSR" lm convert --random dim=16,layers=1,heads=2,hidden=32,vocab=64,seq=16 --out "$S/tiny.safetensors" 2>/dev/null &&
    cp "$S/tiny.safetensors" "$S/fuzz_safetensors/" &&
    (printf '\001\000'; cat "$S/tiny.safetensors") >"$S/fuzz_hf_config/tiny_f32" &&
    (printf '\001\002'; cat "$S/tiny.safetensors") >"$S/fuzz_hf_config/tiny_q8"
(printf '\000'; cat "$ROOT/models/pycode/config.json") >"$S/fuzz_hf_config/config"
[ -f "$D/llama2c/stories260K.bin" ] && cp "$D/llama2c/stories260K.bin" "$S/fuzz_llama2c/"
[ -f "$D/llama2c/tok512.bin" ] && cp "$D/llama2c/tok512.bin" "$S/fuzz_tokenizer/"
for f in /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz; do [ -f "$f" ] && cp "$f" "$S/fuzz_idx/"; done
[ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] &&
    gzip -dc /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz | head -c 208 >"$S/fuzz_idx/labels_plain"
ls "$ROOT"/docs/*.png >/dev/null 2>&1 && cp "$(ls -S "$ROOT"/docs/*.png | tail -1)" "$S/fuzz_png/"
# rasters: a small PNG and, with gdal-bin, a 48 x 48 georeferenced GeoTIFF cut from the WorldCover tile
cp "$S"/fuzz_png/* "$S/fuzz_raster/" 2>/dev/null
WC="$D/worldcover/ESA_WorldCover_10m_2021_v200_N00E006_Map.tif"
command -v gdal_translate >/dev/null && [ -f "$WC" ] &&
    gdal_translate -q -srcwin 20000 20000 48 48 -co COMPRESS=DEFLATE "$WC" "$S/fuzz_raster/wc.tif" 2>/dev/null
cp "$ROOT/models/pycode/tokenizer.json" "$S/fuzz_bpe_json/"
printf '{"query": "a text editor for the terminal", "relevant": ["vim", "nano"]}\n{"query": "x", "relevant": ["y"], "user": "7"}\n' \
    >"$S/fuzz_qfile/two.jsonl"
"$TSR" lm convert --random dim=32,layers=1,heads=2,hidden=64,vocab=4096 --to gguf \
    --tokenizer "$ROOT/models/pycode/tokenizer.json" --out "$S/r.gguf" 2>/dev/null &&
    (printf '\003'; cat "$S/r.gguf") >"$S/fuzz_gguf/r"
# detection labels: the selector byte picks names, DOTA, YOLO, VOC, COCO
if [ -d "$D/aerial" ]; then
    (printf '\000'; cat "$D/aerial/kit-ais-cars/aerial.names") >"$S/fuzz_detlabels/names"
    (printf '\001'; cat "$D/aerial/mmrotate-demos/P0004__1__0___0.txt") >"$S/fuzz_detlabels/dota"
    (printf '\002'; head -5 "$D/aerial/kit-ais-cars/MOS74.txt") >"$S/fuzz_detlabels/yolo"
    (printf '\003'; cat "$D/aerial/mmrotate-demos/dior_00001.xml") >"$S/fuzz_detlabels/voc"
fi
printf '\004{"images":[{"id":1,"file_name":"a.png","width":64,"height":48}],"categories":[{"id":1,"name":"car"}],"annotations":[{"image_id":1,"category_id":1,"bbox":[1,2,3,4],"score":0.5}]}' \
    >"$S/fuzz_detlabels/coco"
/usr/bin/printf '\223NUMPY\001\000\166\000{'"'"'descr'"'"': '"'"'<f2'"'"', '"'"'fortran_order'"'"': False, '"'"'shape'"'"': (2, 2), }%*s\n\000\074\000\100\000\102\000\104' 58 '' >"$S/fuzz_npy/f2"
printf '\010\010' >"$S/fuzz_isaid/empty"
# ctnet: a small TSV log (its size's parity picks whether labels are
# required, so one seed of each parity) and two /v1/ctr bodies
printf 'user\titem\tdomain\ttimestamp\tlabel\tgenre\n1\t10\tsource\t100\t1\tAction|Comedy\n2\t11\ttarget\t200\t0\tChildren\n1\t11\ttarget\t300\t1\t\n' \
    >"$S/fuzz_ctnet_log/tsv"
for it in 10 100; do # one more row, its item id picked so that the size's parity flips
    (cat "$S/fuzz_ctnet_log/tsv"; printf '2\t%s\tsource\t400\t0\tDrama\n' $it) >"$S/fuzz_ctnet_log/tsv2"
    [ $((($(wc -c <"$S/fuzz_ctnet_log/tsv") + $(wc -c <"$S/fuzz_ctnet_log/tsv2")) % 2)) -eq 1 ] && break
done
printf '%s' '{"rows": [{"user": 1, "item": 1, "timestamp": 1514764800, "genre": ["Animation", "Children"], "year": 1990, "history": ["2", "3"]}, {"user": "1", "item": "2", "timestamp": 1514764801, "genre": "Action|Drama", "tag": "pixar"}], "model": "ctnet_ml_animation"}' \
    >"$S/fuzz_ctnet_ctr/two"
printf '%s' '{"rows": [{"user": 7, "item": 9, "timestamp": 1, "history": "1|2|3"}]}' >"$S/fuzz_ctnet_ctr/one"
# ctnet's MovieLens loaders: the first movies/items and users, the ratings of those, a quoted tag
M="$D/movielens-latest-small"
[ -f "$M/ratings.csv" ] && (printf '\000'; head -41 "$M/movies.csv"
    printf '#--#\nuserId,movieId,tag,timestamp\n1,1,pixar,964982703\n2,3,"funny, old",964981247\n#--#\n'
    awk -F, 'NR == 1 || $2 <= 40' "$M/ratings.csv" | head -80) >"$S/fuzz_ctnet_movielens/latest"
M="$D/movielens-100k"
[ -f "$M/ml-100k.inter" ] && (printf '\001'; head -41 "$M/ml-100k.item"; printf '#--#\n'; head -41 "$M/ml-100k.user"
    printf '#--#\n'; awk -F'\t' 'NR == 1 || ($1 <= 40 && $2 <= 40)' "$M/ml-100k.inter" | head -80) >"$S/fuzz_ctnet_movielens/100k"
# serving endpoints: small request bodies with base64 PNGs; the handlers
# load the shipped models from these paths (the targets run in $B)
export TSR_CTNET_MODEL="$ROOT/models/ctnet_ml_animation.safetensors"
export TSR_OVADETR_MODEL="$ROOT/models/ovadetr.safetensors" TSR_APT_MODEL="$ROOT/models/apt_small.safetensors"
python3 - "$S" <<'PY'
import base64, struct, sys, zlib
def png(w, h, ch, f):
    raw = b"".join(b"\x00" + bytes(v for x in range(w) for v in (f(x, y) if ch == 3 else (f(x, y),))) for y in range(h))
    def chunk(t, b): return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2 if ch == 3 else 0, 0, 0, 0))
                            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")).decode()
img = png(24, 16, 3, lambda x, y: (200, 180, 60) if 6 <= x < 18 else (40, 90, 30))
lc = png(24, 16, 1, lambda x, y: 40 if 6 <= x < 18 else 10)
d = sys.argv[1]
open(d + "/fuzz_ovadetr_detect/plane", "w").write('{"image":"%s","classes":["plane","car"],"min_score":0,"max_det":3,"tile":64}' % img)
open(d + "/fuzz_apt_segment/lc", "w").write('{"image":"%s","landcover":"%s","points_per_class":2,"iterations":1,"min_area":4}' % (img, lc))
open(d + "/fuzz_apt_segment/points", "w").write('{"image":"data:image/png;base64,%s","points":[[10,8,1],[2,2,0]],"iterations":1}' % img)
PY
# search endpoints and the catalog: request bodies, the ResNet-18 ONNX file,
# and a small slice of the shipped catalog (three files, "#--#" between them)
export TSR_EBRM_MODEL="$ROOT/models/ebrm-debian/ebrm.safetensors" TSR_HIGEN_MODEL="$ROOT/models/higen-debian"
export TSR_NARFORMER_MODEL="$ROOT/models/narformer-latency-cpu-1t.safetensors"
printf '%s' '{"query": "pdf viewer", "candidates": ["evince", "okular", "zathura", "vim"]}' >"$S/fuzz_ebrm_relevance/q"
printf '%s' '{"query": "mail server", "candidates": ["postfix", "exim4-daemon-light"], "construction": "virtual"}' \
    >"$S/fuzz_ebrm_relevance/virtual"
printf '%s' '{"query": "pdf viewer", "k": 5, "beam": 10}' >"$S/fuzz_higen_search/q"
printf '%s' '{"item": "vim", "k": 3}' >"$S/fuzz_higen_search/item"
# NAS-Bench-201: the accuracy table's first rows (byte 0), the latency table's (byte 1, read after the real accuracy table)
export TSR_NB201_CSV="$D/nas-bench-201/nats_bench.csv"
[ -f "$TSR_NB201_CSV" ] && (printf '\000'; head -30 "$TSR_NB201_CSV") >"$S/fuzz_nb201/acc"
[ -f "$D/nb201-latency/nb201_latency_ms.csv.gz" ] &&
    (printf '\001'; gzip -dc "$D/nb201-latency/nb201_latency_ms.csv.gz" | head -30) >"$S/fuzz_nb201/lat"
# the LM corpus files: a token cache of three ids (byte 0), a validation list (byte 1)
(printf '\000'; python3 -c 'import struct, sys; sys.stdout.buffer.write(b"TSRTOKS1" + struct.pack("<IIQQQIIi", 1, 64, 0, 3, 10, 1, 16, 2) + bytes(12) + struct.pack("<3i", 5, 2, 7))') \
    >"$S/fuzz_corpus/tokens"
printf '\001# validation files\na.py\nb/d e.py\r\nnothere.py\n' >"$S/fuzz_corpus/list"
# the server's NUL scan of every body: a NUL in a value, in a name, an escaped backslash (text), an array
printf '%s' '{"query": "pdf\u0000 viewer", "k": 5}' >"$S/fuzz_serve_nul/value"
printf '%s' ' {"a\u0000b": 1}' >"$S/fuzz_serve_nul/name"
printf '%s' '{"prompt": "\\u0000", "stop": ["\n"]}' >"$S/fuzz_serve_nul/text"
printf '["x", 1, {"y": "z\000"}]' >"$S/fuzz_serve_nul/raw"
# the image samplers: small bodies (few images, few steps), every option named once
export TSR_BIGR_MODEL="$ROOT/models/bigr_fmnist.safetensors" TSR_ELM_MODEL="$ROOT/models/elm_best.safetensors"
printf '%s' '{"class": "sneaker", "n": 2, "seed": 3, "iters": 4, "steps": 5}' >"$S/fuzz_bigr_sample/sneaker"
printf '%s' '{"class": 0, "grid": true, "order": "random", "deterministic": true, "cfg": 1, "temp": 0.5, "gumbel": 0}' \
    >"$S/fuzz_bigr_sample/grid"
printf '%s' '{"class": "Ankle boot", "n": 3, "seed": 2}' >"$S/fuzz_elm_sample/boot"
printf '%s' '{"class": "unconditional", "grid": true, "temperature": 0.8, "top_k": 10, "top_p": 0.9, "cfg": 2, "cfg_schedule": "constant", "steps": 3, "choice_temp": 1, "batch": 2, "no_kv_cache": true}' \
    >"$S/fuzz_elm_sample/grid"
[ -f "$D/nnlqp/resnet18-v1-7-no-weight.onnx" ] && cp "$D/nnlqp/resnet18-v1-7-no-weight.onnx" "$S/fuzz_narformer_latency/"
C="$ROOT/models/debian-catalog"
(printf '\000'; gzip -dc "$C/packages.jsonl.gz" | head -40; printf '#--#\n'; gzip -dc "$C/appstream.jsonl.gz" | head -10
    printf '#--#\n'; gzip -dc "$C/virtual-package-names-list.yaml.gz" | head -30) >"$S/fuzz_catalog/debian" 2>/dev/null
if [ -d "$D/movielens-latest-small" ]; then
    M="$D/movielens-latest-small"
    (printf '\001'; head -40 "$M/movies.csv"; printf '#--#\n'; head -60 "$M/ratings.csv"; printf '#--#\n'
        head -30 "$M/tags.csv") >"$S/fuzz_catalog/movielens"
fi
# checkpoint loaders: each shipped checkpoint's JSON header, its loader's
# number in front (the order of fuzz/fuzz_checkpoints.c's SHIPPED list)
python3 - "$S/fuzz_checkpoints" "$ROOT/models" <<'PY'
import struct, sys
names = ["fmnist_cnn", "fmnist_bae", "elm_best", "bigr_fmnist", "bita_pycode", "ctnet_ml_animation",
         "narformer-nb201-cifar10", "narformer-latency-cpu-1t", "ovadetr", "apt_small", "higen-debian/higen.index",
         "higen-debian/higen.generator", "higen-debian/encoder", "ebrm-debian/ebrm", "fmnist_vq"]
for k, n in enumerate(names):
    with open("%s/%s.safetensors" % (sys.argv[2], n), "rb") as f:
        h = f.read(struct.unpack("<Q", f.read(8))[0])
    open("%s/%02d" % (sys.argv[1], k), "wb").write(bytes([k]) + h)
PY
rm -f "$S/tiny.safetensors" "$S/r.gguf"

# ---- run each in turn, on one thread (the kernels' OpenMP teams only slow an
# instrumented run down, and spin under load)
export OMP_NUM_THREADS=1 TESSERA_THREADS=1
bad=0
printf '%-18s %10s %8s %8s  %s\n' target execs cov corpus result
for t in $targets; do
    [ -x "$B/$t" ] || { echo "$t: not built" >&2; bad=1; continue; }
    mkdir -p "$B/corpus/$t" "$B/artifacts/$t"
    log="$B/$t.log"
    (cd "$B" && "./$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$B/artifacts/$t/" "corpus/$t" "seeds/$t" >"$log" 2>&1)
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    n=$(ls "$B/corpus/$t" | wc -l)
    arts=$(ls "$B/artifacts/$t" | wc -l)
    if [ $rc -eq 0 ] && [ "$arts" -eq 0 ]; then res=ok; else res="FAILED (rc $rc, $arts artifacts in $B/artifacts/$t, log $log)"; bad=1; fi
    printf '%-18s %10s %8s %8s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "$n" "$res"
done
exit $bad
