/* Tests for src/ops/elem.c: broadcasting binary ops, scalar ops, sum/mean.
 * Tolerances
 * - fast binary kernel vs naive twin: exact (same float op per element);
 *   accumulate mode atol/rtol 1e-6, since compilers may fuse o += a*b.
 * - fast reduce vs naive twin (double sums): atol 1e-5 rtol 1e-5.
 * - forward and grads vs PyTorch (tests/refs/elem.tref): atol 1e-6
 *   rtol 1e-5; grads reduced over a broadcast dim sum <= 24 terms in a
 *   different order than torch, so those use atol 1e-5.
 * - gradcheck: eps 1e-2, atol 1e-3, rtol 1e-2 (add/sub/sum/mean are
 *   linear; mul is bilinear; div inputs keep |b| >= 0.5 so the third
 *   derivative term stays below 1e-3). */
#include "testutil.h"
#include "tessera/ops.h"

#include <math.h>
#include <string.h>

typedef struct {
    tsr_binop op;
    int dim;
    bool keepdim, mean, all;
    float s;
} elem_args;

static tsr_tensor *bin_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    const elem_args *a = ud;
    switch (a->op) {
    case TSR_BIN_ADD: return tsr_add(c, in[0], in[1]);
    case TSR_BIN_SUB: return tsr_sub(c, in[0], in[1]);
    case TSR_BIN_MUL: return tsr_mul(c, in[0], in[1]);
    default: return tsr_div(c, in[0], in[1]);
    }
}
static tsr_tensor *scale_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    return tsr_scale(c, in[0], ((const elem_args *)ud)->s);
}
static tsr_tensor *adds_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    return tsr_add_scalar(c, in[0], ((const elem_args *)ud)->s);
}
static tsr_tensor *red_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    const elem_args *a = ud;
    if (a->all) return a->mean ? tsr_mean_all(c, in[0]) : tsr_sum_all(c, in[0]);
    return a->mean ? tsr_mean(c, in[0], a->dim, a->keepdim) : tsr_sum(c, in[0], a->dim, a->keepdim);
}
/* x*x: both grads land in one buffer */
static tsr_tensor *square_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    (void)ud;
    return tsr_mul(c, in[0], in[0]);
}

/* forward output and every f32 input grad against a fixture: inputs are
 * <prefix>a, <prefix>b ...; outputs <prefix>y, grads <prefix>ga ... */
static void fixture(tsr_ctx *c, const tref *r, const char *prefix, int n_in, gc_fn fn, void *ud,
                    double atol_y, double atol_g, double rtol) {
    char k[160];
    tsr_tensor *in[8];
    tsr_ctx_reset(c);
    for (int i = 0; i < n_in; i++) {
        snprintf(k, sizeof k, "%s%c", prefix, 'a' + i);
        in[i] = tref_tensor(c, r, k, true);
    }
    tsr_tensor *y = fn(c, in, ud);
    snprintf(k, sizeof k, "%sy", prefix);
    const tref_entry *ey = tref_get(r, k);
    TU_CHECK(ey->ndim == y->ndim, "%s: ndim %d, torch %d", k, y->ndim, ey->ndim);
    for (int i = 0; i < y->ndim && i < ey->ndim; i++)
        TU_CHECK(ey->shape[i] == y->shape[i], "%s: dim %d is %lld, torch %lld", k, i,
                 (long long)y->shape[i], (long long)ey->shape[i]);
    tu_close_ref(r, k, tsr_f32(y), y->numel, atol_y, rtol);
    snprintf(k, sizeof k, "%sgy", prefix);
    tsr_backward_with(c, y, tref_get(r, k)->data);
    for (int i = 0; i < n_in; i++) {
        if (in[i]->dtype != TSR_F32) continue;
        snprintf(k, sizeof k, "%sg%c", prefix, 'a' + i);
        TU_CHECK(in[i]->grad != NULL, "%s: no grad", k);
        if (in[i]->grad) tu_close_ref(r, k, in[i]->grad, in[i]->numel, atol_g, rtol);
    }
}

static uint64_t g_seed = 1;

