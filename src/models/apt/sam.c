/* tessera apt: the SAM-family promptable segmenter (include/tessera/sam.h).
 * Image encoders: ViT with windowed + global attention and decomposed
 * relative positions (SAM, Kirillov et al. 2023, sec. 3 and app. A; Li et
 * al. 2022 "ViTDet" for the windows and rel-pos), TinyViT (Wu et al. 2022,
 * as distilled in MobileSAM). Prompt encoder with random Fourier features
 * (Tancik et al. 2020) and the two-way transformer mask decoder. Every
 * forward is an autograd graph, so the apt trainer reuses it as is. */
#include "tessera/sam.h"

#include "tessera/ops.h"
#include "tessera/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const float tsr_sam_pixel_mean[3] = {123.675f, 116.28f, 103.53f};
const float tsr_sam_pixel_std[3] = {58.395f, 57.12f, 57.375f};

/* ------------------------------------------------------------- configs */

static tsr_sam_cfg decoder_defaults(tsr_sam_cfg g) {
    g.img_size = 1024;
    g.dim = 256;
    g.mask_in_chans = 16;
    g.dec_depth = 2;
    g.dec_heads = 8;
    g.dec_mlp = 2048;
    g.n_multimask = 3;
    g.iou_hidden = 256;
    g.iou_depth = 3;
    return g;
}

tsr_sam_cfg tsr_sam_cfg_mobile(void) {
    tsr_sam_cfg g = {.encoder = TSR_SAM_TINYVIT,
                     .tv_dims = {64, 128, 160, 320}, .tv_depths = {2, 2, 6, 2},
                     .tv_heads = {2, 4, 5, 10}, .tv_windows = {7, 7, 14, 7},
                     .tv_mlp_ratio = 4, .tv_expand = 4, .tv_local_conv = 3};
    return decoder_defaults(g);
}

static tsr_sam_cfg vit(int dim, int depth, int heads, int g0, int g1, int g2, int g3) {
    tsr_sam_cfg g = {.encoder = TSR_SAM_VIT, .vit_dim = dim, .vit_depth = depth,
                     .vit_heads = heads, .vit_window = 14, .vit_mlp_ratio = 4,
                     .vit_n_global = 4, .vit_global = {g0, g1, g2, g3}};
    return decoder_defaults(g);
}
tsr_sam_cfg tsr_sam_cfg_vit_b(void) { return vit(768, 12, 12, 2, 5, 8, 11); }
tsr_sam_cfg tsr_sam_cfg_vit_l(void) { return vit(1024, 24, 16, 5, 11, 17, 23); }
tsr_sam_cfg tsr_sam_cfg_vit_h(void) { return vit(1280, 32, 16, 7, 15, 23, 31); }

/* the config's integer fields by metadata key */
#define F(name) {"sam." #name, offsetof(tsr_sam_cfg, name), 1}
#define FA(name, n) {"sam." #name, offsetof(tsr_sam_cfg, name), n}
static const struct { const char *key; size_t off; int n; } CFG_FIELDS[] = {
    F(encoder), F(img_size), F(vit_dim), F(vit_depth), F(vit_heads), F(vit_window),
    F(vit_mlp_ratio), F(vit_n_global), FA(vit_global, 8), FA(tv_dims, 4), FA(tv_depths, 4),
    FA(tv_heads, 4), FA(tv_windows, 4), F(tv_mlp_ratio), F(tv_expand), F(tv_local_conv), F(dim),
    F(mask_in_chans), F(dec_depth), F(dec_heads), F(dec_mlp), F(n_multimask), F(iou_hidden),
    F(iou_depth),
};
#undef F
#undef FA
#define N_FIELDS ((int)(sizeof CFG_FIELDS / sizeof CFG_FIELDS[0]))

void tsr_sam_cfg_to_meta(const tsr_sam_cfg *g, char *buf, size_t n, const char **kv, int max_kv) {
    TSR_ASSERT(max_kv >= 2 * N_FIELDS + 1);
    size_t pos = 0;
    int k = 0;
    for (int i = 0; i < N_FIELDS; i++) {
        const int *v = (const int *)((const char *)g + CFG_FIELDS[i].off);
        char *s = buf + pos;
        int len = 0;
        for (int j = 0; j < CFG_FIELDS[i].n; j++) {
            int w = snprintf(s + len, n - pos - (size_t)len, "%s%d", j ? "," : "", v[j]);
            TSR_ASSERT(w > 0 && pos + (size_t)(len + w) < n);
            len += w;
        }
        kv[k++] = CFG_FIELDS[i].key;
        kv[k++] = s;
        pos += (size_t)len + 1;
    }
    kv[k] = NULL;
}

tsr_status tsr_sam_cfg_from_meta(tsr_sam_cfg *g, const char *const *keys, const char *const *vals,
                                 int n) {
    for (int i = 0; i < n; i++) {
        for (int f = 0; f < N_FIELDS; f++) {
            if (strcmp(keys[i], CFG_FIELDS[f].key) != 0) continue;
            int *v = (int *)((char *)g + CFG_FIELDS[f].off);
            const char *s = vals[i];
            for (int j = 0; j < CFG_FIELDS[f].n; j++) {
                char *end;
                long x = strtol(s, &end, 10);
                if (end == s || x < -1 || x > 1 << 20)
                    return tsr_errorf(TSR_ERR_FORMAT, "metadata %s='%s' is not a list of %d integers",
                                      keys[i], vals[i], CFG_FIELDS[f].n);
                v[j] = (int)x;
                s = end;
                if (j + 1 < CFG_FIELDS[f].n) {
                    if (*s != ',')
                        return tsr_errorf(TSR_ERR_FORMAT, "metadata %s='%s' has fewer than %d values",
                                          keys[i], vals[i], CFG_FIELDS[f].n);
                    s++;
                }
            }
        }
    }
    return tsr_ok();
}

#define NEED(cond, ...) \
    do {                \
        if (!(cond)) return tsr_errorf(TSR_ERR_FORMAT, __VA_ARGS__); \
    } while (0)

