/* Tests for src/ops/matmul.c: sgemm path vs naive twin, gradient check,
 * PyTorch fixtures (tools/refs/gen_matmul.py).
 * Tolerances: forward/grads vs PyTorch atol 1e-5 rtol 1e-4 (f32 sums of
 * <= 7 terms); gradcheck eps 1e-2, atol 1e-3, rtol 1e-2 (matmul is bilinear,
 * so central differences are exact up to f32 rounding of the loss). */
#include "testutil.h"
#include "tessera/cpu.h"
#include "tessera/ops.h"

#include <string.h>

static int g_ta, g_tb;
static tsr_tensor *mm_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    (void)ud;
    return tsr_matmul(c, in[0], in[1], g_ta, g_tb);
}
static tsr_tensor *lin_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    (void)ud;
    return tsr_linear(c, in[0], in[1], in[2]);
}

int main(void) {
    tsr_threads_set(0);
    /* sgemm vs naive on odd sizes and all transposes */
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t >> 1;
        int M = 37, N = 29, K = 53;
        float *a = malloc(4 * M * K), *b = malloc(4 * K * N), *o = malloc(4 * M * N), *r = malloc(4 * M * N);
        tu_randn(a, M * K, 1, 1);
        tu_randn(b, K * N, 2, 1);
        tsr_matmul_fwd(&tsr_backend_cpu, o, a, b, M, N, K, ta, tb, 0.0f);
        tsr_matmul_ref(r, a, b, M, N, K, ta, tb);
        tu_close("matmul sgemm vs ref", o, r, M * N, 1e-4, 1e-4);
        free(a), free(b), free(o), free(r);
    }
    /* the fixed-order backend: close to the naive twin, and a row's result
     * is bit-identical whatever M, the row's position and the thread count
     * (sizes past one 64x64 tile and 8-row block, with edges) */
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t >> 1;
        int M = 45, N = 150, K = 140;
        float *a = malloc(4 * M * K), *b = malloc(4 * K * N), *o = malloc(4 * M * N), *r = malloc(4 * M * N);
        float *a1 = malloc(4 * K), *o1 = malloc(4 * N);
        tu_randn(a, M * K, 5, 1);
        tu_randn(b, K * N, 6, 1);
        tsr_matmul_fwd(&tsr_backend_cpu_fixed, o, a, b, M, N, K, ta, tb, 0.0f);
        tsr_matmul_ref(r, a, b, M, N, K, ta, tb);
        tu_close("matmul fixed vs ref", o, r, M * N, 1e-4, 1e-4);
        bool same = true;
        for (int i = 0; i < M; i += 4) {
            for (int k = 0; k < K; k++) a1[k] = ta ? a[(int64_t)k * M + i] : a[(int64_t)i * K + k];
            tsr_matmul_fwd(&tsr_backend_cpu_fixed, o1, a1, b, 1, N, K, ta, tb, 0.0f);
            same &= memcmp(o1, o + (int64_t)i * N, 4 * (size_t)N) == 0;
        }
        TU_CHECK(same, "fixed sgemm: a row alone == the same row inside M=%d, bit for bit (ta %d tb %d)", M, ta, tb);
        tsr_threads_set(1);
        tsr_matmul_fwd(&tsr_backend_cpu_fixed, r, a, b, M, N, K, ta, tb, 0.0f);
        tsr_threads_set(0);
        TU_CHECK(memcmp(o, r, 4 * (size_t)M * N) == 0, "fixed sgemm: 1 thread == all threads, bit for bit");
        /* ISO C: no level contracts to FMA, so every level gives the same bits */
        int best = tsr_cpu_level();
        for (int lv = 0; lv <= tsr_cpu_best_level(); lv++) {
            tsr_cpu_set_level(lv);
            tsr_matmul_fwd(&tsr_backend_cpu_fixed, r, a, b, M, N, K, ta, tb, 0.0f);
            TU_CHECK(memcmp(o, r, 4 * (size_t)M * N) == 0, "fixed sgemm: level %s == level %s, bit for bit",
                     tsr_cpu_level_name(lv), tsr_cpu_level_name(best));
        }
        tsr_cpu_set_level(best);
        free(a), free(b), free(o), free(r), free(a1), free(o1);
    }
    /* gradcheck: batched with each transpose, and a shared 2-D b */
    for (int t = 0; t < 4; t++) {
        g_ta = t & 1, g_tb = t >> 1;
        float a[2 * 3 * 4], b[2 * 4 * 5];
        tu_randn(a, 24, 3, 1);
        tu_randn(b, 40, 4, 1);
        gc_input in[2] = {{TSR_F32, 3, {2, g_ta ? 4 : 3, g_ta ? 3 : 4}, a, true},
                          {TSR_F32, 3, {2, g_tb ? 5 : 4, g_tb ? 4 : 5}, b, true}};
        tu_gradcheck("matmul", mm_fn, NULL, 2, in, 1e-2, 1e-3, 1e-2, 1000);
        gc_input in2[2] = {{TSR_F32, 3, {2, g_ta ? 4 : 3, g_ta ? 3 : 4}, a, true},
                           {TSR_F32, 2, {g_tb ? 5 : 4, g_tb ? 4 : 5}, b, true}};
        tu_gradcheck("matmul shared b", mm_fn, NULL, 2, in2, 1e-2, 1e-3, 1e-2, 1000);
    }
    {
        float x[2 * 3 * 4], w[5 * 4], bias[5];
        tu_randn(x, 24, 5, 1);
        tu_randn(w, 20, 6, 1);
        tu_randn(bias, 5, 7, 1);
        gc_input in[3] = {{TSR_F32, 3, {2, 3, 4}, x, true}, {TSR_F32, 2, {5, 4}, w, true}, {TSR_F32, 1, {5}, bias, true}};
        tu_gradcheck("linear", lin_fn, NULL, 3, in, 1e-2, 1e-3, 1e-2, 1000);
    }
    /* PyTorch fixtures */
    tref *r = tref_load("tests/refs/matmul.tref");
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    for (int t = 0; t < 4; t++) {
        int ta = t >> 1, tb = t & 1;
        char p[64], k[96];
        snprintf(p, sizeof p, "bmm_%d%d_", ta, tb);
        tsr_ctx_reset(&c);
        snprintf(k, sizeof k, "%sa", p);
        tsr_tensor *a = tref_tensor(&c, r, k, true);
        snprintf(k, sizeof k, "%sb", p);
        tsr_tensor *b = tref_tensor(&c, r, k, true);
        tsr_tensor *y = tsr_matmul(&c, a, b, ta, tb);
        snprintf(k, sizeof k, "%sy", p);
        tu_close_ref(r, k, tsr_f32(y), y->numel, 1e-5, 1e-4);
        snprintf(k, sizeof k, "%sgy", p);
        tsr_backward_with(&c, y, tref_get(r, k)->data);
        snprintf(k, sizeof k, "%sga", p);
        tu_close_ref(r, k, a->grad, a->numel, 1e-5, 1e-4);
        snprintf(k, sizeof k, "%sgb", p);
        tu_close_ref(r, k, b->grad, b->numel, 1e-5, 1e-4);
    }
    tsr_ctx_reset(&c);
    tsr_tensor *x = tref_tensor(&c, r, "lin_x", true), *w = tref_tensor(&c, r, "lin_w", true),
               *bb = tref_tensor(&c, r, "lin_b", true);
    tsr_tensor *y = tsr_linear(&c, x, w, bb);
    tu_close_ref(r, "lin_y", tsr_f32(y), y->numel, 1e-5, 1e-4);
    tsr_backward_with(&c, y, tref_get(r, "lin_gy")->data);
    tu_close_ref(r, "lin_gx", x->grad, x->numel, 1e-5, 1e-4);
    tu_close_ref(r, "lin_gw", w->grad, w->numel, 1e-5, 1e-4);
    tu_close_ref(r, "lin_gb", bb->grad, bb->numel, 1e-5, 1e-4);
    tsr_ctx_free(&c);
    tref_free(r);
    return tu_finish("ops_matmul");
}
