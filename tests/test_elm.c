/* Tests for the elm generators (src/models/elm/gen.c, infer.c, train.c,
 * gen_eval.c): the vocabulary split (code <-> sub-token round trip, the
 * concatenated sub-token embeddings and the per-sub-token heads against a
 * hand computation), both generators on a tiny config against PyTorch
 * (tools/refs/gen_elm.py: logits, loss, every parameter gradient; BAE codes
 * as 2 sub-tokens, and VQ codes as one), the plain-C inference forward against the autograd
 * forward (AR causal and MLM bidirectional), AR causality, KV-cache
 * sampling identical to re-running the prefix (same seed -> same tokens,
 * also across batch sizes), the MaskGIT schedule and decoding, the
 * token-KL figures on closed forms, a short loss trajectory, and exact
 * resume of the trainer.
 * Tolerances: inference vs autograd logits atol 2e-4 rtol 1e-3 (different
 * f32 summation orders over <= 176 terms through 2 blocks); embedding /
 * head vs hand computation in double atol 1e-5; vs PyTorch (float64)
 * logits and gradients atol 1e-5 rtol 1e-4, loss rtol 1e-5; everything about tokens
 * and schedules is exact. No new op is introduced (the model composes ops
 * gradchecked in test_ops_*), so there is no finite-difference check here. */
#include "testutil.h"
#include "tessera/elm.h"
#include "tessera/ops.h"
#include "tessera/safetensors.h"
#include "tessera/train.h"

#include <math.h>
#include <string.h>

static tsr_elm_cfg tiny_cfg(tsr_elm_kind kind, int n_sub) {
    tsr_elm_cfg g = {.kind = kind, .tok = TSR_IMGTOK_BAE, .bits = 8, .codebook = 0, .n_sub = n_sub,
                     .dim = 16, .n_layers = 2, .n_heads = 2, .hidden = 24, .rope_theta = 100.0f};
    return g;
}

/* random weights of a larger scale than the init, so attention is not flat */
static void perturb(tsr_elm_model *m, uint64_t seed) {
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    for (int i = 0; i < m->params.n; i++) {
        tsr_tensor *t = m->params.items[i];
        for (int64_t k = 0; k < t->numel; k++) tsr_f32(t)[k] += 0.3f * tsr_rng_normal(&r);
    }
}

static void random_bits(uint8_t *b, int64_t n, uint64_t seed) {
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) b[i] = (uint8_t)(tsr_rng_u64(&r) & 1);
}

