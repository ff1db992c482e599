/* What the class-conditional image samplers of `tessera serve` share
 * (BiGR's POST /v1/bigr/sample, ELM's POST /v1/elm/sample): the request
 * members every sampler takes and the reply. Header-only, like
 * serve_json.h, so a family's endpoint uses it without linking the server.
 *
 *   request: {"class": 0..9 | a Fashion-MNIST class name (any case),
 *             "n": 1..64 (1), "seed": 0..2^53-1 (1), "grid": bool (false),
 *             ... the family's sampling options}
 *   reply:   {"object": "image.sample", "model", "class", "class_name", "n",
 *             "seed", "ms", "images": [base64 PNG, 28x28 grey, one per sample]}
 *            or, with "grid": true, "grid": base64 PNG in place of "images":
 *            the n samples in one row, tiled and padded as the CLI's
 *            `sample` verb writes them (the same bytes for the same
 *            class, n, seed and options). */
#ifndef TESSERA_SERVE_SAMPLE_H
#define TESSERA_SERVE_SAMPLE_H

#include "tessera/base64.h"
#include "tessera/data.h"
#include "tessera/png.h"
#include "tessera/serve.h"
#include "tessera/serve_json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#define TSR_SERVE_SAMPLE_MAX_N 64

typedef struct {
    int klass;
    const char *class_name;
    int n;
    uint64_t seed;
    bool grid;
} tsr_serve_sample_req;

/* Parses rq's body: a JSON object whose members are class, n, seed, grid or
 * one of the family's `fields` (NULL-terminated; the caller reads those).
 * Classes are 0..max_class; extra_class names class max_class when it is
 * not a Fashion-MNIST class (ELM's unconditional 10), else NULL. Returns
 * the parsed object (the caller deletes it) or NULL with the reply filled
 * (400 naming the field). */
static inline cJSON *tsr_serve_sample_parse(const tsr_serve_request *rq, const char *const *fields, int max_class,
                                            const char *extra_class, tsr_serve_sample_req *r, tsr_serve_reply *rp) {
    static const char *const common[] = {"class", "n", "seed", "grid", NULL};
    cJSON *j = cJSON_ParseWithLength(rq->body, rq->body_len);
    if (!cJSON_IsObject(j)) {
        tsr_serve_fail(rp, 400, NULL, "the body must be a JSON object with 'class' (and n, seed, grid, sampling options)");
        cJSON_Delete(j);
        return NULL;
    }
    for (const cJSON *e = j->child; e; e = e->next) {
        bool ok = false;
        for (int k = 0; common[k] && !ok; k++) ok = strcmp(e->string, common[k]) == 0;
        for (int k = 0; fields[k] && !ok; k++) ok = strcmp(e->string, fields[k]) == 0;
        if (!ok) {
            char name[61], list[320] = "class, n, seed, grid";
            tsr_serve_printable(name, sizeof name, e->string);
            for (int k = 0; fields[k]; k++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, ", %s", fields[k]);
            }
            tsr_serve_fail(rp, 400, e->string, "unknown field '%s' (fields: %s)", name, list);
            cJSON_Delete(j);
            return NULL;
        }
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "class");
    r->klass = -1;
    if (!c) {
        tsr_serve_fail(rp, 400, "class", "'class' (0..%d or a Fashion-MNIST class name such as 'sneaker') is required",
                       max_class);
    } else if (cJSON_IsNumber(c)) {
        if (c->valuedouble == floor(c->valuedouble) && c->valuedouble >= 0 && c->valuedouble <= max_class)
            r->klass = (int)c->valuedouble;
        else tsr_serve_fail(rp, 400, "class", "'class' must be an integer in [0, %d] or a class name", max_class);
    } else if (cJSON_IsString(c)) {
        r->klass = tsr_fmnist_class_find(c->valuestring);
        if (r->klass < 0 && extra_class && strcasecmp(c->valuestring, extra_class) == 0) r->klass = max_class;
        if (r->klass < 0 || r->klass > max_class) {
            char shown[41], names[160] = "";
            tsr_serve_printable(shown, sizeof shown, c->valuestring);
            for (int k = 0; k < 10; k++) {
                size_t l = strlen(names);
                snprintf(names + l, sizeof names - l, "%s%s", k ? ", " : "", tsr_fmnist_class_name(k));
            }
            tsr_serve_fail(rp, 400, "class", "unknown class '%s' (%s%s%s; any case)", shown, names,
                           extra_class ? ", " : "", extra_class ? extra_class : "");
            r->klass = -1;
        }
    } else {
        tsr_serve_fail(rp, 400, "class", "'class' must be an integer in [0, %d] or a class name", max_class);
    }
    double n = 1, seed = 1;
    r->grid = false;
    if (r->klass < 0 || !tsr_serve_json_int(j, "n", 1, TSR_SERVE_SAMPLE_MAX_N, &n, rp) ||
        !tsr_serve_json_int(j, "seed", 0, 9007199254740991.0, &seed, rp) || !tsr_serve_json_bool(j, "grid", &r->grid, rp)) {
        cJSON_Delete(j);
        return NULL;
    }
    r->n = (int)n;
    r->seed = (uint64_t)seed;
    r->class_name = r->klass < 10 ? tsr_fmnist_class_name(r->klass) : extra_class;
    return j;
}

