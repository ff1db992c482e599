/* Tests for src/optim: AdamW and SGD (plain, momentum, Nesterov) against
 * torch.optim on five steps from the same init and gradient sequence
 * (tools/refs/gen_optim.py), grad-norm clipping against
 * torch.nn.utils.clip_grad_norm_, LR schedules against the closed form, EMA
 * against a double-precision recurrence.
 * Tolerances: weights after every step atol 1e-7 rtol 1e-6 (the update
 * follows torch's float operation order; differences are single roundings
 * such as FMA vs mul+add); AdamW moments rtol 1e-6; clip norm and grads
 * rtol 1e-6 (we sum in double, torch in float); schedules 1e-7 relative to
 * a double formula (the result is one float rounding); EMA 1e-6. */
#include "testutil.h"
#include "tessera/ops.h"
#include "tessera/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *names[3] = {"w", "b", "c"};

static void make_params(tsr_params *p, const tref *r) {
    tsr_params_init(p);
    for (int i = 0; i < 3; i++) {
        char k[64];
        snprintf(k, sizeof k, "init_%s", names[i]);
        const tref_entry *e = tref_get(r, k);
        tsr_tensor *t = tsr_param_new(p, names[i], i == 1 ? TSR_PARAM_NO_DECAY : 0, e->ndim, e->shape);
        memcpy(t->data, e->data, sizeof(float) * (size_t)e->numel);
    }
    /* a buffer: optimizers must leave it alone */
    tsr_tensor *b = tsr_param_new(p, "buf", TSR_PARAM_BUFFER, 1, TSR_SHAPE(2));
    tsr_init_const(b, 7.0f);
}

static void set_grads(tsr_params *p, const tref *r, int s) {
    for (int i = 0; i < 3; i++) {
        char k[64];
        snprintf(k, sizeof k, "g%d_%s", s, names[i]);
        const tref_entry *e = tref_get(r, k);
        memcpy(p->items[i]->grad, e->data, sizeof(float) * (size_t)e->numel);
    }
}

static void check_weights(tsr_params *p, const tref *r, const char *tag, int s) {
    for (int i = 0; i < 3; i++) {
        char k[64];
        snprintf(k, sizeof k, "%s%d_%s", tag, s, names[i]);
        tu_close_ref(r, k, tsr_f32(p->items[i]), p->items[i]->numel, 1e-7, 1e-6);
    }
    const float *bf = tsr_f32(p->items[3]);
    TU_CHECK(bf[0] == 7.0f && bf[1] == 7.0f, "%s: buffer changed", tag);
}

/* the settings tools/refs wrote the AdamW reference with */
static void adamw_ref_init(tsr_adamw *o, tsr_params *p) {
    tsr_adamw_init(o, p, (tsr_adamw_cfg){.lr = 1.0f, .beta1 = 0.9f, .beta2 = 0.999f,
                                         .eps = 1e-8f, .weight_decay = 0.1f});
}

static void test_adamw(const tref *r) {
    tsr_params p;
    make_params(&p, r);
    tsr_adamw o;
    adamw_ref_init(&o, &p);
    const float *lrs = tref_get(r, "lrs")->data;
    for (int s = 0; s < 5; s++) {
        set_grads(&p, r, s);
        tsr_adamw_step(&o, lrs[s]);
        check_weights(&p, r, "adamw", s);
    }
    TU_CHECK(o.step == 5, "adamw step count %lld", (long long)o.step);
    TU_CHECK(o.m[3] == NULL && o.v[3] == NULL, "adamw keeps no state for buffers");
    for (int i = 0; i < 3; i++) {
        char k[64];
        snprintf(k, sizeof k, "adamw_m_%s", names[i]);
        tu_close_ref(r, k, o.m[i], p.items[i]->numel, 1e-9, 1e-6);
        snprintf(k, sizeof k, "adamw_v_%s", names[i]);
        tu_close_ref(r, k, o.v[i], p.items[i]->numel, 1e-12, 1e-6);
    }
    tsr_adamw_free(&o);
    tsr_params_free(&p);
}

/* a frozen parameter (requires_grad = false) is neither stepped nor decayed,
 * even with a stale gradient in its buffer; the others still follow the reference */
