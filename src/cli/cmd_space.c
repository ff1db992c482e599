/* tessera CLI: `tessera space tune|generate|bench` — SPACE (src/models/space):
 * semi-autoregressive fine-tuning of a code model and auto-correct
 * decoding, exactly lossless against plain decoding, with the prompt-lookup
 * n-gram drafter as the baseline. Results on stdout (JSON with --json),
 * progress on stderr. */
#include "cli/train_flags.h"
#include "tessera/cpu.h"

#include "tessera/bpe.h"
#include "tessera/decode.h"
#include "tessera/fileio.h"
#include "tessera/space.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


#define SPACE_DEFAULT_MODEL "models/pycode-space"
#define MODEL_HINT "--model must be an SAR model directory from 'tessera space tune' (shipped: " SPACE_DEFAULT_MODEL ")"

/* cmd_lm_train.c */
void cli_lm_train_report(tsr_lm_train_opts *o, cli_train *t, const char *prog);

/* ------------------------------------------------------------ tune */

/* whether an error message starts with path (as "path: ..." or "path/...");
 * a substring test would match a short --out such as "o" anywhere */
static bool names_path(const char *msg, const char *path) {
    size_t n = path ? strlen(path) : 0;
    return n && strncmp(msg, path, n) == 0 && (msg[n] == ':' || msg[n] == '/');
}

static int cmd_tune(const char *prog, int argc, char **argv) {
    tsr_space_tune_opts o = tsr_space_tune_default_opts();
    tsr_lm_train_opts *l = &o.lm;
    cli_train t = cli_train_init(l->train, l->batch, CLI_TF_STEPS | CLI_TF_BATCH | CLI_TF_EVAL);
    const arg_spec specs[] = {
        {"model", ARG_MODEL, &o.base, "DIR", "base model: HF directory with tokenizer.json (default models/pycode)", NULL},
        {"out", ARG_STR, &o.out, "DIR", "SAR model directory (created; default runs/space)", NULL},
        {"k", ARG_INT, &o.sar.k, "N", "masks with a target per SAR example (paper: 5)", NULL},
        {"sar-prob", ARG_FLOAT, &o.sar.prob, "P", "share of SAR examples (paper: 0.5)", NULL},
        {"min-prefix", ARG_INT, &o.sar.min_prefix, "N", "shortest prompt before the masks", NULL},
        {"data", ARG_STR, &l->data_dir, "DIR", "corpus root (.py files)", NULL},
        {"val-list", ARG_STR, &l->val_list, "PATH", "held-out files (default data/python_val_files.txt; none: no validation)", NULL},
        {"context", ARG_INT, &l->cfg.max_seq, "T", "tokens per training window (the model's new context)", NULL},
        {"eval-tokens", ARG_I64, &l->eval_tokens, "N", "validation tokens in the fixed window set", NULL},
    };
    int rc = cli_train_parse(prog,
                             "SAR fine-tune (SPACE): continue training every weight of a base model with a mask token "
                             "added, half of the examples ending in k+1 masks that predict the tokens after the cut. "
                             "--resume continues from --out/train.safetensors and its state.",
                             specs, (int)(sizeof specs / sizeof specs[0]), &t, argc, argv);
    if (rc != CLI_OK) return rc;
    if (t.o.steps < 1) return cli_usage_error(prog, "--steps must be >= 1");
    if (l->eval_tokens < 0) return cli_usage_error(prog, "--eval-tokens must be >= 0");
    if (l->cfg.max_seq < 8 || l->cfg.max_seq > 65536) return cli_usage_error(prog, "--context must be in 8..65536");
    if (o.sar.k < 1 || o.sar.k > 15) return cli_usage_error(prog, "--k must be in 1..15");
    if (!(o.sar.prob >= 0 && o.sar.prob <= 1)) return cli_usage_error(prog, "--sar-prob must be in [0, 1]");
    if ((rc = cli_check_int(prog, "min-prefix", o.sar.min_prefix, 1, l->cfg.max_seq - o.sar.k - 1)) != CLI_OK)
        return rc;
    l->batch = t.batch;
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s/train.safetensors", o.out);
    t.o.out = ckpt;
    if ((rc = cli_train_check_log(&t)) != CLI_OK) return rc;
    t.o.out = NULL; /* the checkpoint is --out/train.safetensors */
    cli_lm_train_report(l, &t, prog);
    cli_train_begin(&t);
    l->train = t.o;
    tsr_lm_train_result r;
    tsr_status st = tsr_space_tune(&o, &r);
    cli_train_end(&t, &(tsr_train_result){.step = r.steps, .total = r.total, .interrupted = r.interrupted});
    if (st.code) {
        const char *hint = "see --help";
        if (names_path(st.msg, o.base)) hint = "--model must be an HF directory with config.json, model.safetensors and tokenizer.json";
        else if (names_path(st.msg, o.out)) hint = "check that --out can be created and written";
        else if (names_path(st.msg, l->data_dir)) hint = "pass --data DIR with .py files (Debian: libpython3.11-stdlib)";
        return cli_fail(st, cli_train_hint(&t, st, hint));
    }
    if (t.cm.json) {
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
               (long long)r.steps, (long long)t.o.steps, (long long)r.n_params, r.tokens_per_s);
        if (r.eval_first.step >= 0)
            printf("base model: val %.4f bits/byte\n", r.eval_first.val_bpb);
        if (r.eval.step >= 0)
            printf("SAR model:  val %.4f bits/byte at step %lld\n", r.eval.val_bpb, (long long)r.eval.step);
        if (r.finished) printf("model directory %s\n", o.out);
    }
    return r.finished || r.interrupted || t.o.stop_after ? CLI_OK : CLI_FAIL;
}


