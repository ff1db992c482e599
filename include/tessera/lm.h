/* tessera lm: inference for Llama-family decoder-only language models
 * (RMSNorm, rotary attention with grouped KV heads, SwiGLU MLP), their KV
 * cache, token sampling and text generation; plus the llama2.c checkpoint
 * reader that produces such a model.
 * Where: the model, its KV cache, the forward and its kernels are shared
 * by several families (lm, bita, space, higen) and the server, so they
 * live below the families in src/decode/lm_*.c; sampling, generation and
 * benches are the lm family's (src/models/lm/).
 *
 * Contracts
 * - tsr_lm_forward(model, cache, tokens, n, pos0, logits) runs n new tokens
 *   at positions pos0..pos0+n-1 (batched prefill or one decode step) and
 *   writes n x vocab logits. The cache must hold positions 0..pos0-1 from
 *   earlier calls. The logits of a token are bit-identical whatever n is and
 *   however the sequence was split into calls (fixed reduction order per
 *   output element; our own kernels, no BLAS), and whatever the thread count.
 * - Weights are matrices of a tagged element type: f32, bf16 (dot products
 *   with AVX-512 BF16 on activations rounded to bf16) or Q8 (int8 in groups
 *   of 32 or 64 along a row with one f32 scale per group; activations are
 *   quantised the same way and dotted with AVX-512 VNNI). Every type keeps
 *   the fixed-reduction-order property above.
 * - Loaders: llama2.c .bin, HF directories (config.json + model.safetensors
 *   [+ tokenizer.json]) and single tessera .safetensors files whose
 *   __metadata__ carries the config (src/io/hf_llama.c).
 * - Anything a user can cause (bad file, token out of range, sequence too
 *   long) returns a tsr_status; nothing here prints or exits.
 */
#ifndef TESSERA_LM_H
#define TESSERA_LM_H

#include "tessera/core.h"

/* ------------------------------------------------------------ model */

typedef enum {
    TSR_LM_ROPE_INTERLEAVED = 0, /* pairs (2i, 2i+1) rotate together (llama2.c, Meta) */
    TSR_LM_ROPE_HALF = 1,        /* pairs (i, i+D/2) (HF Llama) */
} tsr_lm_rope_layout;

typedef struct {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    float rope_theta;       /* 10000 for llama2.c checkpoints */
    float norm_eps;         /* 1e-5 for llama2.c checkpoints */
    bool shared_classifier; /* output projection is the token embedding */
    tsr_lm_rope_layout rope_layout;
} tsr_lm_config;

typedef enum {
    TSR_LM_W_F32 = 0,
    TSR_LM_W_BF16 = 1, /* data is uint16 bf16 */
    TSR_LM_W_Q8 = 2,   /* data is int8, scales (rows, ceil(cols/group_size)) */
    TSR_LM_W_COUNT
} tsr_lm_wtype;

/* "f32", "bf16", "q8" */
const char *tsr_lm_wtype_name(tsr_lm_wtype t);
/* parse a name; returns false on an unknown one */
bool tsr_lm_wtype_parse(const char *name, tsr_lm_wtype *t);

/* A weight matrix (rows, cols) row-major; out = W x computes one dot
 * product of length cols per row. Q8: row r, group g holds int8 values
 * q with w = q * scales[r * ngroups + g], |q| <= 127. */
typedef struct {
    tsr_lm_wtype type;
    int rows, cols;
    const void *data;
    const float *scales; /* Q8 only */
    int group_size;      /* Q8 only */
} tsr_lm_mat;

typedef struct {
    const float *rms_att, *rms_ffn; /* (C) */
    tsr_lm_mat wq;                  /* (H*D, C) */
    tsr_lm_mat wk, wv;              /* (Hkv*D, C) */
    tsr_lm_mat wo;                  /* (C, H*D) */
    tsr_lm_mat w1, w3;              /* (hidden, C): gate and up */
    tsr_lm_mat w2;                  /* (C, hidden): down */
} tsr_lm_layer;

