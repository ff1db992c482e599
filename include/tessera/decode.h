/* tessera decode: speculative-decoding verification shared by the families
 * that draft tokens (SPACE, BiTA, prompt lookup): tree attention masks and
 * position ids from a parent array, greedy acceptance of the longest
 * matching draft path, a prompt-lookup n-gram drafter, and a greedy
 * speculative generation loop on an lm model.
 *
 * Conventions
 * - A verification forward takes n rows: row 0 is the root (the last
 *   accepted token, not yet in the KV cache), rows 1.. are draft tokens.
 *   parent[0] = -1, parent[i] in [0, i) for i > 0 (parents come first, so
 *   every root-to-node path is increasing in row index).
 * - Row i sees the whole cached prefix plus itself and its ancestors; its
 *   position is "number of visible keys - 1" = n_ctx + depth(i).
 * - Greedy acceptance walks from the root: while a child's token equals
 *   the argmax of the current row's logits, move to it. The result is
 *   token-identical to plain greedy decoding (the lm kernels are batch
 *   invariant, so a verified row's logits equal a plain step's bit for bit).
 */
#ifndef TESSERA_DECODE_H
#define TESSERA_DECODE_H

#include "tessera/core.h"
#include "tessera/lm.h"

/* The one prompt-length rule of every decoder: a prompt of *n tokens fits a
 * context of ctx positions when *n <= ctx - 1 (one position stays for the
 * first new token). A longer prompt is TSR_ERR_ARG saying how many tokens
 * it has and what the context allows, unless keep_last (the CLI's
 * `--truncate left`): then its last ctx - reserve tokens move to the front
 * of tok and *n shrinks to that, leaving room for `reserve` new tokens
 * (reserve is clamped to 1..ctx/2; pass the new-token budget or 0). */
tsr_status tsr_prompt_fit(int *tok, int *n, int ctx, bool keep_last, int reserve);

/* TSR_ERR_ARG unless parent[0] == -1 and 0 <= parent[i] < i for i > 0. */
tsr_status tsr_decode_tree_check(const int *parent, int n);
/* depth[i]: 0 for the root, depth[parent[i]] + 1 otherwise */
void tsr_decode_tree_depth(int *depth, const int *parent, int n);
/* Compact mask (n, n) for tsr_lm_forward_masked with mask_ld == n:
 * mask[i*n + j] = 1 iff j is i or an ancestor of i. */
void tsr_decode_tree_mask(uint8_t *mask, const int *parent, int n);
/* Full mask (n, n_ctx + n): the n_ctx cached slots are visible to every
 * row, then the compact mask. */
void tsr_decode_tree_mask_full(uint8_t *mask, const int *parent, int n, int n_ctx);
/* pos[i] = (number of keys row i sees) - 1, from a compact (mask_ld == n)
 * or full (mask_ld == n_ctx + n) mask. */
void tsr_decode_positions(int *pos, const uint8_t *mask, int n, int n_ctx, int mask_ld);

/* Greedy acceptance over a tree of n rows (tokens[i], parent[i]) with
 * logits (n, V). path[0..ret) gets the accepted rows (path[0] = 0, the
 * root; ret - 1 drafts accepted) and *bonus the argmax after the last
 * accepted row: the next token, whose K/V is not computed yet. Among
 * siblings with equal tokens the first wins. */
int tsr_decode_accept_greedy(int *path, int *bonus, const int *tokens, const int *parent, int n,
                             const float *logits, int V);

/* ------------------------------------------------ exact speculative sampling
 * For temperature > 0. Drafts here are fixed tokens (an argmax or a
 * lookup). Each position on the tree walk draws ONE uniform u and samples
 * x = F^-1(u) from the sampler's distribution p (tsr_lm_sample_probs, what
 * tsr_lm_sample draws from); a child whose token is x is accepted and the
 * walk goes on from it, else x is the bonus token. Every emitted token is
 * therefore an exact draw from p given the accepted prefix, and a child x
 * is accepted with probability p(x), as in the rejection rule of Leviathan
 * et al. 2023 for a point-mass draft. Because the k-th emitted token always
 * consumes the k-th uniform of rng, the output for a seed does not depend
 * on the draft tree (its size, shape or which drafts were offered): a
 * draft size chosen from measured timings cannot change seeded text. */

