/* tessera ops: fused scaled-dot-product attention for every family's
 * transformer layers and for speculative verification (tree masks, KV-cache
 * offsets). Grouped-query heads, causal flag, boolean mask, additive bias
 * that may be learned.
 *
 * Forward keeps only the per-row logsumexp; backward recomputes the
 * probabilities tile by tile in two passes (dq by query tiles, dk/dv by key
 * tiles) so every output element is owned by one work unit: no atomics, and
 * results do not depend on the thread count. The small matrix products run
 * in our own register-tiled loop rather than sgemm, because they are called
 * from inside OpenMP regions (the OpenBLAS build is pthread-threaded and
 * would oversubscribe) and their shapes are thin (one side is D).
 *
 * This body is compiled once per kernel level (attention_<level>.c, with
 * that level's flags); attention.c dispatches tsr_attention_fwd/bwd to the
 * level in use. The scratch sizes, the naive twins and the autograd op are
 * compiled once, in the scalar unit (TSR_KPRIMARY). */
#include "ops/attention.h"
#include "tessera/ops.h"

#if !defined(TSR_KLEVEL)
#error "define TSR_KLEVEL before including attention_impl.h"
#endif
#define KCAT2(a, b) a##_##b
#define KCAT(a, b) KCAT2(a, b)
#define KV(name) KCAT(name, TSR_KLEVEL)

#include <math.h>
#include <string.h>

/* a*b+c as one fused multiply-add: faster and no less accurate. -std=c11
 * turns contraction off by default. */
#if defined(__clang__)
#pragma clang fp contract(fast)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast")
#endif

#define MR 4  /* register tile rows */

typedef float v16 __attribute__((vector_size(64)));
/* below AVX-512 compilers note that passing v16 by value has no fixed ABI:
 * only static functions here take or return it, so no ABI is involved
 * (-Wno-psabi in CMakeLists.txt) */
typedef int32_t v16i __attribute__((vector_size(64)));

static inline v16 vload(const float *p) {
    v16 r;
    memcpy(&r, p, sizeof r);
    return r;
}
static inline void vstore(float *p, v16 x) { memcpy(p, &x, sizeof x); }
static inline v16 vsplat(float f) { return (v16){f, f, f, f, f, f, f, f, f, f, f, f, f, f, f, f}; }

/* ------------------------------------------------------------ tiny gemm */

/* MR x 32 and MR x 16 register tiles of C (+)= A B over K.
 * A(i,k) = A[i*ars + k*acs] (a transposed A is just swapped strides); B
 * rows are contiguous. Accumulators are named variables so they stay in
 * registers at -O2. */
static void tile_2(float *C, int ldc, const float *A, int ars, int acs, const float *B, int ldb,
                   int K, bool acc) {
    v16 c00 = vsplat(0.f), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
        c31 = c00;
    float *C1 = C + ldc, *C2 = C1 + ldc, *C3 = C2 + ldc;
    if (acc) {
        c00 = vload(C), c01 = vload(C + VL), c10 = vload(C1), c11 = vload(C1 + VL);
        c20 = vload(C2), c21 = vload(C2 + VL), c30 = vload(C3), c31 = vload(C3 + VL);
    }
    const float *A0 = A, *A1 = A + ars, *A2 = A1 + ars, *A3 = A2 + ars;
    for (int k = 0; k < K; k++) {
        const float *b = B + (int64_t)k * ldb;
        int64_t ka = (int64_t)k * acs;
        v16 b0 = vload(b), b1 = vload(b + VL);
        v16 a = vsplat(A0[ka]);
        c00 += a * b0, c01 += a * b1;
        a = vsplat(A1[ka]);
        c10 += a * b0, c11 += a * b1;
        a = vsplat(A2[ka]);
        c20 += a * b0, c21 += a * b1;
        a = vsplat(A3[ka]);
        c30 += a * b0, c31 += a * b1;
    }
    vstore(C, c00), vstore(C + VL, c01), vstore(C1, c10), vstore(C1 + VL, c11);
    vstore(C2, c20), vstore(C2 + VL, c21), vstore(C3, c30), vstore(C3 + VL, c31);
}

/* 8 x 32: sixteen accumulators, twice the work per B load of tile_2 */
static void tile_8x2(float *C, int ldc, const float *A, int ars, int acs, const float *B, int ldb,
                     int K, bool acc) {
    v16 c[8][2];
    /* fully unrolled by hand below; the array is only for the load/store */
    for (int r = 0; r < 8; r++) {
        c[r][0] = acc ? vload(C + (int64_t)r * ldc) : vsplat(0.f);
        c[r][1] = acc ? vload(C + (int64_t)r * ldc + VL) : vsplat(0.f);
    }
    v16 c00 = c[0][0], c01 = c[0][1], c10 = c[1][0], c11 = c[1][1], c20 = c[2][0], c21 = c[2][1],
        c30 = c[3][0], c31 = c[3][1], c40 = c[4][0], c41 = c[4][1], c50 = c[5][0], c51 = c[5][1],
        c60 = c[6][0], c61 = c[6][1], c70 = c[7][0], c71 = c[7][1];
    const int64_t r1 = ars, r2 = 2 * (int64_t)ars, r3 = 3 * (int64_t)ars, r4 = 4 * (int64_t)ars,
                  r5 = 5 * (int64_t)ars, r6 = 6 * (int64_t)ars, r7 = 7 * (int64_t)ars;
    for (int k = 0; k < K; k++) {
        const float *b = B + (int64_t)k * ldb, *a = A + (int64_t)k * acs;
        v16 b0 = vload(b), b1 = vload(b + VL), x;
        x = vsplat(a[0]), c00 += x * b0, c01 += x * b1;
        x = vsplat(a[r1]), c10 += x * b0, c11 += x * b1;
        x = vsplat(a[r2]), c20 += x * b0, c21 += x * b1;
        x = vsplat(a[r3]), c30 += x * b0, c31 += x * b1;
        x = vsplat(a[r4]), c40 += x * b0, c41 += x * b1;
        x = vsplat(a[r5]), c50 += x * b0, c51 += x * b1;
        x = vsplat(a[r6]), c60 += x * b0, c61 += x * b1;
        x = vsplat(a[r7]), c70 += x * b0, c71 += x * b1;
    }
    c[0][0] = c00, c[0][1] = c01, c[1][0] = c10, c[1][1] = c11, c[2][0] = c20, c[2][1] = c21;
    c[3][0] = c30, c[3][1] = c31, c[4][0] = c40, c[4][1] = c41, c[5][0] = c50, c[5][1] = c51;
    c[6][0] = c60, c[6][1] = c61, c[7][0] = c70, c[7][1] = c71;
    for (int r = 0; r < 8; r++) {
        vstore(C + (int64_t)r * ldc, c[r][0]);
        vstore(C + (int64_t)r * ldc + VL, c[r][1]);
    }
}

