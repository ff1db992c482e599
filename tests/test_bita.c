/* Tests for BiTA (src/models/bita/): the training forward, the decoder,
 * speculative sampling, the adapter file.
 *
 * Tolerances
 * - Training forward vs the PyTorch fixture (tests/refs/bita.tref, float64
 *   reference, float32 here): logits, loss and adapter grads within
 *   atol 2e-5 + rtol 1e-4 (a few hundred f32 ops deep on a 2-layer model).
 * - Ordinary rows through tsr_bita_rows_forward vs tsr_nn_llama_forward:
 *   atol 1e-5 (same ops, different call sequence; BLAS sums may differ).
 * - Mask rows of the inference path (tsr_lm_forward_masked on an f32 copy
 *   with the prompt K/V in cache slots) vs the training forward: atol 1e-4
 *   (different kernels, same maths): this ties the cache layout and the
 *   positions of decoding to what training optimises.
 * - Greedy BiTA generation vs plain greedy: exact (token-identical) for
 *   f32 and bf16 weights, several tree shapes, stop tokens and length caps.
 * - Speculative sampling: empirical frequencies against the exact target
 *   distribution, chi-square with a threshold at p ~ 1e-4 (the rng is
 *   seeded, so the test is deterministic). */
#include "testutil.h"
#include "tessera/cpu.h"
#include "tessera/bita.h"
#include "tessera/decode.h"
#include "tessera/lm.h"
#include "tessera/nn.h"
#include "tessera/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int C, L, H, HKV, HID, V, P, K, n_prompt, n_seq;
} fx_meta;

static fx_meta read_meta(const tref *r) {
    const int32_t *m = tref_get(r, "meta")->data;
    return (fx_meta){m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9]};
}

static tsr_nn_llama_cfg fx_cfg(const fx_meta *f) {
    return (tsr_nn_llama_cfg){f->C, f->L, f->H, f->HKV, f->HID, f->V, 64, 1e-5f, 10000.0f, true};
}

static void load_fixture_model(const tref *r, const fx_meta *f, tsr_nn_llama *m, tsr_params *p) {
    tsr_params_init(p);
    tsr_nn_llama_cfg cfg = fx_cfg(f);
    TSR_ASSERT(tsr_nn_llama_init(m, p, &cfg).code == TSR_OK);
    for (int i = 0; i < p->n; i++) {
        const tref_entry *e = tref_get(r, p->items[i]->name);
        TSR_ASSERT(e->numel == p->items[i]->numel);
        memcpy(tsr_f32(p->items[i]), e->data, sizeof(float) * (size_t)e->numel);
        p->items[i]->requires_grad = false;
    }
}

static void load_fixture_adapter(const tref *r, const fx_meta *f, tsr_bita_train_adapter *a) {
    tsr_nn_llama_cfg cfg = fx_cfg(f);
    tsr_bita_train_adapter_init(a, &cfg, f->K, f->P, 1);
    for (int i = 0; i < a->params.n; i++) {
        const tref_entry *e = tref_get(r, a->params.items[i]->name);
        TSR_ASSERT(e->numel == a->params.items[i]->numel);
        memcpy(tsr_f32(a->params.items[i]), e->data, sizeof(float) * (size_t)e->numel);
    }
}

/* ------------------------------------------------------------ training forward */

