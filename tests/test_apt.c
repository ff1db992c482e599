/* Tests for apt (src/models/apt): binary metrics against a Python reference
 * (tools/refs/gen_apt.py, atol 1e-9 on doubles), the training mask loss
 * (focal + dice: loss, terms, logits' gradient) against PyTorch from the
 * same generator (atol 1e-6, rtol 1e-5; gradient rtol 1e-4), prompts in the three modes
 * (points on their class, counts, grouping, the absent-class error; per tile),
 * SLIC (segment count near k, every segment 4-connected), post-processing
 * (closing, small holes filled, small objects removed, big ones kept), the
 * coarse product (block mode; noise only at class boundaries), true masks
 * filled from DOTA oriented boxes (eval --truth dota), the tiled
 * segmentation loop with the reduced TinyViT fixture model (and its mask
 * threshold), and rasters:
 * a GeoTIFF mask written with a georeference, read back and warped onto a
 * shifted grid, and the no-overlap and corrupt-file errors (with GDAL). */
#include "testutil.h"
#include "tessera/apt.h"
#include "tessera/apt_eval.h"
#include "tessera/apt_train.h"
#include "tessera/raster.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_metrics(void) {
    tref *r = tref_load("tests/refs/apt_metrics.tref");
    for (int k = 0; k < 3; k++) {
        char n1[32], n2[32], n3[32];
        snprintf(n1, sizeof n1, "truth%d", k);
        snprintf(n2, sizeof n2, "pred%d", k);
        snprintf(n3, sizeof n3, "metrics%d", k);
        const tref_entry *t = tref_get(r, n1), *p = tref_get(r, n2);
        uint8_t *tt = malloc((size_t)t->numel), *pp = malloc((size_t)t->numel);
        for (int64_t i = 0; i < t->numel; i++) {
            tt[i] = (uint8_t)((const int32_t *)t->data)[i];
            pp[i] = (uint8_t)((const int32_t *)p->data)[i];
        }
        tsr_apt_conf c = {0};
        tsr_apt_conf_add(&c, pp, tt, t->numel);
        tsr_apt_metrics m = tsr_apt_metrics_of(&c);
        float got[6] = {(float)m.iou, (float)m.miou, (float)m.oa, (float)m.precision, (float)m.recall, (float)m.f1};
        tu_close_ref(r, n3, got, 6, 1e-6, 1e-6);
        free(tt);
        free(pp);
    }
    tref_free(r);
}

/* a 120 x 100 map: a 40 x 30 block of the class and a small island */
static uint8_t *test_map(int h, int w) {
    uint8_t *lab = calloc((size_t)h * w, 1);
    for (int y = 20; y < 60; y++)
        for (int x = 30; x < 60; x++) lab[y * w + x] = 1;
    for (int y = 90; y < 95; y++)
        for (int x = 80; x < 85; x++) lab[y * w + x] = 1;
    for (int x = 0; x < w; x++) lab[x] = 255; /* a no-data row */
    return lab;
}

