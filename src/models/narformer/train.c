/* narformer: training and evaluation on NAS-Bench-201 — the family's batch,
 * loss and eval hooks for the shared trainer (src/train), the baselines it
 * is compared with (MLP on one-hot operations, a GIN, FLOPs regression)
 * and the metrics (Kendall tau-b, MAPE, share within 10/5/1 %).
 *
 * The NAR-Former V2 loss for accuracy (paper eq. 8-10, official main.py):
 * MSE(pred / y, 1) over the batch and its isomorphic copies, plus
 * lambda_sr * L1 of pairwise differences (a random pairing of the batch),
 * plus lambda_cons * L1 between each cell's and its copy's prediction. */
#include "tessera/narformer.h"
#include "tessera/ops.h"
#include "tessera/ops_graph.h"
#include "tessera/safetensors.h"

#include <math.h>
#include <string.h>

static const char *const METHOD_NAMES[TSR_NF_METHOD_COUNT] = {"narformer", "mlp", "gnn", "flops", "kernel-sum"};

const char *tsr_nf_method_name(int m) { return m >= 0 && m < TSR_NF_METHOD_COUNT ? METHOD_NAMES[m] : "?"; }

int tsr_nf_method_parse(const char *s) {
    for (int i = 0; i < TSR_NF_METHOD_COUNT; i++)
        if (!strcmp(s, METHOD_NAMES[i])) return i;
    return -1;
}

/* ------------------------------------------------------------ metrics */

double tsr_nf_kendall_tau(const float *a, const float *b, int64_t n) {
    /* O(n^2) with tie counts; 15,625 items take ~0.2 s */
    double conc = 0, disc = 0, ta = 0, tb = 0;
#pragma omp parallel for schedule(dynamic, 64) reduction(+ : conc, disc, ta, tb)
    for (int64_t i = 0; i < n; i++) {
        double c = 0, d = 0, xa = 0, xb = 0;
        for (int64_t j = i + 1; j < n; j++) {
            float da = a[i] - a[j], db = b[i] - b[j];
            if (da == 0 && db == 0) continue;
            if (da == 0) xa++;
            else if (db == 0) xb++;
            else if ((da > 0) == (db > 0)) c++;
            else d++;
        }
        conc += c, disc += d, ta += xa, tb += xb;
    }
    double den = sqrt((conc + disc + ta) * (conc + disc + tb));
    return den > 0 ? (conc - disc) / den : 0.0;
}

void tsr_nf_metrics_compute(const float *pred, const float *y, int64_t n, tsr_nf_metrics *m) {
    memset(m, 0, sizeof *m);
    if (n <= 0) return;
    double ape = 0, c10 = 0, c5 = 0, c1 = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)pred[i] - y[i]) / fabs((double)y[i]);
        ape += e;
        c10 += e <= 0.10, c5 += e <= 0.05, c1 += e <= 0.01;
    }
    m->mape = ape / n;
    m->acc_10pct = c10 / n, m->acc_5pct = c5 / n, m->acc_1pct = c1 / n;
    m->kendall_tau = tsr_nf_kendall_tau(pred, y, n);
}

void tsr_nf_split(int n, int n_train, uint64_t seed, int32_t *order) {
    (void)n_train;
    for (int i = 0; i < n; i++) order[i] = i;
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    tsr_rng_shuffle_i32(&r, order, n);
}

/* ------------------------------------------------------------ options */

tsr_nf_nb201_opts tsr_nf_nb201_default_opts(int method) {
    tsr_nf_nb201_opts o;
    memset(&o, 0, sizeof o);
    o.method = method;
    o.cfg = tsr_nf_default_cfg(TSR_NF_HEAD_ACCURACY, TSR_NB201_TOKEN_DIM);
    o.hidden = 128;
    o.lambda_sr = 0.1f;
    o.lambda_cons = method == TSR_NF_METHOD_NARFORMER ? 0.5f : 0.0f;
    o.eval_items = 2000;
    o.batch = 8;
    return o;
}

/* ------------------------------------------------------------ baselines' models */

enum { MLP_IN = 30, GNN_IN = 7, GNN_LAYERS = 3 };

static void lin_init(tsr_tensor *w, tsr_tensor *b, tsr_rng *r) {
    float bound = 1.0f / sqrtf((float)w->shape[1]);
    tsr_init_uniform(w, r, -bound, bound);
    tsr_init_uniform(b, r, -bound, bound);
}

