/* libFuzzer target for the POST /v1/bigr/sample request body (src/models/
 * bigr/serve.c, tessera/serve_sample.h): any body gets either 200 with n
 * 28x28 greyscale PNGs (or one grid PNG) of a class in 0..9, a 4xx with a
 * one-line message and no body, or, past the 3 s deadline the target gives
 * each request (a body may ask for 64 images of 49 iterations), a 503.
 * Samples with the shipped model and tokenizer (found from any working
 * directory, or the file TSR_BIGR_MODEL names). Build: see fuzz/README.md. */
#include "tessera/bigr.h"

#include "fuzz_endpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *j = fuzz_endpoint_call_within(&tsr_bigr_serve_endpoint, "TSR_BIGR_MODEL", "models/bigr_fmnist.safetensors",
                                         data, size, 3.0);
    if (!j) return 0;
    fuzz_check_image_sample(j, 9);
    cJSON_Delete(j);
    return 0;
}
