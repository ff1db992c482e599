/* tessera bita: BiTA, bi-directional tuning for lossless acceleration (Lin
 * et al. 2024, "BiTA: Bi-Directional Tuning for Lossless Acceleration in
 * Large Language Models"), on a frozen Llama-style lm.
 *
 * What is trained (sec. 3.2): k mask-token embeddings (one per draft
 * offset, distinct) and P prompt tokens realised per layer as key/value
 * prefixes (P-tuning v2: raw K/V vectors, stored as the cache stores K,
 * i.e. already "rotated"; no RoPE is applied to them). Nothing of the base
 * model is trained or written.
 *
 * Sequence semantics (training and decoding agree):
 * - Ordinary tokens x_0..x_{n-1} sit at positions 0..n-1 and never see
 *   the prompt K/V or any mask, so their logits are those of the base
 *   model.
 * - A mask group with start s holds masks m_0..m_{k-1}; mask j sees the
 *   prompt K/V, x_0..x_{s-1}, and m_0..m_j of its own group (no other
 *   group). Its position is "visible keys - 1" with the P prompt slots not
 *   counted: s + j. It is labelled x_{s+1+j} (no label shift: mask j's
 *   logits predict that token directly). So the group after node x_a
 *   (start a+1) drafts the tokens after the model's own next token
 *   x_{a+1}, which verification supplies as the bonus.
 *
 * Decoding (sec. 3.3, with a KV cache): cache slots 0..P-1 hold the prompt
 * K/V (visible only to mask rows), slots P.. the sequence. One masked
 * forward per step takes the root (last token, not cached), a draft tree
 * and one mask group per tree node; level m of the tree holds the
 * top-(n - m) tokens of mask m, children of the top-1 token of level m-1.
 * Verification walks the tree against the model's argmax (greedy) or by
 * speculative sampling (temperature > 0), the accepted rows are compacted
 * in place, the bonus token becomes the next root, and the next drafts come
 * from the mask group of the last accepted node.
 *
 * src/models/bita/: adapter.c (files, the extended model view), decode.c
 * (tree, generation, shape choice), train.c (training forward, data,
 * tuning loop). CLI: src/cli/cmd_bita.c.
 */
#ifndef TESSERA_BITA_H
#define TESSERA_BITA_H

#include "tessera/core.h"
#include "tessera/lm.h"
#include "tessera/train.h"
#include "tessera/nn.h"

#define TSR_BITA_MAX_K 8   /* mask tokens */
#define TSR_BITA_MAX_TOP 8 /* candidates per tree level */

/* ------------------------------------------------------------ adapter */

typedef struct {
    int k, n_prefix;                  /* masks, prompt tokens P */
    int dim, n_layers, kv_dim, vocab; /* of the base model */
    float *mask_emb;                  /* (k, dim) */
    float *prefix_k, *prefix_v;       /* (n_layers, P, kv_dim) */
    char base_hash[17];               /* tsr_bita_file_hash of the base weights ("" unknown) */
    /* acc[j][r]: fraction of held-out mask-j labels within mask j's
     * top-(r+1) (measured at the end of tuning; 0 when unknown) */
    float acc[TSR_BITA_MAX_K][TSR_BITA_MAX_TOP];
} tsr_bita_adapter;

/* zeroed adapter shaped for cfg; k in [1, TSR_BITA_MAX_K], P >= 1 */
tsr_status tsr_bita_adapter_alloc(tsr_bita_adapter *a, const tsr_lm_config *cfg, int k, int n_prefix);
void tsr_bita_adapter_free(tsr_bita_adapter *a);
/* safetensors: "bita.mask_embed" (k, C), "bita.prefix.{l}.key" and
 * "bita.prefix.{l}.value" (1, P, Hkv, D) F32; metadata k, n_prefix, dim,
 * n_layers, kv_dim, vocab, base_hash, acc (comma list, k*8 numbers). */