static void test_split(void) {
    const int64_t n = 3, P = TSR_ELM_POS;
    uint8_t bits[3 * 49 * 8], back[3 * 49 * 8];
    random_bits(bits, n * P * 8, 5);
    for (int S = 1; S <= 4; S *= 2) {
        tsr_elm_cfg g = tiny_cfg(TSR_ELM_AR, S);
        tsr_elm_model m;
        tsr_status st = tsr_elm_init(&m, &g, 1);
        TU_CHECK(st.code == 0, "init S=%d: %s", S, st.msg);
        TU_CHECK(m.sub_vocab[0] == 1 << (8 / S), "sub vocab %d for S=%d", m.sub_vocab[0], S);
        int32_t sub[3 * 49 * 4];
        tsr_elm_split_codes(&m, bits, NULL, n, sub);
        /* sub-token j of position i holds bits [j*b, (j+1)*b) little-endian */
        int b = 8 / S;
        bool ok = true;
        for (int64_t i = 0; i < n * P; i++)
            for (int j = 0; j < S; j++) {
                int v = 0;
                for (int t = 0; t < b; t++) v += bits[i * 8 + j * b + t] << t;
                ok &= sub[i * S + j] == v;
            }
        TU_CHECK(ok, "split values S=%d", S);
        memset(back, 9, sizeof back);
        tsr_elm_join_codes(&m, sub, n, back, NULL);
        TU_CHECK(memcmp(back, bits, (size_t)(n * P * 8)) == 0, "join(split) S=%d", S);

        /* embedding = in_proj (concat_j E_j[sub_j]); head j = W_j h */
        perturb(&m, 11);
        tsr_ctx c;
        tsr_ctx_init(&c, 1 << 20);
        tsr_tensor *sid = tsr_new(&c, TSR_I32, TSR_DIMS(1, 2, S));
        memcpy(tsr_i32(sid), sub, sizeof(int32_t) * 2 * S);
        tsr_tensor *e = tsr_elm_embed_codes(&c, &m, sid);
        const int C = g.dim, E = C / S;
        float want[2 * 16], inf[16];
        for (int p = 0; p < 2; p++) {
            for (int o = 0; o < C; o++) {
                double acc = 0;
                for (int j = 0; j < S; j++)
                    for (int k = 0; k < E; k++)
                        acc += (double)tsr_f32(m.in_proj)[o * C + j * E + k] *
                               tsr_f32(m.tok_embed[j])[sub[p * S + j] * E + k];
                want[p * C + o] = (float)acc;
            }
        }
        tu_close("embed_codes", tsr_f32(e), want, 2 * C, 1e-5, 1e-5);
        tsr_elm_infer_embed(&m, 0, sub + S, inf);
        tu_close("infer_embed", inf, want + C, C, 1e-5, 1e-5);
        float h[16], lg[256], lw[256];
        tu_randn(h, C, 3, 1.0f);
        for (int j = 0; j < S; j++) {
            tsr_elm_infer_head(&m, j, h, lg);
            for (int v = 0; v < m.sub_vocab[j]; v++) {
                double acc = 0;
                for (int k = 0; k < C; k++) acc += (double)tsr_f32(m.head[j])[v * C + k] * h[k];
                lw[v] = (float)acc;
            }
            tu_close("head", lg, lw, m.sub_vocab[j], 1e-5, 1e-5);
        }
        tsr_ctx_free(&c);
        tsr_elm_free(&m);
    }
    /* bad splits are user errors */
    tsr_elm_cfg g = tiny_cfg(TSR_ELM_AR, 3);
    tsr_elm_model m;
    TU_CHECK(tsr_elm_init(&m, &g, 1).code == TSR_ERR_ARG, "8 bits into 3 sub-tokens must fail");
    g = tiny_cfg(TSR_ELM_AR, 1);
    g.tok = TSR_IMGTOK_VQ, g.codebook = 64, g.bits = 0, g.n_sub = 2;
    TU_CHECK(tsr_elm_init(&m, &g, 1).code == TSR_ERR_ARG, "VQ with 2 sub-tokens must fail");
}

/* inference hidden -> logits of every position, to compare with autograd */
static void infer_logits(const tsr_elm_model *m, const int32_t *sub, const int32_t *labels,
                         const uint8_t *mask, int B, float *out /* (B,49,V0) for head 0 */) {
    const int C = m->cfg.dim, S = m->cfg.n_sub, T = TSR_ELM_POS + 1, V = m->sub_vocab[0];
    const bool ar = m->cfg.kind == TSR_ELM_AR;
    tsr_elm_infer s;
    tsr_elm_infer_init(&s, m, B, T);
    const int Tin = ar ? T - 1 : T; /* AR: the last code is never an input */
    float *x = malloc(sizeof(float) * (size_t)B * T * C), *h = malloc(sizeof(float) * (size_t)B * T * C);
    int32_t tk[TSR_ELM_MAX_SUB];
    for (int b = 0; b < B; b++) {
        tsr_elm_infer_embed(m, labels[b], NULL, x + (size_t)b * Tin * C);
        for (int p = 0; p + 1 < Tin; p++) {
            for (int j = 0; j < S; j++)
                tk[j] = (!ar && mask[b * TSR_ELM_POS + p]) ? m->sub_vocab[j] : sub[(b * TSR_ELM_POS + p) * S + j];
            tsr_elm_infer_embed(m, 0, tk, x + ((size_t)b * Tin + 1 + p) * C);
        }
    }
    tsr_elm_infer_forward(&s, x, Tin, ar, h);
    for (int b = 0; b < B; b++)
        for (int p = 0; p < TSR_ELM_POS; p++)
            tsr_elm_infer_head(m, 0, h + ((size_t)b * Tin + (ar ? p : p + 1)) * C, out + ((size_t)b * TSR_ELM_POS + p) * V);
    free(x), free(h);
    tsr_elm_infer_free(&s);
}

