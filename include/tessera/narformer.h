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
#include "tessera/train.h"

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

/* ------------------------------------------------------------ the model */

typedef enum { TSR_NF_HEAD_LATENCY = 0, TSR_NF_HEAD_ACCURACY = 1 } tsr_nf_head;

typedef struct {
    int in_dim;        /* token width (152 whole networks, 128 NB201 cells) */
    int dim;           /* hidden width D (paper 512) */
    int n_layers;      /* graph-aided transformer layers (paper: 2 latency, 6 accuracy) */
    int ffn_ratio;     /* grouped FFN hidden = ratio * D (4) */
    int groups;        /* FFN groups (8), each with LayerNorm on its outputs */
    int fc_hidden;     /* head MLP width (D) */
    int head;          /* tsr_nf_head */
    bool degree;       /* degree gate (on) */
    float dropout;     /* 0.05 */
    float layer_scale; /* gamma init (1e-4) */
} tsr_nf_cfg;

tsr_nf_cfg tsr_nf_default_cfg(tsr_nf_head head, int in_dim);
/* checks a config (user input) */
tsr_status tsr_nf_cfg_check(const tsr_nf_cfg *cfg);

typedef struct {
    tsr_tensor *lin_d_w, *lin_d_b, *qk_w, *qk_b, *l_w, *l_b, *r_w;
    tsr_tensor *ln_w, *ln_b;
    tsr_tensor *up_w, *up_b, *up_ln_w, *up_ln_b, *down_w, *down_b, *down_ln_w, *down_ln_b;
    tsr_tensor *gamma;
} tsr_nf_layer;

typedef struct {
    tsr_nf_cfg cfg;
    tsr_params params;
    tsr_nf_layer *layers;
    tsr_tensor *fuse1_w, *fuse1_b, *fuse2_w, *fuse2_b; /* accuracy head */
    tsr_tensor *sf_w, *sf_b;                           /* latency head: static branch */
    tsr_tensor *fc1_w, *fc1_b, *fc2_w, *fc2_b, *pred_w, *pred_b;
} tsr_nf_model;

/* registers parameters (names as the PyTorch reference's state dict) and
 * initialises them from seed as PyTorch does (Linear: U(+-1/sqrt(in)),
 * grouped weights Xavier-uniform, norms 1/0, gamma = layer_scale) */
/* The grouped linear op of the FFN (one tape node): x holds R rows of G*I
 * values (any shape of that size), w (G,I,O), b (G,1,O); returns (R,G,O)
 * with out[r,g] = x[r, g*I:(g+1)*I] w[g] + b[g]. */
tsr_tensor *tsr_nf_group_linear(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b);
tsr_status tsr_nf_model_init(tsr_nf_model *m, const tsr_nf_cfg *cfg, uint64_t seed);
void tsr_nf_model_free(tsr_nf_model *m);

/* Predictions (B,1) >= 0 for B graphs of N tokens each. x (B,N,in_dim);
 * adj (B,N,N) or (N,N) shared by the batch, 0/1 undirected; static_feat
 * (B,40) for the latency head (NULL for accuracy). */
tsr_tensor *tsr_nf_forward(tsr_ctx *c, const tsr_nf_model *m, tsr_tensor *x, tsr_tensor *adj,
                           tsr_tensor *static_feat);
/* The same predictions for inference (c->grad_enabled false; no tape):
 * the attention runs over the adjacency's nonzeros, O(edges) instead of
 * the dense O(N^2) products, so large graphs (hundreds of tokens) predict
 * several times faster. Equal to tsr_nf_forward up to the summation
 * order (relative differences ~1e-7). */
tsr_tensor *tsr_nf_forward_sparse(tsr_ctx *c, const tsr_nf_model *m, tsr_tensor *x, tsr_tensor *adj,
                                  tsr_tensor *static_feat);
/* MSE(pred / y, 1) (paper eq. 8); y (B,1) > 0 */
tsr_tensor *tsr_nf_loss_ratio(tsr_ctx *c, tsr_tensor *pred, tsr_tensor *y);
/* L1 between pairwise differences: |(p - p[perm]) - (y - y[perm])| mean
 * (the official SRLoss); perm i32 (B) */
tsr_tensor *tsr_nf_loss_pairdiff(tsr_ctx *c, tsr_tensor *pred, tsr_tensor *y, const tsr_tensor *perm);

tsr_status tsr_nf_model_save(const tsr_nf_model *m, const char *path, const char *const *meta);
/* loads a file written by tsr_nf_model_save (config from its metadata) */
tsr_status tsr_nf_model_load(tsr_nf_model *m, const char *path);

