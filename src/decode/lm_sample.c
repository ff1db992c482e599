/* Next-token sampling for the lm stack (lm, space, bita, serve). Greedy
 * argmax at temperature 0 (first index on ties, as llama2.c); otherwise
 * softmax at a temperature, then optional repetition penalty (Keskar et al. 2019, CTRL,
 * sec. 4.1: divide positive logits, multiply negative ones), min-p, top-k
 * and top-p (nucleus, Holtzman et al. 2020) filters, and one draw from the
 * renormalised distribution. The random stream is tessera's xoshiro rng, so
 * seeds do not reproduce llama2.c's sampled text (only its greedy text). */
#include "tessera/lm.h"

#include <math.h>
#include <string.h>

void tsr_lm_sampler_defaults(tsr_lm_sampler_opts *o) {
    memset(o, 0, sizeof *o);
    o->temperature = 1.0f;
    o->top_p = 0.9f;
    o->rep_penalty = 1.0f;
    o->seed = 42;
}

tsr_status tsr_lm_sampler_init(tsr_lm_sampler *s, const tsr_lm_sampler_opts *o, int vocab) {
    memset(s, 0, sizeof *s);
    if (vocab < 1) return tsr_errorf(TSR_ERR_ARG, "sampler: vocabulary size %d", vocab);
    if (!(o->temperature >= 0) || !isfinite(o->temperature))
        return tsr_errorf(TSR_ERR_ARG, "temperature must be >= 0 (got %g)", o->temperature);
    if (o->top_k < 0) return tsr_errorf(TSR_ERR_ARG, "top-k must be >= 0 (got %d)", o->top_k);
    if (!(o->top_p >= 0 && o->top_p <= 1))
        return tsr_errorf(TSR_ERR_ARG, "top-p must be in [0, 1] (got %g)", o->top_p);
    if (!(o->min_p >= 0 && o->min_p <= 1))
        return tsr_errorf(TSR_ERR_ARG, "min-p must be in [0, 1] (got %g)", o->min_p);
    if (!(o->rep_penalty > 0) || !isfinite(o->rep_penalty))
        return tsr_errorf(TSR_ERR_ARG, "repetition penalty must be > 0 (got %g)", o->rep_penalty);
    if (o->rep_window < 0) return tsr_errorf(TSR_ERR_ARG, "repetition window must be >= 0");
    s->o = *o;
    s->vocab = vocab;
    tsr_rng_seed(&s->rng, o->seed);
    s->cand = malloc(sizeof(tsr_lm_prob) * (size_t)vocab);
    s->seen = calloc((size_t)vocab, sizeof(uint32_t));
    if (!s->cand || !s->seen) {
        tsr_lm_sampler_free(s);
        return tsr_errorf(TSR_ERR_NOMEM, "sampler: out of memory");
    }
    return tsr_ok();
}

void tsr_lm_sampler_free(tsr_lm_sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s->seen);
    memset(s, 0, sizeof *s);
}

int tsr_lm_argmax(const float *x, int n) {
    int best = 0;
    float bv = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > bv) {
            bv = x[i];
            best = i;
        }
    return best;
}

static int cmp_prob_desc(const void *a, const void *b) {
    const tsr_lm_prob *x = a, *y = b;
    if (x->p > y->p) return -1;
    if (x->p < y->p) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Most likely first, ties by increasing id: the order cmp_prob_desc
 * defines, which is total, so any correct sort gives the same array. c
 * arrives in increasing id order with every p >= 0 and not NaN, so the
 * bits of p order like its values and a stable LSD radix sort over them
 * (four byte passes, descending; a pass whose byte is the same everywhere
 * is skipped) keeps equal p in id order. A few thousand candidates (top-p
 * over a 4096-token vocabulary) sort ~20x faster than with qsort, which
 * matters when a serving step samples many sequences one after another. */
static void sort_prob_desc(tsr_lm_prob *c, int n) {
    tsr_lm_prob *tmp = n > 64 ? malloc(sizeof *tmp * (size_t)n) : NULL;
    if (!tmp) {
        qsort(c, (size_t)n, sizeof *c, cmp_prob_desc);
        return;
    }
    /* the four passes' counts in one read of the keys */
    int cnt[4][256];
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &c[i].p, sizeof b);
        cnt[0][255 - (b & 255)]++;
        cnt[1][255 - ((b >> 8) & 255)]++;
        cnt[2][255 - ((b >> 16) & 255)]++;
        cnt[3][255 - (b >> 24)]++;
    }
    tsr_lm_prob *src = c, *dst = tmp;
    for (int pass = 0, shift = 0; pass < 4; pass++, shift += 8) {
        int *ct = cnt[pass];
        bool one = false;
        for (int d = 0; d < 256 && !one; d++) one = ct[d] == n;
        if (one) continue;
        int at = 0;
        for (int d = 0; d < 256; d++) {
            int k = ct[d];
            ct[d] = at;
            at += k;
        }
        for (int i = 0; i < n; i++) {
            uint32_t b;
            memcpy(&b, &src[i].p, sizeof b);
            dst[ct[255 - ((b >> shift) & 255)]++] = src[i];
        }
        tsr_lm_prob *t = src;
        src = dst;
        dst = t;
    }
    if (src != c) memcpy(c, src, sizeof *c * (size_t)n);
    free(tmp);
}

/* the largest value of x[0..n) that is not NaN (-inf if none), in four
 * independent chains: the same value as one running maximum (at most the
 * sign of a zero maximum can differ, which no caller can see) */
static float max_of(const float *x, int n) {
    float m[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int l = 0; l < 4; l++)
            if (x[i + l] > m[l]) m[l] = x[i + l];
    for (; i < n; i++)
        if (x[i] > m[0]) m[0] = x[i];
    for (int l = 1; l < 4; l++)
        if (m[l] > m[0]) m[0] = m[l];
    return m[0];
}

