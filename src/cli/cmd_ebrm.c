/* tessera CLI: `tessera ebrm eval` — entity-based relevance re-ranking of
 * the BM25 top-100 (src/models/ebrm). Only the BM25 method runs so far:
 * the EBRM, cross-encoder and bi-encoder methods need trained models that
 * do not exist yet (docs/ebrm.md, "Remaining"). Results on stdout (JSON
 * with --json), progress on stderr. */
#include "cli/args.h"

#include "tessera/ebrm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CATALOG "../shared/data/debian-catalog"
#define QFILE_HINT "each line must be {\"query\": str, \"relevant\": [item ids], \"user\": optional}"
#define CATALOG_HINT "--catalog must be the Debian catalog directory (packages.jsonl.gz, appstream.jsonl.gz, virtual-package-names-list.yaml.gz)"
#define N_CAND 100

static const char *const k_methods[] = {"ebrm", "cross-encoder", "bi-encoder", "bm25"};

static int cmd_eval(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *queries = NULL, *method = "ebrm";
    float k1 = 1.2f, b = 0.4f; /* the search module's tuned values (docs/higen.md) */
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"queries", ARG_STR, &queries, "FILE", "JSONL queries: {\"query\", \"relevant\": [ids]} (higen's format)", NULL},
        {"method", ARG_STR, &method, "NAME", "ebrm, cross-encoder, bi-encoder or bm25 (only bm25 is built yet)", NULL},
        {"catalog", ARG_STR, &catalog, "DIR", "Debian catalog directory", NULL},
        {"k1", ARG_FLOAT, &k1, "X", "BM25 term-frequency saturation", NULL},
        {"b", ARG_FLOAT, &b, "X", "BM25 length normalisation", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Re-rank each query's BM25 top-100 and print method, queries, ndcg@10, auc, recall@10, mrr@10.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (!queries) return cli_usage_error(prog, "--queries FILE is required");
    if ((rc = cli_check_float(prog, "k1", k1, 0, 100)) != CLI_OK || (rc = cli_check_float(prog, "b", b, 0, 1)) != CLI_OK)
        return rc;
    int m = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(method, k_methods[i]) == 0) m = i;
    if (m < 0) return cli_usage_error(prog, "unknown --method '%s' (ebrm, cross-encoder, bi-encoder, bm25)", method);
    if (m != 3)
        return cli_fail(tsr_errorf(TSR_ERR_ARG, "--method %s needs a trained model, and none exists yet", method),
                        "use --method bm25; docs/ebrm.md lists what remains");
    tsr_qfile qf = {0};
    tsr_status st = tsr_qfile_read(&qf, queries);
    if (st.code != TSR_OK) return cli_fail(st, QFILE_HINT);
    tsr_catalog cat;
    st = tsr_catalog_load_debian(&cat, catalog);
    if (st.code != TSR_OK) {
        tsr_qfile_free(&qf);
        return cli_fail(st, CATALOG_HINT);
    }
    tsr_queryset qs = {0};
    st = tsr_qfile_resolve(&qs, &qf, &cat, queries);
    tsr_qfile_free(&qf);
    if (st.code != TSR_OK) {
        tsr_catalog_free(&cat);
        return cli_fail(st, QFILE_HINT);
    }
    /* queries from a file hide no field (tsr_qc_hidden(TSR_QC_FILE) == 0) */
    tsr_bm25 ix;
    tsr_bm25_build_catalog(&ix, &cat, TSR_F_ALL & ~tsr_qc_hidden(TSR_QC_FILE), k1, b);
    const tsr_bm25 *ixs[TSR_QC_COUNT] = {0};
    ixs[TSR_QC_FILE] = &ix;
    tsr_ebrm_qiset s;
    st = tsr_ebrm_qi_build(&s, &qs, -1, ixs, N_CAND);
    if (st.code != TSR_OK) {
        tsr_bm25_free(&ix);
        tsr_queryset_free(&qs);
        tsr_catalog_free(&cat);
        return cli_fail(st, NULL);
    }
    tsr_metric_acc acc = {0};
    double auc_sum = 0;
    int64_t auc_n = 0;
    for (int32_t i = 0; i < s.n; i++) {
        const tsr_query *q = &qs.q[s.q[i].query];
        /* BM25 re-ranking its own top-100 keeps its order */
        tsr_metric_add(&acc, s.q[i].cand, s.q[i].n, q->rel, q->n_rel);
        double a = tsr_auc(s.q[i].bm25, s.q[i].label, s.q[i].n, NULL);
        if (!isnan(a)) auc_sum += a, auc_n++;
    }
    tsr_rank_metrics r = tsr_metric_mean(&acc);
    double auc = auc_n ? auc_sum / (double)auc_n : NAN;
    if (cm.json)
        printf("{\"method\": \"%s\", \"queries\": %lld, \"ndcg@10\": %.6f, \"auc\": %.6f, \"recall@10\": %.6f, "
               "\"mrr@10\": %.6f, \"auc_queries\": %lld}\n",
               method, (long long)r.queries, r.ndcg10, isnan(auc) ? 0.0 : auc, r.recall10, r.mrr10, (long long)auc_n);
    else
        printf("%s: %lld queries  ndcg@10 %.4f  auc %.4f (over %lld queries with positives and negatives among "
               "the candidates)  recall@10 %.4f  mrr@10 %.4f\n",
               method, (long long)r.queries, r.ndcg10, auc, (long long)auc_n, r.recall10, r.mrr10);
    tsr_ebrm_qiset_free(&s);
    tsr_bm25_free(&ix);
    tsr_queryset_free(&qs);
    tsr_catalog_free(&cat);
    return CLI_OK;
}

static const cli_verb k_verbs[] = {
    {"eval", "re-rank each query's BM25 top-100 and score it: ndcg@10, auc, recall@10, mrr@10", cmd_eval},
    {NULL, NULL, NULL},
};

const cli_family cli_family_ebrm = {"ebrm", "EBRM: entity-based relevance re-ranking over the Debian catalog", k_verbs};
