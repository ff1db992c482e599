/* tessera apt: the evaluation protocol on real masks (include/tessera/
 * apt_eval.h). Cropland ground truth is out of reach here, so a coarse
 * "land-cover product" is made from the true iSAID class mask the way a
 * 10 m product relates to sub-meter imagery: block-mode downsampling by a
 * factor, then label noise on the blocks at class boundaries. APT must
 * recover the fine mask from it; its figures are set against the coarse
 * product upsampled and against supervised models of the same size. */
#include "tessera/apt_eval.h"

#include "tessera/fileio.h"
#include "tessera/ops.h"
#include "tessera/png.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tsr_apt_coarse_product(uint8_t *out, const uint8_t *truth, int h, int w, int factor, float noise,
                            uint64_t seed) {
    int ch = (h + factor - 1) / factor, cw = (w + factor - 1) / factor;
    uint8_t *cg = malloc((size_t)ch * cw);
    TSR_ASSERT(cg);
    for (int by = 0; by < ch; by++)
        for (int bx = 0; bx < cw; bx++) {
            int64_t n1 = 0, n0 = 0;
            for (int y = by * factor; y < (by + 1) * factor && y < h; y++)
                for (int x = bx * factor; x < (bx + 1) * factor && x < w; x++) {
                    uint8_t v = truth[(int64_t)y * w + x];
                    n1 += v == 1;
                    n0 += v == 0;
                }
            cg[by * cw + bx] = n1 > n0 ? 1 : 0; /* the block's mode (ties: other) */
        }
    /* boundary noise: a block with a 4-neighbour of the other class flips
     * with probability `noise` */
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    uint8_t *noisy = malloc((size_t)ch * cw);
    TSR_ASSERT(noisy);
    memcpy(noisy, cg, (size_t)ch * cw);
    const int dx[4] = {1, -1, 0, 0}, dy[4] = {0, 0, 1, -1};
    for (int by = 0; by < ch; by++)
        for (int bx = 0; bx < cw; bx++) {
            bool edge = false;
            for (int d = 0; d < 4; d++) {
                int yy = by + dy[d], xx = bx + dx[d];
                if (yy >= 0 && yy < ch && xx >= 0 && xx < cw && cg[yy * cw + xx] != cg[by * cw + bx]) edge = true;
            }
            float u = tsr_rng_uniform(&r); /* drawn for every block: the stream does not depend on the map */
            if (edge && u < noise) noisy[by * cw + bx] = (uint8_t)(1 - cg[by * cw + bx]);
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) out[(int64_t)y * w + x] = noisy[(y / factor) * cw + x / factor];
    free(cg);
    free(noisy);
}

tsr_apt_eval_opts tsr_apt_default_eval_opts(void) {
    tsr_apt_eval_opts o = {0};
    o.dir = "../shared/data/aerial/isaid/val/images";
    o.images = "P0003,P0004";
    o.mode = TSR_APT_GRID;
    o.points = 11;
    o.iters = 3;
    o.factor = 16;
    o.noise = 0.2f;
    o.min_area = 200;
    o.seed = 1;
    /* the settings chosen on the validation scenes (docs/apt.md); the paper's
     * are gate -1 (off), prompts per image, threshold 0 */
    o.gate = 8;
    o.tile_prompts = true;
    o.threshold = -1.0f;
    return o;
}

