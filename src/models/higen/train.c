/* tessera higen: the batch, loss and evaluation of the encoder and the
 * generator on the shared training loop (src/train). */
#include "tessera/higen_train.h"

#include "tessera/safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- encoder */

typedef struct {
    tsr_higen_data *d;
    tsr_benc *m;
    float tau;
    int batch;
    tsr_higen_indexing ix;
    int64_t n_pairs; /* train pairs; ids beyond are indexing examples */
    bool random_neg; /* train pairs: a random non-relevant item instead of the BM25 hard negative */
} benc_run;

static bool rel_has(const tsr_query *q, int32_t item) {
    int lo = 0, hi = q->n_rel - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (q->rel[mid] == item) return true;
        if (q->rel[mid] < item) lo = mid + 1;
        else hi = mid - 1;
    }
    return false;
}

/* one batch's loss over the pairs ids of split sp (the encoder's or the
 * generator's; run is its benc_run or gen_run) */
typedef tsr_tensor *(*batch_loss_fn)(tsr_ctx *c, void *run, int sp, const int32_t *ids, int64_t B);

/* mean loss over the first n pairs of slot sp, in whole fixed batches */
static double slot_loss(batch_loss_fn f, void *run, int batch, int sp, int64_t n) {
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 24);
    c.grad_enabled = false;
    double sum = 0;
    int64_t cnt = 0;
    int32_t *ids = malloc((size_t)batch * sizeof *ids);
    TSR_ASSERT(ids);
    for (int64_t a = 0; a + batch <= n; a += batch) {
        for (int b = 0; b < batch; b++) ids[b] = (int32_t)(a + b);
        tsr_ctx_reset(&c);
        sum += tsr_f32(f(&c, run, sp, ids, batch))[0];
        cnt++;
    }
    free(ids);
    tsr_ctx_free(&c);
    return cnt ? sum / (double)cnt : NAN;
}

/* val_loss over the first 1,024 validation pairs; tune_loss over the first
 * 4,096 tuning pairs when the tuning subset is held out */
static void slot_metrics(tsr_train_metrics *m, const tsr_higen_data *d, batch_loss_fn f, void *run, int batch) {
    int64_t n = d->n_pairs[TSR_SPLIT_VALID], nt = d->n_pairs[TSR_HIGEN_TUNE];
    tsr_train_metric(m, "val_loss", slot_loss(f, run, batch, TSR_SPLIT_VALID, n < 1024 ? n : 1024));
    if (nt > 0) tsr_train_metric(m, "tune_loss", slot_loss(f, run, batch, TSR_HIGEN_TUNE, nt < 4096 ? nt : 4096));
}

/* InfoNCE of pairs[ids] (split sp): queries against their positives then
 * their hard negatives; an item relevant to a query is never its negative.
 * A train id at or beyond n_pairs is an indexing example: a view of item
 * (id - n_pairs)'s own text (tsr_higen_index_view) against the item, with a
 * uniformly drawn item as its extra negative; the same item elsewhere in the
 * batch is not its negative either. */
