/* tessera elm: training loop of the generators on cached tokenizer codes
 * (`tessera elm encode --split train`): AR next-code prediction or masked
 * prediction with the cosine masking schedule of MaskGIT, class label
 * dropped to the null class with probability label_drop (classifier-free
 * guidance, Ho & Salimans 2022), AdamW with warmup + cosine, gradient
 * clipping, atomic checkpoints and exact resume (data order from (seed,
 * epoch); rng, moments and cursor in the state file). */
#include "tessera/elm.h"

#include "tessera/ops.h"
#include "tessera/optim.h"
#include "tessera/safetensors.h"

#include <math.h>
#include <string.h>

tsr_elm_train_opts tsr_elm_default_train_opts(void) {
    tsr_elm_train_opts o;
    memset(&o, 0, sizeof o);
    o.out = "elm_gen.safetensors";
    o.cfg = (tsr_elm_cfg){.kind = TSR_ELM_AR, .tok = TSR_IMGTOK_BAE, .bits = 16, .codebook = 0,
                          .n_sub = 2, .dim = 64, .n_layers = 2, .n_heads = 4, .hidden = 176,
                          .rope_theta = 100.0f};
    o.epochs = 2;
    o.batch = 64;
    o.lr = 2e-3f;
    o.min_lr = 1e-4f;
    o.weight_decay = 0.05f;
    o.label_drop = 0.1f;
    o.grad_clip = 1.0f;
    o.warmup = 100;
    o.ckpt_every = 500;
    o.log_every = 100;
    o.seed = 1;
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

#define N_RUN_KEYS 9
static const char *const k_run_keys[N_RUN_KEYS] = {"train.epochs", "train.batch", "train.lr",
                                                   "train.min_lr", "train.weight_decay",
                                                   "train.warmup", "train.seed", "train.n_train",
                                                   "train.label_drop"};

static void run_meta(char v[N_RUN_KEYS][48], const tsr_elm_train_opts *o, int64_t n) {
    snprintf(v[0], 48, "%d", o->epochs);
    snprintf(v[1], 48, "%d", o->batch);
    snprintf(v[2], 48, "%.9g", (double)o->lr);
    snprintf(v[3], 48, "%.9g", (double)o->min_lr);
    snprintf(v[4], 48, "%.9g", (double)o->weight_decay);
    snprintf(v[5], 48, "%lld", (long long)o->warmup);
    snprintf(v[6], 48, "%llu", (unsigned long long)o->seed);
    snprintf(v[7], 48, "%lld", (long long)n);
    snprintf(v[8], 48, "%.9g", (double)o->label_drop);
}

static tsr_status save_all(const tsr_elm_model *m, char v[N_RUN_KEYS][48], const char *path,
                           const char *state_path, const tsr_adamw *opt, const tsr_train_meta *tm,
                           double seconds) {
    const char *kv[2 * N_RUN_KEYS + 8];
    char step[32], sec[32];
    snprintf(step, sizeof step, "%lld", (long long)tm->step);
    snprintf(sec, sizeof sec, "%.1f", seconds);
    int n = 0;
    for (int i = 0; i < N_RUN_KEYS; i++) kv[n++] = k_run_keys[i], kv[n++] = v[i];
    kv[n++] = "train.step", kv[n++] = step;
    kv[n++] = "train.seconds", kv[n++] = sec;
    kv[n] = NULL;
    tsr_status st = tsr_trainstate_save(state_path, opt, tm);
    if (st.code) return st;
    return tsr_elm_save(m, path, kv);
}

static tsr_status check_resume(const char *path, char v[N_RUN_KEYS][48], int64_t *ckpt_step,
                               double *seconds) {
    const char *vals[N_RUN_KEYS];
    for (int i = 0; i < N_RUN_KEYS; i++) vals[i] = v[i];
    *seconds = 0;
    tsr_status st = tsr_ckpt_check_meta(path, k_run_keys, vals, N_RUN_KEYS, ckpt_step);
    if (st.code) return st;
    /* the wall time so far, for the report (not part of the trajectory) */
    tsr_st_file f;
    if (!tsr_st_read(path, &f).code) {
        const char *sec = tsr_st_meta(&f, "train.seconds");
        *seconds = sec ? strtod(sec, NULL) : 0;
        tsr_st_free(&f);
    }
    return st;
}

static bool same_cfg(const tsr_elm_cfg *a, const tsr_elm_cfg *b) {
    return a->kind == b->kind && a->tok == b->tok && a->bits == b->bits && a->codebook == b->codebook &&
           a->n_sub == b->n_sub && a->dim == b->dim && a->n_layers == b->n_layers &&
           a->n_heads == b->n_heads && a->hidden == b->hidden && a->rope_theta == b->rope_theta;
}

tsr_status tsr_elm_train(const tsr_elm_train_opts *o, tsr_elm_train_result *res) {
    memset(res, 0, sizeof *res);
    if (o->epochs < 1 || o->batch < 1 || !(o->lr > 0) || o->warmup < 0 || !o->out || !o->codes ||
        !(o->label_drop >= 0 && o->label_drop <= 1))
        return tsr_errorf(TSR_ERR_ARG, "training options out of range");
    tsr_elm_model m;
    tsr_adamw opt;
    tsr_train_meta tm = {0};
    bool have_model = false, have_opt = false;
    int32_t *sub = NULL, *labels = NULL;
    int64_t n_train = 0, ckpt_step = -1;
    double prev_sec = 0;
    char state_path[1200];
    tsr_classify_state_path(o->out, state_path, sizeof state_path);
    tsr_status st;
    if (o->resume) {
        st = tsr_elm_load(&m, o->out);
        have_model = !st.code;
        if (!st.code && !same_cfg(&m.cfg, &o->cfg))
            st = tsr_errorf(TSR_ERR_ARG, "%s: cannot resume: the model config differs", o->out);
    } else {
        st = tsr_elm_init(&m, &o->cfg, o->seed);
        have_model = !st.code;
    }
    if (!st.code) {
        snprintf(m.tokenizer, sizeof m.tokenizer, "%s", o->tokenizer ? o->tokenizer : "");
        st = load_codes(o->codes, &m, o->train_limit, &sub, &labels, &n_train);
    }
    if (!st.code && n_train < o->batch)
        st = tsr_errorf(TSR_ERR_ARG, "batch %d is larger than the %lld training images", o->batch,
                        (long long)n_train);
    char rv[N_RUN_KEYS][48];
    run_meta(rv, o, n_train);
    const int64_t total = n_train / o->batch * o->epochs;
    if (!st.code && o->resume) st = check_resume(o->out, rv, &ckpt_step, &prev_sec);
    if (!st.code) {
        tsr_adamw_init(&opt, &m.params, (tsr_adamw_cfg){o->lr, 0.9f, 0.95f, 1e-8f, o->weight_decay});
        have_opt = true;
        tsr_rng_seed(&tm.rng, o->seed ^ 0xD1B54A32D192ED03ull);
        if (o->resume)
            st = tsr_trainstate_resume(state_path, o->out, ckpt_step, total, n_train, &opt, &tm);
    }
    if (st.code) goto out;
    /* norms and embeddings are not decayed */
    for (int i = 0; i < m.params.n; i++)
        if (m.params.items[i]->ndim == 1 || strstr(m.params.items[i]->name, "embed"))
            m.params.flags[i] |= TSR_PARAM_NO_DECAY;

    tsr_batcher bt;
    tsr_batcher_init(&bt, n_train, o->batch, o->seed);
    tsr_batcher_seek(&bt, tm.cursor[0], tm.cursor[1]);
    tsr_ctx c;
    tsr_ctx_init(&c, (size_t)64 << 20);
    const int S = m.cfg.n_sub, P = TSR_ELM_POS;
    const tsr_lr_sched sched = {TSR_LR_COSINE, o->lr, o->min_lr, o->warmup, total};
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)o->batch);
    int32_t *bsub = malloc(sizeof(int32_t) * (size_t)o->batch * P * S);
    int32_t *blab = malloc(sizeof(int32_t) * (size_t)o->batch);
    uint8_t *mask = malloc((size_t)o->batch * P);
    int32_t perm[TSR_ELM_POS];
    TSR_ASSERT(ids && bsub && blab && mask);
    const double t0 = tsr_time();
    double t_log = t0;
    int64_t step0 = tm.step, log_step = tm.step;
    float loss_v = 0, nll_v = 0;
    while (tm.step < total) {
        int64_t b = tsr_batcher_next(&bt, ids, true);
        TSR_ASSERT(b == o->batch);
        for (int64_t i = 0; i < b; i++) {
            memcpy(bsub + i * P * S, sub + (int64_t)ids[i] * P * S, sizeof(int32_t) * P * S);
            blab[i] = tsr_rng_uniform(&tm.rng) < o->label_drop ? TSR_ELM_CLASSES : labels[ids[i]];
            if (m.cfg.kind == TSR_ELM_MLM) {
                int k = tsr_elm_mask_count(tsr_rng_uniform(&tm.rng), P);
                for (int p = 0; p < P; p++) perm[p] = p;
                for (int p = 0; p < k; p++) { /* partial Fisher-Yates: k random positions */
                    int q = p + (int)tsr_rng_below(&tm.rng, (uint32_t)(P - p));
                    int32_t t = perm[p];
                    perm[p] = perm[q], perm[q] = t;
                }
                memset(mask + i * P, 0, P);
                for (int p = 0; p < k; p++) mask[i * P + perm[p]] = 1;
            }
        }
        tsr_ctx_reset(&c);
        c.training = true;
        c.grad_enabled = true;
        tsr_tensor *loss = tsr_elm_loss(&c, &m, bsub, blab, mask, b, &nll_v);
        loss_v = tsr_f32(loss)[0];
        tsr_params_zero_grad(&m.params);
        tsr_backward(&c, loss);
        if (o->grad_clip > 0) tsr_clip_grad_norm(&m.params, o->grad_clip);
        float lr = tsr_lr_at(&sched, tm.step);
        tsr_adamw_step(&opt, lr);
        tm.step++;
        bool last = tm.step == total, stop = (o->stop_after > 0 && tm.step >= o->stop_after) ||
                                             (o->stop_flag && *o->stop_flag);
        if (o->progress && o->log_every > 0 && (tm.step % o->log_every == 0 || last || stop)) {
            double now = tsr_time();
            double ips = (double)((tm.step - log_step) * o->batch) / (now - t_log + 1e-9);
            double sps = (double)(tm.step - step0) / (now - t0 + 1e-9);
            tsr_elm_progress p = {tm.step, total, bt.epoch, loss_v, nll_v, lr, ips,
                                  (double)(total - tm.step) / (sps + 1e-12)};
            o->progress(&p, o->progress_ud);
            t_log = now, log_step = tm.step;
        }
        if ((o->ckpt_every > 0 && tm.step % o->ckpt_every == 0) || stop || last) {
            tm.cursor[0] = bt.epoch, tm.cursor[1] = bt.index;
            tm.cursor[2] = (int64_t)o->seed, tm.cursor[3] = total;
            st = save_all(&m, rv, o->out, state_path, &opt, &tm, prev_sec + tsr_time() - t0);
            if (st.code) break;
        }
        if (stop) break;
    }
    res->seconds = tsr_time() - t0;
    res->steps = tm.step;
    res->last_loss = loss_v;
    res->last_nll = nll_v;
    res->images_per_s = (double)((tm.step - step0) * o->batch) / (res->seconds + 1e-9);
    res->finished = tm.step == total;
    free(ids), free(bsub), free(blab), free(mask);
    tsr_batcher_free(&bt);
    tsr_ctx_free(&c);
out:
    if (have_opt) tsr_adamw_free(&opt);
    if (have_model) tsr_elm_free(&m);
    free(sub), free(labels);
    return st;
}
