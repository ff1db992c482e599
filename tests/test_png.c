/* Tests for src/io/png.c: grey and RGB images written and read back
 * through libpng byte for byte (files, and in memory: tsr_png_encode /
 * tsr_png_decode give the same bytes and pixels as the file path, and
 * tsr_png_decode_base64 the same pixels, grey expanded to RGB on request), grid
 * geometry and placement, [0,1] -> u8 rounding, and failures (missing
 * directory, not a PNG, a truncated PNG in memory, an image over the pixel
 * limit) that return a status and leave no file behind. Exact comparisons
 * (lossless format). */
#include "testutil.h"
#include "tessera/base64.h"
#include "tessera/png.h"

#include <string.h>
#include <unistd.h>

static void roundtrip(int w, int h, int ch) {
    const char *path = tu_tmp("tsr_test_png.png");
    uint8_t *px = malloc((size_t)(w * h * ch));
    for (int i = 0; i < w * h * ch; i++) px[i] = (uint8_t)(i * 37 + 11);
    tsr_status st = tsr_png_write(path, px, w, h, ch);
    TU_CHECK(st.code == TSR_OK, "write %dx%dx%d: %s", w, h, ch, st.msg);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    TU_CHECK(access(tmp, F_OK) != 0, "no temp file left");
    uint8_t *back = NULL;
    int bw, bh, bc;
    st = tsr_png_read(path, &back, &bw, &bh, &bc);
    TU_CHECK(st.code == TSR_OK && bw == w && bh == h && bc == ch, "read back %dx%dx%d: %s", bw, bh, bc, st.msg);
    if (!st.code) TU_CHECK(memcmp(back, px, (size_t)(w * h * ch)) == 0, "pixels identical (%d ch)", ch);
    /* in memory: the same bytes as the file, the same pixels back */
    uint8_t *mem = NULL;
    size_t n = 0;
    st = tsr_png_encode(px, w, h, ch, &mem, &n);
    TU_CHECK(st.code == TSR_OK && n > 8, "encode %dx%dx%d: %s", w, h, ch, st.msg);
    FILE *f = fopen(path, "rb");
    uint8_t *file = malloc(n + 16);
    size_t fn = f ? fread(file, 1, n + 16, f) : 0;
    if (f) fclose(f);
    TU_CHECK(fn == n && memcmp(file, mem, n) == 0, "encoded bytes equal the written file (%zu vs %zu)", n, fn);
    uint8_t *dec = NULL;
    int dw, dh, dc;
    st = tsr_png_decode(mem, n, "img", 0, &dec, &dw, &dh, &dc);
    TU_CHECK(st.code == TSR_OK && dw == w && dh == h && dc == ch && memcmp(dec, px, (size_t)(w * h * ch)) == 0,
             "decode %dx%dx%d: %s", dw, dh, dc, st.msg);
    free(dec);
    dec = NULL;
    st = tsr_png_decode(mem, n, "img", (int64_t)w * h, &dec, &dw, &dh, &dc);
    TU_CHECK(st.code == TSR_OK, "a limit of exactly w*h passes: %s", st.msg);
    free(dec);
    dec = NULL;
    if (w * h > 1) {
        st = tsr_png_decode(mem, n, "img", (int64_t)w * h - 1, &dec, &dw, &dh, &dc);
        TU_CHECK(st.code == TSR_ERR_ARG && dec == NULL && strstr(st.msg, "img:") && strstr(st.msg, "limit"),
                 "over the pixel limit: %s", st.msg);
    }
    for (size_t cut = 0; cut < n; cut += n / 7 + 1) {
        st = tsr_png_decode(mem, cut, "img", 0, &dec, &dw, &dh, &dc);
        TU_CHECK(st.code == TSR_ERR_FORMAT && dec == NULL && strstr(st.msg, "img: not a readable PNG"),
                 "truncated at %zu of %zu: %s", cut, n, st.msg);
    }
    /* the same bytes as base64 (a request's JSON member): identical
     * pixels, and with rgb a grey image comes back as three equal channels */
    char *b64 = tsr_base64_encode(mem, n);
    for (int rgb = 0; rgb < 2; rgb++) {
        st = tsr_png_decode_base64(b64, "img", 0, rgb, &dec, &dw, &dh, &dc);
        int want = rgb && ch == 1 ? 3 : ch;
        bool same = st.code == TSR_OK && dw == w && dh == h && dc == want;
        for (int i = 0; same && i < w * h * want; i++) same = dec[i] == px[want == ch ? i : i / 3];
        TU_CHECK(same, "base64 decode %dx%dx%d rgb %d: %s", w, h, ch, rgb, st.msg);
        free(dec);
        dec = NULL;
    }
    b64[n / 3] = '*';
    st = tsr_png_decode_base64(b64, "img", 0, true, &dec, &dw, &dh, &dc);
    TU_CHECK(st.code == TSR_ERR_FORMAT && dec == NULL && strstr(st.msg, "img"), "bad base64 refused: %s", st.msg);
    free(b64);
    free(mem), free(file);
    free(back), free(px);
    remove(path);
}

