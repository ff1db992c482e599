/* lm inference (src/decode): model configuration checks, weight storage layout and the KV
 * cache. One aligned block holds every weight so a loader can fill it
 * tensor by tensor in whatever order its file uses; a view of an nn
 * decoder (tsr_lm_model_view_nn) holds none and points at its parameters. */
#include "tessera/lm.h"
#include "tessera/nn.h"

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
    if (c->rope_layout != TSR_LM_ROPE_INTERLEAVED && c->rope_layout != TSR_LM_ROPE_HALF)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: unknown RoPE layout %d", what, (int)c->rope_layout);
    return tsr_ok();
}

#define ALIGN_BYTES 64

static size_t round_up(size_t n) { return (n + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES; }

const char *tsr_lm_wtype_name(tsr_lm_wtype t) {
    static const char *const names[] = {"f32", "bf16", "q8"};
    _Static_assert(sizeof names / sizeof *names == TSR_LM_W_COUNT, "one name per weight type");
    return (unsigned)t < TSR_LM_W_COUNT ? names[t] : "?";
}

bool tsr_lm_wtype_parse(const char *name, tsr_lm_wtype *t) {
    for (int i = 0; i < TSR_LM_W_COUNT; i++)
        if (name && strcmp(name, tsr_lm_wtype_name((tsr_lm_wtype)i)) == 0) {
            *t = (tsr_lm_wtype)i;
            return true;
        }
    return false;
}

static size_t data_bytes(tsr_lm_wtype t, size_t r, size_t k) {
    return r * k * (t == TSR_LM_W_F32 ? 4 : t == TSR_LM_W_BF16 ? 2 : 1);
}

size_t tsr_lm_mat_bytes(const tsr_lm_mat *w) {
    size_t b = data_bytes(w->type, (size_t)w->rows, (size_t)w->cols);
    if (w->type == TSR_LM_W_Q8) b += (size_t)w->rows * (size_t)tsr_lm_mat_groups(w) * sizeof(float);
    return b;
}

/* Walk the layout: with base == NULL only count bytes. */
static size_t layout(tsr_lm_model *m, char *base) {
    const tsr_lm_config *c = &m->cfg;
    const tsr_lm_wtype wt = m->wtype;
    const int gs = wt == TSR_LM_W_Q8 ? m->group_size : 0;
    size_t C = (size_t)c->dim, Hd = (size_t)c->hidden_dim, V = (size_t)c->vocab_size;
    size_t kv = C / (size_t)c->n_heads * (size_t)c->n_kv_heads;
    size_t off = 0;
#define TAKE(nb) (off += round_up(nb), base ? (void *)(base + off - round_up(nb)) : NULL)
#define MAT(mat, r, k)                                                                            \
    do {                                                                                          \
        void *p_ = TAKE(data_bytes(wt, (r), (k)));                                                \
        size_t ng_ = gs ? ((k) + (size_t)gs - 1) / (size_t)gs : 0;                                \
        float *s_ = gs ? TAKE((r) * ng_ * sizeof(float)) : NULL;                                  \
        if (base) (mat) = (tsr_lm_mat){wt, (int)(r), (int)(k), p_, s_, gs};                       \
    } while (0)
    float *emb = TAKE(V * C * sizeof(float));
    if (base) m->tok_emb = emb;
    for (int l = 0; l < c->n_layers; l++) {
        tsr_lm_layer dummy, *L = base ? &m->layers[l] : &dummy;
        float *ra = TAKE(C * sizeof(float)), *rf = TAKE(C * sizeof(float));
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
    float *fin = TAKE(C * sizeof(float));
    if (base) m->rms_final = fin;
    if (c->shared_classifier && wt == TSR_LM_W_F32) {
        if (base) m->wcls = (tsr_lm_mat){TSR_LM_W_F32, (int)V, (int)C, m->tok_emb, NULL, 0};
    } else {
        MAT(m->wcls, V, C);
    }
#undef TAKE
#undef MAT
    return off;
}

tsr_status tsr_lm_model_alloc_typed(tsr_lm_model *m, const tsr_lm_config *cfg, tsr_lm_wtype wt,
                                    int group_size) {
    memset(m, 0, sizeof *m);
    tsr_status s = tsr_lm_config_check(cfg, "model config");
    if (s.code) return s;
    if ((unsigned)wt >= TSR_LM_W_COUNT) return tsr_errorf(TSR_ERR_ARG, "unknown weight type %d", (int)wt);
    if (wt == TSR_LM_W_Q8 && group_size != 32 && group_size != 64)
        return tsr_errorf(TSR_ERR_ARG, "Q8 group size %d: must be 32 or 64", group_size);
    m->cfg = *cfg;
    m->wtype = wt;
    m->group_size = wt == TSR_LM_W_Q8 ? group_size : 0;
    size_t bytes = layout(m, NULL);
    m->layers = calloc((size_t)cfg->n_layers, sizeof(tsr_lm_layer));
    void *p = NULL;
    if (!m->layers || posix_memalign(&p, ALIGN_BYTES, bytes ? bytes : ALIGN_BYTES) != 0) {
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

tsr_status tsr_lm_model_alloc(tsr_lm_model *m, const tsr_lm_config *cfg) {
    return tsr_lm_model_alloc_typed(m, cfg, TSR_LM_W_F32, 0);
}

void tsr_lm_model_sync_classifier(tsr_lm_model *m) {
    if (!m->cfg.shared_classifier || m->wcls.data == (const void *)m->tok_emb) return;
    tsr_lm_mat_store(&m->wcls, m->tok_emb);
    /* the table becomes what the classifier holds, so a tied model reads
     * the same weights both ways (and a saved copy reloads exactly) */
    for (int r = 0; r < m->wcls.rows; r++) tsr_lm_mat_row(&m->wcls, r, (float *)m->tok_emb + (size_t)r * m->cfg.dim);
}

void tsr_lm_model_round_embedding(tsr_lm_model *m) {
    if (m->wtype == TSR_LM_W_F32) return;
    if (m->cfg.shared_classifier) {
        tsr_lm_model_sync_classifier(m);
        return;
    }
    /* untied: round each row through the model's type, one row at a time */
    const int C = m->cfg.dim;
    tsr_lm_mat one = {m->wtype, 1, C, NULL, NULL, m->group_size};
    void *q = malloc((size_t)C * sizeof(uint16_t));
    float *sc = malloc(sizeof(float) * (size_t)(tsr_lm_mat_groups(&one) + 1));
    TSR_ASSERT(q && sc);
    one.data = q;
    one.scales = m->wtype == TSR_LM_W_Q8 ? sc : NULL;
    for (int r = 0; r < m->cfg.vocab_size; r++) {
        float *row = (float *)m->tok_emb + (size_t)r * C;
        tsr_lm_mat_store(&one, row);
        tsr_lm_mat_row(&one, 0, row);
    }
    free(q);
    free(sc);
}

void tsr_lm_mat_copy(const tsr_lm_mat *dst, const tsr_lm_mat *src, float *row) {
    TSR_ASSERT(dst->rows == src->rows && dst->cols == src->cols);
    if (dst->type == src->type && dst->group_size == src->group_size) {
        memcpy((void *)dst->data, src->data, data_bytes(src->type, (size_t)src->rows, (size_t)src->cols));
        if (src->scales)
            memcpy((void *)dst->scales, src->scales,
                   (size_t)src->rows * (size_t)tsr_lm_mat_groups(src) * sizeof(float));
        return;
    }
    /* row by row through f32 so no whole-matrix temporary is needed */
    for (int r = 0; r < src->rows; r++) {
        tsr_lm_mat d1 = *dst;
        d1.rows = 1;
        size_t eb = data_bytes(dst->type, 1, (size_t)dst->cols);
        d1.data = (const char *)dst->data + (size_t)r * eb;
        if (dst->scales) d1.scales = dst->scales + (size_t)r * (size_t)tsr_lm_mat_groups(dst);
        tsr_lm_mat_row(src, r, row);
        tsr_lm_mat_store(&d1, row);
    }
}

tsr_status tsr_lm_model_convert(tsr_lm_model *dst, const tsr_lm_model *src, tsr_lm_wtype wt, int group_size) {
    if (wt == TSR_LM_W_Q8 && group_size <= 0) group_size = TSR_LM_Q8_GROUP;
    tsr_status s = tsr_lm_model_alloc_typed(dst, &src->cfg, wt, group_size);
    if (s.code) return s;
    const tsr_lm_config *c = &src->cfg;
    size_t C = (size_t)c->dim;
    float *row = malloc(sizeof(float) * ((size_t)c->hidden_dim > C ? (size_t)c->hidden_dim : C));
    if (!row) {
        tsr_lm_model_free(dst);
        return tsr_errorf(TSR_ERR_NOMEM, "out of memory converting the model");
    }
    memcpy((void *)dst->tok_emb, src->tok_emb, sizeof(float) * (size_t)c->vocab_size * C);
    for (int l = 0; l < c->n_layers; l++) {
        const tsr_lm_layer *a = &src->layers[l];
        tsr_lm_layer *b = &dst->layers[l];
        memcpy((void *)b->rms_att, a->rms_att, sizeof(float) * C);
        memcpy((void *)b->rms_ffn, a->rms_ffn, sizeof(float) * C);
        tsr_lm_mat_copy(&b->wq, &a->wq, row);
        tsr_lm_mat_copy(&b->wk, &a->wk, row);
        tsr_lm_mat_copy(&b->wv, &a->wv, row);
        tsr_lm_mat_copy(&b->wo, &a->wo, row);
        tsr_lm_mat_copy(&b->w1, &a->w1, row);
        tsr_lm_mat_copy(&b->w3, &a->w3, row);
        tsr_lm_mat_copy(&b->w2, &a->w2, row);
    }
    memcpy((void *)dst->rms_final, src->rms_final, sizeof(float) * C);
    if (dst->wcls.data != (const void *)dst->tok_emb) tsr_lm_mat_copy(&dst->wcls, &src->wcls, row);
    free(row);
    /* the embedding table is stored in the model's type too */
    if (c->shared_classifier) {
        for (int r = 0; r < dst->wcls.rows; r++) tsr_lm_mat_row(&dst->wcls, r, (float *)dst->tok_emb + (size_t)r * C);
    } else {
        tsr_lm_model_round_embedding(dst);
    }
    return tsr_ok();
}

size_t tsr_lm_model_decode_bytes(const tsr_lm_model *m) {
    const tsr_lm_config *c = &m->cfg;
    size_t C = (size_t)c->dim, b = C * sizeof(float) * (2 * (size_t)c->n_layers + 2); /* norms + one embedding row */
    for (int l = 0; l < c->n_layers; l++) {
        const tsr_lm_layer *L = &m->layers[l];
        b += tsr_lm_mat_bytes(&L->wq) + tsr_lm_mat_bytes(&L->wk) + tsr_lm_mat_bytes(&L->wv) +
             tsr_lm_mat_bytes(&L->wo) + tsr_lm_mat_bytes(&L->w1) + tsr_lm_mat_bytes(&L->w3) +
             tsr_lm_mat_bytes(&L->w2);
    }
    return b + tsr_lm_mat_bytes(&m->wcls);
}

/* ------------------------------------------------------------ typed rows */

void tsr_lm_mat_store(const tsr_lm_mat *w, const float *src) {
    const size_t k = (size_t)w->cols;
    for (size_t r = 0; r < (size_t)w->rows; r++) {
        const float *x = src + r * k;
        switch (w->type) {
        case TSR_LM_W_F32: memcpy((float *)w->data + r * k, x, k * sizeof(float)); break;
        case TSR_LM_W_BF16: {
            uint16_t *d = (uint16_t *)w->data + r * k;
            for (size_t j = 0; j < k; j++) d[j] = tsr_f32_to_bf16(x[j]);
        } break;
        default: {
            int8_t *d = (int8_t *)w->data + r * k;
            const size_t gs = (size_t)w->group_size, ng = (size_t)tsr_lm_mat_groups(w);
            float *sc = (float *)w->scales + r * ng;
            for (size_t g = 0; g < ng; g++) {
                size_t j0 = g * gs, j1 = j0 + gs < k ? j0 + gs : k;
                float amax = 0;
                for (size_t j = j0; j < j1; j++) amax = fmaxf(amax, fabsf(x[j]));
                float s = amax / 127.0f, inv = s > 0 ? 1.0f / s : 0.0f;
                sc[g] = s;
                for (size_t j = j0; j < j1; j++) d[j] = (int8_t)fminf(fmaxf(nearbyintf(x[j] * inv), -127.0f), 127.0f);
            }
        } break;
        }
    }
}

void tsr_lm_mat_row(const tsr_lm_mat *w, int r, float *dst) {
    const size_t k = (size_t)w->cols, rr = (size_t)r;
    switch (w->type) {
    case TSR_LM_W_F32: memcpy(dst, (const float *)w->data + rr * k, k * sizeof(float)); break;
    case TSR_LM_W_BF16: {
        const uint16_t *d = (const uint16_t *)w->data + rr * k;
        for (size_t j = 0; j < k; j++) dst[j] = tsr_bf16_to_f32(d[j]);
    } break;
    default: {
        const int8_t *d = (const int8_t *)w->data + rr * k;
        const size_t gs = (size_t)w->group_size;
        const float *sc = w->scales + rr * (size_t)tsr_lm_mat_groups(w);
        for (size_t j = 0; j < k; j++) dst[j] = (float)d[j] * sc[j / gs];
    } break;
    }
}

static tsr_lm_mat view_mat(const tsr_tensor *w) {
    TSR_ASSERT(w && w->dtype == TSR_F32 && w->ndim == 2);
    return (tsr_lm_mat){TSR_LM_W_F32, (int)w->shape[0], (int)w->shape[1], w->data, NULL, 0};
}

tsr_status tsr_lm_model_view_nn(tsr_lm_model *m, const struct tsr_nn_llama *src) {
    memset(m, 0, sizeof *m);
    const tsr_nn_llama_cfg *g = &src->cfg;
    tsr_lm_config cfg = {.dim = g->dim, .hidden_dim = g->hidden_dim, .n_layers = g->n_layers,
                         .n_heads = g->n_heads, .n_kv_heads = g->n_kv_heads, .vocab_size = g->vocab,
                         .seq_len = g->max_seq, .rope_theta = g->rope_theta, .norm_eps = g->norm_eps,
                         .shared_classifier = g->tied, .rope_layout = TSR_LM_ROPE_HALF};
    tsr_status s = tsr_lm_config_check(&cfg, "nn llama");
    if (s.code) return s;
    m->cfg = cfg;
    m->wtype = TSR_LM_W_F32;
    m->layers = calloc((size_t)cfg.n_layers, sizeof(tsr_lm_layer));
    if (!m->layers) return tsr_errorf(TSR_ERR_NOMEM, "lm view: out of memory");
    m->tok_emb = tsr_f32(src->embed_tokens.weight);
    for (int l = 0; l < cfg.n_layers; l++) {
        const tsr_nn_llama_block *b = &src->layers[l];
        tsr_lm_layer *L = &m->layers[l];
        L->rms_att = tsr_f32(b->input_layernorm.weight);
        L->rms_ffn = tsr_f32(b->post_attention_layernorm.weight);
        L->wq = view_mat(b->q_proj.weight);
        L->wk = view_mat(b->k_proj.weight);
        L->wv = view_mat(b->v_proj.weight);
        L->wo = view_mat(b->o_proj.weight);
        L->w1 = view_mat(b->gate_proj.weight);
        L->w3 = view_mat(b->up_proj.weight);
        L->w2 = view_mat(b->down_proj.weight);
    }
    m->rms_final = tsr_f32(src->norm.weight);
    m->wcls = view_mat(src->lm_head);
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
    float *row = malloc(sizeof(float) * (size_t)w->cols);
    TSR_ASSERT(row);
    for (int i = 0; i < w->rows; i++) {
        tsr_lm_mat w1 = *w;
        w1.rows = 1;
        w1.data = (const char *)w->data + data_bytes(w->type, (size_t)i, (size_t)w->cols);
        if (w->scales) w1.scales = w->scales + (size_t)i * (size_t)tsr_lm_mat_groups(w);
        fill_normal(row, (size_t)w->cols, r, std, 0);
        tsr_lm_mat_store(&w1, row);
    }
    free(row);
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
    tsr_lm_model_round_embedding(m);
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
