/* Tests for src/nn/imgtok.c (BAE / VQ tokenizers) and the elm tokenizer
 * trainer: the straight-through Bernoulli (identity gradient, sampling
 * statistics, threshold mode, determinism), the VQ straight-through op
 * (nearest code, identity gradient) and its EMA/restart update (hand-worked
 * numbers), the whole tiny tokenizer against PyTorch
 * (tools/refs/gen_imgtok.py) as BAE and as VQ (codes exact, commitment
 * loss, gradients through the straight-through estimator), checkpoints, code validation, and exact
 * resume of the trainer.
 * Tolerances: tokenizer forward vs PyTorch atol 1e-5 rtol 1e-4 (f32
 * convs of <= 600 terms), gradients rtol 1e-4 with atol min(1e-5, 1e-3 of
 * the tensor's largest reference magnitude) (close_grad); ST gradients
 * are exact (a copy), compared with 0 tolerance; sampling means within 5 standard errors. The conv stack has
 * no finite-difference check of its own here: its ops are gradchecked in
 * test_ops_conv/test_ops_activ, and the composition is held to PyTorch's
 * gradients above (f32 central differences through 9 ReLU layers are
 * either kink-bound at eps 1e-3 or noise-bound, ~4e-3, at eps 1e-4). */
#include "testutil.h"
#include "tessera/elm.h"
#include "tessera/imgtok.h"
#include "tessera/ops.h"
#include "tessera/safetensors.h"

#include <math.h>
#include <string.h>

static void test_bernoulli(void) {
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    tsr_rng_seed(&c.rng, 7);
    /* identity gradient through the op and sigma' through the composition */
    float xv[24], r[24];
    tu_randn(xv, 24, 1, 2.0f);
    tu_randn(r, 24, 2, 1.0f);
    for (int s = 0; s < 2; s++) {
        tsr_ctx_reset(&c);
        tsr_tensor *x = tsr_from_f32(&c, TSR_DIMS(2, 3, 4), xv);
        x->requires_grad = true;
        tsr_tensor *p = tsr_sigmoid(&c, x);
        tsr_tensor *b = tsr_bernoulli_st(&c, p, s == 1);
        tsr_backward_with(&c, b, r);
        int exact = 0, ok = 0;
        for (int i = 0; i < 24; i++) {
            exact += p->grad[i] == r[i];
            double sg = 1.0 / (1.0 + exp(-(double)xv[i]));
            ok += fabs(x->grad[i] - r[i] * sg * (1 - sg)) <= 1e-6 + 1e-5 * fabs(r[i]);
            if (s == 0) TU_CHECK(tsr_f32(b)[i] == (tsr_f32(p)[i] > 0.5f ? 1.0f : 0.0f), "threshold %d", i);
            else TU_CHECK(tsr_f32(b)[i] == 0.0f || tsr_f32(b)[i] == 1.0f, "bits are 0/1");
        }
        TU_CHECK(exact == 24, "bernoulli_st dp == dout exactly (%d/24, sample %d)", exact, s);
        TU_CHECK(ok == 24, "d sigmoid(x) through ST (%d/24)", ok);
    }
    /* sampling statistics: mean of 1[u<p] within 5 standard errors */
    const float ps[5] = {0.0f, 0.1f, 0.5f, 0.9f, 1.0f};
    const int n = 40000;
    for (int k = 0; k < 5; k++) {
        tsr_ctx_reset(&c);
        tsr_tensor *p = tsr_new(&c, TSR_F32, TSR_DIMS(n));
        for (int i = 0; i < n; i++) tsr_f32(p)[i] = ps[k];
        tsr_tensor *b = tsr_bernoulli_st(&c, p, true);
        double m = 0, lag = 0;
        for (int i = 0; i < n; i++) m += tsr_f32(b)[i];
        for (int i = 1; i < n; i++) lag += tsr_f32(b)[i] * tsr_f32(b)[i - 1];
        m /= n, lag /= (n - 1);
        double se = sqrt(ps[k] * (1 - ps[k]) / n) + 1e-12;
        TU_CHECK(fabs(m - ps[k]) <= 5 * se, "bernoulli mean %.4f for p %.2f", m, (double)ps[k]);
        /* neighbours independent: E[b_i b_{i-1}] = p^2 */
        TU_CHECK(fabs(lag - ps[k] * ps[k]) <= 5 * se + 1e-12, "lag-1 product %.4f for p %.2f", lag,
                 (double)ps[k]);
    }
    /* same rng state, same bits */
    uint8_t first[256];
    for (int t = 0; t < 2; t++) {
        tsr_ctx_reset(&c);
        tsr_rng_seed(&c.rng, 99);
        tsr_tensor *p = tsr_new(&c, TSR_F32, TSR_DIMS(256));
        for (int i = 0; i < 256; i++) tsr_f32(p)[i] = (float)i / 256.0f;
        tsr_tensor *b = tsr_bernoulli_st(&c, p, true);
        int same = 0;
        for (int i = 0; i < 256; i++) {
            if (t == 0) first[i] = (uint8_t)tsr_f32(b)[i];
            else same += first[i] == (uint8_t)tsr_f32(b)[i];
        }
        if (t) TU_CHECK(same == 256, "bernoulli deterministic from the rng state");
    }
    tsr_ctx_free(&c);
}

