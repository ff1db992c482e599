/* tessera ops: normalisations over channels of (B,C,...) maps — group norm
 * (diffusion/U-Net style blocks) and batch norm, alone or fused with a
 * ReLU (the CNN classifier's conv blocks), each
 * one tape node with a hand-written backward. Statistics accumulate in
 * double in a fixed order, parallel over independent groups/channels, so
 * results do not depend on the thread count. */
#include "tessera/ops.h"

#include <math.h>
#include <string.h>

#define PAR_MIN 32768

/* Plane sums run in float across SIMD lanes (a fixed order for a given
 * build), planes and channels then combine in double. */
static float vsum(const float *x, int64_t n) {
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}

static float vsum_sq_dev(const float *x, int64_t n, float m) {
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += (x[i] - m) * (x[i] - m);
    return s;
}

/* sum dy and sum dy*(x-m) */
static void vsum_dy(const float *dy, const float *x, int64_t n, float m, float *s1, float *s2) {
    float a = 0.f, b = 0.f;
#pragma omp simd reduction(+ : a, b)
    for (int64_t i = 0; i < n; i++) {
        a += dy[i];
        b += dy[i] * (x[i] - m);
    }
    *s1 = a, *s2 = b;
}

/* ---- group norm: x (B,C,S), stats per (b, group) over C/G*S values */

static void gn_fwd(float *y, float *mean, float *rstd, const float *x, const float *w, const float *b,
                   int B, int C, int64_t S, int G, float eps) {
    int cg = C / G;
    int64_t n = (int64_t)cg * S;
#pragma omp parallel for schedule(static) if ((int64_t)B * C * S > PAR_MIN)
    for (int u = 0; u < B * G; u++) {
        const float *xp = x + (int64_t)u * n;
        double s = 0, v = 0;
        for (int k = 0; k < cg; k++) s += vsum(xp + k * S, S);
        float mf = (float)(s / (double)n);
        for (int k = 0; k < cg; k++) v += vsum_sq_dev(xp + k * S, S, mf);
        double d = (s - (double)mf * n) / (double)n; /* mf's rounding */
        float r = (float)(1.0 / sqrt(v / (double)n - d * d + eps));
        mean[u] = mf, rstd[u] = r;
        int gi = u % G;
        for (int k = 0; k < cg; k++) {
            int ch = gi * cg + k;
            float a = r * (w ? w[ch] : 1.f), bb = b ? b[ch] : 0.f;
            const float *xs = xp + k * S;
            float *ys = y + (int64_t)u * n + k * S;
#pragma omp simd
            for (int64_t i = 0; i < S; i++) ys[i] = (xs[i] - mf) * a + bb;
        }
    }
}

static void gn_bwd(float *dx, float *dw, float *db, const float *dy, const float *x, const float *mean,
                   const float *rstd, const float *w, int B, int C, int64_t S, int G) {
    int cg = C / G;
    int64_t n = (int64_t)cg * S;
    if (dx) {
#pragma omp parallel for schedule(static) if ((int64_t)B * C * S > PAR_MIN)
        for (int u = 0; u < B * G; u++) {
            const float *xp = x + (int64_t)u * n, *gp = dy + (int64_t)u * n;
            float m = mean[u], r = rstd[u];
            int gi = u % G;
            double s1 = 0, s2 = 0; /* sum dxhat, sum dxhat*xhat */
            for (int k = 0; k < cg; k++) {
                float wc = w ? w[gi * cg + k] : 1.f, t1, t2;
                vsum_dy(gp + k * S, xp + k * S, S, m, &t1, &t2);
                s1 += (double)t1 * wc;
                s2 += (double)t2 * wc * r;
            }
            float a = (float)(s1 / (double)n), bq = (float)(s2 / (double)n);
            float *dp = dx + (int64_t)u * n;
            for (int k = 0; k < cg; k++) {
                float wc = w ? w[gi * cg + k] : 1.f;
#pragma omp simd
                for (int64_t i = k * S; i < (k + 1) * S; i++)
                    dp[i] += r * (gp[i] * wc - a - (xp[i] - m) * r * bq);
            }
        }
    }
    if (dw || db) {
#pragma omp parallel for schedule(static) if ((int64_t)B * C * S > PAR_MIN)
        for (int ch = 0; ch < C; ch++) {
            double sw = 0, sb = 0;
            for (int bi = 0; bi < B; bi++) {
                int u = bi * G + ch / cg;
                int64_t o = ((int64_t)bi * C + ch) * S;
                float t1, t2;
                vsum_dy(dy + o, x + o, S, mean[u], &t1, &t2);
                sw += (double)t2 * rstd[u];
                sb += t1;
            }
            if (dw) dw[ch] += (float)sw;
            if (db) db[ch] += (float)sb;
        }
    }
}

