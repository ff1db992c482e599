/* tessera lm: text generation with Llama-family checkpoints (llama2.c .bin,
 * HF directories, tessera .safetensors) in f32, bf16 or Q8 (`tessera lm
 * generate`, `info`, `convert`, `bench`). stdout carries the prompt and the
 * completion (for llama2.c files exactly what run.c prints, newline
 * included), streamed and flushed per token; throughput goes to stderr. */
#include "cli/args.h"
#include "tessera/cpu.h"
#include "tessera/bpe.h"
#include "tessera/decode.h"
#include "tessera/gguf.h"
#include "tessera/lm.h"
#include "tessera/tokenizer.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_STOPS 16

typedef struct {
    bool json;
    char *buf;
    size_t len, cap;
    bool failed;
    bool emitted; /* something reached stdout */
} out_sink;

static int emit(void *ud, const char *s, size_t n) {
    out_sink *o = ud;
    if (!o->json) {
        if (n) o->emitted = true;
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

#define MODEL_HINT                                                                                  \
    "--model expects a llama2.c checkpoint (.bin), an HF directory (config.json + model.safetensors), " \
    "a tessera .safetensors with its config in the metadata, or a llama.cpp .gguf (F32, F16, BF16, Q8_0)"

/* dtype: NULL or "auto" keeps the file's type */
static int parse_dtype(const char *prog, const char *dtype, int group_size, int *wt) {
    *wt = -1;
    if (dtype && strcmp(dtype, "auto") != 0) {
        tsr_lm_wtype t;
        if (!tsr_lm_wtype_parse(dtype, &t)) return cli_usage_error(prog, "--dtype must be f32, bf16, q8 or auto");
        *wt = (int)t;
    }
    if (group_size != 0 && group_size != 32 && group_size != 64)
        return cli_usage_error(prog, "--group-size must be 32 or 64");
    return CLI_OK;
}

static int load_model_as(const char *path, tsr_lm_model *m, int wt, int group_size) {
    tsr_status st = tsr_lm_load(m, path, wt, group_size);
    if (st.code) return cli_fail(st, MODEL_HINT);
    return CLI_OK;
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* a GGUF by suffix or by its magic (a .gguf renamed .bin) */
static bool is_gguf_path(const char *path) {
    bool g = false;
    return ends_with(path, ".gguf") || (!tsr_lm_probe(path, &g).code && g);
}

static bool is_llama2c_path(const char *path) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return false;
    return !ends_with(path, ".safetensors") && !is_gguf_path(path);
}

/* A byte-level BPE tokenizer: tokenizer.json, or the one inside a .gguf
 * (with a warning when its pre-tokenizer is not GPT-2's, which ours is) */
static tsr_status load_bpe(tsr_bpe *b, const char *path) {
    if (!is_gguf_path(path)) return tsr_bpe_load(b, path);
    char pre[64];
    tsr_status st = tsr_bpe_load_gguf(b, path, pre, sizeof pre);
    if (!st.code && pre[0] && strcmp(pre, "gpt-2") != 0)
        fprintf(stderr, "warning: %s: tokenizer.ggml.pre is '%s'; tessera pre-tokenises as GPT-2 ('gpt-2'), so "
                        "some texts may split into different tokens\n", path, pre);
    return st;
}

/* The shipped code model (an HF-style directory: config.json,
 * model.safetensors, tokenizer.json), used when --model is not given:
 * looked up in the working directory, then beside the binary's folder
 * (build/../models), so `build/tessera lm generate` works from a checkout. */
#define TSR_LM_DEFAULT_MODEL "models/pycode"

static bool find_default_model(char *out, size_t n) { return cli_find_shipped(TSR_LM_DEFAULT_MODEL, out, n); }

/* tokenizer.json in the model's directory (or the directory itself); a
 * .gguf carries its own */
static void default_tokenizer(const char *model, char *out, size_t n) {
    struct stat sb;
    if (is_gguf_path(model)) {
        snprintf(out, n, "%s", model);
        return;
    }
    if (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(out, n, "%s/tokenizer.json", model);
        return;
    }
    const char *slash = strrchr(model, '/');
    if (!slash) snprintf(out, n, "tokenizer.json");
    else snprintf(out, n, "%.*s/tokenizer.json", (int)(slash - model), model);
}

/* Greedy generation with prompt-lookup drafts (llama2.c tokenizer): the
 * same text as tsr_lm_generate at temperature 0 (the decode loop is
 * token-identical to plain greedy decoding), printed once generation ends;
 * stop strings cut the completion afterwards. */
static tsr_status generate_ngram(const tsr_lm_model *m, const tsr_tokenizer *tok, tsr_lm_sampler *smp,
                                 const char *prompt, const tsr_lm_gen_opts *go, int draft_k, out_sink *out,
                                 tsr_lm_gen_stats *gs) {
    memset(gs, 0, sizeof *gs);
    int steps = go->steps, max_tokens = go->max_new_tokens, n_stop = go->n_stop;
    const char *const *stops = go->stop;
    if (steps <= 0 || steps > m->cfg.seq_len) steps = m->cfg.seq_len;
    int *ptok = malloc(sizeof(int) * tsr_tokenizer_max_tokens(prompt));
    if (!ptok) return tsr_errorf(TSR_ERR_NOMEM, "generate: out of memory");
    int np = tsr_tokenizer_encode(tok, prompt, true, false, ptok);
    tsr_status fit = tsr_prompt_fit(ptok, &np, m->cfg.seq_len, go->truncate_left, go->max_new_tokens);
    if (fit.code) {
        free(ptok);
        return fit;
    }
    gs->prompt_tokens = np;
    int max_new = steps - np + 1;
    if (max_tokens > 0 && max_tokens < max_new) max_new = max_tokens;
    if (max_new < 1) {
        /* the prompt fills the context: nothing to draft */
        free(ptok);
        return tsr_lm_generate(m, tok, smp, prompt, go, emit, out, gs);
    }
    int *gen = malloc(sizeof(int) * (size_t)max_new), n_gen = 0;
    char *text = NULL;
    size_t tlen = 0, tcap = 0;
    tsr_status st = gen ? tsr_ok() : tsr_errorf(TSR_ERR_NOMEM, "generate: out of memory");
    tsr_decode_ngram_opts o;
    tsr_decode_ngram_defaults(&o);
    if (draft_k > 0) o.k = draft_k;
    o.stop_token = TSR_TOK_BOS;
    o.max_len = steps;
    tsr_decode_stats ds;
    if (!st.code) st = tsr_decode_ngram_generate(m, ptok, np, max_new, &o, gen, &n_gen, &ds);
    if (st.code) goto done;
    gs->prefill_s = ds.prefill_s;
    gs->decode_s = ds.decode_s;
    gs->new_tokens = n_gen;
    gs->positions = np - 1 + n_gen;
    for (int i = 1; i < np; i++) {
        const char *p = tsr_tokenizer_decode(tok, ptok[i - 1], ptok[i]);
        if (tsr_tokenizer_printable(p)) emit(out, p, strlen(p));
    }
    int prev = ptok[np - 1];
    for (int i = 0; i < n_gen; i++) {
        if (gen[i] == TSR_TOK_BOS) {
            gs->stopped_bos = true;
            break;
        }
        const char *p = tsr_tokenizer_decode(tok, prev, gen[i]);
        size_t pl = tsr_tokenizer_printable(p) ? strlen(p) : 0;
        if (tlen + pl + 1 > tcap) {
            tcap = (tlen + pl + 1) * 2;
            char *b = realloc(text, tcap);
            if (!b) {
                st = tsr_errorf(TSR_ERR_NOMEM, "generate: out of memory");
                goto done;
            }
            text = b;
        }
        memcpy(text + tlen, p, pl);
        tlen += pl;
        text[tlen] = 0;
        prev = gen[i];
    }
    size_t cut = tlen;
    for (int k = 0; k < n_stop && text; k++) {
        char *at = strstr(text, stops[k]);
        if (at && (size_t)(at - text) < cut) {
            cut = (size_t)(at - text);
            gs->stopped_stop = true;
        }
    }
    if (cut) emit(out, text, cut);
    if (getenv("TESSERA_DRAFT_STATS"))
        fprintf(stderr, "draft ngram: %d verification forwards, %d/%d drafts accepted\n", ds.forwards, ds.accepted,
                ds.drafted);
done:
    free(text);
    free(gen);
    free(ptok);
    return st;
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

    const char *model = NULL, *tok_path = NULL, *prompt_help = NULL, *dtype = NULL, *draft = NULL;
    const char *prompt_file = NULL, *truncate = NULL;
    int steps = 256, max_tokens = 0, top_k = 0, rep_window = 0, prefill = 0, group_size = 0, draft_k = 0;
    float temperature = 1.0f, top_p = 0.9f, min_p = 0.0f, rep = 1.0f;
    bool steps_set = false;
    cli_common cm = {0, 42, false};
    arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "PATH", "llama2.c .bin, HF directory, tessera .safetensors or llama.cpp .gguf (default: the shipped " TSR_LM_DEFAULT_MODEL ")", NULL},
        {"tokenizer", ARG_MODEL, &tok_path, "PATH",
         "llama2.c tokenizer.bin, tokenizer.json or a .gguf's tokenizer (default: the .gguf's own; for HF/safetensors "
         "models tokenizer.json next to the model)",
         NULL},
        {"dtype", ARG_STR, &dtype, "T", "weights in memory: f32, bf16, q8 or auto (as stored; default)", NULL},
        {"group-size", ARG_INT, &group_size, "G", "Q8 group size, 32 or 64 (default: the file's, else 32)", NULL},
        {"prompt", ARG_STR, &prompt_help, "TEXT", "text to continue (may be empty; default: empty)", NULL},
        CLI_PROMPT_FILE_SPEC(prompt_file),
        CLI_TRUNCATE_SPEC(truncate),
        {"steps", ARG_INT, &steps, "N", "positions incl. the prompt, as llama2.c -n (0: context length)", &steps_set},
        {"max-tokens", ARG_INT, &max_tokens, "N", "stop after N new tokens (0: no limit; without --steps the context bounds it)", NULL},
        {"temperature", ARG_FLOAT, &temperature, "X", "0 is greedy", NULL},
        {"top-k", ARG_INT, &top_k, "K", "keep the K most likely tokens (0: off)", NULL},
        {"top-p", ARG_FLOAT, &top_p, "P", "nucleus sampling mass (0 or 1: off)", NULL},
        {"min-p", ARG_FLOAT, &min_p, "P", "drop tokens below P times the top probability (0: off)", NULL},
        {"repeat-penalty", ARG_FLOAT, &rep, "X", "penalise tokens already in the context (1: off)", NULL},
        {"repeat-window", ARG_INT, &rep_window, "N", "how many recent tokens the penalty sees (0: all)", NULL},
        {"prefill-batch", ARG_INT, &prefill, "N", "prompt tokens per forward (0: 64)", NULL},
        {"draft", ARG_STR, &draft, "KIND",
         "speculative drafts for greedy decoding: ngram (prompt lookup; same text, fewer forwards; needs "
         "--temperature 0 and a llama2.c tokenizer)",
         NULL},
        {"draft-k", ARG_INT, &draft_k, "K", "most tokens drafted per step (0: 8)", NULL},
        CLI_COMMON_SEED(&cm),
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    const char *summary = "Continue a prompt with a Llama-family model. --stop STR (repeatable) ends the "
                          "completion before STR.";
    int rc = args_parse(prog, summary, specs, (int)(sizeof specs / sizeof *specs), nrest, rest);
    free(rest);
    if (rc != CLI_OK) return rc;
    char model_default[4096];
    if (!model) {
        if (!find_default_model(model_default, sizeof model_default))
            return cli_usage_error(prog, "--model is required (the shipped " TSR_LM_DEFAULT_MODEL
                                         " was not found next to the binary or in the working directory)");
        model = model_default;
    }
    bool l2c = is_llama2c_path(model);
    if (!tok_path && l2c) {
        /* a missing path, a typo or a file of another kind is reported as
         * such, not as a llama2.c checkpoint without its tokenizer */
        bool g;
        tsr_status pst = tsr_lm_probe(model, &g);
        if (pst.code) return cli_fail(pst, MODEL_HINT);
        return cli_usage_error(prog, "--tokenizer is required with a llama2.c checkpoint");
    }
    char tok_default[4096];
    if (!tok_path) {
        default_tokenizer(model, tok_default, sizeof tok_default);
        tok_path = tok_default;
    }
    bool bpe_tok = ends_with(tok_path, ".json") || is_gguf_path(tok_path);
    int wt;
    if ((rc = parse_dtype(prog, dtype, group_size, &wt)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "steps", steps, 0, INT32_MAX)) != CLI_OK ||
        (rc = cli_check_int(prog, "max-tokens", max_tokens, 0, INT32_MAX)) != CLI_OK ||
        (rc = cli_check_int(prog, "prefill-batch", prefill, 0, INT32_MAX)) != CLI_OK ||
        (rc = cli_check_int(prog, "draft-k", draft_k, 0, INT32_MAX)) != CLI_OK)
        return rc;
    if (draft && strcmp(draft, "ngram") != 0) return cli_usage_error(prog, "--draft must be ngram");
    if (draft && temperature != 0.0f) return cli_usage_error(prog, "--draft needs --temperature 0 (greedy)");
    if (draft && bpe_tok) return cli_usage_error(prog, "--draft needs a llama2.c tokenizer");
    bool keep_last;
    if ((rc = cli_parse_truncate(prog, truncate, &keep_last)) != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    tsr_step_team_tuning(true); /* one-token steps may run on fewer threads when a busy core slows the team */

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

    char *prompt_text;
    if ((rc = cli_read_prompt(prog, prompt, prompt_file, false, &prompt_text)) != CLI_OK) return rc;
    tsr_lm_model m;
    if ((rc = load_model_as(model, &m, wt, group_size)) != CLI_OK) {
        free(prompt_text);
        return rc;
    }
    tsr_tokenizer tok;
    tsr_bpe bpe;
    memset(&tok, 0, sizeof tok);
    memset(&bpe, 0, sizeof bpe);
    if (bpe_tok) {
        st = load_bpe(&bpe, tok_path);
        if (!st.code && bpe.vocab_size > m.cfg.vocab_size) {
            st = tsr_errorf(TSR_ERR_ARG, "%s: the tokenizer has %d tokens but the model %s has a vocabulary of %d",
                            tok_path, bpe.vocab_size, model, m.cfg.vocab_size);
            tsr_bpe_free(&bpe);
        }
        if (st.code) {
            tsr_lm_model_free(&m);
            free(prompt_text);
            return cli_fail(st, "--tokenizer expects the tokenizer.json (or .gguf) the model was trained with");
        }
    } else {
        st = tsr_tokenizer_load(&tok, tok_path, m.cfg.vocab_size);
        if (st.code) {
            tsr_lm_model_free(&m);
            free(prompt_text);
            return cli_fail(st, "--tokenizer expects the llama2.c tokenizer.bin that matches the model");
        }
    }
    st = tsr_lm_sampler_init(&smp, &so, m.cfg.vocab_size);
    if (st.code) {
        if (bpe_tok) tsr_bpe_free(&bpe);
        else tsr_tokenizer_free(&tok);
        tsr_lm_model_free(&m);
        free(prompt_text);
        return cli_fail(st, NULL);
    }
    const char *prompt_s = prompt_text;
    tsr_lm_gen_opts go = {steps_set || max_tokens == 0 ? steps : 0, max_tokens, stops, n_stop, prefill, keep_last};
    tsr_lm_gen_stats gs;
    out_sink out = {cm.json, NULL, 0, 0, false, false};
    if (bpe_tok) st = tsr_lm_generate_bpe(&m, &bpe, &smp, prompt_s, &go, emit, &out, &gs);
    else if (draft)
        st = generate_ngram(&m, &tok, &smp, prompt_s, &go, draft_k, &out, &gs);
    else st = tsr_lm_generate(&m, &tok, &smp, prompt_s, &go, emit, &out, &gs);
    free(prompt_text);
    rc = CLI_OK;
    if (st.code) {
        if (!cm.json && out.emitted) fputc('\n', stdout); /* end a partly printed line */
        rc = cli_fail(st, st.code == TSR_ERR_ARG && strstr(st.msg, "prompt tokens") ? CLI_PROMPT_HINT : NULL);
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
            cJSON_AddStringToObject(j, "dtype", tsr_lm_wtype_name(m.wtype));
            char *s = cJSON_PrintUnformatted(j);
            if (s) puts(s);
            free(s);
            cJSON_Delete(j);
        } else {
            fputc('\n', stdout);
        }
        fflush(stdout);
        char fewer[96] = "";
        double share = tsr_step_team_reduced_share();
        if (share > 0)
            snprintf(fewer, sizeof fewer, "; %.0f%% of the decode steps on fewer, chosen by timing: a busy core slowed the team", 100 * share);
        fprintf(stderr, "achieved tok/s: %.1f (%d new tokens in %.3f s; prefill %d tokens at %.1f tok/s; %d threads%s)\n",
                dec_tps, gs.new_tokens, gs.decode_s, gs.prompt_tokens, pre_tps, tsr_threads_get(), fewer);
    }
    free(out.buf);
    tsr_lm_sampler_free(&smp);
    if (bpe_tok) tsr_bpe_free(&bpe);
    else tsr_tokenizer_free(&tok);
    tsr_lm_model_free(&m);
    return rc;
}

