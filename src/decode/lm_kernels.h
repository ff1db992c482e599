/* lm inference (src/decode): one table of matmul/attention kernels per kernel level (see
 * tessera/cpu.h); lm_kernels_impl.h is compiled into each. */
#ifndef TSR_LM_KERNELS_H
#define TSR_LM_KERNELS_H

#include "tessera/lm.h"

typedef struct {
    void (*matmul)(float *out, int ldo, const float *x, int ldx, const tsr_lm_mat *w, int n, void *scratch);
    void (*attend)(float *out, const float *q, const float *k, const float *v, size_t ld, int n_keys, int D,
                   float *att);
    void (*attend_idx)(float *out, const float *q, const float *k, const float *v, size_t ld, const int *idx,
                       int n_keys, int D, float *att);
    float (*dot)(const float *a, const float *b, int k);
    /* several products of one x in one pass, where the level has such a
     * path (NULL, or false returned: none) */
    bool (*matmul_multi)(int cnt, float *const *out, const int *ldo, const float *x, int ldx,
                         const tsr_lm_mat *const *w, int n, void *scratch);
    /* attend with its exponentials from exp_sum (the same bits) */
    void (*attend_vexp)(float *out, const float *q, const float *k, const float *v, size_t ld, int n_keys, int D,
                        float *att);
    float (*exp_sum)(float *p, int n, float mx);
    void (*silu_mul)(float *h, const float *h2, int n);
} tsr_lm_kern;

/* tsr_lm_attend with the softmax's exponentials from tsr_lm_exp_sum: the
 * same bits; batched forwards use it */
void tsr_lm_attend_vexp(float *out, const float *q, const float *k, const float *v, size_t ld, int n_keys, int D,
                        float *att);

extern const tsr_lm_kern tsr_lm_kern_scalar, tsr_lm_kern_avx2, tsr_lm_kern_avx512, tsr_lm_kern_avx512bf16;

#endif
