#!/usr/bin/env bash
# End-to-end tests of the rules every verb shares, as a hostile user would
# probe them (run by ctest with the binary as $1, from any build directory):
#  - an output that exists and is not a regular file (device node, FIFO,
#    symlink, directory; all made inside a temporary directory) is refused and
#    left as it was; a missing output directory fails before any work;
#    `--out -` writes to stdout where a verb supports it;
#  - a failing command leaves no new output behind;
#  - prompts: --prompt-file (and '-' for stdin) for every decoder, a prompt
#    longer than the context is an error naming both sizes unless
#    --truncate left, --max-tokens clamps to the context;
#  - shipped default models are found from any working directory, and a path
#    recorded in a model file is resolved against that file;
#  - numeric flags outside their documented range are usage errors naming
#    the flag and the range; messages name the file type and file;
#  - `cmake --install` puts the binary and the models under a prefix, and the
#    installed binary finds its models there first (TESSERA_MODELS before).
set -u
. "$(dirname "$0")/checks.sh"
e2e_init e2e_robust "$@"
kind() { stat -c %F "$1" 2>/dev/null || echo missing; }

# ---------------------------------------------------------------- outputs
N="$T/nodes"
mkdir "$N"
mkfifo "$N/fifo"
ln -s "$N/target" "$N/link"
mkdir "$N/dir"
have_dev=0
if mknod "$N/null" c 1 3 2>/dev/null; then have_dev=1; fi
targets=("$N/fifo" "$N/link" "$N/dir")
[ $have_dev -eq 1 ] && targets+=("$N/null")
for t in "${targets[@]}"; do
    before=$(kind "$t")
    # elm sample: a PNG writer
    expect 1 "$BIN" elm sample --class 0 --n 1 --out "$t"
    has "$T/err" "not a regular file"
    [ "$(kind "$t")" = "$before" ] && ok || bad "elm sample replaced $t ($before -> $(kind "$t"))"
    if have_fmnist; then # classify features: a safetensors writer
        expect 1 "$BIN" classify features --model "$REPO/models/fmnist_cnn.safetensors" --limit 10 --out "$t"
        has "$T/err" "not a regular file"
        [ "$(kind "$t")" = "$before" ] && ok || bad "classify features replaced $t"
    fi
    expect 1 "$BIN" lm convert --random dim=16,layers=1,heads=2,hidden=32,vocab=64,seq=16 --out "$t"
    [ "$(kind "$t")" = "$before" ] && ok || bad "lm convert replaced $t"
done
[ ! -e "$N/target" ] && ok || bad "a file appeared behind the symlink"
ls "$N" | grep -q tmp && bad "a .tmp was left in $N" || ok
# a missing directory is found before the work
expect 1 "$BIN" elm sample --class 0 --n 1 --out "$T/no/such/dir/x.png"
has "$T/err" "does not exist"
# --out - : the file on stdout, the summary on stderr
if have_fmnist; then
    "$BIN" classify features --model "$REPO/models/fmnist_cnn.safetensors" --limit 4 --out - >"$T/f.safetensors" 2>"$T/err" &&
        ok || bad "features --out -: $(cat "$T/err")"
    "$BIN" lm info --model "$T/f.safetensors" >"$T/out" 2>"$T/err"
    has "$T/err" "safetensors file without a language-model config" # stdout held a safetensors file
fi
"$BIN" elm sample --class 2 --n 1 --out - >"$T/s.png" 2>"$T/err" && ok || bad "elm sample --out -"
png "$T/s.png"
has "$T/err" "sampled 1 images"

# ---------------------------------------------------------- partial output
C="$T/corpus"
mkdir -p "$C"
printf 'def f(x):\n    return x + 1\n' >"$C/a.py"
printf 'def g(y):\n    return y * 2\n' >"$C/b.py"
echo b.py >"$T/val.txt"
expect 1 "$BIN" lm tokenize --tokenizer "$REPO/models/pycode/tokenizer.json" --data "$C" --val-list "$T/val.txt" \
    --out-train "$T/a.tok" --out-val "$T/no/such/b.tok"
[ ! -e "$T/a.tok" ] && ok || bad "lm tokenize left --out-train behind when --out-val failed"
expect 0 "$BIN" lm tokenize --tokenizer "$REPO/models/pycode/tokenizer.json" --data "$C" --val-list "$T/val.txt" \
    --out-train "$T/a.tok" --out-val "$T/b.tok"
