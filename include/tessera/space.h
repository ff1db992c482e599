/* tessera space: SPACE, "Generation Meets Verification: Accelerating Large
 * Language Model Inference with Smart Parallel Auto-Correct Decoding"
 * (Yi et al., 2024). One model both drafts (through appended mask tokens)
 * and verifies (through its ordinary next-token logits), so generation
 * stays exactly the model's own. src/models/space/; CLI `tessera space`.
 *
 * Semi-autoregressive (SAR) fine-tuning (paper sec. 3.2). A mask token is
 * added to the vocabulary. An example is a window of the training stream;
 * with probability prob it becomes an SAR example: for a cut p drawn
 * uniformly in [min_prefix, T - k - 1] the inputs are w[0..p) followed by
 * k + 1 mask tokens (the rest of the window is padding without loss);
 * targets are the ordinary next tokens for t < p (so the last real token
 * predicts w[p]), mask i (0 <= i < k) predicts w[p + 1 + i] and the last
 * mask carries no loss. Otherwise it is a plain next-token window.
 * Attention stays causal. In the paper's terms w[0..min_prefix) is the
 * prompt and s = p - min_prefix indexes the response.
 *
 * Auto-correct decoding (paper sec. 3.3). Each forward carries the root
 * (the last generated token, not yet in the KV cache), the candidates
 * C[0..k) and k + 1 groups of k masks, laid out as the tree
 *     root, G0, C0, G1, C1, ..., C(k-1), Gk
 * where C0's parent is the root, C(j)'s is C(j-1), group G(j) is a chain of
 * masks hanging off the token before it (root or C(j-1)). So each group
 * sees the cached prefix, the root and the candidates before it; no row
 * sees another group; positions are "visible keys - 1" (decode.h). The
 * longest run of candidates equal to the model's argmax is accepted, the
 * bonus token (the argmax after the last accepted row) is appended, and
 * the next candidates are the argmax of the mask group that follows the
 * last accepted row. The cache keeps the accepted rows only. */
#ifndef TESSERA_SPACE_H
#define TESSERA_SPACE_H

#include "tessera/decode.h"
#include "tessera/lm.h"
#include "tessera/lm_train.h"

#define TSR_SPACE_MASK "<|mask|>"

/* ------------------------------------------------------------ SAR tuning */

typedef struct {
    int k;          /* masks with a target per SAR example (k + 1 appended) */
    float prob;     /* share of SAR examples (paper: 0.5) */
    int mask_id;
    int min_prefix; /* shortest "prompt" before the masks */
} tsr_space_sar;

/* tsr_lm_batch_fn with ud = const tsr_space_sar *: B windows drawn at
 * uniform offsets of the training stream, each made an SAR example with
 * probability prob (rules above). */
void tsr_space_sar_batch(void *ud, int32_t *x, int32_t *y, int B, int T, const int32_t *train, size_t n_train,
                         tsr_rng *rng);

typedef struct {
    const char *base;  /* HF directory: config.json, model.safetensors, tokenizer.json */
    const char *out;   /* output HF directory (created); training files live in it too */
    tsr_space_sar sar; /* mask_id is set by tune */
    /* data_dir, val_list, cfg.max_seq (0: the base's), batch, steps, lr,
     * schedule, eval, checkpoints, resume, seed and callbacks; the rest is
     * set by tsr_space_tune */
    tsr_lm_train_opts lm; /* the lm trainer's settings (lm.train: steps, lr, checkpoints, ...) */
} tsr_space_tune_opts;

tsr_space_tune_opts tsr_space_tune_default_opts(void);

/* Fine-tunes every weight of the base model with SAR examples. Validation
 * is plain next-token bits per byte on windows of the BASE model's context,
 * for the starting weights (r->eval_first) and during/after training
 * (r->eval), so the two compare. When finished, out/ holds config.json,
 * model.safetensors (BF16) and tokenizer.json (the base's plus <|mask|>)
 * next to the F32 checkpoint train.safetensors and its state. */
tsr_status tsr_space_tune(const tsr_space_tune_opts *o, tsr_lm_train_result *r);

/* ------------------------------------------------------------ decoding */

typedef struct {
    int k;            /* candidates per step and masks per group (0 or below: auto) */
    int k_max;        /* largest k auto may pick */
    int mask_id;
    int stop_token;   /* < 0: none */
    int max_len;      /* KV cache length (<= 0: the model's seq_len) */
    /* sampling: temperature 0 is greedy; otherwise exact speculative
     * sampling (decode.h) with these sampler options and rng seed */
    tsr_lm_sampler_opts sampler;
    const double *cost_ms; /* measured cost of a forward of n rows, [0..cost_n] (auto k); NULL: measure */
    int cost_n;
} tsr_space_opts;

void tsr_space_default_opts(tsr_space_opts *o);

typedef struct {
    tsr_decode_stats d;
    int k_used;           /* the k auto picked (or the fixed one) */
    int64_t accepted_at[16]; /* steps in which candidate j was accepted (j < 16) */
    int64_t offered_at[16];  /* steps in which candidate j was offered */
} tsr_space_stats;

/* Generates max_new tokens after prompt (n_prompt >= 1 ids) into out.
 * Greedy: token-identical to tsr_decode_greedy_generate. */
tsr_status tsr_space_generate(const tsr_lm_model *m, const int *prompt, int n_prompt, int max_new,
                              const tsr_space_opts *o, int *out, int *n_out, tsr_space_stats *st);

/* Tree of one SPACE step (layout above) with c candidates and m masks per
 * group (c <= m; the paper uses c = m = k): rows 1 + c + (c + 1) * m.
 * tokens/parent get the rows; is_mask[i] marks mask rows; group[j] is the
 * row of the first mask of G(j) (j = 0..c). Returns the row count. */
int tsr_space_layout(int *tokens, int *parent, uint8_t *is_mask, int *group, int root, const int *cand, int c,
                     int m, int mask_id);

/* Rows of that layout. */
static inline int tsr_space_rows(int c, int m) { return 1 + c + (c + 1) * m; }

#endif
