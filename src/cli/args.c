/* tessera CLI: the long-flag parser and the error/usage printers that every
 * cmd_<family>.c uses, so all commands fail the same way. */
#include "cli/args.h"

#include "tessera/fileio.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_usage_error(const char *prog, const char *fmt, ...) {
    fprintf(stderr, "%s: ", prog);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see '%s --help')\n", prog);
    return CLI_USAGE;
}

int cli_fail(tsr_status st, const char *hint) {
    fprintf(stderr, "tessera: error: %s\n", st.msg[0] ? st.msg : "unknown failure");
    if (hint && hint[0]) fprintf(stderr, "  hint: %s\n", hint);
    return CLI_FAIL;
}

static const char *kind_meta(const arg_spec *s) {
    if (s->metavar) return s->metavar;
    switch (s->kind) {
    case ARG_INT:
    case ARG_I64:
    case ARG_U64: return "N";
    case ARG_FLOAT: return "X";
    case ARG_STR:
    case ARG_TEXT:
    case ARG_MODEL: return "STR";
    default: return "";
    }
}

void args_print_help(FILE *f, const char *prog, const char *summary, const arg_spec *specs,
                     int n_specs) {
    fprintf(f, "usage: %s [flags]\n", prog);
    if (summary) fprintf(f, "\n%s\n", summary);
    fprintf(f, "\nflags:\n");
    for (int i = 0; i < n_specs; i++) {
        char left[64];
        if (specs[i].kind == ARG_BOOL) snprintf(left, sizeof left, "--%s", specs[i].name);
        else snprintf(left, sizeof left, "--%s %s", specs[i].name, kind_meta(&specs[i]));
        fprintf(f, "  %-22s %s", left, specs[i].help ? specs[i].help : "");
        /* show defaults of numbers and strings so --help documents them,
         * unless the help text already states its default */
        const char *h = specs[i].help ? specs[i].help : "";
        bool stated = strstr(h, "default") || strchr(h, '[');
        switch (stated ? ARG_BOOL : specs[i].kind) {
        case ARG_INT: fprintf(f, " [%d]", *(int *)specs[i].dst); break;
        case ARG_I64: fprintf(f, " [%lld]", (long long)*(int64_t *)specs[i].dst); break;
        case ARG_U64: fprintf(f, " [%llu]", (unsigned long long)*(uint64_t *)specs[i].dst); break;
        case ARG_FLOAT: fprintf(f, " [%g]", (double)*(float *)specs[i].dst); break;
        case ARG_STR:
        case ARG_TEXT:
        case ARG_MODEL:
            if (*(const char **)specs[i].dst) fprintf(f, " [%s]", *(const char **)specs[i].dst);
            break;
        default: break;
        }
        fputc('\n', f);
    }
    fprintf(f, "  %-22s %s\n", "--help", "show this help");
}

static int parse_value(const char *prog, const arg_spec *s, const char *v) {
    char *end = NULL;
    errno = 0;
    switch (s->kind) {
    case ARG_INT: {
        long x = strtol(v, &end, 10);
        if (!*v || *end || errno || x < INT_MIN || x > INT_MAX)
            return cli_usage_error(prog, "--%s expects an integer, got '%s'", s->name, v);
        *(int *)s->dst = (int)x;
        break;
    }
    case ARG_I64: {
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno)
            return cli_usage_error(prog, "--%s expects an integer, got '%s'", s->name, v);
        *(int64_t *)s->dst = x;
        break;
    }
    case ARG_U64: {
        if (v[0] == '-')
            return cli_usage_error(prog, "--%s expects a non-negative integer, got '%s'", s->name, v);
        unsigned long long x = strtoull(v, &end, 10);
        if (!*v || *end || errno)
            return cli_usage_error(prog, "--%s expects a non-negative integer, got '%s'", s->name, v);
        *(uint64_t *)s->dst = x;
        break;
    }
    case ARG_FLOAT: {
        float x = strtof(v, &end);
        if (!*v || *end || errno || !isfinite(x))
            return cli_usage_error(prog, "--%s expects a number, got '%s'", s->name, v);
        *(float *)s->dst = x;
        break;
    }
    case ARG_STR:
        if (!*v) return cli_usage_error(prog, "--%s expects a non-empty value", s->name);
        *(const char **)s->dst = v;
        break;
    case ARG_TEXT: *(const char **)s->dst = v; break;
    case ARG_MODEL: {
        if (!*v) return cli_usage_error(prog, "--%s expects a non-empty value", s->name);
        /* one buffer per model flag of a command line (serve has the most) */
        static char found[32][PATH_MAX];
        static int n_found;
        struct stat sb;
        if (strncmp(v, "models/", 7) == 0 && stat(v, &sb) != 0 && n_found < 32 &&
            tsr_find_model(v, found[n_found], sizeof found[n_found]))
            v = found[n_found++];
        *(const char **)s->dst = v;
        break;
    }
    case ARG_BOOL: *(bool *)s->dst = true; break;
    }
    if (s->set) *s->set = true;
    return CLI_OK;
}

