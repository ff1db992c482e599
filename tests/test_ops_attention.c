/* Tests for src/ops/attention.c: the tiled kernels against their naive
 * double-accumulating twins on odd sizes, masks (random, batched, tree,
 * fully hidden rows), bias kinds and grouped-query heads; thread-count
 * independence; finite-difference gradients for q, k, v and bias; PyTorch
 * fixtures (tools/refs/gen_attention.py) for output and all gradients;
 * all of it at every kernel level the CPU supports (scalar, AVX2, AVX-512).
 *
 * Tolerances
 * - fast vs naive: atol 2e-5, rtol 2e-4 on outputs and gradients. Inputs are
 *   N(0,1), so outputs and gradients are O(1) and f32 sums of up to 130 keys
 *   times 64 dims leave errors around 1e-6; our exp is within ~2 ulp.
 * - vs PyTorch: atol 1e-5, rtol 1e-4 (both sides f32 over <= 13 keys).
 * - gradcheck: eps 1e-2, atol 1e-3, rtol 1e-2: central differences of a
 *   smooth f32 function; truncation error ~eps^2 and f32 loss rounding
 *   ~1e-6/eps stay below 1e-3.
 * - hidden rows: output and gradients exactly 0; thread counts: bitwise;
 *   a row's output does not depend on how many queries share the forward:
 *   bitwise. */
#include "testutil.h"
#include "tessera/cpu.h"
#include "tessera/ops.h"

#include <math.h>
#include <string.h>

enum { M_NONE, M_RANDOM, M_BATCHED, M_TREE, M_EMPTY_ROWS };

typedef struct {
    int B, T, S, H, Hkv, D;
    bool causal;
    int mask, bias_kind;
    float scale;
} cfg;

static int64_t bias_numel(const cfg *c) {
    int64_t ts = (int64_t)c->T * c->S;
    switch (c->bias_kind) {
    case TSR_ATTN_BIAS_TS: return ts;
    case TSR_ATTN_BIAS_HTS: return c->H * ts;
    case TSR_ATTN_BIAS_BHTS: return (int64_t)c->B * c->H * ts;
    default: return 0;
    }
}

/* a speculative-decoding tree: draft token i sees the cached prefix,
 * its ancestors and itself */
static void tree_mask(uint8_t *m, int T, int S, uint64_t seed) {
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    int prefix = S - T, parent[256];
    TSR_ASSERT(T <= 256 && prefix >= 0);
    memset(m, 0, (size_t)T * S);
    for (int i = 0; i < T; i++) {
        parent[i] = i == 0 ? -1 : (int)tsr_rng_below(&r, (uint32_t)i + 1) - 1;
        for (int s = 0; s < prefix; s++) m[i * S + s] = 1;
        for (int j = i; j >= 0; j = parent[j]) m[i * S + prefix + j] = 1;
    }
}

/* run fwd + bwd with the tiled kernels on nthreads; dq..dbias start at 0.5
 * so accumulation (+=) is exercised */
static void run_fast(const cfg *c, int nthreads, const float *q, const float *k, const float *v,
                     const uint8_t *mask, const float *bias, const float *dout, float *out,
                     float *lse, float *dq, float *dk, float *dv, float *dbias) {
    int64_t nq = (int64_t)c->B * c->T * c->H * c->D, nk = (int64_t)c->B * c->S * c->Hkv * c->D;
    float scale = c->scale != 0.f ? c->scale : 1.0f / sqrtf((float)c->D);
    size_t sf = tsr_attention_fwd_scratch(c->B, c->T, c->S, c->Hkv, c->D, nthreads);
    size_t sb = tsr_attention_bwd_scratch(c->B, c->T, c->S, c->H, c->Hkv, c->D, nthreads);
    float *scratch = malloc(sizeof(float) * (sf > sb ? sf : sb));
    tsr_attention_fwd(out, lse, scratch, q, k, v, mask, c->mask == M_BATCHED || c->mask == M_EMPTY_ROWS,
                      bias, c->bias_kind, c->B, c->T, c->S, c->H, c->Hkv, c->D, c->causal, scale, nthreads);
    for (int64_t i = 0; i < nq; i++) dq[i] = 0.5f;
    for (int64_t i = 0; i < nk; i++) dk[i] = dv[i] = 0.5f;
    for (int64_t i = 0; i < bias_numel(c); i++) dbias[i] = 0.5f;
    tsr_attention_bwd(dq, dk, dv, bias ? dbias : NULL, scratch, dout, out, lse, q, k, v, mask,
                      c->mask == M_BATCHED || c->mask == M_EMPTY_ROWS, bias, c->bias_kind, c->B, c->T,
                      c->S, c->H, c->Hkv, c->D, c->causal, scale, nthreads);
    free(scratch);
}

