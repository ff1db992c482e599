/* tessera CLI: the shared train/tune flags and run reporting (see
 * train_flags.h). */
#include "cli/train_flags.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop = 0, g_started = 0;
/* SIGINT/SIGTERM in the step loop: checkpoint and stop after the step;
 * before it (data preparation, loading, a first evaluation) there is no
 * step to save, so the signal's default action ends the process at once */
static void on_signal(int sig) {
    if (!g_started) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    g_stop = 1;
}

cli_train cli_train_init(tsr_train_opts defaults, int batch, int flags) {
    cli_train t;
    memset(&t, 0, sizeof t);
    t.o = defaults;
    t.batch = batch;
    t.flags = flags;
    t.cm.seed = defaults.seed;
    return t;
}

#define MAX_SPECS 96

int cli_train_parse(const char *prog, const char *summary, const arg_spec *own, int n_own, cli_train *t,
                    int argc, char **argv) {
    static const char *const sched_names[] = {"cosine", "linear", "constant"};
    tsr_train_opts *o = &t->o;
    t->sched = sched_names[o->sched];
    arg_spec s[MAX_SPECS];
    int n = 0;
    TSR_ASSERT(n_own + 32 <= MAX_SPECS);
    for (int i = 0; i < n_own; i++) s[n++] = own[i];
    if (t->flags & CLI_TF_STEPS)
        s[n++] = (arg_spec){"steps", ARG_I64, &o->steps, "N", "optimizer steps in all", NULL};
    if (t->flags & CLI_TF_EPOCHS)
        s[n++] = (arg_spec){"epochs", ARG_INT, &o->epochs, "N",
                            (t->flags & CLI_TF_STEPS) ? "passes over the training set (when --steps is 0)"
                                                      : "passes over the training set", NULL};
    if (t->flags & CLI_TF_BATCH) s[n++] = (arg_spec){"batch", ARG_INT, &t->batch, "B", "batch size", NULL};
    s[n++] = (arg_spec){"lr", ARG_FLOAT, &o->lr, "X", "peak learning rate (AdamW)", NULL};
    s[n++] = (arg_spec){"min-lr", ARG_FLOAT, &o->min_lr, "X", "learning rate at the end of the decay", NULL};
    s[n++] = (arg_spec){"sched", ARG_STR, &t->sched, "KIND", "decay after the warmup: cosine, linear or constant", NULL};
    s[n++] = (arg_spec){"warmup", ARG_I64, &o->warmup, "N", "linear warmup steps", NULL};
    s[n++] = (arg_spec){"wd", ARG_FLOAT, &o->weight_decay, "X", "decoupled weight decay", NULL};
    s[n++] = (arg_spec){"weight-decay", ARG_FLOAT, &o->weight_decay, "X", "the same as --wd", NULL};
    s[n++] = (arg_spec){"clip", ARG_FLOAT, &o->clip, "X", "clip the global gradient norm (0: off)", NULL};
    if (t->flags & CLI_TF_EVAL)
        s[n++] = (arg_spec){"eval-every", ARG_I64, &o->eval_every, "N", "steps between evaluations (0: at the end)", NULL};
    if (!(t->flags & CLI_TF_NO_STATE)) {
        s[n++] = (arg_spec){"ckpt-every", ARG_I64, &o->ckpt_every, "N", "steps between checkpoints (0: only at the end)", NULL};
        s[n++] = (arg_spec){"ckpt-minutes", ARG_FLOAT, &o->ckpt_minutes, "M", "minutes between checkpoints (0: off)", NULL};
        s[n++] = (arg_spec){"stop-after", ARG_I64, &o->stop_after, "N", "stop with a checkpoint after global step N (0: never)", NULL};
        s[n++] = (arg_spec){"resume", ARG_BOOL, &o->resume, NULL, "continue from the training state saved beside the output (the same settings)", NULL};
    }
    s[n++] = (arg_spec){"log", ARG_STR, &o->log_path, "FILE.jsonl", "metrics per logged step and evaluation (JSON lines)", NULL};
    s[n++] = (arg_spec){"log-every", ARG_I64, &o->log_every, "N", "steps between progress lines and log records", NULL};
    s[n++] = (arg_spec){"quiet", ARG_BOOL, &t->quiet, NULL, "no progress lines", NULL};
    s[n++] = (arg_spec)CLI_COMMON_THREADS(&t->cm);
    s[n++] = (arg_spec)CLI_COMMON_SEED(&t->cm);
    s[n++] = (arg_spec)CLI_COMMON_JSON(&t->cm);
    int rc = args_parse(prog, summary, s, n, argc, argv);
    if (rc != CLI_OK) return rc;
    t->prog = prog, t->argc = argc, t->argv = argv;
    int k = 0;
    while (k < 3 && strcmp(t->sched, sched_names[k]) != 0) k++;
    if (k == 3) return cli_usage_error(prog, "--sched must be cosine, linear or constant, got '%s'", t->sched);
    o->sched = (tsr_train_sched)k;
    if ((t->flags & CLI_TF_STEPS) && (o->steps < 0 || o->steps > ((int64_t)1 << 40)))
        return cli_usage_error(prog, "--steps must be >= 1");
    if ((t->flags & CLI_TF_EPOCHS) && (o->epochs < 1 || o->epochs > 100000) && o->steps == 0)
        return cli_usage_error(prog, "--epochs must be between 1 and 100000");
    if ((t->flags & CLI_TF_BATCH) && (t->batch < 1 || t->batch > 65536))
        return cli_usage_error(prog, "--batch must be between 1 and 65536");
    if (!(o->lr > 0)) return cli_usage_error(prog, "--lr must be > 0");
    if (o->min_lr < 0 || o->min_lr > o->lr) return cli_usage_error(prog, "--min-lr must be between 0 and --lr");
    if (o->weight_decay < 0) return cli_usage_error(prog, "--wd must be >= 0");
    if (o->clip < 0) return cli_usage_error(prog, "--clip must be >= 0 (0: off)");
    if (o->ckpt_minutes < 0) return cli_usage_error(prog, "--ckpt-minutes must be >= 0");
    if (o->warmup < 0 || o->eval_every < 0 || o->ckpt_every < 0 || o->stop_after < 0 || o->log_every < 0)
        return cli_usage_error(prog, "--warmup, --eval-every, --ckpt-every, --stop-after and --log-every must be >= 0");
    if ((rc = cli_common_apply(prog, &t->cm)) != CLI_OK) return rc;
    /* before the verb loads its data: a bad --log fails now, not when training starts */
    if (o->log_path && (rc = cli_check_output(prog, "log", o->log_path, false)) != CLI_OK) return rc;
    if ((rc = cli_train_check_log(t)) != CLI_OK) return rc;
    o->seed = t->cm.seed;
    return CLI_OK;
}

