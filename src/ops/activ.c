/* tessera ops: activations (relu, gelu tanh/erf, silu, sigmoid, tanh),
 * SwiGLU and inverted dropout, for the MLPs and heads of every family.
 * Values match torch's F.gelu(approximate='tanh'/'none') etc.; the
 * formulas are rearranged (sigma(2u) for 0.5(1+tanh u), erfc for 1+erf)
 * so saturated tails keep full precision instead of cancelling. Loops are elementwise, split across
 * threads on large tensors; libm calls keep them scalar per element. */
#include "tessera/ops.h"

#include <math.h>

#define PAR_MIN 16384

#define SQRT_2_OVER_PI 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_KAPPA 0.044715f
#define INV_SQRT2 0.7071067811865476f
#define INV_SQRT_2PI 0.3989422804014327f

static inline float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

/* sigma(x) and 1 - sigma(x) = sigma(-x), each without cancellation or
 * overflow: the saturated tails of gelu/silu grads depend on them */
static inline void sigm2(float x, float *s, float *sn) {
    if (x >= 0.0f) {
        float e = expf(-x);
        *s = 1.0f / (1.0f + e);
        *sn = e / (1.0f + e);
    } else {
        float e = expf(x);
        *s = e / (1.0f + e);
        *sn = 1.0f / (1.0f + e);
    }
}

typedef enum { ACT_RELU, ACT_GELU_TANH, ACT_GELU_ERF, ACT_SILU, ACT_SIGMOID, ACT_TANH, ACT_COUNT } act_kind;

static const char *const act_names[ACT_COUNT] = {"relu", "gelu_tanh", "gelu", "silu", "sigmoid", "tanh"};

/* gelu tanh: 0.5 (1 + tanh u) = sigma(2u), u = sqrt(2/pi) (x + kappa x^3);
 * gelu erf: Phi(x) = 0.5 erfc(-x/sqrt2), exact in the negative tail */
static inline float gelu_u(float x) { return SQRT_2_OVER_PI * (x + GELU_KAPPA * x * x * x); }

static inline float act_f(act_kind k, float x) {
    switch (k) {
    case ACT_RELU: return x > 0.0f ? x : 0.0f;
    case ACT_GELU_TANH: {
        float s, sn;
        sigm2(2.0f * gelu_u(x), &s, &sn);
        return x * s;
    }
    case ACT_GELU_ERF: return x * 0.5f * erfcf(-x * INV_SQRT2);
    case ACT_SILU: return x * sigm(x);
    case ACT_SIGMOID: return sigm(x);
    default: return tanhf(x);
    }
}

/* dy/dx from the input x and the output y (whichever is cheaper) */
static inline float act_d(act_kind k, float x, float y) {
    switch (k) {
    case ACT_RELU: return x > 0.0f ? 1.0f : 0.0f;
    case ACT_GELU_TANH: {
        float s, sn;
        sigm2(2.0f * gelu_u(x), &s, &sn);
        return s + 2.0f * x * s * sn * SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_KAPPA * x * x);
    }
    case ACT_GELU_ERF: return 0.5f * erfcf(-x * INV_SQRT2) + x * INV_SQRT_2PI * expf(-0.5f * x * x);
    case ACT_SILU: {
        float s, sn;
        sigm2(x, &s, &sn);
        return s * (1.0f + x * sn);
    }
    case ACT_SIGMOID: return y * (1.0f - y);
    default: return 1.0f - y * y;
    }
}

static void act_fwd(act_kind k, float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = act_f(k, x[i]);
}

static void act_backward(tsr_ctx *c, tsr_node *n) {
    act_kind k = (act_kind)n->iarg[0];
    tsr_tensor *xt = n->in[0], *yt = n->out;
    float *gx = tsr_grad(c, xt);
    const float *go = yt->grad, *x = tsr_f32(xt), *y = tsr_f32(yt);
    int64_t N = xt->numel;
#pragma omp parallel for schedule(static) if (N >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) gx[i] += go[i] * act_d(k, x[i], y[i]);
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
#pragma omp parallel for schedule(static) if (N >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        float s, sn;
        sigm2(g[i], &s, &sn);
        float sl = g[i] * s;
        if (dg) dg[i] += go[i] * u[i] * s * (1.0f + g[i] * sn);
        if (du) du[i] += go[i] * sl;
    }
}

tsr_tensor *tsr_swiglu(tsr_ctx *c, tsr_tensor *gate, tsr_tensor *up) {
    TSR_ASSERT(gate->dtype == TSR_F32 && up->dtype == TSR_F32 && tsr_same_shape(gate, up));
    tsr_tensor *out = tsr_new_like(c, gate);
    const float *g = tsr_f32(gate), *u = tsr_f32(up);
    float *y = tsr_f32(out);
    int64_t N = gate->numel;
#pragma omp parallel for schedule(static) if (N >= PAR_MIN)
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
#pragma omp parallel for schedule(static) if (N >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) gx[i] += m[i] ? go[i] * s : 0.0f;
}

tsr_tensor *tsr_dropout(tsr_ctx *c, tsr_tensor *x, float p) {
    TSR_ASSERT(x->dtype == TSR_F32 && p >= 0.0f && p <= 1.0f);
    if (!c->training || p == 0.0f) return x;
    int64_t N = x->numel;
    uint8_t *m = tsr_arena_alloc(&c->arena, (size_t)(N > 0 ? N : 1));
    /* keep when a 24-bit uniform draw is >= p; each u64 gives two draws,
     * in element order, so the mask depends only on the rng state */
    uint32_t thr = (uint32_t)((double)p * 16777216.0 + 0.5);
    for (int64_t i = 0; i < N; i += 2) {
        uint64_t r = tsr_rng_u64(&c->rng);
        m[i] = (uint32_t)(r >> 40) >= thr;
        if (i + 1 < N) m[i + 1] = (uint32_t)((r >> 8) & 0xffffffu) >= thr;
    }
    float s = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    tsr_tensor *out = tsr_new_like(c, x);
    const float *X = tsr_f32(x);
    float *Y = tsr_f32(out);
#pragma omp parallel for schedule(static) if (N >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) Y[i] = m[i] ? X[i] * s : 0.0f;
    tsr_node *n = tsr_record(c, "dropout", dropout_backward, out, 1, &x);
    if (n) n->saved = m, n->farg[0] = s;
    return out;
}
