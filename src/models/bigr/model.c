/* tessera bigr: the BiGR network — bit embedding, class-token prefix with
 * shared adaLN conditioning (BiGR sec. 3.2, "shared adaLN": one Linear of
 * the class embedding for every layer plus a learned per-layer offset),
 * bidirectional Llama-style blocks with 2-D RoPE, and the binary
 * transcoder (a residual MLP denoiser, adaLN-conditioned on the
 * transformer output plus a timestep embedding, sec. 3.1). Also the
 * masking / Bernoulli-diffusion schedules and the training loss. */
#include "tessera/bigr.h"

#include "tessera/ops.h"
#include "tessera/safetensors.h"

#include <math.h>
#include <string.h>

#define BIGR_ARCH "bigr-v1"
#define BIGR_PI 3.14159265358979323846

static const char *const k_target_names[TSR_BIGR_TARGET_COUNT] = {"flip", "x0"};
_Static_assert(sizeof k_target_names / sizeof k_target_names[0] == TSR_BIGR_TARGET_COUNT,
               "target names");
const char *tsr_bigr_target_name(tsr_bigr_target t) {
    return t >= 0 && t < TSR_BIGR_TARGET_COUNT ? k_target_names[t] : "?";
}

tsr_bigr_cfg tsr_bigr_default_cfg(void) {
    tsr_bigr_cfg g = {.bits = 16, .dim = 128, .n_layers = 4, .n_heads = 4, .ffn_hidden = 352,
                      .classes = 10, .tc_hidden = 128, .tc_blocks = 3, .T = 256,
                      .target = TSR_BIGR_TARGET_FLIP, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    return g;
}

tsr_status tsr_bigr_check_cfg(const tsr_bigr_cfg *g) {
    if (g->bits < 1 || g->bits > 64) return tsr_errorf(TSR_ERR_ARG, "bits must be in [1,64]");
    if (g->dim < 8 || g->dim > 4096 || g->n_heads < 1 || g->dim % g->n_heads ||
        (g->dim / g->n_heads) % 4)
        return tsr_errorf(TSR_ERR_ARG, "dim must split into heads whose width is a multiple of 4");
    if (g->n_layers < 1 || g->n_layers > 64 || g->ffn_hidden < 1 || g->ffn_hidden > 65536)
        return tsr_errorf(TSR_ERR_ARG, "layers in [1,64], ffn hidden in [1,65536]");
    if (g->classes < 1 || g->classes > 100000) return tsr_errorf(TSR_ERR_ARG, "classes out of range");
    if (g->tc_hidden < 2 || g->tc_hidden % 2 || g->tc_hidden > 8192 || g->tc_blocks < 0 ||
        g->tc_blocks > 64)
        return tsr_errorf(TSR_ERR_ARG, "transcoder width (even) or blocks out of range");
    if (g->T < 2 || g->T > 100000) return tsr_errorf(TSR_ERR_ARG, "T must be in [2,100000]");
    if (g->target < 0 || g->target >= TSR_BIGR_TARGET_COUNT)
        return tsr_errorf(TSR_ERR_ARG, "unknown transcoder target");
    if (!(g->norm_eps > 0) || !(g->rope_theta > 1)) return tsr_errorf(TSR_ERR_ARG, "bad eps/theta");
    return tsr_ok();
}

/* ------------------------------------------------------------- building */

static void build(tsr_bigr *m) {
    const tsr_bigr_cfg *g = &m->cfg;
    tsr_params *p = &m->params;
    char nm[128];
    const int d = g->dim, h = g->tc_hidden;
    tsr_params_init(p);
    tsr_nn_linear_init(&m->tok_embeddings, p, "tok_embeddings", g->bits, d, true);
    m->mask_tok = tsr_param_new(p, "mask_tok", 0, TSR_DIMS(d));
    m->cls_embedding = tsr_param_new(p, "cls_embedding.weight", 0, TSR_DIMS(g->classes + 1, d));
    tsr_nn_linear_init(&m->adaln, p, "adaLN", d, 6 * d, true);
    m->layers = calloc((size_t)g->n_layers, sizeof *m->layers);
    TSR_ASSERT(m->layers);
    for (int i = 0; i < g->n_layers; i++) {
        tsr_bigr_block *b = &m->layers[i];
        snprintf(nm, sizeof nm, "layers.%d.ada_gss", i);
        b->ada_gss = tsr_param_new(p, nm, TSR_PARAM_NO_DECAY, TSR_DIMS(6, d));
        snprintf(nm, sizeof nm, "layers.%d.attention_norm", i);
        tsr_nn_rmsnorm_init(&b->attention_norm, p, nm, d, g->norm_eps);
        snprintf(nm, sizeof nm, "layers.%d.ffn_norm", i);
        tsr_nn_rmsnorm_init(&b->ffn_norm, p, nm, d, g->norm_eps);
        const char *an[4] = {"wq", "wk", "wv", "wo"};
        tsr_nn_linear *al[4] = {&b->wq, &b->wk, &b->wv, &b->wo};
        for (int j = 0; j < 4; j++) {
            snprintf(nm, sizeof nm, "layers.%d.attention.%s", i, an[j]);
            tsr_nn_linear_init(al[j], p, nm, d, d, false);
        }
        snprintf(nm, sizeof nm, "layers.%d.feed_forward.w1", i);
        tsr_nn_linear_init(&b->w1, p, nm, d, g->ffn_hidden, false);
        snprintf(nm, sizeof nm, "layers.%d.feed_forward.w3", i);
        tsr_nn_linear_init(&b->w3, p, nm, d, g->ffn_hidden, false);
        snprintf(nm, sizeof nm, "layers.%d.feed_forward.w2", i);
        tsr_nn_linear_init(&b->w2, p, nm, g->ffn_hidden, d, false);
    }
    tsr_nn_rmsnorm_init(&m->norm, p, "norm", d, g->norm_eps);
    m->diffusion_pos_embed = tsr_param_new(p, "diffusion_pos_embed", 0, TSR_DIMS(TSR_BIGR_L, d));
    tsr_nn_linear_init(&m->x_emb, p, "denoise.x_embedder", g->bits, h, true);
    tsr_nn_linear_init(&m->c_emb, p, "denoise.c_embedder", d, h, true);
    tsr_nn_linear_init(&m->t_fc1, p, "denoise.t_embedder.fc1", h, h, true);
    tsr_nn_linear_init(&m->t_fc2, p, "denoise.t_embedder.fc2", h, h, true);
    m->tc = calloc((size_t)(g->tc_blocks > 0 ? g->tc_blocks : 1), sizeof *m->tc);
    TSR_ASSERT(m->tc);
    for (int j = 0; j < g->tc_blocks; j++) {
        snprintf(nm, sizeof nm, "denoise.blocks.%d.fc1", j);
        tsr_nn_linear_init(&m->tc[j].fc1, p, nm, h, h, true);
        snprintf(nm, sizeof nm, "denoise.blocks.%d.fc2", j);
        tsr_nn_linear_init(&m->tc[j].fc2, p, nm, h, h, true);
        snprintf(nm, sizeof nm, "denoise.blocks.%d.ada", j);
        tsr_nn_linear_init(&m->tc[j].ada, p, nm, h, 3 * h, true);
    }
    tsr_nn_linear_init(&m->final_ada, p, "denoise.final.ada", h, 2 * h, true);
    tsr_nn_linear_init(&m->final_linear, p, "denoise.final.linear", h, g->bits, true);
}

tsr_status tsr_bigr_init(tsr_bigr *m, const tsr_bigr_cfg *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    tsr_status st = tsr_bigr_check_cfg(cfg);
    if (st.code) return st;
    m->cfg = *cfg;
    build(m);
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    /* BiGR's init: every linear and embedding N(0, 0.02), biases 0; the
     * shared adaLN, the transcoder's modulations and its output start at
     * zero so the untrained transcoder predicts p = 0.5 everywhere. The
     * per-layer offsets are N(0, 1/d) (gates start small but non-zero). */
    for (int i = 0; i < m->params.n; i++) {
        tsr_tensor *t = m->params.items[i];
        const char *n = t->name;
        size_t ln = strlen(n);
        bool is_bias = ln > 5 && strcmp(n + ln - 5, ".bias") == 0;
        if (strstr(n, "norm.weight")) continue; /* ones */
        if (is_bias) tsr_init_const(t, 0.0f);
        else if (strstr(n, "ada_gss")) tsr_init_normal(t, &r, 1.0f / sqrtf((float)cfg->dim));
        else tsr_init_normal(t, &r, 0.02f);
    }
    tsr_init_const(m->adaln.weight, 0.0f);
    for (int j = 0; j < cfg->tc_blocks; j++) tsr_init_const(m->tc[j].ada.weight, 0.0f);
    tsr_init_const(m->final_ada.weight, 0.0f);
    tsr_init_const(m->final_linear.weight, 0.0f);
    return tsr_ok();
}

void tsr_bigr_free(tsr_bigr *m) {
    tsr_params_free(&m->params);
    free(m->layers);
    free(m->tc);
    memset(m, 0, sizeof *m);
}

tsr_status tsr_bigr_load(tsr_bigr *m, const char *path) {
    memset(m, 0, sizeof *m);
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    tsr_bigr_cfg g = {0};
    const char *arch = tsr_st_meta(&f, "arch"), *tg = tsr_st_meta(&f, "bigr.target");
    const char *bad = NULL;
    const long M = 1 << 24;
    if (!arch || strcmp(arch, BIGR_ARCH) != 0) bad = "arch";
    else if (!tsr_st_meta_int(&f, "bigr.bits", 0, M, &g.bits)) bad = "bigr.bits";
    else if (!tsr_st_meta_int(&f, "bigr.dim", 0, M, &g.dim)) bad = "bigr.dim";
    else if (!tsr_st_meta_int(&f, "bigr.n_layers", 0, M, &g.n_layers)) bad = "bigr.n_layers";
    else if (!tsr_st_meta_int(&f, "bigr.n_heads", 0, M, &g.n_heads)) bad = "bigr.n_heads";
    else if (!tsr_st_meta_int(&f, "bigr.ffn_hidden", 0, M, &g.ffn_hidden)) bad = "bigr.ffn_hidden";
    else if (!tsr_st_meta_int(&f, "bigr.classes", 0, M, &g.classes)) bad = "bigr.classes";
    else if (!tsr_st_meta_int(&f, "bigr.tc_hidden", 0, M, &g.tc_hidden)) bad = "bigr.tc_hidden";
    else if (!tsr_st_meta_int(&f, "bigr.tc_blocks", 0, M, &g.tc_blocks)) bad = "bigr.tc_blocks";
    else if (!tsr_st_meta_int(&f, "bigr.T", 0, M, &g.T)) bad = "bigr.T";
    else if (!tsr_st_meta_float(&f, "bigr.norm_eps", &g.norm_eps)) bad = "bigr.norm_eps";
    else if (!tsr_st_meta_float(&f, "bigr.rope_theta", &g.rope_theta)) bad = "bigr.rope_theta";
    else if (!tg) bad = "bigr.target";
    else {
        g.target = TSR_BIGR_TARGET_COUNT;
        for (int i = 0; i < TSR_BIGR_TARGET_COUNT; i++)
            if (strcmp(tg, k_target_names[i]) == 0) g.target = (tsr_bigr_target)i;
        if (g.target == TSR_BIGR_TARGET_COUNT) bad = "bigr.target";
    }
    tsr_st_free(&f);
    if (bad)
        return tsr_errorf(TSR_ERR_FORMAT,
                          "%s: not a tessera bigr checkpoint (metadata '%s' missing or invalid)",
                          path, bad);
    st = tsr_bigr_check_cfg(&g);
    if (st.code) return tsr_errorf(TSR_ERR_FORMAT, "%s: bad config: %s", path, st.msg);
    m->cfg = g;
    build(m);
    st = tsr_params_load(&m->params, path, false);
    if (st.code) tsr_bigr_free(m);
    return st;
}

tsr_status tsr_bigr_save(const tsr_bigr *m, const char *path, const char *const *meta) {
    const tsr_bigr_cfg *g = &m->cfg;
    char v[11][32];
    snprintf(v[0], 32, "%d", g->bits);
    snprintf(v[1], 32, "%d", g->dim);
    snprintf(v[2], 32, "%d", g->n_layers);
    snprintf(v[3], 32, "%d", g->n_heads);
    snprintf(v[4], 32, "%d", g->ffn_hidden);
    snprintf(v[5], 32, "%d", g->classes);
    snprintf(v[6], 32, "%d", g->tc_hidden);
    snprintf(v[7], 32, "%d", g->tc_blocks);
    snprintf(v[8], 32, "%d", g->T);
    snprintf(v[9], 32, "%.9g", (double)g->norm_eps);
    snprintf(v[10], 32, "%.9g", (double)g->rope_theta);
    const char *kv[96] = {"family", "bigr", "arch", BIGR_ARCH,
                          "bigr.bits", v[0], "bigr.dim", v[1], "bigr.n_layers", v[2],
                          "bigr.n_heads", v[3], "bigr.ffn_hidden", v[4], "bigr.classes", v[5],
                          "bigr.tc_hidden", v[6], "bigr.tc_blocks", v[7], "bigr.T", v[8],
                          "bigr.norm_eps", v[9], "bigr.rope_theta", v[10],
                          "bigr.target", tsr_bigr_target_name(g->target),
                          "input", "BAE bits (7x7xK), models/fmnist_bae.safetensors"};
    int n = 0;
    while (kv[n]) n++;
    for (int i = 0; meta && meta[i] && meta[i + 1] && n < 94; i += 2) {
        kv[n++] = meta[i];
        kv[n++] = meta[i + 1];
    }
    kv[n] = NULL;
    return tsr_params_save(&m->params, path, TSR_ST_F32, kv);
}

/* ------------------------------------------------------------- schedules */

int tsr_bigr_mask_count(int L, double r) {
    int n = (int)floor((double)L * cos(BIGR_PI * 0.5 * r));
    return n < 1 ? 1 : n > L ? L : n;
}

int tsr_bigr_masked_after(int L, int it, int n) {
    if (it + 1 >= n) return 0;
    int k = (int)floor((double)L * cos(BIGR_PI * 0.5 * (double)(it + 1) / (double)n));
    return k < 0 ? 0 : k > L ? L : k;
}

void tsr_bigr_q_coef(int t, int T, double *k, double *b) {
    *k = 1.0 - (double)t / (double)T;
    *b = (double)t / (2.0 * (double)T);
}

float tsr_bigr_posterior(float p0, int xt, int t, int s, int T) {
    /* q(x_s | x0) marginalised over the denoiser's x0 ~ Bernoulli(p0),
     * times the jump kernel q(x_t | x_s): keep with k_t/k_s, else uniform */
    double ks, bs, kt, bt;
    tsr_bigr_q_coef(s, T, &ks, &bs);
    tsr_bigr_q_coef(t, T, &kt, &bt);
    double kj = ks > 0 ? kt / ks : 0.0;
    double a1 = ks * p0 + bs, a0 = ks * (1.0 - p0) + bs;
    double l1 = kj * (xt == 1) + 0.5 * (1.0 - kj), l0 = kj * (xt == 0) + 0.5 * (1.0 - kj);
    double u1 = a1 * l1, u0 = a0 * l0;
    return (float)(u1 / (u1 + u0 + 1e-30));
}

void tsr_bigr_balance_weights(float *w, const float *y, int64_t n, int K) {
    for (int64_t i = 0; i < n; i++) {
        double f = 0;
        for (int k = 0; k < K; k++) f += y[i * K + k];
        f /= K;
        for (int k = 0; k < K; k++) {
            float yy = y[i * K + k];
            w[i * K + k] = (float)((1.0 - f) * yy + f * (1.0 - yy) + 1.0 / K);
        }
    }
}

/* --------------------------------------------------------------- forward */

/* x * (1 + scale) + shift, scale and shift (B,1,C) broadcast over T */
static tsr_tensor *modulate(tsr_ctx *c, tsr_tensor *x, tsr_tensor *shift, tsr_tensor *scale) {
    return tsr_add(c, tsr_mul(c, x, tsr_add_scalar(c, scale, 1.0f)), shift);
}

static tsr_tensor *block_forward(tsr_ctx *c, const tsr_bigr *m, const tsr_bigr_block *b,
                                 tsr_tensor *x, tsr_tensor *ada, const tsr_tensor *ph,
                                 const tsr_tensor *pw) {
    const int64_t B = x->shape[0], T = x->shape[1], d = m->cfg.dim, H = m->cfg.n_heads;
    tsr_tensor *mod = tsr_add(c, ada, b->ada_gss); /* (B,6,d) */
    tsr_tensor *s[6];
    tsr_split(c, mod, 1, TSR_SHAPE(1, 1, 1, 1, 1, 1), 6, s);
    tsr_tensor *a = modulate(c, tsr_nn_rmsnorm_forward(c, &b->attention_norm, x), s[0], s[1]);
    tsr_tensor *q = tsr_reshape(c, tsr_nn_linear_forward(c, &b->wq, a), TSR_DIMS(B, T, H, d / H));
    tsr_tensor *k = tsr_reshape(c, tsr_nn_linear_forward(c, &b->wk, a), TSR_DIMS(B, T, H, d / H));
    tsr_tensor *v = tsr_reshape(c, tsr_nn_linear_forward(c, &b->wv, a), TSR_DIMS(B, T, H, d / H));
    q = tsr_rope2d(c, q, ph, pw, m->cfg.rope_theta);
    k = tsr_rope2d(c, k, ph, pw, m->cfg.rope_theta);
    const tsr_attn_opts ao = {.causal = false};
    tsr_tensor *o = tsr_reshape(c, tsr_attention(c, q, k, v, &ao), TSR_DIMS(B, T, d));
    x = tsr_add(c, x, tsr_mul(c, s[2], tsr_nn_linear_forward(c, &b->wo, o)));
    tsr_tensor *f = modulate(c, tsr_nn_rmsnorm_forward(c, &b->ffn_norm, x), s[3], s[4]);
    tsr_tensor *g = tsr_swiglu(c, tsr_nn_linear_forward(c, &b->w1, f), tsr_nn_linear_forward(c, &b->w3, f));
    return tsr_add(c, x, tsr_mul(c, s[5], tsr_nn_linear_forward(c, &b->w2, g)));
}

tsr_tensor *tsr_bigr_forward(tsr_ctx *c, const tsr_bigr *m, const float *bits,
                             const uint8_t *mask, const int32_t *labels, const int32_t *lab2,
                             float alpha, int B, tsr_tensor **hidden) {
    const tsr_bigr_cfg *g = &m->cfg;
    const int L = TSR_BIGR_L, K = g->bits, d = g->dim, T = L + 1;
    tsr_tensor *xb = tsr_from_f32(c, TSR_DIMS(B, L, K), bits);
    tsr_tensor *keep = tsr_new(c, TSR_F32, TSR_DIMS(B, L, 1));
    tsr_tensor *msk = tsr_new(c, TSR_F32, TSR_DIMS(B, L, 1));
    for (int i = 0; i < B * L; i++) {
        tsr_f32(msk)[i] = mask && mask[i] ? 1.0f : 0.0f;
        tsr_f32(keep)[i] = 1.0f - tsr_f32(msk)[i];
    }
    tsr_tensor *e = tsr_add(c, tsr_mul(c, tsr_nn_linear_forward(c, &m->tok_embeddings, xb), keep),
                            tsr_mul(c, msk, m->mask_tok));
    tsr_tensor *ids = tsr_new(c, TSR_I32, TSR_DIMS(B));
    for (int i = 0; i < B; i++) {
        TSR_ASSERT(labels[i] >= 0 && labels[i] <= g->classes);
        tsr_i32(ids)[i] = labels[i];
    }
    tsr_tensor *ce = tsr_embedding(c, m->cls_embedding, ids); /* (B,d) */
    if (lab2) {
        tsr_tensor *ids2 = tsr_new(c, TSR_I32, TSR_DIMS(B));
        for (int i = 0; i < B; i++) {
            TSR_ASSERT(lab2[i] >= 0 && lab2[i] <= g->classes);
            tsr_i32(ids2)[i] = lab2[i];
        }
        ce = tsr_add(c, tsr_scale(c, ce, 1.0f - alpha),
                     tsr_scale(c, tsr_embedding(c, m->cls_embedding, ids2), alpha));
    }
    tsr_tensor *parts[2] = {tsr_reshape(c, ce, TSR_DIMS(B, 1, d)), e};
    tsr_tensor *x = tsr_concat(c, parts, 2, 1); /* (B,50,d) */
    tsr_tensor *ada = tsr_reshape(c, tsr_nn_linear_forward(c, &m->adaln, tsr_silu(c, ce)),
                                  TSR_DIMS(B, 6, d));
    /* 2-D RoPE: grid position (r,c) rotates by (r+1, c+1); the class token
     * sits at (0,0), i.e. is not rotated */
    tsr_tensor *ph = tsr_new(c, TSR_I32, TSR_DIMS(T)), *pw = tsr_new(c, TSR_I32, TSR_DIMS(T));
    tsr_i32(ph)[0] = tsr_i32(pw)[0] = 0;
    for (int p = 0; p < L; p++) {
        tsr_i32(ph)[p + 1] = p / TSR_BIGR_GRID + 1;
        tsr_i32(pw)[p + 1] = p % TSR_BIGR_GRID + 1;
    }
    if (hidden) hidden[0] = x;
    for (int l = 0; l < g->n_layers; l++) {
        x = block_forward(c, m, &m->layers[l], x, ada, ph, pw);
        if (hidden) hidden[l + 1] = x;
    }
    tsr_tensor *z = tsr_slice(c, tsr_nn_rmsnorm_forward(c, &m->norm, x), 1, 1, T);
    return tsr_add(c, z, m->diffusion_pos_embed);
}

tsr_tensor *tsr_bigr_transcode(tsr_ctx *c, const tsr_bigr *m, tsr_tensor *xt,
                               const int32_t *tsteps, tsr_tensor *cond) {
    const int h = m->cfg.tc_hidden, K = m->cfg.bits;
    const int64_t N = xt->shape[0];
    /* bits as +-1 (BiGR's rescale) */
    tsr_tensor *xs = tsr_new(c, TSR_F32, TSR_DIMS(N, K));
    for (int64_t i = 0; i < N * K; i++) tsr_f32(xs)[i] = 2.0f * tsr_f32(xt)[i] - 1.0f;
    /* sinusoidal timestep features (cos | sin halves, max period 1e4) */
    tsr_tensor *tf = tsr_new(c, TSR_F32, TSR_DIMS(N, h));
    const int half = h / 2;
    for (int64_t i = 0; i < N; i++) {
        for (int j = 0; j < half; j++) {
            double fr = exp(-log(10000.0) * j / half), a = tsteps[i] * fr;
            tsr_f32(tf)[i * h + j] = (float)cos(a);
            tsr_f32(tf)[i * h + half + j] = (float)sin(a);
        }
    }
    tsr_tensor *temb = tsr_nn_linear_forward(c, &m->t_fc2, tsr_silu(c, tsr_nn_linear_forward(c, &m->t_fc1, tf)));
    tsr_tensor *cc = tsr_add(c, tsr_nn_linear_forward(c, &m->c_emb, cond), temb);
    tsr_tensor *sc = tsr_silu(c, cc);
    tsr_tensor *x = tsr_nn_linear_forward(c, &m->x_emb, xs);
    for (int j = 0; j < m->cfg.tc_blocks; j++) {
        tsr_tensor *s[3];
        tsr_split(c, tsr_nn_linear_forward(c, &m->tc[j].ada, sc), 1, TSR_SHAPE(h, h, h), 3, s);
        tsr_tensor *a = modulate(c, tsr_layernorm(c, x, NULL, NULL, 1e-6f), s[0], s[1]);
        tsr_tensor *y = tsr_nn_linear_forward(c, &m->tc[j].fc2, tsr_silu(c, tsr_nn_linear_forward(c, &m->tc[j].fc1, a)));
        x = tsr_add(c, x, tsr_mul(c, s[2], y));
    }
    tsr_tensor *s[2];
    tsr_split(c, tsr_nn_linear_forward(c, &m->final_ada, sc), 1, TSR_SHAPE(h, h), 2, s);
    return tsr_nn_linear_forward(c, &m->final_linear,
                                 modulate(c, tsr_layernorm(c, x, NULL, NULL, 1e-6f), s[0], s[1]));
}

/* ------------------------------------------------------------------ loss */

tsr_tensor *tsr_bigr_loss(tsr_ctx *c, const tsr_bigr *m, const uint8_t *bits_u8,
                          const int32_t *labels, int B, float p_uncond, int repeat, tsr_rng *rng,
                          tsr_bigr_loss_info *info) {
    const tsr_bigr_cfg *g = &m->cfg;
    const int L = TSR_BIGR_L, K = g->bits, T = g->T;
    TSR_ASSERT(repeat >= 1);
    /* one mask ratio per batch (BiGR draws the step once per batch) */
    int nm = tsr_bigr_mask_count(L, (double)tsr_rng_below(rng, L) / L);
    uint8_t *mask = tsr_arena_calloc(&c->arena, (size_t)(B * L));
    int32_t *rows = tsr_arena_alloc(&c->arena, sizeof(int32_t) * (size_t)(B * nm));
    int32_t perm[TSR_BIGR_L];
    for (int b = 0; b < B; b++) {
        for (int p = 0; p < L; p++) perm[p] = p;
        for (int i = 0; i < nm; i++) { /* partial Fisher-Yates */
            int j = i + (int)tsr_rng_below(rng, (uint32_t)(L - i));
            int32_t t = perm[i];
            perm[i] = perm[j], perm[j] = t;
            mask[b * L + perm[i]] = 1;
        }
        int k = 0;
        for (int p = 0; p < L; p++)
            if (mask[b * L + p]) rows[b * nm + k++] = b * L + p;
    }
    int32_t *lab = tsr_arena_alloc(&c->arena, sizeof(int32_t) * (size_t)B);
    for (int b = 0; b < B; b++) lab[b] = tsr_rng_uniform(rng) < p_uncond ? g->classes : labels[b];
    float *bits = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)(B * L * K));
    for (int64_t i = 0; i < (int64_t)B * L * K; i++) bits[i] = bits_u8[i];
    tsr_tensor *z = tsr_bigr_forward(c, m, bits, mask, lab, NULL, 0.0f, B, NULL);
    const int64_t M = (int64_t)B * nm * repeat;
    tsr_tensor *idx = tsr_new(c, TSR_I32, TSR_DIMS(M));
    for (int64_t i = 0; i < M; i++) tsr_i32(idx)[i] = rows[i % (B * nm)];
    tsr_tensor *cond = tsr_index_select(c, tsr_reshape(c, z, TSR_DIMS((int64_t)B * L, g->dim)), 0, idx);
    tsr_tensor *xt = tsr_new(c, TSR_F32, TSR_DIMS(M, K));
    tsr_tensor *y = tsr_new(c, TSR_F32, TSR_DIMS(M, K));
    int32_t *ts = tsr_arena_alloc(&c->arena, sizeof(int32_t) * (size_t)M);
    for (int64_t i = 0; i < M; i++) {
        int t = 1 + (int)tsr_rng_below(rng, (uint32_t)T);
        double k, bb;
        tsr_bigr_q_coef(t, T, &k, &bb);
        ts[i] = t - 1;
        const uint8_t *x0 = bits_u8 + (int64_t)tsr_i32(idx)[i] * K;
        for (int j = 0; j < K; j++) {
            float pr = (float)(k * x0[j] + bb);
            int v = tsr_rng_uniform(rng) < pr;
            tsr_f32(xt)[i * K + j] = (float)v;
            tsr_f32(y)[i * K + j] = g->target == TSR_BIGR_TARGET_FLIP ? (float)(v ^ x0[j]) : (float)x0[j];
        }
    }
    tsr_tensor *logits = tsr_bigr_transcode(c, m, xt, ts, cond);
    tsr_tensor *w = NULL;
    if (g->target == TSR_BIGR_TARGET_FLIP) {
        w = tsr_new(c, TSR_F32, TSR_DIMS(M, K));
        tsr_bigr_balance_weights(tsr_f32(w), tsr_f32(y), M, K);
    }
    tsr_tensor *loss = tsr_bce_with_logits(c, logits, y, w, 1.0f, 1.0f);
    if (info) {
        int64_t ok = 0;
        for (int64_t i = 0; i < M * K; i++) {
            int pred = tsr_f32(logits)[i] > 0;
            int x0 = g->target == TSR_BIGR_TARGET_FLIP ? ((int)tsr_f32(xt)[i] ^ pred) : pred;
            int truth = g->target == TSR_BIGR_TARGET_FLIP ? ((int)tsr_f32(xt)[i] ^ (int)tsr_f32(y)[i])
                                                          : (int)tsr_f32(y)[i];
            ok += x0 == truth;
        }
        info->loss = tsr_f32(loss)[0];
        info->bit_acc = (float)((double)ok / (double)(M * K));
        info->masked = nm;
    }
    return loss;
}