[ -s "$T/a.tok" ] && [ -s "$T/b.tok" ] && ok || bad "lm tokenize wrote no files"
expect 1 "$BIN" lm tokenizer-train --data "$C" --val-list "$T/val.txt" --vocab 300 --out "$N/fifo" --quiet
has "$T/err" "FIFO"

# ----------------------------------------------------------------- prompts
# 131,000 bytes: more than one argv string may hold, so --prompt-file
awk 'BEGIN { for (i = 0; i < 21834; i++) printf "x = 1\n"; printf "y = "; }' >"$T/long.txt"
[ "$(wc -c <"$T/long.txt")" -ge 131000 ] && ok || bad "long prompt is $(wc -c <"$T/long.txt") bytes"
# fixed draft shapes: no timing of the batch-cost curve in a test
fast() { case $1 in lm) echo --temperature 0 ;; bita) echo --tree-top 2 --tree-depth 2 ;; space) echo --k 2 ;; esac; }
for fam in lm bita space; do
    expect 1 "$BIN" $fam generate --prompt-file "$T/long.txt" --max-tokens 4 $(fast $fam)
    has "$T/err" "the prompt has [0-9]* tokens; the model's context of [0-9]* positions allows at most"
    has "$T/err" "truncate left"
    [ ! -s "$T/out" ] && ok || bad "$fam generate printed to stdout on a too-long prompt"
    expect 0 "$BIN" $fam generate --prompt-file "$T/long.txt" --max-tokens 4 $(fast $fam) --truncate left --json
    has "$T/out" '"new_tokens": *4'
    printf 'def add(a, b):' | "$BIN" $fam generate --prompt-file - --max-tokens 4 $(fast $fam) >"$T/out" 2>"$T/err" &&
        ok || bad "$fam generate --prompt-file -: $(cat "$T/err")"
    has "$T/out" "^def add(a, b):"
    expect 2 "$BIN" $fam generate --prompt a --prompt-file "$T/long.txt"
    expect 2 "$BIN" $fam generate --prompt a --truncate right
done
# the context bounds --max-tokens (no allocation of a billion tokens); the
# prompt nearly fills the context (about 4 tokens a line) so little is decoded
awk 'BEGIN { for (i = 0; i < 60; i++) printf "x = 1\n"; }' >"$T/p256.txt"
awk 'BEGIN { for (i = 0; i < 92; i++) printf "x = 1\n"; }' >"$T/p384.txt"
for fam in lm bita space; do
    p="$T/p256.txt"; [ $fam = space ] && p="$T/p384.txt"
    expect 0 "$BIN" $fam generate --prompt-file "$p" --max-tokens 999999999 $(fast $fam) --json
    has "$T/out" '"new_tokens": *[1-9]'
done

# ------------------------------------------ defaults from any directory
W="$T/elsewhere"
mkdir "$W"
(
    cd "$W" || exit 1
    expect 0 "$BIN" lm generate --prompt 'def f(x):' --max-tokens 4 --temperature 0
    expect 0 "$BIN" bita generate --prompt 'def f(x):' --max-tokens 4 $(fast bita)
    expect 0 "$BIN" space generate --prompt 'def f(x):' --max-tokens 4 $(fast space)
    expect 0 "$BIN" elm sample --class 1 --n 1 --out s.png; png s.png
    # the tokenizer recorded in elm_best is resolved against the model file
    expect 0 "$BIN" elm sample --model "$REPO/models/elm_best.safetensors" --class 1 --n 1 --out s2.png; png s2.png
    expect 0 "$BIN" bigr sample --class 3 --n 1 --iters 2 --steps 2 --out b.png; png b.png
    # shipped data files (the default bench prompts) as well as models
    expect 0 "$BIN" bita bench --limit 1 --max-tokens 4 --json
    expect 0 "$BIN" higen search --query 'pdf viewer' -k 2 --json
    # the tune verbs find their shipped base model: the first error is the corpus
    expect 1 "$BIN" bita tune --steps 1 --out t.safetensors --data-dir "$T/no-corpus"; has "$T/err" "no-corpus"
    expect 1 "$BIN" space tune --steps 1 --out sp --data "$T/no-corpus"; has "$T/err" "no-corpus"
    echo "$fails $passes" >"$T/sub"
)
read -r f p <"$T/sub"
fails=$f passes=$p

