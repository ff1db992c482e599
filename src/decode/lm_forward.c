/* lm inference (src/decode): the Llama forward pass over n new tokens with a KV cache
 * (pre-norm RMSNorm blocks, rotary attention with grouped KV heads, SwiGLU
 * MLP; Touvron et al. 2023, sec. 2.2). Numerics follow llama2.c's run.c
 * (RoPE angles from powf/cosf/sinf in f32, scores divided by sqrt(D),
 * softmax with max subtraction) so greedy outputs track its reference.
 * Every per-token quantity is computed the same way whatever n is: see
 * lm_kernels.c for the matmuls; norms, RoPE and attention are per token with
 * keys visited in cache-slot order.
 * The masked form (speculative verification of draft trees) writes the n
 * new rows to cache slots n_ctx.. while rotating each by its own position,
 * and lets each row attend to the slots its mask marks, visited in slot
 * order through the very same attention body: a row whose visible keys
 * and position equal those of a causal decode step gets the same bits. */
#include "tessera/lm.h"
#include "decode/lm_kernels.h"

#include <math.h>
#include <string.h>

static void rmsnorm(float *o, const float *x, const float *w, int C, float eps) {
    float ss = 0.0f;
    for (int j = 0; j < C; j++) ss += x[j] * x[j];
    ss /= (float)C;
    ss += eps;
    ss = 1.0f / sqrtf(ss);
    for (int j = 0; j < C; j++) o[j] = w[j] * (ss * x[j]);
}

/* interleaved: pairs (2i, 2i+1) of each head rotate by pos * theta^(-2i/D);
 * half (HF): pairs (i, i + D/2) by the same angle. cs holds (cos, sin) per i. */
static void rope(float *v, int width, int D, const float *cs, tsr_lm_rope_layout lay) {
    if (lay == TSR_LM_ROPE_INTERLEAVED) {
        for (int i = 0; i < width; i += 2) {
            int j = (i % D) / 2;
            float c = cs[2 * j], s = cs[2 * j + 1];
            float a = v[i], b = v[i + 1];
            v[i] = a * c - b * s;
            v[i + 1] = a * s + b * c;
        }
        return;
    }
    const int half = D / 2;
    for (int h = 0; h < width; h += D)
        for (int j = 0; j < half; j++) {
            float c = cs[2 * j], s = cs[2 * j + 1];
            float a = v[h + j], b = v[h + j + half];
            v[h + j] = a * c - b * s;
            v[h + j + half] = a * s + b * c;
        }
}

/* largest activation scratch any matmul of the model needs for n tokens */
static size_t mm_scratch(const tsr_lm_model *m, int n) {
    size_t b = tsr_lm_matmul_scratch(&m->wcls, n);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const tsr_lm_layer *L = &m->layers[l];
        const tsr_lm_mat *ms[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w3, &L->w2};
        for (int i = 0; i < 7; i++) {
            size_t x = tsr_lm_matmul_scratch(ms[i], n);
            if (x > b) b = x;
        }
    }
    return b;
}

/* A row's embedding (C floats) into xt and its RoPE (cos, sin) pairs for
 * position p into ct: the angles p * freq, freq from the table (ff: f32,
 * interleaved, as run.c; fd: double, half, as tsr_rope_table) or, without
 * one, computed here the same way. */
static void embed_row(float *xt, const float *emb, int C, float *ct, int p, int D, const tsr_lm_config *cfg,
                      const float *ff, const double *fd) {
    memcpy(xt, emb, sizeof(float) * (size_t)C);
    for (int i = 0; i < D; i += 2) {
        if (cfg->rope_layout == TSR_LM_ROPE_INTERLEAVED) {
            float freq = ff ? ff[i / 2] : 1.0f / powf(cfg->rope_theta, (float)i / (float)D);
            float ang = (float)p * freq;
            ct[i] = cosf(ang);
            ct[i + 1] = sinf(ang);
        } else {
            double ang = (double)p * (fd ? fd[i / 2] : pow((double)cfg->rope_theta, -(double)i / (double)D));
            ct[i] = (float)cos(ang);
            ct[i + 1] = (float)sin(ang);
        }
    }
}

