/* tessera CLI: `tessera bigr ...` — BiGR on Fashion-MNIST (src/models/bigr):
 * train, sample, eval, probe and the zero-shot applications (inpaint,
 * outpaint, edit, interpolate, enrich). Results on stdout (JSON with
 * --json), progress on stderr. SIGINT/SIGTERM stop training at the next
 * step with a checkpoint (resume with --resume). */
#include "cli/train_flags.h"

#include "tessera/bigr.h"
#include "tessera/classify.h"
#include "tessera/data.h"
#include "tessera/fileio.h"
#include "tessera/imgmetrics.h"
#include "tessera/imgtok.h"
#include "tessera/png.h"

#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#define DEF_MODEL "models/bigr_fmnist.safetensors"
#define DEF_TOK "models/fmnist_bae.safetensors"
#define DEF_CLS "models/fmnist_cnn.safetensors"
#define DEF_CODES "runs/bigr_codes.safetensors"
#define CODES_HELP "BAE code cache (built from --tokenizer and the data set on first use)"
#define WRITE_CODES_HELP "build a missing --codes cache at that path (about 55 MB)"
#define MODEL_HINT "pass --model with a checkpoint from 'tessera bigr train' (shipped: " DEF_MODEL ")"

#define TOK_HINT "pass --tokenizer with the BAE (" DEF_TOK ")"
#define CLS_HINT "pass --classifier (" DEF_CLS ")"
#define CODES_HINT "pass --codes with a cache from 'tessera bigr codes' (or a new path with --write-codes)"

/* The files this command line named, so a hint names the flag of the file
 * an error is about (the message starts with its path) rather than guessing
 * from words in the message ("cnn" sent a --codes error to --classifier). */
enum { HP_MODEL, HP_TOK, HP_CLS, HP_CODES, HP_N };
static const char *hint_paths[HP_N];
static const char *const hint_texts[HP_N] = {MODEL_HINT, TOK_HINT, CLS_HINT, CODES_HINT};

static void hint_files(const char *model, const char *tok, const char *cls, const char *codes) {
    hint_paths[HP_MODEL] = model, hint_paths[HP_TOK] = tok, hint_paths[HP_CLS] = cls, hint_paths[HP_CODES] = codes;
}

static int fail_hint(tsr_status st, const char *path_model) {
    const char *hint = "see --help";
    size_t best = 0; /* the longest path the message starts with */
    for (int i = 0; i < HP_N; i++) {
        size_t n = hint_paths[i] ? strlen(hint_paths[i]) : 0;
        if (n > best && strncmp(st.msg, hint_paths[i], n) == 0 && (st.msg[n] == ':' || st.msg[n] == ' '))
            best = n, hint = hint_texts[i];
    }
    if (best) return cli_fail(st, hint);
    if (path_model && strstr(st.msg, path_model)) hint = MODEL_HINT;
    else if (strstr(st.msg, "idx") || strstr(st.msg, "fashion"))
        hint = "pass --data DIR with the Fashion-MNIST IDX files";
    else if (strstr(st.msg, "cannot resume")) hint = "resume with the flags of the original run, or drop --resume";
    else if (strstr(st.msg, "fmnist_bae") || strstr(st.msg, "tokenizer"))
        hint = TOK_HINT;
    else if (strstr(st.msg, "cnn")) hint = CLS_HINT;
    else if (strstr(st.msg, "cannot create") || strstr(st.msg, "failed"))
        hint = "check that the output directory exists and is writable";
    return cli_fail(st, hint);
}

/* ------------------------------------------------------------------ codes */

static int cmd_codes(const char *prog, int argc, char **argv) {
    const char *tok = DEF_TOK, *data = NULL, *out = DEF_CODES;
    int64_t limit = 0;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"tokenizer", ARG_MODEL, &tok, "PATH", "BAE tokenizer", NULL},
        {"data", ARG_STR, &data, "DIR", "Fashion-MNIST directory (default: the installed data set)", NULL},
        {"out", ARG_STR, &out, "PATH", "code cache to write", NULL},
        {"limit", ARG_I64, &limit, "N", "only the first N images of each split (0: all)", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Encode Fashion-MNIST (train + test) to BAE bits once, for every other bigr verb.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "limit", limit, 0, INT64_MAX)) != CLI_OK) return rc;
    if (strncmp(out, "runs/", 5) == 0) mkdir("runs", 0777);
    if ((rc = cli_check_output(prog, "out", out, false)) != CLI_OK) return rc;
    char tbuf[4096];
    tok = cli_shipped_default(tok, DEF_TOK, tbuf, sizeof tbuf);
    hint_files(NULL, tok, NULL, NULL);
    tsr_bigr_codes cd;
    double t0 = tsr_time();
    tsr_status st = tsr_bigr_codes_build(&cd, tok, data, limit);
    if (!st.code) st = tsr_bigr_codes_save(&cd, out);
    if (st.code) return fail_hint(st, NULL);
    double sec = tsr_time() - t0;
    if (cm.json) {
        printf("{\"train\": %lld, \"test\": %lld, \"bits\": %d, \"seconds\": %.2f, \"out\": ",
               (long long)cd.n_train, (long long)cd.n_test, cd.K, sec);
        cli_json_str(stdout, out);
        printf("}\n");
    } else {
        printf("encoded %lld + %lld images to %d bits x 49 positions in %.1f s: %s\n",
               (long long)cd.n_train, (long long)cd.n_test, cd.K, sec, out);
    }
    tsr_bigr_codes_free(&cd);
    return CLI_OK;
}

/* The code cache: built and written on first use. A missing cache at a
 * path other than the default is most likely a typo, and building it
 * writes ~55 MB there: that takes --write-codes. */
static tsr_status get_codes(tsr_bigr_codes *cd, const char *codes, const char *tok, const char *data,
                            bool write) {
    char tbuf[4096];
    tok = cli_shipped_default(tok, DEF_TOK, tbuf, sizeof tbuf); /* the shipped BAE from any directory */
    struct stat sb;
    if (stat(codes, &sb) != 0) {
        if (!write && strcmp(codes, DEF_CODES) != 0)
            return tsr_errorf(TSR_ERR_IO,
                              "%s: no code cache there; pass --write-codes to encode the data set into "
                              "a new cache at that path (about 55 MB), or fix the path",
                              codes);
        /* the default cache lives in runs/ (git-ignored) */
        if (strncmp(codes, "runs/", 5) == 0) mkdir("runs", 0777);
        tsr_status st = tsr_output_check(codes); /* before encoding 70,000 images */
        if (st.code) return st;
        fprintf(stderr, "tessera bigr: %s does not exist: encoding Fashion-MNIST with %s into a new code "
                        "cache there (about 55 MB)\n", codes, tok);
    }
    return tsr_bigr_codes_get(cd, codes, tok, data);
}

/* ------------------------------------------------------------------ train */