static int cmd_info(const char *prog, int argc, char **argv) {
    const char *model = NULL;
    cli_common cm = {0, 0, false};
    arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "PATH", "llama2.c .bin, HF directory, tessera .safetensors or llama.cpp .gguf", NULL},
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Print a checkpoint's configuration.", specs, 2, argc, argv);
    if (rc != CLI_OK) return rc;
    if (!model) return cli_usage_error(prog, "--model is required");
    tsr_lm_model m;
    if ((rc = load_model_as(model, &m, -1, 0)) != CLI_OK) return rc;
    const tsr_lm_config *c = &m.cfg;
    if (cm.json) {
        printf("{\"dim\":%d,\"hidden_dim\":%d,\"n_layers\":%d,\"n_heads\":%d,\"n_kv_heads\":%d,\"vocab_size\":%d,"
               "\"seq_len\":%d,\"shared_classifier\":%s,\"params\":%lld,\"dtype\":\"%s\",\"rope\":\"%s\","
               "\"kernels\":\"%s\"}\n",
               c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len,
               c->shared_classifier ? "true" : "false", (long long)tsr_lm_model_params(&m), tsr_lm_wtype_name(m.wtype),
               c->rope_layout == TSR_LM_ROPE_HALF ? "half" : "interleaved", tsr_cpu_level_name(tsr_cpu_level()));
    } else {
        printf("dim %d, hidden %d, layers %d, heads %d (kv %d), vocab %d, context %d, %s classifier, %lld parameters, "
               "%s weights, %s kernels\n",
               c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len,
               c->shared_classifier ? "shared" : "separate", (long long)tsr_lm_model_params(&m),
               tsr_lm_wtype_name(m.wtype), tsr_cpu_level_name(tsr_cpu_level()));
    }
    tsr_lm_model_free(&m);
    return CLI_OK;
}