int args_parse(const char *prog, const char *summary, const arg_spec *specs, int n_specs,
               int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            args_print_help(stdout, prog, summary, specs, n_specs);
            return CLI_HELP;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == 0)
            return cli_usage_error(prog, "unexpected argument '%s'", a);
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const arg_spec *s = NULL;
        for (int k = 0; k < n_specs; k++)
            if (strlen(specs[k].name) == nlen && strncmp(specs[k].name, name, nlen) == 0) s = &specs[k];
        if (!s) return cli_usage_error(prog, "unknown flag '--%.*s'", (int)nlen, name);
        const char *val;
        if (s->kind == ARG_BOOL) {
            if (eq) return cli_usage_error(prog, "--%s takes no value", s->name);
            val = "";
        } else if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc) return cli_usage_error(prog, "--%s needs a value", s->name);
            val = argv[++i];
        }
        int rc = parse_value(prog, s, val);
        if (rc != CLI_OK) return rc;
    }
    return CLI_OK;
}

int cli_common_apply(const char *prog, const cli_common *cm) {
    if (cm->threads < 0 || cm->threads > 4096)
        return cli_usage_error(prog, "--threads must be between 1 and 4096 (0: the default, $TESSERA_THREADS else all cores)");
    tsr_threads_set(cm->threads);
    return CLI_OK;
}

void cli_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

void cli_fmt_eta(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) snprintf(buf, n, "?");
    else if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

bool cli_find_shipped(const char *rel, char *out, size_t n) { return tsr_find_model(rel, out, n); }

const char *cli_shipped_default(const char *v, const char *def, char *buf, size_t n) {
    if (!v || strcmp(v, def) != 0) return v;
    return tsr_find_model_or(def, buf, n);
}

int cli_check_output(const char *prog, const char *flag, const char *path, bool allow_stdout) {
    char hint[160];
    if (strncmp(flag, "--", 2) == 0) flag += 2; /* "out" or "--out" */
    if (strcmp(path, "-") == 0 && !allow_stdout) {
        fprintf(stderr, "%s: --%s cannot be '-' (stdout carries the results here); name a file (see '%s --help')\n",
                prog, flag, prog);
        return CLI_USAGE;
    }
    tsr_status st = tsr_output_check(path);
    if (!st.code) return CLI_OK;
    snprintf(hint, sizeof hint, "pass --%s a new or regular file in a writable directory%s", flag,
             allow_stdout ? " (or '-' for stdout)" : "");
    return cli_fail(st, hint);
}

/* realpath of path's directory + "/" + its base name (the file itself need
 * not exist); false when the directory cannot be resolved */
static bool canonical_name(const char *path, char *out, size_t n) {
    char *d = strdup(path), *b = strdup(path);
    TSR_ASSERT(d && b);
    char dir[PATH_MAX];
    bool ok = realpath(dirname(d), dir) != NULL;
    if (ok) ok = (size_t)snprintf(out, n, "%s/%s", dir, basename(b)) < n;
    free(d), free(b);
    return ok;
}

bool cli_same_file(const char *a, const char *b) {
    if (strcmp(a, b) == 0) return true;
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char ca[PATH_MAX + 256], cb[PATH_MAX + 256];
    return canonical_name(a, ca, sizeof ca) && canonical_name(b, cb, sizeof cb) && strcmp(ca, cb) == 0;
}

int cli_check_distinct_outputs(const char *prog, const char *flag_a, const char *a, const char *flag_b, const char *b) {
    if (!a || !b || !strcmp(a, "-") || !strcmp(b, "-") || !cli_same_file(a, b)) return CLI_OK;
    if (strncmp(flag_a, "--", 2) == 0) flag_a += 2;
    if (strncmp(flag_b, "--", 2) == 0) flag_b += 2;
    return cli_usage_error(prog, "--%s and --%s name the same file '%s'; give each output its own path", flag_a, flag_b, b);
}

