/* tessera bita: BiTA adapters for a frozen code lm (`tessera bita tune`,
 * `generate`, `bench`). tune trains the mask embeddings and prompt K/V on
 * self-distilled data and checks the base weights' checksum before and
 * after; generate decodes with draft trees (greedy output identical to
 * `tessera lm generate --temperature 0`); bench times plain greedy, BiTA
 * and the prompt-lookup baseline on a JSONL prompt file in one run. */
#include "cli/train_flags.h"
#include "tessera/fileio.h"
#include "tessera/cpu.h"
#include "tessera/bita.h"
#include "tessera/bpe.h"
#include "tessera/gguf.h"
#include "tessera/decode.h"
#include "tessera/lm.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_MODEL "models/pycode"
#define DEFAULT_ADAPTER "models/bita_pycode.safetensors"

static int cmd_tune(const char *prog, int argc, char **argv) {
    tsr_bita_tune_opts o;
    tsr_bita_tune_defaults(&o);
    cli_train t = cli_train_init(o.train, o.batch, CLI_TF_STEPS | CLI_TF_BATCH);
    const char *model = o.model, *data = o.data_dir, *val = NULL;
    arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "PATH", "frozen base model (default: " DEFAULT_MODEL ")", NULL},
        {"out", ARG_STR, &t.o.out, "PATH", "adapter file to write (required), e.g. runs/bita.safetensors", NULL},
        {"data-dir", ARG_STR, &data, "DIR", "code corpus root (default: /usr/lib/python3.11)", NULL},
        {"val-list", ARG_STR, &val, "PATH", "held-out files (default: data/python_val_files.txt; none: no held-out files)", NULL},
        {"k", ARG_INT, &o.k, "K", "mask tokens = draft depth (default 4)", NULL},
        {"prompt-tokens", ARG_INT, &o.n_prefix, "P", "prompt K/V tokens per layer (default 16)", NULL},
        {"groups", ARG_INT, &o.groups, "G", "mask groups per example (default 8)", NULL},
        {"examples", ARG_INT, &o.examples, "N", "self-distilled training examples (default 2400)", NULL},
        {"eval-examples", ARG_INT, &o.eval_examples, "N", "held-back examples for the acceptance table (default 100)", NULL},
        {"prompt-min", ARG_INT, &o.prompt_min, "N", "shortest prompt window in tokens (default 16)", NULL},
        {"prompt-max", ARG_INT, &o.prompt_max, "N", "longest prompt window (default 64)", NULL},
        {"response", ARG_INT, &o.response, "N", "greedy response tokens per example (default 96)", NULL},
    };
    int rc = cli_train_parse(prog, "Tune a BiTA adapter (mask embeddings + prompt K/V) on a frozen model. A resume may extend --steps.",
                             specs, (int)(sizeof specs / sizeof *specs), &t, argc, argv);
    if (rc != CLI_OK) return rc;
    if (!t.o.out) return cli_usage_error(prog, "--out is required");
    if (t.o.steps < 1) return cli_usage_error(prog, "--steps must be >= 1");
    o.model = model;
    o.data_dir = data;
    o.val_list = val;
    o.batch = t.batch;
    cli_train_begin(&t);
    o.train = t.o;
    tsr_bita_tune_result r;
    tsr_status st = tsr_bita_tune(&o, &r);
    cli_train_end(&t, &r.train);
    if (st.code)
        return cli_fail(st, cli_train_hint(&t, st, t.o.resume ? "--resume needs the adapter, its .state and .data files" : NULL));
    bool same = strcmp(r.base_hash_before, r.base_hash_after) == 0;
    if (t.cm.json) {
        printf("{\"steps\":%lld,\"loss\":%.5f,\"examples\":%d,\"data_s\":%.1f,\"train_s\":%.1f,\"stopped\":%s,"
               "\"base_hash_before\":\"%s\",\"base_hash_after\":\"%s\",\"base_unchanged\":%s,\"acc_top1\":[",
               (long long)r.steps_done, r.final_loss, r.n_examples, r.data_s, r.train_s, r.stopped ? "true" : "false",
               r.base_hash_before, r.base_hash_after, same ? "true" : "false");
        for (int j = 0; j < o.k; j++) printf("%s%.4f", j ? "," : "", r.acc[j][0]);
        printf("]}\n");
    } else {
        printf("%lld steps, loss %.4f, %d examples (data %.1f s, training %.1f s)%s\n", (long long)r.steps_done,
               r.final_loss, r.n_examples, r.data_s, r.train_s, r.stopped ? ", stopped (resume with --resume)" : "");
        printf("base weights %s: %s before, %s after\n", same ? "unchanged" : "CHANGED", r.base_hash_before,
               r.base_hash_after);
        if (!r.stopped)
            for (int j = 0; j < o.k; j++)
                printf("mask %d: top-1 %.3f top-2 %.3f top-4 %.3f\n", j, r.acc[j][0], r.acc[j][1], r.acc[j][3]);
    }
    return same ? CLI_OK : cli_fail(tsr_errorf(TSR_ERR_IO, "the base model's file changed during tuning"), NULL);
}