static void baseline_init(tsr_nf_nb201_pred *p, int hidden, uint64_t seed) {
    tsr_params_init(&p->params);
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    int H = hidden;
    const int ND = TSR_PARAM_NO_DECAY;
    if (p->method == TSR_NF_METHOD_MLP) {
        /* 30 -> H -> H -> 1 */
        int dims[4] = {MLP_IN, H, H, 1};
        for (int l = 0; l < 3; l++) {
            char n[32];
            snprintf(n, sizeof n, "mlp.%d.weight", l);
            p->w[2 * l] = tsr_param_new(&p->params, n, 0, TSR_DIMS(dims[l + 1], dims[l]));
            snprintf(n, sizeof n, "mlp.%d.bias", l);
            p->w[2 * l + 1] = tsr_param_new(&p->params, n, ND, TSR_DIMS(dims[l + 1]));
            lin_init(p->w[2 * l], p->w[2 * l + 1], &r);
        }
    } else {
        /* GIN: h' = relu(W (h + A h) + b), 3 layers, then mean -> Linear(H, 1) */
        for (int l = 0; l <= GNN_LAYERS; l++) {
            int in = l == 0 ? GNN_IN : H, out = l == GNN_LAYERS ? 1 : H;
            char n[32];
            snprintf(n, sizeof n, "gin.%d.weight", l);
            p->w[2 * l] = tsr_param_new(&p->params, n, 0, TSR_DIMS(out, in));
            snprintf(n, sizeof n, "gin.%d.bias", l);
            p->w[2 * l + 1] = tsr_param_new(&p->params, n, ND, TSR_DIMS(out));
            lin_init(p->w[2 * l], p->w[2 * l + 1], &r);
        }
    }
}

/* ------------------------------------------------------------ batches */

/* inputs of cells ids[0..B) for a method; with_iso (narformer) appends the
 * isomorphic copies as rows B..2B */
typedef struct {
    tsr_tensor *x, *adj;
    int rows;
} nb_batch;

static nb_batch make_batch(tsr_ctx *c, int method, const tsr_nb201 *t, const int32_t *ids, int B, bool with_iso) {
    nb_batch b = {0};
    if (method == TSR_NF_METHOD_MLP) {
        b.x = tsr_zeros(c, TSR_F32, TSR_DIMS(B, MLP_IN));
        for (int i = 0; i < B; i++)
            for (int e = 0; e < 6; e++) tsr_f32(b.x)[i * MLP_IN + e * 5 + (t->ops[ids[i]][e] - 1)] = 1;
        b.rows = B;
        return b;
    }
    int R = with_iso ? 2 * B : B;
    int F = method == TSR_NF_METHOD_GNN ? GNN_IN : TSR_NB201_TOKEN_DIM;
    b.x = tsr_zeros(c, TSR_F32, TSR_DIMS(R, 8, F));
    b.adj = tsr_new(c, TSR_F32, TSR_DIMS(R, 8, 8));
    for (int i = 0; i < B; i++) {
        uint8_t node_ops[8], iso_ops[8];
        float adj[64], iso_adj[64];
        tsr_nb201_graph(t->ops[ids[i]], node_ops, adj);
        for (int k = 0; k < (with_iso ? 2 : 1); k++) {
            const uint8_t *no = node_ops;
            const float *a = adj;
            if (k == 1) {
                if (tsr_nb201_iso_copy(node_ops, adj, iso_ops, iso_adj)) no = iso_ops, a = iso_adj;
            }
            int row = i + k * B;
            float *xr = tsr_f32(b.x) + (size_t)row * 8 * F;
            if (method == TSR_NF_METHOD_GNN)
                for (int j = 0; j < 8; j++) xr[j * F + no[j]] = 1;
            else tsr_nb201_tokens(no, xr);
            memcpy(tsr_f32(b.adj) + (size_t)row * 64, a, sizeof(float) * 64);
        }
    }
    b.rows = R;
    return b;
}