# ------------------------------------------------------------------ ranges
expect 2 "$BIN" bigr sample --class -2;      has "$T/err" "\-\-class must be between -1 and 9 (got -2)"
expect 2 "$BIN" bigr sample --steps 1000000; has "$T/err" "\-\-steps must be between 1 and 100000"
expect 2 "$BIN" elm sample --cfg 101;        has "$T/err" "\-\-cfg must be between 0 and 100 (got 101)"
expect 2 "$BIN" elm sample --class 11;       has "$T/err" "\-\-class must be between -1 and 10"
expect 2 "$BIN" elm sample --top-p 0;        has "$T/err" "\-\-top-p must be in (0, 1]"
expect 2 "$BIN" elm decode --tokenizer x --codes y --out z --cols 0; has "$T/err" "\-\-cols must be between 1 and 1000"
expect 2 "$BIN" space generate --k 16;       has "$T/err" "\-\-k must be between 0 and 15"
expect 2 "$BIN" bita generate --prompt x --tree-depth -2; has "$T/err" "\-\-tree-depth must be between -1"
expect 2 "$BIN" lm generate --max-tokens -1; has "$T/err" "\-\-max-tokens must be >= 0"
expect 2 "$BIN" bigr interpolate --points 1; has "$T/err" "\-\-points must be between 2 and 64"
expect 2 "$BIN" lm tokenizer-train --out x.json --vocab 10; has "$T/err" "\-\-vocab must be between 257"

# ---------------------------------------------------------------- messages
expect 1 "$BIN" space generate --model "$REPO/models/pycode" --prompt x
has "$T/err" "not an SAR model"
expect 1 "$BIN" lm info --model "$REPO/models/pycode/tokenizer.json"
has "$T/err" "a JSON file"
"$BIN" lm convert --random dim=16,layers=1,heads=2,hidden=32,vocab=64,seq=16 --out "$T/tiny.safetensors" 2>/dev/null
expect 1 "$BIN" lm generate --model "$T/tiny.safetensors" --tokenizer "$REPO/models/pycode/tokenizer.json" --prompt hi
has "$T/err" "pycode/tokenizer.json: the tokenizer has 4096 tokens but the model"
[ ! -s "$T/out" ] && ok || bad "lm generate printed '$(cat "$T/out")' on stdout after a vocabulary mismatch"
# help states each default once
for v in "elm sample" "elm eval" "bigr sample" "bita generate" "lm generate" "space generate"; do
    "$BIN" $v --help >"$T/out"
    if grep -qE '(\[[^]]*\]).*\1|default[^[]*\[' "$T/out"; then bad "'$v --help' repeats a default"; grep -E '(\[[^]]*\]).*\1|default[^[]*\[' "$T/out" >&2; else ok; fi
done

# ----------------------------------------------------------------- install
BUILD=$(dirname "$BIN")
if [ -f "$BUILD/cmake_install.cmake" ] && command -v cmake >/dev/null; then
    P="$T/prefix"
    if cmake --install "$BUILD" --prefix "$P" >"$T/inst.log" 2>&1; then ok; else bad "cmake --install: $(tail -3 "$T/inst.log")"; fi
    [ -x "$P/bin/tessera" ] && ok || bad "no $P/bin/tessera"
    [ -f "$P/share/tessera/models/elm_best.safetensors" ] && [ -f "$P/share/tessera/models/pycode/config.json" ] &&
        ok || bad "models not installed under $P/share/tessera/models"
    (cd "$W" && "$P/bin/tessera" lm generate --prompt 'def f(x):' --max-tokens 4 --temperature 0 >"$T/out" 2>"$T/err") &&
        ok || bad "installed lm generate: $(cat "$T/err")"
    # the installed copy is the one used: damage it and the error names it
    : >"$P/share/tessera/models/fmnist_cnn.safetensors"
    (cd "$W" && "$P/bin/tessera" elm eval --tokenizer "$P/share/tessera/models/fmnist_bae.safetensors" --limit 1 >"$T/out" 2>"$T/err")
    has "$T/err" "$P/share/tessera/models/fmnist_cnn.safetensors"
    # TESSERA_MODELS comes first
    mkdir "$T/mine"
    : >"$T/mine/fmnist_cnn.safetensors"
    (cd "$W" && TESSERA_MODELS="$T/mine" "$P/bin/tessera" elm eval --tokenizer "$P/share/tessera/models/fmnist_bae.safetensors" --limit 1 >"$T/out" 2>"$T/err")
    has "$T/err" "$T/mine/fmnist_cnn.safetensors"
else
    echo "note: no cmake install script beside $BIN; install checks skipped" >&2
fi

e2e_done
