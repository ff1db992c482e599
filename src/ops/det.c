/* tessera ops for set-prediction detectors: the Hungarian assignment
 * (shortest augmenting paths with row/column potentials), generalized IoU
 * (Rezatofighi et al. 2019) with its analytic backward, the varifocal loss
 * (Zhang et al. 2021, as RT-DETR uses it) and OVA-DETR's region-text
 * contrastive head. Sizes here are small (hundreds of queries, tens of
 * names), so the kernels are plain loops. */
#include "tessera/ops_det.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------ Hungarian */

static size_t ints_in_doubles(int n) { return ((size_t)n * sizeof(int32_t) + sizeof(double) - 1) / sizeof(double); }

size_t tsr_hungarian_scratch(int N, int M) {
    int n = N < M ? N : M, m = N < M ? M : N;
    return (size_t)(n + 1) + 2 * (size_t)(m + 1) + 2 * ints_in_doubles(m + 1) + ints_in_doubles(m + 1);
}

double tsr_hungarian(int32_t *assign, const float *cost, int N, int M, double *scratch) {
    for (int i = 0; i < N; i++) assign[i] = -1;
    if (N == 0 || M == 0) return 0;
    /* rows are the smaller side; a wide matrix is read transposed */
    const bool tr = N > M;
    const int n = tr ? M : N, m = tr ? N : M;
#define COST(i, j) ((double)(tr ? cost[(size_t)(j) * M + (i)] : cost[(size_t)(i) * M + (j)]))
    double *u = scratch, *v = u + n + 1, *minv = v + m + 1;
    int32_t *p = (int32_t *)(minv + m + 1), *way = (int32_t *)((double *)p + ints_in_doubles(m + 1));
    int32_t *used = (int32_t *)((double *)way + ints_in_doubles(m + 1));
    for (int i = 0; i <= n; i++) u[i] = 0;
    for (int j = 0; j <= m; j++) v[j] = 0, p[j] = 0, way[j] = 0;
    /* 1-based: p[j] is the row matched to column j (0 = none); column 0 is
     * the virtual start of each augmenting path */
    for (int i = 1; i <= n; i++) {
        p[0] = i;
        int j0 = 0;
        for (int j = 0; j <= m; j++) minv[j] = DBL_MAX, used[j] = 0;
        do {
            used[j0] = 1;
            int i0 = p[j0], j1 = 0;
            double delta = DBL_MAX;
            for (int j = 1; j <= m; j++) {
                if (used[j]) continue;
                double cur = COST(i0 - 1, j - 1) - u[i0] - v[j];
                if (cur < minv[j]) minv[j] = cur, way[j] = j0;
                if (minv[j] < delta) delta = minv[j], j1 = j;
            }
            for (int j = 0; j <= m; j++) {
                if (used[j]) u[p[j]] += delta, v[j] -= delta;
                else minv[j] -= delta;
            }
            j0 = j1;
        } while (p[j0] != 0);
        do {
            int j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0);
    }
    double total = 0;
    for (int j = 1; j <= m; j++) {
        if (!p[j]) continue;
        int r = p[j] - 1, col = j - 1;
        if (tr) assign[col] = r, total += COST(r, col);
        else assign[r] = col, total += COST(r, col);
    }
#undef COST
    return total;
}

/* exhaustive: every injection of the smaller side into the larger */
static void exh(const float *cost, int N, int M, bool tr, int depth, int n, int m, int32_t *cur,
                uint32_t usedmask, double acc, double *best, int32_t *best_map) {
    if (depth == n) {
        if (acc < *best) {
            *best = acc;
            memcpy(best_map, cur, sizeof(int32_t) * (size_t)n);
        }
        return;
    }
    for (int j = 0; j < m; j++) {
        if (usedmask >> j & 1) continue;
        double c = tr ? cost[(size_t)j * M + depth] : cost[(size_t)depth * M + j];
        cur[depth] = j;
        exh(cost, N, M, tr, depth + 1, n, m, cur, usedmask | 1u << j, acc + c, best, best_map);
    }
}

