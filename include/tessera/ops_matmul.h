/* tessera ops: matrix multiply (OpenBLAS sgemm through the backend table). */
#ifndef TESSERA_OPS_MATMUL_H
#define TESSERA_OPS_MATMUL_H

#include "tessera/core.h"

/* Kernels. out (M,N) = op(a) op(b), op = transpose when ta/tb.
 * a is (M,K) or (K,M) if ta; b is (K,N) or (N,K) if tb. beta 0 overwrites,
 * 1 accumulates. */
void tsr_matmul_fwd(const tsr_backend *be, float *out, const float *a, const float *b, int M,
                    int N, int K, bool ta, bool tb, float beta);
void tsr_matmul_ref(float *out, const float *a, const float *b, int M, int N, int K, bool ta,
                    bool tb);

/* Autograd op. a (..., M, K) [or (..., K, M) if ta], b (..., K, N) [or
 * (..., N, K) if tb]; leading dims must match exactly, or b may be 2-D and
 * shared across a's batch (the Linear case: x (B,T,C) @ W^T). */
tsr_tensor *tsr_matmul(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b, bool ta, bool tb);

/* y = x W^T + bias: x (..., in), W (out, in), bias (out) or NULL. */
tsr_tensor *tsr_linear(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *bias);

#endif
