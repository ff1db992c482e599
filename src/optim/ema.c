/* tessera optim: exponential moving average of the trainable weights
 * (Polyak averaging), kept beside the model and swapped in for evaluation. */
#include "tessera/optim.h"

#include <string.h>

void tsr_ema_init(tsr_ema *e, tsr_params *p, float decay) {
    e->p = p;
    e->decay = decay;
    e->shadow = calloc((size_t)(p->n > 0 ? p->n : 1), sizeof(float *));
    TSR_ASSERT(e->shadow);
    for (int i = 0; i < p->n; i++) {
        if (p->flags[i] & TSR_PARAM_BUFFER) continue;
        size_t bytes = sizeof(float) * (size_t)p->items[i]->numel;
        e->shadow[i] = malloc(bytes > 0 ? bytes : 1);
        TSR_ASSERT(e->shadow[i]);
        memcpy(e->shadow[i], p->items[i]->data, bytes);
    }
}

void tsr_ema_update(tsr_ema *e) {
    float d = e->decay, one_m_d = 1.0f - e->decay;
    for (int i = 0; i < e->p->n; i++) {
        float *s = e->shadow[i];
        if (!s) continue;
        const float *w = tsr_f32(e->p->items[i]);
        int64_t n = e->p->items[i]->numel;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t k = 0; k < n; k++) s[k] = d * s[k] + one_m_d * w[k];
    }
}

void tsr_ema_swap(tsr_ema *e) {
    for (int i = 0; i < e->p->n; i++) {
        float *s = e->shadow[i];
        if (!s) continue;
        float *w = tsr_f32(e->p->items[i]);
        for (int64_t k = 0; k < e->p->items[i]->numel; k++) {
            float tmp = w[k];
            w[k] = s[k];
            s[k] = tmp;
        }
    }
}

void tsr_ema_free(tsr_ema *e) {
    if (e->p && e->shadow)
        for (int i = 0; i < e->p->n; i++) free(e->shadow[i]);
    free(e->shadow);
    memset(e, 0, sizeof *e);
}
