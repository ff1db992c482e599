/* tessera ops: normalisations over the last dim, softmax, losses, RoPE.
 * Kernels in src/ops/norm.c, src/ops/loss.c, src/ops/rope.c. Hand-fused
 * forward+backward, one tape node each. (Group/batch norm, which work over
 * channels of (B,C,...) maps, are in ops_conv.h.) */
#ifndef TESSERA_OPS_NORM_H
#define TESSERA_OPS_NORM_H

#include "tessera/core.h"

/* x (..., C); w, b (C) or NULL */
tsr_tensor *tsr_layernorm(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b, float eps);
tsr_tensor *tsr_rmsnorm(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, float eps);
/* over the last dim */
tsr_tensor *tsr_softmax(tsr_ctx *c, tsr_tensor *x);
tsr_tensor *tsr_log_softmax(tsr_ctx *c, tsr_tensor *x);

/* Cross-entropy, fused log-softmax. logits (..., V), targets i32 (...).
 * Rows whose target == ignore_index contribute nothing. weights: f32 with
 * targets' shape (per-token weight) or NULL (all 1). Result: scalar
 * sum_i w_i l_i / sum_i w_i over non-ignored rows (torch's mean when all
 * w = 1); 0 if no row counts. label_smoothing as torch (eps spread
 * uniformly over V). */
tsr_tensor *tsr_cross_entropy(tsr_ctx *c, tsr_tensor *logits, const tsr_tensor *targets,
                              const tsr_tensor *weights, int ignore_index, float label_smoothing);

/* BCE with logits, mean over elements: l = -(pos_w*y*log s(x) + neg_w*(1-y)*log(1-s(x)))
 * * weight (optional elementwise f32, same shape, NULL = 1). Stable form. */
tsr_tensor *tsr_bce_with_logits(tsr_ctx *c, tsr_tensor *logits, const tsr_tensor *targets,
                                const tsr_tensor *weight, float pos_w, float neg_w);
tsr_tensor *tsr_mse(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b); /* mean (a-b)^2; b may be constant */
tsr_tensor *tsr_l1(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b);  /* mean |a-b|, grad sign(0)=0 */

/* RoPE on x (B,T,H,D), D even. pos: i32 with T entries (shared over B) or
 * B*T entries (per row: tree/group decoding needs arbitrary positions).
 * freq_i = theta^(-2i/D). interleaved: rotate pairs (2i,2i+1) as Meta /
 * llama2.c; else rotate halves (i, i+D/2) as HF Llama. */
tsr_tensor *tsr_rope(tsr_ctx *c, tsr_tensor *x, const tsr_tensor *pos, float theta,
                     bool interleaved);
/* 2-D RoPE for image grids: first D/2 channels rotated by row position,
 * last D/2 by column position (each half as 1-D RoPE with D/2, halves
 * layout). pos_h, pos_w as pos above. */
tsr_tensor *tsr_rope2d(tsr_ctx *c, tsr_tensor *x, const tsr_tensor *pos_h,
                       const tsr_tensor *pos_w, float theta);

#endif