double tsr_hungarian_ref(int32_t *assign, const float *cost, int N, int M) {
    TSR_ASSERT(N <= 8 && M <= 8);
    for (int i = 0; i < N; i++) assign[i] = -1;
    if (!N || !M) return 0;
    const bool tr = N > M;
    const int n = tr ? M : N, m = tr ? N : M;
    int32_t cur[8], map[8];
    double best = DBL_MAX;
    exh(cost, N, M, tr, 0, n, m, cur, 0, 0, &best, map);
    for (int i = 0; i < n; i++) {
        if (tr) assign[map[i]] = i;
        else assign[i] = map[i];
    }
    return best;
}

/* ------------------------------------------------------------------ GIoU */

typedef struct { double x0, y0, x1, y1; } dbox;
static dbox corners(const float *b) {
    return (dbox){b[0] - 0.5 * b[2], b[1] - 0.5 * b[3], b[0] + 0.5 * b[2], b[1] + 0.5 * b[3]};
}

static double giou_d(const float *a4, const float *b4) {
    dbox a = corners(a4), b = corners(b4);
    double iw = fmax(0, fmin(a.x1, b.x1) - fmax(a.x0, b.x0)), ih = fmax(0, fmin(a.y1, b.y1) - fmax(a.y0, b.y0));
    double I = iw * ih, U = (a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - I;
    double E = (fmax(a.x1, b.x1) - fmin(a.x0, b.x0)) * (fmax(a.y1, b.y1) - fmin(a.y0, b.y0));
    return I / U - (E - U) / E;
}

void tsr_giou_fwd(float *out, const float *a, const float *b, int64_t N) {
    for (int64_t i = 0; i < N; i++) out[i] = (float)giou_d(a + 4 * i, b + 4 * i);
}

void tsr_giou_fwd_ref(float *out, const float *a, const float *b, int64_t N) {
    /* the textbook form, step by step, from corners */
    for (int64_t i = 0; i < N; i++) {
        const float *p = a + 4 * i, *q = b + 4 * i;
        double ax0 = p[0] - p[2] / 2.0, ax1 = p[0] + p[2] / 2.0, ay0 = p[1] - p[3] / 2.0, ay1 = p[1] + p[3] / 2.0;
        double bx0 = q[0] - q[2] / 2.0, bx1 = q[0] + q[2] / 2.0, by0 = q[1] - q[3] / 2.0, by1 = q[1] + q[3] / 2.0;
        double ix0 = ax0 > bx0 ? ax0 : bx0, ix1 = ax1 < bx1 ? ax1 : bx1;
        double iy0 = ay0 > by0 ? ay0 : by0, iy1 = ay1 < by1 ? ay1 : by1;
        double inter = (ix1 > ix0 ? ix1 - ix0 : 0) * (iy1 > iy0 ? iy1 - iy0 : 0);
        double uni = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter;
        double ex0 = ax0 < bx0 ? ax0 : bx0, ex1 = ax1 > bx1 ? ax1 : bx1;
        double ey0 = ay0 < by0 ? ay0 : by0, ey1 = ay1 > by1 ? ay1 : by1;
        double enc = (ex1 - ex0) * (ey1 - ey0);
        out[i] = (float)(inter / uni - (enc - uni) / enc);
    }
}

void tsr_giou_bwd(float *da, float *db, const float *dout, const float *a4, const float *b4, int64_t N) {
    for (int64_t i = 0; i < N; i++) {
        dbox a = corners(a4 + 4 * i), b = corners(b4 + 4 * i);
        double g = dout[i];
        double mx1 = fmin(a.x1, b.x1), mx0 = fmax(a.x0, b.x0), my1 = fmin(a.y1, b.y1), my0 = fmax(a.y0, b.y0);
        double iw = fmax(0, mx1 - mx0), ih = fmax(0, my1 - my0);
        double aw = a.x1 - a.x0, ah = a.y1 - a.y0, bw = b.x1 - b.x0, bh = b.y1 - b.y0;
        double I = iw * ih, U = aw * ah + bw * bh - I;
        double ew = fmax(a.x1, b.x1) - fmin(a.x0, b.x0), eh = fmax(a.y1, b.y1) - fmin(a.y0, b.y0), E = ew * eh;
        /* giou = I/U - 1 + U/E */
        double gU = g * (-I / (U * U) + 1.0 / E);
        double gI = g / U - gU, gE = -g * U / (E * E);
        double ga[4] = {0, 0, 0, 0}, gb[4] = {0, 0, 0, 0}; /* x0 y0 x1 y1 */
        /* areas */
        ga[0] -= gU * ah, ga[2] += gU * ah, ga[1] -= gU * aw, ga[3] += gU * aw;
        gb[0] -= gU * bh, gb[2] += gU * bh, gb[1] -= gU * bw, gb[3] += gU * bw;
        /* intersection (zero gradient when empty) */
        if (iw > 0 && ih > 0) {
            double giw = gI * ih, gih = gI * iw;
            if (a.x1 <= b.x1) ga[2] += giw; else gb[2] += giw;
            if (a.x0 >= b.x0) ga[0] -= giw; else gb[0] -= giw;
            if (a.y1 <= b.y1) ga[3] += gih; else gb[3] += gih;
            if (a.y0 >= b.y0) ga[1] -= gih; else gb[1] -= gih;
        }
        /* enclosing box */
        double gew = gE * eh, geh = gE * ew;
        if (a.x1 >= b.x1) ga[2] += gew; else gb[2] += gew;
        if (a.x0 <= b.x0) ga[0] -= gew; else gb[0] -= gew;
        if (a.y1 >= b.y1) ga[3] += geh; else gb[3] += geh;
        if (a.y0 <= b.y0) ga[1] -= geh; else gb[1] -= geh;
        /* corners -> (cx, cy, w, h) */
        if (da) {
            float *d = da + 4 * i;
            d[0] += (float)(ga[0] + ga[2]), d[1] += (float)(ga[1] + ga[3]);
            d[2] += (float)(0.5 * (ga[2] - ga[0])), d[3] += (float)(0.5 * (ga[3] - ga[1]));
        }
        if (db) {
            float *d = db + 4 * i;
            d[0] += (float)(gb[0] + gb[2]), d[1] += (float)(gb[1] + gb[3]);
            d[2] += (float)(0.5 * (gb[2] - gb[0])), d[3] += (float)(0.5 * (gb[3] - gb[1]));
        }
    }
}

void tsr_giou_pairwise(float *out, const float *a, const float *b, int N, int M) {
    for (int i = 0; i < N; i++)
        for (int j = 0; j < M; j++) out[(size_t)i * M + j] = (float)giou_d(a + 4 * i, b + 4 * j);
}

/* ------------------------------------------------------------ varifocal */

static inline double sigm(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

double tsr_vfl_fwd(const float *x, const float *xw, const float *q, const float *pos, int64_t n,
                   float alpha, float gamma) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        float p = (float)sigm(xw[i]);
        float w = alpha * powf(p, gamma) * (1 - pos[i]) + q[i];
        /* BCE with logits, stable: max(x,0) - x q + log(1 + e^-|x|) */
        float l = fmaxf(x[i], 0) - x[i] * q[i] + log1pf(expf(-fabsf(x[i])));
        s += (double)(w * l);
    }
    return s;
}

