/* Tests for src/ops/det.c: the Hungarian solver against exhaustive search
 * on random square and rectangular cost matrices up to 7x7 (and ties),
 * GIoU, varifocal loss and the contrastive head against their double _ref
 * twins, finite differences and PyTorch (tests/refs/det.tref from
 * tools/refs/gen_det.py). */
#include "testutil.h"
#include "tessera/ops_det.h"

#include <math.h>
#include <string.h>

static void test_hungarian(void) {
    tsr_rng r;
    tsr_rng_seed(&r, 7);
    int bad = 0, trials = 0;
    double scratch[256];
    for (int N = 0; N <= 7; N++)
        for (int M = 0; M <= 7; M++)
            for (int rep = 0; rep < 12; rep++) {
                float cost[64];
                bool ties = rep % 3 == 2;
                for (int i = 0; i < N * M; i++)
                    cost[i] = ties ? (float)tsr_rng_below(&r, 3) : tsr_rng_uniform(&r) * 10 - 3;
                int32_t a[8], e[8];
                TSR_ASSERT(tsr_hungarian_scratch(N, M) <= 256);
                double c1 = tsr_hungarian(a, cost, N, M, scratch), c2 = tsr_hungarian_ref(e, cost, N, M);
                /* a valid injection whose cost is the optimum */
                int used = 0, pairs = 0;
                double sum = 0;
                bool ok = fabs(c1 - c2) < 1e-5;
                for (int i = 0; i < N; i++) {
                    if (a[i] < 0) continue;
                    if (a[i] >= M || (used >> a[i] & 1)) ok = false;
                    else used |= 1 << a[i], pairs++, sum += cost[i * M + a[i]];
                }
                ok = ok && pairs == (N < M ? N : M) && fabs(sum - c2) < 1e-5;
                bad += !ok;
                trials++;
            }
    TU_CHECK(bad == 0, "hungarian: %d of %d random matrices differ from exhaustive search", bad, trials);
    /* a larger one against a greedy bound: the optimum is never worse */
    enum { N = 40, M = 60 };
    static float cost[N * M];
    for (int i = 0; i < N * M; i++) cost[i] = tsr_rng_uniform(&r);
    double *sc = malloc(sizeof(double) * tsr_hungarian_scratch(N, M));
    int32_t a[N];
    double opt = tsr_hungarian(a, cost, N, M, sc), greedy = 0;
    int used[M] = {0};
    for (int i = 0; i < N; i++) {
        int bj = -1;
        for (int j = 0; j < M; j++)
            if (!used[j] && (bj < 0 || cost[i * M + j] < cost[i * M + bj])) bj = j;
        used[bj] = 1, greedy += cost[i * M + bj];
    }
    TU_CHECK(opt <= greedy + 1e-9, "hungarian 40x60: %.4f > greedy %.4f", opt, greedy);
    free(sc);
}

/* ---- gradient checks through the tape */
static tsr_tensor *gc_giou(tsr_ctx *c, tsr_tensor **in, void *ud) {
    (void)ud;
    return tsr_giou(c, in[0], in[1]);
}
static tsr_tensor *gc_con(tsr_ctx *c, tsr_tensor **in, void *ud) {
    (void)ud;
    return tsr_contrastive_logits(c, in[0], in[1], in[2], in[3]);
}

