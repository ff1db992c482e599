/* narformer: the latency data set file and the latency predictors trained
 * on it — NAR-Former V2 (latency head: sum readout + static branch, loss
 * MSE(pred/y, 1)), an NNLP-style GNN (2 SAGEConv layers over the node
 * tokens + the static vector), an nn-Meter-style kernel model (per-operator
 * least squares on FLOPs and memory, summed over the network) and a FLOPs
 * regression. With the prior (the default), narformer and the GNN predict a
 * factor on the kernel model's estimate, fitted on the same training
 * networks: the estimate is linear in each operator's work, so predictions
 * scale to networks larger than any trained on, where the sin/cos codes of
 * sizes and FLOPs wrap and a plain head stays inside its label range.
 *
 * File (JSON lines): a header object {"format": "tessera-narformer-latency",
 * "version": 1, "platforms": [...], "warmup", "repeats", ...}, then one
 * object per network:
 *   {"id", "family", "seed", "gflops", "gparams", "gmem",
 *    "latency_ms": [per platform median], "min_ms": [...], "max_ms": [...],
 *    "nodes": [{"op": "Conv", "attr": [...], "shape": [...], "in": [...],
 *               "flops", "params", "mem", "ms": [per platform median]}, ...]}
 * Node inputs are indices of earlier nodes, in input order. */
#include "tessera/fileio.h"
#include "tessera/narformer.h"
#include "tessera/ops.h"
#include "tessera/ops_graph.h"
#include "tessera/safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

static const char *const PLATFORMS[TSR_NF_PLATFORMS] = {"cpu-1t", "cpu-2t"};
const char *tsr_nf_platform_name(int p) { return p >= 0 && p < TSR_NF_PLATFORMS ? PLATFORMS[p] : "?"; }
int tsr_nf_platform_parse(const char *s) {
    for (int i = 0; i < TSR_NF_PLATFORMS; i++)
        if (!strcmp(s, PLATFORMS[i])) return i;
    return -1;
}
int tsr_nf_platform_threads(int p) { return p + 1; }

/* ------------------------------------------------------------ file */

static int op_from_name(const char *s) {
    if (!strcmp(s, "Input")) return TSR_NF_OP_INPUT;
    for (int i = 0; i < TSR_NF_OPS; i++)
        if (!strcmp(s, tsr_nf_op_name(i))) return i;
    return -2;
}

void tsr_nf_latnet_write(FILE *f, const tsr_nf_latnet *n, int id) {
    const tsr_nf_graph *g = &n->g;
    fprintf(f, "{\"id\": %d, \"family\": \"%s\", \"seed\": %llu, \"n_nodes\": %d, \"gflops\": %.6g, \"gparams\": %.6g, "
               "\"gmem\": %.6g",
            id, tsr_nf_family_name(n->family), (unsigned long long)n->seed, g->n, g->flops / 1e9, g->params / 1e9,
            g->mem / 1e9);
    const char *keys[3] = {"latency_ms", "min_ms", "max_ms"};
    const float *vals[3] = {n->lat, n->lat_min, n->lat_max};
    for (int k = 0; k < 3; k++) {
        fprintf(f, ", \"%s\": [", keys[k]);
        for (int p = 0; p < TSR_NF_PLATFORMS; p++) fprintf(f, "%s%.5g", p ? ", " : "", vals[k][p]);
        fprintf(f, "]");
    }
    fprintf(f, ", \"nodes\": [");
    for (int i = 0; i < g->n; i++) {
        const tsr_nf_node *nd = &g->nodes[i];
        fprintf(f, "%s{\"op\": \"%s\", \"attr\": [", i ? ", " : "", tsr_nf_op_name(nd->op));
        for (int a = 0; a < nd->n_attr; a++) fprintf(f, "%s%g", a ? ", " : "", nd->attr[a]);
        fprintf(f, "], \"shape\": [");
        for (int k = 0; k < nd->ndim; k++) fprintf(f, "%s%lld", k ? ", " : "", (long long)nd->shape[k]);
        fprintf(f, "], \"in\": [");
        int c = 0;
        for (int e = 0; e < g->n_edges; e++)
            if (g->edst[e] == i) fprintf(f, "%s%d", c++ ? ", " : "", g->esrc[e]);
        fprintf(f, "], \"flops\": %.9g, \"params\": %.9g, \"mem\": %.9g, \"ms\": [", nd->flops, nd->params, nd->mem);
        for (int p = 0; p < TSR_NF_PLATFORMS; p++)
            fprintf(f, "%s%.4g", p ? ", " : "", n->node_ms ? n->node_ms[(size_t)i * TSR_NF_PLATFORMS + p] : 0.0);
        fprintf(f, "]}");
    }
    fprintf(f, "]}\n");
}

