/* lm inference (src/decode): matrix-vector/matrix-matrix kernels for inference whose
 * result per output element does not depend on the batch. This body is
 * compiled once per kernel level (lm_kernels_<level>.c, each with its own
 * -march flags); lm_kernels.c picks one table at run time (tessera/cpu.h).
 *
 * Why our own and not sgemm: speculative verification and batched prefill
 * must give a token exactly the logits it gets when processed alone. BLAS
 * picks different blockings (and so summation orders) for different n.
 * Here every output element is ONE dot product computed by the same code
 * path: a single 8-lane accumulator walked over k in steps of 8 (fused
 * multiply-add), one fixed horizontal sum, then the scalar tail in order.
 * Blocking over rows x tokens only reuses loads; it never changes what is
 * added to what. Threads split rows, so the thread count is irrelevant.
 *
 * bf16 and Q8 weights follow the same rule with 16 f32 lanes. bf16: lane l
 * of a 32-element step takes elements 2l+1 then 2l (the order of AVX-512
 * BF16 vdpbf16ps), the activations rounded to bf16 once per call. With
 * AVX2 the weights become f32 by a 16-bit shift (even elements) or a mask
 * (odd ones) and the exact products are added by FMA, which is the same
 * arithmetic. Q8: 64 int8 per step, each lane the integer dot product of 4
 * consecutive columns, computed on 256-bit halves at every SIMD level as
 * |w| times x with w's sign moved onto x (vpdpbusd with AVX-512 VNNI,
 * vpmaddubsw + vpmaddwd otherwise), scaled by its group's two scales and
 * added to an f32 lane. The integers are exact, so Q8 is bit-identical at
 * every SIMD level; without SIMD, scalar code computes the same lanes (f32
 * without FMA).
 */
#include "decode/lm_kernels.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#if !defined(TSR_KLEVEL)
#error "define TSR_KLEVEL before including lm_kernels_impl.h"
#endif
#define KCAT2(a, b) a##_##b
#define KCAT(a, b) KCAT2(a, b)
#define KV(name) KCAT(name, TSR_KLEVEL)

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LM_AVX2 1
#endif
#if defined(__AVX512F__) && defined(__AVX512BF16__) && defined(LM_AVX2)
#define LM_BF16 1
#include <cpuid.h>
#endif
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__) && defined(LM_AVX2)
#define LM_VNNI 1
#endif

#define AI static inline __attribute__((always_inline))
#ifndef BF_RB
#define BF_RB 3
#endif
#ifndef BF_TB
#define BF_TB 3
#endif

#ifdef LM_AVX2
AI float hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);                    /* l0+l4 l1+l5 l2+l6 l3+l7 */
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo)); /* (.. + ..) pairs 0,2 and 1,3 */
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}

/* hsum8 of 8 accumulators at once, s[r] = hsum8(acc[r][0]): each level
 * adds exactly the lanes hsum8 adds (128-bit halves, lanes 0+2 and 1+3,
 * then 0+1), so the sums are bit-identical; 7 adds and 15 shuffles
 * instead of 8 separate reductions (one-token matmuls, attention scores) */
