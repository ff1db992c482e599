/* Tests for narformer's predictor: the new ops (row L2 normalisation,
 * -logsigmoid) against their _ref twins, finite differences and PyTorch;
 * the grouped linear op of the FFN against finite differences (its
 * PyTorch check is the model's, below);
 * the whole model on a tiny config against the PyTorch reference
 * (tools/refs/gen_narformer.py -> tests/refs/narformer.tref): predictions,
 * losses and every gradient, for both heads; save/load round trip; the
 * sparse prediction path against PyTorch and the dense forward. */
#include "testutil.h"
#include "tessera/narformer.h"
#include "tessera/ops.h"
#include "tessera/ops_graph.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

static tsr_tensor *gc_l2(tsr_ctx *c, tsr_tensor **in, void *ud) {
    (void)ud;
    return tsr_l2_normalize(c, in[0], 1e-12f);
}
static tsr_tensor *gc_nls(tsr_ctx *c, tsr_tensor **in, void *ud) {
    (void)ud;
    return tsr_neg_logsigmoid(c, in[0]);
}

static tsr_tensor *gc_glin(tsr_ctx *c, tsr_tensor **in, void *ud) {
    (void)ud;
    return tsr_nf_group_linear(c, in[0], in[1], in[2]);
}

static void test_ops(const tref *r) {
    /* kernels vs naive twins */
    float x[6 * 7], y[6 * 7], y2[6 * 7], nrm[6], dy[6 * 7], dx[6 * 7] = {0}, dx2[6 * 7] = {0};
    tu_randn(x, 42, 1, 1.0f);
    tu_randn(dy, 42, 2, 1.0f);
    tsr_l2norm_fwd(y, nrm, x, 6, 7, 1e-12f);
    tsr_l2norm_fwd_ref(y2, x, 6, 7, 1e-12f);
    tu_close("l2norm fwd vs ref", y, y2, 42, 1e-6, 1e-5);
    tsr_l2norm_bwd(dx, dy, y, nrm, 6, 7, 1e-12f);
    tsr_l2norm_bwd_ref(dx2, dy, x, 6, 7, 1e-12f);
    tu_close("l2norm bwd vs ref", dx, dx2, 42, 1e-5, 1e-4);
    float xs[5] = {-50, -1, 0, 2, 60}, ys[5], ys2[5];
    tsr_neg_logsigmoid_fwd(ys, xs, 5);
    tsr_neg_logsigmoid_fwd_ref(ys2, xs, 5);
    tu_close("neg_logsigmoid fwd vs ref", ys, ys2, 5, 1e-6, 1e-6);
    /* finite differences */
    gc_input in = {TSR_F32, 2, {4, 6}, x, true};
    TU_CHECK(tu_gradcheck("l2_normalize", gc_l2, NULL, 1, &in, 1e-3, 1e-3, 1e-2, 64), "l2 gradcheck");
    float xn[9] = {-6, -2, -0.5f, 0, 0.3f, 1, 2.5f, 4, 7};
    gc_input in2 = {TSR_F32, 1, {9}, xn, true};
    TU_CHECK(tu_gradcheck("neg_logsigmoid", gc_nls, NULL, 1, &in2, 1e-3, 1e-3, 1e-2, 64), "nls gradcheck");
    /* the grouped linear of the FFN: 5 rows, 3 groups of 4 inputs -> 3 outputs */
    float gx[5 * 12], gw[3 * 4 * 3], gb[3 * 3];
    tu_randn(gx, 60, 3, 1.0f);
    tu_randn(gw, 36, 4, 0.5f);
    tu_randn(gb, 9, 5, 0.5f);
    gc_input gin[3] = {{TSR_F32, 2, {5, 12}, gx, true}, {TSR_F32, 3, {3, 4, 3}, gw, true},
                       {TSR_F32, 3, {3, 1, 3}, gb, true}};
    TU_CHECK(tu_gradcheck("group_linear", gc_glin, NULL, 3, gin, 1e-2, 1e-3, 1e-2, 64), "group_linear gradcheck");
    /* PyTorch */
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    c.grad_enabled = true;
    const char *names[2][4] = {{"op.l2.x", "op.l2.y", "op.l2.dy", "op.l2.dx"},
                               {"op.nls.x", "op.nls.y", "op.nls.dy", "op.nls.dx"}};
    for (int k = 0; k < 2; k++) {
        tsr_tensor *t = tref_tensor(&c, r, names[k][0], true);
        tsr_tensor *o = k == 0 ? tsr_l2_normalize(&c, t, 1e-12f) : tsr_neg_logsigmoid(&c, t);
        tu_close_ref(r, names[k][1], tsr_f32(o), o->numel, 1e-6, 1e-5);
        tsr_backward_with(&c, o, (const float *)tref_get(r, names[k][2])->data);
        tu_close_ref(r, names[k][3], tsr_grad(&c, t), t->numel, 1e-5, 1e-4);
        tsr_ctx_reset(&c);
    }
    tsr_ctx_free(&c);
}

