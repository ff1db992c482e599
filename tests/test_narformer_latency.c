/* Tests for narformer's latency side: the network generator (every family
 * builds, deterministically, with consistent shapes), the runner (executes
 * each family and checks every output shape against the graph's), the data
 * set file (write -> parse round trip; malformed lines give a status), the
 * closed-form baselines (FLOPs regression and the per-operator kernel model
 * recover latencies that are exactly linear in their features), and the
 * POST /v1/latency endpoint (ONNX bytes in, the predictor's figure out). */
#include "testutil.h"
#include "tessera/narformer.h"
#include "tessera/serve.h"

#include <math.h>
#include <string.h>

#define RESNET "../shared/data/nnlqp/resnet18-v1-7-no-weight.onnx"

static bool same_graph(const tsr_nf_graph *a, const tsr_nf_graph *b) {
    if (a->n != b->n || a->n_edges != b->n_edges) return false;
    for (int i = 0; i < a->n; i++) {
        const tsr_nf_node *x = &a->nodes[i], *y = &b->nodes[i];
        if (x->op != y->op || x->n_attr != y->n_attr || x->ndim != y->ndim) return false;
        for (int k = 0; k < x->ndim; k++)
            if (x->shape[k] != y->shape[k]) return false;
        for (int k = 0; k < x->n_attr; k++)
            if (x->attr[k] != y->attr[k]) return false;
        if (fabs(x->flops - y->flops) > 1e-6 * (1 + x->flops)) return false;
    }
    for (int e = 0; e < a->n_edges; e++)
        if (a->esrc[e] != b->esrc[e] || a->edst[e] != b->edst[e]) return false;
    return true;
}

/* a small variant of each family runs on the runner; the graph is a pure
 * function of (family, seed) */
static void test_netgen_runner(tsr_nf_latset *out) {
    out->n = 0;
    out->nets = calloc(2 * TSR_NF_FAMILIES, sizeof *out->nets);
    for (int f = 0; f < TSR_NF_FAMILIES; f++) {
        TU_CHECK(tsr_nf_family_parse(tsr_nf_family_name(f)) == f, "family name %d", f);
        tsr_nf_graph g, g2;
        tsr_status st = tsr_nf_netgen(&g, f, 7);
        TU_CHECK(st.code == 0, "%s: %s", tsr_nf_family_name(f), st.msg);
        tsr_nf_netgen(&g2, f, 7);
        TU_CHECK(same_graph(&g, &g2), "%s: same seed, same graph", tsr_nf_family_name(f));
        tsr_nf_graph_free(&g2);
        TU_CHECK(g.n >= 8 && g.nodes[0].op == TSR_NF_OP_INPUT && g.flops > 0, "%s: %d nodes", tsr_nf_family_name(f), g.n);
        for (int e = 0; e < g.n_edges; e++) TU_CHECK(g.esrc[e] < g.edst[e], "%s: edges go forward", tsr_nf_family_name(f));
        tsr_nf_measure_opts mo = {.warmup = 0, .repeats = 1, .seed = 1, .cpu_clock = f % 2 == 0};
        tsr_nf_measure_result r;
        st = tsr_nf_measure(&g, &mo, &r);
        TU_CHECK(st.code == 0, "%s runs: %s", tsr_nf_family_name(f), st.msg);
        if (!st.code) {
            double sum = 0;
            for (int i = 0; i < g.n; i++) sum += r.node_ms[i];
            TU_CHECK(r.median_ms > 0 && sum > 0 && r.min_ms <= r.median_ms && r.median_ms <= r.max_ms,
                     "%s: %.3f ms, node sum %.3f", tsr_nf_family_name(f), r.median_ms, sum);
            tsr_nf_latnet *n = &out->nets[out->n++];
            n->family = f;
            n->seed = 7;
            n->g = g;
            n->node_ms = malloc(sizeof(float) * (size_t)g.n * TSR_NF_PLATFORMS);
            for (int p = 0; p < TSR_NF_PLATFORMS; p++) {
                n->lat[p] = (float)r.median_ms * (1 + p), n->lat_min[p] = (float)r.min_ms, n->lat_max[p] = (float)r.max_ms * 2;
                for (int i = 0; i < g.n; i++) n->node_ms[(size_t)i * TSR_NF_PLATFORMS + p] = (float)r.node_ms[i];
            }
            tsr_nf_measure_result_free(&r);
        } else tsr_nf_graph_free(&g);
    }
    /* a graph the runner cannot execute gives a status naming the node */
    tsr_nf_graph g;
    tsr_nf_graph_init(&g);
    tsr_nf_node in = {.op = TSR_NF_OP_INPUT, .ndim = 4, .shape = {1, 3, 8, 8}};
    tsr_nf_node sm = {.op = TSR_NF_OP_SOFTMAX, .ndim = 4, .shape = {1, 3, 8, 8}};
    tsr_nf_graph_add(&g, &in);
    tsr_nf_graph_add(&g, &sm);
    tsr_nf_graph_edge(&g, 0, 1);
    tsr_nf_measure_opts mo = {.warmup = 0, .repeats = 1};
    tsr_nf_measure_result r;
    tsr_status st = tsr_nf_measure(&g, &mo, &r);
    TU_CHECK(st.code != 0 && strstr(st.msg, "Softmax"), "unsupported op: %s", st.msg);
    tsr_nf_graph_free(&g);
}