static int cmd_train(const char *prog, int argc, char **argv) {
    tsr_bigr_train_opts o = tsr_bigr_default_train_opts();
    o.codes = DEF_CODES;
    cli_train t = cli_train_init(o.train, o.batch, CLI_TF_STEPS | CLI_TF_EPOCHS | CLI_TF_BATCH);
    const char *tok = DEF_TOK, *data = NULL, *target = "flip";
    bool write_codes = false;
    const arg_spec specs[] = {
        {"codes", ARG_STR, &o.codes, "PATH", CODES_HELP, NULL},
        {"write-codes", ARG_BOOL, &write_codes, NULL, WRITE_CODES_HELP, NULL},
        {"tokenizer", ARG_MODEL, &tok, "PATH", "BAE tokenizer for building the code cache", NULL},
        {"data", ARG_STR, &data, "DIR", "Fashion-MNIST directory (default: the installed data set)", NULL},
        {"out", ARG_STR, &t.o.out, "PATH", "checkpoint; training state in *.state.safetensors", NULL},
        {"dim", ARG_INT, &o.cfg.dim, "N", "model width d", NULL},
        {"layers", ARG_INT, &o.cfg.n_layers, "N", "transformer blocks", NULL},
        {"heads", ARG_INT, &o.cfg.n_heads, "N", "attention heads", NULL},
        {"hidden", ARG_INT, &o.cfg.ffn_hidden, "N", "SwiGLU hidden width", NULL},
        {"tc-hidden", ARG_INT, &o.cfg.tc_hidden, "N", "transcoder width", NULL},
        {"tc-blocks", ARG_INT, &o.cfg.tc_blocks, "N", "transcoder residual blocks", NULL},
        {"diffusion-steps", ARG_INT, &o.cfg.T, "T", "Bernoulli-diffusion training steps", NULL},
        {"target", ARG_STR, &target, "flip|x0", "transcoder predicts the flip mask x0^x_t (BiGR) or x0", NULL},
        {"repeat", ARG_INT, &o.repeat, "N", "transcoder samples (t, x_t) per masked position", NULL},
        {"p-uncond", ARG_FLOAT, &o.p_uncond, "X", "label dropout for classifier-free guidance", NULL},
        {"train-limit", ARG_I64, &o.train_limit, "N", "train on the first N images (0: all)", NULL},
    };
    int rc = cli_train_parse(prog, "Train BiGR (masked bit modelling + binary transcoder) on the BAE codes of Fashion-MNIST, resumable.",
                             specs, (int)(sizeof specs / sizeof specs[0]), &t, argc, argv);
    if (rc != CLI_OK) return rc;
    if (strcmp(target, "flip") == 0) o.cfg.target = TSR_BIGR_TARGET_FLIP;
    else if (strcmp(target, "x0") == 0) o.cfg.target = TSR_BIGR_TARGET_X0;
    else return cli_usage_error(prog, "--target must be 'flip' or 'x0', got '%s'", target);
    tsr_status st = tsr_bigr_check_cfg(&o.cfg);
    if (st.code) return cli_usage_error(prog, "%s", st.msg);
    if (o.repeat < 1 || o.repeat > 64) return cli_usage_error(prog, "--repeat must be in [1,64]");
    if (!(o.p_uncond >= 0 && o.p_uncond <= 1)) return cli_usage_error(prog, "--p-uncond must be in [0,1]");
    if (o.train_limit < 0) return cli_usage_error(prog, "--train-limit must be >= 0");
    o.batch = t.batch;
    if (cli_same_file(t.o.out, o.codes)) return cli_usage_error(prog, "--out names the --codes cache; pass another --out");
    if ((st = tsr_output_check(t.o.out)).code) return fail_hint(st, NULL);
    hint_files(NULL, tok, NULL, o.codes);
    tsr_bigr_codes cd;
    st = get_codes(&cd, o.codes, tok, data, write_codes);
    if (st.code) return fail_hint(st, NULL);
    tsr_bigr_codes_free(&cd);
    if (!t.quiet)
        fprintf(stderr, "%s: d %d, %d layers, target %s, %d threads, %d epochs, batch %d, lr %g, out %s%s\n",
                prog, o.cfg.dim, o.cfg.n_layers, target, tsr_threads_get(), t.o.epochs, o.batch,
                (double)t.o.lr, t.o.out, t.o.resume ? " (resume)" : "");
    cli_train_begin(&t);
    o.train = t.o;
    tsr_train_result r;
    st = tsr_bigr_train(&o, &r);
    cli_train_end(&t, &r);
    if (st.code) return cli_fail(st, cli_train_hint(&t, st, "see --help"));
    if (t.cm.json) {
        printf("{\"steps\": %lld, \"finished\": %s, \"loss\": %.6f, \"images_per_s\": %.1f, "
               "\"seconds\": %.2f, \"threads\": %d, \"out\": ",
               (long long)r.step, r.finished ? "true" : "false", (double)r.last_loss,
               r.items_per_s, r.seconds, tsr_threads_get());
        cli_json_str(stdout, t.o.out);
        printf("}\n");
    } else {
        printf("%s %lld steps (%.0f img/s), last loss %.4f; saved %s\n",
               r.finished ? "finished" : "stopped at", (long long)r.step, r.items_per_s,
               (double)r.last_loss, t.o.out);
    }
    return CLI_OK;
}

/* ------------------------------------------------- shared by the generators */

typedef struct {
    const char *model, *tok, *cls, *codes, *data, *out;
    int n, iters, steps, klass, klass2;
    float cfg, gumbel, temp;
    const char *order;
    bool deterministic, write_codes;
    int64_t real_n;
    cli_common cm;
    char model_buf[4096], tok_buf[4096], cls_buf[4096]; /* shipped defaults, found by gen_check */
} gen_args;

static void gen_defaults(gen_args *a) {
    tsr_bigr_sample_opts so = tsr_bigr_default_sample_opts();
    memset(a, 0, sizeof *a);
    a->model = DEF_MODEL, a->tok = DEF_TOK, a->cls = DEF_CLS, a->codes = DEF_CODES;
    a->n = 10, a->iters = so.iters, a->steps = so.steps, a->cfg = so.cfg, a->gumbel = so.gumbel;
    a->temp = so.temp, a->order = "entropy", a->klass = -1, a->klass2 = -1;
    a->cm.seed = 1;
    a->real_n = 10000;
}

