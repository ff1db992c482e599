/* Tests for src/models/ctnet: the towers, CTNet's gated adapters and the
 * CoNet links against PyTorch (tests/refs/ctnet.tref: logits, loss, grads
 * of every trained tensor; the frozen source tower gets no gradient), the
 * adapter and the whole tower by central finite differences, AUC with
 * ties against the pairwise definition, the CSV loader (history of clicks
 * strictly before a row, pooling weights, one-line errors naming
 * file:line), and the continual protocol's exact resume (run straight ==
 * stop after 2 periods + resume, bitwise; and a run killed at checkpoint
 * and save points inside periods, then resumed, ends with a model file
 * byte-identical to the straight run's). Tolerances vs PyTorch: logits
 * and loss atol 1e-5 rtol 1e-4, grads atol 1e-5 rtol 1e-3 (float32
 * reductions in another order). --adapter-norm: the forward with constants
 * against the forward fed pre-scaled states (bitwise), its constants
 * against an independent RMS, exact resume and refusal with another norm,
 * a kill-and-resume run with it, and POST /v1/ctr on such a model. */
#include "testutil.h"
#include "tessera/ctnet.h"
#include "tessera/ops.h"
#include "tessera/safetensors.h"
#include "tessera/serve.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static tsr_ctnet_cfg tiny_cfg(void) {
    return (tsr_ctnet_cfg){.dim = 4, .n_layers = 2, .hidden = {6, 5}, .cross = 1, .user_buckets = 7,
                           .item_buckets = 11, .tok_buckets = 9, .n_fields = 2, .adapter_scale = 1.0f};
}

typedef struct {
    tsr_params p;
    tsr_ctnet_tower src, tgt;
    tsr_ctnet_adapters ad, link;
} tiny_model;

static void tiny_load(tiny_model *m, const tref *r) {
    tsr_ctnet_cfg g = tiny_cfg();
    tsr_params_init(&m->p);
    tsr_ctnet_tower_build(&m->p, "source", &g, &m->src);
    tsr_ctnet_tower_build(&m->p, "target", &g, &m->tgt);
    tsr_ctnet_adapters_build(&m->p, "adapter", &g, true, 0, &m->ad);
    tsr_ctnet_adapters_build(&m->p, "link", &g, false, 0, &m->link);
    for (int i = 0; i < m->p.n; i++) {
        char nm[160];
        snprintf(nm, sizeof nm, "p.%s", m->p.items[i]->name);
        const tref_entry *e = tref_get(r, nm);
        TU_CHECK(e->numel == m->p.items[i]->numel, "%s: %lld elements, reference %lld", nm,
                 (long long)m->p.items[i]->numel, (long long)e->numel);
        if (e->numel == m->p.items[i]->numel) memcpy(m->p.items[i]->data, e->data, sizeof(float) * (size_t)e->numel);
    }
}

static tsr_ctnet_batch tref_batch(tsr_ctx *c, const tref *r) {
    tsr_ctnet_batch b;
    b.user = tref_tensor(c, r, "in.user", false);
    b.item = tref_tensor(c, r, "in.item", false);
    b.hist = tref_tensor(c, r, "in.hist", false);
    b.tok = tref_tensor(c, r, "in.tok", false);
    b.hist_w = tref_tensor(c, r, "in.hist_w", false);
    b.tok_w = tref_tensor(c, r, "in.tok_w", false);
    b.y = tref_tensor(c, r, "in.y", false);
    b.tok_src = NULL; /* the source tower reads tok */
    b.B = b.user->shape[0];
    return b;
}

static void check_grads(const tiny_model *m, const tref *r, const char *tag, const char *const *prefixes) {
    for (int i = 0; i < m->p.n; i++) {
        const tsr_tensor *t = m->p.items[i];
        bool want = false;
        for (int k = 0; prefixes[k]; k++) want |= strncmp(t->name, prefixes[k], strlen(prefixes[k])) == 0;
        char nm[160];
        snprintf(nm, sizeof nm, "%s.g.%s", tag, t->name);
        if (want && tref_find(r, nm)) {
            tu_close_ref(r, nm, t->grad, t->numel, 1e-5, 1e-3);
        } else if (!want) { /* not trained here: no gradient may reach it */
            double s = 0;
            for (int64_t j = 0; j < t->numel; j++) s += fabs(t->grad[j]);
            TU_CHECK(s == 0, "%s: %s has gradient %g but must not be touched", tag, t->name, s);
        }
    }
}

/* the PyTorch fixture's tensors, the tiny model loaded from them and a
 * context: the set-up of the reference, norm and finite-difference tests */
typedef struct {
    tref *r;
    tiny_model m;
    tsr_ctx c;
} fixture;

static void fixture_open(fixture *f) {
    f->r = tref_load("tests/refs/ctnet.tref");
    tiny_load(&f->m, f->r);
    tsr_ctx_init(&f->c, 1 << 20);
}

static void fixture_close(fixture *f) {
    tsr_ctx_free(&f->c);
    tsr_params_free(&f->m.p);
    tref_free(f->r);
}

/* one CTNet forward, BCE loss and backward on the fixture's batch against
 * the reference's TAG.logits, TAG.loss and TAG.g.*: adapters a, the source
 * tower reading its own domain token when tok_src, gradients only on the
 * tensors under prefixes */
static void ctnet_case(fixture *f, const tsr_ctnet_adapters *a, bool tok_src, const char *tag,
                       const char *const *prefixes) {
    tsr_ctnet_cfg g = tiny_cfg();
    tsr_ctx *c = &f->c;
    tsr_ctx_reset(c);
    c->training = true;
    tsr_ctnet_batch b = tref_batch(c, f->r);
    if (tok_src) b.tok_src = tref_tensor(c, f->r, "in.tok_src", false);
    tsr_params_zero_grad(&f->m.p);
    tsr_tensor *logit = tsr_ctnet_forward(c, &g, &f->m.tgt, &f->m.src, a, NULL, &b);
    tsr_tensor *loss = tsr_bce_with_logits(c, logit, b.y, NULL, 1, 1);
    tsr_backward(c, loss);
    char nm[64];
    snprintf(nm, sizeof nm, "%s.logits", tag);
    tu_close_ref(f->r, nm, tsr_f32(logit), logit->numel, 1e-5, 1e-4);
    snprintf(nm, sizeof nm, "%s.loss", tag);
    tu_close_ref(f->r, nm, tsr_f32(loss), 1, 1e-5, 1e-4);
    check_grads(&f->m, f->r, tag, prefixes);
}

static void test_vs_torch(void) {
    fixture f;
    fixture_open(&f);
    tiny_model *m = &f.m;
    /* CTNet */
    static const char *const ctnet_p[] = {"target.", "adapter.", NULL};
    ctnet_case(&f, &m->ad, false, "ctnet", ctnet_p);
    /* CTNet with adapters after the hidden layers only, the source tower
     * reading its own domain token (tok_src) */
    tsr_ctnet_adapters hidden = m->ad;
    hidden.wa[0] = hidden.ba[0] = hidden.wg[0] = hidden.bg[0] = NULL;
    static const char *const ctnet_h_p[] = {"target.", "adapter.1.", "adapter.2.", NULL};
    ctnet_case(&f, &hidden, true, "ctnet_h", ctnet_h_p);
    /* CoNet */
    tsr_ctnet_cfg g = tiny_cfg();
    tsr_ctx *c = &f.c;
    tsr_ctx_reset(c);
    tsr_ctnet_batch b = tref_batch(c, f.r);
    tsr_params_zero_grad(&m->p);
    tsr_tensor *lt, *ls;
    tsr_ctnet_conet_forward(c, &g, &m->tgt, &m->src, &m->link, &b, &lt, &ls);
    tsr_tensor *wt = tref_tensor(c, f.r, "conet.in.dom_t", false);
    tsr_tensor *ws = tsr_new(c, TSR_F32, TSR_DIMS(b.B, 1));
    for (int64_t i = 0; i < b.B; i++) tsr_f32(ws)[i] = 1 - tsr_f32(wt)[i];
    tsr_tensor *loss = tsr_add(c, tsr_bce_with_logits(c, lt, b.y, wt, 1, 1), tsr_bce_with_logits(c, ls, b.y, ws, 1, 1));
    tsr_backward(c, loss);
    tu_close_ref(f.r, "conet.logits_t", tsr_f32(lt), lt->numel, 1e-5, 1e-4);
    tu_close_ref(f.r, "conet.logits_s", tsr_f32(ls), ls->numel, 1e-5, 1e-4);
    tu_close_ref(f.r, "conet.loss", tsr_f32(loss), 1, 1e-5, 1e-4);
    static const char *const conet_p[] = {"target.", "source.", "link.", NULL};
    check_grads(m, f.r, "conet", conet_p);
    fixture_close(&f);
}

