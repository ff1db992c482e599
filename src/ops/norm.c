/* tessera ops: layer norm, RMS norm (Llama), softmax and log-softmax over the
 * last dim. Used by every transformer family (pre-norm blocks, attention
 * probabilities, sampling). Each op is one tape node with a hand-fused
 * backward; the row statistics the backward needs (mean, 1/std) are saved
 * in the step arena rather than recomputed. Naive double `_ref` twins sit
 * beside the optimised kernels. */
#include "tessera/ops.h"

#include <math.h>
#include <string.h>

/* below this many elements a parallel region costs more than it saves */
#define PAR_MIN (1 << 15)

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* ------------------------------------------------------------ layer norm */

ALWAYS_INLINE void ln_row_fwd(float *yr, float *shift_out, float *rstd_out, const float *xr,
                              const float *w, const float *b, int64_t C, float eps, bool has_w,
                              bool has_b) {
    /* Everything is taken about x[0]: x - x0 is exact for nearby values and
     * the small mean offset d carries full precision, so a large common
     * offset (|mean| >> std) costs no accuracy; the second pass over the
     * cache-resident row gives the variance about the mean. */
    const float x0 = xr[0];
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < C; j++) s += xr[j] - x0;
    float d = s / (float)C;
    float v = 0;
#pragma omp simd reduction(+ : v)
    for (int64_t j = 0; j < C; j++) {
        float e = (xr[j] - x0) - d;
        v += e * e;
    }
    float rs = 1.0f / sqrtf(v / (float)C + eps);
    if (shift_out) *shift_out = d;
    if (rstd_out) *rstd_out = rs;
#pragma omp simd
    for (int64_t j = 0; j < C; j++) {
        float o = ((xr[j] - x0) - d) * rs;
        if (has_w) o *= w[j];
        if (has_b) o += b[j];
        yr[j] = o;
    }
}

void tsr_layernorm_fwd(float *y, float *shift, float *rstd, const float *x, const float *w,
                       const float *b, int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        float *mo = shift ? shift + i : NULL, *ro = rstd ? rstd + i : NULL;
        if (w && b) ln_row_fwd(y + i * C, mo, ro, x + i * C, w, b, C, eps, true, true);
        else if (w) ln_row_fwd(y + i * C, mo, ro, x + i * C, w, b, C, eps, true, false);
        else if (b) ln_row_fwd(y + i * C, mo, ro, x + i * C, w, b, C, eps, false, true);
        else ln_row_fwd(y + i * C, mo, ro, x + i * C, w, b, C, eps, false, false);
    }
}

void tsr_layernorm_fwd_ref(float *y, const float *x, const float *w, const float *b, int64_t N,
                           int64_t C, float eps) {
    for (int64_t i = 0; i < N; i++) {
        const float *xr = x + i * C;
        double m = 0, v = 0;
        for (int64_t j = 0; j < C; j++) m += xr[j];
        m /= (double)C;
        for (int64_t j = 0; j < C; j++) v += (xr[j] - m) * (xr[j] - m);
        double rs = 1.0 / sqrt(v / (double)C + eps);
        for (int64_t j = 0; j < C; j++)
            y[i * C + j] = (float)((xr[j] - m) * rs * (w ? w[j] : 1.0) + (b ? b[j] : 0.0));
    }
}

/* One row of the backward. With g = dy*w and xh the normalised input,
 * dx = rstd * (g - mean(g) - xh * mean(g*xh)). */
ALWAYS_INLINE void ln_row_bwd(float *dxr, float *pw, float *pb, const float *dyr, const float *xr,
                              const float *w, float d, float rs, int64_t C, bool has_w) {
    const float x0 = xr[0];
    float sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t j = 0; j < C; j++) {
        float g = has_w ? dyr[j] * w[j] : dyr[j];
        float xh = ((xr[j] - x0) - d) * rs;
        sg += g;
        sgx += g * xh;
    }
    if (pw) {
#pragma omp simd
        for (int64_t j = 0; j < C; j++) pw[j] += dyr[j] * ((xr[j] - x0) - d) * rs;
    }
    if (pb) {
#pragma omp simd
        for (int64_t j = 0; j < C; j++) pb[j] += dyr[j];
    }
    if (dxr) {
        float a = sg / (float)C, bb = sgx / (float)C;
#pragma omp simd
        for (int64_t j = 0; j < C; j++) {
            float g = has_w ? dyr[j] * w[j] : dyr[j];
            float xh = ((xr[j] - x0) - d) * rs;
            dxr[j] += rs * (g - a - xh * bb);
        }
    }
}