AI void hsum8_block8(float *s, __m256 acc[8][4]) {
    __m256 a[4], b[2];
    for (int k = 0; k < 4; k++)
        a[k] = _mm256_add_ps(_mm256_permute2f128_ps(acc[2 * k][0], acc[2 * k + 1][0], 0x20),
                             _mm256_permute2f128_ps(acc[2 * k][0], acc[2 * k + 1][0], 0x31));
    /* b[k], half h: 2-lane partials of v[4k + h] and v[4k + 2 + h] */
    for (int k = 0; k < 2; k++)
        b[k] = _mm256_add_ps(_mm256_shuffle_ps(a[2 * k], a[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(a[2 * k], a[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* lanes: sums of v0 v2 v4 v6 v1 v3 v5 v7 */
    __m256 d = _mm256_add_ps(_mm256_shuffle_ps(b[0], b[1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm256_shuffle_ps(b[0], b[1], _MM_SHUFFLE(3, 1, 3, 1)));
    _mm256_storeu_ps(s, _mm256_permutevar8x32_ps(d, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

/* out[t*ldo + r] = dot(w row r, x row t) for r < R, t < T */
AI void block(float *out, size_t ldo, const float *x, size_t ldx, const float *w, size_t ldw, int k,
              const int R, const int T) {
    __m256 acc[8][4];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= k; j += 8) {
        __m256 xv[4];
        for (int t = 0; t < T; t++) xv[t] = _mm256_loadu_ps(x + (size_t)t * ldx + j);
        for (int r = 0; r < R; r++) {
            __m256 wv = _mm256_loadu_ps(w + (size_t)r * ldw + j);
            for (int t = 0; t < T; t++) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
    if (R == 8 && T == 1) {
        float s8[8];
        hsum8_block8(s8, acc);
        for (int r = 0; r < 8; r++) {
            float s = s8[r];
            const float *wr = w + (size_t)r * ldw;
            for (int jj = j; jj < k; jj++) s = fmaf(wr[jj], x[jj], s);
            out[r] = s;
        }
        return;
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) {
            float s = hsum8(acc[r][t]);
            const float *wr = w + (size_t)r * ldw, *xt = x + (size_t)t * ldx;
            for (int jj = j; jj < k; jj++) s = fmaf(wr[jj], xt[jj], s);
            out[(size_t)t * ldo + r] = s;
        }
}
#else
/* Portable path: the same structure with 8 scalar lanes. */
AI void block(float *out, size_t ldo, const float *x, size_t ldx, const float *w, size_t ldw, int k,
              const int R, const int T) {
    float acc[8][4][8];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            for (int l = 0; l < 8; l++) acc[r][t][l] = 0.0f;
    int j = 0;
    for (; j + 8 <= k; j += 8)
        for (int r = 0; r < R; r++)
            for (int t = 0; t < T; t++)
                for (int l = 0; l < 8; l++)
                    acc[r][t][l] = acc[r][t][l] + w[(size_t)r * ldw + j + l] * x[(size_t)t * ldx + j + l];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) {
            float *a = acc[r][t];
            float b0 = a[0] + a[4], b1 = a[1] + a[5], b2 = a[2] + a[6], b3 = a[3] + a[7];
            float c0 = b0 + b2, c1 = b1 + b3;
            float s = c0 + c1;
            const float *wr = w + (size_t)r * ldw, *xt = x + (size_t)t * ldx;
            for (int jj = j; jj < k; jj++) s = s + wr[jj] * xt[jj];
            out[(size_t)t * ldo + r] = s;
        }
}
#endif

static float KV(dot)(const float *a, const float *b, int k) {
    float r;
    block(&r, 1, b, 0, a, 0, k, 1, 1);
    return r;
}

/* sum of 16 lanes: halves added, then the 8-lane tree of hsum8 */
static inline __attribute__((unused)) float hsum16_scalar(const float *a) {
    float h[8];
    for (int l = 0; l < 8; l++) h[l] = a[l] + a[l + 8];
    float b0 = h[0] + h[4], b1 = h[1] + h[5], b2 = h[2] + h[6], b3 = h[3] + h[7];
    return (b0 + b2) + (b1 + b3);
}
#if defined(LM_BF16) || defined(LM_VNNI)
AI float hsum16(__m512 v) {
    __m256 lo = _mm512_castps512_ps256(v);
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    return hsum8(_mm256_add_ps(lo, hi));
}

/* one level of a transposed sum: lanes of a and b shuffled so that one add
 * does, for both, what one step of hsum16 does for one vector */
#define HS_Q(a, b, i0, i1) _mm512_add_ps(_mm512_shuffle_f32x4(a, b, i0), _mm512_shuffle_f32x4(a, b, i1))
#define HS_L(a, b, i0, i1) _mm512_add_ps(_mm512_shuffle_ps(a, b, i0), _mm512_shuffle_ps(a, b, i1))
/* hsum16 of the 16 accumulators of a 4 x 4 block at once, stored as
 * out[t*ldo + r] = hsum16(acc[r][t]). Every lane meets exactly the partner
 * it meets in hsum16 at every level (256-bit halves, 128-bit halves, lanes
 * 0+2 and 1+3, then 0+1), so the sums are bit-identical; 15 adds and 30
 * shuffles replace 16 separate reductions, which at k = 256 (8 steps of
 * 32 per dot product) cost nearly as much as the products. */
AI void hsum16_block4x4(float *out, size_t ldo, __m512 acc[8][4]) {
    __m512 a[8], b[4], c[2];
    /* v[4r + t] = acc[r][t]; a[k]: quarters (v2k lo+hi halves, v2k+1 ...) */
    for (int k = 0; k < 8; k++) a[k] = HS_Q(acc[k / 2][0 + 2 * (k % 2)], acc[k / 2][1 + 2 * (k % 2)], 0x44, 0xEE);
    /* b[k]: quarter i = the 4-lane partial of v[4k + i] */
    for (int k = 0; k < 4; k++) b[k] = HS_Q(a[2 * k], a[2 * k + 1], 0x88, 0xDD);
    /* c[k]: quarter i = 2-lane partials of v[8k + i] and v[8k + 4 + i] */
    for (int k = 0; k < 2; k++) c[k] = HS_L(b[2 * k], b[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0), _MM_SHUFFLE(3, 2, 3, 2));
    /* quarter i, lane j = sum of v[4j + i] = acc[j][i] */
    __m512 d = HS_L(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0), _MM_SHUFFLE(3, 1, 3, 1));
    _mm_storeu_ps(out, _mm512_castps512_ps128(d));
    _mm_storeu_ps(out + ldo, _mm512_extractf32x4_ps(d, 1));
    _mm_storeu_ps(out + 2 * ldo, _mm512_extractf32x4_ps(d, 2));
    _mm_storeu_ps(out + 3 * ldo, _mm512_extractf32x4_ps(d, 3));
}
#endif

static size_t pad_to(size_t k, size_t m) { return (k + m - 1) / m * m; }

/* Everything a block needs; x is the prepared activation (f32 as given;
 * bf16: rounded, padded to kp, as bf16 pairs or, for AVX2, as f32 odd/even
 * planes; Q8: int8 padded to kp plus per-lane offset sums and scales). */
typedef struct {
    const tsr_lm_mat *w;
    const void *x;
    size_t ldx;          /* elements between tokens of x */
    const float *xsv;    /* Q8: (n, kp/4) the activation scale of each lane */
    int k, kp;
    int fma_csr;         /* bf16, AVX-512 BF16: >= 0 when x holds f32 planes for bf16_block_fma (MXCSR bits to set) */
} mm_args;

/* ---- bf16 */

#if !defined(LM_BF16) && defined(LM_AVX2)
/* 32 bf16 of a row from column j, zero past k (the rows are not padded) */
AI const uint16_t *bf16_chunk(const uint16_t *wr, int j, int k, uint16_t *tmp) {
    if (k - j >= 32) return wr + j;
    memset(tmp, 0, 64);
    memcpy(tmp, wr + j, sizeof(uint16_t) * (size_t)(k - j));
    return tmp;
}
/* the even (low) bf16 of every 32-bit lane as f32. A byte shuffle
 * (vpshufb) gives the same bits and runs on the shuffle port of Intel
 * cores instead of the FMA ports; it measured no faster (1-2% slower on
 * L2-resident rows, equal from L3 and memory, Intel Xeon), so the shift
 * stays; on Zen 3 both have the same throughput. */
AI __m256 bf16_even(__m256i wv) { return _mm256_castsi256_ps(_mm256_slli_epi32(wv, 16)); }
/* the odd (high) bf16 of every 32-bit lane as f32 */
AI __m256 bf16_odd(__m256i wv) {
    return _mm256_castsi256_ps(_mm256_and_si256(wv, _mm256_set1_epi32((int)0xffff0000u)));
}
/* acc (lanes of one half) += odd then even products of 16 weights and the
 * activation planes xo (odd) and xe (even) */
AI __m256 bf16_step(__m256 acc, __m256i wv, const float *xo, const float *xe) {
    __m256 wo = bf16_odd(wv);
    __m256 we = bf16_even(wv);
    acc = _mm256_fmadd_ps(wo, _mm256_loadu_ps(xo), acc);
    return _mm256_fmadd_ps(we, _mm256_loadu_ps(xe), acc);
}
#endif

/* x: AVX2 f32 planes (per 32 columns: odd lanes 0-7, even 0-7, odd 8-15,
 * even 8-15), otherwise bf16 as given */
AI void bf16_block(float *out, size_t ldo, const void *xp, size_t ldx, const uint16_t *w, size_t ldw, int k,
                   const int R, const int T) {
#if defined(LM_BF16)
    const uint16_t *x = xp;
    __m512 acc[8][4];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    int j = 0;
    for (; j + 32 <= k; j += 32) {
        __m512i xv[4];
        for (int t = 0; t < T; t++) xv[t] = _mm512_loadu_si512(x + (size_t)t * ldx + j);
        for (int r = 0; r < R; r++) {
            /* several tokens: blocks of rows read the weights in an
             * order the hardware prefetchers follow poorly; 4 KB ahead
             * is the next blocks' rows */
            if (T > 1) _mm_prefetch((const char *)(w + (size_t)r * ldw + j) + 8192, _MM_HINT_T0);
            __m512i wv = _mm512_loadu_si512(w + (size_t)r * ldw + j);
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], (__m512bh)wv, (__m512bh)xv[t]);
        }
    }
    if (j < k) {
        /* x is zero-padded to a multiple of 32; w is masked past its row */
        __mmask32 mk = (__mmask32)((1u << (k - j)) - 1u);
        __m512i xv[4];
        for (int t = 0; t < T; t++) xv[t] = _mm512_loadu_si512(x + (size_t)t * ldx + j);
        for (int r = 0; r < R; r++) {
            __m512i wv = _mm512_maskz_loadu_epi16(mk, w + (size_t)r * ldw + j);
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], (__m512bh)wv, (__m512bh)xv[t]);
        }
    }
    if (R == 4 && T == 4) {
        hsum16_block4x4(out, ldo, acc);
        return;
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) out[(size_t)t * ldo + r] = hsum16(acc[r][t]);
#elif defined(LM_AVX2)
    const float *x = xp;
    __m256 lo[8][4], hi[8][4];
    uint16_t tmp[32];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) lo[r][t] = hi[r][t] = _mm256_setzero_ps();
    for (int j = 0; j < k; j += 32) {
        for (int r = 0; r < R; r++) {
            const uint16_t *wc = bf16_chunk(w + (size_t)r * ldw, j, k, tmp);
            __m256i w0 = _mm256_loadu_si256((const __m256i *)wc);
            __m256i w1 = _mm256_loadu_si256((const __m256i *)(wc + 16));
            for (int t = 0; t < T; t++) {
                const float *xt = x + (size_t)t * ldx + j;
                lo[r][t] = bf16_step(lo[r][t], w0, xt, xt + 8);
                hi[r][t] = bf16_step(hi[r][t], w1, xt + 16, xt + 24);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) out[(size_t)t * ldo + r] = hsum8(_mm256_add_ps(lo[r][t], hi[r][t]));
#else
    const uint16_t *x = xp;
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) {
            float a[16] = {0};
            const uint16_t *wr = w + (size_t)r * ldw, *xt = x + (size_t)t * ldx;
            for (int j = 0; j < k; j += 32)
                for (int l = 0; l < 16; l++) {
                    int j0 = j + 2 * l, j1 = j0 + 1;
                    float p1 = j1 < k ? tsr_bf16_to_f32(wr[j1]) * tsr_bf16_to_f32(xt[j1]) : 0.0f;
                    float p0 = j0 < k ? tsr_bf16_to_f32(wr[j0]) * tsr_bf16_to_f32(xt[j0]) : 0.0f;
                    a[l] = a[l] + p1;
                    a[l] = a[l] + p0;
                }
            out[(size_t)t * ldo + r] = hsum16_scalar(a);
        }
#endif
}

#if defined(LM_BF16)
/* Several tokens with AVX-512 BF16: the same lanes as bf16_block computed
 * by 512-bit FMA. vdpbf16ps adds, per 32-bit lane, the odd product and
 * then the even one, each product of two bf16 exact in f32 and each add
 * rounded to nearest even, with denormal inputs read as zero and denormal
 * results flushed; two FMAs on the widened weights (a mask and a 16-bit
 * shift) and activations (f32 planes: per 32 columns the 16 odd elements,
 * then the 16 even ones) do exactly that under MXCSR's DAZ and FTZ, set by
 * the caller. One vdpbf16ps takes 2.2 cycles on the Intel Xeon where two
 * FMAs take one, so blocks of several tokens run ~1.6x faster; one token
 * (weight-streaming bound) keeps vdpbf16ps. */
AI void bf16_block_fma(float *out, size_t ldo, const float *x, size_t ldx, const uint16_t *w, size_t ldw, int k,
                       const int R, const int T) {
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    __m512 acc[8][4];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    for (int j = 0; j < k; j += 32) {
        __m512 xo[4], xe[4];
        for (int t = 0; t < T; t++) {
            xo[t] = _mm512_loadu_ps(x + (size_t)t * ldx + j);
            xe[t] = _mm512_loadu_ps(x + (size_t)t * ldx + j + 16);
        }
        for (int r = 0; r < R; r++) {
            const uint16_t *wr = w + (size_t)r * ldw + j;
            __m512i wv;
            if (k - j >= 32) {
                if (T > 1) _mm_prefetch((const char *)wr + 8192, _MM_HINT_T0);
                wv = _mm512_loadu_si512(wr);
            } else {
                /* x is zero-padded to a multiple of 32; w is masked past its row */
                wv = _mm512_maskz_loadu_epi16((__mmask32)((1u << (k - j)) - 1u), wr);
            }
            const __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(wv, hi));
            const __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(wv, 16));
            for (int t = 0; t < T; t++) {
                acc[r][t] = _mm512_fmadd_ps(wo, xo[t], acc[r][t]);
                acc[r][t] = _mm512_fmadd_ps(we, xe[t], acc[r][t]);
            }
        }
    }
    if (R == 4 && T == 4) {
        hsum16_block4x4(out, ldo, acc);
        return;
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) out[(size_t)t * ldo + r] = hsum16(acc[r][t]);
}
#endif

#if defined(LM_AVX2) && !defined(LM_BF16)
/* Prefill with 256-bit FMA: the lanes 0-7 (the first 16 columns of every
 * 32) and 8-15 of bf16_block are independent sums, so one pass each over
 * the row lets an R x T block keep one accumulator per dot product in
 * registers, every weight vector converted once for T tokens. Each lane
 * adds the same products in the same order as bf16_block. */
/* acc[r][t] += the products of one 16-column half of a 32-column chunk:
 * w[r] the rows' 16 bf16, x the tokens' odd and even planes of that half.
 * The odd products of every row first, then the even ones: each
 * accumulator still takes its odd product before its even one, and the
 * activation vectors of the T tokens stay in registers for all rows. */
AI void bf16_half(__m256 acc[BF_RB][BF_TB], const uint16_t *const *w, const float *x, size_t ldx, const int R,
                  const int T) {
    __m256 xv[BF_TB];
    for (int t = 0; t < T; t++) xv[t] = _mm256_loadu_ps(x + (size_t)t * ldx);
    for (int r = 0; r < R; r++) {
        __m256 wo = bf16_odd(_mm256_loadu_si256((const __m256i *)w[r]));
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_fmadd_ps(wo, xv[t], acc[r][t]);
    }
    for (int t = 0; t < T; t++) xv[t] = _mm256_loadu_ps(x + (size_t)t * ldx + 8);
    for (int r = 0; r < R; r++) {
        __m256 we = bf16_even(_mm256_loadu_si256((const __m256i *)w[r]));
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_fmadd_ps(we, xv[t], acc[r][t]);
    }
}

AI void bf16_pass(__m256 acc[BF_RB][BF_TB], const uint16_t *w, size_t ldw, const float *x, size_t ldx, int k,
                  const int h, const int R, const int T) {
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    const uint16_t *wp[BF_RB];
    int j = 0;
    for (; j + 32 <= k; j += 32) {
        for (int r = 0; r < R; r++) wp[r] = w + (size_t)r * ldw + j + 16 * h;
        bf16_half(acc, wp, x + j + 16 * h, ldx, R, T);
    }
    if (j < k) {
        /* the last chunk zero-padded, as bf16_chunk gives it */
        uint16_t tmp[BF_RB][32];
        for (int r = 0; r < R; r++) {
            memset(tmp[r], 0, sizeof tmp[r]);
            memcpy(tmp[r], w + (size_t)r * ldw + j, sizeof(uint16_t) * (size_t)(k - j));
            wp[r] = tmp[r] + 16 * h;
        }
        bf16_half(acc, wp, x + j + 16 * h, ldx, R, T);
    }
}

AI void bf16_tile(float *out, size_t ldo, const float *x, size_t ldx, const uint16_t *w, size_t ldw, int k,
                  const int R, const int T) {
    __m256 lo[BF_RB][BF_TB], hi[BF_RB][BF_TB];
    bf16_pass(lo, w, ldw, x, ldx, k, 0, R, T);
    bf16_pass(hi, w, ldw, x, ldx, k, 1, R, T);
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) out[(size_t)t * ldo + r] = hsum8(_mm256_add_ps(lo[r][t], hi[r][t]));
}

/* rows r0..r0+R-1 for all n tokens, T tokens at a time */
AI void bf16_rows(float *out, size_t ldo, const float *x, size_t ldx, const uint16_t *w, size_t ldw, int k, int n,
                  const int R) {
    int t = 0;
    for (; t + BF_TB <= n; t += BF_TB)
        bf16_tile(out + (size_t)t * ldo, ldo, x + (size_t)t * ldx, ldx, w, ldw, k, R, BF_TB);
    switch (n - t) {
#if BF_TB > 3
    case 3: bf16_tile(out + (size_t)t * ldo, ldo, x + (size_t)t * ldx, ldx, w, ldw, k, R, 3); break;
#endif
#if BF_TB > 2
    case 2: bf16_tile(out + (size_t)t * ldo, ldo, x + (size_t)t * ldx, ldx, w, ldw, k, R, 2); break;
#endif
    case 1: bf16_tile(out + (size_t)t * ldo, ldo, x + (size_t)t * ldx, ldx, w, ldw, k, R, 1); break;
    default: break;
    }
}

/* bytes ahead in each row's stream that the one-token loop prefetches */
#ifndef BF_DPF
#define BF_DPF 1024
#endif
/* a matrix larger than this is read in blocks of 8 rows, a smaller one
 * (which may stay in L2 between calls) in blocks of 4 */
#ifndef BF_BIG
#define BF_BIG ((size_t)1 << 20)
#endif
/* One token, rows r0..r0+R-1 read together: 2R independent accumulation
 * chains (lanes 0-7 and 8-15 of each row) keep both FMA ports busy, where
 * one row's two chains (two dependent FMAs per 32 columns) waited on the
 * FMA latency. Each lane adds the same products in the same order as
 * bf16_block, whatever R is. The R rows are contiguous; row r's stream is
 * prefetched BF_DPF bytes ahead, one line per row per step, and past the
 * row's end it continues at the same row of the next block (the row this
 * stream reads next), so short rows (2 KB at k = 1024) are prefetched
 * through their whole length too. Measured (Intel Xeon, one core, 64-byte
 * aligned rows, docs/lm.md): against one row at a time, 4-row blocks gave
 * 1.6x on L2-resident matrices and 1.4x streaming from memory; against a
 * prefetch that stopped at the row's end, 1.13x on 1024-column matrices
 * from memory; 8-row blocks a further 3-8% from memory but 6% less on a
 * matrix in L2 (16 accumulators leave no register free), hence BF_BIG. */
AI void bf16_dec_block(float *out, const float *x, const uint16_t *w, size_t ldw, int k, const int R) {
    __m256 lo[8], hi[8];
    for (int r = 0; r < R; r++) lo[r] = hi[r] = _mm256_setzero_ps();
    /* prefetch address (not a pointer: past the last block it lies outside
     * the matrix) of row 0's stream: pq blocks on, column pc */
    const size_t pq = (size_t)(BF_DPF / 2) / (size_t)k, rowb = 2 * ldw;
    size_t pc = (size_t)(BF_DPF / 2) % (size_t)k;
    uintptr_t pf = (uintptr_t)w + pq * (size_t)R * rowb + 2 * pc;
    int j = 0;
    for (; j + 32 <= k; j += 32) {
        const float *xt = x + j;
        for (int r = 0; r < R; r++) _mm_prefetch((const char *)(pf + (size_t)r * rowb), _MM_HINT_T0);
        pf += 64, pc += 32;
        /* past the row's end: the same row of the next block */
        if (pc >= (size_t)k) pc -= (size_t)k, pf += (size_t)(R - 1) * rowb;
        for (int r = 0; r < R; r++) {
            const uint16_t *wr = w + (size_t)r * ldw + j;
            lo[r] = bf16_step(lo[r], _mm256_loadu_si256((const __m256i *)wr), xt, xt + 8);
            hi[r] = bf16_step(hi[r], _mm256_loadu_si256((const __m256i *)(wr + 16)), xt + 16, xt + 24);
        }
    }
    if (j < k) {
        uint16_t tmp[32];
        for (int r = 0; r < R; r++) {
            const uint16_t *wc = bf16_chunk(w + (size_t)r * ldw, j, k, tmp);
            lo[r] = bf16_step(lo[r], _mm256_loadu_si256((const __m256i *)wc), x + j, x + j + 8);
            hi[r] = bf16_step(hi[r], _mm256_loadu_si256((const __m256i *)(wc + 16)), x + j + 16, x + j + 24);
        }
    }
    if (R == 8) {
        __m256 s[8][4];
        for (int r = 0; r < 8; r++) s[r][0] = _mm256_add_ps(lo[r], hi[r]);
        hsum8_block8(out, s);
        return;
    }
    for (int r = 0; r < R; r++) out[r] = hsum8(_mm256_add_ps(lo[r], hi[r]));
}

/* one function per block height, so that each keeps R a constant (inlined
 * into one body, gcc merged the heights into one loop testing R at run
 * time: 26% slower on L2-resident rows) */
static __attribute__((noinline)) void bf16_dec8(float *out, const float *x, const uint16_t *w, size_t ldw, int k) {
    bf16_dec_block(out, x, w, ldw, k, 8);
}
static __attribute__((noinline)) void bf16_dec4(float *out, const float *x, const uint16_t *w, size_t ldw, int k) {
    bf16_dec_block(out, x, w, ldw, k, 4);
}
static __attribute__((noinline)) void bf16_dec1(float *out, const float *x, const uint16_t *w, size_t ldw, int k) {
    bf16_dec_block(out, x, w, ldw, k, 1);
}

/* blocks of RB rows (4 or 8), the last rows in a block of 4 and singly */
AI void bf16_decode_rb(float *out, const uint16_t *w, const float *x, int rows, int k, const int RB) {
    const size_t ldw = (size_t)k;
    const int nrb = (rows + RB - 1) / RB;
    const double work = (double)rows * k;
#pragma omp parallel for schedule(static) if (work > 65536.0)
    for (int rb = 0; rb < nrb; rb++) {
        int r0 = rb * RB, R = rows - r0 < RB ? rows - r0 : RB;
        const uint16_t *wr = w + (size_t)r0 * ldw;
        int r = 0;
        if (RB == 8 && R == 8) bf16_dec8(out + r0, x, wr, ldw, k), r = 8;
        if (R - r >= 4) bf16_dec4(out + r0 + r, x, wr + (size_t)r * ldw, ldw, k), r += 4;
        for (; r < R; r++) bf16_dec1(out + r0 + r, x, wr + (size_t)r * ldw, ldw, k);
    }
}

static void bf16_decode(float *out, const mm_args *a, int rows) {
    const uint16_t *w = a->w->data;
    if ((size_t)rows * (size_t)a->k * 2 > BF_BIG)
        bf16_decode_rb(out, w, a->x, rows, a->k, 8);
    else
        bf16_decode_rb(out, w, a->x, rows, a->k, 4);
}

static void bf16_prefill(float *out, size_t ldo, const mm_args *a, int rows, int n) {
    const int k = a->k;
    const size_t ldw = (size_t)k;
    const uint16_t *w = a->w->data;
    const float *x = a->x;
    const int nrb = (rows + BF_RB - 1) / BF_RB;
    const double work = (double)rows * k * n;
#pragma omp parallel for schedule(static) if (work > 65536.0)
    for (int rb = 0; rb < nrb; rb++) {
        int r0 = rb * BF_RB, R = rows - r0 < BF_RB ? rows - r0 : BF_RB;
        const uint16_t *wr = w + (size_t)r0 * ldw;
        switch (R) {
        case BF_RB: bf16_rows(out + r0, ldo, x, a->ldx, wr, ldw, k, n, BF_RB); break;
#if BF_RB > 3
        case 3: bf16_rows(out + r0, ldo, x, a->ldx, wr, ldw, k, n, 3); break;
#endif
#if BF_RB > 2
        case 2: bf16_rows(out + r0, ldo, x, a->ldx, wr, ldw, k, n, 2); break;
#endif
        default: bf16_rows(out + r0, ldo, x, a->ldx, wr, ldw, k, n, 1); break;
        }
    }
}
#endif

/* ---- Q8 */

/* scale of the group holding lanes 0-7 and 8-15 of 64-column chunk c */
AI void q8_lane_scales(const float *sc, int c, int gs, int ng, float *lo, float *hi) {
    if (gs == 64) {
        *lo = *hi = sc[c];
    } else {
        *lo = sc[2 * c];
        *hi = 2 * c + 1 < ng ? sc[2 * c + 1] : 0.0f;
    }
}

#if defined(LM_AVX2)
/* |w| once per weight vector: the sign goes onto the activations */
AI __m256i q8_abs(__m256i w) { return _mm256_abs_epi8(w); }
/* 8 lanes of 4-column integer dot products of int8 w and x, given
 * wa = |w|. Exact: vpdpbusd adds the four u8 x s8 products in 32 bits;
 * vpmaddubsw's pair sums stay within +-2*128*127 before vpmaddwd adds
 * them. Both give the same integers. */
AI __m256i q8_dot8(__m256i wa, __m256i w, __m256i x) {
    __m256i xs = _mm256_sign_epi8(x, w);
#if defined(LM_VNNI)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), wa, xs);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(wa, xs), _mm256_set1_epi16(1));
#endif
}
#endif

#if defined(LM_AVX2)
/* acc[r][t] = lanes 8h..8h+7 of row r times token t: half h of every
 * 64-column chunk, zero past k as in the other passes */
AI void q8_pass(__m256 acc[8][4], const int8_t *w, const float *wsc, int ng, int gs, const int8_t *x, size_t lq,
                const float *xsv, size_t l4, int k, const int h, const int R, const int T) {
    int8_t tmp[32];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    for (int j = 0, c = 0; j < k; j += 64, c++) {
        const int jh = j + 32 * h, left = k - jh;
        __m256i wv[8], av[8];
        __m256 sv[8];
        for (int r = 0; r < R; r++) {
            const int8_t *wc = w + (size_t)r * k + jh;
            if (left < 32) {
                memset(tmp, 0, sizeof tmp);
                if (left > 0) memcpy(tmp, wc, (size_t)left);
                wc = tmp;
            }
            wv[r] = _mm256_loadu_si256((const __m256i *)wc);
            av[r] = q8_abs(wv[r]);
            float slo, shi;
            q8_lane_scales(wsc + (size_t)r * ng, c, gs, ng, &slo, &shi);
            sv[r] = _mm256_set1_ps(h ? shi : slo);
        }
        for (int t = 0; t < T; t++) {
            const __m256i xv = _mm256_loadu_si256((const __m256i *)(x + (size_t)t * lq + jh));
            const __m256 st = _mm256_loadu_ps(xsv + (size_t)t * l4 + 16 * c + 8 * h);
            for (int r = 0; r < R; r++) {
                __m256 f = _mm256_cvtepi32_ps(q8_dot8(av[r], wv[r], xv));
                acc[r][t] = _mm256_fmadd_ps(f, _mm256_mul_ps(sv[r], st), acc[r][t]);
            }
        }
    }
}
#endif

/* Every SIMD level computes a 64-column chunk as two 256-bit halves (the
 * 16 lanes of the contract as lanes 0-7 and 8-15), so AVX-512 and AVX2
 * are the same code: 256-bit integer dot products run at full rate on
 * every AVX-512 CPU, and Zen 4 splits 512-bit ones in two anyway. */
AI void q8_block(float *out, size_t ldo, const mm_args *a, int r0, int t0, const int R, const int T) {
    const tsr_lm_mat *W = a->w;
    const int k = a->k, kp = a->kp, gs = W->group_size, ng = tsr_lm_mat_groups(W);
    const size_t lq = (size_t)kp, l4 = (size_t)kp / 4;
    const int8_t *x = (const int8_t *)a->x + (size_t)t0 * lq;
    const float *xsv = a->xsv + (size_t)t0 * l4;
    const int8_t *w = (const int8_t *)W->data + (size_t)r0 * (size_t)k;
    const float *wsc = W->scales + (size_t)r0 * (size_t)ng;
#if defined(LM_AVX2)
    /* lanes 0-7 (the first half of every chunk) and 8-15 are independent
     * sums: one pass each keeps an R x T block's accumulators in registers */
    __m256 lo[8][4], hi[8][4];
    q8_pass(lo, w, wsc, ng, gs, x, lq, xsv, l4, k, 0, R, T);
    q8_pass(hi, w, wsc, ng, gs, x, lq, xsv, l4, k, 1, R, T);
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) out[(size_t)t * ldo + r] = hsum8(_mm256_add_ps(lo[r][t], hi[r][t]));
#else
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) {
            float acc[16] = {0};
            const int8_t *wr = w + (size_t)r * k, *xt = x + (size_t)t * lq;
            for (int j = 0, c = 0; j < k; j += 64, c++) {
                float slo, shi;
                q8_lane_scales(wsc + (size_t)r * ng, c, gs, ng, &slo, &shi);
                for (int l = 0; l < 16; l++) {
                    int32_t d = 0;
                    for (int b = 0; b < 4; b++) {
                        int jj = j + 4 * l + b;
                        if (jj < k) d += (int32_t)wr[jj] * (int32_t)xt[jj];
                    }
                    float p = (l < 8 ? slo : shi) * xsv[(size_t)t * l4 + 16 * c + l];
                    acc[l] = fmaf((float)d, p, acc[l]);
                }
            }
            out[(size_t)t * ldo + r] = hsum16_scalar(acc);
        }
#endif
}

