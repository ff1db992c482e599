/* tessera CLI: a small long-flag parser shared by every command, the
 * command-table types, and the common flags (--threads, --seed, --json).
 *
 * Exit codes: 0 success (or --help), 1 a library failure (tsr_status),
 * 2 a usage error (unknown flag, missing value, bad number). */
#ifndef TSR_CLI_ARGS_H
#define TSR_CLI_ARGS_H

#include "tessera/core.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_HELP = -1 };

typedef enum { ARG_BOOL, ARG_INT, ARG_I64, ARG_U64, ARG_FLOAT, ARG_STR } arg_kind;

/* One flag: `--name VALUE` or `--name=VALUE` (ARG_BOOL takes no value).
 * dst points at an int, int64_t, uint64_t, float, const char * or bool, by kind.
 * `set` (optional) becomes true when the flag was given. */
typedef struct {
    const char *name;
    arg_kind kind;
    void *dst;
    const char *metavar; /* shown in help: "N", "PATH" */
    const char *help;
    bool *set;
} arg_spec;

/* Parses argv[0..argc) against specs. `prog` is the command path shown in
 * messages ("tessera classify train"). Returns CLI_OK, CLI_HELP (help was
 * printed to stdout), or CLI_USAGE (a one-line message was printed to
 * stderr). */
int args_parse(const char *prog, const char *summary, const arg_spec *specs, int n_specs,
               int argc, char **argv);
void args_print_help(FILE *f, const char *prog, const char *summary, const arg_spec *specs,
                     int n_specs);

/* "tessera classify train: <message>" + "(see --help)", returns CLI_USAGE */
int cli_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "tessera: error: <msg>" and "  hint: <hint>", returns CLI_FAIL */
int cli_fail(tsr_status st, const char *hint);

/* s as a JSON string literal (quotes, escapes) */
void cli_json_str(FILE *f, const char *s);
/* "1h05m" / "3m07s" for progress lines; "?" when unknown */
void cli_fmt_eta(char *buf, size_t n, double seconds);

/* A shipped file or directory (e.g. "models/pycode"): rel itself when it
 * exists from the working directory, else rel beside the binary's parent
 * folder (build/tessera -> <repo>/rel). out gets the path; false if
 * neither exists. */
bool cli_find_shipped(const char *rel, char *out, size_t n);

/* The string field `field` of every non-empty line of a JSONL file: a
 * malloc'd array of malloc'd strings (free with cli_free_strings). A line
 * that is not an object with that string field is an error naming the
 * line; so is a file without any. */
tsr_status cli_read_jsonl_field(const char *path, const char *field, char ***out, int *n);
void cli_free_strings(char **v, int n);

/* Common flags every command may include. */
typedef struct {
    int threads;   /* 0: TESSERA_THREADS, else all cores */
    uint64_t seed;
    bool json;
} cli_common;

#define CLI_COMMON_THREADS(cm) \
    {"threads", ARG_INT, &(cm)->threads, "N", "worker threads (default: $TESSERA_THREADS, else all cores)", NULL}
#define CLI_COMMON_SEED(cm) {"seed", ARG_U64, &(cm)->seed, "S", "random seed", NULL}
#define CLI_COMMON_JSON(cm) {"json", ARG_BOOL, &(cm)->json, NULL, "machine-readable output on stdout", NULL}

/* Validates --threads and applies it. Returns CLI_OK or CLI_USAGE. */
int cli_common_apply(const char *prog, const cli_common *cm);

/* ------------------------------------------------------- command table */

typedef struct {
    const char *name;
    const char *summary;
    /* argv[0] is the first flag (the verb is consumed); prog is "tessera fam verb" */
    int (*run)(const char *prog, int argc, char **argv);
} cli_verb;

typedef struct {
    const char *name;
    const char *summary;
    const cli_verb *verbs; /* terminated by a {NULL} entry */
} cli_family;

/* A top-level command without verbs (`tessera serve`); argv[0] is its
 * first flag. */
typedef cli_verb cli_command;

#endif