/* ------------------------------------------------------------ shared setup */

typedef struct {
    tsr_lm_model m;
    tsr_bita_adapter ad;
    tsr_bita_model bm;
    tsr_bpe bpe;
    int bos, eos;
    bool has_m, has_ad, has_bm, has_bpe;
} session;

static void session_free(session *s) {
    if (s->has_bm) tsr_bita_model_free(&s->bm);
    if (s->has_ad) tsr_bita_adapter_free(&s->ad);
    if (s->has_bpe) tsr_bpe_free(&s->bpe);
    if (s->has_m) tsr_lm_model_free(&s->m);
}

static int session_open(session *s, const char *prog, const char *model, const char *adapter, const char *dtype) {
    memset(s, 0, sizeof *s);
    char mbuf[4096], abuf[4096];
    model = cli_shipped_default(model, DEFAULT_MODEL, mbuf, sizeof mbuf);
    adapter = cli_shipped_default(adapter, DEFAULT_ADAPTER, abuf, sizeof abuf);
    int wt = -1;
    if (dtype && strcmp(dtype, "auto") != 0) {
        tsr_lm_wtype t;
        if (!tsr_lm_wtype_parse(dtype, &t)) return cli_usage_error(prog, "--dtype must be f32, bf16, q8 or auto");
        wt = (int)t;
    }
    tsr_status st = tsr_lm_load(&s->m, model, wt, 0);
    if (st.code) return cli_fail(st, "--model expects an HF directory, a tessera .safetensors or a .gguf");
    s->has_m = true;
    st = tsr_bita_adapter_load(&s->ad, adapter);
    if (st.code) {
        session_free(s);
        return cli_fail(st, "--adapter expects a file written by 'tessera bita tune'");
    }
    s->has_ad = true;
    st = tsr_bita_model_init(&s->bm, &s->m, &s->ad);
    if (st.code) {
        session_free(s);
        return cli_fail(st, "the adapter does not fit this model");
    }
    s->has_bm = true;
    /* a fitting adapter tuned on another base still decodes losslessly
     * (the base verifies every token), only with fewer accepted drafts */
    char hash[17];
    if (s->ad.base_hash[0] && !tsr_bita_file_hash(model, hash).code && strcmp(hash, s->ad.base_hash) != 0)
        fprintf(stderr, "%s: warning: the adapter was tuned on another base (checksum %s, this one %s)\n", prog,
                s->ad.base_hash, hash);
    char tp[4096];
    struct stat sb;
    size_t ml = strlen(model);
    if (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode)) snprintf(tp, sizeof tp, "%s/tokenizer.json", model);
    else if (ml > 5 && strcmp(model + ml - 5, ".gguf") == 0) snprintf(tp, sizeof tp, "%s", model);
    else {
        const char *slash = strrchr(model, '/');
        snprintf(tp, sizeof tp, "%.*stokenizer.json", slash ? (int)(slash - model + 1) : 0, model);
    }
    st = tp[0] && strcmp(tp, model) == 0 ? tsr_bpe_load_gguf(&s->bpe, tp, NULL, 0) : tsr_bpe_load(&s->bpe, tp);
    if (st.code) {
        session_free(s);
        return cli_fail(st, "a tokenizer.json must sit next to the model (a .gguf carries its own)");
    }
    s->has_bpe = true;
    tsr_lm_bpe_specials(&s->bpe, &s->bos, &s->eos);
    return CLI_OK;
}

