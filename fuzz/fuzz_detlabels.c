/* libFuzzer target for the detection label readers (src/io/detlabels.c):
 * the first byte picks the format (names, DOTA, YOLO, VOC/DIOR XML, COCO
 * JSON), the rest is the file. A rejected file must give a one-line status
 * naming it and leave the set as it was; an accepted one must hold ordered
 * boxes that name a listed image and class, and survive a COCO write/read. */
#include "tessera/detlabels.h"

#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *buf = (const char *)data + 1, *name = "fuzz.lbl";
    size_t len = size - 1;
    tsr_det_set s;
    tsr_det_set_init(&s);
    int im = tsr_det_add_image(&s, "x.png", 0, 0);
    tsr_det_class(&s, "car");
    tsr_det_class(&s, "bus");
    int nb = s.n_box, nc = s.n_cls, ni = s.n_img;
    tsr_status st;
    switch (data[0] % 5) {
    case 0: st = tsr_det_names_parse(&s, buf, len, name); break;
    case 1: st = tsr_dota_parse(&s, im, buf, len, name); break;
    case 2: st = tsr_yolo_parse(&s, im, 640, 480, buf, len, name); break;
    case 3: st = tsr_voc_parse(&s, im, buf, len, name); break;
    default: st = tsr_coco_parse(&s, buf, len, name); break;
    }
    if (st.code != TSR_OK) {
        if (!strstr(st.msg, name) || strchr(st.msg, '\n')) __builtin_trap();
        if (s.n_box != nb || s.n_cls != nc || s.n_img != ni) __builtin_trap();
    } else {
        for (int i = 0; i < s.n_box; i++) {
            const tsr_det_box *b = &s.box[i];
            if (b->image < 0 || b->image >= s.n_img || b->cls < 0 || b->cls >= s.n_cls) __builtin_trap();
            if (!(b->x0 <= b->x1) || !(b->y0 <= b->y1)) __builtin_trap();
        }
        static char path[64];
        if (!path[0]) snprintf(path, sizeof path, "%s/tsr_fuzz_det.%d.json", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm", (int)getpid());
        if (tsr_coco_write(&s, path, true).code == TSR_OK) {
            tsr_det_set r;
            tsr_det_set_init(&r);
            tsr_status rs = tsr_coco_read(&r, path);
            if (rs.code != TSR_OK || r.n_box != s.n_box) __builtin_trap();
            tsr_det_set_free(&r);
            unlink(path);
        }
    }
    tsr_det_set_free(&s);
    return 0;
}