static int64_t spatial(const tsr_tensor *x) {
    int64_t s = 1;
    for (int i = 2; i < x->ndim; i++) s *= x->shape[i];
    return s;
}

static void check_affine(const tsr_tensor *t, int64_t C) {
    if (t) TSR_ASSERT(t->dtype == TSR_F32 && t->numel == C);
}

static void groupnorm_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int B = (int)x->shape[0], C = (int)x->shape[1], G = (int)n->iarg[0];
    const float *mean = n->saved, *rstd = mean + B * G;
    gn_bwd(x->requires_grad ? tsr_grad(c, x) : NULL, w && w->requires_grad ? tsr_grad(c, w) : NULL,
           b && b->requires_grad ? tsr_grad(c, b) : NULL, n->out->grad, tsr_f32(x), mean, rstd,
           w ? tsr_f32(w) : NULL, B, C, spatial(x), G);
}

tsr_tensor *tsr_groupnorm(tsr_ctx *c, tsr_tensor *x, int groups, tsr_tensor *w, tsr_tensor *b,
                          float eps) {
    TSR_ASSERT(x->dtype == TSR_F32 && x->ndim >= 2);
    int B = (int)x->shape[0], C = (int)x->shape[1];
    TSR_ASSERT(groups >= 1 && C % groups == 0);
    check_affine(w, C);
    check_affine(b, C);
    tsr_tensor *y = tsr_new_like(c, x);
    float *stats = tsr_arena_alloc(&c->arena, sizeof(float) * 2 * (size_t)B * groups);
    gn_fwd(tsr_f32(y), stats, stats + B * groups, tsr_f32(x), w ? tsr_f32(w) : NULL, b ? tsr_f32(b) : NULL, B,
           C, spatial(x), groups, eps);
    tsr_tensor *ins[3] = {x, w, b};
    tsr_node *n = tsr_record(c, "groupnorm", groupnorm_backward, y, 3, ins);
    if (n) {
        n->saved = stats;
        n->iarg[0] = groups;
    }
    return y;
}

/* ---- batch norm: x (B,C,S), stats per channel over B*S values; the
 * classifier's conv blocks use the fused batch norm + ReLU node */

/* batch mean and biased variance per channel in one pass: sums of x - k
 * and (x - k)^2 with k the channel's first value, which keeps the
 * subtraction E[d^2] - E[d]^2 free of cancellation for any offset */
static void bn_stats(float *mean, double *var, const float *x, int B, int C, int64_t S) {
#pragma omp parallel for schedule(static) if ((int64_t)B * C * S > PAR_MIN)
    for (int ch = 0; ch < C; ch++) {
        float k = x[(int64_t)ch * S];
        double s1 = 0, s2 = 0;
        for (int bi = 0; bi < B; bi++) {
            const float *xp = x + ((int64_t)bi * C + ch) * S;
            float a = 0.f, q = 0.f;
#pragma omp simd reduction(+ : a, q)
            for (int64_t i = 0; i < S; i++) {
                float d = xp[i] - k;
                a += d;
                q += d * d;
            }
            s1 += a, s2 += q;
        }
        double n = (double)B * S, md = s1 / n, mean_d = (double)k + md;
        float m = (float)mean_d;
        double v = s2 / n - md * md, off = mean_d - (double)m;
        mean[ch] = m;
        /* the apply pass centres on the rounded mean m */
        var[ch] = (v > 0 ? v : 0) + off * off;
    }
}