static void test_prompts(void) {
    int h = 120, w = 100;
    uint8_t *lab = test_map(h, w), *rgb = malloc((size_t)h * w * 3);
    for (int i = 0; i < h * w; i++)
        for (int k = 0; k < 3; k++) rgb[3 * i + k] = lab[i] == 1 ? 200 : (uint8_t)(40 + (i % w) / 2 + k * (i / w) / 4);
    for (int mode = 0; mode < TSR_APT_MODE_COUNT; mode++) {
        tsr_apt_points p;
        tsr_status st = tsr_apt_prompts(&p, lab, rgb, h, w, mode, 4, 3, 9);
        TU_CHECK(st.code == TSR_OK, "prompts %s: %s", tsr_apt_mode_names[mode], st.msg);
        int bad = 0, npos = 0, nneg = 0, order = 0;
        for (int i = 0; i < p.n; i++) {
            uint8_t v = lab[(int)p.y[i] * w + (int)p.x[i]];
            bad += v != p.label[i];
            npos += p.label[i] == 1;
            nneg += p.label[i] == 0;
            if (i && p.group[i] < p.group[i - 1]) order++;
        }
        TU_CHECK(bad == 0, "%s: %d points off their class", tsr_apt_mode_names[mode], bad);
        TU_CHECK(npos >= 3 && nneg >= 3, "%s: %d positive, %d negative", tsr_apt_mode_names[mode], npos, nneg);
        TU_CHECK(order == 0 && p.group[p.n - 1] == 2, "%s: groups in order 0..2", tsr_apt_mode_names[mode]);
        if (mode == TSR_APT_RANDOM) TU_CHECK(npos == 12 && nneg == 12, "random: 4 x 3 per class (%d, %d)", npos, nneg);
        tsr_apt_points_free(&p);
    }
    /* the union grid is deterministic and seed-free */
    tsr_apt_points a, b;
    tsr_apt_prompts(&a, lab, NULL, h, w, TSR_APT_GRID, 11, 3, 1);
    tsr_apt_prompts(&b, lab, NULL, h, w, TSR_APT_GRID, 11, 3, 2);
    TU_CHECK(a.n == b.n && a.n > 0 && memcmp(a.x, b.x, sizeof(float) * (size_t)a.n) == 0, "grid mode seed-free");
    tsr_apt_points_free(&a);
    tsr_apt_points_free(&b);
    /* an absent class is an error */
    uint8_t *none = calloc((size_t)h * w, 1);
    tsr_apt_points p;
    tsr_status st = tsr_apt_prompts(&p, none, NULL, h, w, TSR_APT_GRID, 11, 3, 1);
    TU_CHECK(st.code == TSR_ERR_ARG && strstr(st.msg, "absent"), "absent class refused: %s", st.msg);
    st = tsr_apt_prompts(&p, lab, NULL, h, w, TSR_APT_SUPERPIXEL, 11, 3, 1);
    TU_CHECK(st.code == TSR_ERR_ARG, "superpixel without an image refused");
    free(none);
    /* SLIC: about k segments, each one 4-connected */
    int32_t *seg = malloc(sizeof(int32_t) * (size_t)h * w);
    int n;
    tsr_apt_slic(seg, &n, rgb, h, w, 30, 20.0f);
    TU_CHECK(n >= 15 && n <= 60, "SLIC: %d segments for k = 30", n);
    int disconnected = 0;
    uint8_t *seen = calloc((size_t)h * w, 1);
    int32_t *q = malloc(sizeof(int32_t) * (size_t)h * w);
    int *count = calloc((size_t)n, sizeof(int));
    for (int s = 0; s < h * w; s++) {
        if (seen[s]) continue;
        int head = 0, top = 0;
        q[top++] = s;
        seen[s] = 1;
        while (head < top) {
            int c = q[head++], cy = c / w, cx = c % w;
            const int dx[4] = {1, -1, 0, 0}, dy[4] = {0, 0, 1, -1};
            for (int d = 0; d < 4; d++) {
                int yy = cy + dy[d], xx = cx + dx[d];
                if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                int r2 = yy * w + xx;
                if (!seen[r2] && seg[r2] == seg[s]) {
                    seen[r2] = 1;
                    q[top++] = r2;
                }
            }
        }
        if (count[seg[s]]++) disconnected++;
    }
    TU_CHECK(disconnected == 0, "SLIC: %d segments in several pieces", disconnected);
    free(seen);
    free(q);
    free(count);
    free(seg);
    free(lab);
    free(rgb);
}

