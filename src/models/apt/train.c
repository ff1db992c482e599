/* tessera apt: training a small promptable segmenter from scratch on real
 * iSAID masks, SAM's interactive way (Kirillov et al. 2023, sec. 3 and
 * app. A "Training algorithm"): prompts sampled from the target (points,
 * boxes), a second round with a point on the error region and the first
 * round's low-res logits as the mask input, focal + dice losses (1 : 1, see below)
 * and an MSE loss on the IoU head. Targets are the class region of the
 * crop (what APT prompts for) or one instance (SAM's own task). With
 * `supervised` the prompts are off (one not-a-point token, no mask) and the
 * model learns the class region alone: the supervised baseline of the
 * same size (from scratch) or fine-tuned (from a promptable checkpoint).
 * Runs on the shared loop (src/train). */
#include "tessera/apt_train.h"

#include "tessera/apt_eval.h"
#include "tessera/isaid.h"
#include "tessera/ops_graph.h"
#include "tessera/ops.h"
#include "tessera/png.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

tsr_sam_cfg tsr_apt_small_cfg(void) {
    tsr_sam_cfg g = tsr_sam_cfg_mobile();
    g.img_size = 128;
    int dims[4] = {24, 48, 64, 96}, depths[4] = {1, 1, 2, 1}, heads[4] = {1, 2, 2, 3}, win[4] = {7, 7, 8, 8};
    memcpy(g.tv_dims, dims, sizeof dims);
    memcpy(g.tv_depths, depths, sizeof depths);
    memcpy(g.tv_heads, heads, sizeof heads);
    memcpy(g.tv_windows, win, sizeof win);
    g.dim = 64;
    g.mask_in_chans = 16;
    g.dec_heads = 4;
    g.dec_mlp = 256;
    g.iou_hidden = 64;
    return g;
}

/* the image's planes become the given w x h ones */
static void image_replace(tsr_apt_image *im, uint8_t *rgb, uint8_t *lab, uint32_t *inst, int w, int h) {
    free(im->rgb);
    free(im->lab);
    free(im->inst);
    im->rgb = rgb;
    im->lab = lab;
    im->inst = inst;
    im->w = w;
    im->h = h;
}

void tsr_apt_image_halve(tsr_apt_image *im) {
    int w = im->w / 2, h = im->h / 2;
    uint8_t *rgb = malloc((size_t)w * h * 3), *lab = malloc((size_t)w * h);
    uint32_t *inst = calloc((size_t)w * h, sizeof(uint32_t));
    TSR_ASSERT(rgb && lab && inst);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int64_t d = (int64_t)y * w + x, s[4];
            int n1 = 0, n255 = 0;
            for (int k = 0; k < 4; k++) {
                s[k] = (int64_t)(2 * y + k / 2) * im->w + 2 * x + k % 2;
                n1 += im->lab[s[k]] == 1;
                n255 += im->lab[s[k]] == 255;
                if (!inst[d]) inst[d] = im->inst[s[k]];
            }
            for (int ch = 0; ch < 3; ch++) {
                int v = 0;
                for (int k = 0; k < 4; k++) v += im->rgb[3 * s[k] + ch];
                rgb[3 * d + ch] = (uint8_t)((v + 2) / 4);
            }
            lab[d] = n1 >= 2 ? 1 : n255 == 4 ? 255 : 0;
            if (lab[d] != 1) inst[d] = 0;
        }
    image_replace(im, rgb, lab, inst, w, h);
}

