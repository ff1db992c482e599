/* tessera ops: views and copies (reshape, transpose/permute, slice, concat,
 * split) and indexed reads (embedding, index_select, gather), used by every
 * family for head splitting, token lookup and target picking.
 *
 * The copies work on any dtype by element size; only f32 carries grads.
 * Scatter-add backwards (embedding, index_select, gather) give every
 * destination element one owner thread that adds its sources in index
 * order, so grads are bitwise identical whatever the thread count. */
#include "tessera/ops.h"

#include <string.h>

#define PAR_MIN 32768
#define COL_BLOCK 32

static int norm_dim(int dim, int nd) {
    int d = dim < 0 ? dim + nd : dim;
    TSR_ASSERT(d >= 0 && d < nd);
    return d;
}

/* x viewed as (outer, shape[d], inner) */
static void split_dims(const tsr_tensor *x, int d, int64_t *outer, int64_t *inner) {
    *outer = 1, *inner = 1;
    for (int i = 0; i < d; i++) *outer *= x->shape[i];
    for (int i = d + 1; i < x->ndim; i++) *inner *= x->shape[i];
}

/* dst[r*ds + j] = src[r*ss + j], j < len; units are bytes */
static void copy_rows(char *dst, int64_t ds, const char *src, int64_t ss, int64_t rows, int64_t len) {
#pragma omp parallel for schedule(static) if (rows * len >= 4 * PAR_MIN && rows > 1)
    for (int64_t r = 0; r < rows; r++) memcpy(dst + r * ds, src + r * ss, (size_t)len);
}

/* dst[r*ds + j] += src[r*ss + j], j < len; units are floats */
static void acc_rows(float *dst, int64_t ds, const float *src, int64_t ss, int64_t rows, int64_t len) {
#pragma omp parallel for schedule(static) if (rows * len >= PAR_MIN && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        float *d = dst + r * ds;
        const float *s = src + r * ss;
#pragma omp simd
        for (int64_t j = 0; j < len; j++) d[j] += s[j];
    }
}

/* ------------------------------------------------------------ reshape */

static void reshape_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    acc_rows(tsr_grad(c, x), 0, n->out->grad, 0, 1, x->numel);
}

tsr_tensor *tsr_reshape(tsr_ctx *c, tsr_tensor *x, int ndim, const int64_t *shape) {
    TSR_ASSERT(ndim >= 0 && ndim <= TSR_MAX_DIMS);
    int64_t sh[TSR_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        sh[i] = shape[i];
        if (shape[i] == -1) {
            TSR_ASSERT(infer < 0);
            infer = i;
        } else {
            TSR_ASSERT(shape[i] >= 0);
            known *= shape[i];
        }
    }
    if (infer >= 0) {
        TSR_ASSERT(known > 0 && x->numel % known == 0);
        sh[infer] = x->numel / known;
    }
    TSR_ASSERT(tsr_shape_numel(ndim, sh) == x->numel);
    tsr_tensor *out = tsr_wrap(c, x->dtype, ndim, sh, x->data);
    tsr_record(c, "reshape", reshape_backward, out, 1, &x);
    return out;
}

/* ------------------------------------------------------------ permute */

/* collapsed permutation: out dims n with element strides s into the input */
typedef struct {
    int64_t n[4], s[4];
} perm_geom;

static void perm_make(perm_geom *g, int nd, const int64_t *shape, const int *perm) {
    TSR_ASSERT(nd >= 0 && nd <= TSR_MAX_DIMS);
    int64_t is[TSR_MAX_DIMS], dn[4], ds[4];
    bool seen[TSR_MAX_DIMS] = {false};
    int64_t st = 1;
    for (int d = nd - 1; d >= 0; d--) is[d] = st, st *= shape[d];
    int m = 0;
    for (int k = 0; k < nd; k++) {
        int p = perm[k];
        TSR_ASSERT(p >= 0 && p < nd && !seen[p]);
        seen[p] = true;
        int64_t d = shape[p];
        if (d == 1) continue;
        if (m > 0 && ds[m - 1] == is[p] * d) {
            dn[m - 1] *= d;
            ds[m - 1] = is[p];
        } else {
            dn[m] = d, ds[m] = is[p];
            m++;
        }
    }
    for (int i = 0; i < 4; i++) {
        g->n[i] = i < 4 - m ? 1 : dn[i - (4 - m)];
        g->s[i] = i < 4 - m ? 0 : ds[i - (4 - m)];
    }
}

