/* tessera bigr: what training BiGR adds to the shared loop
 * (include/tessera/train.h): batches of cached BAE codes and labels, the
 * masked-modelling loss with the transcoder's Bernoulli-diffusion term
 * (BiGR sec. 3.2; its random draws come from the step rng), the bit
 * accuracy for progress lines, and the config keys. AdamW (beta2 0.95),
 * warmup + cosine, clipping, checkpoints and exact resume come from the
 * trainer. */
#include "tessera/bigr.h"

#include "tessera/fileio.h"

#include <string.h>

tsr_bigr_train_opts tsr_bigr_default_train_opts(void) {
    tsr_bigr_train_opts o;
    memset(&o, 0, sizeof o);
    o.codes = "bigr_codes.safetensors";
    o.cfg = tsr_bigr_default_cfg();
    o.batch = 64;
    o.repeat = 2;
    o.p_uncond = 0.1f;
    o.train = tsr_train_default_opts();
    o.train.out = "bigr.safetensors";
    o.train.epochs = 2;
    o.train.lr = 1e-3f;
    o.train.min_lr = 5e-5f;
    o.train.weight_decay = 0.05f;
    o.train.beta2 = 0.95f;
    o.train.clip = 1.0f;
    o.train.warmup = 100;
    o.train.ckpt_every = 200;
    o.train.log_every = 25;
    o.train.seed = 1;
    return o;
}

typedef struct {
    const tsr_bigr_train_opts *o;
    tsr_bigr m;
    tsr_bigr_codes cd;
    int32_t *labs;
    uint8_t *bits;
    float bit_acc;
} run;

static tsr_status step(void *ud, tsr_ctx *c, const int32_t *ids, int64_t b, float *loss_v) {
    run *r = ud;
    const int64_t per = (int64_t)TSR_BIGR_L * r->o->cfg.bits;
    for (int64_t i = 0; i < b; i++) {
        r->labs[i] = r->cd.train_labels[ids[i]];
        memcpy(r->bits + i * per, r->cd.train_bits + (int64_t)ids[i] * per, (size_t)per);
    }
    tsr_bigr_loss_info info;
    tsr_tensor *loss = tsr_bigr_loss(c, &r->m, r->bits, r->labs, (int)b, r->o->p_uncond, r->o->repeat, &c->rng,
                                     &info);
    tsr_backward(c, loss);
    *loss_v = info.loss;
    r->bit_acc = info.bit_acc;
    return tsr_ok();
}

static void step_metrics(void *ud, tsr_train_metrics *m) {
    tsr_train_metric(m, "bit_acc", ((run *)ud)->bit_acc);
}

static tsr_status save(void *ud, const char *path, const char *const *meta, const tsr_train_metrics *ev,
                       bool final) {
    (void)ev, (void)final;
    return tsr_bigr_save(&((run *)ud)->m, path, meta);
}

tsr_status tsr_bigr_train(const tsr_bigr_train_opts *o, tsr_train_result *res) {
    memset(res, 0, sizeof *res);
    if (o->batch < 1 || o->repeat < 1 || !o->codes || !(o->p_uncond >= 0 && o->p_uncond <= 1))
        return tsr_errorf(TSR_ERR_ARG, "bigr train: options out of range");
    run r;
    memset(&r, 0, sizeof r);
    r.o = o;
    tsr_status st = tsr_output_check(o->train.out);
    if (!st.code) st = tsr_bigr_codes_load(&r.cd, o->codes);
    if (st.code) return st;
    const int64_t n_train = o->train_limit > 0 && o->train_limit < r.cd.n_train ? o->train_limit : r.cd.n_train;
    if (r.cd.K != o->cfg.bits)
        st = tsr_errorf(TSR_ERR_ARG, "%s: codes have %d bits per position, the model %d", o->codes, r.cd.K,
                        o->cfg.bits);
    else if (n_train < o->batch)
        st = tsr_errorf(TSR_ERR_ARG, "batch %d is larger than the %lld training codes", o->batch,
                        (long long)n_train);
    for (int64_t i = 0; i < n_train && !st.code; i++)
        if (r.cd.train_labels[i] < 0 || r.cd.train_labels[i] >= o->cfg.classes)
            st = tsr_errorf(TSR_ERR_ARG, "%s: label %d outside [0, %d)", o->codes, r.cd.train_labels[i],
                            o->cfg.classes);
    if (!st.code) st = tsr_bigr_init(&r.m, &o->cfg, o->train.seed);
    if (st.code) {
        tsr_bigr_codes_free(&r.cd);
        return st;
    }
    const tsr_bigr_cfg *g = &o->cfg;
    char v[16][40];
    snprintf(v[0], 40, "%d", o->batch);
    snprintf(v[1], 40, "%d", o->repeat);
    snprintf(v[2], 40, "%.9g", (double)o->p_uncond);
    snprintf(v[3], 40, "%lld", (long long)n_train);
    snprintf(v[4], 40, "%d", g->bits);
    snprintf(v[5], 40, "%d", g->dim);
    snprintf(v[6], 40, "%d", g->n_layers);
    snprintf(v[7], 40, "%d", g->n_heads);
    snprintf(v[8], 40, "%d", g->ffn_hidden);
    snprintf(v[9], 40, "%d", g->tc_hidden);
    snprintf(v[10], 40, "%d", g->tc_blocks);
    snprintf(v[11], 40, "%d", g->T);
    snprintf(v[12], 40, "%s", tsr_bigr_target_name(g->target));
    snprintf(v[13], 40, "%d", g->classes);
    snprintf(v[14], 40, "%.9g", (double)g->norm_eps);
    snprintf(v[15], 40, "%.9g", (double)g->rope_theta);
    /* the model's own metadata keys and formats, so both files agree */
    const char *cfg[] = {"train.batch", v[0], "train.repeat", v[1], "train.p_uncond", v[2],
                         "train.train_limit", v[3], "bigr.bits", v[4], "bigr.dim", v[5], "bigr.n_layers", v[6],
                         "bigr.n_heads", v[7], "bigr.ffn_hidden", v[8], "bigr.tc_hidden", v[9],
                         "bigr.tc_blocks", v[10], "bigr.T", v[11], "bigr.target", v[12], "bigr.classes", v[13],
                         "bigr.norm_eps", v[14], "bigr.rope_theta", v[15], NULL};
    r.labs = malloc(sizeof(int32_t) * (size_t)o->batch);
    r.bits = malloc((size_t)o->batch * TSR_BIGR_L * (size_t)g->bits);
    TSR_ASSERT(r.labs && r.bits);
    tsr_train_family f = {.name = "bigr", .params = &r.m.params, .config = cfg, .n_items = n_train,
                          .batch = o->batch, .unit = "img", .rng_salt = 0x5DEECE66Dull, .ud = &r,
                          .step = step, .step_metrics = step_metrics, .save = save};
    st = tsr_train_run(&f, &o->train, res);
    free(r.labs), free(r.bits);
    tsr_bigr_free(&r.m);
    tsr_bigr_codes_free(&r.cd);
    return st;
}
