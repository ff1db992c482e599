#!/usr/bin/env bash
# End-to-end tests of what a new user meets first in the generation families
# (lm, space, bita, elm, bigr) and `tessera serve`, run from a scratch
# directory outside the repository:
#  - a model path that is missing, mistyped or of another kind is reported as
#    such (not as a missing --tokenizer); a GGUF without the .gguf suffix
#    decodes with its own tokenizer;
#  - an input that is a FIFO is refused at once instead of blocking the open;
#  - an empty --prompt is a prompt for every generate verb;
#  - settings that can only fail are refused before the work starts, leaving
#    no caches or directories behind (lm train model config and --resume,
#    space tune --data, tokenizer-train --specials, elm train --tokenizer,
#    serve --host, bigr --box);
#  - shipped defaults, and an input given as models/NAME, are found from any
#    working directory (bigr's BAE tokenizer for building a code cache);
#    an output named models/NAME is never redirected into the shipped models;
#  - two outputs naming one file are refused.
# Usage: tests/e2e_usage.sh path/to/tessera   (run by ctest)
set -u
. "$(dirname "$0")/checks.sh"
e2e_init e2e_usage "$@"
M=$REPO/models
# expect EXIT cmd...: runs cmd in $T/w (a fresh directory) with a 20 s limit
expect() {
    local want=$1; shift
    rm -rf "$T/w" && mkdir "$T/w"
    (cd "$T/w" && timeout 20 "$@" >"$T/out" 2>"$T/err" </dev/null)
    local got=$?
    if [ "$got" -eq "$want" ]; then ok; else bad "exit $got (want $want): $*"; sed 's/^/  | /' "$T/err" >&2; fi
}
empty_dir() { if [ -z "$(ls -A "$1")" ]; then ok; else bad "$2 left: $(ls -A "$1" | tr '\n' ' ')"; fi; }

mkdir -p "$T/fix/corp"
printf 'def f(x):\n    return x + 1\n' >"$T/fix/corp/a.py"
printf 'import os\nprint(os.getcwd())\n' >"$T/fix/corp/b.py"
echo b.py >"$T/fix/val.txt"
mkfifo "$T/fix/fifo"
printf '\211PNG\r\n\032\n0000000000000000' >"$T/fix/img.png"
TOKJ=$M/pycode/tokenizer.json