static char *write_set(const tsr_nf_latset *s, size_t *len) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    fprintf(f, "{\"format\": \"tessera-narformer-latency\", \"version\": 1, \"platforms\": [\"cpu-1t\", \"cpu-2t\"]}\n");
    for (int i = 0; i < s->n; i++) tsr_nf_latnet_write(f, &s->nets[i], i);
    fclose(f);
    return buf;
}

static void test_file(const tsr_nf_latset *s) {
    size_t len;
    char *text = write_set(s, &len);
    tsr_nf_latset r;
    tsr_status st = tsr_nf_latset_parse(&r, text, len, "mem");
    TU_CHECK(st.code == 0 && r.n == s->n, "round trip: %s (%d nets)", st.msg, r.n);
    for (int i = 0; i < r.n && !st.code; i++) {
        TU_CHECK(same_graph(&r.nets[i].g, &s->nets[i].g), "net %d: graph survives the file", i);
        TU_CHECK(r.nets[i].family == s->nets[i].family, "net %d family", i);
        for (int p = 0; p < TSR_NF_PLATFORMS; p++)
            TU_CHECK(fabsf(r.nets[i].lat[p] - s->nets[i].lat[p]) <= 1e-4f * s->nets[i].lat[p], "net %d latency", i);
    }
    if (!st.code) tsr_nf_latset_free(&r);
    /* hostile: every truncation point of the first 3 lines, and edited lines */
    char *nl = text;
    for (int k = 0; k < 3 && nl; k++) nl = strchr(nl + 1, '\n');
    size_t upto = nl ? (size_t)(nl - text) : len;
    int ok_or_err = 0;
    for (size_t cut = 0; cut < upto; cut += 37) {
        st = tsr_nf_latset_parse(&r, text, cut, "mem");
        if (!st.code) tsr_nf_latset_free(&r);
        else ok_or_err += st.msg[0] != 0 && !strchr(st.msg, '\n');
    }
    TU_CHECK(ok_or_err > 0, "truncations give one-line errors");
    /* a network's "seed" that is no integer in 0..2^64-1: -1 and 1e30 were
     * converted to uint64_t unchecked (undefined behaviour), "7" read as 0 */
    const char *seeds[] = {"-1", "1e30", "0.5", "\"7\""};
    size_t at = 0; /* just after the first "seed": (the header line has none) */
    while (at + 8 <= len && memcmp(text + at, "\"seed\": ", 8)) at++;
    at += 8;
    TU_CHECK(at <= len, "the written file has a network seed");
    for (size_t i = 0; at <= len && i < sizeof seeds / sizeof *seeds; i++) {
        size_t dl = strspn(text + at, "0123456789"), sl = strlen(seeds[i]);
        char *t2 = malloc(len - dl + sl);
        memcpy(t2, text, at);
        memcpy(t2 + at, seeds[i], sl);
        memcpy(t2 + at + sl, text + at + dl, len - at - dl);
        st = tsr_nf_latset_parse(&r, t2, len - dl + sl, "seed.jsonl");
        TU_CHECK(st.code != 0 && strstr(st.msg, "seed.jsonl") && strstr(st.msg, "\"seed\""), "seed %s refused: %s",
                 seeds[i], st.msg);
        if (!st.code) tsr_nf_latset_free(&r);
        free(t2);
    }
    const char *bad[] = {
        "{\"format\": \"other\", \"version\": 1}\n{}\n{}\n",
        "{\"format\": \"tessera-narformer-latency\", \"version\": 1}\n{\"family\": \"resnet\"}\n",
        ("{\"format\": \"tessera-narformer-latency\", \"version\": 1}\n{\"family\": \"resnet\", \"latency_ms\": [1, 2], "
         "\"min_ms\": [1, 2], \"max_ms\": [1, 2], \"nodes\": [{\"op\": \"Input\", \"attr\": [], \"shape\": [1, 3], "
         "\"in\": [0], \"flops\": 0, \"params\": 0, \"mem\": 0, \"ms\": [0, 0]}]}\n"),
        ("{\"format\": \"tessera-narformer-latency\", \"version\": 1}\n{\"family\": \"resnet\", \"latency_ms\": [0, 2], "
         "\"min_ms\": [1, 2], \"max_ms\": [1, 2], \"nodes\": []}\n"),
        "{\"format\": \"tessera-narformer-latency\", \"version\": 1}\n[1, 2]\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        st = tsr_nf_latset_parse(&r, bad[i], strlen(bad[i]), "bad.jsonl");
        TU_CHECK(st.code != 0 && strstr(st.msg, "bad.jsonl"), "bad file %zu refused with its name: %s", i, st.msg);
        if (!st.code) tsr_nf_latset_free(&r);
    }
    free(text);
}

