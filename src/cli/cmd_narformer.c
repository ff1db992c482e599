/* tessera CLI: `tessera narformer tokenize|...` — NAR-Former V2
 * (src/models/narformer): networks as token graphs, a graph-aided
 * transformer predicting their latency and accuracy. Results on stdout
 * (one JSON object with --json), progress on stderr. */
#include "cli/train_flags.h"

#include "tessera/chart.h"
#include "tessera/cpu.h"
#include "tessera/fileio.h"
#include "tessera/narformer.h"
#include "tessera/onnx.h"
#include "tessera/png.h"
#include "tessera/safetensors.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#define NB201_CSV "../shared/data/nas-bench-201/nats_bench.csv"
#define NB201_LAT "../shared/data/nb201-latency/nb201_latency_ms.csv.gz"
#define NB201_MODEL "models/narformer-nb201-cifar10.safetensors"
/* members of the default NB201 accuracy protocol (chosen on the validation fifth of the training cells) */
#define NB201_ENSEMBLE 2
#define NB201_EPOCHS 320 /* epochs per member of the NB201 accuracy protocol */
#define NB_STR2(x) #x
#define NB_STR(x) NB_STR2(x)
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


/* ------------------------------------------------------------ latency data set */

#define LAT_DATA "narformer-latency.jsonl"
#define LAT_MODEL_FMT "models/narformer-latency-%s.safetensors"
#define LAT_EPOCHS 30
#define LAT_LR 3e-3f
#define LAT_WARMUP 100

/* the families named in a comma list ("all": every one) */
static int parse_families(const char *prog, const char *list, bool fam[TSR_NF_FAMILIES]) {
    memset(fam, 0, sizeof(bool) * TSR_NF_FAMILIES);
    if (!strcmp(list, "all")) {
        for (int f = 0; f < TSR_NF_FAMILIES; f++) fam[f] = true;
        return CLI_OK;
    }
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int f = tsr_nf_family_parse(tok);
        if (f < 0) {
            char names[256] = "";
            for (int k = 0; k < TSR_NF_FAMILIES; k++) {
                strcat(names, k ? ", " : "");
                strcat(names, tsr_nf_family_name(k));
            }
            return cli_usage_error(prog, "unknown family '%s' in --families (known: %s)", tok, names);
        }
        fam[f] = true;
    }
    return CLI_OK;
}

static tsr_status measure_both(tsr_nf_latnet *n, int warmup, int repeats, uint64_t seed, bool cpu_clock) {
    n->node_ms = calloc((size_t)n->g.n * TSR_NF_PLATFORMS, sizeof(float));
    TSR_ASSERT(n->node_ms);
    for (int p = 0; p < TSR_NF_PLATFORMS; p++) {
        tsr_threads_set(tsr_nf_platform_threads(p));
        tsr_nf_measure_opts mo = {.warmup = warmup, .repeats = repeats, .seed = seed, .cpu_clock = cpu_clock};
        tsr_nf_measure_result r;
        tsr_status st = tsr_nf_measure(&n->g, &mo, &r);
        if (st.code) return st;
        n->lat[p] = (float)r.median_ms, n->lat_min[p] = (float)r.min_ms, n->lat_max[p] = (float)r.max_ms;
        for (int i = 0; i < n->g.n; i++) n->node_ms[(size_t)i * TSR_NF_PLATFORMS + p] = (float)r.node_ms[i];
        tsr_nf_measure_result_free(&r);
    }
    return tsr_ok();
}

static int cmd_dataset(const char *prog, int argc, char **argv) {
    const char *out = NULL, *families = "all", *clock = "wall";
    int per_family = 200, warmup = 2, repeats = 7, recheck = 100;
    cli_common cm = {0, 0, false};
    bool quiet = false;
    const arg_spec specs[] = {
        {"out", ARG_STR, &out, "FILE", "data set to write (JSON lines; format in docs/narformer.md)", NULL},
        {"per-family", ARG_INT, &per_family, "N", "random variants per family (default 200)", NULL},
        {"families", ARG_STR, &families, "LIST", "comma list of families, or all (default all)", NULL},
        {"warmup", ARG_INT, &warmup, "N", "untimed runs before timing (default 2)", NULL},
        {"repeats", ARG_INT, &repeats, "N", "timed runs; the latency is their median (default 7)", NULL},
        {"recheck", ARG_INT, &recheck, "N", "re-measure N networks at the end and report the share within +-10% (default 100)", NULL},
        {"clock", ARG_STR, &clock, "C", "wall | cpu: the calling thread's CPU time, for a machine shared with other jobs (default wall)", NULL},
        {"quiet", ARG_BOOL, &quiet, NULL, "no progress on stderr", NULL},
        CLI_COMMON_SEED(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Build the latency data set: random variants of 10 network families, each run for real on "
                        "tessera's CPU ops at batch 1 on 1 thread (platform cpu-1t) and 2 threads (cpu-2t).",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    bool fam[TSR_NF_FAMILIES];
    if ((rc = parse_families(prog, families, fam)) != CLI_OK) return rc;
    if (!out) return cli_usage_error(prog, "--out FILE is required");
    if (strcmp(clock, "wall") && strcmp(clock, "cpu")) return cli_usage_error(prog, "--clock must be wall or cpu");
    bool cpu_clock = !strcmp(clock, "cpu");
    if ((rc = cli_check_int(prog, "per-family", per_family, 1, 100000)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "warmup", warmup, 0, 1000)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "repeats", repeats, 1, 1000)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "recheck", recheck, 0, 100000)) != CLI_OK) return rc;
    if ((rc = cli_check_output(prog, "out", out, false)) != CLI_OK) return rc;
    tsr_atomic_file af;
    tsr_status st = tsr_atomic_open(&af, out);
    if (st.code) return cli_fail(st, "--out must be a writable file path");
    fprintf(af.f, "{\"format\": \"tessera-narformer-latency\", \"version\": 1, \"platforms\": [");
    for (int p = 0; p < TSR_NF_PLATFORMS; p++)
        fprintf(af.f, "%s\"%s\"", p ? ", " : "", tsr_nf_platform_name(p));
    fprintf(af.f, "], \"threads\": [1, 2], \"batch\": 1, \"warmup\": %d, \"repeats\": %d, \"seed\": %llu, "
                  "\"clock\": \"%s\", \"kernel_level\": \"%s\"}\n",
            warmup, repeats, (unsigned long long)cm.seed, clock, tsr_cpu_level_name(tsr_cpu_level()));
    int n_fam = 0;
    for (int f = 0; f < TSR_NF_FAMILIES; f++) n_fam += fam[f];
    int total = n_fam * per_family, done = 0;
    double t0 = tsr_time();
    int n_check = recheck < total ? recheck : total, n_stable = 0;
    float *first = malloc(sizeof(float) * (size_t)(n_check + 1));
    int *chk_f = malloc(sizeof(int) * (size_t)(n_check + 1));
    uint64_t *chk_s = malloc(sizeof(uint64_t) * (size_t)(n_check + 1));
    int n_chk = 0;
    /* networks in round-robin over the families, so an interrupted run still covers all */
    for (int v = 0; v < per_family && !st.code; v++)
        for (int f = 0; f < TSR_NF_FAMILIES && !st.code; f++) {
            if (!fam[f]) continue;
            tsr_nf_latnet n;
            memset(&n, 0, sizeof n);
            n.family = f;
            n.seed = cm.seed * 100003u + (uint64_t)v;
            st = tsr_nf_netgen(&n.g, f, n.seed);
            if (!st.code) st = measure_both(&n, warmup, repeats, n.seed, cpu_clock);
            if (!st.code) {
                tsr_nf_latnet_write(af.f, &n, done);
                /* every k-th network goes to the re-run check */
                if (n_chk < n_check && done % (total / (n_check ? n_check : 1) > 0 ? total / n_check : 1) == 0) {
                    first[n_chk] = n.lat[0], chk_f[n_chk] = f, chk_s[n_chk] = n.seed;
                    n_chk++;
                }
            }
            tsr_nf_graph_free(&n.g);
            free(n.node_ms);
            done++;
            if (!quiet && (done % 20 == 0 || done == total)) {
                double el = tsr_time() - t0;
                char eta[32];
                cli_fmt_eta(eta, sizeof eta, el / done * (total - done));
                fprintf(stderr, "\r%s: %d/%d networks, %.0f s, ETA %s   ", prog, done, total, el, eta);
            }
        }
    if (!quiet) fprintf(stderr, "\n");
    st = tsr_atomic_commit(&af, !st.code);
    if (st.code) {
        free(first), free(chk_f), free(chk_s);
        return cli_fail(st, "the runner supports the generator's operators; check --out");
    }
    /* re-run: the median of a second measurement against the first (cpu-1t) */
    for (int i = 0; i < n_chk; i++) {
        tsr_nf_latnet n;
        memset(&n, 0, sizeof n);
        tsr_nf_netgen(&n.g, chk_f[i], chk_s[i]);
        tsr_threads_set(1);
        tsr_nf_measure_opts mo = {.warmup = warmup, .repeats = repeats, .seed = chk_s[i], .cpu_clock = cpu_clock};
        tsr_nf_measure_result r;
        if (!tsr_nf_measure(&n.g, &mo, &r).code) {
            n_stable += fabs(r.median_ms - first[i]) <= 0.10 * first[i];
            tsr_nf_measure_result_free(&r);
        }
        tsr_nf_graph_free(&n.g);
    }
    double share = n_chk ? (double)n_stable / n_chk : 0;
    if (cm.json)
        printf("{\"out\": \"%s\", \"networks\": %d, \"families\": %d, \"per_family\": %d, \"warmup\": %d, \"repeats\": %d, "
               "\"recheck\": %d, \"recheck_within_10pct\": %.4f, \"seconds\": %.1f}\n",
               out, total, n_fam, per_family, warmup, repeats, n_chk, share, tsr_time() - t0);
    else
        printf("%s: %d networks (%d families x %d), re-run of %d: %.1f%% within +-10%% of the first median, %.0f s\n",
               out, total, n_fam, per_family, n_chk, 100 * share, tsr_time() - t0);
    free(first), free(chk_f), free(chk_s);
    return CLI_OK;
}