/* --adapter-norm in the forward: the constants are inputs. With every
 * constant 1 the forward and every gradient are bit-identical to the
 * adapters without a norm (the default path); with constants c_l they are
 * bit-identical to the adapters without a norm fed c_l * z_s^l (so the
 * gradients keep their form, checked against PyTorch above), and no
 * gradient reaches the source tower. */
static void norm_pass(tiny_model *m, tsr_ctx *c, const tref *r, const float *k, bool prescale, float *logits,
                      float **grads) {
    tsr_ctnet_cfg g = tiny_cfg();
    tsr_ctx_reset(c);
    c->training = true;
    tsr_ctnet_batch b = tref_batch(c, r);
    tsr_params_zero_grad(&m->p);
    tsr_tensor *zs[TSR_CTNET_MAX_LAYERS + 2] = {0};
    tsr_ctnet_source_states(c, &g, &m->src, &b, zs);
    tsr_ctnet_adapters a = m->ad;
    a.norm = NULL;
    if (k && prescale) {
        for (int l = 0; l <= g.n_layers; l++) {
            tsr_tensor *t = tsr_new_like(c, zs[l]);
            for (int64_t i = 0; i < t->numel; i++) tsr_f32(t)[i] = tsr_f32(zs[l])[i] * k[l];
            zs[l] = t;
        }
    } else if (k) {
        a.norm = tsr_new(c, TSR_F32, TSR_DIMS(g.n_layers + 1));
        memcpy(tsr_f32(a.norm), k, sizeof(float) * (size_t)(g.n_layers + 1));
    }
    tsr_tensor *logit = tsr_ctnet_forward_states(c, &g, &m->tgt, zs, &a, NULL, &b);
    tsr_tensor *loss = tsr_bce_with_logits(c, logit, b.y, NULL, 1, 1);
    tsr_backward(c, loss);
    TSR_ASSERT(logit->numel <= 64); /* the callers' buffers */
    memcpy(logits, tsr_f32(logit), sizeof(float) * (size_t)logit->numel);
    for (int i = 0; i < m->p.n; i++)
        memcpy(grads[i], m->p.items[i]->grad, sizeof(float) * (size_t)m->p.items[i]->numel);
}

static void test_adapter_norm_forward(void) {
    fixture f;
    fixture_open(&f);
    tiny_model *m = &f.m;
    tsr_ctx *c = &f.c;
    const tref *r = f.r;
    float *ga[64], *gb[64], la[64], lb[64];
    TU_CHECK(m->p.n <= 64, "%d tensors", m->p.n);
    for (int i = 0; i < m->p.n; i++) {
        ga[i] = malloc(sizeof(float) * (size_t)m->p.items[i]->numel);
        gb[i] = malloc(sizeof(float) * (size_t)m->p.items[i]->numel);
    }
    const float ones[3] = {1, 1, 1}, k[3] = {0.37f, 2.5f, 0.125f};
    struct {
        const float *ka, *kb;
        bool pre_b;
        const char *what;
    } cases[] = {{NULL, ones, false, "constants 1 vs no norm"}, {k, k, true, "constants c vs states times c"}};
    for (int t = 0; t < 2; t++) {
        norm_pass(m, c, r, cases[t].ka, false, la, ga);
        const int64_t B = tref_get(r, "in.y")->numel;
        norm_pass(m, c, r, cases[t].kb, cases[t].pre_b, lb, gb);
        TU_CHECK(memcmp(la, lb, sizeof(float) * (size_t)B) == 0, "%s: logits differ", cases[t].what);
        for (int i = 0; i < m->p.n; i++) {
            const tsr_tensor *p = m->p.items[i];
            bool eq = memcmp(ga[i], gb[i], sizeof(float) * (size_t)p->numel) == 0;
            TU_CHECK(eq, "%s: gradient of %s differs", cases[t].what, p->name);
            if (!strncmp(p->name, "source.", 7)) {
                double q = 0;
                for (int64_t j = 0; j < p->numel; j++) q += fabs(gb[i][j]);
                TU_CHECK(q == 0, "%s: a gradient reached %s", cases[t].what, p->name);
            }
        }
    }
    /* and the constants do act: c against no norm */
    norm_pass(m, c, r, NULL, false, la, ga);
    norm_pass(m, c, r, k, false, lb, gb);
    TU_CHECK(memcmp(la, lb, sizeof(float) * (size_t)tref_get(r, "in.y")->numel) != 0, "constants c change nothing");
    for (int i = 0; i < m->p.n; i++) free(ga[i]), free(gb[i]);
    fixture_close(&f);
}

/* ------------------------------------------------- finite differences */

typedef struct {
    tsr_ctnet_batch b;
    bool gated;
} fd_ud;

static tsr_tensor *adapter_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    fd_ud *u = ud;
    tsr_ctnet_adapters a;
    memset(&a, 0, sizeof a);
    a.wa[0] = in[1];
    a.ba[0] = in[2];
    if (u->gated) {
        a.wg[0] = in[3];
        a.bg[0] = in[4];
    }
    return tsr_ctnet_adapter(c, &a, 0, in[0]);
}

static tsr_tensor *tower_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    fd_ud *u = ud;
    tsr_ctnet_cfg g = tiny_cfg();
    tsr_ctnet_tower t = {.emb_user = in[0], .emb_item = in[1], .emb_tok = in[2], .cross_w = in[3], .cross_b = in[4]};
    for (int l = 0; l <= g.n_layers; l++) {
        t.w[l] = in[5 + 2 * l];
        t.b[l] = in[6 + 2 * l];
    }
    tsr_tensor *z = tsr_ctnet_tower_input(c, &t, &g, &u->b);
    for (int l = 0; l <= g.n_layers; l++) z = tsr_ctnet_tower_layer(c, &t, &g, l, z);
    return z;
}

