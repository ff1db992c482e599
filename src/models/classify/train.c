/* tessera classify: what training the Fashion-MNIST CNN adds to the shared
 * loop (include/tessera/train.h): the batch (random horizontal flips drawn
 * from the step rng), the cross-entropy loss, the test-set evaluation and
 * the checkpoint's config keys. AdamW, warmup + cosine, checkpoints and
 * exact resume come from the trainer. */
#include "tessera/classify.h"

#include "tessera/fileio.h"
#include "tessera/ops.h"
#include "tessera/train.h"

#include <string.h>

tsr_classify_train_opts tsr_classify_default_train_opts(void) {
    tsr_classify_train_opts o;
    memset(&o, 0, sizeof o);
    o.cfg = tsr_classify_default_cfg();
    o.batch = 128;
    o.label_smoothing = 0.0f;
    o.flip = true;
    o.train = tsr_train_default_opts();
    o.train.out = "fmnist_cnn.safetensors";
    o.train.epochs = 8;
    o.train.lr = 2e-3f;
    o.train.min_lr = 0.0f;
    o.train.weight_decay = 0.05f;
    o.train.warmup = 200;
    o.train.ckpt_every = 500;
    o.train.seed = 1;
    o.train.log_every = 50;
    return o;
}

typedef struct {
    const tsr_classify_train_opts *o;
    tsr_classifier m;
    tsr_mnist train, test;
    tsr_classify_eval_result res;
} run;

/* (B,1,28,28) in [0,1] from the sampled ids; flips draw from the step rng */
static tsr_status step(void *ud, tsr_ctx *c, const int32_t *ids, int64_t b, float *loss_v) {
    run *r = ud;
    tsr_tensor *x = tsr_new(c, TSR_F32, TSR_DIMS(b, 1, 28, 28));
    tsr_tensor *y = tsr_new(c, TSR_I32, TSR_DIMS(b));
    float *xd = tsr_f32(x);
    int32_t *yd = tsr_i32(y);
    for (int64_t i = 0; i < b; i++) {
        const uint8_t *src = r->train.images.data + (int64_t)ids[i] * 784;
        float *dst = xd + i * 784;
        bool f = r->o->flip && (tsr_rng_u64(&c->rng) >> 63);
        for (int row = 0; row < 28; row++)
            for (int cc = 0; cc < 28; cc++)
                dst[row * 28 + cc] = (float)src[row * 28 + (f ? 27 - cc : cc)] * (1.0f / 255.0f);
        yd[i] = r->train.labels.data[ids[i]];
    }
    tsr_tensor *logits = tsr_classify_forward(c, &r->m, x, NULL);
    tsr_tensor *loss = tsr_cross_entropy(c, logits, y, NULL, -100, r->o->label_smoothing);
    *loss_v = tsr_f32(loss)[0];
    tsr_backward(c, loss);
    return tsr_ok();
}

static tsr_status eval(void *ud, tsr_train_metrics *m) {
    run *r = ud;
    r->res = tsr_classify_evaluate(&r->m, &r->test, r->o->test_limit);
    tsr_train_metric(m, "test_accuracy", r->res.accuracy);
    tsr_train_metric(m, "test_loss", r->res.loss);
    return tsr_ok();
}

static tsr_status save(void *ud, const char *path, const char *const *meta, const tsr_train_metrics *ev, bool final) {
    (void)final;
    run *r = ud;
    const char *kv[160];
    int n = 0;
    for (; meta[n] && n < 156; n++) kv[n] = meta[n];
    char acc[32];
    if (ev) {
        snprintf(acc, sizeof acc, "%.4f", tsr_train_metric_get(ev, "test_accuracy"));
        kv[n++] = "test_accuracy", kv[n++] = acc;
    }
    kv[n] = NULL;
    return tsr_classify_save(&r->m, path, kv);
}

tsr_status tsr_classify_train(const tsr_classify_train_opts *o, tsr_classify_train_result *res) {
    memset(res, 0, sizeof *res);
    if (o->batch < 1) return tsr_errorf(TSR_ERR_ARG, "classify train: batch must be >= 1");
    run r;
    memset(&r, 0, sizeof r);
    r.o = o;
    tsr_status st = tsr_output_check(o->train.out); /* before loading data */
    if (!st.code) st = tsr_mnist_load(o->data_dir, true, &r.train);
    if (!st.code && o->test_limit >= 0) st = tsr_mnist_load(o->data_dir, false, &r.test);
    if (st.code) goto out;
    const int64_t n_train = o->train_limit > 0 && o->train_limit < r.train.n ? o->train_limit : r.train.n;
    if (n_train < o->batch) {
        st = tsr_errorf(TSR_ERR_ARG, "batch %d is larger than the %lld training images", o->batch,
                        (long long)n_train);
        goto out;
    }
    if ((st = tsr_classify_init(&r.m, &o->cfg, o->train.seed)).code) goto out;
    char v[8][40];
    snprintf(v[0], 40, "%d", o->batch);
    snprintf(v[1], 40, "%.9g", (double)o->label_smoothing);
    snprintf(v[2], 40, "%lld", (long long)n_train);
    snprintf(v[3], 40, "%d", o->flip ? 1 : 0);
    snprintf(v[4], 40, "%d", o->cfg.c1);
    snprintf(v[5], 40, "%d", o->cfg.c2);
    snprintf(v[6], 40, "%d", o->cfg.fc);
    snprintf(v[7], 40, "%.9g", (double)o->cfg.dropout);
    const char *cfg[] = {"train.batch", v[0], "train.label_smoothing", v[1], "train.train_limit", v[2],
                         "train.flip", v[3], "classify.c1", v[4], "classify.c2", v[5], "classify.fc", v[6],
                         "classify.dropout", v[7], NULL};
    tsr_train_family f = {.name = "classify", .params = &r.m.params, .config = cfg, .n_items = n_train,
                          .batch = o->batch, .unit = "img", .ud = &r, .step = step,
                          .eval = o->test_limit >= 0 ? eval : NULL, .save = save};
    tsr_train_result tr;
    st = tsr_train_run(&f, &o->train, &tr);
    res->steps = tr.step, res->total = tr.total;
    res->finished = tr.finished;
    res->interrupted = tr.interrupted;
    res->last_loss = tr.last_loss;
    res->images_per_s = tr.items_per_s;
    res->seconds = tr.seconds;
    if (tr.eval.n) res->test = r.res;
    tsr_classify_free(&r.m);
out:
    tsr_mnist_free(&r.train);
    tsr_mnist_free(&r.test);
    return st;
}
