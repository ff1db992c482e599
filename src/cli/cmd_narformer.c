/* tessera CLI: `tessera narformer tokenize|...` — NAR-Former V2
 * (src/models/narformer): networks as token graphs, a graph-aided
 * transformer predicting their latency and accuracy. Results on stdout
 * (one JSON object with --json), progress on stderr. */
#include "cli/train_flags.h"

#include "tessera/narformer.h"
#include "tessera/onnx.h"
#include "tessera/png.h"
#include "tessera/safetensors.h"

#include <string.h>
#include <unistd.h>

#define NB201_CSV "../shared/data/nas-bench-201/nats_bench.csv"
#define NB201_LAT "../shared/data/nb201-latency/nb201_latency_ms.csv.gz"
#define NB201_MODEL "models/narformer-nb201-cifar10.safetensors"
#define DATA_HINT "NAS-Bench-201 tables: --nb201 nats_bench.csv and --latency nb201_latency_ms.csv.gz (the repository's ../shared/data)"

/* ------------------------------------------------------------ tokenize */

static int cmd_tokenize(const char *prog, int argc, char **argv) {
    const char *onnx = NULL;
    int batch = 0;
    bool tokens = false;
    cli_common cm = {0, 0, false};
    /* the model file may come as the first positional argument */
    if (argc > 0 && argv[0][0] != '-') {
        onnx = argv[0];
        argc--;
        argv++;
    }
    const arg_spec specs[] = {
        {"onnx", ARG_STR, &onnx, "FILE", "ONNX model (also accepted as the first argument)", NULL},
        {"batch", ARG_INT, &batch, "N", "batch size for shapes and FLOPs (default: the file's, 1 if symbolic)", NULL},
        {"tokens", ARG_BOOL, &tokens, NULL, "with --json: include the token matrix and static vector", NULL},
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Tokenize a network: one 152-d token per operator output (plus its input), the "
                        "undirected adjacency and the 40-d static vector [batch, GFLOPs, Gparams, Gmem].",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!onnx) return cli_usage_error(prog, "give an ONNX file (tessera narformer tokenize model.onnx)");
    if (batch < 0 || batch > 65536) return cli_usage_error(prog, "--batch must be in 1..65536");
    tsr_onnx_model m;
    tsr_status st = tsr_onnx_load(&m, onnx);
    if (st.code) return cli_fail(st, "the file must be an ONNX model (ModelProto)");
    tsr_nf_graph g;
    st = tsr_nf_graph_from_onnx(&g, &m, batch);
    tsr_onnx_free(&m);
    if (st.code) return cli_fail(st, "the tokenizer covers CNN operators (Conv, pools, BN, activations, Add/Mul, Concat, Flatten, Gemm, ...)");
    float *tok = malloc(sizeof(float) * (size_t)g.n * TSR_NF_TOKEN_DIM);
    float *adj = malloc(sizeof(float) * (size_t)g.n * g.n);
    float sf[TSR_NF_STATIC_DIM];
    TSR_ASSERT(tok && adj);
    tsr_nf_tokenize(&g, tok, adj, sf);
    int n_und = 0;
    for (int i = 0; i < g.n; i++)
        for (int j = i + 1; j < g.n; j++) n_und += adj[(size_t)i * g.n + j] != 0;
    if (cm.json) {
        printf("{\"file\": ");
        cli_json_str(stdout, onnx);
        printf(", \"n_tokens\": %d, \"token_dim\": %d, \"n_edges\": %d, \"batch\": %d, \"gflops\": %.6f, "
               "\"gparams\": %.6f, \"gmem\": %.6f, \"nodes\": [",
               g.n, TSR_NF_TOKEN_DIM, n_und, g.batch, g.flops / 1e9, g.params / 1e9, g.mem / 1e9);
        for (int i = 0; i < g.n; i++) {
            const tsr_nf_node *nd = &g.nodes[i];
            printf("%s{\"op\": \"%s\", \"shape\": [", i ? ", " : "", tsr_nf_op_name(nd->op));
            for (int k = 0; k < nd->ndim; k++) printf("%s%lld", k ? ", " : "", (long long)nd->shape[k]);
            printf("], \"inputs\": [");
            int c = 0;
            for (int e = 0; e < g.n_edges; e++)
                if (g.edst[e] == i) printf("%s%d", c++ ? ", " : "", g.esrc[e]);
            printf("]}");
        }
        printf("]");
        if (tokens) {
            printf(", \"tokens\": [");
            for (int i = 0; i < g.n; i++) {
                printf("%s[", i ? ", " : "");
                for (int k = 0; k < TSR_NF_TOKEN_DIM; k++)
                    printf("%s%.7g", k ? ", " : "", tok[(size_t)i * TSR_NF_TOKEN_DIM + k]);
                printf("]");
            }
            printf("], \"static\": [");
            for (int k = 0; k < TSR_NF_STATIC_DIM; k++) printf("%s%.7g", k ? ", " : "", sf[k]);
            printf("]");
        }
        printf("}\n");
    } else {
        printf("%s: %d tokens x %d, %d undirected edges, batch %d, %.4f GFLOPs, %.4f M params, %.4f G mem\n",
               onnx, g.n, TSR_NF_TOKEN_DIM, n_und, g.batch, g.flops / 1e9, g.params / 1e6, g.mem / 1e9);
        for (int i = 0; i < g.n; i++) {
            const tsr_nf_node *nd = &g.nodes[i];
            printf("%4d %-20s [", i, tsr_nf_op_name(nd->op));
            for (int k = 0; k < nd->ndim; k++) printf("%s%lld", k ? "," : "", (long long)nd->shape[k]);
            printf("]");
            if (nd->n_attr) {
                printf(" attrs");
                for (int a = 0; a < nd->n_attr; a++) printf(" %g", nd->attr[a]);
            }
            printf("\n");
        }
    }
    free(tok);
    free(adj);
    tsr_nf_graph_free(&g);
    return CLI_OK;
}


