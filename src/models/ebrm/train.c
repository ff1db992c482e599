/* tessera ebrm: the batches, losses and evaluations of QE pretraining and
 * QI training (EBRM through the aggregation, or the full-text
 * cross-encoder baseline) on the shared training loop (src/train). */
#include "tessera/ebrm.h"

#include "tessera/ops_elem.h"
#include "tessera/ops_norm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static tsr_status model_save(tsr_ebrm_model *m, const char *path, const char *const *meta,
                             const tsr_train_metrics *ev) {
    const char *kv[64];
    char vals[TSR_TRAIN_MAX_METRICS][32];
    int n = 0;
    for (int i = 0; meta && meta[i] && n < 40; i += 2) kv[n++] = meta[i], kv[n++] = meta[i + 1];
    for (int i = 0; ev && i < ev->n && n < 62; i++) {
        snprintf(vals[i], sizeof vals[i], "%.6g", ev->value[i]);
        kv[n++] = ev->name[i];
        kv[n++] = vals[i];
    }
    kv[n] = NULL;
    return tsr_ebrm_model_save(m, path, kv);
}

/* ------------------------------------------------------ QE pretraining */

typedef struct {
    tsr_ebrm_model *m;
    const tsr_ebrm_qe_data *d;
    int32_t *qtok, *qlen;   /* per pretraining query */
    int64_t *tr, *va;       /* pair indices: training / held out */
    int64_t n_tr, n_va;
    int batch;
} qe_run;

static tsr_tensor *qe_loss(tsr_ctx *c, qe_run *r, const int64_t *pairs, int64_t B) {
    const int32_t **b = malloc((size_t)B * sizeof *b);
    int *bl = malloc((size_t)B * sizeof *bl);
    int32_t *lens = malloc((size_t)B * sizeof *lens);
    TSR_ASSERT(b && bl && lens);
    int T = 1;
    for (int64_t i = 0; i < B; i++) {
        const tsr_ebrm_qe_pair *p = &r->d->pairs[pairs[i]];
        int L = r->qlen[p->query] + 1 + r->m->ent_len[p->entity];
        T = L > T ? L : T;
    }
    tsr_tensor *tok = tsr_zeros(c, TSR_I32, TSR_DIMS(B, T)), *y = tsr_new(c, TSR_F32, TSR_DIMS(B, 1));
    for (int64_t i = 0; i < B; i++) {
        const tsr_ebrm_qe_pair *p = &r->d->pairs[pairs[i]];
        lens[i] = tsr_ebrm_pair(r->m, r->qtok + (size_t)p->query * TSR_EBRM_TQ, r->qlen[p->query],
                                r->m->ent_tok + (size_t)p->entity * TSR_EBRM_TE, r->m->ent_len[p->entity],
                                tsr_i32(tok) + i * T);
        tsr_f32(y)[i] = p->target;
    }
    tsr_tensor *lg = tsr_ebrm_qe_logits(c, &r->m->qe, tok, lens);
    tsr_tensor *l = tsr_bce_with_logits(c, tsr_slice(c, lg, 1, 0, 1), y, NULL, 1.f, 1.f);
    free(b), free(bl), free(lens);
    return l;
}

static tsr_status qe_step(void *ud, tsr_ctx *c, const int32_t *ids, int64_t n, float *loss) {
    qe_run *r = ud;
    int64_t *pairs = malloc((size_t)n * sizeof *pairs);
    TSR_ASSERT(pairs);
    for (int64_t i = 0; i < n; i++) pairs[i] = r->tr[ids[i]];
    tsr_tensor *l = qe_loss(c, r, pairs, n);
    free(pairs);
    *loss = tsr_f32(l)[0];
    tsr_backward(c, l);
    return tsr_ok();
}

static tsr_status qe_eval(void *ud, tsr_train_metrics *mt) {
    qe_run *r = ud;
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 24);
    c.grad_enabled = false;
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t a = 0; a < r->n_va; a += r->batch) {
        int64_t B = r->n_va - a < r->batch ? r->n_va - a : r->batch;
        tsr_ctx_reset(&c);
        sum += (double)tsr_f32(qe_loss(&c, r, r->va + a, B))[0] * (double)B;
        cnt += B;
    }
    tsr_ctx_free(&c);
    tsr_train_metric(mt, "val_loss", cnt ? sum / (double)cnt : NAN);
    return tsr_ok();
}

