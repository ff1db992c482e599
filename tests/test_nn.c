/* Tests for src/nn/: the Llama-style decoder end to end against PyTorch
 * (tools/refs/gen_nn.py: an explicit float64 model with HF rotate-half
 * RoPE), HF parameter names, config checks, init statistics, the small
 * modules, and a short AdamW loss trajectory.
 *
 * Tolerances (our f32 vs the float64 reference):
 * - logits atol 2e-5 rtol 2e-5, loss atol 1e-5 rtol 1e-5: two blocks of
 *   f32 sums over <= 64 terms, logits O(1..10); measured max error 4e-6;
 * - every parameter grad atol 1e-5 rtol 1e-4: the same chain run backward,
 *   grads O(1e-3..1e-1); measured max error 7e-7;
 * - trajectory: AdamW lr 5e-3, 8 steps on one batch; the loss must fall
 *   every step and end below 80% of the start. */
#include "testutil.h"
#include "tessera/nn.h"
#include "tessera/ops.h"
#include "tessera/optim.h"

#include <math.h>
#include <string.h>

/* same stream as det_fill in gen_nn.py */
static uint64_t splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void det_fill(tsr_tensor *t, int k, double offset, double scale) {
    float *d = tsr_f32(t);
    for (int64_t i = 0; i < t->numel; i++) {
        double u = (double)(splitmix64(((uint64_t)(k + 1) << 32) + (uint64_t)i) >> 40) / (double)(1 << 24);
        d[i] = (float)(offset + scale * (2.0 * u - 1.0));
    }
}

/* the generator's weights, parameter k from hash stream k */
static void fill_like_reference(tsr_params *p) {
    for (int k = 0; k < p->n; k++) {
        tsr_tensor *t = p->items[k];
        if (strstr(t->name, "norm")) det_fill(t, k, 1.0, 0.3);
        else if (strcmp(t->name, "model.embed_tokens.weight") == 0) det_fill(t, k, 0.0, 1.7);
        else det_fill(t, k, 0.0, sqrt(3.0 / (double)t->shape[1]));
    }
}

static tsr_tensor *ref_i32(tsr_ctx *c, const tref *r, const char *name) {
    const tref_entry *e = tref_get(r, name);
    TSR_ASSERT(e->dtype == TSR_I32);
    tsr_tensor *t = tsr_new(c, TSR_I32, e->ndim, e->shape);
    memcpy(t->data, e->data, 4 * (size_t)e->numel);
    return t;
}

static void check_case(const char *file, const tsr_nn_llama_cfg *cfg, bool causal, bool has_mask) {
    tref *r = tref_load(file);
    tsr_params p;
    tsr_params_init(&p);
    tsr_nn_llama m;
    tsr_status st = tsr_nn_llama_init(&m, &p, cfg);
    TU_CHECK(st.code == TSR_OK, "%s: init: %s", file, st.msg);
    fill_like_reference(&p);
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    tsr_tensor *tokens = ref_i32(&c, r, "tokens"), *targets = ref_i32(&c, r, "targets");
    tsr_nn_seq seq = {.pos = ref_i32(&c, r, "pos"), .causal = causal};
    if (has_mask) {
        tsr_tensor *mi = ref_i32(&c, r, "mask");
        tsr_tensor *mask = tsr_new(&c, TSR_U8, mi->ndim, mi->shape);
        for (int64_t i = 0; i < mi->numel; i++) tsr_u8(mask)[i] = (uint8_t)tsr_i32(mi)[i];
        seq.mask = mask;
    }
    tsr_tensor *logits = NULL;
    tsr_tensor *loss = tsr_nn_llama_loss(&c, &m, tokens, targets, -1, &seq, &logits);
    char what[300];
    tu_close_ref(r, "logits", tsr_f32(logits), logits->numel, 2e-5, 2e-5);
    tu_close_ref(r, "loss", tsr_f32(loss), 1, 1e-5, 1e-5);
    tsr_params_zero_grad(&p);
    tsr_backward(&c, loss);
    int n_grads = 0;
    for (int i = 0; i < r->n; i++)
        if (strncmp(r->e[i].name, "grad.", 5) == 0) n_grads++;
    TU_CHECK(n_grads == p.n, "%s: %d params registered, reference has %d", file, p.n, n_grads);
    for (int k = 0; k < p.n; k++) {
        tsr_tensor *t = p.items[k];
        snprintf(what, sizeof what, "grad.%s", t->name);
        const tref_entry *e = tref_find(r, what);
        TU_CHECK(e != NULL, "%s: no reference for %s (HF name mismatch?)", file, what);
        if (!e) continue;
        TU_CHECK(e->numel == t->numel, "%s: %s numel %lld vs %lld", file, what, (long long)t->numel,
                 (long long)e->numel);
        if (e->numel == t->numel) tu_close_ref(r, what, t->grad, t->numel, 1e-5, 1e-4);
    }
    /* NULL seq is causal over 0..T-1: for the causal case it matches */
    if (causal && !has_mask) {
        tsr_ctx_reset(&c);
        tokens = ref_i32(&c, r, "tokens");
        tsr_tensor *l2 = tsr_nn_llama_forward(&c, &m, tokens, NULL);
        tu_close_ref(r, "logits", tsr_f32(l2), l2->numel, 2e-5, 2e-5);
    }
    tsr_ctx_free(&c);
    tsr_nn_llama_free(&m);
    tsr_params_free(&p);
    tref_free(r);
}

