/* tessera bigr: generation and representation with a trained BiGR.
 * Sampling (BiGR sec. 3.3): N unmasking iterations on a cosine schedule;
 * at each one the transformer sees the current partial code, the binary
 * transcoder runs a short reverse Bernoulli diffusion (classifier-free
 * guidance on its logits) for every still-masked position, and the
 * positions with the highest confidence mean_k |2p_k - 1| (+ Gumbel noise)
 * are fixed by Bernoulli(p) or by thresholding. The same loop with some
 * positions known does inpainting, outpainting and editing. Features for
 * linear probes: average-pooled tokens of every layer, null class. */
#include "tessera/bigr.h"

#include "tessera/ops.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

static const char *const k_order_names[TSR_BIGR_ORDER_COUNT] = {"entropy", "random", "raster"};
_Static_assert(sizeof k_order_names / sizeof k_order_names[0] == TSR_BIGR_ORDER_COUNT, "orders");
const char *tsr_bigr_order_name(tsr_bigr_order o) {
    return o >= 0 && o < TSR_BIGR_ORDER_COUNT ? k_order_names[o] : "?";
}

tsr_bigr_sample_opts tsr_bigr_default_sample_opts(void) {
    tsr_bigr_sample_opts o = {.iters = 10, .steps = 25, .cfg = 2.5f, .gumbel = 0.05f,
                              .temp = 1.0f, .order = TSR_BIGR_ORDER_ENTROPY,
                              .deterministic = false};
    return o;
}

/* past the caller's deadline: the bits are left unfinished (p0 too) */
static bool late(const tsr_bigr_sample_opts *o) { return o->deadline > 0 && tsr_time() > o->deadline; }

static float bern(tsr_rng *r, float p) { return tsr_rng_uniform(r) < p ? 1.0f : 0.0f; }

/* Reverse Bernoulli diffusion for M positions. cond (G*M, d) holds the
 * conditional rows and, when G == 2, the unconditional rows after them.
 * Writes p0 (M,K) = P(x0 = 1) of the final step. */
static void run_transcoder(tsr_ctx *cp, const tsr_bigr *m, const float *cond, int64_t M, int G,
                           const tsr_bigr_sample_opts *o, tsr_rng *rng, float *p0) {
    const int K = m->cfg.bits, T = m->cfg.T, d = m->cfg.dim;
    const int S = o->steps < 1 ? 1 : o->steps > T ? T : o->steps;
    float *xt = malloc(sizeof(float) * (size_t)(M * K));
    int32_t *ts = malloc(sizeof(int32_t) * (size_t)(G * M));
    TSR_ASSERT(xt && ts);
    for (int64_t i = 0; i < M * K; i++) xt[i] = bern(rng, 0.5f);
    tsr_ctx *c = cp;
    for (int si = 0; si < S && !late(o); si++) {
        /* BiGR's subsequence of 1..T: evenly spaced, from T down to 1 */
        int t = S == 1 ? 1 : 1 + (int)((double)(S - 1 - si) / (S - 1) * (T - 1));
        int s = si + 1 < S ? 1 + (int)((double)(S - 2 - si) / (S - 1) * (T - 1)) : 0;
        tsr_ctx_reset(c);
        tsr_tensor *x = tsr_new(c, TSR_F32, TSR_DIMS(G * M, K));
        for (int gg = 0; gg < G; gg++) memcpy(tsr_f32(x) + gg * M * K, xt, sizeof(float) * (size_t)(M * K));
        for (int64_t i = 0; i < G * M; i++) ts[i] = t - 1;
        tsr_tensor *cd = tsr_wrap(c, TSR_F32, TSR_DIMS(G * M, d), (void *)cond);
        tsr_tensor *lg = tsr_bigr_transcode(c, m, x, ts, cd);
        const float *lc = tsr_f32(lg), *lu = G == 2 ? lc + M * K : NULL;
        for (int64_t i = 0; i < M * K; i++) {
            float l = lu ? lu[i] + o->cfg * (lc[i] - lu[i]) : lc[i];
            float p = 1.0f / (1.0f + expf(-l / o->temp));
            if (m->cfg.target == TSR_BIGR_TARGET_FLIP && xt[i] > 0.5f) p = 1.0f - p;
            if (s > 0) xt[i] = bern(rng, tsr_bigr_posterior(p, xt[i] > 0.5f, t, s, T));
            else p0[i] = p;
        }
    }
    free(xt);
    free(ts);
}