static void test_giou(const tref *r) {
    const tref_entry *a = tref_get(r, "giou.a"), *b = tref_get(r, "giou.b");
    int N = (int)a->shape[0];
    float y[64], yr[64];
    tsr_giou_fwd(y, a->data, b->data, N);
    tsr_giou_fwd_ref(yr, a->data, b->data, N);
    tu_close("giou fwd vs ref", y, yr, N, 1e-6, 1e-5);
    tu_close_ref(r, "giou.y", y, N, 1e-6, 1e-5);
    float ga[256] = {0}, gb[256] = {0};
    tsr_giou_bwd(ga, gb, tref_get(r, "giou.gy")->data, a->data, b->data, N);
    tu_close_ref(r, "giou.ga", ga, 4 * N, 1e-5, 1e-4);
    tu_close_ref(r, "giou.gb", gb, 4 * N, 1e-5, 1e-4);
    /* pairwise equals the matched-pair kernel on the diagonal */
    float *pw = malloc(sizeof(float) * N * N);
    tsr_giou_pairwise(pw, a->data, b->data, N, N);
    float diag[64];
    for (int i = 0; i < N; i++) diag[i] = pw[i * N + i];
    tu_close("giou pairwise diagonal", diag, y, N, 0, 0);
    free(pw);
    float av[96], bv[96];
    memcpy(av, a->data, sizeof(float) * 4 * N);
    memcpy(bv, b->data, sizeof(float) * 4 * N);
    /* step 2e-4: pair 7 has two corners 6e-4 apart, and a wider step would
     * straddle the max() kink there */
    gc_input in[2] = {{TSR_F32, 2, {N, 4}, av, true}, {TSR_F32, 2, {N, 4}, bv, true}};
    TU_CHECK(tu_gradcheck("giou", gc_giou, NULL, 2, in, 2e-4, 2e-3, 1e-2, 96), "giou gradcheck");
}

static void test_vfl(const tref *r) {
    const tref_entry *x = tref_get(r, "vfl.x"), *q = tref_get(r, "vfl.q"), *pos = tref_get(r, "vfl.pos");
    int64_t n = x->numel;
    float l = (float)tsr_vfl_fwd(x->data, x->data, q->data, pos->data, n, 0.75f, 2.f);
    float lr = (float)tsr_vfl_fwd_ref(x->data, x->data, q->data, pos->data, n, 0.75f, 2.f);
    tu_close("vfl fwd vs ref", &l, &lr, 1, 1e-5, 1e-5);
    tu_close_ref(r, "vfl.loss", &l, 1, 1e-5, 1e-5);
    float *gx = calloc((size_t)n, sizeof(float));
    tsr_vfl_bwd(gx, 1.f, x->data, q->data, pos->data, n, 0.75f, 2.f);
    tu_close_ref(r, "vfl.gx", gx, n, 1e-6, 1e-5);
    /* finite differences of the loss with the weight held at x (detached) */
    float *xp = malloc(sizeof(float) * n), *fd = malloc(sizeof(float) * n);
    memcpy(xp, x->data, sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) {
        float v = xp[i];
        xp[i] = v + 1e-3f;
        double lp = tsr_vfl_fwd_ref(xp, x->data, q->data, pos->data, n, 0.75f, 2.f);
        xp[i] = v - 1e-3f;
        double lm = tsr_vfl_fwd_ref(xp, x->data, q->data, pos->data, n, 0.75f, 2.f);
        xp[i] = v;
        fd[i] = (float)((lp - lm) / 2e-3);
    }
    tu_close("vfl grad vs finite differences", gx, fd, n, 1e-3, 1e-2);
    /* through the tape */
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 16);
    c.grad_enabled = true;
    tsr_tensor *xt = tref_tensor(&c, r, "vfl.x", true), *qt = tref_tensor(&c, r, "vfl.q", false);
    tsr_tensor *pt = tref_tensor(&c, r, "vfl.pos", false);
    tsr_tensor *lt = tsr_varifocal(&c, xt, qt, pt, 0.75f, 2.f);
    tsr_backward(&c, lt);
    tu_close_ref(r, "vfl.loss", tsr_f32(lt), 1, 1e-5, 1e-5);
    tu_close_ref(r, "vfl.gx", tsr_grad(&c, xt), n, 1e-6, 1e-5);
    tsr_ctx_free(&c);
    free(gx), free(xp), free(fd);
}