static bool num_array(const cJSON *a, float *out, int n) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return false;
    int k = 0;
    for (const cJSON *v = a->child; v; v = v->next, k++) {
        /* finite as a float too: 1e300 would become inf (and NaN metrics) */
        if (!cJSON_IsNumber(v) || !isfinite((float)v->valuedouble)) return false;
        out[k] = (float)v->valuedouble;
    }
    return true;
}

static double num_field(const cJSON *o, const char *k, bool *ok) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0) {
        *ok = false;
        return 0;
    }
    return v->valuedouble;
}

/* one network line */
static tsr_status parse_net(const cJSON *o, tsr_nf_latnet *n, const char *path, int line) {
#define BAD(fmt, ...) (tsr_nf_graph_free(&n->g), free(n->node_ms), n->node_ms = NULL, \
                       tsr_errorf(TSR_ERR_FORMAT, "%s:%d: " fmt, path, line, ##__VA_ARGS__))
    memset(n, 0, sizeof *n);
    tsr_nf_graph_init(&n->g);
    const cJSON *fam = cJSON_GetObjectItemCaseSensitive(o, "family");
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(o, "nodes");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(o, "seed");
    if (!cJSON_IsString(fam) || (n->family = tsr_nf_family_parse(fam->valuestring)) < 0)
        return BAD("missing or unknown \"family\"");
    /* range checked before the conversion: a negative or >= 2^64 seed made it undefined */
    if (seed && (!cJSON_IsNumber(seed) || !(seed->valuedouble >= 0 && seed->valuedouble < 18446744073709551616.0) ||
                 seed->valuedouble != floor(seed->valuedouble)))
        return BAD("\"seed\" must be an integer in 0..2^64-1");
    n->seed = seed ? (uint64_t)seed->valuedouble : 0;
    if (!num_array(cJSON_GetObjectItemCaseSensitive(o, "latency_ms"), n->lat, TSR_NF_PLATFORMS))
        return BAD("\"latency_ms\" must hold %d numbers", TSR_NF_PLATFORMS);
    for (int p = 0; p < TSR_NF_PLATFORMS; p++)
        if (!(n->lat[p] > 0)) return BAD("latencies must be > 0");
    if (!num_array(cJSON_GetObjectItemCaseSensitive(o, "min_ms"), n->lat_min, TSR_NF_PLATFORMS) ||
        !num_array(cJSON_GetObjectItemCaseSensitive(o, "max_ms"), n->lat_max, TSR_NF_PLATFORMS))
        return BAD("\"min_ms\"/\"max_ms\" must hold %d numbers", TSR_NF_PLATFORMS);
    int nn = cJSON_GetArraySize(nodes);
    if (!cJSON_IsArray(nodes) || nn < 1 || nn > TSR_NF_MAX_NODES) return BAD("\"nodes\" must hold 1..%d nodes", TSR_NF_MAX_NODES);
    n->node_ms = calloc((size_t)nn * TSR_NF_PLATFORMS, sizeof(float));
    TSR_ASSERT(n->node_ms);
    int i = 0;
    for (const cJSON *v = nodes->child; v; v = v->next, i++) {
        tsr_nf_node t = {0};
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(v, "op");
        if (!cJSON_IsString(op) || (t.op = op_from_name(op->valuestring)) < -1) return BAD("node %d: unknown \"op\"", i);
        const cJSON *at = cJSON_GetObjectItemCaseSensitive(v, "attr"), *sh = cJSON_GetObjectItemCaseSensitive(v, "shape");
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(v, "in");
        t.n_attr = cJSON_GetArraySize(at);
        t.ndim = cJSON_GetArraySize(sh);
        if (!cJSON_IsArray(at) || t.n_attr > TSR_NF_ATTRS || !num_array(at, t.attr, t.n_attr))
            return BAD("node %d: \"attr\" must hold at most %d numbers", i, TSR_NF_ATTRS);
        float shf[4];
        if (!cJSON_IsArray(sh) || t.ndim < 1 || t.ndim > 4 || !num_array(sh, shf, t.ndim))
            return BAD("node %d: \"shape\" must hold 1..4 numbers", i);
        for (int k = 0; k < t.ndim; k++) {
            if (!(shf[k] >= 1 && shf[k] <= 1e7)) return BAD("node %d: shape out of range", i);
            t.shape[k] = (int64_t)shf[k];
        }
        bool ok = true;
        t.flops = num_field(v, "flops", &ok);
        t.params = num_field(v, "params", &ok);
        t.mem = num_field(v, "mem", &ok);
        if (!ok) return BAD("node %d: \"flops\"/\"params\"/\"mem\" must be numbers >= 0", i);
        if (!num_array(cJSON_GetObjectItemCaseSensitive(v, "ms"), n->node_ms + (size_t)i * TSR_NF_PLATFORMS, TSR_NF_PLATFORMS))
            return BAD("node %d: \"ms\" must hold %d numbers", i, TSR_NF_PLATFORMS);
        tsr_nf_graph_add(&n->g, &t);
        if (!cJSON_IsArray(in) || cJSON_GetArraySize(in) > 8) return BAD("node %d: \"in\" must hold at most 8 indices", i);
        for (const cJSON *e = in->child; e; e = e->next) {
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= i || e->valuedouble != (int)e->valuedouble)
                return BAD("node %d: inputs must be indices of earlier nodes", i);
            tsr_nf_graph_edge(&n->g, (int)e->valuedouble, i);
        }
    }
    return tsr_ok();
#undef BAD
}

