/* tessera ctnet: the continual protocol. For each method (CTNet, its
 * ablations and the baselines) the towers are updated period after period
 * and scored on the next period's target rows; the continual state is one
 * safetensors file, saved atomically after every period, from which a run
 * resumes exactly. Also the serving model (load, predict). */
#include "tessera/ctnet.h"

#include "tessera/ops.h"
#include "tessera/optim.h"
#include "tessera/safetensors.h"
#include "tessera/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const tsr_ctnet_method_names[TSR_CTNET_M_COUNT] = {
    "ctnet", "target-only", "retrain", "fine-tune", "joint", "cross-domain",
    "ctnet-no-adapters", "ctnet-no-gate", "ctnet-random-adapters"};
_Static_assert(sizeof tsr_ctnet_method_names / sizeof tsr_ctnet_method_names[0] == TSR_CTNET_M_COUNT,
               "method names");

int tsr_ctnet_method_parse(const char *name) {
    for (int m = 0; m < TSR_CTNET_M_COUNT; m++)
        if (!strcmp(name, tsr_ctnet_method_names[m])) return m;
    return -1;
}

tsr_ctnet_run_opts tsr_ctnet_default_run_opts(void) {
    return (tsr_ctnet_run_opts){.cfg = tsr_ctnet_default_cfg(), .method = TSR_CTNET_M_CTNET,
                                .first = 2003, .last = 2018, .epochs = 3, .retrain_epochs = 3,
                                .source_epochs = 2,
                                .batch = 128, .lr = 2e-3f, .weight_decay = 1e-5f,
                                .adapter_std = 1e-3f, .seed = 1};
}

struct tsr_ctnet_run {
    tsr_ctnet_run_opts o;
    tsr_params all;
    tsr_ctnet_tower src, tgt;
    tsr_ctnet_adapters ad;
    tsr_tensor *concat_w;
    bool has_src, has_ad, gated, has_concat;
    bool warm;        /* warm-up done */
    bool verbose;
    int stage;        /* stages of the running update done (0: source tower, 1: the method's own) */
    const char *state_path; /* continual state (NULL: in-memory run) */
    char scratch[1200]; /* the trainer's files of the running period update */
    char scratch_dir[1100]; /* a temporary folder holding scratch (removed at the end), or "" */
    /* the context of every period update (its steps and CTNet's source
     * states), kept across updates: a period's few steps then start on an
     * arena whose pages are mapped, not on a fresh one */
    tsr_ctx ctx;
    bool ctx_ready;
    tsr_ctnet_results res;
    /* o.carry_optimizer: AdamW's moments and per-parameter step counts,
     * per tensor of `all` (NULL for buffers), carried across updates */
    float **cm, **cv;
    int64_t *cstep;
};

static void carry_alloc(tsr_ctnet_run *r) {
    const int n = r->all.n > 0 ? r->all.n : 1;
    r->cm = calloc((size_t)n, sizeof(float *));
    r->cv = calloc((size_t)n, sizeof(float *));
    r->cstep = calloc((size_t)n, sizeof(int64_t));
    TSR_ASSERT(r->cm && r->cv && r->cstep);
    for (int i = 0; i < r->all.n; i++) {
        if (r->all.flags[i] & TSR_PARAM_BUFFER) continue;
        const size_t k = (size_t)(r->all.items[i]->numel > 0 ? r->all.items[i]->numel : 1);
        r->cm[i] = calloc(k, sizeof(float));
        r->cv[i] = calloc(k, sizeof(float));
        TSR_ASSERT(r->cm[i] && r->cv[i]);
    }
}

static void carry_free(tsr_ctnet_run *r) {
    for (int i = 0; r->cm && i < r->all.n; i++) free(r->cm[i]), free(r->cv[i]);
    free(r->cm);
    free(r->cv);
    free(r->cstep);
}

static tsr_ctx *run_ctx(tsr_ctnet_run *r) {
    if (!r->ctx_ready) {
        tsr_ctx_init(&r->ctx, (size_t)8 << 20);
        r->ctx_ready = true;
    }
    return &r->ctx;
}

static bool uses_source(int m) {
    return m == TSR_CTNET_M_CTNET || m == TSR_CTNET_M_NO_ADAPT || m == TSR_CTNET_M_NO_GATE ||
           m == TSR_CTNET_M_RAND_ADAPT || m == TSR_CTNET_M_FINETUNE || m == TSR_CTNET_M_CROSS;
}
static bool is_ctnet(int m) {
    return m == TSR_CTNET_M_CTNET || m == TSR_CTNET_M_NO_GATE || m == TSR_CTNET_M_RAND_ADAPT;
}

/* the tensors a method holds (shared by training and the serving model) */
static void build_params(tsr_params *p, const tsr_ctnet_cfg *g, int method, tsr_ctnet_tower *src,
                         tsr_ctnet_tower *tgt, tsr_ctnet_adapters *ad, tsr_tensor **concat_w) {
    tsr_params_init(p);
    memset(src, 0, sizeof *src);
    memset(ad, 0, sizeof *ad);
    *concat_w = NULL;
    tsr_ctnet_tower_build(p, "target", g, tgt);
    if (uses_source(method)) tsr_ctnet_tower_build(p, "source", g, src);
    if (is_ctnet(method))
        tsr_ctnet_adapters_build(p, "adapter", g, method != TSR_CTNET_M_NO_GATE, g->adapt_from, ad);
    if (is_ctnet(method) && g->adapter_norm != TSR_CTNET_NORM_NONE) /* not under "adapter.": never trained */
        ad->norm = tsr_param_new(p, "adapter_norm.scale", TSR_PARAM_BUFFER, TSR_DIMS(g->n_layers + 1));
    if (method == TSR_CTNET_M_CROSS) tsr_ctnet_adapters_build(p, "link", g, false, 0, ad); /* every layer */
    if (method == TSR_CTNET_M_NO_ADAPT)
        *concat_w = tsr_param_new(p, "concat.weight", 0, TSR_DIMS(1, g->hidden[g->n_layers - 1]));
}

/* a registry of pointers into another one (the tensors a stage trains) */
static void view_add(tsr_params *v, const tsr_params *all, const char *prefix) {
    size_t pl = strlen(prefix);
    for (int i = 0; i < all->n; i++) {
        if (strncmp(all->items[i]->name, prefix, pl) != 0) continue;
        if (v->n == v->cap) {
            v->cap = v->cap ? v->cap * 2 : 16;
            v->items = realloc(v->items, sizeof *v->items * (size_t)v->cap);
            v->flags = realloc(v->flags, sizeof *v->flags * (size_t)v->cap);
            TSR_ASSERT(v->items && v->flags);
        }
        v->items[v->n] = all->items[i];
        v->flags[v->n++] = all->flags[i];
    }
}

/* ------------------------------------------------------------ one stage */

enum { STG_SOURCE, STG_TARGET, STG_CTNET, STG_JOINT, STG_CONET };

