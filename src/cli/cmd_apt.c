/* tessera CLI: `tessera apt segment|prompts|train|eval|bench` — APT,
 * segmentation of a land-cover class by prompting a SAM-family segmenter
 * with points from a coarse land-cover product (src/models/apt). Results
 * on stdout (JSON with --json), progress and errors on stderr. */
#include "cli/train_flags.h"
#include "tessera/cpu.h"

#include "tessera/apt.h"
#include "tessera/apt_eval.h"
#include "tessera/apt_train.h"
#include "tessera/png.h"
#include "tessera/raster.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SHIPPED "models/apt_small.safetensors"
#define MODEL_HINT "pass --model with a segmenter from 'tessera apt train' or one converted by tools/convert_sam.py"

static int load_model(const char *path, tsr_sam *m) {
    tsr_status st = tsr_sam_load(m, path);
    if (!st.code && (st = tsr_params_check_finite(&m->params, path)).code) tsr_sam_free(m);
    return st.code ? cli_fail(st, MODEL_HINT) : CLI_OK;
}

/* how a model sees an image: trained here (pixel_scale < 1: shrunk, tiled)
 * or official (whole image resized) */
static tsr_apt_seg_opts seg_opts_for(const tsr_sam *m, int iters, int min_area) {
    tsr_apt_seg_opts so = {.shrink = 1, .tiled = false, .iters = iters, .postprocess = true, .min_area = min_area};
    if (m->pixel_scale > 0) {
        so.shrink = (int)lroundf(1.0f / m->pixel_scale);
        if (so.shrink < 1) so.shrink = 1;
        so.tiled = true;
    }
    return so;
}

/* --feedback on|off: the low-res logits fed back as the mask input (APT's loop) or not */
static int parse_feedback(const char *prog, const char *s, bool *no_feedback) {
    if (strcmp(s, "on") != 0 && strcmp(s, "off") != 0)
        return cli_usage_error(prog, "--feedback must be on or off (got '%s')", s);
    *no_feedback = strcmp(s, "off") == 0;
    return CLI_OK;
}

static int parse_mode(const char *prog, const char *s, int *mode) {
    *mode = tsr_apt_mode_parse(s);
    if (*mode < 0) return cli_usage_error(prog, "--mode must be grid, random or superpixel (got '%s')", s);
    return CLI_OK;
}

/* class codes -> the label APT prompts from: 1 the class, 255 no data, 0 other */
static int64_t to_label(uint8_t *lab, const uint8_t *cls, int64_t n, int cls_code, int nodata) {
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; i++) {
        lab[i] = cls[i] == cls_code ? 1 : (nodata >= 0 && cls[i] == nodata) ? 255 : 0;
        cnt += lab[i] == 1;
    }
    return cnt;
}

static void disc(uint8_t *px, int w, int h, int cx, int cy, int r, const uint8_t col[3]) {
    for (int y = cy - r; y <= cy + r; y++)
        for (int x = cx - r; x <= cx + r; x++) {
            if (x < 0 || y < 0 || x >= w || y >= h) continue;
            int d2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
            if (d2 > r * r) continue;
            const uint8_t white[3] = {255, 255, 255};
            const uint8_t *c = d2 > (r - 1) * (r - 1) ? white : col;
            memcpy(px + ((size_t)y * w + x) * 3, c, 3);
        }
}

static void draw_points(uint8_t *px, int w, int h, const tsr_apt_points *p) {
    const uint8_t pos[3] = {20, 200, 60}, neg[3] = {230, 30, 60};
    int r = (w > h ? w : h) / 150 + 3;
    for (int i = 0; i < p->n; i++) disc(px, w, h, (int)p->x[i], (int)p->y[i], r, p->label[i] ? pos : neg);
}

/* ESA WorldCover legend colours; other codes grey */
static void class_colour(uint8_t code, uint8_t out[3]) {
    static const struct { uint8_t code, r, g, b; } wc[] = {
        {10, 0, 100, 0}, {20, 255, 187, 34}, {30, 255, 255, 76}, {40, 240, 150, 255}, {50, 250, 0, 0},
        {60, 180, 180, 180}, {70, 240, 240, 240}, {80, 0, 100, 200}, {90, 0, 150, 160}, {95, 0, 207, 117},
        {100, 250, 230, 160}, {0, 40, 40, 40}};
    for (size_t i = 0; i < sizeof wc / sizeof wc[0]; i++)
        if (wc[i].code == code) {
            out[0] = wc[i].r;
            out[1] = wc[i].g;
            out[2] = wc[i].b;
            return;
        }
    out[0] = out[1] = out[2] = (uint8_t)(64 + (code * 37) % 160);
}

static void print_points_json(const tsr_apt_points *p) {
    printf("\"points\": [");
    for (int i = 0; i < p->n; i++)
        printf("%s[%.1f, %.1f, %d, %d]", i ? ", " : "", (double)p->x[i], (double)p->y[i], p->label[i], p->group[i]);
    printf("]");
}

/* what segment does to an image, or to each window of a huge one */
typedef struct {
    const char *landcover;
    int cls, nodata, mode, points, iters, gate;
    bool per_tile;
    tsr_apt_seg_opts so;
} seg_job;

/* The land-cover map onto img's grid, prompts and segmentation into mask
 * (img->w * img->h). window: img is a window of a huge image, and a window
 * outside the map or without the class gets an empty mask and no points.
 * *n_class: the class pixels the image (window) holds. */
