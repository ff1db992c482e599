/* libFuzzer target for the POST /v1/relevance request body (src/models/
 * ebrm/serve.c): any body gets either 200 with one finite score in [0,1]
 * per candidate, named as sent, and cache counters that add up, or a 4xx
 * with a one-line message and no body. Scores with the shipped EBRM model
 * and catalog, found like every shipped default (from any working
 * directory), or the model file TSR_EBRM_MODEL names. The QE cache lives
 * across inputs, as it does across a server's requests. Build: see
 * fuzz/README.md. */
#include "tessera/ebrm.h"

#include "fuzz_endpoint.h"

#include <math.h>

#define MODEL_ENV "TSR_EBRM_MODEL"
#define MODEL_DEFAULT "models/ebrm-debian/ebrm.safetensors"

/* the catalog and its BM25 index load here, not in the first input's time */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_endpoint_state(&tsr_ebrm_serve_endpoint, MODEL_ENV, MODEL_DEFAULT);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *j = fuzz_endpoint_call(&tsr_ebrm_serve_endpoint, MODEL_ENV, MODEL_DEFAULT, data, size);
    if (!j) return 0;
    /* a 200 reply answers a request that parsed: its candidates, in order */
    cJSON *rq = cJSON_ParseWithLength((const char *)data, size);
    const cJSON *cands = rq ? cJSON_GetObjectItemCaseSensitive(rq, "candidates") : NULL;
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "scores");
    if (!cJSON_IsArray(cands) || !cJSON_IsArray(sc) || cJSON_GetArraySize(sc) != cJSON_GetArraySize(cands))
        __builtin_trap();
    const cJSON *c = cands->child;
    for (const cJSON *e = sc->child; e; e = e->next, c = c->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id"), *s = cJSON_GetObjectItemCaseSensitive(e, "score");
        if (!cJSON_IsString(id) || !cJSON_IsString(c) || strcmp(id->valuestring, c->valuestring)) __builtin_trap();
        if (!cJSON_IsNumber(s) || !isfinite(s->valuedouble) || s->valuedouble < 0 || s->valuedouble > 1)
            __builtin_trap();
    }
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(j, "cache");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(ch, "hits"), *m = cJSON_GetObjectItemCaseSensitive(ch, "misses");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(ch, "hit_rate");
    if (!cJSON_IsNumber(h) || !cJSON_IsNumber(m) || !cJSON_IsNumber(r) || h->valuedouble < 0 || m->valuedouble < 0 ||
        r->valuedouble < 0 || r->valuedouble > 1)
        __builtin_trap();
    cJSON_Delete(rq);
    cJSON_Delete(j);
    return 0;
}