/* Exact acceptance over a tree of fixed drafts (rows with tokens[i] < 0
 * are never accepted: mask rows). Outputs as tsr_decode_accept_greedy;
 * rng gives one uniform per emitted token (the returned length: the
 * accepted drafts and the bonus). scratch: 3 * V floats. */
int tsr_decode_accept_sample(int *path, int *bonus, const int *tokens, const int *parent, int n,
                             const float *logits, int V, const tsr_lm_sampler_opts *o, tsr_rng *rng,
                             float *scratch);

/* ------------------------------------------------ cost of a forward
 * ms[n] (n = 1..n_max; ms[0] = 0) = measured wall time of one masked
 * forward of n rows (a causal chain) after n_ctx cached tokens, the best of
 * a few repetitions: the curve that decides how many rows a draft may
 * carry. Uses its own cache; the model is not changed. */
tsr_status tsr_decode_cost_curve(const tsr_lm_model *m, int n_ctx, int n_max, double *ms);

/* Prompt lookup: find the most recent earlier occurrence of the last g
 * tokens of ctx (g = max_ngram down to 1, first hit wins) that has tokens
 * after it, and copy the k tokens that follow it into out; where those run
 * past the end of ctx the copy continues periodically (token i is
 * ctx[follow + i mod (n_ctx - follow)]), so repetition drafts at full
 * length. Returns the count (0: no match, else k). */
int tsr_decode_ngram_draft(int *out, const int *ctx, int n_ctx, int max_ngram, int k);
/* Up to max_cand distinct continuations (each k tokens as above, most
 * recent matches and longer n-grams first) merged into a token tree: root row 0
 * holds root_token; tokens/parent get at most 1 + max_cand * k rows.
 * Returns the number of rows (1: no draft). */
int tsr_decode_ngram_tree(int *tokens, int *parent, int root_token, const int *ctx, int n_ctx, int max_ngram,
                          int k, int max_cand);

typedef struct {
    int k;           /* drafted tokens per candidate (default 8) */
    int max_ngram;   /* longest n-gram matched (default 3) */
    int n_cand;      /* candidates merged into a tree (1: a linear chain) */
    int stop_token;  /* generation ends after emitting it; < 0: none */
    int max_len;     /* KV cache length (<= 0: the model's seq_len) */
    bool adaptive;   /* draft depth follows acceptance: one more than the
                        last accepted run, doubled after a full accept,
                        never above k (default true) */
} tsr_decode_ngram_opts;

typedef struct {
    int new_tokens;  /* tokens written to out */
    int forwards;    /* verification forwards (prefill not counted) */
    int drafted;     /* draft rows verified */
    int accepted;    /* drafts accepted */
    double prefill_s, decode_s;
} tsr_decode_stats;

void tsr_decode_ngram_defaults(tsr_decode_ngram_opts *o);

/* Greedy generation with prompt-lookup drafts verified in one masked
 * forward per step: out[0..*n_out) equals what plain greedy decoding
 * (prefill, then argmax and one-token forwards) produces for max_new
 * tokens, stopping early after stop_token or when the cache is full
 * (prompt + generated tokens <= max_len). prompt: n_prompt >= 1 ids. */
tsr_status tsr_decode_ngram_generate(const tsr_lm_model *m, const int *prompt, int n_prompt, int max_new,
                                     const tsr_decode_ngram_opts *o, int *out, int *n_out, tsr_decode_stats *st);

/* The plain greedy loop the above must match (one token per forward). */
tsr_status tsr_decode_greedy_generate(const tsr_lm_model *m, const int *prompt, int n_prompt, int max_new,
                                      int stop_token, int max_len, int *out, int *n_out, tsr_decode_stats *st);

#endif