typedef struct {
    tsr_lm_config cfg;
    const float *tok_emb;   /* (V, C) f32 */
    tsr_lm_layer *layers;   /* n_layers */
    const float *rms_final; /* (C) */
    tsr_lm_mat wcls;        /* (V, C); shares tok_emb when cfg.shared_classifier and f32 */
    tsr_lm_wtype wtype;     /* type of every matrix (the embedding table stays f32) */
    int group_size;         /* Q8 only: 32 or 64 */
    void *storage;          /* owned block behind every pointer above */
    size_t storage_bytes;
} tsr_lm_model;

#define TSR_LM_Q8_GROUP 32 /* default Q8 group size */

/* Check a config for consistency and sane sizes (so size arithmetic cannot
 * overflow). `what` names the source in the message. */
tsr_status tsr_lm_config_check(const tsr_lm_config *cfg, const char *what);
/* Allocate a model with f32 weights laid out for cfg, all zero. */
tsr_status tsr_lm_model_alloc(tsr_lm_model *m, const tsr_lm_config *cfg);
/* The same with matrices of type wt (group_size for Q8: 32 or 64). A
 * shared classifier gets its own bf16/Q8 copy of the embedding, filled by
 * tsr_lm_model_sync_classifier. */
tsr_status tsr_lm_model_alloc_typed(tsr_lm_model *m, const tsr_lm_config *cfg, tsr_lm_wtype wt,
                                    int group_size);
/* After tok_emb is filled: store it into a separate (bf16/Q8) shared
 * classifier and set tok_emb to the classifier's dequantised values. */
void tsr_lm_model_sync_classifier(tsr_lm_model *m);
/* Round tok_emb through the model's weight type (tied: as sync_classifier;
 * untied: each row quantised and dequantised), so that the embedding
 * table holds exactly what a saved file of this type holds. */
void tsr_lm_model_round_embedding(tsr_lm_model *m);
/* dst = src with matrices of type wt (f32 data dequantised exactly first) */
tsr_status tsr_lm_model_convert(tsr_lm_model *dst, const tsr_lm_model *src, tsr_lm_wtype wt,
                                int group_size);
/* Bytes a decode step reads from the weights: every matrix (scales
 * included), one embedding row and the norms. */
size_t tsr_lm_model_decode_bytes(const tsr_lm_model *m);

/* Store f32 rows (rows x cols) into w in its type (bf16: round to nearest
 * even; Q8: per group scale max|w|/127, q = round(w/scale)). */
void tsr_lm_mat_store(const tsr_lm_mat *w, const float *src);
/* Dequantise row r into dst (cols floats). */
void tsr_lm_mat_row(const tsr_lm_mat *w, int r, float *dst);
/* dst = src converted (same shape); row: cols floats of scratch */
void tsr_lm_mat_copy(const tsr_lm_mat *dst, const tsr_lm_mat *src, float *row);
/* bytes of data + scales */
size_t tsr_lm_mat_bytes(const tsr_lm_mat *w);
/* groups per row (Q8) */
static inline int tsr_lm_mat_groups(const tsr_lm_mat *w) {
    return w->group_size > 0 ? (w->cols + w->group_size - 1) / w->group_size : 0;
}
/* A view of a tsr_nn_llama (nn.h: a model trained in-process) as an f32
 * model: every matrix, norm and the embedding point at the nn parameters'
 * data (nothing is copied; the view is valid while they live and sees
 * their current values). HF rotate-half RoPE, as nn's decoder. Free it
 * with tsr_lm_model_free (it owns only its layer array). */
struct tsr_nn_llama;
tsr_status tsr_lm_model_view_nn(tsr_lm_model *m, const struct tsr_nn_llama *src);
/* Fill every weight with N(0, std) (norm weights 1 + N(0, std)); tests. */
void tsr_lm_model_randomize(tsr_lm_model *m, uint64_t seed, float std);
void tsr_lm_model_free(tsr_lm_model *m);
/* number of weights (the shared classifier counted once) */
int64_t tsr_lm_model_params(const tsr_lm_model *m);

/* ------------------------------------------------------------ cache */

/* KV cache for one sequence plus the forward's scratch (grown on demand). */
typedef struct {
    int n_layers, max_len, kv_dim;
    float *k, *v;       /* (L, max_len, Hkv*D) */
    float *scratch;     /* activations for the largest n seen so far */
    size_t scratch_floats;
} tsr_lm_cache;