static tsr_tensor *benc_batch_loss(tsr_ctx *c, void *run, int sp, const int32_t *ids, int64_t B) {
    benc_run *r = run;
    tsr_higen_data *d = r->d;
    int tq = d->tq, ti = d->ti;
    int32_t n_items = d->cat->n_items;
    int32_t *items = malloc((size_t)2 * B * sizeof *items), *qs = malloc((size_t)B * sizeof *qs);
    int32_t *ql = malloc((size_t)B * sizeof *ql), *il = malloc((size_t)2 * B * sizeof *il);
    int32_t *qbuf = calloc((size_t)B * tq, sizeof *qbuf);
    int8_t *view = malloc((size_t)B);
    TSR_ASSERT(items && qs && ql && il && qbuf && view);
    int Tq = 1, Ti = 1;
    for (int64_t b = 0; b < B; b++) {
        int64_t p = ids[b];
        if (sp != TSR_SPLIT_TRAIN || p < r->n_pairs) {
            qs[b] = d->pair_q[sp][p];
            items[b] = d->pair_pos[sp][p];
            items[B + b] = d->pair_neg[sp][p];
            if (sp == TSR_SPLIT_TRAIN && r->random_neg)
                do items[B + b] = (int32_t)tsr_rng_below(&c->rng, (uint32_t)n_items);
                while (rel_has(&d->qs.q[qs[b]], items[B + b]) && n_items > d->qs.q[qs[b]].n_rel);
            ql[b] = d->q_len[qs[b]];
            memcpy(qbuf + (size_t)b * tq, d->q_tok + (size_t)qs[b] * tq, (size_t)ql[b] * sizeof *qbuf);
            view[b] = (int8_t)tsr_higen_view(d->qs.q[qs[b]].construction);
        } else {
            int32_t it = (int32_t)(p - r->n_pairs);
            qs[b] = -1;
            items[b] = it;
            do items[B + b] = (int32_t)tsr_rng_below(&c->rng, (uint32_t)n_items);
            while (items[B + b] == it && n_items > 1);
            ql[b] = tsr_higen_index_view(&c->rng, &r->ix, d->item_tok[0] + (size_t)it * ti, d->item_len[0][it], tq,
                                         qbuf + (size_t)b * tq);
            view[b] = 0;
        }
        Tq = ql[b] > Tq ? ql[b] : Tq;
    }
    for (int64_t j = 0; j < 2 * B; j++) {
        il[j] = d->item_len[view[j % B]][items[j]];
        Ti = il[j] > Ti ? il[j] : Ti;
    }
    tsr_tensor *qt = tsr_new(c, TSR_I32, TSR_DIMS(B, Tq)), *it = tsr_new(c, TSR_I32, TSR_DIMS(2 * B, Ti));
    tsr_tensor *eff = tsr_new(c, TSR_F32, TSR_DIMS(2 * B)), *mask = tsr_new(c, TSR_F32, TSR_DIMS(B, 2 * B));
    for (int64_t b = 0; b < B; b++) memcpy(tsr_i32(qt) + b * Tq, qbuf + (size_t)b * tq, (size_t)Tq * 4);
    for (int64_t j = 0; j < 2 * B; j++) {
        memcpy(tsr_i32(it) + j * Ti, d->item_tok[view[j % B]] + (size_t)items[j] * ti, (size_t)Ti * 4);
        tsr_f32(eff)[j] = d->cat->items[items[j]].efficiency;
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < 2 * B; j++) {
            bool rel = qs[b] >= 0 ? rel_has(&d->qs.q[qs[b]], items[j]) : items[j] == items[b];
            tsr_f32(mask)[b * 2 * B + j] = j != b && rel ? -1e9f : 0.f;
        }
    tsr_tensor *qe = tsr_benc_encode(c, r->m, qt, ql, NULL, NULL);
    tsr_tensor *de = tsr_benc_encode(c, r->m, it, il, eff, NULL);
    tsr_tensor *loss = tsr_benc_infonce(c, qe, de, r->tau, mask);
    free(items);
    free(qs);
    free(ql);
    free(il);
    free(qbuf);
    free(view);
    return loss;
}

static tsr_status benc_step(void *ud, tsr_ctx *c, const int32_t *ids, int64_t n, float *loss) {
    tsr_tensor *l = benc_batch_loss(c, ud, TSR_SPLIT_TRAIN, ids, n);
    *loss = tsr_f32(l)[0];
    tsr_backward(c, l);
    return tsr_ok();
}

static tsr_status benc_eval(void *ud, tsr_train_metrics *m) {
    benc_run *r = ud;
    slot_metrics(m, r->d, benc_batch_loss, r, r->batch);
    return tsr_ok();
}

static tsr_status benc_save(void *ud, const char *path, const char *const *meta, const tsr_train_metrics *ev,
                            bool final) {
    (void)ev;
    (void)final;
    return tsr_params_save(&((benc_run *)ud)->m->params, path, TSR_ST_F32, meta);
}

