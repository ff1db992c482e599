/* Tests for src/search: the tokeniser, BM25 against a hand-worked example,
 * the ranking metrics against tools/refs/gen_search_metrics.py, the query
 * split, the JSONL query-file parser (every rejection is one line naming
 * file and line), a small synthetic catalog on disk (loader, reverse
 * counts, efficiency, paths, constructions), the item-to-item
 * constructions on a synthetic catalog, and the real Debian and
 * MovieLens snapshots when ../shared/data is present. */
#include "testutil.h"
#include "tessera/search.h"

#include <math.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------ tokeniser */

typedef struct {
    char all[512];
} tokbuf;

static void tok_cat(const char *t, int len, void *ud) {
    (void)len;
    tokbuf *b = ud;
    size_t n = strlen(b->all);
    snprintf(b->all + n, sizeof b->all - n, "%s%s", n ? "|" : "", t);
}

static void test_tokenizer(void) {
    tokbuf b = {""};
    int n = tsr_search_tokenize("The PDF-Viewers for C++ and C# tools: X11, a 3D class!", tok_cat, &b);
    TU_CHECK(strcmp(b.all, "pdf|viewer|c++|c#|tool|x11|3d|class") == 0, "tokens: %s", b.all);
    TU_CHECK(n == 8, "kept %d tokens", n);
    b.all[0] = 0;
    tsr_search_tokenize("this is R and c, not x", tok_cat, &b);
    TU_CHECK(strcmp(b.all, "r|c") == 0, "single letters and stopwords: %s", b.all);
}

/* -------------------------------------------------------------- BM25 */

static void test_bm25_hand(void) {
    /* N = 3 docs, lengths 2, 3, 1: avgdl = 2. k1 = 1.2, b = 0.75.
     * "cat": df 2, idf = ln(1 + 1.5/2.5) = ln 1.6 = 0.4700036.
     *   d0: tf 1, |d| 2: K = 1.2 (0.25 + 0.75) = 1.2; 1 * 2.2 / 2.2 = 1 -> 0.4700036
     *   d1: tf 2, |d| 3: K = 1.2 (0.25 + 1.125) = 1.65; 2 * 2.2 / 3.65 = 1.2054795
     *       -> 0.5665797
     * "fish": df 1, idf = ln(1 + 2.5/1.5) = ln(8/3) = 0.9808293;
     *   d1: 2.2 / 2.65 = 0.8301887 -> 0.8142733; "cat fish" on d1: 1.3808531 */
    const char *docs[] = {"cat dog", "cat cat fish", "bird"};
    tsr_bm25 ix;
    tsr_bm25_build(&ix, docs, 3, 1.2f, 0.75f);
    TU_CHECK(ix.n_terms == 4 && fabs(ix.avg_len - 2.0) < 1e-12, "terms %d avg %g", ix.n_terms, ix.avg_len);
    int32_t d[3];
    float s[3];
    int n = tsr_bm25_search(&ix, "cat", 3, d, s, NULL);
    TU_CHECK(n == 2 && d[0] == 1 && d[1] == 0, "cat: n %d order %d %d", n, d[0], d[1]);
    TU_CHECK(fabsf(s[0] - 0.5665797f) < 1e-6f && fabsf(s[1] - 0.4700036f) < 1e-6f, "cat scores %.7f %.7f",
             s[0], s[1]);
    n = tsr_bm25_search(&ix, "Cat FISH cat", 3, d, s, NULL);
    TU_CHECK(n == 2 && d[0] == 1 && fabsf(s[0] - 1.3808531f) < 1e-6f, "cat fish: %d %d %.7f", n, d[0], s[0]);
    TU_CHECK(fabsf(tsr_bm25_score(&ix, "cat fish", 1) - 1.3808531f) < 1e-6f, "score()");
    TU_CHECK(tsr_bm25_search(&ix, "zebra", 3, d, s, NULL) == 0, "unknown term matches nothing");
    n = tsr_bm25_search(&ix, "cat", 1, d, s, NULL);
    TU_CHECK(n == 1 && d[0] == 1, "k = 1");
    /* ties: equal docs rank by ascending index; scratch is left zeroed */
    const char *tie[] = {"x1 y1", "q", "x1 y1", "x1 y1"};
    tsr_bm25 t;
    tsr_bm25_build(&t, tie, 4, 1.2f, 0.75f);
    float scratch[4] = {0};
    n = tsr_bm25_search(&t, "x1", 2, d, s, scratch);
    TU_CHECK(n == 2 && d[0] == 0 && d[1] == 2 && s[0] == s[1], "ties by index: %d %d", d[0], d[1]);
    TU_CHECK(scratch[0] == 0 && scratch[2] == 0 && scratch[3] == 0, "scratch zeroed");
    tsr_bm25_free(&t);
    tsr_bm25_free(&ix);
}

