/* tessera ops: what a set-prediction detector (ovadetr; any DETR) needs —
 * the Hungarian assignment, generalized IoU, the varifocal loss and the
 * region-text contrastive head. Kernels + autograd wrappers in
 * src/ops/det.c; each kernel has a naive _ref twin in double.
 *
 * Boxes are (cx, cy, w, h), the DETR parameterisation; IoUs are computed on
 * the corners (cx -+ w/2, cy -+ h/2). Letters: N, M boxes or queries,
 * K text slots (class names), D embedding width. */
#ifndef TESSERA_OPS_DET_H
#define TESSERA_OPS_DET_H

#include "tessera/core.h"

/* ---- assignment: min-cost matching of N rows to M columns.
 * assign[i] is the column of row i, or -1 when N > M left row i out. Every
 * column is used at most once; min(N, M) pairs. Returns the total cost.
 * O(min^2 max) shortest augmenting paths with potentials (Kuhn-Munkres /
 * Jonker-Volgenant form). scratch: tsr_hungarian_scratch(N, M) doubles.
 * Costs must be finite. */
size_t tsr_hungarian_scratch(int N, int M);
double tsr_hungarian(int32_t *assign, const float *cost, int N, int M, double *scratch);
/* exhaustive search over all injections (N, M <= 8): the test's oracle */
double tsr_hungarian_ref(int32_t *assign, const float *cost, int N, int M);

/* ---- generalized IoU of matched pairs: out[i] = giou(a[i], b[i]).
 * a, b (N, 4) cxcywh; out (N). Boxes need w, h >= 0 and a non-empty
 * enclosing box. Backward accumulates into da, db (either may be NULL). */
void tsr_giou_fwd(float *out, const float *a, const float *b, int64_t N);
void tsr_giou_fwd_ref(float *out, const float *a, const float *b, int64_t N);
void tsr_giou_bwd(float *da, float *db, const float *dout, const float *a, const float *b, int64_t N);
/* all pairs, for matching costs: out (N, M) = giou(a[i], b[j]) */
void tsr_giou_pairwise(float *out, const float *a, const float *b, int N, int M);

/* ---- varifocal loss (VarifocalNet; RT-DETR's form):
 *   loss = sum_i w_i * BCE(x_i, q_i),  w_i = alpha * sigmoid(xw_i)^gamma * (1 - pos_i) + q_i
 * x logits (n), q IoU-aware target scores (n: the IoU at the matched class,
 * 0 elsewhere), pos 1 at the matched class. The weight is a constant of the
 * gradient (RT-DETR detaches it): the kernels take the logits xw it is
 * computed from (xw == x in the forward pass). dx += dout * w (sigmoid(x) - q). */
double tsr_vfl_fwd(const float *x, const float *xw, const float *q, const float *pos, int64_t n,
                   float alpha, float gamma);
double tsr_vfl_fwd_ref(const float *x, const float *xw, const float *q, const float *pos, int64_t n,
                       float alpha, float gamma);
void tsr_vfl_bwd(float *dx, float dout, const float *x, const float *q, const float *pos, int64_t n,
                 float alpha, float gamma);

/* ---- contrastive head (OVA-DETR):
 *   out[i,k] = exp(s) * <v_i / |v_i|, t_k / |t_k|> + b
 * v (N, D) region embeddings, t (K, D) text embeddings, s and b scalars.
 * vn (N, D), tn (K, D), nv (N), nt (K) are saved for the backward; norms are
 * clamped at 1e-12 like torch's F.normalize. Backward accumulates; any
 * of dv, dt, ds, db may be NULL. */
void tsr_contrast_fwd(float *out, float *vn, float *tn, float *nv, float *nt, const float *v,
                      const float *t, float s, float b, int N, int K, int D);
void tsr_contrast_fwd_ref(float *out, const float *v, const float *t, float s, float b, int N, int K,
                          int D);
void tsr_contrast_bwd(float *dv, float *dt, float *ds, float *db, const float *dout,
                      const float *vn, const float *tn, const float *nv, const float *nt, float s,
                      int N, int K, int D);

/* ---- row maximum, for OVA-DETR's text-guided gate sigmoid(max_t q.k_t):
 * y[i] = max_c x[i,c], arg[i] its first index; dx[i,arg[i]] += dy[i]
 * (torch.max(dim=-1) routes the gradient the same way). x (N, C). */
void tsr_rowmax_fwd(float *y, int32_t *arg, const float *x, int64_t N, int64_t C);
void tsr_rowmax_fwd_ref(float *y, const float *x, int64_t N, int64_t C);
void tsr_rowmax_bwd(float *dx, const float *dy, const int32_t *arg, int64_t N, int64_t C);

/* ---- autograd wrappers */
/* x (..., C) -> (..., 1) */
tsr_tensor *tsr_rowmax(tsr_ctx *c, tsr_tensor *x);
/* (N,4), (N,4) -> (N) */
tsr_tensor *tsr_giou(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b);
/* x (N, C) logits; q, pos constants of x's shape -> scalar sum (the caller
 * divides by the number of boxes) */
tsr_tensor *tsr_varifocal(tsr_ctx *c, tsr_tensor *x, const tsr_tensor *q, const tsr_tensor *pos,
                          float alpha, float gamma);
/* v (N, D), t (K, D), s (1), b (1) -> (N, K) */
tsr_tensor *tsr_contrastive_logits(tsr_ctx *c, tsr_tensor *v, tsr_tensor *t, tsr_tensor *s,
                                   tsr_tensor *b);

#endif