static tsr_tensor *stage_loss(tsr_ctx *c, tsr_ctnet_run *r, int kind, const tsr_ctnet_batch *b,
                              const tsr_ctnet_log *g, const int64_t *rows, tsr_tensor *const *zs) {
    const tsr_ctnet_cfg *cfg = &r->o.cfg;
    if (kind == STG_CONET) {
        tsr_tensor *lt, *ls;
        tsr_ctnet_conet_forward(c, cfg, &r->tgt, &r->src, &r->ad, b, &lt, &ls);
        tsr_tensor *wt = tsr_new(c, TSR_F32, TSR_DIMS(b->B, 1)), *ws = tsr_new(c, TSR_F32, TSR_DIMS(b->B, 1));
        for (int64_t i = 0; i < b->B; i++) {
            tsr_f32(wt)[i] = g->domain[rows[i]] == TSR_CTNET_TARGET;
            tsr_f32(ws)[i] = g->domain[rows[i]] == TSR_CTNET_SOURCE;
        }
        return tsr_add(c, tsr_bce_with_logits(c, lt, b->y, wt, 1, 1), tsr_bce_with_logits(c, ls, b->y, ws, 1, 1));
    }
    tsr_tensor *logit;
    if (kind == STG_SOURCE) logit = tsr_ctnet_forward(c, cfg, &r->src, NULL, NULL, NULL, b);
    else if (kind == STG_CTNET)
        logit = tsr_ctnet_forward_states(c, cfg, &r->tgt, zs, r->has_ad ? &r->ad : NULL, r->concat_w, b);
    else logit = tsr_ctnet_forward(c, cfg, &r->tgt, NULL, NULL, NULL, b);
    return tsr_bce_with_logits(c, logit, b->y, NULL, 1, 1);
}

/* One period update on the shared training loop (src/train): the stage
 * is a tsr_train_family whose parameters are the tensors the update
 * trains (a view into the run's registry) and whose data stream is its
 * own: rows[0..n) reshuffled every epoch by an rng stream `tag`, in
 * batches of opts.batch with a short last batch (a target period can hold
 * fewer rows than one batch, which the trainer's drop-last batcher would
 * skip). The cursor (epoch, index) restores the stream exactly. */
typedef struct {
    tsr_ctnet_run *r;
    const tsr_ctnet_log *g;
    const int64_t *rows;
    int64_t n;
    int kind;
    uint64_t seed;
    tsr_rng rng;
    int32_t *perm;
    int64_t *br;
    int64_t epoch, index;
    /* STG_CTNET: the frozen source tower's states of rows[0..n), per MLP
     * layer input l (NULL where no adapter or concat reads them), computed
     * once per update instead of once per step */
    float *zs_cache[TSR_CTNET_MAX_LAYERS + 1];
} stage;

/* cfg.adapter_norm: the constants of this period update from the sums of
 * squares of the source states (ss) and of the target tower's own layer
 * inputs (st) over its n rows; a layer whose source states are all zero
 * keeps the multiplier 1 (nothing to scale) */
static void set_adapter_norm(tsr_ctnet_run *r, const double *ss, const double *st, int64_t n) {
    const tsr_ctnet_cfg *g = &r->o.cfg;
    float *k = tsr_f32(r->ad.norm);
    for (int l = 0; l <= g->n_layers; l++) {
        k[l] = 1.0f;
        if (!r->ad.wa[l] || n == 0) continue;
        const double cnt = (double)n * (double)tsr_ctnet_layer_in(g, l);
        const double rs = sqrt(ss[l] / cnt), rt = sqrt(st[l] / cnt);
        if (!(rs > 1e-12)) continue;
        k[l] = (float)((g->adapter_norm == TSR_CTNET_NORM_MATCH ? rt : 1.0) / rs);
    }
}

static double sum_sq(const tsr_tensor *x) {
    double q = 0;
    for (int64_t i = 0; i < x->numel; i++) q += (double)tsr_f32(x)[i] * (double)tsr_f32(x)[i];
    return q;
}

/* the source states of every row of the stage, in fixed chunks; with
 * cfg.adapter_norm also the period's normalisation constants (from the
 * states before --zero-source-states replaces them) */
static void stage_cache_states(stage *s) {
    tsr_ctnet_run *r = s->r;
    const tsr_ctnet_cfg *g = &r->o.cfg;
    bool need[TSR_CTNET_MAX_LAYERS + 1] = {0};
    for (int l = 0; l <= g->n_layers; l++) need[l] = r->has_ad && r->ad.wa[l];
    if (r->has_concat) need[g->n_layers] = true;
    for (int l = 0; l <= g->n_layers; l++)
        if (need[l]) {
            s->zs_cache[l] = malloc(sizeof(float) * (size_t)s->n * (size_t)tsr_ctnet_layer_in(g, l));
            TSR_ASSERT(s->zs_cache[l]);
        }
    tsr_ctx *c = run_ctx(r);
    const int64_t chunk = 512;
    double ss[TSR_CTNET_MAX_LAYERS + 1] = {0}, st[TSR_CTNET_MAX_LAYERS + 1] = {0};
    for (int64_t a = 0; a < s->n; a += chunk) {
        const int64_t B = s->n - a < chunk ? s->n - a : chunk;
        tsr_ctx_reset(c);
        c->training = false;
        c->grad_enabled = false;
        tsr_ctnet_batch b = tsr_ctnet_make_batch(c, s->g, s->rows + a, B, g, NULL);
        tsr_tensor *zs[TSR_CTNET_MAX_LAYERS + 2] = {0};
        tsr_ctnet_source_states(c, g, &r->src, &b, zs);
        if (r->has_ad && r->ad.norm) {
            tsr_tensor *zt = g->adapter_norm == TSR_CTNET_NORM_MATCH ? tsr_ctnet_tower_input(c, &r->tgt, g, &b) : NULL;
            for (int l = 0; l <= g->n_layers; l++) {
                if (r->ad.wa[l]) {
                    ss[l] += sum_sq(zs[l]);
                    if (zt) st[l] += sum_sq(zt);
                }
                if (zt && l < g->n_layers) zt = tsr_ctnet_tower_layer(c, &r->tgt, g, l, zt);
            }
        }
        for (int l = 0; l <= g->n_layers; l++)
            if (s->zs_cache[l]) {
                const int64_t w = tsr_ctnet_layer_in(g, l);
                if (r->o.zero_source) memset(s->zs_cache[l] + a * w, 0, sizeof(float) * (size_t)(B * w));
                else memcpy(s->zs_cache[l] + a * w, tsr_f32(zs[l]), sizeof(float) * (size_t)(B * w));
            }
    }
    if (r->has_ad && r->ad.norm) set_adapter_norm(r, ss, st, s->n);
    tsr_ctx_reset(c);
}

static void stage_shuffle(stage *s) {
    for (int64_t i = 0; i < s->n; i++) s->perm[i] = (int32_t)i;
    tsr_rng_shuffle_i32(&s->rng, s->perm, s->n);
}

