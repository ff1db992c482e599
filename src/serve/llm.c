/* serve: the OpenAI-compatible LLM endpoints (POST /v1/completions,
 * GET /v1/models) over the lm family's models, with continuous batching.
 *
 * One scheduler thread owns every plain-decoder sequence. Each step it
 * admits waiting requests (up to --max-batch sequences), gathers one row
 * per decoding sequence plus chunks of the prompts still being read (at
 * most TSR_LM_MAX_BATCH rows), runs them through one
 * tsr_lm_forward_batch, samples each sequence's next token with its own
 * sampler, and retires the sequences that finished. Requests join and
 * leave between steps. The lm kernels give a row the same logits whatever
 * else is in the forward, and each sequence keeps its own sampler (seeded
 * per request), so a reply is bit-identical to serving the request alone
 * and to `tessera lm generate` with the same settings.
 *
 * The space, bita and ngram decoders run per request on the connection's
 * thread, one at a time (each already fills the forward with its own draft
 * rows). Text goes through the same stop-string and UTF-8 handling. */
#include "tessera/bita.h"
#include "tessera/bpe.h"
#include "tessera/decode.h"
#include "tessera/lm.h"
#include "tessera/serve.h"
#include "tessera/space.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ------------------------------------------------------------ models */

typedef struct {
    tsr_lm_model m;
    tsr_bpe bpe;
    int bos, eos;
    char id[64];
    bool loaded;
    pthread_mutex_t enc_mu; /* tsr_bpe_encode updates a cache */
} lm_entry;

typedef struct seq seq;

/* A finished sequence's K/V, kept for requests that share a token prefix
 * with it (the prompt cache). Its rows live in blocks of the prompt
 * cache's arena, PC_BLOCK positions each. */
typedef struct {
    int *tok;      /* tokens at positions 0..n-1 */
    int n;
    int *blk;      /* arena blocks: blk[j] holds positions j*PC_BLOCK.. */
    size_t bytes;  /* what the entry holds (its tokens and blocks) */
    uint64_t used; /* last use, for least-recently-used eviction */
} pc_entry;

/* Positions per arena block. A block holds, per layer, the K rows of its
 * positions and then their V rows (128 KiB for the shipped code model). */
#define PC_BLOCK 16

typedef struct {
    lm_entry lm, sp;
    int sp_mask;
    double sp_cost[32];
    int sp_cost_n;
    tsr_bita_adapter ad;
    tsr_bita_model bm;
    tsr_bita_shape bita_shape;
    bool have_bita;
    tsr_serve_opts o;

    pthread_t th;
    bool th_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    seq *wait_head, *wait_tail;
    int n_wait;
    seq **act;
    int n_act;
    tsr_lm_cache **pool; /* free caches, all max_len = seq_len */
    int n_pool;
    tsr_lm_cache ws;
    float *logits;
    pthread_mutex_t solo_mu; /* per-request decoders, one at a time */
    /* prompt cache (scheduler thread, under mu): at most o.prompt_cache
     * bytes, reserved when the server loads: an arena of pc_nblk blocks
     * (pc_blk_floats each), a stack of the free ones, and the entries */
    pc_entry *pc;
    int pc_n, pc_cap;
    size_t pc_bytes;
    uint64_t pc_clock;
    float *pc_arena;
    size_t pc_blk_floats;
    int *pc_free;
    int pc_nblk, pc_nfree;

    /* metrics (under mu) */
    uint64_t prompt_tokens, completion_tokens, steps, rows, seqs_stepped, pool_hits, pool_misses;
    uint64_t pc_lookups, pc_hits, pc_lookup_tokens, pc_reused_tokens, pc_stored, pc_evicted;
    uint64_t batch_hist[7]; /* sequences per step: 1, 2, 3-4, 5-8, 9-16, 17-32, >32 */
    uint64_t finished[4];   /* stop, length, cancelled, timeout */
    double tps_t0;          /* tokens/s over the last window */
    uint64_t tps_tok0;
    double tps;
    atomic_uint_fast64_t next_id;
} llm;

/* ------------------------------------------------------------ sequences */

enum { FIN_NONE = 0, FIN_STOP, FIN_LENGTH, FIN_CANCEL, FIN_TIMEOUT, FIN_ERROR };

struct seq {
    llm *L;
    const lm_entry *e;
    int decoder;
    int *tok;       /* prompt, then sampled tokens (history) */
    int np, n_tok;
    int max_new;
    tsr_lm_sampler smp;
    bool has_smp;
    char *stop[TSR_SERVE_MAX_STOP];
    int n_stop;
    double t0, deadline, t_first;
    double t_wake; /* when the scheduler last woke the reply's thread */
    /* scheduler-owned */
    tsr_lm_cache *cache;
    int fed; /* tokens in the cache */
    /* shared, under L->mu */
    char *text;
    size_t len, cap, visible, sent;
    int fin;
    char err[256];
    bool cancelled;
    int refs;
    pthread_cond_t cv;
    seq *next;
    /* stream state (connection thread only) */
    char *out;
    size_t out_len, out_off;
    int phase; /* 0 text, 1 done sent */
    bool stream, include_usage;
    char id[40];
    time_t created;
    tsr_serve_usage *usage;
};

static void seq_release(seq *q) {
    /* L->mu held */
    if (--q->refs > 0) return;
    if (q->cache) { /* never retired (the server is going down) */
        tsr_lm_cache_free(q->cache);
        free(q->cache);
    }
    if (q->has_smp) tsr_lm_sampler_free(&q->smp);
    for (int i = 0; i < q->n_stop; i++) free(q->stop[i]);
    free(q->tok);
    free(q->text);
    free(q->out);
    pthread_cond_destroy(&q->cv);
    free(q);
}

