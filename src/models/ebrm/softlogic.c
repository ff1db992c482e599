/* tessera ebrm: the soft-logic aggregation of an item's QE scores into
 * p(QI) (noisy-OR support times a product t-norm of non-contradiction;
 * formulas in include/tessera/ebrm.h), forward, backward, explanation. */
#include "tessera/ebrm.h"

#include <math.h>
#include <stdlib.h>

static double sigm(float x) { return 1.0 / (1.0 + exp(-(double)x)); }

typedef struct {
    double leak, w[TSR_EBRM_TYPES], v[TSR_EBRM_TYPES];
} agg_par;

static agg_par par(const float *theta) {
    agg_par a;
    a.leak = sigm(theta[0]);
    for (int t = 0; t < TSR_EBRM_TYPES; t++) {
        a.w[t] = sigm(theta[1 + t]);
        a.v[t] = sigm(theta[1 + TSR_EBRM_TYPES + t]);
    }
    return a;
}

/* p of one item; also the products Q = prod(1 - w r), K = prod(1 - v c) */
static double item_p(const agg_par *a, const float *r, const float *c, const uint8_t *type, int64_t m,
                     double *Q, double *K) {
    double q = 1, k = 1;
    for (int64_t j = 0; j < m; j++) {
        q *= 1 - a->w[type[j]] * r[j];
        k *= 1 - a->v[type[j]] * c[j];
    }
    *Q = q;
    *K = k;
    return (1 - (1 - a->leak) * q) * k;
}

void tsr_ebrm_agg_forward(float *p, const float *r, const float *c, const uint8_t *type,
                          const int64_t *off, int32_t n_items, const float *theta) {
    agg_par a = par(theta);
    for (int32_t i = 0; i < n_items; i++) {
        double Q, K;
        p[i] = (float)item_p(&a, r + off[i], c + off[i], type + off[i], off[i + 1] - off[i], &Q, &K);
    }
}

void tsr_ebrm_agg_backward(float *dr, float *dc, float *dtheta, const float *dp, const float *r,
                           const float *c, const uint8_t *type, const int64_t *off,
                           int32_t n_items, const float *theta) {
    agg_par a = par(theta);
    double dw[TSR_EBRM_TYPES] = {0}, dv[TSR_EBRM_TYPES] = {0}, dleak = 0;
    int64_t max_m = 0;
    for (int32_t i = 0; i < n_items; i++)
        if (off[i + 1] - off[i] > max_m) max_m = off[i + 1] - off[i];
    double *suf = malloc(2 * ((size_t)max_m + 1) * sizeof *suf); /* suffix products of Q, K */
    TSR_ASSERT(suf);
    for (int32_t i = 0; i < n_items; i++) {
        int64_t o = off[i], m = off[i + 1] - o;
        const float *ri = r + o, *ci = c + o;
        const uint8_t *ti = type + o;
        double Q, K;
        item_p(&a, ri, ci, ti, m, &Q, &K);
        double S = 1 - (1 - a.leak) * Q, g = dp[i];
        dleak += g * K * Q;
        double *sq = suf, *sk = suf + max_m + 1;
        sq[m] = sk[m] = 1;
        for (int64_t j = m - 1; j >= 0; j--) {
            sq[j] = sq[j + 1] * (1 - a.w[ti[j]] * ri[j]);
            sk[j] = sk[j + 1] * (1 - a.v[ti[j]] * ci[j]);
        }
        double pq = 1, pk = 1; /* prefix products */
        for (int64_t j = 0; j < m; j++) {
            double Qj = pq * sq[j + 1], Kj = pk * sk[j + 1]; /* leave-one-out */
            dr[o + j] = (float)(g * K * (1 - a.leak) * Qj * a.w[ti[j]]);
            dc[o + j] = (float)(-g * S * Kj * a.v[ti[j]]);
            dw[ti[j]] += g * K * (1 - a.leak) * Qj * ri[j];
            dv[ti[j]] -= g * S * Kj * ci[j];
            pq *= 1 - a.w[ti[j]] * ri[j];
            pk *= 1 - a.v[ti[j]] * ci[j];
        }
    }
    free(suf);
    dtheta[0] += (float)(dleak * a.leak * (1 - a.leak));
    for (int t = 0; t < TSR_EBRM_TYPES; t++) {
        dtheta[1 + t] += (float)(dw[t] * a.w[t] * (1 - a.w[t]));
        dtheta[1 + TSR_EBRM_TYPES + t] += (float)(dv[t] * a.v[t] * (1 - a.v[t]));
    }
}

void tsr_ebrm_agg_explain(float *support, float *veto, const float *r, const float *c,
                          const uint8_t *type, int m, const float *theta) {
    agg_par a = par(theta);
    double Q, K;
    double p = item_p(&a, r, c, type, m, &Q, &K);
    double S = 1 - (1 - a.leak) * Q;
    for (int j = 0; j < m; j++) {
        /* leave-one-out by recomputation: exact also when a factor is 0 */
        double Qj = 1, Kj = 1;
        for (int i = 0; i < m; i++) {
            if (i == j) continue;
            Qj *= 1 - a.w[type[i]] * r[i];
            Kj *= 1 - a.v[type[i]] * c[i];
        }
        double Sj = 1 - (1 - a.leak) * Qj;
        support[j] = (float)(K * (S - Sj));
        veto[j] = (float)(S * Kj - p);
    }
}
