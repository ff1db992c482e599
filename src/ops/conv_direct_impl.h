/* tessera ops: the direct 3x3 convolution kernels (see conv_direct.h),
 * compiled once per kernel level in conv_direct_<level>.c. VW floats per
 * vector (16 AVX-512, 8 AVX2, 4 SSE), DQV vectors of positions per
 * register block and WJ channels per weight-grad block sized to the
 * register file; the result differs between levels only by rounding
 * (fused or unfused multiply-adds, lane partial sums of VW lanes). */
#include "ops/conv_direct.h"

#include <string.h>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#if !defined(TSR_KLEVEL)
#error "define TSR_KLEVEL before including conv_direct_impl.h"
#endif
#define KCAT2(a, b) a##_##b
#define KCAT(a, b) KCAT2(a, b)
#define KV(name) KCAT(name, TSR_KLEVEL)

#if defined(__AVX512F__)
#define VW 16
#define DQV 3
#define WJ 8
typedef float vf __attribute__((vector_size(64)));
/* a + b*c fused: -std=c11 turns off contraction, and unfused the kernels
 * run at half speed */
#define VFMA(a, b, c) ((a) = (vf)_mm512_fmadd_ps((__m512)(b), (__m512)(c), (__m512)(a)))
static inline vf vbcast(float s) { return (vf)_mm512_set1_ps(s); }
#elif defined(__AVX2__) && defined(__FMA__)
/* 16 registers: 8 channels x 1 vector accumulate, 4 x 3 for the weight grad */
#define VW 8
#define DQV 1
#define WJ 4
typedef float vf __attribute__((vector_size(32)));
#define VFMA(a, b, c) ((a) = (vf)_mm256_fmadd_ps((__m256)(b), (__m256)(c), (__m256)(a)))
static inline vf vbcast(float s) { return (vf)_mm256_set1_ps(s); }
#else
#define VW 4
#define DQV 1
#define WJ 2
typedef float vf __attribute__((vector_size(16)));
#define VFMA(a, b, c) ((a) += (b) * (c))
static inline vf vbcast(float s) { return (vf){s, s, s, s}; }
#endif
#define DQB (VW * DQV)

static inline vf vload(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void vstore(float *p, vf v) { memcpy(p, &v, sizeof v); }
/* keeps a value used several times in a register: folded into each use
 * as a memory operand it would be loaded once per use */
#if defined(__GNUC__) && (defined(__AVX512F__) || defined(__AVX2__))
#define VPIN(v) __asm__("" : "+x"(v))
#else
#define VPIN(v) ((void)0)
#endif

/* short rows (7..28 floats here): masked 16-lane blocks instead of a
 * memcpy call or a scalar remainder loop per row */
static inline void row_copy(float *d, const float *s, int n) {
    int k = 0;
#ifdef __AVX512F__
    for (; k + 16 <= n; k += 16) _mm512_storeu_ps(d + k, _mm512_loadu_ps(s + k));
    if (k < n) {
        __mmask16 m = (__mmask16)((1u << (n - k)) - 1u);
        _mm512_mask_storeu_ps(d + k, m, _mm512_maskz_loadu_ps(m, s + k));
    }
#else
    for (; k < n; k++) d[k] = s[k];
#endif
}

/* d[k] (+)= s[k] + bv over a short row */
static inline void row_store(float *d, const float *s, int n, float bv, bool accumulate) {
    int k = 0;
#ifdef __AVX512F__
    __m512 b = _mm512_set1_ps(bv);
    for (; k < n; k += 16) {
        __mmask16 m = n - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - k)) - 1u);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, s + k), b);
        if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, d + k));
        _mm512_mask_storeu_ps(d + k, m, v);
    }
#else
    for (; k < n; k++) d[k] = (accumulate ? d[k] : 0.f) + (s[k] + bv);
#endif
}

/* planes (c,h,w) -> (c,pp) with a zero border, zeros to the end */
static void pad_planes(float *dst, const float *src, int c, int h, int w, const dgeom *d) {
    for (int ci = 0; ci < c; ci++) {
        float *p = dst + (int64_t)ci * d->pp;
        const float *s = src + (int64_t)ci * h * w;
        memset(p, 0, sizeof(float) * (size_t)(d->wp + 1));
        for (int r = 0; r < h; r++) {
            float *row = p + (int64_t)(r + 1) * d->wp + 1;
            row_copy(row, s + (int64_t)r * w, w);
            row[w] = 0.f, row[w + 1] = 0.f;
        }
        int64_t used = (int64_t)(h + 1) * d->wp + 1;
        memset(p + used, 0, sizeof(float) * (size_t)(d->pp - used));
    }
}