/* bytes at the end of s[0..n) that start an unfinished UTF-8 sequence */
static size_t utf8_tail(const char *s, size_t n) {
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned char c = (unsigned char)s[n - k];
        if ((c & 0xC0) == 0x80) continue;
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

/* Appends a piece of completion text; applies the stop strings (the
 * completion ends before the first occurrence of any) and moves `visible`
 * to what can be shown: not a proper prefix of a stop string, not a split
 * UTF-8 character. L->mu held. Returns false when out of memory. */
static bool seq_push_text(seq *q, const char *p, size_t n) {
    if (q->len + n + 1 > q->cap) {
        size_t cap = (q->len + n + 1) * 2 + 64;
        char *t = realloc(q->text, cap);
        if (!t) return false;
        q->text = t;
        q->cap = cap;
    }
    size_t old = q->len;
    memcpy(q->text + q->len, p, n);
    q->len += n;
    q->text[q->len] = 0;
    size_t at = q->len;
    for (int k = 0; k < q->n_stop; k++) {
        size_t sl = strlen(q->stop[k]);
        size_t from = old >= sl - 1 ? old - (sl - 1) : 0;
        for (size_t i = from; i + sl <= q->len && i < at; i++)
            if (memcmp(q->text + i, q->stop[k], sl) == 0) {
                at = i;
                break;
            }
    }
    if (at < q->len) {
        q->len = at;
        q->text[at] = 0;
        q->visible = at;
        q->fin = FIN_STOP;
        return true;
    }
    size_t hold = 0;
    for (int k = 0; k < q->n_stop; k++) {
        size_t sl = strlen(q->stop[k]);
        for (size_t l = sl - 1 < q->len ? sl - 1 : q->len; l > hold; l--)
            if (memcmp(q->text + q->len - l, q->stop[k], l) == 0) {
                hold = l;
                break;
            }
    }
    size_t u = utf8_tail(q->text, q->len);
    if (u > hold) hold = u;
    if (q->len - hold > q->visible) q->visible = q->len - hold;
    return true;
}

/* One sampled token: the end special ends the text (not shown), else its
 * piece is appended; max_new ends it. L->mu held. */
static void seq_push_token(seq *q, int t) {
    q->tok[q->n_tok++] = t;
    if (q->t_first == 0) q->t_first = tsr_time();
    int new_tokens = q->n_tok - q->np;
    if (t == q->e->eos) {
        q->fin = FIN_STOP;
    } else {
        int l = 0;
        const char *p = tsr_bpe_piece(&q->e->bpe, t, &l);
        if (p && l > 0 && !q->e->bpe.special[t] && !seq_push_text(q, p, (size_t)l)) {
            q->fin = FIN_ERROR;
            snprintf(q->err, sizeof q->err, "out of memory");
        }
        if (!q->fin && new_tokens >= q->max_new) q->fin = FIN_LENGTH;
    }
    if (q->fin) q->visible = q->len;
}

/* ------------------------------------------------------------ prompt cache
 *
 * The K/V a cache slot holds for position p depends only on the tokens at
 * positions 0..p (causal attention, and kernels that give a row the same
 * bits whatever else is in the forward). So a request whose first P tokens
 * equal those of a finished sequence can copy that sequence's first P K/V
 * rows instead of computing them, and its logits, hence its text, stay
 * bit-identical to serving it alone. At least its last prompt token is
 * always fed, for the logits of its first sampled token. */

static int pc_blocks(int n) { return (n + PC_BLOCK - 1) / PC_BLOCK; }

/* the K rows (v = 0) or V rows (v = 1) of layer l in block b */
static float *pc_rows(const llm *L, int b, int l, int v, size_t kv) {
    return L->pc_arena + (size_t)b * L->pc_blk_floats + ((size_t)l * 2 + (size_t)v) * PC_BLOCK * kv;
}

static void pc_drop(llm *L, int i) {
    pc_entry *e = &L->pc[i];
    L->pc_bytes -= e->bytes;
    for (int j = pc_blocks(e->n) - 1; j >= 0; j--) L->pc_free[L->pc_nfree++] = e->blk[j];
    free(e->tok);
    free(e->blk);
    L->pc[i] = L->pc[--L->pc_n];
}

/* Copies positions 0..n-1 of an entry's blocks into a sequence's cache
 * (to_cache) or of the cache into the blocks. */
static void pc_copy(const llm *L, const int *blk, const tsr_lm_cache *c, int n, bool to_cache) {
    const size_t kv = (size_t)c->kv_dim, row = sizeof(float) * kv;
    for (int j = 0; j * PC_BLOCK < n; j++) {
        const size_t p0 = (size_t)j * PC_BLOCK, cnt = (size_t)(n - (int)p0 < PC_BLOCK ? n - (int)p0 : PC_BLOCK);
        for (int l = 0; l < c->n_layers; l++) {
            const size_t at = ((size_t)l * (size_t)c->max_len + p0) * kv;
            float *bk = pc_rows(L, blk[j], l, 0, kv), *bv = pc_rows(L, blk[j], l, 1, kv);
            if (to_cache) {
                memcpy(c->k + at, bk, row * cnt);
                memcpy(c->v + at, bv, row * cnt);
            } else {
                memcpy(bk, c->k + at, row * cnt);
                memcpy(bv, c->v + at, row * cnt);
            }
        }
    }
}

/* tokens a[0..n) and b[0..n) agree on */
static int common_prefix(const int *a, const int *b, int n) {
    int i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* The longest cached prefix of q's prompt (at most np - 1 tokens) goes
 * into q's fresh cache; q->fed says how many positions it holds. */
static void pc_lookup(llm *L, seq *q) {
    if (!L->pc_nblk) return;
    L->pc_lookups++;
    L->pc_lookup_tokens += (uint64_t)q->np;
    int best = -1, bn = 0;
    for (int i = 0; i < L->pc_n; i++) {
        const pc_entry *e = &L->pc[i];
        int n = common_prefix(e->tok, q->tok, e->n < q->np - 1 ? e->n : q->np - 1);
        if (n > bn || (n == bn && n > 0 && e->used > L->pc[best].used)) best = i, bn = n;
    }
    if (best < 0 || bn == 0) return;
    pc_entry *e = &L->pc[best];
    pc_copy(L, e->blk, q->cache, bn, true);
    q->fed = bn;
    e->used = ++L->pc_clock;
    L->pc_hits++;
    L->pc_reused_tokens += (uint64_t)bn;
}

/* Keeps the K/V of q's fed positions (a finished sequence) in free
 * blocks of the arena; entries it extends go, least recently used ones
 * make room. Nothing is allocated but the token list. */
static void pc_store(llm *L, const seq *q) {
    const int n = q->fed, nb = pc_blocks(n);
    if (!L->pc_nblk || n < 1 || nb > L->pc_nblk) return;
    const size_t bytes = sizeof(int) * (size_t)n + sizeof(float) * L->pc_blk_floats * (size_t)nb;
    for (int i = 0; i < L->pc_n;) {
        pc_entry *e = &L->pc[i];
        int m = e->n < n ? e->n : n;
        if (common_prefix(e->tok, q->tok, m) < m) {
            i++;
        } else if (e->n >= n) { /* already held */
            e->used = ++L->pc_clock;
            return;
        } else {
            pc_drop(L, i); /* a prefix of the new entry */
        }
    }
    while (L->pc_n > 0 && L->pc_nfree < nb) {
        int lru = 0;
        for (int i = 1; i < L->pc_n; i++)
            if (L->pc[i].used < L->pc[lru].used) lru = i;
        pc_drop(L, lru);
        L->pc_evicted++;
    }
    if (L->pc_n == L->pc_cap) {
        int cap = L->pc_cap ? 2 * L->pc_cap : 16;
        pc_entry *p = realloc(L->pc, sizeof *p * (size_t)cap);
        if (!p) return;
        L->pc = p;
        L->pc_cap = cap;
    }
    pc_entry e = {malloc(sizeof(int) * (size_t)n), n, malloc(sizeof(int) * (size_t)nb), bytes, ++L->pc_clock};
    if (!e.tok || !e.blk) {
        free(e.tok);
        free(e.blk);
        return;
    }
    memcpy(e.tok, q->tok, sizeof(int) * (size_t)n);
    for (int j = 0; j < nb; j++) e.blk[j] = L->pc_free[--L->pc_nfree];
    pc_copy(L, e.blk, q->cache, n, false);
    L->pc[L->pc_n++] = e;
    L->pc_bytes += bytes;
    L->pc_stored++;
}

/* Reserves the prompt cache's arena: as many blocks as --prompt-cache
 * bytes hold, counting each block's PC_BLOCK token ids too, so that the
 * entries (blocks and token lists) never exceed the budget. The arena is
 * written once here, so that requests do not pay for first touches of
 * fresh memory (page faults); its blocks are reused until the server stops. */
static tsr_status pc_reserve(llm *L) {
    const tsr_lm_config *cfg = &L->lm.m.cfg;
    const size_t kv = (size_t)(cfg->dim / cfg->n_heads * cfg->n_kv_heads);
    L->pc_blk_floats = (size_t)cfg->n_layers * 2 * PC_BLOCK * kv;
    const size_t per = sizeof(float) * L->pc_blk_floats + sizeof(int) * PC_BLOCK;
    const size_t nblk = L->o.prompt_cache / per;
    if (nblk == 0) return tsr_ok();
    if (nblk > (size_t)INT_MAX / 2 || nblk > SIZE_MAX / sizeof(float) / L->pc_blk_floats)
        return tsr_errorf(TSR_ERR_ARG, "serve: --prompt-cache is too large");
    const size_t bytes = sizeof(float) * L->pc_blk_floats * nblk;
    L->pc_arena = malloc(bytes);
    L->pc_free = malloc(sizeof(int) * nblk);
    if (!L->pc_arena || !L->pc_free)
        return tsr_errorf(TSR_ERR_NOMEM, "serve: out of memory for the prompt cache (%zu MiB; see --prompt-cache)",
                          bytes >> 20);
    /* one write per 4 KiB page (a memset of zeros after malloc may become
     * a calloc, which touches nothing) */
    volatile float *touch = L->pc_arena;
    for (size_t i = 0; i < bytes / sizeof(float); i += 1024) touch[i] = 0.0f;
    L->pc_nblk = (int)nblk;
    for (int b = 0; b < L->pc_nblk; b++) L->pc_free[b] = L->pc_nblk - 1 - b;
    L->pc_nfree = L->pc_nblk;
    return tsr_ok();
}

/* ------------------------------------------------------------ scheduler */

static int batch_bucket(int n) {
    int b = 0;
    while (b < 6 && n > (1 << b)) b++;
    return b;
}

static void finish_count(llm *L, int fin) {
    if (fin == FIN_STOP) L->finished[0]++;
    else if (fin == FIN_LENGTH) L->finished[1]++;
    else if (fin == FIN_CANCEL) L->finished[2]++;
    else if (fin == FIN_TIMEOUT) L->finished[3]++;
}

/* Whether a sequence's reply thread should wake after a step (L->mu
 * held): once the sequence has finished; for a streamed reply, when it has
 * new text to send, at once for its first text and then at most every
 * --stream-interval, so that at many concurrent streams the connection
 * threads take the cores from the forwards less often; a whole reply
 * waits for the end only. */
static bool wake_due(const llm *L, const seq *q, double now) {
    if (q->fin) return true;
    if (!q->stream || q->visible <= q->sent) return false;
    return now - q->t_wake >= L->o.stream_interval_s;
}

static void *scheduler(void *arg) {
    llm *L = arg;
    const tsr_lm_model *m = &L->lm.m;
    const int V = m->cfg.vocab_size, R = TSR_LM_MAX_BATCH;
    int *tokens = malloc(sizeof(int) * R), *pos = malloc(sizeof(int) * R);
    tsr_lm_cache **rc = malloc(sizeof(tsr_lm_cache *) * R);
    uint8_t *want = malloc((size_t)R);
    seq **owner = malloc(sizeof(seq *) * R); /* the sequence of each logits row */
    bool oom = !tokens || !pos || !rc || !want || !owner;
    tsr_threads_adopt();
    pthread_mutex_lock(&L->mu);
    while (!L->stop) {
        double now = tsr_time();
        /* admit */
        while (L->wait_head && L->n_act < L->o.max_batch) {
            seq *q = L->wait_head;
            L->wait_head = q->next;
            if (!L->wait_head) L->wait_tail = NULL;
            L->n_wait--;
            q->next = NULL;
            if (L->n_pool > 0) {
                q->cache = L->pool[--L->n_pool];
                L->pool_hits++;
            } else {
                q->cache = calloc(1, sizeof *q->cache);
                if (q->cache && tsr_lm_cache_init(q->cache, &m->cfg, 0).code) {
                    free(q->cache);
                    q->cache = NULL;
                }
                L->pool_misses++;
                if (!q->cache) {
                    q->fin = FIN_ERROR;
                    snprintf(q->err, sizeof q->err, "out of memory for the KV cache");
                    pthread_cond_broadcast(&q->cv);
                    seq_release(q);
                    continue;
                }
            }
            pc_lookup(L, q);
            L->act[L->n_act++] = q;
        }
        /* retire finished, cancelled and late sequences */
        int k = 0;
        for (int i = 0; i < L->n_act; i++) {
            seq *q = L->act[i];
            if (!q->fin && q->cancelled) q->fin = FIN_CANCEL;
            if (!q->fin && now > q->deadline) {
                q->fin = FIN_TIMEOUT;
                snprintf(q->err, sizeof q->err, "the request took longer than the timeout of %.0f s", L->o.timeout_s);
            }
            if (!q->fin && oom) {
                q->fin = FIN_ERROR;
                snprintf(q->err, sizeof q->err, "out of memory");
            }
            if (q->fin) {
                finish_count(L, q->fin);
                q->visible = q->len;
                if (q->fin != FIN_ERROR) pc_store(L, q);
                /* at most max_batch caches exist: the pool has room */
                L->pool[L->n_pool++] = q->cache;
                q->cache = NULL;
                pthread_cond_broadcast(&q->cv);
                seq_release(q);
            } else {
                L->act[k++] = q;
            }
        }
        L->n_act = k;
        if (L->n_act == 0) {
            pthread_cond_wait(&L->cv, &L->mu);
            continue;
        }
        /* rows: decoding sequences first (one row each), then prompt chunks */
        int n = 0, nl = 0;
        for (int i = 0; i < L->n_act && n < R; i++) {
            seq *q = L->act[i];
            if (q->fed < q->np) continue;
            tokens[n] = q->tok[q->n_tok - 1];
            pos[n] = q->fed;
            rc[n] = q->cache;
            want[n] = 1;
            owner[nl++] = q;
            n++;
        }
        for (int i = 0; i < L->n_act && n < R; i++) {
            seq *q = L->act[i];
            if (q->fed >= q->np) continue;
            int take = q->np - q->fed;
            if (take > R - n) take = R - n;
            for (int j = 0; j < take; j++) {
                tokens[n] = q->tok[q->fed + j];
                pos[n] = q->fed + j;
                rc[n] = q->cache;
                want[n] = q->fed + j == q->np - 1;
                if (want[n]) owner[nl++] = q;
                n++;
            }
        }
        int n_seq = 0;
        for (int i = 0; i < L->n_act; i++) n_seq += L->act[i]->fed >= L->act[i]->np;
        pthread_mutex_unlock(&L->mu);

        /* the forward; sequences are not touched by others meanwhile (only
         * `cancelled` may change, read under the lock afterwards) */
        tsr_status st = tsr_lm_forward_batch(m, &L->ws, rc, tokens, pos, n, want, L->logits);
        int sampled[TSR_LM_MAX_BATCH];
        /* each sequence draws with its own sampler from its own row, so
         * the rows can be sampled in parallel */
        if (!st.code)
#pragma omp parallel for schedule(dynamic, 1) if (nl > 1)
            for (int r = 0; r < nl; r++) {
                seq *q = owner[r];
                sampled[r] = tsr_lm_sample(&q->smp, L->logits + (size_t)r * V, q->tok, q->n_tok);
            }

        pthread_mutex_lock(&L->mu);
        now = tsr_time();
        /* cache positions advance by the rows each sequence fed */
        for (int t = 0; t < n; t++) {
            seq *q = NULL;
            for (int i = 0; i < L->n_act && !q; i++)
                if (L->act[i]->cache == rc[t]) q = L->act[i];
            if (q) q->fed = pos[t] + 1;
        }
        for (int r = 0; r < nl; r++) {
            seq *q = owner[r];
            if (st.code) {
                q->fin = FIN_ERROR;
                snprintf(q->err, sizeof q->err, "%s", st.msg);
            } else if (!q->fin) {
                seq_push_token(q, sampled[r]);
                L->completion_tokens++;
            }
            if (wake_due(L, q, now)) {
                q->t_wake = now;
                pthread_cond_broadcast(&q->cv);
            }
        }
        L->steps++;
        L->rows += (uint64_t)n;
        L->seqs_stepped += (uint64_t)n_seq;
        L->batch_hist[batch_bucket(nl)]++;
        if (now - L->tps_t0 >= 2.0) {
            L->tps = (double)(L->completion_tokens - L->tps_tok0) / (now - L->tps_t0);
            L->tps_t0 = now;
            L->tps_tok0 = L->completion_tokens;
        }
    }
    pthread_mutex_unlock(&L->mu);
    free(tokens);
    free(pos);
    free(rc);
    free(want);
    free(owner);
    return NULL;
}

/* ------------------------------------------------------------ per-request decoders */

static void run_solo(seq *q, const tsr_serve_completion *c) {
    llm *L = q->L;
    int *out = malloc(sizeof(int) * ((size_t)q->max_new + 1));
    int n_out = 0;
    tsr_status st = out ? tsr_ok() : tsr_errorf(TSR_ERR_NOMEM, "out of memory");
    pthread_mutex_lock(&L->solo_mu);
    if (!st.code) {
        if (q->decoder == TSR_DEC_SPACE) {
            tsr_space_opts so;
            tsr_space_default_opts(&so);
            so.mask_id = L->sp_mask;
            so.stop_token = q->e->eos;
            so.sampler.temperature = c->temperature;
            so.sampler.top_k = c->top_k;
            so.sampler.top_p = c->top_p;
            so.sampler.seed = c->seed;
            so.cost_ms = L->sp_cost;
            so.cost_n = L->sp_cost_n;
            tsr_space_stats ss;
            st = tsr_space_generate(&q->e->m, q->tok, q->np, q->max_new, &so, out, &n_out, &ss);
        } else if (q->decoder == TSR_DEC_BITA) {
            tsr_bita_gen_opts go;
            tsr_bita_gen_defaults(&go);
            go.shape = L->bita_shape;
            go.stop_token = q->e->eos;
            go.sampling.temperature = c->temperature;
            go.sampling.top_k = c->top_k;
            go.sampling.top_p = c->top_p;
            go.sampling.seed = c->seed;
            tsr_bita_stats bs;
            st = tsr_bita_generate(&L->bm, q->tok, q->np, q->max_new, &go, out, &n_out, &bs);
        } else {
            tsr_decode_ngram_opts no;
            tsr_decode_ngram_defaults(&no);
            no.stop_token = q->e->eos;
            tsr_decode_stats ds;
            st = tsr_decode_ngram_generate(&q->e->m, q->tok, q->np, q->max_new, &no, out, &n_out, &ds);
        }
    }
    pthread_mutex_unlock(&L->solo_mu);
    pthread_mutex_lock(&L->mu);
    if (st.code) {
        q->fin = FIN_ERROR;
        snprintf(q->err, sizeof q->err, "%s", st.msg);
    } else {
        for (int i = 0; i < n_out && !q->fin; i++) seq_push_token(q, out[i]);
        L->completion_tokens += (uint64_t)n_out;
        if (!q->fin) q->fin = FIN_LENGTH; /* the context ran out */
        q->visible = q->len;
    }
    finish_count(L, q->fin);
    pthread_mutex_unlock(&L->mu);
    free(out);
}

/* ------------------------------------------------------------ replies */

static void reply_error(tsr_serve_reply *rp, int status, const char *param, const char *fmt, const char *arg) {
    rp->status = status;
    snprintf(rp->error_param, sizeof rp->error_param, "%s", param ? param : "");
    snprintf(rp->error, sizeof rp->error, fmt, arg);
}

/* text as a JSON string value: invalid UTF-8 becomes U+FFFD */
static cJSON *json_text(const char *s, size_t n) {
    char *b = malloc(n * 3 + 1);
    if (!b) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t need = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        bool ok = need > 0 && i + need <= n && c != 0 && !(c == 0xC0 || c == 0xC1);
        for (size_t k = 1; ok && k < need; k++) ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
        if (ok) {
            memcpy(b + o, s + i, need);
            o += need;
            i += need;
        } else {
            memcpy(b + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    b[o] = 0;
    cJSON *j = cJSON_CreateString(b);
    free(b);
    return j;
}

static const char *finish_name(int fin) { return fin == FIN_STOP ? "stop" : "length"; }

static cJSON *usage_json(const seq *q) {
    cJSON *u = cJSON_CreateObject();
    int gen = q->n_tok - q->np;
    cJSON_AddNumberToObject(u, "prompt_tokens", q->np);
    cJSON_AddNumberToObject(u, "completion_tokens", gen);
    cJSON_AddNumberToObject(u, "total_tokens", q->np + gen);
    return u;
}

/* the common members of a completion object / chunk */
static cJSON *completion_obj(const seq *q, const char *text, size_t n, const char *finish) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", q->id);
    cJSON_AddStringToObject(j, "object", "text_completion");
    cJSON_AddNumberToObject(j, "created", (double)q->created);
    cJSON_AddStringToObject(j, "model", q->e->id);
    cJSON *ch = cJSON_AddArrayToObject(j, "choices");
    if (text) {
        cJSON *c0 = cJSON_CreateObject();
        cJSON_AddItemToObject(c0, "text", json_text(text, n));
        cJSON_AddNumberToObject(c0, "index", 0);
        cJSON_AddNullToObject(c0, "logprobs");
        if (finish) cJSON_AddStringToObject(c0, "finish_reason", finish);
        else cJSON_AddNullToObject(c0, "finish_reason");
        cJSON_AddItemToArray(ch, c0);
    }
    return j;
}

static void fill_usage(seq *q) {
    tsr_serve_usage *u = q->usage;
    if (!u) return;
    u->prompt_tokens = q->np;
    u->completion_tokens = q->n_tok - q->np;
    if (q->t_first > 0) u->ttft_s = q->t_first - q->t0;
}

/* appends `data: <json>\n\n` to the stream's output */
static bool sse_add(seq *q, cJSON *j) {
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!s) return false;
    size_t n = strlen(s);
    char *o = realloc(q->out, q->out_len + n + 9);
    if (!o) {
        free(s);
        return false;
    }
    q->out = o;
    memcpy(q->out + q->out_len, "data: ", 6);
    memcpy(q->out + q->out_len + 6, s, n);
    memcpy(q->out + q->out_len + 6 + n, "\n\n", 2);
    q->out_len += n + 8;
    free(s);
    return true;
}

static bool sse_raw(seq *q, const char *s) {
    size_t n = strlen(s);
    char *o = realloc(q->out, q->out_len + n);
    if (!o) return false;
    q->out = o;
    memcpy(q->out + q->out_len, s, n);
    q->out_len += n;
    return true;
}

static ssize_t stream_read(void *stream, char *buf, size_t cap) {
    seq *q = stream;
    llm *L = q->L;
    while (q->out_off >= q->out_len) {
        q->out_len = q->out_off = 0;
        if (q->phase == 2) return 0;
        pthread_mutex_lock(&L->mu);
        while (q->sent >= q->visible && !q->fin) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&q->cv, &L->mu, &ts);
            if (!q->fin && tsr_time() > q->deadline + 5.0) {
                /* the scheduler retires late sequences; this is a backstop */
                q->cancelled = true;
                pthread_cond_signal(&L->cv);
            }
        }
        /* the new text is copied under the lock and the event built
         * after it: the scheduler takes the lock after every step, so
         * connections formatting JSON under it would hold up the forwards.
         * Once fin is set the sequence's counts and error stay as they are. */
        fill_usage(q);
        char *piece = NULL;
        size_t pn = 0;
        const bool text = q->sent < q->visible;
        const int fin = q->fin;
        if (text) {
            pn = q->visible - q->sent;
            piece = malloc(pn);
            if (piece) memcpy(piece, q->text + q->sent, pn);
            q->sent = q->visible;
        }
        pthread_mutex_unlock(&L->mu);
        bool ok = true;
        if (text) {
            ok = piece && sse_add(q, completion_obj(q, piece, pn, NULL));
            free(piece);
        } else if (fin == FIN_STOP || fin == FIN_LENGTH) {
            cJSON *j = completion_obj(q, "", 0, finish_name(fin));
            cJSON_AddItemToObject(j, "usage", usage_json(q));
            ok = sse_add(q, j);
            if (ok && q->include_usage) {
                cJSON *u = completion_obj(q, NULL, 0, NULL);
                cJSON_AddItemToObject(u, "usage", usage_json(q));
                ok = sse_add(q, u);
            }
            ok = ok && sse_raw(q, "data: [DONE]\n\n");
            q->phase = 2;
        } else {
            /* timeout or failure after the stream began: an error event */
            cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
            cJSON_AddStringToObject(e, "message", q->err[0] ? q->err : "generation failed");
            cJSON_AddStringToObject(e, "type", fin == FIN_TIMEOUT ? "timeout" : "server_error");
            ok = sse_add(q, j) && sse_raw(q, "data: [DONE]\n\n");
            q->phase = 2;
        }
        if (!ok) return -1;
    }
    size_t n = q->out_len - q->out_off;
    if (n > cap) n = cap;
    memcpy(buf, q->out + q->out_off, n);
    q->out_off += n;
    return (ssize_t)n;
}