/* ------------------------------------------------------------ NAS-Bench-201 */

#define TSR_NB201_N 15625
#define TSR_NB201_TOKENS 8      /* input, 6 edge operations, output */
#define TSR_NB201_TOKEN_DIM 128 /* 64 op code + 64 position (32 frequencies each) */
#define TSR_NB201_MAX_DEV 64

/* operation ids (the official encoding): input 0, nor_conv_1x1 1,
 * nor_conv_3x3 2, avg_pool_3x3 3, skip_connect 4, none 5, output 6 */
enum { TSR_NB201_INPUT = 0, TSR_NB201_CONV1 = 1, TSR_NB201_CONV3 = 2, TSR_NB201_POOL = 3,
       TSR_NB201_SKIP = 4, TSR_NB201_NONE = 5, TSR_NB201_OUTPUT = 6 };

typedef struct {
    int n;
    uint8_t (*ops)[6];     /* edge operations in arch-string order (ids 1..5) */
    float *acc[3];         /* test accuracy %, 200 epochs: CIFAR-10, CIFAR-100, ImageNet16-120 */
    int32_t *iso;          /* isomorphism class (from UniqueString), dense ids */
    int n_iso;
    int n_dev;             /* latency devices (0 when no latency file was given) */
    char dev[TSR_NB201_MAX_DEV][32];
    float *lat;            /* (n, n_dev) ms */
} tsr_nb201;

/* acc_csv: nats_bench.csv; lat_gz: nb201_latency_ms.csv.gz or NULL. Rows
 * must be the 15,625 cells in index order (the arch strings are checked to
 * agree between the two files). */
tsr_status tsr_nb201_load(tsr_nb201 *t, const char *acc_csv, const char *lat_gz);
void tsr_nb201_free(tsr_nb201 *t);
/* arch string "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|" -> ops[6]; false if malformed */
bool tsr_nb201_parse_arch(const char *s, uint8_t ops[6]);
int tsr_nb201_device(const tsr_nb201 *t, const char *name); /* -1 if absent */

/* node operations (8: input, ops, output) and the fixed cell DAG as an
 * undirected 0/1 adjacency (8x8) */
void tsr_nb201_graph(const uint8_t ops[6], uint8_t node_ops[8], float adj[64]);
/* The isomorphic copy used by the consistency loss: the first relabelling
 * (lexicographic over the 720 orders of nodes 1..6) that keeps the DAG
 * upper-triangular and changes the adjacency or the operations: node j of
 * the copy is node label[j] of the original. Returns false if none. */
bool tsr_nb201_iso_copy(const uint8_t node_ops[8], const float adj[64], uint8_t ops_out[8], float adj_out[64]);
/* tokens (8, 128): op id and position, each as 32 sin/cos pairs
 * sin/cos(pi x f_k), f_k = 1 + k (2^31 - 1) / 31 (the official NeRF code) */
void tsr_nb201_tokens(const uint8_t node_ops[8], float *tokens);
/* FLOPs and parameters of the NB201 CIFAR network with this cell (C = 16,
 * 5 cells per stage, ReLU-Conv-BN ops), as used by the FLOPs baseline */
void tsr_nb201_cost(const uint8_t ops[6], double *flops, double *params);

/* ------------------------------------------------------------ evaluation */

/* Kendall tau-b (ties as scipy.stats.kendalltau) */
double tsr_nf_kendall_tau(const float *a, const float *b, int64_t n);

typedef struct {
    double kendall_tau, mape;
    double acc_10pct, acc_5pct, acc_1pct; /* share with |pred - y| / y <= 10%, 5%, 1% */
} tsr_nf_metrics;
void tsr_nf_metrics_compute(const float *pred, const float *y, int64_t n, tsr_nf_metrics *m);

/* fixed random split of n items: the first n_train of a seeded shuffle */
void tsr_nf_split(int n, int n_train, uint64_t seed, int32_t *order);

/* ------------------------------------------------------------ NB201 predictors */

typedef enum { TSR_NF_METHOD_NARFORMER = 0, TSR_NF_METHOD_MLP, TSR_NF_METHOD_GNN,
               TSR_NF_METHOD_FLOPS, TSR_NF_METHOD_KERNEL_SUM, TSR_NF_METHOD_COUNT } tsr_nf_method;
const char *tsr_nf_method_name(int method);
int tsr_nf_method_parse(const char *s); /* -1 if unknown */

/* A trained predictor of one NB201 target (accuracy or one device's
 * latency). narformer: the model above on cell tokens; mlp: MLP on the
 * 30-d one-hot of the 6 operations; gnn: GIN (3 layers, sum aggregation)
 * over one-hot node operations, mean readout; flops: least squares on
 * [1, FLOPs, params] of the network. */
