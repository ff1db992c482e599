/* Tests for src/ops/shape.c: reshape, transpose/permute, slice, concat,
 * split, embedding, index_select, gather.
 * Tolerances
 * - fast permute / embedding backward vs naive twins: exact (bitwise; the
 *   embedding sums run in the same row order), also across thread counts.
 * - forward vs PyTorch (tests/refs/elem_shape.tref): exact copies, checked
 *   with atol 0; grads atol 1e-6 rtol 1e-6 (scatter-adds of <= 4 terms).
 * - gradcheck: eps 1e-2, atol 1e-3, rtol 1e-2 (all ops are linear).
 * - i32/u8 paths: exact against the f32 path on the same values. */
#include "testutil.h"
#include "tessera/ops.h"

#include <string.h>

typedef struct {
    int kind;
    int d0, d1;
    int perm[4];
    int64_t start, end;
    int n;
    int64_t sizes[4];
} shape_args;

enum { K_RESHAPE, K_TRANSPOSE, K_PERMUTE, K_SLICE, K_CONCAT, K_SPLIT, K_EMB, K_ISEL, K_GATHER };

static tsr_tensor *shape_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    const shape_args *a = ud;
    switch (a->kind) {
    case K_RESHAPE: return tsr_reshape(c, in[0], 2, TSR_SHAPE(4, -1));
    case K_TRANSPOSE: return tsr_transpose(c, in[0], a->d0, a->d1);
    case K_PERMUTE: return tsr_permute(c, in[0], a->perm);
    case K_SLICE: return tsr_slice(c, in[0], a->d0, a->start, a->end);
    case K_CONCAT: return tsr_concat(c, in, a->n, a->d0);
    case K_SPLIT: {
        /* reassemble in another order so every piece reaches the output */
        tsr_tensor *o[4], *re[4];
        tsr_split(c, in[0], a->d0, a->sizes, a->n, o);
        for (int i = 0; i < a->n; i++) re[i] = o[a->n - 1 - i];
        return tsr_concat(c, re, a->n, a->d0);
    }
    case K_EMB: return tsr_embedding(c, in[0], in[1]);
    case K_ISEL: return tsr_index_select(c, in[0], a->d0, in[1]);
    default: return tsr_gather(c, in[0], a->d0, in[1]);
    }
}

static void fixture(tsr_ctx *c, const tref *r, const char *prefix, int n_in, shape_args *a) {
    char k[160];
    tsr_tensor *in[8];
    tsr_ctx_reset(c);
    for (int i = 0; i < n_in; i++) {
        snprintf(k, sizeof k, "%s%c", prefix, 'a' + i);
        in[i] = tref_tensor(c, r, k, true);
    }
    tsr_tensor *y = shape_fn(c, in, a);
    snprintf(k, sizeof k, "%sy", prefix);
    const tref_entry *ey = tref_get(r, k);
    TU_CHECK(ey->ndim == y->ndim, "%s: ndim %d, torch %d", k, y->ndim, ey->ndim);
    for (int i = 0; i < y->ndim && i < ey->ndim; i++)
        TU_CHECK(ey->shape[i] == y->shape[i], "%s: dim %d is %lld, torch %lld", k, i,
                 (long long)y->shape[i], (long long)ey->shape[i]);
    tu_close_ref(r, k, tsr_f32(y), y->numel, 0, 0);
    snprintf(k, sizeof k, "%sgy", prefix);
    tsr_backward_with(c, y, tref_get(r, k)->data);
    for (int i = 0; i < n_in; i++) {
        if (in[i]->dtype != TSR_F32) continue;
        snprintf(k, sizeof k, "%sg%c", prefix, 'a' + i);
        TU_CHECK(in[i]->grad != NULL, "%s: no grad", k);
        if (in[i]->grad) tu_close_ref(r, k, in[i]->grad, in[i]->numel, 1e-6, 1e-6);
    }
}