/* ------------------------------------------------------------ NB201 experiments */

typedef struct {
    const char *task, *split, *method_s, *nb201, *latency, *model, *device, *target_dev, *scatter;
    int samples;
    int ensemble; /* nb201-accuracy: members trained with seeds seed..seed+K-1, predictions averaged */
    float train_frac;
    int n_train;
    uint64_t split_seed;
    int dim, layers, hidden;
    float lambda_sr, lambda_cons;
    const char *data, *platform, *holdout, *prior, *exclude; /* --task latency */
    bool validate;                                  /* report on a fifth of the training split (latency, nb201-accuracy) */
    bool frac_set, dim_set, layers_set, ensemble_set;
} nb_args;

/* --exclude F[,F]: the families named, each known */
static int parse_exclude(const char *prog, const char *list, bool drop[TSR_NF_FAMILIES]) {
    for (int f = 0; f < TSR_NF_FAMILIES; f++) drop[f] = false;
    const char *p = list;
    for (;;) {
        size_t n = strcspn(p, ",");
        char name[32];
        if (n == 0 || n >= sizeof name) return cli_usage_error(prog, "--exclude: expected FAMILY[,FAMILY] (got '%s')", list);
        memcpy(name, p, n);
        name[n] = '\0';
        int f = tsr_nf_family_parse(name);
        if (f < 0) return cli_usage_error(prog, "--exclude: unknown family '%s'", name);
        drop[f] = true;
        if (!p[n]) break;
        p += n + 1;
    }
    return CLI_OK;
}

static nb_args nb_defaults(void) {
    nb_args a = {.task = "nb201-accuracy", .split = "random", .method_s = "narformer", .nb201 = NB201_CSV,
                 .latency = NB201_LAT, .train_frac = 0.1f, .split_seed = 0, .dim = 128, .layers = 3,
                 .hidden = 128, .lambda_sr = 0.1f, .lambda_cons = 0.5f, .device = "titanxp_1",
                 .target_dev = "gold_6240", .samples = 100, .ensemble = 1, .data = LAT_DATA, .platform = "cpu-1t", .prior = "kernel-sum"};
    return a;
}

#define NB_SPECS(a)                                                                                          \
    {"task", ARG_STR, &(a)->task, "T", "nb201-accuracy | help-latency | latency (default nb201-accuracy)", NULL}, \
    {"method", ARG_STR, &(a)->method_s, "M", "narformer | mlp | gnn | flops | kernel-sum (flops, kernel-sum: eval only)", NULL}, \
    {"train-frac", ARG_FLOAT, &(a)->train_frac, "F", "share to train on: NB201 cells (default 0.1 = 1,563; 0.05 = 781); latency networks (default 0.8)", &(a)->frac_set}, \
    {"split", ARG_STR, &(a)->split, "S", "random | unseen (test on isomorphism classes absent from training)", NULL}, \
    {"split-seed", ARG_U64, &(a)->split_seed, "S", "seed of the fixed split (default 0)", NULL},              \
    {"nb201", ARG_STR, &(a)->nb201, "CSV", "NAS-Bench-201 accuracy table (default " NB201_CSV ")", NULL},   \
    {"latency", ARG_STR, &(a)->latency, "CSV.GZ", "NB201 latency table (default " NB201_LAT ")", NULL},    \
    {"dim", ARG_INT, &(a)->dim, "D", "narformer width (default 128; latency 64)", &(a)->dim_set},           \
    {"layers", ARG_INT, &(a)->layers, "L", "narformer layers (default 3; latency 2)", &(a)->layers_set},    \
    {"data", ARG_STR, &(a)->data, "FILE", "latency: data set from 'narformer dataset' (default " LAT_DATA ")", NULL}, \
    {"platform", ARG_STR, &(a)->platform, "NAME", "latency: cpu-1t | cpu-2t (default cpu-1t)", NULL},       \
    {"holdout", ARG_STR, &(a)->holdout, "FAMILY", "latency, --split unseen: only this held-out family (default: each in turn)", NULL}, \
    {"exclude", ARG_STR, &(a)->exclude, "F[,F]", "latency: drop these families from --data before any split (a nested run's inner set)", NULL}, \
    {"validate", ARG_BOOL, &(a)->validate, NULL, "latency or nb201-accuracy, random split: train on 4/5 of the training networks/cells, report on the other 1/5 (for choosing settings; the test ones stay unseen)", NULL}, \
    {"ensemble", ARG_INT, &(a)->ensemble, "K", "nb201-accuracy: train (or load) K models, seeds S..S+K-1, and average their predictions; member k>0 is saved as OUT.mK.safetensors, its --log as LOG.mK.jsonl (default " NB_STR(NB201_ENSEMBLE) ")", &(a)->ensemble_set}, \
    {"prior", ARG_STR, &(a)->prior, "P", "latency, narformer/gnn: kernel-sum (predict a factor on the kernel-sum estimate, default) | none", NULL}, \
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
    bool lat = !strcmp(a->task, "latency");
    if (lat && !a->frac_set) a->train_frac = 0.8f;
    if (lat && !a->dim_set) a->dim = 64;
    if (lat && !a->layers_set) a->layers = 2;
    if (lat && tsr_nf_platform_parse(a->platform) < 0) return cli_usage_error(prog, "--platform must be cpu-1t or cpu-2t");
    if (strcmp(a->prior, "kernel-sum") && strcmp(a->prior, "none")) return cli_usage_error(prog, "--prior must be kernel-sum or none");
    if (a->validate && (!strcmp(a->task, "help-latency") || strcmp(a->split, "random")))
        return cli_usage_error(prog, "--validate takes --task latency or nb201-accuracy, --split random");
    if (!a->ensemble_set && !strcmp(a->task, "nb201-accuracy")) a->ensemble = NB201_ENSEMBLE;
    if ((rc = cli_check_int(prog, "ensemble", a->ensemble, 1, 16)) != CLI_OK) return rc;
    if (a->ensemble > 1 && strcmp(a->task, "nb201-accuracy"))
        return cli_usage_error(prog, "--ensemble takes --task nb201-accuracy");
    if (lat && a->holdout && tsr_nf_family_parse(a->holdout) < 0) return cli_usage_error(prog, "--holdout: unknown family '%s'", a->holdout);
    if (a->exclude) {
        if (!lat) return cli_usage_error(prog, "--exclude takes --task latency");
        bool drop[TSR_NF_FAMILIES];
        if ((rc = parse_exclude(prog, a->exclude, drop)) != CLI_OK) return rc;
        if (a->holdout && drop[tsr_nf_family_parse(a->holdout)])
            return cli_usage_error(prog, "--holdout %s is one of the --exclude families", a->holdout);
    }
    if ((rc = cli_check_float(prog, "train-frac", a->train_frac, 0.0002, 0.9)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "dim", a->dim, 8, 1024)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "layers", a->layers, 1, 12)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "hidden", a->hidden, 4, 4096)) != CLI_OK) return rc;
    if ((rc = cli_check_float(prog, "lambda-sr", a->lambda_sr, 0, 100)) != CLI_OK) return rc;
    if ((rc = cli_check_float(prog, "lambda-cons", a->lambda_cons, 0, 100)) != CLI_OK) return rc;
    if (a->dim % 8) return cli_usage_error(prog, "--dim must be a multiple of 8 (the FFN groups)");
    if ((rc = cli_check_int(prog, "samples", a->samples, 2, 10000)) != CLI_OK) return rc;
    if (a->scatter && (rc = cli_check_output(prog, "scatter", a->scatter, false)) != CLI_OK) return rc;
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
    o.epochs = NB201_EPOCHS; /* help-latency: 80 unless --epochs */
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

