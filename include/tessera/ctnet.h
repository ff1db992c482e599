/* tessera ctnet: continual cross-domain click-through-rate transfer (CTNet,
 * Liu et al. 2022, arXiv 2208.05728). src/models/ctnet/.
 *
 * Data. An interaction log is a list of rows (user, item, domain, timestamp,
 * label, token features). Ids and tokens are hashed (64-bit FNV-1a, folded
 * to 32 bits; a token is hashed together with its field name) and the model
 * maps a hash to one of a fixed number of embedding buckets: no vocabulary
 * file, new users and items of later periods need no resizing. Each row
 * also carries the user's recent history: the last TSR_CTNET_HIST items the
 * user clicked strictly before the row's timestamp (any domain), unless the
 * file gives a `history` column. Fields "time" (hour-of-day bucket,
 * day-of-week) and "domain" are added to every row. See docs/ctnet.md for
 * the CSV/TSV layout and the MovieLens constructions.
 *
 * Model (per domain, a "tower"): embeddings of user, item, the mean of the
 * history items and the mean of each field's tokens, concatenated (x0);
 * one DCNv2 cross layer x1 = x0 * (W x0 + b) + x0 (Wang et al. 2021,
 * optional); an MLP of ReLU layers; a linear output giving the logit.
 * CTNet (paper Sec. 3): the source tower is trained continually on the
 * source domain and is frozen while the target updates; the target tower
 * starts from its previous period's weights; an adapter at the input of
 * every MLP layer l (the hidden layers and the output layer) adds
 *   A_l(z_s) = (W_a z_s + b_a) * sigmoid(W_g z_s + b_g)
 * of the source tower's input to that layer (z_s) to the target's input to
 * the same layer. W_a starts near 0 (N(0, 1e-3^2)), so a fresh adapter
 * leaves a trained target tower as it was. */
#ifndef TESSERA_CTNET_H
#define TESSERA_CTNET_H

#include "tessera/core.h"

#define TSR_CTNET_HIST 10       /* history items per row */
#define TSR_CTNET_MAX_FIELDS 8  /* token fields per row (incl. time, domain) */
#define TSR_CTNET_FIELD_TOKS 8  /* tokens kept per field and row */
#define TSR_CTNET_MAX_LAYERS 4  /* MLP hidden layers */

enum { TSR_CTNET_SOURCE = 0, TSR_CTNET_TARGET = 1, TSR_CTNET_OTHER = 2 };

/* ------------------------------------------------------------------- data */

typedef struct {
    int64_t n, cap;
    int64_t *ts;
    uint8_t *label;   /* 0/1 (0 when the file has no label column) */
    uint8_t *domain;  /* TSR_CTNET_SOURCE / TARGET / OTHER */
    int32_t *period;  /* set by tsr_ctnet_log_periods */
    int64_t *src_row; /* the row's position in the input (rows are kept in time order) */
    uint32_t *user, *item; /* hashes (never 0) */
    uint32_t *hist;   /* n * HIST hashes, 0 = empty slot, most recent first */
    uint32_t *tok;    /* n * MAX_FIELDS * FIELD_TOKS hashes, 0 = empty */
    int n_fields;
    char field[TSR_CTNET_MAX_FIELDS][32];
    bool sorted;      /* rows in timestamp order, history computed */
    int has_history_col;
} tsr_ctnet_log;

void tsr_ctnet_log_init(tsr_ctnet_log *g);
void tsr_ctnet_log_free(tsr_ctnet_log *g);

/* 32-bit hash of s[0..len) salted by field (NULL: ids); never 0 */
uint32_t tsr_ctnet_hash(const char *field, const char *s, size_t len);

/* Generic log, CSV or TSV (tab in the header line selects TSV), one header
 * line naming the columns; no quoting. Columns: user, item, timestamp
 * (integer unix seconds) required; domain (matched against source_name and
 * target_name, anything else is ignored for training), label (0/1)
 * required when need_label; history optional ('|'-separated item ids, most
 * recent first); every other column is a token field, tokens separated by
 * '|'. Errors name the file, line and column. */
tsr_status tsr_ctnet_load_csv(const char *path, const char *source_name, const char *target_name,
                              bool need_label, tsr_ctnet_log *out);
tsr_status tsr_ctnet_parse_csv(const char *buf, size_t len, const char *what,
                               const char *source_name, const char *target_name,
                               bool need_label, tsr_ctnet_log *out);

