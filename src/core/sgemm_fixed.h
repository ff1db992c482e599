/* tessera core: block kernel of the fixed-order CPU sgemm
 * (tsr_backend_cpu_fixed), one variant per kernel level. */
#ifndef TSR_CORE_SGEMM_FIXED_H
#define TSR_CORE_SGEMM_FIXED_H

#include "tessera/core.h"

enum { FX_R = 32, FX_J = 64, FX_K = 64 }; /* rows, columns, k per block */

/* C rows [i0, i0+nr) x columns [j0, j0+nj) (nr <= FX_R, nj <= FX_J) */
typedef void (*tsr_sgemm_fixed_block_fn)(bool ta, bool tb, int i0, int nr, int j0, int nj, int K, float alpha,
                                         const float *A, int lda, const float *B, int ldb, float beta, float *C,
                                         int ldc);
#define TSR_SGEMM_FIXED_BLOCK(lvl)                                                                             \
    void tsr_sgemm_fixed_block_##lvl(bool ta, bool tb, int i0, int nr, int j0, int nj, int K, float alpha,      \
                                     const float *A, int lda, const float *B, int ldb, float beta, float *C,    \
                                     int ldc);
TSR_SGEMM_FIXED_BLOCK(scalar)
TSR_SGEMM_FIXED_BLOCK(avx2)
TSR_SGEMM_FIXED_BLOCK(avx512)

#endif
