/* Tests for src/io/plot.c: a chart is written as a PNG of the asked size
 * whose pixels hold each series' colour, the grid and black text; NaN
 * values leave gaps; bad sizes and unwritable paths give a status naming
 * the path, and no file. */
#include "testutil.h"
#include "tessera/plot.h"
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
    tsr_plot_series s[2] = {{"ctnet", a, 4}, {"retrain", b, 0}};
    tsr_status st = tsr_plot_lines(path, "next-period AUC", "period", "AUC", x, 5, s, 2, 640, 360);
    TU_CHECK(st.code == 0, "plot: %s", st.msg);
    uint8_t *px = NULL;
    int w = 0, h = 0, ch = 0;
    st = tsr_png_read(path, &px, &w, &h, &ch);
    TU_CHECK(st.code == 0 && w == 640 && h == 360 && ch == 3, "read back %dx%dx%d: %s", w, h, ch, st.msg);
    if (px) {
        int64_t red = count_rgb(px, w, h, 214, 39, 40), blue = count_rgb(px, w, h, 31, 119, 180);
        int64_t black = count_rgb(px, w, h, 0, 0, 0), white = count_rgb(px, w, h, 255, 255, 255);
        TU_CHECK(red > 500 && blue > 300, "series colours drawn (red %lld, blue %lld)", (long long)red, (long long)blue);
        TU_CHECK(red > blue, "the wider line covers more pixels");
        TU_CHECK(black > 1000 && white > (int64_t)w * h / 2, "axes/text %lld, background %lld", (long long)black,
                 (long long)white);
        free(px);
    }
    unlink(path);
    st = tsr_plot_lines(path, NULL, NULL, NULL, x, 5, s, 2, 100, 50);
    TU_CHECK(st.code != 0 && strstr(st.msg, path) && access(path, F_OK) != 0, "too small: '%s'", st.msg);
    char bad[300];
    snprintf(bad, sizeof bad, "%s/missing/p.png", dir);
    st = tsr_plot_lines(bad, NULL, NULL, NULL, x, 5, s, 2, 640, 360);
    TU_CHECK(st.code != 0 && strstr(st.msg, "missing"), "unwritable: '%s'", st.msg);
    rmdir(dir);
    return tu_finish("plot");
}
