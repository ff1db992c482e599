/* tessera search: the string map (item ids, vocabularies, query texts), the
 * search tokeniser shared by BM25 and the query constructions, and item
 * text assembly. Used by higen and ebrm through include/tessera/search.h. */
#include "tessera/search.h"

#include <string.h>

/* ------------------------------------------------------------ string map */

uint64_t tsr_str_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

void tsr_strmap_init(tsr_strmap *m, int64_t expected) {
    int64_t cap = 16;
    while (cap < expected * 2) cap <<= 1;
    m->cap = cap;
    m->n = 0;
    m->keys = calloc((size_t)cap, sizeof *m->keys);
    m->vals = malloc((size_t)cap * sizeof *m->vals);
    TSR_ASSERT(m->keys && m->vals);
}

void tsr_strmap_free(tsr_strmap *m) {
    if (m->keys)
        for (int64_t i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static int64_t strmap_slot(const tsr_strmap *m, const char *key) {
    int64_t i = (int64_t)(tsr_str_hash(key) & (uint64_t)(m->cap - 1));
    while (m->keys[i] && strcmp(m->keys[i], key) != 0) i = (i + 1) & (m->cap - 1);
    return i;
}

int32_t tsr_strmap_get(const tsr_strmap *m, const char *key) {
    if (!m->keys) return -1;
    int64_t i = strmap_slot(m, key);
    return m->keys[i] ? m->vals[i] : -1;
}

void tsr_strmap_put(tsr_strmap *m, const char *key, int32_t val) {
    if (!m->keys) tsr_strmap_init(m, 16);
    if ((m->n + 1) * 2 > m->cap) {
        tsr_strmap old = *m;
        tsr_strmap_init(m, old.cap);
        for (int64_t i = 0; i < old.cap; i++)
            if (old.keys[i]) {
                int64_t j = strmap_slot(m, old.keys[i]);
                m->keys[j] = old.keys[i];
                m->vals[j] = old.vals[i];
                m->n++;
            }
        free(old.keys);
        free(old.vals);
    }
    int64_t i = strmap_slot(m, key);
    if (!m->keys[i]) {
        m->keys[i] = strdup(key);
        TSR_ASSERT(m->keys[i]);
        m->n++;
    }
    m->vals[i] = val;
}

/* ---------------------------------------------------------------- tokens */

/* Short English function words that carry no retrieval signal here. */
static const char *const k_stop[] = {
    "a",    "an",   "and",  "are",  "as",   "at",   "be",   "by",   "for",  "from", "has",
    "have", "in",   "into", "is",   "it",   "its",  "of",   "on",   "or",   "that", "the",
    "this", "to",   "was",  "were", "will", "with", "which", "can",  "you",  "your", "also",
    "these", "their", "other", "such", "not", "may", "all", "any", "some", "more", "than",
    "package", "contain", "provide", "include", "use", "used", "using", "etc",
};

static bool is_stop(const char *t) {
    /* compare only against words of the same first letter and length */
    static uint64_t mask[26]; /* bit n set: a stopword of length n starts with the letter */
    static int ready;
    if (!ready) { /* idempotent: racing threads write the same bits */
        for (size_t i = 0; i < sizeof k_stop / sizeof *k_stop; i++)
            __atomic_or_fetch(&mask[k_stop[i][0] - 'a'], 1ull << strlen(k_stop[i]), __ATOMIC_RELAXED);
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    if (t[0] < 'a' || t[0] > 'z') return false;
    size_t n = strlen(t);
    if (n > 63 || !(__atomic_load_n(&mask[t[0] - 'a'], __ATOMIC_RELAXED) >> n & 1)) return false;
    for (size_t i = 0; i < sizeof k_stop / sizeof *k_stop; i++)
        if (k_stop[i][0] == t[0] && strcmp(t, k_stop[i]) == 0) return true;
    return false;
}

static bool tok_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '#';
}

int tsr_search_tokenize(const char *text, tsr_token_fn fn, void *ud) {
    char buf[64];
    int kept = 0;
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        while (*p && !tok_char(*p)) p++;
        if (!*p) break;
        int n = 0;
        while (*p && tok_char(*p)) {
            if (n < (int)sizeof buf - 1) {
                unsigned char c = *p;
                buf[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
            }
            p++;
        }
        buf[n] = 0;
        if (is_stop(buf)) continue;
        if (n > 3 && buf[n - 1] == 's' && buf[n - 2] != 's') buf[--n] = 0;
        if (n == 1 && !(buf[0] >= '0' && buf[0] <= '9') && buf[0] != 'c' && buf[0] != 'r') continue;
        if (is_stop(buf)) continue;
        kept++;
        if (fn) fn(buf, n, ud);
    }
    return kept;
}

/* -------------------------------------------------------------- item text */

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 2 > b->cap) {
        b->cap = (b->n + n + 2) * 2;
        b->s = realloc(b->s, b->cap);
        TSR_ASSERT(b->s);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) {
    if (s && *s) sb_put(b, s, strlen(s));
}
static void sb_sep(sbuf *b) {
    if (b->n) sb_put(b, "\n", 1);
}

char *tsr_item_text(const tsr_catalog *cat, int32_t item, unsigned fields) {
    TSR_ASSERT(item >= 0 && item < cat->n_items);
    const tsr_item *it = &cat->items[item];
    sbuf b = {0};
    sb_put(&b, "", 0);
    if ((fields & TSR_F_NAME) && it->title) {
        sb_sep(&b);
        sb_str(&b, it->title);
    }
    if (fields & TSR_F_SUMMARY) {
        sb_sep(&b);
        sb_str(&b, it->summary);
    }
    if (fields & TSR_F_SECTION) {
        sb_sep(&b);
        sb_str(&b, it->section);
    }
    if ((fields & TSR_F_TAGS) && it->n_tags) {
        sb_sep(&b);
        for (int i = 0; i < it->n_tags; i++) {
            if (i) sb_put(&b, ", ", 2);
            for (const char *t = it->tags[i]; *t; t++) { /* "works-with::pdf" -> "works with pdf" */
                if (t[0] == ':' && t[1] == ':') t++;
                char ch = (*t == '-' || *t == '_' || *t == ':') ? ' ' : *t;
                sb_put(&b, &ch, 1);
            }
        }
    }
    if ((fields & TSR_F_APPSTREAM) && (it->appstream[0] || it->n_as_categories)) {
        sb_sep(&b);
        sb_str(&b, it->appstream);
        for (int i = 0; i < it->n_as_categories; i++) {
            sb_put(&b, " ", 1);
            sb_str(&b, it->as_categories[i]);
        }
    }
    if (fields & TSR_F_DESCRIPTION) {
        sb_sep(&b);
        sb_str(&b, it->description);
    }
    return b.s;
}