/* one register block: DCO output channels x NV vectors of positions from
 * q0; NV is a literal at every call, so each use compiles to its own
 * fully unrolled loop with the accumulators in registers */
static inline __attribute__((always_inline)) void direct_block(float *out, const float *in, const float *wpk,
                                                               int cin, int cb, int64_t q0, const int64_t *offs,
                                                               const dgeom *d, const int NV) {
    vf acc[DCO][DQV];
    for (int j = 0; j < DCO; j++)
        for (int v = 0; v < NV; v++) acc[j][v] = (vf){0};
    for (int ci = 0; ci < cin; ci++) {
        const float *xp = in + (int64_t)ci * d->pp + q0;
        const float *wb = wpk + ((int64_t)cb * cin + ci) * 9 * DCO;
        for (int t = 0; t < 9; t++) {
            vf xv[DQV];
            for (int v = 0; v < NV; v++) xv[v] = vload(xp + offs[t] + VW * v);
            const float *wt = wb + t * DCO;
#pragma GCC unroll 8
            for (int j = 0; j < DCO; j++) {
                vf sv = vbcast(wt[j]);
                for (int v = 0; v < NV; v++) VFMA(acc[j][v], sv, xv[v]);
            }
        }
    }
    for (int j = 0; j < DCO; j++)
        for (int v = 0; v < NV; v++) vstore(out + (int64_t)(cb * DCO + j) * d->qn + q0 + VW * v, acc[j][v]);
}

/* out (co,qn) = sum_ci sum_tap wpk * shifted in (ci,pp); wpk is laid out
 * [co/DCO][ci][tap][DCO] so a block's broadcasts are contiguous. The grid
 * ends on whole vectors, not whole blocks: the last block is narrower. */
static void direct_kernel(float *out, const float *in, const float *wpk, int cin, int cout, const dgeom *d) {
    int64_t offs[9];
    for (int t = 0; t < 9; t++) offs[t] = (int64_t)(t / 3) * d->wp + t % 3;
    int64_t full = d->qn / DQB * DQB;
    int tail = (int)((d->qn - full) / VW);
    for (int cb = 0; cb < cout / DCO; cb++) {
        for (int64_t q0 = 0; q0 < full; q0 += DQB) direct_block(out, in, wpk, cin, cb, q0, offs, d, DQV);
        if (DQV > 2 && tail == 2) direct_block(out, in, wpk, cin, cb, full, offs, d, 2);
        else if (DQV > 1 && tail == 1) direct_block(out, in, wpk, cin, cb, full, offs, d, 1);
    }
}

/* grid (c,qn) -> planes (c,h,w): store, add, or add bias */
static void ungrid(float *dst, const float *grid, int c, int h, int w, const dgeom *d, bool accumulate,
                   const float *bias) {
    for (int ci = 0; ci < c; ci++) {
        float bv = bias ? bias[ci] : 0.f;
        for (int r = 0; r < h; r++) {
            row_store(dst + ((int64_t)ci * h + r) * w, grid + (int64_t)ci * d->qn + (int64_t)r * d->wp, w, bv,
                      accumulate);
        }
    }
}

static void KV(direct_fwd)(float *out, const float *x, const float *w, const float *bias, const tsr_conv_geom *g,
                       float *scratch, bool accumulate) {
    dgeom d = dgeom_of(g);
    float *wpk = scratch + d.slot * n_slots(g);
    int cin = g->cin, cout = g->cout;
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int t = 0; t < 9; t++)
                wpk[(((int64_t)(co / DCO) * cin + ci) * 9 + t) * DCO + co % DCO] = w[((int64_t)co * cin + ci) * 9 + t];
    int64_t hw = (int64_t)g->h * g->w;
#pragma omp parallel for schedule(dynamic) num_threads(g->threads) if (g->threads > 1 && g->B > 1)
    for (int b = 0; b < g->B; b++) {
        float *slot = scratch + tsr_omp_thread_num() * d.slot;
        float *xp = slot, *grid = slot + (int64_t)(cin + cout) * d.pp;
        pad_planes(xp, x + (int64_t)b * cin * hw, cin, g->h, g->w, &d);
        direct_kernel(grid, xp, wpk, cin, cout, &d);
        ungrid(out + (int64_t)b * cout * hw, grid, cout, g->h, g->w, &d, accumulate, bias);
    }
}

/* lane partials acc16 [co][ci][tap][16] (lanes VW..15 unused below 16
 * lanes) += one image's weight grad; channels in groups of WJ so the
 * 3*WJ accumulators stay in registers */