tsr_status tsr_sam_cfg_check(const tsr_sam_cfg *g) {
    NEED(g->encoder == TSR_SAM_VIT || g->encoder == TSR_SAM_TINYVIT, "sam.encoder %d is not 0 (vit) or 1 (tinyvit)", g->encoder);
    NEED(g->img_size >= 32 && g->img_size <= 4096 && g->img_size % 16 == 0,
         "sam.img_size %d must be a multiple of 16 in [32, 4096]", g->img_size);
    NEED(g->dim >= 8 && g->dim <= 4096 && g->dim % 8 == 0, "sam.dim %d must be a multiple of 8", g->dim);
    NEED(g->dec_heads >= 1 && (g->dim / 2) % g->dec_heads == 0,
         "sam.dec_heads %d must divide dim/2 = %d", g->dec_heads, g->dim / 2);
    NEED(g->mask_in_chans >= 4 && g->mask_in_chans % 4 == 0 && g->mask_in_chans <= 1024,
         "sam.mask_in_chans %d must be a multiple of 4", g->mask_in_chans);
    NEED(g->dec_depth >= 1 && g->dec_depth <= 16 && g->dec_mlp >= 1 && g->dec_mlp <= 65536,
         "sam.dec_depth %d / dec_mlp %d out of range", g->dec_depth, g->dec_mlp);
    NEED(g->n_multimask >= 1 && g->n_multimask <= 16 && g->iou_hidden >= 1 && g->iou_depth >= 1 &&
             g->iou_depth <= 8,
         "sam multimask/iou head settings out of range");
    if (g->encoder == TSR_SAM_VIT) {
        NEED(g->vit_dim >= 8 && g->vit_dim <= 8192 && g->vit_heads >= 1 && g->vit_dim % g->vit_heads == 0,
             "sam.vit_dim %d must be divisible by vit_heads %d", g->vit_dim, g->vit_heads);
        NEED(g->vit_depth >= 1 && g->vit_depth <= 64 && g->vit_window >= 0 && g->vit_window <= 256 &&
                 g->vit_mlp_ratio >= 1 && g->vit_mlp_ratio <= 16,
             "sam ViT depth/window/mlp_ratio out of range");
        NEED(g->vit_n_global >= 0 && g->vit_n_global <= 8, "sam.vit_n_global %d out of range", g->vit_n_global);
        for (int i = 0; i < g->vit_n_global; i++)
            NEED(g->vit_global[i] >= 0 && g->vit_global[i] < g->vit_depth,
                 "sam.vit_global[%d] = %d is not a block", i, g->vit_global[i]);
    } else {
        for (int i = 0; i < 4; i++) {
            NEED(g->tv_dims[i] >= 2 && g->tv_dims[i] <= 4096 && g->tv_depths[i] >= 1 && g->tv_depths[i] <= 32,
                 "sam.tv_dims/tv_depths[%d] out of range", i);
            NEED(i == 0 || (g->tv_heads[i] >= 1 && g->tv_dims[i] % g->tv_heads[i] == 0 &&
                            g->tv_windows[i] >= 1 && g->tv_windows[i] <= 64),
                 "sam.tv_heads[%d] = %d must divide tv_dims (%d), window in [1,64]", i, g->tv_heads[i],
                 g->tv_dims[i]);
        }
        NEED(g->tv_dims[0] % 2 == 0, "sam.tv_dims[0] must be even");
        NEED(g->tv_mlp_ratio >= 1 && g->tv_mlp_ratio <= 16 && g->tv_expand >= 1 && g->tv_expand <= 16 &&
                 g->tv_local_conv >= 1 && g->tv_local_conv % 2 == 1,
             "sam TinyViT mlp_ratio/expand/local_conv out of range");
    }
    return tsr_ok();
}

/* ------------------------------------------------------------- modules */

typedef struct { tsr_tensor *w, *b; } lin;
typedef struct { tsr_tensor *w, *b; } norm; /* LayerNorm / LayerNorm2d */
typedef struct { tsr_tensor *w, *g, *b, *mean, *var; int k, stride, groups; } conv_bn;

typedef struct {
    norm norm1, norm2;
    lin qkv, proj, lin1, lin2;
    tsr_tensor *rel_h, *rel_w; /* (2*size-1, head_dim) */
    int window;                /* 0: global */
} vit_block;

typedef struct { conv_bn c1, c2, c3; } conv3; /* MBConv and PatchMerging */

typedef struct {
    norm anorm, mnorm;
    lin qkv, proj, fc1, fc2;
    tsr_tensor *biases;        /* (heads, ws*ws) */
    conv_bn local;
} tv_block;

typedef struct { lin q, k, v, o; int heads; } attn;

typedef struct {
    attn self_attn, t2i, i2t;
    norm n1, n2, n3, n4;
    lin lin1, lin2;
} twoway_layer;

typedef struct { lin *l; int n; } mlp;

typedef struct {
    /* ViT */
    tsr_tensor *pe_w, *pe_b, *pos;
    vit_block *vb;
    /* TinyViT */
    conv_bn pe1, pe2;
    conv3 *mb;                 /* stage 0 blocks */
    tv_block *tb[4];
    conv3 merge[3];
    /* neck */
    tsr_tensor *neck0, *neck2;
    norm neck1, neck3;
    /* prompt encoder */
    tsr_tensor *gauss, *pt_emb[4], *not_a_point, *no_mask;
    tsr_tensor *md0w, *md0b, *md3w, *md3b, *md6w, *md6b;
    norm md1, md4;
    /* mask decoder */
    twoway_layer *tw;
    attn final_attn;
    norm norm_final;
    tsr_tensor *iou_token, *mask_tokens;
    tsr_tensor *up0w, *up0b, *up3w, *up3b;
    norm up1;
    mlp *hyper;
    mlp iou_head;
} sam_mods;

static const char *nm(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *nm(char *buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, 256, fmt, ap);
    va_end(ap);
    TSR_ASSERT(k > 0 && k < 256);
    return buf;
}

static lin lin_new(tsr_params *p, const char *pre, int in, int out, bool bias) {
    char b[256];
    lin l = {tsr_param_new(p, nm(b, "%s.weight", pre), 0, TSR_DIMS(out, in)), NULL};
    if (bias) l.b = tsr_param_new(p, nm(b, "%s.bias", pre), TSR_PARAM_NO_DECAY, TSR_DIMS(out));
    return l;
}
static norm norm_new(tsr_params *p, const char *pre, int dim) {
    char b[256];
    norm n = {tsr_param_new(p, nm(b, "%s.weight", pre), TSR_PARAM_NO_DECAY, TSR_DIMS(dim)),
              tsr_param_new(p, nm(b, "%s.bias", pre), TSR_PARAM_NO_DECAY, TSR_DIMS(dim))};
    tsr_init_const(n.w, 1.0f);
    return n;
}
static conv_bn conv_bn_new(tsr_params *p, const char *pre, int in, int out, int k, int stride,
                           int groups, float bn_w) {
    char b[256];
    conv_bn c = {.k = k, .stride = stride, .groups = groups};
    c.w = tsr_param_new(p, nm(b, "%s.c.weight", pre), 0, TSR_DIMS(out, in / groups, k, k));
    c.g = tsr_param_new(p, nm(b, "%s.bn.weight", pre), TSR_PARAM_NO_DECAY, TSR_DIMS(out));
    c.b = tsr_param_new(p, nm(b, "%s.bn.bias", pre), TSR_PARAM_NO_DECAY, TSR_DIMS(out));
    c.mean = tsr_param_new(p, nm(b, "%s.bn.running_mean", pre), TSR_PARAM_BUFFER, TSR_DIMS(out));
    c.var = tsr_param_new(p, nm(b, "%s.bn.running_var", pre), TSR_PARAM_BUFFER, TSR_DIMS(out));
    tsr_init_const(c.g, bn_w);
    tsr_init_const(c.var, 1.0f);
    return c;
}
static attn attn_new(tsr_params *p, const char *pre, int dim, int heads, int down) {
    char b[256];
    int in = dim / down;
    attn a = {.heads = heads};
    a.q = lin_new(p, nm(b, "%s.q_proj", pre), dim, in, true);
    a.k = lin_new(p, nm(b, "%s.k_proj", pre), dim, in, true);
    a.v = lin_new(p, nm(b, "%s.v_proj", pre), dim, in, true);
    a.o = lin_new(p, nm(b, "%s.out_proj", pre), in, dim, true);
    return a;
}
static mlp mlp_new(tsr_params *p, const char *pre, int in, int hid, int out, int depth) {
    char b[256];
    mlp m = {calloc((size_t)depth, sizeof(lin)), depth};
    TSR_ASSERT(m.l);
    for (int i = 0; i < depth; i++)
        m.l[i] = lin_new(p, nm(b, "%s.layers.%d", pre, i), i == 0 ? in : hid,
                         i == depth - 1 ? out : hid, true);
    return m;
}

