/* Tests for src/ops/chnorm.c: gradient checks and PyTorch fixtures
 * (tools/refs/gen_conv.py) for group norm and batch norm (a training step
 * with running-stat update, then eval with the updated stats).
 * Tolerances: forward and running stats vs PyTorch atol 1e-5 rtol 1e-4;
 * grads atol 1e-4 rtol 1e-4 (the input grad subtracts two means of O(1)
 * sums, so f32 cancellation leaves ~1e-5 absolute); gradcheck eps 1e-2,
 * atol 2e-3 rtol 1e-2 (the op is smooth; central-difference truncation at
 * eps 1e-2 is ~1e-4 and f32 forward noise over ~100 outputs ~1e-4). */
#include "testutil.h"
#include "tessera/ops.h"

#include <string.h>

typedef struct {
    int groups;
    bool training, bn;
    float rm[8], rv[8];
} norm_case;

static tsr_tensor *norm_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    norm_case *nc = ud;
    if (!nc->bn) return tsr_groupnorm(c, in[0], nc->groups, in[1], in[2], 1e-5f);
    int64_t C = in[0]->shape[1];
    /* fresh running buffers per call: eval output must not drift as the
     * gradcheck re-runs the forward in training mode */
    tsr_tensor *rm = tsr_from_f32(c, 1, &C, nc->rm), *rv = tsr_from_f32(c, 1, &C, nc->rv);
    c->training = nc->training;
    tsr_tensor *y = tsr_batchnorm(c, in[0], in[1], in[2], rm, rv, 0.1f, 1e-5f);
    c->training = true;
    return y;
}

static void gradcheck(const char *name, norm_case nc, int ndim, const int64_t *shape) {
    int64_t n = tsr_shape_numel(ndim, shape), C = shape[1];
    float *x = malloc(sizeof(float) * (size_t)n), w[8], b[8];
    tu_randn(x, n, 41, 1.5f);
    for (int64_t i = 0; i < n; i++) x[i] += 0.5f;
    tu_randn(w, C, 42, 1.0f);
    tu_randn(b, C, 43, 1.0f);
    for (int i = 0; i < 8; i++) nc.rm[i] = 0.1f * (float)i - 0.3f, nc.rv[i] = 0.5f + 0.2f * (float)i;
    gc_input in[3] = {{TSR_F32, ndim, {0}, x, true}, {TSR_F32, 1, {C}, w, true}, {TSR_F32, 1, {C}, b, true}};
    for (int i = 0; i < ndim; i++) in[0].shape[i] = shape[i];
    tu_gradcheck(name, norm_fn, &nc, 3, in, 1e-2, 2e-3, 1e-2, 1000);
    free(x);
}

static void gn_fixture(tref *r, const char *p) {
    char k[64];
    snprintf(k, sizeof k, "%sp", p);
    const int32_t *q = tref_get(r, k)->data;
    int G = q[0];
    bool affine = q[1];
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    snprintf(k, sizeof k, "%sx", p);
    tsr_tensor *x = tref_tensor(&c, r, k, true), *w = NULL, *b = NULL;
    if (affine) {
        snprintf(k, sizeof k, "%sw", p);
        w = tref_tensor(&c, r, k, true);
        snprintf(k, sizeof k, "%sb", p);
        b = tref_tensor(&c, r, k, true);
    }
    tsr_tensor *y = tsr_groupnorm(&c, x, G, w, b, 1e-5f);
    snprintf(k, sizeof k, "%sy", p);
    tu_close_ref(r, k, tsr_f32(y), y->numel, 1e-5, 1e-4);
    snprintf(k, sizeof k, "%sgy", p);
    tsr_backward_with(&c, y, tref_get(r, k)->data);
    snprintf(k, sizeof k, "%sgx", p);
    tu_close_ref(r, k, x->grad, x->numel, 1e-4, 1e-4);
    if (affine) {
        snprintf(k, sizeof k, "%sgw", p);
        tu_close_ref(r, k, w->grad, w->numel, 1e-4, 1e-4);
        snprintf(k, sizeof k, "%sgb", p);
        tu_close_ref(r, k, b->grad, b->numel, 1e-4, 1e-4);
    }
    tsr_ctx_free(&c);
}