int cli_train_check_log(const cli_train *t) {
    const tsr_train_opts *o = &t->o;
    if (!o->log_path || !o->out) return CLI_OK;
    if (cli_same_file(o->log_path, o->out))
        return cli_usage_error(t->prog, "--log names the checkpoint '%s' this run writes; give the log its own path",
                               o->out);
    if (t->flags & CLI_TF_NO_STATE) return CLI_OK;
    char state[1200];
    tsr_train_state_path(o->out, state, sizeof state);
    if (cli_same_file(o->log_path, state))
        return cli_usage_error(t->prog, "--log names the training state '%s' kept beside the checkpoint; give the log "
                               "its own path", state);
    return CLI_OK;
}

static void progress(const tsr_train_progress *p, void *ud) {
    cli_train *t = ud;
    if (p->eval && t->own_eval_lines) return;
    if (p->eval) {
        if (t->dirty) fputs("\r\033[K", stderr), t->dirty = false;
        fprintf(stderr, "eval step %lld/%lld", (long long)p->step, (long long)p->total);
        for (int i = 0; i < p->eval->n; i++) fprintf(stderr, "  %s %.4f", p->eval->name[i], p->eval->value[i]);
        fputc('\n', stderr);
        fflush(stderr);
        return;
    }
    char eta[32], extra[256] = "";
    cli_fmt_eta(eta, sizeof eta, p->eta_s);
    for (int i = 0, k = 0; p->extra && i < p->extra->n && k < (int)sizeof extra - 48; i++)
        k += snprintf(extra + k, sizeof extra - (size_t)k, "  %s %.4f", p->extra->name[i], p->extra->value[i]);
    char epoch[32] = "";
    if (p->epoch >= 0) snprintf(epoch, sizeof epoch, "  epoch %lld", (long long)p->epoch + 1);
    fprintf(stderr, "%sstep %lld/%lld%s  loss %.4f%s  lr %.2e  gnorm %.3f  %.0f %s/s  ETA %s%s",
            t->tty ? "\r" : "", (long long)p->step, (long long)p->total, epoch, (double)p->loss, extra, (double)p->lr, (double)p->grad_norm, p->items_per_s, p->unit, eta,
            t->tty ? "\033[K" : "\n");
    t->dirty = t->tty;
    fflush(stderr);
}

void cli_train_begin(cli_train *t) {
    g_stop = 0;
    g_started = 0;
    t->o.stop = &g_stop;
    t->o.started = &g_started;
    t->tty = isatty(2);
    if (!t->quiet) t->o.progress = progress, t->o.progress_ud = t;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
}

static void put_arg(const char *a) {
    bool plain = *a != 0;
    for (const char *c = a; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./,:+@%", *c)) plain = false;
    if (plain) {
        fputs(a, stderr);
        return;
    }
    fputc('\'', stderr);
    for (const char *c = a; *c; c++)
        if (*c == '\'') fputs("'\\''", stderr);
        else fputc(*c, stderr);
    fputc('\'', stderr);
}

void cli_train_end(cli_train *t, const tsr_train_result *r) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (t->dirty) fputc('\n', stderr), t->dirty = false;
    t->interrupted = r && r->interrupted;
    if (!t->interrupted) return;
    fprintf(stderr, "%s: interrupted at step %lld/%lld; checkpoint saved%s%s\n  resume with: %s", t->prog,
            (long long)r->step, (long long)r->total, t->o.out ? " to " : "", t->o.out ? t->o.out : "", t->prog);
    bool has_resume = false;
    for (int i = 0; i < t->argc; i++) {
        fputc(' ', stderr);
        put_arg(t->argv[i]);
        has_resume |= strcmp(t->argv[i], "--resume") == 0;
    }
    fprintf(stderr, "%s\n", has_resume ? "" : " --resume");
}

const char *cli_train_hint(const cli_train *t, tsr_status st, const char *fallback) {
    if (st.code == TSR_ERR_NUMERIC) return "lower --lr, or clip the gradient norm with --clip 1";
    if (st.code == TSR_ERR_ARG && strstr(st.msg, "cannot resume"))
        return "resume with the settings of the original run, or start a new run without --resume";
    if (t->o.resume && strstr(st.msg, ".state") && strstr(st.msg, "cannot open"))
        return "there is no training state to resume beside the output; start without --resume";
    if (st.code == TSR_ERR_IO && t->o.out && strstr(st.msg, t->o.out))
        return "check that the output directory exists and is writable, or pass another --out";
    return fallback;
}
