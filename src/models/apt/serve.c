/* tessera apt: `POST /v1/segment` for `tessera serve` — APT segmentation
 * over HTTP. The request carries a PNG image (base64 in the JSON body) and
 * either a land-cover map on the image's grid (a greyscale PNG of class
 * codes, as `tessera apt segment --landcover` takes) with the class to
 * segment, from which APT draws its point prompts, or the prompt points
 * themselves. The reply holds the mask as a PNG (base64; 255 the class,
 * 0 the rest) and the points used: for a land-cover request, the same mask
 * and points `tessera apt segment` writes for the same model, image, map
 * and settings (its defaults, chosen on validation: prompts per tile, mask
 * threshold -1, the mask gated to 8 px of the class; a points request runs
 * the points alone at SAM's threshold 0, with no map to gate by).
 *
 *   request: {"image": base64 PNG,
 *             "landcover": base64 greyscale PNG (class codes, same size),
 *               "class": 0..255 (40), "nodata": -1..255 (0),
 *               "mode": "grid" | "random" | "superpixel" ("grid"),
 *               "points_per_class": 1..64 (11), "iterations": 1..10 (3),
 *               "seed": integer (1), "gate": -1..100000 (8; -1 off),
 *               "prompts_per": "tile" | "image" ("tile")
 *             | "points": [[x, y, label], ...] (pixels; label 1 the class,
 *               0 not; at least one 1; at most 256),
 *             "min_area": 0..1e8 (2000),
 *             "threshold": -100..100 (-1 for "landcover", 0 for "points")}
 *   reply:   {"object": "segmentation", "model", "width", "height",
 *             "mask": base64 PNG, "mask_pixels", "fraction",
 *             "points": [[x, y, label, iteration], ...], "tiles",
 *             "encoder_s", "decoder_s", "decoder_runs", "ms"} */
#include "tessera/apt.h"
#include "tessera/apt_eval.h"

#include "tessera/base64.h"
#include "tessera/png.h"
#include "tessera/serve.h"
#include "tessera/serve_json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#define SEG_MAX_PIXELS (4096 * 4096)
#define SEG_MAX_POINTS 256

typedef struct {
    bool loaded;
    tsr_sam m;
    char name[64];
    int64_t requests;
} seg_state;

static void seg_unload(void *state) {
    seg_state *s = state;
    if (!s) return;
    if (s->loaded) tsr_sam_free(&s->m);
    free(s);
}

static tsr_status seg_load(void **state, const char *const *paths, const struct tsr_serve_opts *o) {
    (void)o;
    seg_state *s = calloc(1, sizeof *s);
    if (!s) return tsr_errorf(TSR_ERR_NOMEM, "serve: out of memory");
    *state = s;
    if (!paths[0]) return tsr_ok(); /* off: the route answers 503 */
    tsr_status st = tsr_sam_load(&s->m, paths[0]);
    if (st.code) return st;
    st = tsr_params_check_finite(&s->m.params, paths[0]);
    if (st.code) {
        tsr_sam_free(&s->m);
        return st;
    }
    s->loaded = true;
    tsr_serve_model_name(s->name, sizeof s->name, paths[0]);
    return tsr_ok();
}

static void seg_metrics(void *state, FILE *out) {
    seg_state *s = state;
    fprintf(out, "# HELP tessera_segment_masks_total Masks returned by POST /v1/segment.\n"
                 "# TYPE tessera_segment_masks_total counter\ntessera_segment_masks_total %lld\n",
            (long long)__atomic_load_n(&s->requests, __ATOMIC_RELAXED));
}

static bool push_point(tsr_apt_points *p, float x, float y, int label) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        float *nx = realloc(p->x, sizeof(float) * (size_t)cap);
        if (nx) p->x = nx;
        float *ny = realloc(p->y, sizeof(float) * (size_t)cap);
        if (ny) p->y = ny;
        int *nl = realloc(p->label, sizeof(int) * (size_t)cap);
        if (nl) p->label = nl;
        int *ng = realloc(p->group, sizeof(int) * (size_t)cap);
        if (ng) p->group = ng;
        if (!nx || !ny || !nl || !ng) return false;
        p->cap = cap;
    }
    p->x[p->n] = x;
    p->y[p->n] = y;
    p->label[p->n] = label;
    p->group[p->n] = 0;
    p->n++;
    return true;
}