tsr_status tsr_nf_latset_parse(tsr_nf_latset *s, const char *text, size_t len, const char *path) {
    memset(s, 0, sizeof *s);
    tsr_status st = tsr_ok();
    int cap = 0, line = 0;
    size_t pos = 0;
    char *buf = NULL;
    size_t buf_cap = 0;
    while (pos < len && !st.code) {
        const char *start = text + pos;
        const char *e = memchr(start, '\n', len - pos);
        size_t n = e ? (size_t)(e - start) : len - pos;
        pos += n + 1;
        line++;
        if (n == 0) continue;
        if (n + 1 > buf_cap) {
            buf_cap = n + 1;
            buf = realloc(buf, buf_cap);
            TSR_ASSERT(buf);
        }
        memcpy(buf, start, n);
        buf[n] = 0;
        cJSON *o = cJSON_Parse(buf);
        if (!o || !cJSON_IsObject(o)) st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: not a JSON object", path, line);
        else if (line == 1) {
            const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(o, "format");
            const cJSON *ver = cJSON_GetObjectItemCaseSensitive(o, "version");
            if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "tessera-narformer-latency") || !cJSON_IsNumber(ver) ||
                ver->valueint != 1)
                st = tsr_errorf(TSR_ERR_FORMAT, "%s: not a narformer latency data set (header line with format "
                                                "tessera-narformer-latency, version 1)", path);
        } else {
            if (s->n == cap) {
                cap = cap ? 2 * cap : 256;
                s->nets = realloc(s->nets, sizeof *s->nets * (size_t)cap);
                TSR_ASSERT(s->nets);
            }
            st = parse_net(o, &s->nets[s->n], path, line);
            if (!st.code) s->n++;
        }
        cJSON_Delete(o);
    }
    free(buf);
    if (!st.code && s->n < 2) st = tsr_errorf(TSR_ERR_FORMAT, "%s: fewer than 2 networks", path);
    if (st.code) tsr_nf_latset_free(s);
    return st;
}

tsr_status tsr_nf_latset_load(tsr_nf_latset *s, const char *path) {
    memset(s, 0, sizeof *s);
    char *data;
    size_t len;
    tsr_status st = tsr_read_file(path, &data, &len);
    if (st.code) return st;
    st = tsr_nf_latset_parse(s, data, len, path);
    free(data);
    return st;
}

void tsr_nf_latset_free(tsr_nf_latset *s) {
    for (int i = 0; i < s->n; i++) {
        tsr_nf_graph_free(&s->nets[i].g);
        free(s->nets[i].node_ms);
    }
    free(s->nets);
    memset(s, 0, sizeof *s);
}

int tsr_nf_latset_drop_families(tsr_nf_latset *s, const bool drop[TSR_NF_FAMILIES]) {
    int k = 0;
    for (int i = 0; i < s->n; i++) {
        tsr_nf_latnet *n = &s->nets[i];
        if (n->family >= 0 && n->family < TSR_NF_FAMILIES && drop[n->family]) {
            tsr_nf_graph_free(&n->g);
            free(n->node_ms);
        } else {
            s->nets[k++] = *n; /* the order of the kept networks is unchanged */
        }
    }
    int dropped = s->n - k;
    s->n = k;
    return dropped;
}

