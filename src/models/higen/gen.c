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
    if (st.code == TSR_OK) st = tsr_lm_model_view_nn(&g->lm, &g->dec); /* inference reads the same weights */
    if (st.code != TSR_OK) {
        tsr_nn_llama_free(&g->dec);
        tsr_params_free(&g->params);
    }
    return st;
}

void tsr_higen_gen_init_weights(tsr_higen_gen *g, uint64_t seed) {
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    tsr_nn_llama_init_weights(&g->dec, &r);
}

void tsr_higen_gen_free(tsr_higen_gen *g) {
    tsr_lm_model_free(&g->lm);
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

/* The decoder at inference runs on the lm stack's KV-cache forward
 * (src/decode/lm_forward.c) over a view of the nn parameters: the same
 * model, the same positions and mask as fill_inputs (pads are no key, so
 * they are simply not fed), with the matmul kernels of fixed reduction
 * order. */

/* One causal forward of [query (its first max_query tokens), SEP, the docID
 * tokens d[0..nd)] at positions max_query - ql, ..., written to cache slots
 * 0.. ; hid gets every row's final normed hidden state (C each). Returns
 * the row count (ql + 1 + nd). */
static int run_causal(const tsr_higen_gen *g, tsr_lm_cache *c, const int32_t *q, int ql, const int32_t *d, int nd,
                      float *hid) {
    int Q = g->cfg.max_query, F = g->cfg.fanout;
    if (ql > Q) ql = Q;
    if (ql < 0) ql = 0;
    int n = ql + 1 + nd;
    int *tok = malloc((size_t)n * sizeof *tok), *pos = malloc((size_t)n * sizeof *pos);
    uint8_t *mask = malloc((size_t)n * (size_t)n);
    TSR_ASSERT(tok && pos && mask);
    for (int i = 0; i < n; i++) {
        tok[i] = i < ql ? q[i] : i == ql ? g->sep : g->doc_base + (i - ql - 1) * F + d[i - ql - 1];
        pos[i] = Q - ql + i;
        for (int j = 0; j < n; j++) mask[(size_t)i * n + j] = j <= i;
    }
    tsr_status st = tsr_lm_forward_masked_hidden(&g->lm, c, tok, n, 0, pos, mask, n, hid);
    TSR_ASSERT(st.code == TSR_OK); /* tokens, positions and slots are in range by construction */
    free(tok);
    free(pos);
    free(mask);
    return n;
}

/* a cache for n_slots slots (and positions up to the generator's sequence) */
static void cache_open(const tsr_higen_gen *g, tsr_lm_cache *c, int n_slots) {
    tsr_lm_config cc = g->lm.cfg;
    cc.seq_len = n_slots > g->seq ? n_slots : g->seq;
    tsr_status st = tsr_lm_cache_init(c, &cc, cc.seq_len);
    TSR_ASSERT(st.code == TSR_OK);
}

/* logit of docID code ch at depth p for hidden state h */
static float code_logit(const tsr_higen_gen *g, const float *h, int p, int ch) {
    const int C = g->cfg.dim;
    return tsr_lm_dot(h, tsr_f32(g->dec.lm_head) + (size_t)(g->doc_base + p * g->cfg.fanout + ch) * C, C);
}

typedef struct {
    float score;
    int32_t node;
    int32_t beam; /* parent beam */
    int32_t tok;
} cand;

static bool cand_before(const cand *a, const cand *b) {
    return a->score > b->score || (a->score == b->score && a->node < b->node);
}

/* cached: the lm KV-cache path (production); otherwise the reference the
 * tests hold it to, re-running every beam's whole row through the nn
 * decoder at every step. Everything else is shared. */
static int beam_run(const tsr_higen_gen *g, const tsr_higen_trie *t, const int32_t *q_tok, int q_len, int beam,
                    int k, int32_t *items, float *scores, bool cached) {
    TSR_ASSERT(beam >= 1 && k >= 1);
    int D = g->cfg.max_depth, Q = g->cfg.max_query, F = g->cfg.fanout, C = g->cfg.dim;
    TSR_ASSERT(t->max_depth <= D && t->max_fanout <= F);
    int32_t *pref = calloc((size_t)beam * D, sizeof *pref), *npref = calloc((size_t)beam * D, sizeof *npref);
    int32_t *node = malloc((size_t)beam * sizeof *node);
    float *score = malloc((size_t)beam * sizeof *score);
    int fcap = beam * D + k, n_fin = 0;
    cand *fin = malloc((size_t)fcap * sizeof *fin);
    cand *top = malloc((size_t)beam * sizeof *top);
    float *lp = malloc((size_t)F * sizeof *lp);
    TSR_ASSERT(pref && npref && node && score && fin && top && lp);
    /* cached: the query prefix [query, SEP] is run once into slots 0..np-1;
     * each later step feeds every live beam's newest token into the next
     * free slots, and a row sees the prefix, the slots of its own earlier
     * tokens (chain: one per docID token fed, in order) and itself. Beams
     * that fall out keep their slots (nothing is moved): the mask alone
     * says which rows a beam reads, so keeping a beam never copies cache. */
    tsr_lm_cache cache = {0};
    int np = 0, n_ctx = 0, slots = 0;
    int32_t *chain = NULL, *nchain = NULL;
    int *tok = NULL, *pos = NULL;
    uint8_t *mask = NULL;
    float *hid = NULL;
    tsr_ctx c;
    if (cached) {
        int ql = q_len > Q ? Q : q_len < 0 ? 0 : q_len;
        np = ql + 1;
        slots = np + beam * (D - 1);
        cache_open(g, &cache, slots);
        chain = malloc((size_t)beam * D * sizeof *chain);
        nchain = malloc((size_t)beam * D * sizeof *nchain);
        tok = malloc((size_t)beam * sizeof *tok);
        pos = malloc((size_t)beam * sizeof *pos);
        mask = malloc((size_t)beam * (size_t)slots);
        hid = malloc((size_t)(np > beam ? np : beam) * C * sizeof *hid);
        TSR_ASSERT(chain && nchain && tok && pos && mask && hid);
        run_causal(g, &cache, q_tok, q_len, NULL, 0, hid);
        memmove(hid, hid + (size_t)(np - 1) * C, (size_t)C * sizeof *hid); /* SEP's row: step 0 */
        n_ctx = np;
    } else {
        tsr_ctx_init(&c, 1 << 20);
        c.grad_enabled = false;
        c.training = false;
    }
    int n_live = 1;
    node[0] = 0;
    score[0] = 0;
    for (int p = 0; p < D && n_live > 0; p++) {
        const float *h; /* row b's hidden state at h + b * hstride */
        size_t hstride;
        if (cached) {
            if (p > 0) {
                int ld = n_ctx + n_live;
                for (int b = 0; b < n_live; b++) {
                    tok[b] = g->doc_base + (p - 1) * F + pref[(size_t)b * D + p - 1];
                    pos[b] = Q + p;
                    uint8_t *m = mask + (size_t)b * ld;
                    memset(m, 0, (size_t)ld);
                    memset(m, 1, (size_t)np);
                    for (int i = 0; i < p - 1; i++) m[chain[(size_t)b * D + i]] = 1;
                    m[n_ctx + b] = 1;
                }
                tsr_status st = tsr_lm_forward_masked_hidden(&g->lm, &cache, tok, n_live, n_ctx, pos, mask, ld, hid);
                TSR_ASSERT(st.code == TSR_OK);
            }
            h = hid;
            hstride = (size_t)C;
        } else {
            tsr_ctx_reset(&c);
            int S = Q + 1 + p;
            tsr_tensor *tk = tsr_new(&c, TSR_I32, TSR_DIMS(n_live, S));
            tsr_tensor *mk = tsr_new(&c, TSR_U8, TSR_DIMS(n_live, S, S));
            for (int b = 0; b < n_live; b++)
                fill_inputs(g, tsr_i32(tk), tsr_u8(mk), S, q_tok, q_len, pref + (size_t)b * D, p, b);
            tsr_nn_seq seq = {.pos = NULL, .mask = mk, .causal = true};
            h = tsr_f32(tsr_nn_llama_hidden(&c, &g->dec, tk, &seq)) + (size_t)(S - 1) * C;
            hstride = (size_t)S * C;
        }
        int n_top = 0;
        for (int b = 0; b < n_live; b++) {
            const float *hb = h + (size_t)b * hstride;
            const tsr_higen_node *nd = &t->nodes[node[b]];
            float mx = -INFINITY;
            for (int ch = 0; ch < nd->n_children; ch++) { /* logits of the children only */
                lp[ch] = code_logit(g, hb, p, ch);
                mx = lp[ch] > mx ? lp[ch] : mx;
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
        int nl = 0;
        for (int i = 0; i < n_top; i++) {
            if (t->nodes[top[i].node].item >= 0) {
                if (n_fin < fcap) fin[n_fin++] = top[i];
                continue;
            }
            int pb = top[i].beam;
            memcpy(npref + (size_t)nl * D, pref + (size_t)pb * D, (size_t)p * sizeof *pref);
            npref[(size_t)nl * D + p] = top[i].tok;
            if (cached && p > 0) { /* the parent's chain, then the slot its newest token went to */
                memcpy(nchain + (size_t)nl * D, chain + (size_t)pb * D, (size_t)(p - 1) * sizeof *chain);
                nchain[(size_t)nl * D + p - 1] = n_ctx + pb;
            }
            node[nl] = top[i].node;
            score[nl] = top[i].score;
            nl++;
        }
        int32_t *sw = pref;
        pref = npref;
        npref = sw;
        if (cached) {
            if (p > 0) n_ctx += n_live;
            sw = chain;
            chain = nchain;
            nchain = sw;
        }
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
    if (cached) {
        tsr_lm_cache_free(&cache);
        free(chain);
        free(nchain);
        free(tok);
        free(pos);
        free(mask);
        free(hid);
    } else {
        tsr_ctx_free(&c);
    }
    return n;
}

int tsr_higen_beam_search(const tsr_higen_gen *g, const tsr_higen_trie *t, const int32_t *q_tok, int q_len,
                          int beam, int k, int32_t *items, float *scores) {
    return beam_run(g, t, q_tok, q_len, beam, k, items, scores, true);
}

int tsr_higen_beam_search_uncached(const tsr_higen_gen *g, const tsr_higen_trie *t, const int32_t *q_tok, int q_len,
                                   int beam, int k, int32_t *items, float *scores) {
    return beam_run(g, t, q_tok, q_len, beam, k, items, scores, false);
}

/* ------------------------------------------------------ level diagnosis */

int tsr_higen_gen_levels(const tsr_higen_gen *g, const tsr_higen_trie *t, const int32_t *q_tok, int q_len,
                         int32_t item, int32_t *rank, int32_t *fanout) {
    int D = g->cfg.max_depth, Q = g->cfg.max_query, F = g->cfg.fanout, C = g->cfg.dim;
    TSR_ASSERT(t->max_depth <= D && t->max_fanout <= F && item >= 0 && item < t->n_items);
    int32_t d[TSR_HIGEN_MAX_DEPTH];
    int L = tsr_higen_docid(t, item, d); /* [query, SEP, d0 .. d_{L-2}] */
    int ql = q_len > Q ? Q : q_len < 0 ? 0 : q_len;
    float *hid = malloc((size_t)(ql + L) * C * sizeof *hid);
    TSR_ASSERT(hid);
    tsr_lm_cache cache;
    cache_open(g, &cache, ql + L);
    run_causal(g, &cache, q_tok, q_len, d, L - 1, hid);
    int32_t node = 0;
    for (int p = 0; p < L; p++) { /* the true token's rank among its node's children, from SEP's row + p */
        const float *hp = hid + (size_t)(ql + p) * C;
        const tsr_higen_node *nd = &t->nodes[node];
        float mine = code_logit(g, hp, p, d[p]);
        int32_t r = 0;
        for (int ch = 0; ch < nd->n_children; ch++) {
            float s = code_logit(g, hp, p, ch);
            r += s > mine || (s == mine && ch < d[p]);
        }
        rank[p] = r;
        fanout[p] = nd->n_children;
        node = nd->first_child + d[p];
    }
    tsr_lm_cache_free(&cache);
    free(hid);
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