static void test_vq(void) {
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    const int B = 2, D = 3, N = 5;
    float zv[2 * 3 * 49], ev[5 * 3], r[2 * 3 * 49];
    tu_randn(zv, B * D * 49, 3, 1.0f);
    tu_randn(ev, N * D, 4, 1.0f);
    tu_randn(r, B * D * 49, 5, 1.0f);
    tsr_tensor *z = tsr_from_f32(&c, TSR_DIMS(B, D, 7, 7), zv);
    z->requires_grad = true;
    tsr_tensor *e = tsr_from_f32(&c, TSR_DIMS(N, D), ev);
    tsr_tensor *ids = NULL;
    tsr_tensor *q = tsr_vq_st(&c, z, e, &ids);
    int nearest = 0, copied = 0;
    for (int b = 0; b < B; b++)
        for (int s = 0; s < 49; s++) {
            int best = 0;
            double bd = INFINITY;
            for (int k = 0; k < N; k++) {
                double dd = 0;
                for (int d = 0; d < D; d++) {
                    double t = zv[(b * D + d) * 49 + s] - ev[k * D + d];
                    dd += t * t;
                }
                if (dd < bd) bd = dd, best = k;
            }
            int id = tsr_i32(ids)[b * 49 + s];
            nearest += id == best;
            for (int d = 0; d < D; d++) copied += tsr_f32(q)[(b * D + d) * 49 + s] == ev[id * D + d];
        }
    TU_CHECK(nearest == B * 49, "vq picks the nearest code (%d/%d)", nearest, B * 49);
    TU_CHECK(copied == B * 49 * D, "vq output is the code vector");
    tsr_backward_with(&c, q, r);
    int exact = 0;
    for (int i = 0; i < B * D * 49; i++) exact += z->grad[i] == r[i];
    TU_CHECK(exact == B * D * 49, "vq_st dz == dout exactly");

    /* EMA update, hand-worked: N=3, D=1 (bits=1), decay 0.5, one image
     * whose 49 vectors are 0..48; ids: 10 to code 0, 39 to code 1, none to 2 */
    tsr_imgtok_cfg cfg = tsr_imgtok_default_cfg(TSR_IMGTOK_VQ);
    cfg.bits = 1, cfg.codebook = 3, cfg.ch = 4, cfg.ema_decay = 0.5f;
    tsr_imgtok m;
    TU_CHECK(tsr_imgtok_init(&m, &cfg, 1).code == TSR_OK, "vq init");
    tsr_f32(m.cluster_size)[0] = 2, tsr_f32(m.cluster_size)[1] = 4, tsr_f32(m.cluster_size)[2] = 0.04f;
    tsr_f32(m.embed_sum)[0] = 2, tsr_f32(m.embed_sum)[1] = 8, tsr_f32(m.embed_sum)[2] = 0;
    tsr_tensor *zz = tsr_new(&c, TSR_F32, TSR_DIMS(1, 1, 7, 7));
    tsr_tensor *ii = tsr_new(&c, TSR_I32, TSR_DIMS(1, 7, 7));
    double s0 = 0, s1 = 0;
    for (int s = 0; s < 49; s++) {
        tsr_f32(zz)[s] = (float)s;
        tsr_i32(ii)[s] = s < 10 ? 0 : 1;
        *(s < 10 ? &s0 : &s1) += s;
    }
    tsr_rng rng;
    tsr_rng_seed(&rng, 3);
    int restarted = tsr_imgtok_vq_update(&m, zz, ii, 0.03f, &rng);
    /* code 2: 0.5*0.04 = 0.02 < 0.03 -> restarted at a batch vector */
    TU_CHECK(restarted == 1, "one dead code restarted (%d)", restarted);
    const float *cs = tsr_f32(m.cluster_size), *es = tsr_f32(m.embed_sum), *E = tsr_f32(m.codebook);
    TU_CHECK(cs[0] == 0.5f * 2 + 0.5f * 10 && cs[1] == 0.5f * 4 + 0.5f * 39, "ema cluster sizes %g %g",
             (double)cs[0], (double)cs[1]);
    TU_CHECK(fabsf(es[0] - (float)(1 + 0.5 * s0)) < 1e-4f && fabsf(es[1] - (float)(4 + 0.5 * s1)) < 1e-3f,
             "ema sums %g %g", (double)es[0], (double)es[1]);
    double tot = 6 + 21.5 + 0.02;
    double n0 = (6 + 1e-5) / (tot + 3e-5) * tot;
    TU_CHECK(fabs(E[0] - es[0] / n0) < 1e-4, "codebook = sum / smoothed count (%g)", (double)E[0]);
    TU_CHECK(cs[2] == 1.0f && E[2] == floorf(E[2]) && E[2] >= 0 && E[2] < 49 && es[2] == E[2],
             "restarted code sits on a batch vector (%g)", (double)E[2]);
    tsr_imgtok_free(&m);
    tsr_ctx_free(&c);
}