static tsr_status qe_save(void *ud, const char *path, const char *const *meta, const tsr_train_metrics *ev,
                          bool final) {
    (void)final;
    return model_save(((qe_run *)ud)->m, path, meta, ev);
}

tsr_status tsr_ebrm_train_qe(tsr_ebrm_model *m, const tsr_ebrm_entities *E, const tsr_ebrm_qe_data *d, int batch,
                             const tsr_train_opts *o, tsr_train_result *res) {
    if (res) memset(res, 0, sizeof *res); /* defined on an early error too (tsr_train_run) */
    if (m->kind != TSR_EBRM_KIND_EBRM) return tsr_errorf(TSR_ERR_ARG, "QE pretraining needs an EBRM model");
    if (!m->ent_tok || m->n_ent != E->n) tsr_ebrm_model_prepare(m, E);
    qe_run r = {.m = m, .d = d, .batch = batch};
    r.qtok = calloc((size_t)d->n_queries * TSR_EBRM_TQ + 1, sizeof *r.qtok);
    r.qlen = malloc(((size_t)d->n_queries + 1) * sizeof *r.qlen);
    r.tr = malloc(((size_t)d->n + 1) * sizeof *r.tr);
    r.va = malloc(((size_t)d->n / 16 + 2) * sizeof *r.va);
    TSR_ASSERT(r.qtok && r.qlen && r.tr && r.va);
    for (int32_t q = 0; q < d->n_queries; q++)
        r.qlen[q] = tsr_ebrm_tokenize(&m->bpe, d->queries[q], r.qtok + (size_t)q * TSR_EBRM_TQ, TSR_EBRM_TQ);
    for (int64_t i = 0; i < d->n; i++) {
        if (i % 16 == 0 && r.n_va < 2048) r.va[r.n_va++] = i;
        else r.tr[r.n_tr++] = i;
    }
    char kvbuf[16 * TSR_EBRM_CFG_KV], bs[16], np[24];
    const char *cfg[2 * TSR_EBRM_CFG_KV + 6 + 1];
    tsr_ebrm_model_config_kv(m, cfg, kvbuf);
    snprintf(bs, sizeof bs, "%d", batch);
    snprintf(np, sizeof np, "%lld", (long long)r.n_tr);
    const char *extra[6] = {"train.stage", "qe", "train.batch", bs, "data.qe_pairs", np};
    memcpy(cfg + 2 * TSR_EBRM_CFG_KV, extra, sizeof extra);
    cfg[2 * TSR_EBRM_CFG_KV + 6] = NULL;
    tsr_train_family f = {.name = "ebrm qe", .params = &m->qe.params, .config = cfg, .n_items = r.n_tr,
                          .batch = batch, .unit = "pair", .arena_bytes = (size_t)64 << 20, .ud = &r,
                          .step = qe_step, .eval = qe_eval, .save = qe_save};
    tsr_status st = tsr_train_run(&f, o, res);
    free(r.qtok), free(r.qlen), free(r.tr), free(r.va);
    return st;
}

/* -------------------------------------------------------- QI training */

typedef struct {
    tsr_ebrm_model *m;
    const tsr_ebrm_qi_train *t;
    int32_t *train_q;  /* indices into t->tr with at least one relevant candidate */
    int64_t n_train;
} qi_run;

/* BCE of p against y (mean over n); dp = dL/dp. p is clamped away from 0
 * and 1 (no gradient through the clamp). */
static double bce_p(const float *p, const uint8_t *y, int64_t n, float *dp) {
    const double eps = 1e-6;
    double l = 0;
    for (int64_t i = 0; i < n; i++) {
        double q = p[i];
        bool clamped = q < eps || q > 1 - eps;
        q = q < eps ? eps : q > 1 - eps ? 1 - eps : q;
        l -= y[i] ? log(q) : log(1 - q);
        dp[i] = clamped ? 0.f : (float)((y[i] ? -1.0 / q : 1.0 / (1 - q)) / (double)n);
    }
    return l / (double)n;
}

/* A candidate's lexical match: its BM25 score over the query's maximum. */
static float cand_lex(const tsr_ebrm_qi *q, int i) {
    float v = q->bm25_max > 0 ? q->bm25[i] / q->bm25_max : 0.f;
    return v < 0 ? 0.f : v > 1 ? 1.f : v;
}