static void print_metrics_json(const nb_args *a, int method, const char *split, int n_train, int n_test,
                               const tsr_nf_metrics *m, const tsr_nf_metrics *held, int n_held, double train_s) {
    printf("{\"task\": \"%s\", \"method\": \"%s\", \"split\": \"%s\", \"dataset\": \"cifar10\", \"split_seed\": %llu, "
           "\"n_train\": %d, \"n_test\": %d, \"kendall_tau\": %.4f, \"mape\": %.5f, \"acc_10pct\": %.4f, "
           "\"acc_5pct\": %.4f, \"acc_1pct\": %.4f, \"n_heldout\": %d, \"kendall_tau_heldout\": %.4f, "
           "\"mape_heldout\": %.5f, \"ensemble\": %d, \"train_seconds\": %.1f",
           a->task, tsr_nf_method_name(method), split, (unsigned long long)a->split_seed, n_train, n_test,
           m->kendall_tau, m->mape, m->acc_10pct, m->acc_5pct, m->acc_1pct, n_held, held->kendall_tau, held->mape,
           method == TSR_NF_METHOD_FLOPS ? 1 : a->ensemble, train_s);
}


/* predicted (y axis) vs measured (x axis) as a PNG through the chart
 * renderer: a dot per network or cell and the y = x line over [lo, hi] */
static tsr_status scatter_png(const char *path, const float *pred, const float *y, int n, float lo, float hi,
                              const char *what) {
    double *xs = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1)), *ys = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    TSR_ASSERT(xs && ys);
    for (int i = 0; i < n; i++) xs[i] = y[i], ys[i] = pred[i];
    const double dx[2] = {lo, hi};
    char xl[96], yl[96];
    snprintf(xl, sizeof xl, "measured %s", what);
    snprintf(yl, sizeof yl, "predicted %s", what);
    const tsr_chart_series s[2] = {{.name = "y = x", .x = dx, .y = dx, .n = 2, .width = 1},
                                   {.name = "held-out", .x = xs, .y = ys, .n = n, .points = true}};
    const tsr_chart_opts o = {.title = "predicted vs measured", .xlabel = xl, .ylabel = yl, .width = 720, .height = 720};
    tsr_status st = tsr_chart_png(path, s, 2, &o);
    free(xs);
    free(ys);
    return st;
}

/* split, train (or load), evaluate: all 15,625 cells and the held-out ones
 * (random), or only cells of isomorphism classes unseen in training */
/* the file of ensemble member k: PATH for k = 0, else PATH with ".mK"
 * before its extension EXT (or at its end) */
static void member_file(const char *path, const char *ext, int k, char *buf, size_t n) {
    if (k == 0) {
        snprintf(buf, n, "%s", path);
        return;
    }
    size_t len = strlen(path), el = strlen(ext);
    if (len > el && !strcmp(path + len - el, ext))
        snprintf(buf, n, "%.*s.m%d%s", (int)(len - el), path, k, ext);
    else snprintf(buf, n, "%s.m%d", path, k);
}

/* the weights of ensemble member k: OUT, OUT.m1.safetensors, ... */
static void member_path(const char *out, int k, char *buf, size_t n) { member_file(out, ".safetensors", k, buf, n); }

/* split, train (or load), evaluate: all 15,625 cells and the held-out ones
 * (random), or only cells of isomorphism classes unseen in training; with
 * --validate, train on 4/5 of the training cells and report on the other
 * fifth only (the test cells are not touched) */
