/* lm family: text generation with llama2.c run.c semantics (what
 * `tessera lm generate` runs). The prompt is fed in batched forwards of up
 * to prefill_batch tokens instead of one at a time: thanks to the
 * batch-invariant kernels this changes speed, not results. Stop strings are
 * matched on the completion text; text that could still turn into a stop
 * string is held back so it is never printed. */
#include "tessera/lm.h"
#include "tessera/bpe.h"
#include "tessera/tokenizer.h"
#include "tessera/decode.h"

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

/* What the loop needs from a tokenizer: the bytes to print when `next`
 * follows `prev` (len 0: nothing) and whether `next` ends the text. */
typedef struct {
    const char *(*piece)(const void *tok, int prev, int next, size_t *len);
    bool (*is_end)(const void *tok, int token);
    const void *tok;
} tok_iface;

/* Feed the prompt ptok[0..np) (batched), then sample as run.c does. */
static tsr_status run_loop(const tsr_lm_model *m, const tok_iface *ti, tsr_lm_sampler *smp, const int *ptok, int np,
                           const tsr_lm_gen_opts *o, tsr_lm_emit_fn emit, void *ud, tsr_lm_gen_stats *st) {
    const int V = m->cfg.vocab_size;
    if (smp->vocab != V) return tsr_errorf(TSR_ERR_ARG, "sampler was made for another vocabulary");
    for (int k = 0; k < o->n_stop; k++)
        if (!o->stop[k] || !o->stop[k][0]) return tsr_errorf(TSR_ERR_ARG, "empty stop string");
    int steps = o->steps;
    if (steps <= 0 || steps > m->cfg.seq_len) steps = m->cfg.seq_len;
    int pb = o->prefill_batch > 0 ? o->prefill_batch : TSR_LM_MAX_BATCH;
    st->prompt_tokens = np;

    tsr_status s = tsr_ok();
    tsr_lm_cache cache;
    out_filter f = {emit, ud, o->stop, o->n_stop, NULL, 0, 0, false, false};
    int *hist = malloc(sizeof(int) * ((size_t)steps + 1));
    float *last = malloc(sizeof(float) * (size_t)V);
    memset(&cache, 0, sizeof cache);
    if (!hist || !last) {
        s = tsr_errorf(TSR_ERR_NOMEM, "generate: out of memory");
        goto done;
    }
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
        if (ti->is_end(ti->tok, next)) {
            st->stopped_bos = true;
            break;
        }
        size_t plen = 0;
        const char *piece = ti->piece(ti->tok, token, next, &plen);
        if (plen) {
            if (from_prompt) do_emit(&f, piece, plen);
            else {
                s = filter_push(&f, piece, plen);
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
    free(hist);
    free(last);
    return s;
}

/* ---- llama2.c tokenizer */

static const char *l2c_piece(const void *tok, int prev, int next, size_t *len) {
    const char *p = tsr_tokenizer_decode(tok, prev, next);
    *len = tsr_tokenizer_printable(p) ? strlen(p) : 0;
    return p;
}
/* run.c stops whenever BOS comes next, from the prompt or sampled */
static bool l2c_end(const void *tok, int token) {
    (void)tok;
    return token == TSR_TOK_BOS;
}

tsr_status tsr_lm_generate(const tsr_lm_model *m, const tsr_tokenizer *tok, tsr_lm_sampler *smp,
                           const char *prompt, const tsr_lm_gen_opts *o, tsr_lm_emit_fn emit, void *ud,
                           tsr_lm_gen_stats *st) {
    tsr_lm_gen_stats dummy;
    if (!st) st = &dummy;
    memset(st, 0, sizeof *st);
    if (tok->vocab_size != m->cfg.vocab_size)
        return tsr_errorf(TSR_ERR_ARG, "tokenizer has %d tokens but the model's vocabulary is %d",
                          tok->vocab_size, m->cfg.vocab_size);
    if (!prompt) prompt = "";
    int *ptok = malloc(sizeof(int) * tsr_tokenizer_max_tokens(prompt));
    if (!ptok) return tsr_errorf(TSR_ERR_NOMEM, "generate: out of memory");
    int np = tsr_tokenizer_encode(tok, prompt, true, false, ptok);
    tsr_status s;
    if (np < 1) s = tsr_errorf(TSR_ERR_NOMEM, "generate: out of memory while encoding the prompt");
    else if ((s = tsr_prompt_fit(ptok, &np, m->cfg.seq_len, o->truncate_left, o->max_new_tokens)).code) {
    } else {
        tok_iface ti = {l2c_piece, l2c_end, tok};
        s = run_loop(m, &ti, smp, ptok, np, o, emit, ud, st);
    }
    free(ptok);
    return s;
}

/* ---- byte-level BPE (tokenizer.json) */

static const char *const k_bos[] = {"<s>", "<|begin_of_text|>", "<|endoftext|>", NULL};
static const char *const k_eos[] = {"</s>", "<|end_of_text|>", "<|eot_id|>", "<|endoftext|>", NULL};

static const char *bpe_piece(const void *tok, int prev, int next, size_t *len) {
    const tsr_bpe *b = tok;
    (void)prev;
    int l = 0;
    const char *p = tsr_bpe_piece(b, next, &l);
    *len = p && !b->special[next] ? (size_t)l : 0;
    return p;
}
static bool bpe_end(const void *tok, int token) {
    const tsr_bpe *b = tok;
    for (int i = 0; k_eos[i]; i++)
        if (tsr_bpe_special_id(b, k_eos[i]) == token) return true;
    return false;
}

void tsr_lm_bpe_specials(const tsr_bpe *tok, int *bos, int *eos) {
    *bos = *eos = -1;
    for (int i = 0; k_bos[i] && *bos < 0; i++) *bos = tsr_bpe_special_id(tok, k_bos[i]);
    for (int i = 0; k_eos[i] && *eos < 0; i++) *eos = tsr_bpe_special_id(tok, k_eos[i]);
}

int *tsr_lm_bpe_prompt(tsr_bpe *tok, const char *text, int *n) {
    size_t len = strlen(text);
    int32_t *ids = malloc(sizeof(int32_t) * (len + 2));
    int *p = malloc(sizeof(int) * (len + 2));
    if (!ids || !p) {
        free(ids);
        free(p);
        return NULL;
    }
    int bos, eos, np = 0;
    tsr_lm_bpe_specials(tok, &bos, &eos);
    if (bos >= 0) p[np++] = bos;
    size_t k = tsr_bpe_encode(tok, text, len, ids);
    for (size_t i = 0; i < k; i++) p[np++] = ids[i];
    free(ids);
    *n = np;
    return p;
}

tsr_status tsr_lm_generate_bpe(const tsr_lm_model *m, tsr_bpe *tok, tsr_lm_sampler *smp, const char *prompt,
                               const tsr_lm_gen_opts *o, tsr_lm_emit_fn emit, void *ud, tsr_lm_gen_stats *st) {
    tsr_lm_gen_stats dummy;
    if (!st) st = &dummy;
    memset(st, 0, sizeof *st);
    if (tok->vocab_size > m->cfg.vocab_size)
        return tsr_errorf(TSR_ERR_ARG, "tokenizer has %d tokens but the model's vocabulary is %d",
                          tok->vocab_size, m->cfg.vocab_size);
    if (!prompt) prompt = "";
    size_t len = strlen(prompt);
    int bos = -1;
    for (int i = 0; k_bos[i] && bos < 0; i++) bos = tsr_bpe_special_id(tok, k_bos[i]);
    if (bos < 0 && len == 0) return tsr_errorf(TSR_ERR_ARG, "an empty prompt needs a BOS special token in the tokenizer");
    int32_t *ids = malloc(sizeof(int32_t) * (len + 1));
    int *ptok = malloc(sizeof(int) * (len + 1));
    tsr_status s;
    if (!ids || !ptok) s = tsr_errorf(TSR_ERR_NOMEM, "generate: out of memory");
    else {
        int np = 0;
        if (bos >= 0) ptok[np++] = bos;
        size_t n = tsr_bpe_encode(tok, prompt, len, ids);
        for (size_t i = 0; i < n; i++) ptok[np++] = ids[i];
        s = tsr_prompt_fit(ptok, &np, m->cfg.seq_len, o->truncate_left, o->max_new_tokens);
        if (s.code) np = 0;
        /* without BOS the first prompt token is never printed by the loop */
        if (bos < 0) {
            int l = 0;
            const char *p = tsr_bpe_piece(tok, ptok[0], &l);
            if (p && l && emit(ud, p, (size_t)l)) np = 0;
        }
        tok_iface ti = {bpe_piece, bpe_end, tok};
        if (np) s = run_loop(m, &ti, smp, ptok, np, o, emit, ud, st);
    }
    free(ids);
    free(ptok);
    return s;
}