static void print_pieces(const session *s, const int *ids, int n, FILE *f) {
    for (int i = 0; i < n; i++) {
        int l = 0;
        const char *p = tsr_bpe_piece(&s->bpe, ids[i], &l);
        if (p && !s->bpe.special[ids[i]]) fwrite(p, 1, (size_t)l, f);
    }
}

static int pick_shape(session *s, int top, int depth, tsr_bita_shape *shape, double *ms, int n_max) {
    if (top > 0 && depth >= 0) {
        *shape = (tsr_bita_shape){top, depth};
        return CLI_OK;
    }
    tsr_status st = tsr_decode_cost_curve(&s->bm.view, 128, n_max, ms);
    if (st.code) return cli_fail(st, NULL);
    *shape = tsr_bita_choose_shape(&s->ad, ms, n_max, 4);
    if (top > 0) shape->top = top;
    if (depth >= 0) shape->depth = depth;
    return CLI_OK;
}

/* ------------------------------------------------------------ generate */

static int cmd_generate(const char *prog, int argc, char **argv) {
    const char *model = DEFAULT_MODEL, *adapter = DEFAULT_ADAPTER, *prompt = NULL, *dtype = NULL;
    const char *prompt_file = NULL, *truncate = NULL;
    int max_tokens = 256, top = 0, depth = -1, top_k = 0;
    float temperature = 0.0f, top_p = 1.0f, min_p = 0.0f;
    bool stats = false;
    cli_common cm = {0, 42, false};
    arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "PATH", "base model (default: " DEFAULT_MODEL ")", NULL},
        {"adapter", ARG_MODEL, &adapter, "PATH", "adapter from 'bita tune' (default: " DEFAULT_ADAPTER ")", NULL},
        {"dtype", ARG_STR, &dtype, "T", "weights in memory: f32, bf16, q8 or auto (default)", NULL},
        {"prompt", ARG_TEXT, &prompt, "TEXT", "text to continue, may be empty (this or --prompt-file is required)", NULL},
        CLI_PROMPT_FILE_SPEC(prompt_file),
        CLI_TRUNCATE_SPEC(truncate),
        {"max-tokens", ARG_INT, &max_tokens, "N", "new tokens at most (default 256; the context also bounds it)", NULL},
        {"temperature", ARG_FLOAT, &temperature, "X", "0: greedy (default); > 0: exact speculative sampling", NULL},
        {"top-k", ARG_INT, &top_k, "K", "sampling: keep the K most likely tokens (0: off)", NULL},
        {"top-p", ARG_FLOAT, &top_p, "P", "sampling: nucleus mass (0 or 1: off; default 1)", NULL},
        {"min-p", ARG_FLOAT, &min_p, "P", "sampling: min-p filter (0: off)", NULL},
        {"tree-top", ARG_INT, &top, "N", "candidates at tree level 0 (0: chosen from the cost curve, default)", NULL},
        {"tree-depth", ARG_INT, &depth, "D", "tree levels = masks per group (-1: chosen, default; 0: no drafts)", NULL},
        {"stats", ARG_BOOL, &stats, NULL, "print steps and acceptance per level to stderr", NULL},
        CLI_COMMON_SEED(&cm),
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Continue a prompt with BiTA tree decoding (same text as lm generate at temperature 0).",
                        specs, (int)(sizeof specs / sizeof *specs), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!prompt && !prompt_file) return cli_usage_error(prog, "--prompt TEXT or --prompt-file FILE is required");
    bool keep_last;
    if ((rc = cli_parse_truncate(prog, truncate, &keep_last)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "max-tokens", max_tokens, 1, INT32_MAX)) != CLI_OK ||
        (rc = cli_check_float(prog, "temperature", temperature, 0, INFINITY)) != CLI_OK ||
        (rc = cli_check_int(prog, "tree-top", top, 0, TSR_BITA_MAX_TOP)) != CLI_OK ||
        (rc = cli_check_int(prog, "tree-depth", depth, -1, TSR_BITA_MAX_K)) != CLI_OK ||
        (rc = cli_check_int(prog, "top-k", top_k, 0, INT32_MAX)) != CLI_OK ||
        (rc = cli_check_float(prog, "top-p", top_p, 0, 1)) != CLI_OK ||
        (rc = cli_check_float(prog, "min-p", min_p, 0, 1)) != CLI_OK)
        return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    tsr_step_team_tuning(true); /* one-token steps may run on fewer threads when a busy core slows the team */
    char *prompt_text;
    if ((rc = cli_read_prompt(prog, prompt, prompt_file, true, &prompt_text)) != CLI_OK) return rc;
    session s;
    if ((rc = session_open(&s, prog, model, adapter, dtype)) != CLI_OK) {
        free(prompt_text);
        return rc;
    }
    if (depth > s.ad.k) {
        session_free(&s);
        free(prompt_text);
        return cli_usage_error(prog, "--tree-depth %d exceeds the adapter's %d masks", depth, s.ad.k);
    }
    int np = 0;
    int *ptok = tsr_lm_bpe_prompt(&s.bpe, prompt_text, &np);
    free(prompt_text);
    if (!ptok || np < 1) {
        free(ptok);
        session_free(&s);
        return cli_fail(tsr_errorf(TSR_ERR_ARG, "the prompt is empty and the tokenizer has no BOS"), NULL);
    }
    tsr_status fit = tsr_prompt_fit(ptok, &np, s.m.cfg.seq_len, keep_last, max_tokens);
    if (fit.code) {
        free(ptok);
        session_free(&s);
        return cli_fail(fit, CLI_PROMPT_HINT);
    }
    if (max_tokens > s.m.cfg.seq_len - np + 1) max_tokens = s.m.cfg.seq_len - np + 1; /* the context bounds it */
    int *gen = malloc(sizeof(int) * (size_t)max_tokens);
    if (!gen) {
        free(ptok);
        session_free(&s);
        return cli_fail(tsr_errorf(TSR_ERR_NOMEM, "out of memory"), NULL);
    }
    /* the tree shape (timing the cost curve) only once the prompt fits */
    tsr_bita_gen_opts go;
    tsr_bita_gen_defaults(&go);
    double ms[65];
    if ((rc = pick_shape(&s, top, depth, &go.shape, ms, 32)) != CLI_OK) {
        free(ptok);
        free(gen);
        session_free(&s);
        return rc;
    }
    go.stop_token = s.eos;
    go.sampling.temperature = temperature;
    go.sampling.top_k = top_k;
    go.sampling.top_p = top_p;
    go.sampling.min_p = min_p;
    go.sampling.seed = cm.seed;
    int ng = 0;
    tsr_bita_stats bs;
    tsr_status st = tsr_bita_generate(&s.bm, ptok, np, max_tokens, &go, gen, &ng, &bs);
    if (st.code) {
        free(ptok);
        free(gen);
        session_free(&s);
        return cli_fail(st, NULL);
    }
    int shown = 0;
    while (shown < ng && gen[shown] != s.eos) shown++;
    if (cm.json) {
        size_t cap = 1 << 16;
        char *buf = malloc(cap);
        FILE *mf = buf ? fmemopen(buf, cap, "w") : NULL;
        if (mf) {
            print_pieces(&s, ptok + (s.bos >= 0 ? 1 : 0), np - (s.bos >= 0 ? 1 : 0), mf);
            print_pieces(&s, gen, shown, mf);
            fputc(0, mf);
            fclose(mf);
            buf[cap - 1] = 0;
        }
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "text", buf ? buf : "");
        cJSON_AddNumberToObject(j, "prompt_tokens", np);
        cJSON_AddNumberToObject(j, "new_tokens", ng);
        cJSON_AddNumberToObject(j, "steps", bs.forwards + 1);
        cJSON_AddNumberToObject(j, "tokens_per_step", (double)ng / (bs.forwards + 1));
        cJSON_AddNumberToObject(j, "tree_top", go.shape.top);
        cJSON_AddNumberToObject(j, "tree_depth", go.shape.depth);
        cJSON_AddNumberToObject(j, "decode_s", bs.decode_s + bs.prefill_s);
        char *t = cJSON_PrintUnformatted(j);
        if (t) puts(t);
        free(t);
        cJSON_Delete(j);
        free(buf);
    } else {
        print_pieces(&s, ptok + (s.bos >= 0 ? 1 : 0), np - (s.bos >= 0 ? 1 : 0), stdout);
        print_pieces(&s, gen, shown, stdout);
        fputc('\n', stdout);
    }
    fflush(stdout);
    if (stats) {
        fprintf(stderr, "bita: %d tokens in %d steps (%.2f tokens/step), tree top %d depth %d (%d rows), %.3f s\n", ng,
                bs.forwards + 1, (double)ng / (bs.forwards + 1), go.shape.top, go.shape.depth,
                tsr_bita_shape_rows(go.shape), bs.prefill_s + bs.decode_s);
        for (int l = 0; l < go.shape.depth; l++)
            fprintf(stderr, "  level %d: accepted %d of %d (%.3f)\n", l, bs.level_hits[l], bs.level_tries[l],
                    bs.level_tries[l] ? (double)bs.level_hits[l] / bs.level_tries[l] : 0.0);
    }
    free(ptok);
    free(gen);
    session_free(&s);
    return CLI_OK;
}