tsr_status tsr_higen_train_encoder(tsr_higen_data *d, tsr_benc *m, float tau, int batch,
                                   const tsr_higen_indexing *ixo, bool random_neg, const tsr_train_opts *o,
                                   tsr_train_result *res) {
    if (res) memset(res, 0, sizeof *res); /* defined on an early error too (tsr_train_run) */
    benc_run r = {.d = d, .m = m, .tau = tau, .batch = batch, .ix = *ixo, .n_pairs = d->n_pairs[TSR_SPLIT_TRAIN],
                  .random_neg = random_neg};
    char mb[8 * 16], bs[16], taus[32], np[24], tq[16], ti[16], ix[8], span[32], drop[32];
    const char *cfg[16 + 18 + 1];
    tsr_benc_config_kv(&m->cfg, cfg, mb);
    snprintf(bs, sizeof bs, "%d", batch);
    snprintf(taus, sizeof taus, "%g", (double)tau);
    snprintf(np, sizeof np, "%lld", (long long)d->n_pairs[TSR_SPLIT_TRAIN]);
    snprintf(tq, sizeof tq, "%d", d->tq);
    snprintf(ti, sizeof ti, "%d", d->ti);
    snprintf(ix, sizeof ix, "%d", ixo->on);
    snprintf(span, sizeof span, "%g", (double)ixo->span);
    snprintf(drop, sizeof drop, "%g", (double)ixo->drop);
    const char *extra[16] = {"train.batch", bs,   "train.tau",       taus, "data.pairs",      np,  "data.tq", tq,
                             "data.ti",     ti,   "data.indexing",   ix,   "data.index_span", span, "data.index_drop", drop};
    memcpy(cfg + 16, extra, sizeof extra);
    cfg[32] = "train.negative";
    cfg[33] = random_neg ? "random" : "bm25";
    cfg[34] = NULL;
    tsr_train_family f = {.name = "higen encoder", .params = &m->params, .config = cfg,
                          .n_items = r.n_pairs + (ixo->on ? d->cat->n_items : 0), .batch = batch, .unit = "pair",
                          .arena_bytes = (size_t)256 << 20, .ud = &r, .step = benc_step, .eval = benc_eval,
                          .save = benc_save};
    return tsr_train_run(&f, o, res);
}

/* ----------------------------------------------------------- generator */

typedef struct {
    tsr_higen_data *d;
    tsr_higen_gen *g;
    const tsr_higen_trie *t;
    tsr_higen_loss_opts lo;
    tsr_higen_indexing ix;
    int batch;
    int64_t n_pairs; /* train pairs; ids beyond are indexing examples */
    bool keep_best;  /* the weights file ends as the evaluation with the lowest tune_loss */
} gen_run;

int tsr_higen_index_view(tsr_rng *rng, const tsr_higen_indexing *ix, const int32_t *src, int len, int Q,
                         int32_t *out) {
    if (ix->span <= 0 || len <= 2 || Q < 2 || tsr_rng_uniform(rng) >= ix->span) {
        int n = len < Q ? len : Q;
        memcpy(out, src, (size_t)n * sizeof *out);
        return n;
    }
    int maxw = len < Q ? len : Q;
    int w = 2 + (int)tsr_rng_below(rng, (uint32_t)(maxw - 1)); /* 2..maxw */
    int at = (int)tsr_rng_below(rng, (uint32_t)(len - w + 1)), n = 0;
    for (int i = 0; i < w; i++)
        if (ix->drop <= 0 || tsr_rng_uniform(rng) >= ix->drop) out[n++] = src[at + i];
    if (n == 0) out[n++] = src[at + (int)tsr_rng_below(rng, (uint32_t)w)];
    return n;
}