/* ------------------------------------------------------------ random models */

/* "dim=384,layers=6,heads=6,kv_heads=6,hidden=1024,vocab=4096,seq=1024,tied=0,seed=1" */
static bool parse_random(const char *spec, tsr_lm_config *c, uint64_t *seed) {
    *c = (tsr_lm_config){384, 1024, 6, 6, 6, 4096, 1024, 10000.0f, 1e-5f, true, TSR_LM_ROPE_HALF};
    *seed = 1;
    bool kv_set = false;
    const char *p = spec;
    while (*p) {
        char key[32];
        long long v;
        int used = 0;
        if (sscanf(p, "%31[a-z_]=%lld%n", key, &v, &used) != 2 || v < 0 || v > (1 << 24)) return false;
        p += used;
        if (*p == ',') p++;
        else if (*p) return false;
        if (strcmp(key, "dim") == 0) c->dim = (int)v;
        else if (strcmp(key, "layers") == 0) c->n_layers = (int)v;
        else if (strcmp(key, "heads") == 0) c->n_heads = (int)v;
        else if (strcmp(key, "kv_heads") == 0) c->n_kv_heads = (int)v, kv_set = true;
        else if (strcmp(key, "hidden") == 0) c->hidden_dim = (int)v;
        else if (strcmp(key, "vocab") == 0) c->vocab_size = (int)v;
        else if (strcmp(key, "seq") == 0) c->seq_len = (int)v;
        else if (strcmp(key, "tied") == 0) c->shared_classifier = v != 0;
        else if (strcmp(key, "seed") == 0) *seed = (uint64_t)v;
        else return false;
    }
    if (!kv_set) c->n_kv_heads = c->n_heads;
    return true;
}