static float gumbel(tsr_rng *r) {
    float u = tsr_rng_uniform(r);
    if (u < 1e-12f) u = 1e-12f;
    return -logf(-logf(u) + 1e-20f);
}

void tsr_bigr_sample(const tsr_bigr *m, uint8_t *bits, const uint8_t *known,
                     const int32_t *labels, const int32_t *lab2, float alpha, int B,
                     const tsr_bigr_sample_opts *o, tsr_rng *rng) {
    const int L = TSR_BIGR_L, K = m->cfg.bits, d = m->cfg.dim, C = m->cfg.classes;
    const int G = o->cfg != 1.0f ? 2 : 1, nb = G * B;
    float *fb = calloc((size_t)nb * L * K, sizeof(float));
    uint8_t *mask = malloc((size_t)nb * L);
    int32_t *labs = malloc(sizeof(int32_t) * (size_t)nb), *labs2 = malloc(sizeof(int32_t) * (size_t)nb);
    int *leff = malloc(sizeof(int) * (size_t)B), *cur = malloc(sizeof(int) * (size_t)B);
    float *cond = malloc(sizeof(float) * (size_t)nb * L * d);
    float *p0 = malloc(sizeof(float) * (size_t)B * L * K);
    float *score = malloc(sizeof(float) * (size_t)L);
    int32_t *rowpos = malloc(sizeof(int32_t) * (size_t)B * L);
    TSR_ASSERT(fb && mask && labs && labs2 && leff && cur && cond && p0 && score && rowpos);
    for (int b = 0; b < B; b++) {
        leff[b] = 0;
        for (int p = 0; p < L; p++) {
            int kn = known && known[b * L + p];
            mask[b * L + p] = (uint8_t)!kn;
            leff[b] += !kn;
            for (int k = 0; k < K; k++)
                fb[((int64_t)b * L + p) * K + k] = kn ? (float)bits[((int64_t)b * L + p) * K + k] : 0.0f;
        }
        cur[b] = leff[b];
        labs[b] = labels[b];
        labs2[b] = lab2 ? lab2[b] : labels[b];
        if (G == 2) labs[B + b] = labs2[B + b] = C; /* null class */
    }
    tsr_ctx c;
    tsr_ctx_init(&c, (size_t)32 << 20);
    c.grad_enabled = false;
    for (int it = 0; it < o->iters; it++) {
        if (late(o)) break;
        bool any = false;
        for (int b = 0; b < B; b++) any |= cur[b] > tsr_bigr_masked_after(leff[b], it, o->iters);
        if (!any) continue;
        if (G == 2) {
            memcpy(fb + (int64_t)B * L * K, fb, sizeof(float) * (size_t)B * L * K);
            memcpy(mask + B * L, mask, (size_t)B * L);
        }
        tsr_ctx_reset(&c);
        tsr_tensor *z = tsr_bigr_forward(&c, m, fb, mask, labs, lab2 ? labs2 : NULL, alpha, nb, NULL);
        int64_t M = 0;
        for (int b = 0; b < B; b++)
            for (int p = 0; p < L; p++)
                if (mask[b * L + p]) rowpos[M++] = b * L + p;
        for (int gg = 0; gg < G; gg++)
            for (int64_t i = 0; i < M; i++)
                memcpy(cond + (gg * M + i) * d, tsr_f32(z) + ((int64_t)gg * B * L + rowpos[i]) * d,
                       sizeof(float) * (size_t)d);
        run_transcoder(&c, m, cond, M, G, o, rng, p0);
        if (late(o)) break; /* p0 may be unfinished */
        int64_t r = 0;
        for (int b = 0; b < B; b++) {
            int target = tsr_bigr_masked_after(leff[b], it, o->iters);
            int nfix = cur[b] - target;
            int64_t r0 = r;
            for (int p = 0; p < L; p++) {
                score[p] = -INFINITY;
                if (!mask[b * L + p]) continue;
                const float *pp = p0 + r * K;
                double conf = 0;
                for (int k = 0; k < K; k++) conf += fabsf(2.0f * pp[k] - 1.0f);
                conf /= K;
                score[p] = o->order == TSR_BIGR_ORDER_ENTROPY ? (float)conf + o->gumbel * gumbel(rng)
                           : o->order == TSR_BIGR_ORDER_RANDOM ? tsr_rng_uniform(rng)
                                                               : (float)(L - p);
                r++;
            }
            for (int f = 0; f < nfix; f++) {
                int best = -1;
                for (int p = 0; p < L; p++)
                    if (mask[b * L + p] && score[p] > -INFINITY && (best < 0 || score[p] > score[best]))
                        best = p;
                TSR_ASSERT(best >= 0);
                score[best] = -INFINITY;
                /* row of position `best` among this image's masked rows */
                int64_t rr = r0;
                for (int p = 0; p < best; p++) rr += mask[b * L + p] != 0;
                const float *pp = p0 + rr * K;
                for (int k = 0; k < K; k++) {
                    float v = o->deterministic ? (pp[k] > 0.5f ? 1.0f : 0.0f) : bern(rng, pp[k]);
                    fb[((int64_t)b * L + best) * K + k] = v;
                }
                mask[b * L + best] = 2; /* fixed this iteration: still counted as a row above */
            }
            for (int p = 0; p < L; p++)
                if (mask[b * L + p] == 2) mask[b * L + p] = 0;
            cur[b] = target;
        }
    }
    for (int64_t i = 0; i < (int64_t)B * L * K; i++) bits[i] = fb[i] > 0.5f;
    tsr_ctx_free(&c);
    free(fb), free(mask), free(labs), free(labs2), free(leff), free(cur), free(cond), free(p0);
    free(score), free(rowpos);
}