static gc_input gc_of(tsr_tensor *t) {
    gc_input gi = {.dtype = TSR_F32, .ndim = t->ndim, .data = t->data, .check = true};
    memcpy(gi.shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    return gi;
}

static void test_finite_differences(void) {
    fixture f;
    fixture_open(&f);
    const tiny_model *m = &f.m;
    /* the adapter on a random source representation, gated and not */
    float zs[5 * 6];
    tu_randn(zs, 30, 3, 1.0f);
    for (int gated = 0; gated < 2; gated++) {
        fd_ud u = {.gated = gated};
        gc_input in[5] = {{.dtype = TSR_F32, .ndim = 2, .shape = {5, 6}, .data = zs, .check = true},
                          gc_of(m->ad.wa[1]), gc_of(m->ad.ba[1]), gc_of(m->ad.wg[1]), gc_of(m->ad.bg[1])};
        tu_gradcheck(gated ? "adapter (gated)" : "adapter (no gate)", adapter_fn, &u, gated ? 5 : 3, in, 1e-2,
                     1e-3, 1e-2, 200);
    }
    /* the whole tower from its embeddings to the logit */
    fd_ud u = {.b = tref_batch(&f.c, f.r)};
    gc_input in[11];
    tsr_tensor *ts[11] = {m->tgt.emb_user, m->tgt.emb_item, m->tgt.emb_tok, m->tgt.cross_w, m->tgt.cross_b,
                          m->tgt.w[0], m->tgt.b[0], m->tgt.w[1], m->tgt.b[1], m->tgt.w[2], m->tgt.b[2]};
    for (int i = 0; i < 11; i++) in[i] = gc_of(ts[i]);
    tu_gradcheck("tower", tower_fn, &u, 11, in, 1e-3, 2e-3, 2e-2, 60);
    fixture_close(&f);
}

/* ------------------------------------------------------------------ AUC */

static double auc_pairs(const float *s, const uint8_t *y, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (y[i] && !y[j]) {
                den += 1;
                num += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
            }
    return num / den;
}

static void test_auc(void) {
    const float s1[4] = {0.1f, 0.4f, 0.35f, 0.8f};
    const uint8_t y1[4] = {0, 0, 1, 1};
    TU_CHECK(fabs(tsr_ctnet_auc(s1, y1, 4) - 0.75) < 1e-12, "AUC of the textbook example %g != 0.75", tsr_ctnet_auc(s1, y1, 4));
    const float s2[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    TU_CHECK(fabs(tsr_ctnet_auc(s2, y1, 4) - 0.5) < 1e-12, "all tied: AUC %g != 0.5", tsr_ctnet_auc(s2, y1, 4));
    const float s3[5] = {0.2f, 0.2f, 0.9f, 0.2f, 0.1f};
    const uint8_t y3[5] = {1, 0, 1, 0, 0};
    /* pairs: (0.2 vs .2,.2,.1) = .5+.5+1, (0.9 vs all) = 3 -> 5/6 */
    TU_CHECK(fabs(tsr_ctnet_auc(s3, y3, 5) - 5.0 / 6.0) < 1e-12, "ties: AUC %g != 5/6", tsr_ctnet_auc(s3, y3, 5));
    const uint8_t yall[4] = {1, 1, 1, 1};
    TU_CHECK(isnan(tsr_ctnet_auc(s1, yall, 4)), "one class only must give NaN");
    /* random scores on a coarse grid (many ties) vs the pairwise definition */
    tsr_rng rng;
    tsr_rng_seed(&rng, 5);
    for (int trial = 0; trial < 5; trial++) {
        float s[300];
        uint8_t y[300];
        for (int i = 0; i < 300; i++) {
            s[i] = (float)tsr_rng_below(&rng, trial == 0 ? 3 : 20) / 20.0f;
            y[i] = tsr_rng_uniform(&rng) < 0.3f + 0.02f * s[i] * 20;
        }
        double a = tsr_ctnet_auc(s, y, 300), b = auc_pairs(s, y, 300);
        TU_CHECK(fabs(a - b) < 1e-12, "trial %d: rank AUC %.15g, pairwise %.15g", trial, a, b);
    }
    const float p[2] = {0.8f, 0.25f};
    const uint8_t yp[2] = {1, 0};
    double ll = tsr_ctnet_logloss(p, yp, 2), want = -(log(0.8) + log(0.75)) / 2;
    TU_CHECK(fabs(ll - want) < 1e-6, "logloss %g != %g", ll, want);
}

/* -------------------------------------------------------------- loader */

static void test_loader(void) {
    const char *csv =
        "user,item,domain,timestamp,label,genre\n"
        "u1,a,source,100,1,Action|Drama\n"
        "u1,b,target,100,1,Animation\n"   /* same instant: not in each other's history */
        "u1,c,source,200,0,Action\n"
        "u2,a,other,150,1,\n"
        "u1,d,target,300,1,Animation|Action|Animation\n";
    tsr_ctnet_log g;
    tsr_status st = tsr_ctnet_parse_csv(csv, strlen(csv), "t.csv", "source", "target", true, &g);
    TU_CHECK(st.code == 0, "parse: %s", st.msg);
    if (st.code) return;
    TU_CHECK(g.n == 5 && g.n_fields == 3, "5 rows, 3 fields (genre, time, domain): %lld, %d", (long long)g.n, g.n_fields);
    TU_CHECK(!strcmp(g.field[0], "genre") && !strcmp(g.field[1], "time") && !strcmp(g.field[2], "domain"), "field names");
    uint32_t ha = tsr_ctnet_hash(NULL, "a", 1), hb = tsr_ctnet_hash(NULL, "b", 1);
    /* rows in time order: (u1,a,100) (u1,b,100) (u2,a,150) (u1,c,200) (u1,d,300) */
    TU_CHECK(g.ts[2] == 150 && g.domain[2] == TSR_CTNET_OTHER && g.domain[1] == TSR_CTNET_TARGET, "order and domains");
    TU_CHECK(g.src_row[0] == 0 && g.src_row[1] == 1 && g.src_row[2] == 3 && g.src_row[3] == 2 && g.src_row[4] == 4,
             "input positions of the time-ordered rows");
    TU_CHECK(g.hist[0 * TSR_CTNET_HIST] == 0 && g.hist[1 * TSR_CTNET_HIST] == 0, "no history at the first instant");
    /* u1 at 200: clicks a, b at 100 (input order, most recent first: b then a) */
    TU_CHECK(g.hist[3 * TSR_CTNET_HIST] == hb && g.hist[3 * TSR_CTNET_HIST + 1] == ha && g.hist[3 * TSR_CTNET_HIST + 2] == 0,
             "history of (u1, 200)");
    /* the non-click c is not history */
    TU_CHECK(g.hist[4 * TSR_CTNET_HIST] == hb && g.hist[4 * TSR_CTNET_HIST + 2] == 0, "history of (u1, 300)");
    /* batch: the repeated token counts once; weights are 1/count */
    tsr_ctnet_cfg cfg = tiny_cfg();
    cfg.n_fields = 3;
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    int64_t rows[2] = {4, 2};
    tsr_ctnet_batch b = tsr_ctnet_make_batch(&c, &g, rows, 2, &cfg, NULL);
    const float *tw = tsr_f32(b.tok_w), *hw = tsr_f32(b.hist_w);
    TU_CHECK(fabsf(tw[0] - 0.5f) < 1e-7 && fabsf(tw[1] - 0.5f) < 1e-7 && tw[2] == 0, "genre weights 1/2 (dedup)");
    TU_CHECK(fabsf(hw[0] - 0.5f) < 1e-7 && hw[2] == 0, "history weights");
    const float *tw2 = tw + 3 * TSR_CTNET_FIELD_TOKS;
    TU_CHECK(tw2[0] == 0 && tsr_i32(b.tok)[3 * TSR_CTNET_FIELD_TOKS] == 0, "empty genre of row 2: bucket 0, weight 0");
    TU_CHECK(tsr_f32(b.y)[0] == 1 && tsr_i32(b.user)[0] > 0, "label and user bucket");
    /* the source tower's view: the domain field (2) holds the source token
     * for the target row 4 and the other-domain row 2, the rest as in tok */
    const int K = TSR_CTNET_FIELD_TOKS, FK = 3 * K;
    const int32_t src_b = 1 + (int32_t)(tsr_ctnet_hash("domain", "source", 6) % (uint32_t)(cfg.tok_buckets - 1));
    int same_rest = 0, dom_src = 0, dom_changed = 0;
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < FK; k++)
            if (k < 2 * K || k > 2 * K) same_rest += tsr_i32(b.tok_src)[i * FK + k] == tsr_i32(b.tok)[i * FK + k];
        dom_src += tsr_i32(b.tok_src)[i * FK + 2 * K] == src_b;
        dom_changed += tsr_i32(b.tok)[i * FK + 2 * K] != src_b;
    }
    TU_CHECK(b.tok_src != b.tok && same_rest == 2 * (FK - 1) && dom_src == 2 && dom_changed == 2,
             "tok_src: source domain token (%d of 2, %d differed in tok), other fields kept (%d of %d)", dom_src,
             dom_changed, same_rest, 2 * (FK - 1));
    tsr_ctx_free(&c);
    tsr_ctnet_log_free(&g);
    /* errors: one line naming the file and line */
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"user,item,timestamp,label\nu,i,1,1\n", "t.csv:1: no 'domain'"},
        {"user,item,domain,timestamp,label\nu,i,target,1,2\n", "t.csv:2: label '2'"},
        {"user,item,domain,timestamp,label\nu,i,target,x,1\n", "t.csv:2: timestamp 'x'"},
        {"user,item,domain,timestamp,label\nu,i,target,1\n", "t.csv:2: 4 columns"},
        {"user,item,domain,timestamp,label\n", "no rows"},
        {"", "empty file"},
        {"user,item,domain,timestamp,label,user\nu,i,target,1,1,u\n", "appears twice"},
        {"user,item,domain,timestamp,label\n\"u\",i,target,1,1\n", "quote"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st = tsr_ctnet_parse_csv(bad[i].text, strlen(bad[i].text), "t.csv", "source", "target", true, &g);
        TU_CHECK(st.code != 0 && strstr(st.msg, bad[i].want) && !strchr(st.msg, '\n'), "bad input %zu: '%s' (want '%s')",
                 i, st.msg, bad[i].want);
        if (!st.code) tsr_ctnet_log_free(&g);
    }
}