static void stream_free(void *stream, bool completed) {
    seq *q = stream;
    llm *L = q->L;
    pthread_mutex_lock(&L->mu);
    if (!completed && !q->fin) q->cancelled = true;
    pthread_cond_signal(&L->cv);
    seq_release(q);
    pthread_mutex_unlock(&L->mu);
}

/* ------------------------------------------------------------ handlers */

static void on_completions(void *state, const tsr_serve_request *rq, tsr_serve_reply *rp) {
    llm *L = state;
    if (!L->lm.loaded) {
        reply_error(rp, 503, NULL, "%s", "no language model is loaded (start tessera serve with --lm DIR)");
        return;
    }
    tsr_serve_completion c;
    char param[64];
    tsr_status st = tsr_serve_parse_completion(&c, rq->body, rq->body_len, param);
    if (st.code) {
        reply_error(rp, 400, param, "%s", st.msg);
        return;
    }
    /* model and decoder */
    const lm_entry *e = NULL;
    int dec = c.decoder;
    if (!c.model[0] || (L->lm.loaded && strcmp(c.model, L->lm.id) == 0)) e = L->lm.loaded ? &L->lm : NULL;
    else if (L->sp.loaded && strcmp(c.model, L->sp.id) == 0) e = &L->sp;
    if (!c.model[0] && dec == TSR_DEC_SPACE) e = L->sp.loaded ? &L->sp : NULL;
    if (!e) {
        rp->error_type = "invalid_request_error";
        reply_error(rp, c.model[0] ? 404 : 400, "model",
                    c.model[0] ? "model '%s' is not served here (see GET /v1/models)" : "%sno model is loaded",
                    c.model);
        tsr_serve_completion_free(&c);
        return;
    }
    if (dec < 0) dec = e == &L->sp ? TSR_DEC_SPACE : TSR_DEC_PLAIN;
    const char *why = NULL;
    if (dec == TSR_DEC_SPACE && e != &L->sp) why = "decoder 'space' needs the SPACE model (start the server with --space DIR)";
    if (dec != TSR_DEC_SPACE && e == &L->sp) why = "the SPACE model is served with decoder 'space' only";
    if (dec == TSR_DEC_BITA && !L->have_bita) why = "decoder 'bita' needs an adapter (start the server with --bita FILE)";
    if (dec == TSR_DEC_NGRAM && c.temperature != 0.0f) why = "decoder 'ngram' is greedy: set temperature to 0";
    if (why) {
        reply_error(rp, 400, "decoder", "%s", why);
        tsr_serve_completion_free(&c);
        return;
    }
    if (c.max_tokens > L->o.max_tokens) {
        char m[32];
        snprintf(m, sizeof m, "%d", L->o.max_tokens);
        reply_error(rp, 400, "max_tokens", "max_tokens exceeds this server's limit of %s (--max-tokens)", m);
        tsr_serve_completion_free(&c);
        return;
    }
    if (rq->usage) {
        snprintf(rq->usage->model, sizeof rq->usage->model, "%s", e->id);
        snprintf(rq->usage->decoder, sizeof rq->usage->decoder, "%s", tsr_serve_decoder_name(dec));
    }

    seq *q = calloc(1, sizeof *q);
    if (!q) {
        reply_error(rp, 500, NULL, "%s", "out of memory");
        tsr_serve_completion_free(&c);
        return;
    }
    q->L = L;
    q->e = e;
    q->decoder = dec;
    q->refs = 1;
    q->t0 = tsr_time();
    q->deadline = rq->deadline;
    q->stream = c.stream;
    q->include_usage = c.include_usage;
    q->usage = rq->usage;
    q->created = time(NULL);
    snprintf(q->id, sizeof q->id, "cmpl-%llu", (unsigned long long)atomic_fetch_add(&L->next_id, 1));
    pthread_cond_init(&q->cv, NULL);
    for (int i = 0; i < c.n_stop; i++) {
        q->stop[i] = c.stop[i];
        c.stop[i] = NULL;
    }
    q->n_stop = c.n_stop;
    c.n_stop = 0;

    /* prompt: BOS + the text's tokens, as `tessera lm generate` feeds it */
    const int seq_len = e->m.cfg.seq_len;
    pthread_mutex_lock((pthread_mutex_t *)&e->enc_mu);
    int np = 0;
    int *pt = tsr_lm_bpe_prompt((tsr_bpe *)&e->bpe, c.prompt, &np);
    pthread_mutex_unlock((pthread_mutex_t *)&e->enc_mu);
    int status = 0;
    char msg[256] = "";
    if (!pt) {
        status = 500;
        snprintf(msg, sizeof msg, "out of memory");
    } else if (np < 1) {
        status = 400;
        snprintf(msg, sizeof msg, "an empty prompt needs a BOS token in the tokenizer");
    } else {
        tsr_status fit = tsr_prompt_fit(pt, &np, seq_len, false, 0); /* every decoder's prompt rule */
        if (fit.code) {
            status = 400;
            snprintf(msg, sizeof msg, "%s", fit.msg);
        }
    }
    if (!status) {
        /* as lm generate: a token is sampled at every position up to seq_len - 1 */
        q->np = q->n_tok = np;
        q->max_new = c.max_tokens < seq_len - np + 1 ? c.max_tokens : seq_len - np + 1;
        q->tok = malloc(sizeof(int) * ((size_t)np + (size_t)q->max_new + 1));
        if (!q->tok) {
            status = 500;
            snprintf(msg, sizeof msg, "out of memory");
        } else {
            memcpy(q->tok, pt, sizeof(int) * (size_t)np);
        }
    }
    free(pt);
    if (!status && dec == TSR_DEC_PLAIN) {
        tsr_lm_sampler_opts so;
        tsr_lm_sampler_defaults(&so);
        so.temperature = c.temperature;
        so.top_p = c.top_p;
        so.top_k = c.top_k;
        so.seed = c.has_seed ? c.seed : ((uint64_t)time(NULL) << 20) ^ (uint64_t)atomic_load(&L->next_id);
        tsr_status ss = tsr_lm_sampler_init(&q->smp, &so, e->m.cfg.vocab_size);
        if (ss.code) {
            status = 400;
            snprintf(msg, sizeof msg, "%s", ss.msg);
        } else {
            q->has_smp = true;
        }
    }
    if (status) {
        reply_error(rp, status, status == 400 ? "prompt" : NULL, "%s", msg);
        pthread_mutex_lock(&L->mu);
        seq_release(q);
        pthread_mutex_unlock(&L->mu);
        tsr_serve_completion_free(&c);
        return;
    }

    pthread_mutex_lock(&L->mu);
    L->prompt_tokens += (uint64_t)np;
    pthread_mutex_unlock(&L->mu);
    if (dec == TSR_DEC_PLAIN) {
        pthread_mutex_lock(&L->mu);
        q->refs = 2; /* the client and the scheduler */
        if (L->wait_tail) L->wait_tail->next = q;
        else L->wait_head = q;
        L->wait_tail = q;
        L->n_wait++;
        pthread_cond_signal(&L->cv);
        pthread_mutex_unlock(&L->mu);
    } else {
        run_solo(q, &c);
    }
    tsr_serve_completion_free(&c);

    if (q->stream) {
        rp->stream_read = stream_read;
        rp->stream_free = stream_free;
        rp->stream = q;
        return;
    }
    pthread_mutex_lock(&L->mu);
    while (!q->fin) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&q->cv, &L->mu, &ts);
        if (!q->fin && tsr_time() > q->deadline + 5.0) {
            q->cancelled = true; /* backstop; the scheduler normally times it out */
            pthread_cond_signal(&L->cv);
        }
    }
    fill_usage(q);
    if (q->fin == FIN_STOP || q->fin == FIN_LENGTH) {
        cJSON *j = completion_obj(q, q->text ? q->text : "", q->len, finish_name(q->fin));
        cJSON_AddItemToObject(j, "usage", usage_json(q));
        rp->body = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        rp->status = 200;
        if (!rp->body) reply_error(rp, 500, NULL, "%s", "out of memory");
    } else if (q->fin == FIN_TIMEOUT || q->fin == FIN_CANCEL) {
        rp->error_type = "timeout";
        reply_error(rp, 503, NULL, "%s", q->err[0] ? q->err : "the request timed out");
    } else {
        reply_error(rp, 500, NULL, "%s", q->err[0] ? q->err : "generation failed");
    }
    seq_release(q);
    pthread_mutex_unlock(&L->mu);
}