/* run the op on f32, i32 and u8 copies of the same small integers */
static void check_int_paths(const char *what, shape_args *a, int n_in, const int64_t shapes[][4],
                            const int *nds) {
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    tsr_tensor *f[4], *i32[4], *u8[4];
    for (int i = 0; i < n_in; i++) {
        f[i] = tsr_new(&c, TSR_F32, nds[i], shapes[i]);
        i32[i] = tsr_new(&c, TSR_I32, nds[i], shapes[i]);
        u8[i] = tsr_new(&c, TSR_U8, nds[i], shapes[i]);
        for (int64_t j = 0; j < f[i]->numel; j++) {
            int v = (int)((j * 7 + i * 50) % 251);
            tsr_f32(f[i])[j] = (float)v;
            tsr_i32(i32[i])[j] = v;
            tsr_u8(u8[i])[j] = (uint8_t)v;
        }
    }
    tsr_tensor *yf = shape_fn(&c, f, a), *yi = shape_fn(&c, i32, a), *yu = shape_fn(&c, u8, a);
    TU_CHECK(yi->dtype == TSR_I32 && yu->dtype == TSR_U8, "%s: dtype changed", what);
    TU_CHECK(tsr_same_shape(yf, yi) && tsr_same_shape(yf, yu), "%s: int shapes differ", what);
    bool ok = true;
    for (int64_t j = 0; j < yf->numel && ok; j++)
        ok = tsr_f32(yf)[j] == (float)tsr_i32(yi)[j] && tsr_f32(yf)[j] == (float)tsr_u8(yu)[j];
    TU_CHECK(ok, "%s: i32/u8 values differ from f32", what);
    tsr_ctx_free(&c);
}

static void check_permute_kernel(tsr_rng *rng, int nd, const int64_t *shape, const int *perm) {
    int64_t n = tsr_shape_numel(nd, shape);
    static const size_t es[] = {1, 2, 4, 8};
    unsigned char *in = malloc((size_t)n * 8), *o = malloc((size_t)n * 8), *r = malloc((size_t)n * 8);
    for (int64_t i = 0; i < n * 8; i++) in[i] = (unsigned char)tsr_rng_u64(rng);
    for (int k = 0; k < 4; k++) {
        memset(o, 0, (size_t)n * 8);
        memset(r, 0, (size_t)n * 8);
        tsr_permute_fwd(o, in, es[k], false, nd, shape, perm);
        tsr_permute_ref(r, in, es[k], false, nd, shape, perm);
        TU_CHECK(memcmp(o, r, (size_t)n * es[k]) == 0, "permute esize %zu differs from ref", es[k]);
    }
    float *fi = malloc((size_t)n * 4), *fo = malloc((size_t)n * 4), *fr = malloc((size_t)n * 4);
    tu_randn(fi, n, 3, 1);
    tu_randn(fo, n, 4, 1);
    memcpy(fr, fo, (size_t)n * 4);
    tsr_permute_fwd(fo, fi, 4, true, nd, shape, perm);
    tsr_permute_ref(fr, fi, 4, true, nd, shape, perm);
    TU_CHECK(memcmp(fo, fr, (size_t)n * 4) == 0, "permute acc differs from ref");
    free(in), free(o), free(r), free(fi), free(fo), free(fr);
}