double tsr_vfl_fwd_ref(const float *x, const float *xw, const float *q, const float *pos, int64_t n,
                       float alpha, float gamma) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double p = sigm(xw[i]), w = alpha * pow(p, gamma) * (1 - pos[i]) + q[i];
        double pr = sigm(x[i]);
        /* -[q log p + (1-q) log(1-p)], with log p = -softplus(-x) */
        double lp = -(x[i] > 0 ? log1p(exp(-x[i])) : -x[i] + log1p(exp(x[i])));
        double l1p = -(x[i] > 0 ? x[i] + log1p(exp(-x[i])) : log1p(exp(x[i])));
        (void)pr;
        s += w * -(q[i] * lp + (1 - q[i]) * l1p);
    }
    return s;
}

void tsr_vfl_bwd(float *dx, float dout, const float *x, const float *q, const float *pos, int64_t n,
                 float alpha, float gamma) {
    for (int64_t i = 0; i < n; i++) {
        float p = (float)sigm(x[i]);
        float w = alpha * powf(p, gamma) * (1 - pos[i]) + q[i];
        dx[i] += dout * w * (p - q[i]);
    }
}

/* ---------------------------------------------------- contrastive head */

static void normalize_rows(float *y, float *nrm, const float *x, int R, int D) {
    for (int r = 0; r < R; r++) {
        double ss = 0;
        for (int d = 0; d < D; d++) ss += (double)x[(size_t)r * D + d] * x[(size_t)r * D + d];
        float n = (float)sqrt(ss);
        nrm[r] = n;
        float inv = 1.0f / fmaxf(n, 1e-12f);
        for (int d = 0; d < D; d++) y[(size_t)r * D + d] = x[(size_t)r * D + d] * inv;
    }
}

