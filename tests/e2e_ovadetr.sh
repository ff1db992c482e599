#!/usr/bin/env bash
# End-to-end test of `tessera ovadetr`: usage errors (exit 2), bad inputs
# (corrupt PNG, unknown or repeated class name, wrong embeddings file, an
# all-zero or NaN embeddings row: exit 1 with one error line, no output left
# behind), a two-step training run of a tiny
# model on the real images with exact resume, and detect on a real crop and
# on a large image (tiled, not refused): COCO JSON and a PNG.
# Usage: tests/e2e_ovadetr.sh path/to/tessera   (cwd = repository root)
set -u
. "$(dirname "$0")/serve_wait.sh"
BIN=${1:?usage: e2e_ovadetr.sh path/to/tessera}
D=../shared/data
TMP=$(mktemp -d /tmp/tessera_e2e_ovd.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
export OMP_NUM_THREADS=1
# mknpy FILE ROWS FILL: a float32 (ROWS, 512) .npy; FILL ramp (every row non-zero), zero-row-I (ramp but row I
# all zeros), nan (ramp with one NaN) or denormal (every value the smallest float32 denormal)
mknpy() {
    /usr/bin/env python3 - "$@" <<'PY' 2>/dev/null
import struct, sys
path, rows, fill = sys.argv[1], int(sys.argv[2]), sys.argv[3]
vals = []
for r in range(rows):
    row = [((r * 31 + k * 7) % 97 - 48) / 48.0 + 0.01 for k in range(512)]
    if fill == "zero-row-%d" % r:
        row = [0.0] * 512
    if fill == "nan" and r == 0:
        row[5] = float("nan")
    if fill == "denormal":
        row = [1e-45] * 512
    vals += row
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 512), }" % rows
hdr += " " * (118 - len(hdr)) + "\n"
open(path, "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + struct.pack("<%df" % len(vals), *vals))
PY
    [ -s "$1" ]
}

"$BIN" ovadetr --help >/dev/null 2>&1 && ok || bad "ovadetr --help fails"
"$BIN" ovadetr detect --bogus >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "an unknown flag is not a usage error"
"$BIN" ovadetr detect --image x.png >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "detect without --classes is not a usage error"
"$BIN" ovadetr eval --method nope >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "an unknown --method is not a usage error"
"$BIN" ovadetr train --out "$TMP/m.safetensors" --crop 100 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--crop 100 is not a usage error"
"$BIN" ovadetr train --out "$TMP/m.safetensors" --name-pool 40 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--name-pool 40 is not a usage error"
"$BIN" ovadetr train --out "$TMP/m.safetensors" --split loose >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "train --split loose is not a usage error"
"$BIN" ovadetr eval --split loose >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "eval --split loose is not a usage error"
"$BIN" ovadetr eval --on val >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "eval --on val without --split strict is not a usage error"
"$BIN" ovadetr eval --split strict --on train >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "eval --on train is not a usage error"
"$BIN" ovadetr eval --calib 99 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "eval --calib 99 is not a usage error"
"$BIN" ovadetr train --out "$TMP/m.safetensors" --text-geo -1 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "train --text-geo -1 is not a usage error"
"$BIN" ovadetr train --out "$TMP/m.safetensors" --lv-paste 2 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "train --lv-paste 2 is not a usage error"

[ -d "$D/aerial" ] || { echo "e2e_ovadetr: $D/aerial missing, skipping the rest ($pass passed)"; exit $fails; }

M="$TMP/tiny.safetensors"
CFG=ch0=8,ch1=8,ch2=16,ch3=16,ch4=16,d=16,heads=2,ffn=32,queries=20,dec=1
"$BIN" ovadetr train --out "$M" --model-config $CFG --steps 2 --crop 128 --eval-every 0 --quiet --threads 1 \
    >/dev/null 2>"$TMP/train.err"
[ $? -eq 0 ] && [ -s "$M" ] && ok || { bad "tiny training failed"; cat "$TMP/train.err" >&2; }
# exact resume: 1 step + resume to 2 gives the same file as 2 straight
M2="$TMP/tiny2.safetensors"
"$BIN" ovadetr train --out "$M2" --model-config $CFG --steps 2 --crop 128 --eval-every 0 --quiet --threads 1 \
    --stop-after 1 >/dev/null 2>&1
