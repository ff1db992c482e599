/* tessera elm: the class-conditional code generators of ELM (Liu et al.
 * 2024 sec. 3) on the 7x7 latent grid — a Llama-style stack (pre-RMSNorm,
 * SwiGLU) with 2-D RoPE (rows in the first half of each head, columns in
 * the second), a class token as prefix (id 10 = the null class for
 * classifier-free guidance), and the vocabulary split of sec. 3.2: a code
 * is cut into n_sub sub-tokens, each with its own embedding table
 * (concatenated, then projected to the model width) and its own output
 * head, all predicted in parallel from the same hidden state.
 * The autograd forward used in training; the inference forward is infer.c. */
#include "tessera/elm.h"

#include "tessera/ops.h"
#include "tessera/safetensors.h"

#include <math.h>
#include <string.h>

const char *tsr_elm_kind_name(tsr_elm_kind k) { return k == TSR_ELM_MLM ? "mlm" : "ar"; }

static tsr_status check_cfg(const tsr_elm_cfg *g) {
    if (g->kind < 0 || g->kind >= TSR_ELM_KIND_COUNT || g->tok < 0 || g->tok >= TSR_IMGTOK_KIND_COUNT)
        return tsr_errorf(TSR_ERR_ARG, "elm config: unknown model or tokenizer kind");
    if (g->n_sub < 1 || g->n_sub > TSR_ELM_MAX_SUB)
        return tsr_errorf(TSR_ERR_ARG, "elm config: token_each must be in [1,%d], got %d",
                          TSR_ELM_MAX_SUB, g->n_sub);
    if (g->tok == TSR_IMGTOK_BAE) {
        if (g->bits < 1 || g->bits > 24 || g->bits % g->n_sub != 0 || g->bits / g->n_sub > 16)
            return tsr_errorf(TSR_ERR_ARG,
                              "elm config: %d bits cannot be split into %d sub-tokens of <= 16 bits",
                              g->bits, g->n_sub);
    } else {
        if (g->n_sub != 1)
            return tsr_errorf(TSR_ERR_ARG, "elm config: VQ codes are one token (token_each 1)");
        if (g->codebook < 2 || g->codebook > 65536)
            return tsr_errorf(TSR_ERR_ARG, "elm config: codebook must be in [2,65536]");
    }
    if (g->dim < 8 || g->n_layers < 1 || g->n_heads < 1 || g->hidden < 1 || g->dim % g->n_heads ||
        (g->dim / g->n_heads) % 4 || g->dim % g->n_sub || g->dim > 4096 || g->n_layers > 64)
        return tsr_errorf(TSR_ERR_ARG,
                          "elm config: dim %d must split into heads with a head dim divisible by 4 "
                          "(2-D RoPE) and into %d sub-token embeddings",
                          g->dim, g->n_sub);
    if (!(g->rope_theta > 0)) return tsr_errorf(TSR_ERR_ARG, "elm config: rope_theta must be > 0");
    return tsr_ok();
}

static void register_params(tsr_elm_model *m) {
    const tsr_elm_cfg *g = &m->cfg;
    tsr_params *p = &m->params;
    const int C = g->dim, E = C / g->n_sub;
    char nm[96];
    m->sub_bits = g->tok == TSR_IMGTOK_BAE ? g->bits / g->n_sub : 0;
    for (int j = 0; j < g->n_sub; j++)
        m->sub_vocab[j] = g->tok == TSR_IMGTOK_BAE ? 1 << m->sub_bits : g->codebook;
    m->cls_embed = tsr_param_new(p, "cls_embed.weight", 0, TSR_DIMS(TSR_ELM_CLASSES + 1, C));
    for (int j = 0; j < g->n_sub; j++) {
        snprintf(nm, sizeof nm, "tok_embed.%d.weight", j);
        m->tok_embed[j] = tsr_param_new(p, nm, 0, TSR_DIMS(m->sub_vocab[j] + 1, E));
    }
    m->in_proj = tsr_param_new(p, "in_proj.weight", 0, TSR_DIMS(C, C));
    tsr_nn_llama_cfg lc = {.dim = C, .n_layers = g->n_layers, .n_heads = g->n_heads,
                           .n_kv_heads = g->n_heads, .hidden_dim = g->hidden, .vocab = 1,
                           .max_seq = TSR_ELM_POS + 1, .norm_eps = 1e-5f,
                           .rope_theta = g->rope_theta};
    m->layers = calloc((size_t)g->n_layers, sizeof *m->layers);
    TSR_ASSERT(m->layers);
    for (int i = 0; i < g->n_layers; i++) {
        snprintf(nm, sizeof nm, "layers.%d", i);
        tsr_nn_llama_block_init(&m->layers[i], p, nm, &lc);
    }
    m->norm = tsr_param_new(p, "norm.weight", TSR_PARAM_NO_DECAY, TSR_DIMS(C));
    for (int j = 0; j < g->n_sub; j++) {
        snprintf(nm, sizeof nm, "head.%d.weight", j);
        m->head[j] = tsr_param_new(p, nm, 0, TSR_DIMS(m->sub_vocab[j], C));
    }
}

