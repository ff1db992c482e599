/* libFuzzer target for the POST /v1/search request body (src/models/
 * higen/serve.c): any body gets either 200 with at most k results, each a
 * package of the index with its summary and a finite score, no package
 * twice, or a 4xx with a one-line message and no body. Searches with the
 * shipped Hi-Gen model directory, found like every shipped default (from
 * any working directory), or the directory TSR_HIGEN_MODEL names. Build:
 * see fuzz/README.md. */
#include "tessera/higen.h"

#include "fuzz_endpoint.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a valid beam above 64 only costs time (beam 1000: seconds in a Release build), no other code */
    cJSON *pre = cJSON_ParseWithLength((const char *)data, size);
    const cJSON *bj = pre ? cJSON_GetObjectItemCaseSensitive(pre, "beam") : NULL;
    const bool slow = cJSON_IsNumber(bj) && bj->valuedouble > 64 && bj->valuedouble <= 1000;
    cJSON_Delete(pre);
    if (slow) return 0;
    cJSON *j = fuzz_endpoint_call(&tsr_higen_serve_endpoint, "TSR_HIGEN_MODEL", "models/higen-debian", data, size);
    if (!j) return 0;
    cJSON *rq = cJSON_ParseWithLength((const char *)data, size);
    const cJSON *kj = rq ? cJSON_GetObjectItemCaseSensitive(rq, "k") : NULL;
    int k = cJSON_IsNumber(kj) ? (int)kj->valuedouble : 10;
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "results");
    if (!cJSON_IsArray(res) || cJSON_GetArraySize(res) > k) __builtin_trap();
    for (const cJSON *e = res->child; e; e = e->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id"), *s = cJSON_GetObjectItemCaseSensitive(e, "score");
        if (!cJSON_IsString(id) || !id->valuestring[0] || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "summary")))
            __builtin_trap();
        if (!cJSON_IsNumber(s) || !isfinite(s->valuedouble)) __builtin_trap();
        for (const cJSON *f = res->child; f != e; f = f->next)
            if (!strcmp(cJSON_GetObjectItemCaseSensitive(f, "id")->valuestring, id->valuestring)) __builtin_trap();
    }
    cJSON_Delete(rq);
    cJSON_Delete(j);
    return 0;
}
