/* tessera ops: losses. Cross-entropy with a fused log-softmax (the LM
 * training hot path: logits (B*T, V) with V in the thousands), BCE with
 * logits, MSE and L1. Each is one tape node producing a scalar.
 *
 * Cross-entropy definition (matches torch.nn.functional.cross_entropy with
 * reduction='none' per row, then our weighted mean):
 *   l_i = (1-ls) * (lse_i - x_{i,t_i}) + (ls/V) * sum_c (lse_i - x_{i,c})
 *   loss = sum_i w_i l_i / sum_i w_i   over rows with t_i != ignore_index
 * With all w_i = 1 this is torch's reduction='mean' (which also divides by
 * the number of non-ignored rows when label smoothing is on). A per-token
 * weight scales the whole row loss, smoothing term included; this equals
 * torch's per-class `weight` only when ls = 0 and w_i = weight[t_i]. When
 * no row counts the loss is 0 (torch gives NaN) and all grads are 0. */
#include "tessera/ops.h"

#include <math.h>
#include <string.h>

#define PAR_MIN (1 << 15)
/* fixed chunk count for ordered partial sums: results do not depend on the
 * thread count */
#define SUM_CHUNKS 32

/* ----------------------------------------------------------- cross-entropy */

float tsr_cross_entropy_fwd(float *row_loss, float *lse, const float *logits, const int32_t *targets,
                            const float *weights, int64_t N, int64_t V, int ignore_index,
                            float label_smoothing) {
    const float ls = label_smoothing;
#pragma omp parallel for schedule(static) if (N * V >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        int32_t t = targets[i];
        if (t == ignore_index) {
            row_loss[i] = 0;
            lse[i] = 0;
            continue;
        }
        TSR_ASSERT(t >= 0 && t < V);
        const float *xr = logits + i * V;
        float m = tsr_row_max(xr, V);
        float s = 0, sd = 0;
        if (ls != 0.0f) {
            /* sum of (m - x) >= 0 terms: better conditioned than sum(x)
             * when logits are large */
#pragma omp simd reduction(+ : s, sd)
            for (int64_t j = 0; j < V; j++) {
                s += tsr_expf_fast(xr[j] - m);
                sd += m - xr[j];
            }
        } else {
#pragma omp simd reduction(+ : s)
            for (int64_t j = 0; j < V; j++) s += tsr_expf_fast(xr[j] - m);
        }
        float logs = logf(s);
        lse[i] = m + logs;
        row_loss[i] = (1.0f - ls) * ((m - xr[t]) + logs) + ls * (sd / (float)V + logs);
    }
    double num = 0, den = 0;
    for (int64_t i = 0; i < N; i++) {
        if (targets[i] == ignore_index) continue;
        double w = weights ? weights[i] : 1.0;
        num += w * row_loss[i];
        den += w;
    }
    return den != 0 ? (float)(num / den) : 0.0f;
}

float tsr_cross_entropy_fwd_ref(const float *logits, const int32_t *targets, const float *weights,
                                int64_t N, int64_t V, int ignore_index, float label_smoothing) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < N; i++) {
        if (targets[i] == ignore_index) continue;
        const float *xr = logits + i * V;
        double m = xr[0], s = 0, sl = 0;
        for (int64_t j = 1; j < V; j++) m = xr[j] > m ? xr[j] : m;
        for (int64_t j = 0; j < V; j++) s += exp(xr[j] - m);
        double lse = m + log(s);
        for (int64_t j = 0; j < V; j++) sl += lse - xr[j];
        double l = (1.0 - label_smoothing) * (lse - xr[targets[i]]) + label_smoothing * sl / (double)V;
        double w = weights ? weights[i] : 1.0;
        num += w * l;
        den += w;
    }
    return den != 0 ? (float)(num / den) : 0.0f;
}

static double ce_weight_sum(const int32_t *targets, const float *weights, int64_t N, int ignore_index) {
    double den = 0;
    for (int64_t i = 0; i < N; i++)
        if (targets[i] != ignore_index) den += weights ? weights[i] : 1.0;
    return den;
}

