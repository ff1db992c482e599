#!/usr/bin/env bash
# End-to-end test of `tessera ebrm`: misuse is a usage error (exit 2), a bad
# query file, a corrupt model or an unknown --set-qe entity is a one-line
# error, its hint naming the flag given; a failed train leaves no directory
# or tokenizer it created; from a directory outside the repository with no ../shared (a
# user's machine), on the shipped model and catalog copy, `eval --json`
# prints the contract's fields for every method, `rank` uses the shipped
# model and ranks as on the full snapshot, `--set-qe` changes the ranking
# it prints, `explain`'s factors reconstruct the score it reports, and a
# default server's POST /v1/relevance gives `score`'s scores.
# Usage: tests/e2e_ebrm.sh path/to/tessera   (cwd = repository root)
set -u
. "$(dirname "$0")/serve_wait.sh"
BIN=${1:?usage: e2e_ebrm.sh path/to/tessera}
TMP=$(mktemp -d /tmp/tessera_e2e_ebrm.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

"$BIN" ebrm --help | grep -q eval && ok || bad "ebrm --help lists no eval"
"$BIN" ebrm eval --help | grep -q -- --method && ok || bad "eval --help names no --method"
"$BIN" ebrm eval >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "eval without --queries is not a usage error"
for v in train score rank explain bench; do
    "$BIN" ebrm $v --help >/dev/null && ok || bad "ebrm $v --help"
done
"$BIN" ebrm train --help | grep -q -- --qe-virtual && ok || bad "train --help names no --qe-virtual"
"$BIN" ebrm train --help | grep -q -- --qe-aux && ok || bad "train --help names no --qe-aux"
"$BIN" ebrm train --help | grep -q -- --qe-items && ok || bad "train --help names no --qe-items"
for a in "--stage cross --qe-aux 1" "--stage qe --qe-aux 1" "--qe-aux -1" "--qe-aux 101" "--stage qi --qe-items 8" \
    "--stage qe --qe-items -1" "--stage qe --qe-items 2000000" "--stage qe --qe-items 8 --qe-items-neg bogus"; do
    "$BIN" ebrm train $a --dir "$TMP/none" >/dev/null 2>&1
    [ $? -eq 2 ] && [ ! -e "$TMP/none" ] && ok || bad "train $a is not a usage error"
done
"$BIN" ebrm score --query pdf --items ",," >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "score --items ',,' (no package) is not a usage error"
# flags the run would ignore are usage errors: --split with a --queries file, --model with bm25
"$BIN" ebrm eval --queries x --split test >/dev/null 2>"$TMP/err"
[ $? -eq 2 ] && grep -q -- "--split" "$TMP/err" && ok || bad "eval --queries with --split is not a usage error"
"$BIN" ebrm eval --queries x --method bm25 --model x >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "eval --method bm25 --model is not a usage error"
"$BIN" ebrm rank --query pdf --method bm25 --model x >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "rank --method bm25 --model is not a usage error"
"$BIN" ebrm rank >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "rank without --query is not a usage error"
"$BIN" ebrm train --stage bogus >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "train --stage bogus is not a usage error"
"$BIN" ebrm eval --queries x --method magic >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "an unknown method is not a usage error"
"$BIN" ebrm eval --queries x --bogus 1 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "an unknown flag is not a usage error"
echo '{"query": "pdf viewer", "relevant": ["zathura"' >"$TMP/bad.jsonl"
"$BIN" ebrm eval --queries "$TMP/bad.jsonl" --method bm25 >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && [ "$(wc -l <"$TMP/err")" -le 2 ] && grep -q "bad.jsonl:1" "$TMP/err" && ok ||
    bad "a malformed query file: $(cat "$TMP/err")"
# item-to-item sets (higen's Hi-Gen-I2I) are not text queries: refused before anything loads
"$BIN" ebrm eval --construction i2i-source --method bm25 >/dev/null 2>"$TMP/err"
[ $? -eq 2 ] && grep -q "item-to-item" "$TMP/err" && ok || bad "eval --construction i2i-source is not a usage error"
"$BIN" ebrm rank --query pdf --construction i2i-recommends >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "rank --construction i2i-recommends is not a usage error"
echo '{"query": "zathura", "trigger": "zathura", "relevant": ["zathura-pdf-poppler"]}' >"$TMP/i2i.jsonl"
"$BIN" ebrm eval --queries "$TMP/i2i.jsonl" --method bm25 >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && [ "$(wc -l <"$TMP/err")" -le 2 ] && grep -q "i2i.jsonl:1" "$TMP/err" && ok ||
    bad "a query file with a trigger is not a one-line error: $(cat "$TMP/err")"
# Everything below runs from a directory outside the repository, with no
# ../shared in reach: score, rank, explain, eval and POST /v1/relevance must
# find the shipped model and the shipped copy of the catalog
# (models/debian-catalog). With the full snapshot present, the shipped copy
# must rank exactly as it does.
ROOT=$(pwd)
ABS=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
SHARED=$(cd ../shared 2>/dev/null && pwd)
mkdir -p "$TMP/away"
cd "$TMP/away" || exit 1
[ ! -e ../shared ] || { echo "FAIL: $TMP/away has a ../shared" >&2; exit 1; }
BIN=$ABS
# train's default --tokenizer is the shipped one, found from here too: the run gets as far as the catalog,
# which is read before --dir is created, so the failed run leaves no directory behind (and one that was
# there before stays, empty)
"$BIN" ebrm train --stage qe --dir "$TMP/away/d" --catalog "$TMP/nocatalog" --steps 1 --threads 1 >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && grep -q "nocatalog" "$TMP/err" && [ ! -e "$TMP/away/d" ] && ok ||
    bad "train with a bad --catalog: $(cat "$TMP/err"; ls -A "$TMP/away/d" 2>&1)"
mkdir "$TMP/away/kept"
"$BIN" ebrm train --stage qe --dir "$TMP/away/kept" --catalog "$TMP/nocatalog" --steps 1 --threads 1 >/dev/null 2>&1
[ $? -eq 1 ] && [ -d "$TMP/away/kept" ] && [ -z "$(ls -A "$TMP/away/kept")" ] && ok ||
    bad "train with a bad --catalog into an existing --dir: $(ls -A "$TMP/away/kept" 2>&1)"
# a failure after --dir is made (qi with no qe.safetensors to start from): what the run created goes
"$BIN" ebrm train --stage qi --dir "$TMP/away/q" --catalog "$ROOT/models/debian-catalog" --steps 1 --threads 1 \
    >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && grep -q "hint: --stage qi starts from --dir's qe.safetensors" "$TMP/err" && [ ! -e "$TMP/away/q" ] && ok ||
    bad "train --stage qi with nothing to start from: $(cat "$TMP/err"; ls -A "$TMP/away/q" 2>&1)"
"$BIN" ebrm train --stage qi --dir "$TMP/away/kept" --catalog "$ROOT/models/debian-catalog" --steps 1 --threads 1 \
    >/dev/null 2>&1
[ $? -eq 1 ] && [ -d "$TMP/away/kept" ] && [ -z "$(ls -A "$TMP/away/kept")" ] && ok ||
    bad "train --stage qi into an existing --dir leaves the tokenizer it copied: $(ls -A "$TMP/away/kept" 2>&1)"
printf '{"query": "pdf viewer", "relevant": ["zathura", "evince", "okular"]}\n{"query": "text editor", "relevant": ["vim", "nano"]}\n' >"$TMP/q.jsonl"
"$BIN" ebrm eval --queries "$TMP/q.jsonl" --method bm25 --json >"$TMP/out.json" 2>/dev/null &&
    grep -q '^{"method": "bm25", "queries": 2, "ndcg@10": [0-9.]*, "auc": [0-9.]*, "recall@10": [0-9.]*, "mrr@10": [0-9.]*' "$TMP/out.json" &&
    ok || bad "eval --json: $(cat "$TMP/out.json")"
# no query with a relevant candidate in BM25's top 100: the AUC is undefined, null (it printed 0)
printf '{"query": "pdf viewer", "relevant": ["zlib1g"]}\n' >"$TMP/q0.jsonl"
"$BIN" ebrm eval --queries "$TMP/q0.jsonl" --method bm25 --json >"$TMP/out.json" 2>/dev/null &&
    grep -q '"auc": null, .*"auc_queries": 0,' "$TMP/out.json" && ok || bad "eval with no AUC-scorable query: $(cat "$TMP/out.json")"
for m in ebrm cross-encoder bi-encoder; do
    "$BIN" ebrm eval --queries "$TMP/q.jsonl" --method $m --json --threads 1 >"$TMP/out.json" 2>"$TMP/err" &&
        grep -q "^{\"method\": \"$m\", \"queries\": 2, \"ndcg@10\": [0-9.]*, \"auc\": [0-9.]*, \"recall@10\": [0-9.]*, \"mrr@10\": [0-9.]*" "$TMP/out.json" &&
        ok || bad "eval --method $m: $(cat "$TMP/out.json" "$TMP/err")"
done
# --fuse-alpha: the fused cross-encoder baseline keeps the contract's method
# name and reports its weight; the shipped model's own weight given again
# changes nothing; bm25 and the bi-encoder refuse it
"$BIN" ebrm eval --queries "$TMP/q.jsonl" --method cross-encoder --fuse-alpha 12 --json --threads 1 >"$TMP/out.json" 2>"$TMP/err" &&
    grep -q '^{"method": "cross-encoder", "queries": 2, "ndcg@10": [0-9.]*, .*"fuse_alpha": 12, ' "$TMP/out.json" &&
    ok || bad "eval --method cross-encoder --fuse-alpha 12: $(cat "$TMP/out.json" "$TMP/err")"
"$BIN" ebrm eval --queries "$TMP/q.jsonl" --json --threads 1 | sed 's/"seconds": [0-9.]*//' >"$TMP/a.json" 2>/dev/null
A=$(sed -n 's/.*"fuse_alpha": \([0-9.]*\).*/\1/p' "$TMP/a.json")
"$BIN" ebrm eval --queries "$TMP/q.jsonl" --fuse-alpha "$A" --json --threads 1 | sed 's/"seconds": [0-9.]*//' >"$TMP/b.json" 2>/dev/null
[ -n "$A" ] && cmp -s "$TMP/a.json" "$TMP/b.json" && ok || bad "eval --fuse-alpha with the shipped weight ($A) differs"
for m in bm25 bi-encoder; do
    "$BIN" ebrm eval --queries "$TMP/q.jsonl" --method $m --fuse-alpha 2 >/dev/null 2>&1
    [ $? -eq 2 ] && ok || bad "eval --method $m --fuse-alpha is not a usage error"
done
"$BIN" ebrm eval --queries "$TMP/q.jsonl" --fuse-alpha -3 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "eval --fuse-alpha -3 is not a usage error"
"$BIN" ebrm eval --queries "$TMP/q.jsonl" --fuse-alpha -1 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "eval --fuse-alpha -1 is not a usage error"
# --fuse-bi: the bi-encoder's cosine added to the logit; at 0 the metrics
# are the unfused ones, at 4 they move; bm25 and the bi-encoder refuse it
met() { sed -n 's/.*\("ndcg@10": [0-9.]*, "auc": [0-9.]*, "recall@10": [0-9.]*, "mrr@10": [0-9.]*\).*/\1/p' "$1"; }
"$BIN" ebrm eval --queries "$TMP/q.jsonl" --fuse-bi 0 --json --threads 1 >"$TMP/c.json" 2>"$TMP/err" &&
    grep -q '"fuse_bi": 0, "bi_model": ".*encoder.safetensors"' "$TMP/c.json" && [ -n "$(met "$TMP/a.json")" ] &&
    [ "$(met "$TMP/a.json")" = "$(met "$TMP/c.json")" ] && ok || bad "eval --fuse-bi 0 differs from unfused: $(cat "$TMP/c.json" "$TMP/err")"
"$BIN" ebrm eval --queries "$TMP/q.jsonl" --method ebrm --fuse-bi 4 --json --threads 1 >"$TMP/d.json" 2>"$TMP/err" &&
    grep -q '^{"method": "ebrm", "queries": 2, .*"fuse_bi": 4, ' "$TMP/d.json" && [ -n "$(met "$TMP/d.json")" ] &&
    [ "$(met "$TMP/a.json")" != "$(met "$TMP/d.json")" ] && ok || bad "eval --fuse-bi 4 had no effect: $(cat "$TMP/d.json" "$TMP/err")"
for m in bm25 bi-encoder; do
    "$BIN" ebrm eval --queries "$TMP/q.jsonl" --method $m --fuse-bi 2 >/dev/null 2>&1
    [ $? -eq 2 ] && ok || bad "eval --method $m --fuse-bi is not a usage error"
done
"$BIN" ebrm eval --queries "$TMP/q.jsonl" --fuse-bi -1 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "eval --fuse-bi -1 is not a usage error"
"$BIN" ebrm eval --queries "$TMP/q.jsonl" --bi-model "$TMP/q.jsonl" >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "eval --bi-model without --fuse-bi is not a usage error"
"$BIN" ebrm eval --queries "$TMP/q.jsonl" --fuse-bi 2 --bi-model "$TMP/q.jsonl" >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && [ "$(grep -c 'error' "$TMP/err")" -eq 1 ] && ok || bad "eval --bi-model not a bi-encoder: $(cat "$TMP/err")"
"$BIN" ebrm rank --query "pdf viewer" -k 10 --json --threads 1 >"$TMP/rank.json" 2>"$TMP/err" &&
    [ "$(grep -o '"rank": ' "$TMP/rank.json" | wc -l)" -eq 10 ] && grep -q '"method": "ebrm"' "$TMP/rank.json" &&
    ok || bad "rank -k 10 with the shipped model: $(cat "$TMP/rank.json" "$TMP/err")"
if [ -n "$SHARED" ] && [ -r "$SHARED/data/debian-catalog/packages.jsonl.gz" ]; then
    "$BIN" ebrm rank --query "pdf viewer" -k 10 --json --threads 1 --catalog "$SHARED/data/debian-catalog" \
        >"$TMP/full_rank.json" 2>/dev/null
    cmp -s "$TMP/rank.json" "$TMP/full_rank.json" && ok || bad "the shipped catalog ranks differently from the snapshot"
else
    echo "debian catalog snapshot not found: the shipped copy is not compared with it"
fi
"$BIN" ebrm rank --query "pdf viewer" -k 5 --set-qe "works-with-format::pdf=1" --threads 1 >"$TMP/set.txt" 2>"$TMP/err" &&
    grep -q "was " "$TMP/set.txt" && ok || bad "rank --set-qe shows no change: $(cat "$TMP/set.txt" "$TMP/err")"
# a query with no term in the catalog: BM25 has no candidates, and the text output says so (not a blank page)
"$BIN" ebrm rank --query "!!!" --threads 1 >"$TMP/none.txt" 2>"$TMP/err" && grep -q "no candidates" "$TMP/none.txt" && ok ||
    bad "rank with no BM25 candidates printed: $(cat "$TMP/none.txt" "$TMP/err")"
"$BIN" ebrm rank --query "pdf viewer" --set-qe "no-such::entity=1" >/dev/null 2>"$TMP/err"
[ $? -eq 2 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "unknown entity 'no-such::entity'" "$TMP/err" && ok ||
    bad "unknown --set-qe entity: $(cat "$TMP/err")"
"$BIN" ebrm rank --query "pdf viewer" --set-qe "works-with-format::pdf=2" >/dev/null 2>"$TMP/err"
[ $? -eq 2 ] && ok || bad "--set-qe value out of [0,1]: $(cat "$TMP/err")"
"$BIN" ebrm rank --query "pdf viewer" --set-qe ",,," >/dev/null 2>"$TMP/err"
[ $? -eq 2 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "names no KEY=VALUE" "$TMP/err" && ok ||
    bad "--set-qe ',,,' (no override) is not a usage error: $(cat "$TMP/err")"
# a bad weights file is hinted by the flag that named it
"$BIN" ebrm bench --cross "$TMP/nothere.safetensors" --queries 1 --reps 1 --threads 1 >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && grep -q "nothere.safetensors" "$TMP/err" && grep -q "hint: --cross must be" "$TMP/err" && ok ||
    bad "bench --cross with a missing file: $(cat "$TMP/err")"
RECON='import json,sys; d=json.load(open(sys.argv[1])); p=d["score"]; s=1.0; k=1.0
for e in d["entities"]: s*=e["support_factor"]; k*=e["veto_factor"]
r=k*(1-(1-d["leak"])*s)
if "fusion" in d: import math; q=min(max(r,1e-7),1-1e-7); f=d["fusion"]; r=1/(1+math.exp(-(f["g"]*math.log(q/(1-q))+f["alpha"]*f["lex"])))
if "gate" in d.get("fusion", {}): import math; G=d["fusion"]["gate"]; assert abs(d["fusion"]["g"]-1/(1+math.exp(-G["slope"]*(G["top"]-G["center"]))))<=1e-6
sys.exit(0 if abs(r-p)<=1e-5 and abs(d["reconstructed"]-p)<=1e-5 and d["entities"] else 1)'
"$BIN" ebrm explain --query "pdf viewer" --item zathura --json --threads 1 >"$TMP/ex.json" 2>"$TMP/err" &&
    python3 -c "$RECON" "$TMP/ex.json" && ok || bad "explain factors do not reconstruct the score: $(cat "$TMP/ex.json" "$TMP/err")"
# the query-gated fusion (train --stage fuse --gate-slope/--gate-center on the
# shipped model): explain's factors and gate reconstruct its score; score
# gives the same number for the item alone as among other candidates
mkdir -p "$TMP/g"
cp "$ROOT/models/ebrm-debian/tokenizer.json" "$TMP/g/"
"$BIN" ebrm train --stage fuse --init "$ROOT/models/ebrm-debian/ebrm.safetensors" --fuse-alpha 6 --gate-slope 6.4 \
    --gate-center 0.62 --out "$TMP/g/ebrm.safetensors" >/dev/null 2>"$TMP/err" && ok || bad "gated fuse: $(cat "$TMP/err")"
"$BIN" ebrm explain --query "pdf viewer" --item zathura --model "$TMP/g/ebrm.safetensors" --json --threads 1 \
    >"$TMP/exg.json" 2>"$TMP/err" && grep -q '"gate": {"feature": "bm25top1/max_bm25"' "$TMP/exg.json" &&
    python3 -c "$RECON" "$TMP/exg.json" && ok || bad "gated explain: $(cat "$TMP/exg.json" "$TMP/err")"
"$BIN" ebrm score --query "pdf viewer" --items zathura --model "$TMP/g/ebrm.safetensors" --json --threads 1 >"$TMP/g1.json" 2>&1
"$BIN" ebrm score --query "pdf viewer" --items evince,zathura --model "$TMP/g/ebrm.safetensors" --json --threads 1 >"$TMP/g2.json" 2>&1
python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); e=json.load(open(sys.argv[3]))
s={x["id"]:x["score"] for x in b["scores"]}
sys.exit(0 if a["scores"][0]["score"]==s["zathura"] and abs(s["zathura"]-e["score"])<=1e-6 else 1)' "$TMP/g1.json" "$TMP/g2.json" "$TMP/exg.json" &&
    ok || bad "gated score depends on the other items: $(cat "$TMP/g1.json" "$TMP/g2.json")"
"$BIN" ebrm train --stage fuse --init "$TMP/g/ebrm.safetensors" --fuse-alpha 6 --out "$TMP/g/x.safetensors" >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && grep -q "already has a gate" "$TMP/err" && ok || bad "re-fusing a gated model: $(cat "$TMP/err")"
"$BIN" ebrm train --stage fuse --init "$TMP/g/ebrm.safetensors" --fuse-alpha 6 --gate-slope 2 --out "$TMP/g/x.safetensors" >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--gate-slope without --gate-center is not a usage error"
"$BIN" ebrm score --query "pdf viewer" --items zathura,evince --json --threads 1 >"$TMP/sc.json" 2>"$TMP/err" &&
    grep -q '"id": "evince", "score": 0\.[0-9]*' "$TMP/sc.json" && ok || bad "score: $(cat "$TMP/sc.json" "$TMP/err")"
# bench's contract: ms per query (cold and warm) for EBRM, the bi-encoder
# and the cross-encoder from one run, plus EBRM's cache hit rate
"$BIN" ebrm bench --queries 2 --reps 1 --json --threads 1 >"$TMP/bench.json" 2>"$TMP/err" &&
    python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]
m={x["method"]:x for x in r if "method" in x}; s=[x for x in r if x.get("summary")]
ok=all(k in m and m[k]["cold_ms"]>0 and m[k]["warm_ms"]>0 and m[k]["queries"]==2 for k in ("ebrm","bi-encoder","cross-encoder"))
ok=ok and m["ebrm"]["hit_rate"]==1 and len(s)==1 and s[0]["warm_speedup_vs_cross"]>0 and "loadavg_start" in s[0]
sys.exit(0 if ok else 1)' "$TMP/bench.json" && ok || bad "bench --json: $(cat "$TMP/bench.json" "$TMP/err")"
"$BIN" ebrm score --query "pdf viewer" --items no-such-pkg >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && grep -q "unknown package 'no-such-pkg'" "$TMP/err" && ok || bad "score unknown item: $(cat "$TMP/err")"
mkdir -p "$TMP/m"
cp "$ROOT/models/ebrm-debian/tokenizer.json" "$TMP/m/"
head -c 5000 "$ROOT/models/ebrm-debian/ebrm.safetensors" >"$TMP/m/ebrm.safetensors"
"$BIN" ebrm rank --query "pdf viewer" --model "$TMP/m/ebrm.safetensors" >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && [ "$(wc -l <"$TMP/err")" -le 2 ] && grep -q "ebrm.safetensors" "$TMP/err" && ok ||
    bad "a truncated model: $(cat "$TMP/err")"
"$BIN" ebrm rank --query "pdf viewer" --model "$ROOT/models/ebrm-debian/tokenizer.json" >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && ok || bad "a model that is no safetensors file: $(cat "$TMP/err")"
printf '{"query": "x", "relevant": ["no-such-package-zz"]}\n' >"$TMP/unk.jsonl"
"$BIN" ebrm eval --queries "$TMP/unk.jsonl" --method bm25 >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && grep -q "unk.jsonl:1" "$TMP/err" && ok || bad "unknown item id: $(cat "$TMP/err")"
# POST /v1/relevance on a default server (the route is on by default): the
# same scores as `ebrm score`, the QE cache shared across requests
if command -v curl >/dev/null; then
    "$BIN" serve --port 0 --lm none --threads 1 --quiet >"$TMP/srv.out" 2>"$TMP/srv.err" &
    SPID=$!
    PORT=$(serve_wait "$TMP/srv.out" "$SPID")
    if [ -n "$PORT" ]; then
        U=http://127.0.0.1:$PORT/v1/relevance
        curl -s --max-time 60 $U -d '{"query":"pdf viewer","candidates":["zathura","evince"]}' >"$TMP/r1.json"
        curl -s --max-time 60 $U -d '{"query":"pdf viewer","candidates":["evince","okular"]}' >"$TMP/r2.json"
        python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); c=json.load(open(sys.argv[3]))
