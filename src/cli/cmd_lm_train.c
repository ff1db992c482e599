/* tessera CLI: `tessera lm train`, the Llama-style decoder trained on a code
 * corpus with a byte-level BPE tokenizer (include/tessera/lm_train.h).
 * Progress and evaluations on stderr, the summary on stdout (JSON with
 * --json). SIGINT/SIGTERM stop at the next step with a checkpoint, so a
 * stopped run resumes exactly with --resume. */
#include "cli/args.h"

#include "tessera/lm_train.h"

#include <signal.h>
#include <string.h>

int cli_lm_train(const char *prog, int argc, char **argv);
void cli_lm_train_report(tsr_lm_train_opts *o, const char *prog);

#define TOK_HINT "train one first: tessera lm tokenizer-train --vocab 4096 --out tokenizer.json"

static volatile int g_stop = 0;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void on_progress(const tsr_lm_train_progress *p, void *ud) {
    (void)ud;
    char eta[32];
    cli_fmt_eta(eta, sizeof eta, p->eta_s);
    fprintf(stderr, "step %lld/%lld  loss %.4f  lr %.2e  gnorm %.3f  %.0f tok/s  ETA %s\n",
            (long long)p->step, (long long)p->total_steps, (double)p->loss, (double)p->lr,
            (double)p->grad_norm, p->tokens_per_s, eta);
}

static void on_eval(const tsr_lm_train_eval *e, void *ud) {
    (void)ud;
    fprintf(stderr, "eval step %lld  val loss %.4f nats/token  %.4f bits/byte  (%lld tokens, %lld bytes)\n",
            (long long)e->step, e->val_loss, e->val_bpb, (long long)e->tokens, (long long)e->bytes);
}

static void on_note(const char *msg, void *ud) {
    fprintf(stderr, "%s: %s\n", (const char *)ud, msg);
}

/* progress, evaluations and notes of a tsr_lm_train run on stderr
 * (tessera lm train, tessera space tune) */
void cli_lm_train_report(tsr_lm_train_opts *o, const char *prog) {
    o->progress = on_progress;
    o->on_eval = on_eval;
    o->on_note = on_note;
    o->ud = (void *)prog;
}

