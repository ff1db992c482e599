/* tessera CLI: `tessera higen index|train|search|eval|bench|queries` —
 * generative retrieval over the Debian catalog (src/models/higen) and the
 * shared search baselines (src/search). Results on stdout (JSON with
 * --json), progress on stderr. */
#include "cli/args.h"

#include "tessera/search.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define DEFAULT_CATALOG "../shared/data/debian-catalog"
#define CATALOG_HINT                                                                          \
    "--catalog must be the Debian catalog directory (packages.jsonl.gz, appstream.jsonl.gz, " \
    "virtual-package-names-list.yaml.gz) or a MovieLens directory (movies.csv, ratings.csv, tags.csv)"
/* BM25 parameters tuned on the validation queries of the four Debian
 * constructions (docs/higen.md, "BM25 tuning"). */
#define BM25_K1 1.2f
#define BM25_B 0.4f

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* `-k N` (the spelling) is accepted as `--k N`. */
static char **fix_short_k(int argc, char **argv) {
    char **v = malloc((size_t)(argc + 1) * sizeof *v);
    TSR_ASSERT(v);
    for (int i = 0; i < argc; i++) v[i] = strcmp(argv[i], "-k") == 0 ? "--k" : argv[i];
    v[argc] = NULL;
    return v;
}

static bool is_movielens(const char *dir) {
    char p[1024];
    struct stat sb;
    snprintf(p, sizeof p, "%s/movies.csv", dir);
    return stat(p, &sb) == 0;
}

static int load_catalog(const char *dir, tsr_catalog *cat) {
    double t0 = now_s();
    tsr_status st = is_movielens(dir) ? tsr_catalog_load_movielens(cat, dir) : tsr_catalog_load_debian(cat, dir);
    if (st.code != TSR_OK) return cli_fail(st, CATALOG_HINT);
    fprintf(stderr, "catalog: %d items from %s (%.1f s)\n", cat->n_items, dir, now_s() - t0);
    return CLI_OK;
}

/* ------------------------------------------------------------ methods */

enum { M_BM25, M_BIENCODER, M_HIGEN, M_NCI, M_DSI, M_COUNT };
static const char *const k_methods[M_COUNT] = {"bm25", "biencoder", "higen", "nci", "dsi"};

static int method_from(const char *prog, const char *name) {
    for (int i = 0; i < M_COUNT; i++)
        if (strcmp(name, k_methods[i]) == 0) return i;
    cli_usage_error(prog, "unknown --method '%s' (bm25, biencoder, higen, nci, dsi)", name);
    return -1;
}

/* A retriever answers a query with up to k item indices, best first. */
typedef struct {
    int method;
    const tsr_catalog *cat;
    tsr_bm25 bm25;
    unsigned fields;
    float *scratch;
    float *scores;
} retriever;

static int retriever_open(retriever *r, int method, const tsr_catalog *cat, unsigned fields, float k1, float b) {
    memset(r, 0, sizeof *r);
    r->method = method;
    r->cat = cat;
    r->fields = fields;
    if (method != M_BM25)
        return cli_fail(tsr_errorf(TSR_ERR_ARG, "method '%s' has no trained model in this build", k_methods[method]),
                        "use --method bm25");
    double t0 = now_s();
    tsr_bm25_build_catalog(&r->bm25, cat, fields, k1, b);
    r->scratch = calloc((size_t)cat->n_items, sizeof *r->scratch);
    r->scores = malloc(1024 * sizeof *r->scores);
    TSR_ASSERT(r->scratch && r->scores);
    fprintf(stderr, "bm25: %d terms over %d items (k1 %.2f, b %.2f, %.1f s)\n", r->bm25.n_terms, r->bm25.n_docs,
            (double)k1, (double)b, now_s() - t0);
    return CLI_OK;
}

static int retrieve(retriever *r, const tsr_query *q, int k, int32_t *out) {
    if (k > 1024) k = 1024;
    return tsr_bm25_search(&r->bm25, q->text, k, out, r->scores, r->scratch);
}

