/* tessera ops: pooling and upsampling over (B,C,Hh,Ww) maps, for the CNN
 * classifier and the encoder/decoder families: max and average pooling
 * (torch semantics, floor output size), nearest upsampling by integer
 * factors and bilinear resizing as torch F.interpolate. Every kernel runs
 * over independent (b,c) planes, so OpenMP over planes is deterministic. */
#include "tessera/cpu.h"
#include "tessera/ops.h"

#include <math.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* the 2x2 max pooling rows have AVX-512 and AVX2 forms, compiled for their
 * levels with target attributes and used when the kernel level has them;
 * every form selects the same elements, so the results are the same bits */
#define POOL_AVX512 1
#define AVX512_FN static __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define AVX2_FN static __attribute__((target("avx2,fma")))
#endif

#define PAR_MIN 32768

typedef struct {
    int64_t planes;
    int h, w, ho, wo, kh, kw, sh, sw, ph, pw;
} pool_geom;

#ifdef POOL_AVX512
/* rows are 7..14 outputs wide here, too short for the auto-vectoriser:
 * masked 16-lane blocks, even/odd columns split by a permute; returns the
 * outputs done (all) */
AVX512_FN int maxpool_2x2_row_avx512(float *o, int32_t *oi, const float *r0, const float *r1, int32_t base, int w,
                                     int wo) {
    int ow = 0;
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    const __m512i lane2 = _mm512_add_epi32(ev, _mm512_set1_epi32(base));
    for (; ow < wo; ow += 16) {
        int n = wo - ow < 16 ? wo - ow : 16;
        __mmask16 m16 = (__mmask16)((1u << n) - 1u);
        uint32_t m32 = n == 16 ? 0xffffffffu : (1u << (2 * n)) - 1u;
        __mmask16 lo = (__mmask16)(m32 & 0xffffu), hi = (__mmask16)(m32 >> 16);
        __m512 a0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * ow), a1 = _mm512_maskz_loadu_ps(hi, r0 + 2 * ow + 16);
        __m512 c0 = _mm512_maskz_loadu_ps(lo, r1 + 2 * ow), c1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * ow + 16);
        __m512 va = _mm512_permutex2var_ps(a0, ev, a1), vb = _mm512_permutex2var_ps(a0, od, a1);
        __m512 vc = _mm512_permutex2var_ps(c0, ev, c1), vd = _mm512_permutex2var_ps(c0, od, c1);
        __m512i k = _mm512_add_epi32(lane2, _mm512_set1_epi32(2 * ow));
        __m512 m = va;
        __m512i ki = k;
        __mmask16 t = _mm512_cmp_ps_mask(vb, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(vb, vb, _CMP_UNORD_Q);
        m = _mm512_mask_blend_ps(t, m, vb);
        ki = _mm512_mask_blend_epi32(t, ki, _mm512_add_epi32(k, _mm512_set1_epi32(1)));
        t = _mm512_cmp_ps_mask(vc, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(vc, vc, _CMP_UNORD_Q);
        m = _mm512_mask_blend_ps(t, m, vc);
        ki = _mm512_mask_blend_epi32(t, ki, _mm512_add_epi32(k, _mm512_set1_epi32(w)));
        t = _mm512_cmp_ps_mask(vd, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(vd, vd, _CMP_UNORD_Q);
        m = _mm512_mask_blend_ps(t, m, vd);
        ki = _mm512_mask_blend_epi32(t, ki, _mm512_add_epi32(k, _mm512_set1_epi32(w + 1)));
        _mm512_mask_storeu_ps(o + ow, m16, m);
        _mm512_mask_storeu_epi32(oi + ow, m16, ki);
    }
    return ow;
}

/* 8 outputs a step: even/odd columns split by a shuffle and a lane
 * permute, the tail by masked loads and stores; returns the outputs done */
AVX2_FN int maxpool_2x2_row_avx2(float *o, int32_t *oi, const float *r0, const float *r1, int32_t base, int w, int wo) {
    const __m256i lane = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    const __m256i lane2 = _mm256_add_epi32(_mm256_add_epi32(lane, lane), _mm256_set1_epi32(base));
    int ow = 0;
    for (; ow < wo; ow += 8) {
        int n = wo - ow < 8 ? wo - ow : 8;
        __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * n), lane);     /* inputs 0..7 */
        __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * n - 8), lane); /* inputs 8..15 */
        __m256i mo = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);         /* outputs */
        __m256 a0 = _mm256_maskload_ps(r0 + 2 * ow, m0), a1 = _mm256_maskload_ps(r0 + 2 * ow + 8, m1);
        __m256 c0 = _mm256_maskload_ps(r1 + 2 * ow, m0), c1 = _mm256_maskload_ps(r1 + 2 * ow + 8, m1);
        /* shuffle gives (0 2 8 10 | 4 6 12 14); the 64-bit permute 0 2 1 3 restores 0 2 4 .. 14 */
        __m256 va = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a0, a1, 0x88)), 0xd8));
        __m256 vb = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a0, a1, 0xdd)), 0xd8));
        __m256 vc = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(c0, c1, 0x88)), 0xd8));
        __m256 vd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(c0, c1, 0xdd)), 0xd8));
        __m256i k = _mm256_add_epi32(lane2, _mm256_set1_epi32(2 * ow));
        __m256 m = va;
        __m256i ki = k;
        __m256 t = _mm256_or_ps(_mm256_cmp_ps(vb, m, _CMP_GT_OQ), _mm256_cmp_ps(vb, vb, _CMP_UNORD_Q));
        m = _mm256_blendv_ps(m, vb, t);
        ki = _mm256_blendv_epi8(ki, _mm256_add_epi32(k, _mm256_set1_epi32(1)), _mm256_castps_si256(t));
        t = _mm256_or_ps(_mm256_cmp_ps(vc, m, _CMP_GT_OQ), _mm256_cmp_ps(vc, vc, _CMP_UNORD_Q));
        m = _mm256_blendv_ps(m, vc, t);
        ki = _mm256_blendv_epi8(ki, _mm256_add_epi32(k, _mm256_set1_epi32(w)), _mm256_castps_si256(t));
        t = _mm256_or_ps(_mm256_cmp_ps(vd, m, _CMP_GT_OQ), _mm256_cmp_ps(vd, vd, _CMP_UNORD_Q));
        m = _mm256_blendv_ps(m, vd, t);
        ki = _mm256_blendv_epi8(ki, _mm256_add_epi32(k, _mm256_set1_epi32(w + 1)), _mm256_castps_si256(t));
        _mm256_maskstore_ps(o + ow, mo, m);
        _mm256_maskstore_epi32(oi + ow, mo, ki);
    }
    return ow;
}
#endif

