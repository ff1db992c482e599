/* tessera ebrm: the trained model — the QE cross-encoder with its
 * tokenizer and aggregation logits (or, as the baseline, the same encoder
 * over whole item texts), pair tokenisation, the QE scorer the cache
 * calls, scoring a query's candidates, the weights file. */
#include "tessera/ebrm.h"

#include "tessera/ops_elem.h"
#include "tessera/safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_kind_names[2] = {"ebrm", "cross-encoder"};
static const char *const k_agg_names[3] = {"softlogic", "mean", "softlogic-fuse"};

tsr_status tsr_ebrm_model_init(tsr_ebrm_model *m, const tsr_benc_cfg *cfg, int kind, int agg) {
    memset(m, 0, sizeof *m);
    if (kind < 0 || kind > 1 || agg < 0 || agg > 2 || (kind == TSR_EBRM_KIND_CROSS && agg == TSR_EBRM_AGG_FUSE)) return tsr_errorf(TSR_ERR_ARG, "ebrm model: bad kind or aggregation");
    if (cfg->vocab < 2) return tsr_errorf(TSR_ERR_ARG, "ebrm model: vocab %d too small", cfg->vocab);
    if (cfg->max_seq < TSR_EBRM_TQ + 1 + TSR_EBRM_TI)
        return tsr_errorf(TSR_ERR_ARG, "ebrm model: max_seq %d < %d", cfg->max_seq, TSR_EBRM_TQ + 1 + TSR_EBRM_TI);
    tsr_status st = tsr_ebrm_qe_init(&m->qe, cfg);
    if (st.code != TSR_OK) return st;
    m->kind = kind;
    m->agg = agg;
    m->sep = cfg->vocab - 1;
    if (kind == TSR_EBRM_KIND_EBRM)
        m->theta = tsr_param_new(&m->qe.params, "agg.theta", TSR_PARAM_NO_DECAY, 1, TSR_SHAPE(TSR_EBRM_THETA));
    if (agg == TSR_EBRM_AGG_FUSE) m->fuse = tsr_param_new(&m->qe.params, "agg.fuse", TSR_PARAM_NO_DECAY, 1, TSR_SHAPE(1));
    tsr_ctx_init(&m->ctx, 1 << 24);
    m->ctx.grad_enabled = false;
    /* the QE cache promises scores bit-identical to uncached scoring, so a
     * pair's logits must not depend on the rows beside it in a block */
    if (kind == TSR_EBRM_KIND_EBRM) m->ctx.be = &tsr_backend_cpu_fixed;
    return tsr_ok();
}

void tsr_ebrm_model_init_weights(tsr_ebrm_model *m, uint64_t seed) {
    tsr_ebrm_qe_init_weights(&m->qe, seed);
    if (m->theta) {
        /* leak ~ 0.05, support weights ~ 0.9, veto weights ~ 0.5 */
        float *t = tsr_f32(m->theta);
        t[0] = -3.f;
        for (int i = 0; i < TSR_EBRM_TYPES; i++) t[1 + i] = 2.f, t[1 + TSR_EBRM_TYPES + i] = 0.f;
    }
    if (m->fuse) tsr_f32(m->fuse)[0] = 0.f;
}

tsr_status tsr_ebrm_model_set_agg(tsr_ebrm_model *m, int agg, float alpha) {
    if (m->kind != TSR_EBRM_KIND_EBRM || agg < 0 || agg > 2)
        return tsr_errorf(TSR_ERR_ARG, "ebrm: aggregation %d does not apply to this model", agg);
    if (m->fuse) return tsr_errorf(TSR_ERR_ARG, "ebrm: a fused model (softlogic-fuse) keeps its aggregation");
    if (agg == TSR_EBRM_AGG_FUSE) {
        if (m->agg != TSR_EBRM_AGG_SOFTLOGIC) return tsr_errorf(TSR_ERR_ARG, "ebrm: only a softlogic model can be fused");
        if (!(alpha >= 0 && alpha <= 1000)) return tsr_errorf(TSR_ERR_ARG, "ebrm: fusion weight %g outside [0, 1000]", alpha);
        m->fuse = tsr_param_new(&m->qe.params, "agg.fuse", TSR_PARAM_NO_DECAY, 1, TSR_SHAPE(1));
        tsr_f32(m->fuse)[0] = alpha;
    }
    m->agg = agg;
    return tsr_ok();
}

