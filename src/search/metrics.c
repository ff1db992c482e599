/* tessera search: ranking metrics with binary relevance (recall@k, MRR@k,
 * NDCG@k) and ROC AUC with ties, as `higen eval` and `ebrm eval` report
 * them. Checked against tools/refs/gen_search_metrics.py in
 * tests/test_search.c. */
#include "tessera/search.h"

#include <math.h>
#include <string.h>

static bool is_rel(int32_t x, const int32_t *rel, int n_rel) {
    for (int i = 0; i < n_rel; i++)
        if (rel[i] == x) return true;
    return false;
}

double tsr_recall_at(const int32_t *ranked, int n_ranked, const int32_t *rel, int n_rel, int k) {
    if (n_rel <= 0) return 0;
    int hit = 0, m = n_ranked < k ? n_ranked : k;
    for (int i = 0; i < m; i++) hit += is_rel(ranked[i], rel, n_rel);
    return (double)hit / n_rel;
}

double tsr_mrr_at(const int32_t *ranked, int n_ranked, const int32_t *rel, int n_rel, int k) {
    int m = n_ranked < k ? n_ranked : k;
    for (int i = 0; i < m; i++)
        if (is_rel(ranked[i], rel, n_rel)) return 1.0 / (i + 1);
    return 0;
}

double tsr_ndcg_at(const int32_t *ranked, int n_ranked, const int32_t *rel, int n_rel, int k) {
    if (n_rel <= 0) return 0;
    int m = n_ranked < k ? n_ranked : k;
    double dcg = 0, idcg = 0;
    for (int i = 0; i < m; i++)
        if (is_rel(ranked[i], rel, n_rel)) dcg += 1.0 / log2(i + 2.0);
    for (int i = 0; i < (n_rel < k ? n_rel : k); i++) idcg += 1.0 / log2(i + 2.0);
    return dcg / idcg;
}

/* sort order of indices by score ascending (merge sort: O(n log n), stable) */
static void argsort(const float *s, int32_t *ord, int32_t *tmp, int n) {
    for (int i = 0; i < n; i++) ord[i] = i;
    for (int w = 1; w < n; w *= 2) {
        for (int lo = 0; lo < n; lo += 2 * w) {
            int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = s[ord[j]] < s[ord[i]] ? ord[j++] : ord[i++];
            while (i < mid) tmp[k++] = ord[i++];
            while (j < hi) tmp[k++] = ord[j++];
        }
        memcpy(ord, tmp, (size_t)n * sizeof *ord);
    }
}

double tsr_auc(const float *scores, const uint8_t *labels, int n, int32_t *scratch) {
    int64_t npos = 0;
    for (int i = 0; i < n; i++) npos += labels[i] != 0;
    int64_t nneg = n - npos;
    if (npos == 0 || nneg == 0) return NAN;
    int32_t *buf = scratch ? scratch : malloc((size_t)2 * (size_t)n * sizeof *buf);
    TSR_ASSERT(buf);
    int32_t *ord = buf, *tmp = buf + n;
    argsort(scores, ord, tmp, n);
    /* U = sum of the positives' (1-based, tie-averaged) ranks - npos (npos+1)/2 */
    double rank_sum = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && scores[ord[j + 1]] == scores[ord[i]]) j++;
        double avg = 0.5 * (i + j) + 1.0;
        for (int t = i; t <= j; t++)
            if (labels[ord[t]]) rank_sum += avg;
        i = j + 1;
    }
    if (!scratch) free(buf);
    double u = rank_sum - 0.5 * (double)npos * (double)(npos + 1);
    return u / ((double)npos * (double)nneg);
}

void tsr_metric_add(tsr_metric_acc *a, const int32_t *ranked, int n_ranked, const int32_t *rel,
                    int n_rel) {
    a->sum_r1 += tsr_recall_at(ranked, n_ranked, rel, n_rel, 1);
    a->sum_r10 += tsr_recall_at(ranked, n_ranked, rel, n_rel, 10);
    a->sum_r100 += tsr_recall_at(ranked, n_ranked, rel, n_rel, 100);
    a->sum_mrr += tsr_mrr_at(ranked, n_ranked, rel, n_rel, 10);
    a->sum_ndcg += tsr_ndcg_at(ranked, n_ranked, rel, n_rel, 10);
    a->n++;
}

tsr_rank_metrics tsr_metric_mean(const tsr_metric_acc *a) {
    tsr_rank_metrics m = {.queries = a->n};
    if (a->n == 0) return m;
    double n = (double)a->n;
    m.recall1 = a->sum_r1 / n;
    m.recall10 = a->sum_r10 / n;
    m.recall100 = a->sum_r100 / n;
    m.mrr10 = a->sum_mrr / n;
    m.ndcg10 = a->sum_ndcg / n;
    return m;
}
