/* tessera ops: normalisations over the last dim, softmax, losses, RoPE.
 * Kernels in src/ops/norm.c, src/ops/loss.c, src/ops/rope.c. Hand-fused
 * forward+backward, one tape node each. (Group/batch norm, which work over
 * channels of (B,C,...) maps, are in ops_conv.h.) */
#ifndef TESSERA_OPS_NORM_H
#define TESSERA_OPS_NORM_H

#include "tessera/core.h"
#include "tessera/fastmath.h"

/* x (..., C); w, b (C) or NULL */
tsr_tensor *tsr_layernorm(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b, float eps);
/* Llama: x * rsqrt(mean(x^2) + eps) * w; w may be NULL */
tsr_tensor *tsr_rmsnorm(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, float eps);
/* over the last dim */
tsr_tensor *tsr_softmax(tsr_ctx *c, tsr_tensor *x);
tsr_tensor *tsr_log_softmax(tsr_ctx *c, tsr_tensor *x);

/* Cross-entropy, fused log-softmax. logits (..., V), targets i32 (...).
 * Rows whose target == ignore_index contribute nothing. weights: f32 with
 * targets' shape (per-token weight) or NULL (all 1). Result: scalar
 * sum_i w_i l_i / sum_i w_i over non-ignored rows (torch's mean when all
 * w = 1); 0 if no row counts. label_smoothing as torch (eps spread
 * uniformly over V): l_i = (1-eps)(lse_i - x_{i,t_i}) + eps/V sum_c
 * (lse_i - x_{i,c}), i.e. torch's reduction='none' row loss. A per-token
 * weight scales that whole row loss (smoothing term included), so it equals
 * torch's per-class `weight=` only when eps = 0 and w_i = weight[t_i]. */
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
 * llama2.c; else rotate halves (i, i+D/2) as HF Llama. Angles pos*freq_i
 * are formed in double (HF and llama2.c round them to f32, which differs
 * by ~pos*6e-8 rad at large positions). */
tsr_tensor *tsr_rope(tsr_ctx *c, tsr_tensor *x, const tsr_tensor *pos, float theta,
                     bool interleaved);
/* 2-D RoPE for image grids: first D/2 channels rotated by row position,
 * last D/2 by column position (each half as 1-D RoPE with D/2, halves
 * layout). pos_h, pos_w as pos above. */
tsr_tensor *tsr_rope2d(tsr_ctx *c, tsr_tensor *x, const tsr_tensor *pos_h,
                       const tsr_tensor *pos_w, float theta);

/* ------------------------------------------------------------------------
 * Raw kernels behind the wrappers above (rows of a (N, C) matrix; backward
 * accumulates with +=). Each optimised kernel has a naive `_ref` twin that
 * accumulates in double; tests hold them together. Kernels parallelise over
 * rows with OpenMP; weight-gradient sums are split into a fixed number of
 * row chunks (TSR_NORM_CHUNKS, independent of the thread count) so results
 * do not depend on how many threads ran them. */

#define TSR_NORM_CHUNKS 32
/* floats of scratch the layernorm/rmsnorm backward kernels need */
static inline int64_t tsr_norm_bwd_scratch(int64_t N, int64_t C) {
    return 2 * (N < TSR_NORM_CHUNKS ? N : TSR_NORM_CHUNKS) * C;
}

/* y, x (N,C); w, b (C) or NULL. Saved for backward: rstd (N) and shift
 * (N) = row mean - row's first element (the kernels work about x[i,0] so a
 * large common offset costs no precision; mean = x[i,0] + shift[i]). */
void tsr_layernorm_fwd(float *y, float *shift, float *rstd, const float *x, const float *w,
                       const float *b, int64_t N, int64_t C, float eps);
void tsr_layernorm_fwd_ref(float *y, const float *x, const float *w, const float *b, int64_t N,
                           int64_t C, float eps);
/* dx (N,C) or NULL, dw, db (C) or NULL; scratch tsr_norm_bwd_scratch(N,C) floats */
void tsr_layernorm_bwd(float *dx, float *dw, float *db, float *scratch, const float *dy,
                       const float *x, const float *w, const float *shift, const float *rstd,
                       int64_t N, int64_t C);
void tsr_layernorm_bwd_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, int64_t N, int64_t C, float eps);

/* y = x * rsqrt(mean(x^2) + eps) * w; rstd (N) saved; w may be NULL */
void tsr_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int64_t N, int64_t C,
                     float eps);
void tsr_rmsnorm_fwd_ref(float *y, const float *x, const float *w, int64_t N, int64_t C, float eps);
void tsr_rmsnorm_bwd(float *dx, float *dw, float *scratch, const float *dy, const float *x,
                     const float *w, const float *rstd, int64_t N, int64_t C);
void tsr_rmsnorm_bwd_ref(float *dx, float *dw, const float *dy, const float *x, const float *w,
                         int64_t N, int64_t C, float eps);

/* softmax / log-softmax over rows of length C; backward from the output y */
void tsr_softmax_fwd(float *y, const float *x, int64_t N, int64_t C, bool log);
void tsr_softmax_fwd_ref(float *y, const float *x, int64_t N, int64_t C, bool log);
void tsr_softmax_bwd(float *dx, const float *dy, const float *y, int64_t N, int64_t C, bool log);

/* Cross-entropy rows: logits (N,V), targets (N), weights (N) or NULL.
 * Forward writes the per-row loss (0 for ignored rows) and the row's
 * log-sum-exp (saved for backward) and returns sum_i w_i l_i / sum_i w_i
 * (0 when no row counts). Backward: dlogits += gscale * w_i / sum_w *
 * (softmax - (1-ls) onehot - ls/V), nothing for ignored rows. */
float tsr_cross_entropy_fwd(float *row_loss, float *lse, const float *logits, const int32_t *targets,
                            const float *weights, int64_t N, int64_t V, int ignore_index,
                            float label_smoothing);
float tsr_cross_entropy_fwd_ref(const float *logits, const int32_t *targets, const float *weights,
                                int64_t N, int64_t V, int ignore_index, float label_smoothing);
void tsr_cross_entropy_bwd(float *dlogits, const float *logits, const float *lse,
                           const int32_t *targets, const float *weights, int64_t N, int64_t V,
                           int ignore_index, float label_smoothing, float gscale);
void tsr_cross_entropy_bwd_ref(float *dlogits, const float *logits, const int32_t *targets,
                               const float *weights, int64_t N, int64_t V, int ignore_index,
                               float label_smoothing, float gscale);

/* RoPE rows: x, y (R, H, D). Row r uses row (r % tab_rows) of the cos/sin
 * tables (d/2 entries per row) for channels [off, off+d) of every head,
 * angle_i = pos * theta^(-2i/d). dir = +1 rotates by +angle, -1 by -angle
 * (the backward). interleaved: pairs (off+2i, off+2i+1); else (off+i,
 * off+i+d/2). acc: y += rot(x), else y = rot(x) on those channels. */
void tsr_rope_apply(float *y, const float *x, const float *cosb, const float *sinb,
                    int64_t tab_rows, int64_t R, int64_t H, int64_t D, int64_t off, int64_t d,
                    bool interleaved, float dir, bool acc);
void tsr_rope_apply_ref(float *y, const float *x, const int32_t *pos, int64_t tab_rows, int64_t R,
                        int64_t H, int64_t D, int64_t off, int64_t d, float theta, bool interleaved);
/* tables (rows, d/2) from positions, angles in double */
void tsr_rope_table(float *cosb, float *sinb, const int32_t *pos, int64_t rows, int64_t d,
                    float theta);


#endif
