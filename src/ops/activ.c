/* tessera ops: activations (relu, gelu tanh/erf, silu, sigmoid, tanh),
 * SwiGLU and inverted dropout, for the MLPs and heads of every family.
 *
 * Values match torch's F.gelu(approximate='tanh'/'none'), F.silu etc. The
 * formulas are rearranged so saturated tails keep full precision instead
 * of cancelling: 0.5 (1 + tanh u) = sigma(2u), 1 + erf = erfc, 1 - sigma =
 * sigma(-x), 1 - tanh^2 = 4 sigma(2x) sigma(-2x). The sigmoid family runs
 * on a polynomial exp (below) so those loops vectorise; erf and tanh
 * forwards call libm. */
#include "tessera/ops.h"
#include "tessera/fastmath.h"

#include <math.h>

#define PAR_MIN 16384

#define SQRT_2_OVER_PI 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_KAPPA 0.044715f
#define INV_SQRT2 0.7071067811865476f
#define INV_SQRT_2PI 0.3989422804014327f


/* sigma(x) and 1 - sigma(x) = sigma(-x), each without cancellation */
static inline void sigm2(float x, float *s, float *sn) {
    float e = tsr_expf_fast(-fabsf(x));
    float big = 1.0f / (1.0f + e), small = e * big;
    *s = x >= 0.0f ? big : small;
    *sn = x >= 0.0f ? small : big;
}

static inline float sigm(float x) {
    float s, sn;
    sigm2(x, &s, &sn);
    return s;
}

typedef enum { ACT_RELU, ACT_GELU_TANH, ACT_GELU_ERF, ACT_SILU, ACT_SIGMOID, ACT_TANH, ACT_COUNT } act_kind;

static const char *const act_names[ACT_COUNT] = {"relu", "gelu_tanh", "gelu", "silu", "sigmoid", "tanh"};

/* u = sqrt(2/pi) (x + kappa x^3); gelu_tanh(x) = x sigma(2u) */
static inline float gelu_u(float x) { return SQRT_2_OVER_PI * (x + GELU_KAPPA * x * x * x); }

static inline float gelu_tanh_d(float x) {
    float s, sn;
    sigm2(2.0f * gelu_u(x), &s, &sn);
    return s + 2.0f * x * s * sn * SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_KAPPA * x * x);
}

static inline float silu_d(float x) {
    float s, sn;
    sigm2(x, &s, &sn);
    return s * (1.0f + x * sn);
}

static inline float sigmoid_d(float x) {
    float s, sn;
    sigm2(x, &s, &sn);
    return s * sn;
}

static inline float tanh_d(float x) {
    float s, sn;
    sigm2(2.0f * x, &s, &sn);
    return 4.0f * s * sn;
}

/* one loop per kind over cnt elements: a switch inside the loop would
 * keep -O2 from vectorising. The if clause names parallel: without the
 * modifier it also applies to simd, and arrays under PAR_MIN ran one
 * element at a time. */
#define ACT_LOOP(STMT)                                                                            \
    do {                                                                                          \
        _Pragma("omp parallel for simd schedule(static) if (parallel: cnt >= PAR_MIN)")           \
        for (int64_t i = 0; i < cnt; i++) STMT;                                                   \
    } while (0)

static void act_fwd(act_kind k, float *y, const float *x, int64_t cnt) {
    switch (k) {
    case ACT_RELU: ACT_LOOP(y[i] = x[i] > 0.0f ? x[i] : 0.0f); break;
    case ACT_GELU_TANH: ACT_LOOP(y[i] = x[i] * sigm(2.0f * gelu_u(x[i]))); break;
    case ACT_SILU: ACT_LOOP(y[i] = x[i] * sigm(x[i])); break;
    case ACT_SIGMOID: ACT_LOOP(y[i] = sigm(x[i])); break;
    case ACT_GELU_ERF:
#pragma omp parallel for schedule(static) if (cnt >= PAR_MIN)
        for (int64_t i = 0; i < cnt; i++) y[i] = x[i] * 0.5f * erfcf(-x[i] * INV_SQRT2);
        break;
    default:
#pragma omp parallel for schedule(static) if (cnt >= PAR_MIN)
        for (int64_t i = 0; i < cnt; i++) y[i] = tanhf(x[i]);
    }
}