static void add_model(cJSON *arr, const lm_entry *e, const char *decoders) {
    if (!e->loaded) return;
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", e->id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 0);
    cJSON_AddStringToObject(m, "owned_by", "tessera");
    cJSON_AddNumberToObject(m, "context_length", e->m.cfg.seq_len);
    cJSON *d = cJSON_AddArrayToObject(m, "decoders");
    char buf[64];
    snprintf(buf, sizeof buf, "%s", decoders);
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) cJSON_AddItemToArray(d, cJSON_CreateString(t));
    cJSON_AddItemToArray(arr, m);
}

static void on_models(void *state, const tsr_serve_request *rq, tsr_serve_reply *rp) {
    (void)rq;
    llm *L = state;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "object", "list");
    cJSON *arr = cJSON_AddArrayToObject(j, "data");
    add_model(arr, &L->lm, L->have_bita ? "plain,ngram,bita" : "plain,ngram");
    add_model(arr, &L->sp, "space");
    rp->body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    rp->status = 200;
}

/* ------------------------------------------------------------ metrics */

static void llm_metrics(void *state, FILE *f) {
    llm *L = state;
    pthread_mutex_lock(&L->mu);
    fprintf(f, "# HELP tessera_llm_prompt_tokens_total Prompt tokens read.\n# TYPE tessera_llm_prompt_tokens_total counter\n"
               "tessera_llm_prompt_tokens_total %llu\n", (unsigned long long)L->prompt_tokens);
    fprintf(f, "# HELP tessera_llm_completion_tokens_total Tokens generated.\n# TYPE tessera_llm_completion_tokens_total counter\n"
               "tessera_llm_completion_tokens_total %llu\n", (unsigned long long)L->completion_tokens);
    fprintf(f, "# HELP tessera_llm_tokens_per_second Tokens generated per second over the last window of ~2 s.\n"
               "# TYPE tessera_llm_tokens_per_second gauge\ntessera_llm_tokens_per_second %.2f\n", L->tps);
    fprintf(f, "# HELP tessera_llm_batch_steps_total Batched forwards run.\n# TYPE tessera_llm_batch_steps_total counter\n"
               "tessera_llm_batch_steps_total %llu\n", (unsigned long long)L->steps);
    fprintf(f, "# HELP tessera_llm_batch_rows_total Rows (tokens) through batched forwards.\n"
               "# TYPE tessera_llm_batch_rows_total counter\ntessera_llm_batch_rows_total %llu\n", (unsigned long long)L->rows);
    static const char *const le[] = {"1", "2", "4", "8", "16", "32", "+Inf"};
    fprintf(f, "# HELP tessera_llm_batch_size Sequences sampled per batched forward.\n# TYPE tessera_llm_batch_size histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b < 7; b++) {
        cum += L->batch_hist[b];
        fprintf(f, "tessera_llm_batch_size_bucket{le=\"%s\"} %llu\n", le[b], (unsigned long long)cum);
    }
    fprintf(f, "tessera_llm_batch_size_count %llu\n", (unsigned long long)cum);
    fprintf(f, "# HELP tessera_llm_queue_depth Requests waiting for a batch slot.\n# TYPE tessera_llm_queue_depth gauge\n"
               "tessera_llm_queue_depth %d\n", L->n_wait);
    fprintf(f, "# HELP tessera_llm_active_sequences Sequences in the batch.\n# TYPE tessera_llm_active_sequences gauge\n"
               "tessera_llm_active_sequences %d\n", L->n_act);
    uint64_t lk = L->pool_hits + L->pool_misses;
    fprintf(f, "# HELP tessera_llm_kv_cache_pool_hit_ratio Share of sequences that reused a pooled KV cache.\n"
               "# TYPE tessera_llm_kv_cache_pool_hit_ratio gauge\ntessera_llm_kv_cache_pool_hit_ratio %.4f\n",
            lk ? (double)L->pool_hits / (double)lk : 0.0);
    fprintf(f, "# HELP tessera_llm_kv_caches Pooled KV caches held.\n# TYPE tessera_llm_kv_caches gauge\n"
               "tessera_llm_kv_caches %d\n", L->n_pool);
    fprintf(f, "# HELP tessera_llm_prompt_cache_lookups_total Sequences that looked for a cached prefix of their prompt.\n"
               "# TYPE tessera_llm_prompt_cache_lookups_total counter\ntessera_llm_prompt_cache_lookups_total %llu\n"
               "# HELP tessera_llm_prompt_cache_hits_total Sequences that reused a cached prefix (at least one token).\n"
               "# TYPE tessera_llm_prompt_cache_hits_total counter\ntessera_llm_prompt_cache_hits_total %llu\n"
               "# HELP tessera_llm_prompt_cache_lookup_tokens_total Prompt tokens of the sequences that looked.\n"
               "# TYPE tessera_llm_prompt_cache_lookup_tokens_total counter\ntessera_llm_prompt_cache_lookup_tokens_total %llu\n"
               "# HELP tessera_llm_prompt_cache_reused_tokens_total Prompt tokens whose K/V came from the cache.\n"
               "# TYPE tessera_llm_prompt_cache_reused_tokens_total counter\ntessera_llm_prompt_cache_reused_tokens_total %llu\n",
            (unsigned long long)L->pc_lookups, (unsigned long long)L->pc_hits, (unsigned long long)L->pc_lookup_tokens,
            (unsigned long long)L->pc_reused_tokens);
    fprintf(f, "# HELP tessera_llm_prompt_cache_hit_ratio Share of prompt tokens whose K/V came from the cache.\n"
               "# TYPE tessera_llm_prompt_cache_hit_ratio gauge\ntessera_llm_prompt_cache_hit_ratio %.4f\n",
            L->pc_lookup_tokens ? (double)L->pc_reused_tokens / (double)L->pc_lookup_tokens : 0.0);
    fprintf(f, "# HELP tessera_llm_prompt_cache_entries Finished sequences held for prefix reuse.\n"
               "# TYPE tessera_llm_prompt_cache_entries gauge\ntessera_llm_prompt_cache_entries %d\n"
               "# HELP tessera_llm_prompt_cache_bytes Bytes the prompt cache holds (at most --prompt-cache).\n"
               "# TYPE tessera_llm_prompt_cache_bytes gauge\ntessera_llm_prompt_cache_bytes %zu\n"
               "# HELP tessera_llm_prompt_cache_evictions_total Entries dropped to make room.\n"
               "# TYPE tessera_llm_prompt_cache_evictions_total counter\ntessera_llm_prompt_cache_evictions_total %llu\n",
            L->pc_n, L->pc_bytes, (unsigned long long)L->pc_evicted);
    static const char *const fin[] = {"stop", "length", "cancelled", "timeout"};
    fprintf(f, "# HELP tessera_llm_finished_total Completions by how they ended.\n# TYPE tessera_llm_finished_total counter\n");
    for (int i = 0; i < 4; i++)
        fprintf(f, "tessera_llm_finished_total{reason=\"%s\"} %llu\n", fin[i], (unsigned long long)L->finished[i]);
    pthread_mutex_unlock(&L->mu);
}