tsr_status tsr_apt_image_crop(tsr_apt_image *im, const int region[4]) {
    int x0 = region[0], y0 = region[1], w = region[2], h = region[3];
    if (w < 1 || h < 1 || x0 < 0 || y0 < 0 || x0 > im->w - w || y0 > im->h - h)
        return tsr_errorf(TSR_ERR_ARG, "region %d,%d,%d,%d is not inside the %d x %d image %s", x0, y0, w, h, im->w, im->h,
                          im->name);
    uint8_t *rgb = malloc((size_t)w * h * 3), *lab = malloc((size_t)w * h);
    uint32_t *inst = malloc(sizeof(uint32_t) * (size_t)w * h);
    TSR_ASSERT(rgb && lab && inst);
    for (int y = 0; y < h; y++) {
        size_t s = (size_t)(y0 + y) * im->w + x0, d = (size_t)y * w;
        memcpy(rgb + 3 * d, im->rgb + 3 * s, 3 * (size_t)w);
        memcpy(lab + d, im->lab + s, (size_t)w);
        memcpy(inst + d, im->inst + s, sizeof(uint32_t) * (size_t)w);
    }
    image_replace(im, rgb, lab, inst, w, h);
    return tsr_ok();
}

void tsr_apt_image_free(tsr_apt_image *im) {
    free(im->rgb);
    free(im->lab);
    free(im->inst);
    memset(im, 0, sizeof *im);
}

tsr_status tsr_apt_rgb_read(const char *dir, const char *name, uint8_t **px, int *w, int *h) {
    char p[1024];
    int ch;
    snprintf(p, sizeof p, "%s/%s.png", dir, name);
    tsr_status st = tsr_png_read(p, px, w, h, &ch);
    if (st.code) return st;
    if (ch != 3) {
        free(*px);
        *px = NULL;
        return tsr_errorf(TSR_ERR_FORMAT, "%s: expected an RGB image, it has %d channels", p, ch);
    }
    return tsr_ok();
}

tsr_status tsr_apt_image_load_isaid(tsr_apt_image *im, const char *dir, const char *name,
                                    const int *classes, int n_classes) {
    memset(im, 0, sizeof *im);
    char p[1024];
    int w, h, w2, h2;
    uint8_t *px;
    tsr_status st = tsr_apt_rgb_read(dir, name, &px, &w, &h);
    if (st.code) return st;
    uint8_t *cls;
    snprintf(p, sizeof p, "%s/%s_instance_color_RGB.png", dir, name);
    st = tsr_isaid_read_classes(p, &cls, &w2, &h2);
    if (st.code) {
        free(px);
        return st;
    }
    uint32_t *inst = NULL;
    int w3 = w, h3 = h;
    snprintf(p, sizeof p, "%s/%s_instance_id_RGB.png", dir, name);
    st = tsr_isaid_read_instances(p, &inst, &w3, &h3);
    if (st.code || w2 != w || h2 != h || w3 != w || h3 != h) {
        free(px);
        free(cls);
        free(inst);
        return st.code ? st : tsr_errorf(TSR_ERR_SHAPE, "%s: masks and image differ in size", name);
    }
    im->rgb = px;
    im->w = w;
    im->h = h;
    im->lab = malloc((size_t)w * (size_t)h);
    TSR_ASSERT(im->lab);
    for (int64_t i = 0; i < (int64_t)w * h; i++) {
        uint8_t v = 0;
        if (cls[i] == TSR_ISAID_IGNORE) v = 255;
        for (int k = 0; k < n_classes; k++)
            if (cls[i] == classes[k]) v = 1;
        im->lab[i] = v;
        if (v != 1) inst[i] = 0; /* instances of the target classes only */
    }
    im->inst = inst;
    free(cls);
    snprintf(im->name, sizeof im->name, "%s", name);
    return tsr_ok();
}

/* ------------------------------------------------------------ the step */

typedef struct {
    tsr_apt_train_opts o;
    tsr_sam model;
    tsr_apt_image imgs[TSR_APT_TRAIN_MAX_IMAGES];
    int n_imgs;
    float last_iou, last_focal, last_dice;
} run;

static float unit(tsr_rng *r) { return tsr_rng_uniform(r); }

/* colour jitter of one crop: saturation (0: grey), contrast, brightness,
 * then the channels permuted (a hue change that keeps grey grey). With one
 * training image its vehicles have one look (yellow buses); drawn per crop,
 * the jitter leaves the prompts as the only steady sign of which pixels
 * are the class. */
typedef struct {
    bool on;
    float sat, contrast, bright;
    int perm[3];
} jitter;

