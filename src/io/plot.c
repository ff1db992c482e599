/* tessera io: line charts as PNG with a built-in 5x7 pixel font (see
 * include/tessera/plot.h). Used for results per period (ctnet) and any
 * other small chart a family documents; no plotting library needed. */
#include "tessera/plot.h"

#include "tessera/png.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char FONT_CHARS[] = "%()+,-./0123456789:=>ABCDEFGHIJKLMNOPQRSTUVWXYZ_";
static const uint8_t FONT[][7] = {
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, /* % */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, /* ( */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, /* ) */
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00}, /* + */
    {0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08}, /* , */
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00}, /* - */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c}, /* . */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}, /* / */
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}, /* 0 */
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* 1 */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}, /* 2 */
    {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e}, /* 3 */
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}, /* 4 */
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e}, /* 5 */
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}, /* 6 */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, /* 7 */
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}, /* 8 */
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c}, /* 9 */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00}, /* : */
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00}, /* = */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}, /* > */
    {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, /* A */
    {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e}, /* B */
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e}, /* C */
    {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c}, /* D */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f}, /* E */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10}, /* F */
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f}, /* G */
    {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, /* H */
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* I */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}, /* J */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, /* K */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f}, /* L */
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11}, /* M */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}, /* N */
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, /* O */
    {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10}, /* P */
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d}, /* Q */
    {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11}, /* R */
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e}, /* S */
    {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* T */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, /* U */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04}, /* V */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a}, /* W */
    {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11}, /* X */
    {0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04}, /* Y */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f}, /* Z */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f}, /* _ */
};

typedef struct {
    uint8_t *px;
    int w, h;
} canvas;

static void put(canvas *c, int x, int y, const uint8_t *rgb) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    memcpy(c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3, rgb, 3);
}

static void rect(canvas *c, int x0, int y0, int x1, int y1, const uint8_t *rgb) {
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) put(c, x, y, rgb);
}

