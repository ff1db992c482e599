/* Tests for src/ops/activ.c: relu, gelu (tanh and erf), silu, sigmoid,
 * tanh, swiglu, dropout.
 * Tolerances
 * - forward and grads vs PyTorch (tests/refs/elem_activ.tref): atol 1e-6
 *   rtol 1e-5 (libm vs torch's vectorised exp/tanh/erf differ by a few ulp;
 *   inputs span about [-9, 9]).
 * - gradcheck: eps 1e-3, atol 1e-3, rtol 1e-2 (smooth functions with
 *   |f'''| = O(1); relu inputs kept >= 0.05 from the kink).
 * - gelu/silu/sigmoid/tanh over [-9, 9] vs double: rtol 1e-5 where
 *   |x| >= 2, else atol 5e-7 (gelu' crosses zero near -0.75). The
 *   tails are exponentials of a rounded argument (|2u| <= 66 for gelu
 *   tanh, x^2/2 <= 41 for erf), so relative error reaches ~66 ulp = 4e-6;
 *   a cancelling 1 + tanh or 1 - sigma would be off by orders.
 * - sigmoid on [-87, 0] vs double: rtol 5e-7 (the polynomial exp is within
 *   3.1 ulp there, measured).
 * - dropout vs PyTorch: atol/rtol 1e-6 (same mask, replayed in tools/refs/gen_dropout.py)
 * - dropout: keep rate within 4 sigma of 1-p over 200k draws; kept values
 *   and grads exactly x/(1-p) and go/(1-p). */
#include "testutil.h"
#include "tessera/ops.h"

#include <math.h>
#include <string.h>

enum { A_RELU, A_GELU_TANH, A_GELU_ERF, A_SILU, A_SIGMOID, A_TANH, A_COUNT };
static const char *const names[A_COUNT] = {"relu", "gelu_tanh", "gelu_erf", "silu", "sigmoid", "tanh"};

static tsr_tensor *act_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    switch (*(const int *)ud) {
    case A_RELU: return tsr_relu(c, in[0]);
    case A_GELU_TANH: return tsr_gelu(c, in[0], true);
    case A_GELU_ERF: return tsr_gelu(c, in[0], false);
    case A_SILU: return tsr_silu(c, in[0]);
    case A_SIGMOID: return tsr_sigmoid(c, in[0]);
    default: return tsr_tanh(c, in[0]);
    }
}
static tsr_tensor *swiglu_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    (void)ud;
    return tsr_swiglu(c, in[0], in[1]);
}
static tsr_tensor *dropout_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    return tsr_dropout(c, in[0], *(const float *)ud);
}
static tsr_tensor *relu_dropout_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    return tsr_relu_dropout(c, in[0], *(const float *)ud);
}

static void fixture(tsr_ctx *c, const tref *r, const char *prefix, int n_in, gc_fn fn, void *ud) {
    char k[160];
    tsr_tensor *in[4];
    tsr_ctx_reset(c);
    for (int i = 0; i < n_in; i++) {
        snprintf(k, sizeof k, "%s%c", prefix, 'a' + i);
        in[i] = tref_tensor(c, r, k, true);
    }
    tsr_tensor *y = fn(c, in, ud);
    snprintf(k, sizeof k, "%sy", prefix);
    tu_close_ref(r, k, tsr_f32(y), y->numel, 1e-6, 1e-5);
    snprintf(k, sizeof k, "%sgy", prefix);
    tsr_backward_with(c, y, tref_get(r, k)->data);
    for (int i = 0; i < n_in; i++) {
        snprintf(k, sizeof k, "%sg%c", prefix, 'a' + i);
        TU_CHECK(in[i]->grad != NULL, "%s: no grad", k);
        if (in[i]->grad) tu_close_ref(r, k, in[i]->grad, in[i]->numel, 1e-6, 1e-5);
    }
}

/* float kernels against the same functions in double across the tails,
 * where a naive 1 + tanh / 1 + erf / 1 - sigma would cancel */
