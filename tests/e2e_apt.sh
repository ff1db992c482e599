#!/usr/bin/env bash
# End-to-end tests of `tessera apt` (ctest passes the binary as $1):
#  - prompts on the real WorldCover tile (São Tomé window, GDAL) and on a
#    same-grid PNG pair; segment with the reduced fixture model on a PNG
#    (mask + overlay written) and, with GDAL, on a GeoTIFF whose mask keeps
#    the georeferencing, and on a larger one window by window (each window
#    equal to its crop segmented alone);
#  - eval --truth dota (true masks from filled DOTA vehicle boxes);
#  - bad input gets one line and a non-zero exit: a class absent from the
#    area, maps that do not overlap, a corrupt GeoTIFF, a missing file, a
#    land-cover PNG off the image grid, unknown mode and flags.
set -u
. "$(dirname "$0")/serve_wait.sh"
BIN=${1:?usage: e2e_apt.sh path/to/tessera}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
T=$(mktemp -d /tmp/tsr_e2e_apt.XXXXXX)
trap 'rm -rf "$T"' EXIT
export TESSERA_THREADS=1
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { fails=$((fails + 1)); echo "FAIL: $*" >&2; }
# expect RC PATTERN cmd...: exit code and a one-line stderr matching PATTERN
expect() {
    local want=$1 pat=$2; shift 2
    "$@" > "$T/out" 2> "$T/err"
    local rc=$?
    if [ "$rc" != "$want" ]; then bad "rc $rc (want $want): $*"; cat "$T/err" >&2; return; fi
    if [ -n "$pat" ] && ! grep -q -- "$pat" "$T/err"; then bad "stderr lacks '$pat': $*"; cat "$T/err" >&2; return; fi
    ok
}
FIX=tests/refs/sam_tinyvit.safetensors
WC=../shared/data/worldcover/ESA_WorldCover_10m_2021_v200_N00E006_Map.tif
GDAL=0
"$BIN" apt segment --image "$T/none.tif" --landcover "$T/none.tif" --out "$T/m.tif" --model $FIX 2> "$T/e"
grep -q "without GDAL" "$T/e" || GDAL=1
# GDAL is loaded on first use (dlopen in src/io/raster.c), never linked: its
# hundred dependencies cost every command ~80 ms of start-up when it was
if command -v ldd > /dev/null && ldd "$BIN" > "$T/ldd" 2>&1; then
    ! grep -q "libgdal" "$T/ldd" && ok || bad "the binary links libgdal (it should dlopen it): $(grep libgdal "$T/ldd")"
else
    echo "e2e_apt: ldd absent or not usable here: the not-linked-to-GDAL check skipped"
fi

# a PNG image and a same-grid land-cover PNG (class 40 in a block)
python3 - "$T" <<'PY'
import sys, struct, zlib
d = sys.argv[1]
def png(path, w, h, ch, f):
    raw = b"".join(b"\x00" + bytes(f(x, y) for x in range(w) for _ in [0] for __ in [0]) if ch == 1 else
                   b"\x00" + bytes(v for x in range(w) for v in f(x, y)) for y in range(h))
    def chunk(t, b): return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2 if ch == 3 else 0, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
