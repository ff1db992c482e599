/* tessera io: line charts as PNG (include/tessera/chart.h): a small
 * software rasteriser (lines, rectangles, 5x7 text scaled 2x) on an RGB
 * canvas. */
#include "tessera/chart.h"

#include "tessera/png.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ font */

#define B(a, b, c, d, e, f, g) {0x##a, 0x##b, 0x##c, 0x##d, 0x##e, 0x##f, 0x##g}
typedef struct {
    char ch;
    uint8_t rows[7];
} glyph;

/* rows as 5-bit values written in hex (0x11 = 10001) */
static const glyph k_font[] = {
    {'0', B(0e, 11, 13, 15, 19, 11, 0e)}, {'1', B(04, 0c, 04, 04, 04, 04, 0e)},
    {'2', B(0e, 11, 01, 02, 04, 08, 1f)}, {'3', B(1f, 02, 04, 02, 01, 11, 0e)},
    {'4', B(02, 06, 0a, 12, 1f, 02, 02)}, {'5', B(1f, 10, 1e, 01, 01, 11, 0e)},
    {'6', B(06, 08, 10, 1e, 11, 11, 0e)}, {'7', B(1f, 01, 02, 04, 08, 08, 08)},
    {'8', B(0e, 11, 11, 0e, 11, 11, 0e)}, {'9', B(0e, 11, 11, 0f, 01, 02, 0c)},
    {'a', B(00, 00, 0e, 01, 0f, 11, 0f)}, {'b', B(10, 10, 16, 19, 11, 11, 1e)},
    {'c', B(00, 00, 0e, 10, 10, 11, 0e)}, {'d', B(01, 01, 0d, 13, 11, 11, 0f)},
    {'e', B(00, 00, 0e, 11, 1f, 10, 0e)}, {'f', B(06, 09, 08, 1c, 08, 08, 08)},
    {'g', B(00, 0f, 11, 11, 0f, 01, 0e)}, {'h', B(10, 10, 16, 19, 11, 11, 11)},
    {'i', B(04, 00, 0c, 04, 04, 04, 0e)}, {'j', B(02, 00, 06, 02, 02, 12, 0c)},
    {'k', B(10, 10, 12, 14, 18, 14, 12)}, {'l', B(0c, 04, 04, 04, 04, 04, 0e)},
    {'m', B(00, 00, 1a, 15, 15, 11, 11)}, {'n', B(00, 00, 16, 19, 11, 11, 11)},
    {'o', B(00, 00, 0e, 11, 11, 11, 0e)}, {'p', B(00, 00, 1e, 11, 1e, 10, 10)},
    {'q', B(00, 00, 0d, 13, 0f, 01, 01)}, {'r', B(00, 00, 16, 19, 10, 10, 10)},
    {'s', B(00, 00, 0e, 10, 0e, 01, 1e)}, {'t', B(08, 08, 1c, 08, 08, 09, 06)},
    {'u', B(00, 00, 11, 11, 11, 13, 0d)}, {'v', B(00, 00, 11, 11, 11, 0a, 04)},
    {'w', B(00, 00, 11, 11, 15, 15, 0a)}, {'x', B(00, 00, 11, 0a, 04, 0a, 11)},
    {'y', B(00, 00, 11, 11, 0f, 01, 0e)}, {'z', B(00, 00, 1f, 02, 04, 08, 1f)},
    {'.', B(00, 00, 00, 00, 00, 0c, 0c)}, {'-', B(00, 00, 00, 1f, 00, 00, 00)},
    {'_', B(00, 00, 00, 00, 00, 00, 1f)}, {'+', B(00, 04, 04, 1f, 04, 04, 00)},
    {':', B(00, 0c, 0c, 00, 0c, 0c, 00)}, {'/', B(00, 01, 02, 04, 08, 10, 00)},
    {'(', B(02, 04, 08, 08, 08, 04, 02)}, {')', B(08, 04, 02, 02, 02, 04, 08)},
    {'%', B(18, 19, 02, 04, 08, 13, 03)}, {',', B(00, 00, 00, 00, 0c, 04, 08)},
    {'=', B(00, 00, 1f, 00, 1f, 00, 00)}, {' ', B(00, 00, 00, 00, 00, 00, 00)},
};
#undef B