static void tile_1(float *C, int ldc, const float *A, int ars, int acs, const float *B, int ldb,
                   int K, bool acc) {
    v16 c0 = vsplat(0.f), c1 = c0, c2 = c0, c3 = c0;
    float *C1 = C + ldc, *C2 = C1 + ldc, *C3 = C2 + ldc;
    if (acc) c0 = vload(C), c1 = vload(C1), c2 = vload(C2), c3 = vload(C3);
    const float *A0 = A, *A1 = A + ars, *A2 = A1 + ars, *A3 = A2 + ars;
    for (int k = 0; k < K; k++) {
        v16 b0 = vload(B + (int64_t)k * ldb);
        int64_t ka = (int64_t)k * acs;
        c0 += vsplat(A0[ka]) * b0;
        c1 += vsplat(A1[ka]) * b0;
        c2 += vsplat(A2[ka]) * b0;
        c3 += vsplat(A3[ka]) * b0;
    }
    vstore(C, c0), vstore(C1, c1), vstore(C2, c2), vstore(C3, c3);
}

/* 8 x 16: eight accumulators per B load (a 16-wide right-hand side, e.g.
 * P V with 16-dim heads, runs here instead of two tile_1 calls) */
static void tile_8x1(float *C, int ldc, const float *A, int ars, int acs, const float *B, int ldb,
                     int K, bool acc) {
    v16 c0 = vsplat(0.f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
    if (acc) {
        c0 = vload(C), c1 = vload(C + (int64_t)ldc), c2 = vload(C + 2 * (int64_t)ldc), c3 = vload(C + 3 * (int64_t)ldc);
        c4 = vload(C + 4 * (int64_t)ldc), c5 = vload(C + 5 * (int64_t)ldc), c6 = vload(C + 6 * (int64_t)ldc);
        c7 = vload(C + 7 * (int64_t)ldc);
    }
    const int64_t r1 = ars, r2 = 2 * (int64_t)ars, r3 = 3 * (int64_t)ars, r4 = 4 * (int64_t)ars,
                  r5 = 5 * (int64_t)ars, r6 = 6 * (int64_t)ars, r7 = 7 * (int64_t)ars;
    for (int k = 0; k < K; k++) {
        v16 b0 = vload(B + (int64_t)k * ldb);
        const float *a = A + (int64_t)k * acs;
        c0 += vsplat(a[0]) * b0, c1 += vsplat(a[r1]) * b0, c2 += vsplat(a[r2]) * b0, c3 += vsplat(a[r3]) * b0;
        c4 += vsplat(a[r4]) * b0, c5 += vsplat(a[r5]) * b0, c6 += vsplat(a[r6]) * b0, c7 += vsplat(a[r7]) * b0;
    }
    vstore(C, c0), vstore(C + (int64_t)ldc, c1), vstore(C + 2 * (int64_t)ldc, c2), vstore(C + 3 * (int64_t)ldc, c3);
    vstore(C + 4 * (int64_t)ldc, c4), vstore(C + 5 * (int64_t)ldc, c5), vstore(C + 6 * (int64_t)ldc, c6);
    vstore(C + 7 * (int64_t)ldc, c7);
}

/* any leftover rows/columns: mr <= MR rows, nr <= 32 columns */
static void tile_edge(float *C, int ldc, const float *A, int ars, int acs, const float *B,
                      int ldb, int mr, int nr, int K, bool acc) {
    for (int r = 0; r < mr; r++) {
        float c[2 * VL];
        for (int j = 0; j < nr; j++) c[j] = acc ? C[(int64_t)r * ldc + j] : 0.f;
        for (int k = 0; k < K; k++) {
            float a = A[(int64_t)r * ars + (int64_t)k * acs];
            const float *b = B + (int64_t)k * ldb;
#pragma omp simd
            for (int j = 0; j < nr; j++) c[j] += a * b[j];
        }
        for (int j = 0; j < nr; j++) C[(int64_t)r * ldc + j] = c[j];
    }
}

#if !defined(__AVX512F__)
/* 6 x 16 for 256-bit registers, written with 8-lane vectors: gcc keeps a
 * 64-byte vector that lives across loop iterations in memory when the
 * target has no 512-bit registers, so tile_8x2 runs from the stack there.
 * Twelve accumulators, the two halves of a B row and one broadcast fill
 * the 16 ymm registers. */
typedef float v8 __attribute__((vector_size(32)));
static inline v8 v8load(const float *p) {
    v8 r;
    memcpy(&r, p, sizeof r);
    return r;
}
static inline void v8store(float *p, v8 x) { memcpy(p, &x, sizeof x); }
static void tile_6(float *C, int ldc, const float *A, int ars, int acs, const float *B, int ldb,
                   int K, bool acc) {
    v8 z = {0, 0, 0, 0, 0, 0, 0, 0};
    v8 c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z,
       c50 = z, c51 = z;
    float *C1 = C + ldc, *C2 = C1 + ldc, *C3 = C2 + ldc, *C4 = C3 + ldc, *C5 = C4 + ldc;
    if (acc) {
        c00 = v8load(C), c01 = v8load(C + 8), c10 = v8load(C1), c11 = v8load(C1 + 8);
        c20 = v8load(C2), c21 = v8load(C2 + 8), c30 = v8load(C3), c31 = v8load(C3 + 8);
        c40 = v8load(C4), c41 = v8load(C4 + 8), c50 = v8load(C5), c51 = v8load(C5 + 8);
    }
    const int64_t r1 = ars, r2 = 2 * (int64_t)ars, r3 = 3 * (int64_t)ars, r4 = 4 * (int64_t)ars,
                  r5 = 5 * (int64_t)ars;
    for (int k = 0; k < K; k++) {
        const float *a = A + (int64_t)k * acs, *b = B + (int64_t)k * ldb;
        v8 b0 = v8load(b), b1 = v8load(b + 8), x;
        x = (v8){a[0], a[0], a[0], a[0], a[0], a[0], a[0], a[0]}, c00 += x * b0, c01 += x * b1;
        x = (v8){a[r1], a[r1], a[r1], a[r1], a[r1], a[r1], a[r1], a[r1]}, c10 += x * b0, c11 += x * b1;
        x = (v8){a[r2], a[r2], a[r2], a[r2], a[r2], a[r2], a[r2], a[r2]}, c20 += x * b0, c21 += x * b1;
        x = (v8){a[r3], a[r3], a[r3], a[r3], a[r3], a[r3], a[r3], a[r3]}, c30 += x * b0, c31 += x * b1;
        x = (v8){a[r4], a[r4], a[r4], a[r4], a[r4], a[r4], a[r4], a[r4]}, c40 += x * b0, c41 += x * b1;
        x = (v8){a[r5], a[r5], a[r5], a[r5], a[r5], a[r5], a[r5], a[r5]}, c50 += x * b0, c51 += x * b1;
    }
    v8store(C, c00), v8store(C + 8, c01), v8store(C1, c10), v8store(C1 + 8, c11);
    v8store(C2, c20), v8store(C2 + 8, c21), v8store(C3, c30), v8store(C3 + 8, c31);
    v8store(C4, c40), v8store(C4 + 8, c41), v8store(C5, c50), v8store(C5 + 8, c51);
}
#endif

/* C (m,n; ldc) = or += A (m,K) B (K,n; ldb); fixed summation order over k
 * (every element is one in-order chain of multiply-adds over k, whatever
 * tile computes it, so the tiling never changes a result) */
static void mm(float *C, int ldc, const float *A, int ars, int acs, const float *B, int ldb,
               int m, int n, int K, bool acc) {
#if !defined(__AVX512F__)
    int i6 = 0;
    for (; i6 + 6 <= m; i6 += 6) {
        float *Ci = C + (int64_t)i6 * ldc;
        const float *Ai = A + (int64_t)i6 * ars;
        int j = 0;
        for (; j + VL <= n; j += VL) tile_6(Ci + j, ldc, Ai, ars, acs, B + j, ldb, K, acc);
        if (j < n) tile_edge(Ci + j, ldc, Ai, ars, acs, B + j, ldb, 6, n - j, K, acc);
    }
    C += (int64_t)i6 * ldc, A += (int64_t)i6 * ars, m -= i6;
#endif
    for (int i = 0; i < m; i += MR) {
        int mr = m - i < MR ? m - i : MR;
        float *Ci = C + (int64_t)i * ldc;
        const float *Ai = A + (int64_t)i * ars;
        int j = 0;
        if (mr == MR && m - i >= 2 * MR) { /* 8 rows at once where they exist */
            for (; j + 2 * VL <= n; j += 2 * VL) tile_8x2(Ci + j, ldc, Ai, ars, acs, B + j, ldb, K, acc);
            for (; j + VL <= n; j += VL) tile_8x1(Ci + j, ldc, Ai, ars, acs, B + j, ldb, K, acc);
            for (int h = 0; h < 2; h++) {
                int jj = j;
                float *Ch = Ci + (int64_t)h * MR * ldc;
                const float *Ah = Ai + (int64_t)h * MR * ars;
                for (; jj + VL <= n; jj += VL) tile_1(Ch + jj, ldc, Ah, ars, acs, B + jj, ldb, K, acc);
                for (; jj < n; jj += 2 * VL) {
                    int nr = n - jj < 2 * VL ? n - jj : 2 * VL;
                    tile_edge(Ch + jj, ldc, Ah, ars, acs, B + jj, ldb, MR, nr, K, acc);
                }
            }
            i += MR; /* the loop adds the other MR */
            continue;
        }
        if (mr == MR) {
            for (; j + 2 * VL <= n; j += 2 * VL) tile_2(Ci + j, ldc, Ai, ars, acs, B + j, ldb, K, acc);
            for (; j + VL <= n; j += VL) tile_1(Ci + j, ldc, Ai, ars, acs, B + j, ldb, K, acc);
        }
        for (; j < n; j += 2 * VL) {
            int nr = n - j < 2 * VL ? n - j : 2 * VL;
            tile_edge(Ci + j, ldc, Ai, ars, acs, B + j, ldb, mr, nr, K, acc);
        }
    }
}

/* ------------------------------------------------------------- softmax */

/* exp lane by lane: Cody-Waite reduction to [-ln2/2, ln2/2], degree-6
 * polynomial (about 2 ulp), 2^n through the exponent bits. Inputs below
 * -87 (including -inf) give exactly 0, which is what masked scores need.
 * Written once for a vector type V with integer twin VI: 16 lanes, and 8
 * lanes below AVX-512, where gcc would compare a 64-byte vector one lane at
 * a time (the same operations on every lane, so the same results). */
#define DEFINE_VEXP(name, V, VI)                                                         \
    static inline __attribute__((always_inline)) V name(V x) {                        \
        const float lo = -87.0f, hi = 88.0f;                                           \
        VI keep = x >= lo;                                                             \
        VI under = x < lo, over = x > hi;                                              \
        x = (V)(((VI)x & ~under) | ((VI)((V){} + lo) & under));                        \
        x = (V)(((VI)x & ~over) | ((VI)((V){} + hi) & over));                          \
        const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */ \
        V t = x * 1.44269504088896341f + magic;                                        \
        V n = t - magic;                                                               \
        V r = x - n * 0.693359375f;                                                    \
        r = r - n * -2.12194440e-4f;                                                   \
        V p = (V){} + 1.9875691500e-4f;                                                \
        p = p * r + 1.3981999507e-3f;                                                  \
        p = p * r + 8.3334519073e-3f;                                                  \
        p = p * r + 4.1665795894e-2f;                                                  \
        p = p * r + 1.6666665459e-1f;                                                  \
        p = p * r + 5.0000001201e-1f;                                                  \
        p = p * r * r + r + 1.0f;                                                      \
        VI e = ((VI)t - 0x4B400000 + 127) << 23;                                       \
        V y = p * (V)e;                                                                \
        return (V)((VI)y & keep);                                                      \
    }
#if defined(__AVX512F__)
DEFINE_VEXP(vexp, v16, v16i)
#else
typedef int32_t v8i __attribute__((vector_size(32)));
DEFINE_VEXP(vexp8, v8, v8i)
static inline __attribute__((always_inline)) v16 vexp(v16 x) {
    v8 h[2];
    memcpy(h, &x, sizeof x);
    h[0] = vexp8(h[0]), h[1] = vexp8(h[1]);
    memcpy(&x, h, sizeof x);
    return x;
}
#endif

typedef struct {
    const uint8_t *mask;
    int mask_batched;
    const float *bias;
    int bias_kind;
    int B, T, S, H, Hkv, D;
    bool causal;
    float scale;
} attn_geom;

/* offset of the bias (and dbias) row of (b,h,t) */
static int64_t bias_off(const attn_geom *g, int b, int h, int t) {
    int64_t plane = g->bias_kind == TSR_ATTN_BIAS_BHTS ? (int64_t)b * g->H + h
                    : g->bias_kind == TSR_ATTN_BIAS_HTS ? h
                                                        : 0;
    return (plane * g->T + t) * g->S;
}
static const float *bias_row(const attn_geom *g, int b, int h, int t) {
    return g->bias ? g->bias + bias_off(g, b, h, t) : NULL;
}
static const uint8_t *mask_row(const attn_geom *g, int b, int t) {
    if (!g->mask) return NULL;
    return g->mask + ((g->mask_batched ? (int64_t)b * g->T : 0) + t) * g->S;
}
/* keys of query t are in [0, lim]; lim < 0 means none */
static int row_limit(const attn_geom *g, int t) {
    int lim = g->S - 1;
    if (g->causal && t + g->S - g->T < lim) lim = t + g->S - g->T;
    return lim;
}

/* x[0..n) (raw q.k for keys s0..s0+n) -> scale*x + bias, -inf where hidden;
 * x[n..npad) -> -inf */
static void score_row(float *x, int n, int npad, int s0, const attn_geom *g, int b, int h, int t) {
    const float *br = bias_row(g, b, h, t);
    const uint8_t *mr = mask_row(g, b, t);
    int lim = row_limit(g, t) - s0;
    float sc = g->scale;
    /* separate loops: a vectorised load under a false condition from a NULL
     * row pointer becomes a masked load that faults and is suppressed,
     * which is very slow */
    int nv = lim + 1 < n ? (lim + 1 > 0 ? lim + 1 : 0) : n; /* causally visible prefix */
#pragma omp simd
    for (int j = 0; j < nv; j++) x[j] *= sc;
    for (int j = nv; j < n; j++) x[j] = -INFINITY;
    if (br) {
        br += s0;
#pragma omp simd
        for (int j = 0; j < nv; j++) x[j] += br[j];
    }
    if (mr) {
        mr += s0;
#pragma omp simd
        for (int j = 0; j < nv; j++) x[j] = mr[j] ? x[j] : -INFINITY;
    }
    for (int j = n; j < npad; j++) x[j] = -INFINITY;
}

/* max of x (npad, a multiple of 16); -inf when every entry is -inf. Done
 * by hand: an OpenMP max reduction may start from -FLT_MAX, not -inf. */
static float max_row(const float *x, int npad) {
#if defined(__AVX512F__)
    v16 m = vsplat(-INFINITY);
    for (int j = 0; j < npad; j += VL) {
        v16 a = vload(x + j);
        v16i gt = a > m;
        m = (v16)(((v16i)a & gt) | ((v16i)m & ~gt));
    }
    const int nl = VL;
#else /* 8 lanes: see vexp */
    v8 m = (v8){} - INFINITY;
    for (int j = 0; j < npad; j += 8) {
        v8 a = v8load(x + j);
        v8i gt = a > m;
        m = (v8)(((v8i)a & gt) | ((v8i)m & ~gt));
    }
    const int nl = 8;
#endif
    float r = m[0];
    for (int i = 1; i < nl; i++) r = m[i] > r ? m[i] : r;
    return r;
}

/* sum of x (npad, a multiple of 16) lane by lane, then across lanes in a
 * fixed order: trailing zeros leave it bit-identical, so a query row's
 * output does not depend on how many keys its tile computed (or on how
 * many queries shared the forward, which speculative verification needs) */
static float sum_row(const float *x, int npad) {
    v16 a = vsplat(0.f);
    for (int j = 0; j < npad; j += VL) a += vload(x + j);
    float r = 0;
    for (int i = 0; i < VL; i++) r += a[i];
    return r;
}

/* x (npad, a multiple of 16) -> exp(x - sub) in place */
static void exp_row(float *x, int npad, float sub) {
    for (int j = 0; j < npad; j += VL) vstore(x + j, vexp(vload(x + j) - sub));
}

/* ------------------------------------------------------------- forward */

/* (B,S,Hkv,D) -> (B,Hkv,D,S) so score tiles run along keys */
static void transpose_kv(float *xt, const float *x, int B, int S, int Hkv, int D, int nthreads) {
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int bg = 0; bg < B * Hkv; bg++) {
        int b = bg / Hkv, g = bg % Hkv;
        float *dst = xt + (int64_t)bg * D * S;
        const float *src = x + ((int64_t)b * S * Hkv + g) * D;
        int64_t rs = (int64_t)Hkv * D;
        /* 16x16 blocks through a local buffer: contiguous reads and
         * contiguous 64-byte writes */
        float blk[VL][VL];
        for (int s0 = 0; s0 < S; s0 += VL) {
            int sn = S - s0 < VL ? S - s0 : VL;
            for (int d0 = 0; d0 < D; d0 += VL) {
                int dn = D - d0 < VL ? D - d0 : VL;
                for (int s = 0; s < sn; s++)
                    for (int d = 0; d < dn; d++) blk[d][s] = src[(s0 + s) * rs + d0 + d];
                for (int d = 0; d < dn; d++) memcpy(dst + (int64_t)(d0 + d) * S + s0, blk[d], sizeof(float) * sn);
            }
        }
    }
}