void tsr_contrast_fwd(float *out, float *vn, float *tn, float *nv, float *nt, const float *v,
                      const float *t, float s, float b, int N, int K, int D) {
    normalize_rows(vn, nv, v, N, D);
    normalize_rows(tn, nt, t, K, D);
    const float e = expf(s);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < K; k++) {
            float dot = 0;
            for (int d = 0; d < D; d++) dot += vn[(size_t)i * D + d] * tn[(size_t)k * D + d];
            out[(size_t)i * K + k] = e * dot + b;
        }
}

void tsr_contrast_fwd_ref(float *out, const float *v, const float *t, float s, float b, int N, int K,
                          int D) {
    for (int i = 0; i < N; i++)
        for (int k = 0; k < K; k++) {
            double vv = 0, tt = 0, vt = 0;
            for (int d = 0; d < D; d++) {
                double x = v[(size_t)i * D + d], y = t[(size_t)k * D + d];
                vv += x * x, tt += y * y, vt += x * y;
            }
            double nv = fmax(sqrt(vv), 1e-12), nt = fmax(sqrt(tt), 1e-12);
            out[(size_t)i * K + k] = (float)(exp((double)s) * vt / (nv * nt) + b);
        }
}

/* d(x/|x|) backward: dx += (g - y (y.g)) / |x| (|x| > eps), g / eps otherwise */
static void norm_bwd(float *dx, const float *g, const float *y, float n, int D) {
    if (n > 1e-12f) {
        float dot = 0;
        for (int d = 0; d < D; d++) dot += y[d] * g[d];
        for (int d = 0; d < D; d++) dx[d] += (g[d] - y[d] * dot) / n;
    } else {
        for (int d = 0; d < D; d++) dx[d] += g[d] / 1e-12f;
    }
}

