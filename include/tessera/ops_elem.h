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

#endif