static void tiny_cfg(tsr_nf_cfg *cfg, int head) {
    *cfg = tsr_nf_default_cfg(head, 12);
    cfg->dim = 16;
    cfg->n_layers = 2;
    cfg->ffn_ratio = 4;
    cfg->groups = 4;
    cfg->fc_hidden = 8;
    cfg->dropout = 0;
}

static void test_model(const tref *r, int head) {
    const char *hn = head == TSR_NF_HEAD_ACCURACY ? "accuracy" : "latency";
    tsr_nf_cfg cfg;
    tiny_cfg(&cfg, head);
    tsr_nf_model m;
    tsr_status st = tsr_nf_model_init(&m, &cfg, 1);
    TU_CHECK(st.code == 0, "%s", st.msg);
    char name[160];
    for (int i = 0; i < m.params.n; i++) {
        tsr_tensor *p = m.params.items[i];
        snprintf(name, sizeof name, "%s.%s", hn, p->name);
        const tref_entry *e = tref_get(r, name);
        TU_CHECK(e->numel == p->numel, "%s: size %lld vs %lld", name, (long long)e->numel, (long long)p->numel);
        if (e->numel == p->numel) memcpy(p->data, e->data, sizeof(float) * (size_t)p->numel);
    }
    snprintf(name, sizeof name, "%s.", hn);
    int n_ref = 0;
    for (int i = 0; i < r->n; i++)
        if (!strncmp(r->e[i].name, name, strlen(name)) && !strstr(r->e[i].name, ".grad.") &&
            strncmp(r->e[i].name + strlen(name), "x", 2) && strcmp(r->e[i].name + strlen(name), "adj") &&
            strcmp(r->e[i].name + strlen(name), "static") && strcmp(r->e[i].name + strlen(name), "y") &&
            strcmp(r->e[i].name + strlen(name), "pred") && strcmp(r->e[i].name + strlen(name), "loss"))
            n_ref++;
    TU_CHECK(n_ref == m.params.n, "%s: reference has %d parameters, model %d", hn, n_ref, m.params.n);
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 22);
    c.grad_enabled = true;
    c.training = true;