void tsr_contrast_bwd(float *dv, float *dt, float *ds, float *db, const float *dout,
                      const float *vn, const float *tn, const float *nv, const float *nt, float s,
                      int N, int K, int D) {
    const float e = expf(s);
    float *g = malloc(sizeof(float) * (size_t)(D > 0 ? D : 1));
    TSR_ASSERT(g);
    double gs = 0, gb = 0;
    for (int i = 0; i < N; i++)
        for (int k = 0; k < K; k++) {
            float go = dout[(size_t)i * K + k], dot = 0;
            for (int d = 0; d < D; d++) dot += vn[(size_t)i * D + d] * tn[(size_t)k * D + d];
            gs += (double)go * e * dot;
            gb += go;
        }
    if (ds) *ds += (float)gs;
    if (db) *db += (float)gb;
    if (dv)
        for (int i = 0; i < N; i++) {
            /* g = e * sum_k dout[i,k] tn[k] */
            for (int d = 0; d < D; d++) g[d] = 0;
            for (int k = 0; k < K; k++) {
                float w = e * dout[(size_t)i * K + k];
                for (int d = 0; d < D; d++) g[d] += w * tn[(size_t)k * D + d];
            }
            norm_bwd(dv + (size_t)i * D, g, vn + (size_t)i * D, nv[i], D);
        }
    if (dt)
        for (int k = 0; k < K; k++) {
            for (int d = 0; d < D; d++) g[d] = 0;
            for (int i = 0; i < N; i++) {
                float w = e * dout[(size_t)i * K + k];
                for (int d = 0; d < D; d++) g[d] += w * vn[(size_t)i * D + d];
            }
            norm_bwd(dt + (size_t)k * D, g, tn + (size_t)k * D, nt[k], D);
        }
    free(g);
}

/* ---------------------------------------------------------------- rowmax */

void tsr_rowmax_fwd(float *y, int32_t *arg, const float *x, int64_t N, int64_t C) {
    for (int64_t i = 0; i < N; i++) {
        const float *r = x + i * C;
        int64_t a = 0;
        for (int64_t j = 1; j < C; j++)
            if (r[j] > r[a]) a = j;
        y[i] = r[a];
        arg[i] = (int32_t)a;
    }
}

void tsr_rowmax_fwd_ref(float *y, const float *x, int64_t N, int64_t C) {
    for (int64_t i = 0; i < N; i++) {
        double m = -INFINITY;
        for (int64_t j = 0; j < C; j++) m = fmax(m, x[i * C + j]);
        y[i] = (float)m;
    }
}

void tsr_rowmax_bwd(float *dx, const float *dy, const int32_t *arg, int64_t N, int64_t C) {
    for (int64_t i = 0; i < N; i++) dx[i * C + arg[i]] += dy[i];
}

/* ------------------------------------------------------------ autograd */

static void rowmax_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    if (!x->requires_grad) return;
    int64_t C = x->shape[x->ndim - 1];
    tsr_rowmax_bwd(tsr_grad(c, x), n->out->grad, n->saved, x->numel / C, C);
}

tsr_tensor *tsr_rowmax(tsr_ctx *c, tsr_tensor *x) {
    TSR_ASSERT(x->dtype == TSR_F32 && x->ndim >= 1 && x->shape[x->ndim - 1] >= 1);
    int64_t C = x->shape[x->ndim - 1], N = x->numel / C, sh[TSR_MAX_DIMS];
    memcpy(sh, x->shape, sizeof sh);
    sh[x->ndim - 1] = 1;
    tsr_tensor *y = tsr_new(c, TSR_F32, x->ndim, sh);
    int32_t *arg = tsr_arena_alloc(&c->arena, sizeof(int32_t) * (size_t)(N > 0 ? N : 1));
    tsr_rowmax_fwd(tsr_f32(y), arg, tsr_f32(x), N, C);
    tsr_node *n = tsr_record(c, "rowmax", rowmax_backward, y, 1, &x);
    if (n) n->saved = arg;
    return y;
}

static void giou_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *a = n->in[0], *b = n->in[1];
    tsr_giou_bwd(a->requires_grad ? tsr_grad(c, a) : NULL, b->requires_grad ? tsr_grad(c, b) : NULL,
                 n->out->grad, tsr_f32(a), tsr_f32(b), a->numel / 4);
}

tsr_tensor *tsr_giou(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b) {
    TSR_ASSERT(a->dtype == TSR_F32 && tsr_same_shape(a, b) && a->shape[a->ndim - 1] == 4);
    int64_t N = a->numel / 4;
    tsr_tensor *y = tsr_new(c, TSR_F32, 1, &N);
    tsr_giou_fwd(tsr_f32(y), tsr_f32(a), tsr_f32(b), N);
    tsr_tensor *in[2] = {a, b};
    tsr_record(c, "giou", giou_backward, y, 2, in);
    return y;
}