static jitter jitter_draw(tsr_rng *r, bool on) {
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    jitter j = {.on = on, .sat = 1, .contrast = 1, .bright = 0, .perm = {0, 1, 2}};
    if (!on) return j;
    j.sat = 1.5f * tsr_rng_uniform(r);
    j.contrast = 0.7f + 0.6f * tsr_rng_uniform(r);
    j.bright = 80.0f * tsr_rng_uniform(r) - 40.0f;
    memcpy(j.perm, perms[tsr_rng_below(r, 6)], sizeof j.perm);
    return j;
}

static void jitter_apply(const jitter *j, const uint8_t *in, float out[3]) {
    float g = 0.299f * in[0] + 0.587f * in[1] + 0.114f * in[2], v[3];
    for (int k = 0; k < 3; k++) {
        v[k] = g + j->sat * ((float)in[k] - g);
        v[k] = (v[k] - 128.0f) * j->contrast + 128.0f + j->bright;
        v[k] = v[k] < 0 ? 0 : v[k] > 255 ? 255 : v[k];
    }
    for (int k = 0; k < 3; k++) out[k] = v[j->perm[k]];
}

/* a crop (S x S) of the image at (x0,y0), z image pixels per crop pixel
 * (nearest neighbour; z = 1: the pixels themselves), flipped and
 * colour-jittered as asked */
static void crop(const tsr_apt_image *im, int x0, int y0, int S, float z, bool fx, bool fy, const jitter *jt, float *img,
                 uint8_t *lab, uint32_t *inst) {
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int sx = fx ? S - 1 - x : x, sy = fy ? S - 1 - y : y;
            int gx = z == 1.0f ? x0 + sx : x0 + (int)(((float)sx + 0.5f) * z),
                gy = z == 1.0f ? y0 + sy : y0 + (int)(((float)sy + 0.5f) * z);
            bool in = gx < im->w && gy < im->h;
            int64_t s = (int64_t)gy * im->w + gx, d = (int64_t)y * S + x;
            float px[3] = {0, 0, 0};
            if (in && jt->on) jitter_apply(jt, im->rgb + 3 * s, px);
            else if (in)
                for (int k = 0; k < 3; k++) px[k] = im->rgb[3 * s + k];
            for (int k = 0; k < 3; k++)
                img[(int64_t)k * S * S + d] = in ? (px[k] - tsr_sam_pixel_mean[k]) / tsr_sam_pixel_std[k] : 0.0f;
            lab[d] = in ? im->lab[s] : 0;
            inst[d] = in ? im->inst[s] : 0;
        }
}

/* a random pixel with m[i] == v; false if none */
static bool pick(tsr_rng *r, const uint8_t *m, int64_t n, uint8_t v, int *x, int *y, int S) {
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; i++) cnt += m[i] == v;
    if (!cnt) return false;
    int64_t k = (int64_t)tsr_rng_below(r, (uint32_t)cnt);
    for (int64_t i = 0; i < n; i++)
        if (m[i] == v && k-- == 0) {
            *x = (int)(i % S);
            *y = (int)(i / S);
            return true;
        }
    return false;
}

/* SAM weighs focal 20 : dice 1 (with torchvision's alpha 0.25 for the
 * positives). The first runs of that weighting here collapsed every mask
 * to empty, but they were made with the faulty initialisation (docs/apt.md);
 * the weighting is a flag (focal_weight, focal_alpha) and chosen on a
 * validation region of the training image. */
/* focal (alpha, gamma 2; Lin et al. 2017) + dice losses of logits x
 * against target y (same shape), built from autograd ops */