#define GEN_SPECS(a)                                                                                    \
    {"model", ARG_MODEL, &(a)->model, "PATH", "BiGR checkpoint [" DEF_MODEL "]", NULL},                  \
    {"tokenizer", ARG_MODEL, &(a)->tok, "PATH", "BAE tokenizer [" DEF_TOK "]", NULL},                     \
    {"iters", ARG_INT, &(a)->iters, "N", "unmasking iterations, 1..49", NULL},                          \
    {"steps", ARG_INT, &(a)->steps, "N", "transcoder diffusion steps, 1..100000", NULL},                \
    {"cfg", ARG_FLOAT, &(a)->cfg, "X", "classifier-free guidance scale, 0..100 (1: off)", NULL},        \
    {"gumbel", ARG_FLOAT, &(a)->gumbel, "X", "Gumbel temperature on the confidences, 0..100", NULL},   \
    {"temp", ARG_FLOAT, &(a)->temp, "X", "transcoder logit temperature, in (0, 100]", NULL},             \
    {"order", ARG_STR, &(a)->order, "entropy|random|raster", "which positions to fix first", NULL},     \
    {"deterministic", ARG_BOOL, &(a)->deterministic, NULL, "fix bits by p > 0.5 instead of Bernoulli(p)", NULL}, \
    {"out", ARG_STR, &(a)->out, "PATH", "PNG grid to write", NULL},                                     \
    CLI_COMMON_THREADS(&(a)->cm), CLI_COMMON_SEED(&(a)->cm), CLI_COMMON_JSON(&(a)->cm)

/* flags shared by the generator verbs: ranges, the shipped defaults (found
 * from any working directory) and the output PNG, before any work */
static int gen_check(const char *prog, gen_args *a, tsr_bigr_sample_opts *so) {
    *so = tsr_bigr_default_sample_opts();
    int rc;
    if ((rc = cli_check_int(prog, "iters", a->iters, 1, 49)) != CLI_OK ||
        (rc = cli_check_int(prog, "steps", a->steps, 1, 100000)) != CLI_OK ||
        (rc = cli_check_float(prog, "cfg", a->cfg, 0, 100)) != CLI_OK ||
        (rc = cli_check_float(prog, "gumbel", a->gumbel, 0, 100)) != CLI_OK ||
        (rc = cli_check_int(prog, "real", a->real_n, 2, 10000)) != CLI_OK)
        return rc;
    if (!(a->temp > 0 && a->temp <= 100))
        return cli_usage_error(prog, "--temp must be in (0, 100] (got %g)", (double)a->temp);
    int o = -1;
    for (int i = 0; i < TSR_BIGR_ORDER_COUNT; i++)
        if (strcmp(a->order, tsr_bigr_order_name((tsr_bigr_order)i)) == 0) o = i;
    if (o < 0) return cli_usage_error(prog, "--order must be entropy, random or raster");
    so->iters = a->iters, so->steps = a->steps, so->cfg = a->cfg, so->gumbel = a->gumbel;
    so->temp = a->temp, so->order = (tsr_bigr_order)o, so->deterministic = a->deterministic;
    if ((rc = cli_common_apply(prog, &a->cm)) != CLI_OK) return rc;
    if (a->out && (rc = cli_check_output(prog, "out", a->out, false)) != CLI_OK) return rc;
    a->model = cli_shipped_default(a->model, DEF_MODEL, a->model_buf, sizeof a->model_buf);
    a->tok = cli_shipped_default(a->tok, DEF_TOK, a->tok_buf, sizeof a->tok_buf);
    a->cls = cli_shipped_default(a->cls, DEF_CLS, a->cls_buf, sizeof a->cls_buf);
    hint_files(a->model, a->tok, a->cls, a->codes);
    return CLI_OK;
}

/* write n images (784 f32) as a grid of `cols` columns */
static tsr_status write_grid(const char *path, const float *img, int n, int cols) {
    uint8_t *u = malloc((size_t)n * 784);
    TSR_ASSERT(u);
    tsr_png_from_unit(u, img, (int64_t)n * 784);
    int gw, gh;
    uint8_t *g = tsr_png_grid(u, n, 28, 28, 1, cols, 2, 128, &gw, &gh);
    tsr_status st = tsr_png_write(path, g, gw, gh, 1);
    free(g);
    free(u);
    return st;
}

typedef struct {
    tsr_bigr m;
    tsr_imgtok tok;
    bool have_m, have_tok;
} gen_models;

static tsr_status gen_load(gen_models *g, const gen_args *a) {
    memset(g, 0, sizeof *g);
    tsr_status st = tsr_bigr_load(&g->m, a->model);
    g->have_m = !st.code;
    if (!st.code) {
        st = tsr_imgtok_load(&g->tok, a->tok);
        g->have_tok = !st.code;
    }
    if (!st.code && (g->tok.cfg.kind != TSR_IMGTOK_BAE || g->tok.cfg.bits != g->m.cfg.bits))
        st = tsr_errorf(TSR_ERR_ARG, "%s: the tokenizer is not a %d-bit BAE", a->tok, g->m.cfg.bits);
    return st;
}

static void gen_free(gen_models *g) {
    if (g->have_m) tsr_bigr_free(&g->m);
    if (g->have_tok) tsr_imgtok_free(&g->tok);
}

/* ---------------------------------------------------------------- sample */

static int cmd_sample(const char *prog, int argc, char **argv) {
    gen_args a;
    gen_defaults(&a);
    a.out = "bigr_samples.png";
    const arg_spec specs[] = {
        {"class", ARG_INT, &a.klass, "C", "class to sample, 0..9 (-1: every class, one row each)", NULL},
        {"n", ARG_INT, &a.n, "N", "samples per class, 1..1000", NULL},
        GEN_SPECS(&a),
    };
    int rc = args_parse(prog, "Class-conditional samples from BiGR to a PNG grid (one row per class).", specs,
                        (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    tsr_bigr_sample_opts so;
    if ((rc = cli_check_int(prog, "class", a.klass, -1, 9)) != CLI_OK ||
        (rc = cli_check_int(prog, "n", a.n, 1, 1000)) != CLI_OK)
        return rc;
    if ((rc = gen_check(prog, &a, &so)) != CLI_OK) return rc;
    gen_models g;
    tsr_status st = gen_load(&g, &a);
    if (st.code) {
        gen_free(&g);
        return fail_hint(st, a.model);
    }
    const int C = g.m.cfg.classes, K = g.m.cfg.bits;
    if (a.klass >= C) {
        gen_free(&g);
        return cli_check_int(prog, "class", a.klass, -1, C - 1);
    }
    int ncls = a.klass < 0 ? C : 1, B = ncls * a.n;
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)B);
    uint8_t *bits = malloc((size_t)B * TSR_BIGR_L * K);
    float *img = malloc(sizeof(float) * (size_t)B * 784);
    TSR_ASSERT(lab && bits && img);
    for (int i = 0; i < B; i++) lab[i] = a.klass < 0 ? i / a.n : a.klass;
    tsr_rng r;
    tsr_rng_seed(&r, a.cm.seed);
    double t0 = tsr_time();
    tsr_bigr_sample(&g.m, bits, NULL, lab, NULL, 0.0f, B, &so, &r);
    double sec = tsr_time() - t0;
    tsr_imgtok_decode_codes(&g.tok, bits, NULL, B, img);
    st = write_grid(a.out, img, B, a.n);
    if (!st.code) {
        if (a.cm.json) {
            printf("{\"n\": %d, \"order\": \"%s\", \"deterministic\": %s, \"cfg\": %g, \"seconds\": %.3f, "
                   "\"images_per_s\": %.3f, \"out\": ",
                   B, a.order, a.deterministic ? "true" : "false", (double)a.cfg, sec, B / sec);
            cli_json_str(stdout, a.out);
            printf("}\n");
        } else {
            printf("%d samples in %.2f s (%.2f images/s): %s\n", B, sec, B / sec, a.out);
        }
    }
    free(lab), free(bits), free(img);
    gen_free(&g);
    return st.code ? fail_hint(st, NULL) : CLI_OK;
}