#if defined(LM_AVX2)
/* One token (decode), one row: the lanes of q8_block with R = T = 1, the
 * group-size test and the row's tail out of the loop. A 32-column half
 * lies within one group, so its 8 lanes share one scale product. */
AI __m256 q8_half(__m256 acc, const int8_t *w, const int8_t *x, float s) {
    __m256i wv = _mm256_loadu_si256((const __m256i *)w);
    __m256i d = q8_dot8(q8_abs(wv), wv, _mm256_loadu_si256((const __m256i *)x));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(s), acc);
}
AI float q8_row(const int8_t *w, const float *ws, const int8_t *x, const float *xs, int k, const int gs, int ng) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    int j = 0, c = 0;
    for (; j + 64 <= k; j += 64, c++) {
        /* the rows follow each other in memory: 4 KB ahead is the next
         * rows; measured 1.5x on a 256 MB matrix (Zen 4), where the
         * hardware prefetcher alone fell behind this loop */
        _mm_prefetch((const char *)((uintptr_t)(w + j) + 4096), _MM_HINT_T0);
        float slo = gs == 64 ? ws[c] : ws[2 * c], shi = gs == 64 ? ws[c] : ws[2 * c + 1];
        lo = q8_half(lo, w + j, x + j, slo * xs[16 * c]);
        hi = q8_half(hi, w + j + 32, x + j + 32, shi * xs[16 * c + 8]);
    }
    if (j < k) {
        int8_t tmp[64] = {0};
        memcpy(tmp, w + j, (size_t)(k - j));
        float slo, shi;
        q8_lane_scales(ws, c, gs, ng, &slo, &shi);
        lo = q8_half(lo, tmp, x + j, slo * xs[16 * c]);
        hi = q8_half(hi, tmp + 32, x + j + 32, shi * xs[16 * c + 8]);
    }
    return hsum8(_mm256_add_ps(lo, hi));
}
#endif

