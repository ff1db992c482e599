/* tessera CLI: `tessera ctnet data|train|eval|predict|bench` — continual
 * cross-domain CTR transfer (src/models/ctnet). Results on stdout (JSON
 * lines with --json), progress and errors on stderr. */
#include "cli/args.h"

#include "tessera/ctnet.h"
#include "tessera/fileio.h"
#include "tessera/chart.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define DEFAULT_MODEL "models/ctnet_ml_animation.safetensors"
#define DATA_HINT "pass --data with a MovieLens folder (ml-latest-small or RecBole ml-100k) or a CSV/TSV log (see docs/ctnet.md)"

/* the towers are small: one thread unless asked (more only add sync cost) */
#define CTNET_THREADS(cm) {"threads", ARG_INT, &(cm)->threads, "N", "worker threads (default 1: the towers are small)", NULL}

/* ----------------------------------------------------------- data flags */

typedef struct {
    const char *data, *pair, *source, *target, *period;
    int first, last, val;
    bool first_set, last_set;
} data_flags;

#define DATA_SPECS(d)                                                                                          \
    {"data", ARG_STR, &(d)->data, "PATH", "MovieLens folder (ml-latest-small or ml-100k) or a CSV/TSV log (default ../shared/data/movielens-latest-small)", NULL}, \
    {"pair", ARG_STR, &(d)->pair, "NAME", "MovieLens source->target pair: big-animation, big-horror, big-children (default big-animation)", NULL}, \
    {"source", ARG_STR, &(d)->source, "NAME", "CSV/TSV log: the domain value of source rows (default source)", NULL}, \
    {"target", ARG_STR, &(d)->target, "NAME", "CSV/TSV log: the domain value of target rows (default target)", NULL}, \
    {"period", ARG_STR, &(d)->period, "UNIT", "period unit: year, month, week (default: year; week for ml-100k)", NULL}, \
    {"first", ARG_INT, &(d)->first, "K", "first trained period key; earlier rows are the warm-up (default: 2003 on ml-latest-small, week 8 on ml-100k)", &(d)->first_set}, \
    {"last", ARG_INT, &(d)->last, "K", "last scored period key (default: 2018 on ml-latest-small, week 30 on ml-100k)", &(d)->last_set}, \
    {"val-periods", ARG_INT, &(d)->val, "N", "the first N scored periods are for validation (hyper-parameters), not reported (default 3)", NULL}

static void data_defaults(data_flags *d) {
    memset(d, 0, sizeof *d);
    d->data = "../shared/data/movielens-latest-small";
    d->pair = "big-animation";
    d->source = "source";
    d->target = "target";
    d->val = 3;
}

static bool is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* loads the log, sets periods and the default period range */
static int load_data(const char *prog, data_flags *d, tsr_ctnet_log *g) {
    tsr_status st;
    bool ml100k = false;
    if (is_dir(d->data)) {
        const char *target = NULL;
        char p100[1100];
        snprintf(p100, sizeof p100, "%s/ml-100k.inter", d->data);
        struct stat sb;
        ml100k = stat(p100, &sb) == 0;
        if (!strcmp(d->pair, "big-animation")) target = "Animation";
        else if (!strcmp(d->pair, "big-horror")) target = "Horror";
        else if (!strcmp(d->pair, "big-children")) target = ml100k ? "Children's" : "Children";
        else return cli_usage_error(prog, "--pair '%s' is not one of big-animation, big-horror, big-children", d->pair);
        st = tsr_ctnet_load_movielens(d->data, "Action|Comedy|Drama", target, g);
    } else {
        st = tsr_ctnet_load_csv(d->data, d->source, d->target, true, g);
    }
    if (st.code) return cli_fail(st, DATA_HINT);
    const char *unit = d->period ? d->period : ml100k ? "week" : "year";
    st = tsr_ctnet_log_periods(g, unit);
    if (st.code) {
        tsr_ctnet_log_free(g);
        return cli_usage_error(prog, "%s", st.msg);
    }
    if (!d->first_set) d->first = ml100k ? 8 : 2003;
    if (!d->last_set) d->last = ml100k ? 30 : 2018;
    if (d->val < 0 || d->last - d->first - d->val < 1 || d->last - d->first >= TSR_CTNET_MAX_PERIODS) {
        tsr_ctnet_log_free(g);
        return cli_usage_error(prog, "--first %d --last %d --val-periods %d: need at least one evaluation period and at most %d periods",
                               d->first, d->last, d->val, TSR_CTNET_MAX_PERIODS);
    }
    return CLI_OK;
}