png(d + "/img.png", 160, 120, 3, lambda x, y: (200, 180, 60) if 40 <= x < 110 and 30 <= y < 90 else ((x * 3) % 90, 90, (y * 5) % 120))
png(d + "/lc.png", 160, 120, 1, lambda x, y: 40 if 32 <= x < 112 and 32 <= y < 96 else 10)
png(d + "/lc_small.png", 80, 60, 1, lambda x, y: 40)
png(d + "/lc_none.png", 160, 120, 1, lambda x, y: 10)
png(d + "/wide.png", 16385, 1, 1, lambda x, y: 40)
PY
expect 0 "" "$BIN" apt segment --image "$T/img.png" --landcover "$T/lc.png" --model $FIX --out "$T/mask.png" --overlay "$T/ov.png" --points 3 --iterations 2 --min-area 50
[ -s "$T/mask.png" ] && [ -s "$T/ov.png" ] && ok || bad "segment wrote no mask/overlay"
# one path for --out and --overlay: refused before any work (the overlay replaced the mask)
expect 2 "name the same file" "$BIN" apt segment --image "$T/img.png" --landcover "$T/lc.png" --model $FIX --out "$T/same.png" --overlay "$T/same.png"
[ ! -e "$T/same.png" ] && ok || bad "segment --out = --overlay wrote a file"
# a PNG wider than libpng's 16384-pixel side: one line saying so (it was "not a readable PNG")
expect 1 "16385 x 1 pixels, more than 16384 on a side" "$BIN" apt segment --image "$T/wide.png" --landcover "$T/wide.png" --model $FIX --out "$T/mw.png"
expect 0 "" "$BIN" apt prompts --landcover "$T/lc.png" --image "$T/img.png" --mode superpixel --out "$T/p.png" --json
grep -q '"positive"' "$T/out" && ok || bad "prompts --json lacks positive"
expect 1 "absent" "$BIN" apt segment --image "$T/img.png" --landcover "$T/lc_none.png" --model $FIX --out "$T/m2.png"
# the message names the map in full (a path of 60-100 characters was cut at 60)
LONG="$T/a_land_cover_map_with_a_rather_long_file_name_0123456789.png"
cp "$T/lc_none.png" "$LONG"
expect 1 "$LONG: class 40: the land-cover class is absent" "$BIN" apt segment --image "$T/img.png" --landcover "$LONG" --model $FIX --out "$T/m2.png"
# a mask is written as GeoTIFF or PNG by its name; any other name is a usage error, not a TIFF under that name
expect 2 "must end in .tif, .tiff or .png" "$BIN" apt segment --image "$T/img.png" --landcover "$T/lc.png" --model $FIX --out "$T/m.jpg"
[ ! -e "$T/m.jpg" ] && ok || bad "segment wrote a mask named .jpg"
[ ! -e "$T/m2.png" ] && ok || bad "a failed segment left a mask"
expect 1 "image grid" "$BIN" apt segment --image "$T/img.png" --landcover "$T/lc_small.png" --model $FIX --out "$T/m3.png"
expect 1 "cannot open" "$BIN" apt segment --image "$T/nope.png" --landcover "$T/lc.png" --model $FIX --out "$T/m4.png"
expect 2 "--mode" "$BIN" apt segment --image "$T/img.png" --landcover "$T/lc.png" --mode nearest --out "$T/m5.png"
# eval --truth dota: the true mask filled from DOTA oriented vehicle boxes
# (a 70 x 60 box on the 160 x 120 image: 21.9% of the pixels; the plane is
# not a vehicle); a malformed label file names its line; unknown kinds are usage errors
printf 'imagesource:GoogleEarth\ngsd:0.3\n40 30 110 30 110 90 40 90 large-vehicle 0\n0 0 5 0 5 5 0 5 plane 0\n' > "$T/img.txt"
expect 0 "" "$BIN" apt eval --truth dota --data "$T" --images img --model $FIX --supervised none --finetuned none --points 3 --iterations 1 --min-area 50 --json
grep -q '"truth": "dota"' "$T/out" && grep -q '"images": 1' "$T/out" && ok || bad "eval --truth dota: $(cat "$T/out")"
# --gate: recorded in the JSON; gate 0 keeps APT inside the coarse class, so its precision is at least ungated's
expect 0 "" "$BIN" apt eval --truth dota --data "$T" --images img --model $FIX --supervised none --finetuned none --points 3 --iterations 1 --min-area 50 --json --gate 0
grep -q '"gate": 0' "$T/out" && ok || bad "eval --gate 0: $(cat "$T/out")"
# the defaults are the settings chosen on the validation scenes; the paper's are spelled out
expect 0 "" "$BIN" apt eval --truth dota --data "$T" --images img --model $FIX --supervised none --finetuned none --points 3 --iterations 1 --min-area 50 --json
grep -q '"threshold": -1, "prompts_per": "tile", "truth": "dota", "feedback": "on", "gate": 8,' "$T/out" && ok || bad "eval defaults: $(cat "$T/out")"
expect 0 "" "$BIN" apt eval --truth dota --data "$T" --images img --model $FIX --supervised none --finetuned none --points 3 --iterations 1 --min-area 50 --json --gate -1 --prompts-per image --threshold 0
grep -q '"threshold": 0, "prompts_per": "image", "truth": "dota", "feedback": "on", "gate": -1,' "$T/out" && ok || bad "eval, the paper's settings: $(cat "$T/out")"
expect 2 "gate" "$BIN" apt eval --gate -2
# --breakdown: the same metrics (the mask is made the same way), and every missed pixel in exactly one group;
# nothing predicted (threshold 100): every pixel missed; everything predicted (-100): only the gate's misses left
B="--truth dota --data $T --images img --model $FIX --supervised none --finetuned none --points 3 --iterations 1 --min-area 50 --json"
for t in -1 100 -100; do
    expect 0 "" "$BIN" apt eval $B --gate 0 --threshold $t
    sed 's/"seconds": [0-9.]*, //' "$T/out" > "$T/plain"
    expect 0 "" "$BIN" apt eval $B --gate 0 --threshold $t --breakdown
    sed 's/"seconds": [0-9.]*, //; s/, "breakdown": {[^}]*}//' "$T/out" | cmp -s - "$T/plain" && ok || bad "eval --breakdown changed the metrics (threshold $t)"
    python3 - "$T/out" $t <<'PY' && ok || bad "eval --breakdown (threshold $t): $(cat "$T/out")"
