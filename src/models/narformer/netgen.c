/* narformer: the network generator of the latency data set. Ten families
 * as NNLQP draws them (ResNet, VGG, MobileNetV2, MobileNetV3, MnasNet,
 * SqueezeNet, GoogLeNet, AlexNet, EfficientNet-B0, NAS-Bench-201 cells),
 * each in random variants of width, depth, kernel sizes and input
 * resolution, built directly as op graphs: the same nodes, attributes,
 * shapes and FLOPs/params/memory counts that tsr_nf_graph_from_onnx gives
 * for the exported network (BatchNormalization kept as its own node, ReLU6
 * as Clip, SiLU as Sigmoid + Mul). A graph's edges are added in input
 * order, so the runner (measure.c) can execute it.
 *
 * Resolutions and widths are scaled down from the papers' (inputs 32-96
 * pixels) so that one network runs in milliseconds on one core. */
#include "tessera/narformer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const FAMILY_NAMES[TSR_NF_FAMILIES] = {
    "resnet", "vgg", "mobilenetv2", "mobilenetv3", "mnasnet",
    "squeezenet", "googlenet", "alexnet", "efficientnet", "nb201"};

const char *tsr_nf_family_name(int f) { return f >= 0 && f < TSR_NF_FAMILIES ? FAMILY_NAMES[f] : "?"; }

int tsr_nf_family_parse(const char *s) {
    for (int i = 0; i < TSR_NF_FAMILIES; i++)
        if (!strcmp(s, FAMILY_NAMES[i])) return i;
    return -1;
}

/* ------------------------------------------------------------ node builders */

static int64_t node_numel(const tsr_nf_node *n) {
    int64_t v = 1;
    for (int i = 0; i < n->ndim; i++) v *= n->shape[i];
    return v;
}

static int add_node(tsr_nf_graph *g, tsr_nf_node *t, const int *ins, int n_in) {
    /* as tsr_nf_graph_from_onnx counts it: an operator's output elements +
     * parameters; the network input is no operator and counts 0 */
    t->mem = t->op == TSR_NF_OP_INPUT ? 0 : (double)node_numel(t) + t->params;
    int id = tsr_nf_graph_add(g, t);
    for (int i = 0; i < n_in; i++) tsr_nf_graph_edge(g, ins[i], id);
    return id;
}

static const tsr_nf_node *N_(tsr_nf_graph *g, int i) { return &g->nodes[i]; }

static int b_input(tsr_nf_graph *g, int c, int h, int w) {
    tsr_nf_node t = {.op = TSR_NF_OP_INPUT, .ndim = 4, .shape = {1, c, h, w}};
    return add_node(g, &t, NULL, 0);
}