static tsr_status stage_step(void *ud, tsr_ctx *c, const int32_t *ids, int64_t nid, float *loss) {
    (void)ids;
    (void)nid;
    stage *s = ud;
    if (s->index == 0) stage_shuffle(s);
    const int64_t B = s->n - s->index < s->r->o.batch ? s->n - s->index : s->r->o.batch;
    for (int64_t i = 0; i < B; i++) s->br[i] = s->rows[s->perm[s->index + i]];
    const tsr_ctnet_cfg *g = &s->r->o.cfg;
    tsr_ctnet_batch b = tsr_ctnet_make_batch(c, s->g, s->br, B, g, NULL);
    tsr_tensor *zs[TSR_CTNET_MAX_LAYERS + 1] = {0};
    for (int l = 0; l <= g->n_layers; l++)
        if (s->zs_cache[l]) { /* inputs, no tape: gathered from the cache */
            const int64_t w = tsr_ctnet_layer_in(g, l);
            zs[l] = tsr_new(c, TSR_F32, TSR_DIMS(B, w));
            for (int64_t i = 0; i < B; i++)
                memcpy(tsr_f32(zs[l]) + i * w, s->zs_cache[l] + (int64_t)s->perm[s->index + i] * w,
                       sizeof(float) * (size_t)w);
        }
    tsr_tensor *l = stage_loss(c, s->r, s->kind, &b, s->g, s->br, zs);
    *loss = tsr_f32(l)[0];
    tsr_backward(c, l);
    s->index += B;
    if (s->index >= s->n) s->epoch++, s->index = 0;
    return tsr_ok();
}

static void stage_get_cursor(void *ud, int64_t cursor[4]) {
    stage *s = ud;
    cursor[0] = s->epoch, cursor[1] = s->index, cursor[2] = s->n, cursor[3] = 0;
}

/* replays the shuffles of the epochs before the cursor's */
static tsr_status stage_set_cursor(void *ud, const int64_t cursor[4]) {
    stage *s = ud;
    if (cursor[0] < 0 || cursor[1] < 0 || cursor[1] >= s->n || cursor[2] != s->n)
        return tsr_errorf(TSR_ERR_FORMAT, "ctnet stage: data cursor (%lld, %lld) does not fit %lld rows",
                          (long long)cursor[0], (long long)cursor[1], (long long)s->n);
    tsr_rng_seed(&s->rng, s->seed);
    for (int64_t e = 0; e < cursor[0] + (cursor[1] > 0); e++) stage_shuffle(s);
    s->epoch = cursor[0], s->index = cursor[1];
    return tsr_ok();
}

/* Trains the tensors named by the prefixes on rows[0..n) for `epochs`
 * passes (fresh AdamW, constant learning rate lr) with the trainer's files at
 * `scratch` (removed afterwards: the continual state is saved per period
 * by the protocol). Returns the CPU seconds of the work (source states,
 * forward/backward, updates). */
static tsr_status run_stage(tsr_ctnet_run *r, const tsr_ctnet_log *g, const int64_t *rows, int64_t n,
                            int kind, const char *const *prefixes, int epochs, float lr, uint64_t tag,
                            bool fresh, const char *scratch, double *seconds) {
    *seconds = 0;
    if (n == 0) return tsr_ok();
    tsr_params view;
    memset(&view, 0, sizeof view);
    tsr_arena_init(&view.arena, 4096);
    for (int i = 0; prefixes[i]; i++) view_add(&view, &r->all, prefixes[i]);
    stage s = {.r = r, .g = g, .rows = rows, .n = n, .kind = kind, .seed = r->o.seed * 1000003ull + tag};
    tsr_rng_seed(&s.rng, s.seed);
    s.perm = malloc(sizeof(int32_t) * (size_t)n);
    s.br = malloc(sizeof(int64_t) * (size_t)r->o.batch);
    TSR_ASSERT(s.perm && s.br);
    /* the cost is counted in this thread's CPU seconds (one thread runs
     * the update): the frozen source tower's states of the period's rows,
     * then the loop's forward/backward and updates, not its file writes */
    const double c0 = tsr_thread_time();
    if (kind == STG_CTNET) stage_cache_states(&s);
    const double cache_s = tsr_thread_time() - c0;
    char kv_n[24], kv_kind[8], kv_tag[24];
    snprintf(kv_n, sizeof kv_n, "%lld", (long long)n);
    snprintf(kv_kind, sizeof kv_kind, "%d", kind);
    snprintf(kv_tag, sizeof kv_tag, "%llu", (unsigned long long)tag);
    const char *cfg[] = {"ctnet.rows", kv_n, "ctnet.stage", kv_kind, "ctnet.tag", kv_tag, NULL};
    tsr_train_family f = {.name = "ctnet", .params = &view, .config = cfg, .n_items = 0,
                          .batch = r->o.batch, .unit = "row", .arena_bytes = (size_t)8 << 20, .ctx = run_ctx(r), .ud = &s,
                          .step = stage_step, .get_cursor = stage_get_cursor, .set_cursor = stage_set_cursor};
    tsr_train_opts o = tsr_train_default_opts();
    o.out = scratch;
    char sp[1200];
    tsr_train_state_path(scratch, sp, sizeof sp);
    if (r->state_path) {
        /* a run with a state file checkpoints inside the update too; the
         * training state of this very stage (same period, stage and rows)
         * left by a killed run is resumed, any other is stale */
        o.ckpt_every = r->o.ckpt_every;
        if (access(sp, F_OK) == 0) {
            const char *keys[] = {"ctnet.rows", "ctnet.stage", "ctnet.tag"}, *vals[] = {kv_n, kv_kind, kv_tag};
            int64_t at = -1;
            if (tsr_ckpt_check_meta(sp, keys, vals, 3, &at).code == 0) {
                o.resume = true;
                r->res.resumed_inside++;
                if (r->verbose) tsr_log("ctnet %s: resuming a period update at its step %lld\n",
                                        tsr_ctnet_method_names[r->o.method], (long long)at);
            } else {
                remove(sp);
            }
        }
    }
    o.steps = (n + r->o.batch - 1) / r->o.batch * epochs;
    o.lr = lr;
    o.weight_decay = r->o.weight_decay;
    o.sched = TSR_SCHED_CONSTANT;
    o.eval_at_end = false;
    o.log_every = 0;
    o.seed = r->o.seed;
    /* the carried optimizer state of the view's tensors (fresh: a new AdamW) */
    tsr_train_carry carry = {view.n, NULL, NULL, NULL};
    if (r->cm && !fresh) {
        carry.m = malloc(sizeof(float *) * (size_t)(view.n + 1));
        carry.v = malloc(sizeof(float *) * (size_t)(view.n + 1));
        carry.step = malloc(sizeof(int64_t) * (size_t)(view.n + 1));
        TSR_ASSERT(carry.m && carry.v && carry.step);
        for (int i = 0; i < view.n; i++) {
            int a = 0;
            while (r->all.items[a] != view.items[i]) a++;
            carry.m[i] = r->cm[a], carry.v[i] = r->cv[a], carry.step[i] = r->cstep[a];
        }
        o.carry = &carry;
    }
    tsr_train_result res;
    tsr_status st = tsr_train_run(&f, &o, &res);
    if (o.carry) {
        for (int i = 0; !st.code && i < view.n; i++) { /* step counts back (moments were written in place) */
            int a = 0;
            while (r->all.items[a] != view.items[i]) a++;
            r->cstep[a] = carry.step[i];
        }
        free(carry.m);
        free(carry.v);
        free(carry.step);
    }
    *seconds = cache_s + res.step_cpu_s + res.optim_cpu_s;
    if (!r->state_path) remove(sp); /* else after the continual state moved past this stage */
    free(s.perm);
    free(s.br);
    for (int l = 0; l <= TSR_CTNET_MAX_LAYERS; l++) free(s.zs_cache[l]);
    free(view.items);
    free(view.flags);
    tsr_arena_free(&view.arena);
    return st;
}