/* Sum the per-chunk partials in chunk order (deterministic) into dst. */
static void reduce_chunks(float *dst, const float *part, int64_t P, int64_t C) {
#pragma omp parallel for schedule(static) if (P * C >= PAR_MIN)
    for (int64_t j = 0; j < C; j++) {
        float s = 0;
        for (int64_t p = 0; p < P; p++) s += part[p * C + j];
        dst[j] += s;
    }
}

void tsr_layernorm_bwd(float *dx, float *dw, float *db, float *scratch, const float *dy,
                       const float *x, const float *w, const float *shift, const float *rstd,
                       int64_t N, int64_t C) {
    int64_t P = N < TSR_NORM_CHUNKS ? N : TSR_NORM_CHUNKS;
    float *dwp = dw ? scratch : NULL, *dbp = db ? scratch + P * C : NULL;
#pragma omp parallel for schedule(static) if (N * C >= PAR_MIN)
    for (int64_t p = 0; p < P; p++) {
        float *pw = dwp ? dwp + p * C : NULL, *pb = dbp ? dbp + p * C : NULL;
        if (pw) memset(pw, 0, sizeof(float) * (size_t)C);
        if (pb) memset(pb, 0, sizeof(float) * (size_t)C);
        for (int64_t i = N * p / P; i < N * (p + 1) / P; i++) {
            float *dxr = dx ? dx + i * C : NULL;
            if (w) ln_row_bwd(dxr, pw, pb, dy + i * C, x + i * C, w, shift[i], rstd[i], C, true);
            else ln_row_bwd(dxr, pw, pb, dy + i * C, x + i * C, w, shift[i], rstd[i], C, false);
        }
    }
    if (dw) reduce_chunks(dw, dwp, P, C);
    if (db) reduce_chunks(db, dbp, P, C);
}

void tsr_layernorm_bwd_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, int64_t N, int64_t C, float eps) {
    for (int64_t i = 0; i < N; i++) {
        const float *xr = x + i * C, *dyr = dy + i * C;
        double m = 0, v = 0;
        for (int64_t j = 0; j < C; j++) m += xr[j];
        m /= (double)C;
        for (int64_t j = 0; j < C; j++) v += (xr[j] - m) * (xr[j] - m);
        double rs = 1.0 / sqrt(v / (double)C + eps), sg = 0, sgx = 0;
        for (int64_t j = 0; j < C; j++) {
            double g = dyr[j] * (w ? (double)w[j] : 1.0);
            sg += g;
            sgx += g * (xr[j] - m) * rs;
        }
        for (int64_t j = 0; j < C; j++) {
            double xh = (xr[j] - m) * rs, g = dyr[j] * (w ? (double)w[j] : 1.0);
            if (dx) dx[i * C + j] += (float)(rs * (g - sg / (double)C - xh * sgx / (double)C));
            if (dw) dw[j] += (float)(dyr[j] * xh);
            if (db) db[j] += dyr[j];
        }
    }
}

typedef struct {
    float *shift, *rstd;
    float eps;
} norm_saved;

static void layernorm_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    norm_saved *s = n->saved;
    int64_t C = x->shape[x->ndim - 1], N = x->numel / C;
    float *dx = x->requires_grad ? tsr_grad(c, x) : NULL;
    float *dw = w && w->requires_grad ? tsr_grad(c, w) : NULL;
    float *db = b && b->requires_grad ? tsr_grad(c, b) : NULL;
    float *scratch = (dw || db) ? tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)tsr_norm_bwd_scratch(N, C)) : NULL;
    tsr_layernorm_bwd(dx, dw, db, scratch, n->out->grad, tsr_f32(x), w ? tsr_f32(w) : NULL,
                      s->shift, s->rstd, N, C);
}

static int64_t last_dim(const tsr_tensor *x) {
    TSR_ASSERT(x->dtype == TSR_F32 && x->ndim >= 1);
    int64_t C = x->shape[x->ndim - 1];
    TSR_ASSERT(C > 0);
    return C;
}

static void check_vec(const tsr_tensor *v, int64_t C) {
    if (v) TSR_ASSERT(v->dtype == TSR_F32 && v->numel == C);
}

tsr_tensor *tsr_layernorm(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b, float eps) {
    int64_t C = last_dim(x), N = x->numel / C;
    check_vec(w, C);
    check_vec(b, C);
    tsr_tensor *y = tsr_new_like(c, x);
    norm_saved *s = tsr_arena_alloc(&c->arena, sizeof *s);
    s->shift = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)N);
    s->rstd = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)N);
    s->eps = eps;
    tsr_layernorm_fwd(tsr_f32(y), s->shift, s->rstd, tsr_f32(x), w ? tsr_f32(w) : NULL,
                      b ? tsr_f32(b) : NULL, N, C, eps);
    tsr_tensor *ins[3] = {x, w, b};
    tsr_node *n = tsr_record(c, "layernorm", layernorm_backward, y, 3, ins);
    if (n) n->saved = s;
    return y;
}

