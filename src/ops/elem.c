/* tessera ops: elementwise arithmetic with numpy broadcasting, scalar ops
 * and sum/mean reductions, used by every family's model code.
 *
 * Broadcast shapes are collapsed before the loops run: size-1 output dims
 * are dropped and neighbouring dims that broadcast alike are merged, so any
 * pair of shapes becomes at most 4 dims and the innermost loop is a plain
 * contiguous (or splatted) row the compiler vectorises. Same-shape ops
 * collapse to one row and the bias case (..., N) + (N) to rows x N. */
#include "tessera/ops.h"

#include <string.h>

/* below this many elements, waking threads costs more than it saves */
#define PAR_MIN 32768
/* "if (parallel: ...)" on the "parallel for simd" loops: an unqualified if
 * clause also turns simd off, so small arrays ran scalar */
/* binary-op tiles: long rows are cut so a single row still spreads */
#define BIN_TILE 4096
/* reduce column block: per-tile stack accumulator */
#define RED_BLOCK 256

/* collapsed broadcast geometry: output dims n, element strides of a and b
 * in that space (0 where the input broadcasts) */
typedef struct {
    int64_t n[4], sa[4], sb[4];
} bc_geom;

static void bc_pad(int nd, const int64_t *sh, int to, int64_t *out) {
    for (int i = 0; i < to; i++) out[i] = i < to - nd ? 1 : sh[i - (to - nd)];
}

static int bc_out_shape(int nda, const int64_t *sha, int ndb, const int64_t *shb, int64_t *out) {
    int nd = nda > ndb ? nda : ndb;
    int64_t pa[TSR_MAX_DIMS], pb[TSR_MAX_DIMS];
    bc_pad(nda, sha, nd, pa);
    bc_pad(ndb, shb, nd, pb);
    for (int i = 0; i < nd; i++) {
        TSR_ASSERT(pa[i] == pb[i] || pa[i] == 1 || pb[i] == 1);
        out[i] = pa[i] == 1 ? pb[i] : pa[i];
    }
    return nd;
}

static void bc_make(bc_geom *g, int nda, const int64_t *sha, int ndb, const int64_t *shb) {
    TSR_ASSERT(nda <= TSR_MAX_DIMS && ndb <= TSR_MAX_DIMS);
    int nd = nda > ndb ? nda : ndb;
    int64_t pa[TSR_MAX_DIMS], pb[TSR_MAX_DIMS], dn[4];
    bool ka[4], kb[4];
    bc_pad(nda, sha, nd, pa);
    bc_pad(ndb, shb, nd, pb);
    int m = 0;
    for (int i = 0; i < nd; i++) {
        TSR_ASSERT(pa[i] == pb[i] || pa[i] == 1 || pb[i] == 1);
        int64_t d = pa[i] == 1 ? pb[i] : pa[i];
        if (d == 1) continue;
        bool xa = pa[i] != 1, xb = pb[i] != 1;
        if (m > 0 && ka[m - 1] == xa && kb[m - 1] == xb) {
            dn[m - 1] *= d;
        } else {
            dn[m] = d, ka[m] = xa, kb[m] = xb;
            m++;
        }
    }
    int off = 4 - m;
    for (int i = 0; i < 4; i++) {
        g->n[i] = i < off ? 1 : dn[i - off];
        bool xa = i >= off && ka[i - off], xb = i >= off && kb[i - off];
        g->sa[i] = xa, g->sb[i] = xb; /* flags for now, strides below */
    }
    int64_t ra = 1, rb = 1;
    for (int i = 3; i >= 0; i--) {
        bool xa = g->sa[i], xb = g->sb[i];
        g->sa[i] = xa ? ra : 0;
        g->sb[i] = xb ? rb : 0;
        if (xa) ra *= g->n[i];
        if (xb) rb *= g->n[i];
    }
}

/* ------------------------------------------------------------ binary */

/* private op for broadcast-accumulate: out (+)= s * b */
enum { OP_BSCALE = TSR_BIN_COUNT };

#define F_ADD(x, y) ((x) + (y))
#define F_SUB(x, y) ((x) - (y))
#define F_MUL(x, y) ((x) * (y))
#define F_DIV(x, y) ((x) / (y))
#define F_SND(x, y) (y)

