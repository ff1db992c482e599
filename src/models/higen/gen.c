/* tessera higen: the docID generator — a causal Llama decoder (src/nn)
 * reading the query and emitting docID tokens — its position-aware loss
 * and the trie-constrained beam search (Hi-Gen, arXiv 2404.15675, sec.
 * 3.3-3.4; the loss as docs/higen.md states it, since the paper's exact
 * formulation could not be read). */
#include "tessera/higen.h"

#include "tessera/ops_elem.h"
#include "tessera/ops_matmul.h"
#include "tessera/ops_norm.h"

#include <math.h>
#include <string.h>

tsr_status tsr_higen_gen_init(tsr_higen_gen *g, const tsr_higen_gen_cfg *cfg) {
    memset(g, 0, sizeof *g);
    if (cfg->text_vocab < 2 || cfg->max_query < 1 || cfg->max_query > 256 || cfg->max_depth < 1 ||
        cfg->max_depth > TSR_HIGEN_MAX_DEPTH || cfg->fanout < 1 || cfg->fanout > (1 << 20))
        return tsr_errorf(TSR_ERR_ARG, "higen generator: text vocab >= 2, max query 1..256, depth 1..%d, fanout "
                                       "1..2^20 (got %d, %d, %d, %d)",
                          TSR_HIGEN_MAX_DEPTH, cfg->text_vocab, cfg->max_query, cfg->max_depth, cfg->fanout);
    g->cfg = *cfg;
    g->sep = cfg->text_vocab;
    g->doc_base = cfg->text_vocab + 1;
    g->vocab = g->doc_base + cfg->max_depth * cfg->fanout;
    g->seq = cfg->max_query + cfg->max_depth;
    tsr_params_init(&g->params);
    tsr_nn_llama_cfg lc = {.dim = cfg->dim, .n_layers = cfg->n_layers, .n_heads = cfg->n_heads,
                           .n_kv_heads = cfg->n_kv_heads, .hidden_dim = cfg->hidden_dim, .vocab = g->vocab,
                           .max_seq = g->seq, .norm_eps = 1e-5f, .rope_theta = 10000.f, .tied = false};
    tsr_status st = tsr_nn_llama_init(&g->dec, &g->params, &lc);
    if (st.code != TSR_OK) tsr_params_free(&g->params);
    return st;
}

void tsr_higen_gen_init_weights(tsr_higen_gen *g, uint64_t seed) {
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    tsr_nn_llama_init_weights(&g->dec, &r);
}

void tsr_higen_gen_free(tsr_higen_gen *g) {
    tsr_nn_llama_free(&g->dec);
    tsr_params_free(&g->params);
    memset(g, 0, sizeof *g);
}

/* rows (B,S): [pads, query, SEP, prefix tokens...]; mask: causal, pads are
 * no key (a pad attends to itself only, so no row is empty) */
static void fill_inputs(const tsr_higen_gen *g, int32_t *tok, uint8_t *mask, int S, const int32_t *q, int ql,
                        const int32_t *prefix, int np, int b) {
    int Q = g->cfg.max_query;
    if (ql > Q) ql = Q;
    int32_t *row = tok + (size_t)b * S;
    for (int i = 0; i < Q - ql; i++) row[i] = 0;
    for (int i = 0; i < ql; i++) row[Q - ql + i] = q[i];
    row[Q] = g->sep;
    for (int p = 0; p < np && Q + 1 + p < S; p++) row[Q + 1 + p] = g->doc_base + p * g->cfg.fanout + prefix[p];
    for (int i = Q + 1 + np; i < S; i++) row[i] = 0;
    uint8_t *m = mask + (size_t)b * S * S;
    for (int i = 0; i < S; i++)
        for (int j = 0; j < S; j++) m[(size_t)i * S + j] = j == i || (j < i && j >= Q - ql && j <= Q + np);
}