void tsr_bigr_features(const tsr_bigr *m, const uint8_t *bits, int64_t n, float *feats, bool norm) {
    const int L = TSR_BIGR_L, K = m->cfg.bits, d = m->cfg.dim, NL = m->cfg.n_layers + 1;
    const int CH = 200;
    tsr_ctx c;
    tsr_ctx_init(&c, (size_t)64 << 20);
    c.grad_enabled = false;
    float *fb = malloc(sizeof(float) * (size_t)CH * L * K);
    int32_t *lab = malloc(sizeof(int32_t) * CH);
    tsr_tensor **hid = malloc(sizeof(tsr_tensor *) * (size_t)NL);
    TSR_ASSERT(fb && lab && hid);
    for (int i = 0; i < CH; i++) lab[i] = m->cfg.classes;
    for (int64_t s = 0; s < n; s += CH) {
        int B = (int)(n - s < CH ? n - s : CH);
        for (int64_t i = 0; i < (int64_t)B * L * K; i++) fb[i] = bits[s * L * K + i];
        tsr_ctx_reset(&c);
        tsr_bigr_forward(&c, m, fb, NULL, lab, NULL, 0.0f, B, hid);
        for (int l = 0; l < NL; l++) {
            const float *h = tsr_f32(hid[l]);
            for (int b = 0; b < B; b++) {
                float *out = feats + ((int64_t)l * n + s + b) * d;
                double acc[4096] = {0};
                for (int p = 1; p <= L; p++) {
                    const float *tk = h + ((int64_t)b * (L + 1) + p) * d;
                    double sc = 1.0;
                    if (norm) {
                        double ss = 0;
                        for (int j = 0; j < d; j++) ss += (double)tk[j] * tk[j];
                        sc = 1.0 / sqrt(ss / d + 1e-6);
                    }
                    for (int j = 0; j < d; j++) acc[j] += tk[j] * sc;
                }
                for (int j = 0; j < d; j++) out[j] = (float)(acc[j] / L);
            }
        }
    }
    tsr_ctx_free(&c);
    free(fb), free(lab), free(hid);
}

