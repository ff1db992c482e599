/* Tests for the ebrm foundation (src/models/ebrm): entities of an item and
 * the leakage rule, QI candidate sets, QE pretraining pairs (train-split
 * keywords only), the soft-logic aggregation (forward against the formula,
 * backward against central differences in double, explanations), the LRU
 * QE cache and cached-vs-uncached bit identity, the QE cross-encoder's
 * logits, loss and gradients against tools/refs/gen_ebrm.py, the full
 * scoring model (QE + soft-logic aggregation + BCE: p, loss, every
 * parameter's gradient) against the same generator, and the
 * trained-model path at the shipped size (bit identity through the cache,
 * the QI loss's gradients against central differences, save/load). Real-catalog checks run
 * when ../shared/data is present. */
#include "testutil.h"
#include "tessera/ebrm.h"
#include "tessera/ops_norm.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static void gz_put(const char *dir, const char *name, const char *s) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    gzFile f = gzopen(p, "wb");
    TSR_ASSERT(f && gzwrite(f, s, (unsigned)strlen(s)) == (int)strlen(s));
    gzclose(f);
}

/* three viewers, a library, an editor */
static bool tiny_catalog(tsr_catalog *cat, char *dir) {
    gz_put(dir, "packages.jsonl.gz",
           "{\"package\": \"zview\", \"section\": \"graphics\", \"priority\": \"optional\", \"summary\": \"PDF "
           "viewer\", \"description\": \"views pdf files\", \"tags\": [\"use::viewing\", \"works-with::pdf\"], "
           "\"provides\": [\"pdf-viewer\"]}\n"
           "{\"package\": \"yview\", \"section\": \"contrib/graphics\", \"priority\": \"optional\", \"summary\": "
           "\"document viewer\", \"description\": \"pdf and ps\", \"tags\": [\"use::viewing\", "
           "\"works-with::pdf\", \"works-with::postscript\"], \"provides\": [\"pdf-viewer\", \"odd\", \"solo\"]}\n"
           "{\"package\": \"libz9\", \"section\": \"libs\", \"priority\": \"optional\", \"summary\": \"z library\", "
           "\"description\": \"\", \"tags\": [\"role::shared-lib\"], \"provides\": [\"odd\"]}\n"
           "{\"package\": \"tedit\", \"section\": \"editors\", \"priority\": \"optional\", \"summary\": \"text "
           "editor\", \"description\": \"edits text\", \"tags\": [\"use::editing\"]}\n"
           "{\"package\": \"xview\", \"section\": \"graphics\", \"priority\": \"optional\", \"summary\": \"image "
           "viewer\", \"description\": \"views png\", \"tags\": [\"use::viewing\", \"works-with::image\"]}\n");
    gz_put(dir, "appstream.jsonl.gz",
           "{\"package\": \"zview\", \"name\": \"Z\", \"keywords\": [\"pdf\", \"reader\"], \"categories\": "
           "[\"Office\", \"TextEditor\"]}\n"
           "{\"package\": \"yview\", \"name\": \"Y\", \"keywords\": [\"PDF\", \"document\"], \"categories\": "
           "[\"Office\"]}\n"
           "{\"package\": \"tedit\", \"name\": \"T\", \"keywords\": [\"editor\"], \"categories\": [\"TextEditor\"]}\n");
    gz_put(dir, "virtual-package-names-list.yaml.gz",
           "virtualPackages:\n - name: pdf-viewer\n   description: a PDF viewer\n");
    tsr_status st = tsr_catalog_load_debian(cat, dir);
    TU_CHECK(st.code == TSR_OK, "tiny catalog: %s", st.msg);
    return st.code == TSR_OK;
}

static bool has_type(const tsr_ebrm_entities *E, const int32_t *e, int n, int type) {
    for (int i = 0; i < n; i++)
        if (E->type[e[i]] == type) return true;
    return false;
}

static void test_entities(const tsr_catalog *cat, tsr_ebrm_entities *E) {
    int32_t z = tsr_catalog_find(cat, "zview"), y = tsr_catalog_find(cat, "yview");
    int32_t pdf = tsr_ebrm_entity_find(E, "works-with::pdf"), sec = tsr_ebrm_entity_find(E, "section::contrib/graphics"),
            te = tsr_ebrm_entity_find(E, "category::TextEditor"), pv = tsr_ebrm_entity_find(E, "provides::pdf-viewer"),
            odd = tsr_ebrm_entity_find(E, "provides::odd");
    TU_CHECK(pdf >= 0 && sec >= 0 && te >= 0 && pv >= 0 && odd >= 0, "entity keys");
    if (pdf < 0 || sec < 0 || te < 0 || pv < 0 || odd < 0) return;
    TU_CHECK(strcmp(E->text[pdf], "works with pdf") == 0 && E->type[pdf] == TSR_EBRM_TAG, "tag text: %s", E->text[pdf]);
    TU_CHECK(strcmp(E->text[sec], "section graphics") == 0, "section text: %s", E->text[sec]);
    TU_CHECK(strcmp(E->text[te], "category text editor") == 0, "category text: %s", E->text[te]);
    TU_CHECK(strcmp(E->text[pv], "provides pdf viewer: a PDF viewer") == 0, "provides text: %s", E->text[pv]);
    TU_CHECK(strcmp(E->text[odd], "provides odd") == 0, "provides without description: %s", E->text[odd]);
    TU_CHECK(tsr_ebrm_entity_find(E, "provides::solo") < 0, "a name one package provides is no entity");
    /* 8 distinct tags/sections/categories/provides ... plus counts per item */
    int32_t e[32];
    int n = tsr_ebrm_item_entities(E, y, TSR_QC_FILE, e, 32);
    TU_CHECK(n == 7, "yview: 3 tags + section + category + 2 provides = %d", n);
    bool sorted = true;
    for (int i = 1; i < n; i++) sorted &= e[i - 1] < e[i];
    TU_CHECK(sorted, "item entities ascending");
    TU_CHECK(tsr_ebrm_item_entities(E, y, TSR_QC_FILE, e, 2) == 7, "count beyond cap");
    /* the leakage rule */
    n = tsr_ebrm_item_entities(E, y, TSR_QC_VIRTUAL, e, 32);
    TU_CHECK(n == 5 && !has_type(E, e, n, TSR_EBRM_PROVIDES), "virtual queries see no provides");
    n = tsr_ebrm_item_entities(E, y, TSR_QC_DEBTAGS, e, 32);
    TU_CHECK(n == 4 && !has_type(E, e, n, TSR_EBRM_TAG) && has_type(E, e, n, TSR_EBRM_PROVIDES),
             "debtags queries see no tags");
    n = tsr_ebrm_item_entities(E, z, TSR_QC_APPSTREAM, e, 32);
    TU_CHECK(n == 6 && has_type(E, e, n, TSR_EBRM_CATEGORY), "appstream queries see everything: %d", n);
    TU_CHECK(tsr_ebrm_hidden_types(TSR_QC_KNOWN_ITEM) == 0 && tsr_ebrm_hidden_types(TSR_QC_FILE) == 0,
             "known-item and file hide nothing");
    for (int c = 0; c < TSR_QC_COUNT; c++)
        TU_CHECK(!(tsr_qc_hidden(c) & TSR_F_TAGS) || (tsr_ebrm_hidden_types(c) & (1u << TSR_EBRM_TAG)),
                 "%s: a field hidden from text is hidden as entity", tsr_qc_names[c]);
}

static void test_qi(const tsr_catalog *cat) {
    tsr_queryset qs = {0};
    TU_CHECK(tsr_queries_build(&qs, cat, TSR_QC_APPSTREAM).code == TSR_OK, "appstream queries");
    TU_CHECK(tsr_queries_build(&qs, cat, TSR_QC_VIRTUAL).code == TSR_OK, "virtual queries");
    tsr_bm25 full, novirt;
    tsr_bm25_build_catalog(&full, cat, TSR_F_ALL, 1.2f, 0.75f);
    tsr_bm25_build_catalog(&novirt, cat, TSR_F_ALL & ~tsr_qc_hidden(TSR_QC_VIRTUAL), 1.2f, 0.75f);
    const tsr_bm25 *ix[TSR_QC_COUNT] = {0};
    ix[TSR_QC_APPSTREAM] = &full;
    ix[TSR_QC_VIRTUAL] = &novirt;
    tsr_ebrm_qiset s;
    TU_CHECK(tsr_ebrm_qi_build(&s, &qs, -1, ix, 3).code == TSR_OK, "qi build");
    TU_CHECK(s.n == qs.n, "one candidate set per query (%d of %d)", s.n, qs.n);
    for (int32_t i = 0; i < s.n; i++) {
        const tsr_query *q = &qs.q[s.q[i].query];
        int32_t d[3];
        float sc[3];
        int n = tsr_bm25_search(ix[q->construction], q->text, 3, d, sc, NULL), pos = 0;
        bool same = n == s.q[i].n;
        for (int j = 0; j < n && same; j++) same = d[j] == s.q[i].cand[j] && sc[j] == s.q[i].bm25[j];
        for (int j = 0; j < s.q[i].n; j++) {
            bool rel = false;
            for (int k = 0; k < q->n_rel; k++) rel |= q->rel[k] == s.q[i].cand[j];
            TU_CHECK(rel == (s.q[i].label[j] == 1), "%s: label of candidate %d", q->text, j);
            pos += rel;
        }
        TU_CHECK(same && pos == s.q[i].n_pos, "%s: candidates are the BM25 top-3", q->text);
        /* the lexical match: BM25 / the query's maximum, in [0, 1) */
        float lex[3];
        tsr_ebrm_lex(ix[q->construction], q->text, s.q[i].cand, NULL, s.q[i].n, lex);
        bool in01 = s.q[i].bm25_max == tsr_bm25_max_score(ix[q->construction], q->text);
        for (int j = 0; j < s.q[i].n; j++)
            in01 &= s.q[i].bm25[j] < s.q[i].bm25_max && lex[j] > 0 && lex[j] < 1 &&
                    fabsf(lex[j] - s.q[i].bm25[j] / s.q[i].bm25_max) < 1e-5f;
        TU_CHECK(in01, "%s: lexical match in (0, 1), bm25 < max score", q->text);
        /* score, explain and /v1/relevance compute BM25 per item (lex with
         * bm25 NULL); eval, rank and bench reuse the first stage's: the
         * same bits either way */
        float given[3];
        tsr_ebrm_lex(ix[q->construction], q->text, s.q[i].cand, s.q[i].bm25, s.q[i].n, given);
        bool bits = memcmp(lex, given, (size_t)s.q[i].n * sizeof *lex) == 0;
        for (int j = 0; j < s.q[i].n; j++) {
            float one = tsr_bm25_score(ix[q->construction], q->text, s.q[i].cand[j]);
            bits &= memcmp(&one, &s.q[i].bm25[j], sizeof one) == 0;
        }
        TU_CHECK(bits, "%s: per-item BM25 and lex differ from the first stage's in their bits", q->text);
    }
    tsr_ebrm_qiset_free(&s);
    tsr_ebrm_qiset v;
    TU_CHECK(tsr_ebrm_qi_build(&v, &qs, TSR_SPLIT_VALID, ix, 3).code == TSR_OK, "qi valid");
    for (int32_t i = 0; i < v.n; i++) TU_CHECK(qs.q[v.q[i].query].split == TSR_SPLIT_VALID, "split filter");
    tsr_ebrm_qiset_free(&v);
    ix[TSR_QC_VIRTUAL] = NULL;
    tsr_status st = tsr_ebrm_qi_build(&v, &qs, -1, ix, 3);
    TU_CHECK(st.code != TSR_OK && strstr(st.msg, "virtual"), "missing index named: %s", st.msg);
    tsr_ebrm_qiset_free(&v);
    tsr_bm25_free(&full);
    tsr_bm25_free(&novirt);
    tsr_queryset_free(&qs);
}