import json, sys
r = json.load(open(sys.argv[1])); b = r["breakdown"]; t = int(sys.argv[2])
groups = ["fn_beyond_gate", "fn_postprocess", "fn_no_tile", "fn_unprompted", "fn_low_1", "fn_low_3", "fn_low_more"]
assert b["truth"] == 4200 and b["objects"] == 1 and sum(b[g] for g in groups) == b["fn"], b
assert abs((b["truth"] - b["fn"]) / b["truth"] - r["recall"]) < 1e-4 and b["fn_beyond_gate_had"] <= b["fn_beyond_gate"], b
assert b["points_pos"] > 0 and b["points_pos_on_class"] <= b["points_pos"] and b["points_neg_on_class"] <= b["points_neg"], b
if t == 100: assert b["fn"] == b["truth"] and b["fn_beyond_gate_had"] == 0 and b["fn_postprocess"] == 0 and b["objects_found"] == 0, b
if t == -100: assert b["fn"] == b["fn_beyond_gate"] > 0 and b["fn_beyond_gate_had"] == b["fn_beyond_gate"], b
PY
done
cp "$T/img.png" "$T/bad.png"
printf '40 30 110 30 110 90 large-vehicle 0\n' > "$T/bad.txt"
expect 1 "bad.txt:1:" "$BIN" apt eval --truth dota --data "$T" --images bad --model $FIX --supervised none --finetuned none
expect 2 "--truth" "$BIN" apt eval --truth masks
# --threshold: the mask logit threshold (a lower one can only add pixels); out-of-range or non-numeric values are usage errors
px() { sed -n 's/.*"mask_pixels": \([0-9]*\).*/\1/p' "$T/out"; }
for t in -100 0 100; do
    expect 0 "" "$BIN" apt segment --image "$T/img.png" --landcover "$T/lc.png" --model $FIX --out "$T/mt.png" --points 3 --iterations 2 --min-area 0 --threshold $t --gate -1 --json
    eval "px_$((t + 100))=\$(px)"
done
[ -n "$px_0" ] && [ -n "$px_200" ] && [ "$px_0" -ge "$px_100" ] && [ "$px_100" -ge "$px_200" ] && [ "$px_0" -gt "$px_200" ] && ok ||
    bad "segment --threshold -100/0/100 gave $px_0/$px_100/$px_200 mask pixels (want decreasing, not all equal)"
