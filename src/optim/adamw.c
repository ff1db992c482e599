/* tessera optim: AdamW with decoupled weight decay (Loshchilov & Hutter,
 * "Decoupled Weight Decay Regularization", Alg. 2), the optimizer every
 * training family uses. The float operation order follows
 * torch.optim.AdamW (single-tensor path) so fixtures agree to rounding. */
#include "tessera/optim.h"

#include <math.h>
#include <string.h>

void tsr_adamw_init(tsr_adamw *o, tsr_params *p, tsr_adamw_cfg cfg) {
    memset(o, 0, sizeof *o);
    o->p = p;
    o->cfg = cfg;
    int n = p->n > 0 ? p->n : 1;
    o->m = calloc((size_t)n, sizeof(float *));
    o->v = calloc((size_t)n, sizeof(float *));
    TSR_ASSERT(o->m && o->v);
    for (int i = 0; i < p->n; i++) {
        if (p->flags[i] & TSR_PARAM_BUFFER) continue;
        size_t bytes = sizeof(float) * (size_t)(p->items[i]->numel > 0 ? p->items[i]->numel : 1);
        o->m[i] = calloc(1, bytes);
        o->v[i] = calloc(1, bytes);
        TSR_ASSERT(o->m[i] && o->v[i]);
    }
    o->zero_rows = calloc((size_t)n, sizeof(uint8_t *));
    TSR_ASSERT(o->zero_rows);
    for (int i = 0; i < p->n; i++) {
        if ((p->flags[i] & TSR_PARAM_BUFFER) || !(p->flags[i] & TSR_PARAM_SPARSE_ROWS)) continue;
        const tsr_tensor *t = p->items[i];
        int64_t rows = t->ndim > 1 && t->numel > 0 ? t->numel / t->shape[t->ndim - 1] : 1;
        o->zero_rows[i] = malloc((size_t)rows);
        TSR_ASSERT(o->zero_rows[i]);
        memset(o->zero_rows[i], 1, (size_t)rows); /* the moments are all +0 */
    }
    o->zero_rows_step = 0;
}

/* 1 when the n floats are all +0 or -0 (any_sign) / all +0 (bitwise) */
static bool all_zero(const float *x, int64_t n, bool any_sign) {
    const uint32_t *u = (const uint32_t *)(const void *)x;
    const uint32_t mask = any_sign ? 0x7fffffffu : 0xffffffffu;
    uint32_t acc = 0;
    for (int64_t k = 0; k < n; k++) acc |= u[k] & mask;
    return acc == 0;
}

static int64_t row_width(const tsr_tensor *t) {
    return t->ndim > 1 && t->numel > 0 ? t->shape[t->ndim - 1] : (t->numel > 0 ? t->numel : 1);
}

/* the row marks of a grad (see core.h), NULL when every row may be non-zero */
static const uint8_t *grad_marks(const tsr_tensor *t) {
    return t->grad_rows && !t->grad_rows_all ? t->grad_rows : NULL;
}

double tsr_grad_sumsq(const tsr_tensor *t, bool sparse_rows, double ss) {
    if (!t->grad) return ss;
    const int64_t d = sparse_rows ? row_width(t) : (t->numel > 0 ? t->numel : 1);
    const uint8_t *marks = sparse_rows ? grad_marks(t) : NULL;
    for (int64_t r = 0, r0 = 0; r0 < t->numel; r++, r0 += d) {
        const float *g = t->grad + r0;
        if (marks && !marks[r]) continue; /* all +0 */
        if (sparse_rows && all_zero(g, d, true)) continue; /* adds exactly +0.0 */
        for (int64_t k = 0; k < d; k++) ss += (double)g[k] * g[k];
    }
    return ss;
}

/* one tensor's update; elementwise, so threads never change the result */
static inline void adamw_kernel(float *restrict w, float *restrict m, float *restrict v,
                                const float *restrict g, int64_t n, float decay_mul, float b1,
                                float one_m_b1, float b2, float one_m_b2, float bc2_sqrt, float eps,
                                float neg_step) {
    for (int64_t i = 0; i < n; i++) {
        float wi = w[i] * decay_mul;
        float gi = g[i];
        float mi = m[i] * b1 + one_m_b1 * gi;
        float vi = v[i] * b2 + one_m_b2 * gi * gi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi + neg_step * (mi / denom);
    }
}

/* the same over threads for large tensors (entering a parallel region
 * costs microseconds, so small tensors and row runs stay on the caller) */
static void adamw_update(float *restrict w, float *restrict m, float *restrict v,
                         const float *restrict g, int64_t n, float decay_mul, float b1,
                         float one_m_b1, float b2, float one_m_b2, float bc2_sqrt, float eps,
                         float neg_step) {
    if (n <= 65536) {
        adamw_kernel(w, m, v, g, n, decay_mul, b1, one_m_b1, b2, one_m_b2, bc2_sqrt, eps, neg_step);
        return;
    }
    const int64_t chunk = 16384, n_chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t off = c * chunk, len = n - off < chunk ? n - off : chunk;
        adamw_kernel(w + off, m + off, v + off, g + off, len, decay_mul, b1, one_m_b1, b2, one_m_b2,
                     bc2_sqrt, eps, neg_step);
    }
}

/* a TSR_PARAM_SPARSE_ROWS tensor: the full update on every row but those
 * with all-zero moments and gradient, which are only decayed (see optim.h);
 * consecutive full rows go to adamw_update as one run */