tsr_tensor *tsr_apt_mask_loss(tsr_ctx *c, tsr_tensor *x, tsr_tensor *y, float alpha, float fw, float *focal_out,
                              float *dice_out) {
    tsr_tensor *p = tsr_sigmoid(c, x);
    tsr_tensor *one_m_y = tsr_add_scalar(c, tsr_scale(c, y, -1.0f), 1.0f);
    tsr_tensor *ce = tsr_add(c, tsr_mul(c, y, tsr_neg_logsigmoid(c, x)),
                             tsr_mul(c, one_m_y, tsr_neg_logsigmoid(c, tsr_scale(c, x, -1.0f))));
    tsr_tensor *pt = tsr_add(c, tsr_mul(c, p, y), tsr_mul(c, tsr_add_scalar(c, tsr_scale(c, p, -1.0f), 1.0f), one_m_y));
    tsr_tensor *mod = tsr_add_scalar(c, tsr_scale(c, pt, -1.0f), 1.0f);
    tsr_tensor *fl = tsr_mul(c, ce, tsr_mul(c, mod, mod));
    tsr_tensor *focal;
    if (alpha == 0.5f) focal = tsr_scale(c, tsr_mean_all(c, fl), 0.5f);
    else /* alpha_t = alpha y + (1 - alpha)(1 - y) */
        focal = tsr_mean_all(c, tsr_mul(c, fl, tsr_add_scalar(c, tsr_scale(c, y, 2.0f * alpha - 1.0f), 1.0f - alpha)));
    tsr_tensor *inter = tsr_sum_all(c, tsr_mul(c, p, y));
    tsr_tensor *den = tsr_add_scalar(c, tsr_add(c, tsr_sum_all(c, p), tsr_sum_all(c, y)), 1.0f);
    tsr_tensor *dice = tsr_add_scalar(c, tsr_scale(c, tsr_div(c, tsr_add_scalar(c, tsr_scale(c, inter, 2.0f), 1.0f), den), -1.0f), 1.0f);
    *focal_out = tsr_f32(focal)[0];
    *dice_out = tsr_f32(dice)[0];
    return tsr_add(c, tsr_scale(c, focal, fw), dice);
}

/* one prompted pass for crop b: returns loss; lowres_out (L*L) gets the
 * logits, *iou_true the IoU of the thresholded prediction */
static tsr_tensor *round_loss(tsr_ctx *c, run *r, tsr_tensor *emb, const int *px, const int *py,
                              const int *pl, int np, const float *box, const float *mask_in,
                              tsr_tensor *target, float *lowres_out, uint8_t *pred_out) {
    const tsr_sam *m = &r->model;
    int S = m->cfg.img_size, L = 4 * m->grid;
    tsr_sam_prompts pr = {.n = 1};
    if (np > 0) {
        pr.coords = tsr_new(c, TSR_F32, TSR_DIMS(1, np, 2));
        pr.labels = tsr_new(c, TSR_I32, TSR_DIMS(1, np));
        for (int i = 0; i < np; i++) {
            tsr_f32(pr.coords)[2 * i] = (float)px[i];
            tsr_f32(pr.coords)[2 * i + 1] = (float)py[i];
            tsr_i32(pr.labels)[i] = pl[i];
        }
    }
    if (box) pr.boxes = tsr_from_f32(c, TSR_DIMS(1, 4), box);
    if (mask_in) pr.mask_in = tsr_from_f32(c, TSR_DIMS(1, 1, L, L), mask_in);
    tsr_tensor *mk, *iou;
    tsr_sam_predict(c, m, emb, &pr, false, &mk, &iou);
    memcpy(lowres_out, tsr_f32(mk), sizeof(float) * (size_t)L * L);
    tsr_tensor *up = tsr_upsample_bilinear(c, mk, S, S, false);
    int64_t inter = 0, uni = 0;
    for (int64_t i = 0; i < (int64_t)S * S; i++) {
        bool p = tsr_f32(up)[i] > 0, t = tsr_f32(target)[i] > 0.5f;
        pred_out[i] = p;
        inter += p && t;
        uni += p || t;
    }
    float iou_true = uni ? (float)inter / (float)uni : 1.0f;
    float fo, di;
    tsr_tensor *loss = tsr_apt_mask_loss(c, up, target, r->o.focal_alpha, r->o.focal_weight, &fo, &di);
    tsr_tensor *want = tsr_from_f32(c, TSR_DIMS(1, 1), &iou_true);
    loss = tsr_add(c, loss, tsr_mse(c, iou, want));
    r->last_iou += iou_true;
    r->last_focal += fo;
    r->last_dice += di;
    return loss;
}

