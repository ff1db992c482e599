/* tessera bigr: BiGR (Hao et al. 2025, "Harnessing binary latent codes for
 * image generation and improved visual representation capabilities")
 * scaled to Fashion-MNIST: a bidirectional masked transformer over the
 * 7x7 grid of K-bit codes of the binary autoencoder (imgtok.h), with a
 * Bernoulli-diffusion "binary transcoder" head that turns each position's
 * hidden state into K bits. src/models/bigr/, CLI src/cli/cmd_bigr.c,
 * write-up docs/bigr.md.
 *
 * Parameter names (PyTorch-module style):
 *   tok_embeddings.{weight,bias}       Linear(K -> d): bits in, no vocabulary
 *   mask_tok                           (d) learned embedding of a masked position
 *   cls_embedding.weight               (classes+1, d); row `classes` = null class (CFG)
 *   adaLN.{weight,bias}                Linear(d -> 6d) of silu(class embedding), shared
 *   layers.{i}.ada_gss                 (6, d) per-layer offset of the shared modulation
 *   layers.{i}.attention_norm.weight, layers.{i}.ffn_norm.weight   (RMSNorm)
 *   layers.{i}.attention.{wq,wk,wv,wo}.weight
 *   layers.{i}.feed_forward.{w1,w2,w3}.weight                      (SwiGLU)
 *   norm.weight, diffusion_pos_embed   (49, d)
 *   denoise.{x_embedder,c_embedder,t_embedder.fc1,t_embedder.fc2}.{weight,bias}
 *   denoise.blocks.{j}.{fc1,fc2,ada}.{weight,bias}
 *   denoise.final.{ada,linear}.{weight,bias}
 * The config sits in the checkpoint's __metadata__ (bigr.* keys). */
#ifndef TESSERA_BIGR_H
#define TESSERA_BIGR_H

#include "tessera/core.h"
#include "tessera/train.h"
#include "tessera/nn.h"

#define TSR_BIGR_GRID 7
#define TSR_BIGR_L 49 /* latent positions */

typedef enum { TSR_BIGR_TARGET_FLIP, TSR_BIGR_TARGET_X0, TSR_BIGR_TARGET_COUNT } tsr_bigr_target;
const char *tsr_bigr_target_name(tsr_bigr_target t); /* "flip", "x0" */

typedef struct {
    int bits;       /* K */
    int dim;        /* d */
    int n_layers, n_heads;
    int ffn_hidden; /* SwiGLU hidden width */
    int classes;    /* 10 */
    int tc_hidden;  /* transcoder width */
    int tc_blocks;  /* transcoder residual blocks */
    int T;          /* Bernoulli-diffusion training steps */
    tsr_bigr_target target; /* transcoder predicts flips x0^x_t, or x0 */
    float norm_eps, rope_theta;
} tsr_bigr_cfg;

tsr_bigr_cfg tsr_bigr_default_cfg(void);
/* user-facing check of a config */
tsr_status tsr_bigr_check_cfg(const tsr_bigr_cfg *cfg);

typedef struct {
    tsr_nn_rmsnorm attention_norm, ffn_norm;
    tsr_nn_linear wq, wk, wv, wo, w1, w2, w3;
    tsr_tensor *ada_gss;
} tsr_bigr_block;

typedef struct {
    tsr_nn_linear fc1, fc2, ada;
} tsr_bigr_tc_block;

typedef struct {
    tsr_bigr_cfg cfg;
    tsr_params params;
    tsr_nn_linear tok_embeddings, adaln;
    tsr_tensor *mask_tok, *cls_embedding, *diffusion_pos_embed;
    tsr_bigr_block *layers;
    tsr_nn_rmsnorm norm;
    /* transcoder */
    tsr_nn_linear x_emb, c_emb, t_fc1, t_fc2, final_ada, final_linear;
    tsr_bigr_tc_block *tc;
} tsr_bigr;

/* checks the config and draws fresh weights (BiGR's init: N(0, 0.02)
 * linears, zero shared adaLN and zero transcoder modulation / output) */