// y = (x - mean) * rstd * w + b per channel, then max(y, 0) when relu
static void bn_apply(float *y, const float *x, const float *mean, const float *rstd, const float *w,
                     const float *b, int B, int C, int64_t S, bool relu) {
#pragma omp parallel for schedule(static) if ((int64_t)B * C * S > PAR_MIN)
    for (int u = 0; u < B * C; u++) {
        int ch = u % C;
        float a = rstd[ch] * (w ? w[ch] : 1.f), m = mean[ch], bb = b ? b[ch] : 0.f;
        const float *xs = x + (int64_t)u * S;
        float *ys = y + (int64_t)u * S;
        if (relu) {
#pragma omp simd
            for (int64_t i = 0; i < S; i++) {
                float v = (xs[i] - m) * a + bb;
                ys[i] = v > 0.0f ? v : 0.0f;
            }
        } else {
#pragma omp simd
            for (int64_t i = 0; i < S; i++) ys[i] = (xs[i] - m) * a + bb;
        }
    }
}

/* sum g and sum g*(x-m) with g = dy where y > 0, else 0 */
static void vsum_dy_masked(const float *dy, const float *y, const float *x, int64_t n, float m, float *s1,
                           float *s2) {
    float a = 0.f, b = 0.f;
#pragma omp simd reduction(+ : a, b)
    for (int64_t i = 0; i < n; i++) {
        float g = y[i] > 0.0f ? dy[i] : 0.0f;
        a += g;
        b += g * (x[i] - m);
    }
    *s1 = a, *s2 = b;
}

/* training: dx = w*rstd*(g - mean(g) - xhat*mean(g*xhat)); eval: the
 * statistics are constants, dx = w*rstd*g. g = dy, or with ymask (the
 * fused ReLU's output) dy where ymask > 0. overwrite: dx holds garbage
 * and is written, not accumulated. */
static void bn_bwd(float *dx, float *dw, float *db, const float *dy, const float *x, const float *ymask,
                   const float *mean, const float *rstd, const float *w, int B, int C, int64_t S, bool training,
                   bool overwrite) {
    double cnt = (double)B * S;
#pragma omp parallel for schedule(static) if ((int64_t)B * C * S > PAR_MIN)
    for (int ch = 0; ch < C; ch++) {
        float m = mean[ch], r = rstd[ch];
        double s1 = 0, s2 = 0; /* sum g, sum g*xhat */
        for (int bi = 0; bi < B; bi++) {
            int64_t o = ((int64_t)bi * C + ch) * S;
            float t1, t2;
            if (ymask) vsum_dy_masked(dy + o, ymask + o, x + o, S, m, &t1, &t2);
            else vsum_dy(dy + o, x + o, S, m, &t1, &t2);
            s1 += t1, s2 += (double)t2 * r;
        }
        if (dw) dw[ch] += (float)s2;
        if (db) db[ch] += (float)s1;
        if (!dx) continue;
        float k = r * (w ? w[ch] : 1.f);
        float a = training ? (float)(s1 / cnt) : 0.f, q = training ? (float)(s2 / cnt) : 0.f;
        for (int bi = 0; bi < B; bi++) {
            int64_t o = ((int64_t)bi * C + ch) * S;
            const float *xs = x + o, *gs = dy + o, *ys = ymask ? ymask + o : NULL;
            float *ds = dx + o;
            if (ys && overwrite) {
#pragma omp simd
                for (int64_t i = 0; i < S; i++)
                    ds[i] = k * ((ys[i] > 0.0f ? gs[i] : 0.0f) - a - (xs[i] - m) * r * q);
            } else if (ys) {
#pragma omp simd
                for (int64_t i = 0; i < S; i++)
                    ds[i] += k * ((ys[i] > 0.0f ? gs[i] : 0.0f) - a - (xs[i] - m) * r * q);
            } else if (overwrite) {
#pragma omp simd
                for (int64_t i = 0; i < S; i++) ds[i] = k * (gs[i] - a - (xs[i] - m) * r * q);
            } else {
#pragma omp simd
                for (int64_t i = 0; i < S; i++) ds[i] += k * (gs[i] - a - (xs[i] - m) * r * q);
            }
        }
    }
}

