/* lm inference (src/decode): the kernel entry points. Each call goes through the table of
 * the kernel level in use (tessera/cpu.h); the bodies are in
 * lm_kernels_impl.h, compiled once per level. */
#include "decode/lm_kernels.h"

#include <math.h>

#include "tessera/cpu.h"

static const tsr_lm_kern *const g_kern[TSR_CPU_LEVELS] = {&tsr_lm_kern_scalar, &tsr_lm_kern_avx2,
                                                          &tsr_lm_kern_avx512, &tsr_lm_kern_avx512bf16};

static const tsr_lm_kern *kern(void) { return g_kern[tsr_cpu_level()]; }

bool tsr_lm_have_avx512_bf16(void) { return tsr_cpu_level() >= TSR_CPU_AVX512BF16; }
bool tsr_lm_have_avx512_vnni(void) { return tsr_cpu_level() >= TSR_CPU_AVX512BF16; }

static size_t pad_to(size_t k, size_t m) { return (k + m - 1) / m * m; }

size_t tsr_lm_matmul_scratch(const tsr_lm_mat *w, int n) {
    size_t N = n > 0 ? (size_t)n : 0;
    switch (w->type) {
    /* bf16 pairs, or f32 planes at the AVX2 levels: the larger, so a buffer
     * serves every level */
    case TSR_LM_W_BF16: return N * pad_to((size_t)w->cols, 32) * sizeof(float);
    case TSR_LM_W_Q8: return N * pad_to((size_t)w->cols, 64) * 2; /* int8 x and an f32 scale per 4 columns */
    default: return 0;
    }
}

void tsr_lm_matmul(float *out, int ldo, const float *x, int ldx, const tsr_lm_mat *w, int n, void *scratch) {
    kern()->matmul(out, ldo, x, ldx, w, n, scratch);
}

void tsr_lm_matmul_multi(int cnt, float *const *out, const int *ldo, const float *x, int ldx, const tsr_lm_mat *const *w,
                         int n, void *scratch) {
    const tsr_lm_kern *k = kern();
    if (k->matmul_multi && k->matmul_multi(cnt, out, ldo, x, ldx, w, n, scratch)) return;
    for (int i = 0; i < cnt; i++) k->matmul(out[i], ldo[i], x, ldx, w[i], n, scratch);
}

float tsr_lm_dot(const float *a, const float *b, int k) { return kern()->dot(a, b, k); }

float tsr_lm_exp_sum(float *p, int n, float mx) { return kern()->exp_sum(p, n, mx); }

void tsr_lm_silu_mul(float *h, const float *h2, int n) { kern()->silu_mul(h, h2, n); }

void tsr_lm_attend(float *out, const float *q, const float *k, const float *v, size_t ld, int n_keys, int D,
                   float *att) {
    kern()->attend(out, q, k, v, ld, n_keys, D, att);
}

void tsr_lm_attend_vexp(float *out, const float *q, const float *k, const float *v, size_t ld, int n_keys, int D,
                        float *att) {
    kern()->attend_vexp(out, q, k, v, ld, n_keys, D, att);
}

void tsr_lm_attend_idx(float *out, const float *q, const float *k, const float *v, size_t ld, const int *idx,
                       int n_keys, int D, float *att) {
    kern()->attend_idx(out, q, k, v, ld, idx, n_keys, D, att);
}

/* round to an int8 in [-127, 127] as the kernels do */
static inline int8_t q8_round(float v) { return (int8_t)fminf(fmaxf(nearbyintf(v), -127.0f), 127.0f); }

void tsr_lm_matmul_ref(float *out, int ldo, const float *x, int ldx, const tsr_lm_mat *w, int n) {
    const int k = w->cols;
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * ldx;
        for (int r = 0; r < w->rows; r++) {
            float s = 0;
            if (w->type == TSR_LM_W_F32) {
                const float *W = (const float *)w->data + (size_t)r * k;
                for (int j = 0; j < k; j++) s += W[j] * xt[j];
            } else if (w->type == TSR_LM_W_BF16) {
                const uint16_t *W = (const uint16_t *)w->data + (size_t)r * k;
                for (int j = 0; j < k; j++) s += tsr_bf16_to_f32(W[j]) * tsr_bf16_to_f32(tsr_f32_to_bf16(xt[j]));
            } else {
                /* integer dot per group times both scales */
                const int8_t *W = (const int8_t *)w->data + (size_t)r * k;
                const int gs = w->group_size, ng = tsr_lm_mat_groups(w);
                for (int g = 0; g < ng; g++) {
                    int j0 = g * gs, j1 = j0 + gs < k ? j0 + gs : k;
                    float amax = 0;
                    for (int j = j0; j < j1; j++) amax = fmaxf(amax, fabsf(xt[j]));
                    float sc = amax / 127.0f, inv = sc > 0 ? 1.0f / sc : 0.0f;
                    int32_t d = 0;
                    for (int j = j0; j < j1; j++) d += (int32_t)W[j] * (int32_t)q8_round(xt[j] * inv);
                    s += (float)d * w->scales[(size_t)r * ng + g] * sc;
                }
            }
            out[(size_t)t * ldo + r] = s;
        }
    }
}
