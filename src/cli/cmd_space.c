/* tessera CLI: `tessera space tune|generate|bench` — SPACE (src/models/space):
 * semi-autoregressive fine-tuning of a code model and auto-correct
 * decoding, exactly lossless against plain decoding, with the prompt-lookup
 * n-gram drafter as the baseline. Results on stdout (JSON with --json),
 * progress on stderr. */
#include "cli/args.h"

#include "tessera/bpe.h"
#include "tessera/space.h"

#include <signal.h>
#include <string.h>

static volatile int g_stop = 0;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void on_progress(const tsr_lm_train_progress *p, void *ud) {
    (void)ud;
    char eta[32];
    cli_fmt_eta(eta, sizeof eta, p->eta_s);
    fprintf(stderr, "step %lld/%lld  loss %.4f  lr %.2e  gnorm %.3f  %.0f tok/s  ETA %s\n", (long long)p->step,
            (long long)p->total_steps, (double)p->loss, (double)p->lr, (double)p->grad_norm, p->tokens_per_s, eta);
}

static void on_eval(const tsr_lm_train_eval *e, void *ud) {
    (void)ud;
    fprintf(stderr, "eval step %lld  val loss %.4f nats/token  %.4f bits/byte  (%lld tokens, %lld bytes)\n",
            (long long)e->step, e->val_loss, e->val_bpb, (long long)e->tokens, (long long)e->bytes);
}

static void on_note(const char *msg, void *ud) { fprintf(stderr, "%s: %s\n", (const char *)ud, msg); }

/* ------------------------------------------------------------ tune */

