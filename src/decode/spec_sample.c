/* decode: exact speculative sampling over trees of fixed drafts, and the
 * measured cost curve of a verification forward. Rules in decode.h. */
#include "tessera/decode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The inverse CDF of the (unnormalised) distribution p at u in [0, 1):
 * the token whose cumulative mass first exceeds u * total. */
static int inverse_cdf(const float *p, int V, double u) {
    double total = 0.0;
    for (int i = 0; i < V; i++)
        if (p[i] > 0.0f) total += p[i];
    double r = u * total, cdf = 0.0;
    int last = -1;
    for (int i = 0; i < V; i++) {
        if (p[i] <= 0.0f) continue;
        cdf += p[i];
        last = i;
        if (r < cdf) return i;
    }
    return last;
}

int tsr_decode_accept_sample(int *path, int *bonus, const int *tokens, const int *parent, int n,
                             const float *logits, int V, const tsr_lm_sampler_opts *o, tsr_rng *rng,
                             float *scratch) {
    float *p = scratch;
    tsr_lm_prob *cand = (tsr_lm_prob *)(scratch + V);
    int len = 0, cur = 0;
    path[len++] = 0;
    for (;;) {
        /* one uniform per emitted token: the token this position samples */
        tsr_lm_sample_probs(p, logits + (size_t)cur * V, V, o, cand);
        int x = inverse_cdf(p, V, tsr_rng_uniform(rng));
        if (x < 0) x = tsr_lm_argmax(logits + (size_t)cur * V, V);
        int next = -1;
        for (int c = cur + 1; c < n && next < 0; c++)
            if (parent[c] == cur && tokens[c] == x) next = c;
        if (next < 0) {
            *bonus = x;
            return len;
        }
        path[len++] = next;
        cur = next;
    }
}

tsr_status tsr_decode_cost_curve(const tsr_lm_model *m, int n_ctx, int n_max, double *ms) {
    if (n_max < 1 || n_ctx < 1) return tsr_errorf(TSR_ERR_ARG, "cost curve: n_ctx and n_max must be >= 1");
    const int V = m->cfg.vocab_size;
    tsr_lm_cache c;
    tsr_status s = tsr_lm_cache_init(&c, &m->cfg, n_ctx + n_max);
    if (s.code) return s;
    int *tok = malloc(sizeof(int) * (size_t)(n_ctx + n_max) * 2);
    uint8_t *mask = malloc((size_t)n_max * (size_t)n_max);
    float *logits = malloc(sizeof(float) * (size_t)V * (size_t)n_max);
    if (!tok || !mask || !logits) {
        s = tsr_errorf(TSR_ERR_NOMEM, "cost curve: out of memory");
        goto done;
    }
    int *pos = tok + n_ctx + n_max;
    tsr_rng r;
    tsr_rng_seed(&r, 0x636f7374ull);
    for (int i = 0; i < n_ctx + n_max; i++) tok[i] = (int)tsr_rng_below(&r, (uint32_t)V);
    for (int off = 0; off < n_ctx && !s.code; off += TSR_LM_MAX_BATCH) {
        int nb = n_ctx - off < TSR_LM_MAX_BATCH ? n_ctx - off : TSR_LM_MAX_BATCH;
        s = tsr_lm_forward_last(m, &c, tok + off, nb, off, NULL);
    }
    ms[0] = 0.0;
    for (int n = 1; n <= n_max && !s.code; n++) {
        for (int i = 0; i < n; i++) {
            pos[i] = n_ctx + i;
            for (int j = 0; j < n; j++) mask[i * n + j] = j <= i;
        }
        double best = 1e30, spent = 0;
        for (int rep = 0; rep < 12 && (rep < 3 || spent < 0.004); rep++) {
            double t0 = tsr_time();
            s = tsr_lm_forward_masked(m, &c, tok + n_ctx, n, n_ctx, pos, mask, n, logits);
            double dt = tsr_time() - t0;
            if (s.code) break;
            spent += dt;
            if (dt < best) best = dt;
        }
        ms[n] = 1e3 * best;
    }
done:
    tsr_lm_cache_free(&c);
    free(tok);
    free(mask);
    free(logits);
    return s;
}
