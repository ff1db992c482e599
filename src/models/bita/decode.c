/* bita: decoding with a tuned adapter (BiTA sec. 3.3, "tree-based
 * decoding"), with a KV cache instead of the public code's recomputation
 * of the whole sequence per step. Cache slots 0..P-1 hold the prompt K/V
 * (seen by mask rows only), then the sequence. Each step is one masked
 * forward of the root, a draft tree (level m: the top-(n - m) tokens of
 * mask m, children of level m-1's top-1 token) and one mask group per tree
 * node; acceptance is greedy (token-identical to plain greedy decoding:
 * ordinary rows see exactly what a plain step sees and the lm kernels are
 * batch invariant) or exact speculative sampling; accepted rows are
 * compacted in place and the next drafts come from the mask group of the
 * last accepted node. Also: the tree shape chosen from a measured
 * batch-cost curve (tsr_decode_cost_curve) and the adapter's acceptance
 * table. Sampling uses decode's exact tree acceptance
 * (tsr_decode_accept_sample). */
#include "tessera/bita.h"
#include "tessera/decode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int tsr_bita_shape_nodes(tsr_bita_shape s) {
    int n = 1;
    for (int m = 0; m < s.depth; m++) n += s.top - m > 1 ? s.top - m : 1;
    return n;
}

int tsr_bita_shape_rows(tsr_bita_shape s) { return tsr_bita_shape_nodes(s) * (1 + s.depth); }

double tsr_bita_shape_tokens(const float acc[TSR_BITA_MAX_K][TSR_BITA_MAX_TOP], int k, tsr_bita_shape s) {
    double e = 1.0, reach = 1.0;
    for (int m = 0; m < s.depth && m < k; m++) {
        int r = s.top - m > 1 ? s.top - m : 1;
        if (r > TSR_BITA_MAX_TOP) r = TSR_BITA_MAX_TOP;
        e += reach * acc[m][r - 1];
        /* deeper levels hang under the top-1 token only */
        reach *= acc[m][0];
    }
    return e;
}

tsr_bita_shape tsr_bita_choose_shape(const tsr_bita_adapter *a, const double *ms, int n_max, int max_top) {
    /* depth 0 (no drafts, one row per step) is the baseline a tree must beat */
    tsr_bita_shape best = {1, 0};
    double best_v = 1.0;
    if (max_top > TSR_BITA_MAX_TOP) max_top = TSR_BITA_MAX_TOP;
    for (int d = 1; d <= a->k; d++)
        for (int top = 1; top <= max_top; top++) {
            tsr_bita_shape s = {top, d};
            int rows = tsr_bita_shape_rows(s);
            if (rows > n_max) continue;
            double v = tsr_bita_shape_tokens(a->acc, a->k, s) * ms[1] / ms[rows];
            if (v > best_v + 1e-9) {
                best_v = v;
                best = s;
            }
        }
    return best;
}

void tsr_bita_gen_defaults(tsr_bita_gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->shape = (tsr_bita_shape){2, 2};
    o->stop_token = -1;
    tsr_lm_sampler_defaults(&o->sampling);
    o->sampling.temperature = 0.0f;
}

/* ------------------------------------------------------------ generation */

/* one draw from p (V, sums to ~1) */
static int draw(const float *p, int V, tsr_rng *rng) {
    double total = 0;
    for (int i = 0; i < V; i++) total += p[i];
    double r = (double)tsr_rng_uniform(rng) * total, cdf = 0;
    int last = 0;
    for (int i = 0; i < V; i++) {
        if (p[i] <= 0) continue;
        cdf += p[i];
        last = i;
        if (r < cdf) return i;
    }
    return last;
}


/* ids of the r largest of x[0..V) (ties: lower id first), best first */
static void top_r(int *ids, const float *x, int V, int r) {
    float val[TSR_BITA_MAX_TOP];
    int n = 0;
    for (int i = 0; i < V; i++) {
        float v = x[i];
        if (n == r && !(v > val[n - 1])) continue;
        int j = n < r ? n++ : n - 1;
        while (j > 0 && v > val[j - 1]) {
            val[j] = val[j - 1];
            ids[j] = ids[j - 1];
            j--;
        }
        val[j] = v;
        ids[j] = i;
    }
}