static void check_pairs(const tsr_catalog *cat, const tsr_ebrm_entities *E, const tsr_ebrm_qe_data *d, int target) {
    int bad_split = 0, bad_target = 0, bad_prov = 0;
    for (int32_t q = 0; q < d->n_queries; q++) bad_split += tsr_query_split(d->queries[q]) != TSR_SPLIT_TRAIN;
    for (int64_t i = 0; i < d->n; i++) {
        const tsr_ebrm_qe_pair *p = &d->pairs[i];
        bad_prov += E->type[p->entity] == TSR_EBRM_PROVIDES;
        /* recount the target from the catalog */
        int np = 0, with = 0, listing = 0, base_with = 0;
        for (int32_t it = 0; it < cat->n_items; it++) {
            bool lists = false, holds = false;
            for (int k = 0; k < cat->items[it].n_keywords; k++) lists |= strcmp(cat->items[it].keywords[k], d->queries[p->query]) == 0;
            for (int64_t s = E->item_off[it]; s < E->item_off[it + 1]; s++) holds |= E->item_ent[s] == p->entity;
            listing += cat->items[it].n_keywords > 0;
            base_with += cat->items[it].n_keywords > 0 && holds;
            if (!lists) continue;
            np++;
            with += holds;
        }
        double share = np ? (double)with / (double)np : 0, b = (double)base_with / (double)listing;
        double y = target == TSR_EBRM_QE_LIFT ? (b < 1 && share > b ? (share - b) / (1 - b) : 0) : share;
        bad_target += np == 0 || p->target != (float)y;
        if (i > 200) break; /* the recount is O(items): a sample on large data */
    }
    TU_CHECK(bad_split == 0 && bad_target == 0 && bad_prov == 0,
             "QE pairs (%s): %d non-train queries, %d wrong targets, %d provides entities",
             target == TSR_EBRM_QE_LIFT ? "lift" : "share", bad_split, bad_target, bad_prov);
}

static void test_qe_pairs(const tsr_catalog *cat, const tsr_ebrm_entities *E) {
    tsr_ebrm_qe_data d, d2;
    TU_CHECK(tsr_ebrm_qe_pairs(&d, cat, E, 1, 7).code == TSR_OK, "qe pairs");
    TU_CHECK(tsr_ebrm_qe_pairs(&d2, cat, E, 1, 7).code == TSR_OK, "qe pairs again");
    TU_CHECK(d.n == d2.n && d.n_queries == d2.n_queries &&
                 (d.n == 0 || memcmp(d.pairs, d2.pairs, (size_t)d.n * sizeof *d.pairs) == 0),
             "deterministic for a seed");
    /* which tiny keywords are in the train split decides what exists */
    const char *kw[] = {"pdf", "reader", "document", "editor"};
    int expect_q = 0;
    for (int i = 0; i < 4; i++) expect_q += tsr_query_split(kw[i]) == TSR_SPLIT_TRAIN;
    TU_CHECK(d.n_queries == expect_q, "train keywords: %d, expected %d", d.n_queries, expect_q);
    check_pairs(cat, E, &d, TSR_EBRM_QE_SHARE);
    /* lift: the same pairs, the targets corrected for the base rate */
    tsr_ebrm_qe_data dl;
    TU_CHECK(tsr_ebrm_qe_pairs_ex(&dl, cat, E, 1, 7, false, TSR_EBRM_QE_LIFT).code == TSR_OK, "qe pairs (lift)");
    bool same = dl.n == d.n, lower = true;
    for (int64_t i = 0; same && i < d.n; i++) {
        same = dl.pairs[i].query == d.pairs[i].query && dl.pairs[i].entity == d.pairs[i].entity;
        lower &= dl.pairs[i].target <= d.pairs[i].target;
    }
    TU_CHECK(same && lower, "lift pairs are the share pairs with lower targets");
    check_pairs(cat, E, &dl, TSR_EBRM_QE_LIFT);
    tsr_ebrm_qe_data_free(&dl);
    tsr_ebrm_qe_data_free(&d);
    tsr_ebrm_qe_data_free(&d2);
}

/* ------------------------------------------------------------ aggregation */

static double agg_ref(const float *r, const float *c, const uint8_t *t, int m, const double *th) {
    double leak = 1 / (1 + exp(-th[0])), q = 1, k = 1;
    for (int j = 0; j < m; j++) {
        q *= 1 - r[j] / (1 + exp(-th[1 + t[j]]));
        k *= 1 - c[j] / (1 + exp(-th[1 + TSR_EBRM_TYPES + t[j]]));
    }
    return (1 - (1 - leak) * q) * k;
}