/* tsr_bm25_score gives a document the very bits tsr_bm25_search gives it:
 * long queries over a random corpus, where any other summation order (or a
 * double accumulator) differs in the last bit for some documents */
static void test_bm25_score_bits(void) {
    enum { N = 300, V = 40 };
    char *docs[N];
    uint64_t r = 12345;
    for (int i = 0; i < N; i++) {
        char buf[512];
        int len = 0, words = 3 + (int)((r = r * 6364136223846793005ull + 1442695040888963407ull) >> 60);
        for (int w = 0; w < words; w++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            len += snprintf(buf + len, sizeof buf - (size_t)len, "w%d ", (int)((r >> 33) % V));
        }
        docs[i] = strdup(buf);
    }
    tsr_bm25 ix;
    tsr_bm25_build(&ix, (const char *const *)docs, N, 1.2f, 0.4f);
    const char *queries[] = {"w1 w2 w3 w4 w5 w6 w7 w8", "w9 w17 w23 w31 w38 w4 w11", "w0 w5 w10 w15 w20 w25 w30 w35 w39"};
    int checked = 0, differ = 0;
    for (int q = 0; q < 3; q++) {
        int32_t d[N];
        float s[N];
        int n = tsr_bm25_search(&ix, queries[q], N, d, s, NULL);
        for (int j = 0; j < n; j++) {
            float one = tsr_bm25_score(&ix, queries[q], d[j]);
            differ += memcmp(&one, &s[j], sizeof one) != 0;
            checked++;
        }
    }
    TU_CHECK(checked > 500 && differ == 0, "%d of %d scores differ in their bits from the search's", differ, checked);
    tsr_bm25_free(&ix);
    for (int i = 0; i < N; i++) free(docs[i]);
}

/* ------------------------------------------------------------ metrics */

static void test_metrics_ref(void) {
    tref *r = tref_load("tests/refs/search_metrics.tref");
    const tref_entry *rk = tref_get(r, "ranked"), *nrk = tref_get(r, "n_ranked"),
                     *rel = tref_get(r, "rel"), *nrel = tref_get(r, "n_rel"), *want = tref_get(r, "want");
    int C = (int)rk->shape[0], L = (int)rk->shape[1], R = (int)rel->shape[1];
    int bad = 0;
    for (int c = 0; c < C; c++) {
        const int32_t *rr = (const int32_t *)rk->data + c * L, *rl = (const int32_t *)rel->data + c * R;
        int nr = ((const int32_t *)nrk->data)[c], nl = ((const int32_t *)nrel->data)[c];
        const float *w = (const float *)want->data + c * 6;
        double got[6] = {tsr_recall_at(rr, nr, rl, nl, 1),   tsr_recall_at(rr, nr, rl, nl, 5),
                         tsr_recall_at(rr, nr, rl, nl, 10),  tsr_recall_at(rr, nr, rl, nl, 100),
                         tsr_mrr_at(rr, nr, rl, nl, 10),     tsr_ndcg_at(rr, nr, rl, nl, 10)};
        for (int m = 0; m < 6; m++)
            if (fabs(got[m] - w[m]) > 1e-6) {
                if (bad++ < 5) fprintf(stderr, "case %d metric %d: %.7f want %.7f\n", c, m, got[m], w[m]);
            }
    }
    TU_CHECK(bad == 0, "%d ranking metrics differ from the reference", bad);
    const tref_entry *sc = tref_get(r, "auc_scores"), *lb = tref_get(r, "auc_labels"),
                     *aw = tref_get(r, "auc_want");
    int A = (int)sc->shape[0], M = (int)sc->shape[1];
    uint8_t lab[256];
    int32_t scratch[512];
    bad = 0;
    for (int a = 0; a < A; a++) {
        for (int i = 0; i < M; i++) lab[i] = (uint8_t)((const int32_t *)lb->data)[a * M + i];
        double g = tsr_auc((const float *)sc->data + a * M, lab, M, a % 2 ? scratch : NULL);
        double w = ((const float *)aw->data)[a];
        if (fabs(g - w) > 1e-6 && bad++ < 5) fprintf(stderr, "auc case %d: %.7f want %.7f\n", a, g, w);
    }
    TU_CHECK(bad == 0, "%d AUCs differ from the reference", bad);
    tref_free(r);
    /* edge cases */
    float s2[2] = {1, 1};
    uint8_t l2[2] = {1, 1};
    TU_CHECK(isnan(tsr_auc(s2, l2, 2, NULL)), "AUC without negatives is NaN");
    l2[1] = 0;
    TU_CHECK(tsr_auc(s2, l2, 2, NULL) == 0.5, "one tie is 0.5");
    int32_t ranked[3] = {5, 6, 7}, rl[1] = {9};
    TU_CHECK(tsr_recall_at(ranked, 3, rl, 0, 10) == 0 && tsr_ndcg_at(ranked, 3, rl, 0, 10) == 0,
             "empty relevant set scores 0");
    tsr_metric_acc acc = {0};
    int32_t rel2[2] = {6, 42};
    tsr_metric_add(&acc, ranked, 3, rel2, 2);
    tsr_rank_metrics m = tsr_metric_mean(&acc);
    TU_CHECK(m.queries == 1 && m.recall1 == 0 && m.recall10 == 0.5 && m.mrr10 == 0.5,
             "mean metrics %g %g %g", m.recall1, m.recall10, m.mrr10);
}

