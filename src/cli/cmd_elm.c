/* tessera CLI: `tessera elm tokenizer-train|encode|decode|eval` — stage 1 of
 * the ELM family (src/models/elm): binary / VQ image tokenizers on
 * Fashion-MNIST, codes to and from safetensors, reconstruction metrics,
 * PNG grids. Results on stdout (JSON with --json), progress on stderr. */
#include "cli/train_flags.h"

#include "tessera/elm.h"
#include "tessera/imgmetrics.h"
#include "tessera/png.h"
#include "tessera/safetensors.h"

#include <string.h>

#define DATA_HINT "pass --data DIR with the Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, ...)"
#define INIT_HINT "pass --init with a checkpoint from 'tessera elm tokenizer-train' (shipped: models/fmnist_bae.safetensors, models/fmnist_vq.safetensors)"
#define TOK_HINT "pass --tokenizer with a checkpoint from 'tessera elm tokenizer-train' (shipped: models/fmnist_bae.safetensors, models/fmnist_vq.safetensors)"
#define DEF_CLASSIFIER "models/fmnist_cnn.safetensors"
#define CLS_HINT "pass --classifier with the Fashion-MNIST CNN (" DEF_CLASSIFIER ")"
#define OUT_HINT "check that the output directory exists and is writable"

static int parse_split(const char *prog, const char *split, bool *train) {
    *train = strcmp(split, "train") == 0;
    if (!*train && strcmp(split, "test") != 0)
        return cli_usage_error(prog, "--split must be 'test' or 'train', got '%s'", split);
    return CLI_OK;
}

