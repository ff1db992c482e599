/* decode: prompt-lookup drafting (copy what followed an earlier occurrence
 * of the context's last few tokens). Costs no model call and drafts well
 * on repetitive text: code, quotes, summaries, extraction. */
#include "tessera/decode.h"

#include <string.h>

/* Calls fn(ud, follow, g) for each earlier match of the last g tokens
 * (follow: the index after it), most recent first, for g = max_ngram..1;
 * stops when fn returns non-zero. */
typedef int (*match_fn)(void *ud, int follow, int g);

static void each_match(const int *ctx, int n_ctx, int max_ngram, match_fn fn, void *ud) {
    if (max_ngram > n_ctx - 1) max_ngram = n_ctx - 1;
    for (int g = max_ngram; g >= 1; g--) {
        const int *suf = ctx + n_ctx - g;
        /* the match must leave at least one token after it */
        for (int j = n_ctx - g - 1; j >= 0; j--)
            if (memcmp(ctx + j, suf, sizeof(int) * (size_t)g) == 0 && fn(ud, j + g, g)) return;
    }
}

typedef struct {
    const int *ctx;
    int n_ctx, k;
    int *out;
    int count;
} one_match;

/* token i of the continuation at `follow`: past the end of the context it
 * copies its own earlier tokens (as an overlapping LZ77 copy), so a short
 * cycle such as "a b a b" drafts k tokens, not just one period */
static int cont(const int *ctx, int n_ctx, int follow, int i) {
    int p = n_ctx - follow; /* period: distance from the match to the end */
    return ctx[follow + i % p];
}

static int take_first(void *ud, int follow, int g) {
    (void)g;
    one_match *o = ud;
    for (int i = 0; i < o->k; i++) o->out[i] = cont(o->ctx, o->n_ctx, follow, i);
    o->count = o->k;
    return 1;
}

int tsr_decode_ngram_draft(int *out, const int *ctx, int n_ctx, int max_ngram, int k) {
    one_match o = {ctx, n_ctx, k, out, 0};
    if (k <= 0 || n_ctx < 2 || max_ngram < 1) return 0;
    each_match(ctx, n_ctx, max_ngram, take_first, &o);
    return o.count;
}

typedef struct {
    const int *ctx;
    int n_ctx, k, max_cand;
    int *tokens, *parent;
    int rows, n_cand;
} tree_build;

/* insert one continuation into the trie; a candidate that adds no row is
 * a duplicate and does not count */
static int add_cand(void *ud, int follow, int g) {
    (void)g;
    tree_build *b = ud;
    int cur = 0, added = 0;
    for (int i = 0; i < b->k; i++) {
        int tok = cont(b->ctx, b->n_ctx, follow, i), next = -1;
        for (int r = cur + 1; r < b->rows; r++)
            if (b->parent[r] == cur && b->tokens[r] == tok) {
                next = r;
                break;
            }
        if (next < 0) {
            next = b->rows++;
            b->tokens[next] = tok;
            b->parent[next] = cur;
            added = 1;
        }
        cur = next;
    }
    b->n_cand += added;
    return b->n_cand >= b->max_cand;
}

int tsr_decode_ngram_tree(int *tokens, int *parent, int root_token, const int *ctx, int n_ctx, int max_ngram,
                          int k, int max_cand) {
    tree_build b = {ctx, n_ctx, k, max_cand, tokens, parent, 1, 0};
    tokens[0] = root_token;
    parent[0] = -1;
    if (k <= 0 || max_cand <= 0 || n_ctx < 2 || max_ngram < 1) return 1;
    each_match(ctx, n_ctx, max_ngram, add_cand, &b);
    return b.rows;
}
