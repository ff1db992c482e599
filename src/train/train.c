/* tessera train: the shared training loop (include/tessera/train.h). One
 * place for the step loop, AdamW + schedule + clipping, the non-finite
 * stop, evaluations, crash-consistent checkpoints, exact resume, progress
 * and the JSONL metrics log; families supply only their model's parts. */
#include "tessera/train.h"

#include "tessera/data.h"
#include "tessera/fileio.h"
#include "tessera/safetensors.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

tsr_train_opts tsr_train_default_opts(void) {
    tsr_train_opts o;
    memset(&o, 0, sizeof o);
    o.epochs = 1;
    o.lr = 1e-3f;
    o.beta1 = 0.9f, o.beta2 = 0.999f, o.eps = 1e-8f;
    o.sched = TSR_SCHED_COSINE;
    o.eval_at_end = true;
    o.seed = 1;
    o.log_every = 50;
    return o;
}

void tsr_train_metric(tsr_train_metrics *m, const char *name, double value) {
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->name[i], name) == 0) {
            m->value[i] = value;
            return;
        }
    if (m->n >= TSR_TRAIN_MAX_METRICS) return;
    snprintf(m->name[m->n], sizeof m->name[0], "%s", name);
    m->value[m->n++] = value;
}

double tsr_train_metric_get(const tsr_train_metrics *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->name[i], name) == 0) return m->value[i];
    return NAN;
}

void tsr_train_state_path(const char *out, char *buf, size_t n) {
    const char *suf = ".safetensors";
    size_t l = strlen(out), ls = strlen(suf);
    if (l > ls && strcmp(out + l - ls, suf) == 0)
        snprintf(buf, n, "%.*s.state%s", (int)(l - ls), out, suf);
    else snprintf(buf, n, "%s.state", out);
}

/* an interrupted save leaves path.tmp behind (see tsr_st_write) */
static void remove_orphan_tmp(const char *path) {
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    struct stat sb;
    if (lstat(tmp, &sb) == 0 && S_ISREG(sb.st_mode)) unlink(tmp);
}

