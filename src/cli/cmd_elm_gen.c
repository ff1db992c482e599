/* tessera CLI: stage 2 of the ELM family — `tessera elm train` (AR or
 * masked generator over cached codes), `sample` (class grids as PNG, KV
 * cache vs recomputation timing), `eval` (generation metrics) and
 * `analyze` (token randomness, attention locality and maps). The verbs
 * are listed in cmd_elm.c's table. Protocol and figures: docs/elm.md. */
#include "cli/train_flags.h"

#include "tessera/elm.h"
#include "tessera/fileio.h"
#include "tessera/png.h"
#include "tessera/safetensors.h"
#include "tessera/corpus.h"
#include "tessera/fileio.h"

#include <math.h>
#include <signal.h>
#include <string.h>

#define DEFAULT_MODEL "models/elm_best.safetensors"
#define MODEL_HINT "pass --model with a checkpoint from 'tessera elm train' (shipped: " DEFAULT_MODEL ")"
#define CODES_HINT "pass --codes with a file from 'tessera elm encode --split train'"
#define OUT_HINT "check that the output directory exists and is writable"
#define DEF_CLASSIFIER "models/fmnist_cnn.safetensors"

int cli_elm_train(const char *prog, int argc, char **argv);
int cli_elm_sample(const char *prog, int argc, char **argv);
int cli_elm_gen_eval(const char *prog, int argc, char **argv);
int cli_elm_analyze(const char *prog, int argc, char **argv);

