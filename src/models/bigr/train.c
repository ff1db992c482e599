/* tessera bigr: training loop — masked modelling of the cached BAE codes
 * with the transcoder's Bernoulli-diffusion loss (BiGR sec. 3.2), AdamW
 * with warmup + cosine, grad clipping, atomic checkpoints every N steps and
 * on a stop request, exact resume (data order from (seed, epoch); rng,
 * moments and cursor in the state file). */
#include "tessera/bigr.h"

#include "tessera/classify.h"
#include "tessera/data.h"
#include "tessera/ops.h"
#include "tessera/optim.h"
#include "tessera/safetensors.h"

#include <string.h>

tsr_bigr_train_opts tsr_bigr_default_train_opts(void) {
    tsr_bigr_train_opts o;
    memset(&o, 0, sizeof o);
    o.codes = "bigr_codes.safetensors";
    o.out = "bigr.safetensors";
    o.cfg = tsr_bigr_default_cfg();
    o.epochs = 2;
    o.batch = 64;
    o.repeat = 2;
    o.lr = 1e-3f;
    o.min_lr = 5e-5f;
    o.weight_decay = 0.05f;
    o.p_uncond = 0.1f;
    o.clip = 1.0f;
    o.warmup = 100;
    o.ckpt_every = 200;
    o.log_every = 25;
    o.seed = 1;
    return o;
}

#define N_RUN_KEYS 11
typedef struct {
    char v[N_RUN_KEYS][48];
} run_meta;
static const char *const k_run_keys[N_RUN_KEYS] = {
    "train.epochs", "train.batch", "train.repeat", "train.lr", "train.min_lr",
    "train.weight_decay", "train.p_uncond", "train.clip", "train.warmup", "train.seed",
    "train.train_limit"};

static void run_meta_fill(run_meta *rm, const tsr_bigr_train_opts *o, int64_t n_train) {
    snprintf(rm->v[0], 48, "%d", o->epochs);
    snprintf(rm->v[1], 48, "%d", o->batch);
    snprintf(rm->v[2], 48, "%d", o->repeat);
    snprintf(rm->v[3], 48, "%.9g", (double)o->lr);
    snprintf(rm->v[4], 48, "%.9g", (double)o->min_lr);
    snprintf(rm->v[5], 48, "%.9g", (double)o->weight_decay);
    snprintf(rm->v[6], 48, "%.9g", (double)o->p_uncond);
    snprintf(rm->v[7], 48, "%.9g", (double)o->clip);
    snprintf(rm->v[8], 48, "%lld", (long long)o->warmup);
    snprintf(rm->v[9], 48, "%llu", (unsigned long long)o->seed);
    snprintf(rm->v[10], 48, "%lld", (long long)n_train);
}

static tsr_status save_all(const tsr_bigr *m, const run_meta *rm, const char *path,
                           const char *state_path, const tsr_adamw *opt, const tsr_train_meta *tm) {
    const char *kv[2 * N_RUN_KEYS + 4];
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)tm->step);
    int n = 0;
    for (int i = 0; i < N_RUN_KEYS; i++) kv[n++] = k_run_keys[i], kv[n++] = rm->v[i];
    kv[n++] = "train.step", kv[n++] = step;
    kv[n] = NULL;
    tsr_status st = tsr_trainstate_save(state_path, opt, tm);
    if (st.code) return st;
    return tsr_bigr_save(m, path, kv);
}

static tsr_status check_resume_meta(const char *path, const run_meta *rm, int64_t *ckpt_step) {
    const char *vals[N_RUN_KEYS];
    for (int i = 0; i < N_RUN_KEYS; i++) vals[i] = rm->v[i];
    return tsr_ckpt_check_meta(path, k_run_keys, vals, N_RUN_KEYS, ckpt_step);
}