static double wall_time(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

static void fault(const char *point) {
    if (tsr_fault_hook) tsr_fault_hook(point);
}

/* the config: the trainer's keys, then the family's; values stored here */
#define MAX_KEYS 64
typedef struct {
    const char *kv[2 * MAX_KEYS + 3]; /* + train.step + NULL */
    char own[12][40];
    int n; /* pairs */
    char step[32];
} run_config;

static void config_build(run_config *rc, const tsr_train_family *f, const tsr_train_opts *o, int64_t total) {
    static const char *const sched_names[] = {"cosine", "linear", "constant"};
    static const char *const keys[] = {"train.steps", "train.lr",     "train.min_lr", "train.weight_decay",
                                       "train.beta1", "train.beta2",  "train.eps",    "train.clip",
                                       "train.sched", "train.warmup", "train.seed"};
    int k = 0;
    snprintf(rc->own[k++], 40, "%lld", (long long)total);
    snprintf(rc->own[k++], 40, "%.9g", (double)o->lr);
    snprintf(rc->own[k++], 40, "%.9g", (double)o->min_lr);
    snprintf(rc->own[k++], 40, "%.9g", (double)o->weight_decay);
    snprintf(rc->own[k++], 40, "%.9g", (double)o->beta1);
    snprintf(rc->own[k++], 40, "%.9g", (double)o->beta2);
    snprintf(rc->own[k++], 40, "%.9g", (double)o->eps);
    snprintf(rc->own[k++], 40, "%.9g", (double)o->clip);
    snprintf(rc->own[k++], 40, "%s", sched_names[o->sched]);
    snprintf(rc->own[k++], 40, "%lld", (long long)o->warmup);
    snprintf(rc->own[k++], 40, "%llu", (unsigned long long)o->seed);
    rc->n = 0;
    for (int i = 0; i < k; i++) rc->kv[2 * rc->n] = keys[i], rc->kv[2 * rc->n + 1] = rc->own[i], rc->n++;
    for (int i = 0; f->config && f->config[i] && f->config[i + 1] && rc->n < MAX_KEYS; i += 2)
        rc->kv[2 * rc->n] = f->config[i], rc->kv[2 * rc->n + 1] = f->config[i + 1], rc->n++;
    rc->kv[2 * rc->n] = NULL;
}

/* config + train.step, NULL-terminated */
static const char *const *config_with_step(run_config *rc, int64_t step) {
    snprintf(rc->step, sizeof rc->step, "%lld", (long long)step);
    rc->kv[2 * rc->n] = "train.step";
    rc->kv[2 * rc->n + 1] = rc->step;
    rc->kv[2 * rc->n + 2] = NULL;
    return rc->kv;
}

typedef struct {
    const tsr_train_family *f;
    const tsr_train_opts *o;
    char state_path[1200];
    run_config rc;
    tsr_adamw opt;
    tsr_train_meta tm;
    tsr_batcher bt;
    bool have_bt;
    tsr_ctx own, *c; /* c: &own, or the family's context */
    FILE *log;
    double t0, wall0;
    int64_t saved_step; /* last step on disk (-1: none) */
    int64_t total;
    int64_t eval_step; /* step of the last evaluation (-1: none) */
    const tsr_train_metrics *eval;
    double eval_s, ckpt_s;
} trainer;

/* state first (one file, one rename: the commit point), then the weights
 * file the family writes; resume needs only the state */
static tsr_status save_ckpt(trainer *t, bool final) {
    const double t1 = tsr_time();
    const tsr_train_family *f = t->f;
    t->tm.rng = t->c->rng;
    if (t->have_bt) {
        t->tm.cursor[0] = t->bt.epoch, t->tm.cursor[1] = t->bt.index;
        t->tm.cursor[2] = (int64_t)t->o->seed;
        t->tm.cursor[3] = t->total;
    } else if (f->get_cursor) {
        f->get_cursor(f->ud, t->tm.cursor);
    }
    /* an update can overflow the weights with finite loss and gradients;
     * such a state would not load again, and the last one on disk stays */
    tsr_status st = tsr_params_check_finite(f->params, "after its update");
    if (st.code) {
        char kept[1400];
        if (t->saved_step >= 0)
            snprintf(kept, sizeof kept, "%s keeps step %lld", t->state_path, (long long)t->saved_step);
        else snprintf(kept, sizeof kept, "no checkpoint was written");
        return tsr_errorf(TSR_ERR_NUMERIC, "%s train diverged at step %lld: %s; not saved (%s); lower --lr or set --clip",
                          f->name, (long long)t->tm.step, st.msg, kept);
    }
    const char *const *meta = config_with_step(&t->rc, t->tm.step);
    fault("state");
    st = tsr_trainstate_write(t->state_path, &t->opt, &t->tm, f->params, meta);
    if (st.code) return st;
    fault("weights");
    if (f->save) st = f->save(f->ud, t->o->out, meta, t->eval_step == t->tm.step ? t->eval : NULL, final);
    if (st.code) return st;
    fault("done");
    t->saved_step = t->tm.step;
    t->ckpt_s += tsr_time() - t1;
    return st;
}

static void log_json_str(FILE *fp, const char *s) {
    fputc('"', fp);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(fp, "\\%c", ch);
        else if (ch < 0x20) fprintf(fp, "\\u%04x", ch);
        else fputc(ch, fp);
    }
    fputc('"', fp);
}

static void log_num(FILE *fp, const char *key, double v) {
    fputc(',', fp);
    log_json_str(fp, key);
    if (isfinite(v)) fprintf(fp, ":%.9g", v);
    else fprintf(fp, ":null");
}

static void log_line(trainer *t, const tsr_train_progress *p) {
    if (!t->log) return;
    fprintf(t->log, "{\"kind\":\"%s\",\"step\":%lld,\"time\":%.3f", p->eval ? "eval" : "train",
            (long long)p->step, wall_time());
    if (p->epoch >= 0) log_num(t->log, "epoch", (double)p->epoch);
    if (p->eval) {
        for (int i = 0; i < p->eval->n; i++) log_num(t->log, p->eval->name[i], p->eval->value[i]);
    } else {
        log_num(t->log, "loss", p->loss);
        log_num(t->log, "lr", p->lr);
        log_num(t->log, "grad_norm", p->grad_norm);
        for (int i = 0; p->extra && i < p->extra->n; i++) log_num(t->log, p->extra->name[i], p->extra->value[i]);
        char k[48];
        snprintf(k, sizeof k, "%s_per_s", p->unit);
        log_num(t->log, k, p->items_per_s);
    }
    fputs("}\n", t->log);
    fflush(t->log);
}

