/* Request-member readers shared by the image endpoints of `tessera serve`
 * (APT's /v1/segment, OVA-DETR's /v1/detect, the samplers of
 * serve_sample.h). Header-only, like the helpers
 * in serve.h, so a family's endpoint uses them without linking the server;
 * unlike serve.h it needs cJSON and the PNG reader.
 *
 * Each returns true on success and false with the reply filled (400 naming
 * the member; 500 when out of memory). */
#ifndef TESSERA_SERVE_JSON_H
#define TESSERA_SERVE_JSON_H

#include "tessera/png.h"
#include "tessera/serve.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* An optional integer-valued number in [lo, hi] into *out; left unchanged
 * when the member is absent. */
static inline bool tsr_serve_json_int(const cJSON *j, const char *key, double lo, double hi, double *out,
                                      tsr_serve_reply *rp) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) return true;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi) {
        tsr_serve_fail(rp, 400, key, "'%s' must be an integer in [%.0f, %.0f]", key, lo, hi);
        return false;
    }
    *out = v->valuedouble;
    return true;
}

/* An optional number in [lo, hi] (lo itself excluded when lo_open) into
 * *out as a float, as a CLI float flag takes it; unchanged when absent. */
static inline bool tsr_serve_json_float(const cJSON *j, const char *key, double lo, double hi, bool lo_open, float *out,
                                        tsr_serve_reply *rp) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) return true;
    if (!cJSON_IsNumber(v) || !(lo_open ? v->valuedouble > lo : v->valuedouble >= lo) || !(v->valuedouble <= hi)) {
        tsr_serve_fail(rp, 400, key, "'%s' must be a number in %s%g, %g]", key, lo_open ? "(" : "[", lo, hi);
        return false;
    }
    *out = (float)v->valuedouble;
    return true;
}

/* An optional boolean into *out; unchanged when absent. */
static inline bool tsr_serve_json_bool(const cJSON *j, const char *key, bool *out, tsr_serve_reply *rp) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) return true;
    if (!cJSON_IsBool(v)) {
        tsr_serve_fail(rp, 400, key, "'%s' must be true or false", key);
        return false;
    }
    *out = cJSON_IsTrue(v);
    return true;
}

/* An optional string that must be one of names[0..n) into *out (its
 * index); unchanged when absent. */
static inline bool tsr_serve_json_enum(const cJSON *j, const char *key, const char *const *names, int n, int *out,
                                       tsr_serve_reply *rp) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) return true;
    for (int i = 0; cJSON_IsString(v) && i < n; i++)
        if (strcmp(v->valuestring, names[i]) == 0) {
            *out = i;
            return true;
        }
    char list[160] = "";
    for (int i = 0; i < n; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? (i + 1 < n ? ", " : " or ") : "", names[i]);
    }
    tsr_serve_fail(rp, 400, key, "'%s' must be %s", key, list);
    return false;
}

/* A required member holding a PNG file's bytes in base64 -> pixels
 * (at most max_px; rgb expands grey to RGB, as tsr_png_decode_base64). */
static inline bool tsr_serve_json_png(const cJSON *j, const char *key, int64_t max_px, bool rgb, uint8_t **px,
                                      int *w, int *h, int *ch, tsr_serve_reply *rp) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) {
        tsr_serve_fail(rp, 400, key, "'%s' (a base64 PNG) is required", key);
        return false;
    }
    if (!cJSON_IsString(v)) {
        tsr_serve_fail(rp, 400, key, "'%s' must be a string: the PNG file's bytes in base64", key);
        return false;
    }
    tsr_status st = tsr_png_decode_base64(v->valuestring, key, max_px, rgb, px, w, h, ch);
    if (st.code) {
        tsr_serve_fail(rp, st.code == TSR_ERR_NOMEM ? 500 : 400, key, "%s", st.msg);
        return false;
    }
    return true;
}

#endif