int cli_elm_train(const char *prog, int argc, char **argv) {
    tsr_elm_train_opts o = tsr_elm_default_train_opts();
    const char *kind = "ar", *codes = NULL, *tokp = NULL;
    o.train.out = NULL; /* default by kind */
    cli_train t = cli_train_init(o.train, o.batch, CLI_TF_STEPS | CLI_TF_EPOCHS | CLI_TF_BATCH);
    tsr_elm_cfg g = o.cfg;
    const arg_spec specs[] = {
        {"kind", ARG_STR, &kind, "ar|mlm", "autoregressive (raster order) or masked (MaskGIT) model", NULL},
        {"codes", ARG_STR, &codes, "PATH", "training codes from 'tessera elm encode --split train'", NULL},
        {"tokenizer", ARG_MODEL, &tokp, "PATH", "tokenizer the codes came from (recorded for sampling)", NULL},
        {"token-each", ARG_INT, &g.n_sub, "N", "sub-tokens per code (BAE: K/N bits each; VQ: 1)", NULL},
        {"dim", ARG_INT, &g.dim, "C", "model width", NULL},
        {"layers", ARG_INT, &g.n_layers, "L", "transformer blocks", NULL},
        {"heads", ARG_INT, &g.n_heads, "H", "attention heads (head dim divisible by 4)", NULL},
        {"hidden", ARG_INT, &g.hidden, "F", "SwiGLU hidden width", NULL},
        {"out", ARG_STR, &t.o.out, "PATH", "checkpoint [elm_<kind>.safetensors]; state in *.state.safetensors", NULL},
        {"label-drop", ARG_FLOAT, &o.label_drop, "P", "probability of the null class (CFG)", NULL},
        {"grad-clip", ARG_FLOAT, &t.o.clip, "X", "the same as --clip", NULL},
        {"train-limit", ARG_I64, &o.train_limit, "N", "train on the first N code maps (0: all)", NULL},
    };
    int rc = cli_train_parse(prog, "Train a class-conditional AR or masked generator over tokenizer codes (resumable; SIGINT/SIGTERM stop with a checkpoint).",
                             specs, (int)(sizeof specs / sizeof specs[0]), &t, argc, argv);
    if (rc != CLI_OK) return rc;
    if (strcmp(kind, "ar") == 0) g.kind = TSR_ELM_AR;
    else if (strcmp(kind, "mlm") == 0) g.kind = TSR_ELM_MLM;
    else return cli_usage_error(prog, "--kind must be 'ar' or 'mlm', got '%s'", kind);
    if (!codes) return cli_usage_error(prog, "--codes is required");
    if (!(o.label_drop >= 0 && o.label_drop <= 1)) return cli_usage_error(prog, "--label-drop must be in [0,1]");
    if (o.train_limit < 0) return cli_usage_error(prog, "--train-limit must be >= 0");
    if (!t.o.out) t.o.out = g.kind == TSR_ELM_AR ? "elm_ar.safetensors" : "elm_mlm.safetensors";
    if ((rc = cli_train_check_log(&t)) != CLI_OK) return rc;
    tsr_status st = tsr_output_check(t.o.out);
    if (st.code) return cli_fail(st, OUT_HINT);
    /* the tokenizer kind and code size come from the codes file */
    tsr_st_file f;
    st = tsr_st_read(codes, &f);
    if (st.code) return cli_fail(st, CODES_HINT);
    const char *tk = tsr_st_meta(&f, "kind"), *bk = tsr_st_meta(&f, "bits"), *ck = tsr_st_meta(&f, "codebook"),
               *tp = tsr_st_meta(&f, "tokenizer");
    if (!tk || !bk || !ck) {
        tsr_st_free(&f);
        return cli_fail(tsr_errorf(TSR_ERR_FORMAT, "%s: no tokenizer metadata (kind, bits, codebook)", codes), CODES_HINT);
    }
    g.tok = strcmp(tk, "vq") == 0 ? TSR_IMGTOK_VQ : TSR_IMGTOK_BAE;
    const char *tkname = tsr_imgtok_kind_name(g.tok);
    g.bits = g.tok == TSR_IMGTOK_BAE ? atoi(bk) : 0;
    g.codebook = g.tok == TSR_IMGTOK_VQ ? atoi(ck) : 0;
    static char tokbuf[512];
    snprintf(tokbuf, sizeof tokbuf, "%s", tokp ? tokp : tp ? tp : "");
    tsr_st_free(&f);
    if (tokp) { /* recorded for sampling: it must load and produce these codes, checked before training */
        tsr_imgtok tk_chk;
        if ((st = tsr_imgtok_load(&tk_chk, tokp)).code)
            return cli_fail(st, "pass --tokenizer with the tokenizer the --codes came from (or leave it out)");
        bool same = tk_chk.cfg.kind == g.tok &&
                    (g.tok == TSR_IMGTOK_BAE ? tk_chk.cfg.bits == g.bits : tk_chk.cfg.codebook == g.codebook);
        tsr_imgtok_free(&tk_chk);
        if (!same)
            return cli_fail(tsr_errorf(TSR_ERR_ARG, "%s does not produce the codes in %s (%s codes, %d %s)", tokp,
                                       codes, tkname, g.tok == TSR_IMGTOK_BAE ? g.bits : g.codebook,
                                       g.tok == TSR_IMGTOK_BAE ? "bits" : "entries"),
                            "pass --tokenizer with the tokenizer the --codes came from (or leave it out)");
    }
    o.cfg = g;
    o.codes = codes;
    o.tokenizer = tokbuf;
    o.batch = t.batch;
    if (!t.quiet)
        fprintf(stderr, "%s: %s over %s codes (token_each %d), dim %d, %d layers, %d threads, %d epochs, batch %d, out %s%s\n",
                prog, kind, tkname, g.n_sub, g.dim, g.n_layers, tsr_threads_get(), t.o.epochs, o.batch, t.o.out,
                t.o.resume ? " (resume)" : "");
    cli_train_begin(&t);
    o.train = t.o;
    tsr_elm_train_result r;
    st = tsr_elm_train(&o, &r);
    cli_train_end(&t, &(tsr_train_result){.step = r.steps, .total = r.total, .interrupted = r.interrupted});
    if (st.code)
        return cli_fail(st, strstr(st.msg, codes) ? CODES_HINT : cli_train_hint(&t, st, "check the model flags"));
    tsr_elm_model m;
    int64_t params = 0;
    if (!tsr_elm_load(&m, t.o.out).code) {
        params = tsr_elm_param_count(&m);
        tsr_elm_free(&m);
    }
    if (t.cm.json) {
        printf("{\"steps\": %lld, \"finished\": %s, \"loss\": %.6f, \"nll\": %.6f, \"params\": %lld, "
               "\"images_per_s\": %.1f, \"seconds\": %.2f, \"threads\": %d, \"out\": ",
               (long long)r.steps, r.finished ? "true" : "false", (double)r.last_loss,
               (double)r.last_nll, (long long)params, r.images_per_s, r.seconds, tsr_threads_get());
        cli_json_str(stdout, t.o.out);
        printf("}\n");
    } else {
        printf("%s %lld steps (%.0f img/s, %.1f s), last loss %.4f (nll %.4f nats/code), %lld params; saved %s\n",
               r.finished ? "finished" : "stopped at", (long long)r.steps, r.images_per_s, r.seconds,
               (double)r.last_loss, (double)r.last_nll, (long long)params, t.o.out);
    }
    return CLI_OK;
}

/* ---------------------------------------------------------- sampling flags */

typedef struct {
    tsr_elm_sample_opts so;
    const char *sched;
    bool no_cache;
} samp_flags;