static int out_dim(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

static int b_conv(tsr_nf_graph *g, int x, int cout, int k, int s, int p, int groups, bool bias) {
    const tsr_nf_node *in = N_(g, x);
    int cin = (int)in->shape[1];
    if (groups < 1 || cin % groups || cout % groups) groups = 1;
    tsr_nf_node t = {.op = TSR_NF_OP_CONV, .ndim = 4};
    t.shape[0] = in->shape[0];
    t.shape[1] = cout;
    t.shape[2] = out_dim((int)in->shape[2], k, s, p);
    t.shape[3] = out_dim((int)in->shape[3], k, s, p);
    double ck = (double)(cin / groups) * k * k;
    t.flops = (double)t.shape[0] * cout * t.shape[2] * t.shape[3] * (2 * ck - 1 + bias);
    t.params = (double)cout * (ck + bias);
    float a[6] = {(float)k, (float)s, (float)p, 1, (float)groups, bias ? 1.0f : 0.0f};
    t.n_attr = 6;
    memcpy(t.attr, a, sizeof a);
    return add_node(g, &t, &x, 1);
}

/* an op whose output has its input's shape */
static int b_unary(tsr_nf_graph *g, int op, int x) {
    tsr_nf_node t = *N_(g, x);
    t.op = op;
    t.n_attr = 0;
    t.flops = t.params = 0;
    double n = (double)node_numel(&t);
    if (op == TSR_NF_OP_BN) t.flops = 4 * n, t.params = 4.0 * (double)t.shape[1];
    else if (op == TSR_NF_OP_SIGMOID || op == TSR_NF_OP_HARDSIGMOID || op == TSR_NF_OP_HARDSWISH) t.flops = n;
    return add_node(g, &t, &x, 1);
}

static int b_binary(tsr_nf_graph *g, int op, int a, int b) {
    tsr_nf_node t = *N_(g, a);
    const tsr_nf_node *B = N_(g, b);
    for (int i = 0; i < t.ndim; i++)
        if (B->shape[i] > t.shape[i]) t.shape[i] = B->shape[i];
    t.op = op;
    t.n_attr = 0;
    t.params = 0;
    t.flops = (double)node_numel(&t);
    int ins[2] = {a, b};
    return add_node(g, &t, ins, 2);
}

static int b_pool(tsr_nf_graph *g, int op, int x, int k, int s, int p) {
    tsr_nf_node t = *N_(g, x);
    t.op = op;
    t.shape[2] = out_dim((int)t.shape[2], k, s, p);
    t.shape[3] = out_dim((int)t.shape[3], k, s, p);
    t.params = 0;
    t.flops = op == TSR_NF_OP_AVGPOOL ? (double)node_numel(&t) * k * k : 0;
    float a[3] = {(float)k, (float)s, (float)p};
    t.n_attr = 3;
    memcpy(t.attr, a, sizeof a);
    return add_node(g, &t, &x, 1);
}

static int b_gap(tsr_nf_graph *g, int x) {
    tsr_nf_node t = *N_(g, x);
    t.op = TSR_NF_OP_GAP;
    t.n_attr = 0;
    t.params = 0;
    t.flops = (double)node_numel(&t);
    t.shape[2] = t.shape[3] = 1;
    return add_node(g, &t, &x, 1);
}

static int b_flatten(tsr_nf_graph *g, int x) {
    const tsr_nf_node *in = N_(g, x);
    tsr_nf_node t = {.op = TSR_NF_OP_FLATTEN, .ndim = 2};
    t.shape[0] = in->shape[0];
    t.shape[1] = node_numel(in) / in->shape[0];
    return add_node(g, &t, &x, 1);
}

static int b_gemm(tsr_nf_graph *g, int x, int nout) {
    const tsr_nf_node *in = N_(g, x);
    tsr_nf_node t = {.op = TSR_NF_OP_GEMM, .ndim = 2, .n_attr = 1, .attr = {1}};
    t.shape[0] = in->shape[0];
    t.shape[1] = nout;
    double K = (double)in->shape[1];
    t.flops = (double)t.shape[0] * nout * (2 * K - 1 + 1);
    t.params = (double)nout * (K + 1);
    return add_node(g, &t, &x, 1);
}

static int b_concat(tsr_nf_graph *g, const int *xs, int n) {
    tsr_nf_node t = *N_(g, xs[0]);
    t.op = TSR_NF_OP_CONCAT;
    t.n_attr = 0;
    t.flops = t.params = 0;
    t.shape[1] = 0;
    for (int i = 0; i < n; i++) t.shape[1] += N_(g, xs[i])->shape[1];
    return add_node(g, &t, xs, n);
}

/* ------------------------------------------------------------ blocks */

enum { ACT_NONE, ACT_RELU, ACT_RELU6, ACT_HSWISH, ACT_SWISH };

static int act(tsr_nf_graph *g, int x, int a) {
    switch (a) {
    case ACT_RELU: return b_unary(g, TSR_NF_OP_RELU, x);
    case ACT_RELU6: return b_unary(g, TSR_NF_OP_CLIP, x);
    case ACT_HSWISH: return b_unary(g, TSR_NF_OP_HARDSWISH, x);
    case ACT_SWISH: return b_binary(g, TSR_NF_OP_MUL, x, b_unary(g, TSR_NF_OP_SIGMOID, x));
    default: return x;
    }
}

/* conv (no bias) + BN + activation */
static int cba(tsr_nf_graph *g, int x, int cout, int k, int s, int groups, int a) {
    return act(g, b_unary(g, TSR_NF_OP_BN, b_conv(g, x, cout, k, s, k / 2, groups, false)), a);
}

static int Hof(tsr_nf_graph *g, int x) { return (int)N_(g, x)->shape[2]; }
static int Cof(tsr_nf_graph *g, int x) { return (int)N_(g, x)->shape[1]; }

/* squeeze-and-excitation: GAP -> 1x1 conv -> act -> 1x1 conv -> gate -> Mul */
static int se(tsr_nf_graph *g, int x, int squeeze, int a, int gate_op) {
    int C = Cof(g, x);
    if (squeeze < 1) squeeze = 1;
    int s = b_gap(g, x);
    s = act(g, b_conv(g, s, squeeze, 1, 1, 0, 1, true), a);
    s = b_unary(g, gate_op, b_conv(g, s, C, 1, 1, 0, 1, true));
    return b_binary(g, TSR_NF_OP_MUL, x, s);
}

/* inverted residual (MobileNetV2/V3, MnasNet, EfficientNet MBConv) */
static int mbconv(tsr_nf_graph *g, int x, int cout, int k, int s, int expand, int a, int se_div, int gate_op) {
    int cin = Cof(g, x), hid = cin * expand;
    int h = x;
    if (expand != 1) h = cba(g, h, hid, 1, 1, 1, a);
    if (Hof(g, h) < k) k = 3;
    h = cba(g, h, hid, k, s, hid, a);
    if (se_div > 0) h = se(g, h, hid / se_div, a == ACT_SWISH ? ACT_SWISH : ACT_RELU, gate_op);
    h = cba(g, h, cout, 1, 1, 1, ACT_NONE);
    if (s == 1 && cin == cout) h = b_binary(g, TSR_NF_OP_ADD, x, h);
    return h;
}

static int rnd(tsr_rng *r, int lo, int hi) { return lo + (int)tsr_rng_below(r, (uint32_t)(hi - lo + 1)); }
static int pick(tsr_rng *r, const int *v, int n) { return v[tsr_rng_below(r, (uint32_t)n)]; }
static double pickd(tsr_rng *r, const double *v, int n) { return v[tsr_rng_below(r, (uint32_t)n)]; }
static int ch(double base, double mult) { /* channels rounded to a multiple of 8, >= 8 */
    int c = (int)(base * mult / 8 + 0.5) * 8;
    return c < 8 ? 8 : c;
}

static int classifier(tsr_nf_graph *g, int x, int classes) {
    return b_gemm(g, b_flatten(g, b_gap(g, x)), classes);
}

/* ------------------------------------------------------------ families */

static const int CLASSES[] = {10, 100, 1000};

/* avg: the average-pooling variant of a family (ResNet-D shortcuts, an
 * average-pooled GoogLeNet pool branch); drawn from its own stream, so the
 * rest of a network is the same with or without it */
static void fam_resnet(tsr_nf_graph *g, tsr_rng *r, bool avg) {
    const int res_v[] = {32, 48, 64};
    const double w_v[] = {0.25, 0.375, 0.5};
    int res = pick(r, res_v, 3);
    double w = pickd(r, w_v, 3);
    bool bottleneck = tsr_rng_below(r, 3) == 0;
    int x = b_input(g, 3, res, res);
    int stem_k = res >= 96 ? 7 : 3;
    x = cba(g, x, ch(64, w), stem_k, res >= 64 ? 2 : 1, 1, ACT_RELU);
    if (res >= 64) x = b_pool(g, TSR_NF_OP_MAXPOOL, x, 3, 2, 1);
    for (int st = 0; st < 4; st++) {
        int blocks = rnd(r, 1, bottleneck ? 3 : 3);
        int width = ch(64 << st, w), out = bottleneck ? width * 4 : width;
        for (int b = 0; b < blocks; b++) {
            int s = st > 0 && b == 0 ? 2 : 1;
            int h;
            if (bottleneck) {
                h = cba(g, x, width, 1, 1, 1, ACT_RELU);
                h = cba(g, h, width, 3, s, 1, ACT_RELU);
                h = cba(g, h, out, 1, 1, 1, ACT_NONE);
            } else {
                int k = tsr_rng_below(r, 4) == 0 ? 5 : 3;
                h = cba(g, x, width, k, s, 1, ACT_RELU);
                h = cba(g, h, out, 3, 1, 1, ACT_NONE);
            }
            int sc = x;
            if (avg && s == 2 && Hof(g, x) % 2 == 0) /* ResNet-D: 2x2 average pool, then a 1x1 conv */
                sc = b_unary(g, TSR_NF_OP_BN, b_conv(g, b_pool(g, TSR_NF_OP_AVGPOOL, x, 2, 2, 0), out, 1, 1, 0, 1, false));
            else if (s != 1 || Cof(g, x) != out)
                sc = b_unary(g, TSR_NF_OP_BN, b_conv(g, x, out, 1, s, 0, 1, false));
            x = b_unary(g, TSR_NF_OP_RELU, b_binary(g, TSR_NF_OP_ADD, h, sc));
        }
    }
    classifier(g, x, pick(r, CLASSES, 3));
}

static void fam_vgg(tsr_nf_graph *g, tsr_rng *r) {
    const int res_v[] = {32, 48, 64};
    const double w_v[] = {0.125, 0.1875, 0.25, 0.375};
    int res = pick(r, res_v, 3);
    double w = pickd(r, w_v, 4);
    bool bn = tsr_rng_below(r, 2);
    int x = b_input(g, 3, res, res);
    const int base[5] = {64, 128, 256, 512, 512};
    for (int st = 0; st < 5; st++) {
        int n = rnd(r, 1, st < 2 ? 2 : 3);
        for (int i = 0; i < n; i++) {
            int k = tsr_rng_below(r, 5) == 0 ? 5 : 3;
            if (bn) x = cba(g, x, ch(base[st], w), k, 1, 1, ACT_RELU);
            else x = b_unary(g, TSR_NF_OP_RELU, b_conv(g, x, ch(base[st], w), k, 1, k / 2, 1, true));
        }
        if (Hof(g, x) >= 2) x = b_pool(g, TSR_NF_OP_MAXPOOL, x, 2, 2, 0);
    }
    x = b_flatten(g, x);
    int hid = pick(r, (const int[]){256, 512, 1024}, 3);
    x = b_unary(g, TSR_NF_OP_RELU, b_gemm(g, x, hid));
    x = b_unary(g, TSR_NF_OP_RELU, b_gemm(g, x, hid));
    b_gemm(g, x, pick(r, CLASSES, 3));
}

/* MobileNetV2 / MnasNet / EfficientNet / MobileNetV3 share the stage table
 * form {expand, channels, repeats, stride}; variants scale width, depth
 * and pick kernels per stage */
typedef struct { int t, c, n, s; } stage;

static void fam_mbnet(tsr_nf_graph *g, tsr_rng *r, int family) {
    static const stage V2[7] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    static const stage MN[7] = {{1, 16, 1, 1}, {3, 24, 3, 2}, {3, 40, 3, 2}, {6, 80, 3, 2}, {6, 96, 2, 1}, {6, 192, 4, 2}, {6, 320, 1, 1}};
    static const stage EF[7] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 40, 2, 2}, {6, 80, 3, 2}, {6, 112, 3, 1}, {6, 192, 4, 2}, {6, 320, 1, 1}};
    static const stage V3[7] = {{1, 16, 1, 2}, {4, 24, 2, 2}, {3, 40, 3, 2}, {6, 80, 4, 2}, {6, 112, 2, 1}, {6, 160, 3, 2}, {6, 160, 0, 1}};
    const stage *tab = family == TSR_NF_FAM_MOBILENETV2 ? V2 : family == TSR_NF_FAM_MNASNET ? MN
                     : family == TSR_NF_FAM_EFFICIENTNET ? EF : V3;
    const int res_v[] = {48, 64, 96};
    const double w_v[] = {0.35, 0.5, 0.75, 1.0};
    const double d_v[] = {0.5, 0.75, 1.0, 1.25};
    int res = pick(r, res_v, 3);
    double w = pickd(r, w_v, 4), d = pickd(r, d_v, 4);
    int a = family == TSR_NF_FAM_MOBILENETV2 ? ACT_RELU6 : family == TSR_NF_FAM_MNASNET ? ACT_RELU
          : family == TSR_NF_FAM_EFFICIENTNET ? ACT_SWISH : ACT_HSWISH;
    int x = b_input(g, 3, res, res);
    x = cba(g, x, ch(family == TSR_NF_FAM_MOBILENETV3 ? 16 : 32, w), 3, 2, 1, a);
    for (int st = 0; st < 7; st++) {
        int n = (int)ceil(tab[st].n * d);
        if (tab[st].n == 0) n = 0;
        int k = family == TSR_NF_FAM_MOBILENETV2 ? 3 : pick(r, (const int[]){3, 5}, 2);
        int cout = ch(tab[st].c, w);
        for (int i = 0; i < n; i++) {
            int s = i == 0 ? tab[st].s : 1;
            int e = tab[st].t;
            if (family != TSR_NF_FAM_MOBILENETV2 && e > 1 && tsr_rng_below(r, 3) == 0) e = e == 6 ? 3 : 6;
            int se_div = 0, gate = TSR_NF_OP_SIGMOID, aa = a;
            if (family == TSR_NF_FAM_EFFICIENTNET) se_div = 4 * e;
            if (family == TSR_NF_FAM_MOBILENETV3) {
                se_div = st >= 2 && st != 3 ? 4 : 0;
                gate = TSR_NF_OP_HARDSIGMOID;
                aa = st < 2 ? ACT_RELU : ACT_HSWISH;
            }
            if (family == TSR_NF_FAM_MNASNET && st >= 2 && tsr_rng_below(r, 2)) se_div = 4, gate = TSR_NF_OP_SIGMOID;
            x = mbconv(g, x, cout, k, s, e, aa, se_div, gate);
        }
    }
    x = cba(g, x, ch(family == TSR_NF_FAM_MOBILENETV3 ? 960 : 1280, w), 1, 1, 1, a);
    x = b_flatten(g, b_gap(g, x));
    if (family == TSR_NF_FAM_MOBILENETV3) x = b_unary(g, TSR_NF_OP_HARDSWISH, b_gemm(g, x, ch(1280, w)));
    b_gemm(g, x, pick(r, CLASSES, 3));
}

