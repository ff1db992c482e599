/* narformer: a generated network (netgen.c) written as an ONNX model
 * (protobuf wire format, no protobuf library), opset 14, so that the data
 * set's networks can be read by other tools and, through tsr_onnx_parse +
 * tsr_nf_graph_from_onnx, back into the same op graph.
 *
 * Mapping: Conv (W [Co, Ci/g, k, k], B when the token says bias),
 * BatchNormalization (scale, B, mean, var [C], epsilon 1e-5), Relu,
 * Clip (min 0, max 6 as scalar initializers: ReLU6), Sigmoid, HardSigmoid
 * (alpha 1/6, beta 1/2), HardSwish, Add, Mul, MaxPool / AveragePool
 * (kernel, stride, symmetric pads), GlobalAveragePool, Flatten (axis 1),
 * Gemm (transB = 1, W [out, in], B [out]), Concat (axis 1). The graph input
 * is "input" (float, the Input node's shape); graph outputs are the nodes
 * nobody consumes. Weights are random (uniform +-1/sqrt(fan-in), BN
 * variance 1) from the seed, or left out (dims only, as in NNLQP's
 * "no-weight" files; such a file is not valid for onnx.checker). */
#include "tessera/narformer.h"
#include "tessera/fileio.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *p;
    size_t n, cap;
} pbuf;

static void pb_put(pbuf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n) c *= 2;
        b->p = realloc(b->p, c);
        TSR_ASSERT(b->p);
        b->cap = c;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void pb_varint(pbuf *b, uint64_t v) {
    uint8_t t[10];
    int k = 0;
    do {
        t[k] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) t[k] |= 0x80;
        k++;
    } while (v);
    pb_put(b, t, (size_t)k);
}
static void pb_key(pbuf *b, int field, int wire) { pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wire); }
static void pb_int(pbuf *b, int field, int64_t v) {
    pb_key(b, field, 0);
    pb_varint(b, (uint64_t)v);
}
static void pb_bytes(pbuf *b, int field, const void *p, size_t n) {
    pb_key(b, field, 2);
    pb_varint(b, n);
    pb_put(b, p, n);
}
static void pb_str(pbuf *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }
/* appends sub as a length-delimited field and empties it */
static void pb_msg(pbuf *b, int field, pbuf *sub) {
    pb_bytes(b, field, sub->p, sub->n);
    sub->n = 0;
}
static void pb_float(pbuf *b, int field, float f) {
    pb_key(b, field, 5);
    uint8_t t[4];
    memcpy(t, &f, 4); /* little-endian host (x86-64 / aarch64) */
    pb_put(b, t, 4);
}

/* ------------------------------------------------------------ ONNX pieces */

/* AttributeProto: name 1, f 2, i 3, ints 8, type 20 */
static void attr_int(pbuf *node, pbuf *tmp, const char *name, int64_t v) {
    pb_str(tmp, 1, name);
    pb_int(tmp, 3, v);
    pb_int(tmp, 20, TSR_ONNX_ATTR_INT);
    pb_msg(node, 5, tmp);
}
static void attr_float(pbuf *node, pbuf *tmp, const char *name, float v) {
    pb_str(tmp, 1, name);
    pb_float(tmp, 2, v);
    pb_int(tmp, 20, TSR_ONNX_ATTR_FLOAT);
    pb_msg(node, 5, tmp);
}
static void attr_ints(pbuf *node, pbuf *tmp, const char *name, const int64_t *v, int n) {
    pb_str(tmp, 1, name);
    for (int i = 0; i < n; i++) pb_int(tmp, 8, v[i]);
    pb_int(tmp, 20, TSR_ONNX_ATTR_INTS);
    pb_msg(node, 5, tmp);
}

typedef struct {
    pbuf graph, node, tmp, tmp2;
    bool weights;
    tsr_rng rng;
} writer;

/* TensorProto: dims 1, data_type 2 (1 = float), name 8, raw_data 9.
 * fill: 0 random +-scale, 1 all ones, 2 zeros, 3 the value scale */
static void initializer(writer *w, const char *name, const int64_t *dims, int nd, int fill, float scale) {
    pbuf *t = &w->tmp;
    for (int i = 0; i < nd; i++) pb_int(t, 1, dims[i]);
    pb_int(t, 2, 1);
    pb_str(t, 8, name);
    if (w->weights || nd == 0) {
        int64_t n = 1;
        for (int i = 0; i < nd; i++) n *= dims[i];
        pb_key(t, 9, 2);
        pb_varint(t, (uint64_t)n * 4);
        for (int64_t i = 0; i < n; i++) {
            float v = fill == 0 ? scale * (2 * tsr_rng_uniform(&w->rng) - 1) : fill == 1 ? 1.0f
                      : fill == 2 ? 0.0f : scale;
            uint8_t b[4];
            memcpy(b, &v, 4);
            pb_put(t, b, 4);
        }
    }
    pb_msg(&w->graph, 5, t);
}