static void build_vit(sam_mods *s, tsr_params *p, const tsr_sam_cfg *g, int grid) {
    char b[256];
    int D = g->vit_dim, hd = D / g->vit_heads;
    s->pe_w = tsr_param_new(p, "image_encoder.patch_embed.proj.weight", 0, TSR_DIMS(D, 3, 16, 16));
    s->pe_b = tsr_param_new(p, "image_encoder.patch_embed.proj.bias", TSR_PARAM_NO_DECAY, TSR_DIMS(D));
    s->pos = tsr_param_new(p, "image_encoder.pos_embed", TSR_PARAM_NO_DECAY, TSR_DIMS(1, grid, grid, D));
    s->vb = calloc((size_t)g->vit_depth, sizeof(vit_block));
    TSR_ASSERT(s->vb);
    for (int i = 0; i < g->vit_depth; i++) {
        vit_block *v = &s->vb[i];
        bool global = false;
        for (int k = 0; k < g->vit_n_global; k++) global |= g->vit_global[k] == i;
        v->window = global ? 0 : g->vit_window;
        int size = v->window ? v->window : grid;
        v->norm1 = norm_new(p, nm(b, "image_encoder.blocks.%d.norm1", i), D);
        v->qkv = lin_new(p, nm(b, "image_encoder.blocks.%d.attn.qkv", i), D, 3 * D, true);
        v->proj = lin_new(p, nm(b, "image_encoder.blocks.%d.attn.proj", i), D, D, true);
        v->rel_h = tsr_param_new(p, nm(b, "image_encoder.blocks.%d.attn.rel_pos_h", i),
                                 TSR_PARAM_NO_DECAY, TSR_DIMS(2 * size - 1, hd));
        v->rel_w = tsr_param_new(p, nm(b, "image_encoder.blocks.%d.attn.rel_pos_w", i),
                                 TSR_PARAM_NO_DECAY, TSR_DIMS(2 * size - 1, hd));
        v->norm2 = norm_new(p, nm(b, "image_encoder.blocks.%d.norm2", i), D);
        v->lin1 = lin_new(p, nm(b, "image_encoder.blocks.%d.mlp.lin1", i), D, D * g->vit_mlp_ratio, true);
        v->lin2 = lin_new(p, nm(b, "image_encoder.blocks.%d.mlp.lin2", i), D * g->vit_mlp_ratio, D, true);
    }
}

static conv3 merge_new(tsr_params *p, const char *pre, int in, int out, int stride) {
    char b[256];
    conv3 m;
    m.c1 = conv_bn_new(p, nm(b, "%s.conv1", pre), in, out, 1, 1, 1, 1.0f);
    m.c2 = conv_bn_new(p, nm(b, "%s.conv2", pre), out, out, 3, stride, out, 1.0f);
    m.c3 = conv_bn_new(p, nm(b, "%s.conv3", pre), out, out, 1, 1, 1, 1.0f);
    return m;
}

static void build_tinyvit(sam_mods *s, tsr_params *p, const tsr_sam_cfg *g) {
    char b[256], pre[256];
    const int *d = g->tv_dims;
    s->pe1 = conv_bn_new(p, "image_encoder.patch_embed.seq.0", 3, d[0] / 2, 3, 2, 1, 1.0f);
    s->pe2 = conv_bn_new(p, "image_encoder.patch_embed.seq.2", d[0] / 2, d[0], 3, 2, 1, 1.0f);
    int hid = d[0] * g->tv_expand;
    s->mb = calloc((size_t)g->tv_depths[0], sizeof(conv3));
    TSR_ASSERT(s->mb);
    for (int i = 0; i < g->tv_depths[0]; i++) {
        conv3 *m = &s->mb[i];
        m->c1 = conv_bn_new(p, nm(b, "image_encoder.layers.0.blocks.%d.conv1", i), d[0], hid, 1, 1, 1, 1.0f);
        m->c2 = conv_bn_new(p, nm(b, "image_encoder.layers.0.blocks.%d.conv2", i), hid, hid, 3, 1, hid, 1.0f);
        m->c3 = conv_bn_new(p, nm(b, "image_encoder.layers.0.blocks.%d.conv3", i), hid, d[0], 1, 1, 1, 0.0f);
    }
    for (int L = 0; L < 4; L++) {
        if (L > 0) {
            s->tb[L] = calloc((size_t)g->tv_depths[L], sizeof(tv_block));
            TSR_ASSERT(s->tb[L]);
            int C = d[L], ws = g->tv_windows[L], hidden = C * g->tv_mlp_ratio;
            for (int i = 0; i < g->tv_depths[L]; i++) {
                tv_block *t = &s->tb[L][i];
                snprintf(pre, sizeof pre, "image_encoder.layers.%d.blocks.%d", L, i);
                t->anorm = norm_new(p, nm(b, "%s.attn.norm", pre), C);
                t->qkv = lin_new(p, nm(b, "%s.attn.qkv", pre), C, 3 * C, true);
                t->proj = lin_new(p, nm(b, "%s.attn.proj", pre), C, C, true);
                t->biases = tsr_param_new(p, nm(b, "%s.attn.attention_biases", pre), TSR_PARAM_NO_DECAY,
                                          TSR_DIMS(g->tv_heads[L], ws * ws));
                t->local = conv_bn_new(p, nm(b, "%s.local_conv", pre), C, C, g->tv_local_conv, 1, C, 1.0f);
                t->mnorm = norm_new(p, nm(b, "%s.mlp.norm", pre), C);
                t->fc1 = lin_new(p, nm(b, "%s.mlp.fc1", pre), C, hidden, true);
                t->fc2 = lin_new(p, nm(b, "%s.mlp.fc2", pre), hidden, C, true);
            }
        }
        if (L < 3)
            s->merge[L] = merge_new(p, nm(pre, "image_encoder.layers.%d.downsample", L), d[L], d[L + 1],
                                    L == 2 ? 1 : 2);
    }
}