void tsr_permute_fwd(void *out, const void *in, size_t esize, bool acc_f32, int nd,
                     const int64_t *shape, const int *perm) {
    TSR_ASSERT(!acc_f32 || esize == 4);
    perm_geom g;
    perm_make(&g, nd, shape, perm);
    int64_t rows = g.n[0] * g.n[1] * g.n[2], n3 = g.n[3], s3 = g.s[3];
    if (rows == 0 || n3 == 0) return;
    int64_t n1 = g.n[1], n2 = g.n[2];
#pragma omp parallel for schedule(static) if (rows * n3 >= PAR_MIN && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        int64_t i2 = r % n2, i1 = (r / n2) % n1, i0 = r / (n1 * n2);
        int64_t off = i0 * g.s[0] + i1 * g.s[1] + i2 * g.s[2];
        char *o = (char *)out + (size_t)(r * n3) * esize;
        const char *src = (const char *)in + (size_t)off * esize;
        if (acc_f32) {
            float *of = (float *)o;
            const float *sf = (const float *)src;
#pragma omp simd
            for (int64_t j = 0; j < n3; j++) of[j] += sf[j * s3];
        } else if (s3 == 1) {
            memcpy(o, src, (size_t)n3 * esize);
        } else if (esize == 4) {
            for (int64_t j = 0; j < n3; j++) ((uint32_t *)o)[j] = ((const uint32_t *)src)[j * s3];
        } else if (esize == 2) {
            for (int64_t j = 0; j < n3; j++) ((uint16_t *)o)[j] = ((const uint16_t *)src)[j * s3];
        } else {
            for (int64_t j = 0; j < n3; j++) memcpy(o + j * esize, src + j * s3 * esize, esize);
        }
    }
}

void tsr_permute_ref(void *out, const void *in, size_t esize, bool acc_f32, int nd,
                     const int64_t *shape, const int *perm) {
    int64_t is[TSR_MAX_DIMS], osh[TSR_MAX_DIMS], st = 1;
    for (int d = nd - 1; d >= 0; d--) is[d] = st, st *= shape[d];
    for (int k = 0; k < nd; k++) osh[k] = shape[perm[k]];
    int64_t n = tsr_shape_numel(nd, shape);
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i, off = 0;
        for (int k = nd - 1; k >= 0; k--) {
            off += (rem % osh[k]) * is[perm[k]];
            rem /= osh[k];
        }
        if (acc_f32) ((float *)out)[i] += ((const float *)in)[off];
        else memcpy((char *)out + i * esize, (const char *)in + off * esize, esize);
    }
}

static void permute_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0], *y = n->out;
    int inv[TSR_MAX_DIMS];
    for (int k = 0; k < x->ndim; k++) inv[n->iarg[k]] = k;
    tsr_permute_fwd(tsr_grad(c, x), y->grad, 4, true, y->ndim, y->shape, inv);
}

tsr_tensor *tsr_permute(tsr_ctx *c, tsr_tensor *x, const int *perm) {
    int p[TSR_MAX_DIMS];
    int64_t osh[TSR_MAX_DIMS];
    for (int k = 0; k < x->ndim; k++) {
        p[k] = norm_dim(perm[k], x->ndim);
        osh[k] = x->shape[p[k]];
    }
    tsr_tensor *out = tsr_new(c, x->dtype, x->ndim, osh);
    tsr_permute_fwd(out->data, x->data, tsr_dtype_size(x->dtype), false, x->ndim, x->shape, p);
    tsr_node *n = tsr_record(c, "permute", permute_backward, out, 1, &x);
    if (n)
        for (int k = 0; k < x->ndim; k++) n->iarg[k] = p[k];
    return out;
}

tsr_tensor *tsr_transpose(tsr_ctx *c, tsr_tensor *x, int d0, int d1) {
    int p[TSR_MAX_DIMS];
    for (int k = 0; k < x->ndim; k++) p[k] = k;
    d0 = norm_dim(d0, x->ndim);
    d1 = norm_dim(d1, x->ndim);
    p[d0] = d1;
    p[d1] = d0;
    return tsr_permute(c, x, p);
}

