/* tessera byte-level BPE (see include/tessera/bpe.h): the pre-tokeniser,
 * the merge trainer, encode/decode and HF tokenizer.json I/O. Used by the
 * LM family to tokenise code corpora.
 *
 * Training keeps, for every adjacent pair, its count over word occurrences
 * and the list of unique words it occurs in; a merge rewrites only those
 * words and applies count deltas to the neighbouring pairs. The best pair
 * comes from a max-heap with lazy entries: once a pair exists its count
 * never grows (a pair of old tokens can only be formed when one of them is
 * created), so a popped entry whose count went stale is pushed back with
 * the current count and the first fresh entry is the true maximum.
 */
#include "tessera/bpe.h"
#include "tessera/fileio.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------- GPT-2 byte map */

static int g_b2cp[256];
static int g_cp2b[324]; /* code points used are < 324 */
static int g_map_ready;

static void byte_map_init(void) {
    if (g_map_ready) return;
    for (int i = 0; i < 324; i++) g_cp2b[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        g_b2cp[b] = keep ? b : 256 + extra++;
        g_cp2b[g_b2cp[b]] = b;
    }
    g_map_ready = 1;
}

int tsr_bpe_byte_to_cp(int byte) {
    byte_map_init();
    return (byte >= 0 && byte < 256) ? g_b2cp[byte] : -1;
}

int tsr_bpe_cp_to_byte(int cp) {
    byte_map_init();
    return (cp >= 0 && cp < 324) ? g_cp2b[cp] : -1;
}

/* ---------------------------------------------------- UTF-8 and classes */

/* Length of the well-formed UTF-8 sequence at s (n bytes left) and its code
 * point, or 0 when the bytes there are not well-formed. */
static int utf8_seq(const unsigned char *s, size_t n, int *cp) {
    unsigned c = s[0];
    if (c < 0x80) { *cp = (int)c; return 1; }
    int len;
    unsigned lo = 0x80, hi = 0xBF, v;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3; v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4; v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if ((size_t)len > n) return 0;
    for (int k = 1; k < len; k++) {
        unsigned d = s[k];
        if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF)) return 0;
        v = (v << 6) | (d & 0x3F);
    }
    *cp = (int)v;
    return len;
}

enum { CL_WS, CL_L, CL_N, CL_P };

static bool cp_is_ws(int cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 9 && cp <= 13);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Class of a non-ASCII code point: Unicode's White_Space exactly; digits
 * and punctuation/symbols for the blocks that show up in source code and
 * its comments (Latin-1, General Punctuation, currency, arrows and maths,
 * box drawing and shapes, CJK punctuation, fullwidth ASCII, emoji);
 * everything else counts as a letter. */
static int cp_class(int cp) {
    if (cp_is_ws(cp)) return CL_WS;
    if (cp < 0x100) {
        if (cp < 0xA0 || cp == 0xD7 || cp == 0xF7) return CL_P;
        if (cp >= 0xC0 || cp == 0xAA || cp == 0xB5 || cp == 0xBA) return CL_L;
        if (cp == 0xB2 || cp == 0xB3 || cp == 0xB9 || (cp >= 0xBC && cp <= 0xBE)) return CL_N;
        return CL_P;
    }
    if ((cp >= 0x0660 && cp <= 0x0669) || (cp >= 0x06F0 && cp <= 0x06F9) || (cp >= 0x0966 && cp <= 0x096F))
        return CL_N;
    if ((cp >= 0x2000 && cp <= 0x206F) || (cp >= 0x20A0 && cp <= 0x20CF) || (cp >= 0x2190 && cp <= 0x23FF) ||
        (cp >= 0x2500 && cp <= 0x26FF) || (cp >= 0x3001 && cp <= 0x3004) || (cp >= 0x3008 && cp <= 0x3020) ||
        (cp >= 0x1F300 && cp <= 0x1FAFF))
        return CL_P;
    if (cp >= 0xFF01 && cp <= 0xFF5E) {
        if (cp >= 0xFF10 && cp <= 0xFF19) return CL_N;
        if ((cp >= 0xFF21 && cp <= 0xFF3A) || (cp >= 0xFF41 && cp <= 0xFF5A)) return CL_L;
        return CL_P;
    }
    return CL_L;
}

/* class of the character at s; its byte length in *w */
static int char_class(const unsigned char *s, size_t n, size_t *w) {
    unsigned c = s[0];
    if (c < 0x80) {
        *w = 1;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CL_L;
        if (c >= '0' && c <= '9') return CL_N;
        if (c == ' ' || (c >= 9 && c <= 13)) return CL_WS;
        return CL_P;
    }
    int cp;
    int len = utf8_seq(s, n, &cp);
    if (len == 0) { *w = 1; return CL_L; }
    *w = (size_t)len;
    return cp_class(cp);
}

void tsr_bpe_pretokenize(const void *text, size_t len,
                         void (*fn)(const char *word, size_t len, void *user), void *user) {
    const unsigned char *t = text;
    size_t i = 0, w;
    while (i < len) {
        /* 's|'t|'re|'ve|'m|'ll|'d */
        if (t[i] == '\'' && i + 1 < len) {
            unsigned c = t[i + 1];
            size_t k = 0;
            if (c == 's' || c == 't' || c == 'm' || c == 'd') k = 2;
            else if (i + 2 < len && ((c == 'r' && t[i + 2] == 'e') || (c == 'v' && t[i + 2] == 'e') ||
                                     (c == 'l' && t[i + 2] == 'l')))
                k = 3;
            if (k) {
                fn((const char *)t + i, k, user);
                i += k;
                continue;
            }
        }
        /*  ?L+ |  ?N+ |  ?[^\sLN]+ */
        size_t s = i + (t[i] == ' ');
        if (s < len) {
            int cl = char_class(t + s, len - s, &w);
            if (cl != CL_WS) {
                size_t j = s + w;
                while (j < len && char_class(t + j, len - j, &w) == cl) j += w;
                fn((const char *)t + i, j - i, user);
                i = j;
                continue;
            }
        }
        /* \s+(?!\S) | \s+ : the run, less its last character unless the run
         * ends the text or is a single character */
        size_t j = i, last = i;
        while (j < len && char_class(t + j, len - j, &w) == CL_WS) last = j, j += w;
        if (j == i) { /* cannot happen: t[i] is not ws only if handled above */
            j = i + 1;
            last = i;
        }
        size_t end = (j == len || last == i) ? j : last;
        fn((const char *)t + i, end - i, user);
        i = end;
    }
}