static void retriever_close(retriever *r) {
    tsr_bm25_free(&r->bm25);
    free(r->scratch);
    free(r->scores);
}

/* ------------------------------------------------------------ queries */

/* The queries an eval or queries verb works on: a JSONL file, or one
 * construction's split. */
#define QFILE_HINT "each line must be {\"query\": str, \"relevant\": [item ids], \"user\": optional}"

/* qf: the parsed --queries file (read before the catalog, so that a bad
 * file fails at once), or NULL for a construction. */
static int load_queries(const char *prog, const tsr_catalog *cat, const tsr_qfile *qf, const char *file,
                        const char *construction, const char *split, tsr_queryset *qs, int *qc) {
    memset(qs, 0, sizeof *qs);
    *qc = TSR_QC_FILE;
    if (qf) {
        tsr_status st = tsr_qfile_resolve(qs, qf, cat, file);
        if (st.code != TSR_OK) return cli_fail(st, QFILE_HINT);
        return CLI_OK;
    }
    int c = tsr_qc_from_name(construction);
    if (c < 0 || c == TSR_QC_FILE)
        return cli_usage_error(prog, "unknown --construction '%s' (appstream, virtual, debtags, known-item, movielens)",
                               construction);
    int sp = -1;
    if (strcmp(split, "all") != 0 && (sp = tsr_split_from_name(split)) < 0)
        return cli_usage_error(prog, "unknown --split '%s' (train, valid, test, all)", split);
    tsr_queryset all = {0};
    tsr_status st = tsr_queries_build(&all, cat, c);
    if (st.code != TSR_OK) {
        tsr_queryset_free(&all);
        return cli_fail(st, "the movielens construction needs --catalog ../shared/data/movielens-latest-small");
    }
    for (int32_t i = 0; i < all.n; i++)
        if (sp < 0 || all.q[i].split == sp)
            tsr_queryset_add(qs, all.q[i].text, all.q[i].user, all.q[i].rel, all.q[i].n_rel, c, all.q[i].split);
    tsr_queryset_free(&all);
    *qc = c;
    return CLI_OK;
}

static int cmd_queries(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *construction = NULL, *split = "all", *out = NULL;
    const arg_spec specs[] = {
        {"catalog", ARG_STR, &catalog, "DIR", "Debian catalog or MovieLens directory", NULL},
        {"construction", ARG_STR, &construction, "NAME", "appstream, virtual, debtags, known-item or movielens", NULL},
        {"split", ARG_STR, &split, "NAME", "train, valid, test or all", NULL},
        {"out", ARG_STR, &out, "PATH", "JSONL query file to write", NULL},
    };
    int rc = args_parse(prog, "Write one construction's queries as a JSONL query file (the format eval reads).",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!construction || !out) return cli_usage_error(prog, "--construction and --out are required");
    if ((rc = cli_check_output(prog, "out", out, false)) != CLI_OK) return rc;
    tsr_catalog cat;
    if ((rc = load_catalog(catalog, &cat)) != CLI_OK) return rc;
    tsr_queryset qs;
    int qc;
    rc = load_queries(prog, &cat, NULL, NULL, construction, split, &qs, &qc);
    if (rc == CLI_OK) {
        tsr_status st = tsr_queryset_write(&qs, &cat, -1, out);
        if (st.code != TSR_OK) rc = cli_fail(st, "--out must be a writable path");
        else fprintf(stderr, "wrote %d queries to %s\n", qs.n, out);
    }
    tsr_queryset_free(&qs);
    tsr_catalog_free(&cat);
    return rc;
}

/* --------------------------------------------------------------- eval */