static tsr_status segment_raster(const tsr_sam *m, const seg_job *j, const tsr_raster *img, bool window, uint64_t seed,
                                 uint8_t *mask, tsr_apt_points *p, tsr_apt_seg_stats *ss, int64_t *n_class) {
    memset(p, 0, sizeof *p);
    *n_class = 0;
    const int64_t N = (int64_t)img->w * img->h;
    uint8_t *codes = NULL;
    tsr_status st = window ? tsr_raster_classes_on_grid_any(j->landcover, img, &codes)
                           : tsr_raster_classes_on_grid(j->landcover, img, &codes);
    if (st.code) return st;
    uint8_t *lab = malloc((size_t)N);
    if (!lab) {
        free(codes);
        return tsr_errorf(TSR_ERR_NOMEM, "out of memory");
    }
    *n_class = to_label(lab, codes, N, j->cls, j->nodata);
    free(codes);
    memset(mask, 0, (size_t)N);
    if (window && *n_class == 0) {
        free(lab);
        return tsr_ok();
    }
    tsr_apt_seg_opts so = j->so;
    if (j->per_tile && so.tiled)
        st = tsr_apt_prompts_tiled(p, lab, img->px, img->h, img->w, m->cfg.img_size, so.shrink, j->mode, j->points,
                                   j->iters, seed);
    else
        st = tsr_apt_prompts(p, lab, img->px, img->h, img->w, j->mode, j->points, j->iters, seed);
    if (st.code) {
        char msg[sizeof st.msg];
        snprintf(msg, sizeof msg, "%.100s: class %d: %.140s", j->landcover, j->cls, st.msg);
        snprintf(st.msg, sizeof st.msg, "%s", msg);
    } else {
        so.gate_map = j->gate >= 0 ? lab : NULL;
        tsr_apt_segment(m, &so, img->px, img->h, img->w, p, mask, ss);
    }
    free(lab);
    return st;
}

/* src's points moved by (dx, dy) appended to dst */
static void points_append(tsr_apt_points *dst, const tsr_apt_points *src, int dx, int dy) {
    if (dst->n + src->n > dst->cap) {
        int cap = dst->n + src->n + 64;
        dst->x = realloc(dst->x, sizeof(float) * (size_t)cap);
        dst->y = realloc(dst->y, sizeof(float) * (size_t)cap);
        dst->label = realloc(dst->label, sizeof(int) * (size_t)cap);
        dst->group = realloc(dst->group, sizeof(int) * (size_t)cap);
        TSR_ASSERT(dst->x && dst->y && dst->label && dst->group);
        dst->cap = cap;
    }
    for (int i = 0; i < src->n; i++, dst->n++) {
        dst->x[dst->n] = src->x[i] + (float)dx;
        dst->y[dst->n] = src->y[i] + (float)dy;
        dst->label[dst->n] = src->label[i];
        dst->group[dst->n] = src->group[i];
    }
}

static void stats_add(tsr_apt_seg_stats *a, const tsr_apt_seg_stats *b) {
    a->encode_s += b->encode_s;
    a->decode_s += b->decode_s;
    a->decoder_runs += b->decoder_runs;
    a->tiles += b->tiles;
}

#define WINDOW_DEFAULT 4096 /* the window side of an image above TSR_RASTER_MAX_PIXELS */

/* A raster too large to hold whole, segmented window by window (side x side,
 * the last row and column narrower) into a GeoTIFF mask written as it goes:
 * each window is read, brought onto the land-cover map, prompted (seed + its
 * index) and segmented on its own. The mask file appears only when every
 * window is done. */
static tsr_status segment_windows(const char *prog, const tsr_sam *m, const seg_job *j, const char *image,
                                  const tsr_raster *info, int side, uint64_t seed, bool quiet, const char *out,
                                  tsr_apt_points *all, tsr_apt_seg_stats *ss, int64_t *on, int *n_windows) {
    const int nx = (info->w + side - 1) / side, ny = (info->h + side - 1) / side;
    *n_windows = nx * ny;
    tsr_raster_writer *wr;
    tsr_status st = tsr_raster_writer_open(&wr, out, info->w, info->h, info);
    if (st.code) return st;
    uint8_t *mask = malloc((size_t)side * side);
    if (!mask) st = tsr_errorf(TSR_ERR_NOMEM, "out of memory");
    int64_t n_class = 0;
    for (int k = 0; !st.code && k < nx * ny; k++) {
        const int x0 = (k % nx) * side, y0 = (k / nx) * side;
        const int w = info->w - x0 < side ? info->w - x0 : side, h = info->h - y0 < side ? info->h - y0 : side;
        tsr_raster win;
        st = tsr_raster_read_rgb_window(image, x0, y0, w, h, &win);
        if (st.code) break;
        tsr_apt_points p;
        tsr_apt_seg_stats s = {0};
        int64_t nc = 0;
        st = segment_raster(m, j, &win, true, seed + (uint64_t)k, mask, &p, &s, &nc);
        if (!st.code) st = tsr_raster_writer_put(wr, x0, y0, w, h, mask);
        if (!st.code) {
            int64_t won = 0;
            for (int64_t i = 0; i < (int64_t)w * h; i++) won += mask[i] != 0;
            *on += won;
            n_class += nc;
            points_append(all, &p, x0, y0);
            stats_add(ss, &s);
            if (!quiet)
                fprintf(stderr, "%s: window %d/%d at %d,%d (%d x %d): %d points, %lld mask pixels\n", prog, k + 1,
                        nx * ny, x0, y0, w, h, p.n, (long long)won);
        }
        tsr_apt_points_free(&p);
        tsr_raster_free(&win);
    }
    free(mask);
    if (!st.code && n_class == 0)
        st = tsr_errorf(TSR_ERR_ARG, "%.100s: class %d: the land-cover class is absent from the area covered by the image",
                        j->landcover, j->cls);
    tsr_status sc = tsr_raster_writer_close(wr, !st.code);
    return st.code ? st : sc;
}

static bool ends_png(const char *path) {
    size_t n = strlen(path);
    return n >= 4 && strcasecmp(path + n - 4, ".png") == 0;
}