static void test_adamw_frozen(const tref *r) {
    tsr_params p;
    make_params(&p, r);
    tsr_adamw o;
    adamw_ref_init(&o, &p);
    tsr_tensor *w0 = p.items[0];
    float *before = malloc(sizeof(float) * (size_t)w0->numel);
    memcpy(before, tsr_f32(w0), sizeof(float) * (size_t)w0->numel);
    w0->requires_grad = false;
    const float *lrs = tref_get(r, "lrs")->data;
    for (int s = 0; s < 5; s++) {
        set_grads(&p, r, s);
        tsr_adamw_step(&o, lrs[s]);
    }
    TU_CHECK(memcmp(before, tsr_f32(w0), sizeof(float) * (size_t)w0->numel) == 0,
             "adamw: frozen parameter unchanged");
    char k[64];
    snprintf(k, sizeof k, "adamw4_%s", names[1]);
    tu_close_ref(r, k, tsr_f32(p.items[1]), p.items[1]->numel, 1e-7, 1e-6);
    free(before);
    tsr_adamw_free(&o);
    tsr_params_free(&p);
}

static void test_sgd(const tref *r, const char *tag, float momentum, bool nesterov) {
    tsr_params p;
    make_params(&p, r);
    tsr_sgd o;
    tsr_sgd_init(&o, &p, (tsr_sgd_cfg){.lr = 1.0f, .momentum = momentum, .weight_decay = 0.01f,
                                       .nesterov = nesterov});
    const float *lrs = tref_get(r, "lrs")->data;
    for (int s = 0; s < 5; s++) {
        set_grads(&p, r, s);
        tsr_sgd_step(&o, lrs[s]);
        check_weights(&p, r, tag, s);
    }
    tsr_sgd_free(&o);
    tsr_params_free(&p);
}

static void test_clip(const tref *r) {
    const char *tags[2] = {"clip", "noclip"};
    float maxn[2] = {1.0f, 100.0f};
    for (int c = 0; c < 2; c++) {
        tsr_params p;
        make_params(&p, r);
        set_grads(&p, r, 4);
        float n = tsr_clip_grad_norm(&p, maxn[c]);
        char k[64];
        snprintf(k, sizeof k, "%s_norm", tags[c]);
        tu_close_ref(r, k, &n, 1, 0, 1e-6);
        for (int i = 0; i < 3; i++) {
            snprintf(k, sizeof k, "%s_%s", tags[c], names[i]);
            tu_close_ref(r, k, p.items[i]->grad, p.items[i]->numel, 1e-9, 1e-6);
        }
        tsr_params_free(&p);
    }
}

static double close_form(const tsr_lr_sched *s, int64_t t) {
    if (t < s->warmup) return s->base_lr * (double)(t + 1) / (double)s->warmup;
    if (s->kind == TSR_LR_CONSTANT) return s->base_lr;
    if (t >= s->total) return s->min_lr;
    double q = (double)(t - s->warmup) / (double)(s->total - s->warmup);
    return s->min_lr + (s->base_lr - s->min_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * q));
}

static void test_sched(void) {
    tsr_lr_sched cs = {TSR_LR_COSINE, 3e-3f, 1e-4f, 10, 110};
    tsr_lr_sched cn = {TSR_LR_CONSTANT, 3e-3f, 0.0f, 10, 110};
    tsr_lr_sched nw = {TSR_LR_COSINE, 1.0f, 0.0f, 0, 100};
    const tsr_lr_sched *all[3] = {&cs, &cn, &nw};
    int bad = 0;
    for (int k = 0; k < 3; k++)
        for (int64_t t = 0; t < 130; t++) {
            double want = close_form(all[k], t), got = tsr_lr_at(all[k], t);
            if (fabs(got - want) > 1e-7 * fabs(want) + 1e-12) {
                if (!bad) fprintf(stderr, "sched %d step %lld: %g vs %g\n", k, (long long)t, got, want);
                bad++;
            }
        }
    TU_CHECK(bad == 0, "schedules vs closed form: %d mismatches", bad);
    /* landmarks: warmup reaches base at its last step, cosine ends at min */
    TU_CHECK(tsr_lr_at(&cs, 0) == 3e-4f, "first warmup step");
    TU_CHECK(tsr_lr_at(&cs, 9) == 3e-3f, "end of warmup");
    TU_CHECK(tsr_lr_at(&cs, 110) == 1e-4f && tsr_lr_at(&cs, 500) == 1e-4f, "after total");
    TU_CHECK(fabsf(tsr_lr_at(&cs, 60) - 0.5f * (3e-3f + 1e-4f)) < 1e-9f, "cosine midpoint");
    TU_CHECK(tsr_lr_at(&nw, 0) == 1.0f, "no warmup starts at base");
}