/* last_only: logits (V) of the final token only (prefill needs no more).
 * pos0 is the first cache slot written. pos NULL: causal (row t is at
 * position pos0 + t and sees slots 0..pos0+t). Otherwise row t is at
 * position pos[t] and sees the slots its mask row marks: mask rows are
 * mask_ld bytes; mask_ld == n covers the new rows only (every cached slot
 * visible), mask_ld == pos0 + n covers every slot. */
/* rc non-NULL (batched sequences): row t belongs to the sequence whose
 * cache is rc[t], sits at position pos[t] (mask NULL) and sees that cache's
 * slots 0..pos[t]; c only lends its scratch. want (may be NULL) marks the
 * rows whose logits are written, compactly in row order. hidden: the rows'
 * final normed states (C each) go to logits instead of their logits. */
static tsr_status forward_run(const tsr_lm_model *m, tsr_lm_cache *c, const int *tokens, int n, int pos0,
                              const int *pos, const uint8_t *mask, int mask_ld, float *logits, bool last_only,
                              tsr_lm_cache *const *rc, const uint8_t *want, bool hidden) {
    const tsr_lm_config *cfg = &m->cfg;
    const int C = cfg->dim, Hd = cfg->hidden_dim, H = cfg->n_heads, Hkv = cfg->n_kv_heads;
    const int D = C / H, kv = D * Hkv, V = cfg->vocab_size, group = H / Hkv;
    if (n < 0 || pos0 < 0) return tsr_errorf(TSR_ERR_ARG, "lm forward: negative count or position");
    if (n == 0) return tsr_ok();
    if (c->kv_dim != kv || c->n_layers != cfg->n_layers)
        return tsr_errorf(TSR_ERR_ARG, "lm forward: cache was made for another model");
    if (!rc && pos0 > c->max_len - n)
        return tsr_errorf(TSR_ERR_ARG, "lm forward: positions %d..%d exceed the context of %d", pos0,
                          pos0 + n - 1, c->max_len);
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= V)
            return tsr_errorf(TSR_ERR_ARG, "lm forward: token %d out of range [0, %d)", tokens[t], V);
    int alen = c->max_len; /* attention scratch per thread */
    if (rc) {
        for (int t = 0; t < n; t++) {
            const tsr_lm_cache *r = rc[t];
            if (r->kv_dim != kv || r->n_layers != cfg->n_layers)
                return tsr_errorf(TSR_ERR_ARG, "lm forward: cache was made for another model");
            if (pos[t] < 0 || pos[t] >= r->max_len)
                return tsr_errorf(TSR_ERR_ARG, "lm forward: position %d outside [0, %d)", pos[t], r->max_len);
            if (t > 0 && rc[t - 1] == r && pos[t] != pos[t - 1] + 1)
                return tsr_errorf(TSR_ERR_ARG, "lm forward: a sequence's rows must be consecutive positions");
            for (int u = 0; u + 1 < t; u++)
                if (rc[u] == r && rc[u + 1] != r)
                    return tsr_errorf(TSR_ERR_ARG, "lm forward: a sequence's rows must be adjacent");
            if (r->max_len > alen) alen = r->max_len;
        }
    } else if (pos) {
        if (!mask || (mask_ld != n && mask_ld != pos0 + n))
            return tsr_errorf(TSR_ERR_ARG, "lm forward: mask rows must cover the new rows (%d) or every slot (%d)", n,
                              pos0 + n);
        for (int t = 0; t < n; t++) {
            if (pos[t] < 0 || pos[t] >= c->max_len)
                return tsr_errorf(TSR_ERR_ARG, "lm forward: position %d outside [0, %d)", pos[t], c->max_len);
            bool any = mask_ld == n && pos0 > 0;
            for (int j = 0; j < mask_ld && !any; j++) any = mask[(size_t)t * mask_ld + j] != 0;
            if (!any) return tsr_errorf(TSR_ERR_ARG, "lm forward: row %d of the mask sees no key", t);
        }
    }

    /* scratch: x, xb, xb2, q (n*C each), hb, hb2 (n*Hd), rope (n*D), att
     * (threads*max_len), then the matmuls' prepared activations (aligned) */
    int nth = tsr_omp_max_threads();
    /* batched sequences: the new K/V rows (n*kv each) before they go to their caches */
    size_t base = (size_t)n * (4 * (size_t)C + 2 * (size_t)Hd + (size_t)D) + (size_t)nth * (size_t)alen;
    if (rc) base += 2 * (size_t)n * (size_t)kv;
    base = (base + 15) / 16 * 16;
    /* masked: each row's visible slots (int); sized by max_len, not by
     * pos0, so a growing context does not reallocate every step */
    const size_t vld = (size_t)c->max_len + 1;
    size_t nidx = pos && !rc ? (size_t)n * vld : 0;
    base += (nidx + 15) / 16 * 16;
    base += ((size_t)n + 15) / 16 * 16; /* the last layer's row map (int) */
    size_t need = base + (mm_scratch(m, n) + sizeof(float) - 1) / sizeof(float);
    if (need > c->scratch_floats) {
        free(c->scratch);
        void *p = NULL;
        c->scratch = posix_memalign(&p, 64, need * sizeof(float)) == 0 ? p : NULL;
        c->scratch_floats = c->scratch ? need : 0;
        if (!c->scratch) return tsr_errorf(TSR_ERR_NOMEM, "lm forward: out of memory for activations");
    }
    void *mms = c->scratch + base;
    float *x = c->scratch, *xb = x + (size_t)n * C, *xb2 = xb + (size_t)n * C, *q = xb2 + (size_t)n * C;
    float *hb = q + (size_t)n * C, *hb2 = hb + (size_t)n * Hd, *cs = hb2 + (size_t)n * Hd;
    float *att_all = cs + (size_t)n * D;
    float *kbuf = att_all + (size_t)nth * (size_t)alen, *vbuf = kbuf + (rc ? (size_t)n * kv : 0);
    /* row t: count, then the slots it sees in increasing order */
    int *vis = (int *)(vbuf + (rc ? (size_t)n * kv : 0));
    int *rmap = vis + (nidx + 15) / 16 * 16;
    if (pos && !rc) {
        const int nk = pos0 + n;
        for (int t = 0; t < n; t++) {
            int *r = vis + (size_t)t * vld, cnt = 0;
            const uint8_t *mr = mask + (size_t)t * (size_t)mask_ld;
            if (mask_ld == n) {
                for (int j = 0; j < pos0; j++) r[1 + cnt++] = j;
                for (int j = 0; j < n; j++)
                    if (mr[j]) r[1 + cnt++] = pos0 + j;
            } else {
                for (int j = 0; j < nk; j++)
                    if (mr[j]) r[1 + cnt++] = j;
            }
            r[0] = cnt;
        }
    }

    /* RoPE angles: pos * freq, the frequencies computed once per forward
     * (for head sizes up to 256; the same values computed per row beyond) */
    const bool inter = cfg->rope_layout == TSR_LM_ROPE_INTERLEAVED, once = D <= 256;
    float freq_f[128];
    double freq_d[128];
    for (int i = 0; once && i < D; i += 2) {
        if (inter) freq_f[i / 2] = 1.0f / powf(cfg->rope_theta, (float)i / (float)D); /* as run.c, in f32 */
        else freq_d[i / 2] = pow((double)cfg->rope_theta, -(double)i / (double)D);   /* as tsr_rope_table, in double */
    }
    const float *ff = once && inter ? freq_f : NULL;
    const double *fd = once && !inter ? freq_d : NULL;
    if (n >= 8 && nth > 1) {
#pragma omp parallel for schedule(static)
        for (int t = 0; t < n; t++)
            embed_row(x + (size_t)t * C, m->tok_emb + (size_t)tokens[t] * C, C, cs + (size_t)t * D, pos ? pos[t] : pos0 + t,
                      D, cfg, ff, fd);
    } else {
        for (int t = 0; t < n; t++)
            embed_row(x + (size_t)t * C, m->tok_emb + (size_t)tokens[t] * C, C, cs + (size_t)t * D, pos ? pos[t] : pos0 + t,
                      D, cfg, ff, fd);
    }

    /* the per-row work (norms, RoPE, SwiGLU) is split over the threads
     * once there are a few rows: the same arithmetic per row either way */
    const bool par_rows = n >= 4 && nth > 1;
    /* forwards of several rows (batched steps, prefill chunks) take the
     * exponentials of attention and SwiGLU from the vector expf of the
     * kernels (tsr_lm_exp_sum, tsr_lm_silu_mul: expf's own bits); one-row
     * forwards keep the C library's expf, whose cost there was within the
     * noise of the measurement (docs/serve.md) */
    const bool vexp = n >= 4;
    /* rows whose logits are written; the last layer computes only these
     * past its K/V (nothing else reads a row's final state), gathered to
     * rows 0..nr-1, row k being the forward's row rmap[k]. A row's
     * arithmetic does not depend on the other rows, so its bits are the same. */
    int nr = n;
    bool mapped = false;
    for (int l = 0; l < cfg->n_layers; l++) {
        const tsr_lm_layer *L = &m->layers[l];
        float *kc = c->k + (size_t)l * c->max_len * kv, *vc = c->v + (size_t)l * c->max_len * kv;
        float *kn = rc ? kbuf : kc + (size_t)pos0 * kv, *vn = rc ? vbuf : vc + (size_t)pos0 * kv;

        for (int t = 0; t < n; t++) rmsnorm(xb + (size_t)t * C, x + (size_t)t * C, L->rms_att, C, cfg->norm_eps);
        {
            float *const o[3] = {q, kn, vn};
            const int ld[3] = {C, kv, kv};
            const tsr_lm_mat *const w[3] = {&L->wq, &L->wk, &L->wv};
            tsr_lm_matmul_multi(3, o, ld, xb, C, w, n, mms);
        }
        for (int t = 0; t < n; t++) {
            rope(q + (size_t)t * C, C, D, cs + (size_t)t * D, cfg->rope_layout);
            rope(kn + (size_t)t * kv, kv, D, cs + (size_t)t * D, cfg->rope_layout);
            if (rc) {
                size_t o = ((size_t)l * rc[t]->max_len + (size_t)pos[t]) * kv;
                memcpy(rc[t]->k + o, kn + (size_t)t * kv, sizeof(float) * kv);
                memcpy(rc[t]->v + o, vn + (size_t)t * kv, sizeof(float) * kv);
            }
        }

        if (l == cfg->n_layers - 1 && (!pos || rc)) {
            int k = 0;
            for (int t = 0; t < n; t++)
                if (logits && (want ? want[t] != 0 : !last_only || t == n - 1)) rmap[k++] = t;
            if (k < n) {
                for (int j = 0; j < k; j++)
                    if (rmap[j] != j) {
                        memcpy(q + (size_t)j * C, q + (size_t)rmap[j] * C, sizeof(float) * (size_t)C);
                        memcpy(x + (size_t)j * C, x + (size_t)rmap[j] * C, sizeof(float) * (size_t)C);
                    }
                nr = k;
                mapped = true;
            }
            if (nr == 0) break;
        }

        /* one (token, head) per iteration, keys 0..pos in order; batched
         * sequences: the keys each row actually reads */
        const int pairs = nr * H;
        double awork = (double)pairs * (pos0 + n) * D;
        if (rc) {
            awork = 0;
            for (int k = 0; k < nr; k++) awork += (double)H * (pos[mapped ? rmap[k] : k] + 1) * D;
        }
        /* with at least two rows per thread, a task is a whole row (its
         * heads one after another), so that a row's K/V is read by one core
         * (its prefetchers likely bring in the neighbouring heads' bytes of
         * each cache row too; split over the cores, each fetched them):
         * measured -12% on 8 rows at 2 threads (docs/serve.md). Fewer rows
         * (one sequence decoding) keep one (row, head) per task, so that
         * every thread has work. */
        const int chunk = nr >= 2 * nth ? H : 1;
#pragma omp parallel for schedule(dynamic, chunk) if (awork > 32768.0)
        for (int ph = 0; ph < pairs; ph++) {
            int k = ph / H, h = ph % H, t = mapped ? rmap[k] : k;
            float *att = att_all + (size_t)tsr_omp_thread_num() * alen;
            size_t kvo = (size_t)(h / group) * D;
            float *o = xb + (size_t)k * C + (size_t)h * D;
            const float *qh = q + (size_t)k * C + (size_t)h * D;
            if (rc) {
                const tsr_lm_cache *r = rc[t];
                const float *kt = r->k + (size_t)l * r->max_len * kv, *vt = r->v + (size_t)l * r->max_len * kv;
                if (vexp) tsr_lm_attend_vexp(o, qh, kt + kvo, vt + kvo, (size_t)kv, pos[t] + 1, D, att);
                else tsr_lm_attend(o, qh, kt + kvo, vt + kvo, (size_t)kv, pos[t] + 1, D, att);
            } else if (pos) {
                const int *r = vis + (size_t)t * vld;
                tsr_lm_attend_idx(o, qh, kc + kvo, vc + kvo, (size_t)kv, r + 1, r[0], D, att);
            } else {
                if (vexp) tsr_lm_attend_vexp(o, qh, kc + kvo, vc + kvo, (size_t)kv, pos0 + t + 1, D, att);
                else tsr_lm_attend(o, qh, kc + kvo, vc + kvo, (size_t)kv, pos0 + t + 1, D, att);
            }
        }

        tsr_lm_matmul(xb2, C, xb, C, &L->wo, nr, mms);
        for (size_t i = 0; i < (size_t)nr * C; i++) x[i] += xb2[i];

        for (int t = 0; t < nr; t++) rmsnorm(xb + (size_t)t * C, x + (size_t)t * C, L->rms_ffn, C, cfg->norm_eps);
        {
            float *const o[2] = {hb, hb2};
            const int ld[2] = {Hd, Hd};
            const tsr_lm_mat *const w[2] = {&L->w1, &L->w3};
            tsr_lm_matmul_multi(2, o, ld, xb, C, w, nr, mms);
        }
#pragma omp parallel for schedule(static) if (par_rows && nr >= 4)
        for (int t = 0; t < nr; t++) {
            if (vexp) {
                tsr_lm_silu_mul(hb + (size_t)t * Hd, hb2 + (size_t)t * Hd, Hd);
                continue;
            }
            for (size_t i = (size_t)t * Hd; i < (size_t)(t + 1) * Hd; i++) {
                float g = hb[i];
                hb[i] = g * (1.0f / (1.0f + expf(-g))) * hb2[i];
            }
        }
        tsr_lm_matmul(xb2, C, hb, Hd, &L->w2, nr, mms);
        for (size_t i = 0; i < (size_t)nr * C; i++) x[i] += xb2[i];
    }

    if (logits) {
        /* the selected rows, normed into consecutive rows of xb */
        int k = 0;
        float *normed = hidden ? logits : xb;
        for (int t = 0; t < nr; t++)
            if (mapped || (want ? want[t] != 0 : !last_only || t == n - 1))
                rmsnorm(normed + (size_t)k++ * C, x + (size_t)t * C, m->rms_final, C, cfg->norm_eps);
        if (!hidden) tsr_lm_matmul(logits, V, xb, C, &m->wcls, k, mms);
    }
    return tsr_ok();
}