/* ------------------------------------------------------------ hash maps */

static uint64_t hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* byte-string keys -> int64 values; keys live in one growable pool */
typedef struct {
    uint64_t hash;
    size_t off;
    uint32_t len;
    int32_t used;
    int64_t val;
} smap_slot;

typedef struct {
    smap_slot *slot;
    size_t cap, n;
    char *pool;
    size_t pool_len, pool_cap;
} smap;

static void smap_init(smap *m, size_t cap) {
    memset(m, 0, sizeof *m);
    m->cap = cap;
    m->slot = calloc(cap, sizeof *m->slot);
    TSR_ASSERT(m->slot);
}

static void smap_free(smap *m) {
    free(m->slot);
    free(m->pool);
    memset(m, 0, sizeof *m);
}

static void smap_clear(smap *m) {
    memset(m->slot, 0, m->cap * sizeof *m->slot);
    m->n = 0;
    m->pool_len = 0;
}

static smap_slot *smap_find(const smap *m, const char *k, size_t len, uint64_t h) {
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    for (;;) {
        smap_slot *s = &m->slot[i];
        if (!s->used) return s;
        if (s->hash == h && s->len == len && memcmp(m->pool + s->off, k, len) == 0) return s;
        i = (i + 1) & mask;
    }
}

static void smap_grow(smap *m) {
    smap_slot *old = m->slot;
    size_t oldcap = m->cap;
    m->cap *= 2;
    m->slot = calloc(m->cap, sizeof *m->slot);
    TSR_ASSERT(m->slot);
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].used) continue;
        size_t j = (size_t)old[i].hash & (m->cap - 1);
        while (m->slot[j].used) j = (j + 1) & (m->cap - 1);
        m->slot[j] = old[i];
    }
    free(old);
}

/* slot for key, inserted with val 0 (and *fresh = true) when missing */
static smap_slot *smap_get(smap *m, const char *k, size_t len, bool *fresh) {
    uint64_t h = hash_bytes(k, len);
    smap_slot *s = smap_find(m, k, len, h);
    if (s->used) {
        if (fresh) *fresh = false;
        return s;
    }
    if ((m->n + 1) * 4 > m->cap * 3) {
        smap_grow(m);
        s = smap_find(m, k, len, h);
    }
    if (m->pool_len + len + 1 > m->pool_cap) {
        size_t nc = m->pool_cap ? m->pool_cap * 2 : 4096;
        while (nc < m->pool_len + len + 1) nc *= 2;
        m->pool = realloc(m->pool, nc);
        TSR_ASSERT(m->pool);
        m->pool_cap = nc;
    }
    memcpy(m->pool + m->pool_len, k, len);
    m->pool[m->pool_len + len] = 0;
    s->hash = h;
    s->off = m->pool_len;
    s->len = (uint32_t)len;
    s->used = 1;
    s->val = 0;
    m->pool_len += len + 1;
    m->n++;
    if (fresh) *fresh = true;
    return s;
}

static const smap_slot *smap_lookup(const smap *m, const char *k, size_t len) {
    if (!m->cap) return NULL;
    const smap_slot *s = smap_find(m, k, len, hash_bytes(k, len));
    return s->used ? s : NULL;
}

/* (left id, right id) -> int32 value */
typedef struct {
    uint64_t key; /* (a << 32 | b) + 1; 0 = empty */
    int32_t val;
} pmap_slot;

struct tsr_bpe_pairmap {
    pmap_slot *slot;
    size_t cap, n;
};

static uint64_t pkey(int32_t a, int32_t b) { return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1; }

static void pmap_init(tsr_bpe_pairmap *m, size_t cap) {
    m->cap = cap;
    m->n = 0;
    m->slot = calloc(cap, sizeof *m->slot);
    TSR_ASSERT(m->slot);
}

static pmap_slot *pmap_find(const tsr_bpe_pairmap *m, uint64_t key) {
    size_t mask = m->cap - 1, i = (size_t)mix64(key) & mask;
    while (m->slot[i].key && m->slot[i].key != key) i = (i + 1) & mask;
    return &m->slot[i];
}

static int32_t pmap_get(const tsr_bpe_pairmap *m, int32_t a, int32_t b) {
    const pmap_slot *s = pmap_find(m, pkey(a, b));
    return s->key ? s->val : -1;
}

/* slot for (a,b), inserted with val -1 when missing */
static pmap_slot *pmap_put(tsr_bpe_pairmap *m, int32_t a, int32_t b) {
    uint64_t key = pkey(a, b);
    pmap_slot *s = pmap_find(m, key);
    if (s->key) return s;
    if ((m->n + 1) * 2 > m->cap) {
        pmap_slot *old = m->slot;
        size_t oldcap = m->cap;
        pmap_init(m, oldcap * 2);
        for (size_t i = 0; i < oldcap; i++) {
            if (!old[i].key) continue;
            *pmap_find(m, old[i].key) = old[i];
            m->n++;
        }
        free(old);
        s = pmap_find(m, key);
    }
    s->key = key;
    s->val = -1;
    m->n++;
    return s;
}

/* -------------------------------------------------------- tsr_bpe basics */

struct tsr_bpe_cache {
    smap words;       /* word -> offset into ids (val = off << 16 | count) */
    int32_t *ids;
    size_t n_ids, cap_ids;
    /* scratch for one word */
    int32_t *sym, *prev, *next;
    int64_t *heap;
    size_t scratch_cap;
    smap pieces;      /* raw piece bytes -> id, non-special tokens */
};

#define CACHE_MAX_WORD 128
#define CACHE_MAX_IDS ((size_t)1 << 22)

void tsr_bpe_free(tsr_bpe *b) {
    if (!b) return;
    if (b->piece) {
        for (int i = 0; i < b->vocab_size; i++) free(b->piece[i]);
    }
    free(b->piece);
    free(b->piece_len);
    free(b->special);
    free(b->merges);
    if (b->pairs) free(b->pairs->slot);
    free(b->pairs);
    if (b->cache) {
        smap_free(&b->cache->words);
        smap_free(&b->cache->pieces);
        free(b->cache->ids);
        free(b->cache->sym);
        free(b->cache->prev);
        free(b->cache->next);
        free(b->cache->heap);
        free(b->cache);
    }
    memset(b, 0, sizeof *b);
}