/* MovieLens constructions. dir holds ml-latest-small (ratings.csv,
 * movies.csv, tags.csv) or the RecBole ml-100k atomic files
 * (ml-100k.inter, .item, .user). Click = rating >= 4; the negatives are the
 * user's ratings below 4 (no sampled negatives). The domain is the item's
 * primary (first listed) genre: source when it is in `sources` (a
 * '|'-separated list, e.g. "Action|Comedy|Drama"), target when it equals
 * `target`, else other. Fields: genre (all the item's genres), tag (the
 * item's tags written before the row, latest-small), year (release decade),
 * user (age band, gender, occupation; 100k), time, domain. */
tsr_status tsr_ctnet_load_movielens(const char *dir, const char *sources, const char *target,
                                    tsr_ctnet_log *out);

/* Period keys: "year" (UTC calendar year), "month" (year*12+month), "week"
 * (whole weeks since the log's first day, UTC). */
tsr_status tsr_ctnet_log_periods(tsr_ctnet_log *g, const char *unit);

/* counts of one period key */
typedef struct {
    int32_t key;
    int64_t rows[3], clicks[3]; /* by domain */
} tsr_ctnet_period_count;
/* one entry per distinct key, ascending; malloc'd */
int tsr_ctnet_period_counts(const tsr_ctnet_log *g, tsr_ctnet_period_count **out);

/* ------------------------------------------------------------------ model */

typedef struct {
    int dim;                   /* embedding width */
    int n_layers;              /* MLP hidden layers */
    int hidden[TSR_CTNET_MAX_LAYERS];
    int cross;                 /* 0/1: a DCNv2 cross layer on x0 */
    int user_buckets, item_buckets, tok_buckets;
    int n_fields;
    /* CTNet's adapters sit at the inputs of MLP layers adapt_from ..
     * n_layers: 1 (the default) = after every hidden layer, fed with the
     * source tower's hidden outputs (paper Sec. 3.2); 0 also adds one at the
     * MLP's input, fed with the source tower's embeddings (cross output) */
    int adapt_from;
    /* CTNet's adapters' outputs are multiplied by adapter_scale before
     * they are added (1: the paper's adapter; 0: adapters fixed at zero,
     * the target tower alone). Under AdamW, whose steps do not depend on
     * the gradient's scale, it scales how fast the adapters' output moves
     * per step, like an lr of its own for W_a and b_a. */
    float adapter_scale;
    /* CTNet's adapters' inputs (TSR_CTNET_NORM_*): NONE reads the source
     * states as they are (the paper); RMS multiplies the source state of
     * layer l by 1 / RMS(z_s^l), MATCH by RMS(z_t^l) / RMS(z_s^l), z_t^l
     * the target tower's own input of layer l (the target tower alone).
     * The RMS are over the period's target training rows, computed once per
     * period update after the source tower's own update (so from the frozen
     * source tower and the target tower as the update starts): constants,
     * no gradient, held in the adapters' buffer "adapter_norm.scale". */
    int adapter_norm;
} tsr_ctnet_cfg;

enum { TSR_CTNET_NORM_NONE, TSR_CTNET_NORM_RMS, TSR_CTNET_NORM_MATCH, TSR_CTNET_NORM_COUNT };
extern const char *const tsr_ctnet_norm_names[TSR_CTNET_NORM_COUNT]; /* "none", "rms", "match" */
int tsr_ctnet_norm_parse(const char *name);                          /* -1: unknown */

tsr_ctnet_cfg tsr_ctnet_default_cfg(void);
int tsr_ctnet_input_dim(const tsr_ctnet_cfg *g); /* (3 + n_fields) * dim */
/* width of the input of MLP layer l (0..n_layers; n_layers = output layer) */
int tsr_ctnet_layer_in(const tsr_ctnet_cfg *g, int l);

/* One CTR tower; its tensors sit in some tsr_params under prefix. */
typedef struct {
    tsr_tensor *emb_user, *emb_item, *emb_tok;
    tsr_tensor *cross_w, *cross_b;
    tsr_tensor *w[TSR_CTNET_MAX_LAYERS + 1], *b[TSR_CTNET_MAX_LAYERS + 1];
} tsr_ctnet_tower;