/* ------------------------------------------------------------ least squares */

/* solves (X^T X + ridge) c = X^T y for k <= 4 unknowns, accumulated in A (k x k+1) */
static void solve_normal(double A[4][5], int k, double *coef) {
    for (int a = 0; a < k; a++) A[a][a] += 1e-9 * (1 + A[a][a]);
    for (int c = 0; c < k; c++) {
        int piv = c;
        for (int a = c + 1; a < k; a++)
            if (fabs(A[a][c]) > fabs(A[piv][c])) piv = a;
        for (int b = 0; b <= k; b++) {
            double t = A[c][b];
            A[c][b] = A[piv][b];
            A[piv][b] = t;
        }
        double d = A[c][c];
        if (fabs(d) < 1e-300) continue;
        for (int b = 0; b <= k; b++) A[c][b] /= d;
        for (int a = 0; a < k; a++)
            if (a != c) {
                double f = A[a][c];
                for (int b = 0; b <= k; b++) A[a][b] -= f * A[c][b];
            }
    }
    for (int a = 0; a < k; a++) coef[a] = A[a][k];
}

static void accum(double A[4][5], const double *v, int k, double y, double w) {
    for (int a = 0; a < k; a++) {
        for (int b = 0; b < k; b++) A[a][b] += w * v[a] * v[b];
        A[a][k] += w * v[a] * y;
    }
}

enum { KFEAT = TSR_NF_KERNEL_FEATS };

/* the FLOPs regression: [1, GFLOPs, Gmem] of the network */
static void flops_feat(const tsr_nf_graph *g, double v[3]) {
    v[0] = 1, v[1] = g->flops / 1e9, v[2] = g->mem / 1e9;
}
/* the kernel model: [1, MFLOPs, Mmem, Mcol] of one node, per kernel class. As
 * nn-Meter, convolutions are split by the kernel that runs them: pointwise,
 * k x k at stride 1, k x k strided, depthwise / grouped */
static void node_feat(const tsr_nf_node *nd, double v[KFEAT]) {
    v[0] = 1, v[1] = nd->flops / 1e6, v[2] = nd->mem / 1e6;
    /* convolutions: the im2col matrix (Cin/g k^2 x Ho Wo), FLOPs / 2 Cout */
    v[3] = nd->op == TSR_NF_OP_CONV && nd->ndim == 4 && nd->shape[1] > 0 ? nd->flops / (2e6 * (double)nd->shape[1]) : 0;
}

static int kernel_class(const tsr_nf_node *nd) {
    if (nd->op != TSR_NF_OP_CONV) return nd->op;
    if (nd->n_attr >= 5 && nd->attr[4] > 1) return TSR_NF_OPS + 3;
    if (nd->attr[0] <= 1) return TSR_NF_OPS;
    return nd->attr[1] <= 1 ? TSR_NF_OPS + 1 : TSR_NF_OPS + 2;
}

/* ------------------------------------------------------------ GNN baseline */

enum { GNN_W = 12 };

static void lin_param(tsr_params *ps, tsr_tensor **w, tsr_tensor **b, const char *name, int out, int in, tsr_rng *r) {
    char n[64];
    snprintf(n, sizeof n, "%s.weight", name);
    *w = tsr_param_new(ps, n, 0, TSR_DIMS(out, in));
    float bound = 1.0f / sqrtf((float)in);
    tsr_init_uniform(*w, r, -bound, bound);
    if (b) {
        snprintf(n, sizeof n, "%s.bias", name);
        *b = tsr_param_new(ps, n, TSR_PARAM_NO_DECAY, TSR_DIMS(out));
        tsr_init_uniform(*b, r, -bound, bound);
    }
}

/* NNLP-style: h = relu(W_self h + W_nbr mean_nbr(h) + b), twice; sum
 * readout ++ relu(W_s static); fc-relu-fc; -logsigmoid */