static void bpe_alloc(tsr_bpe *b, int vocab, int n_merges) {
    memset(b, 0, sizeof *b);
    b->vocab_size = vocab;
    b->n_merges = n_merges;
    b->piece = calloc((size_t)vocab, sizeof *b->piece);
    b->piece_len = calloc((size_t)vocab, sizeof *b->piece_len);
    b->special = calloc((size_t)vocab, 1);
    b->merges = calloc((size_t)n_merges + 1, sizeof *b->merges);
    b->pairs = calloc(1, sizeof *b->pairs);
    b->cache = calloc(1, sizeof *b->cache);
    TSR_ASSERT(b->piece && b->piece_len && b->special && b->merges && b->pairs && b->cache);
    size_t cap = 64;
    while (cap < (size_t)n_merges * 2 + 2) cap *= 2;
    pmap_init(b->pairs, cap);
    smap_init(&b->cache->words, 1024);
    smap_init(&b->cache->pieces, 1024);
    for (int i = 0; i < 256; i++) b->byte_id[i] = -1;
}

static void set_piece(tsr_bpe *b, int id, const char *s, int len) {
    b->piece[id] = malloc((size_t)len + 1);
    TSR_ASSERT(b->piece[id]);
    memcpy(b->piece[id], s, (size_t)len);
    b->piece[id][len] = 0;
    b->piece_len[id] = len;
}

uint64_t tsr_bpe_hash(const tsr_bpe *b) {
    uint64_t h = 0xcbf29ce484222325ull;
#define FNV_BYTES(p, n)                                                      \
    do {                                                                     \
        const unsigned char *q_ = (const unsigned char *)(p);                \
        for (size_t k_ = 0; k_ < (size_t)(n); k_++) h = (h ^ q_[k_]) * 0x100000001b3ull; \
    } while (0)
    uint32_t v = (uint32_t)b->vocab_size;
    FNV_BYTES(&v, 4);
    for (int i = 0; i < b->vocab_size; i++) {
        uint32_t l = (uint32_t)b->piece_len[i];
        FNV_BYTES(&l, 4);
        FNV_BYTES(b->piece[i], l);
        FNV_BYTES(&b->special[i], 1);
    }
    for (int r = 0; r < b->n_merges; r++) FNV_BYTES(b->merges[r], 12);
#undef FNV_BYTES
    return h;
}

/* after pieces, specials and merges are set: the lookups */
static void bpe_finish(tsr_bpe *b) {
    for (int r = 0; r < b->n_merges; r++) {
        pmap_slot *s = pmap_put(b->pairs, b->merges[r][0], b->merges[r][1]);
        if (s->val < 0) s->val = r; /* a repeated merge keeps its first rank */
    }
    for (int i = 0; i < b->vocab_size; i++) {
        if (b->special[i]) continue;
        bool fresh;
        smap_slot *s = smap_get(&b->cache->pieces, b->piece[i], (size_t)b->piece_len[i], &fresh);
        if (fresh) s->val = i;
    }
    b->hash = tsr_bpe_hash(b);
}

const char *tsr_bpe_piece(const tsr_bpe *b, int id, int *len) {
    if (id < 0 || id >= b->vocab_size) return NULL;
    if (len) *len = b->piece_len[id];
    return b->piece[id];
}

tsr_status tsr_bpe_add_special(tsr_bpe *b, const char *content, int *id) {
    if (!content || !content[0]) return tsr_errorf(TSR_ERR_ARG, "bpe: special token is empty");
    if (tsr_bpe_special_id(b, content) >= 0)
        return tsr_errorf(TSR_ERR_ARG, "bpe: special token '%s' exists already", content);
    const int v = b->vocab_size;
    char **piece = realloc(b->piece, sizeof *piece * (size_t)(v + 1));
    if (piece) b->piece = piece;
    int *plen = realloc(b->piece_len, sizeof *plen * (size_t)(v + 1));
    if (plen) b->piece_len = plen;
    uint8_t *sp = realloc(b->special, (size_t)v + 1);
    if (sp) b->special = sp;
    TSR_ASSERT(piece && plen && sp);
    set_piece(b, v, content, (int)strlen(content));
    b->special[v] = 1;
    b->vocab_size = v + 1;
    b->hash = tsr_bpe_hash(b);
    if (id) *id = v;
    return tsr_ok();
}

int tsr_bpe_special_id(const tsr_bpe *b, const char *content) {
    size_t n = strlen(content);
    for (int i = 0; i < b->vocab_size; i++)
        if (b->special[i] && (size_t)b->piece_len[i] == n && memcmp(b->piece[i], content, n) == 0)
            return i;
    return -1;
}

/* ---------------------------------------------------------------- encode */

static void scratch_reserve(tsr_bpe_cache *c, size_t n) {
    if (n <= c->scratch_cap) return;
    size_t cap = c->scratch_cap ? c->scratch_cap : 256;
    while (cap < n) cap *= 2;
    c->sym = realloc(c->sym, cap * sizeof *c->sym);
    c->prev = realloc(c->prev, cap * sizeof *c->prev);
    c->next = realloc(c->next, cap * sizeof *c->next);
    c->heap = realloc(c->heap, cap * 2 * sizeof *c->heap);
    TSR_ASSERT(c->sym && c->prev && c->next && c->heap);
    c->scratch_cap = cap;
}

/* heap of (rank << 32 | left position): min first gives lowest rank, then
 * leftmost */
static void heap_push(int64_t *h, size_t *n, int64_t v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static int64_t heap_pop(int64_t *h, size_t *n) {
    int64_t top = h[0], v = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m) break;
        if (l + 1 < m && h[l + 1] < h[l]) l++;
        if (h[l] >= v) break;
        h[i] = h[l];
        i = l;
    }
    if (m) h[i] = v;
    return top;
}