#define RANDOM_HELP "a random model instead of --model: dim=,layers=,heads=,kv_heads=,hidden=,vocab=,seq=,tied=,seed="

static int model_or_random(const char *prog, const char *model, const char *random, int wt, int gs,
                           tsr_lm_model *m) {
    if (!model == !random) return cli_usage_error(prog, "give exactly one of --model and --random");
    if (model) return load_model_as(model, m, wt, gs);
    tsr_lm_config c;
    uint64_t seed;
    if (!parse_random(random, &c, &seed)) return cli_usage_error(prog, "--random: cannot parse '%s'", random);
    tsr_status st = tsr_lm_model_alloc_typed(m, &c, wt < 0 ? TSR_LM_W_F32 : (tsr_lm_wtype)wt,
                                             gs ? gs : TSR_LM_Q8_GROUP);
    if (st.code) return cli_fail(st, "--random gives the config of the model");
    /* trained-model scale: N(0, 0.02) projections, unit norms */
    tsr_lm_model_randomize(m, seed, 0.02f);
    for (int l = 0; l < c.n_layers; l++)
        for (int i = 0; i < c.dim; i++) {
            ((float *)m->layers[l].rms_att)[i] = 1.0f;
            ((float *)m->layers[l].rms_ffn)[i] = 1.0f;
        }
    for (int i = 0; i < c.dim; i++) ((float *)m->rms_final)[i] = 1.0f;
    return CLI_OK;
}