/* ------------------------------------------------- slice, concat, split */

/* iarg: 0 dim, 1 start */
static void slice_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0], *y = n->out;
    int d = (int)n->iarg[0];
    int64_t outer, inner;
    split_dims(x, d, &outer, &inner);
    int64_t len = y->shape[d] * inner;
    acc_rows(tsr_grad(c, x) + n->iarg[1] * inner, x->shape[d] * inner, y->grad, len, outer, len);
}

tsr_tensor *tsr_slice(tsr_ctx *c, tsr_tensor *x, int dim, int64_t start, int64_t end) {
    int d = norm_dim(dim, x->ndim);
    int64_t n = x->shape[d];
    if (start < 0) start += n;
    if (end < 0) end += n;
    TSR_ASSERT(0 <= start && start <= end && end <= n);
    int64_t osh[TSR_MAX_DIMS], outer, inner;
    memcpy(osh, x->shape, sizeof osh);
    osh[d] = end - start;
    split_dims(x, d, &outer, &inner);
    tsr_tensor *out = tsr_new(c, x->dtype, x->ndim, osh);
    size_t es = tsr_dtype_size(x->dtype);
    copy_rows(out->data, (end - start) * inner * (int64_t)es, (const char *)x->data + start * inner * (int64_t)es,
              n * inner * (int64_t)es, outer, (end - start) * inner * (int64_t)es);
    tsr_node *nd = tsr_record(c, "slice", slice_backward, out, 1, &x);
    if (nd) nd->iarg[0] = d, nd->iarg[1] = start;
    return out;
}

static void concat_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *y = n->out;
    int d = (int)n->iarg[0];
    int64_t outer, inner, off = 0;
    split_dims(y, d, &outer, &inner);
    int64_t ylen = y->shape[d] * inner;
    for (int i = 0; i < n->n_in; i++) {
        tsr_tensor *x = n->in[i];
        int64_t len = x->shape[d] * inner;
        if (x->requires_grad) acc_rows(tsr_grad(c, x), len, y->grad + off, ylen, outer, len);
        off += len;
    }
}

tsr_tensor *tsr_concat(tsr_ctx *c, tsr_tensor *const *xs, int n, int dim) {
    TSR_ASSERT(n >= 1);
    const tsr_tensor *x0 = xs[0];
    int d = norm_dim(dim, x0->ndim);
    int64_t osh[TSR_MAX_DIMS];
    memcpy(osh, x0->shape, sizeof osh);
    osh[d] = 0;
    for (int i = 0; i < n; i++) {
        TSR_ASSERT(xs[i]->dtype == x0->dtype && xs[i]->ndim == x0->ndim);
        for (int k = 0; k < x0->ndim; k++) TSR_ASSERT(k == d || xs[i]->shape[k] == x0->shape[k]);
        osh[d] += xs[i]->shape[d];
    }
    tsr_tensor *out = tsr_new(c, x0->dtype, x0->ndim, osh);
    int64_t outer, inner, off = 0;
    split_dims(out, d, &outer, &inner);
    int64_t es = (int64_t)tsr_dtype_size(x0->dtype), ylen = osh[d] * inner * es;
    for (int i = 0; i < n; i++) {
        int64_t len = xs[i]->shape[d] * inner * es;
        copy_rows((char *)out->data + off, ylen, xs[i]->data, len, outer, len);
        off += len;
    }
    tsr_node *nd = tsr_record(c, "concat", concat_backward, out, n, xs);
    if (nd) nd->iarg[0] = d;
    return out;
}

void tsr_split(tsr_ctx *c, tsr_tensor *x, int dim, const int64_t *sizes, int n, tsr_tensor **outs) {
    int d = norm_dim(dim, x->ndim);
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        TSR_ASSERT(sizes[i] >= 0);
        outs[i] = tsr_slice(c, x, d, off, off + sizes[i]);
        off += sizes[i];
    }
    TSR_ASSERT(off == x->shape[d]);
}

/* ---------------------------------------------------------- embedding */