static int range_error(const char *prog, const char *flag, const char *lo, const char *hi, const char *got) {
    if (!lo) return cli_usage_error(prog, "--%s must be <= %s (got %s)", flag, hi, got);
    if (!hi) return cli_usage_error(prog, "--%s must be >= %s (got %s)", flag, lo, got);
    return cli_usage_error(prog, "--%s must be between %s and %s (got %s)", flag, lo, hi, got);
}

int cli_check_int(const char *prog, const char *flag, int64_t v, int64_t lo, int64_t hi) {
    if (v >= lo && v <= hi) return CLI_OK;
    char a[32], b[32], g[32];
    snprintf(a, sizeof a, "%lld", (long long)lo);
    snprintf(b, sizeof b, "%lld", (long long)hi);
    snprintf(g, sizeof g, "%lld", (long long)v);
    /* the type's own limit is no documented bound: say ">= lo" */
    bool open_lo = lo == INT64_MIN || lo == INT32_MIN, open_hi = hi == INT64_MAX || hi == INT32_MAX;
    return range_error(prog, flag, open_lo ? NULL : a, open_hi ? NULL : b, g);
}

int cli_check_float(const char *prog, const char *flag, double v, double lo, double hi) {
    if (v >= lo && v <= hi) return CLI_OK;
    char a[32], b[32], g[32];
    snprintf(a, sizeof a, "%g", lo);
    snprintf(b, sizeof b, "%g", hi);
    snprintf(g, sizeof g, "%g", v);
    return range_error(prog, flag, isinf(lo) ? NULL : a, isinf(hi) ? NULL : b, g);
}

int cli_read_prompt(const char *prog, const char *prompt, const char *prompt_file, bool required,
                    char **out) {
    *out = NULL;
    if (prompt && prompt_file)
        return cli_usage_error(prog, "pass either --prompt or --prompt-file, not both");
    if (!prompt && !prompt_file) {
        if (required) return cli_usage_error(prog, "--prompt TEXT or --prompt-file FILE is required");
        prompt = "";
    }
    if (prompt) {
        *out = strdup(prompt);
        TSR_ASSERT(*out);
        return CLI_OK;
    }
    size_t len;
    tsr_status st = tsr_read_file(prompt_file, out, &len);
    if (st.code) return cli_fail(st, "--prompt-file: name a readable text file, or '-' for stdin");
    if (strlen(*out) != len) {
        free(*out);
        *out = NULL;
        return cli_fail(tsr_errorf(TSR_ERR_FORMAT, "%s: the prompt contains a NUL byte", prompt_file),
                        "--prompt-file takes a text file");
    }
    return CLI_OK;
}

int cli_parse_truncate(const char *prog, const char *v, bool *keep_last) {
    *keep_last = false;
    if (!v || strcmp(v, "none") == 0) return CLI_OK;
    if (strcmp(v, "left") == 0) {
        *keep_last = true;
        return CLI_OK;
    }
    return cli_usage_error(prog, "--truncate must be 'none' or 'left' (got '%s')", v);
}

tsr_status cli_read_jsonl_field(const char *path, const char *field, char ***out, int *n) {
    char *data;
    size_t len;
    *out = NULL;
    *n = 0;
    tsr_status st = tsr_read_file(path, &data, &len);
    if (st.code) return st;
    int cap = 0, line = 0;
    char **v = NULL;
    for (size_t i = 0; i < len && !st.code;) {
        size_t j = i;
        while (j < len && data[j] != '\n') j++;
        line++;
        size_t a = i;
        while (a < j && (data[a] == ' ' || data[a] == '\t' || data[a] == '\r')) a++;
        if (a < j) {
            cJSON *o = cJSON_ParseWithLength(data + i, j - i);
            cJSON *p = o ? cJSON_GetObjectItemCaseSensitive(o, field) : NULL;
            if (!cJSON_IsString(p)) st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: not a JSON object with a string \"%s\"", path, line, field);
            else {
                if (*n == cap) {
                    cap = cap ? 2 * cap : 64;
                    char **nv = realloc(v, sizeof *v * (size_t)cap);
                    TSR_ASSERT(nv);
                    v = nv;
                }
                v[(*n)++] = strdup(p->valuestring);
            }
            cJSON_Delete(o);
        }
        i = j + 1;
    }
    free(data);
    if (!st.code && *n == 0) st = tsr_errorf(TSR_ERR_FORMAT, "%s: no lines with \"%s\"", path, field);
    if (st.code) {
        cli_free_strings(v, *n);
        *n = 0;
        return st;
    }
    *out = v;
    return st;
}

void cli_free_strings(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}