/* ------------------------------------------------------------ convert */

/* --to gguf: matrices in the GGUF type named by --dtype (auto: the model's) */
static int convert_gguf(const tsr_lm_model *m, const char *dtype, const char *model, const char *tok_path,
                        const char *out) {
    uint32_t gt = m->wtype == TSR_LM_W_BF16 ? TSR_GGML_BF16 : m->wtype == TSR_LM_W_Q8 ? TSR_GGML_Q8_0 : TSR_GGML_F32;
    if (dtype && strcmp(dtype, "auto") != 0)
        gt = strcmp(dtype, "bf16") == 0 ? TSR_GGML_BF16 : strcmp(dtype, "q8") == 0 ? TSR_GGML_Q8_0 : TSR_GGML_F32;
    char tok_default[4096];
    if (!tok_path && model) {
        default_tokenizer(model, tok_default, sizeof tok_default);
        tok_path = tok_default;
    }
    if (!tok_path || (!ends_with(tok_path, ".json") && !is_gguf_path(tok_path)))
        return cli_fail(tsr_errorf(TSR_ERR_ARG, "GGUF output needs a byte-level BPE tokenizer (tokenizer.json)"),
                        "pass --tokenizer PATH/tokenizer.json (llama2.c tokenizer.bin files are not converted)");
    tsr_bpe tok;
    tsr_status st = load_bpe(&tok, tok_path);
    if (st.code) return cli_fail(st, "--tokenizer expects the tokenizer.json that matches the model");
    int bos, eos;
    tsr_lm_bpe_specials(&tok, &bos, &eos);
    st = tsr_lm_save_gguf(m, &tok, bos, eos, gt, out);
    tsr_bpe_free(&tok);
    if (st.code) return cli_fail(st, NULL);
    fprintf(stderr, "wrote %s (GGUF, %s matrices, %lld parameters, tokenizer %s)\n", out, tsr_ggml_type_name(gt),
            (long long)tsr_lm_model_params(m), tok_path);
    return CLI_OK;
}

