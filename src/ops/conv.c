/* tessera ops: 2-D convolution and its transpose over (B,C,Hh,Ww) maps, for
 * the image families (the Fashion-MNIST classifier, U-Nets, detectors).
 * Fast path: im2col + sgemm per group per chunk of images, col2im for input
 * grads; tsr_conv2d_*_ref are the naive twins.
 *
 * Threading: chunks of images go to OpenMP threads, each running its own
 * im2col and a single-threaded sgemm on private scratch. Letting OpenBLAS
 * thread each sgemm instead, between OpenMP loops, made the two thread
 * pools spin against each other on few cores (4-6x slower on 2 cores).
 * Chunks are scheduled dynamically (a shared, busy machine stalls static
 * splits); weight grads sum fixed per-group partials in group order, so
 * results are deterministic for a fixed thread count. */
#include "ops/conv_direct.h"
#include "tessera/cpu.h"

#include <string.h>

int openblas_get_num_threads(void);
void openblas_set_num_threads(int n);

/* threads only pay off once a loop touches enough memory */
#define PAR_MIN 32768

static int or_default(int v, int d) { return v ? v : d; }

/* images per chunk: about 1k sgemm columns (one 28x28 image, five 14x14),
 * so a thread's im2col buffer stays in its L2; then rebalanced so the chunk
 * count is a multiple of the thread count */
static void pick_chunk(tsr_conv_geom *g) {
    int hwo = g->ho * g->wo, T = g->threads;
    int nb = 1024 / (hwo > 0 ? hwo : 1);
    if (nb < 1) nb = 1;
    if (nb > g->B) nb = g->B;
    int nc = (g->B + nb - 1) / nb;
    if (T > 1 && nc > 1) {
        nc = (nc + T - 1) / T * T;
        nb = (g->B + nc - 1) / nc;
    }
    g->nb = nb < 1 ? 1 : nb;
}

tsr_conv_geom tsr_conv_geom_make(int B, int cin, int h, int w, int cout, int kh, int kw,
                                 const tsr_conv_opts *o) {
    tsr_conv_geom g;
    memset(&g, 0, sizeof g);
    g.B = B, g.cin = cin, g.h = h, g.w = w, g.cout = cout, g.kh = kh, g.kw = kw;
    g.sh = or_default(o ? o->stride[0] : 0, 1);
    g.sw = or_default(o ? o->stride[1] : 0, 1);
    g.ph = o ? o->pad[0] : 0;
    g.pw = o ? o->pad[1] : 0;
    g.dh = or_default(o ? o->dil[0] : 0, 1);
    g.dw = or_default(o ? o->dil[1] : 0, 1);
    g.groups = or_default(o ? o->groups : 0, 1);
    g.ho = (h + 2 * g.ph - g.dh * (kh - 1) - 1) / g.sh + 1;
    g.wo = (w + 2 * g.pw - g.dw * (kw - 1) - 1) / g.sw + 1;
    g.threads = tsr_omp_max_threads();
    pick_chunk(&g);
    return g;
}

/* per-thread slot: col (kg, nb*hwo) and tmp (coutg, nb*hwo) when nb > 1 */
static int64_t slot_floats(const tsr_conv_geom *g) {
    int64_t cols = (int64_t)g->nb * g->ho * g->wo;
    int64_t kg = (int64_t)(g->cin / g->groups) * g->kh * g->kw;
    int64_t tmp = g->nb > 1 ? (int64_t)(g->cout / g->groups) * cols : 0;
    return (kg * cols + tmp + 15) / 16 * 16;
}

static int n_chunks(const tsr_conv_geom *g) { return (g->B + g->nb - 1) / g->nb; }

/* weight grads: chunks fall into this many fixed contiguous groups, each
 * summed into its own partial, so any thread may take any group and the
 * result still has one summation order */
static int n_wgroups(const tsr_conv_geom *g) {
    int ng = 4 * n_slots(g), nc = n_chunks(g);
    return ng < nc ? ng : nc;
}


int64_t tsr_conv_scratch_floats(const tsr_conv_geom *g) {
    int64_t nw = (int64_t)g->cout * (g->cin / g->groups) * g->kh * g->kw;
    int64_t n = slot_floats(g) * n_slots(g) + (int64_t)n_wgroups(g) * nw;
    if (direct3x3(g)) {
        int64_t dn = direct_scratch(g);
        if (dn > n) n = dn;
    }
    return n;
}

