/* tessera higen: training data over the Debian catalog — the BPE tokenizer,
 * item and query token ids, and (query, positive, hard negative) pairs
 * split by query. Hard negatives are BM25's best non-relevant items
 * (DPR-style, Karpukhin et al. 2020). */
#include "tessera/higen.h"

#include <string.h>

int tsr_higen_view(int construction) { return tsr_qc_hidden(construction) ? 1 : 0; }

int tsr_higen_encode(tsr_bpe *bpe, const char *text, int32_t *out, int n) {
    size_t len = strlen(text);
    if (len > (size_t)n * 8) len = (size_t)n * 8; /* a token covers >= 1 byte; keep the head */
    char *low = malloc(len + 1);
    int32_t *ids = malloc((len + 1) * sizeof *ids);
    TSR_ASSERT(low && ids);
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        low[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch == '\n' ? ' ' : ch);
    }
    low[len] = 0;
    size_t m = tsr_bpe_encode(bpe, low, len, ids);
    int k = (int)(m < (size_t)n ? m : (size_t)n);
    memcpy(out, ids, (size_t)k * sizeof *out);
    if (k == 0) out[k++] = 0;
    free(low);
    free(ids);
    return k;
}

/* a genre's count among a user's liked movies, for the profile's order */
typedef struct {
    const char *name;
    int n;
} genre_count;

static int genre_before(const void *a, const void *b) {
    const genre_count *x = a, *y = b;
    return x->n != y->n ? (x->n < y->n) - (x->n > y->n) : strcmp(x->name, y->name);
}

char *tsr_higen_query_text(const tsr_catalog *cat, const char *text, int32_t user) {
    if (user < 0 || user >= cat->n_users) return strdup(text);
    const tsr_user *u = &cat->users[user];
    genre_count g[64];
    int ng = 0;
    for (int i = 0; i < u->n; i++) {
        if (u->ratings[i] < TSR_HIGEN_LIKED) continue;
        const tsr_item *it = &cat->items[u->items[i]];
        for (int t = 0; t < it->n_tags; t++) {
            int j = 0;
            while (j < ng && strcmp(g[j].name, it->tags[t]) != 0) j++;
            if (j == ng && ng < 64) g[ng++] = (genre_count){it->tags[t], 0};
            if (j < ng) g[j].n++;
        }
    }
    qsort(g, (size_t)ng, sizeof *g, genre_before);
    size_t cap = strlen(text) + 8 + (size_t)TSR_HIGEN_PROFILE * 64, at;
    char *out = malloc(cap);
    TSR_ASSERT(out);
    at = (size_t)snprintf(out, cap, "%s |", text);
    for (int j = 0; j < ng && j < TSR_HIGEN_PROFILE; j++)
        at += (size_t)snprintf(out + at, cap - at, " %.60s", g[j].name);
    return out;
}

static void add_pairs(tsr_higen_data *d, int split, int32_t q, int32_t pos, int32_t neg, int64_t *cap) {
    int64_t n = d->n_pairs[split];
    if (n == cap[split]) {
        cap[split] = cap[split] ? 2 * cap[split] : 4096;
        d->pair_q[split] = realloc(d->pair_q[split], (size_t)cap[split] * sizeof(int32_t));
        d->pair_pos[split] = realloc(d->pair_pos[split], (size_t)cap[split] * sizeof(int32_t));
        d->pair_neg[split] = realloc(d->pair_neg[split], (size_t)cap[split] * sizeof(int32_t));
        TSR_ASSERT(d->pair_q[split] && d->pair_pos[split] && d->pair_neg[split]);
    }
    d->pair_q[split][n] = q;
    d->pair_pos[split][n] = pos;
    d->pair_neg[split][n] = neg;
    d->n_pairs[split] = n + 1;
}

static bool in_sorted(const int32_t *v, int n, int32_t x) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (v[mid] == x) return true;
        if (v[mid] < x) lo = mid + 1;
        else hi = mid - 1;
    }
    return false;
}

