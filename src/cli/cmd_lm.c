/* tessera lm: text generation with Llama-family checkpoints in llama2.c
 * format (`tessera lm generate`, `tessera lm info`). stdout carries exactly
 * what llama2.c's run.c prints (prompt + completion + newline), streamed and
 * flushed per token; throughput goes to stderr. */
#include "cli/args.h"
#include "tessera/lm.h"
#include "tessera/tokenizer.h"

#include <cjson/cJSON.h>
#include <string.h>

#define MAX_STOPS 16

typedef struct {
    bool json;
    char *buf;
    size_t len, cap;
    bool failed;
} out_sink;

static int emit(void *ud, const char *s, size_t n) {
    out_sink *o = ud;
    if (!o->json) {
        if (fwrite(s, 1, n, stdout) != n || fflush(stdout) != 0) o->failed = true;
        return o->failed;
    }
    if (o->len + n + 1 > o->cap) {
        size_t cap = (o->len + n + 1) * 2;
        char *b = realloc(o->buf, cap);
        if (!b) return o->failed = true;
        o->buf = b;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = 0;
    return 0;
}

static int load_model(const char *path, tsr_lm_model *m) {
    tsr_status st = tsr_llama2c_load(m, path);
    if (st.code) return cli_fail(st, "--model expects a llama2.c checkpoint (.bin, legacy or ak42 v1/v2)");
    return CLI_OK;
}

static int cmd_generate(const char *prog, int argc, char **argv) {
    /* --stop may repeat and --prompt may be empty (as llama2.c -i ""):
     * take both before the one-non-empty-value-per-flag parser */
    const char *stops[MAX_STOPS];
    const char *prompt = NULL;
    int n_stop = 0;
    char **rest = malloc(sizeof(char *) * (size_t)(argc + 1));
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--prompt") == 0 || strncmp(a, "--prompt=", 9) == 0) {
            const char *v = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) {
                free(rest);
                return cli_usage_error(prog, "--prompt needs a value");
            }
            prompt = v;
        } else if (strcmp(a, "--stop") == 0 || strncmp(a, "--stop=", 7) == 0) {
            const char *v = a[6] == '=' ? a + 7 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v || !*v) {
                free(rest);
                return cli_usage_error(prog, "--stop needs a non-empty value");
            }
            if (n_stop == MAX_STOPS) {
                free(rest);
                return cli_usage_error(prog, "at most %d --stop strings", MAX_STOPS);
            }
            stops[n_stop++] = v;
        } else {
            rest[nrest++] = argv[i];
        }
    }

    const char *model = NULL, *tok_path = NULL, *prompt_help = NULL;
    int steps = 256, max_tokens = 0, top_k = 0, rep_window = 0, prefill = 0;
    float temperature = 1.0f, top_p = 0.9f, min_p = 0.0f, rep = 1.0f;
    bool steps_set = false;
    cli_common cm = {0, 42, false};
    arg_spec specs[] = {
        {"model", ARG_STR, &model, "PATH", "llama2.c checkpoint (.bin)", NULL},
        {"tokenizer", ARG_STR, &tok_path, "PATH", "llama2.c tokenizer (.bin)", NULL},
        {"prompt", ARG_STR, &prompt_help, "TEXT", "text to continue (may be empty; default: empty)", NULL},
        {"steps", ARG_INT, &steps, "N", "positions incl. the prompt, as llama2.c -n (0: context length)", &steps_set},
        {"max-tokens", ARG_INT, &max_tokens, "N", "stop after N new tokens (0: no limit; without --steps the context bounds it)", NULL},
        {"temperature", ARG_FLOAT, &temperature, "X", "0 is greedy", NULL},
        {"top-k", ARG_INT, &top_k, "K", "keep the K most likely tokens (0: off)", NULL},
        {"top-p", ARG_FLOAT, &top_p, "P", "nucleus sampling mass (0 or 1: off)", NULL},
        {"min-p", ARG_FLOAT, &min_p, "P", "drop tokens below P times the top probability (0: off)", NULL},
        {"repeat-penalty", ARG_FLOAT, &rep, "X", "penalise tokens already in the context (1: off)", NULL},
        {"repeat-window", ARG_INT, &rep_window, "N", "how many recent tokens the penalty sees (0: all)", NULL},
        {"prefill-batch", ARG_INT, &prefill, "N", "prompt tokens per forward (0: 64)", NULL},
        CLI_COMMON_SEED(&cm),
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    const char *summary = "Continue a prompt with a llama2.c checkpoint. --stop STR (repeatable) ends the "
                          "completion before STR.";
    int rc = args_parse(prog, summary, specs, (int)(sizeof specs / sizeof *specs), nrest, rest);
    free(rest);
    if (rc != CLI_OK) return rc;
    if (!model) return cli_usage_error(prog, "--model is required");
    if (!tok_path) return cli_usage_error(prog, "--tokenizer is required");
    if (steps < 0) return cli_usage_error(prog, "--steps must be >= 0");
    if (max_tokens < 0) return cli_usage_error(prog, "--max-tokens must be >= 0");
    if (prefill < 0) return cli_usage_error(prog, "--prefill-batch must be >= 0");
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;

    tsr_lm_sampler_opts so;
    tsr_lm_sampler_defaults(&so);
    so.temperature = temperature;
    so.top_k = top_k;
    so.top_p = top_p;
    so.min_p = min_p;
    so.rep_penalty = rep;
    so.rep_window = rep_window;
    so.seed = cm.seed;
    tsr_lm_sampler smp;
    tsr_status st = tsr_lm_sampler_init(&smp, &so, 1);
    if (st.code) return cli_usage_error(prog, "%s", st.msg);
    tsr_lm_sampler_free(&smp);

    tsr_lm_model m;
    if ((rc = load_model(model, &m)) != CLI_OK) return rc;
    tsr_tokenizer tok;
    st = tsr_tokenizer_load(&tok, tok_path, m.cfg.vocab_size);
    if (st.code) {
        tsr_lm_model_free(&m);
        return cli_fail(st, "--tokenizer expects the llama2.c tokenizer.bin that matches the model");
    }
    st = tsr_lm_sampler_init(&smp, &so, m.cfg.vocab_size);
    if (st.code) {
        tsr_tokenizer_free(&tok);
        tsr_lm_model_free(&m);
        return cli_fail(st, NULL);
    }
    tsr_lm_gen_opts go = {steps_set || max_tokens == 0 ? steps : 0, max_tokens, stops, n_stop, prefill};
    tsr_lm_gen_stats gs;
    out_sink out = {cm.json, NULL, 0, 0, false};
    st = tsr_lm_generate(&m, &tok, &smp, prompt ? prompt : "", &go, emit, &out, &gs);
    rc = CLI_OK;
    if (st.code) {
        if (!cm.json) fputc('\n', stdout);
        rc = cli_fail(st, NULL);
    } else if (out.failed) {
        rc = cli_fail(tsr_errorf(TSR_ERR_IO, "writing to stdout failed"), NULL);
    } else {
        double pre_tps = gs.prefill_s > 0 ? gs.prompt_tokens / gs.prefill_s : 0;
        double dec_tps = gs.decode_s > 0 ? gs.new_tokens / gs.decode_s : 0;
        if (cm.json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "text", out.buf ? out.buf : "");
            cJSON_AddNumberToObject(j, "prompt_tokens", gs.prompt_tokens);
            cJSON_AddNumberToObject(j, "new_tokens", gs.new_tokens);
            cJSON_AddNumberToObject(j, "positions", gs.positions);
            cJSON_AddStringToObject(j, "stop", gs.stopped_stop ? "stop_string" : gs.stopped_bos ? "bos" : "length");
            cJSON_AddNumberToObject(j, "prefill_tok_s", pre_tps);
            cJSON_AddNumberToObject(j, "decode_tok_s", dec_tps);
            cJSON_AddNumberToObject(j, "threads", tsr_threads_get());
            char *s = cJSON_PrintUnformatted(j);
            if (s) puts(s);
            free(s);
            cJSON_Delete(j);
        } else {
            fputc('\n', stdout);
        }
        fflush(stdout);
        fprintf(stderr, "achieved tok/s: %.1f (%d new tokens in %.3f s; prefill %d tokens at %.1f tok/s; %d threads)\n",
                dec_tps, gs.new_tokens, gs.decode_s, gs.prompt_tokens, pre_tps, tsr_threads_get());
    }
    free(out.buf);
    tsr_lm_sampler_free(&smp);
    tsr_tokenizer_free(&tok);
    tsr_lm_model_free(&m);
    return rc;
}