static void test_ema(void) {
    tsr_params p;
    tsr_params_init(&p);
    tsr_tensor *w = tsr_param_new(&p, "w", 0, 1, TSR_SHAPE(6));
    tsr_tensor *b = tsr_param_new(&p, "bn.mean", TSR_PARAM_BUFFER, 1, TSR_SHAPE(2));
    tsr_rng r;
    tsr_rng_seed(&r, 5);
    tsr_init_normal(w, &r, 1.0f);
    tsr_init_const(b, 3.0f);
    double ref[6];
    for (int i = 0; i < 6; i++) ref[i] = tsr_f32(w)[i];
    tsr_ema e;
    tsr_ema_init(&e, &p, 0.9f);
    TU_CHECK(e.shadow[1] == NULL, "ema skips buffers");
    for (int s = 0; s < 20; s++) {
        tsr_init_normal(w, &r, 1.0f);
        tsr_ema_update(&e);
        for (int i = 0; i < 6; i++) ref[i] = 0.9 * ref[i] + (1.0 - 0.9) * tsr_f32(w)[i];
    }
    float want[6], before[6];
    for (int i = 0; i < 6; i++) want[i] = (float)ref[i];
    memcpy(before, w->data, sizeof before);
    tu_close("ema shadow", e.shadow[0], want, 6, 1e-6, 1e-6);
    tsr_ema_swap(&e);
    tu_close("ema swap in", tsr_f32(w), want, 6, 1e-6, 1e-6);
    tsr_ema_swap(&e);
    TU_CHECK(memcmp(w->data, before, sizeof before) == 0, "ema swap back restores weights");
    tsr_ema_free(&e);
    tsr_params_free(&p);
}

/* TSR_PARAM_SPARSE_ROWS: the same bits as the dense update, step after step,
 * with decay and without, across a "resume" (moments copied into a fresh
 * optimizer, as a loaded training state does), with rows that get a gradient
 * once and then none, and a gradient whose square underflows */
