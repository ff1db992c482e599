/* Tests for the detection label readers (src/io/detlabels.c), the iSAID
 * mask reader (src/io/isaid.c) and the .npy reader (src/io/npy.c): the real
 * files in ../shared/data (DOTA labelTxt, KIT AIS YOLO labels, a DIOR XML,
 * iSAID masks, CLIP embeddings; counts and values checked against NumPy /
 * PIL), a COCO write/read round trip, and malformed inputs that must fail
 * with a one-line message naming the file. */
#include "testutil.h"
#include "tessera/detlabels.h"
#include "tessera/isaid.h"
#include "tessera/npy.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#define DATA "../shared/data/"

static bool have(const char *p) { return access(p, R_OK) == 0; }

static void expect_bad(tsr_status st, const char *name, const char *needle) {
    TU_CHECK(st.code != TSR_OK, "%s: accepted a malformed input", needle);
    TU_CHECK(strstr(st.msg, name) != NULL, "message does not name the input: %s", st.msg);
    TU_CHECK(strchr(st.msg, '\n') == NULL, "message spans lines: %s", st.msg);
    TU_CHECK(strstr(st.msg, needle) != NULL, "message lacks '%s': %s", needle, st.msg);
}

static void test_dota(void) {
    const char *p = DATA "dota-samples/P0706.txt";
    if (!have(p)) { fprintf(stderr, "skip: %s missing\n", p); return; }
    tsr_det_set s;
    tsr_det_set_init(&s);
    int im = tsr_det_add_image(&s, "P0706.png", 1111, 1182);
    tsr_status st = tsr_dota_read(&s, im, p);
    TU_CHECK(st.code == TSR_OK, "%s", st.msg);
    int ship = tsr_det_class_find(&s, "ship"), harbor = tsr_det_class_find(&s, "harbor");
    int nship = 0, nharbor = 0, ndiff = 0;
    for (int i = 0; i < s.n_box; i++) {
        nship += s.box[i].cls == ship, nharbor += s.box[i].cls == harbor, ndiff += s.box[i].difficult;
        TU_CHECK(s.box[i].x0 <= s.box[i].x1 && s.box[i].y0 <= s.box[i].y1, "box %d not ordered", i);
    }
    TU_CHECK(s.n_box == 536 && nship == 531 && nharbor == 5 && ndiff == 6,
             "P0706: %d boxes, %d ships, %d harbors, %d difficult (want 536/531/5/6)", s.n_box, nship, nharbor, ndiff);
    /* first object: 1054 1028 1063 1011 1111 1040 1112 1062 ship 1 */
    TU_CHECK(s.box[0].x0 == 1054 && s.box[0].y0 == 1011 && s.box[0].x1 == 1112 && s.box[0].y1 == 1062 &&
             s.box[0].difficult == 1, "P0706 first box is the hull of its corners");
    tsr_det_set_free(&s);
}

static void test_yolo(void) {
    const char *names = DATA "aerial/kit-ais-cars/aerial.names", *p = DATA "aerial/kit-ais-cars/MOS155.txt";
    if (!have(p)) { fprintf(stderr, "skip: %s missing\n", p); return; }
    tsr_det_set s;
    tsr_det_set_init(&s);
    tsr_status st = tsr_det_names_read(&s, names);
    TU_CHECK(st.code == TSR_OK && s.n_cls == 5 && !strcmp(s.names[0], "car") && !strcmp(s.names[3], "minibus"),
             "aerial.names: %d classes %s", s.n_cls, st.msg);
    int im = tsr_det_add_image(&s, "MOS155.png", 1764, 430);
    st = tsr_yolo_read(&s, im, 1764, 430, p);
    TU_CHECK(st.code == TSR_OK, "%s", st.msg);
    /* first line: 0 0.020833.. 0.637044.. 0.019259.. 0.044935.. */
    double cx = 0.020833333333333332 * 1764, w = 0.019259523809523806 * 1764;
    TU_CHECK(s.n_box == 50 && fabs(s.box[0].x0 - (cx - w / 2)) < 1e-3 && fabs(s.box[0].x1 - (cx + w / 2)) < 1e-3 &&
             s.box[0].cls == 0, "MOS155: %d boxes, first x0 %.3f", s.n_box, s.box[0].x0);
    int before = s.n_box;
    expect_bad(tsr_yolo_parse(&s, im, 100, 100, "7 0.5 0.5 0.1 0.1\n", 18, "bad.txt"), "bad.txt", "no name");
    expect_bad(tsr_yolo_parse(&s, im, 100, 100, "0 0.5 0.5 0.1\n", 14, "bad.txt"), "bad.txt", "bad.txt:1");
    expect_bad(tsr_yolo_parse(&s, im, 100, 100, "0 0.5 0.5 0.1 0.1\n0 a b c d\n", 28, "bad.txt"), "bad.txt", "bad.txt:2");
    TU_CHECK(s.n_box == before, "a failed file leaves the set as it was (%d vs %d)", s.n_box, before);
    tsr_det_set_free(&s);
}

