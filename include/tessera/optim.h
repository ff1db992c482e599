/* tessera optim: AdamW, SGD with momentum, global grad-norm clipping,
 * learning-rate schedules, EMA of weights. src/optim/. Optimizer state is
 * plain f32 arrays per parameter so it can be saved and resumed exactly. */
#ifndef TESSERA_OPTIM_H
#define TESSERA_OPTIM_H

#include "tessera/core.h"

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} tsr_adamw_cfg;

/* Decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW:
 * p -= lr*wd*p; m,v updated; p -= lr * mhat / (sqrt(vhat) + eps).
 * Parameters flagged TSR_PARAM_NO_DECAY get wd 0; buffers are skipped. */
typedef struct tsr_adamw { /* tagged: safetensors.h forward-declares it */
    tsr_params *p;
    tsr_adamw_cfg cfg;
    float **m, **v; /* per parameter (NULL for buffers) */
    int64_t step;   /* number of steps taken */
} tsr_adamw;

void tsr_adamw_init(tsr_adamw *o, tsr_params *p, tsr_adamw_cfg cfg);
void tsr_adamw_step(tsr_adamw *o, float lr); /* lr overrides cfg.lr for this step */
void tsr_adamw_free(tsr_adamw *o);

typedef struct {
    float lr, momentum, weight_decay;
    bool nesterov;
} tsr_sgd_cfg;

/* as torch.optim.SGD (coupled L2 weight decay, dampening 0); parameters
 * flagged TSR_PARAM_NO_DECAY get wd 0, buffers are skipped */
typedef struct {
    tsr_params *p;
    tsr_sgd_cfg cfg;
    float **buf;
    int64_t step;
} tsr_sgd;

void tsr_sgd_init(tsr_sgd *o, tsr_params *p, tsr_sgd_cfg cfg);
void tsr_sgd_step(tsr_sgd *o, float lr);
void tsr_sgd_free(tsr_sgd *o);

/* scales all grads so the global L2 norm is <= max_norm (as
 * torch.nn.utils.clip_grad_norm_); returns the norm before clipping */
float tsr_clip_grad_norm(tsr_params *p, float max_norm);

typedef enum { TSR_LR_CONSTANT, TSR_LR_COSINE, TSR_LR_KIND_COUNT } tsr_lr_kind;
typedef struct {
    tsr_lr_kind kind;
    float base_lr, min_lr;
    int64_t warmup, total; /* linear warmup from 0 over `warmup` steps */
} tsr_lr_sched;
/* lr for 0-based step: warmup: base*(step+1)/warmup; then constant base,
 * or cosine from base to min_lr at step == total (min_lr after) */
float tsr_lr_at(const tsr_lr_sched *s, int64_t step);

/* shadow = decay*shadow + (1-decay)*param for every trainable param */
typedef struct {
    tsr_params *p;
    float decay;
    float **shadow;
} tsr_ema;
void tsr_ema_init(tsr_ema *e, tsr_params *p, float decay); /* shadow = params */
void tsr_ema_update(tsr_ema *e);
void tsr_ema_swap(tsr_ema *e); /* exchange params and shadow (eval with EMA weights) */
void tsr_ema_free(tsr_ema *e);

#endif