#define REF(k) (snprintf(name, sizeof name, "%s.%s", hn, k), name)
    tsr_tensor *x = tref_tensor(&c, r, REF("x"), true);
    tsr_tensor *adj = tref_tensor(&c, r, REF("adj"), false);
    tsr_tensor *sf = head == TSR_NF_HEAD_LATENCY ? tref_tensor(&c, r, REF("static"), false) : NULL;
    tsr_tensor *y = tref_tensor(&c, r, REF("y"), false);
    tsr_tensor *pred = tsr_nf_forward(&c, &m, x, adj, sf);
    tu_close_ref(r, REF("pred"), tsr_f32(pred), pred->numel, 1e-5, 1e-4);
    { /* the sparse prediction path on the same inputs, without the tape */
        c.grad_enabled = false;
        c.training = false;
        tsr_tensor *ps = tsr_nf_forward_sparse(&c, &m, x, adj, sf);
        tu_close_ref(r, REF("pred"), tsr_f32(ps), ps->numel, 1e-5, 1e-4);
        tu_close("sparse vs dense prediction", tsr_f32(ps), tsr_f32(pred), pred->numel, 1e-7, 1e-6);
        c.grad_enabled = true;
        c.training = true;
    }
    tsr_tensor *loss = tsr_nf_loss_ratio(&c, pred, y);
    if (head == TSR_NF_HEAD_ACCURACY) {
        tsr_tensor *perm = tsr_new(&c, TSR_I32, TSR_DIMS(3));
        tsr_i32(perm)[0] = 2, tsr_i32(perm)[1] = 0, tsr_i32(perm)[2] = 1;
        loss = tsr_add(&c, loss, tsr_scale(&c, tsr_nf_loss_pairdiff(&c, pred, y, perm), 0.1f));
    }
    tu_close_ref(r, REF("loss"), tsr_f32(loss), 1, 1e-6, 1e-4);
    tsr_params_zero_grad(&m.params);
    tsr_backward(&c, loss);
    for (int i = 0; i < m.params.n; i++) {
        tsr_tensor *p = m.params.items[i];
        char gname[200];
        snprintf(gname, sizeof gname, "%s.grad.%s", hn, p->name);
        tu_close_ref(r, gname, p->grad, p->numel, 1e-6, 2e-3);
    }
    tu_close_ref(r, REF("grad.x"), tsr_grad(&c, x), x->numel, 1e-6, 2e-3);
    /* save / load round trip gives the same predictions */
    char path[64];
    snprintf(path, sizeof path, "/tmp/tsr_nf_test_%d.safetensors", (int)getpid());
    st = tsr_nf_model_save(&m, path, NULL);
    TU_CHECK(st.code == 0, "save: %s", st.msg);
    tsr_nf_model m2;
    st = tsr_nf_model_load(&m2, path);
    TU_CHECK(st.code == 0, "load: %s", st.msg);
    if (!st.code) {
        m2.cfg.dropout = 0;
        tsr_ctx_reset(&c);
        tsr_tensor *x2 = tref_tensor(&c, r, REF("x"), false);
        tsr_tensor *a2 = tref_tensor(&c, r, REF("adj"), false);
        tsr_tensor *s2 = head == TSR_NF_HEAD_LATENCY ? tref_tensor(&c, r, REF("static"), false) : NULL;
        tsr_tensor *p2 = tsr_nf_forward(&c, &m2, x2, a2, s2);
        tu_close_ref(r, REF("pred"), tsr_f32(p2), p2->numel, 1e-5, 1e-4);
        tsr_nf_model_free(&m2);
    }
    unlink(path);
#undef REF
    tsr_ctx_free(&c);
    tsr_nf_model_free(&m);
}

/* a batch of cells in one forward/backward (token rows of all cells in
 * one product, attention per cell) gives each cell's prediction and the
 * sum of the per-cell parameter gradients, up to float rounding */
static void test_batched(void) {
    enum { B = 5, N = 8, F = 12 };
    tsr_nf_cfg cfg;
    tiny_cfg(&cfg, TSR_NF_HEAD_ACCURACY);
    tsr_nf_model m;
    tsr_status st = tsr_nf_model_init(&m, &cfg, 3);
    TU_CHECK(st.code == 0, "%s", st.msg);
    for (int i = 0; i < m.params.n; i++) /* layer scale 1e-4 would hide the FFN's gradients */
        if (strstr(m.params.items[i]->name, "gamma")) tsr_init_const(m.params.items[i], 0.5f);
    float xs[B * N * F], adjs[B * N * N];
    tu_randn(xs, B * N * F, 11, 1);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++)
                adjs[(b * N + i) * N + j] = i != j && ((i * 7 + j * 7 + b * (i + j)) % 3 == 0 || j == i + 1 || i == j + 1);
    int64_t tot = 0;
    for (int i = 0; i < m.params.n; i++) tot += m.params.items[i]->numel;
    float *g_sum = calloc((size_t)tot, sizeof(float)), pred1[B], predB[B];
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 22);
    c.grad_enabled = true;
    c.training = true;
    for (int b = 0; b <= B; b++) { /* cells 0..B-1 alone, then all B at once */
        int n = b < B ? 1 : B, off = b < B ? b : 0;
        tsr_ctx_reset(&c);
        tsr_params_zero_grad(&m.params);
        tsr_tensor *x = tsr_new(&c, TSR_F32, TSR_DIMS(n, N, F)), *adj = tsr_new(&c, TSR_F32, TSR_DIMS(n, N, N));
        memcpy(tsr_f32(x), xs + off * N * F, sizeof(float) * (size_t)(n * N * F));
        memcpy(tsr_f32(adj), adjs + off * N * N, sizeof(float) * (size_t)(n * N * N));
        tsr_tensor *pred = tsr_nf_forward(&c, &m, x, adj, NULL);
        for (int i = 0; i < n; i++) (b < B ? pred1 : predB)[off + i] = tsr_f32(pred)[i];
        tsr_backward(&c, tsr_sum(&c, pred, 0, false));
        int64_t k = 0;
        double worst = 0;
        for (int i = 0; i < m.params.n; i++)
            for (int64_t j = 0; j < m.params.items[i]->numel; j++, k++) {
                float g = m.params.items[i]->grad[j];
                if (b < B) g_sum[k] += g;
                else {
                    double e = fabs((double)g - g_sum[k]) / (1e-6 + fabs((double)g_sum[k]));
                    if (e > worst) worst = e;
                }
            }
        if (b == B) TU_CHECK(worst < 5e-4, "batched grads differ from the per-cell sum (rel %.2e)", worst);
    }
    for (int i = 0; i < B; i++)
        TU_CHECK(fabsf(pred1[i] - predB[i]) <= 1e-5f * fabsf(pred1[i]), "cell %d: %g alone, %g in a batch", i,
                 pred1[i], predB[i]);
    free(g_sum);
    tsr_ctx_free(&c);
    tsr_nf_model_free(&m);
}