tsr_status tsr_higen_data_build(tsr_higen_data *d, const tsr_catalog *cat, const char *bpe_path, int vocab_size,
                                int tq, int ti, bool pairs, uint64_t seed) {
    memset(d, 0, sizeof *d);
    d->cat = cat;
    d->tq = tq;
    d->ti = ti;
    int32_t n = cat->n_items;
    char **text[2];
    for (int v = 0; v < 2; v++) {
        text[v] = malloc((size_t)n * sizeof(char *));
        TSR_ASSERT(text[v]);
        for (int32_t i = 0; i < n; i++) text[v][i] = tsr_item_text(cat, i, v ? TSR_F_ALL & ~TSR_F_TAGS : TSR_F_ALL);
    }
    tsr_status st;
    if (bpe_path) {
        st = tsr_bpe_load(&d->bpe, bpe_path);
    } else {
        size_t *lens = malloc((size_t)n * sizeof *lens);
        char **low = malloc((size_t)n * sizeof *low);
        TSR_ASSERT(lens && low);
        for (int32_t i = 0; i < n; i++) {
            size_t L = strlen(text[0][i]);
            if (L > 600) L = 600;
            low[i] = malloc(L + 1);
            TSR_ASSERT(low[i]);
            for (size_t j = 0; j < L; j++) {
                char ch = text[0][i][j];
                low[i][j] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch == '\n' ? ' ' : ch);
            }
            low[i][L] = 0;
            lens[i] = L;
        }
        const char *sp[] = {"<pad>"};
        tsr_bpe_train_opts o = {.vocab_size = vocab_size, .specials = sp, .n_specials = 1, .min_count = 2};
        st = tsr_bpe_train_texts(&d->bpe, (const char *const *)low, lens, n, &o);
        for (int32_t i = 0; i < n; i++) free(low[i]);
        free(low);
        free(lens);
    }
    if (st.code == TSR_OK)
        for (int v = 0; v < 2; v++) {
            d->item_tok[v] = malloc((size_t)n * ti * sizeof(int32_t));
            d->item_len[v] = malloc((size_t)n * sizeof(int32_t));
            TSR_ASSERT(d->item_tok[v] && d->item_len[v]);
            for (int32_t i = 0; i < n; i++) {
                int32_t *row = d->item_tok[v] + (size_t)i * ti;
                d->item_len[v][i] = tsr_higen_encode(&d->bpe, text[v][i], row, ti);
                for (int j = d->item_len[v][i]; j < ti; j++) row[j] = 0;
            }
        }
    for (int v = 0; v < 2; v++) {
        for (int32_t i = 0; i < n; i++) free(text[v][i]);
        free(text[v]);
    }
    if (st.code != TSR_OK) {
        tsr_higen_data_free(d);
        return st;
    }
    if (cat->kind == TSR_CATALOG_MOVIELENS) tsr_queries_build(&d->qs, cat, TSR_QC_MOVIELENS);
    else
        for (int c = 0; c < TSR_QC_MOVIELENS; c++) tsr_queries_build(&d->qs, cat, c);
    d->q_tok = calloc((size_t)d->qs.n * tq, sizeof *d->q_tok);
    d->q_len = malloc((size_t)d->qs.n * sizeof *d->q_len);
    TSR_ASSERT(d->q_tok && d->q_len);
    for (int32_t q = 0; q < d->qs.n; q++) { /* personalised queries: the tag, then the user's profile */
        char *qt = tsr_higen_query_text(cat, d->qs.q[q].text, tsr_catalog_find_user(cat, d->qs.q[q].user));
        d->q_len[q] = tsr_higen_encode(&d->bpe, qt, d->q_tok + (size_t)q * tq, tq);
        free(qt);
    }
    if (!pairs) return tsr_ok();
    /* pairs, with one BM25 hard negative each (from the best 30 non-relevant) */
    tsr_bm25 ix[2];
    tsr_bm25_build_catalog(&ix[0], cat, TSR_F_ALL, 1.2f, 0.4f);
    tsr_bm25_build_catalog(&ix[1], cat, TSR_F_ALL & ~TSR_F_TAGS, 1.2f, 0.4f);
    float *scratch = calloc((size_t)n, sizeof *scratch), sc[64];
    int32_t top[64], negs[30];
    int64_t cap[TSR_SPLIT_COUNT] = {0};
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    for (int32_t q = 0; q < d->qs.n; q++) {
        const tsr_query *qq = &d->qs.q[q];
        int m = tsr_bm25_search(&ix[tsr_higen_view(qq->construction)], qq->text, 64, top, sc, scratch), nn = 0;
        for (int i = 0; i < m && nn < 30; i++)
            if (!in_sorted(qq->rel, qq->n_rel, top[i])) negs[nn++] = top[i];
        for (int j = 0; j < qq->n_rel; j++) {
            int32_t neg = nn ? negs[tsr_rng_below(&r, (uint32_t)nn)] : (int32_t)tsr_rng_below(&r, (uint32_t)n);
            while (in_sorted(qq->rel, qq->n_rel, neg)) neg = (int32_t)tsr_rng_below(&r, (uint32_t)n);
            add_pairs(d, qq->split, q, qq->rel[j], neg, cap);
        }
    }
    free(scratch);
    tsr_bm25_free(&ix[0]);
    tsr_bm25_free(&ix[1]);
    return tsr_ok();
}

