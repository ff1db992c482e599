/* lm family: matrix-vector/matrix-matrix kernels for inference whose
 * result per output element does not depend on the batch.
 *
 * Why our own and not sgemm: speculative verification and batched prefill
 * must give a token exactly the logits it gets when processed alone. BLAS
 * picks different blockings (and so summation orders) for different n.
 * Here every output element is ONE dot product computed by the same code
 * path: a single 8-lane accumulator walked over k in steps of 8 (fused
 * multiply-add), one fixed horizontal sum, then the scalar tail in order.
 * Blocking over 4 rows x 2 tokens only reuses loads; it never changes what
 * is added to what. Threads split rows, so the thread count is irrelevant.
 */
#include "tessera/lm.h"

#include <math.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LM_AVX2 1
#endif

#define AI static inline __attribute__((always_inline))

#ifdef LM_AVX2
AI float hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);                    /* l0+l4 l1+l5 l2+l6 l3+l7 */
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo)); /* (.. + ..) pairs 0,2 and 1,3 */
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}

/* out[t*ldo + r] = dot(w row r, x row t) for r < R, t < T */
AI void block(float *out, size_t ldo, const float *x, size_t ldx, const float *w, size_t ldw, int k,
              const int R, const int T) {
    __m256 acc[8][2];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= k; j += 8) {
        __m256 xv[2];
        for (int t = 0; t < T; t++) xv[t] = _mm256_loadu_ps(x + (size_t)t * ldx + j);
        for (int r = 0; r < R; r++) {
            __m256 wv = _mm256_loadu_ps(w + (size_t)r * ldw + j);
            for (int t = 0; t < T; t++) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
        }
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
    float acc[8][2][8];
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

float tsr_lm_dot(const float *a, const float *b, int k) {
    float r;
    block(&r, 1, b, 0, a, 0, k, 1, 1);
    return r;
}

/* rows r0..r0+R-1 for all n tokens; R, T constant after inlining */
AI void row_block(float *out, size_t ldo, const float *x, size_t ldx, const float *w, size_t ldw,
                  int k, int n, const int R) {
    int t = 0;
    for (; t + 2 <= n; t += 2) block(out + (size_t)t * ldo, ldo, x + (size_t)t * ldx, ldx, w, ldw, k, R, 2);
    if (t < n) block(out + (size_t)t * ldo, ldo, x + (size_t)t * ldx, ldx, w, ldw, k, R, 1);
}

void tsr_lm_matmul(float *out, int ldo, const float *x, int ldx, const tsr_lm_mat *w, int n) {
    TSR_ASSERT(w->type == TSR_LM_W_F32);
    const float *W = w->data;
    const int rows = w->rows, k = w->cols;
    /* one token: 8 rows keep 8 independent FMA chains in flight; more
     * tokens: 4 rows x 2 tokens do the same and reuse each loaded row */
    const int RB = n == 1 ? 8 : 4;
    const int nrb = (rows + RB - 1) / RB;
    /* small products: a parallel region costs more than it saves */
    const double work = (double)rows * k * n;
#pragma omp parallel for schedule(static) if (work > 65536.0)
    for (int rb = 0; rb < nrb; rb++) {
        int r0 = rb * RB, R = rows - r0 < RB ? rows - r0 : RB;
        const float *wr = W + (size_t)r0 * (size_t)k;
        float *o = out + r0;
        size_t lo = (size_t)ldo, lx = (size_t)ldx, lw = (size_t)k;
        if (R == 8) {
            block(o, lo, x, lx, wr, lw, k, 8, 1);
            continue;
        }
        /* the last rows of a one-token product fall through in blocks of 4 */
        for (int r = 0; r < R; r += 4, o += 4, wr += 4 * lw) {
            switch (R - r < 4 ? R - r : 4) {
            case 4: row_block(o, lo, x, lx, wr, lw, k, n, 4); break;
            case 3: row_block(o, lo, x, lx, wr, lw, k, n, 3); break;
            case 2: row_block(o, lo, x, lx, wr, lw, k, n, 2); break;
            default: row_block(o, lo, x, lx, wr, lw, k, n, 1); break;
            }
        }
    }
}

/* Causal attention of one query head over keys 0..n_keys-1 (in order):
 * scores q.k / sqrt(D), softmax with max subtraction, weighted sum of the
 * values. k and v rows are ld floats apart. att: n_keys scratch floats. */
void tsr_lm_attend(float *out, const float *q, const float *k, const float *v, size_t ld, int n_keys, int D,
                   float *att) {
    const float scale = sqrtf((float)D);
    float mx = -INFINITY;
    for (int s = 0; s < n_keys; s++) {
        float sc;
        block(&sc, 1, q, 0, k + (size_t)s * ld, 0, D, 1, 1);
        sc /= scale;
        att[s] = sc;
        if (sc > mx) mx = sc;
    }
    float sum = 0.0f;
    for (int s = 0; s < n_keys; s++) {
        att[s] = expf(att[s] - mx);
        sum += att[s];
    }
    for (int s = 0; s < n_keys; s++) att[s] /= sum;
    /* each output element sums over the keys in order; 8 elements at a
     * time stay in a register */
    int i = 0;
#ifdef LM_AVX2
    for (; i + 8 <= D; i += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int s = 0; s < n_keys; s++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(att[s]), _mm256_loadu_ps(v + (size_t)s * ld + i), acc);
        _mm256_storeu_ps(out + i, acc);
    }
#endif
    for (; i < D; i++) {
        float acc = 0.0f;
        for (int s = 0; s < n_keys; s++) acc += att[s] * v[(size_t)s * ld + i];
        out[i] = acc;
    }
}

void tsr_lm_matmul_ref(float *out, int ldo, const float *x, int ldx, const tsr_lm_mat *w, int n) {
    TSR_ASSERT(w->type == TSR_LM_W_F32);
    const float *W = w->data;
    for (int t = 0; t < n; t++)
        for (int r = 0; r < w->rows; r++) {
            float s = 0;
            for (int j = 0; j < w->cols; j++) s += W[(size_t)r * w->cols + j] * x[(size_t)t * ldx + j];
            out[(size_t)t * ldo + r] = s;
        }
}