/* ------------------------------------------------------------------ eval */

static int cmd_eval(const char *prog, int argc, char **argv) {
    gen_args a;
    gen_defaults(&a);
    a.n = 50;
    a.out = NULL;
    const arg_spec specs[] = {
        {"n", ARG_INT, &a.n, "N", "samples per class", NULL},
        {"classifier", ARG_MODEL, &a.cls, "PATH", "feature extractor [" DEF_CLS "]", NULL},
        {"data", ARG_STR, &a.data, "DIR", "Fashion-MNIST directory (default: the installed data set)", NULL},
        {"real", ARG_I64, &a.real_n, "N", "test images for the reference statistics, 2..10000", NULL},
        GEN_SPECS(&a),
    };
    int rc = args_parse(prog, "Class-conditional samples: class accuracy under the classifier, Frechet distance to the test set, IS analogue, images/s.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    tsr_bigr_sample_opts so;
    if ((rc = cli_check_int(prog, "n", a.n, 1, 10000)) != CLI_OK) return rc;
    if ((rc = gen_check(prog, &a, &so)) != CLI_OK) return rc;
    int64_t real_n = a.real_n;
    gen_models g;
    tsr_classifier cls;
    tsr_mnist test = {0};
    bool have_cls = false;
    tsr_status st = gen_load(&g, &a);
    if (!st.code) st = tsr_classify_load(&cls, a.cls), have_cls = !st.code;
    if (!st.code) st = tsr_mnist_load(a.data, false, &test);
    if (st.code) {
        gen_free(&g);
        if (have_cls) tsr_classify_free(&cls);
        return fail_hint(st, a.model);
    }
    const int C = g.m.cfg.classes, K = g.m.cfg.bits, B = C * a.n, fd = tsr_classify_feature_dim(&cls);
    if (real_n > test.n) real_n = test.n;
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)B);
    uint8_t *bits = malloc((size_t)B * TSR_BIGR_L * K);
    float *img = malloc(sizeof(float) * (size_t)B * 784);
    float *feat = malloc(sizeof(float) * (size_t)B * fd), *logit = malloc(sizeof(float) * (size_t)B * 10);
    float *rfeat = malloc(sizeof(float) * (size_t)real_n * fd);
    TSR_ASSERT(lab && bits && img && feat && logit && rfeat);
    for (int i = 0; i < B; i++) lab[i] = i % C;
    tsr_rng r;
    tsr_rng_seed(&r, a.cm.seed);
    double t0 = tsr_time();
    const int CH = 100;
    for (int s = 0; s < B; s += CH) {
        int nb = B - s < CH ? B - s : CH;
        tsr_bigr_sample(&g.m, bits + (int64_t)s * TSR_BIGR_L * K, NULL, lab + s, NULL, 0.0f, nb, &so, &r);
        if (!a.cm.json) fprintf(stderr, "\r%d/%d samples", s + nb, B);
    }
    double sec = tsr_time() - t0;
    if (!a.cm.json) fprintf(stderr, "\n");
    tsr_imgtok_decode_codes(&g.tok, bits, NULL, B, img);
    tsr_classify_run_f32(&cls, img, B, feat, logit);
    tsr_classify_run_u8(&cls, test.images.data, real_n, rfeat, NULL);
    double acc = tsr_class_accuracy(logit, lab, B, 10);
    double fdist = tsr_frechet_distance(feat, B, rfeat, real_n, fd);
    double is = tsr_inception_score(logit, B, 10);
    if (a.out) {
        /* first 10 samples of every class, one row per class */
        int per = a.n < 10 ? a.n : 10;
        float *gimg = malloc(sizeof(float) * (size_t)C * per * 784);
        TSR_ASSERT(gimg);
        for (int c = 0; c < C; c++)
            for (int j = 0; j < per; j++)
                memcpy(gimg + ((int64_t)c * per + j) * 784, img + ((int64_t)j * C + c) * 784, sizeof(float) * 784);
        st = write_grid(a.out, gimg, C * per, per);
        free(gimg);
    }
    if (!st.code) {
        if (a.cm.json) {
            printf("{\"n\": %d, \"class_accuracy\": %.4f, \"frechet_distance\": %.3f, \"inception_score\": %.3f, "
                   "\"images_per_s\": %.3f, \"seconds\": %.2f, \"order\": \"%s\", \"deterministic\": %s, "
                   "\"cfg\": %g, \"iters\": %d, \"steps\": %d, \"gumbel\": %g, \"threads\": %d, \"real\": %lld}\n",
                   B, acc, fdist, is, B / sec, sec, a.order, a.deterministic ? "true" : "false",
                   (double)a.cfg, a.iters, a.steps, (double)a.gumbel, tsr_threads_get(), (long long)real_n);
        } else {
            printf("%d samples (%s order, %s bits, cfg %g): class accuracy %.4f, Frechet distance %.3f, "
                   "IS %.3f, %.2f images/s\n",
                   B, a.order, a.deterministic ? "thresholded" : "Bernoulli", (double)a.cfg, acc, fdist, is,
                   B / sec);
        }
    }
    free(lab), free(bits), free(img), free(feat), free(logit), free(rfeat);
    tsr_mnist_free(&test);
    tsr_classify_free(&cls);
    gen_free(&g);
    return st.code ? fail_hint(st, NULL) : CLI_OK;
}

/* ----------------------------------------------------------------- probe */