/* latencies exactly linear in the features: the closed-form baselines recover them */
static void test_baselines(tsr_nf_latset *s) {
    for (int i = 0; i < s->n; i++) {
        tsr_nf_latnet *n = &s->nets[i];
        double tot = 0;
        for (int k = 0; k < n->g.n; k++) {
            const tsr_nf_node *nd = &n->g.nodes[k];
            double v = nd->op < 0 ? 0 : 0.01 + 0.002 * nd->flops / 1e6 + 0.05 * (nd->op == TSR_NF_OP_CONV) * nd->mem / 1e6;
            n->node_ms[(size_t)k * TSR_NF_PLATFORMS] = (float)v;
            tot += v;
        }
        n->lat[0] = (float)tot;
        n->lat[1] = (float)(0.3 + 2.0 * n->g.flops / 1e9 + 5.0 * n->g.mem / 1e9);
    }
    int32_t ids[2 * TSR_NF_FAMILIES];
    for (int i = 0; i < s->n; i++) ids[i] = i;
    tsr_nf_lat_opts o = tsr_nf_lat_default_opts(TSR_NF_METHOD_KERNEL_SUM);
    tsr_train_opts to = tsr_train_default_opts();
    tsr_nf_lat_pred p;
    tsr_status st = tsr_nf_lat_fit(&p, &o, s, 0, ids, s->n, &to, NULL);
    TU_CHECK(st.code == 0, "kernel-sum fit: %s", st.msg);
    float pred[2 * TSR_NF_FAMILIES], y[2 * TSR_NF_FAMILIES];
    tsr_nf_lat_predict(&p, s, ids, s->n, pred);
    for (int i = 0; i < s->n; i++) y[i] = s->nets[i].lat[0];
    tsr_nf_metrics m;
    tsr_nf_metrics_compute(pred, y, s->n, &m);
    TU_CHECK(m.mape < 1e-3, "kernel-sum recovers per-operator linear latencies: MAPE %g", m.mape);
    tsr_nf_lat_pred_free(&p);
    o.method = TSR_NF_METHOD_FLOPS;
    st = tsr_nf_lat_fit(&p, &o, s, 1, ids, s->n, &to, NULL);
    TU_CHECK(st.code == 0, "flops fit: %s", st.msg);
    tsr_nf_lat_predict(&p, s, ids, s->n, pred);
    for (int i = 0; i < s->n; i++) y[i] = s->nets[i].lat[1];
    tsr_nf_metrics_compute(pred, y, s->n, &m);
    TU_CHECK(m.mape < 1e-3, "flops regression recovers a linear latency: MAPE %g", m.mape);
    tsr_nf_lat_pred_free(&p);
    o.method = TSR_NF_METHOD_MLP;
    st = tsr_nf_lat_fit(&p, &o, s, 0, ids, s->n, &to, NULL);
    TU_CHECK(st.code != 0, "mlp is refused for latency");
}