static void test_train_forward(void) {
    tref *r = tref_load("tests/refs/bita.tref");
    fx_meta f = read_meta(r);
    tsr_nn_llama m;
    tsr_params base;
    load_fixture_model(r, &f, &m, &base);
    tsr_bita_train_adapter a;
    load_fixture_adapter(r, &f, &a);
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);

    const tref_entry *seq_e = tref_get(r, "seq"), *st_e = tref_get(r, "starts");
    tsr_bita_example ex = {(int32_t *)seq_e->data, f.n_seq, f.n_prompt};
    const int32_t *starts32 = st_e->data;
    int starts[8], G = (int)st_e->numel;
    for (int g = 0; g < G; g++) starts[g] = starts32[g];

    tsr_params_zero_grad(&a.params);
    tsr_tensor *lg;
    tsr_tensor *loss = tsr_bita_example_loss(&c, &m, &a, &ex, starts, G, &lg);
    tu_close_ref(r, "loss", tsr_f32(loss), 1, 2e-5, 1e-4);
    tu_close_ref(r, "mask_logits", tsr_f32(lg), lg->numel, 2e-5, 1e-4);
    tsr_backward(&c, loss);
    tu_close_ref(r, "grad.mask_embed", a.mask_emb->grad, a.mask_emb->numel, 2e-5, 1e-4);
    char nm[64];
    for (int l = 0; l < f.L; l++) {
        snprintf(nm, sizeof nm, "grad.prefix.%d.key", l);
        tu_close_ref(r, nm, a.prefix_k[l]->grad, a.prefix_k[l]->numel, 2e-5, 1e-4);
        snprintf(nm, sizeof nm, "grad.prefix.%d.value", l);
        tu_close_ref(r, nm, a.prefix_v[l]->grad, a.prefix_v[l]->numel, 2e-5, 1e-4);
    }
    /* the base stays frozen: no grads were made for it */
    for (int i = 0; i < base.n; i++) TU_CHECK(base.items[i]->grad == NULL || base.items[i]->grad[0] == 0, "no base grad");
    tsr_ctx_reset(&c);

    /* central differences on a few adapter elements (double-checked via the loss) */
    {
        float *pk = tsr_f32(a.prefix_k[1]), *me = tsr_f32(a.mask_emb);
        float *gp = a.prefix_k[1]->grad, *gm = a.mask_emb->grad;
        float gpk[3] = {gp[0], gp[7], gp[20]}, gme[3] = {gm[1], gm[40], gm[70]};
        int ip[3] = {0, 7, 20}, im[3] = {1, 40, 70};
        const float eps = 1e-2f;
        bool ok = true;
        for (int t = 0; t < 6; t++) {
            float *x = t < 3 ? pk + ip[t] : me + im[t - 3];
            float want = t < 3 ? gpk[t] : gme[t - 3];
            float x0 = *x;
            *x = x0 + eps;
            double lp = tsr_f32(tsr_bita_example_loss(&c, &m, &a, &ex, starts, G, NULL))[0];
            tsr_ctx_reset(&c);
            *x = x0 - eps;
            double lm = tsr_f32(tsr_bita_example_loss(&c, &m, &a, &ex, starts, G, NULL))[0];
            tsr_ctx_reset(&c);
            *x = x0;
            double num = (lp - lm) / (2 * eps);
            if (fabs(num - want) > 2e-3 + 2e-2 * fabs(want)) {
                ok = false;
                fprintf(stderr, "fd %d: numeric %g analytic %g\n", t, num, want);
            }
        }
        TU_CHECK(ok, "finite differences agree with the adapter grads");
    }

    /* ordinary rows: the rows forward (no prompt) equals tsr_nn_llama_forward and torch */
    {
        const int T0 = starts[G - 1];
        tsr_tensor *ids = tsr_new(&c, TSR_I32, TSR_DIMS(1, T0));
        tsr_tensor *pos = tsr_new(&c, TSR_I32, TSR_DIMS(T0));
        tsr_tensor *mask = tsr_zeros(&c, TSR_U8, TSR_DIMS(T0, T0));
        for (int t = 0; t < T0; t++) {
            tsr_i32(ids)[t] = ex.seq[t];
            tsr_i32(pos)[t] = t;
            memset(tsr_u8(mask) + (size_t)t * T0, 1, (size_t)t + 1);
        }
        tsr_tensor *x = tsr_embedding(&c, m.embed_tokens.weight, ids);
        tsr_tensor *h = tsr_bita_rows_forward(&c, &m, NULL, x, pos, mask, 0, NULL, NULL, NULL, NULL);
        tsr_tensor *lo = tsr_linear(&c, h, m.lm_head, NULL);
        tsr_tensor *want = tsr_nn_llama_forward(&c, &m, ids, NULL);
        tu_close("ordinary rows vs tsr_nn_llama_forward", tsr_f32(lo), tsr_f32(want), lo->numel, 1e-5, 0);
        tu_close_ref(r, "ord_logits", tsr_f32(lo), lo->numel, 2e-5, 1e-4);
        tsr_ctx_reset(&c);
    }

    /* inference path: an f32 lm copy, prompt K/V in cache slots 0..P-1,
     * the prompt rows then the group at start s, as decoding lays them out */
    {
        tsr_lm_config cfg = {f.C, f.HID, f.L, f.H, f.HKV, f.V, 64, 10000.0f, 1e-5f, true, TSR_LM_ROPE_HALF};
        tsr_lm_model lm;
        TSR_ASSERT(tsr_lm_model_alloc(&lm, &cfg).code == TSR_OK);
        memcpy((float *)lm.tok_emb, tref_get(r, "model.embed_tokens.weight")->data, sizeof(float) * f.V * f.C);
        memcpy((float *)lm.rms_final, tref_get(r, "model.norm.weight")->data, sizeof(float) * f.C);
        for (int l = 0; l < f.L; l++) {
            tsr_lm_layer *Ly = &lm.layers[l];
            char b[96];
#define CP(dst, leaf, n)                                                   \
    (snprintf(b, sizeof b, "model.layers.%d.%s", l, leaf),                 \
     memcpy((void *)(dst), tref_get(r, b)->data, sizeof(float) * (size_t)(n)))
            CP(Ly->rms_att, "input_layernorm.weight", f.C);
            CP(Ly->rms_ffn, "post_attention_layernorm.weight", f.C);
            CP(Ly->wq.data, "self_attn.q_proj.weight", f.C * f.C);
            CP(Ly->wk.data, "self_attn.k_proj.weight", f.C / f.H * f.HKV * f.C);
            CP(Ly->wv.data, "self_attn.v_proj.weight", f.C / f.H * f.HKV * f.C);
            CP(Ly->wo.data, "self_attn.o_proj.weight", f.C * f.C);
            CP(Ly->w1.data, "mlp.gate_proj.weight", f.HID * f.C);
            CP(Ly->w3.data, "mlp.up_proj.weight", f.HID * f.C);
            CP(Ly->w2.data, "mlp.down_proj.weight", f.HID * f.C);
#undef CP
        }
        tsr_bita_adapter ad;
        TSR_ASSERT(tsr_bita_adapter_alloc(&ad, &cfg, f.K, f.P).code == TSR_OK);
        tsr_bita_train_adapter_export(&a, &ad);
        tsr_bita_model bm;
        TSR_ASSERT(tsr_bita_model_init(&bm, &lm, &ad).code == TSR_OK);
        const int s = starts[0], K = f.K, P = f.P, kv = f.C / f.H * f.HKV, n = s + K, ld = P + n;
        tsr_lm_cache cache;
        TSR_ASSERT(tsr_lm_cache_init(&cache, &bm.view.cfg, 64).code == TSR_OK);
        for (int l = 0; l < f.L; l++) {
            memcpy(cache.k + (size_t)l * cache.max_len * kv, ad.prefix_k + (size_t)l * P * kv, sizeof(float) * P * kv);
            memcpy(cache.v + (size_t)l * cache.max_len * kv, ad.prefix_v + (size_t)l * P * kv, sizeof(float) * P * kv);
        }
        int tok[32], pos[32];
        uint8_t mk[32 * 40];
        memset(mk, 0, sizeof mk);
        for (int t = 0; t < s; t++) {
            tok[t] = ex.seq[t];
            pos[t] = t;
            memset(mk + t * ld + P, 1, (size_t)t + 1);
        }
        for (int j = 0; j < K; j++) {
            tok[s + j] = f.V + j;
            pos[s + j] = s + j;
            memset(mk + (s + j) * ld, 1, (size_t)(P + s));
            memset(mk + (s + j) * ld + P + s, 1, (size_t)j + 1);
        }
        float *lo = malloc(sizeof(float) * (size_t)n * (f.V + K));
        TSR_ASSERT(tsr_lm_forward_masked(&bm.view, &cache, tok, n, P, pos, mk, ld, lo).code == TSR_OK);
        /* the fixture's first group is the one at starts[0] */
        const float *want = tref_get(r, "mask_logits")->data;
        float got[3 * 64];
        for (int j = 0; j < K; j++) memcpy(got + j * f.V, lo + (size_t)(s + j) * (f.V + K), sizeof(float) * f.V);
        tu_close("inference mask rows vs training forward", got, want, (int64_t)K * f.V, 1e-4, 1e-4);
        free(lo);
        tsr_lm_cache_free(&cache);
        tsr_bita_model_free(&bm);
        tsr_bita_adapter_free(&ad);
        tsr_lm_model_free(&lm);
    }
    tsr_ctx_free(&c);
    tsr_bita_train_adapter_free(&a);
    tsr_nn_llama_free(&m);
    tsr_params_free(&base);
    tref_free(r);
}