/* -------------------------------------------------------------- RMS norm */

ALWAYS_INLINE void rms_row_fwd(float *yr, float *rstd_out, const float *xr, const float *w,
                               int64_t C, float eps, bool has_w) {
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < C; j++) ss += xr[j] * xr[j];
    float rs = 1.0f / sqrtf(ss / (float)C + eps);
    if (rstd_out) *rstd_out = rs;
#pragma omp simd
    for (int64_t j = 0; j < C; j++) yr[j] = has_w ? xr[j] * rs * w[j] : xr[j] * rs;
}

void tsr_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int64_t N, int64_t C,
                     float eps) {
#pragma omp parallel for schedule(static) if (N * C >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        float *ro = rstd ? rstd + i : NULL;
        if (w) rms_row_fwd(y + i * C, ro, x + i * C, w, C, eps, true);
        else rms_row_fwd(y + i * C, ro, x + i * C, w, C, eps, false);
    }
}

void tsr_rmsnorm_fwd_ref(float *y, const float *x, const float *w, int64_t N, int64_t C, float eps) {
    for (int64_t i = 0; i < N; i++) {
        double ss = 0;
        for (int64_t j = 0; j < C; j++) ss += (double)x[i * C + j] * x[i * C + j];
        double rs = 1.0 / sqrt(ss / (double)C + eps);
        for (int64_t j = 0; j < C; j++) y[i * C + j] = (float)(x[i * C + j] * rs * (w ? w[j] : 1.0));
    }
}

/* With g = dy*w: dx = rstd*g - x * rstd^3 * mean(g*x). */
ALWAYS_INLINE void rms_row_bwd(float *dxr, float *pw, const float *dyr, const float *xr,
                               const float *w, float rs, int64_t C, bool has_w) {
    if (dxr) {
        float sgx = 0;
#pragma omp simd reduction(+ : sgx)
        for (int64_t j = 0; j < C; j++) sgx += (has_w ? dyr[j] * w[j] : dyr[j]) * xr[j];
        float k = rs * rs * rs * sgx / (float)C;
#pragma omp simd
        for (int64_t j = 0; j < C; j++) dxr[j] += rs * (has_w ? dyr[j] * w[j] : dyr[j]) - xr[j] * k;
    }
    if (pw) {
#pragma omp simd
        for (int64_t j = 0; j < C; j++) pw[j] += dyr[j] * xr[j] * rs;
    }
}

void tsr_rmsnorm_bwd(float *dx, float *dw, float *scratch, const float *dy, const float *x,
                     const float *w, const float *rstd, int64_t N, int64_t C) {
    int64_t P = N < TSR_NORM_CHUNKS ? N : TSR_NORM_CHUNKS;
    float *dwp = dw ? scratch : NULL;
#pragma omp parallel for schedule(static) if (N * C >= PAR_MIN)
    for (int64_t p = 0; p < P; p++) {
        float *pw = dwp ? dwp + p * C : NULL;
        if (pw) memset(pw, 0, sizeof(float) * (size_t)C);
        for (int64_t i = N * p / P; i < N * (p + 1) / P; i++) {
            float *dxr = dx ? dx + i * C : NULL;
            if (w) rms_row_bwd(dxr, pw, dy + i * C, x + i * C, w, rstd[i], C, true);
            else rms_row_bwd(dxr, pw, dy + i * C, x + i * C, w, rstd[i], C, false);
        }
    }
    if (dw) reduce_chunks(dw, dwp, P, C);
}

void tsr_rmsnorm_bwd_ref(float *dx, float *dw, const float *dy, const float *x, const float *w,
                         int64_t N, int64_t C, float eps) {
    for (int64_t i = 0; i < N; i++) {
        const float *xr = x + i * C, *dyr = dy + i * C;
        double ss = 0, sgx = 0;
        for (int64_t j = 0; j < C; j++) ss += (double)xr[j] * xr[j];
        double rs = 1.0 / sqrt(ss / (double)C + eps);
        for (int64_t j = 0; j < C; j++) sgx += dyr[j] * (w ? (double)w[j] : 1.0) * xr[j];
        for (int64_t j = 0; j < C; j++) {
            double g = dyr[j] * (w ? (double)w[j] : 1.0);
            if (dx) dx[i * C + j] += (float)(rs * g - xr[j] * rs * rs * rs * sgx / (double)C);
            if (dw) dw[j] += (float)(dyr[j] * xr[j] * rs);
        }
    }
}

