/* tessera elm: "Elucidating the design space of language models for image
 * generation" (Liu et al. 2024) scaled to Fashion-MNIST. Stage 1: training
 * the image tokenizers (BAE / VQ of imgtok.h) and evaluating their
 * reconstructions with the classifier-based metrics of imgmetrics.h.
 * Stage 2: class-conditional generators over the 7x7 code grid (an
 * autoregressive and a masked Llama-style model with 2-D RoPE and a
 * vocabulary split into sub-tokens), their samplers (KV cache, CFG,
 * MaskGIT), generation metrics and the paper's analyses.
 * src/models/elm/. Protocol and figures: docs/elm.md. */
#ifndef TESSERA_ELM_H
#define TESSERA_ELM_H

#include "tessera/classify.h"
#include "tessera/data.h"
#include "tessera/imgtok.h"
#include "tessera/nn.h"
#include "tessera/train.h"

/* ------------------------------------------------------ tokenizer training */

typedef struct {
    const char *data_dir; /* NULL: the installed Fashion-MNIST */
    tsr_imgtok_cfg cfg;
    int batch;
    int64_t train_limit;
    float l1_w, l2_w;          /* reconstruction loss weights */
    float percep_w;            /* > 0: + w * mse(features(recon), features(x)) */
    const char *classifier;    /* feature extractor for the perceptual term */
    float dead;                /* VQ restart threshold on the EMA cluster size */
    const char *init;          /* non-NULL: start from this tokenizer's weights (and config) */
    bool decoder_only;         /* freeze encoder (+ codebook), train the decoder on the
                                  deterministic codes that encoding emits */
    /* out (checkpoint; state beside it), epochs, lr, checkpoints, resume,
     * seed, progress, log: the shared trainer's options */
    tsr_train_opts train;
} tsr_elm_tok_train_opts;

tsr_elm_tok_train_opts tsr_elm_tok_default_train_opts(tsr_imgtok_kind kind);

typedef struct {
    int64_t steps, total;
    bool finished, interrupted;
    float last_loss;
    double images_per_s, seconds;
} tsr_elm_tok_train_result;

tsr_status tsr_elm_tok_train(const tsr_elm_tok_train_opts *o, tsr_elm_tok_train_result *r);

/* ------------------------------------------------------ tokenizer evaluation */

typedef struct {
    int64_t n;
    double psnr;                     /* dB, mean over images */
    double acc_orig, acc_recon;      /* classifier accuracy on originals / reconstructions */
    double fd;                       /* Fréchet distance, classifier features, recon vs orig */
    double is_orig, is_recon;        /* Inception-Score analogue */
    double precision, recall;        /* k-NN (k=3), recon (fake) vs orig (real) */
    /* codes */
    int64_t distinct_tokens;         /* distinct per-position tokens (BAE: K <= 24) or -1 */
    double token_perplexity;         /* exp(entropy) of the token histogram (-1: n/a) */
    double bit_entropy;              /* BAE: mean over bits of H(p1) in bits; VQ: 0 */
    double bit_p1_min, bit_p1_max;   /* BAE: extremes over bits of P(bit = 1) */
} tsr_elm_tok_eval;

/* Reconstructs the first `limit` images of d (all when <= 0) and fills r;
 * recon (n*784 f32) may be NULL or receives the reconstructions. */
tsr_status tsr_elm_tok_evaluate(const tsr_imgtok *tok, tsr_classifier *cls, const tsr_mnist *d,
                                int64_t limit, tsr_elm_tok_eval *r, float *recon);


/* ====================================================== stage 2: generators */

#define TSR_ELM_POS 49          /* latent positions (7x7, raster order) */
#define TSR_ELM_CLASSES 10      /* class ids 0..9; id 10 is the null class (CFG) */
#define TSR_ELM_MAX_SUB 8

typedef enum { TSR_ELM_AR, TSR_ELM_MLM, TSR_ELM_KIND_COUNT } tsr_elm_kind;
const char *tsr_elm_kind_name(tsr_elm_kind k); /* "ar", "mlm" */

/* A code per position is cut into n_sub sub-tokens. BAE: K bits into n_sub
 * groups of K/n_sub bits (sub-token j = bits [j*b, (j+1)*b) read little-
 * endian), vocabulary 2^(K/n_sub) each. VQ: one sub-token, the codebook id. */
typedef struct {
    tsr_elm_kind kind;
    tsr_imgtok_kind tok;
    int bits;      /* BAE: K; VQ: 0 */
    int codebook;  /* VQ: entries; BAE: 0 */
    int n_sub;     /* token_each */
    int dim, n_layers, n_heads, hidden;
    float rope_theta;
} tsr_elm_cfg;