/* the supervised model's mask: one not-a-point token, no mask input */
static void supervised_mask(const tsr_sam *m, const tsr_apt_seg_opts *so, const tsr_apt_image *im, uint8_t *mask) {
    /* tiles are walked directly: encoder + decoder once per tile */
    int sh = im->h / so->shrink, sw = im->w / so->shrink, T = m->cfg.img_size, L = 4 * m->grid;
    uint8_t *small = malloc((size_t)sh * sw * 3), *smask = calloc((size_t)sh * sw, 1), *tile = malloc((size_t)T * T * 3),
            *tmask = malloc((size_t)T * T);
    float *low = malloc(sizeof(float) * (size_t)L * L);
    TSR_ASSERT(small && smask && tile && tmask && low);
    int f = so->shrink;
    for (int y = 0; y < sh; y++)
        for (int x = 0; x < sw; x++)
            for (int k = 0; k < 3; k++) {
                int v = 0;
                for (int dy = 0; dy < f; dy++)
                    for (int dx = 0; dx < f; dx++) v += im->rgb[((int64_t)(y * f + dy) * im->w + x * f + dx) * 3 + k];
                small[((int64_t)y * sw + x) * 3 + k] = (uint8_t)((v + f * f / 2) / (f * f));
            }
    for (int ty = 0; ty < sh; ty += T)
        for (int tx = 0; tx < sw; tx += T) {
            int y0 = ty + T > sh ? (sh > T ? sh - T : 0) : ty, x0 = tx + T > sw ? (sw > T ? sw - T : 0) : tx;
            int th = sh < T ? sh : T, tw = sw < T ? sw : T;
            for (int y = 0; y < th; y++) memcpy(tile + (size_t)y * tw * 3, small + ((size_t)(y0 + y) * sw + x0) * 3, (size_t)tw * 3);
            tsr_apt_state s;
            tsr_apt_begin(&s, m, tile, th, tw);
            float px = 0, py = 0;
            int lab = -1;
            tsr_apt_predict(&s, &px, &py, &lab, 1, NULL, low);
            tsr_apt_upscale(&s, low, tmask);
            for (int y = 0; y < th; y++)
                for (int x = 0; x < tw; x++) smask[(size_t)(y0 + y) * sw + x0 + x] |= tmask[(size_t)y * tw + x];
            tsr_apt_end(&s);
        }
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            int yy = y / f < sh ? y / f : sh - 1, xx = x / f < sw ? x / f : sw - 1;
            mask[(size_t)y * im->w + x] = smask[(size_t)yy * sw + xx];
        }
    free(small);
    free(smask);
    free(tile);
    free(tmask);
    free(low);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int64_t object_index(const uint32_t *ids, int64_t n, uint32_t id) {
    const uint32_t *f = bsearch(&id, ids, (size_t)n, sizeof *ids, cmp_u32);
    return f ? f - ids : -1;
}

/* APT's mask of one image the way tsr_apt_segment makes it, its stages
 * kept: the segmenter's mask and logits, gated, post-processed (mask), and
 * where its missed pixels are added to bd */