static int nb201_accuracy(nb_args *a, int method, cli_train *t, const char *out,
                          const char *load, bool json) {
    tsr_nb201 tb;
    tsr_status st = tsr_nb201_load(&tb, a->nb201, NULL);
    if (st.code) return cli_fail(st, DATA_HINT);
    int32_t *order = malloc(sizeof(int32_t) * TSR_NB201_N);
    tsr_nf_split(TSR_NB201_N, a->n_train, a->split_seed, order);
    int n_fit = a->n_train, n_val = 0;
    if (a->validate) {
        /* as the latency task: the training cells reshuffled (seed + 500), the last fifth validates */
        tsr_rng r;
        tsr_rng_seed(&r, a->split_seed + 500);
        tsr_rng_shuffle_i32(&r, order, a->n_train);
        n_val = a->n_train / 5 > 0 ? a->n_train / 5 : 1;
        n_fit = a->n_train - n_val;
    }
    float *y = tb.acc[0];
    int K = method == TSR_NF_METHOD_FLOPS ? 1 : a->ensemble;
    float *pred = calloc(TSR_NB201_N, sizeof(float)), *one = malloc(sizeof(float) * TSR_NB201_N * (size_t)K);
    int32_t *all = malloc(sizeof(int32_t) * TSR_NB201_N);
    for (int i = 0; i < TSR_NB201_N; i++) all[i] = i;
    tsr_nf_nb201_pred p;
    double t0 = tsr_time(), step_cpu = 0; /* thread CPU seconds of the training steps and updates */
    int64_t steps_run = 0;
    if (load) { /* the model, and with --ensemble K its members LOAD.m1 ... LOAD.m{K-1} */
        for (int k = 0; k < K && !st.code; k++) {
            char path[600];
            member_path(load, k, path, sizeof path);
            memset(&p, 0, sizeof p);
            p.method = TSR_NF_METHOD_NARFORMER;
            st = tsr_nf_model_load(&p.nf, path);
            if (st.code) break;
            tsr_st_file f;
            const char *v;
            p.y_scale = 0;
            if (!tsr_st_read(path, &f).code) {
                if ((v = tsr_st_meta(&f, "nb201.y_scale"))) p.y_scale = strtof(v, NULL);
                const char *nt = tsr_st_meta(&f, "nb201.n_train"), *ss = tsr_st_meta(&f, "nb201.split_seed");
                if (nt && atoi(nt) != n_fit)
                    st = tsr_errorf(TSR_ERR_ARG, "%s was trained on %s cells, not %d (--train-frac%s)", path, nt, n_fit,
                                    a->validate ? ", --validate: a model written by train --validate" : "");
                else if (ss && strtoull(ss, NULL, 10) != a->split_seed)
                    st = tsr_errorf(TSR_ERR_ARG, "%s was trained on split seed %s, not %llu", path, ss,
                                    (unsigned long long)a->split_seed);
                tsr_st_free(&f);
            }
            if (!st.code && !(p.y_scale > 0)) st = tsr_errorf(TSR_ERR_FORMAT, "%s: no nb201.y_scale in its metadata", path);
            if (!st.code) {
                float *mine = one + (size_t)k * TSR_NB201_N;
                tsr_nf_nb201_predict(&p, &tb, all, TSR_NB201_N, mine);
                for (int i = 0; i < TSR_NB201_N; i++) pred[i] += mine[i] / (float)K;
            }
            tsr_nf_nb201_pred_free(&p);
        }
        if (st.code) {
            free(order), free(pred), free(one), free(all);
            tsr_nb201_free(&tb);
            return cli_fail(st, "--model must be a narformer NB201 model written by 'tessera narformer train' "
                                "(with --ensemble K, also its members M.m1 ... written by train --ensemble K)");
        }
    } else {
        tsr_nf_nb201_opts o = nb_opts(a, method);
        if (a->validate) o.eval_ids = order + n_fit, o.n_eval_ids = n_val;
        if (t->batch > 0) o.batch = t->batch;
        uint64_t seed0 = t->o.seed;
        const bool resume0 = t->o.resume;
        char path[600], sp[640], logp[600];
        const char *log0 = t->o.log_path;
        for (int k = 0; k < K; k++) {
            tsr_train_result tr;
            memset(&tr, 0, sizeof tr);
            member_path(out, k, path, sizeof path);
            t->o.out = path;
            if (log0) { /* each member its own log: LOG, LOG.m1.jsonl, ... (one log would be truncated per member) */
                member_file(log0, ".jsonl", k, logp, sizeof logp);
                t->o.log_path = logp;
            }
            t->o.seed = seed0 + (uint64_t)k;
            /* a run killed before a later member's first checkpoint: that member starts */
            tsr_train_state_path(path, sp, sizeof sp);
            t->o.resume = resume0 && (k == 0 || access(sp, F_OK) == 0);
            cli_train_begin(t);
            st = tsr_nf_nb201_fit(&p, &o, &tb, y, order, n_fit, NULL, &t->o, &tr);
            cli_train_end(t, &tr);
            steps_run += t->o.resume ? 0 : tr.step; /* a resumed run: its CPU is not all of the steps */
            step_cpu += tr.step_cpu_s + tr.optim_cpu_s;
            if (st.code || t->interrupted) { /* interrupted: the checkpoint is saved, no evaluation */
                if (!st.code) tsr_nf_nb201_pred_free(&p);
                free(order), free(pred), free(one), free(all);
                tsr_nb201_free(&tb);
                int rc = st.code ? cli_fail(st, cli_train_hint(t, st, NULL)) : CLI_OK;
                t->o.log_path = log0;
                return rc;
            }
            float *mine = one + (size_t)k * TSR_NB201_N; /* kept: each member's own figure */
            tsr_nf_nb201_predict(&p, &tb, all, TSR_NB201_N, mine);
            for (int i = 0; i < TSR_NB201_N; i++) pred[i] += mine[i] / (float)K;
            tsr_nf_nb201_pred_free(&p);
        }
        t->o.seed = seed0, t->o.resume = resume0, t->o.log_path = log0;
    }
    double train_s = tsr_time() - t0;
    /* held-out cells (and, for unseen, only classes with no training member);
     * the validation cells with --validate */
    bool *seen = calloc((size_t)tb.n_iso + 1, 1);
    for (int i = 0; i < n_fit; i++) seen[tb.iso[order[i]]] = true;
    bool unseen = !strcmp(a->split, "unseen");
    float *hp = malloc(sizeof(float) * TSR_NB201_N), *hy = malloc(sizeof(float) * TSR_NB201_N);
    int nh = 0;
    for (int i = n_fit; i < (a->validate ? a->n_train : TSR_NB201_N); i++) {
        int c = order[i];
        if (unseen && seen[tb.iso[c]]) continue;
        hp[nh] = pred[c], hy[nh] = y[c], nh++;
    }
    tsr_nf_metrics m, mh;
    tsr_nf_metrics_compute(hp, hy, nh, &mh);
    if (a->scatter) {
        /* held-out cells, axes over the accuracies seen (%) */
        st = scatter_png(a->scatter, hp, hy, nh, 0, 100, "accuracy (%)");
        if (st.code) {
            free(seen), free(hp), free(hy), free(pred), free(one), free(all), free(order);
            tsr_nb201_free(&tb);
            return cli_fail(st, "--scatter must be a writable .png path");
        }
    }
    if (unseen || a->validate) m = mh;
    else tsr_nf_metrics_compute(pred, y, TSR_NB201_N, &m);
    int n_test = unseen || a->validate ? nh : TSR_NB201_N;
    const char *split_name = a->validate ? "validation" : a->split;
    double member_tau[16];
    for (int k = 0; k < K && K > 1; k++) { /* the same cells as kendall_tau */
        const float *mk = one + (size_t)k * TSR_NB201_N;
        nh = 0;
        for (int i = n_fit; i < (a->validate ? a->n_train : TSR_NB201_N); i++) {
            int c = order[i];
            if (unseen && seen[tb.iso[c]]) continue;
            hp[nh] = mk[c], hy[nh] = y[c], nh++;
        }
        member_tau[k] = unseen || a->validate ? tsr_nf_kendall_tau(hp, hy, nh) : tsr_nf_kendall_tau(mk, y, TSR_NB201_N);
    }
    if (json) {
        print_metrics_json(a, method, split_name, n_fit, n_test, &m, &mh, nh, train_s);
        if (steps_run > 0) /* steps and their CPU seconds (forward, backward, update) */
            printf(", \"train_steps\": %lld, \"train_cpu_seconds\": %.2f", (long long)steps_run, step_cpu);
        if (K > 1) {
            printf(", \"member_kendall_tau\": [");
            for (int k = 0; k < K; k++) printf("%s%.4f", k ? ", " : "", member_tau[k]);
            printf("]");
        }
        printf("}\n");
    } else {
        printf("%s %s, %s split (seed %llu), %d training cells%s: Kendall tau %.4f over %d cells (held-out %d: %.4f), "
               "MAPE %.2f%%, within 10%%/5%%/1%%: %.1f%%/%.1f%%/%.1f%%\n",
               a->task, tsr_nf_method_name(method), split_name, (unsigned long long)a->split_seed, n_fit,
               a->ensemble > 1 ? " (ensemble)" : "", m.kendall_tau, n_test, nh, mh.kendall_tau, 100 * m.mape,
               100 * m.acc_10pct, 100 * m.acc_5pct, 100 * m.acc_1pct);
        for (int k = 0; k < K && K > 1; k++) printf("  member %d: Kendall tau %.4f\n", k, member_tau[k]);
    }
    free(seen);
    free(hp);
    free(hy);
    free(pred);
    free(one);
    free(all);
    free(order);
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
    bool adapted = false;
    if (!st.code && !tr.interrupted) {
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
        adapted = !st.code;
    }
    cli_train_end(t, &tr);
    if (method != TSR_NF_METHOD_FLOPS) tsr_nf_nb201_pred_free(&pre);
    if (st.code || t->interrupted) { /* interrupted: stop without an evaluation */
        if (adapted) tsr_nf_nb201_pred_free(&p);
        free(ys), free(yt), free(order), free(torder);
        tsr_nb201_free(&tb);
        return st.code ? cli_fail(st, cli_train_hint(t, st, NULL)) : CLI_OK;
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


/* ------------------------------------------------------------ latency on our data set */

/* whether argv holds --name (or --name=...): defaults that depend on --task */
static bool flag_given(int argc, char **argv, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], name, n) && (argv[i][n] == 0 || argv[i][n] == '=')) return true;
    return false;
}

/* a flag that changes how a predictor is trained: the shipped model, trained
 * with the defaults, no longer answers, so eval trains one */