expect 2 "--threshold must be between -100 and 100" "$BIN" apt segment --image "$T/img.png" --landcover "$T/lc.png" --model $FIX --out "$T/m7.png" --threshold 1000
[ "$(wc -l < "$T/err")" = 1 ] && [ ! -e "$T/m7.png" ] && ok || bad "segment --threshold 1000: not one line, or a mask was written"
expect 2 "--threshold expects a number" "$BIN" apt segment --image "$T/img.png" --landcover "$T/lc.png" --model $FIX --out "$T/m7.png" --threshold nan
# --gate 0: the mask kept on the land-cover class, so the everything-mask of threshold -100 shrinks
expect 0 "" "$BIN" apt segment --image "$T/img.png" --landcover "$T/lc.png" --model $FIX --out "$T/mg.png" --points 3 --iterations 2 --min-area 0 --threshold -100 --gate 0 --json
px_g=$(px)
[ -n "$px_g" ] && [ "$px_g" -gt 0 ] && [ "$px_g" -lt "$px_0" ] && ok || bad "segment --gate 0 gave $px_g mask pixels (ungated $px_0)"
# segment's defaults are eval's: the same mask as the chosen settings spelled out
expect 0 "" "$BIN" apt segment --image "$T/img.png" --landcover "$T/lc.png" --model $FIX --out "$T/md.png" --points 3 --iterations 2 --min-area 0 --json
px_d=$(px)
expect 0 "" "$BIN" apt segment --image "$T/img.png" --landcover "$T/lc.png" --model $FIX --out "$T/me.png" --points 3 --iterations 2 --min-area 0 --gate 8 --threshold -1 --prompts-per tile --json
[ -n "$px_d" ] && [ "$px_d" = "$(px)" ] && cmp -s "$T/md.png" "$T/me.png" && ok || bad "segment defaults: $px_d mask pixels, explicit settings $(px)"
# --prompts-per tile: a prompt set in each tile of a tiled model (the fixture is whole-image: same as per image)
expect 0 "" "$BIN" apt segment --image "$T/img.png" --landcover "$T/lc.png" --model $FIX --out "$T/mpt.png" --points 3 --iterations 2 --min-area 0 --prompts-per tile --json
grep -q '"mask_pixels"' "$T/out" && ok || bad "segment --prompts-per tile: $(cat "$T/out")"
expect 2 "--prompts-per must be image or tile" "$BIN" apt segment --image "$T/img.png" --landcover "$T/lc.png" --model $FIX --out "$T/m9.png" --prompts-per pixel
expect 2 "--gate must be between" "$BIN" apt segment --image "$T/img.png" --landcover "$T/lc.png" --model $FIX --out "$T/m8.png" --gate -5
# --feedback off: one decoder pass with every point (no low-res logits fed back); anything but on/off is a usage error
expect 0 "" "$BIN" apt segment --image "$T/img.png" --landcover "$T/lc.png" --model $FIX --out "$T/mf.png" --points 3 --iterations 2 --feedback off --json
grep -q '"decoder_runs": 1,' "$T/out" && ok || bad "segment --feedback off: $(cat "$T/out")"
expect 2 "--feedback must be on or off" "$BIN" apt eval --feedback maybe
expect 2 "unknown" "$BIN" apt prompts --landcover "$T/lc.png" --out "$T/p.png" --frobnicate 1
expect 2 "--points" "$BIN" apt prompts --landcover "$T/lc.png" --out "$T/p.png" --points 0
expect 0 "" "$BIN" apt --help

