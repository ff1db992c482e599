/* tessera ops: the direct 3x3 stride-1 pad-1 convolution (the classifier's
 * convs), shared between conv.c and its kernels, which exist once per
 * kernel level (conv_direct_impl.h, compiled in conv_direct_<level>.c).
 *
 * No im2col: each input plane is copied once into a zero-bordered plane of
 * width w+2, so tap (ki,kj) of output q = oh*(w+2)+ow reads the padded
 * plane at q + ki*(w+2) + kj, a constant shift. Outputs are computed on
 * that padded-width grid (the two extra columns per row are discarded), a
 * vector of positions at a time, with 8 output channels x several vectors
 * of positions held in registers. The input grad is the same kernel on the
 * padded map grad with the weights transposed and flipped; the weight grad
 * correlates the map grad (padded width, dead columns zeroed) with shifted
 * input planes. The scratch layout is the same at every level. */
#ifndef TSR_CONV_DIRECT_H
#define TSR_CONV_DIRECT_H

#include "tessera/ops.h"

#define DCO 8 /* output channels per register block (the packed weight layout) */

static inline int n_slots(const tsr_conv_geom *g) { return g->threads > 1 ? g->threads : 1; }

static inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

static inline bool direct3x3(const tsr_conv_geom *g) {
    return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 && g->ph == 1 &&
           g->pw == 1 && g->groups == 1 && g->ho == g->h && g->wo == g->w && g->B >= 1;
}
/* the forward and weight grad block output channels, the input grad input ones */
static inline bool direct_fwd_ok(const tsr_conv_geom *g) { return direct3x3(g) && g->cout % DCO == 0; }
static inline bool direct_data_ok(const tsr_conv_geom *g) { return direct3x3(g) && g->cin % DCO == 0; }

typedef struct {
    int wp;          /* padded row width w+2 */
    int64_t qn;      /* output grid positions, whole vectors */
    int64_t pp;      /* padded plane stride: covers every shifted read */
    int64_t slot;    /* floats per thread */
    int64_t nw;      /* weight floats */
    int ng;          /* weight-grad partial groups */
} dgeom;

static inline int direct_groups(const tsr_conv_geom *g) {
    int ng = 4 * (g->threads > 1 ? g->threads : 1);
    return ng < g->B ? ng : g->B;
}

static inline dgeom dgeom_of(const tsr_conv_geom *g) {
    dgeom d;
    d.wp = g->w + 2;
    d.qn = round_up((int64_t)g->h * d.wp, 16);
    int64_t need = (int64_t)(g->h + 2) * d.wp;
    if (need < d.qn + 2 * d.wp + 2) need = d.qn + 2 * d.wp + 2;
    d.pp = round_up(need, 16);
    int cmax = g->cin > g->cout ? g->cin : g->cout;
    d.nw = (int64_t)g->cout * g->cin * 9;
    /* padded image, padded/zero-edged map, kernel output, lane partials */
    d.slot = round_up((int64_t)g->cin * d.pp + (int64_t)g->cout * d.pp + (int64_t)cmax * d.qn + d.nw * 16, 16);
    d.ng = direct_groups(g);
    return d;
}

static inline int64_t direct_scratch(const tsr_conv_geom *g) {
    dgeom d = dgeom_of(g);
    return d.slot * n_slots(g) + round_up(d.nw, 16) + (int64_t)d.ng * d.nw;
}


typedef struct {
    /* out (+)= conv(x); scratch: direct_scratch(g) floats */
    void (*fwd)(float *out, const float *x, const float *w, const float *bias, const tsr_conv_geom *g,
                float *scratch, bool accumulate);
    /* dx (+)= input grad (NULL: none; overwrite: write), dw += weight grad (NULL: none) */
    void (*bwd)(float *dx, float *dw, const float *dout, const float *x, const float *w, const tsr_conv_geom *g,
                float *scratch, bool overwrite);
} tsr_conv_direct_kern;

extern const tsr_conv_direct_kern tsr_conv_direct_scalar, tsr_conv_direct_avx2, tsr_conv_direct_avx512;

#endif