typedef enum {
    TSR_ADAPT_GATED,  /* the paper's adapter */
    TSR_ADAPT_LINEAR, /* ablation: no gate */
    TSR_ADAPT_LINK,   /* CoNet-style cross connection (linear, both ways) */
} tsr_ctnet_adapt_kind;

typedef struct {
    tsr_tensor *wa[TSR_CTNET_MAX_LAYERS + 1], *ba[TSR_CTNET_MAX_LAYERS + 1];
    tsr_tensor *wg[TSR_CTNET_MAX_LAYERS + 1], *bg[TSR_CTNET_MAX_LAYERS + 1];
    /* cfg.adapter_norm != NONE: (n_layers + 1) multipliers of the source
     * states the adapters read (a buffer: no gradient); NULL otherwise */
    tsr_tensor *norm;
} tsr_ctnet_adapters;

/* registers a tower's tensors as "<prefix>.emb_user.weight", ...,
 * "<prefix>.mlp.<l>.weight", "<prefix>.out.weight" */
void tsr_ctnet_tower_build(tsr_params *p, const char *prefix, const tsr_ctnet_cfg *g,
                           tsr_ctnet_tower *t);
/* embeddings N(0, 0.05^2) (bucket 0, padding, stays 0), linears torch default */
void tsr_ctnet_tower_init(tsr_ctnet_tower *t, const tsr_ctnet_cfg *g, tsr_rng *r);
void tsr_ctnet_tower_copy(tsr_ctnet_tower *dst, const tsr_ctnet_tower *src, const tsr_ctnet_cfg *g);
/* "<prefix>.<l>.a.weight", ... for l = from .. n_layers (gate tensors
 * only when gated); layers below from have none (NULL) */
void tsr_ctnet_adapters_build(tsr_params *p, const char *prefix, const tsr_ctnet_cfg *g,
                              bool gated, int from, tsr_ctnet_adapters *a);
/* W_a ~ N(0, wa_std^2) (wa_std < 0: torch default), b_a = 0, gate torch default */
void tsr_ctnet_adapters_init(tsr_ctnet_adapters *a, const tsr_ctnet_cfg *g, bool gated,
                             float wa_std, tsr_rng *r);

/* A batch as int32 bucket tensors (step arena): user (B), item (B),
 * hist (B,H), tok (B,F,K), with the pooling weights hist_w (B,H,1),
 * tok_w (B,F,K,1) (1/count of filled slots, 0 for empty), and y (B).
 * tok_src: tok as a one-domain source tower sees it, the `domain` field
 * holding the source domain's token for every row (the only value that
 * tower was trained on); tok itself when there is no domain field. */
typedef struct {
    int64_t B;
    tsr_tensor *user, *item, *hist, *tok, *hist_w, *tok_w, *y, *tok_src;
} tsr_ctnet_batch;
/* rows[0..B) of the log; field_map[f] = the log's field index of the
 * model's field f (-1: absent). y = label. */
tsr_ctnet_batch tsr_ctnet_make_batch(tsr_ctx *c, const tsr_ctnet_log *g, const int64_t *rows,
                                     int64_t B, const tsr_ctnet_cfg *cfg, const int *field_map);

/* x0 then the cross layer: the input of MLP layer 0, (B, input_dim) */
tsr_tensor *tsr_ctnet_tower_input(tsr_ctx *c, const tsr_ctnet_tower *t, const tsr_ctnet_cfg *g,
                                  const tsr_ctnet_batch *b);
/* MLP layer l on its input z: ReLU(W z + b) for l < n_layers, the logit
 * (B,1) for l == n_layers */
tsr_tensor *tsr_ctnet_tower_layer(tsr_ctx *c, const tsr_ctnet_tower *t, const tsr_ctnet_cfg *g,
                                  int l, tsr_tensor *z);
/* A(z) of adapter l: gated or not as built */
tsr_tensor *tsr_ctnet_adapter(tsr_ctx *c, const tsr_ctnet_adapters *a, int l, tsr_tensor *z);
/* the source state adapter l reads: zs itself, or zs times the layer's
 * normalisation constant when the adapters have one (a->norm) */
tsr_tensor *tsr_ctnet_adapter_input(tsr_ctx *c, const tsr_ctnet_adapters *a, int l, tsr_tensor *zs);

/* Logits (B,1). src == NULL: the target tower alone. With src and
 * adapters: CTNet (src's inputs zs[l] feed A_l, added to the target's
 * input of layer l); src runs without a tape (frozen). With src and
 * concat_w (1, hidden[last]) instead: the "no adapters" ablation, logit +=
 * concat_w . h_s (frozen source's last hidden layer). */