/* BPE of one word (n >= 1 bytes) into out; returns the count */
static size_t encode_word(tsr_bpe *b, const unsigned char *w, size_t n, int32_t *out) {
    tsr_bpe_cache *c = b->cache;
    scratch_reserve(c, n);
    int32_t *sym = c->sym, *prev = c->prev, *next = c->next;
    int64_t *heap = c->heap;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        sym[i] = b->byte_id[w[i]];
        prev[i] = (int32_t)i - 1;
        next[i] = (i + 1 < n) ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t r = pmap_get(b->pairs, sym[i], sym[i + 1]);
        if (r >= 0) heap_push(heap, &hn, ((int64_t)r << 32) | (int64_t)i);
    }
    while (hn) {
        int64_t e = heap_pop(heap, &hn);
        int32_t r = (int32_t)(e >> 32), i = (int32_t)(e & 0xffffffff);
        if (sym[i] < 0) continue; /* absorbed by an earlier merge */
        int32_t j = next[i];
        if (j < 0 || pmap_get(b->pairs, sym[i], sym[j]) != r) continue;
        sym[i] = b->merges[r][2];
        sym[j] = -1;
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = i;
        if (prev[i] >= 0) {
            int32_t r2 = pmap_get(b->pairs, sym[prev[i]], sym[i]);
            if (r2 >= 0) heap_push(heap, &hn, ((int64_t)r2 << 32) | (int64_t)prev[i]);
        }
        if (next[i] >= 0) {
            int32_t r2 = pmap_get(b->pairs, sym[i], sym[next[i]]);
            if (r2 >= 0) heap_push(heap, &hn, ((int64_t)r2 << 32) | (int64_t)i);
        }
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = next[i]) out[k++] = sym[i];
    return k;
}

typedef struct {
    tsr_bpe *b;
    int32_t *out;
    size_t n;
} enc_ctx;

static void encode_cb(const char *word, size_t len, void *user) {
    enc_ctx *e = user;
    tsr_bpe *b = e->b;
    tsr_bpe_cache *c = b->cache;
    if (len == 1) {
        e->out[e->n++] = b->byte_id[(unsigned char)word[0]];
        return;
    }
    if (len > CACHE_MAX_WORD) {
        e->n += encode_word(b, (const unsigned char *)word, len, e->out + e->n);
        return;
    }
    const smap_slot *s = smap_lookup(&c->words, word, len);
    if (s) {
        size_t off = (size_t)(s->val >> 16), k = (size_t)(s->val & 0xffff);
        memcpy(e->out + e->n, c->ids + off, k * sizeof *c->ids);
        e->n += k;
        return;
    }
    size_t k = encode_word(b, (const unsigned char *)word, len, e->out + e->n);
    if (c->n_ids + k > CACHE_MAX_IDS) { /* bounded memory: start over */
        smap_clear(&c->words);
        c->n_ids = 0;
    }
    if (c->n_ids + k > c->cap_ids) {
        size_t nc = c->cap_ids ? c->cap_ids * 2 : 4096;
        while (nc < c->n_ids + k) nc *= 2;
        c->ids = realloc(c->ids, nc * sizeof *c->ids);
        TSR_ASSERT(c->ids);
        c->cap_ids = nc;
    }
    memcpy(c->ids + c->n_ids, e->out + e->n, k * sizeof *c->ids);
    smap_slot *ns = smap_get(&c->words, word, len, NULL);
    ns->val = ((int64_t)c->n_ids << 16) | (int64_t)k;
    c->n_ids += k;
    e->n += k;
}

size_t tsr_bpe_encode(tsr_bpe *b, const void *text, size_t len, int32_t *out) {
    enc_ctx e = {b, out, 0};
    tsr_bpe_pretokenize(text, len, encode_cb, &e);
    return e.n;
}

size_t tsr_bpe_decode(const tsr_bpe *b, const int32_t *ids, size_t n, char *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= b->vocab_size) continue;
        size_t l = (size_t)b->piece_len[id];
        if (k < cap) memcpy(out + k, b->piece[id], (k + l <= cap) ? l : cap - k);
        k += l;
    }
    return k;
}

/* -------------------------------------------------------------- training */

typedef struct {
    int32_t a, b;
    int64_t count;
    int32_t *words; /* unique words the pair was formed in (some stale) */
    int32_t n_words, cap_words;
    int32_t stamp;  /* last merge step that touched it as a new pair */
    int32_t stamp_merged; /* already recorded as a merge rule */
} tpair;

typedef struct {
    tpair *p;
    int32_t n, cap;
    tsr_bpe_pairmap map; /* (a,b) -> index in p */
    /* max-heap entries (count, a, b) */
    struct hent { int64_t count; int32_t a, b; } *heap;
    size_t hn, hcap;
} trainer;

static bool hent_less(const struct hent *x, const struct hent *y) {
    /* "x ranks below y": lower count, or equal count and larger pair */
    if (x->count != y->count) return x->count < y->count;
    if (x->a != y->a) return x->a > y->a;
    return x->b > y->b;
}

static void theap_push(trainer *t, int64_t count, int32_t a, int32_t b) {
    if (t->hn == t->hcap) {
        t->hcap = t->hcap ? t->hcap * 2 : 1024;
        t->heap = realloc(t->heap, t->hcap * sizeof *t->heap);
        TSR_ASSERT(t->heap);
    }
    struct hent v = {count, a, b};
    size_t i = t->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hent_less(&t->heap[p], &v)) break;
        t->heap[i] = t->heap[p];
        i = p;
    }
    t->heap[i] = v;
}

static struct hent theap_pop(trainer *t) {
    struct hent top = t->heap[0], v = t->heap[--t->hn];
    size_t i = 0, m = t->hn;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m) break;
        if (l + 1 < m && hent_less(&t->heap[l], &t->heap[l + 1])) l++;
        if (!hent_less(&v, &t->heap[l])) break;
        t->heap[i] = t->heap[l];
        i = l;
    }
    if (m) t->heap[i] = v;
    return top;
}

static tpair *tpair_get(trainer *t, int32_t a, int32_t b, bool create) {
    if (!create) {
        int32_t k = pmap_get(&t->map, a, b);
        return k >= 0 ? &t->p[k] : NULL;
    }
    pmap_slot *s = pmap_put(&t->map, a, b);
    if (s->val < 0) {
        if (t->n == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 4096;
            t->p = realloc(t->p, (size_t)t->cap * sizeof *t->p);
            TSR_ASSERT(t->p);
        }
        tpair *p = &t->p[t->n];
        memset(p, 0, sizeof *p);
        p->a = a;
        p->b = b;
        p->stamp = -1;
        s->val = t->n++;
    }
    return &t->p[s->val];
}

static void tpair_add_word(tpair *p, int32_t w) {
    if (p->n_words && p->words[p->n_words - 1] == w) return;
    if (p->n_words == p->cap_words) {
        p->cap_words = p->cap_words ? p->cap_words * 2 : 4;
        p->words = realloc(p->words, (size_t)p->cap_words * sizeof *p->words);
        TSR_ASSERT(p->words);
    }
    p->words[p->n_words++] = w;
}