#ifdef TSR_KPRIMARY
size_t tsr_attention_fwd_scratch(int B, int T, int S, int Hkv, int D, int nthreads) {
    (void)T;
    return (size_t)B * Hkv * D * S + (size_t)nthreads * QT * (size_t)attn_round_up(S, VL);
}
#endif

void KV(tsr_attention_fwd)(float *out, float *lse, float *scratch, const float *q, const float *k,
                       const float *v, const uint8_t *mask, int mask_batched, const float *bias,
                       int bias_kind, int B, int T, int S, int H, int Hkv, int D, bool causal,
                       float scale, int nthreads) {
    attn_geom g = {mask, mask_batched, bias, bias_kind, B, T, S, H, Hkv, D, causal, scale};
    float *kt = scratch;
    float *per_thread = scratch + (int64_t)B * Hkv * D * S;
    int64_t ldp = attn_round_up(S, VL);
    transpose_kv(kt, k, B, S, Hkv, D, nthreads);
    int G = H / Hkv, nqt = (T + QT - 1) / QT;
    int64_t units = (int64_t)B * H * nqt;
#pragma omp parallel num_threads(nthreads)
    {
        float *P = per_thread + (int64_t)tsr_omp_thread_num() * QT * ldp;
#pragma omp for schedule(dynamic)
        for (int64_t u = 0; u < units; u++) {
            int b = (int)(u / ((int64_t)H * nqt)), h = (int)(u / nqt % H), qt = (int)(u % nqt);
            int kv = h / G, t0 = qt * QT, tn = T - t0 < QT ? T - t0 : QT;
            int jn = row_limit(&g, t0 + tn - 1) + 1; /* keys any row of the tile may see */
            const float *qrow = q + (((int64_t)b * T + t0) * H + h) * D;
            float *orow = out + (((int64_t)b * T + t0) * H + h) * D;
            float *lrow = lse ? lse + ((int64_t)b * H + h) * T + t0 : NULL;
            if (jn <= 0) {
                for (int i = 0; i < tn; i++) {
                    memset(orow + (int64_t)i * H * D, 0, sizeof(float) * D);
                    if (lrow) lrow[i] = -INFINITY;
                }
                continue;
            }
            int ld = (int)attn_round_up(jn, VL);
            mm(P, ld, qrow, H * D, 1, kt + (int64_t)(b * Hkv + kv) * D * S, S, tn, jn, D, false);
            for (int i = 0; i < tn; i++) {
                float *x = P + (int64_t)i * ld;
                score_row(x, jn, ld, 0, &g, b, h, t0 + i);
                float m = max_row(x, ld);
                if (m == -INFINITY) {
                    memset(x, 0, sizeof(float) * ld);
                    if (lrow) lrow[i] = -INFINITY;
                    continue;
                }
                exp_row(x, ld, m);
                float l = sum_row(x, ld);
                float inv = 1.0f / l;
#pragma omp simd
                for (int j = 0; j < jn; j++) x[j] *= inv;
                if (lrow) lrow[i] = m + logf(l);
            }
            mm(orow, H * D, P, ld, 1, v + ((int64_t)b * S * Hkv + kv) * D, Hkv * D, tn, D, jn, false);
        }
    }
}

