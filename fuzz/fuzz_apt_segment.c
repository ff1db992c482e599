/* libFuzzer target for the POST /v1/segment request body (src/models/apt/
 * serve.c): any body gets either 200 with a mask PNG of the image's size
 * whose pixels are 0 or 255 and mask_pixels of them 255, or a 4xx with a
 * one-line message and no body. The base64 images go through
 * tsr_base64_decode and tsr_png_decode, the mask back through
 * tsr_png_encode and tsr_base64_encode. Segments with the shipped model
 * (run from the repository root, or set TSR_APT_MODEL). Build: see
 * fuzz/README.md. */
#include "tessera/apt.h"
#include "tessera/base64.h"
#include "tessera/png.h"
#include "tessera/serve.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *g_state;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_state) {
        const char *path = getenv("TSR_APT_MODEL");
        const char *paths[TSR_SERVE_MAX_MODELS] = {path ? path : "models/apt_small.safetensors"};
        tsr_status st = tsr_apt_serve_endpoint.load(&g_state, paths, NULL);
        if (st.code) {
            fprintf(stderr, "fuzz_apt_segment: %s\n", st.msg);
            abort();
        }
    }
    char *body = malloc(size + 1);
    memcpy(body, data, size);
    body[size] = 0;
    tsr_serve_usage u;
    memset(&u, 0, sizeof u);
    tsr_serve_request rq = {.method = "POST", .path = "/v1/segment", .body = body, .body_len = size, .usage = &u};
    tsr_serve_reply rp;
    memset(&rp, 0, sizeof rp);
    tsr_apt_serve_endpoint.routes[0].handle(g_state, &rq, &rp);
    if (rp.status == 200) {
        cJSON *j = rp.body ? cJSON_Parse(rp.body) : NULL;
        const cJSON *m = cJSON_GetObjectItem(j, "mask");
        int w = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "width"));
        int h = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "height"));
        double on = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "mask_pixels"));
        if (!cJSON_IsString(m)) __builtin_trap();
        uint8_t *png = NULL, *px = NULL;
        size_t n = 0;
        int mw = 0, mh = 0, ch = 0;
        if (tsr_base64_decode(m->valuestring, strlen(m->valuestring), "mask", &png, &n).code) __builtin_trap();
        if (tsr_png_decode(png, n, "mask", 0, &px, &mw, &mh, &ch).code || mw != w || mh != h || ch != 1) __builtin_trap();
        int64_t cnt = 0;
        for (int64_t i = 0; i < (int64_t)w * h; i++) {
            if (px[i] != 0 && px[i] != 255) __builtin_trap();
            cnt += px[i] == 255;
        }
        if ((double)cnt != on) __builtin_trap();
        free(png);
        free(px);
        cJSON_Delete(j);
    } else if (rp.status < 400 || rp.status > 499 || rp.body || !rp.error[0] || strchr(rp.error, '\n')) {
        __builtin_trap();
    }
    free(rp.body);
    free(body);
    return 0;
}
