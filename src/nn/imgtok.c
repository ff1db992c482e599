/* tessera nn: the binary (BAE) and vector-quantized (VQ) image tokenizers
 * of include/tessera/imgtok.h — parameters, the straight-through Bernoulli
 * and VQ tape nodes, the conv encoder/decoder, the EMA codebook update with
 * dead-code restarts, checkpoint load/save and batched inference. Used by
 * the elm family (ELM, Liu et al. 2024, sec. 3.1 tokenizers) and by bigr. */
#include "tessera/imgtok.h"

#include "tessera/ops.h"
#include "tessera/safetensors.h"

#include <math.h>
#include <string.h>

#define IMGTOK_ARCH "imgtok_conv7"
#define RUN_CHUNK 256
#define G TSR_IMGTOK_GRID
#define P (TSR_IMGTOK_GRID * TSR_IMGTOK_GRID)

static const char *const k_kind_names[TSR_IMGTOK_KIND_COUNT] = {"bae", "vq"};
_Static_assert(sizeof k_kind_names / sizeof k_kind_names[0] == TSR_IMGTOK_KIND_COUNT,
               "kind name table");

const char *tsr_imgtok_kind_name(tsr_imgtok_kind k) {
    return (unsigned)k < TSR_IMGTOK_KIND_COUNT ? k_kind_names[k] : "?";
}

tsr_imgtok_cfg tsr_imgtok_default_cfg(tsr_imgtok_kind kind) {
    /* VQ keeps 1024 entries: 49 positions x 60k images give ~3M vectors a
     * epoch, enough to keep 1024 codes alive; 2^16 entries (the BAE's
     * vocabulary) would mostly sit dead at this scale */
    return (tsr_imgtok_cfg){.kind = kind, .bits = 16, .codebook = 1024, .ch = 32,
                            .commit = 0.25f, .ema_decay = 0.99f};
}

static tsr_status cfg_check(const tsr_imgtok_cfg *g, const char *what) {
    if ((unsigned)g->kind >= TSR_IMGTOK_KIND_COUNT)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: unknown tokenizer kind", what);
    if (g->bits < 1 || g->bits > 64)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: bits %d outside [1,64]", what, g->bits);
    if (g->ch < 2 || g->ch > 1024 || g->ch % 2)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: ch %d must be even in [2,1024]", what, g->ch);
    if (g->kind == TSR_IMGTOK_VQ) {
        if (g->codebook < 2 || g->codebook > 65536)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: codebook %d outside [2,65536]", what,
                              g->codebook);
        if (!(g->commit >= 0 && g->commit <= 100) || !(g->ema_decay >= 0 && g->ema_decay < 1))
            return tsr_errorf(TSR_ERR_FORMAT, "%s: commit/ema_decay out of range", what);
    }
    return tsr_ok();
}

static tsr_tensor *conv_param(tsr_params *p, const char *name, int o, int i, int k) {
    return tsr_param_new(p, name, 0, TSR_DIMS(o, i, k, k));
}
static tsr_tensor *bias_param(tsr_params *p, const char *name, int o) {
    return tsr_param_new(p, name, TSR_PARAM_NO_DECAY, TSR_DIMS(o));
}