/* max_len <= 0 means cfg->seq_len */
tsr_status tsr_lm_cache_init(tsr_lm_cache *c, const tsr_lm_config *cfg, int max_len);
void tsr_lm_cache_free(tsr_lm_cache *c);

/* Largest n a single forward is designed for; larger n works too but is
 * processed the same way. */
#define TSR_LM_MAX_BATCH 64

/* tokens (n) at positions pos0..; logits (n, V) or NULL to only fill the
 * cache. Fails on a token outside [0, V) or pos0 + n > cache max_len. */
tsr_status tsr_lm_forward(const tsr_lm_model *m, tsr_lm_cache *c, const int *tokens, int n,
                          int pos0, float *logits);
/* The same, writing only the last token's logits (V): what prefill needs.
 * Bit-identical to the last row of tsr_lm_forward. */
tsr_status tsr_lm_forward_last(const tsr_lm_model *m, tsr_lm_cache *c, const int *tokens, int n,
                               int pos0, float *logits);

/* Continuous batching (src/serve): rows of several sequences in one
 * forward. Row t is token tokens[t] of the sequence whose cache is
 * caches[t], at position pos[t]; a sequence's rows are adjacent and at
 * consecutive positions, and its cache holds positions 0..(first pos)-1.
 * Each row's K/V goes to its own cache and it attends to that cache's
 * slots 0..pos[t], so its logits are bit-identical to those of
 * tsr_lm_forward on that sequence alone. logits: one row (V) for every t
 * with want[t] != 0 (want NULL: every row), in row order. ws lends only its
 * scratch (a cache made for this model). */
tsr_status tsr_lm_forward_batch(const tsr_lm_model *m, tsr_lm_cache *ws, tsr_lm_cache *const *caches,
                                const int *tokens, const int *pos, int n, const uint8_t *want, float *logits);

/* Speculative verification (src/decode): n new tokens written to cache
 * slots n_ctx..n_ctx+n-1, token t rotated by position pos[t] (each in
 * [0, max_len)) and attending to the slots mask row t marks (non-zero),
 * visited in slot order. mask is (n, mask_ld) u8 with mask_ld == n (the
 * new rows only; every cached slot 0..n_ctx-1 is visible) or
 * mask_ld == n_ctx + n (every slot). Same kernels and reduction order as
 * tsr_lm_forward: a row at position p that sees exactly the slots a causal
 * step at p sees (holding the same K/V) gets bit-identical logits (n, V). */
tsr_status tsr_lm_forward_masked(const tsr_lm_model *m, tsr_lm_cache *c, const int *tokens, int n, int n_ctx,
                                 const int *pos, const uint8_t *mask, int mask_ld, float *logits);
/* The same, writing each row's final normed hidden state (n, C) instead
 * of its logits, for a caller that scores only a few output rows (higen's
 * beam search scores the children of a trie node). With f32 weights,
 * tsr_lm_dot(hidden row, classifier row) is bit for bit the logit
 * tsr_lm_forward_masked writes (the canonical dot product). */
tsr_status tsr_lm_forward_masked_hidden(const tsr_lm_model *m, tsr_lm_cache *c, const int *tokens, int n, int n_ctx,
                                        const int *pos, const uint8_t *mask, int mask_ld, float *hidden);
/* Keep rows keep[0..n_keep) (strictly increasing, relative to slot n_ctx)
 * of the last forward's new rows and move their K/V in place to slots
 * n_ctx..n_ctx+n_keep-1. */
tsr_status tsr_lm_cache_compact(tsr_lm_cache *c, int n_ctx, const int *keep, int n_keep);

/* ------------------------------------------------------------ kernels
 * Used by tsr_lm_forward; exposed for tests and benches.
 * out (n, ldo) rows t: out[t*ldo + i] = dot(W row i, x row t) for i < rows.
 * Every element is one dot product in a fixed order, whatever n.
 * bf16: x is rounded to bf16 and the products summed in f32 lanes (AVX-512
 * BF16 vdpbf16ps, or a scalar emulation of it); Q8: each group of x is
 * quantised to int8 with scale max|x|/127, integer dot products per group
 * (AVX-512 VNNI) are scaled by both scales and summed in f32 lanes.
 * scratch: tsr_lm_matmul_scratch(w, n) bytes, 64-byte aligned (NULL for f32). */
