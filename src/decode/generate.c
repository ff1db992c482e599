/* decode: greedy generation with prompt-lookup drafts (Saxena 2023,
 * "prompt lookup decoding"; verification as in Leviathan et al. 2023 with
 * greedy acceptance). Each step puts the last token and the drafted tree
 * through one masked forward, keeps the K/V of the accepted path, and
 * emits the accepted drafts plus the model's next token. Because the lm
 * kernels are batch invariant, the output is token-identical to plain
 * greedy decoding, not merely close. */
#include "tessera/decode.h"

#include <stdlib.h>
#include <string.h>

void tsr_decode_ngram_defaults(tsr_decode_ngram_opts *o) {
    o->k = 8;
    o->max_ngram = 3;
    o->n_cand = 1;
    o->stop_token = -1;
    o->max_len = 0;
    o->adaptive = true;
}

/* cache + prefill of the whole prompt; *first = greedy next token */
static tsr_status start(const tsr_lm_model *m, tsr_lm_cache *c, const int *prompt, int n_prompt, int max_len,
                        float *logits, int *first) {
    if (n_prompt < 1) return tsr_errorf(TSR_ERR_ARG, "decode: the prompt needs at least one token");
    tsr_status s = tsr_lm_cache_init(c, &m->cfg, max_len);
    if (s.code) return s;
    if (n_prompt > c->max_len)
        return tsr_errorf(TSR_ERR_ARG, "decode: prompt of %d tokens exceeds the context of %d", n_prompt, c->max_len);
    for (int off = 0; off < n_prompt; off += TSR_LM_MAX_BATCH) {
        int nb = n_prompt - off < TSR_LM_MAX_BATCH ? n_prompt - off : TSR_LM_MAX_BATCH;
        s = tsr_lm_forward_last(m, c, prompt + off, nb, off, off + nb == n_prompt ? logits : NULL);
        if (s.code) return s;
    }
    *first = tsr_lm_argmax(logits, m->cfg.vocab_size);
    return tsr_ok();
}

tsr_status tsr_decode_greedy_generate(const tsr_lm_model *m, const int *prompt, int n_prompt, int max_new,
                                      int stop_token, int max_len, int *out, int *n_out, tsr_decode_stats *st) {
    tsr_decode_stats dummy;
    if (!st) st = &dummy;
    memset(st, 0, sizeof *st);
    *n_out = 0;
    if (max_new <= 0) return tsr_ok();
    const int V = m->cfg.vocab_size;
    tsr_lm_cache c;
    memset(&c, 0, sizeof c);
    float *logits = malloc(sizeof(float) * (size_t)V);
    if (!logits) return tsr_errorf(TSR_ERR_NOMEM, "decode: out of memory");
    double t0 = tsr_time();
    int tok, cnt = 0, n_ctx = n_prompt;
    tsr_status s = start(m, &c, prompt, n_prompt, max_len, logits, &tok);
    if (s.code) goto done;
    st->prefill_s = tsr_time() - t0;
    t0 = tsr_time();
    out[cnt++] = tok;
    while (cnt < max_new && tok != stop_token && n_ctx < c.max_len) {
        s = tsr_lm_forward(m, &c, &tok, 1, n_ctx, logits);
        if (s.code) goto done;
        n_ctx++;
        st->forwards++;
        tok = tsr_lm_argmax(logits, V);
        out[cnt++] = tok;
    }
    st->decode_s = tsr_time() - t0;
done:
    st->new_tokens = cnt;
    *n_out = cnt;
    tsr_lm_cache_free(&c);
    free(logits);
    return s;
}

