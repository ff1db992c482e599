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
}

/* one tensor's update; elementwise, so threads never change the result */
static void adamw_update(float *restrict w, float *restrict m, float *restrict v,
                         const float *restrict g, int64_t n, float decay_mul, float b1,
                         float one_m_b1, float b2, float one_m_b2, float bc2_sqrt, float eps,
                         float neg_step) {
#pragma omp parallel for schedule(static) if (n > 65536)
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

void tsr_adamw_step(tsr_adamw *o, float lr) {
    o->step++;
    const tsr_adamw_cfg *c = &o->cfg;
    /* bias corrections in double, as the reference computes them */
    double t = (double)o->step;
    double bc1 = 1.0 - pow((double)c->beta1, t);
    double bc2 = 1.0 - pow((double)c->beta2, t);
    float neg_step = (float)(-(double)lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float one_m_b1 = (float)(1.0 - (double)c->beta1);
    float one_m_b2 = (float)(1.0 - (double)c->beta2);
    tsr_params *p = o->p;
    for (int i = 0; i < p->n; i++) {
        if (p->flags[i] & TSR_PARAM_BUFFER) continue;
        tsr_tensor *w = p->items[i];
        if (!w->requires_grad) continue; /* frozen: neither stepped nor decayed */
        float wd = (p->flags[i] & TSR_PARAM_NO_DECAY) ? 0.0f : c->weight_decay;
        float decay_mul = (float)(1.0 - (double)lr * (double)wd);
        adamw_update(tsr_f32(w), o->m[i], o->v[i], w->grad, w->numel, decay_mul, c->beta1,
                     one_m_b1, c->beta2, one_m_b2, bc2_sqrt, c->eps, neg_step);
    }
}

void tsr_adamw_free(tsr_adamw *o) {
    if (o->p)
        for (int i = 0; i < o->p->n; i++) {
            if (o->m) free(o->m[i]);
            if (o->v) free(o->v[i]);
        }
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}
