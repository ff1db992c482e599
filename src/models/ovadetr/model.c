/* OVA-DETR model: parameters, forward, matching and loss (see
 * include/tessera/ovadetr.h). Section numbers refer to Wei et al., "OVA-DETR:
 * Open Vocabulary Aerial Object Detection Using Image-Text Alignment and
 * Fusion" (2024); RT-DETR details follow Zhao et al. (2023). */
#include "tessera/ovadetr.h"
#include "tessera/ops.h"
#include "tessera/ops_attention.h"
#include "tessera/ops_conv.h"
#include "tessera/ops_det.h"
#include "tessera/ops_matmul.h"
#include "tessera/ops_norm.h"
#include "tessera/safetensors.h"

#include <math.h>
#include <string.h>

tsr_ovd_cfg tsr_ovd_default_cfg(void) {
    return (tsr_ovd_cfg){{16, 32, 64, 96, 128}, 64, 4, 128, 100, 3, 0, true, true};
}

void tsr_ovd_cfg_str(const tsr_ovd_cfg *g, char *buf, size_t n) {
    snprintf(buf, n, "ch0=%d,ch1=%d,ch2=%d,ch3=%d,ch4=%d,d=%d,heads=%d,ffn=%d,queries=%d,dec=%d,closed=%d,tgvt=%d,vat=%d",
             g->ch[0], g->ch[1], g->ch[2], g->ch[3], g->ch[4], g->d, g->heads, g->ffn, g->queries,
             g->dec_layers, g->closed, g->tgvt, g->vat);
}

tsr_status tsr_ovd_cfg_parse(tsr_ovd_cfg *g, const char *s) {
    char buf[512];
    if (strlen(s) >= sizeof buf) return tsr_errorf(TSR_ERR_ARG, "model config too long");
    strcpy(buf, s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        if (!eq) return tsr_errorf(TSR_ERR_ARG, "model config: '%s' is not key=value", tok);
        *eq = '\0';
        char *e;
        long v = strtol(eq + 1, &e, 10);
        if (*e || e == eq + 1 || v < 0 || v > 4096)
            return tsr_errorf(TSR_ERR_ARG, "model config: %s=%s is not an integer in [0,4096]", tok, eq + 1);
        int iv = (int)v;
        if (!strncmp(tok, "ch", 2) && tok[2] >= '0' && tok[2] <= '4' && !tok[3]) g->ch[tok[2] - '0'] = iv;
        else if (!strcmp(tok, "d")) g->d = iv;
        else if (!strcmp(tok, "heads")) g->heads = iv;
        else if (!strcmp(tok, "ffn")) g->ffn = iv;
        else if (!strcmp(tok, "queries")) g->queries = iv;
        else if (!strcmp(tok, "dec")) g->dec_layers = iv;
        else if (!strcmp(tok, "closed")) g->closed = iv;
        else if (!strcmp(tok, "tgvt")) g->tgvt = iv != 0;
        else if (!strcmp(tok, "vat")) g->vat = iv != 0;
        else return tsr_errorf(TSR_ERR_ARG, "model config: unknown key '%s'", tok);
    }
    for (int i = 0; i < 5; i++)
        if (g->ch[i] < 8 || g->ch[i] % 8) return tsr_errorf(TSR_ERR_ARG, "model config: ch%d must be a multiple of 8", i);
    if (g->d < 8 || g->d % 8 || g->heads < 1 || g->d % g->heads || (g->d / g->heads) % 4)
        return tsr_errorf(TSR_ERR_ARG, "model config: d must be a multiple of 8 and of 4*heads");
    if (g->ffn < 1 || g->queries < 1 || g->dec_layers < 1 || g->dec_layers > TSR_OVD_MAX_DEC)
        return tsr_errorf(TSR_ERR_ARG, "model config: ffn, queries >= 1 and dec in [1,%d]", TSR_OVD_MAX_DEC);
    return tsr_ok();
}

/* ------------------------------------------------------------- params */

static void conv_init(tsr_ovd_conv *cv, tsr_params *p, const char *name, int cin, int cout, int k, int s) {
    char b[256];
    snprintf(b, sizeof b, "%s.conv.weight", name);
    cv->w = tsr_param_new(p, b, 0, 4, TSR_SHAPE(cout, cin, k, k));
    snprintf(b, sizeof b, "%s.conv.bias", name);
    cv->b = tsr_param_new(p, b, TSR_PARAM_NO_DECAY, 1, TSR_SHAPE(cout));
    snprintf(b, sizeof b, "%s.norm.weight", name);
    cv->gw = tsr_param_new(p, b, TSR_PARAM_NO_DECAY, 1, TSR_SHAPE(cout));
    snprintf(b, sizeof b, "%s.norm.bias", name);
    cv->gb = tsr_param_new(p, b, TSR_PARAM_NO_DECAY, 1, TSR_SHAPE(cout));
    cv->k = k, cv->s = s;
}

