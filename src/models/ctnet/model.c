/* tessera ctnet: the CTR tower, CTNet's adapters, the CoNet-style cross
 * links, batches, and AUC / log loss (see include/tessera/ctnet.h). Built
 * from the autograd ops, so every piece has its backward. */
#include "tessera/ctnet.h"

#include "tessera/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

tsr_ctnet_cfg tsr_ctnet_default_cfg(void) {
    return (tsr_ctnet_cfg){.dim = 16, .n_layers = 2, .hidden = {64, 32}, .cross = 1,
                           .user_buckets = 2048, .item_buckets = 8192, .tok_buckets = 2048,
                           .n_fields = 5, .adapt_from = 1, .adapter_scale = 1.0f};
}

const char *const tsr_ctnet_norm_names[TSR_CTNET_NORM_COUNT] = {"none", "rms", "match"};

int tsr_ctnet_norm_parse(const char *name) {
    for (int k = 0; k < TSR_CTNET_NORM_COUNT; k++)
        if (!strcmp(name, tsr_ctnet_norm_names[k])) return k;
    return -1;
}

int tsr_ctnet_input_dim(const tsr_ctnet_cfg *g) { return (3 + g->n_fields) * g->dim; }

int tsr_ctnet_layer_in(const tsr_ctnet_cfg *g, int l) {
    return l == 0 ? tsr_ctnet_input_dim(g) : g->hidden[l - 1];
}

static int layer_out(const tsr_ctnet_cfg *g, int l) { return l == g->n_layers ? 1 : g->hidden[l]; }

void tsr_ctnet_tower_build(tsr_params *p, const char *prefix, const tsr_ctnet_cfg *g,
                           tsr_ctnet_tower *t) {
    char nm[96];
    memset(t, 0, sizeof *t);
    snprintf(nm, sizeof nm, "%s.emb_user.weight", prefix);
    t->emb_user = tsr_param_new(p, nm, TSR_PARAM_NO_DECAY | TSR_PARAM_SPARSE_ROWS, TSR_DIMS(g->user_buckets, g->dim));
    snprintf(nm, sizeof nm, "%s.emb_item.weight", prefix);
    t->emb_item = tsr_param_new(p, nm, TSR_PARAM_NO_DECAY | TSR_PARAM_SPARSE_ROWS, TSR_DIMS(g->item_buckets, g->dim));
    snprintf(nm, sizeof nm, "%s.emb_tok.weight", prefix);
    t->emb_tok = tsr_param_new(p, nm, TSR_PARAM_NO_DECAY | TSR_PARAM_SPARSE_ROWS, TSR_DIMS(g->tok_buckets, g->dim));
    const int D = tsr_ctnet_input_dim(g);
    if (g->cross) {
        snprintf(nm, sizeof nm, "%s.cross.weight", prefix);
        t->cross_w = tsr_param_new(p, nm, 0, TSR_DIMS(D, D));
        snprintf(nm, sizeof nm, "%s.cross.bias", prefix);
        t->cross_b = tsr_param_new(p, nm, TSR_PARAM_NO_DECAY, TSR_DIMS(D));
    }
    for (int l = 0; l <= g->n_layers; l++) {
        if (l < g->n_layers) snprintf(nm, sizeof nm, "%s.mlp.%d.weight", prefix, l);
        else snprintf(nm, sizeof nm, "%s.out.weight", prefix);
        t->w[l] = tsr_param_new(p, nm, 0, TSR_DIMS(layer_out(g, l), tsr_ctnet_layer_in(g, l)));
        if (l < g->n_layers) snprintf(nm, sizeof nm, "%s.mlp.%d.bias", prefix, l);
        else snprintf(nm, sizeof nm, "%s.out.bias", prefix);
        t->b[l] = tsr_param_new(p, nm, TSR_PARAM_NO_DECAY, TSR_DIMS(layer_out(g, l)));
    }
}