static tsr_tensor *forward(tsr_ctx *c, const tsr_nf_nb201_pred *p, nb_batch *b) {
    if (p->method == TSR_NF_METHOD_NARFORMER) return tsr_nf_forward(c, &p->nf, b->x, b->adj, NULL);
    if (p->method == TSR_NF_METHOD_MLP) {
        tsr_tensor *h = tsr_relu(c, tsr_linear(c, b->x, p->w[0], p->w[1]));
        h = tsr_relu(c, tsr_linear(c, h, p->w[2], p->w[3]));
        return tsr_neg_logsigmoid(c, tsr_linear(c, h, p->w[4], p->w[5]));
    }
    tsr_tensor *h = b->x;
    for (int l = 0; l < GNN_LAYERS; l++) {
        tsr_tensor *agg = tsr_add(c, h, tsr_matmul(c, b->adj, h, false, false));
        h = tsr_relu(c, tsr_linear(c, agg, p->w[2 * l], p->w[2 * l + 1]));
    }
    h = tsr_mean(c, h, 1, false);
    return tsr_neg_logsigmoid(c, tsr_linear(c, h, p->w[2 * GNN_LAYERS], p->w[2 * GNN_LAYERS + 1]));
}

void tsr_nf_nb201_predict(const tsr_nf_nb201_pred *p, const tsr_nb201 *t, const int32_t *ids, int n, float *out) {
    if (p->method == TSR_NF_METHOD_FLOPS) {
        for (int i = 0; i < n; i++) {
            double f, pa;
            tsr_nb201_cost(t->ops[ids[i]], &f, &pa);
            out[i] = (float)(p->coef[0] + p->coef[1] * f / 1e9 + p->coef[2] * pa / 1e6);
        }
        return;
    }
    tsr_ctx c;
    tsr_ctx_init(&c, 8 << 20);
    c.grad_enabled = false;
    c.training = false;
    for (int s = 0; s < n; s += 500) {
        int B = n - s < 500 ? n - s : 500;
        nb_batch b = make_batch(&c, p->method, t, ids + s, B, false);
        tsr_tensor *y = forward(&c, p, &b);
        for (int i = 0; i < B; i++) out[s + i] = tsr_f32(y)[i] * p->y_scale;
        tsr_ctx_reset(&c);
    }
    tsr_ctx_free(&c);
}

/* ------------------------------------------------------------ trainer hooks */

typedef struct {
    tsr_nf_nb201_pred *p;
    const tsr_nf_nb201_opts *o;
    const tsr_nb201 *t;
    const float *y;
    const int32_t *ids;
    int n_train;
    int32_t *ev_ids;
    int n_ev;
    float *ev_pred, *ev_y;
    int32_t *batch_ids;
} fit_run;

static tsr_status step_fn(void *ud, tsr_ctx *c, const int32_t *idx, int64_t n, float *loss_out) {
    fit_run *r = ud;
    int B = (int)n;
    for (int i = 0; i < B; i++) r->batch_ids[i] = r->ids[idx[i]];
    bool iso = r->p->method == TSR_NF_METHOD_NARFORMER && r->o->lambda_cons > 0;
    nb_batch b = make_batch(c, r->p->method, r->t, r->batch_ids, B, iso);
    tsr_tensor *pred = forward(c, r->p, &b);
    int R = b.rows;
    tsr_tensor *y = tsr_new(c, TSR_F32, TSR_DIMS(R, 1));
    for (int i = 0; i < R; i++) tsr_f32(y)[i] = r->y[r->batch_ids[i % B]] / r->p->y_scale;
    tsr_tensor *loss = tsr_nf_loss_ratio(c, pred, y);
    if (r->o->lambda_sr > 0) {
        tsr_tensor *perm = tsr_new(c, TSR_I32, TSR_DIMS(R));
        for (int i = 0; i < R; i++) tsr_i32(perm)[i] = i;
        tsr_rng_shuffle_i32(&c->rng, tsr_i32(perm), R);
        loss = tsr_add(c, loss, tsr_scale(c, tsr_nf_loss_pairdiff(c, pred, y, perm), r->o->lambda_sr));
    }
    if (iso) {
        tsr_tensor *src = tsr_slice(c, pred, 0, 0, B), *cp = tsr_slice(c, pred, 0, B, 2 * B);
        loss = tsr_add(c, loss, tsr_scale(c, tsr_l1(c, cp, src), r->o->lambda_cons));
    }
    *loss_out = tsr_f32(loss)[0];
    tsr_backward(c, loss);
    return tsr_ok();
}