# train --color-jitter: recorded in the checkpoint, and it changes the crops (same seed, different loss)
D=../shared/data/aerial/isaid/train/images
if [ -r "$D/P0005.png" ]; then
    for j in 0 1; do
        flag=; [ $j = 1 ] && flag=--color-jitter
        expect 0 "" "$BIN" apt train --data "$D" --steps 2 --batch 2 --warmup 1 --threads 1 --quiet --json --out "$T/j$j.safetensors" $flag
        sed -n 's/.*"loss": \([-0-9.e]*\).*/\1/p' "$T/out" > "$T/loss$j"
        head -c 4096 "$T/j$j.safetensors" | grep -aq "\"apt.color_jitter\":\"$j\"" && ok || bad "checkpoint lacks apt.color_jitter $j"
    done
    [ -s "$T/loss0" ] && [ -s "$T/loss1" ] && ! cmp -s "$T/loss0" "$T/loss1" && ok || bad "--color-jitter left the training loss unchanged"
    # --scale-jitter: recorded in the checkpoint only when on, and it changes the crops
    expect 0 "" "$BIN" apt train --data "$D" --steps 2 --batch 2 --warmup 1 --threads 1 --quiet --json --out "$T/s1.safetensors" --scale-jitter
    sed -n 's/.*"loss": \([-0-9.e]*\).*/\1/p' "$T/out" > "$T/loss_s"
    head -c 4096 "$T/s1.safetensors" | grep -aq '"apt.scale_jitter":"1"' && ! head -c 4096 "$T/j0.safetensors" | grep -aq 'apt.scale_jitter' && ok ||
        bad "apt.scale_jitter not recorded as asked"
    [ -s "$T/loss_s" ] && ! cmp -s "$T/loss0" "$T/loss_s" && ok || bad "--scale-jitter left the training loss unchanged"
    # --dota-data/--dota-images: more training images with DOTA vehicle boxes (the 160 x 120 one above);
    # --hard-negatives: both recorded only when set, and both change the crops
    expect 0 "" "$BIN" apt train --data "$D" --steps 2 --batch 2 --warmup 1 --threads 1 --quiet --json --out "$T/u1.safetensors" --dota-data "$T" --dota-images img
    sed -n 's/.*"loss": \([-0-9.e]*\).*/\1/p' "$T/out" > "$T/loss_u"
    expect 0 "" "$BIN" apt train --data "$D" --steps 2 --batch 2 --warmup 1 --threads 1 --quiet --json --out "$T/h1.safetensors" --hard-negatives 0.5
    sed -n 's/.*"loss": \([-0-9.e]*\).*/\1/p' "$T/out" > "$T/loss_h"
    head -c 4096 "$T/u1.safetensors" | grep -aq '"apt.dota_images":"img"' && head -c 4096 "$T/h1.safetensors" | grep -aq '"apt.hard_negatives":"0.5"' &&
        ! head -c 4096 "$T/j0.safetensors" | grep -aq 'apt.dota_images\|apt.hard_negatives' && ok || bad "apt.dota_images / apt.hard_negatives not recorded as asked"
    [ -s "$T/loss_u" ] && [ -s "$T/loss_h" ] && ! cmp -s "$T/loss0" "$T/loss_u" && ! cmp -s "$T/loss0" "$T/loss_h" && ok ||
        bad "--dota-images / --hard-negatives left the training loss unchanged"
    expect 1 "nothere" "$BIN" apt train --data "$D" --steps 1 --batch 1 --threads 1 --quiet --out "$T/u2.safetensors" --dota-data "$T" --dota-images img,nothere
    head -1 "$T/err" | grep -q "error: .*nothere.png" && [ ! -e "$T/u2.safetensors" ] && ok || bad "train with a missing DOTA image: error not on the first line, or a checkpoint was written"
    expect 2 "--dota-data" "$BIN" apt train --data "$D" --steps 1 --out "$T/u3.safetensors" --dota-images img
    expect 2 "hard-negatives" "$BIN" apt train --data "$D" --steps 1 --out "$T/u3.safetensors" --hard-negatives 2
    # --dota-share: recorded only when set, and it changes which image each crop comes from
    expect 0 "" "$BIN" apt train --data "$D" --steps 2 --batch 2 --warmup 1 --threads 1 --quiet --json --out "$T/w1.safetensors" --dota-data "$T" --dota-images img --dota-share 1
    sed -n 's/.*"loss": \([-0-9.e]*\).*/\1/p' "$T/out" > "$T/loss_w"
    head -c 4096 "$T/w1.safetensors" | grep -aq '"apt.dota_share":"1"' && ! head -c 4096 "$T/u1.safetensors" | grep -aq 'apt.dota_share' && ok ||
        bad "apt.dota_share not recorded as asked"
    [ -s "$T/loss_w" ] && ! cmp -s "$T/loss_u" "$T/loss_w" && ok || bad "--dota-share left the training loss unchanged"
    expect 2 "dota-share needs" "$BIN" apt train --data "$D" --steps 1 --out "$T/u3.safetensors" --dota-share 0.5
    # a bad --init file: the hint names --init, not --data; no checkpoint
    expect 1 "nothere.safetensors" "$BIN" apt train --data "$D" --steps 1 --batch 1 --threads 1 --quiet --out "$T/i1.safetensors" --init "$T/nothere.safetensors"
    grep -q "hint: pass --init" "$T/err" && ! grep -q -- "--data" "$T/err" && [ ! -e "$T/i1.safetensors" ] && ok ||
        bad "train --init with a missing file: $(cat "$T/err")"
fi