/* ------------------------------------------------------------ resume */

/* a synthetic two-domain log over 6 periods (years 2000..2005): the click
 * depends on a user taste shared across domains */
static char *synth_csv(void) {
    size_t cap = 1 << 20, off = 0;
    char *s = malloc(cap);
    off += (size_t)snprintf(s + off, cap - off, "user,item,domain,timestamp,label,genre\n");
    tsr_rng r;
    tsr_rng_seed(&r, 11);
    for (int i = 0; i < 1200; i++) {
        int u = (int)tsr_rng_below(&r, 40), it = (int)tsr_rng_below(&r, 60);
        bool tgt = tsr_rng_uniform(&r) < 0.25f;
        int64_t ts = 946684800 + (int64_t)tsr_rng_below(&r, 6 * 365) * 86400;
        int click = ((u % 3) == (it % 3)) ^ (tsr_rng_uniform(&r) < 0.15f);
        off += (size_t)snprintf(s + off, cap - off, "u%d,%s%d,%s,%lld,%d,g%d\n", u, tgt ? "t" : "s", it,
                                tgt ? "target" : "source", (long long)ts, click, it % 3);
    }
    return s;
}

/* ------------------------------------------------ kill inside a period */

static int g_points, g_kill_at;
static void kill_hook(const char *point) {
    (void)point;
    if (++g_points == g_kill_at) _exit(77);
}
static void count_hook(const char *point) {
    (void)point;
    g_points++;
}

static bool same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = false;
        if (ca == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

/* A run with a state file is killed (a child process _exits at the k-th
 * fault point: every atomic write's complete tmp before its rename, and
 * the trainer's state/weights/done points of every checkpoint inside a
 * period update), then resumed to the end: its model file must be
 * byte-identical to the straight run's, for kill points spread over the
 * whole run (warm-up, source stage, target stage, period saves). */
static void test_kill_inside_periods(const tsr_ctnet_log *g, tsr_ctnet_run_opts o, int method) {
    const char *name = tsr_ctnet_method_names[method];
    /* tmpfs when there is one: the test is about the order of writes, and
     * some hundred fsyncs on a busy disk would dominate its time */
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char sa[160], sb[160], ma[160], mb[160], upd[200];
    snprintf(sa, sizeof sa, "%s/tsr_ctnet_%d_kill_a.state", dir, (int)getpid());
    snprintf(sb, sizeof sb, "%s/tsr_ctnet_%d_kill_b.state", dir, (int)getpid());
    snprintf(ma, sizeof ma, "%s/tsr_ctnet_%d_kill_a.safetensors", dir, (int)getpid());
    snprintf(mb, sizeof mb, "%s/tsr_ctnet_%d_kill_b.safetensors", dir, (int)getpid());
    snprintf(upd, sizeof upd, "%s.update.state", sb);
    o.method = method;
    o.ckpt_every = 2;
    tsr_ctnet_run *run = NULL;
    g_points = 0;
    tsr_fault_hook = count_hook;
    tsr_status st = tsr_ctnet_run_protocol(g, &o, sa, false, 0, false, NULL, &run);
    tsr_fault_hook = NULL;
    const int n_points = g_points;
    TU_CHECK(st.code == 0 && run, "%s straight: %s", name, st.msg);
    if (!run) return;
    TU_CHECK(tsr_ctnet_run_save_model(run, g, ma).code == 0, "save model");
    tsr_ctnet_run_free(run);
    TU_CHECK(n_points > 40, "%s: %d fault points (checkpoints inside periods expected)", name, n_points);
    int killed = 0, inside = 0, same = 0, tries = 0, resumed = 0;
    for (int k = 1; k <= n_points; k += 1 + n_points / 16) {
        unlink(sb);
        unlink(upd);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            g_points = 0, g_kill_at = k;
            tsr_fault_hook = kill_hook;
            st = tsr_ctnet_run_protocol(g, &o, sb, false, 0, false, NULL, NULL);
            _exit(st.code ? 1 : 0);
        }
        int ws = 0;
        waitpid(pid, &ws, 0);
        tries++;
        killed += WIFEXITED(ws) && WEXITSTATUS(ws) == 77;
        const bool has_upd = access(upd, F_OK) == 0;
        inside += has_upd;
        run = NULL;
        /* killed before the first save: start again (there is nothing to resume) */
        tsr_ctnet_results rr;
        st = tsr_ctnet_run_protocol(g, &o, sb, access(sb, F_OK) == 0, 0, false, &rr, &run);
        TU_CHECK(st.code == 0 && run, "%s killed at point %d, resumed: %s", name, k, st.msg);
        /* a training state left inside an update is continued, not redone
         * (one of a stage the continual state had passed is dropped) */
        TU_CHECK(rr.resumed_inside <= (int)has_upd, "%s killed at point %d: %d updates continued from their training state",
                 name, k, rr.resumed_inside);
        resumed += rr.resumed_inside;
        if (!run) continue;
        TU_CHECK(tsr_ctnet_run_save_model(run, g, mb).code == 0, "save model");
        tsr_ctnet_run_free(run);
        bool eq = same_file(ma, mb);
        same += eq;
        TU_CHECK(eq, "%s killed at fault point %d of %d and resumed: the model file differs", name, k, n_points);
        TU_CHECK(access(upd, F_OK) != 0, "%s: the update's training state is left after the run", name);
    }
    TU_CHECK(killed == tries, "%s: %d of %d children were killed", name, killed, tries);
    TU_CHECK(resumed >= tries / 2, "%s: only %d of %d killed runs continued inside a period update", name, resumed,
             tries);
    printf("  %s: killed at %d of %d fault points (%d left an update's state, %d continued from it), "
           "resumed: %d byte-identical\n", name, tries, n_points, inside, resumed, same);
    unlink(sa);
    unlink(sb);
    unlink(ma);
    unlink(mb);
}

/* ------------------------------------------------------ POST /v1/ctr */