static int cmd_info(const char *prog, int argc, char **argv) {
    const char *model = NULL;
    cli_common cm = {0, 0, false};
    arg_spec specs[] = {
        {"model", ARG_STR, &model, "PATH", "llama2.c checkpoint (.bin)", NULL},
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Print a checkpoint's configuration.", specs, 2, argc, argv);
    if (rc != CLI_OK) return rc;
    if (!model) return cli_usage_error(prog, "--model is required");
    tsr_lm_model m;
    if ((rc = load_model(model, &m)) != CLI_OK) return rc;
    const tsr_lm_config *c = &m.cfg;
    if (cm.json) {
        printf("{\"dim\":%d,\"hidden_dim\":%d,\"n_layers\":%d,\"n_heads\":%d,\"n_kv_heads\":%d,\"vocab_size\":%d,"
               "\"seq_len\":%d,\"shared_classifier\":%s,\"params\":%lld}\n",
               c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len,
               c->shared_classifier ? "true" : "false", (long long)tsr_lm_model_params(&m));
    } else {
        printf("dim %d, hidden %d, layers %d, heads %d (kv %d), vocab %d, context %d, %s classifier, %lld parameters\n",
               c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len,
               c->shared_classifier ? "shared" : "separate", (long long)tsr_lm_model_params(&m));
    }
    tsr_lm_model_free(&m);
    return CLI_OK;
}

int cli_lm_tokenizer_train(const char *prog, int argc, char **argv); /* cmd_lm_data.c */
int cli_lm_tokenize(const char *prog, int argc, char **argv);

static const cli_verb k_verbs[] = {
    {"generate", "continue a prompt (llama2.c run.c semantics)", cmd_generate},
    {"info", "print a checkpoint's configuration", cmd_info},
    {"tokenizer-train", "learn a byte-level BPE tokenizer.json on a corpus's train split", cli_lm_tokenizer_train},
    {"tokenize", "tokenise the train/val splits to token files (bytes, tokens per split)", cli_lm_tokenize},
    {NULL, NULL, NULL},
};

const cli_family cli_family_lm = {"lm", "Llama-family language model: tokenizers, llama2.c checkpoints, generation", k_verbs};