static bool pointwise(const tsr_conv_geom *g) {
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

/* map columns ow whose input column ow*s + off lies in [0, w): [lo, hi) */
static void valid_range(int off, int s, int w, int wo, int *lo, int *hi) {
    int l = off >= 0 ? 0 : (-off + s - 1) / s;
    int h = (w - 1 - off) < 0 ? 0 : (w - 1 - off) / s + 1;
    if (l > wo) l = wo;
    if (h > wo) h = wo;
    if (h < l) h = l;
    *lo = l, *hi = h;
}

/* 'Same'-width stride-1 convs (the classifier's 3x3 pad 1): a col row is
 * the input plane shifted by a constant, so it is one long vector copy plus
 * a few edge columns, instead of a short copy per output row. */
static bool shift_layout(const tsr_conv_geom *g) { return g->sh == 1 && g->sw == 1 && g->wo == g->w; }

typedef struct {
    int oh_lo, oh_hi, lo, hi; /* valid map rows, valid columns within a row */
    int64_t shift, p0, p1;    /* input index = p + shift for p in [p0, p1) */
} shift_span;

static shift_span shift_for(const tsr_conv_geom *g, int ki, int kj) {
    shift_span t;
    int off = kj * g->dw - g->pw, ihs = ki * g->dh - g->ph;
    valid_range(off, 1, g->w, g->wo, &t.lo, &t.hi);
    t.oh_lo = ihs < 0 ? -ihs : 0;
    t.oh_hi = g->h - ihs < g->ho ? g->h - ihs : g->ho;
    if (t.oh_lo > g->ho) t.oh_lo = g->ho;
    if (t.oh_hi < t.oh_lo) t.oh_hi = t.oh_lo;
    t.shift = (int64_t)ihs * g->w + off;
    t.p0 = (int64_t)t.oh_lo * g->wo;
    t.p1 = (int64_t)t.oh_hi * g->wo;
    /* keep the source inside the plane; what is cut lies in edge columns */
    if (t.p0 < -t.shift) t.p0 = -t.shift;
    if (t.p1 > (int64_t)g->h * g->w - t.shift) t.p1 = (int64_t)g->h * g->w - t.shift;
    /* planes smaller than the kernel (1x1, 2x2 maps with pad): a tap can
     * miss every output, then p0 = p1 = hwo */
    int64_t hwo = (int64_t)g->ho * g->wo;
    if (t.p0 > hwo) t.p0 = hwo;
    if (t.p1 > hwo) t.p1 = hwo;
    if (t.p1 < t.p0) t.p1 = t.p0;
    return t;
}

static void zero_edges(float *row, const shift_span *t, int wo) {
    for (int oh = t->oh_lo; oh < t->oh_hi; oh++) {
        float *r = row + (int64_t)oh * wo;
        for (int ow = 0; ow < t->lo; ow++) r[ow] = 0.f;
        for (int ow = t->hi; ow < wo; ow++) r[ow] = 0.f;
    }
}

static void im2col_plane_shift(float *col, int64_t ld, const float *xp, const tsr_conv_geom *g) {
    int64_t hwo = (int64_t)g->ho * g->wo;
    for (int ki = 0; ki < g->kh; ki++)
        for (int kj = 0; kj < g->kw; kj++) {
            float *row = col + (int64_t)(ki * g->kw + kj) * ld;
            shift_span t = shift_for(g, ki, kj);
            memset(row, 0, sizeof(float) * (size_t)t.p0);
#pragma omp simd
            for (int64_t p = t.p0; p < t.p1; p++) row[p] = xp[p + t.shift];
            memset(row + t.p1, 0, sizeof(float) * (size_t)(hwo - t.p1));
            zero_edges(row, &t, g->wo);
        }
}

/* col rows are scratch: their edge columns are zeroed in place so the
 * shifted add can run over whole rows without wrapping garbage around */
static void col2im_plane_shift(float *dxp, float *col, int64_t ld, const tsr_conv_geom *g) {
    for (int ki = 0; ki < g->kh; ki++)
        for (int kj = 0; kj < g->kw; kj++) {
            float *row = col + (int64_t)(ki * g->kw + kj) * ld;
            shift_span t = shift_for(g, ki, kj);
            zero_edges(row, &t, g->wo);
#pragma omp simd
            for (int64_t p = t.p0; p < t.p1; p++) dxp[p + t.shift] += row[p];
        }
}

/* map rows [oh0, oh1) of one plane (general layout): col rows hold
 * (oh1-oh0)*wo columns, row stride ld */
static void im2col_plane_rows(float *col, int64_t ld, const float *xp, const tsr_conv_geom *g, int oh0, int oh1) {
    for (int ki = 0; ki < g->kh; ki++)
        for (int kj = 0; kj < g->kw; kj++) {
            float *row = col + (int64_t)(ki * g->kw + kj) * ld;
            int off = kj * g->dw - g->pw, lo, hi;
            valid_range(off, g->sw, g->w, g->wo, &lo, &hi);
            for (int oh = oh0; oh < oh1; oh++) {
                float *d = row + (int64_t)(oh - oh0) * g->wo;
                int ih = oh * g->sh - g->ph + ki * g->dh;
                if (ih < 0 || ih >= g->h) {
                    memset(d, 0, sizeof(float) * (size_t)g->wo);
                    continue;
                }
                const float *s = xp + (int64_t)ih * g->w;
                for (int ow = 0; ow < lo; ow++) d[ow] = 0.f;
                /* rows are short (28 floats on Fashion-MNIST): an inline
                 * vector loop beats a memcpy call per row */
                if (g->sw == 1) {
#pragma omp simd
                    for (int ow = lo; ow < hi; ow++) d[ow] = s[ow + off];
                } else
                    for (int ow = lo; ow < hi; ow++) d[ow] = s[ow * g->sw + off];
                for (int ow = hi; ow < g->wo; ow++) d[ow] = 0.f;
            }
        }
}

/* one channel plane xp (h,w) -> kh*kw rows of col, row stride ld */
static void im2col_plane(float *col, int64_t ld, const float *xp, const tsr_conv_geom *g) {
    if (shift_layout(g))
        im2col_plane_shift(col, ld, xp, g);
    else
        im2col_plane_rows(col, ld, xp, g, 0, g->ho);
}

/* adjoint of im2col_plane: dxp (h,w) += scattered col rows */
static void col2im_plane(float *dxp, float *col, int64_t ld, const tsr_conv_geom *g) {
    if (shift_layout(g)) {
        col2im_plane_shift(dxp, col, ld, g);
        return;
    }
    for (int ki = 0; ki < g->kh; ki++)
        for (int kj = 0; kj < g->kw; kj++) {
            const float *row = col + (int64_t)(ki * g->kw + kj) * ld;
            int off = kj * g->dw - g->pw, lo, hi;
            valid_range(off, g->sw, g->w, g->wo, &lo, &hi);
            for (int oh = 0; oh < g->ho; oh++) {
                int ih = oh * g->sh - g->ph + ki * g->dh;
                if (ih < 0 || ih >= g->h) continue;
                const float *s = row + (int64_t)oh * g->wo;
                float *d = dxp + (int64_t)ih * g->w;
                if (g->sw == 1) {
#pragma omp simd
                    for (int ow = lo; ow < hi; ow++) d[ow + off] += s[ow];
                } else
                    for (int ow = lo; ow < hi; ow++) d[ow * g->sw + off] += s[ow];
            }
        }
}

/* images b0..b0+n-1, group gi -> col (cing*kh*kw, n*hwo) */
static void im2col_chunk(float *col, const float *x, const tsr_conv_geom *g, int b0, int n, int gi) {
    int cing = g->cin / g->groups, kk = g->kh * g->kw;
    int64_t hwo = (int64_t)g->ho * g->wo, hw = (int64_t)g->h * g->w, ld = n * hwo;
    for (int i = 0; i < n; i++)
        for (int ci = 0; ci < cing; ci++)
            im2col_plane(col + (int64_t)ci * kk * ld + i * hwo, ld,
                         x + ((int64_t)(b0 + i) * g->cin + gi * cing + ci) * hw, g);
}

static void col2im_chunk(float *dx, float *col, const tsr_conv_geom *g, int b0, int n, int gi) {
    int cing = g->cin / g->groups, kk = g->kh * g->kw;
    int64_t hwo = (int64_t)g->ho * g->wo, hw = (int64_t)g->h * g->w, ld = n * hwo;
    for (int i = 0; i < n; i++)
        for (int ci = 0; ci < cing; ci++)
            col2im_plane(dx + ((int64_t)(b0 + i) * g->cin + gi * cing + ci) * hw,
                         col + (int64_t)ci * kk * ld + i * hwo, ld, g);
}

/* tmp (coutg, n*hwo) <-> map rows of images b0.., group gi */
static void gather_map(float *tmp, const float *map, const tsr_conv_geom *g, int b0, int n, int gi) {
    int coutg = g->cout / g->groups;
    int64_t hwo = (int64_t)g->ho * g->wo, ld = n * hwo;
    for (int i = 0; i < n; i++)
        for (int co = 0; co < coutg; co++)
            memcpy(tmp + co * ld + i * hwo, map + ((int64_t)(b0 + i) * g->cout + gi * coutg + co) * hwo,
                   sizeof(float) * (size_t)hwo);
}

/* map rows (+)= tmp, plus bias when given */
static void scatter_map(float *map, const float *tmp, int64_t ld, const tsr_conv_geom *g, int b0, int n,
                        int gi, bool accumulate, const float *bias) {
    int coutg = g->cout / g->groups;
    int64_t hwo = (int64_t)g->ho * g->wo;
    for (int i = 0; i < n; i++)
        for (int co = 0; co < coutg; co++) {
            float *d = map + ((int64_t)(b0 + i) * g->cout + gi * coutg + co) * hwo;
            const float *s = tmp + co * ld + i * hwo;
            float bv = bias ? bias[gi * coutg + co] : 0.f;
            if (s == d) {
                if (bias)
                    for (int64_t p = 0; p < hwo; p++) d[p] += bv;
            } else if (accumulate)
                for (int64_t p = 0; p < hwo; p++) d[p] += s[p] + bv;
            else
                for (int64_t p = 0; p < hwo; p++) d[p] = s[p] + bv;
        }
}

static void gemm(const tsr_backend *be, bool ta, bool tb, int M, int N, int K, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
    be->sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

/* Several chunks: run them on OpenMP threads with OpenBLAS pinned to one
 * thread (restored by end_parallel). One chunk (B == 1): run serially and
 * let OpenBLAS thread the sgemm. */
static bool go_parallel(const tsr_backend *be, const tsr_conv_geom *g, int *saved_blas) {
    *saved_blas = 0;
    if (g->threads <= 1 || n_chunks(g) < 2) return false;
    if (be == &tsr_backend_cpu) {
        *saved_blas = openblas_get_num_threads();
        if (*saved_blas > 1) openblas_set_num_threads(1);
    }
    return true;
}

static void end_parallel(int saved_blas) {
    if (saved_blas > 1) openblas_set_num_threads(saved_blas);
}

/* the direct 3x3 kernels of the kernel level in use (conv_direct.h) */
static const tsr_conv_direct_kern *direct(void) {
    switch (tsr_cpu_level()) {
    case TSR_CPU_SCALAR: return &tsr_conv_direct_scalar;
    case TSR_CPU_AVX2: return &tsr_conv_direct_avx2;
    default: return &tsr_conv_direct_avx512;
    }
}

static void fwd_chunk(const tsr_backend *be, float *out, const float *x, const float *w, const float *bias,
                      const tsr_conv_geom *g, float *slot, bool accumulate, int b0) {
    int G = g->groups, cing = g->cin / G, coutg = g->cout / G, kg = cing * g->kh * g->kw;
    int64_t hwo = (int64_t)g->ho * g->wo;
    int n = g->B - b0 < g->nb ? g->B - b0 : g->nb, N = (int)(n * hwo);
    float *col = slot, *tmp = slot + (int64_t)kg * g->nb * hwo;
    for (int gi = 0; gi < G; gi++) {
        const float *cp = col;
        if (pointwise(g) && n == 1) cp = x + ((int64_t)b0 * g->cin + gi * cing) * hwo;
        else im2col_chunk(col, x, g, b0, n, gi);
        const float *wg = w + (int64_t)gi * coutg * kg;
        /* one image: sgemm straight into the output rows */
        float *dst = n == 1 ? out + ((int64_t)b0 * g->cout + gi * coutg) * hwo : tmp;
        gemm(be, false, false, coutg, N, kg, wg, kg, cp, N, n == 1 && accumulate ? 1.f : 0.f, dst, N);
        scatter_map(out, dst, N, g, b0, n, gi, accumulate, bias);
    }
}

/* One large image (B == 1, no groups, strided or dilated kernels): the
 * whole-image col matrix of kg x ho*wo floats (14 MB for a 3x3 stride-2
 * conv from 16 channels at 320 px) would go through memory twice, so bands
 * of output rows are unfolded and multiplied one at a time, each band's
 * col small enough to stay in L2, the sgemm writing straight into the
 * output rows. Bands go to OpenMP threads (OpenBLAS pinned to one thread);
 * every output element is the same dot product as in the whole-image path. */
#define BAND_FLOATS (64 * 1024)
static int band_rows(const tsr_conv_geom *g) {
    int64_t kg = (int64_t)g->cin * g->kh * g->kw, per_row = kg * g->wo;
    int r = (int)(BAND_FLOATS / (per_row > 0 ? per_row : 1));
    return r < 1 ? 1 : r;
}

static bool banded(const tsr_conv_geom *g) {
    return g->B == 1 && g->groups == 1 && !pointwise(g) && !shift_layout(g) && band_rows(g) * 2 <= g->ho;
}

static void fwd_band(const tsr_backend *be, float *out, const float *x, const float *w, const float *bias,
                     const tsr_conv_geom *g, float *col, bool accumulate, int oh0, int oh1) {
    int kg = g->cin * g->kh * g->kw, kk = g->kh * g->kw, N = (oh1 - oh0) * g->wo;
    int64_t hw = (int64_t)g->h * g->w, hwo = (int64_t)g->ho * g->wo;
    for (int ci = 0; ci < g->cin; ci++) im2col_plane_rows(col + (int64_t)ci * kk * N, N, x + ci * hw, g, oh0, oh1);
    float *dst = out + (int64_t)oh0 * g->wo;
    gemm(be, false, false, g->cout, N, kg, w, kg, col, N, accumulate ? 1.f : 0.f, dst, (int)hwo);
    if (bias)
        for (int co = 0; co < g->cout; co++) {
            float bv = bias[co], *d = dst + co * hwo;
#pragma omp simd
            for (int p = 0; p < N; p++) d[p] += bv;
        }
}

static void fwd_banded(const tsr_backend *be, float *out, const float *x, const float *w, const float *bias,
                       const tsr_conv_geom *g, float *scratch, bool accumulate) {
    int R = band_rows(g), nbands = (g->ho + R - 1) / R;
    int64_t sf = slot_floats(g);
    int saved = 0;
    if (g->threads > 1 && be == &tsr_backend_cpu) {
        saved = openblas_get_num_threads();
        if (saved > 1) openblas_set_num_threads(1);
    }
#pragma omp parallel for schedule(dynamic) num_threads(g->threads) if (g->threads > 1)
    for (int k = 0; k < nbands; k++) {
        int oh0 = k * R, oh1 = oh0 + R < g->ho ? oh0 + R : g->ho;
        fwd_band(be, out, x, w, bias, g, scratch + tsr_omp_thread_num() * sf, accumulate, oh0, oh1);
    }
    end_parallel(saved);
}

// x (B,cin,h,w), w (cout,cin/G,kh,kw), bias (cout) or NULL, out (B,cout,ho,wo)
void tsr_conv2d_fwd(const tsr_backend *be, float *out, const float *x, const float *w,
                    const float *bias, const tsr_conv_geom *g, float *scratch, bool accumulate) {
    if (direct_fwd_ok(g)) {
        direct()->fwd(out, x, w, bias, g, scratch, accumulate);
        return;
    }
    if (banded(g)) {
        fwd_banded(be, out, x, w, bias, g, scratch, accumulate);
        return;
    }
    int nc = n_chunks(g), sb;
    int64_t sf = slot_floats(g);
    if (go_parallel(be, g, &sb)) {
#pragma omp parallel for schedule(dynamic) num_threads(g->threads)
        for (int k = 0; k < nc; k++)
            fwd_chunk(be, out, x, w, bias, g, scratch + tsr_omp_thread_num() * sf, accumulate, k * g->nb);
        end_parallel(sb);
    } else {
        for (int k = 0; k < nc; k++) fwd_chunk(be, out, x, w, bias, g, scratch, accumulate, k * g->nb);
    }
}

static void bwd_data_chunk(const tsr_backend *be, float *dx, const float *dout, const float *w,
                           const tsr_conv_geom *g, float *slot, int b0) {
    int G = g->groups, cing = g->cin / G, coutg = g->cout / G, kg = cing * g->kh * g->kw;
    int64_t hwo = (int64_t)g->ho * g->wo;
    int n = g->B - b0 < g->nb ? g->B - b0 : g->nb, N = (int)(n * hwo);
    float *col = slot, *tmp = slot + (int64_t)kg * g->nb * hwo;
    for (int gi = 0; gi < G; gi++) {
        const float *dp = tmp;
        if (n == 1) dp = dout + ((int64_t)b0 * g->cout + gi * coutg) * hwo;
        else gather_map(tmp, dout, g, b0, n, gi);
        const float *wg = w + (int64_t)gi * coutg * kg;
        if (pointwise(g) && n == 1) {
            gemm(be, true, false, kg, N, coutg, wg, kg, dp, N, 1.f, dx + ((int64_t)b0 * g->cin + gi * cing) * hwo, N);
        } else {
            gemm(be, true, false, kg, N, coutg, wg, kg, dp, N, 0.f, col, N);
            col2im_chunk(dx, col, g, b0, n, gi);
        }
    }
}

void tsr_conv2d_bwd_data(const tsr_backend *be, float *dx, const float *dout, const float *w,
                         const tsr_conv_geom *g, float *scratch) {
    if (direct_data_ok(g)) {
        direct()->bwd(dx, NULL, dout, NULL, w, g, scratch, false);
        return;
    }
    int nc = n_chunks(g), sb;
    int64_t sf = slot_floats(g);
    if (go_parallel(be, g, &sb)) {
#pragma omp parallel for schedule(dynamic) num_threads(g->threads)
        for (int k = 0; k < nc; k++) bwd_data_chunk(be, dx, dout, w, g, scratch + tsr_omp_thread_num() * sf, k * g->nb);
        end_parallel(sb);
    } else {
        for (int k = 0; k < nc; k++) bwd_data_chunk(be, dx, dout, w, g, scratch, k * g->nb);
    }
}

/* dwp (cout, kg) += this chunk's weight grad */
static void bwd_weight_chunk(const tsr_backend *be, float *dwp, const float *dout, const float *x,
                             const tsr_conv_geom *g, float *slot, int b0) {
    int G = g->groups, cing = g->cin / G, coutg = g->cout / G, kg = cing * g->kh * g->kw;
    int64_t hwo = (int64_t)g->ho * g->wo;
    int n = g->B - b0 < g->nb ? g->B - b0 : g->nb, N = (int)(n * hwo);
    float *col = slot, *tmp = slot + (int64_t)kg * g->nb * hwo;
    for (int gi = 0; gi < G; gi++) {
        const float *cp = col, *dp = tmp;
        if (pointwise(g) && n == 1) cp = x + ((int64_t)b0 * g->cin + gi * cing) * hwo;
        else im2col_chunk(col, x, g, b0, n, gi);
        if (n == 1) dp = dout + ((int64_t)b0 * g->cout + gi * coutg) * hwo;
        else gather_map(tmp, dout, g, b0, n, gi);
        gemm(be, false, true, coutg, kg, N, dp, N, cp, N, 1.f, dwp + (int64_t)gi * coutg * kg, kg);
    }
}

void tsr_conv2d_bwd_weight(const tsr_backend *be, float *dw, float *dbias, const float *dout,
                           const float *x, const tsr_conv_geom *g, float *scratch) {
    int kg = (g->cin / g->groups) * g->kh * g->kw, nc = n_chunks(g), sb;
    int64_t hwo = (int64_t)g->ho * g->wo, sf = slot_floats(g), nw = (int64_t)g->cout * kg;
    if (dw && direct_fwd_ok(g)) {
        direct()->bwd(NULL, dw, dout, x, NULL, g, scratch, false);
    } else if (dw) {
        if (go_parallel(be, g, &sb)) {
            int ng = n_wgroups(g);
            float *parts = scratch + sf * n_slots(g);
#pragma omp parallel num_threads(g->threads)
            {
                float *slot = scratch + tsr_omp_thread_num() * sf;
#pragma omp for schedule(dynamic)
                for (int j = 0; j < ng; j++) {
                    float *pj = parts + j * nw;
                    memset(pj, 0, sizeof(float) * (size_t)nw);
                    for (int k = (int)((int64_t)j * nc / ng); k < (int)((int64_t)(j + 1) * nc / ng); k++)
                        bwd_weight_chunk(be, pj, dout, x, g, slot, k * g->nb);
                }
#pragma omp for schedule(static)
                for (int64_t i = 0; i < nw; i++) {
                    float s = 0.f;
                    for (int j = 0; j < ng; j++) s += parts[j * nw + i];
                    dw[i] += s;
                }
            }
            end_parallel(sb);
        } else {
            for (int k = 0; k < nc; k++) bwd_weight_chunk(be, dw, dout, x, g, scratch, k * g->nb);
        }
    }
    if (dbias) {
#pragma omp parallel for schedule(static) if ((int64_t)g->B * g->cout * hwo > PAR_MIN)
        for (int co = 0; co < g->cout; co++) {
            float s = 0.f;
            for (int b = 0; b < g->B; b++) {
                const float *d = dout + ((int64_t)b * g->cout + co) * hwo;
                float t = 0.f;
#pragma omp simd reduction(+ : t)
                for (int64_t p = 0; p < hwo; p++) t += d[p];
                s += t;
            }
            dbias[co] += s;
        }
    }
}

/* ---- naive twins: direct loops, double accumulation */

void tsr_conv2d_fwd_ref(float *out, const float *x, const float *w, const float *bias,
                        const tsr_conv_geom *g) {
    int G = g->groups, cing = g->cin / G, coutg = g->cout / G;
    for (int b = 0; b < g->B; b++)
        for (int co = 0; co < g->cout; co++)
            for (int oh = 0; oh < g->ho; oh++)
                for (int ow = 0; ow < g->wo; ow++) {
                    double s = bias ? bias[co] : 0.0;
                    int gi = co / coutg;
                    for (int ci = 0; ci < cing; ci++)
                        for (int ki = 0; ki < g->kh; ki++)
                            for (int kj = 0; kj < g->kw; kj++) {
                                int ih = oh * g->sh - g->ph + ki * g->dh, iw = ow * g->sw - g->pw + kj * g->dw;
                                if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                                s += (double)x[(((int64_t)b * g->cin + gi * cing + ci) * g->h + ih) * g->w + iw] *
                                     w[(((int64_t)co * cing + ci) * g->kh + ki) * g->kw + kj];
                            }
                    out[(((int64_t)b * g->cout + co) * g->ho + oh) * g->wo + ow] = (float)s;
                }
}

void tsr_conv2d_bwd_ref(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                        const float *w, const tsr_conv_geom *g) {
    int G = g->groups, cing = g->cin / G, coutg = g->cout / G;
    if (dbias)
        for (int co = 0; co < g->cout; co++) {
            double s = 0;
            for (int b = 0; b < g->B; b++)
                for (int p = 0; p < g->ho * g->wo; p++) s += dout[((int64_t)b * g->cout + co) * g->ho * g->wo + p];
            dbias[co] += (float)s;
        }
    if (dw)
        for (int co = 0; co < g->cout; co++)
            for (int ci = 0; ci < cing; ci++)
                for (int ki = 0; ki < g->kh; ki++)
                    for (int kj = 0; kj < g->kw; kj++) {
                        double s = 0;
                        int gi = co / coutg;
                        for (int b = 0; b < g->B; b++)
                            for (int oh = 0; oh < g->ho; oh++)
                                for (int ow = 0; ow < g->wo; ow++) {
                                    int ih = oh * g->sh - g->ph + ki * g->dh, iw = ow * g->sw - g->pw + kj * g->dw;
                                    if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                                    s += (double)dout[(((int64_t)b * g->cout + co) * g->ho + oh) * g->wo + ow] *
                                         x[(((int64_t)b * g->cin + gi * cing + ci) * g->h + ih) * g->w + iw];
                                }
                        dw[(((int64_t)co * cing + ci) * g->kh + ki) * g->kw + kj] += (float)s;
                    }
    if (dx)
        for (int b = 0; b < g->B; b++)
            for (int c = 0; c < g->cin; c++)
                for (int ih = 0; ih < g->h; ih++)
                    for (int iw = 0; iw < g->w; iw++) {
                        double s = 0;
                        int gi = c / cing, ci = c % cing;
                        for (int cg = 0; cg < coutg; cg++) {
                            int co = gi * coutg + cg;
                            for (int ki = 0; ki < g->kh; ki++)
                                for (int kj = 0; kj < g->kw; kj++) {
                                    int th = ih + g->ph - ki * g->dh, tw = iw + g->pw - kj * g->dw;
                                    if (th < 0 || tw < 0 || th % g->sh || tw % g->sw) continue;
                                    int oh = th / g->sh, ow = tw / g->sw;
                                    if (oh >= g->ho || ow >= g->wo) continue;
                                    s += (double)dout[(((int64_t)b * g->cout + co) * g->ho + oh) * g->wo + ow] *
                                         w[(((int64_t)co * cing + ci) * g->kh + ki) * g->kw + kj];
                                }
                        }
                        dx[(((int64_t)b * g->cin + c) * g->h + ih) * g->w + iw] += (float)s;
                    }
}

/* ---- autograd wrappers */

/* the forward and input-grad kernels only use the per-thread slots; the
 * weight grad also needs the group partials */
static float *scratch_for(tsr_ctx *c, const tsr_conv_geom *g, bool weight_grad) {
    int64_t n = weight_grad || direct3x3(g) ? tsr_conv_scratch_floats(g) : slot_floats(g) * n_slots(g);
    return tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)(n + 1));
}

