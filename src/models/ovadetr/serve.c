/* tessera ovadetr: `POST /v1/detect` for `tessera serve` — open-vocabulary
 * detection over HTTP. The request carries a PNG image (base64 in the JSON
 * body) and the class names to look for; the reply lists the boxes, the
 * same detections `tessera ovadetr detect` writes for the same model,
 * image and settings (tiles of the model's training crop, class-wise NMS).
 *
 *   request: {"image": base64 PNG (a data URL header is accepted),
 *             "classes": ["ship", "car"] | "ship,car",
 *             "min_score": 0..1 (0.3), "max_det": 1..1000 (100),
 *             "tile": 0 | 64..2048, a multiple of 32 (0: the training crop),
 *             "overlap": -1 | 0..tile-32 (-1: a quarter of the tile)}
 *   reply:   {"object": "detection", "model", "width", "height",
 *             "classes": [...], "ms",
 *             "detections": [{"class", "class_index", "score",
 *                             "box": [x0, y0, x1, y1]}, ...]}   (pixels, score order)
 *
 * A class name must be in the model's vocabulary (a 400 names it). */
#include "tessera/ovadetr.h"

#include "tessera/png.h"
#include "tessera/serve.h"
#include "tessera/serve_json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#define DET_MAX_CLASSES 64
#define DET_MAX_PIXELS (4096 * 4096)

typedef struct {
    bool loaded;
    tsr_ovd_model m;
    tsr_ovd_vocab v;
    char **mcls; /* a closed-set model's class names */
    int nmc;
    char name[64];
    int64_t requests, boxes;
} det_state;

static void det_unload(void *state) {
    det_state *s = state;
    if (!s) return;
    if (s->loaded) {
        tsr_ovd_names_free(s->mcls, s->nmc);
        tsr_ovd_vocab_free(&s->v);
        tsr_ovd_free(&s->m);
    }
    free(s);
}

static tsr_status det_load(void **state, const char *const *paths, const struct tsr_serve_opts *o) {
    (void)o;
    det_state *s = calloc(1, sizeof *s);
    if (!s) return tsr_errorf(TSR_ERR_NOMEM, "serve: out of memory");
    *state = s;
    if (!paths[0]) return tsr_ok(); /* off: the route answers 503 */
    tsr_status st = tsr_ovd_load(&s->m, paths[0]);
    if (st.code) return st;
    st = tsr_ovd_vocab_load(&s->v, paths[0]);
    if (st.code) {
        tsr_ovd_free(&s->m);
        return st;
    }
    st = tsr_ovd_model_classes(paths[0], &s->mcls, &s->nmc);
    if (st.code) {
        tsr_ovd_vocab_free(&s->v);
        tsr_ovd_free(&s->m);
        return st;
    }
    s->loaded = true;
    tsr_serve_model_name(s->name, sizeof s->name, paths[0]);
    return tsr_ok();
}

static void det_metrics(void *state, FILE *out) {
    det_state *s = state;
    fprintf(out, "# HELP tessera_detect_boxes_total Boxes returned by POST /v1/detect.\n"
                 "# TYPE tessera_detect_boxes_total counter\ntessera_detect_boxes_total %lld\n",
            (long long)__atomic_load_n(&s->boxes, __ATOMIC_RELAXED));
}

