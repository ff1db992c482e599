/* narformer: the NAR-Former V2 predictor (Yi et al., 2023, sec. 3.3-3.4).
 *
 * A layer (the official GNN_LinearAttn + PreNorm grouped FFN):
 *   x    = x * sigmoid(W_d deg)                       degree gate
 *   Q    = sigmoid(W_qk x + b)                        eq. 3
 *   S    = (Q Q^T / sqrt(D_in)) * A                   neighbours only
 *   S    = S / (rowsum(S) + 1e-6)                     no softmax
 *   x    = relu(l2norm(W_l (S x) + b_l + W_r x))      eq. 4
 *   x    = x + gamma * GFFN(LN(x))                    layer scale 1e-4
 * GFFN: two grouped linears (8 groups, LayerNorm per group output), ReLU
 * between. Heads: latency = sum over tokens ++ relu(W_s static), accuracy
 * = per-layer token means fused by learned sigmoid gates; then
 * fc-relu-fc-relu-fc and -logsigmoid so predictions are positive. */
#include "tessera/narformer.h"
#include "tessera/ops.h"
#include "tessera/ops_graph.h"
#include "tessera/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

tsr_nf_cfg tsr_nf_default_cfg(tsr_nf_head head, int in_dim) {
    tsr_nf_cfg c = {.in_dim = in_dim, .dim = 128, .n_layers = head == TSR_NF_HEAD_ACCURACY ? 3 : 2,
                    .ffn_ratio = 4, .groups = 8, .fc_hidden = 128, .head = head, .degree = true,
                    .dropout = 0.05f, .layer_scale = 1e-4f};
    return c;
}

tsr_status tsr_nf_cfg_check(const tsr_nf_cfg *c) {
    if (c->in_dim < 1 || c->in_dim > 4096 || c->dim < 4 || c->dim > 4096 || c->n_layers < 1 ||
        c->n_layers > 32 || c->ffn_ratio < 1 || c->ffn_ratio > 16 || c->groups < 1 ||
        c->fc_hidden < 1 || c->fc_hidden > 8192 || (c->head != 0 && c->head != 1) ||
        !(c->dropout >= 0 && c->dropout < 1) || !(c->layer_scale >= 0))
        return tsr_errorf(TSR_ERR_ARG, "narformer config out of range (dim %d, layers %d, groups %d)",
                          c->dim, c->n_layers, c->groups);
    if (c->dim % c->groups)
        return tsr_errorf(TSR_ERR_ARG, "narformer: dim %d is not a multiple of groups %d", c->dim, c->groups);
    if (c->head == TSR_NF_HEAD_ACCURACY && (c->n_layers * c->dim) / 4 < 1)
        return tsr_errorf(TSR_ERR_ARG, "narformer: accuracy head needs n_layers*dim >= 4");
    return tsr_ok();
}

static tsr_tensor *P(tsr_nf_model *m, const char *fmt, int i, int ndim, const int64_t *shape, int flags) {
    char name[96];
    snprintf(name, sizeof name, fmt, i);
    return tsr_param_new(&m->params, name, flags, ndim, shape);
}

/* torch.nn.Linear's default init: U(-1/sqrt(in), 1/sqrt(in)) for both */
static void init_linear(tsr_tensor *w, tsr_tensor *b, tsr_rng *r) {
    float bound = 1.0f / sqrtf((float)w->shape[w->ndim - 1]);
    tsr_init_uniform(w, r, -bound, bound);
    if (b) tsr_init_uniform(b, r, -bound, bound);
}