static void build(sam_mods *s, tsr_params *p, const tsr_sam_cfg *g, int grid) {
    char b[256];
    int C = g->dim;
    if (g->encoder == TSR_SAM_VIT) build_vit(s, p, g, grid);
    else build_tinyvit(s, p, g);
    int last = g->encoder == TSR_SAM_VIT ? g->vit_dim : g->tv_dims[3];
    s->neck0 = tsr_param_new(p, "image_encoder.neck.0.weight", 0, TSR_DIMS(C, last, 1, 1));
    s->neck1 = norm_new(p, "image_encoder.neck.1", C);
    s->neck2 = tsr_param_new(p, "image_encoder.neck.2.weight", 0, TSR_DIMS(C, C, 3, 3));
    s->neck3 = norm_new(p, "image_encoder.neck.3", C);
    /* prompt encoder */
    s->gauss = tsr_param_new(p, "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
                             TSR_PARAM_BUFFER, TSR_DIMS(2, C / 2));
    for (int i = 0; i < 4; i++)
        s->pt_emb[i] = tsr_param_new(p, nm(b, "prompt_encoder.point_embeddings.%d.weight", i), 0,
                                     TSR_DIMS(1, C));
    s->not_a_point = tsr_param_new(p, "prompt_encoder.not_a_point_embed.weight", 0, TSR_DIMS(1, C));
    int mc = g->mask_in_chans;
    s->md0w = tsr_param_new(p, "prompt_encoder.mask_downscaling.0.weight", 0, TSR_DIMS(mc / 4, 1, 2, 2));
    s->md0b = tsr_param_new(p, "prompt_encoder.mask_downscaling.0.bias", TSR_PARAM_NO_DECAY, TSR_DIMS(mc / 4));
    s->md1 = norm_new(p, "prompt_encoder.mask_downscaling.1", mc / 4);
    s->md3w = tsr_param_new(p, "prompt_encoder.mask_downscaling.3.weight", 0, TSR_DIMS(mc, mc / 4, 2, 2));
    s->md3b = tsr_param_new(p, "prompt_encoder.mask_downscaling.3.bias", TSR_PARAM_NO_DECAY, TSR_DIMS(mc));
    s->md4 = norm_new(p, "prompt_encoder.mask_downscaling.4", mc);
    s->md6w = tsr_param_new(p, "prompt_encoder.mask_downscaling.6.weight", 0, TSR_DIMS(C, mc, 1, 1));
    s->md6b = tsr_param_new(p, "prompt_encoder.mask_downscaling.6.bias", TSR_PARAM_NO_DECAY, TSR_DIMS(C));
    s->no_mask = tsr_param_new(p, "prompt_encoder.no_mask_embed.weight", 0, TSR_DIMS(1, C));
    /* mask decoder */
    s->tw = calloc((size_t)g->dec_depth, sizeof(twoway_layer));
    TSR_ASSERT(s->tw);
    for (int i = 0; i < g->dec_depth; i++) {
        twoway_layer *t = &s->tw[i];
        char pre[256];
        snprintf(pre, sizeof pre, "mask_decoder.transformer.layers.%d", i);
        t->self_attn = attn_new(p, nm(b, "%s.self_attn", pre), C, g->dec_heads, 1);
        t->n1 = norm_new(p, nm(b, "%s.norm1", pre), C);
        t->t2i = attn_new(p, nm(b, "%s.cross_attn_token_to_image", pre), C, g->dec_heads, 2);
        t->n2 = norm_new(p, nm(b, "%s.norm2", pre), C);
        t->lin1 = lin_new(p, nm(b, "%s.mlp.lin1", pre), C, g->dec_mlp, true);
        t->lin2 = lin_new(p, nm(b, "%s.mlp.lin2", pre), g->dec_mlp, C, true);
        t->n3 = norm_new(p, nm(b, "%s.norm3", pre), C);
        t->n4 = norm_new(p, nm(b, "%s.norm4", pre), C);
        t->i2t = attn_new(p, nm(b, "%s.cross_attn_image_to_token", pre), C, g->dec_heads, 2);
    }
    s->final_attn = attn_new(p, "mask_decoder.transformer.final_attn_token_to_image", C, g->dec_heads, 2);
    s->norm_final = norm_new(p, "mask_decoder.transformer.norm_final_attn", C);
    s->iou_token = tsr_param_new(p, "mask_decoder.iou_token.weight", 0, TSR_DIMS(1, C));
    int nm_tok = g->n_multimask + 1;
    s->mask_tokens = tsr_param_new(p, "mask_decoder.mask_tokens.weight", 0, TSR_DIMS(nm_tok, C));
    s->up0w = tsr_param_new(p, "mask_decoder.output_upscaling.0.weight", 0, TSR_DIMS(C, C / 4, 2, 2));
    s->up0b = tsr_param_new(p, "mask_decoder.output_upscaling.0.bias", TSR_PARAM_NO_DECAY, TSR_DIMS(C / 4));
    s->up1 = norm_new(p, "mask_decoder.output_upscaling.1", C / 4);
    s->up3w = tsr_param_new(p, "mask_decoder.output_upscaling.3.weight", 0, TSR_DIMS(C / 4, C / 8, 2, 2));
    s->up3b = tsr_param_new(p, "mask_decoder.output_upscaling.3.bias", TSR_PARAM_NO_DECAY, TSR_DIMS(C / 8));
    s->hyper = calloc((size_t)nm_tok, sizeof(mlp));
    TSR_ASSERT(s->hyper);
    for (int i = 0; i < nm_tok; i++)
        s->hyper[i] = mlp_new(p, nm(b, "mask_decoder.output_hypernetworks_mlps.%d", i), C, C, C / 8, 3);
    s->iou_head = mlp_new(p, "mask_decoder.iou_prediction_head", C, g->iou_hidden, nm_tok, g->iou_depth);
}

tsr_status tsr_sam_init(tsr_sam *m, const tsr_sam_cfg *cfg) {
    memset(m, 0, sizeof *m);
    tsr_status st = tsr_sam_cfg_check(cfg);
    if (st.code) return st;
    m->cfg = *cfg;
    m->grid = cfg->img_size / 16;
    tsr_params_init(&m->params);
    sam_mods *s = calloc(1, sizeof *s);
    TSR_ASSERT(s);
    m->priv = s;
    build(s, &m->params, cfg, m->grid);
    return tsr_ok();
}

void tsr_sam_free(tsr_sam *m) {
    sam_mods *s = m->priv;
    if (s) {
        free(s->vb);
        free(s->mb);
        for (int i = 0; i < 4; i++) free(s->tb[i]);
        free(s->tw);
        for (int i = 0; s->hyper && i < m->cfg.n_multimask + 1; i++) free(s->hyper[i].l);
        free(s->hyper);
        free(s->iou_head.l);
        free(s);
        tsr_params_free(&m->params);
    }
    memset(m, 0, sizeof *m);
}

/* the nn.Embedding tables (N(0, 1) as in PyTorch): prompt point and mask
 * embeddings and the decoder's output tokens. Matching "embed" or "token"
 * anywhere in the name would also catch the patch-embedding convolutions
 * and the decoder's cross_attn_token_to_image projections, whose N(0, 1)
 * start saturates the attention softmax and stalls training. */
static bool is_embedding(const char *n) {
    static const char *const k[] = {"prompt_encoder.point_embeddings.", "prompt_encoder.not_a_point_embed.",
                                    "prompt_encoder.no_mask_embed.", "mask_decoder.iou_token.",
                                    "mask_decoder.mask_tokens."};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (strncmp(n, k[i], strlen(k[i])) == 0) return true;
    return false;
}

void tsr_sam_init_weights(tsr_sam *m, uint64_t seed) {
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    for (int i = 0; i < m->params.n; i++) {
        tsr_tensor *t = m->params.items[i];
        const char *n = t->name;
        size_t L = strlen(n);
        bool is_w = L > 7 && strcmp(n + L - 7, ".weight") == 0;
        if (strstr(n, "gaussian_matrix")) tsr_init_normal(t, &r, 1.0f);
        else if (strstr(n, "running_") || strstr(n, ".bn.") || strstr(n, "norm") ||
                 strstr(n, "neck.1") || strstr(n, "neck.3") || strstr(n, "downscaling.1") ||
                 strstr(n, "downscaling.4") || strstr(n, "upscaling.1"))
            continue; /* norms and BN keep 1 / 0 (BN var 1) */
        else if (is_embedding(n)) {
            tsr_init_normal(t, &r, 1.0f);
        } else if (strstr(n, "pos_embed")) {
            tsr_init_normal(t, &r, 0.02f);
        } else if (is_w && t->ndim >= 2) {
            int64_t fan_in = t->numel / t->shape[0];
            if (strstr(n, "upscaling")) fan_in = t->numel / t->shape[1];
            tsr_init_normal(t, &r, sqrtf(1.0f / (float)fan_in));
        }
        /* biases, rel_pos and attention biases start at 0 */
    }
}

/* ----------------------------------------------------------- building blocks */

static tsr_tensor *linear(tsr_ctx *c, const lin *l, tsr_tensor *x) { return tsr_linear(c, x, l->w, l->b); }

/* LayerNorm2d over the channels of (B,C,H,W), eps 1e-6 */
static tsr_tensor *ln2d(tsr_ctx *c, tsr_tensor *x, const norm *n) {
    const int to_last[4] = {0, 2, 3, 1}, to_first[4] = {0, 3, 1, 2};
    tsr_tensor *y = tsr_permute(c, x, to_last);
    y = tsr_layernorm(c, y, n->w, n->b, 1e-6f);
    return tsr_permute(c, y, to_first);
}