/* one row pair of 2x2/2 pooling: torch's scan order (row by row, a later
 * element takes over when larger or NaN) as selects */
static inline void maxpool_2x2_row(float *o, int32_t *oi, const float *r0, const float *r1, int32_t base, int w,
                                   int wo) {
    int ow = 0;
#ifdef POOL_AVX512
    if (tsr_cpu_level() >= TSR_CPU_AVX512)
        ow = maxpool_2x2_row_avx512(o, oi, r0, r1, base, w, wo);
    else if (tsr_cpu_level() >= TSR_CPU_AVX2)
        ow = maxpool_2x2_row_avx2(o, oi, r0, r1, base, w, wo);
#endif
    for (; ow < wo; ow++) {
        float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
        float m = a;
        int32_t k = base + 2 * ow;
        int tb = (b > m) | (b != b);
        m = tb ? b : m;
        k = tb ? base + 2 * ow + 1 : k;
        int tc = (c > m) | (c != c);
        m = tc ? c : m;
        k = tc ? base + w + 2 * ow : k;
        int td = (d > m) | (d != d);
        m = td ? d : m;
        k = td ? base + w + 2 * ow + 1 : k;
        o[ow] = m;
        oi[ow] = k;
    }
}

/* the classifier's 2x2/2 pooling without padding */
static void maxpool_2x2(float *out, int32_t *idx, const float *x, const pool_geom *g) {
    int64_t hw = (int64_t)g->h * g->w, hwo = (int64_t)g->ho * g->wo;
#pragma omp parallel for schedule(static) if (g->planes * hw > PAR_MIN)
    for (int64_t p = 0; p < g->planes; p++)
        for (int oh = 0; oh < g->ho; oh++) {
            const float *r0 = x + p * hw + (int64_t)(2 * oh) * g->w;
            maxpool_2x2_row(out + p * hwo + (int64_t)oh * g->wo, idx + p * hwo + (int64_t)oh * g->wo, r0, r0 + g->w,
                            2 * oh * g->w, g->w, g->wo);
        }
}