static void test_postprocess(void) {
    int h = 80, w = 80;
    uint8_t *m = calloc((size_t)h * w, 1);
    for (int y = 10; y < 60; y++)
        for (int x = 10; x < 60; x++) m[y * w + x] = 1;
    for (int y = 30; y < 34; y++)
        for (int x = 30; x < 34; x++) m[y * w + x] = 0; /* a 16 px hole */
    m[70 * w + 70] = m[70 * w + 71] = 1;              /* a 2 px speck */
    for (int y = 10; y < 60; y++) m[y * w + 35] = 0;  /* a 1 px crack: closing mends it */
    tsr_apt_postprocess(m, h, w, 50);
    int on = 0;
    for (int i = 0; i < h * w; i++) on += m[i];
    TU_CHECK(m[31 * w + 31] == 1 && m[20 * w + 35] == 1, "hole filled, crack closed");
    TU_CHECK(m[70 * w + 70] == 0, "speck removed");
    TU_CHECK(on == 50 * 50, "the square survives whole (%d px)", on);
    free(m);
}

/* the coarse-class gate against a brute-force chessboard distance */
static void test_gate(void) {
    int h = 37, w = 53;
    uint8_t *lab = malloc((size_t)h * w), *m = malloc((size_t)h * w);
    tsr_rng r;
    tsr_rng_seed(&r, 5);
    for (int i = 0; i < h * w; i++) lab[i] = tsr_rng_uniform(&r) < 0.01f ? 1 : (tsr_rng_uniform(&r) < 0.05f ? 255 : 0);
    int bad = 0;
    for (int dist = 0; dist <= 6; dist += 3) {
        for (int i = 0; i < h * w; i++) m[i] = 1;
        tsr_apt_gate(m, lab, h, w, dist);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int near = 0;
                for (int yy = y - dist; yy <= y + dist; yy++)
                    for (int xx = x - dist; xx <= x + dist; xx++)
                        if (yy >= 0 && yy < h && xx >= 0 && xx < w && lab[yy * w + xx] == 1) near = 1;
                bad += m[y * w + x] != near;
            }
    }
    TU_CHECK(bad == 0, "gate = chessboard dilation of the class (%d pixels differ)", bad);
    memset(lab, 0, (size_t)h * w);
    for (int i = 0; i < h * w; i++) m[i] = 1;
    tsr_apt_gate(m, lab, h, w, 1000);
    int on = 0;
    for (int i = 0; i < h * w; i++) on += m[i];
    TU_CHECK(on == 0, "no class pixel: nothing passes the gate");
    free(lab);
    free(m);
}

static void test_coarse(void) {
    int h = 64, w = 64;
    uint8_t *t = calloc((size_t)h * w, 1), *c = malloc((size_t)h * w), *c2 = malloc((size_t)h * w);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < 40; x++) t[y * w + x] = 1;
    tsr_apt_coarse_product(c, t, h, w, 16, 0.0f, 1);
    /* blocks of 16: columns 0..31 all class, 32..47 has 8 of 16 (a tie: other) */
    TU_CHECK(c[5 * w + 31] == 1 && c[5 * w + 33] == 0 && c[5 * w + 50] == 0, "block mode");
    tsr_apt_coarse_product(c2, t, h, w, 16, 1.0f, 1);
    int changed_far = 0, changed_edge = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            bool ch = c[y * w + x] != c2[y * w + x];
            if (x < 16) changed_far += ch;
            if (x >= 16 && x < 48) changed_edge += ch;
        }
    TU_CHECK(changed_far == 0 && changed_edge > 0, "noise only at boundaries (%d far, %d edge)", changed_far, changed_edge);
    free(t);
    free(c);
    free(c2);
}

/* true masks from DOTA oriented boxes: an axis-aligned box fills exactly the
 * pixels whose centres it holds, a diamond fills half its hull, other
 * classes and the header lines are skipped, boxes off the image are
 * clipped, malformed lines are one-line errors naming the line */
