/* tessera CLI: `tessera classify train|eval|features` — the Fashion-MNIST
 * CNN (src/models/classify). Results on stdout (JSON with --json), progress
 * and errors on stderr. */
#include "cli/train_flags.h"
#include "tessera/cpu.h"

#include "tessera/classify.h"
#include "tessera/safetensors.h"

#include <string.h>

#define DATA_HINT "pass --data DIR with the Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, ...)"
#define MODEL_HINT "pass --model with a checkpoint from 'tessera classify train' (the shipped one is models/fmnist_cnn.safetensors)"

static const char *data_hint(tsr_status st, const char *data_dir) {
    const char *d = data_dir ? data_dir : "/usr/share/datasets/fashion-mnist";
    return strstr(st.msg, d) || strstr(st.msg, "idx") ? DATA_HINT : NULL;
}

static int cmd_train(const char *prog, int argc, char **argv) {
    tsr_classify_train_opts o = tsr_classify_default_train_opts();
    cli_train t = cli_train_init(o.train, o.batch, CLI_TF_STEPS | CLI_TF_EPOCHS | CLI_TF_BATCH | CLI_TF_EVAL);
    bool no_flip = false;
    const arg_spec specs[] = {
        {"data", ARG_STR, &o.data_dir, "DIR", "Fashion-MNIST directory (default: the installed data set)", NULL},
        {"out", ARG_STR, &t.o.out, "PATH", "checkpoint to write (training state next to it: *.state.safetensors)", NULL},
        {"label-smoothing", ARG_FLOAT, &o.label_smoothing, "X", "cross-entropy label smoothing", NULL},
        {"train-limit", ARG_I64, &o.train_limit, "N", "train on the first N images (0: all)", NULL},
        {"test-limit", ARG_I64, &o.test_limit, "N", "evaluate on the first N test images (0: all, -1: skip)", NULL},
        {"no-flip", ARG_BOOL, &no_flip, NULL, "no random horizontal flips", NULL},
        {"c1", ARG_INT, &o.cfg.c1, "N", "channels of the first conv block", NULL},
        {"c2", ARG_INT, &o.cfg.c2, "N", "channels of the second conv block", NULL},
        {"fc", ARG_INT, &o.cfg.fc, "N", "feature width (penultimate layer)", NULL},
        {"dropout", ARG_FLOAT, &o.cfg.dropout, "X", "dropout before fc1 and fc2", NULL},
    };
    int rc = cli_train_parse(prog, "Train the Fashion-MNIST CNN (AdamW, warmup + cosine), with resumable checkpoints.",
                             specs, (int)(sizeof specs / sizeof specs[0]), &t, argc, argv);
    if (rc != CLI_OK) return rc;
    if (o.label_smoothing < 0 || o.label_smoothing >= 1) return cli_usage_error(prog, "--label-smoothing must be in [0,1)");
    if (o.train_limit < 0) return cli_usage_error(prog, "--train-limit must be >= 0");
    if (o.test_limit < -1) return cli_usage_error(prog, "--test-limit must be >= -1");
    if (o.cfg.c1 < 1 || o.cfg.c2 < 1 || o.cfg.fc < 1 || o.cfg.c1 > 1024 || o.cfg.c2 > 1024 || o.cfg.fc > 65536)
        return cli_usage_error(prog, "--c1/--c2/--fc out of range");
    if (o.cfg.dropout < 0 || o.cfg.dropout >= 1) return cli_usage_error(prog, "--dropout must be in [0,1)");
    o.flip = !no_flip;
    o.batch = t.batch;

    if (!t.quiet)
        fprintf(stderr, "%s: %d threads, %d epochs, batch %d, lr %g, out %s%s\n", prog, tsr_threads_get(),
                t.o.epochs, o.batch, (double)t.o.lr, t.o.out, t.o.resume ? " (resume)" : "");
    tsr_classify_train_result r;
    cli_train_begin(&t);
    o.train = t.o;
    tsr_status st = tsr_classify_train(&o, &r);
    cli_train_end(&t, &(tsr_train_result){.step = r.steps, .total = r.total, .interrupted = r.interrupted});
    if (st.code) return cli_fail(st, cli_train_hint(&t, st, data_hint(st, o.data_dir)));
    if (t.cm.json) {
        printf("{\"steps\": %lld, \"finished\": %s, \"loss\": %.6f, \"images_per_s\": %.1f, "
               "\"seconds\": %.2f, \"threads\": %d, \"kernels\": \"%s\"",
               (long long)r.steps, r.finished ? "true" : "false", (double)r.last_loss,
               r.images_per_s, r.seconds, tsr_threads_get(), tsr_cpu_level_name(tsr_cpu_level()));
        if (r.test.n)
            printf(", \"accuracy\": %.4f, \"n\": %lld, \"test_loss\": %.6f", r.test.accuracy,
                   (long long)r.test.n, r.test.loss);
        printf(", \"out\": ");
        cli_json_str(stdout, t.o.out);
        printf("}\n");
    } else {
        printf("%s %lld steps (%.0f img/s), last loss %.4f; saved %s\n",
               r.finished ? "finished" : "stopped at", (long long)r.steps, r.images_per_s,
               (double)r.last_loss, t.o.out);
        if (r.test.n)
            printf("test accuracy %.4f (%lld/%lld), loss %.4f\n", r.test.accuracy,
                   (long long)r.test.correct, (long long)r.test.n, r.test.loss);
    }
    return CLI_OK;
}

