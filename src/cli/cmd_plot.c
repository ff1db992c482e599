/* tessera CLI: `tessera plot FILE.jsonl --out curve.png [--metric NAME ...]`
 * — training curves from the metrics log every train/tune verb writes with
 * --log (one JSON object per logged step, "kind": "train", and per
 * evaluation, "kind": "eval"). Default metrics: the training loss and every
 * evaluation metric. */
#include "cli/args.h"

#include "tessera/fileio.h"
#include "tessera/chart.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>


#define MAX_METRICS 16
static const char *const k_not_metrics[] = {"kind", "step", "time", "epoch", NULL};

typedef struct {
    char name[64];
    double *x, *y;
    int n, cap;
    bool eval;
} series;

static bool is_metric_key(const char *k) {
    for (int i = 0; k_not_metrics[i]; i++)
        if (strcmp(k, k_not_metrics[i]) == 0) return false;
    return true;
}

static series *find_or_add(series *s, int *ns, const char *name, bool add) {
    for (int i = 0; i < *ns; i++)
        if (strcmp(s[i].name, name) == 0) return &s[i];
    if (!add || *ns >= MAX_METRICS) return NULL;
    series *t = &s[(*ns)++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

static void push(series *t, double x, double y) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->x = realloc(t->x, sizeof(double) * (size_t)t->cap);
        t->y = realloc(t->y, sizeof(double) * (size_t)t->cap);
        TSR_ASSERT(t->x && t->y);
    }
    t->x[t->n] = x, t->y[t->n++] = y;
}

/* reads the log: with no metric asked for, "loss" and every eval metric */
static tsr_status read_log(const char *path, const char *const *want, int n_want, bool by_time, series *s,
                           int *ns) {
    char *data;
    size_t len;
    tsr_status st = tsr_read_file(path, &data, &len);
    if (st.code) return st;
    for (int i = 0; i < n_want; i++) find_or_add(s, ns, want[i], true);
    int line = 0, records = 0;
    double t0 = NAN;
    for (size_t i = 0; i < len && !st.code;) {
        size_t j = i;
        while (j < len && data[j] != '\n') j++;
        line++;
        size_t a = i;
        while (a < j && (data[a] == ' ' || data[a] == '\t' || data[a] == '\r')) a++;
        if (a < j) {
            cJSON *o = cJSON_ParseWithLength(data + i, j - i);
            const cJSON *step = o ? cJSON_GetObjectItemCaseSensitive(o, "step") : NULL;
            const cJSON *tm = o ? cJSON_GetObjectItemCaseSensitive(o, "time") : NULL;
            const cJSON *kind = o ? cJSON_GetObjectItemCaseSensitive(o, "kind") : NULL;
            if (!cJSON_IsObject(o) || !cJSON_IsNumber(step) || (by_time && !cJSON_IsNumber(tm))) {
                st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: not a metrics record (a JSON object with a numeric \"step\"%s)",
                                path, line, by_time ? " and \"time\"" : "");
            } else {
                records++;
                bool ev = cJSON_IsString(kind) && strcmp(kind->valuestring, "eval") == 0;
                if (by_time && isnan(t0)) t0 = tm->valuedouble;
                double x = by_time ? tm->valuedouble - t0 : step->valuedouble;
                for (const cJSON *it = o->child; it; it = it->next) {
                    if (!it->string || !is_metric_key(it->string) || !cJSON_IsNumber(it)) continue;
                    bool add = n_want == 0 && (ev || strcmp(it->string, "loss") == 0);
                    series *t = find_or_add(s, ns, it->string, add);
                    if (!t) continue;
                    t->eval |= ev;
                    push(t, x, it->valuedouble);
                }
            }
            cJSON_Delete(o);
        }
        i = j + 1;
    }
    free(data);
    if (!st.code && records == 0) st = tsr_errorf(TSR_ERR_FORMAT, "%s: no metrics records", path);
    for (int i = 0; i < *ns && !st.code; i++)
        if (s[i].n == 0)
            st = tsr_errorf(TSR_ERR_ARG, "%s: no record has the metric '%s'", path, s[i].name);
    return st;
}