static int cmd_convert(const char *prog, int argc, char **argv) {
    const char *model = NULL, *random = NULL, *dtype = NULL, *out = NULL, *to = NULL, *tok_path = NULL;
    int group_size = 0;
    arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "PATH", "llama2.c .bin, HF directory, tessera .safetensors or llama.cpp .gguf", NULL},
        {"random", ARG_STR, &random, "SPEC", RANDOM_HELP, NULL},
        {"dtype", ARG_STR, &dtype, "T", "f32, bf16, q8 (GGUF: Q8_0) or auto (as stored; default)", NULL},
        {"group-size", ARG_INT, &group_size, "G", "Q8 group size, 32 or 64 (default 32; GGUF Q8_0 is 32)", NULL},
        {"to", ARG_STR, &to, "FORMAT", "safetensors (default) or gguf (llama.cpp's format, tokenizer included)", NULL},
        {"tokenizer", ARG_MODEL, &tok_path, "PATH",
         "GGUF only: the tokenizer.json to embed (default: next to the model)", NULL},
        {"out", ARG_STR, &out, "PATH", "output .safetensors (HF tensor names, config in the metadata) or .gguf", NULL},
    };
    int rc = args_parse(prog,
                        "Write a model as safetensors with bf16 or Q8 (int8 + per-group f32 scales) weights, or as a "
                        "llama.cpp GGUF (F32, BF16 or Q8_0, llama.cpp's names and q/k layout, gpt2 BPE tokenizer). "
                        "llama2.c q/k rows are reordered to HF's rotate-half RoPE layout.",
                        specs, (int)(sizeof specs / sizeof *specs), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!out) return cli_usage_error(prog, "--out is required");
    if (to && strcmp(to, "safetensors") != 0 && strcmp(to, "gguf") != 0)
        return cli_usage_error(prog, "--to must be safetensors or gguf");
    bool gguf = to ? strcmp(to, "gguf") == 0 : ends_with(out, ".gguf");
    if (tok_path && !gguf) return cli_usage_error(prog, "--tokenizer is only used with --to gguf");
    if (gguf && group_size && group_size != 32) return cli_usage_error(prog, "GGUF Q8_0 blocks are 32 wide");
    int wt;
    if ((rc = parse_dtype(prog, dtype, group_size, &wt)) != CLI_OK) return rc;
    if ((rc = cli_check_output(prog, "out", out, false)) != CLI_OK) return rc;
    tsr_lm_model m;
    /* GGUF: read as stored; the writer converts each row to the GGUF type */
    if ((rc = model_or_random(prog, model, random, gguf ? -1 : wt, group_size, &m)) != CLI_OK) return rc;
    if (gguf) {
        rc = convert_gguf(&m, dtype, model, tok_path, out);
        tsr_lm_model_free(&m);
        return rc;
    }
    tsr_status st = tsr_lm_save(&m, out);
    if (st.code) rc = cli_fail(st, NULL);
    else fprintf(stderr, "wrote %s (%s weights, %lld parameters)\n", out, tsr_lm_wtype_name(m.wtype),
                 (long long)tsr_lm_model_params(&m));
    tsr_lm_model_free(&m);
    return rc;
}

/* ------------------------------------------------------------ bench */

static void cpu_name(char *buf, size_t n) {
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ') c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(buf, n, "%s", c);
            }
            break;
        }
    fclose(f);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* fill the cache with ctx random tokens */
static tsr_status prefill_random(const tsr_lm_model *m, tsr_lm_cache *c, int ctx, tsr_rng *r) {
    int tok[TSR_LM_MAX_BATCH];
    for (int p = 0; p < ctx; p += TSR_LM_MAX_BATCH) {
        int nb = ctx - p < TSR_LM_MAX_BATCH ? ctx - p : TSR_LM_MAX_BATCH;
        for (int i = 0; i < nb; i++) tok[i] = (int)tsr_rng_below(r, (uint32_t)m->cfg.vocab_size);
        tsr_status st = tsr_lm_forward(m, c, tok, nb, p, NULL);
        if (st.code) return st;
    }
    return tsr_ok();
}