/* --------------------------------------------------------- query files */

static void expect_err(const char *buf, const char *what, const char *needle) {
    tsr_qfile qf;
    tsr_status st = tsr_qfile_parse(&qf, buf, strlen(buf), "q.jsonl");
    TU_CHECK(st.code != TSR_OK, "%s: accepted", what);
    if (st.code != TSR_OK) {
        TU_CHECK(strstr(st.msg, needle) && !strchr(st.msg, '\n'), "%s: message '%s' lacks '%s'", what,
                 st.msg, needle);
    } else
        tsr_qfile_free(&qf);
}

static void test_qfile(void) {
    const char *good = "{\"query\": \"pdf viewer\", \"relevant\": [\"evince\", \"zathura\"]}\n"
                       "\n"
                       "{\"query\": \"funny\", \"relevant\": [1, 2], \"user\": 7}\n"
                       "{\"query\": \"x\", \"relevant\": [\"a\", \"a\"], \"user\": \"12\"}";
    tsr_qfile qf;
    tsr_status st = tsr_qfile_parse(&qf, good, strlen(good), "q.jsonl");
    TU_CHECK(st.code == TSR_OK && qf.n == 3, "good file: %s", st.msg);
    if (st.code == TSR_OK) {
        TU_CHECK(strcmp(qf.l[0].query, "pdf viewer") == 0 && qf.l[0].n_relevant == 2 && qf.l[0].user == -1,
                 "line 1");
        TU_CHECK(qf.l[1].line == 3 && qf.l[1].user == 7 && strcmp(qf.l[1].relevant[1], "2") == 0, "line 3");
        TU_CHECK(qf.l[2].user == 12 && qf.l[2].n_relevant == 1, "string user, duplicate ids merged");
        tsr_qfile_free(&qf);
    }
    expect_err("", "empty file", "no queries");
    expect_err("[1,2]\n", "not an object", "q.jsonl:1:");
    expect_err("{\"query\": \"a\", \"relevant\": [\"b\"]}\n{\"query\": \"\", \"relevant\": [\"b\"]}",
               "empty query", "q.jsonl:2: empty query");
    expect_err("{\"query\": \"  \", \"relevant\": [\"b\"]}", "blank query", "empty query");
    expect_err("{\"query\": 3, \"relevant\": [\"b\"]}", "numeric query", "must be a string");
    expect_err("{\"query\": \"a\", \"relevant\": []}", "no relevant", "non-empty array");
    expect_err("{\"query\": \"a\", \"relevant\": \"b\"}", "relevant not array", "non-empty array");
    expect_err("{\"query\": \"a\", \"relevant\": [1.5]}", "fractional id", "not an item id");
    expect_err("{\"query\": \"a\", \"relevant\": [\"b\"], \"user\": -1}", "negative user", "\"user\"");
    expect_err("{\"query\": \"a\", \"relevant\": [\"b\"], \"user\": \"x\"}", "text user", "\"user\"");
    expect_err("{\"query\": \"a\", \"relevant\": [\"b\"]", "truncated", "q.jsonl:1:");
    char nul[] = "{\"query\": \"a\", \"relevant\": [\"b\"]}\n{\"q\0\": 1}\n";
    tsr_status s2 = tsr_qfile_parse(&qf, nul, sizeof nul - 1, "q.jsonl");
    TU_CHECK(s2.code != TSR_OK && strstr(s2.msg, "q.jsonl:2:"), "NUL byte: %s", s2.msg);
    /* splits depend on the normalised text only */
    TU_CHECK(tsr_query_split("PDF  Viewer ") == tsr_query_split("pdf viewer"), "split normalises");
    int cnt[TSR_SPLIT_COUNT] = {0};
    char q[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(q, sizeof q, "query %d", i);
        cnt[tsr_query_split(q)]++;
    }
    TU_CHECK(cnt[0] > 1500 && cnt[0] < 1700 && cnt[1] > 130 && cnt[2] > 130, "split sizes %d %d %d", cnt[0],
             cnt[1], cnt[2]);
    /* the tuning subset: ~1/8 of the train texts, never a valid or test one */
    int tune = 0, tune_bad = 0;
    for (int i = 0; i < 2000; i++) {
        snprintf(q, sizeof q, "query %d", i);
        bool t = tsr_query_is_tune(q);
        tune += t;
        tune_bad += t && tsr_query_split(q) != TSR_SPLIT_TRAIN;
    }
    TU_CHECK(tune > 150 && tune < 260 && tune_bad == 0, "tune subset %d (%d outside train)", tune, tune_bad);
    TU_CHECK(tsr_query_is_tune("Query  7 ") == tsr_query_is_tune("query 7"), "tune subset normalises");
}