static int cmd_probe(const char *prog, int argc, char **argv) {
    const char *model = DEF_MODEL, *codes = DEF_CODES, *tok = DEF_TOK, *data = NULL;
    int epochs = 20;
    int64_t train_limit = 0;
    bool no_baselines = false, normp = false, write_codes = false;
    cli_common cm = {0, 1, false};
    const arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "PATH", "BiGR checkpoint [" DEF_MODEL "]", NULL},
        {"codes", ARG_STR, &codes, "PATH", CODES_HELP, NULL},
        {"write-codes", ARG_BOOL, &write_codes, NULL, WRITE_CODES_HELP, NULL},
        {"tokenizer", ARG_MODEL, &tok, "PATH", "BAE tokenizer for building the code cache", NULL},
        {"data", ARG_STR, &data, "DIR", "Fashion-MNIST directory (default: the installed data set)", NULL},
        {"epochs", ARG_INT, &epochs, "N", "passes of the linear classifier over the train set", NULL},
        {"train-limit", ARG_I64, &train_limit, "N", "use the first N training images (0: all)", NULL},
        {"no-baselines", ARG_BOOL, &no_baselines, NULL, "skip the pixel and BAE-bit probes", NULL},
        {"norm-pool", ARG_BOOL, &normp, NULL, "scale every token to unit RMS before pooling (default: the raw residual stream)", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_SEED(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Linear probes (softmax regression, train set -> test accuracy) on the average-pooled tokens of every BiGR layer, raw pixels and BAE bits.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "epochs", epochs, 1, 1000)) != CLI_OK ||
        (rc = cli_check_int(prog, "train-limit", train_limit, 0, INT64_MAX)) != CLI_OK)
        return rc;
    char mbuf[4096], tbuf[4096];
    model = cli_shipped_default(model, DEF_MODEL, mbuf, sizeof mbuf);
    tok = cli_shipped_default(tok, DEF_TOK, tbuf, sizeof tbuf);
    hint_files(model, tok, NULL, codes);
    tsr_bigr m;
    tsr_bigr_codes cd;
    tsr_status st = tsr_bigr_load(&m, model);
    if (st.code) return fail_hint(st, model);
    st = get_codes(&cd, codes, tok, data, write_codes);
    if (!st.code && cd.K != m.cfg.bits) st = tsr_errorf(TSR_ERR_ARG, "%s: %d bits per position, the model has %d", codes, cd.K, m.cfg.bits);
    if (st.code) {
        tsr_bigr_free(&m);
        return fail_hint(st, NULL);
    }
    const int64_t ntr = train_limit > 0 && train_limit < cd.n_train ? train_limit : cd.n_train, nte = cd.n_test;
    const int NL = m.cfg.n_layers + 1, d = m.cfg.dim, K = cd.K, C = 10;
    float *ftr = malloc(sizeof(float) * (size_t)NL * ntr * d), *fte = malloc(sizeof(float) * (size_t)NL * nte * d);
    double *acc = malloc(sizeof(double) * (size_t)NL);
    TSR_ASSERT(ftr && fte && acc);
    double t0 = tsr_time();
    tsr_bigr_features(&m, cd.train_bits, ntr, ftr, normp);
    tsr_bigr_features(&m, cd.test_bits, nte, fte, normp);
    double tf = tsr_time() - t0;
    int best = 0;
    for (int l = 0; l < NL; l++) {
        acc[l] = tsr_bigr_linear_probe(ftr + (int64_t)l * ntr * d, cd.train_labels, ntr, fte + (int64_t)l * nte * d,
                                       cd.test_labels, nte, d, C, epochs, cm.seed);
        if (acc[l] > acc[best]) best = l;
        if (!cm.json) fprintf(stderr, "layer %d: %.4f\n", l, acc[l]);
    }
    double acc_pix = -1, acc_bits = -1;
    if (!no_baselines) {
        tsr_mnist tr, te;
        st = tsr_mnist_load(data, true, &tr);
        if (!st.code) {
            st = tsr_mnist_load(data, false, &te);
            if (st.code) tsr_mnist_free(&tr);
        }
        if (st.code) {
            free(ftr), free(fte), free(acc);
            tsr_bigr_free(&m), tsr_bigr_codes_free(&cd);
            return fail_hint(st, NULL);
        }
        float *xtr = malloc(sizeof(float) * (size_t)ntr * 784), *xte = malloc(sizeof(float) * (size_t)nte * 784);
        TSR_ASSERT(xtr && xte);
        for (int64_t i = 0; i < ntr * 784; i++) xtr[i] = tr.images.data[i] / 255.0f;
        for (int64_t i = 0; i < nte * 784; i++) xte[i] = te.images.data[i] / 255.0f;
        acc_pix = tsr_bigr_linear_probe(xtr, cd.train_labels, ntr, xte, cd.test_labels, nte, 784, C, epochs, cm.seed);
        if (!cm.json) fprintf(stderr, "pixels: %.4f\n", acc_pix);
        const int nb = TSR_BIGR_L * K;
        float *btr = realloc(xtr, sizeof(float) * (size_t)ntr * nb), *bte = realloc(xte, sizeof(float) * (size_t)nte * nb);
        TSR_ASSERT(btr && bte);
        for (int64_t i = 0; i < ntr * nb; i++) btr[i] = cd.train_bits[i];
        for (int64_t i = 0; i < nte * nb; i++) bte[i] = cd.test_bits[i];
        acc_bits = tsr_bigr_linear_probe(btr, cd.train_labels, ntr, bte, cd.test_labels, nte, nb, C, epochs, cm.seed);
        if (!cm.json) fprintf(stderr, "BAE bits: %.4f\n", acc_bits);
        free(btr), free(bte);
        tsr_mnist_free(&tr), tsr_mnist_free(&te);
    }
    if (cm.json) {
        printf("{\"layers\": [");
        for (int l = 0; l < NL; l++) printf("%s{\"layer\": %d, \"accuracy\": %.4f}", l ? ", " : "", l, acc[l]);
        printf("], \"best\": %.4f, \"best_layer\": %d", acc[best], best);
        if (!no_baselines) printf(", \"pixels\": %.4f, \"bae_bits\": %.4f", acc_pix, acc_bits);
        printf(", \"train\": %lld, \"test\": %lld, \"epochs\": %d, \"feature_seconds\": %.1f}\n", (long long)ntr,
               (long long)nte, epochs, tf);
    } else {
        for (int l = 0; l < NL; l++) printf("layer %d%s: %.4f\n", l, l == 0 ? " (embeddings)" : "", acc[l]);
        printf("best: layer %d, %.4f\n", best, acc[best]);
        if (!no_baselines) printf("pixels: %.4f\nBAE bits: %.4f\n", acc_pix, acc_bits);
    }
    free(ftr), free(fte), free(acc);
    tsr_bigr_free(&m);
    tsr_bigr_codes_free(&cd);
    return CLI_OK;
}

/* ---------------------------------------------------- zero-shot applications */

typedef enum { APP_INPAINT, APP_OUTPAINT, APP_EDIT } app_kind;

/* 7x7 box [r0,r1) x [c0,c1) */
static bool in_box(int p, const int box[4]) {
    int r = p / TSR_BIGR_GRID, c = p % TSR_BIGR_GRID;
    return r >= box[0] && r < box[1] && c >= box[2] && c < box[3];
}

static int parse_box(const char *prog, const char *s, int box[4]) {
    int end = -1;
    if (sscanf(s, "%d,%d,%d,%d%n", &box[0], &box[1], &box[2], &box[3], &end) != 4 || s[end] != 0 || box[0] < 0 ||
        box[1] > TSR_BIGR_GRID || box[2] < 0 || box[3] > TSR_BIGR_GRID || box[0] >= box[1] || box[2] >= box[3])
        return cli_usage_error(prog, "--box must be r0,r1,c0,c1 with 0 <= r0 < r1 <= 7, 0 <= c0 < c1 <= 7");
    return CLI_OK;
}

typedef struct {
    gen_models g;
    tsr_classifier cls;
    tsr_bigr_codes cd;
    tsr_mnist test;
    bool have_cls, have_cd, have_test;
    int64_t real_n; /* test images behind the reference statistics */
} app_env;