/* the narformer predictor with the kernel-sum prior: a network whose
 * operators do 64x the work (same tokens, 64x FLOPs, memory and
 * parameters) is predicted far slower, as the prior scales, where the
 * plain head saturates inside the range it was trained on; the prior's
 * coefficients travel through the saved file */
static tsr_nf_graph scaled_copy(const tsr_nf_graph *g, double k) {
    tsr_nf_graph o;
    tsr_nf_graph_init(&o);
    for (int i = 0; i < g->n; i++) {
        tsr_nf_node nd = g->nodes[i];
        nd.flops *= k, nd.mem *= k, nd.params *= k;
        tsr_nf_graph_add(&o, &nd);
    }
    for (int e = 0; e < g->n_edges; e++) tsr_nf_graph_edge(&o, g->esrc[e], g->edst[e]);
    return o;
}

static void test_prior(const tsr_nf_latset *s) {
    int32_t ids[2 * TSR_NF_FAMILIES];
    for (int i = 0; i < s->n; i++) ids[i] = i;
    tsr_nf_lat_opts o = tsr_nf_lat_default_opts(TSR_NF_METHOD_NARFORMER);
    TU_CHECK(o.prior, "the narformer latency predictor has the prior by default");
    o.cfg.dim = 16, o.cfg.fc_hidden = 16, o.cfg.groups = 4, o.cfg.n_layers = 1;
    tsr_train_opts to = tsr_train_default_opts();
    to.epochs = 2;
    to.lr = 1e-3f;
    to.out = tu_tmp("nf_prior.safetensors");
    tsr_nf_lat_pred p, q;
    tsr_train_result tr;
    tsr_status st = tsr_nf_lat_fit(&p, &o, s, 0, ids, s->n, &to, &tr);
    TU_CHECK(st.code == 0 && p.prior, "fit with prior: %s", st.msg);
    if (st.code) return;
    const tsr_nf_graph *g = &s->nets[0].g; /* a ResNet variant */
    tsr_nf_graph big = scaled_copy(g, 64);
    float small_ms = tsr_nf_lat_predict_graph(&p, g, NULL), big_ms = tsr_nf_lat_predict_graph(&p, &big, NULL);
    double ks = tsr_nf_lat_kernel_sum(&p, g), kb = tsr_nf_lat_kernel_sum(&p, &big);
    TU_CHECK(kb > 8 * ks && ks > 0, "the prior scales with the work: %g -> %g ms", ks, kb);
    /* the learned factor sees the same tokens and another static code: it may move, not cancel the scale */
    double r = (double)big_ms / small_ms / (kb / ks);
    TU_CHECK(small_ms > 0 && r > 0.25 && r < 4, "64x the work predicted %.4g -> %.4g ms (prior %.4g -> %.4g)",
             small_ms, big_ms, ks, kb);
    st = tsr_nf_lat_load(&q, to.out);
    TU_CHECK(st.code == 0 && q.prior, "load with prior: %s", st.msg);
    if (!st.code) {
        float a = tsr_nf_lat_predict_graph(&q, &big, NULL);
        TU_CHECK(fabsf(a - big_ms) <= 1e-5f * big_ms, "saved and loaded: %.6g vs %.6g ms", a, big_ms);
        tsr_nf_lat_pred_free(&q);
    }
    /* a file that names the prior without its coefficients is refused */
    const char *bad = tu_tmp("nf_prior_bad.safetensors");
    const char *meta[] = {"latency.method", "narformer", "latency.platform", "cpu-1t", "latency.y_scale", "1",
                          "latency.prior", "kernel-sum", "latency.prior_kcoef", "1 2 3", NULL};
    st = tsr_nf_model_save(&p.nf, bad, meta);
    TU_CHECK(st.code == 0, "save: %s", st.msg);
    st = tsr_nf_lat_load(&q, bad);
    TU_CHECK(st.code != 0 && strstr(st.msg, "prior"), "short prior refused: %s", st.msg);
    remove(bad);
    char state[1200];
    tsr_train_state_path(to.out, state, sizeof state);
    remove(state);
    remove(to.out);
    tsr_nf_graph_free(&big);
    tsr_nf_lat_pred_free(&p);
}