static void test_tails(void) {
    enum { N = 181 };
    float xs[N], go[N];
    /* an even count of steps keeps 0 out: the sigmoid/tanh rows divide by x */
    for (int i = 0; i < N; i++) xs[i] = -9.05f + 0.1f * (float)i, go[i] = 1.0f;
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    static const int kinds[5] = {A_GELU_TANH, A_GELU_ERF, A_SILU, A_SIGMOID, A_TANH};
    for (int t = 0; t < 5; t++) {
        int k = kinds[t];
        tsr_ctx_reset(&c);
        tsr_tensor *x = tsr_from_f32(&c, TSR_DIMS(N), xs);
        x->requires_grad = true;
        tsr_tensor *y = act_fn(&c, &x, &k);
        tsr_backward_with(&c, y, go);
        float wy[N], wd[N];
        for (int i = 0; i < N; i++) {
            double v = xs[i], cdf, d;
            if (k == A_GELU_TANH) {
                double up = 0.7978845608028654 * (1 + 3 * 0.044715 * v * v);
                double s = 1 / (1 + exp(-2 * 0.7978845608028654 * (v + 0.044715 * v * v * v)));
                cdf = s;
                d = s + 2 * v * s * (1 - s) * up;
            } else if (k == A_GELU_ERF) {
                cdf = 0.5 * erfc(-v / sqrt(2.0));
                d = cdf + v * exp(-0.5 * v * v) / sqrt(2 * 3.141592653589793);
            } else if (k == A_SILU) {
                cdf = 1 / (1 + exp(-v));
                d = cdf * (1 + v * (1 - cdf));
            } else if (k == A_SIGMOID) {
                cdf = 1 / (1 + exp(-v)) / v; /* y = v * cdf below */
                d = exp(-fabs(v)) / ((1 + exp(-fabs(v))) * (1 + exp(-fabs(v))));
            } else {
                cdf = tanh(v) / v;
                d = 1 / (cosh(v) * cosh(v));
            }
            wy[i] = (float)(v * cdf);
            wd[i] = (float)d;
        }
        char w[64];
        snprintf(w, sizeof w, "%s tails vs double", names[k]);
        /* relative in the tails (|x| >= 2); absolute a few ulp of the O(1)
         * terms in the middle, where gelu' crosses zero near x = -0.75 */
        tu_close(w, tsr_f32(y), wy, 70, 1e-30, 1e-5);
        tu_close(w, x->grad, wd, 70, 1e-30, 1e-5);
        tu_close(w, tsr_f32(y) + N - 70, wy + N - 70, 70, 1e-30, 1e-5);
        tu_close(w, x->grad + N - 70, wd + N - 70, 70, 1e-30, 1e-5);
        tu_close(w, tsr_f32(y), wy, N, 5e-7, 1e-5);
        tu_close(w, x->grad, wd, N, 5e-7, 1e-5);
    }
    /* the polynomial exp under the sigmoid family, densely over its range:
     * sigmoid(x) = e^x / (1 + e^x) for x <= 0 carries its relative error */
    {
        enum { M = 20000 };
        static float xe[M], we[M];
        for (int i = 0; i < M; i++) {
            xe[i] = -87.0f * (float)i / (float)M;
            double e = exp((double)xe[i]);
            we[i] = (float)(e / (1 + e));
        }
        tsr_ctx_reset(&c);
        tsr_tensor *x = tsr_from_f32(&c, TSR_DIMS(M), xe);
        tu_close("sigmoid on [-87, 0] vs double", tsr_f32(tsr_sigmoid(&c, x)), we, M, 1e-37, 5e-7);
    }
    /* far out: limits, no NaN from overflowing exponentials */
    static const float far[4] = {-100.0f, -50.0f, 50.0f, 100.0f};
    for (int k = 0; k < A_COUNT; k++) {
        tsr_ctx_reset(&c);
        tsr_tensor *x = tsr_from_f32(&c, TSR_DIMS(4), far);
        x->requires_grad = true;
        tsr_tensor *y = act_fn(&c, &x, &k);
        tsr_backward_with(&c, y, go);
        for (int i = 0; i < 4; i++) {
            float v = far[i], Y = tsr_f32(y)[i], D = x->grad[i];
            float wy = k == A_SIGMOID ? (v > 0) : k == A_TANH ? (v > 0 ? 1.0f : -1.0f) : (v > 0 ? v : 0.0f);
            float wd = k == A_SIGMOID || k == A_TANH ? 0.0f : (v > 0);
            TU_CHECK(fabsf(Y - wy) <= 1e-6f * fabsf(wy) + 1e-20f && fabsf(D - wd) <= 1e-6f,
                     "%s(%g) = %g grad %g, want %g grad %g", names[k], v, Y, D, wy, wd);
        }
    }
    tsr_ctx_free(&c);
}