tsr_status tsr_elm_init(tsr_elm_model *m, const tsr_elm_cfg *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    tsr_status st = check_cfg(cfg);
    if (st.code) return st;
    m->cfg = *cfg;
    tsr_params_init(&m->params);
    register_params(m);
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    const float std = 0.02f, res_std = std / sqrtf(2.0f * (float)cfg->n_layers);
    tsr_init_normal(m->cls_embed, &r, std);
    for (int j = 0; j < cfg->n_sub; j++) tsr_init_normal(m->tok_embed[j], &r, std);
    tsr_init_normal(m->in_proj, &r, 1.0f / sqrtf((float)cfg->dim));
    for (int i = 0; i < cfg->n_layers; i++) {
        tsr_nn_llama_block *b = &m->layers[i];
        tsr_init_const(b->input_layernorm.weight, 1.0f);
        tsr_init_const(b->post_attention_layernorm.weight, 1.0f);
        tsr_init_normal(b->q_proj.weight, &r, std);
        tsr_init_normal(b->k_proj.weight, &r, std);
        tsr_init_normal(b->v_proj.weight, &r, std);
        tsr_init_normal(b->o_proj.weight, &r, res_std);
        tsr_init_normal(b->gate_proj.weight, &r, std);
        tsr_init_normal(b->up_proj.weight, &r, std);
        tsr_init_normal(b->down_proj.weight, &r, res_std);
    }
    tsr_init_const(m->norm, 1.0f);
    for (int j = 0; j < cfg->n_sub; j++) tsr_init_normal(m->head[j], &r, std);
    return tsr_ok();
}

void tsr_elm_free(tsr_elm_model *m) {
    if (m->layers) tsr_params_free(&m->params);
    free(m->layers);
    m->layers = NULL;
}

int64_t tsr_elm_param_count(const tsr_elm_model *m) { return tsr_params_count(&m->params); }

tsr_status tsr_elm_save(const tsr_elm_model *m, const char *path, const char *const *meta) {
    const tsr_elm_cfg *g = &m->cfg;
    char v[10][32];
    snprintf(v[0], 32, "%d", g->bits);
    snprintf(v[1], 32, "%d", g->codebook);
    snprintf(v[2], 32, "%d", g->n_sub);
    snprintf(v[3], 32, "%d", g->dim);
    snprintf(v[4], 32, "%d", g->n_layers);
    snprintf(v[5], 32, "%d", g->n_heads);
    snprintf(v[6], 32, "%d", g->hidden);
    snprintf(v[7], 32, "%.9g", (double)g->rope_theta);
    const char *kv[64];
    int n = 0;
    kv[n++] = "family", kv[n++] = "elm";
    kv[n++] = "model", kv[n++] = tsr_elm_kind_name(g->kind);
    kv[n++] = "tokenizer_kind", kv[n++] = tsr_imgtok_kind_name(g->tok);
    kv[n++] = "bits", kv[n++] = v[0];
    kv[n++] = "codebook", kv[n++] = v[1];
    kv[n++] = "token_each", kv[n++] = v[2];
    kv[n++] = "dim", kv[n++] = v[3];
    kv[n++] = "n_layers", kv[n++] = v[4];
    kv[n++] = "n_heads", kv[n++] = v[5];
    kv[n++] = "hidden", kv[n++] = v[6];
    kv[n++] = "rope_theta", kv[n++] = v[7];
    kv[n++] = "tokenizer", kv[n++] = m->tokenizer;
    for (int i = 0; meta && meta[i] && meta[i + 1] && n < 62; i += 2) kv[n++] = meta[i], kv[n++] = meta[i + 1];
    kv[n] = NULL;
    return tsr_params_save(&m->params, path, TSR_ST_F32, kv);
}