/* On resume: the log keeps only what the state on disk saw, the records up
 * to its step (a run killed after that step had logged later ones, which
 * the resumed run logs again; a finished run's final evaluation is redone
 * too); a torn last line goes as well. A missing log is fine. */
static tsr_status log_trim(const char *path, int64_t step, bool finished) {
    char *d = NULL;
    size_t n = 0;
    if (access(path, F_OK) != 0) return tsr_ok();
    tsr_status st = tsr_read_file(path, &d, &n);
    if (st.code) return st;
    size_t keep = 0;
    for (size_t a = 0; a < n;) {
        const char *nl = memchr(d + a, '\n', n - a);
        if (!nl) break; /* torn */
        const size_t b = (size_t)(nl - d) + 1;
        const char *k = strstr(d + a, "\"step\":"); /* within this line: every line has it */
        if (!k || k > nl) break;
        const long long s = strtoll(k + 7, NULL, 10);
        const bool eval = strncmp(d + a, "{\"kind\":\"eval\"", 14) == 0;
        if (s > step || (finished && eval && s == step)) break;
        keep = a = b;
    }
    if (keep != n) st = tsr_write_file_atomic(path, d, keep, NULL, 0);
    free(d);
    return st;
}

static float lr_at(const tsr_train_opts *o, int64_t step, int64_t total) {
    if (o->sched == TSR_SCHED_LINEAR) {
        if (o->warmup > 0 && step < o->warmup)
            return (float)((double)o->lr * (double)(step + 1) / (double)o->warmup);
        int64_t span = total - o->warmup;
        if (span <= 0 || step >= total) return o->min_lr;
        double frac = (double)(step - o->warmup) / (double)span;
        return (float)((double)o->lr + ((double)o->min_lr - (double)o->lr) * frac);
    }
    tsr_lr_sched s = {o->sched == TSR_SCHED_CONSTANT ? TSR_LR_CONSTANT : TSR_LR_COSINE, o->lr,
                      o->min_lr, o->warmup, total};
    return tsr_lr_at(&s, step);
}

/* the global L2 norm of the trainable grads (clipping them when clip > 0) */
static float grad_norm(tsr_params *p, float clip) {
    if (clip > 0) return tsr_clip_grad_norm(p, clip);
    double ss = 0.0;
    for (int i = 0; i < p->n; i++) {
        const tsr_tensor *t = p->items[i];
        if ((p->flags[i] & TSR_PARAM_BUFFER) || !t->grad) continue;
        ss = tsr_grad_sumsq(t, (p->flags[i] & TSR_PARAM_SPARSE_ROWS) != 0, ss);
    }
    return (float)sqrt(ss);
}

/* true when every trainable grad element is finite and |g| <= 1e30: the
 * gradient norm (a double sum of squares <= 1e60 over far fewer than 1e16
 * elements, its root rounded to float) is then finite. Unlike the norm (one
 * serial chain of double adds, to keep its bits), this test is free of
 * order and vectorises; rows that carry marks (core.h) and are unmarked
 * are +0 and skipped. */
static bool grads_tame(const tsr_params *p) {
    for (int i = 0; i < p->n; i++) {
        const tsr_tensor *t = p->items[i];
        if ((p->flags[i] & TSR_PARAM_BUFFER) || !t->grad) continue;
        const bool marked = t->grad_rows && !t->grad_rows_all;
        const int64_t d = marked && t->ndim > 1 ? t->shape[t->ndim - 1] : t->numel;
        for (int64_t r = 0, r0 = 0; r0 < t->numel; r++, r0 += d) {
            if (marked && !t->grad_rows[r]) continue;
            const float *g = t->grad + r0;
            int bad = 0;
            for (int64_t k = 0; k < d; k++) bad |= !(fabsf(g[k]) <= 1e30f);
            if (bad) return false;
        }
    }
    return true;
}