/* POST /v1/latency with a small untrained predictor: ONNX bytes in, the same
 * figure as tsr_nf_lat_predict_graph out; bad bodies are 400s */
static void test_endpoint(void) {
    tsr_nf_cfg cfg = tsr_nf_default_cfg(TSR_NF_HEAD_LATENCY, TSR_NF_TOKEN_DIM);
    cfg.dim = 16, cfg.fc_hidden = 16, cfg.groups = 4, cfg.n_layers = 1;
    tsr_nf_model m;
    tsr_status st = tsr_nf_model_init(&m, &cfg, 3);
    TU_CHECK(st.code == 0, "init: %s", st.msg);
    const char *path = tu_tmp("nf_lat.safetensors");
    const char *meta[] = {"latency.method", "narformer", "latency.platform", "cpu-1t", "latency.y_scale", "2.5", NULL};
    st = tsr_nf_model_save(&m, path, meta);
    TU_CHECK(st.code == 0, "save: %s", st.msg);
    tsr_nf_model_free(&m);
    const tsr_serve_endpoint *ep = &tsr_narformer_serve_endpoint;
    void *state = NULL;
    const char *paths[1] = {path};
    st = ep->load(&state, paths, NULL);
    TU_CHECK(st.code == 0 && state, "endpoint load: %s", st.msg);
    if (st.code) return;
    FILE *f = fopen(RESNET, "rb");
    TU_CHECK(f != NULL, "open %s", RESNET);
    if (!f) return;
    char *onnx = malloc(1 << 20);
    size_t n = fread(onnx, 1, 1 << 20, f);
    fclose(f);
    tsr_serve_usage usage = {0};
    tsr_serve_request rq = {"POST", "/v1/latency", onnx, n, 0, &usage};
    tsr_serve_reply rp;
    memset(&rp, 0, sizeof rp);
    TU_CHECK(!strcmp(ep->routes[0].path, "/v1/latency") && !strcmp(ep->routes[0].method, "POST"), "route");
    ep->routes[0].handle(state, &rq, &rp);
    TU_CHECK(rp.status == 200 && rp.body, "200 with a body (got %d: %s)", rp.status, rp.error);
    if (rp.body) {
        tsr_nf_lat_pred p;
        tsr_nf_lat_load(&p, path);
        tsr_onnx_model om;
        tsr_onnx_load(&om, RESNET);
        tsr_nf_graph g;
        tsr_nf_graph_from_onnx(&g, &om, 0);
        tsr_onnx_free(&om);
        char want[64];
        snprintf(want, sizeof want, "\"latency_ms\": %.4f,", tsr_nf_lat_predict_graph(&p, &g, NULL));
        TU_CHECK(strstr(rp.body, want) && strstr(rp.body, "\"n_tokens\": 70,") && strstr(rp.body, "\"platform\": \"cpu-1t\""),
                 "reply %s has %s", rp.body, want);
        tsr_nf_graph_free(&g);
        tsr_nf_lat_pred_free(&p);
        free(rp.body);
    }
    const char *bodies[] = {"", "{\"onnx\": 1}", "\x08\x07garbage"};
    size_t lens[] = {0, 11, 9};
    for (int i = 0; i < 3; i++) {
        tsr_serve_request b = {"POST", "/v1/latency", bodies[i], lens[i], 0, &usage};
        memset(&rp, 0, sizeof rp);
        ep->routes[0].handle(state, &b, &rp);
        TU_CHECK(rp.status == 400 && rp.error[0] && !rp.body, "bad body %d -> 400 (%d: %s)", i, rp.status, rp.error);
    }
    ep->unload(state);
    free(onnx);
    remove(path);
}