static void build(tsr_imgtok *m) {
    const tsr_imgtok_cfg *g = &m->cfg;
    tsr_params *p = &m->params;
    tsr_params_init(p);
    const int ch = g->ch, h = ch / 2, K = g->bits;
    const int ci[4] = {1, h, ch, ch}, co[4] = {h, ch, ch, ch}, kk[4] = {3, 4, 4, 3};
    char nm[64];
    for (int i = 0; i < 4; i++) {
        snprintf(nm, sizeof nm, "enc.conv%d.weight", i + 1);
        m->enc_w[i] = conv_param(p, nm, co[i], ci[i], kk[i]);
        snprintf(nm, sizeof nm, "enc.conv%d.bias", i + 1);
        m->enc_b[i] = bias_param(p, nm, co[i]);
    }
    m->qproj_w = conv_param(p, "quant.proj.weight", K, ch, 1);
    m->qproj_b = bias_param(p, "quant.proj.bias", K);
    m->dproj_w = conv_param(p, "dec.proj.weight", ch, K, 1);
    m->dproj_b = bias_param(p, "dec.proj.bias", ch);
    m->dconv1_w = conv_param(p, "dec.conv1.weight", ch, ch, 3);
    m->dconv1_b = bias_param(p, "dec.conv1.bias", ch);
    /* ConvTranspose2d weights are (Cin, Cout, kh, kw) */
    m->up1_w = conv_param(p, "dec.up1.weight", ch, ch, 4);
    m->up1_b = bias_param(p, "dec.up1.bias", ch);
    m->up2_w = conv_param(p, "dec.up2.weight", ch, h, 4);
    m->up2_b = bias_param(p, "dec.up2.bias", h);
    m->out_w = conv_param(p, "dec.conv_out.weight", 1, h, 3);
    m->out_b = bias_param(p, "dec.conv_out.bias", 1);
    m->codebook = m->cluster_size = m->embed_sum = NULL;
    if (g->kind == TSR_IMGTOK_VQ) {
        m->codebook = tsr_param_new(p, "vq.codebook", TSR_PARAM_BUFFER, TSR_DIMS(g->codebook, K));
        m->cluster_size = tsr_param_new(p, "vq.cluster_size", TSR_PARAM_BUFFER, TSR_DIMS(g->codebook));
        m->embed_sum = tsr_param_new(p, "vq.embed_sum", TSR_PARAM_BUFFER, TSR_DIMS(g->codebook, K));
    }
}

tsr_status tsr_imgtok_init(tsr_imgtok *m, const tsr_imgtok_cfg *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    tsr_status st = cfg_check(cfg, "tokenizer config");
    if (st.code) return st;
    m->cfg = *cfg;
    build(m);
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    /* Kaiming-normal (fan_in) for the ReLU stack; a transposed conv with
     * stride 2 feeds each output pixel from Cin*(k/2)^2 taps */
    tsr_tensor *convs[] = {m->enc_w[0], m->enc_w[1], m->enc_w[2], m->enc_w[3], m->qproj_w,
                           m->dproj_w, m->dconv1_w, m->out_w};
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++) {
        const tsr_tensor *w = convs[i];
        float fan = (float)(w->shape[1] * w->shape[2] * w->shape[3]);
        tsr_init_normal(convs[i], &r, sqrtf(2.0f / fan));
    }
    tsr_init_normal(m->up1_w, &r, sqrtf(2.0f / (float)(m->up1_w->shape[0] * 4)));
    tsr_init_normal(m->up2_w, &r, sqrtf(2.0f / (float)(m->up2_w->shape[0] * 4)));
    /* the codebook starts empty: every entry has cluster_size 0, so the
     * first update restarts all of them at encoder outputs (data init) */
    return tsr_ok();
}

void tsr_imgtok_free(tsr_imgtok *m) {
    tsr_params_free(&m->params);
    memset(m, 0, sizeof *m);
}

static tsr_status cfg_from_file(const tsr_st_file *f, const char *path, tsr_imgtok_cfg *g) {
    const char *arch = tsr_st_meta(f, "arch"), *kind = tsr_st_meta(f, "kind");
    const char *bad = NULL;
    memset(g, 0, sizeof *g);
    if (!arch || strcmp(arch, IMGTOK_ARCH) != 0) bad = "arch";
    else if (!kind || (strcmp(kind, "bae") != 0 && strcmp(kind, "vq") != 0)) bad = "kind";
    else if (!tsr_st_meta_int(f, "bits", 0, 1 << 20, &g->bits)) bad = "bits";
    else if (!tsr_st_meta_int(f, "ch", 0, 1 << 20, &g->ch)) bad = "ch";
    else if (!tsr_st_meta_int(f, "codebook", 0, 1 << 20, &g->codebook)) bad = "codebook";
    else if (!tsr_st_meta_float(f, "commit", &g->commit)) bad = "commit";
    else if (!tsr_st_meta_float(f, "ema_decay", &g->ema_decay)) bad = "ema_decay";
    if (bad)
        return tsr_errorf(TSR_ERR_FORMAT,
                          "%s: not a tessera image tokenizer (metadata '%s' missing or invalid)",
                          path, bad);
    g->kind = strcmp(kind, "vq") == 0 ? TSR_IMGTOK_VQ : TSR_IMGTOK_BAE;
    return cfg_check(g, path);
}