tsr_status tsr_nf_model_init(tsr_nf_model *m, const tsr_nf_cfg *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    tsr_status st = tsr_nf_cfg_check(cfg);
    if (st.code) return st;
    m->cfg = *cfg;
    tsr_params_init(&m->params);
    const int D = cfg->dim, G = cfg->groups, H = cfg->ffn_ratio * D, L = cfg->n_layers;
    m->layers = calloc((size_t)L, sizeof *m->layers);
    TSR_ASSERT(m->layers);
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    const int ND = TSR_PARAM_NO_DECAY;
    for (int i = 0; i < L; i++) {
        tsr_nf_layer *ly = &m->layers[i];
        int Din = i == 0 ? cfg->in_dim : D;
        if (cfg->degree) {
            ly->lin_d_w = P(m, "layers.%d.gnn.lin_d.weight", i, TSR_DIMS(Din, 1), 0);
            ly->lin_d_b = P(m, "layers.%d.gnn.lin_d.bias", i, TSR_DIMS(Din), ND);
        }
        ly->qk_w = P(m, "layers.%d.gnn.lin_qk.weight", i, TSR_DIMS(Din, Din), 0);
        ly->qk_b = P(m, "layers.%d.gnn.lin_qk.bias", i, TSR_DIMS(Din), ND);
        ly->l_w = P(m, "layers.%d.gnn.lin_l.weight", i, TSR_DIMS(D, Din), 0);
        ly->l_b = P(m, "layers.%d.gnn.lin_l.bias", i, TSR_DIMS(D), ND);
        ly->r_w = P(m, "layers.%d.gnn.lin_r.weight", i, TSR_DIMS(D, Din), 0);
        ly->ln_w = P(m, "layers.%d.ffn.norm.weight", i, TSR_DIMS(D), ND);
        ly->ln_b = P(m, "layers.%d.ffn.norm.bias", i, TSR_DIMS(D), ND);
        ly->up_w = P(m, "layers.%d.ffn.up.weight", i, TSR_DIMS(G, D / G, H / G), 0);
        ly->up_b = P(m, "layers.%d.ffn.up.bias", i, TSR_DIMS(G, 1, H / G), ND);
        ly->up_ln_w = P(m, "layers.%d.ffn.up.norm.weight", i, TSR_DIMS(H / G), ND);
        ly->up_ln_b = P(m, "layers.%d.ffn.up.norm.bias", i, TSR_DIMS(H / G), ND);
        ly->down_w = P(m, "layers.%d.ffn.down.weight", i, TSR_DIMS(G, H / G, D / G), 0);
        ly->down_b = P(m, "layers.%d.ffn.down.bias", i, TSR_DIMS(G, 1, D / G), ND);
        ly->down_ln_w = P(m, "layers.%d.ffn.down.norm.weight", i, TSR_DIMS(D / G), ND);
        ly->down_ln_b = P(m, "layers.%d.ffn.down.norm.bias", i, TSR_DIMS(D / G), ND);
        ly->gamma = P(m, "layers.%d.gamma", i, TSR_DIMS(D), ND);
        if (cfg->degree) init_linear(ly->lin_d_w, ly->lin_d_b, &r);
        init_linear(ly->qk_w, ly->qk_b, &r);
        init_linear(ly->l_w, ly->l_b, &r);
        init_linear(ly->r_w, NULL, &r);
        tsr_init_const(ly->ln_w, 1);
        tsr_init_const(ly->up_ln_w, 1);
        tsr_init_const(ly->down_ln_w, 1);
        /* xavier_uniform on (G, in/G, out/G): fan_in = in/G * out/G, fan_out = G * out/G */
        float bu = sqrtf(6.0f / ((float)(D / G) * (H / G) + (float)G * (H / G)));
        tsr_init_uniform(ly->up_w, &r, -bu, bu);
        float bd = sqrtf(6.0f / ((float)(H / G) * (D / G) + (float)G * (D / G)));
        tsr_init_uniform(ly->down_w, &r, -bd, bd);
        tsr_init_const(ly->gamma, cfg->layer_scale);
    }
    int head_in = D;
    if (cfg->head == TSR_NF_HEAD_ACCURACY) {
        int T = L * D;
        m->fuse1_w = P(m, "fusion.0.weight", 0, TSR_DIMS(T / 4, T), 0);
        m->fuse1_b = P(m, "fusion.0.bias", 0, TSR_DIMS(T / 4), ND);
        m->fuse2_w = P(m, "fusion.2.weight", 0, TSR_DIMS(L, T / 4), 0);
        m->fuse2_b = P(m, "fusion.2.bias", 0, TSR_DIMS(L), ND);
        init_linear(m->fuse1_w, m->fuse1_b, &r);
        init_linear(m->fuse2_w, m->fuse2_b, &r);
    } else {
        m->sf_w = P(m, "static.weight", 0, TSR_DIMS(D, TSR_NF_STATIC_DIM), 0);
        m->sf_b = P(m, "static.bias", 0, TSR_DIMS(D), ND);
        init_linear(m->sf_w, m->sf_b, &r);
        head_in = 2 * D;
    }
    int F = cfg->fc_hidden;
    m->fc1_w = P(m, "fc_1.weight", 0, TSR_DIMS(F, head_in), 0);
    m->fc1_b = P(m, "fc_1.bias", 0, TSR_DIMS(F), ND);
    m->fc2_w = P(m, "fc_2.weight", 0, TSR_DIMS(F, F), 0);
    m->fc2_b = P(m, "fc_2.bias", 0, TSR_DIMS(F), ND);
    m->pred_w = P(m, "predictor.weight", 0, TSR_DIMS(1, F), 0);
    m->pred_b = P(m, "predictor.bias", 0, TSR_DIMS(1), ND);
    init_linear(m->fc1_w, m->fc1_b, &r);
    init_linear(m->fc2_w, m->fc2_b, &r);
    init_linear(m->pred_w, m->pred_b, &r);
    return tsr_ok();
}