"$BIN" ovadetr train --out "$M2" --model-config $CFG --steps 2 --crop 128 --eval-every 0 --quiet --threads 1 \
    --resume >/dev/null 2>&1
cmp -s "$M" "$M2" && ok || bad "stop after 1 + resume differs from 2 straight steps"
# more seen-class names: pools of near names, none nearer to bus or minibus
"$BIN" ovadetr train --out "$TMP/p.safetensors" --model-config $CFG --steps 1 --crop 128 --eval-every 0 --quiet \
    --threads 1 --name-pool 8 >/dev/null 2>"$TMP/pool.err"
[ $? -eq 0 ] && grep -q "^name pool 'large vehicle': 'truck', " "$TMP/pool.err" && \
    ! grep "^name pool" "$TMP/pool.err" | grep -Eq "'(bus|minibus|minivan|school bus)'" && ok || \
    bad "--name-pool does not train with pools free of the unseen names"
# split strict: trains, and its model is refused by an eval of the other split (and vice versa)
"$BIN" ovadetr train --out "$TMP/s.safetensors" --model-config $CFG --steps 1 --crop 128 --eval-every 0 --quiet \
    --threads 1 --split strict >/dev/null 2>&1
[ $? -eq 0 ] && [ -s "$TMP/s.safetensors" ] && ok || bad "train --split strict failed"
"$BIN" ovadetr eval --model "$TMP/s.safetensors" --split names --json >"$TMP/s.json" 2>"$TMP/err.txt"
[ $? -eq 1 ] && grep -q "trained on split strict" "$TMP/err.txt" && [ "$(grep -c 'error' "$TMP/err.txt")" -eq 1 ] && \
    [ ! -s "$TMP/s.json" ] && ok || bad "eval --split names accepts a model trained on split strict"
"$BIN" ovadetr eval --model "$M" --split strict --json >"$TMP/s.json" 2>"$TMP/err.txt"
[ $? -eq 1 ] && grep -q "trained on split names" "$TMP/err.txt" && ok || \
    bad "eval --split strict accepts a model trained on split names"
# strict's validation images (P1888, P0003, P0005: 189 large vehicles scored as bus), with calibration
"$BIN" ovadetr eval --model "$TMP/s.safetensors" --split strict --on val --calib 2 --threads 1 --json \
    >"$TMP/v.json" 2>"$TMP/err.txt"
[ $? -eq 0 ] && grep -q '"images":3,"split":"strict","on":"val","calib":2}' "$TMP/v.json" && \
    grep -q '"gt_unseen":189,' "$TMP/v.json" && grep -q '"recall_minibus":null' "$TMP/v.json" && ok || \
    bad "eval --on val --calib 2 does not score the three validation images"
# the text-geometry loss trains and is logged
"$BIN" ovadetr train --out "$TMP/g.safetensors" --model-config $CFG --steps 1 --crop 128 --eval-every 0 --quiet \
    --threads 1 --split strict --text-geo 10 --log-every 1 --log "$TMP/g.jsonl" >/dev/null 2>&1
[ $? -eq 0 ] && grep -q '"text_geo":' "$TMP/g.jsonl" && ok || bad "train --text-geo 10 does not log its loss"
# rows of large-vehicle chips: exact resume, and the setting is part of the run's config
L="$TMP/l.safetensors"
"$BIN" ovadetr train --out "$L" --model-config $CFG --steps 3 --crop 128 --eval-every 0 --quiet --threads 1 \
    --split strict --lv-paste 1 >/dev/null 2>&1
"$BIN" ovadetr train --out "$TMP/l2.safetensors" --model-config $CFG --steps 3 --crop 128 --eval-every 0 --quiet \
    --threads 1 --split strict --lv-paste 1 --stop-after 1 >/dev/null 2>&1
"$BIN" ovadetr train --out "$TMP/l2.safetensors" --model-config $CFG --steps 3 --crop 128 --eval-every 0 --quiet \
    --threads 1 --split strict --lv-paste 1 --resume >/dev/null 2>&1
[ -s "$L" ] && cmp -s "$L" "$TMP/l2.safetensors" && ok || bad "--lv-paste 1: stop after 1 + resume differs from 3 steps"
"$BIN" ovadetr train --out "$TMP/s.safetensors" --model-config $CFG --steps 1 --crop 128 --eval-every 0 --quiet \
    --threads 1 --split strict --lv-paste 1 --resume >/dev/null 2>"$TMP/err.txt"
