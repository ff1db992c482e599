/* tessera ops: small ops graph predictors need (narformer): row-wise L2
 * normalisation (torch.nn.functional.normalize, p=2) and -logsigmoid
 * (softplus(-x), torch: -F.logsigmoid). Kernels + autograd wrappers in
 * src/ops/graphops.c; each kernel has a naive _ref twin in double. */
#ifndef TESSERA_OPS_GRAPH_H
#define TESSERA_OPS_GRAPH_H

#include "tessera/core.h"

/* y = x / max(||x||_2, eps) over the last dim. x, y (N, C); nrm (N) saved */
void tsr_l2norm_fwd(float *y, float *nrm, const float *x, int64_t N, int64_t C, float eps);
void tsr_l2norm_fwd_ref(float *y, const float *x, int64_t N, int64_t C, float eps);
/* dx += J^T dy: where ||x|| > eps, (dy - y (y.dy)) / ||x||; else dy / eps */
void tsr_l2norm_bwd(float *dx, const float *dy, const float *y, const float *nrm, int64_t N,
                    int64_t C, float eps);
void tsr_l2norm_bwd_ref(float *dx, const float *dy, const float *x, int64_t N, int64_t C, float eps);

/* y = -log(sigmoid(x)) = softplus(-x), stable for any x; dx += dy (sigmoid(x) - 1) */
void tsr_neg_logsigmoid_fwd(float *y, const float *x, int64_t n);
void tsr_neg_logsigmoid_fwd_ref(float *y, const float *x, int64_t n);
void tsr_neg_logsigmoid_bwd(float *dx, const float *dy, const float *x, int64_t n);

tsr_tensor *tsr_l2_normalize(tsr_ctx *c, tsr_tensor *x, float eps);
tsr_tensor *tsr_neg_logsigmoid(tsr_ctx *c, tsr_tensor *x);

#endif