static void test_dota_truth(void) {
    int w = 20, h = 16, n = -1;
    uint8_t *lab = malloc((size_t)w * h);
    uint32_t *inst = malloc(sizeof(uint32_t) * (size_t)w * h);
    const char *ok = "imagesource:GoogleEarth\ngsd:0.27\n"
                     "2 3 6 3 6 5 2 5 small-vehicle 0\n"
                     "0 0 19 0 19 15 0 15 harbor 1\n"
                     "\r\n"
                     "14 4 18 8 14 12 10 8 large-vehicle\n"
                     "15 13 40 13 40 30 15 30 small-vehicle 1\n";
    tsr_status st = tsr_apt_dota_truth_parse(ok, strlen(ok), "t.txt", w, h, lab, inst, &n);
    TU_CHECK(st.code == TSR_OK && n == 3, "parse (%s, %d boxes)", st.msg, n);
    int box1 = 0, dia = 0, clip = 0, total = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int v = lab[y * w + x];
            total += v;
            if (x >= 2 && x < 6 && y >= 3 && y < 5) box1 += v && inst[y * w + x] == 1;
            if (x >= 10 && x < 18 && y >= 4 && y < 12) dia += v && inst[y * w + x] == 2;
            if (x >= 15 && y >= 13) clip += v && inst[y * w + x] == 3;
        }
    TU_CHECK(box1 == 8, "axis-aligned box: 8 pixels (got %d)", box1);
    TU_CHECK(dia == 32, "diamond of diagonals 8: 32 pixels (got %d)", dia);
    TU_CHECK(clip == 15, "box clipped to the image: 5 x 3 pixels (got %d)", clip);
    TU_CHECK(total == 8 + 32 + 15, "nothing else filled (got %d)", total);
    const char *bad[] = {"1 2 3 4 5 6 7 small-vehicle\n", "1 2 3 4 5 6 7 8\n", "1 2 3 4 5 6 7 8 car 2\n",
                         "1 2 3 4 5 6 7 8 car 0 x\n", "nan 2 3 4 5 6 7 8 car\n"};
    for (int i = 0; i < 5; i++) {
        char msg[256];
        snprintf(msg, sizeof msg, "gsd:1\n%s", bad[i]);
        st = tsr_apt_dota_truth_parse(msg, strlen(msg), "b.txt", w, h, lab, NULL, &n);
        TU_CHECK(st.code != TSR_OK && strstr(st.msg, "b.txt:2:") && !strchr(st.msg, '\n'), "bad line %d refused (%s)", i,
                 st.msg);
    }
    free(lab);
    free(inst);
}

/* the loop end to end with the reduced fixture model (whole and tiled) */
/* prompts drawn per tile: every point on its class, every tile that holds
 * the class gets positives, more points than per image, the absent-class
 * error */
static void test_prompts_tiled(void) {
    int h = 120, w = 100, T = 16, f = 2, sh = h / f, sw = w / f; /* 32 px tiles, the last flush */
    uint8_t *lab = test_map(h, w);
    tsr_apt_points p;
    tsr_status st = tsr_apt_prompts_tiled(&p, lab, NULL, h, w, T, f, TSR_APT_GRID, 2, 2, 1);
    TU_CHECK(st.code == TSR_OK, "tiled prompts: %s", st.msg);
    int bad = 0, tiles_cls = 0, tiles_pos = 0;
    for (int ty = 0; ty < sh; ty += T)
        for (int tx = 0; tx < sw; tx += T) {
            int y0 = (ty + T > sh ? sh - T : ty) * f, x0 = (tx + T > sw ? sw - T : tx) * f;
            int ncls = 0, npos = 0;
            for (int y = y0; y < y0 + T * f; y++)
                for (int x = x0; x < x0 + T * f; x++) ncls += lab[y * w + x] == 1;
            for (int i = 0; i < p.n; i++)
                if (p.x[i] >= x0 && p.x[i] < x0 + T * f && p.y[i] >= y0 && p.y[i] < y0 + T * f) npos += p.label[i] == 1;
            tiles_cls += ncls > 0;
            tiles_pos += ncls > 0 && npos > 0;
        }
    for (int i = 0; i < p.n; i++) bad += lab[(int)p.y[i] * w + (int)p.x[i]] != p.label[i];
    TU_CHECK(bad == 0, "tiled prompts: %d points off their class", bad);
    TU_CHECK(tiles_cls >= 2 && tiles_pos == tiles_cls, "tiled prompts: %d of %d class tiles prompted", tiles_pos, tiles_cls);
    tsr_apt_points whole;
    tsr_apt_prompts(&whole, lab, NULL, h, w, TSR_APT_GRID, 2, 2, 1);
    TU_CHECK(p.n > whole.n, "tiled prompts denser than per image (%d vs %d)", p.n, whole.n);
    tsr_apt_points_free(&whole);
    tsr_apt_points_free(&p);
    uint8_t *none = calloc((size_t)h * w, 1);
    st = tsr_apt_prompts_tiled(&p, none, NULL, h, w, T, f, TSR_APT_GRID, 2, 2, 1);
    TU_CHECK(st.code == TSR_ERR_ARG && strstr(st.msg, "absent") && p.n == 0, "tiled: absent class refused: %s", st.msg);
    free(none);
    free(lab);
}