void tsr_nf_model_free(tsr_nf_model *m) {
    free(m->layers);
    tsr_params_free(&m->params);
    memset(m, 0, sizeof *m);
}

/* grouped linear, one autograd op: x holds R rows of G*I values (any
 * shape of that size), W (G,I,O), b (G,1,O); out (R,G,O) with out[r,g] =
 * x[r, g*I:(g+1)*I] W[g] + b[g]. Each group is one sgemm reading x and
 * writing out in place through leading dimensions, where the composed
 * form (reshape, transpose, batched matmul, broadcast add, transpose)
 * copied every activation and its gradient twice. The sgemm calls have the
 * same sizes and the bias sums the same order, so values are the same. */
static void glin_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    const int G = (int)w->shape[0], I = (int)w->shape[1], O = (int)w->shape[2];
    const int R = (int)(x->numel / ((int64_t)G * I));
    const float *go = n->out->grad, *X = tsr_f32(x), *W = tsr_f32(w);
    if (b->requires_grad) {
        float *gb = tsr_grad(c, b), *acc = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)O);
        for (int g = 0; g < G; g++) {
            for (int o = 0; o < O; o++) acc[o] = 0.0f;
            for (int r = 0; r < R; r++) {
                const float *row = go + ((int64_t)r * G + g) * O;
                for (int o = 0; o < O; o++) acc[o] += row[o];
            }
            for (int o = 0; o < O; o++) gb[g * O + o] += acc[o];
        }
    }
    if (x->requires_grad) { /* dx_g += dy_g W_g^T */
        float *gx = tsr_grad(c, x);
        for (int g = 0; g < G; g++)
            c->be->sgemm(false, true, R, I, O, 1.0f, go + g * O, G * O, W + (int64_t)g * I * O, O, 1.0f,
                         gx + g * I, G * I);
    }
    if (w->requires_grad) { /* dW_g += x_g^T dy_g */
        float *gw = tsr_grad(c, w);
        for (int g = 0; g < G; g++)
            c->be->sgemm(true, false, I, O, R, 1.0f, X + g * I, G * I, go + g * O, G * O, 1.0f,
                         gw + (int64_t)g * I * O, O);
    }
}

tsr_tensor *tsr_nf_group_linear(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b) {
    TSR_ASSERT(x->dtype == TSR_F32 && w->ndim == 3 && b->numel == w->shape[0] * w->shape[2]);
    const int G = (int)w->shape[0], I = (int)w->shape[1], O = (int)w->shape[2];
    TSR_ASSERT(x->numel % ((int64_t)G * I) == 0);
    const int R = (int)(x->numel / ((int64_t)G * I));
    tsr_tensor *out = tsr_new(c, TSR_F32, TSR_DIMS(R, G, O));
    const float *X = tsr_f32(x), *W = tsr_f32(w), *Bv = tsr_f32(b);
    float *Y = tsr_f32(out);
    for (int g = 0; g < G; g++)
        c->be->sgemm(false, false, R, O, I, 1.0f, X + g * I, G * I, W + (int64_t)g * I * O, O, 0.0f, Y + g * O,
                     G * O);
    for (int64_t r = 0; r < R; r++)
        for (int g = 0; g < G; g++)
            for (int o = 0; o < O; o++) Y[(r * G + g) * O + o] += Bv[g * O + o];
    tsr_tensor *ins[3] = {x, w, b};
    tsr_record(c, "narformer.group_linear", glin_backward, out, 3, ins);
    return out;
}

