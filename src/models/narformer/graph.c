/* narformer: op graphs and the whole-network tokenizer (NAR-Former V2 sec.
 * 3.2). An ONNX model becomes one node per operator output plus one per
 * network input, in topological order; weights are not nodes. Output
 * shapes are inferred here (no-weight files carry none), and FLOPs /
 * parameters / memory accesses follow NNLQP's counting (onnx_flops), with
 * GlobalAveragePool counting H*W (NNLQP counts W only). */
#include "tessera/narformer.h"

#include <math.h>
#include <string.h>

static const char *const OP_NAMES[TSR_NF_OPS] = {
    "Conv", "Relu", "Add", "Sigmoid", "Reshape", "MaxPool", "Split", "GlobalAveragePool",
    "Gemm", "Transpose", "Upsample", "BatchNormalization", "Mul", "Concat", "Flatten",
    "AveragePool", "Cast", "MatMul", "ReduceMean", "Pow", "Slice", "Div", "Sub", "Sqrt", "Clip",
    "Softmax", "Tanh", "ConvTranspose", "HardSigmoid", "HardSwish", "Identity", "Other"};

const char *tsr_nf_op_name(int op) {
    if (op < 0) return "Input";
    return op < TSR_NF_OPS ? OP_NAMES[op] : "?";
}

/* ------------------------------------------------------------ graph */

void tsr_nf_graph_init(tsr_nf_graph *g) { memset(g, 0, sizeof *g); g->batch = 1; }

void tsr_nf_graph_free(tsr_nf_graph *g) {
    free(g->nodes);
    free(g->esrc);
    free(g->edst);
    memset(g, 0, sizeof *g);
}

int tsr_nf_graph_add(tsr_nf_graph *g, const tsr_nf_node *nd) {
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 64;
        g->nodes = realloc(g->nodes, sizeof *g->nodes * (size_t)g->cap);
        TSR_ASSERT(g->nodes);
    }
    g->nodes[g->n] = *nd;
    g->flops += nd->flops;
    g->params += nd->params;
    g->mem += nd->mem;
    return g->n++;
}

void tsr_nf_graph_edge(tsr_nf_graph *g, int src, int dst) {
    TSR_ASSERT(src >= 0 && dst >= 0 && src < g->n && dst < g->n);
    if (g->n_edges == g->edge_cap) {
        g->edge_cap = g->edge_cap ? 2 * g->edge_cap : 128;
        g->esrc = realloc(g->esrc, sizeof(int32_t) * (size_t)g->edge_cap);
        g->edst = realloc(g->edst, sizeof(int32_t) * (size_t)g->edge_cap);
        TSR_ASSERT(g->esrc && g->edst);
    }
    g->esrc[g->n_edges] = src;
    g->edst[g->n_edges] = dst;
    g->n_edges++;
}

/* ------------------------------------------------------------ tokens */

void tsr_nf_encode_scalar(float *out, double x, int n_freqs) {
    for (int j = 0; j < n_freqs; j++) {
        double f = pow(10000.0, -(double)j / n_freqs);
        out[2 * j] = (float)sin(x * f);
        out[2 * j + 1] = (float)cos(x * f);
    }
}

/* A graph's tokens repeat few scalars (kernel 3, stride 1, a handful of
 * channel and spatial sizes): each distinct value is encoded once per
 * call and copied after, with the frequencies computed once. The same
 * expressions as tsr_nf_encode_scalar, so the same values. */
enum { ENC_MEMO = 256 };
typedef struct {
    double f[TSR_NF_FREQS];
    uint64_t key[ENC_MEMO];
    bool used[ENC_MEMO];
    float enc[ENC_MEMO][2 * TSR_NF_FREQS];
} enc_memo;

static void enc_memo_init(enc_memo *m) {
    for (int j = 0; j < TSR_NF_FREQS; j++) m->f[j] = pow(10000.0, -(double)j / TSR_NF_FREQS);
    memset(m->used, 0, sizeof m->used);
}

