/* tessera space: auto-correct decoding (SPACE, Yi et al. 2024, sec. 3.3)
 * on the shared verification module (include/tessera/decode.h): one masked
 * forward verifies the candidates and drafts the next ones from mask
 * groups; the KV cache keeps the accepted rows only. Greedy acceptance is
 * token-identical to plain greedy decoding; temperature > 0 uses exact
 * speculative sampling. The number of masks per group follows the
 * measured cost of a forward and the measured acceptance (auto k). */
#include "tessera/space.h"

#include <stdlib.h>
#include <string.h>

void tsr_space_default_opts(tsr_space_opts *o) {
    memset(o, 0, sizeof *o);
    o->k = 0;
    o->k_max = 4;
    o->mask_id = -1;
    o->stop_token = -1;
    tsr_lm_sampler_defaults(&o->sampler);
    o->sampler.temperature = 0.0f;
    o->sampler.top_p = 0.0f;
}

int tsr_space_layout(int *tokens, int *parent, uint8_t *is_mask, int *group, int root, const int *cand, int c,
                     int m, int mask_id) {
    int n = 0, prev = 0;
    tokens[n] = root, parent[n] = -1, is_mask[n] = 0, n++;
    for (int j = 0; j <= c; j++) {
        group[j] = n;
        for (int i = 0; i < m; i++, n++) /* a chain hanging off the token before it */
            tokens[n] = mask_id, parent[n] = i == 0 ? prev : n - 1, is_mask[n] = 1;
        if (j < c) {
            tokens[n] = cand[j], parent[n] = prev, is_mask[n] = 0;
            prev = n++;
        }
    }
    return n;
}

/* expected tokens per forward over its cost, for m masks per group, from
 * the acceptance counts so far (Beta(1,1) prior per position) */
static double rate(const tsr_space_stats *st, int m, const double *cost, int cost_n) {
    double e = 1.0, run = 1.0;
    for (int j = 0; j < m; j++) {
        double a = (double)(st->accepted_at[j] + 1) / (double)(st->offered_at[j] + 2);
        run *= a;
        e += run;
    }
    int n = tsr_space_rows(m, m);
    double cn = n <= cost_n ? cost[n] : cost[cost_n] * (double)n / (double)cost_n;
    return e / cn;
}