static void fam_squeezenet(tsr_nf_graph *g, tsr_rng *r) {
    const int res_v[] = {48, 64, 96};
    const double w_v[] = {0.25, 0.5, 0.75};
    int res = pick(r, res_v, 3);
    double w = pickd(r, w_v, 3);
    bool v11 = tsr_rng_below(r, 2);
    int x = b_input(g, 3, res, res);
    x = b_unary(g, TSR_NF_OP_RELU, b_conv(g, x, ch(v11 ? 64 : 96, w), v11 ? 3 : 7, 2, 0, 1, true));
    x = b_pool(g, TSR_NF_OP_MAXPOOL, x, 3, 2, 0);
    const int sq[8] = {16, 16, 32, 32, 48, 48, 64, 64};
    int n_fire = rnd(r, 6, 8);
    for (int i = 0; i < n_fire; i++) {
        int s = b_unary(g, TSR_NF_OP_RELU, b_conv(g, x, ch(sq[i], w), 1, 1, 0, 1, true));
        int e1 = b_unary(g, TSR_NF_OP_RELU, b_conv(g, s, ch(4 * sq[i], w), 1, 1, 0, 1, true));
        int k = tsr_rng_below(r, 4) == 0 ? 5 : 3;
        int e3 = b_unary(g, TSR_NF_OP_RELU, b_conv(g, s, ch(4 * sq[i], w), k, 1, k / 2, 1, true));
        int cat[2] = {e1, e3};
        x = b_concat(g, cat, 2);
        if ((i == 1 || i == 3) && Hof(g, x) >= 6) x = b_pool(g, TSR_NF_OP_MAXPOOL, x, 3, 2, 0);
    }
    int classes = pick(r, CLASSES, 3);
    x = b_unary(g, TSR_NF_OP_RELU, b_conv(g, x, classes, 1, 1, 0, 1, true));
    b_flatten(g, b_gap(g, x));
}