void tsr_ebrm_model_free(tsr_ebrm_model *m) {
    tsr_ebrm_qe_free(&m->qe);
    if (m->have_bpe) tsr_bpe_free(&m->bpe);
    free(m->ent_tok);
    free(m->ent_len);
    tsr_ctx_free(&m->ctx);
    memset(m, 0, sizeof *m);
}

static const char *const k_cfg_keys[TSR_EBRM_CFG_KV] = {
    "encoder.dim", "encoder.layers", "encoder.heads", "encoder.kv_heads", "encoder.hidden", "encoder.vocab",
    "encoder.max_seq", "ebrm.kind", "ebrm.agg", "ebrm.tq", "ebrm.te_ti"};

void tsr_ebrm_model_config_kv(const tsr_ebrm_model *m, const char **kv, char *buf) {
    const tsr_benc_cfg *c = &m->qe.cfg;
    const int v[7] = {c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim, c->vocab, c->max_seq};
    for (int i = 0; i < TSR_EBRM_CFG_KV; i++) {
        char *b = buf + 16 * i;
        if (i < 7) snprintf(b, 16, "%d", v[i]);
        else if (i == 7) snprintf(b, 16, "%s", k_kind_names[m->kind]);
        else if (i == 8) snprintf(b, 16, "%s", k_agg_names[m->agg]);
        else if (i == 9) snprintf(b, 16, "%d", TSR_EBRM_TQ);
        else snprintf(b, 16, "%d/%d", TSR_EBRM_TE, TSR_EBRM_TI);
        kv[2 * i] = k_cfg_keys[i];
        kv[2 * i + 1] = b;
    }
}

tsr_status tsr_ebrm_model_save(const tsr_ebrm_model *m, const char *path, const char *const *meta) {
    const char *kv[2 * TSR_EBRM_CFG_KV + 64 + 2 + 1];
    char buf[16 * TSR_EBRM_CFG_KV];
    tsr_ebrm_model_config_kv(m, kv, buf);
    int n = 2 * TSR_EBRM_CFG_KV;
    for (int i = 0; meta && meta[i] && n < 2 * TSR_EBRM_CFG_KV + 64; i += 2) {
        bool dup = false;
        for (int k = 0; k < TSR_EBRM_CFG_KV; k++) dup |= strcmp(meta[i], k_cfg_keys[k]) == 0;
        if (dup) continue;
        kv[n++] = meta[i];
        kv[n++] = meta[i + 1];
    }
    if (m->gate && n < 2 * TSR_EBRM_CFG_KV + 64) {
        bool have = false;
        for (int i = 2 * TSR_EBRM_CFG_KV; i < n; i += 2) have |= strcmp(kv[i], "fuse.gate") == 0;
        if (!have) kv[n++] = "fuse.gate", kv[n++] = tsr_ebrm_gate_feature;
    }
    kv[n] = NULL;
    return tsr_params_save(&m->qe.params, path, TSR_ST_F32, kv);
}