typedef struct {
    tsr_elm_cfg cfg;
    tsr_params params;
    int sub_vocab[TSR_ELM_MAX_SUB];  /* V_j; each embedding table has V_j + 1 rows (last: [MASK]) */
    int sub_bits;                    /* BAE bits per sub-token; VQ 0 */
    tsr_tensor *cls_embed;           /* (11, C) */
    tsr_tensor *tok_embed[TSR_ELM_MAX_SUB]; /* (V_j + 1, C / n_sub) */
    tsr_tensor *in_proj;             /* (C, C): concat of the sub-embeddings -> C */
    tsr_nn_llama_block *layers;
    tsr_tensor *norm;                /* (C) */
    tsr_tensor *head[TSR_ELM_MAX_SUB]; /* (V_j, C) */
    char tokenizer[512];             /* tokenizer checkpoint the codes came from */
} tsr_elm_model;

/* checks the config (user input), registers and draws the weights */
tsr_status tsr_elm_init(tsr_elm_model *m, const tsr_elm_cfg *cfg, uint64_t seed);
tsr_status tsr_elm_load(tsr_elm_model *m, const char *path);
tsr_status tsr_elm_save(const tsr_elm_model *m, const char *path, const char *const *meta);
void tsr_elm_free(tsr_elm_model *m);
int64_t tsr_elm_param_count(const tsr_elm_model *m);

/* codes of n images -> sub-token ids (n, 49, n_sub). BAE bits u8 (n,49,K);
 * VQ ids i32 (n,49). And back. */
void tsr_elm_split_codes(const tsr_elm_model *m, const uint8_t *bits, const int32_t *ids,
                         int64_t n, int32_t *sub);
void tsr_elm_join_codes(const tsr_elm_model *m, const int32_t *sub, int64_t n, uint8_t *bits,
                        int32_t *ids);

/* Autograd input embedding: sub ids i32 (B,T,n_sub) (value V_j = [MASK]) ->
 * concat_j tok_embed_j[sub_j] projected by in_proj: (B,T,C). */
tsr_tensor *tsr_elm_embed_codes(tsr_ctx *c, const tsr_elm_model *m, const tsr_tensor *sub);
/* Training loss. sub (B,49,n_sub) targets, labels i32 (B) (10 = null).
 * AR: input [class, code_0..code_47], predicts code_0..code_48.
 * MLM: input [class, codes with [MASK] where mask[b*49+p]], loss on the
 * masked positions only. Returns the mean over sub-tokens of the
 * per-sub-token cross-entropy; *nll (may be NULL) gets their sum (nats per
 * code, comparable across splits). */
tsr_tensor *tsr_elm_loss(tsr_ctx *c, const tsr_elm_model *m, const int32_t *sub,
                         const int32_t *labels, const uint8_t *mask, int64_t B, float *nll);
/* Autograd logits of the same forward: out[j] (B,49,V_j) */
void tsr_elm_logits(tsr_ctx *c, const tsr_elm_model *m, const int32_t *sub, const int32_t *labels,
                    const uint8_t *mask, int64_t B, tsr_tensor **out);

/* ------------------------------------------------------------ training */

typedef struct {
    const char *codes;       /* training codes from `tessera elm encode --split train` */
    const char *tokenizer;   /* recorded in the checkpoint */
    tsr_elm_cfg cfg;
    int batch;
    float label_drop;        /* class -> null class (classifier-free guidance) */
    int64_t train_limit;
    /* out, epochs, lr, clip, checkpoints, resume, seed, progress, log: the
     * shared trainer's options */
    tsr_train_opts train;
} tsr_elm_train_opts;

tsr_elm_train_opts tsr_elm_default_train_opts(void);

typedef struct {
    int64_t steps, total;
    bool finished, interrupted;
    float last_loss, last_nll;
    double images_per_s, seconds;
} tsr_elm_train_result;

tsr_status tsr_elm_train(const tsr_elm_train_opts *o, tsr_elm_train_result *r);

/* codes file of `tessera elm encode` -> malloc'd sub ids (n,49,n_sub) and
 * labels (n), checked against the model (first `limit` when > 0) */
tsr_status tsr_elm_load_codes(const char *path, const tsr_elm_model *m, int64_t limit,
                              int32_t **sub, int32_t **labels, int64_t *n);

/* ------------------------------------------------------------ sampling */