static void gnn_init(tsr_nf_lat_pred *p, int H, uint64_t seed) {
    tsr_params_init(&p->params);
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    lin_param(&p->params, &p->w[0], &p->w[1], "sage1.lin_self", H, TSR_NF_TOKEN_DIM, &r);
    lin_param(&p->params, &p->w[2], NULL, "sage1.lin_nbr", H, TSR_NF_TOKEN_DIM, &r);
    lin_param(&p->params, &p->w[3], &p->w[4], "sage2.lin_self", H, H, &r);
    lin_param(&p->params, &p->w[5], NULL, "sage2.lin_nbr", H, H, &r);
    lin_param(&p->params, &p->w[6], &p->w[7], "static", H, TSR_NF_STATIC_DIM, &r);
    lin_param(&p->params, &p->w[8], &p->w[9], "fc1", H, 2 * H, &r);
    lin_param(&p->params, &p->w[10], &p->w[11], "fc2", 1, H, &r);
}

static tsr_tensor *gnn_forward(tsr_ctx *c, const tsr_nf_lat_pred *p, tsr_tensor *x, tsr_tensor *adj_mean,
                               tsr_tensor *sf) {
    tsr_tensor *h = x;
    for (int l = 0; l < 2; l++) {
        tsr_tensor *nb = tsr_matmul(c, adj_mean, h, false, false);
        h = tsr_relu(c, tsr_add(c, tsr_linear(c, h, p->w[3 * l], p->w[3 * l + 1]), tsr_linear(c, nb, p->w[3 * l + 2], NULL)));
    }
    tsr_tensor *ro = tsr_sum(c, h, 0, true); /* (1,H) */
    tsr_tensor *s = tsr_relu(c, tsr_linear(c, sf, p->w[6], p->w[7]));
    tsr_tensor *cat[2] = {ro, s};
    tsr_tensor *z = tsr_relu(c, tsr_linear(c, tsr_concat(c, cat, 2, 1), p->w[8], p->w[9]));
    return tsr_neg_logsigmoid(c, tsr_linear(c, z, p->w[10], p->w[11]));
}

/* ------------------------------------------------------------ predictors */

double tsr_nf_lat_kernel_sum(const tsr_nf_lat_pred *p, const tsr_nf_graph *g) {
    double s = 0;
    for (int i = 0; i < g->n; i++) {
        const tsr_nf_node *nd = &g->nodes[i];
        if (nd->op < 0) continue;
        double v[KFEAT], k = 0;
        node_feat(nd, v);
        const double *cf = p->kcoef[kernel_class(nd)];
        for (int a = 0; a < KFEAT; a++) k += cf[a] * v[a];
        s += k > 0 ? k : 0;
    }
    return s;
}

/* the learned predictors' unit: y_scale, times the kernel-sum estimate with a prior
 * (floored at 1 us, for graphs of kernels the prior has no positive estimate for) */
static double lat_unit(const tsr_nf_lat_pred *p, const tsr_nf_graph *g) {
    if (!p->prior) return p->y_scale;
    double k = tsr_nf_lat_kernel_sum(p, g);
    return p->y_scale * (k > 1e-3 ? k : 1e-3);
}

/* one graph's prediction as a (1,1) tensor (narformer, gnn), in y_scale units */
static tsr_tensor *graph_forward(tsr_ctx *c, const tsr_nf_lat_pred *p, const tsr_nf_graph *g) {
    int N = g->n;
    tsr_tensor *x = tsr_new(c, TSR_F32, TSR_DIMS(1, N, TSR_NF_TOKEN_DIM));
    tsr_tensor *adj = tsr_new(c, TSR_F32, TSR_DIMS(N, N));
    tsr_tensor *sf = tsr_new(c, TSR_F32, TSR_DIMS(1, TSR_NF_STATIC_DIM));
    tsr_nf_tokenize(g, tsr_f32(x), tsr_f32(adj), tsr_f32(sf));
    if (p->method == TSR_NF_METHOD_NARFORMER) /* training: dense (recorded); prediction: sparse */
        return c->grad_enabled ? tsr_nf_forward(c, &p->nf, x, adj, sf) : tsr_nf_forward_sparse(c, &p->nf, x, adj, sf);
    float *a = tsr_f32(adj);
    for (int i = 0; i < N; i++) { /* mean over neighbours */
        double d = 0;
        for (int j = 0; j < N; j++) d += a[(size_t)i * N + j];
        if (d > 0)
            for (int j = 0; j < N; j++) a[(size_t)i * N + j] /= (float)d;
    }
    return gnn_forward(c, p, tsr_reshape(c, x, TSR_DIMS(N, TSR_NF_TOKEN_DIM)), adj, sf);
}