/* omp simd: -O2's cheap cost model would leave these loops scalar */
#define ROW_ASSIGN(F, AV, BV)                                                                     \
    do {                                                                                          \
        if (acc) {                                                                                \
            _Pragma("omp simd") for (int64_t j = 0; j < len; j++) o[j] += F(AV, BV);              \
        } else {                                                                                  \
            _Pragma("omp simd") for (int64_t j = 0; j < len; j++) o[j] = F(AV, BV);               \
        }                                                                                         \
    } while (0)

#define ROW(F)                                                                                    \
    do {                                                                                          \
        if (sa && sb) {                                                                           \
            ROW_ASSIGN(F, a[j], b[j]);                                                            \
        } else if (sa) {                                                                          \
            const float bv = b[0];                                                                \
            ROW_ASSIGN(F, a[j], bv);                                                              \
        } else if (sb) {                                                                          \
            const float av = a[0];                                                                \
            ROW_ASSIGN(F, av, b[j]);                                                              \
        } else {                                                                                  \
            const float v = F(a[0], b[0]);                                                        \
            ROW_ASSIGN(F_SND, 0, v);                                                              \
        }                                                                                         \
    } while (0)

/* one output row of len elements; sa/sb are 1 (contiguous) or 0 (splat) */
static void bin_row(float *o, const float *a, const float *b, int64_t len, bool sa, bool sb, int op,
                    bool acc, float s) {
    switch (op) {
    case TSR_BIN_ADD: ROW(F_ADD); break;
    case TSR_BIN_SUB: ROW(F_SUB); break;
    case TSR_BIN_MUL: ROW(F_MUL); break;
    case TSR_BIN_DIV: ROW(F_DIV); break;
    default: /* OP_BSCALE reads only b */
        if (sb) {
            ROW_ASSIGN(F_MUL, s, b[j]);
        } else {
            const float v = s * b[0];
            ROW_ASSIGN(F_SND, 0, v);
        }
    }
}

static void bin_run(float *out, const float *a, const float *b, int op, bool acc, float s,
                    const bc_geom *g) {
    int64_t rows = g->n[0] * g->n[1] * g->n[2], n3 = g->n[3];
    if (rows == 0 || n3 == 0) return;
    int64_t tile = n3 < BIN_TILE ? n3 : BIN_TILE;
    int64_t nt = (n3 + tile - 1) / tile, total = rows * nt;
    int64_t n1 = g->n[1], n2 = g->n[2];
#pragma omp parallel for schedule(static) if (rows * n3 >= PAR_MIN)
    for (int64_t t = 0; t < total; t++) {
        int64_t r = t / nt, j0 = (t % nt) * tile;
        int64_t len = n3 - j0 < tile ? n3 - j0 : tile;
        int64_t i2 = r % n2, i1 = (r / n2) % n1, i0 = r / (n1 * n2);
        int64_t oa = i0 * g->sa[0] + i1 * g->sa[1] + i2 * g->sa[2] + j0 * g->sa[3];
        int64_t ob = i0 * g->sb[0] + i1 * g->sb[1] + i2 * g->sb[2] + j0 * g->sb[3];
        bin_row(out + r * n3 + j0, a + oa, b + ob, len, g->sa[3] != 0, g->sb[3] != 0, op, acc, s);
    }
}

void tsr_binary_fwd(float *out, const float *a, const float *b, tsr_binop op, bool acc, int nda,
                    const int64_t *sha, int ndb, const int64_t *shb) {
    TSR_ASSERT(op >= 0 && op < TSR_BIN_COUNT);
    bc_geom g;
    bc_make(&g, nda, sha, ndb, shb);
    bin_run(out, a, b, op, acc, 1.0f, &g);
}

/* offset of output index idx (row-major over osh) in a tensor of shape
 * ish (right-aligned, broadcast dims pinned to 0) */
static int64_t bc_offset(int64_t idx, int nd, const int64_t *osh, int ndi, const int64_t *ish) {
    int64_t off = 0, stride = 1;
    for (int d = nd - 1; d >= 0; d--) {
        int64_t i = idx % osh[d];
        idx /= osh[d];
        int di = d - (nd - ndi);
        if (di < 0) continue;
        if (ish[di] != 1) off += i * stride;
        stride *= ish[di];
    }
    return off;
}