/* A gradient against PyTorch: rtol 1e-4, atol 1e-5 or 1e-3 of the
 * reference's largest magnitude when that is smaller (the encoder's
 * gradients are ~1e-7 in the BAE case and the straight-through gradient
 * ~1e-5 in the VQ case: a plain atol 1e-5 could not see them wrong). */
static void close_grad(const tref *r, const char *name, const float *got, int64_t n) {
    const tref_entry *e = tref_get(r, name);
    double mx = 0;
    for (int64_t i = 0; i < e->numel; i++) mx = fmax(mx, fabs(((const float *)e->data)[i]));
    tu_close_ref(r, name, got, n, fmin(1e-5, 1e-3 * mx), 1e-4);
}

/* The VQ tokenizer against PyTorch (imgtok.tref "vq.*"): the same tiny
 * network with an 8-entry codebook; z, the chosen codes (exact), q, the
 * reconstruction, the commitment term, d(L1 + L2)/dz through the
 * straight-through estimator alone, L1 + L2 + 0.25 * commitment and the
 * gradients of the input and every weight (the codebook is a buffer moved
 * by EMA, no gradient). */
static void test_vq_vs_torch(void) {
    tref *r = tref_load("tests/refs/imgtok.tref");
    tsr_imgtok_cfg cfg = tsr_imgtok_default_cfg(TSR_IMGTOK_VQ);
    cfg.bits = 3, cfg.ch = 4, cfg.codebook = 8, cfg.commit = 0.25f;
    tsr_imgtok m;
    TU_CHECK(tsr_imgtok_init(&m, &cfg, 1).code == TSR_OK, "init tiny vq");
    char nm[160];
    for (int i = 0; i < m.params.n; i++) {
        tsr_tensor *t = m.params.items[i];
        if (t == m.cluster_size || t == m.embed_sum) continue;
        snprintf(nm, sizeof nm, "vq.%s", t == m.codebook ? "codebook" : t->name);
        const tref_entry *e = tref_get(r, nm);
        TU_CHECK(e->numel == t->numel, "%s size", t->name);
        if (e->numel == t->numel) memcpy(t->data, e->data, sizeof(float) * (size_t)t->numel);
    }
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 22);
    tsr_tensor *x = tref_tensor(&c, r, "vq.x", true);
    tsr_imgtok_out o;
    tsr_imgtok_forward(&c, &m, x, false, &o);
    tu_close_ref(r, "vq.z", tsr_f32(o.z), o.z->numel, 1e-5, 1e-4);
    const tref_entry *ie = tref_get(r, "vq.ids");
    TU_CHECK(o.ids && ie->numel == o.ids->numel && !memcmp(ie->data, o.ids->data, 4 * (size_t)ie->numel),
             "vq codes as PyTorch's");
    tu_close_ref(r, "vq.q", tsr_f32(o.q), o.q->numel, 0, 0);
    tu_close_ref(r, "vq.y", tsr_f32(o.recon), o.recon->numel, 1e-5, 1e-4);
    tu_close_ref(r, "vq.commit", tsr_f32(o.commit), 1, 1e-6, 1e-5);
    /* the straight-through path alone: d(L1 + L2)/dz */
    tsr_tensor *rec = tsr_add(&c, tsr_l1(&c, o.recon, x), tsr_mse(&c, o.recon, x));
    tsr_backward(&c, rec);
    close_grad(r, "vq.gz_rec", tsr_grad(&c, o.z), o.z->numel);
    /* the training loss, on a fresh tape */
    tsr_ctx_reset(&c);
    x = tref_tensor(&c, r, "vq.x", true);
    tsr_imgtok_forward(&c, &m, x, false, &o);
    tsr_tensor *loss = tsr_add(&c, tsr_add(&c, tsr_l1(&c, o.recon, x), tsr_mse(&c, o.recon, x)),
                               tsr_scale(&c, o.commit, cfg.commit));
    tu_close_ref(r, "vq.loss", tsr_f32(loss), 1, 1e-6, 1e-5);
    tsr_params_zero_grad(&m.params);
    tsr_backward(&c, loss);
    close_grad(r, "vq.gx", x->grad, x->numel);
    int n = 0;
    for (int i = 0; i < m.params.n; i++) {
        tsr_tensor *t = m.params.items[i];
        if (t == m.codebook || t == m.cluster_size || t == m.embed_sum) continue;
        snprintf(nm, sizeof nm, "vq.grad.%s", t->name);
        close_grad(r, nm, t->grad, t->numel);
        n++;
    }
    TU_CHECK(n == 20, "%d weight gradients compared", n);
    tsr_imgtok_free(&m);
    tsr_ctx_free(&c);
    tref_free(r);
}

