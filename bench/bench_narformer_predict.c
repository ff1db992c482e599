/* tessera bench: where a narformer latency prediction's time goes, per
 * network: reading an ONNX file into the op graph (ResNet-18 and the files
 * given as arguments), tokenizing, and the whole prediction (tokenize +
 * forward + kernel-sum prior) on a context reused across calls (as bench
 * and eval run) and on a fresh context per call (as predict and serve run);
 * and the model's forward alone, sparse (what predictions run) and dense
 * (the N x N form training records), with their relative difference
 * (validated first: above 1e-5 the bench stops with an error).
 * One thread; medians of --repeats calls, in thread CPU ms (what other
 * jobs on a loaded machine inflate least) and wall ms. The networks are the ResNet-18
 * ONNX file and one variant of each family (seed 4242, as 'narformer
 * bench'). One JSON line per network; the predicted ms is printed so a
 * change of the predictor's arithmetic shows up. --check-seeds K adds one
 * line: the largest sparse-vs-dense relative difference over the seeds
 * 0..K-1 of every family (the data set's graphs for K = 200).
 *
 *   build/bench_narformer_predict [--model M] [--repeats N] [--check-seeds K] [FILE.onnx ...]
 */
#include "bench_common.h"
#include "tessera/narformer.h"
#include "tessera/onnx.h"

#include <stdlib.h>
#include <string.h>

#define RESNET18 "../shared/data/nnlqp/resnet18-v1-7-no-weight.onnx"
#define MODEL "models/narformer-latency-cpu-1t.safetensors"

static tsr_status onnx_graph(const char *path, tsr_nf_graph *g) {
    tsr_onnx_model m;
    tsr_status st = tsr_onnx_load(&m, path);
    if (st.code) return st;
    st = tsr_nf_graph_from_onnx(g, &m, 1);
    tsr_onnx_free(&m);
    return st;
}

/* the model's raw output on g, sparse or dense, on c (grad off) */
static float forward_only(const tsr_nf_lat_pred *p, const tsr_nf_graph *g, tsr_ctx *c, bool sparse) {
    int N = g->n;
    tsr_tensor *x = tsr_new(c, TSR_F32, TSR_DIMS(1, N, TSR_NF_TOKEN_DIM));
    tsr_tensor *adj = tsr_new(c, TSR_F32, TSR_DIMS(N, N));
    tsr_tensor *sf = tsr_new(c, TSR_F32, TSR_DIMS(1, TSR_NF_STATIC_DIM));
    tsr_nf_tokenize(g, tsr_f32(x), tsr_f32(adj), tsr_f32(sf));
    tsr_tensor *y = sparse ? tsr_nf_forward_sparse(c, &p->nf, x, adj, sf) : tsr_nf_forward(c, &p->nf, x, adj, sf);
    float v = tsr_f32(y)[0];
    tsr_ctx_reset(c);
    return v;
}

static double rel_diff(float a, float b) { return fabs((double)a - b) / fmax(fabs((double)b), 1e-30); }

enum { PH_ONNX, PH_TOKENIZE, PH_REUSED, PH_FRESH, PH_SPARSE, PH_DENSE, PH_COUNT };
static const char *const ph_name[PH_COUNT] = {"onnx", "tokenize", "predict_reused_ctx", "predict_fresh_ctx",
                                              "forward_sparse", "forward_dense"};

typedef struct {
    const tsr_nf_lat_pred *p;
    const tsr_nf_graph *g;
    const char *onnx;
    tsr_ctx *c;
    float *tok, *adj, sf[TSR_NF_STATIC_DIM];
} bench_in;

/* one call of a phase; returns the prediction or forward output (0 otherwise) */
static float run_phase(bench_in *in, int ph) {
    switch (ph) {
    case PH_ONNX: {
        tsr_nf_graph h;
        tsr_status st = onnx_graph(in->onnx, &h);
        TSR_ASSERT(!st.code);
        tsr_nf_graph_free(&h);
        return 0;
    }
    case PH_TOKENIZE: tsr_nf_tokenize(in->g, in->tok, in->adj, in->sf); return 0;
    case PH_REUSED: return tsr_nf_lat_predict_graph(in->p, in->g, in->c);
    case PH_FRESH: return tsr_nf_lat_predict_graph(in->p, in->g, NULL);
    default: return forward_only(in->p, in->g, in->c, ph == PH_SPARSE);
    }
}

