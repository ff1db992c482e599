/* tessera apt: the prompting loop, mask upscaling, post-processing and
 * binary metrics of APT (include/tessera/apt.h). The loop follows the
 * official point_model ("Four"): points enter one at a time and every
 * decoder pass is fed the previous pass's low-resolution logits. */
#include "tessera/apt.h"

#include "tessera/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void tsr_apt_begin(tsr_apt_state *s, const tsr_sam *m, const uint8_t *rgb, int h, int w) {
    memset(s, 0, sizeof *s);
    s->model = m;
    s->h = h;
    s->w = w;
    int S = m->cfg.img_size;
    tsr_ctx_init(&s->ctx, 64u << 20);
    s->ctx.grad_enabled = false;
    s->ctx.training = false;
    float *img = malloc(sizeof(float) * 3 * (size_t)S * (size_t)S);
    TSR_ASSERT(img);
    tsr_sam_preprocess(img, rgb, h, w, S, &s->scale);
    double t0 = tsr_time();
    /* the encoder's activations live in a scratch context; only the
     * embedding is kept for the prompt passes */
    tsr_ctx tmp;
    tsr_ctx_init(&tmp, 64u << 20);
    tmp.grad_enabled = false;
    tmp.training = false;
    tsr_tensor *x = tsr_wrap(&tmp, TSR_F32, TSR_DIMS(1, 3, S, S), img);
    tsr_tensor *e = tsr_sam_encode(&tmp, m, x);
    s->emb = tsr_from_f32(&s->ctx, e->ndim, e->shape, tsr_f32(e));
    tsr_ctx_free(&tmp);
    free(img);
    s->encode_s = tsr_time() - t0;
}

void tsr_apt_end(tsr_apt_state *s) {
    tsr_ctx_free(&s->ctx);
    memset(s, 0, sizeof *s);
}

float tsr_apt_predict(tsr_apt_state *s, const float *x, const float *y, const int *label, int n,
                      const float *mask_in, float *lowres_out) {
    const tsr_sam *m = s->model;
    int L = 4 * m->grid;
    double t0 = tsr_time();
    tsr_ctx c;
    tsr_ctx_init(&c, 16u << 20);
    c.grad_enabled = false;
    c.training = false;
    tsr_sam_prompts pr = {.n = 1};
    if (n > 0) {
        pr.coords = tsr_new(&c, TSR_F32, TSR_DIMS(1, n, 2));
        pr.labels = tsr_new(&c, TSR_I32, TSR_DIMS(1, n));
        for (int i = 0; i < n; i++) {
            /* ResizeLongestSide.apply_coords: scale the pixel coordinates */
            tsr_f32(pr.coords)[2 * i] = x[i] * s->scale;
            tsr_f32(pr.coords)[2 * i + 1] = y[i] * s->scale;
            tsr_i32(pr.labels)[i] = label[i];
        }
    }
    if (mask_in) pr.mask_in = tsr_from_f32(&c, TSR_DIMS(1, 1, L, L), mask_in);
    tsr_tensor *mk, *iou;
    tsr_sam_predict(&c, m, s->emb, &pr, false, &mk, &iou);
    memcpy(lowres_out, tsr_f32(mk), sizeof(float) * (size_t)L * (size_t)L);
    float q = tsr_f32(iou)[0];
    tsr_ctx_free(&c);
    s->decode_s += tsr_time() - t0;
    s->decoder_runs++;
    return q;
}