static void act_backward(tsr_ctx *c, tsr_node *n) {
    act_kind k = (act_kind)n->iarg[0];
    tsr_tensor *xt = n->in[0];
    float *gx = tsr_grad(c, xt);
    const float *go = n->out->grad, *x = tsr_f32(xt);
    int64_t cnt = xt->numel;
    switch (k) {
    case ACT_RELU: ACT_LOOP(gx[i] += x[i] > 0.0f ? go[i] : 0.0f); break;
    case ACT_GELU_TANH: ACT_LOOP(gx[i] += go[i] * gelu_tanh_d(x[i])); break;
    case ACT_SILU: ACT_LOOP(gx[i] += go[i] * silu_d(x[i])); break;
    case ACT_SIGMOID: ACT_LOOP(gx[i] += go[i] * sigmoid_d(x[i])); break;
    case ACT_TANH: ACT_LOOP(gx[i] += go[i] * tanh_d(x[i])); break;
    default:
#pragma omp parallel for schedule(static) if (cnt >= PAR_MIN)
        for (int64_t i = 0; i < cnt; i++) {
            float v = x[i];
            gx[i] += go[i] * (0.5f * erfcf(-v * INV_SQRT2) + v * INV_SQRT_2PI * expf(-0.5f * v * v));
        }
    }
}

static tsr_tensor *act(tsr_ctx *c, tsr_tensor *x, act_kind k) {
    TSR_ASSERT(x->dtype == TSR_F32);
    tsr_tensor *out = tsr_new_like(c, x);
    act_fwd(k, tsr_f32(out), tsr_f32(x), x->numel);
    tsr_node *n = tsr_record(c, act_names[k], act_backward, out, 1, &x);
    if (n) n->iarg[0] = k;
    return out;
}

tsr_tensor *tsr_relu(tsr_ctx *c, tsr_tensor *x) { return act(c, x, ACT_RELU); }
tsr_tensor *tsr_gelu(tsr_ctx *c, tsr_tensor *x, bool tanh_approx) {
    return act(c, x, tanh_approx ? ACT_GELU_TANH : ACT_GELU_ERF);
}
tsr_tensor *tsr_silu(tsr_ctx *c, tsr_tensor *x) { return act(c, x, ACT_SILU); }
tsr_tensor *tsr_sigmoid(tsr_ctx *c, tsr_tensor *x) { return act(c, x, ACT_SIGMOID); }
tsr_tensor *tsr_tanh(tsr_ctx *c, tsr_tensor *x) { return act(c, x, ACT_TANH); }

/* ------------------------------------------------------------- swiglu */

static void swiglu_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *gt = n->in[0], *ut = n->in[1];
    const float *go = n->out->grad, *g = tsr_f32(gt), *u = tsr_f32(ut);
    float *dg = gt->requires_grad ? tsr_grad(c, gt) : NULL;
    float *du = ut->requires_grad ? tsr_grad(c, ut) : NULL;
    int64_t N = gt->numel;
    /* one loop per case so each body is branch-free and vectorises */
    if (dg && du) {
#pragma omp parallel for simd schedule(static) if (parallel: N >= PAR_MIN)
        for (int64_t i = 0; i < N; i++) {
            float s, sn;
            sigm2(g[i], &s, &sn);
            dg[i] += go[i] * u[i] * s * (1.0f + g[i] * sn);
            du[i] += go[i] * g[i] * s;
        }
    } else if (dg) {
#pragma omp parallel for simd schedule(static) if (parallel: N >= PAR_MIN)
        for (int64_t i = 0; i < N; i++) {
            float s, sn;
            sigm2(g[i], &s, &sn);
            dg[i] += go[i] * u[i] * s * (1.0f + g[i] * sn);
        }
    } else if (du) {
#pragma omp parallel for simd schedule(static) if (parallel: N >= PAR_MIN)
        for (int64_t i = 0; i < N; i++) du[i] += go[i] * g[i] * sigm(g[i]);
    }
}