/* a one-token step (decode) runs on the team size its timing chose
 * (tsr_step_team: fewer threads when a busy core makes the full team wait
 * at its barriers); every other forward on the full team */
static tsr_status forward(const tsr_lm_model *m, tsr_lm_cache *c, const int *tokens, int n, int pos0,
                          const int *pos, const uint8_t *mask, int mask_ld, float *logits, bool last_only,
                          tsr_lm_cache *const *rc, const uint8_t *want, bool hidden) {
    if (n != 1) return forward_run(m, c, tokens, n, pos0, pos, mask, mask_ld, logits, last_only, rc, want, hidden);
    tsr_step_team team;
    tsr_step_team_begin(&team);
    tsr_status st = forward_run(m, c, tokens, n, pos0, pos, mask, mask_ld, logits, last_only, rc, want, hidden);
    tsr_step_team_end(&team);
    return st;
}

tsr_status tsr_lm_forward(const tsr_lm_model *m, tsr_lm_cache *c, const int *tokens, int n, int pos0,
                          float *logits) {
    return forward(m, c, tokens, n, pos0, NULL, NULL, 0, logits, false, NULL, NULL, false);
}

tsr_status tsr_lm_forward_last(const tsr_lm_model *m, tsr_lm_cache *c, const int *tokens, int n, int pos0,
                               float *logits) {
    return forward(m, c, tokens, n, pos0, NULL, NULL, 0, logits, true, NULL, NULL, false);
}