static tsr_tensor *conv_bn_fwd(tsr_ctx *c, const conv_bn *cb, tsr_tensor *x) {
    tsr_conv_opts o = {.stride = {cb->stride, cb->stride}, .pad = {cb->k / 2, cb->k / 2},
                       .groups = cb->groups};
    tsr_tensor *y = tsr_conv2d(c, x, cb->w, NULL, &o);
    return tsr_batchnorm(c, y, cb->g, cb->b, cb->mean, cb->var, 0.1f, 1e-5f);
}

/* (B,H,W,C) -> windows (B*nh*nw, ws*ws, C), zero-padded to multiples of ws */
static tsr_tensor *window_partition(tsr_ctx *c, tsr_tensor *x, int ws) {
    int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    int64_t ph = (ws - H % ws) % ws, pw = (ws - W % ws) % ws, Hp = H + ph, Wp = W + pw;
    if (pw) {
        tsr_tensor *z = tsr_zeros(c, TSR_F32, TSR_DIMS(B, H, pw, C));
        tsr_tensor *xs[2] = {x, z};
        x = tsr_concat(c, xs, 2, 2);
    }
    if (ph) {
        tsr_tensor *z = tsr_zeros(c, TSR_F32, TSR_DIMS(B, ph, Wp, C));
        tsr_tensor *xs[2] = {x, z};
        x = tsr_concat(c, xs, 2, 1);
    }
    const int perm[4] = {0, 2, 1, 3};
    x = tsr_reshape(c, x, TSR_DIMS(B * (Hp / ws), ws, Wp / ws, ws * C));
    x = tsr_permute(c, x, perm);
    return tsr_reshape(c, x, TSR_DIMS(B * (Hp / ws) * (Wp / ws), ws * ws, C));
}

/* windows back to (B,H,W,C) */
static tsr_tensor *window_reverse(tsr_ctx *c, tsr_tensor *x, int ws, int64_t B, int64_t H, int64_t W) {
    int64_t C = x->shape[2], Hp = H + (ws - H % ws) % ws, Wp = W + (ws - W % ws) % ws;
    const int perm[4] = {0, 2, 1, 3};
    x = tsr_reshape(c, x, TSR_DIMS(B * (Hp / ws), Wp / ws, ws, ws * C));
    x = tsr_permute(c, x, perm);
    x = tsr_reshape(c, x, TSR_DIMS(B, Hp, Wp, C));
    if (Hp != H) x = tsr_slice(c, x, 1, 0, H);
    if (Wp != W) x = tsr_slice(c, x, 2, 0, W);
    return x;
}

/* ---------------------------------------------------------------- ViT */

/* rel_pos (2n-1, hd) -> R (n, n, hd) with R[i][j] = rel_pos[i - j + n - 1] */
static tsr_tensor *rel_table(tsr_ctx *c, tsr_tensor *rel, int n) {
    tsr_tensor *idx = tsr_new(c, TSR_I32, TSR_DIMS((int64_t)n * n));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) tsr_i32(idx)[i * n + j] = i - j + n - 1;
    tsr_tensor *r = tsr_index_select(c, rel, 0, idx);
    return tsr_reshape(c, r, TSR_DIMS(n, n, rel->shape[1]));
}

/* x (B,h,w,C) -> (B,h,w,C): multi-head attention with decomposed relative
 * positions (ViTDet): score(q_hw, k_h'w') += q.Rh[h,h'] + q.Rw[w,w'] */
static tsr_tensor *vit_attn(tsr_ctx *c, const vit_block *v, tsr_tensor *x, int heads) {
    int64_t B = x->shape[0], h = x->shape[1], w = x->shape[2], C = x->shape[3], T = h * w, hd = C / heads;
    tsr_tensor *qkv = linear(c, &v->qkv, tsr_reshape(c, x, TSR_DIMS(B, T, C)));
    qkv = tsr_reshape(c, qkv, TSR_DIMS(B, T, 3, C));
    tsr_tensor *q = tsr_reshape(c, tsr_slice(c, qkv, 2, 0, 1), TSR_DIMS(B, T, heads, hd));
    tsr_tensor *k = tsr_reshape(c, tsr_slice(c, qkv, 2, 1, 2), TSR_DIMS(B, T, heads, hd));
    tsr_tensor *vv = tsr_reshape(c, tsr_slice(c, qkv, 2, 2, 3), TSR_DIMS(B, T, heads, hd));
    TSR_ASSERT(v->rel_h->shape[0] == 2 * h - 1 && v->rel_w->shape[0] == 2 * w - 1);
    const int p0213[4] = {0, 2, 1, 3}, p1023[4] = {1, 0, 2, 3}, p2013[4] = {2, 0, 1, 3},
              p1203[4] = {1, 2, 0, 3};
    int64_t Bn = B * heads;
    tsr_tensor *rq = tsr_reshape(c, tsr_permute(c, q, p0213), TSR_DIMS(Bn, h, w, hd));
    /* rel_h[b,y,x,y'] = sum_c rq[b,y,x,c] Rh[y,y',c]: batched over y */
    tsr_tensor *qh = tsr_reshape(c, tsr_permute(c, rq, p1023), TSR_DIMS(h, Bn * w, hd));
    tsr_tensor *relh = tsr_matmul(c, qh, rel_table(c, v->rel_h, (int)h), false, true); /* (h, Bn*w, h) */
    relh = tsr_permute(c, tsr_reshape(c, relh, TSR_DIMS(h, Bn, w, h)), p1023);        /* (Bn,h,w,h') */
    relh = tsr_reshape(c, relh, TSR_DIMS(Bn, T, h, 1));
    tsr_tensor *qw = tsr_reshape(c, tsr_permute(c, rq, p2013), TSR_DIMS(w, Bn * h, hd));
    tsr_tensor *relw = tsr_matmul(c, qw, rel_table(c, v->rel_w, (int)w), false, true); /* (w, Bn*h, w) */
    relw = tsr_permute(c, tsr_reshape(c, relw, TSR_DIMS(w, Bn, h, w)), p1203);        /* (Bn,h,w,w') */
    relw = tsr_reshape(c, relw, TSR_DIMS(Bn, T, 1, w));
    tsr_tensor *bias = tsr_reshape(c, tsr_add(c, relh, relw), TSR_DIMS(B, heads, T, T));
    tsr_attn_opts o = {.bias = bias};
    tsr_tensor *out = tsr_attention(c, q, k, vv, &o);
    out = linear(c, &v->proj, tsr_reshape(c, out, TSR_DIMS(B, T, C)));
    return tsr_reshape(c, out, TSR_DIMS(B, h, w, C));
}