static int cmd_plot(const char *prog, int argc, char **argv) {
    const char *out = NULL, *x = "step", *title = NULL;
    int width = 960, height = 600;
    bool log_y = false;
    const char *metric_shown = NULL; /* --metric is collected below; this only documents it */
    const arg_spec specs[] = {
        {"out", ARG_STR, &out, "PNG", "image to write (required)", NULL},
        {"metric", ARG_STR, &metric_shown, "NAME", "a metric to draw; repeat for more (default: loss and every eval metric)", NULL},
        {"x", ARG_STR, &x, "step|time", "horizontal axis: optimizer step, or seconds since the first record", NULL},
        {"title", ARG_STR, &title, "TEXT", "title (default: the log's file name)", NULL},
        {"width", ARG_INT, &width, "PX", "image width", NULL},
        {"height", ARG_INT, &height, "PX", "image height", NULL},
        {"log-y", ARG_BOOL, &log_y, NULL, "logarithmic vertical axis", NULL},
    };
    const int n_specs = (int)(sizeof specs / sizeof specs[0]);
    const char *summary = "Draw training curves from a --log FILE.jsonl of any train/tune verb: tessera plot FILE.jsonl --out curve.png [--metric NAME ...]";
    /* the positional log file and the repeatable --metric go first; the rest to the flag parser */
    const char *want[MAX_METRICS], *path = NULL;
    int n_want = 0, n_rest = 0;
    char **rest = malloc(sizeof(char *) * (size_t)(argc + 1));
    TSR_ASSERT(rest);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            args_print_help(stdout, prog, summary, specs, n_specs);
            free(rest);
            return CLI_HELP;
        }
        if (strcmp(a, "--metric") == 0 || strncmp(a, "--metric=", 9) == 0) {
            const char *v = a[8] == '=' ? a + 9 : i + 1 < argc ? argv[++i] : NULL;
            if (!v || !*v) {
                free(rest);
                return cli_usage_error(prog, "--metric needs a value");
            }
            if (n_want == MAX_METRICS) {
                free(rest);
                return cli_usage_error(prog, "at most %d --metric flags", MAX_METRICS);
            }
            want[n_want++] = v;
        } else if (strncmp(a, "--", 2) != 0 && !path) {
            path = a;
        } else {
            rest[n_rest++] = argv[i];
            /* a flag's value may not start with "--": keep it with its flag */
            if (strncmp(a, "--", 2) == 0 && !strchr(a, '=') && strcmp(a, "--log-y") != 0 && i + 1 < argc)
                rest[n_rest++] = argv[++i];
        }
    }
    int rc = args_parse(prog, summary, specs + 0, n_specs, n_rest, rest);
    free(rest);
    if (rc != CLI_OK) return rc;
    if (!path) return cli_usage_error(prog, "give the log file: tessera plot FILE.jsonl --out curve.png");
    if (!out) return cli_usage_error(prog, "--out is required");
    bool by_time = strcmp(x, "time") == 0;
    if (!by_time && strcmp(x, "step") != 0) return cli_usage_error(prog, "--x must be 'step' or 'time', got '%s'", x);
    if (width < 200 || width > 8192 || height < 150 || height > 8192)
        return cli_usage_error(prog, "--width must be in [200,8192] and --height in [150,8192]");
    tsr_status st = tsr_output_check(out);
    if (st.code) return cli_fail(st, "pass another --out");
    series s[MAX_METRICS];
    int ns = 0;
    st = read_log(path, want, n_want, by_time, s, &ns);
    if (st.code) {
        for (int i = 0; i < ns; i++) free(s[i].x), free(s[i].y);
        return cli_fail(st, st.code == TSR_ERR_IO ? "pass the --log FILE.jsonl a train/tune verb wrote"
                                                  : "pass a --log file of a train/tune verb, and --metric names it holds");
    }
    {
        tsr_chart_series ps[MAX_METRICS];
        for (int i = 0; i < ns; i++)
            ps[i] = (tsr_chart_series){s[i].name, s[i].x, s[i].y, s[i].n, s[i].eval && s[i].n <= 200, 0, false};
        const char *slash = strrchr(path, '/');
        tsr_chart_opts po = {title ? title : slash ? slash + 1 : path, by_time ? "seconds" : "step",
                            ns == 1 ? s[0].name : NULL, width, height, log_y, false};
        st = tsr_chart_png(out, ps, ns, &po);
    }
    for (int i = 0; i < ns; i++) free(s[i].x), free(s[i].y);
    if (st.code)
        return cli_fail(st, "check that --out's directory is writable and has space");
    fprintf(stderr, "%s: %d curve%s from %s -> %s\n", prog, ns, ns == 1 ? "" : "s", path, out);
    return CLI_OK;
}

const cli_command cli_command_plot = {"plot", "training curves from a --log FILE.jsonl of any train/tune verb, as PNG",
                                      cmd_plot};