# ------------------------------------------------- lm generate: model paths
expect 1 "$BIN" lm generate --model "$T/fix/nope.bin" --prompt x --max-tokens 2
has "$T/err" "nope.bin: cannot open"
hasnt "$T/err" "tokenizer is required"
expect 1 "$BIN" lm generate --model models/pycod --prompt x --max-tokens 2 # a typo, from elsewhere
has "$T/err" "models/pycod: cannot open"
hasnt "$T/err" "tokenizer is required"
# the documented models/NAME finds the shipped model from any directory (inputs only)
expect 0 "$BIN" lm generate --model models/pycode --prompt x --max-tokens 2 --temperature 0
expect 0 "$BIN" lm info --model models/pycode
if [ -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
    expect 0 "$BIN" classify eval --model models/fmnist_cnn.safetensors --limit 10 --json
    has "$T/out" "$M/fmnist_cnn.safetensors"
fi
# the shipped prompt set as space.md names it
expect 0 "$BIN" space bench --prompts bench/prompts_pyval.jsonl --limit 1 --max-tokens 4 --json
has "$T/out" '"identical": 1'
expect 1 "$BIN" lm convert --model models/pycode --out models/x.safetensors
has "$T/err" "output directory models does not exist"
[ ! -e "$M/x.safetensors" ] && ok || { bad "an --out models/... was written into the shipped models"; rm -f "$M/x.safetensors"; }
# so do the model, catalog and tokenizer flags of narformer, ctnet, higen, ebrm, ovadetr and apt
python3 - "$T/fix" <<'PY'
import sys, struct, zlib
def png(path, w, h, ch, f):
    raw = b"".join(b"\x00" + bytes(v for x in range(w) for v in f(x, y)) for y in range(h))
    def chunk(t, b): return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2 if ch == 3 else 0, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
png(sys.argv[1] + "/rgb.png", 96, 64, 3, lambda x, y: (200, 180, 60) if 30 <= x < 70 else (x % 90, 90, y % 120))
png(sys.argv[1] + "/lc.png", 96, 64, 1, lambda x, y: (40,) if 30 <= x < 70 else (10,))
PY
ONNX=$REPO/../shared/data/nnlqp/resnet18-v1-7-no-weight.onnx
if [ -r "$ONNX" ]; then
    expect 0 "$BIN" narformer predict --model models/narformer-latency-cpu-1t.safetensors --onnx "$ONNX"
    hasnt "$T/err" "cannot open"
fi
printf 'user\titem\ttimestamp\n1\t1\t964982703\n' >"$T/fix/rows.tsv"
expect 0 "$BIN" ctnet predict --model models/ctnet_ml_animation.safetensors --input "$T/fix/rows.tsv"
expect 0 "$BIN" higen search --query "pdf viewer" --model models/higen-debian/ --catalog models/debian-catalog/ -k 2
expect 0 "$BIN" ebrm score --query "pdf viewer" --items evince --model models/ebrm-debian/ebrm.safetensors --catalog models/debian-catalog
expect 0 "$BIN" ovadetr detect --model models/ovadetr_closed.safetensors --image "$T/fix/rgb.png" --classes car --out d.json
expect 0 "$BIN" apt segment --model models/apt_small_finetuned.safetensors --image "$T/fix/rgb.png" --landcover "$T/fix/lc.png" --out m.png --points 2 --iterations 1
expect 1 "$BIN" lm generate --model "$T/fix/img.png" --prompt x --max-tokens 2
has "$T/err" "a PNG image"
# a GGUF named without .gguf carries its own tokenizer
"$BIN" lm convert --model "$M/pycode" --to gguf --dtype bf16 --out "$T/fix/py.gguf" 2>/dev/null
cp "$T/fix/py.gguf" "$T/fix/py-gguf.bin"
expect 0 "$BIN" lm generate --model "$T/fix/py.gguf" --prompt 'def f(' --max-tokens 8 --temperature 0
cp "$T/out" "$T/gguf.txt"
expect 0 "$BIN" lm generate --model "$T/fix/py-gguf.bin" --prompt 'def f(' --max-tokens 8 --temperature 0
cmp -s "$T/out" "$T/gguf.txt" && ok || bad "a GGUF without the suffix decodes differently"

# ------------------------------------------------------- FIFO as an input
for args in "lm info --model $T/fix/fifo" "classify eval --model $T/fix/fifo --limit 1" \
    "elm sample --model $T/fix/fifo --n 1" "bita generate --adapter $T/fix/fifo --prompt x" \
    "lm generate --model $M/pycode --tokenizer $T/fix/fifo --prompt x"; do
    # shellcheck disable=SC2086
    expect 1 "$BIN" $args
    has "$T/err" "not a regular file"
done

# --------------------------------------------------------- empty prompts
expect 0 "$BIN" space generate --max-tokens 4
cp "$T/out" "$T/space_default.txt"
expect 0 "$BIN" space generate --prompt "" --max-tokens 4
cmp -s "$T/out" "$T/space_default.txt" && ok || bad "space generate --prompt '' differs from no --prompt"
expect 0 "$BIN" bita generate --prompt "" --max-tokens 4
expect 0 "$BIN" lm generate --prompt "" --max-tokens 4 --temperature 0

# ------------------------------------------- refused before any work
# lm train: a model config that cannot be built, and a resume without a state
expect 1 "$BIN" lm train --data "$T/fix/corp" --val-list "$T/fix/val.txt" --tokenizer "$TOKJ" --dim 15 --heads 2 \
    --layers 1 --hidden 8 --context 8 --batch 2 --steps 1 --out m.safetensors
has "$T/err" "dim 15"
empty_dir "$T/w" "lm train --dim 15"
expect 1 "$BIN" lm train --data "$T/fix/corp" --val-list "$T/fix/val.txt" --tokenizer "$TOKJ" --dim 16 --heads 2 \
    --layers 1 --hidden 8 --context 8 --batch 2 --steps 1 --out m.safetensors --resume
has "$T/err" "m.state.safetensors"
empty_dir "$T/w" "lm train --resume without a state"
# space tune: a missing corpus leaves no --out directory; a bad --min-prefix is a usage error
expect 1 "$BIN" space tune --out o --data "$T/fix/nodir" --steps 1
has "$T/err" "nodir"
empty_dir "$T/w" "space tune --data missing"
expect 2 "$BIN" space tune --out o --min-prefix 1000 --steps 1
has "$T/err" "min-prefix"
# tokenizer-train: an empty or repeated special token
for sp in ",," "a,,b" "a,a"; do
    expect 2 "$BIN" lm tokenizer-train --data "$T/fix/corp" --val-list none --vocab 300 --specials "$sp" --out t.json
    has "$T/err" "specials"
    empty_dir "$T/w" "tokenizer-train --specials '$sp'"
done
# lm tokenize: the two outputs must be two files
expect 2 "$BIN" lm tokenize --tokenizer "$TOKJ" --data "$T/fix/corp" --val-list "$T/fix/val.txt" \
    --out-train a.tok --out-val ./a.tok
has "$T/err" "differ"
# serve: --host is checked before any model loads
expect 2 "$BIN" serve --host localhost --port 0
has "$T/err" "IPv4"
hasnt "$T/err" "llm:"
# bigr: --real beyond the 10,000 test images is a usage error (it was cut to 10,000 without a word)
expect 2 "$BIN" bigr eval --real 20000 --n 1
has "$T/err" "real"
# bigr: a --box with a fifth number
expect 2 "$BIN" bigr inpaint --box 2,5,1,6,9
has "$T/err" "box"
# lm train: --reschedule only with --resume
expect 2 "$BIN" lm train --data "$T/fix/corp" --val-list "$T/fix/val.txt" --tokenizer "$TOKJ" --dim 16 --heads 2 \
    --layers 1 --hidden 8 --context 8 --batch 2 --steps 1 --out m.safetensors --reschedule
has "$T/err" "reschedule needs --resume"
empty_dir "$T/w" "lm train --reschedule without --resume"
# elm tokenizer-train: no reconstruction loss at all
expect 2 "$BIN" elm tokenizer-train --l1 0 --l2 0 --steps 1 --out t.safetensors
has "$T/err" "all 0"
# bigr: the hint names the flag of the file the error is about
expect 1 "$BIN" bigr train --codes "$M/fmnist_cnn.safetensors" --steps 1 --out b.safetensors
has "$T/err" "hint: pass --codes"
if have_fmnist; then
    expect 1 "$BIN" bigr eval --classifier "$M/elm_best.safetensors" --n 1 --real 10
    has "$T/err" "hint: pass --classifier"
fi
# bita: a bad --dtype names the verb
expect 2 "$BIN" bita generate --prompt x --dtype f16
has "$T/err" "tessera bita generate"

if have_fmnist; then
    # elm train: the --tokenizer recorded for sampling must load and produce these codes
    "$BIN" elm encode --tokenizer "$M/fmnist_vq_8ep.safetensors" --split train --limit 8 \
        --out "$T/fix/vq.safetensors" 2>/dev/null
    expect 1 "$BIN" elm train --codes "$T/fix/vq.safetensors" --tokenizer "$T/fix/img.png" --token-each 1 \
        --steps 1 --batch 4 --out g.safetensors
    has "$T/err" "img.png"
    empty_dir "$T/w" "elm train --tokenizer img.png"
    expect 1 "$BIN" elm train --codes "$T/fix/vq.safetensors" --tokenizer "$M/fmnist_bae.safetensors" \
        --token-each 1 --steps 1 --batch 4 --out g.safetensors
    has "$T/err" "codes"
    empty_dir "$T/w" "elm train with a tokenizer of another kind"
    # a grid PNG wider or taller than libpng writes (1,000,000 px) is refused before sampling or decoding
    expect 2 "$BIN" elm sample --n 40000 --class 0 --out s.png
    has "$T/err" "at most 33333 per class"
    "$BIN" elm encode --tokenizer "$M/fmnist_bae.safetensors" --split train --limit 33400 \
        --out "$T/fix/bae33k.safetensors" 2>/dev/null
    expect 1 "$BIN" elm decode --tokenizer "$M/fmnist_bae.safetensors" --codes "$T/fix/bae33k.safetensors" \
        --limit 0 --cols 1 --out d.png
    has "$T/err" "a PNG side holds at most"
    empty_dir "$T/w" "elm decode of a grid too tall"
    expect 1 "$BIN" elm tokenizer-train --init "$T/fix/img.png" --steps 1 --out t.safetensors
    has "$T/err" "hint: pass --init"
    # bigr: the shipped BAE builds a code cache from any directory; the cache's
    # directory is checked before encoding
    mkdir -p "$T/fix/nodata"
    expect 1 "$BIN" bigr train --codes c.safetensors --write-codes --data "$T/fix/nodata" --steps 1 --out b.safetensors
    hasnt "$T/err" "fmnist_bae.safetensors: cannot open"
    has "$T/err" "nodata"
    expect 1 "$BIN" bigr train --codes nodir/c.safetensors --write-codes --steps 1 --out b.safetensors
    has "$T/err" "nodir does not exist"
    hasnt "$T/err" "encoding Fashion-MNIST"
fi

# --log naming the checkpoint or the training state beside it: a usage error
# before any work (the log's lines would replace the weights), in every train
# verb, the output a flag, a default or a file inside a model directory
expect 2 "$BIN" classify train --out c.safetensors --log ./c.safetensors --epochs 1
has "$T/err" "--log names the checkpoint 'c.safetensors'"
empty_dir "$T/w" "classify train --log = --out"
expect 2 "$BIN" narformer train --task latency --out n.safetensors --log n.state.safetensors
has "$T/err" "--log names the training state 'n.state.safetensors'"
empty_dir "$T/w" "narformer train --log = its state"
expect 2 "$BIN" elm tokenizer-train --kind vq --log fmnist_vq.safetensors
has "$T/err" "--log names the checkpoint"
mkdir -p "$T/fix/logdir"
expect 2 "$BIN" higen train --what encoder --model "$T/fix/logdir" --log "$T/fix/logdir/encoder.safetensors"
has "$T/err" "--log names the checkpoint"
expect 2 "$BIN" ebrm train --stage qe --dir "$T/fix/logdir" --log "$T/fix/logdir/./qe.state.safetensors"
has "$T/err" "--log names the training state"
expect 2 "$BIN" space tune --out "$T/fix/logdir" --log "$T/fix/logdir/train.safetensors" --steps 1
has "$T/err" "--log names the checkpoint"
empty_dir "$T/fix/logdir" "higen, ebrm and space train with --log = their output"
expect 2 "$BIN" ovadetr train --out o.safetensors --log o.safetensors --steps 1
has "$T/err" "--log names the checkpoint"

e2e_done