tsr_tensor *tsr_higen_gen_loss(tsr_ctx *c, const tsr_higen_gen *g, const tsr_higen_trie *t,
                               const int32_t *q_tok, const int32_t *q_len, const int32_t *items, int B,
                               const tsr_higen_loss_opts *o) {
    int D = g->cfg.max_depth, Q = g->cfg.max_query, S = g->seq, F = g->cfg.fanout;
    int base = o->doc_only ? g->doc_base : 0, V = g->vocab - base; /* the output ids base .. vocab-1 */
    TSR_ASSERT(t->max_depth <= D && t->max_fanout <= F);
    tsr_tensor *tok = tsr_new(c, TSR_I32, TSR_DIMS(B, S));
    tsr_tensor *mask = tsr_new(c, TSR_U8, TSR_DIMS(B, S, S));
    tsr_tensor *tgt = tsr_new(c, TSR_I32, TSR_DIMS(B, D));
    tsr_tensor *w = tsr_new(c, TSR_F32, TSR_DIMS(B, D));
    tsr_tensor *sib = o->sibling > 0 ? tsr_new(c, TSR_F32, TSR_DIMS(B, D, V)) : NULL;
    int32_t d[TSR_HIGEN_MAX_DEPTH];
    for (int b = 0; b < B; b++) {
        int L = tsr_higen_docid(t, items[b], d);
        fill_inputs(g, tsr_i32(tok), tsr_u8(mask), S, q_tok + (size_t)b * Q, q_len[b], d, L - 1, b);
        int32_t node = 0;
        for (int p = 0; p < D; p++) {
            bool on = p < L;
            tsr_i32(tgt)[b * D + p] = on ? g->doc_base - base + p * F + d[p] : -1;
            tsr_f32(w)[b * D + p] = on ? 1.0f - o->pos_decay * (float)p / (float)D : 0.f;
            if (sib) {
                float *m = tsr_f32(sib) + ((size_t)b * D + p) * V;
                for (int v = 0; v < V; v++) m[v] = on ? -1e9f : 0.f;
                if (on) {
                    const tsr_higen_node *nd = &t->nodes[node];
                    for (int ch = 0; ch < nd->n_children; ch++) m[g->doc_base - base + p * F + ch] = 0.f;
                    node = nd->first_child + d[p];
                }
            }
        }
    }
    tsr_nn_seq seq = {.pos = NULL, .mask = mask, .causal = true};
    tsr_tensor *h = tsr_nn_llama_hidden(c, &g->dec, tok, &seq);       /* (B,S,C) */
    tsr_tensor *hd = tsr_slice(c, h, 1, Q, Q + D);                     /* (B,D,C) */
    tsr_tensor *head = o->doc_only ? tsr_slice(c, g->dec.lm_head, 0, base, g->vocab) : g->dec.lm_head;
    tsr_tensor *logits = tsr_linear(c, hd, head, NULL);                /* (B,D,V) */
    tsr_tensor *loss = tsr_cross_entropy(c, logits, tgt, w, -1, 0.f);
    if (sib) {
        tsr_tensor *ls = tsr_cross_entropy(c, tsr_add(c, logits, sib), tgt, w, -1, 0.f);
        loss = tsr_add(c, loss, tsr_scale(c, ls, o->sibling));
    }
    return loss;
}

/* ----------------------------------------------------------- beam search */

typedef struct {
    float score;
    int32_t node;
    int32_t beam; /* parent beam */
    int32_t tok;
} cand;

static bool cand_before(const cand *a, const cand *b) {
    return a->score > b->score || (a->score == b->score && a->node < b->node);
}