float tsr_nf_lat_predict_graph(const tsr_nf_lat_pred *p, const tsr_nf_graph *g, tsr_ctx *c) {
    if (p->method == TSR_NF_METHOD_FLOPS) {
        double v[3];
        flops_feat(g, v);
        return (float)(p->coef[0] + p->coef[1] * v[1] + p->coef[2] * v[2]);
    }
    if (p->method == TSR_NF_METHOD_KERNEL_SUM) return (float)tsr_nf_lat_kernel_sum(p, g);
    bool own = c == NULL;
    tsr_ctx local;
    if (own) {
        tsr_ctx_init(&local, 8 << 20);
        c = &local;
    }
    bool ge = c->grad_enabled, tr = c->training;
    c->grad_enabled = false;
    c->training = false;
    float y = (float)(tsr_f32(graph_forward(c, p, g))[0] * lat_unit(p, g));
    c->grad_enabled = ge;
    c->training = tr;
    if (own) tsr_ctx_free(&local);
    else tsr_ctx_reset(c);
    return y;
}

void tsr_nf_lat_predict(const tsr_nf_lat_pred *p, const tsr_nf_latset *s, const int32_t *ids, int n, float *out) {
    tsr_ctx c;
    tsr_ctx_init(&c, 8 << 20);
    for (int i = 0; i < n; i++) out[i] = tsr_nf_lat_predict_graph(p, &s->nets[ids[i]].g, &c);
    tsr_ctx_free(&c);
}

tsr_nf_lat_opts tsr_nf_lat_default_opts(int method) {
    tsr_nf_lat_opts o;
    memset(&o, 0, sizeof o);
    o.method = method;
    o.cfg = tsr_nf_default_cfg(TSR_NF_HEAD_LATENCY, TSR_NF_TOKEN_DIM);
    o.cfg.dropout = 0;
    o.hidden = 128;
    o.batch = 8;
    o.prior = method == TSR_NF_METHOD_NARFORMER || method == TSR_NF_METHOD_GNN;
    return o;
}

typedef struct {
    tsr_nf_lat_pred *p;
    const tsr_nf_latset *s;
    const int32_t *ids;
    int n_train;
    int32_t *ev_ids;
    int n_ev;
    float *ev_pred, *ev_y;
} lat_run;

static tsr_status lat_step(void *ud, tsr_ctx *c, const int32_t *idx, int64_t n, float *loss_out) {
    lat_run *r = ud;
    int B = (int)n;
    tsr_tensor **preds = tsr_arena_alloc(&c->arena, sizeof(tsr_tensor *) * (size_t)B);
    tsr_tensor *y = tsr_new(c, TSR_F32, TSR_DIMS(B, 1));
    for (int i = 0; i < B; i++) {
        const tsr_nf_latnet *net = &r->s->nets[r->ids[idx[i]]];
        preds[i] = graph_forward(c, r->p, &net->g);
        tsr_f32(y)[i] = (float)(net->lat[r->p->platform] / lat_unit(r->p, &net->g));
    }
    tsr_tensor *pred = B == 1 ? preds[0] : tsr_concat(c, preds, B, 0);
    tsr_tensor *loss = tsr_nf_loss_ratio(c, pred, y);
    *loss_out = tsr_f32(loss)[0];
    tsr_backward(c, loss);
    return tsr_ok();
}

static tsr_status lat_eval(void *ud, tsr_train_metrics *m) {
    lat_run *r = ud;
    tsr_nf_lat_predict(r->p, r->s, r->ev_ids, r->n_ev, r->ev_pred);
    tsr_nf_metrics mm;
    tsr_nf_metrics_compute(r->ev_pred, r->ev_y, r->n_ev, &mm);
    tsr_train_metric(m, "train_subset_mape", mm.mape);
    tsr_train_metric(m, "train_subset_acc10", mm.acc_10pct);
    return tsr_ok();
}

static void meta_strings(const tsr_nf_lat_pred *p, char v[4][32]) {
    snprintf(v[0], 32, "%s", tsr_nf_method_name(p->method));
    snprintf(v[1], 32, "%s", tsr_nf_platform_name(p->platform));
    snprintf(v[2], 32, "%.9g", p->y_scale);
}

/* the prior's coefficients as metadata text: classes x features numbers ("" without a prior) */
static char *prior_string(const tsr_nf_lat_pred *p) {
    size_t cap = (size_t)TSR_NF_KERNEL_CLASSES * KFEAT * 26 + 1, n = 0;
    char *t = malloc(cap);
    TSR_ASSERT(t);
    t[0] = 0;
    for (int c = 0; p->prior && c < TSR_NF_KERNEL_CLASSES; c++)
        for (int a = 0; a < KFEAT; a++) n += (size_t)snprintf(t + n, cap - n, "%s%.17g", n ? " " : "", p->kcoef[c][a]);
    return t;
}