/* ------------------------------------------------------------ decoding */

static void random_adapter(tsr_bita_adapter *a, const tsr_lm_config *cfg, int k, int P, uint64_t seed) {
    TSR_ASSERT(tsr_bita_adapter_alloc(a, cfg, k, P).code == TSR_OK);
    tu_randn(a->mask_emb, (int64_t)k * cfg->dim, seed, 0.5f);
    tu_randn(a->prefix_k, (int64_t)cfg->n_layers * P * a->kv_dim, seed + 1, 0.5f);
    tu_randn(a->prefix_v, (int64_t)cfg->n_layers * P * a->kv_dim, seed + 2, 0.5f);
}

static void test_generate_greedy(void) {
    tsr_lm_config cfg = {48, 96, 2, 4, 2, 64, 80, 10000.0f, 1e-5f, true, TSR_LM_ROPE_HALF};
    tsr_lm_model f, b;
    TSR_ASSERT(tsr_lm_model_alloc(&f, &cfg).code == TSR_OK);
    tsr_lm_model_randomize(&f, 7, 0.4f);
    TSR_ASSERT(tsr_lm_model_convert(&b, &f, TSR_LM_W_BF16, 0).code == TSR_OK);
    tsr_bita_adapter ad;
    random_adapter(&ad, &cfg, 4, 5, 3);
    /* a repetitive prompt: a random model falls into loops, so drafts get accepted */
    int prompt[12] = {1, 5, 9, 5, 9, 5, 9, 2, 3, 5, 9, 5};
    const tsr_lm_model *models[2] = {&f, &b};
    int want[128], got[128];
    int shapes[][2] = {{1, 0}, {1, 1}, {2, 2}, {3, 3}, {4, 4}, {1, 4}, {5, 2}};
    for (int mi = 0; mi < 2; mi++) {
        tsr_bita_model bm;
        TSR_ASSERT(tsr_bita_model_init(&bm, models[mi], &ad).code == TSR_OK);
        for (int stop = -1; stop <= 5; stop += 6)
            for (int max_new = 7; max_new <= 100; max_new += 93)
                for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
                    int nw = 0, ng = 0;
                    TSR_ASSERT(tsr_decode_greedy_generate(models[mi], prompt, 12, max_new, stop, 0, want, &nw, NULL).code ==
                               TSR_OK);
                    tsr_bita_gen_opts o;
                    tsr_bita_gen_defaults(&o);
                    o.shape = (tsr_bita_shape){shapes[si][0], shapes[si][1]};
                    o.stop_token = stop;
                    tsr_bita_stats st;
                    tsr_status s = tsr_bita_generate(&bm, prompt, 12, max_new, &o, got, &ng, &st);
                    TU_CHECK(s.code == TSR_OK && ng == nw && memcmp(got, want, sizeof(int) * (size_t)nw) == 0,
                             "%s shape %dx%d stop %d max %d: bita == greedy (%d vs %d tokens)",
                             mi ? "bf16" : "f32", shapes[si][0], shapes[si][1], stop, max_new, ng, nw);
                    TU_CHECK(st.forwards + 1 <= ng, "at most one step per token");
                }
        tsr_bita_model_free(&bm);
    }
    /* the context bound: prompt + generated = max_len + 1, as plain greedy */
    {
        tsr_bita_model bm;
        TSR_ASSERT(tsr_bita_model_init(&bm, &f, &ad).code == TSR_OK);
        int nw = 0, ng = 0;
        TSR_ASSERT(tsr_decode_greedy_generate(&f, prompt, 12, 1000 > 128 ? 128 : 1000, -1, 0, want, &nw, NULL).code == TSR_OK);
        tsr_bita_gen_opts o;
        tsr_bita_gen_defaults(&o);
        o.shape = (tsr_bita_shape){3, 4};
        TU_CHECK(tsr_bita_generate(&bm, prompt, 12, 128, &o, got, &ng, NULL).code == TSR_OK && ng == nw &&
                     nw == cfg.seq_len - 12 + 1 && memcmp(got, want, sizeof(int) * (size_t)nw) == 0,
                 "context bound: %d vs %d tokens", ng, nw);
        /* bad input is a status */
        int bad[2] = {1, 999};
        TU_CHECK(tsr_bita_generate(&bm, bad, 2, 4, &o, got, &ng, NULL).code != TSR_OK, "token out of range refused");
        o.shape.depth = 9;
        TU_CHECK(tsr_bita_generate(&bm, prompt, 2, 4, &o, got, &ng, NULL).code != TSR_OK, "depth > k refused");
        tsr_bita_model_free(&bm);
    }
    tsr_bita_adapter_free(&ad);
    tsr_lm_model_free(&f);
    tsr_lm_model_free(&b);
}