// out (N,C), w (V,C), ids (N)
void tsr_embedding_fwd(float *out, const float *w, const int32_t *ids, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static) if (N * C >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) memcpy(out + i * C, w + (int64_t)ids[i] * C, sizeof(float) * (size_t)C);
}

/* Threads own column blocks of gw and walk all rows in order: no atomics,
 * and each gw element sums its rows in index order. */
void tsr_embedding_bwd(float *gw, const float *go, const int32_t *ids, int64_t N, int64_t C) {
    int64_t nb = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (N * C >= PAR_MIN && nb > 1)
    for (int64_t b = 0; b < nb; b++) {
        int64_t j0 = b * COL_BLOCK, j1 = j0 + COL_BLOCK < C ? j0 + COL_BLOCK : C;
        for (int64_t i = 0; i < N; i++) {
            float *d = gw + (int64_t)ids[i] * C;
            const float *s = go + i * C;
#pragma omp simd
            for (int64_t j = j0; j < j1; j++) d[j] += s[j];
        }
    }
}

void tsr_embedding_bwd_ref(float *gw, const float *go, const int32_t *ids, int64_t N, int64_t C) {
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < C; j++) gw[(int64_t)ids[i] * C + j] += go[i * C + j];
}

static void embedding_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *w = n->in[0], *y = n->out;
    const tsr_tensor *ids = n->saved;
    tsr_embedding_bwd(tsr_grad_rows(c, w, tsr_i32(ids), ids->numel), y->grad, tsr_i32(ids), ids->numel,
                      w->shape[1]);
}

tsr_tensor *tsr_embedding(tsr_ctx *c, tsr_tensor *weight, const tsr_tensor *ids) {
    TSR_ASSERT(weight->dtype == TSR_F32 && weight->ndim == 2);
    TSR_ASSERT(ids->dtype == TSR_I32 && ids->ndim < TSR_MAX_DIMS);
    int64_t V = weight->shape[0], C = weight->shape[1];
    const int32_t *id = tsr_i32(ids);
    for (int64_t i = 0; i < ids->numel; i++) TSR_ASSERT(id[i] >= 0 && id[i] < V);
    int64_t osh[TSR_MAX_DIMS];
    memcpy(osh, ids->shape, sizeof(int64_t) * (size_t)ids->ndim);
    osh[ids->ndim] = C;
    tsr_tensor *out = tsr_new(c, TSR_F32, ids->ndim + 1, osh);
    tsr_embedding_fwd(tsr_f32(out), tsr_f32(weight), id, ids->numel, C);
    tsr_node *n = tsr_record(c, "embedding", embedding_backward, out, 1, &weight);
    if (n) n->saved = (void *)ids;
    return out;
}

/* ------------------------------------------------------- index_select */

/* iarg 0: dim; saved: idx */
static void index_select_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0], *y = n->out;
    const tsr_tensor *idx = n->saved;
    int d = (int)n->iarg[0];
    int64_t outer, inner, K = idx->numel, nx = x->shape[d];
    split_dims(x, d, &outer, &inner);
    float *gx = tsr_grad(c, x);
    const float *go = y->grad;
    const int32_t *ix = tsr_i32(idx);
    /* tiles of (outer row, column block) own disjoint parts of gx */
    int64_t nb = (inner + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (y->numel >= PAR_MIN && outer * nb > 1)
    for (int64_t t = 0; t < outer * nb; t++) {
        int64_t o = t / nb, j0 = (t % nb) * COL_BLOCK;
        int64_t j1 = j0 + COL_BLOCK < inner ? j0 + COL_BLOCK : inner;
        for (int64_t k = 0; k < K; k++) {
            float *dd = gx + (o * nx + ix[k]) * inner;
            const float *s = go + (o * K + k) * inner;
#pragma omp simd
            for (int64_t j = j0; j < j1; j++) dd[j] += s[j];
        }
    }
}