[ $? -eq 1 ] && grep -q "data.lv_paste=(missing)" "$TMP/err.txt" && ok || bad "a run without --lv-paste resumes with it"
# the one-image fitting check: a bad name is a usage error, a missing image one line
"$BIN" ovadetr train --out "$TMP/o.safetensors" --only ../MOS74 --steps 1 >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "--only with a path is not a usage error"
"$BIN" ovadetr train --out "$TMP/o.safetensors" --only MOS9999 --steps 1 --quiet >/dev/null 2>"$TMP/err.txt"
[ $? -eq 1 ] && [ "$(grep -c 'error' "$TMP/err.txt")" -eq 1 ] && [ ! -e "$TMP/o.safetensors" ] && ok || \
    bad "--only with a missing image is not a one-line failure"
"$BIN" ovadetr train --out "$TMP/o.safetensors" --only MOS74 --model-config $CFG --steps 2 --crop 128 --eval-every 2 \
    --quiet --threads 1 --json >"$TMP/o.json" 2>&1
[ $? -eq 0 ] && grep -q '"val_ap50_car"' "$TMP/o.json" && ok || bad "--only MOS74 does not train and validate"

IMG=$D/aerial/mmrotate-demos/P0004__1__0___0.png
"$BIN" ovadetr detect --model "$M" --image "$IMG" --classes "plane,car" --out "$TMP/b.json" --draw "$TMP/b.png" \
    --min-score 0 --max-det 5 >/dev/null 2>&1
[ $? -eq 0 ] && grep -q '"categories"' "$TMP/b.json" && grep -q '"score"' "$TMP/b.json" && [ -s "$TMP/b.png" ] \
    && ok || bad "detect does not write COCO JSON and a PNG"
# one path for --out and --draw (spelt two ways): refused before any work, nothing written (the PNG replaced the JSON)
"$BIN" ovadetr detect --model "$M" --image "$IMG" --classes "plane" --out "$TMP/same.out" --draw "$TMP/./same.out" \
    >/dev/null 2>"$TMP/err.txt"
[ $? -eq 2 ] && grep -q "name the same file" "$TMP/err.txt" && [ ! -e "$TMP/same.out" ] && ok ||
    bad "--out = --draw is not refused: $(cat "$TMP/err.txt")"
# --draw failing after --out was written (a 64 KiB file-size limit: the JSON
# fits, the PNG does not): one error, and no new output left behind
( trap '' XFSZ; ulimit -f 64; "$BIN" ovadetr detect --model "$M" --image "$IMG" --classes "plane,car" \
    --out "$TMP/f.json" --draw "$TMP/f.png" --min-score 0 --max-det 5 >/dev/null 2>"$TMP/err.txt" )
[ $? -eq 1 ] && [ "$(grep -c 'error' "$TMP/err.txt")" -eq 1 ] && [ ! -e "$TMP/f.json" ] && [ ! -e "$TMP/f.png" ] \
    && [ -z "$(ls "$TMP" | grep '^f\.')" ] && ok || bad "a failed --draw leaves the --out JSON (or a temporary file) behind"

# unknown class with no embedding: one line, exit 1, nothing written
"$BIN" ovadetr detect --model "$M" --image "$IMG" --classes "plane,flibbertigibbet" --out "$TMP/u.json" \
    >/dev/null 2>"$TMP/err.txt"
[ $? -eq 1 ] && grep -q "flibbertigibbet" "$TMP/err.txt" && [ "$(grep -c 'error' "$TMP/err.txt")" -eq 1 ] && \
    [ ! -e "$TMP/u.json" ] && ok || bad "an unknown class is not a one-line failure"
# a repeated class name (case aside) is one line, nothing written
for cl in "car,car" "plane,car,Car"; do
    "$BIN" ovadetr detect --model "$M" --image "$IMG" --classes "$cl" --out "$TMP/d.json" >/dev/null 2>"$TMP/err.txt"
    [ $? -eq 1 ] && grep -q "repeats name" "$TMP/err.txt" && [ "$(wc -l <"$TMP/err.txt")" -eq 1 ] && \
        [ ! -e "$TMP/d.json" ] && ok || bad "--classes $cl (a repeated name) is not a one-line failure: $(cat "$TMP/err.txt")"