static void conv2d_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0], *w = n->in[1], *bias = n->n_in > 2 ? n->in[2] : NULL;
    const tsr_conv_geom *g = n->saved;
    const float *go = n->out->grad;
    bool gw = w->requires_grad, gb = bias && bias->requires_grad;
    float *scratch = scratch_for(c, g, gw);
    if (direct_fwd_ok(g) && direct_data_ok(g) && x->requires_grad) {
        /* one pass for both halves; a fresh input grad is written, not zeroed and added to */
        bool fresh = !x->grad && !x->is_param;
        if (fresh) x->grad = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)x->numel);
        else if (x->grad_rows) x->grad_rows_all = true; /* see tsr_grad */
        direct()->bwd(x->grad, gw ? tsr_grad(c, w) : NULL, go, tsr_f32(x), tsr_f32(w), g, scratch, fresh);
        if (gb) tsr_conv2d_bwd_weight(c->be, NULL, tsr_grad(c, bias), go, tsr_f32(x), g, scratch);
        return;
    }
    if (x->requires_grad) tsr_conv2d_bwd_data(c->be, tsr_grad(c, x), go, tsr_f32(w), g, scratch);
    if (gw || gb)
        tsr_conv2d_bwd_weight(c->be, gw ? tsr_grad(c, w) : NULL, gb ? tsr_grad(c, bias) : NULL, go,
                              tsr_f32(x), g, scratch);
}