static void direct_wgrad_image(float *acc16, const float *dgrid, int64_t dstride, const float *xp, int cin,
                               int cout, const dgeom *d) {
    for (int cb = 0; cb < cout / WJ; cb++)
        for (int ci = 0; ci < cin; ci++)
            for (int ki = 0; ki < 3; ki++) {
                vf acc[WJ][3];
                for (int j = 0; j < WJ; j++)
                    for (int kj = 0; kj < 3; kj++) acc[j][kj] = (vf){0};
                const float *xr = xp + (int64_t)ci * d->pp + (int64_t)ki * d->wp;
                const float *dr = dgrid + (int64_t)cb * WJ * dstride;
                for (int64_t q = 0; q < d->qn; q += VW) {
                    vf x0 = vload(xr + q), x1 = vload(xr + q + 1), x2 = vload(xr + q + 2);
#pragma GCC unroll 8
                    for (int j = 0; j < WJ; j++) {
                        vf dv = vload(dr + (int64_t)j * dstride + q);
                        VPIN(dv);
                        VFMA(acc[j][0], dv, x0);
                        VFMA(acc[j][1], dv, x1);
                        VFMA(acc[j][2], dv, x2);
                    }
                }
                for (int j = 0; j < WJ; j++)
                    for (int kj = 0; kj < 3; kj++) {
                        float *a = acc16 + ((((int64_t)(cb * WJ + j) * cin + ci) * 9) + ki * 3 + kj) * 16;
                        vstore(a, vload(a) + acc[j][kj]);
                    }
            }
}

/* weights for the input grad: transposed and flipped, packed like the
 * forward's with the roles of cin and cout swapped */
static void pack_wt_flipped(float *wpk, const float *w, int cin, int cout) {
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int t = 0; t < 9; t++)
                wpk[(((int64_t)(ci / DCO) * cout + co) * 9 + (8 - t)) * DCO + ci % DCO] =
                    w[((int64_t)co * cin + ci) * 9 + t];
}

/* Both backward halves in one pass over the images, each map grad plane
 * padded once: dx (+)= conv(dout) with w transposed and flipped (dx may be
 * NULL; overwrite: write instead of adding), dw += weight grad (may be
 * NULL). The padded map grad shifted by one row and column is the weight
 * grad's zero-edged grid. Images fall into fixed groups, each summing its
 * weight grad into its own partial: any thread may take any group and the
 * summation order stays the same. */
static void KV(direct_bwd)(float *dx, float *dw, const float *dout, const float *x, const float *w,
                       const tsr_conv_geom *g, float *scratch, bool overwrite) {
    dgeom d = dgeom_of(g);
    int cin = g->cin, cout = g->cout, ng = d.ng;
    float *wpk = scratch + d.slot * n_slots(g);
    float *parts = wpk + round_up(d.nw, 16);
    int64_t hw = (int64_t)g->h * g->w, nw = d.nw;
    if (dx) pack_wt_flipped(wpk, w, cin, cout);
#pragma omp parallel num_threads(g->threads) if (g->threads > 1 && ng > 1)
    {
        float *slot = scratch + tsr_omp_thread_num() * d.slot;
        float *xp = slot, *dp = slot + (int64_t)cin * d.pp, *grid = slot + (int64_t)(cin + cout) * d.pp;
        float *acc16 = grid + (int64_t)(cin > cout ? cin : cout) * d.qn;
#pragma omp for schedule(dynamic)
        for (int j = 0; j < ng; j++) {
            if (dw) memset(acc16, 0, sizeof(float) * (size_t)(nw * 16));
            for (int b = (int)((int64_t)j * g->B / ng); b < (int)((int64_t)(j + 1) * g->B / ng); b++) {
                pad_planes(dp, dout + (int64_t)b * cout * hw, cout, g->h, g->w, &d);
                if (dx) {
                    direct_kernel(grid, dp, wpk, cout, cin, &d);
                    ungrid(dx + (int64_t)b * cin * hw, grid, cin, g->h, g->w, &d, !overwrite, NULL);
                }
                if (dw) {
                    pad_planes(xp, x + (int64_t)b * cin * hw, cin, g->h, g->w, &d);
                    direct_wgrad_image(acc16, dp + d.wp + 1, d.pp, xp, cin, cout, &d);
                }
            }
            if (!dw) continue;
            float *pj = parts + j * nw;
            for (int64_t i = 0; i < nw; i++) {
                float s = 0.f;
                for (int l = 0; l < 16; l++) s += acc16[i * 16 + l];
                pj[i] = s;
            }
        }
        if (dw) {
#pragma omp for schedule(static)
            for (int64_t i = 0; i < nw; i++) {
                float s = 0.f;
                for (int j = 0; j < ng; j++) s += parts[j * nw + i];
                dw[i] += s;
            }
        }
    }
}

const tsr_conv_direct_kern KV(tsr_conv_direct) = {KV(direct_fwd), KV(direct_bwd)};
