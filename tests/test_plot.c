/* Tests for src/io/chart.c written to a file (tsr_chart_png): a chart is written as a PNG of the asked size
 * whose pixels hold each series' colour, the grid and black text; NaN
 * values leave gaps; bad sizes and unwritable paths give a status naming
 * the path, and no file. */
#include "testutil.h"
#include "tessera/chart.h"
#include "tessera/png.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t count_rgb(const uint8_t *px, int w, int h, int r, int g, int b) {
    int64_t n = 0;
    for (int64_t i = 0; i < (int64_t)w * h; i++) n += px[3 * i] == r && px[3 * i + 1] == g && px[3 * i + 2] == b;
    return n;
}

int main(void) {
    char dir[] = "/tmp/tsr_plot_XXXXXX";
    TU_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256];
    snprintf(path, sizeof path, "%s/p.png", dir);
    const double x[5] = {2007, 2008, 2009, 2010, 2011};
    const double a[5] = {0.55, 0.61, 0.58, NAN, 0.66}, b[5] = {0.50, 0.52, 0.57, 0.60, 0.59};
    /* the first series draws blue, the second red; the first is wider */
    tsr_chart_series s[2] = {{"ctnet", x, a, 5, false, 4, false}, {"retrain", x, b, 5, false, 0, false}};
    tsr_chart_opts o = {"next-period AUC", "period", "AUC", 640, 360, false, false};
    tsr_status st = tsr_chart_png(path, s, 2, &o);
    TU_CHECK(st.code == 0, "plot: %s", st.msg);
    uint8_t *px = NULL;
    int w = 0, h = 0, ch = 0;
    st = tsr_png_read(path, &px, &w, &h, &ch);
    TU_CHECK(st.code == 0 && w == 640 && h == 360 && ch == 3, "read back %dx%dx%d: %s", w, h, ch, st.msg);
    if (px) {
        int64_t red = count_rgb(px, w, h, 214, 39, 40), blue = count_rgb(px, w, h, 31, 119, 180);
        int64_t black = count_rgb(px, w, h, 0, 0, 0), white = count_rgb(px, w, h, 255, 255, 255);
        TU_CHECK(blue > 500 && red > 300, "series colours drawn (blue %lld, red %lld)", (long long)blue, (long long)red);
        TU_CHECK(blue > red, "the wider line covers more pixels");
        TU_CHECK(black > 1000 && white > (int64_t)w * h / 2, "axes/text %lld, background %lld", (long long)black,
                 (long long)white);
        free(px);
    }
    unlink(path);
    tsr_chart_opts small = {NULL, NULL, NULL, 100, 50, false, false}, plain = {NULL, NULL, NULL, 640, 360, false, false};
    st = tsr_chart_png(path, s, 2, &small);
    TU_CHECK(st.code != 0 && strstr(st.msg, path) && access(path, F_OK) != 0, "too small: '%s'", st.msg);
    char bad[300];
    snprintf(bad, sizeof bad, "%s/missing/p.png", dir);
    st = tsr_chart_png(bad, s, 2, &plain);
    TU_CHECK(st.code != 0 && strstr(st.msg, "missing"), "unwritable: '%s'", st.msg);
    rmdir(dir);
    return tu_finish("plot");
}
