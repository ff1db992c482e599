/* narformer: the latency runner. Executes an op graph (from netgen.c or an
 * ONNX file) for real at its batch on tessera's CPU ops (conv2d, pools,
 * batch norm, activations, elementwise, linear, concat) with random
 * weights, and times it: warm-up runs, then repeated timed runs; the
 * network's latency is the median, its spread the min/max, and each node's
 * latency the median of its own timings (the per-operator figures the
 * kernel-sum baseline learns from).
 *
 * Operators without a kernel of their own are composed from existing ops,
 * as the engine would run them: Clip (ReLU6) = relu(x) - relu(x - 6),
 * HardSigmoid = (relu(x + 3) - relu(x - 3)) / 6, HardSwish = x *
 * HardSigmoid(x). Pads are taken as symmetric (the token keeps one). */
#include "tessera/narformer.h"
#include "tessera/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int n_in;
    int in[8];
    tsr_tensor *w, *b, *rm, *rv; /* conv/gemm weight + bias; BN scale, shift, stats */
} run_node;

/* seconds on the clock the options ask for: wall (monotonic) or the
 * calling thread's CPU time, which leaves out the time the thread was
 * descheduled (a machine shared with other jobs) */
static double now(bool cpu) {
    if (!cpu) return tsr_time();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static tsr_status unsupported(const tsr_nf_graph *g, int i, const char *why) {
    return tsr_errorf(TSR_ERR_FORMAT, "narformer runner: node %d (%s): %s", i, tsr_nf_op_name(g->nodes[i].op), why);
}

static bool same_shape(const tsr_tensor *t, const tsr_nf_node *nd) {
    if (t->ndim != nd->ndim) return false;
    for (int k = 0; k < nd->ndim; k++)
        if (t->shape[k] != nd->shape[k]) return false;
    return true;
}

/* weights for every node, checked for what the runner can execute */
static tsr_status prepare(const tsr_nf_graph *g, tsr_ctx *wc, run_node *rn, tsr_rng *r) {
    for (int i = 0; i < g->n; i++) rn[i].n_in = 0;
    for (int e = 0; e < g->n_edges; e++) {
        run_node *d = &rn[g->edst[e]];
        if (d->n_in >= 8) return unsupported(g, g->edst[e], "more than 8 inputs");
        d->in[d->n_in++] = g->esrc[e];
    }
    for (int i = 0; i < g->n; i++) {
        const tsr_nf_node *nd = &g->nodes[i];
        run_node *q = &rn[i];
        int need = 1;
        switch (nd->op) {
        case TSR_NF_OP_INPUT: need = 0; break;
        case TSR_NF_OP_ADD:
        case TSR_NF_OP_MUL:
        case TSR_NF_OP_SUB: need = 2; break;
        case TSR_NF_OP_CONCAT: need = -1; break;
        case TSR_NF_OP_CONV: {
            const tsr_nf_node *x = &g->nodes[q->n_in ? q->in[0] : 0];
            if (q->n_in != 1 || x->ndim != 4 || nd->ndim != 4) return unsupported(g, i, "needs one NCHW input");
            int k = (int)nd->attr[0], grp = (int)nd->attr[4];
            if (k < 1 || grp < 1 || x->shape[1] % grp || nd->shape[1] % grp) return unsupported(g, i, "bad kernel or group");
            q->w = tsr_new(wc, TSR_F32, TSR_DIMS(nd->shape[1], x->shape[1] / grp, k, k));
            float bound = 1.0f / sqrtf((float)(x->shape[1] / grp * k * k));
            tsr_init_uniform(q->w, r, -bound, bound);
            if (nd->attr[5] != 0) {
                q->b = tsr_new(wc, TSR_F32, TSR_DIMS(nd->shape[1]));
                tsr_init_uniform(q->b, r, -bound, bound);
            }
            break;
        }
        case TSR_NF_OP_GEMM: {
            const tsr_nf_node *x = &g->nodes[q->n_in ? q->in[0] : 0];
            if (q->n_in != 1 || x->ndim != 2 || nd->ndim != 2) return unsupported(g, i, "needs one 2-D input");
            q->w = tsr_new(wc, TSR_F32, TSR_DIMS(nd->shape[1], x->shape[1]));
            float bound = 1.0f / sqrtf((float)x->shape[1]);
            tsr_init_uniform(q->w, r, -bound, bound);
            q->b = tsr_new(wc, TSR_F32, TSR_DIMS(nd->shape[1]));
            tsr_init_uniform(q->b, r, -bound, bound);
            break;
        }
        case TSR_NF_OP_BN: {
            if (nd->ndim != 4) return unsupported(g, i, "needs an NCHW input");
            int64_t C = nd->shape[1];
            q->w = tsr_new(wc, TSR_F32, TSR_DIMS(C));
            q->b = tsr_new(wc, TSR_F32, TSR_DIMS(C));
            q->rm = tsr_new(wc, TSR_F32, TSR_DIMS(C));
            q->rv = tsr_new(wc, TSR_F32, TSR_DIMS(C));
            tsr_init_uniform(q->w, r, 0.5f, 1.5f);
            tsr_init_uniform(q->b, r, -0.1f, 0.1f);
            tsr_init_uniform(q->rm, r, -0.1f, 0.1f);
            tsr_init_uniform(q->rv, r, 0.5f, 1.5f);
            break;
        }
        case TSR_NF_OP_MAXPOOL:
        case TSR_NF_OP_AVGPOOL:
            if (nd->ndim != 4 || nd->attr[0] < 1 || nd->attr[1] < 1) return unsupported(g, i, "needs an NCHW input and a kernel");
            break;
        case TSR_NF_OP_GAP:
            if (nd->ndim != 4) return unsupported(g, i, "needs an NCHW input");
            break;
        case TSR_NF_OP_RELU:
        case TSR_NF_OP_CLIP:
        case TSR_NF_OP_SIGMOID:
        case TSR_NF_OP_TANH:
        case TSR_NF_OP_HARDSIGMOID:
        case TSR_NF_OP_HARDSWISH:
        case TSR_NF_OP_FLATTEN:
        case TSR_NF_OP_RESHAPE:
        case TSR_NF_OP_IDENTITY: break;
        default: return unsupported(g, i, "no kernel for this operator in the runner");
        }
        if (need >= 0 && q->n_in != need) return unsupported(g, i, "wrong number of inputs");
        if (need < 0 && q->n_in < 1) return unsupported(g, i, "no inputs");
    }
    return tsr_ok();
}

static tsr_tensor *hardsigmoid(tsr_ctx *c, tsr_tensor *x) {
    return tsr_scale(c, tsr_sub(c, tsr_relu(c, tsr_add_scalar(c, x, 3)), tsr_relu(c, tsr_add_scalar(c, x, -3))), 1.0f / 6);
}

/* one node's forward */
static tsr_tensor *run_one(tsr_ctx *c, const tsr_nf_node *nd, const run_node *q, tsr_tensor **val, tsr_rng *r) {
    tsr_tensor *x = q->n_in ? val[q->in[0]] : NULL;
    switch (nd->op) {
    case TSR_NF_OP_INPUT: {
        tsr_tensor *t = tsr_new(c, TSR_F32, nd->ndim, nd->shape);
        for (int64_t k = 0; k < t->numel; k++) tsr_f32(t)[k] = tsr_rng_uniform(r) - 0.5f;
        return t;
    }
    case TSR_NF_OP_CONV: {
        int s = (int)nd->attr[1], p = (int)nd->attr[2], d = (int)nd->attr[3];
        tsr_conv_opts o = {.stride = {s, s}, .pad = {p, p}, .dil = {d, d}, .groups = (int)nd->attr[4]};
        return tsr_conv2d(c, x, q->w, q->b, &o);
    }
    case TSR_NF_OP_BN: return tsr_batchnorm(c, x, q->w, q->b, q->rm, q->rv, 0.1f, 1e-5f);
    case TSR_NF_OP_RELU: return tsr_relu(c, x);
    case TSR_NF_OP_CLIP: return tsr_sub(c, tsr_relu(c, x), tsr_relu(c, tsr_add_scalar(c, x, -6)));
    case TSR_NF_OP_SIGMOID: return tsr_sigmoid(c, x);
    case TSR_NF_OP_TANH: return tsr_tanh(c, x);
    case TSR_NF_OP_HARDSIGMOID: return hardsigmoid(c, x);
    case TSR_NF_OP_HARDSWISH: return tsr_mul(c, x, hardsigmoid(c, x));
    case TSR_NF_OP_ADD: return tsr_add(c, x, val[q->in[1]]);
    case TSR_NF_OP_SUB: return tsr_sub(c, x, val[q->in[1]]);
    case TSR_NF_OP_MUL: return tsr_mul(c, x, val[q->in[1]]);
    case TSR_NF_OP_MAXPOOL:
    case TSR_NF_OP_AVGPOOL: {
        int k[2] = {(int)nd->attr[0], (int)nd->attr[0]}, s[2] = {(int)nd->attr[1], (int)nd->attr[1]};
        int p[2] = {(int)nd->attr[2], (int)nd->attr[2]};
        return nd->op == TSR_NF_OP_MAXPOOL ? tsr_maxpool2d(c, x, k, s, p) : tsr_avgpool2d(c, x, k, s, p);
    }
    case TSR_NF_OP_GAP: {
        tsr_tensor *m = tsr_mean(c, tsr_reshape(c, x, TSR_DIMS(x->shape[0], x->shape[1], -1)), 2, false);
        return tsr_reshape(c, m, TSR_DIMS(x->shape[0], x->shape[1], 1, 1));
    }
    case TSR_NF_OP_FLATTEN:
    case TSR_NF_OP_RESHAPE: return tsr_reshape(c, x, nd->ndim, nd->shape);
    case TSR_NF_OP_GEMM: return tsr_linear(c, x, q->w, q->b);
    case TSR_NF_OP_CONCAT: {
        tsr_tensor *xs[8];
        for (int k = 0; k < q->n_in; k++) xs[k] = val[q->in[k]];
        return tsr_concat(c, xs, q->n_in, 1);
    }
    default: return x; /* Identity */
    }
}

tsr_status tsr_nf_measure(const tsr_nf_graph *g, const tsr_nf_measure_opts *o, tsr_nf_measure_result *res) {
    memset(res, 0, sizeof *res);
    if (g->n < 1 || g->n > TSR_NF_MAX_NODES) return tsr_errorf(TSR_ERR_ARG, "narformer runner: %d nodes", g->n);
    if (o->repeats < 1 || o->repeats > 10000 || o->warmup < 0 || o->warmup > 10000)
        return tsr_errorf(TSR_ERR_ARG, "narformer runner: repeats %d / warm-up %d out of range", o->repeats, o->warmup);
    double elems = 0;
    for (int i = 0; i < g->n; i++) {
        double n = 1;
        for (int k = 0; k < g->nodes[i].ndim; k++) n *= (double)g->nodes[i].shape[k];
        elems += n;
    }
    if (elems > 4e8) return tsr_errorf(TSR_ERR_ARG, "narformer runner: the network's activations (%.0f M floats) are too large", elems / 1e6);
    run_node *rn = calloc((size_t)g->n, sizeof *rn);
    tsr_tensor **val = calloc((size_t)g->n, sizeof *val);
    double *node_t = calloc((size_t)g->n * (size_t)o->repeats, sizeof(double));
    double *tot = calloc((size_t)o->repeats, sizeof(double));
    res->node_ms = calloc((size_t)g->n, sizeof(double));
    TSR_ASSERT(rn && val && node_t && tot && res->node_ms);
    tsr_ctx wc, c;
    tsr_ctx_init(&wc, 16 << 20);
    tsr_ctx_init(&c, 64 << 20);
    c.grad_enabled = false;
    c.training = false;
    tsr_rng r;
    tsr_rng_seed(&r, o->seed);
    tsr_status st = prepare(g, &wc, rn, &r);
    for (int rep = -o->warmup; rep < o->repeats && !st.code; rep++) {
        double t0 = now(o->cpu_clock), t_in = 0; /* filling the inputs is not the network's time */
        for (int i = 0; i < g->n; i++) {
            double a = now(o->cpu_clock);
            val[i] = run_one(&c, &g->nodes[i], &rn[i], val, &r);
            double b = now(o->cpu_clock);
            if (g->nodes[i].op == TSR_NF_OP_INPUT) t_in += b - a;
            if (rep >= 0) node_t[(size_t)i * o->repeats + rep] = 1e3 * (b - a);
        }
        double t1 = now(o->cpu_clock) - t_in;
        if (rep == -o->warmup || (o->warmup == 0 && rep == 0))
            for (int i = 0; i < g->n && !st.code; i++)
                if (g->nodes[i].op != TSR_NF_OP_INPUT && !same_shape(val[i], &g->nodes[i]))
                    st = unsupported(g, i, "its output shape differs from the graph's (asymmetric pads or ceil mode?)");
        if (rep >= 0) tot[rep] = 1e3 * (t1 - t0);
        tsr_ctx_reset(&c);
    }
    if (!st.code) {
        for (int i = 0; i < g->n; i++) res->node_ms[i] = median(node_t + (size_t)i * o->repeats, o->repeats);
        res->median_ms = median(tot, o->repeats); /* sorts tot */
        res->min_ms = tot[0];
        res->max_ms = tot[o->repeats - 1];
    } else {
        free(res->node_ms);
        res->node_ms = NULL;
    }
    tsr_ctx_free(&c);
    tsr_ctx_free(&wc);
    free(rn);
    free(val);
    free(node_t);
    free(tot);
    return st;
}

void tsr_nf_measure_result_free(tsr_nf_measure_result *r) {
    free(r->node_ms);
    r->node_ms = NULL;
}