static int cmd_segment(const char *prog, int argc, char **argv) {
    /* gate, prompts per tile and threshold: the settings chosen on the validation scenes, as in eval */
    const tsr_apt_eval_opts dflt = tsr_apt_default_eval_opts();
    const char *image = NULL, *landcover = NULL, *out = NULL, *overlay = NULL, *mode_s = "grid", *model = SHIPPED,
               *feedback_s = "on", *per_s = dflt.tile_prompts ? "tile" : "image";
    bool no_feedback = false;
    int cls = 40, points = 11, iters = 3, min_area = 2000, nodata = 0, gate = dflt.gate, window = 0;
    float threshold = dflt.threshold;
    cli_common cm = {0, 1, false};
    const arg_spec specs[] = {
        {"image", ARG_STR, &image, "IMG", "image (.tif through GDAL, or .png)", NULL},
        {"landcover", ARG_STR, &landcover, "LC", "land-cover map (.tif, reprojected onto the image; or a .png on its grid)", NULL},
        {"class", ARG_INT, &cls, "C", "land-cover class code to segment (default 40, WorldCover cropland)", NULL},
        {"nodata", ARG_INT, &nodata, "V", "land-cover code meaning no data, never prompted (default 0; -1 none)", NULL},
        {"mode", ARG_STR, &mode_s, "M", "prompt mode: grid (default), random, superpixel", NULL},
        {"points", ARG_INT, &points, "N", "points per class and iteration (default 11)", NULL},
        {"iterations", ARG_INT, &iters, "K", "prompting iterations (default 3)", NULL},
        {"min-area", ARG_INT, &min_area, "PX", "post-processing: holes and objects below this many pixels go (default 2000)", NULL},
        {"threshold", ARG_FLOAT, &threshold, "T", "mask logit threshold, -100 to 100 (default -1; SAM's 0)", NULL},
        {"feedback", ARG_STR, &feedback_s, "on|off", "feed each pass's low-res logits to the next as the mask input (default on, APT's loop)", NULL},
        {"gate", ARG_INT, &gate, "PX", "keep the mask only within PX pixels of the land-cover class (default 8; -1: off, the paper's)", NULL},
        {"prompts-per", ARG_STR, &per_s, "WHERE", "draw prompts per 'tile' of a tiled model (default) or per 'image' (the paper's)", NULL},
        {"window", ARG_INT, &window, "PX", "segment a GDAL raster in windows of at most PX x PX pixels, each read, prompted and "
                                           "segmented on its own, into a GeoTIFF mask (default 0: only images above 64 Mpx, "
                                           "in windows of 4096; a tiled model's windows are whole tiles)", NULL},
        {"model", ARG_MODEL, &model, "PATH", "segmenter (default: the shipped " SHIPPED ")", NULL},
        {"out", ARG_STR, &out, "MASK", "mask to write (.tif with the image's georeferencing, or .png)", NULL},
        {"overlay", ARG_STR, &overlay, "PNG", "also write the image with the mask and the points drawn (not in windows)", NULL},
        CLI_COMMON_SEED(&cm), CLI_COMMON_THREADS(&cm), CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Segment a land-cover class on an image by prompting the segmenter with points drawn from the land-cover map.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    int mode;
    if (!image || !landcover || !out) return cli_usage_error(prog, "--image, --landcover and --out are required");
    if ((rc = parse_mode(prog, mode_s, &mode)) != CLI_OK) return rc;
    if ((rc = parse_feedback(prog, feedback_s, &no_feedback)) != CLI_OK) return rc;
    if (strcmp(per_s, "image") != 0 && strcmp(per_s, "tile") != 0)
        return cli_usage_error(prog, "--prompts-per must be image or tile (got '%s')", per_s);
    if ((rc = cli_check_int(prog, "class", cls, 0, 255)) || (rc = cli_check_int(prog, "nodata", nodata, -1, 255)) ||
        (rc = cli_check_int(prog, "points", points, 1, 1000)) || (rc = cli_check_int(prog, "iterations", iters, 1, 100)) ||
        (rc = cli_check_int(prog, "min-area", min_area, 0, 100000000)) || (rc = cli_check_int(prog, "gate", gate, -1, 100000)) ||
        (rc = cli_check_float(prog, "threshold", threshold, -100, 100)))
        return rc;
    if (window != 0 && (rc = cli_check_int(prog, "window", window, 256, 8192)) != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    size_t no = strlen(out);
    if (!(no > 4 && (!strcasecmp(out + no - 4, ".png") || !strcasecmp(out + no - 4, ".tif"))) &&
        !(no > 5 && !strcasecmp(out + no - 5, ".tiff")))
        return cli_usage_error(prog, "--out must end in .tif, .tiff or .png (got '%s')", out);
    if ((rc = cli_check_output(prog, "out", out, false)) != CLI_OK) return rc;
    if (overlay && (rc = cli_check_output(prog, "overlay", overlay, false)) != CLI_OK) return rc;
    if ((rc = cli_check_distinct_outputs(prog, "out", out, "overlay", overlay)) != CLI_OK) return rc;
    char buf[4096];
    model = cli_shipped_default(model, SHIPPED, buf, sizeof buf);
    tsr_sam m;
    if ((rc = load_model(model, &m)) != CLI_OK) return rc;
    seg_job job = {.landcover = landcover, .cls = cls, .nodata = nodata, .mode = mode, .points = points,
                   .iters = iters, .gate = gate, .per_tile = strcmp(per_s, "tile") == 0,
                   .so = seg_opts_for(&m, iters, min_area)};
    job.so.threshold = threshold;
    job.so.no_feedback = no_feedback;
    job.so.gate = gate;
    /* a GDAL raster above the whole-image limit (or wider than --window) goes window by window */
    tsr_raster img = {0};
    tsr_status st = tsr_ok();
    int side = 0;
    if (!ends_png(image)) {
        st = tsr_raster_probe(image, &img);
        if (!st.code && (window ? img.w > window || img.h > window : (int64_t)img.w * img.h > TSR_RASTER_MAX_PIXELS)) {
            side = window ? window : WINDOW_DEFAULT;
            const int tile = job.so.tiled ? m.cfg.img_size * job.so.shrink : 1;
            if (tile > 1) side = side / tile * tile > tile ? side / tile * tile : tile;
            if (ends_png(out) || overlay) {
                tsr_raster_free(&img);
                tsr_sam_free(&m);
                return cli_usage_error(prog, "%s is %d x %d pixels, segmented in windows of %d: give --out a .tif and "
                                             "no --overlay (they need the image whole)", image, img.w, img.h, side);
            }
        }
    }
    int64_t N = (int64_t)img.w * img.h, on = 0;
    int n_windows = 1;
    uint8_t *mask = NULL;
    tsr_apt_points p = {0};
    tsr_apt_seg_stats ss = {0};
    if (!st.code && side) {
        if (!cm.json) fprintf(stderr, "%s: %d x %d pixels, in windows of %d\n", prog, img.w, img.h, side);
        st = segment_windows(prog, &m, &job, image, &img, side, cm.seed, cm.json, out, &p, &ss, &on, &n_windows);
    } else if (!st.code) {
        tsr_raster_free(&img);
        st = tsr_raster_read_rgb(image, &img);
        N = (int64_t)img.w * img.h;
        if (!st.code && !(mask = malloc((size_t)N))) st = tsr_errorf(TSR_ERR_NOMEM, "out of memory");
        int64_t n_class;
        if (!st.code) st = segment_raster(&m, &job, &img, false, cm.seed, mask, &p, &ss, &n_class);
        if (!st.code && !cm.json)
            fprintf(stderr, "%s: %d points (%s), %s\n", prog, p.n, mode_s, job.so.tiled ? "tiled" : "whole image");
        if (!st.code) st = tsr_raster_write_mask(out, mask, img.w, img.h, &img);
        for (int64_t i = 0; !st.code && i < N; i++) on += mask[i] != 0;
    }
    if (!st.code && overlay) {
        uint8_t *ov = malloc((size_t)N * 3);
        if (!ov) st = tsr_errorf(TSR_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; ov && i < N; i++)
            for (int k = 0; k < 3; k++) {
                int v = img.px[3 * i + k];
                if (mask[i]) v = (v + (k == 2 ? 255 : k == 1 ? 140 : 0)) / 2;
                ov[3 * i + k] = (uint8_t)v;
            }
        if (ov) {
            draw_points(ov, img.w, img.h, &p);
            st = tsr_png_write(overlay, ov, img.w, img.h, 3);
            free(ov);
        }
    }
    if (!st.code) {
        if (cm.json) {
            printf("{\"width\": %d, \"height\": %d, \"mask_pixels\": %lld, \"fraction\": %.6f, \"tiles\": %d, "
                   "\"windows\": %d, \"encoder_s\": %.3f, \"decoder_s\": %.3f, \"decoder_runs\": %lld, "
                   "\"georeferenced\": %s, ",
                   img.w, img.h, (long long)on, (double)on / (double)N, ss.tiles, n_windows, ss.encode_s, ss.decode_s,
                   (long long)ss.decoder_runs, img.georef ? "true" : "false");
            print_points_json(&p);
            printf("}\n");
        } else {
            printf("%s: %lld of %lld pixels (%.2f%%), %d points, %d tiles, encoder %.2f s, decoder %.2f s (%lld runs)\n", out,
                   (long long)on, (long long)N, 100.0 * (double)on / (double)N, p.n, ss.tiles, ss.encode_s, ss.decode_s,
                   (long long)ss.decoder_runs);
        }
    }
    tsr_apt_points_free(&p);
    free(mask);
    tsr_raster_free(&img);
    tsr_sam_free(&m);
    return st.code ? cli_fail(st, NULL) : CLI_OK;
}

static int cmd_prompts(const char *prog, int argc, char **argv) {
    const char *image = NULL, *landcover = NULL, *out = NULL, *mode_s = "grid", *bbox_s = NULL;
    int cls = 40, points = 11, iters = 3, nodata = 0, max_side = 1024;
    cli_common cm = {0, 1, false};
    const arg_spec specs[] = {
        {"landcover", ARG_STR, &landcover, "LC", "land-cover map (.tif through GDAL, or .png)", NULL},
        {"image", ARG_STR, &image, "IMG", "draw on this image, the map brought onto its grid (default: the map itself)", NULL},
        {"class", ARG_INT, &cls, "C", "class code (default 40, WorldCover cropland)", NULL},
        {"nodata", ARG_INT, &nodata, "V", "code meaning no data (default 0; -1 none)", NULL},
        {"mode", ARG_STR, &mode_s, "M", "grid (default), random, superpixel", NULL},
        {"points", ARG_INT, &points, "N", "points per class and iteration (default 11)", NULL},
        {"iterations", ARG_INT, &iters, "K", "iterations (default 3)", NULL},
        {"bbox", ARG_STR, &bbox_s, "X0,Y0,X1,Y1", "window of the map in its CRS units (without --image)", NULL},
        {"max-side", ARG_INT, &max_side, "PX", "decimate the window to at most this side (mode resampling; default 1024)", NULL},
        {"out", ARG_STR, &out, "PNG", "picture of the points over the class map (or the image)", NULL},
        CLI_COMMON_SEED(&cm), CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Draw APT's point prompts from a land-cover map (no segmenter needed).", specs,
                        (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    int mode;
    if (!landcover || !out) return cli_usage_error(prog, "--landcover and --out are required");
    if ((rc = parse_mode(prog, mode_s, &mode)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "class", cls, 0, 255)) || (rc = cli_check_int(prog, "nodata", nodata, -1, 255)) ||
        (rc = cli_check_int(prog, "points", points, 1, 1000)) || (rc = cli_check_int(prog, "iterations", iters, 1, 100)) ||
        (rc = cli_check_int(prog, "max-side", max_side, 16, 8192)))
        return rc;
    double bbox[4];
    if (bbox_s && (sscanf(bbox_s, "%lf,%lf,%lf,%lf", &bbox[0], &bbox[1], &bbox[2], &bbox[3]) != 4 ||
                   !(bbox[2] > bbox[0] && bbox[3] > bbox[1])))
        return cli_usage_error(prog, "--bbox must be X0,Y0,X1,Y1 with X1 > X0 and Y1 > Y0 (got '%s')", bbox_s);
    if (bbox_s && image) return cli_usage_error(prog, "--bbox applies to the map alone, not with --image");
    if ((rc = cli_check_output(prog, "out", out, false)) != CLI_OK) return rc;
    tsr_raster base = {0};
    uint8_t *codes = NULL, *pic = NULL;
    tsr_status st;
    if (image) {
        st = tsr_raster_read_rgb(image, &base);
        if (!st.code) st = tsr_raster_classes_on_grid(landcover, &base, &codes);
    } else {
        st = tsr_raster_read_classes_window(landcover, bbox_s ? bbox : NULL, max_side, &base);
        if (!st.code) {
            codes = base.px;
            base.px = NULL;
        }
    }
    if (st.code) {
        tsr_raster_free(&base);
        return cli_fail(st, NULL);
    }
    int64_t N = (int64_t)base.w * base.h;
    uint8_t *lab = malloc((size_t)N);
    pic = malloc((size_t)N * 3);
    if (!lab || !pic) return cli_fail(tsr_errorf(TSR_ERR_NOMEM, "out of memory"), NULL);
    int64_t n_cls = to_label(lab, codes, N, cls, nodata);
    for (int64_t i = 0; i < N; i++) {
        if (image) {
            for (int k = 0; k < 3; k++) pic[3 * i + k] = base.px[3 * i + k];
            if (lab[i] == 1) pic[3 * i] = (uint8_t)((pic[3 * i] + 255) / 2);
        } else {
            class_colour(codes[i], pic + 3 * i);
        }
    }
    tsr_apt_points p = {0};
    st = tsr_apt_prompts(&p, lab, pic, base.h, base.w, mode, points, iters, cm.seed);
    if (st.code) {
        char msg[sizeof st.msg];
        snprintf(msg, sizeof msg, "%.100s: class %d: %.140s", landcover, cls, st.msg);
        snprintf(st.msg, sizeof st.msg, "%s", msg);
    } else {
        draw_points(pic, base.w, base.h, &p);
        st = tsr_png_write(out, pic, base.w, base.h, 3);
    }
    if (!st.code) {
        int npos = 0;
        for (int i = 0; i < p.n; i++) npos += p.label[i];
        if (cm.json) {
            printf("{\"width\": %d, \"height\": %d, \"class_pixels\": %lld, \"positive\": %d, \"negative\": %d, \"mode\": \"%s\", ",
                   base.w, base.h, (long long)n_cls, npos, p.n - npos, mode_s);
            print_points_json(&p);
            printf("}\n");
        } else {
            printf("%s: %d positive and %d negative points (%s) on a %d x %d map, class %d on %.2f%% of it\n", out, npos,
                   p.n - npos, mode_s, base.w, base.h, cls, 100.0 * (double)n_cls / (double)N);
        }
    }
    tsr_apt_points_free(&p);
    free(lab);
    free(pic);
    free(codes);
    tsr_raster_free(&base);
    return st.code ? cli_fail(st, NULL) : CLI_OK;
}

static void json_metrics(const char *prefix, const tsr_apt_metrics *m) {
    printf("\"%siou\": %.4f, \"%smiou\": %.4f, \"%soa\": %.4f, \"%sprecision\": %.4f, \"%srecall\": %.4f, \"%sf1\": %.4f",
           prefix, m->iou, prefix, m->miou, prefix, m->oa, prefix, m->precision, prefix, m->recall, prefix, m->f1);
}

/* "X,Y,W,H" with W, H >= 1 and X, Y >= 0 */
static int parse_region(const char *prog, const char *s, int r[4]) {
    char tail;
    if (sscanf(s, "%d,%d,%d,%d%c", &r[0], &r[1], &r[2], &r[3], &tail) != 4 || r[0] < 0 || r[1] < 0 || r[2] < 1 || r[3] < 1)
        return cli_usage_error(prog, "--region must be X,Y,W,H with X, Y >= 0 and W, H >= 1 (got '%s')", s);
    return CLI_OK;
}

static int cmd_eval(const char *prog, int argc, char **argv) {
    tsr_apt_eval_opts o = tsr_apt_default_eval_opts();
    const char *region_s = NULL, *per_s = o.tile_prompts ? "tile" : "image", *truth_s = "isaid", *feedback_s = "on";
    const char *mode_s = "grid", *model = SHIPPED, *sup = "models/apt_small_supervised.safetensors",
               *ft = "models/apt_small_finetuned.safetensors";
    int min_area = o.min_area;
    cli_common cm = {0, 1, false};
    const arg_spec specs[] = {
        {"mode", ARG_STR, &mode_s, "M", "APT prompt mode: grid (default), random, superpixel", NULL},
        {"points", ARG_INT, &o.points, "N", "points per class and iteration (default 11)", NULL},
        {"iterations", ARG_INT, &o.iters, "K", "iterations (default 3)", NULL},
        {"factor", ARG_INT, &o.factor, "F", "block size of the coarse product (default 16)", NULL},
        {"noise", ARG_FLOAT, &o.noise, "P", "boundary-block flip probability (default 0.2)", NULL},
        {"min-area", ARG_INT, &min_area, "PX", "post-processing area (default 200: vehicles, not fields)", NULL},
        {"model", ARG_MODEL, &model, "PATH", "promptable segmenter (default: shipped " SHIPPED ")", NULL},
        {"supervised", ARG_MODEL, &sup, "PATH", "supervised baseline ('none' to skip)", NULL},
        {"finetuned", ARG_MODEL, &ft, "PATH", "fine-tuned baseline ('none' to skip)", NULL},
        {"data", ARG_STR, &o.dir, "DIR", "iSAID folder of the held-out images", NULL},
        {"images", ARG_STR, &o.images, "A,B", "held-out image names (default P0003,P0004)", NULL},
        {"region", ARG_STR, &region_s, "X,Y,W,H", "score only this rectangle of each image (native pixels; a validation region)", NULL},
        {"threshold", ARG_FLOAT, &o.threshold, "T", "APT's mask logit threshold (default -1; SAM's 0)", NULL},
        {"feedback", ARG_STR, &feedback_s, "on|off", "APT feeds each pass's low-res logits to the next (default on)", NULL},
        {"gate", ARG_INT, &o.gate, "PX", "keep APT's mask only within PX pixels of the coarse class; baselines also reported gated (default 8; -1: off, the paper's)", NULL},
        {"prompts-per", ARG_STR, &per_s, "WHERE", "draw prompts per 'tile' of a tiled model (default) or per 'image' (the paper's)", NULL},
        {"truth", ARG_STR, &truth_s, "KIND", "true masks: 'isaid' instance masks (default) or 'dota': NAME.txt oriented vehicle boxes, filled", NULL},
        {"breakdown", ARG_BOOL, &o.breakdown, NULL, "also count where APT's missed pixels are: beyond the gate, removed by post-processing, unprompted objects, logit below the threshold", NULL},
        CLI_COMMON_SEED(&cm), CLI_COMMON_THREADS(&cm), CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "The evaluation protocol on held-out iSAID images: a coarse product from the true mask "
                        "(block mode + boundary noise), APT against it and against supervised baselines.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = parse_mode(prog, mode_s, &o.mode)) != CLI_OK) return rc;
    if ((rc = parse_feedback(prog, feedback_s, &o.no_feedback)) != CLI_OK) return rc;
    if (region_s && (rc = parse_region(prog, region_s, o.region)) != CLI_OK) return rc;
    if (strcmp(per_s, "image") != 0 && strcmp(per_s, "tile") != 0)
        return cli_usage_error(prog, "--prompts-per must be image or tile (got '%s')", per_s);
    o.tile_prompts = strcmp(per_s, "tile") == 0;
    if (strcmp(truth_s, "isaid") != 0 && strcmp(truth_s, "dota") != 0)
        return cli_usage_error(prog, "--truth must be isaid or dota (got '%s')", truth_s);
    o.truth = strcmp(truth_s, "dota") == 0 ? TSR_APT_TRUTH_DOTA : TSR_APT_TRUTH_ISAID;
    if ((rc = cli_check_float(prog, "threshold", o.threshold, -100, 100))) return rc;
    if ((rc = cli_check_int(prog, "points", o.points, 1, 1000)) || (rc = cli_check_int(prog, "iterations", o.iters, 1, 100)) ||
        (rc = cli_check_int(prog, "factor", o.factor, 2, 256)) || (rc = cli_check_float(prog, "noise", o.noise, 0, 1)) ||
        (rc = cli_check_int(prog, "min-area", min_area, 0, 100000000)) || (rc = cli_check_int(prog, "gate", o.gate, -1, 100000)))
        return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    o.min_area = min_area;
    o.seed = cm.seed;
    char b1[4096], b2[4096], b3[4096];
    tsr_sam m, ms, mf;
    bool have_s = false, have_f = false;
    if ((rc = load_model(cli_shipped_default(model, SHIPPED, b1, sizeof b1), &m)) != CLI_OK) return rc;
    if (strcmp(sup, "none") != 0) {
        if ((rc = load_model(cli_shipped_default(sup, "models/apt_small_supervised.safetensors", b2, sizeof b2), &ms)) != CLI_OK) return rc;
        have_s = true;
    }
    if (strcmp(ft, "none") != 0) {
        if ((rc = load_model(cli_shipped_default(ft, "models/apt_small_finetuned.safetensors", b3, sizeof b3), &mf)) != CLI_OK) return rc;
        have_f = true;
    }
    tsr_apt_seg_opts so = seg_opts_for(&m, o.iters, o.min_area);
    o.model = &m;
    o.supervised = have_s ? &ms : NULL;
    o.finetuned = have_f ? &mf : NULL;
    o.shrink = so.shrink;
    o.tiled = so.tiled;
    tsr_apt_eval_result r;
    double t0 = tsr_time();
    tsr_status st = tsr_apt_evaluate(&o, &r);
    double sec = tsr_time() - t0;
    if (!st.code) {
        if (cm.json) {
            printf("{\"mode\": \"%s\", ", mode_s);
            json_metrics("", &r.apt);
            printf(", \"images\": %d, ", r.images);
            json_metrics("coarse_", &r.coarse);
            printf(", ");
            if (r.have_supervised) json_metrics("supervised_", &r.supervised);
            else printf("\"iou_supervised\": null");
            if (r.have_supervised) printf(", \"iou_supervised\": %.4f", r.supervised.iou);
            printf(", \"iou_coarse\": %.4f", r.coarse.iou);
            if (r.have_finetuned) {
                printf(", ");
                json_metrics("finetuned_", &r.finetuned);
                printf(", \"iou_finetuned\": %.4f", r.finetuned.iou);
            }
            if (o.gate >= 0 && r.have_supervised) printf(", \"iou_supervised_gated\": %.4f", r.supervised_gated.iou);
            if (o.gate >= 0 && r.have_finetuned) printf(", \"iou_finetuned_gated\": %.4f", r.finetuned_gated.iou);
            printf(", \"points\": %lld, \"decoder_runs\": %lld, \"factor\": %d, \"noise\": %.3f, \"threshold\": %g, "
                   "\"prompts_per\": \"%s\", \"truth\": \"%s\", \"feedback\": \"%s\", \"gate\": %d, \"seconds\": %.1f, \"per_image\": [",
                   (long long)r.points, (long long)r.decoder_runs, o.factor, (double)o.noise, (double)o.threshold, per_s, truth_s, o.no_feedback ? "off" : "on",
                   o.gate, sec);
            for (int i = 0; i < r.images && i < TSR_APT_EVAL_MAX_IMAGES; i++)
                printf("%s{\"image\": \"%s\", \"iou\": %.4f, \"iou_coarse\": %.4f}", i ? ", " : "", r.per_image[i].name,
                       r.per_image[i].apt.iou, r.per_image[i].coarse.iou);
            printf("]");
            if (o.breakdown) {
                const tsr_apt_breakdown *b = &r.breakdown;
                printf(", \"breakdown\": {\"truth\": %lld, \"fn\": %lld, \"fn_beyond_gate\": %lld, \"fn_beyond_gate_had\": %lld, "
                       "\"fn_postprocess\": %lld, \"fn_no_tile\": %lld, \"fn_unprompted\": %lld, \"fn_low_1\": %lld, "
                       "\"fn_low_3\": %lld, \"fn_low_more\": %lld, \"fp\": %lld, \"fp_postprocess\": %lld, \"objects\": %lld, "
                       "\"objects_in_coarse\": %lld, \"objects_prompted\": %lld, \"objects_found\": %lld, \"objects_prompted_found\": %lld, "
                       "\"points_pos\": %lld, \"points_pos_on_class\": %lld, \"points_neg\": %lld, \"points_neg_on_class\": %lld}",
                       (long long)b->truth, (long long)b->fn, (long long)b->fn_beyond_gate, (long long)b->fn_beyond_gate_had,
                       (long long)b->fn_postprocess, (long long)b->fn_no_tile, (long long)b->fn_unprompted, (long long)b->fn_low_1,
                       (long long)b->fn_low_3, (long long)b->fn_low_more, (long long)b->fp, (long long)b->fp_postprocess,
                       (long long)b->objects, (long long)b->objects_in_coarse, (long long)b->objects_prompted,
                       (long long)b->objects_found, (long long)b->objects_prompted_found, (long long)b->points_pos,
                       (long long)b->points_pos_on_class, (long long)b->points_neg, (long long)b->points_neg_on_class);
            }
            printf("}\n");
        } else {
            const struct { const char *name; const tsr_apt_metrics *m; bool on; } rows[] = {
                {"coarse product, upsampled", &r.coarse, true}, {"supervised (same size, no prompts)", &r.supervised, r.have_supervised},
                {"fine-tuned from the promptable one", &r.finetuned, r.have_finetuned}, {"APT", &r.apt, true}};
            printf("%d held-out images, coarse factor %d, noise %.2f, APT mode %s (%d points x %d iterations)\n", r.images,
                   o.factor, (double)o.noise, mode_s, o.points, o.iters);
            printf("%-38s %7s %7s %7s %9s %7s %7s\n", "method", "IoU", "mIoU", "OA", "precision", "recall", "F1");
            for (int i = 0; i < 4; i++)
                if (rows[i].on)
                    printf("%-38s %7.4f %7.4f %7.4f %9.4f %7.4f %7.4f\n", rows[i].name, rows[i].m->iou, rows[i].m->miou,
                           rows[i].m->oa, rows[i].m->precision, rows[i].m->recall, rows[i].m->f1);
        }
    }
    tsr_sam_free(&m);
    if (have_s) tsr_sam_free(&ms);
    if (have_f) tsr_sam_free(&mf);
    return st.code ? cli_fail(st, o.truth == TSR_APT_TRUTH_DOTA
                                      ? "pass --data with the folder of NAME.png and its DOTA labelTxt NAME.txt (../shared/data/dota-samples)"
                                      : "pass --data with the iSAID val folder (../shared/data/aerial/isaid/val/images)")
                   : CLI_OK;
}

static int cmd_bench(const char *prog, int argc, char **argv) {
    const char *shapes = "small,tinyvit,vit-b";
    int reps = 2, prompts = 8;
    cli_common cm = {0, 1, false};
    const arg_spec specs[] = {
        {"shapes", ARG_STR, &shapes, "LIST", "comma list of small (shipped config), tinyvit (MobileSAM, 1024 px), vit-b (SAM ViT-B, 1024 px)", NULL},
        {"reps", ARG_INT, &reps, "N", "timed encoder passes (default 2)", NULL},
        {"prompts", ARG_INT, &prompts, "N", "timed decoder passes (default 8)", NULL},
        CLI_COMMON_THREADS(&cm), CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Encoder ms per image and decoder ms per prompt (random weights of the released shapes).",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "reps", reps, 1, 100)) || (rc = cli_check_int(prog, "prompts", prompts, 1, 10000))) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    char list[256];
    snprintf(list, sizeof list, "%s", shapes);
    for (char *sv = NULL, *s = strtok_r(list, ",", &sv); s; s = strtok_r(NULL, ",", &sv)) {
        tsr_sam_cfg g;
        if (strcmp(s, "small") == 0) g = tsr_apt_small_cfg();
        else if (strcmp(s, "tinyvit") == 0) g = tsr_sam_cfg_mobile();
        else if (strcmp(s, "vit-b") == 0) g = tsr_sam_cfg_vit_b();
        else return cli_usage_error(prog, "--shapes: unknown shape '%s' (small, tinyvit, vit-b)", s);
        tsr_sam m;
        tsr_status st = tsr_sam_init(&m, &g);
        if (st.code) return cli_fail(st, NULL);
        tsr_sam_init_weights(&m, 1);
        int S = g.img_size;
        uint8_t *rgb = malloc((size_t)S * S * 3);
        if (!rgb) return cli_fail(tsr_errorf(TSR_ERR_NOMEM, "out of memory"), NULL);
        for (int64_t i = 0; i < (int64_t)S * S * 3; i++) rgb[i] = (uint8_t)((i * 2654435761u) >> 24);
        /* best of reps, wall and process CPU time: on a shared machine the
         * wall clock also counts the time the process waited for a core */
        double enc = 1e30, enc_cpu = 1e30;
        tsr_apt_state s0;
        for (int r = 0; r < reps; r++) {
            double c0 = (double)clock() / CLOCKS_PER_SEC;
            tsr_apt_begin(&s0, &m, rgb, S, S);
            double c1 = (double)clock() / CLOCKS_PER_SEC - c0;
            if (s0.encode_s < enc) enc = s0.encode_s;
            if (c1 < enc_cpu) enc_cpu = c1;
            if (r + 1 < reps) tsr_apt_end(&s0);
        }
        int L = 4 * m.grid;
        float *low = malloc(sizeof(float) * (size_t)L * L);
        float px[4] = {10, 200, 400, 30}, py[4] = {20, 100, 300, 500};
        int lab[4] = {1, 0, 1, 0};
        if (!low) return cli_fail(tsr_errorf(TSR_ERR_NOMEM, "out of memory"), NULL);
        tsr_apt_predict(&s0, px, py, lab, 4, NULL, low); /* warm */
        double t0 = tsr_time(), c0 = (double)clock() / CLOCKS_PER_SEC;
        for (int i = 0; i < prompts; i++) tsr_apt_predict(&s0, px, py, lab, 4, i ? low : NULL, low);
        double dec = (tsr_time() - t0) / prompts, dec_cpu = ((double)clock() / CLOCKS_PER_SEC - c0) / prompts;
        if (cm.json)
            printf("{\"shape\": \"%s\", \"img_size\": %d, \"params\": %lld, \"encoder_ms_per_image\": %.1f, "
                   "\"decoder_ms_per_prompt\": %.2f, \"encoder_cpu_ms_per_image\": %.1f, \"decoder_cpu_ms_per_prompt\": %.2f, "
                   "\"threads\": %d, \"kernels\": \"%s\"}\n",
                   s, S, (long long)tsr_params_count(&m.params), 1e3 * enc, 1e3 * dec, 1e3 * enc_cpu, 1e3 * dec_cpu, tsr_threads_get(),
                   tsr_cpu_level_name(tsr_cpu_level()));
        else
            printf("%-8s %4d px  %10lld params  encoder %9.1f ms/image (CPU %9.1f)  decoder %7.2f ms/prompt (CPU %7.2f)  (%d threads)\n",
                   s, S, (long long)tsr_params_count(&m.params), 1e3 * enc, 1e3 * enc_cpu, 1e3 * dec, 1e3 * dec_cpu, tsr_threads_get());
        fflush(stdout);
        tsr_apt_end(&s0);
        free(low);
        free(rgb);
        tsr_sam_free(&m);
    }
    return CLI_OK;
}

static int cmd_train(const char *prog, int argc, char **argv) {
    tsr_apt_train_opts o = tsr_apt_default_train_opts();
    o.train.out = "apt_small.safetensors";
    const char *region_s = NULL;
    cli_train t = cli_train_init(o.train, o.batch, CLI_TF_STEPS | CLI_TF_BATCH);
    const arg_spec specs[] = {
        {"data", ARG_STR, &o.data_dir, "DIR", "iSAID folder holding the training image and its masks", NULL},
        {"image", ARG_STR, &o.image, "NAME", "training image name (default P0005)", NULL},
        {"out", ARG_STR, &t.o.out, "PATH", "checkpoint to write (training state next to it)", NULL},
        {"init", ARG_MODEL, &o.init, "PATH", "start from this segmenter (fine-tuning)", NULL},
        {"supervised", ARG_BOOL, &o.supervised, NULL, "no prompts: train the class region alone (the baseline)", NULL},
        {"region", ARG_STR, &region_s, "X,Y,W,H", "draw crops from this rectangle only (native pixels; leaves a validation region out)", NULL},
        {"focal-weight", ARG_FLOAT, &o.focal_weight, "W", "focal : dice loss weight (default 1; SAM's 20)", NULL},
        {"focal-alpha", ARG_FLOAT, &o.focal_alpha, "A", "focal weight of the positives (default 0.5; SAM's 0.25)", NULL},
        {"color-jitter", ARG_BOOL, &o.color_jitter, NULL, "jitter each crop's saturation, contrast, brightness and channel order", NULL},
        {"scale-jitter", ARG_BOOL, &o.scale_jitter, NULL, "draw each crop at 1/2 to 2 image pixels per crop pixel (log-uniform)", NULL},
        {"dota-data", ARG_STR, &o.dota_dir, "DIR", "folder with more training images (NAME.png) and their DOTA labelTxt vehicle boxes (NAME.txt)", NULL},
        {"dota-images", ARG_STR, &o.dota_images, "A,B,..", "those images, trained on beside --image (each crop from one image, chosen uniformly)", NULL},
        {"dota-share", ARG_FLOAT, &o.dota_share, "P", "share of crops drawn from the --dota-images, the rest from --image (default: every image equally likely)", NULL},
        {"hard-negatives", ARG_FLOAT, &o.hard_negatives, "P", "share of class-region samples with the crop drawn anywhere and positive points off the class (default 0)", NULL},
    };
    int rc = cli_train_parse(prog, "Train a small promptable segmenter on real iSAID masks (SAM-style interactive prompts, "
                             "focal + dice + IoU-head losses).",
                             specs, (int)(sizeof specs / sizeof specs[0]), &t, argc, argv);
    if (rc != CLI_OK) return rc;
    if (t.batch < 1 || t.batch > 64) return cli_usage_error(prog, "--batch must be between 1 and 64");
    if (region_s && (rc = parse_region(prog, region_s, o.region)) != CLI_OK) return rc;
    if ((o.dota_images != NULL) != (o.dota_dir != NULL)) return cli_usage_error(prog, "--dota-images and --dota-data go together");
    if ((rc = cli_check_float(prog, "focal-weight", o.focal_weight, 0, 1000)) ||
        (rc = cli_check_float(prog, "focal-alpha", o.focal_alpha, 0, 1)) ||
        (rc = cli_check_float(prog, "hard-negatives", o.hard_negatives, 0, 1)))
        return rc;
    if (o.dota_share != -1.0f) {
        if (!o.dota_images) return cli_usage_error(prog, "--dota-share needs --dota-images");
        if ((rc = cli_check_float(prog, "dota-share", o.dota_share, 0, 1))) return rc;
    }
    o.batch = t.batch;
    if (!t.quiet)
        fprintf(stderr, "%s: %d threads, %lld steps, batch %d, lr %g, out %s%s\n", prog, tsr_threads_get(),
                (long long)t.o.steps, o.batch, (double)t.o.lr, t.o.out, o.supervised ? " (supervised)" : "");
    tsr_train_result r;
    cli_train_begin(&t);
    o.train = t.o;
    tsr_status st = tsr_apt_train(&o, &r);
    cli_train_end(&t, &r);
    if (st.code && o.init && strstr(st.msg, o.init)) /* the --init file, not the data */
        return cli_fail(st, cli_train_hint(&t, st, "pass --init a segmenter written by 'tessera apt train' (e.g. "
                                                   "models/apt_small.safetensors)"));
    if (st.code)
        return cli_fail(st, cli_train_hint(&t, st, o.dota_images ? "pass --data with the iSAID images folder and --dota-data with "
                                                                   "the folder holding the --dota-images and their .txt boxes"
                                                                 : "pass --data with the iSAID images folder (../shared/data/aerial/isaid/train/images)"));
    if (t.cm.json) {
        printf("{\"steps\": %lld, \"finished\": %s, \"loss\": %.6f, \"seconds\": %.1f, \"out\": ", (long long)r.step,
               r.finished ? "true" : "false", (double)r.last_loss, r.seconds);
        cli_json_str(stdout, t.o.out);
        printf("}\n");
    } else {
        printf("%s %lld steps, last loss %.4f; saved %s\n", r.finished ? "finished" : "stopped at",
               (long long)r.step, (double)r.last_loss, t.o.out);
    }
    return CLI_OK;
}

static const cli_verb k_verbs[] = {
    {"segment", "segment a land-cover class on an image (GeoTIFF or PNG in, mask + overlay out)", cmd_segment},
    {"prompts", "draw the point prompts of a land-cover map as a PNG", cmd_prompts},
    {"eval", "the protocol on held-out iSAID images (coarse product, baselines, APT)", cmd_eval},
    {"bench", "encoder ms/image and decoder ms/prompt for the TinyViT and ViT-B shapes", cmd_bench},
    {"train", "train a small promptable segmenter on iSAID masks (resumable)", cmd_train},
    {NULL, NULL, NULL},
};

const cli_family cli_family_apt = {"apt", "APT: land-cover-prompted segmentation with SAM-family models", k_verbs};