#define SAMPLE_SPECS(sf)                                                                                   \
    {"temperature", ARG_FLOAT, &(sf)->so.temperature, "T", "softmax temperature per sub-token, 0..100 (0: greedy)", NULL}, \
    {"top-k", ARG_INT, &(sf)->so.top_k, "K", "keep the K most likely values of each sub-token (0: off)", NULL},   \
    {"top-p", ARG_FLOAT, &(sf)->so.top_p, "P", "nucleus mass per sub-token, in (0, 1] (1: off)", NULL},           \
    {"cfg", ARG_FLOAT, &(sf)->so.cfg_scale, "S", "classifier-free guidance scale, 0..100 (1: off)", NULL},         \
    {"cfg-schedule", ARG_STR, &(sf)->sched, "constant|linear", "guidance scale constant, or rising linearly from 1 to S", NULL}, \
    {"steps", ARG_INT, &(sf)->so.steps, "N", "MaskGIT iterations (masked models), 1..1000", NULL},                \
    {"choice-temp", ARG_FLOAT, &(sf)->so.choice_temp, "X", "MaskGIT Gumbel noise on confidences, annealed to 0; 0..100", NULL}, \
    {"no-kv-cache", ARG_BOOL, &(sf)->no_cache, NULL, "AR: re-run the whole prefix every step", NULL},            \
    {"batch", ARG_INT, &(sf)->so.batch, "B", "images per forward, 1..4096", NULL}

static int samp_check(const char *prog, samp_flags *sf, uint64_t seed) {
    if (strcmp(sf->sched, "constant") == 0) sf->so.cfg_sched = TSR_ELM_CFG_CONSTANT;
    else if (strcmp(sf->sched, "linear") == 0) sf->so.cfg_sched = TSR_ELM_CFG_LINEAR;
    else return cli_usage_error(prog, "--cfg-schedule must be 'constant' or 'linear', got '%s'", sf->sched);
    int rc;
    if ((rc = cli_check_float(prog, "temperature", sf->so.temperature, 0, 100)) != CLI_OK ||
        (rc = cli_check_int(prog, "top-k", sf->so.top_k, 0, INT32_MAX)) != CLI_OK ||
        (rc = cli_check_float(prog, "cfg", sf->so.cfg_scale, 0, 100)) != CLI_OK ||
        (rc = cli_check_int(prog, "steps", sf->so.steps, 1, 1000)) != CLI_OK ||
        (rc = cli_check_float(prog, "choice-temp", sf->so.choice_temp, 0, 100)) != CLI_OK ||
        (rc = cli_check_int(prog, "batch", sf->so.batch, 1, 4096)) != CLI_OK)
        return rc;
    if (!(sf->so.top_p > 0 && sf->so.top_p <= 1))
        return cli_usage_error(prog, "--top-p must be in (0, 1] (got %g)", (double)sf->so.top_p);
    sf->so.kv_cache = !sf->no_cache;
    sf->so.seed = seed;
    return CLI_OK;
}

static samp_flags samp_default(void) {
    samp_flags sf = {tsr_elm_default_sample_opts(), "linear", false};
    return sf;
}

/* loads the generator (the shipped one found from any directory) and its
 * tokenizer: tokp, else the path recorded in the generator, resolved
 * against the generator's own directory (then the shipped models) */
static int load_pair(const char *modelp, const char *tokp, tsr_elm_model *m, tsr_imgtok *tok) {
    char mbuf[4096], tbuf[4096];
    modelp = cli_shipped_default(modelp, DEFAULT_MODEL, mbuf, sizeof mbuf);
    tsr_status st = tsr_elm_load(m, modelp);
    if (st.code) return cli_fail(st, MODEL_HINT);
    const char *tp = tokp;
    if (!tp) {
        tsr_resolve_recorded(modelp, m->tokenizer, tbuf, sizeof tbuf);
        tp = tbuf;
    }
    st = tsr_imgtok_load(tok, tp);
    if (st.code) {
        tsr_elm_free(m);
        return cli_fail(st, "pass --tokenizer with the tokenizer the generator was trained on");
    }
    bool bae = m->cfg.tok == TSR_IMGTOK_BAE;
    if (tok->cfg.kind != m->cfg.tok || (bae && tok->cfg.bits != m->cfg.bits) ||
        (!bae && tok->cfg.codebook != m->cfg.codebook)) {
        tsr_imgtok_free(tok), tsr_elm_free(m);
        return cli_fail(tsr_errorf(TSR_ERR_ARG, "%s does not produce the codes of %s", tp, modelp),
                        "pass --tokenizer with the tokenizer the generator was trained on");
    }
    return CLI_OK;
}

static tsr_status codes_to_png(const tsr_elm_model *m, const tsr_imgtok *tok, const int32_t *sub,
                               int64_t n, int cols, const char *path) {
    const bool bae = m->cfg.tok == TSR_IMGTOK_BAE;
    uint8_t *bits = bae ? malloc((size_t)(n * TSR_ELM_POS * m->cfg.bits)) : NULL;
    int32_t *ids = bae ? NULL : malloc(sizeof(int32_t) * (size_t)(n * TSR_ELM_POS));
    float *img = malloc(sizeof(float) * (size_t)(n * 784));
    uint8_t *u = malloc((size_t)(n * 784));
    TSR_ASSERT((bits || ids) && img && u);
    tsr_elm_join_codes(m, sub, n, bits, ids);
    tsr_imgtok_decode_codes(tok, bits, ids, n, img);
    tsr_png_from_unit(u, img, n * 784);
    int gw, gh;
    uint8_t *g = tsr_png_grid(u, (int)n, 28, 28, 1, cols, 2, 255, &gw, &gh);
    tsr_status st = tsr_png_write(path, g, gw, gh, 1);
    free(bits), free(ids), free(img), free(u), free(g);
    return st;
}