/* p = softmax(logits / temperature) in place; returns max p. The divisions
 * have loops of their own so that they vectorise (IEEE division gives the
 * same quotient whatever the width); the sum keeps its order. */
static float softmax_t(float *p, int V, float temperature) {
    for (int i = 0; i < V; i++) p[i] /= temperature;
    const float mx = max_of(p, V);
    float sum = 0.0f;
    for (int i = 0; i < V; i++) {
        p[i] = expf(p[i] - mx);
        sum += p[i];
    }
    for (int i = 0; i < V; i++) p[i] /= sum;
    /* the largest p: every expf(p - mx) <= expf(0) = 1 and division by sum
     * is monotonic, so max p = 1 / sum (NaN, when no logit is finite or one
     * is infinite, gives 0 as a scan of p would) */
    const float pmax = 1.0f / sum;
    return pmax > 0.0f ? pmax : 0.0f;
}

static bool any_filter(const tsr_lm_sampler_opts *o, int V) {
    return (o->top_k > 0 && o->top_k < V) || (o->top_p > 0 && o->top_p < 1) || o->min_p > 0;
}

/* the tokens min-p, top-k and top-p keep, most likely first, into cand;
 * returns their count (0: none survived) and their total mass */
static int filter(tsr_lm_prob *cand, const float *p, int V, const tsr_lm_sampler_opts *o, float pmax, float *mass_out) {
    const bool filt_k = o->top_k > 0 && o->top_k < V, filt_p = o->top_p > 0 && o->top_p < 1;
    /* candidates surviving min-p; with top-p alone, tokens below
     * (1 - p) / (V - 1) can never be inside the nucleus, so skip them early */
    float floor_p = o->min_p > 0 ? o->min_p * pmax : 0.0f;
    if (filt_p && !filt_k && V > 1) {
        float cut = (1.0f - o->top_p) / (float)(V - 1);
        if (cut > floor_p) floor_p = cut;
    }
    /* without a branch: about a quarter of a 4096-token vocabulary passes,
     * in no pattern a predictor could follow (cand has room for V) */
    int n = 0;
    for (int i = 0; i < V; i++) {
        cand[n] = (tsr_lm_prob){p[i], i};
        n += p[i] >= floor_p;
    }
    if (n == 0) return 0;
    sort_prob_desc(cand, n);
    if (filt_k && n > o->top_k) n = o->top_k;
    float mass = 0.0f;
    for (int i = 0; i < n; i++) mass += cand[i].p;
    if (filt_p) {
        /* smallest prefix whose share of the kept mass exceeds top_p */
        float cum = 0.0f;
        for (int i = 0; i < n; i++) {
            cum += cand[i].p;
            if (cum > o->top_p * mass) {
                n = i + 1;
                break;
            }
        }
        mass = 0.0f;
        for (int i = 0; i < n; i++) mass += cand[i].p;
    }
    *mass_out = mass;
    return n;
}

int tsr_lm_sample(tsr_lm_sampler *s, float *logits, const int *history, int n_hist) {
    const int V = s->vocab;
    const tsr_lm_sampler_opts *o = &s->o;
    if (o->rep_penalty != 1.0f && n_hist > 0) {
        /* each distinct token once; stamps avoid clearing the marks */
        if (++s->stamp == 0) {
            memset(s->seen, 0, sizeof(uint32_t) * (size_t)V);
            s->stamp = 1;
        }
        int from = o->rep_window > 0 && n_hist > o->rep_window ? n_hist - o->rep_window : 0;
        for (int i = from; i < n_hist; i++) {
            int id = history[i];
            if (id < 0 || id >= V || s->seen[id] == s->stamp) continue;
            s->seen[id] = s->stamp;
            logits[id] = logits[id] > 0 ? logits[id] / o->rep_penalty : logits[id] * o->rep_penalty;
        }
    }
    if (o->temperature == 0.0f) return tsr_lm_argmax(logits, V);
    const float pmax = softmax_t(logits, V, o->temperature);
    float coin = tsr_rng_uniform(&s->rng);
    if (!any_filter(o, V)) {
        /* plain multinomial over the full distribution */
        float cdf = 0.0f;
        for (int i = 0; i < V; i++) {
            cdf += logits[i];
            if (coin < cdf) return i;
        }
        return V - 1;
    }
    float mass = 0.0f;
    int n = filter(s->cand, logits, V, o, pmax, &mass);
    if (n == 0) return tsr_lm_argmax(logits, V);
    float r = coin * mass, cdf = 0.0f;
    for (int i = 0; i < n; i++) {
        cdf += s->cand[i].p;
        if (r < cdf) return s->cand[i].id;
    }
    return s->cand[n - 1].id;
}

void tsr_lm_sample_probs(float *probs, const float *logits, int V, const tsr_lm_sampler_opts *o, tsr_lm_prob *cand) {
    if (o->temperature == 0.0f) {
        memset(probs, 0, sizeof(float) * (size_t)V);
        probs[tsr_lm_argmax(logits, V)] = 1.0f;
        return;
    }
    memcpy(probs, logits, sizeof(float) * (size_t)V);
    const float pmax = softmax_t(probs, V, o->temperature);
    if (!any_filter(o, V)) return;
    float mass = 0.0f;
    int n = filter(cand, probs, V, o, pmax, &mass);
    if (n == 0) {
        int a = tsr_lm_argmax(probs, V);
        memset(probs, 0, sizeof(float) * (size_t)V);
        probs[a] = 1.0f;
        return;
    }
    memset(probs, 0, sizeof(float) * (size_t)V);
    for (int i = 0; i < n; i++) probs[cand[i].id] = cand[i].p / mass;
}