tsr_status tsr_space_generate(const tsr_lm_model *m, const int *prompt, int n_prompt, int max_new,
                              const tsr_space_opts *o, int *out, int *n_out, tsr_space_stats *st) {
    tsr_space_stats dummy;
    if (!st) st = &dummy;
    memset(st, 0, sizeof *st);
    *n_out = 0;
    const int V = m->cfg.vocab_size;
    if (o->mask_id < 0 || o->mask_id >= V)
        return tsr_errorf(TSR_ERR_ARG, "space: the mask token id %d is not in the model's vocabulary (%d)", o->mask_id, V);
    if (o->k < 0 || o->k > 15 || o->k_max < 1 || o->k_max > 15)
        return tsr_errorf(TSR_ERR_ARG, "space: k must be in 0..15 (0: auto) and k_max in 1..15");
    const bool sampling = o->sampler.temperature > 0.0f;
    if (sampling && o->sampler.rep_penalty != 1.0f)
        return tsr_errorf(TSR_ERR_ARG, "space: exact sampling does not support a repetition penalty");
    if (n_prompt < 1) return tsr_errorf(TSR_ERR_ARG, "space: the prompt needs at least one token");
    if (max_new <= 0) return tsr_ok();
    const int kmax = o->k > 0 ? o->k : o->k_max;
    const int cap = tsr_space_rows(kmax, kmax);

    tsr_status s = tsr_ok();
    tsr_lm_cache c;
    memset(&c, 0, sizeof c);
    double *cost = NULL;
    float *logits = malloc(sizeof(float) * (size_t)V * (size_t)cap);
    float *scratch = malloc(sizeof(float) * 3 * (size_t)V);
    int *ibuf = malloc(sizeof(int) * 8 * (size_t)cap);
    uint8_t *mask = malloc((size_t)cap * (size_t)cap + (size_t)cap);
    if (!logits || !scratch || !ibuf || !mask) {
        s = tsr_errorf(TSR_ERR_NOMEM, "space: out of memory");
        goto done;
    }
    int *tokens = ibuf, *parent = tokens + cap, *pos = parent + cap, *path = pos + cap, *acc = path + cap,
        *group = acc + cap, *cand = group + cap;
    uint8_t *is_mask = mask + (size_t)cap * cap;
    int cost_n = 0;
    if (o->k == 0) {
        if (o->cost_ms && o->cost_n >= 1) {
            cost = malloc(sizeof(double) * ((size_t)o->cost_n + 1));
            if (!cost) {
                s = tsr_errorf(TSR_ERR_NOMEM, "space: out of memory");
                goto done;
            }
            memcpy(cost, o->cost_ms, sizeof(double) * ((size_t)o->cost_n + 1));
            cost_n = o->cost_n;
        } else {
            cost_n = cap;
            cost = malloc(sizeof(double) * ((size_t)cost_n + 1));
            if (!cost) {
                s = tsr_errorf(TSR_ERR_NOMEM, "space: out of memory");
                goto done;
            }
            /* timed where the prompt ends, or lower when the rows would not
             * fit the context there (a prompt near the context length) */
            int at = n_prompt + cost_n <= m->cfg.seq_len ? n_prompt : m->cfg.seq_len - cost_n;
            s = tsr_decode_cost_curve(m, at > 1 ? at : 1, cost_n, cost);
            if (s.code) goto done;
        }
        /* a larger forward never costs less: smooth timing noise */
        for (int i = 2; i <= cost_n; i++)
            if (cost[i] < cost[i - 1]) cost[i] = cost[i - 1];
    }
    tsr_rng rng;
    tsr_rng_seed(&rng, o->sampler.seed);

    double t0 = tsr_time();
    if ((s = tsr_lm_cache_init(&c, &m->cfg, o->max_len)).code) goto done;
    if (n_prompt > c.max_len) {
        s = tsr_errorf(TSR_ERR_ARG, "space: prompt of %d tokens exceeds the context of %d", n_prompt, c.max_len);
        goto done;
    }
    for (int off = 0; off < n_prompt; off += TSR_LM_MAX_BATCH) {
        int nb = n_prompt - off < TSR_LM_MAX_BATCH ? n_prompt - off : TSR_LM_MAX_BATCH;
        s = tsr_lm_forward_last(m, &c, prompt + off, nb, off, off + nb == n_prompt ? logits : NULL);
        if (s.code) goto done;
    }
    int tok;
    if (sampling) {
        /* the first token from the prompt's logits: a tree of the root only */
        int root_only[1] = {-1}, bonus;
        tsr_decode_accept_sample(path, &bonus, root_only, root_only, 1, logits, V, &o->sampler, &rng, scratch);
        tok = bonus;
    } else {
        tok = tsr_lm_argmax(logits, V);
    }
    st->d.prefill_s = tsr_time() - t0;
    t0 = tsr_time();
    int cnt = 0, n_ctx = n_prompt, avail = 0;
    bool explored = false;
    /* forwards between explorations: doubled each time one leaves plain
     * steps the better choice, back to the first interval when drafting
     * wins, so a text on which no draft pays costs a few explorations, not
     * one in every 16 forwards */
    int64_t explore_gap = 32, explore_at = 32;
    out[cnt++] = tok;
    while (cnt < max_new && tok != o->stop_token && n_ctx < c.max_len) {
        int mk = o->k;
        if (mk == 0) {
            /* plain steps (mk 0) when no draft pays for its rows; then
             * an exploration step drafts anyway, and the next one
             * verifies, so the acceptance estimates keep up with the text */
            double best = 1.0 / cost[1];
            for (int k = 1; k <= kmax; k++) {
                double r = rate(st, k, cost, cost_n);
                if (r > best) best = r, mk = k;
            }
            if (mk > 0) {
                explore_gap = 32;
                explore_at = st->d.forwards + explore_gap;
            }
            const bool due = mk == 0 && st->d.forwards >= explore_at && avail == 0;
            if (due) {
                explore_gap = explore_gap < 1024 ? 2 * explore_gap : explore_gap;
                explore_at = st->d.forwards + explore_gap;
            }
            if (mk == 0 && (due || (explored && avail > 0))) mk = 1;
            explored = due;
        }
        /* every row of the forward needs a cache slot until compaction;
         * candidates past what may still be emitted are useless */
        int room = c.max_len - n_ctx, left = max_new - cnt - 1;
        while (mk > 0 && tsr_space_rows(mk < avail ? mk : avail, mk) > room) mk--;
        int nc = avail < mk ? avail : mk;
        if (nc > left) nc = left;
        int n;
        if (mk == 0) {
            n = 1;
            tokens[0] = tok, parent[0] = -1, is_mask[0] = 0, group[0] = 1;
            s = tsr_lm_forward(m, &c, &tok, 1, n_ctx, logits);
        } else {
            n = tsr_space_layout(tokens, parent, is_mask, group, tok, cand, nc, mk, o->mask_id);
            tsr_decode_tree_mask(mask, parent, n);
            tsr_decode_positions(pos, mask, n, n_ctx, n);
            s = tsr_lm_forward_masked(m, &c, tokens, n, n_ctx, pos, mask, n, logits);
        }
        if (s.code) goto done;
        st->d.forwards++;
        st->d.drafted += nc;
        for (int i = 0; i < n; i++) acc[i] = is_mask[i] ? -1 : tokens[i];
        int bonus, len;
        if (sampling)
            len = tsr_decode_accept_sample(path, &bonus, acc, parent, n, logits, V, &o->sampler, &rng, scratch);
        else
            len = tsr_decode_accept_greedy(path, &bonus, acc, parent, n, logits, V);
        if ((s = tsr_lm_cache_compact(&c, n_ctx, path, len)).code) goto done;
        n_ctx += len;
        const int a = len - 1; /* candidates accepted */
        st->d.accepted += a;
        for (int j = 0; j < nc && j < 16; j++) {
            if (j <= a) st->offered_at[j]++;
            if (j < a) st->accepted_at[j]++;
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
        /* the next candidates: the group after the last accepted row */
        avail = mk;
        if (mk > 0) {
            int g = group[a];
            for (int i = 0; i < mk; i++) cand[i] = tsr_lm_argmax(logits + (size_t)(g + i) * V, V);
        }
        st->k_used = mk;
    }
    st->d.decode_s = tsr_time() - t0;
    st->d.new_tokens = cnt;
    *n_out = cnt;
done:
    tsr_lm_cache_free(&c);
    free(cost);
    free(logits);
    free(scratch);
    free(ibuf);
    free(mask);
    return s;
}