void tsr_cross_entropy_bwd(float *dlogits, const float *logits, const float *lse,
                           const int32_t *targets, const float *weights, int64_t N, int64_t V,
                           int ignore_index, float label_smoothing, float gscale) {
    double den = ce_weight_sum(targets, weights, N, ignore_index);
    if (den == 0) return;
    const float ls = label_smoothing;
#pragma omp parallel for schedule(static) if (N * V >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        int32_t t = targets[i];
        if (t == ignore_index) continue;
        float k = (float)((double)gscale * (weights ? weights[i] : 1.0) / den);
        if (k == 0.0f) continue;
        const float *xr = logits + i * V;
        float *dr = dlogits + i * V;
        float l = lse[i], u = k * ls / (float)V;
#pragma omp simd
        for (int64_t j = 0; j < V; j++) dr[j] += k * tsr_expf_fast(xr[j] - l) - u;
        dr[t] -= k * (1.0f - ls);
    }
}

void tsr_cross_entropy_bwd_ref(float *dlogits, const float *logits, const int32_t *targets,
                               const float *weights, int64_t N, int64_t V, int ignore_index,
                               float label_smoothing, float gscale) {
    double den = ce_weight_sum(targets, weights, N, ignore_index);
    if (den == 0) return;
    for (int64_t i = 0; i < N; i++) {
        if (targets[i] == ignore_index) continue;
        const float *xr = logits + i * V;
        double m = xr[0], s = 0;
        for (int64_t j = 1; j < V; j++) m = xr[j] > m ? xr[j] : m;
        for (int64_t j = 0; j < V; j++) s += exp(xr[j] - m);
        double k = gscale * (weights ? weights[i] : 1.0) / den;
        for (int64_t j = 0; j < V; j++) {
            double p = exp(xr[j] - m) / s;
            double y = (1.0 - label_smoothing) * (j == targets[i]) + label_smoothing / (double)V;
            dlogits[i * V + j] += (float)(k * (p - y));
        }
    }
}

typedef struct {
    const int32_t *targets;
    const float *weights;
    float *lse;
} ce_saved;

static void cross_entropy_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    ce_saved *s = n->saved;
    int64_t V = x->shape[x->ndim - 1];
    tsr_cross_entropy_bwd(tsr_grad(c, x), tsr_f32(x), s->lse, s->targets, s->weights, x->numel / V,
                          V, (int)n->iarg[0], n->farg[0], n->out->grad[0]);
}

tsr_tensor *tsr_cross_entropy(tsr_ctx *c, tsr_tensor *logits, const tsr_tensor *targets,
                              const tsr_tensor *weights, int ignore_index, float label_smoothing) {
    TSR_ASSERT(logits->dtype == TSR_F32 && logits->ndim >= 1);
    int64_t V = logits->shape[logits->ndim - 1], N = logits->numel / V;
    TSR_ASSERT(V > 0);
    TSR_ASSERT(targets->dtype == TSR_I32 && targets->numel == N);
    if (weights) TSR_ASSERT(weights->dtype == TSR_F32 && weights->numel == N);
    TSR_ASSERT(label_smoothing >= 0.0f && label_smoothing <= 1.0f);
    ce_saved *s = tsr_arena_alloc(&c->arena, sizeof *s);
    s->targets = tsr_i32(targets);
    s->weights = weights ? tsr_f32(weights) : NULL;
    s->lse = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)(N ? N : 1));
    float *row = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)(N ? N : 1));
    tsr_tensor *out = tsr_new(c, TSR_F32, 0, NULL);
    tsr_f32(out)[0] = tsr_cross_entropy_fwd(row, s->lse, tsr_f32(logits), s->targets, s->weights, N,
                                            V, ignore_index, label_smoothing);
    tsr_node *n = tsr_record(c, "cross_entropy", cross_entropy_backward, out, 1, &logits);
    if (n) {
        n->saved = s;
        n->iarg[0] = ignore_index;
        n->farg[0] = label_smoothing;
    }
    return out;
}

/* ----------------------------------------------------------- BCE with logits */

/* log(1 + e^z) without overflow */
static inline float softplus(float z) {
    return (z > 0 ? z : 0.0f) + log1pf(tsr_expf_fast(-fabsf(z)));
}

static inline float sigmoid(float z) {
    float e = tsr_expf_fast(-fabsf(z));
    return z >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

/* -log s(x) = softplus(-x), -log(1 - s(x)) = softplus(x) */
static double bce_sum(const float *x, const float *y, const float *wt, float pos_w, float neg_w,
                      int64_t n) {
    int64_t P = n < SUM_CHUNKS ? n : SUM_CHUNKS;
    double part[SUM_CHUNKS];
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t p = 0; p < P; p++) {
        double s = 0;
        for (int64_t i = n * p / P; i < n * (p + 1) / P; i++) {
            float l = pos_w * y[i] * softplus(-x[i]) + neg_w * (1.0f - y[i]) * softplus(x[i]);
            s += wt ? (double)wt[i] * l : l;
        }
        part[p] = s;
    }
    double s = 0;
    for (int64_t p = 0; p < P; p++) s += part[p];
    return s;
}