typedef enum { TSR_ELM_CFG_CONSTANT, TSR_ELM_CFG_LINEAR } tsr_elm_cfg_sched;

typedef struct {
    float temperature;  /* per sub-token */
    int top_k;          /* 0: off */
    float top_p;        /* 1: off */
    float cfg_scale;    /* 1: no guidance (the null-class pass is skipped) */
    tsr_elm_cfg_sched cfg_sched; /* linear: 1 + (s-1) * progress, progress (0,1] */
    int steps;          /* MLM: MaskGIT iterations */
    float choice_temp;  /* MLM: Gumbel noise on confidences, annealed to 0 */
    bool kv_cache;      /* AR: false re-runs the whole prefix every step */
    int batch;          /* images per forward */
    uint64_t seed;      /* image i draws from rng(seed, i): results do not depend on batch */
    double deadline;    /* tsr_time() past which sampling stops at the next
                           position (AR) or step (MLM), the codes left
                           unfinished (0: none): a server's per-request limit;
                           the caller discards them */
} tsr_elm_sample_opts;

tsr_elm_sample_opts tsr_elm_default_sample_opts(void);

/* n images of classes labels[i] (10 = unconditional) -> sub ids (n,49,n_sub) */
void tsr_elm_sample(const tsr_elm_model *m, const tsr_elm_sample_opts *o, const int32_t *labels,
                    int64_t n, int32_t *sub);

/* MaskGIT: positions still masked after step t of T (cosine schedule,
 * Chang et al. 2022 eq. 3), strictly decreasing, 0 after the last step */
int tsr_elm_maskgit_remaining(int t, int T, int n_pos);
/* masked-training ratio for u in [0,1): cos(pi/2 u); count = ceil(r n), >= 1 */
int tsr_elm_mask_count(float u, int n_pos);

/* Plain-C inference forward with a fixed reduction order (a token's
 * output does not depend on how many tokens were in the forward), over a
 * KV cache. Used by the samplers and analyses. */
typedef struct {
    const tsr_elm_model *m;
    int B, cap;      /* rows, max positions */
    int len;         /* positions cached */
    float *k, *v;    /* per layer (B, cap, C) */
    int32_t *ph, *pw;
    /* optional attention statistics of image queries over image keys */
    double *dist_sum; /* per layer: sum of mean attention distance (grid cells) */
    int64_t *dist_cnt;
    float *attn_map;  /* (L, H, 50) attention of row 0's query at position attn_q; NULL: off */
    int attn_q;
} tsr_elm_infer;

void tsr_elm_infer_init(tsr_elm_infer *s, const tsr_elm_model *m, int B, int cap);
void tsr_elm_infer_free(tsr_elm_infer *s);
/* x (B,T,C) input embeddings for sequence positions len..len+T-1 (0 is the
 * class token, 1+p is code p); causal or bidirectional over all cached
 * positions; appends to the cache; hidden (B,T,C) final-normed */
void tsr_elm_infer_forward(tsr_elm_infer *s, const float *x, int T, bool causal, float *hidden);
/* input embedding of one position: class (sub == NULL) or sub-tokens */
void tsr_elm_infer_embed(const tsr_elm_model *m, int label, const int32_t *sub, float *x);
/* logits of sub-token j from a hidden row */
void tsr_elm_infer_head(const tsr_elm_model *m, int j, const float *h, float *logits);

/* ---------------------------------------------------------- evaluation */

typedef struct {
    int64_t n;
    double fd, accuracy, is, precision, recall;
    double gen_seconds, images_per_s;
} tsr_elm_gen_eval;

/* n_per_class samples of each class (same seeds every time), decoded by
 * tok, against the first n_real test images of d (all when <= 0).
 * imgs (10*n_per_class*784) may be NULL. */
tsr_status tsr_elm_evaluate(const tsr_elm_model *m, const tsr_imgtok *tok, tsr_classifier *cls,
                            const tsr_mnist *test, const tsr_elm_sample_opts *so,
                            int64_t n_per_class, int64_t n_real, tsr_elm_gen_eval *r,
                            float *imgs);

/* Token randomness: KL from uniform (nats) of the unigram and of the
 * horizontal-neighbour bigram distribution of tokens (n, P) with vocab V */
void tsr_elm_token_kl(const int32_t *tok, int64_t n, int P, int64_t V, double *kl_uni,
                      double *kl_bi);

/* `POST /v1/elm/sample` for `tessera serve` (src/models/elm/serve.c) */
struct tsr_serve_endpoint;
extern const struct tsr_serve_endpoint tsr_elm_serve_endpoint;

#endif