static int cmd_data(const char *prog, int argc, char **argv) {
    data_flags d;
    data_defaults(&d);
    cli_common cm = {0, 1, false};
    const arg_spec specs[] = {DATA_SPECS(&d), CLI_COMMON_JSON(&cm)};
    int rc = args_parse(prog, "Show the periods of a log and the rows and clicks per domain.", specs,
                        (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    tsr_ctnet_log g;
    if ((rc = load_data(prog, &d, &g)) != CLI_OK) return rc;
    tsr_ctnet_period_count *pc;
    int n = tsr_ctnet_period_counts(&g, &pc);
    if (!cm.json) {
        printf("%s: %lld rows, fields:", d.data, (long long)g.n);
        for (int f = 0; f < g.n_fields; f++) printf(" %s", g.field[f]);
        printf("\nperiod  role        source rows (clicks)   target rows (clicks)   other rows\n");
    }
    for (int i = 0; i < n; i++) {
        const char *role = pc[i].key < d.first ? "warm-up" : pc[i].key > d.last ? "unused"
                         : pc[i].key == d.first ? "train" : pc[i].key <= d.first + d.val ? "validate" : "evaluate";
        if (cm.json)
            printf("{\"period\": %d, \"role\": \"%s\", \"source_rows\": %lld, \"source_clicks\": %lld, "
                   "\"target_rows\": %lld, \"target_clicks\": %lld, \"other_rows\": %lld}\n",
                   pc[i].key, role, (long long)pc[i].rows[0], (long long)pc[i].clicks[0], (long long)pc[i].rows[1],
                   (long long)pc[i].clicks[1], (long long)pc[i].rows[2]);
        else
            printf("%6d  %-10s  %10lld (%6lld)      %10lld (%6lld)    %10lld\n", pc[i].key, role,
                   (long long)pc[i].rows[0], (long long)pc[i].clicks[0], (long long)pc[i].rows[1],
                   (long long)pc[i].clicks[1], (long long)pc[i].rows[2]);
    }
    free(pc);
    tsr_ctnet_log_free(&g);
    return CLI_OK;
}

/* --------------------------------------------------------- model flags */

typedef struct {
    tsr_ctnet_run_opts o;
    const char *method;
    const char *hidden;
    const char *adapter_norm;
} run_flags;

#define RUN_SPECS(r)                                                                                           \
    {"dim", ARG_INT, &(r)->o.cfg.dim, "N", "embedding width", NULL},                                       \
    {"hidden", ARG_STR, &(r)->hidden, "LIST", "MLP hidden widths, comma-separated (default 64,32)", NULL}, \
    {"cross", ARG_INT, &(r)->o.cfg.cross, "0|1", "DCNv2 cross layer on the embeddings", NULL},           \
    {"epochs", ARG_INT, &(r)->o.epochs, "N", "epochs per period update", NULL},                          \
    {"retrain-epochs", ARG_INT, &(r)->o.retrain_epochs, "N", "retrain: epochs over all target history", NULL}, \
    {"source-epochs", ARG_INT, &(r)->o.source_epochs, "N", "epochs of the source tower's own update per period", NULL}, \
    {"batch", ARG_INT, &(r)->o.batch, "B", "batch size", NULL},                                           \
    {"lr", ARG_FLOAT, &(r)->o.lr, "X", "AdamW learning rate", NULL},                                      \
    {"weight-decay", ARG_FLOAT, &(r)->o.weight_decay, "X", "AdamW decoupled weight decay", NULL},         \
    {"adapter-std", ARG_FLOAT, &(r)->o.adapter_std, "X", "std of the adapters' W_a at init", NULL},        \
    {"adapter-scale", ARG_FLOAT, &(r)->o.cfg.adapter_scale, "X", "CTNet's adapter outputs times X before they are added (default 1; 0: adapters fixed at zero)", NULL}, \
    {"adapter-norm", ARG_STR, &(r)->adapter_norm, "none|rms|match", "the source states CTNet's adapters read: as they are (none, default), over their RMS (rms), or at the target tower's own layer-input RMS (match); per-layer constants of each period update", NULL}, \
    {"source-lr", ARG_FLOAT, &(r)->o.source_lr, "X", "the source tower's own AdamW learning rate (default: --lr)", NULL}, \
    {"carry-optimizer", ARG_BOOL, &(r)->o.carry_optimizer, NULL, "every continual update (not retrain's) keeps AdamW's moments and step counts from the previous period's instead of starting a fresh AdamW", NULL}, \
    {"adapt-from", ARG_INT, &(r)->o.cfg.adapt_from, "L", "CTNet's adapters feed MLP layers L.. (1: after every hidden layer, as in the paper; 0: also the MLP's input, from the source embeddings)", NULL}

static int check_run_flags(const char *prog, run_flags *r) {
    tsr_ctnet_cfg *g = &r->o.cfg;
    if (r->hidden) {
        int n = 0;
        const char *p = r->hidden;
        while (*p) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < 1 || v > 4096 || n == TSR_CTNET_MAX_LAYERS || (*end && *end != ','))
                return cli_usage_error(prog, "--hidden '%s': 1 to %d comma-separated widths in [1,4096]", r->hidden,
                                       TSR_CTNET_MAX_LAYERS);
            g->hidden[n++] = (int)v;
            p = *end ? end + 1 : end;
        }
        if (n == 0) return cli_usage_error(prog, "--hidden is empty");
        g->n_layers = n;
    }
    if (r->adapter_norm && (g->adapter_norm = tsr_ctnet_norm_parse(r->adapter_norm)) < 0)
        return cli_usage_error(prog, "--adapter-norm '%s': must be none, rms or match", r->adapter_norm);
    int rc;
    if ((rc = cli_check_int(prog, "dim", g->dim, 1, 256)) != CLI_OK ||
        (rc = cli_check_int(prog, "cross", g->cross, 0, 1)) != CLI_OK ||
        (rc = cli_check_int(prog, "epochs", r->o.epochs, 1, 1000)) != CLI_OK ||
        (rc = cli_check_int(prog, "retrain-epochs", r->o.retrain_epochs, 1, 1000)) != CLI_OK ||
        (rc = cli_check_int(prog, "source-epochs", r->o.source_epochs, 1, 1000)) != CLI_OK ||
        (rc = cli_check_int(prog, "batch", r->o.batch, 1, 65536)) != CLI_OK ||
        (rc = cli_check_float(prog, "weight-decay", r->o.weight_decay, 0, 0.5)) != CLI_OK ||
        (rc = cli_check_float(prog, "adapter-std", r->o.adapter_std, 0, 10)) != CLI_OK ||
        (rc = cli_check_float(prog, "adapter-scale", g->adapter_scale, 0, 10)) != CLI_OK ||
        (rc = cli_check_int(prog, "adapt-from", g->adapt_from, 0, g->n_layers)) != CLI_OK)
        return rc;
    if (!(r->o.lr > 0 && r->o.lr < 1)) return cli_usage_error(prog, "--lr must be in (0,1) (got %g)", (double)r->o.lr);
    if (!(r->o.source_lr >= 0 && r->o.source_lr < 1))
        return cli_usage_error(prog, "--source-lr must be in (0,1) (got %g)", (double)r->o.source_lr);
    return CLI_OK;
}