/* ------------------------------------------------------------ NB201 experiments */

typedef struct {
    const char *task, *split, *method_s, *nb201, *latency, *model, *device, *target_dev, *scatter;
    int samples;
    float train_frac;
    int n_train;
    uint64_t split_seed;
    int dim, layers, hidden;
    float lambda_sr, lambda_cons;
} nb_args;

static nb_args nb_defaults(void) {
    nb_args a = {.task = "nb201-accuracy", .split = "random", .method_s = "narformer", .nb201 = NB201_CSV,
                 .latency = NB201_LAT, .train_frac = 0.1f, .split_seed = 0, .dim = 128, .layers = 3,
                 .hidden = 128, .lambda_sr = 0.1f, .lambda_cons = 0.5f, .device = "titanxp_1",
                 .target_dev = "gold_6240", .samples = 100};
    return a;
}

#define NB_SPECS(a)                                                                                          \
    {"task", ARG_STR, &(a)->task, "T", "nb201-accuracy | help-latency | latency (default nb201-accuracy)", NULL}, \
    {"method", ARG_STR, &(a)->method_s, "M", "narformer | mlp | gnn | flops | kernel-sum", NULL},                \
    {"train-frac", ARG_FLOAT, &(a)->train_frac, "F", "share of the 15,625 cells to train on (0.1 = 1,563; 0.05 = 781)", NULL}, \
    {"split", ARG_STR, &(a)->split, "S", "random | unseen (test on isomorphism classes absent from training)", NULL}, \
    {"split-seed", ARG_U64, &(a)->split_seed, "S", "seed of the fixed split (default 0)", NULL},              \
    {"nb201", ARG_STR, &(a)->nb201, "CSV", "NAS-Bench-201 accuracy table (default " NB201_CSV ")", NULL},   \
    {"latency", ARG_STR, &(a)->latency, "CSV.GZ", "NB201 latency table (default " NB201_LAT ")", NULL},    \
    {"dim", ARG_INT, &(a)->dim, "D", "narformer width (default 128)", NULL},                                 \
    {"layers", ARG_INT, &(a)->layers, "L", "narformer layers (default 3)", NULL},                            \
    {"hidden", ARG_INT, &(a)->hidden, "H", "mlp/gnn width (default 128)", NULL},                             \
    {"lambda-sr", ARG_FLOAT, &(a)->lambda_sr, "X", "pair-difference loss weight (default 0.1)", NULL},       \
    {"lambda-cons", ARG_FLOAT, &(a)->lambda_cons, "X", "consistency loss weight, narformer (default 0.5)", NULL}, \
    {"source-device", ARG_STR, &(a)->device, "NAME", "help-latency: device trained on (default titanxp_1)", NULL}, \
    {"target-device", ARG_STR, &(a)->target_dev, "NAME", "help-latency: device predicted (default gold_6240)", NULL}, \
    {"samples", ARG_INT, &(a)->samples, "K", "help-latency: target-device cells to adapt with (default 100)", NULL}, \
    {"scatter", ARG_STR, &(a)->scatter, "PNG", "also draw predicted (y) vs measured (x) of the test cells", NULL}

