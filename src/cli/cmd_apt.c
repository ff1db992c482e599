/* tessera CLI: `tessera apt segment|prompts|train|eval|bench` — APT,
 * segmentation of a land-cover class by prompting a SAM-family segmenter
 * with points from a coarse land-cover product (src/models/apt). Results
 * on stdout (JSON with --json), progress and errors on stderr. */
#include "cli/train_flags.h"
#include "tessera/cpu.h"

#include "tessera/apt.h"
#include "tessera/apt_train.h"

#include <string.h>

static int cmd_train(const char *prog, int argc, char **argv) {
    tsr_apt_train_opts o = tsr_apt_default_train_opts();
    o.train.out = "apt_small.safetensors";
    cli_train t = cli_train_init(o.train, o.batch, CLI_TF_STEPS | CLI_TF_BATCH);
    const arg_spec specs[] = {
        {"data", ARG_STR, &o.data_dir, "DIR", "iSAID folder holding the training image and its masks", NULL},
        {"image", ARG_STR, &o.image, "NAME", "training image name (default P0005)", NULL},
        {"out", ARG_STR, &t.o.out, "PATH", "checkpoint to write (training state next to it)", NULL},
        {"init", ARG_STR, &o.init, "PATH", "start from this segmenter (fine-tuning)", NULL},
        {"supervised", ARG_BOOL, &o.supervised, NULL, "no prompts: train the class region alone (the baseline)", NULL},
    };
    int rc = cli_train_parse(prog, "Train a small promptable segmenter on real iSAID masks (SAM-style interactive prompts, "
                             "focal + dice + IoU-head losses).",
                             specs, (int)(sizeof specs / sizeof specs[0]), &t, argc, argv);
    if (rc != CLI_OK) return rc;
    if (t.batch < 1 || t.batch > 64) return cli_usage_error(prog, "--batch must be between 1 and 64");
    o.batch = t.batch;
    if (!t.quiet)
        fprintf(stderr, "%s: %d threads, %lld steps, batch %d, lr %g, out %s%s\n", prog, tsr_threads_get(),
                (long long)t.o.steps, o.batch, (double)t.o.lr, t.o.out, o.supervised ? " (supervised)" : "");
    tsr_train_result r;
    cli_train_begin(&t);
    o.train = t.o;
    tsr_status st = tsr_apt_train(&o, &r);
    cli_train_end(&t, &r);
    if (st.code) return cli_fail(st, cli_train_hint(&t, st, "pass --data with the iSAID images folder (../shared/data/aerial/isaid/train/images)"));
    if (t.cm.json) {
        printf("{\"steps\": %lld, \"finished\": %s, \"loss\": %.6f, \"seconds\": %.1f, \"out\": ", (long long)r.step,
               r.finished ? "true" : "false", (double)r.last_loss, r.seconds);
        cli_json_str(stdout, t.o.out);
        printf("}\n");
    } else {
        printf("%s %lld steps, last loss %.4f; saved %s\n", r.finished ? "finished" : "stopped at",
               (long long)r.step, (double)r.last_loss, t.o.out);
    }
    return CLI_OK;
}

static const cli_verb k_verbs[] = {
    {"train", "train a small promptable segmenter on iSAID masks (resumable)", cmd_train},
    {NULL, NULL, NULL},
};

const cli_family cli_family_apt = {"apt", "APT: land-cover-prompted segmentation with SAM-family models", k_verbs};