static void test_vs_torch(void) {
    tref *r = tref_load("tests/refs/imgtok.tref");
    tsr_imgtok_cfg cfg = tsr_imgtok_default_cfg(TSR_IMGTOK_BAE);
    cfg.bits = 3, cfg.ch = 4;
    tsr_imgtok m;
    TU_CHECK(tsr_imgtok_init(&m, &cfg, 1).code == TSR_OK, "init tiny");
    char nm[160];
    for (int i = 0; i < m.params.n; i++) {
        tsr_tensor *t = m.params.items[i];
        snprintf(nm, sizeof nm, "tok.%s", t->name);
        const tref_entry *e = tref_get(r, nm);
        TU_CHECK(e->numel == t->numel, "%s size", t->name);
        memcpy(t->data, e->data, sizeof(float) * (size_t)t->numel);
    }
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 22);
    tsr_tensor *x = tref_tensor(&c, r, "tok.x", true);
    tsr_imgtok_out o;
    tsr_imgtok_forward(&c, &m, x, false, &o);
    tu_close_ref(r, "tok.z", tsr_f32(o.z), o.z->numel, 1e-5, 1e-4);
    tu_close_ref(r, "tok.q", tsr_f32(o.q), o.q->numel, 0, 0);
    tu_close_ref(r, "tok.y", tsr_f32(o.recon), o.recon->numel, 1e-5, 1e-4);
    tsr_tensor *loss = tsr_add(&c, tsr_l1(&c, o.recon, x), tsr_mse(&c, o.recon, x));
    tu_close_ref(r, "tok.loss", tsr_f32(loss), 1, 1e-6, 1e-5);
    tsr_params_zero_grad(&m.params);
    tsr_backward(&c, loss);
    close_grad(r, "tok.gx", x->grad, x->numel);
    for (int i = 0; i < m.params.n; i++) {
        tsr_tensor *t = m.params.items[i];
        snprintf(nm, sizeof nm, "tok.grad.%s", t->name);
        close_grad(r, nm, t->grad, t->numel);
    }
    /* inference helpers agree with the graph: bits are 1[z > 0] */
    uint8_t bits[2 * 49 * 3];
    float rec[2 * 784];
    tsr_imgtok_encode_images(&m, tsr_f32(x), 2, bits, NULL);
    int agree = 0;
    for (int b = 0; b < 2; b++)
        for (int s = 0; s < 49; s++)
            for (int k = 0; k < 3; k++)
                agree += bits[(b * 49 + s) * 3 + k] == (tsr_f32(o.q)[(b * 3 + k) * 49 + s] > 0.5f);
    TU_CHECK(agree == 2 * 49 * 3, "encode_images bits layout (N,7,7,K)");
    tsr_imgtok_decode_codes(&m, bits, NULL, 2, rec);
    tu_close("decode_codes == graph recon", rec, tsr_f32(o.recon), 2 * 784, 1e-6, 1e-5);
    tsr_imgtok_reconstruct(&m, tsr_f32(x), 2, rec);
    tu_close("reconstruct == graph recon", rec, tsr_f32(o.recon), 2 * 784, 1e-6, 1e-5);
    uint8_t badb[2 * 49 * 3];
    memcpy(badb, bits, sizeof badb);
    badb[77] = 2;
    TU_CHECK(tsr_imgtok_check_codes(&m, bits, NULL, 2).code == TSR_OK, "valid bits accepted");
    TU_CHECK(tsr_imgtok_check_codes(&m, badb, NULL, 2).code != TSR_OK, "bit 2 rejected");

    /* save / load round trip keeps every tensor and the config */
    const char *path = tu_tmp("test_imgtok.safetensors");
    TU_CHECK(tsr_imgtok_save(&m, path, NULL).code == TSR_OK, "save");
    tsr_imgtok m2;
    tsr_status st = tsr_imgtok_load(&m2, path);
    TU_CHECK(st.code == TSR_OK, "load: %s", st.msg);
    if (!st.code) {
        TU_CHECK(m2.cfg.kind == TSR_IMGTOK_BAE && m2.cfg.bits == 3 && m2.cfg.ch == 4, "cfg restored");
        int same = 0;
        for (int i = 0; i < m.params.n; i++)
            same += memcmp(m.params.items[i]->data, m2.params.items[i]->data,
                           sizeof(float) * (size_t)m.params.items[i]->numel) == 0;
        TU_CHECK(same == m.params.n, "weights restored");
        tsr_imgtok_free(&m2);
    }
    remove(path);
    st = tsr_imgtok_load(&m2, "models/fmnist_cnn.safetensors");
    TU_CHECK(st.code == TSR_ERR_FORMAT && strstr(st.msg, "not a tessera image tokenizer"),
             "a classifier checkpoint is refused: %s", st.msg);
    tsr_imgtok_free(&m);
    tsr_ctx_free(&c);
    tref_free(r);
}