static void segment_breakdown(const tsr_apt_eval_opts *o, const tsr_apt_seg_opts *so, const tsr_apt_image *im,
                              const uint8_t *coarse, const tsr_apt_points *p, uint8_t *mask, tsr_apt_seg_stats *ss,
                              tsr_apt_breakdown *bd) {
    int64_t N = (int64_t)im->w * im->h;
    float *logit = malloc(sizeof(float) * (size_t)N);
    uint8_t *raw = malloc((size_t)N), *gated = malloc((size_t)N), *within = malloc((size_t)N);
    TSR_ASSERT(logit && raw && gated && within);
    tsr_apt_seg_opts s1 = *so;
    s1.gate_map = NULL;
    s1.postprocess = false;
    s1.logits = logit;
    tsr_apt_segment(o->model, &s1, im->rgb, im->h, im->w, p, raw, ss);
    memcpy(gated, raw, (size_t)N);
    memset(within, 1, (size_t)N);
    if (so->gate_map) {
        tsr_apt_gate(gated, so->gate_map, im->h, im->w, so->gate);
        tsr_apt_gate(within, so->gate_map, im->h, im->w, so->gate);
    }
    memcpy(mask, gated, (size_t)N);
    if (so->postprocess) tsr_apt_postprocess(mask, im->h, im->w, so->min_area);
    /* the objects: sorted distinct instance keys of the class pixels */
    int64_t n = 0;
    uint32_t *ids = malloc(sizeof(uint32_t) * (size_t)N + 1);
    TSR_ASSERT(ids);
    for (int64_t i = 0; i < N; i++)
        if (im->lab[i] == 1 && im->inst[i]) ids[n++] = im->inst[i];
    qsort(ids, (size_t)n, sizeof *ids, cmp_u32);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (m == 0 || ids[m - 1] != ids[i]) ids[m++] = ids[i];
    int64_t *size = calloc((size_t)m + 1, sizeof(int64_t)), *hit = calloc((size_t)m + 1, sizeof(int64_t));
    uint8_t *prompted = calloc((size_t)m + 1, 1), *in_coarse = calloc((size_t)m + 1, 1);
    TSR_ASSERT(size && hit && prompted && in_coarse);
    for (int i = 0; i < p->n; i++) {
        int x = (int)lroundf(p->x[i]), y = (int)lroundf(p->y[i]);
        if (x < 0 || y < 0 || x >= im->w || y >= im->h) continue;
        int64_t k = (int64_t)y * im->w + x;
        if (p->label[i] != 1) {
            bd->points_neg++;
            bd->points_neg_on_class += im->lab[k] == 1;
            continue;
        }
        bd->points_pos++;
        bd->points_pos_on_class += im->lab[k] == 1;
        int64_t j = im->lab[k] == 1 ? object_index(ids, m, im->inst[k]) : -1;
        if (j >= 0) prompted[j] = 1;
    }
    float thr = so->threshold;
    for (int64_t i = 0; i < N; i++) {
        if (im->lab[i] > 1) continue;
        if (im->lab[i] == 0) {
            if (mask[i]) bd->fp++;
            if (mask[i] && !gated[i]) bd->fp_postprocess++;
            continue;
        }
        int64_t j = im->inst[i] ? object_index(ids, m, im->inst[i]) : -1;
        if (j >= 0) {
            size[j]++;
            hit[j] += mask[i] != 0;
            in_coarse[j] |= coarse[i] == 1;
        }
        bd->truth++;
        if (mask[i]) continue;
        bd->fn++;
        if (!within[i]) {
            bd->fn_beyond_gate++;
            bd->fn_beyond_gate_had += raw[i] != 0;
        } else if (raw[i]) bd->fn_postprocess++;
        else if (logit[i] == TSR_APT_NO_LOGIT) bd->fn_no_tile++;
        else if (j < 0 || !prompted[j]) bd->fn_unprompted++;
        else if (logit[i] >= thr - 1.0f) bd->fn_low_1++;
        else if (logit[i] >= thr - 3.0f) bd->fn_low_3++;
        else bd->fn_low_more++;
    }
    for (int64_t j = 0; j < m; j++) {
        bool found = 2 * hit[j] >= size[j] && size[j] > 0;
        bd->objects++;
        bd->objects_in_coarse += in_coarse[j];
        bd->objects_prompted += prompted[j];
        bd->objects_found += found;
        bd->objects_prompted_found += found && prompted[j];
    }
    free(ids);
    free(size);
    free(hit);
    free(prompted);
    free(in_coarse);
    free(logit);
    free(raw);
    free(gated);
    free(within);
}