/* ------------------------------------------------------------ backward */

#ifdef TSR_KPRIMARY
size_t tsr_attention_bwd_scratch(int B, int T, int S, int H, int Hkv, int D, int nthreads) {
    size_t p1 = 2 * (size_t)QT * (size_t)attn_round_up(S, VL);
    size_t p2 = 2 * (size_t)QT * KT + 2 * (size_t)KT * D;
    return 2 * (size_t)B * Hkv * D * S + (size_t)B * H * T + (size_t)nthreads * (p1 > p2 ? p1 : p2);
}
#endif

/* P = exp(x - lse) for a scored row (0 where hidden or the row is empty) */
static void prob_row(float *x, int npad, float lse) {
    if (lse == -INFINITY) memset(x, 0, sizeof(float) * npad);
    else exp_row(x, npad, lse);
}

void KV(tsr_attention_bwd)(float *dq, float *dk, float *dv, float *dbias, float *scratch,
                       const float *dout, const float *out, const float *lse, const float *q,
                       const float *k, const float *v, const uint8_t *mask, int mask_batched,
                       const float *bias, int bias_kind, int B, int T, int S, int H, int Hkv,
                       int D, bool causal, float scale, int nthreads) {
    attn_geom g = {mask, mask_batched, bias, bias_kind, B, T, S, H, Hkv, D, causal, scale};
    int64_t kvsz = (int64_t)B * Hkv * D * S;
    float *kt = scratch, *vt = scratch + kvsz, *delta = scratch + 2 * kvsz;
    float *per_thread = delta + (int64_t)B * H * T;
    int64_t ldp = attn_round_up(S, VL);
    int64_t per = 2 * QT * ldp > 2 * QT * KT + 2 * KT * D ? 2 * QT * ldp : 2 * QT * KT + 2 * KT * D;
    int G = H / Hkv, HD = H * D, KD = Hkv * D;
    transpose_kv(kt, k, B, S, Hkv, D, nthreads);
    transpose_kv(vt, v, B, S, Hkv, D, nthreads);
    /* delta = rowsum(P * dP) = dout . out */
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t r = 0; r < (int64_t)B * T * H; r++) {
        const float *a = dout + r * D, *o = out + r * D;
        float s = 0;
        for (int d = 0; d < D; d++) s += a[d] * o[d];
        int b = (int)(r / ((int64_t)T * H)), t = (int)(r / H % T), h = (int)(r % H);
        delta[((int64_t)b * H + h) * T + t] = s;
    }

    /* pass 1: dq and dbias by query tiles. A bias shared across b (or b
     * and h) has its rows owned by one unit that loops over those dims in a
     * fixed order. */
    int nqt = (T + QT - 1) / QT;
    if (dq || dbias) {
        int nb = (dbias && bias_kind != TSR_ATTN_BIAS_BHTS) ? 1 : B;
        int nh = (dbias && bias_kind == TSR_ATTN_BIAS_TS) ? 1 : H;
        int64_t units = (int64_t)nb * nh * nqt;
#pragma omp parallel num_threads(nthreads)
        {
            float *P = per_thread + (int64_t)tsr_omp_thread_num() * per, *dP = P + QT * ldp;
#pragma omp for schedule(dynamic)
            for (int64_t u = 0; u < units; u++) {
                int bo = (int)(u / ((int64_t)nh * nqt)), ho = (int)(u / nqt % nh), qt = (int)(u % nqt);
                int t0 = qt * QT, tn = T - t0 < QT ? T - t0 : QT;
                int jn = row_limit(&g, t0 + tn - 1) + 1;
                if (jn <= 0) continue;
                int ld = (int)attn_round_up(jn, VL);
                for (int b = nb == 1 ? 0 : bo; b < (nb == 1 ? B : bo + 1); b++)
                    for (int h = nh == 1 ? 0 : ho; h < (nh == 1 ? H : ho + 1); h++) {
                        int kv = h / G;
                        int64_t row0 = ((int64_t)b * T + t0) * H + h;
                        const float *L = lse + ((int64_t)b * H + h) * T + t0;
                        const float *dl = delta + ((int64_t)b * H + h) * T + t0;
                        mm(P, ld, q + row0 * D, HD, 1, kt + (int64_t)(b * Hkv + kv) * D * S, S, tn, jn, D, false);
                        mm(dP, ld, dout + row0 * D, HD, 1, vt + (int64_t)(b * Hkv + kv) * D * S, S, tn, jn, D, false);
                        for (int i = 0; i < tn; i++) {
                            float *x = P + (int64_t)i * ld, *y = dP + (int64_t)i * ld;
                            score_row(x, jn, ld, 0, &g, b, h, t0 + i);
                            prob_row(x, ld, L[i]);
                            float di = dl[i];
#pragma omp simd
                            for (int j = 0; j < jn; j++) x[j] = x[j] * (y[j] - di); /* dS */
                            if (dbias) {
                                float *gb = dbias + bias_off(&g, b, h, t0 + i);
#pragma omp simd
                                for (int j = 0; j < jn; j++) gb[j] += x[j];
                            }
#pragma omp simd
                            for (int j = 0; j < jn; j++) x[j] *= scale;
                        }
                        if (dq)
                            mm(dq + row0 * D, HD, P, ld, 1, k + ((int64_t)b * S * Hkv + kv) * D, KD, tn, D, jn, true);
                    }
            }
        }
    }

    /* pass 2: dk and dv by (b, kv head, key tile), summing the query heads
     * of the group and all query tiles that can see the key tile */
    if (!dk && !dv) return;
    int nkt = (S + KT - 1) / KT;
    int64_t units = (int64_t)B * Hkv * nkt;