static int nb_check(const char *prog, nb_args *a, int *method) {
    if (strcmp(a->task, "nb201-accuracy") && strcmp(a->task, "help-latency") && strcmp(a->task, "latency"))
        return cli_usage_error(prog, "--task must be nb201-accuracy, help-latency or latency");
    if ((*method = tsr_nf_method_parse(a->method_s)) < 0)
        return cli_usage_error(prog, "--method must be narformer, mlp, gnn, flops or kernel-sum");
    if (strcmp(a->split, "random") && strcmp(a->split, "unseen"))
        return cli_usage_error(prog, "--split must be random or unseen");
    int rc;
    if ((rc = cli_check_float(prog, "--train-frac", a->train_frac, 0.0002, 0.9)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "--dim", a->dim, 8, 1024)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "--layers", a->layers, 1, 12)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "--hidden", a->hidden, 4, 4096)) != CLI_OK) return rc;
    if ((rc = cli_check_float(prog, "--lambda-sr", a->lambda_sr, 0, 100)) != CLI_OK) return rc;
    if ((rc = cli_check_float(prog, "--lambda-cons", a->lambda_cons, 0, 100)) != CLI_OK) return rc;
    if (a->dim % 8) return cli_usage_error(prog, "--dim must be a multiple of 8 (the FFN groups)");
    if ((rc = cli_check_int(prog, "--samples", a->samples, 2, 10000)) != CLI_OK) return rc;
    if (a->scatter && (rc = cli_check_output(prog, "--scatter", a->scatter, false)) != CLI_OK) return rc;
    a->n_train = (int)(a->train_frac * TSR_NB201_N + 0.5);
    return CLI_OK;
}

static tsr_nf_nb201_opts nb_opts(const nb_args *a, int method) {
    tsr_nf_nb201_opts o = tsr_nf_nb201_default_opts(method);
    o.cfg.dim = a->dim;
    o.cfg.fc_hidden = a->dim;
    o.cfg.n_layers = a->layers;
    o.hidden = a->hidden;
    o.lambda_sr = a->lambda_sr;
    o.lambda_cons = method == TSR_NF_METHOD_NARFORMER ? a->lambda_cons : 0;
    o.split_seed = a->split_seed;
    return o;
}

/* the default protocol's trainer settings for NB201 predictors */
static tsr_train_opts nb_train_defaults(void) {
    tsr_train_opts o = tsr_train_default_opts();
    o.epochs = 80;
    o.lr = 1e-3f;
    o.min_lr = 0;
    o.weight_decay = 0;
    o.sched = TSR_SCHED_LINEAR;
    o.warmup = 200;
    o.clip = 5.0f;
    o.seed = 1;
    o.log_every = 200;
    return o;
}

static void print_metrics_json(const nb_args *a, int method, int n_train, int n_test, const tsr_nf_metrics *m,
                               const tsr_nf_metrics *held, int n_held, double train_s) {
    printf("{\"task\": \"%s\", \"method\": \"%s\", \"split\": \"%s\", \"dataset\": \"cifar10\", \"split_seed\": %llu, "
           "\"n_train\": %d, \"n_test\": %d, \"kendall_tau\": %.4f, \"mape\": %.5f, \"acc_10pct\": %.4f, "
           "\"acc_5pct\": %.4f, \"acc_1pct\": %.4f, \"n_heldout\": %d, \"kendall_tau_heldout\": %.4f, "
           "\"mape_heldout\": %.5f, \"train_seconds\": %.1f}\n",
           a->task, tsr_nf_method_name(method), a->split, (unsigned long long)a->split_seed, n_train, n_test,
           m->kendall_tau, m->mape, m->acc_10pct, m->acc_5pct, m->acc_1pct, n_held, held->kendall_tau, held->mape,
           train_s);
}


/* predicted (y axis) vs measured (x axis) as a PNG: a dot per cell, darker
 * where they pile up, the y = x diagonal in grey, both axes over [lo, hi] */
