/* lm family: text generation with llama2.c run.c semantics (what
 * `tessera lm generate` runs). The prompt is fed in batched forwards of up
 * to prefill_batch tokens instead of one at a time: thanks to the
 * batch-invariant kernels this changes speed, not results. Stop strings are
 * matched on the completion text; text that could still turn into a stop
 * string is held back so it is never printed. */
#include "tessera/lm.h"
#include "tessera/tokenizer.h"

#include <string.h>

typedef struct {
    tsr_lm_emit_fn emit;
    void *ud;
    const char *const *stop;
    int n_stop;
    char *buf;     /* completion text not yet emitted */
    size_t len, cap;
    bool stopped;  /* a stop string matched */
    bool aborted;  /* the emitter asked to stop */
} out_filter;

static int do_emit(out_filter *f, const char *s, size_t n) {
    if (n == 0 || f->aborted) return 0;
    if (f->emit(f->ud, s, n)) f->aborted = true;
    return f->aborted;
}

/* length of the longest suffix of s[0..n) that is a proper prefix of a stop string */
static size_t held_suffix(const out_filter *f, const char *s, size_t n) {
    size_t best = 0;
    for (int k = 0; k < f->n_stop; k++) {
        size_t sl = strlen(f->stop[k]);
        for (size_t l = sl - 1 < n ? sl - 1 : n; l > best; l--)
            if (memcmp(s + n - l, f->stop[k], l) == 0) {
                best = l;
                break;
            }
    }
    return best;
}

static tsr_status filter_push(out_filter *f, const char *s, size_t n) {
    if (f->n_stop == 0) {
        do_emit(f, s, n);
        return tsr_ok();
    }
    if (f->len + n + 1 > f->cap) {
        size_t cap = (f->len + n + 1) * 2;
        char *b = realloc(f->buf, cap);
        if (!b) return tsr_errorf(TSR_ERR_NOMEM, "generate: out of memory");
        f->buf = b;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, s, n);
    f->len += n;
    f->buf[f->len] = 0;
    /* earliest match of any stop string in the pending text */
    size_t at = f->len;
    for (int k = 0; k < f->n_stop; k++) {
        size_t sl = strlen(f->stop[k]);
        for (size_t i = 0; i + sl <= f->len && i < at; i++)
            if (memcmp(f->buf + i, f->stop[k], sl) == 0) {
                at = i;
                break;
            }
    }
    if (at < f->len) {
        do_emit(f, f->buf, at);
        f->len = 0;
        f->stopped = true;
        return tsr_ok();
    }
    size_t keep = held_suffix(f, f->buf, f->len);
    do_emit(f, f->buf, f->len - keep);
    memmove(f->buf, f->buf + f->len - keep, keep);
    f->len = keep;
    return tsr_ok();
}

tsr_status tsr_lm_generate(const tsr_lm_model *m, const tsr_tokenizer *tok, tsr_lm_sampler *smp,
                           const char *prompt, const tsr_lm_gen_opts *o, tsr_lm_emit_fn emit, void *ud,
                           tsr_lm_gen_stats *st) {
    tsr_lm_gen_stats dummy;
    if (!st) st = &dummy;
    memset(st, 0, sizeof *st);
    const int V = m->cfg.vocab_size;
    if (tok->vocab_size != V)
        return tsr_errorf(TSR_ERR_ARG, "tokenizer has %d tokens but the model's vocabulary is %d",
                          tok->vocab_size, V);
    if (smp->vocab != V) return tsr_errorf(TSR_ERR_ARG, "sampler was made for another vocabulary");
    for (int k = 0; k < o->n_stop; k++)
        if (!o->stop[k] || !o->stop[k][0]) return tsr_errorf(TSR_ERR_ARG, "empty stop string");
    if (!prompt) prompt = "";
    int steps = o->steps;
    if (steps <= 0 || steps > m->cfg.seq_len) steps = m->cfg.seq_len;
    int pb = o->prefill_batch > 0 ? o->prefill_batch : TSR_LM_MAX_BATCH;

    tsr_status s = tsr_ok();
    tsr_lm_cache cache;
    out_filter f = {emit, ud, o->stop, o->n_stop, NULL, 0, 0, false, false};
    int *ptok = malloc(sizeof(int) * tsr_tokenizer_max_tokens(prompt));
    int *hist = malloc(sizeof(int) * ((size_t)steps + 1));
    float *last = malloc(sizeof(float) * (size_t)V);
    memset(&cache, 0, sizeof cache);
    if (!ptok || !hist || !last) {
        s = tsr_errorf(TSR_ERR_NOMEM, "generate: out of memory");
        goto done;
    }
    int np = tsr_tokenizer_encode(tok, prompt, true, false, ptok);
    if (np < 1) {
        s = tsr_errorf(TSR_ERR_NOMEM, "generate: out of memory while encoding the prompt");
        goto done;
    }
    st->prompt_tokens = np;
    s = tsr_lm_cache_init(&cache, &m->cfg, steps);
    if (s.code) goto done;

    /* prefill: every prompt position that run.c would feed */
    int n_feed = np < steps ? np : steps;
    double t0 = tsr_time();
    for (int off = 0; off < n_feed; off += pb) {
        int nb = n_feed - off < pb ? n_feed - off : pb;
        s = tsr_lm_forward_last(m, &cache, ptok + off, nb, off, off + nb == n_feed ? last : NULL);
        if (s.code) goto done;
    }
    st->prefill_s = tsr_time() - t0;
    double t1 = tsr_time();

    int token = ptok[0], pos = 0;
    hist[0] = token;
    while (pos < steps) {
        int next;
        bool from_prompt = pos < np - 1;
        if (from_prompt) {
            next = ptok[pos + 1];
        } else {
            if (o->max_new_tokens > 0 && st->new_tokens >= o->max_new_tokens) break;
            if (pos >= np) {
                s = tsr_lm_forward(m, &cache, &token, 1, pos, last);
                if (s.code) goto done;
            }
            next = tsr_lm_sample(smp, last, hist, pos + 1);
            st->new_tokens++;
        }
        pos++;
        if (next == TSR_TOK_BOS) {
            st->stopped_bos = true;
            break;
        }
        const char *piece = tsr_tokenizer_decode(tok, token, next);
        if (tsr_tokenizer_printable(piece)) {
            if (from_prompt) do_emit(&f, piece, strlen(piece));
            else {
                s = filter_push(&f, piece, strlen(piece));
                if (s.code) goto done;
            }
        }
        if (f.stopped) {
            st->stopped_stop = true;
            break;
        }
        if (f.aborted) break;
        token = next;
        hist[pos] = next;
    }
    if (!f.stopped) do_emit(&f, f.buf, f.len);
    st->positions = pos;
    st->decode_s = tsr_time() - t1;
done:
    tsr_lm_cache_free(&cache);
    free(f.buf);
    free(ptok);
    free(hist);
    free(last);
    return s;
}