static void mha_init(tsr_ovd_mha *a, tsr_params *p, const char *name, int d) {
    char b[256];
    const char *nm[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    tsr_nn_linear *l[4] = {&a->q, &a->k, &a->v, &a->o};
    for (int i = 0; i < 4; i++) {
        snprintf(b, sizeof b, "%s.%s", name, nm[i]);
        tsr_nn_linear_init(l[i], p, b, d, d, true);
    }
}

static void mlp_init(tsr_ovd_mlp *m, tsr_params *p, const char *name, int in, int hid, int out, int n) {
    char b[256];
    m->n = n;
    for (int i = 0; i < n; i++) {
        snprintf(b, sizeof b, "%s.layers.%d", name, i);
        tsr_nn_linear_init(&m->l[i], p, b, i == 0 ? in : hid, i == n - 1 ? out : hid, true);
    }
}

static void ln_init(tsr_nn_layernorm *n, tsr_params *p, const char *name, int d) {
    tsr_nn_layernorm_init(n, p, name, d, 1e-5f, true);
}

tsr_status tsr_ovd_init(tsr_ovd_model *m, const tsr_ovd_cfg *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->train_crop = 640;
    tsr_params *p = &m->params;
    tsr_params_init(p);
    const int *ch = cfg->ch, d = cfg->d;
    char b[64];
    int cin[8] = {3, ch[0], ch[1], ch[2], ch[2], ch[3], ch[3], ch[4]};
    int cout[8] = {ch[0], ch[1], ch[2], ch[2], ch[3], ch[3], ch[4], ch[4]};
    int st[8] = {2, 2, 2, 1, 2, 1, 2, 1};
    for (int i = 0; i < 8; i++) {
        snprintf(b, sizeof b, "backbone.%d", i);
        conv_init(&m->bb[i], p, b, cin[i], cout[i], 3, st[i]);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(b, sizeof b, "encoder.input_proj.%d", i);
        conv_init(&m->proj[i], p, b, ch[2 + i], d, 1, 1);
    }
    mha_init(&m->aifi, p, "encoder.aifi.self_attn", d);
    ln_init(&m->aifi_ln[0], p, "encoder.aifi.norm1", d);
    ln_init(&m->aifi_ln[1], p, "encoder.aifi.norm2", d);
    tsr_nn_linear_init(&m->aifi_ff1, p, "encoder.aifi.linear1", d, cfg->ffn, true);
    tsr_nn_linear_init(&m->aifi_ff2, p, "encoder.aifi.linear2", cfg->ffn, d, true);
    conv_init(&m->lat5, p, "encoder.lateral5", d, d, 1, 1);
    conv_init(&m->lat4, p, "encoder.lateral4", d, d, 1, 1);
    conv_init(&m->fuse4[0], p, "encoder.fpn4.0", 2 * d, d, 1, 1);
    conv_init(&m->fuse4[1], p, "encoder.fpn4.1", d, d, 3, 1);
    conv_init(&m->fuse3[0], p, "encoder.fpn3.0", 2 * d, d, 1, 1);
    conv_init(&m->fuse3[1], p, "encoder.fpn3.1", d, d, 3, 1);
    conv_init(&m->down3, p, "encoder.down3", d, d, 3, 2);
    conv_init(&m->down4, p, "encoder.down4", d, d, 3, 2);
    conv_init(&m->fusen4[0], p, "encoder.pan4.0", 2 * d, d, 1, 1);
    conv_init(&m->fusen4[1], p, "encoder.pan4.1", d, d, 3, 1);
    conv_init(&m->fusen5[0], p, "encoder.pan5.0", 2 * d, d, 1, 1);
    conv_init(&m->fusen5[1], p, "encoder.pan5.1", d, d, 3, 1);
    tsr_nn_linear_init(&m->text_proj, p, "text.proj", TSR_OVD_TEXT_DIM, d, true);
    tsr_nn_linear_init(&m->text_head, p, "text.head_proj", d, d, true);
    for (int l = 0; l < 3; l++) {
        snprintf(b, sizeof b, "fusion.%d.vat", l);
        mha_init(&m->fus[l].vat, p, b, d);
        snprintf(b, sizeof b, "fusion.%d.vat_norm", l);
        ln_init(&m->fus[l].vat_ln, p, b, d);
        snprintf(b, sizeof b, "fusion.%d.tgvt", l);
        mha_init(&m->fus[l].tg, p, b, d);
        snprintf(b, sizeof b, "fusion.%d.tgvt_norm", l);
        ln_init(&m->fus[l].tg_ln, p, b, d);
    }
    tsr_nn_linear_init(&m->enc_lin, p, "enc_output.linear", d, d, true);
    ln_init(&m->enc_ln, p, "enc_output.norm", d);
    mlp_init(&m->enc_box, p, "enc_bbox_head", d, d, 4, 3);
    if (cfg->closed) {
        m->closed_rows = tsr_param_new(p, "text.closed_rows", TSR_PARAM_BUFFER, 2, TSR_SHAPE(cfg->closed, TSR_OVD_TEXT_DIM));
        tsr_nn_linear_init(&m->enc_cls, p, "enc_score_head", d, cfg->closed, true);
    } else {
        tsr_nn_linear_init(&m->enc_region, p, "enc_score_head.region", d, d, true);
        m->enc_s = tsr_param_new(p, "enc_score_head.logit_scale", TSR_PARAM_NO_DECAY, 1, TSR_SHAPE(1));
        m->enc_bias = tsr_param_new(p, "enc_score_head.bias", TSR_PARAM_NO_DECAY, 1, TSR_SHAPE(1));
    }
    mlp_init(&m->qpos, p, "decoder.query_pos_head", 4, 2 * d, d, 2);
    for (int l = 0; l < cfg->dec_layers; l++) {
        tsr_ovd_dec *L = &m->dec[l];
        snprintf(b, sizeof b, "decoder.layers.%d.text_attn", l);
        mha_init(&L->txt, p, b, d);
        snprintf(b, sizeof b, "decoder.layers.%d.self_attn", l);
        mha_init(&L->self, p, b, d);
        snprintf(b, sizeof b, "decoder.layers.%d.cross_attn", l);
        mha_init(&L->cross, p, b, d);
        for (int i = 0; i < 4; i++) {
            snprintf(b, sizeof b, "decoder.layers.%d.norm%d", l, i + 1);
            ln_init(&L->ln[i], p, b, d);
        }
        snprintf(b, sizeof b, "decoder.layers.%d.linear1", l);
        tsr_nn_linear_init(&L->ff1, p, b, d, cfg->ffn, true);
        snprintf(b, sizeof b, "decoder.layers.%d.linear2", l);
        tsr_nn_linear_init(&L->ff2, p, b, cfg->ffn, d, true);
        snprintf(b, sizeof b, "decoder.bbox_head.%d", l);
        mlp_init(&L->box, p, b, d, d, 4, 3);
        if (cfg->closed) {
            snprintf(b, sizeof b, "decoder.score_head.%d", l);
            tsr_nn_linear_init(&L->cls, p, b, d, cfg->closed, true);
        } else {
            snprintf(b, sizeof b, "decoder.score_head.%d.region", l);
            tsr_nn_linear_init(&L->region, p, b, d, d, true);
            snprintf(b, sizeof b, "decoder.score_head.%d.logit_scale", l);
            L->s = tsr_param_new(p, b, TSR_PARAM_NO_DECAY, 1, TSR_SHAPE(1));
            snprintf(b, sizeof b, "decoder.score_head.%d.bias", l);
            L->bias = tsr_param_new(p, b, TSR_PARAM_NO_DECAY, 1, TSR_SHAPE(1));
        }
    }
    return tsr_ok();
}

void tsr_ovd_free(tsr_ovd_model *m) { tsr_params_free(&m->params); }

/* Xavier-uniform linears and Kaiming-normal convs; norms 1/0; the class
 * biases at the 1% prior (RT-DETR); the last box layers start at zero so
 * the first boxes are the anchors / reference boxes. */
void tsr_ovd_init_weights(tsr_ovd_model *m, uint64_t seed) {
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    const float prior = -logf((1 - 0.01f) / 0.01f);
    tsr_params *p = &m->params;
    for (int i = 0; i < p->n; i++) {
        tsr_tensor *t = p->items[i];
        const char *nm = t->name;
        size_t L = strlen(nm);
        bool is_bias = L > 5 && !strcmp(nm + L - 5, ".bias");
        if (t == m->closed_rows) continue; /* set by the trainer from the names */
        /* the only 1-D weights are the norms' scales */
        if (t->ndim == 1 && L > 7 && !strcmp(nm + L - 7, ".weight")) tsr_init_const(t, 1.f);
        else if (is_bias) tsr_init_const(t, 0.f);
        else if (strstr(nm, "logit_scale")) tsr_init_const(t, logf(10.f));
        else if (t->ndim == 4) {
            int64_t fan_in = t->shape[1] * t->shape[2] * t->shape[3];
            tsr_init_normal(t, &r, sqrtf(2.f / (float)fan_in));
        } else if (t->ndim == 2) {
            float a = sqrtf(6.f / (float)(t->shape[0] + t->shape[1]));
            tsr_init_uniform(t, &r, -a, a);
        } else tsr_init_const(t, 0.f);
    }
    /* class priors */
    if (m->cfg.closed) {
        tsr_init_const(m->enc_cls.bias, prior);
        for (int l = 0; l < m->cfg.dec_layers; l++) tsr_init_const(m->dec[l].cls.bias, prior);
    } else {
        tsr_init_const(m->enc_bias, prior);
        for (int l = 0; l < m->cfg.dec_layers; l++) tsr_init_const(m->dec[l].bias, prior);
    }
    tsr_init_const(m->enc_box.l[2].weight, 0.f);
    for (int l = 0; l < m->cfg.dec_layers; l++) tsr_init_const(m->dec[l].box.l[2].weight, 0.f);
}

/* ------------------------------------------------------------ forward */

static tsr_tensor *conv_fwd(tsr_ctx *c, const tsr_ovd_conv *cv, tsr_tensor *x) {
    tsr_conv_opts o = {{cv->s, cv->s}, {cv->k / 2, cv->k / 2}, {1, 1}, 1, {0, 0}};
    tsr_tensor *y = tsr_conv2d(c, x, cv->w, cv->b, &o);
    int C = (int)y->shape[1];
    y = tsr_groupnorm(c, y, C % 8 == 0 ? 8 : 1, cv->gw, cv->gb, 1e-5f);
    if (c->grad_enabled) return tsr_relu(c, y);
    /* inference: ReLU in place (nothing else reads the norm's output) */
    float *p = tsr_f32(y);
    for (int64_t i = 0; i < y->numel; i++) p[i] = p[i] > 0.f ? p[i] : 0.f;
    return y;
}

static tsr_tensor *mlp_fwd(tsr_ctx *c, const tsr_ovd_mlp *m, tsr_tensor *x) {
    for (int i = 0; i < m->n; i++) {
        x = tsr_nn_linear_forward(c, &m->l[i], x);
        if (i < m->n - 1) x = tsr_relu(c, x);
    }
    return x;
}

/* multi-head attention: xq (B,T,d), xk and xv (B,S,d) -> (B,T,d), as
 * softmax(q k^T / sqrt(dh)) v per head, by the fused attention op (no
 * T x S score matrix is stored; heads stay interleaved, no permutes) */
static tsr_tensor *mha_fwd(tsr_ctx *c, const tsr_ovd_mha *a, int H, tsr_tensor *xq, tsr_tensor *xk,
                           tsr_tensor *xv) {
    int64_t B = xq->shape[0], T = xq->shape[1], S = xk->shape[1], d = xq->shape[2], dh = d / H;
    tsr_tensor *q = tsr_reshape(c, tsr_nn_linear_forward(c, &a->q, xq), 4, TSR_SHAPE(B, T, H, dh));
    tsr_tensor *k = tsr_reshape(c, tsr_nn_linear_forward(c, &a->k, xk), 4, TSR_SHAPE(B, S, H, dh));
    tsr_tensor *v = tsr_reshape(c, tsr_nn_linear_forward(c, &a->v, xv), 4, TSR_SHAPE(B, S, H, dh));
    tsr_attn_opts o = {0};
    tsr_tensor *y = tsr_reshape(c, tsr_attention(c, q, k, v, &o), 3, TSR_SHAPE(B, T, d));
    return tsr_nn_linear_forward(c, &a->o, y);
}

/* TextGuideVTFusion (sec. 3.3): image tokens x (B,N,d) attend to text
 * t (B,K,d); each head's output is scaled by sigmoid(max_k q.k / sqrt(dh)),
 * so a location that matches no name is left nearly untouched. */
static tsr_tensor *tgvt_fwd(tsr_ctx *c, const tsr_ovd_mha *a, int H, tsr_tensor *x, tsr_tensor *t) {
    int64_t B = x->shape[0], N = x->shape[1], K = t->shape[1], d = x->shape[2], dh = d / H;
    const int perm[4] = {0, 2, 1, 3};
    tsr_tensor *q = tsr_permute(c, tsr_reshape(c, tsr_nn_linear_forward(c, &a->q, x), 4, TSR_SHAPE(B, N, H, dh)), perm);
    tsr_tensor *k = tsr_permute(c, tsr_reshape(c, tsr_nn_linear_forward(c, &a->k, t), 4, TSR_SHAPE(B, K, H, dh)), perm);
    tsr_tensor *v = tsr_permute(c, tsr_reshape(c, tsr_nn_linear_forward(c, &a->v, t), 4, TSR_SHAPE(B, K, H, dh)), perm);
    tsr_tensor *s = tsr_scale(c, tsr_matmul(c, q, k, false, true), 1.f / sqrtf((float)dh)); /* (B,H,N,K) */
    tsr_tensor *g = tsr_sigmoid(c, tsr_rowmax(c, s));                                     /* (B,H,N,1) */
    tsr_tensor *o = tsr_mul(c, tsr_matmul(c, tsr_softmax(c, s), v, false, false), g);    /* (B,H,N,dh) */
    o = tsr_reshape(c, tsr_permute(c, o, perm), 3, TSR_SHAPE(B, N, d));
    return tsr_nn_linear_forward(c, &a->o, o);
}

/* 2-D sine-cosine position embedding of an h x w grid, (h*w, d): row
 * (y, x) is [sin x w_i, cos x w_i, sin y w_i, cos y w_i], w_i =
 * 10000^(-i/q), q = d/4; the per-column and per-row halves are computed
 * once and copied */
static tsr_tensor *pos2d(tsr_ctx *c, int h, int w, int d) {
    tsr_tensor *p = tsr_new(c, TSR_F32, 2, TSR_SHAPE((int64_t)h * w, d));
    float *P = tsr_f32(p);
    const int q = d / 4;
    float *xs = malloc(sizeof(float) * (size_t)(w + h) * 2 * q), *ys = xs + (size_t)w * 2 * q;
    TSR_ASSERT(xs);
    for (int i = 0; i < q; i++) {
        float om = 1.f / powf(10000.f, (float)i / (float)q);
        for (int x = 0; x < w; x++) xs[(size_t)x * 2 * q + i] = sinf(x * om), xs[(size_t)x * 2 * q + q + i] = cosf(x * om);
        for (int y = 0; y < h; y++) ys[(size_t)y * 2 * q + i] = sinf(y * om), ys[(size_t)y * 2 * q + q + i] = cosf(y * om);
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float *r = P + ((int64_t)y * w + x) * d;
            memcpy(r, xs + (size_t)x * 2 * q, sizeof(float) * 2 * (size_t)q);
            memcpy(r + 2 * q, ys + (size_t)y * 2 * q, sizeof(float) * 2 * (size_t)q);
        }
    free(xs);
    return p;
}

/* (B,C,H,W) -> (B,H*W,C) */
static tsr_tensor *to_tokens(tsr_ctx *c, tsr_tensor *x) {
    int64_t B = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
    const int perm[3] = {0, 2, 1};
    return tsr_permute(c, tsr_reshape(c, x, 3, TSR_SHAPE(B, C, HW)), perm);
}
/* (B,H*W,C) -> (B,C,H,W) */
static tsr_tensor *to_map(tsr_ctx *c, tsr_tensor *x, int h, int w) {
    int64_t B = x->shape[0], C = x->shape[2];
    const int perm[3] = {0, 2, 1};
    return tsr_reshape(c, tsr_permute(c, x, perm), 4, TSR_SHAPE(B, C, h, w));
}

static tsr_tensor *cat2(tsr_ctx *c, tsr_tensor *a, tsr_tensor *b, int dim) {
    tsr_tensor *xs[2] = {a, b};
    return tsr_concat(c, xs, 2, dim);
}

/* a constant copy (no gradient flows back): RT-DETR detaches the selected
 * queries and each layer's reference boxes */
static tsr_tensor *detach(tsr_ctx *c, const tsr_tensor *x) { return tsr_from_f32(c, x->ndim, x->shape, tsr_f32(x)); }

static float inv_sigmoid(float x) {
    x = fminf(fmaxf(x, 1e-5f), 1 - 1e-5f);
    return logf(x / (1 - x));
}

/* class logits of region features x (R, d) against text th (K, d) */
static tsr_tensor *head_fwd(tsr_ctx *c, const tsr_ovd_model *m, const tsr_nn_linear *region,
                            tsr_tensor *s, tsr_tensor *b, const tsr_nn_linear *cls, tsr_tensor *x,
                            tsr_tensor *th) {
    if (m->cfg.closed) return tsr_nn_linear_forward(c, cls, x);
    return tsr_contrastive_logits(c, tsr_nn_linear_forward(c, region, x), th, s, b);
}

tsr_ovd_out tsr_ovd_forward(tsr_ctx *c, const tsr_ovd_model *m, tsr_tensor *img, const float *text,
                            int K) {
    const tsr_ovd_cfg *g = &m->cfg;
    const int d = g->d, H = g->heads;
    const int64_t B = img->shape[0];
    tsr_ovd_out out = {0};
    /* the closed-set twin fuses the fixed rows of its own class names */
    if (g->closed) K = g->closed, text = tsr_f32(m->closed_rows);
    /* backbone */
    tsr_tensor *x = conv_fwd(c, &m->bb[0], img);
    x = conv_fwd(c, &m->bb[1], x);
    tsr_tensor *f[3];
    for (int s = 0; s < 3; s++) {
        x = conv_fwd(c, &m->bb[2 + 2 * s], x);
        x = tsr_add(c, x, conv_fwd(c, &m->bb[3 + 2 * s], x)); /* residual */
        f[s] = conv_fwd(c, &m->proj[s], x);
    }
    int hh[3], ww[3];
    for (int s = 0; s < 3; s++) hh[s] = (int)f[s]->shape[2], ww[s] = (int)f[s]->shape[3];
    /* AIFI on S5 (post-norm transformer layer, sincos positions on q and k) */
    {
        tsr_tensor *t = to_tokens(c, f[2]), *pe = pos2d(c, hh[2], ww[2], d);
        tsr_tensor *qk = tsr_add(c, t, pe);
        t = tsr_nn_layernorm_forward(c, &m->aifi_ln[0], tsr_add(c, t, mha_fwd(c, &m->aifi, H, qk, qk, t)));
        tsr_tensor *ff = tsr_nn_linear_forward(c, &m->aifi_ff2, tsr_gelu(c, tsr_nn_linear_forward(c, &m->aifi_ff1, t), false));
        t = tsr_nn_layernorm_forward(c, &m->aifi_ln[1], tsr_add(c, t, ff));
        f[2] = to_map(c, t, hh[2], ww[2]);
    }
    /* CCFM-lite: top-down then bottom-up, concat + 1x1 + 3x3 fusions */
    tsr_tensor *l5 = conv_fwd(c, &m->lat5, f[2]);
    tsr_tensor *p4 = conv_fwd(c, &m->fuse4[1], conv_fwd(c, &m->fuse4[0], cat2(c, tsr_upsample_nearest(c, l5, 2, 2), f[1], 1)));
    tsr_tensor *l4 = conv_fwd(c, &m->lat4, p4);
    tsr_tensor *p3 = conv_fwd(c, &m->fuse3[1], conv_fwd(c, &m->fuse3[0], cat2(c, tsr_upsample_nearest(c, l4, 2, 2), f[0], 1)));
    tsr_tensor *n4 = conv_fwd(c, &m->fusen4[1], conv_fwd(c, &m->fusen4[0], cat2(c, conv_fwd(c, &m->down3, p3), l4, 1)));
    tsr_tensor *n5 = conv_fwd(c, &m->fusen5[1], conv_fwd(c, &m->fusen5[0], cat2(c, conv_fwd(c, &m->down4, n4), l5, 1)));
    tsr_tensor *lv[3] = {p3, n4, n5};
    /* text: normalised CLIP rows -> learned projection, one copy per image */
    tsr_tensor *t0 = NULL, *th = NULL;
    {
        int Kt = K;
        float *e = malloc(sizeof(float) * (size_t)Kt * TSR_OVD_TEXT_DIM);
        TSR_ASSERT(e);
        for (int k = 0; k < Kt; k++) {
            const float *r = text ? text + (size_t)k * TSR_OVD_TEXT_DIM : NULL;
            double ss = 0;
            for (int j = 0; j < TSR_OVD_TEXT_DIM; j++) ss += r ? (double)r[j] * r[j] : 0;
            float inv = ss > 0 ? (float)(1 / sqrt(ss)) : 0;
            if (isinf(inv)) /* a row of denormals: 1/|r| overflows a float, so divide in double */
                for (int j = 0; j < TSR_OVD_TEXT_DIM; j++) e[(size_t)k * TSR_OVD_TEXT_DIM + j] = (float)(r[j] / sqrt(ss));
            else
                for (int j = 0; j < TSR_OVD_TEXT_DIM; j++) e[(size_t)k * TSR_OVD_TEXT_DIM + j] = r ? r[j] * inv : 0;
        }
        tsr_tensor *et = tsr_from_f32(c, 2, TSR_SHAPE(Kt, TSR_OVD_TEXT_DIM), e);
        free(e);
        tsr_tensor *tp = tsr_nn_linear_forward(c, &m->text_proj, et); /* (K,d) */
        t0 = tsr_add(c, tsr_zeros(c, TSR_F32, 3, TSR_SHAPE(B, 1, 1)), tp);
        th = tsr_nn_linear_forward(c, &m->text_head, tp);
    }
    /* Bi-VLF encoder (sec. 3.3): per level, Vision-aug-Text then
     * TextGuideVTFusion; the memory is the concatenated fused tokens */
    tsr_tensor *tok[3], *tl[3], *mpos[3];
    for (int l = 0; l < 3; l++) {
        tok[l] = to_tokens(c, lv[l]);
        mpos[l] = pos2d(c, hh[l], ww[l], d);
        tl[l] = t0;
        if (g->vat) tl[l] = tsr_nn_layernorm_forward(c, &m->fus[l].vat_ln, tsr_add(c, t0, mha_fwd(c, &m->fus[l].vat, H, t0, tok[l], tok[l])));
        if (g->tgvt) tok[l] = tsr_nn_layernorm_forward(c, &m->fus[l].tg_ln, tsr_add(c, tok[l], tgvt_fwd(c, &m->fus[l].tg, H, tok[l], tl[l])));
    }
    tsr_tensor *mem = tsr_concat(c, tok, 3, 1); /* (B,S,d) */
    tsr_tensor *memk = tsr_add(c, mem, tsr_concat(c, mpos, 3, 0));
    tsr_tensor *tcat = tsr_concat(c, tl, 3, 1); /* (B,3K,d): low, mid, high-level text */
    const int64_t S = mem->shape[1];
    /* anchors (logit space): cell centres, size 0.05 * 2^level */
    tsr_tensor *anc = tsr_new(c, TSR_F32, 2, TSR_SHAPE(S, 4));
    {
        float *A = tsr_f32(anc);
        int64_t i = 0;
        for (int l = 0; l < 3; l++)
            for (int y = 0; y < hh[l]; y++)
                for (int x2 = 0; x2 < ww[l]; x2++, i++) {
                    A[4 * i] = inv_sigmoid((x2 + 0.5f) / ww[l]);
                    A[4 * i + 1] = inv_sigmoid((y + 0.5f) / hh[l]);
                    A[4 * i + 2] = A[4 * i + 3] = inv_sigmoid(0.05f * (float)(1 << l));
                }
    }
    /* query selection (sec. 3.4): top-Q positions by max region-text logit */
    tsr_tensor *eo = tsr_nn_layernorm_forward(c, &m->enc_ln, tsr_nn_linear_forward(c, &m->enc_lin, mem));
    tsr_tensor *eo2 = tsr_reshape(c, eo, 2, TSR_SHAPE(B * S, d));
    tsr_tensor *elog = head_fwd(c, m, &m->enc_region, m->enc_s, m->enc_bias, &m->enc_cls, eo2, th); /* (B*S,K) */
    const int Q = (int)(g->queries < S ? g->queries : S);
    tsr_tensor *sel = tsr_new(c, TSR_I32, 1, TSR_SHAPE(B * Q));
    {
        const float *L = tsr_f32(elog);
        float *score = malloc(sizeof(float) * (size_t)S);
        TSR_ASSERT(score);
        for (int64_t b = 0; b < B; b++) {
            for (int64_t s = 0; s < S; s++) {
                float mx = -INFINITY;
                for (int k = 0; k < K; k++) mx = fmaxf(mx, L[(b * S + s) * K + k]);
                score[s] = mx;
            }
            /* partial selection sort of Q maxima; ties keep the lower index */
            for (int q = 0; q < Q; q++) {
                int64_t best = -1;
                for (int64_t s = 0; s < S; s++)
                    if (score[s] > -INFINITY && (best < 0 || score[s] > score[best])) best = s;
                if (best < 0) best = 0;
                tsr_i32(sel)[b * Q + q] = (int32_t)(b * S + best);
                score[best] = -INFINITY;
            }
        }
        free(score);
    }
    /* the box head runs on the selected positions only (the others' boxes
     * are never used): anchors of the selected cells + MLP offsets */
    tsr_tensor *anc_q = tsr_new(c, TSR_F32, 2, TSR_SHAPE(B * Q, 4));
    for (int64_t i = 0; i < B * Q; i++) memcpy(tsr_f32(anc_q) + 4 * i, tsr_f32(anc) + 4 * (tsr_i32(sel)[i] % S), 4 * sizeof(float));
    tsr_tensor *eo_q = tsr_index_select(c, eo2, 0, sel);
    tsr_tensor *elog_q = tsr_index_select(c, elog, 0, sel), *ebox_q = tsr_add(c, mlp_fwd(c, &m->enc_box, eo_q), anc_q);
    out.B = (int)B, out.Q = Q, out.K = K;
    out.logits[0] = elog_q;
    out.boxes[0] = tsr_sigmoid(c, ebox_q);
    tsr_tensor *tgt = tsr_reshape(c, detach(c, eo_q), 3, TSR_SHAPE(B, Q, d));
    tsr_tensor *ref = detach(c, out.boxes[0]); /* (B*Q,4) */
    /* decoder (sec. 3.4): multi-level text-guided fusion before each layer */
    for (int l = 0; l < g->dec_layers; l++) {
        const tsr_ovd_dec *L = &m->dec[l];
        tsr_tensor *pos = mlp_fwd(c, &m->qpos, tsr_reshape(c, ref, 3, TSR_SHAPE(B, Q, 4)));
        tsr_tensor *qp = tsr_add(c, tgt, pos);
        tgt = tsr_nn_layernorm_forward(c, &L->ln[0], tsr_add(c, tgt, mha_fwd(c, &L->txt, H, qp, tcat, tcat)));
        qp = tsr_add(c, tgt, pos);
        tgt = tsr_nn_layernorm_forward(c, &L->ln[1], tsr_add(c, tgt, mha_fwd(c, &L->self, H, qp, qp, tgt)));
        qp = tsr_add(c, tgt, pos);
        tgt = tsr_nn_layernorm_forward(c, &L->ln[2], tsr_add(c, tgt, mha_fwd(c, &L->cross, H, qp, memk, mem)));
        tsr_tensor *ff = tsr_nn_linear_forward(c, &L->ff2, tsr_relu(c, tsr_nn_linear_forward(c, &L->ff1, tgt)));
        tgt = tsr_nn_layernorm_forward(c, &L->ln[3], tsr_add(c, tgt, ff));
        tsr_tensor *t2 = tsr_reshape(c, tgt, 2, TSR_SHAPE(B * Q, d));
        tsr_tensor *rl = tsr_new_like(c, ref);
        for (int64_t i = 0; i < ref->numel; i++) tsr_f32(rl)[i] = inv_sigmoid(tsr_f32(ref)[i]);
        tsr_tensor *bx = tsr_sigmoid(c, tsr_add(c, mlp_fwd(c, &L->box, t2), rl));
        out.logits[l + 1] = head_fwd(c, m, &L->region, L->s, L->bias, &L->cls, t2, th);
        out.boxes[l + 1] = bx;
        ref = detach(c, bx);
    }
    out.n_sets = g->dec_layers + 1;
    out.text_head = g->closed ? NULL : th;
    return out;
}

/* --------------------------------------------------------------- loss */

tsr_ovd_loss_w tsr_ovd_default_loss_w(void) { return (tsr_ovd_loss_w){2, 5, 2, 1, 5, 2}; }

static float iou1(const float *a, const float *b) {
    float ax0 = a[0] - a[2] / 2, ax1 = a[0] + a[2] / 2, ay0 = a[1] - a[3] / 2, ay1 = a[1] + a[3] / 2;
    float bx0 = b[0] - b[2] / 2, bx1 = b[0] + b[2] / 2, by0 = b[1] - b[3] / 2, by1 = b[1] + b[3] / 2;
    float iw = fmaxf(0, fminf(ax1, bx1) - fmaxf(ax0, bx0)), ih = fmaxf(0, fminf(ay1, by1) - fmaxf(ay0, by0));
    float I = iw * ih, U = a[2] * a[3] + b[2] * b[3] - I;
    return U > 0 ? I / U : 0;
}

void tsr_ovd_match(int32_t *qidx, const float *logits, const float *boxes, int B, int Q, int K,
                   const tsr_ovd_targets *t, const tsr_ovd_loss_w *w) {
    for (int b = 0; b < B; b++) {
        int n = t->off[b + 1] - t->off[b];
        if (!n) continue;
        const float *tb = t->box + 4 * (size_t)t->off[b];
        const int32_t *tc = t->cls + t->off[b];
        /* cost (n targets x Q queries): RT-DETR's focal cost (alpha 0.25,
         * gamma 2), L1 on cxcywh, -GIoU */
        float *cost = malloc(sizeof(float) * (size_t)n * Q), *gi = malloc(sizeof(float) * (size_t)n * Q);
        TSR_ASSERT(cost && gi);
        tsr_giou_pairwise(gi, tb, boxes + 4 * (size_t)b * Q, n, Q);
        for (int j = 0; j < n; j++)
            for (int q = 0; q < Q; q++) {
                float x = logits[((size_t)b * Q + q) * K + tc[j]];
                float p = 1 / (1 + expf(-x));
                float pos = 0.25f * (1 - p) * (1 - p) * -logf(p + 1e-8f);
                float neg = 0.75f * p * p * -logf(1 - p + 1e-8f);
                const float *pb = boxes + 4 * ((size_t)b * Q + q);
                float l1 = fabsf(pb[0] - tb[4 * j]) + fabsf(pb[1] - tb[4 * j + 1]) + fabsf(pb[2] - tb[4 * j + 2]) +
                           fabsf(pb[3] - tb[4 * j + 3]);
                cost[(size_t)j * Q + q] = w->cost_cls * (pos - neg) + w->cost_l1 * l1 - w->cost_giou * gi[(size_t)j * Q + q];
            }
        double *sc = malloc(sizeof(double) * tsr_hungarian_scratch(n, Q));
        TSR_ASSERT(sc);
        tsr_hungarian(qidx + t->off[b], cost, n, Q, sc);
        free(sc), free(cost), free(gi);
    }
}

tsr_tensor *tsr_ovd_loss(tsr_ctx *c, const tsr_ovd_out *o, const tsr_ovd_targets *t,
                         const tsr_ovd_loss_w *w, float parts[3]) {
    const int B = o->B, Q = o->Q, K = o->K, nt = t->off[B];
    const float nb = nt > 0 ? (float)nt : 1.f;
    tsr_tensor *total = NULL;
    if (parts) parts[0] = parts[1] = parts[2] = 0;
    int32_t *qidx = malloc(sizeof(int32_t) * (size_t)(nt + 1));
    TSR_ASSERT(qidx);
    for (int s = 0; s < o->n_sets; s++) {
        tsr_tensor *lg = o->logits[s], *bx = o->boxes[s];
        for (int j = 0; j < nt; j++) qidx[j] = -1;
        tsr_ovd_match(qidx, tsr_f32(lg), tsr_f32(bx), B, Q, K, t, w);
        /* IoU-aware targets for the varifocal loss */
        tsr_tensor *q = tsr_zeros(c, TSR_F32, 2, TSR_SHAPE((int64_t)B * Q, K));
        tsr_tensor *pos = tsr_zeros(c, TSR_F32, 2, TSR_SHAPE((int64_t)B * Q, K));
        int nm = 0;
        for (int b = 0; b < B; b++)
            for (int j = t->off[b]; j < t->off[b + 1]; j++)
                if (qidx[j] >= 0) nm++;
        tsr_tensor *gi = tsr_new(c, TSR_I32, 1, TSR_SHAPE(nm > 0 ? nm : 1));
        tsr_tensor *tb = tsr_new(c, TSR_F32, 2, TSR_SHAPE(nm > 0 ? nm : 1, 4));
        int k = 0;
        for (int b = 0; b < B; b++)
            for (int j = t->off[b]; j < t->off[b + 1]; j++) {
                if (qidx[j] < 0) continue;
                int64_t r = (int64_t)b * Q + qidx[j];
                float iou = iou1(tsr_f32(bx) + 4 * r, t->box + 4 * (size_t)j);
                tsr_f32(q)[r * K + t->cls[j]] = iou;
                tsr_f32(pos)[r * K + t->cls[j]] = 1;
                tsr_i32(gi)[k] = (int32_t)r;
                memcpy(tsr_f32(tb) + 4 * k, t->box + 4 * (size_t)j, 4 * sizeof(float));
                k++;
            }
        tsr_tensor *lv = tsr_scale(c, tsr_varifocal(c, lg, q, pos, 0.75f, 2.f), w->w_vfl / nb);
        tsr_tensor *term = lv;
        if (parts) parts[0] += tsr_f32(lv)[0];
        if (nm > 0) {
            tsr_tensor *pb = tsr_index_select(c, bx, 0, gi);
            tsr_tensor *l1 = tsr_scale(c, tsr_l1(c, pb, tb), w->w_l1 * 4.f * (float)nm / nb);
            tsr_tensor *g = tsr_giou(c, pb, tb);
            tsr_tensor *lg2 = tsr_scale(c, tsr_sum_all(c, tsr_add_scalar(c, tsr_scale(c, g, -1.f), 1.f)), w->w_giou / nb);
            term = tsr_add(c, tsr_add(c, term, l1), lg2);
            if (parts) parts[1] += tsr_f32(l1)[0], parts[2] += tsr_f32(lg2)[0];
        }
        total = total ? tsr_add(c, total, term) : term;
    }
    free(qidx);
    return total;
}

/* --------------------------------------------------------------- files */

tsr_status tsr_ovd_save(const tsr_ovd_model *m, const char *path, const char *const *meta) {
    char cfg[512];
    tsr_ovd_cfg_str(&m->cfg, cfg, sizeof cfg);
    const char *mv[64];
    int n = 0;
    mv[n++] = "ovadetr.config", mv[n++] = cfg;
    for (int i = 0; meta && meta[i] && n < 62; i += 2) mv[n++] = meta[i], mv[n++] = meta[i + 1];
    mv[n] = NULL;
    return tsr_params_save(&m->params, path, TSR_ST_F32, mv);
}

tsr_status tsr_ovd_load(tsr_ovd_model *m, const char *path) {
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    const char *cs = tsr_st_meta(&f, "ovadetr.config");
    tsr_ovd_cfg cfg = tsr_ovd_default_cfg();
    if (!cs) st = tsr_errorf(TSR_ERR_FORMAT, "not an ovadetr model (no ovadetr.config in its metadata)"); /* path added below */
    else st = tsr_ovd_cfg_parse(&cfg, cs);
    const char *cr = tsr_st_meta(&f, "data.crop");
    int crop = cr ? atoi(cr) : 0;
    tsr_st_free(&f);
    if (st.code) return tsr_errorf(st.code, "%s: %s", path, st.msg);
    tsr_ovd_init(m, &cfg);
    m->train_crop = crop >= 64 && crop % 32 == 0 ? crop : 640;
    st = tsr_params_load(&m->params, path, true);
    if (st.code) tsr_ovd_free(m);
    return st;
}
