/* tessera elm: training loop for the image tokenizers (BAE / VQ of
 * imgtok.h) on Fashion-MNIST — L1 + L2 reconstruction (+ optional
 * perceptual term on the fixed classifier's features), VQ commitment loss
 * with an EMA codebook and dead-code restarts, AdamW with warmup + cosine,
 * atomic checkpoints and exact resume (the data order depends on (seed,
 * epoch) only; rng, moments, codebook buffers and cursor are saved). */
#include "tessera/elm.h"

#include "tessera/ops.h"
#include "tessera/optim.h"
#include "tessera/safetensors.h"

#include <string.h>

tsr_elm_tok_train_opts tsr_elm_tok_default_train_opts(tsr_imgtok_kind kind) {
    tsr_elm_tok_train_opts o;
    memset(&o, 0, sizeof o);
    o.out = kind == TSR_IMGTOK_VQ ? "fmnist_vq.safetensors" : "fmnist_bae.safetensors";
    o.cfg = tsr_imgtok_default_cfg(kind);
    o.epochs = 3;
    o.batch = 128;
    o.lr = 2e-3f;
    o.min_lr = 1e-4f;
    o.weight_decay = 0.0f;
    o.warmup = 100;
    o.ckpt_every = 500;
    o.log_every = 50;
    o.l1_w = 1.0f;
    o.l2_w = 1.0f;
    o.percep_w = 0.0f;
    o.classifier = "models/fmnist_cnn.safetensors";
    o.dead = 0.03f;
    o.seed = 1;
    return o;
}

#define N_RUN_KEYS 14
typedef struct {
    char v[N_RUN_KEYS][48];
} run_meta;
static const char *const k_run_keys[N_RUN_KEYS] = {
    "train.epochs", "train.batch", "train.lr", "train.min_lr", "train.weight_decay",
    "train.warmup", "train.seed", "train.train_limit", "train.l1_w", "train.l2_w",
    "train.percep_w", "train.dead", "train.init", "train.decoder_only"};

static void run_meta_fill(run_meta *rm, const tsr_elm_tok_train_opts *o, int64_t n_train) {
    snprintf(rm->v[0], 48, "%d", o->epochs);
    snprintf(rm->v[1], 48, "%d", o->batch);
    snprintf(rm->v[2], 48, "%.9g", (double)o->lr);
    snprintf(rm->v[3], 48, "%.9g", (double)o->min_lr);
    snprintf(rm->v[4], 48, "%.9g", (double)o->weight_decay);
    snprintf(rm->v[5], 48, "%lld", (long long)o->warmup);
    snprintf(rm->v[6], 48, "%llu", (unsigned long long)o->seed);
    snprintf(rm->v[7], 48, "%lld", (long long)n_train);
    snprintf(rm->v[8], 48, "%.9g", (double)o->l1_w);
    snprintf(rm->v[9], 48, "%.9g", (double)o->l2_w);
    snprintf(rm->v[10], 48, "%.9g", (double)o->percep_w);
    snprintf(rm->v[11], 48, "%.9g", (double)o->dead);
    snprintf(rm->v[12], 48, "%s", o->init ? o->init : "");
    snprintf(rm->v[13], 48, "%d", o->decoder_only ? 1 : 0);
}

static tsr_status save_all(const tsr_imgtok *m, const run_meta *rm, const char *path,
                           const char *state_path, const tsr_adamw *opt, const tsr_train_meta *tm) {
    const char *kv[2 * N_RUN_KEYS + 8];
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)tm->step);
    int n = 0;
    for (int i = 0; i < N_RUN_KEYS; i++) kv[n++] = k_run_keys[i], kv[n++] = rm->v[i];
    kv[n++] = "train.step", kv[n++] = step;
    kv[n] = NULL;
    /* state first: a crash between the writes is caught by the step check */
    tsr_status st = tsr_trainstate_save(state_path, opt, tm);
    if (st.code) return st;
    return tsr_imgtok_save(m, path, kv);
}

static tsr_status check_resume_meta(const char *path, const run_meta *rm, int64_t *ckpt_step) {
    const char *vals[N_RUN_KEYS];
    for (int i = 0; i < N_RUN_KEYS; i++) vals[i] = rm->v[i];
    return tsr_ckpt_check_meta(path, k_run_keys, vals, N_RUN_KEYS, ckpt_step);
}