static tsr_status eval_fn(void *ud, tsr_train_metrics *m) {
    fit_run *r = ud;
    if (r->n_ev <= 0) return tsr_ok();
    tsr_nf_nb201_predict(r->p, r->t, r->ev_ids, r->n_ev, r->ev_pred);
    tsr_nf_metrics mm;
    tsr_nf_metrics_compute(r->ev_pred, r->ev_y, r->n_ev, &mm);
    tsr_train_metric(m, r->o->eval_ids ? "val_tau" : "heldout_tau", mm.kendall_tau);
    tsr_train_metric(m, r->o->eval_ids ? "val_mape" : "heldout_mape", mm.mape);
    return tsr_ok();
}

static tsr_status save_fn(void *ud, const char *path, const char *const *meta, const tsr_train_metrics *ev,
                          bool final) {
    (void)ev;
    (void)final;
    fit_run *r = ud;
    if (r->p->method == TSR_NF_METHOD_NARFORMER) return tsr_nf_model_save(&r->p->nf, path, meta);
    return tsr_params_save(&r->p->params, path, TSR_ST_F32, meta);
}

/* least squares for [1, GFLOPs, Mparams] by the normal equations (3x3) */
static void fit_flops(tsr_nf_nb201_pred *p, const tsr_nb201 *t, const float *y, const int32_t *ids, int n) {
    double A[3][4] = {{0}};
    for (int i = 0; i < n; i++) {
        double f, pa;
        tsr_nb201_cost(t->ops[ids[i]], &f, &pa);
        double v[3] = {1, f / 1e9, pa / 1e6};
        for (int a = 0; a < 3; a++) {
            for (int b = 0; b < 3; b++) A[a][b] += v[a] * v[b];
            A[a][3] += v[a] * y[ids[i]];
        }
    }
    for (int a = 0; a < 3; a++) A[a][a] += 1e-9 * (1 + A[a][a]); /* ridge: FLOPs and params are near-collinear */
    for (int k = 0; k < 3; k++) { /* Gauss-Jordan with partial pivoting */
        int piv = k;
        for (int a = k + 1; a < 3; a++)
            if (fabs(A[a][k]) > fabs(A[piv][k])) piv = a;
        for (int b = 0; b < 4; b++) {
            double tmp = A[k][b];
            A[k][b] = A[piv][b];
            A[piv][b] = tmp;
        }
        double d = A[k][k];
        if (fabs(d) < 1e-300) continue;
        for (int b = 0; b < 4; b++) A[k][b] /= d;
        for (int a = 0; a < 3; a++)
            if (a != k) {
                double f = A[a][k];
                for (int b = 0; b < 4; b++) A[a][b] -= f * A[k][b];
            }
    }
    for (int a = 0; a < 3; a++) p->coef[a] = A[a][3];
}

