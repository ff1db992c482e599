/* tessera CLI: `tessera lm train`, the Llama-style decoder trained on a code
 * corpus with a byte-level BPE tokenizer (include/tessera/lm_train.h).
 * Progress and evaluations on stderr, the summary on stdout (JSON with
 * --json). SIGINT/SIGTERM stop at the next step with a checkpoint, so a
 * stopped run resumes exactly with --resume. */
#include "cli/train_flags.h"

#include "tessera/lm_train.h"

#include <signal.h>
#include <string.h>

int cli_lm_train(const char *prog, int argc, char **argv);
void cli_lm_train_report(tsr_lm_train_opts *o, cli_train *t, const char *prog);

#define TOK_HINT "train one first: tessera lm tokenizer-train --vocab 4096 --out tokenizer.json"

static void on_eval(const tsr_lm_train_eval *e, void *ud) {
    (void)ud;
    fprintf(stderr, "eval step %lld  val loss %.4f nats/token  %.4f bits/byte  (%lld tokens, %lld bytes)\n",
            (long long)e->step, e->val_loss, e->val_bpb, (long long)e->tokens, (long long)e->bytes);
}

static void on_note(const char *msg, void *ud) {
    fprintf(stderr, "%s: %s\n", (const char *)ud, msg);
}

/* evaluations and notes of a tsr_lm_train run on stderr (tessera lm
 * train, tessera space tune); progress lines come from cli_train */
void cli_lm_train_report(tsr_lm_train_opts *o, cli_train *t, const char *prog) {
    t->own_eval_lines = true;
    if (t->quiet) return;
    o->on_eval = on_eval;
    o->on_note = on_note;
    o->ud = (void *)prog;
}

int cli_lm_train(const char *prog, int argc, char **argv) {
    tsr_lm_train_opts o = tsr_lm_train_default_opts();
    cli_train t = cli_train_init(o.train, o.batch, CLI_TF_STEPS | CLI_TF_BATCH | CLI_TF_EVAL);
    bool untied = false;
    int vocab = 0;
    const arg_spec specs[] = {
        {"data", ARG_STR, &o.data_dir, "DIR", "corpus root (.py files)", NULL},
        {"val-list", ARG_STR, &o.val_list, "PATH", "held-out files (default data/python_val_files.txt; none: no validation)", NULL},
        {"tokenizer", ARG_MODEL, &o.tokenizer, "PATH", "tokenizer.json from 'tessera lm tokenizer-train' (required)", NULL},
        {"out", ARG_STR, &t.o.out, "PATH", "F32 checkpoint; .state/.bf16 siblings and token caches beside it", NULL},
        {"dim", ARG_INT, &o.cfg.dim, "N", "model width", NULL},
        {"layers", ARG_INT, &o.cfg.n_layers, "N", "decoder blocks", NULL},
        {"heads", ARG_INT, &o.cfg.n_heads, "N", "attention heads", NULL},
        {"kv-heads", ARG_INT, &o.cfg.n_kv_heads, "N", "key/value heads, grouped-query attention (default: --heads)", NULL},
        {"hidden", ARG_INT, &o.cfg.hidden_dim, "N", "SwiGLU hidden width", NULL},
        {"context", ARG_INT, &o.cfg.max_seq, "T", "tokens per training window", NULL},
        {"vocab", ARG_INT, &vocab, "N", "must equal the tokenizer's (default: taken from it)", NULL},
        {"untied", ARG_BOOL, &untied, NULL, "separate lm_head instead of the embedding", NULL},
        {"rope-theta", ARG_FLOAT, &o.cfg.rope_theta, "X", "RoPE base", NULL},
        {"eval-tokens", ARG_I64, &o.eval_tokens, "N", "validation tokens in the fixed window set", NULL},
        {"reschedule", ARG_BOOL, &t.o.reschedule, NULL, "with --resume: take a new --steps (the cosine schedule is re-spread; not bit-identical to any straight run)", NULL},
    };
    int rc = cli_train_parse(prog, "Train the Llama-style decoder on a code corpus (Python stdlib by default).", specs,
                             (int)(sizeof specs / sizeof specs[0]), &t, argc, argv);
    if (rc != CLI_OK) return rc;
    if (!o.tokenizer) return cli_usage_error(prog, "--tokenizer is required (" TOK_HINT ")");
    if (t.o.steps < 1) return cli_usage_error(prog, "--steps must be >= 1");
    if (o.eval_tokens < 0) return cli_usage_error(prog, "--eval-tokens must be >= 0");
    if (o.cfg.max_seq < 2 || o.cfg.max_seq > 65536) return cli_usage_error(prog, "--context must be in 2..65536");
    if (t.o.reschedule && !t.o.resume)
        return cli_usage_error(prog, "--reschedule needs --resume (it re-spreads a resumed run's schedule)");
    o.cfg.vocab = vocab;
    o.cfg.tied = !untied;
    o.batch = t.batch;
    cli_lm_train_report(&o, &t, prog);
    cli_train_begin(&t);
    o.train = t.o;
    tsr_lm_train_result r;
    tsr_status st = tsr_lm_train(&o, &r);
    cli_train_end(&t, &(tsr_train_result){.step = r.steps, .total = r.total, .interrupted = r.interrupted});
    if (st.code) {
        const char *hint = NULL;
        if (strstr(st.msg, o.tokenizer)) hint = TOK_HINT;
        else if (strstr(st.msg, o.data_dir)) hint = "pass --data DIR with .py files (Debian: libpython3.11-stdlib)";
        else if (strstr(st.msg, "python_val_files")) hint = "run from the repository root, or pass --val-list PATH (none: no validation)";
        return cli_fail(st, cli_train_hint(&t, st, hint ? hint : "see --help"));
    }
    const tsr_lm_train_times *tt = &r.times;
    if (t.cm.json) {
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
               tt->data, tt->forward, tt->backward, tt->optim, tt->eval, tt->ckpt, tt->total);
        cli_json_str(stdout, t.o.out);
        if (r.finished) {
            printf(", \"bf16\": ");
            cli_json_str(stdout, r.bf16_path);
        }
        printf("}\n");
    } else {
        printf("%s at step %lld of %lld; %lld params; %.0f tokens/s (%.1f GFLOP/s)\n",
               r.finished ? "finished" : "stopped", (long long)r.steps, (long long)t.o.steps,
               (long long)r.n_params, r.tokens_per_s, r.gflops);
        if (r.eval.step >= 0)
            printf("val loss %.4f nats/token, %.4f bits/byte at step %lld\n", r.eval.val_loss, r.eval.val_bpb,
                   (long long)r.eval.step);
        double step_t = tt->data + tt->forward + tt->backward + tt->optim;
        if (step_t > 0)
            printf("time: forward %.0f%%, backward %.0f%%, optimizer %.0f%%, data %.1f%% of %.1f s of steps; "
                   "eval %.1f s, checkpoints %.1f s\n",
                   100 * tt->forward / step_t, 100 * tt->backward / step_t, 100 * tt->optim / step_t,
                   100 * tt->data / step_t, step_t, tt->eval, tt->ckpt);
        printf("checkpoint %s%s%s\n", t.o.out, r.finished ? ", shipping copy " : "", r.finished ? r.bf16_path : "");
    }
    return r.finished || r.interrupted || t.o.stop_after ? CLI_OK : CLI_FAIL;
}