static void test_segment(void) {
    tsr_sam m;
    tsr_status st = tsr_sam_load(&m, "tests/refs/sam_tinyvit.safetensors");
    TU_CHECK(st.code == TSR_OK, "load: %s", st.msg);
    if (st.code) return;
    int h = 150, w = 200;
    uint8_t *rgb = malloc((size_t)h * w * 3), *lab = calloc((size_t)h * w, 1), *mask = malloc((size_t)h * w);
    for (int i = 0; i < h * w * 3; i++) rgb[i] = (uint8_t)(i * 31 % 251);
    for (int y = 40; y < 100; y++)
        for (int x = 50; x < 150; x++) lab[y * w + x] = 1;
    tsr_apt_points p;
    tsr_apt_prompts(&p, lab, rgb, h, w, TSR_APT_GRID, 3, 2, 1);
    for (int tiled = 0; tiled < 2; tiled++) {
        tsr_apt_seg_opts o = {.shrink = tiled ? 2 : 1, .tiled = tiled, .iters = 2, .postprocess = true, .min_area = 10};
        tsr_apt_seg_stats ss;
        tsr_apt_segment(&m, &o, rgb, h, w, &p, mask, &ss);
        int bad = 0;
        for (int i = 0; i < h * w; i++) bad += mask[i] > 1;
        int64_t want = 0;
        for (int i = 0; i < p.n; i++) want += i == 0 ? 1 + 2 : 2 + 1; /* 1 + iters, then iters + 1 per point */
        TU_CHECK(bad == 0 && ss.tiles >= 1, "segment (%s): binary mask, %d tiles", tiled ? "tiled" : "whole", ss.tiles);
        if (!tiled) TU_CHECK(ss.decoder_runs == want, "decoder runs %lld, want %lld", (long long)ss.decoder_runs, (long long)want);
        if (!tiled) { /* without feedback: one pass with every point, the same mask as a direct prediction */
            tsr_apt_seg_opts onf = o;
            onf.no_feedback = true;
            onf.postprocess = false;
            uint8_t *m1 = malloc((size_t)h * w), *m2 = malloc((size_t)h * w);
            tsr_apt_segment(&m, &onf, rgb, h, w, &p, m1, &ss);
            TU_CHECK(ss.decoder_runs == 1, "no feedback: %lld decoder runs, want 1", (long long)ss.decoder_runs);
            tsr_apt_state s;
            tsr_apt_begin(&s, &m, rgb, h, w);
            int L = 4 * m.grid;
            float *low = malloc(sizeof(float) * (size_t)L * L);
            tsr_apt_predict(&s, p.x, p.y, p.label, p.n, NULL, low);
            tsr_apt_upscale(&s, low, m2);
            tsr_apt_end(&s);
            TU_CHECK(memcmp(m1, m2, (size_t)h * w) == 0, "no feedback: the mask of one pass with all %d points", p.n);
            free(low);
            free(m1);
            free(m2);
        }
        /* the logit threshold: a lower one never removes a pixel (before post-processing) */
        uint8_t *lo = malloc((size_t)h * w), *hi = malloc((size_t)h * w);
        tsr_apt_seg_opts o2 = o;
        o2.postprocess = false;
        o2.threshold = -2.0f;
        tsr_apt_segment(&m, &o2, rgb, h, w, &p, lo, &ss);
        o2.threshold = 2.0f;
        tsr_apt_segment(&m, &o2, rgb, h, w, &p, hi, &ss);
        int64_t nlo = 0, nhi = 0, lost = 0;
        for (int i = 0; i < h * w; i++) {
            nlo += lo[i];
            nhi += hi[i];
            lost += hi[i] && !lo[i];
        }
        TU_CHECK(lost == 0 && nlo > nhi, "threshold -2 keeps every pixel of threshold 2 and more (%lld > %lld)", (long long)nlo, (long long)nhi);
        free(lo);
        free(hi);
    }
    tsr_apt_points_free(&p);
    /* images thinner than the shrink factor (1 x 5 and 5 x 1 at shrink 3):
     * the mask stays inside its image (ASan checks the indexing) */
    for (int k = 0; k < 2; k++) {
        int th = k ? 5 : 1, tw = k ? 1 : 5;
        uint8_t trgb[15] = {0}, tm[5];
        memset(tm, 7, sizeof tm);
        float px = 0, py = 0;
        int lb = 1, gr = 0;
        tsr_apt_points one = {.x = &px, .y = &py, .label = &lb, .group = &gr, .n = 1, .cap = 1};
        for (int tiled = 0; tiled < 2; tiled++) {
            tsr_apt_seg_opts o = {.shrink = 3, .tiled = tiled, .iters = 1, .postprocess = true, .min_area = 0};
            tsr_apt_seg_stats ss;
            tsr_apt_segment(&m, &o, trgb, th, tw, &one, tm, &ss);
            int bad = 0;
            for (int i = 0; i < 5; i++) bad += tm[i] > 1;
            TU_CHECK(bad == 0, "a %dx%d image at shrink 3 (%s): binary mask", th, tw, tiled ? "tiled" : "whole");
        }
    }
    free(rgb);
    free(lab);
    free(mask);
    tsr_sam_free(&m);
}

