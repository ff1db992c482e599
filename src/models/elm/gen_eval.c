/* tessera elm: generation metrics and the token-randomness analysis.
 * Samples n_per_class images of every class with fixed seeds, decodes them
 * with the tokenizer, and scores them with the fixed classifier
 * (imgmetrics.h): Fréchet distance and precision/recall (k = 3) on its
 * penultimate features against real test images, its accuracy on the
 * conditioning classes, and the IS analogue. Protocol: docs/elm.md. */
#include "tessera/elm.h"

#include "tessera/imgmetrics.h"

#include <math.h>
#include <string.h>

tsr_status tsr_elm_evaluate(const tsr_elm_model *m, const tsr_imgtok *tok, tsr_classifier *cls,
                            const tsr_mnist *test, const tsr_elm_sample_opts *so,
                            int64_t n_per_class, int64_t n_real, tsr_elm_gen_eval *r, float *imgs) {
    memset(r, 0, sizeof *r);
    bool bae = m->cfg.tok == TSR_IMGTOK_BAE;
    if (tok->cfg.kind != m->cfg.tok || (bae && tok->cfg.bits != m->cfg.bits) ||
        (!bae && tok->cfg.codebook != m->cfg.codebook))
        return tsr_errorf(TSR_ERR_ARG, "the tokenizer (%s, %d bits, codebook %d) does not match the "
                          "generator's codes (%s, %d bits, codebook %d)",
                          tsr_imgtok_kind_name(tok->cfg.kind), tok->cfg.bits, tok->cfg.codebook,
                          tsr_imgtok_kind_name(m->cfg.tok), m->cfg.bits, m->cfg.codebook);
    const int64_t n = n_per_class * TSR_CLASSIFY_CLASSES, P = TSR_ELM_POS, S = m->cfg.n_sub;
    const int64_t nr = n_real > 0 && n_real < test->n ? n_real : test->n;
    if (n < 4 || nr < 4) return tsr_errorf(TSR_ERR_ARG, "too few images to evaluate");
    const int fd = tsr_classify_feature_dim(cls);
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)n), *sub = malloc(sizeof(int32_t) * (size_t)(n * P * S));
    uint8_t *bits = bae ? malloc((size_t)(n * P * m->cfg.bits)) : NULL;
    int32_t *ids = bae ? NULL : malloc(sizeof(int32_t) * (size_t)(n * P));
    float *img = imgs ? imgs : malloc(sizeof(float) * (size_t)(n * 784));
    float *gf = malloc(sizeof(float) * (size_t)(n * fd)), *gl = malloc(sizeof(float) * (size_t)(n * 10));
    float *rf = malloc(sizeof(float) * (size_t)(nr * fd));
    TSR_ASSERT(labels && sub && (bits || ids) && img && gf && gl && rf);
    /* class-major order: image i has class i / n_per_class */
    for (int64_t i = 0; i < n; i++) labels[i] = (int32_t)(i / n_per_class);
    double t0 = tsr_time();
    tsr_elm_sample(m, so, labels, n, sub);
    r->gen_seconds = tsr_time() - t0;
    r->images_per_s = (double)n / (r->gen_seconds + 1e-9);
    tsr_elm_join_codes(m, sub, n, bits, ids);
    tsr_imgtok_decode_codes(tok, bits, ids, n, img);
    tsr_classify_run_f32(cls, img, n, gf, gl);
    tsr_classify_run_u8(cls, test->images.data, nr, rf, NULL);
    r->n = n;
    r->fd = tsr_frechet_distance(gf, n, rf, nr, fd);
    r->accuracy = tsr_class_accuracy(gl, labels, n, 10);
    r->is = tsr_inception_score(gl, n, 10);
    tsr_prdc pr = tsr_precision_recall(rf, nr, gf, n, fd, 3);
    r->precision = pr.precision, r->recall = pr.recall;
    free(labels), free(sub), free(bits), free(ids), free(gf), free(gl), free(rf);
    if (!imgs) free(img);
    return tsr_ok();
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* entropy (nats) of the multiset of keys (sorted in place) */
static double entropy_sorted(uint64_t *k, int64_t n) {
    qsort(k, (size_t)n, sizeof *k, cmp_u64);
    double h = 0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j < n && k[j] == k[i]) j++;
        double p = (double)(j - i) / (double)n;
        h -= p * log(p);
        i = j;
    }
    return h;
}

void tsr_elm_token_kl(const int32_t *tok, int64_t n, int P, int64_t V, double *kl_uni,
                      double *kl_bi) {
    uint64_t *k = malloc(sizeof(uint64_t) * (size_t)(n * P));
    TSR_ASSERT(k);
    for (int64_t i = 0; i < n * P; i++) k[i] = (uint64_t)tok[i];
    *kl_uni = log((double)V) - entropy_sorted(k, n * P);
    int64_t nb = 0;
    for (int64_t i = 0; i < n; i++)
        for (int p = 0; p + 1 < P; p++)
            k[nb++] = (uint64_t)tok[i * P + p] * (uint64_t)V + (uint64_t)tok[i * P + p + 1];
    *kl_bi = 2.0 * log((double)V) - entropy_sorted(k, nb);
    free(k);
}
