/* tessera elm: inference for the generators — a plain-C forward over a KV
 * cache with a fixed reduction order per output element (every dot
 * product runs over its inputs in the same order whatever the number of
 * rows or cached positions), so KV-cache decoding and re-running the whole
 * prefix give bit-identical logits; and the samplers: AR decoding in
 * raster order with classifier-free guidance (constant or linearly rising
 * scale), temperature / top-k / top-p per sub-token, and MaskGIT iterative
 * decoding for the masked model (Chang et al. 2022: cosine schedule,
 * confidence = log-probability of the sampled code plus Gumbel noise
 * annealed to 0). Each image draws from its own rng (seed, index), so
 * samples do not depend on the batch they were drawn in. */
#include "tessera/elm.h"

#include <math.h>
#include <string.h>

#define ELM_HALF_PI 1.57079632679489661923

/* fixed-order dot product: 8 interleaved partial sums, combined pairwise */
static inline float dotf(const float *a, const float *b, int K) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int k = 0;
    for (; k + 8 <= K; k += 8)
        for (int l = 0; l < 8; l++) s[l] += a[k + l] * b[k + l];
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; k < K; k++) r += a[k] * b[k];
    return r;
}

/* out (M,N) = x (M,K) W^T, W (N,K); blocks of W rows stay in cache while
 * every x row passes over them */
static void lin(float *out, const float *x, const float *W, int M, int N, int K) {
    const int NB = 64;
    const int nblk = (N + NB - 1) / NB;
#pragma omp parallel for schedule(static) if ((double)M * N * K > 2e6)
    for (int bi = 0; bi < nblk; bi++) {
        int n0 = bi * NB, n1 = n0 + NB < N ? n0 + NB : N;
        for (int m = 0; m < M; m++)
            for (int n = n0; n < n1; n++) out[(int64_t)m * N + n] = dotf(x + (int64_t)m * K, W + (int64_t)n * K, K);
    }
}

static void rmsnorm_rows(float *y, const float *x, const float *w, int M, int C) {
    for (int m = 0; m < M; m++) {
        const float *xr = x + (int64_t)m * C;
        float ss = dotf(xr, xr, C);
        float r = 1.0f / sqrtf(ss / (float)C + 1e-5f);
        for (int i = 0; i < C; i++) y[(int64_t)m * C + i] = xr[i] * r * w[i];
    }
}

static void seq_pos(int s, int32_t *ph, int32_t *pw) {
    *ph = s == 0 ? 0 : 1 + (s - 1) / 7;
    *pw = s == 0 ? 0 : 1 + (s - 1) % 7;
}

/* 2-D RoPE on one head vector (D): halves layout inside each D/2 block,
 * as tsr_rope2d (angle in double, rounded to f32) */
static void rope2d_vec(float *x, int D, int ph, int pw, float theta) {
    const int d = D / 2, half = d / 2;
    for (int blk = 0; blk < 2; blk++) {
        float *v = x + blk * d;
        int pos = blk == 0 ? ph : pw;
        for (int i = 0; i < half; i++) {
            double a = (double)pos * pow((double)theta, -2.0 * (double)i / (double)d);
            float cs = (float)cos(a), sn = (float)sin(a);
            float u = v[i], w = v[i + half];
            v[i] = u * cs - w * sn;
            v[i + half] = u * sn + w * cs;
        }
    }
}

void tsr_elm_infer_init(tsr_elm_infer *s, const tsr_elm_model *m, int B, int cap) {
    memset(s, 0, sizeof *s);
    TSR_ASSERT(B >= 1 && cap >= 1 && cap <= 128); /* the attention rows live on the stack */
    s->m = m, s->B = B, s->cap = cap;
    size_t per = (size_t)m->cfg.n_layers * (size_t)B * (size_t)cap * (size_t)m->cfg.dim;
    s->k = malloc(sizeof(float) * per);
    s->v = malloc(sizeof(float) * per);
    s->ph = malloc(sizeof(int32_t) * (size_t)cap);
    s->pw = malloc(sizeof(int32_t) * (size_t)cap);
    TSR_ASSERT(s->k && s->v && s->ph && s->pw);
    for (int i = 0; i < cap; i++) seq_pos(i, s->ph + i, s->pw + i);
}

void tsr_elm_infer_free(tsr_elm_infer *s) {
    free(s->k), free(s->v), free(s->ph), free(s->pw);
    memset(s, 0, sizeof *s);
}