static const tsr_nn_llama_cfg k_small = {.dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                                         .hidden_dim = 64, .vocab = 50, .max_seq = 16,
                                         .norm_eps = 1e-5f, .rope_theta = 10000.0f, .tied = false};

static void check_names_and_config(void) {
    tsr_params p;
    tsr_params_init(&p);
    tsr_nn_llama m;
    tsr_nn_llama_cfg cfg = k_small;
    TU_CHECK(tsr_nn_llama_init(&m, &p, &cfg).code == TSR_OK, "init small");
    const char *want[] = {"model.embed_tokens.weight",
                          "model.layers.0.input_layernorm.weight",
                          "model.layers.0.self_attn.q_proj.weight",
                          "model.layers.0.self_attn.k_proj.weight",
                          "model.layers.0.self_attn.v_proj.weight",
                          "model.layers.0.self_attn.o_proj.weight",
                          "model.layers.0.post_attention_layernorm.weight",
                          "model.layers.0.mlp.gate_proj.weight",
                          "model.layers.0.mlp.up_proj.weight",
                          "model.layers.0.mlp.down_proj.weight",
                          "model.layers.1.input_layernorm.weight"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        TU_CHECK(strcmp(p.items[i]->name, want[i]) == 0, "param %zu is %s, want %s", i, p.items[i]->name, want[i]);
    TU_CHECK(strcmp(p.items[p.n - 2]->name, "model.norm.weight") == 0, "model.norm.weight");
    TU_CHECK(strcmp(p.items[p.n - 1]->name, "lm_head.weight") == 0, "lm_head.weight");
    tsr_tensor *k = tsr_params_find(&p, "model.layers.1.self_attn.k_proj.weight");
    TU_CHECK(k && k->shape[0] == 16 && k->shape[1] == 32, "k_proj shape (Hkv*D, C)");
    int64_t want_count = 50 * 32 * 2 + 2 * (2 * 32 + 32 * 32 * 2 + 16 * 32 * 2 + 3 * 64 * 32) + 32;
    TU_CHECK(tsr_params_count(&p) == want_count, "param count %lld want %lld",
             (long long)tsr_params_count(&p), (long long)want_count);
    /* no-decay flags on norms only */
    for (int i = 0; i < p.n; i++)
        TU_CHECK(((p.flags[i] & TSR_PARAM_NO_DECAY) != 0) == (strstr(p.items[i]->name, "norm") != NULL),
                 "decay flag of %s", p.items[i]->name);

    /* init statistics */
    tsr_rng rng;
    tsr_rng_seed(&rng, 7);
    tsr_nn_llama_init_weights(&m, &rng);
    double s2 = 0, s2o = 0;
    tsr_tensor *q = m.layers[0].q_proj.weight, *o = m.layers[1].down_proj.weight;
    for (int64_t i = 0; i < q->numel; i++) s2 += (double)tsr_f32(q)[i] * tsr_f32(q)[i];
    for (int64_t i = 0; i < o->numel; i++) s2o += (double)tsr_f32(o)[i] * tsr_f32(o)[i];
    double sq = sqrt(s2 / (double)q->numel), so = sqrt(s2o / (double)o->numel);
    TU_CHECK(fabs(sq - 0.02) < 0.002, "q_proj std %g want 0.02", sq);
    TU_CHECK(fabs(so - 0.01) < 0.001, "down_proj std %g want 0.02/sqrt(4)", so);
    TU_CHECK(tsr_f32(m.norm.weight)[5] == 1.0f, "norm init 1");
    tsr_nn_llama_free(&m);
    tsr_params_free(&p);

    /* tied: no lm_head, head is the embedding */
    tsr_params_init(&p);
    cfg.tied = true;
    TU_CHECK(tsr_nn_llama_init(&m, &p, &cfg).code == TSR_OK, "init tied");
    TU_CHECK(!tsr_params_find(&p, "lm_head.weight") && m.lm_head == m.embed_tokens.weight, "tied head");
    tsr_nn_llama_free(&m);
    tsr_params_free(&p);

    /* bad configs are errors that register nothing */
    tsr_nn_llama_cfg bad[4] = {k_small, k_small, k_small, k_small};
    bad[0].n_kv_heads = 3;
    bad[1].dim = 30;
    bad[2].vocab = 0;
    bad[3].n_heads = 8; /* head dim 4: fine */
    bad[3].dim = 24;    /* head dim 3: odd, RoPE impossible */
    for (int i = 0; i < 4; i++) {
        tsr_params_init(&p);
        tsr_status st = tsr_nn_llama_init(&m, &p, &bad[i]);
        TU_CHECK(st.code == TSR_ERR_ARG && st.msg[0] && p.n == 0, "bad config %d accepted", i);
        tsr_params_free(&p);
    }

    /* FLOP count by hand for B=1, T=2 of a 1-layer model */
    tsr_nn_llama_cfg f = {.dim = 4, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .hidden_dim = 6,
                          .vocab = 10, .max_seq = 8, .norm_eps = 1e-5f, .rope_theta = 1e4f};
    double per_tok = 2.0 * (4 * 4 + 2 * 4 * 2 + 4 * 4 + 3 * 4 * 6) + 4.0 * 2 * 4 + 2.0 * 4 * 10;
    TU_CHECK(fabs(tsr_nn_llama_flops_fwd(&f, 1, 2) - 2 * per_tok) < 1e-9, "flops");
}

static void check_modules(void) {
    tsr_params p;
    tsr_params_init(&p);
    tsr_nn_linear l;
    tsr_nn_linear_init(&l, &p, "enc.proj", 5, 3, true);
    TU_CHECK(tsr_params_find(&p, "enc.proj.weight") == l.weight && tsr_params_find(&p, "enc.proj.bias") == l.bias,
             "linear names");
    tsr_nn_layernorm ln;
    tsr_nn_layernorm_init(&ln, &p, "enc.ln", 3, 1e-5f, true);
    TU_CHECK(tsr_f32(ln.weight)[2] == 1.0f && tsr_f32(ln.bias)[2] == 0.0f, "layernorm init");
    tsr_nn_embedding e;
    tsr_nn_embedding_init(&e, &p, "enc.tok", 7, 5);
    tsr_rng rng;
    tsr_rng_seed(&rng, 3);
    tsr_init_normal(l.weight, &rng, 1);
    tsr_init_normal(l.bias, &rng, 1);
    tsr_init_normal(e.weight, &rng, 1);
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 16);
    tsr_tensor *ids = tsr_new(&c, TSR_I32, TSR_DIMS(2));
    tsr_i32(ids)[0] = 6;
    tsr_i32(ids)[1] = 1;
    tsr_tensor *x = tsr_nn_embedding_forward(&c, &e, ids);
    TU_CHECK(x->ndim == 2 && x->shape[1] == 5 && tsr_f32(x)[5] == tsr_f32(e.weight)[5], "embedding rows");
    tsr_tensor *y = tsr_nn_linear_forward(&c, &l, x);
    float want[6];
    for (int i = 0; i < 2; i++)
        for (int o = 0; o < 3; o++) {
            double s = tsr_f32(l.bias)[o];
            for (int k = 0; k < 5; k++) s += (double)tsr_f32(x)[i * 5 + k] * tsr_f32(l.weight)[o * 5 + k];
            want[i * 3 + o] = (float)s;
        }
    tu_close("linear module", tsr_f32(y), want, 6, 1e-5, 1e-5);
    tsr_tensor *z = tsr_nn_layernorm_forward(&c, &ln, y);
    for (int i = 0; i < 2; i++) {
        double mu = 0;
        for (int o = 0; o < 3; o++) mu += tsr_f32(z)[i * 3 + o];
        TU_CHECK(fabs(mu) < 1e-5, "layernorm mean");
    }
    tsr_ctx_free(&c);
    tsr_params_free(&p);
}