tsr_status tsr_imgtok_read_cfg(const char *path, tsr_imgtok_cfg *cfg) {
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    st = cfg_from_file(&f, path, cfg);
    tsr_st_free(&f);
    return st;
}

tsr_status tsr_imgtok_load(tsr_imgtok *m, const char *path) {
    memset(m, 0, sizeof *m);
    tsr_imgtok_cfg g;
    tsr_status st = tsr_imgtok_read_cfg(path, &g);
    if (st.code) return st;
    m->cfg = g;
    build(m);
    st = tsr_params_load(&m->params, path, false);
    if (st.code) tsr_imgtok_free(m);
    return st;
}

tsr_status tsr_imgtok_save(const tsr_imgtok *m, const char *path, const char *const *meta) {
    char bits[16], ch[16], cb[16], cm[32], ed[32];
    snprintf(bits, sizeof bits, "%d", m->cfg.bits);
    snprintf(ch, sizeof ch, "%d", m->cfg.ch);
    snprintf(cb, sizeof cb, "%d", m->cfg.kind == TSR_IMGTOK_VQ ? m->cfg.codebook : 0);
    snprintf(cm, sizeof cm, "%.9g", (double)m->cfg.commit);
    snprintf(ed, sizeof ed, "%.9g", (double)m->cfg.ema_decay);
    const char *kv[72] = {"family", "imgtok", "arch", IMGTOK_ARCH,
                          "kind", tsr_imgtok_kind_name(m->cfg.kind), "bits", bits, "ch", ch,
                          "codebook", cb, "commit", cm, "ema_decay", ed,
                          "input", "1x28x28 in [0,1]", "grid", "7x7"};
    int n = 20;
    for (int i = 0; meta && meta[i] && meta[i + 1] && n < 70; i += 2) {
        kv[n++] = meta[i];
        kv[n++] = meta[i + 1];
    }
    kv[n] = NULL;
    return tsr_params_save(&m->params, path, TSR_ST_F32, kv);
}

/* ------------------------------------------------------- straight-through ops */

static void pass_through_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    if (!x->requires_grad) return;
    float *gx = tsr_grad(c, x);
    const float *go = n->out->grad;
    for (int64_t i = 0; i < x->numel; i++) gx[i] += go[i];
}

tsr_tensor *tsr_bernoulli_st(tsr_ctx *c, tsr_tensor *p, bool sample) {
    TSR_ASSERT(p->dtype == TSR_F32);
    tsr_tensor *out = tsr_new_like(c, p);
    const float *X = tsr_f32(p);
    float *Y = tsr_f32(out);
    const int64_t N = p->numel;
    if (sample) {
        /* 24-bit uniforms, two per u64, in element order: the bits depend
         * only on the rng state, never on the thread count */
        for (int64_t i = 0; i < N; i += 2) {
            uint64_t r = tsr_rng_u64(&c->rng);
            float u0 = (float)(r >> 40) * (1.0f / 16777216.0f);
            Y[i] = u0 < X[i] ? 1.0f : 0.0f;
            if (i + 1 < N) {
                float u1 = (float)((r >> 8) & 0xffffffu) * (1.0f / 16777216.0f);
                Y[i + 1] = u1 < X[i + 1] ? 1.0f : 0.0f;
            }
        }
    } else {
        for (int64_t i = 0; i < N; i++) Y[i] = X[i] > 0.5f ? 1.0f : 0.0f;
    }
    tsr_record(c, "bernoulli_st", pass_through_backward, out, 1, &p);
    return out;
}