typedef struct {
    int method;
    tsr_nf_model nf;                 /* narformer */
    tsr_params params;               /* mlp, gnn */
    tsr_tensor *w[8];
    double coef[3];                  /* flops: y = c0 + c1 GFLOPs + c2 Mparams */
    float y_scale;                   /* targets are divided by this for training */
} tsr_nf_nb201_pred;

typedef struct {
    int method;
    tsr_nf_cfg cfg;                  /* narformer */
    int hidden;                      /* mlp/gnn width */
    float lambda_sr, lambda_cons;    /* pair-difference and consistency weights */
    int64_t eval_items;              /* cells in the progress evaluation (0: none) */
    const int32_t *eval_ids;         /* if set: the progress evaluation uses these cells */
    int n_eval_ids;
    int batch;                       /* cells per step (8, as the paper) */
    uint64_t split_seed;             /* recorded in the weights' metadata */
} tsr_nf_nb201_opts;

tsr_nf_nb201_opts tsr_nf_nb201_default_opts(int method);

/* Trains on the cells ids[0..n_train) with targets y (all 15,625 cells, y
 * > 0), through the shared trainer (o->out receives the weights). flops
 * is solved in closed form (no trainer, o may be NULL). init: a trained
 * predictor to fine-tune from (narformer/mlp/gnn), or NULL. */
tsr_status tsr_nf_nb201_fit(tsr_nf_nb201_pred *p, const tsr_nf_nb201_opts *opts, const tsr_nb201 *t,
                            const float *y, const int32_t *ids, int n_train, const tsr_nf_nb201_pred *init,
                            const tsr_train_opts *to, tsr_train_result *res);
/* predictions for cells ids[0..n) */
void tsr_nf_nb201_predict(const tsr_nf_nb201_pred *p, const tsr_nb201 *t, const int32_t *ids, int n, float *out);
void tsr_nf_nb201_pred_free(tsr_nf_nb201_pred *p);

/* ------------------------------------------------------------ latency data set */

/* network families of the generator (netgen.c) */
enum { TSR_NF_FAM_RESNET = 0, TSR_NF_FAM_VGG, TSR_NF_FAM_MOBILENETV2, TSR_NF_FAM_MOBILENETV3, TSR_NF_FAM_MNASNET,
       TSR_NF_FAM_SQUEEZENET, TSR_NF_FAM_GOOGLENET, TSR_NF_FAM_ALEXNET, TSR_NF_FAM_EFFICIENTNET, TSR_NF_FAM_NB201,
       TSR_NF_FAMILIES };
const char *tsr_nf_family_name(int f);
int tsr_nf_family_parse(const char *s); /* -1 if unknown */
/* a random variant (width, depth, kernels, resolution) of a family at
 * batch 1, a pure function of (family, seed) */
tsr_status tsr_nf_netgen(tsr_nf_graph *g, int family, uint64_t seed);

/* The graph as an ONNX model (onnx_export.c): opset 14, one ONNX node per
 * graph node (Input -> graph input "input"), weights random from seed or,
 * with weights false, dims only. tsr_nf_graph_from_onnx reads it back to
 * the same nodes, edges, shapes and counts. *out is malloc'ed. Operators
 * netgen does not emit are an error. */
tsr_status tsr_nf_graph_to_onnx(const tsr_nf_graph *g, bool weights, uint64_t seed, uint8_t **out, size_t *out_len);
/* the same, written atomically to path */
tsr_status tsr_nf_graph_write_onnx(const tsr_nf_graph *g, bool weights, uint64_t seed, const char *path);

/* the runner (measure.c): the graph executed for real on tessera's CPU ops
 * with random weights at the current thread count (tsr_threads_set) */
typedef struct {
    int warmup, repeats;
    uint64_t seed;  /* weights and inputs */
    bool cpu_clock; /* time on the calling thread's CPU clock instead of the wall clock */
} tsr_nf_measure_opts;
typedef struct {
    double median_ms, min_ms, max_ms; /* whole network over the repeats */
    double *node_ms;                  /* (n) each node's median */
} tsr_nf_measure_result;
/* Unsupported operators or shapes are an error naming the node. */
tsr_status tsr_nf_measure(const tsr_nf_graph *g, const tsr_nf_measure_opts *o, tsr_nf_measure_result *r);
void tsr_nf_measure_result_free(tsr_nf_measure_result *r);