static void bce_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    const float **sv = n->saved;
    const float *y = sv[0], *wt = sv[1];
    const float pos_w = n->farg[0], neg_w = n->farg[1];
    const float *X = tsr_f32(x);
    float *dx = tsr_grad(c, x);
    int64_t N = x->numel;
    float k = n->out->grad[0] / (float)N;
#pragma omp parallel for schedule(static) if (N >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        float sg = sigmoid(X[i]);
        float g = pos_w * y[i] * (sg - 1.0f) + neg_w * (1.0f - y[i]) * sg;
        dx[i] += k * (wt ? wt[i] * g : g);
    }
}

tsr_tensor *tsr_bce_with_logits(tsr_ctx *c, tsr_tensor *logits, const tsr_tensor *targets,
                                const tsr_tensor *weight, float pos_w, float neg_w) {
    TSR_ASSERT(logits->dtype == TSR_F32 && targets->dtype == TSR_F32);
    TSR_ASSERT(targets->numel == logits->numel && logits->numel > 0);
    if (weight) TSR_ASSERT(weight->dtype == TSR_F32 && weight->numel == logits->numel);
    tsr_tensor *out = tsr_new(c, TSR_F32, 0, NULL);
    const float *wt = weight ? tsr_f32(weight) : NULL;
    tsr_f32(out)[0] = (float)(bce_sum(tsr_f32(logits), tsr_f32(targets), wt, pos_w, neg_w,
                                      logits->numel) / (double)logits->numel);
    tsr_node *n = tsr_record(c, "bce_with_logits", bce_backward, out, 1, &logits);
    if (n) {
        const float **sv = tsr_arena_alloc(&c->arena, 2 * sizeof(float *));
        sv[0] = tsr_f32(targets);
        sv[1] = wt;
        n->saved = (void *)sv;
        n->farg[0] = pos_w;
        n->farg[1] = neg_w;
    }
    return out;
}

/* -------------------------------------------------------------- MSE and L1 */

static double diff_sum(const float *a, const float *b, int64_t n, bool l1) {
    int64_t P = n < SUM_CHUNKS ? n : SUM_CHUNKS;
    double part[SUM_CHUNKS];
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t p = 0; p < P; p++) {
        double s = 0;
        for (int64_t i = n * p / P; i < n * (p + 1) / P; i++) {
            float d = a[i] - b[i];
            s += l1 ? fabsf(d) : d * d;
        }
        part[p] = s;
    }
    double s = 0;
    for (int64_t p = 0; p < P; p++) s += part[p];
    return s;
}

static void diff_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *a = n->in[0], *b = n->in[1];
    bool l1 = n->iarg[0];
    int64_t N = a->numel;
    const float *A = tsr_f32(a), *B = tsr_f32(b);
    float k = n->out->grad[0] / (float)N;
    float *da = a->requires_grad ? tsr_grad(c, a) : NULL;
    float *db = b->requires_grad ? tsr_grad(c, b) : NULL;
#pragma omp parallel for schedule(static) if (N >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        float d = A[i] - B[i];
        float g = l1 ? k * (float)((d > 0) - (d < 0)) : 2.0f * k * d;
        if (da) da[i] += g;
        if (db) db[i] -= g;
    }
}

static tsr_tensor *diff_loss(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b, bool l1) {
    TSR_ASSERT(a->dtype == TSR_F32 && b->dtype == TSR_F32);
    TSR_ASSERT(a->numel == b->numel && a->numel > 0);
    tsr_tensor *out = tsr_new(c, TSR_F32, 0, NULL);
    tsr_f32(out)[0] = (float)(diff_sum(tsr_f32(a), tsr_f32(b), a->numel, l1) / (double)a->numel);
    tsr_tensor *ins[2] = {a, b};
    tsr_node *n = tsr_record(c, l1 ? "l1" : "mse", diff_backward, out, 2, ins);
    if (n) n->iarg[0] = l1;
    return out;
}

tsr_tensor *tsr_mse(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b) { return diff_loss(c, a, b, false); }
tsr_tensor *tsr_l1(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b) { return diff_loss(c, a, b, true); }