static bool recipe_given(int argc, char **argv) {
    static const char *const flags[] = {"--epochs", "--steps",  "--lr",        "--min-lr",      "--batch", "--warmup",
                                        "--wd",     "--weight-decay", "--clip", "--sched",      "--dim",   "--layers",
                                        "--lambda-sr", "--lambda-cons", "--seed", "--prior"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (flag_given(argc, argv, flags[i])) return true;
    return false;
}

/* the NB201 accuracy protocol's epochs where the flags left them */
static void nb201_train_flags(cli_train *t, int argc, char **argv) {
    if (!flag_given(argc, argv, "--epochs") && !flag_given(argc, argv, "--steps")) t->o.epochs = NB201_EPOCHS;
}

/* the latency protocol's trainer defaults where the flags left them (chosen
 * on split seed 100 of a part of the data set, not the reported split) */
static void lat_train_flags(cli_train *t, int argc, char **argv) {
    if (!flag_given(argc, argv, "--epochs") && !flag_given(argc, argv, "--steps")) t->o.epochs = LAT_EPOCHS;
    if (!flag_given(argc, argv, "--lr")) t->o.lr = LAT_LR;
    if (!flag_given(argc, argv, "--warmup")) t->o.warmup = LAT_WARMUP;
}

static tsr_nf_lat_opts lat_opts(const nb_args *a, int method, const cli_train *t) {
    tsr_nf_lat_opts o = tsr_nf_lat_default_opts(method);
    o.cfg.dim = a->dim;
    o.cfg.fc_hidden = a->dim;
    o.cfg.n_layers = a->layers;
    o.hidden = a->hidden;
    if (t->batch > 0) o.batch = t->batch;
    o.prior = o.prior && !strcmp(a->prior, "kernel-sum");
    return o;
}

static int lat_load_data(const char *prog, const nb_args *a, tsr_nf_latset *s) {
    tsr_status st = tsr_nf_latset_load(s, a->data);
    if (st.code)
        return cli_fail(st, "build the data set first: tessera narformer dataset --out " LAT_DATA " (see docs/narformer.md), "
                            "or pass --data FILE");
    if (a->exclude) {
        bool drop[TSR_NF_FAMILIES];
        parse_exclude(prog, a->exclude, drop); /* checked with the flags */
        tsr_nf_latset_drop_families(s, drop);
        if (s->n < 3) {
            tsr_nf_latset_free(s);
            return cli_fail(tsr_errorf(TSR_ERR_ARG, "%s: fewer than 3 networks left after --exclude %s", a->data, a->exclude),
                            "exclude fewer families");
        }
    }
    return CLI_OK;
}

/* train one predictor on ids[0..n_train), metrics on test ids; pred_out (n_test) optional */
static tsr_status lat_fit_eval(const nb_args *a, int method, cli_train *t, const char *out, const tsr_nf_latset *s,
                               int platform, const int32_t *ids, int n_train, const int32_t *test, int n_test,
                               const char *load, tsr_nf_metrics *m, float *pred_out, double *train_s) {
    tsr_nf_lat_pred p;
    tsr_status st;
    double t0 = tsr_time();
    if (load) {
        st = tsr_nf_lat_load(&p, load);
        if (!st.code && p.platform != platform)
            st = tsr_errorf(TSR_ERR_ARG, "%s predicts platform %s, not %s", load, tsr_nf_platform_name(p.platform),
                            tsr_nf_platform_name(platform));
        if (st.code) {
            if (p.method == TSR_NF_METHOD_NARFORMER && p.nf.layers) tsr_nf_lat_pred_free(&p);
            return st;
        }
    } else {
        tsr_nf_lat_opts o = lat_opts(a, method, t);
        tsr_train_result tr;
        memset(&tr, 0, sizeof tr);
        t->o.out = out;
        cli_train_begin(t);
        st = tsr_nf_lat_fit(&p, &o, s, platform, ids, n_train, &t->o, &tr);
        cli_train_end(t, &tr);
        if (st.code) return st;
        if (t->interrupted) { /* the checkpoint is saved: stop, no evaluation */
            tsr_nf_lat_pred_free(&p);
            return tsr_ok();
        }
    }
    *train_s = tsr_time() - t0;
    float *pred = malloc(sizeof(float) * (size_t)n_test), *y = malloc(sizeof(float) * (size_t)n_test);
    tsr_nf_lat_predict(&p, s, test, n_test, pred);
    for (int i = 0; i < n_test; i++) y[i] = s->nets[test[i]].lat[platform];
    tsr_nf_metrics_compute(pred, y, n_test, m);
    if (pred_out) memcpy(pred_out, pred, sizeof(float) * (size_t)n_test);
    free(pred);
    free(y);
    tsr_nf_lat_pred_free(&p);
    return tsr_ok();
}

static void print_lat_json(const nb_args *a, int method, const char *split, int n_train, int n_test,
                           const tsr_nf_metrics *m, double secs) {
    printf("{\"task\": \"latency\", \"method\": \"%s\", \"split\": \"%s\", \"platform\": \"%s\", \"data\": ",
           tsr_nf_method_name(method), split, a->platform);
    cli_json_str(stdout, a->data);
    printf(", \"split_seed\": %llu, \"n_train\": %d, \"n_test\": %d, \"kendall_tau\": %.4f, \"mape\": %.5f, "
           "\"acc_10pct\": %.4f, \"acc_5pct\": %.4f, \"acc_1pct\": %.4f, \"seconds\": %.1f",
           (unsigned long long)a->split_seed, n_train, n_test, m->kendall_tau, m->mape, m->acc_10pct, m->acc_5pct,
           m->acc_1pct, secs);
}

/* predicted vs measured on log axes (latencies span orders of magnitude) */
static tsr_status lat_scatter(const char *path, const float *pred, const float *y, int n) {
    float *lp = malloc(sizeof(float) * (size_t)n), *ly = malloc(sizeof(float) * (size_t)n);
    float lo = 1e30f, hi = -1e30f;
    for (int i = 0; i < n; i++) {
        lp[i] = log10f(pred[i] > 1e-6f ? pred[i] : 1e-6f), ly[i] = log10f(y[i]);
        if (ly[i] < lo) lo = ly[i];
        if (ly[i] > hi) hi = ly[i];
    }
    lo = floorf(lo * 2) / 2, hi = ceilf(hi * 2) / 2;
    tsr_status st = scatter_png(path, lp, ly, n, lo, hi, "log10 ms");
    free(lp);
    free(ly);
    return st;
}

static int latency_task(const char *prog, nb_args *a, int method, cli_train *t, const char *out, const char *load, bool json) {
    if (method == TSR_NF_METHOD_MLP)
        return cli_fail(tsr_errorf(TSR_ERR_ARG, "--method mlp is an NB201 baseline"),
                        "--task latency takes --method narformer, gnn, flops or kernel-sum");
    tsr_nf_latset s;
    int rc = lat_load_data(prog, a, &s);
    if (rc != CLI_OK) return rc;
    int platform = tsr_nf_platform_parse(a->platform);
    int32_t *order = malloc(sizeof(int32_t) * (size_t)s.n), *test = malloc(sizeof(int32_t) * (size_t)s.n);
    float *pred = malloc(sizeof(float) * (size_t)s.n), *yy = malloc(sizeof(float) * (size_t)s.n);
    tsr_nf_metrics m;
    double secs = 0;
    tsr_status st = tsr_ok();
    if (!strcmp(a->split, "random")) {
        int n_train = (int)(a->train_frac * s.n + 0.5);
        if (n_train < 2 || n_train >= s.n) n_train = s.n > 2 ? s.n - 1 : 1;
        tsr_nf_split(s.n, n_train, a->split_seed, order);
        int n_test = s.n - n_train;
        if (a->validate) {
            /* a fifth of the training networks becomes the validation set; the test ones are not used */
            tsr_rng r;
            tsr_rng_seed(&r, a->split_seed + 500);
            tsr_rng_shuffle_i32(&r, order, n_train);
            n_test = n_train / 5 > 0 ? n_train / 5 : 1;
            n_train -= n_test;
        }
        const char *split = a->validate ? "validation" : "random";
        st = lat_fit_eval(a, method, t, out, &s, platform, order, n_train, order + n_train, n_test, load, &m, pred, &secs);
        if (t->interrupted) {
        } else if (!st.code && a->scatter) {
            for (int i = 0; i < n_test; i++) yy[i] = s.nets[order[n_train + i]].lat[platform];
            st = lat_scatter(a->scatter, pred, yy, n_test);
        }
        if (!st.code && !t->interrupted) {
            if (json) {
                print_lat_json(a, method, split, n_train, n_test, &m, secs);
                printf("}\n");
            } else
                printf("latency %s on %s, %s split: %d train / %d %s networks: Kendall tau %.4f, MAPE %.2f%%, "
                       "within 10%%/5%%/1%%: %.1f%%/%.1f%%/%.1f%%\n",
                       tsr_nf_method_name(method), a->platform, split, n_train, n_test,
                       a->validate ? "validation" : "test", m.kendall_tau, 100 * m.mape,
                       100 * m.acc_10pct, 100 * m.acc_5pct, 100 * m.acc_1pct);
        }
    } else {
        /* unseen structure: each family held out in turn, trained on all others */
        tsr_nf_metrics fm[TSR_NF_FAMILIES], mean;
        int fn_train[TSR_NF_FAMILIES], fn_test[TSR_NF_FAMILIES], n_folds = 0;
        bool done[TSR_NF_FAMILIES] = {false};
        memset(&mean, 0, sizeof mean);
        int tot_train = 0, tot_test = 0;
        for (int f = 0; f < TSR_NF_FAMILIES && !st.code; f++) {
            if (a->holdout && tsr_nf_family_parse(a->holdout) != f) continue;
            int ntr = 0, nte = 0;
            for (int i = 0; i < s.n; i++) {
                if (s.nets[i].family == f) test[nte++] = i;
                else order[ntr++] = i;
            }
            if (nte == 0 || ntr < 2) continue;
            /* a fixed shuffle of the training networks */
            tsr_rng r;
            tsr_rng_seed(&r, a->split_seed + 1000 + (uint64_t)f);
            tsr_rng_shuffle_i32(&r, order, ntr);
            double fs = 0;
            if (!t->quiet) fprintf(stderr, "held-out family %s: %d train / %d test networks\n", tsr_nf_family_name(f), ntr, nte);
            st = lat_fit_eval(a, method, t, out, &s, platform, order, ntr, test, nte, NULL, &fm[f], NULL, &fs);
            if (st.code || t->interrupted) break;
            secs += fs;
            done[f] = true;
            fn_train[f] = ntr, fn_test[f] = nte;
            tot_train += ntr, tot_test += nte;
            mean.kendall_tau += fm[f].kendall_tau, mean.mape += fm[f].mape, mean.acc_10pct += fm[f].acc_10pct;
            mean.acc_5pct += fm[f].acc_5pct, mean.acc_1pct += fm[f].acc_1pct;
            n_folds++;
        }
        if (!st.code && !t->interrupted && n_folds == 0) st = tsr_errorf(TSR_ERR_ARG, "no family to hold out in %s", a->data);
        if (!st.code && !t->interrupted) {
            mean.kendall_tau /= n_folds, mean.mape /= n_folds, mean.acc_10pct /= n_folds;
            mean.acc_5pct /= n_folds, mean.acc_1pct /= n_folds;
            if (json) {
                /* the contract fields hold the mean over held-out families */
                print_lat_json(a, method, "unseen", tot_train / n_folds, tot_test, &mean, secs);
                printf(", \"folds\": [");
                int k = 0;
                for (int f = 0; f < TSR_NF_FAMILIES; f++)
                    if (done[f])
                        printf("%s{\"holdout\": \"%s\", \"n_train\": %d, \"n_test\": %d, \"kendall_tau\": %.4f, "
                               "\"mape\": %.5f, \"acc_10pct\": %.4f, \"acc_5pct\": %.4f, \"acc_1pct\": %.4f}",
                               k++ ? ", " : "", tsr_nf_family_name(f), fn_train[f], fn_test[f], fm[f].kendall_tau,
                               fm[f].mape, fm[f].acc_10pct, fm[f].acc_5pct, fm[f].acc_1pct);
                printf("]}\n");
            } else {
                for (int f = 0; f < TSR_NF_FAMILIES; f++)
                    if (done[f])
                        printf("  held out %-13s tau %.4f  MAPE %6.2f%%  within 10%% %5.1f%%\n", tsr_nf_family_name(f),
                               fm[f].kendall_tau, 100 * fm[f].mape, 100 * fm[f].acc_10pct);
                printf("latency %s on %s, unseen families (mean of %d): Kendall tau %.4f, MAPE %.2f%%, within 10%%: %.1f%%\n",
                       tsr_nf_method_name(method), a->platform, n_folds, mean.kendall_tau, 100 * mean.mape,
                       100 * mean.acc_10pct);
            }
        }
    }
    free(order), free(test), free(pred), free(yy);
    tsr_nf_latset_free(&s);
    if (st.code) return cli_fail(st, cli_train_hint(t, st, "--model must be a narformer latency predictor; --scatter a writable .png"));
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
                             "Train a predictor (NAR-Former V2 or a learned baseline) on a fixed split and evaluate it: "
                             "NAS-Bench-201 CIFAR-10 accuracy (Kendall tau over all 15,625 cells and the held-out ones), "
                             "or with --task latency the latency of the generated networks.",
                             specs, (int)(sizeof specs / sizeof specs[0]), &t, argc, argv);
    if (rc != CLI_OK) return rc;
    int method;
    if ((rc = nb_check(prog, &a, &method)) != CLI_OK) return rc;
    if (!strcmp(a.task, "help-latency")) return cli_usage_error(prog, "train supports --task nb201-accuracy or latency");
    if (method == TSR_NF_METHOD_FLOPS || method == TSR_NF_METHOD_KERNEL_SUM) /* nothing would be written to --out */
        return cli_usage_error(prog, "--method %s is closed-form, with no weights to train: score it with 'narformer eval'",
                               tsr_nf_method_name(method));
    if (!t.o.out) return cli_usage_error(prog, "--out PATH is required");
    if ((rc = cli_check_output(prog, "out", t.o.out, false)) != CLI_OK) return rc;
    if ((rc = cli_check_distinct_outputs(prog, "out", t.o.out, "scatter", a.scatter)) != CLI_OK) return rc;
    if (!strcmp(a.task, "latency")) {
        if (method != TSR_NF_METHOD_NARFORMER && method != TSR_NF_METHOD_GNN)
            return cli_usage_error(prog, "train --task latency writes weights of --method narformer or gnn");
        if (!strcmp(a.split, "unseen")) return cli_usage_error(prog, "train --task latency uses --split random");
        lat_train_flags(&t, argc, argv);
        return latency_task(prog, &a, method, &t, t.o.out, NULL, t.cm.json);
    }
    nb201_train_flags(&t, argc, argv);
    return nb201_accuracy(&a, method, &t, t.o.out, NULL, t.cm.json);
}