tsr_status tsr_ebrm_model_load(tsr_ebrm_model *m, const char *path, const char *tokenizer) {
    memset(m, 0, sizeof *m);
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code != TSR_OK) return st;
    int v[7] = {0}, kind = -1, agg = -1, lex_norm = TSR_EBRM_LEX_MAX;
    for (int i = 0; i < 9 && st.code == TSR_OK; i++) {
        const char *s = tsr_st_meta(&f, k_cfg_keys[i]);
        if (!s) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: not an ebrm model (metadata %s missing)", path, k_cfg_keys[i]);
        } else if (i < 7) {
            if (!tsr_st_meta_int(&f, k_cfg_keys[i], 1, 1 << 20, &v[i]))
                st = tsr_errorf(TSR_ERR_FORMAT, "%s: metadata %s = '%s' is not a valid size", path, k_cfg_keys[i], s);
        } else {
            const char *const *names = i == 7 ? k_kind_names : k_agg_names;
            int *dst = i == 7 ? &kind : &agg;
            for (int k = 0; k < (i == 7 ? 2 : 3); k++)
                if (strcmp(s, names[k]) == 0) *dst = k;
            if (*dst < 0) st = tsr_errorf(TSR_ERR_FORMAT, "%s: metadata %s = '%s' is unknown", path, k_cfg_keys[i], s);
        }
    }
    const char *lx = st.code == TSR_OK ? tsr_st_meta(&f, "fuse.lex") : NULL, *gt = NULL;
    bool gated = false;
    if (st.code == TSR_OK && (gt = tsr_st_meta(&f, "fuse.gate"))) {
        gated = true;
        if (strcmp(gt, tsr_ebrm_gate_feature) != 0)
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: metadata fuse.gate = '%s' is unknown", path, gt);
        else if (agg != TSR_EBRM_AGG_FUSE)
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: metadata fuse.gate on a model without fusion", path);
    }
    if (lx) {
        lex_norm = strcmp(lx, tsr_ebrm_lex_names[1]) == 0 ? TSR_EBRM_LEX_TOP1 : strcmp(lx, tsr_ebrm_lex_names[0]) == 0 ? TSR_EBRM_LEX_MAX : -1;
        if (lex_norm < 0) st = tsr_errorf(TSR_ERR_FORMAT, "%s: metadata fuse.lex = '%s' is unknown", path, lx);
    }
    tsr_st_free(&f);
    if (st.code != TSR_OK) return st;
    tsr_benc_cfg cfg = {.dim = v[0], .n_layers = v[1], .n_heads = v[2], .n_kv_heads = v[3], .hidden_dim = v[4],
                        .vocab = v[5], .max_seq = v[6]};
    if (cfg.dim % cfg.n_heads || cfg.n_heads % cfg.n_kv_heads)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: heads %d / kv heads %d do not divide dim %d", path, cfg.n_heads,
                          cfg.n_kv_heads, cfg.dim);
    st = tsr_ebrm_model_init(m, &cfg, kind, agg);
    if (st.code != TSR_OK) return tsr_errorf(TSR_ERR_FORMAT, "%s: %s", path, st.msg);
    m->lex_norm = lex_norm;
    if (gated) tsr_ebrm_model_set_gate(m, 0.f, 0.f); /* the values come from the file */
    st = tsr_params_load(&m->qe.params, path, false);
    if (st.code == TSR_OK) {
        st = tsr_bpe_load(&m->bpe, tokenizer);
        if (st.code == TSR_OK) {
            m->have_bpe = true;
            if (m->bpe.vocab_size + 1 != cfg.vocab)
                st = tsr_errorf(TSR_ERR_FORMAT, "%s has %d tokens but %s was trained with %d", tokenizer,
                                m->bpe.vocab_size, path, cfg.vocab - 1);
        }
    }
    if (st.code != TSR_OK) tsr_ebrm_model_free(m);
    return st;
}

int tsr_ebrm_tokenize(tsr_bpe *bpe, const char *text, int32_t *out, int n) {
    size_t len = strlen(text);
    if (len > (size_t)n * 8) len = (size_t)n * 8; /* a token covers >= 1 byte: the head is enough */
    char *low = malloc(len + 1);
    int32_t *ids = malloc((len + 1) * sizeof *ids);
    TSR_ASSERT(low && ids);
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        low[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch == '\n' || ch == '\t' ? ' ' : ch);
    }
    low[len] = 0;
    size_t k = tsr_bpe_encode(bpe, low, len, ids);
    if (k > (size_t)n) k = (size_t)n;
    memcpy(out, ids, k * sizeof *out);
    if (k == 0) out[k++] = 0;
    free(low);
    free(ids);
    return (int)k;
}