void tsr_binary_ref(float *out, const float *a, const float *b, tsr_binop op, bool acc, int nda,
                    const int64_t *sha, int ndb, const int64_t *shb) {
    int64_t osh[TSR_MAX_DIMS];
    int nd = bc_out_shape(nda, sha, ndb, shb, osh);
    int64_t n = tsr_shape_numel(nd, osh);
    for (int64_t i = 0; i < n; i++) {
        float x = a[bc_offset(i, nd, osh, nda, sha)], y = b[bc_offset(i, nd, osh, ndb, shb)], v;
        switch (op) {
        case TSR_BIN_ADD: v = x + y; break;
        case TSR_BIN_SUB: v = x - y; break;
        case TSR_BIN_MUL: v = x * y; break;
        default: v = x / y; break;
        }
        out[i] = acc ? out[i] + v : v;
    }
}

/* ------------------------------------------------------------ reduce */

static inline int64_t decode(int64_t idx, int nd, const int64_t *n, const int64_t *s) {
    int64_t off = 0;
    for (int d = nd - 1; d >= 0; d--) {
        off += (idx % n[d]) * s[d];
        idx /= n[d];
    }
    return off;
}

void tsr_reduce_acc(float *dst, const float *g, float scale, int ndo, const int64_t *sho, int ndi,
                    const int64_t *shi) {
    TSR_ASSERT(ndi <= ndo);
    for (int i = 0; i < ndi; i++) TSR_ASSERT(shi[i] == 1 || shi[i] == sho[ndo - ndi + i]);
    bc_geom G;
    bc_make(&G, ndo, sho, ndi, shi); /* sa: strides in g, sb: strides in dst */
    int64_t total = G.n[0] * G.n[1] * G.n[2] * G.n[3];
    if (total == 0) return;
    /* split the outer three dims into kept (in dst) and reduced ones */
    int64_t kn[3], ko[3], ki[3], rn[3], ro[3];
    int nk = 0, nr = 0;
    for (int d = 0; d < 3; d++) {
        if (G.n[d] == 1) continue;
        if (G.sb[d]) kn[nk] = G.n[d], ko[nk] = G.sa[d], ki[nk] = G.sb[d], nk++;
        else rn[nr] = G.n[d], ro[nr] = G.sa[d], nr++;
    }
    int64_t K = 1, R = 1, n3 = G.n[3];
    for (int i = 0; i < nk; i++) K *= kn[i];
    for (int i = 0; i < nr; i++) R *= rn[i];
    if (G.sb[3]) {
        /* innermost dim kept: columns accumulate across reduced rows */
        int64_t blk = n3 < RED_BLOCK ? n3 : RED_BLOCK, nb = (n3 + blk - 1) / blk;
#pragma omp parallel for schedule(static) if (total >= PAR_MIN)
        for (int64_t t = 0; t < K * nb; t++) {
            int64_t k = t / nb, j0 = (t % nb) * blk, len = n3 - j0 < blk ? n3 - j0 : blk;
            int64_t obase = decode(k, nk, kn, ko) + j0, ibase = decode(k, nk, kn, ki) + j0;
            float acc[RED_BLOCK];
            for (int64_t j = 0; j < len; j++) acc[j] = 0.0f;
            for (int64_t r = 0; r < R; r++) {
                const float *row = g + obase + decode(r, nr, rn, ro);
#pragma omp simd
                for (int64_t j = 0; j < len; j++) acc[j] += row[j];
            }
            for (int64_t j = 0; j < len; j++) dst[ibase + j] += scale * acc[j];
        }
    } else {
        /* innermost dim reduced: contiguous row sums, blocks summed in double */
#pragma omp parallel for schedule(static) if (total >= PAR_MIN && K > 1)
        for (int64_t k = 0; k < K; k++) {
            int64_t obase = decode(k, nk, kn, ko), ibase = decode(k, nk, kn, ki);
            double acc = 0;
            for (int64_t r = 0; r < R; r++) {
                const float *row = g + obase + decode(r, nr, rn, ro);
                for (int64_t j0 = 0; j0 < n3; j0 += BIN_TILE) {
                    int64_t j1 = j0 + BIN_TILE < n3 ? j0 + BIN_TILE : n3;
                    float s = 0.0f;
#pragma omp simd reduction(+ : s)
                    for (int64_t j = j0; j < j1; j++) s += row[j];
                    acc += s;
                }
            }
            dst[ibase] += scale * (float)acc;
        }
    }
}

