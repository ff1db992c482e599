/* Tests for src/ops/conv.c: im2col+sgemm kernels vs the naive twins over
 * many geometries and chunk sizes, gradient checks of conv2d and
 * conv_transpose2d, PyTorch fixtures (tools/refs/gen_conv.py), the direct
 * 3x3 kernels' checks at every kernel level, and a one-shot timing line
 * for a classifier-sized layer.
 * Tolerances: fast vs naive (double) atol 1e-4 rtol 1e-4 (f32 sums of up
 * to ~300 terms of O(1) products); forward vs PyTorch atol 1e-5 rtol 1e-4,
 * grads vs PyTorch atol 5e-5 rtol 1e-4 (weight grads sum B*Ho*Wo ~ 100
 * products, magnitudes ~10); gradcheck eps 1e-2, atol 1e-3, rtol 1e-2
 * (conv is bilinear, so central differences are exact up to f32 rounding). */
#include "testutil.h"
#include "tessera/cpu.h"
#include "tessera/ops.h"

#include <string.h>

static float *frand(int64_t n, uint64_t seed) {
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    tu_randn(p, n, seed, 1.0f);
    return p;
}

/* fast kernels vs naive twins for one geometry at chunk size nb */
static void check_fast_vs_ref(int B, int cin, int h, int w, int cout, int kh, int kw, tsr_conv_opts o,
                              int nb, uint64_t seed) {
    tsr_conv_geom g = tsr_conv_geom_make(B, cin, h, w, cout, kh, kw, &o);
    g.nb = nb < 1 ? 1 : nb > B ? B : nb;
    int G = g.groups;
    int64_t nx = (int64_t)B * cin * h * w, nw = (int64_t)cout * (cin / G) * kh * kw,
            ny = (int64_t)B * cout * g.ho * g.wo;
    float *x = frand(nx, seed), *wt = frand(nw, seed + 1), *bias = frand(cout, seed + 2),
          *dy = frand(ny, seed + 3);
    float *scratch = malloc(sizeof(float) * (size_t)(tsr_conv_scratch_floats(&g) + 1));
    float *y = malloc(sizeof(float) * ny), *yr = malloc(sizeof(float) * ny);
    float *dx = calloc(nx, 4), *dxr = calloc(nx, 4), *dw = calloc(nw, 4), *dwr = calloc(nw, 4),
          *db = calloc(cout, 4), *dbr = calloc(cout, 4);
    char what[160];
    snprintf(what, sizeof what, "conv fast vs ref B%d cin%d %dx%d cout%d k%dx%d s%d,%d p%d,%d d%d,%d g%d nb%d", B,
             cin, h, w, cout, kh, kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, G, g.nb);
    tsr_conv2d_fwd(&tsr_backend_cpu, y, x, wt, bias, &g, scratch, false);
    tsr_conv2d_fwd_ref(yr, x, wt, bias, &g);
    tu_close(what, y, yr, ny, 1e-4, 1e-4);
    /* accumulate mode adds on top of what is there */
    tsr_conv2d_fwd(&tsr_backend_cpu, y, x, wt, NULL, &g, scratch, true);
    for (int64_t i = 0; i < ny; i++) yr[i] = 2 * yr[i] - bias[(i / ((int64_t)g.ho * g.wo)) % cout];
    tu_close(what, y, yr, ny, 2e-4, 1e-4);
    /* backward twice into pre-filled grads checks the += contract */
    for (int rep = 0; rep < 2; rep++) {
        tsr_conv2d_bwd_data(&tsr_backend_cpu, dx, dy, wt, &g, scratch);
        tsr_conv2d_bwd_weight(&tsr_backend_cpu, dw, db, dy, x, &g, scratch);
        tsr_conv2d_bwd_ref(dxr, dwr, dbr, dy, x, wt, &g);
    }
    tu_close(what, dx, dxr, nx, 1e-4, 1e-4);
    tu_close(what, dw, dwr, nw, 1e-4, 1e-4);
    tu_close(what, db, dbr, cout, 1e-4, 1e-4);
    free(x), free(wt), free(bias), free(dy), free(scratch), free(y), free(yr);
    free(dx), free(dxr), free(dw), free(dwr), free(db), free(dbr);
}

static tsr_conv_opts opts(int sh, int sw, int ph, int pw, int dh, int dw, int G, int oph, int opw) {
    tsr_conv_opts o = {{sh, sw}, {ph, pw}, {dh, dw}, G, {oph, opw}};
    return o;
}

