/* tessera io: PNG write/read through libpng and image grids, for the image
 * families' samples and reconstructions. Writes go to path.tmp, fsync,
 * rename; libpng's longjmp error path is contained in one function each. */
#include "tessera/png.h"

#include "tessera/base64.h"
#include "tessera/fileio.h"

#include <errno.h>
#include <png.h>
#include <string.h>
#include <unistd.h>

/* libpng prints errors to stderr by default; only src/cli may print, so
 * errors just unwind to the setjmp and warnings are dropped */
static void png_err_quiet(png_structp ps, png_const_charp msg) {
    (void)msg;
    png_longjmp(ps, 1);
}
static void png_warn_quiet(png_structp ps, png_const_charp msg) { (void)ps, (void)msg; }

static tsr_status write_rows(FILE *f, const uint8_t *px, int w, int h, int ch) {
    png_structp ps = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_err_quiet, png_warn_quiet);
    if (!ps) return tsr_errorf(TSR_ERR_NOMEM, "png: out of memory");
    png_infop pi = png_create_info_struct(ps);
    png_bytep *rows = NULL;
    if (!pi || setjmp(png_jmpbuf(ps))) {
        png_destroy_write_struct(&ps, &pi);
        free(rows);
        return tsr_errorf(TSR_ERR_IO, "png: libpng write failed");
    }
    png_init_io(ps, f);
    png_set_IHDR(ps, pi, (png_uint_32)w, (png_uint_32)h, 8,
                 ch == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    rows = malloc(sizeof(png_bytep) * (size_t)h);
    if (!rows) png_error(ps, "oom");
    for (int r = 0; r < h; r++) rows[r] = (png_bytep)(px + (size_t)r * (size_t)w * (size_t)ch);
    png_set_rows(ps, pi, rows);
    png_write_png(ps, pi, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&ps, &pi);
    free(rows);
    return tsr_ok();
}

tsr_status tsr_png_write(const char *path, const uint8_t *px, int w, int h, int ch) {
    if (w < 1 || h < 1 || w > (1 << 20) || h > (1 << 20) || (ch != 1 && ch != 3))
        return tsr_errorf(TSR_ERR_ARG, "%s: cannot write a %dx%d PNG with %d channels", path, w,
                          h, ch);
    tsr_atomic_file af;
    tsr_status st = tsr_atomic_open(&af, path);
    if (st.code) return st;
    st = write_rows(af.f, px, w, h, ch);
    tsr_status cs = tsr_atomic_commit(&af, !st.code);
    if (!st.code) st = cs;
    if (st.code) {
        if (st.msg[0] == 'p') /* the libpng message names no file */
            return tsr_errorf(st.code, "%s: %s", path, st.msg);
    }
    return st;
}

/* an in-memory PNG file being read */
typedef struct {
    const uint8_t *p;
    size_t n, off;
} mem_src;

static void mem_read(png_structp ps, png_bytep out, png_size_t len) {
    mem_src *m = png_get_io_ptr(ps);
    if (len > m->n - m->off) png_error(ps, "truncated");
    memcpy(out, m->p + m->off, len);
    m->off += len;
}

/* from a FILE (f) or memory (m); max_px > 0 bounds w*h before any pixel
 * buffer is allocated */