void tsr_elm_infer_forward(tsr_elm_infer *s, const float *xin, int T, bool causal, float *hidden) {
    const tsr_elm_model *m = s->m;
    const int B = s->B, C = m->cfg.dim, H = m->cfg.n_heads, D = C / H, F = m->cfg.hidden;
    const int L0 = s->len, M = B * T;
    TSR_ASSERT(L0 + T <= s->cap);
    float *x = malloc(sizeof(float) * (size_t)M * C), *h = malloc(sizeof(float) * (size_t)M * C);
    float *q = malloc(sizeof(float) * (size_t)M * C), *a = malloc(sizeof(float) * (size_t)M * C);
    float *kv = malloc(sizeof(float) * (size_t)M * C * 2);
    float *g = malloc(sizeof(float) * (size_t)M * F), *u = malloc(sizeof(float) * (size_t)M * F);
    TSR_ASSERT(x && h && q && a && kv && g && u);
    memcpy(x, xin, sizeof(float) * (size_t)M * C);
    const float scale = 1.0f / sqrtf((float)D);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const tsr_nn_llama_block *b = &m->layers[l];
        float *Kc = s->k + (size_t)l * B * s->cap * C, *Vc = s->v + (size_t)l * B * s->cap * C;
        rmsnorm_rows(h, x, tsr_f32(b->input_layernorm.weight), M, C);
        lin(q, h, tsr_f32(b->q_proj.weight), M, C, C);
        lin(kv, h, tsr_f32(b->k_proj.weight), M, C, C);
        lin(kv + (size_t)M * C, h, tsr_f32(b->v_proj.weight), M, C, C);
        for (int bb = 0; bb < B; bb++)
            for (int t = 0; t < T; t++) {
                int sp = L0 + t;
                float *qr = q + ((size_t)bb * T + t) * C;
                float *kr = Kc + ((size_t)bb * s->cap + sp) * C, *vr = Vc + ((size_t)bb * s->cap + sp) * C;
                memcpy(kr, kv + ((size_t)bb * T + t) * C, sizeof(float) * C);
                memcpy(vr, kv + (size_t)M * C + ((size_t)bb * T + t) * C, sizeof(float) * C);
                for (int hh = 0; hh < H; hh++) {
                    rope2d_vec(qr + hh * D, D, s->ph[sp], s->pw[sp], m->cfg.rope_theta);
                    rope2d_vec(kr + hh * D, D, s->ph[sp], s->pw[sp], m->cfg.rope_theta);
                }
            }
        const int Sall = L0 + T;
#pragma omp parallel for schedule(static) if ((double)M * H * Sall * D > 1e6)
        for (int r = 0; r < M; r++) {
            int bb = r / T, t = r % T, sp = L0 + t, S = causal ? sp + 1 : Sall;
            float p[128];
            for (int hh = 0; hh < H; hh++) {
                const float *qr = q + (size_t)r * C + hh * D;
                float mx = -INFINITY;
                for (int j = 0; j < S; j++) {
                    p[j] = dotf(qr, Kc + ((size_t)bb * s->cap + j) * C + hh * D, D) * scale;
                    if (p[j] > mx) mx = p[j];
                }
                float den = 0;
                for (int j = 0; j < S; j++) den += p[j] = expf(p[j] - mx);
                float inv = 1.0f / den;
                float *ar = a + (size_t)r * C + hh * D;
                for (int d = 0; d < D; d++) ar[d] = 0;
                for (int j = 0; j < S; j++) {
                    p[j] *= inv;
                    const float *vr = Vc + ((size_t)bb * s->cap + j) * C + hh * D;
                    for (int d = 0; d < D; d++) ar[d] += p[j] * vr[d];
                }
                if (s->dist_sum && sp >= 1) {
                    /* mean grid distance from this image query to the image keys it sees */
                    double wsum = 0, dsum = 0;
                    for (int j = 1; j < S; j++) {
                        double dh = s->ph[j] - s->ph[sp], dw = s->pw[j] - s->pw[sp];
                        wsum += p[j], dsum += p[j] * sqrt(dh * dh + dw * dw);
                    }
                    if (wsum > 0) {
#pragma omp critical
                        {
                            s->dist_sum[l] += dsum / wsum;
                            s->dist_cnt[l]++;
                        }
                    }
                }
                if (s->attn_map && bb == 0 && sp == s->attn_q)
                    for (int j = 0; j < s->cap; j++)
                        s->attn_map[((size_t)l * H + hh) * s->cap + j] = j < S ? p[j] : 0.0f;
            }
        }
        lin(h, a, tsr_f32(b->o_proj.weight), M, C, C);
        for (size_t i = 0; i < (size_t)M * C; i++) x[i] += h[i];
        rmsnorm_rows(h, x, tsr_f32(b->post_attention_layernorm.weight), M, C);
        lin(g, h, tsr_f32(b->gate_proj.weight), M, F, C);
        lin(u, h, tsr_f32(b->up_proj.weight), M, F, C);
        for (size_t i = 0; i < (size_t)M * F; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
        lin(h, g, tsr_f32(b->down_proj.weight), M, C, F);
        for (size_t i = 0; i < (size_t)M * C; i++) x[i] += h[i];
    }
    rmsnorm_rows(hidden, x, tsr_f32(m->norm), M, C);
    s->len += T;
    free(x), free(h), free(q), free(a), free(kv), free(g), free(u);
}