tsr_tensor *tsr_index_select(tsr_ctx *c, tsr_tensor *x, int dim, const tsr_tensor *idx) {
    TSR_ASSERT(idx->dtype == TSR_I32 && idx->ndim == 1);
    int d = norm_dim(dim, x->ndim);
    int64_t outer, inner, K = idx->numel, nx = x->shape[d];
    const int32_t *ix = tsr_i32(idx);
    for (int64_t k = 0; k < K; k++) TSR_ASSERT(ix[k] >= 0 && ix[k] < nx);
    split_dims(x, d, &outer, &inner);
    int64_t osh[TSR_MAX_DIMS];
    memcpy(osh, x->shape, sizeof osh);
    osh[d] = K;
    tsr_tensor *out = tsr_new(c, x->dtype, x->ndim, osh);
    size_t es = tsr_dtype_size(x->dtype), row = (size_t)inner * es;
    const char *src = x->data;
    char *dst = out->data;
#pragma omp parallel for schedule(static) if (out->numel >= PAR_MIN && outer * K > 1)
    for (int64_t t = 0; t < outer * K; t++) {
        int64_t o = t / K, k = t % K;
        memcpy(dst + (size_t)t * row, src + (size_t)(o * nx + ix[k]) * row, row);
    }
    tsr_node *n = tsr_record(c, "index_select", index_select_backward, out, 1, &x);
    if (n) n->iarg[0] = d, n->saved = (void *)idx;
    return out;
}

/* ------------------------------------------------------------- gather */

/* shapes padded to 4 dims; x strides; the dim index moves by the padding */
typedef struct {
    int64_t on[4], xs[4];
    int d;
} gather_geom;

static void gather_make(gather_geom *g, const tsr_tensor *x, int d, const tsr_tensor *idx) {
    int pad = 4 - x->ndim;
    int64_t xsh[4];
    for (int i = 0; i < 4; i++) {
        xsh[i] = i < pad ? 1 : x->shape[i - pad];
        g->on[i] = i < pad ? 1 : idx->shape[i - pad];
    }
    int64_t st = 1;
    for (int i = 3; i >= 0; i--) g->xs[i] = st, st *= xsh[i];
    g->d = d + pad;
    for (int i = 0; i < 4; i++) TSR_ASSERT(i == g->d || g->on[i] <= xsh[i]);
}

static inline int64_t gather_off(const gather_geom *g, int64_t r, int64_t j, int32_t v) {
    int64_t i[4] = {r / (g->on[1] * g->on[2]), (r / g->on[2]) % g->on[1], r % g->on[2], j};
    i[g->d] = v;
    return i[0] * g->xs[0] + i[1] * g->xs[1] + i[2] * g->xs[2] + i[3] * g->xs[3];
}

static void gather_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0], *y = n->out;
    const tsr_tensor *idx = n->saved;
    gather_geom g;
    gather_make(&g, x, (int)n->iarg[0], idx);
    float *gx = tsr_grad(c, x);
    const float *go = y->grad;
    const int32_t *ix = tsr_i32(idx);
    /* serial: rows that differ only along dim hit the same gx elements, and
     * gather grads are small next to the ops around them */
    int64_t rows = g.on[0] * g.on[1] * g.on[2], n3 = g.on[3];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < n3; j++) gx[gather_off(&g, r, j, ix[r * n3 + j])] += go[r * n3 + j];
}

tsr_tensor *tsr_gather(tsr_ctx *c, tsr_tensor *x, int dim, const tsr_tensor *idx) {
    TSR_ASSERT(idx->dtype == TSR_I32 && idx->ndim == x->ndim);
    TSR_ASSERT(tsr_dtype_size(x->dtype) == 4);
    int d = norm_dim(dim, x->ndim);
    const int32_t *ix = tsr_i32(idx);
    for (int64_t k = 0; k < idx->numel; k++) TSR_ASSERT(ix[k] >= 0 && ix[k] < x->shape[d]);
    gather_geom g;
    gather_make(&g, x, d, idx);
    tsr_tensor *out = tsr_new(c, x->dtype, idx->ndim, idx->shape);
    const uint32_t *X = x->data;
    uint32_t *O = out->data;
    int64_t rows = g.on[0] * g.on[1] * g.on[2], n3 = g.on[3];
#pragma omp parallel for schedule(static) if (out->numel >= PAR_MIN && rows > 1)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < n3; j++) O[r * n3 + j] = X[gather_off(&g, r, j, ix[r * n3 + j])];
    tsr_node *n = tsr_record(c, "gather", gather_backward, out, 1, &x);
    if (n) n->iarg[0] = d, n->saved = (void *)idx;
    return out;
}