/* The items of one training query for this step: its relevant candidates
 * (at most 8) then n_neg non-relevant ones drawn without replacement. */
static int pick_items(tsr_rng *rng, const tsr_ebrm_qi *q, int n_neg, int32_t *items, uint8_t *y) {
    int k = 0, npos = 0;
    int32_t *neg = malloc(((size_t)q->n + 1) * sizeof *neg);
    TSR_ASSERT(neg);
    int nn = 0;
    for (int i = 0; i < q->n; i++) {
        if (q->label[i] && npos < 8) items[k] = q->cand[i], y[k++] = 1, npos++;
        else if (!q->label[i]) neg[nn++] = q->cand[i];
    }
    for (int j = 0; j < n_neg && nn > 0; j++) {
        int pick = (int)tsr_rng_below(rng, (uint32_t)nn);
        items[k] = neg[pick], y[k++] = 0;
        neg[pick] = neg[--nn];
    }
    free(neg);
    return k;
}

/* EBRM's QI loss: the distinct (query, entity) pairs of the step's items
 * go through the QE model on the tape; r, c, the aggregation and the BCE
 * are computed outside it, and their gradient enters the tape at the
 * logits (tsr_backward_with). */
typedef struct {
    tsr_ebrm_model *m;
    const tsr_ebrm_qi_train *t;
} qi_ctx;

/* A step's items: each query's relevant and sampled non-relevant
 * candidates (pick_items), their labels y and the batch row of their
 * query; returns how many. The caller frees the three arrays. */
static int sample_items(tsr_rng *rng, const tsr_ebrm_qi_train *t, const int32_t *qids, int64_t B, int32_t **items,
                        int32_t **item_q, uint8_t **y) {
    int cap_items = (int)B * (8 + t->n_neg);
    *items = malloc((size_t)cap_items * sizeof **items);
    *item_q = malloc((size_t)cap_items * sizeof **item_q);
    *y = malloc((size_t)cap_items);
    TSR_ASSERT(*items && *item_q && *y);
    int ni = 0;
    for (int64_t b = 0; b < B; b++) {
        int k = pick_items(rng, &t->tr->q[qids[b]], t->n_neg, *items + ni, *y + ni);
        for (int j = 0; j < k; j++) (*item_q)[ni + j] = (int32_t)b;
        ni += k;
    }
    return ni;
}

/* The auxiliary QE loss of a QI step (tsr_ebrm_qi_train.aux): the mean
 * BCE-with-logits of r against the targets of aux_batch pairs drawn from
 * c->rng, as in QE pretraining. Returns the (1) loss tensor on the tape. */
static tsr_tensor *aux_loss(tsr_ctx *c, tsr_ebrm_model *m, const tsr_ebrm_qi_train *t) {
    const tsr_ebrm_qe_data *d = t->aux;
    const int B = t->aux_batch > 0 ? t->aux_batch : 64, W = TSR_EBRM_TQ + 1 + TSR_EBRM_TE;
    int32_t *tok = calloc((size_t)B * W, sizeof *tok), *lens = malloc((size_t)B * sizeof *lens), qt[TSR_EBRM_TQ];
    TSR_ASSERT(tok && lens);
    tsr_tensor *y = tsr_new(c, TSR_F32, TSR_DIMS(B, 1));
    int T = 1;
    for (int i = 0; i < B; i++) {
        const tsr_ebrm_qe_pair *p = &d->pairs[tsr_rng_below(&c->rng, (uint32_t)d->n)];
        int qn = tsr_ebrm_tokenize(&m->bpe, d->queries[p->query], qt, TSR_EBRM_TQ);
        lens[i] = tsr_ebrm_pair(m, qt, qn, m->ent_tok + (size_t)p->entity * TSR_EBRM_TE, m->ent_len[p->entity],
                                tok + (size_t)i * W);
        T = lens[i] > T ? lens[i] : T;
        tsr_f32(y)[i] = p->target;
    }
    tsr_tensor *tt = tsr_zeros(c, TSR_I32, TSR_DIMS(B, T));
    for (int i = 0; i < B; i++) memcpy(tsr_i32(tt) + (size_t)i * T, tok + (size_t)i * W, (size_t)lens[i] * sizeof *tok);
    tsr_tensor *lg = tsr_ebrm_qe_logits(c, &m->qe, tt, lens);
    tsr_tensor *l = tsr_bce_with_logits(c, tsr_slice(c, lg, 1, 0, 1), y, NULL, 1.f, 1.f);
    free(tok), free(lens);
    return l;
}