void tsr_elm_infer_embed(const tsr_elm_model *m, int label, const int32_t *sub, float *x) {
    const int C = m->cfg.dim, S = m->cfg.n_sub, E = C / S;
    if (!sub) {
        memcpy(x, tsr_f32(m->cls_embed) + (size_t)label * C, sizeof(float) * C);
        return;
    }
    float cat[4096];
    for (int j = 0; j < S; j++) memcpy(cat + j * E, tsr_f32(m->tok_embed[j]) + (size_t)sub[j] * E, sizeof(float) * E);
    lin(x, cat, tsr_f32(m->in_proj), 1, C, C);
}

void tsr_elm_infer_head(const tsr_elm_model *m, int j, const float *h, float *logits) {
    lin(logits, h, tsr_f32(m->head[j]), 1, m->sub_vocab[j], m->cfg.dim);
}

/* ------------------------------------------------------------ sampling */

tsr_elm_sample_opts tsr_elm_default_sample_opts(void) {
    /* the setting the study chose for the shipped model (docs/elm.md) */
    tsr_elm_sample_opts o = {.temperature = 1.0f, .top_k = 64, .top_p = 1.0f, .cfg_scale = 3.0f,
                             .cfg_sched = TSR_ELM_CFG_LINEAR, .steps = 10, .choice_temp = 4.5f,
                             .kv_cache = true, .batch = 100, .seed = 1};
    return o;
}

int tsr_elm_maskgit_remaining(int t, int T, int n_pos) {
    int prev = n_pos;
    for (int i = 0; i <= t; i++) {
        int r = i >= T - 1 ? 0 : (int)floor((double)n_pos * cos(ELM_HALF_PI * (double)(i + 1) / T));
        if (r > prev - 1) r = prev - 1;
        prev = r < 0 ? 0 : r;
    }
    return prev;
}

int tsr_elm_mask_count(float u, int n_pos) {
    int k = (int)ceil(cos(ELM_HALF_PI * (double)u) * n_pos);
    return k < 1 ? 1 : k > n_pos ? n_pos : k;
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* samples one sub-token from guided logits lg (V) (modified in place);
 * returns the id and its log-probability under the filtered distribution */
static int sample_one(float *lg, int V, const tsr_elm_sample_opts *o, tsr_rng *r, float *scratch,
                      float *logp) {
    const float it = o->temperature > 0 ? 1.0f / o->temperature : 1.0f;
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) {
        lg[i] *= it;
        if (lg[i] > mx) mx = lg[i];
    }
    if (o->top_k > 0 && o->top_k < V) {
        memcpy(scratch, lg, sizeof(float) * V);
        qsort(scratch, (size_t)V, sizeof(float), cmp_desc);
        float thr = scratch[o->top_k - 1];
        for (int i = 0; i < V; i++)
            if (lg[i] < thr) lg[i] = -INFINITY;
    }
    double den = 0;
    for (int i = 0; i < V; i++) den += exp((double)(lg[i] - mx));
    if (o->top_p < 1.0f) {
        /* keep the smallest set of largest probabilities whose mass reaches top_p */
        for (int i = 0; i < V; i++) scratch[i] = lg[i];
        qsort(scratch, (size_t)V, sizeof(float), cmp_desc);
        double cum = 0;
        float thr = scratch[0];
        for (int i = 0; i < V; i++) {
            thr = scratch[i];
            cum += exp((double)(scratch[i] - mx)) / den;
            if (cum >= o->top_p) break;
        }
        den = 0;
        for (int i = 0; i < V; i++) {
            if (lg[i] < thr) lg[i] = -INFINITY;
            den += exp((double)(lg[i] - mx));
        }
    }
    if (o->temperature <= 0) { /* greedy */
        int best = 0;
        for (int i = 1; i < V; i++)
            if (lg[i] > lg[best]) best = i;
        *logp = (float)((double)(lg[best] - mx) - log(den));
        return best;
    }
    double u = (double)tsr_rng_uniform(r) * den, cum = 0;
    int pick = -1, last = 0;
    for (int i = 0; i < V; i++) {
        if (lg[i] == -INFINITY) continue;
        last = i;
        cum += exp((double)(lg[i] - mx));
        if (cum > u) {
            pick = i;
            break;
        }
    }
    if (pick < 0) pick = last;
    *logp = (float)((double)(lg[pick] - mx) - log(den));
    return pick;
}