static void test_voc(void) {
    const char *p = DATA "aerial/mmrotate-demos/dior_00001.xml";
    if (!have(p)) { fprintf(stderr, "skip: %s missing\n", p); return; }
    tsr_det_set s;
    tsr_det_set_init(&s);
    int im = tsr_det_add_image(&s, "00001.jpg", 0, 0);
    tsr_status st = tsr_voc_read(&s, im, p);
    TU_CHECK(st.code == TSR_OK && s.n_box == 1 && s.img[0].w == 800 && s.img[0].h == 800, "%s", st.msg);
    TU_CHECK(s.n_box == 1 && !strcmp(s.names[s.box[0].cls], "golffield") && s.box[0].x0 == 133 &&
             s.box[0].y0 == 237 && s.box[0].x1 == 684 && s.box[0].y1 == 672, "DIOR robndbox -> 133,237,684,672");
    const char *voc = "<annotation><object><name>car</name><difficult>1</difficult><bndbox><xmin>5</xmin>"
                      "<ymin>6</ymin><xmax>15</xmax><ymax>26</ymax></bndbox></object></annotation>";
    st = tsr_voc_parse(&s, im, voc, strlen(voc), "v.xml");
    TU_CHECK(st.code == TSR_OK && s.n_box == 2 && s.box[1].x1 == 15 && s.box[1].y1 == 26 && s.box[1].difficult == 1,
             "VOC bndbox %s", st.msg);
    const char *bad = "<annotation><object><name>car</name><bndbox><xmin>5</xmin></bndbox></object></annotation>";
    expect_bad(tsr_voc_parse(&s, im, bad, strlen(bad), "b.xml"), "b.xml", "object 1");
    expect_bad(tsr_voc_parse(&s, im, "<x/>", 4, "b.xml"), "b.xml", "annotation");
    tsr_det_set_free(&s);
}

static void test_coco_roundtrip(void) {
    tsr_det_set s, r;
    tsr_det_set_init(&s);
    tsr_det_set_init(&r);
    int a = tsr_det_add_image(&s, "a.png", 640, 480), b = tsr_det_add_image(&s, "b.png", 100, 50);
    int car = tsr_det_class(&s, "car"), ship = tsr_det_class(&s, "ship");
    tsr_det_box b1 = {10, 20, 40, 60, 0.75f, car, a, 0, 0}, b2 = {1.5f, 2.25f, 3.5f, 9, 1.f, ship, b, 0, 1};
    tsr_det_add_box(&s, &b1);
    tsr_det_add_box(&s, &b2);
    const char *path = tu_tmp("coco.json");
    tsr_status st = tsr_coco_write(&s, path, false);
    TU_CHECK(st.code == TSR_OK, "%s", st.msg);
    st = tsr_coco_read(&r, path);
    TU_CHECK(st.code == TSR_OK && r.n_img == 2 && r.n_cls == 2 && r.n_box == 2, "round trip %s", st.msg);
    if (r.n_box == 2) {
        TU_CHECK(r.box[0].x0 == 10 && r.box[0].y1 == 60 && fabsf(r.box[0].score - 0.75f) < 1e-6 &&
                 !strcmp(r.names[r.box[0].cls], "car") && r.box[0].image == 0, "box 1");
        TU_CHECK(r.box[1].x0 == 1.5f && r.box[1].y0 == 2.25f && r.box[1].x1 == 3.5f && r.box[1].iscrowd == 1 &&
                 r.box[1].image == 1 && r.img[1].w == 100 && r.box[1].score == 1.f, "box 2");
    }
    unlink(path);
    const char *bad1 = "[{\"image_id\":1}]";
    expect_bad(tsr_coco_parse(&r, bad1, strlen(bad1), "res.json"), "res.json", "results list");
    const char *bad2 = "{\"images\":[{\"id\":1}],\"categories\":[{\"id\":3,\"name\":\"x\"}],\"annotations\":[{\"image_id\":2,\"category_id\":3,\"bbox\":[0,0,1,1]}]}";
    expect_bad(tsr_coco_parse(&r, bad2, strlen(bad2), "c.json"), "c.json", "not listed");
    expect_bad(tsr_coco_parse(&r, "{", 1, "c.json"), "c.json", "JSON");
    TU_CHECK(r.n_box == 2 && r.n_img == 2, "failed parses leave the set as it was");
    tsr_det_set_free(&s);
    tsr_det_set_free(&r);
}

