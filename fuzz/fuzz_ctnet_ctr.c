/* libFuzzer target for the POST /v1/ctr request body (src/models/ctnet/
 * serve.c): any body gets either 200 with one probability in [0,1] per
 * row, or a 4xx with a one-line message and no body. Scores with the
 * shipped model, found like every shipped default (from any working
 * directory), or the file TSR_CTNET_MODEL names. Build: see fuzz/README.md. */
#include "tessera/ctnet.h"

#include "fuzz_endpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *j = fuzz_endpoint_call(&tsr_ctnet_serve_endpoint, "TSR_CTNET_MODEL", "models/ctnet_ml_animation.safetensors",
                                  data, size);
    if (!j) return 0;
    const cJSON *p = cJSON_GetObjectItem(j, "probabilities");
    if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) < 1) __builtin_trap();
    for (const cJSON *e = p->child; e; e = e->next)
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0 && e->valuedouble <= 1)) __builtin_trap();
    cJSON_Delete(j);
    return 0;
}
