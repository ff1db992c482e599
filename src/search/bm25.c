/* tessera search: BM25 (Robertson & Zaragoza, "The Probabilistic Relevance
 * Framework: BM25 and Beyond", 2009, eq. 3.15 with Lucene's non-negative
 * idf) over the search tokeniser. An inverted index in CSR form; a query
 * scores its distinct terms' postings into a dense accumulator and keeps
 * the top k. The first-stage retriever and baseline for higen and ebrm. */
#include "search_internal.h"

#include <math.h>
#include <string.h>

typedef struct {
    tsr_strmap *vocab;
    int32_t *ids; /* this doc's term ids */
    int n, cap;
    bool add; /* add unknown terms to the vocabulary */
} doc_toks;

static void collect(const char *tok, int len, void *ud) {
    (void)len;
    doc_toks *d = ud;
    int32_t id = tsr_strmap_get(d->vocab, tok);
    if (id < 0) {
        if (!d->add) return;
        id = (int32_t)d->vocab->n;
        tsr_strmap_put(d->vocab, tok, id);
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 64;
        d->ids = realloc(d->ids, (size_t)d->cap * sizeof *d->ids);
        TSR_ASSERT(d->ids);
    }
    d->ids[d->n++] = id;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

void tsr_bm25_build(tsr_bm25 *ix, const char *const *texts, int32_t n, float k1, float b) {
    memset(ix, 0, sizeof *ix);
    ix->n_docs = n;
    ix->k1 = k1;
    ix->b = b;
    tsr_strmap_init(&ix->vocab, 1 << 16);
    ix->doc_len = calloc((size_t)(n ? n : 1), sizeof *ix->doc_len);
    TSR_ASSERT(ix->doc_len);
    /* pass 1: (term, doc, tf) triples per doc, sorted within the doc */
    int64_t cap = 1 << 20, np = 0;
    int32_t *pt = malloc((size_t)cap * sizeof *pt), *pd = malloc((size_t)cap * sizeof *pd);
    uint16_t *pf = malloc((size_t)cap * sizeof *pf);
    TSR_ASSERT(pt && pd && pf);
    doc_toks d = {.vocab = &ix->vocab, .add = true};
    double total = 0;
    for (int32_t i = 0; i < n; i++) {
        d.n = 0;
        tsr_search_tokenize(texts[i], collect, &d);
        ix->doc_len[i] = d.n;
        total += d.n;
        qsort(d.ids, (size_t)d.n, sizeof *d.ids, cmp_i32);
        for (int j = 0; j < d.n;) {
            int k = j;
            while (k < d.n && d.ids[k] == d.ids[j]) k++;
            if (np == cap) {
                cap *= 2;
                pt = realloc(pt, (size_t)cap * sizeof *pt);
                pd = realloc(pd, (size_t)cap * sizeof *pd);
                pf = realloc(pf, (size_t)cap * sizeof *pf);
                TSR_ASSERT(pt && pd && pf);
            }
            pt[np] = d.ids[j];
            pd[np] = i;
            pf[np] = (uint16_t)(k - j < 65535 ? k - j : 65535);
            np++;
            j = k;
        }
    }
    free(d.ids);
    ix->avg_len = n ? total / n : 0;
    ix->n_terms = (int32_t)ix->vocab.n;
    /* pass 2: counting sort by term; docs stay ascending within a term */
    ix->post_off = calloc((size_t)ix->n_terms + 1, sizeof *ix->post_off);
    ix->post_doc = malloc((size_t)(np ? np : 1) * sizeof *ix->post_doc);
    ix->post_tf = malloc((size_t)(np ? np : 1) * sizeof *ix->post_tf);
    TSR_ASSERT(ix->post_off && ix->post_doc && ix->post_tf);
    for (int64_t p = 0; p < np; p++) ix->post_off[pt[p] + 1]++;
    for (int32_t t = 0; t < ix->n_terms; t++) ix->post_off[t + 1] += ix->post_off[t];
    int64_t *fill = malloc((size_t)(ix->n_terms ? ix->n_terms : 1) * sizeof *fill);
    TSR_ASSERT(fill);
    memcpy(fill, ix->post_off, (size_t)ix->n_terms * sizeof *fill);
    for (int64_t p = 0; p < np; p++) {
        int64_t at = fill[pt[p]]++;
        ix->post_doc[at] = pd[p];
        ix->post_tf[at] = pf[p];
    }
    free(fill);
    free(pt);
    free(pd);
    free(pf);
}

void tsr_bm25_build_catalog(tsr_bm25 *ix, const tsr_catalog *cat, unsigned fields, float k1,
                            float b) {
    char **t = malloc((size_t)(cat->n_items ? cat->n_items : 1) * sizeof *t);
    TSR_ASSERT(t);
    for (int32_t i = 0; i < cat->n_items; i++) t[i] = tsr_item_text(cat, i, fields);
    tsr_bm25_build(ix, (const char *const *)t, cat->n_items, k1, b);
    for (int32_t i = 0; i < cat->n_items; i++) free(t[i]);
    free(t);
}

void tsr_bm25_free(tsr_bm25 *ix) {
    tsr_strmap_free(&ix->vocab);
    free(ix->post_off);
    free(ix->post_doc);
    free(ix->post_tf);
    free(ix->doc_len);
    memset(ix, 0, sizeof *ix);
}

double tsr_bm25_idf(const tsr_bm25 *ix, int64_t df) {
    return log(1.0 + (ix->n_docs - df + 0.5) / (df + 0.5));
}

/* distinct known query terms, in first-appearance order */
static int query_terms(const tsr_bm25 *ix, const char *query, int32_t **out) {
    doc_toks d = {.vocab = (tsr_strmap *)&ix->vocab, .add = false};
    tsr_search_tokenize(query, collect, &d);
    int m = 0;
    for (int i = 0; i < d.n; i++) {
        bool seen = false;
        for (int j = 0; j < m; j++) seen |= d.ids[j] == d.ids[i];
        if (!seen) d.ids[m++] = d.ids[i];
    }
    *out = d.ids;
    return m;
}

static inline float term_score(const tsr_bm25 *ix, double idf, int tf, int32_t dl) {
    double norm = ix->k1 * (1.0 - ix->b + ix->b * (ix->avg_len > 0 ? dl / ix->avg_len : 0));
    return (float)(idf * tf * (ix->k1 + 1.0) / (tf + norm));
}

/* A document's score is the float sum of its term scores in the query's
 * term order (query_terms), each at least 1e-30 so that a touched document
 * never reads as untouched in the search's accumulator. tsr_bm25_search and
 * tsr_bm25_score both add through this, so a document's score is the same
 * bits whichever computed it. */
static inline float add_term(float acc, float s) {
    return acc + (s > 0.f ? s : 1e-30f);
}

/* a before b in the ranking: higher score, then lower doc */
static inline bool better(float sa, int32_t da, float sb, int32_t db) {
    return sa > sb || (sa == sb && da < db);
}

int tsr_bm25_search(const tsr_bm25 *ix, const char *query, int k, int32_t *docs, float *scores,
                    float *scratch) {
    if (k <= 0 || ix->n_docs == 0) return 0;
    int32_t *terms = NULL;
    int m = query_terms(ix, query, &terms);
    float *acc = scratch ? scratch : calloc((size_t)ix->n_docs, sizeof *acc);
    TSR_ASSERT(acc);
    /* touched docs: each posting's doc once (a doc first scored adds itself) */
    int64_t n_touch = 0, cap_touch = 0;
    int32_t *touch = NULL;
    for (int i = 0; i < m; i++) {
        int32_t t = terms[i];
        int64_t a = ix->post_off[t], e = ix->post_off[t + 1];
        double idf = tsr_bm25_idf(ix, e - a);
        for (int64_t p = a; p < e; p++) {
            int32_t doc = ix->post_doc[p];
            if (acc[doc] == 0.f) {
                if (n_touch == cap_touch) {
                    cap_touch = cap_touch ? 2 * cap_touch : 1024;
                    touch = realloc(touch, (size_t)cap_touch * sizeof *touch);
                    TSR_ASSERT(touch);
                }
                touch[n_touch++] = doc;
            }
            acc[doc] = add_term(acc[doc], term_score(ix, idf, ix->post_tf[p], ix->doc_len[doc]));
        }
    }
    /* top k by a bounded insertion (k is small: <= a few hundred) */
    int n = 0;
    for (int64_t i = 0; i < n_touch; i++) {
        int32_t doc = touch[i];
        float s = acc[doc];
        acc[doc] = 0.f;
        if (n == k && !better(s, doc, scores[n - 1], docs[n - 1])) continue;
        int j = n < k ? n++ : k - 1;
        while (j > 0 && better(s, doc, scores[j - 1], docs[j - 1])) {
            scores[j] = scores[j - 1];
            docs[j] = docs[j - 1];
            j--;
        }
        scores[j] = s;
        docs[j] = doc;
    }
    free(touch);
    free(terms);
    if (!scratch) free(acc);
    return n;
}

float tsr_bm25_max_score(const tsr_bm25 *ix, const char *query) {
    int32_t *terms = NULL;
    int m = query_terms(ix, query, &terms);
    double s = 0;
    for (int i = 0; i < m; i++) s += tsr_bm25_idf(ix, ix->post_off[terms[i] + 1] - ix->post_off[terms[i]]) * (ix->k1 + 1.0);
    free(terms);
    return (float)s;
}

float tsr_bm25_score(const tsr_bm25 *ix, const char *query, int32_t doc) {
    TSR_ASSERT(doc >= 0 && doc < ix->n_docs);
    int32_t *terms = NULL;
    int m = query_terms(ix, query, &terms);
    float s = 0.f;
    for (int i = 0; i < m; i++) {
        int64_t a = ix->post_off[terms[i]], e = ix->post_off[terms[i] + 1];
        for (int64_t p = a; p < e; p++)
            if (ix->post_doc[p] == doc) {
                s = add_term(s, term_score(ix, tsr_bm25_idf(ix, e - a), ix->post_tf[p], ix->doc_len[doc]));
                break;
            }
    }
    free(terms);
    return s;
}