int cli_elm_sample(const char *prog, int argc, char **argv) {
    const char *modelp = DEFAULT_MODEL, *tokp = NULL, *out = NULL;
    int cls = -1;
    int64_t n = 10;
    bool compare = false;
    samp_flags sf = samp_default();
    cli_common cm = {0, 1, false};
    const arg_spec specs[] = {
        {"model", ARG_MODEL, &modelp, "PATH", "generator checkpoint [" DEFAULT_MODEL "]", NULL},
        {"tokenizer", ARG_MODEL, &tokp, "PATH", "tokenizer (default: the one recorded in the model)", NULL},
        {"class", ARG_INT, &cls, "C", "class 0..9, 10 = unconditional, -1 = every class (one row each) [-1]", NULL},
        {"n", ARG_I64, &n, "N", "images per class, 1..100000 [10]", NULL},
        {"out", ARG_STR, &out, "PATH", "PNG grid (one row per class; '-': stdout, the summary then goes to stderr; none: sample and time only)", NULL},
        {"compare-cache", ARG_BOOL, &compare, NULL, "AR: also sample without the KV cache, check the tokens agree, report both speeds", NULL},
        SAMPLE_SPECS(&sf),
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_SEED(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Sample class-conditional images from a generator; a 10x10 class grid by default.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "class", cls, -1, TSR_ELM_CLASSES)) != CLI_OK ||
        (rc = cli_check_int(prog, "n", n, 1, 100000)) != CLI_OK)
        return rc;
    if ((rc = samp_check(prog, &sf, cm.seed)) != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (out && (rc = cli_check_output(prog, "out", out, true)) != CLI_OK) return rc;
    tsr_status gst = tsr_png_grid_check((cls < 0 ? TSR_ELM_CLASSES : 1) * (int64_t)n, 28, 28, n, 2);
    if (out && gst.code) /* before sampling, not after */
        return cli_usage_error(prog, "--n %lld: %s (at most %d per class with --out)", (long long)n, gst.msg,
                               (TSR_PNG_MAX_SIDE - 2) / 30);
    FILE *res = out && strcmp(out, "-") == 0 ? stderr : stdout; /* the PNG may take stdout */
    tsr_elm_model m;
    tsr_imgtok tok;
    if ((rc = load_pair(modelp, tokp, &m, &tok)) != CLI_OK) return rc;
    const int rows = cls < 0 ? TSR_ELM_CLASSES : 1;
    const int64_t total = rows * n, S = m.cfg.n_sub;
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)total);
    int32_t *sub = malloc(sizeof(int32_t) * (size_t)(total * TSR_ELM_POS * S));
    int32_t *sub2 = compare ? malloc(sizeof(int32_t) * (size_t)(total * TSR_ELM_POS * S)) : NULL;
    TSR_ASSERT(labels && sub);
    for (int64_t i = 0; i < total; i++) labels[i] = cls < 0 ? (int32_t)(i / n) : cls;
    double t0 = tsr_time();
    tsr_elm_sample(&m, &sf.so, labels, total, sub);
    double sec = tsr_time() - t0, sec2 = 0;
    bool same = true;
    if (compare) {
        tsr_elm_sample_opts o2 = sf.so;
        o2.kv_cache = !sf.so.kv_cache;
        t0 = tsr_time();
        tsr_elm_sample(&m, &o2, labels, total, sub2);
        sec2 = tsr_time() - t0;
        same = memcmp(sub, sub2, sizeof(int32_t) * (size_t)(total * TSR_ELM_POS * S)) == 0;
    }
    tsr_status st = tsr_ok();
    if (out) st = codes_to_png(&m, &tok, sub, total, (int)n, out);
    const bool ar = m.cfg.kind == TSR_ELM_AR;
    free(labels), free(sub), free(sub2);
    tsr_imgtok_free(&tok);
    tsr_elm_free(&m);
    if (st.code) return cli_fail(st, OUT_HINT);
    double ips = (double)total / (sec + 1e-9), ips2 = (double)total / (sec2 + 1e-9);
    if (cm.json) {
        fprintf(res, "{\"n\": %lld, \"model\": \"%s\", \"seconds\": %.3f, \"images_per_s\": %.2f, \"kv_cache\": %s",
                (long long)total, ar ? "ar" : "mlm", sec, ips, (ar && sf.so.kv_cache) ? "true" : "false");
        if (compare)
            fprintf(res, ", \"other_seconds\": %.3f, \"other_images_per_s\": %.2f, \"identical_tokens\": %s", sec2,
                    ips2, same ? "true" : "false");
        fprintf(res, ", \"threads\": %d, \"out\": ", tsr_threads_get());
        cli_json_str(res, out ? out : "");
        fprintf(res, "}\n");
    } else {
        fprintf(res, "sampled %lld images in %.2f s (%.1f images/s%s)%s%s\n", (long long)total, sec, ips,
                ar ? (sf.so.kv_cache ? ", KV cache" : ", recomputing the prefix") : "", out ? " -> " : "",
                out ? out : "");
        if (compare)
            fprintf(res, "%s: %.2f s (%.1f images/s); tokens %s\n", sf.so.kv_cache ? "without the cache" : "with the cache",
                    sec2, ips2, same ? "identical" : "DIFFER");
    }
    return same ? CLI_OK : CLI_FAIL;
}