static void test_dropout(void) {
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    const int64_t N = 200000;
    const float p = 0.3f;
    tsr_tensor *x = tsr_new(&c, TSR_F32, TSR_DIMS(N));
    float *X = tsr_f32(x);
    for (int64_t i = 0; i < N; i++) X[i] = 0.5f + (float)(i % 97) * 0.01f; /* never zero */
    x->requires_grad = true;
    tsr_rng_seed(&c.rng, 77);
    tsr_tensor *y = tsr_dropout(&c, x, p);
    const float *Y = tsr_f32(y);
    int64_t kept = 0;
    bool vals = true;
    for (int64_t i = 0; i < N; i++) {
        if (Y[i] != 0.0f) {
            kept++;
            vals = vals && Y[i] == X[i] * (1.0f / (1.0f - p));
        }
    }
    double rate = (double)kept / (double)N, sd = sqrt(p * (1 - p) / (double)N);
    TU_CHECK(fabs(rate - (1 - p)) < 4 * sd, "dropout keep rate %.5f, want %.3f", rate, 1 - p);
    TU_CHECK(vals, "dropout kept values are not x/(1-p)");
    /* no long runs: neighbours are independent (catches a stuck half-draw) */
    int64_t both = 0;
    for (int64_t i = 0; i + 1 < N; i += 2) both += Y[i] != 0.0f && Y[i + 1] != 0.0f;
    double pb = (double)both / (double)(N / 2), want = (1 - p) * (1 - p);
    TU_CHECK(fabs(pb - want) < 4 * sqrt(want * (1 - want) / (double)(N / 2)), "dropout pairs kept %.4f want %.4f",
             pb, want);
    /* backward uses the forward's mask */
    float *go = malloc(sizeof(float) * (size_t)N);
    tu_randn(go, N, 8, 1);
    tsr_backward_with(&c, y, go);
    bool gok = true;
    for (int64_t i = 0; i < N && gok; i++)
        gok = x->grad[i] == (Y[i] != 0.0f ? go[i] * (1.0f / (1.0f - p)) : 0.0f);
    TU_CHECK(gok, "dropout backward does not follow the forward mask");
    /* same rng state, same mask; a later draw differs */
    tsr_rng_seed(&c.rng, 77);
    tsr_tensor *y2 = tsr_dropout(&c, x, p);
    TU_CHECK(memcmp(tsr_f32(y2), Y, sizeof(float) * (size_t)N) == 0, "dropout not reproducible from the rng");
    tsr_tensor *y3 = tsr_dropout(&c, x, p);
    TU_CHECK(memcmp(tsr_f32(y3), Y, sizeof(float) * (size_t)N) != 0, "dropout repeated its mask");
    /* identity in eval mode and at p = 0; p = 1 drops everything */
    TU_CHECK(tsr_dropout(&c, x, 0.0f) == x, "dropout p=0 is not identity");
    c.training = false;
    tsr_rng state = c.rng;
    TU_CHECK(tsr_dropout(&c, x, 0.5f) == x, "dropout in eval is not identity");
    TU_CHECK(memcmp(&state, &c.rng, sizeof state) == 0, "dropout in eval used the rng");
    c.training = true;
    tsr_tensor *y4 = tsr_dropout(&c, x, 1.0f);
    bool zero = true;
    for (int64_t i = 0; i < N; i++) zero = zero && tsr_f32(y4)[i] == 0.0f;
    TU_CHECK(zero, "dropout p=1 kept something");
    free(go);
    tsr_ctx_free(&c);
}

/* relu_dropout is dropout(relu(x)) fused: the same outputs, input grads
 * and rng draws, bit for bit (x crosses zero; odd N). Two contexts, one
 * per form, so each backward runs its own tape. */
static void test_relu_dropout(void) {
    tsr_ctx c[2];
    tsr_ctx_init(&c[0], 1 << 20);
    tsr_ctx_init(&c[1], 1 << 20);
    const int64_t N = 20001;
    float *x0 = malloc(sizeof(float) * (size_t)N), *go = malloc(sizeof(float) * (size_t)N);
    tu_randn(x0, N, 5, 1);
    tu_randn(go, N, 6, 1);
    x0[3] = 0.0f;
    x0[4] = -0.0f;
    const float ps[3] = {0.05f, 0.5f, 1.0f};
    for (int k = 0; k < 3; k++) {
        tsr_tensor *x[2], *y[2];
        for (int f = 0; f < 2; f++) {
            tsr_ctx_reset(&c[f]);
            x[f] = tsr_new(&c[f], TSR_F32, TSR_DIMS(N));
            memcpy(tsr_f32(x[f]), x0, sizeof(float) * (size_t)N);
            x[f]->requires_grad = true;
            tsr_rng_seed(&c[f].rng, 99 + (uint64_t)k);
            y[f] = f ? tsr_relu_dropout(&c[f], x[f], ps[k]) : tsr_dropout(&c[f], tsr_relu(&c[f], x[f]), ps[k]);
            tsr_backward_with(&c[f], y[f], go);
        }
        TU_CHECK(memcmp(&c[0].rng, &c[1].rng, sizeof c[0].rng) == 0, "relu_dropout p=%g: other rng draws", ps[k]);
        TU_CHECK(memcmp(tsr_f32(y[0]), tsr_f32(y[1]), sizeof(float) * (size_t)N) == 0,
                 "relu_dropout p=%g: outputs differ", ps[k]);
        TU_CHECK(x[0]->grad && x[1]->grad && memcmp(x[0]->grad, x[1]->grad, sizeof(float) * (size_t)N) == 0,
                 "relu_dropout p=%g: input grads differ", ps[k]);
    }
    /* eval mode: relu, no rng use */
    tsr_ctx_reset(&c[1]);
    c[1].training = false;
    tsr_tensor *x = tsr_new(&c[1], TSR_F32, TSR_DIMS(N));
    memcpy(tsr_f32(x), x0, sizeof(float) * (size_t)N);
    tsr_rng state = c[1].rng;
    tsr_tensor *r = tsr_relu_dropout(&c[1], x, 0.5f);
    bool relu = true;
    for (int64_t i = 0; i < N; i++) relu = relu && tsr_f32(r)[i] == (x0[i] > 0 ? x0[i] : 0.0f);
    TU_CHECK(relu && memcmp(&state, &c[1].rng, sizeof state) == 0, "relu_dropout in eval is not relu");
    free(x0);
    free(go);
    tsr_ctx_free(&c[0]);
    tsr_ctx_free(&c[1]);
}

