/* libFuzzer target for the POST /v1/segment request body (src/models/apt/
 * serve.c): any body gets either 200 with a mask PNG of the image's size
 * whose pixels are 0 or 255 and mask_pixels of them 255, or a 4xx with a
 * one-line message and no body (past a 3 s deadline, a 503). The base64
 * images go through tsr_png_decode_base64, the mask back through tsr_png_encode and
 * tsr_base64_encode. Segments with the shipped model (found from any
 * working directory, or the file TSR_APT_MODEL names). Build: see
 * fuzz/README.md. */
#include "tessera/apt.h"
#include "tessera/png.h"

#include "fuzz_endpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a valid body can hold 2 x 64 points at 10 iterations: each request gets
     * a 3 s deadline (the server's --timeout), past which a 503 is valid */
    cJSON *j = fuzz_endpoint_call_within(&tsr_apt_serve_endpoint, "TSR_APT_MODEL", "models/apt_small.safetensors", data,
                                         size, 3.0);
    if (!j) return 0;
    const cJSON *m = cJSON_GetObjectItem(j, "mask");
    int w = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "width"));
    int h = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "height"));
    double on = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "mask_pixels"));
    if (!cJSON_IsString(m)) __builtin_trap();
    uint8_t *px = NULL;
    int mw = 0, mh = 0, ch = 0;
    if (tsr_png_decode_base64(m->valuestring, "mask", 0, false, &px, &mw, &mh, &ch).code || mw != w || mh != h || ch != 1)
        __builtin_trap();
    int64_t cnt = 0;
    for (int64_t i = 0; i < (int64_t)w * h; i++) {
        if (px[i] != 0 && px[i] != 255) __builtin_trap();
        cnt += px[i] == 255;
    }
    if ((double)cnt != on) __builtin_trap();
    free(px);
    cJSON_Delete(j);
    return 0;
}
