/* tessera lm training: the Llama-style decoder (tsr_nn_llama) trained on a
 * code corpus tokenised with a byte-level BPE (include/tessera/corpus.h).
 * src/models/lm/train.c; the CLI verb is `tessera lm train`.
 *
 * Data. Each step draws `batch` windows of context+1 tokens at uniform
 * random offsets of the training stream with the trainer's rng (seeded; its
 * state is in the training-state file), so a resumed run draws the same
 * windows as a straight one. Inputs are tokens 0..T-1 of a window, targets
 * tokens 1..T.
 *
 * Evaluation. A FIXED set of validation windows: n = eval_tokens / T
 * windows (at least 1, at most what fits) at evenly spaced offsets
 * floor(i * (N - T - 1) / max(n - 1, 1)) of the validation stream (N
 * tokens). No rng is involved, so every evaluation of every run sees the
 * same tokens. Reported: mean loss in nats per predicted token, and bits
 * per byte over the bytes those windows cover:
 *   bpb = sum of the losses of the n*T targets / (ln 2 * bytes)
 *       = mean_loss * n_tokens / n_bytes / ln 2,
 * where bytes is the number of bytes the n*T TARGET tokens decode to
 * (tsr_bpe_piece lengths; a special token such as the <|endoftext|> file
 * separator counts 0 bytes, as in the corpus's byte count, which excludes
 * separators). Overlapping windows count their shared tokens twice on both
 * sides of the ratio, so the ratio stays a per-byte figure.
 *
 * Files, for --out runs/lm.safetensors:
 *   runs/lm.safetensors          params F32 + config metadata (checkpoint)
 *   runs/lm.state.safetensors    AdamW moments, step, rng, cursor
 *   runs/lm.bf16.safetensors     params BF16 + config metadata (at the end)
 *   runs/lm.<hash>.train.tok     token caches (corpus.h format), <hash>
 *   runs/lm.<hash>.val.tok       identifies tokenizer + file list
 * Config metadata keys (HF config.json names): model_type "llama",
 * hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
 * intermediate_size, vocab_size, max_position_embeddings, rope_theta,
 * rms_norm_eps, tie_word_embeddings ("true"/"false"), tokenizer (file
 * name), tokenizer_hash (16 hex digits, tsr_bpe_hash); plus train.* keys.
 */
#ifndef TESSERA_LM_TRAIN_H
#define TESSERA_LM_TRAIN_H

#include "tessera/bpe.h"
#include "tessera/core.h"
#include "tessera/nn.h"
#include "tessera/safetensors.h"
#include "tessera/train.h"

typedef struct {
    int64_t step;
    double val_loss, val_bpb;
    int64_t tokens, bytes; /* what the fixed window set covers */
} tsr_lm_train_eval;

/* where one invocation's wall time went (seconds) */
typedef struct {
    double data, forward, backward, optim, eval, ckpt, total;
} tsr_lm_train_times;

/* Builds one step's examples (B,T) from the training stream: inputs x and
 * targets y (-100: no loss), drawing only from rng (whose state is saved in
 * the training state, so a resumed run draws the same examples). */
typedef void (*tsr_lm_batch_fn)(void *ud, int32_t *x, int32_t *y, int B, int T, const int32_t *train,
                                size_t n_train, tsr_rng *rng);

typedef struct {
    const char *data_dir;   /* corpus root (.py files) */
    const char *val_list;   /* held-out list; NULL: data/python_val_files.txt; "none": no validation */
    const char *tokenizer;  /* tokenizer.json (required) */
    tsr_nn_llama_cfg cfg;   /* vocab 0: the tokenizer's; n_kv_heads 0: n_heads */
    int batch;
    int64_t eval_tokens;
    int eval_context;       /* tokens per validation window (0: the training context) */
    /* Fine-tuning: start from these weights (a safetensors file with HF
     * names, F32 or BF16) instead of a random init; an embedding with fewer
     * rows than the model's vocab grows (tsr_params_load_grow). Not read on
     * resume. */
    const char *init_from;
    int extra_vocab;          /* model vocab = tokenizer's + this (added tokens, never in the corpus) */
    tsr_lm_batch_fn make_batch; /* NULL: plain windows */
    void *batch_ud;
    const char *data_rule;    /* names make_batch in the metadata; a resume under another rule is refused */
    void (*on_eval)(const tsr_lm_train_eval *e, void *ud); /* every evaluation, with its token and byte counts */
    void (*on_note)(const char *msg, void *ud); /* tokenising, checkpoints */
    void *ud;
    /* out (F32 checkpoint), steps, lr, schedule, clip, eval_every,
     * eval_first, checkpoints, resume, reschedule, seed, stop, progress,
     * log: the shared trainer's options */
    tsr_train_opts train;
} tsr_lm_train_opts;

typedef struct {
    int64_t steps, total;   /* global step reached, of total */
    bool finished, interrupted;
    float last_loss;
    tsr_lm_train_eval eval; /* last evaluation (step -1 when none) */
    tsr_lm_train_eval eval_first; /* the starting weights' (eval_first; step -1 when none) */
    double tokens_per_s;    /* training tokens of this invocation / its step time */
    double gflops;          /* model matmul FLOP rate of the steps (fwd+bwd = 3x fwd) */
    int64_t n_params;
    tsr_lm_train_times times;
    uint64_t train_tokens, val_tokens;
    char bf16_path[1200];
} tsr_lm_train_result;

tsr_lm_train_opts tsr_lm_train_default_opts(void);

/* Loads the tokenizer and corpus (token caches next to out), then trains. */
tsr_status tsr_lm_train(const tsr_lm_train_opts *o, tsr_lm_train_result *r);

/* The loop itself over token streams already in memory (tests use it
 * directly). bpe (may be NULL: every token is one byte) gives the byte
 * counts; tok_name/tok_hash go into the metadata. */
tsr_status tsr_lm_train_tokens(const tsr_lm_train_opts *o, const int32_t *train, size_t n_train,
                               const int32_t *val, size_t n_val, const tsr_bpe *bpe,
                               const char *tok_name, uint64_t tok_hash, tsr_lm_train_result *r);

/* bits per byte: sum_loss_nats / bytes / ln 2 */
double tsr_lm_bpb(double mean_loss_nats, int64_t n_tokens, int64_t n_bytes);
/* bytes the n ids decode to, special tokens counting 0 (bpe NULL: n) */
int64_t tsr_lm_token_bytes(const tsr_bpe *bpe, const int32_t *ids, size_t n);
/* start of fixed validation window i of n over a stream of N tokens, T+1 long */
size_t tsr_lm_eval_offset(size_t N, int T, int64_t i, int64_t n);

/* "m.safetensors" -> "m.state.safetensors" / "m.bf16.safetensors" */
void tsr_lm_sibling_path(const char *ckpt, const char *tag, char *buf, size_t n);
/* Rebuild the model config from a checkpoint's metadata. */
tsr_status tsr_lm_ckpt_config(const tsr_st_file *f, tsr_nn_llama_cfg *cfg);

#endif
