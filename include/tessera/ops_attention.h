/* tessera ops: fused scaled-dot-product attention with an arbitrary boolean
 * mask and an optional additive bias. Kernel in src/ops/attention.c
 * (fused forward + backward, one tape node, a naive _ref twin). */
#ifndef TESSERA_OPS_ATTENTION_H
#define TESSERA_OPS_ATTENTION_H

#include "tessera/core.h"

typedef struct {
    /* query t (of T) may see key s (of S) iff s <= t + (S - T) (KV cache) */
    bool causal;
    /* u8, (T,S) shared or (B,T,S); 1 = may attend; ANDed with causal.
     * Tree and group masks of speculative decoding go here. */
    const tsr_tensor *mask;
    /* f32 added to the scores: (T,S), (H,T,S) or (B,H,T,S); may require
     * grad (learned relative/graph biases). NULL for none. */
    tsr_tensor *bias;
    float scale; /* 0: 1/sqrt(D) */
} tsr_attn_opts;

/* q (B,T,H,D), k and v (B,S,Hkv,D) with H % Hkv == 0 (grouped-query);
 * out (B,T,H,D). A row with no visible key outputs zeros. */
tsr_tensor *tsr_attention(tsr_ctx *c, tsr_tensor *q, tsr_tensor *k, tsr_tensor *v,
                          const tsr_attn_opts *o);

/* bias_kind of the raw-pointer kernels below */
enum { TSR_ATTN_BIAS_NONE = 0, TSR_ATTN_BIAS_TS = 1, TSR_ATTN_BIAS_HTS = 2, TSR_ATTN_BIAS_BHTS = 3 };

/* Kernels. q (B,T,H,D), k and v (B,S,Hkv,D), out/dout (B,T,H,D); mask u8
 * (T,S) or (B,T,S) if mask_batched (NULL: all visible); bias by bias_kind.
 * lse (B,H,T) is the per-row logsumexp of the scaled scores (-inf for a row
 * with no visible key; may be NULL in the forward). scale must be resolved
 * (not 0). scratch holds tsr_attention_{fwd,bwd}_scratch() floats and
 * nthreads is the OpenMP team size the scratch was sized for. Results do
 * not depend on nthreads. Backward accumulates (+=) into any of
 * dq, dk, dv, dbias that is not NULL (dbias has the bias's shape). */
size_t tsr_attention_fwd_scratch(int B, int T, int S, int Hkv, int D, int nthreads);
size_t tsr_attention_bwd_scratch(int B, int T, int S, int H, int Hkv, int D, int nthreads);
void tsr_attention_fwd(float *out, float *lse, float *scratch, const float *q, const float *k,
                       const float *v, const uint8_t *mask, int mask_batched, const float *bias,
                       int bias_kind, int B, int T, int S, int H, int Hkv, int D, bool causal,
                       float scale, int nthreads);
void tsr_attention_bwd(float *dq, float *dk, float *dv, float *dbias, float *scratch,
                       const float *dout, const float *out, const float *lse, const float *q,
                       const float *k, const float *v, const uint8_t *mask, int mask_batched,
                       const float *bias, int bias_kind, int B, int T, int S, int H, int Hkv,
                       int D, bool causal, float scale, int nthreads);

/* naive reference (double accumulation) for the tests: out as above */
void tsr_attention_ref(float *out, const float *q, const float *k, const float *v,
                       const uint8_t *mask, int mask_batched, const float *bias, int bias_kind,
                       int B, int T, int S, int H, int Hkv, int D, bool causal, float scale);
/* naive backward twin: accumulates (+=) like tsr_attention_bwd; D <= 256 */
void tsr_attention_bwd_ref(float *dq, float *dk, float *dv, float *dbias, const float *dout,
                           const float *q, const float *k, const float *v, const uint8_t *mask,
                           int mask_batched, const float *bias, int bias_kind, int B, int T,
                           int S, int H, int Hkv, int D, bool causal, float scale);

#endif
