/* tessera elm: training loop of the generators on cached tokenizer codes
 * (`tessera elm encode --split train`): AR next-code prediction or masked
 * prediction with the cosine masking schedule of MaskGIT, class label
 * dropped to the null class with probability label_drop (classifier-free
 * guidance, Ho & Salimans 2022), AdamW with warmup + cosine, gradient
 * clipping, atomic checkpoints and exact resume (data order from (seed,
 * epoch); rng, moments and cursor in the state file). */
#include "tessera/elm.h"

#include "tessera/ops.h"
#include "tessera/fileio.h"
#include "tessera/safetensors.h"

#include <math.h>
#include <string.h>

tsr_elm_train_opts tsr_elm_default_train_opts(void) {
    tsr_elm_train_opts o;
    memset(&o, 0, sizeof o);
    o.cfg = (tsr_elm_cfg){.kind = TSR_ELM_AR, .tok = TSR_IMGTOK_BAE, .bits = 16, .codebook = 0,
                          .n_sub = 2, .dim = 64, .n_layers = 2, .n_heads = 4, .hidden = 176,
                          .rope_theta = 100.0f};
    o.batch = 64;
    o.label_drop = 0.1f;
    o.train = tsr_train_default_opts();
    o.train.out = "elm_gen.safetensors";
    o.train.epochs = 2;
    o.train.lr = 2e-3f;
    o.train.min_lr = 1e-4f;
    o.train.weight_decay = 0.05f;
    o.train.beta2 = 0.95f;
    o.train.clip = 1.0f;
    o.train.warmup = 100;
    o.train.ckpt_every = 500;
    o.train.log_every = 100;
    o.train.seed = 1;
    return o;
}

/* loads codes (bits or ids) + labels and checks them against the model */
static tsr_status load_codes(const char *path, const tsr_elm_model *m, int64_t limit, int32_t **sub,
                             int32_t **labels, int64_t *n_out) {
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    const bool bae = m->cfg.tok == TSR_IMGTOK_BAE;
    const tsr_st_tensor *t = tsr_st_find(&f, bae ? "bits" : "ids"), *l = tsr_st_find(&f, "labels");
    if (!t || !l || t->dtype != (bae ? TSR_ST_U8 : TSR_ST_I32) || t->ndim != (bae ? 4 : 3) ||
        t->shape[1] != 7 || t->shape[2] != 7 || (bae && t->shape[3] != m->cfg.bits) ||
        l->dtype != TSR_ST_I32 || l->ndim != 1 || l->shape[0] != t->shape[0] || t->shape[0] < 1) {
        tsr_st_free(&f);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: expected '%s' (N,7,7%s) and 'labels' I32 (N) from "
                          "'tessera elm encode' with a %s tokenizer", path, bae ? "bits" : "ids",
                          bae ? ",K" : "", bae ? "BAE (K bits)" : "VQ");
    }
    int64_t n = limit > 0 && limit < t->shape[0] ? limit : t->shape[0];
    *sub = malloc(sizeof(int32_t) * (size_t)(n * TSR_ELM_POS * m->cfg.n_sub));
    *labels = malloc(sizeof(int32_t) * (size_t)n);
    int32_t *ids = bae ? NULL : malloc(sizeof(int32_t) * (size_t)(n * TSR_ELM_POS));
    TSR_ASSERT(*sub && *labels);
    if (!bae) memcpy(ids, t->data, sizeof(int32_t) * (size_t)(n * TSR_ELM_POS));
    memcpy(*labels, l->data, sizeof(int32_t) * (size_t)n);
    bool ok = true;
    for (int64_t i = 0; i < n; i++) ok &= (*labels)[i] >= 0 && (*labels)[i] < TSR_ELM_CLASSES;
    const uint8_t *bits = bae ? t->data : NULL;
    for (int64_t i = 0; bae && i < n * TSR_ELM_POS * m->cfg.bits; i++) ok &= bits[i] <= 1;
    for (int64_t i = 0; !bae && i < n * TSR_ELM_POS; i++) ok &= ids[i] >= 0 && ids[i] < m->cfg.codebook;
    if (ok) tsr_elm_split_codes(m, bits, ids, n, *sub);
    free(ids);
    tsr_st_free(&f);
    if (!ok) {
        free(*sub), free(*labels);
        *sub = *labels = NULL;
        return tsr_errorf(TSR_ERR_FORMAT, "%s: codes or labels out of range for this model", path);
    }
    *n_out = n;
    return tsr_ok();
}

