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
 * Parameters flagged TSR_PARAM_NO_DECAY get wd 0; buffers are skipped.
 *
 * Rows that cannot move (TSR_PARAM_SPARSE_ROWS). For a row whose moments
 * are all +0 (it never had a non-zero gradient since the optimizer was
 * made, or they underflowed) and whose gradient is all zero this step, the
 * update above is exactly w *= (1 - lr*wd) with m and v staying +0 (with
 * eps > 0 and lr >= 0), so such a row is only decayed, or left alone when
 * it has no decay. Every other row gets the full update: the weights and
 * moments are bit-identical to the dense loop's, only the work differs.
 * Which rows have zero moments is cached per step and rebuilt from m and v
 * whenever `step` was set from outside (a loaded training state; a loader
 * that sets m and v without changing `step` sets zero_rows_step = -1).
 * A gradient's row marks (core.h) spare the look at unmarked rows. */
typedef struct tsr_adamw { /* tagged: safetensors.h forward-declares it */
    tsr_params *p;
    tsr_adamw_cfg cfg;
    float **m, **v; /* per parameter (NULL for buffers) */
    int64_t step;   /* number of steps taken */
    uint8_t **zero_rows; /* TSR_PARAM_SPARSE_ROWS params: 1 = the row's m and v are all +0 */
    int64_t zero_rows_step; /* step at which zero_rows was right (-1: rebuild) */
    /* optional, per parameter (NULL: every parameter has taken `step`
     * steps): the steps parameter i has taken, for moments carried over
     * from earlier runs (see tsr_train_carry); its bias corrections use
     * it, and tsr_adamw_step adds 1 to each. Set with
     * tsr_adamw_use_param_steps; freed with the optimizer. */
    int64_t *param_step;
} tsr_adamw;

void tsr_adamw_init(tsr_adamw *o, tsr_params *p, tsr_adamw_cfg cfg);
void tsr_adamw_step(tsr_adamw *o, float lr); /* lr overrides cfg.lr for this step */
void tsr_adamw_free(tsr_adamw *o);
/* switches o to per-parameter step counts, all at o->step */
void tsr_adamw_use_param_steps(tsr_adamw *o);

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

/* ss + the sum of g*g over a parameter's gradient, added in element order
 * in double; with sparse_rows, rows (last dimension) whose gradient is all
 * zero are skipped: they would add exactly +0.0 (ss >= 0), so the result
 * has the same bits */
double tsr_grad_sumsq(const tsr_tensor *t, bool sparse_rows, double ss);

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