done
# more names than the closed-set twin maps (its name -> column table holds 256): one line, not a crash
# (300 distinct names, c1..c300, each with its own non-zero row)
many=$(printf 'c%d,' $(seq 300)); many=${many%,}
if mknpy "$TMP/many.npy" 300 ramp; then
    "$BIN" ovadetr detect --model models/ovadetr_closed.safetensors --image "$IMG" --classes "$many" \
        --embeddings "$TMP/many.npy" --out "$TMP/m.json" >/dev/null 2>"$TMP/err.txt"
    [ $? -eq 1 ] && grep -q "at most 256 class names" "$TMP/err.txt" && [ "$(grep -c 'error' "$TMP/err.txt")" -eq 1 ] && \
        [ ! -e "$TMP/m.json" ] && ok || bad "300 names on the closed-set twin are not a one-line failure"
fi
# a checkpoint of another family: one line naming the file once
"$BIN" ovadetr detect --model models/apt_small.safetensors --image "$IMG" --classes car --out "$TMP/a.json" \
    >/dev/null 2>"$TMP/err.txt"
[ $? -eq 1 ] && grep -q "apt_small.safetensors: not an ovadetr model" "$TMP/err.txt" && \
    [ "$(grep -o 'apt_small.safetensors' "$TMP/err.txt" | wc -l)" -eq 1 ] && ok || \
    bad "another family's checkpoint: $(cat "$TMP/err.txt")"
# corrupt PNG
head -c 2000 "$IMG" > "$TMP/cut.png"
"$BIN" ovadetr detect --model "$M" --image "$TMP/cut.png" --classes plane --out "$TMP/c.json" >/dev/null 2>"$TMP/err.txt"
[ $? -eq 1 ] && [ "$(grep -c 'error' "$TMP/err.txt")" -eq 1 ] && [ ! -e "$TMP/c.json" ] && ok || \
    bad "a corrupt PNG is not a one-line failure"
# embeddings files: a missing one (hinted as --embeddings), the wrong number of rows, an all-zero row (no
# direction: refused, naming the row and the class), a non-finite row, and a real row naming a new class
"$BIN" ovadetr detect --model "$M" --image "$IMG" --classes "a,b" --embeddings "$TMP/nofile.npy" --out "$TMP/e.json" \
    >/dev/null 2>"$TMP/err.txt"
[ $? -eq 1 ] && grep -q "nofile.npy" "$TMP/err.txt" && grep -q "hint: pass --embeddings" "$TMP/err.txt" && \
    [ ! -e "$TMP/e.json" ] && ok || bad "a missing --embeddings file: $(cat "$TMP/err.txt")"
if mknpy "$TMP/e.npy" 1 ramp && mknpy "$TMP/z.npy" 2 zero-row-1 && mknpy "$TMP/n.npy" 1 nan; then
    "$BIN" ovadetr detect --model "$M" --image "$IMG" --classes "a,b" --embeddings "$TMP/e.npy" --out "$TMP/e.json" \
        >/dev/null 2>"$TMP/err.txt"
    [ $? -eq 1 ] && grep -q "one per --classes name" "$TMP/err.txt" && [ "$(wc -l <"$TMP/err.txt")" -eq 1 ] && \
        [ ! -e "$TMP/e.json" ] && ok || bad "a wrong embeddings file is accepted: $(cat "$TMP/err.txt")"
    "$BIN" ovadetr detect --model "$M" --image "$IMG" --classes "yyy,zzz" --embeddings "$TMP/z.npy" --out "$TMP/z.json" \
        >/dev/null 2>"$TMP/err.txt"
    [ $? -eq 1 ] && grep -q "row 1 (class 'zzz') is all zeros" "$TMP/err.txt" && [ "$(wc -l <"$TMP/err.txt")" -eq 1 ] && \
        [ ! -e "$TMP/z.json" ] && ok || bad "an all-zero embeddings row is accepted: $(cat "$TMP/err.txt")"
    "$BIN" ovadetr detect --model "$M" --image "$IMG" --classes "zzz" --embeddings "$TMP/n.npy" --out "$TMP/n.json" \
        >/dev/null 2>"$TMP/err.txt"
    [ $? -eq 1 ] && grep -q "error: .*n.npy: .npy element 5 is not finite" "$TMP/err.txt" && \
        [ "$(grep -c 'error' "$TMP/err.txt")" -eq 1 ] && [ ! -e "$TMP/n.json" ] && ok || \
        bad "a NaN embeddings row is accepted: $(cat "$TMP/err.txt")"
    "$BIN" ovadetr detect --model "$M" --image "$IMG" --classes "zzz" --embeddings "$TMP/e.npy" --out "$TMP/e.json" \
        --min-score 0 --max-det 3 >/dev/null 2>&1
    [ $? -eq 0 ] && grep -q '"name":"zzz"' "$TMP/e.json" && ok || bad "--embeddings does not name a new class"
    # a row of denormals has a direction: 1/|row| overflows a float, so the normaliser divides in double
    # (it scored every box NaN, written as "score":null)
    if mknpy "$TMP/d.npy" 1 denormal; then
        "$BIN" ovadetr detect --model "$M" --image "$IMG" --classes "zzz" --embeddings "$TMP/d.npy" --out "$TMP/d.json" \
            --min-score 0 --max-det 3 >/dev/null 2>"$TMP/err.txt"
        [ $? -eq 0 ] && grep -q '"score":[0-9]' "$TMP/d.json" && ! grep -q '"score":null' "$TMP/d.json" && ok ||
            bad "a denormal embeddings row scores NaN: $(head -c 300 "$TMP/d.json") $(cat "$TMP/err.txt")"
    else
        bad "python3 could not write the denormal .npy"
    fi
