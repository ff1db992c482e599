/* Tests for src/ops/pool.c: gradient checks and PyTorch fixtures
 * (tools/refs/gen_conv.py) for max/avg pooling, nearest and bilinear
 * upsampling.
 * Tolerances: forward and grads vs PyTorch atol 1e-5 rtol 1e-5 (at most a
 * few f32 products per element; bilinear follows torch's float index math);
 * gradcheck eps 1e-3 for max pooling (small enough that no window's argmax
 * flips on these seeded inputs), 1e-2 for the linear ops, atol 1e-3 rtol 1e-2. */
#include "tessera/cpu.h"
#include "testutil.h"
#include "tessera/ops.h"

#include <math.h>
#include <string.h>

typedef struct {
    int kind; /* 0 max, 1 avg, 2 nearest, 3 bilinear */
    int a[6];
} pool_case;

static tsr_tensor *apply(tsr_ctx *c, tsr_tensor *x, const pool_case *pc) {
    switch (pc->kind) {
    case 0: return tsr_maxpool2d(c, x, pc->a, pc->a + 2, pc->a + 4);
    case 1: return tsr_avgpool2d(c, x, pc->a, pc->a + 2, pc->a + 4);
    case 2: return tsr_upsample_nearest(c, x, pc->a[0], pc->a[1]);
    default: return tsr_upsample_bilinear(c, x, pc->a[0], pc->a[1], pc->a[2]);
    }
}

static tsr_tensor *pool_fn(tsr_ctx *c, tsr_tensor **in, void *ud) { return apply(c, in[0], ud); }

static void gradcheck(const char *name, pool_case pc, int64_t B, int64_t C, int64_t H, int64_t W, double eps) {
    int64_t n = B * C * H * W;
    float *x = malloc(sizeof(float) * (size_t)n);
    tu_randn(x, n, 31, 1.0f);
    gc_input in[1] = {{TSR_F32, 4, {B, C, H, W}, x, true}};
    tu_gradcheck(name, pool_fn, &pc, 1, in, eps, 1e-3, 1e-2, 1000);
    free(x);
}

static void fixture(tref *r, const char *p, int kind) {
    char k[64];
    snprintf(k, sizeof k, "%sp", p);
    const tref_entry *pe = tref_get(r, k);
    pool_case pc = {kind, {0}};
    for (int i = 0; i < pe->numel && i < 6; i++) pc.a[i] = ((const int32_t *)pe->data)[i];
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    snprintf(k, sizeof k, "%sx", p);
    tsr_tensor *x = tref_tensor(&c, r, k, true);
    tsr_tensor *y = apply(&c, x, &pc);
    snprintf(k, sizeof k, "%sy", p);
    const tref_entry *ye = tref_get(r, k);
    TU_CHECK(y->ndim == 4 && y->shape[2] == ye->shape[2] && y->shape[3] == ye->shape[3], "%s shape", k);
    tu_close_ref(r, k, tsr_f32(y), y->numel, 1e-5, 1e-5);
    snprintf(k, sizeof k, "%sgy", p);
    tsr_backward_with(&c, y, tref_get(r, k)->data);
    snprintf(k, sizeof k, "%sgx", p);
    tu_close_ref(r, k, x->grad, x->numel, 1e-5, 1e-5);
    tsr_ctx_free(&c);
}

/* the 2x2/2 fast path vs a naive scan with torch's rule (first maximum
 * wins ties, a NaN always takes over), on values with many ties, NaNs and odd sizes */