static int cmd_eval(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *queries = NULL, *construction = NULL, *split = "valid",
               *method_name = "bm25";
    float k1 = BM25_K1, b = BM25_B;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"queries", ARG_STR, &queries, "FILE", "JSONL queries: {\"query\", \"relevant\": [ids], \"user\"}", NULL},
        {"method", ARG_STR, &method_name, "NAME", "bm25 (biencoder, higen, nci, dsi: once trained)", NULL},
        {"catalog", ARG_STR, &catalog, "DIR", "Debian catalog or MovieLens directory", NULL},
        {"construction", ARG_STR, &construction, "NAME", "instead of --queries: a built-in construction", NULL},
        {"split", ARG_STR, &split, "NAME", "the construction's split: train, valid, test or all", NULL},
        {"k1", ARG_FLOAT, &k1, "X", "BM25 term-frequency saturation", NULL},
        {"b", ARG_FLOAT, &b, "X", "BM25 length normalisation", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Rank the catalog for each query and print recall@1/10/100, mrr@10, ndcg@10 and queries/s.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (!queries == !construction) return cli_usage_error(prog, "give exactly one of --queries and --construction");
    if ((rc = cli_check_float(prog, "k1", k1, 0, 100)) != CLI_OK || (rc = cli_check_float(prog, "b", b, 0, 1)) != CLI_OK)
        return rc;
    int method = method_from(prog, method_name);
    if (method < 0) return CLI_USAGE;
    tsr_qfile qf = {0};
    if (queries) {
        tsr_status st = tsr_qfile_read(&qf, queries);
        if (st.code != TSR_OK) return cli_fail(st, QFILE_HINT);
    }
    tsr_catalog cat;
    if ((rc = load_catalog(catalog, &cat)) != CLI_OK) {
        tsr_qfile_free(&qf);
        return rc;
    }
    tsr_queryset qs;
    int qc;
    rc = load_queries(prog, &cat, queries ? &qf : NULL, queries, construction, split, &qs, &qc);
    tsr_qfile_free(&qf);
    if (rc != CLI_OK) {
        tsr_catalog_free(&cat);
        return rc;
    }
    retriever r;
    if ((rc = retriever_open(&r, method, &cat, TSR_F_ALL & ~tsr_qc_hidden(qc), k1, b)) != CLI_OK) {
        tsr_queryset_free(&qs);
        tsr_catalog_free(&cat);
        return rc;
    }
    int32_t ranked[100];
    tsr_metric_acc acc = {0};
    double t0 = now_s();
    for (int32_t i = 0; i < qs.n; i++) {
        int n = retrieve(&r, &qs.q[i], 100, ranked);
        tsr_metric_add(&acc, ranked, n, qs.q[i].rel, qs.q[i].n_rel);
    }
    double dt = now_s() - t0;
    tsr_rank_metrics m = tsr_metric_mean(&acc);
    double qps = dt > 0 ? (double)qs.n / dt : 0;
    if (cm.json) {
        printf("{\"method\": \"%s\", \"queries\": %lld, \"recall@1\": %.4f, \"recall@10\": %.4f, \"recall@100\": %.4f, "
               "\"mrr@10\": %.4f, \"ndcg@10\": %.4f, \"qps\": %.1f, \"construction\": \"%s\", \"split\": ",
               k_methods[method], (long long)m.queries, m.recall1, m.recall10, m.recall100, m.mrr10, m.ndcg10, qps,
               tsr_qc_names[qc]);
        cli_json_str(stdout, queries ? "file" : split);
        if (method == M_BM25) printf(", \"k1\": %g, \"b\": %g", (double)k1, (double)b);
        printf("}\n");
    } else {
        printf("method %s, %lld queries (%s%s%s)\n", k_methods[method], (long long)m.queries, tsr_qc_names[qc],
               queries ? "" : ", ", queries ? "" : split);
        printf("recall@1 %.4f  recall@10 %.4f  recall@100 %.4f  mrr@10 %.4f  ndcg@10 %.4f  qps %.1f\n", m.recall1,
               m.recall10, m.recall100, m.mrr10, m.ndcg10, qps);
    }
    retriever_close(&r);
    tsr_queryset_free(&qs);
    tsr_catalog_free(&cat);
    return CLI_OK;
}

/* ------------------------------------------------------------- search */

