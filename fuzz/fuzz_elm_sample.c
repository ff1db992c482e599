/* libFuzzer target for the POST /v1/elm/sample request body (src/models/
 * elm/serve.c, tessera/serve_sample.h): any body gets either 200 with n
 * 28x28 greyscale PNGs (or one grid PNG) of a class in 0..10, a 4xx with a
 * one-line message and no body, or, past the 3 s deadline the target gives
 * each request, a 503. Samples with the shipped generator and the
 * tokenizer it records (found from any working directory, or the file
 * TSR_ELM_MODEL names). Build: see fuzz/README.md. */
#include "tessera/elm.h"

#include "fuzz_endpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *j = fuzz_endpoint_call_within(&tsr_elm_serve_endpoint, "TSR_ELM_MODEL", "models/elm_best.safetensors", data,
                                         size, 3.0);
    if (!j) return 0;
    fuzz_check_image_sample(j, 10);
    cJSON_Delete(j);
    return 0;
}