/* random pair of broadcast-compatible shapes */
static void rand_shapes(tsr_rng *rng, int *nda, int64_t *sa, int *ndb, int64_t *sb) {
    int nd = 1 + (int)tsr_rng_below(rng, 4);
    int64_t full[4];
    for (int i = 0; i < nd; i++) full[i] = 1 + tsr_rng_below(rng, 6);
    *nda = nd - (int)tsr_rng_below(rng, (uint32_t)nd + 1);
    *ndb = nd - (int)tsr_rng_below(rng, (uint32_t)nd + 1);
    if (tsr_rng_below(rng, 2)) *nda = nd;
    else *ndb = nd;
    for (int i = 0; i < *nda; i++) sa[i] = tsr_rng_below(rng, 3) ? full[nd - *nda + i] : 1;
    for (int i = 0; i < *ndb; i++) sb[i] = tsr_rng_below(rng, 3) ? full[nd - *ndb + i] : 1;
}

static void check_binary_kernel(const char *what, int nda, const int64_t *sa, int ndb, const int64_t *sb) {
    int64_t na = tsr_shape_numel(nda, sa), nb = tsr_shape_numel(ndb, sb), no = 1;
    int nd = nda > ndb ? nda : ndb;
    for (int i = 0; i < nd; i++) {
        int64_t da = i < nd - nda ? 1 : sa[i - (nd - nda)], db = i < nd - ndb ? 1 : sb[i - (nd - ndb)];
        no *= da == 1 ? db : da;
    }
    float *a = malloc(4 * (size_t)na), *b = malloc(4 * (size_t)nb);
    float *o = malloc(4 * (size_t)no), *r = malloc(4 * (size_t)no);
    tu_randn(a, na, g_seed++, 1);
    tu_randn(b, nb, g_seed++, 1);
    for (int64_t i = 0; i < nb; i++) b[i] = b[i] < 0 ? b[i] - 0.5f : b[i] + 0.5f;
    for (int op = 0; op < TSR_BIN_COUNT; op++)
        for (int acc = 0; acc < 2; acc++) {
            tu_randn(o, no, 5, 1);
            memcpy(r, o, 4 * (size_t)no);
            tsr_binary_fwd(o, a, b, (tsr_binop)op, acc, nda, sa, ndb, sb);
            tsr_binary_ref(r, a, b, (tsr_binop)op, acc, nda, sa, ndb, sb);
            char w[96];
            snprintf(w, sizeof w, "%s op %d acc %d", what, op, acc);
            /* acc may fuse o + a*b into one FMA (clang contracts it) */
            tu_close(w, o, r, no, acc ? 1e-6 : 0, acc ? 1e-6 : 0);
        }
    free(a), free(b), free(o), free(r);
}

static void check_reduce_kernel(const char *what, int ndo, const int64_t *so, int ndi, const int64_t *si) {
    int64_t no = tsr_shape_numel(ndo, so), ni = tsr_shape_numel(ndi, si);
    float *g = malloc(4 * (size_t)no), *d = malloc(4 * (size_t)ni), *r = malloc(4 * (size_t)ni);
    tu_randn(g, no, g_seed++, 1);
    tu_randn(d, ni, g_seed++, 1);
    memcpy(r, d, 4 * (size_t)ni);
    tsr_reduce_acc(d, g, 0.5f, ndo, so, ndi, si);
    tsr_reduce_acc_ref(r, g, 0.5f, ndo, so, ndi, si);
    tu_close(what, d, r, ni, 1e-5, 1e-5);
    /* same bits with one thread */
    float *d1 = malloc(4 * (size_t)ni);
    tu_randn(d1, ni, g_seed - 1, 1);
    tsr_threads_set(1);
    tsr_reduce_acc(d1, g, 0.5f, ndo, so, ndi, si);
    tsr_threads_set(0);
    TU_CHECK(memcmp(d, d1, 4 * (size_t)ni) == 0, "%s: 1 and 2 threads differ", what);
    free(g), free(d), free(r), free(d1);
}