static float cfg_at(const tsr_elm_sample_opts *o, double progress) {
    if (o->cfg_sched == TSR_ELM_CFG_LINEAR) return 1.0f + (o->cfg_scale - 1.0f) * (float)progress;
    return o->cfg_scale;
}

/* guided logits of sub-token j for image i of a batch of nb from hidden rows */
static void guided(const tsr_elm_model *m, int j, const float *hc, const float *hu, float s,
                   float *lg, float *tmp) {
    tsr_elm_infer_head(m, j, hc, lg);
    if (!hu) return;
    tsr_elm_infer_head(m, j, hu, tmp);
    const int V = m->sub_vocab[j];
    for (int i = 0; i < V; i++) lg[i] = tmp[i] + s * (lg[i] - tmp[i]);
}

static bool late(const tsr_elm_sample_opts *o) { return o->deadline > 0 && tsr_time() > o->deadline; }

static void sample_ar(const tsr_elm_model *m, const tsr_elm_sample_opts *o, const int32_t *labels,
                      int nb, tsr_rng *rng, int32_t *sub) {
    const int C = m->cfg.dim, S = m->cfg.n_sub, P = TSR_ELM_POS;
    const bool cfg = o->cfg_scale != 1.0f;
    const int R = cfg ? 2 * nb : nb, Vmax = m->sub_vocab[0];
    tsr_elm_infer st;
    tsr_elm_infer_init(&st, m, R, P + 1);
    float *seq = malloc(sizeof(float) * (size_t)R * (P + 1) * C); /* all input embeddings so far */
    float *x = malloc(sizeof(float) * (size_t)R * (P + 1) * C);
    float *hid = malloc(sizeof(float) * (size_t)R * (P + 1) * C);
    float *lg = malloc(sizeof(float) * Vmax * 3);
    TSR_ASSERT(seq && x && hid && lg);
    for (int r = 0; r < R; r++) tsr_elm_infer_embed(m, r < nb ? labels[r] : TSR_ELM_CLASSES, NULL, seq + (size_t)r * (P + 1) * C);
    for (int p = 0; p < P && !late(o); p++) {
        int T;
        if (o->kv_cache) {
            T = 1;
            for (int r = 0; r < R; r++) memcpy(x + (size_t)r * C, seq + ((size_t)r * (P + 1) + p) * C, sizeof(float) * C);
        } else {
            T = p + 1;
            st.len = 0;
            for (int r = 0; r < R; r++) memcpy(x + (size_t)r * T * C, seq + (size_t)r * (P + 1) * C, sizeof(float) * T * C);
        }
        tsr_elm_infer_forward(&st, x, T, true, hid);
        float s = cfg_at(o, (double)(p + 1) / P);
        for (int i = 0; i < nb; i++) {
            const float *hc = hid + ((size_t)i * T + T - 1) * C;
            const float *hu = cfg ? hid + ((size_t)(nb + i) * T + T - 1) * C : NULL;
            int32_t *tok = sub + ((size_t)i * P + p) * S;
            for (int j = 0; j < S; j++) {
                guided(m, j, hc, hu, s, lg, lg + Vmax);
                float lp;
                tok[j] = sample_one(lg, m->sub_vocab[j], o, &rng[i], lg + 2 * Vmax, &lp);
            }
            if (p + 1 < P) {
                float *e = seq + ((size_t)i * (P + 1) + p + 1) * C;
                tsr_elm_infer_embed(m, 0, tok, e);
                if (cfg) memcpy(seq + ((size_t)(nb + i) * (P + 1) + p + 1) * C, e, sizeof(float) * C);
            }
        }
    }
    free(seq), free(x), free(hid), free(lg);
    tsr_elm_infer_free(&st);
}

