/* tessera core: branch-free scalar math that vectorises, shared by the
 * kernels on hot paths (softmax, cross-entropy, sigmoid-family activations).
 * libm's expf is a call per element and blocks vectorisation. */
#ifndef TESSERA_FASTMATH_H
#define TESSERA_FASTMATH_H

#include <stdint.h>

/* exp for softmax-style kernels: Cody-Waite range reduction and a degree-7
 * polynomial (max relative error ~2 ulp on [-87, 88]); returns 0 below -87
 * and saturates above 88. Branch-free so loops over it vectorise, which is
 * why it is used instead of libm's expf on the hot paths. */
static inline float tsr_expf_fast(float x) {
    float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* adding 1.5*2^23 rounds to an integer held in the low mantissa bits */
    union { float f; uint32_t u; } t, s;
    t.f = xc * 1.44269504088896341f + 12582912.0f;
    float n = t.f - 12582912.0f;
    float r = xc - n * 0.693145751953125f - n * 1.428606765330187e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    s.u = (t.u - 0x4B400000u + 127u) << 23;
    float e = p * s.f;
    return x < -87.0f ? 0.0f : e;
}

/* max of a row with 16 independent lanes: vectorises under gcc and clang
 * without fast-math (a plain max reduction does not under clang). NaNs are
 * skipped; they still poison the exp-sum that follows. */
static inline float tsr_row_max(const float *x, int64_t n) {
    float m[16];
    for (int k = 0; k < 16; k++) m[k] = -__builtin_inff();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (int k = 0; k < 16; k++) m[k] = x[j + k] > m[k] ? x[j + k] : m[k];
    float r = -__builtin_inff();
    for (int k = 0; k < 16; k++) r = m[k] > r ? m[k] : r;
    for (; j < n; j++) r = x[j] > r ? x[j] : r;
    return r;
}

#endif