static tsr_tensor *encode_vit(tsr_ctx *c, const tsr_sam *m, tsr_tensor *img) {
    const sam_mods *s = m->priv;
    const tsr_sam_cfg *g = &m->cfg;
    tsr_conv_opts po = {.stride = {16, 16}};
    tsr_tensor *x = tsr_conv2d(c, img, s->pe_w, s->pe_b, &po); /* (B,D,g,g) */
    const int to_last[4] = {0, 2, 3, 1};
    x = tsr_add(c, tsr_permute(c, x, to_last), s->pos);        /* (B,g,g,D) */
    int64_t B = x->shape[0], G = x->shape[1], D = x->shape[3];
    for (int i = 0; i < g->vit_depth; i++) {
        const vit_block *v = &s->vb[i];
        tsr_tensor *h = tsr_layernorm(c, x, v->norm1.w, v->norm1.b, 1e-6f);
        if (v->window) {
            h = window_partition(c, h, v->window);
            h = tsr_reshape(c, h, TSR_DIMS(h->shape[0], v->window, v->window, D));
            h = vit_attn(c, v, h, g->vit_heads);
            h = tsr_reshape(c, h, TSR_DIMS(h->shape[0], (int64_t)v->window * v->window, D));
            h = window_reverse(c, h, v->window, B, G, G);
        } else {
            h = vit_attn(c, v, h, g->vit_heads);
        }
        x = tsr_add(c, x, h);
        h = tsr_layernorm(c, x, v->norm2.w, v->norm2.b, 1e-6f);
        h = linear(c, &v->lin2, tsr_gelu(c, linear(c, &v->lin1, h), false));
        x = tsr_add(c, x, h);
    }
    const int to_first[4] = {0, 3, 1, 2};
    return tsr_permute(c, x, to_first);
}

/* -------------------------------------------------------------- TinyViT */

static tsr_tensor *conv3_fwd(tsr_ctx *c, const conv3 *m, tsr_tensor *x, bool mbconv) {
    tsr_tensor *h = tsr_gelu(c, conv_bn_fwd(c, &m->c1, x), false);
    h = tsr_gelu(c, conv_bn_fwd(c, &m->c2, h), false);
    h = conv_bn_fwd(c, &m->c3, h);
    if (mbconv) h = tsr_gelu(c, tsr_add(c, h, x), false);
    return h;
}

/* x (B', N, C) windows -> attention with learned per-head biases by
 * |dy|, |dx| offset (LeViT-style), head-interleaved qkv */
static tsr_tensor *tv_attn(tsr_ctx *c, const tv_block *t, tsr_tensor *x, int heads, int ws) {
    int64_t Bw = x->shape[0], N = x->shape[1], C = x->shape[2], kd = C / heads;
    tsr_tensor *h = tsr_layernorm(c, x, t->anorm.w, t->anorm.b, 1e-5f);
    h = tsr_reshape(c, linear(c, &t->qkv, h), TSR_DIMS(Bw, N, heads, 3 * kd));
    tsr_tensor *q = tsr_slice(c, h, 3, 0, kd), *k = tsr_slice(c, h, 3, kd, 2 * kd),
               *v = tsr_slice(c, h, 3, 2 * kd, 3 * kd);
    tsr_tensor *idx = tsr_new(c, TSR_I32, TSR_DIMS(N * N));
    for (int64_t a = 0; a < N; a++)
        for (int64_t b = 0; b < N; b++) {
            int dy = abs((int)(a / ws) - (int)(b / ws)), dx = abs((int)(a % ws) - (int)(b % ws));
            tsr_i32(idx)[a * N + b] = dy * ws + dx;
        }
    tsr_tensor *bias = tsr_reshape(c, tsr_index_select(c, t->biases, 1, idx), TSR_DIMS(heads, N, N));
    tsr_attn_opts o = {.bias = bias, .scale = 1.0f / sqrtf((float)kd)};
    tsr_tensor *out = tsr_attention(c, q, k, v, &o);
    return linear(c, &t->proj, tsr_reshape(c, out, TSR_DIMS(Bw, N, C)));
}

static tsr_tensor *tv_block_fwd(tsr_ctx *c, const tv_block *t, tsr_tensor *x, int64_t H, int64_t W,
                                int heads, int ws) {
    int64_t B = x->shape[0], C = x->shape[2];
    tsr_tensor *h;
    if (H == ws && W == ws) {
        h = tv_attn(c, t, x, heads, ws);
    } else {
        h = window_partition(c, tsr_reshape(c, x, TSR_DIMS(B, H, W, C)), ws);
        h = tv_attn(c, t, h, heads, ws);
        h = tsr_reshape(c, window_reverse(c, h, ws, B, H, W), TSR_DIMS(B, H * W, C));
    }
    x = tsr_add(c, x, h);
    /* depthwise local conv on the (B,C,H,W) map */
    const int p021[4] = {0, 2, 1, 3};
    tsr_tensor *m = tsr_reshape(c, tsr_permute(c, tsr_reshape(c, x, TSR_DIMS(B, H * W, C, 1)), p021),
                                TSR_DIMS(B, C, H, W));
    m = conv_bn_fwd(c, &t->local, m);
    x = tsr_reshape(c, tsr_permute(c, tsr_reshape(c, m, TSR_DIMS(B, C, H * W, 1)), p021),
                    TSR_DIMS(B, H * W, C));
    h = tsr_layernorm(c, x, t->mnorm.w, t->mnorm.b, 1e-5f);
    h = linear(c, &t->fc2, tsr_gelu(c, linear(c, &t->fc1, h), false));
    return tsr_add(c, x, h);
}

/* (B,C,H,W) -> (B,H*W,C) */
static tsr_tensor *to_tokens(tsr_ctx *c, tsr_tensor *x) {
    int64_t B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int p021[4] = {0, 2, 1, 3};
    return tsr_reshape(c, tsr_permute(c, tsr_reshape(c, x, TSR_DIMS(B, C, H * W, 1)), p021),
                       TSR_DIMS(B, H * W, C));
}
static tsr_tensor *to_map(tsr_ctx *c, tsr_tensor *x, int64_t H, int64_t W) {
    int64_t B = x->shape[0], C = x->shape[2];
    const int p021[4] = {0, 2, 1, 3};
    return tsr_reshape(c, tsr_permute(c, tsr_reshape(c, x, TSR_DIMS(B, H * W, C, 1)), p021),
                       TSR_DIMS(B, C, H, W));
}

static tsr_tensor *encode_tinyvit(tsr_ctx *c, const tsr_sam *m, tsr_tensor *img) {
    const sam_mods *s = m->priv;
    const tsr_sam_cfg *g = &m->cfg;
    tsr_tensor *x = conv_bn_fwd(c, &s->pe2, tsr_gelu(c, conv_bn_fwd(c, &s->pe1, img), false));
    for (int i = 0; i < g->tv_depths[0]; i++) x = conv3_fwd(c, &s->mb[i], x, true);
    x = conv3_fwd(c, &s->merge[0], x, false); /* (B,C1,H/2,W/2) */
    int64_t H = x->shape[2], W = x->shape[3];
    x = to_tokens(c, x);
    for (int L = 1; L < 4; L++) {
        for (int i = 0; i < g->tv_depths[L]; i++)
            x = tv_block_fwd(c, &s->tb[L][i], x, H, W, g->tv_heads[L], g->tv_windows[L]);
        if (L < 3) {
            x = conv3_fwd(c, &s->merge[L], to_map(c, x, H, W), false);
            H = x->shape[2];
            W = x->shape[3];
            x = to_tokens(c, x);
        }
    }
    TSR_ASSERT(H == m->grid && W == m->grid);
    return to_map(c, x, H, W);
}

tsr_tensor *tsr_sam_encode(tsr_ctx *c, const tsr_sam *m, tsr_tensor *img) {
    const sam_mods *s = m->priv;
    TSR_ASSERT(img->ndim == 4 && img->shape[1] == 3 && img->shape[2] == m->cfg.img_size &&
               img->shape[3] == m->cfg.img_size);
    tsr_tensor *x = m->cfg.encoder == TSR_SAM_VIT ? encode_vit(c, m, img) : encode_tinyvit(c, m, img);
    x = ln2d(c, tsr_conv2d(c, x, s->neck0, NULL, &(tsr_conv_opts){0}), &s->neck1);
    x = ln2d(c, tsr_conv2d(c, x, s->neck2, NULL, &(tsr_conv_opts){.pad = {1, 1}}), &s->neck3);
    return x;
}