tsr_status tsr_bigr_init(tsr_bigr *m, const tsr_bigr_cfg *cfg, uint64_t seed);
tsr_status tsr_bigr_load(tsr_bigr *m, const char *path);
/* meta: extra NULL-terminated key, value, ... pairs (or NULL) */
tsr_status tsr_bigr_save(const tsr_bigr *m, const char *path, const char *const *meta);
void tsr_bigr_free(tsr_bigr *m);

/* ------------------------------------------------------------- schedules */

/* Training mask count (BiGR / MaskGIT): max(1, floor(L cos(pi r / 2))), r in [0,1) */
int tsr_bigr_mask_count(int L, double r);
/* Sampling: positions still masked after iteration `it` (0-based) of n:
 * floor(L cos(pi/2 (it+1)/n)); 0 after the last */
int tsr_bigr_masked_after(int L, int it, int n);
/* Bernoulli diffusion: q(x_t = 1 | x0) = k_t x0 + b_t with k_t = 1 - t/T,
 * b_t = t/(2T), t in [0,T] */
void tsr_bigr_q_coef(int t, int T, double *k, double *b);
/* Posterior of one reverse jump t -> s (s < t) for one bit, given the
 * denoiser's p0 = P(x0 = 1) and the current x_t: P(x_s = 1). */
float tsr_bigr_posterior(float p0, int xt, int t, int s, int T);
/* The paper's class-balanced weights for targets y (n, K) rows: with f the
 * share of ones in the row, w = (1 - f) y + f (1 - y) + 1/K. */
void tsr_bigr_balance_weights(float *w, const float *y, int64_t n, int K);

/* --------------------------------------------------------------- forward */

/* bits (B,49,K) in {0,1} (masked rows ignored), mask u8 (B,49) (1 =
 * masked), labels i32 (B) in [0,classes] (classes = null). Returns the
 * per-position conditions z (B,49,d) for the transcoder; hidden (may be
 * NULL) receives the n_layers+1 residual streams (B,50,d): [0] the
 * embeddings, [l] after block l. Interpolation: when lab2 != NULL the
 * class embedding is (1-alpha) e(labels) + alpha e(lab2). */
tsr_tensor *tsr_bigr_forward(tsr_ctx *c, const tsr_bigr *m, const float *bits,
                             const uint8_t *mask, const int32_t *labels, const int32_t *lab2,
                             float alpha, int B, tsr_tensor **hidden);

/* transcoder: x_t (N,K) bits, tsteps i32 (N) (t-1, in [0,T)), cond (N,d) -> logits (N,K) */
tsr_tensor *tsr_bigr_transcode(tsr_ctx *c, const tsr_bigr *m, tsr_tensor *xt,
                               const int32_t *tsteps, tsr_tensor *cond);

typedef struct {
    float loss;      /* weighted BCE (the optimised objective) */
    float bit_acc;   /* share of x0 bits the transcoder gets right at its t */
    int masked;      /* masked positions per image this step */
} tsr_bigr_loss_info;

/* One training loss: masks a cosine-schedule share of positions (same
 * count per image), drops labels to null with p_uncond, runs the
 * transcoder on the masked positions `repeat` times with fresh t and x_t,
 * and returns the scalar loss. rng draws everything. */
tsr_tensor *tsr_bigr_loss(tsr_ctx *c, const tsr_bigr *m, const uint8_t *bits_u8,
                          const int32_t *labels, int B, float p_uncond, int repeat, tsr_rng *rng,
                          tsr_bigr_loss_info *info);

/* ---------------------------------------------------------------- sampling */

typedef enum { TSR_BIGR_ORDER_ENTROPY, TSR_BIGR_ORDER_RANDOM, TSR_BIGR_ORDER_RASTER,
               TSR_BIGR_ORDER_COUNT } tsr_bigr_order;
const char *tsr_bigr_order_name(tsr_bigr_order o);