tsr_status tsr_elm_load_codes(const char *path, const tsr_elm_model *m, int64_t limit, int32_t **sub,
                              int32_t **labels, int64_t *n) {
    return load_codes(path, m, limit, sub, labels, n);
}

typedef struct {
    const tsr_elm_train_opts *o;
    tsr_elm_model m;
    int32_t *sub, *labels;
    int32_t *bsub, *blab;
    uint8_t *mask;
    float nll;
    double prev_sec, t0; /* wall time of earlier invocations, for the report */
} run;

/* a batch of codes with labels dropped to the null class (CFG) and, for
 * the masked model, a cosine-schedule mask; all draws from the step rng */
static tsr_status step(void *ud, tsr_ctx *c, const int32_t *ids, int64_t b, float *loss_v) {
    run *r = ud;
    const int S = r->m.cfg.n_sub, P = TSR_ELM_POS;
    int32_t perm[TSR_ELM_POS];
    for (int64_t i = 0; i < b; i++) {
        memcpy(r->bsub + i * P * S, r->sub + (int64_t)ids[i] * P * S, sizeof(int32_t) * P * S);
        r->blab[i] = tsr_rng_uniform(&c->rng) < r->o->label_drop ? TSR_ELM_CLASSES : r->labels[ids[i]];
        if (r->m.cfg.kind == TSR_ELM_MLM) {
            int k = tsr_elm_mask_count(tsr_rng_uniform(&c->rng), P);
            for (int p = 0; p < P; p++) perm[p] = p;
            for (int p = 0; p < k; p++) { /* partial Fisher-Yates: k random positions */
                int q = p + (int)tsr_rng_below(&c->rng, (uint32_t)(P - p));
                int32_t t = perm[p];
                perm[p] = perm[q], perm[q] = t;
            }
            memset(r->mask + i * P, 0, P);
            for (int p = 0; p < k; p++) r->mask[i * P + perm[p]] = 1;
        }
    }
    tsr_tensor *loss = tsr_elm_loss(c, &r->m, r->bsub, r->blab, r->mask, b, &r->nll);
    *loss_v = tsr_f32(loss)[0];
    tsr_backward(c, loss);
    return tsr_ok();
}

static void step_metrics(void *ud, tsr_train_metrics *m) {
    tsr_train_metric(m, "nll", ((run *)ud)->nll);
}

static tsr_status save(void *ud, const char *path, const char *const *meta, const tsr_train_metrics *ev,
                       bool final) {
    (void)ev, (void)final;
    run *r = ud;
    const char *kv[160];
    int n = 0;
    for (; meta[n] && n < 156; n++) kv[n] = meta[n];
    char sec[32];
    snprintf(sec, sizeof sec, "%.1f", r->prev_sec + tsr_time() - r->t0);
    kv[n++] = "train.seconds", kv[n++] = sec;
    kv[n] = NULL;
    return tsr_elm_save(&r->m, path, kv);
}