#if defined(LM_BF16)
/* rows r0..r0+R-1 for all n tokens in blocks of 4, 2, 1 tokens */
AI void bf16_rows_fma(float *out, size_t ldo, const mm_args *a, int r0, int n, const int R) {
    const float *x = a->x;
    const uint16_t *w = (const uint16_t *)a->w->data + (size_t)r0 * (size_t)a->k;
    int t = 0;
    for (; t + 4 <= n; t += 4) bf16_block_fma(out + (size_t)t * ldo, ldo, x + (size_t)t * a->ldx, a->ldx, w, (size_t)a->k, a->k, R, 4);
    for (; t + 2 <= n; t += 2) bf16_block_fma(out + (size_t)t * ldo, ldo, x + (size_t)t * a->ldx, a->ldx, w, (size_t)a->k, a->k, R, 2);
    if (t < n) bf16_block_fma(out + (size_t)t * ldo, ldo, x + (size_t)t * a->ldx, a->ldx, w, (size_t)a->k, a->k, R, 1);
}

/* several tokens (x as f32 planes): blocks of 4 weight rows, each thread
 * with MXCSR's DAZ and FTZ as vdpbf16ps's denormal rule needs while it
 * computes */
static void bf16_multi(float *out, size_t ldo, const mm_args *a, int rows, int n) {
    const double work = (double)rows * a->k * n;
    const int nrb = (rows + 3) / 4;
#pragma omp parallel if (work > 65536.0)
    {
        const unsigned csr = _mm_getcsr();
        _mm_setcsr((csr & ~0x8040u) | (unsigned)a->fma_csr);
#pragma omp for schedule(static) nowait
        for (int rb = 0; rb < nrb; rb++) {
            const int r0 = 4 * rb;
            switch (rows - r0 < 4 ? rows - r0 : 4) {
            case 4: bf16_rows_fma(out + r0, ldo, a, r0, n, 4); break;
            case 3: bf16_rows_fma(out + r0, ldo, a, r0, n, 3); break;
            case 2: bf16_rows_fma(out + r0, ldo, a, r0, n, 2); break;
            default: bf16_rows_fma(out + r0, ldo, a, r0, n, 1); break;
            }
        }
        _mm_setcsr(csr);
    }
}
#endif