void tsr_ebrm_model_prepare(tsr_ebrm_model *m, const tsr_ebrm_entities *E) {
    free(m->ent_tok);
    free(m->ent_len);
    m->n_ent = E->n;
    m->ent_tok = calloc((size_t)E->n * TSR_EBRM_TE + 1, sizeof *m->ent_tok);
    m->ent_len = malloc(((size_t)E->n + 1) * sizeof *m->ent_len);
    TSR_ASSERT(m->ent_tok && m->ent_len);
    for (int32_t e = 0; e < E->n; e++)
        m->ent_len[e] = tsr_ebrm_tokenize(&m->bpe, E->text[e], m->ent_tok + (size_t)e * TSR_EBRM_TE, TSR_EBRM_TE);
}

int tsr_ebrm_pair(const tsr_ebrm_model *m, const int32_t *q, int qn, const int32_t *b, int bn, int32_t *out) {
    memcpy(out, q, (size_t)qn * sizeof *out);
    out[qn] = m->sep;
    memcpy(out + qn + 1, b, (size_t)bn * sizeof *out);
    return qn + 1 + bn;
}

tsr_tensor *tsr_ebrm_pairs_tensor(tsr_ctx *c, const tsr_ebrm_model *m, const int32_t *q, int qn,
                                  const int32_t *const *b, const int *blen, int n, int32_t *lens) {
    int T = 1;
    for (int i = 0; i < n; i++) T = qn + 1 + blen[i] > T ? qn + 1 + blen[i] : T;
    tsr_tensor *t = tsr_zeros(c, TSR_I32, TSR_DIMS(n, T));
    for (int i = 0; i < n; i++) lens[i] = tsr_ebrm_pair(m, q, qn, b[i], blen[i], tsr_i32(t) + (size_t)i * T);
    return t;
}

/* Logits of n pairs sharing query q. Pairs are grouped by length, and
 * every forward is a block of exactly PAIR_BLOCK pairs of one length (the
 * last block padded with copies of its last pair): the matmul shapes then
 * depend only on the length. With the EBRM model's fixed-order backend a
 * pair's logits then never depend on which other pairs share the call (the
 * cache needs bit identity, which the test checks); the blocks keep the
 * cross-encoder's OpenBLAS products the same shape from call to call. */
#define PAIR_BLOCK 16
static void pairs_logits(tsr_ebrm_model *m, const int32_t *q, int qn, const int32_t *const *b, const int *blen,
                         int n, float *out) {
    int maxb = 0;
    for (int i = 0; i < n; i++) maxb = blen[i] > maxb ? blen[i] : maxb;
    int32_t *sel = malloc(((size_t)n + 1) * sizeof *sel), lens[PAIR_BLOCK];
    const int32_t *bs[PAIR_BLOCK];
    int bl[PAIR_BLOCK];
    TSR_ASSERT(sel);
    for (int L = 1; L <= maxb; L++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (blen[i] == L) sel[k++] = i;
        for (int a = 0; a < k; a += PAIR_BLOCK) {
            int nb = k - a < PAIR_BLOCK ? k - a : PAIR_BLOCK;
            for (int j = 0; j < PAIR_BLOCK; j++) bs[j] = b[sel[a + (j < nb ? j : nb - 1)]], bl[j] = L;
            tsr_ctx_reset(&m->ctx);
            tsr_tensor *tok = tsr_ebrm_pairs_tensor(&m->ctx, m, q, qn, bs, bl, PAIR_BLOCK, lens);
            const float *lg = tsr_f32(tsr_ebrm_qe_logits(&m->ctx, &m->qe, tok, lens));
            for (int j = 0; j < nb; j++) memcpy(out + 2 * (size_t)sel[a + j], lg + 2 * j, 2 * sizeof *out);
        }
    }
    tsr_ctx_reset(&m->ctx);
    free(sel);
}

static float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