tsr_status tsr_bita_adapter_load(tsr_bita_adapter *a, const char *path);
tsr_status tsr_bita_adapter_save(const tsr_bita_adapter *a, const char *path); /* atomic */
/* Refuses an adapter whose shapes do not fit the model. */
tsr_status tsr_bita_adapter_check(const tsr_bita_adapter *a, const tsr_lm_config *cfg);
/* 16 hex digits of FNV-1a 64 over a file's bytes (a directory: its
 * model.safetensors) */
tsr_status tsr_bita_file_hash(const char *path, char out[17]);

/* The base model seen with k extra vocabulary rows (the mask embeddings)
 * appended to its embedding table: same weights, same classifier (V
 * rows), cfg.vocab_size = V + k so that mask ids V..V+k-1 pass the
 * forward's token check. Logit rows are V + k floats apart; only the
 * first V are written (decode.c fills the rest with -inf). */
typedef struct {
    tsr_lm_model view;
    const tsr_lm_model *base;
    const tsr_bita_adapter *ad;
    float *emb; /* (V + k, C) */
} tsr_bita_model;

tsr_status tsr_bita_model_init(tsr_bita_model *bm, const tsr_lm_model *base, const tsr_bita_adapter *a);
void tsr_bita_model_free(tsr_bita_model *bm);

/* ------------------------------------------------------------ decoding */

typedef struct {
    int top;   /* n: level m holds top-(n - m) candidates (at least 1) */
    int depth; /* tree levels = masks per group, 0..k (0: no drafts, plain steps) */
} tsr_bita_shape;

/* rows of one verification forward: nodes (root + tree) * (1 + depth) */
int tsr_bita_shape_rows(tsr_bita_shape s);
int tsr_bita_shape_nodes(tsr_bita_shape s);
/* Expected tokens per step of a shape from the acceptance table
 * (acc[m][r] as in tsr_bita_adapter): 1 + sum_m P(levels < m accepted by
 * their top-1) * acc[m][top - m - 1]. */
double tsr_bita_shape_tokens(const float acc[TSR_BITA_MAX_K][TSR_BITA_MAX_TOP], int k, tsr_bita_shape s);
/* The shape maximising tokens per step / (ms[rows] / ms[1]) over top in
 * 1..max_top, depth in 1..k with rows <= n_max; depth 0 (plain one-row
 * steps, value 1) when no tree is expected to beat it. */
tsr_bita_shape tsr_bita_choose_shape(const tsr_bita_adapter *a, const double *ms, int n_max, int max_top);

typedef struct {
    tsr_bita_shape shape;
    int stop_token; /* < 0: none */
    int max_len;    /* sequence length bound (<= 0: the model's seq_len) */
    /* temperature 0: greedy (token-identical to tsr_decode_greedy_generate);
     * > 0: exact speculative sampling (tsr_decode_accept_sample) from the
     * distribution tsr_lm_sample draws from (temperature, top-k, top-p,
     * min-p; no repetition penalty) */
    tsr_lm_sampler_opts sampling;
} tsr_bita_gen_opts;

typedef struct {
    int new_tokens, forwards, rows; /* rows: every row of every verification forward */
    int accepted;                   /* drafts accepted */
    int level_tries[TSR_BITA_MAX_K], level_hits[TSR_BITA_MAX_K]; /* steps reaching level m / accepting it */
    double prefill_s, decode_s;
} tsr_bita_stats;

void tsr_bita_gen_defaults(tsr_bita_gen_opts *o);
/* Generate up to max_new tokens after prompt (n_prompt >= 1 ids) into out;
 * stops after stop_token or when prompt + generated tokens reach
 * max_len + 1 (as tsr_decode_greedy_generate). */
tsr_status tsr_bita_generate(const tsr_bita_model *bm, const int *prompt, int n_prompt, int max_new,
                             const tsr_bita_gen_opts *o, int *out, int *n_out, tsr_bita_stats *st);

/* ------------------------------------------------------------ training */