/* ---- shared driver */

AI void any_block(const int type, float *out, size_t ldo, const mm_args *a, int r0, int t0, const int R,
                  const int T) {
    const size_t k = (size_t)a->k;
    if (type == TSR_LM_W_F32)
        block(out, ldo, (const float *)a->x + (size_t)t0 * a->ldx, a->ldx, (const float *)a->w->data + (size_t)r0 * k,
              k, a->k, R, T);
    else if (type == TSR_LM_W_BF16)
#if defined(LM_AVX2) && !defined(LM_BF16)
        bf16_block(out, ldo, (const float *)a->x + (size_t)t0 * a->ldx, a->ldx,
                   (const uint16_t *)a->w->data + (size_t)r0 * k, k, a->k, R, T);
#else
        bf16_block(out, ldo, (const uint16_t *)a->x + (size_t)t0 * a->ldx, a->ldx,
                   (const uint16_t *)a->w->data + (size_t)r0 * k, k, a->k, R, T);
#endif
    else
        q8_block(out, ldo, a, r0, t0, R, T);
}

/* Register blocking. 256-bit bf16 (AVX2) keeps two accumulators per dot
 * product, f32, 512-bit bf16 and Q8 (one half per pass) one. With 16
 * registers (AVX2) bf16 takes blocks of 2 rows x 2 tokens, Q8 2 x 4 and
 * f32 4 x 2; with 32 (AVX-512) every type takes 4 rows, with 4 tokens
 * where one accumulator each suffices. */
#if defined(__AVX512F__)
#define SMALL_REGS(type) 0
#if defined(LM_BF16)
#define TMAX(type) 4
#else
#define TMAX(type) ((type) == TSR_LM_W_BF16 ? 2 : 4)
#endif
#else
#define SMALL_REGS(type) ((type) != TSR_LM_W_F32)
#define TMAX(type) ((type) == TSR_LM_W_Q8 ? 4 : 3)
#endif

/* rows r0..r0+R-1 for all n tokens; R constant after inlining */
AI void row_block(const int type, float *out, size_t ldo, const mm_args *a, int r0, int n, const int R) {
    int t = 0;
    if (TMAX(type) >= 4)
        for (; t + 4 <= n; t += 4) any_block(type, out + (size_t)t * ldo, ldo, a, r0, t, R, 4);
    if (TMAX(type) == 3)
        for (; t + 3 <= n; t += 3) any_block(type, out + (size_t)t * ldo, ldo, a, r0, t, R, 3);
    for (; t + 2 <= n; t += 2) any_block(type, out + (size_t)t * ldo, ldo, a, r0, t, R, 2);
    if (t < n) any_block(type, out + (size_t)t * ldo, ldo, a, r0, t, R, 1);
}

AI void drive(const int type, float *out, int ldo, const mm_args *a, int rows, int n) {
    /* small products: a parallel region costs more than it saves */
    const double work = (double)rows * a->k * n;
    /* one token: the rows one after another. The weights then stream in
     * address order, which the hardware prefetchers follow; blocks of
     * rows read several streams interleaved within a page and ran at a
     * third of the memory bandwidth on short (1-2 KB) bf16/Q8 rows. The
     * out-of-order core overlaps consecutive rows' accumulation chains.
     * bf16 at AVX2 is the exception: its two dependent FMAs per step left
     * one row's chains waiting on the FMA latency, so it reads blocks of
     * 4 rows and prefetches their streams itself (bf16_decode). */
    if (n == 1 && type != TSR_LM_W_F32) {
#if defined(LM_AVX2) && !defined(LM_BF16)
        if (type == TSR_LM_W_BF16) {
            bf16_decode(out, a, rows);
            return;
        }
#endif
#if defined(LM_AVX2)
        if (type == TSR_LM_W_Q8) {
            const tsr_lm_mat *W = a->w;
            const int k = a->k, ng = tsr_lm_mat_groups(W);
            const int8_t *wd = W->data;
            if (W->group_size == 64) {
#pragma omp parallel for schedule(static) if (work > 65536.0)
                for (int r = 0; r < rows; r++)
                    out[r] = q8_row(wd + (size_t)r * k, W->scales + (size_t)r * ng, a->x, a->xsv, k, 64, ng);
            } else {
#pragma omp parallel for schedule(static) if (work > 65536.0)
                for (int r = 0; r < rows; r++)
                    out[r] = q8_row(wd + (size_t)r * k, W->scales + (size_t)r * ng, a->x, a->xsv, k, 32, ng);
            }
            return;
        }
#endif
#pragma omp parallel for schedule(static) if (work > 65536.0)
        for (int r = 0; r < rows; r++) any_block(type, out + r, (size_t)ldo, a, r, 0, 1, 1);
        return;
    }
    /* one f32 token: 8 rows keep 8 independent accumulation chains in
     * flight; more tokens: blocks of 4 rows x 4 tokens (16 chains, 8
     * loads per 16 dot instructions) reuse each loaded weight and
     * activation vector. Each block's weights stay in L1 while all n
     * tokens pass. */
#if defined(LM_AVX2) && !defined(LM_BF16)
    if (type == TSR_LM_W_BF16) {
        bf16_prefill(out, (size_t)ldo, a, rows, n);
        return;
    }
#endif
#if defined(LM_BF16)
    if (type == TSR_LM_W_BF16 && a->fma_csr >= 0) {
        bf16_multi(out, (size_t)ldo, a, rows, n);
        return;
    }
#endif
    const int small = SMALL_REGS(type);
    const int RB = small ? (n == 1 ? 4 : 2) : (n == 1 ? 8 : 4);
    const int nrb = (rows + RB - 1) / RB;
#pragma omp parallel for schedule(static) if (work > 65536.0)
    for (int rb = 0; rb < nrb; rb++) {
        int r0 = rb * RB, R = rows - r0 < RB ? rows - r0 : RB;
        size_t lo = (size_t)ldo;
        if (!small && R == 8) {
            any_block(type, out + r0, lo, a, r0, 0, 8, 1);
            continue;
        }
        if (small && n == 1 && R == 4) {
            any_block(type, out + r0, lo, a, r0, 0, 4, 1);
            continue;
        }
        if (small) {
            for (int r = r0; r < r0 + R; r += 2) {
                if (r0 + R - r >= 2) row_block(type, out + r, lo, a, r, n, 2);
                else row_block(type, out + r, lo, a, r, n, 1);
            }
            continue;
        }
        /* the last rows of a one-token product fall through in blocks of 4 */
        for (int r = r0; r < r0 + R; r += 4) {
            switch (r0 + R - r < 4 ? r0 + R - r : 4) {
            case 4: row_block(type, out + r, lo, a, r, n, 4); break;
            case 3: row_block(type, out + r, lo, a, r, n, 3); break;
            case 2: row_block(type, out + r, lo, a, r, n, 2); break;
            default: row_block(type, out + r, lo, a, r, n, 1); break;
            }
        }
    }
}