tsr_tensor *tsr_vq_st(tsr_ctx *c, tsr_tensor *z, const tsr_tensor *codebook, tsr_tensor **ids) {
    TSR_ASSERT(z->dtype == TSR_F32 && z->ndim == 4 && codebook->ndim == 2 &&
               codebook->shape[1] == z->shape[1] && z->shape[1] <= 64);
    const int64_t B = z->shape[0], D = z->shape[1], HW = z->shape[2] * z->shape[3];
    const int64_t N = codebook->shape[0];
    tsr_tensor *out = tsr_new_like(c, z);
    tsr_tensor *id = tsr_new(c, TSR_I32, TSR_DIMS(B, z->shape[2], z->shape[3]));
    const float *Z = tsr_f32(z), *E = tsr_f32(codebook);
    float *Y = tsr_f32(out);
    int32_t *I = tsr_i32(id);
    /* |e|^2 once; argmin_e |z-e|^2 = argmin_e |e|^2 - 2 z.e */
    double *en = tsr_arena_alloc(&c->arena, sizeof(double) * (size_t)N);
    for (int64_t e = 0; e < N; e++) {
        double s = 0;
        for (int64_t d = 0; d < D; d++) s += (double)E[e * D + d] * E[e * D + d];
        en[e] = s;
    }
    /* rows of z gathered to (R,D), dot products by sgemm in blocks */
    const int64_t R = B * HW, RB = 1024;
    float *zr = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)(R * D));
    float *dot = tsr_arena_alloc(&c->arena, sizeof(float) * (size_t)(RB * N));
    for (int64_t r = 0; r < R; r++)
        for (int64_t d = 0; d < D; d++) zr[r * D + d] = Z[(r / HW) * D * HW + d * HW + r % HW];
    for (int64_t r0 = 0; r0 < R; r0 += RB) {
        const int64_t rb = R - r0 < RB ? R - r0 : RB;
        c->be->sgemm(false, true, (int)rb, (int)N, (int)D, 1.0f, zr + r0 * D, (int)D, E, (int)D,
                     0.0f, dot, (int)N);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < rb; i++) {
            const int64_t r = r0 + i, b = r / HW, s = r % HW;
            const float *dr = dot + i * N;
            int64_t best = 0;
            double bd = INFINITY;
            for (int64_t e = 0; e < N; e++) {
                double dist = en[e] - 2.0 * dr[e];
                if (dist < bd) bd = dist, best = e; /* first minimum wins: deterministic ties */
            }
            I[r] = (int32_t)best;
            for (int64_t d = 0; d < D; d++) Y[b * D * HW + d * HW + s] = E[best * D + d];
        }
    }
    tsr_record(c, "vq_st", pass_through_backward, out, 1, &z);
    if (ids) *ids = id;
    return out;
}

/* ---------------------------------------------------------------- network */

static tsr_tensor *conv(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b, int stride,
                        int pad, bool relu) {
    const tsr_conv_opts o = {.stride = {stride, stride}, .pad = {pad, pad}};
    tsr_tensor *y = tsr_conv2d(c, x, w, b, &o);
    return relu ? tsr_relu(c, y) : y;
}

tsr_tensor *tsr_imgtok_encode_pre(tsr_ctx *c, const tsr_imgtok *m, tsr_tensor *x) {
    TSR_ASSERT(x->ndim == 4 && x->shape[1] == 1 && x->shape[2] == 28 && x->shape[3] == 28);
    /* centre the pixels: [0,1] -> [-1,1] */
    tsr_tensor *h = tsr_add_scalar(c, tsr_scale(c, x, 2.0f), -1.0f);
    h = conv(c, h, m->enc_w[0], m->enc_b[0], 1, 1, true);
    h = conv(c, h, m->enc_w[1], m->enc_b[1], 2, 1, true);
    h = conv(c, h, m->enc_w[2], m->enc_b[2], 2, 1, true);
    h = conv(c, h, m->enc_w[3], m->enc_b[3], 1, 1, true);
    return conv(c, h, m->qproj_w, m->qproj_b, 1, 0, false);
}

tsr_tensor *tsr_imgtok_decode(tsr_ctx *c, const tsr_imgtok *m, tsr_tensor *q) {
    TSR_ASSERT(q->ndim == 4 && q->shape[1] == m->cfg.bits && q->shape[2] == G && q->shape[3] == G);
    tsr_tensor *h = conv(c, q, m->dproj_w, m->dproj_b, 1, 0, true);
    h = conv(c, h, m->dconv1_w, m->dconv1_b, 1, 1, true);
    const tsr_conv_opts up = {.stride = {2, 2}, .pad = {1, 1}};
    h = tsr_relu(c, tsr_conv_transpose2d(c, h, m->up1_w, m->up1_b, &up));
    h = tsr_relu(c, tsr_conv_transpose2d(c, h, m->up2_w, m->up2_b, &up));
    h = conv(c, h, m->out_w, m->out_b, 1, 1, false);
    return tsr_sigmoid(c, h);
}