int tsr_higen_beam_search(const tsr_higen_gen *g, const tsr_higen_trie *t, const int32_t *q_tok, int q_len,
                          int beam, int k, int32_t *items, float *scores) {
    TSR_ASSERT(beam >= 1 && k >= 1);
    int D = g->cfg.max_depth, Q = g->cfg.max_query, F = g->cfg.fanout, V = g->vocab, C = g->cfg.dim;
    TSR_ASSERT(t->max_depth <= D && t->max_fanout <= F);
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    c.grad_enabled = false;
    c.training = false;
    int32_t *pref = calloc((size_t)beam * D, sizeof *pref), *npref = calloc((size_t)beam * D, sizeof *npref);
    int32_t *node = malloc((size_t)beam * sizeof *node);
    float *score = malloc((size_t)beam * sizeof *score);
    int fcap = beam * D + k, n_fin = 0;
    cand *fin = malloc((size_t)fcap * sizeof *fin);
    cand *top = malloc((size_t)beam * sizeof *top);
    float *lp = malloc((size_t)F * sizeof *lp);
    TSR_ASSERT(pref && npref && node && score && fin && top && lp);
    int n_live = 1;
    node[0] = 0;
    score[0] = 0;
    for (int p = 0; p < D && n_live > 0; p++) {
        tsr_ctx_reset(&c);
        int S = Q + 1 + p;
        tsr_tensor *tok = tsr_new(&c, TSR_I32, TSR_DIMS(n_live, S));
        tsr_tensor *mask = tsr_new(&c, TSR_U8, TSR_DIMS(n_live, S, S));
        for (int b = 0; b < n_live; b++)
            fill_inputs(g, tsr_i32(tok), tsr_u8(mask), S, q_tok, q_len, pref + (size_t)b * D, p, b);
        tsr_nn_seq seq = {.pos = NULL, .mask = mask, .causal = true};
        tsr_tensor *h = tsr_nn_llama_hidden(&c, &g->dec, tok, &seq);
        const float *hw = tsr_f32(g->dec.lm_head);
        int n_top = 0;
        for (int b = 0; b < n_live; b++) {
            const float *hb = tsr_f32(h) + ((size_t)b * S + S - 1) * C;
            const tsr_higen_node *nd = &t->nodes[node[b]];
            float mx = -INFINITY;
            for (int ch = 0; ch < nd->n_children; ch++) { /* logits of the children only */
                const float *row = hw + (size_t)(g->doc_base + p * F + ch) * C;
                float s = 0;
                for (int j = 0; j < C; j++) s += hb[j] * row[j];
                lp[ch] = s;
                mx = s > mx ? s : mx;
            }
            double z = 0;
            for (int ch = 0; ch < nd->n_children; ch++) z += exp((double)(lp[ch] - mx));
            float lz = mx + (float)log(z);
            for (int ch = 0; ch < nd->n_children; ch++) {
                cand cd = {score[b] + lp[ch] - lz, nd->first_child + ch, b, ch};
                if (n_top == beam && !cand_before(&cd, &top[n_top - 1])) continue;
                int j = n_top < beam ? n_top++ : beam - 1;
                while (j > 0 && cand_before(&cd, &top[j - 1])) {
                    top[j] = top[j - 1];
                    j--;
                }
                top[j] = cd;
            }
        }
        (void)V;
        int nl = 0;
        for (int i = 0; i < n_top; i++) {
            if (t->nodes[top[i].node].item >= 0) {
                if (n_fin < fcap) fin[n_fin++] = top[i];
                continue;
            }
            memcpy(npref + (size_t)nl * D, pref + (size_t)top[i].beam * D, (size_t)p * sizeof *pref);
            npref[(size_t)nl * D + p] = top[i].tok;
            node[nl] = top[i].node;
            score[nl] = top[i].score;
            nl++;
        }
        int32_t *sw = pref;
        pref = npref;
        npref = sw;
        n_live = nl;
    }
    /* finished items, best first (stable on node id) */
    for (int i = 1; i < n_fin; i++) {
        cand x = fin[i];
        int j = i - 1;
        while (j >= 0 && cand_before(&x, &fin[j])) {
            fin[j + 1] = fin[j];
            j--;
        }
        fin[j + 1] = x;
    }
    int n = n_fin < k ? n_fin : k;
    for (int i = 0; i < n; i++) {
        items[i] = t->nodes[fin[i].node].item;
        if (scores) scores[i] = fin[i].score;
    }
    free(pref);
    free(npref);
    free(node);
    free(score);
    free(fin);
    free(top);
    free(lp);
    tsr_ctx_free(&c);
    return n;
}

/* ------------------------------------------------------ level diagnosis */

