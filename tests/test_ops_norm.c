/* Tests for src/ops/norm.c: layer norm, RMS norm, softmax, log-softmax.
 * Optimised kernels vs their double `_ref` twins, thread-count independence,
 * gradient checks and PyTorch fixtures (tools/refs/gen_norm.py).
 * Tolerances:
 * - tsr_expf_fast vs libm expf: relative 5e-7 (a few ulp) on [-87, 88].
 * - kernels vs double refs: atol 1e-5 rtol 1e-4 (f32 row sums of <= 300 terms).
 * - vs PyTorch: atol 1e-5 rtol 1e-4; the |x| ~ 1000 softmax cases use
 *   atol 1e-4 (log-softmax values ~1e3 carry f32 rounding of ~6e-5).
 * - gradcheck: eps 1e-2, atol 2e-3 rtol 1e-2 (double-accumulated central
 *   differences of an f32 forward; truncation error is O(eps^2)). */
#include "testutil.h"
#include "tessera/ops.h"

#include <math.h>
#include <string.h>

static const char *key(const char *p, const char *s) {
    static char buf[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s%s", p, s);
    return buf[k];
}

typedef struct {
    float eps;
    int mode; /* 0 layernorm w+b, 1 layernorm none, 2 rmsnorm w, 3 rmsnorm none, 4 softmax, 5 log-softmax */
} gc_ud;

static tsr_tensor *norm_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    gc_ud *u = ud;
    switch (u->mode) {
    case 0: return tsr_layernorm(c, in[0], in[1], in[2], u->eps);
    case 1: return tsr_layernorm(c, in[0], NULL, NULL, u->eps);
    case 2: return tsr_rmsnorm(c, in[0], in[1], u->eps);
    case 3: return tsr_rmsnorm(c, in[0], NULL, u->eps);
    case 4: return tsr_softmax(c, in[0]);
    default: return tsr_log_softmax(c, in[0]);
    }
}

static void test_expf(void) {
    double worst = 0;
    for (int k = 0; k <= 350000; k++) {
        float x = -87.0f + 175.0f * (float)k / 350000.0f;
        double want = exp((double)x), got = tsr_expf_fast(x);
        double rel = fabs(got - want) / want;
        if (rel > worst) worst = rel;
    }
    TU_CHECK(worst < 5e-7, "expf_fast max rel err %.3g", worst);
    TU_CHECK(tsr_expf_fast(-88.0f) == 0.0f && tsr_expf_fast(-INFINITY) == 0.0f, "expf_fast underflow");
    TU_CHECK(tsr_expf_fast(0.0f) == 1.0f, "expf_fast(0) = %g", tsr_expf_fast(0.0f));
    TU_CHECK(isnan(tsr_expf_fast(NAN)), "expf_fast(nan)");
}

/* optimised kernels vs naive twins on odd sizes; results identical for 1 and 2 threads */
static void test_kernels(void) {
    const int64_t N = 203, C = 301;
    int64_t n = N * C;
    float *x = malloc(4 * n), *dy = malloc(4 * n), *w = malloc(4 * C), *b = malloc(4 * C);
    float *y = malloc(4 * n), *yr = malloc(4 * n), *mean = malloc(4 * N), *rstd = malloc(4 * N);
    float *dx = malloc(4 * n), *dxr = malloc(4 * n), *dx1 = malloc(4 * n);
    float dw[301], db[301], dwr[301], dbr[301], dw1[301], db1[301];
    float *scratch = malloc(4 * tsr_norm_bwd_scratch(N, C));
    tu_randn(x, n, 1, 1.5f);
    for (int64_t i = 0; i < n; i++) x[i] += 0.3f;
    tu_randn(dy, n, 2, 1);
    tu_randn(w, C, 3, 1);
    tu_randn(b, C, 4, 1);
    for (int withw = 0; withw < 2; withw++) {
        const float *W = withw ? w : NULL, *Bb = withw ? b : NULL;
        tsr_layernorm_fwd(y, mean, rstd, x, W, Bb, N, C, 1e-5f);
        tsr_layernorm_fwd_ref(yr, x, W, Bb, N, C, 1e-5f);
        tu_close("layernorm fwd vs ref", y, yr, n, 1e-5, 1e-4);
        for (int t = 2; t >= 1; t--) {
            tsr_threads_set(t);
            memset(dx, 0, 4 * n), memset(dw, 0, sizeof dw), memset(db, 0, sizeof db);
            tsr_layernorm_bwd(dx, dw, db, scratch, dy, x, W, mean, rstd, N, C);
            if (t == 2) memcpy(dx1, dx, 4 * n), memcpy(dw1, dw, sizeof dw), memcpy(db1, db, sizeof db);
        }
        TU_CHECK(!memcmp(dx, dx1, 4 * n) && !memcmp(dw, dw1, sizeof dw) && !memcmp(db, db1, sizeof db),
                 "layernorm bwd differs between 1 and 2 threads");
        memset(dxr, 0, 4 * n), memset(dwr, 0, sizeof dwr), memset(dbr, 0, sizeof dbr);
        tsr_layernorm_bwd_ref(dxr, dwr, dbr, dy, x, W, N, C, 1e-5f);
        tu_close("layernorm bwd dx vs ref", dx, dxr, n, 1e-5, 1e-4);
        tu_close("layernorm bwd dw vs ref", dw, dwr, C, 1e-4, 1e-4);
        tu_close("layernorm bwd db vs ref", db, dbr, C, 1e-4, 1e-4);

        tsr_rmsnorm_fwd(y, rstd, x, W, N, C, 1e-6f);
        tsr_rmsnorm_fwd_ref(yr, x, W, N, C, 1e-6f);
        tu_close("rmsnorm fwd vs ref", y, yr, n, 1e-5, 1e-4);
        for (int t = 2; t >= 1; t--) {
            tsr_threads_set(t);
            memset(dx, 0, 4 * n), memset(dw, 0, sizeof dw);
            tsr_rmsnorm_bwd(dx, dw, scratch, dy, x, W, rstd, N, C);
            if (t == 2) memcpy(dx1, dx, 4 * n), memcpy(dw1, dw, sizeof dw);
        }
        TU_CHECK(!memcmp(dx, dx1, 4 * n) && !memcmp(dw, dw1, sizeof dw), "rmsnorm bwd differs between 1 and 2 threads");
        memset(dxr, 0, 4 * n), memset(dwr, 0, sizeof dwr);
        tsr_rmsnorm_bwd_ref(dxr, dwr, dy, x, W, N, C, 1e-6f);
        tu_close("rmsnorm bwd dx vs ref", dx, dxr, n, 1e-5, 1e-4);
        tu_close("rmsnorm bwd dw vs ref", dw, dwr, C, 1e-4, 1e-4);
    }
    tsr_threads_set(0);
    for (int lg = 0; lg < 2; lg++) {
        tsr_softmax_fwd(y, x, N, C, lg);
        tsr_softmax_fwd_ref(yr, x, N, C, lg);
        tu_close(lg ? "log_softmax fwd vs ref" : "softmax fwd vs ref", y, yr, n, 1e-6, 1e-5);
    }
    free(x), free(dy), free(w), free(b), free(y), free(yr), free(mean), free(rstd);
    free(dx), free(dxr), free(dx1), free(scratch);
}

