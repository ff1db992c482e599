/* tessera nn: linear, embedding, RMSNorm and LayerNorm modules over the
 * parameter registry, for the transformer blocks in src/nn/ and for any
 * model family that wants HF-named weights. */
#include "tessera/nn.h"
#include "tessera/ops.h"

#include <stdio.h>

/* "<prefix>.<leaf>" into buf; names longer than buf are a caller bug */
static const char *join(char *buf, size_t n, const char *prefix, const char *leaf) {
    int k = snprintf(buf, n, "%s%s%s", prefix, prefix[0] ? "." : "", leaf);
    TSR_ASSERT(k > 0 && (size_t)k < n);
    return buf;
}

void tsr_nn_linear_init(tsr_nn_linear *l, tsr_params *p, const char *prefix, int in, int out,
                        bool bias) {
    char nm[256];
    TSR_ASSERT(in > 0 && out > 0);
    l->in = in;
    l->out = out;
    l->weight = tsr_param_new(p, join(nm, sizeof nm, prefix, "weight"), 0, TSR_DIMS(out, in));
    l->bias = bias ? tsr_param_new(p, join(nm, sizeof nm, prefix, "bias"), TSR_PARAM_NO_DECAY,
                                   TSR_DIMS(out))
                   : NULL;
}

tsr_tensor *tsr_nn_linear_forward(tsr_ctx *c, const tsr_nn_linear *l, tsr_tensor *x) {
    TSR_ASSERT(x->shape[x->ndim - 1] == l->in);
    return tsr_linear(c, x, l->weight, l->bias);
}

void tsr_nn_embedding_init(tsr_nn_embedding *e, tsr_params *p, const char *prefix, int vocab,
                           int dim) {
    char nm[256];
    TSR_ASSERT(vocab > 0 && dim > 0);
    e->vocab = vocab;
    e->dim = dim;
    e->weight = tsr_param_new(p, join(nm, sizeof nm, prefix, "weight"), 0, TSR_DIMS(vocab, dim));
}

tsr_tensor *tsr_nn_embedding_forward(tsr_ctx *c, const tsr_nn_embedding *e, const tsr_tensor *ids) {
    return tsr_embedding(c, e->weight, ids);
}

void tsr_nn_rmsnorm_init(tsr_nn_rmsnorm *n, tsr_params *p, const char *prefix, int dim, float eps) {
    char nm[256];
    n->eps = eps;
    n->weight = tsr_param_new(p, join(nm, sizeof nm, prefix, "weight"), TSR_PARAM_NO_DECAY,
                              TSR_DIMS(dim));
    tsr_init_const(n->weight, 1.0f);
}

tsr_tensor *tsr_nn_rmsnorm_forward(tsr_ctx *c, const tsr_nn_rmsnorm *n, tsr_tensor *x) {
    return tsr_rmsnorm(c, x, n->weight, n->eps);
}

void tsr_nn_layernorm_init(tsr_nn_layernorm *n, tsr_params *p, const char *prefix, int dim,
                           float eps, bool bias) {
    char nm[256];
    n->eps = eps;
    n->weight = tsr_param_new(p, join(nm, sizeof nm, prefix, "weight"), TSR_PARAM_NO_DECAY,
                              TSR_DIMS(dim));
    tsr_init_const(n->weight, 1.0f);
    n->bias = bias ? tsr_param_new(p, join(nm, sizeof nm, prefix, "bias"), TSR_PARAM_NO_DECAY,
                                   TSR_DIMS(dim))
                   : NULL;
}

tsr_tensor *tsr_nn_layernorm_forward(tsr_ctx *c, const tsr_nn_layernorm *n, tsr_tensor *x) {
    return tsr_layernorm(c, x, n->weight, n->bias, n->eps);
}
