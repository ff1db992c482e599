/* tessera ops: elementwise arithmetic with broadcasting, reductions, views
 * and copies (reshape/transpose/permute/slice/concat/split), embedding and
 * gather, activations, SwiGLU, dropout. Kernels in src/ops/elem.c,
 * src/ops/shape.c, src/ops/activ.c. Negative dims count from the end. */
#ifndef TESSERA_OPS_ELEM_H
#define TESSERA_OPS_ELEM_H

#include "tessera/core.h"

/* Binary ops broadcast numpy-style (shapes right-aligned, each dim equal or
 * 1); out has the broadcast shape; grads are reduced back to input shapes. */
tsr_tensor *tsr_add(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b);
tsr_tensor *tsr_sub(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b);
tsr_tensor *tsr_mul(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b);
tsr_tensor *tsr_div(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b);
tsr_tensor *tsr_scale(tsr_ctx *c, tsr_tensor *x, float s);      /* x * s */
tsr_tensor *tsr_add_scalar(tsr_ctx *c, tsr_tensor *x, float s); /* x + s */

/* reductions over one dim (keepdim as torch) or over everything (ndim 0) */
tsr_tensor *tsr_sum(tsr_ctx *c, tsr_tensor *x, int dim, bool keepdim);
tsr_tensor *tsr_mean(tsr_ctx *c, tsr_tensor *x, int dim, bool keepdim);
tsr_tensor *tsr_sum_all(tsr_ctx *c, tsr_tensor *x);
tsr_tensor *tsr_mean_all(tsr_ctx *c, tsr_tensor *x);

/* views and copies. reshape shares data (one -1 allowed); the others copy
 * into a new contiguous tensor. Work for f32 (with grad) and i32/u8. */
tsr_tensor *tsr_reshape(tsr_ctx *c, tsr_tensor *x, int ndim, const int64_t *shape);
tsr_tensor *tsr_transpose(tsr_ctx *c, tsr_tensor *x, int d0, int d1);
tsr_tensor *tsr_permute(tsr_ctx *c, tsr_tensor *x, const int *perm); /* perm has x->ndim entries */
tsr_tensor *tsr_slice(tsr_ctx *c, tsr_tensor *x, int dim, int64_t start, int64_t end);
tsr_tensor *tsr_concat(tsr_ctx *c, tsr_tensor *const *xs, int n, int dim);
/* outs[i] gets sizes[i] along dim; sum(sizes) == x->shape[dim] */
void tsr_split(tsr_ctx *c, tsr_tensor *x, int dim, const int64_t *sizes, int n, tsr_tensor **outs);

/* weight (V,C), ids i32 any shape (...) -> (..., C); backward scatter-adds.
 * Ids outside [0,V) are a bug in the caller (asserted). */
tsr_tensor *tsr_embedding(tsr_ctx *c, tsr_tensor *weight, const tsr_tensor *ids);
/* torch.index_select: idx i32 1-D */
tsr_tensor *tsr_index_select(tsr_ctx *c, tsr_tensor *x, int dim, const tsr_tensor *idx);
/* torch.gather: idx i32 with x's ndim; out has idx's shape */
tsr_tensor *tsr_gather(tsr_ctx *c, tsr_tensor *x, int dim, const tsr_tensor *idx);

/* activations */
tsr_tensor *tsr_relu(tsr_ctx *c, tsr_tensor *x);
tsr_tensor *tsr_gelu(tsr_ctx *c, tsr_tensor *x, bool tanh_approx); /* erf when false */
tsr_tensor *tsr_silu(tsr_ctx *c, tsr_tensor *x);
tsr_tensor *tsr_sigmoid(tsr_ctx *c, tsr_tensor *x);
tsr_tensor *tsr_tanh(tsr_ctx *c, tsr_tensor *x);
/* silu(gate) * up, same shapes */
tsr_tensor *tsr_swiglu(tsr_ctx *c, tsr_tensor *gate, tsr_tensor *up);
/* inverted dropout with c->rng when c->training and p > 0; identity else */
tsr_tensor *tsr_dropout(tsr_ctx *c, tsr_tensor *x, float p);
/* tsr_dropout(c, tsr_relu(c, x), p) in one pass, the same values, mask
 * and rng draws, without the intermediate tensor and its gradient */
tsr_tensor *tsr_relu_dropout(tsr_ctx *c, tsr_tensor *x, float p);

/* ---- kernels (raw pointers; the autograd ops above call these). Tests
 * hold each optimised kernel to its naive _ref twin. */
typedef enum { TSR_BIN_ADD, TSR_BIN_SUB, TSR_BIN_MUL, TSR_BIN_DIV, TSR_BIN_COUNT } tsr_binop;

/* out (broadcast of a's and b's shapes) = a op b, or += when acc */
void tsr_binary_fwd(float *out, const float *a, const float *b, tsr_binop op, bool acc, int nda,
                    const int64_t *sha, int ndb, const int64_t *shb);
void tsr_binary_ref(float *out, const float *a, const float *b, tsr_binop op, bool acc, int nda,
                    const int64_t *sha, int ndb, const int64_t *shb);
/* dst (shape shi) += scale * g (shape sho) summed over the dims where shi
 * broadcasts to sho: the backward of broadcasting, and sum/mean. Each dst
 * element is summed in a fixed order, whatever the thread count. */
void tsr_reduce_acc(float *dst, const float *g, float scale, int ndo, const int64_t *sho, int ndi,
                    const int64_t *shi);
void tsr_reduce_acc_ref(float *dst, const float *g, float scale, int ndo, const int64_t *sho,
                        int ndi, const int64_t *shi);
/* out[j] = in[i] with out dim k = in dim perm[k]; esize bytes per element.
 * acc_f32: out (f32) += permuted in instead of copying. */
void tsr_permute_fwd(void *out, const void *in, size_t esize, bool acc_f32, int nd,
                     const int64_t *shape, const int *perm);
void tsr_permute_ref(void *out, const void *in, size_t esize, bool acc_f32, int nd,
                     const int64_t *shape, const int *perm);
/* out (N,C) = w[ids] rows; gw (V,C) += scattered go (N,C) */
void tsr_embedding_fwd(float *out, const float *w, const int32_t *ids, int64_t N, int64_t C);
void tsr_embedding_bwd(float *gw, const float *go, const int32_t *ids, int64_t N, int64_t C);
void tsr_embedding_bwd_ref(float *gw, const float *go, const int32_t *ids, int64_t N, int64_t C);

#endif