/* grouped linear over the last dim, LayerNorm over each group's O outputs
 * (official GroupLinear with norm_type LN, no feature shuffle): x (R, G*I)
 * -> (R, G, O) */
static tsr_tensor *group_linear(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b,
                                tsr_tensor *lnw, tsr_tensor *lnb) {
    return tsr_layernorm(c, tsr_nf_group_linear(c, x, w, b), lnw, lnb, 1e-5f);
}

/* the adjacency's nonzeros row by row, for prediction: Ba graphs (1 when
 * one (N,N) adjacency is shared by the batch) of N rows; row r = b*N + i
 * holds columns col[start[r]..start[r+1]) in increasing order, values val */
typedef struct {
    int64_t Ba, N;
    int64_t *start;
    int32_t *col;
    float *val;
} nf_nbrs;

static void nbrs_build(tsr_ctx *c, const tsr_tensor *adj, int64_t N, nf_nbrs *s) {
    const float *a = tsr_f32(adj);
    s->Ba = adj->ndim == 3 ? adj->shape[0] : 1;
    s->N = N;
    int64_t R = s->Ba * N, nnz = 0;
    for (int64_t i = 0; i < R * N; i++) nnz += a[i] != 0.0f;
    s->start = tsr_arena_alloc(&c->arena, sizeof(int64_t) * (size_t)(R + 1));
    s->col = tsr_arena_alloc(&c->arena, sizeof(int32_t) * (size_t)(nnz > 0 ? nnz : 1));
    s->val = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)(nnz > 0 ? nnz : 1));
    int64_t k = 0;
    for (int64_t r = 0; r < R; r++) {
        s->start[r] = k;
        for (int64_t j = 0; j < N; j++)
            if (a[r * N + j] != 0.0f) {
                s->col[k] = (int32_t)j;
                s->val[k++] = a[r * N + j];
            }
    }
    s->start[R] = k;
}

/* 8 independent partial sums, so the loop vectorises without fast-math */
static float dot8(const float *a, const float *b, int64_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, tail = 0.0f;
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[k + l] * b[k + l];
    for (; k < n; k++) tail += a[k] * b[k];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

/* S x of the attention below over the adjacency's nonzeros, without the
 * tape (prediction): s_ij = (q_i . q_j) * scale * a_ij, w_ij = s_ij /
 * (sum_j s_ij + 1e-6), out_i = sum_j w_ij x_j. The dense form's zero
 * entries add exact zeros to every sum, so this is the same function in
 * O(edges * Din) instead of O(N^2 * Din); only the summation order differs
 * (relative differences ~1e-7, docs/narformer.md). */
static tsr_tensor *sparse_attend(tsr_ctx *c, tsr_tensor *q, tsr_tensor *x, const nf_nbrs *a, float scale) {
    const int64_t B = x->shape[0], N = x->shape[1], Din = x->shape[2];
    tsr_tensor *out = tsr_zeros(c, TSR_F32, TSR_DIMS(B, N, Din));
    const float *Q = tsr_f32(q), *X = tsr_f32(x);
    float *O = tsr_f32(out);
    int64_t maxdeg = 1;
    for (int64_t r = 0; r < a->Ba * N; r++)
        if (a->start[r + 1] - a->start[r] > maxdeg) maxdeg = a->start[r + 1] - a->start[r];
    float *w = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)maxdeg);
    for (int64_t b = 0; b < B; b++) {
        const float *Qb = Q + b * N * Din, *Xb = X + b * N * Din;
        for (int64_t i = 0; i < N; i++) {
            const int64_t r = (a->Ba == 1 ? 0 : b) * N + i, k0 = a->start[r], nk = a->start[r + 1] - k0;
            float rs = 0.0f;
            for (int64_t k = 0; k < nk; k++) {
                w[k] = dot8(Qb + i * Din, Qb + (int64_t)a->col[k0 + k] * Din, Din) * scale * a->val[k0 + k];
                rs += w[k];
            }
            rs += 1e-6f;
            float *o = O + (b * N + i) * Din;
            for (int64_t k = 0; k < nk; k++) {
                const float wk = w[k] / rs, *xj = Xb + (int64_t)a->col[k0 + k] * Din;
                for (int64_t d = 0; d < Din; d++) o[d] += wk * xj[d];
            }
        }
    }
    return out;
}