s={e["id"]:e["score"] for e in c["scores"]}
ok=[e["id"] for e in a["scores"]]==["zathura","evince"] and all(abs(e["score"]-s[e["id"]])<1e-6 for e in a["scores"])
ok=ok and abs(b["scores"][0]["score"]-s["evince"])<1e-6 and b["cache"]["hits"]>0
sys.exit(0 if ok else 1)' "$TMP/r1.json" "$TMP/r2.json" "$TMP/sc.json" && ok ||
            bad "/v1/relevance: $(cat "$TMP/r1.json" "$TMP/r2.json") $(tail -2 "$TMP/srv.err")"
        code=$(curl -s -o "$TMP/r3.json" -w '%{http_code}' --max-time 60 $U -d '{"query":"x","candidates":["no-such-pkg"]}')
        [ "$code" = 400 ] && grep -q '"param":"candidates"' "$TMP/r3.json" && ok || bad "unknown candidate: $code $(cat "$TMP/r3.json")"
        code=$(curl -s -o "$TMP/r4.json" -w '%{http_code}' --max-time 60 $U -d '{"query":')
        [ "$code" = 400 ] && ok || bad "malformed body: $code"
        # as `ebrm score`: a blank query, a field the route ignores and an
        # item-to-item construction are 400s naming the field
        code=$(curl -s -o "$TMP/r5.json" -w '%{http_code}' --max-time 60 $U -d '{"query":"  ","candidates":["evince"]}')
        [ "$code" = 400 ] && grep -q '"param":"query"' "$TMP/r5.json" && ok || bad "blank query: $code $(cat "$TMP/r5.json")"
        code=$(curl -s -o "$TMP/r6.json" -w '%{http_code}' --max-time 60 $U -d '{"query":"pdf","candidates":["evince"],"k":3}')
        [ "$code" = 400 ] && grep -q '"param":"k"' "$TMP/r6.json" && ok || bad "unknown field: $code $(cat "$TMP/r6.json")"
        code=$(curl -s -o "$TMP/r7.json" -w '%{http_code}' --max-time 60 $U \
            -d '{"query":"pdf","candidates":["evince"],"construction":"i2i-source"}')
        [ "$code" = 400 ] && grep -q '"param":"construction"' "$TMP/r7.json" && ok || bad "i2i construction: $code $(cat "$TMP/r7.json")"
        kill -TERM "$SPID"
        wait "$SPID" && ok || bad "server exit"
    else
        bad "server did not start: $(tail -3 "$TMP/srv.err")"
        kill "$SPID" 2>/dev/null
    fi
else
    echo "curl not installed: /v1/relevance checks skipped"
fi
echo "e2e_ebrm: $pass passed, $fails failed"
[ "$fails" -eq 0 ]