static bool same_cfg(const tsr_imgtok_cfg *a, const tsr_imgtok_cfg *b) {
    return a->kind == b->kind && a->bits == b->bits && a->ch == b->ch &&
           (a->kind == TSR_IMGTOK_BAE ||
            (a->codebook == b->codebook && a->commit == b->commit && a->ema_decay == b->ema_decay));
}

tsr_status tsr_elm_tok_train(const tsr_elm_tok_train_opts *o, tsr_elm_tok_train_result *res) {
    memset(res, 0, sizeof *res);
    if (o->epochs < 1 || o->batch < 1 || !(o->lr > 0) || o->warmup < 0 || !o->out ||
        !(o->l1_w >= 0) || !(o->l2_w >= 0) || !(o->percep_w >= 0) || !(o->dead >= 0))
        return tsr_errorf(TSR_ERR_ARG, "training options out of range");
    if (o->decoder_only && !o->init)
        return tsr_errorf(TSR_ERR_ARG, "--decoder-only needs --init: a trained tokenizer to keep the encoder of");
    tsr_mnist train = {0};
    tsr_status st = tsr_mnist_load(o->data_dir, true, &train);
    if (st.code) return st;
    const int64_t n_train = o->train_limit > 0 && o->train_limit < train.n ? o->train_limit : train.n;
    if (n_train < o->batch) {
        tsr_mnist_free(&train);
        return tsr_errorf(TSR_ERR_ARG, "batch %d is larger than the %lld training images", o->batch,
                          (long long)n_train);
    }
    const int64_t steps_per_epoch = n_train / o->batch, total = steps_per_epoch * o->epochs;
    run_meta rm;
    run_meta_fill(&rm, o, n_train);
    char state_path[1200];
    tsr_classify_state_path(o->out, state_path, sizeof state_path);

    tsr_imgtok m;
    tsr_classifier cls;
    tsr_adamw opt;
    tsr_train_meta tm = {0};
    tsr_batcher bt;
    tsr_ctx c;
    tsr_ctx_init(&c, (size_t)64 << 20);
    bool have_model = false, have_opt = false, have_cls = false;
    int64_t ckpt_step = -1;
    if (o->percep_w > 0) {
        st = tsr_classify_load(&cls, o->classifier);
        have_cls = !st.code;
        /* a fixed extractor: no parameter of it takes a gradient */
        for (int i = 0; have_cls && i < cls.params.n; i++) cls.params.items[i]->requires_grad = false;
    }
    if (!st.code && o->resume) {
        tsr_imgtok_cfg want = o->cfg; /* with --init the config is the init checkpoint's */
        st = check_resume_meta(o->out, &rm, &ckpt_step);
        if (!st.code && o->init) st = tsr_imgtok_read_cfg(o->init, &want);
        if (!st.code) st = tsr_imgtok_load(&m, o->out);
        have_model = !st.code;
        if (!st.code && !same_cfg(&m.cfg, &want))
            st = tsr_errorf(TSR_ERR_ARG, "%s: cannot resume: the tokenizer config differs", o->out);
    } else if (!st.code && o->init) {
        st = tsr_imgtok_load(&m, o->init);
        have_model = !st.code;
    } else if (!st.code) {
        st = tsr_imgtok_init(&m, &o->cfg, o->seed);
        have_model = !st.code;
    }
    if (!st.code) {
        tsr_adamw_init(&opt, &m.params, (tsr_adamw_cfg){o->lr, 0.9f, 0.99f, 1e-8f, o->weight_decay});
        have_opt = true;
        tsr_rng_seed(&tm.rng, o->seed ^ 0x9E3779B97F4A7C15ull);
        if (o->resume)
            st = tsr_trainstate_resume(state_path, o->out, ckpt_step, total, n_train, &opt, &tm);
    }
    if (st.code) goto out;
    if (o->decoder_only) {
        /* the encoder (and VQ codebook, a buffer) stay as they are: the decoder
         * learns to invert exactly the codes tsr_imgtok_encode_images emits */
        tsr_tensor *frozen[] = {m.enc_w[0], m.enc_w[1], m.enc_w[2], m.enc_w[3], m.enc_b[0],
                                m.enc_b[1], m.enc_b[2], m.enc_b[3], m.qproj_w, m.qproj_b};
        for (size_t i = 0; i < sizeof frozen / sizeof frozen[0]; i++) frozen[i]->requires_grad = false;
    }
    tsr_batcher_init(&bt, n_train, o->batch, o->seed);
    tsr_batcher_seek(&bt, tm.cursor[0], tm.cursor[1]);
    c.rng = tm.rng;

    const tsr_lr_sched sched = {TSR_LR_COSINE, o->lr, o->min_lr, o->warmup, total};
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)o->batch);
    TSR_ASSERT(ids);
    const double t0 = tsr_time();
    double t_log = t0;
    int64_t step0 = tm.step, log_step = tm.step;
    float loss_v = 0, rec_v = 0, aux_v = 0;
    int restarts = 0;
    while (tm.step < total) {
        int64_t b = tsr_batcher_next(&bt, ids, true);
        TSR_ASSERT(b == o->batch);
        tsr_ctx_reset(&c);
        c.training = false; /* no dropout/batch statistics anywhere (the classifier stays in eval) */
        c.grad_enabled = true;
        tsr_tensor *x = tsr_new(&c, TSR_F32, TSR_DIMS(b, 1, 28, 28));
        float *xd = tsr_f32(x);
        for (int64_t i = 0; i < b; i++)
            for (int j = 0; j < 784; j++)
                xd[i * 784 + j] = (float)train.images.data[(int64_t)ids[i] * 784 + j] * (1.0f / 255.0f);
        tsr_imgtok_out fo;
        tsr_imgtok_forward(&c, &m, x, !o->decoder_only, &fo);
        tsr_tensor *rec = tsr_add(&c, tsr_scale(&c, tsr_l1(&c, fo.recon, x), o->l1_w),
                                  tsr_scale(&c, tsr_mse(&c, fo.recon, x), o->l2_w));
        tsr_tensor *loss = rec, *aux = NULL;
        if (fo.commit && !o->decoder_only) aux = tsr_scale(&c, fo.commit, m.cfg.commit);
        if (o->percep_w > 0) {
            tsr_tensor *fr = NULL, *fx = NULL;
            tsr_classify_forward(&c, &cls, fo.recon, &fr);
            tsr_classify_forward(&c, &cls, x, &fx);
            tsr_tensor *p = tsr_scale(&c, tsr_mse(&c, fr, fx), o->percep_w);
            aux = aux ? tsr_add(&c, aux, p) : p;
        }
        if (aux) loss = tsr_add(&c, loss, aux);
        loss_v = tsr_f32(loss)[0];
        rec_v = tsr_f32(rec)[0];
        aux_v = aux ? tsr_f32(aux)[0] : 0.0f;
        tsr_params_zero_grad(&m.params);
        tsr_backward(&c, loss);
        float lr = tsr_lr_at(&sched, tm.step);
        tsr_adamw_step(&opt, lr);
        if (m.cfg.kind == TSR_IMGTOK_VQ && !o->decoder_only) restarts += tsr_imgtok_vq_update(&m, fo.z, fo.ids, o->dead, &c.rng);
        tm.step++;
        bool last = tm.step == total, stop = o->stop_after > 0 && tm.step >= o->stop_after;
        if (o->progress && o->log_every > 0 && (tm.step % o->log_every == 0 || last || stop)) {
            double now = tsr_time();
            double ips = (double)((tm.step - log_step) * o->batch) / (now - t_log + 1e-9);
            double sps = (double)(tm.step - step0) / (now - t0 + 1e-9);
            tsr_elm_tok_progress p = {tm.step, total, bt.epoch, loss_v, rec_v, aux_v, lr, restarts,
                                      ips, (double)(total - tm.step) / (sps + 1e-12)};
            o->progress(&p, o->progress_ud);
            t_log = now, log_step = tm.step, restarts = 0;
        }
        if ((o->ckpt_every > 0 && tm.step % o->ckpt_every == 0) || stop || last) {
            tm.rng = c.rng;
            tm.cursor[0] = bt.epoch, tm.cursor[1] = bt.index;
            tm.cursor[2] = (int64_t)o->seed, tm.cursor[3] = total;
            st = save_all(&m, &rm, o->out, state_path, &opt, &tm);
            if (st.code) break;
        }
        if (stop) break;
    }
    res->seconds = tsr_time() - t0;
    res->steps = tm.step;
    res->last_loss = loss_v;
    res->images_per_s = (double)((tm.step - step0) * o->batch) / (res->seconds + 1e-9);
    res->finished = tm.step == total;
    free(ids);
    tsr_batcher_free(&bt);
out:
    if (have_opt) tsr_adamw_free(&opt);
    if (have_model) tsr_imgtok_free(&m);
    if (have_cls) tsr_classify_free(&cls);
    tsr_ctx_free(&c);
    tsr_mnist_free(&train);
    return st;
}