void tsr_apt_run(tsr_apt_state *s, const tsr_apt_points *p, int iters, float *lowres) {
    int L = 4 * s->model->grid;
    float *prev = malloc(sizeof(float) * (size_t)L * (size_t)L);
    TSR_ASSERT(prev);
    /* without feedback only the pass with every point counts */
    if (s->no_feedback && p->n > 0) tsr_apt_predict(s, p->x, p->y, p->label, p->n, NULL, lowres);
    for (int i = 0; i < p->n && !s->no_feedback; i++) {
        if (s->deadline > 0 && tsr_time() > s->deadline) {
            s->late = true;
            break;
        }
        int k = i + 1; /* the first k points */
        int runs = i == 0 ? iters : iters + 1;
        if (i == 0) tsr_apt_predict(s, p->x, p->y, p->label, k, NULL, lowres);
        for (int r = 0; r < runs; r++) {
            memcpy(prev, lowres, sizeof(float) * (size_t)L * (size_t)L);
            tsr_apt_predict(s, p->x, p->y, p->label, k, prev, lowres);
        }
    }
    if (p->n == 0) memset(lowres, 0, sizeof(float) * (size_t)L * (size_t)L);
    free(prev);
}

/* bilinear resize (align_corners=False, as F.interpolate) of a (sh,sw)
 * window of a (., src_stride) map to (dh,dw) */
static void resize_bilinear(float *dst, int dh, int dw, const float *src, int sh, int sw, int stride) {
    float ry = (float)sh / (float)dh, rx = (float)sw / (float)dw;
    for (int y = 0; y < dh; y++) {
        float fy = ((float)y + 0.5f) * ry - 0.5f;
        if (fy < 0) fy = 0;
        int y0 = (int)fy, y1 = y0 + 1 < sh ? y0 + 1 : sh - 1;
        float ly = fy - (float)y0;
        for (int x = 0; x < dw; x++) {
            float fx = ((float)x + 0.5f) * rx - 0.5f;
            if (fx < 0) fx = 0;
            int x0 = (int)fx, x1 = x0 + 1 < sw ? x0 + 1 : sw - 1;
            float lx = fx - (float)x0;
            const float *r0 = src + (size_t)y0 * stride, *r1 = src + (size_t)y1 * stride;
            dst[(size_t)y * dw + x] = (r0[x0] * (1 - lx) + r0[x1] * lx) * (1 - ly) + (r1[x0] * (1 - lx) + r1[x1] * lx) * ly;
        }
    }
}

void tsr_apt_upscale_logits(const tsr_apt_state *s, const float *lowres, float *out) {
    int S = s->model->cfg.img_size, L = 4 * s->model->grid;
    int nh = (int)floorf((float)s->h * s->scale + 0.5f), nw = (int)floorf((float)s->w * s->scale + 0.5f);
    if (nh > S) nh = S;
    if (nw > S) nw = S;
    float *full = malloc(sizeof(float) * (size_t)S * (size_t)S);
    TSR_ASSERT(full);
    resize_bilinear(full, S, S, lowres, L, L, L);
    resize_bilinear(out, s->h, s->w, full, nh, nw, S);
    free(full);
}

void tsr_apt_upscale(const tsr_apt_state *s, const float *lowres, uint8_t *mask) {
    float *out = malloc(sizeof(float) * (size_t)s->h * (size_t)s->w);
    TSR_ASSERT(out);
    tsr_apt_upscale_logits(s, lowres, out);
    for (int64_t i = 0; i < (int64_t)s->h * s->w; i++) mask[i] = out[i] > s->threshold;
    free(out);
}

/* ---------------------------------------------------------- morphology */

/* 3x3 dilation (grow) or erosion (shrink); outside pixels ignored */
static void morph3(uint8_t *dst, const uint8_t *src, int h, int w, bool grow) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t v = grow ? 0 : 1;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int yy = y + dy, xx = x + dx;
                    if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                    uint8_t s = src[(int64_t)yy * w + xx];
                    if (grow && s) v = 1;
                    if (!grow && !s) v = 0;
                }
            dst[(int64_t)y * w + x] = v;
        }
}