static void ctr_call(void *st, const char *body, tsr_serve_reply *rp) {
    memset(rp, 0, sizeof *rp);
    tsr_serve_usage u;
    memset(&u, 0, sizeof u);
    tsr_serve_request rq = {.method = "POST", .path = "/v1/ctr", .body = body, .body_len = strlen(body), .usage = &u};
    tsr_ctnet_serve_endpoint.routes[0].handle(st, &rq, rp);
}

/* The endpoint scores rows exactly as predict does on the same rows given
 * as a log (request order kept although the log sorts by time), and
 * answers bad bodies with 400 naming the field. */
static void test_serve_ctr(const tsr_ctnet_log *g, tsr_ctnet_run_opts o) {
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char path[200];
    snprintf(path, sizeof path, "%s/tsr_ctnet_%d_serve.safetensors", dir, (int)getpid());
    o.method = TSR_CTNET_M_CTNET;
    tsr_ctnet_run *run = NULL;
    tsr_status st = tsr_ctnet_run_protocol(g, &o, NULL, false, 0, false, NULL, &run);
    TU_CHECK(st.code == 0 && run, "serve model: %s", st.msg);
    if (!run) return;
    TU_CHECK(tsr_ctnet_run_save_model(run, g, path).code == 0, "save");
    tsr_ctnet_run_free(run);
    const tsr_serve_endpoint *ep = &tsr_ctnet_serve_endpoint;
    TU_CHECK(!strcmp(ep->routes[0].method, "POST") && !strcmp(ep->routes[0].path, "/v1/ctr"), "route");
    void *state = NULL;
    const char *paths[TSR_SERVE_MAX_MODELS] = {path};
    st = ep->load(&state, paths, NULL);
    TU_CHECK(st.code == 0, "load: %s", st.msg);
    if (st.code) {
        ep->unload(state);
        return;
    }
    /* rows out of time order, history as an array and as a string, ids as
     * numbers and strings, a field as an array */
    const char *fmt = "{\"model\": \"tsr_ctnet_%d_serve\", \"rows\": ["
                      "{\"user\": \"u3\", \"item\": \"t7\", \"timestamp\": 1000000000, \"genre\": \"g1\", \"history\": [\"t1\", \"s4\"]},"
                      "{\"user\": \"u3\", \"item\": 12, \"timestamp\": 999999999, \"genre\": [\"g0\", \"g2\"], \"history\": \"t1|s4\"},"
                      "{\"user\": \"u9\", \"item\": \"t8\", \"timestamp\": 1000000001}]}";
    char b2[800];
    snprintf(b2, sizeof b2, fmt, (int)getpid());
    tsr_serve_reply rp;
    ctr_call(state, b2, &rp);
    TU_CHECK(rp.status == 200 && rp.body, "ctr: status %d %s", rp.status, rp.error);
    const char *csv = "user,item,timestamp,genre,history\n"
                      "u3,t7,1000000000,g1,t1|s4\nu3,12,999999999,g0|g2,t1|s4\nu9,t8,1000000001,,\n";
    tsr_ctnet_log q;
    st = tsr_ctnet_parse_csv(csv, strlen(csv), "rows", "source", "target", false, &q);
    TU_CHECK(st.code == 0, "rows: %s", st.msg);
    tsr_ctnet_model m;
    TU_CHECK(tsr_ctnet_model_load(&m, path).code == 0, "model");
    float p[3], want[3];
    tsr_ctnet_model_predict(&m, &q, NULL, 3, 3, p);
    for (int i = 0; i < 3; i++) want[q.src_row[i]] = p[i];
    cJSON *j = rp.body ? cJSON_Parse(rp.body) : NULL;
    const cJSON *pr = cJSON_GetObjectItem(j, "probabilities");
    TU_CHECK(cJSON_GetArraySize(pr) == 3, "3 probabilities: %s", rp.body ? rp.body : "");
    for (int i = 0; i < 3 && cJSON_GetArraySize(pr) == 3; i++)
        TU_CHECK((float)cJSON_GetArrayItem(pr, i)->valuedouble == want[i], "row %d: served %.9g, predict %.9g", i,
                 cJSON_GetArrayItem(pr, i)->valuedouble, (double)want[i]);
    cJSON_Delete(j);
    free(rp.body);
    tsr_ctnet_model_free(&m);
    tsr_ctnet_log_free(&q);
    /* bad bodies: status and the field named */
    static const struct {
        const char *body;
        int status;
        const char *param;
    } bads[] = {
        {"", 400, ""},
        {"[1,2]", 400, ""},
        {"{\"rows\": [{\"user\": 1, \"item\": 2, \"timestamp\": 3}", 400, ""},
        {"{\"rows\": []}", 400, "rows"},
        {"{\"rows\": {}}", 400, "rows"},
        {"{\"rowz\": []}", 400, "rowz"},
        {"{\"rows\": [7]}", 400, "rows[0]"},
        {"{\"rows\": [{\"item\": 2, \"timestamp\": 3}]}", 400, "rows[0].user"},
        {"{\"rows\": [{\"user\": 1, \"item\": 2, \"timestamp\": 3}, {\"user\": 1, \"timestamp\": 3}]}", 400, "rows[1].item"},
        {"{\"rows\": [{\"user\": 1, \"item\": 2}]}", 400, "rows[0].timestamp"},
        {"{\"rows\": [{\"user\": 1, \"item\": 2, \"timestamp\": -1}]}", 400, "rows[0].timestamp"},
        {"{\"rows\": [{\"user\": 1, \"item\": 2, \"timestamp\": 1.5}]}", 400, "rows[0].timestamp"},
        {"{\"rows\": [{\"user\": 1, \"item\": 2, \"timestamp\": \"3\"}]}", 400, "rows[0].timestamp"},
        {"{\"rows\": [{\"user\": 1.5, \"item\": 2, \"timestamp\": 3}]}", 400, "rows[0].user"},
        {"{\"rows\": [{\"user\": \"\", \"item\": 2, \"timestamp\": 3}]}", 400, "rows[0].user"},
        {"{\"rows\": [{\"user\": \"a\\tb\", \"item\": 2, \"timestamp\": 3}]}", 400, "rows[0].user"},
        {"{\"rows\": [{\"user\": {}, \"item\": 2, \"timestamp\": 3}]}", 400, "rows[0].user"},
        {"{\"rows\": [{\"user\": 1, \"item\": 2, \"timestamp\": 3, \"genre\": [\"a|b\"]}]}", 400, "rows[0].genre"},
        {"{\"rows\": [{\"user\": 1, \"item\": 2, \"timestamp\": 3, \"genre\": [[1]]}]}", 400, "rows[0].genre"},
        {"{\"rows\": [{\"user\": 1, \"item\": 2, \"timestamp\": 3, \"history\": \"x\\\"y\"}]}", 400, "rows[0].history"},
        {"{\"rows\": [{\"user\": 1, \"item\": 2, \"timestamp\": 3, \"colour\": \"red\"}]}", 400, "rows[0].colour"},
        {"{\"rows\": [{\"user\": 1, \"item\": 2, \"timestamp\": 3, \"user\": 4}]}", 400, "rows[0].user"},
        {"{\"model\": \"other\", \"rows\": [{\"user\": 1, \"item\": 2, \"timestamp\": 3}]}", 404, "model"},
        /* names echoed in the message keep it one line (found by fuzz_ctnet_ctr) */
        {"{\"rows\": [{\"use\\u001a\\nr\": 1, \"item\": 2, \"timestamp\": 3}]}", 400, "rows[0].use??r"},
        {"{\"ro\\nws\": []}", 400, "ro?ws"},
        {"{\"model\": \"a\\r\\nb\", \"rows\": [{\"user\": 1, \"item\": 2, \"timestamp\": 3}]}", 404, "model"},
    };
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        ctr_call(state, bads[i].body, &rp);
        TU_CHECK(rp.status == bads[i].status && !strcmp(rp.error_param, bads[i].param) && rp.error[0] && !rp.body &&
                     !strpbrk(rp.error, "\n\r"),
                 "bad body %zu: status %d param '%s' (want %d '%s'): %s", i, rp.status, rp.error_param, bads[i].status,
                 bads[i].param, rp.error);
        free(rp.body);
    }
    ep->unload(state);
    /* no model: 503 */
    const char *none[TSR_SERVE_MAX_MODELS] = {NULL};
    TU_CHECK(ep->load(&state, none, NULL).code == 0, "load without a model");
    ctr_call(state, "{\"rows\": [{\"user\": 1, \"item\": 2, \"timestamp\": 3}]}", &rp);
    TU_CHECK(rp.status == 503, "no model: status %d", rp.status);
    ep->unload(state);
    unlink(path);
}

