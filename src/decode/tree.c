/* decode: draft-tree bookkeeping for speculative verification (used by the
 * prompt-lookup loop here and by the SPACE / BiTA families): tree attention
 * masks and position ids from a parent array, and greedy acceptance of the
 * longest draft path that agrees with the model's argmax. */
#include "tessera/decode.h"

#include <string.h>

tsr_status tsr_decode_tree_check(const int *parent, int n) {
    if (n < 1) return tsr_errorf(TSR_ERR_ARG, "draft tree: needs at least the root row");
    if (parent[0] != -1) return tsr_errorf(TSR_ERR_ARG, "draft tree: row 0 must be the root (parent -1)");
    for (int i = 1; i < n; i++)
        if (parent[i] < 0 || parent[i] >= i)
            return tsr_errorf(TSR_ERR_ARG, "draft tree: row %d has parent %d, not an earlier row", i, parent[i]);
    return tsr_ok();
}

void tsr_decode_tree_depth(int *depth, const int *parent, int n) {
    for (int i = 0; i < n; i++) depth[i] = parent[i] < 0 ? 0 : depth[parent[i]] + 1;
}

/* one row per node: its parent's row plus itself (parents come first) */
static void mask_rows(uint8_t *mask, size_t ld, size_t off, const int *parent, int n) {
    for (int i = 0; i < n; i++) {
        uint8_t *r = mask + (size_t)i * ld + off;
        if (parent[i] >= 0) memcpy(r, mask + (size_t)parent[i] * ld + off, (size_t)n);
        else memset(r, 0, (size_t)n);
        r[i] = 1;
    }
}

void tsr_decode_tree_mask(uint8_t *mask, const int *parent, int n) { mask_rows(mask, (size_t)n, 0, parent, n); }

void tsr_decode_tree_mask_full(uint8_t *mask, const int *parent, int n, int n_ctx) {
    const size_t ld = (size_t)n_ctx + (size_t)n;
    for (int i = 0; i < n; i++) memset(mask + (size_t)i * ld, 1, (size_t)n_ctx);
    mask_rows(mask, ld, (size_t)n_ctx, parent, n);
}

void tsr_decode_positions(int *pos, const uint8_t *mask, int n, int n_ctx, int mask_ld) {
    for (int i = 0; i < n; i++) {
        int cnt = mask_ld == n ? n_ctx : 0;
        for (int j = 0; j < mask_ld; j++) cnt += mask[(size_t)i * mask_ld + j] != 0;
        pos[i] = cnt - 1;
    }
}

int tsr_decode_accept_greedy(int *path, int *bonus, const int *tokens, const int *parent, int n,
                             const float *logits, int V) {
    int len = 0, cur = 0;
    path[len++] = 0;
    for (;;) {
        int a = tsr_lm_argmax(logits + (size_t)cur * V, V), next = -1;
        /* children of cur come after it */
        for (int c = cur + 1; c < n; c++)
            if (parent[c] == cur && tokens[c] == a) {
                next = c;
                break;
            }
        if (next < 0) {
            *bonus = a;
            return len;
        }
        path[len++] = next;
        cur = next;
    }
}
