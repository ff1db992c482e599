/* The two zero-shot protocols of ovadetr (docs/ovadetr.md) on the real
 * training images in ../shared/data: split "strict" holds no training image
 * whose boxes show a bus under another name (DOTA P1888, iSAID P0003 and
 * P0005: their large vehicles are school buses), no box or copy-paste chip
 * from them, and no KIT box labelled bus or minibus; everything else is the
 * same as in split "names". */
#include "testutil.h"
#include "tessera/detlabels.h"
#include "tessera/ovadetr.h"

#include <string.h>

#define DATA "../shared/data"

static int find(const tsr_ovd_train_info *in, const char *stem) {
    for (int i = 0; i < in->n_img; i++)
        if (!strcmp(in->stem[i], stem)) return i;
    return -1;
}

static int total(const tsr_ovd_train_info *in, int name) {
    int n = 0;
    for (int i = 0; i < in->n_img; i++) n += in->n_box[i][name];
    return n;
}

/* bus + minibus lines of a KIT AIS training image's label file */
static int kit_unseen(const char *stem) {
    char names[256], txt[256];
    snprintf(names, sizeof names, "%s/aerial/kit-ais-cars/aerial.names", DATA);
    snprintf(txt, sizeof txt, "%s/aerial/kit-ais-cars/%s.txt", DATA, stem);
    tsr_det_set s;
    tsr_det_set_init(&s);
    tsr_status st = tsr_det_names_read(&s, names);
    int ii = tsr_det_add_image(&s, txt, 1000, 1000);
    if (!st.code) st = tsr_yolo_read(&s, ii, 1000, 1000, txt);
    TU_CHECK(st.code == TSR_OK, "%s", st.msg);
    int bus = tsr_det_class_find(&s, "bus"), mini = tsr_det_class_find(&s, "minibus"), n = 0;
    TU_CHECK(bus >= 0 && mini >= 0, "aerial.names lacks bus or minibus");
    for (int i = 0; i < s.n_box; i++) n += s.box[i].cls == bus || s.box[i].cls == mini;
    tsr_det_set_free(&s);
    return n;
}

int main(void) {
    enum { SV = 4, LV = 5 };
    static const char *const bus_images[] = {"P1888", "P0003", "P0005"};
    tsr_ovd_train_info names, strict;
    tsr_status st = tsr_ovd_train_set(DATA, "names", &names);
    TU_CHECK(st.code == TSR_OK, "%s", st.msg);
    st = tsr_ovd_train_set(DATA, "strict", &strict);
    TU_CHECK(st.code == TSR_OK, "%s", st.msg);

    /* "names": the bus images are there, with their large vehicles */
    TU_CHECK(names.n_img == 25, "names: %d training images, expected 25", names.n_img);
    int lv_bus = 0, sv_bus = 0, chip_bus = 0;
    for (int k = 0; k < 3; k++) {
        int i = find(&names, bus_images[k]);
        TU_CHECK(i >= 0, "names: %s missing", bus_images[k]);
        if (i < 0) continue;
        lv_bus += names.n_box[i][LV], sv_bus += names.n_box[i][SV], chip_bus += names.n_chip[i];
    }
    TU_CHECK(lv_bus == 50 + 40 + 99, "names: %d large vehicles in P1888, P0003, P0005, expected 189", lv_bus);

    /* "strict": none of them, nothing of theirs, the rest unchanged */
    TU_CHECK(strict.n_img == names.n_img - 3, "strict: %d training images, expected %d", strict.n_img, names.n_img - 3);
    for (int k = 0; k < 3; k++) TU_CHECK(find(&strict, bus_images[k]) < 0, "strict: %s is in the training set", bus_images[k]);
    int p4 = find(&strict, "P0004");
    TU_CHECK(p4 >= 0 && strict.n_box[p4][LV] == 92 && strict.n_box[p4][SV] == 24,
             "strict: P0004 (trailer yard) should keep its 92 large and 24 small vehicles");
    TU_CHECK(total(&strict, LV) == total(&names, LV) - lv_bus && total(&strict, LV) == 92,
             "strict: %d large-vehicle boxes, expected only P0004's 92", total(&strict, LV));
    TU_CHECK(total(&strict, SV) == total(&names, SV) - sv_bus, "strict: small-vehicle boxes of the bus images remain");
    int chips_n = 0, chips_s = 0;
    for (int i = 0; i < names.n_img; i++) chips_n += names.n_chip[i];
    for (int i = 0; i < strict.n_img; i++) chips_s += strict.n_chip[i];
    TU_CHECK(chip_bus > 0 && chips_s == chips_n - chip_bus, "strict: %d copy-paste chips, expected %d", chips_s,
             chips_n - chip_bus);
    for (int i = 0; i < strict.n_img; i++) {
        int j = find(&names, strict.stem[i]);
        TU_CHECK(j >= 0 && !memcmp(strict.n_box[i], names.n_box[j], sizeof strict.n_box[i]) &&
                     strict.n_chip[i] == names.n_chip[j],
                 "strict: %s differs from split names", strict.stem[i]);
        /* KIT training frames: no bus or minibus in their label files */
        if (!strncmp(strict.stem[i], "MOS", 3))
            TU_CHECK(kit_unseen(strict.stem[i]) == 0, "strict: %s has bus or minibus labels", strict.stem[i]);
    }
    /* the test frames do hold them (the loader reads the same labels) */
    TU_CHECK(kit_unseen("MOS155") == 3, "MOS155 should hold 1 bus and 2 minibuses");

    tsr_ovd_train_info bad;
    st = tsr_ovd_train_set(DATA, "loose", &bad);
    TU_CHECK(st.code != TSR_OK && strstr(st.msg, "--split"), "an unknown split was accepted");
    return tu_finish("ovadetr_split");
}