static tsr_status run_eval(trainer *t, tsr_train_result *r, int64_t total, bool first) {
    const tsr_train_family *f = t->f;
    if (!f->eval) return tsr_ok();
    tsr_train_metrics m;
    memset(&m, 0, sizeof m);
    m.step = t->tm.step;
    const double t1 = tsr_time();
    tsr_status st = f->eval(f->ud, &m);
    t->eval_s += tsr_time() - t1;
    if (st.code) return st;
    if (first) r->eval_first = m;
    r->eval = m;
    t->eval = &r->eval, t->eval_step = t->tm.step;
    tsr_train_progress p = {.step = t->tm.step, .total = total, .epoch = t->have_bt ? t->bt.epoch : -1,
                            .unit = f->unit ? f->unit : "item", .eval = &r->eval,
                            .elapsed_s = tsr_time() - t->t0};
    log_line(t, &p);
    if (t->o->progress) t->o->progress(&p, t->o->progress_ud);
    return tsr_ok();
}

static tsr_status check_opts(const tsr_train_family *f, const tsr_train_opts *o) {
    if (!f->params || !f->step || !o->out)
        return tsr_errorf(TSR_ERR_ARG, "trainer: params, step and out are required");
    if (o->steps < 0 || (o->steps == 0 && (o->epochs < 1 || f->n_items <= 0)))
        return tsr_errorf(TSR_ERR_ARG, "%s train: give a step count, or epochs over a data set", f->name);
    if (!(o->lr > 0) || !(o->min_lr >= 0) || !(o->weight_decay >= 0) || !(o->clip >= 0) ||
        o->warmup < 0 || o->eval_every < 0 || o->ckpt_every < 0 || !(o->ckpt_minutes >= 0) ||
        o->stop_after < 0 || o->log_every < 0 || (int)o->sched < 0 || o->sched > TSR_SCHED_CONSTANT)
        return tsr_errorf(TSR_ERR_ARG, "%s train: training options out of range", f->name);
    if (o->carry && (o->carry->n != f->params->n || !o->carry->m || !o->carry->v || !o->carry->step))
        return tsr_errorf(TSR_ERR_ARG, "%s train: the carried optimizer state does not fit the parameters", f->name);
    if (f->n_items > 0 && (f->batch < 1 || f->batch > f->n_items))
        return tsr_errorf(TSR_ERR_ARG, "%s train: batch %lld does not fit the %lld training items", f->name,
                          (long long)f->batch, (long long)f->n_items);
    return tsr_ok();
}