tsr_status tsr_lm_forward_masked(const tsr_lm_model *m, tsr_lm_cache *c, const int *tokens, int n, int n_ctx,
                                 const int *pos, const uint8_t *mask, int mask_ld, float *logits) {
    if (!pos || !mask) return tsr_errorf(TSR_ERR_ARG, "lm forward: masked forward needs positions and a mask");
    return forward(m, c, tokens, n, n_ctx, pos, mask, mask_ld, logits, false, NULL, NULL, false);
}

tsr_status tsr_lm_forward_masked_hidden(const tsr_lm_model *m, tsr_lm_cache *c, const int *tokens, int n, int n_ctx,
                                        const int *pos, const uint8_t *mask, int mask_ld, float *hidden) {
    if (!pos || !mask || !hidden)
        return tsr_errorf(TSR_ERR_ARG, "lm forward: masked forward needs positions, a mask and an output");
    return forward(m, c, tokens, n, n_ctx, pos, mask, mask_ld, hidden, false, NULL, NULL, true);
}

tsr_status tsr_lm_forward_batch(const tsr_lm_model *m, tsr_lm_cache *ws, tsr_lm_cache *const *caches,
                                const int *tokens, const int *pos, int n, const uint8_t *want, float *logits) {
    if (n > 0 && (!caches || !pos)) return tsr_errorf(TSR_ERR_ARG, "lm forward: batched forward needs caches and positions");
    return forward(m, ws, tokens, n, 0, pos, NULL, 0, logits, false, caches, want, false);
}

