/* tessera elm: training loop for the image tokenizers (BAE / VQ of
 * imgtok.h) on Fashion-MNIST — L1 + L2 reconstruction (+ optional
 * perceptual term on the fixed classifier's features), VQ commitment loss
 * with an EMA codebook and dead-code restarts, AdamW with warmup + cosine,
 * atomic checkpoints and exact resume (the data order depends on (seed,
 * epoch) only; rng, moments, codebook buffers and cursor are saved). */
#include "tessera/elm.h"

#include "tessera/ops.h"
#include "tessera/fileio.h"

#include <string.h>

tsr_elm_tok_train_opts tsr_elm_tok_default_train_opts(tsr_imgtok_kind kind) {
    tsr_elm_tok_train_opts o;
    memset(&o, 0, sizeof o);
    o.cfg = tsr_imgtok_default_cfg(kind);
    o.batch = 128;
    o.l1_w = 1.0f;
    o.l2_w = 1.0f;
    o.percep_w = 0.0f;
    static char cls[4096]; /* the shipped classifier, from any working directory */
    o.classifier = tsr_find_model_or("models/fmnist_cnn.safetensors", cls, sizeof cls);
    o.dead = 0.03f;
    o.train = tsr_train_default_opts();
    o.train.out = kind == TSR_IMGTOK_VQ ? "fmnist_vq.safetensors" : "fmnist_bae.safetensors";
    o.train.epochs = 3;
    o.train.lr = 2e-3f;
    o.train.min_lr = 1e-4f;
    o.train.weight_decay = 0.0f;
    o.train.beta2 = 0.99f;
    o.train.warmup = 100;
    o.train.ckpt_every = 500;
    o.train.log_every = 50;
    o.train.seed = 1;
    return o;
}

typedef struct {
    const tsr_elm_tok_train_opts *o;
    tsr_imgtok m;
    tsr_classifier cls;
    tsr_mnist train;
    tsr_imgtok_out fo; /* this step's forward, for the codebook update */
    float rec, aux;
    int restarts;      /* since the last report */
} run;

/* L1 + L2 reconstruction, + VQ commitment, + the perceptual term */
static tsr_status step(void *ud, tsr_ctx *c, const int32_t *ids, int64_t b, float *loss_v) {
    run *r = ud;
    const tsr_elm_tok_train_opts *o = r->o;
    c->training = false; /* no dropout/batch statistics anywhere (the classifier stays in eval) */
    tsr_tensor *x = tsr_new(c, TSR_F32, TSR_DIMS(b, 1, 28, 28));
    float *xd = tsr_f32(x);
    for (int64_t i = 0; i < b; i++)
        for (int j = 0; j < 784; j++)
            xd[i * 784 + j] = (float)r->train.images.data[(int64_t)ids[i] * 784 + j] * (1.0f / 255.0f);
    tsr_imgtok_forward(c, &r->m, x, !o->decoder_only, &r->fo);
    tsr_tensor *rec = tsr_add(c, tsr_scale(c, tsr_l1(c, r->fo.recon, x), o->l1_w),
                              tsr_scale(c, tsr_mse(c, r->fo.recon, x), o->l2_w));
    tsr_tensor *loss = rec, *aux = NULL;
    if (r->fo.commit && !o->decoder_only) aux = tsr_scale(c, r->fo.commit, r->m.cfg.commit);
    if (o->percep_w > 0) {
        tsr_tensor *fr = NULL, *fx = NULL;
        tsr_classify_forward(c, &r->cls, r->fo.recon, &fr);
        tsr_classify_forward(c, &r->cls, x, &fx);
        tsr_tensor *p = tsr_scale(c, tsr_mse(c, fr, fx), o->percep_w);
        aux = aux ? tsr_add(c, aux, p) : p;
    }
    if (aux) loss = tsr_add(c, loss, aux);
    *loss_v = tsr_f32(loss)[0];
    r->rec = tsr_f32(rec)[0];
    r->aux = aux ? tsr_f32(aux)[0] : 0.0f;
    tsr_backward(c, loss);
    return tsr_ok();
}

/* the VQ codebook follows its assignments (EMA) after the update */
static void post_step(void *ud, tsr_ctx *c) {
    run *r = ud;
    if (r->m.cfg.kind == TSR_IMGTOK_VQ && !r->o->decoder_only)
        r->restarts += tsr_imgtok_vq_update(&r->m, r->fo.z, r->fo.ids, r->o->dead, &c->rng);
}

static void step_metrics(void *ud, tsr_train_metrics *m) {
    run *r = ud;
    tsr_train_metric(m, "rec", r->rec);
    tsr_train_metric(m, "aux", r->aux);
    if (r->m.cfg.kind == TSR_IMGTOK_VQ) tsr_train_metric(m, "restarts", r->restarts);
    r->restarts = 0;
}

static tsr_status save(void *ud, const char *path, const char *const *meta, const tsr_train_metrics *ev,
                       bool final) {
    (void)ev, (void)final;
    return tsr_imgtok_save(&((run *)ud)->m, path, meta);
}