static tsr_status scatter_png(const char *path, const float *pred, const float *y, int n, float lo, float hi) {
    const int W = 640, M = 24, S = W - 2 * M;
    float *acc = calloc((size_t)W * W, sizeof(float));
    uint8_t *px = malloc((size_t)W * W * 3);
    TSR_ASSERT(acc && px);
    for (int i = 0; i < n; i++) {
        float fx = (y[i] - lo) / (hi - lo), fy = (pred[i] - lo) / (hi - lo);
        if (!(fx >= 0 && fx <= 1 && fy >= 0 && fy <= 1)) continue;
        int cx = M + (int)(fx * (S - 1)), cy = W - 1 - M - (int)(fy * (S - 1));
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) acc[(size_t)(cy + dy) * W + cx + dx] += 0.35f;
    }
    for (int r = 0; r < W; r++)
        for (int c = 0; c < W; c++) {
            uint8_t *p = px + ((size_t)r * W + c) * 3;
            bool frame = (r == M || r == W - 1 - M || c == M || c == W - 1 - M) && r >= M && r <= W - 1 - M &&
                         c >= M && c <= W - 1 - M;
            bool diag = c - M == (W - 1 - M) - r;
            p[0] = p[1] = p[2] = frame ? 0 : diag && c >= M && c <= W - 1 - M ? 170 : 255;
            float a = acc[(size_t)r * W + c];
            if (a > 0) {
                float t = a > 1 ? 1 : a;
                p[0] = (uint8_t)(p[0] * (1 - t) + 20 * t);
                p[1] = (uint8_t)(p[1] * (1 - t) + 70 * t);
                p[2] = (uint8_t)(p[2] * (1 - t) + 160 * t);
            }
        }
    tsr_status st = tsr_png_write(path, px, W, W, 3);
    free(acc);
    free(px);
    return st;
}

/* split, train (or load), evaluate: all 15,625 cells and the held-out ones
 * (random), or only cells of isomorphism classes unseen in training */