int cli_lm_train(const char *prog, int argc, char **argv) {
    tsr_lm_train_opts o = tsr_lm_train_default_opts();
    cli_common cm = {0, o.seed, false};
    bool untied = false, quiet = false;
    int vocab = 0;
    float ckpt_minutes = 0;
    const arg_spec specs[] = {
        {"data", ARG_STR, &o.data_dir, "DIR", "corpus root (.py files)", NULL},
        {"val-list", ARG_STR, &o.val_list, "PATH", "held-out files (default data/python_val_files.txt)", NULL},
        {"tokenizer", ARG_STR, &o.tokenizer, "PATH", "tokenizer.json from 'tessera lm tokenizer-train' (required)", NULL},
        {"out", ARG_STR, &o.out, "PATH", "F32 checkpoint; .state/.bf16 siblings and token caches beside it", NULL},
        {"dim", ARG_INT, &o.cfg.dim, "N", "model width", NULL},
        {"layers", ARG_INT, &o.cfg.n_layers, "N", "decoder blocks", NULL},
        {"heads", ARG_INT, &o.cfg.n_heads, "N", "attention heads", NULL},
        {"kv-heads", ARG_INT, &o.cfg.n_kv_heads, "N", "key/value heads, grouped-query attention (default: --heads)", NULL},
        {"hidden", ARG_INT, &o.cfg.hidden_dim, "N", "SwiGLU hidden width", NULL},
        {"context", ARG_INT, &o.cfg.max_seq, "T", "tokens per training window", NULL},
        {"vocab", ARG_INT, &vocab, "N", "must equal the tokenizer's (default: taken from it)", NULL},
        {"untied", ARG_BOOL, &untied, NULL, "separate lm_head instead of the embedding", NULL},
        {"rope-theta", ARG_FLOAT, &o.cfg.rope_theta, "X", "RoPE base", NULL},
        {"batch", ARG_INT, &o.batch, "B", "windows per step", NULL},
        {"steps", ARG_I64, &o.steps, "N", "optimizer steps in all", NULL},
        {"lr", ARG_FLOAT, &o.lr, "X", "peak learning rate", NULL},
        {"warmup", ARG_I64, &o.warmup, "N", "linear warmup steps", NULL},
        {"min-lr", ARG_FLOAT, &o.min_lr, "X", "cosine floor", NULL},
        {"wd", ARG_FLOAT, &o.weight_decay, "X", "AdamW weight decay (norm weights: none)", NULL},
        {"clip", ARG_FLOAT, &o.clip, "X", "global grad-norm clip (0: off)", NULL},
        {"eval-every", ARG_I64, &o.eval_every, "N", "steps between evaluations (0: only at the end)", NULL},
        {"eval-tokens", ARG_I64, &o.eval_tokens, "N", "validation tokens in the fixed window set", NULL},
        {"ckpt-every", ARG_I64, &o.ckpt_every, "N", "steps between checkpoints (0: only at the end)", NULL},
        {"ckpt-minutes", ARG_FLOAT, &ckpt_minutes, "X", "also checkpoint after this many minutes", NULL},
        {"stop-after", ARG_I64, &o.stop_after, "N", "stop with a checkpoint at this step (resume later)", NULL},
        {"log-every", ARG_I64, &o.log_every, "N", "steps between progress lines", NULL},
        {"resume", ARG_BOOL, &o.resume, NULL, "continue from --out and its .state file", NULL},
        {"reschedule", ARG_BOOL, &o.reschedule, NULL, "with --resume: take a new --steps (the cosine schedule is re-spread; not bit-identical to any straight run)", NULL},
        {"quiet", ARG_BOOL, &quiet, NULL, "no progress on stderr", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_SEED(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Train the Llama-style decoder on a code corpus (Python stdlib by default).", specs,
                        (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (!o.tokenizer) return cli_usage_error(prog, "--tokenizer is required (" TOK_HINT ")");
    if (o.batch < 1 || o.steps < 1 || o.warmup < 0 || o.eval_every < 0 || o.eval_tokens < 0 ||
        o.ckpt_every < 0 || o.stop_after < 0 || o.log_every < 0 || ckpt_minutes < 0)
        return cli_usage_error(prog, "--batch and --steps must be >= 1; counts must be >= 0");
    if (!(o.lr > 0) || o.min_lr < 0 || o.weight_decay < 0 || o.clip < 0)
        return cli_usage_error(prog, "--lr must be > 0; --min-lr, --wd, --clip >= 0");
    if (o.cfg.max_seq < 2 || o.cfg.max_seq > 65536) return cli_usage_error(prog, "--context must be in 2..65536");
    o.cfg.vocab = vocab;
    o.cfg.tied = !untied;
    o.seed = cm.seed;
    o.ckpt_seconds = 60.0 * ckpt_minutes;
    o.stop_flag = &g_stop;
    o.ud = (void *)prog;
    if (!quiet) cli_lm_train_report(&o, prog);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    tsr_lm_train_result r;
    tsr_status st = tsr_lm_train(&o, &r);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (st.code) {
        const char *hint = "see --help";
        if (strstr(st.msg, o.tokenizer)) hint = TOK_HINT;
        else if (strstr(st.msg, "cannot resume")) hint = "resume with the flags of the original run, or drop --resume";
        else if (strstr(st.msg, o.data_dir)) hint = "pass --data DIR with .py files (Debian: libpython3.11-stdlib)";
        else if (strstr(st.msg, "python_val_files")) hint = "run from the repository root or pass --val-list";
        else if (strstr(st.msg, o.out)) hint = "check that the directory of --out exists and is writable";
        return cli_fail(st, hint);
    }
    const tsr_lm_train_times *t = &r.times;
    if (cm.json) {
        printf("{\"steps\": %lld, \"finished\": %s, \"params\": %lld, \"last_loss\": %.6f, "
               "\"tokens_per_s\": %.1f, \"gflops\": %.2f, \"train_tokens\": %llu, \"val_tokens\": %llu",
               (long long)r.steps, r.finished ? "true" : "false", (long long)r.n_params, (double)r.last_loss,
               r.tokens_per_s, r.gflops, (unsigned long long)r.train_tokens, (unsigned long long)r.val_tokens);
        if (r.eval.step >= 0)
            printf(", \"eval\": {\"step\": %lld, \"val_loss\": %.6f, \"val_bpb\": %.6f, \"tokens\": %lld, \"bytes\": %lld}",
                   (long long)r.eval.step, r.eval.val_loss, r.eval.val_bpb, (long long)r.eval.tokens,
                   (long long)r.eval.bytes);
        printf(", \"seconds\": {\"data\": %.3f, \"forward\": %.3f, \"backward\": %.3f, \"optim\": %.3f, "
               "\"eval\": %.3f, \"ckpt\": %.3f, \"total\": %.3f}, \"out\": ",
               t->data, t->forward, t->backward, t->optim, t->eval, t->ckpt, t->total);
        cli_json_str(stdout, o.out);
        if (r.finished) {
            printf(", \"bf16\": ");
            cli_json_str(stdout, r.bf16_path);
        }
        printf("}\n");
    } else {
        printf("%s at step %lld of %lld; %lld params; %.0f tokens/s (%.1f GFLOP/s)\n",
               r.finished ? "finished" : "stopped", (long long)r.steps, (long long)o.steps,
               (long long)r.n_params, r.tokens_per_s, r.gflops);
        if (r.eval.step >= 0)
            printf("val loss %.4f nats/token, %.4f bits/byte at step %lld\n", r.eval.val_loss, r.eval.val_bpb,
                   (long long)r.eval.step);
        double step_t = t->data + t->forward + t->backward + t->optim;
        if (step_t > 0)
            printf("time: forward %.0f%%, backward %.0f%%, optimizer %.0f%%, data %.1f%% of %.1f s of steps; "
                   "eval %.1f s, checkpoints %.1f s\n",
                   100 * t->forward / step_t, 100 * t->backward / step_t, 100 * t->optim / step_t,
                   100 * t->data / step_t, step_t, t->eval, t->ckpt);
        printf("checkpoint %s%s%s\n", o.out, r.finished ? ", shipping copy " : "", r.finished ? r.bf16_path : "");
    }
    return r.finished || g_stop || o.stop_after ? CLI_OK : CLI_FAIL;
}