static void test_raster(void) {
    if (!tsr_raster_have_gdal()) {
        tsr_raster img = {0};
        tsr_status st = tsr_raster_read_rgb("x.tif", &img);
        TU_CHECK(st.code != TSR_OK && strstr(st.msg, "without GDAL"), "no-GDAL build says so: %s", st.msg);
        return;
    }
    int w = 40, h = 30;
    uint8_t *m = malloc((size_t)w * h);
    for (int i = 0; i < w * h; i++) m[i] = (uint8_t)(10 + (i % w) / 4); /* codes by column */
    tsr_raster ref = {.w = w, .h = h, .georef = true, .gt = {500000, 10, 0, 4000000, 0, -10}};
    ref.wkt = strdup("EPSG:32632");
    char path[256];
    snprintf(path, sizeof path, "%s.tif", tu_tmp("apt_mask"));
    tsr_status st = tsr_raster_write_mask(path, m, w, h, &ref);
    TU_CHECK(st.code == TSR_OK, "write GeoTIFF: %s", st.msg);
    TU_CHECK(access(path, F_OK) == 0, "file there");
    /* onto a grid shifted by 5 pixels east at 5 m: codes follow the columns */
    tsr_raster img = {.w = 20, .h = 10, .georef = true, .gt = {500050, 5, 0, 3999900, 0, -5}};
    img.wkt = ref.wkt;
    uint8_t *cls;
    st = tsr_raster_classes_on_grid(path, &img, &cls);
    TU_CHECK(st.code == TSR_OK, "warp: %s", st.msg);
    if (!st.code) {
        /* target x = 500050 + 5 (i + 0.5) -> source column (x - 500000) / 10 */
        int bad = 0;
        for (int i = 0; i < 20; i++) {
            int col = (int)((50 + 5 * (i + 0.5)) / 10);
            bad += cls[3 * 20 + i] != 10 + col / 4;
        }
        TU_CHECK(bad == 0, "warped codes follow the source columns (%d off)", bad);
        free(cls);
    }
    /* a grid far away: no overlap */
    tsr_raster far = img;
    far.gt[0] = 900000;
    st = tsr_raster_classes_on_grid(path, &far, &cls);
    TU_CHECK(st.code != TSR_OK && strstr(st.msg, "overlap"), "no overlap refused: %s", st.msg);
    /* a corrupt GeoTIFF */
    FILE *f = fopen(path, "r+b");
    if (f) {
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 8, SEEK_SET);
        for (long i = 8; i < len; i++) fputc(0x5a, f);
        fclose(f);
    }
    tsr_raster bad = {0};
    st = tsr_raster_read_rgb(path, &bad);
    TU_CHECK(st.code != TSR_OK, "corrupt GeoTIFF refused: %s", st.msg);
    unlink(path);
    free(ref.wkt);
    free(m);
}