size_t tsr_lm_matmul_scratch(const tsr_lm_mat *w, int n);
void tsr_lm_matmul(float *out, int ldo, const float *x, int ldx, const tsr_lm_mat *w, int n,
                   void *scratch);
/* out[i] = x w[i]^T for cnt (<= 4) matrices with the same column count,
 * each element with the bits tsr_lm_matmul gives it; where the kernel level
 * allows, the activations are prepared once and all the products share one
 * parallel region. scratch: the largest tsr_lm_matmul_scratch of them. */
void tsr_lm_matmul_multi(int cnt, float *const *out, const int *ldo, const float *x, int ldx,
                         const tsr_lm_mat *const *w, int n, void *scratch);
/* naive twin: plain sequential sum (of the same rounded/quantised products
 * for bf16 and Q8) */
void tsr_lm_matmul_ref(float *out, int ldo, const float *x, int ldx, const tsr_lm_mat *w, int n);
/* which bf16 / int8 instruction sets the kernels were built with */
bool tsr_lm_have_avx512_bf16(void);
bool tsr_lm_have_avx512_vnni(void);
/* the canonical dot product every output element is computed with */
float tsr_lm_dot(const float *a, const float *b, int k);
/* One query head (D) over keys/values 0..n_keys-1 (rows ld floats apart):
 * softmax(q.k / sqrt(D)) v, keys visited in order; att: n_keys scratch. */
void tsr_lm_attend(float *out, const float *q, const float *k, const float *v, size_t ld, int n_keys, int D,
                   float *att);
/* The same over the key rows idx[0..n_keys) (the same arithmetic). */
void tsr_lm_attend_idx(float *out, const float *q, const float *k, const float *v, size_t ld, const int *idx,
                       int n_keys, int D, float *att);
/* p[i] = expf(p[i] - mx) for i < n, each element with the bits expf gives
 * it (vector lanes at the SIMD levels: expf's own sequence of operations,
 * that of GNU libc on FMA machines); returns their sum, added in index
 * order (attention's softmax). */
float tsr_lm_exp_sum(float *p, int n, float mx);
/* SwiGLU's gate: h[i] = h[i] * (1 / (1 + expf(-h[i]))) * h2[i], with the
 * bits that expression gives */
void tsr_lm_silu_mul(float *h, const float *h2, int n);

/* ------------------------------------------------------------ sampling */

typedef struct {
    float temperature;   /* 0: greedy (argmax, first index on ties) */
    int top_k;           /* 0: off */
    float top_p;         /* <= 0 or >= 1: off */
    float min_p;         /* 0: off; keep tokens with p >= min_p * p_max */
    float rep_penalty;   /* 1: off; CTRL-style on tokens already in the context */
    int rep_window;      /* how many recent tokens the penalty looks at (0: all) */
    uint64_t seed;
} tsr_lm_sampler_opts;

typedef struct {
    float p;
    int id;
} tsr_lm_prob;

typedef struct {
    tsr_lm_sampler_opts o;
    int vocab;
    tsr_rng rng;
    tsr_lm_prob *cand;   /* (V) candidates */
    uint32_t *seen;      /* (V) marks for the repetition penalty */
    uint32_t stamp;
} tsr_lm_sampler;

void tsr_lm_sampler_defaults(tsr_lm_sampler_opts *o);
tsr_status tsr_lm_sampler_init(tsr_lm_sampler *s, const tsr_lm_sampler_opts *o, int vocab);
void tsr_lm_sampler_free(tsr_lm_sampler *s);
/* logits (V) are modified in place. history: tokens so far (for the
 * repetition penalty), may be NULL when n_hist == 0. */
int tsr_lm_sample(tsr_lm_sampler *s, float *logits, const int *history, int n_hist);
/* The distribution tsr_lm_sample draws from for these logits, without the
 * repetition penalty: softmax at o->temperature, then min-p, top-k and
 * top-p, renormalised (zeros elsewhere); temperature 0: one-hot on the
 * argmax. cand: V entries of scratch. */