static int cmd_eval(const char *prog, int argc, char **argv) {
    nb_args a = nb_defaults();
    /* the predictor is trained into a temporary file: no state to checkpoint or resume */
    cli_train t = cli_train_init(nb_train_defaults(), 16, CLI_TF_EPOCHS | CLI_TF_BATCH | CLI_TF_NO_STATE);
    const char *model = NULL;
    bool model_set = false, frac_set = false;
    t.cm.threads = 1;
    const arg_spec specs[] = {
        NB_SPECS(&a),
        {"model", ARG_MODEL, &model, "PATH", "trained narformer NB201 model, with the members saved beside it (PATH.m1...) "
                                            "(default: the shipped " NB201_MODEL " for its own split and training flags; else one is trained now; "
                                            "with --validate, one written by train --validate; --task latency: a latency predictor, "
                                            "with --validate scored on the validation fifth)", &model_set},
    };
    (void)frac_set;
    int rc = cli_train_parse(prog,
                             "Evaluate a predictor on the documented protocol: --task nb201-accuracy trains the "
                             "method on the fixed split (or loads --model) and prints one JSON object with --json.",
                             specs, (int)(sizeof specs / sizeof specs[0]), &t, argc, argv);
    if (rc != CLI_OK) return rc;
    int method;
    if ((rc = nb_check(prog, &a, &method)) != CLI_OK) return rc;
    if (!strcmp(a.task, "nb201-accuracy")) nb201_train_flags(&t, argc, argv);
    if (!strcmp(a.task, "help-latency") && !flag_given(argc, argv, "--epochs")) t.o.epochs = 80;
    char shipped[512];
    const char *load = NULL;
    if (!strcmp(a.task, "latency")) {
        lat_train_flags(&t, argc, argv);
        /* the shipped predictor answers the default protocol (random split, 0.8, seed 0) of its platform;
         * with --validate, --model is scored on the validation fifth (a model trained on the whole
         * training split has seen those networks) */
        if (method == TSR_NF_METHOD_NARFORMER && model_set) load = model;
        else if (method == TSR_NF_METHOD_NARFORMER && !strcmp(a.split, "random") && !a.frac_set && a.split_seed == 0 &&
                 !recipe_given(argc, argv) && !a.validate) {
            char rel[128];
            snprintf(rel, sizeof rel, LAT_MODEL_FMT, a.platform);
            if (cli_find_shipped(rel, shipped, sizeof shipped)) load = shipped;
        }
        if (load && strcmp(a.split, "random"))
            return cli_usage_error(prog, "--model is evaluated on --split random (unseen trains one model per held-out family)");
    } else if (method == TSR_NF_METHOD_NARFORMER) {
        /* with --validate, --model is a model written by train --validate (its
         * members trained on the same four fifths): scored on the fifth */
        if (model_set) {
            load = model;
            if (!a.ensemble_set) { /* the model and the members saved beside it */
                char mp[600];
                a.ensemble = 1;
                for (int k = 1; k < 16; k++) {
                    member_path(model, k, mp, sizeof mp);
                    if (access(mp, R_OK)) break;
                    a.ensemble = k + 1;
                }
            }
        } else if (!a.validate && !recipe_given(argc, argv) && cli_find_shipped(NB201_MODEL, shipped, sizeof shipped)) {
            /* the shipped model answers only for its own split and recipe */
            tsr_st_file f;
            if (!tsr_st_read(shipped, &f).code) {
                const char *nt = tsr_st_meta(&f, "nb201.n_train");
                if (nt && atoi(nt) == a.n_train && a.split_seed == 0) load = shipped;
                tsr_st_free(&f);
            }
            for (int k = 1; k < a.ensemble && load; k++) { /* an ensemble needs every member shipped */
                char mp[600];
                member_path(shipped, k, mp, sizeof mp);
                if (access(mp, R_OK)) load = NULL;
            }
        }
    }
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s/tsr_narformer_eval_%d.safetensors", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    if (strcmp(a.task, "latency") && !load && !t.quiet && method != TSR_NF_METHOD_FLOPS)
        fprintf(stderr, "%s: training %s%s on %d cells (%d epochs) for this evaluation\n", prog,
                tsr_nf_method_name(method), a.ensemble > 1 ? " (each ensemble member)" : "",
                a.validate ? a.n_train - a.n_train / 5 : a.n_train, t.o.epochs);
    if (!strcmp(a.task, "latency")) {
        if (!load && !t.quiet && (method == TSR_NF_METHOD_NARFORMER || method == TSR_NF_METHOD_GNN))
            fprintf(stderr, "%s: training %s (%d epochs) for this evaluation\n", prog, tsr_nf_method_name(method), t.o.epochs);
        rc = latency_task(prog, &a, method, &t, tmp, load, t.cm.json);
    } else if (!strcmp(a.task, "help-latency")) {
        if (method == TSR_NF_METHOD_KERNEL_SUM)
            return cli_usage_error(prog, "--method kernel-sum needs per-operator latencies (--task latency)");
        rc = nb201_help(&a, method, &t, tmp, t.cm.json);
    } else rc = nb201_accuracy(&a, method, &t, tmp, load, t.cm.json);
    for (int k = 0; k < a.ensemble; k++) {
        char mp[600], st_path[700];
        member_path(tmp, k, mp, sizeof mp);
        tsr_train_state_path(mp, st_path, sizeof st_path);
        unlink(mp);
        unlink(st_path);
    }
    return rc;
}