static void init_linear(tsr_tensor *w, tsr_tensor *b, tsr_rng *r) {
    /* torch.nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
    float k = 1.0f / sqrtf((float)w->shape[1]);
    tsr_init_uniform(w, r, -k, k);
    if (b) tsr_init_uniform(b, r, -k, k);
}

static void init_emb(tsr_tensor *e, tsr_rng *r) {
    tsr_init_normal(e, r, 0.05f);
    memset(tsr_f32(e), 0, sizeof(float) * (size_t)e->shape[1]); /* bucket 0: padding */
}

void tsr_ctnet_tower_init(tsr_ctnet_tower *t, const tsr_ctnet_cfg *g, tsr_rng *r) {
    init_emb(t->emb_user, r);
    init_emb(t->emb_item, r);
    init_emb(t->emb_tok, r);
    if (g->cross) {
        /* small cross weights: the layer starts close to x0 * b + x0 */
        init_linear(t->cross_w, t->cross_b, r);
        for (int64_t i = 0; i < t->cross_w->numel; i++) tsr_f32(t->cross_w)[i] *= 0.1f;
        tsr_init_const(t->cross_b, 0.0f);
    }
    for (int l = 0; l <= g->n_layers; l++) init_linear(t->w[l], t->b[l], r);
}

static void copy_t(tsr_tensor *d, const tsr_tensor *s) {
    if (!d || !s) return;
    TSR_ASSERT(d->numel == s->numel);
    memcpy(d->data, s->data, sizeof(float) * (size_t)d->numel);
}

void tsr_ctnet_tower_copy(tsr_ctnet_tower *dst, const tsr_ctnet_tower *src, const tsr_ctnet_cfg *g) {
    copy_t(dst->emb_user, src->emb_user);
    copy_t(dst->emb_item, src->emb_item);
    copy_t(dst->emb_tok, src->emb_tok);
    copy_t(dst->cross_w, src->cross_w);
    copy_t(dst->cross_b, src->cross_b);
    for (int l = 0; l <= g->n_layers; l++) {
        copy_t(dst->w[l], src->w[l]);
        copy_t(dst->b[l], src->b[l]);
    }
}

void tsr_ctnet_adapters_build(tsr_params *p, const char *prefix, const tsr_ctnet_cfg *g,
                              bool gated, int from, tsr_ctnet_adapters *a) {
    char nm[96];
    memset(a, 0, sizeof *a);
    for (int l = from < 0 ? 0 : from; l <= g->n_layers; l++) {
        const int D = tsr_ctnet_layer_in(g, l);
        snprintf(nm, sizeof nm, "%s.%d.a.weight", prefix, l);
        a->wa[l] = tsr_param_new(p, nm, 0, TSR_DIMS(D, D));
        snprintf(nm, sizeof nm, "%s.%d.a.bias", prefix, l);
        a->ba[l] = tsr_param_new(p, nm, TSR_PARAM_NO_DECAY, TSR_DIMS(D));
        if (!gated) continue;
        snprintf(nm, sizeof nm, "%s.%d.g.weight", prefix, l);
        a->wg[l] = tsr_param_new(p, nm, 0, TSR_DIMS(D, D));
        snprintf(nm, sizeof nm, "%s.%d.g.bias", prefix, l);
        a->bg[l] = tsr_param_new(p, nm, TSR_PARAM_NO_DECAY, TSR_DIMS(D));
    }
}

void tsr_ctnet_adapters_init(tsr_ctnet_adapters *a, const tsr_ctnet_cfg *g, bool gated,
                             float wa_std, tsr_rng *r) {
    for (int l = 0; l <= g->n_layers; l++) {
        if (!a->wa[l]) continue; /* below the first adapted layer */
        if (wa_std >= 0) tsr_init_normal(a->wa[l], r, wa_std);
        else init_linear(a->wa[l], NULL, r);
        tsr_init_const(a->ba[l], 0.0f);
        if (gated) {
            init_linear(a->wg[l], NULL, r);
            tsr_init_const(a->bg[l], 0.0f);
        }
    }
    if (a->norm) tsr_init_const(a->norm, 1.0f); /* set by every CTNet period update */
}

/* ---------------------------------------------------------------- batch */