static void enc_memo_put(enc_memo *m, float *out, double x) {
    uint64_t k;
    memcpy(&k, &x, sizeof k);
    uint32_t h = (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 56) & (ENC_MEMO - 1);
    if (!m->used[h] || m->key[h] != k) {
        for (int j = 0; j < TSR_NF_FREQS; j++) {
            m->enc[h][2 * j] = (float)sin(x * m->f[j]);
            m->enc[h][2 * j + 1] = (float)cos(x * m->f[j]);
        }
        m->key[h] = k;
        m->used[h] = true;
    }
    memcpy(out, m->enc[h], sizeof m->enc[h]);
}

void tsr_nf_tokenize(const tsr_nf_graph *g, float *tokens, float *adj, float *static_feat) {
    const int E = 2 * TSR_NF_FREQS;
    if (tokens) {
        enc_memo *memo = malloc(sizeof *memo);
        TSR_ASSERT(memo);
        enc_memo_init(memo);
        memset(tokens, 0, sizeof(float) * (size_t)g->n * TSR_NF_TOKEN_DIM);
        for (int i = 0; i < g->n; i++) {
            const tsr_nf_node *nd = &g->nodes[i];
            float *t = tokens + (size_t)i * TSR_NF_TOKEN_DIM;
            if (nd->op >= 0) {
                t[nd->op] = 1.0f;
                for (int a = 0; a < nd->n_attr && a < TSR_NF_ATTRS; a++)
                    enc_memo_put(memo, t + TSR_NF_OPS + a * E, nd->attr[a]);
            }
            for (int d = 0; d < 4; d++)
                enc_memo_put(memo, t + TSR_NF_OPS + TSR_NF_ATTRS * E + d * E,
                             d < nd->ndim ? (double)nd->shape[d] : 0.0);
        }
        free(memo);
    }
    if (adj) {
        memset(adj, 0, sizeof(float) * (size_t)g->n * g->n);
        for (int e = 0; e < g->n_edges; e++) {
            int s = g->esrc[e], d = g->edst[e];
            if (s == d) continue;
            adj[(size_t)s * g->n + d] = 1.0f;
            adj[(size_t)d * g->n + s] = 1.0f;
        }
    }
    if (static_feat) {
        double v[4] = {g->batch, g->flops / 1e9, g->params / 1e9, g->mem / 1e9};
        for (int k = 0; k < 4; k++) tsr_nf_encode_scalar(static_feat + k * E, v[k], TSR_NF_FREQS);
    }
}

/* ------------------------------------------------------------ ONNX -> graph */

/* name -> value slot, open addressing over the model's tensor names */
typedef struct {
    const char **key;
    int *val;
    uint32_t mask;
} name_map;