static void check_case(const cfg *c, int idx) {
    char what[128];
    int64_t nq = (int64_t)c->B * c->T * c->H * c->D, nk = (int64_t)c->B * c->S * c->Hkv * c->D;
    int64_t nb = bias_numel(c), nm = (int64_t)c->B * c->T * c->S;
    float *q = malloc(4 * nq), *k = malloc(4 * nk), *v = malloc(4 * nk), *dout = malloc(4 * nq);
    float *bias = nb ? malloc(4 * nb) : NULL;
    uint8_t *mask = c->mask ? malloc((size_t)nm) : NULL;
    tu_randn(q, nq, 10 + idx, 1);
    tu_randn(k, nk, 20 + idx, 1);
    tu_randn(v, nk, 30 + idx, 1);
    tu_randn(dout, nq, 40 + idx, 1);
    if (bias) tu_randn(bias, nb, 50 + idx, 1);
    tsr_rng r;
    tsr_rng_seed(&r, 60 + idx);
    if (c->mask == M_RANDOM || c->mask == M_BATCHED)
        for (int64_t i = 0; i < nm; i++) mask[i] = tsr_rng_uniform(&r) < 0.7f;
    if (c->mask == M_TREE) tree_mask(mask, c->T, c->S, 70 + idx);
    if (c->mask == M_EMPTY_ROWS) { /* batched; batch 0 rows 0 and T-1 see nothing */
        for (int64_t i = 0; i < nm; i++) mask[i] = tsr_rng_uniform(&r) < 0.8f;
        memset(mask, 0, c->S);
        memset(mask + (int64_t)(c->T - 1) * c->S, 0, c->S);
    }
    int mb = c->mask == M_BATCHED || c->mask == M_EMPTY_ROWS;

    float *out = malloc(4 * nq), *lse = malloc(4 * (size_t)c->B * c->H * c->T);
    float *dq = malloc(4 * nq), *dk = malloc(4 * nk), *dv = malloc(4 * nk), *db = malloc(4 * (nb ? nb : 1));
    run_fast(c, 2, q, k, v, mask, bias, dout, out, lse, dq, dk, dv, db);

    float *ro = malloc(4 * nq), *rq = malloc(4 * nq), *rk = malloc(4 * nk), *rv = malloc(4 * nk),
          *rb = malloc(4 * (nb ? nb : 1));
    tsr_attention_ref(ro, q, k, v, mask, mb, bias, c->bias_kind, c->B, c->T, c->S, c->H, c->Hkv, c->D,
                      c->causal, c->scale);
    for (int64_t i = 0; i < nq; i++) rq[i] = 0.5f;
    for (int64_t i = 0; i < nk; i++) rk[i] = rv[i] = 0.5f;
    for (int64_t i = 0; i < nb; i++) rb[i] = 0.5f;
    tsr_attention_bwd_ref(rq, rk, rv, bias ? rb : NULL, dout, q, k, v, mask, mb, bias, c->bias_kind,
                          c->B, c->T, c->S, c->H, c->Hkv, c->D, c->causal, c->scale);
    snprintf(what, sizeof what, "case %d (T=%d S=%d H=%d Hkv=%d D=%d) out", idx, c->T, c->S, c->H, c->Hkv, c->D);
    tu_close(what, out, ro, nq, 2e-5, 2e-4);
    snprintf(what, sizeof what, "case %d dq", idx);
    tu_close(what, dq, rq, nq, 2e-5, 2e-4);
    snprintf(what, sizeof what, "case %d dk", idx);
    tu_close(what, dk, rk, nk, 2e-5, 2e-4);
    snprintf(what, sizeof what, "case %d dv", idx);
    tu_close(what, dv, rv, nk, 2e-5, 2e-4);
    if (nb) {
        snprintf(what, sizeof what, "case %d dbias", idx);
        tu_close(what, db, rb, nb, 2e-5, 2e-4);
    }

    /* rows with no visible key: exact zeros, untouched dq */
    if (c->mask == M_EMPTY_ROWS) {
        bool ok = true;
        for (int t = 0; t < c->T; t += c->T - 1)
            for (int h = 0; h < c->H; h++)
                for (int d = 0; d < c->D; d++) {
                    int64_t o = ((int64_t)t * c->H + h) * c->D + d;
                    ok = ok && out[o] == 0.f && dq[o] == 0.5f;
                }
        TU_CHECK(ok, "case %d: hidden rows must give zero output and zero dq", idx);
    }

    /* the thread count changes only who computes a tile, never the sums */
    float *out3 = malloc(4 * nq), *lse3 = malloc(4 * (size_t)c->B * c->H * c->T);
    float *dq3 = malloc(4 * nq), *dk3 = malloc(4 * nk), *dv3 = malloc(4 * nk), *db3 = malloc(4 * (nb ? nb : 1));
    run_fast(c, 3, q, k, v, mask, bias, dout, out3, lse3, dq3, dk3, dv3, db3);
    bool same = memcmp(out, out3, 4 * nq) == 0 && memcmp(dq, dq3, 4 * nq) == 0 &&
                memcmp(dk, dk3, 4 * nk) == 0 && memcmp(dv, dv3, 4 * nk) == 0 &&
                (!nb || memcmp(db, db3, 4 * nb) == 0);
    TU_CHECK(same, "case %d: results differ between 2 and 3 threads", idx);

    free(q), free(k), free(v), free(dout), free(bias), free(mask), free(out), free(lse);
    free(dq), free(dk), free(dv), free(db), free(ro), free(rq), free(rk), free(rv), free(rb);
    free(out3), free(lse3), free(dq3), free(dk3), free(dv3), free(db3);
}