/* ------------------------------------------------------------ predict / bench */

#define RESNET18_ONNX "../shared/data/nnlqp/resnet18-v1-7-no-weight.onnx"

/* --model or the shipped predictor of --platform */
static int load_lat_model(const char *prog, const char *model, const char *platform, tsr_nf_lat_pred *p,
                          char *path, size_t n) {
    int pl = tsr_nf_platform_parse(platform);
    if (pl < 0) return cli_usage_error(prog, "--platform must be cpu-1t or cpu-2t");
    if (model) snprintf(path, n, "%s", model);
    else {
        char rel[128];
        snprintf(rel, sizeof rel, LAT_MODEL_FMT, platform);
        if (!tsr_find_model(rel, path, n)) {
            /* no shipped predictor for this platform (only cpu-1t ships) */
            char hint[256];
            snprintf(hint, sizeof hint, "no predictor for %s ships; train one (tessera narformer train --task latency --platform %s "
                     "--out FILE) and pass --model FILE", platform, platform);
            return cli_fail(tsr_errorf(TSR_ERR_IO, "%s: not found (not a shipped model)", rel), hint);
        }
    }
    tsr_status st = tsr_nf_lat_load(p, path);
    if (st.code) return cli_fail(st, "--model must be a latency predictor written by 'tessera narformer train --task latency'");
    if (model && p->platform != pl && strcmp(platform, "cpu-1t")) {
        tsr_nf_lat_pred_free(p);
        return cli_fail(tsr_errorf(TSR_ERR_ARG, "%s predicts %s, not %s", path, tsr_nf_platform_name(p->platform), platform),
                        "drop --platform, or give that platform's model");
    }
    return CLI_OK;
}

static tsr_status onnx_graph(const char *path, int batch, tsr_nf_graph *g) {
    tsr_onnx_model m;
    tsr_status st = tsr_onnx_load(&m, path);
    if (st.code) return st;
    st = tsr_nf_graph_from_onnx(g, &m, batch);
    tsr_onnx_free(&m);
    return st;
}