static int cmd_train(const char *prog, int argc, char **argv) {
    const char *kind = "bae";
    tsr_elm_tok_train_opts o = tsr_elm_tok_default_train_opts(TSR_IMGTOK_BAE);
    o.train.out = NULL; /* default by kind */
    cli_train t = cli_train_init(o.train, o.batch, CLI_TF_STEPS | CLI_TF_EPOCHS | CLI_TF_BATCH);
    int bits = 16, codebook = 1024, ch = 32;
    float commit = 0.25f, ema = 0.99f;
    const arg_spec specs[] = {
        {"kind", ARG_STR, &kind, "bae|vq", "binary autoencoder or vector-quantized autoencoder", NULL},
        {"bits", ARG_INT, &bits, "K", "BAE: bits per latent position; VQ: code vector dim", NULL},
        {"codebook", ARG_INT, &codebook, "N", "VQ codebook entries", NULL},
        {"ch", ARG_INT, &ch, "C", "conv width (even)", NULL},
        {"commit", ARG_FLOAT, &commit, "X", "VQ commitment weight", NULL},
        {"ema-decay", ARG_FLOAT, &ema, "X", "VQ codebook EMA decay", NULL},
        {"dead", ARG_FLOAT, &o.dead, "X", "VQ: restart entries whose EMA cluster size falls below X", NULL},
        {"data", ARG_STR, &o.data_dir, "DIR", "Fashion-MNIST directory (default: the installed data set)", NULL},
        {"out", ARG_STR, &t.o.out, "PATH", "checkpoint to write [fmnist_<kind>.safetensors]; state in *.state.safetensors", NULL},
        {"l1", ARG_FLOAT, &o.l1_w, "X", "weight of the L1 reconstruction loss", NULL},
        {"l2", ARG_FLOAT, &o.l2_w, "X", "weight of the L2 reconstruction loss", NULL},
        {"perceptual", ARG_FLOAT, &o.percep_w, "X", "weight of the feature-matching term on the classifier (0: off)", NULL},
        {"classifier", ARG_MODEL, &o.classifier, "PATH", "classifier for --perceptual", NULL},
        {"train-limit", ARG_I64, &o.train_limit, "N", "train on the first N images (0: all)", NULL},
        {"init", ARG_MODEL, &o.init, "PATH", "start from this tokenizer's weights and config (the config flags are ignored)", NULL},
        {"decoder-only", ARG_BOOL, &o.decoder_only, NULL, "freeze the encoder (and VQ codebook); train the decoder on the thresholded / nearest-entry codes", NULL},
    };
    int rc = cli_train_parse(prog, "Train a binary (BAE) or VQ image tokenizer on Fashion-MNIST (28x28 -> 7x7 codes), resumable.",
                             specs, (int)(sizeof specs / sizeof specs[0]), &t, argc, argv);
    if (rc != CLI_OK) return rc;
    tsr_imgtok_kind k;
    if (strcmp(kind, "bae") == 0) k = TSR_IMGTOK_BAE;
    else if (strcmp(kind, "vq") == 0) k = TSR_IMGTOK_VQ;
    else return cli_usage_error(prog, "--kind must be 'bae' or 'vq', got '%s'", kind);
    if (bits < 1 || bits > 64) return cli_usage_error(prog, "--bits must be in [1,64]");
    if (codebook < 2 || codebook > 65536) return cli_usage_error(prog, "--codebook must be in [2,65536]");
    if (ch < 2 || ch > 1024 || ch % 2) return cli_usage_error(prog, "--ch must be even in [2,1024]");
    if (!(commit >= 0 && commit <= 100)) return cli_usage_error(prog, "--commit must be in [0,100]");
    if (!(ema >= 0 && ema < 1)) return cli_usage_error(prog, "--ema-decay must be in [0,1)");
    if (!(o.l1_w >= 0) || !(o.l2_w >= 0) || !(o.percep_w >= 0) || !(o.dead >= 0))
        return cli_usage_error(prog, "--l1, --l2, --perceptual and --dead must be >= 0");
    if (o.train_limit < 0) return cli_usage_error(prog, "--train-limit must be >= 0");
    if (!(o.l1_w > 0 || o.l2_w > 0 || o.percep_w > 0))
        return cli_usage_error(prog, "--l1, --l2 and --perceptual are all 0: no reconstruction loss to train on");
    if (o.decoder_only && !o.init) return cli_usage_error(prog, "--decoder-only needs --init PATH (a trained tokenizer)");
    o.cfg = tsr_imgtok_default_cfg(k);
    o.cfg.bits = bits, o.cfg.codebook = codebook, o.cfg.ch = ch, o.cfg.commit = commit, o.cfg.ema_decay = ema;
    if (!t.o.out) t.o.out = k == TSR_IMGTOK_VQ ? "fmnist_vq.safetensors" : "fmnist_bae.safetensors";
    if ((rc = cli_train_check_log(&t)) != CLI_OK) return rc;
    o.batch = t.batch;
    if (!t.quiet) {
        if (o.init)
            fprintf(stderr, "%s: from %s%s, ", prog, o.init, o.decoder_only ? " (decoder only)" : "");
        else
            fprintf(stderr, "%s: %s, ", prog, kind);
        fprintf(stderr, "%d threads, %d epochs, batch %d, lr %g, out %s%s\n", tsr_threads_get(), t.o.epochs,
                o.batch, (double)t.o.lr, t.o.out, t.o.resume ? " (resume)" : "");
    }
    cli_train_begin(&t);
    o.train = t.o;
    tsr_elm_tok_train_result r;
    tsr_status st = tsr_elm_tok_train(&o, &r);
    cli_train_end(&t, &(tsr_train_result){.step = r.steps, .total = r.total, .interrupted = r.interrupted});
    if (st.code) {
        const char *hint = strstr(st.msg, "idx") || strstr(st.msg, "fashion") ? DATA_HINT
                           : o.percep_w > 0 && strstr(st.msg, o.classifier) ? CLS_HINT
                           : o.init && strstr(st.msg, o.init) ? INIT_HINT
                                                             : cli_train_hint(&t, st, NULL);
        return cli_fail(st, hint);
    }
    if (t.cm.json) {
        printf("{\"steps\": %lld, \"finished\": %s, \"loss\": %.6f, \"images_per_s\": %.1f, "
               "\"seconds\": %.2f, \"threads\": %d, \"out\": ",
               (long long)r.steps, r.finished ? "true" : "false", (double)r.last_loss,
               r.images_per_s, r.seconds, tsr_threads_get());
        cli_json_str(stdout, t.o.out);
        printf("}\n");
    } else {
        printf("%s %lld steps (%.0f img/s), last loss %.4f; saved %s\n",
               r.finished ? "finished" : "stopped at", (long long)r.steps, r.images_per_s,
               (double)r.last_loss, t.o.out);
    }
    return CLI_OK;
}