static int32_t bucket(uint32_t h, int n) { return h ? 1 + (int32_t)(h % (uint32_t)(n - 1)) : 0; }

tsr_ctnet_batch tsr_ctnet_make_batch(tsr_ctx *c, const tsr_ctnet_log *g, const int64_t *rows,
                                     int64_t B, const tsr_ctnet_cfg *cfg, const int *field_map) {
    const int H = TSR_CTNET_HIST, F = cfg->n_fields, K = TSR_CTNET_FIELD_TOKS;
    const int FK = TSR_CTNET_MAX_FIELDS * K;
    tsr_ctnet_batch b = {.B = B};
    b.user = tsr_new(c, TSR_I32, TSR_DIMS(B));
    b.item = tsr_new(c, TSR_I32, TSR_DIMS(B));
    b.hist = tsr_new(c, TSR_I32, TSR_DIMS(B, H));
    b.tok = tsr_new(c, TSR_I32, TSR_DIMS(B, F, K));
    b.hist_w = tsr_new(c, TSR_F32, TSR_DIMS(B, H, 1));
    b.tok_w = tsr_new(c, TSR_F32, TSR_DIMS(B, F, K, 1));
    b.y = tsr_new(c, TSR_F32, TSR_DIMS(B, 1));
    /* the model's field holding the domain, and the source domain's token */
    int fdom = -1;
    for (int f = 0; f < F && fdom < 0; f++) {
        const int lf = field_map ? field_map[f] : f;
        if (lf >= 0 && lf < g->n_fields && !strcmp(g->field[lf], "domain")) fdom = f;
    }
    b.tok_src = b.tok;
    if (fdom >= 0) b.tok_src = tsr_new(c, TSR_I32, TSR_DIMS(B, F, K));
    const int32_t src_tok = bucket(tsr_ctnet_hash("domain", "source", 6), cfg->tok_buckets);
    for (int64_t i = 0; i < B; i++) {
        const int64_t r = rows[i];
        tsr_i32(b.user)[i] = bucket(g->user[r], cfg->user_buckets);
        tsr_i32(b.item)[i] = bucket(g->item[r], cfg->item_buckets);
        tsr_f32(b.y)[i] = (float)g->label[r];
        int cnt = 0;
        for (int k = 0; k < H; k++) {
            int32_t v = bucket(g->hist[r * H + k], cfg->item_buckets);
            tsr_i32(b.hist)[i * H + k] = v;
            cnt += v != 0;
        }
        for (int k = 0; k < H; k++)
            tsr_f32(b.hist_w)[i * H + k] = tsr_i32(b.hist)[i * H + k] ? 1.0f / (float)cnt : 0.0f;
        for (int f = 0; f < F; f++) {
            const int lf = field_map ? field_map[f] : f;
            int32_t *t = tsr_i32(b.tok) + (i * F + f) * K;
            float *w = tsr_f32(b.tok_w) + (i * F + f) * K;
            cnt = 0;
            for (int k = 0; k < K; k++) {
                t[k] = lf >= 0 && lf < g->n_fields ? bucket(g->tok[r * FK + lf * K + k], cfg->tok_buckets) : 0;
                cnt += t[k] != 0;
            }
            for (int k = 0; k < K; k++) w[k] = t[k] ? 1.0f / (float)cnt : 0.0f;
        }
        if (fdom >= 0) {
            memcpy(tsr_i32(b.tok_src) + i * F * K, tsr_i32(b.tok) + i * F * K, sizeof(int32_t) * (size_t)(F * K));
            /* the domain field holds one token; the source tower reads its own */
            int32_t *t = tsr_i32(b.tok_src) + (i * F + fdom) * K;
            if (t[0]) t[0] = src_tok;
        }
    }
    return b;
}

/* -------------------------------------------------------------- forward */