#pragma omp parallel num_threads(nthreads)
    {
        float *P = per_thread + (int64_t)tsr_omp_thread_num() * per, *dP = P + QT * KT;
        float *gk = dP + QT * KT, *gv = gk + KT * D;
#pragma omp for schedule(dynamic)
        for (int64_t u = 0; u < units; u++) {
            int b = (int)(u / ((int64_t)Hkv * nkt)), kv = (int)(u / nkt % Hkv), st = (int)(u % nkt);
            int s0 = st * KT, sn = S - s0 < KT ? S - s0 : KT;
            int ld = (int)attn_round_up(sn, VL);
            memset(gk, 0, sizeof(float) * KT * D);
            memset(gv, 0, sizeof(float) * KT * D);
            const float *ktile = kt + (int64_t)(b * Hkv + kv) * D * S + s0;
            const float *vtile = vt + (int64_t)(b * Hkv + kv) * D * S + s0;
            /* first query that may see key s0 */
            int tfirst = causal ? s0 - (S - T) : 0;
            if (tfirst < 0) tfirst = 0;
            for (int h = kv * G; h < (kv + 1) * G; h++) {
                const float *L = lse + ((int64_t)b * H + h) * T;
                const float *dl = delta + ((int64_t)b * H + h) * T;
                for (int t0 = tfirst / QT * QT; t0 < T; t0 += QT) {
                    int tn = T - t0 < QT ? T - t0 : QT;
                    int64_t row0 = ((int64_t)b * T + t0) * H + h;
                    mm(P, ld, q + row0 * D, HD, 1, ktile, S, tn, sn, D, false);
                    mm(dP, ld, dout + row0 * D, HD, 1, vtile, S, tn, sn, D, false);
                    for (int i = 0; i < tn; i++) {
                        float *x = P + (int64_t)i * ld, *y = dP + (int64_t)i * ld;
                        score_row(x, sn, ld, s0, &g, b, h, t0 + i);
                        prob_row(x, ld, L[t0 + i]);
                        float di = dl[t0 + i];
#pragma omp simd
                        for (int j = 0; j < sn; j++) y[j] = x[j] * (y[j] - di) * scale; /* dS*scale */
                    }
                    if (dv) mm(gv, D, P, 1, ld, dout + row0 * D, HD, sn, D, tn, true);
                    if (dk) mm(gk, D, dP, 1, ld, q + row0 * D, HD, sn, D, tn, true);
                }
            }
            for (int j = 0; j < sn; j++) {
                int64_t o = (((int64_t)b * S + s0 + j) * Hkv + kv) * D;
                if (dk)
                    for (int d = 0; d < D; d++) dk[o + d] += gk[(int64_t)j * D + d];
                if (dv)
                    for (int d = 0; d < D; d++) dv[o + d] += gv[(int64_t)j * D + d];
            }
        }
    }
}