/* rows of domain dom (-1: source or target) with key in [lo, hi] */
static int64_t select_rows(const tsr_ctnet_log *g, int dom, int32_t lo, int32_t hi, int64_t *out) {
    int64_t n = 0;
    for (int64_t i = 0; i < g->n; i++) {
        if (g->period[i] < lo || g->period[i] > hi) continue;
        if (dom >= 0 ? g->domain[i] != dom : g->domain[i] == TSR_CTNET_OTHER) continue;
        out[n++] = i;
    }
    return n;
}

/* target-domain logits of a trained method (evaluation and serving) */
static tsr_tensor *method_logit(tsr_ctx *c, const tsr_ctnet_cfg *g, int m, const tsr_ctnet_tower *tgt,
                                const tsr_ctnet_tower *src, const tsr_ctnet_adapters *ad,
                                const tsr_tensor *concat_w, const tsr_ctnet_batch *b) {
    if (m == TSR_CTNET_M_CROSS) {
        tsr_tensor *lt, *ls;
        tsr_ctnet_conet_forward(c, g, tgt, src, ad, b, &lt, &ls);
        return lt;
    }
    if (is_ctnet(m)) return tsr_ctnet_forward(c, g, tgt, src, ad, NULL, b);
    if (m == TSR_CTNET_M_NO_ADAPT) return tsr_ctnet_forward(c, g, tgt, src, NULL, concat_w, b);
    return tsr_ctnet_forward(c, g, tgt, NULL, NULL, NULL, b);
}

/* probabilities of rows (no tape): the target domain's by the method, or
 * with `source` the source tower's own on source rows */
static void predict_rows(tsr_ctnet_run *r, const tsr_ctnet_log *g, const int64_t *rows, int64_t n, bool source,
                         float *prob) {
    tsr_ctx c;
    tsr_ctx_init(&c, (size_t)8 << 20);
    const int bs = 512;
    for (int64_t s = 0; s < n; s += bs) {
        int64_t B = n - s < bs ? n - s : bs;
        tsr_ctx_reset(&c);
        c.training = false;
        c.grad_enabled = false;
        tsr_ctnet_batch b = tsr_ctnet_make_batch(&c, g, rows + s, B, &r->o.cfg, NULL);
        tsr_tensor *logit;
        if (source) {
            logit = tsr_ctnet_forward(&c, &r->o.cfg, &r->src, NULL, NULL, NULL, &b);
        } else if (r->o.zero_source && (r->has_ad || r->has_concat)) {
            tsr_tensor *zs[TSR_CTNET_MAX_LAYERS + 1] = {0};
            for (int l = 0; l <= r->o.cfg.n_layers; l++)
                zs[l] = tsr_zeros(&c, TSR_F32, TSR_DIMS(B, tsr_ctnet_layer_in(&r->o.cfg, l)));
            logit = tsr_ctnet_forward_states(&c, &r->o.cfg, &r->tgt, zs, r->has_ad ? &r->ad : NULL, r->concat_w, &b);
        } else {
            logit = method_logit(&c, &r->o.cfg, r->o.method, &r->tgt, &r->src, &r->ad, r->concat_w, &b);
        }
        for (int64_t i = 0; i < B; i++) prob[s + i] = 1.0f / (1.0f + expf(-tsr_f32(logit)[i]));
    }
    tsr_ctx_free(&c);
}

/* ------------------------------------------------------- state on disk */

static void opts_meta(const tsr_ctnet_run_opts *o, char vals[][32], const char **keys, int *n) {
    int k = 0;
#define KV(name, fmt, v) (keys[k] = name, snprintf(vals[k], 32, fmt, v), k++)
    KV("method", "%s", tsr_ctnet_method_names[o->method]);
    KV("dim", "%d", o->cfg.dim);
    KV("n_layers", "%d", o->cfg.n_layers);
    for (int l = 0; l < TSR_CTNET_MAX_LAYERS; l++) {
        static const char *hk[TSR_CTNET_MAX_LAYERS] = {"hidden0", "hidden1", "hidden2", "hidden3"};
        KV(hk[l], "%d", l < o->cfg.n_layers ? o->cfg.hidden[l] : 0);
    }
    KV("cross", "%d", o->cfg.cross);
    KV("adapt_from", "%d", o->cfg.adapt_from);
    KV("adapter_scale", "%.9g", (double)o->cfg.adapter_scale); /* files written before it have none: 1 */
    if (o->cfg.adapter_norm != TSR_CTNET_NORM_NONE) /* absent: none (and files written before it) */
        KV("adapter_norm", "%s", tsr_ctnet_norm_names[o->cfg.adapter_norm]);
    KV("user_buckets", "%d", o->cfg.user_buckets);
    KV("item_buckets", "%d", o->cfg.item_buckets);
    KV("tok_buckets", "%d", o->cfg.tok_buckets);
    KV("n_fields", "%d", o->cfg.n_fields);
    KV("first", "%d", (int)o->first);
    KV("last", "%d", (int)o->last);
    KV("epochs", "%d", o->epochs);
    KV("retrain_epochs", "%d", o->retrain_epochs);
    KV("source_epochs", "%d", o->source_epochs);
    KV("batch", "%d", o->batch);
    KV("lr", "%.9g", (double)o->lr);
    KV("weight_decay", "%.9g", (double)o->weight_decay);
    KV("adapter_std", "%.9g", (double)o->adapter_std);
    if (o->source_lr > 0) KV("source_lr", "%.9g", (double)o->source_lr); /* absent: the method's lr */
    if (o->carry_optimizer) KV("carry_optimizer", "%d", 1); /* absent: a fresh AdamW per update */
    KV("seed", "%llu", (unsigned long long)o->seed);
#undef KV
    *n = k;
}

#define MAX_META 40