void tsr_lm_sample_probs(float *probs, const float *logits, int V, const tsr_lm_sampler_opts *o, tsr_lm_prob *cand);
/* index of the largest value, first one on ties */
int tsr_lm_argmax(const float *x, int n);

/* ------------------------------------------------------------ generation */

struct tsr_tokenizer;

typedef struct {
    int steps;            /* llama2.c -n: total positions incl. prompt; <= 0 -> seq_len */
    int max_new_tokens;   /* <= 0: no limit besides steps */
    const char *const *stop; /* stop strings (completion only, not printed) */
    int n_stop;
    int prefill_batch;    /* tokens per prefill forward (<= 0: TSR_LM_MAX_BATCH) */
    bool truncate_left;   /* a prompt longer than the context keeps its last tokens
                             (else it is an error; see tsr_prompt_fit) */
} tsr_lm_gen_opts;

typedef struct {
    int prompt_tokens, new_tokens, positions;
    double prefill_s, decode_s; /* wall time of the prefill and of the decode steps */
    bool stopped_bos, stopped_stop;
} tsr_lm_gen_stats;

/* Writes text pieces as they become final; returning non-zero stops. */
typedef int (*tsr_lm_emit_fn)(void *ud, const char *text, size_t len);

/* llama2.c run.c semantics: encode with BOS and the dummy-prefix space,
 * feed the prompt, then sample; print the prompt's pieces and every new
 * token's piece (leading space dropped after BOS, raw byte tokens as bytes,
 * unprintable single bytes skipped); stop at BOS, at steps positions, at
 * max_new_tokens, or at a stop string. Does not print the final newline. */
tsr_status tsr_lm_generate(const tsr_lm_model *m, const struct tsr_tokenizer *tok,
                           tsr_lm_sampler *s, const char *prompt, const tsr_lm_gen_opts *o,
                           tsr_lm_emit_fn emit, void *ud, tsr_lm_gen_stats *st);

/* Byte-level BPE (HF tokenizer.json) generation: stdout-style output is the
 * prompt bytes followed by the completion. The prompt is encoded without
 * BOS; a BOS special ("<s>", "<|begin_of_text|>", "<|endoftext|>" in that
 * order of preference) is put in front when the tokenizer has one (and
 * always when the prompt is empty). Generation stops at an end special
 * ("</s>", "<|end_of_text|>", "<|eot_id|>", "<|endoftext|>"), at steps
 * positions, at max_new_tokens or at a stop string. Specials are not
 * printed. */
struct tsr_bpe;
/* The BOS special tsr_lm_generate_bpe puts in front and the end special it
 * stops at (-1 when the tokenizer has none). */
void tsr_lm_bpe_specials(const struct tsr_bpe *tok, int *bos, int *eos);
/* BOS (when there is one) + the text's tokens, as tsr_lm_generate_bpe
 * feeds a prompt: malloc'd (free it), *n tokens; NULL when out of memory. */
int *tsr_lm_bpe_prompt(struct tsr_bpe *tok, const char *text, int *n);
tsr_status tsr_lm_generate_bpe(const tsr_lm_model *m, struct tsr_bpe *tok, tsr_lm_sampler *s,
                               const char *prompt, const tsr_lm_gen_opts *o, tsr_lm_emit_fn emit,
                               void *ud, tsr_lm_gen_stats *st);

/* ------------------------------------------------------------ HF / safetensors files
 * src/io/hf_llama.c. Tensor names as HF LlamaForCausalLM (see nn.h).
 * F32, BF16 and F16 tensors are accepted; Q8 files written by
 * tsr_lm_save carry "<name>" as I8 (rows, cols) plus "<name>_scale" F32
 * (rows, groups) and metadata "quant" = "q8", "group_size".
 * Config: config.json (hidden_size, num_hidden_layers, num_attention_heads,
 * num_key_value_heads, intermediate_size, vocab_size,
 * max_position_embeddings, rms_norm_eps, rope_theta, tie_word_embeddings)
 * or __metadata__ with the same HF names (what the trainer and tsr_lm_save
 * write) or the short ones (dim, n_layers, n_heads, n_kv_heads, hidden_dim,
 * vocab, max_seq, rope_theta, norm_eps, tied). tied absent: inferred from
 * whether lm_head.weight is present. RoPE is the rotate-half layout. */