tsr_status tsr_ebrm_model_qe(void *ud, const char *query, const int32_t *ent, int n, float *r, float *c) {
    tsr_ebrm_model *m = ud;
    if (m->kind != TSR_EBRM_KIND_EBRM || !m->ent_tok)
        return tsr_errorf(TSR_ERR_ARG, "ebrm: QE scoring needs an EBRM model prepared with its entities");
    int32_t q[TSR_EBRM_TQ];
    int qn = tsr_ebrm_tokenize(&m->bpe, query, q, TSR_EBRM_TQ);
    const int32_t **b = calloc((size_t)n + 1, sizeof *b);
    int *bl = calloc((size_t)n + 1, sizeof *bl);
    float *lg = malloc(((size_t)n + 1) * 2 * sizeof *lg);
    TSR_ASSERT(b && bl && lg);
    for (int i = 0; i < n; i++) {
        TSR_ASSERT(ent[i] >= 0 && ent[i] < m->n_ent);
        b[i] = m->ent_tok + (size_t)ent[i] * TSR_EBRM_TE;
        bl[i] = m->ent_len[ent[i]];
    }
    pairs_logits(m, q, qn, b, bl, n, lg);
    for (int i = 0; i < n; i++) r[i] = sigmoidf_(lg[2 * i]), c[i] = sigmoidf_(lg[2 * i + 1]);
    free(b), free(bl), free(lg);
    return tsr_ok();
}

tsr_status tsr_ebrm_model_cross(tsr_ebrm_model *m, const char *query, const char *const *texts, int n, float *p) {
    if (m->kind != TSR_EBRM_KIND_CROSS) return tsr_errorf(TSR_ERR_ARG, "ebrm: not a cross-encoder model");
    int32_t q[TSR_EBRM_TQ];
    int qn = tsr_ebrm_tokenize(&m->bpe, query, q, TSR_EBRM_TQ);
    int32_t *tok = malloc(((size_t)n + 1) * TSR_EBRM_TI * sizeof *tok);
    const int32_t **b = calloc((size_t)n + 1, sizeof *b);
    int *bl = calloc((size_t)n + 1, sizeof *bl);
    float *lg = malloc(((size_t)n + 1) * 2 * sizeof *lg);
    TSR_ASSERT(tok && b && bl && lg);
    for (int i = 0; i < n; i++) {
        b[i] = tok + (size_t)i * TSR_EBRM_TI;
        bl[i] = tsr_ebrm_tokenize(&m->bpe, texts[i], tok + (size_t)i * TSR_EBRM_TI, TSR_EBRM_TI);
    }
    pairs_logits(m, q, qn, b, bl, n, lg);
    for (int i = 0; i < n; i++) p[i] = sigmoidf_(lg[2 * i]);
    free(tok), free(b), free(bl), free(lg);
    return tsr_ok();
}

void tsr_ebrm_mean_forward(float *p, const float *r, const int64_t *off, int32_t n_items, const float *theta) {
    for (int32_t i = 0; i < n_items; i++) {
        int64_t m = off[i + 1] - off[i];
        if (m == 0) {
            p[i] = sigmoidf_(theta[0]);
            continue;
        }
        double s = 0;
        for (int64_t j = off[i]; j < off[i + 1]; j++) s += r[j];
        p[i] = (float)(s / (double)m);
    }
}

void tsr_ebrm_mean_backward(float *dr, float *dtheta, const float *dp, const int64_t *off, int32_t n_items,
                            const float *theta) {
    for (int32_t i = 0; i < n_items; i++) {
        int64_t m = off[i + 1] - off[i];
        if (m == 0) {
            float s = sigmoidf_(theta[0]);
            dtheta[0] += dp[i] * s * (1 - s);
            continue;
        }
        for (int64_t j = off[i]; j < off[i + 1]; j++) dr[j] = dp[i] / (float)m;
    }
}

/* ------------------------------------------------------------- scoring */

float tsr_ebrm_fuse_gated(float p, float g, float alpha, float lex) {
    double q = p < 1e-7f ? 1e-7 : p > 1 - 1e-7f ? 1 - 1e-7 : (double)p;
    return (float)(1.0 / (1.0 + exp(-((double)g * log(q / (1 - q)) + (double)alpha * lex))));
}

float tsr_ebrm_fuse_alpha(float p, float alpha, float lex) { return tsr_ebrm_fuse_gated(p, 1.f, alpha, lex); }

float tsr_ebrm_fuse(const tsr_ebrm_model *m, float p, float lex, float g) {
    return m->fuse ? tsr_ebrm_fuse_gated(p, g, tsr_f32(m->fuse)[0], lex) : p;
}

