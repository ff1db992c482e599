/* tessera ops: fused attention kernels, one pair per kernel level
 * (attention_impl.h compiled in attention_<level>.c), and the tile sizes
 * the scratch sizes depend on (the same at every level). */
#ifndef TSR_OPS_ATTENTION_H
#define TSR_OPS_ATTENTION_H

#include "tessera/ops.h"

#define QT 32 /* query rows per forward / dq work unit */
#define KT 64 /* key rows per dk/dv work unit */
#define VL 16 /* floats per vector */

static inline int64_t attn_round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

#define TSR_ATTN_KERNELS(lvl)                                                                                    \
    void tsr_attention_fwd_##lvl(float *out, float *lse, float *scratch, const float *q, const float *k,        \
                                 const float *v, const uint8_t *mask, int mask_batched, const float *bias,      \
                                 int bias_kind, int B, int T, int S, int H, int Hkv, int D, bool causal,        \
                                 float scale, int nthreads);                                                    \
    void tsr_attention_bwd_##lvl(float *dq, float *dk, float *dv, float *dbias, float *scratch,                 \
                                 const float *dout, const float *out, const float *lse, const float *q,         \
                                 const float *k, const float *v, const uint8_t *mask, int mask_batched,         \
                                 const float *bias, int bias_kind, int B, int T, int S, int H, int Hkv, int D,  \
                                 bool causal, float scale, int nthreads);
TSR_ATTN_KERNELS(scalar)
TSR_ATTN_KERNELS(avx2)
TSR_ATTN_KERNELS(avx512)

#endif