static tsr_status step(void *ud, tsr_ctx *c, const int32_t *ids, int64_t n, float *loss_out) {
    (void)ids;
    (void)n;
    run *r = ud;
    const tsr_apt_train_opts *o = &r->o;
    const tsr_sam *m = &r->model;
    int S = m->cfg.img_size, L = 4 * m->grid, B = o->batch;
    int64_t SS = (int64_t)S * S;
    float *img = calloc(3 * (size_t)SS * (size_t)B, sizeof(float));
    uint8_t *lab = malloc((size_t)SS * (size_t)B), *pred = malloc((size_t)SS);
    uint32_t *inst = malloc(sizeof(uint32_t) * (size_t)SS * (size_t)B);
    float *low = malloc(sizeof(float) * (size_t)L * L);
    bool hard[64] = {false};
    TSR_ASSERT(img && lab && pred && inst && low && B <= 64);
    for (int b = 0; b < B; b++) {
        /* the image: one of the training images, uniformly (no draw with one image,
         * so single-image runs draw the random numbers they always did), or with
         * dota_share >= 0 a DOTA-labelled one with that probability */
        int which = 0;
        if (r->n_imgs > 1 && o->dota_share >= 0)
            which = unit(&c->rng) < o->dota_share ? 1 + (int)tsr_rng_below(&c->rng, (uint32_t)(r->n_imgs - 1)) : 0;
        else if (r->n_imgs > 1)
            which = (int)tsr_rng_below(&c->rng, (uint32_t)r->n_imgs);
        const tsr_apt_image *im = &r->imgs[which];
        /* a hard negative: the crop drawn anywhere (often without the class),
         * positive points off the class */
        hard[b] = o->hard_negatives > 0 && !o->supervised && unit(&c->rng) < o->hard_negatives;
        /* a crop with some of the class when one can be found */
        for (int tries = 0; tries < 8; tries++) {
            /* scale jitter: 1/2 to 2 image pixels per crop pixel, log-uniform */
            float z = o->scale_jitter ? exp2f(2.0f * unit(&c->rng) - 1.0f) : 1.0f;
            int win = z == 1.0f ? S : (int)ceilf((float)S * z);
            int x0 = im->w > win ? (int)tsr_rng_below(&c->rng, (uint32_t)(im->w - win + 1)) : 0;
            int y0 = im->h > win ? (int)tsr_rng_below(&c->rng, (uint32_t)(im->h - win + 1)) : 0;
            bool fx = unit(&c->rng) < 0.5f, fy = unit(&c->rng) < 0.5f;
            jitter jt = jitter_draw(&c->rng, o->color_jitter);
            crop(im, x0, y0, S, z, fx, fy, &jt, img + 3 * SS * b, lab + SS * b, inst + SS * b);
            int64_t cnt = 0;
            for (int64_t i = 0; i < SS; i++) cnt += lab[SS * b + i] == 1;
            if (cnt > SS / 50 || hard[b]) break;
        }
    }
    tsr_tensor *x = tsr_from_f32(c, TSR_DIMS(B, 3, S, S), img);
    tsr_tensor *emb = tsr_sam_encode(c, m, x);
    tsr_tensor *total = NULL;
    r->last_iou = r->last_focal = r->last_dice = 0;
    int rounds = 0;
    for (int b = 0; b < B; b++) {
        tsr_tensor *e = tsr_slice(c, emb, 0, b, b + 1);
        uint8_t *lb = lab + SS * b;
        uint32_t *in = inst + SS * b;
        tsr_tensor *target = tsr_new(c, TSR_F32, TSR_DIMS(1, 1, S, S));
        int px[64], py[64], pl[64], np = 0;
        float box[4], *boxp = NULL;
        bool instance = !o->supervised && !hard[b] && unit(&c->rng) < 0.3f;
        uint32_t key = 0;
        if (instance) { /* one instance: a jittered box or a point on it */
            int ix, iy;
            instance = pick(&c->rng, lb, SS, 1, &ix, &iy, S);
            if (instance) key = in[(int64_t)iy * S + ix];
            instance = instance && key != 0;
        }
        uint8_t *tm = malloc((size_t)SS);
        TSR_ASSERT(tm);
        for (int64_t i = 0; i < SS; i++) {
            tm[i] = instance ? in[i] == key : lb[i] == 1;
            tsr_f32(target)[i] = tm[i];
        }
        if (o->supervised) {
            px[0] = py[0] = 0;
            pl[0] = -1;
            np = 1;
        } else if (instance) {
            int x0 = S, y0 = S, x1 = -1, y1 = -1;
            for (int64_t i = 0; i < SS; i++)
                if (tm[i]) {
                    int xx = (int)(i % S), yy = (int)(i / S);
                    if (xx < x0) x0 = xx;
                    if (xx > x1) x1 = xx;
                    if (yy < y0) y0 = yy;
                    if (yy > y1) y1 = yy;
                }
            if (unit(&c->rng) < 0.5f) {
                float jw = 0.1f * (float)(x1 - x0 + 1), jh = 0.1f * (float)(y1 - y0 + 1);
                box[0] = (float)x0 + jw * (2 * unit(&c->rng) - 1);
                box[1] = (float)y0 + jh * (2 * unit(&c->rng) - 1);
                box[2] = (float)x1 + jw * (2 * unit(&c->rng) - 1);
                box[3] = (float)y1 + jh * (2 * unit(&c->rng) - 1);
                boxp = box;
            } else {
                pick(&c->rng, tm, SS, 1, &px[0], &py[0], S);
                pl[0] = 1;
                np = 1;
            }
        } else { /* the class region, APT's way: positives and negatives */
            int npos = 1 + (int)tsr_rng_below(&c->rng, 8), nneg = (int)tsr_rng_below(&c->rng, 9);
            /* a hard negative's positives fall on the background, as a coarse
             * label's do between vehicles; the target stays the class region */
            for (int i = 0; i < npos && np < 60; i++)
                if (hard[b] ? pick(&c->rng, lb, SS, 0, &px[np], &py[np], S) : pick(&c->rng, tm, SS, 1, &px[np], &py[np], S))
                    pl[np++] = 1;
            for (int i = 0; i < nneg && np < 60; i++)
                if (pick(&c->rng, tm, SS, 0, &px[np], &py[np], S)) pl[np++] = 0;
            if (np == 0) { /* empty crop: a not-a-point token */
                px[0] = py[0] = 0;
                pl[0] = -1;
                np = 1;
            }
        }
        tsr_tensor *l = round_loss(c, r, e, px, py, pl, np, boxp, NULL, target, low, pred);
        total = total ? tsr_add(c, total, l) : l;
        rounds++;
        if (!o->supervised) {
            /* round 2: a point on the larger error region, the previous logits as the mask input */
            uint8_t *err = tm; /* reuse: 1 false negative, 2 false positive, 0 right */
            int64_t nfn = 0, nfp = 0;
            for (int64_t i = 0; i < SS; i++) {
                uint8_t t = (uint8_t)(tsr_f32(target)[i] > 0.5f);
                err[i] = t && !pred[i] ? 1 : !t && pred[i] ? 2 : 0;
                nfn += err[i] == 1;
                nfp += err[i] == 2;
            }
            if (nfn + nfp > 0 && np < 63) {
                uint8_t v = nfn >= nfp ? 1 : 2;
                if (pl[0] == -1) np = 0;
                if (pick(&c->rng, err, SS, v, &px[np], &py[np], S)) {
                    pl[np] = v == 1 ? 1 : 0;
                    np++;
                    float *prev = malloc(sizeof(float) * (size_t)L * L);
                    TSR_ASSERT(prev);
                    memcpy(prev, low, sizeof(float) * (size_t)L * L);
                    l = round_loss(c, r, e, px, py, pl, np, boxp, prev, target, low, pred);
                    free(prev);
                    total = tsr_add(c, total, l);
                    rounds++;
                }
            }
        }
        free(tm);
    }
    total = tsr_scale(c, total, 1.0f / (float)rounds);
    r->last_iou /= (float)rounds;
    r->last_focal /= (float)rounds;
    r->last_dice /= (float)rounds;
    *loss_out = tsr_f32(total)[0];
    tsr_backward(c, total);
    free(img);
    free(lab);
    free(pred);
    free(inst);
    free(low);
    return tsr_ok();
}