/* chunks are scheduled dynamically: two runs must still agree bit for bit */
static void check_deterministic(int cout) {
    tsr_conv_opts o = opts(1, 1, 1, 1, 1, 1, 1, 0, 0);
    tsr_conv_geom g = tsr_conv_geom_make(24, 8, 9, 9, cout, 3, 3, &o);
    g.nb = 1;
    int64_t nx = 24 * 8 * 81, nw = cout * 8 * 9, ny = 24 * cout * 81;
    float *x = frand(nx, 7), *w = frand(nw, 8), *dy = frand(ny, 9);
    float *scratch = malloc(sizeof(float) * (size_t)tsr_conv_scratch_floats(&g));
    float *y[2], *dx[2], *dw[2];
    for (int r = 0; r < 2; r++) {
        y[r] = malloc(sizeof(float) * ny), dx[r] = calloc(nx, 4), dw[r] = calloc(nw, 4);
        tsr_conv2d_fwd(&tsr_backend_cpu, y[r], x, w, NULL, &g, scratch, false);
        tsr_conv2d_bwd_data(&tsr_backend_cpu, dx[r], dy, w, &g, scratch);
        tsr_conv2d_bwd_weight(&tsr_backend_cpu, dw[r], NULL, dy, x, &g, scratch);
    }
    TU_CHECK(memcmp(y[0], y[1], sizeof(float) * ny) == 0 && memcmp(dx[0], dx[1], sizeof(float) * nx) == 0 &&
                 memcmp(dw[0], dw[1], sizeof(float) * nw) == 0,
             "conv results differ between two identical runs");
    for (int r = 0; r < 2; r++) free(y[r]), free(dx[r]), free(dw[r]);
    free(x), free(w), free(dy), free(scratch);
}

static tsr_conv_opts g_opts;
static tsr_tensor *conv_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    return tsr_conv2d(c, in[0], in[1], ud ? in[2] : NULL, &g_opts);
}
static tsr_tensor *tconv_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    return tsr_conv_transpose2d(c, in[0], in[1], ud ? in[2] : NULL, &g_opts);
}

static void gradcheck_conv(const char *name, bool transpose, const int64_t xs[4], const int64_t ws[4],
                           int64_t nbias, tsr_conv_opts o) {
    int64_t nx = xs[0] * xs[1] * xs[2] * xs[3], nw = ws[0] * ws[1] * ws[2] * ws[3];
    float *x = frand(nx, 11), *w = frand(nw, 12), *b = frand(nbias ? nbias : 1, 13);
    gc_input in[3] = {{TSR_F32, 4, {xs[0], xs[1], xs[2], xs[3]}, x, true},
                      {TSR_F32, 4, {ws[0], ws[1], ws[2], ws[3]}, w, true},
                      {TSR_F32, 1, {nbias}, b, true}};
    g_opts = o;
    tu_gradcheck(name, transpose ? tconv_fn : conv_fn, nbias ? (void *)1 : NULL, nbias ? 3 : 2, in, 1e-2,
                 1e-3, 1e-2, 400);
    free(x), free(w), free(b);
}

static void fixture_case(tref *r, const char *p, bool transpose) {
    char k[96];
    snprintf(k, sizeof k, "%sp", p);
    const int32_t *q = tref_get(r, k)->data;
    tsr_conv_opts o = opts(q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8]);
    bool has_bias = q[9];
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    snprintf(k, sizeof k, "%sx", p);
    tsr_tensor *x = tref_tensor(&c, r, k, true);
    snprintf(k, sizeof k, "%sw", p);
    tsr_tensor *w = tref_tensor(&c, r, k, true);
    tsr_tensor *b = NULL;
    if (has_bias) {
        snprintf(k, sizeof k, "%sb", p);
        b = tref_tensor(&c, r, k, true);
    }
    tsr_tensor *y = transpose ? tsr_conv_transpose2d(&c, x, w, b, &o) : tsr_conv2d(&c, x, w, b, &o);
    snprintf(k, sizeof k, "%sy", p);
    TU_CHECK(y->numel == tref_get(r, k)->numel, "%s output size", k);
    tu_close_ref(r, k, tsr_f32(y), y->numel, 1e-5, 1e-4);
    snprintf(k, sizeof k, "%sgy", p);
    tsr_backward_with(&c, y, tref_get(r, k)->data);
    snprintf(k, sizeof k, "%sgx", p);
    tu_close_ref(r, k, x->grad, x->numel, 5e-5, 1e-4);
    snprintf(k, sizeof k, "%sgw", p);
    tu_close_ref(r, k, w->grad, w->numel, 5e-5, 1e-4);
    if (b) {
        snprintf(k, sizeof k, "%sgb", p);
        tu_close_ref(r, k, b->grad, b->numel, 5e-5, 1e-4);
    }
    tsr_ctx_free(&c);
}