else
    bad "python3 could not write the test's .npy files"
fi
# a large image is tiled, not refused (2600 x 1900 grey PNG from the stdlib)
/usr/bin/env python3 - "$TMP/big.png" <<'PY' 2>/dev/null
import struct, sys, zlib
w, h = 2600, 1900
raw = b"".join(b"\0" + bytes((x * 7 + y * 3) % 251 for x in range(w)) for y in range(h))
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + \
      chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
if [ -s "$TMP/big.png" ]; then
    "$BIN" ovadetr detect --model "$M" --image "$TMP/big.png" --classes car --out "$TMP/big.json" --min-score 0 \
        --tile 640 >/dev/null 2>"$TMP/err.txt"
    [ $? -eq 0 ] && grep -q '"width":2600' "$TMP/big.json" && ok || bad "a large image is not tiled"
fi

# POST /v1/detect refuses a repeated class name (case aside) as `detect` does (it answered with one category twice),
# and stops at the server's --timeout with a 503 instead of holding the route
if command -v curl >/dev/null; then
    "$BIN" serve --ovadetr models/ovadetr.safetensors --port 0 --threads 1 --timeout 1 --quiet >"$TMP/srv.out" 2>"$TMP/srv.err" &
    SPID=$!
    PORT=$(serve_wait "$TMP/srv.out" "$SPID")
    if [ -n "$PORT" ]; then
        printf '{"image": "%s", "classes": ["car", "Car"]}' "$(base64 -w0 "$IMG")" >"$TMP/dup.json"
        code=$(curl -s -o "$TMP/r1.json" -w '%{http_code}' --max-time 60 --data-binary @"$TMP/dup.json" http://127.0.0.1:$PORT/v1/detect)
        [ "$code" = 400 ] && grep -q '"param":"classes"' "$TMP/r1.json" && grep -q "twice" "$TMP/r1.json" && ok ||
            bad "/v1/detect with a repeated class: HTTP $code $(head -c 300 "$TMP/r1.json")"
        # 2600 x 1900 in 64 px tiles overlapping by 32: about 4,800 tiles, tens of seconds
        if [ -s "$TMP/big.png" ]; then
            printf '{"image": "%s", "classes": ["car"], "tile": 64, "overlap": 32}' "$(base64 -w0 "$TMP/big.png")" >"$TMP/heavy.json"
            t0=$(date +%s)
            code=$(curl -s -o "$TMP/r2.json" -w '%{http_code}' --max-time 120 --data-binary @"$TMP/heavy.json" http://127.0.0.1:$PORT/v1/detect)
            t1=$(date +%s)
            [ "$code" = 503 ] && grep -q "timeout" "$TMP/r2.json" && [ $((t1 - t0)) -le 5 ] && ok ||
                bad "a detection past --timeout 1: HTTP $code after $((t1 - t0)) s: $(head -c 300 "$TMP/r2.json")"
        fi
        kill -TERM "$SPID"
        wait "$SPID" && ok || bad "server exit"
    else
        bad "server did not start: $(tail -3 "$TMP/srv.err")"
        kill "$SPID" 2>/dev/null
    fi
fi
echo "e2e_ovadetr: $pass passed, $fails failed"
exit $fails