/* x's grad buffer; *fresh when it was not there yet, so the caller may
 * write it instead of zeroing and accumulating */
static float *grad_buffer(tsr_ctx *c, tsr_tensor *x, bool *fresh) {
    *fresh = !x->grad && !x->is_param;
    if (*fresh) x->grad = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)x->numel);
    else if (x->grad_rows) x->grad_rows_all = true; /* see tsr_grad */
    return x->grad;
}

static void batchnorm_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int C = (int)x->shape[1];
    const float *mean = n->saved, *rstd = mean + C;
    bool relu = n->iarg[1], fresh = false;
    float *dx = x->requires_grad ? grad_buffer(c, x, &fresh) : NULL;
    bn_bwd(dx, w && w->requires_grad ? tsr_grad(c, w) : NULL, b && b->requires_grad ? tsr_grad(c, b) : NULL,
           n->out->grad, tsr_f32(x), relu ? tsr_f32(n->out) : NULL, mean, rstd, w ? tsr_f32(w) : NULL,
           (int)x->shape[0], C, spatial(x), n->iarg[0], fresh);
}

static tsr_tensor *batchnorm_impl(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b,
                                  tsr_tensor *running_mean, tsr_tensor *running_var, float momentum, float eps,
                                  bool relu) {
    TSR_ASSERT(x->dtype == TSR_F32 && x->ndim >= 2);
    int B = (int)x->shape[0], C = (int)x->shape[1];
    int64_t S = spatial(x);
    check_affine(w, C);
    check_affine(b, C);
    check_affine(running_mean, C);
    check_affine(running_var, C);
    TSR_ASSERT((running_mean == NULL) == (running_var == NULL));
    /* without running buffers torch normalises with batch stats in eval too */
    bool batch_stats = c->training || !running_mean;
    float *stats = tsr_arena_alloc(&c->arena, sizeof(float) * 2 * (size_t)C);
    float *mean = stats, *rstd = stats + C;
    if (batch_stats) {
        double *var = tsr_arena_alloc(&c->arena, sizeof(double) * (size_t)C);
        TSR_ASSERT((int64_t)B * S > 1); /* torch: more than one value per channel */
        bn_stats(mean, var, tsr_f32(x), B, C, S);
        for (int ch = 0; ch < C; ch++) rstd[ch] = (float)(1.0 / sqrt(var[ch] + eps));
        if (c->training && running_mean) {
            float *rm = tsr_f32(running_mean), *rv = tsr_f32(running_var);
            double unb = (double)B * S / ((double)B * S - 1);
            for (int ch = 0; ch < C; ch++) {
                rm[ch] = (1.f - momentum) * rm[ch] + momentum * mean[ch];
                rv[ch] = (1.f - momentum) * rv[ch] + momentum * (float)(var[ch] * unb);
            }
        }
    } else {
        const float *rm = tsr_f32(running_mean), *rv = tsr_f32(running_var);
        for (int ch = 0; ch < C; ch++) {
            mean[ch] = rm[ch];
            rstd[ch] = 1.f / sqrtf(rv[ch] + eps);
        }
    }
    tsr_tensor *y = tsr_new_like(c, x);
    bn_apply(tsr_f32(y), tsr_f32(x), mean, rstd, w ? tsr_f32(w) : NULL, b ? tsr_f32(b) : NULL, B, C, S, relu);
    tsr_tensor *ins[3] = {x, w, b};
    tsr_node *n = tsr_record(c, relu ? "batchnorm_relu" : "batchnorm", batchnorm_backward, y, 3, ins);
    if (n) {
        n->saved = stats;
        n->iarg[0] = batch_stats;
        n->iarg[1] = relu;
    }
    return y;
}

tsr_tensor *tsr_batchnorm(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b,
                          tsr_tensor *running_mean, tsr_tensor *running_var, float momentum,
                          float eps) {
    return batchnorm_impl(c, x, w, b, running_mean, running_var, momentum, eps, false);
}

tsr_tensor *tsr_batchnorm_relu(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b,
                               tsr_tensor *running_mean, tsr_tensor *running_var, float momentum,
                               float eps) {
    return batchnorm_impl(c, x, w, b, running_mean, running_var, momentum, eps, true);
}
