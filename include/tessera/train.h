/* tessera train: the one training loop every family runs on. src/train/.
 *
 * How to train a family on the shared loop
 * ----------------------------------------
 * The trainer owns everything that is not the model: the step loop, AdamW,
 * the learning-rate schedule (linear warmup, then cosine or linear decay to
 * --min-lr), gradient clipping, the non-finite stop, evaluation every N
 * steps and at the end, checkpoints (every N steps, every M minutes, always
 * at the end), --resume with its config check, --stop-after, a stop flag
 * for SIGINT/SIGTERM, progress, and the --log JSONL metrics file. A family
 * gives it only what is its own, in a tsr_train_family:
 *
 *   static tsr_status my_step(void *ud, tsr_ctx *c, const int32_t *ids, int64_t n, float *loss) {
 *       my_run *r = ud;                     // build the batch from ids (or
 *       tsr_tensor *x = ..., *y = ...;      // from the family's own cursor)
 *       tsr_tensor *l = my_loss(c, r->model, x, y);
 *       *loss = tsr_f32(l)[0];
 *       tsr_backward(c, l);                 // grads were zeroed by the trainer
 *       return tsr_ok();
 *   }
 *   static tsr_status my_eval(void *ud, tsr_train_metrics *m) {
 *       tsr_train_metric(m, "val_loss", ...);   // any number of named values
 *       return tsr_ok();
 *   }
 *   static tsr_status my_save(void *ud, const char *path, const char *const *meta,
 *                             const tsr_train_metrics *eval, bool final) {
 *       return my_model_save(((my_run *)ud)->model, path, meta); // atomic write
 *   }
 *   const char *cfg[] = {"model.dim", "64", "train.batch", "32", NULL};
 *   tsr_train_family f = {.name = "my", .params = &model.params, .config = cfg,
 *                         .n_items = n_train, .batch = 32, .unit = "img",
 *                         .step = my_step, .eval = my_eval, .save = my_save, .ud = &run};
 *   tsr_train_opts o = tsr_train_default_opts();   // or from the CLI's shared flags
 *   o.out = "my.safetensors"; o.epochs = 3; o.lr = 1e-3f;
 *   tsr_train_result res;
 *   tsr_status st = tsr_train_run(&f, &o, &res);
 *
 * Optional hooks: step_metrics (extra per-step values for progress and the
 * log), post_step (after the update, e.g. an EMA codebook), get_cursor /
 * set_cursor (below); rng_salt keeps an existing family's random stream.
 * The CLI side is src/cli/train_flags.h: a verb lists only its own flags
 * and gets the common ones (--steps/--epochs, --batch, --lr, ... --log,
 * --quiet), the progress printer, the signal handling and the resume hint.
 *
 * Data order. With n_items > 0 the trainer shuffles the items itself
 * (tsr_batcher, seeded by opts.seed, drop_last) and hands the step the ids
 * of each batch; the data cursor (epoch, index) is saved and restored. A
 * family with its own stream (token windows, ...) sets n_items = 0, gets
 * ids = NULL and keeps its position in cursor[] through get_cursor /
 * set_cursor. Randomness inside a step (dropout, augmentation) must come
 * from c->rng, which is saved in the state; eval must not touch it.
 *
 * Files. out is the weights file the family's save hook writes (with the
 * config and "train.step" in its metadata, plus whatever the hook adds).
 * Beside it, tsr_train_state_path(out) ("m.safetensors" ->
 * "m.state.safetensors") holds the whole training state in ONE file: the
 * parameters, the AdamW moments, step, rng, data cursor and the config.
 * That file is committed by a single rename after a complete fsynced
 * write, and the previous one stays in place until then, so a kill at any
 * instant loses at most one checkpoint interval; the weights file is
 * written after it and never needed to resume. Orphan *.tmp files of an
 * interrupted save are removed when the next run starts.
 *
 * Resume. opts.resume reads the state file, refuses it when any config key
 * (the family's plus the trainer's: steps, lr, schedule, seed, ...) has a
 * different value (TSR_ERR_ARG naming the key), and continues bit for bit:
 * N steps straight == stop anywhere + resume (cmp-identical files).
 *
 * Divergence. A non-finite loss or gradient norm stops the run before the
 * update with TSR_ERR_NUMERIC naming the step; files on disk keep the last
 * good checkpoint. Arrows: models -> train -> optim/io/core; the trainer
 * knows no family. */