/* ------------------------------------------------------------ load */

/* the last path component, without a .safetensors suffix */
static void model_id(char *out, size_t n, const char *path) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t b = len;
    while (b > 0 && path[b - 1] != '/') b--;
    size_t l = len - b;
    if (l > 12 && strncmp(path + len - 12, ".safetensors", 12) == 0) l -= 12;
    snprintf(out, n, "%.*s", (int)l, path + b);
}

static tsr_status load_entry(lm_entry *e, const char *dir) {
    char tp[4200];
    struct stat sb;
    if (stat(dir, &sb) != 0) return tsr_errorf(TSR_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return tsr_errorf(TSR_ERR_ARG, "%s: expected an HF directory (config.json, model.safetensors, tokenizer.json)", dir);
    snprintf(tp, sizeof tp, "%s/tokenizer.json", dir);
    tsr_status st = tsr_lm_load(&e->m, dir, -1, 0);
    if (st.code) return st;
    st = tsr_bpe_load(&e->bpe, tp);
    if (st.code) {
        tsr_lm_model_free(&e->m);
        return st;
    }
    if (e->bpe.vocab_size > e->m.cfg.vocab_size) {
        tsr_bpe_free(&e->bpe);
        tsr_lm_model_free(&e->m);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: the tokenizer has %d tokens, the model %d", tp, e->bpe.vocab_size,
                          e->m.cfg.vocab_size);
    }
    tsr_lm_bpe_specials(&e->bpe, &e->bos, &e->eos);
    model_id(e->id, sizeof e->id, dir);
    pthread_mutex_init(&e->enc_mu, NULL);
    e->loaded = true;
    return tsr_ok();
}

