/* lm family: model configuration checks, weight storage layout and the KV
 * cache. One aligned block holds every weight so a loader can fill it
 * tensor by tensor in whatever order its file uses. */
#include "tessera/lm.h"

#include <math.h>
#include <string.h>

/* Limits that keep every size product far inside int64/size_t and reject
 * headers that are garbage rather than models. */
#define LM_MAX_DIM (1 << 16)
#define LM_MAX_HIDDEN (1 << 18)
#define LM_MAX_LAYERS 1024
#define LM_MAX_HEADS 1024
#define LM_MAX_VOCAB (1 << 22)
#define LM_MAX_SEQ (1 << 22)

tsr_status tsr_lm_config_check(const tsr_lm_config *c, const char *what) {
    if (!what) what = "model";
    if (c->dim < 1 || c->dim > LM_MAX_DIM)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: dim %d out of range [1, %d]", what, c->dim, LM_MAX_DIM);
    if (c->hidden_dim < 1 || c->hidden_dim > LM_MAX_HIDDEN)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: hidden_dim %d out of range [1, %d]", what, c->hidden_dim,
                          LM_MAX_HIDDEN);
    if (c->n_layers < 1 || c->n_layers > LM_MAX_LAYERS)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: n_layers %d out of range [1, %d]", what, c->n_layers,
                          LM_MAX_LAYERS);
    if (c->n_heads < 1 || c->n_heads > LM_MAX_HEADS)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: n_heads %d out of range [1, %d]", what, c->n_heads,
                          LM_MAX_HEADS);
    if (c->n_kv_heads < 1 || c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: n_kv_heads %d must divide n_heads %d", what,
                          c->n_kv_heads, c->n_heads);
    if (c->dim % c->n_heads || (c->dim / c->n_heads) % 2)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: dim %d is not n_heads %d times an even head size", what,
                          c->dim, c->n_heads);
    if (c->vocab_size < 1 || c->vocab_size > LM_MAX_VOCAB)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: vocab_size %d out of range [1, %d]", what, c->vocab_size,
                          LM_MAX_VOCAB);
    if (c->seq_len < 1 || c->seq_len > LM_MAX_SEQ)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: seq_len %d out of range [1, %d]", what, c->seq_len,
                          LM_MAX_SEQ);
    if (!(c->rope_theta > 0) || !isfinite(c->rope_theta))
        return tsr_errorf(TSR_ERR_FORMAT, "%s: rope_theta %g must be positive", what, c->rope_theta);
    if (!(c->norm_eps >= 0) || !isfinite(c->norm_eps))
        return tsr_errorf(TSR_ERR_FORMAT, "%s: norm_eps %g must be >= 0", what, c->norm_eps);
    if (c->rope_layout != TSR_LM_ROPE_INTERLEAVED)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: only the interleaved RoPE layout is supported", what);
    return tsr_ok();
}

#define ALIGN_FLOATS 16 /* 64 bytes */