static uint32_t hash_str(const char *s) {
    uint32_t h = 2166136261u;
    while (*s) h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

static void map_init(name_map *m, int n) {
    uint32_t cap = 16;
    while (cap < (uint32_t)n * 2 + 16) cap <<= 1;
    m->key = calloc(cap, sizeof *m->key);
    m->val = calloc(cap, sizeof *m->val);
    TSR_ASSERT(m->key && m->val);
    m->mask = cap - 1;
}
static void map_free(name_map *m) {
    free(m->key);
    free(m->val);
}
static void map_put(name_map *m, const char *k, int v) {
    uint32_t i = hash_str(k) & m->mask;
    while (m->key[i] && strcmp(m->key[i], k)) i = (i + 1) & m->mask;
    m->key[i] = k;
    m->val[i] = v;
}
static int map_get(const name_map *m, const char *k) {
    uint32_t i = hash_str(k) & m->mask;
    while (m->key[i]) {
        if (!strcmp(m->key[i], k)) return m->val[i];
        i = (i + 1) & m->mask;
    }
    return -1;
}

/* a tensor's static shape during inference */
typedef struct {
    int ndim;             /* -1 unknown */
    int64_t d[TSR_ONNX_MAX_DIMS];
    int producer;         /* token index, -1 for initializers */
} tshape;

static int64_t numel(const tshape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->d[i];
    return n;
}

static int op_index(const char *t) {
    if (!strcmp(t, "Dropout")) return TSR_NF_OP_IDENTITY;
    if (!strcmp(t, "Gemm")) return TSR_NF_OP_GEMM;
    for (int i = 0; i < TSR_NF_OP_OTHER; i++)
        if (!strcmp(t, OP_NAMES[i])) return i;
    return -2;
}

static int64_t attr_i(const tsr_onnx_node *nd, const char *name, int64_t dflt) {
    const tsr_onnx_attr *a = tsr_onnx_node_attr(nd, name);
    return a && a->type == TSR_ONNX_ATTR_INT ? a->i : dflt;
}
/* element k of an INTS attribute, or dflt */
static int64_t attr_ints(const tsr_onnx_node *nd, const char *name, int k, int64_t dflt) {
    const tsr_onnx_attr *a = tsr_onnx_node_attr(nd, name);
    return a && a->type == TSR_ONNX_ATTR_INTS && k < a->n ? a->ints[k] : dflt;
}

#define NODE_ERR(nd, ...) graph_err(nd, __VA_ARGS__)
static tsr_status graph_err(const tsr_onnx_node *nd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static tsr_status graph_err(const tsr_onnx_node *nd, const char *fmt, ...) {
    char buf[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return tsr_errorf(TSR_ERR_FORMAT, "ONNX node '%.60s' (%.24s): %s", nd->name, nd->op_type, buf);
}

/* spatial output of conv/pool along one axis */
static tsr_status spatial_out(const tsr_onnx_node *nd, int64_t in, int64_t k, int64_t s, int64_t d,
                              int64_t p0, int64_t p1, bool ceil_mode, int64_t *out) {
    if (k < 1 || s < 1 || d < 1 || p0 < 0 || p1 < 0 || k > 1 << 20 || s > 1 << 20 || d > 1 << 20 ||
        p0 > 1 << 20 || p1 > 1 << 20)
        return NODE_ERR(nd, "kernel/stride/dilation/pad out of range");
    const tsr_onnx_attr *ap = tsr_onnx_node_attr(nd, "auto_pad");
    if (ap && ap->type == TSR_ONNX_ATTR_STRING && ap->s && !strncmp(ap->s, "SAME", 4)) {
        *out = (in + s - 1) / s;
        return tsr_ok();
    }
    if (ap && ap->type == TSR_ONNX_ATTR_STRING && ap->s && !strcmp(ap->s, "VALID")) p0 = p1 = 0;
    int64_t span = in + p0 + p1 - d * (k - 1) - 1;
    if (span < 0) return NODE_ERR(nd, "kernel larger than its padded input");
    *out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    return tsr_ok();
}

static tsr_status broadcast(const tsr_onnx_node *nd, const tshape *a, const tshape *b, tshape *o) {
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    o->ndim = n;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
        int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        if (da != db && da != 1 && db != 1) return NODE_ERR(nd, "inputs do not broadcast");
        o->d[i] = da == 1 ? db : da;
    }
    return tsr_ok();
}

/* infer the output shape, token attributes and counts of one node */
static tsr_status infer(const tsr_onnx_node *nd, int op, tshape *const *ins, int n_in, tshape *out,
                        tsr_nf_node *t) {
    const tshape *x = ins[0];
    if (!x || x->ndim < 0) return NODE_ERR(nd, "its first input has no known shape");
    *out = *x;
    out->producer = -1;
    int64_t N = x->ndim > 0 ? x->d[0] : 1;
    switch (op) {
    case TSR_NF_OP_CONV: {
        if (x->ndim != 4) return NODE_ERR(nd, "only 2-D convolutions (NCHW input) are supported");
        const tshape *w = n_in > 1 ? ins[1] : NULL;
        if (!w || w->ndim != 4) return NODE_ERR(nd, "weight shape unknown (need a 4-D initializer)");
        int64_t g = attr_i(nd, "group", 1);
        if (g < 1 || x->d[1] % g || w->d[1] * g != x->d[1])
            return NODE_ERR(nd, "group %lld does not match %lld input channels", (long long)g,
                            (long long)x->d[1]);
        int64_t kh = attr_ints(nd, "kernel_shape", 0, w->d[2]), kw = attr_ints(nd, "kernel_shape", 1, w->d[3]);
        int64_t sh = attr_ints(nd, "strides", 0, 1), sw = attr_ints(nd, "strides", 1, sh);
        int64_t dh = attr_ints(nd, "dilations", 0, 1), dw = attr_ints(nd, "dilations", 1, dh);
        int64_t pt = attr_ints(nd, "pads", 0, 0), pl = attr_ints(nd, "pads", 1, pt);
        int64_t pb = attr_ints(nd, "pads", 2, pt), pr = attr_ints(nd, "pads", 3, pl);
        int64_t ho, wo;
        tsr_status st = spatial_out(nd, x->d[2], kh, sh, dh, pt, pb, false, &ho);
        if (!st.code) st = spatial_out(nd, x->d[3], kw, sw, dw, pl, pr, false, &wo);
        if (st.code) return st;
        int64_t co = w->d[0];
        int bias = n_in > 2 && ins[2] ? 1 : 0;
        out->ndim = 4;
        out->d[1] = co;
        out->d[2] = ho;
        out->d[3] = wo;
        double ck = (double)w->d[1] * kh * kw;
        t->flops = (double)N * co * ho * wo * (2 * ck - 1 + bias);
        t->params = (double)co * (ck + bias);
        float a[6] = {(float)kh, (float)sh, (float)pt, (float)dh, (float)g, (float)bias};
        t->n_attr = 6;
        memcpy(t->attr, a, sizeof a);
        break;
    }
    case TSR_NF_OP_MAXPOOL:
    case TSR_NF_OP_AVGPOOL: {
        if (x->ndim != 4) return NODE_ERR(nd, "only 2-D pooling (NCHW input) is supported");
        int64_t kh = attr_ints(nd, "kernel_shape", 0, -1), kw = attr_ints(nd, "kernel_shape", 1, kh);
        if (kh < 1) return NODE_ERR(nd, "kernel_shape missing");
        int64_t sh = attr_ints(nd, "strides", 0, 1), sw = attr_ints(nd, "strides", 1, sh);
        int64_t dh = attr_ints(nd, "dilations", 0, 1), dw = attr_ints(nd, "dilations", 1, dh);
        int64_t pt = attr_ints(nd, "pads", 0, 0), pl = attr_ints(nd, "pads", 1, pt);
        int64_t pb = attr_ints(nd, "pads", 2, pt), pr = attr_ints(nd, "pads", 3, pl);
        bool cm = attr_i(nd, "ceil_mode", 0) != 0;
        int64_t ho, wo;
        tsr_status st = spatial_out(nd, x->d[2], kh, sh, dh, pt, pb, cm, &ho);
        if (!st.code) st = spatial_out(nd, x->d[3], kw, sw, dw, pl, pr, cm, &wo);
        if (st.code) return st;
        out->d[2] = ho;
        out->d[3] = wo;
        if (op == TSR_NF_OP_AVGPOOL) t->flops = (double)numel(out) * kh * kw;
        float a[3] = {(float)kh, (float)sh, (float)pt};
        t->n_attr = 3;
        memcpy(t->attr, a, sizeof a);
        break;
    }
    case TSR_NF_OP_GAP:
        if (x->ndim < 3) return NODE_ERR(nd, "needs an N,C,spatial input");
        t->flops = (double)numel(x);
        for (int i = 2; i < x->ndim; i++) out->d[i] = 1;
        break;
    case TSR_NF_OP_BN:
        if (x->ndim < 2) return NODE_ERR(nd, "needs an N,C input");
        t->flops = 4.0 * (double)numel(x);
        t->params = 4.0 * (double)x->d[1];
        break;
    case TSR_NF_OP_RELU:
    case TSR_NF_OP_CLIP:
    case TSR_NF_OP_IDENTITY:
    case TSR_NF_OP_CAST: break;
    case TSR_NF_OP_SIGMOID:
    case TSR_NF_OP_TANH:
    case TSR_NF_OP_SQRT:
    case TSR_NF_OP_HARDSIGMOID:
    case TSR_NF_OP_HARDSWISH: t->flops = (double)numel(x); break;
    case TSR_NF_OP_SOFTMAX: t->flops = 3.0 * (double)numel(x); break;
    case TSR_NF_OP_ADD:
    case TSR_NF_OP_MUL:
    case TSR_NF_OP_SUB:
    case TSR_NF_OP_DIV:
    case TSR_NF_OP_POW: {
        if (n_in < 2 || !ins[1] || ins[1]->ndim < 0) return NODE_ERR(nd, "second input has no known shape");
        tsr_status st = broadcast(nd, x, ins[1], out);
        if (st.code) return st;
        t->flops = (double)numel(out);
        break;
    }
    case TSR_NF_OP_FLATTEN: {
        int64_t axis = attr_i(nd, "axis", 1);
        if (axis < 0) axis += x->ndim;
        if (axis < 0 || axis > x->ndim) return NODE_ERR(nd, "axis out of range");
        int64_t a = 1, b = 1;
        for (int i = 0; i < x->ndim; i++) {
            if (i < axis) a *= x->d[i];
            else b *= x->d[i];
        }
        out->ndim = 2;
        out->d[0] = a;
        out->d[1] = b;
        break;
    }
    case TSR_NF_OP_GEMM: {
        const tshape *w = n_in > 1 ? ins[1] : NULL;
        if (x->ndim != 2 || !w || w->ndim != 2) return NODE_ERR(nd, "needs 2-D A and B with known shapes");
        bool ta = attr_i(nd, "transA", 0) != 0, tb = attr_i(nd, "transB", 0) != 0;
        int64_t M = ta ? x->d[1] : x->d[0], K = ta ? x->d[0] : x->d[1];
        int64_t Kb = tb ? w->d[1] : w->d[0], Nn = tb ? w->d[0] : w->d[1];
        if (K != Kb) return NODE_ERR(nd, "inner dimensions %lld and %lld differ", (long long)K, (long long)Kb);
        int bias = n_in > 2 && ins[2] ? 1 : 0;
        out->ndim = 2;
        out->d[0] = M;
        out->d[1] = Nn;
        t->flops = (double)M * Nn * (2.0 * K - 1 + bias);
        t->params = (double)Nn * (K + bias);
        t->n_attr = 1;
        t->attr[0] = (float)bias;
        break;
    }
    case TSR_NF_OP_MATMUL: {
        const tshape *w = n_in > 1 ? ins[1] : NULL;
        if (!w || w->ndim < 2 || x->ndim < 2 || x->d[x->ndim - 1] != w->d[w->ndim - 2])
            return NODE_ERR(nd, "inner dimensions do not match");
        int64_t K = x->d[x->ndim - 1];
        out->d[out->ndim - 1] = w->d[w->ndim - 1];
        t->flops = (double)numel(out) * (2.0 * K - 1);
        break;
    }
    case TSR_NF_OP_CONCAT: {
        int64_t axis = attr_i(nd, "axis", 1);
        if (axis < 0) axis += x->ndim;
        if (axis < 0 || axis >= x->ndim) return NODE_ERR(nd, "axis out of range");
        int64_t sum = 0;
        for (int i = 0; i < n_in; i++) {
            if (!ins[i] || ins[i]->ndim != x->ndim) return NODE_ERR(nd, "input %d has another rank", i);
            for (int k = 0; k < x->ndim; k++)
                if (k != axis && ins[i]->d[k] != x->d[k]) return NODE_ERR(nd, "input %d does not match", i);
            sum += ins[i]->d[axis];
        }
        out->d[axis] = sum;
        break;
    }
    case TSR_NF_OP_TRANSPOSE: {
        const tsr_onnx_attr *p = tsr_onnx_node_attr(nd, "perm");
        tshape o = *x;
        for (int i = 0; i < x->ndim; i++) {
            int64_t pi = p && p->type == TSR_ONNX_ATTR_INTS && p->n == x->ndim ? p->ints[i] : x->ndim - 1 - i;
            if (pi < 0 || pi >= x->ndim) return NODE_ERR(nd, "perm out of range");
            o.d[i] = x->d[pi];
            if (i < TSR_NF_ATTRS) t->attr[i] = (float)pi;
        }
        t->n_attr = x->ndim < TSR_NF_ATTRS ? x->ndim : TSR_NF_ATTRS;
        *out = o;
        break;
    }
    case TSR_NF_OP_REDUCEMEAN: {
        const tsr_onnx_attr *ax = tsr_onnx_node_attr(nd, "axes");
        bool keep = attr_i(nd, "keepdims", 1) != 0;
        bool red[TSR_ONNX_MAX_DIMS] = {0};
        for (int i = 0; i < x->ndim; i++) red[i] = !(ax && ax->type == TSR_ONNX_ATTR_INTS);
        if (ax && ax->type == TSR_ONNX_ATTR_INTS)
            for (int i = 0; i < ax->n; i++) {
                int64_t a = ax->ints[i] < 0 ? ax->ints[i] + x->ndim : ax->ints[i];
                if (a < 0 || a >= x->ndim) return NODE_ERR(nd, "axis out of range");
                red[a] = true;
            }
        tshape o = {0};
        for (int i = 0; i < x->ndim; i++)
            if (!red[i]) o.d[o.ndim++] = x->d[i];
            else if (keep) o.d[o.ndim++] = 1;
        *out = o;
        t->flops = (double)numel(x);
        break;
    }
    default:
        return NODE_ERR(nd, "operator not supported by the tokenizer's shape inference");
    }
    for (int i = 0; i < out->ndim; i++)
        if (out->d[i] < 0 || out->d[i] > ((int64_t)1 << 32)) return NODE_ERR(nd, "output shape out of range");
    return tsr_ok();
}

/* binary min-heap of node indices: Kahn's order, lowest file index first */
static void heap_push(int *h, int *n, int v) {
    int i = (*n)++;
    h[i] = v;
    while (i > 0 && h[(i - 1) / 2] > h[i]) {
        int p = (i - 1) / 2, t = h[p];
        h[p] = h[i];
        h[i] = t;
        i = p;
    }
}
static int heap_pop(int *h, int *n) {
    int top = h[0];
    h[0] = h[--(*n)];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && h[l] < h[m]) m = l;
        if (r < *n && h[r] < h[m]) m = r;
        if (m == i) break;
        int t = h[m];
        h[m] = h[i];
        h[i] = t;
        i = m;
    }
    return top;
}