static void test_agg(void) {
    enum { N = 5, S = 17 };
    int64_t off[N + 1] = {0, 4, 4, 9, 10, 17}; /* item 1 has no entity */
    float r[S], c[S], theta[TSR_EBRM_THETA], dp[N];
    uint8_t t[S];
    tsr_rng g;
    tsr_rng_seed(&g, 3);
    for (int j = 0; j < S; j++) {
        r[j] = tsr_rng_uniform(&g);
        c[j] = 0.3f * tsr_rng_uniform(&g);
        t[j] = (uint8_t)tsr_rng_below(&g, TSR_EBRM_TYPES);
    }
    r[5] = 1.0f; /* a sure match: the division-free backward must cope */
    c[12] = 1.0f;
    for (int k = 0; k < TSR_EBRM_THETA; k++) theta[k] = tsr_rng_normal(&g);
    for (int i = 0; i < N; i++) dp[i] = tsr_rng_normal(&g);
    float p[N];
    tsr_ebrm_agg_forward(p, r, c, t, off, N, theta);
    double thd[TSR_EBRM_THETA];
    for (int k = 0; k < TSR_EBRM_THETA; k++) thd[k] = theta[k];
    for (int i = 0; i < N; i++) {
        double want = agg_ref(r + off[i], c + off[i], t + off[i], (int)(off[i + 1] - off[i]), thd);
        TU_CHECK(fabs(p[i] - want) < 1e-6, "item %d: p %g want %g", i, p[i], want);
    }
    TU_CHECK(fabsf(p[1] - 1 / (1 + expf(-theta[0]))) < 1e-6f, "no entity: p = leak");
    /* a sure contradiction caps the item at 1 - v[t] */
    TU_CHECK(p[4] <= 1 - 1 / (1 + exp(-thd[1 + TSR_EBRM_TYPES + t[12]])) + 1e-7, "veto caps p: %g", p[4]);
    float dr[S], dc[S], dth[TSR_EBRM_THETA] = {0};
    tsr_ebrm_agg_backward(dr, dc, dth, dp, r, c, t, off, N, theta);
    /* central differences of L = sum dp * p, in double */
    double eps = 1e-4, worst = 0;
    for (int j = 0; j < 2 * S + TSR_EBRM_THETA; j++) {
        double th2[TSR_EBRM_THETA], L[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            memcpy(th2, thd, sizeof th2);
            double h = sgn ? -eps : eps, dv[S], cv[S];
            for (int s = 0; s < S; s++) dv[s] = r[s], cv[s] = c[s];
            if (j < S) dv[j] += h;
            else if (j < 2 * S) cv[j - S] += h;
            else th2[j - 2 * S] += h;
            L[sgn] = 0;
            for (int i = 0; i < N; i++) {
                double leak = 1 / (1 + exp(-th2[0])), q = 1, k = 1;
                for (int64_t s = off[i]; s < off[i + 1]; s++) {
                    q *= 1 - dv[s] / (1 + exp(-th2[1 + t[s]]));
                    k *= 1 - cv[s] / (1 + exp(-th2[1 + TSR_EBRM_TYPES + t[s]]));
                }
                L[sgn] += dp[i] * (1 - (1 - leak) * q) * k;
            }
        }
        double num = (L[0] - L[1]) / (2 * eps);
        double ana = j < S ? dr[j] : j < 2 * S ? dc[j - S] : dth[j - 2 * S];
        double err = fabs(num - ana) / (1e-4 + fabs(num));
        if (err > worst) worst = err;
        TU_CHECK(fabs(num - ana) <= 1e-5 + 1e-4 * fabs(num), "grad %d: analytic %g numeric %g", j, ana, num);
    }
    printf("aggregation: worst relative gradient error %.2e\n", worst);
    /* dtheta accumulates */
    float dth2[TSR_EBRM_THETA];
    memcpy(dth2, dth, sizeof dth);
    tsr_ebrm_agg_backward(dr, dc, dth2, dp, r, c, t, off, N, theta);
    bool twice = true;
    for (int k = 0; k < TSR_EBRM_THETA; k++) twice &= fabsf(dth2[k] - 2 * dth[k]) <= 1e-6f * (1 + fabsf(dth[k]));
    TU_CHECK(twice, "dtheta adds");
    /* the "mean" ablation: p = mean of r over the item's entities (leak if none),
     * its backward against central differences of L = sum dp * p */
    float pm[N], dmr[S], dmth[TSR_EBRM_THETA] = {0};
    tsr_ebrm_mean_forward(pm, r, off, N, theta);
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int64_t j = off[i]; j < off[i + 1]; j++) s += r[j];
        double want = off[i + 1] > off[i] ? s / (double)(off[i + 1] - off[i]) : 1 / (1 + exp(-thd[0]));
        TU_CHECK(fabs(pm[i] - want) < 1e-6, "mean item %d: p %g want %g", i, pm[i], want);
    }
    tsr_ebrm_mean_backward(dmr, dmth, dp, off, N, theta);
    for (int j = 0; j < S + 1; j++) {
        double L[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            double h = sgn ? -eps : eps, rv[S], th0 = thd[0] + (j == S ? h : 0);
            for (int s = 0; s < S; s++) rv[s] = r[s] + (s == j ? h : 0);
            L[sgn] = 0;
            for (int i = 0; i < N; i++) {
                double s = 0;
                for (int64_t q = off[i]; q < off[i + 1]; q++) s += rv[q];
                L[sgn] += dp[i] * (off[i + 1] > off[i] ? s / (double)(off[i + 1] - off[i]) : 1 / (1 + exp(-th0)));
            }
        }
        double num = (L[0] - L[1]) / (2 * eps), ana = j < S ? dmr[j] : dmth[0];
        TU_CHECK(fabs(num - ana) <= 1e-5 + 1e-4 * fabs(num), "mean grad %d: analytic %g numeric %g", j, ana, num);
    }
    /* explanation: support >= 0, veto >= 0; a lone entity's support is p - leak*K */
    float sup[8], veto[8];
    tsr_ebrm_agg_explain(sup, veto, r + off[2], c + off[2], t + off[2], 5, theta);
    bool nonneg = true;
    for (int j = 0; j < 5; j++) nonneg &= sup[j] >= 0 && veto[j] >= -1e-7f;
    TU_CHECK(nonneg, "support and veto non-negative");
    float p1;
    int64_t off1[2] = {0, 1};
    tsr_ebrm_agg_forward(&p1, r, c, t, off1, 1, theta);
    tsr_ebrm_agg_explain(sup, veto, r, c, t, 1, theta);
    double leak = 1 / (1 + exp(-thd[0])), K = 1 - c[0] / (1 + exp(-thd[1 + TSR_EBRM_TYPES + t[0]]));
    TU_CHECK(fabs(sup[0] - (p1 - leak * K)) < 1e-6 && fabs(veto[0] - (p1 / K - p1)) < 1e-6,
             "one entity: support %g veto %g", sup[0], veto[0]);
}

/* ------------------------------------------------------------------ cache */

typedef struct {
    int calls;
    int64_t pairs;
} fake_qe;