/* nbrs: NULL for the dense form (training: the tape records it), else the
 * adjacency's nonzeros for the sparse prediction path */
static tsr_tensor *layer_forward(tsr_ctx *c, const tsr_nf_model *m, const tsr_nf_layer *ly,
                                 tsr_tensor *x, tsr_tensor *adj, const nf_nbrs *nbrs, tsr_tensor *deg) {
    int64_t B = x->shape[0], N = x->shape[1], Din = x->shape[2];
    if (m->cfg.degree) {
        tsr_tensor *gate = tsr_sigmoid(c, tsr_linear(c, deg, ly->lin_d_w, ly->lin_d_b));
        x = tsr_mul(c, x, gate);
    }
    tsr_tensor *q = tsr_sigmoid(c, tsr_linear(c, x, ly->qk_w, ly->qk_b));
    tsr_tensor *agg;
    if (nbrs) agg = sparse_attend(c, q, x, nbrs, 1.0f / sqrtf((float)Din));
    else {
        tsr_tensor *s = tsr_matmul(c, q, q, false, true); /* (B,N,N) */
        s = tsr_scale(c, s, 1.0f / sqrtf((float)Din));
        s = tsr_mul(c, s, adj);
        tsr_tensor *rs = tsr_add_scalar(c, tsr_sum(c, s, -1, true), 1e-6f);
        s = tsr_div(c, s, rs);
        agg = tsr_matmul(c, s, x, false, false); /* (B,N,Din) */
    }
    tsr_tensor *h = tsr_add(c, tsr_linear(c, agg, ly->l_w, ly->l_b), tsr_linear(c, x, ly->r_w, NULL));
    h = tsr_l2_normalize(c, h, 1e-12f);
    h = tsr_relu_dropout(c, h, m->cfg.dropout);
    /* x + gamma * GFFN(LN(x)) */
    int64_t D = h->shape[2];
    tsr_tensor *f = tsr_layernorm(c, h, ly->ln_w, ly->ln_b, 1e-5f);
    f = group_linear(c, f, ly->up_w, ly->up_b, ly->up_ln_w, ly->up_ln_b); /* (B*N, G, H/G) */
    f = tsr_relu_dropout(c, f, m->cfg.dropout);
    f = group_linear(c, f, ly->down_w, ly->down_b, ly->down_ln_w, ly->down_ln_b);
    f = tsr_dropout(c, f, m->cfg.dropout);
    f = tsr_reshape(c, f, TSR_DIMS(B, N, D));
    return tsr_add(c, h, tsr_mul(c, f, ly->gamma));
}