/* flip the 4-connected components of value v smaller than min_area */
static void remove_small(uint8_t *m, int h, int w, uint8_t v, int min_area) {
    int64_t N = (int64_t)h * w;
    uint8_t *seen = calloc((size_t)N, 1);
    int32_t *q = malloc(sizeof(int32_t) * (size_t)N);
    TSR_ASSERT(seen && q);
    const int dx[4] = {1, -1, 0, 0}, dy[4] = {0, 0, 1, -1};
    for (int64_t s = 0; s < N; s++) {
        if (m[s] != v || seen[s]) continue;
        int64_t head = 0, top = 0;
        q[top++] = (int32_t)s;
        seen[s] = 1;
        while (head < top) {
            int32_t p = q[head++];
            int py = p / w, px = p % w;
            for (int d = 0; d < 4; d++) {
                int yy = py + dy[d], xx = px + dx[d];
                if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                int64_t r = (int64_t)yy * w + xx;
                if (m[r] == v && !seen[r]) {
                    seen[r] = 1;
                    q[top++] = (int32_t)r;
                }
            }
        }
        if (top < min_area)
            for (int64_t i = 0; i < top; i++) m[q[i]] = (uint8_t)(1 - v);
    }
    free(seen);
    free(q);
}

void tsr_apt_postprocess(uint8_t *mask, int h, int w, int min_area) {
    int64_t N = (int64_t)h * w;
    uint8_t *t = malloc((size_t)N);
    TSR_ASSERT(t);
    for (int64_t i = 0; i < N; i++) mask[i] = mask[i] ? 1 : 0;
    morph3(t, mask, h, w, true);
    morph3(mask, t, h, w, true);
    morph3(t, mask, h, w, false);
    morph3(mask, t, h, w, false);
    free(t);
    if (min_area > 1) {
        remove_small(mask, h, w, 0, min_area); /* holes first, as the official order */
        remove_small(mask, h, w, 1, min_area);
    }
}

/* chessboard dilation of one line of n values (stride st) by dist: the
 * distance to the nearest set value from the left, then from the right */
static void dilate_line(uint8_t *out, const uint8_t *in, int n, int64_t st, int dist) {
    int d = INT32_MAX / 2;
    for (int i = 0; i < n; i++) {
        d = in[i * st] ? 0 : d + 1;
        out[i * st] = d <= dist;
    }
    d = INT32_MAX / 2;
    for (int i = n - 1; i >= 0; i--) {
        d = in[i * st] ? 0 : d + 1;
        if (d <= dist) out[i * st] = 1;
    }
}

void tsr_apt_gate(uint8_t *mask, const uint8_t *lab, int h, int w, int dist) {
    int64_t N = (int64_t)h * w;
    uint8_t *a = malloc((size_t)N), *b = malloc((size_t)N);
    TSR_ASSERT(a && b);
    for (int64_t i = 0; i < N; i++) a[i] = lab[i] == 1;
    /* a square is separable: rows, then columns */
    for (int y = 0; y < h; y++) dilate_line(b + (int64_t)y * w, a + (int64_t)y * w, w, 1, dist);
    for (int x = 0; x < w; x++) dilate_line(a + x, b + x, h, w, dist);
    for (int64_t i = 0; i < N; i++)
        if (!a[i]) mask[i] = 0;
    free(a);
    free(b);
}

/* ------------------------------------------------------------- metrics */

void tsr_apt_conf_add(tsr_apt_conf *c, const uint8_t *pred, const uint8_t *truth, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (truth[i] > 1) continue;
        bool p = pred[i] != 0, t = truth[i] != 0;
        if (p && t) c->tp++;
        else if (p) c->fp++;
        else if (t) c->fn++;
        else c->tn++;
    }
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

tsr_apt_metrics tsr_apt_metrics_of(const tsr_apt_conf *c) {
    double tp = (double)c->tp, fp = (double)c->fp, fn = (double)c->fn, tn = (double)c->tn;
    tsr_apt_metrics m;
    m.iou = ratio(tp, tp + fp + fn);
    m.miou = 0.5 * (m.iou + ratio(tn, tn + fp + fn));
    m.oa = ratio(tp + tn, tp + tn + fp + fn);
    m.precision = ratio(tp, tp + fp);
    m.recall = ratio(tp, tp + fn);
    m.f1 = ratio(2 * m.precision * m.recall, m.precision + m.recall);
    return m;
}