static int nb201_accuracy(nb_args *a, int method, cli_train *t, const char *out,
                          const char *load, bool json) {
    tsr_nb201 tb;
    tsr_status st = tsr_nb201_load(&tb, a->nb201, NULL);
    if (st.code) return cli_fail(st, DATA_HINT);
    int32_t *order = malloc(sizeof(int32_t) * TSR_NB201_N);
    tsr_nf_split(TSR_NB201_N, a->n_train, a->split_seed, order);
    float *y = tb.acc[0];
    tsr_nf_nb201_pred p;
    double t0 = tsr_time();
    if (load) {
        memset(&p, 0, sizeof p);
        p.method = TSR_NF_METHOD_NARFORMER;
        st = tsr_nf_model_load(&p.nf, load);
        if (!st.code) {
            tsr_st_file f;
            const char *v;
            p.y_scale = 0;
            if (!tsr_st_read(load, &f).code) {
                if ((v = tsr_st_meta(&f, "nb201.y_scale"))) p.y_scale = strtof(v, NULL);
                const char *nt = tsr_st_meta(&f, "nb201.n_train"), *ss = tsr_st_meta(&f, "nb201.split_seed");
                if (nt && atoi(nt) != a->n_train)
                    st = tsr_errorf(TSR_ERR_ARG, "%s was trained on %s cells, not %d (--train-frac)", load, nt, a->n_train);
                else if (ss && strtoull(ss, NULL, 10) != a->split_seed)
                    st = tsr_errorf(TSR_ERR_ARG, "%s was trained on split seed %s, not %llu", load, ss,
                                    (unsigned long long)a->split_seed);
                tsr_st_free(&f);
            }
            if (!st.code && !(p.y_scale > 0)) st = tsr_errorf(TSR_ERR_FORMAT, "%s: no nb201.y_scale in its metadata", load);
        }
        if (st.code) {
            free(order);
            tsr_nb201_free(&tb);
            return cli_fail(st, "--model must be a narformer NB201 model written by 'tessera narformer train'");
        }
    } else {
        tsr_nf_nb201_opts o = nb_opts(a, method);
        tsr_train_result tr;
        memset(&tr, 0, sizeof tr);
        t->o.out = out;
        if (t->batch > 0) o.batch = t->batch;
        cli_train_begin(t);
        st = tsr_nf_nb201_fit(&p, &o, &tb, y, order, a->n_train, NULL, &t->o, &tr);
        cli_train_end(t, &tr);
        if (st.code) {
            free(order);
            tsr_nb201_free(&tb);
            return cli_fail(st, cli_train_hint(t, st, NULL));
        }
    }
    double train_s = tsr_time() - t0;
    float *pred = malloc(sizeof(float) * TSR_NB201_N);
    int32_t *all = malloc(sizeof(int32_t) * TSR_NB201_N);
    for (int i = 0; i < TSR_NB201_N; i++) all[i] = i;
    tsr_nf_nb201_predict(&p, &tb, all, TSR_NB201_N, pred);
    /* held-out cells (and, for unseen, only classes with no training member) */
    bool *seen = calloc((size_t)tb.n_iso + 1, 1);
    for (int i = 0; i < a->n_train; i++) seen[tb.iso[order[i]]] = true;
    bool unseen = !strcmp(a->split, "unseen");
    float *hp = malloc(sizeof(float) * TSR_NB201_N), *hy = malloc(sizeof(float) * TSR_NB201_N);
    int nh = 0;
    for (int i = a->n_train; i < TSR_NB201_N; i++) {
        int c = order[i];
        if (unseen && seen[tb.iso[c]]) continue;
        hp[nh] = pred[c], hy[nh] = y[c], nh++;
    }
    tsr_nf_metrics m, mh;
    tsr_nf_metrics_compute(hp, hy, nh, &mh);
    if (a->scatter) {
        /* held-out cells, axes over the accuracies seen (%) */
        st = scatter_png(a->scatter, hp, hy, nh, 0, 100);
        if (st.code) {
            free(seen), free(hp), free(hy), free(pred), free(all), free(order);
            tsr_nf_nb201_pred_free(&p);
            tsr_nb201_free(&tb);
            return cli_fail(st, "--scatter must be a writable .png path");
        }
    }
    if (unseen) m = mh;
    else tsr_nf_metrics_compute(pred, y, TSR_NB201_N, &m);
    int n_test = unseen ? nh : TSR_NB201_N;
    if (json) print_metrics_json(a, method, a->n_train, n_test, &m, &mh, nh, train_s);
    else {
        printf("%s %s, %s split (seed %llu), %d training cells: Kendall tau %.4f over %d cells (held-out %d: %.4f), "
               "MAPE %.2f%%, within 10%%/5%%/1%%: %.1f%%/%.1f%%/%.1f%%\n",
               a->task, tsr_nf_method_name(method), a->split, (unsigned long long)a->split_seed, a->n_train,
               m.kendall_tau, n_test, nh, mh.kendall_tau, 100 * m.mape, 100 * m.acc_10pct, 100 * m.acc_5pct,
               100 * m.acc_1pct);
    }
    free(seen);
    free(hp);
    free(hy);
    free(pred);
    free(all);
    free(order);
    tsr_nf_nb201_pred_free(&p);
    tsr_nb201_free(&tb);
    return CLI_OK;
}


/* HELP-style transfer: train on the source device's latencies of a fixed
 * split, adapt with K cells of the target device, test on every other cell
 * of the target device. flops fits the K target cells directly. */