// x (P,h,w) -> out (P,ho,wo), idx: flat argmax within the plane
static void maxpool_fwd(float *out, int32_t *idx, const float *x, const pool_geom *g) {
    int64_t hw = (int64_t)g->h * g->w, hwo = (int64_t)g->ho * g->wo;
#pragma omp parallel for schedule(static) if (g->planes * hw > PAR_MIN)
    for (int64_t p = 0; p < g->planes; p++) {
        const float *xp = x + p * hw;
        for (int oh = 0; oh < g->ho; oh++) {
            int ih0 = oh * g->sh - g->ph, ih1 = ih0 + g->kh;
            if (ih0 < 0) ih0 = 0;
            if (ih1 > g->h) ih1 = g->h;
            for (int ow = 0; ow < g->wo; ow++) {
                int iw0 = ow * g->sw - g->pw, iw1 = iw0 + g->kw;
                if (iw0 < 0) iw0 = 0;
                if (iw1 > g->w) iw1 = g->w;
                /* torch: the first in-window element seeds the max; later
                 * ones replace it when larger or NaN. Written as selects
                 * because the comparison is a coin flip on real data. */
                int32_t mi = ih0 * g->w + iw0;
                float m = xp[mi];
                for (int ih = ih0; ih < ih1; ih++)
                    for (int iw = iw0; iw < iw1; iw++) {
                        int32_t k = ih * g->w + iw;
                        float v = xp[k];
                        int take = (v > m) | (v != v);
                        m = take ? v : m;
                        mi = take ? k : mi;
                    }
                out[p * hwo + oh * g->wo + ow] = m;
                idx[p * hwo + oh * g->wo + ow] = mi;
            }
        }
    }
}

static void maxpool_bwd(float *dx, const float *dout, const int32_t *idx, const pool_geom *g) {
    int64_t hw = (int64_t)g->h * g->w, hwo = (int64_t)g->ho * g->wo;
#pragma omp parallel for schedule(static) if (g->planes * hw > PAR_MIN)
    for (int64_t p = 0; p < g->planes; p++)
        for (int64_t o = 0; o < hwo; o++)
            dx[p * hw + idx[p * hwo + o]] += dout[p * hwo + o];
}

/* count_include_pad: the divisor is always kh*kw (windows never reach past
 * the padded border without ceil_mode) */
static void avgpool_fwd(float *out, const float *x, const pool_geom *g) {
    int64_t hw = (int64_t)g->h * g->w, hwo = (int64_t)g->ho * g->wo;
    float inv = 1.0f / (float)(g->kh * g->kw);
#pragma omp parallel for schedule(static) if (g->planes * hw > PAR_MIN)
    for (int64_t p = 0; p < g->planes; p++) {
        const float *xp = x + p * hw;
        for (int oh = 0; oh < g->ho; oh++)
            for (int ow = 0; ow < g->wo; ow++) {
                float s = 0.f;
                for (int ki = 0; ki < g->kh; ki++) {
                    int ih = oh * g->sh - g->ph + ki;
                    if (ih < 0 || ih >= g->h) continue;
                    for (int kj = 0; kj < g->kw; kj++) {
                        int iw = ow * g->sw - g->pw + kj;
                        if (iw >= 0 && iw < g->w) s += xp[ih * g->w + iw];
                    }
                }
                out[p * hwo + oh * g->wo + ow] = s * inv;
            }
    }
}