tsr_status tsr_nf_graph_from_onnx(tsr_nf_graph *g, const tsr_onnx_model *m, int batch) {
    tsr_nf_graph_init(g);
    int nn = m->n_nodes;
    if (nn > TSR_NF_MAX_NODES)
        return tsr_errorf(TSR_ERR_FORMAT, "ONNX: %d nodes (the tokenizer takes at most %d)", nn, TSR_NF_MAX_NODES);
    int n_vals = m->n_inits + m->n_inputs;
    for (int i = 0; i < nn; i++) n_vals += m->nodes[i].n_out;
    name_map map;
    map_init(&map, n_vals);
    tshape *vals = calloc((size_t)n_vals + 1, sizeof *vals);
    int *indeg = calloc((size_t)nn + 1, sizeof(int));
    int *heap = malloc(sizeof(int) * ((size_t)nn + 1));
    int *prod_node = malloc(sizeof(int) * ((size_t)n_vals + 1)); /* value -> producing onnx node, -1 */
    TSR_ASSERT(vals && indeg && heap && prod_node);
    tsr_status st = tsr_ok();
    int nv = 0;
    /* initializers (weights): known shapes, not tokens */
    for (int i = 0; i < m->n_inits; i++) {
        tshape *s = &vals[nv];
        s->ndim = m->inits[i].ndim;
        memcpy(s->d, m->inits[i].dims, sizeof s->d);
        s->producer = -1;
        prod_node[nv] = -1;
        map_put(&map, m->inits[i].name, nv++);
    }
    /* graph inputs that are not initializers: input tokens */
    for (int i = 0; i < m->n_inputs && !st.code; i++) {
        const tsr_onnx_value *v = &m->inputs[i];
        if (map_get(&map, v->name) >= 0) continue;
        if (v->ndim < 1) {
            st = tsr_errorf(TSR_ERR_FORMAT, "ONNX input '%.60s' has no static shape", v->name);
            break;
        }
        tshape *s = &vals[nv];
        s->ndim = v->ndim;
        memcpy(s->d, v->dims, sizeof s->d);
        if (s->d[0] < 1) s->d[0] = batch > 0 ? batch : 1;
        if (batch > 0) s->d[0] = batch;
        for (int k = 1; k < s->ndim; k++)
            if (s->d[k] < 1) {
                st = tsr_errorf(TSR_ERR_FORMAT, "ONNX input '%.60s' has a symbolic dim %d; give a static shape", v->name, k);
                break;
            }
        if (st.code) break;
        if (g->n == 0) g->batch = (int)(s->d[0] > 1 << 20 ? 1 << 20 : s->d[0]);
        if (g->n >= TSR_NF_MAX_NODES) {
            st = tsr_errorf(TSR_ERR_FORMAT, "ONNX: more than %d tokens", TSR_NF_MAX_NODES);
            break;
        }
        tsr_nf_node t = {.op = TSR_NF_OP_INPUT, .ndim = s->ndim < 4 ? s->ndim : 4};
        for (int k = 0; k < t.ndim; k++) t.shape[k] = s->d[k];
        s->producer = tsr_nf_graph_add(g, &t);
        prod_node[nv] = -1;
        map_put(&map, v->name, nv++);
    }
    if (!st.code && g->n == 0) st = tsr_errorf(TSR_ERR_FORMAT, "ONNX: the graph has no input besides its weights");
    /* node outputs */
    for (int i = 0; i < nn && !st.code; i++)
        for (int k = 0; k < m->nodes[i].n_out; k++) {
            const char *o = m->nodes[i].out[k];
            if (!*o) continue;
            if (map_get(&map, o) >= 0) {
                st = tsr_errorf(TSR_ERR_FORMAT, "ONNX: tensor '%.60s' is produced twice", o);
                break;
            }
            vals[nv].ndim = -1;
            vals[nv].producer = -1;
            prod_node[nv] = i;
            map_put(&map, o, nv++);
        }
    /* in-degrees over node -> node dependencies */
    for (int i = 0; i < nn && !st.code; i++) {
        const tsr_onnx_node *nd = &m->nodes[i];
        for (int k = 0; k < nd->n_in; k++) {
            if (!*nd->in[k]) continue;
            int v = map_get(&map, nd->in[k]);
            if (v < 0) {
                st = NODE_ERR(nd, "input '%.60s' is produced by nothing", nd->in[k]);
                break;
            }
            if (prod_node[v] >= 0) indeg[i]++;
        }
    }
    /* consumers of each value (CSR), one entry per input slot */
    int *cstart = calloc((size_t)n_vals + 2, sizeof(int));
    int n_cons = 0;
    for (int i = 0; i < nn && !st.code; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++)
            if (*m->nodes[i].in[k]) {
                cstart[map_get(&map, m->nodes[i].in[k]) + 1]++;
                n_cons++;
            }
    for (int v = 0; v < n_vals; v++) cstart[v + 1] += cstart[v];
    int *cons = malloc(sizeof(int) * ((size_t)n_cons + 1));
    int *cfill = calloc((size_t)n_vals + 1, sizeof(int));
    TSR_ASSERT(cstart && cons && cfill);
    for (int i = 0; i < nn && !st.code; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++)
            if (*m->nodes[i].in[k]) {
                int v = map_get(&map, m->nodes[i].in[k]);
                cons[cstart[v] + cfill[v]++] = i;
            }
    int hn = 0;
    for (int i = 0; i < nn && !st.code; i++)
        if (indeg[i] == 0) heap_push(heap, &hn, i);
    int placed = 0;
    while (hn > 0 && !st.code) {
        int i = heap_pop(heap, &hn);
        placed++;
        const tsr_onnx_node *nd = &m->nodes[i];
        int op = op_index(nd->op_type);
        if (op < 0) {
            st = NODE_ERR(nd, "operator not supported by the tokenizer");
            break;
        }
        tshape *ins[TSR_ONNX_MAX_IO] = {0};
        for (int k = 0; k < nd->n_in; k++)
            if (*nd->in[k]) ins[k] = &vals[map_get(&map, nd->in[k])];
        if (nd->n_in < 1 || !ins[0]) {
            st = NODE_ERR(nd, "no data input");
            break;
        }
        if (nd->n_out < 1 || !*nd->out[0]) {
            st = NODE_ERR(nd, "no output");
            break;
        }
        tsr_nf_node t = {.op = op};
        tshape out;
        if ((st = infer(nd, op, ins, nd->n_in, &out, &t)).code) break;
        t.ndim = out.ndim < 4 ? out.ndim : 4;
        for (int k = 0; k < t.ndim; k++) t.shape[k] = out.d[k];
        t.mem = (double)numel(&out) + t.params;
        if (g->n >= TSR_NF_MAX_NODES) {
            st = tsr_errorf(TSR_ERR_FORMAT, "ONNX: more than %d tokens", TSR_NF_MAX_NODES);
            break;
        }
        int tok = tsr_nf_graph_add(g, &t);
        out.producer = tok;
        /* every output of the node shares the first output's token (multi-output
         * ops are not supported above, so this is Dropout's mask or BN's stats) */
        for (int k = 0; k < nd->n_out; k++)
            if (*nd->out[k]) vals[map_get(&map, nd->out[k])] = out;
        for (int k = 0; k < nd->n_in; k++)
            if (ins[k] && ins[k]->producer >= 0) tsr_nf_graph_edge(g, ins[k]->producer, tok);
        /* release the consumers of its outputs */
        for (int k = 0; k < nd->n_out; k++) {
            if (!*nd->out[k]) continue;
            int v = map_get(&map, nd->out[k]);
            for (int e = cstart[v]; e < cstart[v + 1]; e++)
                if (--indeg[cons[e]] == 0) heap_push(heap, &hn, cons[e]);
        }
    }
    if (!st.code && placed < nn) st = tsr_errorf(TSR_ERR_FORMAT, "ONNX: the graph has a cycle (%d of %d nodes ordered)", placed, nn);
    map_free(&map);
    free(cstart);
    free(cons);
    free(cfill);
    free(vals);
    free(indeg);
    free(heap);
    free(prod_node);
    if (st.code) tsr_nf_graph_free(g);
    return st;
}