/* a tokenizer small enough to train in milliseconds: batch 16, no logging */
static tsr_elm_tok_train_opts tiny_train_opts(tsr_imgtok_kind kind, int epochs, int64_t limit) {
    tsr_elm_tok_train_opts o = tsr_elm_tok_default_train_opts(kind);
    o.cfg.ch = 4, o.cfg.bits = 4, o.cfg.codebook = 16;
    o.train.epochs = epochs, o.batch = 16, o.train_limit = limit, o.train.warmup = 1, o.train.ckpt_every = 0,
    o.train.log_every = 0;
    return o;
}

/* N steps straight == N/2, stop, resume, N/2: bit-identical weights */
static bool read_all(const char *path, tsr_st_file *f) { return tsr_st_read(path, f).code == TSR_OK; }
static void test_resume(tsr_imgtok_kind kind) {
    const char *a = tu_tmp("test_imgtok_a.safetensors"), *b = tu_tmp("test_imgtok_b.safetensors");
    tsr_elm_tok_train_opts o = tiny_train_opts(kind, 2, 96);
    o.train.warmup = 2;
    tsr_elm_tok_train_result r;
    o.train.out = a;
    tsr_status st = tsr_elm_tok_train(&o, &r);
    TU_CHECK(st.code == TSR_OK && r.finished && r.steps == 12, "straight run: %s", st.msg);
    o.train.out = b, o.train.stop_after = 5;
    st = tsr_elm_tok_train(&o, &r);
    TU_CHECK(st.code == TSR_OK && !r.finished && r.steps == 5, "stopped run: %s", st.msg);
    o.train.stop_after = 0, o.train.resume = true;
    st = tsr_elm_tok_train(&o, &r);
    TU_CHECK(st.code == TSR_OK && r.finished && r.steps == 12, "resumed run: %s", st.msg);
    tsr_st_file fa, fb;
    if (read_all(a, &fa) && read_all(b, &fb)) {
        int same = fa.n == fb.n;
        for (int i = 0; same && i < fa.n; i++) {
            const tsr_st_tensor *tb = tsr_st_find(&fb, fa.t[i].name);
            same = tb && tb->nbytes == fa.t[i].nbytes && memcmp(tb->data, fa.t[i].data, tb->nbytes) == 0;
        }
        TU_CHECK(same, "%s: resumed weights bit-identical to the straight run",
                 tsr_imgtok_kind_name(kind));
        tsr_st_free(&fa), tsr_st_free(&fb);
    } else {
        TU_CHECK(false, "read checkpoints");
    }
    /* a resume under other settings is refused */
    o.train.lr *= 2;
    st = tsr_elm_tok_train(&o, &r);
    TU_CHECK(st.code == TSR_ERR_ARG && strstr(st.msg, "train.lr"), "changed lr refused: %s", st.msg);
    char sp[256];
    tsr_train_state_path(a, sp, sizeof sp), remove(sp), remove(a);
    tsr_train_state_path(b, sp, sizeof sp), remove(sp), remove(b);
}