static void check_inputs(const tsr_tensor *x, const tsr_tensor *w, const tsr_tensor *bias, int G,
                         int bias_len) {
    TSR_ASSERT(x->dtype == TSR_F32 && w->dtype == TSR_F32);
    TSR_ASSERT(x->ndim == 4 && w->ndim == 4);
    TSR_ASSERT(G >= 1);
    if (bias) TSR_ASSERT(bias->dtype == TSR_F32 && bias->ndim == 1 && bias->shape[0] == bias_len);
}

tsr_tensor *tsr_conv2d(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *bias,
                       const tsr_conv_opts *o) {
    int G = or_default(o ? o->groups : 0, 1);
    check_inputs(x, w, bias, G, (int)w->shape[0]);
    int cout = (int)w->shape[0];
    TSR_ASSERT(x->shape[1] == w->shape[1] * G && cout % G == 0);
    tsr_conv_geom *g = tsr_arena_alloc(&c->arena, sizeof *g);
    *g = tsr_conv_geom_make((int)x->shape[0], (int)x->shape[1], (int)x->shape[2], (int)x->shape[3],
                            cout, (int)w->shape[2], (int)w->shape[3], o);
    TSR_ASSERT(g->ho > 0 && g->wo > 0);
    tsr_tensor *out = tsr_new(c, TSR_F32, TSR_DIMS(g->B, cout, g->ho, g->wo));
    tsr_conv2d_fwd(c->be, tsr_f32(out), tsr_f32(x), tsr_f32(w), bias ? tsr_f32(bias) : NULL, g,
                   scratch_for(c, g, false), false);
    tsr_tensor *ins[3] = {x, w, bias};
    tsr_node *n = tsr_record(c, "conv2d", conv2d_backward, out, bias ? 3 : 2, ins);
    if (n) n->saved = g;
    return out;
}