/* --source-lr: the source tower's own learning rate. Equal to lr it is
 * the default run; another value moves CTNet (its source tower trains at
 * it) and leaves a method without a source tower as it was. The source
 * tower's next-period source AUC is reported for CTNet only. */
static void test_source_lr(const tsr_ctnet_log *g, tsr_ctnet_run_opts o) {
    tsr_ctnet_results base, same, other;
    const int ms[2] = {TSR_CTNET_M_CTNET, TSR_CTNET_M_TARGET_ONLY};
    for (int i = 0; i < 2; i++) {
        o.method = ms[i];
        o.source_lr = 0;
        tsr_status st = tsr_ctnet_run_protocol(g, &o, NULL, false, 0, false, &base, NULL);
        o.source_lr = o.lr;
        if (!st.code) st = tsr_ctnet_run_protocol(g, &o, NULL, false, 0, false, &same, NULL);
        o.source_lr = o.lr * 4;
        if (!st.code) st = tsr_ctnet_run_protocol(g, &o, NULL, false, 0, false, &other, NULL);
        TU_CHECK(st.code == 0, "source lr runs: %s", st.msg);
        if (st.code) return;
        bool eq = true, moved = false;
        for (int s = 0; s < base.steps_done; s++) {
            eq = eq && base.auc[s] == same.auc[s] && base.logloss[s] == same.logloss[s];
            moved = moved || base.logloss[s] != other.logloss[s];
            if (ms[i] == TSR_CTNET_M_CTNET)
                TU_CHECK(base.source_auc[s] > 0 && base.source_auc[s] < 1 &&
                             base.source_auc[s] != other.source_auc[s],
                         "ctnet step %d: source auc %g vs %g", s, base.source_auc[s], other.source_auc[s]);
            else
                TU_CHECK(isnan(base.source_auc[s]), "target-only step %d: source auc %g", s, base.source_auc[s]);
        }
        TU_CHECK(eq, "%s: source lr = lr differs from the default run", tsr_ctnet_method_names[ms[i]]);
        TU_CHECK(moved == (ms[i] == TSR_CTNET_M_CTNET), "%s: another source lr %s the run",
                 tsr_ctnet_method_names[ms[i]], moved ? "moved" : "did not move");
    }
}

/* --carry-optimizer: every continual update keeps AdamW's state from the
 * previous one; retrain (from scratch each period) is untouched, every
 * other method moves. Its exact resume is checked by the kill test. */
static void test_carry_optimizer(const tsr_ctnet_log *g, tsr_ctnet_run_opts o) {
    for (int m = 0; m < TSR_CTNET_M_COUNT; m++) {
        tsr_ctnet_results off, on;
        o.method = m;
        o.carry_optimizer = false;
        tsr_status st = tsr_ctnet_run_protocol(g, &o, NULL, false, 0, false, &off, NULL);
        o.carry_optimizer = true;
        if (!st.code) st = tsr_ctnet_run_protocol(g, &o, NULL, false, 0, false, &on, NULL);
        TU_CHECK(st.code == 0, "%s carry runs: %s", tsr_ctnet_method_names[m], st.msg);
        if (st.code) return;
        bool moved = false;
        for (int s = 0; s < off.steps_done; s++)
            moved = moved || off.auc[s] != on.auc[s] || off.logloss[s] != on.logloss[s];
        TU_CHECK(moved == (m != TSR_CTNET_M_RETRAIN), "%s: carrying the optimizer %s the run",
                 tsr_ctnet_method_names[m], moved ? "moved" : "did not move");
    }
}

/* --adapter-scale: at 0 (W_a = 0) the adapters add exactly nothing, so
 * CTNet is target-only bit for bit (same initial target tower, same
 * batches); another scale moves CTNet; the model file keeps the scale and
 * a state is not resumed with another one */
static void test_adapter_scale(const tsr_ctnet_log *g, tsr_ctnet_run_opts o, const char *dir) {
    tsr_ctnet_results tgt, zero, half, one;
    o.method = TSR_CTNET_M_TARGET_ONLY;
    tsr_status st = tsr_ctnet_run_protocol(g, &o, NULL, false, 0, false, &tgt, NULL);
    o.method = TSR_CTNET_M_CTNET;
    if (!st.code) st = tsr_ctnet_run_protocol(g, &o, NULL, false, 0, false, &one, NULL);
    tsr_ctnet_run_opts z = o;
    z.cfg.adapter_scale = 0.0f;
    z.adapter_std = 0.0f;
    if (!st.code) st = tsr_ctnet_run_protocol(g, &z, NULL, false, 0, false, &zero, NULL);
    o.cfg.adapter_scale = 0.5f;
    tsr_ctnet_run *run = NULL;
    if (!st.code) st = tsr_ctnet_run_protocol(g, &o, NULL, false, 0, false, &half, &run);
    TU_CHECK(st.code == 0 && run, "adapter scale runs: %s", st.msg);
    if (st.code || !run) return;
    bool eq = true, moved = false, moved1 = false;
    for (int s = 0; s < tgt.steps_done; s++) {
        eq = eq && zero.auc[s] == tgt.auc[s] && zero.logloss[s] == tgt.logloss[s];
        moved = moved || half.logloss[s] != one.logloss[s];
        moved1 = moved1 || one.logloss[s] != tgt.logloss[s];
    }
    TU_CHECK(eq, "ctnet with adapters fixed at zero differs from target-only");
    TU_CHECK(moved && moved1, "adapter scale 0.5 %s ctnet; scale 1 %s it from target-only", moved ? "moved" : "did not move",
             moved1 ? "moved" : "did not move");
    char path[400];
    snprintf(path, sizeof path, "%s/scale.safetensors", dir);
    TU_CHECK(tsr_ctnet_run_save_model(run, g, path).code == 0, "save");
    tsr_ctnet_run_free(run);
    tsr_ctnet_model m;
    TU_CHECK(tsr_ctnet_model_load(&m, path).code == 0, "load");
    TU_CHECK(m.cfg.adapter_scale == 0.5f, "the model file's adapter scale %g", (double)m.cfg.adapter_scale);
    float p[8], q[8];
    tsr_ctnet_model_predict(&m, g, NULL, 8, 8, p);
    m.cfg.adapter_scale = 1.0f;
    tsr_ctnet_model_predict(&m, g, NULL, 8, 8, q);
    bool differ = false;
    for (int i = 0; i < 8; i++) differ = differ || p[i] != q[i];
    TU_CHECK(differ, "the served model ignores its adapter scale");
    tsr_ctnet_model_free(&m);
    unlink(path);
    /* a state is resumed exactly, and only with its own scale */
    char sp[400];
    snprintf(sp, sizeof sp, "%s/scale.state", dir);
    st = tsr_ctnet_run_protocol(g, &o, sp, false, 1, false, NULL, NULL);
    TU_CHECK(st.code == 0, "scale state: %s", st.msg);
    tsr_ctnet_results resumed;
    st = tsr_ctnet_run_protocol(g, &o, sp, true, 0, false, &resumed, NULL);
    TU_CHECK(st.code == 0 && resumed.steps_done == half.steps_done, "scale resume: %s", st.msg);
    for (int s = 0; !st.code && s < half.steps_done; s++)
        TU_CHECK(resumed.auc[s] == half.auc[s] && resumed.logloss[s] == half.logloss[s],
                 "scale 0.5 step %d: resumed %.17g, straight %.17g", s, resumed.logloss[s], half.logloss[s]);
    st = tsr_ctnet_run_protocol(g, &o, sp, false, 1, false, NULL, NULL);
    TU_CHECK(st.code == 0, "scale state: %s", st.msg);
    o.cfg.adapter_scale = 1.0f;
    st = tsr_ctnet_run_protocol(g, &o, sp, true, 0, false, NULL, NULL);
    TU_CHECK(st.code != 0 && strstr(st.msg, "adapter_scale"), "resume with another adapter scale: '%s'", st.msg);
    unlink(sp);
}