static void free_entry(lm_entry *e) {
    if (!e->loaded) return;
    tsr_bpe_free(&e->bpe);
    tsr_lm_model_free(&e->m);
    pthread_mutex_destroy(&e->enc_mu);
    e->loaded = false;
}

static void llm_unload(void *state);

/* paths: 0 --lm DIR, 1 --space DIR, 2 --bita FILE */
static tsr_status llm_load(void **state, const char *const *paths, const tsr_serve_opts *o) {
    *state = NULL;
    llm *L = calloc(1, sizeof *L);
    if (!L) return tsr_errorf(TSR_ERR_NOMEM, "serve: out of memory");
    L->o = *o;
    if (L->o.max_batch < 1) L->o.max_batch = 1;
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    pthread_mutex_init(&L->solo_mu, NULL);
    atomic_init(&L->next_id, 1);
    tsr_status st = tsr_ok();
    if (!paths[0]) {
        /* no language model: the completions routes answer 503, /v1/models
         * lists nothing, and no scheduler runs */
        if (paths[1] || paths[2])
            st = tsr_errorf(TSR_ERR_ARG, "serve: %s needs a language model (--lm DIR)", paths[1] ? "--space" : "--bita");
        if (st.code) {
            llm_unload(L);
            return st;
        }
        *state = L;
        return tsr_ok();
    }
    st = load_entry(&L->lm, paths[0]);
    if (!st.code && paths[1]) {
        st = load_entry(&L->sp, paths[1]);
        if (!st.code) {
            L->sp_mask = tsr_bpe_special_id(&L->sp.bpe, TSR_SPACE_MASK);
            if (L->sp_mask < 0)
                st = tsr_errorf(TSR_ERR_FORMAT, "%s: no %s token: not a SPACE model", paths[1], TSR_SPACE_MASK);
        }
        if (!st.code) {
            /* the draft size follows this machine's cost curve, measured once */
            L->sp_cost_n = tsr_space_rows(4, 4);
            st = tsr_decode_cost_curve(&L->sp.m, 128, L->sp_cost_n, L->sp_cost);
        }
        if (!st.code && strcmp(L->sp.id, L->lm.id) == 0) {
            char id[64];
            snprintf(id, sizeof id, "%.50s-space", L->lm.id);
            memcpy(L->sp.id, id, sizeof id);
        }
    }
    if (!st.code && paths[2]) {
        st = tsr_bita_adapter_load(&L->ad, paths[2]);
        if (!st.code) {
            st = tsr_bita_model_init(&L->bm, &L->lm.m, &L->ad);
            if (st.code) tsr_bita_adapter_free(&L->ad);
            else L->have_bita = true;
        }
        if (!st.code) {
            double ms[33];
            st = tsr_decode_cost_curve(&L->bm.view, 128, 32, ms);
            if (!st.code) L->bita_shape = tsr_bita_choose_shape(&L->ad, ms, 32, 4);
        }
    }
    const int seq_len = L->lm.loaded ? L->lm.m.cfg.seq_len : 0;
    if (!st.code) st = tsr_lm_cache_init(&L->ws, &L->lm.m.cfg, seq_len);
    if (!st.code) st = pc_reserve(L);
    if (!st.code) {
        L->act = calloc((size_t)L->o.max_batch, sizeof *L->act);
        L->pool = calloc((size_t)L->o.max_batch, sizeof *L->pool);
        L->logits = malloc(sizeof(float) * (size_t)TSR_LM_MAX_BATCH * (size_t)L->lm.m.cfg.vocab_size);
        if (!L->act || !L->pool || !L->logits) st = tsr_errorf(TSR_ERR_NOMEM, "serve: out of memory");
    }
    if (!st.code) {
        L->tps_t0 = tsr_time();
        if (pthread_create(&L->th, NULL, scheduler, L) != 0) st = tsr_errorf(TSR_ERR_IO, "serve: cannot start a thread");
        else L->th_started = true;
    }
    if (st.code) {
        llm_unload(L);
        return st;
    }
    *state = L;
    return tsr_ok();
}