static tsr_status read_rows(FILE *f, mem_src *m, const char *path, int64_t max_px, uint8_t **out, int *w, int *h,
                            int *ch) {
    png_structp ps = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, png_err_quiet, png_warn_quiet);
    if (!ps) return tsr_errorf(TSR_ERR_NOMEM, "png: out of memory");
    png_infop pi = png_create_info_struct(ps);
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    volatile int64_t too_big = 0;
    volatile uint32_t big_w = 0, big_h = 0;
    if (!pi || setjmp(png_jmpbuf(ps))) {
        png_destroy_read_struct(&ps, &pi, NULL);
        free(px);
        free(rows);
        if (big_w)
            return tsr_errorf(TSR_ERR_ARG, "%s: %u x %u pixels, more than %d on a side: crop or tile it first", path,
                              (unsigned)big_w, (unsigned)big_h, TSR_PNG_MAX_READ_SIDE);
        if (too_big) return tsr_errorf(TSR_ERR_ARG, "%s: %lld pixels, more than the limit of %lld", path, (long long)too_big,
                                       (long long)max_px);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not a readable PNG", path);
    }
    if (m) png_set_read_fn(ps, m, mem_read);
    else png_init_io(ps, f);
    /* libpng's own limit would fail as "not a readable PNG"; the IHDR is
     * checked here instead, before any pixel buffer, so the error says why */
    png_set_user_limits(ps, 0x7fffffff, 0x7fffffff);
    png_read_info(ps, pi);
    if (png_get_image_width(ps, pi) > TSR_PNG_MAX_READ_SIDE || png_get_image_height(ps, pi) > TSR_PNG_MAX_READ_SIDE) {
        big_w = png_get_image_width(ps, pi);
        big_h = png_get_image_height(ps, pi);
        png_error(ps, "side");
    }
    int ct = png_get_color_type(ps, pi), bd = png_get_bit_depth(ps, pi);
    if (bd == 16) png_set_strip_16(ps);
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(ps);
    if (ct == PNG_COLOR_TYPE_GRAY && bd < 8) png_set_expand_gray_1_2_4_to_8(ps);
    if (ct & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(ps);
    png_read_update_info(ps, pi);
    int W = (int)png_get_image_width(ps, pi), H = (int)png_get_image_height(ps, pi);
    int C = png_get_channels(ps, pi);
    if (C != 1 && C != 3) png_error(ps, "channels");
    if (max_px > 0 && (int64_t)W * H > max_px) {
        too_big = (int64_t)W * H;
        png_error(ps, "size");
    }
    px = malloc((size_t)W * (size_t)H * (size_t)C);
    rows = malloc(sizeof(png_bytep) * (size_t)H);
    if (!px || !rows) png_error(ps, "oom");
    for (int r = 0; r < H; r++) rows[r] = px + (size_t)r * (size_t)W * (size_t)C;
    png_read_image(ps, rows);
    png_read_end(ps, NULL);
    png_destroy_read_struct(&ps, &pi, NULL);
    free(rows);
    *out = px, *w = W, *h = H, *ch = C;
    return tsr_ok();
}