/* round to an int8 in [-127, 127]; NaN (from an overflowed activation)
 * maps into range too rather than into an undefined conversion */
static inline int8_t q8_round(float v) { return (int8_t)fminf(fmaxf(nearbyintf(v), -127.0f), 127.0f); }

/* x rounded to bf16, rows kp apart, zero-padded; for AVX2 as f32 planes
 * (per 32 columns: odd lanes 0-7, even lanes 0-7, odd 8-15, even 8-15) */
static void prep_bf16(void *dst, const float *x, size_t ldx, int k, int kp, int n) {
    for (int t = 0; t < n; t++) {
        const float *s = x + (size_t)t * ldx;
#if defined(LM_AVX2) && !defined(LM_BF16)
        float *d = (float *)dst + (size_t)t * (size_t)kp;
        for (int j = 0; j < kp; j += 32)
            for (int h = 0; h < 2; h++)
                for (int l = 0; l < 8; l++) {
                    int j0 = j + 16 * h + 2 * l, j1 = j0 + 1;
                    d[j + 16 * h + l] = j1 < k ? tsr_bf16_to_f32(tsr_f32_to_bf16(s[j1])) : 0.0f;
                    d[j + 16 * h + 8 + l] = j0 < k ? tsr_bf16_to_f32(tsr_f32_to_bf16(s[j0])) : 0.0f;
                }
#else
        uint16_t *d = (uint16_t *)dst + (size_t)t * (size_t)kp;
        for (int j = 0; j < k; j++) d[j] = tsr_f32_to_bf16(s[j]);
        for (int j = k; j < kp; j++) d[j] = 0;
#endif
    }
}

/* x quantised per group like the weights, plus the group's scale per 4
 * columns (one lane) */
#if defined(LM_AVX2)
/* 8 floats, already scaled, rounded and clamped as q8_round does (round to
 * nearest even; vmaxps/vminps return their second operand for a NaN, so
 * NaN goes to -127 as fmaxf/fminf send it), stored as 8 int8 */
AI void q8_round8(int8_t *d, __m256 v) {
    v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
    __m256i i = _mm256_cvtps_epi32(v);
    __m128i p = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    _mm_storel_epi64((__m128i *)d, _mm_packs_epi16(p, p));
}
#endif

/* x quantised per group like the weights, plus the group's scale per 4
 * columns (one lane). The amax ignores NaN (as fmaxf does). */
static void prep_q8(int8_t *q, float *xsv, const float *x, size_t ldx, int k, int kp, int gs, int n) {
    for (int t = 0; t < n; t++) {
        int8_t *d = q + (size_t)t * (size_t)kp;
        float *sv = xsv + (size_t)t * (size_t)(kp / 4);
        const float *s = x + (size_t)t * ldx;
        for (int j0 = 0; j0 < kp; j0 += gs) {
            int j1 = j0 + gs < k ? j0 + gs : k, j = j0;
            float amax = 0;
#if defined(LM_AVX2)
            const __m256 nosign = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
            __m256 m = _mm256_setzero_ps();
            for (; j + 8 <= j1; j += 8) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(s + j), nosign), m);
            float ml[8];
            _mm256_storeu_ps(ml, m);
            for (int l = 0; l < 8; l++) amax = ml[l] > amax ? ml[l] : amax;
#endif
            for (; j < j1; j++) {
                float v = fabsf(s[j]);
                amax = v > amax ? v : amax;
            }
            float sc = amax / 127.0f, inv = sc > 0 ? 1.0f / sc : 0.0f;
            j = j0;
#if defined(LM_AVX2)
            for (; j + 8 <= j1; j += 8) q8_round8(d + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), _mm256_set1_ps(inv)));
#endif
            for (; j < j0 + gs; j++) d[j] = j < j1 ? q8_round(s[j] * inv) : 0;
            for (int l = j0 / 4; l < (j0 + gs) / 4; l++) sv[l] = j0 < k ? sc : 0.0f;
        }
    }
}

#if defined(LM_BF16)
/* one lane of vdpbf16ps: acc + odd product + even product */
static float dp_lane(float acc, uint16_t wo, uint16_t xo, uint16_t we, uint16_t xe) {
    __m512 r = _mm512_dpbf16_ps(_mm512_set1_ps(acc), (__m512bh)_mm512_set1_epi32((int)((uint32_t)wo << 16 | we)),
                                (__m512bh)_mm512_set1_epi32((int)((uint32_t)xo << 16 | xe)));
    return _mm512_cvtss_f32(r);
}

/* Whether several tokens go through bf16_block_fma, and with which MXCSR
 * bits (DAZ 0x40, FTZ 0x8000) FMA follows this CPU's vdpbf16ps on
 * denormals; -1: vdpbf16ps. The FMA path is faster where vdpbf16ps is
 * slower than two FMAs, measured on Intel Xeon cores (2.2 cycles against
 * one); other vendors keep vdpbf16ps. The denormal rule is probed once:
 * a denormal weight times 2^100 (read as zero?), a denormal accumulator
 * plus 2^-126 (read as zero?), 2^-70 times 2^-70 (flushed?). A rule FMA
 * cannot follow (zero for one input kind only) keeps vdpbf16ps. */
static int bf16_fma_mode(void) {
    static _Atomic int mode = -2;
    int m = atomic_load_explicit(&mode, memory_order_relaxed);
    if (m != -2) return m;
    m = -1;
    unsigned eax, ebx, ecx, edx;
    if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) && ebx == 0x756e6547u && edx == 0x49656e69u && ecx == 0x6c65746eu) {
        const float acc_den = 0x1p-127f, two126 = 0x1p-126f;
        bool daz_mul = dp_lane(0.0f, 0, 0, 0x0001, 0x7180) == 0.0f;            /* 2^-133 * 2^100 */
        bool daz_acc = dp_lane(acc_den, 0, 0, 0x2000, 0x2000) == two126;       /* 2^-127 + 2^-63 * 2^-63 */
        bool ftz = dp_lane(0.0f, 0, 0, 0x1c80, 0x1c80) == 0.0f;                /* 2^-70 * 2^-70 */
        if (daz_mul == daz_acc) m = (daz_mul ? 0x40 : 0) | (ftz ? 0x8000 : 0);
    }
    atomic_store_explicit(&mode, m, memory_order_relaxed);
    return m;
}

/* x rounded to bf16 as tsr_f32_to_bf16 does (NaN quietened, otherwise
 * round to nearest even) and widened back to f32, for several tokens: per
 * 32 columns the 16 odd elements, then the 16 even ones (bf16_block_fma),
 * rows kp apart, zero past k */
static void prep_bf16_planes(float *dst, const float *x, size_t ldx, int k, int kp, int n) {
    const __m512i one = _mm512_set1_epi32(1), rnd = _mm512_set1_epi32(0x7fff), abs = _mm512_set1_epi32(0x7fffffff);
    const __m512i inf = _mm512_set1_epi32(0x7f800000), top = _mm512_set1_epi32((int)0xffff0000u);
    const __m512i quiet = _mm512_set1_epi32(0x00400000);
    const __m512i iodd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512i ieven = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int t = 0; t < n; t++) {
        const float *s = x + (size_t)t * ldx;
        float *d = dst + (size_t)t * (size_t)kp;
        for (int j = 0; j < kp; j += 32) {
            __m512i v[2];
            for (int h = 0; h < 2; h++) {
                int left = k - (j + 16 * h);
                __mmask16 m = left >= 16 ? (__mmask16)0xffff : left > 0 ? (__mmask16)((1u << left) - 1u) : 0;
                __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, s + j + 16 * h));
                __m512i r = _mm512_add_epi32(rnd, _mm512_and_si512(_mm512_srli_epi32(u, 16), one));
                __m512i b = _mm512_and_si512(_mm512_add_epi32(u, r), top);
                __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
                v[h] = _mm512_mask_or_epi32(b, nan, _mm512_and_si512(u, top), quiet);
            }
            _mm512_storeu_si512(d + j, _mm512_permutex2var_epi32(v[0], iodd, v[1]));
            _mm512_storeu_si512(d + j + 16, _mm512_permutex2var_epi32(v[0], ieven, v[1]));
        }
    }
}
#endif

