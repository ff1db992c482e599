#!/usr/bin/env bash
# End-to-end test of `tessera higen`: misuse is a usage error (exit 2), bad
# input files are one-line failures (exit 1), and with the Debian catalog
# present, search and eval print what the contract names.
# Usage: tests/e2e_higen.sh path/to/tessera   (cwd = repository root)
set -u
. "$(dirname "$0")/serve_wait.sh"
BIN=${1:?usage: e2e_higen.sh path/to/tessera}
CAT=../shared/data/debian-catalog
ML=../shared/data/movielens-latest-small
TMP=$(mktemp -d /tmp/tessera_e2e_higen.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

"$BIN" higen --help | grep -q eval && ok || bad "higen --help lists no eval"
"$BIN" higen search --query "" >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "an empty query is not a usage error"
"$BIN" higen search --query "  " >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "a blank query is not a usage error"
"$BIN" higen search --query x --bogus 1 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "an unknown flag is not a usage error"
"$BIN" higen search --query x -k 0 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "-k 0 is not a usage error"
"$BIN" higen eval --queries "$TMP/q.jsonl" --method magic >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "an unknown method is not a usage error"
"$BIN" higen eval >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "eval without queries is not a usage error"
# usage errors, each given a scratch --model: if a check failed, the verb would write there, not into the shipped model
"$BIN" higen train --what nothing --model "$TMP/m" >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "train --what nothing is not a usage error"
"$BIN" higen train --what generator --variant magic --model "$TMP/m" >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "an unknown generator variant is not a usage error"
"$BIN" higen index --variant magic --model "$TMP/m" >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "an unknown index variant is not a usage error"
"$BIN" higen index --k 1 --model "$TMP/m" >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--k 1 is not a usage error"
"$BIN" higen index --eff-buckets -5 --model "$TMP/m" >/dev/null 2>"$TMP/err"
[ $? -eq 2 ] && grep -q "eff-buckets" "$TMP/err" && ok || bad "--eff-buckets -5 is not a usage error"
"$BIN" higen tune-bm25 --split test >/dev/null 2>"$TMP/err"
[ $? -eq 2 ] && grep -q "evaluation split" "$TMP/err" && ok || bad "tune-bm25 tunes on the test split"
# a bad --log fails before the data is read (here a missing catalog would fail next)
"$BIN" higen train --log "$TMP/no-dir/log.jsonl" --model "$TMP/m" --catalog "$TMP/none" >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && grep -q "no-dir" "$TMP/err" && ok || bad "a --log in a missing directory is not refused first: $(cat "$TMP/err")"
"$BIN" higen bench --method bm25 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "bench of a non-generative method is not a usage error"
"$BIN" higen levels --method biencoder --construction virtual >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "levels of a non-generative method is not a usage error"
"$BIN" higen levels >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "levels without queries is not a usage error"
# an unknown --construction or --split is refused before the catalog loads (a missing one would fail next, exit 1)
for v in "queries --out $TMP/q.jsonl --construction foo" "eval --construction foo" "levels --construction foo" \
    "queries --out $TMP/q.jsonl --construction virtual --split foo" "eval --construction virtual --split foo"; do
    "$BIN" higen $v --catalog "$TMP/none" >/dev/null 2>"$TMP/err"
    [ $? -eq 2 ] && grep -q "unknown --.*'foo'" "$TMP/err" && [ "$(wc -l <"$TMP/err")" -eq 1 ] && [ ! -e "$TMP/q.jsonl" ] &&
        ok || bad "higen $v is not refused before the catalog: $(cat "$TMP/err")"
done
"$BIN" higen search --query x --model "$TMP/none" >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && grep -q hint "$TMP/err" && ok || bad "a missing model is not a failure with a hint"
# a corrupt index (a docID length of 100 in a depth-6 index) is named as stored
mkdir -p "$TMP/ci" && cp models/higen-debian/tokenizer.json models/higen-debian/higen.generator.safetensors "$TMP/ci/"
/usr/bin/env python3 - models/higen-debian/higen.index.safetensors "$TMP/ci/higen.index.safetensors" <<'PY'
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", b[:8])[0]
off = 8 + n + json.loads(b[8:8 + n])["docid_len"]["data_offsets"][0]
b[off:off + 4] = struct.pack("<i", 100)
open(sys.argv[2], "wb").write(b)
PY
"$BIN" higen search --query "pdf viewer" --model "$TMP/ci" >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && grep -q "item 0 has a docID of length 100 (1..6)" "$TMP/err" && ok || bad "a corrupt index: $(cat "$TMP/err")"
"$BIN" higen search --query x --method bm25 --catalog "$TMP/none" >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && grep -q hint "$TMP/err" && ok || bad "a missing catalog is not a failure with a hint"

if [ ! -r "$CAT/packages.jsonl.gz" ]; then
    echo "e2e_higen: $pass passed, $fails failed (catalog checks skipped: $CAT not found)"
    [ $fails -eq 0 ]
    exit
fi
echo '{"query": "pdf viewer", "relevant": ["evince"]}' >"$TMP/q.jsonl"
echo '{"query": "pdf viewer", "relevant": ["evince"' >>"$TMP/q.jsonl"
"$BIN" higen eval --queries "$TMP/q.jsonl" 2>"$TMP/err" >/dev/null
[ $? -eq 1 ] && grep -q "q.jsonl:2:" "$TMP/err" && [ "$(grep -c error "$TMP/err")" -eq 1 ] && ok ||
    bad "a malformed queries file is not a one-line failure naming the line"
echo '{"query": "pdf viewer", "relevant": ["no-such-package-xyz"]}' >"$TMP/q.jsonl"
"$BIN" higen eval --queries "$TMP/q.jsonl" 2>"$TMP/err" >/dev/null
[ $? -eq 1 ] && grep -q "unknown item" "$TMP/err" && ok || bad "an unknown item id is not a failure"
"$BIN" higen search --query "pdf viewer" --user 3 >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && grep -q "unknown user" "$TMP/err" && ok || bad "--user on the Debian catalog is not a failure"

out=$("$BIN" higen search --method bm25 --query "pdf viewer" -k 5 2>/dev/null)
[ "$(echo "$out" | wc -l)" -eq 5 ] && echo "$out" | grep -qi pdf && ok || bad "search prints 5 PDF results: $out"
printf '%s\n' '{"query": "pdf viewer", "relevant": ["evince", "zathura", "mupdf", "xpdf"]}' \
    '{"query": "web browser", "relevant": ["firefox-esr", "chromium"]}' >"$TMP/q.jsonl"
js=$("$BIN" higen eval --queries "$TMP/q.jsonl" --method bm25 --json 2>/dev/null)
for f in '"method": "bm25"' '"queries": 2' '"recall@1"' '"recall@10"' '"recall@100"' '"mrr@10"' '"ndcg@10"' '"qps"'; do
    echo "$js" | grep -q "$f" && ok || bad "eval --json lacks $f: $js"
done
"$BIN" higen queries --construction virtual --split valid --out "$TMP/v.jsonl" 2>/dev/null &&
    "$BIN" higen eval --method bm25 --queries "$TMP/v.jsonl" --json >/dev/null 2>&1 && ok || bad "queries -> eval round trip"

# item-to-item (Hi-Gen-I2I) constructions: each query names its trigger, which no method returns
"$BIN" higen queries --construction i2i-source --split valid --out "$TMP/i2i.jsonl" 2>/dev/null &&
    head -1 "$TMP/i2i.jsonl" | grep -q '"trigger":"' && ok || bad "i2i-source queries carry their trigger"
js=$("$BIN" higen eval --construction i2i-recommends --split valid --method bm25 --json 2>/dev/null)
echo "$js" | grep -q '"construction": "i2i-recommends", "split": "valid"' && echo "$js" | grep -q '"queries": 3001,' &&
    ok || bad "eval on i2i-recommends: $js"
head -50 "$TMP/i2i.jsonl" >"$TMP/i2i50.jsonl"
a=$("$BIN" higen eval --queries "$TMP/i2i50.jsonl" --method bm25 --json 2>/dev/null | sed 's/"qps": [0-9.]*//')
sed 's/,"trigger":"[^"]*"//' "$TMP/i2i50.jsonl" >"$TMP/notrig.jsonl"
b=$("$BIN" higen eval --queries "$TMP/notrig.jsonl" --method bm25 --json 2>/dev/null | sed 's/"qps": [0-9.]*//')
[ -n "$a" ] && [ "$a" != "$b" ] && ok || bad "dropping the trigger does not change BM25's i2i figures: '$a' / '$b'"
out=$("$BIN" higen search --method bm25 --item evince -k 5 2>/dev/null)
[ "$(echo "$out" | wc -l)" -eq 5 ] && ! echo "$out" | grep -q '^ *[0-9]*\. evince ' && echo "$out" | grep -q evince-common &&
    ok || bad "search --item with bm25: 5 items, evince itself removed: $out"
echo '{"query": "evince", "relevant": ["evince-common"], "trigger": "no-such-package-xyz"}' >"$TMP/trig.jsonl"
"$BIN" higen eval --queries "$TMP/trig.jsonl" --method bm25 2>"$TMP/err" >/dev/null
[ $? -eq 1 ] && grep -q "trig.jsonl:1: unknown trigger 'no-such-package-xyz'" "$TMP/err" &&
    [ "$(grep -c error "$TMP/err")" -eq 1 ] && ok || bad "an unknown trigger is not a one-line failure: $(cat "$TMP/err")"

M=models/higen-debian
if [ -r "$M/higen.generator.safetensors" ]; then
    out=$("$BIN" higen search --query "pdf viewer" -k 5 2>/dev/null)
    [ "$(echo "$out" | wc -l)" -eq 5 ] && ok || bad "the shipped Hi-Gen model does not answer 5 items: $out"
    a=$("$BIN" higen search --query "web browser" -k 10 --json 2>/dev/null | sed 's/"ms": [0-9.]*//')
    b=$("$BIN" higen search --query "web browser" -k 10 --json 2>/dev/null | sed 's/"ms": [0-9.]*//')
    [ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "Hi-Gen search is not deterministic"
    js=$("$BIN" higen levels --queries "$TMP/q.jsonl" --json 2>/dev/null)
    echo "$js" | grep -q '"levels": \[{"position": 0, "queries": 2, "tf_acc"' && ok || bad "levels --json: $js"
    mkdir -p "$TMP/bad"
    cp "$M/tokenizer.json" "$M/higen.generator.safetensors" "$TMP/bad/"
    head -c 3000 "$M/higen.index.safetensors" >"$TMP/bad/higen.index.safetensors"
    "$BIN" higen search --query "pdf viewer" --model "$TMP/bad" >/dev/null 2>"$TMP/err"
    [ $? -eq 1 ] && [ "$(grep -c error "$TMP/err")" -eq 1 ] && ok || bad "a truncated index is not a one-line failure"
    printf 'not a safetensors file' >"$TMP/bad/higen.index.safetensors"
    "$BIN" higen search --query "pdf viewer" --model "$TMP/bad" >/dev/null 2>"$TMP/err"
    [ $? -eq 1 ] && ok || bad "a corrupt index is not a failure"
    js=$("$BIN" higen eval --queries "$TMP/q.jsonl" --json 2>/dev/null)
    echo "$js" | grep -q '"method": "higen"' && echo "$js" | grep -q '"recall@10"' && ok ||
        bad "eval with the shipped model prints no higen JSON: $js"
fi

if [ -r "$ML/tags.csv" ]; then
    "$BIN" higen search --catalog "$ML" --query "funny" --user 999999 >/dev/null 2>"$TMP/err"
    [ $? -eq 1 ] && grep -q "unknown user" "$TMP/err" && ok || bad "an unknown MovieLens user is not a failure"
    "$BIN" higen search --method bm25 --catalog "$ML" --query "funny" --user 2 -k 3 >/dev/null 2>&1 && ok || bad "MovieLens search"
    # the personalised generator end to end at a toy size: encoder, index, generator (query + user profile)
    M="$TMP/ml"
    mkdir -p "$M" && cp models/higen-debian/tokenizer.json "$M/"
    tiny="--catalog $ML --model $M --dim 16 --hidden 32 --heads 2 --layers 1 --steps 3 --batch 8 --threads 1 --quiet"
    "$BIN" higen train --what encoder $tiny >/dev/null 2>"$TMP/err" &&
        "$BIN" higen index --catalog "$ML" --model "$M" --threads 1 >/dev/null 2>>"$TMP/err" &&
        "$BIN" higen train --what generator $tiny >/dev/null 2>>"$TMP/err" && ok ||
        bad "personalised training: $(tail -1 "$TMP/err")"
    # the encoder with indexing pairs (item text views -> item) and random negatives, tune subset held
    # out: it reports tune_loss, and a run stopped and resumed ends with the same weights
    ep="--what encoder --catalog $ML --dim 16 --hidden 32 --heads 2 --layers 1 --steps 4 --batch 8 --threads 1 --quiet --eval-every 2 --index-pairs --index-span 0.5 --index-drop 0.2 --random-neg --tune"
    mkdir -p "$TMP/ep1" "$TMP/ep2" && cp "$M"/tokenizer.json "$TMP/ep1/" && cp "$M"/tokenizer.json "$TMP/ep2/"
    js=$("$BIN" higen train $ep --model "$TMP/ep1" --json 2>/dev/null)
    "$BIN" higen train $ep --model "$TMP/ep2" --stop-after 2 >/dev/null 2>&1
    "$BIN" higen train $ep --model "$TMP/ep2" --resume >/dev/null 2>&1
    echo "$js" | grep -q '"tune_loss"' && cmp -s "$TMP/ep1/encoder.safetensors" "$TMP/ep2/encoder.safetensors" && ok ||
        bad "encoder --index-pairs --random-neg --tune: '$js'"
    # the item embeddings cache is tied to the encoder that wrote it: a cache left by another encoder
    # (M's) is rebuilt, so search answers as it does without a cache, and the rebuilt cache is then read
    mkdir -p "$TMP/st1" "$TMP/st2" && cp "$TMP/ep1/tokenizer.json" "$TMP/ep1/encoder.safetensors" "$TMP/st1/" &&
        cp "$TMP/ep1/tokenizer.json" "$TMP/ep1/encoder.safetensors" "$M/embeddings.safetensors" "$TMP/st2/"
    se="higen search --catalog $ML --method biencoder --query funny -k 10 --json --threads 1"
    a=$("$BIN" $se --model "$TMP/st1" 2>/dev/null | sed "s/\"ms\": [0-9.]*//")
    b=$("$BIN" $se --model "$TMP/st2" 2>"$TMP/err" | sed "s/\"ms\": [0-9.]*//")
    c=$("$BIN" $se --model "$TMP/st2" 2>"$TMP/err2" | sed "s/\"ms\": [0-9.]*//")
    echo "$a" | grep -q '"score"' && [ "$a" = "$b" ] && [ "$a" = "$c" ] && grep -q "another encoder" "$TMP/err" &&
        grep -q "item embeddings from" "$TMP/err2" && ok || bad "a stale embeddings cache: '$a' / '$b' / '$c'"
    "$BIN" higen train --what generator --index-pairs --model "$TMP/ep1" --catalog "$ML" >/dev/null 2>&1
    [ $? -eq 2 ] && ok || bad "--index-pairs for the generator is not a usage error"
    # --keep-best: the tune subset held out, the lowest-tune-loss evaluation kept; a run stopped and
    # resumed ends with the same files as one straight run
    kb="--what generator --catalog $ML --dim 16 --hidden 32 --heads 2 --layers 1 --steps 4 --batch 8 --threads 1 --quiet --lr 0.05 --eval-every 1 --keep-best"
    mkdir -p "$TMP/kb1" "$TMP/kb2" && cp "$M"/tokenizer.json "$M"/higen.index.safetensors "$TMP/kb1/" &&
        cp "$M"/tokenizer.json "$M"/higen.index.safetensors "$TMP/kb2/"
    js=$("$BIN" higen train $kb --model "$TMP/kb1" --json 2>/dev/null)
    "$BIN" higen train $kb --model "$TMP/kb2" --stop-after 2 >/dev/null 2>&1
    "$BIN" higen train $kb --model "$TMP/kb2" --resume >/dev/null 2>&1
    echo "$js" | grep -q '"best_step": [1-4],' && echo "$js" | grep -q '"tune_loss"' &&
        cmp -s "$TMP/kb1/higen.generator.safetensors" "$TMP/kb1/higen.generator.best.safetensors" &&
        [ -f "$TMP/kb1/higen.generator.last.safetensors" ] &&
        cmp -s "$TMP/kb1/higen.generator.safetensors" "$TMP/kb2/higen.generator.safetensors" &&
        cmp -s "$TMP/kb1/higen.generator.last.safetensors" "$TMP/kb2/higen.generator.last.safetensors" && ok ||
        bad "--keep-best: '$js'"
    "$BIN" higen train --what generator --keep-best --eval-every 0 --model "$TMP/kb1" --catalog "$ML" >/dev/null 2>&1
    [ $? -eq 2 ] && ok || bad "--keep-best without --eval-every is not a usage error"
    # --doc-only (CE_V over the docID tokens) with the later positions weighted more: both are recorded in
    # the model's metadata, and a run stopped and resumed ends with the same weights
    dk="--what generator --catalog $ML --dim 16 --hidden 32 --heads 2 --layers 1 --steps 4 --batch 8 --threads 1 --quiet --doc-only --pos-decay -0.5"
    mkdir -p "$TMP/dk1" "$TMP/dk2" && cp "$M"/tokenizer.json "$M"/higen.index.safetensors "$TMP/dk1/" &&
        cp "$M"/tokenizer.json "$M"/higen.index.safetensors "$TMP/dk2/"
    "$BIN" higen train $dk --model "$TMP/dk1" >/dev/null 2>&1
    "$BIN" higen train $dk --model "$TMP/dk2" --stop-after 2 >/dev/null 2>&1
    "$BIN" higen train $dk --model "$TMP/dk2" --resume >/dev/null 2>&1
    hd=$(head -c 20000 "$TMP/dk1/higen.generator.safetensors" 2>/dev/null | tr -d '\000')
    echo "$hd" | grep -q '"loss.doc_only":"1"' && echo "$hd" | grep -q '"loss.pos_decay":"-0.5"' &&
        cmp -s "$TMP/dk1/higen.generator.safetensors" "$TMP/dk2/higen.generator.safetensors" && ok ||
        bad "--doc-only --pos-decay -0.5: metadata or resume"
    "$BIN" higen train --what encoder --doc-only --model "$TMP/dk1" --catalog "$ML" >/dev/null 2>&1
    [ $? -eq 2 ] && ok || bad "--doc-only for the encoder is not a usage error"
    "$BIN" higen train --what generator --pos-decay 1.5 --model "$TMP/dk1" --catalog "$ML" >/dev/null 2>&1
    [ $? -eq 2 ] && ok || bad "--pos-decay 1.5 is not a usage error"
    "$BIN" higen eval --catalog "$ML" --construction movielens --split valid --method higen --model "$M" --threads 1 \
        --json 2>/dev/null | grep -q '"recall@10"' && ok || bad "personalised eval"
    a=$("$BIN" higen search --catalog "$ML" --model "$M" --query funny --user 2 -k 5 --json --threads 1 2>/dev/null | sed "s/\"ms\": [0-9.]*//")
    b=$("$BIN" higen search --catalog "$ML" --model "$M" --query funny --user 2 -k 5 --json --threads 1 2>/dev/null | sed "s/\"ms\": [0-9.]*//")
    echo "$a" | grep -q '"results": \[{' && [ "$a" = "$b" ] && ok || bad "personalised search: '$a' / '$b'"
fi
# POST /v1/search on `tessera serve` (the shipped model): the same items as
# `higen search --json`, and a 400 in OpenAI's error shape for bad requests
if command -v curl >/dev/null 2>&1 && [ -f models/higen-debian/higen.generator.safetensors ]; then
    "$BIN" serve --port 0 --quiet --space none --bita none --threads 1 >"$TMP/srv.out" 2>"$TMP/srv.err" &
    SPID=$!
    PORT=$(serve_wait "$TMP/srv.out" "$SPID")
    if [ -n "$PORT" ]; then
        U=http://127.0.0.1:$PORT/v1/search
        ids() { tr '{' '\n' | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' | tr '\n' ' ' | sed 's/ *$//'; }
        want=$("$BIN" higen search --query "pdf viewer" -k 5 --json --threads 1 2>/dev/null | ids)
        got=$(curl -s --max-time 60 "$U" -d '{"query": "pdf viewer", "k": 5}' | ids)
        [ -n "$want" ] && [ "$want" = "$got" ] && ok || bad "/v1/search gave '$got', higen search '$want'"
        want=$("$BIN" higen search --item evince -k 3 --json --threads 1 2>/dev/null | ids)
        got=$(curl -s --max-time 60 "$U" -d '{"item": "evince", "k": 3}' | ids)
        [ -n "$want" ] && [ "$want" = "$got" ] && ok || bad "/v1/search item gave '$got', higen search '$want'"
        for body in '{"query": "  "}' '{"query": "x", "bogus": 1}' '{"query": "x", "k": 0}' '{"query": 3}' \
                    '[1]' '{"query": "x", "item": "evince"}' '{"item": "no-such-package"}' '{"query": "x", "k": 9, "beam": 4}'; do
            code=$(curl -s --max-time 60 -o "$TMP/resp" -w '%{http_code}' "$U" -d "$body")
            [ "$code" = 400 ] && grep -q '"error"' "$TMP/resp" && ok || bad "/v1/search $body: HTTP $code"
        done
        # an unknown field's name is echoed on one line: a newline in it shows as '?'
        code=$(curl -s --max-time 60 -o "$TMP/resp" -w '%{http_code}' "$U" -d '{"query": "x", "a\nb": 1}')
        [ "$code" = 400 ] && grep -q "unknown field 'a?b'" "$TMP/resp" && ok || bad "/v1/search newline field: $(cat "$TMP/resp")"
        # a NUL in a text field (JSON's \u0000) is refused naming the field: it cut the query there ("pdf")
        for body in '{"query": "pdf\u0000 viewer"}' '{"k": 2, "item": "evince\u0000"}'; do
            code=$(curl -s --max-time 60 -o "$TMP/resp" -w '%{http_code}' "$U" -d "$body")
            f=$(printf '%s' "$body" | grep -o '"query"\|"item"')
            [ "$code" = 400 ] && grep -q "\"param\":$f" "$TMP/resp" && grep -q "NUL" "$TMP/resp" && ok ||
                bad "/v1/search $body: HTTP $code $(cat "$TMP/resp")"
        done
        # an escaped backslash before u0000 is text
        code=$(curl -s --max-time 60 -o "$TMP/resp" -w '%{http_code}' "$U" -d '{"query": "pdf\\u0000 viewer", "k": 2}')
        [ "$code" = 200 ] && ok || bad "/v1/search with a backslash before u0000: HTTP $code $(cat "$TMP/resp")"
        curl -s --max-time 60 "$U" -d '{"query": "text editor", "k": 2}' | grep -q '"results"' && ok ||
            bad "the server stopped answering after bad requests"
    else
        bad "tessera serve did not start: $(tail -2 "$TMP/srv.err")"
    fi
    kill "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
fi
# the catalog methods work from another directory without ../shared, on
# the shipped copy of the catalog (models/debian-catalog)
ABS=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
mkdir -p "$TMP/away"
(cd "$TMP/away" && "$ABS" higen search --query "pdf viewer" --method bm25 -k 3 --json) >"$TMP/away.json" 2>"$TMP/away.err"
[ $? -eq 0 ] && grep -q '"id"' "$TMP/away.json" && ok || bad "bm25 search from another directory: $(tail -2 "$TMP/away.err")"
echo "e2e_higen: $pass passed, $fails failed"
[ $fails -eq 0 ]