#ifndef TESSERA_TRAIN_H
#define TESSERA_TRAIN_H

#include "tessera/core.h"
#include "tessera/optim.h"

#include <signal.h>

#define TSR_TRAIN_MAX_METRICS 16

/* named values of one evaluation, e.g. {"val_loss", 1.23}, {"accuracy", 0.9} */
typedef struct {
    int64_t step; /* the step evaluated (set by the trainer before eval is called) */
    int n;
    char name[TSR_TRAIN_MAX_METRICS][32];
    double value[TSR_TRAIN_MAX_METRICS];
} tsr_train_metrics;
void tsr_train_metric(tsr_train_metrics *m, const char *name, double value);
/* the value of name, or NAN */
double tsr_train_metric_get(const tsr_train_metrics *m, const char *name);

typedef struct {
    const char *name;      /* "classify": in messages */
    tsr_params *params;    /* trained with AdamW, saved in the state */
    /* NULL-terminated key, value, ... pairs: every setting that shapes the
     * trajectory beyond the trainer's own options (model config, batch,
     * data size, augmentation). Checked on resume; stored in both files. */
    const char *const *config;
    int64_t n_items;       /* > 0: the trainer shuffles items 0..n-1 into batches */
    int64_t batch;         /* items per step (with n_items) */
    int64_t items_per_step;/* for throughput (default: batch) */
    const char *unit;      /* "img", "tok", ...: progress "12345 img/s" */
    size_t arena_bytes;    /* tsr_ctx arena for one step (default 64 MiB) */
    /* optional: the context the steps run in, owned by the caller, so that
     * a caller running many short trainings keeps its arena (pages already
     * mapped and warm) from one run to the next; NULL: the trainer makes
     * one of arena_bytes. Its rng is set from the run's state. */
    tsr_ctx *ctx;
    uint64_t rng_salt;     /* c->rng starts at seed ^ salt (0: a fixed default) */
    void *ud;
    /* forward + backward of one step; grads are zero on entry, c is reset
     * with training and grad_enabled on. *loss: the scalar loss. */
    tsr_status (*step)(void *ud, tsr_ctx *c, const int32_t *ids, int64_t n, float *loss);
    /* after the optimizer update, before c is reset (may be NULL): e.g. an
     * EMA codebook update from this step's tensors (randomness: c->rng) */
    void (*post_step)(void *ud, tsr_ctx *c);
    /* evaluation (may be NULL): fill named metrics */
    tsr_status (*eval)(void *ud, tsr_train_metrics *m);
    /* write the weights file (atomically); meta: NULL-terminated pairs (the
     * config and "train.step"); eval: the metrics of an evaluation at this
     * very step, else NULL; final: the end of the run (e.g. for an extra
     * export such as a BF16 copy) */
    tsr_status (*save)(void *ud, const char *path, const char *const *meta,
                       const tsr_train_metrics *eval, bool final);
    /* extra named values of the last step for progress and the log, e.g.
     * a bit accuracy (may be NULL) */
    void (*step_metrics)(void *ud, tsr_train_metrics *m);
    /* own data position (n_items == 0; may be NULL): 4 words in the state */
    void (*get_cursor)(void *ud, int64_t cursor[4]);
    tsr_status (*set_cursor)(void *ud, const int64_t cursor[4]);
} tsr_train_family;