static void adamw_update_rows(float *w, float *m, float *v, const float *g, const uint8_t *marks,
                              uint8_t *zero_rows, int64_t numel, int64_t d, float decay_mul, float b1,
                              float one_m_b1, float b2, float one_m_b2, float bc2_sqrt, float eps,
                              float neg_step) {
    const int64_t rows = numel / d;
    const uint64_t ones = 0x0101010101010101ull;
    int64_t run = -1; /* first row of the pending run of full updates */
    for (int64_t r = 0; r <= rows; r++) {
        if (marks && decay_mul == 1.0f && run < 0 && r + 8 <= rows) {
            uint64_t z, mk; /* 8 rows that are left alone at once */
            memcpy(&z, zero_rows + r, 8);
            memcpy(&mk, marks + r, 8);
            if (z == ones && mk == 0) {
                r += 7;
                continue;
            }
        }
        /* an unmarked row's gradient is all +0 (marks: see core.h) */
        bool skip = r < rows && zero_rows[r] && ((marks && !marks[r]) || all_zero(g + r * d, d, true));
        if (r < rows && !skip) {
            if (run < 0) run = r;
            zero_rows[r] = 0; /* conservative: full updates until rebuilt from m, v */
            continue;
        }
        if (run >= 0) {
            int64_t off = run * d, n = (r - run) * d;
            adamw_kernel(w + off, m + off, v + off, g + off, n, decay_mul, b1, one_m_b1, b2, one_m_b2,
                         bc2_sqrt, eps, neg_step);
            run = -1;
        }
        if (r < rows && decay_mul != 1.0f)
            for (int64_t k = 0; k < d; k++) w[r * d + k] *= decay_mul;
    }
}

/* zero_rows from the moments (after init or a loaded state) */
static void rebuild_zero_rows(tsr_adamw *o) {
    tsr_params *p = o->p;
    for (int i = 0; i < p->n; i++) {
        if (!o->zero_rows[i]) continue;
        const tsr_tensor *t = p->items[i];
        int64_t d = row_width(t), rows = t->numel / d;
        for (int64_t r = 0; r < rows; r++)
            o->zero_rows[i][r] = all_zero(o->m[i] + r * d, d, false) && all_zero(o->v[i] + r * d, d, false);
    }
}

void tsr_adamw_step(tsr_adamw *o, float lr) {
    if (o->zero_rows_step != o->step) rebuild_zero_rows(o);
    o->step++;
    const tsr_adamw_cfg *c = &o->cfg;
    /* bias corrections in double, as the reference computes them */
    double t = (double)o->step;
    double bc1 = 1.0 - pow((double)c->beta1, t);
    double bc2 = 1.0 - pow((double)c->beta2, t);
    float neg_step = (float)(-(double)lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    const float neg_step0 = neg_step, bc2_sqrt0 = bc2_sqrt;
    float one_m_b1 = (float)(1.0 - (double)c->beta1);
    float one_m_b2 = (float)(1.0 - (double)c->beta2);
    tsr_params *p = o->p;
    for (int i = 0; i < p->n; i++) {
        if (p->flags[i] & TSR_PARAM_BUFFER) continue;
        tsr_tensor *w = p->items[i];
        if (!w->requires_grad) continue; /* frozen: neither stepped nor decayed */
        neg_step = neg_step0, bc2_sqrt = bc2_sqrt0;
        if (o->param_step) { /* this parameter's own step count (same formulas) */
            const double ti = (double)++o->param_step[i];
            neg_step = (float)(-(double)lr / (1.0 - pow((double)c->beta1, ti)));
            bc2_sqrt = (float)sqrt(1.0 - pow((double)c->beta2, ti));
        }
        float wd = (p->flags[i] & TSR_PARAM_NO_DECAY) ? 0.0f : c->weight_decay;
        float decay_mul = (float)(1.0 - (double)lr * (double)wd);
        /* the row skip is exact only when a zero gradient leaves w*decay_mul as it is */
        if (o->zero_rows[i] && c->eps > 0 && !(neg_step > 0))
            adamw_update_rows(tsr_f32(w), o->m[i], o->v[i], w->grad, grad_marks(w), o->zero_rows[i], w->numel,
                              row_width(w), decay_mul, c->beta1, one_m_b1, c->beta2, one_m_b2,
                              bc2_sqrt, c->eps, neg_step);
        else {
            adamw_update(tsr_f32(w), o->m[i], o->v[i], w->grad, w->numel, decay_mul, c->beta1,
                         one_m_b1, c->beta2, one_m_b2, bc2_sqrt, c->eps, neg_step);
            if (o->zero_rows[i]) memset(o->zero_rows[i], 0, (size_t)(w->numel / row_width(w)));
        }
    }
    o->zero_rows_step = o->step;
}

void tsr_adamw_free(tsr_adamw *o) {
    if (o->p)
        for (int i = 0; i < o->p->n; i++) {
            if (o->m) free(o->m[i]);
            if (o->v) free(o->v[i]);
            if (o->zero_rows) free(o->zero_rows[i]);
        }
    free(o->zero_rows);
    free(o->param_step);
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

void tsr_adamw_use_param_steps(tsr_adamw *o) {
    if (o->param_step) return;
    o->param_step = malloc(sizeof(int64_t) * (size_t)(o->p->n > 0 ? o->p->n : 1));
    TSR_ASSERT(o->param_step);
    for (int i = 0; i < o->p->n; i++) o->param_step[i] = o->step;
}