static int cmd_tune(const char *prog, int argc, char **argv) {
    tsr_space_tune_opts o = tsr_space_tune_default_opts();
    tsr_lm_train_opts *t = &o.train;
    cli_common cm = {0, t->seed, false};
    bool quiet = false;
    float ckpt_minutes = 0;
    const arg_spec specs[] = {
        {"model", ARG_STR, &o.base, "DIR", "base model: HF directory with tokenizer.json (default models/pycode)", NULL},
        {"out", ARG_STR, &o.out, "DIR", "SAR model directory (created; default runs/space)", NULL},
        {"k", ARG_INT, &o.sar.k, "N", "masks with a target per SAR example (paper: 5)", NULL},
        {"sar-prob", ARG_FLOAT, &o.sar.prob, "P", "share of SAR examples (paper: 0.5)", NULL},
        {"min-prefix", ARG_INT, &o.sar.min_prefix, "N", "shortest prompt before the masks", NULL},
        {"data", ARG_STR, &t->data_dir, "DIR", "corpus root (.py files)", NULL},
        {"val-list", ARG_STR, &t->val_list, "PATH", "held-out files (default data/python_val_files.txt)", NULL},
        {"context", ARG_INT, &t->cfg.max_seq, "T", "tokens per training window (the model's new context)", NULL},
        {"batch", ARG_INT, &t->batch, "B", "windows per step", NULL},
        {"steps", ARG_I64, &t->steps, "N", "optimizer steps in all", NULL},
        {"lr", ARG_FLOAT, &t->lr, "X", "peak learning rate", NULL},
        {"warmup", ARG_I64, &t->warmup, "N", "linear warmup steps", NULL},
        {"min-lr", ARG_FLOAT, &t->min_lr, "X", "cosine floor", NULL},
        {"wd", ARG_FLOAT, &t->weight_decay, "X", "AdamW weight decay", NULL},
        {"clip", ARG_FLOAT, &t->clip, "X", "global grad-norm clip (0: off)", NULL},
        {"eval-every", ARG_I64, &t->eval_every, "N", "steps between evaluations (0: only at the end)", NULL},
        {"eval-tokens", ARG_I64, &t->eval_tokens, "N", "validation tokens in the fixed window set", NULL},
        {"ckpt-every", ARG_I64, &t->ckpt_every, "N", "steps between checkpoints (0: only at the end)", NULL},
        {"ckpt-minutes", ARG_FLOAT, &ckpt_minutes, "X", "also checkpoint after this many minutes", NULL},
        {"stop-after", ARG_I64, &t->stop_after, "N", "stop with a checkpoint at this step (resume later)", NULL},
        {"log-every", ARG_I64, &t->log_every, "N", "steps between progress lines", NULL},
        {"resume", ARG_BOOL, &t->resume, NULL, "continue from --out/train.safetensors and its state", NULL},
        {"quiet", ARG_BOOL, &quiet, NULL, "no progress on stderr", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_SEED(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "SAR fine-tune (SPACE): continue training every weight of a base model with a mask token "
                        "added, half of the examples ending in k+1 masks that predict the tokens after the cut.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (t->batch < 1 || t->steps < 1 || t->warmup < 0 || t->eval_every < 0 || t->eval_tokens < 0 ||
        t->ckpt_every < 0 || t->stop_after < 0 || t->log_every < 0 || ckpt_minutes < 0)
        return cli_usage_error(prog, "--batch and --steps must be >= 1; counts must be >= 0");
    if (!(t->lr > 0) || t->min_lr < 0 || t->weight_decay < 0 || t->clip < 0)
        return cli_usage_error(prog, "--lr must be > 0; --min-lr, --wd, --clip >= 0");
    if (t->cfg.max_seq < 8 || t->cfg.max_seq > 65536) return cli_usage_error(prog, "--context must be in 8..65536");
    if (o.sar.k < 1 || o.sar.k > 15) return cli_usage_error(prog, "--k must be in 1..15");
    if (!(o.sar.prob >= 0 && o.sar.prob <= 1)) return cli_usage_error(prog, "--sar-prob must be in [0, 1]");
    t->seed = cm.seed;
    t->ckpt_seconds = 60.0 * ckpt_minutes;
    t->stop_flag = &g_stop;
    t->ud = (void *)prog;
    if (!quiet) {
        t->progress = on_progress;
        t->on_eval = on_eval;
        t->on_note = on_note;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    tsr_lm_train_result r;
    tsr_status st = tsr_space_tune(&o, &r);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (st.code) {
        const char *hint = "see --help";
        if (strstr(st.msg, "cannot resume")) hint = "resume with the flags of the original run, or drop --resume";
        else if (strstr(st.msg, o.base)) hint = "--model must be an HF directory with config.json, model.safetensors and tokenizer.json";
        else if (strstr(st.msg, o.out)) hint = "check that --out can be created and written";
        return cli_fail(st, hint);
    }
    if (cm.json) {
        printf("{\"steps\": %lld, \"finished\": %s, \"params\": %lld, \"last_loss\": %.6f, \"tokens_per_s\": %.1f",
               (long long)r.steps, r.finished ? "true" : "false", (long long)r.n_params, (double)r.last_loss,
               r.tokens_per_s);
        if (r.eval_first.step >= 0)
            printf(", \"base_val_bpb\": %.6f, \"base_val_loss\": %.6f", r.eval_first.val_bpb, r.eval_first.val_loss);
        if (r.eval.step >= 0)
            printf(", \"val_bpb\": %.6f, \"val_loss\": %.6f, \"eval_step\": %lld", r.eval.val_bpb, r.eval.val_loss,
                   (long long)r.eval.step);
        printf(", \"out\": ");
        cli_json_str(stdout, o.out);
        printf("}\n");
    } else {
        printf("%s at step %lld of %lld; %lld params; %.0f tokens/s\n", r.finished ? "finished" : "stopped",
               (long long)r.steps, (long long)t->steps, (long long)r.n_params, r.tokens_per_s);
        if (r.eval_first.step >= 0)
            printf("base model: val %.4f bits/byte\n", r.eval_first.val_bpb);
        if (r.eval.step >= 0)
            printf("SAR model:  val %.4f bits/byte at step %lld\n", r.eval.val_bpb, (long long)r.eval.step);
        if (r.finished) printf("model directory %s\n", o.out);
    }
    return r.finished || g_stop || t->stop_after ? CLI_OK : CLI_FAIL;
}

static const cli_verb k_verbs[] = {
    {"tune", "SAR fine-tune of a base code model (resumable)", cmd_tune},
    {NULL, NULL, NULL},
};

const cli_family cli_family_space = {"space", "SPACE: semi-autoregressive tuning + auto-correct decoding (lossless)",
                                     k_verbs};