/* ------------------------------------------- a small catalog on disk */

static void write_gz(const char *path, const char *s) {
    gzFile f = gzopen(path, "wb");
    TSR_ASSERT(f);
    TSR_ASSERT(gzwrite(f, s, (unsigned)strlen(s)) == (int)strlen(s));
    gzclose(f);
}

static void test_tiny_catalog(void) {
    char dir[] = "/tmp/tsr_search_XXXXXX", p[512];
    TSR_ASSERT(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/packages.jsonl.gz", dir);
    write_gz(p,
             "{\"package\": \"libfoo1\", \"section\": \"libs\", \"priority\": \"optional\", \"summary\": \"foo "
             "library\", \"description\": \"shared foo\", \"tags\": [\"role::shared-lib\"], \"depends\": "
             "[\"libc6\"], \"provides\": []}\n"
             "{\"package\": \"fooview\", \"section\": \"graphics\", \"priority\": \"optional\", \"summary\": "
             "\"PDF viewer for foo\", \"description\": \"views documents\", \"tags\": [\"use::viewing\", "
             "\"works-with::pdf\"], \"depends\": [\"libfoo1\", \"libfoo1\"], \"recommends\": [\"barview\"], "
             "\"provides\": [\"pdf-viewer\"]}\n"
             "{\"package\": \"barview\", \"section\": \"contrib/graphics\", \"priority\": \"optional\", "
             "\"summary\": \"Another document viewer\", \"description\": \"bar\", \"tags\": [\"use::viewing\", "
             "\"works-with::pdf\"], \"depends\": [\"libfoo1\"], \"provides\": [\"pdf-viewer\"]}\n"
             "{\"package\": \"task-foo\", \"section\": \"tasks\", \"priority\": \"optional\", \"summary\": "
             "\"foo desktop\", \"description\": \"\", \"depends\": [\"fooview\"]}\n"
             "{\"package\": \"libc6\", \"section\": \"libs\", \"priority\": \"required\", \"essential\": true, "
             "\"summary\": \"GNU C Library\", \"description\": \"\"}\n");
    snprintf(p, sizeof p, "%s/appstream.jsonl.gz", dir);
    write_gz(p, "{\"package\": \"fooview\", \"name\": \"Foo View\", \"summary\": \"View PDFs\", "
                "\"description\": \"\", \"keywords\": [\"PDF\", \"reader\"], \"categories\": [\"GTK\", "
                "\"Office\"]}\n{\"package\": \"missing\", \"name\": \"x\", \"keywords\": [\"pdf\"]}\n"
                "{\"package\": \"barview\", \"name\": \"Bar\", \"keywords\": [\"pdf\"]}\n");
    snprintf(p, sizeof p, "%s/virtual-package-names-list.yaml.gz", dir);
    write_gz(p, "# comment\nvirtualPackages:\n - name: pdf-viewer\n   description: a PDF viewer\n"
                " - name: unused\n   description: nothing provides it\n");
    tsr_catalog cat;
    tsr_status st = tsr_catalog_load_debian(&cat, dir);
    TU_CHECK(st.code == TSR_OK, "tiny catalog: %s", st.msg);
    if (st.code == TSR_OK) {
        int32_t lib = tsr_catalog_find(&cat, "libfoo1"), fv = tsr_catalog_find(&cat, "fooview"),
                bv = tsr_catalog_find(&cat, "barview"), c6 = tsr_catalog_find(&cat, "libc6");
        TU_CHECK(cat.n_items == 5 && lib >= 0 && fv >= 0 && bv >= 0 && c6 >= 0, "items");
        TU_CHECK(cat.items[lib].n_rdepends == 2, "duplicate depends count once: %d", cat.items[lib].n_rdepends);
        TU_CHECK(cat.items[bv].n_rrecommends == 1 && cat.items[fv].n_tasks == 1, "recommends, tasks");
        TU_CHECK(cat.items[c6].efficiency == 1.0f && cat.items[lib].efficiency > cat.items[bv].efficiency,
                 "efficiency order");
        TU_CHECK(cat.n_virt == 2 && strcmp(cat.virt_desc[0], "a PDF viewer") == 0, "virtual names");
        TU_CHECK(strcmp(cat.cat_names[1][cat.items[fv].path[1]], "graphics/app::Office") == 0 &&
                     strcmp(cat.cat_names[1][cat.items[bv].path[1]], "graphics/use::viewing") == 0 &&
                     cat.items[fv].path[0] == cat.items[bv].path[0],
                 "paths: AppStream before debtags, contrib/ stripped");
        char *t = tsr_item_text(&cat, fv, TSR_F_ALL);
        TU_CHECK(strstr(t, "works with pdf") && strstr(t, "Foo View") && !strstr(t, "reader") &&
                     !strstr(t, "pdf-viewer"),
                 "item text holds tags and AppStream, never keywords or provides: %s", t);
        free(t);
        t = tsr_item_text(&cat, fv, TSR_F_ALL & ~tsr_qc_hidden(TSR_QC_DEBTAGS));
        TU_CHECK(!strstr(t, "works with"), "debtags hidden for debtags queries");
        free(t);
        tsr_queryset qs = {0};
        TU_CHECK(tsr_queries_build(&qs, &cat, TSR_QC_APPSTREAM).code == TSR_OK, "appstream");
        int pdf = -1;
        for (int i = 0; i < qs.n; i++)
            if (strcmp(qs.q[i].text, "pdf") == 0) pdf = i;
        TU_CHECK(qs.n == 2 && pdf >= 0 && qs.q[pdf].n_rel == 2, "keywords lower-cased and merged");
        TU_CHECK(tsr_queries_build(&qs, &cat, TSR_QC_VIRTUAL).code == TSR_OK, "virtual");
        TU_CHECK(qs.n == 3 && strcmp(qs.q[2].text, "a PDF viewer") == 0 && qs.q[2].n_rel == 2 &&
                     qs.q[2].rel[0] < qs.q[2].rel[1],
                 "virtual -> providers, sorted");
        TU_CHECK(tsr_queries_build(&qs, &cat, TSR_QC_DEBTAGS).code == TSR_OK, "debtags");
        bool have = false;
        for (int i = 3; i < qs.n; i++) have |= strcmp(qs.q[i].text, "pdf") == 0 && qs.q[i].n_rel == 2;
        TU_CHECK(have && qs.n == 5, "debtags phrased (%d queries)", qs.n);
        TU_CHECK(tsr_queries_build(&qs, &cat, TSR_QC_MOVIELENS).code != TSR_OK, "movielens needs users");
        /* JSONL round trip and resolution */
        snprintf(p, sizeof p, "%s/q.jsonl", dir);
        TU_CHECK(tsr_queryset_write(&qs, &cat, -1, p).code == TSR_OK, "write queries");
        tsr_qfile qf;
        st = tsr_qfile_read(&qf, p);
        TU_CHECK(st.code == TSR_OK && qf.n == qs.n, "read back: %s", st.msg);
        if (st.code == TSR_OK) {
            tsr_queryset back = {0};
            st = tsr_qfile_resolve(&back, &qf, &cat, p);
            TU_CHECK(st.code == TSR_OK && back.n == qs.n && back.q[2].n_rel == 2 &&
                         back.q[2].rel[0] == qs.q[2].rel[0],
                     "resolve: %s", st.msg);
            tsr_queryset_free(&back);
            tsr_qfile_free(&qf);
        }
        const char *unk = "{\"query\": \"a\", \"relevant\": [\"nope\"]}";
        tsr_qfile_parse(&qf, unk, strlen(unk), "u.jsonl");
        tsr_queryset back = {0};
        st = tsr_qfile_resolve(&back, &qf, &cat, "u.jsonl");
        TU_CHECK(st.code != TSR_OK && strstr(st.msg, "u.jsonl:1: unknown item 'nope'"), "unknown item: %s",
                 st.msg);
        tsr_qfile_free(&qf);
        const char *usr = "{\"query\": \"a\", \"relevant\": [\"fooview\"], \"user\": 3}";
        tsr_qfile_parse(&qf, usr, strlen(usr), "u.jsonl");
        st = tsr_qfile_resolve(&back, &qf, &cat, "u.jsonl");
        TU_CHECK(st.code != TSR_OK && strstr(st.msg, "no users"), "user on a catalog without users: %s", st.msg);
        tsr_qfile_free(&qf);
        tsr_queryset_free(&back);
        tsr_queryset_free(&qs);
        tsr_catalog_free(&cat);
    }
    /* a malformed package line names file and line */
    snprintf(p, sizeof p, "%s/packages.jsonl.gz", dir);
    write_gz(p, "{\"package\": \"a\"}\n{\"package\": \"b\"\n");
    st = tsr_catalog_load_debian(&cat, dir);
    TU_CHECK(st.code != TSR_OK && strstr(st.msg, "packages.jsonl.gz:2:"), "bad line: %s", st.msg);
    unlink(p);
    st = tsr_catalog_load_debian(&cat, dir);
    TU_CHECK(st.code == TSR_ERR_IO && strstr(st.msg, "packages.jsonl.gz"), "missing file: %s", st.msg);
    const char *names[] = {"appstream.jsonl.gz", "virtual-package-names-list.yaml.gz", "q.jsonl"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* ------------------------------------------ item-to-item constructions */

static int find_q(const tsr_queryset *qs, const tsr_catalog *cat, const char *trigger) {
    for (int i = 0; i < qs->n; i++)
        if (qs->q[i].trigger >= 0 && strcmp(cat->items[qs->q[i].trigger].id, trigger) == 0) return i;
    return -1;
}

/* the relevant ids of a query, sorted by item index, comma-joined */
static void rel_ids(const tsr_queryset *qs, const tsr_catalog *cat, int q, char *out, size_t n) {
    size_t at = 0;
    out[0] = 0;
    for (int j = 0; q >= 0 && j < qs->q[q].n_rel; j++)
        at += (size_t)snprintf(out + at, n - at, "%s%s", j ? "," : "", cat->items[qs->q[q].rel[j]].id);
}

static void test_i2i(void) {
    char dir[] = "/tmp/tsr_i2i_XXXXXX", p[512];
    TSR_ASSERT(mkdtemp(dir));
    /* alpha recommends beta, itself and a virtual name, suggests gamma; delta
     * suggests beta. Sources: {alpha, beta}, {gamma, delta}, solo, a family of
     * 50 (kept) and one of 51 (skipped). */
    size_t cap = 1 << 16, at = 0;
    char *buf = malloc(cap);
    TSR_ASSERT(buf);
    at += (size_t)snprintf(buf + at, cap - at,
                           "{\"package\": \"alpha\", \"source\": \"alpha\", \"summary\": \"alpha tool\", "
                           "\"recommends\": [\"beta\", \"alpha\", \"virt-name\"], \"suggests\": [\"gamma\"]}\n"
                           "{\"package\": \"beta\", \"source\": \"alpha\", \"summary\": \"beta data\"}\n"
                           "{\"package\": \"gamma\", \"source\": \"gamma\", \"summary\": \"gamma\"}\n"
                           "{\"package\": \"delta\", \"source\": \"gamma\", \"summary\": \"delta\", "
                           "\"suggests\": [\"beta\"]}\n"
                           "{\"package\": \"solo\", \"source\": \"solo\", \"summary\": \"alone\"}\n");
    for (int i = 0; i < 50; i++)
        at += (size_t)snprintf(buf + at, cap - at, "{\"package\": \"mid%d\", \"source\": \"mid\", \"summary\": \"m\"}\n", i);
    for (int i = 0; i < 51; i++)
        at += (size_t)snprintf(buf + at, cap - at, "{\"package\": \"big%d\", \"source\": \"big\", \"summary\": \"b\"}\n", i);
    snprintf(p, sizeof p, "%s/packages.jsonl.gz", dir);
    write_gz(p, buf);
    free(buf);
    snprintf(p, sizeof p, "%s/appstream.jsonl.gz", dir);
    write_gz(p, "");
    snprintf(p, sizeof p, "%s/virtual-package-names-list.yaml.gz", dir);
    write_gz(p, "virtualPackages:\n - name: virt-name\n   description: a virtual name\n");
    tsr_catalog cat;
    tsr_status st = tsr_catalog_load_debian(&cat, dir);
    TU_CHECK(st.code == TSR_OK, "i2i catalog: %s", st.msg);
    if (st.code == TSR_OK) {
        char got[4096];
        tsr_queryset qs = {0};
        TU_CHECK(tsr_queries_build(&qs, &cat, TSR_QC_I2I_RECOMMENDS).code == TSR_OK, "i2i-recommends builds");
        TU_CHECK(qs.n == 4, "i2i-recommends: 4 triggers (solo and the families have none): %d", qs.n);
        rel_ids(&qs, &cat, find_q(&qs, &cat, "alpha"), got, sizeof got);
        TU_CHECK(strcmp(got, "beta,gamma") == 0, "alpha -> recommends + suggests, itself and virtual names dropped: %s",
                 got);
        rel_ids(&qs, &cat, find_q(&qs, &cat, "beta"), got, sizeof got);
        TU_CHECK(strcmp(got, "alpha,delta") == 0, "beta <- recommended by alpha, suggested by delta: %s", got);
        rel_ids(&qs, &cat, find_q(&qs, &cat, "gamma"), got, sizeof got);
        TU_CHECK(strcmp(got, "alpha") == 0, "gamma <- suggested by alpha: %s", got);
        int a = find_q(&qs, &cat, "alpha");
        bool ok = true;
        for (int i = 0; i < qs.n; i++) {
            const tsr_query *q = &qs.q[i];
            ok &= q->construction == TSR_QC_I2I_RECOMMENDS && q->user == -1;
            ok &= q->split == tsr_query_split(cat.items[q->trigger].id);
            ok &= strcmp(tsr_query_split_key(&cat, q), cat.items[q->trigger].id) == 0;
            for (int j = 0; j < q->n_rel; j++) ok &= q->rel[j] != q->trigger;
        }
        TU_CHECK(ok, "split by the trigger's id, the trigger never relevant");
        TU_CHECK(a >= 0 && strcmp(qs.q[a].text, "alpha\nalpha tool") == 0, "query text is name + summary");
        /* JSONL round trip keeps the trigger; bad triggers are one-line errors */
        snprintf(p, sizeof p, "%s/q.jsonl", dir);
        TU_CHECK(tsr_queryset_write(&qs, &cat, -1, p).code == TSR_OK, "write i2i queries");
        tsr_qfile qf;
        st = tsr_qfile_read(&qf, p);
        TU_CHECK(st.code == TSR_OK && qf.n == qs.n && qf.l[0].trigger, "read back: %s", st.msg);
        if (st.code == TSR_OK) {
            tsr_queryset back = {0};
            st = tsr_qfile_resolve(&back, &qf, &cat, p);
            ok = st.code == TSR_OK && back.n == qs.n;
            for (int i = 0; ok && i < back.n; i++)
                ok &= back.q[i].trigger == qs.q[i].trigger && back.q[i].split == qs.q[i].split &&
                      back.q[i].n_rel == qs.q[i].n_rel;
            TU_CHECK(ok, "resolve keeps trigger and split: %s", st.msg);
            tsr_queryset_free(&back);
            tsr_qfile_free(&qf);
        }
        const char *bad[][2] = {
            {"{\"query\": \"a\", \"relevant\": [\"beta\"], \"trigger\": \"nope\"}", "u.jsonl:1: unknown trigger 'nope'"},
            {"{\"query\": \"a\", \"relevant\": [\"beta\"], \"trigger\": \"beta\"}", "u.jsonl:1: the trigger 'beta' is among"},
            {"{\"query\": \"a\", \"relevant\": [\"beta\"], \"trigger\": [1]}", "u.jsonl:1: \"trigger\" must be an item id"},
        };
        for (int i = 0; i < 3; i++) {
            tsr_queryset back = {0};
            st = tsr_qfile_parse(&qf, bad[i][0], strlen(bad[i][0]), "u.jsonl");
            if (st.code == TSR_OK) {
                st = tsr_qfile_resolve(&back, &qf, &cat, "u.jsonl");
                tsr_qfile_free(&qf);
            }
            TU_CHECK(st.code != TSR_OK && strstr(st.msg, bad[i][1]) && !strchr(st.msg, '\n'), "bad trigger %d: %s", i,
                     st.msg);
            tsr_queryset_free(&back);
        }
        tsr_queryset_free(&qs);

        TU_CHECK(tsr_queries_build(&qs, &cat, TSR_QC_I2I_SOURCE).code == TSR_OK, "i2i-source builds");
        TU_CHECK(qs.n == 54, "i2i-source: alpha, beta, gamma, delta and the 50-family; the 51-family skipped: %d", qs.n);
        rel_ids(&qs, &cat, find_q(&qs, &cat, "beta"), got, sizeof got);
        TU_CHECK(strcmp(got, "alpha") == 0, "beta -> its source sibling: %s", got);
        rel_ids(&qs, &cat, find_q(&qs, &cat, "delta"), got, sizeof got);
        TU_CHECK(strcmp(got, "gamma") == 0, "delta -> its source sibling: %s", got);
        int m = find_q(&qs, &cat, "mid7");
        TU_CHECK(m >= 0 && qs.q[m].n_rel == 49 && find_q(&qs, &cat, "big0") < 0 && find_q(&qs, &cat, "solo") < 0,
                 "a 50-binary family is kept (49 siblings), a 51-binary one skipped, a singleton has none");
        /* deterministic: built twice, the same queries */
        tsr_queryset q2 = {0};
        tsr_queries_build(&q2, &cat, TSR_QC_I2I_SOURCE);
        ok = q2.n == qs.n;
        for (int i = 0; ok && i < qs.n; i++)
            ok &= q2.q[i].trigger == qs.q[i].trigger && q2.q[i].split == qs.q[i].split &&
                  strcmp(q2.q[i].text, qs.q[i].text) == 0 && q2.q[i].n_rel == qs.q[i].n_rel &&
                  memcmp(q2.q[i].rel, qs.q[i].rel, (size_t)qs.q[i].n_rel * sizeof *qs.q[i].rel) == 0;
        TU_CHECK(ok, "i2i-source is deterministic");
        tsr_queryset_free(&q2);
        tsr_queryset_free(&qs);
        tsr_catalog_free(&cat);
    }
    const char *names[] = {"packages.jsonl.gz", "appstream.jsonl.gz", "virtual-package-names-list.yaml.gz", "q.jsonl"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* ------------------------------------------------------- real data */

#define DEB "../shared/data/debian-catalog"
#define ML "../shared/data/movielens-latest-small"

static void test_real(void) {
    if (access(DEB "/packages.jsonl.gz", R_OK) != 0) {
        printf("debian catalog not found: real-data checks skipped\n");
        return;
    }
    tsr_catalog cat;
    tsr_status st = tsr_catalog_load_debian(&cat, DEB);
    TU_CHECK(st.code == TSR_OK, "debian: %s", st.msg);
    if (st.code != TSR_OK) return;
    TU_CHECK(cat.n_items == 63697 && cat.n_virt == 103, "items %d virtual %d", cat.n_items, cat.n_virt);
    int with_tags = 0;
    for (int32_t i = 0; i < cat.n_items; i++) with_tags += cat.items[i].n_tags > 0;
    TU_CHECK(with_tags == 28630, "packages with debtags: %d", with_tags);
    int32_t c6 = tsr_catalog_find(&cat, "libc6"), z = tsr_catalog_find(&cat, "zathura");
    TU_CHECK(c6 >= 0 && z >= 0 && cat.items[c6].efficiency > cat.items[z].efficiency, "popularity order");
    /* every construction: queries exist, labels are valid items, no text in two splits */
    for (int c = 0; c < TSR_QC_MOVIELENS; c++) {
        tsr_queryset qs = {0};
        st = tsr_queries_build(&qs, &cat, c);
        int per[TSR_SPLIT_COUNT] = {0}, bad = 0;
        for (int i = 0; i < qs.n; i++) {
            per[qs.q[i].split]++;
            bad += qs.q[i].n_rel < 1 || qs.q[i].split != tsr_query_split(qs.q[i].text);
            for (int j = 0; j < qs.q[i].n_rel; j++) bad += qs.q[i].rel[j] < 0 || qs.q[i].rel[j] >= cat.n_items;
        }
        TU_CHECK(st.code == TSR_OK && per[0] > 0 && per[1] > 0 && per[2] > 0 && bad == 0,
                 "%s: %d/%d/%d, %d bad", tsr_qc_names[c], per[0], per[1], per[2], bad);
        tsr_queryset_free(&qs);
    }
    /* the item-to-item constructions: triggers in every split, never their own relevant item */
    for (int c = TSR_QC_I2I_RECOMMENDS; c <= TSR_QC_I2I_SOURCE; c++) {
        tsr_queryset qs = {0};
        st = tsr_queries_build(&qs, &cat, c);
        int per[TSR_SPLIT_COUNT] = {0}, bad = 0;
        for (int i = 0; i < qs.n; i++) {
            const tsr_query *q = &qs.q[i];
            per[q->split]++;
            bad += q->trigger < 0 || q->n_rel < 1 || q->n_rel > TSR_QC_MAX_REL ||
                   q->split != tsr_query_split(cat.items[q->trigger].id);
            for (int j = 0; j < q->n_rel; j++) bad += q->rel[j] == q->trigger;
        }
        printf("%s: %d/%d/%d triggers (train/valid/test)\n", tsr_qc_names[c], per[0], per[1], per[2]);
        TU_CHECK(st.code == TSR_OK && per[0] > 1000 && per[1] > 100 && per[2] > 100 && bad == 0,
                 "%s: %d/%d/%d, %d bad", tsr_qc_names[c], per[0], per[1], per[2], bad);
        tsr_queryset_free(&qs);
    }
    tsr_bm25 ix;
    tsr_bm25_build_catalog(&ix, &cat, TSR_F_ALL, 1.2f, 0.75f);
    int32_t d[10];
    float s[10];
    int n = tsr_bm25_search(&ix, "pdf viewer", 10, d, s, NULL), viewers = 0;
    for (int i = 0; i < n; i++) viewers += strstr(cat.items[d[i]].summary, "PDF") != NULL;
    TU_CHECK(n == 10 && viewers >= 8, "pdf viewer: %d of the top 10 mention PDF", viewers);
    tsr_bm25_free(&ix);
    tsr_catalog_free(&cat);

    if (access(ML "/tags.csv", R_OK) != 0) return;
    st = tsr_catalog_load_movielens(&cat, ML);
    TU_CHECK(st.code == TSR_OK, "movielens: %s", st.msg);
    if (st.code != TSR_OK) return;
    TU_CHECK(cat.n_items == 9742 && cat.n_users == 610 && cat.n_tag_apps == 3683, "movies %d users %d tags %d",
             cat.n_items, cat.n_users, cat.n_tag_apps);
    int64_t total = 0;
    bool sorted = true;
    for (int32_t u = 0; u < cat.n_users; u++) {
        total += cat.users[u].n;
        for (int i = 1; i < cat.users[u].n; i++) sorted &= cat.users[u].times[i - 1] <= cat.users[u].times[i];
    }
    TU_CHECK(total == 100836 && sorted, "ratings %lld, time order %d", (long long)total, sorted);
    tsr_queryset qs = {0};
    st = tsr_queries_build(&qs, &cat, TSR_QC_MOVIELENS);
    TU_CHECK(st.code == TSR_OK && qs.n > 1000 && qs.q[0].user >= 0, "movielens queries %d", qs.n);
    tsr_queryset_free(&qs);
    tsr_catalog_free(&cat);
}

int main(void) {
    test_tokenizer();
    test_bm25_hand();
    test_bm25_score_bits();
    test_metrics_ref();
    test_qfile();
    test_tiny_catalog();
    test_i2i();
    test_real();
    return tu_finish("search");
}
