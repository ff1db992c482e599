/* tessera bench: the autograd matmul (tsr_matmul, forward and backward
 * pass, as nn's Linear layers use it: x (M,K) @ W^T with W (N,K)) against
 * raw cblas_sgemm on the same shapes, timed interleaved so machine noise
 * hits both alike; plus the machine's sgemm peak on a 2048^3 square.
 * One JSON line per figure on stdout. Validates before it times. */
#include "bench_common.h"
#include "tessera/ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static char g_cpu[256];

static void json_head(const char *what) {
    printf("{\"bench\":\"matmul\",\"what\":\"%s\",\"cpu\":\"%s\",\"threads\":%d,\"build\":\"%s\"", what,
           g_cpu, tsr_threads_get(), bench_build_flags());
}

static double max_rel(const float *a, const float *b, int64_t n) {
    double worst = 0, scale = 1e-6;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - b[i]) / scale);
    return worst;
}

/* raw Linear: y = x W^T; backward dx = dy W, dW += dy^T x */
static void raw_fwd(float *y, const float *x, const float *w, int M, int N, int K) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, x, K, w, K, 0.f, y, N);
}
static void raw_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w, int M, int N, int K) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.f, dy, N, w, K, 1.f, dx, K);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.f, dy, N, x, K, 1.f, dw, K);
}

static int bench_shape(const char *label, int M, int K, int N, double peak) {
    tsr_ctx keep, c;
    tsr_ctx_init(&keep, 1 << 20);
    tsr_ctx_init(&c, 256 << 20); /* one block: steady state allocates nothing */
    tsr_tensor *x = tsr_new(&keep, TSR_F32, TSR_DIMS(M, K)), *w = tsr_new(&keep, TSR_F32, TSR_DIMS(N, K));
    bench_fill(tsr_f32(x), x->numel, 1);
    bench_fill(tsr_f32(w), w->numel, 2);
    x->requires_grad = w->requires_grad = true;
    float *dy = malloc(sizeof(float) * (size_t)M * N), *y = malloc(sizeof(float) * (size_t)M * N);
    float *dx = calloc((size_t)M * K, sizeof(float)), *dw = calloc((size_t)N * K, sizeof(float));
    bench_fill(dy, (int64_t)M * N, 3);

    /* validate: the op against raw sgemm (same library, so tight) */
    x->grad = w->grad = NULL;
    tsr_tensor *out = tsr_matmul(&c, x, w, false, true);
    tsr_backward_with(&c, out, dy);
    raw_fwd(y, tsr_f32(x), tsr_f32(w), M, N, K);
    raw_bwd(dx, dw, dy, tsr_f32(x), tsr_f32(w), M, N, K);
    double e = fmax(max_rel(tsr_f32(out), y, (int64_t)M * N),
                    fmax(max_rel(x->grad, dx, (int64_t)M * K), max_rel(w->grad, dw, (int64_t)N * K)));
    if (e > 1e-5) {
        fprintf(stderr, "bench_matmul: %s: op differs from raw sgemm (max rel err %.3g)\n", label, e);
        return 1;
    }

    double flops = 2.0 * M * N * K;
    int reps = (int)fmin(50, fmax(5, 2e10 / (3 * flops)));
    double *tf = malloc(sizeof(double) * reps), *tb = malloc(sizeof(double) * reps);
    double *rf = malloc(sizeof(double) * reps), *rb = malloc(sizeof(double) * reps);
    double *pf = malloc(sizeof(double) * reps), *pb = malloc(sizeof(double) * reps);
    for (int i = 0; i < reps; i++) {
        tsr_ctx_reset(&c);
        x->grad = w->grad = NULL;
        double t0 = tsr_time();
        out = tsr_matmul(&c, x, w, false, true);
        double t1 = tsr_time();
        /* the op's backward alone: d(out) seeded outside the timing, as a
         * downstream op would have accumulated it */
        memcpy(tsr_grad(&c, out), dy, sizeof(float) * (size_t)M * N);
        double t1b = tsr_time();
        out->node->backward(&c, out->node);
        double t2 = tsr_time();
        raw_fwd(y, tsr_f32(x), tsr_f32(w), M, N, K);
        double t3 = tsr_time();
        raw_bwd(dx, dw, dy, tsr_f32(x), tsr_f32(w), M, N, K);
        double t4 = tsr_time();
        tf[i] = t1 - t0, tb[i] = t2 - t1b, rf[i] = t3 - t2, rb[i] = t4 - t3;
        pf[i] = rf[i] / tf[i], pb[i] = rb[i] / tb[i];
    }
    /* ratio: median of per-iteration pairs, robust to load drifting on a
     * shared machine */
    double ratio_f = bench_median(pf, reps), ratio_b = bench_median(pb, reps);
    double mf = bench_median(tf, reps), mb = bench_median(tb, reps), mrf = bench_median(rf, reps), mrb = bench_median(rb, reps);
    json_head("linear_forward");
    printf(",\"shape\":\"(%dx%d)x(%dx%d)\",\"ours_gflops\":%.1f,\"raw_gflops\":%.1f,\"ratio\":%.3f,"
           "\"frac_peak\":%.3f,\"reps\":%d}\n",
           M, K, K, N, flops / mf * 1e-9, flops / mrf * 1e-9, ratio_f, flops / mf * 1e-9 / peak, reps);
    json_head("linear_backward");
    printf(",\"shape\":\"(%dx%d)x(%dx%d)\",\"ours_gflops\":%.1f,\"raw_gflops\":%.1f,\"ratio\":%.3f,"
           "\"frac_peak\":%.3f,\"reps\":%d}\n",
           M, K, K, N, 2 * flops / mb * 1e-9, 2 * flops / mrb * 1e-9, ratio_b, 2 * flops / mb * 1e-9 / peak, reps);
    fflush(stdout);
    free(tf), free(tb), free(rf), free(rb), free(pf), free(pb), free(dy), free(y), free(dx), free(dw);
    tsr_ctx_free(&c);
    tsr_ctx_free(&keep);
    return 0;
}

int main(int argc, char **argv) {
    (void)argv;
    tsr_threads_set(0);
    bench_cpu_model(g_cpu, sizeof g_cpu);
    bool quick = argc > 1; /* any argument: only the first two shapes */
    double peak = bench_sgemm_peak(2048);
    json_head("sgemm_peak");
    printf(",\"shape\":\"2048^3\",\"gflops\":%.1f}\n", peak);
    static const int shapes[][3] = {
        {2048, 256, 768},  /* attention qkv projection */
        {2048, 256, 688},  /* SwiGLU up */
        {2048, 688, 256},  /* SwiGLU down */
        {2048, 256, 4096}, /* LM head */
        {128, 784, 256},   /* MLP on flattened 28x28 */
        {64, 3136, 128},   /* fc after 64x7x7 conv features */
        {6272, 288, 64},   /* im2col conv: 32x14x14 positions, 32x3x3 taps */
    };
    int n = quick ? 2 : (int)(sizeof shapes / sizeof shapes[0]);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char label[64];
        snprintf(label, sizeof label, "%dx%dx%d", shapes[i][0], shapes[i][1], shapes[i][2]);
        rc |= bench_shape(label, shapes[i][0], shapes[i][1], shapes[i][2], peak);
    }
    return rc;
}