/* The trainable adapter in a tsr_params registry (names as in the file). */
typedef struct {
    tsr_params params;
    tsr_tensor *mask_emb;                 /* (k, C) */
    tsr_tensor **prefix_k, **prefix_v;    /* n_layers x (1, P, Hkv, D) */
    int k, n_prefix, n_layers;
} tsr_bita_train_adapter;

/* registers the parameters (mask embeddings N(0, 0.02); prefixes N(0, 0.02)) */
void tsr_bita_train_adapter_init(tsr_bita_train_adapter *a, const tsr_nn_llama_cfg *cfg, int k, int n_prefix,
                                 uint64_t seed);
void tsr_bita_train_adapter_free(tsr_bita_train_adapter *a);
/* copy into / out of the plain adapter */
void tsr_bita_train_adapter_export(const tsr_bita_train_adapter *a, tsr_bita_adapter *out);

/* One forward of n rows (batch 1) through the frozen decoder m.
 * x (1, n, C): input embeddings; pos i32 (n); mask u8 (n, P + n_ctx + n):
 * row t may see prompt slot p (column p), context row j (column P + j),
 * new row u (column P + n_ctx + u). ctx_k/ctx_v: per layer (1, n_ctx,
 * Hkv, D) K (after RoPE) and V of earlier rows (NULL when n_ctx == 0).
 * a NULL: no prompt slots (P = 0; the mask has n_ctx + n columns).
 * k_out/v_out (optional, n_layers entries) get this call's per-layer K/V
 * (for use as the context of a later call). Returns the final-normed
 * hidden states (1, n, C). */
tsr_tensor *tsr_bita_rows_forward(tsr_ctx *c, const tsr_nn_llama *m, const tsr_bita_train_adapter *a,
                                  tsr_tensor *x, const tsr_tensor *pos, const tsr_tensor *mask, int n_ctx,
                                  tsr_tensor *const *ctx_k, tsr_tensor *const *ctx_v, tsr_tensor **k_out,
                                  tsr_tensor **v_out);

/* One self-distilled example: the ordinary tokens (prompt then the base
 * model's greedy response) and up to G group starts (indices into seq,
 * each > n_prompt - 1 and with start + k < n_seq). */
typedef struct {
    int32_t *seq;
    int n_seq, n_prompt;
} tsr_bita_example;

/* Loss of one example with groups at starts[0..n_groups): the ordinary
 * rows run without grad (their K/V are constants), then every group's
 * masks in one forward with grad; mean cross-entropy over the labelled
 * masks. *logits_out (optional) gets the (n_groups*k, V) logits. */
tsr_tensor *tsr_bita_example_loss(tsr_ctx *c, const tsr_nn_llama *m, const tsr_bita_train_adapter *a,
                                  const tsr_bita_example *ex, const int *starts, int n_groups,
                                  tsr_tensor **logits_out);

typedef struct {
    const char *model;     /* base model (HF dir or .safetensors) */
    const char *data_dir;  /* corpus root (training split) */
    const char *val_list;  /* held-out list (NULL: data/python_val_files.txt; "none": no held-out files) */
    int k, n_prefix, groups;
    int examples;          /* self-distilled examples to generate */
    int prompt_min, prompt_max, response; /* tokens */
    int eval_examples;     /* held back for the acceptance table */
    int batch;             /* examples per optimizer step */
    /* out (adapter; state next to it: .state.safetensors), steps, lr,
     * schedule, checkpoints, resume (which may extend steps), seed,
     * progress, log: the shared trainer's options */
    tsr_train_opts train;
} tsr_bita_tune_opts;

typedef struct {
    int64_t steps_done;
    float final_loss;
    int n_examples;
    float acc[TSR_BITA_MAX_K][TSR_BITA_MAX_TOP];
    char base_hash_before[17], base_hash_after[17];
    double data_s, train_s;
    bool stopped;
    tsr_train_result train;
} tsr_bita_tune_result;

void tsr_bita_tune_defaults(tsr_bita_tune_opts *o);
tsr_status tsr_bita_tune(const tsr_bita_tune_opts *o, tsr_bita_tune_result *r);

#endif