static int cmd_bench(const char *prog, int argc, char **argv) {
    const char *model = NULL, *random = NULL, *dtype = NULL;
    int group_size = 0, decode_tokens = 128, prefill_tokens = 64;
    cli_common cm = {0, 1, false};
    arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "PATH", "llama2.c .bin, HF directory, tessera .safetensors or llama.cpp .gguf", NULL},
        {"random", ARG_STR, &random, "SPEC", RANDOM_HELP, NULL},
        {"dtype", ARG_STR, &dtype, "T", "f32, bf16, q8 or auto (as stored; default)", NULL},
        {"group-size", ARG_INT, &group_size, "G", "Q8 group size, 32 or 64 (default: the file's, else 32)", NULL},
        {"decode-tokens", ARG_INT, &decode_tokens, "N", "decode steps timed (default 128)", NULL},
        {"prefill-tokens", ARG_INT, &prefill_tokens, "N", "tokens in the timed prefill forward (default 64)", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Decode tokens/s against the memory-bandwidth bound, prefill GFLOPS against sgemm, and the "
                        "cost of one forward over n = 1..64 tokens relative to n = 1 (all limits measured in the "
                        "same run).",
                        specs, (int)(sizeof specs / sizeof *specs), argc, argv);
    if (rc != CLI_OK) return rc;
    int wt;
    if ((rc = parse_dtype(prog, dtype, group_size, &wt)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "decode-tokens", decode_tokens, 1, INT32_MAX)) != CLI_OK ||
        (rc = cli_check_int(prog, "prefill-tokens", prefill_tokens, 1, INT32_MAX)) != CLI_OK)
        return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    tsr_lm_model m;
    if ((rc = model_or_random(prog, model, random, wt, group_size, &m)) != CLI_OK) return rc;
    const tsr_lm_config *c = &m.cfg;
    tsr_lm_cache cache;
    tsr_status st = tsr_lm_cache_init(&cache, c, 0);
    if (st.code) {
        tsr_lm_model_free(&m);
        return cli_fail(st, NULL);
    }
    int L = c->seq_len;
    if (prefill_tokens > L) prefill_tokens = L;
    int start = L / 8 < 16 ? L / 8 : 16; /* decode starts after a short prompt */
    if (start + decode_tokens > L) decode_tokens = L - start;
    float *logits = malloc(sizeof(float) * (size_t)c->vocab_size * TSR_LM_MAX_BATCH);
    int *toks = malloc(sizeof(int) * (size_t)(prefill_tokens > TSR_LM_MAX_BATCH ? prefill_tokens : TSR_LM_MAX_BATCH));
    tsr_rng r;
    tsr_rng_seed(&r, cm.seed);
    if (!logits || !toks) {
        st = tsr_errorf(TSR_ERR_NOMEM, "bench: out of memory");
        goto done;
    }
    /* limits */
    double bw = tsr_lm_bench_read_bw(0, 5, NULL);
    double sg = tsr_lm_bench_sgemm_gflops(2048, 2);

    /* decode: one token per forward after a short prompt */
    if ((st = prefill_random(&m, &cache, start, &r)).code) goto done;
    int tok = (int)tsr_rng_below(&r, (uint32_t)c->vocab_size);
    st = tsr_lm_forward(&m, &cache, &tok, 1, start, logits); /* warm-up */
    if (st.code) goto done;
    /* per-step times: the median is the figure (other tenants of a shared
     * host stall single steps), the mean is reported beside it */
    double *step = malloc(sizeof(double) * (size_t)decode_tokens);
    if (!step) {
        st = tsr_errorf(TSR_ERR_NOMEM, "bench: out of memory");
        goto done;
    }
    double t0 = tsr_time();
    for (int i = 0; i < decode_tokens; i++) {
        double a = tsr_time();
        st = tsr_lm_forward(&m, &cache, &tok, 1, start + i, logits);
        step[i] = tsr_time() - a;
        if (st.code) {
            free(step);
            goto done;
        }
        tok = tsr_lm_argmax(logits, c->vocab_size);
    }
    double dec_mean = (tsr_time() - t0) / decode_tokens;
    qsort(step, (size_t)decode_tokens, sizeof(double), cmp_double);
    double dec_s = step[decode_tokens / 2], dec_best = step[0];
    free(step);
    double kv_per_pos = 2.0 * c->n_layers * cache.kv_dim * sizeof(float);
    double avg_keys = start + (decode_tokens + 1) / 2.0;
    double bytes_tok = (double)tsr_lm_model_decode_bytes(&m) + kv_per_pos * avg_keys;
    double bound_s = bytes_tok / (bw * 1e9);

    /* prefill: one forward over prefill_tokens at position 0, best of 3 */
    for (int i = 0; i < prefill_tokens; i++) toks[i] = (int)tsr_rng_below(&r, (uint32_t)c->vocab_size);
    double pre_best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double a = tsr_time();
        if ((st = tsr_lm_forward_last(&m, &cache, toks, prefill_tokens, 0, logits)).code) goto done;
        double d = tsr_time() - a;
        if (d < pre_best) pre_best = d;
    }
    double pre_gflops = tsr_lm_forward_flops(c, prefill_tokens, 0) / pre_best / 1e9;

    /* batch-cost curves at two contexts */
    int ctxs[2] = {128, 512};
    double curve[2][7];
    int ncurve = 0;
    for (int ci = 0; ci < 2; ci++) {
        if (ctxs[ci] + TSR_LM_MAX_BATCH > L) break;
        if ((st = prefill_random(&m, &cache, ctxs[ci], &r)).code) goto done;
        for (int i = 0; i < TSR_LM_MAX_BATCH; i++) toks[i] = (int)tsr_rng_below(&r, (uint32_t)c->vocab_size);
        for (int k = 0, n = 1; n <= TSR_LM_MAX_BATCH; k++, n *= 2) {
            double best = 1e30;
            for (int rep = 0; rep < 5; rep++) {
                double a = tsr_time();
                if ((st = tsr_lm_forward(&m, &cache, toks, n, ctxs[ci], logits)).code) goto done;
                double d = tsr_time() - a;
                if (d < best) best = d;
            }
            curve[ci][k] = best;
        }
        ncurve++;
    }

    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "bench", "lm");
    cJSON_AddStringToObject(j, "model", model ? model : random);
    cJSON_AddStringToObject(j, "dtype", tsr_lm_wtype_name(m.wtype));
    if (m.wtype == TSR_LM_W_Q8) cJSON_AddNumberToObject(j, "group_size", m.group_size);
    cJSON_AddStringToObject(j, "cpu", cpu);
    cJSON_AddNumberToObject(j, "threads", tsr_threads_get());
    cJSON_AddStringToObject(j, "kernels", tsr_cpu_level_name(tsr_cpu_level()));
    cJSON_AddNumberToObject(j, "params", (double)tsr_lm_model_params(&m));
    cJSON_AddNumberToObject(j, "weight_bytes_per_token", (double)tsr_lm_model_decode_bytes(&m));
    cJSON_AddNumberToObject(j, "kv_bytes_per_token", kv_per_pos * avg_keys);
    cJSON_AddNumberToObject(j, "read_bw_gbs", bw);
    cJSON_AddNumberToObject(j, "read_bw_threads", tsr_lm_bench_read_bw_threads());
    cJSON_AddNumberToObject(j, "read_bw_mib", (double)(tsr_lm_bench_read_bw_bytes() >> 20));
    cJSON_AddNumberToObject(j, "decode_tokens", decode_tokens);
    cJSON_AddNumberToObject(j, "tokens_per_s", 1.0 / dec_s);
    cJSON_AddNumberToObject(j, "ms_per_token", dec_s * 1e3);
    cJSON_AddNumberToObject(j, "tokens_per_s_mean", 1.0 / dec_mean);
    cJSON_AddNumberToObject(j, "tokens_per_s_best", 1.0 / dec_best);
    cJSON_AddNumberToObject(j, "bandwidth_fraction_best", bound_s / dec_best);
    cJSON_AddNumberToObject(j, "bound_tokens_per_s", 1.0 / bound_s);
    cJSON_AddNumberToObject(j, "bandwidth_fraction", bound_s / dec_s);
    cJSON_AddNumberToObject(j, "prefill_tokens", prefill_tokens);
    cJSON_AddNumberToObject(j, "prefill_tokens_per_s", prefill_tokens / pre_best);
    cJSON_AddNumberToObject(j, "prefill_gflops", pre_gflops);
    cJSON_AddNumberToObject(j, "sgemm_gflops", sg);
    cJSON_AddNumberToObject(j, "sgemm_fraction", pre_gflops / sg);
    for (int ci = 0; ci < ncurve; ci++) {
        char key[64];
        double rel[7];
        for (int k = 0; k < 7; k++) rel[k] = curve[ci][k] / curve[ci][0];
        snprintf(key, sizeof key, "batch_cost_ctx%d", ctxs[ci]);
        cJSON_AddItemToObject(j, key, cJSON_CreateDoubleArray(rel, 7));
        snprintf(key, sizeof key, "batch_ms_n1_ctx%d", ctxs[ci]);
        cJSON_AddNumberToObject(j, key, curve[ci][0] * 1e3);
    }
    char *txt = cm.json ? cJSON_PrintUnformatted(j) : cJSON_Print(j);
    if (txt) puts(txt);
    free(txt);
    cJSON_Delete(j);