static void bench_net(const tsr_nf_lat_pred *p, const char *name, const char *onnx, const tsr_nf_graph *g,
                      int repeats, tsr_ctx *c, const char *cpu) {
    bench_in in = {p, g, onnx, c, NULL, NULL, {0}};
    in.tok = malloc(sizeof(float) * (size_t)g->n * TSR_NF_TOKEN_DIM);
    in.adj = malloc(sizeof(float) * (size_t)g->n * g->n);
    double *tw = malloc(sizeof(double) * (size_t)repeats), *tc = malloc(sizeof(double) * (size_t)repeats);
    TSR_ASSERT(in.tok && in.adj && tw && tc);
    double wall[PH_COUNT], cput[PH_COUNT];
    float pred = tsr_nf_lat_predict_graph(p, g, c), fw[2] = {0, 0};
    /* validate first: the sparse forward predictions run must match the dense one */
    double rel = rel_diff(forward_only(p, g, c, true), forward_only(p, g, c, false));
    if (!(rel < 1e-5)) {
        fprintf(stderr, "bench_narformer_predict: %s: sparse and dense forward differ by %.3g (relative)\n", name, rel);
        exit(1);
    }
    for (int ph = 0; ph < PH_COUNT; ph++) {
        wall[ph] = cput[ph] = -1;
        if (ph == PH_ONNX && !onnx) continue;
        float y = run_phase(&in, ph); /* warm-up */
        for (int r = 0; r < repeats; r++) {
            double a = tsr_time(), ac = tsr_thread_time();
            float y2 = run_phase(&in, ph);
            tc[r] = 1e3 * (tsr_thread_time() - ac);
            tw[r] = 1e3 * (tsr_time() - a);
            TSR_ASSERT(y2 == y || (isnan(y) && isnan(y2)));
        }
        if (ph == PH_REUSED || ph == PH_FRESH) TSR_ASSERT(y == pred);
        if (ph == PH_SPARSE || ph == PH_DENSE) fw[ph == PH_SPARSE] = y;
        wall[ph] = bench_median(tw, repeats);
        cput[ph] = bench_median(tc, repeats);
    }
    printf("{\"bench\":\"narformer_predict\",\"network\":\"%s\",\"n_tokens\":%d,\"n_edges\":%d,\"predicted_ms\":%.4f", name,
           g->n, g->n_edges, pred);
    for (int ph = 0; ph < PH_COUNT; ph++)
        printf(",\"%s_cpu_ms\":%.4f,\"%s_wall_ms\":%.4f", ph_name[ph], cput[ph], ph_name[ph], wall[ph]);
    printf(",\"sparse_vs_dense_rel\":%.3g,\"repeats\":%d,\"threads\":%d,\"cpu\":\"%s\",\"build\":\"%s\"}\n",
           rel_diff(fw[1], fw[0]), repeats, tsr_threads_get(), cpu, bench_build_flags());
    fflush(stdout);
    free(in.tok);
    free(in.adj);
    free(tw);
    free(tc);
}

int main(int argc, char **argv) {
    const char *model = MODEL;
    int repeats = 50, check_seeds = 0, first_file = argc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) {
            repeats = atoi(argv[++i]);
            if (repeats < 1 || repeats > 100000) {
                fprintf(stderr, "bench_narformer_predict: --repeats must be in 1..100000\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--check-seeds") && i + 1 < argc) {
            check_seeds = atoi(argv[++i]);
            if (check_seeds < 0 || check_seeds > 1000000) {
                fprintf(stderr, "bench_narformer_predict: --check-seeds must be in 0..1000000\n");
                return 2;
            }
        } else {
            first_file = i;
            break;
        }
    }
    if (!bench_start("bench_narformer_predict")) return 1;
    tsr_threads_set(1);
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    tsr_nf_lat_pred p;
    tsr_status st = tsr_nf_lat_load(&p, model);
    if (st.code) {
        fprintf(stderr, "bench_narformer_predict: %s\n", st.msg);
        return 1;
    }
    tsr_ctx c;
    tsr_ctx_init(&c, 8 << 20);
    c.grad_enabled = false; /* prediction: no tape, no dropout */
    c.training = false;
    int n_files = argc - first_file + 1;
    for (int i = 0; i < n_files; i++) {
        const char *f = i == 0 ? RESNET18 : argv[first_file + i - 1];
        tsr_nf_graph g;
        st = onnx_graph(f, &g);
        if (st.code) {
            fprintf(stderr, "bench_narformer_predict: %s (skipped)\n", st.msg);
            continue;
        }
        bench_net(&p, f, f, &g, repeats, &c, cpu);
        tsr_nf_graph_free(&g);
    }
    for (int f = 0; f < TSR_NF_FAMILIES; f++) {
        tsr_nf_graph g;
        st = tsr_nf_netgen(&g, f, 4242);
        TSR_ASSERT(!st.code);
        bench_net(&p, tsr_nf_family_name(f), NULL, &g, repeats, &c, cpu);
        tsr_nf_graph_free(&g);
    }
    if (check_seeds > 0) {
        double worst = 0;
        int n = 0, worst_f = 0, max_n = 0;
        uint64_t worst_s = 0;
        for (int f = 0; f < TSR_NF_FAMILIES; f++)
            for (int k = 0; k < check_seeds; k++) {
                tsr_nf_graph g;
                st = tsr_nf_netgen(&g, f, (uint64_t)k);
                TSR_ASSERT(!st.code);
                double e = rel_diff(forward_only(&p, &g, &c, true), forward_only(&p, &g, &c, false));
                if (e > worst || isnan(e)) worst = isnan(e) ? INFINITY : e, worst_f = f, worst_s = (uint64_t)k;
                if (g.n > max_n) max_n = g.n;
                n++;
                tsr_nf_graph_free(&g);
            }
        printf("{\"bench\":\"narformer_sparse_check\",\"graphs\":%d,\"max_tokens\":%d,\"max_rel_diff\":%.3g,"
               "\"worst_family\":\"%s\",\"worst_seed\":%llu}\n",
               n, max_n, worst, tsr_nf_family_name(worst_f), (unsigned long long)worst_s);
    }
    tsr_ctx_free(&c);
    tsr_nf_lat_pred_free(&p);
    return 0;
}