tsr_status tsr_nf_nb201_fit(tsr_nf_nb201_pred *p, const tsr_nf_nb201_opts *opts, const tsr_nb201 *t,
                            const float *y, const int32_t *ids, int n_train, const tsr_nf_nb201_pred *init,
                            const tsr_train_opts *to, tsr_train_result *res) {
    memset(p, 0, sizeof *p);
    if (res) memset(res, 0, sizeof *res);
    p->method = opts->method;
    if (n_train < 2) return tsr_errorf(TSR_ERR_ARG, "narformer: need at least 2 training cells (got %d)", n_train);
    if (p->method == TSR_NF_METHOD_FLOPS) {
        p->y_scale = 1;
        fit_flops(p, t, y, ids, n_train);
        return tsr_ok();
    }
    if (p->method == TSR_NF_METHOD_KERNEL_SUM)
        return tsr_errorf(TSR_ERR_ARG, "narformer: method kernel-sum needs per-operator latencies (task latency), not NB201 tables");
    /* targets scaled to ~1 by the training mean (accuracy % / 100 in the
     * official code; a latency mean here) */
    double mean = 0;
    for (int i = 0; i < n_train; i++) mean += y[ids[i]];
    p->y_scale = (float)(mean / n_train);
    tsr_status st;
    tsr_params *params;
    uint64_t seed = to->seed * 7919 + 17;
    if (p->method == TSR_NF_METHOD_NARFORMER) {
        if ((st = tsr_nf_model_init(&p->nf, &opts->cfg, seed)).code) return st;
        params = &p->nf.params;
    } else {
        baseline_init(p, opts->hidden, seed);
        params = &p->params;
    }
    if (init) { /* fine-tune: start from its weights */
        const tsr_params *src = init->method == TSR_NF_METHOD_NARFORMER ? &init->nf.params : &init->params;
        TSR_ASSERT(init->method == p->method && src->n == params->n);
        for (int i = 0; i < params->n; i++) {
            TSR_ASSERT(src->items[i]->numel == params->items[i]->numel);
            memcpy(params->items[i]->data, src->items[i]->data, sizeof(float) * (size_t)src->items[i]->numel);
        }
    }
    fit_run r = {.p = p, .o = opts, .t = t, .y = y, .ids = ids, .n_train = n_train};
    r.batch_ids = malloc(sizeof(int32_t) * 4096);
    /* progress evaluation on cells outside the training set (a fixed subset) */
    bool *in_train = calloc((size_t)t->n, 1);
    for (int i = 0; i < n_train; i++) in_train[ids[i]] = true;
    r.ev_ids = malloc(sizeof(int32_t) * (size_t)t->n);
    if (opts->eval_ids) /* given cells (a validation set) */
        for (int i = 0; i < opts->n_eval_ids && r.n_ev < opts->eval_items && r.n_ev < t->n; i++) r.ev_ids[r.n_ev++] = opts->eval_ids[i];
    else
        for (int i = 0; i < t->n && r.n_ev < opts->eval_items; i += 7)
            if (!in_train[i]) r.ev_ids[r.n_ev++] = i;
    free(in_train);
    r.ev_pred = malloc(sizeof(float) * (size_t)(r.n_ev + 1));
    r.ev_y = malloc(sizeof(float) * (size_t)(r.n_ev + 1));
    for (int i = 0; i < r.n_ev; i++) r.ev_y[i] = y[r.ev_ids[i]];
    char cfgv[8][32];
    snprintf(cfgv[0], 32, "%s", tsr_nf_method_name(p->method));
    snprintf(cfgv[1], 32, "%d", n_train);
    snprintf(cfgv[2], 32, "%g", opts->lambda_sr);
    snprintf(cfgv[3], 32, "%g", opts->lambda_cons);
    snprintf(cfgv[4], 32, "%d", opts->hidden);
    snprintf(cfgv[5], 32, "%.9g", p->y_scale);
    snprintf(cfgv[6], 32, "%llu", (unsigned long long)opts->split_seed);
    const char *config[] = {"nb201.method", cfgv[0], "nb201.n_train", cfgv[1], "nb201.lambda_sr", cfgv[2],
                            "nb201.lambda_cons", cfgv[3], "nb201.hidden", cfgv[4], "nb201.y_scale", cfgv[5], "nb201.split_seed", cfgv[6], NULL};
    tsr_train_opts o = *to;
    tsr_train_family f = {.name = "narformer", .params = params, .config = config, .n_items = n_train,
                          .batch = 0, .unit = "cell", .arena_bytes = 32 << 20, .ud = &r,
                          .step = step_fn, .eval = r.n_ev > 0 ? eval_fn : NULL, .save = save_fn};
    f.batch = opts->batch;
    if (f.batch < 1 || f.batch > 2048 || f.batch > n_train) {
        free(r.batch_ids);
        free(r.ev_ids);
        free(r.ev_pred);
        free(r.ev_y);
        tsr_nf_nb201_pred_free(p);
        return tsr_errorf(TSR_ERR_ARG, "narformer: batch %d must be in 1..min(2048, training cells %d)", opts->batch, n_train);
    }
    st = tsr_train_run(&f, &o, res);
    free(r.batch_ids);
    free(r.ev_ids);
    free(r.ev_pred);
    free(r.ev_y);
    if (st.code) tsr_nf_nb201_pred_free(p);
    return st;
}

void tsr_nf_nb201_pred_free(tsr_nf_nb201_pred *p) {
    if (p->method == TSR_NF_METHOD_NARFORMER) {
        if (p->nf.layers) tsr_nf_model_free(&p->nf);
    } else if (p->method == TSR_NF_METHOD_MLP || p->method == TSR_NF_METHOD_GNN) {
        tsr_params_free(&p->params);
    }
    memset(p, 0, sizeof *p);
}