static int cmd_search(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *query = NULL, *method_name = "bm25";
    int k = 10;
    int64_t user = -1;
    bool user_set = false;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"query", ARG_STR, &query, "TEXT", "what to search for", NULL},
        {"user", ARG_I64, &user, "ID", "user id (personalised catalog only)", &user_set},
        {"k", ARG_INT, &k, "N", "results to print (also -k)", NULL},
        {"method", ARG_STR, &method_name, "NAME", "bm25 (biencoder, higen, nci, dsi: once trained)", NULL},
        {"catalog", ARG_STR, &catalog, "DIR", "Debian catalog or MovieLens directory", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    char **av = fix_short_k(argc, argv);
    int rc = args_parse(prog, "Print the top-k items for a query: id, name and summary.", specs,
                        (int)(sizeof specs / sizeof specs[0]), argc, av);
    free(av);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (!query) return cli_usage_error(prog, "--query is required");
    bool blank = true;
    for (const char *p = query; *p; p++) blank &= (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r');
    if (blank) return cli_usage_error(prog, "--query is empty");
    if ((rc = cli_check_int(prog, "k", k, 1, 1000)) != CLI_OK) return rc;
    if (user_set && user < 0) return cli_usage_error(prog, "--user must be a non-negative id");
    int method = method_from(prog, method_name);
    if (method < 0) return CLI_USAGE;
    tsr_catalog cat;
    if ((rc = load_catalog(catalog, &cat)) != CLI_OK) return rc;
    if (user_set && tsr_catalog_find_user(&cat, user) < 0) {
        tsr_catalog_free(&cat);
        return cli_fail(tsr_errorf(TSR_ERR_ARG, "unknown user %lld in %s", (long long)user, catalog),
                        cat.n_users ? "--user must be a user id of the catalog" : "this catalog has no users: drop --user");
    }
    retriever r;
    if ((rc = retriever_open(&r, method, &cat, TSR_F_ALL, BM25_K1, BM25_B)) != CLI_OK) {
        tsr_catalog_free(&cat);
        return rc;
    }
    int32_t *top = malloc((size_t)k * sizeof *top);
    TSR_ASSERT(top);
    tsr_query q = {.text = (char *)query, .user = user};
    double t0 = now_s();
    int n = retrieve(&r, &q, k, top);
    double ms = 1e3 * (now_s() - t0);
    if (cm.json) printf("{\"query\": "), cli_json_str(stdout, query), printf(", \"ms\": %.3f, \"results\": [", ms);
    for (int i = 0; i < n; i++) {
        const tsr_item *it = &cat.items[top[i]];
        if (cm.json) {
            printf("%s{\"id\": ", i ? ", " : "");
            cli_json_str(stdout, it->id);
            printf(", \"name\": ");
            cli_json_str(stdout, it->title);
            printf(", \"summary\": ");
            cli_json_str(stdout, it->summary);
            printf(", \"score\": %.4f}", (double)r.scores[i]);
        } else {
            printf("%2d. %-28s %s\n", i + 1, it->title, it->summary);
        }
    }
    if (cm.json) printf("]}\n");
    else if (n == 0) printf("(no matching items)\n");
    fprintf(stderr, "%d results in %.2f ms\n", n, ms);
    free(top);
    retriever_close(&r);
    tsr_catalog_free(&cat);
    return CLI_OK;
}


/* ---------------------------------------------------------- tune-bm25 */

static int cmd_tune_bm25(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *split = "valid";
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"catalog", ARG_STR, &catalog, "DIR", "Debian catalog directory", NULL},
        {"split", ARG_STR, &split, "NAME", "the split to tune on (valid; never test)", NULL},
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Grid over BM25's k1 and b, scored by ndcg@10 averaged over the Debian constructions' "
                        "queries of one split (each construction weighs the same).",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    int sp = tsr_split_from_name(split);
    if (sp < 0) return cli_usage_error(prog, "unknown --split '%s' (train, valid, test)", split);
    tsr_catalog cat;
    if ((rc = load_catalog(catalog, &cat)) != CLI_OK) return rc;
    if (cat.kind != TSR_CATALOG_DEBIAN) {
        tsr_catalog_free(&cat);
        return cli_usage_error(prog, "--catalog must be the Debian catalog");
    }
    enum { NC = TSR_QC_MOVIELENS };
    tsr_queryset qs[NC];
    for (int c = 0; c < NC; c++) {
        tsr_queryset all = {0};
        memset(&qs[c], 0, sizeof qs[c]);
        tsr_queries_build(&all, &cat, c);
        for (int32_t i = 0; i < all.n; i++)
            if (all.q[i].split == sp)
                tsr_queryset_add(&qs[c], all.q[i].text, -1, all.q[i].rel, all.q[i].n_rel, c, sp);
        tsr_queryset_free(&all);
    }
    tsr_bm25 ix[2]; /* all fields; tags hidden (debtags queries) */
    tsr_bm25_build_catalog(&ix[0], &cat, TSR_F_ALL, 1, 1);
    tsr_bm25_build_catalog(&ix[1], &cat, TSR_F_ALL & ~tsr_qc_hidden(TSR_QC_DEBTAGS), 1, 1);
    float *scratch = calloc((size_t)cat.n_items, sizeof *scratch), scores[100];
    TSR_ASSERT(scratch);
    static const float k1s[] = {0.3f, 0.6f, 0.9f, 1.2f, 1.6f, 2.0f, 3.0f};
    static const float bs[] = {0.2f, 0.4f, 0.6f, 0.75f, 0.9f, 1.0f};
    float best_k1 = 0, best_b = 0;
    double best = -1;
    int32_t ranked[100];
    for (size_t a = 0; a < sizeof k1s / sizeof *k1s; a++)
        for (size_t bb = 0; bb < sizeof bs / sizeof *bs; bb++) {
            double macro = 0, per[NC];
            for (int c = 0; c < NC; c++) {
                tsr_bm25 *x = &ix[tsr_qc_hidden(c) ? 1 : 0];
                x->k1 = k1s[a];
                x->b = bs[bb];
                tsr_metric_acc acc = {0};
                for (int32_t i = 0; i < qs[c].n; i++) {
                    int n = tsr_bm25_search(x, qs[c].q[i].text, 100, ranked, scores, scratch);
                    tsr_metric_add(&acc, ranked, n, qs[c].q[i].rel, qs[c].q[i].n_rel);
                }
                per[c] = tsr_metric_mean(&acc).ndcg10;
                macro += per[c] / NC;
            }
            if (cm.json)
                printf("{\"k1\": %g, \"b\": %g, \"ndcg@10\": %.4f, \"appstream\": %.4f, \"virtual\": %.4f, "
                       "\"debtags\": %.4f, \"known-item\": %.4f}\n",
                       (double)k1s[a], (double)bs[bb], macro, per[0], per[1], per[2], per[3]);
            else
                printf("k1 %.2f b %.2f  ndcg@10 %.4f  (appstream %.4f virtual %.4f debtags %.4f known-item %.4f)\n",
                       (double)k1s[a], (double)bs[bb], macro, per[0], per[1], per[2], per[3]);
            if (macro > best) best = macro, best_k1 = k1s[a], best_b = bs[bb];
        }
    fprintf(stderr, "best on %s: k1 %.2f b %.2f ndcg@10 %.4f\n", split, (double)best_k1, (double)best_b, best);
    free(scratch);
    tsr_bm25_free(&ix[0]);
    tsr_bm25_free(&ix[1]);
    for (int c = 0; c < NC; c++) tsr_queryset_free(&qs[c]);
    tsr_catalog_free(&cat);
    return CLI_OK;
}

static const cli_verb k_verbs[] = {
    {"search", "top-k items for a query", cmd_search},
    {"eval", "recall@1/10/100, mrr@10, ndcg@10, qps over a query set", cmd_eval},
    {"queries", "write a built-in query construction as a JSONL file", cmd_queries},
    {"tune-bm25", "grid over BM25's k1 and b on one split's queries", cmd_tune_bm25},
    {NULL, NULL, NULL},
};

const cli_family cli_family_higen = {"higen", "Hi-Gen: generative retrieval over the Debian catalog, and its baselines",
                                     k_verbs};