static tsr_status save_state(const tsr_ctnet_run *r, const tsr_ctnet_log *g, const char *path,
                             bool with_fields) {
    char vals[MAX_META][32];
    const char *keys[MAX_META];
    int n;
    opts_meta(&r->o, vals, keys, &n);
    const char *kv[2 * MAX_META + 8];
    int k = 0;
    kv[k++] = "family";
    kv[k++] = "ctnet";
    for (int i = 0; i < n; i++) {
        kv[k++] = keys[i];
        kv[k++] = vals[i];
    }
    char steps[16], warm[4], stage[4];
    snprintf(steps, sizeof steps, "%d", r->res.steps_done);
    snprintf(warm, sizeof warm, "%d", (int)r->warm);
    snprintf(stage, sizeof stage, "%d", r->stage);
    kv[k++] = "steps_done";
    kv[k++] = steps;
    kv[k++] = "warm";
    kv[k++] = warm;
    if (!with_fields) { /* where inside the running update (the model file has none) */
        kv[k++] = "stage";
        kv[k++] = stage;
    }
    /* results so far: per step auc logloss train_s source_s train_rows
     * eval_rows; the model file leaves the seconds out, so that a run's
     * model is the same file however often it was killed and resumed */
    size_t cap = 64 + (size_t)r->res.steps_done * 160;
    char *rs = malloc(cap), fields[TSR_CTNET_MAX_FIELDS * 33 + 1] = "";
    TSR_ASSERT(rs);
    size_t off = 0;
    rs[0] = 0;
    for (int s = 0; s < r->res.steps_done; s++) {
        const double ts = with_fields ? 0 : r->res.train_s[s], ss = with_fields ? 0 : r->res.source_s[s];
        off += (size_t)snprintf(rs + off, cap - off, "%s%.17g %.17g %.17g %.17g %lld %lld", s ? ";" : "",
                                r->res.auc[s], r->res.logloss[s], ts, ss, (long long)r->res.train_rows[s],
                                (long long)r->res.eval_rows[s]);
    }
    kv[k++] = "results";
    kv[k++] = rs;
    if (with_fields && g) {
        for (int f = 0; f < g->n_fields; f++) {
            strcat(fields, g->field[f]);
            if (f + 1 < g->n_fields) strcat(fields, "|");
        }
        kv[k++] = "fields";
        kv[k++] = fields;
    }
    kv[k] = NULL;
    tsr_status st;
    if (r->cm && !with_fields) { /* the state also holds the carried optimizer */
        tsr_st_writer *w = tsr_st_writer_new();
        for (int i = 0; i < r->all.n; i++) {
            const tsr_tensor *t = r->all.items[i];
            tsr_st_add(w, t->name, TSR_ST_F32, t->ndim, t->shape, t->data);
        }
        char nm[160];
        for (int i = 0; i < r->all.n; i++) {
            const tsr_tensor *t = r->all.items[i];
            if (!r->cm[i]) continue;
            snprintf(nm, sizeof nm, "optim.m.%s", t->name);
            tsr_st_add(w, nm, TSR_ST_F32, t->ndim, t->shape, r->cm[i]);
            snprintf(nm, sizeof nm, "optim.v.%s", t->name);
            tsr_st_add(w, nm, TSR_ST_F32, t->ndim, t->shape, r->cv[i]);
        }
        const int64_t ns = r->all.n;
        tsr_st_add(w, "optim.step", TSR_ST_I64, 1, &ns, r->cstep);
        for (int i = 0; kv[i] && kv[i + 1]; i += 2) tsr_st_set_meta(w, kv[i], kv[i + 1]);
        st = tsr_st_write(w, path);
        tsr_st_writer_free(w);
    } else {
        st = tsr_params_save(&r->all, path, TSR_ST_F32, kv);
    }
    free(rs);
    return st;
}

/* the carried optimizer of a state file (o.carry_optimizer) */
static tsr_status load_carry(tsr_ctnet_run *r, const tsr_st_file *f, const char *path) {
    char nm[160];
    const int64_t ns = r->all.n;
    const tsr_st_tensor *st = tsr_st_find(f, "optim.step");
    if (!st || st->dtype != TSR_ST_I64 || st->ndim != 1 || st->shape[0] != ns)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: the carried optimizer's 'optim.step' is missing or of the wrong shape", path);
    for (int i = 0; i < r->all.n; i++) {
        if (!r->cm[i]) continue;
        const tsr_tensor *t = r->all.items[i];
        for (int k = 0; k < 2; k++) {
            snprintf(nm, sizeof nm, "optim.%c.%s", k ? 'v' : 'm', t->name);
            const tsr_st_tensor *s = tsr_st_find(f, nm);
            if (!s || s->dtype != TSR_ST_F32 || s->nbytes != sizeof(float) * (size_t)t->numel)
                return tsr_errorf(TSR_ERR_FORMAT, "%s: the carried optimizer's '%s' is missing or of the wrong size", path, nm);
        }
    }
    memcpy(r->cstep, st->data, sizeof(int64_t) * (size_t)ns);
    for (int i = 0; i < r->all.n; i++) {
        if (!r->cm[i]) continue;
        const tsr_tensor *t = r->all.items[i];
        snprintf(nm, sizeof nm, "optim.m.%s", t->name);
        memcpy(r->cm[i], tsr_st_find(f, nm)->data, sizeof(float) * (size_t)t->numel);
        snprintf(nm, sizeof nm, "optim.v.%s", t->name);
        memcpy(r->cv[i], tsr_st_find(f, nm)->data, sizeof(float) * (size_t)t->numel);
    }
    for (int i = 0; i < r->all.n; i++)
        if (r->cstep[i] < 0) return tsr_errorf(TSR_ERR_FORMAT, "%s: negative step count in 'optim.step'", path);
    return tsr_ok();
}

static tsr_status load_state(tsr_ctnet_run *r, const char *path) {
    char vals[MAX_META][32];
    const char *keys[MAX_META];
    int n;
    opts_meta(&r->o, vals, keys, &n);
    const char *vp[MAX_META];
    for (int i = 0; i < n; i++) vp[i] = vals[i];
    int64_t step;
    tsr_status st = tsr_ckpt_check_meta(path, keys, vp, n, &step);
    if (st.code) return st;
    tsr_st_file f;
    st = tsr_st_read(path, &f);
    if (st.code) return st;
    const char *an = tsr_st_meta(&f, "adapter_norm"); /* a key of opts_meta only when not none */
    if (an && r->o.cfg.adapter_norm == TSR_CTNET_NORM_NONE) { /* the message before the file (and an) is freed */
        st = tsr_errorf(TSR_ERR_ARG, "%s: cannot resume: it was trained with adapter_norm=%s, this run has none", path, an);
        tsr_st_free(&f);
        return st;
    }
    st = tsr_params_load(&r->all, path, r->cm != NULL);
    if (st.code) {
        tsr_st_free(&f);
        return st;
    }
    if (r->cm && (st = load_carry(r, &f, path)).code) {
        tsr_st_free(&f);
        return st;
    }
    const char *sd = tsr_st_meta(&f, "steps_done"), *wm = tsr_st_meta(&f, "warm"),
               *rs = tsr_st_meta(&f, "results");
    int done = sd ? atoi(sd) : -1;
    if (!sd || !wm || !rs || done < 0 || done > r->res.steps_total) {
        tsr_st_free(&f);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not a ctnet run state (steps_done/warm/results missing or invalid)", path);
    }
    r->warm = atoi(wm) != 0;
    r->res.steps_done = done;
    const char *sg = tsr_st_meta(&f, "stage"); /* absent in states saved only per period */
    r->stage = sg ? atoi(sg) : 0;
    if (r->stage < 0 || r->stage > 1) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: not a ctnet run state (stage '%s')", path, sg);
        tsr_st_free(&f);
        return st;
    }
    const char *p = rs;
    for (int s = 0; s < done; s++) {
        long long a, b;
        int used = 0;
        if (sscanf(p, "%lf %lf %lf %lf %lld %lld%n", &r->res.auc[s], &r->res.logloss[s], &r->res.train_s[s],
                   &r->res.source_s[s], &a, &b, &used) != 6) {
            tsr_st_free(&f);
            return tsr_errorf(TSR_ERR_FORMAT, "%s: malformed 'results' metadata at step %d", path, s);
        }
        r->res.train_rows[s] = a;
        r->res.eval_rows[s] = b;
        p += used;
        if (*p == ';') p++;
    }
    tsr_st_free(&f);
    return tsr_ok();
}