static bool prior_parse(tsr_nf_lat_pred *p, const char *t) {
    for (int c = 0; c < TSR_NF_KERNEL_CLASSES; c++)
        for (int a = 0; a < KFEAT; a++) {
            char *e;
            p->kcoef[c][a] = strtod(t, &e);
            if (e == t || !isfinite(p->kcoef[c][a])) return false;
            t = e;
        }
    while (*t == ' ') t++;
    return *t == 0;
}

static tsr_status lat_save(void *ud, const char *path, const char *const *meta, const tsr_train_metrics *ev, bool final) {
    (void)ev;
    (void)final;
    lat_run *r = ud;
    if (r->p->method == TSR_NF_METHOD_NARFORMER) return tsr_nf_model_save(&r->p->nf, path, meta);
    return tsr_params_save(&r->p->params, path, TSR_ST_F32, meta);
}

/* the kernel model's per-class least squares on the training networks' nodes */
static void kernel_fit(tsr_nf_lat_pred *p, const tsr_nf_latset *s, int platform, const int32_t *ids, int n_train) {
    static double A[TSR_NF_KERNEL_CLASSES + 1][4][5];
    memset(A, 0, sizeof A);
    for (int i = 0; i < n_train; i++) {
        const tsr_nf_latnet *n = &s->nets[ids[i]];
        for (int k = 0; k < n->g.n; k++) {
            const tsr_nf_node *nd = &n->g.nodes[k];
            if (nd->op < 0) continue;
            double v[KFEAT], y = n->node_ms[(size_t)k * TSR_NF_PLATFORMS + platform];
            node_feat(nd, v);
            /* each network weighs as much as another, in relative terms */
            double w = 1.0 / ((double)n->lat[platform] * n->lat[platform]);
            accum(A[kernel_class(nd)], v, KFEAT, y, w);
            accum(A[TSR_NF_KERNEL_CLASSES], v, KFEAT, y, w); /* all kernels: for classes unseen in training */
        }
    }
    double all[KFEAT];
    solve_normal(A[TSR_NF_KERNEL_CLASSES], KFEAT, all);
    for (int t = 0; t < TSR_NF_KERNEL_CLASSES; t++) {
        if (A[t][0][0] < 1e-12) memcpy(p->kcoef[t], all, sizeof all);
        else solve_normal(A[t], KFEAT, p->kcoef[t]);
    }
}