static void sample_mlm(const tsr_elm_model *m, const tsr_elm_sample_opts *o, const int32_t *labels,
                       int nb, tsr_rng *rng, int32_t *sub) {
    const int C = m->cfg.dim, S = m->cfg.n_sub, P = TSR_ELM_POS, T = P + 1;
    const bool cfg = o->cfg_scale != 1.0f;
    const int R = cfg ? 2 * nb : nb, Vmax = m->sub_vocab[0];
    const int steps = o->steps < 1 ? 1 : o->steps;
    tsr_elm_infer st;
    tsr_elm_infer_init(&st, m, R, T);
    float *x = malloc(sizeof(float) * (size_t)R * T * C), *hid = malloc(sizeof(float) * (size_t)R * T * C);
    float *lg = malloc(sizeof(float) * Vmax * 3);
    uint8_t *masked = malloc((size_t)nb * P);
    int32_t *cand = malloc(sizeof(int32_t) * (size_t)P * S);
    float *conf = malloc(sizeof(float) * P), *sorted = malloc(sizeof(float) * P);
    TSR_ASSERT(x && hid && lg && masked && cand && conf && sorted);
    memset(masked, 1, (size_t)nb * P);
    for (int i = 0; i < nb; i++)
        for (int p = 0; p < P; p++)
            for (int j = 0; j < S; j++) sub[((size_t)i * P + p) * S + j] = m->sub_vocab[j];
    for (int t = 0; t < steps && !late(o); t++) {
        for (int r = 0; r < R; r++) {
            int i = r < nb ? r : r - nb;
            tsr_elm_infer_embed(m, r < nb ? labels[i] : TSR_ELM_CLASSES, NULL, x + (size_t)r * T * C);
            for (int p = 0; p < P; p++)
                tsr_elm_infer_embed(m, 0, sub + ((size_t)i * P + p) * S, x + ((size_t)r * T + 1 + p) * C);
        }
        st.len = 0;
        tsr_elm_infer_forward(&st, x, T, false, hid);
        const float s = cfg_at(o, (double)(t + 1) / steps);
        const int remain = tsr_elm_maskgit_remaining(t, steps, P);
        const float gt = o->choice_temp * (1.0f - (float)(t + 1) / (float)steps);
        for (int i = 0; i < nb; i++) {
            int nm = 0;
            for (int p = 0; p < P; p++) {
                if (!masked[(size_t)i * P + p]) continue;
                const float *hc = hid + ((size_t)i * T + 1 + p) * C;
                const float *hu = cfg ? hid + ((size_t)(nb + i) * T + 1 + p) * C : NULL;
                float c = 0;
                for (int j = 0; j < S; j++) {
                    guided(m, j, hc, hu, s, lg, lg + Vmax);
                    float lp;
                    cand[p * S + j] = sample_one(lg, m->sub_vocab[j], o, &rng[i], lg + 2 * Vmax, &lp);
                    c += lp;
                }
                double u = (double)tsr_rng_uniform(&rng[i]);
                double gum = -log(-log(u + 1e-20) + 1e-20);
                conf[p] = c + gt * (float)gum;
                sorted[nm++] = conf[p];
            }
            /* keep `remain` least confident positions masked, fix the rest */
            int keep_masked = remain < nm ? remain : nm - 1;
            if (keep_masked < 0) keep_masked = 0;
            float thr = -INFINITY;
            if (keep_masked > 0) {
                qsort(sorted, (size_t)nm, sizeof(float), cmp_desc);
                thr = sorted[nm - keep_masked]; /* confidences <= thr stay masked */
            }
            int left = keep_masked;
            for (int p = P - 1; p >= 0; p--) {
                if (!masked[(size_t)i * P + p]) continue;
                if (left > 0 && conf[p] <= thr) {
                    left--;
                    continue;
                }
                masked[(size_t)i * P + p] = 0;
                memcpy(sub + ((size_t)i * P + p) * S, cand + p * S, sizeof(int32_t) * S);
            }
        }
    }
    free(x), free(hid), free(lg), free(masked), free(cand), free(conf), free(sorted);
    tsr_elm_infer_free(&st);
}

void tsr_elm_sample(const tsr_elm_model *m, const tsr_elm_sample_opts *o, const int32_t *labels,
                    int64_t n, int32_t *sub) {
    const int S = m->cfg.n_sub, bs = o->batch > 0 ? o->batch : 100;
    for (int64_t i0 = 0; i0 < n && !late(o); i0 += bs) {
        int nb = (int)(n - i0 < bs ? n - i0 : bs);
        tsr_rng *rng = malloc(sizeof(tsr_rng) * (size_t)nb);
        TSR_ASSERT(rng);
        for (int i = 0; i < nb; i++) tsr_rng_seed(&rng[i], o->seed * 0x9E3779B97F4A7C15ull + (uint64_t)(i0 + i));
        int32_t *out = sub + (size_t)i0 * TSR_ELM_POS * S;
        if (m->cfg.kind == TSR_ELM_AR) sample_ar(m, o, labels + i0, nb, rng, out);
        else sample_mlm(m, o, labels + i0, nb, rng, out);
        free(rng);
    }
}