int main(void) {
    tsr_threads_set(0);
    tsr_rng rng;
    tsr_rng_seed(&rng, 5);

    /* ---- permute kernel vs naive twin: random shapes and perms */
    for (int t = 0; t < 200; t++) {
        int nd = 1 + (int)tsr_rng_below(&rng, 4), perm[4] = {0, 1, 2, 3};
        int64_t sh[4];
        for (int i = 0; i < nd; i++) sh[i] = 1 + tsr_rng_below(&rng, 5);
        for (int i = nd - 1; i > 0; i--) {
            int j = (int)tsr_rng_below(&rng, (uint32_t)i + 1), x = perm[i];
            perm[i] = perm[j], perm[j] = x;
        }
        check_permute_kernel(&rng, nd, sh, perm);
    }
    check_permute_kernel(&rng, 4, TSR_SHAPE(4, 64, 6, 32), (const int[]){0, 2, 1, 3});
    check_permute_kernel(&rng, 2, TSR_SHAPE(300, 257), (const int[]){1, 0});

    /* ---- embedding backward vs naive twin, threaded and single */
    {
        int64_t N = 2048, C = 100, V = 50;
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)N);
        for (int64_t i = 0; i < N; i++) ids[i] = (int32_t)tsr_rng_below(&rng, (uint32_t)V);
        float *go = malloc(4 * (size_t)(N * C)), *g2 = calloc((size_t)(V * C), 4), *g1 = calloc((size_t)(V * C), 4),
              *gr = calloc((size_t)(V * C), 4);
        tu_randn(go, N * C, 9, 1);
        tsr_embedding_bwd(g2, go, ids, N, C);
        tsr_threads_set(1);
        tsr_embedding_bwd(g1, go, ids, N, C);
        tsr_threads_set(0);
        tsr_embedding_bwd_ref(gr, go, ids, N, C);
        TU_CHECK(memcmp(g2, gr, 4 * (size_t)(V * C)) == 0, "embedding bwd differs from ref");
        TU_CHECK(memcmp(g1, g2, 4 * (size_t)(V * C)) == 0, "embedding bwd depends on threads");
        free(ids), free(go), free(g2), free(g1), free(gr);
    }

    /* ---- gradchecks (linear ops) */
    float x[120], y[120], z[120];
    tu_randn(x, 120, 1, 1);
    tu_randn(y, 120, 2, 1);
    tu_randn(z, 120, 3, 1);
    {
        gc_input in[1] = {{TSR_F32, 3, {2, 3, 4}, x, true}};
        shape_args a = {.kind = K_RESHAPE};
        tu_gradcheck("reshape", shape_fn, &a, 1, in, 1e-2, 1e-3, 1e-2, 1000);
        gc_input in4[1] = {{TSR_F32, 4, {2, 3, 4, 5}, x, true}};
        a = (shape_args){.kind = K_TRANSPOSE, .d0 = 1, .d1 = -1};
        tu_gradcheck("transpose", shape_fn, &a, 1, in4, 1e-2, 1e-3, 1e-2, 1000);
        a = (shape_args){.kind = K_PERMUTE, .perm = {3, 1, 0, 2}};
        tu_gradcheck("permute", shape_fn, &a, 1, in4, 1e-2, 1e-3, 1e-2, 1000);
        a = (shape_args){.kind = K_SLICE, .d0 = 2, .start = 1, .end = -1};
        tu_gradcheck("slice", shape_fn, &a, 1, in4, 1e-2, 1e-3, 1e-2, 1000);
        a = (shape_args){.kind = K_SPLIT, .d0 = -1, .n = 3, .sizes = {2, 0, 3}};
        tu_gradcheck("split", shape_fn, &a, 1, in4, 1e-2, 1e-3, 1e-2, 1000);
        gc_input cin[3] = {{TSR_F32, 3, {2, 1, 3}, x, true}, {TSR_F32, 3, {2, 4, 3}, y, false},
                           {TSR_F32, 3, {2, 2, 3}, z, true}};
        a = (shape_args){.kind = K_CONCAT, .d0 = 1, .n = 3};
        tu_gradcheck("concat", shape_fn, &a, 3, cin, 1e-2, 1e-3, 1e-2, 1000);
        int32_t ids[6] = {3, 1, 3, 0, 4, 3};
        gc_input ein[2] = {{TSR_F32, 2, {5, 4}, x, true}, {TSR_I32, 2, {2, 3}, ids, false}};
        a = (shape_args){.kind = K_EMB};
        tu_gradcheck("embedding", shape_fn, &a, 2, ein, 1e-2, 1e-3, 1e-2, 1000);
        int32_t six[4] = {2, 0, 2, 1};
        gc_input sin[2] = {{TSR_F32, 3, {2, 3, 4}, x, true}, {TSR_I32, 1, {4}, six, false}};
        a = (shape_args){.kind = K_ISEL, .d0 = 1};
        tu_gradcheck("index_select", shape_fn, &a, 2, sin, 1e-2, 1e-3, 1e-2, 1000);
        int32_t gix[12] = {0, 2, 2, 1, 1, 1, 0, 2, 0, 0, 1, 2};
        gc_input gin[2] = {{TSR_F32, 3, {2, 3, 4}, x, true}, {TSR_I32, 3, {2, 2, 3}, gix, false}};
        a = (shape_args){.kind = K_GATHER, .d0 = 1};
        tu_gradcheck("gather", shape_fn, &a, 2, gin, 1e-2, 1e-3, 1e-2, 1000);
    }

    /* ---- PyTorch fixtures */
    tref *r = tref_load("tests/refs/elem_shape.tref");
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    shape_args a = {.kind = K_RESHAPE};
    fixture(&c, r, "reshape_", 1, &a);
    a = (shape_args){.kind = K_TRANSPOSE, .d0 = 1, .d1 = -1};
    fixture(&c, r, "tr0_", 1, &a);
    a = (shape_args){.kind = K_TRANSPOSE, .d0 = 0, .d1 = 1};
    fixture(&c, r, "tr1_", 1, &a);
    static const int perms[4][4] = {{0, 2, 1, 3}, {3, 1, 0, 2}, {2, 0, 1}, {1, 3, 2, 0}};
    for (int k = 0; k < 4; k++) {
        char p[32];
        snprintf(p, sizeof p, "perm%d_", k);
        a = (shape_args){.kind = K_PERMUTE};
        memcpy(a.perm, perms[k], sizeof a.perm);
        fixture(&c, r, p, 1, &a);
    }
    static const int64_t slices[4][3] = {{1, 1, 4}, {-1, 0, 2}, {0, 2, 4}, {1, -3, 5}};
    for (int k = 0; k < 4; k++) {
        char p[32];
        snprintf(p, sizeof p, "slice%d_", k);
        a = (shape_args){.kind = K_SLICE, .d0 = (int)slices[k][0], .start = slices[k][1], .end = slices[k][2]};
        fixture(&c, r, p, 1, &a);
    }
    static const int cats[3][2] = {{3, 1}, {2, -1}, {2, 0}};
    for (int k = 0; k < 3; k++) {
        char p[32];
        snprintf(p, sizeof p, "cat%d_", k);
        a = (shape_args){.kind = K_CONCAT, .n = cats[k][0], .d0 = cats[k][1]};
        fixture(&c, r, p, cats[k][0], &a);
    }
    {
        /* split: three outputs, each seeded with its own torch grad */
        tsr_ctx_reset(&c);
        tsr_tensor *xs = tref_tensor(&c, r, "split_x", true), *o[3];
        tsr_split(&c, xs, 1, TSR_SHAPE(2, 4, 1), 3, o);
        for (int i = 0; i < 3; i++) {
            char k[32];
            snprintf(k, sizeof k, "split_y%d", i);
            tu_close_ref(r, k, tsr_f32(o[i]), o[i]->numel, 0, 0);
            snprintf(k, sizeof k, "split_gy%d", i);
            if (i > 0) memcpy(tsr_grad(&c, o[i]), tref_get(r, k)->data, 4 * (size_t)o[i]->numel);
        }
        tsr_backward_with(&c, o[0], tref_get(r, "split_gy0")->data);
        tu_close_ref(r, "split_gx", xs->grad, xs->numel, 1e-6, 1e-6);
    }
    a = (shape_args){.kind = K_EMB};
    fixture(&c, r, "emb_", 2, &a);
    static const int isel_dims[3] = {1, 0, -1};
    for (int k = 0; k < 3; k++) {
        char p[32];
        snprintf(p, sizeof p, "isel%d_", k);
        a = (shape_args){.kind = K_ISEL, .d0 = isel_dims[k]};
        fixture(&c, r, p, 2, &a);
    }
    static const int gath_dims[4] = {1, 0, -1, 2};
    for (int k = 0; k < 4; k++) {
        char p[32];
        snprintf(p, sizeof p, "gath%d_", k);
        a = (shape_args){.kind = K_GATHER, .d0 = gath_dims[k]};
        fixture(&c, r, p, 2, &a);
    }

    /* reshape shares storage */
    tsr_ctx_reset(&c);
    tsr_tensor *t = tsr_zeros(&c, TSR_F32, TSR_DIMS(2, 6));
    tsr_tensor *rs = tsr_reshape(&c, t, 3, TSR_SHAPE(-1, 3, 2));
    TU_CHECK(rs->data == t->data && rs->shape[0] == 2 && rs->ndim == 3, "reshape must be a view");

    /* ---- i32 and u8 through the copy ops */
    {
        static const int64_t s1[][4] = {{2, 3, 4, 5}};
        static const int nd1[] = {4};
        a = (shape_args){.kind = K_RESHAPE};
        static const int64_t s0[][4] = {{2, 3, 4}};
        static const int nd0[] = {3};
        check_int_paths("reshape", &a, 1, s0, nd0);
        a = (shape_args){.kind = K_TRANSPOSE, .d0 = 0, .d1 = -2};
        check_int_paths("transpose", &a, 1, s1, nd1);
        a = (shape_args){.kind = K_PERMUTE, .perm = {2, 0, 3, 1}};
        check_int_paths("permute", &a, 1, s1, nd1);
        a = (shape_args){.kind = K_SLICE, .d0 = 3, .start = 1, .end = 4};
        check_int_paths("slice", &a, 1, s1, nd1);
        a = (shape_args){.kind = K_SPLIT, .d0 = 1, .n = 2, .sizes = {1, 2}};
        check_int_paths("split", &a, 1, s1, nd1);
        static const int64_t s3[][4] = {{2, 1, 3}, {2, 4, 3}, {2, 2, 3}};
        static const int nd3[] = {3, 3, 3};
        a = (shape_args){.kind = K_CONCAT, .d0 = -2, .n = 3};
        check_int_paths("concat", &a, 3, s3, nd3);
    }

    tsr_ctx_free(&c);
    tref_free(r);
    return tu_finish("ops_shape");
}