static void avgpool_bwd(float *dx, const float *dout, const pool_geom *g) {
    int64_t hw = (int64_t)g->h * g->w, hwo = (int64_t)g->ho * g->wo;
    float inv = 1.0f / (float)(g->kh * g->kw);
#pragma omp parallel for schedule(static) if (g->planes * hw > PAR_MIN)
    for (int64_t p = 0; p < g->planes; p++) {
        float *dp = dx + p * hw;
        for (int oh = 0; oh < g->ho; oh++)
            for (int ow = 0; ow < g->wo; ow++) {
                float d = dout[p * hwo + oh * g->wo + ow] * inv;
                for (int ki = 0; ki < g->kh; ki++) {
                    int ih = oh * g->sh - g->ph + ki;
                    if (ih < 0 || ih >= g->h) continue;
                    for (int kj = 0; kj < g->kw; kj++) {
                        int iw = ow * g->sw - g->pw + kj;
                        if (iw >= 0 && iw < g->w) dp[ih * g->w + iw] += d;
                    }
                }
            }
    }
}

static pool_geom pool_make(const tsr_tensor *x, const int k[2], const int s[2], const int p[2]) {
    TSR_ASSERT(x->dtype == TSR_F32 && x->ndim == 4);
    pool_geom g;
    g.planes = x->shape[0] * x->shape[1];
    g.h = (int)x->shape[2], g.w = (int)x->shape[3];
    g.kh = k[0], g.kw = k[1];
    g.sh = s && s[0] ? s[0] : k[0];
    g.sw = s && s[1] ? s[1] : k[1];
    g.ph = p ? p[0] : 0, g.pw = p ? p[1] : 0;
    TSR_ASSERT(g.kh > 0 && g.kw > 0 && g.sh > 0 && g.sw > 0);
    /* torch: padding at most half the kernel */
    TSR_ASSERT(g.ph >= 0 && g.pw >= 0 && 2 * g.ph <= g.kh && 2 * g.pw <= g.kw);
    g.ho = (g.h + 2 * g.ph - g.kh) / g.sh + 1;
    g.wo = (g.w + 2 * g.pw - g.kw) / g.sw + 1;
    TSR_ASSERT(g.ho > 0 && g.wo > 0);
    return g;
}

#ifdef POOL_AVX512
/* one output row of the 2x2 backward below in masked 16-lane blocks:
 * each grad goes to the window element its index names, zeros elsewhere */
AVX512_FN int maxpool_2x2_bwd_row_avx512(float *r0, float *r1, const float *d, const int32_t *k, int32_t base, int w,
                                         int wo) {
    int ow = 0;
    const __m512i lane2 = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i il_lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i il_hi = _mm512_add_epi32(il_lo, _mm512_set1_epi32(8));
    for (; ow < wo; ow += 16) {
        int n = wo - ow < 16 ? wo - ow : 16;
        __mmask16 m16 = (__mmask16)((1u << n) - 1u);
        uint32_t m32 = n == 16 ? 0xffffffffu : (1u << (2 * n)) - 1u;
        __mmask16 lo = (__mmask16)(m32 & 0xffffu), hi = (__mmask16)(m32 >> 16);
        __m512 dv = _mm512_maskz_loadu_ps(m16, d + ow);
        __m512i e = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(m16, k + ow),
                                     _mm512_add_epi32(lane2, _mm512_set1_epi32(base + 2 * ow)));
        __m512 v0 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(0)), dv);
        __m512 v1 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(1)), dv);
        __m512 v2 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(w)), dv);
        __m512 v3 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(w + 1)), dv);
        _mm512_mask_storeu_ps(r0 + 2 * ow, lo, _mm512_permutex2var_ps(v0, il_lo, v1));
        _mm512_mask_storeu_ps(r0 + 2 * ow + 16, hi, _mm512_permutex2var_ps(v0, il_hi, v1));
        _mm512_mask_storeu_ps(r1 + 2 * ow, lo, _mm512_permutex2var_ps(v2, il_lo, v3));
        _mm512_mask_storeu_ps(r1 + 2 * ow + 16, hi, _mm512_permutex2var_ps(v2, il_hi, v3));
    }
    return ow;
}

/* the same in 8-lane blocks: compares select the grad, unpacks and a
 * 128-bit permute interleave the even and odd columns */