tsr_status tsr_train_run(const tsr_train_family *f, const tsr_train_opts *o, tsr_train_result *r) {
    memset(r, 0, sizeof *r);
    tsr_status st = check_opts(f, o);
    if (st.code) return st;
    const int64_t total = o->steps > 0 ? o->steps : f->n_items / f->batch * o->epochs;
    r->total = total;
    trainer t;
    memset(&t, 0, sizeof t);
    t.f = f, t.o = o, t.saved_step = -1, t.total = total, t.eval_step = -1;
    tsr_train_state_path(o->out, t.state_path, sizeof t.state_path);
    /* every output is checked before any long work */
    if ((st = tsr_output_check(o->out)).code || (st = tsr_output_check(t.state_path)).code ||
        (o->log_path && (st = tsr_output_check(o->log_path)).code))
        return st;
    remove_orphan_tmp(o->out);
    remove_orphan_tmp(t.state_path);
    config_build(&t.rc, f, o, total);

    tsr_adamw_init(&t.opt, f->params, (tsr_adamw_cfg){o->lr, o->beta1, o->beta2, o->eps, o->weight_decay});
    if (o->carry) { /* per-parameter steps; the moments from the caller (or, on resume, the state file) */
        tsr_adamw_use_param_steps(&t.opt);
        for (int i = 0; !o->resume && i < f->params->n; i++) {
            t.opt.param_step[i] = o->carry->step[i];
            if (!t.opt.m[i]) continue;
            TSR_ASSERT(o->carry->m[i] && o->carry->v[i]);
            const size_t bytes = sizeof(float) * (size_t)f->params->items[i]->numel;
            memcpy(t.opt.m[i], o->carry->m[i], bytes);
            memcpy(t.opt.v[i], o->carry->v[i], bytes);
        }
        t.opt.zero_rows_step = -1; /* rebuilt from the moments */
    }
    tsr_rng_seed(&t.tm.rng, o->seed ^ (f->rng_salt ? f->rng_salt : 0xD1B54A32D192ED03ull));
    if (f->ctx) {
        t.c = f->ctx;
    } else {
        tsr_ctx_init(&t.own, f->arena_bytes ? f->arena_bytes : (size_t)64 << 20);
        t.c = &t.own;
    }
    if (o->resume) {
        int64_t ckpt_step = -1;
        const char *keys[MAX_KEYS], *vals[MAX_KEYS];
        int nk = 0;
        for (int i = 0; i < t.rc.n; i++)
            if (!o->reschedule || strcmp(t.rc.kv[2 * i], "train.steps") != 0)
                keys[nk] = t.rc.kv[2 * i], vals[nk++] = t.rc.kv[2 * i + 1];
        st = tsr_ckpt_check_meta(t.state_path, keys, vals, nk, &ckpt_step);
        if (!st.code) st = tsr_params_load(f->params, t.state_path, true);
        if (!st.code)
            st = tsr_trainstate_resume(t.state_path, t.state_path, ckpt_step, total,
                                       f->n_items > 0 ? f->n_items : -1, &t.opt, &t.tm);
        if (!st.code && f->n_items <= 0 && f->set_cursor) st = f->set_cursor(f->ud, t.tm.cursor);
        if (st.code) goto out;
        t.saved_step = t.tm.step;
    }
    if (f->n_items > 0) {
        tsr_batcher_init(&t.bt, f->n_items, f->batch, o->seed);
        tsr_batcher_seek(&t.bt, t.tm.cursor[0], t.tm.cursor[1]);
        t.have_bt = true;
    }
    if (o->log_path && o->resume && (st = log_trim(o->log_path, t.tm.step, t.tm.step >= total)).code) goto out;
    if (o->log_path) {
        t.log = fopen(o->log_path, o->resume ? "a" : "w");
        if (!t.log) {
            st = tsr_errorf(TSR_ERR_IO, "%s: cannot open the log: %s", o->log_path, strerror(errno));
            goto out;
        }
    }
    t.c->rng = t.tm.rng;

    const int64_t per_step = f->items_per_step > 0 ? f->items_per_step : f->batch;
    const char *unit = f->unit ? f->unit : "item";
    int32_t *ids = t.have_bt ? malloc(sizeof(int32_t) * (size_t)f->batch) : NULL;
    TSR_ASSERT(!t.have_bt || ids);
    t.t0 = tsr_time();
    if (o->eval_first && !o->resume && (st = run_eval(&t, r, total, true)).code) goto done;
    double t_log = t.t0, t_ckpt = t.t0;
    const int64_t step0 = t.tm.step;
    int64_t log_step = t.tm.step;
    float loss_v = 0;
    if (o->started) *o->started = 1;
    while (t.tm.step < total) {
        int64_t b = 0;
        if (t.have_bt) {
            b = tsr_batcher_next(&t.bt, ids, true);
            TSR_ASSERT(b == f->batch);
        }
        tsr_ctx_reset(t.c);
        t.c->training = true;
        t.c->grad_enabled = true;
        tsr_params_zero_grad(f->params);
        const double ta = tsr_time(), ca = tsr_thread_time();
        st = f->step(f->ud, t.c, ids, b, &loss_v);
        const double tb = tsr_time(), cb = tsr_thread_time();
        r->step_s += tb - ta;
        r->step_cpu_s += cb - ca;
        if (st.code) break;
        /* the norm itself is needed to clip or to log; else only whether
         * it is finite, which grads_tame answers without summing */
        float gn = o->clip > 0 || o->log_every > 0 || !grads_tame(f->params) ? grad_norm(f->params, o->clip) : 0.0f;
        if (!isfinite(loss_v) || !isfinite(gn)) {
            char kept[1400];
            if (t.saved_step >= 0)
                snprintf(kept, sizeof kept, "%s keeps step %lld", t.state_path, (long long)t.saved_step);
            else snprintf(kept, sizeof kept, "no checkpoint was written");
            st = tsr_errorf(TSR_ERR_NUMERIC,
                            "%s train diverged at step %lld: %s is %g; stopped before the update (%s); "
                            "lower --lr or set --clip",
                            f->name, (long long)t.tm.step + 1, isfinite(loss_v) ? "gradient norm" : "loss",
                            (double)(isfinite(loss_v) ? gn : loss_v), kept);
            break;
        }
        float lr = lr_at(o, t.tm.step, total);
        tsr_adamw_step(&t.opt, lr);
        if (f->post_step) f->post_step(f->ud, t.c);
        r->optim_s += tsr_time() - tb;
        r->optim_cpu_s += tsr_thread_time() - cb;
        t.tm.step++;
        const bool last = t.tm.step == total, stop = o->stop_after > 0 && t.tm.step >= o->stop_after;
        const bool sig = o->stop && *o->stop;
        if (o->log_every > 0 && (t.tm.step % o->log_every == 0 || last || stop || sig)) {
            double now = tsr_time();
            double ips = (double)((t.tm.step - log_step) * per_step) / (now - t_log + 1e-9);
            double sps = (double)(t.tm.step - step0) / (now - t.t0 + 1e-9);
            tsr_train_metrics extra;
            memset(&extra, 0, sizeof extra);
            if (f->step_metrics) f->step_metrics(f->ud, &extra);
            tsr_train_progress p = {t.tm.step, total, t.have_bt ? t.bt.epoch : -1, loss_v, lr, gn, ips,
                                    (double)(total - t.tm.step) / (sps + 1e-12), now - t.t0, unit, NULL,
                                    &extra};
            log_line(&t, &p);
            if (o->progress) o->progress(&p, o->progress_ud);
            t_log = now, log_step = t.tm.step;
        }
        if (last) break; /* the final evaluation and checkpoint follow */
        if (o->eval_every > 0 && t.tm.step % o->eval_every == 0 && (st = run_eval(&t, r, total, false)).code) break;
        double now = tsr_time();
        if ((o->ckpt_every > 0 && t.tm.step % o->ckpt_every == 0) || stop || sig ||
            (o->ckpt_minutes > 0 && now - t_ckpt >= 60.0 * o->ckpt_minutes)) {
            if ((st = save_ckpt(&t, false)).code) break;
            t_ckpt = now;
        }
        if (stop) break;
        if (sig) {
            r->interrupted = true;
            break;
        }
    }
    r->seconds = tsr_time() - t.t0;
    r->step = t.tm.step;
    r->last_loss = loss_v;
    r->items_per_s = (double)((t.tm.step - step0) * per_step) / (r->seconds + 1e-9);
    r->finished = t.tm.step == total;
    if (!st.code && r->finished) {
        if (o->eval_at_end) st = run_eval(&t, r, total, false);
        if (!st.code) st = save_ckpt(&t, true);
        for (int i = 0; !st.code && o->carry && i < f->params->n; i++) { /* the moments out */
            o->carry->step[i] = t.opt.param_step[i];
            if (!t.opt.m[i]) continue;
            const size_t bytes = sizeof(float) * (size_t)f->params->items[i]->numel;
            memcpy(o->carry->m[i], t.opt.m[i], bytes);
            memcpy(o->carry->v[i], t.opt.v[i], bytes);
        }
    }
done:
    r->eval_s = t.eval_s, r->ckpt_s = t.ckpt_s;
    free(ids);
out:
    if (t.have_bt) tsr_batcher_free(&t.bt);
    if (t.log) fclose(t.log);
    tsr_adamw_free(&t.opt);
    if (t.c == &t.own) tsr_ctx_free(&t.own);
    else if (t.c) tsr_ctx_reset(t.c);
    return st;
}
