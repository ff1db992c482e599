/* tessera optim: global gradient-norm clipping, as
 * torch.nn.utils.clip_grad_norm_ (L2 over all trainable grads, scale by
 * max_norm / (norm + 1e-6) when that is below 1). The sum runs serially in
 * double so the result never depends on the thread count. */
#include "tessera/optim.h"

#include <math.h>

float tsr_clip_grad_norm(tsr_params *p, float max_norm) {
    double ss = 0.0;
    for (int i = 0; i < p->n; i++) {
        const tsr_tensor *t = p->items[i];
        if ((p->flags[i] & TSR_PARAM_BUFFER) || !t->grad) continue;
        for (int64_t k = 0; k < t->numel; k++) ss += (double)t->grad[k] * t->grad[k];
    }
    float norm = (float)sqrt(ss);
    float coef = max_norm / (norm + 1e-6f);
    if (!(coef < 1.0f) && !isnan(coef)) return norm;
    for (int i = 0; i < p->n; i++) {
        tsr_tensor *t = p->items[i];
        if ((p->flags[i] & TSR_PARAM_BUFFER) || !t->grad) continue;
        for (int64_t k = 0; k < t->numel; k++) t->grad[k] *= coef;
    }
    return norm;
}
