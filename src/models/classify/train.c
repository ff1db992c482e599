/* tessera classify: the training loop for the Fashion-MNIST CNN — AdamW with
 * linear warmup and cosine decay, random horizontal flips, periodic atomic
 * checkpoints of weights plus training state, and exact resume: the data
 * order depends on (seed, epoch) only and the rng, optimizer moments and
 * cursor are saved, so stop+resume is bit-identical to a straight run. */
#include "tessera/classify.h"

#include "tessera/ops.h"
#include "tessera/optim.h"
#include "tessera/safetensors.h"

#include <string.h>

tsr_classify_train_opts tsr_classify_default_train_opts(void) {
    tsr_classify_train_opts o;
    memset(&o, 0, sizeof o);
    o.out = "fmnist_cnn.safetensors";
    o.cfg = tsr_classify_default_cfg();
    o.epochs = 8;
    o.batch = 128;
    o.lr = 2e-3f;
    o.min_lr = 0.0f;
    o.weight_decay = 0.05f;
    o.label_smoothing = 0.0f;
    o.warmup = 200;
    o.ckpt_every = 500;
    o.flip = true;
    o.seed = 1;
    o.log_every = 50;
    return o;
}

void tsr_classify_state_path(const char *ckpt, char *buf, size_t n) {
    const char *suf = ".safetensors";
    size_t l = strlen(ckpt), ls = strlen(suf);
    if (l > ls && strcmp(ckpt + l - ls, suf) == 0)
        snprintf(buf, n, "%.*s.state%s", (int)(l - ls), ckpt, suf);
    else snprintf(buf, n, "%s.state", ckpt);
}

/* Every option that changes the trajectory, as checkpoint metadata: a
 * resume under different settings would silently diverge, so it is refused. */
typedef struct {
    char v[10][40];
} run_meta;
static const char *const k_run_keys[10] = {"train.epochs", "train.batch", "train.lr",
                                           "train.min_lr", "train.weight_decay",
                                           "train.label_smoothing", "train.warmup",
                                           "train.seed", "train.train_limit", "train.flip"};

static void run_meta_fill(run_meta *rm, const tsr_classify_train_opts *o, int64_t n_train) {
    snprintf(rm->v[0], 40, "%d", o->epochs);
    snprintf(rm->v[1], 40, "%d", o->batch);
    snprintf(rm->v[2], 40, "%.9g", (double)o->lr);
    snprintf(rm->v[3], 40, "%.9g", (double)o->min_lr);
    snprintf(rm->v[4], 40, "%.9g", (double)o->weight_decay);
    snprintf(rm->v[5], 40, "%.9g", (double)o->label_smoothing);
    snprintf(rm->v[6], 40, "%lld", (long long)o->warmup);
    snprintf(rm->v[7], 40, "%llu", (unsigned long long)o->seed);
    snprintf(rm->v[8], 40, "%lld", (long long)n_train);
    snprintf(rm->v[9], 40, "%d", o->flip ? 1 : 0);
}

static tsr_status save_all(const tsr_classifier *m, const run_meta *rm, const char *acc,
                           const char *path, const char *state_path, const tsr_adamw *opt,
                           const tsr_train_meta *tm) {
    const char *kv[32];
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)tm->step);
    int n = 0;
    for (int i = 0; i < 10; i++) kv[n++] = k_run_keys[i], kv[n++] = rm->v[i];
    kv[n++] = "train.step", kv[n++] = step;
    if (acc) kv[n++] = "test_accuracy", kv[n++] = acc;
    kv[n] = NULL;
    /* state first: a crash between the two writes leaves the previous
     * weights with newer moments, which resume detects by the step count */
    tsr_status st = tsr_trainstate_save(state_path, opt, tm);
    if (st.code) return st;
    return tsr_classify_save(m, path, kv);
}

