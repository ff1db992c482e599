/* tessera optim: learning-rate schedules (linear warmup, then constant or
 * cosine decay to min_lr), evaluated from the step alone so a resumed run
 * needs no schedule state. */
#include "tessera/optim.h"

#include <math.h>

float tsr_lr_at(const tsr_lr_sched *s, int64_t step) {
    if (step < 0) step = 0;
    if (s->warmup > 0 && step < s->warmup)
        return (float)((double)s->base_lr * (double)(step + 1) / (double)s->warmup);
    if (s->kind == TSR_LR_CONSTANT) return s->base_lr;
    TSR_ASSERT(s->kind == TSR_LR_COSINE);
    int64_t span = s->total - s->warmup;
    if (span <= 0 || step >= s->total) return s->min_lr;
    double progress = (double)(step - s->warmup) / (double)span;
    double lr = (double)s->min_lr +
                0.5 * ((double)s->base_lr - (double)s->min_lr) * (1.0 + cos(M_PI * progress));
    return (float)lr;
}
