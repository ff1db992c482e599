/* tessera ops: fused attention entry points, dispatched to the kernels of
 * the kernel level in use (tessera/cpu.h); the kernels, their scratch
 * sizes, naive twins and autograd op are in attention_impl.h. */
#include "ops/attention.h"
#include "tessera/cpu.h"

void tsr_attention_fwd(float *out, float *lse, float *scratch, const float *q, const float *k, const float *v,
                       const uint8_t *mask, int mask_batched, const float *bias, int bias_kind, int B, int T, int S,
                       int H, int Hkv, int D, bool causal, float scale, int nthreads) {
    switch (tsr_cpu_level()) {
    case TSR_CPU_SCALAR:
        tsr_attention_fwd_scalar(out, lse, scratch, q, k, v, mask, mask_batched, bias, bias_kind, B, T, S, H, Hkv,
                                 D, causal, scale, nthreads);
        break;
    case TSR_CPU_AVX2:
        tsr_attention_fwd_avx2(out, lse, scratch, q, k, v, mask, mask_batched, bias, bias_kind, B, T, S, H, Hkv, D,
                               causal, scale, nthreads);
        break;
    default:
        tsr_attention_fwd_avx512(out, lse, scratch, q, k, v, mask, mask_batched, bias, bias_kind, B, T, S, H, Hkv,
                                 D, causal, scale, nthreads);
    }
}

void tsr_attention_bwd(float *dq, float *dk, float *dv, float *dbias, float *scratch, const float *dout,
                       const float *out, const float *lse, const float *q, const float *k, const float *v,
                       const uint8_t *mask, int mask_batched, const float *bias, int bias_kind, int B, int T, int S,
                       int H, int Hkv, int D, bool causal, float scale, int nthreads) {
    switch (tsr_cpu_level()) {
    case TSR_CPU_SCALAR:
        tsr_attention_bwd_scalar(dq, dk, dv, dbias, scratch, dout, out, lse, q, k, v, mask, mask_batched, bias,
                                 bias_kind, B, T, S, H, Hkv, D, causal, scale, nthreads);
        break;
    case TSR_CPU_AVX2:
        tsr_attention_bwd_avx2(dq, dk, dv, dbias, scratch, dout, out, lse, q, k, v, mask, mask_batched, bias,
                               bias_kind, B, T, S, H, Hkv, D, causal, scale, nthreads);
        break;
    default:
        tsr_attention_bwd_avx512(dq, dk, dv, dbias, scratch, dout, out, lse, q, k, v, mask, mask_batched, bias,
                                 bias_kind, B, T, S, H, Hkv, D, causal, scale, nthreads);
    }
}