tsr_tensor *tsr_ctnet_forward(tsr_ctx *c, const tsr_ctnet_cfg *g, const tsr_ctnet_tower *tgt,
                              const tsr_ctnet_tower *src, const tsr_ctnet_adapters *ad,
                              const tsr_tensor *concat_w, const tsr_ctnet_batch *b);

/* The frozen source tower's inputs to MLP layers 0..n_layers (zs[0] its
 * embeddings after the cross layer, zs[l] its hidden layer l), no tape,
 * the batch read through tok_src. */
void tsr_ctnet_source_states(tsr_ctx *c, const tsr_ctnet_cfg *g, const tsr_ctnet_tower *src,
                             const tsr_ctnet_batch *b, tsr_tensor **zs);
/* tsr_ctnet_forward with the source states given (zs NULL: target tower
 * alone); a period update computes them once for its rows, since the
 * source tower does not change during it. */
tsr_tensor *tsr_ctnet_forward_states(tsr_ctx *c, const tsr_ctnet_cfg *g, const tsr_ctnet_tower *tgt,
                                     tsr_tensor *const *zs, const tsr_ctnet_adapters *ad,
                                     const tsr_tensor *concat_w, const tsr_ctnet_batch *b);

/* CoNet-style (Hu et al. 2018): both towers with shared cross links H_l:
 * z_t += H_l z_s, z_s += H_l z_t at every MLP layer input (the links use
 * the wa tensors of `links`, no gate). Returns the logits of both towers. */
void tsr_ctnet_conet_forward(tsr_ctx *c, const tsr_ctnet_cfg *g, const tsr_ctnet_tower *tgt,
                             const tsr_ctnet_tower *src, const tsr_ctnet_adapters *links,
                             const tsr_ctnet_batch *b, tsr_tensor **logit_t, tsr_tensor **logit_s);

/* ---------------------------------------------------------------- metrics */

/* ROC AUC with ties counted 1/2 (Mann-Whitney U via average ranks).
 * NAN when one class is missing. */
double tsr_ctnet_auc(const float *score, const uint8_t *label, int64_t n);
/* mean binary log loss of probabilities p (clipped to [1e-7, 1-1e-7]) */
double tsr_ctnet_logloss(const float *p, const uint8_t *label, int64_t n);

/* ------------------------------------------------------ continual protocol */

typedef enum {
    TSR_CTNET_M_CTNET,        /* CTNet: frozen source, gated near-zero adapters */
    TSR_CTNET_M_TARGET_ONLY,  /* target tower, continually fine-tuned */
    TSR_CTNET_M_RETRAIN,      /* target tower from scratch on all target history */
    TSR_CTNET_M_FINETUNE,     /* source-then-fine-tune */
    TSR_CTNET_M_JOINT,        /* one tower on source + target (domain field) */
    TSR_CTNET_M_CROSS,        /* CoNet-style cross-connected towers */
    TSR_CTNET_M_NO_ADAPT,     /* ablation: frozen source output concatenated */
    TSR_CTNET_M_NO_GATE,      /* ablation: adapters without the gate */
    TSR_CTNET_M_RAND_ADAPT,   /* ablation: adapters with a random (torch default) init */
    TSR_CTNET_M_COUNT
} tsr_ctnet_method;
extern const char *const tsr_ctnet_method_names[TSR_CTNET_M_COUNT];
/* -1 when unknown */
int tsr_ctnet_method_parse(const char *name);

typedef struct {
    tsr_ctnet_cfg cfg;
    int method;
    int32_t first, last;  /* period keys: warm-up = rows before first; steps
                             train on key t and evaluate key t+1 */
    int epochs;           /* per period stage */
    int retrain_epochs;   /* retrain: epochs over the whole target history */
    int source_epochs;    /* the source tower's own update (CTNet, fine-tune's warm-up) */
    int batch;
    float lr, weight_decay, adapter_std;
    /* the source tower's own learning rate (its update each period and
     * fine-tune's source pre-training); 0: the method's lr */
    float source_lr;
    /* every continual update (the source tower's, the target side's; not
     * retrain, which starts from scratch) keeps AdamW's moments and step
     * counts from the previous period's update instead of a fresh AdamW;
     * saved in the continual state */
    bool carry_optimizer;
    uint64_t seed;
    /* diagnostic (eval only, not saved in a state): CTNet's adapters and
     * the no-adapters concat read zeros instead of the frozen source
     * tower's states, so only their biases remain */
    bool zero_source;
    /* not part of the trajectory: with a state file, the steps of a period
     * update between checkpoints of its training state (0: none inside an
     * update, a kill then redoes the stage) */
    int ckpt_every;
} tsr_ctnet_run_opts;
tsr_ctnet_run_opts tsr_ctnet_default_run_opts(void);