AVX2_FN int maxpool_2x2_bwd_row_avx2(float *r0, float *r1, const float *d, const int32_t *k, int32_t base, int w,
                                     int wo) {
    const __m256i lane = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    const __m256i lane2 = _mm256_add_epi32(lane, lane);
    int ow = 0;
    for (; ow < wo; ow += 8) {
        int n = wo - ow < 8 ? wo - ow : 8;
        __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * n), lane);
        __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * n - 8), lane);
        __m256i mo = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
        __m256 dv = _mm256_maskload_ps(d + ow, mo);
        __m256i e = _mm256_sub_epi32(_mm256_maskload_epi32(k + ow, mo),
                                     _mm256_add_epi32(lane2, _mm256_set1_epi32(base + 2 * ow)));
        __m256 v0 = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(e, _mm256_set1_epi32(0))), dv);
        __m256 v1 = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(e, _mm256_set1_epi32(1))), dv);
        __m256 v2 = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(e, _mm256_set1_epi32(w))), dv);
        __m256 v3 = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(e, _mm256_set1_epi32(w + 1))), dv);
        __m256 lo = _mm256_unpacklo_ps(v0, v1), hi = _mm256_unpackhi_ps(v0, v1);
        _mm256_maskstore_ps(r0 + 2 * ow, m0, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_maskstore_ps(r0 + 2 * ow + 8, m1, _mm256_permute2f128_ps(lo, hi, 0x31));
        lo = _mm256_unpacklo_ps(v2, v3), hi = _mm256_unpackhi_ps(v2, v3);
        _mm256_maskstore_ps(r1 + 2 * ow, m0, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_maskstore_ps(r1 + 2 * ow + 8, m1, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
    return ow;
}
#endif

/* 2x2/2 windows tiling the whole plane: every input gets written (the
 * window's argmax its grad, the rest 0), so a fresh grad needs no zeroing */
static void maxpool_2x2_bwd_write(float *dx, const float *dout, const int32_t *idx, const pool_geom *g) {
    int64_t hw = (int64_t)g->h * g->w, hwo = (int64_t)g->ho * g->wo;
    int w = g->w, wo = g->wo;
    const int level = tsr_cpu_level();
    (void)level;
#pragma omp parallel for schedule(static) if (g->planes * hw > PAR_MIN)
    for (int64_t p = 0; p < g->planes; p++)
        for (int oh = 0; oh < g->ho; oh++) {
            float *r0 = dx + p * hw + (int64_t)(2 * oh) * w, *r1 = r0 + w;
            const float *d = dout + p * hwo + (int64_t)oh * wo;
            const int32_t *k = idx + p * hwo + (int64_t)oh * wo;
            int32_t base = 2 * oh * w;
            int ow = 0;
#ifdef POOL_AVX512
            if (level >= TSR_CPU_AVX512)
                ow = maxpool_2x2_bwd_row_avx512(r0, r1, d, k, base, w, wo);
            else if (level >= TSR_CPU_AVX2)
                ow = maxpool_2x2_bwd_row_avx2(r0, r1, d, k, base, w, wo);
#endif
            for (; ow < wo; ow++) {
                int32_t e = k[ow] - base - 2 * ow; /* 0, 1, w, w+1 */
                r0[2 * ow] = e == 0 ? d[ow] : 0.f;
                r0[2 * ow + 1] = e == 1 ? d[ow] : 0.f;
                r1[2 * ow] = e == w ? d[ow] : 0.f;
                r1[2 * ow + 1] = e == w + 1 ? d[ow] : 0.f;
            }
        }
}

static bool is_2x2(const pool_geom *g) {
    return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0;
}

static void maxpool_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    if (!x->requires_grad) return;
    const pool_geom *g = n->saved;
    const int32_t *idx = (const int32_t *)(g + 1);
    if (!x->grad && !x->is_param && is_2x2(g) && g->h % 2 == 0 && g->w % 2 == 0) {
        x->grad = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)x->numel);
        maxpool_2x2_bwd_write(x->grad, n->out->grad, idx, g);
        return;
    }
    maxpool_bwd(tsr_grad(c, x), n->out->grad, idx, g);
}

