/* tessera nn: reusable layers built from ops, with parameters registered in
 * a tsr_params under HF-style dotted names, and a Llama-style decoder whose
 * names match HF's LlamaForCausalLM state dict 1:1:
 *   model.embed_tokens.weight
 *   model.layers.{i}.input_layernorm.weight
 *   model.layers.{i}.self_attn.{q,k,v,o}_proj.weight
 *   model.layers.{i}.post_attention_layernorm.weight
 *   model.layers.{i}.mlp.{gate,up,down}_proj.weight
 *   model.norm.weight
 *   lm_head.weight            (absent when tied to the embedding)
 * Modules hold pointers into the registry; they own no memory of their own
 * except the block array of a tsr_nn_llama. src/nn/. */
#ifndef TESSERA_NN_H
#define TESSERA_NN_H

#include "tessera/core.h"

/* ------------------------------------------------------------ simple layers */

/* y = x W^T + b; W (out,in) at "<prefix>.weight", b (out) at "<prefix>.bias" */
typedef struct {
    tsr_tensor *weight, *bias; /* bias NULL when absent */
    int in, out;
} tsr_nn_linear;

/* registers zero-initialised parameters; the caller (or a model init) fills them */
void tsr_nn_linear_init(tsr_nn_linear *l, tsr_params *p, const char *prefix, int in, int out,
                        bool bias);
/* x (..., in) -> (..., out) */
tsr_tensor *tsr_nn_linear_forward(tsr_ctx *c, const tsr_nn_linear *l, tsr_tensor *x);

/* table (V,C) at "<prefix>.weight" */
typedef struct {
    tsr_tensor *weight;
    int vocab, dim;
} tsr_nn_embedding;

void tsr_nn_embedding_init(tsr_nn_embedding *e, tsr_params *p, const char *prefix, int vocab,
                           int dim);
/* ids i32 (...) -> (..., C) */
tsr_tensor *tsr_nn_embedding_forward(tsr_ctx *c, const tsr_nn_embedding *e, const tsr_tensor *ids);

/* RMSNorm: "<prefix>.weight" (C), initialised to 1, no weight decay */
typedef struct {
    tsr_tensor *weight;
    float eps;
} tsr_nn_rmsnorm;

void tsr_nn_rmsnorm_init(tsr_nn_rmsnorm *n, tsr_params *p, const char *prefix, int dim, float eps);
tsr_tensor *tsr_nn_rmsnorm_forward(tsr_ctx *c, const tsr_nn_rmsnorm *n, tsr_tensor *x);

/* LayerNorm: "<prefix>.weight" = 1 and optional "<prefix>.bias" = 0, no decay */
typedef struct {
    tsr_tensor *weight, *bias;
    float eps;
} tsr_nn_layernorm;

void tsr_nn_layernorm_init(tsr_nn_layernorm *n, tsr_params *p, const char *prefix, int dim,
                           float eps, bool bias);
tsr_tensor *tsr_nn_layernorm_forward(tsr_ctx *c, const tsr_nn_layernorm *n, tsr_tensor *x);

/* ------------------------------------------------------- Llama-style decoder */

typedef struct {
    int dim, n_layers, n_heads, n_kv_heads, hidden_dim, vocab, max_seq;
    float norm_eps, rope_theta;
    bool tied; /* logits use model.embed_tokens.weight; no lm_head.weight */
} tsr_nn_llama_cfg;

/* How the tokens of one forward see each other. NULL means: causal,
 * positions 0..T-1, no extra mask. */
typedef struct {
    /* i32, T entries (shared over the batch) or B*T entries (per row) */
    const tsr_tensor *pos;
    /* u8 (T,T) or (B,T,T), 1 = may attend; ANDed with causal when set */
    const tsr_tensor *mask;
    bool causal;
} tsr_nn_seq;

typedef struct {
    tsr_nn_rmsnorm input_layernorm, post_attention_layernorm;
    tsr_nn_linear q_proj, k_proj, v_proj, o_proj;
    tsr_nn_linear gate_proj, up_proj, down_proj;
    int dim, n_heads, n_kv_heads, head_dim;
    float rope_theta;
} tsr_nn_llama_block;

/* registers "<prefix>.input_layernorm.weight", "<prefix>.self_attn.q_proj.weight", ... */
void tsr_nn_llama_block_init(tsr_nn_llama_block *b, tsr_params *p, const char *prefix,
                             const tsr_nn_llama_cfg *cfg);
/* x (B,T,C) -> (B,T,C):
 *   h = x + o(attn(rope(q(n1(x))), rope(k(n1(x))), v(n1(x))))
 *   y = h + down(silu(gate(n2(h))) * up(n2(h))) */
tsr_tensor *tsr_nn_llama_block_forward(tsr_ctx *c, const tsr_nn_llama_block *b, tsr_tensor *x,
                                       const tsr_nn_seq *seq);

typedef struct tsr_nn_llama {
    tsr_nn_llama_cfg cfg;
    tsr_params *params;
    tsr_nn_embedding embed_tokens;
    tsr_nn_llama_block *layers; /* cfg.n_layers, malloc'd */
    tsr_nn_rmsnorm norm;
    tsr_tensor *lm_head; /* (V,C); the embedding table when tied */
} tsr_nn_llama;

/* The config check alone (positive sizes, heads dividing dim and kv heads
 * dividing heads, an even head size, positive norm eps and RoPE base), for
 * callers that check user input before long work. */
tsr_status tsr_nn_llama_cfg_check(const tsr_nn_llama_cfg *cfg);
/* Checks the config (user input: returns an error, registers nothing) and
 * registers every parameter (zeros; norms at 1). */
tsr_status tsr_nn_llama_init(tsr_nn_llama *m, tsr_params *p, const tsr_nn_llama_cfg *cfg);
void tsr_nn_llama_free(tsr_nn_llama *m);
/* Weights as in common Llama trainers: N(0, 0.02) for embeddings and
 * projections, o_proj and down_proj N(0, 0.02/sqrt(2 n_layers)) so the
 * residual stream's variance does not grow with depth (GPT-2 sec. 2.3),
 * norms 1. */
void tsr_nn_llama_init_weights(tsr_nn_llama *m, tsr_rng *r);

/* tokens i32 (B,T), T <= max_seq -> final normed hidden states (B,T,C) */
tsr_tensor *tsr_nn_llama_hidden(tsr_ctx *c, const tsr_nn_llama *m, const tsr_tensor *tokens,
                                const tsr_nn_seq *seq);
/* tokens i32 (B,T) -> logits (B,T,V) */
tsr_tensor *tsr_nn_llama_forward(tsr_ctx *c, const tsr_nn_llama *m, const tsr_tensor *tokens,
                                 const tsr_nn_seq *seq);
/* mean cross-entropy of next-token targets i32 (B,T); targets equal to
 * ignore_index do not count. *logits_out (may be NULL) gets the logits. */
tsr_tensor *tsr_nn_llama_loss(tsr_ctx *c, const tsr_nn_llama *m, const tsr_tensor *tokens,
                              const tsr_tensor *targets, int ignore_index, const tsr_nn_seq *seq,
                              tsr_tensor **logits_out);

/* Matmul FLOPs of one forward over B*T tokens (projections, MLP, head, and
 * attention scores + weighted sum counted over the full T x T square, as
 * in the usual 6N + 12 L T C training estimate); backward is twice this. */
double tsr_nn_llama_flops_fwd(const tsr_nn_llama_cfg *cfg, int B, int T);

#endif