static void test_infer_vs_autograd(void) {
    for (int kind = 0; kind < 2; kind++) {
        tsr_elm_cfg g = tiny_cfg((tsr_elm_kind)kind, 2);
        tsr_elm_model m;
        tsr_elm_init(&m, &g, 2);
        perturb(&m, 3);
        const int B = 2, P = TSR_ELM_POS, V = m.sub_vocab[0];
        uint8_t bits[2 * 49 * 8], mask[2 * 49];
        random_bits(bits, B * P * 8, 9);
        random_bits(mask, B * P, 10);
        int32_t sub[2 * 49 * 2], labels[2] = {3, TSR_ELM_CLASSES};
        tsr_elm_split_codes(&m, bits, NULL, B, sub);
        tsr_ctx c;
        tsr_ctx_init(&c, 1 << 22);
        tsr_tensor *lg[TSR_ELM_MAX_SUB];
        tsr_elm_logits(&c, &m, sub, labels, mask, B, lg);
        float *inf = malloc(sizeof(float) * B * P * V);
        infer_logits(&m, sub, labels, mask, B, inf);
        tu_close(kind ? "mlm infer vs autograd" : "ar infer vs autograd", inf, tsr_f32(lg[0]),
                 (int64_t)B * P * V, 2e-4, 1e-3);
        if (kind == TSR_ELM_AR) {
            /* causality: changing code 30 changes no logit before position 31 */
            float before[49 * 16];
            memcpy(before, tsr_f32(lg[0]), sizeof(float) * 31 * V);
            sub[30 * 2] ^= 5;
            tsr_ctx_reset(&c);
            tsr_elm_logits(&c, &m, sub, labels, mask, B, lg);
            TU_CHECK(memcmp(before, tsr_f32(lg[0]), sizeof(float) * 31 * V) == 0, "AR causality");
            TU_CHECK(memcmp(before + 31 * V, tsr_f32(lg[0]) + 31 * V, sizeof(float) * V) != 0,
                     "AR: code 30 must change the prediction of code 31");
        }
        free(inf);
        tsr_ctx_free(&c);
        tsr_elm_free(&m);
    }
}

static void test_kv_cache(void) {
    tsr_elm_cfg g = tiny_cfg(TSR_ELM_AR, 2);
    tsr_elm_model m;
    tsr_elm_init(&m, &g, 4);
    perturb(&m, 5);
    const int n = 5, P = TSR_ELM_POS, S = 2;
    int32_t labels[5] = {0, 1, 2, 9, TSR_ELM_CLASSES};
    int32_t a[5 * 49 * 2], b[5 * 49 * 2], c2[5 * 49 * 2];
    tsr_elm_sample_opts o = tsr_elm_default_sample_opts();
    o.top_k = 7, o.top_p = 0.9f, o.cfg_scale = 2.5f, o.seed = 42;
    for (int sched = 0; sched < 2; sched++) {
        o.cfg_sched = (tsr_elm_cfg_sched)sched;
        o.kv_cache = true, o.batch = 5;
        tsr_elm_sample(&m, &o, labels, n, a);
        o.kv_cache = false;
        tsr_elm_sample(&m, &o, labels, n, b);
        TU_CHECK(memcmp(a, b, sizeof a) == 0, "KV cache == recomputation (sched %d)", sched);
        o.kv_cache = true, o.batch = 2;
        tsr_elm_sample(&m, &o, labels, n, c2);
        TU_CHECK(memcmp(a, c2, sizeof a) == 0, "samples independent of the batch size");
    }
    bool in_range = true, varied = false;
    for (int i = 0; i < n * P * S; i++) in_range &= a[i] >= 0 && a[i] < 16, varied |= a[i] != a[0];
    TU_CHECK(in_range && varied, "AR samples in range and not constant");
    o.seed = 43;
    tsr_elm_sample(&m, &o, labels, n, b);
    TU_CHECK(memcmp(a, b, sizeof a) != 0, "another seed gives other samples");
    tsr_elm_free(&m);
}