static tsr_tensor *gen_batch_loss(tsr_ctx *c, void *run, int sp, const int32_t *ids, int64_t B) {
    gen_run *r = run;
    tsr_higen_data *d = r->d;
    int Q = r->g->cfg.max_query, tq = d->tq;
    int32_t *qt = calloc((size_t)B * Q, sizeof *qt), *ql = malloc((size_t)B * sizeof *ql),
            *items = malloc((size_t)B * sizeof *items);
    TSR_ASSERT(qt && ql && items);
    for (int64_t b = 0; b < B; b++) {
        int64_t id = ids[b];
        if (sp != TSR_SPLIT_TRAIN || id < r->n_pairs) {
            int32_t q = d->pair_q[sp][id];
            items[b] = d->pair_pos[sp][id];
            int len = d->q_len[q] < Q ? d->q_len[q] : Q;
            memcpy(qt + (size_t)b * Q, d->q_tok + (size_t)q * tq, (size_t)len * sizeof *qt);
            ql[b] = len;
        } else { /* indexing: a view of the item's own text */
            items[b] = (int32_t)(id - r->n_pairs);
            ql[b] = tsr_higen_index_view(&c->rng, &r->ix, d->item_tok[0] + (size_t)items[b] * d->ti, d->item_len[0][items[b]], Q,
                               qt + (size_t)b * Q);
        }
    }
    tsr_tensor *l = tsr_higen_gen_loss(c, r->g, r->t, qt, ql, items, (int)B, &r->lo);
    free(qt);
    free(ql);
    free(items);
    return l;
}

static tsr_status gen_step(void *ud, tsr_ctx *c, const int32_t *ids, int64_t n, float *loss) {
    tsr_tensor *l = gen_batch_loss(c, ud, TSR_SPLIT_TRAIN, ids, n);
    *loss = tsr_f32(l)[0];
    tsr_backward(c, l);
    return tsr_ok();
}

static tsr_status gen_eval(void *ud, tsr_train_metrics *m) {
    gen_run *r = ud;
    slot_metrics(m, r->d, gen_batch_loss, r, r->batch);
    return tsr_ok();
}

/* "d/x.safetensors" -> "d/x.<tag>.safetensors" */
static void sibling_path(const char *path, const char *tag, char *buf, size_t n) {
    size_t L = strlen(path), e = strlen(".safetensors");
    if (L > e && strcmp(path + L - e, ".safetensors") == 0) snprintf(buf, n, "%.*s.%s.safetensors", (int)(L - e), path, tag);
    else snprintf(buf, n, "%s.%s", path, tag);
}

/* the tune_loss stored in a best file, or +inf when there is none */
static double best_on_disk(const char *best) {
    tsr_st_file f;
    if (tsr_st_read(best, &f).code != TSR_OK) return INFINITY;
    const char *v = tsr_st_meta(&f, "higen.tune_loss");
    double x = v ? strtod(v, NULL) : INFINITY;
    tsr_st_free(&f);
    return x == x ? x : INFINITY;
}

/* an atomic copy of a safetensors file (tensors and metadata) */
static tsr_status st_copy(const char *src, const char *dst) {
    tsr_st_file f;
    tsr_status st = tsr_st_read(src, &f);
    if (st.code != TSR_OK) return st;
    tsr_st_writer *w = tsr_st_writer_new();
    for (int i = 0; i < f.n; i++) tsr_st_add(w, f.t[i].name, f.t[i].dtype, f.t[i].ndim, f.t[i].shape, f.t[i].data);
    for (int i = 0; i < f.n_meta; i++) tsr_st_set_meta(w, f.meta_keys[i], f.meta_vals[i]);
    st = tsr_st_write(w, dst);
    tsr_st_writer_free(w);
    tsr_st_free(&f);
    return st;
}

