/* tessera io: PNG output (and input, for tests and tools) through libpng,
 * and image grids for samples. src/io/png.c. Writes are atomic (path.tmp,
 * fsync, rename): a failed write leaves no partial file behind. */
#ifndef TESSERA_PNG_H
#define TESSERA_PNG_H

#include "tessera/core.h"

/* px: h rows of w pixels, `ch` interleaved 8-bit channels (1 grey, 3 RGB) */
tsr_status tsr_png_write(const char *path, const uint8_t *px, int w, int h, int ch);

/* Reads an 8-bit grey or RGB PNG (palette, 16-bit and alpha are converted
 * to 8-bit grey/RGB). *px is malloc'd (caller frees). A PNG wider or taller
 * than TSR_PNG_MAX_READ_SIDE is refused (TSR_ERR_ARG, "crop or tile it
 * first") before its pixels are allocated; so is one by tsr_png_decode. */
#define TSR_PNG_MAX_READ_SIDE 16384
tsr_status tsr_png_read(const char *path, uint8_t **px, int *w, int *h, int *ch);

/* The same from a PNG file's bytes in memory; `what` names the input in
 * messages ("image"). max_px > 0 refuses an image of more pixels (w*h)
 * before its pixels are allocated (TSR_ERR_ARG). */
tsr_status tsr_png_decode(const uint8_t *buf, size_t n, const char *what, int64_t max_px, uint8_t **px, int *w, int *h,
                          int *ch);
/* A PNG file's bytes in base64 (a request's JSON member, a data URL
 * header accepted as tsr_base64_decode does) -> pixels, as tsr_png_decode;
 * with rgb a grey image comes back expanded to 3 channels (*ch 3). */
tsr_status tsr_png_decode_base64(const char *b64, const char *what, int64_t max_px, bool rgb, uint8_t **px, int *w,
                                 int *h, int *ch);
/* pixels (as tsr_png_write) -> a PNG file's bytes, *out malloc'd */
tsr_status tsr_png_encode(const uint8_t *px, int w, int h, int ch, uint8_t **out, size_t *n);

/* Tiles n images (each ih x iw x ch, row-major, 8-bit) into a grid of
 * `cols` columns with `pad` pixels of value `pad_val` around and between
 * them. Returns the malloc'd canvas and its size in *gw, *gh. */
uint8_t *tsr_png_grid(const uint8_t *imgs, int n, int ih, int iw, int ch, int cols, int pad,
                      uint8_t pad_val, int *gw, int *gh);
/* libpng writes no image wider or taller than this (its user limits) */
#define TSR_PNG_MAX_SIDE 1000000
/* Whether tsr_png_grid's canvas for these sizes can be written: an error
 * naming the grid's width and height when a side is over TSR_PNG_MAX_SIDE,
 * for a caller to check before the work that makes the images. */
tsr_status tsr_png_grid_check(int64_t n, int ih, int iw, int64_t cols, int pad);

/* f32 pixels in [0,1] (clamped) -> u8 with rounding */
void tsr_png_from_unit(uint8_t *dst, const float *src, int64_t n);

#endif