static void test_maskgit(void) {
    /* remaining = floor(49 cos(pi/2 (t+1)/10)), strictly decreasing, 0 at the end */
    const int want[10] = {48, 46, 43, 39, 34, 28, 22, 15, 7, 0};
    for (int t = 0; t < 10; t++)
        TU_CHECK(tsr_elm_maskgit_remaining(t, 10, 49) == want[t], "remaining(%d) = %d, want %d", t,
                 tsr_elm_maskgit_remaining(t, 10, 49), want[t]);
    int prev = 49;
    for (int t = 0; t < 60; t++) {
        int r = tsr_elm_maskgit_remaining(t, 60, 49);
        TU_CHECK(r >= 0 && (r < prev || prev == 0), "strictly decreasing at t=%d", t);
        prev = r;
    }
    TU_CHECK(tsr_elm_maskgit_remaining(0, 1, 49) == 0, "one step unmasks all");
    TU_CHECK(tsr_elm_mask_count(0.0f, 49) == 49 && tsr_elm_mask_count(0.999f, 49) == 1 &&
                 tsr_elm_mask_count(0.5f, 49) == 35,
             "mask counts %d %d %d", tsr_elm_mask_count(0.0f, 49), tsr_elm_mask_count(0.999f, 49),
             tsr_elm_mask_count(0.5f, 49));
    tsr_elm_cfg g = tiny_cfg(TSR_ELM_MLM, 4);
    tsr_elm_model m;
    tsr_elm_init(&m, &g, 6);
    perturb(&m, 7);
    int32_t labels[3] = {1, 5, TSR_ELM_CLASSES}, a[3 * 49 * 4], b[3 * 49 * 4];
    tsr_elm_sample_opts o = tsr_elm_default_sample_opts();
    o.batch = 3;
    tsr_elm_sample(&m, &o, labels, 3, a);
    bool ok = true;
    for (int i = 0; i < 3 * 49 * 4; i++) ok &= a[i] >= 0 && a[i] < 4; /* no [MASK] (id 4) left */
    TU_CHECK(ok, "MaskGIT output has no mask tokens");
    o.batch = 1;
    tsr_elm_sample(&m, &o, labels, 3, b);
    TU_CHECK(memcmp(a, b, sizeof a) == 0, "MaskGIT samples independent of the batch size");
    tsr_elm_free(&m);
}

static void test_token_kl(void) {
    /* uniform over 4 values in a cycle: unigram KL 0; bigram: 4 of 16 pairs -> log 4 */
    int32_t t[400];
    for (int i = 0; i < 400; i++) t[i] = i % 4;
    double u, b;
    tsr_elm_token_kl(t, 1, 400, 4, &u, &b);
    TU_CHECK(fabs(u) < 1e-12 && fabs(b - log(4.0)) < 1e-4, "KL %g %g", u, b);
    for (int i = 0; i < 400; i++) t[i] = 2;
    tsr_elm_token_kl(t, 1, 400, 8, &u, &b);
    TU_CHECK(fabs(u - log(8.0)) < 1e-12 && fabs(b - 2 * log(8.0)) < 1e-12, "constant KL %g %g", u, b);
}

