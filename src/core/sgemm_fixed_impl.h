/* tessera core: the fixed-order sgemm's block kernel, compiled once per
 * kernel level (sgemm_fixed_<level>.c). The build is ISO C, so no level
 * contracts a*b+c into an FMA: every level gives the same bits, and the
 * level only sets the vector width of the inner j loop. */
#include "core/sgemm_fixed.h"

#if !defined(TSR_KLEVEL)
#error "define TSR_KLEVEL before including sgemm_fixed_impl.h"
#endif
#define KCAT2(a, b) a##_##b
#define KCAT(a, b) KCAT2(a, b)
#define KV(name) KCAT(name, TSR_KLEVEL)

/* rows [i0, i0+nr) x columns [j0, j0+nj) of C; B is read through a tile
 * laid out (k, j) so the inner loop runs over contiguous j */
void KV(tsr_sgemm_fixed_block)(bool ta, bool tb, int i0, int nr, int j0, int nj, int K, float alpha,
                               const float *A, int lda, const float *B, int ldb, float beta, float *C,
                               int ldc) {
    float acc[FX_R][FX_J], tile[FX_K][FX_J];
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < nj; j++)
            acc[r][j] = 0.f;
    for (int k0 = 0; k0 < K; k0 += FX_K) {
        int nk = K - k0 < FX_K ? K - k0 : FX_K;
        for (int kk = 0; kk < nk; kk++)
            for (int j = 0; j < nj; j++)
                tile[kk][j] = tb ? B[(int64_t)(j0 + j) * ldb + k0 + kk] : B[(int64_t)(k0 + kk) * ldb + j0 + j];
        for (int r = 0; r < nr; r++) {
            float *ar = acc[r];
            for (int kk = 0; kk < nk; kk++) {
                int64_t i = i0 + r, k = k0 + kk;
                float a = ta ? A[k * lda + i] : A[i * lda + k];
                const float *t = tile[kk];
                if (nj == FX_J) /* a constant trip count: the loop unrolls into full vectors */
                    for (int j = 0; j < FX_J; j++)
                        ar[j] += a * t[j];
                else
                    for (int j = 0; j < nj; j++)
                        ar[j] += a * t[j];
            }
        }
    }
    for (int r = 0; r < nr; r++) {
        float *c = C + (int64_t)(i0 + r) * ldc + j0;
        for (int j = 0; j < nj; j++)
            c[j] = alpha * acc[r][j] + (beta == 0.f ? 0.f : beta * c[j]);
    }
}
