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

/* naive reference (double accumulation) for the tests: out as above */
void tsr_attention_ref(float *out, const float *q, const float *k, const float *v,
                       const uint8_t *mask, int mask_batched, const float *bias, int bias_kind,
                       int B, int T, int S, int H, int Hkv, int D, bool causal, float scale);

#endif