/* ------------------------------------------------------------ sampling */

/* chi-square of counts against probabilities p (bins with p*N < 5 merged) */
static double chi2(const int *cnt, const double *p, int n, int N, int *dof) {
    double x = 0, rest_o = 0, rest_e = 0;
    *dof = -1;
    for (int i = 0; i < n; i++) {
        double e = p[i] * N;
        if (e < 5) {
            rest_o += cnt[i];
            rest_e += e;
            continue;
        }
        x += (cnt[i] - e) * (cnt[i] - e) / e;
        (*dof)++;
    }
    if (rest_e > 0) {
        x += (rest_o - rest_e) * (rest_o - rest_e) / (rest_e > 1 ? rest_e : 1);
        (*dof)++;
    }
    return x;
}

/* rough upper quantile of chi-square at p ~ 1e-4 (Wilson-Hilferty, z = 3.7) */
static double chi2_limit(int dof) {
    double k = dof > 0 ? dof : 1, z = 3.72;
    double t = 1 - 2 / (9 * k) + z * sqrt(2 / (9 * k));
    return k * t * t * t;
}

static void test_accept_sample(void) {
    /* a tree over V = 6: root 0 with children tokens {2, 0, 4} (rows 1..3),
     * row 1 (token 2) with child token 3 (row 4) */
    const int V = 6, n = 5;
    int tokens[5] = {1, 2, 0, 4, 3}, parent[5] = {-1, 0, 0, 0, 1};
    float logits[5 * 6];
    tu_randn(logits, 5 * 6, 9, 1.0f);
    tsr_lm_sampler_opts o;
    tsr_lm_sampler_defaults(&o);
    o.temperature = 0.8f;
    o.top_p = 0;
    float p0[6], p1[6], probs[18];
    tsr_lm_prob scratch[6];
    tsr_lm_sample_probs(p0, logits, V, &o, scratch);
    tsr_lm_sample_probs(p1, logits + 1 * V, V, &o, scratch);
    tsr_rng rng;
    tsr_rng_seed(&rng, 77);
    const int N = 60000;
    int first[6] = {0}, second[6] = {0}, n_second = 0;
    for (int it = 0; it < N; it++) {
        int path[5], bonus;
        int len = tsr_decode_accept_sample(path, &bonus, tokens, parent, n, logits, V, &o, &rng, probs);
        int t1 = len > 1 ? tokens[path[1]] : bonus;
        first[t1]++;
        if (len > 1 && path[1] == 1) {
            int t2 = len > 2 ? tokens[path[2]] : bonus;
            second[t2]++;
            n_second++;
        }
    }
    double e0[6], e1[6];
    for (int i = 0; i < V; i++) {
        e0[i] = p0[i];
        e1[i] = p1[i];
    }
    int dof;
    double x = chi2(first, e0, V, N, &dof);
    TU_CHECK(x < chi2_limit(dof), "first token ~ target: chi2 %.2f (dof %d, limit %.1f)", x, dof, chi2_limit(dof));
    x = chi2(second, e1, V, n_second, &dof);
    TU_CHECK(x < chi2_limit(dof), "second token | first = row 1 ~ target: chi2 %.2f (dof %d)", x, dof);
    TU_CHECK(fabs((double)n_second / N - p0[2]) < 0.01, "row 1 taken with p(2)");

    /* a filter (top-k 2): probabilities outside never appear */
    o.top_k = 2;
    tsr_lm_sample_probs(p0, logits, V, &o, scratch);
    int nz = 0;
    for (int i = 0; i < V; i++) nz += p0[i] > 0;
    TU_CHECK(nz == 2, "top-k 2 keeps 2 tokens");
    int seen_bad = 0;
    for (int it = 0; it < 2000; it++) {
        int path[5], bonus;
        int len = tsr_decode_accept_sample(path, &bonus, tokens, parent, n, logits, V, &o, &rng, probs);
        int t1 = len > 1 ? tokens[path[1]] : bonus;
        seen_bad += p0[t1] == 0;
    }
    TU_CHECK(seen_bad == 0, "filtered tokens never emitted");
}