/* per-channel bias over a (B,C,S) map: add (forward) or sum into db */
static void channel_bias_add(float *y, const float *bias, int B, int C, int64_t S) {
#pragma omp parallel for schedule(static) if ((int64_t)B * C * S > PAR_MIN)
    for (int u = 0; u < B * C; u++) {
        float bv = bias[u % C], *p = y + (int64_t)u * S;
#pragma omp simd
        for (int64_t s = 0; s < S; s++) p[s] += bv;
    }
}

static void channel_sum(float *db, const float *dy, int B, int C, int64_t S) {
#pragma omp parallel for schedule(static) if ((int64_t)B * C * S > PAR_MIN)
    for (int ch = 0; ch < C; ch++) {
        float s = 0.f;
        for (int b = 0; b < B; b++) {
            const float *p = dy + ((int64_t)b * C + ch) * S;
            float t = 0.f;
#pragma omp simd reduction(+ : t)
            for (int64_t k = 0; k < S; k++) t += p[k];
            s += t;
        }
        db[ch] += s;
    }
}

/* The transposed conv is the input-gradient of the conv whose image is the
 * transposed conv's output: forward = bwd_data, input grad = conv fwd,
 * weight grad = bwd_weight with the roles of image and map as they are. */
static void conv_transpose2d_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0], *w = n->in[1], *bias = n->n_in > 2 ? n->in[2] : NULL;
    const tsr_conv_geom *g = n->saved;
    const float *gy = n->out->grad;
    float *scratch = scratch_for(c, g, w->requires_grad);
    if (x->requires_grad) tsr_conv2d_fwd(c->be, tsr_grad(c, x), gy, tsr_f32(w), NULL, g, scratch, true);
    if (w->requires_grad) tsr_conv2d_bwd_weight(c->be, tsr_grad(c, w), NULL, tsr_f32(x), gy, g, scratch);
    if (bias && bias->requires_grad) channel_sum(tsr_grad(c, bias), gy, g->B, g->cin, (int64_t)g->h * g->w);
}