static void test_adamw_sparse_rows(void) {
    enum { ROWS = 40, D = 6, STEPS = 24 };
    tsr_params pd, ps;
    tsr_tensor *wd[2], *ws[2];
    tsr_params_init(&pd);
    tsr_params_init(&ps);
    for (int k = 0; k < 2; k++) { /* k = 0: decayed table, k = 1: no decay */
        char nm[16];
        snprintf(nm, sizeof nm, "emb%d", k);
        wd[k] = tsr_param_new(&pd, nm, k ? TSR_PARAM_NO_DECAY : 0, 2, TSR_SHAPE(ROWS, D));
        ws[k] = tsr_param_new(&ps, nm, (k ? TSR_PARAM_NO_DECAY : 0) | TSR_PARAM_SPARSE_ROWS, 2, TSR_SHAPE(ROWS, D));
        tsr_rng r;
        tsr_rng_seed(&r, 11 + (uint64_t)k);
        tsr_init_normal(wd[k], &r, 1.0f);
        memcpy(ws[k]->data, wd[k]->data, sizeof(float) * ROWS * D);
    }
    tsr_adamw_cfg cfg = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f};
    tsr_adamw od, os;
    tsr_adamw_init(&od, &pd, cfg);
    tsr_adamw_init(&os, &ps, cfg);
    tsr_rng r;
    tsr_rng_seed(&r, 5);
    bool same = true, same_norm = true;
    for (int s = 0; s < STEPS; s++) {
        if (s == STEPS / 2) { /* resume: a fresh optimizer gets the moments and the step */
            tsr_adamw o2;
            tsr_adamw_init(&o2, &ps, cfg);
            for (int k = 0; k < 2; k++) {
                memcpy(o2.m[k], os.m[k], sizeof(float) * ROWS * D);
                memcpy(o2.v[k], os.v[k], sizeof(float) * ROWS * D);
            }
            o2.step = os.step;
            tsr_adamw_free(&os);
            os = o2;
        }
        for (int k = 0; k < 2; k++) {
            memset(wd[k]->grad, 0, sizeof(float) * ROWS * D);
            for (int t = 0; t < 3; t++) { /* 3 rows, mostly among the first 12 */
                int row = (int)(tsr_rng_u64(&r) % (s < 4 ? 12u : 30u));
                for (int j = 0; j < D; j++) wd[k]->grad[row * D + j] = tsr_rng_uniform(&r) - 0.5f;
            }
            if (s == 3) wd[k]->grad[35 * D + 1] = 1e-30f; /* m > 0, v underflows to 0 */
            if (s == 5) wd[k]->grad[36 * D + 2] = -0.0f;   /* a negative zero is no gradient */
            memcpy(ws[k]->grad, wd[k]->grad, sizeof(float) * ROWS * D);
            same_norm &= tsr_grad_sumsq(wd[k], false, 0.25) == tsr_grad_sumsq(ws[k], true, 0.25);
        }
        float lr = s % 5 == 4 ? 0.0f : 0.01f * (1.0f + (float)s / 8.0f);
        tsr_adamw_step(&od, lr);
        tsr_adamw_step(&os, lr);
        for (int k = 0; k < 2; k++) {
            size_t bytes = sizeof(float) * ROWS * D;
            same &= memcmp(wd[k]->data, ws[k]->data, bytes) == 0 && memcmp(od.m[k], os.m[k], bytes) == 0 &&
                    memcmp(od.v[k], os.v[k], bytes) == 0;
        }
    }
    TU_CHECK(same, "adamw: sparse-row path gives the dense update's weights and moments bit for bit");
    TU_CHECK(same_norm, "grad_sumsq: skipping zero rows gives the same bits");
    /* the untouched rows of the no-decay table never moved */
    tsr_rng_seed(&r, 12);
    tsr_params pc;
    tsr_params_init(&pc);
    tsr_tensor *w0 = tsr_param_new(&pc, "x", 0, 2, TSR_SHAPE(ROWS, D));
    tsr_init_normal(w0, &r, 1.0f);
    TU_CHECK(memcmp(tsr_f32(w0) + 39 * D, tsr_f32(ws[1]) + 39 * D, sizeof(float) * D) == 0,
             "adamw: a no-decay row without gradient is unchanged");
    tsr_params_free(&pc);
    tsr_adamw_free(&od);
    tsr_adamw_free(&os);
    tsr_params_free(&pd);
    tsr_params_free(&ps);
}

/* Row marks (core.h): an embedding's backward marks the rows it writes,
 * and zeroing, the gradient norm and AdamW then visit only marked rows; a
 * dense writer (tsr_grad, here a matmul) marks every row. Against the same
 * tables without TSR_PARAM_SPARSE_ROWS (decayed and not): the same
 * gradients, norms, weights and moments bit for bit, the exact marks, and
 * a grad that is all zero after each zeroing. */