tsr_status tsr_decode_ngram_generate(const tsr_lm_model *m, const int *prompt, int n_prompt, int max_new,
                                     const tsr_decode_ngram_opts *o, int *out, int *n_out, tsr_decode_stats *st) {
    tsr_decode_stats dummy;
    tsr_decode_ngram_opts def;
    if (!st) st = &dummy;
    if (!o) {
        tsr_decode_ngram_defaults(&def);
        o = &def;
    }
    memset(st, 0, sizeof *st);
    *n_out = 0;
    if (max_new <= 0) return tsr_ok();
    if (o->k < 0 || o->n_cand < 1 || o->max_ngram < 1)
        return tsr_errorf(TSR_ERR_ARG, "decode: ngram options need k >= 0, n_cand >= 1, max_ngram >= 1");
    const int V = m->cfg.vocab_size, cap = 1 + o->n_cand * o->k;
    tsr_lm_cache c;
    memset(&c, 0, sizeof c);
    float *logits = malloc(sizeof(float) * (size_t)V * (size_t)cap);
    int *hist = malloc(sizeof(int) * ((size_t)n_prompt + (size_t)max_new));
    int *ibuf = malloc(sizeof(int) * 4 * (size_t)cap);
    uint8_t *mask = malloc((size_t)cap * (size_t)cap);
    tsr_status s = tsr_ok();
    int tok, cnt = 0, n_ctx = n_prompt, kcur = o->k;
    if (!logits || !hist || !ibuf || !mask) {
        s = tsr_errorf(TSR_ERR_NOMEM, "decode: out of memory");
        goto done;
    }
    int *tokens = ibuf, *parent = tokens + cap, *pos = parent + cap, *path = pos + cap;
    double t0 = tsr_time();
    s = start(m, &c, prompt, n_prompt, o->max_len, logits, &tok);
    if (s.code) goto done;
    st->prefill_s = tsr_time() - t0;
    t0 = tsr_time();
    memcpy(hist, prompt, sizeof(int) * (size_t)n_prompt);
    hist[n_prompt + cnt] = tok;
    out[cnt++] = tok;
    while (cnt < max_new && tok != o->stop_token && n_ctx < c.max_len) {
        /* drafts deeper than what may still be emitted, or rows beyond the
         * cache, would only be thrown away */
        int room = c.max_len - n_ctx - 1, left = max_new - cnt - 1;
        int kd = kcur < room ? kcur : room;
        if (kd > left) kd = left;
        int n = 1;
        if (o->n_cand == 1) {
            tokens[0] = tok;
            parent[0] = -1;
            int d = tsr_decode_ngram_draft(tokens + 1, hist, n_prompt + cnt, o->max_ngram, kd);
            for (int i = 1; i <= d; i++) parent[i] = i - 1;
            n = 1 + d;
        } else {
            n = tsr_decode_ngram_tree(tokens, parent, tok, hist, n_prompt + cnt, o->max_ngram, kd, o->n_cand);
            /* parents come first, so dropping the tail keeps a tree */
            if (n > room + 1) n = room + 1;
        }
        if (n == 1) {
            s = tsr_lm_forward(m, &c, &tok, 1, n_ctx, logits);
        } else {
            tsr_decode_tree_mask(mask, parent, n);
            tsr_decode_positions(pos, mask, n, n_ctx, n);
            s = tsr_lm_forward_masked(m, &c, tokens, n, n_ctx, pos, mask, n, logits);
        }
        if (s.code) goto done;
        st->forwards++;
        st->drafted += n - 1;
        int bonus, len = tsr_decode_accept_greedy(path, &bonus, tokens, parent, n, logits, V);
        s = tsr_lm_cache_compact(&c, n_ctx, path, len);
        if (s.code) goto done;
        n_ctx += len;
        st->accepted += len - 1;
        if (o->adaptive && n > 1) {
            /* drafts past the first miss cost compute and bring nothing:
             * follow the accepted run length, grow after a full accept */
            int full = len - 1 == kd;
            kcur = full ? 2 * kcur : len;
            if (kcur > o->k) kcur = o->k;
            if (kcur < 1) kcur = 1;
        }
        bool stop = false;
        for (int i = 1; i < len && !stop; i++) {
            tok = tokens[path[i]];
            hist[n_prompt + cnt] = tok;
            out[cnt++] = tok;
            stop = tok == o->stop_token;
        }
        if (stop) break;
        tok = bonus;
        hist[n_prompt + cnt] = tok;
        out[cnt++] = tok;
    }
    st->decode_s = tsr_time() - t0;
done:
    st->new_tokens = cnt;
    *n_out = cnt;
    tsr_lm_cache_free(&c);
    free(logits);
    free(hist);
    free(ibuf);
    free(mask);
    return s;
}