static void rmsnorm_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0], *w = n->in[1];
    norm_saved *s = n->saved;
    int64_t C = x->shape[x->ndim - 1], N = x->numel / C;
    float *dx = x->requires_grad ? tsr_grad(c, x) : NULL;
    float *dw = w && w->requires_grad ? tsr_grad(c, w) : NULL;
    float *scratch = dw ? tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)tsr_norm_bwd_scratch(N, C)) : NULL;
    tsr_rmsnorm_bwd(dx, dw, scratch, n->out->grad, tsr_f32(x), w ? tsr_f32(w) : NULL, s->rstd, N, C);
}

tsr_tensor *tsr_rmsnorm(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, float eps) {
    int64_t C = last_dim(x), N = x->numel / C;
    check_vec(w, C);
    tsr_tensor *y = tsr_new_like(c, x);
    norm_saved *s = tsr_arena_alloc(&c->arena, sizeof *s);
    s->shift = NULL;
    s->rstd = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)N);
    s->eps = eps;
    tsr_rmsnorm_fwd(tsr_f32(y), s->rstd, tsr_f32(x), w ? tsr_f32(w) : NULL, N, C, eps);
    tsr_tensor *ins[2] = {x, w};
    tsr_node *n = tsr_record(c, "rmsnorm", rmsnorm_backward, y, 2, ins);
    if (n) n->saved = s;
    return y;
}

/* ------------------------------------------------------ softmax, log-softmax */

void tsr_softmax_fwd(float *y, const float *x, int64_t N, int64_t C, bool take_log) {
#pragma omp parallel for schedule(static) if (N * C >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        const float *xr = x + i * C;
        float *yr = y + i * C;
        float m = tsr_row_max(xr, C);
        float s = 0;
        if (take_log) {
#pragma omp simd reduction(+ : s)
            for (int64_t j = 0; j < C; j++) s += tsr_expf_fast(xr[j] - m);
            float lse = m + logf(s);
#pragma omp simd
            for (int64_t j = 0; j < C; j++) yr[j] = xr[j] - lse;
        } else {
#pragma omp simd reduction(+ : s)
            for (int64_t j = 0; j < C; j++) {
                float e = tsr_expf_fast(xr[j] - m);
                yr[j] = e;
                s += e;
            }
            float inv = 1.0f / s;
#pragma omp simd
            for (int64_t j = 0; j < C; j++) yr[j] *= inv;
        }
    }
}

void tsr_softmax_fwd_ref(float *y, const float *x, int64_t N, int64_t C, bool take_log) {
    for (int64_t i = 0; i < N; i++) {
        const float *xr = x + i * C;
        double m = xr[0], s = 0;
        for (int64_t j = 1; j < C; j++) m = xr[j] > m ? xr[j] : m;
        for (int64_t j = 0; j < C; j++) s += exp((double)xr[j] - m);
        for (int64_t j = 0; j < C; j++)
            y[i * C + j] = take_log ? (float)(xr[j] - m - log(s))
                               : (float)(exp((double)xr[j] - m) / s);
    }
}

void tsr_softmax_bwd(float *dx, const float *dy, const float *y, int64_t N, int64_t C, bool take_log) {
#pragma omp parallel for schedule(static) if (N * C >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        const float *dyr = dy + i * C, *yr = y + i * C;
        float *dxr = dx + i * C;
        float s = 0;
        if (take_log) {
            /* y = x - lse: dx = dy - softmax * sum(dy) */
#pragma omp simd reduction(+ : s)
            for (int64_t j = 0; j < C; j++) s += dyr[j];
#pragma omp simd
            for (int64_t j = 0; j < C; j++) dxr[j] += dyr[j] - tsr_expf_fast(yr[j]) * s;
        } else {
            /* dx = y * (dy - <dy, y>) */
#pragma omp simd reduction(+ : s)
            for (int64_t j = 0; j < C; j++) s += dyr[j] * yr[j];
#pragma omp simd
            for (int64_t j = 0; j < C; j++) dxr[j] += yr[j] * (dyr[j] - s);
        }
    }
}

static void softmax_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    int64_t C = x->shape[x->ndim - 1];
    tsr_softmax_bwd(tsr_grad(c, x), n->out->grad, tsr_f32(n->out), x->numel / C, C, n->iarg[0]);
}

static tsr_tensor *softmax_any(tsr_ctx *c, tsr_tensor *x, bool take_log) {
    int64_t C = last_dim(x);
    tsr_tensor *y = tsr_new_like(c, x);
    tsr_softmax_fwd(tsr_f32(y), tsr_f32(x), x->numel / C, C, take_log);
    tsr_node *n = tsr_record(c, take_log ? "log_softmax" : "softmax", softmax_backward, y, 1, &x);
    if (n) n->iarg[0] = take_log;
    return y;
}

tsr_tensor *tsr_softmax(tsr_ctx *c, tsr_tensor *x) { return softmax_any(c, x, false); }
tsr_tensor *tsr_log_softmax(tsr_ctx *c, tsr_tensor *x) { return softmax_any(c, x, true); }