static void test_row_marks(void) {
    enum { ROWS = 64, D = 4, B = 5, STEPS = 14, DENSE_AT = 7 };
    tsr_params pd, ps;
    tsr_tensor *wd[2], *ws[2];
    tsr_params_init(&pd);
    tsr_params_init(&ps);
    tsr_rng r;
    tsr_rng_seed(&r, 21);
    for (int k = 0; k < 2; k++) { /* k = 0: decayed, k = 1: no decay */
        char nm[16];
        snprintf(nm, sizeof nm, "emb%d", k);
        wd[k] = tsr_param_new(&pd, nm, k ? TSR_PARAM_NO_DECAY : 0, 2, TSR_SHAPE(ROWS, D));
        ws[k] = tsr_param_new(&ps, nm, (k ? TSR_PARAM_NO_DECAY : 0) | TSR_PARAM_SPARSE_ROWS, 2, TSR_SHAPE(ROWS, D));
        tsr_init_normal(wd[k], &r, 1.0f);
        memcpy(ws[k]->data, wd[k]->data, sizeof(float) * ROWS * D);
    }
    TU_CHECK(ws[0]->grad_rows && !wd[0]->grad_rows, "row marks only on TSR_PARAM_SPARSE_ROWS grads");
    tsr_adamw_cfg cfg = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f};
    tsr_adamw od, os;
    tsr_adamw_init(&od, &pd, cfg);
    tsr_adamw_init(&os, &ps, cfg);
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 16);
    static const float zero[ROWS * D];
    const size_t bytes = sizeof zero;
    bool same = true, zeroed = true, marks_ok = true;
    for (int s = 0; s < STEPS; s++) {
        tsr_params_zero_grad(&pd);
        tsr_params_zero_grad(&ps);
        int32_t ids[B];
        float co[B * D];
        for (int i = 0; i < B; i++) ids[i] = (int32_t)(tsr_rng_u64(&r) % (s < 5 ? 12u : (unsigned)ROWS));
        ids[B - 1] = ids[0]; /* a repeated row */
        for (int i = 0; i < B * D; i++) co[i] = tsr_rng_uniform(&r) - 0.5f;
        for (int k = 0; k < 2; k++) {
            zeroed &= memcmp(ws[k]->grad, zero, bytes) == 0 && !ws[k]->grad_rows_all;
            for (int p = 0; p < 2; p++) {
                tsr_ctx_reset(&c);
                tsr_tensor *w = p ? ws[k] : wd[k];
                tsr_tensor *id = tsr_new(&c, TSR_I32, TSR_DIMS(B));
                memcpy(id->data, ids, sizeof ids);
                tsr_tensor *cf = tsr_from_f32(&c, TSR_DIMS(B, D), co);
                tsr_tensor *l = tsr_sum_all(&c, tsr_mul(&c, tsr_embedding(&c, w, id), cf));
                if (s == DENSE_AT) l = tsr_add(&c, l, tsr_sum_all(&c, tsr_matmul(&c, cf, w, false, true)));
                tsr_backward(&c, l);
            }
            if (s == DENSE_AT) {
                marks_ok &= ws[k]->grad_rows_all;
            } else {
                for (int row = 0; row < ROWS; row++) {
                    bool in = false;
                    for (int i = 0; i < B; i++) in |= ids[i] == row;
                    marks_ok &= !ws[k]->grad_rows_all && ws[k]->grad_rows[row] == in;
                }
            }
            same &= memcmp(wd[k]->grad, ws[k]->grad, bytes) == 0 &&
                    tsr_grad_sumsq(wd[k], false, 0.5) == tsr_grad_sumsq(ws[k], true, 0.5);
        }
        float lr = 0.01f * (1.0f + (float)s / 4.0f);
        tsr_adamw_step(&od, lr);
        tsr_adamw_step(&os, lr);
        for (int k = 0; k < 2; k++)
            same &= memcmp(wd[k]->data, ws[k]->data, bytes) == 0 && memcmp(od.m[k], os.m[k], bytes) == 0 &&
                    memcmp(od.v[k], os.v[k], bytes) == 0;
    }
    TU_CHECK(same, "row marks: gradients, norms, weights and moments equal the unmarked tables' bit for bit");
    TU_CHECK(marks_ok, "row marks: exactly the embedded rows, or all after a dense writer");
    TU_CHECK(zeroed, "row marks: the grad is all zero after every zeroing");
    tsr_ctx_free(&c);
    tsr_adamw_free(&od);
    tsr_adamw_free(&os);
    tsr_params_free(&pd);
    tsr_params_free(&ps);
}

int main(void) {
    tsr_threads_set(0);
    tref *r = tref_load("tests/refs/optim.tref");
    test_adamw(r);
    test_adamw_frozen(r);
    test_adamw_sparse_rows();
    test_row_marks();
    test_sgd(r, "sgd", 0.9f, false);
    test_sgd(r, "nest", 0.9f, true);
    test_sgd(r, "plain", 0.0f, false);
    test_clip(r);
    test_sched();
    test_ema();
    tref_free(r);
    return tu_finish("optim");
}