static void check_maxpool_2x2_ties(int B, int C, int H, int W) {
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    tsr_tensor *x = tsr_new(&c, TSR_F32, TSR_DIMS(B, C, H, W));
    x->requires_grad = true;
    float *xd = tsr_f32(x);
    for (int64_t i = 0; i < x->numel; i++) xd[i] = (float)((i * i * 31 + i / 3) % 3) - 1.0f;
    for (int64_t i = 3; i < x->numel; i += 37) xd[i] = xd[i + (i % 2 ? -1 : 1)] = NAN;
    const int k[2] = {2, 2}, p0[2] = {0, 0};
    tsr_tensor *y = tsr_maxpool2d(&c, x, k, k, p0);
    int ho = H / 2, wo = W / 2;
    float *gy = malloc(sizeof(float) * (size_t)y->numel), *gx = calloc((size_t)x->numel, sizeof(float));
    float *yr = malloc(sizeof(float) * (size_t)y->numel);
    for (int64_t i = 0; i < y->numel; i++) gy[i] = (float)(i % 13) + 1.0f;
    for (int64_t pl = 0; pl < (int64_t)B * C; pl++)
        for (int oh = 0; oh < ho; oh++)
            for (int ow = 0; ow < wo; ow++) {
                int64_t best = pl * H * W + (int64_t)2 * oh * W + 2 * ow;
                for (int ki = 0; ki < 2; ki++)
                    for (int kj = 0; kj < 2; kj++) {
                        int64_t at = pl * H * W + (int64_t)(2 * oh + ki) * W + 2 * ow + kj;
                        if (xd[at] > xd[best] || xd[at] != xd[at]) best = at;
                    }
                int64_t o = (pl * ho + oh) * wo + ow;
                yr[o] = xd[best];
                gx[best] += gy[o];
            }
    bool same = true;
    for (int64_t i = 0; i < y->numel; i++) {
        float a = tsr_f32(y)[i], b = yr[i];
        if (!(a == b || (a != a && b != b))) same = false;
    }
    TU_CHECK(same, "maxpool 2x2 fast path values (%dx%d)", H, W);
    tsr_backward_with(&c, y, gy);
    tu_close("maxpool 2x2 fast path grads", x->grad, gx, x->numel, 0, 0);
    free(gy), free(gx), free(yr);
    tsr_ctx_free(&c);
}

int main(void) {
    tsr_threads_set(0);
    /* the 2x2 rows have a form per kernel level: every level against the naive scan */
    int lv[TSR_CPU_LEVELS];
    int nl = tu_levels(lv);
    for (int i = 0; i < nl; i++) {
        tu_level_set(lv[i]);
        check_maxpool_2x2_ties(2, 3, 28, 28);
        check_maxpool_2x2_ties(1, 2, 7, 9);
        check_maxpool_2x2_ties(2, 1, 6, 41); /* full 16- and 8-lane blocks and a tail */
        check_maxpool_2x2_ties(2, 1, 4, 40); /* the same, grads written in place */
        check_maxpool_2x2_ties(1, 2, 4, 30); /* 15 outputs: an 8-lane block and a 7-lane tail */
    }
    tu_level_restore();
    gradcheck("maxpool 2x2", (pool_case){0, {2, 2, 2, 2, 0, 0}}, 2, 3, 6, 5, 1e-3);
    gradcheck("maxpool 3x3 s2 p1", (pool_case){0, {3, 3, 2, 2, 1, 1}}, 2, 2, 7, 6, 1e-3);
    gradcheck("avgpool 2x2", (pool_case){1, {2, 2, 2, 2, 0, 0}}, 2, 3, 6, 5, 1e-2);
    gradcheck("avgpool 3x2 s(1,2) p1", (pool_case){1, {3, 2, 1, 2, 1, 1}}, 2, 2, 5, 6, 1e-2);
    gradcheck("nearest 2x3", (pool_case){2, {2, 3}}, 2, 2, 3, 4, 1e-2);
    gradcheck("bilinear up", (pool_case){3, {7, 9, 0}}, 1, 2, 4, 5, 1e-2);
    gradcheck("bilinear up ac", (pool_case){3, {7, 9, 1}}, 1, 2, 4, 5, 1e-2);
    gradcheck("bilinear down", (pool_case){3, {3, 2, 0}}, 1, 2, 7, 5, 1e-2);
    gradcheck("bilinear down ac", (pool_case){3, {3, 2, 1}}, 1, 2, 7, 5, 1e-2);

    tref *r = tref_load("tests/refs/pool.tref");
    char p[32];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "max%d_", i);
        fixture(r, p, 0);
        snprintf(p, sizeof p, "avg%d_", i);
        fixture(r, p, 1);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "near%d_", i);
        fixture(r, p, 2);
    }
    for (int i = 0; i < 4; i++)
        for (int ac = 0; ac < 2; ac++) {
            snprintf(p, sizeof p, "bil%d%d_", i, ac);
            fixture(r, p, 3);
        }
    tref_free(r);
    return tu_finish("ops_pool");
}