void tsr_imgtok_forward(tsr_ctx *c, const tsr_imgtok *m, tsr_tensor *x, bool sample,
                        tsr_imgtok_out *o) {
    memset(o, 0, sizeof *o);
    o->z = tsr_imgtok_encode_pre(c, m, x);
    if (m->cfg.kind == TSR_IMGTOK_BAE) {
        o->q = tsr_bernoulli_st(c, tsr_sigmoid(c, o->z), sample);
    } else {
        o->q = tsr_vq_st(c, o->z, m->codebook, &o->ids);
        /* commitment: pull the encoder toward its (constant) code */
        tsr_tensor *sg = tsr_wrap(c, TSR_F32, o->q->ndim, o->q->shape, o->q->data);
        o->commit = tsr_mse(c, o->z, sg);
    }
    o->recon = tsr_imgtok_decode(c, m, o->q);
}

int tsr_imgtok_vq_update(tsr_imgtok *m, const tsr_tensor *z, const tsr_tensor *ids, float dead,
                         tsr_rng *rng) {
    TSR_ASSERT(m->cfg.kind == TSR_IMGTOK_VQ && z->ndim == 4 && ids->numel == z->shape[0] * P);
    const int64_t B = z->shape[0], D = m->cfg.bits, N = m->cfg.codebook, HW = P;
    const float decay = m->cfg.ema_decay;
    float *cs = tsr_f32(m->cluster_size), *es = tsr_f32(m->embed_sum), *E = tsr_f32(m->codebook);
    const float *Z = tsr_f32(z);
    const int32_t *I = tsr_i32(ids);
    double *cnt = calloc((size_t)N, sizeof(double)), *sum = calloc((size_t)(N * D), sizeof(double));
    TSR_ASSERT(cnt && sum);
    for (int64_t r = 0; r < B * HW; r++) {
        const int64_t b = r / HW, s = r % HW, e = I[r];
        cnt[e] += 1;
        for (int64_t d = 0; d < D; d++) sum[e * D + d] += Z[b * D * HW + d * HW + s];
    }
    double tot = 0;
    for (int64_t e = 0; e < N; e++) {
        cs[e] = decay * cs[e] + (1 - decay) * (float)cnt[e];
        for (int64_t d = 0; d < D; d++)
            es[e * D + d] = decay * es[e * D + d] + (1 - decay) * (float)sum[e * D + d];
        tot += cs[e];
    }
    /* Laplace smoothing keeps rarely used entries finite */
    const double eps = 1e-5;
    int restarted = 0;
    for (int64_t e = 0; e < N; e++) {
        if (cs[e] < dead) {
            int64_t r = (int64_t)tsr_rng_below(rng, (uint32_t)(B * HW));
            const int64_t b = r / HW, s = r % HW;
            cs[e] = 1.0f;
            for (int64_t d = 0; d < D; d++) E[e * D + d] = es[e * D + d] = Z[b * D * HW + d * HW + s];
            restarted++;
            continue;
        }
        double n = (cs[e] + eps) / (tot + (double)N * eps) * tot;
        for (int64_t d = 0; d < D; d++) E[e * D + d] = (float)(es[e * D + d] / n);
    }
    free(cnt), free(sum);
    return restarted;
}

/* --------------------------------------------------------------- inference */

static tsr_ctx *infer_ctx(void) {
    tsr_ctx *c = malloc(sizeof *c);
    TSR_ASSERT(c);
    tsr_ctx_init(c, (size_t)64 << 20);
    c->grad_enabled = false;
    c->training = false;
    return c;
}
static void infer_done(tsr_ctx *c) {
    tsr_ctx_free(c);
    free(c);
}