/* ------------------------------------------------------------ bench */

static int cmd_bench(const char *prog, int argc, char **argv) {
    const char *model = DEFAULT_MODEL, *adapter = DEFAULT_ADAPTER, *prompts = "bench/prompts_pyval.jsonl", *dtype = NULL;
    const char *truncate = NULL;
    int max_tokens = 256, top = 0, depth = -1, limit = 0, reps = 1;
    cli_common cm = {0, 42, false};
    arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "PATH", "base model (default: " DEFAULT_MODEL ")", NULL},
        {"adapter", ARG_MODEL, &adapter, "PATH", "adapter (default: " DEFAULT_ADAPTER ")", NULL},
        {"dtype", ARG_STR, &dtype, "T", "weights in memory: f32, bf16, q8 or auto (default)", NULL},
        {"prompts", ARG_STR, &prompts, "FILE", "JSONL with a \"prompt\" field (default: bench/prompts_pyval.jsonl)", NULL},
        {"max-tokens", ARG_INT, &max_tokens, "N", "new tokens per prompt (default 256; the context also bounds it)", NULL},
        {"limit", ARG_INT, &limit, "N", "first N prompts only (0: all)", NULL},
        {"reps", ARG_INT, &reps, "R", "time each method R times per prompt, keep the fastest (default 1)", NULL},
        {"tree-top", ARG_INT, &top, "N", "candidates at tree level 0 (0: chosen from the cost curve, default)", NULL},
        {"tree-depth", ARG_INT, &depth, "D", "tree levels (-1: chosen, default; 0: no drafts)", NULL},
        CLI_TRUNCATE_SPEC(truncate),
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Plain greedy vs BiTA vs prompt lookup on a prompt file: identity, tokens/step, speedup.",
                        specs, (int)(sizeof specs / sizeof *specs), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "max-tokens", max_tokens, 1, INT32_MAX)) != CLI_OK ||
        (rc = cli_check_int(prog, "reps", reps, 1, 1000)) != CLI_OK ||
        (rc = cli_check_int(prog, "limit", limit, 0, INT32_MAX)) != CLI_OK)
        return rc;
    bool keep_last;
    if ((rc = cli_parse_truncate(prog, truncate, &keep_last)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "tree-top", top, 0, TSR_BITA_MAX_TOP)) != CLI_OK ||
        (rc = cli_check_int(prog, "tree-depth", depth, -1, TSR_BITA_MAX_K)) != CLI_OK)
        return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    char **texts;
    int n_texts;
    char pbuf[PATH_MAX];
    if (strcmp(prompts, "bench/prompts_pyval.jsonl") == 0) prompts = tsr_find_shipped_or(prompts, pbuf, sizeof pbuf);
    tsr_status st = cli_read_jsonl_field(prompts, "prompt", &texts, &n_texts);
    if (st.code) return cli_fail(st, "each line must be a JSON object with a \"prompt\" string (bench/prompts_pyval.jsonl)");
    session s;
    if ((rc = session_open(&s, prog, model, adapter, dtype)) != CLI_OK) {
        cli_free_strings(texts, n_texts);
        return rc;
    }
    if (depth > s.ad.k) {
        cli_free_strings(texts, n_texts);
        session_free(&s);
        return cli_usage_error(prog, "--tree-depth %d exceeds the adapter's %d masks", depth, s.ad.k);
    }
    tsr_bita_gen_opts go;
    tsr_bita_gen_defaults(&go);
    double ms[65] = {0};
    const int n_max = 32;
    if ((rc = pick_shape(&s, 0, 0, &go.shape, ms, n_max)) != CLI_OK) {
        cli_free_strings(texts, n_texts);
        session_free(&s);
        return rc;
    }
    if (top > 0) go.shape.top = top;
    if (depth >= 0) go.shape.depth = depth;
    go.stop_token = s.eos;
    tsr_decode_ngram_opts no;
    tsr_decode_ngram_defaults(&no);
    no.stop_token = s.eos;

    int n_prompts = 0, identical = 0, ng_identical = 0;
    long tok_plain = 0, tok_bita = 0, steps_bita = 0, tok_ng = 0, steps_ng = 0, rows_bita = 0;
    long tries[TSR_BITA_MAX_K] = {0}, hits[TSR_BITA_MAX_K] = {0};
    double t_plain = 0, t_bita = 0, t_ng = 0;
    if (max_tokens > s.m.cfg.seq_len) max_tokens = s.m.cfg.seq_len; /* the context bounds it */
    int *a = malloc(sizeof(int) * (size_t)max_tokens), *b = malloc(sizeof(int) * (size_t)max_tokens);
    int *c = malloc(sizeof(int) * (size_t)max_tokens);
    st = tsr_ok();
    for (int pi = 0; pi < n_texts && a && b && c && (limit == 0 || n_prompts < limit); pi++) {
        int np = 0;
        int *ptok = tsr_lm_bpe_prompt(&s.bpe, texts[pi], &np);
        if (!ptok) {
            st = tsr_errorf(TSR_ERR_NOMEM, "out of memory");
            break;
        }
        st = tsr_prompt_fit(ptok, &np, s.m.cfg.seq_len, keep_last, max_tokens);
        if (st.code) {
            free(ptok);
            st = tsr_errorf(st.code, "%s: prompt %d: %s", prompts, pi + 1, st.msg);
            break;
        }
        int na = 0, nb = 0, nc = 0;
        double best_a = 1e30, best_b = 1e30, best_c = 1e30;
        tsr_decode_stats ds, ns;
        tsr_bita_stats bs;
        for (int r = 0; r < reps && !st.code; r++) {
            st = tsr_decode_greedy_generate(&s.m, ptok, np, max_tokens, s.eos, 0, a, &na, &ds);
            if (st.code) break;
            if (ds.prefill_s + ds.decode_s < best_a) best_a = ds.prefill_s + ds.decode_s;
            st = tsr_bita_generate(&s.bm, ptok, np, max_tokens, &go, b, &nb, &bs);
            if (st.code) break;
            if (bs.prefill_s + bs.decode_s < best_b) best_b = bs.prefill_s + bs.decode_s;
            st = tsr_decode_ngram_generate(&s.m, ptok, np, max_tokens, &no, c, &nc, &ns);
            if (st.code) break;
            if (ns.prefill_s + ns.decode_s < best_c) best_c = ns.prefill_s + ns.decode_s;
        }
        free(ptok);
        if (st.code) break;
        n_prompts++;
        identical += na == nb && memcmp(a, b, sizeof(int) * (size_t)na) == 0;
        ng_identical += na == nc && memcmp(a, c, sizeof(int) * (size_t)na) == 0;
        tok_plain += na;
        tok_bita += nb;
        steps_bita += bs.forwards + 1;
        rows_bita += bs.rows;
        tok_ng += nc;
        steps_ng += ns.forwards + 1;
        t_plain += best_a;
        t_bita += best_b;
        t_ng += best_c;
        for (int l = 0; l < TSR_BITA_MAX_K; l++) {
            tries[l] += bs.level_tries[l];
            hits[l] += bs.level_hits[l];
        }
        if (!cm.json)
            fprintf(stderr, "prompt %d: %d tokens, bita %d steps (%s), ngram %d steps (%s)\n", n_prompts, na,
                    bs.forwards + 1, na == nb && !memcmp(a, b, sizeof(int) * (size_t)na) ? "identical" : "DIFFERS",
                    ns.forwards + 1, na == nc && !memcmp(a, c, sizeof(int) * (size_t)na) ? "identical" : "DIFFERS");
    }
    free(a);
    free(b);
    free(c);
    cli_free_strings(texts, n_texts);
    if (st.code) {
        session_free(&s);
        return cli_fail(st, strstr(st.msg, "prompt tokens") ? CLI_PROMPT_HINT : NULL);
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "bench", "bita");
    cJSON_AddNumberToObject(j, "prompts", n_prompts);
    cJSON_AddNumberToObject(j, "identical", identical);
    cJSON_AddNumberToObject(j, "max_tokens", max_tokens);
    cJSON_AddNumberToObject(j, "new_tokens", (double)tok_plain);
    cJSON_AddNumberToObject(j, "tokens_per_step", steps_bita ? (double)tok_bita / steps_bita : 0);
    cJSON_AddNumberToObject(j, "rows_per_step", steps_bita ? (double)rows_bita / steps_bita : 0);
    cJSON_AddNumberToObject(j, "speedup", t_bita > 0 ? t_plain / t_bita : 0);
    cJSON_AddNumberToObject(j, "plain_s", t_plain);
    cJSON_AddNumberToObject(j, "bita_s", t_bita);
    cJSON_AddNumberToObject(j, "plain_tok_s", t_plain > 0 ? tok_plain / t_plain : 0);
    cJSON_AddNumberToObject(j, "bita_tok_s", t_bita > 0 ? tok_bita / t_bita : 0);
    cJSON *lv = cJSON_AddArrayToObject(j, "level_acceptance");
    for (int l = 0; l < go.shape.depth; l++) cJSON_AddItemToArray(lv, cJSON_CreateNumber(tries[l] ? (double)hits[l] / tries[l] : 0));
    cJSON_AddNumberToObject(j, "tree_top", go.shape.top);
    cJSON_AddNumberToObject(j, "tree_depth", go.shape.depth);
    cJSON_AddNumberToObject(j, "tree_rows", tsr_bita_shape_rows(go.shape));
    cJSON_AddNumberToObject(j, "ngram_identical", ng_identical);
    cJSON_AddNumberToObject(j, "ngram_tokens_per_step", steps_ng ? (double)tok_ng / steps_ng : 0);
    cJSON_AddNumberToObject(j, "ngram_speedup", t_ng > 0 ? t_plain / t_ng : 0);
    cJSON *cc = cJSON_AddArrayToObject(j, "cost_ratio");
    for (int n = 1; n <= n_max && ms[1] > 0; n *= 2) cJSON_AddItemToArray(cc, cJSON_CreateNumber(ms[n] / ms[1]));
    cJSON_AddNumberToObject(j, "ms_one_row", ms[1]);
    cJSON_AddNumberToObject(j, "threads", tsr_threads_get());
    cJSON_AddStringToObject(j, "kernels", tsr_cpu_level_name(tsr_cpu_level()));
    cJSON_AddStringToObject(j, "dtype", tsr_lm_wtype_name(s.m.wtype));
    char *t = cJSON_PrintUnformatted(j);
    if (t) puts(t);
    free(t);
    cJSON_Delete(j);
    session_free(&s);
    return identical == n_prompts ? CLI_OK : cli_fail(tsr_errorf(TSR_ERR_ARG, "%d of %d outputs differ from plain greedy", n_prompts - identical, n_prompts), NULL);
}

static const cli_verb verbs[] = {
    {"tune", "train an adapter (mask embeddings + prompt K/V) on self-distilled data", cmd_tune},
    {"generate", "continue a prompt with BiTA tree decoding", cmd_generate},
    {"bench", "plain greedy vs BiTA vs prompt lookup on a JSONL prompt file", cmd_bench},
    {NULL, NULL, NULL},
};

const cli_family cli_family_bita = {"bita", "BiTA: mask tokens + prompt tuning for lossless speculative decoding",
                                    verbs};