#ifdef TSR_KPRIMARY
/* ----------------------------------------------------------- references */

#define REF_MAXD 256

/* scaled score of (b,h,t) against key s in double; -inf when hidden */
static double ref_score(const attn_geom *g, const float *q, const float *k, int b, int h, int t,
                        int s) {
    const uint8_t *mr = mask_row(g, b, t);
    if (s > row_limit(g, t) || (mr && !mr[s])) return -INFINITY;
    int kv = h / (g->H / g->Hkv);
    const float *qr = q + (((int64_t)b * g->T + t) * g->H + h) * g->D;
    const float *kr = k + (((int64_t)b * g->S + s) * g->Hkv + kv) * g->D;
    double acc = 0;
    for (int d = 0; d < g->D; d++) acc += (double)qr[d] * kr[d];
    const float *br = bias_row(g, b, h, t);
    return acc * g->scale + (br ? br[s] : 0.0);
}

/* row max and logsumexp; lse = -inf when no key is visible */
static double ref_lse(const attn_geom *g, const float *q, const float *k, int b, int h, int t) {
    double m = -INFINITY;
    for (int s = 0; s < g->S; s++) {
        double x = ref_score(g, q, k, b, h, t, s);
        if (x > m) m = x;
    }
    if (m == -INFINITY) return m;
    double l = 0;
    for (int s = 0; s < g->S; s++) l += exp(ref_score(g, q, k, b, h, t, s) - m);
    return m + log(l);
}