int tsr_higen_gen_levels(const tsr_higen_gen *g, const tsr_higen_trie *t, const int32_t *q_tok, int q_len,
                         int32_t item, int32_t *rank, int32_t *fanout) {
    int D = g->cfg.max_depth, Q = g->cfg.max_query, F = g->cfg.fanout, C = g->cfg.dim;
    TSR_ASSERT(t->max_depth <= D && t->max_fanout <= F && item >= 0 && item < t->n_items);
    int32_t d[TSR_HIGEN_MAX_DEPTH];
    int L = tsr_higen_docid(t, item, d), S = Q + L; /* [query, SEP, d0 .. d_{L-2}] */
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    c.grad_enabled = false;
    c.training = false;
    tsr_tensor *tok = tsr_new(&c, TSR_I32, TSR_DIMS(1, S));
    tsr_tensor *mask = tsr_new(&c, TSR_U8, TSR_DIMS(1, S, S));
    fill_inputs(g, tsr_i32(tok), tsr_u8(mask), S, q_tok, q_len, d, L - 1, 0);
    tsr_nn_seq seq = {.pos = NULL, .mask = mask, .causal = true};
    tsr_tensor *h = tsr_nn_llama_hidden(&c, &g->dec, tok, &seq);
    const float *hw = tsr_f32(g->dec.lm_head);
    int32_t node = 0;
    for (int p = 0; p < L; p++) { /* the true token's rank among its node's children, from position Q + p */
        const float *hp = tsr_f32(h) + (size_t)(Q + p) * C;
        const tsr_higen_node *nd = &t->nodes[node];
        float mine = 0;
        for (int j = 0; j < C; j++) mine += hp[j] * hw[(size_t)(g->doc_base + p * F + d[p]) * C + j];
        int32_t r = 0;
        for (int ch = 0; ch < nd->n_children; ch++) {
            const float *row = hw + (size_t)(g->doc_base + p * F + ch) * C;
            float s = 0;
            for (int j = 0; j < C; j++) s += hp[j] * row[j];
            r += s > mine || (s == mine && ch < d[p]);
        }
        rank[p] = r;
        fanout[p] = nd->n_children;
        node = nd->first_child + d[p];
    }
    tsr_ctx_free(&c);
    return L;
}

/* ------------------------------------------------------------- loading */

#include "tessera/safetensors.h"

static const char *const k_gen_keys[9] = {"generator.dim",        "generator.layers",    "generator.heads",
                                          "generator.kv_heads",   "generator.hidden",    "generator.text_vocab",
                                          "generator.max_query",  "generator.depth",     "generator.fanout"};

void tsr_higen_gen_config_kv(const tsr_higen_gen_cfg *cfg, const char **kv, char *buf) {
    const int v[9] = {cfg->dim,        cfg->n_layers,   cfg->n_heads,   cfg->n_kv_heads, cfg->hidden_dim,
                      cfg->text_vocab, cfg->max_query, cfg->max_depth, cfg->fanout};
    for (int i = 0; i < 9; i++) {
        snprintf(buf + 16 * i, 16, "%d", v[i]);
        kv[2 * i] = k_gen_keys[i];
        kv[2 * i + 1] = buf + 16 * i;
    }
}

tsr_status tsr_higen_gen_load(tsr_higen_gen *g, const char *path) {
    memset(g, 0, sizeof *g);
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code != TSR_OK) return st;
    int v[9];
    for (int i = 0; i < 9; i++) {
        if (!tsr_st_meta_int(&f, k_gen_keys[i], 0, 1 << 24, &v[i])) {
            tsr_st_free(&f);
            return tsr_errorf(TSR_ERR_FORMAT, "%s: not a higen generator (metadata %s missing or bad)", path,
                              k_gen_keys[i]);
        }
    }
    tsr_st_free(&f);
    tsr_higen_gen_cfg cfg = {.dim = v[0], .n_layers = v[1], .n_heads = v[2], .n_kv_heads = v[3], .hidden_dim = v[4],
                             .text_vocab = v[5], .max_query = v[6], .max_depth = v[7], .fanout = v[8]};
    st = tsr_higen_gen_init(g, &cfg);
    if (st.code != TSR_OK) return tsr_errorf(TSR_ERR_FORMAT, "%s: %s", path, st.msg);
    st = tsr_params_load(&g->params, path, false);
    if (st.code != TSR_OK) tsr_higen_gen_free(g);
    return st;
}