typedef struct {
    smap counts;
} count_ctx;

static void count_cb(const char *word, size_t len, void *user) {
    count_ctx *c = user;
    smap_get(&c->counts, word, len, NULL)->val++;
}

static void touch(int32_t **list, size_t *n, size_t *cap, tpair *np, int32_t step, int32_t idx) {
    if (np->stamp == step) return;
    np->stamp = step;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *list = realloc(*list, *cap * sizeof **list);
        TSR_ASSERT(*list);
    }
    (*list)[(*n)++] = idx;
}

static tsr_status train_from_counts(tsr_bpe *out, smap *counts, const tsr_bpe_train_opts *o) {
    int ns = o->n_specials;
    int base = ns + 256;
    if (o->vocab_size < base)
        return tsr_errorf(TSR_ERR_ARG, "bpe: vocab size %d is below %d (%d specials + 256 bytes)",
                          o->vocab_size, base, ns);
    if (o->vocab_size > (1 << 22))
        return tsr_errorf(TSR_ERR_ARG, "bpe: vocab size %d is too large", o->vocab_size);
    for (int i = 0; i < ns; i++) {
        if (!o->specials[i] || !o->specials[i][0])
            return tsr_errorf(TSR_ERR_ARG, "bpe: special token %d is empty", i);
        for (int j = 0; j < i; j++)
            if (strcmp(o->specials[i], o->specials[j]) == 0)
                return tsr_errorf(TSR_ERR_ARG, "bpe: special token '%s' given twice", o->specials[i]);
    }
    int64_t min_count = o->min_count > 0 ? o->min_count : 2;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    /* unique words as symbol arrays, in slot order (which depends only on
     * the words and the order they were first seen: deterministic) */
    size_t n_words = counts->n, total = 0;
    int32_t *wlen = malloc((n_words + 1) * sizeof *wlen);
    size_t *woff = malloc((n_words + 1) * sizeof *woff);
    int64_t *wcount = malloc((n_words + 1) * sizeof *wcount);
    TSR_ASSERT(wlen && woff && wcount);
    size_t w = 0;
    for (size_t i = 0; i < counts->cap; i++) {
        if (!counts->slot[i].used) continue;
        woff[w] = total;
        wlen[w] = (int32_t)counts->slot[i].len;
        wcount[w] = counts->slot[i].val;
        total += counts->slot[i].len;
        w++;
    }
    int32_t *sym = malloc((total + 1) * sizeof *sym);
    TSR_ASSERT(sym);
    w = 0;
    for (size_t i = 0; i < counts->cap; i++) {
        if (!counts->slot[i].used) continue;
        const unsigned char *k = (const unsigned char *)counts->pool + counts->slot[i].off;
        for (int32_t j = 0; j < wlen[w]; j++) sym[woff[w] + (size_t)j] = ns + k[j];
        w++;
    }

    /* token pieces as learned; `known` maps bytes -> id so that a merge
     * whose bytes already form a token reuses that id (as HF's trainer) */
    char **piece = calloc((size_t)o->vocab_size, sizeof *piece);
    int *plen = calloc((size_t)o->vocab_size, sizeof *plen);
    TSR_ASSERT(piece && plen);
    smap known;
    smap_init(&known, 1024);
    for (int i = 0; i < 256; i++) {
        piece[ns + i] = malloc(2);
        TSR_ASSERT(piece[ns + i]);
        piece[ns + i][0] = (char)i;
        plen[ns + i] = 1;
        smap_get(&known, piece[ns + i], 1, NULL)->val = ns + i;
    }
    int n_tokens = base;

    trainer t;
    memset(&t, 0, sizeof t);
    pmap_init(&t.map, 1 << 16);
    for (size_t q = 0; q < n_words; q++) {
        int32_t *s = sym + woff[q];
        for (int32_t j = 0; j + 1 < wlen[q]; j++) {
            tpair *p = tpair_get(&t, s[j], s[j + 1], true);
            p->count += wcount[q];
            tpair_add_word(p, (int32_t)q);
        }
    }
    for (int32_t k = 0; k < t.n; k++) theap_push(&t, t.p[k].count, t.p[k].a, t.p[k].b);

    int32_t (*merges)[3] = NULL;
    size_t n_merges = 0, cap_merges = 0;
    int32_t *touched = NULL;
    size_t n_touched = 0, cap_touched = 0;
    char *cat = NULL;
    size_t cat_cap = 0;
    for (int32_t step = 0; n_tokens < o->vocab_size && t.hn; step++) {
        struct hent e = theap_pop(&t);
        tpair *p = tpair_get(&t, e.a, e.b, false);
        TSR_ASSERT(p);
        if (p->count != e.count) {
            /* stale: a lower current count goes back in; a higher one
             * already has its own entry (pushed when it grew) */
            if (p->count < e.count && p->count > 0) theap_push(&t, p->count, e.a, e.b);
            continue;
        }
        if (p->count < min_count) break;
        int32_t a = e.a, b = e.b;
        size_t la = (size_t)plen[a], lb = (size_t)plen[b];
        if (la + lb > cat_cap) {
            cat_cap = (la + lb) * 2;
            cat = realloc(cat, cat_cap);
            TSR_ASSERT(cat);
        }
        memcpy(cat, piece[a], la);
        memcpy(cat + la, piece[b], lb);
        bool fresh;
        smap_slot *ks = smap_get(&known, cat, la + lb, &fresh);
        if (fresh) {
            ks->val = n_tokens;
            piece[n_tokens] = malloc(la + lb + 1);
            TSR_ASSERT(piece[n_tokens]);
            memcpy(piece[n_tokens], cat, la + lb);
            piece[n_tokens][la + lb] = 0;
            plen[n_tokens] = (int)(la + lb);
            n_tokens++;
        }
        int32_t c = (int32_t)ks->val;
        if (!p->stamp_merged) { /* a pair formed again after its merge is not a new rule */
            p->stamp_merged = 1;
            if (n_merges == cap_merges) {
                cap_merges = cap_merges ? cap_merges * 2 : 1024;
                merges = realloc(merges, cap_merges * sizeof *merges);
                TSR_ASSERT(merges);
            }
            merges[n_merges][0] = a;
            merges[n_merges][1] = b;
            merges[n_merges][2] = c;
            n_merges++;
        }
        int32_t pidx = (int32_t)(p - t.p);
        int32_t *wl = p->words;
        int32_t nwl = p->n_words;
        p->words = NULL;
        p->n_words = p->cap_words = 0;
        n_touched = 0;
        for (int32_t q = 0; q < nwl; q++) {
            int32_t wi = wl[q];
            int32_t *s = sym + woff[wi];
            int32_t n = wlen[wi], r = 0, o2 = 0;
            int64_t f = wcount[wi];
            while (r < n) {
                if (r + 1 < n && s[r] == a && s[r + 1] == b) {
                    /* tpair_get(.., true) may move t.p: hold indices */
                    if (o2 > 0) {
                        tpair_get(&t, s[o2 - 1], a, false)->count -= f;
                        tpair *np = tpair_get(&t, s[o2 - 1], c, true);
                        np->count += f;
                        tpair_add_word(np, wi);
                        touch(&touched, &n_touched, &cap_touched, np, step, (int32_t)(np - t.p));
                    }
                    if (r + 2 < n) {
                        tpair_get(&t, b, s[r + 2], false)->count -= f;
                        tpair *np = tpair_get(&t, c, s[r + 2], true);
                        np->count += f;
                        tpair_add_word(np, wi);
                        touch(&touched, &n_touched, &cap_touched, np, step, (int32_t)(np - t.p));
                    }
                    t.p[pidx].count -= f;
                    s[o2++] = c;
                    r += 2;
                } else {
                    s[o2++] = s[r++];
                }
            }
            wlen[wi] = o2;
        }
        free(wl);
        TSR_ASSERT(t.p[pidx].count == 0);
        for (size_t k = 0; k < n_touched; k++) {
            tpair *np = &t.p[touched[k]];
            if (np->count > 0) theap_push(&t, np->count, np->a, np->b);
        }
        if (o->verbose && fresh && ((n_tokens - base) % 1000 == 0 || n_tokens == o->vocab_size)) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            tsr_log("bpe: vocab %d/%d, pair count %lld, %.1f s\n", n_tokens, o->vocab_size,
                    (long long)e.count,
                    (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
        }
    }

    bpe_alloc(out, n_tokens, (int)n_merges);
    for (int i = 0; i < ns; i++) {
        set_piece(out, i, o->specials[i], (int)strlen(o->specials[i]));
        out->special[i] = 1;
    }
    for (int i = ns; i < n_tokens; i++) {
        out->piece[i] = piece[i];
        out->piece_len[i] = plen[i];
        piece[i] = NULL;
    }
    for (int i = 0; i < 256; i++) out->byte_id[i] = ns + i;
    if (n_merges) memcpy(out->merges, merges, n_merges * sizeof *merges);
    bpe_finish(out);

    for (int i = 0; i < o->vocab_size; i++) free(piece[i]);
    free(piece);
    free(plen);
    smap_free(&known);
    for (int32_t k = 0; k < t.n; k++) free(t.p[k].words);
    free(t.p);
    free(t.map.slot);
    free(t.heap);
    free(touched);
    free(merges);
    free(cat);
    free(sym);
    free(wlen);
    free(woff);
    free(wcount);
    return tsr_ok();
}

tsr_status tsr_bpe_train_texts(tsr_bpe *b, const char *const *texts, const size_t *lens,
                               int n_texts, const tsr_bpe_train_opts *o) {
    memset(b, 0, sizeof *b);
    count_ctx cc;
    smap_init(&cc.counts, 1 << 12);
    for (int i = 0; i < n_texts; i++) tsr_bpe_pretokenize(texts[i], lens[i], count_cb, &cc);
    tsr_status st = train_from_counts(b, &cc.counts, o);
    smap_free(&cc.counts);
    return st;
}

tsr_status tsr_bpe_train(tsr_bpe *b, const char *const *files, int n_files,
                         const tsr_bpe_train_opts *o) {
    memset(b, 0, sizeof *b);
    count_ctx cc;
    smap_init(&cc.counts, 1 << 16);
    size_t bytes = 0;
    for (int i = 0; i < n_files; i++) {
        char *d;
        size_t n;
        tsr_status st = tsr_read_file(files[i], &d, &n);
        if (st.code) {
            smap_free(&cc.counts);
            return st;
        }
        tsr_bpe_pretokenize(d, n, count_cb, &cc);
        bytes += n;
        free(d);
    }
    if (o->verbose)
        tsr_log("bpe: %d files, %zu bytes, %zu unique words\n", n_files, bytes, cc.counts.n);
    tsr_status st = train_from_counts(b, &cc.counts, o);
    smap_free(&cc.counts);
    return st;
}

/* ------------------------------------------------------ tokenizer.json */

/* piece bytes -> GPT-2 printable form (UTF-8), malloc'd */
static char *to_printable(const char *s, int n) {
    byte_map_init();
    char *o = malloc((size_t)n * 2 + 1), *p = o;
    TSR_ASSERT(o);
    for (int i = 0; i < n; i++) {
        int cp = g_b2cp[(unsigned char)s[i]];
        if (cp < 0x80) *p++ = (char)cp;
        else {
            *p++ = (char)(0xC0 | (cp >> 6));
            *p++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    *p = 0;
    return o;
}

/* GPT-2 printable form -> bytes into out (cap >= strlen(s)); -1 if a code
 * point is outside the map */
static int from_printable(const char *s, size_t n, char *out) {
    byte_map_init();
    int k = 0;
    size_t i = 0;
    while (i < n) {
        int cp;
        int l = utf8_seq((const unsigned char *)s + i, n - i, &cp);
        if (l == 0) return -1;
        int b = (cp < 324) ? g_cp2b[cp] : -1;
        if (b < 0) return -1;
        out[k++] = (char)b;
        i += (size_t)l;
    }
    return k;
}

char *tsr_bpe_to_json(const tsr_bpe *b) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int i = 0; i < b->vocab_size; i++) {
        if (!b->special[i]) continue;
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "id", i);
        cJSON_AddStringToObject(t, "content", b->piece[i]);
        cJSON_AddBoolToObject(t, "single_word", 0);
        cJSON_AddBoolToObject(t, "lstrip", 0);
        cJSON_AddBoolToObject(t, "rstrip", 0);
        cJSON_AddBoolToObject(t, "normalized", 0);
        cJSON_AddBoolToObject(t, "special", 1);
        cJSON_AddItemToArray(added, t);
    }
    cJSON_AddNullToObject(root, "normalizer");
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "ByteLevel");
    cJSON_AddBoolToObject(pre, "add_prefix_space", 0);
    cJSON_AddBoolToObject(pre, "trim_offsets", 1);
    cJSON_AddBoolToObject(pre, "use_regex", 1);
    cJSON_AddNullToObject(root, "post_processor");
    cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON_AddBoolToObject(dec, "add_prefix_space", 1);
    cJSON_AddBoolToObject(dec, "trim_offsets", 1);
    cJSON_AddBoolToObject(dec, "use_regex", 1);
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", 0);
    cJSON_AddBoolToObject(model, "byte_fallback", 0);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int i = 0; i < b->vocab_size; i++) {
        char *s = b->special[i] ? NULL : to_printable(b->piece[i], b->piece_len[i]);
        cJSON_AddNumberToObject(vocab, s ? s : b->piece[i], i);
        free(s);
    }
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    for (int r = 0; r < b->n_merges; r++) {
        char *x = to_printable(b->piece[b->merges[r][0]], b->piece_len[b->merges[r][0]]);
        char *y = to_printable(b->piece[b->merges[r][1]], b->piece_len[b->merges[r][1]]);
        size_t lx = strlen(x), ly = strlen(y);
        char *m = malloc(lx + ly + 2);
        TSR_ASSERT(m);
        memcpy(m, x, lx);
        m[lx] = ' ';
        memcpy(m + lx + 1, y, ly + 1);
        cJSON_AddItemToArray(merges, cJSON_CreateString(m));
        free(m);
        free(x);
        free(y);
    }
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    return txt;
}