void tsr_higen_data_free(tsr_higen_data *d) {
    tsr_bpe_free(&d->bpe);
    for (int v = 0; v < 2; v++) {
        free(d->item_tok[v]);
        free(d->item_len[v]);
    }
    tsr_queryset_free(&d->qs);
    free(d->q_tok);
    free(d->q_len);
    for (int s = 0; s < TSR_HIGEN_SLOTS; s++) {
        free(d->pair_q[s]);
        free(d->pair_pos[s]);
        free(d->pair_neg[s]);
    }
    memset(d, 0, sizeof *d);
}

int64_t tsr_higen_data_hold_tune(tsr_higen_data *d) {
    const int tr = TSR_SPLIT_TRAIN, tu = TSR_HIGEN_TUNE;
    int64_t n = d->n_pairs[tr], kept = 0, moved = 0;
    int64_t cap[TSR_HIGEN_SLOTS] = {0};
    cap[tu] = d->n_pairs[tu];
    for (int64_t i = 0; i < n; i++) {
        int32_t q = d->pair_q[tr][i], pos = d->pair_pos[tr][i], neg = d->pair_neg[tr][i];
        if (tsr_query_is_tune(d->qs.q[q].text)) {
            add_pairs(d, tu, q, pos, neg, cap);
            moved++;
        } else {
            d->pair_q[tr][kept] = q, d->pair_pos[tr][kept] = pos, d->pair_neg[tr][kept] = neg;
            kept++;
        }
    }
    d->n_pairs[tr] = kept;
    return moved;
}

int64_t tsr_higen_data_cap_pairs(tsr_higen_data *d, int max_per_query, uint64_t seed) {
    const int tr = TSR_SPLIT_TRAIN;
    int64_t n = d->n_pairs[tr], kept = 0;
    if (max_per_query <= 0) return 0;
    tsr_rng r;
    tsr_rng_seed(&r, seed ^ 0x6361702d70616972ull);
    int64_t cap = 0, *pick = NULL;
    for (int64_t a = 0, b; a < n; a = b) { /* a query's pairs are one run */
        for (b = a + 1; b < n && d->pair_q[tr][b] == d->pair_q[tr][a]; b++) {}
        int64_t L = b - a, m = L < max_per_query ? L : max_per_query;
        if (L > cap) {
            cap = L;
            pick = realloc(pick, (size_t)cap * sizeof *pick);
            TSR_ASSERT(pick);
        }
        for (int64_t i = 0; i < L; i++) pick[i] = a + i;
        for (int64_t i = 0; i < m && m < L; i++) { /* partial Fisher-Yates: m of the L, at random */
            int64_t j = i + (int64_t)tsr_rng_below(&r, (uint32_t)(L - i)), t = pick[i];
            pick[i] = pick[j], pick[j] = t;
        }
        for (int64_t i = 1; i < m; i++) /* back in the original order (insertion sort, m is small) */
            for (int64_t j = i; j > 0 && pick[j - 1] > pick[j]; j--) {
                int64_t t = pick[j];
                pick[j] = pick[j - 1], pick[j - 1] = t;
            }
        for (int64_t i = 0; i < m; i++) {
            int64_t p = pick[i];
            d->pair_q[tr][kept] = d->pair_q[tr][p], d->pair_pos[tr][kept] = d->pair_pos[tr][p];
            d->pair_neg[tr][kept] = d->pair_neg[tr][p];
            kept++;
        }
    }
    free(pick);
    d->n_pairs[tr] = kept;
    return n - kept;
}