static tsr_tensor *forward(tsr_ctx *c, const tsr_nf_model *m, tsr_tensor *x, tsr_tensor *adj,
                           tsr_tensor *static_feat, bool sparse) {
    const tsr_nf_cfg *cfg = &m->cfg;
    TSR_ASSERT(x->ndim == 3 && x->shape[2] == cfg->in_dim);
    int64_t B = x->shape[0], N = x->shape[1], D = cfg->dim, L = cfg->n_layers;
    TSR_ASSERT(adj->shape[adj->ndim - 1] == N && adj->shape[adj->ndim - 2] == N);
    TSR_ASSERT(adj->ndim == 2 || (adj->ndim == 3 && (adj->shape[0] == B || adj->shape[0] == 1)));
    nf_nbrs nb;
    if (sparse) nbrs_build(c, adj, N, &nb);
    /* degrees (constant): (B,N,1) or (N,1); the sparse path sums the same
     * nonzeros in the same order (zeros add nothing): the same values */
    tsr_tensor *deg = NULL;
    if (cfg->degree) {
        int64_t Ba = adj->ndim == 3 ? adj->shape[0] : 1;
        deg = adj->ndim == 3 ? tsr_new(c, TSR_F32, TSR_DIMS(Ba, N, 1)) : tsr_new(c, TSR_F32, TSR_DIMS(N, 1));
        const float *a = tsr_f32(adj);
        for (int64_t i = 0; i < Ba * N; i++) {
            float sum = 0;
            if (sparse)
                for (int64_t k = nb.start[i]; k < nb.start[i + 1]; k++) sum += nb.val[k];
            else
                for (int64_t j = 0; j < N; j++) sum += a[i * N + j];
            tsr_f32(deg)[i] = sum;
        }
    }
    tsr_tensor *pooled[32];
    for (int i = 0; i < L; i++) {
        if (sparse) { /* no tape: each layer runs in the memory of the one before (fewer fresh pages) */
            tsr_tensor *keep = tsr_new(c, TSR_F32, TSR_DIMS(B, N, D));
            tsr_arena_pos mk = tsr_arena_mark(&c->arena);
            tsr_tensor *y = layer_forward(c, m, &m->layers[i], x, adj, &nb, deg);
            memcpy(tsr_f32(keep), tsr_f32(y), sizeof(float) * (size_t)keep->numel);
            tsr_arena_rewind(&c->arena, mk);
            x = keep;
        } else
            x = layer_forward(c, m, &m->layers[i], x, adj, NULL, deg);
        if (cfg->head == TSR_NF_HEAD_ACCURACY) pooled[i] = tsr_mean(c, x, 1, false); /* (B,D) */
    }
    tsr_tensor *h;
    if (cfg->head == TSR_NF_HEAD_ACCURACY) {
        tsr_tensor *cat = tsr_concat(c, pooled, (int)L, 1); /* (B, L*D) */
        tsr_tensor *w = tsr_relu(c, tsr_linear(c, cat, m->fuse1_w, m->fuse1_b));
        w = tsr_sigmoid(c, tsr_linear(c, w, m->fuse2_w, m->fuse2_b)); /* (B,L) */
        tsr_tensor *f3 = tsr_reshape(c, cat, TSR_DIMS(B, L, D));
        h = tsr_sum(c, tsr_mul(c, f3, tsr_reshape(c, w, TSR_DIMS(B, L, 1))), 1, false);
    } else {
        TSR_ASSERT(static_feat && static_feat->numel == B * TSR_NF_STATIC_DIM);
        tsr_tensor *g = tsr_sum(c, x, 1, false); /* (B,D) */
        tsr_tensor *s = tsr_linear(c, static_feat, m->sf_w, m->sf_b);
        s = tsr_relu(c, tsr_dropout(c, s, cfg->dropout));
        tsr_tensor *two[2] = {g, s};
        h = tsr_concat(c, two, 2, 1);
    }
    h = tsr_relu_dropout(c, tsr_linear(c, h, m->fc1_w, m->fc1_b), cfg->dropout);
    h = tsr_relu_dropout(c, tsr_linear(c, h, m->fc2_w, m->fc2_b), cfg->dropout);
    h = tsr_linear(c, h, m->pred_w, m->pred_b);
    return tsr_neg_logsigmoid(c, h); /* (B,1) */
}

tsr_tensor *tsr_nf_forward(tsr_ctx *c, const tsr_nf_model *m, tsr_tensor *x, tsr_tensor *adj,
                           tsr_tensor *static_feat) {
    return forward(c, m, x, adj, static_feat, false);
}

tsr_tensor *tsr_nf_forward_sparse(tsr_ctx *c, const tsr_nf_model *m, tsr_tensor *x, tsr_tensor *adj,
                                  tsr_tensor *static_feat) {
    TSR_ASSERT(!c->grad_enabled); /* no backward: training runs tsr_nf_forward */
    return forward(c, m, x, adj, static_feat, true);
}

tsr_tensor *tsr_nf_loss_ratio(tsr_ctx *c, tsr_tensor *pred, tsr_tensor *y) {
    tsr_tensor *r = tsr_div(c, pred, y);
    tsr_tensor *one = tsr_new_like(c, r);
    for (int64_t i = 0; i < one->numel; i++) tsr_f32(one)[i] = 1.0f;
    return tsr_mse(c, r, one);
}