tsr_status tsr_bpe_save(const tsr_bpe *b, const char *path) {
    char *txt = tsr_bpe_to_json(b);
    if (!txt) return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory building JSON", path);
    tsr_status st = tsr_write_file_atomic(path, txt, strlen(txt), "\n", 1);
    free(txt);
    return st;
}

/* JSON number -> id in [0, limit), else -1 */
static int json_id(const cJSON *x, int limit) {
    if (!cJSON_IsNumber(x)) return -1;
    double v = x->valuedouble;
    if (!(v >= 0 && v < limit) || v != (double)(int)v) return -1;
    return (int)v;
}

#define MAX_VOCAB (1 << 22)

static tsr_status parse_json(tsr_bpe *b, const cJSON *root, const char *name) {
    if (!cJSON_IsObject(root)) return tsr_errorf(TSR_ERR_FORMAT, "%s: not a JSON object", name);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return tsr_errorf(TSR_ERR_FORMAT, "%s: no \"model\" object", name);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "BPE") == 0))
        return tsr_errorf(TSR_ERR_FORMAT, "%s: model.type is %s, need \"BPE\"", name,
                          cJSON_IsString(type) ? type->valuestring : "not a string");
    const char *unsup[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(model, unsup[i]);
        if (x && !cJSON_IsNull(x) && !(cJSON_IsString(x) && !x->valuestring[0]))
            return tsr_errorf(TSR_ERR_FORMAT, "%s: model.%s is not supported", name, unsup[i]);
    }
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm))
        return tsr_errorf(TSR_ERR_FORMAT, "%s: a normalizer is not supported", name);
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (pre && !cJSON_IsNull(pre)) {
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(pre, "type");
        if (!cJSON_IsString(pt) || strcmp(pt->valuestring, "ByteLevel") != 0)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: pre_tokenizer must be ByteLevel", name);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pre, "add_prefix_space")))
            return tsr_errorf(TSR_ERR_FORMAT, "%s: ByteLevel add_prefix_space=true is not supported", name);
        if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(pre, "use_regex")))
            return tsr_errorf(TSR_ERR_FORMAT, "%s: ByteLevel use_regex=false is not supported", name);
    }
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) return tsr_errorf(TSR_ERR_FORMAT, "%s: no model.vocab object", name);
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges)) return tsr_errorf(TSR_ERR_FORMAT, "%s: no model.merges array", name);
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return tsr_errorf(TSR_ERR_FORMAT, "%s: added_tokens is not an array", name);

    int V = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, vocab) {
        int id = json_id(x, MAX_VOCAB);
        if (id < 0) return tsr_errorf(TSR_ERR_FORMAT, "%s: vocab entry \"%.40s\": bad id", name, x->string);
        if (id + 1 > V) V = id + 1;
    }
    if (cJSON_IsArray(added)) {
        cJSON_ArrayForEach(x, added) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(x, "id");
            const cJSON *ct = cJSON_GetObjectItemCaseSensitive(x, "content");
            int i = json_id(id, MAX_VOCAB);
            if (i < 0 || !cJSON_IsString(ct) || !ct->valuestring[0])
                return tsr_errorf(TSR_ERR_FORMAT, "%s: added_tokens entry without a valid id and content", name);
            if (i + 1 > V) V = i + 1;
        }
    }
    if (V == 0) return tsr_errorf(TSR_ERR_FORMAT, "%s: empty vocab", name);
    int nm = cJSON_GetArraySize(merges);
    if (nm >= V) return tsr_errorf(TSR_ERR_FORMAT, "%s: %d merges for a vocab of %d", name, nm, V);

    bpe_alloc(b, V, nm);
    char *buf = NULL;
    size_t bufcap = 0;
    tsr_status st = tsr_ok();
    if (cJSON_IsArray(added)) {
        cJSON_ArrayForEach(x, added) {
            int i = json_id(cJSON_GetObjectItemCaseSensitive(x, "id"), V);
            const char *c = cJSON_GetObjectItemCaseSensitive(x, "content")->valuestring;
            if (b->piece[i]) {
                if (strcmp(b->piece[i], c) != 0) {
                    st = tsr_errorf(TSR_ERR_FORMAT, "%s: id %d given twice in added_tokens", name, i);
                    goto fail;
                }
                continue;
            }
            set_piece(b, i, c, (int)strlen(c));
            b->special[i] = 1;
        }
    }
    cJSON_ArrayForEach(x, vocab) {
        int id = json_id(x, V);
        const char *k = x->string;
        size_t kl = strlen(k);
        if (b->special[id]) {
            if (strcmp(b->piece[id], k) != 0) {
                st = tsr_errorf(TSR_ERR_FORMAT, "%s: id %d is \"%.40s\" in vocab but \"%.40s\" in added_tokens",
                                name, id, k, b->piece[id]);
                goto fail;
            }
            continue;
        }
        if (b->piece[id]) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: id %d given twice in vocab", name, id);
            goto fail;
        }
        if (kl + 1 > bufcap) {
            bufcap = kl * 2 + 64;
            buf = realloc(buf, bufcap);
            TSR_ASSERT(buf);
        }
        int n = from_printable(k, kl, buf);
        if (n <= 0) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: vocab entry \"%.40s\" is not a byte-level token", name, k);
            goto fail;
        }
        set_piece(b, id, buf, n);
        if (n == 1 && b->byte_id[(unsigned char)buf[0]] < 0) b->byte_id[(unsigned char)buf[0]] = id;
    }
    for (int i = 0; i < V; i++)
        if (!b->piece[i]) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: id %d is missing (ids must be 0..%d)", name, i, V - 1);
            goto fail;
        }
    for (int i = 0; i < 256; i++)
        if (b->byte_id[i] < 0) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: no token for byte 0x%02x (not a byte-level vocab)", name, i);
            goto fail;
        }
    /* piece lookups for the merges (bpe_finish rebuilds the same map) */
    for (int i = 0; i < V; i++) {
        if (b->special[i]) continue;
        bool fresh;
        smap_slot *s = smap_get(&b->cache->pieces, b->piece[i], (size_t)b->piece_len[i], &fresh);
        if (!fresh) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: ids %d and %d are the same token", name, (int)s->val, i);
            goto fail;
        }
        s->val = i;
    }
    int r = 0;
    cJSON_ArrayForEach(x, merges) {
        const char *l, *rr;
        size_t ll, lr;
        if (cJSON_IsString(x)) {
            l = x->valuestring;
            const char *sp = strchr(l, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                st = tsr_errorf(TSR_ERR_FORMAT, "%s: merge %d \"%.40s\" is not two tokens", name, r, l);
                goto fail;
            }
            ll = (size_t)(sp - l);
            rr = sp + 1;
            lr = strlen(rr);
        } else if (cJSON_IsArray(x) && cJSON_GetArraySize(x) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(x, 0)) && cJSON_IsString(cJSON_GetArrayItem(x, 1))) {
            l = cJSON_GetArrayItem(x, 0)->valuestring;
            rr = cJSON_GetArrayItem(x, 1)->valuestring;
            ll = strlen(l);
            lr = strlen(rr);
        } else {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: merge %d is neither \"a b\" nor [a, b]", name, r);
            goto fail;
        }
        if (ll + lr + 1 > bufcap) {
            bufcap = (ll + lr) * 2 + 64;
            buf = realloc(buf, bufcap);
            TSR_ASSERT(buf);
        }
        int na = from_printable(l, ll, buf);
        int nb = na > 0 ? from_printable(rr, lr, buf + na) : -1;
        const smap_slot *sa = na > 0 ? smap_lookup(&b->cache->pieces, buf, (size_t)na) : NULL;
        const smap_slot *sb = nb > 0 ? smap_lookup(&b->cache->pieces, buf + na, (size_t)nb) : NULL;
        const smap_slot *sc = (sa && sb) ? smap_lookup(&b->cache->pieces, buf, (size_t)(na + nb)) : NULL;
        if (!sc) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: merge %d \"%.30s\" + \"%.30s\": %s not in the vocab", name,
                            r, l, rr, (sa && sb) ? "the merged token is" : "a part is");
            goto fail;
        }
        b->merges[r][0] = (int32_t)sa->val;
        b->merges[r][1] = (int32_t)sb->val;
        b->merges[r][2] = (int32_t)sc->val;
        r++;
    }
    smap_clear(&b->cache->pieces);
    bpe_finish(b);
    free(buf);
    return tsr_ok();