/* whole decoder at temperature > 0: the first two tokens' joint
 * distribution equals the model's (exact probabilities from plain forwards) */
static void test_generate_sample(void) {
    tsr_lm_config cfg = {32, 64, 2, 4, 4, 12, 48, 10000.0f, 1e-5f, true, TSR_LM_ROPE_HALF};
    tsr_lm_model m;
    TSR_ASSERT(tsr_lm_model_alloc(&m, &cfg).code == TSR_OK);
    tsr_lm_model_randomize(&m, 11, 0.5f);
    tsr_bita_adapter ad;
    random_adapter(&ad, &cfg, 3, 4, 5);
    tsr_bita_model bm;
    TSR_ASSERT(tsr_bita_model_init(&bm, &m, &ad).code == TSR_OK);
    const int V = cfg.vocab_size;
    int prompt[4] = {3, 7, 3, 7};
    tsr_lm_sampler_opts so;
    tsr_lm_sampler_defaults(&so);
    so.temperature = 1.3f;
    so.top_p = 0;
    /* exact joint p(x1) p(x2 | x1) */
    double joint[12 * 12];
    {
        tsr_lm_cache c;
        float lg[12], p1[12], p2[12];
        tsr_lm_prob sc[12];
        TSR_ASSERT(tsr_lm_cache_init(&c, &cfg, 0).code == TSR_OK);
        TSR_ASSERT(tsr_lm_forward_last(&m, &c, prompt, 4, 0, lg).code == TSR_OK);
        tsr_lm_sample_probs(p1, lg, V, &so, sc);
        for (int a = 0; a < V; a++) {
            TSR_ASSERT(tsr_lm_forward(&m, &c, &a, 1, 4, lg).code == TSR_OK);
            tsr_lm_sample_probs(p2, lg, V, &so, sc);
            for (int b = 0; b < V; b++) joint[a * V + b] = (double)p1[a] * p2[b];
        }
        tsr_lm_cache_free(&c);
    }
    const int N = 6000;
    int *cnt = calloc((size_t)V * V, sizeof(int));
    tsr_bita_gen_opts o;
    tsr_bita_gen_defaults(&o);
    o.shape = (tsr_bita_shape){3, 2};
    o.sampling = so;
    int accepted = 0;
    for (int it = 0; it < N; it++) {
        o.sampling.seed = 1000 + (uint64_t)it;
        /* 3 tokens so that the second step drafts; the first two are compared */
        int out[4], n = 0;
        tsr_bita_stats st;
        TSR_ASSERT(tsr_bita_generate(&bm, prompt, 4, 3, &o, out, &n, &st).code == TSR_OK && n == 3);
        cnt[out[0] * V + out[1]]++;
        accepted += st.accepted;
    }
    int dof;
    double x = chi2(cnt, joint, V * V, N, &dof);
    TU_CHECK(x < chi2_limit(dof), "sampled pairs ~ model: chi2 %.1f (dof %d, limit %.1f)", x, dof, chi2_limit(dof));
    TU_CHECK(accepted > 0, "some drafts were accepted while sampling (%d)", accepted);
    free(cnt);
    tsr_bita_model_free(&bm);
    tsr_bita_adapter_free(&ad);
    tsr_lm_model_free(&m);
}