/* The QI loss from the pairs' logits (include/tessera/ebrm.h): r, c, the
 * aggregation and the BCE outside the tape; backward: one pass over the
 * tape, the aggregation's gradient entering at the logits. */
float tsr_ebrm_qi_agg_loss(tsr_ctx *c, const tsr_ebrm_model *m, tsr_tensor *logits, int np, const int32_t *pair_of,
                           const uint8_t *type, const int64_t *off, int32_t ni, const uint8_t *y, tsr_tensor *al,
                           float aux_weight, bool backward, float *p_out) {
    const int64_t total = off[ni];
    float *pr = malloc(((size_t)np + 1) * sizeof *pr), *pc = malloc(((size_t)np + 1) * sizeof *pc);
    float *sr = malloc(((size_t)total + 1) * sizeof *sr), *sc = malloc(((size_t)total + 1) * sizeof *sc);
    float *p = malloc(((size_t)ni + 1) * sizeof *p), *dp = malloc(((size_t)ni + 1) * sizeof *dp);
    TSR_ASSERT(pr && pc && sr && sc && p && dp);
    for (int k = 0; k < np; k++) {
        pr[k] = 1.f / (1.f + expf(-tsr_f32(logits)[2 * k]));
        pc[k] = 1.f / (1.f + expf(-tsr_f32(logits)[2 * k + 1]));
    }
    for (int64_t j = 0; j < total; j++) sr[j] = pr[pair_of[j]], sc[j] = pc[pair_of[j]];
    const float *theta = tsr_f32(m->theta);
    if (m->agg == TSR_EBRM_AGG_SOFTLOGIC) tsr_ebrm_agg_forward(p, sr, sc, type, off, ni, theta);
    else tsr_ebrm_mean_forward(p, sr, off, ni, theta);
    float loss = (float)bce_p(p, y, ni, dp);
    if (al) loss += aux_weight * tsr_f32(al)[0];
    if (backward) {
        float *dr = calloc((size_t)total + 1, sizeof *dr), *dc = calloc((size_t)total + 1, sizeof *dc);
        TSR_ASSERT(dr && dc);
        float *dtheta = m->theta->grad;
        TSR_ASSERT(dtheta);
        if (m->agg == TSR_EBRM_AGG_SOFTLOGIC) tsr_ebrm_agg_backward(dr, dc, dtheta, dp, sr, sc, type, off, ni, theta);
        else tsr_ebrm_mean_backward(dr, dtheta, dp, off, ni, theta);
        if (logits) {
            float *g = calloc((size_t)np * 2, sizeof *g);
            TSR_ASSERT(g);
            for (int64_t j = 0; j < total; j++) {
                int k = pair_of[j];
                g[2 * k] += dr[j] * pr[k] * (1 - pr[k]);
                g[2 * k + 1] += dc[j] * pc[k] * (1 - pc[k]);
            }
            if (al) tsr_grad(c, al)[0] += aux_weight; /* seeded before the single pass over the tape */
            tsr_backward_with(c, logits, g);
            free(g);
        } else if (al) {
            tsr_backward_with(c, al, &aux_weight);
        }
        free(dr), free(dc);
    }
    if (p_out) memcpy(p_out, p, (size_t)ni * sizeof *p);
    free(pr), free(pc), free(sr), free(sc), free(p), free(dp);
    return loss;
}

