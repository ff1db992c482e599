/* tessera search: the dense bi-encoder shared by higen (its item encoder
 * and the dense baseline) and ebrm (the bi-encoder baseline): a
 * bidirectional Llama-block encoder over BPE tokens, masked mean pooling,
 * L2 normalisation, an optional efficiency MLP on the item side, and the
 * InfoNCE loss (van den Oord et al. 2018; in-batch negatives as in DPR,
 * Karpukhin et al. 2020, plus BM25 hard negatives). */
#include "tessera/search.h"

#include "tessera/ops_elem.h"
#include "tessera/ops_matmul.h"
#include "tessera/ops_norm.h"

#include <math.h>
#include <string.h>

tsr_status tsr_benc_init(tsr_benc *m, const tsr_benc_cfg *cfg) {
    memset(m, 0, sizeof *m);
    if (cfg->eff_hidden < 0 || cfg->eff_hidden > 4096)
        return tsr_errorf(TSR_ERR_ARG, "bi-encoder: eff_hidden %d out of 0..4096", cfg->eff_hidden);
    m->cfg = *cfg;
    tsr_params_init(&m->params);
    tsr_nn_llama_cfg lc = {.dim = cfg->dim, .n_layers = cfg->n_layers, .n_heads = cfg->n_heads,
                           .n_kv_heads = cfg->n_kv_heads, .hidden_dim = cfg->hidden_dim,
                           .vocab = cfg->vocab, .max_seq = cfg->max_seq, .norm_eps = 1e-5f,
                           .rope_theta = 10000.f, .tied = true};
    tsr_status st = tsr_nn_llama_init(&m->enc, &m->params, &lc);
    if (st.code != TSR_OK) {
        tsr_params_free(&m->params);
        return st;
    }
    if (cfg->eff_hidden > 0) {
        tsr_nn_linear_init(&m->eff1, &m->params, "eff.0", 1, cfg->eff_hidden, true);
        tsr_nn_linear_init(&m->eff2, &m->params, "eff.2", cfg->eff_hidden, cfg->dim, false);
    }
    return tsr_ok();
}

void tsr_benc_init_weights(tsr_benc *m, uint64_t seed) {
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    tsr_nn_llama_init_weights(&m->enc, &r);
    if (m->cfg.eff_hidden > 0) {
        tsr_init_normal(m->eff1.weight, &r, 1.0f);
        tsr_init_const(m->eff1.bias, 0.f);
        tsr_init_normal(m->eff2.weight, &r, 0.02f); /* starts near "text only" */
    }
}

void tsr_benc_free(tsr_benc *m) {
    tsr_nn_llama_free(&m->enc);
    tsr_params_free(&m->params);
    memset(m, 0, sizeof *m);
}

tsr_tensor *tsr_benc_pool(tsr_ctx *c, const tsr_nn_llama *enc, const tsr_tensor *tokens,
                          const int32_t *lens) {
    TSR_ASSERT(tokens->dtype == TSR_I32 && tokens->ndim == 2);
    int64_t B = tokens->shape[0], T = tokens->shape[1];
    /* attend only to the row's real tokens (padded queries still see them) */
    tsr_tensor *mask = tsr_new(c, TSR_U8, TSR_DIMS(B, T, T));
    tsr_tensor *keep = tsr_new(c, TSR_F32, TSR_DIMS(B, T, 1));
    tsr_tensor *inv = tsr_new(c, TSR_F32, TSR_DIMS(B, 1));
    for (int64_t b = 0; b < B; b++) {
        TSR_ASSERT(lens[b] >= 1 && lens[b] <= T);
        for (int64_t i = 0; i < T; i++) {
            for (int64_t j = 0; j < T; j++) tsr_u8(mask)[(b * T + i) * T + j] = j < lens[b];
            tsr_f32(keep)[b * T + i] = i < lens[b] ? 1.f : 0.f;
        }
        tsr_f32(inv)[b] = 1.0f / (float)lens[b];
    }
    tsr_nn_seq seq = {.pos = NULL, .mask = mask, .causal = false};
    tsr_tensor *h = tsr_nn_llama_hidden(c, enc, tokens, &seq); /* (B,T,C) */
    return tsr_mul(c, tsr_sum(c, tsr_mul(c, h, keep), 1, false), inv);
}