static void KV(matmul)(float *out, int ldo, const float *x, int ldx, const tsr_lm_mat *w, int n, void *scratch) {
    mm_args a = {w, x, (size_t)ldx, NULL, w->cols, w->cols, -1};
    switch (w->type) {
    case TSR_LM_W_F32: drive(TSR_LM_W_F32, out, ldo, &a, w->rows, n); break;
    case TSR_LM_W_BF16:
        TSR_ASSERT(scratch);
        a.kp = (int)pad_to((size_t)w->cols, 32);
#if defined(LM_BF16)
        a.fma_csr = n > 1 ? bf16_fma_mode() : -1;
        if (a.fma_csr >= 0)
            prep_bf16_planes(scratch, x, (size_t)ldx, w->cols, a.kp, n);
        else
#endif
            prep_bf16(scratch, x, (size_t)ldx, w->cols, a.kp, n);
        a.x = scratch;
        a.ldx = (size_t)a.kp;
        drive(TSR_LM_W_BF16, out, ldo, &a, w->rows, n);
        break;
    case TSR_LM_W_Q8: {
        TSR_ASSERT(scratch && (w->group_size == 32 || w->group_size == 64));
        a.kp = (int)pad_to((size_t)w->cols, 64);
        size_t nq = (size_t)n * (size_t)a.kp;
        int8_t *q = scratch;
        float *xsv = (float *)(q + nq);
        prep_q8(q, xsv, x, (size_t)ldx, w->cols, a.kp, w->group_size, n);
        a.x = q;
        a.ldx = (size_t)a.kp;
        a.xsv = xsv;
        drive(TSR_LM_W_Q8, out, ldo, &a, w->rows, n);
    } break;
    default: TSR_ASSERT(!"unknown weight type");
    }
}

#if defined(LM_BF16)
/* Several bf16 products of the same x (same column count), n > 1 tokens on
 * the FMA path: one activation prep and one parallel region over all their
 * blocks of 4 rows, each block computed as bf16_multi computes it, so every
 * output element has the bits matmul gives it. Returns false where that
 * path does not apply (the caller then runs matmul per product). */
static bool KV(matmul_multi)(int cnt, float *const *out, const int *ldo, const float *x, int ldx,
                             const tsr_lm_mat *const *w, int n, void *scratch) {
    if (n < 2 || cnt < 1 || cnt > 4 || !scratch) return false;
    for (int i = 0; i < cnt; i++)
        if (w[i]->type != TSR_LM_W_BF16 || w[i]->cols != w[0]->cols) return false;
    const int fma = bf16_fma_mode();
    if (fma < 0) return false;
    const int k = w[0]->cols, kp = (int)pad_to((size_t)k, 32);
    prep_bf16_planes(scratch, x, (size_t)ldx, k, kp, n);
    mm_args a[4];
    int nb[5] = {0};
    double work = 0;
    for (int i = 0; i < cnt; i++) {
        a[i] = (mm_args){w[i], scratch, (size_t)kp, NULL, k, kp, fma};
        nb[i + 1] = nb[i] + (w[i]->rows + 3) / 4;
        work += (double)w[i]->rows * k * n;
    }
#pragma omp parallel if (work > 65536.0)
    {
        const unsigned csr = _mm_getcsr();
        _mm_setcsr((csr & ~0x8040u) | (unsigned)fma);
#pragma omp for schedule(static) nowait
        for (int b = 0; b < nb[cnt]; b++) {
            int i = 0;
            while (b >= nb[i + 1]) i++;
            const int r0 = 4 * (b - nb[i]), rows = w[i]->rows;
            float *o = out[i] + r0;
            const size_t lo = (size_t)ldo[i];
            switch (rows - r0 < 4 ? rows - r0 : 4) {
            case 4: bf16_rows_fma(o, lo, &a[i], r0, n, 4); break;
            case 3: bf16_rows_fma(o, lo, &a[i], r0, n, 3); break;
            case 2: bf16_rows_fma(o, lo, &a[i], r0, n, 2); break;
            default: bf16_rows_fma(o, lo, &a[i], r0, n, 1); break;
            }
        }
        _mm_setcsr(csr);
    }
    return true;
}
#endif

/* ---- exp */

/* expf for attention's softmax and SwiGLU, several lanes at once with the bits
 * expf gives each: the same fixed sequence of double operations per lane,
 * which is the one the C library's expf performs on machines with FMA
 * (GNU libc 2.28 and later; its results on this code's inputs were
 * compared bit for bit over all 2^32 floats, see docs/serve.md). With
 * t = x * 32/ln2: k = t rounded to the nearest integer (added to 1.5 *
 * 2^52 by one fused multiply-add, which rounds), r = t - k by one fused
 * multiply-subtract; exp(x) = 2^(k/32) * p(r), 2^(k/32) the table's
 * 2^((k mod 32)/32) with k div 32 added to its exponent, p(r) = 1 + c1 r
 * + c2 r^2 + c3 r^3 by three fused multiply-adds ((c3 r + c2) r^2 +
 * (c1 r + 1)), the product rounded to float once. Lanes with |x| >= 88,
 * infinite or NaN (overflow, underflow to zero or a denormal) get expf
 * itself. The scalar level calls expf throughout. */
#if defined(LM_AVX2)
/* 2^(i/32) rounded to double, as bits */
static const uint64_t exp2_32[32] = {
    0x3ff0000000000000ULL, 0x3ff059b0d3158574ULL, 0x3ff0b5586cf9890fULL, 0x3ff11301d0125b51ULL,
    0x3ff172b83c7d517bULL, 0x3ff1d4873168b9aaULL, 0x3ff2387a6e756238ULL, 0x3ff29e9df51fdee1ULL,
    0x3ff306fe0a31b715ULL, 0x3ff371a7373aa9cbULL, 0x3ff3dea64c123422ULL, 0x3ff44e086061892dULL,
    0x3ff4bfdad5362a27ULL, 0x3ff5342b569d4f82ULL, 0x3ff5ab07dd485429ULL, 0x3ff6247eb03a5585ULL,
    0x3ff6a09e667f3bcdULL, 0x3ff71f75e8ec5f74ULL, 0x3ff7a11473eb0187ULL, 0x3ff82589994cce13ULL,
    0x3ff8ace5422aa0dbULL, 0x3ff93737b0cdc5e5ULL, 0x3ff9c49182a3f090ULL, 0x3ffa5503b23e255dULL,
    0x3ffae89f995ad3adULL, 0x3ffb7f76f2fb5e47ULL, 0x3ffc199bdd85529cULL, 0x3ffcb720dcef9069ULL,
    0x3ffd5818dcfba487ULL, 0x3ffdfc97337b9b5fULL, 0x3ffea4afa2a490daULL, 0x3fff50765b6e4540ULL};
#define EXP_T 0x1.71547652b82fep+5 /* 32 / ln 2 */
#define EXP_SHIFT 0x1.8p+52
#define EXP_C1 0x1.62e42ff0c52d6p-6
#define EXP_C2 0x1.ebfce50fac4f3p-13
#define EXP_C3 0x1.c6af84b912394p-20
/* the top bits of |x| from which expf's special cases start (|x| >= 88) */
#define EXP_SPECIAL 0x42b00000u

