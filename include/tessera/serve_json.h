/* Request-member readers shared by the image endpoints of `tessera serve`
 * (APT's /v1/segment, OVA-DETR's /v1/detect). Header-only, like the helpers
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