const char *const tsr_ebrm_gate_feature = "bm25top1/max_bm25";

tsr_status tsr_ebrm_model_set_gate(tsr_ebrm_model *m, float slope, float center) {
    if (!m->fuse) return tsr_errorf(TSR_ERR_ARG, "ebrm: a gate needs a fused model (softlogic-fuse)");
    if (m->gate) return tsr_errorf(TSR_ERR_ARG, "ebrm: the model already has a gate");
    if (!(slope >= -1000 && slope <= 1000) || !(center >= 0 && center <= 1))
        return tsr_errorf(TSR_ERR_ARG, "ebrm: gate slope %g outside [-1000, 1000] or center %g outside [0, 1]", slope,
                          center);
    m->gate = tsr_param_new(&m->qe.params, "agg.gate", TSR_PARAM_NO_DECAY, 1, TSR_SHAPE(2));
    tsr_f32(m->gate)[0] = slope;
    tsr_f32(m->gate)[1] = center;
    return tsr_ok();
}

float tsr_ebrm_top_ratio(const tsr_bm25 *ix, const char *query, float top1) {
    float mx = tsr_bm25_max_score(ix, query);
    if (top1 < 0) {
        int32_t d;
        float best = 0.f;
        top1 = tsr_bm25_search(ix, query, 1, &d, &best, NULL) == 1 ? best : 0.f;
    }
    float v = mx > 0 ? top1 / mx : 0.f;
    return v < 0 ? 0.f : v > 1 ? 1.f : v;
}

float tsr_ebrm_gate(const tsr_ebrm_model *m, float top) {
    if (!m->gate) return 1.f;
    const float *g = tsr_f32(m->gate);
    return (float)(1.0 / (1.0 + exp(-(double)g[0] * ((double)top - (double)g[1]))));
}

const char *const tsr_ebrm_lex_names[2] = {"bm25/max_bm25", "bm25/top1_bm25"};

void tsr_ebrm_lex_ex(const tsr_bm25 *ix, const char *query, int norm, float top1, const int32_t *items,
                     const float *bm25, int n, float *lex) {
    float mx = 0.f;
    if (norm != TSR_EBRM_LEX_TOP1) {
        mx = tsr_bm25_max_score(ix, query);
    } else if (top1 >= 0) {
        mx = top1;
    } else {
        int32_t d;
        float best;
        if (tsr_bm25_search(ix, query, 1, &d, &best, NULL) == 1) mx = best;
    }
    for (int i = 0; i < n; i++) {
        float s = bm25 ? bm25[i] : tsr_bm25_score(ix, query, items[i]);
        float v = mx > 0 ? s / mx : 0.f;
        lex[i] = v < 0 ? 0.f : v > 1 ? 1.f : v;
    }
}

void tsr_ebrm_lex(const tsr_bm25 *ix, const char *query, const int32_t *items, const float *bm25, int n, float *lex) {
    tsr_ebrm_lex_ex(ix, query, TSR_EBRM_LEX_MAX, -1, items, bm25, n, lex);
}

typedef struct {
    tsr_ebrm_model *m;
    const tsr_ebrm_setqe *set;
} qe_over;

static tsr_status qe_with_overrides(void *ud, const char *query, const int32_t *ent, int n, float *r, float *c) {
    qe_over *o = ud;
    tsr_status st = tsr_ebrm_model_qe(o->m, query, ent, n, r, c);
    if (st.code != TSR_OK || !o->set) return st;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < o->set->n; k++)
            if (o->set->ent[k] == ent[i]) r[i] = o->set->r[k];
    return st;
}

tsr_status tsr_ebrm_model_score(tsr_ebrm_model *m, const tsr_catalog *cat, const tsr_ebrm_entities *E,
                                const char *query, int construction, const int32_t *items, int n,
                                tsr_ebrm_cache *cache, const tsr_ebrm_setqe *set, const float *lex, float *p) {
    return tsr_ebrm_model_score_top(m, cat, E, query, construction, items, n, cache, set, lex, -1.f, p);
}

