/* tessera nn: the Llama-style decoder (pre-RMSNorm blocks, RoPE with HF's
 * rotate-half layout, grouped-query attention, SwiGLU MLP), with HF
 * LlamaForCausalLM parameter names so checkpoints map 1:1. Used by the lm
 * family and by anything else that trains or decodes a Llama-shaped stack.
 * Architecture: Touvron et al. 2023 (LLaMA) sec. 2.2; GQA: Ainslie et al.
 * 2023; SwiGLU: Shazeer 2020. */
#include "tessera/nn.h"
#include "tessera/ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void tsr_nn_llama_block_init(tsr_nn_llama_block *b, tsr_params *p, const char *prefix,
                             const tsr_nn_llama_cfg *cfg) {
    char nm[256];
    int C = cfg->dim, D = cfg->dim / cfg->n_heads;
    memset(b, 0, sizeof *b);
    b->dim = C;
    b->n_heads = cfg->n_heads;
    b->n_kv_heads = cfg->n_kv_heads;
    b->head_dim = D;
    b->rope_theta = cfg->rope_theta;
#define NM(leaf) (snprintf(nm, sizeof nm, "%s.%s", prefix, leaf), nm)
    tsr_nn_rmsnorm_init(&b->input_layernorm, p, NM("input_layernorm"), C, cfg->norm_eps);
    tsr_nn_linear_init(&b->q_proj, p, NM("self_attn.q_proj"), C, cfg->n_heads * D, false);
    tsr_nn_linear_init(&b->k_proj, p, NM("self_attn.k_proj"), C, cfg->n_kv_heads * D, false);
    tsr_nn_linear_init(&b->v_proj, p, NM("self_attn.v_proj"), C, cfg->n_kv_heads * D, false);
    tsr_nn_linear_init(&b->o_proj, p, NM("self_attn.o_proj"), cfg->n_heads * D, C, false);
    tsr_nn_rmsnorm_init(&b->post_attention_layernorm, p, NM("post_attention_layernorm"), C,
                        cfg->norm_eps);
    tsr_nn_linear_init(&b->gate_proj, p, NM("mlp.gate_proj"), C, cfg->hidden_dim, false);
    tsr_nn_linear_init(&b->up_proj, p, NM("mlp.up_proj"), C, cfg->hidden_dim, false);
    tsr_nn_linear_init(&b->down_proj, p, NM("mlp.down_proj"), cfg->hidden_dim, C, false);
#undef NM
}

/* positions 0..T-1 when the caller gives none */
static const tsr_tensor *default_pos(tsr_ctx *c, const tsr_nn_seq *seq, int64_t T) {
    if (seq && seq->pos) return seq->pos;
    tsr_tensor *pos = tsr_new(c, TSR_I32, TSR_DIMS(T));
    for (int64_t t = 0; t < T; t++) tsr_i32(pos)[t] = (int32_t)t;
    return pos;
}

static tsr_tensor *block_forward(tsr_ctx *c, const tsr_nn_llama_block *b, tsr_tensor *x,
                                 const tsr_tensor *pos, const tsr_nn_seq *seq) {
    TSR_ASSERT(x->ndim == 3 && x->shape[2] == b->dim);
    int64_t B = x->shape[0], T = x->shape[1];
    int H = b->n_heads, Hkv = b->n_kv_heads, D = b->head_dim;
    TSR_ASSERT(pos->numel == T || pos->numel == B * T);

    tsr_tensor *h = tsr_nn_rmsnorm_forward(c, &b->input_layernorm, x);
    tsr_tensor *q = tsr_reshape(c, tsr_nn_linear_forward(c, &b->q_proj, h), TSR_DIMS(B, T, H, D));
    tsr_tensor *k = tsr_reshape(c, tsr_nn_linear_forward(c, &b->k_proj, h), TSR_DIMS(B, T, Hkv, D));
    tsr_tensor *v = tsr_reshape(c, tsr_nn_linear_forward(c, &b->v_proj, h), TSR_DIMS(B, T, Hkv, D));
    q = tsr_rope(c, q, pos, b->rope_theta, false);
    k = tsr_rope(c, k, pos, b->rope_theta, false);
    tsr_attn_opts o = {.causal = seq ? seq->causal : true, .mask = seq ? seq->mask : NULL};
    tsr_tensor *a = tsr_reshape(c, tsr_attention(c, q, k, v, &o), TSR_DIMS(B, T, (int64_t)H * D));
    x = tsr_add(c, x, tsr_nn_linear_forward(c, &b->o_proj, a));

    h = tsr_nn_rmsnorm_forward(c, &b->post_attention_layernorm, x);
    tsr_tensor *m = tsr_swiglu(c, tsr_nn_linear_forward(c, &b->gate_proj, h),
                               tsr_nn_linear_forward(c, &b->up_proj, h));
    return tsr_add(c, x, tsr_nn_linear_forward(c, &b->down_proj, m));
}

tsr_tensor *tsr_nn_llama_block_forward(tsr_ctx *c, const tsr_nn_llama_block *b, tsr_tensor *x,
                                       const tsr_nn_seq *seq) {
    return block_forward(c, b, x, default_pos(c, seq, x->shape[1]), seq);
}