static bool cli_quiet(void) { return getenv("TESSERA_QUIET") != NULL; }

/* ---------------------------------------------------------------- train */

/* a figure in JSON: null when it is not a number (NaN: no evaluation
 * period yet, or a period without both classes) */
static void json_num(double v) {
    if (isnan(v) || isinf(v)) printf("null");
    else printf("%.6g", v);
}
static void json_f6(double v) {
    if (isnan(v) || isinf(v)) printf("null");
    else printf("%.6f", v);
}

static int cmd_train(const char *prog, int argc, char **argv) {
    data_flags d;
    data_defaults(&d);
    run_flags r = {.o = tsr_ctnet_default_run_opts(), .method = "ctnet"};
    r.o.ckpt_every = 8;
    cli_common cm = {1, 1, false};
    const char *out = "ctnet.safetensors", *state = NULL;
    bool resume = false;
    int stop_after = 0;
    const arg_spec specs[] = {
        DATA_SPECS(&d),
        RUN_SPECS(&r),
        {"method", ARG_STR, &r.method, "NAME", "ctnet, target-only, retrain, fine-tune, joint, cross-domain, ctnet-no-adapters, ctnet-no-gate, ctnet-random-adapters", NULL},
        {"out", ARG_STR, &out, "PATH", "serving model written at the end (default ctnet.safetensors)", NULL},
        {"state", ARG_STR, &state, "PATH", "continual state, saved after every period (default OUT.state)", NULL},
        {"resume", ARG_BOOL, &resume, NULL, "continue from --state (and from inside the period it was killed in)", NULL},
        {"stop-after", ARG_INT, &stop_after, "N", "stop after N period steps (the state resumes)", NULL},
        {"ckpt-every", ARG_INT, &r.o.ckpt_every, "N", "inside a period: checkpoint the update's training state every N steps (default 8; 0: a kill redoes the update)", NULL},
        CTNET_THREADS(&cm),
        CLI_COMMON_SEED(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Run one method through the periods (warm-up, then train on period t, score t+1), saving the continual state after every period.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = check_run_flags(prog, &r)) != CLI_OK) return rc;
    if ((r.o.method = tsr_ctnet_method_parse(r.method)) < 0)
        return cli_usage_error(prog, "--method '%s' is unknown", r.method);
    if (stop_after < 0) return cli_usage_error(prog, "--stop-after must be >= 0");
    if ((rc = cli_check_int(prog, "ckpt-every", r.o.ckpt_every, 0, 1 << 30)) != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    r.o.seed = cm.seed;
    char state_buf[1100];
    if (!state) {
        snprintf(state_buf, sizeof state_buf, "%s.state", out);
        state = state_buf;
    }
    if ((rc = cli_check_distinct_outputs(prog, "out", out, "state", state)) != CLI_OK) return rc;
    if ((rc = cli_check_output(prog, "out", out, false)) != CLI_OK ||
        (rc = cli_check_output(prog, "state", state, false)) != CLI_OK)
        return rc;
    tsr_ctnet_log g;
    if ((rc = load_data(prog, &d, &g)) != CLI_OK) return rc;
    r.o.first = d.first;
    r.o.last = d.last;
    r.o.cfg.n_fields = g.n_fields;
    tsr_ctnet_results res;
    tsr_ctnet_run *run = NULL;
    tsr_status st = tsr_ctnet_run_protocol(&g, &r.o, state, resume, stop_after, !cli_quiet(), &res, &run);
    if (st.code) {
        tsr_ctnet_log_free(&g);
        return cli_fail(st, resume ? "resume with the flags of the original run, or start again without --resume" : DATA_HINT);
    }
    if (res.steps_done == res.steps_total) st = tsr_ctnet_run_save_model(run, &g, out);
    tsr_ctnet_run_free(run);
    tsr_ctnet_log_free(&g);
    if (st.code) return cli_fail(st, "check that the output folder exists and is writable");
    double sum = 0;
    int n = 0;
    for (int s = d.val; s < res.steps_done; s++)
        if (!isnan(res.auc[s])) sum += res.auc[s], n++;
    if (cm.json) {
        printf("{\"method\": \"%s\", \"steps_done\": %d, \"steps_total\": %d, \"auc_mean\": ", r.method, res.steps_done,
               res.steps_total);
        json_f6(n ? sum / n : NAN);
        printf(", \"auc_per_period\": [");
        for (int s = d.val; s < res.steps_done; s++) printf("%s", s > d.val ? ", " : ""), json_f6(res.auc[s]);
        printf("]}\n");
    } else {
        printf("%s: %d/%d period steps, mean next-period AUC %.4f over %d evaluation periods%s%s\n", r.method,
               res.steps_done, res.steps_total, n ? sum / n : NAN, n,
               res.steps_done == res.steps_total ? "; model " : "; state ", res.steps_done == res.steps_total ? out : state);
    }
    return CLI_OK;
}

/* ----------------------------------------------------------------- eval */

/* From the JSON lines of 'eval --validation' runs (any number of lr /
 * epochs settings): each method's setting with the best validation AUC on
 * this pair. found[m] false when the file has none for m. */
typedef struct {
    float lr, weight_decay, adapter_std;
    int epochs, source_epochs; /* source_epochs, weight_decay, adapter_std: < 0 when the line has none */
    float source_lr;           /* 0 when the line has none */
    bool carry_optimizer;      /* the line's "carry_optimizer" (absent: false) */
    float adapter_scale;       /* < 0 when the line has none */
    int adapter_norm;          /* < 0 when the line has none */
    double train_s;            /* the line's train_seconds_per_period; < 0 when it has none */
} tuned_setting;

/* only_m < 0: every method's best line. only_m >= 0: only that method's,
 * among its lines whose train_seconds_per_period is at most max_s (the
 * cost-constrained choice; a line without the field is not a candidate). */
static tsr_status read_tuned(const char *path, const char *pair, int only_m, double max_s, tuned_setting *set,
                             bool *found) {
    char *buf;
    size_t len;
    tsr_status st = tsr_read_file(path, &buf, &len);
    if (st.code) return st;
    double best[TSR_CTNET_M_COUNT];
    for (int m = 0; m < TSR_CTNET_M_COUNT; m++)
        if (only_m < 0 || m == only_m) found[m] = false, best[m] = -1;
    char *line = buf;
    int ln = 0;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        ln++;
        if (*line) {
            cJSON *j = cJSON_Parse(line);
            cJSON *jm = cJSON_GetObjectItem(j, "method"), *jp = cJSON_GetObjectItem(j, "pair"),
                  *js = cJSON_GetObjectItem(j, "split"), *ja = cJSON_GetObjectItem(j, "auc_mean"),
                  *jl = cJSON_GetObjectItem(j, "lr"), *je = cJSON_GetObjectItem(j, "epochs"),
                  *jse = cJSON_GetObjectItem(j, "source_epochs"), *jwd = cJSON_GetObjectItem(j, "weight_decay"),
                  *jas = cJSON_GetObjectItem(j, "adapter_std"), *jz = cJSON_GetObjectItem(j, "zero_source_states"),
                  *jsl = cJSON_GetObjectItem(j, "source_lr"), *jco = cJSON_GetObjectItem(j, "carry_optimizer"),
                  *jsc = cJSON_GetObjectItem(j, "adapter_scale"), *jan = cJSON_GetObjectItem(j, "adapter_norm"),
                  *jts = cJSON_GetObjectItem(j, "train_seconds_per_period");
            if (!j || !cJSON_IsString(jm) || !cJSON_IsString(jp) || !cJSON_IsString(js) || !cJSON_IsNumber(jl) ||
                !cJSON_IsNumber(je)) {
                cJSON_Delete(j);
                free(buf);
                return tsr_errorf(TSR_ERR_FORMAT, "%s:%d: not a line of 'tessera ctnet eval --validation --json'", path, ln);
            }
            int m = tsr_ctnet_method_parse(jm->valuestring);
            const double ts = cJSON_IsNumber(jts) && jts->valuedouble >= 0 ? jts->valuedouble : -1;
            /* lines of the zero-source diagnostic are not settings */
            if (m >= 0 && (only_m < 0 || (m == only_m && ts >= 0 && ts <= max_s)) && !strcmp(jp->valuestring, pair) &&
                !strcmp(js->valuestring, "validation") && !cJSON_IsTrue(jz) && cJSON_IsNumber(ja) &&
                ja->valuedouble > best[m]) {
                best[m] = ja->valuedouble;
                set[m] = (tuned_setting){(float)jl->valuedouble, cJSON_IsNumber(jwd) ? (float)jwd->valuedouble : -1,
                                         cJSON_IsNumber(jas) ? (float)jas->valuedouble : -1, je->valueint,
                                         cJSON_IsNumber(jse) ? jse->valueint : -1,
                                         cJSON_IsNumber(jsl) && jsl->valuedouble > 0 && jsl->valuedouble < 1
                                             ? (float)jsl->valuedouble : 0,
                                         cJSON_IsTrue(jco),
                                         cJSON_IsNumber(jsc) && jsc->valuedouble >= 0 && jsc->valuedouble <= 10
                                             ? (float)jsc->valuedouble : -1,
                                         cJSON_IsString(jan) ? tsr_ctnet_norm_parse(jan->valuestring) : -1, ts};
                found[m] = true;
            }
            cJSON_Delete(j);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    if (only_m >= 0) return tsr_ok();
    for (int m = 0; m < TSR_CTNET_M_COUNT; m++)
        if (found[m]) return tsr_ok();
    /* an empty file, or one of other pairs: every method would quietly keep the flags */
    return tsr_errorf(TSR_ERR_FORMAT, "%s: no validation line of pair '%s' (from 'tessera ctnet eval --validation --json')",
                      path, pair);
}

/* two-sided 97.5% Student t quantiles for 1..10 degrees of freedom */
static double t975(int df) {
    static const double t[11] = {0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228};
    return df < 1 ? NAN : df <= 10 ? t[df] : 1.96;
}

static void mean_ci(const double *v, int n, double *mean, double *ci) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *ci = n > 1 ? t975(n - 1) * sqrt(q / (n - 1)) / sqrt((double)n) : NAN;
}

/* the run options of method m: the flags, with the method's tuned setting
 * (when the file had one) in place of lr, epochs and, where the line
 * carries them, the source tower's epochs, weight decay and adapter std */
static tsr_ctnet_run_opts method_opts(const tsr_ctnet_run_opts *base, int m, const tuned_setting *t) {
    tsr_ctnet_run_opts o = *base;
    o.method = m;
    if (!t) return o;
    o.lr = t->lr;
    if (m == TSR_CTNET_M_RETRAIN) o.retrain_epochs = t->epochs;
    else o.epochs = t->epochs;
    if (t->source_epochs > 0) o.source_epochs = t->source_epochs;
    if (t->weight_decay >= 0) o.weight_decay = t->weight_decay;
    if (t->adapter_std >= 0) o.adapter_std = t->adapter_std;
    if (t->source_lr > 0) o.source_lr = t->source_lr;
    if (t->carry_optimizer) o.carry_optimizer = true;
    if (t->adapter_scale >= 0) o.cfg.adapter_scale = t->adapter_scale;
    if (t->adapter_norm >= 0) o.cfg.adapter_norm = t->adapter_norm;
    return o;
}

static int cmd_eval(const char *prog, int argc, char **argv) {
    data_flags d;
    data_defaults(&d);
    run_flags r = {.o = tsr_ctnet_default_run_opts()};
    cli_common cm = {1, 1, false};
    const char *methods = NULL;
    int seeds = 5;
    bool validation = false;
    const char *tuned = NULL, *plot = NULL;
    float tuned_max_cost = 0;
    bool tuned_max_cost_set = false;
    const arg_spec specs[] = {
        DATA_SPECS(&d),
        RUN_SPECS(&r),
        {"methods", ARG_STR, &methods, "LIST", "comma-separated methods (default: all)", NULL},
        {"validation", ARG_BOOL, &validation, NULL, "stop after the validation periods and report them (for choosing hyper-parameters)", NULL},
        {"zero-source-states", ARG_BOOL, &r.o.zero_source, NULL, "diagnostic: CTNet's adapters (and the no-adapters concat) read zeros instead of the source tower's states", NULL},
        {"plot", ARG_STR, &plot, "PATH", "also draw the AUC per period of every method as a PNG", NULL},
        {"tuned", ARG_STR, &tuned, "PATH", "JSON lines of 'eval --validation' runs: each method takes the setting (lr, epochs, and source epochs, weight decay and adapter std where given) of its best validation AUC on this pair", NULL},
        {"tuned-max-cost", ARG_FLOAT, &tuned_max_cost, "F", "with --tuned: CTNet takes its best validation line among those whose train_seconds_per_period is at most F times that of retrain's chosen line (the issue's cost bound: 0.2; default: no bound)", &tuned_max_cost_set},
        {"seeds", ARG_INT, &seeds, "N", "seeds per method (default 5; seeds S..S+N-1)", NULL},
        CTNET_THREADS(&cm),
        CLI_COMMON_SEED(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Run every method on the same periods and seeds; one line (JSON with --json) per method: next-period AUC mean and 95% interval over seeds, per period, log loss, training time.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = check_run_flags(prog, &r)) != CLI_OK) return rc;
    if (seeds < 1 || seeds > 100) return cli_usage_error(prog, "--seeds must be in [1,100]");
    if (tuned_max_cost_set && !(tuned_max_cost > 0 && tuned_max_cost <= 10))
        return cli_usage_error(prog, "--tuned-max-cost must be in (0, 10], got %g", (double)tuned_max_cost);
    if (tuned_max_cost_set && !tuned) return cli_usage_error(prog, "--tuned-max-cost needs --tuned");
    bool want[TSR_CTNET_M_COUNT];
    for (int m = 0; m < TSR_CTNET_M_COUNT; m++) want[m] = methods == NULL;
    if (methods) {
        const char *p = methods;
        while (*p) {
            size_t l = strcspn(p, ",");
            char nm[64];
            if (l == 0 || l >= sizeof nm) return cli_usage_error(prog, "--methods '%s' is malformed", methods);
            memcpy(nm, p, l);
            nm[l] = 0;
            int m = tsr_ctnet_method_parse(nm);
            if (m < 0) return cli_usage_error(prog, "--methods: '%s' is not a method", nm);
            want[m] = true;
            p += l;
            if (*p) p++;
        }
    }
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (plot && (rc = cli_check_output(prog, "plot", plot, false)) != CLI_OK) return rc;
    tsr_ctnet_log g;
    if ((rc = load_data(prog, &d, &g)) != CLI_OK) return rc;
    r.o.first = d.first;
    r.o.last = d.last;
    r.o.cfg.n_fields = g.n_fields;
    const char *pair = is_dir(d.data) ? d.pair : "csv";
    double plot_y[TSR_CTNET_M_COUNT][TSR_CTNET_MAX_PERIODS];
    tsr_chart_series series[TSR_CTNET_M_COUNT];
    double xs[TSR_CTNET_MAX_PERIODS];
    int n_series = 0;
    tuned_setting t_set[TSR_CTNET_M_COUNT];
    bool t_found[TSR_CTNET_M_COUNT] = {0};
    if (tuned) {
        tsr_status st = read_tuned(tuned, pair, -1, 0, t_set, t_found);
        if (!st.code && tuned_max_cost_set) { /* CTNet again, among its lines within the cost bound */
            const tuned_setting *rt = &t_set[TSR_CTNET_M_RETRAIN];
            char fb[32]; /* the bound as the decimal given (0.2, not the float 0.2000000030) */
            snprintf(fb, sizeof fb, "%.7g", (double)tuned_max_cost);
            const double max_cost = strtod(fb, NULL);
            if (!t_found[TSR_CTNET_M_RETRAIN] || !(rt->train_s > 0))
                st = tsr_errorf(TSR_ERR_FORMAT, "%s: --tuned-max-cost needs retrain's validation line of pair '%s' with train_seconds_per_period",
                                tuned, pair);
            else if (t_found[TSR_CTNET_M_CTNET] &&
                     !(st = read_tuned(tuned, pair, TSR_CTNET_M_CTNET, max_cost * rt->train_s, t_set, t_found)).code &&
                     !t_found[TSR_CTNET_M_CTNET])
                st = tsr_errorf(TSR_ERR_FORMAT, "%s: no ctnet line of pair '%s' within %g of retrain's training time per period (%g s)",
                                tuned, pair, max_cost, rt->train_s);
        }
        if (st.code) {
            tsr_ctnet_log_free(&g);
            return cli_fail(st, "pass the output of 'tessera ctnet eval --validation --json'");
        }
    }
    /* steps: step k trains on key first+k and scores first+k+1; steps
     * 0..val-1 validate, the rest are the reported evaluation */
    const int P = d.last - d.first;
    const int k0 = validation ? 0 : d.val, k1 = validation ? d.val : P;
    for (int m = 0; m < TSR_CTNET_M_COUNT; m++) {
        if (!want[m]) continue;
        double *auc_seed = calloc((size_t)seeds, sizeof(double)), *ll_seed = calloc((size_t)seeds, sizeof(double));
        double *val_seed = calloc((size_t)seeds, sizeof(double)), *src_seed = calloc((size_t)seeds, sizeof(double));
        bool has_src_auc = true;
        double per[TSR_CTNET_MAX_PERIODS] = {0}, per_n[TSR_CTNET_MAX_PERIODS] = {0};
        double per_ll[TSR_CTNET_MAX_PERIODS] = {0};
        double t_train = 0, t_src = 0, rows = 0;
        int nt = 0;
        for (int s = 0; s < seeds; s++) {
            tsr_ctnet_run_opts o = method_opts(&r.o, m, t_found[m] ? &t_set[m] : NULL);
            o.seed = cm.seed + (uint64_t)s;
            tsr_ctnet_results res;
            tsr_status st = tsr_ctnet_run_protocol(&g, &o, NULL, false, validation ? d.val : 0, false, &res, NULL);
            if (st.code) {
                tsr_ctnet_log_free(&g);
                return cli_fail(st, DATA_HINT);
            }
            double a = 0, l = 0;
            int n = 0;
            for (int k = k0; k < k1; k++) {
                if (isnan(res.auc[k])) continue;
                a += res.auc[k];
                l += res.logloss[k];
                per[k] += res.auc[k];
                per_ll[k] += res.logloss[k];
                per_n[k]++;
                n++;
                t_train += res.train_s[k];
                t_src += res.source_s[k];
                rows += (double)res.train_rows[k];
                nt++;
            }
            double sa = 0;
            int sn = 0;
            for (int k = k0; k < k1; k++)
                if (!isnan(res.source_auc[k])) sa += res.source_auc[k], sn++;
            src_seed[s] = sn ? sa / sn : NAN;
            has_src_auc = has_src_auc && sn > 0;
            auc_seed[s] = a / n;
            ll_seed[s] = l / n;
            val_seed[s] = 0;
            for (int k = 0; k < d.val; k++) val_seed[s] += res.auc[k] / d.val;
            if (!cli_quiet())
                fprintf(stderr, "%s seed %llu: auc %.4f (validation %.4f)\n", tsr_ctnet_method_names[m],
                        (unsigned long long)o.seed, auc_seed[s], val_seed[s]);
        }
        double am, ac, lm, lc, vm, vc, sm = NAN, sc = NAN;
        mean_ci(auc_seed, seeds, &am, &ac);
        if (has_src_auc) mean_ci(src_seed, seeds, &sm, &sc);
        mean_ci(ll_seed, seeds, &lm, &lc);
        mean_ci(val_seed, seeds, &vm, &vc);
        if (cm.json) {
            printf("{\"method\": \"%s\", \"pair\": \"%s\", \"split\": \"%s\", \"periods\": [%d, %d], \"seeds\": %d, \"auc_mean\": ",
                   tsr_ctnet_method_names[m], pair, validation ? "validation" : "evaluation", d.first + 1 + k0, d.first + k1, seeds);
            json_num(am);
            printf(", \"auc_ci95\": ");
            json_num(ac);
            printf(", \"logloss_mean\": ");
            json_num(lm);
            printf(", \"logloss_ci95\": ");
            json_num(lc);
            printf(", \"auc_per_period\": [");
            for (int k = k0; k < k1; k++) {
                printf(k > k0 ? ", " : "");
                json_num(per_n[k] ? per[k] / per_n[k] : NAN);
            }
            printf("], \"logloss_per_period\": [");
            for (int k = k0; k < k1; k++) {
                printf(k > k0 ? ", " : "");
                json_num(per_n[k] ? per_ll[k] / per_n[k] : NAN);
            }
            printf("], \"validation_auc\": ");
            json_num(vm);
            const tsr_ctnet_run_opts mo = method_opts(&r.o, m, t_found[m] ? &t_set[m] : NULL);
            if (has_src_auc) { /* the source tower's own next-period AUC on source rows */
                printf(", \"source_auc_mean\": ");
                json_num(sm);
                printf(", \"source_auc_ci95\": ");
                json_num(sc);
            }
            if (mo.source_lr > 0) printf(", \"source_lr\": %g", (double)mo.source_lr);
            if (mo.carry_optimizer) printf(", \"carry_optimizer\": true");
            printf(", \"train_seconds_per_period\": %.6g, \"source_seconds_per_period\": %.6g, "
                   "\"examples_per_period\": %.1f, \"lr\": %g, \"epochs\": %d, \"source_epochs\": %d, "
                   "\"weight_decay\": %g, \"adapter_std\": %g",
                   nt ? t_train / nt : 0.0, nt ? t_src / nt : 0.0, nt ? rows / nt : 0.0, (double)mo.lr,
                   m == TSR_CTNET_M_RETRAIN ? mo.retrain_epochs : mo.epochs, mo.source_epochs,
                   (double)mo.weight_decay, (double)mo.adapter_std);
            if (mo.cfg.adapter_scale != 1.0f &&
                (m == TSR_CTNET_M_CTNET || m == TSR_CTNET_M_NO_GATE || m == TSR_CTNET_M_RAND_ADAPT))
                printf(", \"adapter_scale\": %g", (double)mo.cfg.adapter_scale);
            if (mo.cfg.adapter_norm != TSR_CTNET_NORM_NONE &&
                (m == TSR_CTNET_M_CTNET || m == TSR_CTNET_M_NO_GATE || m == TSR_CTNET_M_RAND_ADAPT))
                printf(", \"adapter_norm\": \"%s\"", tsr_ctnet_norm_names[mo.cfg.adapter_norm]);
            if (tuned_max_cost_set && m == TSR_CTNET_M_CTNET && t_found[m]) /* the setting's choice was cost-bounded */
                printf(", \"tuned_max_cost\": %g", (double)tuned_max_cost);
            printf("%s}\n", r.o.zero_source ? ", \"zero_source_states\": true" : "");
        } else {
            printf("%-22s %s  AUC %.4f +- %.4f  logloss %.4f  validation AUC %.4f  train %.4f CPU s/period (source %.4f)  %.0f examples/period\n",
                   tsr_ctnet_method_names[m], pair, am, ac, lm, vm, nt ? t_train / nt : 0.0, nt ? t_src / nt : 0.0,
                   nt ? rows / nt : 0.0);
        }
        fflush(stdout);
        series[n_series] = (tsr_chart_series){tsr_ctnet_method_names[m], xs, plot_y[n_series], k1 - k0, false,
                                              m == TSR_CTNET_M_CTNET ? 4 : 2, false};
        for (int k = k0; k < k1; k++) plot_y[n_series][k - k0] = per_n[k] ? per[k] / per_n[k] : NAN;
        n_series++;
        free(auc_seed);
        free(ll_seed);
        free(val_seed);
        free(src_seed);
    }
    tsr_ctnet_log_free(&g);
    if (plot) {
        for (int k = k0; k < k1; k++) xs[k - k0] = d.first + 1 + k;
        char title[160];
        snprintf(title, sizeof title, "next-period AUC, %s, mean of %d seeds", pair, seeds);
        const tsr_chart_opts co = {.title = title, .xlabel = "period", .ylabel = "AUC", .width = 1100, .height = 600,
                                   .legend_below = true};
        tsr_status st = tsr_chart_png(plot, series, n_series, &co);
        if (st.code) return cli_fail(st, "check --plot");
        if (!cli_quiet()) fprintf(stderr, "wrote %s\n", plot);
    }
    return CLI_OK;
}

/* -------------------------------------------------------------- predict */

static int cmd_predict(const char *prog, int argc, char **argv) {
    const char *model = NULL, *input = NULL;
    cli_common cm = {1, 1, false};
    int batch = 256;
    const arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "PATH", "model from 'tessera ctnet train' (default " DEFAULT_MODEL ")", NULL},
        {"input", ARG_STR, &input, "PATH", "CSV/TSV rows to score: user, item, timestamp, optional history and feature columns", NULL},
        {"batch", ARG_INT, &batch, "B", "rows per forward", NULL},
        CTNET_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Score rows with a trained model: one click probability per input row, in input order.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!input) return cli_usage_error(prog, "--input is required");
    if (batch < 1 || batch > 65536) return cli_usage_error(prog, "--batch must be in [1,65536]");
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    char mp[1100];
    if (!model) {
        if (!cli_find_shipped(DEFAULT_MODEL, mp, sizeof mp))
            return cli_fail(tsr_errorf(TSR_ERR_IO, "the shipped model %s is missing", DEFAULT_MODEL), "pass --model");
        model = mp;
    }
    tsr_ctnet_model m;
    tsr_status st = tsr_ctnet_model_load(&m, model);
    if (st.code) return cli_fail(st, "pass --model with a file written by 'tessera ctnet train'");
    tsr_ctnet_log g;
    st = tsr_ctnet_load_csv(input, "source", "target", false, &g);
    if (st.code) {
        tsr_ctnet_model_free(&m);
        return cli_fail(st, "the input needs a header with user, item, timestamp (see docs/ctnet.md)");
    }
    float *p = malloc(sizeof(float) * (size_t)g.n);
    TSR_ASSERT(p);
    tsr_ctnet_model_predict(&m, &g, NULL, g.n, batch, p);
    /* the log keeps rows in time order: print them in the input's order */
    int64_t *at = malloc(sizeof(int64_t) * (size_t)g.n);
    TSR_ASSERT(at);
    for (int64_t i = 0; i < g.n; i++) at[g.src_row[i]] = i;
    for (int64_t r = 0; r < g.n; r++) {
        int64_t i = at[r];
        if (cm.json) printf("{\"row\": %lld, \"timestamp\": %lld, \"p_click\": %.6f}\n", (long long)r, (long long)g.ts[i], (double)p[i]);
        else printf("%.6f\n", (double)p[i]);
    }
    free(at);
    free(p);
    tsr_ctnet_log_free(&g);
    tsr_ctnet_model_free(&m);
    return CLI_OK;
}