static int nb201_help(nb_args *a, int method, cli_train *t, const char *tmp, bool json) {
    tsr_nb201 tb;
    tsr_status st = tsr_nb201_load(&tb, a->nb201, a->latency);
    if (st.code) return cli_fail(st, DATA_HINT);
    int sd = tsr_nb201_device(&tb, a->device), td = tsr_nb201_device(&tb, a->target_dev);
    if (sd < 0 || td < 0) {
        char list[1024] = "";
        for (int d = 0; d < tb.n_dev; d++) {
            strncat(list, tb.dev[d], sizeof list - strlen(list) - 2);
            strncat(list, " ", sizeof list - strlen(list) - 1);
        }
        st = tsr_errorf(TSR_ERR_ARG, "unknown device '%s'", sd < 0 ? a->device : a->target_dev);
        tsr_nb201_free(&tb);
        fprintf(stderr, "devices: %s\n", list);
        return cli_fail(st, "--source-device / --target-device take a column name of the latency table");
    }
    float *ys = malloc(sizeof(float) * TSR_NB201_N), *yt = malloc(sizeof(float) * TSR_NB201_N);
    for (int i = 0; i < TSR_NB201_N; i++) ys[i] = tb.lat[(size_t)i * tb.n_dev + sd], yt[i] = tb.lat[(size_t)i * tb.n_dev + td];
    int32_t *order = malloc(sizeof(int32_t) * TSR_NB201_N), *torder = malloc(sizeof(int32_t) * TSR_NB201_N);
    tsr_nf_split(TSR_NB201_N, a->n_train, a->split_seed, order);
    tsr_nf_split(TSR_NB201_N, a->samples, a->split_seed + 1, torder);
    tsr_nf_nb201_opts o = nb_opts(a, method);
    if (t->batch > 0) o.batch = t->batch;
    tsr_nf_nb201_pred pre, p;
    memset(&pre, 0, sizeof pre);
    tsr_train_result tr;
    memset(&tr, 0, sizeof tr);
    double t0 = tsr_time();
    cli_train_begin(t);
    if (method != TSR_NF_METHOD_FLOPS) {
        t->o.out = tmp;
        st = tsr_nf_nb201_fit(&pre, &o, &tb, ys, order, a->n_train, NULL, &t->o, &tr);
    }
    if (!st.code) {
        /* adaptation: a short fine-tune on the K target cells */
        tsr_train_opts fo = t->o;
        fo.epochs = 0;
        fo.steps = 300;
        fo.lr = t->o.lr * 0.3f;
        fo.warmup = 30;
        fo.eval_every = 0;
        fo.resume = false;
        o.batch = a->samples < 8 ? a->samples : 8;
        o.eval_items = 0;
        st = tsr_nf_nb201_fit(&p, &o, &tb, yt, torder, a->samples, method == TSR_NF_METHOD_FLOPS ? NULL : &pre, &fo, &tr);
    }
    cli_train_end(t, &tr);
    if (method != TSR_NF_METHOD_FLOPS) tsr_nf_nb201_pred_free(&pre);
    if (st.code) {
        free(ys), free(yt), free(order), free(torder);
        tsr_nb201_free(&tb);
        return cli_fail(st, cli_train_hint(t, st, NULL));
    }
    int n_test = TSR_NB201_N - a->samples;
    float *pred = malloc(sizeof(float) * n_test), *yy = malloc(sizeof(float) * n_test);
    tsr_nf_nb201_predict(&p, &tb, torder + a->samples, n_test, pred);
    for (int i = 0; i < n_test; i++) yy[i] = yt[torder[a->samples + i]];
    tsr_nf_metrics m;
    tsr_nf_metrics_compute(pred, yy, n_test, &m);
    if (json)
        printf("{\"task\": \"help-latency\", \"method\": \"%s\", \"split\": \"%s\", \"source_device\": \"%s\", "
               "\"target_device\": \"%s\", \"n_pretrain\": %d, \"n_train\": %d, \"n_test\": %d, \"kendall_tau\": %.4f, "
               "\"mape\": %.5f, \"acc_10pct\": %.4f, \"acc_5pct\": %.4f, \"acc_1pct\": %.4f, \"seconds\": %.1f}\n",
               tsr_nf_method_name(method), a->split, a->device, a->target_dev,
               method == TSR_NF_METHOD_FLOPS ? 0 : a->n_train, a->samples, n_test, m.kendall_tau, m.mape, m.acc_10pct,
               m.acc_5pct, m.acc_1pct, tsr_time() - t0);
    else
        printf("help-latency %s: %s -> %s with %d target cells: Kendall tau %.4f, MAPE %.2f%%, within 10%%: %.1f%% (%d test cells)\n",
               tsr_nf_method_name(method), a->device, a->target_dev, a->samples, m.kendall_tau, 100 * m.mape,
               100 * m.acc_10pct, n_test);
    free(pred), free(yy), free(ys), free(yt), free(order), free(torder);
    tsr_nf_nb201_pred_free(&p);
    tsr_nb201_free(&tb);
    return CLI_OK;
}