/* a few AdamW steps on one fixed batch: the loss must fall */
static void check_trajectory(void) {
    tsr_params p;
    tsr_params_init(&p);
    tsr_nn_llama m;
    tsr_nn_llama_init(&m, &p, &k_small);
    tsr_rng rng;
    tsr_rng_seed(&rng, 11);
    tsr_nn_llama_init_weights(&m, &rng);
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    int32_t tok[2 * 8];
    for (int i = 0; i < 16; i++) tok[i] = (int32_t)tsr_rng_below(&rng, 50);
    tsr_adamw opt;
    tsr_adamw_init(&opt, &p, (tsr_adamw_cfg){.lr = 5e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                                             .weight_decay = 0.1f});
    float first = 0, prev = INFINITY, last = 0;
    bool falls = true;
    for (int step = 0; step < 8; step++) {
        tsr_ctx_reset(&c);
        tsr_tensor *in = tsr_new(&c, TSR_I32, TSR_DIMS(2, 7));
        tsr_tensor *tg = tsr_new(&c, TSR_I32, TSR_DIMS(2, 7));
        for (int b = 0; b < 2; b++)
            for (int t = 0; t < 7; t++) {
                tsr_i32(in)[b * 7 + t] = tok[b * 8 + t];
                tsr_i32(tg)[b * 7 + t] = tok[b * 8 + t + 1];
            }
        tsr_params_zero_grad(&p);
        tsr_tensor *loss = tsr_nn_llama_loss(&c, &m, in, tg, -1, NULL, NULL);
        float lv = tsr_f32(loss)[0];
        if (step == 0) {
            first = lv;
            TU_CHECK(fabsf(lv - logf(50.0f)) < 0.1f, "initial loss %g, want ~ln 50 = %g", lv, logf(50.0f));
        }
        if (!(lv < prev)) falls = false;
        prev = last = lv;
        tsr_backward(&c, loss);
        tsr_adamw_step(&opt, 5e-3f);
    }
    TU_CHECK(falls, "loss did not fall every step");
    TU_CHECK(last < 0.8f * first, "loss %g -> %g: not below 80%%", first, last);
    printf("trajectory: loss %.4f -> %.4f over 8 AdamW steps\n", first, last);
    tsr_adamw_free(&opt);
    tsr_ctx_free(&c);
    tsr_nn_llama_free(&m);
    tsr_params_free(&p);
}

int main(void) {
    tsr_threads_set(0);
    check_names_and_config();
    check_modules();
    tsr_nn_llama_cfg small = k_small;
    small.max_seq = 7;
    check_case("tests/refs/nn.tref", &small, true, false);
    tsr_nn_llama_cfg tied = {.dim = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 1, .hidden_dim = 24,
                             .vocab = 20, .max_seq = 5, .norm_eps = 1e-6f, .rope_theta = 500.0f, .tied = true};
    check_case("tests/refs/nn_tied.tref", &tied, false, true);
    check_trajectory();
    return tu_finish("nn");
}