static void test_contrast(const tref *r) {
    const tref_entry *v = tref_get(r, "con.v"), *t = tref_get(r, "con.t");
    int N = (int)v->shape[0], K = (int)t->shape[0], D = (int)v->shape[1];
    float s = ((float *)tref_get(r, "con.s")->data)[0], b = ((float *)tref_get(r, "con.b")->data)[0];
    float y[64], yr[64];
    tsr_contrast_fwd_ref(yr, v->data, t->data, s, b, N, K, D);
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 16);
    c.grad_enabled = true;
    tsr_tensor *vt = tref_tensor(&c, r, "con.v", true), *tt = tref_tensor(&c, r, "con.t", true);
    tsr_tensor *st = tref_tensor(&c, r, "con.s", true), *bt = tref_tensor(&c, r, "con.b", true);
    tsr_tensor *o = tsr_contrastive_logits(&c, vt, tt, st, bt);
    memcpy(y, tsr_f32(o), sizeof(float) * N * K);
    tu_close("contrast fwd vs ref", y, yr, N * K, 1e-5, 1e-5);
    tu_close_ref(r, "con.y", y, N * K, 1e-5, 1e-5);
    tsr_backward_with(&c, o, tref_get(r, "con.gy")->data);
    tu_close_ref(r, "con.gv", tsr_grad(&c, vt), vt->numel, 1e-5, 1e-4);
    tu_close_ref(r, "con.gt", tsr_grad(&c, tt), tt->numel, 1e-5, 1e-4);
    tu_close_ref(r, "con.gs", tsr_grad(&c, st), 1, 1e-4, 1e-4);
    tu_close_ref(r, "con.gb", tsr_grad(&c, bt), 1, 1e-4, 1e-4);
    tsr_ctx_free(&c);
    float vv[160], tv[96], sv[1] = {s}, bv[1] = {b};
    memcpy(vv, v->data, sizeof(float) * N * D);
    memcpy(tv, t->data, sizeof(float) * K * D);
    gc_input in[4] = {{TSR_F32, 2, {N, D}, vv, true}, {TSR_F32, 2, {K, D}, tv, true},
                      {TSR_F32, 1, {1}, sv, true}, {TSR_F32, 1, {1}, bv, true}};
    TU_CHECK(tu_gradcheck("contrastive head", gc_con, NULL, 4, in, 1e-3, 1e-3, 1e-2, 64), "contrast gradcheck");
}

static tsr_tensor *gc_max(tsr_ctx *c, tsr_tensor **in, void *ud) {
    (void)ud;
    return tsr_rowmax(c, in[0]);
}

static void test_rowmax(const tref *r) {
    const tref_entry *x = tref_get(r, "max.x");
    float y[16], yr[16];
    tsr_rowmax_fwd_ref(yr, x->data, 15, 7);
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 16);
    c.grad_enabled = true;
    tsr_tensor *xt = tref_tensor(&c, r, "max.x", true), *o = tsr_rowmax(&c, xt);
    TU_CHECK(o->ndim == 3 && o->shape[2] == 1, "rowmax keeps the dim");
    memcpy(y, tsr_f32(o), sizeof(float) * 15);
    tu_close("rowmax fwd vs ref", y, yr, 15, 0, 0);
    tu_close_ref(r, "max.y", y, 15, 0, 0);
    tsr_backward_with(&c, o, tref_get(r, "max.gy")->data);
    tu_close_ref(r, "max.gx", tsr_grad(&c, xt), xt->numel, 0, 0);
    tsr_ctx_free(&c);
    float xv[105];
    memcpy(xv, x->data, sizeof xv);
    gc_input in = {TSR_F32, 3, {3, 5, 7}, xv, true};
    TU_CHECK(tu_gradcheck("rowmax", gc_max, NULL, 1, &in, 1e-3, 1e-3, 1e-2, 105), "rowmax gradcheck");
}

int main(void) {
    test_hungarian();
    tref *r = tref_load("tests/refs/det.tref");
    test_giou(r);
    test_vfl(r);
    test_contrast(r);
    test_rowmax(r);
    tref_free(r);
    return tu_finish("ops_det");
}
