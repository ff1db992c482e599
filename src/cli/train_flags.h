/* tessera CLI: the flags every train/tune verb shares, parsed once
 * (src/cli/train_flags.c), and what every such verb does around a run:
 * progress on stderr, SIGINT/SIGTERM -> checkpoint and a resume hint, the
 * hint for a failure. A verb sets its defaults in t.o (tsr_train_opts),
 * lists its own flags, and calls:
 *
 *   cli_train t = cli_train_init(defaults, CLI_TF_EPOCHS);
 *   int rc = cli_train_parse(prog, summary, own_specs, n_own, &t, argc, argv);
 *   if (rc != CLI_OK) return rc;            // usage error or --help
 *   ... its own checks; run with t.o ...   // between cli_train_begin/end
 *   cli_train_begin(&t);  st = my_train(...);  cli_train_end(&t, ...);
 */
#ifndef TSR_CLI_TRAIN_FLAGS_H
#define TSR_CLI_TRAIN_FLAGS_H

#include "cli/args.h"

#include "tessera/train.h"

/* which optional flags a verb takes */
enum {
    CLI_TF_STEPS = 1,   /* --steps N */
    CLI_TF_EPOCHS = 2,  /* --epochs N */
    CLI_TF_BATCH = 4,   /* --batch B (into t.batch) */
    CLI_TF_EVAL = 8,    /* --eval-every N */
    CLI_TF_NO_STATE = 16, /* the run keeps no training state (an evaluation training into a temporary
                           * file): no --ckpt-every, --ckpt-minutes, --stop-after or --resume */
};

typedef struct {
    tsr_train_opts o; /* the verb's defaults, then the flags */
    int batch;
    int flags;        /* CLI_TF_* */
    cli_common cm;    /* --threads, --seed (-> o.seed), --json */
    bool quiet;
    const char *sched;
    const char *prog;
    int argc;
    char **argv;
    bool tty;         /* progress as one carriage-return line */
    bool dirty;       /* a progress line is open on the TTY */
    bool own_eval_lines; /* the verb prints its evaluations itself */
    bool interrupted;    /* the last run stopped on SIGINT/SIGTERM (set by cli_train_end) */
} cli_train;

cli_train cli_train_init(tsr_train_opts defaults, int batch, int flags);
/* own specs first, then the shared ones; validates the shared values,
 * checks --log as an output (before any work) and applies --threads.
 * CLI_OK, CLI_HELP, CLI_USAGE or CLI_FAIL (an unusable --log). */
int cli_train_parse(const char *prog, const char *summary, const arg_spec *own, int n_own, cli_train *t,
                    int argc, char **argv);
/* --log must name neither the checkpoint (t->o.out) nor the training state
 * beside it: CLI_USAGE, else CLI_OK. cli_train_parse runs it for an --out
 * given as a flag; a verb that sets t->o.out afterwards (a default, a file
 * inside a model directory) runs it then, before any work. */
int cli_train_check_log(const cli_train *t);
/* signal handlers + the progress printer (unless --quiet) */
void cli_train_begin(cli_train *t);
/* restores the signals; after an interrupted run, says where the
 * checkpoint is and the command that resumes it */
void cli_train_end(cli_train *t, const tsr_train_result *r);
/* a hint for a failed run: resume, output and divergence problems; else
 * fallback (the family's data hint, may be NULL) */
const char *cli_train_hint(const cli_train *t, tsr_status st, const char *fallback);

#endif