AI float exp_one(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7ff00000u) >= EXP_SPECIAL) return expf(x);
    const double xd = (double)x, kr = fma(xd, EXP_T, EXP_SHIFT), kd = kr - EXP_SHIFT;
    const double r = fma(EXP_T, xd, -kd);
    uint64_t ki, t;
    memcpy(&ki, &kr, sizeof ki);
    t = exp2_32[ki & 31] + ((ki >> 5) << 52);
    double s;
    memcpy(&s, &t, sizeof s);
    const double p = fma(fma(r, EXP_C3, EXP_C2), r * r, fma(r, EXP_C1, 1.0));
    return (float)(p * s);
}

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#define EXP_W 16
AI __m256 exp8d(__m512d xd) {
    const __m512d T = _mm512_set1_pd(EXP_T), sh = _mm512_set1_pd(EXP_SHIFT);
    const __m512d kr = _mm512_fmadd_pd(xd, T, sh), kd = _mm512_sub_pd(kr, sh);
    const __m512d r = _mm512_fmsub_pd(T, xd, kd);
    const __m512i ki = _mm512_castpd_si512(kr);
    /* table entry k mod 32: bits 0-3 pick one of 16, bit 4 the half */
    const __m512i t0 = _mm512_permutex2var_epi64(_mm512_loadu_si512(exp2_32), ki, _mm512_loadu_si512(exp2_32 + 8));
    const __m512i t1 =
        _mm512_permutex2var_epi64(_mm512_loadu_si512(exp2_32 + 16), ki, _mm512_loadu_si512(exp2_32 + 24));
    __m512i t = _mm512_mask_blend_epi64(_mm512_test_epi64_mask(ki, _mm512_set1_epi64(16)), t0, t1);
    t = _mm512_add_epi64(t, _mm512_slli_epi64(_mm512_srli_epi64(ki, 5), 52));
    const __m512d p = _mm512_fmadd_pd(_mm512_fmadd_pd(r, _mm512_set1_pd(EXP_C3), _mm512_set1_pd(EXP_C2)),
                                      _mm512_mul_pd(r, r), _mm512_fmadd_pd(r, _mm512_set1_pd(EXP_C1), _mm512_set1_pd(1.0)));
    return _mm512_cvtpd_ps(_mm512_mul_pd(p, _mm512_castsi512_pd(t)));
}
/* expf of 16 floats into out */
AI void exp_w(float *out, __m512 x) {
    const __m256 lo = exp8d(_mm512_cvtps_pd(_mm512_castps512_ps256(x)));
    const __m256 hi = exp8d(_mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1)));
    _mm512_storeu_ps(out, _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1));
    __mmask16 sp = _mm512_cmpge_epu32_mask(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7ff00000)),
                                           _mm512_set1_epi32((int)EXP_SPECIAL));
    if (sp) {
        float xs[16];
        _mm512_storeu_ps(xs, x);
        for (int l = 0; l < 16; l++)
            if (sp >> l & 1) out[l] = expf(xs[l]);
    }
}
typedef __m512 expv;
AI expv ev_load(const float *p) { return _mm512_loadu_ps(p); }
AI expv ev_set1(float v) { return _mm512_set1_ps(v); }
AI expv ev_sub(expv a, expv b) { return _mm512_sub_ps(a, b); }
AI expv ev_mul(expv a, expv b) { return _mm512_mul_ps(a, b); }
AI expv ev_add(expv a, expv b) { return _mm512_add_ps(a, b); }
AI expv ev_div(expv a, expv b) { return _mm512_div_ps(a, b); }
AI expv ev_neg(expv a) { return _mm512_xor_ps(a, _mm512_set1_ps(-0.0f)); }
AI void ev_store(float *p, expv a) { _mm512_storeu_ps(p, a); }
#else
#define EXP_W 8
AI __m128 exp4d(__m256d xd) {
    const __m256d T = _mm256_set1_pd(EXP_T), sh = _mm256_set1_pd(EXP_SHIFT);
    const __m256d kr = _mm256_fmadd_pd(xd, T, sh), kd = _mm256_sub_pd(kr, sh);
    const __m256d r = _mm256_fmsub_pd(T, xd, kd);
    const __m256i ki = _mm256_castpd_si256(kr);
    __m256i t = _mm256_i64gather_epi64((const long long *)exp2_32, _mm256_and_si256(ki, _mm256_set1_epi64x(31)), 8);
    t = _mm256_add_epi64(t, _mm256_slli_epi64(_mm256_srli_epi64(ki, 5), 52));
    const __m256d p = _mm256_fmadd_pd(_mm256_fmadd_pd(r, _mm256_set1_pd(EXP_C3), _mm256_set1_pd(EXP_C2)),
                                      _mm256_mul_pd(r, r), _mm256_fmadd_pd(r, _mm256_set1_pd(EXP_C1), _mm256_set1_pd(1.0)));
    return _mm256_cvtpd_ps(_mm256_mul_pd(p, _mm256_castsi256_pd(t)));
}
/* expf of 8 floats into out */
AI void exp_w(float *out, __m256 x) {
    const __m128 lo = exp4d(_mm256_cvtps_pd(_mm256_castps256_ps128(x)));
    const __m128 hi = exp4d(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)));
    _mm256_storeu_ps(out, _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1));
    const __m256i top = _mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(0x7ff00000));
    int sp = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(top, _mm256_set1_epi32((int)EXP_SPECIAL - 1))));
    if (sp) {
        float xs[8];
        _mm256_storeu_ps(xs, x);
        for (int l = 0; l < 8; l++)
            if (sp >> l & 1) out[l] = expf(xs[l]);
    }
}
typedef __m256 expv;
AI expv ev_load(const float *p) { return _mm256_loadu_ps(p); }
AI expv ev_set1(float v) { return _mm256_set1_ps(v); }
AI expv ev_sub(expv a, expv b) { return _mm256_sub_ps(a, b); }
AI expv ev_mul(expv a, expv b) { return _mm256_mul_ps(a, b); }
AI expv ev_add(expv a, expv b) { return _mm256_add_ps(a, b); }
AI expv ev_div(expv a, expv b) { return _mm256_div_ps(a, b); }
AI expv ev_neg(expv a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
AI void ev_store(float *p, expv a) { _mm256_storeu_ps(p, a); }
#endif
#else
AI float exp_one(float x) { return expf(x); }
#endif

/* p[i] = expf(p[i] - mx); returns their sum, added in index order */
AI float exp_sum(float *p, int n, float mx) {
    float sum = 0.0f;
    int i = 0;
#if defined(LM_AVX2)
    const expv m = ev_set1(mx);
    for (; i + EXP_W <= n; i += EXP_W) {
        exp_w(p + i, ev_sub(ev_load(p + i), m));
        for (int l = 0; l < EXP_W; l++) sum += p[i + l];
    }
#endif
    for (; i < n; i++) {
        p[i] = exp_one(p[i] - mx);
        sum += p[i];
    }
    return sum;
}

static float KV(exp_sum)(float *p, int n, float mx) { return exp_sum(p, n, mx); }

/* SwiGLU: h[i] = h[i] * (1 / (1 + expf(-h[i]))) * h2[i] */
static void KV(silu_mul)(float *h, const float *h2, int n) {
    int i = 0;
#if defined(LM_AVX2)
    const expv one = ev_set1(1.0f);
    for (; i + EXP_W <= n; i += EXP_W) {
        float e[EXP_W];
        const expv g = ev_load(h + i);
        exp_w(e, ev_neg(g));
        ev_store(h + i, ev_mul(ev_mul(g, ev_div(one, ev_add(one, ev_load(e)))), ev_load(h2 + i)));
    }
#endif
    for (; i < n; i++) {
        const float g = h[i];
        h[i] = g * (1.0f / (1.0f + exp_one(-g))) * h2[i];
    }
}

/* Attention of one query head over n_keys keys visited in order: row s of
 * k and v is idx[s] (or s when idx is NULL), ld floats apart. Scores
 * q.k / sqrt(D), softmax with max subtraction, weighted sum of the values.
 * One body for both forms, so a masked row that sees the same keys as a
 * causal one gets the same bits. att: n_keys scratch floats. */
AI void attend(float *out, const float *q, const float *k, const float *v, size_t ld, const int *idx, int n_keys,
               int D, float *att, const bool vexp) {
    const float scale = sqrtf((float)D);
    float mx = -INFINITY;
    /* scores of up to 8 consecutive slots per block call: the same dot
     * product per key as one at a time (block's arithmetic per output does
     * not depend on R), with 8 independent chains in flight */
    for (int s = 0; s < n_keys;) {
        int nb = n_keys - s < 8 ? n_keys - s : 8;
        size_t row = (size_t)(idx ? idx[s] : s);
        if (nb == 8 && (!idx || idx[s + 7] - idx[s] == 7)) {
            block(att + s, 0, q, 0, k + row * ld, ld, D, 8, 1);
        } else {
            nb = 1;
            block(att + s, 0, q, 0, k + row * ld, 0, D, 1, 1);
        }
        for (int e = s + nb; s < e; s++) {
            float sc = att[s] / scale;
            att[s] = sc;
            if (sc > mx) mx = sc;
        }
    }
    float sum = 0.0f;
    if (vexp) {
        sum = exp_sum(att, n_keys, mx);
    } else {
        for (int s = 0; s < n_keys; s++) {
            att[s] = expf(att[s] - mx);
            sum += att[s];
        }
    }
    for (int s = 0; s < n_keys; s++) att[s] /= sum;
    /* each output element sums over the keys in order; 8 elements at a
     * time stay in a register */
    int i = 0;
#ifdef LM_AVX2
    /* up to 64 output elements per pass over the keys, 8 per register:
     * each element's sum is the same chain as one register at a time */
    for (; i + 8 <= D;) {
        const int nc = (D - i) / 8 < 8 ? (D - i) / 8 : 8;
        __m256 acc[8];
        for (int c = 0; c < nc; c++) acc[c] = _mm256_setzero_ps();
        for (int s = 0; s < n_keys; s++) {
            const float *vr = v + (size_t)(idx ? idx[s] : s) * ld + i;
            const __m256 a = _mm256_set1_ps(att[s]);
            for (int c = 0; c < nc; c++) acc[c] = _mm256_fmadd_ps(a, _mm256_loadu_ps(vr + 8 * c), acc[c]);
        }
        for (int c = 0; c < nc; c++) _mm256_storeu_ps(out + i + 8 * c, acc[c]);
        i += 8 * nc;
    }
#endif
    for (; i < D; i++) {
        float acc = 0.0f;
        for (int s = 0; s < n_keys; s++) {
            size_t row = (size_t)(idx ? idx[s] : s);
            acc += att[s] * v[row * ld + i];
        }
        out[i] = acc;
    }
}

static void KV(attend)(float *out, const float *q, const float *k, const float *v, size_t ld, int n_keys, int D,
                       float *att) {
    attend(out, q, k, v, ld, NULL, n_keys, D, att, false);
}

static void KV(attend_vexp)(float *out, const float *q, const float *k, const float *v, size_t ld, int n_keys, int D,
                            float *att) {
    attend(out, q, k, v, ld, NULL, n_keys, D, att, true);
}

static void KV(attend_idx)(float *out, const float *q, const float *k, const float *v, size_t ld, const int *idx,
                           int n_keys, int D, float *att) {
    attend(out, q, k, v, ld, idx, n_keys, D, att, false);
}

#if defined(LM_BF16)
const tsr_lm_kern KV(tsr_lm_kern) = {KV(matmul),       KV(attend),  KV(attend_idx), KV(dot), KV(matmul_multi),
                                    KV(attend_vexp), KV(exp_sum), KV(silu_mul)};
#else
const tsr_lm_kern KV(tsr_lm_kern) = {KV(matmul),      KV(attend),  KV(attend_idx), KV(dot), NULL,
                                    KV(attend_vexp), KV(exp_sum), KV(silu_mul)};
#endif