/* PyTorch fixture (tools/refs/gen_dropout.py): the generator replays our rng
 * (seed 4242) to get our mask, then torch's dropout kernels apply it; our
 * output and input grad must match (atol 1e-6, rtol 1e-6); the same for
 * relu_dropout against torch's relu then the mask (case r). */
static void test_dropout_torch(void) {
    tref *r = tref_load("tests/refs/dropout.tref");
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    const char *names[] = {"a", "b", "c", "r"}; /* r: tsr_relu_dropout */
    for (int t = 0; t < 4; t++) {
        char k[32];
        tsr_ctx_reset(&c);
        snprintf(k, sizeof k, "%s_x", names[t]);
        tsr_tensor *x = tref_tensor(&c, r, k, true);
        snprintf(k, sizeof k, "%s_p", names[t]);
        float p = ((const float *)tref_get(r, k)->data)[0];
        tsr_rng_seed(&c.rng, 4242);
        tsr_tensor *y = t == 3 ? tsr_relu_dropout(&c, x, p) : tsr_dropout(&c, x, p);
        snprintf(k, sizeof k, "%s_y", names[t]);
        tu_close_ref(r, k, tsr_f32(y), y->numel, 1e-6, 1e-6);
        snprintf(k, sizeof k, "%s_gy", names[t]);
        tsr_backward_with(&c, y, tref_get(r, k)->data);
        snprintf(k, sizeof k, "%s_gx", names[t]);
        tu_close_ref(r, k, x->grad, x->numel, 1e-6, 1e-6);
    }
    tsr_ctx_free(&c);
    tref_free(r);
}

int main(void) {
    tsr_threads_set(0);
    /* ---- gradchecks */
    float x[60], u[60];
    tu_randn(x, 60, 1, 2);
    tu_randn(u, 60, 2, 1);
    for (int i = 0; i < 60; i++)
        if (fabsf(x[i]) < 0.05f) x[i] += x[i] < 0 ? -0.05f : 0.05f;
    for (int k = 0; k < A_COUNT; k++) {
        gc_input in[1] = {{TSR_F32, 2, {6, 10}, x, true}};
        tu_gradcheck(names[k], act_fn, &k, 1, in, 1e-3, 1e-3, 1e-2, 1000);
    }
    {
        gc_input in[2] = {{TSR_F32, 2, {6, 10}, x, true}, {TSR_F32, 2, {6, 10}, u, true}};
        tu_gradcheck("swiglu", swiglu_fn, NULL, 2, in, 1e-3, 1e-3, 1e-2, 1000);
        in[1].check = false;
        tu_gradcheck("swiglu gate only", swiglu_fn, NULL, 2, in, 1e-3, 1e-3, 1e-2, 1000);
        float p = 0.4f;
        gc_input din[1] = {{TSR_F32, 2, {6, 10}, x, true}};
        tu_gradcheck("dropout", dropout_fn, &p, 1, din, 1e-3, 1e-3, 1e-2, 1000);
        tu_gradcheck("relu_dropout", relu_dropout_fn, &p, 1, din, 1e-3, 1e-3, 1e-2, 1000);
    }
    /* ---- PyTorch fixtures */
    tref *r = tref_load("tests/refs/elem_activ.tref");
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    for (int k = 0; k < A_COUNT; k++) {
        char p[32];
        snprintf(p, sizeof p, "%s_", names[k]);
        fixture(&c, r, p, 1, act_fn, &k);
    }
    fixture(&c, r, "swiglu_", 2, swiglu_fn, NULL);
    tsr_ctx_free(&c);
    tref_free(r);

    test_tails();
    test_dropout();
    test_dropout_torch();
    test_relu_dropout();
    return tu_finish("ops_activ");
}
