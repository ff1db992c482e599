/* libFuzzer target for apt's own mask handling (src/models/apt): the bytes
 * become a small label map (first two bytes: width and height, then one
 * code per pixel, 0/1/255 by value) and an RGB image; prompts in every
 * mode, the coarse-class gate, post-processing, the coarse product and the
 * metrics must finish without a crash, give points on their class, keep
 * masks binary, and the gate must keep nothing far from the class.
 * Build: see fuzz/README.md. */
#include "tessera/apt.h"
#include "tessera/apt_eval.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    int w = 1 + data[0] % 64, h = 1 + data[1] % 64;
    int64_t n = (int64_t)w * h;
    uint8_t *lab = malloc((size_t)n), *rgb = malloc((size_t)n * 3), *m = malloc((size_t)n), *c = malloc((size_t)n);
    if (!lab || !rgb || !m || !c) return 0;
    for (int64_t i = 0; i < n; i++) {
        uint8_t b = data[2 + (size_t)i % (size - 2)];
        lab[i] = b < 100 ? 0 : b < 200 ? 1 : 255;
        for (int k = 0; k < 3; k++) rgb[3 * i + k] = (uint8_t)(b * (k + 1));
        m[i] = b & 1;
    }
    for (int mode = 0; mode < TSR_APT_MODE_COUNT; mode++) {
        tsr_apt_points p;
        tsr_status st = tsr_apt_prompts(&p, lab, rgb, h, w, mode, 1 + data[2] % 12, 1 + data[size - 1] % 4, 7);
        if (st.code == TSR_OK)
            for (int i = 0; i < p.n; i++) {
                int x = (int)p.x[i], y = (int)p.y[i];
                if (x < 0 || y < 0 || x >= w || y >= h || lab[(int64_t)y * w + x] != p.label[i]) __builtin_trap();
            }
        tsr_apt_points_free(&p);
    }
    int gd = data[size - 1] % 8;
    tsr_apt_gate(m, lab, h, w, gd);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            if (!m[(int64_t)y * w + x]) continue;
            int near = 0;
            for (int yy = y - gd; yy <= y + gd && !near; yy++)
                for (int xx = x - gd; xx <= x + gd; xx++)
                    if (yy >= 0 && yy < h && xx >= 0 && xx < w && lab[(int64_t)yy * w + xx] == 1) near = 1;
            if (!near) __builtin_trap();
        }
    tsr_apt_postprocess(m, h, w, 1 + data[2] % 50);
    for (int64_t i = 0; i < n; i++)
        if (m[i] > 1) __builtin_trap();
    tsr_apt_coarse_product(c, lab, h, w, 2 + data[1] % 20, 0.3f, 1);
    tsr_apt_conf conf = {0};
    tsr_apt_conf_add(&conf, m, lab, n);
    tsr_apt_metrics mt = tsr_apt_metrics_of(&conf);
    if (!(mt.iou >= 0 && mt.iou <= 1 && mt.f1 >= 0 && mt.f1 <= 1)) __builtin_trap();
    free(lab);
    free(rgb);
    free(m);
    free(c);
    return 0;
}