static void fam_googlenet(tsr_nf_graph *g, tsr_rng *r, bool avg) {
    const int res_v[] = {48, 64, 80};
    const double w_v[] = {0.25, 0.375, 0.5};
    int res = pick(r, res_v, 3);
    double w = pickd(r, w_v, 3);
    int x = b_input(g, 3, res, res);
    x = cba(g, x, ch(64, w), 7, 2, 1, ACT_RELU);
    x = b_pool(g, TSR_NF_OP_MAXPOOL, x, 3, 2, 1);
    x = cba(g, x, ch(64, w), 1, 1, 1, ACT_RELU);
    x = cba(g, x, ch(192, w), 3, 1, 1, ACT_RELU);
    x = b_pool(g, TSR_NF_OP_MAXPOOL, x, 3, 2, 1);
    /* (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) of inception 3a..5b */
    static const int cfg[9][6] = {{64, 96, 128, 16, 32, 32},     {128, 128, 192, 32, 96, 64},
                                  {192, 96, 208, 16, 48, 64},    {160, 112, 224, 24, 64, 64},
                                  {128, 128, 256, 24, 64, 64},   {112, 144, 288, 32, 64, 64},
                                  {256, 160, 320, 32, 128, 128}, {256, 160, 320, 32, 128, 128},
                                  {384, 192, 384, 48, 128, 128}};
    int n_mod = rnd(r, 5, 9);
    for (int m = 0; m < n_mod; m++) {
        const int *c = cfg[m];
        int b1 = cba(g, x, ch(c[0], w), 1, 1, 1, ACT_RELU);
        int b2 = cba(g, cba(g, x, ch(c[1], w), 1, 1, 1, ACT_RELU), ch(c[2], w), 3, 1, 1, ACT_RELU);
        int k3 = tsr_rng_below(r, 2) ? 5 : 3;
        int b3 = cba(g, cba(g, x, ch(c[3], w), 1, 1, 1, ACT_RELU), ch(c[4], w), k3, 1, 1, ACT_RELU);
        int b4 = cba(g, b_pool(g, avg ? TSR_NF_OP_AVGPOOL : TSR_NF_OP_MAXPOOL, x, 3, 1, 1), ch(c[5], w), 1, 1, 1, ACT_RELU);
        int cat[4] = {b1, b2, b3, b4};
        x = b_concat(g, cat, 4);
        if ((m == 1 || m == 6) && Hof(g, x) >= 4) x = b_pool(g, TSR_NF_OP_MAXPOOL, x, 3, 2, 1);
    }
    classifier(g, x, pick(r, CLASSES, 3));
}

