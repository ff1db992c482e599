/* tessera ops: matrix multiply and linear layers. Forward and backward are
 * sgemm calls through the backend table; tsr_matmul_ref is the naive twin
 * the tests hold it to. */
#include "tessera/ops.h"

#include <string.h>

/* C(M,N) = op(A) op(B) + beta C with row-major leading dims from the flags */
static void gemm(const tsr_backend *be, bool ta, bool tb, int M, int N, int K, const float *A,
                 const float *B, float beta, float *C) {
    be->sgemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, beta, C, N);
}

void tsr_matmul_fwd(const tsr_backend *be, float *out, const float *a, const float *b, int M,
                    int N, int K, bool ta, bool tb, float beta) {
    gemm(be, ta, tb, M, N, K, a, b, beta, out);
}

void tsr_matmul_ref(float *out, const float *a, const float *b, int M, int N, int K, bool ta,
                    bool tb) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                float av = ta ? a[(int64_t)k * M + i] : a[(int64_t)i * K + k];
                float bv = tb ? b[(int64_t)j * K + k] : b[(int64_t)k * N + j];
                s += (double)av * bv;
            }
            out[(int64_t)i * N + j] = (float)s;
        }
}

/* geometry shared by forward and backward */
typedef struct {
    int64_t batch;  /* number of (M,N) products */
    int M, N, K;
    bool ta, tb, shared_b, fold; /* fold: b shared and !ta -> one sgemm */
} mm_geom;

static mm_geom geom(const tsr_tensor *a, const tsr_tensor *b, bool ta, bool tb) {
    TSR_ASSERT(a->dtype == TSR_F32 && b->dtype == TSR_F32);
    TSR_ASSERT(a->ndim >= 2 && b->ndim >= 2);
    mm_geom g;
    int ra = a->ndim;
    g.M = (int)(ta ? a->shape[ra - 1] : a->shape[ra - 2]);
    int Ka = (int)(ta ? a->shape[ra - 2] : a->shape[ra - 1]);
    int rb = b->ndim;
    g.K = (int)(tb ? b->shape[rb - 1] : b->shape[rb - 2]);
    g.N = (int)(tb ? b->shape[rb - 2] : b->shape[rb - 1]);
    TSR_ASSERT(Ka == g.K);
    g.batch = 1;
    for (int i = 0; i < ra - 2; i++) g.batch *= a->shape[i];
    g.shared_b = (rb == 2);
    if (!g.shared_b) {
        TSR_ASSERT(rb == ra);
        for (int i = 0; i < ra - 2; i++) TSR_ASSERT(a->shape[i] == b->shape[i]);
    }
    g.ta = ta;
    g.tb = tb;
    g.fold = g.shared_b && !ta;
    return g;
}

static void matmul_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *a = n->in[0], *b = n->in[1];
    mm_geom g = geom(a, b, n->iarg[0], n->iarg[1]);
    const float *go = n->out->grad;
    const float *A = tsr_f32(a), *B = tsr_f32(b);
    int64_t sa = (int64_t)g.M * g.K, sb = g.shared_b ? 0 : (int64_t)g.K * g.N, so = (int64_t)g.M * g.N;
    if (a->requires_grad) {
        float *ga = tsr_grad(c, a);
        if (g.fold) {
            /* da (bM,K) += dOut (bM,N) op(b)^T */
            gemm(c->be, false, !g.tb, (int)(g.batch * g.M), g.K, g.N, go, B, 1.0f, ga);
        } else {
            for (int64_t i = 0; i < g.batch; i++) {
                if (!g.ta) gemm(c->be, false, !g.tb, g.M, g.K, g.N, go + i * so, B + i * sb, 1.0f, ga + i * sa);
                else gemm(c->be, g.tb, true, g.K, g.M, g.N, B + i * sb, go + i * so, 1.0f, ga + i * sa);
            }
        }
    }
    if (b->requires_grad) {
        float *gb = tsr_grad(c, b);
        if (g.fold) {
            int Mt = (int)(g.batch * g.M);
            if (!g.tb) gemm(c->be, true, false, g.K, g.N, Mt, A, go, 1.0f, gb);
            else gemm(c->be, true, false, g.N, g.K, Mt, go, A, 1.0f, gb);
        } else {
            for (int64_t i = 0; i < g.batch; i++) {
                if (!g.tb) gemm(c->be, !g.ta, false, g.K, g.N, g.M, A + i * sa, go + i * so, 1.0f, gb + i * sb);
                else gemm(c->be, true, g.ta, g.N, g.K, g.M, go + i * so, A + i * sa, 1.0f, gb + i * sb);
            }
        }
    }
}

tsr_tensor *tsr_matmul(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b, bool ta, bool tb) {
    mm_geom g = geom(a, b, ta, tb);
    int64_t shape[TSR_MAX_DIMS];
    for (int i = 0; i < a->ndim - 2; i++) shape[i] = a->shape[i];
    shape[a->ndim - 2] = g.M;
    shape[a->ndim - 1] = g.N;
    tsr_tensor *out = tsr_new(c, TSR_F32, a->ndim, shape);
    const float *A = tsr_f32(a), *B = tsr_f32(b);
    float *O = tsr_f32(out);
    if (g.fold) {
        gemm(c->be, false, tb, (int)(g.batch * g.M), g.N, g.K, A, B, 0.0f, O);
    } else {
        int64_t sa = (int64_t)g.M * g.K, sb = g.shared_b ? 0 : (int64_t)g.K * g.N, so = (int64_t)g.M * g.N;
        for (int64_t i = 0; i < g.batch; i++) gemm(c->be, ta, tb, g.M, g.N, g.K, A + i * sa, B + i * sb, 0.0f, O + i * so);
    }
    tsr_tensor *ins[2] = {a, b};
    tsr_node *n = tsr_record(c, "matmul", matmul_backward, out, 2, ins);
    if (n) {
        n->iarg[0] = ta;
        n->iarg[1] = tb;
    }
    return out;
}

static void bias_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0], *bias = n->in[1];
    const float *go = n->out->grad;
    int64_t N = bias->numel, rows = x->numel / N;
    if (x->requires_grad) {
        float *gx = tsr_grad(c, x);
        for (int64_t i = 0; i < x->numel; i++) gx[i] += go[i];
    }
    if (bias->requires_grad) {
        float *gb = tsr_grad(c, bias);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < N; j++) gb[j] += go[r * N + j];
    }
}

/* x (..., N) + bias (N): used by linear; kept private to this file */
static tsr_tensor *add_bias(tsr_ctx *c, tsr_tensor *x, tsr_tensor *bias) {
    TSR_ASSERT(bias->ndim == 1 && bias->shape[0] == x->shape[x->ndim - 1]);
    tsr_tensor *out = tsr_new_like(c, x);
    int64_t N = bias->numel, rows = x->numel / N;
    const float *X = tsr_f32(x), *Bv = tsr_f32(bias);
    float *O = tsr_f32(out);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < N; j++) O[r * N + j] = X[r * N + j] + Bv[j];
    tsr_tensor *ins[2] = {x, bias};
    tsr_record(c, "add_bias", bias_backward, out, 2, ins);
    return out;
}

tsr_tensor *tsr_linear(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *bias) {
    TSR_ASSERT(w->ndim == 2);
    TSR_ASSERT(x->ndim >= 2);
    tsr_tensor *y = tsr_matmul(c, x, w, false, true);
    return bias ? add_bias(c, y, bias) : y;
}
