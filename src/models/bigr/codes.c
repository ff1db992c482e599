/* tessera bigr: the BAE codes of Fashion-MNIST, encoded once and cached in
 * a safetensors file (train_bits / test_bits u8 (n,49,K), *_labels i32),
 * so that training, probing and evaluation never rerun the encoder. */
#include "tessera/bigr.h"

#include "tessera/data.h"
#include "tessera/imgtok.h"
#include "tessera/safetensors.h"

#include <string.h>
#include <unistd.h>

void tsr_bigr_codes_free(tsr_bigr_codes *cd) {
    free(cd->train_bits), free(cd->test_bits), free(cd->train_labels), free(cd->test_labels);
    memset(cd, 0, sizeof *cd);
}

static tsr_status encode_split(const tsr_imgtok *tok, const char *dir, bool train, int64_t limit,
                               uint8_t **bits, int32_t **labels, int64_t *n) {
    tsr_mnist d;
    tsr_status st = tsr_mnist_load(dir, train, &d);
    if (st.code) return st;
    const int K = tok->cfg.bits;
    if (limit > 0 && limit < d.n) d.n = limit;
    float *img = malloc(sizeof(float) * (size_t)(d.n * 784));
    *bits = malloc((size_t)(d.n * TSR_BIGR_L * K));
    *labels = malloc(sizeof(int32_t) * (size_t)d.n);
    TSR_ASSERT(img && *bits && *labels);
    for (int64_t i = 0; i < d.n * 784; i++) img[i] = (float)d.images.data[i] * (1.0f / 255.0f);
    for (int64_t i = 0; i < d.n; i++) (*labels)[i] = d.labels.data[i];
    tsr_imgtok_encode_images(tok, img, d.n, *bits, NULL);
    *n = d.n;
    free(img);
    tsr_mnist_free(&d);
    return tsr_ok();
}

tsr_status tsr_bigr_codes_build(tsr_bigr_codes *cd, const char *tokp, const char *data_dir,
                                int64_t limit) {
    memset(cd, 0, sizeof *cd);
    tsr_imgtok tok;
    tsr_status st = tsr_imgtok_load(&tok, tokp);
    if (st.code) return st;
    if (tok.cfg.kind != TSR_IMGTOK_BAE) {
        tsr_imgtok_free(&tok);
        return tsr_errorf(TSR_ERR_ARG, "%s: bigr needs a binary (BAE) tokenizer", tokp);
    }
    cd->K = tok.cfg.bits;
    st = encode_split(&tok, data_dir, true, limit, &cd->train_bits, &cd->train_labels, &cd->n_train);
    if (!st.code)
        st = encode_split(&tok, data_dir, false, limit, &cd->test_bits, &cd->test_labels, &cd->n_test);
    tsr_imgtok_free(&tok);
    if (st.code) tsr_bigr_codes_free(cd);
    return st;
}

tsr_status tsr_bigr_codes_save(const tsr_bigr_codes *cd, const char *path) {
    tsr_st_writer *w = tsr_st_writer_new();
    tsr_st_add(w, "train_bits", TSR_ST_U8, 3, TSR_SHAPE(cd->n_train, TSR_BIGR_L, cd->K), cd->train_bits);
    tsr_st_add(w, "train_labels", TSR_ST_I32, 1, TSR_SHAPE(cd->n_train), cd->train_labels);
    tsr_st_add(w, "test_bits", TSR_ST_U8, 3, TSR_SHAPE(cd->n_test, TSR_BIGR_L, cd->K), cd->test_bits);
    tsr_st_add(w, "test_labels", TSR_ST_I32, 1, TSR_SHAPE(cd->n_test), cd->test_labels);
    tsr_st_set_meta(w, "family", "bigr");
    tsr_st_set_meta(w, "content", "BAE codes of Fashion-MNIST");
    tsr_status st = tsr_st_write(w, path);
    tsr_st_writer_free(w);
    return st;
}

static tsr_status take(const tsr_st_file *f, const char *path, const char *name, bool bits, int K,
                       int64_t *n, void **out) {
    const tsr_st_tensor *t = tsr_st_find(f, name);
    if (!t) return tsr_errorf(TSR_ERR_FORMAT, "%s: no tensor '%s'", path, name);
    bool ok = bits ? t->dtype == TSR_ST_U8 && t->ndim == 3 && t->shape[1] == TSR_BIGR_L &&
                         (K < 0 || t->shape[2] == K)
                   : t->dtype == TSR_ST_I32 && t->ndim == 1 && t->shape[0] == *n;
    if (!ok) return tsr_errorf(TSR_ERR_FORMAT, "%s: tensor '%s' has the wrong dtype or shape", path, name);
    if (bits) *n = t->shape[0];
    *out = malloc(t->nbytes ? t->nbytes : 1);
    TSR_ASSERT(*out);
    memcpy(*out, t->data, t->nbytes);
    if (bits) {
        const uint8_t *b = t->data;
        for (size_t i = 0; i < t->nbytes; i++)
            if (b[i] > 1) return tsr_errorf(TSR_ERR_FORMAT, "%s: '%s' holds a value other than 0/1", path, name);
    }
    return tsr_ok();
}

tsr_status tsr_bigr_codes_load(tsr_bigr_codes *cd, const char *path) {
    memset(cd, 0, sizeof *cd);
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    const tsr_st_tensor *tb = tsr_st_find(&f, "train_bits");
    cd->K = tb && tb->ndim == 3 ? (int)tb->shape[2] : -1;
    st = take(&f, path, "train_bits", true, cd->K, &cd->n_train, (void **)&cd->train_bits);
    if (!st.code) st = take(&f, path, "train_labels", false, 0, &cd->n_train, (void **)&cd->train_labels);
    if (!st.code) st = take(&f, path, "test_bits", true, cd->K, &cd->n_test, (void **)&cd->test_bits);
    if (!st.code) st = take(&f, path, "test_labels", false, 0, &cd->n_test, (void **)&cd->test_labels);
    for (int64_t i = 0; !st.code && i < cd->n_train + cd->n_test; i++) {
        int32_t y = i < cd->n_train ? cd->train_labels[i] : cd->test_labels[i - cd->n_train];
        if (y < 0 || y > 9999) st = tsr_errorf(TSR_ERR_FORMAT, "%s: label out of range", path);
    }
    if (!st.code && (cd->K < 1 || cd->K > 64))
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: bits per position out of range", path);
    tsr_st_free(&f);
    if (st.code) tsr_bigr_codes_free(cd);
    return st;
}

tsr_status tsr_bigr_codes_get(tsr_bigr_codes *cd, const char *path, const char *tok,
                              const char *data_dir) {
    if (access(path, R_OK) == 0) return tsr_bigr_codes_load(cd, path);
    tsr_status st = tsr_bigr_codes_build(cd, tok, data_dir, 0);
    if (!st.code) st = tsr_bigr_codes_save(cd, path);
    if (st.code) tsr_bigr_codes_free(cd);
    return st;
}