/* platforms of the data set: tessera on this CPU at 1 and 2 threads */
#define TSR_NF_PLATFORMS 2
const char *tsr_nf_platform_name(int p); /* "cpu-1t", "cpu-2t" */
int tsr_nf_platform_parse(const char *s); /* -1 if unknown */
int tsr_nf_platform_threads(int p);

/* one measured network (latency.c holds the file format) */
typedef struct {
    int family;
    uint64_t seed;
    tsr_nf_graph g;
    float lat[TSR_NF_PLATFORMS], lat_min[TSR_NF_PLATFORMS], lat_max[TSR_NF_PLATFORMS]; /* ms */
    float *node_ms; /* (g.n, TSR_NF_PLATFORMS) per-node medians */
} tsr_nf_latnet;

typedef struct {
    int n;
    tsr_nf_latnet *nets;
} tsr_nf_latset;

/* one JSON line of the data set file for network id */
void tsr_nf_latnet_write(FILE *f, const tsr_nf_latnet *n, int id);
tsr_status tsr_nf_latset_load(tsr_nf_latset *s, const char *path);
/* the same from memory; path names the source in errors */
tsr_status tsr_nf_latset_parse(tsr_nf_latset *s, const char *text, size_t len, const char *path);
void tsr_nf_latset_free(tsr_nf_latset *s);
/* removes the networks of the families flagged in drop, keeping the others
 * in file order (the same set as a file without those lines); returns how
 * many were removed */
int tsr_nf_latset_drop_families(tsr_nf_latset *s, const bool drop[TSR_NF_FAMILIES]);

/* kernel classes of the kernel-sum model: the operators, with Conv split
 * into pointwise, k x k stride 1, k x k strided and grouped/depthwise */
#define TSR_NF_KERNEL_CLASSES (TSR_NF_OPS + 4)
#define TSR_NF_KERNEL_FEATS 4 /* [1, MFLOPs, Mmem, Mcol] */

/* latency predictors: narformer (latency head), gnn (NNLP-style: 2
 * SAGEConv layers + static branch), kernel-sum (per-kernel-class least squares
 * on [1, MFLOPs, Mmem, Mcol], summed), flops ([1, GFLOPs, Gmem]) */
typedef struct {
    int method, platform;
    tsr_nf_model nf;
    tsr_params params;
    tsr_tensor *w[12];
    double coef[3];
    double kcoef[TSR_NF_KERNEL_CLASSES][TSR_NF_KERNEL_FEATS];
    float y_scale;
    /* narformer/gnn with a prior: the network predicts a factor on the
     * kernel-sum estimate (kcoef, fitted on the same training networks), so
     * the prediction scales with the network's operators even outside the
     * sizes trained on (the sin/cos codes of sizes and FLOPs wrap there) */
    bool prior;
} tsr_nf_lat_pred;

typedef struct {
    int method;
    tsr_nf_cfg cfg; /* narformer */
    int hidden;     /* gnn width */
    int batch;      /* networks per step */
    bool prior;     /* narformer/gnn: predict a factor on the kernel-sum estimate */
} tsr_nf_lat_opts;

tsr_nf_lat_opts tsr_nf_lat_default_opts(int method);
/* trains on networks ids[0..n_train) of s for one platform (to->out gets
 * the weights of narformer/gnn) */
tsr_status tsr_nf_lat_fit(tsr_nf_lat_pred *p, const tsr_nf_lat_opts *o, const tsr_nf_latset *s, int platform,
                          const int32_t *ids, int n_train, const tsr_train_opts *to, tsr_train_result *res);
/* predicted ms of one graph; c: a scratch context (reset after) or NULL */
float tsr_nf_lat_predict_graph(const tsr_nf_lat_pred *p, const tsr_nf_graph *g, tsr_ctx *c);
/* the kernel-sum estimate (ms) of a graph from p->kcoef (kernel-sum, or the prior) */
double tsr_nf_lat_kernel_sum(const tsr_nf_lat_pred *p, const tsr_nf_graph *g);
void tsr_nf_lat_predict(const tsr_nf_lat_pred *p, const tsr_nf_latset *s, const int32_t *ids, int n, float *out);
/* a narformer latency predictor written by tsr_nf_lat_fit */
tsr_status tsr_nf_lat_load(tsr_nf_lat_pred *p, const char *path);
void tsr_nf_lat_pred_free(tsr_nf_lat_pred *p);

/* `tessera serve` endpoint POST /v1/latency (serve.c): ONNX bytes in,
 * predicted ms out (a tsr_serve_endpoint, see tessera/serve.h) */
struct tsr_serve_endpoint;
extern const struct tsr_serve_endpoint tsr_narformer_serve_endpoint;