static void app_free(app_env *e) {
    gen_free(&e->g);
    if (e->have_cls) tsr_classify_free(&e->cls);
    if (e->have_cd) tsr_bigr_codes_free(&e->cd);
    if (e->have_test) tsr_mnist_free(&e->test);
}

static tsr_status app_load(app_env *e, const gen_args *a) {
    memset(e, 0, sizeof *e);
    tsr_status st = gen_load(&e->g, a);
    if (!st.code) st = tsr_classify_load(&e->cls, a->cls), e->have_cls = !st.code;
    if (!st.code) st = get_codes(&e->cd, a->codes, a->tok, a->data, a->write_codes), e->have_cd = !st.code;
    if (!st.code && e->cd.K != e->g.m.cfg.bits) st = tsr_errorf(TSR_ERR_ARG, "%s: wrong bits per position", a->codes);
    if (!st.code) st = tsr_mnist_load(a->data, false, &e->test), e->have_test = !st.code;
    if (!st.code && a->real_n < 2) st = tsr_errorf(TSR_ERR_ARG, "--real must be >= 2");
    e->real_n = !st.code && a->real_n < e->test.n ? a->real_n : e->test.n;
    return st;
}

/* reference features of the whole test set */
static float *app_real_feats(app_env *e, int *fd) {
    *fd = tsr_classify_feature_dim(&e->cls);
    float *f = malloc(sizeof(float) * (size_t)e->real_n * *fd);
    TSR_ASSERT(f);
    tsr_classify_run_u8(&e->cls, e->test.images.data, e->real_n, f, NULL);
    return f;
}

static double fd_of(app_env *e, const float *img, int n, const float *real, int fd, float *logits) {
    float *f = malloc(sizeof(float) * (size_t)n * fd);
    TSR_ASSERT(f);
    tsr_classify_run_f32(&e->cls, img, n, f, logits);
    double v = tsr_frechet_distance(f, n, real, e->real_n, fd);
    free(f);
    return v;
}

/* three rows of `show` images: a, b, c */
static tsr_status rows3(const char *path, const float *a, const float *b, const float *c, int show) {
    float *g = malloc(sizeof(float) * (size_t)3 * show * 784);
    TSR_ASSERT(g);
    memcpy(g, a, sizeof(float) * (size_t)show * 784);
    memcpy(g + (int64_t)show * 784, b, sizeof(float) * (size_t)show * 784);
    memcpy(g + (int64_t)2 * show * 784, c, sizeof(float) * (size_t)show * 784);
    tsr_status st = write_grid(path, g, 3 * show, show);
    free(g);
    return st;
}

static int run_paint(const char *prog, int argc, char **argv, app_kind kind) {
    gen_args a;
    gen_defaults(&a);
    a.n = kind == APP_EDIT ? 100 : 200;
    a.out = kind == APP_INPAINT ? "bigr_inpaint.png" : kind == APP_OUTPAINT ? "bigr_outpaint.png" : "bigr_edit.png";
    const char *boxs = kind == APP_OUTPAINT ? "2,5,2,5" : kind == APP_EDIT ? "0,7,2,5" : "2,5,1,6";
    const arg_spec specs[] = {
        {"n", ARG_INT, &a.n, "N", "test images (the first N; the grid shows up to 10)", NULL},
        {"box", ARG_STR, &boxs, "r0,r1,c0,c1", kind == APP_OUTPAINT ? "latent box that is kept" : "latent box that is regenerated", NULL},
        {"class", ARG_INT, &a.klass, "C", kind == APP_EDIT ? "new class for the region (-1: the next class)" : "class (-1: the true label)", NULL},
        {"codes", ARG_STR, &a.codes, "PATH", CODES_HELP, NULL},
        {"write-codes", ARG_BOOL, &a.write_codes, NULL, WRITE_CODES_HELP, NULL},
        {"classifier", ARG_MODEL, &a.cls, "PATH", "feature extractor [" DEF_CLS "]", NULL},
        {"data", ARG_STR, &a.data, "DIR", "Fashion-MNIST directory (default: the installed data set)", NULL},
        {"real", ARG_I64, &a.real_n, "N", "test images for the reference statistics, 2..10000", NULL},
        GEN_SPECS(&a),
    };
    int rc = args_parse(prog, kind == APP_INPAINT ? "Zero-shot inpainting: regenerate a latent box of test images given the rest; masked-region error and Frechet distance."
                              : kind == APP_OUTPAINT ? "Zero-shot outpainting: keep a latent box of test images, generate everything around it."
                                                     : "Zero-shot editing: regenerate a latent box under another class.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    tsr_bigr_sample_opts so;
    int box[4];
    if ((rc = parse_box(prog, boxs, box)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "n", a.n, 1, 10000)) != CLI_OK ||
        (rc = cli_check_int(prog, "class", a.klass, -1, 9)) != CLI_OK)
        return rc;
    if ((rc = gen_check(prog, &a, &so)) != CLI_OK) return rc;
    app_env e;
    tsr_status st = app_load(&e, &a);
    if (st.code) {
        app_free(&e);
        return fail_hint(st, a.model);
    }
    const int K = e.g.m.cfg.bits, L = TSR_BIGR_L, n = a.n < e.cd.n_test ? a.n : (int)e.cd.n_test;
    const int show = n < 10 ? n : 10;
    uint8_t *bits = malloc((size_t)n * L * K), *known = malloc((size_t)n * L);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)n);
    float *orig = malloc(sizeof(float) * (size_t)n * 784), *rec = malloc(sizeof(float) * (size_t)n * 784);
    float *vis = malloc(sizeof(float) * (size_t)n * 784), *out = malloc(sizeof(float) * (size_t)n * 784);
    float *logit = malloc(sizeof(float) * (size_t)n * 10);
    TSR_ASSERT(bits && known && lab && orig && rec && vis && out && logit);
    memcpy(bits, e.cd.test_bits, (size_t)n * L * K);
    for (int i = 0; i < n; i++) {
        int y = e.cd.test_labels[i];
        lab[i] = kind == APP_EDIT ? (a.klass >= 0 ? a.klass : (y + 1) % 10) : (a.klass >= 0 ? a.klass : y);
        for (int p = 0; p < L; p++) known[i * L + p] = (uint8_t)(kind == APP_OUTPAINT ? in_box(p, box) : !in_box(p, box));
    }
    for (int64_t i = 0; i < (int64_t)n * 784; i++) orig[i] = e.test.images.data[i] / 255.0f;
    tsr_imgtok_decode_codes(&e.g.tok, bits, NULL, n, rec);
    /* the regenerated region shown grey */
    int64_t region_px = 0;
    for (int i = 0; i < n; i++)
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) {
                int p = (y / 4) * TSR_BIGR_GRID + x / 4;
                bool gen = !known[i * L + p];
                vis[(int64_t)i * 784 + y * 28 + x] = gen ? 0.5f : rec[(int64_t)i * 784 + y * 28 + x];
                region_px += gen;
            }
    tsr_rng r;
    tsr_rng_seed(&r, a.cm.seed);
    double t0 = tsr_time();
    tsr_bigr_sample(&e.g.m, bits, known, lab, NULL, 0.0f, n, &so, &r);
    double sec = tsr_time() - t0;
    tsr_imgtok_decode_codes(&e.g.tok, bits, NULL, n, out);
    /* error inside the regenerated region: against the original image and
     * against the tokenizer's reconstruction (the best the code can do) */
    double mse_o = 0, mse_r = 0;
    for (int i = 0; i < n; i++)
        for (int q = 0; q < 784; q++) {
            int p = (q / 28 / 4) * TSR_BIGR_GRID + (q % 28) / 4;
            if (known[i * L + p]) continue;
            double d1 = out[(int64_t)i * 784 + q] - orig[(int64_t)i * 784 + q];
            double d2 = out[(int64_t)i * 784 + q] - rec[(int64_t)i * 784 + q];
            mse_o += d1 * d1, mse_r += d2 * d2;
        }
    mse_o /= (double)(region_px ? region_px : 1), mse_r /= (double)(region_px ? region_px : 1);
    int fdim;
    float *real = app_real_feats(&e, &fdim);
    double fd_out = fd_of(&e, out, n, real, fdim, logit);
    double acc_out = tsr_class_accuracy(logit, lab, n, 10);
    double fd_rec = fd_of(&e, rec, n, real, fdim, logit);
    double acc_rec = tsr_class_accuracy(logit, lab, n, 10);
    free(real);
    st = rows3(a.out, rec, vis, out, show);
    if (!st.code) {
        const char *what = kind == APP_INPAINT ? "inpaint" : kind == APP_OUTPAINT ? "outpaint" : "edit";
        if (a.cm.json) {
            printf("{\"app\": \"%s\", \"n\": %d, \"box\": [%d, %d, %d, %d], \"region_mse\": %.5f, "
                   "\"region_mse_vs_recon\": %.5f, \"frechet_distance\": %.3f, \"frechet_distance_recon\": %.3f, "
                   "\"class_accuracy\": %.4f, \"class_accuracy_recon\": %.4f, \"seconds\": %.2f, \"out\": ",
                   what, n, box[0], box[1], box[2], box[3], mse_o, mse_r, fd_out, fd_rec, acc_out, acc_rec, sec);
            cli_json_str(stdout, a.out);
            printf("}\n");
        } else {
            printf("%s %d images (box rows %d-%d, cols %d-%d): region MSE %.5f (vs BAE recon %.5f), "
                   "Frechet distance %.3f (BAE recon of the same images %.3f), class accuracy %.4f "
                   "(recon %.4f); grid %s\n",
                   what, n, box[0], box[1] - 1, box[2], box[3] - 1, mse_o, mse_r, fd_out, fd_rec, acc_out,
                   acc_rec, a.out);
        }
    }
    free(bits), free(known), free(lab), free(orig), free(rec), free(vis), free(out), free(logit);
    app_free(&e);
    return st.code ? fail_hint(st, NULL) : CLI_OK;
}