tsr_tensor *tsr_maxpool2d(tsr_ctx *c, tsr_tensor *x, const int k[2], const int s[2], const int p[2]) {
    pool_geom g = pool_make(x, k, s, p);
    tsr_tensor *out = tsr_new(c, TSR_F32, TSR_DIMS(x->shape[0], x->shape[1], g.ho, g.wo));
    /* geometry and argmax indices share one arena block for the backward */
    pool_geom *sv = tsr_arena_alloc(&c->arena, sizeof g + sizeof(int32_t) * (size_t)out->numel);
    *sv = g;
    if (is_2x2(&g))
        maxpool_2x2(tsr_f32(out), (int32_t *)(sv + 1), tsr_f32(x), &g);
    else maxpool_fwd(tsr_f32(out), (int32_t *)(sv + 1), tsr_f32(x), &g);
    tsr_node *n = tsr_record(c, "maxpool2d", maxpool_backward, out, 1, &x);
    if (n) n->saved = sv;
    return out;
}

static void avgpool_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    if (x->requires_grad) avgpool_bwd(tsr_grad(c, x), n->out->grad, n->saved);
}

tsr_tensor *tsr_avgpool2d(tsr_ctx *c, tsr_tensor *x, const int k[2], const int s[2], const int p[2]) {
    pool_geom g = pool_make(x, k, s, p);
    tsr_tensor *out = tsr_new(c, TSR_F32, TSR_DIMS(x->shape[0], x->shape[1], g.ho, g.wo));
    avgpool_fwd(tsr_f32(out), tsr_f32(x), &g);
    tsr_node *n = tsr_record(c, "avgpool2d", avgpool_backward, out, 1, &x);
    if (n) {
        pool_geom *sv = tsr_arena_alloc(&c->arena, sizeof g);
        *sv = g;
        n->saved = sv;
    }
    return out;
}

/* ---- nearest: out[oh][ow] = x[oh/sh][ow/sw] (integer factors make torch's
 * floor(dst * 1/scale) exact division) */

static void nearest_fwd(float *out, const float *x, int64_t planes, int h, int w, int sh, int sw) {
    int ho = h * sh, wo = w * sw;
#pragma omp parallel for schedule(static) if (planes * ho * wo > PAR_MIN)
    for (int64_t p = 0; p < planes; p++)
        for (int oh = 0; oh < ho; oh++) {
            const float *s = x + (p * h + oh / sh) * w;
            float *d = out + (p * ho + oh) * wo;
            for (int ow = 0; ow < wo; ow++) d[ow] = s[ow / sw];
        }
}

static void nearest_bwd(float *dx, const float *dout, int64_t planes, int h, int w, int sh, int sw) {
    int ho = h * sh, wo = w * sw;
#pragma omp parallel for schedule(static) if (planes * ho * wo > PAR_MIN)
    for (int64_t p = 0; p < planes; p++)
        for (int oh = 0; oh < ho; oh++) {
            const float *s = dout + (p * ho + oh) * wo;
            float *d = dx + (p * h + oh / sh) * w;
            for (int ow = 0; ow < wo; ow++) d[ow / sw] += s[ow];
        }
}

static void nearest_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    if (!x->requires_grad) return;
    nearest_bwd(tsr_grad(c, x), n->out->grad, x->shape[0] * x->shape[1], (int)x->shape[2],
                (int)x->shape[3], (int)n->iarg[0], (int)n->iarg[1]);
}

tsr_tensor *tsr_upsample_nearest(tsr_ctx *c, tsr_tensor *x, int scale_h, int scale_w) {
    TSR_ASSERT(x->dtype == TSR_F32 && x->ndim == 4 && scale_h >= 1 && scale_w >= 1);
    tsr_tensor *out = tsr_new(c, TSR_F32,
                              TSR_DIMS(x->shape[0], x->shape[1], x->shape[2] * scale_h, x->shape[3] * scale_w));
    nearest_fwd(tsr_f32(out), tsr_f32(x), x->shape[0] * x->shape[1], (int)x->shape[2], (int)x->shape[3],
                scale_h, scale_w);
    tsr_node *n = tsr_record(c, "upsample_nearest", nearest_backward, out, 1, &x);
    if (n) n->iarg[0] = scale_h, n->iarg[1] = scale_w;
    return out;
}