if [ "$GDAL" = 1 ] && [ -r "$WC" ]; then
    # São Tomé: the island's land area in the tile (lon/lat degrees)
    expect 0 "" "$BIN" apt prompts --landcover "$WC" --bbox 6.45,0.0,6.78,0.42 --max-side 400 --out "$T/wc.png" --json
    grep -q '"positive"' "$T/out" && ok || bad "WorldCover prompts"
    # a georeferenced image on the island (UTM 32N) from the PNG, via gdal-free means: the mask GeoTIFF writer
    expect 1 "absent" "$BIN" apt prompts --landcover "$WC" --bbox 8.5,2.5,8.9,2.9 --max-side 200 --out "$T/wc2.png"
    # a georeferenced image GeoTIFF: the PNG above placed at 2 m on São Tomé
    # (UTM 32N, around 6.629E 0.396N, where the tile has cropland), segmented
    # against the tile (EPSG:4326) and against the tile warped to UTM; the
    # mask must carry the image's CRS and geotransform
    if command -v gdal_translate > /dev/null && command -v gdalwarp > /dev/null && command -v gdalinfo > /dev/null; then
        gdal_translate -q -of GTiff -a_srs EPSG:32632 -a_ullr 235956 43937 236276 43697 "$T/img.png" "$T/img.tif"
        gdalwarp -q -t_srs EPSG:32632 -tr 10 10 -te 235800 43600 236400 44000 -r near "$WC" "$T/lc_utm.tif"
        for lc in "$WC" "$T/lc_utm.tif"; do
            rm -f "$T/gm.tif"
            expect 0 "" "$BIN" apt segment --image "$T/img.tif" --landcover "$lc" --model $FIX --out "$T/gm.tif" --overlay "$T/gov.png" --points 3 --iterations 1 --min-area 50 --json
            grep -q '"georeferenced": true' "$T/out" && ok || bad "segment on a GeoTIFF: not georeferenced"
            gdalinfo "$T/gm.tif" > "$T/gi" 2>&1
            grep -q 'Size is 160, 120' "$T/gi" && grep -q 'Origin = (235956.0*,43937.0*)' "$T/gi" &&
                grep -q 'Pixel Size = (2.0*,-2.0*)' "$T/gi" && grep -q 'ID\["EPSG",32632\]\]' "$T/gi" && ok ||
                { bad "mask GeoTIFF lost the image's georeferencing ($lc)"; cat "$T/gi" >&2; }
        done
        # a larger georeferenced image (600 x 400 at 2 m) segmented window by window (--window 256:
        # 3 x 2 windows) into one GeoTIFF with the image's georeferencing; each window of the mask
        # equals that window cut out and segmented alone with the seed plus its index (random
        # prompts, so the seed counts), or is empty where the window holds no cropland
        gdal_translate -q -of GTiff -outsize 600 400 -a_srs EPSG:32632 -a_ullr 235956 43937 237156 43137 "$T/img.png" "$T/big.tif"
        expect 0 "" "$BIN" apt segment --image "$T/big.tif" --landcover "$WC" --model $FIX --out "$T/wm.tif" --window 256 \
            --mode random --points 3 --iterations 1 --min-area 50 --seed 5 --json
        grep -q '"windows": 6' "$T/out" && ok || bad "--window 256 on 600 x 400: not 6 windows"
        cp "$T/out" "$T/windowed.json"
        gdalinfo "$T/wm.tif" > "$T/gi" 2>&1
        grep -q 'Size is 600, 400' "$T/gi" && grep -q 'Origin = (235956.0*,43937.0*)' "$T/gi" && ok ||
            { bad "windowed mask GeoTIFF: size or georeferencing"; cat "$T/gi" >&2; }
        alone=0
        for k in 0 1 2 3 4 5; do
            x0=$(((k % 3) * 256)) y0=$(((k / 3) * 256))
            w=$((600 - x0 < 256 ? 600 - x0 : 256)) h=$((400 - y0 < 256 ? 400 - y0 : 256))
            gdal_translate -q -srcwin $x0 $y0 $w $h "$T/big.tif" "$T/crop.tif"
            gdal_translate -q -of PNG -srcwin $x0 $y0 $w $h "$T/wm.tif" "$T/win.png"
            rm -f "$T/cm.tif"
            if "$BIN" apt segment --image "$T/crop.tif" --landcover "$WC" --model $FIX --out "$T/cm.tif" --mode random \
                --points 3 --iterations 1 --min-area 50 --seed $((5 + k)) --json > "$T/alone$k.json" 2> "$T/err"; then
                gdal_translate -q -of PNG "$T/cm.tif" "$T/alone.png"
                cmp -s "$T/win.png" "$T/alone.png" && ok || bad "window $k differs from its crop segmented alone"
                alone=$((alone + 1))
            else
                grep -q "absent" "$T/err" && gdalinfo -stats "$T/win.png" 2> /dev/null | grep -q "STATISTICS_MAXIMUM=0" && ok ||
                    bad "window $k: no cropland alone, yet not empty in the windowed mask"
            fi
        done
        [ $alone -ge 2 ] && ok || bad "only $alone windows held cropland: the check compared too little"
        # the windowed run's prompts are the windows' own, moved to the image's grid, window by window
        python3 - "$T" << 'PY' && ok || bad "the windowed run's points are not the windows' own"