/* ------------------------------------------------------------ shared */

typedef struct {
    tsr_lm_model m;
    tsr_bpe bpe;
    int mask_id, bos, eos;
} space_model;

static void space_model_free(space_model *sm) {
    tsr_lm_model_free(&sm->m);
    tsr_bpe_free(&sm->bpe);
}

/* model + tokenizer of an SAR directory (the lm loaders' rules) */
static int space_model_load(const char *prog, const char **model, char *buf, size_t nbuf, space_model *sm) {
    memset(sm, 0, sizeof *sm);
    if (!*model) {
        if (!cli_find_shipped(SPACE_DEFAULT_MODEL, buf, nbuf))
            return cli_usage_error(prog, "--model is required (the shipped " SPACE_DEFAULT_MODEL " was not found)");
        *model = buf;
    }
    char tp[4200];
    snprintf(tp, sizeof tp, "%s/tokenizer.json", *model);
    tsr_status st = tsr_lm_load(&sm->m, *model, -1, 0);
    if (!st.code) st = tsr_bpe_load(&sm->bpe, tp);
    if (st.code) {
        space_model_free(sm);
        return cli_fail(st, MODEL_HINT);
    }
    sm->mask_id = tsr_bpe_special_id(&sm->bpe, TSR_SPACE_MASK);
    tsr_lm_bpe_specials(&sm->bpe, &sm->bos, &sm->eos);
    if (sm->mask_id < 0)
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: not an SAR model: its tokenizer has no %s token", *model, TSR_SPACE_MASK);
    else if (sm->bpe.vocab_size != sm->m.cfg.vocab_size)
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: the tokenizer has %d tokens but the model's vocabulary is %d", tp,
                        sm->bpe.vocab_size, sm->m.cfg.vocab_size);
    if (st.code) {
        space_model_free(sm);
        return cli_fail(st, MODEL_HINT);
    }
    return CLI_OK;
}

/* ------------------------------------------------------------ generate */