static tsr_status gen_save(void *ud, const char *path, const char *const *meta, const tsr_train_metrics *ev,
                           bool final) {
    gen_run *r = ud;
    double tl = ev ? tsr_train_metric_get(ev, "tune_loss") : NAN;
    if (!r->keep_best || !(tl == tl)) return tsr_params_save(&r->g->params, path, TSR_ST_F32, meta);
    /* keep the evaluation with the lowest tune loss in PATH.best (kept on
     * disk, so a resumed run compares with it too); the end of the run
     * copies it to PATH and the last weights to PATH.last */
    char best[1100], last[1100], tls[32], step[24];
    sibling_path(path, "best", best, sizeof best);
    sibling_path(path, "last", last, sizeof last);
    snprintf(tls, sizeof tls, "%.6f", tl);
    snprintf(step, sizeof step, "%lld", (long long)ev->step);
    int nm = 0;
    while (meta[nm]) nm++;
    const char **m2 = malloc((size_t)(nm + 5) * sizeof *m2);
    TSR_ASSERT(m2);
    memcpy(m2, meta, (size_t)nm * sizeof *m2);
    m2[nm] = "higen.tune_loss", m2[nm + 1] = tls, m2[nm + 2] = "higen.best_step", m2[nm + 3] = step, m2[nm + 4] = NULL;
    tsr_status st = tsr_ok();
    if (tl < best_on_disk(best)) st = tsr_params_save(&r->g->params, best, TSR_ST_F32, m2);
    free(m2);
    if (st.code != TSR_OK) return st;
    if (!final) return tsr_params_save(&r->g->params, path, TSR_ST_F32, meta);
    if ((st = tsr_params_save(&r->g->params, last, TSR_ST_F32, meta)).code != TSR_OK) return st;
    return st_copy(best, path);
}

tsr_status tsr_higen_train_generator(tsr_higen_data *d, tsr_higen_gen *g, const tsr_higen_trie *t,
                                     const tsr_higen_loss_opts *lo, int batch, const tsr_higen_indexing *ixo,
                                     bool keep_best, const tsr_train_opts *o, tsr_train_result *res) {
    if (res) memset(res, 0, sizeof *res); /* defined on an early error too (tsr_train_run) */
    gen_run r = {.d = d, .g = g, .t = t, .lo = *lo, .ix = *ixo, .batch = batch,
                 .n_pairs = d->n_pairs[TSR_SPLIT_TRAIN], .keep_best = keep_best};
    if (keep_best && d->n_pairs[TSR_HIGEN_TUNE] == 0)
        return tsr_errorf(TSR_ERR_ARG, "higen: keeping the best checkpoint needs tune pairs (tsr_higen_data_hold_tune)");
    bool indexing = ixo->on;
    char gb[9 * 16], bs[16], pd[32], sb[32], ix[8], np[24], span[32], drop[32];
    const char *cfg[18 + 16 + 1];
    tsr_higen_gen_config_kv(&g->cfg, cfg, gb);
    snprintf(bs, sizeof bs, "%d", batch);
    snprintf(pd, sizeof pd, "%g", (double)lo->pos_decay);
    snprintf(sb, sizeof sb, "%g", (double)lo->sibling);
    snprintf(ix, sizeof ix, "%d", indexing);
    snprintf(np, sizeof np, "%lld", (long long)r.n_pairs);
    snprintf(span, sizeof span, "%g", (double)ixo->span);
    snprintf(drop, sizeof drop, "%g", (double)ixo->drop);
    const char *extra[14] = {"train.batch", bs, "loss.pos_decay", pd, "loss.sibling", sb, "data.indexing", ix,
                             "data.pairs", np, "data.index_span", span, "data.index_drop", drop};
    memcpy(cfg + 18, extra, sizeof extra);
    cfg[32] = "loss.doc_only";
    cfg[33] = lo->doc_only ? "1" : "0";
    cfg[34] = NULL;
    tsr_train_family f = {.name = "higen generator", .params = &g->params, .config = cfg,
                          .n_items = r.n_pairs + (indexing ? t->n_items : 0), .batch = batch, .unit = "ex",
                          .arena_bytes = (size_t)256 << 20, .ud = &r, .step = gen_step, .eval = gen_eval,
                          .save = gen_save};
    return tsr_train_run(&f, o, res);
}