static int cmd_predict(const char *prog, int argc, char **argv) {
    const char *model = NULL, *onnx = NULL, *platform = "cpu-1t";
    int batch = 0;
    cli_common cm = {1, 0, false};
    if (argc > 0 && argv[0][0] != '-') {
        onnx = argv[0];
        argc--;
        argv++;
    }
    const arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "PATH", "latency predictor (default: the shipped models/narformer-latency-<platform>.safetensors)", NULL},
        {"onnx", ARG_STR, &onnx, "FILE", "the network (also accepted as the first argument)", NULL},
        {"platform", ARG_STR, &platform, "NAME", "cpu-1t | cpu-2t: tessera on this CPU at 1 or 2 threads (default cpu-1t)", NULL},
        {"batch", ARG_INT, &batch, "N", "batch size (default: the file's, 1 if symbolic)", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Predict the latency (ms) of an ONNX network on tessera's CPU kernels, without running it.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!onnx) return cli_usage_error(prog, "give an ONNX file (--onnx FILE)");
    if (batch < 0 || batch > 65536) return cli_usage_error(prog, "--batch must be in 1..65536");
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    double t0 = tsr_time();
    tsr_nf_lat_pred p;
    char path[512];
    if ((rc = load_lat_model(prog, model, platform, &p, path, sizeof path)) != CLI_OK) return rc;
    double t1 = tsr_time(), c1 = tsr_thread_time();
    tsr_nf_graph g;
    tsr_status st = onnx_graph(onnx, batch, &g);
    if (st.code) {
        tsr_nf_lat_pred_free(&p);
        return cli_fail(st, "the file must be an ONNX model of CNN operators (Conv, pools, BN, activations, Add/Mul, Concat, Gemm, ...)");
    }
    float ms = tsr_nf_lat_predict_graph(&p, &g, NULL);
    double t2 = tsr_time(), c2 = tsr_thread_time();
    if (cm.json) {
        printf("{\"file\": ");
        cli_json_str(stdout, onnx);
        printf(", \"model\": ");
        cli_json_str(stdout, path);
        printf(", \"platform\": \"%s\", \"latency_ms\": %.4f, \"batch\": %d, \"n_tokens\": %d, \"gflops\": %.6f, "
               "\"mparams\": %.4f, \"gmem\": %.6f, \"load_ms\": %.3f, \"predict_ms\": %.3f, \"predict_cpu_ms\": %.3f}\n",
               tsr_nf_platform_name(p.platform), ms, g.batch, g.n, g.flops / 1e9, g.params / 1e6, g.mem / 1e9,
               1e3 * (t1 - t0), 1e3 * (t2 - t1), 1e3 * (c2 - c1));
    } else {
        printf("%s: %.3f ms predicted on %s (batch %d, %d tokens, %.4f GFLOPs, %.3f M params); model load %.1f ms, "
               "prediction %.2f ms\n",
               onnx, ms, tsr_nf_platform_name(p.platform), g.batch, g.n, g.flops / 1e9, g.params / 1e6,
               1e3 * (t1 - t0), 1e3 * (t2 - t1));
    }
    tsr_nf_graph_free(&g);
    tsr_nf_lat_pred_free(&p);
    return CLI_OK;
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* validate (predicted vs measured on the runner), then time the predictor */
static int cmd_bench(const char *prog, int argc, char **argv) {
    const char *model = NULL, *onnx = RESNET18_ONNX, *platform = "cpu-1t", *clock = "cpu";
    int repeats = 20, runs = 3;
    uint64_t seed = 4242;
    bool json = false; /* accepted for symmetry with the other commands: the output is JSON lines either way */
    const arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "PATH", "latency predictor (default: the shipped one of --platform)", NULL},
        {"onnx", ARG_STR, &onnx, "FILE", "also predict and run this network (default " RESNET18_ONNX "; none for none)", NULL},
        {"platform", ARG_STR, &platform, "NAME", "cpu-1t | cpu-2t (default cpu-1t)", NULL},
        {"repeats", ARG_INT, &repeats, "N", "timed predictions per network (default 20)", NULL},
        {"runs", ARG_INT, &runs, "N", "timed runs of each network on the runner (default 3)", NULL},
        {"clock", ARG_STR, &clock, "C", "runner clock: wall | cpu (default cpu, as the shipped data set)", NULL},
        {"variant-seed", ARG_U64, &seed, "S", "seed of the generated networks (default 4242: not in the data set)", NULL},
        {"json", ARG_BOOL, &json, NULL, "JSON lines on stdout (the output is JSON lines with or without it)", NULL},
    };
    int rc = args_parse(prog,
                        "Benchmark the latency predictor: for one new variant of each family (and an ONNX file), "
                        "the predicted and the measured latency, and how long a prediction takes. One JSON line per network.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    (void)json;
    if ((rc = cli_check_int(prog, "repeats", repeats, 1, 100000)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "runs", runs, 1, 1000)) != CLI_OK) return rc;
    if (strcmp(clock, "wall") && strcmp(clock, "cpu")) return cli_usage_error(prog, "--clock must be wall or cpu");
    tsr_nf_lat_pred p;
    char path[512];
    if ((rc = load_lat_model(prog, model, platform, &p, path, sizeof path)) != CLI_OK) return rc;
    int threads = tsr_nf_platform_threads(p.platform);
    tsr_ctx c;
    tsr_ctx_init(&c, 8 << 20);
    double *tt = malloc(sizeof(double) * (size_t)repeats), *tc = malloc(sizeof(double) * (size_t)repeats);
    double sum_ape = 0;
    int n_net = 0;
    tsr_status st = tsr_ok();
    for (int f = -1; f < TSR_NF_FAMILIES && !st.code; f++) {
        tsr_nf_graph g;
        const char *name;
        if (f < 0) {
            if (!onnx || !*onnx || !strcmp(onnx, "none")) continue;
            st = onnx_graph(onnx, 1, &g);
            if (st.code) break;
            name = onnx;
        } else {
            tsr_nf_netgen(&g, f, seed);
            name = tsr_nf_family_name(f);
        }
        /* predictor time: tokenize + forward on one thread */
        tsr_threads_set(1);
        float pred = 0;
        for (int r = 0; r < repeats; r++) {
            double a = tsr_time(), ac = tsr_thread_time();
            pred = tsr_nf_lat_predict_graph(&p, &g, &c);
            tt[r] = 1e3 * (tsr_time() - a);
            tc[r] = 1e3 * (tsr_thread_time() - ac);
        }
        qsort(tt, (size_t)repeats, sizeof(double), cmp_dbl);
        qsort(tc, (size_t)repeats, sizeof(double), cmp_dbl);
        double pred_ms = tt[repeats / 2], pred_cpu_ms = tc[repeats / 2];
        /* the network itself on the runner */
        tsr_threads_set(threads);
        tsr_nf_measure_opts mo = {.warmup = 1, .repeats = runs, .seed = seed, .cpu_clock = !strcmp(clock, "cpu")};
        tsr_nf_measure_result mr;
        double t0 = tsr_time();
        st = tsr_nf_measure(&g, &mo, &mr);
        double run_s = tsr_time() - t0;
        if (!st.code) {
            double ape = fabs(pred - mr.median_ms) / mr.median_ms;
            sum_ape += ape;
            n_net++;
            printf("{\"bench\": \"narformer_predict\", \"network\": ");
            cli_json_str(stdout, name);
            printf(", \"platform\": \"%s\", \"n_tokens\": %d, \"gflops\": %.5f, \"predicted_ms\": %.4f, \"measured_ms\": %.4f, "
                   "\"abs_pct_error\": %.2f, \"predict_ms\": %.4f, \"predict_cpu_ms\": %.4f, \"measure_wall_s\": %.3f, \"cpu\": \"%s\", "
                   "\"kernel_level\": \"%s\", \"threads\": 1}\n",
                   tsr_nf_platform_name(p.platform), g.n, g.flops / 1e9, pred, mr.median_ms, 100 * ape, pred_ms, pred_cpu_ms, run_s,
                   tsr_cpu_level_name(tsr_cpu_best_level()), tsr_cpu_level_name(tsr_cpu_level()));
            fflush(stdout);
            tsr_nf_measure_result_free(&mr);
        }
        tsr_nf_graph_free(&g);
    }
    tsr_threads_set(1);
    if (!st.code && n_net)
        printf("{\"bench\": \"narformer_predict_summary\", \"networks\": %d, \"mape\": %.4f}\n", n_net, sum_ape / n_net);
    free(tt);
    free(tc);
    tsr_ctx_free(&c);
    tsr_nf_lat_pred_free(&p);
    if (st.code) return cli_fail(st, "--onnx must be an ONNX network the runner supports");
    return CLI_OK;
}

/* ------------------------------------------------------------ export */

static int cmd_export(const char *prog, int argc, char **argv) {
    const char *out = NULL, *family = NULL;
    uint64_t seed = 0;
    bool no_weights = false;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"family", ARG_STR, &family, "NAME", "network family (resnet, vgg, mobilenetv2, mobilenetv3, mnasnet, squeezenet, "
                                             "googlenet, alexnet, efficientnet, nb201)", NULL},
        {"net-seed", ARG_U64, &seed, "S", "the variant's seed (a data set line's \"seed\"; default 0)", NULL},
        {"out", ARG_STR, &out, "FILE", "ONNX file to write (opset 14)", NULL},
        {"no-weights", ARG_BOOL, &no_weights, NULL, "write weight shapes only, no data (smaller; not valid for onnx.checker)", NULL},
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Write a generated network of the latency data set as an ONNX model: the same graph "
                        "'tokenize' and 'predict' read back (random weights from the seed unless --no-weights).",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!family) return cli_usage_error(prog, "--family NAME is required");
    int f = tsr_nf_family_parse(family);
    if (f < 0) return cli_usage_error(prog, "unknown family '%s'", family);
    if (!out) return cli_usage_error(prog, "--out FILE is required");
    tsr_nf_graph g;
    tsr_status st = tsr_nf_netgen(&g, f, seed);
    if (!st.code) st = tsr_nf_graph_write_onnx(&g, !no_weights, seed, out);
    if (st.code) {
        tsr_nf_graph_free(&g);
        return cli_fail(st, NULL);
    }
    if (cm.json) {
        printf("{\"file\": ");
        cli_json_str(stdout, out);
        printf(", \"family\": \"%s\", \"seed\": %llu, \"n_tokens\": %d, \"gflops\": %.6f, \"gparams\": %.6f, "
               "\"gmem\": %.6f, \"weights\": %s}\n",
               family, (unsigned long long)seed, g.n, g.flops / 1e9, g.params / 1e9, g.mem / 1e9,
               no_weights ? "false" : "true");
    } else {
        printf("%s: %s seed %llu, %d nodes, input [%lld,%lld,%lld,%lld], %.4f GFLOPs, %.4f M params%s\n", out, family,
               (unsigned long long)seed, g.n, (long long)g.nodes[0].shape[0], (long long)g.nodes[0].shape[1],
               (long long)g.nodes[0].shape[2], (long long)g.nodes[0].shape[3], g.flops / 1e9, g.params / 1e6,
               no_weights ? " (no weight data)" : "");
    }
    tsr_nf_graph_free(&g);
    return CLI_OK;
}

static const cli_verb g_verbs[] = {
    {"dataset", "build the latency data set: generated networks timed on tessera's CPU ops (1 and 2 threads)", cmd_dataset},
    {"tokenize", "an ONNX network as NAR-Former V2 tokens (152-d), adjacency and static vector", cmd_tokenize},
    {"export", "write a generated network of the latency data set as an ONNX model", cmd_export},
    {"train", "train a predictor (NB201 accuracy or latency; NAR-Former V2 or a baseline) on the shared trainer", cmd_train},
    {"eval", "evaluate a predictor on a task's documented protocol (one JSON object with --json)", cmd_eval},
    {"predict", "predict the latency (ms) of an ONNX network on tessera's CPU kernels", cmd_predict},
    {"bench", "predicted vs measured latency of new networks, and the time a prediction takes", cmd_bench},
    {NULL, NULL, NULL},
};

const cli_family cli_family_narformer = {
    "narformer", "NAR-Former V2: networks as token graphs; latency and accuracy prediction", g_verbs};