const uint8_t *tsr_chart_glyph(char ch) {
    ch = (char)tolower((unsigned char)ch);
    for (size_t i = 0; i < sizeof k_font / sizeof k_font[0]; i++)
        if (k_font[i].ch == ch) return k_font[i].rows;
    return NULL;
}

/* ---------------------------------------------------------------- canvas */

typedef struct {
    uint8_t *px;
    int w, h;
} canvas;

typedef struct {
    uint8_t r, g, b;
} rgb;

static void put(canvas *c, int x, int y, rgb col) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    uint8_t *p = c->px + ((size_t)y * c->w + x) * 3;
    p[0] = col.r, p[1] = col.g, p[2] = col.b;
}

static void rect(canvas *c, int x0, int y0, int x1, int y1, rgb col) {
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) put(c, x, y, col);
}

/* Bresenham, `thick` pixels wide */
static void line(canvas *c, int x0, int y0, int x1, int y1, rgb col, int thick) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
    for (;;) {
        rect(c, x0 - thick / 2, y0 - thick / 2, x0 + (thick - 1) / 2, y0 + (thick - 1) / 2, col);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

#define FONT_SCALE 2
#define CHAR_W (6 * FONT_SCALE)
#define CHAR_H (7 * FONT_SCALE)

static int text_width(const char *s) { return (int)strlen(s) * CHAR_W - FONT_SCALE; }

/* top-left at (x, y); vertical: rotated 90 degrees counter-clockwise, reading upwards from (x, y) */
static void text(canvas *c, int x, int y, const char *s, rgb col, bool vertical) {
    for (int i = 0; s[i]; i++) {
        const uint8_t *g = tsr_chart_glyph(s[i]);
        if (!g) g = tsr_chart_glyph('_');
        for (int r = 0; r < 7; r++)
            for (int k = 0; k < 5; k++) {
                if (!(g[r] >> (4 - k) & 1)) continue;
                int gx = i * 6 + k, gy = r;
                for (int a = 0; a < FONT_SCALE; a++)
                    for (int b = 0; b < FONT_SCALE; b++) {
                        if (vertical) put(c, x + gy * FONT_SCALE + a, y - gx * FONT_SCALE - b, col);
                        else put(c, x + gx * FONT_SCALE + b, y + gy * FONT_SCALE + a, col);
                    }
            }
    }
}

/* ----------------------------------------------------------------- ticks */

static double nice_step(double range, int target) {
    double raw = range / target, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

/* a tick value with as many decimals as the step needs */
static void fmt_tick(char *buf, size_t n, double v, double step) {
    if (fabs(v) < step * 1e-9) v = 0;
    double a = fabs(v);
    if (v != 0 && (a >= 1e6 || a < 1e-3)) {
        snprintf(buf, n, "%.1e", v);
        return;
    }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6) dec = 6;
    snprintf(buf, n, "%.*f", dec, v);
}

/* Series colours: twelve hand-picked ones that stay apart on white (the
 * first eight in the order every chart so far used), then hues stepped by
 * the golden angle at alternating brightness, so that no two series of a
 * chart share a colour (a method comparison easily has more than eight). */
static const rgb k_palette[] = {{31, 119, 180}, {214, 39, 40},   {44, 160, 44},  {255, 127, 14},
                                {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {23, 190, 207},
                                {188, 189, 34},  {0, 0, 0},      {0, 40, 110},    {120, 0, 50}};
enum { N_PALETTE = (int)(sizeof k_palette / sizeof k_palette[0]) };

static rgb series_colour(int i) {
    if (i >= 0 && i < N_PALETTE) return k_palette[i];
    const int k = i - N_PALETTE;
    const double h = fmod(0.11 + 0.381966011250105 * k, 1.0) * 6.0, s = 0.85, v = k % 2 ? 0.55 : 0.80;
    const double f = h - floor(h), p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    double r, g, b;
    switch ((int)h % 6) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
    }
    return (rgb){(uint8_t)lround(255 * r), (uint8_t)lround(255 * g), (uint8_t)lround(255 * b)};
}

void tsr_chart_colour(int i, uint8_t out[3]) {
    rgb c = series_colour(i);
    out[0] = c.r, out[1] = c.g, out[2] = c.b;
}

tsr_status tsr_chart_render(uint8_t *px, const tsr_chart_series *s, int ns, const tsr_chart_opts *o) {
    const int W = o->width > 0 ? o->width : 960, H = o->height > 0 ? o->height : 600;
    canvas c = {px, W, H};
    const rgb white = {255, 255, 255}, black = {0, 0, 0}, grid = {225, 225, 225}, grey = {90, 90, 90};
    rect(&c, 0, 0, W - 1, H - 1, white);
    /* data range */
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    int points = 0;
    for (int i = 0; i < ns; i++)
        for (int k = 0; k < s[i].n; k++) {
            double x = s[i].x[k], y = s[i].y[k];
            if (!isfinite(x) || !isfinite(y) || (o->log_y && !(y > 0))) continue;
            if (o->log_y) y = log10(y);
            x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
            points++;
        }
    if (!points) return tsr_errorf(TSR_ERR_ARG, "chart: no finite points to draw");
    if (x1 - x0 < 1e-12) x0 -= 0.5, x1 += 0.5;
    if (y1 - y0 < 1e-12 * fmax(1.0, fabs(y0))) y0 -= 0.5 * fmax(1e-3, fabs(y0)), y1 += 0.5 * fmax(1e-3, fabs(y1));
    const double ypad = 0.05 * (y1 - y0);
    y0 -= ypad, y1 += ypad;
    const double ys = nice_step(y1 - y0, 6);
    /* the plot area leaves room for tick labels, axis labels and the title */
    char buf[64];
    int ylab_w = 0;
    for (double v = ceil(y0 / ys) * ys; v <= y1 + ys * 1e-9; v += ys) {
        fmt_tick(buf, sizeof buf, o->log_y ? pow(10.0, v) : v, o->log_y ? fmin(ys, 1.0) * pow(10.0, v) : ys);
        int tw = text_width(buf);
        if (tw > ylab_w) ylab_w = tw;
    }
    /* a legend below the plot area: entries left to right in rows as wide
     * as the image allows; its height comes off the plot area */
    const int row = CHAR_H + 8, W_IN = W - 48;
    int lw = 0, below_rows = 0;
    for (int i = 0; i < ns; i++)
        if (s[i].name && text_width(s[i].name) > lw) lw = text_width(s[i].name);
    const int entry_w = lw + 56; /* swatch, gap, name, gap */
    const int per_row = o->legend_below ? (W_IN / entry_w > 0 ? W_IN / entry_w : 1) : 0;
    if (o->legend_below) below_rows = (ns + per_row - 1) / per_row;
    const int below_h = below_rows ? below_rows * row + 8 + 12 : 0;
    const int L = 24 + (o->ylabel ? CHAR_H + 12 : 0) + ylab_w, R = W - 24, T = o->title ? 24 + CHAR_H + 16 : 24,
              Bm = H - (24 + CHAR_H + 10 + (o->xlabel ? CHAR_H + 12 : 0)) - below_h;
    if (R - L < 50 || Bm - T < 50) return tsr_errorf(TSR_ERR_ARG, "chart: %d x %d pixels is too small", W, H);
    /* x ticks: up to 8, fewer where their labels would touch (a narrow
     * chart, or labels as wide as "-0.8") */
    double xs = nice_step(x1 - x0, 8);
    for (int target = 7; target >= 2; target--) {
        int xlab_w = 0;
        for (double v = ceil(x0 / xs) * xs; v <= x1 + xs * 1e-9; v += xs) {
            fmt_tick(buf, sizeof buf, v, xs);
            int tw = text_width(buf);
            if (tw > xlab_w) xlab_w = tw;
        }
        if (xlab_w + 12 <= xs / (x1 - x0) * (R - L)) break;
        double wider = nice_step(x1 - x0, target);
        if (wider > xs) xs = wider;
    }
#define PX(x) (L + (int)lround(((x) - x0) / (x1 - x0) * (R - L)))
#define PY(y) (Bm - (int)lround(((y) - y0) / (y1 - y0) * (Bm - T)))
    /* grid, ticks and labels */
    for (double v = ceil(x0 / xs) * xs; v <= x1 + xs * 1e-9; v += xs) {
        int x = PX(v);
        line(&c, x, T, x, Bm, grid, 1);
        line(&c, x, Bm, x, Bm + 6, black, 1);
        fmt_tick(buf, sizeof buf, v, xs);
        int tx = x - text_width(buf) / 2; /* the last label stays inside the image */
        if (tx + text_width(buf) > W - 2) tx = W - 2 - text_width(buf);
        text(&c, tx, Bm + 10, buf, black, false);
    }
    for (double v = ceil(y0 / ys) * ys; v <= y1 + ys * 1e-9; v += ys) {
        int y = PY(v);
        line(&c, L, y, R, y, grid, 1);
        line(&c, L - 6, y, L, y, black, 1);
        fmt_tick(buf, sizeof buf, o->log_y ? pow(10.0, v) : v, o->log_y ? fmin(ys, 1.0) * pow(10.0, v) : ys);
        text(&c, L - 10 - text_width(buf), y - CHAR_H / 2, buf, black, false);
    }
    /* axes */
    line(&c, L, T, L, Bm, black, 2);
    line(&c, L, Bm, R, Bm, black, 2);
    if (o->title) text(&c, (L + R) / 2 - text_width(o->title) / 2, 24, o->title, black, false);
    if (o->xlabel)
        text(&c, (L + R) / 2 - text_width(o->xlabel) / 2, Bm + 10 + CHAR_H + 12, o->xlabel, grey, false);
    if (o->ylabel) text(&c, 24, (T + Bm) / 2 + text_width(o->ylabel) / 2, o->ylabel, grey, true);
    /* the curves; wider (highlighted) ones last, so no thinner one hides them */
    for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < ns; i++) {
        if ((s[i].width > 2) != (pass == 1)) continue;
        rgb col = series_colour(i);
        int px_prev = 0, py_prev = 0;
        bool have = false;
        for (int k = 0; k < s[i].n; k++) {
            double x = s[i].x[k], y = s[i].y[k];
            if (!isfinite(x) || !isfinite(y) || (o->log_y && !(y > 0))) {
                have = false; /* a gap */
                continue;
            }
            int qx = PX(x), qy = PY(o->log_y ? log10(y) : y);
            if (have && !s[i].points) line(&c, px_prev, py_prev, qx, qy, col, s[i].width > 0 ? s[i].width : 2);
            if (s[i].markers) rect(&c, qx - 3, qy - 3, qx + 3, qy + 3, col);
            if (s[i].points) rect(&c, qx - 1, qy - 1, qx + 1, qy + 1, col);
            px_prev = qx, py_prev = qy, have = true;
        }
    }
#undef PX
#undef PY
    if (o->legend_below) {
        /* rows of entries under the x-axis label, centred, in a frame */
        const int cols = ns < per_row ? ns : per_row, bw = cols * entry_w + 8;
        const int lx0 = (W - bw) / 2, ly0 = H - 24 - below_rows * row - 8, lx1 = lx0 + bw, ly1 = ly0 + below_rows * row + 8;
        line(&c, lx0, ly0, lx1, ly0, grey, 1), line(&c, lx0, ly1, lx1, ly1, grey, 1);
        line(&c, lx0, ly0, lx0, ly1, grey, 1), line(&c, lx1, ly0, lx1, ly1, grey, 1);
        for (int i = 0; i < ns; i++) {
            rgb col = series_colour(i);
            const int ex = lx0 + 4 + (i % per_row) * entry_w, y = ly0 + 8 + (i / per_row) * row + CHAR_H / 2;
            if (s[i].points) rect(&c, ex + 18, y - 2, ex + 22, y + 2, col);
            else line(&c, ex + 8, y, ex + 32, y, col, 3);
            if (s[i].markers) rect(&c, ex + 17, y - 3, ex + 23, y + 3, col);
            text(&c, ex + 40, y - CHAR_H / 2, s[i].name ? s[i].name : "", black, false);
        }
        return tsr_ok();
    }
    /* legend: inside the plot area, in the corner where it covers the
     * fewest curve pixels (top right when tied) */
    const int bw = lw + 48, bh = ns * row + 8;
    int lx1 = R - 10, ly0 = T + 10;
    long best = -1;
    for (int corner = 0; corner < 4; corner++) {
        const int cx1 = corner & 1 ? L + 10 + bw : R - 10, cy0 = corner & 2 ? Bm - 10 - bh : T + 10;
        long covered = 0;
        for (int y = cy0 < 0 ? 0 : cy0; y <= cy0 + bh && y < H; y++)
            for (int x = cx1 - bw < 0 ? 0 : cx1 - bw; x <= cx1 && x < W; x++) {
                const uint8_t *q = px + ((size_t)y * W + x) * 3;
                const bool bg = q[0] == q[1] && q[1] == q[2] && (q[0] == 255 || q[0] == 225); /* white, grid */
                covered += !bg;
            }
        if (best < 0 || covered < best) best = covered, lx1 = cx1, ly0 = cy0;
    }
    const int lx0 = lx1 - bw, ly1 = ly0 + bh;
    rect(&c, lx0, ly0, lx1, ly1, white);
    line(&c, lx0, ly0, lx1, ly0, grey, 1), line(&c, lx0, ly1, lx1, ly1, grey, 1);
    line(&c, lx0, ly0, lx0, ly1, grey, 1), line(&c, lx1, ly0, lx1, ly1, grey, 1);
    for (int i = 0; i < ns; i++) {
        rgb col = series_colour(i);
        int y = ly0 + 8 + i * row + CHAR_H / 2;
        if (s[i].points) rect(&c, lx0 + 18, y - 2, lx0 + 22, y + 2, col);
        else line(&c, lx0 + 8, y, lx0 + 32, y, col, 3);
        if (s[i].markers) rect(&c, lx0 + 17, y - 3, lx0 + 23, y + 3, col);
        text(&c, lx0 + 40, y - CHAR_H / 2, s[i].name ? s[i].name : "", black, false);
    }
    return tsr_ok();
}

tsr_status tsr_chart_png(const char *path, const tsr_chart_series *s, int ns, const tsr_chart_opts *o) {
    const int W = o->width > 0 ? o->width : 960, H = o->height > 0 ? o->height : 600;
    if (W > 8192 || H > 8192) return tsr_errorf(TSR_ERR_ARG, "chart: %d x %d pixels is too large (max 8192)", W, H);
    uint8_t *px = malloc((size_t)W * H * 3);
    TSR_ASSERT(px);
    tsr_status st = tsr_chart_render(px, s, ns, o);
    if (st.code) st = tsr_errorf(st.code, "%s: %s", path, st.msg);
    else st = tsr_png_write(path, px, W, H, 3);
    free(px);
    return st;
}