tsr_tensor *tsr_nf_loss_pairdiff(tsr_ctx *c, tsr_tensor *pred, tsr_tensor *y, const tsr_tensor *perm) {
    tsr_tensor *dp = tsr_sub(c, pred, tsr_index_select(c, pred, 0, perm));
    tsr_tensor *dy = tsr_new_like(c, y);
    const float *yy = tsr_f32(y);
    const int32_t *p = tsr_i32(perm);
    for (int64_t i = 0; i < y->shape[0]; i++) tsr_f32(dy)[i] = yy[i] - yy[p[i]];
    return tsr_l1(c, dp, dy);
}

/* ------------------------------------------------------------ files */

tsr_status tsr_nf_model_save(const tsr_nf_model *m, const char *path, const char *const *meta) {
    const tsr_nf_cfg *c = &m->cfg;
    char v[10][32];
    snprintf(v[0], 32, "%d", c->in_dim);
    snprintf(v[1], 32, "%d", c->dim);
    snprintf(v[2], 32, "%d", c->n_layers);
    snprintf(v[3], 32, "%d", c->ffn_ratio);
    snprintf(v[4], 32, "%d", c->groups);
    snprintf(v[5], 32, "%d", c->fc_hidden);
    snprintf(v[6], 32, "%s", c->head == TSR_NF_HEAD_ACCURACY ? "accuracy" : "latency");
    snprintf(v[7], 32, "%d", c->degree ? 1 : 0);
    const char *kv[64] = {"narformer.in_dim", v[0], "narformer.dim", v[1], "narformer.n_layers", v[2],
                          "narformer.ffn_ratio", v[3], "narformer.groups", v[4], "narformer.fc_hidden", v[5],
                          "narformer.head", v[6], "narformer.degree", v[7]};
    int k = 16;
    for (int i = 0; meta && meta[i] && meta[i + 1] && k < 62; i += 2) {
        if (!strncmp(meta[i], "narformer.", 10)) continue;
        kv[k++] = meta[i];
        kv[k++] = meta[i + 1];
    }
    kv[k] = NULL;
    return tsr_params_save(&m->params, path, TSR_ST_F32, kv);
}

static tsr_status meta_int(const tsr_st_file *f, const char *path, const char *key, int *out) {
    if (!tsr_st_meta_int(f, key, 0, 1 << 20, out))
        return tsr_errorf(TSR_ERR_FORMAT, "%s: metadata '%s' missing or invalid (not a narformer model?)", path, key);
    return tsr_ok();
}

tsr_status tsr_nf_model_load(tsr_nf_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    tsr_nf_cfg cfg = tsr_nf_default_cfg(TSR_NF_HEAD_LATENCY, TSR_NF_TOKEN_DIM);
    int deg = 1;
    if (!st.code) st = meta_int(&f, path, "narformer.in_dim", &cfg.in_dim);
    if (!st.code) st = meta_int(&f, path, "narformer.dim", &cfg.dim);
    if (!st.code) st = meta_int(&f, path, "narformer.n_layers", &cfg.n_layers);
    if (!st.code) st = meta_int(&f, path, "narformer.ffn_ratio", &cfg.ffn_ratio);
    if (!st.code) st = meta_int(&f, path, "narformer.groups", &cfg.groups);
    if (!st.code) st = meta_int(&f, path, "narformer.fc_hidden", &cfg.fc_hidden);
    if (!st.code) st = meta_int(&f, path, "narformer.degree", &deg);
    const char *head = tsr_st_meta(&f, "narformer.head");
    if (!st.code && (!head || (strcmp(head, "accuracy") && strcmp(head, "latency"))))
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: metadata 'narformer.head' missing or invalid", path);
    if (!st.code) cfg.head = !strcmp(head, "accuracy") ? TSR_NF_HEAD_ACCURACY : TSR_NF_HEAD_LATENCY;
    cfg.degree = deg != 0;
    tsr_st_free(&f);
    if (st.code) return st;
    st = tsr_nf_model_init(m, &cfg, 0);
    if (st.code) return tsr_errorf(st.code, "%s: %s", path, st.msg);
    st = tsr_params_load(&m->params, path, false);
    if (st.code) tsr_nf_model_free(m);
    return st;
}