tsr_tensor *tsr_ctnet_tower_input(tsr_ctx *c, const tsr_ctnet_tower *t, const tsr_ctnet_cfg *g,
                                  const tsr_ctnet_batch *b) {
    const int64_t B = b->B;
    tsr_tensor *eu = tsr_embedding(c, t->emb_user, b->user);                     /* (B,d) */
    tsr_tensor *ei = tsr_embedding(c, t->emb_item, b->item);                     /* (B,d) */
    tsr_tensor *eh = tsr_embedding(c, t->emb_item, b->hist);                     /* (B,H,d) */
    eh = tsr_sum(c, tsr_mul(c, eh, b->hist_w), 1, false);                        /* (B,d) */
    tsr_tensor *et = tsr_embedding(c, t->emb_tok, b->tok);                       /* (B,F,K,d) */
    et = tsr_sum(c, tsr_mul(c, et, b->tok_w), 2, false);                         /* (B,F,d) */
    et = tsr_reshape(c, et, TSR_DIMS(B, (int64_t)g->n_fields * g->dim));
    tsr_tensor *parts[4] = {eu, ei, eh, et};
    tsr_tensor *x0 = tsr_concat(c, parts, 4, 1);                                 /* (B,D) */
    if (!g->cross) return x0;
    /* DCNv2 cross layer (Wang et al. 2021, eq. 1): x1 = x0 * (W x0 + b) + x0 */
    return tsr_add(c, tsr_mul(c, x0, tsr_linear(c, x0, t->cross_w, t->cross_b)), x0);
}

tsr_tensor *tsr_ctnet_tower_layer(tsr_ctx *c, const tsr_ctnet_tower *t, const tsr_ctnet_cfg *g,
                                  int l, tsr_tensor *z) {
    tsr_tensor *h = tsr_linear(c, z, t->w[l], t->b[l]);
    return l < g->n_layers ? tsr_relu(c, h) : h;
}

tsr_tensor *tsr_ctnet_adapter(tsr_ctx *c, const tsr_ctnet_adapters *a, int l, tsr_tensor *z) {
    tsr_tensor *v = tsr_linear(c, z, a->wa[l], a->ba[l]);
    if (!a->wg[l]) return v;
    /* CTNet's adapter (paper eq. 3): (W_a z + b_a) * sigmoid(W_g z + b_g) */
    return tsr_mul(c, v, tsr_sigmoid(c, tsr_linear(c, z, a->wg[l], a->bg[l])));
}

tsr_tensor *tsr_ctnet_adapter_input(tsr_ctx *c, const tsr_ctnet_adapters *a, int l, tsr_tensor *zs) {
    /* a constant of the period (no gradient): the states are scaled inputs */
    return a->norm ? tsr_scale(c, zs, tsr_f32(a->norm)[l]) : zs;
}

void tsr_ctnet_source_states(tsr_ctx *c, const tsr_ctnet_cfg *g, const tsr_ctnet_tower *src,
                             const tsr_ctnet_batch *b, tsr_tensor **zs) {
    /* the source tower is frozen: no tape, its activations are inputs;
     * it reads every row as a row of its own domain */
    bool ge = c->grad_enabled;
    c->grad_enabled = false;
    tsr_ctnet_batch bs = *b;
    if (bs.tok_src) bs.tok = bs.tok_src;
    zs[0] = tsr_ctnet_tower_input(c, src, g, &bs);
    for (int l = 0; l < g->n_layers; l++) zs[l + 1] = tsr_ctnet_tower_layer(c, src, g, l, zs[l]);
    c->grad_enabled = ge;
}

tsr_tensor *tsr_ctnet_forward_states(tsr_ctx *c, const tsr_ctnet_cfg *g, const tsr_ctnet_tower *tgt,
                                     tsr_tensor *const *zs, const tsr_ctnet_adapters *ad,
                                     const tsr_tensor *concat_w, const tsr_ctnet_batch *b) {
    tsr_tensor *z = tsr_ctnet_tower_input(c, tgt, g, b);
    for (int l = 0; l <= g->n_layers; l++) {
        if (zs && ad && ad->wa[l]) {
            tsr_tensor *a = tsr_ctnet_adapter(c, ad, l, tsr_ctnet_adapter_input(c, ad, l, zs[l]));
            if (g->adapter_scale != 1.0f) a = tsr_scale(c, a, g->adapter_scale);
            z = tsr_add(c, z, a);
        }
        z = tsr_ctnet_tower_layer(c, tgt, g, l, z);
    }
    if (zs && concat_w) /* logit of concat(h_t, h_s) = out(h_t) + concat_w . h_s */
        z = tsr_add(c, z, tsr_linear(c, zs[g->n_layers], (tsr_tensor *)concat_w, NULL));
    return z;
}

