/* tessera elm: evaluation of a tokenizer by its reconstructions of the
 * Fashion-MNIST test images (protocol in docs/elm.md): PSNR, accuracy of
 * the fixed classifier on reconstructions, Fréchet distance / IS analogue /
 * k-NN precision-recall on the classifier's features and logits, and code
 * usage (bit entropy for the BAE, codebook usage for the VQ). */
#include "tessera/elm.h"

#include "tessera/imgmetrics.h"

#include <math.h>
#include <string.h>

#define PR_K 3

/* distinct tokens and perplexity of a histogram over V entries */
static void usage_stats(const int64_t *hist, int64_t V, int64_t total, int64_t *distinct,
                        double *ppl) {
    int64_t d = 0;
    double h = 0;
    for (int64_t v = 0; v < V; v++) {
        if (!hist[v]) continue;
        d++;
        double p = (double)hist[v] / (double)total;
        h -= p * log(p);
    }
    *distinct = d;
    *ppl = exp(h);
}

tsr_status tsr_elm_tok_evaluate(const tsr_imgtok *tok, tsr_classifier *cls, const tsr_mnist *d,
                                int64_t limit, tsr_elm_tok_eval *r, float *recon_out) {
    memset(r, 0, sizeof *r);
    const int64_t n = limit > 0 && limit < d->n ? limit : d->n;
    if (n <= PR_K + 1) return tsr_errorf(TSR_ERR_ARG, "need more than %d images to evaluate", PR_K + 1);
    const int F = tsr_classify_feature_dim(cls), C = TSR_CLASSIFY_CLASSES, K = tok->cfg.bits;
    const int64_t P = TSR_IMGTOK_GRID * TSR_IMGTOK_GRID;
    float *x = malloc(sizeof(float) * (size_t)(n * 784));
    float *y = recon_out ? recon_out : malloc(sizeof(float) * (size_t)(n * 784));
    float *fx = malloc(sizeof(float) * (size_t)(n * F)), *fy = malloc(sizeof(float) * (size_t)(n * F));
    float *lx = malloc(sizeof(float) * (size_t)(n * C)), *ly = malloc(sizeof(float) * (size_t)(n * C));
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)n);
    uint8_t *bits = tok->cfg.kind == TSR_IMGTOK_BAE ? malloc((size_t)(n * P * K)) : NULL;
    int32_t *ids = tok->cfg.kind == TSR_IMGTOK_VQ ? malloc(sizeof(int32_t) * (size_t)(n * P)) : NULL;
    TSR_ASSERT(x && y && fx && fy && lx && ly && lab && (bits || ids));
    for (int64_t i = 0; i < n * 784; i++) x[i] = (float)d->images.data[i] * (1.0f / 255.0f);
    for (int64_t i = 0; i < n; i++) lab[i] = d->labels.data[i];

    /* encode -> decode through the stored codes, exactly what a generator sees */
    tsr_imgtok_encode_images(tok, x, n, bits, ids);
    tsr_imgtok_decode_codes(tok, bits, ids, n, y);
    r->n = n;
    r->psnr = tsr_psnr(y, x, n, 784);
    tsr_classify_run_f32(cls, x, n, fx, lx);
    tsr_classify_run_f32(cls, y, n, fy, ly);
    r->acc_orig = tsr_class_accuracy(lx, lab, n, C);
    r->acc_recon = tsr_class_accuracy(ly, lab, n, C);
    r->fd = tsr_frechet_distance(fy, n, fx, n, F);
    r->is_orig = tsr_inception_score(lx, n, C);
    r->is_recon = tsr_inception_score(ly, n, C);
    tsr_prdc pr = tsr_precision_recall(fx, n, fy, n, F, PR_K);
    r->precision = pr.precision, r->recall = pr.recall;

    r->distinct_tokens = -1, r->token_perplexity = -1;
    if (tok->cfg.kind == TSR_IMGTOK_BAE) {
        double hsum = 0;
        r->bit_p1_min = 1, r->bit_p1_max = 0;
        for (int k = 0; k < K; k++) {
            int64_t ones = 0;
            for (int64_t i = 0; i < n * P; i++) ones += bits[i * K + k];
            double p = (double)ones / (double)(n * P);
            if (p > 0 && p < 1) hsum += -(p * log2(p) + (1 - p) * log2(1 - p));
            r->bit_p1_min = p < r->bit_p1_min ? p : r->bit_p1_min;
            r->bit_p1_max = p > r->bit_p1_max ? p : r->bit_p1_max;
        }
        r->bit_entropy = hsum / K;
        if (K <= 24) {
            int64_t V = (int64_t)1 << K;
            int64_t *hist = calloc((size_t)V, sizeof(int64_t));
            TSR_ASSERT(hist);
            for (int64_t i = 0; i < n * P; i++) {
                int64_t v = 0;
                for (int k = 0; k < K; k++) v = v << 1 | bits[i * K + k];
                hist[v]++;
            }
            usage_stats(hist, V, n * P, &r->distinct_tokens, &r->token_perplexity);
            free(hist);
        }
    } else {
        int64_t *hist = calloc((size_t)tok->cfg.codebook, sizeof(int64_t));
        TSR_ASSERT(hist);
        for (int64_t i = 0; i < n * P; i++) hist[ids[i]]++;
        usage_stats(hist, tok->cfg.codebook, n * P, &r->distinct_tokens, &r->token_perplexity);
        free(hist);
    }
    free(x), free(fx), free(fy), free(lx), free(ly), free(lab), free(bits), free(ids);
    if (!recon_out) free(y);
    return tsr_ok();
}