void tsr_reduce_acc_ref(float *dst, const float *g, float scale, int ndo, const int64_t *sho,
                        int ndi, const int64_t *shi) {
    int64_t no = tsr_shape_numel(ndo, sho), ni = tsr_shape_numel(ndi, shi);
    for (int64_t i = 0; i < ni; i++) {
        double s = 0;
        for (int64_t k = 0; k < no; k++)
            if (bc_offset(k, ndo, sho, ndi, shi) == i) s += g[k];
        dst[i] += (float)(scale * s);
    }
}

/* ------------------------------------------------------- autograd ops */

static void vec_acc(float *dst, const float *src, float s, int64_t n) {
#pragma omp parallel for simd schedule(static) if (parallel: n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) dst[i] += s * src[i];
}

/* grad of t (shape broadcast to y) += s * reduce(src over y's shape) */
static void acc_reduced(tsr_ctx *c, tsr_tensor *t, const float *src, float s, const tsr_tensor *y) {
    float *gt = tsr_grad(c, t);
    if (t->numel == y->numel) vec_acc(gt, src, s, y->numel);
    else tsr_reduce_acc(gt, src, s, y->ndim, y->shape, t->ndim, t->shape);
}

static void binary_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *a = n->in[0], *b = n->in[1], *y = n->out;
    const float *go = y->grad, *B = tsr_f32(b);
    int op = (int)n->iarg[0];
    if (op == TSR_BIN_ADD || op == TSR_BIN_SUB) {
        if (a->requires_grad) acc_reduced(c, a, go, 1.0f, y);
        if (b->requires_grad) acc_reduced(c, b, go, op == TSR_BIN_SUB ? -1.0f : 1.0f, y);
        return;
    }
    float *tmp = NULL;
    if (op == TSR_BIN_MUL) {
        /* d/da = go * b, d/db = go * a */
        for (int side = 0; side < 2; side++) {
            tsr_tensor *t = side ? b : a, *other = side ? a : b;
            if (!t->requires_grad) continue;
            if (t->numel == y->numel) {
                tsr_binary_fwd(tsr_grad(c, t), go, tsr_f32(other), TSR_BIN_MUL, true, y->ndim, y->shape,
                               other->ndim, other->shape);
            } else {
                if (!tmp) tmp = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)y->numel);
                tsr_binary_fwd(tmp, go, tsr_f32(other), TSR_BIN_MUL, false, y->ndim, y->shape,
                               other->ndim, other->shape);
                acc_reduced(c, t, tmp, 1.0f, y);
            }
        }
        return;
    }
    /* div: d/da = go / b, d/db = -go * a / b^2 = -(go / b) * y */
    tmp = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)y->numel);
    tsr_binary_fwd(tmp, go, B, TSR_BIN_DIV, false, y->ndim, y->shape, b->ndim, b->shape);
    if (a->requires_grad) acc_reduced(c, a, tmp, 1.0f, y);
    if (b->requires_grad) {
        const float *Y = tsr_f32(y);
        int64_t ny = y->numel;
#pragma omp parallel for simd schedule(static) if (parallel: ny >= PAR_MIN)
        for (int64_t i = 0; i < ny; i++) tmp[i] *= Y[i];
        acc_reduced(c, b, tmp, -1.0f, y);
    }
}

static const char *const bin_names[TSR_BIN_COUNT] = {"add", "sub", "mul", "div"};

static tsr_tensor *binary(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b, tsr_binop op) {
    TSR_ASSERT(a->dtype == TSR_F32 && b->dtype == TSR_F32);
    int64_t osh[TSR_MAX_DIMS];
    int nd = bc_out_shape(a->ndim, a->shape, b->ndim, b->shape, osh);
    tsr_tensor *out = tsr_new(c, TSR_F32, nd, osh);
    tsr_binary_fwd(tsr_f32(out), tsr_f32(a), tsr_f32(b), op, false, a->ndim, a->shape, b->ndim, b->shape);
    tsr_tensor *ins[2] = {a, b};
    tsr_node *n = tsr_record(c, bin_names[op], binary_backward, out, 2, ins);
    if (n) n->iarg[0] = op;
    return out;
}

tsr_tensor *tsr_add(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b) { return binary(c, a, b, TSR_BIN_ADD); }
tsr_tensor *tsr_sub(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b) { return binary(c, a, b, TSR_BIN_SUB); }
tsr_tensor *tsr_mul(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b) { return binary(c, a, b, TSR_BIN_MUL); }
tsr_tensor *tsr_div(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b) { return binary(c, a, b, TSR_BIN_DIV); }