static int cmd_generate(const char *prog, int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *prompt_file = NULL, *truncate = NULL, *draft = NULL;
    int max_tokens = 256, k = 0, k_max = 4, top_k = 0;
    float temperature = 0.0f, top_p = 0.0f;
    bool stats = false;
    cli_common cm = {0, 1, false};
    const arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "DIR", "SAR model directory (default: the shipped " SPACE_DEFAULT_MODEL ")", NULL},
        {"prompt", ARG_TEXT, &prompt, "TEXT", "text to continue (may be empty; default: empty)", NULL},
        CLI_PROMPT_FILE_SPEC(prompt_file),
        CLI_TRUNCATE_SPEC(truncate),
        {"max-tokens", ARG_INT, &max_tokens, "N", "new tokens at most (the context also bounds it)", NULL},
        {"temperature", ARG_FLOAT, &temperature, "X", "0: greedy; > 0: exact speculative sampling", NULL},
        {"top-k", ARG_INT, &top_k, "K", "keep the K most likely tokens (0: off)", NULL},
        {"top-p", ARG_FLOAT, &top_p, "P", "nucleus mass (0 or 1: off)", NULL},
        {"k", ARG_INT, &k, "N", "candidates per step and masks per group (0: auto from the cost curve and acceptance)", NULL},
        {"k-max", ARG_INT, &k_max, "N", "largest k auto may pick", NULL},
        {"draft", ARG_STR, &draft, "KIND", "mask (SPACE, default) or ngram (prompt lookup, greedy only)", NULL},
        {"stats", ARG_BOOL, &stats, NULL, "print speed and acceptance on stderr", NULL},
        CLI_COMMON_SEED(&cm),
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Continue a prompt with SPACE auto-correct decoding (the same text as plain decoding).",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "max-tokens", max_tokens, 1, INT32_MAX)) != CLI_OK ||
        (rc = cli_check_int(prog, "k", k, 0, 15)) != CLI_OK || (rc = cli_check_int(prog, "k-max", k_max, 1, 15)) != CLI_OK ||
        (rc = cli_check_float(prog, "temperature", temperature, 0, INFINITY)) != CLI_OK ||
        (rc = cli_check_int(prog, "top-k", top_k, 0, INT32_MAX)) != CLI_OK ||
        (rc = cli_check_float(prog, "top-p", top_p, 0, 1)) != CLI_OK)
        return rc;
    bool keep_last;
    if ((rc = cli_parse_truncate(prog, truncate, &keep_last)) != CLI_OK) return rc;
    bool ngram = false;
    if (draft && strcmp(draft, "ngram") == 0) ngram = true;
    else if (draft && strcmp(draft, "mask") != 0) return cli_usage_error(prog, "--draft must be mask or ngram");
    if (ngram && temperature != 0.0f) return cli_usage_error(prog, "--draft ngram needs --temperature 0");
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    tsr_step_team_tuning(true); /* one-token steps may run on fewer threads when a busy core slows the team */
    char *prompt_text;
    if ((rc = cli_read_prompt(prog, prompt, prompt_file, false, &prompt_text)) != CLI_OK) return rc;
    char mbuf[4096];
    space_model sm;
    if ((rc = space_model_load(prog, &model, mbuf, sizeof mbuf, &sm)) != CLI_OK) {
        free(prompt_text);
        return rc;
    }
    int np = 0;
    int *ptok = tsr_lm_bpe_prompt(&sm.bpe, prompt_text, &np);
    tsr_status st = tsr_ok();
    if (ptok && np > 0) st = tsr_prompt_fit(ptok, &np, sm.m.cfg.seq_len, keep_last, max_tokens);
    if (st.code) {
        free(ptok);
        free(prompt_text);
        space_model_free(&sm);
        return cli_fail(st, CLI_PROMPT_HINT);
    }
    /* the context bounds the completion, as in lm and bita generate */
    if (np > 0 && max_tokens > sm.m.cfg.seq_len - np + 1) max_tokens = sm.m.cfg.seq_len - np + 1;
    int *out = malloc(sizeof(int) * ((size_t)max_tokens + 1));
    int32_t *ids = malloc(sizeof(int32_t) * ((size_t)max_tokens + 1));
    char *text = malloc(64 * ((size_t)max_tokens + 1));
    int n_out = 0;
    tsr_space_stats ss;
    memset(&ss, 0, sizeof ss);
    if (!ptok || !out || !ids || !text) st = tsr_errorf(TSR_ERR_NOMEM, "out of memory");
    else if (np < 1) st = tsr_errorf(TSR_ERR_ARG, "an empty prompt needs a BOS special token in the tokenizer");
    else if (ngram) {
        tsr_decode_ngram_opts no;
        tsr_decode_ngram_defaults(&no);
        no.stop_token = sm.eos;
        st = tsr_decode_ngram_generate(&sm.m, ptok, np, max_tokens, &no, out, &n_out, &ss.d);
    } else {
        tsr_space_opts so;
        tsr_space_default_opts(&so);
        so.k = k;
        so.k_max = k_max;
        so.mask_id = sm.mask_id;
        so.stop_token = sm.eos;
        so.sampler.temperature = temperature;
        so.sampler.top_k = top_k;
        so.sampler.top_p = top_p;
        so.sampler.seed = cm.seed;
        st = tsr_space_generate(&sm.m, ptok, np, max_tokens, &so, out, &n_out, &ss);
    }
    if (!st.code) {
        int n_txt = n_out;
        if (n_txt > 0 && out[n_txt - 1] == sm.eos) n_txt--; /* specials are not printed */
        for (int i = 0; i < n_txt; i++) ids[i] = out[i];
        size_t tl = tsr_bpe_decode(&sm.bpe, ids, (size_t)n_txt, text, 64 * ((size_t)max_tokens + 1));
        if (cm.json) {
            text[tl < 64 * ((size_t)max_tokens + 1) ? tl : 0] = 0;
            printf("{\"prompt_tokens\": %d, \"new_tokens\": %d, \"forwards\": %d, \"accepted\": %d, "
                   "\"tokens_per_step\": %.4f, \"k\": %d, \"decode_s\": %.6f, \"completion\": ",
                   np, n_out, ss.d.forwards, ss.d.accepted,
                   ss.d.forwards ? (double)(n_out - 1) / ss.d.forwards : 0.0, ss.k_used, ss.d.decode_s);
            cli_json_str(stdout, text);
            printf("}\n");
        } else {
            /* the prompt as decoded from its (possibly truncated) tokens */
            if (keep_last) {
                int32_t *pids = malloc(sizeof(int32_t) * (size_t)np);
                char *ptext = malloc(64 * (size_t)np + 1);
                int skip = np > 0 && ptok[0] == sm.bos ? 1 : 0;
                if (pids && ptext) {
                    for (int i = skip; i < np; i++) pids[i - skip] = ptok[i];
                    size_t pl = tsr_bpe_decode(&sm.bpe, pids, (size_t)(np - skip), ptext, 64 * (size_t)np + 1);
                    fwrite(ptext, 1, pl, stdout);
                }
                free(pids);
                free(ptext);
            } else {
                fputs(prompt_text, stdout);
            }
            fwrite(text, 1, tl, stdout);
            fputc('\n', stdout);
        }
        if (stats)
            fprintf(stderr, "%d new tokens in %d forwards (%.2f tokens/step), %d drafts accepted of %d; "
                            "%.1f tok/s; last k %d\n",
                    n_out, ss.d.forwards, ss.d.forwards ? (double)(n_out - 1) / ss.d.forwards : 0.0,
                    ss.d.accepted, ss.d.drafted, ss.d.decode_s > 0 ? (n_out - 1) / ss.d.decode_s : 0.0, ss.k_used);
    }
    free(ptok);
    free(out);
    free(ids);
    free(text);
    free(prompt_text);
    space_model_free(&sm);
    if (st.code) return cli_fail(st, "see --help");
    return CLI_OK;
}