static tsr_tensor *qi_step_ebrm(tsr_ctx *c, qi_ctx *r, const int32_t *qids, int64_t B, float *loss, bool backward) {
    const tsr_ebrm_qi_train *t = r->t;
    const tsr_ebrm_entities *E = t->E;
    int32_t *items, *item_q;
    uint8_t *y;
    const int ni = sample_items(&c->rng, t, qids, B, &items, &item_q, &y);
    /* slots and distinct (query, entity) pairs */
    int64_t *off = malloc(((size_t)ni + 1) * sizeof *off), total = 0;
    TSR_ASSERT(off);
    off[0] = 0;
    for (int i = 0; i < ni; i++) {
        int cons = t->qs->q[t->tr->q[qids[item_q[i]]].query].construction;
        off[i + 1] = total += tsr_ebrm_item_entities(E, items[i], cons, NULL, 0);
    }
    int32_t *ent = malloc(((size_t)total + 1) * sizeof *ent), *pair_of = malloc(((size_t)total + 1) * sizeof *pair_of);
    int32_t *seen = malloc(((size_t)E->n + 1) * sizeof *seen);
    uint8_t *type = malloc((size_t)total + 1);
    int32_t *p_ent = malloc(((size_t)total + 1) * sizeof *p_ent), *p_q = malloc(((size_t)total + 1) * sizeof *p_q);
    TSR_ASSERT(ent && pair_of && seen && type && p_ent && p_q);
    int np = 0;
    for (int64_t b = 0; b < B; b++) {
        for (int32_t e = 0; e < E->n; e++) seen[e] = -1;
        for (int i = 0; i < ni; i++) {
            if (item_q[i] != b) continue;
            int cons = t->qs->q[t->tr->q[qids[b]].query].construction;
            tsr_ebrm_item_entities(E, items[i], cons, ent + off[i], (int)(off[i + 1] - off[i]));
            for (int64_t j = off[i]; j < off[i + 1]; j++) {
                int32_t e = ent[j];
                if (seen[e] < 0) seen[e] = np, p_ent[np] = e, p_q[np] = (int32_t)b, np++;
                pair_of[j] = seen[e];
                type[j] = E->type[e];
            }
        }
    }
    /* the pairs' tokens */
    int32_t *lens = malloc(((size_t)np + 1) * sizeof *lens), qt[TSR_EBRM_TQ];
    TSR_ASSERT(lens);
    int T = 1;
    int32_t *qtok = malloc((size_t)B * TSR_EBRM_TQ * sizeof *qtok), *qlen = malloc((size_t)B * sizeof *qlen);
    TSR_ASSERT(qtok && qlen);
    for (int64_t b = 0; b < B; b++) {
        qlen[b] = tsr_ebrm_tokenize(&r->m->bpe, t->qs->q[t->tr->q[qids[b]].query].text, qt, TSR_EBRM_TQ);
        memcpy(qtok + b * TSR_EBRM_TQ, qt, sizeof qt);
    }
    for (int k = 0; k < np; k++) T = qlen[p_q[k]] + 1 + r->m->ent_len[p_ent[k]] > T ? qlen[p_q[k]] + 1 + r->m->ent_len[p_ent[k]] : T;
    tsr_tensor *logits = NULL;
    if (np > 0) {
        tsr_tensor *tok = tsr_zeros(c, TSR_I32, TSR_DIMS(np, T));
        for (int k = 0; k < np; k++)
            lens[k] = tsr_ebrm_pair(r->m, qtok + (size_t)p_q[k] * TSR_EBRM_TQ, qlen[p_q[k]],
                                    r->m->ent_tok + (size_t)p_ent[k] * TSR_EBRM_TE, r->m->ent_len[p_ent[k]],
                                    tsr_i32(tok) + (size_t)k * T);
        logits = tsr_ebrm_qe_logits(c, &r->m->qe, tok, lens);
    }
    /* the auxiliary QE loss, on the same tape (one backward pass below) */
    tsr_tensor *al = t->aux && t->aux_weight > 0 && t->aux->n > 0 ? aux_loss(c, r->m, t) : NULL;
    *loss = tsr_ebrm_qi_agg_loss(c, r->m, logits, np, pair_of, type, off, ni, y, al, t->aux_weight, backward, NULL);
    free(items), free(item_q), free(y), free(off), free(ent), free(pair_of), free(seen), free(type), free(p_ent),
        free(p_q), free(lens), free(qtok), free(qlen);
    return logits;
}