/* ------------------------------------------------------- prompt encoder */

/* random Fourier features of points in [0,1]^2: [sin, cos](2 pi (2p-1) G) */
static void pe_encode(float *out, const float *gauss, int half, float x, float y) {
    x = 2.0f * x - 1.0f;
    y = 2.0f * y - 1.0f;
    for (int j = 0; j < half; j++) {
        float a = 2.0f * (float)M_PI * (x * gauss[j] + y * gauss[half + j]);
        out[j] = sinf(a);
        out[half + j] = cosf(a);
    }
}

tsr_tensor *tsr_sam_dense_pe(tsr_ctx *c, const tsr_sam *m) {
    const sam_mods *s = m->priv;
    int G = m->grid, C = m->cfg.dim;
    tsr_tensor *pe = tsr_new(c, TSR_F32, TSR_DIMS(1, C, G, G));
    float *tmp = malloc(sizeof(float) * (size_t)C);
    TSR_ASSERT(tmp);
    for (int yy = 0; yy < G; yy++)
        for (int xx = 0; xx < G; xx++) {
            pe_encode(tmp, tsr_f32(s->gauss), C / 2, ((float)xx + 0.5f) / (float)G, ((float)yy + 0.5f) / (float)G);
            for (int k = 0; k < C; k++) tsr_f32(pe)[((int64_t)k * G + yy) * G + xx] = tmp[k];
        }
    free(tmp);
    return pe;
}

void tsr_sam_prompt_encode(tsr_ctx *c, const tsr_sam *m, const tsr_sam_prompts *pr,
                           tsr_tensor **sparse, tsr_tensor **dense) {
    const sam_mods *s = m->priv;
    int C = m->cfg.dim, N = pr->n, S = m->cfg.img_size, G = m->grid;
    int P = pr->coords ? (int)pr->coords->shape[1] : 0;
    bool pad = P > 0 && !pr->boxes; /* official: a padding point when there is no box */
    int Pp = P + (pad ? 1 : 0), nb = pr->boxes ? 2 : 0, T = Pp + nb;
    /* table rows: 0 not-a-point, 1 negative, 2 positive, 3 box corner 0, 4 corner 1 */
    tsr_tensor *rows[5] = {s->not_a_point, s->pt_emb[0], s->pt_emb[1], s->pt_emb[2], s->pt_emb[3]};
    tsr_tensor *table = tsr_concat(c, rows, 5, 0);
    tsr_tensor *pe = tsr_zeros(c, TSR_F32, TSR_DIMS(N, T, C));
    tsr_tensor *ids = tsr_new(c, TSR_I32, TSR_DIMS(N, T));
    for (int n = 0; n < N; n++) {
        for (int p = 0; p < Pp; p++) {
            int lab = p < P ? tsr_i32(pr->labels)[n * P + p] : -1;
            tsr_i32(ids)[n * T + p] = lab < 0 ? 0 : lab == 0 ? 1 : 2;
            if (lab >= 0) {
                const float *xy = tsr_f32(pr->coords) + ((int64_t)n * P + p) * 2;
                pe_encode(tsr_f32(pe) + ((int64_t)n * T + p) * C, tsr_f32(s->gauss), C / 2,
                          (xy[0] + 0.5f) / (float)S, (xy[1] + 0.5f) / (float)S);
            }
        }
        for (int b = 0; b < nb; b++) {
            const float *bx = tsr_f32(pr->boxes) + (int64_t)n * 4 + 2 * b;
            tsr_i32(ids)[n * T + Pp + b] = 3 + b;
            pe_encode(tsr_f32(pe) + ((int64_t)n * T + Pp + b) * C, tsr_f32(s->gauss), C / 2,
                      (bx[0] + 0.5f) / (float)S, (bx[1] + 0.5f) / (float)S);
        }
    }
    *sparse = tsr_add(c, pe, tsr_embedding(c, table, ids));
    if (pr->mask_in) {
        tsr_conv_opts o2 = {.stride = {2, 2}};
        tsr_tensor *h = tsr_conv2d(c, pr->mask_in, s->md0w, s->md0b, &o2);
        h = tsr_gelu(c, ln2d(c, h, &s->md1), false);
        h = tsr_conv2d(c, h, s->md3w, s->md3b, &o2);
        h = tsr_gelu(c, ln2d(c, h, &s->md4), false);
        *dense = tsr_conv2d(c, h, s->md6w, s->md6b, &(tsr_conv_opts){0});
    } else {
        tsr_tensor *z = tsr_zeros(c, TSR_F32, TSR_DIMS(N, C, G, G));
        *dense = tsr_add(c, z, tsr_reshape(c, s->no_mask, TSR_DIMS(1, C, 1, 1)));
    }
}

/* -------------------------------------------------------- mask decoder */

/* SAM's Attention: project (down-sampled internal dim), heads, out_proj */
static tsr_tensor *attn_fwd(tsr_ctx *c, const attn *a, tsr_tensor *q, tsr_tensor *k, tsr_tensor *v) {
    int64_t B = q->shape[0], Tq = q->shape[1], Tk = k->shape[1], in = a->q.w->shape[0];
    int64_t hd = in / a->heads;
    tsr_tensor *qq = tsr_reshape(c, linear(c, &a->q, q), TSR_DIMS(B, Tq, a->heads, hd));
    tsr_tensor *kk = tsr_reshape(c, linear(c, &a->k, k), TSR_DIMS(B, Tk, a->heads, hd));
    tsr_tensor *vv = tsr_reshape(c, linear(c, &a->v, v), TSR_DIMS(B, Tk, a->heads, hd));
    tsr_attn_opts o = {0};
    tsr_tensor *out = tsr_attention(c, qq, kk, vv, &o);
    return linear(c, &a->o, tsr_reshape(c, out, TSR_DIMS(B, Tq, in)));
}

static tsr_tensor *ln(tsr_ctx *c, tsr_tensor *x, const norm *n) { return tsr_layernorm(c, x, n->w, n->b, 1e-5f); }

static tsr_tensor *mlp_fwd(tsr_ctx *c, const mlp *m, tsr_tensor *x) {
    for (int i = 0; i < m->n; i++) {
        x = linear(c, &m->l[i], x);
        if (i + 1 < m->n) x = tsr_relu(c, x);
    }
    return x;
}