tsr_status tsr_apt_evaluate(const tsr_apt_eval_opts *o, tsr_apt_eval_result *res) {
    memset(res, 0, sizeof *res);
    if (o->factor < 2 || o->factor > 256) return tsr_errorf(TSR_ERR_ARG, "coarse factor %d must be in 2..256", o->factor);
    if (!(o->noise >= 0 && o->noise <= 1)) return tsr_errorf(TSR_ERR_ARG, "boundary noise %g must be in [0,1]", (double)o->noise);
    if (o->region[2] > 0 && (o->region[2] < 32 || o->region[3] < 32))
        return tsr_errorf(TSR_ERR_ARG, "region %d x %d: at least 32 x 32 pixels are scored", o->region[2], o->region[3]);
    char names[512];
    snprintf(names, sizeof names, "%s", o->images);
    tsr_apt_conf conf_apt = {0}, conf_coarse = {0}, conf_sup = {0}, conf_ft = {0}, conf_sup_g = {0}, conf_ft_g = {0};
    tsr_apt_seg_opts so = {.shrink = o->shrink, .tiled = o->tiled, .iters = o->iters, .postprocess = true,
                           .min_area = o->min_area, .threshold = o->threshold, .no_feedback = o->no_feedback};
    tsr_status st = tsr_ok();
    for (char *save = NULL, *nm = strtok_r(names, ",", &save); nm && !st.code; nm = strtok_r(NULL, ",", &save)) {
        tsr_apt_image im;
        st = o->truth == TSR_APT_TRUTH_DOTA ? tsr_apt_image_load_dota(&im, o->dir, nm)
                                            : tsr_apt_image_load_isaid(&im, o->dir, nm, tsr_apt_vehicle_classes, 2);
        if (st.code) break;
        if (o->region[2] > 0 && (st = tsr_apt_image_crop(&im, o->region)).code) {
            tsr_apt_image_free(&im);
            break;
        }
        int64_t N = (int64_t)im.w * im.h;
        uint8_t *coarse = malloc((size_t)N), *mask = malloc((size_t)N);
        TSR_ASSERT(coarse && mask);
        tsr_apt_coarse_product(coarse, im.lab, im.h, im.w, o->factor, o->noise, o->seed + (uint64_t)res->images);
        so.gate_map = o->gate >= 0 ? coarse : NULL;
        so.gate = o->gate;
        tsr_apt_conf_add(&conf_coarse, coarse, im.lab, N);
        tsr_apt_conf one = {0};
        tsr_apt_points p;
        if (o->tile_prompts && o->tiled)
            st = tsr_apt_prompts_tiled(&p, coarse, im.rgb, im.h, im.w, o->model->cfg.img_size, o->shrink > 1 ? o->shrink : 1,
                                       o->mode, o->points, o->iters, o->seed);
        else
            st = tsr_apt_prompts(&p, coarse, im.rgb, im.h, im.w, o->mode, o->points, o->iters, o->seed);
        if (!st.code) {
            tsr_apt_seg_stats ss;
            if (o->breakdown) segment_breakdown(o, &so, &im, coarse, &p, mask, &ss, &res->breakdown);
            else tsr_apt_segment(o->model, &so, im.rgb, im.h, im.w, &p, mask, &ss);
            tsr_apt_conf_add(&conf_apt, mask, im.lab, N);
            tsr_apt_conf_add(&one, mask, im.lab, N);
            res->points += p.n;
            res->encode_s += ss.encode_s;
            res->decode_s += ss.decode_s;
            res->decoder_runs += ss.decoder_runs;
        }
        tsr_apt_points_free(&p);
        if (!st.code && res->images < TSR_APT_EVAL_MAX_IMAGES) {
            tsr_apt_eval_image *ei = &res->per_image[res->images];
            snprintf(ei->name, sizeof ei->name, "%s", nm);
            ei->apt = tsr_apt_metrics_of(&one);
            tsr_apt_conf c1 = {0};
            tsr_apt_conf_add(&c1, coarse, im.lab, N);
            ei->coarse = tsr_apt_metrics_of(&c1);
        }
        if (!st.code && o->supervised) {
            supervised_mask(o->supervised, &so, &im, mask);
            tsr_apt_conf_add(&conf_sup, mask, im.lab, N);
            if (so.gate_map) {
                tsr_apt_gate(mask, coarse, im.h, im.w, o->gate);
                tsr_apt_conf_add(&conf_sup_g, mask, im.lab, N);
            }
        }
        if (!st.code && o->finetuned) {
            supervised_mask(o->finetuned, &so, &im, mask);
            tsr_apt_conf_add(&conf_ft, mask, im.lab, N);
            if (so.gate_map) {
                tsr_apt_gate(mask, coarse, im.h, im.w, o->gate);
                tsr_apt_conf_add(&conf_ft_g, mask, im.lab, N);
            }
        }
        free(coarse);
        free(mask);
        tsr_apt_image_free(&im);
        if (!st.code) res->images++;
    }
    if (st.code) return st;
    res->apt = tsr_apt_metrics_of(&conf_apt);
    res->coarse = tsr_apt_metrics_of(&conf_coarse);
    res->supervised = tsr_apt_metrics_of(&conf_sup);
    res->finetuned = tsr_apt_metrics_of(&conf_ft);
    res->supervised_gated = tsr_apt_metrics_of(&conf_sup_g);
    res->finetuned_gated = tsr_apt_metrics_of(&conf_ft_g);
    res->have_supervised = o->supervised != NULL;
    res->have_finetuned = o->finetuned != NULL;
    return tsr_ok();
}

/* ------------------------------------- truth from DOTA oriented boxes */

const char *const tsr_apt_dota_vehicle_names[2] = {"large-vehicle", "small-vehicle"};