/* ---- bilinear as torch's upsample_bilinear2d (float arithmetic, source
 * index clamped at 0 when align_corners is false) */

typedef struct {
    int i0, i1;
    float l0, l1;
} lerp_tap;

static lerp_tap bilinear_tap(int dst, int in, int out, bool align_corners) {
    float scale, src;
    if (align_corners) {
        scale = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.f;
        src = scale * (float)dst;
    } else {
        scale = (float)in / (float)out;
        src = scale * ((float)dst + 0.5f) - 0.5f;
        if (src < 0.f) src = 0.f;
    }
    lerp_tap t;
    t.i0 = (int)src;
    if (t.i0 > in - 1) t.i0 = in - 1;
    t.i1 = t.i0 + (t.i0 < in - 1 ? 1 : 0);
    t.l1 = src - (float)t.i0;
    t.l0 = 1.f - t.l1;
    return t;
}

static void bilinear_fwd(float *out, const float *x, int64_t planes, int h, int w, int ho, int wo,
                         bool ac) {
#pragma omp parallel for schedule(static) if (planes * ho * wo > PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x + p * h * w;
        for (int oh = 0; oh < ho; oh++) {
            lerp_tap th = bilinear_tap(oh, h, ho, ac);
            const float *r0 = xp + th.i0 * w, *r1 = xp + th.i1 * w;
            float *d = out + (p * ho + oh) * wo;
            for (int ow = 0; ow < wo; ow++) {
                lerp_tap tw = bilinear_tap(ow, w, wo, ac);
                d[ow] = th.l0 * (tw.l0 * r0[tw.i0] + tw.l1 * r0[tw.i1]) +
                        th.l1 * (tw.l0 * r1[tw.i0] + tw.l1 * r1[tw.i1]);
            }
        }
    }
}

static void bilinear_bwd(float *dx, const float *dout, int64_t planes, int h, int w, int ho, int wo,
                         bool ac) {
#pragma omp parallel for schedule(static) if (planes * ho * wo > PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        float *dp = dx + p * h * w;
        for (int oh = 0; oh < ho; oh++) {
            lerp_tap th = bilinear_tap(oh, h, ho, ac);
            float *r0 = dp + th.i0 * w, *r1 = dp + th.i1 * w;
            const float *s = dout + (p * ho + oh) * wo;
            for (int ow = 0; ow < wo; ow++) {
                lerp_tap tw = bilinear_tap(ow, w, wo, ac);
                float g0 = th.l0 * s[ow], g1 = th.l1 * s[ow];
                r0[tw.i0] += tw.l0 * g0;
                r0[tw.i1] += tw.l1 * g0;
                r1[tw.i0] += tw.l0 * g1;
                r1[tw.i1] += tw.l1 * g1;
            }
        }
    }
}

static void bilinear_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    if (!x->requires_grad) return;
    bilinear_bwd(tsr_grad(c, x), n->out->grad, x->shape[0] * x->shape[1], (int)x->shape[2],
                 (int)x->shape[3], (int)n->out->shape[2], (int)n->out->shape[3], n->iarg[0]);
}

tsr_tensor *tsr_upsample_bilinear(tsr_ctx *c, tsr_tensor *x, int out_h, int out_w,
                                  bool align_corners) {
    TSR_ASSERT(x->dtype == TSR_F32 && x->ndim == 4 && out_h >= 1 && out_w >= 1);
    TSR_ASSERT(x->shape[2] >= 1 && x->shape[3] >= 1);
    tsr_tensor *out = tsr_new(c, TSR_F32, TSR_DIMS(x->shape[0], x->shape[1], out_h, out_w));
    bilinear_fwd(tsr_f32(out), tsr_f32(x), x->shape[0] * x->shape[1], (int)x->shape[2], (int)x->shape[3],
                 out_h, out_w, align_corners);
    tsr_node *n = tsr_record(c, "upsample_bilinear", bilinear_backward, out, 1, &x);
    if (n) n->iarg[0] = align_corners;
    return out;
}