static float *images_f32(const tsr_mnist *d, int64_t n) {
    float *x = malloc(sizeof(float) * (size_t)(n * 784));
    TSR_ASSERT(x);
    for (int64_t i = 0; i < n * 784; i++) x[i] = (float)d->images.data[i] * (1.0f / 255.0f);
    return x;
}

static int cmd_encode(const char *prog, int argc, char **argv) {
    const char *tokp = NULL, *data = NULL, *split = "test", *out = NULL;
    int64_t limit = 0;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"tokenizer", ARG_MODEL, &tokp, "PATH", "tokenizer checkpoint", NULL},
        {"data", ARG_STR, &data, "DIR", "Fashion-MNIST directory (default: the installed data set)", NULL},
        {"split", ARG_STR, &split, "test|train", "which images", NULL},
        {"limit", ARG_I64, &limit, "N", "the first N images (0: all)", NULL},
        {"out", ARG_STR, &out, "PATH", "codes: BAE bits u8 (N,7,7,K) or VQ ids i32 (N,7,7), labels i32 (N)", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Encode Fashion-MNIST images to tokenizer codes (safetensors).", specs,
                        (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!tokp) return cli_usage_error(prog, "--tokenizer is required");
    if (!out) return cli_usage_error(prog, "--out is required");
    bool train;
    if ((rc = parse_split(prog, split, &train)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "limit", limit, 0, INT64_MAX)) != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if ((rc = cli_check_output(prog, "out", out, false)) != CLI_OK) return rc;
    tsr_imgtok m;
    tsr_status st = tsr_imgtok_load(&m, tokp);
    if (st.code) return cli_fail(st, TOK_HINT);
    tsr_mnist d;
    st = tsr_mnist_load(data, train, &d);
    if (st.code) {
        tsr_imgtok_free(&m);
        return cli_fail(st, DATA_HINT);
    }
    const int64_t n = limit > 0 && limit < d.n ? limit : d.n, P = 49;
    const int K = m.cfg.bits;
    bool bae = m.cfg.kind == TSR_IMGTOK_BAE;
    float *x = images_f32(&d, n);
    uint8_t *bits = bae ? malloc((size_t)(n * P * K)) : NULL;
    int32_t *ids = bae ? NULL : malloc(sizeof(int32_t) * (size_t)(n * P));
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)n);
    TSR_ASSERT(lab && (bits || ids));
    double t0 = tsr_time();
    tsr_imgtok_encode_images(&m, x, n, bits, ids);
    double sec = tsr_time() - t0;
    for (int64_t i = 0; i < n; i++) lab[i] = d.labels.data[i];
    tsr_st_writer *w = tsr_st_writer_new();
    if (bae) tsr_st_add(w, "bits", TSR_ST_U8, 4, (int64_t[]){n, 7, 7, K}, bits);
    else tsr_st_add(w, "ids", TSR_ST_I32, 3, (int64_t[]){n, 7, 7}, ids);
    tsr_st_add(w, "labels", TSR_ST_I32, 1, (int64_t[]){n}, lab);
    char kb[16], cb[16];
    snprintf(kb, sizeof kb, "%d", K);
    snprintf(cb, sizeof cb, "%d", bae ? 0 : m.cfg.codebook);
    tsr_st_set_meta(w, "kind", tsr_imgtok_kind_name(m.cfg.kind));
    tsr_st_set_meta(w, "bits", kb);
    tsr_st_set_meta(w, "codebook", cb);
    tsr_st_set_meta(w, "split", split);
    tsr_st_set_meta(w, "tokenizer", tokp);
    st = tsr_st_write(w, out);
    tsr_st_writer_free(w);
    free(x), free(bits), free(ids), free(lab);
    tsr_mnist_free(&d);
    tsr_imgtok_free(&m);
    if (st.code) return cli_fail(st, OUT_HINT);
    if (cm.json) {
        printf("{\"n\": %lld, \"kind\": \"%s\", \"bits\": %d, \"images_per_s\": %.1f, \"out\": ",
               (long long)n, bae ? "bae" : "vq", K, (double)n / (sec + 1e-9));
        cli_json_str(stdout, out);
        printf("}\n");
    } else {
        printf("wrote %s codes of %lld images (%s split) to %s\n", bae ? "bit" : "id", (long long)n,
               split, out);
    }
    return CLI_OK;
}