/* --init + --decoder-only: the encoder, the code projection and the VQ
 * codebook stay byte-identical (so codes do not change), the decoder moves */
static void test_decoder_only(tsr_imgtok_kind kind) {
    const char *a = tu_tmp("test_imgtok_da.safetensors"), *b = tu_tmp("test_imgtok_db.safetensors");
    tsr_elm_tok_train_opts o = tiny_train_opts(kind, 1, 64);
    tsr_elm_tok_train_result r;
    o.train.out = a;
    tsr_status st = tsr_elm_tok_train(&o, &r);
    TU_CHECK(st.code == TSR_OK && r.finished, "base run: %s", st.msg);
    tsr_elm_tok_train_opts d = o;
    d.cfg.ch = 8; /* ignored: the config is the init checkpoint's */
    d.init = a, d.decoder_only = true, d.train.out = b, d.train.seed = 7;
    st = tsr_elm_tok_train(&d, &r);
    TU_CHECK(st.code == TSR_OK && r.finished && r.steps == 4, "decoder-only run: %s", st.msg);
    tsr_st_file fa, fb;
    if (read_all(a, &fa) && read_all(b, &fb)) {
        int enc_same = 1, n_enc = 0, dec_moved = 0;
        for (int i = 0; i < fa.n; i++) {
            const tsr_st_tensor *tb = tsr_st_find(&fb, fa.t[i].name);
            bool same = tb && tb->nbytes == fa.t[i].nbytes && memcmp(tb->data, fa.t[i].data, tb->nbytes) == 0;
            const char *nm = fa.t[i].name;
            if (strncmp(nm, "enc", 3) == 0 || strncmp(nm, "quant.", 6) == 0 || strncmp(nm, "vq.", 3) == 0)
                enc_same &= same, n_enc++;
            else if (strncmp(nm, "dec", 3) == 0 && !same)
                dec_moved++;
        }
        TU_CHECK(n_enc >= 10 && enc_same, "%s: %d encoder/code tensors unchanged",
                 tsr_imgtok_kind_name(kind), n_enc);
        TU_CHECK(dec_moved > 0, "%s: %d decoder tensors trained", tsr_imgtok_kind_name(kind), dec_moved);
        tsr_st_free(&fa), tsr_st_free(&fb);
    } else {
        TU_CHECK(false, "read checkpoints");
    }
    d.init = NULL;
    st = tsr_elm_tok_train(&d, &r);
    TU_CHECK(st.code == TSR_ERR_ARG, "--decoder-only without --init refused: %s", st.msg);
    d.init = tu_tmp("test_imgtok_missing.safetensors");
    st = tsr_elm_tok_train(&d, &r);
    TU_CHECK(st.code != TSR_OK, "a missing --init checkpoint is an error: %s", st.msg);
    char sp[256];
    tsr_train_state_path(a, sp, sizeof sp), remove(sp), remove(a);
    tsr_train_state_path(b, sp, sizeof sp), remove(sp), remove(b);
}

int main(void) {
    tsr_threads_set(0);
    test_bernoulli();
    test_vq();
    test_vq_vs_torch();
    test_vs_torch();
    test_resume(TSR_IMGTOK_BAE);
    test_resume(TSR_IMGTOK_VQ);
    test_decoder_only(TSR_IMGTOK_BAE);
    test_decoder_only(TSR_IMGTOK_VQ);
    return tu_finish("imgtok");
}