/* The request's deadline (the server's --timeout) has passed: 503, as a
 * completion past --timeout gets. Checked before sampling (a request may
 * have waited behind others on a serialized endpoint) and after it (the
 * samplers stop early at rq->deadline, leaving unfinished codes that must
 * not be decoded); deadline 0: none. True when late (the reply filled). */
static inline bool tsr_serve_sample_late(const tsr_serve_request *rq, tsr_serve_reply *rp) {
    if (!(rq->deadline > 0 && tsr_time() > rq->deadline)) return false;
    tsr_serve_fail(rp, 503, NULL, "the request ran past the server's --timeout; ask for fewer samples or fewer steps");
    return true;
}

/* A PNG of px (w x h grey) as base64, malloc'd; NULL when out of memory */
static inline char *tsr_serve_png_base64(const uint8_t *px, int w, int h) {
    uint8_t *png = NULL;
    size_t n = 0;
    tsr_status st = tsr_png_encode(px, w, h, 1, &png, &n);
    char *b64 = st.code ? NULL : tsr_base64_encode(png, n);
    free(png);
    return b64;
}

/* The image.sample reply for r's n samples img (n x 28 x 28 f32 in [0,1],
 * as the family's decoder gives them): pad is the padding value of the
 * family's CLI grid (tsr_png_grid), t0 the handler's start (tsr_time). */
static inline void tsr_serve_sample_reply(const tsr_serve_sample_req *r, const char *model, const float *img, uint8_t pad,
                                          double t0, tsr_serve_reply *rp) {
    uint8_t *u = malloc((size_t)r->n * 784);
    cJSON *o = u ? cJSON_CreateObject() : NULL;
    bool ok = o != NULL;
    if (ok) {
        tsr_png_from_unit(u, img, (int64_t)r->n * 784);
        cJSON_AddStringToObject(o, "object", "image.sample");
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddNumberToObject(o, "class", r->klass);
        cJSON_AddStringToObject(o, "class_name", r->class_name);
        cJSON_AddNumberToObject(o, "n", r->n);
        cJSON_AddNumberToObject(o, "seed", (double)r->seed);
        ok = cJSON_AddNumberToObject(o, "ms", 0) != NULL; /* set below */
    }
    if (ok && r->grid) {
        int gw, gh;
        uint8_t *g = tsr_png_grid(u, r->n, 28, 28, 1, r->n, 2, pad, &gw, &gh);
        char *b64 = g ? tsr_serve_png_base64(g, gw, gh) : NULL;
        ok = b64 && cJSON_AddStringToObject(o, "grid", b64);
        free(b64);
        free(g);
    } else if (ok) {
        cJSON *a = cJSON_AddArrayToObject(o, "images");
        for (int i = 0; ok && i < r->n; i++) {
            char *b64 = tsr_serve_png_base64(u + (size_t)i * 784, 28, 28);
            cJSON *s = b64 ? cJSON_CreateString(b64) : NULL;
            ok = a && s && cJSON_AddItemToArray(a, s);
            free(b64);
        }
    }
    if (ok) {
        cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "ms"), round((tsr_time() - t0) * 1e4) / 10);
        rp->body = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(o);
    free(u);
    if (rp->body) rp->status = 200;
    else tsr_serve_fail(rp, 500, NULL, "out of memory");
}

#endif