/* n images of 784 f32 -> grid PNG */
static tsr_status write_grid(const char *path, const float *img, int n, int cols) {
    uint8_t *u = malloc((size_t)n * 784);
    TSR_ASSERT(u);
    tsr_png_from_unit(u, img, (int64_t)n * 784);
    int gw, gh;
    uint8_t *g = tsr_png_grid(u, n, 28, 28, 1, cols, 2, 255, &gw, &gh);
    tsr_status st = tsr_png_write(path, g, gw, gh, 1);
    free(u), free(g);
    return st;
}

static int cmd_decode(const char *prog, int argc, char **argv) {
    const char *tokp = NULL, *codes = NULL, *out = NULL;
    int64_t limit = 64;
    int cols = 8;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"tokenizer", ARG_MODEL, &tokp, "PATH", "tokenizer checkpoint", NULL},
        {"codes", ARG_STR, &codes, "PATH", "codes from 'tessera elm encode' (or a generator)", NULL},
        {"out", ARG_STR, &out, "PATH", "PNG grid to write", NULL},
        {"limit", ARG_I64, &limit, "N", "decode the first N code maps, 0..100000 (0: all)", NULL},
        {"cols", ARG_INT, &cols, "N", "grid columns, 1..1000", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Decode tokenizer codes to images and write them as a PNG grid.", specs,
                        (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!tokp || !codes || !out) return cli_usage_error(prog, "--tokenizer, --codes and --out are required");
    if ((rc = cli_check_int(prog, "limit", limit, 0, 100000)) != CLI_OK ||
        (rc = cli_check_int(prog, "cols", cols, 1, 1000)) != CLI_OK)
        return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if ((rc = cli_check_output(prog, "out", out, false)) != CLI_OK) return rc;
    tsr_imgtok m;
    tsr_status st = tsr_imgtok_load(&m, tokp);
    if (st.code) return cli_fail(st, TOK_HINT);
    tsr_st_file f;
    st = tsr_st_read(codes, &f);
    if (st.code) {
        tsr_imgtok_free(&m);
        return cli_fail(st, "pass --codes with a file from 'tessera elm encode'");
    }
    bool bae = m.cfg.kind == TSR_IMGTOK_BAE;
    const tsr_st_tensor *t = tsr_st_find(&f, bae ? "bits" : "ids");
    const int K = m.cfg.bits;
    if (!t || t->dtype != (bae ? TSR_ST_U8 : TSR_ST_I32) || t->ndim != (bae ? 4 : 3) ||
        t->shape[0] < 1 || t->shape[1] != 7 || t->shape[2] != 7 || (bae && t->shape[3] != K)) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: expected '%s' %s (N,7,7%s) for this %s tokenizer (K=%d)",
                        codes, bae ? "bits" : "ids", bae ? "U8" : "I32", bae ? ",K" : "",
                        bae ? "bae" : "vq", K);
    }
    int64_t n = 0;
    float *img = NULL;
    if (!st.code) {
        n = limit > 0 && limit < t->shape[0] ? limit : t->shape[0];
        st = tsr_png_grid_check(n, 28, 28, cols, 2); /* before decoding */
        if (!st.code) st = tsr_imgtok_check_codes(&m, bae ? t->data : NULL, bae ? NULL : t->data, n);
    }
    if (!st.code) {
        img = malloc(sizeof(float) * (size_t)(n * 784));
        TSR_ASSERT(img);
        /* the data section may not be aligned for i32 reads: copy */
        void *buf = malloc(t->nbytes);
        TSR_ASSERT(buf);
        memcpy(buf, t->data, t->nbytes);
        tsr_imgtok_decode_codes(&m, bae ? buf : NULL, bae ? NULL : buf, n, img);
        free(buf);
        st = write_grid(out, img, (int)n, cols);
    }
    free(img);
    tsr_st_free(&f);
    tsr_imgtok_free(&m);
    if (st.code)
        return cli_fail(st, strstr(st.msg, out)              ? OUT_HINT
                            : strncmp(st.msg, "a grid of", 9) == 0 ? "raise --cols or lower --limit"
                                                                    : "codes must match the tokenizer");
    if (cm.json) {
        printf("{\"n\": %lld, \"out\": ", (long long)n);
        cli_json_str(stdout, out);
        printf("}\n");
    } else {
        printf("decoded %lld images to %s\n", (long long)n, out);
    }
    return CLI_OK;
}