int main(void) {
    roundtrip(5, 3, 1);
    roundtrip(7, 4, 3);
    roundtrip(1, 1, 1);
    roundtrip(64, 48, 3);
    /* grid: 5 images of 2x3, 3 columns, pad 1 -> (3*4+1) x (2*3+1) */
    uint8_t imgs[5 * 6];
    for (int i = 0; i < 30; i++) imgs[i] = (uint8_t)(10 * (i / 6) + i % 6);
    int gw, gh;
    uint8_t *g = tsr_png_grid(imgs, 5, 2, 3, 1, 3, 1, 255, &gw, &gh);
    TU_CHECK(gw == 13 && gh == 7, "grid size %dx%d", gw, gh);
    /* image 4 sits in row 1, column 1: top-left at (x 5, y 4) */
    TU_CHECK(g[4 * gw + 5] == 40 && g[5 * gw + 7] == 45, "grid placement");
    TU_CHECK(g[0] == 255 && g[3 * gw + 4] == 255 && g[6 * gw + 12] == 255, "padding value");
    TU_CHECK(g[4 * gw + 9] == 255, "empty sixth cell is padding");
    free(g);
    float u[5] = {-0.5f, 0.0f, 0.5f, 1.0f, 2.0f};
    uint8_t q[5];
    tsr_png_from_unit(q, u, 5);
    TU_CHECK(q[0] == 0 && q[1] == 0 && q[2] == 128 && q[3] == 255 && q[4] == 255, "unit -> u8");
    /* failures */
    uint8_t px[4] = {1, 2, 3, 4};
    tsr_status st = tsr_png_write("/nonexistent_dir_tsr/x.png", px, 2, 2, 1);
    TU_CHECK(st.code == TSR_ERR_IO && strstr(st.msg, "nonexistent_dir_tsr"), "missing dir: %s", st.msg);
    st = tsr_png_write(tu_tmp("tsr_test_png_bad.png"), px, 2, 2, 2);
    TU_CHECK(st.code == TSR_ERR_ARG, "2 channels refused");
    FILE *f = fopen(tu_tmp("tsr_test_png_bad.png"), "wb");
    fputs("not a png at all", f);
    fclose(f);
    uint8_t *back = NULL;
    int w, h, c;
    st = tsr_png_read(tu_tmp("tsr_test_png_bad.png"), &back, &w, &h, &c);
    TU_CHECK(st.code == TSR_ERR_FORMAT && back == NULL, "garbage refused: %s", st.msg);
    remove(tu_tmp("tsr_test_png_bad.png"));
    st = tsr_png_read("/tmp/tsr_no_such.png", &back, &w, &h, &c);
    TU_CHECK(st.code == TSR_ERR_IO, "missing file: %s", st.msg);
    return tu_finish("png");
}