void tsr_attention_ref(float *out, const float *q, const float *k, const float *v,
                       const uint8_t *mask, int mask_batched, const float *bias, int bias_kind,
                       int B, int T, int S, int H, int Hkv, int D, bool causal, float scale) {
    TSR_ASSERT(D <= REF_MAXD && H % Hkv == 0);
    if (scale == 0.f) scale = 1.0f / sqrtf((float)D);
    attn_geom g = {mask, mask_batched, bias, bias_kind, B, T, S, H, Hkv, D, causal, scale};
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                double acc[REF_MAXD] = {0};
                double lse = ref_lse(&g, q, k, b, h, t);
                if (lse != -INFINITY)
                    for (int s = 0; s < S; s++) {
                        double p = exp(ref_score(&g, q, k, b, h, t, s) - lse);
                        const float *vr = v + (((int64_t)b * S + s) * Hkv + h / (H / Hkv)) * D;
                        for (int d = 0; d < D; d++) acc[d] += p * vr[d];
                    }
                float *o = out + (((int64_t)b * T + t) * H + h) * D;
                for (int d = 0; d < D; d++) o[d] = (float)acc[d];
            }
}

void tsr_attention_bwd_ref(float *dq, float *dk, float *dv, float *dbias, const float *dout,
                           const float *q, const float *k, const float *v, const uint8_t *mask,
                           int mask_batched, const float *bias, int bias_kind, int B, int T,
                           int S, int H, int Hkv, int D, bool causal, float scale) {
    TSR_ASSERT(D <= REF_MAXD && H % Hkv == 0);
    if (scale == 0.f) scale = 1.0f / sqrtf((float)D);
    attn_geom g = {mask, mask_batched, bias, bias_kind, B, T, S, H, Hkv, D, causal, scale};
    int G = H / Hkv;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                double lse = ref_lse(&g, q, k, b, h, t);
                if (lse == -INFINITY) continue;
                int kv = h / G;
                int64_t qo = (((int64_t)b * T + t) * H + h) * D;
                const float *go = dout + qo, *qr = q + qo;
                /* delta = sum_s P_s dP_s */
                double delta = 0;
                for (int s = 0; s < S; s++) {
                    double p = exp(ref_score(&g, q, k, b, h, t, s) - lse);
                    const float *vr = v + (((int64_t)b * S + s) * Hkv + kv) * D;
                    double dp = 0;
                    for (int d = 0; d < D; d++) dp += (double)go[d] * vr[d];
                    delta += p * dp;
                }
                double gq[REF_MAXD] = {0};
                for (int s = 0; s < S; s++) {
                    double p = exp(ref_score(&g, q, k, b, h, t, s) - lse);
                    if (p == 0) continue;
                    int64_t ko = (((int64_t)b * S + s) * Hkv + kv) * D;
                    double dp = 0;
                    for (int d = 0; d < D; d++) dp += (double)go[d] * v[ko + d];
                    double ds = p * (dp - delta);
                    for (int d = 0; d < D; d++) {
                        gq[d] += ds * scale * k[ko + d];
                        if (dk) dk[ko + d] += (float)(ds * scale * qr[d]);
                        if (dv) dv[ko + d] += (float)(p * go[d]);
                    }
                    if (dbias) {
                        dbias[bias_off(&g, b, h, t) + s] += (float)ds;
                    }
                }
                if (dq)
                    for (int d = 0; d < D; d++) dq[qo + d] += (float)gq[d];
            }
}