double tsr_bigr_linear_probe(const float *xtr, const int32_t *ytr, int64_t ntr, const float *xte,
                             const int32_t *yte, int64_t nte, int d, int C, int epochs,
                             uint64_t seed) {
    /* standardise with the train statistics (constant features stay 0) */
    double *mu = calloc((size_t)d, sizeof(double)), *sd = calloc((size_t)d, sizeof(double));
    float *W = calloc((size_t)C * (d + 1), sizeof(float)), *V = calloc((size_t)C * (d + 1), sizeof(float));
    float *G = calloc((size_t)C * (d + 1), sizeof(float)), *xs = malloc(sizeof(float) * (size_t)(d + 1));
    int32_t *order = malloc(sizeof(int32_t) * (size_t)ntr);
    TSR_ASSERT(mu && sd && W && V && G && xs && order);
    for (int64_t i = 0; i < ntr; i++)
        for (int j = 0; j < d; j++) mu[j] += xtr[i * d + j];
    for (int j = 0; j < d; j++) mu[j] /= (double)ntr;
    for (int64_t i = 0; i < ntr; i++)
        for (int j = 0; j < d; j++) {
            double t = xtr[i * d + j] - mu[j];
            sd[j] += t * t;
        }
    for (int j = 0; j < d; j++) sd[j] = sqrt(sd[j] / (double)ntr), sd[j] = sd[j] > 1e-6 ? 1.0 / sd[j] : 0.0;
    for (int64_t i = 0; i < ntr; i++) order[i] = (int32_t)i;
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    const int BS = 128;
    const float wd = 1e-4f, mom = 0.9f;
    const int64_t steps_per = (ntr + BS - 1) / BS, total = steps_per * epochs;
    int64_t step = 0;
    float logit[256];
    TSR_ASSERT(C <= 256);
    for (int ep = 0; ep < epochs; ep++) {
        tsr_rng_shuffle_i32(&r, order, ntr);
        for (int64_t s0 = 0; s0 < ntr; s0 += BS, step++) {
            int64_t nbt = ntr - s0 < BS ? ntr - s0 : BS;
            memset(G, 0, sizeof(float) * (size_t)C * (d + 1));
            for (int64_t ii = 0; ii < nbt; ii++) {
                int64_t i = order[s0 + ii];
                for (int j = 0; j < d; j++) xs[j] = (float)((xtr[i * d + j] - mu[j]) * sd[j]);
                xs[d] = 1.0f;
                float mx = -INFINITY;
                for (int k = 0; k < C; k++) {
                    float a = 0;
                    const float *w = W + (int64_t)k * (d + 1);
                    for (int j = 0; j <= d; j++) a += w[j] * xs[j];
                    logit[k] = a;
                    mx = a > mx ? a : mx;
                }
                double z = 0;
                for (int k = 0; k < C; k++) z += exp(logit[k] - mx);
                for (int k = 0; k < C; k++) {
                    float g = (float)(exp(logit[k] - mx) / z) - (k == ytr[i] ? 1.0f : 0.0f);
                    float *gk = G + (int64_t)k * (d + 1);
                    for (int j = 0; j <= d; j++) gk[j] += g * xs[j];
                }
            }
            /* SGD with momentum, cosine learning rate */
            float lr = 0.5f * 0.1f * (1.0f + cosf(3.14159265f * (float)step / (float)total));
            for (int64_t q = 0; q < (int64_t)C * (d + 1); q++) {
                float g = G[q] / (float)nbt + wd * W[q];
                V[q] = mom * V[q] + g;
                W[q] -= lr * V[q];
            }
        }
    }
    int64_t ok = 0;
    for (int64_t i = 0; i < nte; i++) {
        for (int j = 0; j < d; j++) xs[j] = (float)((xte[i * d + j] - mu[j]) * sd[j]);
        xs[d] = 1.0f;
        int best = 0;
        float bv = -INFINITY;
        for (int k = 0; k < C; k++) {
            float a = 0;
            const float *w = W + (int64_t)k * (d + 1);
            for (int j = 0; j <= d; j++) a += w[j] * xs[j];
            if (a > bv) bv = a, best = k;
        }
        ok += best == yte[i];
    }
    free(mu), free(sd), free(W), free(V), free(G), free(xs), free(order);
    return nte > 0 ? (double)ok / (double)nte : 0.0;
}