int cli_elm_gen_eval(const char *prog, int argc, char **argv) {
    const char *modelp = DEFAULT_MODEL, *tokp = NULL, *clsp = DEF_CLASSIFIER, *data = NULL, *grid = NULL;
    int64_t per_class = 1000, n_real = 0;
    samp_flags sf = samp_default();
    cli_common cm = {0, 1, false};
    const arg_spec specs[] = {
        {"model", ARG_MODEL, &modelp, "PATH", "generator checkpoint [" DEFAULT_MODEL "]", NULL},
        {"tokenizer", ARG_MODEL, &tokp, "PATH", "tokenizer (default: the model's); without --model: reconstruction metrics of this tokenizer (stage 1)", NULL},
        {"classifier", ARG_MODEL, &clsp, "PATH", "fixed feature extractor / classifier", NULL},
        {"data", ARG_STR, &data, "DIR", "Fashion-MNIST directory (default: the installed data set)", NULL},
        {"n-per-class", ARG_I64, &per_class, "N", "samples per class, 1..100000 [1000: 10k in all]", NULL},
        {"real", ARG_I64, &n_real, "N", "real test images, 0..10000 (0: all 10000)", NULL},
        {"grid", ARG_STR, &grid, "PATH", "also write the first 10 samples of every class as a PNG", NULL},
        SAMPLE_SPECS(&sf),
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_SEED(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Generation metrics of a generator: Frechet distance, classifier accuracy, IS analogue, precision/recall (docs/elm.md). With --tokenizer and no --model: the tokenizer's reconstruction metrics.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "n-per-class", per_class, 1, 100000)) != CLI_OK ||
        (rc = cli_check_int(prog, "real", n_real, 0, 10000)) != CLI_OK)
        return rc;
    if ((rc = samp_check(prog, &sf, cm.seed)) != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (grid && (rc = cli_check_output(prog, "grid", grid, false)) != CLI_OK) return rc;
    char cbuf[4096];
    clsp = cli_shipped_default(clsp, DEF_CLASSIFIER, cbuf, sizeof cbuf);
    tsr_elm_model m;
    tsr_imgtok tok;
    if ((rc = load_pair(modelp, tokp, &m, &tok)) != CLI_OK) return rc;
    tsr_classifier cls;
    tsr_status st = tsr_classify_load(&cls, clsp);
    tsr_mnist d = {0};
    if (!st.code) {
        st = tsr_mnist_load(data, false, &d);
        if (st.code) tsr_classify_free(&cls);
    }
    if (st.code) {
        tsr_imgtok_free(&tok), tsr_elm_free(&m);
        return cli_fail(st, "pass --classifier models/fmnist_cnn.safetensors and --data with Fashion-MNIST");
    }
    const int64_t n = per_class * 10;
    float *img = malloc(sizeof(float) * (size_t)(n * 784));
    TSR_ASSERT(img);
    tsr_elm_gen_eval r;
    st = tsr_elm_evaluate(&m, &tok, &cls, &d, &sf.so, per_class, n_real, &r, img);
    if (!st.code && grid) {
        int per = per_class < 10 ? (int)per_class : 10;
        float *g = malloc(sizeof(float) * (size_t)(10 * per * 784));
        uint8_t *u = malloc((size_t)(10 * per * 784));
        TSR_ASSERT(g && u);
        for (int c = 0; c < 10; c++)
            memcpy(g + (size_t)c * per * 784, img + (size_t)c * per_class * 784, sizeof(float) * per * 784);
        tsr_png_from_unit(u, g, (int64_t)10 * per * 784);
        int gw, gh;
        uint8_t *gp = tsr_png_grid(u, 10 * per, 28, 28, 1, per, 2, 255, &gw, &gh);
        st = tsr_png_write(grid, gp, gw, gh, 1);
        free(g), free(u), free(gp);
    }
    const int64_t params = tsr_elm_param_count(&m);
    const tsr_elm_cfg g = m.cfg;
    free(img);
    tsr_mnist_free(&d);
    tsr_classify_free(&cls);
    tsr_imgtok_free(&tok);
    tsr_elm_free(&m);
    if (st.code) return cli_fail(st, OUT_HINT);
    if (cm.json) {
        printf("{\"n\": %lld, \"model\": \"%s\", \"tokenizer\": \"%s\", \"token_each\": %d, \"dim\": %d, "
               "\"layers\": %d, \"params\": %lld, \"fd\": %.4f, \"accuracy\": %.4f, \"is\": %.4f, "
               "\"precision\": %.4f, \"recall\": %.4f, \"gen_seconds\": %.2f, \"images_per_s\": %.2f, "
               "\"cfg\": %.3f, \"cfg_schedule\": \"%s\", \"temperature\": %.3f, \"top_k\": %d, \"top_p\": %.3f, "
               "\"seed\": %llu, \"threads\": %d, \"path\": ",
               (long long)r.n, tsr_elm_kind_name(g.kind), tsr_imgtok_kind_name(g.tok), g.n_sub, g.dim,
               g.n_layers, (long long)params, r.fd, r.accuracy, r.is, r.precision, r.recall,
               r.gen_seconds, r.images_per_s, (double)sf.so.cfg_scale, sf.sched,
               (double)sf.so.temperature, sf.so.top_k, (double)sf.so.top_p,
               (unsigned long long)sf.so.seed, tsr_threads_get());
        cli_json_str(stdout, modelp);
        printf("}\n");
    } else {
        printf("%s over %s codes (token_each %d), %lld params; %lld samples (%.1f images/s)\n",
               tsr_elm_kind_name(g.kind), tsr_imgtok_kind_name(g.tok), g.n_sub, (long long)params,
               (long long)r.n, r.images_per_s);
        printf("Frechet distance %.3f; classifier accuracy %.4f; IS %.3f; precision %.4f recall %.4f\n",
               r.fd, r.accuracy, r.is, r.precision, r.recall);
    }
    return CLI_OK;
}

/* attention maps of one query: (layers x heads) tiles of 7x7 upscaled 8x */
static tsr_status attn_png(const char *path, const float *map, int L, int H, int cap) {
    const int cell = 8, tile = 7 * cell, pad = 2;
    int gw = H * (tile + pad) + pad, gh = L * (tile + pad) + pad;
    uint8_t *px = malloc((size_t)gw * gh);
    TSR_ASSERT(px);
    memset(px, 255, (size_t)gw * gh);
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) {
            const float *p = map + ((size_t)l * H + h) * cap;
            float mx = 1e-12f;
            for (int j = 1; j < cap; j++) mx = p[j] > mx ? p[j] : mx;
            for (int y = 0; y < tile; y++)
                for (int x = 0; x < tile; x++) {
                    int j = 1 + (y / cell) * 7 + x / cell;
                    float v = p[j] / mx;
                    px[(size_t)(pad + l * (tile + pad) + y) * gw + pad + h * (tile + pad) + x] =
                        (uint8_t)(255.0f - 255.0f * (v < 0 ? 0 : v > 1 ? 1 : v));
                }
        }
    tsr_status st = tsr_png_write(path, px, gw, gh, 1);
    free(px);
    return st;
}

/* the same KL figures of n i.i.d. uniform tokens: the floor a finite
 * sample puts under them (the bigram one is large when V^2 >> n) */
static void uniform_floor(int32_t *scratch, int64_t n, int64_t V, double *u, double *b) {
    int32_t *t = malloc(sizeof(int32_t) * (size_t)n);
    TSR_ASSERT(t);
    tsr_rng r;
    tsr_rng_seed(&r, 99);
    for (int64_t i = 0; i < n; i++) t[i] = (int32_t)tsr_rng_below(&r, (uint32_t)V);
    tsr_elm_token_kl(t, 1, (int)n, V, u, b);
    free(t);
    (void)scratch;
}

int cli_elm_analyze(const char *prog, int argc, char **argv) {
    const char *modelp = NULL, *codes = NULL, *bpe = NULL, *png = NULL;
    int64_t limit = 200, bpe_limit = 0;
    int query = 25, each = 1;
    cli_common cm = {0, 1, false};
    const arg_spec specs[] = {
        {"codes", ARG_STR, &codes, "PATH", "codes from 'tessera elm encode': token randomness of the image tokens", NULL},
        {"bpe-tokens", ARG_STR, &bpe, "PATH", "token file from 'tessera lm tokenize': the same figures for BPE text tokens", NULL},
        {"bpe-limit", ARG_I64, &bpe_limit, "N", "use the first N BPE tokens (0: as many as the image tokens, else all)", NULL},
        {"token-each", ARG_INT, &each, "N", "BAE codes: read each K-bit code as N sub-tokens of K/N bits, in sequence [1]", NULL},
        {"model", ARG_MODEL, &modelp, "PATH", "generator: mean attention distance per layer on --codes", NULL},
        {"limit", ARG_I64, &limit, "N", "code maps for the attention statistics [200]", NULL},
        {"query", ARG_INT, &query, "P", "sequence position (1..49 = code P-1) whose attention --attn-png draws [25: the centre]", NULL},
        {"attn-png", ARG_STR, &png, "PATH", "attention maps of --query over the 7x7 grid, a row per layer, a column per head", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "The paper's analyses: token randomness (KL of unigram and bigram distributions from uniform) and attention locality.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!codes && !bpe) return cli_usage_error(prog, "pass --codes and/or --bpe-tokens");
    if (modelp && !codes) return cli_usage_error(prog, "--model needs --codes");
    if (png && !modelp) return cli_usage_error(prog, "--attn-png needs --model (the maps are the generator's)");
    if ((rc = cli_check_int(prog, "token-each", each, 1, 16)) != CLI_OK ||
        (rc = cli_check_int(prog, "limit", limit, 1, INT64_MAX)) != CLI_OK ||
        (rc = cli_check_int(prog, "query", query, 1, TSR_ELM_POS)) != CLI_OK ||
        (rc = cli_check_int(prog, "bpe-limit", bpe_limit, 0, INT64_MAX)) != CLI_OK)
        return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (png && (rc = cli_check_output(prog, "attn-png", png, false)) != CLI_OK) return rc;
    double kl_u = 0, kl_b = 0, bkl_u = 0, bkl_b = 0, fl_u = 0, fl_b = 0, bfl_u = 0, bfl_b = 0;
    int64_t n_img_tok = 0, V = 0, n_bpe = 0, bV = 0;
    double *dist = NULL;
    int L = 0;
    tsr_status st = tsr_ok();
    if (codes) {
        tsr_st_file f;
        st = tsr_st_read(codes, &f);
        if (st.code) return cli_fail(st, CODES_HINT);
        const tsr_st_tensor *tb = tsr_st_find(&f, "bits"), *ti = tsr_st_find(&f, "ids");
        const char *cb = tsr_st_meta(&f, "codebook");
        int64_t n = tb ? tb->shape[0] : ti ? ti->shape[0] : 0;
        if ((!tb && !ti) || (tb && (tb->ndim != 4 || tb->shape[3] > 24)) || (ti && !cb)) {
            tsr_st_free(&f);
            return cli_fail(tsr_errorf(TSR_ERR_FORMAT, "%s: no 'bits' (N,7,7,K<=24) or 'ids' codes", codes), CODES_HINT);
        }
        if (tb && tb->shape[3] % each) {
            tsr_st_free(&f);
            return cli_usage_error(prog, "--token-each must divide the %d bits of a code", (int)tb->shape[3]);
        }
        if (!tb) each = 1;
        int32_t *tok = malloc(sizeof(int32_t) * (size_t)(n * TSR_ELM_POS * each));
        TSR_ASSERT(tok);
        if (tb) {
            int K = (int)tb->shape[3], bs = K / each;
            const uint8_t *b = tb->data;
            for (int64_t i = 0; i < n * TSR_ELM_POS * each; i++) {
                int32_t v = 0;
                for (int k = 0; k < bs; k++) v |= (int32_t)(b[i * bs + k] & 1) << k;
                tok[i] = v;
            }
            V = (int64_t)1 << bs;
        } else {
            memcpy(tok, ti->data, sizeof(int32_t) * (size_t)(n * TSR_ELM_POS));
            V = atoi(cb);
        }
        tsr_st_free(&f);
        n_img_tok = n * TSR_ELM_POS * each;
        tsr_elm_token_kl(tok, n, TSR_ELM_POS * each, V, &kl_u, &kl_b);
        uniform_floor(tok, n_img_tok, V, &fl_u, &fl_b);
        free(tok);
    }
    if (bpe) {
        tsr_corpus_tokens t;
        st = tsr_corpus_tokens_load(&t, bpe, 0);
        if (st.code) return cli_fail(st, "pass --bpe-tokens with a file from 'tessera lm tokenize'");
        int64_t nn = (int64_t)t.n;
        if (bpe_limit > 0 && bpe_limit < nn) nn = bpe_limit;
        else if (!bpe_limit && n_img_tok > 0 && n_img_tok < nn) nn = n_img_tok;
        bV = 1;
        for (int64_t i = 0; i < (int64_t)t.n; i++) bV = t.ids[i] + 1 > bV ? t.ids[i] + 1 : bV;
        bV = (int64_t)t.vocab_size > bV ? (int64_t)t.vocab_size : bV;
        tsr_elm_token_kl(t.ids, 1, (int)nn, bV, &bkl_u, &bkl_b);
        uniform_floor(t.ids, nn, bV, &bfl_u, &bfl_b);
        n_bpe = nn;
        tsr_corpus_tokens_free(&t);
    }
    if (modelp) {
        tsr_elm_model m;
        st = tsr_elm_load(&m, modelp);
        if (st.code) return cli_fail(st, MODEL_HINT);
        int32_t *sub = NULL, *labels = NULL;
        int64_t n = 0;
        st = tsr_elm_load_codes(codes, &m, limit, &sub, &labels, &n);
        if (st.code) {
            tsr_elm_free(&m);
            return cli_fail(st, CODES_HINT);
        }
        L = m.cfg.n_layers;
        const int H = m.cfg.n_heads, C = m.cfg.dim, S = m.cfg.n_sub, T = TSR_ELM_POS + 1;
        dist = calloc((size_t)L, sizeof(double));
        int64_t *cnt = calloc((size_t)L, sizeof(int64_t));
        float *map = calloc((size_t)L * H * T, sizeof(float));
        float *x = malloc(sizeof(float) * (size_t)T * C), *hid = malloc(sizeof(float) * (size_t)T * C);
        TSR_ASSERT(dist && cnt && map && x && hid);
        /* real test codes, teacher-forced; the masked model sees a random
         * half of the positions masked (its inputs always hold masks) */
        tsr_rng r;
        tsr_rng_seed(&r, 7);
        const bool ar = m.cfg.kind == TSR_ELM_AR;
        for (int64_t i = 0; i < n; i++) {
            tsr_elm_infer s;
            tsr_elm_infer_init(&s, &m, 1, T);
            s.dist_sum = dist, s.dist_cnt = cnt;
            s.attn_map = i == 0 ? map : NULL;
            s.attn_q = query;
            tsr_elm_infer_embed(&m, labels[i], NULL, x);
            int32_t tk[TSR_ELM_MAX_SUB];
            for (int p = 0; p < TSR_ELM_POS; p++) {
                bool msk = !ar && tsr_rng_uniform(&r) < 0.5f;
                for (int j = 0; j < S; j++) tk[j] = msk ? m.sub_vocab[j] : sub[(i * TSR_ELM_POS + p) * S + j];
                tsr_elm_infer_embed(&m, 0, tk, x + (size_t)(1 + p) * C);
            }
            tsr_elm_infer_forward(&s, x, T, ar, hid);
            tsr_elm_infer_free(&s);
        }
        for (int l = 0; l < L; l++) dist[l] = cnt[l] ? dist[l] / (double)cnt[l] : 0;
        if (png) st = attn_png(png, map, L, H, T);
        free(cnt), free(map), free(x), free(hid), free(sub), free(labels);
        tsr_elm_free(&m);
        if (st.code) {
            free(dist);
            return cli_fail(st, OUT_HINT);
        }
    }
    if (cm.json) {
        printf("{");
        const char *sep = "";
        if (codes) {
            printf("\"image_tokens\": %lld, \"image_vocab\": %lld, \"image_kl_unigram\": %.4f, \"image_kl_bigram\": %.4f, "
                   "\"image_kl_unigram_norm\": %.4f, \"image_kl_bigram_norm\": %.4f, "
                   "\"image_uniform_floor_unigram\": %.4f, \"image_uniform_floor_bigram\": %.4f",
                   (long long)n_img_tok, (long long)V, kl_u, kl_b, kl_u / log((double)V), kl_b / (2 * log((double)V)),
                   fl_u, fl_b);
            sep = ", ";
        }
        if (bpe) {
            printf("%s\"bpe_tokens\": %lld, \"bpe_vocab\": %lld, \"bpe_kl_unigram\": %.4f, \"bpe_kl_bigram\": %.4f, "
                   "\"bpe_kl_unigram_norm\": %.4f, \"bpe_kl_bigram_norm\": %.4f, "
                   "\"bpe_uniform_floor_unigram\": %.4f, \"bpe_uniform_floor_bigram\": %.4f",
                   sep, (long long)n_bpe, (long long)bV, bkl_u, bkl_b, bkl_u / log((double)bV), bkl_b / (2 * log((double)bV)),
                   bfl_u, bfl_b);
            sep = ", ";
        }
        if (dist) {
            printf("%s\"attn_distance\": [", sep);
            for (int l = 0; l < L; l++) printf("%s%.4f", l ? ", " : "", dist[l]);
            printf("]");
        }
        printf("}\n");
    } else {
        if (codes)
            printf("image tokens: %lld (vocab %lld): KL from uniform unigram %.4f nats (%.3f of log V), bigram %.4f nats (%.3f of 2 log V)\n",
                   (long long)n_img_tok, (long long)V, kl_u, kl_u / log((double)V), kl_b, kl_b / (2 * log((double)V)));
        if (bpe)
            printf("BPE tokens:   %lld (vocab %lld): KL from uniform unigram %.4f nats (%.3f of log V), bigram %.4f nats (%.3f of 2 log V)\n",
                   (long long)n_bpe, (long long)bV, bkl_u, bkl_u / log((double)bV), bkl_b, bkl_b / (2 * log((double)bV)));
        if (dist) {
            printf("mean attention distance (grid cells) per layer:");
            for (int l = 0; l < L; l++) printf(" %.3f", dist[l]);
            printf("\n");
        }
    }
    free(dist);
    return CLI_OK;
}