/* RMS over the target rows of period key of z^l: the source tower's states
 * (src) or the target tower's own layer inputs (tgt) */
static double layer_rms(const tsr_ctnet_log *g, const tsr_ctnet_cfg *cfg, const tsr_ctnet_tower *t, bool source,
                        int32_t key, int l) {
    int64_t rows[4096], n = 0;
    for (int64_t i = 0; i < g->n && n < 4096; i++)
        if (g->period[i] == key && g->domain[i] == TSR_CTNET_TARGET) rows[n++] = i;
    tsr_ctx c;
    tsr_ctx_init(&c, 4 << 20);
    c.grad_enabled = false;
    tsr_ctnet_batch b = tsr_ctnet_make_batch(&c, g, rows, n, cfg, NULL);
    tsr_tensor *z[TSR_CTNET_MAX_LAYERS + 2] = {0};
    if (source) {
        tsr_ctnet_source_states(&c, cfg, t, &b, z);
    } else {
        z[0] = tsr_ctnet_tower_input(&c, t, cfg, &b);
        for (int k = 0; k < l; k++) z[k + 1] = tsr_ctnet_tower_layer(&c, t, cfg, k, z[k]);
    }
    double q = 0;
    for (int64_t i = 0; i < z[l]->numel; i++) q += (double)tsr_f32(z[l])[i] * (double)tsr_f32(z[l])[i];
    const double rms = sqrt(q / (double)z[l]->numel);
    tsr_ctx_free(&c);
    return rms;
}

/* --adapter-norm in the protocol: none leaves the model file as before (no
 * key, no tensor); rms and match store per-layer constants equal to
 * 1/RMS(z_s) and RMS(z_t)/RMS(z_s) over the last update's target rows
 * (z_s from the frozen source tower, z_t from the target tower as that
 * update started: the model of the run stopped one period earlier), 1 at
 * the layer without an adapter; the loaded model uses them; a state is
 * resumed exactly with its norm and refused with another. */
static void test_adapter_norm(const tsr_ctnet_log *g, tsr_ctnet_run_opts o, const char *dir) {
    o.method = TSR_CTNET_M_CTNET;
    char path[400], prev[400];
    snprintf(path, sizeof path, "%s/norm.safetensors", dir);
    snprintf(prev, sizeof prev, "%s/norm_prev.safetensors", dir);
    tsr_ctnet_results base, res[TSR_CTNET_NORM_COUNT];
    for (int k = 0; k < TSR_CTNET_NORM_COUNT; k++) {
        o.cfg.adapter_norm = k;
        tsr_ctnet_run *run = NULL, *early = NULL;
        tsr_status st = tsr_ctnet_run_protocol(g, &o, NULL, false, 0, false, &res[k], &run);
        if (!st.code) st = tsr_ctnet_run_protocol(g, &o, NULL, false, res[k].steps_done - 1, false, NULL, &early);
        TU_CHECK(st.code == 0 && run && early, "%s run: %s", tsr_ctnet_norm_names[k], st.msg);
        if (!run || !early) return;
        TU_CHECK(tsr_ctnet_run_save_model(run, g, path).code == 0 && tsr_ctnet_run_save_model(early, g, prev).code == 0,
                 "save");
        tsr_ctnet_run_free(run);
        tsr_ctnet_run_free(early);
        tsr_st_file f;
        TU_CHECK(tsr_st_read(path, &f).code == 0, "read");
        const bool key = tsr_st_meta(&f, "adapter_norm") != NULL, ten = tsr_st_find(&f, "adapter_norm.scale") != NULL;
        tsr_st_free(&f);
        TU_CHECK(key == (k != 0) && ten == (k != 0), "%s: model file has the key %d, the tensor %d",
                 tsr_ctnet_norm_names[k], key, ten);
        tsr_ctnet_model m, mp;
        TU_CHECK(tsr_ctnet_model_load(&m, path).code == 0 && tsr_ctnet_model_load(&mp, prev).code == 0, "load");
        TU_CHECK(m.cfg.adapter_norm == k && (m.ad.norm != NULL) == (k != 0), "%s: loaded as %d",
                 tsr_ctnet_norm_names[k], m.cfg.adapter_norm);
        if (k) {
            const int32_t key_last = (int32_t)o.last - 1; /* the last update trained on this period */
            for (int l = 0; l <= m.cfg.n_layers; l++) {
                double want = 1;
                if (l >= m.cfg.adapt_from) {
                    want = 1 / layer_rms(g, &m.cfg, &m.src, true, key_last, l);
                    if (k == TSR_CTNET_NORM_MATCH) want *= layer_rms(g, &m.cfg, &mp.tgt, false, key_last, l);
                }
                const double got = tsr_f32(m.ad.norm)[l];
                TU_CHECK(fabs(got - want) <= 1e-5 * fabs(want) && (l >= m.cfg.adapt_from || got == 1.0),
                         "%s layer %d: constant %.9g, expected %.9g", tsr_ctnet_norm_names[k], l, got, want);
            }
            /* the served model reads its constants */
            float p[8], q[8];
            tsr_ctnet_model_predict(&m, g, NULL, 8, 8, p);
            tsr_tensor *keep = m.ad.norm;
            m.ad.norm = NULL;
            tsr_ctnet_model_predict(&m, g, NULL, 8, 8, q);
            m.ad.norm = keep;
            bool differ = false;
            for (int i = 0; i < 8; i++) differ = differ || p[i] != q[i];
            TU_CHECK(differ, "%s: the loaded model ignores its constants", tsr_ctnet_norm_names[k]);
            bool moved = false;
            for (int s = 0; s < base.steps_done; s++) moved = moved || res[k].logloss[s] != base.logloss[s];
            TU_CHECK(moved, "%s: the run is the same as without a norm", tsr_ctnet_norm_names[k]);
        } else {
            base = res[k];
        }
        tsr_ctnet_model_free(&m);
        tsr_ctnet_model_free(&mp);
    }
    unlink(path);
    unlink(prev);
    /* a state is resumed exactly with its norm, and refused with another */
    char sp[400];
    snprintf(sp, sizeof sp, "%s/norm.state", dir);
    for (int k = 1; k < TSR_CTNET_NORM_COUNT; k++) {
        o.cfg.adapter_norm = k;
        tsr_status st = tsr_ctnet_run_protocol(g, &o, sp, false, 2, false, NULL, NULL);
        tsr_ctnet_results rr;
        if (!st.code) st = tsr_ctnet_run_protocol(g, &o, sp, true, 0, false, &rr, NULL);
        TU_CHECK(st.code == 0 && rr.steps_done == res[k].steps_done, "%s resume: %s", tsr_ctnet_norm_names[k], st.msg);
        for (int s = 0; !st.code && s < rr.steps_done; s++)
            TU_CHECK(rr.auc[s] == res[k].auc[s] && rr.logloss[s] == res[k].logloss[s],
                     "%s step %d: resumed %.17g, straight %.17g", tsr_ctnet_norm_names[k], s, rr.logloss[s],
                     res[k].logloss[s]);
        for (int other = 0; other < TSR_CTNET_NORM_COUNT; other++) {
            if (other == k) continue;
            st = tsr_ctnet_run_protocol(g, &o, sp, false, 1, false, NULL, NULL);
            o.cfg.adapter_norm = other;
            if (!st.code) st = tsr_ctnet_run_protocol(g, &o, sp, true, 0, false, NULL, NULL);
            TU_CHECK(st.code != 0 && strstr(st.msg, "adapter_norm"), "%s state resumed with %s: '%s'",
                     tsr_ctnet_norm_names[k], tsr_ctnet_norm_names[other], st.msg);
            o.cfg.adapter_norm = k;
        }
        /* a none state is not resumed with a norm either */
        o.cfg.adapter_norm = 0;
        st = tsr_ctnet_run_protocol(g, &o, sp, false, 1, false, NULL, NULL);
        o.cfg.adapter_norm = k;
        if (!st.code) st = tsr_ctnet_run_protocol(g, &o, sp, true, 0, false, NULL, NULL);
        TU_CHECK(st.code != 0 && strstr(st.msg, "adapter_norm"), "none state resumed with %s: '%s'",
                 tsr_ctnet_norm_names[k], st.msg);
    }
    unlink(sp);
}

