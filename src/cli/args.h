/* tessera CLI: a small long-flag parser shared by every command, the
 * command-table types, and the common flags (--threads, --seed, --json).
 *
 * Exit codes: 0 success (or --help), 1 a library failure (tsr_status),
 * 2 a usage error (unknown flag, missing value, bad number). */
#ifndef TSR_CLI_ARGS_H
#define TSR_CLI_ARGS_H

#include "tessera/core.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_HELP = -1 };

/* ARG_TEXT: a string that may be empty (a prompt); ARG_STR refuses ''.
 * ARG_MODEL: an input model path (ARG_STR otherwise): a relative
 * "models/NAME" that does not exist from the working directory is looked up
 * among the shipped models (tsr_find_model), so the documented
 * `--model models/pycode` works from any directory as the defaults do.
 * Never for outputs: an --out must not land in the shipped models. */
typedef enum { ARG_BOOL, ARG_INT, ARG_I64, ARG_U64, ARG_FLOAT, ARG_STR, ARG_TEXT, ARG_MODEL } arg_kind;

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

/* A shipped model file or directory by its name under models/ (e.g.
 * "models/pycode"), found as tsr_find_model says (TESSERA_MODELS, the
 * install prefix, beside the binary, the working directory). out gets the
 * path; false if none exists. */
bool cli_find_shipped(const char *rel, char *out, size_t n);

/* A path flag whose default is a shipped model: while v still equals def,
 * the shipped file cli_find_shipped finds (def itself when none is found,
 * so the error names it); a path the user gave is returned as it is. */
const char *cli_shipped_default(const char *v, const char *def, char *buf, size_t n);

/* The one check of an output path, run before any long work: refuses an
 * existing non-regular target (device, FIFO, symlink, directory) and a
 * missing or unwritable directory (tsr_output_check). "-" (stdout) is
 * accepted only when allow_stdout. Prints "tessera: error: ..." with a hint
 * naming --flag; returns CLI_OK or CLI_FAIL. */
int cli_check_output(const char *prog, const char *flag, const char *path, bool allow_stdout);
/* Whether two paths name one file ("a.tok" and "./a.tok", a symlinked
 * directory): the same directory (realpath) and base name, or the same
 * existing file. For outputs (and an output against an input) that must be
 * two files. */
bool cli_same_file(const char *a, const char *b);

/* Two output flags of one command must not name one file (the second
 * write would replace the first): CLI_USAGE naming both flags when
 * cli_same_file(a, b), else CLI_OK. NULL or "-" never clash. */
int cli_check_distinct_outputs(const char *prog, const char *flag_a, const char *a, const char *flag_b, const char *b);

/* Documented ranges of numeric flags: CLI_USAGE with "--flag must be
 * between lo and hi (got v)" (or ">= lo" / "<= hi" when the other end is
 * open: INT64_MIN/INT64_MAX, -INFINITY/INFINITY), else CLI_OK. */
int cli_check_int(const char *prog, const char *flag, int64_t v, int64_t lo, int64_t hi);
int cli_check_float(const char *prog, const char *flag, double v, double lo, double hi);

/* Prompt input shared by every generate/bench verb: --prompt TEXT or
 * --prompt-file FILE ("-": stdin), not both. *out is a malloc'd copy (""
 * when neither was given and !required). Returns CLI_OK, CLI_USAGE (both
 * flags, or required and neither) or CLI_FAIL (unreadable file). */
int cli_read_prompt(const char *prog, const char *prompt, const char *prompt_file, bool required,
                    char **out);
/* --truncate: NULL or "none" -> false, "left" -> true; anything else is a
 * usage error. Returns CLI_OK or CLI_USAGE. */
int cli_parse_truncate(const char *prog, const char *v, bool *keep_last);
#define CLI_PROMPT_HINT \
    "shorten the prompt, or pass --truncate left to keep its last tokens"
#define CLI_PROMPT_FILE_SPEC(p) \
    {"prompt-file", ARG_STR, &(p), "FILE", "read the prompt from FILE ('-': stdin) instead of --prompt", NULL}
#define CLI_TRUNCATE_SPEC(p) \
    {"truncate", ARG_STR, &(p), "SIDE", \
     "a prompt longer than the context: 'none' is an error (default), 'left' keeps its last tokens", NULL}

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
