/* Shared harness of the libFuzzer targets that drive one family endpoint
 * of `tessera serve` (fuzz_ctnet_ctr, fuzz_ovadetr_detect, fuzz_apt_segment,
 * fuzz_ebrm_relevance, fuzz_higen_search, fuzz_narformer_latency,
 * fuzz_bigr_sample, fuzz_elm_sample): the
 * endpoint loads its model once (the file the environment variable `env`
 * names, else the shipped default found as every shipped default is, from
 * any working directory; further models the endpoint declares, such as
 * EBRM's catalog, from their shipped defaults), each input goes through
 * the first route's handler as a request body, and a reply that is not 200
 * must be a 4xx with a one-line message and no body. The target checks a
 * 200 reply's JSON itself. */
#ifndef TSR_FUZZ_ENDPOINT_H
#define TSR_FUZZ_ENDPOINT_H

#include "tessera/fileio.h"
#include "tessera/png.h"
#include "tessera/serve.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The endpoint's state, loaded on the first call (a target whose model
 * loads slowly calls this from LLVMFuzzerInitialize, outside the per-input
 * timeout). */
static void *fuzz_endpoint_state(const tsr_serve_endpoint *ep, const char *env, const char *dflt) {
    static void *state;
    static bool loaded;
    if (!loaded) {
        /* the first model: env, else dflt; the endpoint's other models: their shipped defaults */
        static char found[TSR_SERVE_MAX_MODELS][4096];
        const char *paths[TSR_SERVE_MAX_MODELS] = {getenv(env)};
        if (!paths[0]) paths[0] = tsr_find_model_or(dflt, found[0], sizeof found[0]);
        for (int i = 1; i < TSR_SERVE_MAX_MODELS && ep->models[i].flag; i++)
            if (ep->models[i].default_path)
                paths[i] = tsr_find_model_or(ep->models[i].default_path, found[i], sizeof found[i]);
        tsr_status st = ep->load(&state, paths, NULL);
        if (st.code) {
            fprintf(stderr, "%s: %s\n", ep->routes[0].path, st.msg);
            abort();
        }
        loaded = true;
    }
    return state;
}

/* One body through ep's first route, with the request's deadline
 * deadline_s seconds away (0: none) for an endpoint whose work per body
 * can outlast libFuzzer's -timeout (the image samplers): a 503 with a
 * one-line message is then a valid reply too, but only once the deadline
 * has passed. Returns the parsed 200 reply (the caller deletes it) or NULL
 * after a valid error reply. */
static cJSON *fuzz_endpoint_call_within(const tsr_serve_endpoint *ep, const char *env, const char *dflt,
                                        const uint8_t *data, size_t size, double deadline_s) {
    void *state = fuzz_endpoint_state(ep, env, dflt);
    char *body = malloc(size + 1);
    memcpy(body, data, size);
    body[size] = 0;
    tsr_serve_usage u;
    memset(&u, 0, sizeof u);
    tsr_serve_request rq = {.method = "POST", .path = ep->routes[0].path, .body = body, .body_len = size, .usage = &u,
                            .deadline = deadline_s > 0 ? tsr_time() + deadline_s : 0};
    tsr_serve_reply rp;
    memset(&rp, 0, sizeof rp);
    ep->routes[0].handle(state, &rq, &rp);
    cJSON *j = NULL;
    if (rp.status == 200) {
        j = rp.body ? cJSON_Parse(rp.body) : NULL;
        if (!j) __builtin_trap();
    } else if (rp.status == 503 && rq.deadline > 0) {
        if (tsr_time() <= rq.deadline || rp.body || !rp.error[0] || strchr(rp.error, '\n')) __builtin_trap();
    } else if (rp.status < 400 || rp.status > 499 || rp.body || !rp.error[0] || strchr(rp.error, '\n')) {
        __builtin_trap();
    }
    free(rp.body);
    free(body);
    return j;
}

static inline cJSON *fuzz_endpoint_call(const tsr_serve_endpoint *ep, const char *env, const char *dflt, const uint8_t *data,
                                 size_t size) {
    return fuzz_endpoint_call_within(ep, env, dflt, data, size, 0);
}

/* The image samplers' 200 reply (tessera/serve_sample.h): its class in
 * 0..max_class, n in 1..64, and either n base64 PNGs of 28x28 grey or one
 * grid PNG of the n samples in a padded row. */
static inline void fuzz_check_image_sample(const cJSON *j, int max_class) {
    double c = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "class")), n = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "n"));
    const cJSON *imgs = cJSON_GetObjectItem(j, "images"), *grid = cJSON_GetObjectItem(j, "grid");
    const char *obj = cJSON_GetStringValue(cJSON_GetObjectItem(j, "object"));
    if (!obj || strcmp(obj, "image.sample") != 0 || !(c >= 0 && c <= max_class) ||
        !cJSON_IsString(cJSON_GetObjectItem(j, "class_name")) || !(n >= 1 && n <= 64) || !imgs == !grid)
        __builtin_trap();
    int k = 0;
    for (const cJSON *e = grid ? grid : imgs->child; e; e = grid ? NULL : e->next, k++) {
        uint8_t *px = NULL;
        int w = 0, h = 0, ch = 0;
        if (!cJSON_IsString(e) || tsr_png_decode_base64(e->valuestring, "sample", 0, false, &px, &w, &h, &ch).code || ch != 1 ||
            (grid ? w != 30 * (int)n + 2 || h != 32 : w != 28 || h != 28))
            __builtin_trap();
        free(px);
    }
    if (k != (grid ? 1 : (int)n)) __builtin_trap();
}

#endif