tsr_status tsr_ebrm_model_score_top(tsr_ebrm_model *m, const tsr_catalog *cat, const tsr_ebrm_entities *E,
                                    const char *query, int construction, const int32_t *items, int n,
                                    tsr_ebrm_cache *cache, const tsr_ebrm_setqe *set, const float *lex, float top,
                                    float *p) {
    if (m->kind == TSR_EBRM_KIND_CROSS) {
        char **texts = calloc((size_t)n + 1, sizeof *texts);
        TSR_ASSERT(texts);
        unsigned fields = TSR_F_ALL & ~tsr_qc_hidden(construction);
        for (int i = 0; i < n; i++) texts[i] = tsr_item_text(cat, items[i], fields);
        tsr_status st = tsr_ebrm_model_cross(m, query, (const char *const *)texts, n, p);
        for (int i = 0; i < n; i++) free(texts[i]);
        free(texts);
        return st;
    }
    qe_over o = {m, set && set->n ? set : NULL};
    if (o.set) cache = NULL;
    if (m->agg == TSR_EBRM_AGG_FUSE && !lex)
        return tsr_errorf(TSR_ERR_ARG, "ebrm: a fused model needs the items' lexical match");
    if (m->gate && !(top >= 0 && top <= 1))
        return tsr_errorf(TSR_ERR_ARG, "ebrm: a gated model needs the query's best BM25 match (top in [0, 1])");
    if (m->agg != TSR_EBRM_AGG_MEAN) {
        tsr_status st = tsr_ebrm_score_items(p, E, items, n, construction, query, qe_with_overrides, &o, cache,
                                             tsr_f32(m->theta));
        if (st.code == TSR_OK && m->fuse) {
            float g = tsr_ebrm_gate(m, top);
            for (int i = 0; i < n; i++) p[i] = tsr_ebrm_fuse(m, p[i], lex[i], g);
        }
        return st;
    }
    /* the mean ablation: same QE scores, averaged */
    int64_t *off = malloc(((size_t)n + 1) * sizeof *off), total = 0;
    TSR_ASSERT(off);
    off[0] = 0;
    for (int i = 0; i < n; i++) off[i + 1] = total += tsr_ebrm_item_entities(E, items[i], construction, NULL, 0);
    int32_t *ent = calloc((size_t)total + 1, sizeof *ent);
    float *r = calloc((size_t)total + 1, sizeof *r), *c = calloc((size_t)total + 1, sizeof *c);
    TSR_ASSERT(ent && r && c);
    for (int i = 0; i < n; i++)
        tsr_ebrm_item_entities(E, items[i], construction, ent + off[i], (int)(off[i + 1] - off[i]));
    tsr_status st = qe_with_overrides(&o, query, ent, (int)total, r, c);
    if (st.code == TSR_OK) tsr_ebrm_mean_forward(p, r, off, n, tsr_f32(m->theta));
    free(off), free(ent), free(r), free(c);
    return st;
}

tsr_status tsr_ebrm_model_item_qe(tsr_ebrm_model *m, const tsr_ebrm_entities *E, const char *query,
                                  int construction, int32_t item, const tsr_ebrm_setqe *set, int32_t *ent,
                                  float *r, float *c, int cap, int *count) {
    int k = tsr_ebrm_item_entities(E, item, construction, ent, cap);
    if (k > cap) k = cap;
    *count = k;
    qe_over o = {m, set && set->n ? set : NULL};
    return k ? qe_with_overrides(&o, query, ent, k, r, c) : tsr_ok();
}

typedef struct {
    float p;
    int i;
} rank_key;

static int cmp_rank(const void *a, const void *b) {
    const rank_key *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->i - y->i;
}

void tsr_ebrm_rank_order(const float *p, int n, int *ord) {
    rank_key *k = malloc(((size_t)n + 1) * sizeof *k);
    TSR_ASSERT(k);
    for (int i = 0; i < n; i++) k[i].p = isnan(p[i]) ? -INFINITY : p[i], k[i].i = i;
    qsort(k, (size_t)n, sizeof *k, cmp_rank);
    for (int i = 0; i < n; i++) ord[i] = k[i].i;
    free(k);
}
