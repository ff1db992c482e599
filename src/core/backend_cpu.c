/* tessera core: the CPU backend tables. tsr_backend_cpu wraps OpenBLAS;
 * tsr_backend_cpu_fixed is our own sgemm whose every output element is one
 * float sum over k in ascending order, so a row's result never depends on
 * M, on the row's position in A, or on the thread count. Inference caches
 * that promise bit identity (EBRM's QE cache) run on it: OpenBLAS picks
 * different micro-kernel edges by row position on some CPUs. */
#include "tessera/core.h"

#include "core/sgemm_fixed.h"
#include "tessera/cpu.h"

#include <cblas.h>

static void cpu_sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M == 0 || N == 0) return;
    if (K == 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(int64_t)i * ldc + j] = beta == 0.f ? 0.f : beta * C[(int64_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const tsr_backend tsr_backend_cpu = {"cpu-openblas", cpu_sgemm};

static void fixed_sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                        const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    tsr_sgemm_fixed_block_fn block = tsr_sgemm_fixed_block_scalar;
    if (tsr_cpu_level() >= TSR_CPU_AVX512) block = tsr_sgemm_fixed_block_avx512;
    else if (tsr_cpu_level() >= TSR_CPU_AVX2) block = tsr_sgemm_fixed_block_avx2;
    int nrb = (M + FX_R - 1) / FX_R, njb = (N + FX_J - 1) / FX_J;
    int64_t nblk = (int64_t)nrb * njb;
#pragma omp parallel for schedule(static) if (nblk > 1 && (int64_t)M * N * K > (1 << 18))
    for (int64_t b = 0; b < nblk; b++) {
        int i0 = (int)(b / njb) * FX_R, j0 = (int)(b % njb) * FX_J;
        block(ta, tb, i0, M - i0 < FX_R ? M - i0 : FX_R, j0, N - j0 < FX_J ? N - j0 : FX_J, K, alpha,
                    A, lda, B, ldb, beta, C, ldc);
    }
}

const tsr_backend tsr_backend_cpu_fixed = {"cpu-fixed", fixed_sgemm};