int main(void) {
    tsr_threads_set(0);
    tsr_rng rng;
    tsr_rng_seed(&rng, 11);

    /* ---- kernels vs naive twins */
    for (int t = 0; t < 300; t++) {
        int nda, ndb;
        int64_t sa[4], sb[4];
        rand_shapes(&rng, &nda, sa, &ndb, sb);
        check_binary_kernel("binary random", nda, sa, ndb, sb);
        /* reduce from the broadcast shape onto each input */
        int64_t so[4];
        int nd = nda > ndb ? nda : ndb;
        for (int i = 0; i < nd; i++) {
            int64_t da = i < nd - nda ? 1 : sa[i - (nd - nda)], db = i < nd - ndb ? 1 : sb[i - (nd - ndb)];
            so[i] = da == 1 ? db : da;
        }
        check_reduce_kernel("reduce random a", nd, so, nda, sa);
        check_reduce_kernel("reduce random b", nd, so, ndb, sb);
    }
    /* large enough for the threaded paths and long-row tiling */
    check_binary_kernel("binary bias", 3, TSR_SHAPE(64, 33, 40), 1, TSR_SHAPE(40));
    check_binary_kernel("binary same", 2, TSR_SHAPE(70, 999), 2, TSR_SHAPE(70, 999));
    check_binary_kernel("binary outer", 3, TSR_SHAPE(64, 1, 40), 3, TSR_SHAPE(64, 33, 1));
    check_binary_kernel("binary row", 2, TSR_SHAPE(3, 20000), 2, TSR_SHAPE(3, 1));
    check_reduce_kernel("reduce bias", 2, TSR_SHAPE(160, 300), 1, TSR_SHAPE(300));
    check_reduce_kernel("reduce rows", 2, TSR_SHAPE(200, 200), 2, TSR_SHAPE(200, 1));
    check_reduce_kernel("reduce mid", 3, TSR_SHAPE(4, 64, 130), 3, TSR_SHAPE(4, 1, 130));
    check_reduce_kernel("reduce all", 2, TSR_SHAPE(40, 1000), 0, NULL);
    check_reduce_kernel("reduce alt", 4, TSR_SHAPE(6, 7, 8, 120), 4, TSR_SHAPE(6, 1, 8, 1));

    /* ---- gradchecks */
    static const int64_t gc_shapes[][2][4] = {
        {{2, 3, 4}, {4}}, {{2, 1, 4}, {1, 3, 1}}, {{3, 4}, {3, 4}}, {{4}, {2, 3, 4}}, {{2, 3, 4}, {2, 1, 4}}};
    static const int gc_nd[][2] = {{3, 1}, {3, 3}, {2, 2}, {1, 3}, {3, 3}};
    for (int op = 0; op < TSR_BIN_COUNT; op++)
        for (int k = 0; k < 5; k++) {
            float a[24], b[24];
            tu_randn(a, 24, 20 + k, 1);
            tu_randn(b, 24, 30 + k, 1);
            for (int i = 0; i < 24; i++) b[i] = b[i] < 0 ? b[i] - 0.5f : b[i] + 0.5f;
            gc_input in[2] = {{TSR_F32, gc_nd[k][0], {0}, a, true}, {TSR_F32, gc_nd[k][1], {0}, b, true}};
            memcpy(in[0].shape, gc_shapes[k][0], sizeof in[0].shape);
            memcpy(in[1].shape, gc_shapes[k][1], sizeof in[1].shape);
            elem_args ea = {.op = (tsr_binop)op};
            char nm[64];
            snprintf(nm, sizeof nm, "binary op %d case %d", op, k);
            tu_gradcheck(nm, bin_fn, &ea, 2, in, 1e-2, 1e-3, 1e-2, 1000);
            /* only one side needs grad */
            in[0].check = false;
            tu_gradcheck(nm, bin_fn, &ea, 2, in, 1e-2, 1e-3, 1e-2, 1000);
            in[0].check = true, in[1].check = false;
            tu_gradcheck(nm, bin_fn, &ea, 2, in, 1e-2, 1e-3, 1e-2, 1000);
        }
    {
        float x[15];
        tu_randn(x, 15, 40, 1);
        gc_input in[1] = {{TSR_F32, 2, {3, 5}, x, true}};
        elem_args ea = {.s = 0.75f};
        tu_gradcheck("scale", scale_fn, &ea, 1, in, 1e-2, 1e-3, 1e-2, 1000);
        ea.s = -1.25f;
        tu_gradcheck("add_scalar", adds_fn, &ea, 1, in, 1e-2, 1e-3, 1e-2, 1000);
        tu_gradcheck("x*x", square_fn, NULL, 1, in, 1e-2, 1e-3, 1e-2, 1000);
    }
    {
        float x[120];
        tu_randn(x, 120, 41, 1);
        gc_input in[1] = {{TSR_F32, 4, {2, 3, 4, 5}, x, true}};
        for (int dim = -4; dim < 4; dim++)
            for (int m = 0; m < 4; m++) {
                elem_args ea = {.dim = dim, .keepdim = m & 1, .mean = m >> 1};
                tu_gradcheck("sum/mean dim", red_fn, &ea, 1, in, 1e-2, 1e-3, 1e-2, 1000);
            }
        elem_args ea = {.all = true};
        tu_gradcheck("sum_all", red_fn, &ea, 1, in, 1e-2, 1e-3, 1e-2, 1000);
        ea.mean = true;
        tu_gradcheck("mean_all", red_fn, &ea, 1, in, 1e-2, 1e-3, 1e-2, 1000);
    }

    /* ---- PyTorch fixtures */
    tref *r = tref_load("tests/refs/elem.tref");
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    static const char *opn[] = {"add", "sub", "mul", "div"};
    for (int op = 0; op < TSR_BIN_COUNT; op++)
        for (int k = 0; k < 7; k++) {
            char p[32];
            snprintf(p, sizeof p, "%s%d_", opn[op], k);
            elem_args ea = {.op = (tsr_binop)op};
            fixture(&c, r, p, 2, bin_fn, &ea, 1e-6, 1e-5, 1e-5);
        }
    elem_args ea = {.s = 0.75f};
    fixture(&c, r, "scale_", 1, scale_fn, &ea, 1e-6, 1e-6, 1e-5);
    ea.s = -1.25f;
    fixture(&c, r, "adds_", 1, adds_fn, &ea, 1e-6, 1e-6, 1e-5);
    static const int dims[] = {0, 1, 2, -1, -3};
    for (int i = 0; i < 5; i++)
        for (int kd = 0; kd < 2; kd++)
            for (int m = 0; m < 2; m++) {
                char p[48];
                snprintf(p, sizeof p, "%s_d%d_k%d_", m ? "mean" : "sum", dims[i], kd);
                elem_args e2 = {.dim = dims[i], .keepdim = kd, .mean = m};
                fixture(&c, r, p, 1, red_fn, &e2, 1e-5, 1e-6, 1e-5);
            }
    elem_args e4 = {.dim = 2};
    fixture(&c, r, "sum4_", 1, red_fn, &e4, 1e-5, 1e-6, 1e-5);
    e4 = (elem_args){.dim = -1, .keepdim = true, .mean = true};
    fixture(&c, r, "mean4_", 1, red_fn, &e4, 1e-5, 1e-6, 1e-5);
    e4 = (elem_args){.all = true};
    fixture(&c, r, "sumall_", 1, red_fn, &e4, 1e-5, 1e-6, 1e-5);
    e4.mean = true;
    fixture(&c, r, "meanall_", 1, red_fn, &e4, 1e-5, 1e-6, 1e-5);
    e4 = (elem_args){.dim = 0};
    fixture(&c, r, "sum1d_", 1, red_fn, &e4, 1e-5, 1e-6, 1e-5);

    /* sum_all and a 1-D sum give 0-dim tensors, as torch */
    tsr_ctx_reset(&c);
    tsr_tensor *v = tsr_zeros(&c, TSR_F32, TSR_DIMS(7));
    TU_CHECK(tsr_sum(&c, v, 0, false)->ndim == 0, "1-D sum keeps a dim");
    TU_CHECK(tsr_sum(&c, v, -1, true)->ndim == 1, "keepdim dropped the dim");
    TU_CHECK(tsr_mean_all(&c, v)->numel == 1, "mean_all numel");

    tsr_ctx_free(&c);
    tref_free(r);
    return tu_finish("ops_elem");
}