/* one forward+backward of a classifier-sized layer, printed, not checked */
static void timing(int B, int cin, int hw, int cout) {
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 24);
    int64_t nx = (int64_t)B * cin * hw * hw, nw = (int64_t)cout * cin * 9;
    float *xd = frand(nx, 1), *wd = frand(nw, 2);
    tsr_tensor *x = tsr_from_f32(&c, TSR_DIMS(B, cin, hw, hw), xd);
    tsr_tensor *w = tsr_from_f32(&c, TSR_DIMS(cout, cin, 3, 3), wd);
    x->requires_grad = w->requires_grad = true;
    tsr_conv_opts o = opts(1, 1, 1, 1, 1, 1, 1, 0, 0);
    float *gy = frand((int64_t)B * cout * hw * hw, 3);
    double best_f = 1e9, best_b = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        tsr_ctx_reset(&c);
        x = tsr_from_f32(&c, TSR_DIMS(B, cin, hw, hw), xd);
        w = tsr_from_f32(&c, TSR_DIMS(cout, cin, 3, 3), wd);
        x->requires_grad = w->requires_grad = true;
        double t0 = tsr_time();
        tsr_tensor *y = tsr_conv2d(&c, x, w, NULL, &o);
        double t1 = tsr_time();
        tsr_backward_with(&c, y, gy);
        double t2 = tsr_time();
        if (t1 - t0 < best_f) best_f = t1 - t0;
        if (t2 - t1 < best_b) best_b = t2 - t1;
    }
    double fl = 2.0 * B * cout * cin * 9 * hw * hw;
    printf("timing conv3x3 (%d,%d,%d,%d)->%d, %d threads: fwd %.2f ms (%.1f GFLOP/s), bwd %.2f ms (%.1f GFLOP/s)\n",
           B, cin, hw, hw, cout, tsr_threads_get(), best_f * 1e3, fl / best_f * 1e-9, best_b * 1e3,
           2 * fl / best_b * 1e-9);
    free(xd), free(wd), free(gy);
    tsr_ctx_free(&c);
}

/* the direct 3x3 stride-1 pad-1 kernels (output channels a multiple of 8;
 * the input grad also needs input channels a multiple of 8): against the
 * naive twins, determinism, central differences (both backward halves in
 * one pass) and PyTorch (c_d8_: forward, input and weight grads direct) */
static void direct_checks(tref *r) {
    check_fast_vs_ref(3, 8, 9, 7, 16, 3, 3, opts(1, 1, 1, 1, 1, 1, 1, 0, 0), 1, 200);
    check_fast_vs_ref(2, 1, 28, 28, 8, 3, 3, opts(1, 1, 1, 1, 1, 1, 1, 0, 0), 1, 201);
    check_fast_vs_ref(3, 16, 14, 14, 8, 3, 3, opts(1, 1, 1, 1, 1, 1, 1, 0, 0), 1, 202);
    check_fast_vs_ref(2, 5, 1, 13, 8, 3, 3, opts(1, 1, 1, 1, 1, 1, 1, 0, 0), 1, 203);
    check_fast_vs_ref(1, 8, 6, 1, 24, 3, 3, opts(1, 1, 1, 1, 1, 1, 1, 0, 0), 1, 204);
    check_fast_vs_ref(3, 8, 6, 5, 4, 3, 3, opts(1, 1, 1, 1, 1, 1, 1, 0, 0), 1, 205); /* input grad only */
    check_deterministic(16);
    gradcheck_conv("conv2d direct 3x3", false, (int64_t[]){2, 8, 5, 6}, (int64_t[]){8, 8, 3, 3}, 8,
                   opts(1, 1, 1, 1, 1, 1, 1, 0, 0));
    fixture_case(r, "c_d8_", false);
}