static size_t round_up(size_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

/* Walk the layout: with base == NULL only count floats. */
static size_t layout(tsr_lm_model *m, float *base) {
    const tsr_lm_config *c = &m->cfg;
    size_t C = (size_t)c->dim, Hd = (size_t)c->hidden_dim, V = (size_t)c->vocab_size;
    size_t kv = C / (size_t)c->n_heads * (size_t)c->n_kv_heads;
    size_t off = 0;
#define TAKE(n) (off += round_up(n), base ? base + off - round_up(n) : NULL)
#define MAT(mat, r, k)                                                                            \
    do {                                                                                          \
        float *p_ = TAKE((size_t)(r) * (size_t)(k));                                              \
        if (base) {                                                                               \
            (mat).type = TSR_LM_W_F32;                                                            \
            (mat).rows = (int)(r);                                                                \
            (mat).cols = (int)(k);                                                                \
            (mat).data = p_;                                                                      \
            (mat).scales = NULL;                                                                  \
            (mat).group_size = 0;                                                                 \
        }                                                                                         \
    } while (0)
    float *emb = TAKE(V * C);
    if (base) m->tok_emb = emb;
    for (int l = 0; l < c->n_layers; l++) {
        tsr_lm_layer dummy, *L = base ? &m->layers[l] : &dummy;
        float *ra = TAKE(C), *rf = TAKE(C);
        L->rms_att = ra;
        L->rms_ffn = rf;
        MAT(L->wq, C, C);
        MAT(L->wk, kv, C);
        MAT(L->wv, kv, C);
        MAT(L->wo, C, C);
        MAT(L->w1, Hd, C);
        MAT(L->w3, Hd, C);
        MAT(L->w2, C, Hd);
    }
    float *fin = TAKE(C);
    if (base) m->rms_final = fin;
    if (c->shared_classifier) {
        if (base) {
            m->wcls = (tsr_lm_mat){TSR_LM_W_F32, (int)V, (int)C, m->tok_emb, NULL, 0};
        }
    } else {
        MAT(m->wcls, V, C);
    }
#undef TAKE
#undef MAT
    return off;
}

tsr_status tsr_lm_model_alloc(tsr_lm_model *m, const tsr_lm_config *cfg) {
    memset(m, 0, sizeof *m);
    tsr_status s = tsr_lm_config_check(cfg, "model config");
    if (s.code) return s;
    m->cfg = *cfg;
    size_t nf = layout(m, NULL);
    size_t bytes = nf * sizeof(float);
    m->layers = calloc((size_t)cfg->n_layers, sizeof(tsr_lm_layer));
    void *p = NULL;
    if (!m->layers || posix_memalign(&p, 64, bytes ? bytes : 64) != 0) {
        free(m->layers);
        memset(m, 0, sizeof *m);
        return tsr_errorf(TSR_ERR_NOMEM, "out of memory for model weights (%zu bytes)", bytes);
    }
    memset(p, 0, bytes);
    m->storage = p;
    m->storage_bytes = bytes;
    layout(m, p);
    return tsr_ok();
}

void tsr_lm_model_free(tsr_lm_model *m) {
    if (!m) return;
    free(m->storage);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

static void fill_normal(const float *dst, size_t n, tsr_rng *r, float std, float mean) {
    float *d = (float *)dst;
    for (size_t i = 0; i < n; i++) d[i] = mean + std * tsr_rng_normal(r);
}
static void fill_mat(const tsr_lm_mat *w, tsr_rng *r, float std) {
    fill_normal(w->data, (size_t)w->rows * (size_t)w->cols, r, std, 0);
}

void tsr_lm_model_randomize(tsr_lm_model *m, uint64_t seed, float std) {
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    const tsr_lm_config *c = &m->cfg;
    size_t C = (size_t)c->dim;
    fill_normal(m->tok_emb, (size_t)c->vocab_size * C, &r, std, 0);
    for (int l = 0; l < c->n_layers; l++) {
        tsr_lm_layer *L = &m->layers[l];
        fill_normal(L->rms_att, C, &r, std, 1);
        fill_normal(L->rms_ffn, C, &r, std, 1);
        fill_mat(&L->wq, &r, std);
        fill_mat(&L->wk, &r, std);
        fill_mat(&L->wv, &r, std);
        fill_mat(&L->wo, &r, std);
        fill_mat(&L->w1, &r, std);
        fill_mat(&L->w3, &r, std);
        fill_mat(&L->w2, &r, std);
    }
    fill_normal(m->rms_final, C, &r, std, 1);
    if (!c->shared_classifier) fill_mat(&m->wcls, &r, std);
}

int64_t tsr_lm_model_params(const tsr_lm_model *m) {
    const tsr_lm_config *c = &m->cfg;
    int64_t C = c->dim, Hd = c->hidden_dim, V = c->vocab_size;
    int64_t kv = C / c->n_heads * c->n_kv_heads;
    int64_t per_layer = 2 * C + C * C * 2 + 2 * kv * C + 3 * Hd * C;
    return V * C + c->n_layers * per_layer + C + (c->shared_classifier ? 0 : V * C);
}

tsr_status tsr_lm_cache_init(tsr_lm_cache *c, const tsr_lm_config *cfg, int max_len) {
    memset(c, 0, sizeof *c);
    tsr_status s = tsr_lm_config_check(cfg, "model config");
    if (s.code) return s;
    if (max_len <= 0 || max_len > cfg->seq_len) max_len = cfg->seq_len;
    c->n_layers = cfg->n_layers;
    c->max_len = max_len;
    c->kv_dim = cfg->dim / cfg->n_heads * cfg->n_kv_heads;
    size_t n = (size_t)cfg->n_layers * (size_t)max_len * (size_t)c->kv_dim;
    c->k = calloc(n, sizeof(float));
    c->v = calloc(n, sizeof(float));
    if (!c->k || !c->v) {
        tsr_lm_cache_free(c);
        return tsr_errorf(TSR_ERR_NOMEM, "out of memory for the KV cache (%zu bytes)", 2 * n * sizeof(float));
    }
    return tsr_ok();
}

void tsr_lm_cache_free(tsr_lm_cache *c) {
    if (!c) return;
    free(c->k);
    free(c->v);
    free(c->scratch);
    memset(c, 0, sizeof *c);
}