static tsr_status qi_step_cross(tsr_ctx *c, qi_run *r, const int32_t *qids, int64_t B, float *loss) {
    const tsr_ebrm_qi_train *t = r->t;
    int32_t *items, *item_q;
    uint8_t *y;
    const int ni = sample_items(&c->rng, t, qids, B, &items, &item_q, &y);
    int32_t *tok = calloc((size_t)ni * (TSR_EBRM_TQ + 1 + TSR_EBRM_TI), sizeof *tok), *lens = malloc((size_t)ni * sizeof *lens);
    int32_t qt[TSR_EBRM_TQ], it[TSR_EBRM_TI];
    TSR_ASSERT(tok && lens);
    const int W = TSR_EBRM_TQ + 1 + TSR_EBRM_TI;
    int T = 1;
    for (int i = 0; i < ni; i++) {
        const tsr_query *q = &t->qs->q[t->tr->q[qids[item_q[i]]].query];
        int qn = tsr_ebrm_tokenize(&r->m->bpe, q->text, qt, TSR_EBRM_TQ);
        char *text = tsr_item_text(t->cat, items[i], TSR_F_ALL & ~tsr_qc_hidden(q->construction));
        int in = tsr_ebrm_tokenize(&r->m->bpe, text, it, TSR_EBRM_TI);
        free(text);
        lens[i] = tsr_ebrm_pair(r->m, qt, qn, it, in, tok + (size_t)i * W);
        T = lens[i] > T ? lens[i] : T;
    }
    tsr_tensor *tt = tsr_zeros(c, TSR_I32, TSR_DIMS(ni, T)), *yy = tsr_new(c, TSR_F32, TSR_DIMS(ni, 1));
    for (int i = 0; i < ni; i++) {
        memcpy(tsr_i32(tt) + (size_t)i * T, tok + (size_t)i * W, (size_t)lens[i] * sizeof *tok);
        tsr_f32(yy)[i] = y[i];
    }
    tsr_tensor *lg = tsr_ebrm_qe_logits(c, &r->m->qe, tt, lens);
    tsr_tensor *l = tsr_bce_with_logits(c, tsr_slice(c, lg, 1, 0, 1), yy, NULL, 1.f, 1.f);
    *loss = tsr_f32(l)[0];
    tsr_backward(c, l);
    free(items), free(item_q), free(y), free(tok), free(lens);
    return tsr_ok();
}

void tsr_ebrm_qi_loss(tsr_ctx *c, tsr_ebrm_model *m, const tsr_ebrm_qi_train *t, const int32_t *qids, int B,
                      bool backward, float *loss) {
    qi_ctx x = {m, t};
    qi_step_ebrm(c, &x, qids, B, loss, backward);
}

static tsr_status qi_step(void *ud, tsr_ctx *c, const int32_t *ids, int64_t n, float *loss) {
    qi_run *r = ud;
    int32_t *qids = malloc((size_t)n * sizeof *qids);
    TSR_ASSERT(qids);
    for (int64_t i = 0; i < n; i++) qids[i] = r->train_q[ids[i]];
    tsr_status st = tsr_ok();
    qi_ctx x = {r->m, r->t};
    if (r->m->kind == TSR_EBRM_KIND_EBRM) qi_step_ebrm(c, &x, qids, n, loss, true);
    else st = qi_step_cross(c, r, qids, n, loss);
    free(qids);
    return st;
}

static tsr_status qi_eval(void *ud, tsr_train_metrics *mt) {
    qi_run *r = ud;
    const tsr_ebrm_qi_train *t = r->t;
    tsr_metric_acc acc = {0};
    double auc = 0;
    int auc_n = 0;
    int nq = t->va->n < 64 ? t->va->n : 64;
    tsr_status st = tsr_ok();
    for (int i = 0; i < nq && st.code == TSR_OK; i++) {
        const tsr_ebrm_qi *qi = &t->va->q[i];
        const tsr_query *q = &t->qs->q[qi->query];
        float *p = malloc(((size_t)qi->n + 1) * sizeof *p);
        int *ord = malloc(((size_t)qi->n + 1) * sizeof *ord);
        int32_t *ranked = malloc(((size_t)qi->n + 1) * sizeof *ranked);
        float *lex = malloc(((size_t)qi->n + 1) * sizeof *lex);
        TSR_ASSERT(p && ord && ranked && lex);
        for (int k = 0; k < qi->n; k++) lex[k] = cand_lex(qi, k);
        st = tsr_ebrm_model_score(r->m, t->cat, t->E, q->text, q->construction, qi->cand, qi->n, NULL, NULL, lex, p);
        free(lex);
        if (st.code == TSR_OK) {
            tsr_ebrm_rank_order(p, qi->n, ord);
            for (int k = 0; k < qi->n; k++) ranked[k] = qi->cand[ord[k]];
            tsr_metric_add(&acc, ranked, qi->n, q->rel, q->n_rel);
            double a = tsr_auc(p, qi->label, qi->n, NULL);
            if (!isnan(a)) auc += a, auc_n++;
        }
        free(p), free(ord), free(ranked);
    }
    if (st.code != TSR_OK) return st;
    tsr_rank_metrics rm = tsr_metric_mean(&acc);
    tsr_train_metric(mt, "val_ndcg10", rm.ndcg10);
    tsr_train_metric(mt, "val_auc", auc_n ? auc / auc_n : NAN);
    return tsr_ok();
}