tsr_status tsr_bigr_train(const tsr_bigr_train_opts *o, tsr_bigr_train_result *res) {
    memset(res, 0, sizeof *res);
    if (o->epochs < 1 || o->batch < 1 || o->repeat < 1 || !(o->lr > 0) || o->warmup < 0 ||
        !o->out || !o->codes || !(o->p_uncond >= 0 && o->p_uncond <= 1) || !(o->clip >= 0))
        return tsr_errorf(TSR_ERR_ARG, "training options out of range");
    tsr_bigr_codes cd;
    tsr_status st = tsr_bigr_codes_load(&cd, o->codes);
    if (st.code) return st;
    if (cd.K != o->cfg.bits) {
        tsr_bigr_codes_free(&cd);
        return tsr_errorf(TSR_ERR_ARG, "%s: codes have %d bits per position, the model %d", o->codes,
                          cd.K, o->cfg.bits);
    }
    const int64_t n_train = o->train_limit > 0 && o->train_limit < cd.n_train ? o->train_limit : cd.n_train;
    if (n_train < o->batch) {
        tsr_bigr_codes_free(&cd);
        return tsr_errorf(TSR_ERR_ARG, "batch %d is larger than the %lld training codes", o->batch,
                          (long long)n_train);
    }
    for (int64_t i = 0; i < n_train; i++)
        if (cd.train_labels[i] >= o->cfg.classes) {
            tsr_bigr_codes_free(&cd);
            return tsr_errorf(TSR_ERR_ARG, "%s: label %d >= classes %d", o->codes, cd.train_labels[i],
                              o->cfg.classes);
        }
    const int64_t total = n_train / o->batch * o->epochs;
    run_meta rm;
    run_meta_fill(&rm, o, n_train);
    char state_path[1200];
    tsr_classify_state_path(o->out, state_path, sizeof state_path);

    tsr_bigr m;
    tsr_adamw opt;
    tsr_train_meta tm = {0};
    tsr_batcher bt;
    tsr_ctx c;
    tsr_ctx_init(&c, (size_t)64 << 20);
    bool have_model = false, have_opt = false;
    int64_t ckpt_step = -1;
    if (o->resume) {
        st = check_resume_meta(o->out, &rm, &ckpt_step);
        if (!st.code) st = tsr_bigr_load(&m, o->out);
        have_model = !st.code;
        if (!st.code && memcmp(&m.cfg, &o->cfg, sizeof m.cfg) != 0)
            st = tsr_errorf(TSR_ERR_ARG, "%s: cannot resume: the model config differs", o->out);
    } else {
        st = tsr_bigr_init(&m, &o->cfg, o->seed);
        have_model = !st.code;
    }
    if (!st.code) {
        tsr_adamw_init(&opt, &m.params, (tsr_adamw_cfg){o->lr, 0.9f, 0.95f, 1e-8f, o->weight_decay});
        have_opt = true;
        tsr_rng_seed(&tm.rng, o->seed ^ 0x5DEECE66Dull);
        if (o->resume)
            st = tsr_trainstate_resume(state_path, o->out, ckpt_step, total, n_train, &opt, &tm);
    }
    if (st.code) goto out;
    tsr_batcher_init(&bt, n_train, o->batch, o->seed);
    tsr_batcher_seek(&bt, tm.cursor[0], tm.cursor[1]);

    const tsr_lr_sched sched = {TSR_LR_COSINE, o->lr, o->min_lr, o->warmup, total};
    const int K = o->cfg.bits;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)o->batch);
    int32_t *labs = malloc(sizeof(int32_t) * (size_t)o->batch);
    uint8_t *bits = malloc((size_t)o->batch * TSR_BIGR_L * K);
    TSR_ASSERT(ids && labs && bits);
    const double t0 = tsr_time();
    double t_log = t0;
    int64_t step0 = tm.step, log_step = tm.step;
    float loss_v = 0, acc_v = 0;
    while (tm.step < total) {
        if (o->stop_flag && *o->stop_flag) break;
        int64_t b = tsr_batcher_next(&bt, ids, true);
        TSR_ASSERT(b == o->batch);
        for (int64_t i = 0; i < b; i++) {
            labs[i] = cd.train_labels[ids[i]];
            memcpy(bits + i * TSR_BIGR_L * K, cd.train_bits + (int64_t)ids[i] * TSR_BIGR_L * K,
                   (size_t)TSR_BIGR_L * K);
        }
        tsr_ctx_reset(&c);
        c.grad_enabled = true;
        c.training = true;
        tsr_bigr_loss_info info;
        tsr_tensor *loss = tsr_bigr_loss(&c, &m, bits, labs, (int)b, o->p_uncond, o->repeat,
                                         &tm.rng, &info);
        tsr_params_zero_grad(&m.params);
        tsr_backward(&c, loss);
        if (o->clip > 0) tsr_clip_grad_norm(&m.params, o->clip);
        float lr = tsr_lr_at(&sched, tm.step);
        tsr_adamw_step(&opt, lr);
        tm.step++;
        loss_v = info.loss, acc_v = info.bit_acc;
        bool last = tm.step == total, stop = o->stop_after > 0 && tm.step >= o->stop_after;
        bool sig = o->stop_flag && *o->stop_flag;
        if (o->progress && o->log_every > 0 && (tm.step % o->log_every == 0 || last || stop)) {
            double now = tsr_time();
            double ips = (double)((tm.step - log_step) * o->batch) / (now - t_log + 1e-9);
            double sps = (double)(tm.step - step0) / (now - t0 + 1e-9);
            tsr_bigr_progress p = {tm.step, total, bt.epoch, loss_v, acc_v, lr, ips,
                                   (double)(total - tm.step) / (sps + 1e-12)};
            o->progress(&p, o->progress_ud);
            t_log = now, log_step = tm.step;
        }
        if ((o->ckpt_every > 0 && tm.step % o->ckpt_every == 0) || stop || last || sig) {
            tm.cursor[0] = bt.epoch, tm.cursor[1] = bt.index;
            tm.cursor[2] = (int64_t)o->seed, tm.cursor[3] = total;
            st = save_all(&m, &rm, o->out, state_path, &opt, &tm);
            if (st.code) break;
        }
        if (stop || sig) break;
    }
    res->seconds = tsr_time() - t0;
    res->steps = tm.step;
    res->last_loss = loss_v;
    res->images_per_s = (double)((tm.step - step0) * o->batch) / (res->seconds + 1e-9);
    res->finished = tm.step == total;
    free(ids), free(labs), free(bits);
    tsr_batcher_free(&bt);
out:
    if (have_opt) tsr_adamw_free(&opt);
    if (have_model) tsr_bigr_free(&m);
    tsr_ctx_free(&c);
    tsr_bigr_codes_free(&cd);
    return st;
}