/* every family exports to ONNX and reads back (tsr_onnx_parse +
 * tsr_nf_graph_from_onnx) to the same graph: nodes, attributes, shapes,
 * edges, FLOPs, parameters and memory; with and without weight data */
static void test_onnx_export(void) {
    int checked = 0;
    for (int f = 0; f < TSR_NF_FAMILIES; f++)
        for (uint64_t seed = 0; seed < 4; seed++) {
            tsr_nf_graph g, h;
            tsr_status st = tsr_nf_netgen(&g, f, seed);
            TU_CHECK(!st.code, "netgen %s/%llu", tsr_nf_family_name(f), (unsigned long long)seed);
            if (st.code) continue;
            bool weights = seed == 1;
            uint8_t *buf = NULL, *buf2 = NULL;
            size_t n = 0, n2 = 0;
            st = tsr_nf_graph_to_onnx(&g, weights, seed, &buf, &n);
            TU_CHECK(!st.code && n > 0, "export %s/%llu: %s", tsr_nf_family_name(f), (unsigned long long)seed, st.msg);
            tsr_nf_graph_to_onnx(&g, weights, seed, &buf2, &n2);
            TU_CHECK(n == n2 && buf && buf2 && !memcmp(buf, buf2, n), "export is deterministic");
            if (weights) { /* weight data is there: 4 bytes per parameter at least */
                TU_CHECK((double)n > 4 * g.params, "%s with weights: %zu bytes for %.0f params", tsr_nf_family_name(f), n, g.params);
            }
            tsr_onnx_model m;
            st = tsr_onnx_parse(&m, buf, n);
            TU_CHECK(!st.code, "parse exported %s: %s", tsr_nf_family_name(f), st.msg);
            if (!st.code) {
                TU_CHECK(m.opset == 14 && m.n_inputs == 1 && m.n_nodes == g.n - 1, "model header %s", tsr_nf_family_name(f));
                st = tsr_nf_graph_from_onnx(&h, &m, 1);
                TU_CHECK(!st.code, "graph from exported %s: %s", tsr_nf_family_name(f), st.msg);
                if (!st.code) {
                    bool same = same_graph(&g, &h);
                    for (int i = 0; same && i < g.n; i++)
                        same = fabs(g.nodes[i].params - h.nodes[i].params) <= 1e-6 * (1 + g.nodes[i].params) &&
                               fabs(g.nodes[i].mem - h.nodes[i].mem) <= 1e-6 * (1 + g.nodes[i].mem);
                    same = same && fabs(g.flops - h.flops) <= 1e-9 * g.flops && fabs(g.params - h.params) <= 1e-9 * (1 + g.params) &&
                           fabs(g.mem - h.mem) <= 1e-9 * g.mem;
                    for (int i = 0; !same && i < g.n && i < h.n; i++) {
                        const tsr_nf_node *x = &g.nodes[i], *y = &h.nodes[i];
                        if (x->op != y->op || x->n_attr != y->n_attr || x->ndim != y->ndim || x->flops != y->flops ||
                            x->params != y->params || x->mem != y->mem) {
                            fprintf(stderr, "  first difference at node %d: op %d/%d attrs %d/%d ndim %d/%d flops %g/%g params %g/%g mem %g/%g\n",
                                    i, x->op, y->op, x->n_attr, y->n_attr, x->ndim, y->ndim, x->flops, y->flops, x->params,
                                    y->params, x->mem, y->mem);
                            break;
                        }
                    }
                    TU_CHECK(same, "%s/%llu: the ONNX round trip gives the same graph (%d vs %d nodes)",
                             tsr_nf_family_name(f), (unsigned long long)seed, g.n, h.n);
                    checked += same;
                    tsr_nf_graph_free(&h);
                }
            }
            tsr_onnx_free(&m);
            free(buf);
            free(buf2);
            tsr_nf_graph_free(&g);
        }
    TU_CHECK(checked == 4 * TSR_NF_FAMILIES, "%d of %d exported networks round-trip", checked, 4 * TSR_NF_FAMILIES);
    /* a graph the exporter cannot express is refused */
    tsr_nf_graph g;
    tsr_nf_graph_init(&g);
    tsr_nf_node in = {.op = TSR_NF_OP_INPUT, .ndim = 4, .shape = {1, 3, 8, 8}};
    tsr_nf_node sm = {.op = TSR_NF_OP_SOFTMAX, .ndim = 4, .shape = {1, 3, 8, 8}};
    tsr_nf_graph_add(&g, &in);
    tsr_nf_graph_add(&g, &sm);
    tsr_nf_graph_edge(&g, 0, 1);
    uint8_t *buf = NULL;
    size_t n = 0;
    tsr_status st = tsr_nf_graph_to_onnx(&g, false, 0, &buf, &n);
    TU_CHECK(st.code && !buf && strstr(st.msg, "Softmax"), "unsupported operator refused: %s", st.msg);
    tsr_nf_graph_free(&g);
}