/* a deterministic stand-in for the cross-encoder: depends on (query, entity) only */
static tsr_status fake_score(void *ud, const char *query, const int32_t *ent, int n, float *r, float *c) {
    fake_qe *f = ud;
    f->calls++;
    f->pairs += n;
    uint64_t h = tsr_str_hash(query);
    for (int i = 0; i < n; i++) {
        uint64_t x = (h ^ (uint64_t)ent[i] * 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
        r[i] = (float)((x >> 40) & 0xffff) / 65536.0f;
        c[i] = (float)((x >> 8) & 0xffff) / 262144.0f;
    }
    return tsr_ok();
}

static void test_cache_lru(void) {
    tsr_ebrm_cache k;
    tsr_ebrm_cache_init(&k, 2);
    float r, c;
    TU_CHECK(!tsr_ebrm_cache_get(&k, "q", 1, &r, &c) && tsr_ebrm_cache_hit_rate(&k) == 0, "empty");
    tsr_ebrm_cache_put(&k, "q", 1, 0.1f, 0.2f);
    tsr_ebrm_cache_put(&k, "q", 2, 0.3f, 0.4f);
    TU_CHECK(tsr_ebrm_cache_get(&k, "q", 1, &r, &c) && r == 0.1f && c == 0.2f, "hit");
    tsr_ebrm_cache_put(&k, "p", 1, 0.5f, 0.6f); /* evicts (q,2), the least recent */
    TU_CHECK(!tsr_ebrm_cache_get(&k, "q", 2, &r, &c), "LRU evicted");
    TU_CHECK(tsr_ebrm_cache_get(&k, "q", 1, &r, &c) && tsr_ebrm_cache_get(&k, "p", 1, &r, &c) && r == 0.5f,
             "others kept, query is part of the key");
    tsr_ebrm_cache_put(&k, "p", 1, 0.7f, 0.8f);
    TU_CHECK(tsr_ebrm_cache_get(&k, "p", 1, &r, &c) && r == 0.7f && k.n == 2, "overwrite in place");
    TU_CHECK(fabs(tsr_ebrm_cache_hit_rate(&k) - 4.0 / 6.0) < 1e-12, "hit rate %g", tsr_ebrm_cache_hit_rate(&k));
    tsr_ebrm_cache_free(&k);
    /* churn: many keys through a small cache keep the list and chains consistent */
    tsr_ebrm_cache_init(&k, 7);
    for (int i = 0; i < 500; i++) {
        char q[16];
        snprintf(q, sizeof q, "q%d", i % 13);
        if (!tsr_ebrm_cache_get(&k, q, i % 5, &r, &c)) tsr_ebrm_cache_put(&k, q, i % 5, (float)i, 0);
    }
    int len = 0;
    for (int32_t s = k.head; s >= 0 && len < 100; s = k.slot[s].next) len++;
    TU_CHECK(k.n == 7 && len == 7, "after churn: %d entries, list %d", k.n, len);
    tsr_ebrm_cache_free(&k);
}

static void test_cache_scores(const tsr_ebrm_entities *E, int32_t n_items) {
    int32_t items[64];
    int n = 0;
    for (int32_t i = 0; i < n_items && n < 64; i++) items[n++] = i;
    for (int32_t i = 0; i < n_items && n < 64; i++) items[n++] = n_items - 1 - i; /* repeats */
    float theta[TSR_EBRM_THETA];
    for (int k = 0; k < TSR_EBRM_THETA; k++) theta[k] = 0.1f * (float)(k - 4);
    float p0[64], p1[64], p2[64];
    fake_qe f0 = {0}, f1 = {0};
    const char *qs[] = {"pdf viewer", "text editor", "pdf viewer"};
    tsr_ebrm_cache k;
    tsr_ebrm_cache_init(&k, 5); /* smaller than one query's distinct entities: evictions */
    tsr_ebrm_cache big;
    tsr_ebrm_cache_init(&big, 4096);
    for (int round = 0; round < 3; round++) {
        for (int c = 0; c < TSR_QC_COUNT; c++) {
            if (c == TSR_QC_MOVIELENS) continue;
            TU_CHECK(tsr_ebrm_score_items(p0, E, items, n, c, qs[round], fake_score, &f0, NULL, theta).code == TSR_OK,
                     "uncached");
            TU_CHECK(tsr_ebrm_score_items(p1, E, items, n, c, qs[round], fake_score, &f1, &k, theta).code == TSR_OK,
                     "small cache");
            TU_CHECK(tsr_ebrm_score_items(p2, E, items, n, c, qs[round], fake_score, &f1, &big, theta).code == TSR_OK,
                     "big cache");
            TU_CHECK(memcmp(p0, p1, (size_t)n * 4) == 0 && memcmp(p0, p2, (size_t)n * 4) == 0,
                     "%s / %s: cached and uncached scores bit-identical", qs[round], tsr_qc_names[c]);
        }
    }
    /* warm: the third round repeats the first query; the big cache holds everything */
    int calls = f1.calls;
    tsr_ebrm_score_items(p2, E, items, n, TSR_QC_FILE, "pdf viewer", fake_score, &f1, &big, theta);
    TU_CHECK(f1.calls == calls, "warm cache: no QE call (%d)", f1.calls - calls);
    TU_CHECK(tsr_ebrm_cache_hit_rate(&big) > 0.5 && f1.pairs < f0.pairs,
             "hit rate %.3f, QE pairs %lld cached vs %lld uncached", tsr_ebrm_cache_hit_rate(&big),
             (long long)f1.pairs, (long long)f0.pairs);
    tsr_ebrm_cache_free(&k);
    tsr_ebrm_cache_free(&big);
}

/* ---------------------------------------------------------- cross-encoder */

static void test_qe_model(void) {
    tref *r = tref_load("tests/refs/ebrm.tref");
    tsr_benc_cfg cfg = {.dim = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = 24,
                        .vocab = 30, .max_seq = 8, .eff_hidden = 0};
    tsr_ebrm_qe m;
    tsr_status st = tsr_ebrm_qe_init(&m, &cfg);
    TU_CHECK(st.code == TSR_OK, "qe init: %s", st.msg);
    if (st.code != TSR_OK) return;
    int n_w = tu_ref_load_params(r, &m.params, "w.", NULL), n_ref = 0;
    for (int i = 0; i < r->n; i++) n_ref += strncmp(r->e[i].name, "w.", 2) == 0;
    TU_CHECK(n_w == n_ref && n_w == m.params.n, "%d params, reference has %d", m.params.n, n_ref);
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    c.grad_enabled = true;
    const tref_entry *te = tref_get(r, "tokens");
    tsr_tensor *tok = tsr_new(&c, TSR_I32, te->ndim, te->shape);
    memcpy(tok->data, te->data, 4 * (size_t)te->numel);
    const int32_t *lens = (const int32_t *)tref_get(r, "lens")->data;
    tsr_tensor *tgt = tref_tensor(&c, r, "targets", false);
    tsr_tensor *lg = tsr_ebrm_qe_logits(&c, &m, tok, lens);
    tsr_tensor *loss = tsr_bce_with_logits(&c, lg, tgt, NULL, 1.f, 1.f);
    tu_close_ref(r, "logits", tsr_f32(lg), lg->numel, 1e-5, 1e-4);
    tu_close_ref(r, "loss", tsr_f32(loss), 1, 1e-5, 1e-5);
    tsr_params_zero_grad(&m.params);
    tsr_backward(&c, loss);
    tu_close_ref_grads(r, &m.params, "grad.", 1e-5, 1e-4);
    /* a pair's logits do not depend on the other rows of its batch (the
     * cache's bit identity needs it): row 2 alone is bit-identical to row 2
     * in the batch (at this size; larger matmuls are checked with the model) */
    tsr_ctx_reset(&c);
    c.grad_enabled = false;
    c.be = &tsr_backend_cpu_fixed;
    tsr_tensor *one = tsr_new(&c, TSR_I32, TSR_DIMS(1, 7));
    memcpy(one->data, (const int32_t *)te->data + 2 * 7, 7 * 4);
    tsr_tensor *l1 = tsr_ebrm_qe_logits(&c, &m, one, lens + 2);
    tok = tsr_new(&c, TSR_I32, te->ndim, te->shape);
    memcpy(tok->data, te->data, 4 * (size_t)te->numel);
    tsr_tensor *l4 = tsr_ebrm_qe_logits(&c, &m, tok, lens);
    TU_CHECK(tsr_f32(l1)[0] == tsr_f32(l4)[4] && tsr_f32(l1)[1] == tsr_f32(l4)[5],
             "row alone vs in batch: %g %g", tsr_f32(l1)[0], tsr_f32(l4)[4]);
    tsr_benc_cfg bad = cfg;
    bad.eff_hidden = 4;
    tsr_ebrm_qe m2;
    TU_CHECK(tsr_ebrm_qe_init(&m2, &bad).code == TSR_ERR_ARG, "eff_hidden refused");
    tsr_ctx_free(&c);
    tsr_ebrm_qe_free(&m);
    tref_free(r);
}


/* The full scoring model against PyTorch (tools/refs/gen_ebrm.py, the
 * "full.*" entries): the QE encoder on 6 (query, entity) pairs, then
 * tsr_ebrm_qi_agg_loss (sigmoids, soft-logic aggregation over 5 items, one
 * of them without entities, BCE); p, the loss and the gradient of every
 * parameter (encoder, head and agg.theta) as PyTorch has them; the same
 * for the "mean" aggregation ablation ("mean.*"). */
static void test_full_model(int agg) {
    const char *pre = agg == TSR_EBRM_AGG_MEAN ? "mean" : "full";
    tref *r = tref_load("tests/refs/ebrm.tref");
    tsr_benc_cfg cfg = {.dim = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = 24,
                        .vocab = 30, .max_seq = TSR_EBRM_TQ + 1 + TSR_EBRM_TI, .eff_hidden = 0};
    tsr_ebrm_model m;
    tsr_status st = tsr_ebrm_model_init(&m, &cfg, TSR_EBRM_KIND_EBRM, agg);
    TU_CHECK(st.code == TSR_OK, "model init: %s", st.msg);
    if (st.code != TSR_OK) return;
    TU_CHECK(m.sep == 29, "separator %d", m.sep);
    char name[300];
    int n_w = tu_ref_load_params(r, &m.qe.params, "w.", m.theta);
    const tref_entry *th = tref_get(r, "full.theta"); /* both aggregations */
    TU_CHECK(th->numel == m.theta->numel, "theta size %lld", (long long)th->numel);
    if (th->numel == m.theta->numel) memcpy(m.theta->data, th->data, 4 * (size_t)th->numel), n_w++;
    TU_CHECK(n_w == m.qe.params.n, "%d of %d parameters loaded", n_w, m.qe.params.n);
    const tref_entry *te = tref_get(r, "full.tokens"), *po = tref_get(r, "full.pair_of"), *ty = tref_get(r, "full.type"),
                     *of = tref_get(r, "full.off"), *ye = tref_get(r, "full.y");
    const int np = (int)te->shape[0], ni = (int)ye->numel, ns = (int)po->numel;
    int64_t off[8];
    uint8_t type[16], y[8];
    TSR_ASSERT(ni < 8 && ns <= 16 && of->numel == ni + 1);
    for (int i = 0; i <= ni; i++) off[i] = ((const int32_t *)of->data)[i];
    for (int j = 0; j < ns; j++) type[j] = (uint8_t)((const int32_t *)ty->data)[j];
    for (int i = 0; i < ni; i++) y[i] = (uint8_t)((const int32_t *)ye->data)[i];
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    c.grad_enabled = true;
    tsr_tensor *tok = tsr_new(&c, TSR_I32, te->ndim, te->shape);
    memcpy(tok->data, te->data, 4 * (size_t)te->numel);
    tsr_params_zero_grad(&m.qe.params);
    tsr_tensor *lg = tsr_ebrm_qe_logits(&c, &m.qe, tok, (const int32_t *)tref_get(r, "full.lens")->data);
    float p[8], loss;
    loss = tsr_ebrm_qi_agg_loss(&c, &m, lg, np, (const int32_t *)po->data, type, off, ni, y, NULL, 0.f, true, p);
    tu_close_ref(r, "full.logits", tsr_f32(lg), lg->numel, 1e-5, 1e-4);
    snprintf(name, sizeof name, "%s.p", pre);
    tu_close_ref(r, name, p, ni, 1e-5, 1e-4);
    snprintf(name, sizeof name, "%s.loss", pre);
    tu_close_ref(r, name, &loss, 1, 1e-5, 1e-4);
    snprintf(name, sizeof name, "%s.grad.", pre);
    tu_close_ref_grads(r, &m.qe.params, name, 1e-5, 1e-4);
    printf("full model (%s) vs PyTorch: %d pairs, %d items, loss %.5f, %d parameter gradients\n",
           agg == TSR_EBRM_AGG_MEAN ? "mean" : "softlogic", np, ni, loss, m.qe.params.n);
    tsr_ctx_free(&c);
    tsr_ebrm_model_free(&m);
    tref_free(r);
}

/* ------------------------------------------------- the model, real size */

/* The trained-model path at the shipped size on the tiny catalog: QE
 * scores of a pair alone and inside any block are bit-identical, so
 * cached and uncached p(QI) are too; the QI loss (QE model -> sigmoid ->
 * aggregation -> BCE, backward entering the tape at the logits) against
 * central differences; save/load round trip; a corrupt file refused. */
static void test_model(const tsr_catalog *cat, const tsr_ebrm_entities *E) {
    const char *texts[64];
    size_t lens[64];
    int nt = 0;
    for (int32_t e = 0; e < E->n && nt < 60; e++) texts[nt] = E->text[e], lens[nt] = strlen(E->text[e]), nt++;
    const char *extra[] = {"pdf viewer", "text editor", "document reader", "image viewer"};
    for (int i = 0; i < 4; i++) texts[nt] = extra[i], lens[nt] = strlen(extra[i]), nt++;
    const char *specials[] = {"<pad>"};
    tsr_bpe_train_opts bo = {.vocab_size = 300, .specials = specials, .n_specials = 1, .min_count = 1};
    tsr_bpe bpe;
    TU_CHECK(tsr_bpe_train_texts(&bpe, texts, lens, nt, &bo).code == TSR_OK, "bpe");
    tsr_benc_cfg cfg = {.dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 4, .hidden_dim = 128,
                        .vocab = bpe.vocab_size + 1, .max_seq = 80};
    tsr_ebrm_model m;
    tsr_status st = tsr_ebrm_model_init(&m, &cfg, TSR_EBRM_KIND_EBRM, TSR_EBRM_AGG_SOFTLOGIC);
    TU_CHECK(st.code == TSR_OK, "model init: %s", st.msg);
    if (st.code != TSR_OK) return;
    tsr_ebrm_model_init_weights(&m, 5);
    /* larger weights than at init so that scores spread */
    for (int k = 0; k < m.qe.params.n; k++) {
        tsr_tensor *t = m.qe.params.items[k];
        if (t == m.theta) continue;
        tsr_rng rg;
        tsr_rng_seed(&rg, 100 + (uint64_t)k);
        for (int64_t i = 0; i < t->numel; i++) tsr_f32(t)[i] += 0.2f * tsr_rng_normal(&rg);
    }
    m.bpe = bpe;
    m.have_bpe = true;
    tsr_ebrm_model_prepare(&m, E);
    /* a pair alone vs in a block with every other entity */
    int32_t all[64], one;
    float ra[64], ca[64], r1, c1;
    int ne = E->n < 64 ? E->n : 64;
    for (int i = 0; i < ne; i++) all[i] = i;
    TU_CHECK(tsr_ebrm_model_qe(&m, "pdf viewer", all, ne, ra, ca).code == TSR_OK, "qe block");
    bool same = true;
    for (int i = 0; i < ne; i++) {
        one = i;
        tsr_ebrm_model_qe(&m, "pdf viewer", &one, 1, &r1, &c1);
        same &= memcmp(&r1, &ra[i], 4) == 0 && memcmp(&c1, &ca[i], 4) == 0;
    }
    TU_CHECK(same, "QE score of a pair alone == inside a block, bit for bit");
    float spread = 0;
    for (int i = 1; i < ne; i++) spread = fmaxf(spread, fabsf(ra[i] - ra[0]));
    TU_CHECK(spread > 1e-3f, "QE scores differ between entities (%g)", spread);
    /* cached vs uncached p(QI), every construction */
    int32_t items[16];
    float lexv[16]; /* lexical matches (used once the model has the text cause) */
    int n = 0;
    for (int32_t i = 0; i < cat->n_items; i++) items[n++] = i;
    for (int32_t i = 0; i < cat->n_items; i++) items[n++] = i;
    for (int i = 0; i < n; i++) lexv[i] = 0.1f * (float)(i % 8);
    tsr_ebrm_cache small, big;
    tsr_ebrm_cache_init(&small, 3);
    tsr_ebrm_cache_init(&big, 1024);
    float p0[16], p1[16], p2[16];
    for (int round = 0; round < 2; round++)
        for (int c = 0; c < TSR_QC_COUNT; c++) {
            if (c == TSR_QC_MOVIELENS) continue;
            tsr_ebrm_model_score(&m, cat, E, "pdf viewer", c, items, n, NULL, NULL, lexv, p0);
            tsr_ebrm_model_score(&m, cat, E, "pdf viewer", c, items, n, &small, NULL, lexv, p1);
            tsr_ebrm_model_score(&m, cat, E, "pdf viewer", c, items, n, &big, NULL, lexv, p2);
            TU_CHECK(!memcmp(p0, p1, (size_t)n * 4) && !memcmp(p0, p2, (size_t)n * 4),
                     "model: cached == uncached bit for bit (%s, round %d)", tsr_qc_names[c], round);
        }
    TU_CHECK(tsr_ebrm_cache_hit_rate(&big) > 0.5, "warm hit rate %.3f", tsr_ebrm_cache_hit_rate(&big));
    /* an override changes the score and never enters the cache */
    int32_t pdf = tsr_ebrm_entity_find(E, "works-with::pdf");
    float one_r = 1.f;
    tsr_ebrm_setqe set = {1, &pdf, &one_r};
    float ps[16];
    tsr_ebrm_model_score(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, &big, &set, lexv, ps);
    int32_t z = tsr_catalog_find(cat, "zview");
    TU_CHECK(ps[z] > p0[z], "--set-qe works-with::pdf=1 raises zview: %g -> %g", p0[z], ps[z]);
    tsr_ebrm_model_score(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, &big, NULL, lexv, p1);
    TU_CHECK(!memcmp(p0, p1, (size_t)n * 4), "the override did not leak into the cache");
    tsr_ebrm_cache_free(&small);
    tsr_ebrm_cache_free(&big);

    /* QI loss gradient vs central differences */
    tsr_queryset qs = {0};
    int32_t rel_pdf[2] = {tsr_catalog_find(cat, "yview"), z};
    if (rel_pdf[0] > rel_pdf[1]) { int32_t x = rel_pdf[0]; rel_pdf[0] = rel_pdf[1]; rel_pdf[1] = x; }
    int32_t rel_ed = tsr_catalog_find(cat, "tedit");
    tsr_queryset_add(&qs, "pdf viewer", -1, rel_pdf, 2, TSR_QC_APPSTREAM, TSR_SPLIT_TRAIN);
    tsr_queryset_add(&qs, "text editor", -1, &rel_ed, 1, TSR_QC_DEBTAGS, TSR_SPLIT_TRAIN);
    tsr_bm25 ix[2];
    tsr_bm25_build_catalog(&ix[0], cat, TSR_F_ALL, 1.2f, 0.4f);
    tsr_bm25_build_catalog(&ix[1], cat, TSR_F_ALL & ~TSR_F_TAGS, 1.2f, 0.4f);
    const tsr_bm25 *ixs[TSR_QC_COUNT] = {0};
    ixs[TSR_QC_APPSTREAM] = &ix[0];
    ixs[TSR_QC_DEBTAGS] = &ix[1];
    tsr_ebrm_qiset tr;
    TU_CHECK(tsr_ebrm_qi_build(&tr, &qs, TSR_SPLIT_TRAIN, ixs, 5).code == TSR_OK, "qi build");
    tsr_ebrm_qi_train qt = {.cat = cat, .E = E, .qs = &qs, .tr = &tr, .va = &tr, .batch = 2, .n_neg = 2};
    int32_t qids[2] = {0, 1};
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 22);
    c.grad_enabled = true;
    float *th = tsr_f32(m.theta);
    for (int k = 0; k < TSR_EBRM_THETA; k++) th[k] = 0.3f * (float)(k % 5) - 0.6f;
    /* pass 0: the QI loss; pass 1: plus the auxiliary QE loss on a few pairs */
    char *aux_q[2] = {"a pdf viewer", "an editor of text"};
    tsr_ebrm_qe_pair aux_p[4] = {{0, 0, 1.f}, {0, 1, 0.f}, {1, 2, 0.5f}, {1, 0, 0.25f}};
    tsr_ebrm_qe_data aux = {.queries = aux_q, .n_queries = 2, .pairs = aux_p, .n = 4};
    float loss_plain = NAN;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) qt.aux = &aux, qt.aux_weight = 0.5f, qt.aux_batch = 3;
        tsr_ctx_reset(&c);
        tsr_params_zero_grad(&m.qe.params);
        float loss;
        tsr_rng_seed(&c.rng, 9);
        tsr_ebrm_qi_loss(&c, &m, &qt, qids, 2, true, &loss);
        /* theta, the head and one weight of the first block */
        tsr_tensor *chk[3] = {m.theta, tsr_params_find(&m.qe.params, "head.weight"), NULL};
        for (int k = 0; k < m.qe.params.n && !chk[2]; k++)
            if (strstr(m.qe.params.items[k]->name, "layers.0") && m.qe.params.items[k]->ndim == 2) chk[2] = m.qe.params.items[k];
        int bad = 0, checked = 0;
        double worst = 0;
        for (int t = 0; t < 3; t++) {
            if (!chk[t]) continue;
            for (int64_t i = 0; i < chk[t]->numel && i < 9; i++) {
                float *w = tsr_f32(chk[t]) + i, keep = *w, lp, lm;
                const float h = 1e-2f;
                *w = keep + h;
                tsr_ctx_reset(&c);
                tsr_rng_seed(&c.rng, 9);
                tsr_ebrm_qi_loss(&c, &m, &qt, qids, 2, false, &lp);
                *w = keep - h;
                tsr_ctx_reset(&c);
                tsr_rng_seed(&c.rng, 9);
                tsr_ebrm_qi_loss(&c, &m, &qt, qids, 2, false, &lm);
                *w = keep;
                double fd = ((double)lp - (double)lm) / (2 * h), an = chk[t]->grad[i];
                double err = fabs(fd - an) / (1e-3 + fabs(fd));
                worst = err > worst ? err : worst;
                bad += err > 3e-2;
                checked++;
            }
        }
        printf("QI loss%s %.5f: %d gradients vs central differences, worst relative error %.2e\n",
               pass ? " + auxiliary QE loss" : "", loss, checked, worst);
        TU_CHECK(bad == 0 && checked >= 20, "QI loss%s gradients: %d of %d off", pass ? " + aux" : "", bad, checked);
        if (pass == 0) loss_plain = loss;
        else TU_CHECK(loss > loss_plain, "the auxiliary loss adds to the QI loss: %g vs %g", loss, loss_plain);
    }
    qt.aux = NULL;

    tsr_ctx_free(&c);
    /* late fusion: p' = sigmoid(logit(p) + alpha lex); cached == uncached;
     * alpha = 0 is the soft-logic score; a larger lex raises p'; no lex is an
     * error; a fused model is not trained further */
    float pf[16];
    tsr_ebrm_model_score(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, NULL, NULL, NULL, p0);
    TU_CHECK(tsr_ebrm_model_set_agg(&m, TSR_EBRM_AGG_FUSE, -1.f).code != TSR_OK, "negative fusion weight refused");
    TU_CHECK(tsr_ebrm_model_set_agg(&m, TSR_EBRM_AGG_FUSE, 0.f).code == TSR_OK && m.fuse, "fuse");
    TU_CHECK(tsr_ebrm_model_set_agg(&m, TSR_EBRM_AGG_SOFTLOGIC, 0.f).code != TSR_OK, "a fused model keeps its aggregation");
    tsr_ebrm_model_score(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, NULL, NULL, lexv, p1);
    bool near = true;
    for (int i = 0; i < n; i++) near &= fabsf(p1[i] - p0[i]) <= 1e-6f;
    TU_CHECK(near, "alpha 0: the soft-logic score");
    tsr_f32(m.fuse)[0] = 3.f;
    tsr_ebrm_cache_init(&big, 1024);
    tsr_ebrm_model_score(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, NULL, NULL, lexv, p1);
    tsr_ebrm_model_score(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, &big, NULL, lexv, p2);
    tsr_ebrm_model_score(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, &big, NULL, lexv, pf);
    TU_CHECK(!memcmp(p1, p2, (size_t)n * 4) && !memcmp(p1, pf, (size_t)n * 4), "fused: cached == uncached");
    bool ok_f = true;
    for (int i = 0; i < n; i++) {
        double q = p0[i] < 1e-7f ? 1e-7 : p0[i] > 1 - 1e-7f ? 1 - 1e-7 : p0[i];
        double want = 1 / (1 + exp(-(log(q / (1 - q)) + 3.0 * lexv[i])));
        ok_f &= fabs(p1[i] - want) < 1e-6 && p1[i] >= p0[i] && (lexv[i] == 0 || p1[i] > p0[i]);
    }
    TU_CHECK(ok_f, "fused score = sigmoid(logit(p) + alpha lex), raised by the lexical match");
    TU_CHECK(tsr_ebrm_model_score(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, NULL, NULL, NULL, pf).code != TSR_OK,
             "a fused model without lexical matches is an error");
    tsr_ebrm_cache_free(&big);
    tsr_train_opts o0 = tsr_train_default_opts();
    TU_CHECK(tsr_ebrm_train_qi(&m, &qt, &o0, NULL).code != TSR_OK, "a fused model is not trained");

    /* save / load round trip, corrupt file refused */
    const char *wp = tu_tmp("ebrm_model.safetensors"), *tp = tu_tmp("ebrm_tok.json");
    TU_CHECK(tsr_ebrm_model_save(&m, wp, NULL).code == TSR_OK && tsr_bpe_save(&m.bpe, tp).code == TSR_OK, "save");
    tsr_ebrm_model m2;
    st = tsr_ebrm_model_load(&m2, wp, tp);
    TU_CHECK(st.code == TSR_OK, "load: %s", st.msg);
    if (st.code == TSR_OK) {
        tsr_ebrm_model_prepare(&m2, E);
        tsr_ebrm_model_score(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, NULL, NULL, lexv, p0);
        tsr_ebrm_model_score(&m2, cat, E, "pdf viewer", TSR_QC_FILE, items, n, NULL, NULL, lexv, p1);
        TU_CHECK(!memcmp(p0, p1, (size_t)n * 4), "loaded model scores identically");
        TU_CHECK(m2.lex_norm == TSR_EBRM_LEX_MAX, "a file without fuse.lex normalises by the maximum");
        tsr_ebrm_model_free(&m2);
    }
    /* the normaliser is read from the metadata; an unknown one is refused */
    const char *top1_meta[] = {"fuse.lex", "bm25/top1_bm25", NULL}, *bad_meta[] = {"fuse.lex", "bm25/median", NULL};
    TU_CHECK(tsr_ebrm_model_save(&m, wp, top1_meta).code == TSR_OK, "save top1");
    st = tsr_ebrm_model_load(&m2, wp, tp);
    TU_CHECK(st.code == TSR_OK && m2.lex_norm == TSR_EBRM_LEX_TOP1, "fuse.lex top1 read: %s", st.msg);
    if (st.code == TSR_OK) tsr_ebrm_model_free(&m2);
    TU_CHECK(tsr_ebrm_model_save(&m, wp, bad_meta).code == TSR_OK, "save bad");
    st = tsr_ebrm_model_load(&m2, wp, tp);
    TU_CHECK(st.code != TSR_OK && strstr(st.msg, "fuse.lex"), "an unknown fuse.lex is refused: %s", st.msg);
    FILE *f = fopen(wp, "r+b");
    if (f) {
        fseek(f, 0, SEEK_END);
        long L = ftell(f);
        TU_CHECK(ftruncate(fileno(f), L / 2) == 0, "truncate");
        fclose(f);
    }
    TU_CHECK(tsr_ebrm_model_load(&m2, wp, tp).code != TSR_OK, "a truncated model is refused");
    TU_CHECK(tsr_ebrm_model_load(&m2, tp, tp).code != TSR_OK, "a non-model file is refused");

    /* gated fusion: p' = sigmoid(g logit(p) + alpha lex), g = sigmoid(slope (top - center)) one number per
     * query; cached == uncached bit for bit; top = -1 refused; save / load keeps the gate; an unknown gate
     * feature is refused */
    tsr_f32(m.fuse)[0] = 3.f;
    float pg[16], pc[16], pu[16];
    tsr_tensor *fuse_keep = m.fuse; /* p0: the soft-logic score */
    m.fuse = NULL, m.agg = TSR_EBRM_AGG_SOFTLOGIC;
    tsr_ebrm_model_score(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, NULL, NULL, NULL, p0);
    m.fuse = fuse_keep, m.agg = TSR_EBRM_AGG_FUSE;
    tsr_ebrm_model_score(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, NULL, NULL, lexv, p1); /* ungated */
    TU_CHECK(tsr_ebrm_model_set_gate(&m, 5.f, 1.5f).code != TSR_OK, "gate center outside [0, 1] refused");
    TU_CHECK(tsr_ebrm_model_set_gate(&m, 5.f, 0.4f).code == TSR_OK && m.gate, "gate");
    TU_CHECK(tsr_ebrm_model_set_gate(&m, 5.f, 0.4f).code != TSR_OK, "a second gate refused");
    TU_CHECK(tsr_ebrm_model_score_top(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, NULL, NULL, lexv, -1.f, pg).code
                 != TSR_OK, "a gated model without top is an error");
    const float tops[3] = {0.f, 0.4f, 0.9f};
    bool ok_g = true, mono = true;
    float prev_g = -1.f;
    for (int k = 0; k < 3; k++) {
        tsr_ebrm_cache_init(&big, 1024);
        tsr_ebrm_model_score_top(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, NULL, NULL, lexv, tops[k], pu);
        tsr_ebrm_model_score_top(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, &big, NULL, lexv, tops[k], pc);
        tsr_ebrm_model_score_top(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, &big, NULL, lexv, tops[k], pg);
        TU_CHECK(!memcmp(pu, pc, (size_t)n * 4) && !memcmp(pu, pg, (size_t)n * 4), "gated: cached == uncached (top %g)",
                 tops[k]);
        tsr_ebrm_cache_free(&big);
        double g = 1 / (1 + exp(-5.0 * ((double)tops[k] - 0.4)));
        mono &= tsr_ebrm_gate(&m, tops[k]) > prev_g;
        prev_g = tsr_ebrm_gate(&m, tops[k]);
        for (int i = 0; i < n; i++) {
            double q = p0[i] < 1e-7f ? 1e-7 : p0[i] > 1 - 1e-7f ? 1 - 1e-7 : p0[i];
            double want = 1 / (1 + exp(-(g * log(q / (1 - q)) + 3.0 * lexv[i])));
            ok_g &= fabs(pu[i] - want) < 1e-6;
        }
    }
    TU_CHECK(ok_g && mono, "gated score = sigmoid(g logit(p) + alpha lex), g rising with top");
    tsr_tensor *gate_keep = m.gate;
    m.gate = NULL;
    tsr_ebrm_model_score_top(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, NULL, NULL, lexv, 0.3f, pg);
    m.gate = gate_keep;
    TU_CHECK(!memcmp(p1, pg, (size_t)n * 4) && tsr_ebrm_fuse_gated(0.3f, 1.f, 3.f, 0.5f) ==
                                                   tsr_ebrm_fuse_alpha(0.3f, 3.f, 0.5f),
             "no gate: top ignored, g = 1 gives the ungated bits");
    TU_CHECK(tsr_ebrm_model_save(&m, wp, NULL).code == TSR_OK && tsr_bpe_save(&m.bpe, tp).code == TSR_OK, "save gated");
    st = tsr_ebrm_model_load(&m2, wp, tp);
    TU_CHECK(st.code == TSR_OK && m2.gate, "load gated: %s", st.msg);
    if (st.code == TSR_OK) {
        tsr_ebrm_model_prepare(&m2, E);
        tsr_ebrm_model_score_top(&m, cat, E, "pdf viewer", TSR_QC_FILE, items, n, NULL, NULL, lexv, 0.7f, pu);
        tsr_ebrm_model_score_top(&m2, cat, E, "pdf viewer", TSR_QC_FILE, items, n, NULL, NULL, lexv, 0.7f, pg);
        TU_CHECK(m2.gate && !memcmp(pu, pg, (size_t)n * 4), "loaded gated model scores identically");
        tsr_ebrm_model_free(&m2);
    }
    const char *bad_gate[] = {"fuse.gate", "entropy", NULL};
    TU_CHECK(tsr_ebrm_model_save(&m, wp, bad_gate).code == TSR_OK, "save bad gate");
    st = tsr_ebrm_model_load(&m2, wp, tp);
    TU_CHECK(st.code != TSR_OK && strstr(st.msg, "fuse.gate"), "an unknown gate feature is refused: %s", st.msg);
    unlink(wp);
    unlink(tp);
    tsr_ebrm_qiset_free(&tr);
    tsr_bm25_free(&ix[0]);
    tsr_bm25_free(&ix[1]);
    tsr_queryset_free(&qs);
    tsr_ebrm_model_free(&m);
}