tsr_status tsr_nf_lat_fit(tsr_nf_lat_pred *p, const tsr_nf_lat_opts *o, const tsr_nf_latset *s, int platform,
                          const int32_t *ids, int n_train, const tsr_train_opts *to, tsr_train_result *res) {
    memset(p, 0, sizeof *p);
    if (res) memset(res, 0, sizeof *res);
    p->method = o->method;
    p->platform = platform;
    p->y_scale = 1;
    if (platform < 0 || platform >= TSR_NF_PLATFORMS) return tsr_errorf(TSR_ERR_ARG, "narformer: no platform %d", platform);
    if (n_train < 2) return tsr_errorf(TSR_ERR_ARG, "narformer: need at least 2 training networks (got %d)", n_train);
    if (p->method == TSR_NF_METHOD_MLP)
        return tsr_errorf(TSR_ERR_ARG, "narformer: method mlp is for NB201 cells; latency takes narformer, gnn, flops or kernel-sum");
    if (p->method == TSR_NF_METHOD_FLOPS) {
        double A[4][5] = {{0}};
        for (int i = 0; i < n_train; i++) {
            const tsr_nf_latnet *n = &s->nets[ids[i]];
            double v[3];
            flops_feat(&n->g, v);
            /* weighted by 1/y^2: least squares on the relative error, the metric's scale */
            double y = n->lat[platform];
            accum(A, v, 3, y, 1.0 / (y * y));
        }
        solve_normal(A, 3, p->coef);
        return tsr_ok();
    }
    if (p->method == TSR_NF_METHOD_KERNEL_SUM) {
        kernel_fit(p, s, platform, ids, n_train);
        return tsr_ok();
    }
    /* targets in units of the training mean (of the latency, or of its ratio to the prior) */
    if (o->prior) kernel_fit(p, s, platform, ids, n_train);
    p->prior = o->prior;
    double mean = 0;
    for (int i = 0; i < n_train; i++) mean += s->nets[ids[i]].lat[platform] / lat_unit(p, &s->nets[ids[i]].g);
    p->y_scale = (float)(mean / n_train);
    uint64_t seed = to->seed * 7919 + 29;
    tsr_status st;
    tsr_params *params;
    if (p->method == TSR_NF_METHOD_NARFORMER) {
        if ((st = tsr_nf_model_init(&p->nf, &o->cfg, seed)).code) return st;
        params = &p->nf.params;
    } else {
        gnn_init(p, o->hidden, seed);
        params = &p->params;
    }
    lat_run r = {.p = p, .s = s, .ids = ids, .n_train = n_train};
    /* progress: a fixed subset of the training networks (the test ones stay unseen) */
    r.n_ev = n_train < 200 ? n_train : 200;
    r.ev_ids = malloc(sizeof(int32_t) * (size_t)r.n_ev);
    r.ev_pred = malloc(sizeof(float) * (size_t)r.n_ev);
    r.ev_y = malloc(sizeof(float) * (size_t)r.n_ev);
    for (int i = 0; i < r.n_ev; i++) {
        r.ev_ids[i] = ids[(int64_t)i * n_train / r.n_ev];
        r.ev_y[i] = s->nets[r.ev_ids[i]].lat[platform];
    }
    char v[4][32], *kc = prior_string(p);
    meta_strings(p, v);
    const char *config[] = {"latency.method", v[0], "latency.platform", v[1], "latency.y_scale", v[2],
                            "latency.prior", p->prior ? "kernel-sum" : "none", "latency.prior_kcoef", kc, NULL};
    tsr_train_family f = {.name = "narformer", .params = params, .config = config, .n_items = n_train,
                          .batch = o->batch, .unit = "net", .arena_bytes = 64 << 20, .ud = &r,
                          .step = lat_step, .eval = lat_eval, .save = lat_save};
    if (f.batch < 1 || f.batch > n_train) st = tsr_errorf(TSR_ERR_ARG, "narformer: batch %d must be in 1..%d", o->batch, n_train);
    else st = tsr_train_run(&f, to, res);
    free(r.ev_ids);
    free(r.ev_pred);
    free(r.ev_y);
    free(kc);
    if (st.code) tsr_nf_lat_pred_free(p);
    return st;
}

tsr_status tsr_nf_lat_load(tsr_nf_lat_pred *p, const char *path) {
    memset(p, 0, sizeof *p);
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    const char *m = tsr_st_meta(&f, "latency.method"), *pl = tsr_st_meta(&f, "latency.platform");
    const char *ys = tsr_st_meta(&f, "latency.y_scale");
    if (!m || strcmp(m, "narformer") || !pl || tsr_nf_platform_parse(pl) < 0 || !ys || !(strtof(ys, NULL) > 0)) {
        tsr_st_free(&f);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not a narformer latency predictor (metadata latency.method = narformer, "
                                          "latency.platform, latency.y_scale)", path);
    }
    p->method = TSR_NF_METHOD_NARFORMER;
    p->platform = tsr_nf_platform_parse(pl);
    p->y_scale = strtof(ys, NULL);
    /* files without latency.prior predate it: no prior */
    const char *pr = tsr_st_meta(&f, "latency.prior"), *kc = tsr_st_meta(&f, "latency.prior_kcoef");
    p->prior = pr && !strcmp(pr, "kernel-sum");
    if ((pr && !p->prior && strcmp(pr, "none")) || (p->prior && (!kc || !prior_parse(p, kc)))) {
        tsr_st_free(&f);
        memset(p, 0, sizeof *p);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: latency.prior must be none or kernel-sum, with %d numbers in "
                                          "latency.prior_kcoef", path, TSR_NF_KERNEL_CLASSES * KFEAT);
    }
    tsr_st_free(&f);
    st = tsr_nf_model_load(&p->nf, path);
    if (!st.code && p->nf.cfg.head != TSR_NF_HEAD_LATENCY)
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: the model has an accuracy head, not a latency head", path);
    if (st.code) tsr_nf_lat_pred_free(p);
    return st;
}

void tsr_nf_lat_pred_free(tsr_nf_lat_pred *p) {
    if (p->method == TSR_NF_METHOD_NARFORMER) {
        if (p->nf.layers) tsr_nf_model_free(&p->nf);
    } else if (p->method == TSR_NF_METHOD_GNN) {
        tsr_params_free(&p->params);
    }
    memset(p, 0, sizeof *p);
}