/* a tiny codes file for the trainer */
static void write_codes(const char *path, int n) {
    uint8_t *bits = malloc((size_t)n * 49 * 8);
    int32_t *lab = malloc(sizeof(int32_t) * n);
    /* class c: every code spells c (learnable from the class token), 5% of bits flipped */
    tsr_rng r;
    tsr_rng_seed(&r, 1);
    for (int i = 0; i < n; i++) {
        lab[i] = i % 10;
        for (int p = 0; p < 49; p++)
            for (int k = 0; k < 8; k++)
                bits[((int64_t)i * 49 + p) * 8 + k] = (uint8_t)(((lab[i] >> (k % 4)) & 1) ^ (tsr_rng_uniform(&r) < 0.05f));
    }
    tsr_st_writer *w = tsr_st_writer_new();
    tsr_st_add(w, "bits", TSR_ST_U8, 4, (int64_t[]){n, 7, 7, 8}, bits);
    tsr_st_add(w, "labels", TSR_ST_I32, 1, (int64_t[]){n}, lab);
    tsr_st_set_meta(w, "kind", "bae");
    tsr_st_write(w, path);
    tsr_st_writer_free(w);
    free(bits), free(lab);
}

static bool same_file_tensors(const char *a, const char *b) {
    tsr_st_file fa, fb;
    if (tsr_st_read(a, &fa).code) return false;
    if (tsr_st_read(b, &fb).code) {
        tsr_st_free(&fa);
        return false;
    }
    bool same = fa.n == fb.n;
    for (int i = 0; same && i < fa.n; i++) {
        const tsr_st_tensor *t = tsr_st_find(&fb, fa.t[i].name);
        same = t && t->nbytes == fa.t[i].nbytes && memcmp(t->data, fa.t[i].data, t->nbytes) == 0;
    }
    tsr_st_free(&fa), tsr_st_free(&fb);
    return same;
}

static void test_train(void) {
    const char *codes = tu_tmp("test_elm_codes.safetensors"), *pa = tu_tmp("test_elm_a.safetensors"),
               *pb = tu_tmp("test_elm_b.safetensors");
    write_codes(codes, 320);
    for (int kind = 0; kind < 2; kind++) {
        tsr_elm_train_opts o = tsr_elm_default_train_opts();
        o.cfg = tiny_cfg((tsr_elm_kind)kind, 2);
        o.codes = codes, o.tokenizer = "none";
        o.train.epochs = 4, o.batch = 32, o.train.warmup = 4, o.train.lr = 5e-3f, o.train.log_every = 0, o.train.ckpt_every = 0;
        o.train.out = pa;
        tsr_elm_train_result r0, r1, r2;
        /* loss after 1 step (stop) vs after the run */
        o.train.stop_after = 1;
        tsr_status st = tsr_elm_train(&o, &r0);
        TU_CHECK(st.code == 0, "train: %s", st.msg);
        o.train.stop_after = 0;
        st = tsr_elm_train(&o, &r1);
        TU_CHECK(st.code == 0 && r1.finished, "train: %s", st.msg);
        TU_CHECK(r1.last_nll < 0.8f * r0.last_nll, "%s loss must fall: %g -> %g", kind ? "mlm" : "ar",
                 (double)r0.last_nll, (double)r1.last_nll);
        /* stop at 17, resume to the end: bit-identical checkpoint */
        o.train.out = pb;
        o.train.stop_after = 17;
        st = tsr_elm_train(&o, &r2);
        TU_CHECK(st.code == 0 && !r2.finished, "stop: %s", st.msg);
        o.train.stop_after = 0, o.train.resume = true;
        st = tsr_elm_train(&o, &r2);
        TU_CHECK(st.code == 0 && r2.finished, "resume: %s", st.msg);
        TU_CHECK(same_file_tensors(pa, pb),
                 "%s: stop + resume == straight run", kind ? "mlm" : "ar");
        /* the checkpoint loads and samples */
        tsr_elm_model m;
        st = tsr_elm_load(&m, o.train.out);
        TU_CHECK(st.code == 0 && m.cfg.kind == (tsr_elm_kind)kind && m.cfg.n_sub == 2, "load: %s", st.msg);
        if (!st.code) tsr_elm_free(&m);
        o.train.resume = false, o.cfg.dim = 32;
        o.train.resume = true;
        TU_CHECK(tsr_elm_train(&o, &r2).code == TSR_ERR_ARG, "resume with another config must fail");
    }
    remove(codes);
    char sp[1200];
    tsr_train_state_path(pa, sp, sizeof sp), remove(sp), remove(pa);
    tsr_train_state_path(pb, sp, sizeof sp), remove(sp), remove(pb);
}