/* AdamW's state carried from one run into the next (a continual model
 * updated period after period keeps its optimizer, as one long-lived
 * torch optimizer would): per parameter of the family's registry, in its
 * order, the first and second moments (numel floats; NULL for buffers)
 * and the steps the parameter has taken (0: fresh moments, bias
 * corrections restart for it alone). The caller owns the arrays. The run
 * starts from them (on --resume its state file's copy, which holds them,
 * is used instead) and writes its final ones back when it finishes. */
typedef struct {
    int n;
    float **m, **v;
    int64_t *step;
} tsr_train_carry;

typedef enum { TSR_SCHED_COSINE, TSR_SCHED_LINEAR, TSR_SCHED_CONSTANT } tsr_train_sched;

typedef struct {
    int64_t step, total, epoch; /* epoch -1: the family keeps its own data position */
    float loss, lr, grad_norm;
    double items_per_s, eta_s, elapsed_s;
    const char *unit;
    const tsr_train_metrics *eval; /* non-NULL: this call reports an evaluation */
    const tsr_train_metrics *extra; /* the family's step_metrics (n == 0: none) */
} tsr_train_progress;

typedef struct {
    const char *out;          /* weights file; the state sits beside it */
    int64_t steps;            /* total optimizer steps; or */
    int epochs;               /* passes over n_items (used when steps == 0) */
    float lr, min_lr, weight_decay, beta1, beta2, eps;
    float clip;               /* max global grad norm (0: no clipping) */
    tsr_train_sched sched;
    int64_t warmup;           /* steps of linear warmup from 0 */
    int64_t eval_every;       /* steps between evaluations (0: only at the end) */
    bool eval_at_end;         /* evaluate when the run finishes (default true) */
    bool eval_first;          /* also evaluate the starting weights (step 0; not on resume) */
    int64_t ckpt_every;       /* steps between checkpoints (0: none by count) */
    float ckpt_minutes;       /* minutes between checkpoints (0: none by time) */
    int64_t stop_after;       /* stop with a checkpoint after this global step (0: never) */
    bool resume;
    tsr_train_carry *carry;   /* optional: AdamW's state in and out (above) */
    bool reschedule;          /* with resume: accept a changed step count (the decay is re-spread) */
    uint64_t seed;            /* data order and c->rng */
    const char *log_path;     /* JSONL metrics (NULL: none); appended on resume */
    int64_t log_every;        /* steps between progress reports and log lines */
    volatile sig_atomic_t *stop; /* set (e.g. by a signal handler): checkpoint and return */
    volatile sig_atomic_t *started; /* optional: set to 1 as the step loop starts (a stop asked
                                     * before it has no step to checkpoint: the caller may just exit) */
    void (*progress)(const tsr_train_progress *p, void *ud);
    void *progress_ud;
} tsr_train_opts;

tsr_train_opts tsr_train_default_opts(void);

typedef struct {
    int64_t step, total;      /* step reached, of total */
    bool finished;            /* step == total */
    bool interrupted;         /* stopped by opts.stop */
    float last_loss;
    double items_per_s, seconds; /* of this invocation */
    double step_s, optim_s, eval_s, ckpt_s; /* where its time went: family step, update, eval, saves */
    double step_cpu_s, optim_cpu_s; /* the same step and update, in the calling thread's CPU seconds */
    tsr_train_metrics eval_first; /* opts.eval_first's (n == 0: none) */
    tsr_train_metrics eval;   /* the last evaluation (n == 0: none) */
} tsr_train_result;

/* r is zeroed first, so it is defined on every return, an early error
 * included; a family's train function that wraps this one does the same
 * (the CLI reads r.interrupted whatever the status). */
tsr_status tsr_train_run(const tsr_train_family *f, const tsr_train_opts *o, tsr_train_result *r);

/* "m.safetensors" -> "m.state.safetensors" (other names: + ".state") */
void tsr_train_state_path(const char *out, char *buf, size_t n);

#endif