/* ------------------------------------------------------------- autograd */

typedef struct {
    const tsr_tensor *mask;
    float *lse;
    int bias_kind;
    bool causal;
    float scale;
} attn_saved;

static void attention_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *bias = n->n_in > 3 ? n->in[3] : NULL;
    const attn_saved *sv = n->saved;
    int B = (int)q->shape[0], T = (int)q->shape[1], H = (int)q->shape[2], D = (int)q->shape[3];
    int S = (int)k->shape[1], Hkv = (int)k->shape[2];
    int nt = tsr_threads_get();
    float *scratch = tsr_arena_alloc(&c->arena, sizeof(float) * tsr_attention_bwd_scratch(B, T, S, H, Hkv, D, nt));
    const tsr_tensor *m = sv->mask;
    tsr_attention_bwd(q->requires_grad ? tsr_grad(c, q) : NULL, k->requires_grad ? tsr_grad(c, k) : NULL,
                      v->requires_grad ? tsr_grad(c, v) : NULL,
                      bias && bias->requires_grad ? tsr_grad(c, bias) : NULL, scratch, n->out->grad,
                      tsr_f32(n->out), sv->lse, tsr_f32(q), tsr_f32(k), tsr_f32(v),
                      m ? tsr_u8(m) : NULL, m && m->ndim == 3, bias ? tsr_f32(bias) : NULL,
                      sv->bias_kind, B, T, S, H, Hkv, D, sv->causal, sv->scale, nt);
}

tsr_tensor *tsr_attention(tsr_ctx *c, tsr_tensor *q, tsr_tensor *k, tsr_tensor *v,
                          const tsr_attn_opts *o) {
    static const tsr_attn_opts none = {0};
    if (!o) o = &none;
    TSR_ASSERT(q->dtype == TSR_F32 && k->dtype == TSR_F32 && v->dtype == TSR_F32);
    TSR_ASSERT(q->ndim == 4 && k->ndim == 4 && tsr_same_shape(k, v));
    int B = (int)q->shape[0], T = (int)q->shape[1], H = (int)q->shape[2], D = (int)q->shape[3];
    int S = (int)k->shape[1], Hkv = (int)k->shape[2];
    TSR_ASSERT(k->shape[0] == B && k->shape[3] == D && Hkv > 0 && H % Hkv == 0);
    const tsr_tensor *m = o->mask;
    if (m) {
        TSR_ASSERT(m->dtype == TSR_U8 && (m->ndim == 2 || m->ndim == 3));
        TSR_ASSERT(m->shape[m->ndim - 2] == T && m->shape[m->ndim - 1] == S);
        TSR_ASSERT(m->ndim == 2 || m->shape[0] == B);
    }
    tsr_tensor *bias = o->bias;
    int bias_kind = TSR_ATTN_BIAS_NONE;
    if (bias) {
        TSR_ASSERT(bias->dtype == TSR_F32 && bias->ndim >= 2 && bias->ndim <= 4);
        TSR_ASSERT(bias->shape[bias->ndim - 2] == T && bias->shape[bias->ndim - 1] == S);
        if (bias->ndim >= 3) TSR_ASSERT(bias->shape[bias->ndim - 3] == H);
        if (bias->ndim == 4) TSR_ASSERT(bias->shape[0] == B);
        bias_kind = bias->ndim == 2 ? TSR_ATTN_BIAS_TS : bias->ndim == 3 ? TSR_ATTN_BIAS_HTS : TSR_ATTN_BIAS_BHTS;
    }
    float scale = o->scale != 0.f ? o->scale : 1.0f / sqrtf((float)D);
    tsr_tensor *out = tsr_new(c, TSR_F32, 4, q->shape);
    tsr_tensor *ins[4] = {q, k, v, bias};
    bool need_grad = c->grad_enabled && (q->requires_grad || k->requires_grad || v->requires_grad ||
                                         (bias && bias->requires_grad));
    float *lse = need_grad ? tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)B * H * T) : NULL;
    int nt = tsr_threads_get();
    float *scratch = tsr_arena_alloc(&c->arena, sizeof(float) * tsr_attention_fwd_scratch(B, T, S, Hkv, D, nt));
    tsr_attention_fwd(tsr_f32(out), lse, scratch, tsr_f32(q), tsr_f32(k), tsr_f32(v),
                      m ? tsr_u8(m) : NULL, m && m->ndim == 3, bias ? tsr_f32(bias) : NULL,
                      bias_kind, B, T, S, H, Hkv, D, o->causal, scale, nt);
    tsr_node *n = tsr_record(c, "attention", attention_backward, out, bias ? 4 : 3, ins);
    if (n) {
        attn_saved *sv = tsr_arena_alloc(&c->arena, sizeof *sv);
        sv->mask = m;
        sv->lse = lse;
        sv->bias_kind = bias_kind;
        sv->causal = o->causal;
        sv->scale = scale;
        n->saved = sv;
    }
    return out;
}
#endif /* TSR_KPRIMARY */