fail:
    free(buf);
    tsr_bpe_free(b);
    return st;
}

tsr_status tsr_bpe_from_lists(tsr_bpe *b, const char *const *tokens, const uint8_t *special, int n_tokens,
                              const char *const *merges, int n_merges, const char *name) {
    memset(b, 0, sizeof *b);
    if (n_tokens < 1 || n_tokens > MAX_VOCAB)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: %d tokens (need 1..%d)", name, n_tokens, MAX_VOCAB);
    /* the same checks as a tokenizer.json: build its tree and parse that */
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab"), *ml = cJSON_AddArrayToObject(model, "merges");
    TSR_ASSERT(root && model && added && vocab && ml);
    for (int i = 0; i < n_tokens; i++) {
        if (special && special[i]) {
            cJSON *t = cJSON_CreateObject();
            cJSON_AddNumberToObject(t, "id", i);
            cJSON_AddStringToObject(t, "content", tokens[i]);
            cJSON_AddItemToArray(added, t);
        }
        cJSON_AddNumberToObject(vocab, tokens[i], i);
    }
    for (int r = 0; r < n_merges; r++) cJSON_AddItemToArray(ml, cJSON_CreateString(merges[r]));
    tsr_status st = parse_json(b, root, name);
    cJSON_Delete(root);
    return st;
}

char *tsr_bpe_token_text(const tsr_bpe *b, int id) {
    if (id < 0 || id >= b->vocab_size) return NULL;
    if (b->special[id]) {
        char *s = strdup(b->piece[id]);
        TSR_ASSERT(s);
        return s;
    }
    return to_printable(b->piece[id], b->piece_len[id]);
}

tsr_status tsr_bpe_parse(tsr_bpe *b, const char *json, size_t len, const char *name) {
    memset(b, 0, sizeof *b);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *e = cJSON_GetErrorPtr();
        long off = (e && e >= json && e <= json + len) ? (long)(e - json) : -1;
        return tsr_errorf(TSR_ERR_FORMAT, "%s: invalid JSON (near byte %ld)", name, off);
    }
    tsr_status st = parse_json(b, root, name);
    cJSON_Delete(root);
    return st;
}

tsr_status tsr_bpe_load(tsr_bpe *b, const char *path) {
    memset(b, 0, sizeof *b);
    char *d;
    size_t n;
    tsr_status st = tsr_input_check(path);
    if (st.code) return st;
    st = tsr_read_file(path, &d, &n);
    if (st.code) return st;
    st = tsr_bpe_parse(b, d, n, path);
    free(d);
    return st;
}
