/* libFuzzer target for the POST /v1/latency request body (src/models/
 * narformer/serve.c: an ONNX file's bytes through tsr_onnx_parse, the
 * graph builder and the latency predictor): any body gets either 200 with
 * a finite latency >= 0 and the graph's figures, or a 4xx with a
 * one-line message and no body. Predicts with the shipped cpu-1t model,
 * found like every shipped default (from any working directory), or the
 * file TSR_NARFORMER_MODEL names. Seed: ../shared/data/nnlqp/
 * resnet18-v1-7-no-weight.onnx. Build: see fuzz/README.md. */
#include "tessera/narformer.h"

#include "fuzz_endpoint.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *j = fuzz_endpoint_call(&tsr_narformer_serve_endpoint, "TSR_NARFORMER_MODEL",
                                  "models/narformer-latency-cpu-1t.safetensors", data, size);
    if (!j) return 0;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "latency_ms");
    const cJSON *nt = cJSON_GetObjectItemCaseSensitive(j, "n_tokens");
    const char *f[] = {"gflops", "mparams", "gmem"};
    if (!cJSON_IsNumber(ms) || !isfinite(ms->valuedouble) || ms->valuedouble < 0) __builtin_trap();
    if (!cJSON_IsNumber(nt) || nt->valuedouble < 1) __builtin_trap();
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, f[i]);
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0) __builtin_trap();
    }
    cJSON_Delete(j);
    return 0;
}