/* the average-pooling variant: about half of the ResNet (ResNet-D
 * shortcuts) and GoogLeNet (average-pooled pool branch) networks have
 * AveragePool nodes, the other families none outside NB201; a variant
 * runs on the runner with the graph's shapes */
static void test_pool_variant(void) {
    for (int f = 0; f < TSR_NF_FAMILIES; f++) {
        if (f == TSR_NF_FAM_NB201) continue;
        int with = 0, ran = 0;
        for (uint64_t seed = 0; seed < 16; seed++) {
            tsr_nf_graph g;
            tsr_nf_netgen(&g, f, seed);
            bool avg = false;
            for (int i = 0; i < g.n; i++) avg |= g.nodes[i].op == TSR_NF_OP_AVGPOOL;
            with += avg;
            if (avg && !ran++) {
                tsr_nf_measure_opts mo = {.warmup = 0, .repeats = 1, .seed = 1};
                tsr_nf_measure_result r;
                tsr_status st = tsr_nf_measure(&g, &mo, &r);
                TU_CHECK(!st.code, "%s pooling variant runs: %s", tsr_nf_family_name(f), st.msg);
                if (!st.code) tsr_nf_measure_result_free(&r);
            }
            tsr_nf_graph_free(&g);
        }
        if (f == TSR_NF_FAM_RESNET || f == TSR_NF_FAM_GOOGLENET)
            TU_CHECK(with >= 3 && with <= 13, "%s: %d of 16 with AveragePool", tsr_nf_family_name(f), with);
        else
            TU_CHECK(with == 0, "%s: %d of 16 with AveragePool", tsr_nf_family_name(f), with);
    }
}

int main(void) {
    tsr_threads_set(1);
    test_pool_variant();
    tsr_nf_latset s;
    test_netgen_runner(&s);
    test_file(&s);
    test_baselines(&s);
    test_prior(&s);
    tsr_nf_latset_free(&s);
    test_endpoint();
    test_onnx_export();
    return tu_finish("narformer_latency");
}
