/* tessera classify: the Fashion-MNIST CNN (see include/tessera/classify.h):
 * parameters, the autograd forward, checkpoint load/save, batched
 * inference (logits and penultimate features) and evaluation. The feature
 * extractor is what image-generation families call for their metrics. */
#include "tessera/classify.h"

#include "tessera/ops.h"
#include "tessera/safetensors.h"

#include <math.h>
#include <string.h>

#define CLASSIFY_ARCH "fmnist_cnn"
#define RUN_CHUNK 128

tsr_classify_cfg tsr_classify_default_cfg(void) {
    return (tsr_classify_cfg){.c1 = 16, .c2 = 32, .fc = 128, .dropout = 0.2f};
}

int tsr_classify_feature_dim(const tsr_classifier *m) { return m->cfg.fc; }

static tsr_status cfg_check(const tsr_classify_cfg *g, const char *what) {
    if (g->c1 < 1 || g->c1 > 1024 || g->c2 < 1 || g->c2 > 1024 || g->fc < 1 || g->fc > 65536)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: classifier widths out of range (c1 %d, c2 %d, fc %d)",
                          what, g->c1, g->c2, g->fc);
    if (!(g->dropout >= 0.0f && g->dropout < 1.0f))
        return tsr_errorf(TSR_ERR_FORMAT, "%s: dropout %g outside [0,1)", what, (double)g->dropout);
    return tsr_ok();
}

/* Registers every tensor under its PyTorch module name. */
static void build(tsr_classifier *m) {
    const tsr_classify_cfg *g = &m->cfg;
    tsr_params *p = &m->params;
    tsr_params_init(p);
    const int cin[4] = {1, g->c1, g->c1, g->c2}, cout[4] = {g->c1, g->c1, g->c2, g->c2};
    char nm[64];
    for (int i = 0; i < 4; i++) {
        snprintf(nm, sizeof nm, "conv%d.weight", i + 1);
        m->conv_w[i] = tsr_param_new(p, nm, 0, TSR_DIMS(cout[i], cin[i], 3, 3));
        snprintf(nm, sizeof nm, "bn%d.weight", i + 1);
        m->bn_w[i] = tsr_param_new(p, nm, TSR_PARAM_NO_DECAY, TSR_DIMS(cout[i]));
        snprintf(nm, sizeof nm, "bn%d.bias", i + 1);
        m->bn_b[i] = tsr_param_new(p, nm, TSR_PARAM_NO_DECAY, TSR_DIMS(cout[i]));
        snprintf(nm, sizeof nm, "bn%d.running_mean", i + 1);
        m->bn_mean[i] = tsr_param_new(p, nm, TSR_PARAM_BUFFER, TSR_DIMS(cout[i]));
        snprintf(nm, sizeof nm, "bn%d.running_var", i + 1);
        m->bn_var[i] = tsr_param_new(p, nm, TSR_PARAM_BUFFER, TSR_DIMS(cout[i]));
    }
    const int64_t flat = (int64_t)g->c2 * 7 * 7;
    m->fc1_w = tsr_param_new(p, "fc1.weight", 0, TSR_DIMS(g->fc, flat));
    m->fc1_b = tsr_param_new(p, "fc1.bias", TSR_PARAM_NO_DECAY, TSR_DIMS(g->fc));
    m->fc2_w = tsr_param_new(p, "fc2.weight", 0, TSR_DIMS(TSR_CLASSIFY_CLASSES, g->fc));
    m->fc2_b = tsr_param_new(p, "fc2.bias", TSR_PARAM_NO_DECAY, TSR_DIMS(TSR_CLASSIFY_CLASSES));
}