static void test_dota_bad(void) {
    tsr_det_set s;
    tsr_det_set_init(&s);
    int im = tsr_det_add_image(&s, NULL, 0, 0);
    const char *l = "1 2 3 4 5 6 7 8 plane 0\n1 2 3 4 5 6 7 plane\n";
    expect_bad(tsr_dota_parse(&s, im, l, strlen(l), "d.txt"), "d.txt", "d.txt:2");
    l = "1 2 3 4 5 6 7 8 plane 3\n";
    expect_bad(tsr_dota_parse(&s, im, l, strlen(l), "d.txt"), "d.txt", "d.txt:1");
    TU_CHECK(s.n_box == 0 && s.n_cls == 0, "rolled back");
    l = "1 2 3 4 5 6 7 8 small-vehicle\n";
    TU_CHECK(tsr_dota_parse(&s, im, l, strlen(l), "d.txt").code == TSR_OK && s.n_box == 1, "difficult optional");
    tsr_det_set_free(&s);
}

static void test_isaid(void) {
    const char *c = DATA "aerial/isaid/val/images/P0003_instance_color_RGB.png";
    const char *i = DATA "aerial/isaid/val/images/P0003_instance_id_RGB.png";
    if (!have(c)) { fprintf(stderr, "skip: %s missing\n", c); return; }
    TU_CHECK(tsr_isaid_class_of_rgb(0, 0, 127) == 9 && tsr_isaid_class_of_rgb(0, 127, 127) == 8 &&
             tsr_isaid_class_of_rgb(0, 100, 155) == 15 && tsr_isaid_class_of_rgb(0, 0, 0) == 0 &&
             tsr_isaid_class_of_rgb(1, 0, 0) == TSR_ISAID_IGNORE, "palette lookups");
    TU_CHECK(tsr_isaid_class_of_name("small-vehicle") == 9 && tsr_isaid_class_of_name("Storage_Tank") == 2 &&
             tsr_isaid_class_of_name("car") == -1, "names");
    for (int k = 0; k < TSR_ISAID_CLASSES; k++) {
        const uint8_t *p = tsr_isaid_palette[k];
        TU_CHECK(tsr_isaid_class_of_rgb(p[0], p[1], p[2]) == k, "palette colour %d maps back", k);
    }
    uint8_t *cls;
    int w, h;
    tsr_status st = tsr_isaid_read_classes(c, &cls, &w, &h);
    TU_CHECK(st.code == TSR_OK && w == 1147 && h == 1023, "%s", st.msg);
    if (!st.code) {
        int64_t cnt[256] = {0};
        for (int64_t k = 0; k < (int64_t)w * h; k++) cnt[cls[k]]++;
        /* PIL: (0,0,0) 1098554, (0,0,127) 11720, (0,63,63) 403, (0,127,127) 62704 */
        TU_CHECK(cnt[0] == 1098554 && cnt[9] == 11720 && cnt[2] == 403 && cnt[8] == 62704 && cnt[255] == 0,
                 "P0003 class pixel counts %lld %lld %lld %lld", (long long)cnt[0], (long long)cnt[9],
                 (long long)cnt[2], (long long)cnt[8]);
        free(cls);
    }
    tsr_isaid_instance *in;
    int n;
    st = tsr_isaid_read_boxes(c, i, &in, &n, &w, &h);
    TU_CHECK(st.code == TSR_OK && n == 59, "P0003: %d instances (want 59) %s", n, st.msg);
    int per[TSR_ISAID_CLASSES] = {0};
    for (int k = 0; k < n; k++) per[in[k].cls]++;
    TU_CHECK(per[8] == 40 && per[9] == 18 && per[2] == 1, "P0003 instances per class %d %d %d", per[8], per[9], per[2]);
    /* key 4595305: x 200..257, y 384..428, 1286 px (NumPy) */
    int f = -1;
    for (int k = 0; k < n; k++)
        if (in[k].key == 4595305u) f = k;
    TU_CHECK(f >= 0 && in[f].x0 == 200 && in[f].y0 == 384 && in[f].x1 == 257 && in[f].y1 == 428 &&
             in[f].area == 1286 && in[f].cls == 8, "instance 4595305 box");
    free(in);
    st = tsr_isaid_read_boxes(c, DATA "aerial/isaid/val/images/P0004_instance_id_RGB.png", &in, &n, &w, &h);
    expect_bad(st, "P0004_instance_id_RGB.png", "colour mask");
}