/* ------------------------------------------------- whole images, tiles */

/* rgb (h,w,3) averaged down by an integer factor f (f x f boxes) */
static uint8_t *shrink_rgb(const uint8_t *rgb, int h, int w, int f, int *oh, int *ow) {
    *oh = h / f;
    *ow = w / f;
    uint8_t *out = malloc((size_t)(*oh) * (*ow) * 3);
    TSR_ASSERT(out);
    for (int y = 0; y < *oh; y++)
        for (int x = 0; x < *ow; x++)
            for (int k = 0; k < 3; k++) {
                int v = 0;
                for (int dy = 0; dy < f; dy++)
                    for (int dx = 0; dx < f; dx++) v += rgb[((int64_t)(y * f + dy) * w + x * f + dx) * 3 + k];
                out[((int64_t)y * (*ow) + x) * 3 + k] = (uint8_t)((v + f * f / 2) / (f * f));
            }
    return out;
}

void tsr_apt_segment(const tsr_sam *m, const tsr_apt_seg_opts *o, const uint8_t *rgb, int h, int w,
                     const tsr_apt_points *p, uint8_t *mask, tsr_apt_seg_stats *stats) {
    memset(stats, 0, sizeof *stats);
    int f = o->shrink > 1 ? o->shrink : 1;
    /* never shrink a side below one pixel */
    if (f > h) f = h;
    if (f > w) f = w;
    if (f < 1) f = 1;
    int sh = h, sw = w;
    uint8_t *small = f > 1 ? shrink_rgb(rgb, h, w, f, &sh, &sw) : NULL;
    const uint8_t *src = small ? small : rgb;
    uint8_t *smask = calloc((size_t)sh * sw, 1);
    float *slog = o->logits ? malloc(sizeof(float) * (size_t)sh * sw) : NULL;
    TSR_ASSERT(smask && (!o->logits || slog));
    for (int64_t i = 0; slog && i < (int64_t)sh * sw; i++) slog[i] = TSR_APT_NO_LOGIT;
    int S = m->cfg.img_size, L = 4 * m->grid;
    float *low = malloc(sizeof(float) * (size_t)L * L);
    TSR_ASSERT(low);
    tsr_apt_points tp = {0};
    if (!o->tiled) {
        tsr_apt_state s;
        tsr_apt_begin(&s, m, src, sh, sw);
        s.threshold = o->threshold;
        s.no_feedback = o->no_feedback;
        s.deadline = o->deadline;
        tp.n = tp.cap = p->n;
        tp.x = malloc(sizeof(float) * (size_t)(p->n + 1));
        tp.y = malloc(sizeof(float) * (size_t)(p->n + 1));
        TSR_ASSERT(tp.x && tp.y);
        for (int i = 0; i < p->n; i++) {
            tp.x[i] = (p->x[i] + 0.5f) / (float)f - 0.5f;
            tp.y[i] = (p->y[i] + 0.5f) / (float)f - 0.5f;
        }
        tp.label = p->label;
        tp.group = p->group;
        tsr_apt_run(&s, &tp, o->iters, low);
        tsr_apt_upscale(&s, low, smask);
        if (slog) tsr_apt_upscale_logits(&s, low, slog);
        stats->encode_s += s.encode_s;
        stats->decode_s += s.decode_s;
        stats->decoder_runs += s.decoder_runs;
        stats->tiles = 1;
        stats->late = s.late;
        tsr_apt_end(&s);
        free(tp.x);
        free(tp.y);
    } else {
        /* S x S tiles at the model's resolution, the last ones flush with the edge */
        uint8_t *tile = malloc((size_t)S * S * 3), *tmask = malloc((size_t)S * S);
        float *tlog = slog ? malloc(sizeof(float) * (size_t)S * S) : NULL;
        tp.x = malloc(sizeof(float) * (size_t)(p->n + 1));
        tp.y = malloc(sizeof(float) * (size_t)(p->n + 1));
        tp.label = malloc(sizeof(int) * (size_t)(p->n + 1));
        tp.group = malloc(sizeof(int) * (size_t)(p->n + 1));
        TSR_ASSERT(tile && tmask && tp.x && tp.y && tp.label && tp.group);
        for (int ty = 0; ty < sh && !stats->late; ty += S)
            for (int tx = 0; tx < sw && !stats->late; tx += S) {
                int y0 = ty + S > sh ? (sh > S ? sh - S : 0) : ty, x0 = tx + S > sw ? (sw > S ? sw - S : 0) : tx;
                int th = sh < S ? sh : S, tw = sw < S ? sw : S;
                tp.n = 0;
                int npos = 0;
                for (int i = 0; i < p->n; i++) {
                    float x = (p->x[i] + 0.5f) / (float)f - 0.5f - (float)x0, y = (p->y[i] + 0.5f) / (float)f - 0.5f - (float)y0;
                    if (x < 0 || y < 0 || x >= (float)tw || y >= (float)th) continue;
                    tp.x[tp.n] = x;
                    tp.y[tp.n] = y;
                    tp.label[tp.n] = p->label[i];
                    tp.group[tp.n] = p->group[i];
                    npos += p->label[i] == 1;
                    tp.n++;
                }
                if (npos == 0) continue; /* nothing of the class prompted here */
                for (int y = 0; y < th; y++)
                    memcpy(tile + (size_t)y * tw * 3, src + ((size_t)(y0 + y) * sw + x0) * 3, (size_t)tw * 3);
                tsr_apt_state s;
                tsr_apt_begin(&s, m, tile, th, tw);
                s.threshold = o->threshold;
                s.no_feedback = o->no_feedback;
                s.deadline = o->deadline;
                tsr_apt_run(&s, &tp, o->iters, low);
                tsr_apt_upscale(&s, low, tmask);
                for (int y = 0; y < th; y++)
                    for (int x = 0; x < tw; x++)
                        smask[(size_t)(y0 + y) * sw + x0 + x] |= tmask[(size_t)y * tw + x];
                if (tlog) { /* overlapping tiles: the larger logit, as the mask takes the union */
                    tsr_apt_upscale_logits(&s, low, tlog);
                    for (int y = 0; y < th; y++)
                        for (int x = 0; x < tw; x++) {
                            float *d = &slog[(size_t)(y0 + y) * sw + x0 + x];
                            if (tlog[(size_t)y * tw + x] > *d) *d = tlog[(size_t)y * tw + x];
                        }
                }
                stats->encode_s += s.encode_s;
                stats->decode_s += s.decode_s;
                stats->decoder_runs += s.decoder_runs;
                stats->tiles++;
                stats->late = s.late;
                tsr_apt_end(&s);
            }
        free(tile);
        free(tmask);
        free(tlog);
        free(tp.x);
        free(tp.y);
        free(tp.label);
        free(tp.group);
    }
    /* back to the image grid (nearest), then post-processing */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int yy = y / f < sh ? y / f : sh - 1, xx = x / f < sw ? x / f : sw - 1;
            mask[(size_t)y * w + x] = smask[(size_t)yy * sw + xx];
            if (slog) o->logits[(size_t)y * w + x] = slog[(size_t)yy * sw + xx];
        }
    if (o->gate_map) tsr_apt_gate(mask, o->gate_map, h, w, o->gate);
    if (o->postprocess) tsr_apt_postprocess(mask, h, w, o->min_area);
    free(smask);
    free(slog);
    free(small);
    free(low);
}