/* scale (iarg 0) and add_scalar (iarg 1): the grad is go * s or go */
static void scalar_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    vec_acc(tsr_grad(c, x), n->out->grad, n->iarg[0] ? 1.0f : n->farg[0], x->numel);
}

static tsr_tensor *scalar_op(tsr_ctx *c, tsr_tensor *x, float s, bool add) {
    TSR_ASSERT(x->dtype == TSR_F32);
    tsr_tensor *out = tsr_new_like(c, x);
    const float *X = tsr_f32(x);
    float *O = tsr_f32(out);
    int64_t n = x->numel;
    if (add) {
#pragma omp parallel for simd schedule(static) if (parallel: n >= PAR_MIN)
        for (int64_t i = 0; i < n; i++) O[i] = X[i] + s;
    } else {
#pragma omp parallel for simd schedule(static) if (parallel: n >= PAR_MIN)
        for (int64_t i = 0; i < n; i++) O[i] = X[i] * s;
    }
    tsr_node *nd = tsr_record(c, add ? "add_scalar" : "scale", scalar_backward, out, 1, &x);
    if (nd) nd->iarg[0] = add, nd->farg[0] = s;
    return out;
}

tsr_tensor *tsr_scale(tsr_ctx *c, tsr_tensor *x, float s) { return scalar_op(c, x, s, false); }
tsr_tensor *tsr_add_scalar(tsr_ctx *c, tsr_tensor *x, float s) { return scalar_op(c, x, s, true); }

/* sum/mean: the node keeps the reduced shape with keepdim (iarg 0..3,
 * ndim in iarg 4) so backward broadcasts go back over x */
static void reduce_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    int kd = (int)n->iarg[4];
    int64_t ksh[TSR_MAX_DIMS];
    for (int i = 0; i < kd; i++) ksh[i] = n->iarg[i];
    bc_geom g;
    bc_make(&g, x->ndim, x->shape, kd, ksh);
    bin_run(tsr_grad(c, x), n->out->grad, n->out->grad, OP_BSCALE, true, n->farg[0], &g);
}

static tsr_tensor *reduce_op(tsr_ctx *c, tsr_tensor *x, int dim, bool keepdim, bool all, bool mean) {
    TSR_ASSERT(x->dtype == TSR_F32);
    int64_t ksh[TSR_MAX_DIMS] = {0}, osh[TSR_MAX_DIMS] = {0};
    int kd = 0, od = 0;
    int64_t count;
    if (all) {
        count = x->numel;
    } else {
        int d = dim < 0 ? dim + x->ndim : dim;
        TSR_ASSERT(d >= 0 && d < x->ndim);
        count = x->shape[d];
        kd = x->ndim;
        for (int i = 0; i < x->ndim; i++) {
            ksh[i] = i == d ? 1 : x->shape[i];
            if (i != d || keepdim) osh[od++] = ksh[i];
        }
    }
    float scale = mean ? 1.0f / (float)count : 1.0f;
    tsr_tensor *out = tsr_zeros(c, TSR_F32, od, osh);
    tsr_reduce_acc(tsr_f32(out), tsr_f32(x), scale, x->ndim, x->shape, kd, ksh);
    tsr_node *n = tsr_record(c, mean ? "mean" : "sum", reduce_backward, out, 1, &x);
    if (n) {
        for (int i = 0; i < kd; i++) n->iarg[i] = ksh[i];
        n->iarg[4] = kd;
        n->farg[0] = scale;
    }
    return out;
}

tsr_tensor *tsr_sum(tsr_ctx *c, tsr_tensor *x, int dim, bool keepdim) {
    return reduce_op(c, x, dim, keepdim, false, false);
}
tsr_tensor *tsr_mean(tsr_ctx *c, tsr_tensor *x, int dim, bool keepdim) {
    return reduce_op(c, x, dim, keepdim, false, true);
}
tsr_tensor *tsr_sum_all(tsr_ctx *c, tsr_tensor *x) { return reduce_op(c, x, 0, false, true, false); }
tsr_tensor *tsr_mean_all(tsr_ctx *c, tsr_tensor *x) { return reduce_op(c, x, 0, false, true, true); }