/* ------------------------------------------------------------- protocol */

static double mean_abs(const tsr_tensor *x) {
    double s = 0;
    for (int64_t i = 0; i < x->numel; i++) s += fabs((double)tsr_f32(x)[i]);
    return x->numel ? s / (double)x->numel : 0;
}

/* verbose CTNet updates: on the period's rows (at most 512), per adapted
 * layer l, the mean |.| of the target tower's own input z_t, of what the
 * adapter adds to it, and of the source state it reads */
static void log_adapter_share(tsr_ctnet_run *r, const tsr_ctnet_log *g, const int64_t *rows, int64_t n) {
    if (!r->has_ad || n == 0) return;
    const tsr_ctnet_cfg *cfg = &r->o.cfg;
    tsr_ctx *c = run_ctx(r);
    tsr_ctx_reset(c);
    c->training = false;
    c->grad_enabled = false;
    const int64_t B = n < 512 ? n : 512;
    tsr_ctnet_batch b = tsr_ctnet_make_batch(c, g, rows, B, cfg, NULL);
    tsr_tensor *zs[TSR_CTNET_MAX_LAYERS + 2] = {0};
    tsr_ctnet_source_states(c, cfg, &r->src, &b, zs);
    tsr_tensor *z = tsr_ctnet_tower_input(c, &r->tgt, cfg, &b);
    char line[512];
    int off = snprintf(line, sizeof line, "ctnet %s: adapters |z_t| |A| |z_s| per layer:",
                       tsr_ctnet_method_names[r->o.method]);
    for (int l = 0; l <= cfg->n_layers; l++) {
        if (r->ad.wa[l]) {
            tsr_tensor *zin = tsr_ctnet_adapter_input(c, &r->ad, l, zs[l]);
            tsr_tensor *a = tsr_ctnet_adapter(c, &r->ad, l, r->o.zero_source ? tsr_zeros(c, TSR_F32, TSR_DIMS(B, zs[l]->shape[1])) : zin);
            a = tsr_scale(c, a, cfg->adapter_scale);
            if (off < (int)sizeof line)
                off += snprintf(line + off, sizeof line - (size_t)off, "  %d: %.4f %.4f %.4f", l, mean_abs(z),
                                mean_abs(a), mean_abs(zs[l]));
            if (r->ad.norm && off < (int)sizeof line) /* the normalised state the adapter reads, and its constant */
                off += snprintf(line + off, sizeof line - (size_t)off, " (read %.4f, x %.4g)", mean_abs(zin),
                                (double)tsr_f32(r->ad.norm)[l]);
            z = tsr_add(c, z, a);
        }
        z = tsr_ctnet_tower_layer(c, &r->tgt, cfg, l, z);
    }
    tsr_log("%s\n", line);
    tsr_ctx_reset(c);
}

static void run_free(tsr_ctnet_run *r) {
    if (r->scratch_dir[0]) rmdir(r->scratch_dir);
    if (r->ctx_ready) tsr_ctx_free(&r->ctx);
    carry_free(r);
    tsr_params_free(&r->all);
    free(r);
}
void tsr_ctnet_run_free(tsr_ctnet_run *r) {
    if (r) run_free(r);
}

static const char *const P_SRC[] = {"source.", NULL};
static const char *const P_TGT[] = {"target.", NULL};
static const char *const P_CTNET[] = {"target.", "adapter.", "concat.", NULL};
static const char *const P_CONET[] = {"target.", "source.", "link.", NULL};

/* the training state of the last stage (kept until the continual state has moved past it) */
static void drop_scratch(const tsr_ctnet_run *r) {
    char sp[1200];
    tsr_train_state_path(r->scratch, sp, sizeof sp);
    remove(sp);
}

/* After stage k of an update: the continual state records it (with the
 * weights as they are now), then the stage's training state is dropped.
 * A kill before the save resumes the stage's finished training state; a
 * kill after it skips the stage. The last stage needs no save of its own:
 * the period's save follows its evaluation. */
static tsr_status stage_done(tsr_ctnet_run *r, const tsr_ctnet_log *g, int k) {
    r->stage = k + 1;
    if (!r->state_path) return tsr_ok();
    tsr_status st = save_state(r, g, r->state_path, false);
    if (!st.code) drop_scratch(r);
    return st;
}

/* One period's update of the method on the rows of key lo..hi (retrain:
 * all target history up to hi), in two stages: 0 the source tower's own
 * update (CTNet, its ablations, fine-tune's warm-up), 1 the method's
 * update. Stages before r->stage were done by an earlier, killed run.
 * Returns the target-side and source seconds of this invocation. */
static tsr_status update(tsr_ctnet_run *r, const tsr_ctnet_log *g, int32_t lo, int32_t hi, bool warmup,
                         uint64_t tag, int64_t *buf, double *t_tgt, double *t_src, int64_t *n_rows) {
    const int m = r->o.method;
    const int E = r->o.epochs;
    *t_src = 0;
    *t_tgt = 0;
    *n_rows = 0;
    tsr_status st;
    if (r->stage < 1) {
        if (is_ctnet(m) || m == TSR_CTNET_M_NO_ADAPT || (m == TSR_CTNET_M_FINETUNE && warmup)) {
            int64_t n = select_rows(g, TSR_CTNET_SOURCE, lo, hi, buf);
            /* the source model's own recipe: its lr is not the method's
             * unless no source lr is given */
            const float slr = r->o.source_lr > 0 ? r->o.source_lr : r->o.lr;
            st = run_stage(r, g, buf, n, STG_SOURCE, P_SRC, r->o.source_epochs, slr, tag * 8 + 1, false, r->scratch,
                           t_src);
            if (st.code) return st;
            if ((st = stage_done(r, g, 0)).code) return st;
        }
        r->stage = 1;
    }
    /* stage 1 starts from the weights stage 0 left; what is set before it
     * (a copy, a re-initialisation) is a function of those and is redone
     * on resume, then overwritten by the stage's own training state */
    if (m == TSR_CTNET_M_FINETUNE && warmup) /* source-then-fine-tune: start from the source tower */
        tsr_ctnet_tower_copy(&r->tgt, &r->src, &r->o.cfg);
    int64_t n;
    if (m == TSR_CTNET_M_JOINT || m == TSR_CTNET_M_CROSS) {
        n = select_rows(g, -1, lo, hi, buf);
        st = run_stage(r, g, buf, n, m == TSR_CTNET_M_JOINT ? STG_JOINT : STG_CONET,
                       m == TSR_CTNET_M_JOINT ? P_TGT : P_CONET, E, r->o.lr, tag * 8 + 2, false, r->scratch,
                       t_tgt);
    } else if (m == TSR_CTNET_M_RETRAIN) {
        if (!warmup) { /* from scratch, on every target row so far */
            tsr_rng ir;
            tsr_rng_seed(&ir, r->o.seed * 7919ull + tag);
            tsr_ctnet_tower_init(&r->tgt, &r->o.cfg, &ir);
        }
        n = select_rows(g, TSR_CTNET_TARGET, INT32_MIN, hi, buf);
        st = run_stage(r, g, buf, n, STG_TARGET, P_TGT, r->o.retrain_epochs, r->o.lr, tag * 8 + 3, true, r->scratch,
                       t_tgt);
    } else {
        n = select_rows(g, TSR_CTNET_TARGET, lo, hi, buf);
        /* CTNet keeps a plain target tower until the warm-up is over: the
         * adapters join a trained target model (paper Sec. 3.2) */
        bool with_src = !warmup && (is_ctnet(m) || m == TSR_CTNET_M_NO_ADAPT);
        st = run_stage(r, g, buf, n, with_src ? STG_CTNET : STG_TARGET, with_src ? P_CTNET : P_TGT, E,
                       r->o.lr, tag * 8 + 4, false, r->scratch, t_tgt);
        if (!st.code && with_src && r->verbose) log_adapter_share(r, g, buf, n);
    }
    *n_rows = n;
    /* the period's save (after its evaluation) moves the continual state on */
    if (!st.code) r->stage = 2;
    return st;
}