/* "points": [[x, y, label], ...] inside a w x h image */
static bool get_points(const cJSON *v, int w, int h, tsr_apt_points *p, tsr_serve_reply *rp) {
    if (!cJSON_IsArray(v)) {
        tsr_serve_fail(rp, 400, "points", "'points' must be an array of [x, y, label]");
        return false;
    }
    int npos = 0;
    for (const cJSON *e = v->child; e; e = e->next) {
        if (p->n == SEG_MAX_POINTS) {
            tsr_serve_fail(rp, 400, "points", "at most %d points per request", SEG_MAX_POINTS);
            return false;
        }
        const cJSON *x = cJSON_GetArrayItem(e, 0), *y = cJSON_GetArrayItem(e, 1), *l = cJSON_GetArrayItem(e, 2);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 3 || !cJSON_IsNumber(x) || !cJSON_IsNumber(y) ||
            !cJSON_IsNumber(l) || (l->valuedouble != 0 && l->valuedouble != 1)) {
            tsr_serve_fail(rp, 400, "points", "point %d must be [x, y, label] with numbers and label 0 or 1", p->n);
            return false;
        }
        if (!(x->valuedouble >= 0 && x->valuedouble < w && y->valuedouble >= 0 && y->valuedouble < h)) {
            tsr_serve_fail(rp, 400, "points", "point %d (%.1f, %.1f) lies outside the %dx%d image", p->n, x->valuedouble,
                y->valuedouble, w, h);
            return false;
        }
        if (!push_point(p, (float)x->valuedouble, (float)y->valuedouble, (int)l->valuedouble)) {
            tsr_serve_fail(rp, 500, NULL, "out of memory");
            return false;
        }
        npos += l->valuedouble == 1;
    }
    if (npos == 0) {
        tsr_serve_fail(rp, 400, "points", "'points' needs at least one point with label 1 (on the class)");
        return false;
    }
    return true;
}