static tsr_status qi_save(void *ud, const char *path, const char *const *meta, const tsr_train_metrics *ev,
                          bool final) {
    (void)final;
    return model_save(((qi_run *)ud)->m, path, meta, ev);
}

tsr_status tsr_ebrm_train_qi(tsr_ebrm_model *m, const tsr_ebrm_qi_train *t, const tsr_train_opts *o,
                             tsr_train_result *res) {
    if (res) memset(res, 0, sizeof *res); /* defined on an early error too (tsr_train_run) */
    if (m->fuse) return tsr_errorf(TSR_ERR_ARG, "ebrm training: a fused model is trained before its fusion");
    if (m->kind == TSR_EBRM_KIND_EBRM && (!m->ent_tok || m->n_ent != t->E->n)) tsr_ebrm_model_prepare(m, t->E);
    qi_run r = {.m = m, .t = t};
    r.train_q = malloc(((size_t)t->tr->n + 1) * sizeof *r.train_q);
    TSR_ASSERT(r.train_q);
    for (int32_t i = 0; i < t->tr->n; i++)
        if (t->tr->q[i].n_pos > 0) r.train_q[r.n_train++] = i;
    if (r.n_train < t->batch) {
        free(r.train_q);
        return tsr_errorf(TSR_ERR_ARG, "ebrm training: %lld train queries with a relevant candidate, fewer than "
                                       "one batch of %d", (long long)r.n_train, t->batch);
    }
    char kvbuf[16 * TSR_EBRM_CFG_KV], bs[16], nn[16], nq[24], aw[24], an[24];
    const char *cfg[2 * TSR_EBRM_CFG_KV + 12 + 1];
    tsr_ebrm_model_config_kv(m, cfg, kvbuf);
    snprintf(bs, sizeof bs, "%d", t->batch);
    snprintf(nn, sizeof nn, "%d", t->n_neg);
    snprintf(nq, sizeof nq, "%lld", (long long)r.n_train);
    const char *extra[8] = {"train.stage", "qi", "train.batch", bs, "train.negatives", nn, "data.qi_queries", nq};
    memcpy(cfg + 2 * TSR_EBRM_CFG_KV, extra, sizeof extra);
    cfg[2 * TSR_EBRM_CFG_KV + 8] = NULL;
    if (m->kind == TSR_EBRM_KIND_EBRM && t->aux && t->aux_weight > 0 && t->aux->n > 0) {
        /* recorded only when set: the recipe's metadata stays as it was */
        snprintf(aw, sizeof aw, "%g", (double)t->aux_weight);
        snprintf(an, sizeof an, "%lld", (long long)t->aux->n);
        const char *ax[4] = {"train.qe_aux_weight", aw, "data.qe_aux_pairs", an};
        memcpy(cfg + 2 * TSR_EBRM_CFG_KV + 8, ax, sizeof ax);
        cfg[2 * TSR_EBRM_CFG_KV + 12] = NULL;
    }
    tsr_train_family f = {.name = m->kind == TSR_EBRM_KIND_EBRM ? "ebrm qi" : "ebrm cross-encoder",
                          .params = &m->qe.params, .config = cfg, .n_items = r.n_train, .batch = t->batch,
                          .unit = "query", .arena_bytes = (size_t)256 << 20, .ud = &r, .step = qi_step,
                          .eval = qi_eval, .save = qi_save};
    tsr_status st = tsr_train_run(&f, o, res);
    free(r.train_q);
    return st;
}