#define TSR_CTNET_MAX_PERIODS 64

/* Results of the steps done so far: step s trained on key first+s and
 * evaluated on key first+s+1 (step 0 is the validation step). */
typedef struct {
    int steps_done, steps_total;
    double auc[TSR_CTNET_MAX_PERIODS], logloss[TSR_CTNET_MAX_PERIODS];
    double train_s[TSR_CTNET_MAX_PERIODS];  /* the method's update (target side) */
    double source_s[TSR_CTNET_MAX_PERIODS]; /* source-tower update (0 when none) */
    int64_t train_rows[TSR_CTNET_MAX_PERIODS], eval_rows[TSR_CTNET_MAX_PERIODS];
    /* CTNet and its ablations: the source tower's own next-period AUC on the
     * source rows (NAN for other methods, and for steps done before a
     * resume: not saved in the state) */
    double source_auc[TSR_CTNET_MAX_PERIODS];
    int resumed_inside; /* this invocation: stage updates continued from their mid-period training state */
} tsr_ctnet_results;

/* The continual state of one method: the source tower, target tower,
 * adapters (or links / concat weights), the step reached and the results,
 * all in one safetensors file written atomically after every period. */
typedef struct tsr_ctnet_run tsr_ctnet_run;

/* Runs the protocol on log g (periods set) from the start, or from the
 * state in `state_path` when resume. After every step, when state_path is
 * non-NULL, the state is saved there (atomic); inside a step, after the
 * source tower's update, and the update's own training state every
 * o->ckpt_every steps at `state_path`.update.state (the shared trainer's
 * file), so that a run killed at any instant resumes bit for bit. stop_after_step > 0 stops
 * after that many steps (the file then resumes). The final models are
 * saved by the caller with tsr_ctnet_run_save_model. */
tsr_status tsr_ctnet_run_protocol(const tsr_ctnet_log *g, const tsr_ctnet_run_opts *o,
                                  const char *state_path, bool resume, int stop_after_step,
                                  bool verbose, tsr_ctnet_results *res, tsr_ctnet_run **keep);
void tsr_ctnet_run_free(tsr_ctnet_run *r);

/* The serving model of a finished run (target tower + the source tower and
 * adapters it uses) with its config and field names. */
tsr_status tsr_ctnet_run_save_model(const tsr_ctnet_run *r, const tsr_ctnet_log *g, const char *path);

/* A loaded serving model */
typedef struct {
    tsr_ctnet_cfg cfg;
    int method;
    tsr_params params;
    tsr_ctnet_tower src, tgt;
    tsr_ctnet_adapters ad;
    tsr_tensor *concat_w;
    char field[TSR_CTNET_MAX_FIELDS][32];
    tsr_ctx ctx;      /* scoring scratch, kept between calls */
    bool ctx_ready;
} tsr_ctnet_model;
tsr_status tsr_ctnet_model_load(tsr_ctnet_model *m, const char *path);
void tsr_ctnet_model_free(tsr_ctnet_model *m);
/* click probabilities of rows[0..n) of g (all rows when rows == NULL),
 * in batches of `batch`, no tape. Not thread-safe (one scratch per model). */
void tsr_ctnet_model_predict(tsr_ctnet_model *m, const tsr_ctnet_log *g, const int64_t *rows,
                             int64_t n, int batch, float *prob);

/* ---------------------------------------------------------------- serving */

/* `POST /v1/ctr` for `tessera serve` (src/models/ctnet/serve.c): flag
 * --ctnet FILE (default the shipped model); body {"rows": [{"user",
 * "item", "timestamp", "history", <the model's fields>}, ...]}, reply
 * {"probabilities": [...]} in request order. docs/ctnet.md, Serving. */
struct tsr_serve_endpoint;
extern const struct tsr_serve_endpoint tsr_ctnet_serve_endpoint;

#endif