/* ValueInfoProto (name 1, type 2) of a float tensor with a static shape */
static void value_info(writer *w, int field, const char *name, const tsr_nf_node *nd) {
    pbuf *shape = &w->tmp2, *t = &w->tmp;
    pbuf dim = {0}, tt = {0}, ty = {0};
    for (int i = 0; i < nd->ndim; i++) {
        pb_int(&dim, 1, nd->shape[i]); /* Dimension.dim_value */
        pb_msg(shape, 1, &dim);        /* TensorShapeProto.dim */
    }
    pb_int(&tt, 1, 1);     /* TypeProto.Tensor.elem_type = FLOAT */
    pb_msg(&tt, 2, shape); /* .shape */
    pb_msg(&ty, 1, &tt);   /* TypeProto.tensor_type */
    pb_str(t, 1, name);
    pb_msg(t, 2, &ty);
    pb_msg(&w->graph, field, t);
    free(dim.p);
    free(tt.p);
    free(ty.p);
}

static void vname(char *buf, size_t n, int i) {
    if (i == 0) snprintf(buf, n, "input");
    else snprintf(buf, n, "n%d", i);
}

tsr_status tsr_nf_graph_to_onnx(const tsr_nf_graph *g, bool weights, uint64_t seed, uint8_t **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (g->n < 2 || g->nodes[0].op != TSR_NF_OP_INPUT)
        return tsr_errorf(TSR_ERR_ARG, "ONNX export: the graph must start with its input node");
    for (int i = 1; i < g->n; i++)
        if (g->nodes[i].op == TSR_NF_OP_INPUT)
            return tsr_errorf(TSR_ERR_ARG, "ONNX export: node %d: only one network input is supported", i);
    /* inputs of each node, in edge order */
    int *n_in = calloc((size_t)g->n, sizeof(int)), *start = calloc((size_t)g->n + 1, sizeof(int));
    int *ins = malloc(sizeof(int) * ((size_t)g->n_edges + 1));
    bool *used = calloc((size_t)g->n, sizeof(bool));
    TSR_ASSERT(n_in && start && ins && used);
    for (int e = 0; e < g->n_edges; e++) n_in[g->edst[e]]++, used[g->esrc[e]] = true;
    for (int i = 0; i < g->n; i++) start[i + 1] = start[i] + n_in[i];
    for (int i = 0; i < g->n; i++) n_in[i] = 0;
    for (int e = 0; e < g->n_edges; e++) ins[start[g->edst[e]] + n_in[g->edst[e]]++] = g->esrc[e];

    writer w = {.weights = weights};
    tsr_rng_seed(&w.rng, seed);
    tsr_status st = tsr_ok();
    bool clip_consts = false;
    pb_str(&w.graph, 2, "tessera_narformer_net");
    for (int i = 1; i < g->n && !st.code; i++) {
        const tsr_nf_node *nd = &g->nodes[i];
        const int *in = ins + start[i];
        int ni = n_in[i];
        char nm[32], iname[32], wn[40], bn[40];
        vname(nm, sizeof nm, i);
        pbuf *node = &w.node;
        int need = nd->op == TSR_NF_OP_ADD || nd->op == TSR_NF_OP_MUL ? 2 : nd->op == TSR_NF_OP_CONCAT ? -1 : 1;
        if ((need > 0 && ni != need) || (need < 0 && ni < 1)) {
            st = tsr_errorf(TSR_ERR_ARG, "ONNX export: node %d (%s) has %d inputs", i, tsr_nf_op_name(nd->op), ni);
            break;
        }
        for (int k = 0; k < ni; k++) {
            vname(iname, sizeof iname, in[k]);
            pb_str(node, 1, iname);
        }
        const char *op = tsr_nf_op_name(nd->op);
        const tsr_nf_node *x = &g->nodes[in[0]];
        switch (nd->op) {
        case TSR_NF_OP_CONV: {
            int k = (int)nd->attr[0], s = (int)nd->attr[1], p = (int)nd->attr[2], d = (int)nd->attr[3];
            int grp = (int)nd->attr[4];
            bool bias = nd->attr[5] != 0;
            int64_t co = nd->shape[1], ci = x->shape[1];
            if (x->ndim != 4 || grp < 1 || ci % grp) {
                st = tsr_errorf(TSR_ERR_ARG, "ONNX export: node %d: conv input/group mismatch", i);
                break;
            }
            snprintf(wn, sizeof wn, "%s_w", nm);
            int64_t wd[4] = {co, ci / grp, k, k};
            initializer(&w, wn, wd, 4, 0, 1.0f / sqrtf((float)(ci / grp * k * k)));
            pb_str(node, 1, wn);
            if (bias) {
                snprintf(bn, sizeof bn, "%s_b", nm);
                initializer(&w, bn, &co, 1, 2, 0);
                pb_str(node, 1, bn);
            }
            int64_t ks[2] = {k, k}, ss[2] = {s, s}, ds[2] = {d, d}, ps[4] = {p, p, p, p};
            attr_ints(node, &w.tmp, "kernel_shape", ks, 2);
            attr_ints(node, &w.tmp, "strides", ss, 2);
            attr_ints(node, &w.tmp, "pads", ps, 4);
            attr_ints(node, &w.tmp, "dilations", ds, 2);
            attr_int(node, &w.tmp, "group", grp);
            break;
        }
        case TSR_NF_OP_BN: {
            int64_t c = nd->shape[1];
            static const char *const part[4] = {"scale", "bias", "mean", "var"};
            static const int fill[4] = {1, 2, 2, 1};
            for (int q = 0; q < 4; q++) {
                snprintf(wn, sizeof wn, "%s_%s", nm, part[q]);
                initializer(&w, wn, &c, 1, fill[q], 0);
                pb_str(node, 1, wn);
            }
            attr_float(node, &w.tmp, "epsilon", 1e-5f);
            break;
        }
        case TSR_NF_OP_CLIP:
            if (!clip_consts) {
                initializer(&w, "clip_min", NULL, 0, 3, 0.0f);
                initializer(&w, "clip_max", NULL, 0, 3, 6.0f);
                clip_consts = true;
            }
            pb_str(node, 1, "clip_min");
            pb_str(node, 1, "clip_max");
            break;
        case TSR_NF_OP_HARDSIGMOID:
            attr_float(node, &w.tmp, "alpha", 1.0f / 6);
            attr_float(node, &w.tmp, "beta", 0.5f);
            break;
        case TSR_NF_OP_MAXPOOL:
        case TSR_NF_OP_AVGPOOL: {
            int64_t k = (int64_t)nd->attr[0], s = (int64_t)nd->attr[1], p = (int64_t)nd->attr[2];
            int64_t ks[2] = {k, k}, ss[2] = {s, s}, ps[4] = {p, p, p, p};
            attr_ints(node, &w.tmp, "kernel_shape", ks, 2);
            attr_ints(node, &w.tmp, "strides", ss, 2);
            attr_ints(node, &w.tmp, "pads", ps, 4);
            break;
        }
        case TSR_NF_OP_FLATTEN: attr_int(node, &w.tmp, "axis", 1); break;
        case TSR_NF_OP_CONCAT: attr_int(node, &w.tmp, "axis", 1); break;
        case TSR_NF_OP_GEMM: {
            int64_t K = x->shape[1], N = nd->shape[1];
            if (x->ndim != 2) {
                st = tsr_errorf(TSR_ERR_ARG, "ONNX export: node %d: Gemm input is not 2-D", i);
                break;
            }
            snprintf(wn, sizeof wn, "%s_w", nm);
            int64_t wd[2] = {N, K};
            initializer(&w, wn, wd, 2, 0, 1.0f / sqrtf((float)K));
            pb_str(node, 1, wn);
            if (nd->attr[0] != 0) {
                snprintf(bn, sizeof bn, "%s_b", nm);
                initializer(&w, bn, &N, 1, 2, 0);
                pb_str(node, 1, bn);
            }
            attr_int(node, &w.tmp, "transB", 1);
            break;
        }
        case TSR_NF_OP_RELU:
        case TSR_NF_OP_SIGMOID:
        case TSR_NF_OP_HARDSWISH:
        case TSR_NF_OP_ADD:
        case TSR_NF_OP_MUL:
        case TSR_NF_OP_GAP: break;
        default:
            st = tsr_errorf(TSR_ERR_ARG, "ONNX export: node %d: operator %s is not exported", i, op);
            break;
        }
        if (st.code) break;
        pb_str(node, 2, nm);
        pb_str(node, 3, nm);
        pb_str(node, 4, op);
        pb_msg(&w.graph, 1, node);
    }
    if (!st.code) {
        value_info(&w, 11, "input", &g->nodes[0]);
        for (int i = 1; i < g->n; i++)
            if (!used[i]) {
                char nm[32];
                vname(nm, sizeof nm, i);
                value_info(&w, 12, nm, &g->nodes[i]);
            }
        pbuf model = {0}, ops = {0};
        pb_int(&model, 1, 7); /* ir_version */
        pb_str(&model, 2, "tessera");
        pb_str(&ops, 1, "");
        pb_int(&ops, 2, 14);
        pb_msg(&model, 8, &ops); /* opset_import */
        pb_msg(&model, 7, &w.graph);
        *out = model.p;
        *out_len = model.n;
        free(ops.p);
    }
    free(w.graph.p);
    free(w.node.p);
    free(w.tmp.p);
    free(w.tmp2.p);
    free(n_in);
    free(start);
    free(ins);
    free(used);
    return st;
}

tsr_status tsr_nf_graph_write_onnx(const tsr_nf_graph *g, bool weights, uint64_t seed, const char *path) {
    uint8_t *buf;
    size_t n;
    tsr_status st = tsr_nf_graph_to_onnx(g, weights, seed, &buf, &n);
    if (st.code) return st;
    tsr_atomic_file af;
    st = tsr_atomic_open(&af, path);
    if (!st.code) {
        bool ok = fwrite(buf, 1, n, af.f) == n;
        st = tsr_atomic_commit(&af, ok);
        if (!st.code && !ok) st = tsr_errorf(TSR_ERR_IO, "%s: write failed", path);
    }
    free(buf);
    return st;
}