done:
    free(logits);
    free(toks);
    tsr_lm_cache_free(&cache);
    tsr_lm_model_free(&m);
    return st.code ? cli_fail(st, NULL) : CLI_OK;
}

int cli_lm_tokenizer_train(const char *prog, int argc, char **argv); /* cmd_lm_data.c */
int cli_lm_tokenize(const char *prog, int argc, char **argv);
int cli_lm_train(const char *prog, int argc, char **argv); /* cmd_lm_train.c */

static const cli_verb k_verbs[] = {
    {"generate", "continue a prompt (llama2.c run.c semantics)", cmd_generate},
    {"info", "print a checkpoint's configuration", cmd_info},
    {"convert", "write a model as safetensors (f32, bf16, Q8) or GGUF (F32, BF16, Q8_0)", cmd_convert},
    {"bench", "decode/prefill throughput against bandwidth and sgemm limits; batch-cost curve", cmd_bench},
    {"tokenizer-train", "learn a byte-level BPE tokenizer.json on a corpus's train split", cli_lm_tokenizer_train},
    {"tokenize", "tokenise the train/val splits to token files (bytes, tokens per split)", cli_lm_tokenize},
    {"train", "train the decoder on the code corpus (eval in bits per byte, exact resume)", cli_lm_train},
    {NULL, NULL, NULL},
};

const cli_family cli_family_lm = {"lm", "Llama-family language model: tokenizers, checkpoints (llama2.c, HF, safetensors), generation", k_verbs};
