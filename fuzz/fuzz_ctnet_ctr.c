/* libFuzzer target for the POST /v1/ctr request body (src/models/ctnet/
 * serve.c): any body gets either 200 with one probability in [0,1] per
 * row, or a 4xx with a one-line message and no body. Scores with the
 * shipped model, found like every shipped default (from any working
 * directory), or the file TSR_CTNET_MODEL names. Build: see fuzz/README.md. */
#include "tessera/ctnet.h"
#include "tessera/fileio.h"
#include "tessera/serve.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *g_state;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_state) {
        static char found[4096];
        const char *path = getenv("TSR_CTNET_MODEL");
        if (!path) path = tsr_find_model_or("models/ctnet_ml_animation.safetensors", found, sizeof found);
        const char *paths[TSR_SERVE_MAX_MODELS] = {path};
        tsr_status st = tsr_ctnet_serve_endpoint.load(&g_state, paths, NULL);
        if (st.code) {
            fprintf(stderr, "fuzz_ctnet_ctr: %s\n", st.msg);
            abort();
        }
    }
    char *body = malloc(size + 1);
    memcpy(body, data, size);
    body[size] = 0;
    tsr_serve_usage u;
    memset(&u, 0, sizeof u);
    tsr_serve_request rq = {.method = "POST", .path = "/v1/ctr", .body = body, .body_len = size, .usage = &u};
    tsr_serve_reply rp;
    memset(&rp, 0, sizeof rp);
    tsr_ctnet_serve_endpoint.routes[0].handle(g_state, &rq, &rp);
    if (rp.status == 200) {
        cJSON *j = rp.body ? cJSON_Parse(rp.body) : NULL;
        const cJSON *p = cJSON_GetObjectItem(j, "probabilities");
        if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) < 1) __builtin_trap();
        for (const cJSON *e = p->child; e; e = e->next)
            if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0 && e->valuedouble <= 1)) __builtin_trap();
        cJSON_Delete(j);
    } else if (rp.status < 400 || rp.status > 499 || rp.body || !rp.error[0] || strchr(rp.error, '\n')) {
        __builtin_trap();
    }
    free(rp.body);
    free(body);
    return 0;
}