tsr_status tsr_elm_load(tsr_elm_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    tsr_elm_cfg g = {0};
    const char *fam = tsr_st_meta(&f, "family"), *kind = tsr_st_meta(&f, "model"),
               *tk = tsr_st_meta(&f, "tokenizer_kind"),
               *tp = tsr_st_meta(&f, "tokenizer");
    const long M = 1 << 24;
    bool ok = fam && strcmp(fam, "elm") == 0 && kind && tk && tp &&
              tsr_st_meta_float(&f, "rope_theta", &g.rope_theta) &&
              tsr_st_meta_int(&f, "bits", 0, M, &g.bits) && tsr_st_meta_int(&f, "codebook", 0, M, &g.codebook) &&
              tsr_st_meta_int(&f, "token_each", 0, M, &g.n_sub) && tsr_st_meta_int(&f, "dim", 0, M, &g.dim) &&
              tsr_st_meta_int(&f, "n_layers", 0, M, &g.n_layers) && tsr_st_meta_int(&f, "n_heads", 0, M, &g.n_heads) &&
              tsr_st_meta_int(&f, "hidden", 0, M, &g.hidden);
    if (ok) {
        g.kind = strcmp(kind, "mlm") == 0 ? TSR_ELM_MLM : TSR_ELM_AR;
        g.tok = strcmp(tk, "vq") == 0 ? TSR_IMGTOK_VQ : TSR_IMGTOK_BAE;
        snprintf(m->tokenizer, sizeof m->tokenizer, "%s", tp);
    }
    tsr_st_free(&f);
    if (!ok) return tsr_errorf(TSR_ERR_FORMAT, "%s: not an elm generator checkpoint (metadata missing)", path);
    st = check_cfg(&g);
    if (st.code) return tsr_errorf(TSR_ERR_FORMAT, "%s: %s", path, st.msg);
    char tok[512];
    memcpy(tok, m->tokenizer, sizeof tok);
    m->cfg = g;
    tsr_params_init(&m->params);
    register_params(m);
    memcpy(m->tokenizer, tok, sizeof tok);
    st = tsr_params_load(&m->params, path, false);
    if (st.code) tsr_elm_free(m);
    return st;
}

void tsr_elm_split_codes(const tsr_elm_model *m, const uint8_t *bits, const int32_t *ids,
                         int64_t n, int32_t *sub) {
    const int S = m->cfg.n_sub;
    if (m->cfg.tok == TSR_IMGTOK_VQ) {
        memcpy(sub, ids, sizeof(int32_t) * (size_t)(n * TSR_ELM_POS));
        return;
    }
    const int K = m->cfg.bits, b = m->sub_bits;
    for (int64_t i = 0; i < n * TSR_ELM_POS; i++)
        for (int j = 0; j < S; j++) {
            int32_t v = 0;
            for (int t = 0; t < b; t++) v |= (int32_t)(bits[i * K + j * b + t] & 1) << t;
            sub[i * S + j] = v;
        }
}

void tsr_elm_join_codes(const tsr_elm_model *m, const int32_t *sub, int64_t n, uint8_t *bits,
                        int32_t *ids) {
    const int S = m->cfg.n_sub;
    if (m->cfg.tok == TSR_IMGTOK_VQ) {
        memcpy(ids, sub, sizeof(int32_t) * (size_t)(n * TSR_ELM_POS));
        return;
    }
    const int K = m->cfg.bits, b = m->sub_bits;
    for (int64_t i = 0; i < n * TSR_ELM_POS; i++)
        for (int j = 0; j < S; j++)
            for (int t = 0; t < b; t++) bits[i * K + j * b + t] = (uint8_t)((sub[i * S + j] >> t) & 1);
}

tsr_tensor *tsr_elm_embed_codes(tsr_ctx *c, const tsr_elm_model *m, const tsr_tensor *sub) {
    const int S = m->cfg.n_sub;
    const int64_t B = sub->shape[0], T = sub->shape[1];
    tsr_tensor *parts[TSR_ELM_MAX_SUB];
    for (int j = 0; j < S; j++) {
        tsr_tensor *idj = tsr_new(c, TSR_I32, TSR_DIMS(B, T));
        for (int64_t i = 0; i < B * T; i++) tsr_i32(idj)[i] = tsr_i32(sub)[i * S + j];
        parts[j] = tsr_embedding(c, m->tok_embed[j], idj);
    }
    tsr_tensor *cat = S == 1 ? parts[0] : tsr_concat(c, parts, S, 2);
    return tsr_linear(c, cat, m->in_proj, NULL);
}

/* grid position of sequence index s: the class token sits at (0,0), code p
 * at (1 + p/7, 1 + p%7), so no code shares the class token's rotation */
static void seq_pos(int s, int32_t *ph, int32_t *pw) {
    *ph = s == 0 ? 0 : 1 + (s - 1) / 7;
    *pw = s == 0 ? 0 : 1 + (s - 1) % 7;
}