/* ------------------------------------------------------------ files and shapes */

static void test_adapter_file(void) {
    tsr_lm_config cfg = {48, 96, 2, 4, 2, 64, 80, 10000.0f, 1e-5f, true, TSR_LM_ROPE_HALF};
    tsr_bita_adapter a, b;
    random_adapter(&a, &cfg, 3, 5, 21);
    a.acc[0][0] = 0.5f;
    a.acc[2][7] = 0.25f;
    memcpy(a.base_hash, "0123456789abcdef", 17);
    const char *path = tu_tmp("tessera_test_bita.safetensors");
    TU_CHECK(tsr_bita_adapter_save(&a, path).code == TSR_OK, "save");
    TU_CHECK(tsr_bita_adapter_load(&b, path).code == TSR_OK, "load");
    TU_CHECK(b.k == 3 && b.n_prefix == 5 && b.kv_dim == a.kv_dim && b.n_layers == 2 && b.vocab == 64, "shape back");
    TU_CHECK(memcmp(a.mask_emb, b.mask_emb, sizeof(float) * 3 * 48) == 0 &&
                 memcmp(a.prefix_k, b.prefix_k, sizeof(float) * 2 * 5 * a.kv_dim) == 0 &&
                 memcmp(a.prefix_v, b.prefix_v, sizeof(float) * 2 * 5 * a.kv_dim) == 0,
             "tensors back bit for bit");
    TU_CHECK(b.acc[0][0] == 0.5f && b.acc[2][7] == 0.25f && strcmp(b.base_hash, a.base_hash) == 0, "metadata back");
    tsr_lm_config other = cfg;
    other.dim = 64;
    TU_CHECK(tsr_bita_adapter_check(&b, &other).code != TSR_OK, "mismatched model refused");
    tsr_bita_adapter_free(&b);
    FILE *fp = fopen(path, "wb");
    fputs("not a safetensors file", fp);
    fclose(fp);
    TU_CHECK(tsr_bita_adapter_load(&b, path).code != TSR_OK, "garbage refused");
    remove(path);
    tsr_bita_adapter_free(&a);

    tsr_bita_shape s = {3, 2};
    TU_CHECK(tsr_bita_shape_nodes(s) == 1 + 3 + 2 && tsr_bita_shape_rows(s) == 6 * 3, "shape rows");
    s = (tsr_bita_shape){1, 3};
    TU_CHECK(tsr_bita_shape_nodes(s) == 4 && tsr_bita_shape_rows(s) == 16, "chain rows");
    tsr_bita_adapter t;
    memset(&t, 0, sizeof t);
    t.k = 3;
    for (int j = 0; j < 3; j++)
        for (int r = 0; r < TSR_BITA_MAX_TOP; r++) t.acc[j][r] = 0.5f + 0.05f * r;
    double e = tsr_bita_shape_tokens(t.acc, 3, (tsr_bita_shape){1, 2});
    TU_CHECK(fabs(e - 1.75) < 1e-6, "expected tokens 1 + 0.5 + 0.25 (got %g)", e);
    /* flat cost up to 8 rows, then linear: the chooser stays within 8 rows */
    double ms[33];
    for (int n = 0; n <= 32; n++) ms[n] = n <= 8 ? 1.0 : n / 8.0;
    tsr_bita_shape c = tsr_bita_choose_shape(&t, ms, 32, 4);
    TU_CHECK(c.depth > 0 && tsr_bita_shape_rows(c) <= 8, "chosen shape %dx%d has %d rows", c.top, c.depth,
             tsr_bita_shape_rows(c));
    /* cost proportional to rows from the start: no tree pays, depth 0 */
    for (int n = 0; n <= 32; n++) ms[n] = n;
    c = tsr_bita_choose_shape(&t, ms, 32, 4);
    TU_CHECK(c.depth == 0, "no tree when every row costs a step (got %dx%d)", c.top, c.depth);
}

int main(void) {
    test_train_forward();
    int lv[TSR_CPU_LEVELS];
    int nl = tu_levels(lv);
    for (int i = 0; i < nl; i++) { /* identity with greedy at every kernel level */
        tu_level_set(lv[i]);
        test_generate_greedy();
    }
    tu_level_restore();
    test_accept_sample();
    test_generate_sample();
    test_adapter_file();
    return tu_finish("bita");
}