tsr_status tsr_elm_train(const tsr_elm_train_opts *o, tsr_elm_train_result *res) {
    memset(res, 0, sizeof *res);
    if (o->batch < 1 || !o->codes || !(o->label_drop >= 0 && o->label_drop <= 1))
        return tsr_errorf(TSR_ERR_ARG, "elm train: options out of range");
    run r;
    memset(&r, 0, sizeof r);
    r.o = o;
    int64_t n_train = 0;
    tsr_status st = tsr_output_check(o->train.out);
    if (!st.code) st = tsr_elm_init(&r.m, &o->cfg, o->train.seed);
    if (st.code) return st;
    snprintf(r.m.tokenizer, sizeof r.m.tokenizer, "%s", o->tokenizer ? o->tokenizer : "");
    st = load_codes(o->codes, &r.m, o->train_limit, &r.sub, &r.labels, &n_train);
    if (!st.code && n_train < o->batch)
        st = tsr_errorf(TSR_ERR_ARG, "batch %d is larger than the %lld training images", o->batch,
                        (long long)n_train);
    if (st.code) {
        tsr_elm_free(&r.m);
        free(r.sub), free(r.labels);
        return st;
    }
    if (o->train.resume) { /* the wall time so far, for the report (not part of the trajectory) */
        tsr_st_file f;
        if (!tsr_st_read(o->train.out, &f).code) {
            const char *sec = tsr_st_meta(&f, "train.seconds");
            r.prev_sec = sec ? strtod(sec, NULL) : 0;
            tsr_st_free(&f);
        }
    }
    /* norms and embeddings are not decayed */
    for (int i = 0; i < r.m.params.n; i++)
        if (r.m.params.items[i]->ndim == 1 || strstr(r.m.params.items[i]->name, "embed"))
            r.m.params.flags[i] |= TSR_PARAM_NO_DECAY;
    const tsr_elm_cfg *g = &o->cfg;
    char v[13][40];
    snprintf(v[0], 40, "%d", o->batch);
    snprintf(v[1], 40, "%lld", (long long)n_train);
    snprintf(v[2], 40, "%.9g", (double)o->label_drop);
    snprintf(v[3], 40, "%d", (int)g->kind);
    snprintf(v[4], 40, "%d", (int)g->tok);
    snprintf(v[5], 40, "%d", g->bits);
    snprintf(v[6], 40, "%d", g->codebook);
    snprintf(v[7], 40, "%d", g->n_sub);
    snprintf(v[8], 40, "%d", g->dim);
    snprintf(v[9], 40, "%d", g->n_layers);
    snprintf(v[10], 40, "%d", g->n_heads);
    snprintf(v[11], 40, "%d", g->hidden);
    snprintf(v[12], 40, "%.9g", (double)g->rope_theta);
    const char *cfg[] = {"train.batch", v[0], "train.n_train", v[1], "train.label_drop", v[2],
                         "train.cfg.kind", v[3], "train.cfg.tok", v[4], "train.cfg.bits", v[5],
                         "train.cfg.codebook", v[6], "train.cfg.n_sub", v[7], "train.cfg.dim", v[8],
                         "train.cfg.n_layers", v[9], "train.cfg.n_heads", v[10], "train.cfg.hidden", v[11],
                         "train.cfg.rope_theta", v[12], NULL};
    const int P = TSR_ELM_POS;
    r.bsub = malloc(sizeof(int32_t) * (size_t)o->batch * P * g->n_sub);
    r.blab = malloc(sizeof(int32_t) * (size_t)o->batch);
    r.mask = malloc((size_t)o->batch * P);
    TSR_ASSERT(r.bsub && r.blab && r.mask);
    r.t0 = tsr_time();
    tsr_train_family f = {.name = "elm", .params = &r.m.params, .config = cfg, .n_items = n_train,
                          .batch = o->batch, .unit = "img", .ud = &r, .step = step,
                          .step_metrics = step_metrics, .save = save};
    tsr_train_result tr;
    st = tsr_train_run(&f, &o->train, &tr);
    res->steps = tr.step, res->total = tr.total;
    res->finished = tr.finished, res->interrupted = tr.interrupted;
    res->last_loss = tr.last_loss, res->last_nll = r.nll;
    res->images_per_s = tr.items_per_s, res->seconds = tr.seconds;
    free(r.bsub), free(r.blab), free(r.mask);
    tsr_elm_free(&r.m);
    free(r.sub), free(r.labels);
    return st;
}