typedef struct {
    int iters;          /* unmasking iterations N */
    int steps;          /* transcoder diffusion steps (<= T) */
    float cfg;          /* guidance scale (1: none) */
    float gumbel;       /* temperature of the Gumbel noise on confidences */
    float temp;         /* transcoder logit temperature */
    tsr_bigr_order order;
    bool deterministic; /* fix bits by p > 0.5 instead of Bernoulli(p) */
    double deadline;    /* tsr_time() past which sampling stops at the next
                           transcoder step, the bits left unfinished (0: none):
                           a server's per-request limit; the caller discards them */
} tsr_bigr_sample_opts;

tsr_bigr_sample_opts tsr_bigr_default_sample_opts(void);

/* Fills bits (B,49,K) u8. known (B,49) u8 or NULL: 1 = keep bits[] as
 * given (inpainting); everything else is generated. labels (B) in
 * [0,classes); lab2/alpha as in tsr_bigr_forward (NULL: none). */
void tsr_bigr_sample(const tsr_bigr *m, uint8_t *bits, const uint8_t *known,
                     const int32_t *labels, const int32_t *lab2, float alpha, int B,
                     const tsr_bigr_sample_opts *o, tsr_rng *rng);

/* Representation: bits (n,49,K) run unmasked with the null class; feats
 * (n_layers+1, n, d) the average-pooled 49 position tokens of every
 * residual stream (0 = embeddings). norm: each token scaled to unit RMS
 * before pooling (what the next block's RMSNorm reads). */
void tsr_bigr_features(const tsr_bigr *m, const uint8_t *bits, int64_t n, float *feats, bool norm);

/* ---------------------------------------------------------------- training */

typedef struct {
    const char *codes;   /* code cache (see tsr_bigr_codes_*) */
    tsr_bigr_cfg cfg;
    int batch, repeat;
    float p_uncond;      /* label dropout for classifier-free guidance */
    int64_t train_limit; /* the first N training codes (0: all) */
    /* out (checkpoint; state beside it), epochs, lr, clip, checkpoints,
     * resume, seed, progress, log: the shared trainer's options */
    tsr_train_opts train;
} tsr_bigr_train_opts;

tsr_bigr_train_opts tsr_bigr_default_train_opts(void);

tsr_status tsr_bigr_train(const tsr_bigr_train_opts *o, tsr_train_result *r);

/* ---------------------------------------------------------------- codes */

/* The BAE codes of Fashion-MNIST, computed once: train/test bits u8
 * (n,49,K) and labels. */
typedef struct {
    int K;
    int64_t n_train, n_test;
    uint8_t *train_bits, *test_bits;
    int32_t *train_labels, *test_labels;
} tsr_bigr_codes;

/* encode with tokenizer `tok` the data set in data_dir (NULL: installed);
 * limit > 0 keeps the first `limit` images of each split */
tsr_status tsr_bigr_codes_build(tsr_bigr_codes *cd, const char *tok, const char *data_dir,
                                int64_t limit);
tsr_status tsr_bigr_codes_save(const tsr_bigr_codes *cd, const char *path);
tsr_status tsr_bigr_codes_load(tsr_bigr_codes *cd, const char *path);
/* load path if present, else build and save it */
tsr_status tsr_bigr_codes_get(tsr_bigr_codes *cd, const char *path, const char *tok,
                              const char *data_dir);
void tsr_bigr_codes_free(tsr_bigr_codes *cd);

/* --------------------------------------------------------------- probe */

/* Multinomial logistic regression (softmax) on features x (n,d) ->
 * labels in [0,C): standardises with the train statistics, full-batch
 * L-BFGS-free plain gradient descent with momentum for `epochs` passes of
 * minibatches; returns test accuracy. */
double tsr_bigr_linear_probe(const float *xtr, const int32_t *ytr, int64_t ntr, const float *xte,
                             const int32_t *yte, int64_t nte, int d, int C, int epochs,
                             uint64_t seed);

/* `POST /v1/bigr/sample` for `tessera serve` (src/models/bigr/serve.c) */
struct tsr_serve_endpoint;
extern const struct tsr_serve_endpoint tsr_bigr_serve_endpoint;

#endif