/* a line of width t (square brush) */
static void line(canvas *c, int x0, int y0, int x1, int y1, int t, const uint8_t *rgb) {
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1, err = dx + dy;
    for (;;) {
        rect(c, x0 - t / 2, y0 - t / 2, x0 + (t - 1) / 2, y0 + (t - 1) / 2, rgb);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

/* text at (x, y) top-left, glyphs scaled by s; vertical: rotated 90 degrees
 * counter-clockwise (reads bottom to top from (x, y)) */
static void text(canvas *c, int x, int y, const char *str, int s, bool vertical, const uint8_t *rgb) {
    for (int i = 0; str[i]; i++) {
        const char *p = strchr(FONT_CHARS, toupper((unsigned char)str[i]));
        if (p && str[i]) {
            const uint8_t *g = FONT[p - FONT_CHARS];
            for (int r = 0; r < 7; r++)
                for (int col = 0; col < 5; col++)
                    if (g[r] >> (4 - col) & 1) {
                        int gx = vertical ? x + r * s : x + (i * 6 + col) * s;
                        int gy = vertical ? y - (i * 6 + col) * s : y + r * s;
                        rect(c, gx, gy, gx + s - 1, gy + s - 1, rgb);
                    }
        }
    }
}

static int text_w(const char *s, int scale) { return (int)strlen(s) * 6 * scale; }

static const uint8_t PALETTE[][3] = {
    {214, 39, 40}, {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {148, 103, 189},
    {140, 86, 75}, {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
};

tsr_status tsr_plot_lines(const char *path, const char *title, const char *xlabel, const char *ylabel,
                          const double *x, int n, const tsr_plot_series *s, int ns, int w, int h) {
    if (w < 320 || h < 200 || w > 8192 || h > 8192 || n < 1 || ns < 1)
        return tsr_errorf(TSR_ERR_ARG, "%s: plot of %d points, %d series at %dx%d: nothing to draw or bad size", path, n,
                          ns, w, h);
    canvas c = {malloc((size_t)w * (size_t)h * 3), w, h};
    if (!c.px) return tsr_errorf(TSR_ERR_NOMEM, "%s: no memory for a %dx%d plot", path, w, h);
    memset(c.px, 255, (size_t)w * (size_t)h * 3);
    const uint8_t black[3] = {0, 0, 0}, grid[3] = {225, 225, 225};
    int legend_w = 0;
    for (int k = 0; k < ns; k++) legend_w = fmax(legend_w, text_w(s[k].label, 2));
    const int L = 90, R = w - legend_w - 60, T = 50, B = h - 60;
    double ylo = INFINITY, yhi = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < n; i++)
            if (isfinite(s[k].y[i])) ylo = fmin(ylo, s[k].y[i]), yhi = fmax(yhi, s[k].y[i]);
    if (!isfinite(ylo)) ylo = 0, yhi = 1;
    /* round the range out to a tick step of 1, 2 or 5 x 10^k, ~6 ticks */
    double span = yhi - ylo > 1e-12 ? yhi - ylo : 1.0, raw = span / 6, mag = pow(10, floor(log10(raw)));
    double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
    ylo = floor(ylo / step) * step;
    yhi = ceil(yhi / step) * step;
    if (yhi <= ylo) yhi = ylo + step;
    double xlo = x[0], xhi = x[n - 1] > x[0] ? x[n - 1] : x[0] + 1;
#define PX(v) (L + (int)lround(((v) - xlo) / (xhi - xlo) * (R - L)))
#define PY(v) (B - (int)lround(((v) - ylo) / (yhi - ylo) * (B - T)))
    char buf[64];
    for (double v = ylo; v <= yhi + step / 2; v += step) {
        int yy = PY(v);
        line(&c, L, yy, R, yy, 1, grid);
        snprintf(buf, sizeof buf, step >= 1 ? "%.0f" : step >= 0.1 ? "%.1f" : step >= 0.01 ? "%.2f" : "%.3f", v);
        text(&c, L - 8 - text_w(buf, 2), yy - 7, buf, 2, false, black);
    }
    int every = 1;
    while (n / every > 14) every++;
    for (int i = 0; i < n; i += every) {
        int xx = PX(x[i]);
        line(&c, xx, T, xx, B, 1, grid);
        snprintf(buf, sizeof buf, "%g", x[i]);
        text(&c, xx - text_w(buf, 2) / 2, B + 10, buf, 2, false, black);
    }
    line(&c, L, B, R, B, 2, black);
    line(&c, L, T, L, B, 2, black);
    if (title) text(&c, L, 14, title, 2, false, black);
    if (xlabel) text(&c, (L + R) / 2 - text_w(xlabel, 2) / 2, B + 36, xlabel, 2, false, black);
    if (ylabel) text(&c, 14, (T + B) / 2 + text_w(ylabel, 2) / 2, ylabel, 2, true, black);
    for (int k = 0; k < ns; k++) {
        const uint8_t *col = PALETTE[k % 10];
        int t = s[k].width > 0 ? s[k].width : 2;
        for (int i = 0; i < n; i++) {
            if (!isfinite(s[k].y[i])) continue;
            int xx = PX(x[i]), yy = PY(s[k].y[i]);
            rect(&c, xx - t - 1, yy - t - 1, xx + t + 1, yy + t + 1, col);
            if (i + 1 < n && isfinite(s[k].y[i + 1])) line(&c, xx, yy, PX(x[i + 1]), PY(s[k].y[i + 1]), t, col);
        }
        int ly = T + 10 + k * 26;
        rect(&c, R + 20, ly + 2, R + 40, ly + 12, col);
        text(&c, R + 48, ly, s[k].label, 2, false, black);
    }
#undef PX
#undef PY
    tsr_status st = tsr_png_write(path, c.px, w, h, 3);
    free(c.px);
    return st;
}