static void step_metrics(void *ud, tsr_train_metrics *m) {
    run *r = ud;
    tsr_train_metric(m, "iou", r->last_iou);
    tsr_train_metric(m, "focal", r->last_focal);
    tsr_train_metric(m, "dice", r->last_dice);
}

static tsr_status save(void *ud, const char *path, const char *const *meta, const tsr_train_metrics *ev,
                       bool final) {
    (void)ev;
    (void)final;
    run *r = ud;
    return tsr_sam_save(&r->model, path, meta);
}

tsr_apt_train_opts tsr_apt_default_train_opts(void) {
    tsr_apt_train_opts o = {0};
    o.train = tsr_train_default_opts();
    o.train.steps = 600;
    o.train.lr = 2e-3f;
    o.train.min_lr = 1e-4f;
    o.train.warmup = 30;
    o.train.weight_decay = 0.01f;
    o.train.clip = 1.0f;
    o.train.log_every = 10;
    o.train.ckpt_every = 100;
    o.batch = 8;
    o.data_dir = "../shared/data/aerial/isaid/train/images";
    o.image = "P0005";
    o.cfg = tsr_apt_small_cfg();
    o.focal_weight = 1.0f;
    o.focal_alpha = 0.5f;
    o.dota_share = -1.0f;
    return o;
}