static void bn_fixture(tref *r, const char *p) {
    char k[96];
    snprintf(k, sizeof k, "%sp", p);
    bool affine = ((const int32_t *)tref_get(r, k)->data)[1];
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    /* running buffers persist across the two steps, like module buffers */
    snprintf(k, sizeof k, "%srm0", p);
    const tref_entry *e = tref_get(r, k);
    int64_t C = e->numel;
    float rm[64], rv[64];
    memcpy(rm, e->data, sizeof(float) * (size_t)C);
    snprintf(k, sizeof k, "%srv0", p);
    memcpy(rv, tref_get(r, k)->data, sizeof(float) * (size_t)C);
    for (int mode = 0; mode < 2; mode++) {
        const char *m = mode == 0 ? "train_" : "eval_";
        tsr_ctx_reset(&c);
        c.training = mode == 0;
        tsr_tensor *w = NULL, *b = NULL;
        if (affine) {
            snprintf(k, sizeof k, "%sw", p);
            w = tref_tensor(&c, r, k, true);
            snprintf(k, sizeof k, "%sb", p);
            b = tref_tensor(&c, r, k, true);
        }
        tsr_tensor *rmt = tsr_wrap(&c, TSR_F32, 1, &C, rm), *rvt = tsr_wrap(&c, TSR_F32, 1, &C, rv);
        snprintf(k, sizeof k, "%s%sx", p, m);
        tsr_tensor *x = tref_tensor(&c, r, k, true);
        tsr_tensor *y = tsr_batchnorm(&c, x, w, b, rmt, rvt, 0.1f, 1e-5f);
        snprintf(k, sizeof k, "%s%sy", p, m);
        tu_close_ref(r, k, tsr_f32(y), y->numel, 1e-5, 1e-4);
        snprintf(k, sizeof k, "%s%srm", p, m);
        tu_close_ref(r, k, rm, C, 1e-5, 1e-4);
        snprintf(k, sizeof k, "%s%srv", p, m);
        tu_close_ref(r, k, rv, C, 1e-5, 1e-4);
        snprintf(k, sizeof k, "%s%sgy", p, m);
        tsr_backward_with(&c, y, tref_get(r, k)->data);
        snprintf(k, sizeof k, "%s%sgx", p, m);
        tu_close_ref(r, k, x->grad, x->numel, 1e-4, 1e-4);
        if (affine) {
            snprintf(k, sizeof k, "%s%sgw", p, m);
            tu_close_ref(r, k, w->grad, w->numel, 1e-4, 1e-4);
            snprintf(k, sizeof k, "%s%sgb", p, m);
            tu_close_ref(r, k, b->grad, b->numel, 1e-4, 1e-4);
        }
    }
    tsr_ctx_free(&c);
}

int main(void) {
    tsr_threads_set(0);
    gradcheck("groupnorm 4d", (norm_case){.groups = 2}, 4, (int64_t[]){2, 4, 3, 3});
    gradcheck("groupnorm 3d per-channel", (norm_case){.groups = 3}, 3, (int64_t[]){2, 3, 5});
    gradcheck("batchnorm train", (norm_case){.bn = true, .training = true}, 4, (int64_t[]){3, 3, 3, 2});
    gradcheck("batchnorm eval", (norm_case){.bn = true, .training = false}, 4, (int64_t[]){3, 3, 3, 2});
    gradcheck("batchnorm 2d train", (norm_case){.bn = true, .training = true}, 2, (int64_t[]){6, 4});

    tref *r = tref_load("tests/refs/chnorm.tref");
    char p[32];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "gn%d_", i);
        gn_fixture(r, p);
        snprintf(p, sizeof p, "bn%d_", i);
        bn_fixture(r, p);
    }
    tref_free(r);
    return tu_finish("ops_chnorm");
}
