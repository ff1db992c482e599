#!/usr/bin/env bash
# End-to-end tests of `tessera serve` over HTTP on the loopback interface
# (127.0.0.1 only, a free port picked by the server): every endpoint,
# streaming and not, greedy replies identical to `tessera lm generate`,
# seeded sampling reproducible, the space/bita/ngram decoders, auth on and
# off, bad input (4xx in OpenAI's error shape, the server keeps serving),
# limits (413, 429), a client leaving mid-stream, metrics, the access log
# and a graceful SIGTERM drain (requests in flight finish, exit 0); the
# family endpoints (detect, segment, and the image samplers: each BiGR and
# ELM grid byte-identical to the CLI's PNG, 400s naming the field, 503 past
# --timeout). Every
# server is stopped by its own pid; every request has a time bound.
# Usage: tests/e2e_serve.sh path/to/tessera   (cwd = repository root; needs curl)
set -u
. "$(dirname "$0")/serve_wait.sh"
BIN=${1:?usage: e2e_serve.sh path/to/tessera}
if ! command -v curl >/dev/null; then
    echo "SKIP: curl is not installed (scripts/setup.sh installs it)"
    exit 0
fi
TMP=$(mktemp -d /tmp/tessera_e2e_serve.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
fails=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
C="curl -s --max-time 60"

# start_server NAME ARGS...: sets PORT and SPID; waits for the listening line
start_server() {
    local name=$1
    shift
    "$BIN" serve --port 0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    SPID=$!
    PIDS+=("$SPID")
    PORT=$(serve_wait "$TMP/$name.out" "$SPID")
    if [ -z "$PORT" ]; then
        bad "server $name did not start: $(tail -3 "$TMP/$name.err")"
        echo "e2e_serve: $pass passed, $fails failed"
        exit 1
    fi
    U=http://127.0.0.1:$PORT
}

# stop_server: SIGTERM to our own pid, wait (bounded) and check the exit code
stop_server() {
    kill -TERM "$SPID"
    local rc=
    for _ in $(seq 1 300); do
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SPID" 2>/dev/null; then
        bad "server did not exit within 30 s of SIGTERM"
        kill -KILL "$SPID"
    fi
    wait "$SPID"
    rc=$?
    [ "$rc" -eq 0 ] && ok || bad "server exited $rc after SIGTERM"
}

# the raw (JSON-escaped) value of the first "text" member
text_of() { grep -oE '"text":"([^"\\]|\\.)*"' | head -1 | sed -E 's/^"text":"//; s/"$//'; }
# every "text" of an SSE stream, concatenated (escaped form)
stream_text() { grep '^data: {' | grep -oE '"text":"([^"\\]|\\.)*"' | sed -E 's/^"text":"//; s/"$//' | tr -d '\n'; }
# HTTP status of a request: code BODYFILE curl-args...
code() {
    local out=$1
    shift
    $C -o "$out" -w '%{http_code}' "$@"
}
is_error_shape() { grep -qE '^\{"error":\{"message":"[^"]+","type":"[a-z_]+"' "$1"; }

P1='def add(a, b):'
P2='class Stack:\n    def __init__(self):'

# ------------------------------------------------------------ server A: no auth, every shipped model
start_server A --max-body 4096 --max-tokens 300
[ "$($C $U/health)" = '{"status":"ok"}' ] && ok || bad "/health"
$C $U/v1/models >"$TMP/models.json"
grep -q '"id":"pycode"' "$TMP/models.json" && grep -q '"id":"pycode-space"' "$TMP/models.json" &&
    grep -q '"object":"list"' "$TMP/models.json" && ok || bad "/v1/models: $(cat "$TMP/models.json")"

# greedy: the completion equals what `tessera lm generate` prints after the prompt
for p in "$P1" "$P2"; do
    pj=$p
    pe=$(printf "$p")
    st=$(code "$TMP/g.json" $U/v1/completions -H 'Content-Type: application/json' \
        -d "{\"prompt\":\"$p\",\"max_tokens\":48,\"temperature\":0}")
    [ "$st" = 200 ] && ok || bad "greedy completion: status $st"
    got=$(text_of <"$TMP/g.json")
    "$BIN" lm generate --prompt "$pe" --max-tokens 48 --temperature 0 --json 2>/dev/null >"$TMP/gen.json"
    want=$(text_of <"$TMP/gen.json")
    [ -n "$got" ] && [ "$pj$got" = "$want" ] && ok || bad "greedy text differs from lm generate for '$p':
  served:   $pj$got
  generate: $want"
    grep -q '"usage":{"prompt_tokens":[0-9]*,"completion_tokens":48,"total_tokens":[0-9]*}' "$TMP/g.json" && ok ||
        bad "usage: $(cat "$TMP/g.json")"
    grep -q '"object":"text_completion"' "$TMP/g.json" && grep -q '"finish_reason":"length"' "$TMP/g.json" && ok ||
        bad "completion object: $(cat "$TMP/g.json")"
done
# stop strings: the text ends before the stop string, finish_reason stop
$C $U/v1/completions -d "{\"prompt\":\"$P1\",\"max_tokens\":48,\"temperature\":0,\"stop\":\"a =\"}" >"$TMP/s.json"
"$BIN" lm generate --prompt "$P1" --max-tokens 48 --temperature 0 --stop "a =" --json 2>/dev/null >"$TMP/gens.json"
[ "$P1$(text_of <"$TMP/s.json")" = "$(text_of <"$TMP/gens.json")" ] && grep -q '"finish_reason":"stop"' "$TMP/s.json" &&
    ok || bad "stop string: $(cat "$TMP/s.json") vs $(cat "$TMP/gens.json")"

# seeded sampling: reproducible and identical to lm generate with the same settings
body="{\"prompt\":\"import os\",\"max_tokens\":40,\"temperature\":0.8,\"top_p\":0.9,\"seed\":7}"
a=$($C $U/v1/completions -d "$body" | text_of)
b=$($C $U/v1/completions -d "$body" | text_of)
w=$("$BIN" lm generate --prompt "import os" --max-tokens 40 --temperature 0.8 --top-p 0.9 --seed 7 --json 2>/dev/null | text_of)
[ -n "$a" ] && [ "$a" = "$b" ] && [ "import os$a" = "$w" ] && ok || bad "seeded sampling: '$a' / '$b' / lm generate '$w'"

# streaming: SSE framing OpenAI clients parse, same text as the plain reply
$C -N -D "$TMP/sh.txt" $U/v1/completions -d "{\"prompt\":\"$P1\",\"max_tokens\":48,\"temperature\":0,\"stream\":true}" >"$TMP/st.txt"
grep -qi '^content-type: text/event-stream' "$TMP/sh.txt" && ok || bad "stream content type: $(cat "$TMP/sh.txt")"
[ "$(tail -2 "$TMP/st.txt" | head -1)" = "data: [DONE]" ] && ok || bad "stream does not end with data: [DONE]"
# every event: one 'data: ' line followed by an empty line
awk 'NR % 2 == 1 && !/^data: / {e=1} NR % 2 == 0 && $0 != "" {e=1} END {exit e}' "$TMP/st.txt" && ok ||
    bad "SSE framing: $(head -c 300 "$TMP/st.txt")"
plain=$($C $U/v1/completions -d "{\"prompt\":\"$P1\",\"max_tokens\":48,\"temperature\":0}" | text_of)
[ "$(stream_text <"$TMP/st.txt")" = "$plain" ] && ok || bad "streamed text differs from the plain reply"
grep '^data: {' "$TMP/st.txt" | tail -1 | grep -q '"finish_reason":"length".*"usage":{"prompt_tokens"' && ok ||
    bad "the last chunk carries no finish_reason/usage"
$C -N $U/v1/completions -d "{\"prompt\":\"x\",\"max_tokens\":5,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" |
    grep -q '^data: {.*"choices":\[\],"usage":{' && ok || bad "stream_options.include_usage"

# decoders: bita and ngram are token-identical to plain greedy; space answers
for d in bita ngram; do
    t=$($C $U/v1/completions -d "{\"prompt\":\"$P1\",\"max_tokens\":48,\"temperature\":0,\"decoder\":\"$d\"}" | text_of)
    [ "$t" = "$plain" ] && ok || bad "decoder $d differs from plain greedy: '$t'"
done
st=$(code "$TMP/sp.json" $U/v1/completions -d "{\"prompt\":\"$P1\",\"max_tokens\":16,\"temperature\":0,\"decoder\":\"space\"}")
[ "$st" = 200 ] && grep -q '"model":"pycode-space"' "$TMP/sp.json" && grep -q '"completion_tokens":16' "$TMP/sp.json" && ok ||
    bad "decoder space: $st $(cat "$TMP/sp.json")"

# bad input: 4xx with OpenAI's error shape
check_bad() { # want-status body [curl args]
    local want=$1 body=$2
    shift 2
    local st
    st=$(code "$TMP/e.json" "$@" $U/v1/completions -d "$body")
    [ "$st" = "$want" ] && is_error_shape "$TMP/e.json" && ok || bad "'${body:0:60}': status $st (want $want): $(head -c 200 "$TMP/e.json")"
}
check_bad 400 '{"prompt": "x", '
check_bad 400 'not json'
check_bad 400 '{"prompt": 5}'
check_bad 400 '{"prompt": "x", "max_tokens": "many"}'
check_bad 400 '{"prompt": "x", "temprature": 0.5}'
check_bad 400 '{"prompt": "x", "decoder": "beam"}'
check_bad 404 '{"prompt": "x", "model": "gpt-4"}'
check_bad 400 '{"prompt": "x", "max_tokens": 100000}'
check_bad 400 '{"prompt": "x", "decoder": "ngram", "temperature": 0.7}'
check_bad 400 "{\"prompt\": \"$(printf 'x = 1; %.0s' $(seq 1 300))\"}"
head -c 5000 /dev/zero | tr '\0' 'a' | sed 's/^/{"prompt":"/; s/$/"}/' >"$TMP/big.json"
check_bad 413 "@$TMP/big.json"
grep -q '"param":"max_tokens"' <($C $U/v1/completions -d '{"max_tokens":-1}') && ok || bad "error param names the field"
st=$(code "$TMP/e.json" $U/v1/nothing)
[ "$st" = 404 ] && is_error_shape "$TMP/e.json" && ok || bad "unknown path: $st"
st=$(code "$TMP/e.json" $U/v1/completions)
[ "$st" = 405 ] && is_error_shape "$TMP/e.json" && ok || bad "GET /v1/completions: $st"

# a client that leaves mid-stream: the server goes on serving
curl -s -N --max-time 0.2 $U/v1/completions -d '{"prompt":"def","max_tokens":300,"stream":true,"temperature":1}' >/dev/null 2>&1
[ "$($C $U/health)" = '{"status":"ok"}' ] && ok || bad "health after a client left mid-stream"
t=$($C $U/v1/completions -d "{\"prompt\":\"$P1\",\"max_tokens\":48,\"temperature\":0}" | text_of)
[ "$t" = "$plain" ] && ok || bad "completion after a client left mid-stream"

# metrics and the access log
$C $U/metrics >"$TMP/metrics.txt"
grep -q '^tessera_requests_total{endpoint="/v1/completions",status="200"} [0-9]' "$TMP/metrics.txt" &&
    grep -q '^tessera_requests_total{endpoint="/v1/completions",status="400"} [0-9]' "$TMP/metrics.txt" &&
    grep -q '^tessera_request_duration_seconds_bucket{endpoint="/v1/completions",le="+Inf"}' "$TMP/metrics.txt" &&
    grep -q '^tessera_llm_completion_tokens_total [1-9]' "$TMP/metrics.txt" &&
    grep -q '^tessera_llm_batch_size_bucket' "$TMP/metrics.txt" && grep -q '^tessera_llm_queue_depth 0' "$TMP/metrics.txt" &&
    grep -q '^tessera_llm_kv_cache_pool_hit_ratio' "$TMP/metrics.txt" && ok || bad "metrics: $(head -c 400 "$TMP/metrics.txt")"
n_log=$(grep -c '^{"time":"[^"]*","remote":"127.0.0.1","method":"POST","path":"/v1/completions","status":' "$TMP/A.err")
[ "$n_log" -ge 20 ] && ok || bad "access log: $n_log lines for /v1/completions"

# graceful shutdown: requests in flight when SIGTERM arrives finish with 200
# SIGTERM only once each of the four has reached the server or finished,
# with at least one still running (a fixed sleep lost this race on a loaded
# machine: a request its client has not sent yet is not in flight). If all
# four finish before a poll sees one in flight, that round proves nothing
# about draining: send four more (at most three rounds).
inf=0
for round in 1 2 3; do
    CP=()
    for i in 1 2 3 4; do
        $C -o "$TMP/d$i.json" -w '%{http_code}' $U/v1/completions \
            -d "{\"prompt\":\"def f$i(\",\"max_tokens\":200,\"temperature\":1,\"seed\":$((i + 4 * round))}" >"$TMP/d$i.code" &
        CP+=($!)
    done
    for _ in $(seq 1 600); do
        fin=0
        for p in "${CP[@]}"; do kill -0 "$p" 2>/dev/null || fin=$((fin + 1)); done
        inf=$($C $U/metrics | sed -n 's/^tessera_requests_in_flight //p')
        [ "${inf:-0}" -ge 1 ] && [ $((inf + fin)) -ge 4 ] && break
        [ "$fin" -eq 4 ] && break
        sleep 0.05
    done
    [ "${inf:-0}" -ge 1 ] && break
    wait "${CP[@]}"
done
[ "${inf:-0}" -ge 1 ] && ok || bad "no request was in flight at SIGTERM"
stop_server
wait "${CP[@]}"
for i in 1 2 3 4; do
    [ "$(cat "$TMP/d$i.code")" = 200 ] && grep -q '"usage"' "$TMP/d$i.json" && ok ||
        bad "request $i in flight at SIGTERM: status $(cat "$TMP/d$i.code")"
done
grep -q "draining" "$TMP/A.err" && ok || bad "no drain message"
curl -s --max-time 2 $U/health >/dev/null && bad "server still answers after exit" || ok

# ------------------------------------------------------------ server B: auth, one request at a time
TESSERA_API_KEY=sekret start_server B --space none --bita none --max-concurrent 1 --quiet
[ "$($C $U/health)" = '{"status":"ok"}' ] && ok || bad "/health without a key"
st=$(code "$TMP/e.json" $U/v1/models)
[ "$st" = 401 ] && is_error_shape "$TMP/e.json" && ok || bad "no key: $st"
st=$(code "$TMP/e.json" -H 'Authorization: Bearer wrong' $U/v1/models)
[ "$st" = 401 ] && ok || bad "wrong key: $st"
st=$(code "$TMP/e.json" -H 'Authorization: Bearer sekret' $U/v1/models)
[ "$st" = 200 ] && ok || bad "right key: $st"
st=$(code "$TMP/e.json" -H 'Authorization: Bearer sekret' $U/metrics)
[ "$st" = 200 ] && ok || bad "metrics with the key: $st"
# --max-concurrent 1: simultaneous requests get a clean 429, the rest 200
CP=()
for i in $(seq 1 12); do
    $C -o "$TMP/c$i.body" -w '%{http_code}\n' -H 'Authorization: Bearer sekret' $U/v1/completions \
        -d "{\"prompt\":\"def g$i(\",\"max_tokens\":150,\"temperature\":0}" >"$TMP/c$i.code" &
    CP+=($!)
done
wait "${CP[@]}"
codes=$(cat "$TMP"/c*.code | sort | uniq -c | tr -s ' ' | tr '\n' ' ')
n200=$(cat "$TMP"/c*.code | grep -c '^200$')
n429=$(cat "$TMP"/c*.code | grep -c '^429$')
[ "$n200" -ge 1 ] && [ "$n429" -ge 1 ] && [ $((n200 + n429)) -eq 12 ] && ok || bad "max-concurrent: codes $codes"
# each 429 carries OpenAI's error body (a client can tell it from a failure and retry)
clean=0
for i in $(seq 1 12); do
    [ "$(cat "$TMP/c$i.code")" = 429 ] && is_error_shape "$TMP/c$i.body" &&
        grep -q '"type": *"rate_limit_error"' "$TMP/c$i.body" && clean=$((clean + 1))
done
[ "$clean" -eq "$n429" ] && ok || bad "429 replies without the error body: $((n429 - clean)) of $n429"
[ "$($C $U/health)" = '{"status":"ok"}' ] && ok || bad "health after 429s"
stop_server
[ ! -s "$TMP/B.out" ] || grep -q '"auth": true' "$TMP/B.out" && ok || bad "auth not reported on stdout"

# ------------------------------------------------------------ server C: no language model, detect and segment
# from another working directory: the shipped ovadetr and apt models are
# found there; naming only family models leaves every other endpoint off
REPO=$(pwd)
BINABS=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
python3 - "$TMP" <<'PY'
import struct, sys, zlib
d = sys.argv[1]
def png(path, w, h, ch, f, alpha=False):
    ct = {1: 0, 3: 2}[ch] + (4 if alpha else 0)
    raw = b"".join(b"\x00" + bytes(v for x in range(w) for v in ((f(x, y) if ch == 3 else (f(x, y),)) + ((255,) if alpha else ())))
                   for y in range(h))
    def chunk(t, b): return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ct, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
img = lambda x, y: (200, 180, 60) if 40 <= x < 110 and 30 <= y < 90 else ((x * 3) % 90, 90, (y * 5) % 120)
png(d + "/img.png", 160, 120, 3, img)
png(d + "/img_rgba.png", 160, 120, 3, img, alpha=True)
png(d + "/lc.png", 160, 120, 1, lambda x, y: 40 if 32 <= x < 112 and 32 <= y < 96 else 10)
png(d + "/lc_small.png", 80, 60, 1, lambda x, y: 40)
PY
# req FILE JSON-with-@IMG@-@RGBA@-@LC@-@LCS@: the body with base64 PNGs put in
req() {
    local f=$1
    shift
    printf '%s' "$*" | sed -e "s|@IMG@|$(base64 -w0 "$TMP/img.png")|" -e "s|@RGBA@|$(base64 -w0 "$TMP/img_rgba.png")|" \
        -e "s|@LC@|$(base64 -w0 "$TMP/lc.png")|" -e "s|@LCS@|$(base64 -w0 "$TMP/lc_small.png")|" >"$TMP/$f"
}
mkdir -p "$TMP/elsewhere"
cd "$TMP/elsewhere"
BIN_SAVE=$BIN
BIN=$BINABS
start_server C --lm none --quiet --max-body 200000
BIN=$BIN_SAVE
cd "$REPO"
grep -q 'llm: off' "$TMP/C.err" && grep -q 'search: .*models/higen-debian' "$TMP/C.err" &&
    grep -q 'detect: .*models/ovadetr.safetensors' "$TMP/C.err" && grep -q 'segment: .*models/apt_small.safetensors' "$TMP/C.err" &&
    ok || bad "loaded endpoints: $(cat "$TMP/C.err")"
[ "$($C $U/v1/models)" = '{"object":"list","data":[]}' ] && ok || bad "/v1/models without a language model"
st=$(code "$TMP/e.json" $U/v1/completions -d '{"prompt":"x"}')
[ "$st" = 503 ] && is_error_shape "$TMP/e.json" && ok || bad "completions without a language model: $st"

# detect: the same boxes and scores as `tessera ovadetr detect` (COCO JSON)
req det.json '{"image":"@IMG@","classes":["plane","car"],"min_score":0,"max_det":5}'
st=$(code "$TMP/det.out" $U/v1/detect -d @"$TMP/det.json")
"$BIN" ovadetr detect --image "$TMP/img.png" --classes plane,car --min-score 0 --max-det 5 --out "$TMP/det.coco" \
    --threads 2 >/dev/null 2>&1
python3 - "$TMP/det.out" "$TMP/det.coco" <<'PY' && [ "$st" = 200 ] && ok || bad "detect ($st) differs from ovadetr detect: $(head -c 300 "$TMP/det.out")"
import json, sys
r, c = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
a = [(d["class"], d["score"], d["box"]) for d in r["detections"]]
names = {k["id"]: k["name"] for k in c["categories"]}
b = [(names[x["category_id"]], x["score"], [x["bbox"][0], x["bbox"][1]]) for x in c["annotations"]]
assert r["object"] == "detection" and r["width"] == 160 and r["height"] == 120 and len(a) == 5, r
assert [(n, s) for n, s, _ in a] == [(n, s) for n, s, _ in b], (a, b)
assert all(abs(x[2][0] - y[2][0]) < 0.011 and abs(x[2][1] - y[2][1]) < 0.011 for x, y in zip(a, b)), (a, b)
PY
# an RGBA PNG (alpha dropped) and a data URL give the same reply
req det2.json '{"image":"data:image/png;base64,@RGBA@","classes":"plane, car","min_score":0,"max_det":5}'
$C $U/v1/detect -d @"$TMP/det2.json" | sed 's/"ms":[0-9.]*//' >"$TMP/det2.out"
[ "$(sed 's/"ms":[0-9.]*//' "$TMP/det.out")" = "$(cat "$TMP/det2.out")" ] && ok || bad "RGBA / data URL detect differs"
check_bad_at() { # want-status path body-file [param]
    local st
    st=$(code "$TMP/e.json" $U$2 -d @"$TMP/$3")
    [ "$st" = "$1" ] && is_error_shape "$TMP/e.json" && { [ -z "${4:-}" ] || grep -q "\"param\":\"$4\"" "$TMP/e.json"; } && ok ||
        bad "$2 $(head -c 80 "$TMP/$3"): status $st (want $1 ${4:-}): $(head -c 200 "$TMP/e.json")"
}
req b1 '{"image":"@IMG@","classes":["plane","flibbertigibbet"]}'
check_bad_at 400 /v1/detect b1 classes
req b2 '{"classes":["plane"]}'
check_bad_at 400 /v1/detect b2 image
# a NUL in a text member (\u0000) is a 400 naming it, on every endpoint; the
# ONNX bytes /v1/latency takes (NULs and all) are not JSON and are served
printf '{"image":"x","classes":["car\\u0000"]}' >"$TMP/nul1"
check_bad_at 400 /v1/detect nul1 classes
ONNX=$REPO/../shared/data/nnlqp/resnet18-v1-7-no-weight.onnx
if [ -r "$ONNX" ]; then
    st=$(code "$TMP/lat.out" $U/v1/latency --data-binary @"$ONNX")
    [ "$st" = 200 ] && grep -q '"latency_ms"' "$TMP/lat.out" && ok || bad "/v1/latency with ONNX bytes: $st $(head -c 200 "$TMP/lat.out")"
fi
req b3 '{"image":"not base64!","classes":["plane"]}'
check_bad_at 400 /v1/detect b3 image
req b4 '{"image":"aGVsbG8gd29ybGQ=","classes":["plane"]}'
check_bad_at 400 /v1/detect b4 image
req b5 '{"image":"@IMG@","classes":["plane"],"min_score":2}'
check_bad_at 400 /v1/detect b5 min_score
req b6 '{"image":"@IMG@","classes":["plane"],"tile":100}'
check_bad_at 400 /v1/detect b6 tile
req b7 '{"image":"@IMG@","classes":["plane"],"colour":"red"}'
check_bad_at 400 /v1/detect b7 colour
req b8 '{"image":"@IMG@","classes":[]}'
check_bad_at 400 /v1/detect b8 classes
req b9 '{"image": 5, "classes": 7}'
check_bad_at 400 /v1/detect b9
req b10 '{"image":"@IMG@", "classes":'
check_bad_at 400 /v1/detect b10
head -c 100000 /dev/zero | base64 -w0 | sed 's/^/{"image":"/; s/$/","classes":["car"]}/' >"$TMP/b11"
check_bad_at 400 /v1/detect b11 image
head -c 200000 /dev/zero | base64 -w0 | sed 's/^/{"image":"/; s/$/","classes":["car"]}/' >"$TMP/b12"
check_bad_at 413 /v1/detect b12

# segment: the same mask and points as `tessera apt segment`
req seg.json '{"image":"@IMG@","landcover":"@LC@","class":40,"points_per_class":3,"iterations":2,"min_area":50}'
st=$(code "$TMP/seg.out" $U/v1/segment -d @"$TMP/seg.json")
"$BIN" apt segment --image "$TMP/img.png" --landcover "$TMP/lc.png" --class 40 --points 3 --iterations 2 --min-area 50 \
    --out "$TMP/seg_cli.png" --json --threads 2 >"$TMP/seg_cli.json" 2>/dev/null
cat >"$TMP/segcmp.py" <<'PY'
import base64, json, struct, sys, zlib
def grey(b):  # an 8-bit greyscale PNG's pixels (any filters)
    assert b[:8] == b"\x89PNG\r\n\x1a\n"
    i, idat = 8, b""
    while i < len(b):
        n, t = struct.unpack(">I4s", b[i:i + 8])
        if t == b"IHDR": w, h, bd, ct = struct.unpack(">IIBB", b[i + 8:i + 18])
        if t == b"IDAT": idat += b[i + 8:i + 8 + n]
        i += 12 + n
    assert bd == 8 and ct == 0
    raw, out, prev = zlib.decompress(idat), [], [0] * w
    for y in range(h):
        f, row = raw[y * (w + 1)], list(raw[y * (w + 1) + 1:(y + 1) * (w + 1)])
        for x in range(w):
            a, c, up = row[x - 1] if x else 0, prev[x - 1] if x else 0, prev[x]
            if f == 1: row[x] = (row[x] + a) & 255
            elif f == 2: row[x] = (row[x] + up) & 255
            elif f == 3: row[x] = (row[x] + (a + up) // 2) & 255
            elif f == 4:
                p = a + up - c; pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                row[x] = (row[x] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
        out += row
        prev = row
    return w, h, out
r, cli = json.load(open(sys.argv[1])), json.load(open(sys.argv[3]))
w, h, m = grey(base64.b64decode(r["mask"]))
cw, ch, cm = grey(open(sys.argv[2], "rb").read())
assert r["object"] == "segmentation" and (w, h) == (160, 120) == (cw, ch), (w, h, cw, ch)
assert set(m) <= {0, 255} and [v > 0 for v in m] == [v > 0 for v in cm], "masks differ"
assert r["mask_pixels"] == cli["mask_pixels"] == sum(v > 0 for v in m) > 0, (r["mask_pixels"], cli["mask_pixels"])
assert r["points"] == cli["points"], (r["points"], cli["points"])
PY
python3 "$TMP/segcmp.py" "$TMP/seg.out" "$TMP/seg_cli.png" "$TMP/seg_cli.json" && [ "$st" = 200 ] && ok || bad "segment ($st) differs from apt segment: $(head -c 300 "$TMP/seg.out")"
# the gate, threshold and prompt placement as fields: the same as segment's flags (here the paper's settings, threshold 0.5)
req seg3.json '{"image":"@IMG@","landcover":"@LC@","class":40,"points_per_class":3,"iterations":2,"min_area":50,"gate":-1,"threshold":0.5,"prompts_per":"image"}'
st=$(code "$TMP/seg3.out" $U/v1/segment -d @"$TMP/seg3.json")
"$BIN" apt segment --image "$TMP/img.png" --landcover "$TMP/lc.png" --class 40 --points 3 --iterations 2 --min-area 50 \
    --gate -1 --threshold 0.5 --prompts-per image --out "$TMP/seg3_cli.png" --json --threads 2 >"$TMP/seg3_cli.json" 2>/dev/null
python3 "$TMP/segcmp.py" "$TMP/seg3.out" "$TMP/seg3_cli.png" "$TMP/seg3_cli.json" && [ "$st" = 200 ] &&
    ! grep -q "\"mask_pixels\":$(sed -n 's/.*"mask_pixels":\([0-9]*\).*/\1/p' "$TMP/seg.out")," "$TMP/seg3.out" && ok ||
    bad "segment with gate/threshold/prompts_per ($st) differs from apt segment or from the defaults: $(head -c 300 "$TMP/seg3.out")"
req seg2.json '{"image":"@IMG@","points":[[70,60,1],[10,10,0]],"iterations":2,"min_area":50}'
st=$(code "$TMP/seg2.out" $U/v1/segment -d @"$TMP/seg2.json")
[ "$st" = 200 ] && grep -q '"points":\[\[70,60,1,0\],\[10,10,0,0\]\]' "$TMP/seg2.out" && grep -q '"mask_pixels":[1-9]' "$TMP/seg2.out" &&
    ok || bad "segment with points: $st $(head -c 300 "$TMP/seg2.out")"
# a points request's threshold (default 0): -100 keeps more pixels
req seg4.json '{"image":"@IMG@","points":[[70,60,1],[10,10,0]],"iterations":2,"min_area":50,"threshold":-100}'
st=$(code "$TMP/seg4.out" $U/v1/segment -d @"$TMP/seg4.json")
n2=$(sed -n 's/.*"mask_pixels":\([0-9]*\).*/\1/p' "$TMP/seg2.out"); n4=$(sed -n 's/.*"mask_pixels":\([0-9]*\).*/\1/p' "$TMP/seg4.out")
[ "$st" = 200 ] && [ -n "$n2" ] && [ -n "$n4" ] && [ "$n4" -gt "$n2" ] && ok || bad "segment with points at threshold -100: $st, $n4 mask pixels (threshold 0: $n2)"
req s1 '{"image":"@IMG@","landcover":"@LC@","points":[[1,1,1]]}'
check_bad_at 400 /v1/segment s1 points
req s2 '{"image":"@IMG@"}'
check_bad_at 400 /v1/segment s2 landcover
req s3 '{"image":"@IMG@","landcover":"@LCS@"}'
check_bad_at 400 /v1/segment s3 landcover
req s4 '{"image":"@IMG@","landcover":"@IMG@"}'
check_bad_at 400 /v1/segment s4 landcover
req s5 '{"image":"@IMG@","landcover":"@LC@","class":30}'
check_bad_at 400 /v1/segment s5 landcover
req s6 '{"image":"@IMG@","landcover":"@LC@","mode":"nearest"}'
check_bad_at 400 /v1/segment s6 mode
req s7 '{"image":"@IMG@","points":[[500,10,1]]}'
check_bad_at 400 /v1/segment s7 points
req s8 '{"image":"@IMG@","points":[[5,10,0]]}'
check_bad_at 400 /v1/segment s8 points
req s9 '{"image":"@IMG@","points":[[5,10,1]],"class":40}'
check_bad_at 400 /v1/segment s9 class
req s10 '{"image":"@IMG@","landcover":"@LC@","iterations":0}'
check_bad_at 400 /v1/segment s10 iterations
req s11 '[1, 2]'
check_bad_at 400 /v1/segment s11
req s12 '{"image":"@IMG@","landcover":"@LC@","gate":-2}'
check_bad_at 400 /v1/segment s12 gate
req s13 '{"image":"@IMG@","landcover":"@LC@","threshold":"low"}'
check_bad_at 400 /v1/segment s13 threshold
req s14 '{"image":"@IMG@","landcover":"@LC@","prompts_per":"pixel"}'
check_bad_at 400 /v1/segment s14 prompts_per
req s15 '{"image":"@IMG@","points":[[5,10,1]],"gate":8}'
check_bad_at 400 /v1/segment s15 gate
# an unknown field's name is echoed on one line: control bytes show as '?'
printf '%s' '{"a\nb\u0001c": 1}' >"$TMP/nl.json"
for path in /v1/detect /v1/segment; do
    check_bad_at 400 $path nl.json
    grep -q "unknown field 'a?b?c'" "$TMP/e.json" && ok || bad "$path newline field: $(head -c 200 "$TMP/e.json")"
done
# ... and so is an unknown class name
req bnl '{"image":"@IMG@","classes":["pl\nane"]}'
check_bad_at 400 /v1/detect bnl classes
grep -q "class 'pl?ane' has no" "$TMP/e.json" && ok || bad "newline class name: $(head -c 200 "$TMP/e.json")"
$C $U/metrics >"$TMP/metrics_c.txt"
grep -q '^tessera_detect_boxes_total 10$' "$TMP/metrics_c.txt" && grep -q '^tessera_segment_masks_total 4$' "$TMP/metrics_c.txt" &&
    grep -q '^tessera_requests_total{endpoint="/v1/detect",status="400"} [1-9]' "$TMP/metrics_c.txt" && ok ||
    bad "detect/segment metrics: $(grep -E 'detect|segment' "$TMP/metrics_c.txt" | head -5)"
[ "$($C $U/health)" = '{"status":"ok"}' ] && ok || bad "health after the bad detect/segment requests"
stop_server
# naming only a family's model serves that endpoint alone: no language model
start_server D --ovadetr models/ovadetr.safetensors --quiet
grep -q 'llm: off' "$TMP/D.err" && grep -q 'search: off' "$TMP/D.err" && grep -q 'segment: off' "$TMP/D.err" &&
    grep -q 'detect: models/ovadetr.safetensors' "$TMP/D.err" && ok || bad "only --ovadetr named: $(cat "$TMP/D.err")"
st=$(code "$TMP/e.json" $U/v1/completions -d '{"prompt":"x"}')
[ "$st" = 503 ] && is_error_shape "$TMP/e.json" && ok || bad "completions with only --ovadetr named: $st"
st=$(code "$TMP/e.json" $U/v1/segment -d @"$TMP/seg2.json")
[ "$st" = 503 ] && is_error_shape "$TMP/e.json" && ok || bad "segment with only --ovadetr named: $st"
st=$(code "$TMP/e.json" $U/v1/detect -d @"$TMP/det.json")
[ "$st" = 200 ] && ok || bad "detect with only --ovadetr named: $st"
stop_server
# --space without a language model is an error, not a silent default
"$BIN" serve --port 0 --lm none --space models/pycode-space >/dev/null 2>"$TMP/err.txt"
[ $? -eq 1 ] && grep -q -- '--space needs a language model' "$TMP/err.txt" && ok || bad "--space with --lm none: $(cat "$TMP/err.txt")"

# ------------------------------------------------------------ server E: the image samplers (bigr, elm)
# from another working directory with no model flag: the shipped BiGR and
# ELM generators and their tokenizers are found there
mkdir -p "$TMP/elsewhere_e"
cd "$TMP/elsewhere_e"
BIN=$BINABS
start_server E --lm none --quiet
BIN=$BIN_SAVE
cd "$REPO"
grep -q 'bigr: .*models/bigr_fmnist.safetensors, .*models/fmnist_bae.safetensors' "$TMP/E.err" &&
    grep -q 'elm: .*models/elm_best.safetensors' "$TMP/E.err" && ok || bad "sampler models: $(grep -E 'bigr|elm' "$TMP/E.err")"
# sample FAMILY BODY: POSTs BODY (through stdin) to /v1/FAMILY/sample, the reply in $TMP/s.json; prints the status
# (removed first: curl leaves an old file in place when a request times out)
sample() {
    rm -f "$TMP/s.json"
    printf '%s' "$2" | $C -o "$TMP/s.json" -w '%{http_code}' $U/v1/$1/sample -d @-
}
# grid_cmp FAMILY BODY CLI-FLAGS...: the reply's base64 grid, decoded, against the PNG `tessera FAMILY sample
# CLI-FLAGS --out` writes: cmp's verdict (0 the same bytes); the CLI's file stays in $TMP/cli.png
grid_cmp() {
    local fam=$1 body=$2 st
    shift 2
    rm -f "$TMP/srv.png" "$TMP/cli.png"
    st=$(sample "$fam" "$body")
    [ "$st" = 200 ] || return 3
    python3 -c 'import base64, json, sys; open(sys.argv[2], "wb").write(base64.b64decode(json.load(open(sys.argv[1]))["grid"]))' \
        "$TMP/s.json" "$TMP/srv.png" || return 3
    "$BIN" "$fam" sample "$@" --out "$TMP/cli.png" >/dev/null 2>&1 || return 3
    cmp -s "$TMP/srv.png" "$TMP/cli.png"
}
grid_same() { grid_cmp "$@" && ok || bad "$1 grid of '$2' is not the PNG of '$1 sample ${*:3}': $(head -c 200 "$TMP/s.json")"; }
grid_same bigr '{"class": "sneaker", "n": 4, "seed": 3, "grid": true}' --class 7 --n 4 --seed 3
cp "$TMP/cli.png" "$TMP/bigr_grid.png"
grid_same bigr '{"class": "T-SHIRT/TOP", "grid": true}' --class 0 --n 1 --seed 1
grid_same bigr '{"class": 2, "n": 3, "seed": 11, "grid": true, "iters": 6, "steps": 10, "cfg": 1.5, "gumbel": 0.2, "temp": 0.9, "order": "random", "deterministic": true}' \
    --class 2 --n 3 --seed 11 --iters 6 --steps 10 --cfg 1.5 --gumbel 0.2 --temp 0.9 --order random --deterministic
grid_same bigr '{"class": 5, "n": 2, "seed": 4, "grid": true, "order": "raster", "cfg": 1}' --class 5 --n 2 --seed 4 --order raster --cfg 1
grid_same elm '{"class": "Ankle Boot", "n": 5, "seed": 2, "grid": true}' --class 9 --n 5 --seed 2
cp "$TMP/cli.png" "$TMP/elm_grid.png"
grid_same elm '{"class": 9, "n": 5, "seed": 2, "grid": true, "no_kv_cache": true}' --class 9 --n 5 --seed 2 --no-kv-cache
grid_same elm '{"class": "unconditional", "n": 3, "seed": 9, "grid": true, "temperature": 0.8, "top_k": 10, "top_p": 0.9, "cfg": 2, "cfg_schedule": "constant", "batch": 2}' \
    --class 10 --n 3 --seed 9 --temperature 0.8 --top-k 10 --top-p 0.9 --cfg 2 --cfg-schedule constant --batch 2
# the comparison can fail: another seed (or class) gives other bytes
grid_cmp bigr '{"class": 7, "n": 4, "seed": 4, "grid": true}' --class 7 --n 4 --seed 3
[ $? -eq 1 ] && ok || bad "bigr: seed 4's grid equals seed 3's"
grid_cmp elm '{"class": 8, "n": 5, "seed": 2, "grid": true}' --class 9 --n 5 --seed 2
[ $? -eq 1 ] && ok || bad "elm: class 8's grid equals class 9's"
# without "grid": one 28x28 greyscale PNG per sample, the grid's tiles in order
for fam in bigr elm; do
    body='{"class": 7, "n": 4, "seed": 3}' pad=128
    [ $fam = elm ] && body='{"class": 9, "n": 5, "seed": 2}' pad=255
    st=$(sample $fam "$body")
    python3 - "$TMP/s.json" "$TMP/${fam}_grid.png" $pad $fam <<'PY' && [ "$st" = 200 ] && ok || bad "$fam images ($st): $(head -c 200 "$TMP/s.json")"
import base64, json, struct, sys, zlib
def grey(png):  # an 8-bit greyscale, non-interlaced PNG -> (w, h, rows)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    o, idat = 8, b""
    while o < len(png):
        n, t = struct.unpack(">I4s", png[o:o + 8])
        if t == b"IHDR": w, h, depth, ct, _, _, il = struct.unpack(">IIBBBBB", png[o + 8:o + 21])
        if t == b"IDAT": idat += png[o + 8:o + 8 + n]
        o += 12 + n
    assert depth == 8 and ct == 0 and il == 0, (depth, ct, il)
    raw, rows, prev = zlib.decompress(idat), [], bytearray(w)
    for y in range(h):
        f, line = raw[y * (w + 1)], bytearray(raw[y * (w + 1) + 1:(y + 1) * (w + 1)])
        for x in range(w):
            a, b, c = line[x - 1] if x else 0, prev[x], prev[x - 1] if x else 0
            p = a + b - c
            pr = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            line[x] = (line[x] + [0, a, b, (a + b) // 2, pr][f]) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, rows
r = json.load(open(sys.argv[1]))
gw, gh, g = grey(open(sys.argv[2], "rb").read())
pad, fam = int(sys.argv[3]), sys.argv[4]
want = {"bigr": (7, "Sneaker", 4, 3, "bigr_fmnist"), "elm": (9, "Ankle boot", 5, 2, "elm_best")}[fam]
assert (r["class"], r["class_name"], r["n"], r["seed"], r["model"]) == want and r["object"] == "image.sample", r
assert "grid" not in r and len(r["images"]) == r["n"] and r["ms"] > 0, r
assert (gw, gh) == (30 * r["n"] + 2, 32), (gw, gh)
for i, b in enumerate(r["images"]):
    w, h, t = grey(base64.b64decode(b))
    assert (w, h) == (28, 28)
    for y in range(28):
        assert t[y] == g[2 + y][2 + 30 * i:30 + 30 * i], (i, y)
assert all(v == pad for v in g[0] + g[1] + g[30] + g[31]), "padding"
PY
done
# bad input: 400 in OpenAI's error shape naming the field; the server keeps serving
bad_sample() { # family body param
    local st
    st=$(sample "$1" "$2")
    [ "$st" = 400 ] && is_error_shape "$TMP/s.json" && grep -q "\"param\":\"$3\"" "$TMP/s.json" && ok ||
        bad "$1 '$2': status $st (want 400 naming $3): $(head -c 200 "$TMP/s.json")"
}
for fam in bigr elm; do
    bad_sample $fam '{"n": 2}' class
    bad_sample $fam '{"class": "sneakers"}' class
    bad_sample $fam '{"class": -1}' class
    bad_sample $fam '{"class": 1.5}' class
    bad_sample $fam '{"class": true}' class
    bad_sample $fam '{"class": ["bag"]}' class
    bad_sample $fam '{"class": 1, "n": 0}' n
    bad_sample $fam '{"class": 1, "n": 65}' n
    bad_sample $fam '{"class": 1, "n": "4"}' n
    bad_sample $fam '{"class": 1, "seed": -1}' seed
    bad_sample $fam '{"class": 1, "seed": 1e300}' seed
    bad_sample $fam '{"class": 1, "grid": 1}' grid
    bad_sample $fam '{"class": 1, "colour": "red"}' colour
    bad_sample $fam '{"class": 1, "steps": 0}' steps
    bad_sample $fam '{"class": 1, "cfg": 101}' cfg
    st=$(sample $fam 'not json')
    [ "$st" = 400 ] && is_error_shape "$TMP/s.json" && ok || bad "$fam malformed body: $st"
done
bad_sample bigr '{"class": 10}' class
bad_sample bigr '{"class": "unconditional"}' class
bad_sample bigr '{"class": 1, "iters": 50}' iters
bad_sample bigr '{"class": 1, "steps": 100001}' steps
bad_sample bigr '{"class": 1, "temp": 0}' temp
bad_sample bigr '{"class": 1, "gumbel": -0.5}' gumbel
bad_sample bigr '{"class": 1, "order": "spiral"}' order
bad_sample bigr '{"class": 1, "deterministic": "yes"}' deterministic
bad_sample bigr '{"class": 1, "top_k": 5}' top_k
bad_sample elm '{"class": 11}' class
bad_sample elm '{"class": 1, "temperature": 100.5}' temperature
bad_sample elm '{"class": 1, "top_k": -1}' top_k
bad_sample elm '{"class": 1, "top_p": 0}' top_p
bad_sample elm '{"class": 1, "cfg_schedule": "cosine"}' cfg_schedule
bad_sample elm '{"class": 1, "steps": 1001}' steps
bad_sample elm '{"class": 1, "choice_temp": "hot"}' choice_temp
bad_sample elm '{"class": 1, "no_kv_cache": 0}' no_kv_cache
bad_sample elm '{"class": 1, "batch": 4097}' batch
bad_sample elm '{"class": 1, "iters": 5}' iters
sample bigr '{"class": 1, "hue\nx": 1}' >/dev/null
grep -q "unknown field 'hue?x'" "$TMP/s.json" && ok || bad "bigr newline field: $(head -c 200 "$TMP/s.json")"
$C $U/metrics >"$TMP/metrics_e.txt"
grep -q '^tessera_bigr_images_total 18$' "$TMP/metrics_e.txt" && grep -q '^tessera_elm_images_total 23$' "$TMP/metrics_e.txt" &&
    grep -q '^tessera_requests_total{endpoint="/v1/elm/sample",status="400"} [1-9]' "$TMP/metrics_e.txt" && ok ||
    bad "sampler metrics: $(grep -E 'bigr|elm' "$TMP/metrics_e.txt" | head -6)"
[ "$(sample elm '{"class": 0}')" = 200 ] && ok || bad "elm after the bad requests"
stop_server
# the server's --timeout: a request past it gets 503 (the sampler stops at its next step) and the
# server keeps serving; with the BiGR model alone, the other endpoints are off (503)
start_server F --bigr models/bigr_fmnist.safetensors --timeout 1 --quiet
grep -q 'elm: off' "$TMP/F.err" && grep -q 'bigr: models/bigr_fmnist.safetensors, .*models/fmnist_bae.safetensors' "$TMP/F.err" &&
    ok || bad "only --bigr named: $(cat "$TMP/F.err")"
t0=$(date +%s)
st=$(sample bigr '{"class": 1, "n": 64, "iters": 49, "steps": 256}')
[ "$st" = 503 ] && is_error_shape "$TMP/s.json" && [ $(($(date +%s) - t0)) -le 10 ] && ok ||
    bad "bigr past --timeout: $st after $(($(date +%s) - t0)) s: $(head -c 200 "$TMP/s.json")"
[ "$(sample bigr '{"class": 1, "iters": 2, "steps": 4}')" = 200 ] && ok || bad "bigr after a timed-out request: $(head -c 200 "$TMP/s.json")"
[ "$(sample elm '{"class": 1}')" = 503 ] && is_error_shape "$TMP/s.json" && ok || bad "elm with only --bigr named"
stop_server
"$BIN" serve --port 0 --elm /nonexistent.safetensors >/dev/null 2>"$TMP/err.txt"
[ $? -eq 1 ] && grep -q nonexistent "$TMP/err.txt" && ok || bad "a missing --elm: $(cat "$TMP/err.txt")"

# usage errors
"$BIN" serve --port 70000 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--port 70000 is not a usage error"
"$BIN" serve --bogus >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "an unknown flag is not a usage error"
"$BIN" serve --lm /nonexistent --port 0 >/dev/null 2>"$TMP/err.txt"
[ $? -eq 1 ] && grep -q nonexistent "$TMP/err.txt" && ok || bad "a missing model: $(cat "$TMP/err.txt")"

echo "e2e_serve: $pass passed, $fails failed"
[ "$fails" -eq 0 ]
