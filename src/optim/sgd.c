/* tessera optim: SGD with momentum and optional Nesterov, coupled L2 weight
 * decay, dampening 0 (torch.optim.SGD semantics: the momentum buffer starts
 * as the first gradient). Parameters flagged TSR_PARAM_NO_DECAY get no
 * weight decay, as with AdamW. Used by the vision families' baselines. */
#include "tessera/optim.h"

#include <string.h>

void tsr_sgd_init(tsr_sgd *o, tsr_params *p, tsr_sgd_cfg cfg) {
    memset(o, 0, sizeof *o);
    o->p = p;
    o->cfg = cfg;
    o->buf = calloc((size_t)(p->n > 0 ? p->n : 1), sizeof(float *));
    TSR_ASSERT(o->buf);
    if (cfg.momentum == 0.0f) return;
    for (int i = 0; i < p->n; i++) {
        if (p->flags[i] & TSR_PARAM_BUFFER) continue;
        o->buf[i] = calloc((size_t)(p->items[i]->numel > 0 ? p->items[i]->numel : 1), sizeof(float));
        TSR_ASSERT(o->buf[i]);
    }
}

void tsr_sgd_step(tsr_sgd *o, float lr) {
    const tsr_sgd_cfg *c = &o->cfg;
    tsr_params *p = o->p;
    bool first = o->step == 0;
    float neg_lr = -lr;
    for (int i = 0; i < p->n; i++) {
        if (p->flags[i] & TSR_PARAM_BUFFER) continue;
        tsr_tensor *t = p->items[i];
        float *restrict w = tsr_f32(t);
        const float *restrict g = t->grad;
        float *restrict b = o->buf[i];
        float wd = (p->flags[i] & TSR_PARAM_NO_DECAY) ? 0.0f : c->weight_decay, mom = c->momentum;
        bool nest = c->nesterov;
        int64_t n = t->numel;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t k = 0; k < n; k++) {
            float d = g[k];
            if (wd != 0.0f) d = d + wd * w[k];
            if (b) {
                float bk = first ? d : b[k] * mom + d;
                b[k] = bk;
                d = nest ? d + mom * bk : bk;
            }
            w[k] = w[k] + neg_lr * d;
        }
    }
    o->step++;
}

void tsr_sgd_free(tsr_sgd *o) {
    if (o->p && o->buf)
        for (int i = 0; i < o->p->n; i++) free(o->buf[i]);
    free(o->buf);
    memset(o, 0, sizeof *o);
}