static void test_npy(void) {
    const char *p = DATA "clip-text-embeddings/coco_clip_a+cname.npy";
    if (!have(p)) { fprintf(stderr, "skip: %s missing\n", p); return; }
    tsr_npy a;
    tsr_status st = tsr_npy_read(&a, p);
    TU_CHECK(st.code == TSR_OK && a.ndim == 2 && a.shape[0] == 80 && a.shape[1] == 512, "%s", st.msg);
    if (!st.code) {
        /* NumPy: a[2,0] 0.17822265625, a[2,511] 0.02569580078125, a[79,100] 0.239990234375 */
        TU_CHECK(a.data[2 * 512] == 0.17822265625f && a.data[2 * 512 + 511] == 0.02569580078125f &&
                 a.data[79 * 512 + 100] == 0.239990234375f, "fp16 values");
        tsr_npy_free(&a);
    }
    uint8_t hdr[128] = "\x93NUMPY\x01\x00";
    const char *d = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    size_t hl = 118;
    hdr[8] = (uint8_t)hl, hdr[9] = 0;
    memset(hdr + 10, ' ', hl);
    memcpy(hdr + 10, d, strlen(d));
    hdr[10 + hl - 1] = '\n';
    uint8_t buf[128 + 24];
    memcpy(buf, hdr, 128);
    float v[6] = {1, 2, 3, 4, 5, 6};
    memcpy(buf + 128, v, sizeof v);
    st = tsr_npy_parse(&a, buf, 128 + 24, "ok.npy");
    TU_CHECK(st.code == TSR_OK && a.shape[0] == 2 && a.shape[1] == 3 && a.data[5] == 6, "f4 %s", st.msg);
    tsr_npy_free(&a);
    expect_bad(tsr_npy_parse(&a, buf, 128 + 20, "short.npy"), "short.npy", "needs 24");
    expect_bad(tsr_npy_parse(&a, buf, 5, "tiny.npy"), "tiny.npy", "magic");
    /* two 2^40 dimensions: their product wrapped to 0 elements, so the empty
     * data section matched and the shape was accepted (found by fuzz_npy) */
    const char *wrap = "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }";
    memset(buf + 10, ' ', hl);
    memcpy(buf + 10, wrap, strlen(wrap));
    expect_bad(tsr_npy_parse(&a, buf, 128, "wrap.npy"), "wrap.npy", "too large");
    memcpy(buf + 10, hdr + 10, hl);
    memcpy(buf + 10, "{'descr': '>f4'", 15);
    expect_bad(tsr_npy_parse(&a, buf, 128 + 24, "be.npy"), "be.npy", "dtype");
}

int main(void) {
    test_dota();
    test_dota_bad();
    test_yolo();
    test_voc();
    test_coco_roundtrip();
    test_isaid();
    test_npy();
    return tu_finish("detlabels");
}