/* wtype < 0: the type the file stores (F32/F16 -> f32, BF16 -> bf16,
 * Q8 -> q8); group_size <= 0: the file's or TSR_LM_Q8_GROUP. */
tsr_status tsr_lm_load_safetensors(tsr_lm_model *m, const char *path, int wtype, int group_size);
/* The same from a file image in memory; name labels messages. */
tsr_status tsr_lm_parse_safetensors(tsr_lm_model *m, const void *buf, size_t len, const char *name, int wtype,
                                    int group_size);
/* dir/config.json + dir/model.safetensors */
tsr_status tsr_lm_load_hf_dir(tsr_lm_model *m, const char *dir, int wtype, int group_size);
/* Dispatch on the path: a directory -> HF, *.safetensors -> tessera file,
 * *.gguf or a file starting with "GGUF" -> llama.cpp GGUF (gguf.h),
 * anything else -> llama2.c .bin (then converted to wtype when >= 0). */
tsr_status tsr_lm_load(tsr_lm_model *m, const char *path, int wtype, int group_size);
/* A look at a --model path without loading it, for checks that come
 * before the load: *is_gguf says whether tsr_lm_load would read it as a
 * GGUF (suffix or magic). The status is the error tsr_lm_load would give at
 * once for a path that does not exist, is neither a regular file nor a
 * directory, or is a file of a known other kind (PNG, JSON, text); ok
 * otherwise. */
tsr_status tsr_lm_probe(const char *path, bool *is_gguf);
/* Config from a JSON object text (config.json); name labels messages. */
tsr_status tsr_lm_config_from_json(tsr_lm_config *c, const char *json, size_t len, const char *name);
/* Write the model as safetensors (HF names, matrices in the model's type,
 * config in __metadata__); atomic. */
tsr_status tsr_lm_save(const tsr_lm_model *m, const char *path);
/* An HF config.json for cfg (LlamaForCausalLM, rotate-half RoPE), written
 * atomically; extra (may be NULL) is inserted verbatim as more members,
 * e.g. "\"space_k\": 5". torch_dtype names the weights' type. */
tsr_status tsr_lm_save_hf_config(const tsr_lm_config *cfg, const char *torch_dtype, const char *extra,
                                 const char *path);

/* ------------------------------------------------------------ bench helpers
 * src/models/lm/bench.c: limits measured in the same run as a benchmark. */

/* GB/s of a streaming sum over `bytes` (0: tsr_lm_bench_read_bw_bytes())
 * on all tsr_lm_bench_read_bw_threads() processors, best of reps: the
 * machine's read peak, whatever the thread count of the run it bounds */
double tsr_lm_bench_read_bw(size_t bytes, int reps, double *checksum);
size_t tsr_lm_bench_read_bw_bytes(void); /* 4x the last-level cache, >= 512 MiB, <= memory/4 */
int tsr_lm_bench_read_bw_threads(void);
/* GFLOPS of cblas_sgemm N x N x N (best of reps) */
double tsr_lm_bench_sgemm_gflops(int N, int reps);
/* matmul FLOPs of one forward over n tokens at positions pos0.. (weights,
 * classifier, attention scores and weighted sums over the keys seen) */
double tsr_lm_forward_flops(const tsr_lm_config *c, int n, int pos0);

/* ------------------------------------------------------------ llama2.c files */

/* Read a llama2.c checkpoint: legacy v0 (7 int32 header, negative vocab =
 * separate classifier), "ak42" v1 (f32) or v2 (Q8_0 groups, dequantised to
 * f32 at load). Every size is checked against the file length. */
tsr_status tsr_llama2c_load(tsr_lm_model *m, const char *path);
/* The same from memory; `name` is used in messages. The buffer may be
 * freed afterwards (weights are copied). */
tsr_status tsr_llama2c_parse(tsr_lm_model *m, const void *buf, size_t len, const char *name);

#endif