static tsr_status check_resume_meta(const char *path, const run_meta *rm, int64_t *ckpt_step) {
    const char *vals[10];
    for (int i = 0; i < 10; i++) vals[i] = rm->v[i];
    return tsr_ckpt_check_meta(path, k_run_keys, vals, 10, ckpt_step);
}

/* (B,1,28,28) in [0,1] from the sampled ids; flips draw from the trainer rng */
static void fill_batch(float *x, int32_t *y, const tsr_mnist *d, const int32_t *ids, int64_t b,
                       bool flip, tsr_rng *rng) {
    for (int64_t i = 0; i < b; i++) {
        const uint8_t *src = d->images.data + (int64_t)ids[i] * 784;
        float *dst = x + i * 784;
        bool f = flip && (tsr_rng_u64(rng) >> 63);
        for (int r = 0; r < 28; r++)
            for (int cc = 0; cc < 28; cc++)
                dst[r * 28 + cc] = (float)src[r * 28 + (f ? 27 - cc : cc)] * (1.0f / 255.0f);
        y[i] = d->labels.data[ids[i]];
    }
}

tsr_status tsr_classify_train(const tsr_classify_train_opts *o, tsr_classify_train_result *res) {
    memset(res, 0, sizeof *res);
    if (o->epochs < 1 || o->batch < 1 || !(o->lr > 0) || o->warmup < 0 || !o->out)
        return tsr_errorf(TSR_ERR_ARG, "training options out of range");
    tsr_mnist train = {0}, test = {0};
    tsr_status st = tsr_mnist_load(o->data_dir, true, &train);
    if (st.code) return st;
    if (o->test_limit >= 0) {
        st = tsr_mnist_load(o->data_dir, false, &test);
        if (st.code) {
            tsr_mnist_free(&train);
            return st;
        }
    }
    const int64_t n_train = o->train_limit > 0 && o->train_limit < train.n ? o->train_limit : train.n;
    if (n_train < o->batch) {
        tsr_mnist_free(&train), tsr_mnist_free(&test);
        return tsr_errorf(TSR_ERR_ARG, "batch %d is larger than the %lld training images", o->batch,
                          (long long)n_train);
    }
    const int64_t steps_per_epoch = n_train / o->batch;
    const int64_t total = steps_per_epoch * o->epochs;
    run_meta rm;
    run_meta_fill(&rm, o, n_train);
    char state_path[1200];
    tsr_classify_state_path(o->out, state_path, sizeof state_path);

    tsr_classifier m;
    tsr_adamw opt;
    tsr_train_meta tm = {0};
    tsr_batcher bt;
    tsr_ctx c;
    tsr_ctx_init(&c, (size_t)64 << 20);
    bool have_model = false, have_opt = false;
    int64_t ckpt_step = -1;
    if (o->resume) {
        st = check_resume_meta(o->out, &rm, &ckpt_step);
        if (!st.code) st = tsr_classify_load(&m, o->out);
        have_model = !st.code;
        if (!st.code && (m.cfg.c1 != o->cfg.c1 || m.cfg.c2 != o->cfg.c2 || m.cfg.fc != o->cfg.fc ||
                         m.cfg.dropout != o->cfg.dropout))
            st = tsr_errorf(TSR_ERR_ARG, "%s: cannot resume: the network config differs", o->out);
    } else {
        st = tsr_classify_init(&m, &o->cfg, o->seed);
        have_model = !st.code;
    }
    if (!st.code) {
        tsr_adamw_init(&opt, &m.params,
                       (tsr_adamw_cfg){o->lr, 0.9f, 0.999f, 1e-8f, o->weight_decay});
        have_opt = true;
        tsr_rng_seed(&tm.rng, o->seed ^ 0xD1B54A32D192ED03ull);
        if (o->resume)
            st = tsr_trainstate_resume(state_path, o->out, ckpt_step, total, n_train, &opt, &tm);
    }
    if (st.code) goto out;
    tsr_batcher_init(&bt, n_train, o->batch, o->seed);
    tsr_batcher_seek(&bt, tm.cursor[0], tm.cursor[1]);
    c.rng = tm.rng;

    const tsr_lr_sched sched = {TSR_LR_COSINE, o->lr, o->min_lr, o->warmup, total};
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)o->batch);
    TSR_ASSERT(ids);
    const double t0 = tsr_time();
    double t_log = t0;
    int64_t step0 = tm.step, log_step = tm.step;
    float loss_v = 0;
    while (tm.step < total) {
        int64_t b = tsr_batcher_next(&bt, ids, true);
        TSR_ASSERT(b == o->batch);
        tsr_ctx_reset(&c);
        c.training = true;
        c.grad_enabled = true;
        tsr_tensor *x = tsr_new(&c, TSR_F32, TSR_DIMS(b, 1, 28, 28));
        tsr_tensor *y = tsr_new(&c, TSR_I32, TSR_DIMS(b));
        fill_batch(tsr_f32(x), tsr_i32(y), &train, ids, b, o->flip, &c.rng);
        tsr_tensor *logits = tsr_classify_forward(&c, &m, x, NULL);
        tsr_tensor *loss = tsr_cross_entropy(&c, logits, y, NULL, -100, o->label_smoothing);
        loss_v = tsr_f32(loss)[0];
        tsr_params_zero_grad(&m.params);
        tsr_backward(&c, loss);
        float lr = tsr_lr_at(&sched, tm.step);
        tsr_adamw_step(&opt, lr);
        tm.step++;
        bool last = tm.step == total, stop = o->stop_after > 0 && tm.step >= o->stop_after;
        if (o->progress && o->log_every > 0 && (tm.step % o->log_every == 0 || last || stop)) {
            double now = tsr_time();
            double ips = (double)((tm.step - log_step) * o->batch) / (now - t_log + 1e-9);
            double sps = (double)(tm.step - step0) / (now - t0 + 1e-9);
            tsr_classify_progress p = {tm.step, total, bt.epoch, loss_v, lr, ips,
                                       (double)(total - tm.step) / (sps + 1e-12)};
            o->progress(&p, o->progress_ud);
            t_log = now, log_step = tm.step;
        }
        if (last) break; /* the final checkpoint follows the evaluation */
        if ((o->ckpt_every > 0 && tm.step % o->ckpt_every == 0) || stop) {
            tm.rng = c.rng;
            tm.cursor[0] = bt.epoch, tm.cursor[1] = bt.index;
            tm.cursor[2] = (int64_t)o->seed, tm.cursor[3] = total;
            st = save_all(&m, &rm, NULL, o->out, state_path, &opt, &tm);
            if (st.code) break;
        }
        if (stop) break;
    }
    res->seconds = tsr_time() - t0;
    res->steps = tm.step;
    res->last_loss = loss_v;
    res->images_per_s = (double)((tm.step - step0) * o->batch) / (res->seconds + 1e-9);
    res->finished = tm.step == total;
    if (!st.code && res->finished) {
        char acc[32] = "";
        if (o->test_limit >= 0) {
            res->test = tsr_classify_evaluate(&m, &test, o->test_limit);
            snprintf(acc, sizeof acc, "%.4f", res->test.accuracy);
        }
        tm.rng = c.rng;
        tm.cursor[0] = bt.epoch, tm.cursor[1] = bt.index;
        tm.cursor[2] = (int64_t)o->seed, tm.cursor[3] = total;
        st = save_all(&m, &rm, acc[0] ? acc : NULL, o->out, state_path, &opt, &tm);
    }
    free(ids);
    tsr_batcher_free(&bt);
out:
    if (have_opt) tsr_adamw_free(&opt);
    if (have_model) tsr_classify_free(&m);
    tsr_ctx_free(&c);
    tsr_mnist_free(&train);
    tsr_mnist_free(&test);
    return st;
}