/* even-odd test of the point (px, py) against the quadrilateral c[8] */
static bool in_quad(const double *c, double px, double py) {
    bool in = false;
    for (int i = 0, j = 3; i < 4; j = i++) {
        double xi = c[2 * i], yi = c[2 * i + 1], xj = c[2 * j], yj = c[2 * j + 1];
        if ((yi > py) != (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi) in = !in;
    }
    return in;
}

tsr_status tsr_apt_dota_truth_parse(const char *buf, size_t len, const char *name, int w, int h, uint8_t *lab,
                                    uint32_t *inst, int *n_objects) {
    if (w < 1 || h < 1) return tsr_errorf(TSR_ERR_ARG, "%s: image size %dx%d", name, w, h);
    memset(lab, 0, (size_t)w * (size_t)h);
    if (inst) memset(inst, 0, sizeof(uint32_t) * (size_t)w * (size_t)h);
    int n = 0, ln = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *s = buf + pos, *nl = memchr(s, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - s) : len - pos;
        pos += ll + 1;
        ln++;
        char line[512];
        if (ll >= sizeof line || memchr(s, '\0', ll))
            return tsr_errorf(TSR_ERR_FORMAT, "%s:%d: line too long or not text", name, ln);
        memcpy(line, s, ll);
        line[ll] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r') p++;
        if (!*p || !strncmp(p, "imagesource:", 12) || !strncmp(p, "gsd:", 4)) continue;
        double c[8];
        int k = 0;
        for (; k < 8; k++) {
            char *e;
            c[k] = strtod(p, &e);
            if (e == p || !isfinite(c[k]) || fabs(c[k]) > 1e7) break;
            p = e;
        }
        char cls[64] = "";
        int used = 0, diff = 0;
        if (k == 8 && sscanf(p, " %63s%n", cls, &used) == 1) {
            p += used;
            char extra[8];
            int u2 = 0;
            if (sscanf(p, " %d%n", &diff, &u2) == 1) p += u2;
            if (sscanf(p, " %7s", extra) == 1 || diff < 0 || diff > 1) k = -1;
        } else
            k = -1;
        if (k != 8)
            return tsr_errorf(TSR_ERR_FORMAT, "%s:%d: expected 'x1 y1 x2 y2 x3 y3 x4 y4 class [difficult 0|1]'", name, ln);
        if (strcmp(cls, tsr_apt_dota_vehicle_names[0]) != 0 && strcmp(cls, tsr_apt_dota_vehicle_names[1]) != 0) continue;
        n++;
        double x0 = c[0], x1 = c[0], y0 = c[1], y1 = c[1];
        for (int i = 1; i < 4; i++) {
            x0 = fmin(x0, c[2 * i]), x1 = fmax(x1, c[2 * i]);
            y0 = fmin(y0, c[2 * i + 1]), y1 = fmax(y1, c[2 * i + 1]);
        }
        /* pixel (x, y) is inside when its centre is: rows and columns clipped to the image */
        int ya = (int)fmax(0, floor(y0)), yb = (int)fmin(h - 1, ceil(y1)), xa = (int)fmax(0, floor(x0)),
            xb = (int)fmin(w - 1, ceil(x1));
        for (int y = ya; y <= yb; y++)
            for (int x = xa; x <= xb; x++)
                if (in_quad(c, x + 0.5, y + 0.5)) {
                    lab[(int64_t)y * w + x] = 1;
                    if (inst) inst[(int64_t)y * w + x] = (uint32_t)n;
                }
    }
    if (n_objects) *n_objects = n;
    return tsr_ok();
}

tsr_status tsr_apt_image_load_dota(tsr_apt_image *im, const char *dir, const char *name) {
    memset(im, 0, sizeof *im);
    char p[1024];
    int w, h;
    uint8_t *px;
    tsr_status st = tsr_apt_rgb_read(dir, name, &px, &w, &h);
    if (st.code) return st;
    snprintf(p, sizeof p, "%s/%s.txt", dir, name);
    char *buf;
    size_t len;
    if ((st = tsr_read_file(p, &buf, &len)).code) {
        free(px);
        return st;
    }
    im->rgb = px;
    im->w = w;
    im->h = h;
    im->lab = malloc((size_t)w * (size_t)h);
    im->inst = malloc(sizeof(uint32_t) * (size_t)w * (size_t)h);
    TSR_ASSERT(im->lab && im->inst);
    int n = 0;
    st = tsr_apt_dota_truth_parse(buf, len, p, w, h, im->lab, im->inst, &n);
    free(buf);
    if (!st.code && n == 0) st = tsr_errorf(TSR_ERR_ARG, "%s: no large-vehicle or small-vehicle box", p);
    if (st.code) {
        tsr_apt_image_free(im);
        return st;
    }
    snprintf(im->name, sizeof im->name, "%s", name);
    return tsr_ok();
}