static int cmd_inpaint(const char *prog, int argc, char **argv) { return run_paint(prog, argc, argv, APP_INPAINT); }
static int cmd_outpaint(const char *prog, int argc, char **argv) { return run_paint(prog, argc, argv, APP_OUTPAINT); }
static int cmd_edit(const char *prog, int argc, char **argv) { return run_paint(prog, argc, argv, APP_EDIT); }

static int cmd_interpolate(const char *prog, int argc, char **argv) {
    gen_args a;
    gen_defaults(&a);
    a.n = 4;
    a.klass = 0, a.klass2 = 7;
    a.out = "bigr_interpolate.png";
    int points = 8;
    const arg_spec specs[] = {
        {"class", ARG_INT, &a.klass, "C", "first class", NULL},
        {"class2", ARG_INT, &a.klass2, "C", "second class", NULL},
        {"n", ARG_INT, &a.n, "N", "rows (independent noise)", NULL},
        {"points", ARG_INT, &points, "N", "interpolation points from class to class2", NULL},
        GEN_SPECS(&a),
    };
    int rc = args_parse(prog, "Zero-shot interpolation of the class embedding (token and adaLN) between two classes; one row per noise seed.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    tsr_bigr_sample_opts so;
    if ((rc = cli_check_int(prog, "n", a.n, 1, 100)) != CLI_OK ||
        (rc = cli_check_int(prog, "points", points, 2, 64)) != CLI_OK ||
        (rc = cli_check_int(prog, "class", a.klass, 0, 9)) != CLI_OK ||
        (rc = cli_check_int(prog, "class2", a.klass2, 0, 9)) != CLI_OK)
        return rc;
    if ((rc = gen_check(prog, &a, &so)) != CLI_OK) return rc;
    gen_models g;
    tsr_status st = gen_load(&g, &a);
    if (!st.code && (a.klass < 0 || a.klass >= g.m.cfg.classes || a.klass2 < 0 || a.klass2 >= g.m.cfg.classes))
        st = tsr_errorf(TSR_ERR_ARG, "--class and --class2 must be in [0,%d)", g.m.cfg.classes);
    if (st.code) {
        gen_free(&g);
        return fail_hint(st, a.model);
    }
    const int K = g.m.cfg.bits, n = a.n;
    uint8_t *bits = malloc((size_t)n * TSR_BIGR_L * K);
    int32_t *l1 = malloc(sizeof(int32_t) * (size_t)n), *l2 = malloc(sizeof(int32_t) * (size_t)n);
    float *img = malloc(sizeof(float) * (size_t)n * 784), *grid = malloc(sizeof(float) * (size_t)n * points * 784);
    TSR_ASSERT(bits && l1 && l2 && img && grid);
    for (int i = 0; i < n; i++) l1[i] = a.klass, l2[i] = a.klass2;
    for (int j = 0; j < points; j++) {
        float alpha = (float)j / (float)(points - 1);
        tsr_rng r;
        tsr_rng_seed(&r, a.cm.seed); /* the same noise at every point */
        tsr_bigr_sample(&g.m, bits, NULL, l1, l2, alpha, n, &so, &r);
        tsr_imgtok_decode_codes(&g.tok, bits, NULL, n, img);
        for (int i = 0; i < n; i++) memcpy(grid + ((int64_t)i * points + j) * 784, img + (int64_t)i * 784, sizeof(float) * 784);
    }
    st = write_grid(a.out, grid, n * points, points);
    if (!st.code) {
        if (a.cm.json) {
            printf("{\"class\": %d, \"class2\": %d, \"rows\": %d, \"points\": %d, \"out\": ", a.klass, a.klass2, n, points);
            cli_json_str(stdout, a.out);
            printf("}\n");
        } else {
            printf("interpolated class %d -> %d in %d points, %d rows: %s\n", a.klass, a.klass2, points, n, a.out);
        }
    }
    free(bits), free(l1), free(l2), free(img), free(grid);
    gen_free(&g);
    return st.code ? fail_hint(st, NULL) : CLI_OK;
}

static int cmd_enrich(const char *prog, int argc, char **argv) {
    gen_args a;
    gen_defaults(&a);
    a.n = 200;
    a.out = "bigr_enrich.png";
    const arg_spec specs[] = {
        {"n", ARG_INT, &a.n, "N", "test images (the first N; the grid shows up to 10)", NULL},
        {"codes", ARG_STR, &a.codes, "PATH", CODES_HELP, NULL},
        {"write-codes", ARG_BOOL, &a.write_codes, NULL, WRITE_CODES_HELP, NULL},
        {"classifier", ARG_MODEL, &a.cls, "PATH", "feature extractor [" DEF_CLS "]", NULL},
        {"data", ARG_STR, &a.data, "DIR", "Fashion-MNIST directory (default: the installed data set)", NULL},
        {"real", ARG_I64, &a.real_n, "N", "test images for the reference statistics, 2..10000", NULL},
        GEN_SPECS(&a),
    };
    int rc = args_parse(prog, "Zero-shot enrichment: encode a 2x-downsampled (blurred) test image, then re-inpaint the four sub-position groups (row, col parity) in turn.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    tsr_bigr_sample_opts so;
    if ((rc = cli_check_int(prog, "n", a.n, 1, 10000)) != CLI_OK) return rc;
    if ((rc = gen_check(prog, &a, &so)) != CLI_OK) return rc;
    app_env e;
    tsr_status st = app_load(&e, &a);
    if (st.code) {
        app_free(&e);
        return fail_hint(st, a.model);
    }
    const int K = e.g.m.cfg.bits, L = TSR_BIGR_L, n = a.n < e.cd.n_test ? a.n : (int)e.cd.n_test;
    const int show = n < 10 ? n : 10;
    float *orig = malloc(sizeof(float) * (size_t)n * 784), *low = malloc(sizeof(float) * (size_t)n * 784);
    float *lowrec = malloc(sizeof(float) * (size_t)n * 784), *out = malloc(sizeof(float) * (size_t)n * 784);
    uint8_t *bits = malloc((size_t)n * L * K), *known = malloc((size_t)n * L);
    float *logit = malloc(sizeof(float) * (size_t)n * 10);
    TSR_ASSERT(orig && low && lowrec && out && bits && known && logit);
    for (int64_t i = 0; i < (int64_t)n * 784; i++) orig[i] = e.test.images.data[i] / 255.0f;
    /* 2x2 average down to 14x14, nearest back up to 28x28 */
    for (int i = 0; i < n; i++)
        for (int y = 0; y < 14; y++)
            for (int x = 0; x < 14; x++) {
                const float *o = orig + (int64_t)i * 784;
                float v = 0.25f * (o[(2 * y) * 28 + 2 * x] + o[(2 * y) * 28 + 2 * x + 1] +
                                   o[(2 * y + 1) * 28 + 2 * x] + o[(2 * y + 1) * 28 + 2 * x + 1]);
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) low[(int64_t)i * 784 + (2 * y + dy) * 28 + 2 * x + dx] = v;
            }
    tsr_imgtok_encode_images(&e.g.tok, low, n, bits, NULL);
    tsr_imgtok_decode_codes(&e.g.tok, bits, NULL, n, lowrec);
    tsr_rng r;
    tsr_rng_seed(&r, a.cm.seed);
    double t0 = tsr_time();
    for (int grp = 0; grp < 4; grp++) {
        for (int i = 0; i < n; i++)
            for (int p = 0; p < L; p++) {
                int rr = p / TSR_BIGR_GRID, cc = p % TSR_BIGR_GRID;
                known[i * L + p] = (uint8_t)!((rr % 2) * 2 + (cc % 2) == grp);
            }
        tsr_bigr_sample(&e.g.m, bits, known, e.cd.test_labels, NULL, 0.0f, n, &so, &r);
    }
    double sec = tsr_time() - t0;
    tsr_imgtok_decode_codes(&e.g.tok, bits, NULL, n, out);
    int fdim;
    float *real = app_real_feats(&e, &fdim);
    double fd_low = fd_of(&e, lowrec, n, real, fdim, logit);
    double acc_low = tsr_class_accuracy(logit, e.cd.test_labels, n, 10);
    double fd_out = fd_of(&e, out, n, real, fdim, logit);
    double acc_out = tsr_class_accuracy(logit, e.cd.test_labels, n, 10);
    free(real);
    double ps_low = tsr_psnr(lowrec, orig, n, 784), ps_out = tsr_psnr(out, orig, n, 784);
    st = rows3(a.out, orig, lowrec, out, show);
    if (!st.code) {
        if (a.cm.json) {
            printf("{\"app\": \"enrich\", \"n\": %d, \"frechet_distance_low\": %.3f, \"frechet_distance\": %.3f, "
                   "\"class_accuracy_low\": %.4f, \"class_accuracy\": %.4f, \"psnr_low\": %.3f, \"psnr\": %.3f, "
                   "\"seconds\": %.2f, \"out\": ",
                   n, fd_low, fd_out, acc_low, acc_out, ps_low, ps_out, sec);
            cli_json_str(stdout, a.out);
            printf("}\n");
        } else {
            printf("enrich %d images: Frechet distance %.3f -> %.3f, class accuracy %.4f -> %.4f, PSNR %.2f -> %.2f dB; grid %s\n",
                   n, fd_low, fd_out, acc_low, acc_out, ps_low, ps_out, a.out);
        }
    }
    free(orig), free(low), free(lowrec), free(out), free(bits), free(known), free(logit);
    app_free(&e);
    return st.code ? fail_hint(st, NULL) : CLI_OK;
}

static const cli_verb k_verbs[] = {
    {"codes", "encode Fashion-MNIST to BAE bits once (the cache other verbs read)", cmd_codes},
    {"train", "train the masked bit transformer + binary transcoder", cmd_train},
    {"sample", "class-conditional samples (entropy/random/raster order) to a PNG grid", cmd_sample},
    {"eval", "samples' class accuracy, Frechet distance, IS analogue, images/s", cmd_eval},
    {"probe", "linear probes on every layer, raw pixels and BAE bits", cmd_probe},
    {"inpaint", "zero-shot: regenerate a masked box of test images", cmd_inpaint},
    {"outpaint", "zero-shot: keep a centre box, generate the border", cmd_outpaint},
    {"edit", "zero-shot: regenerate a region under another class", cmd_edit},
    {"interpolate", "zero-shot: interpolate class embeddings between two classes", cmd_interpolate},
    {"enrich", "zero-shot: encode a 2x-downsampled image, re-inpaint sub-position groups", cmd_enrich},
    {NULL, NULL, NULL},
};

const cli_family cli_family_bigr = {"bigr", "BiGR: binary latent codes for generation and representation (Fashion-MNIST)",
                                    k_verbs};