static tsr_tensor *block(tsr_ctx *c, const tsr_nn_llama_block *b, tsr_tensor *x,
                         const tsr_tensor *ph, const tsr_tensor *pw, bool causal) {
    const int64_t B = x->shape[0], T = x->shape[1];
    const int H = b->n_heads, D = b->head_dim;
    tsr_tensor *h = tsr_nn_rmsnorm_forward(c, &b->input_layernorm, x);
    tsr_tensor *q = tsr_reshape(c, tsr_nn_linear_forward(c, &b->q_proj, h), TSR_DIMS(B, T, H, D));
    tsr_tensor *k = tsr_reshape(c, tsr_nn_linear_forward(c, &b->k_proj, h), TSR_DIMS(B, T, H, D));
    tsr_tensor *v = tsr_reshape(c, tsr_nn_linear_forward(c, &b->v_proj, h), TSR_DIMS(B, T, H, D));
    q = tsr_rope2d(c, q, ph, pw, b->rope_theta);
    k = tsr_rope2d(c, k, ph, pw, b->rope_theta);
    tsr_attn_opts o = {.causal = causal};
    tsr_tensor *a = tsr_reshape(c, tsr_attention(c, q, k, v, &o), TSR_DIMS(B, T, (int64_t)H * D));
    x = tsr_add(c, x, tsr_nn_linear_forward(c, &b->o_proj, a));
    h = tsr_nn_rmsnorm_forward(c, &b->post_attention_layernorm, x);
    tsr_tensor *mm = tsr_swiglu(c, tsr_nn_linear_forward(c, &b->gate_proj, h),
                                tsr_nn_linear_forward(c, &b->up_proj, h));
    return tsr_add(c, x, tsr_nn_linear_forward(c, &b->down_proj, mm));
}

/* hidden states whose row p predicts code p: (B,49,C) */
static tsr_tensor *hidden_for_codes(tsr_ctx *c, const tsr_elm_model *m, const int32_t *sub,
                                    const int32_t *labels, const uint8_t *mask, int64_t B) {
    const int S = m->cfg.n_sub, P = TSR_ELM_POS;
    const bool ar = m->cfg.kind == TSR_ELM_AR;
    const int64_t Tc = ar ? P - 1 : P, T = Tc + 1;
    tsr_tensor *in = tsr_new(c, TSR_I32, TSR_DIMS(B, Tc, S));
    for (int64_t b = 0; b < B; b++)
        for (int64_t p = 0; p < Tc; p++)
            for (int j = 0; j < S; j++) {
                bool msk = !ar && mask[b * P + p];
                tsr_i32(in)[(b * Tc + p) * S + j] = msk ? m->sub_vocab[j] : sub[(b * P + p) * S + j];
            }
    tsr_tensor *lab = tsr_new(c, TSR_I32, TSR_DIMS(B, 1));
    memcpy(tsr_i32(lab), labels, sizeof(int32_t) * (size_t)B);
    tsr_tensor *xs[2] = {tsr_embedding(c, m->cls_embed, lab), tsr_elm_embed_codes(c, m, in)};
    tsr_tensor *x = tsr_concat(c, xs, 2, 1);
    tsr_tensor *ph = tsr_new(c, TSR_I32, TSR_DIMS(T)), *pw = tsr_new(c, TSR_I32, TSR_DIMS(T));
    for (int s = 0; s < T; s++) seq_pos(s, tsr_i32(ph) + s, tsr_i32(pw) + s);
    for (int i = 0; i < m->cfg.n_layers; i++) x = block(c, &m->layers[i], x, ph, pw, ar);
    x = tsr_rmsnorm(c, x, m->norm, 1e-5f);
    return ar ? x : tsr_slice(c, x, 1, 1, T);
}

void tsr_elm_logits(tsr_ctx *c, const tsr_elm_model *m, const int32_t *sub, const int32_t *labels,
                    const uint8_t *mask, int64_t B, tsr_tensor **out) {
    tsr_tensor *h = hidden_for_codes(c, m, sub, labels, mask, B);
    for (int j = 0; j < m->cfg.n_sub; j++) out[j] = tsr_linear(c, h, m->head[j], NULL);
}

tsr_tensor *tsr_elm_loss(tsr_ctx *c, const tsr_elm_model *m, const int32_t *sub,
                         const int32_t *labels, const uint8_t *mask, int64_t B, float *nll) {
    const int S = m->cfg.n_sub, P = TSR_ELM_POS;
    tsr_tensor *lg[TSR_ELM_MAX_SUB];
    tsr_elm_logits(c, m, sub, labels, mask, B, lg);
    tsr_tensor *loss = NULL;
    float sum = 0;
    for (int j = 0; j < S; j++) {
        tsr_tensor *tg = tsr_new(c, TSR_I32, TSR_DIMS(B, P));
        for (int64_t i = 0; i < B * P; i++)
            tsr_i32(tg)[i] = (m->cfg.kind == TSR_ELM_MLM && !mask[i]) ? -100 : sub[i * S + j];
        tsr_tensor *l = tsr_cross_entropy(c, lg[j], tg, NULL, -100, 0.0f);
        sum += tsr_f32(l)[0];
        loss = loss ? tsr_add(c, loss, l) : l;
    }
    if (nll) *nll = sum;
    return S == 1 ? loss : tsr_scale(c, loss, 1.0f / (float)S);
}