/* "classes": an array of names or one comma-separated string -> names (strdup'd) */
static int get_classes(const cJSON *j, char **names, tsr_serve_reply *rp) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "classes");
    if (!v) {
        tsr_serve_fail(rp, 400, "classes", "'classes' (class names, e.g. ['ship', 'car']) is required");
        return -1;
    }
    int n = 0;
    char buf[256];
    const cJSON *e = cJSON_IsArray(v) ? v->child : NULL;
    const char *list = cJSON_IsString(v) ? v->valuestring : NULL;
    if (!cJSON_IsArray(v) && !list) {
        tsr_serve_fail(rp, 400, "classes", "'classes' must be an array of names or a comma-separated string");
        return -1;
    }
    for (;;) {
        const char *t;
        size_t l;
        if (list) {
            while (*list == ',' || *list == ' ') list++;
            if (!*list) break;
            l = strcspn(list, ",");
            t = list;
            list += l;
            while (l && t[l - 1] == ' ') l--;
        } else {
            if (!e) break;
            if (!cJSON_IsString(e) || !e->valuestring[0]) {
                tsr_serve_fail(rp, 400, "classes", "'classes' must hold non-empty strings");
                goto fail;
            }
            t = e->valuestring;
            l = strlen(t);
            e = e->next;
        }
        if (n == DET_MAX_CLASSES) {
            tsr_serve_fail(rp, 400, "classes", "at most %d class names per request", DET_MAX_CLASSES);
            goto fail;
        }
        if (l >= sizeof buf) l = sizeof buf - 1;
        memcpy(buf, t, l);
        buf[l] = 0;
        names[n] = strdup(buf);
        if (!names[n]) {
            tsr_serve_fail(rp, 500, NULL, "out of memory");
            goto fail;
        }
        n++;
    }
    if (n == 0) {
        tsr_serve_fail(rp, 400, "classes", "'classes' names no class");
        return -1;
    }
    int ri, rj;
    if (tsr_ovd_names_repeat((const char *const *)names, n, &ri, &rj)) { /* as `ovadetr detect` */
        char shown[81];
        tsr_serve_printable(shown, sizeof shown, names[ri]);
        tsr_serve_fail(rp, 400, "classes", "'classes' names '%s' twice; give each class once", shown);
        goto fail;
    }
    return n;
fail:
    for (int i = 0; i < n; i++) free(names[i]);
    return -1;
}