static void fam_alexnet(tsr_nf_graph *g, tsr_rng *r) {
    const int res_v[] = {64, 80, 96};
    const double w_v[] = {0.25, 0.375, 0.5};
    int res = pick(r, res_v, 3);
    double w = pickd(r, w_v, 3);
    int x = b_input(g, 3, res, res);
    int k0 = pick(r, (const int[]){7, 9, 11}, 3);
    x = b_unary(g, TSR_NF_OP_RELU, b_conv(g, x, ch(64, w), k0, 4, 2, 1, true));
    x = b_pool(g, TSR_NF_OP_MAXPOOL, x, 3, 2, 0);
    int k1 = pick(r, (const int[]){3, 5}, 2);
    x = b_unary(g, TSR_NF_OP_RELU, b_conv(g, x, ch(192, w), k1, 1, k1 / 2, 1, true));
    if (Hof(g, x) >= 3) x = b_pool(g, TSR_NF_OP_MAXPOOL, x, 3, 2, 0);
    int n3 = rnd(r, 2, 4);
    const int c3[4] = {384, 256, 256, 256};
    for (int i = 0; i < n3; i++) x = b_unary(g, TSR_NF_OP_RELU, b_conv(g, x, ch(c3[i], w), 3, 1, 1, 1, true));
    if (Hof(g, x) >= 3) x = b_pool(g, TSR_NF_OP_MAXPOOL, x, 3, 2, 0);
    x = b_flatten(g, x);
    int hid = pick(r, (const int[]){512, 1024, 2048}, 3);
    x = b_unary(g, TSR_NF_OP_RELU, b_gemm(g, x, hid));
    x = b_unary(g, TSR_NF_OP_RELU, b_gemm(g, x, hid));
    b_gemm(g, x, pick(r, CLASSES, 3));
}