/* ------------------------------------------------------------ bench */

typedef struct {
    double wall;
    int64_t tokens, forwards;
    int identical;
} run_sum;

static int cmd_bench(const char *prog, int argc, char **argv) {
    const char *model = NULL, *prompts_path = NULL, *truncate = NULL;
    int max_tokens = 256, k = 0, k_max = 4, limit = 0;
    cli_common cm = {0, 1, false};
    const arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "DIR", "SAR model directory (default: the shipped " SPACE_DEFAULT_MODEL ")", NULL},
        {"prompts", ARG_STR, &prompts_path, "FILE", "JSONL, one object with a \"prompt\" field per line (required)", NULL},
        {"max-tokens", ARG_INT, &max_tokens, "N", "new tokens per prompt", NULL},
        {"k", ARG_INT, &k, "N", "candidates per step (0: auto)", NULL},
        {"k-max", ARG_INT, &k_max, "N", "largest k auto may pick", NULL},
        {"limit", ARG_INT, &limit, "N", "only the first N prompts (0: all)", NULL},
        CLI_TRUNCATE_SPEC(truncate),
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Greedy decoding of every prompt three ways in one run: plain (one token per forward), "
                        "SPACE and prompt-lookup n-gram drafts; token identity and wall-time speed-ups.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!prompts_path) return cli_usage_error(prog, "--prompts is required");
    /* the shipped prompt set from any directory, as bita bench finds it */
    char pbuf[4096];
    struct stat psb;
    if (strcmp(prompts_path, "bench/prompts_pyval.jsonl") == 0 && stat(prompts_path, &psb) != 0)
        prompts_path = tsr_find_shipped_or(prompts_path, pbuf, sizeof pbuf);
    if ((rc = cli_check_int(prog, "max-tokens", max_tokens, 1, INT32_MAX)) != CLI_OK ||
        (rc = cli_check_int(prog, "limit", limit, 0, INT32_MAX)) != CLI_OK ||
        (rc = cli_check_int(prog, "k", k, 0, 15)) != CLI_OK || (rc = cli_check_int(prog, "k-max", k_max, 1, 15)) != CLI_OK)
        return rc;
    bool keep_last;
    if ((rc = cli_parse_truncate(prog, truncate, &keep_last)) != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    char **prompts;
    int np_read, np_all;
    tsr_status st = cli_read_jsonl_field(prompts_path, "prompt", &prompts, &np_read);
    if (st.code) return cli_fail(st, "each line must be a JSON object with a \"prompt\" string");
    np_all = limit > 0 && limit < np_read ? limit : np_read;
    char mbuf[4096];
    space_model sm;
    if ((rc = space_model_load(prog, &model, mbuf, sizeof mbuf, &sm)) != CLI_OK) {
        cli_free_strings(prompts, np_read);
        return rc;
    }
    /* the cost curve once, for auto k and for the report */
    const int cost_n = 40;
    double cost[41];
    st = tsr_decode_cost_curve(&sm.m, 128 < sm.m.cfg.seq_len - cost_n ? 128 : 1, cost_n, cost);
    if (max_tokens > sm.m.cfg.seq_len) max_tokens = sm.m.cfg.seq_len; /* the context bounds it */
    int *o_plain = malloc(sizeof(int) * ((size_t)max_tokens + 1));
    int *o_sp = malloc(sizeof(int) * ((size_t)max_tokens + 1));
    int *o_ng = malloc(sizeof(int) * ((size_t)max_tokens + 1));
    TSR_ASSERT(o_plain && o_sp && o_ng);
    run_sum rp = {0}, rs = {0}, rn = {0};
    int64_t acc_at[16] = {0}, off_at[16] = {0};
    int64_t k_hist[16] = {0};
    int min_new = max_tokens + 1;
    for (int i = 0; i < np_all && !st.code; i++) {
        int np = 0;
        int *ptok = tsr_lm_bpe_prompt(&sm.bpe, prompts[i], &np);
        TSR_ASSERT(ptok);
        st = tsr_prompt_fit(ptok, &np, sm.m.cfg.seq_len, keep_last, max_tokens);
        if (st.code) {
            free(ptok);
            st = tsr_errorf(st.code, "%s: prompt %d: %s", prompts_path, i + 1, st.msg);
            break;
        }
        int n_p = 0, n_s = 0, n_n = 0;
        tsr_decode_stats dp, dn;
        tsr_space_stats ss;
        tsr_space_opts so;
        tsr_space_default_opts(&so);
        so.k = k;
        so.k_max = k_max;
        so.mask_id = sm.mask_id;
        so.stop_token = sm.eos;
        so.cost_ms = cost;
        so.cost_n = cost_n;
        tsr_decode_ngram_opts no;
        tsr_decode_ngram_defaults(&no);
        no.stop_token = sm.eos;
        double t0 = tsr_time();
        st = tsr_decode_greedy_generate(&sm.m, ptok, np, max_tokens, sm.eos, 0, o_plain, &n_p, &dp);
        double t1 = tsr_time();
        if (!st.code) st = tsr_space_generate(&sm.m, ptok, np, max_tokens, &so, o_sp, &n_s, &ss);
        double t2 = tsr_time();
        if (!st.code) st = tsr_decode_ngram_generate(&sm.m, ptok, np, max_tokens, &no, o_ng, &n_n, &dn);
        double t3 = tsr_time();
        free(ptok);
        if (st.code) break;
        rp.wall += t1 - t0, rs.wall += t2 - t1, rn.wall += t3 - t2;
        rp.tokens += n_p, rs.tokens += n_s, rn.tokens += n_n;
        if (n_p < min_new) min_new = n_p;
        rp.forwards += dp.forwards, rs.forwards += ss.d.forwards, rn.forwards += dn.forwards;
        bool same_s = n_s == n_p && memcmp(o_sp, o_plain, sizeof(int) * (size_t)n_p) == 0;
        bool same_n = n_n == n_p && memcmp(o_ng, o_plain, sizeof(int) * (size_t)n_p) == 0;
        rs.identical += same_s, rn.identical += same_n, rp.identical++;
        for (int j = 0; j < 16; j++) acc_at[j] += ss.accepted_at[j], off_at[j] += ss.offered_at[j];
        if (ss.k_used >= 0 && ss.k_used < 16) k_hist[ss.k_used]++;
        if (!cm.json)
            fprintf(stderr, "prompt %d/%d: %d tokens; SPACE %s %.2f tok/step, n-gram %s %.2f tok/step; speed-ups %.2fx / %.2fx\n",
                    i + 1, np_all, n_p, same_s ? "identical" : "DIFFERS",
                    ss.d.forwards ? (double)(n_s - 1) / ss.d.forwards : 0.0, same_n ? "identical" : "DIFFERS",
                    dn.forwards ? (double)(n_n - 1) / dn.forwards : 0.0, (t1 - t0) / (t2 - t1), (t1 - t0) / (t3 - t2));
    }
    if (!st.code) {
        const int n = np_all;
        double tps_s = rs.forwards ? (double)(rs.tokens - n) / (double)rs.forwards : 0.0;
        double tps_n = rn.forwards ? (double)(rn.tokens - n) / (double)rn.forwards : 0.0;
        printf("{\"bench\": \"space\", \"model\": ");
        cli_json_str(stdout, model);
        printf(", \"kernels\": \"%s\"", tsr_cpu_level_name(tsr_cpu_level()));
        printf(", \"threads\": %d, \"prompts\": %d, \"max_tokens\": %d, \"identical\": %d, \"tokens_per_step\": %.4f, "
               "\"speedup\": %.4f, \"ngram\": {\"identical\": %d, \"tokens_per_step\": %.4f, \"speedup\": %.4f}, "
               "\"plain\": {\"tokens\": %lld, \"min_new_tokens\": %d, \"seconds\": %.4f, \"tokens_per_s\": %.1f}, "
               "\"space_seconds\": %.4f, \"ngram_seconds\": %.4f, \"k\": \"%s\", \"acceptance_at\": [",
               tsr_threads_get(), n, max_tokens, rs.identical, tps_s, rp.wall / rs.wall, rn.identical, tps_n,
               rp.wall / rn.wall, (long long)rp.tokens, min_new, rp.wall, rp.wall > 0 ? rp.tokens / rp.wall : 0.0, rs.wall,
               rn.wall, k ? "fixed" : "auto");
        for (int j = 0; j < 16 && off_at[j] > 0; j++)
            printf("%s%.4f", j ? ", " : "", (double)acc_at[j] / (double)off_at[j]);
        printf("], \"final_k_counts\": {");
        bool first = true;
        for (int j = 0; j < 16; j++)
            if (k_hist[j]) {
                printf("%s\"%d\": %lld", first ? "" : ", ", j, (long long)k_hist[j]);
                first = false;
            }
        printf("}, \"batch_cost\": [");
        for (int j = 1; j <= cost_n; j++) printf("%s%.3f", j > 1 ? ", " : "", cost[j] / cost[1]);
        printf("], \"batch_ms_n1\": %.4f}\n", cost[1]);
    }
    free(o_plain);
    free(o_sp);
    free(o_ng);
    cli_free_strings(prompts, np_read);
    space_model_free(&sm);
    if (st.code) return cli_fail(st, strstr(st.msg, "prompt tokens") ? CLI_PROMPT_HINT : "see --help");
    return CLI_OK;
}

static const cli_verb k_verbs[] = {
    {"tune", "SAR fine-tune of a base code model (resumable)", cmd_tune},
    {"generate", "continue a prompt with auto-correct decoding (lossless)", cmd_generate},
    {"bench", "plain vs SPACE vs n-gram greedy decoding on a JSONL prompt set: identity and speed-up", cmd_bench},
    {NULL, NULL, NULL},
};

const cli_family cli_family_space = {"space", "SPACE: semi-autoregressive tuning + auto-correct decoding (lossless)",
                                     k_verbs};