tsr_status tsr_ctnet_run_protocol(const tsr_ctnet_log *g, const tsr_ctnet_run_opts *o,
                                  const char *state_path, bool resume, int stop_after_step,
                                  bool verbose, tsr_ctnet_results *res, tsr_ctnet_run **keep) {
    if (o->method < 0 || o->method >= TSR_CTNET_M_COUNT) return tsr_errorf(TSR_ERR_ARG, "unknown method %d", o->method);
    if (o->last - o->first < 2 || o->last - o->first >= TSR_CTNET_MAX_PERIODS)
        return tsr_errorf(TSR_ERR_ARG, "periods %d..%d: need 3 to %d consecutive periods", (int)o->first,
                          (int)o->last, TSR_CTNET_MAX_PERIODS);
    if (o->cfg.adapt_from < 0 || o->cfg.adapt_from > o->cfg.n_layers)
        return tsr_errorf(TSR_ERR_ARG, "adapt_from %d: must be in [0, %d]", o->cfg.adapt_from, o->cfg.n_layers);
    if (o->cfg.n_fields != g->n_fields)
        return tsr_errorf(TSR_ERR_ARG, "model has %d fields, the log %d", o->cfg.n_fields, g->n_fields);
    if (o->cfg.adapter_norm < 0 || o->cfg.adapter_norm >= TSR_CTNET_NORM_COUNT)
        return tsr_errorf(TSR_ERR_ARG, "adapter_norm %d: must be none, rms or match", o->cfg.adapter_norm);
    tsr_ctnet_run *r = calloc(1, sizeof *r);
    TSR_ASSERT(r);
    r->o = *o;
    build_params(&r->all, &o->cfg, o->method, &r->src, &r->tgt, &r->ad, &r->concat_w);
    r->has_src = uses_source(o->method);
    r->has_ad = is_ctnet(o->method);
    r->gated = o->method == TSR_CTNET_M_CTNET || o->method == TSR_CTNET_M_RAND_ADAPT;
    r->has_concat = r->concat_w != NULL;
    if (o->carry_optimizer) carry_alloc(r);
    r->res.steps_total = (int)(o->last - o->first);
    for (int s = 0; s < TSR_CTNET_MAX_PERIODS; s++) r->res.source_auc[s] = NAN;
    /* same initial towers for every method of a seed */
    tsr_rng ir;
    tsr_rng_seed(&ir, o->seed * 2 + 1);
    tsr_ctnet_tower_init(&r->tgt, &o->cfg, &ir);
    if (r->has_src) {
        tsr_rng_seed(&ir, o->seed * 2 + 2);
        tsr_ctnet_tower_init(&r->src, &o->cfg, &ir);
    }
    tsr_rng_seed(&ir, o->seed * 2 + 3);
    if (r->has_ad)
        tsr_ctnet_adapters_init(&r->ad, &o->cfg, r->gated,
                                o->method == TSR_CTNET_M_RAND_ADAPT ? -1.0f : o->adapter_std, &ir);
    if (o->method == TSR_CTNET_M_CROSS) tsr_ctnet_adapters_init(&r->ad, &o->cfg, false, o->adapter_std, &ir);
    tsr_status st = tsr_ok();
    if (state_path) { /* a save killed half-way leaves its tmp; the state itself is whole */
        char tmp[1100];
        snprintf(tmp, sizeof tmp, "%s.tmp", state_path);
        remove(tmp);
    }
    /* the trainer's files of one period update: beside the state, or in a
     * temporary folder (tmpfs when there is one) for in-memory runs */
    if (state_path) {
        snprintf(r->scratch, sizeof r->scratch, "%s.update", state_path);
    } else {
        const char *td = getenv("TMPDIR");
        snprintf(r->scratch_dir, sizeof r->scratch_dir, "%s/tsr_ctnet.XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : td && *td ? td : "/tmp");
        if (!mkdtemp(r->scratch_dir)) {
            st = tsr_errorf(TSR_ERR_IO, "%s: cannot create a temporary folder", r->scratch_dir);
            run_free(r);
            return st;
        }
        snprintf(r->scratch, sizeof r->scratch, "%s/update", r->scratch_dir);
    }
    r->state_path = state_path;
    r->verbose = verbose;
    if (state_path && !resume) {
        drop_scratch(r); /* a killed run's update, not ours */
        /* the state before the warm-up (warm 0): a kill inside the warm-up
         * update resumes it from its training state like any other update */
        st = save_state(r, g, state_path, false);
        if (st.code) {
            run_free(r);
            return st;
        }
    }
    if (resume) {
        st = load_state(r, state_path);
        if (st.code) {
            run_free(r);
            return st;
        }
    }
    int64_t *buf = malloc(sizeof(int64_t) * (size_t)(g->n + 1));
    float *prob = malloc(sizeof(float) * (size_t)(g->n + 1));
    uint8_t *lab = malloc((size_t)g->n + 1);
    TSR_ASSERT(buf && prob && lab);
    if (!r->warm) {
        double ts, tt;
        int64_t nr;
        st = update(r, g, INT32_MIN, o->first - 1, true, 0, buf, &tt, &ts, &nr);
        r->warm = !st.code;
        if (verbose && !st.code) tsr_log("ctnet %s: warm-up (periods < %d) %.2fs\n", tsr_ctnet_method_names[o->method], (int)o->first, tt + ts);
        r->stage = 0;
        if (!st.code && state_path && !(st = save_state(r, g, state_path, false)).code) drop_scratch(r);
    }
    while (!st.code && r->res.steps_done < r->res.steps_total) {
        int s = r->res.steps_done;
        int32_t k = o->first + s;
        double ts, tt;
        int64_t nr;
        st = update(r, g, k, k, false, (uint64_t)s + 1, buf, &tt, &ts, &nr);
        if (st.code) break;
        int64_t ne = select_rows(g, TSR_CTNET_TARGET, k + 1, k + 1, buf);
        predict_rows(r, g, buf, ne, false, prob);
        for (int64_t i = 0; i < ne; i++) lab[i] = g->label[buf[i]];
        r->res.auc[s] = tsr_ctnet_auc(prob, lab, ne);
        r->res.logloss[s] = tsr_ctnet_logloss(prob, lab, ne);
        r->res.train_s[s] = tt;
        r->res.source_s[s] = ts;
        r->res.train_rows[s] = nr;
        r->res.eval_rows[s] = ne;
        if (is_ctnet(o->method) || o->method == TSR_CTNET_M_NO_ADAPT) {
            /* the source model's own quality: its next-period source rows */
            int64_t ns = select_rows(g, TSR_CTNET_SOURCE, k + 1, k + 1, buf);
            predict_rows(r, g, buf, ns, true, prob);
            for (int64_t i = 0; i < ns; i++) lab[i] = g->label[buf[i]];
            r->res.source_auc[s] = tsr_ctnet_auc(prob, lab, ns);
        }
        r->res.steps_done = s + 1;
        if (verbose)
            tsr_log("ctnet %s: period %d -> %d  auc %.4f  logloss %.4f  train %.3fs (%lld rows) source %.3fs\n",
                    tsr_ctnet_method_names[o->method], (int)k, (int)k + 1, r->res.auc[s], r->res.logloss[s], tt,
                    (long long)nr, ts);
        r->stage = 0;
        if (state_path && !(st = save_state(r, g, state_path, false)).code) drop_scratch(r);
        if (stop_after_step > 0 && r->res.steps_done >= stop_after_step) break;
    }
    free(buf);
    free(prob);
    free(lab);
    if (res) *res = r->res;
    if (!st.code && keep) *keep = r;
    else run_free(r);
    return st;
}

tsr_status tsr_ctnet_run_save_model(const tsr_ctnet_run *r, const tsr_ctnet_log *g, const char *path) {
    return save_state(r, g, path, true);
}

/* --------------------------------------------------------- serving model */

/* an adapter_scale from metadata: a number in [0, 10] */
static bool meta_scale(const char *s, float *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 0 && v <= 10)) return false;
    *out = (float)v;
    return true;
}

