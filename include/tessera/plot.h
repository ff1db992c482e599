/* tessera io: line charts as PNG (results per period, training curves),
 * drawn with a built-in 5x7 pixel font, no plotting library. src/io/plot.c.
 * Written atomically through tsr_png_write. */
#ifndef TESSERA_PLOT_H
#define TESSERA_PLOT_H

#include "tessera/core.h"

typedef struct {
    const char *label;  /* legend text */
    const double *y;    /* n values (NAN: a gap) */
    int width;          /* line width in pixels (0: 2) */
} tsr_plot_series;

/* One chart of ns series over the n points x (ascending), w x h pixels
 * (>= 320 x 200), legend on the right. Text: ASCII letters, digits and
 * " -.,():/+_=>%" (others drawn as blanks; letters in capitals). */
tsr_status tsr_plot_lines(const char *path, const char *title, const char *xlabel, const char *ylabel,
                          const double *x, int n, const tsr_plot_series *s, int ns, int w, int h);

#endif