/* NB201 cell network: stem, 3 stages of N cells, residual reductions.
 * Cell edge (i -> j) ops: none, skip, 1x1 / 3x3 ReLU-Conv-BN, 3x3 avg pool */
static int nb_cell(tsr_nf_graph *g, int x, const int ops[6], int C) {
    int node[4] = {x, -1, -1, -1};
    int e = 0;
    for (int j = 1; j < 4; j++) {
        int acc = -1;
        for (int i = 0; i < j; i++, e++) {
            if (node[i] < 0 || ops[e] == TSR_NB201_NONE) continue;
            int h = node[i];
            if (ops[e] == TSR_NB201_CONV1 || ops[e] == TSR_NB201_CONV3) {
                int k = ops[e] == TSR_NB201_CONV1 ? 1 : 3;
                h = b_unary(g, TSR_NF_OP_BN, b_conv(g, b_unary(g, TSR_NF_OP_RELU, h), C, k, 1, k / 2, 1, false));
            } else if (ops[e] == TSR_NB201_POOL) h = b_pool(g, TSR_NF_OP_AVGPOOL, h, 3, 1, 1);
            acc = acc < 0 ? h : b_binary(g, TSR_NF_OP_ADD, acc, h);
        }
        node[j] = acc;
    }
    return node[3];
}