tsr_status tsr_ctnet_model_load(tsr_ctnet_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    tsr_ctnet_cfg g = {.adapter_scale = 1.0f}; /* absent in files written before it existed */
    const char *fam = tsr_st_meta(&f, "family"), *meth = tsr_st_meta(&f, "method"), *fields = tsr_st_meta(&f, "fields");
    const char *bad = NULL;
    static const char *hk[TSR_CTNET_MAX_LAYERS] = {"hidden0", "hidden1", "hidden2", "hidden3"};
    if (!fam || strcmp(fam, "ctnet")) bad = "family";
    else if (!meth || (m->method = tsr_ctnet_method_parse(meth)) < 0) bad = "method";
    else if (!tsr_st_meta_int(&f, "dim", 1, 1024, &g.dim)) bad = "dim";
    else if (!tsr_st_meta_int(&f, "n_layers", 1, TSR_CTNET_MAX_LAYERS, &g.n_layers)) bad = "n_layers";
    else if (!tsr_st_meta_int(&f, "cross", 0, 1, &g.cross)) bad = "cross";
    else if (tsr_st_meta(&f, "adapt_from") &&
             !tsr_st_meta_int(&f, "adapt_from", 0, TSR_CTNET_MAX_LAYERS, &g.adapt_from))
        bad = "adapt_from"; /* absent in files written before it existed: adapters from layer 0 */
    else if (tsr_st_meta(&f, "adapter_scale") && !meta_scale(tsr_st_meta(&f, "adapter_scale"), &g.adapter_scale))
        bad = "adapter_scale";
    else if (tsr_st_meta(&f, "adapter_norm") && /* absent in files written before it existed: none */
             (g.adapter_norm = tsr_ctnet_norm_parse(tsr_st_meta(&f, "adapter_norm"))) < 0)
        bad = "adapter_norm";
    else if (!tsr_st_meta_int(&f, "user_buckets", 2, 1 << 24, &g.user_buckets)) bad = "user_buckets";
    else if (!tsr_st_meta_int(&f, "item_buckets", 2, 1 << 24, &g.item_buckets)) bad = "item_buckets";
    else if (!tsr_st_meta_int(&f, "tok_buckets", 2, 1 << 24, &g.tok_buckets)) bad = "tok_buckets";
    else if (!tsr_st_meta_int(&f, "n_fields", 0, TSR_CTNET_MAX_FIELDS, &g.n_fields)) bad = "n_fields";
    else if (!fields) bad = "fields";
    for (int l = 0; !bad && l < g.n_layers; l++)
        if (!tsr_st_meta_int(&f, hk[l], 1, 1 << 16, &g.hidden[l])) bad = hk[l];
    if (!bad && g.adapt_from > g.n_layers) bad = "adapt_from";
    if (!bad) { /* field names, '|'-separated */
        int nf = 0;
        const char *p = fields;
        while (*p && nf < TSR_CTNET_MAX_FIELDS) {
            size_t l = strcspn(p, "|");
            if (l == 0 || l >= sizeof m->field[0]) break;
            memcpy(m->field[nf], p, l);
            m->field[nf++][l] = 0;
            p += l;
            if (*p == '|') p++;
        }
        if (nf != g.n_fields || *p) bad = "fields";
    }
    tsr_st_free(&f);
    if (bad)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not a ctnet model (metadata '%s' missing or invalid)", path, bad);
    m->cfg = g;
    build_params(&m->params, &g, m->method, &m->src, &m->tgt, &m->ad, &m->concat_w);
    st = tsr_params_load(&m->params, path, false);
    if (st.code) tsr_ctnet_model_free(m);
    return st;
}

void tsr_ctnet_model_free(tsr_ctnet_model *m) {
    tsr_params_free(&m->params);
    if (m->ctx_ready) tsr_ctx_free(&m->ctx);
    memset(m, 0, sizeof *m);
}

void tsr_ctnet_model_predict(tsr_ctnet_model *m, const tsr_ctnet_log *g, const int64_t *rows,
                             int64_t n, int batch, float *prob) {
    int fmap[TSR_CTNET_MAX_FIELDS];
    for (int f = 0; f < m->cfg.n_fields; f++) {
        fmap[f] = -1;
        for (int j = 0; j < g->n_fields; j++)
            if (!strcmp(m->field[f], g->field[j])) fmap[f] = j;
    }
    if (!m->ctx_ready) {
        tsr_ctx_init(&m->ctx, (size_t)4 << 20);
        m->ctx_ready = true;
    }
    tsr_ctx *c = &m->ctx;
    c->training = false;
    c->grad_enabled = false;
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)(batch > 0 ? batch : 1));
    TSR_ASSERT(idx);
    for (int64_t s = 0; s < n; s += batch) {
        int64_t B = n - s < batch ? n - s : batch;
        for (int64_t i = 0; i < B; i++) idx[i] = rows ? rows[s + i] : s + i;
        tsr_ctx_reset(c);
        tsr_ctnet_batch b = tsr_ctnet_make_batch(c, g, idx, B, &m->cfg, fmap);
        tsr_tensor *logit = method_logit(c, &m->cfg, m->method, &m->tgt, &m->src, &m->ad, m->concat_w, &b);
        for (int64_t i = 0; i < B; i++) prob[s + i] = 1.0f / (1.0f + expf(-tsr_f32(logit)[i]));
    }
    free(idx);
}