/* ---- gradcheck through the autograd op: in = q, k, v, mask (u8), bias */
typedef struct {
    bool causal;
    float scale;
    bool has_mask, has_bias;
} gc_opts;

static tsr_tensor *attn_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    const gc_opts *g = ud;
    tsr_attn_opts o = {g->causal, g->has_mask ? in[3] : NULL, g->has_bias ? in[4] : NULL, g->scale};
    return tsr_attention(c, in[0], in[1], in[2], &o);
}

static void gradcheck_case(const char *name, int B, int T, int S, int H, int Hkv, int D,
                           bool causal, int bias_ndim, bool empty_row, uint64_t seed) {
    float q[512], k[512], v[512], bias[512];
    uint8_t mask[256];
    TSR_ASSERT(B * T * H * D <= 512 && B * S * Hkv * D <= 512 && B * H * T * S <= 512 && T * S <= 256);
    tu_randn(q, B * T * H * D, seed, 1);
    tu_randn(k, B * S * Hkv * D, seed + 1, 1);
    tu_randn(v, B * S * Hkv * D, seed + 2, 1);
    tu_randn(bias, B * H * T * S, seed + 3, 1);
    tsr_rng r;
    tsr_rng_seed(&r, seed + 4);
    for (int i = 0; i < T * S; i++) mask[i] = tsr_rng_uniform(&r) < 0.75f;
    if (empty_row) memset(mask + S, 0, S);
    gc_input in[5] = {{TSR_F32, 4, {B, T, H, D}, q, true},
                      {TSR_F32, 4, {B, S, Hkv, D}, k, true},
                      {TSR_F32, 4, {B, S, Hkv, D}, v, true},
                      {TSR_U8, 2, {T, S}, mask, false},
                      {TSR_F32, bias_ndim, {0}, bias, bias_ndim > 0}};
    if (bias_ndim == 2) in[4].shape[0] = T, in[4].shape[1] = S;
    if (bias_ndim == 3) in[4].shape[0] = H, in[4].shape[1] = T, in[4].shape[2] = S;
    if (bias_ndim == 4) in[4].shape[0] = B, in[4].shape[1] = H, in[4].shape[2] = T, in[4].shape[3] = S;
    if (bias_ndim == 0) in[4] = (gc_input){TSR_F32, 1, {1}, bias, false};
    gc_opts o = {causal, 0.f, true, bias_ndim > 0};
    tu_gradcheck(name, attn_fn, &o, 5, in, 1e-2, 1e-3, 1e-2, 200);
}