tsr_tensor *tsr_conv_transpose2d(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *bias,
                                 const tsr_conv_opts *o) {
    int G = or_default(o ? o->groups : 0, 1);
    int cin = (int)x->shape[1], cout = (int)w->shape[1] * G;
    check_inputs(x, w, bias, G, cout);
    TSR_ASSERT(w->shape[0] == cin && cin % G == 0);
    tsr_conv_opts oo;
    memset(&oo, 0, sizeof oo);
    if (o) oo = *o;
    int sh = or_default(oo.stride[0], 1), sw = or_default(oo.stride[1], 1);
    int dh = or_default(oo.dil[0], 1), dw = or_default(oo.dil[1], 1);
    int kh = (int)w->shape[2], kw = (int)w->shape[3];
    /* torch: output padding must be smaller than stride or dilation */
    TSR_ASSERT(oo.out_pad[0] >= 0 && (oo.out_pad[0] < sh || oo.out_pad[0] < dh));
    TSR_ASSERT(oo.out_pad[1] >= 0 && (oo.out_pad[1] < sw || oo.out_pad[1] < dw));
    int H = (int)x->shape[2], W = (int)x->shape[3];
    int ht = (H - 1) * sh - 2 * oo.pad[0] + dh * (kh - 1) + oo.out_pad[0] + 1;
    int wt = (W - 1) * sw - 2 * oo.pad[1] + dw * (kw - 1) + oo.out_pad[1] + 1;
    TSR_ASSERT(ht > 0 && wt > 0);
    tsr_conv_geom *g = tsr_arena_alloc(&c->arena, sizeof *g);
    *g = tsr_conv_geom_make((int)x->shape[0], cout, ht, wt, cin, kh, kw, &oo);
    /* output padding >= stride (allowed when below the dilation) leaves
     * image rows no map position reaches: pin the map to x's size */
    TSR_ASSERT(g->ho >= H && g->wo >= W);
    g->ho = H, g->wo = W;
    pick_chunk(g);
    tsr_tensor *out = tsr_zeros(c, TSR_F32, TSR_DIMS(g->B, cout, ht, wt));
    tsr_conv2d_bwd_data(c->be, tsr_f32(out), tsr_f32(x), tsr_f32(w), g, scratch_for(c, g, false));
    if (bias) channel_bias_add(tsr_f32(out), tsr_f32(bias), g->B, cout, (int64_t)ht * wt);
    tsr_tensor *ins[3] = {x, w, bias};
    tsr_node *n = tsr_record(c, "conv_transpose2d", conv_transpose2d_backward, out, bias ? 3 : 2, ins);
    if (n) n->saved = g;
    return out;
}
