/* Tests for src/ops/chnorm.c: gradient checks and PyTorch fixtures
 * (tools/refs/gen_conv.py, gen_bnrelu.py) for group norm, batch norm and
 * the fused batch norm + ReLU (a training step with running-stat update,
 * then eval with the updated stats); the fused node also against the
 * unfused pair (forward bit for bit, grads atol 1e-6 rtol 1e-5).
 * Tolerances: forward and running stats vs PyTorch atol 1e-5 rtol 1e-4;
 * grads atol 1e-4 rtol 1e-4 (the input grad subtracts two means of O(1)
 * sums, so f32 cancellation leaves ~1e-5 absolute); gradcheck eps 1e-2,
 * atol 2e-3 rtol 1e-2 (eps 1e-3 with the fused ReLU, whose kink a larger
 * step would cross; otherwise the op is smooth: central-difference truncation at
 * eps 1e-2 is ~1e-4 and f32 forward noise over ~100 outputs ~1e-4). */
#include "testutil.h"
#include "tessera/ops.h"

#include <string.h>

typedef struct {
    int groups;
    bool training, bn, relu;
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
    tsr_tensor *y = nc->relu ? tsr_batchnorm_relu(c, in[0], in[1], in[2], rm, rv, 0.1f, 1e-5f)
                             : tsr_batchnorm(c, in[0], in[1], in[2], rm, rv, 0.1f, 1e-5f);
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
    /* the ReLU's kink: a smaller step so no pre-activation crosses zero */
    tu_gradcheck(name, norm_fn, &nc, 3, in, nc.relu ? 1e-3 : 1e-2, 2e-3, 1e-2, 1000);
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

static void bn_fixture(tref *r, const char *p, bool relu) {
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
        tsr_tensor *y = relu ? tsr_batchnorm_relu(&c, x, w, b, rmt, rvt, 0.1f, 1e-5f)
                             : tsr_batchnorm(&c, x, w, b, rmt, rvt, 0.1f, 1e-5f);
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

/* the fused node against tsr_relu(tsr_batchnorm(...)): bit-identical
 * forward and running stats, grads within f32 summation rounding (atol
 * 1e-6 rtol 1e-5), training and eval, with the input grad both fresh and
 * accumulated into */
static void check_bn_relu_matches_unfused(void) {
    enum { B = 4, C = 8, S = 30 };
    float x0[B * C * S], w0[C], b0[C], gy[B * C * S], pre[B * C * S];
    tu_randn(x0, B * C * S, 51, 2.0f);
    tu_randn(w0, C, 52, 1.0f);
    tu_randn(b0, C, 53, 1.0f);
    tu_randn(gy, B * C * S, 54, 1.0f);
    tu_randn(pre, B * C * S, 55, 1.0f);
    for (int mode = 0; mode < 4; mode++) {
        float out[2][B * C * S], gx[2][B * C * S], gw[2][C], gb[2][C], rms[2][C], rvs[2][C];
        for (int fused = 0; fused < 2; fused++) {
            tsr_ctx c;
            tsr_ctx_init(&c, 1 << 20);
            c.training = mode < 2;
            int64_t cs = C;
            for (int i = 0; i < C; i++) rms[fused][i] = 0.1f * (float)i, rvs[fused][i] = 1.0f + 0.1f * (float)i;
            tsr_tensor *x = tsr_from_f32(&c, 4, (int64_t[]){B, C, 5, 6}, x0);
            tsr_tensor *w = tsr_from_f32(&c, 1, &cs, w0), *b = tsr_from_f32(&c, 1, &cs, b0);
            x->requires_grad = w->requires_grad = b->requires_grad = true;
            if (mode % 2) memcpy(tsr_grad(&c, x), pre, sizeof pre); /* accumulate onto this */
            tsr_tensor *rm = tsr_wrap(&c, TSR_F32, 1, &cs, rms[fused]), *rv = tsr_wrap(&c, TSR_F32, 1, &cs, rvs[fused]);
            tsr_tensor *y = fused ? tsr_batchnorm_relu(&c, x, w, b, rm, rv, 0.1f, 1e-5f)
                                  : tsr_relu(&c, tsr_batchnorm(&c, x, w, b, rm, rv, 0.1f, 1e-5f));
            tsr_backward_with(&c, y, gy);
            memcpy(out[fused], tsr_f32(y), sizeof out[0]);
            memcpy(gx[fused], x->grad, sizeof gx[0]);
            memcpy(gw[fused], w->grad, sizeof gw[0]);
            memcpy(gb[fused], b->grad, sizeof gb[0]);
            tsr_ctx_free(&c);
        }
        TU_CHECK(memcmp(out[0], out[1], sizeof out[0]) == 0 && memcmp(rms[0], rms[1], sizeof rms[0]) == 0 &&
                     memcmp(rvs[0], rvs[1], sizeof rvs[0]) == 0,
                 "batchnorm+relu forward matches the unfused ops (mode %d)", mode);
        /* grads: the masked sums may vectorise in another lane order than
         * the unfused pair's, so equal up to f32 summation rounding */
        char what[64];
        snprintf(what, sizeof what, "batchnorm+relu grads vs unfused (mode %d)", mode);
        tu_close(what, gx[1], gx[0], B * C * S, 1e-6, 1e-5);
        tu_close(what, gw[1], gw[0], C, 1e-6, 1e-5);
        tu_close(what, gb[1], gb[0], C, 1e-6, 1e-5);
    }
}

int main(void) {
    tsr_threads_set(0);
    gradcheck("groupnorm 4d", (norm_case){.groups = 2}, 4, (int64_t[]){2, 4, 3, 3});
    gradcheck("groupnorm 3d per-channel", (norm_case){.groups = 3}, 3, (int64_t[]){2, 3, 5});
    gradcheck("batchnorm train", (norm_case){.bn = true, .training = true}, 4, (int64_t[]){3, 3, 3, 2});
    gradcheck("batchnorm eval", (norm_case){.bn = true, .training = false}, 4, (int64_t[]){3, 3, 3, 2});
    gradcheck("batchnorm+relu train", (norm_case){.bn = true, .relu = true, .training = true}, 4,
              (int64_t[]){3, 3, 3, 2});
    gradcheck("batchnorm+relu eval", (norm_case){.bn = true, .relu = true, .training = false}, 4,
              (int64_t[]){3, 3, 3, 2});
    gradcheck("batchnorm 2d train", (norm_case){.bn = true, .training = true}, 2, (int64_t[]){6, 4});

    tref *r = tref_load("tests/refs/chnorm.tref");
    char p[32];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "gn%d_", i);
        gn_fixture(r, p);
        snprintf(p, sizeof p, "bn%d_", i);
        bn_fixture(r, p, false);
    }
    tref_free(r);
    r = tref_load("tests/refs/bnrelu.tref");
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "br%d_", i);
        bn_fixture(r, p, true);
    }
    tref_free(r);
    check_bn_relu_matches_unfused();
    return tu_finish("ops_chnorm");
}