import json, os, sys
d = sys.argv[1]
got = json.load(open(d + "/windowed.json"))["points"]
want = []
for k in range(6):
    f = "%s/alone%d.json" % (d, k)
    if os.path.getsize(f):
        want += [[x + (k % 3) * 256, y + (k // 3) * 256, l, g] for x, y, l, g in json.load(open(f))["points"]]
sys.exit(0 if got == want and want else 1)
PY
        expect 2 "windows" "$BIN" apt segment --image "$T/big.tif" --landcover "$WC" --model $FIX --out "$T/wm.png" --window 256
        expect 2 "window" "$BIN" apt segment --image "$T/big.tif" --landcover "$WC" --model $FIX --out "$T/wm.tif" --window 100
    else
        echo "e2e_apt: gdal_translate/gdalwarp/gdalinfo absent: GeoTIFF segment case skipped"
    fi
    printf 'II*\0garbage-not-a-tiff' > "$T/bad.tif"
    expect 1 "" "$BIN" apt segment --image "$T/bad.tif" --landcover "$WC" --model $FIX --out "$T/m6.tif"
    [ ! -e "$T/m6.tif" ] && ok || bad "a failed segment left a GeoTIFF"
fi
# POST /v1/segment stops at the server's --timeout (a 503) instead of holding the route for minutes:
# 64 points per class x 10 iterations prompted one by one is about 14,000 decoder passes
if command -v curl > /dev/null; then
    "$BIN" serve --apt $FIX --port 0 --timeout 1 --quiet > "$T/srv.out" 2> "$T/srv.err" &
    SPID=$!
    PORT=$(serve_wait "$T/srv.out" "$SPID")
    if [ -n "$PORT" ]; then
        printf '{"image": "%s", "landcover": "%s", "points_per_class": 64, "iterations": 10, "prompts_per": "image", "gate": -1}' \
            "$(base64 -w0 "$T/img.png")" "$(base64 -w0 "$T/lc.png")" > "$T/heavy.json"
        t0=$(date +%s)
        code=$(curl -s -o "$T/r1.json" -w '%{http_code}' --max-time 60 --data-binary @"$T/heavy.json" http://127.0.0.1:$PORT/v1/segment)
        t1=$(date +%s)
        [ "$code" = 503 ] && grep -q "timeout" "$T/r1.json" && [ $((t1 - t0)) -le 10 ] && ok ||
            bad "a segmentation past --timeout 1: HTTP $code after $((t1 - t0)) s: $(head -c 300 "$T/r1.json")"
        printf '{"image": "%s", "landcover": "%s", "points_per_class": 3, "iterations": 1}' \
            "$(base64 -w0 "$T/img.png")" "$(base64 -w0 "$T/lc.png")" > "$T/light.json"
        code=$(curl -s -o "$T/r2.json" -w '%{http_code}' --max-time 60 --data-binary @"$T/light.json" http://127.0.0.1:$PORT/v1/segment)
        [ "$code" = 200 ] && ok || bad "the route after a timed-out request: HTTP $code $(head -c 300 "$T/r2.json")"
        kill -TERM "$SPID"
        wait "$SPID" && ok || bad "server exit"
    else
        bad "server did not start: $(tail -3 "$T/srv.err")"
        kill "$SPID" 2> /dev/null
    fi
fi
echo "e2e_apt: $passes passed, $fails failed"
[ "$fails" = 0 ]