tsr_tensor *tsr_benc_encode(tsr_ctx *c, const tsr_benc *m, const tsr_tensor *tokens,
                            const int32_t *lens, const tsr_tensor *eff, tsr_tensor **plain) {
    int64_t B = tokens->shape[0], C = m->cfg.dim;
    tsr_tensor *pooled = tsr_benc_pool(c, &m->enc, tokens, lens); /* (B,C) */
    if (plain) *plain = tsr_scale(c, tsr_rmsnorm(c, pooled, NULL, 1e-12f), 1.0f / sqrtf((float)C));
    if (eff && m->cfg.eff_hidden > 0) {
        TSR_ASSERT(eff->numel == B);
        tsr_tensor *e = tsr_reshape(c, (tsr_tensor *)eff, 2, TSR_SHAPE(B, 1));
        tsr_tensor *z = tsr_nn_linear_forward(c, &m->eff2, tsr_silu(c, tsr_nn_linear_forward(c, &m->eff1, e)));
        pooled = tsr_add(c, pooled, z);
    }
    /* x / |x| = rmsnorm(x) / sqrt(C) */
    return tsr_scale(c, tsr_rmsnorm(c, pooled, NULL, 1e-12f), 1.0f / sqrtf((float)C));
}

tsr_tensor *tsr_benc_infonce(tsr_ctx *c, tsr_tensor *q, tsr_tensor *d, float tau, const tsr_tensor *mask) {
    TSR_ASSERT(q->ndim == 2 && d->ndim == 2 && d->shape[0] >= q->shape[0] && q->shape[1] == d->shape[1]);
    int64_t B = q->shape[0];
    tsr_tensor *s = tsr_scale(c, tsr_matmul(c, q, d, false, true), 1.0f / tau); /* (B,N) */
    if (mask) s = tsr_add(c, s, (tsr_tensor *)mask);
    tsr_tensor *tgt = tsr_new(c, TSR_I32, TSR_DIMS(B));
    for (int64_t i = 0; i < B; i++) tsr_i32(tgt)[i] = (int32_t)i;
    return tsr_cross_entropy(c, s, tgt, NULL, -1, 0.f);
}

/* ------------------------------------------------------------- loading */

static const char *const k_benc_keys[8] = {"encoder.dim",    "encoder.layers",  "encoder.heads",   "encoder.kv_heads",
                                           "encoder.hidden", "encoder.vocab",   "encoder.max_seq", "encoder.eff_hidden"};

void tsr_benc_config_kv(const tsr_benc_cfg *cfg, const char **kv, char *buf) {
    const int v[8] = {cfg->dim,        cfg->n_layers, cfg->n_heads,   cfg->n_kv_heads,
                      cfg->hidden_dim, cfg->vocab,    cfg->max_seq, cfg->eff_hidden};
    for (int i = 0; i < 8; i++) {
        snprintf(buf + 16 * i, 16, "%d", v[i]);
        kv[2 * i] = k_benc_keys[i];
        kv[2 * i + 1] = buf + 16 * i;
    }
}

#include "tessera/safetensors.h"

tsr_status tsr_benc_load(tsr_benc *m, const char *path) {
    memset(m, 0, sizeof *m);
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code != TSR_OK) return st;
    int v[8];
    for (int i = 0; i < 8; i++) {
        const char *s = tsr_st_meta(&f, k_benc_keys[i]);
        char *end = NULL;
        long x = s ? strtol(s, &end, 10) : -1;
        if (!s || *end || x < 0 || x > (1 << 24)) {
            tsr_st_free(&f);
            return tsr_errorf(TSR_ERR_FORMAT, "%s: not a bi-encoder checkpoint (metadata %s missing or bad)", path,
                              k_benc_keys[i]);
        }
        v[i] = (int)x;
    }
    tsr_st_free(&f);
    tsr_benc_cfg cfg = {.dim = v[0], .n_layers = v[1], .n_heads = v[2], .n_kv_heads = v[3], .hidden_dim = v[4],
                        .vocab = v[5], .max_seq = v[6], .eff_hidden = v[7]};
    st = tsr_benc_init(m, &cfg);
    if (st.code != TSR_OK) return tsr_errorf(TSR_ERR_FORMAT, "%s: %s", path, st.msg);
    st = tsr_params_load(&m->params, path, false);
    if (st.code != TSR_OK) tsr_benc_free(m);
    return st;
}