tsr_tensor *tsr_ctnet_forward(tsr_ctx *c, const tsr_ctnet_cfg *g, const tsr_ctnet_tower *tgt,
                              const tsr_ctnet_tower *src, const tsr_ctnet_adapters *ad,
                              const tsr_tensor *concat_w, const tsr_ctnet_batch *b) {
    tsr_tensor *zs[TSR_CTNET_MAX_LAYERS + 2] = {0};
    if (src) tsr_ctnet_source_states(c, g, src, b, zs);
    return tsr_ctnet_forward_states(c, g, tgt, src ? zs : NULL, ad, concat_w, b);
}

void tsr_ctnet_conet_forward(tsr_ctx *c, const tsr_ctnet_cfg *g, const tsr_ctnet_tower *tgt,
                             const tsr_ctnet_tower *src, const tsr_ctnet_adapters *links,
                             const tsr_ctnet_batch *b, tsr_tensor **logit_t, tsr_tensor **logit_s) {
    tsr_tensor *zt = tsr_ctnet_tower_input(c, tgt, g, b);
    tsr_tensor *zs = tsr_ctnet_tower_input(c, src, g, b);
    for (int l = 0; l <= g->n_layers; l++) {
        /* CoNet (Hu et al. 2018, eq. 2): shared cross-connection matrix H_l */
        tsr_tensor *nt = tsr_add(c, zt, tsr_linear(c, zs, links->wa[l], NULL));
        tsr_tensor *ns = tsr_add(c, zs, tsr_linear(c, zt, links->wa[l], NULL));
        zt = tsr_ctnet_tower_layer(c, tgt, g, l, nt);
        zs = tsr_ctnet_tower_layer(c, src, g, l, ns);
    }
    *logit_t = zt;
    *logit_s = zs;
}

/* -------------------------------------------------------------- metrics */

static const float *g_auc_score;
static int cmp_score(const void *a, const void *b) {
    float x = g_auc_score[*(const int64_t *)a], y = g_auc_score[*(const int64_t *)b];
    return (x > y) - (x < y);
}

double tsr_ctnet_auc(const float *score, const uint8_t *label, int64_t n) {
    int64_t pos = 0;
    for (int64_t i = 0; i < n; i++) pos += label[i] != 0;
    const int64_t neg = n - pos;
    if (pos == 0 || neg == 0) return NAN;
    int64_t *ord = malloc(sizeof(int64_t) * (size_t)n);
    TSR_ASSERT(ord);
    for (int64_t i = 0; i < n; i++) ord[i] = i;
    g_auc_score = score;
    qsort(ord, (size_t)n, sizeof *ord, cmp_score);
    /* sum of the positives' ranks, ties sharing their average rank */
    double rank_sum = 0;
    for (int64_t a = 0; a < n;) {
        int64_t e = a;
        while (e < n && score[ord[e]] == score[ord[a]]) e++;
        double avg = 0.5 * (double)(a + 1 + e); /* ranks a+1 .. e */
        for (int64_t k = a; k < e; k++)
            if (label[ord[k]]) rank_sum += avg;
        a = e;
    }
    free(ord);
    return (rank_sum - 0.5 * (double)pos * (double)(pos + 1)) / ((double)pos * (double)neg);
}

double tsr_ctnet_logloss(const float *p, const uint8_t *label, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double q = p[i] < 1e-7f ? 1e-7 : p[i] > 1 - 1e-7f ? 1 - 1e-7 : (double)p[i];
        s -= label[i] ? log(q) : log(1 - q);
    }
    return n ? s / (double)n : NAN;
}
