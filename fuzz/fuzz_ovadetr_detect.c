/* libFuzzer target for the POST /v1/detect request body (src/models/
 * ovadetr/serve.c): any body gets either 200 with boxes inside the image
 * and scores in [0,1], or a 4xx with a one-line message and no body. The
 * base64 image goes through tsr_base64_decode and tsr_png_decode. Detects
 * with the shipped model (run from the repository root, or set
 * TSR_OVADETR_MODEL). Build: see fuzz/README.md. */
#include "tessera/ovadetr.h"
#include "tessera/serve.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *g_state;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_state) {
        const char *path = getenv("TSR_OVADETR_MODEL");
        const char *paths[TSR_SERVE_MAX_MODELS] = {path ? path : "models/ovadetr.safetensors"};
        tsr_status st = tsr_ovadetr_serve_endpoint.load(&g_state, paths, NULL);
        if (st.code) {
            fprintf(stderr, "fuzz_ovadetr_detect: %s\n", st.msg);
            abort();
        }
    }
    char *body = malloc(size + 1);
    memcpy(body, data, size);
    body[size] = 0;
    tsr_serve_usage u;
    memset(&u, 0, sizeof u);
    tsr_serve_request rq = {.method = "POST", .path = "/v1/detect", .body = body, .body_len = size, .usage = &u};
    tsr_serve_reply rp;
    memset(&rp, 0, sizeof rp);
    tsr_ovadetr_serve_endpoint.routes[0].handle(g_state, &rq, &rp);
    if (rp.status == 200) {
        cJSON *j = rp.body ? cJSON_Parse(rp.body) : NULL;
        const cJSON *d = cJSON_GetObjectItem(j, "detections");
        double w = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "width")), h = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "height"));
        if (!cJSON_IsArray(d) || !(w >= 1 && h >= 1)) __builtin_trap();
        for (const cJSON *e = d->child; e; e = e->next) {
            double s = cJSON_GetNumberValue(cJSON_GetObjectItem(e, "score"));
            const cJSON *b = cJSON_GetObjectItem(e, "box");
            if (!(s >= 0 && s <= 1) || cJSON_GetArraySize(b) != 4) __builtin_trap();
            double x0 = cJSON_GetArrayItem(b, 0)->valuedouble, y0 = cJSON_GetArrayItem(b, 1)->valuedouble;
            double x1 = cJSON_GetArrayItem(b, 2)->valuedouble, y1 = cJSON_GetArrayItem(b, 3)->valuedouble;
            if (!(x0 >= 0 && y0 >= 0 && x1 <= w && y1 <= h && x0 < x1 && y0 < y1)) __builtin_trap();
        }
        cJSON_Delete(j);
    } else if (rp.status < 400 || rp.status > 499 || rp.body || !rp.error[0] || strchr(rp.error, '\n')) {
        __builtin_trap();
    }
    free(rp.body);
    free(body);
    return 0;
}