static void segment(void *state, const tsr_serve_request *rq, tsr_serve_reply *rp) {
    seg_state *s = state;
    if (!s->loaded) {
        tsr_serve_fail(rp, 503, NULL, "no segmenter is loaded (start the server with --apt FILE)");
        return;
    }
    double t0 = tsr_time();
    cJSON *j = cJSON_ParseWithLength(rq->body, rq->body_len);
    if (!cJSON_IsObject(j)) {
        tsr_serve_fail(rp, 400, NULL, "the body must be a JSON object with 'image' and 'landcover' or 'points'");
        cJSON_Delete(j);
        return;
    }
    static const char *const known[] = {"image", "landcover", "class", "nodata", "mode", "points_per_class",
                                        "iterations", "seed", "points", "min_area", "gate", "threshold", "prompts_per"};
    for (const cJSON *e = j->child; e; e = e->next) {
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof *known && !ok; k++) ok = strcmp(e->string, known[k]) == 0;
        if (!ok) {
            /* the name is echoed: control bytes (cJSON lets a raw newline through) shown as '?', so the
             * message stays one line */
            char name[61];
            tsr_serve_printable(name, sizeof name, e->string);
            tsr_serve_fail(rp, 400, e->string,
                "unknown field '%s' (fields: image, landcover, class, nodata, mode, points_per_class, iterations, "
                "seed, gate, prompts_per, points, min_area, threshold)",
                name);
            cJSON_Delete(j);
            return;
        }
    }
    const cJSON *lc = cJSON_GetObjectItemCaseSensitive(j, "landcover"), *pts = cJSON_GetObjectItemCaseSensitive(j, "points");
    double cls = 40, nodata = 0, ppc = 11, iters = 3, seed = 1, min_area = 2000;
    int mode = TSR_APT_GRID;
    bool ok = true;
    if (!cJSON_GetObjectItemCaseSensitive(j, "image")) {
        tsr_serve_fail(rp, 400, "image", "'image' (a base64 PNG) is required");
        ok = false;
    } else if (!lc == !pts) {
        tsr_serve_fail(rp, 400, lc ? "points" : "landcover", "give either 'landcover' (a class-code PNG) or 'points', not %s",
            lc ? "both" : "neither");
        ok = false;
    } else if (pts) {
        static const char *const lc_only[] = {"class", "nodata", "mode", "points_per_class", "seed", "gate", "prompts_per"};
        for (size_t k = 0; k < sizeof lc_only / sizeof *lc_only && ok; k++)
            if (cJSON_GetObjectItemCaseSensitive(j, lc_only[k])) {
                tsr_serve_fail(rp, 400, lc_only[k], "'%s' applies to 'landcover' requests, not to 'points'", lc_only[k]);
                ok = false;
            }
    }
    ok = ok && tsr_serve_json_int(j, "class", 0, 255, &cls, rp) && tsr_serve_json_int(j, "nodata", -1, 255, &nodata, rp) &&
         tsr_serve_json_int(j, "points_per_class", 1, 64, &ppc, rp) && tsr_serve_json_int(j, "iterations", 1, 10, &iters, rp) &&
         tsr_serve_json_int(j, "seed", 0, 9007199254740991.0, &seed, rp) && tsr_serve_json_int(j, "min_area", 0, 1e8, &min_area, rp);
    /* a land-cover request gets segment's defaults (tile prompts, threshold,
     * gate: those of the evaluation protocol); a points request runs the
     * points alone at SAM's threshold 0, with no map to gate by */
    const tsr_apt_eval_opts dflt = tsr_apt_default_eval_opts();
    double gate = dflt.gate, threshold = lc ? dflt.threshold : 0;
    bool tile_prompts = dflt.tile_prompts;
    ok = ok && tsr_serve_json_int(j, "gate", -1, 100000, &gate, rp);
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(j, "threshold"), *pp = cJSON_GetObjectItemCaseSensitive(j, "prompts_per");
    if (ok && th) {
        if (!cJSON_IsNumber(th) || !(th->valuedouble >= -100 && th->valuedouble <= 100)) {
            tsr_serve_fail(rp, 400, "threshold", "'threshold' must be a number in [-100, 100]");
            ok = false;
        } else {
            threshold = th->valuedouble;
        }
    }
    if (ok && pp) {
        if (!cJSON_IsString(pp) || (strcmp(pp->valuestring, "tile") != 0 && strcmp(pp->valuestring, "image") != 0)) {
            tsr_serve_fail(rp, 400, "prompts_per", "'prompts_per' must be 'tile' or 'image'");
            ok = false;
        } else {
            tile_prompts = strcmp(pp->valuestring, "tile") == 0;
        }
    }
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "mode");
    if (ok && ms) {
        mode = cJSON_IsString(ms) ? tsr_apt_mode_parse(ms->valuestring) : -1;
        if (mode < 0) {
            tsr_serve_fail(rp, 400, "mode", "'mode' must be grid, random or superpixel");
            ok = false;
        }
    }
    uint8_t *rgb = NULL, *codes = NULL, *lab = NULL, *mask = NULL;
    int w = 0, h = 0;
    /* as `tessera apt segment`: a model trained here sees shrunk images in tiles */
    tsr_apt_seg_opts so = {.shrink = 1, .tiled = false, .iters = (int)iters, .postprocess = true, .min_area = (int)min_area};
    if (s->m.pixel_scale > 0) {
        so.shrink = (int)lroundf(1.0f / s->m.pixel_scale);
        if (so.shrink < 1) so.shrink = 1;
        so.tiled = true;
    }
    tsr_apt_points p = {0};
    int ch = 0;
    if (ok) ok = tsr_serve_json_png(j, "image", SEG_MAX_PIXELS, true, &rgb, &w, &h, &ch, rp);
    if (ok && lc) {
        int lw = 0, lh = 0;
        ok = tsr_serve_json_png(j, "landcover", SEG_MAX_PIXELS, false, &codes, &lw, &lh, &ch, rp);
        if (ok && ch != 1) {
            tsr_serve_fail(rp, 400, "landcover", "'landcover' must be a greyscale PNG of class codes");
            ok = false;
        }
        if (ok && (lw != w || lh != h)) {
            tsr_serve_fail(rp, 400, "landcover", "'landcover' is %dx%d, the image %dx%d: the map must be on the image grid", lw, lh, w,
                h);
            ok = false;
        }
        if (ok) {
            int64_t N = (int64_t)w * h;
            lab = malloc((size_t)N);
            if (!lab) {
                tsr_serve_fail(rp, 500, NULL, "out of memory");
                ok = false;
            }
            for (int64_t i = 0; ok && i < N; i++)
                lab[i] = codes[i] == (int)cls ? 1 : (nodata >= 0 && codes[i] == (int)nodata) ? 255 : 0;
        }
        if (ok) {
            tsr_status st = tile_prompts && so.tiled
                                ? tsr_apt_prompts_tiled(&p, lab, rgb, h, w, s->m.cfg.img_size, so.shrink, mode, (int)ppc, (int)iters,
                                                        (uint64_t)seed)
                                : tsr_apt_prompts(&p, lab, rgb, h, w, mode, (int)ppc, (int)iters, (uint64_t)seed);
            if (st.code) {
                tsr_serve_fail(rp, 400, "landcover", "class %d: %s", (int)cls, st.msg);
                ok = false;
            }
        }
    } else if (ok) {
        ok = get_points(pts, w, h, &p, rp);
    }
    cJSON_Delete(j);
    tsr_apt_seg_stats ss = {0};
    if (ok) {
        so.threshold = (float)threshold;
        if (lab) {
            so.gate_map = gate >= 0 ? lab : NULL;
            so.gate = (int)gate;
        }
        mask = malloc((size_t)w * (size_t)h);
        if (!mask) {
            tsr_serve_fail(rp, 500, NULL, "out of memory");
            ok = false;
        } else {
            so.deadline = rq->deadline; /* the server's --timeout: stop instead of holding the route */
            tsr_apt_segment(&s->m, &so, rgb, h, w, &p, mask, &ss);
            if (ss.late) {
                tsr_serve_fail(rp, 503, NULL, "the segmentation ran past the server's --timeout (%d points, %d tiles "
                               "done); ask for fewer points_per_class or iterations, or a smaller image", p.n, ss.tiles);
                ok = false;
            }
        }
    }
    if (ok) {
        int64_t N = (int64_t)w * h, on = 0;
        for (int64_t i = 0; i < N; i++) {
            on += mask[i] != 0;
            mask[i] = mask[i] ? 255 : 0;
        }
        uint8_t *png = NULL;
        size_t n = 0;
        tsr_status st = tsr_png_encode(mask, w, h, 1, &png, &n);
        char *b64 = st.code ? NULL : tsr_base64_encode(png, n);
        free(png);
        cJSON *r = b64 ? cJSON_CreateObject() : NULL;
        if (r) {
            cJSON_AddStringToObject(r, "object", "segmentation");
            cJSON_AddStringToObject(r, "model", s->name);
            cJSON_AddNumberToObject(r, "width", w);
            cJSON_AddNumberToObject(r, "height", h);
            cJSON_AddStringToObject(r, "mask", b64);
            cJSON_AddNumberToObject(r, "mask_pixels", (double)on);
            cJSON_AddNumberToObject(r, "fraction", round((double)on / (double)N * 1e6) / 1e6);
            cJSON *pa = cJSON_AddArrayToObject(r, "points");
            for (int i = 0; i < p.n; i++) {
                cJSON *e = cJSON_CreateArray();
                cJSON_AddItemToArray(e, cJSON_CreateNumber(round((double)p.x[i] * 10) / 10));
                cJSON_AddItemToArray(e, cJSON_CreateNumber(round((double)p.y[i] * 10) / 10));
                cJSON_AddItemToArray(e, cJSON_CreateNumber(p.label[i]));
                cJSON_AddItemToArray(e, cJSON_CreateNumber(p.group[i]));
                cJSON_AddItemToArray(pa, e);
            }
            cJSON_AddNumberToObject(r, "tiles", ss.tiles);
            cJSON_AddNumberToObject(r, "encoder_s", round(ss.encode_s * 1e3) / 1e3);
            cJSON_AddNumberToObject(r, "decoder_s", round(ss.decode_s * 1e3) / 1e3);
            cJSON_AddNumberToObject(r, "decoder_runs", (double)ss.decoder_runs);
            cJSON_AddNumberToObject(r, "ms", round((tsr_time() - t0) * 1e4) / 10);
            rp->body = cJSON_PrintUnformatted(r);
            cJSON_Delete(r);
        }
        free(b64);
        if (rp->body) {
            rp->status = 200;
            __atomic_add_fetch(&s->requests, 1, __ATOMIC_RELAXED);
        } else {
            tsr_serve_fail(rp, 500, NULL, "out of memory");
        }
    }
    if (rq->usage) snprintf(rq->usage->model, sizeof rq->usage->model, "%s", s->name);
    tsr_apt_points_free(&p);
    free(rgb);
    free(codes);
    free(lab);
    free(mask);
}

const tsr_serve_endpoint tsr_apt_serve_endpoint = {
    .name = "segment",
    .summary = "APT: a land-cover class's mask on a PNG image, prompted from a land-cover map or points",
    .models = {{"apt", "FILE", "APT promptable segmenter for POST /v1/segment", "models/apt_small.safetensors", NULL}},
    .load = seg_load,
    .unload = seg_unload,
    .metrics = seg_metrics,
    .routes = {{"POST", "/v1/segment", segment}},
    .serialize = true, /* one image at a time: each already uses every thread */
};