/* ---------------------------------------------------------------- bench */

/* CPU seconds of this process: on a shared machine the wall clock also
 * counts the time other jobs hold the cores */
static double cpu_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmd_bench(const char *prog, int argc, char **argv) {
    const char *model = NULL;
    data_flags d;
    data_defaults(&d);
    cli_common cm = {1, 1, false};
    int batch = 256, requests = 2000;
    const arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "PATH", "model (default " DEFAULT_MODEL ")", NULL},
        DATA_SPECS(&d),
        {"batch", ARG_INT, &batch, "B", "rows per batched request (default 256)", NULL},
        {"requests", ARG_INT, &requests, "N", "timed batch-1 requests (default 2000)", NULL},
        CTNET_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Scoring throughput (rows/s per core at batch 1 and batched) and p99 latency per request, on the target rows of the log.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (batch < 1 || batch > 65536 || requests < 10 || requests > 10000000)
        return cli_usage_error(prog, "--batch must be in [1,65536] and --requests in [10,1e7]");
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    char mp[1100];
    if (!model) {
        if (!cli_find_shipped(DEFAULT_MODEL, mp, sizeof mp))
            return cli_fail(tsr_errorf(TSR_ERR_IO, "the shipped model %s is missing", DEFAULT_MODEL), "pass --model");
        model = mp;
    }
    tsr_ctnet_model m;
    tsr_status st = tsr_ctnet_model_load(&m, model);
    if (st.code) return cli_fail(st, "pass --model with a file written by 'tessera ctnet train'");
    tsr_ctnet_log g;
    if ((rc = load_data(prog, &d, &g)) != CLI_OK) {
        tsr_ctnet_model_free(&m);
        return rc;
    }
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)g.n), n = 0;
    TSR_ASSERT(rows);
    for (int64_t i = 0; i < g.n; i++)
        if (g.domain[i] == TSR_CTNET_TARGET) rows[n++] = i;
    if (n == 0) {
        free(rows);
        tsr_ctnet_log_free(&g);
        tsr_ctnet_model_free(&m);
        return cli_fail(tsr_errorf(TSR_ERR_ARG, "%s: no target rows to score", d.data),
                        "bench scores the log's target rows: pass --target with the domain value they carry");
    }
    float *p = malloc(sizeof(float) * (size_t)(n > batch ? n : batch));
    double *lat = malloc(sizeof(double) * (size_t)requests);
    TSR_ASSERT(p && lat);
    /* validate: scores are probabilities, batch 1 == batched within 1e-5 */
    tsr_ctnet_model_predict(&m, &g, rows, n < batch ? n : batch, batch, p);
    float q;
    double maxdiff = 0;
    for (int64_t i = 0; i < (n < batch ? n : batch) && i < 64; i++) {
        tsr_ctnet_model_predict(&m, &g, rows + i, 1, 1, &q);
        maxdiff = fmax(maxdiff, fabs((double)q - (double)p[i]));
    }
    for (int i = 0; i < 100; i++) tsr_ctnet_model_predict(&m, &g, rows + i % n, 1, 1, &q); /* warm */
    double c0 = cpu_time();
    for (int i = 0; i < requests; i++) {
        double t0 = tsr_time();
        tsr_ctnet_model_predict(&m, &g, rows + i % n, 1, 1, &q);
        lat[i] = tsr_time() - t0;
    }
    double cpu1 = cpu_time() - c0, tot1 = 0;
    for (int i = 0; i < requests; i++) tot1 += lat[i];
    qsort(lat, (size_t)requests, sizeof *lat, cmp_d);
    double p99_1 = lat[(int)(0.99 * (requests - 1))], p50_1 = lat[requests / 2];
    int nb = (int)(requests / 8 > 200 ? 200 : requests / 8);
    if (nb < 5) nb = 5;
    double *latb = malloc(sizeof(double) * (size_t)nb), totb = 0;
    TSR_ASSERT(latb);
    int64_t bsz = n < batch ? n : batch;
    c0 = cpu_time();
    for (int i = 0; i < nb; i++) {
        double t0 = tsr_time();
        tsr_ctnet_model_predict(&m, &g, rows, bsz, (int)bsz, p);
        latb[i] = tsr_time() - t0;
        totb += latb[i];
    }
    double cpub = cpu_time() - c0;
    qsort(latb, (size_t)nb, sizeof *latb, cmp_d);
    double p99_b = latb[(int)(0.99 * (nb - 1))];
    int th = tsr_threads_get();
    /* rows/s per core from CPU time (robust to other jobs), and from wall time */
    double rps1 = requests / cpu1 / th, rpsb = (double)nb * (double)bsz / cpub / th;
    double wps1 = requests / tot1 / th, wpsb = (double)nb * (double)bsz / totb / th;
    if (cm.json) {
        printf("{\"bench\": \"ctnet_score\", \"threads\": %d, \"batch\": 1, \"rows_per_s_per_core\": %.1f, \"rows_per_s_per_core_wall\": %.1f, \"p50_ms\": %.4f, \"p99_ms\": %.4f, \"max_diff_vs_batched\": %.2g}\n",
               th, rps1, wps1, p50_1 * 1e3, p99_1 * 1e3, maxdiff);
        printf("{\"bench\": \"ctnet_score\", \"threads\": %d, \"batch\": %lld, \"rows_per_s_per_core\": %.1f, \"rows_per_s_per_core_wall\": %.1f, \"p50_ms\": %.4f, \"p99_ms\": %.4f}\n",
               th, (long long)bsz, rpsb, wpsb, latb[nb / 2] * 1e3, p99_b * 1e3);
    } else {
        printf("batch 1:   %.0f rows/s per core (CPU time; wall %.0f), p50 %.3f ms, p99 %.3f ms per request (%d threads; batch-1 vs batched max |diff| %.2g)\n",
               rps1, wps1, p50_1 * 1e3, p99_1 * 1e3, th, maxdiff);
        printf("batch %lld: %.0f rows/s per core (CPU time; wall %.0f), p50 %.3f ms, p99 %.3f ms per request\n", (long long)bsz, rpsb,
               wpsb, latb[nb / 2] * 1e3, p99_b * 1e3);
    }
    free(latb);
    free(lat);
    free(p);
    free(rows);
    tsr_ctnet_log_free(&g);
    tsr_ctnet_model_free(&m);
    return maxdiff < 1e-4 ? CLI_OK : cli_fail(tsr_errorf(TSR_ERR_FORMAT, "batch-1 and batched scores differ by %.3g", maxdiff), "report this as a bug");
}

static const cli_verb verbs[] = {
    {"data", "show the periods and row/click counts per domain of a log", cmd_data},
    {"train", "run one method through the periods with a resumable continual state; write the model", cmd_train},
    {"eval", "every method on the same periods and seeds: next-period AUC, log loss, training time", cmd_eval},
    {"predict", "score (user, item, context) rows with a trained model", cmd_predict},
    {"bench", "scoring throughput and latency", cmd_bench},
    {NULL, NULL, NULL},
};

const cli_family cli_family_ctnet = {"ctnet", "continual cross-domain CTR transfer (CTNet) and its baselines", verbs};
