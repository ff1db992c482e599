/* libFuzzer target for the iSAID mask decoding (src/io/isaid.c): the first
 * two bytes give a width and height (1..64), the rest RGB pixels for the
 * colour mask and then the id mask (zero-padded). Every instance must have
 * a box inside the image, a palette class and an area within its box.
 * (Reading the PNGs themselves is fuzz_png's.) */
#include "tessera/isaid.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int w = data[0] % 64 + 1, h = data[1] % 64 + 1;
    size_t np = (size_t)w * h;
    uint8_t *rgb = calloc(np * 6, 1), *cls = malloc(np);
    uint32_t *inst = malloc(np * sizeof *inst);
    memcpy(rgb, data + 2, size - 2 < np * 6 ? size - 2 : np * 6);
    tsr_isaid_classes_from_rgb(cls, rgb, (int64_t)np);
    for (size_t i = 0; i < np; i++) {
        const uint8_t *p = rgb + 3 * (np + i);
        inst[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
        if (cls[i] != TSR_ISAID_IGNORE && cls[i] >= TSR_ISAID_CLASSES) __builtin_trap();
    }
    tsr_isaid_instance *in;
    int n = tsr_isaid_instances(&in, inst, cls, w, h);
    if (n < 0) __builtin_trap();
    for (int k = 0; k < n; k++) {
        const tsr_isaid_instance *e = &in[k];
        if (e->cls < 1 || e->cls >= TSR_ISAID_CLASSES || e->x0 < 0 || e->y0 < 0 || e->x1 > w || e->y1 > h ||
            e->x0 >= e->x1 || e->y0 >= e->y1 || e->area < 1 || e->area > (int64_t)(e->x1 - e->x0) * (e->y1 - e->y0))
            __builtin_trap();
    }
    free(in), free(rgb), free(cls), free(inst);
    return 0;
}