static void llm_unload(void *state) {
    llm *L = state;
    if (!L) return;
    if (L->th_started) {
        pthread_mutex_lock(&L->mu);
        L->stop = true;
        pthread_cond_broadcast(&L->cv);
        pthread_mutex_unlock(&L->mu);
        pthread_join(L->th, NULL);
    }
    /* the server is stopped: no request holds a sequence any more */
    for (seq *q = L->wait_head; q;) {
        seq *nx = q->next;
        q->refs = 1;
        seq_release(q);
        q = nx;
    }
    for (int i = 0; i < L->n_act; i++) {
        L->act[i]->refs = 1;
        seq_release(L->act[i]);
    }
    for (int i = 0; i < L->n_pool; i++) {
        tsr_lm_cache_free(L->pool[i]);
        free(L->pool[i]);
    }
    while (L->pc_n > 0) pc_drop(L, L->pc_n - 1);
    free(L->pc);
    free(L->pc_arena);
    free(L->pc_free);
    if (L->have_bita) {
        tsr_bita_model_free(&L->bm);
        tsr_bita_adapter_free(&L->ad);
    }
    tsr_lm_cache_free(&L->ws);
    free_entry(&L->sp);
    free_entry(&L->lm);
    free(L->act);
    free(L->pool);
    free(L->logits);
    pthread_mutex_destroy(&L->solo_mu);
    pthread_cond_destroy(&L->cv);
    pthread_mutex_destroy(&L->mu);
    free(L);
}

const tsr_serve_endpoint tsr_serve_llm_endpoint = {
    .name = "llm",
    .summary = "OpenAI-compatible completions over the lm models, continuous batching",
    .models =
        {
            {"lm", "DIR", "language model: HF directory with tokenizer.json", "models/pycode", NULL},
            {"space", "DIR", "SPACE model for decoder 'space' (HF directory)", "models/pycode-space", NULL},
            {"bita", "FILE", "BiTA adapter on the --lm model for decoder 'bita'", "models/bita_pycode.safetensors", NULL},
        },
    .load = llm_load,
    .unload = llm_unload,
    .metrics = llm_metrics,
    .routes =
        {
            {"POST", "/v1/completions", on_completions},
            {"GET", "/v1/models", on_models},
        },
};
