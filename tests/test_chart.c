/* tessera tests: the chart renderer behind `tessera plot` and the
 * predicted-vs-measured scatters — the font covers
 * what tick labels and metric names need, a rendered chart has its axes,
 * its curves in their colours and its legend (inside the plot area or
 * below it), and empty input is an error. */
#include "testutil.h"

#include "tessera/chart.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int count_rgb(const uint8_t *px, int w, int h, int x0, int y0, int x1, int y1, uint8_t r, uint8_t g,
                     uint8_t b) {
    int n = 0;
    for (int y = y0; y < y1 && y < h; y++)
        for (int x = x0; x < x1 && x < w; x++) {
            const uint8_t *p = px + ((size_t)y * w + x) * 3;
            n += p[0] == r && p[1] == g && p[2] == b;
        }
    return n;
}

int main(void) {
    const char *need = "0123456789abcdefghijklmnopqrstuvwxyz.-_+:/()%,= ";
    int missing = 0;
    for (const char *c = need; *c; c++) missing += tsr_chart_glyph(*c) == NULL;
    TU_CHECK(missing == 0, "%d characters without a glyph", missing);
    TU_CHECK(tsr_chart_glyph('A') == tsr_chart_glyph('a'), "capitals drawn as lowercase");
    const uint8_t *one = tsr_chart_glyph('1');
    TU_CHECK(one && one[0] == 0x04 && one[6] == 0x0e, "glyph '1'");

    enum { W = 480, H = 300, N = 50 };
    double x[N], y[N], ex[5], ey[5];
    for (int i = 0; i < N; i++) x[i] = i * 10, y[i] = 2.3 * exp(-i / 15.0) + 0.2;
    for (int i = 0; i < 5; i++) ex[i] = 100 * (i + 1) - 10, ey[i] = 0.5 + 0.08 * i;
    tsr_chart_series s[2] = {{"loss", x, y, N, false, 0, false}, {"test_accuracy", ex, ey, 5, true, 0, false}};
    tsr_chart_opts o = {"run.jsonl", "step", NULL, W, H, false, false};
    static uint8_t px[W * H * 3];
    tsr_status st = tsr_chart_render(px, s, 2, &o);
    TU_CHECK(st.code == TSR_OK, "render: %s", st.msg);
    TU_CHECK(count_rgb(px, W, H, 0, 0, 4, 4, 255, 255, 255) == 16, "white background");
    int blue = count_rgb(px, W, H, 0, 0, W, H, 31, 119, 180), red = count_rgb(px, W, H, 0, 0, W, H, 214, 39, 40);
    TU_CHECK(blue > 300 && red > 100, "both curves drawn (%d, %d pixels)", blue, red);
    /* the axes: a long black vertical run on the left, a horizontal one near the bottom */
    int best_col = 0, best_row = 0;
    for (int xx = 0; xx < W / 3; xx++) {
        int n = count_rgb(px, W, H, xx, 0, xx + 1, H, 0, 0, 0);
        if (n > best_col) best_col = n;
    }
    for (int yy = H / 2; yy < H; yy++) {
        int n = count_rgb(px, W, H, 0, yy, W, yy + 1, 0, 0, 0);
        if (n > best_row) best_row = n;
    }
    TU_CHECK(best_col > H / 2 && best_row > W / 2, "axes (%d, %d black pixels)", best_col, best_row);
    /* the legend's swatches sit at the top right */
    TU_CHECK(count_rgb(px, W, H, W / 2, 0, W, H / 2, 214, 39, 40) > 20, "legend swatch");
    /* the legend moves to the corner its box covers the fewest curve
     * pixels in: a dense band across the top half leaves a bottom corner;
     * and a wider (highlighted) series is drawn over thinner ones */
    {
        enum { NB = 200 };
        double bx[NB], by[NB], fx[2] = {0, 1}, fy[2] = {0.1, 0.1};
        for (int i = 0; i < NB; i++) bx[i] = i / (double)(NB - 1), by[i] = 0.55 + 0.45 * (i % 2);
        tsr_chart_series band[2] = {{"band", bx, by, NB, false, 4, false}, {"flat", fx, fy, 2, false, 0, false}};
        tsr_chart_opts bo = {NULL, NULL, NULL, W, H, false, false};
        TU_CHECK(tsr_chart_render(px, band, 2, &bo).code == TSR_OK, "band render");
        int top = count_rgb(px, W, H, 0, 0, W, H / 2, 214, 39, 40),
            bottom = count_rgb(px, W, H, 0, H / 2, W, H, 214, 39, 40);
        TU_CHECK(bottom > 100 && top < 40, "legend below the band (swatch pixels top %d, bottom %d)", top, bottom);
        /* a wide horizontal line (blue) and a thin vertical one (red) drawn after it */
        double hx[2] = {0, 1}, hy[2] = {0.5, 0.5}, vx[2] = {0.5, 0.5}, vy[2] = {0, 1};
        tsr_chart_series cross[2] = {{"wide", hx, hy, 2, false, 6, false}, {"thin", vx, vy, 2, false, 0, false}};
        TU_CHECK(tsr_chart_render(px, cross, 2, &bo).code == TSR_OK, "cross render");
        int yb = 0, xr = 0, nbest = 0, nred = 0;
        for (int yy = H / 4; yy < 3 * H / 4; yy++) {
            int n = count_rgb(px, W, H, W / 4, yy, 3 * W / 4, yy + 1, 31, 119, 180);
            if (n > nbest) nbest = n, yb = yy;
        }
        for (int xx = W / 4; xx < 3 * W / 4; xx++) {
            int n = count_rgb(px, W, H, xx, H / 4, xx + 1, 3 * H / 4, 214, 39, 40);
            if (n > nred) nred = n, xr = xx;
        }
        TU_CHECK(nbest > W / 4 && nred > H / 8, "both lines drawn (%d, %d)", nbest, nred);
        TU_CHECK(count_rgb(px, W, H, xr, yb, xr + 1, yb + 1, 31, 119, 180) == 1,
                 "the wide series is on top where the two cross (%d, %d)", xr, yb);
    }
    /* the legend below the plot area: the x axis moves up to make room,
     * the swatches sit under it (none inside the plot area), and the
     * curves keep their colours */
    {
        tsr_chart_opts lo = o;
        lo.legend_below = true;
        int axis_in = 0, axis_below = 0, n_in = 0, n_below = 0;
        for (int pass = 0; pass < 2; pass++) {
            TU_CHECK(tsr_chart_render(px, s, 2, pass ? &lo : &o).code == TSR_OK, "legend render %d", pass);
            int *ay = pass ? &axis_below : &axis_in, *nb = pass ? &n_below : &n_in;
            for (int yy = H / 2; yy < H; yy++) {
                int n = count_rgb(px, W, H, 0, yy, W, yy + 1, 0, 0, 0);
                if (n > *nb) *nb = n, *ay = yy;
            }
        }
        TU_CHECK(n_in > W / 2 && n_below > W / 2 && axis_below < axis_in - 20, "x axis at row %d, %d with the legend below",
                 axis_in, axis_below);
        int red_under = count_rgb(px, W, H, 0, axis_below + 2, W, H, 214, 39, 40),
            blue_under = count_rgb(px, W, H, 0, axis_below + 2, W, H, 31, 119, 180);
        TU_CHECK(red_under > 20 && blue_under > 20, "swatches under the axis (%d, %d)", red_under, blue_under);
        TU_CHECK(count_rgb(px, W, H, 0, 0, W, axis_below - 2, 214, 39, 40) > 100 &&
                     count_rgb(px, W, H, W / 2, 0, W, H / 4, 214, 39, 40) < 20,
                 "the curves still drawn, no legend box at the top right");
        lo.height = 130; /* the legend takes its rows from the plot area: too little left */
        TU_CHECK(tsr_chart_render(px, s, 2, &lo).code == TSR_ERR_ARG, "too small with the legend below");
    }
    /* nothing to draw, or no room, is an error */
    double nan_y[2] = {NAN, NAN};
    tsr_chart_series bad = {"x", x, nan_y, 2, false, 0, false};
    TU_CHECK(tsr_chart_render(px, &bad, 1, &o).code == TSR_ERR_ARG, "no finite points refused");
    tsr_chart_opts tiny = {NULL, NULL, NULL, 60, 40, false, false};
    TU_CHECK(tsr_chart_render(px, s, 2, &tiny).code == TSR_ERR_ARG, "too small refused");
    /* log axis */
    o.log_y = true;
    TU_CHECK(tsr_chart_render(px, s, 2, &o).code == TSR_OK, "log-y render");
    /* a scatter: dots at the points and no line between them */
    o.log_y = false;
    double sx[2] = {0, 100}, sy[2] = {0, 100};
    tsr_chart_series sc = {"held-out", sx, sy, 2, false, 0, true};
    tsr_chart_opts so = {NULL, NULL, NULL, W, H, false, false};
    TU_CHECK(tsr_chart_render(px, &sc, 1, &so).code == TSR_OK, "scatter render");
    int dots = count_rgb(px, W, H, 0, 0, W, H, 31, 119, 180);
    sc.points = false;
    TU_CHECK(tsr_chart_render(px, &sc, 1, &so).code == TSR_OK, "line render");
    int lined = count_rgb(px, W, H, 0, 0, W, H, 31, 119, 180);
    TU_CHECK(dots > 0 && dots < 60 && lined > 3 * dots, "scatter draws dots only (%d pixels; as a line %d)", dots,
             lined);
    /* every series of a chart has its own colour: the twelve of the
     * palette stay well apart, later ones differ still, and a chart of
     * twelve curves (more than the first palette's eight) draws each one
     * and its legend swatch in its own colour */
    uint8_t ca[3], cb[3];
    int min_pal = 1 << 30, same = 0;
    for (int i = 0; i < 48; i++)
        for (int j = i + 1; j < 48; j++) {
            tsr_chart_colour(i, ca);
            tsr_chart_colour(j, cb);
            int d = abs(ca[0] - cb[0]) + abs(ca[1] - cb[1]) + abs(ca[2] - cb[2]);
            if (j < 12 && d < min_pal) min_pal = d;
            same += d == 0;
        }
    TU_CHECK(same == 0 && min_pal >= 90, "series colours: %d equal pairs, palette distance %d", same, min_pal);
    enum { NS = 12 };
    double ly[NS][N];
    tsr_chart_series many[NS];
    for (int i = 0; i < NS; i++) {
        for (int k = 0; k < N; k++) ly[i][k] = i + 0.3 * sin(k / 5.0);
        many[i] = (tsr_chart_series){"s", x, ly[i], N, false, 0, false};
    }
    TU_CHECK(tsr_chart_render(px, many, NS, &so).code == TSR_OK, "12-series render");
    int undrawn = 0;
    for (int i = 0; i < NS; i++) {
        tsr_chart_colour(i, ca);
        undrawn += count_rgb(px, W, H, 0, 0, W, H, ca[0], ca[1], ca[2]) < 100;
    }
    TU_CHECK(undrawn == 0, "%d of 12 series without their own colour", undrawn);
    return tu_finish("chart");
}