void tsr_imgtok_encode_images(const tsr_imgtok *m, const float *img, int64_t n, uint8_t *bits,
                              int32_t *ids) {
    tsr_ctx *c = infer_ctx();
    for (int64_t s = 0; s < n; s += RUN_CHUNK) {
        int64_t b = n - s < RUN_CHUNK ? n - s : RUN_CHUNK;
        tsr_ctx_reset(c);
        tsr_tensor *x = tsr_from_f32(c, TSR_DIMS(b, 1, 28, 28), img + s * 784);
        tsr_tensor *z = tsr_imgtok_encode_pre(c, m, x);
        if (m->cfg.kind == TSR_IMGTOK_BAE) {
            /* p > 0.5 <=> logit > 0 */
            const float *Z = tsr_f32(z);
            const int K = m->cfg.bits;
            for (int64_t i = 0; i < b; i++)
                for (int q = 0; q < P; q++)
                    for (int k = 0; k < K; k++)
                        bits[((s + i) * P + q) * K + k] = Z[(i * K + k) * P + q] > 0.0f;
        } else {
            tsr_tensor *id = NULL;
            tsr_vq_st(c, z, m->codebook, &id);
            memcpy(ids + s * P, tsr_i32(id), sizeof(int32_t) * (size_t)(b * P));
        }
    }
    infer_done(c);
}

void tsr_imgtok_decode_codes(const tsr_imgtok *m, const uint8_t *bits, const int32_t *ids,
                             int64_t n, float *img) {
    tsr_ctx *c = infer_ctx();
    const int K = m->cfg.bits;
    for (int64_t s = 0; s < n; s += RUN_CHUNK) {
        int64_t b = n - s < RUN_CHUNK ? n - s : RUN_CHUNK;
        tsr_ctx_reset(c);
        tsr_tensor *q = tsr_new(c, TSR_F32, TSR_DIMS(b, K, G, G));
        float *Q = tsr_f32(q);
        for (int64_t i = 0; i < b; i++)
            for (int p = 0; p < P; p++)
                for (int k = 0; k < K; k++) {
                    float v;
                    if (m->cfg.kind == TSR_IMGTOK_BAE) v = bits[((s + i) * P + p) * K + k] ? 1.0f : 0.0f;
                    else v = tsr_f32(m->codebook)[(int64_t)ids[(s + i) * P + p] * K + k];
                    Q[(i * K + k) * P + p] = v;
                }
        tsr_tensor *y = tsr_imgtok_decode(c, m, q);
        memcpy(img + s * 784, tsr_f32(y), sizeof(float) * (size_t)(b * 784));
    }
    infer_done(c);
}

tsr_status tsr_imgtok_check_codes(const tsr_imgtok *m, const uint8_t *bits, const int32_t *ids,
                                  int64_t n) {
    if (m->cfg.kind == TSR_IMGTOK_BAE) {
        for (int64_t i = 0; i < n * P * m->cfg.bits; i++)
            if (bits[i] > 1)
                return tsr_errorf(TSR_ERR_FORMAT, "code bit %lld is %d, not 0 or 1", (long long)i,
                                  bits[i]);
    } else {
        for (int64_t i = 0; i < n * P; i++)
            if (ids[i] < 0 || ids[i] >= m->cfg.codebook)
                return tsr_errorf(TSR_ERR_FORMAT, "code id %lld is %d, outside [0,%d)",
                                  (long long)i, ids[i], m->cfg.codebook);
    }
    return tsr_ok();
}

void tsr_imgtok_reconstruct(const tsr_imgtok *m, const float *img, int64_t n, float *out) {
    tsr_ctx *c = infer_ctx();
    for (int64_t s = 0; s < n; s += RUN_CHUNK) {
        int64_t b = n - s < RUN_CHUNK ? n - s : RUN_CHUNK;
        tsr_ctx_reset(c);
        tsr_tensor *x = tsr_from_f32(c, TSR_DIMS(b, 1, 28, 28), img + s * 784);
        tsr_imgtok_out o;
        tsr_imgtok_forward(c, m, x, false, &o);
        memcpy(out + s * 784, tsr_f32(o.recon), sizeof(float) * (size_t)(b * 784));
    }
    infer_done(c);
}
