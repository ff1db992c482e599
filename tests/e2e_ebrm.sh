#!/usr/bin/env bash
# End-to-end test of `tessera ebrm`: misuse is a usage error (exit 2), a bad
# query file or a method without a model is a one-line failure (exit 1),
# and with the Debian catalog present `eval --method bm25 --json` prints
# the contract's fields.
# Usage: tests/e2e_ebrm.sh path/to/tessera   (cwd = repository root)
set -u
BIN=${1:?usage: e2e_ebrm.sh path/to/tessera}
CAT=../shared/data/debian-catalog
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
"$BIN" ebrm eval --queries x --method magic >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "an unknown method is not a usage error"
"$BIN" ebrm eval --queries x --bogus 1 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "an unknown flag is not a usage error"
echo '{"query": "pdf viewer", "relevant": ["zathura"' >"$TMP/bad.jsonl"
"$BIN" ebrm eval --queries "$TMP/bad.jsonl" --method bm25 >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && [ "$(wc -l <"$TMP/err")" -le 2 ] && grep -q "bad.jsonl:1" "$TMP/err" && ok ||
    bad "a malformed query file: $(cat "$TMP/err")"
if [ -r "$CAT/packages.jsonl.gz" ]; then
    printf '{"query": "pdf viewer", "relevant": ["zathura", "evince", "okular"]}\n{"query": "text editor", "relevant": ["vim", "nano"]}\n' >"$TMP/q.jsonl"
    "$BIN" ebrm eval --queries "$TMP/q.jsonl" --method bm25 --json >"$TMP/out.json" 2>/dev/null &&
        grep -q '^{"method": "bm25", "queries": 2, "ndcg@10": [0-9.]*, "auc": [0-9.]*, "recall@10": [0-9.]*, "mrr@10": [0-9.]*' "$TMP/out.json" &&
        ok || bad "eval --json: $(cat "$TMP/out.json")"
    "$BIN" ebrm eval --queries "$TMP/q.jsonl" >/dev/null 2>"$TMP/err"
    [ $? -eq 1 ] && grep -q "no.*model\|none exists" "$TMP/err" && ok || bad "ebrm without a model: $(cat "$TMP/err")"
    printf '{"query": "x", "relevant": ["no-such-package-zz"]}\n' >"$TMP/unk.jsonl"
    "$BIN" ebrm eval --queries "$TMP/unk.jsonl" --method bm25 >/dev/null 2>"$TMP/err"
    [ $? -eq 1 ] && grep -q "unk.jsonl:1" "$TMP/err" && ok || bad "unknown item id: $(cat "$TMP/err")"
else
    echo "debian catalog not found: eval checks skipped"
fi
echo "e2e_ebrm: $pass passed, $fails failed"
[ "$fails" -eq 0 ]