/* the sparse prediction path (tsr_nf_forward_sparse) against the dense
 * forward on graphs of the size that made the dense form slow: 300 tokens
 * (past OpenBLAS's K blocking), the shipped latency config, a hub node
 * with many neighbours, an isolated node, a batch with one adjacency per
 * graph and a batch sharing one; accuracy head too */
static void test_sparse(void) {
    enum { B = 3, N = 300 };
    for (int head = 0; head < 2; head++) {
        tsr_nf_cfg cfg = tsr_nf_default_cfg(head, TSR_NF_TOKEN_DIM);
        cfg.dim = 64;
        cfg.fc_hidden = 64;
        cfg.dropout = 0;
        tsr_nf_model m;
        tsr_status st = tsr_nf_model_init(&m, &cfg, 5 + head);
        TU_CHECK(st.code == 0, "%s", st.msg);
        for (int i = 0; i < m.params.n; i++) /* let the FFN branch matter too */
            if (strstr(m.params.items[i]->name, "gamma")) tsr_init_const(m.params.items[i], 0.5f);
        tsr_ctx c;
        tsr_ctx_init(&c, 1 << 24);
        c.grad_enabled = false;
        for (int shared = 0; shared < 2; shared++) {
            tsr_ctx_reset(&c);
            tsr_tensor *x = tsr_new(&c, TSR_F32, TSR_DIMS(B, N, TSR_NF_TOKEN_DIM));
            tu_randn(tsr_f32(x), x->numel, 21 + shared, 1.0f);
            tsr_tensor *adj = shared ? tsr_zeros(&c, TSR_F32, TSR_DIMS(N, N)) : tsr_zeros(&c, TSR_F32, TSR_DIMS(B, N, N));
            float *a = tsr_f32(adj);
            for (int b = 0; b < (shared ? 1 : B); b++)
                for (int i = 0; i + 1 < N - 1; i++) { /* node N-1 stays isolated */
                    int js[3] = {i + 1, (i * 37 + 11 * b + 5) % (N - 1), i % 7 == 0 ? 150 : i}; /* chain, skip, hub */
                    for (int k = 0; k < 3; k++)
                        if (js[k] != i) a[((int64_t)b * N + i) * N + js[k]] = a[((int64_t)b * N + js[k]) * N + i] = 1.0f;
                }
            tsr_tensor *sf = NULL;
            if (head == TSR_NF_HEAD_LATENCY) {
                sf = tsr_new(&c, TSR_F32, TSR_DIMS(B, TSR_NF_STATIC_DIM));
                tu_randn(tsr_f32(sf), sf->numel, 31, 1.0f);
            }
            tsr_tensor *pd = tsr_nf_forward(&c, &m, x, adj, sf), *ps = tsr_nf_forward_sparse(&c, &m, x, adj, sf);
            for (int b = 0; b < B; b++)
                TU_CHECK(fabsf(tsr_f32(ps)[b] - tsr_f32(pd)[b]) <= 1e-5f * fabsf(tsr_f32(pd)[b]),
                         "head %d shared %d graph %d: sparse %.9g dense %.9g", head, shared, b, tsr_f32(ps)[b],
                         tsr_f32(pd)[b]);
        }
        tsr_ctx_free(&c);
        tsr_nf_model_free(&m);
    }
}

int main(void) {
    tref *r = tref_load("tests/refs/narformer.tref");
    test_ops(r);
    test_model(r, TSR_NF_HEAD_LATENCY);
    test_model(r, TSR_NF_HEAD_ACCURACY);
    test_batched();
    test_sparse();
    tref_free(r);
    return tu_finish("narformer_model");
}