tsr_status tsr_elm_tok_train(const tsr_elm_tok_train_opts *o, tsr_elm_tok_train_result *res) {
    memset(res, 0, sizeof *res);
    if (o->batch < 1 || !(o->l1_w >= 0) || !(o->l2_w >= 0) || !(o->percep_w >= 0) || !(o->dead >= 0))
        return tsr_errorf(TSR_ERR_ARG, "elm tokenizer-train: options out of range");
    if (o->decoder_only && !o->init)
        return tsr_errorf(TSR_ERR_ARG, "--decoder-only needs --init: a trained tokenizer to keep the encoder of");
    run r;
    memset(&r, 0, sizeof r);
    r.o = o;
    bool have_model = false, have_cls = false;
    tsr_status st = tsr_output_check(o->train.out);
    if (!st.code) st = tsr_mnist_load(o->data_dir, true, &r.train);
    if (st.code) return st;
    const int64_t n_train = o->train_limit > 0 && o->train_limit < r.train.n ? o->train_limit : r.train.n;
    if (n_train < o->batch)
        st = tsr_errorf(TSR_ERR_ARG, "batch %d is larger than the %lld training images", o->batch,
                        (long long)n_train);
    if (!st.code && o->percep_w > 0) {
        st = tsr_classify_load(&r.cls, o->classifier);
        have_cls = !st.code;
        /* a fixed extractor: no parameter of it takes a gradient */
        for (int i = 0; have_cls && i < r.cls.params.n; i++) r.cls.params.items[i]->requires_grad = false;
    }
    /* with --init the weights and config are the init checkpoint's (on a
     * resume the weights then come from the training state) */
    if (!st.code) st = o->init ? tsr_imgtok_load(&r.m, o->init) : tsr_imgtok_init(&r.m, &o->cfg, o->train.seed);
    have_model = !st.code;
    if (st.code) goto out;
    if (o->decoder_only) {
        /* the encoder (and VQ codebook, a buffer) stay as they are: the decoder
         * learns to invert exactly the codes tsr_imgtok_encode_images emits */
        tsr_imgtok *m = &r.m;
        tsr_tensor *frozen[] = {m->enc_w[0], m->enc_w[1], m->enc_w[2], m->enc_w[3], m->enc_b[0],
                                m->enc_b[1], m->enc_b[2], m->enc_b[3], m->qproj_w, m->qproj_b};
        for (size_t i = 0; i < sizeof frozen / sizeof frozen[0]; i++) frozen[i]->requires_grad = false;
    }
    const tsr_imgtok_cfg *g = &r.m.cfg;
    char v[16][48];
    snprintf(v[0], 48, "%d", o->batch);
    snprintf(v[1], 48, "%lld", (long long)n_train);
    snprintf(v[2], 48, "%.9g", (double)o->l1_w);
    snprintf(v[3], 48, "%.9g", (double)o->l2_w);
    snprintf(v[4], 48, "%.9g", (double)o->percep_w);
    snprintf(v[5], 48, "%.9g", (double)o->dead);
    snprintf(v[6], 48, "%s", o->init ? o->init : "");
    snprintf(v[7], 48, "%d", o->decoder_only ? 1 : 0);
    snprintf(v[8], 48, "%s", tsr_imgtok_kind_name(g->kind));
    snprintf(v[9], 48, "%d", g->bits);
    snprintf(v[10], 48, "%d", g->ch);
    snprintf(v[11], 48, "%d", g->kind == TSR_IMGTOK_VQ ? g->codebook : 0);
    snprintf(v[12], 48, "%.9g", (double)(g->kind == TSR_IMGTOK_VQ ? g->commit : 0));
    snprintf(v[13], 48, "%.9g", (double)(g->kind == TSR_IMGTOK_VQ ? g->ema_decay : 0));
    const char *cfg[] = {"train.batch", v[0], "train.train_limit", v[1], "train.l1_w", v[2], "train.l2_w", v[3],
                         "train.percep_w", v[4], "train.dead", v[5], "train.init", v[6],
                         "train.decoder_only", v[7], "train.cfg.kind", v[8], "train.cfg.bits", v[9],
                         "train.cfg.ch", v[10], "train.cfg.codebook", v[11], "train.cfg.commit", v[12],
                         "train.cfg.ema_decay", v[13], NULL};
    tsr_train_family f = {.name = "elm tokenizer", .params = &r.m.params, .config = cfg, .n_items = n_train,
                          .batch = o->batch, .unit = "img", .rng_salt = 0x9E3779B97F4A7C15ull, .ud = &r,
                          .step = step, .post_step = post_step, .step_metrics = step_metrics, .save = save};
    tsr_train_result tr;
    st = tsr_train_run(&f, &o->train, &tr);
    res->steps = tr.step, res->total = tr.total;
    res->finished = tr.finished, res->interrupted = tr.interrupted;
    res->last_loss = tr.last_loss;
    res->images_per_s = tr.items_per_s, res->seconds = tr.seconds;
out:
    if (have_model) tsr_imgtok_free(&r.m);
    if (have_cls) tsr_classify_free(&r.cls);
    tsr_mnist_free(&r.train);
    return st;
}