static int cmd_eval(const char *prog, int argc, char **argv) {
    const char *model = NULL, *data = NULL;
    int64_t limit = 0;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "PATH", "checkpoint (safetensors)", NULL},
        {"data", ARG_STR, &data, "DIR", "Fashion-MNIST directory (default: the installed data set)", NULL},
        {"limit", ARG_I64, &limit, "N", "evaluate the first N test images (0: all)", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Accuracy and cross-entropy of a checkpoint on the Fashion-MNIST test set.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!model) return cli_usage_error(prog, "--model is required");
    if ((rc = cli_check_int(prog, "limit", limit, 0, INT64_MAX)) != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    tsr_classifier m;
    tsr_status st = tsr_classify_load(&m, model);
    if (!st.code && (st = tsr_params_check_finite(&m.params, model)).code) tsr_classify_free(&m);
    if (st.code) return cli_fail(st, MODEL_HINT);
    tsr_mnist d;
    st = tsr_mnist_load(data, false, &d);
    if (st.code) {
        tsr_classify_free(&m);
        return cli_fail(st, DATA_HINT);
    }
    double t0 = tsr_time();
    tsr_classify_eval_result r = tsr_classify_evaluate(&m, &d, limit);
    double sec = tsr_time() - t0;
    if (cm.json) {
        printf("{\"accuracy\": %.4f, \"n\": %lld, \"correct\": %lld, \"loss\": %.6f, "
               "\"images_per_s\": %.1f, \"model\": ",
               r.accuracy, (long long)r.n, (long long)r.correct, r.loss, (double)r.n / (sec + 1e-9));
        cli_json_str(stdout, model);
        printf("}\n");
    } else {
        printf("accuracy %.4f (%lld/%lld), loss %.4f\n", r.accuracy, (long long)r.correct,
               (long long)r.n, r.loss);
    }
    tsr_mnist_free(&d);
    tsr_classify_free(&m);
    return CLI_OK;
}

static int cmd_features(const char *prog, int argc, char **argv) {
    const char *model = NULL, *data = NULL, *split = "test", *out = NULL;
    int64_t limit = 0;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "PATH", "checkpoint (safetensors)", NULL},
        {"data", ARG_STR, &data, "DIR", "Fashion-MNIST directory (default: the installed data set)", NULL},
        {"split", ARG_STR, &split, "test|train", "which images", NULL},
        {"out", ARG_STR, &out, "PATH", "output safetensors: features (N,F) f32, labels (N) i32; '-': stdout [fmnist_features_<split>.safetensors]", NULL},
        {"limit", ARG_I64, &limit, "N", "the first N images (0: all)", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Penultimate-layer feature vectors of Fashion-MNIST images (the fixed extractor for image metrics).",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!model) return cli_usage_error(prog, "--model is required");
    bool train = strcmp(split, "train") == 0;
    if (!train && strcmp(split, "test") != 0)
        return cli_usage_error(prog, "--split must be 'test' or 'train', got '%s'", split);
    if ((rc = cli_check_int(prog, "limit", limit, 0, INT64_MAX)) != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    char def_out[64];
    if (!out) {
        snprintf(def_out, sizeof def_out, "fmnist_features_%s.safetensors", split);
        out = def_out;
    }
    if ((rc = cli_check_output(prog, "out", out, true)) != CLI_OK) return rc;
    FILE *res = strcmp(out, "-") == 0 ? stderr : stdout; /* the file may take stdout */
    tsr_classifier m;
    tsr_status st = tsr_classify_load(&m, model);
    if (!st.code && (st = tsr_params_check_finite(&m.params, model)).code) tsr_classify_free(&m);
    if (st.code) return cli_fail(st, MODEL_HINT);
    tsr_mnist d;
    st = tsr_mnist_load(data, train, &d);
    if (st.code) {
        tsr_classify_free(&m);
        return cli_fail(st, DATA_HINT);
    }
    int64_t n = limit > 0 && limit < d.n ? limit : d.n;
    int F = tsr_classify_feature_dim(&m);
    float *feats = malloc(sizeof(float) * (size_t)(n * F));
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)n);
    TSR_ASSERT(feats && labels);
    double t0 = tsr_time();
    tsr_classify_run_u8(&m, d.images.data, n, feats, NULL);
    double sec = tsr_time() - t0;
    for (int64_t i = 0; i < n; i++) labels[i] = d.labels.data[i];
    tsr_st_writer *w = tsr_st_writer_new();
    tsr_st_add(w, "features", TSR_ST_F32, 2, (int64_t[]){n, F}, feats);
    tsr_st_add(w, "labels", TSR_ST_I32, 1, (int64_t[]){n}, labels);
    tsr_st_set_meta(w, "split", split);
    tsr_st_set_meta(w, "layer", "fc1 after relu");
    tsr_st_set_meta(w, "model", model);
    st = tsr_st_write(w, out);
    tsr_st_writer_free(w);
    free(feats), free(labels);
    tsr_mnist_free(&d);
    tsr_classify_free(&m);
    if (st.code) return cli_fail(st, "check that the output directory exists and is writable");
    if (cm.json) {
        fprintf(res, "{\"n\": %lld, \"dim\": %d, \"split\": \"%s\", \"images_per_s\": %.1f, \"out\": ",
                (long long)n, F, split, (double)n / (sec + 1e-9));
        cli_json_str(res, out);
        fprintf(res, "}\n");
    } else {
        fprintf(res, "wrote %lld x %d features (%s split) to %s\n", (long long)n, F, split, out);
    }
    return CLI_OK;
}

static const cli_verb k_verbs[] = {
    {"train", "train the CNN on Fashion-MNIST (resumable)", cmd_train},
    {"eval", "test-set accuracy and loss of a checkpoint", cmd_eval},
    {"features", "penultimate-layer features per image, to safetensors", cmd_features},
    {NULL, NULL, NULL},
};

const cli_family cli_family_classify = {"classify", "Fashion-MNIST CNN classifier and feature extractor",
                                        k_verbs};