tsr_status tsr_lm_cache_compact(tsr_lm_cache *c, int n_ctx, const int *keep, int n_keep) {
    if (n_ctx < 0 || n_keep < 0 || n_ctx > c->max_len - n_keep)
        return tsr_errorf(TSR_ERR_ARG, "lm cache compact: slots %d..%d outside the cache", n_ctx, n_ctx + n_keep);
    for (int j = 0; j < n_keep; j++)
        if (keep[j] < j || (j > 0 && keep[j] <= keep[j - 1]) || keep[j] >= c->max_len - n_ctx)
            return tsr_errorf(TSR_ERR_ARG, "lm cache compact: kept rows must increase and lie in the cache");
    const size_t kv = (size_t)c->kv_dim;
    for (int l = 0; l < c->n_layers; l++) {
        float *kc = c->k + ((size_t)l * c->max_len + (size_t)n_ctx) * kv;
        float *vc = c->v + ((size_t)l * c->max_len + (size_t)n_ctx) * kv;
        for (int j = 0; j < n_keep; j++) {
            if (keep[j] == j) continue;
            /* keep[j] > j: a forward move never overwrites a row still to be read */
            memcpy(kc + (size_t)j * kv, kc + (size_t)keep[j] * kv, sizeof(float) * kv);
            memcpy(vc + (size_t)j * kv, vc + (size_t)keep[j] * kv, sizeof(float) * kv);
        }
    }
    return tsr_ok();
}
