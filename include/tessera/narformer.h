/* tessera narformer: NAR-Former V2 (Yi et al., 2023) — a network as a token
 * graph, a transformer with graph-aided attention reading it, and heads that
 * predict the network's latency or accuracy. src/models/narformer/.
 *
 *   graph.c     op graphs: from ONNX (shape inference, FLOPs/params) or
 *               built directly; the whole-network tokenizer (152-d tokens)
 *   nb201.c     NAS-Bench-201: accuracy / latency tables, the 8-token cell
 *               tokenizer, the isomorphic relabelling
 *   model.c     the predictor (degree gate, graph-aided attention, grouped
 *               FFN, latency and accuracy heads) and its losses
 *
 * Token layout (paper sec. 3.2, official feature_utils): 32 op one-hot,
 * 8 attributes x 10, 4 output-shape dims x 10 = 152. A scalar x becomes
 * [sin(x f_0), cos(x f_0), ..., sin(x f_4), cos(x f_4)], f_j = 10000^(-j/5).
 * The static vector [batch, GFLOPs, Gparams, Gmem] is encoded the same way
 * (40 dims); Gmem counts memory accesses (output elements + parameters, in
 * 1e9), as NNLQP's "macs". */
#ifndef TESSERA_NARFORMER_H
#define TESSERA_NARFORMER_H

#include "tessera/core.h"
#include "tessera/onnx.h"

#define TSR_NF_OPS 32
#define TSR_NF_ATTRS 8
#define TSR_NF_FREQS 5
#define TSR_NF_TOKEN_DIM 152 /* 32 + 8*10 + 4*10 */
#define TSR_NF_STATIC_DIM 40 /* 4*10 */
#define TSR_NF_MAX_NODES 4096

/* Operator slots of the one-hot, in NNLQP's order (code - 1) plus four of
 * ours. TSR_NF_OP_INPUT is the network input: no one-hot, no attributes. */
typedef enum {
    TSR_NF_OP_INPUT = -1,
    TSR_NF_OP_CONV = 0, TSR_NF_OP_RELU, TSR_NF_OP_ADD, TSR_NF_OP_SIGMOID, TSR_NF_OP_RESHAPE,
    TSR_NF_OP_MAXPOOL, TSR_NF_OP_SPLIT, TSR_NF_OP_GAP, TSR_NF_OP_GEMM, TSR_NF_OP_TRANSPOSE,
    TSR_NF_OP_UPSAMPLE, TSR_NF_OP_BN, TSR_NF_OP_MUL, TSR_NF_OP_CONCAT, TSR_NF_OP_FLATTEN,
    TSR_NF_OP_AVGPOOL, TSR_NF_OP_CAST, TSR_NF_OP_MATMUL, TSR_NF_OP_REDUCEMEAN, TSR_NF_OP_POW,
    TSR_NF_OP_SLICE, TSR_NF_OP_DIV, TSR_NF_OP_SUB, TSR_NF_OP_SQRT, TSR_NF_OP_CLIP,
    TSR_NF_OP_SOFTMAX, TSR_NF_OP_TANH, TSR_NF_OP_CONVTRANSPOSE,
    TSR_NF_OP_HARDSIGMOID, TSR_NF_OP_HARDSWISH, TSR_NF_OP_IDENTITY, TSR_NF_OP_OTHER,
    TSR_NF_OP_COUNT
} tsr_nf_op;
_Static_assert(TSR_NF_OP_COUNT == TSR_NF_OPS, "one-hot has 32 slots");

const char *tsr_nf_op_name(int op); /* ONNX op type; "Input" for -1 */

typedef struct {
    int op;                       /* tsr_nf_op */
    int n_attr;
    float attr[TSR_NF_ATTRS];     /* conv: kernel, stride, pad, dilation, group, bias;
                                     pools: kernel, stride, pad; gemm: bias */
    int ndim;
    int64_t shape[4];             /* output shape, first 4 dims (NCHW) */
    double flops, params, mem;    /* this node's share of the static figures */
} tsr_nf_node;

/* A network: nodes in topological order (inputs first), directed edges
 * producer -> consumer (src < dst). */
typedef struct {
    int n, cap;
    tsr_nf_node *nodes;
    int n_edges, edge_cap;
    int32_t *esrc, *edst;
    int batch;
    double flops, params, mem;    /* totals */
} tsr_nf_graph;

void tsr_nf_graph_init(tsr_nf_graph *g);
void tsr_nf_graph_free(tsr_nf_graph *g);
/* appends a node; returns its index */
int tsr_nf_graph_add(tsr_nf_graph *g, const tsr_nf_node *nd);
void tsr_nf_graph_edge(tsr_nf_graph *g, int src, int dst);

/* The op graph of an ONNX model at the given batch (<= 0: the file's, 1 if
 * symbolic): output shapes inferred node by node, FLOPs and parameters as
 * NNLQP counts them. Unsupported operators or shapes are an error naming the
 * node. */
tsr_status tsr_nf_graph_from_onnx(tsr_nf_graph *g, const tsr_onnx_model *m, int batch);

/* tokens (n, 152), adj (n, n) undirected 0/1 without self-loops,
 * static_feat (40); any may be NULL */
void tsr_nf_tokenize(const tsr_nf_graph *g, float *tokens, float *adj, float *static_feat);
/* the 10-dim sinusoidal code of one scalar */
void tsr_nf_encode_scalar(float *out, double x, int n_freqs);

#endif