tsr_status tsr_png_read(const char *path, uint8_t **px, int *w, int *h, int *ch) {
    *px = NULL;
    tsr_status chk = tsr_input_check(path);
    if (chk.code) return chk;
    FILE *f = fopen(path, "rb");
    if (!f) return tsr_errorf(TSR_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    tsr_status st = read_rows(f, NULL, path, 0, px, w, h, ch);
    fclose(f);
    return st;
}

tsr_status tsr_png_decode(const uint8_t *buf, size_t n, const char *what, int64_t max_px, uint8_t **px, int *w, int *h,
                          int *ch) {
    *px = NULL;
    mem_src m = {buf, n, 0};
    return read_rows(NULL, &m, what, max_px, px, w, h, ch);
}

/* a growing in-memory PNG file being written */
typedef struct {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} mem_dst;

static void mem_write(png_structp ps, png_bytep in, png_size_t len) {
    mem_dst *d = png_get_io_ptr(ps);
    if (d->n + len > d->cap) {
        size_t cap = (d->n + len) * 2 + 1024;
        uint8_t *t = realloc(d->p, cap);
        if (!t) {
            d->oom = true;
            png_error(ps, "oom");
        }
        d->p = t;
        d->cap = cap;
    }
    memcpy(d->p + d->n, in, len);
    d->n += len;
}

static void mem_flush(png_structp ps) { (void)ps; }

tsr_status tsr_png_encode(const uint8_t *px, int w, int h, int ch, uint8_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (w < 1 || h < 1 || w > (1 << 20) || h > (1 << 20) || (ch != 1 && ch != 3))
        return tsr_errorf(TSR_ERR_ARG, "png: cannot encode a %dx%d image with %d channels", w, h, ch);
    png_structp ps = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_err_quiet, png_warn_quiet);
    if (!ps) return tsr_errorf(TSR_ERR_NOMEM, "png: out of memory");
    png_infop pi = png_create_info_struct(ps);
    png_bytep *volatile rows = NULL;
    mem_dst d = {0};
    if (!pi || setjmp(png_jmpbuf(ps))) {
        png_destroy_write_struct(&ps, &pi);
        free(rows);
        free(d.p);
        return tsr_errorf(TSR_ERR_NOMEM, "png: out of memory");
    }
    png_set_write_fn(ps, &d, mem_write, mem_flush);
    png_set_IHDR(ps, pi, (png_uint_32)w, (png_uint_32)h, 8, ch == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    rows = malloc(sizeof(png_bytep) * (size_t)h);
    if (!rows) png_error(ps, "oom");
    for (int r = 0; r < h; r++) rows[r] = (png_bytep)(px + (size_t)r * (size_t)w * (size_t)ch);
    png_set_rows(ps, pi, rows);
    png_write_png(ps, pi, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&ps, &pi);
    free(rows);
    *out = d.p;
    *n = d.n;
    return tsr_ok();
}

tsr_status tsr_png_grid_check(int64_t n, int ih, int iw, int64_t cols, int pad) {
    if (cols > n) cols = n;
    if (cols < 1) cols = 1;
    const int64_t rows = (n + cols - 1) / cols;
    const int64_t W = cols * (iw + pad) + pad, H = rows * (ih + pad) + pad;
    if (W > TSR_PNG_MAX_SIDE || H > TSR_PNG_MAX_SIDE)
        return tsr_errorf(TSR_ERR_ARG, "a grid of %lld images in %lld columns is %lld x %lld pixels; a PNG side holds "
                          "at most %d", (long long)n, (long long)cols, (long long)W, (long long)H, TSR_PNG_MAX_SIDE);
    return tsr_ok();
}

uint8_t *tsr_png_grid(const uint8_t *imgs, int n, int ih, int iw, int ch, int cols, int pad,
                      uint8_t pad_val, int *gw, int *gh) {
    TSR_ASSERT(n >= 1 && ih >= 1 && iw >= 1 && ch >= 1 && cols >= 1 && pad >= 0);
    if (cols > n) cols = n;
    const int rows = (n + cols - 1) / cols;
    const int W = cols * (iw + pad) + pad, H = rows * (ih + pad) + pad;
    uint8_t *g = malloc((size_t)W * (size_t)H * (size_t)ch);
    TSR_ASSERT(g);
    memset(g, pad_val, (size_t)W * (size_t)H * (size_t)ch);
    for (int i = 0; i < n; i++) {
        const int x0 = pad + (i % cols) * (iw + pad), y0 = pad + (i / cols) * (ih + pad);
        for (int r = 0; r < ih; r++)
            memcpy(g + ((size_t)(y0 + r) * (size_t)W + (size_t)x0) * (size_t)ch,
                   imgs + ((size_t)i * (size_t)ih + (size_t)r) * (size_t)iw * (size_t)ch,
                   (size_t)iw * (size_t)ch);
    }
    *gw = W, *gh = H;
    return g;
}

void tsr_png_from_unit(uint8_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = src[i];
        v = v != v ? 0.0f : v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        dst[i] = (uint8_t)(v * 255.0f + 0.5f);
    }
}

tsr_status tsr_png_decode_base64(const char *b64, const char *what, int64_t max_px, bool rgb, uint8_t **px, int *w,
                                 int *h, int *ch) {
    *px = NULL;
    uint8_t *png = NULL;
    size_t n = 0;
    tsr_status st = tsr_base64_decode(b64, strlen(b64), what, &png, &n);
    if (!st.code) st = tsr_png_decode(png, n, what, max_px, px, w, h, ch);
    free(png);
    if (st.code || !rgb || *ch != 1) return st;
    uint8_t *c3 = malloc((size_t)*w * (size_t)*h * 3);
    if (!c3) {
        free(*px), *px = NULL;
        return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", what);
    }
    for (int64_t i = 0; i < (int64_t)*w * *h; i++) c3[3 * i] = c3[3 * i + 1] = c3[3 * i + 2] = (*px)[i];
    free(*px);
    *px = c3, *ch = 3;
    return tsr_ok();
}