tsr_status tsr_classify_init(tsr_classifier *m, const tsr_classify_cfg *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    tsr_status st = cfg_check(cfg, "classifier config");
    if (st.code) return st;
    m->cfg = *cfg;
    build(m);
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    for (int i = 0; i < 4; i++) {
        /* Kaiming-normal (He et al. 2015, fan_in) suits the ReLU stack */
        int64_t fan_in = m->conv_w[i]->shape[1] * 9;
        tsr_init_normal(m->conv_w[i], &r, sqrtf(2.0f / (float)fan_in));
        tsr_init_const(m->bn_w[i], 1.0f);
        tsr_init_const(m->bn_var[i], 1.0f);
    }
    /* torch.nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
    float b1 = 1.0f / sqrtf((float)m->fc1_w->shape[1]), b2 = 1.0f / sqrtf((float)m->cfg.fc);
    tsr_init_uniform(m->fc1_w, &r, -b1, b1);
    tsr_init_uniform(m->fc1_b, &r, -b1, b1);
    tsr_init_uniform(m->fc2_w, &r, -b2, b2);
    tsr_init_uniform(m->fc2_b, &r, -b2, b2);
    return tsr_ok();
}

void tsr_classify_free(tsr_classifier *m) {
    tsr_params_free(&m->params);
    memset(m, 0, sizeof *m);
}

tsr_status tsr_classify_load(tsr_classifier *m, const char *path) {
    memset(m, 0, sizeof *m);
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    const char *arch = tsr_st_meta(&f, "arch");
    tsr_classify_cfg g = {0};
    const char *bad = NULL;
    if (!arch || strcmp(arch, CLASSIFY_ARCH) != 0) bad = "arch";
    else if (!tsr_st_meta_int(&f, "c1", 0, 1 << 20, &g.c1)) bad = "c1";
    else if (!tsr_st_meta_int(&f, "c2", 0, 1 << 20, &g.c2)) bad = "c2";
    else if (!tsr_st_meta_int(&f, "fc", 0, 1 << 20, &g.fc)) bad = "fc";
    else {
        const char *d = tsr_st_meta(&f, "dropout");
        char *end;
        g.dropout = d ? strtof(d, &end) : -1.0f;
        if (!d || *end) bad = "dropout";
    }
    tsr_st_free(&f);
    if (bad)
        return tsr_errorf(TSR_ERR_FORMAT,
                          "%s: not a tessera classify checkpoint (metadata '%s' missing or invalid)",
                          path, bad);
    st = cfg_check(&g, path);
    if (st.code) return st;
    m->cfg = g;
    build(m);
    st = tsr_params_load(&m->params, path, false);
    if (st.code) tsr_classify_free(m);
    return st;
}

tsr_status tsr_classify_save(const tsr_classifier *m, const char *path, const char *const *meta) {
    char c1[16], c2[16], fc[16], dr[32];
    snprintf(c1, sizeof c1, "%d", m->cfg.c1);
    snprintf(c2, sizeof c2, "%d", m->cfg.c2);
    snprintf(fc, sizeof fc, "%d", m->cfg.fc);
    snprintf(dr, sizeof dr, "%.9g", (double)m->cfg.dropout);
    const char *kv[64] = {"family", "classify", "arch", CLASSIFY_ARCH, "c1", c1, "c2", c2,
                          "fc", fc, "dropout", dr, "input", "1x28x28 in [0,1]",
                          "normalize_mean", "0.2860", "normalize_std", "0.3530"};
    int n = 18;
    for (int i = 0; meta && meta[i] && meta[i + 1] && n < 62; i += 2) {
        kv[n++] = meta[i];
        kv[n++] = meta[i + 1];
    }
    kv[n] = NULL;
    return tsr_params_save(&m->params, path, TSR_ST_F32, kv);
}

/* ------------------------------------------------------------------ forward */

static tsr_tensor *conv_bn_relu(tsr_ctx *c, tsr_classifier *m, int i, tsr_tensor *h) {
    const tsr_conv_opts o = {.pad = {1, 1}};
    h = tsr_conv2d(c, h, m->conv_w[i], NULL, &o);
    /* one node for batch norm + ReLU: same arithmetic, no intermediate map */
    return tsr_batchnorm_relu(c, h, m->bn_w[i], m->bn_b[i], m->bn_mean[i], m->bn_var[i], 0.1f, 1e-5f);
}

tsr_tensor *tsr_classify_forward(tsr_ctx *c, tsr_classifier *m, tsr_tensor *x,
                                 tsr_tensor **features) {
    TSR_ASSERT(x->ndim == 4 && x->shape[1] == 1 && x->shape[2] == 28 && x->shape[3] == 28);
    const int64_t B = x->shape[0];
    const int k2[2] = {2, 2}, p0[2] = {0, 0};
    tsr_tensor *h = tsr_add_scalar(c, tsr_scale(c, x, 1.0f / TSR_CLASSIFY_STD),
                                   -TSR_CLASSIFY_MEAN / TSR_CLASSIFY_STD);
    h = conv_bn_relu(c, m, 0, h);
    h = conv_bn_relu(c, m, 1, h);
    h = tsr_maxpool2d(c, h, k2, k2, p0);
    h = conv_bn_relu(c, m, 2, h);
    h = conv_bn_relu(c, m, 3, h);
    h = tsr_maxpool2d(c, h, k2, k2, p0);
    h = tsr_reshape(c, h, TSR_DIMS(B, -1));
    h = tsr_dropout(c, h, m->cfg.dropout);
    tsr_tensor *f = tsr_relu(c, tsr_linear(c, h, m->fc1_w, m->fc1_b));
    if (features) *features = f;
    h = tsr_dropout(c, f, m->cfg.dropout);
    return tsr_linear(c, h, m->fc2_w, m->fc2_b);
}

/* -------------------------------------------------------------- inference */

static void run_chunks(tsr_classifier *m, const uint8_t *u8, const float *f32, int64_t n,
                       float *feats, float *logits) {
    tsr_ctx c;
    tsr_ctx_init(&c, (size_t)64 << 20);
    c.grad_enabled = false;
    c.training = false;
    const int F = m->cfg.fc;
    for (int64_t s = 0; s < n; s += RUN_CHUNK) {
        int64_t b = n - s < RUN_CHUNK ? n - s : RUN_CHUNK;
        tsr_ctx_reset(&c);
        tsr_tensor *x = tsr_new(&c, TSR_F32, TSR_DIMS(b, 1, 28, 28));
        float *xd = tsr_f32(x);
        if (u8)
            for (int64_t i = 0; i < b * 784; i++) xd[i] = (float)u8[s * 784 + i] * (1.0f / 255.0f);
        else memcpy(xd, f32 + s * 784, sizeof(float) * (size_t)(b * 784));
        tsr_tensor *ft = NULL;
        tsr_tensor *lg = tsr_classify_forward(&c, m, x, &ft);
        if (feats) memcpy(feats + s * F, tsr_f32(ft), sizeof(float) * (size_t)(b * F));
        if (logits)
            memcpy(logits + s * TSR_CLASSIFY_CLASSES, tsr_f32(lg),
                   sizeof(float) * (size_t)(b * TSR_CLASSIFY_CLASSES));
    }
    tsr_ctx_free(&c);
}

void tsr_classify_run_u8(tsr_classifier *m, const uint8_t *img, int64_t n, float *feats,
                         float *logits) {
    run_chunks(m, img, NULL, n, feats, logits);
}

void tsr_classify_run_f32(tsr_classifier *m, const float *img, int64_t n, float *feats,
                          float *logits) {
    run_chunks(m, NULL, img, n, feats, logits);
}

tsr_classify_eval_result tsr_classify_evaluate(tsr_classifier *m, const tsr_mnist *d,
                                               int64_t limit) {
    tsr_classify_eval_result r = {0};
    int64_t n = limit > 0 && limit < d->n ? limit : d->n;
    float *lg = malloc(sizeof(float) * (size_t)(n * TSR_CLASSIFY_CLASSES));
    TSR_ASSERT(lg);
    tsr_classify_run_u8(m, d->images.data, n, NULL, lg);
    double loss = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *z = lg + i * TSR_CLASSIFY_CLASSES;
        int best = 0;
        double mx = z[0];
        for (int k = 1; k < TSR_CLASSIFY_CLASSES; k++)
            if (z[k] > z[best]) best = k;
        mx = z[best];
        double se = 0;
        for (int k = 0; k < TSR_CLASSIFY_CLASSES; k++) se += exp((double)z[k] - mx);
        int y = d->labels.data[i];
        loss += log(se) + mx - (double)z[y];
        r.correct += best == y;
    }
    free(lg);
    r.n = n;
    r.accuracy = n ? (double)r.correct / (double)n : 0.0;
    r.loss = n ? loss / (double)n : 0.0;
    return r;
}