static void test_gradcheck(void) {
    float x[3 * 2 * 7], w[7], b[7];
    tu_randn(x, 42, 11, 1.5f);
    tu_randn(w, 7, 12, 1);
    tu_randn(b, 7, 13, 1);
    gc_ud u = {1e-5f, 0};
    gc_input in[3] = {{TSR_F32, 3, {3, 2, 7}, x, true}, {TSR_F32, 1, {7}, w, true}, {TSR_F32, 1, {7}, b, true}};
    tu_gradcheck("layernorm", norm_fn, &u, 3, in, 1e-2, 2e-3, 1e-2, 1000);
    u.mode = 1;
    tu_gradcheck("layernorm no affine", norm_fn, &u, 1, in, 1e-2, 2e-3, 1e-2, 1000);
    u.mode = 2;
    u.eps = 1e-6f;
    tu_gradcheck("rmsnorm", norm_fn, &u, 2, in, 1e-2, 2e-3, 1e-2, 1000);
    u.mode = 3;
    tu_gradcheck("rmsnorm no weight", norm_fn, &u, 1, in, 1e-2, 2e-3, 1e-2, 1000);
    u.mode = 4;
    tu_gradcheck("softmax", norm_fn, &u, 1, in, 1e-2, 2e-3, 1e-2, 1000);
    u.mode = 5;
    tu_gradcheck("log_softmax", norm_fn, &u, 1, in, 1e-2, 2e-3, 1e-2, 1000);
}

/* forward and every grad against a fixture entry set "<p>x", "<p>w", ... */
static void fixture(tref *r, tsr_ctx *c, const char *p, int mode, float eps, double atol, double rtol) {
    tsr_ctx_reset(c);
    tsr_tensor *x = tref_tensor(c, r, key(p, "x"), true), *w = NULL, *b = NULL, *y;
    if (tref_find(r, key(p, "w"))) w = tref_tensor(c, r, key(p, "w"), true);
    if (tref_find(r, key(p, "b"))) b = tref_tensor(c, r, key(p, "b"), true);
    switch (mode) {
    case 0: y = tsr_layernorm(c, x, w, b, eps); break;
    case 2: y = tsr_rmsnorm(c, x, w, eps); break;
    case 4: y = tsr_softmax(c, x); break;
    default: y = tsr_log_softmax(c, x); break;
    }
    tu_close_ref(r, key(p, "y"), tsr_f32(y), y->numel, atol, rtol);
    tsr_backward_with(c, y, tref_get(r, key(p, "gy"))->data);
    tu_close_ref(r, key(p, "gx"), x->grad, x->numel, 1e-5, 1e-4);
    if (w) tu_close_ref(r, key(p, "gw"), w->grad, w->numel, 1e-5, 1e-4);
    if (b) tu_close_ref(r, key(p, "gb"), b->grad, b->numel, 1e-5, 1e-4);
}

int main(void) {
    tsr_threads_set(0);
    test_expf();
    test_kernels();
    test_gradcheck();
    tref *r = tref_load("tests/refs/norm.tref");
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    fixture(r, &c, "ln_", 0, 1e-5f, 1e-5, 1e-4);
    fixture(r, &c, "ln0_", 0, 1e-5f, 1e-5, 1e-4);
    fixture(r, &c, "rms_", 2, 1e-6f, 1e-5, 1e-4);
    fixture(r, &c, "rms0_", 2, 1e-5f, 1e-5, 1e-4);
    fixture(r, &c, "sm_", 4, 0, 1e-5, 1e-4);
    fixture(r, &c, "lsm_", 5, 0, 1e-5, 1e-4);
    fixture(r, &c, "smbig_", 4, 0, 1e-5, 1e-4);
    fixture(r, &c, "lsmbig_", 5, 0, 1e-4, 1e-6);
    tsr_ctx_free(&c);
    tref_free(r);
    return tu_finish("ops_norm");
}