static void vfl_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    if (!x->requires_grad) return;
    const float **qp = n->saved;
    tsr_vfl_bwd(tsr_grad(c, x), n->out->grad[0], tsr_f32(x), qp[0], qp[1], x->numel, n->farg[0], n->farg[1]);
}

tsr_tensor *tsr_varifocal(tsr_ctx *c, tsr_tensor *x, const tsr_tensor *q, const tsr_tensor *pos,
                          float alpha, float gamma) {
    TSR_ASSERT(x->dtype == TSR_F32 && x->numel == q->numel && x->numel == pos->numel);
    tsr_tensor *y = tsr_new(c, TSR_F32, 1, TSR_SHAPE(1));
    tsr_f32(y)[0] = (float)tsr_vfl_fwd(tsr_f32(x), tsr_f32(x), tsr_f32(q), tsr_f32(pos), x->numel, alpha, gamma);
    tsr_node *n = tsr_record(c, "varifocal", vfl_backward, y, 1, &x);
    if (n) {
        const float **qp = tsr_arena_alloc(&c->arena, 2 * sizeof(float *));
        qp[0] = tsr_f32(q), qp[1] = tsr_f32(pos);
        n->saved = qp;
        n->farg[0] = alpha, n->farg[1] = gamma;
    }
    return y;
}

typedef struct { float *vn, *tn, *nv, *nt; } contrast_saved;

static void contrast_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *v = n->in[0], *t = n->in[1], *s = n->in[2], *b = n->in[3];
    contrast_saved *sv = n->saved;
    int N = (int)n->iarg[0], K = (int)n->iarg[1], D = (int)n->iarg[2];
    tsr_contrast_bwd(v->requires_grad ? tsr_grad(c, v) : NULL, t->requires_grad ? tsr_grad(c, t) : NULL,
                     s->requires_grad ? tsr_grad(c, s) : NULL, b->requires_grad ? tsr_grad(c, b) : NULL,
                     n->out->grad, sv->vn, sv->tn, sv->nv, sv->nt, tsr_f32(s)[0], N, K, D);
}

tsr_tensor *tsr_contrastive_logits(tsr_ctx *c, tsr_tensor *v, tsr_tensor *t, tsr_tensor *s,
                                   tsr_tensor *b) {
    TSR_ASSERT(v->ndim == 2 && t->ndim == 2 && v->shape[1] == t->shape[1] && s->numel == 1 && b->numel == 1);
    int N = (int)v->shape[0], K = (int)t->shape[0], D = (int)v->shape[1];
    tsr_tensor *y = tsr_new(c, TSR_F32, 2, TSR_SHAPE(N, K));
    contrast_saved *sv = tsr_arena_alloc(&c->arena, sizeof *sv);
    sv->vn = tsr_arena_alloc(&c->arena, sizeof(float) * ((size_t)N * D + 1));
    sv->tn = tsr_arena_alloc(&c->arena, sizeof(float) * ((size_t)K * D + 1));
    sv->nv = tsr_arena_alloc(&c->arena, sizeof(float) * ((size_t)N + 1));
    sv->nt = tsr_arena_alloc(&c->arena, sizeof(float) * ((size_t)K + 1));
    tsr_contrast_fwd(tsr_f32(y), sv->vn, sv->tn, sv->nv, sv->nt, tsr_f32(v), tsr_f32(t), tsr_f32(s)[0],
                     tsr_f32(b)[0], N, K, D);
    tsr_tensor *in[4] = {v, t, s, b};
    tsr_node *n = tsr_record(c, "contrastive_logits", contrast_backward, y, 4, in);
    if (n) {
        n->saved = sv;
        n->iarg[0] = N, n->iarg[1] = K, n->iarg[2] = D;
    }
    return y;
}