/* ---- PyTorch fixtures */
static void fixture_case(tsr_ctx *c, const tref *r, const char *name) {
    char key[96];
#define K(s) (snprintf(key, sizeof key, "%s_%s", name, s), key)
    tsr_ctx_reset(c);
    const float *cfgv = tref_get(r, K("cfg"))->data;
    tsr_tensor *q = tref_tensor(c, r, K("q"), true), *k = tref_tensor(c, r, K("k"), true),
               *v = tref_tensor(c, r, K("v"), true);
    tsr_attn_opts o = {cfgv[0] != 0.f, NULL, NULL, cfgv[1]};
    const tref_entry *me = tref_find(r, K("mask"));
    if (me) {
        tsr_tensor *m = tsr_new(c, TSR_U8, me->ndim, me->shape);
        for (int64_t i = 0; i < me->numel; i++) tsr_u8(m)[i] = (uint8_t)((const int32_t *)me->data)[i];
        o.mask = m;
    }
    if (tref_find(r, K("bias"))) o.bias = tref_tensor(c, r, K("bias"), true);
    tsr_tensor *y = tsr_attention(c, q, k, v, &o);
    tu_close_ref(r, K("y"), tsr_f32(y), y->numel, 1e-5, 1e-4);
    tsr_backward_with(c, y, tref_get(r, K("gy"))->data);
    tu_close_ref(r, K("gq"), q->grad, q->numel, 1e-5, 1e-4);
    tu_close_ref(r, K("gk"), k->grad, k->numel, 1e-5, 1e-4);
    tu_close_ref(r, K("gv"), v->grad, v->numel, 1e-5, 1e-4);
    if (o.bias) tu_close_ref(r, K("gbias"), o.bias->grad, o.bias->numel, 1e-5, 1e-4);
#undef K
}

/* Speculative verification scores T draft tokens in one forward and must
 * get the logits that token-by-token decoding would: row i of a T-token
 * causal forward over S keys equals, bit for bit, a 1-token forward over
 * the first S-T+i+1 keys. */