/* The training mask loss (fw * focal + dice) against PyTorch
 * (tools/refs/gen_apt.py -> apt_loss.tref): the default weighting, SAM's
 * (alpha 0.25, fw 20) and an empty target; loss, both terms and the
 * logits' gradient. */
static void test_mask_loss(void) {
    tref *r = tref_load("tests/refs/apt_loss.tref");
    char k[64];
    for (int cs = 0; cs < 3; cs++) {
        tsr_ctx c;
        tsr_ctx_init(&c, 1 << 20);
        c.grad_enabled = true;
        snprintf(k, sizeof k, "case%d.x", cs);
        tsr_tensor *x = tref_tensor(&c, r, k, true);
        snprintf(k, sizeof k, "case%d.y", cs);
        tsr_tensor *y = tref_tensor(&c, r, k, false);
        snprintf(k, sizeof k, "case%d.cfg", cs);
        const float *cfg = (const float *)tref_get(r, k)->data;
        float fo, di;
        tsr_tensor *loss = tsr_apt_mask_loss(&c, x, y, cfg[0], cfg[1], &fo, &di);
        snprintf(k, sizeof k, "case%d.loss", cs);
        tu_close_ref(r, k, tsr_f32(loss), 1, 1e-6, 1e-5);
        snprintf(k, sizeof k, "case%d.focal", cs);
        tu_close_ref(r, k, &fo, 1, 1e-6, 1e-5);
        snprintf(k, sizeof k, "case%d.dice", cs);
        tu_close_ref(r, k, &di, 1, 1e-6, 1e-5);
        tsr_backward(&c, loss);
        snprintf(k, sizeof k, "case%d.gx", cs);
        tu_close_ref(r, k, tsr_grad(&c, x), x->numel, 1e-6, 1e-4);
        tsr_ctx_free(&c);
    }
    tref_free(r);
}

/* an option error returns before the training loop: the result is still
 * zeroed (the CLI reads its interrupted flag; an unset one was a load of a
 * garbage bool, UBSan in apt train --init with a missing file) */
static void test_train_result(void) {
    tsr_apt_train_opts o = tsr_apt_default_train_opts();
    o.hard_negatives = 2;
    tsr_train_result r, zero;
    memset(&r, 0x5a, sizeof r);
    memset(&zero, 0, sizeof zero);
    tsr_status st = tsr_apt_train(&o, &r);
    TU_CHECK(st.code == TSR_ERR_ARG, "hard negatives 2 refused: %s", st.msg);
    TU_CHECK(memcmp(&r, &zero, sizeof r) == 0, "result zeroed on an early error");
}

int main(void) {
    test_train_result();
    test_metrics();
    test_mask_loss();
    test_prompts();
    test_prompts_tiled();
    test_postprocess();
    test_gate();
    test_coarse();
    test_dota_truth();
    test_segment();
    test_raster();
    return tu_finish("apt");
}