/* ------------------------------------------------------------------ real */

#define DEB "../shared/data/debian-catalog"

static void test_real(void) {
    if (access(DEB "/packages.jsonl.gz", R_OK) != 0) {
        printf("debian catalog not found: real-data checks skipped\n");
        return;
    }
    tsr_catalog cat;
    tsr_status st = tsr_catalog_load_debian(&cat, DEB);
    TU_CHECK(st.code == TSR_OK, "debian: %s", st.msg);
    if (st.code != TSR_OK) return;
    tsr_ebrm_entities E;
    TU_CHECK(tsr_ebrm_entities_build(&E, &cat).code == TSR_OK, "entities");
    int per[TSR_EBRM_TYPES] = {0}, clash = 0;
    for (int32_t e = 0; e < E.n; e++) {
        per[E.type[e]]++;
        if (E.type[e] == TSR_EBRM_TAG)
            clash += !strncmp(E.key[e], "section::", 9) || !strncmp(E.key[e], "category::", 10) ||
                     !strncmp(E.key[e], "provides::", 10);
    }
    printf("entities: %d (tags %d, sections %d, categories %d, provides %d), %lld item-entity links\n", E.n,
           per[0], per[1], per[2], per[3], (long long)E.item_off[E.n_items]);
    TU_CHECK(clash == 0 && per[0] > 500 && per[1] > 30 && per[2] > 50 && per[3] > 50, "entity types");
    tsr_ebrm_qe_data d;
    TU_CHECK(tsr_ebrm_qe_pairs(&d, &cat, &E, 2, 1).code == TSR_OK, "qe pairs");
    /* disjoint from evaluation: no pair query is a valid/test query of any construction */
    tsr_queryset qs = {0};
    for (int c = 0; c < TSR_QC_MOVIELENS; c++) tsr_queries_build(&qs, &cat, c);
    tsr_strmap ev;
    tsr_strmap_init(&ev, qs.n);
    for (int i = 0; i < qs.n; i++)
        if (qs.q[i].split != TSR_SPLIT_TRAIN) tsr_strmap_put(&ev, qs.q[i].text, 1);
    int leak = 0;
    for (int32_t q = 0; q < d.n_queries; q++) leak += tsr_strmap_get(&ev, d.queries[q]) >= 0;
    int64_t pos = 0;
    for (int64_t i = 0; i < d.n; i++) pos += d.pairs[i].target > 0;
    printf("QE pairs: %lld (%lld positive) over %d keywords\n", (long long)d.n, (long long)pos, d.n_queries);
    TU_CHECK(leak == 0 && d.n_queries > 100 && pos > 1000 && d.n - pos > pos / 2, "QE pairs: %d leak", leak);
    check_pairs(&cat, &E, &d, TSR_EBRM_QE_SHARE);
    /* the tuning split: train queries only, about 1/8 of them in every
     * construction, insensitive to case and white space, and held out of
     * the QE pairs when asked */
    int n_train[TSR_QC_COUNT] = {0}, n_tune[TSR_QC_COUNT] = {0}, bad = 0;
    for (int i = 0; i < qs.n; i++) {
        bool t = tsr_ebrm_is_tune(qs.q[i].text);
        bad += t && qs.q[i].split != TSR_SPLIT_TRAIN;
        char v[256];
        snprintf(v, sizeof v, "  %s ", qs.q[i].text);
        for (char *c = v; *c; c++) *c = (char)toupper((unsigned char)*c);
        bad += tsr_ebrm_is_tune(v) != t;
        n_train[qs.q[i].construction] += qs.q[i].split == TSR_SPLIT_TRAIN;
        n_tune[qs.q[i].construction] += t;
    }
    tsr_queryset qt = {0};
    for (int c = 0; c < TSR_QC_MOVIELENS; c++) tsr_queries_build(&qt, &cat, c);
    int32_t marked = tsr_ebrm_mark_tune(&qt), n_tr = 0;
    for (int i = 0; i < qt.n; i++) n_tr += qt.q[i].split == TSR_SPLIT_TRAIN;
    int all_tune = 0, all_train = 0;
    for (int c = 0; c < TSR_QC_MOVIELENS; c++) all_tune += n_tune[c], all_train += n_train[c];
    printf("tuning split: %d of %d train queries (appstream %d/%d)\n", all_tune, all_train, n_tune[TSR_QC_APPSTREAM],
           n_train[TSR_QC_APPSTREAM]);
    TU_CHECK(bad == 0 && marked == all_tune && n_tr == all_train - all_tune, "tune split: %d bad", bad);
    TU_CHECK(n_tune[TSR_QC_APPSTREAM] * 12 > n_train[TSR_QC_APPSTREAM] &&
                 n_tune[TSR_QC_APPSTREAM] * 6 < n_train[TSR_QC_APPSTREAM], "tune split size");
    tsr_queryset_free(&qt);
    tsr_ebrm_qe_data dh;
    TU_CHECK(tsr_ebrm_qe_pairs_ex(&dh, &cat, &E, 2, 1, true, TSR_EBRM_QE_SHARE).code == TSR_OK, "qe pairs without tune keywords");
    int tune_kw = 0, held = 0;
    for (int32_t q = 0; q < dh.n_queries; q++) tune_kw += tsr_ebrm_is_tune(dh.queries[q]);
    for (int32_t q = 0; q < d.n_queries; q++) held += tsr_ebrm_is_tune(d.queries[q]);
    TU_CHECK(tune_kw == 0 && held > 0 && dh.n_queries == d.n_queries - held, "QE pairs hold out %d tune keywords, %d left",
             held, tune_kw);
    int32_t dh_nq = dh.n_queries;
    tsr_ebrm_qe_data_free(&dh);
    /* pairs from the train split's virtual-package descriptions, appended:
     * the keyword pairs untouched, every new query a train (and, held out,
     * non-tune) virtual query text and never an evaluation query of any
     * construction, no provides entity (the leakage rule), targets the
     * share of the providers holding the entity, tags among the positives */
    tsr_ebrm_qe_data dv, dvh;
    TU_CHECK(tsr_ebrm_qe_pairs(&dv, &cat, &E, 2, 1).code == TSR_OK, "qe pairs");
    TU_CHECK(tsr_ebrm_qe_pairs_virtual(&dv, &cat, &E, 1, false).code == TSR_OK, "virtual qe pairs");
    TU_CHECK(tsr_ebrm_qe_pairs_ex(&dvh, &cat, &E, 2, 1, true, TSR_EBRM_QE_SHARE).code == TSR_OK &&
                 tsr_ebrm_qe_pairs_virtual(&dvh, &cat, &E, 1, true).code == TSR_OK, "virtual qe pairs without tune");
    TU_CHECK(dv.n > d.n && memcmp(dv.pairs, d.pairs, (size_t)d.n * sizeof *d.pairs) == 0, "keyword pairs kept");
    {
        tsr_strmap vtrain;
        tsr_strmap_init(&vtrain, 256);
        int n_vtrain = 0, n_vtune = 0;
        for (int i = 0; i < qs.n; i++)
            if (qs.q[i].construction == TSR_QC_VIRTUAL && qs.q[i].split == TSR_SPLIT_TRAIN) {
                tsr_strmap_put(&vtrain, qs.q[i].text, i);
                n_vtrain++;
                n_vtune += tsr_ebrm_is_tune(qs.q[i].text);
            }
        int bad_q = 0, bad_prov = 0, bad_t = 0, tags = 0, npos = 0;
        for (int64_t i = d.n; i < dv.n; i++) {
            const tsr_ebrm_qe_pair *p = &dv.pairs[i];
            int32_t qi = tsr_strmap_get(&vtrain, dv.queries[p->query]);
            bad_q += p->query < d.n_queries || qi < 0 || tsr_strmap_get(&ev, dv.queries[p->query]) >= 0;
            bad_prov += E.type[p->entity] == TSR_EBRM_PROVIDES;
            if (qi < 0) continue;
            const tsr_query *Q = &qs.q[qi];
            int have = 0;
            for (int j = 0; j < Q->n_rel; j++)
                for (int64_t s = E.item_off[Q->rel[j]]; s < E.item_off[Q->rel[j] + 1]; s++) have += E.item_ent[s] == p->entity;
            bad_t += p->target != (p->target > 0 ? (float)((double)have / Q->n_rel) : 0.f) || (p->target == 0) != (have == 0);
            tags += p->target > 0 && E.type[p->entity] == TSR_EBRM_TAG;
            npos += p->target > 0;
        }
        int tune_v = 0;
        for (int32_t q = 0; q < dvh.n_queries; q++) tune_v += tsr_ebrm_is_tune(dvh.queries[q]);
        printf("virtual QE pairs: %lld (%d positive, %d of them tags) over %d of %d train virtual descriptions (%d tune)\n",
               (long long)(dv.n - d.n), npos, tags, dv.n_queries - d.n_queries, n_vtrain, n_vtune);
        TU_CHECK(bad_q == 0 && bad_prov == 0 && bad_t == 0 && tags > 0 && dv.n_queries - d.n_queries > 10,
                 "virtual QE pairs: %d bad queries, %d provides entities, %d wrong targets", bad_q, bad_prov, bad_t);
        TU_CHECK(tune_v == 0 && n_vtune > 0 && dvh.n_queries - dh_nq < dv.n_queries - d.n_queries,
                 "virtual QE pairs hold out the tune descriptions (%d left)", tune_v);
        tsr_strmap_free(&vtrain);
    }
    /* pairs from the packages' own summaries, appended: the earlier pairs
     * untouched, every new query the summary of a package that holds each
     * positive (target 1) and none of the negatives (target 0, same type as
     * a positive), a train-split text (never an evaluation query), no
     * provides entity; tune summaries held out when asked; deterministic */
    for (int mode = TSR_EBRM_NEG_UNIFORM; mode <= TSR_EBRM_NEG_FREQ; mode++) {
        tsr_ebrm_qe_data di, di2, dih = {0}; /* the item pairs append: dih starts empty */
        TU_CHECK(tsr_ebrm_qe_pairs(&di, &cat, &E, 2, 1).code == TSR_OK &&
                     tsr_ebrm_qe_pairs_items(&di, &cat, &E, 512, 1, false, mode).code == TSR_OK, "item qe pairs");
        TU_CHECK(tsr_ebrm_qe_pairs(&di2, &cat, &E, 2, 1).code == TSR_OK &&
                     tsr_ebrm_qe_pairs_items(&di2, &cat, &E, 512, 1, false, mode).code == TSR_OK, "item qe pairs again");
        TU_CHECK(tsr_ebrm_qe_pairs_items(&dih, &cat, &E, 512, 1, true, mode).code == TSR_OK, "item qe pairs without tune");
        TU_CHECK(di.n > d.n && memcmp(di.pairs, d.pairs, (size_t)d.n * sizeof *d.pairs) == 0, "earlier pairs kept");
        TU_CHECK(di2.n == di.n && memcmp(di2.pairs, di.pairs, (size_t)di.n * sizeof *di.pairs) == 0, "item pairs deterministic");
        int bad_q = 0, bad_t = 0, bad_prov = 0, npos = 0, tune_i = 0, tune_h = 0;
        int32_t *src = malloc((size_t)di.n_queries * sizeof *src);
        for (int32_t q = d.n_queries; q < di.n_queries; q++) {
            src[q] = -1; /* the packages with this summary: checked against each */
            for (int32_t i = 0; i < cat.n_items && src[q] < 0; i++)
                if (cat.items[i].summary && strcmp(cat.items[i].summary, di.queries[q]) == 0) src[q] = i;
            bad_q += src[q] < 0 || tsr_query_split(di.queries[q]) != TSR_SPLIT_TRAIN ||
                     tsr_strmap_get(&ev, di.queries[q]) >= 0;
            tune_i += tsr_ebrm_is_tune(di.queries[q]);
        }
        /* each query's pairs are contiguous: there must be a package with
         * that summary whose visible entities are exactly the positives and
         * which holds no negative; a negative has a positive's type */
        for (int64_t k = d.n; k < di.n;) {
            int32_t q = di.pairs[k].query;
            int64_t e = k;
            while (e < di.n && di.pairs[e].query == q) e++;
            unsigned pos_types = 0;
            for (int64_t j = k; j < e; j++) {
                bad_prov += E.type[di.pairs[j].entity] == TSR_EBRM_PROVIDES;
                bad_t += di.pairs[j].target != 1.f && di.pairs[j].target != 0.f;
                if (di.pairs[j].target == 1.f) pos_types |= 1u << E.type[di.pairs[j].entity], npos++;
            }
            for (int64_t j = k; j < e; j++) bad_t += di.pairs[j].target == 0.f && !(pos_types >> E.type[di.pairs[j].entity] & 1);
            bool found = false;
            for (int32_t i = q >= d.n_queries && src[q] >= 0 ? src[q] : cat.n_items; i < cat.n_items && !found; i++) {
                if (strcmp(cat.items[i].summary, di.queries[q]) != 0) continue;
                int held_pos = 0, held_neg = 0, vis = 0;
                for (int64_t s = E.item_off[i]; s < E.item_off[i + 1]; s++) {
                    int32_t en = E.item_ent[s];
                    vis += E.type[en] != TSR_EBRM_PROVIDES;
                    for (int64_t j = k; j < e; j++)
                        if (di.pairs[j].entity == en) {
                            if (di.pairs[j].target == 1.f) held_pos++;
                            else held_neg++;
                        }
                }
                int n_pos = 0;
                for (int64_t j = k; j < e; j++) n_pos += di.pairs[j].target == 1.f;
                found = held_neg == 0 && held_pos == n_pos && vis == n_pos;
            }
            bad_t += !found;
            k = e;
        }
        for (int32_t q = 0; q < dih.n_queries; q++) tune_h += tsr_ebrm_is_tune(dih.queries[q]);
        /* the most common positive entity: how often it is a negative */
        int32_t *pc = calloc((size_t)E.n, sizeof *pc), *nc = calloc((size_t)E.n, sizeof *nc), top = 0;
        for (int64_t k = d.n; k < di.n; k++) (di.pairs[k].target > 0 ? pc : nc)[di.pairs[k].entity]++;
        for (int32_t e = 1; e < E.n; e++) top = pc[e] > pc[top] ? e : top;
        printf("item QE pairs (%s negatives): %lld (%d positive) over %d package summaries (%d tune; held out: %d); "
               "%s %d positive, %d negative\n", mode ? "freq" : "uniform", (long long)(di.n - d.n), npos,
               di.n_queries - d.n_queries, tune_i, tune_h, E.key[top], pc[top], nc[top]);
        TU_CHECK(mode == TSR_EBRM_NEG_FREQ ? nc[top] * 4 > pc[top] : nc[top] * 20 < pc[top],
                 "item QE pairs: the common entity's negatives (%d of %d)", nc[top], pc[top]);
        free(pc), free(nc);
        TU_CHECK(di.n_queries - d.n_queries == 512 && bad_q == 0 && bad_t == 0 && bad_prov == 0 && npos > 512 &&
                     di.n - d.n >= 2 * (int64_t)npos - 64,
                 "item QE pairs: %d bad queries, %d wrong targets, %d provides entities", bad_q, bad_t, bad_prov);
        TU_CHECK(tune_i > 0 && tune_h == 0 && dih.n_queries == 512, "item QE pairs hold out the tune summaries (%d left)", tune_h);
        free(src);
        tsr_ebrm_qe_data_free(&di);
        tsr_ebrm_qe_data_free(&di2);
        tsr_ebrm_qe_data_free(&dih);
    }
    tsr_ebrm_qe_data_free(&dv);
    tsr_ebrm_qe_data_free(&dvh);
    /* per-item BM25 (score, explain, /v1/relevance) against the first
     * stage's (eval, rank, bench) on the real catalog: the top 100 of long
     * (virtual) queries, where summing the terms in another order or
     * precision changes some last bits */
    tsr_bm25 novirt;
    tsr_bm25_build_catalog(&novirt, &cat, TSR_F_ALL & ~tsr_qc_hidden(TSR_QC_VIRTUAL), 1.2f, 0.4f);
    /* and lex normalised by the query's best BM25 (first 20 queries): the
     * first stage's first candidate gets 1, the rest [0, 1], the same bits
     * whether the best score is given (eval, rank, bench) or searched for
     * (score, explain, /v1/relevance) */
    int differ = 0, checked = 0, bad_top1 = 0, n_top1 = 0;
    for (int32_t i = 0, nv = 0; i < qs.n && nv < 60; i++) {
        const tsr_query *q = &qs.q[i];
        if (q->construction != TSR_QC_VIRTUAL) continue;
        nv++;
        int32_t d[100];
        float sc[100], lex[100], given[100];
        int n = tsr_bm25_search(&novirt, q->text, 100, d, sc, NULL);
        tsr_ebrm_lex(&novirt, q->text, d, NULL, n, lex);
        tsr_ebrm_lex(&novirt, q->text, d, sc, n, given);
        for (int j = 0; j < n; j++) differ += memcmp(&lex[j], &given[j], sizeof *lex) != 0, checked++;
        if (nv > 20 || n == 0) continue;
        tsr_ebrm_lex_ex(&novirt, q->text, TSR_EBRM_LEX_TOP1, -1.f, d + 1, NULL, n - 1, lex + 1);
        tsr_ebrm_lex_ex(&novirt, q->text, TSR_EBRM_LEX_TOP1, -1.f, d, NULL, 1, lex);
        tsr_ebrm_lex_ex(&novirt, q->text, TSR_EBRM_LEX_TOP1, sc[0], d, sc, n, given);
        bad_top1 += lex[0] != 1.f || memcmp(lex, given, (size_t)n * sizeof *lex) != 0;
        /* the gate's top(q): searched for == given, = the first candidate's lex (max norm) */
        float ts = tsr_ebrm_top_ratio(&novirt, q->text, -1.f), tg = tsr_ebrm_top_ratio(&novirt, q->text, sc[0]);
        tsr_ebrm_lex(&novirt, q->text, d, sc, 1, given);
        bad_top1 += memcmp(&ts, &tg, sizeof ts) != 0 || ts != given[0] || !(ts > 0 && ts <= 1);
        for (int j = 0; j < n; j++) bad_top1 += !(lex[j] >= 0 && lex[j] <= 1);
        n_top1++;
    }
    TU_CHECK(checked > 1000 && differ == 0, "per-item lex differs from the first stage's in %d of %d", differ, checked);
    TU_CHECK(n_top1 >= 10 && bad_top1 == 0, "top1 lex: %d bad of %d queries", bad_top1, n_top1);
    tsr_bm25_free(&novirt);
    tsr_strmap_free(&ev);
    tsr_queryset_free(&qs);
    tsr_ebrm_qe_data_free(&d);
    tsr_ebrm_entities_free(&E);
    tsr_catalog_free(&cat);
}

int main(void) {
    char dir[] = "/tmp/tsr_ebrm_XXXXXX";
    TSR_ASSERT(mkdtemp(dir));
    tsr_catalog cat;
    if (tiny_catalog(&cat, dir)) {
        tsr_ebrm_entities E;
        TU_CHECK(tsr_ebrm_entities_build(&E, &cat).code == TSR_OK, "entities");
        test_entities(&cat, &E);
        test_qi(&cat);
        test_qe_pairs(&cat, &E);
        test_cache_scores(&E, cat.n_items);
        test_model(&cat, &E);
        tsr_ebrm_entities_free(&E);
        tsr_catalog_free(&cat);
    }
    const char *f[] = {"packages.jsonl.gz", "appstream.jsonl.gz", "virtual-package-names-list.yaml.gz"};
    for (int i = 0; i < 3; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, f[i]);
        unlink(p);
    }
    rmdir(dir);
    test_agg();
    test_cache_lru();
    test_qe_model();
    test_full_model(TSR_EBRM_AGG_SOFTLOGIC);
    test_full_model(TSR_EBRM_AGG_MEAN);
    test_real();
    return tu_finish("ebrm");
}