/* One generator against a PyTorch reference file: weights "w.<name>",
 * inputs "sub", "labels", "mask"; for case cs the logits of every head,
 * the loss and every parameter gradient ("<cs>.grad.<name>"). */
static void torch_case(const tref *r, const char *cs, const tsr_elm_cfg *g) {
    const tref_entry *se = tref_get(r, "sub"), *le = tref_get(r, "labels"), *me = tref_get(r, "mask");
    const int64_t B = le->numel;
    uint8_t mask[2 * TSR_ELM_POS];
    TSR_ASSERT(B == 2 && me->numel == B * TSR_ELM_POS && se->numel == B * TSR_ELM_POS * g->n_sub);
    for (int64_t i = 0; i < me->numel; i++) mask[i] = (uint8_t)((const int32_t *)me->data)[i];
    tsr_elm_model m;
    tsr_status st = tsr_elm_init(&m, g, 1);
    TU_CHECK(st.code == 0, "init: %s", st.msg);
    if (st.code) return;
    char nm[200];
    int n_w = tu_ref_load_params(r, &m.params, "w.", NULL);
    TU_CHECK(n_w == m.params.n, "%s: %d of %d parameters in the reference", cs, n_w, m.params.n);
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 22);
    c.grad_enabled = true;
    tsr_tensor *lg[TSR_ELM_MAX_SUB];
    tsr_elm_logits(&c, &m, (const int32_t *)se->data, (const int32_t *)le->data, mask, B, lg);
    for (int j = 0; j < g->n_sub; j++) {
        snprintf(nm, sizeof nm, "%s.logits.%d", cs, j);
        tu_close_ref(r, nm, tsr_f32(lg[j]), lg[j]->numel, 1e-5, 1e-4);
    }
    tsr_ctx_reset(&c);
    tsr_params_zero_grad(&m.params);
    float nll;
    tsr_tensor *loss = tsr_elm_loss(&c, &m, (const int32_t *)se->data, (const int32_t *)le->data, mask, B, &nll);
    snprintf(nm, sizeof nm, "%s.loss", cs);
    tu_close_ref(r, nm, tsr_f32(loss), 1, 1e-5, 1e-5);
    tsr_backward(&c, loss);
    snprintf(nm, sizeof nm, "%s.grad.", cs);
    tu_close_ref_grads(r, &m.params, nm, 1e-5, 1e-4);
    printf("%s (%s) vs PyTorch: loss %.6f, %d parameter gradients\n", cs, r->path, tsr_f32(loss)[0], m.params.n);
    tsr_ctx_free(&c);
    tsr_elm_free(&m);
}

/* Against PyTorch (tools/refs/gen_elm.py): elm.tref holds one weight set
 * run as AR (causal, codes 0..47 in) and as MLM (bidirectional, masked
 * sub-tokens in, loss on them) with 8-bit BAE codes split 2 x 4 bits;
 * elm_vq.tref the one-token path (VQ codes, token_each 1) as MLM. */
static void test_torch(void) {
    tref *r = tref_load("tests/refs/elm.tref");
    for (int k = 0; k < 2; k++) {
        tsr_elm_cfg g = tiny_cfg(k ? TSR_ELM_MLM : TSR_ELM_AR, 2);
        g.hidden = 16;
        torch_case(r, k ? "mlm" : "ar", &g);
    }
    tref_free(r);
    r = tref_load("tests/refs/elm_vq.tref");
    tsr_elm_cfg g = tiny_cfg(TSR_ELM_MLM, 1);
    g.tok = TSR_IMGTOK_VQ, g.codebook = 16, g.n_layers = 1, g.hidden = 16;
    torch_case(r, "mlm", &g);
    tref_free(r);
}

int main(void) {
    tsr_threads_set(0);
    test_split();
    test_torch();
    test_infer_vs_autograd();
    test_kv_cache();
    test_maskgit();
    test_token_kl();
    test_train();
    return tu_finish("elm");
}