tsr_tensor *tsr_swiglu(tsr_ctx *c, tsr_tensor *gate, tsr_tensor *up) {
    TSR_ASSERT(gate->dtype == TSR_F32 && up->dtype == TSR_F32 && tsr_same_shape(gate, up));
    tsr_tensor *out = tsr_new_like(c, gate);
    const float *g = tsr_f32(gate), *u = tsr_f32(up);
    float *y = tsr_f32(out);
    int64_t N = gate->numel;
#pragma omp parallel for simd schedule(static) if (parallel: N >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) y[i] = g[i] * sigm(g[i]) * u[i];
    tsr_tensor *ins[2] = {gate, up};
    tsr_record(c, "swiglu", swiglu_backward, out, 2, ins);
    return out;
}

/* ------------------------------------------------------------ dropout */

/* saved: u8 keep mask; farg 0: 1/(1-p) */
static void dropout_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    const uint8_t *m = n->saved;
    const float *go = n->out->grad;
    float *gx = tsr_grad(c, x), s = n->farg[0];
    int64_t N = x->numel;
#pragma omp parallel for simd schedule(static) if (parallel: N >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) gx[i] += m[i] ? go[i] * s : 0.0f;
}

/* keep mask of N elements (arena) from c->rng: keep when a 24-bit uniform
 * draw is >= p; each u64 gives two draws, in element order, so the mask
 * depends only on the rng state */
static uint8_t *dropout_mask(tsr_ctx *c, int64_t N, float p) {
    uint8_t *m = tsr_arena_alloc(&c->arena, (size_t)(N > 0 ? N : 1));
    uint32_t thr = (uint32_t)((double)p * 16777216.0 + 0.5);
    for (int64_t i = 0; i < N; i += 2) {
        uint64_t r = tsr_rng_u64(&c->rng);
        m[i] = (uint32_t)(r >> 40) >= thr;
        if (i + 1 < N) m[i + 1] = (uint32_t)((r >> 8) & 0xffffffu) >= thr;
    }
    return m;
}

tsr_tensor *tsr_dropout(tsr_ctx *c, tsr_tensor *x, float p) {
    TSR_ASSERT(x->dtype == TSR_F32 && p >= 0.0f && p <= 1.0f);
    if (!c->training || p == 0.0f) return x;
    int64_t N = x->numel;
    uint8_t *m = dropout_mask(c, N, p);
    float s = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    tsr_tensor *out = tsr_new_like(c, x);
    const float *X = tsr_f32(x);
    float *Y = tsr_f32(out);
#pragma omp parallel for simd schedule(static) if (parallel: N >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) Y[i] = m[i] ? X[i] * s : 0.0f;
    tsr_node *n = tsr_record(c, "dropout", dropout_backward, out, 1, &x);
    if (n) n->saved = m, n->farg[0] = s;
    return out;
}

/* ------------------------------------------------------- relu + dropout */

/* saved: u8 keep mask; farg 0: 1/(1-p) */
static void relu_dropout_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    const uint8_t *m = n->saved;
    const float *go = n->out->grad, *X = tsr_f32(x);
    float *gx = tsr_grad(c, x), s = n->farg[0];
    int64_t N = x->numel;
#pragma omp parallel for simd schedule(static) if (parallel: N >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) gx[i] += m[i] && X[i] > 0.0f ? go[i] * s : 0.0f;
}

tsr_tensor *tsr_relu_dropout(tsr_ctx *c, tsr_tensor *x, float p) {
    TSR_ASSERT(x->dtype == TSR_F32 && p >= 0.0f && p <= 1.0f);
    if (!c->training || p == 0.0f) return tsr_relu(c, x);
    int64_t N = x->numel;
    uint8_t *m = dropout_mask(c, N, p);
    float s = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    tsr_tensor *out = tsr_new_like(c, x);
    const float *X = tsr_f32(x);
    float *Y = tsr_f32(out);
#pragma omp parallel for simd schedule(static) if (parallel: N >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) Y[i] = m[i] && X[i] > 0.0f ? X[i] * s : 0.0f;
    tsr_node *n = tsr_record(c, "relu_dropout", relu_dropout_backward, out, 1, &x);
    if (n) n->saved = m, n->farg[0] = s;
    return out;
}