int cli_elm_train(const char *prog, int argc, char **argv);
int cli_elm_sample(const char *prog, int argc, char **argv);
int cli_elm_gen_eval(const char *prog, int argc, char **argv);
int cli_elm_analyze(const char *prog, int argc, char **argv);

static int cmd_tok_eval(const char *prog, int argc, char **argv) {
    const char *tokp = NULL, *clsp = DEF_CLASSIFIER, *data = NULL, *grid = NULL;
    int64_t limit = 0;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"tokenizer", ARG_MODEL, &tokp, "PATH", "tokenizer checkpoint", NULL},
        {"classifier", ARG_MODEL, &clsp, "PATH", "fixed feature extractor / classifier", NULL},
        {"data", ARG_STR, &data, "DIR", "Fashion-MNIST directory (default: the installed data set)", NULL},
        {"limit", ARG_I64, &limit, "N", "evaluate the first N test images (0: all 10000)", NULL},
        {"grid", ARG_STR, &grid, "PATH", "also write a PNG: rows of 16 originals over their reconstructions", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Reconstruction metrics of a tokenizer on the Fashion-MNIST test set (docs/elm.md).",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!tokp) return cli_usage_error(prog, "--tokenizer is required");
    if ((rc = cli_check_int(prog, "limit", limit, 0, INT64_MAX)) != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (grid && (rc = cli_check_output(prog, "grid", grid, false)) != CLI_OK) return rc;
    char cbuf[4096];
    clsp = cli_shipped_default(clsp, DEF_CLASSIFIER, cbuf, sizeof cbuf);
    tsr_imgtok m;
    tsr_status st = tsr_imgtok_load(&m, tokp);
    if (st.code) return cli_fail(st, TOK_HINT);
    tsr_classifier cls;
    st = tsr_classify_load(&cls, clsp);
    if (st.code) {
        tsr_imgtok_free(&m);
        return cli_fail(st, CLS_HINT);
    }
    tsr_mnist d;
    st = tsr_mnist_load(data, false, &d);
    if (st.code) {
        tsr_imgtok_free(&m), tsr_classify_free(&cls);
        return cli_fail(st, DATA_HINT);
    }
    const int64_t n = limit > 0 && limit < d.n ? limit : d.n;
    float *recon = malloc(sizeof(float) * (size_t)(n * 784));
    TSR_ASSERT(recon);
    double t0 = tsr_time();
    tsr_elm_tok_eval r;
    st = tsr_elm_tok_evaluate(&m, &cls, &d, n, &r, recon);
    double sec = tsr_time() - t0;
    if (!st.code && grid) {
        /* two pairs of rows: 16 originals, then their reconstructions */
        int cols = 16, pairs = n >= 32 ? 2 : 1, per = (int)(n < cols ? n : cols);
        float *g = malloc(sizeof(float) * (size_t)(2 * pairs * per * 784));
        TSR_ASSERT(g);
        for (int p = 0; p < pairs; p++)
            for (int i = 0; i < per; i++) {
                int64_t src = (int64_t)p * per + i;
                for (int j = 0; j < 784; j++) {
                    g[((2 * p) * per + i) * 784 + j] = (float)d.images.data[src * 784 + j] / 255.0f;
                    g[((2 * p + 1) * per + i) * 784 + j] = recon[src * 784 + j];
                }
            }
        st = write_grid(grid, g, 2 * pairs * per, per);
        free(g);
    }
    free(recon);
    tsr_mnist_free(&d);
    tsr_classify_free(&cls);
    const tsr_imgtok_cfg cfg = m.cfg;
    tsr_imgtok_free(&m);
    if (st.code) return cli_fail(st, OUT_HINT);
    bool bae = cfg.kind == TSR_IMGTOK_BAE;
    if (cm.json) {
        printf("{\"kind\": \"%s\", \"bits\": %d, \"codebook\": %d, \"n\": %lld, \"psnr\": %.4f, "
               "\"acc_orig\": %.4f, \"acc_recon\": %.4f, \"fd\": %.4f, \"is_orig\": %.4f, "
               "\"is_recon\": %.4f, \"precision\": %.4f, \"recall\": %.4f, "
               "\"distinct_tokens\": %lld, \"token_perplexity\": %.2f",
               bae ? "bae" : "vq", cfg.bits, bae ? 0 : cfg.codebook, (long long)r.n, r.psnr,
               r.acc_orig, r.acc_recon, r.fd, r.is_orig, r.is_recon, r.precision, r.recall,
               (long long)r.distinct_tokens, r.token_perplexity);
        if (bae)
            printf(", \"bit_entropy\": %.4f, \"bit_p1_min\": %.4f, \"bit_p1_max\": %.4f",
                   r.bit_entropy, r.bit_p1_min, r.bit_p1_max);
        printf(", \"seconds\": %.2f, \"tokenizer\": ", sec);
        cli_json_str(stdout, tokp);
        printf("}\n");
    } else {
        printf("%s tokenizer (K=%d%s), %lld test images\n", bae ? "BAE" : "VQ", cfg.bits,
               bae ? "" : ", codebook", (long long)r.n);
        printf("PSNR %.2f dB; classifier accuracy %.4f on reconstructions (%.4f on originals)\n",
               r.psnr, r.acc_recon, r.acc_orig);
        printf("Frechet distance %.4f; IS %.3f (originals %.3f); precision %.4f recall %.4f\n", r.fd,
               r.is_recon, r.is_orig, r.precision, r.recall);
        if (bae)
            printf("bit entropy %.4f bits; P(bit=1) in [%.3f, %.3f]; %lld distinct tokens, perplexity %.1f\n",
                   r.bit_entropy, r.bit_p1_min, r.bit_p1_max, (long long)r.distinct_tokens,
                   r.token_perplexity);
        else
            printf("codebook usage %lld/%d entries, perplexity %.1f\n", (long long)r.distinct_tokens,
                   cfg.codebook, r.token_perplexity);
    }
    return CLI_OK;
}

/* `eval` scores a generator; given --tokenizer and no --model it keeps its
 * stage-1 meaning (reconstruction metrics of that tokenizer) */
static int cmd_eval(const char *prog, int argc, char **argv) {
    bool tok = false, model = false, help = false;
    for (int i = 0; i < argc; i++) {
        tok |= strncmp(argv[i], "--tokenizer", 11) == 0;
        model |= strncmp(argv[i], "--model", 7) == 0;
        help |= strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
    }
    if (tok && !model && !help) return cmd_tok_eval(prog, argc, argv);
    return cli_elm_gen_eval(prog, argc, argv);
}

static const cli_verb k_verbs[] = {
    {"tokenizer-train", "train a binary (BAE) or VQ image tokenizer (resumable)", cmd_train},
    {"encode", "images -> codes (safetensors)", cmd_encode},
    {"decode", "codes -> PNG grid of images", cmd_decode},
    {"tokenizer-eval", "reconstruction metrics of a tokenizer on the test set", cmd_tok_eval},
    {"train", "train an AR or masked generator over cached codes (resumable)", cli_elm_train},
    {"sample", "class-conditional samples as a PNG grid (KV cache, CFG, top-k/top-p, MaskGIT)", cli_elm_sample},
    {"eval", "generation metrics (FD, accuracy, IS, precision/recall); with --tokenizer only: reconstruction metrics", cmd_eval},
    {"analyze", "token randomness (KL from uniform) and attention locality / maps", cli_elm_analyze},
    {NULL, NULL, NULL},
};

const cli_family cli_family_elm = {"elm", "ELM image generation with language models: tokenizers, AR / masked generators, sampling, metrics",
                                   k_verbs};