tsr_status tsr_nn_llama_cfg_check(const tsr_nn_llama_cfg *cfg) {
    const tsr_nn_llama_cfg *g = cfg;
    if (g->dim <= 0 || g->n_layers <= 0 || g->n_heads <= 0 || g->n_kv_heads <= 0 ||
        g->hidden_dim <= 0 || g->vocab <= 0 || g->max_seq <= 0)
        return tsr_errorf(TSR_ERR_ARG, "llama config: sizes must be positive (dim %d, layers %d, "
                          "heads %d, kv heads %d, hidden %d, vocab %d, max_seq %d)",
                          g->dim, g->n_layers, g->n_heads, g->n_kv_heads, g->hidden_dim, g->vocab,
                          g->max_seq);
    if (g->dim % g->n_heads != 0)
        return tsr_errorf(TSR_ERR_ARG, "llama config: dim %d not divisible by n_heads %d", g->dim,
                          g->n_heads);
    if (g->n_heads % g->n_kv_heads != 0)
        return tsr_errorf(TSR_ERR_ARG, "llama config: n_heads %d not divisible by n_kv_heads %d",
                          g->n_heads, g->n_kv_heads);
    if ((g->dim / g->n_heads) % 2 != 0)
        return tsr_errorf(TSR_ERR_ARG, "llama config: head dim %d must be even for RoPE",
                          g->dim / g->n_heads);
    if (!(g->norm_eps > 0) || !(g->rope_theta > 0))
        return tsr_errorf(TSR_ERR_ARG, "llama config: norm_eps and rope_theta must be positive");
    return tsr_ok();
}

tsr_status tsr_nn_llama_init(tsr_nn_llama *m, tsr_params *p, const tsr_nn_llama_cfg *cfg) {
    memset(m, 0, sizeof *m);
    const tsr_nn_llama_cfg *g = cfg;
    tsr_status st = tsr_nn_llama_cfg_check(cfg);
    if (st.code) return st;
    m->cfg = *cfg;
    m->params = p;
    tsr_nn_embedding_init(&m->embed_tokens, p, "model.embed_tokens", g->vocab, g->dim);
    m->layers = calloc((size_t)g->n_layers, sizeof *m->layers);
    TSR_ASSERT(m->layers);
    for (int i = 0; i < g->n_layers; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "model.layers.%d", i);
        tsr_nn_llama_block_init(&m->layers[i], p, prefix, g);
    }
    tsr_nn_rmsnorm_init(&m->norm, p, "model.norm", g->dim, g->norm_eps);
    m->lm_head = g->tied ? m->embed_tokens.weight
                         : tsr_param_new(p, "lm_head.weight", 0, TSR_DIMS(g->vocab, g->dim));
    return tsr_ok();
}

void tsr_nn_llama_free(tsr_nn_llama *m) {
    free(m->layers);
    m->layers = NULL;
}

void tsr_nn_llama_init_weights(tsr_nn_llama *m, tsr_rng *r) {
    const float std = 0.02f;
    const float res_std = std / sqrtf(2.0f * (float)m->cfg.n_layers);
    tsr_init_normal(m->embed_tokens.weight, r, std);
    for (int i = 0; i < m->cfg.n_layers; i++) {
        tsr_nn_llama_block *b = &m->layers[i];
        tsr_init_const(b->input_layernorm.weight, 1.0f);
        tsr_init_const(b->post_attention_layernorm.weight, 1.0f);
        tsr_init_normal(b->q_proj.weight, r, std);
        tsr_init_normal(b->k_proj.weight, r, std);
        tsr_init_normal(b->v_proj.weight, r, std);
        tsr_init_normal(b->o_proj.weight, r, res_std);
        tsr_init_normal(b->gate_proj.weight, r, std);
        tsr_init_normal(b->up_proj.weight, r, std);
        tsr_init_normal(b->down_proj.weight, r, res_std);
    }
    tsr_init_const(m->norm.weight, 1.0f);
    if (!m->cfg.tied) tsr_init_normal(m->lm_head, r, std);
}

tsr_tensor *tsr_nn_llama_hidden(tsr_ctx *c, const tsr_nn_llama *m, const tsr_tensor *tokens,
                                const tsr_nn_seq *seq) {
    TSR_ASSERT(tokens->dtype == TSR_I32 && tokens->ndim == 2);
    TSR_ASSERT(tokens->shape[1] <= m->cfg.max_seq);
    const tsr_tensor *pos = default_pos(c, seq, tokens->shape[1]);
    tsr_tensor *x = tsr_nn_embedding_forward(c, &m->embed_tokens, tokens);
    for (int i = 0; i < m->cfg.n_layers; i++) x = block_forward(c, &m->layers[i], x, pos, seq);
    return tsr_nn_rmsnorm_forward(c, &m->norm, x);
}

tsr_tensor *tsr_nn_llama_forward(tsr_ctx *c, const tsr_nn_llama *m, const tsr_tensor *tokens,
                                 const tsr_nn_seq *seq) {
    return tsr_linear(c, tsr_nn_llama_hidden(c, m, tokens, seq), m->lm_head, NULL);
}

tsr_tensor *tsr_nn_llama_loss(tsr_ctx *c, const tsr_nn_llama *m, const tsr_tensor *tokens,
                              const tsr_tensor *targets, int ignore_index, const tsr_nn_seq *seq,
                              tsr_tensor **logits_out) {
    TSR_ASSERT(tsr_same_shape(tokens, targets));
    tsr_tensor *logits = tsr_nn_llama_forward(c, m, tokens, seq);
    if (logits_out) *logits_out = logits;
    return tsr_cross_entropy(c, logits, targets, NULL, ignore_index, 0.0f);
}

double tsr_nn_llama_flops_fwd(const tsr_nn_llama_cfg *g, int B, int T) {
    double C = g->dim, D = (double)g->dim / g->n_heads, H = g->n_heads, Hkv = g->n_kv_heads;
    double per_tok_layer = 2.0 * (C * H * D + 2.0 * C * Hkv * D + H * D * C + 3.0 * C * g->hidden_dim) +
                           2.0 * 2.0 * T * H * D; /* q k^T and p v over all T keys */
    double per_tok = g->n_layers * per_tok_layer + 2.0 * C * g->vocab;
    return per_tok * B * T;
}