static void detect(void *state, const tsr_serve_request *rq, tsr_serve_reply *rp) {
    det_state *s = state;
    if (!s->loaded) {
        tsr_serve_fail(rp, 503, NULL, "no detector is loaded (start the server with --ovadetr FILE)");
        return;
    }
    double t0 = tsr_time();
    cJSON *j = cJSON_ParseWithLength(rq->body, rq->body_len);
    if (!cJSON_IsObject(j)) {
        tsr_serve_fail(rp, 400, NULL, "the body must be a JSON object with 'image' and 'classes'");
        cJSON_Delete(j);
        return;
    }
    static const char *const known[] = {"image", "classes", "min_score", "max_det", "tile", "overlap"};
    for (const cJSON *e = j->child; e; e = e->next) {
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof *known && !ok; k++) ok = strcmp(e->string, known[k]) == 0;
        if (!ok) {
            char name[61];
            tsr_serve_printable(name, sizeof name, e->string);
            tsr_serve_fail(rp, 400, e->string, "unknown field '%s' (fields: image, classes, min_score, max_det, tile, overlap)",
                name);
            cJSON_Delete(j);
            return;
        }
    }
    double max_det_d = 100, tile_d = 0, overlap_d = -1;
    float min_score = 0.3f;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "min_score");
    if (ms && (!cJSON_IsNumber(ms) || !(ms->valuedouble >= 0 && ms->valuedouble <= 1))) {
        tsr_serve_fail(rp, 400, "min_score", "'min_score' must be a number in [0, 1]");
        cJSON_Delete(j);
        return;
    }
    if (ms) min_score = (float)ms->valuedouble;
    if (!tsr_serve_json_int(j, "max_det", 1, 1000, &max_det_d, rp) || !tsr_serve_json_int(j, "tile", 0, 2048, &tile_d, rp) ||
        !tsr_serve_json_int(j, "overlap", -1, 2048, &overlap_d, rp)) {
        cJSON_Delete(j);
        return;
    }
    int max_det = (int)max_det_d, tile = (int)tile_d, overlap = (int)overlap_d;
    if (tile && (tile < 64 || tile % 32)) {
        tsr_serve_fail(rp, 400, "tile", "'tile' must be 0 or a multiple of 32 in [64, 2048]");
        cJSON_Delete(j);
        return;
    }
    int eff_tile = tile ? tile : s->m.train_crop;
    if (overlap > eff_tile - 32) {
        tsr_serve_fail(rp, 400, "overlap", "'overlap' must be -1 or in [0, %d] for a tile of %d", eff_tile - 32, eff_tile);
        cJSON_Delete(j);
        return;
    }
    char *names[DET_MAX_CLASSES];
    int K = get_classes(j, names, rp);
    if (K < 0) {
        cJSON_Delete(j);
        return;
    }
    float *rows = malloc(sizeof(float) * (size_t)K * TSR_OVD_TEXT_DIM);
    bool ok = rows != NULL;
    if (!ok) tsr_serve_fail(rp, 500, NULL, "out of memory");
    for (int k = 0; ok && k < K; k++) {
        int r = tsr_ovd_vocab_find(&s->v, names[k]);
        if (r < 0) {
            char shown[81];
            tsr_serve_printable(shown, sizeof shown, names[k]);
            tsr_serve_fail(rp, 400, "classes", "class '%s' has no text embedding in the model's vocabulary", shown);
            ok = false;
        } else {
            memcpy(rows + (size_t)k * TSR_OVD_TEXT_DIM, s->v.rows + (size_t)r * TSR_OVD_TEXT_DIM,
                   sizeof(float) * TSR_OVD_TEXT_DIM);
        }
    }
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    int ch = 0;
    if (ok) ok = tsr_serve_json_png(j, "image", DET_MAX_PIXELS, true, &rgb, &w, &h, &ch, rp);
    cJSON_Delete(j);
    tsr_ovd_det *dets = NULL;
    int nd = 0;
    if (ok) {
        /* the server's --timeout: stop between tiles instead of holding the route */
        bool late = false;
        tsr_status st = tsr_ovd_detect_until(&s->m, (const char *const *)s->mcls, s->nmc, rgb, w, h,
                                             (const char *const *)names, rows, K, tile, overlap, max_det, min_score,
                                             rq->deadline, &dets, &nd, &late);
        if (st.code) {
            tsr_serve_fail(rp, st.code == TSR_ERR_NOMEM ? 500 : 400, NULL, "%s", st.msg);
            ok = false;
        } else if (late) {
            tsr_serve_fail(rp, 503, NULL, "the detection ran past the server's --timeout (%d x %d image); ask for a "
                           "larger tile, a smaller overlap or a smaller image", w, h);
            ok = false;
        }
    }
    if (ok) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "object", "detection");
        cJSON_AddStringToObject(r, "model", s->name);
        cJSON_AddNumberToObject(r, "width", w);
        cJSON_AddNumberToObject(r, "height", h);
        cJSON *cl = cJSON_AddArrayToObject(r, "classes");
        for (int k = 0; k < K; k++) cJSON_AddItemToArray(cl, cJSON_CreateString(names[k]));
        cJSON *da = cJSON_AddArrayToObject(r, "detections");
        for (int i = 0; i < nd; i++) {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "class", names[dets[i].cls]);
            cJSON_AddNumberToObject(d, "class_index", dets[i].cls);
            /* rounded as the COCO writer rounds (scores 5, pixels 2 decimals) */
            cJSON_AddNumberToObject(d, "score", round((double)dets[i].score * 1e5) / 1e5);
            const float b4[4] = {dets[i].x0, dets[i].y0, dets[i].x1, dets[i].y1};
            cJSON *bx = cJSON_AddArrayToObject(d, "box");
            for (int k = 0; k < 4; k++) cJSON_AddItemToArray(bx, cJSON_CreateNumber(round((double)b4[k] * 100) / 100));
            cJSON_AddItemToArray(da, d);
        }
        cJSON_AddNumberToObject(r, "ms", round((tsr_time() - t0) * 1e4) / 10);
        rp->body = cJSON_PrintUnformatted(r);
        cJSON_Delete(r);
        if (rp->body) {
            rp->status = 200;
            __atomic_add_fetch(&s->requests, 1, __ATOMIC_RELAXED);
            __atomic_add_fetch(&s->boxes, nd, __ATOMIC_RELAXED);
        } else {
            tsr_serve_fail(rp, 500, NULL, "out of memory");
        }
    }
    if (rq->usage) snprintf(rq->usage->model, sizeof rq->usage->model, "%s", s->name);
    free(dets);
    free(rgb);
    free(rows);
    for (int k = 0; k < K; k++) free(names[k]);
}

const tsr_serve_endpoint tsr_ovadetr_serve_endpoint = {
    .name = "detect",
    .summary = "OVA-DETR: boxes for class names in a PNG image",
    .models = {{"ovadetr", "FILE", "OVA-DETR detector for POST /v1/detect", "models/ovadetr.safetensors", NULL}},
    .load = det_load,
    .unload = det_unload,
    .metrics = det_metrics,
    .routes = {{"POST", "/v1/detect", detect}},
    .serialize = true, /* one image at a time: each already uses every thread */
};