static void check_batch_invariance(void) {
    enum { B = 1, S = 77, H = 4, Hkv = 2, D = 32 };
    float q[B * 40 * H * D], k[B * S * Hkv * D], v[B * S * Hkv * D], o1[H * D], on[40 * H * D];
    tu_randn(q, B * 40 * H * D, 91, 1);
    tu_randn(k, B * S * Hkv * D, 92, 1);
    tu_randn(v, B * S * Hkv * D, 93, 1);
    float *scratch = malloc(sizeof(float) * tsr_attention_fwd_scratch(B, 40, S, Hkv, D, 2));
    bool same = true;
    for (int T = 2; T <= 40; T += 19) {
        tsr_attention_fwd(on, NULL, scratch, q, k, v, NULL, 0, NULL, 0, B, T, S, H, Hkv, D, true, 0.125f, 2);
        for (int i = 0; i < T; i++) {
            tsr_attention_fwd(o1, NULL, scratch, q + i * H * D, k, v, NULL, 0, NULL, 0, B, 1, S - T + i + 1,
                              H, Hkv, D, true, 0.125f, 2);
            same = same && memcmp(o1, on + i * H * D, sizeof o1) == 0;
        }
    }
    TU_CHECK(same, "a row of a T-token forward differs from the same token decoded alone");
    free(scratch);
}

/* every check above at the kernel level in use */
static void run_checks(void) {
    static const cfg cases[] = {
        {1, 1, 1, 1, 1, 8, false, M_NONE, 0, 0},
        {2, 1, 1, 4, 2, 16, true, M_NONE, 0, 0},
        {2, 1, 37, 4, 1, 16, true, M_NONE, TSR_ATTN_BIAS_HTS, 0},
        {1, 5, 13, 4, 2, 8, true, M_RANDOM, TSR_ATTN_BIAS_TS, 0},
        {2, 40, 40, 4, 1, 64, true, M_NONE, 0, 0},
        {2, 33, 70, 4, 2, 16, false, M_BATCHED, TSR_ATTN_BIAS_HTS, 0},
        {1, 19, 19, 4, 4, 8, true, M_TREE, TSR_ATTN_BIAS_BHTS, 0},
        {2, 12, 20, 4, 2, 32, true, M_TREE, 0, 0.2f},
        {2, 9, 9, 4, 4, 16, false, M_EMPTY_ROWS, TSR_ATTN_BIAS_BHTS, 0},
        {1, 7, 4, 2, 1, 8, true, M_NONE, 0, 0}, /* T > S: first rows see nothing */
        {2, 70, 130, 4, 2, 32, true, M_RANDOM, TSR_ATTN_BIAS_TS, 0},
        {1, 37, 45, 2, 1, 48, false, M_NONE, TSR_ATTN_BIAS_HTS, 0},
        {1, 17, 23, 3, 3, 20, true, M_BATCHED, 0, 0},
    };
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) check_case(&cases[i], i);

    check_batch_invariance();

    gradcheck_case("attention gqa causal mask bias(H,T,S)", 2, 3, 5, 4, 2, 8, true, 3, true, 100);
    gradcheck_case("attention mqa bias(B,H,T,S)", 1, 4, 4, 2, 1, 16, false, 4, false, 200);
    gradcheck_case("attention shared bias(T,S)", 2, 3, 3, 2, 2, 4, false, 2, true, 300);
    gradcheck_case("attention causal no bias", 2, 4, 6, 2, 1, 8, true, 0, false, 400);

    tref *r = tref_load("tests/refs/attention.tref");
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    const char *names[] = {"gqa", "full", "tree", "mqa", "decode"};
    for (int i = 0; i < 5; i++) fixture_case(&c, r, names[i]);
    tsr_ctx_free(&c);
    tref_free(r);
}

/* The scalar, AVX2 and AVX-512 kernels are separate code (attention.c
 * dispatches on tsr_cpu_level()): every check runs at every level this CPU
 * supports (or only at TESSERA_CPU's). The AVX-512 BF16 level runs the
 * AVX-512 kernels, so it is not repeated. */
int main(void) {
    tsr_threads_set(0);
    int lv[TSR_CPU_LEVELS];
    int nl = tu_levels(lv);
    for (int i = 0; i < nl; i++) {
        if (nl > 1 && lv[i] > TSR_CPU_AVX512) continue;
        tu_level_set(lv[i]);
        run_checks();
    }
    tu_level_restore();
    return tu_finish("ops_attention");
}