const int tsr_apt_vehicle_classes[2] = {8, 9}; /* large and small vehicle */

static void free_images(run *r) {
    for (int i = 0; i < r->n_imgs; i++) tsr_apt_image_free(&r->imgs[i]);
    r->n_imgs = 0;
}

/* the iSAID image (cut to the region) and the DOTA-labelled ones, each at
 * the training resolution (half the native pixels) */
static tsr_status load_images(run *r, const tsr_apt_train_opts *o) {
    tsr_status st = tsr_apt_image_load_isaid(&r->imgs[0], o->data_dir, o->image, tsr_apt_vehicle_classes, 2);
    if (st.code) return st;
    r->n_imgs = 1;
    if (o->region[2] > 0 && (st = tsr_apt_image_crop(&r->imgs[0], o->region)).code) return st;
    if (o->dota_images && o->dota_images[0]) {
        if (!o->dota_dir) return tsr_errorf(TSR_ERR_ARG, "DOTA training images %s given without their folder", o->dota_images);
        char names[1024];
        if (strlen(o->dota_images) >= sizeof names) return tsr_errorf(TSR_ERR_ARG, "the DOTA image list is too long");
        snprintf(names, sizeof names, "%s", o->dota_images);
        for (char *save = NULL, *nm = strtok_r(names, ",", &save); nm; nm = strtok_r(NULL, ",", &save)) {
            if (r->n_imgs == TSR_APT_TRAIN_MAX_IMAGES)
                return tsr_errorf(TSR_ERR_ARG, "at most %d training images", TSR_APT_TRAIN_MAX_IMAGES);
            if ((st = tsr_apt_image_load_dota(&r->imgs[r->n_imgs], o->dota_dir, nm)).code) return st;
            r->n_imgs++;
        }
    }
    for (int i = 0; i < r->n_imgs; i++) tsr_apt_image_halve(&r->imgs[i]);
    return tsr_ok();
}

