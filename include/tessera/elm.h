/* tessera elm: "Elucidating the design space of language models for image
 * generation" (Liu et al. 2024) scaled to Fashion-MNIST. Stage 1: training
 * the image tokenizers (BAE / VQ of imgtok.h) and evaluating their
 * reconstructions with the classifier-based metrics of imgmetrics.h.
 * src/models/elm/. Protocol and figures: docs/elm.md. */
#ifndef TESSERA_ELM_H
#define TESSERA_ELM_H

#include "tessera/classify.h"
#include "tessera/data.h"
#include "tessera/imgtok.h"

/* ------------------------------------------------------ tokenizer training */

typedef struct {
    int64_t step, total_steps, epoch;
    float loss, rec, aux, lr; /* total, L1+L2 reconstruction, commitment/perceptual */
    int restarts;             /* VQ dead-code restarts since the last report */
    double images_per_s, eta_s;
} tsr_elm_tok_progress;

typedef struct {
    const char *data_dir; /* NULL: the installed Fashion-MNIST */
    const char *out;      /* checkpoint; state in tsr_classify_state_path(out) */
    tsr_imgtok_cfg cfg;
    int epochs, batch;
    float lr, min_lr, weight_decay;
    int64_t warmup, ckpt_every, stop_after, train_limit, log_every;
    float l1_w, l2_w;          /* reconstruction loss weights */
    float percep_w;            /* > 0: + w * mse(features(recon), features(x)) */
    const char *classifier;    /* feature extractor for the perceptual term */
    float dead;                /* VQ restart threshold on the EMA cluster size */
    bool resume;
    uint64_t seed;
    void (*progress)(const tsr_elm_tok_progress *p, void *ud);
    void *progress_ud;
} tsr_elm_tok_train_opts;

tsr_elm_tok_train_opts tsr_elm_tok_default_train_opts(tsr_imgtok_kind kind);

typedef struct {
    int64_t steps;
    bool finished;
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

#endif