static void fam_nb201(tsr_nf_graph *g, tsr_rng *r) {
    int ops[6];
    for (;;) { /* redraw until the output is reached from the input */
        for (int e = 0; e < 6; e++) ops[e] = rnd(r, TSR_NB201_CONV1, TSR_NB201_NONE);
        bool reach[4] = {true, false, false, false};
        int e = 0;
        for (int j = 1; j < 4; j++)
            for (int i = 0; i < j; i++, e++)
                if (reach[i] && ops[e] != TSR_NB201_NONE) reach[j] = true;
        if (reach[3]) break;
    }
    const int C_v[] = {8, 12, 16};
    int C = pick(r, C_v, 3), N = rnd(r, 1, 3), res = pick(r, (const int[]){32, 48}, 2);
    int x = b_input(g, 3, res, res);
    x = b_unary(g, TSR_NF_OP_BN, b_conv(g, x, C, 3, 1, 1, 1, false));
    for (int st = 0; st < 3; st++) {
        if (st > 0) { /* residual reduction block */
            C *= 2;
            int a = b_unary(g, TSR_NF_OP_BN, b_conv(g, b_unary(g, TSR_NF_OP_RELU, x), C, 3, 2, 1, 1, false));
            a = b_unary(g, TSR_NF_OP_BN, b_conv(g, b_unary(g, TSR_NF_OP_RELU, a), C, 3, 1, 1, 1, false));
            int sc = b_conv(g, b_pool(g, TSR_NF_OP_AVGPOOL, x, 2, 2, 0), C, 1, 1, 0, 1, false);
            x = b_binary(g, TSR_NF_OP_ADD, a, sc);
        }
        for (int i = 0; i < N; i++) x = nb_cell(g, x, ops, C);
    }
    x = b_unary(g, TSR_NF_OP_RELU, b_unary(g, TSR_NF_OP_BN, x));
    classifier(g, x, 10);
}

tsr_status tsr_nf_netgen(tsr_nf_graph *g, int family, uint64_t seed) {
    tsr_nf_graph_init(g);
    if (family < 0 || family >= TSR_NF_FAMILIES)
        return tsr_errorf(TSR_ERR_ARG, "narformer: no network family %d", family);
    tsr_rng r;
    tsr_rng_seed(&r, seed * 1000003u + (uint64_t)family);
    tsr_rng rv; /* the pooling variant: half of the ResNet and GoogLeNet networks */
    tsr_rng_seed(&rv, (seed * 1000003u + (uint64_t)family) ^ 0x9e3779b97f4a7c15ull);
    bool avg = tsr_rng_below(&rv, 2) == 1;
    switch (family) {
    case TSR_NF_FAM_RESNET: fam_resnet(g, &r, avg); break;
    case TSR_NF_FAM_VGG: fam_vgg(g, &r); break;
    case TSR_NF_FAM_SQUEEZENET: fam_squeezenet(g, &r); break;
    case TSR_NF_FAM_GOOGLENET: fam_googlenet(g, &r, avg); break;
    case TSR_NF_FAM_ALEXNET: fam_alexnet(g, &r); break;
    case TSR_NF_FAM_NB201: fam_nb201(g, &r); break;
    default: fam_mbnet(g, &r, family); break;
    }
    return tsr_ok();
}