static void test_resume(void) {
    char *csv = synth_csv();
    tsr_ctnet_log g;
    tsr_status st = tsr_ctnet_parse_csv(csv, strlen(csv), "synth", "source", "target", true, &g);
    free(csv);
    TU_CHECK(st.code == 0, "synth: %s", st.msg);
    if (st.code) return;
    tsr_ctnet_log_periods(&g, "year");
    char dir[] = "/tmp/tsr_ctnet_XXXXXX";
    TU_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char sa[300], sb[300], ma[300], mb[300];
    snprintf(sa, sizeof sa, "%s/a.state", dir);
    snprintf(sb, sizeof sb, "%s/b.state", dir);
    snprintf(ma, sizeof ma, "%s/a.safetensors", dir);
    snprintf(mb, sizeof mb, "%s/b.safetensors", dir);
    tsr_ctnet_run_opts o = tsr_ctnet_default_run_opts();
    o.cfg = (tsr_ctnet_cfg){.dim = 8, .n_layers = 2, .hidden = {16, 8}, .cross = 1, .user_buckets = 64,
                            .item_buckets = 128, .tok_buckets = 64, .n_fields = g.n_fields, .adapt_from = 1,
                            .adapter_scale = 1.0f};
    o.first = 2001;
    o.last = 2005;
    o.epochs = 2;
    o.batch = 32;
    o.lr = 5e-3f;
    o.seed = 3;
    for (int m = 0; m < TSR_CTNET_M_COUNT; m++) {
        o.method = m;
        tsr_ctnet_results ra, rb;
        tsr_ctnet_run *run_a = NULL, *run_b = NULL;
        st = tsr_ctnet_run_protocol(&g, &o, sa, false, 0, false, &ra, &run_a);
        TU_CHECK(st.code == 0 && ra.steps_done == 4, "%s straight: %s", tsr_ctnet_method_names[m], st.msg);
        st = tsr_ctnet_run_protocol(&g, &o, sb, false, 2, false, &rb, NULL);
        TU_CHECK(st.code == 0 && rb.steps_done == 2, "%s first half: %s", tsr_ctnet_method_names[m], st.msg);
        st = tsr_ctnet_run_protocol(&g, &o, sb, true, 0, false, &rb, &run_b);
        TU_CHECK(st.code == 0 && rb.steps_done == 4, "%s resumed: %s", tsr_ctnet_method_names[m], st.msg);
        if (!run_a || !run_b) continue;
        for (int s = 0; s < 4; s++)
            TU_CHECK(ra.auc[s] == rb.auc[s] && ra.logloss[s] == rb.logloss[s], "%s step %d: auc %.17g vs %.17g",
                     tsr_ctnet_method_names[m], s, ra.auc[s], rb.auc[s]);
        tsr_ctnet_run_save_model(run_a, &g, ma);
        tsr_ctnet_run_save_model(run_b, &g, mb);
        tsr_ctnet_model A, B;
        TU_CHECK(tsr_ctnet_model_load(&A, ma).code == 0 && tsr_ctnet_model_load(&B, mb).code == 0, "load models");
        bool same = A.params.n == B.params.n && A.params.n > 0;
        for (int i = 0; same && i < A.params.n; i++)
            same = memcmp(A.params.items[i]->data, B.params.items[i]->data,
                          sizeof(float) * (size_t)A.params.items[i]->numel) == 0;
        TU_CHECK(same, "%s: resumed weights differ from the straight run's", tsr_ctnet_method_names[m]);
        /* the model scores like the run did: batch 1 == batched */
        float p1[16], pb[16];
        tsr_ctnet_model_predict(&A, &g, NULL, 16, 16, pb);
        for (int i = 0; i < 16; i++) tsr_ctnet_model_predict(&A, &g, (int64_t[]){i}, 1, 1, p1 + i);
        tu_close("batch 1 vs batched", p1, pb, 16, 1e-6, 1e-5);
        tsr_ctnet_model_free(&A);
        tsr_ctnet_model_free(&B);
        tsr_ctnet_run_free(run_a);
        tsr_ctnet_run_free(run_b);
        if (m == TSR_CTNET_M_CTNET) {
            double mean = 0;
            for (int s = 1; s < 4; s++) mean += ra.auc[s] / 3;
            TU_CHECK(mean > 0.6, "ctnet learns the synthetic taste: next-period AUC %.3f", mean);
        }
    }
    o.epochs = 3;
    test_kill_inside_periods(&g, o, TSR_CTNET_M_CTNET);
    test_kill_inside_periods(&g, o, TSR_CTNET_M_FINETUNE);
    test_kill_inside_periods(&g, o, TSR_CTNET_M_RETRAIN);
    o.carry_optimizer = true;
    test_kill_inside_periods(&g, o, TSR_CTNET_M_CTNET);
    o.carry_optimizer = false;
    o.cfg.adapter_norm = TSR_CTNET_NORM_MATCH; /* the constants are part of the state */
    test_kill_inside_periods(&g, o, TSR_CTNET_M_CTNET);
    o.cfg.adapter_norm = TSR_CTNET_NORM_NONE;
    o.epochs = 2;
    test_carry_optimizer(&g, o);
    test_serve_ctr(&g, o);
    test_source_lr(&g, o);
    test_adapter_scale(&g, o, dir);
    test_adapter_norm(&g, o, dir);
    o.cfg.adapter_norm = TSR_CTNET_NORM_RMS;
    test_serve_ctr(&g, o); /* POST /v1/ctr scores a model with a norm as predict does */
    o.cfg.adapter_norm = TSR_CTNET_NORM_NONE;
    /* a state from other settings is refused, naming the key */
    o.lr = 1e-3f;
    st = tsr_ctnet_run_protocol(&g, &o, sb, true, 0, false, NULL, NULL);
    TU_CHECK(st.code != 0 && strstr(st.msg, "lr"), "resume with another lr: '%s'", st.msg);
    unlink(sa);
    unlink(sb);
    unlink(ma);
    unlink(mb);
    rmdir(dir);
    tsr_ctnet_log_free(&g);
}

int main(void) {
    tsr_threads_set(1);
    test_vs_torch();
    test_adapter_norm_forward();
    test_finite_differences();
    test_auc();
    test_loader();
    test_resume();
    return tu_finish("ctnet");
}