static int cmd_train(const char *prog, int argc, char **argv) {
    nb_args a = nb_defaults();
    cli_train t = cli_train_init(nb_train_defaults(), 16, CLI_TF_STEPS | CLI_TF_EPOCHS | CLI_TF_BATCH | CLI_TF_EVAL);
    t.o.out = NULL;
    t.cm.threads = 1; /* the model's ops are tiny: one thread beats two on a loaded machine */
    const arg_spec specs[] = {
        NB_SPECS(&a),
        {"out", ARG_STR, &t.o.out, "PATH", "weights to write (training state beside it: *.state.safetensors)", NULL},
    };
    int rc = cli_train_parse(prog,
                             "Train a NAS-Bench-201 CIFAR-10 accuracy predictor (NAR-Former V2 or a baseline) on a "
                             "fixed split, then evaluate it (Kendall tau over all 15,625 cells and the held-out ones).",
                             specs, (int)(sizeof specs / sizeof specs[0]), &t, argc, argv);
    if (rc != CLI_OK) return rc;
    int method;
    if ((rc = nb_check(prog, &a, &method)) != CLI_OK) return rc;
    if (strcmp(a.task, "nb201-accuracy")) return cli_usage_error(prog, "train supports --task nb201-accuracy");
    if (!t.o.out) return cli_usage_error(prog, "--out PATH is required");
    if ((rc = cli_check_output(prog, "--out", t.o.out, false)) != CLI_OK) return rc;
    return nb201_accuracy(&a, method, &t, t.o.out, NULL, t.cm.json);
}

static int cmd_eval(const char *prog, int argc, char **argv) {
    nb_args a = nb_defaults();
    cli_train t = cli_train_init(nb_train_defaults(), 16, CLI_TF_EPOCHS | CLI_TF_BATCH);
    const char *model = NULL;
    bool model_set = false, frac_set = false;
    t.cm.threads = 1;
    const arg_spec specs[] = {
        NB_SPECS(&a),
        {"model", ARG_STR, &model, "PATH", "trained narformer NB201 model (default: the shipped " NB201_MODEL
                                            " for its own split; else one is trained now)", &model_set},
    };
    (void)frac_set;
    int rc = cli_train_parse(prog,
                             "Evaluate a predictor on the documented protocol: --task nb201-accuracy trains the "
                             "method on the fixed split (or loads --model) and prints one JSON object with --json.",
                             specs, (int)(sizeof specs / sizeof specs[0]), &t, argc, argv);
    if (rc != CLI_OK) return rc;
    int method;
    if ((rc = nb_check(prog, &a, &method)) != CLI_OK) return rc;
    if (!strcmp(a.task, "latency"))
        return cli_fail(tsr_errorf(TSR_ERR_ARG, "--task latency (our own latency data set) is not implemented yet"),
                        "--task nb201-accuracy and help-latency are available; see docs/narformer.md");
    char shipped[512];
    const char *load = NULL;
    if (method == TSR_NF_METHOD_NARFORMER) {
        if (model_set) load = model;
        else if (cli_find_shipped(NB201_MODEL, shipped, sizeof shipped)) {
            /* the shipped model answers only for its own split */
            tsr_st_file f;
            if (!tsr_st_read(shipped, &f).code) {
                const char *nt = tsr_st_meta(&f, "nb201.n_train");
                if (nt && atoi(nt) == a.n_train && a.split_seed == 0) load = shipped;
                tsr_st_free(&f);
            }
        }
    }
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s/tsr_narformer_eval_%d.safetensors", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    if (!load && !t.quiet && method != TSR_NF_METHOD_FLOPS)
        fprintf(stderr, "%s: training %s on %d cells (%d epochs) for this evaluation\n", prog,
                tsr_nf_method_name(method), a.n_train, t.o.epochs);
    if (!strcmp(a.task, "help-latency")) {
        if (method == TSR_NF_METHOD_KERNEL_SUM)
            return cli_usage_error(prog, "--method kernel-sum needs per-operator latencies (--task latency)");
        rc = nb201_help(&a, method, &t, tmp, t.cm.json);
    } else rc = nb201_accuracy(&a, method, &t, tmp, load, t.cm.json);
    char st_path[300];
    tsr_train_state_path(tmp, st_path, sizeof st_path);
    unlink(tmp);
    unlink(st_path);
    return rc;
}

static const cli_verb g_verbs[] = {
    {"tokenize", "an ONNX network as NAR-Former V2 tokens (152-d), adjacency and static vector", cmd_tokenize},
    {"train", "train a NAS-Bench-201 accuracy predictor (NAR-Former V2 or a baseline) on the shared trainer", cmd_train},
    {"eval", "evaluate a predictor on a task's documented protocol (one JSON object with --json)", cmd_eval},
    {NULL, NULL, NULL},
};

const cli_family cli_family_narformer = {
    "narformer", "NAR-Former V2: networks as token graphs; latency and accuracy prediction", g_verbs};