tsr_status tsr_bita_generate(const tsr_bita_model *bm, const int *prompt, int n_prompt, int max_new,
                             const tsr_bita_gen_opts *o, int *out, int *n_out, tsr_bita_stats *st) {
    tsr_bita_stats dummy;
    if (!st) st = &dummy;
    memset(st, 0, sizeof *st);
    *n_out = 0;
    if (max_new <= 0) return tsr_ok();
    const tsr_lm_model *m = &bm->view;
    const tsr_bita_adapter *ad = bm->ad;
    const int d = o->shape.depth, top = o->shape.top;
    /* without masks nothing reads the prompt K/V: plain one-row steps */
    const int V = bm->base->cfg.vocab_size, Vx = m->cfg.vocab_size, P = d > 0 ? ad->n_prefix : 0, kv = ad->kv_dim;
    if (d < 0 || d > ad->k || top < 1 || top > TSR_BITA_MAX_TOP)
        return tsr_errorf(TSR_ERR_ARG, "bita: tree shape top %d, depth %d outside [1, %d] x [0, %d]", top, d,
                          TSR_BITA_MAX_TOP, ad->k);
    if (n_prompt < 1) return tsr_errorf(TSR_ERR_ARG, "bita: the prompt needs at least one token");
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V)
            return tsr_errorf(TSR_ERR_ARG, "bita: prompt token %d out of range [0, %d)", prompt[i], V);
    const bool greedy = o->sampling.temperature == 0.0f;
    const int max_len = o->max_len > 0 ? o->max_len : bm->base->cfg.seq_len;
    if (n_prompt > max_len)
        return tsr_errorf(TSR_ERR_ARG, "bita: prompt of %d tokens exceeds the context of %d", n_prompt, max_len);
    const int nodes_max = tsr_bita_shape_nodes(o->shape), rows_max = nodes_max * (1 + d);
    const int cap = (n_prompt + d > rows_max ? n_prompt + d : rows_max);
    const int slots = P + max_len + rows_max + d;

    tsr_lm_cache c;
    memset(&c, 0, sizeof c);
    float *logits = malloc(sizeof(float) * (size_t)Vx * (size_t)cap);
    int *ibuf = malloc(sizeof(int) * 6 * (size_t)cap);
    uint8_t *mask = malloc((size_t)cap * (size_t)(slots + cap));
    float *probs = malloc(sizeof(float) * 3 * (size_t)Vx);
    tsr_lm_prob *scratch = malloc(sizeof(tsr_lm_prob) * (size_t)V);
    int cand[TSR_BITA_MAX_K][TSR_BITA_MAX_TOP];
    tsr_rng rng;
    tsr_rng_seed(&rng, o->sampling.seed);
    tsr_status s = tsr_ok();
    int cnt = 0, tok = 0;
    if (!logits || !ibuf || !mask || !probs || !scratch) {
        s = tsr_errorf(TSR_ERR_NOMEM, "bita: out of memory");
        goto done;
    }
    int *tokens = ibuf, *parent = tokens + cap, *pos = parent + cap, *path = pos + cap, *depth = path + cap;
    /* the cache holds the prompt slots and a step's rows beyond the context */
    tsr_lm_config ccfg = m->cfg;
    ccfg.seq_len = slots;
    s = tsr_lm_cache_init(&c, &ccfg, slots);
    if (s.code) goto done;
    for (int l = 0; l < ad->n_layers; l++) {
        memcpy(c.k + (size_t)l * c.max_len * kv, ad->prefix_k + (size_t)l * P * kv, sizeof(float) * (size_t)P * kv);
        memcpy(c.v + (size_t)l * c.max_len * kv, ad->prefix_v + (size_t)l * P * kv, sizeof(float) * (size_t)P * kv);
    }

    /* prefill: the prompt rows (causal, prompt slots hidden) and the mask
     * group that starts after the last prompt token */
    double t0 = tsr_time();
    {
        const int n = n_prompt + d, ld = P + n;
        memset(mask, 0, (size_t)n * ld);
        for (int t = 0; t < n_prompt; t++) {
            tokens[t] = prompt[t];
            pos[t] = t;
            memset(mask + (size_t)t * ld + P, 1, (size_t)t + 1);
        }
        for (int j = 0; j < d; j++) {
            int t = n_prompt + j;
            tokens[t] = V + j;
            pos[t] = n_prompt + j;
            memset(mask + (size_t)t * ld, 1, (size_t)P + n_prompt);
            memset(mask + (size_t)t * ld + P + n_prompt, 1, (size_t)j + 1);
        }
        s = tsr_lm_forward_masked(m, &c, tokens, n, P, pos, mask, ld, logits);
        if (s.code) goto done;
        const float *lr = logits + (size_t)(n_prompt - 1) * Vx;
        if (greedy) {
            tok = tsr_lm_argmax(lr, V);
        } else {
            tsr_lm_sample_probs(probs, lr, V, &o->sampling, scratch);
            tok = draw(probs, V, &rng);
        }
        for (int j = 0; j < d; j++) {
            int r = top - j > 1 ? top - j : 1;
            top_r(cand[j], logits + (size_t)(n_prompt + j) * Vx, V, r);
        }
    }
    st->prefill_s = tsr_time() - t0;
    t0 = tsr_time();
    int L = n_prompt; /* sequence tokens in the cache (slots P..P+L-1) */
    out[cnt++] = tok;
    while (cnt < max_new && tok != o->stop_token && L < max_len) {
        int room = max_len - L - 1, left = max_new - cnt - 1;
        int dd = d < room ? d : room;
        if (dd > left) dd = left;
        if (dd < 0) dd = 0;
        /* tree */
        int N = 1, prev = 0;
        tokens[0] = tok;
        parent[0] = -1;
        depth[0] = 0;
        for (int lv = 0; lv < dd; lv++) {
            int r = top - lv > 1 ? top - lv : 1, first = N;
            for (int i = 0; i < r; i++) {
                tokens[N] = cand[lv][i];
                parent[N] = prev;
                depth[N] = lv + 1;
                N++;
            }
            prev = first;
        }
        /* one mask group of d masks per node */
        const int R = N * (1 + d), n_ctx = P + L, ld = n_ctx + R;
        memset(mask, 0, (size_t)R * ld);
        for (int i = 0; i < N; i++) {
            uint8_t *row = mask + (size_t)i * ld;
            memset(row + P, 1, (size_t)L);
            for (int a = i; a >= 0; a = parent[a]) row[n_ctx + a] = 1;
            pos[i] = L + depth[i];
            for (int j = 0; j < d; j++) {
                int t = N + i * d + j;
                uint8_t *mr = mask + (size_t)t * ld;
                memcpy(mr, row, (size_t)n_ctx + N);
                memset(mr, 1, (size_t)P);
                memset(mr + n_ctx + N + i * d, 1, (size_t)j + 1);
                tokens[t] = V + j;
                pos[t] = L + depth[i] + 1 + j;
            }
        }
        if (R == 1 && P == 0) s = tsr_lm_forward(m, &c, tokens, 1, n_ctx, logits);
        else s = tsr_lm_forward_masked(m, &c, tokens, R, n_ctx, pos, mask, ld, logits);
        if (s.code) goto done;
        st->forwards++;
        st->rows += R;
        int bonus, len;
        /* the classifier writes V columns of Vx: the mask columns must never
         * win an argmax nor get probability (exp(-inf) = 0) */
        for (int i = 0; i < N; i++)
            for (int j = V; j < Vx; j++) logits[(size_t)i * Vx + j] = -INFINITY;
        if (greedy) len = tsr_decode_accept_greedy(path, &bonus, tokens, parent, N, logits, Vx);
        else len = tsr_decode_accept_sample(path, &bonus, tokens, parent, N, logits, Vx, &o->sampling, &rng, probs);
        for (int lv = 0; lv < dd; lv++) {
            if (len >= lv + 1) st->level_tries[lv]++;
            if (len >= lv + 2) st->level_hits[lv]++;
        }
        s = tsr_lm_cache_compact(&c, n_ctx, path, len);
        if (s.code) goto done;
        L += len;
        st->accepted += len - 1;
        /* next drafts: the mask group of the last accepted node */
        int last = path[len - 1];
        for (int j = 0; j < d; j++) {
            int r = top - j > 1 ? top - j : 1;
            top_r(cand[j], logits + (size_t)(N + last * d + j) * Vx, V, r);
        }
        bool stop = false;
        for (int i = 1; i < len && !stop; i++) {
            tok = tokens[path[i]];
            out[cnt++] = tok;
            stop = tok == o->stop_token;
        }
        if (stop) break;
        tok = bonus;
        out[cnt++] = tok;
    }
    st->decode_s = tsr_time() - t0;
done:
    st->new_tokens = cnt;
    *n_out = cnt;
    tsr_lm_cache_free(&c);
    free(logits);
    free(ibuf);
    free(mask);
    free(probs);
    free(scratch);
    return s;
}