int main(void) {
    tsr_threads_set(0);
    /* fast vs naive: the classifier's shapes in miniature, then every option */
    int nbs[3] = {1, 2, 5};
    for (int i = 0; i < 3; i++) {
        check_fast_vs_ref(5, 3, 9, 8, 4, 3, 3, opts(1, 1, 1, 1, 1, 1, 1, 0, 0), nbs[i], 100 + i);
        check_fast_vs_ref(5, 4, 9, 7, 6, 3, 3, opts(2, 2, 1, 1, 1, 1, 1, 0, 0), nbs[i], 110 + i);
        check_fast_vs_ref(5, 4, 10, 9, 4, 3, 3, opts(1, 1, 2, 2, 2, 2, 2, 0, 0), nbs[i], 120 + i);
        check_fast_vs_ref(5, 6, 7, 7, 6, 3, 3, opts(1, 2, 1, 0, 1, 1, 6, 0, 0), nbs[i], 130 + i);
        check_fast_vs_ref(5, 6, 5, 4, 3, 1, 1, opts(1, 1, 0, 0, 1, 1, 1, 0, 0), nbs[i], 140 + i);
        check_fast_vs_ref(5, 4, 8, 11, 4, 2, 5, opts(3, 2, 0, 3, 1, 2, 2, 0, 0), nbs[i], 150 + i);
        check_fast_vs_ref(5, 2, 6, 6, 3, 1, 1, opts(2, 2, 0, 0, 1, 1, 1, 0, 0), nbs[i], 160 + i);
        /* stride 1 but narrower map: the per-row copy path */
        check_fast_vs_ref(5, 3, 7, 9, 4, 3, 3, opts(1, 1, 1, 0, 1, 1, 1, 0, 0), nbs[i], 180 + i);
        /* 'same' width with a wide asymmetric kernel and padding only in w */
        check_fast_vs_ref(5, 2, 6, 8, 3, 2, 5, opts(1, 1, 0, 2, 1, 1, 1, 0, 0), nbs[i], 190 + i);
        /* planes smaller than the kernel: taps that miss every output */
        check_fast_vs_ref(5, 3, 1, 1, 4, 3, 3, opts(1, 1, 1, 1, 1, 1, 1, 0, 0), nbs[i], 210 + i);
        check_fast_vs_ref(5, 3, 2, 2, 4, 5, 5, opts(1, 1, 2, 2, 1, 1, 1, 0, 0), nbs[i], 220 + i);
    }
    /* one large image with a strided kernel: bands of output rows */
    check_fast_vs_ref(1, 16, 96, 96, 8, 3, 3, opts(2, 2, 1, 1, 1, 1, 1, 0, 0), 1, 230);
    check_fast_vs_ref(1, 3, 200, 130, 5, 3, 5, opts(2, 3, 1, 2, 1, 1, 1, 0, 0), 1, 231);
    /* default chunking on a classifier layer */
    {
        tsr_conv_opts o = opts(1, 1, 1, 1, 1, 1, 1, 0, 0);
        tsr_conv_geom g = tsr_conv_geom_make(16, 8, 14, 14, 16, 3, 3, &o);
        check_fast_vs_ref(16, 8, 14, 14, 16, 3, 3, o, g.nb, 170);
    }

    check_deterministic(12);

    /* gradient checks */
    gradcheck_conv("conv2d pad1 bias", false, (int64_t[]){2, 3, 6, 5}, (int64_t[]){4, 3, 3, 3}, 4,
                   opts(1, 1, 1, 1, 1, 1, 1, 0, 0));
    gradcheck_conv("conv2d stride2", false, (int64_t[]){2, 2, 7, 6}, (int64_t[]){3, 2, 3, 3}, 3,
                   opts(2, 2, 1, 0, 1, 1, 1, 0, 0));
    gradcheck_conv("conv2d dil2 groups2", false, (int64_t[]){2, 4, 7, 7}, (int64_t[]){4, 2, 3, 2}, 0,
                   opts(1, 1, 2, 1, 2, 2, 2, 0, 0));
    gradcheck_conv("conv2d depthwise", false, (int64_t[]){2, 3, 5, 5}, (int64_t[]){3, 1, 3, 3}, 3,
                   opts(1, 1, 1, 1, 1, 1, 3, 0, 0));
    gradcheck_conv("conv_transpose2d s2 outpad", true, (int64_t[]){2, 3, 3, 4}, (int64_t[]){3, 2, 3, 3}, 2,
                   opts(2, 2, 1, 1, 1, 1, 1, 1, 1));
    gradcheck_conv("conv_transpose2d groups dil", true, (int64_t[]){2, 4, 3, 3}, (int64_t[]){4, 1, 2, 3}, 2,
                   opts(1, 2, 0, 1, 2, 1, 2, 0, 1));

    /* PyTorch fixtures */
    tref *r = tref_load("tests/refs/conv.tref");
    const char *cases[] = {"c_basic_", "c_s2_", "c_dil2_", "c_g2_", "c_dw_", "c_1x1_", "c_odd_"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) fixture_case(r, cases[i], false);
    const char *tcases[] = {"t_basic_", "t_g2_", "t_s1_", "t_s3_"};
    for (size_t i = 0; i < sizeof tcases / sizeof tcases[0]; i++) fixture_case(r, tcases[i], true);
    /* the direct 3x3 kernels are separate scalar, AVX2 and AVX-512 code
     * (conv.c dispatches on tsr_cpu_level()): their checks run at every
     * level this CPU supports (the BF16 level runs the AVX-512 kernels) */
    int lv[TSR_CPU_LEVELS];
    int nl = tu_levels(lv);
    for (int i = 0; i < nl; i++) {
        if (nl > 1 && lv[i] > TSR_CPU_AVX512) continue;
        tu_level_set(lv[i]);
        direct_checks(r);
    }
    tu_level_restore();
    tref_free(r);

    timing(32, 32, 28, 64);
    return tu_finish("ops_conv");
}
