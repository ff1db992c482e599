/* tessera ops: row L2 normalisation and -logsigmoid, for narformer's
 * graph-aided attention (the aggregated features are L2-normalised, NAR-
 * Former V2 eq. 4) and its latency/accuracy heads (-logsigmoid keeps the
 * prediction positive). Plain loops; rows are short (the model width). */
#include "tessera/ops_graph.h"

#include <math.h>

void tsr_l2norm_fwd(float *y, float *nrm, const float *x, int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= (1 << 16))
    for (int64_t i = 0; i < N; i++) {
        const float *xr = x + i * C;
        float *yr = y + i * C;
        float ss = 0;
        for (int64_t j = 0; j < C; j++) ss += xr[j] * xr[j];
        float n = sqrtf(ss);
        nrm[i] = n;
        float inv = 1.0f / (n > eps ? n : eps);
        for (int64_t j = 0; j < C; j++) yr[j] = xr[j] * inv;
    }
}

void tsr_l2norm_fwd_ref(float *y, const float *x, int64_t N, int64_t C, float eps) {
    for (int64_t i = 0; i < N; i++) {
        double ss = 0;
        for (int64_t j = 0; j < C; j++) ss += (double)x[i * C + j] * x[i * C + j];
        double n = sqrt(ss);
        double d = n > eps ? n : eps;
        for (int64_t j = 0; j < C; j++) y[i * C + j] = (float)(x[i * C + j] / d);
    }
}

void tsr_l2norm_bwd(float *dx, const float *dy, const float *y, const float *nrm, int64_t N,
                    int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= (1 << 16))
    for (int64_t i = 0; i < N; i++) {
        const float *g = dy + i * C, *yr = y + i * C;
        float *d = dx + i * C;
        if (nrm[i] > eps) {
            float dot = 0;
            for (int64_t j = 0; j < C; j++) dot += yr[j] * g[j];
            float inv = 1.0f / nrm[i];
            for (int64_t j = 0; j < C; j++) d[j] += (g[j] - yr[j] * dot) * inv;
        } else {
            /* the denominator is the constant eps */
            for (int64_t j = 0; j < C; j++) d[j] += g[j] / eps;
        }
    }
}

void tsr_l2norm_bwd_ref(float *dx, const float *dy, const float *x, int64_t N, int64_t C, float eps) {
    for (int64_t i = 0; i < N; i++) {
        double ss = 0;
        for (int64_t j = 0; j < C; j++) ss += (double)x[i * C + j] * x[i * C + j];
        double n = sqrt(ss);
        for (int64_t j = 0; j < C; j++) {
            double acc;
            if (n > eps) {
                /* d y_k / d x_j = (delta_jk - x_j x_k / n^2) / n */
                acc = 0;
                for (int64_t k = 0; k < C; k++)
                    acc += dy[i * C + k] * ((j == k ? 1.0 : 0.0) - (double)x[i * C + j] * x[i * C + k] / (n * n)) / n;
            } else {
                acc = dy[i * C + j] / eps;
            }
            dx[i * C + j] += (float)acc;
        }
    }
}

void tsr_neg_logsigmoid_fwd(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = fmaxf(-v, 0.0f) + log1pf(expf(-fabsf(v)));
    }
}

void tsr_neg_logsigmoid_fwd_ref(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        y[i] = (float)(v > 0 ? log1p(exp(-v)) : -v + log1p(exp(v)));
    }
}

void tsr_neg_logsigmoid_bwd(float *dx, const float *dy, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        /* sigmoid(v) - 1 = -sigmoid(-v), formed without overflow */
        float s = v >= 0 ? expf(-v) / (1.0f + expf(-v)) : 1.0f / (1.0f + expf(v));
        dx[i] -= dy[i] * s;
    }
}

/* ------------------------------------------------------------ autograd */

static void l2norm_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    if (!x->requires_grad) return;
    int64_t C = x->shape[x->ndim - 1], N = x->numel / C;
    tsr_l2norm_bwd(tsr_grad(c, x), n->out->grad, tsr_f32(n->out), n->saved, N, C, n->farg[0]);
}

tsr_tensor *tsr_l2_normalize(tsr_ctx *c, tsr_tensor *x, float eps) {
    TSR_ASSERT(x->dtype == TSR_F32 && x->ndim >= 1);
    int64_t C = x->shape[x->ndim - 1], N = x->numel / C;
    tsr_tensor *y = tsr_new_like(c, x);
    float *nrm = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)(N > 0 ? N : 1));
    tsr_l2norm_fwd(tsr_f32(y), nrm, tsr_f32(x), N, C, eps);
    tsr_node *n = tsr_record(c, "l2_normalize", l2norm_backward, y, 1, &x);
    if (n) {
        n->saved = nrm;
        n->farg[0] = eps;
    }
    return y;
}

static void nls_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    if (!x->requires_grad) return;
    tsr_neg_logsigmoid_bwd(tsr_grad(c, x), n->out->grad, tsr_f32(x), x->numel);
}

tsr_tensor *tsr_neg_logsigmoid(tsr_ctx *c, tsr_tensor *x) {
    TSR_ASSERT(x->dtype == TSR_F32);
    tsr_tensor *y = tsr_new_like(c, x);
    tsr_neg_logsigmoid_fwd(tsr_f32(y), tsr_f32(x), x->numel);
    tsr_record(c, "neg_logsigmoid", nls_backward, y, 1, &x);
    return y;
}