tsr_status tsr_apt_train(const tsr_apt_train_opts *o, tsr_train_result *res) {
    if (res) memset(res, 0, sizeof *res); /* defined on an early error too (tsr_train_run) */
    run r = {.o = *o};
    if (!(o->hard_negatives >= 0 && o->hard_negatives <= 1))
        return tsr_errorf(TSR_ERR_ARG, "hard-negative share %g must be in [0,1]", (double)o->hard_negatives);
    if (!(o->dota_share <= 1) || (o->dota_share >= 0 && !(o->dota_images && o->dota_images[0])))
        return tsr_errorf(TSR_ERR_ARG, "a DOTA share (%g) needs --dota-images and must be at most 1", (double)o->dota_share);
    tsr_status st = load_images(&r, o);
    if (st.code) {
        free_images(&r);
        return st;
    }
    if (o->init) {
        st = tsr_sam_load(&r.model, o->init);
        if (!st.code && r.model.cfg.img_size != o->cfg.img_size)
            st = tsr_errorf(TSR_ERR_ARG, "%s: encoder input %d, training uses %d", o->init, r.model.cfg.img_size,
                            o->cfg.img_size);
    } else {
        st = tsr_sam_init(&r.model, &o->cfg);
        if (!st.code) tsr_sam_init_weights(&r.model, o->train.seed + 17);
    }
    if (st.code) {
        free_images(&r);
        return st;
    }
    char metabuf[4096], batch[16], sup[8], hardneg[32], dshare[32];
    const char *kv[128];
    tsr_sam_cfg_to_meta(&r.model.cfg, metabuf, sizeof metabuf, kv, 100);
    int k = 0;
    while (kv[k]) k++;
    snprintf(batch, sizeof batch, "%d", o->batch);
    snprintf(sup, sizeof sup, "%d", o->supervised ? 1 : 0);
    kv[k++] = "train.batch";
    kv[k++] = batch;
    kv[k++] = "apt.supervised";
    kv[k++] = sup;
    kv[k++] = "apt.image";
    kv[k++] = o->image;
    kv[k++] = "apt.pixel_scale";
    kv[k++] = "0.5";
    kv[k++] = "apt.init";
    kv[k++] = o->init ? o->init : "";
    char region[64], fw[32], fa[32];
    snprintf(region, sizeof region, "%d,%d,%d,%d", o->region[0], o->region[1], o->region[2], o->region[3]);
    snprintf(fw, sizeof fw, "%g", (double)o->focal_weight);
    snprintf(fa, sizeof fa, "%g", (double)o->focal_alpha);
    if (o->region[2] > 0) {
        kv[k++] = "apt.region";
        kv[k++] = region;
    }
    kv[k++] = "apt.focal_weight";
    kv[k++] = fw;
    kv[k++] = "apt.focal_alpha";
    kv[k++] = fa;
    kv[k++] = "apt.color_jitter";
    kv[k++] = o->color_jitter ? "1" : "0";
    /* the options below are written only when on: older checkpoints stay resumable */
    if (o->scale_jitter) {
        kv[k++] = "apt.scale_jitter";
        kv[k++] = "1";
    }
    if (r.n_imgs > 1) {
        kv[k++] = "apt.dota_images";
        kv[k++] = o->dota_images;
    }
    if (o->hard_negatives > 0) {
        snprintf(hardneg, sizeof hardneg, "%g", (double)o->hard_negatives);
        kv[k++] = "apt.hard_negatives";
        kv[k++] = hardneg;
    }
    if (r.n_imgs > 1 && o->dota_share >= 0) {
        snprintf(dshare, sizeof dshare, "%g", (double)o->dota_share);
        kv[k++] = "apt.dota_share";
        kv[k++] = dshare;
    }
    kv[k] = NULL;
    tsr_train_family f = {.name = "apt", .params = &r.model.params, .config = kv, .n_items = 0,
                          .batch = o->batch, .unit = "img", .arena_bytes = 256u << 20, .ud = &r,
                          .step = step, .save = save, .step_metrics = step_metrics};
    st = tsr_train_run(&f, &o->train, res);
    tsr_sam_free(&r.model);
    free_images(&r);
    return st;
}
