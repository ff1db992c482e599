/* libFuzzer target for the POST /v1/detect request body (src/models/
 * ovadetr/serve.c): any body gets either 200 with boxes inside the image
 * and scores in [0,1], or a 4xx with a one-line message and no body. The
 * base64 image goes through tsr_png_decode_base64. Detects with the shipped
 * model (found from any working directory, or the file TSR_OVADETR_MODEL
 * names). An input of odd size gets a 0.2 s deadline (the server's
 * --timeout), so that the path that stops between tiles and answers 503
 * (valid only once the deadline has passed) is fuzzed as well as the
 * full detection. Build: see fuzz/README.md. */
#include "tessera/ovadetr.h"

#include "fuzz_endpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *j = fuzz_endpoint_call_within(&tsr_ovadetr_serve_endpoint, "TSR_OVADETR_MODEL", "models/ovadetr.safetensors",
                                         data, size, size % 2 ? 0.2 : 0);
    if (!j) return 0;
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
    return 0;
}