void tsr_sam_predict(tsr_ctx *c, const tsr_sam *m, tsr_tensor *emb, const tsr_sam_prompts *pr,
                     bool multimask, tsr_tensor **masks, tsr_tensor **iou) {
    const sam_mods *s = m->priv;
    const tsr_sam_cfg *g = &m->cfg;
    int64_t N = pr->n, C = g->dim, G = m->grid, HW = G * G, nt = g->n_multimask + 1;
    TSR_ASSERT(emb->ndim == 4 && emb->shape[0] == 1 && emb->shape[1] == C && emb->shape[2] == G);
    tsr_tensor *sparse, *dense;
    tsr_sam_prompt_encode(c, m, pr, &sparse, &dense);
    /* tokens: [iou, mask_0..k] then the prompts (sec. 3, "Mask decoder") */
    tsr_tensor *ot[2] = {s->iou_token, s->mask_tokens};
    tsr_tensor *out_tok = tsr_reshape(c, tsr_concat(c, ot, 2, 0), TSR_DIMS(1, 1 + nt, C));
    out_tok = tsr_add(c, tsr_zeros(c, TSR_F32, TSR_DIMS(N, 1 + nt, C)), out_tok);
    tsr_tensor *tk[2] = {out_tok, sparse};
    tsr_tensor *tokens = tsr_concat(c, tk, 2, 1); /* (N, T, C) */
    tsr_tensor *src = tsr_add(c, emb, dense);     /* (N, C, G, G) */
    tsr_tensor *keys = to_tokens(c, src);         /* (N, HW, C) */
    tsr_tensor *key_pe = to_tokens(c, tsr_sam_dense_pe(c, m)); /* (1, HW, C) */
    /* two-way transformer */
    tsr_tensor *queries = tokens;
    for (int i = 0; i < g->dec_depth; i++) {
        const twoway_layer *t = &s->tw[i];
        if (i == 0) {
            queries = attn_fwd(c, &t->self_attn, queries, queries, queries);
        } else {
            tsr_tensor *q = tsr_add(c, queries, tokens);
            queries = tsr_add(c, queries, attn_fwd(c, &t->self_attn, q, q, queries));
        }
        queries = ln(c, queries, &t->n1);
        tsr_tensor *q = tsr_add(c, queries, tokens), *k = tsr_add(c, keys, key_pe);
        queries = ln(c, tsr_add(c, queries, attn_fwd(c, &t->t2i, q, k, keys)), &t->n2);
        tsr_tensor *h = linear(c, &t->lin2, tsr_relu(c, linear(c, &t->lin1, queries)));
        queries = ln(c, tsr_add(c, queries, h), &t->n3);
        q = tsr_add(c, queries, tokens);
        k = tsr_add(c, keys, key_pe);
        keys = ln(c, tsr_add(c, keys, attn_fwd(c, &t->i2t, k, q, queries)), &t->n4);
    }
    {
        tsr_tensor *q = tsr_add(c, queries, tokens), *k = tsr_add(c, keys, key_pe);
        queries = ln(c, tsr_add(c, queries, attn_fwd(c, &s->final_attn, q, k, keys)), &s->norm_final);
    }
    /* upscale the image tokens 4x and dot them with hypernetwork outputs */
    tsr_tensor *up = to_map(c, keys, G, G);
    tsr_conv_opts o2 = {.stride = {2, 2}};
    up = tsr_conv_transpose2d(c, up, s->up0w, s->up0b, &o2);
    up = tsr_gelu(c, ln2d(c, up, &s->up1), false);
    up = tsr_gelu(c, tsr_conv_transpose2d(c, up, s->up3w, s->up3b, &o2), false); /* (N, C/8, 4G, 4G) */
    tsr_tensor **hy = malloc(sizeof(tsr_tensor *) * (size_t)nt);
    TSR_ASSERT(hy);
    for (int i = 0; i < nt; i++) {
        tsr_tensor *tok = tsr_reshape(c, tsr_slice(c, queries, 1, 1 + i, 2 + i), TSR_DIMS(N, C));
        hy[i] = tsr_reshape(c, mlp_fwd(c, &s->hyper[i], tok), TSR_DIMS(N, 1, C / 8));
    }
    tsr_tensor *hyper = tsr_concat(c, hy, (int)nt, 1); /* (N, nt, C/8) */
    free(hy);
    tsr_tensor *mk = tsr_matmul(c, hyper, tsr_reshape(c, up, TSR_DIMS(N, C / 8, 16 * HW)), false, false);
    mk = tsr_reshape(c, mk, TSR_DIMS(N, nt, 4 * G, 4 * G));
    tsr_tensor *iou_tok = tsr_reshape(c, tsr_slice(c, queries, 1, 0, 1), TSR_DIMS(N, C));
    tsr_tensor *ip = mlp_fwd(c, &s->iou_head, iou_tok); /* (N, nt) */
    int lo = multimask ? 1 : 0, hi = multimask ? (int)nt : 1;
    *masks = tsr_slice(c, mk, 1, lo, hi);
    *iou = tsr_slice(c, ip, 1, lo, hi);
}

/* -------------------------------------------------------- preprocessing */

void tsr_sam_preprocess(float *out, const uint8_t *rgb, int h, int w, int S, float *scale) {
    float sc = (float)S / (float)(h > w ? h : w);
    int nh = (int)floorf((float)h * sc + 0.5f), nw = (int)floorf((float)w * sc + 0.5f);
    if (nh > S) nh = S;
    if (nw > S) nw = S;
    *scale = sc;
    memset(out, 0, sizeof(float) * 3 * (size_t)S * (size_t)S);
    float ry = (float)h / (float)nh, rx = (float)w / (float)nw;
    for (int y = 0; y < nh; y++) {
        float sy = ((float)y + 0.5f) * ry - 0.5f;
        if (sy < 0) sy = 0;
        int y0 = (int)sy, y1 = y0 + 1 < h ? y0 + 1 : h - 1;
        float fy = sy - (float)y0;
        for (int x = 0; x < nw; x++) {
            float sx = ((float)x + 0.5f) * rx - 0.5f;
            if (sx < 0) sx = 0;
            int x0 = (int)sx, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
            float fx = sx - (float)x0;
            for (int k = 0; k < 3; k++) {
                float a = rgb[((size_t)y0 * w + x0) * 3 + k], b = rgb[((size_t)y0 * w + x1) * 3 + k];
                float cc = rgb[((size_t)y1 * w + x0) * 3 + k], d = rgb[((size_t)y1 * w + x1) * 3 + k];
                float v = (a * (1 - fx) + b * fx) * (1 - fy) + (cc * (1 - fx) + d * fx) * fy;
                out[((size_t)k * S + y) * S + x] = (v - tsr_sam_pixel_mean[k]) / tsr_sam_pixel_std[k];
            }
        }
    }
}

/* ---------------------------------------------------------------- files */

tsr_status tsr_sam_load(tsr_sam *m, const char *path) {
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    tsr_sam_cfg g = tsr_sam_cfg_mobile();
    const char *enc = tsr_st_meta(&f, "sam.encoder");
    if (!enc) {
        tsr_st_free(&f);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: no 'sam.encoder' metadata: not a SAM-family checkpoint "
                                          "(convert official weights with tools/convert_sam.py)", path);
    }
    st = tsr_sam_cfg_from_meta(&g, (const char *const *)f.meta_keys, (const char *const *)f.meta_vals, f.n_meta);
    const char *ps = tsr_st_meta(&f, "apt.pixel_scale");
    float pixel_scale = ps ? strtof(ps, NULL) : 0.0f;
    tsr_st_free(&f);
    if (!st.code && !(pixel_scale >= 0.0f && pixel_scale <= 1.0f))
        st = tsr_errorf(TSR_ERR_FORMAT, "metadata apt.pixel_scale must be in (0, 1]");
    if (st.code) return tsr_errorf(st.code, "%s: %s", path, st.msg);
    st = tsr_sam_init(m, &g);
    if (st.code) return tsr_errorf(st.code, "%s: %s", path, st.msg);
    m->pixel_scale = pixel_scale;
    st = tsr_params_load(&m->params, path, false);
    if (st.code) tsr_sam_free(m);
    return st;
}

tsr_status tsr_sam_save(const tsr_sam *m, const char *path, const char *const *extra_meta) {
    char buf[4096];
    const char *kv[160];
    tsr_sam_cfg_to_meta(&m->cfg, buf, sizeof buf, kv, 100);
    int n = 0;
    while (kv[n]) n++;
    for (int i = 0; extra_meta && extra_meta[i] && n + 2 < 158; i++) kv[n++] = extra_meta[i];
    kv[n] = NULL;
    return tsr_params_save(&m->params, path, TSR_ST_F32, kv);
}
