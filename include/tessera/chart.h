/* tessera io: line charts and scatters as PNG, for training curves
 * (`tessera plot`) and predicted-vs-measured plots.
 * Axes with "nice" ticks (1, 2, 5 x 10^k) and tick labels, a legend
 * (inside the plot area, or in rows below it), a title, drawn with a
 * built-in 5x7 bitmap font (digits, lowercase letters and
 * . - _ + : / ( ) % , =; capitals are drawn as lowercase) and written
 * with the PNG writer. src/io/chart.c. */
#ifndef TESSERA_CHART_H
#define TESSERA_CHART_H

#include "tessera/core.h"

typedef struct {
    const char *name;     /* legend entry */
    const double *x, *y;  /* n points; a non-finite y leaves a gap */
    int n;
    bool markers;         /* a square at every point (sparse series such as evaluations) */
    int width;            /* line width in pixels (0: 2) */
    bool points;          /* a small dot at every point and no line: a scatter */
} tsr_chart_series;

typedef struct {
    const char *title, *xlabel, *ylabel; /* may be NULL */
    int width, height;    /* pixels (0: 960 x 600) */
    bool log_y;           /* log10 y axis (positive values only) */
    bool legend_below;    /* the legend in rows under the plot area, clear of every curve
                             (default: a box inside the plot area, in its emptiest corner) */
} tsr_chart_opts;

/* Draws into rgb (height x width x 3, caller-allocated). TSR_ERR_ARG when
 * no series has a point to draw. */
tsr_status tsr_chart_render(uint8_t *rgb, const tsr_chart_series *s, int n_series, const tsr_chart_opts *o);
/* Renders and writes path atomically. */
tsr_status tsr_chart_png(const char *path, const tsr_chart_series *s, int n_series, const tsr_chart_opts *o);

/* The colour of series i (0-based) as r, g, b: the first twelve are a
 * fixed palette, later ones distinct hues; no two series share one. */
void tsr_chart_colour(int i, uint8_t rgb[3]);

/* The bitmap font, for tests: 7 rows of 5 bits (bit 4 = leftmost) of
 * character ch, or NULL when the font has no glyph for it. */
const uint8_t *tsr_chart_glyph(char ch);

#endif
