/* tessera apt: the evaluation protocol on real iSAID masks
 * (src/models/apt/eval.c), documented in docs/apt.md:
 *  1. the true class mask of each held-out image is block-mode downsampled
 *     by `factor` and its boundary blocks flipped with probability `noise`:
 *     a coarse "land-cover product" on the image grid;
 *  2. APT prompts the segmenter from it (mode, points, iterations) and
 *     post-processes;
 *  3. the same metrics for the coarse product itself (upsampled) and for
 *     supervised models of the same size without prompts. */
#ifndef TESSERA_APT_EVAL_H
#define TESSERA_APT_EVAL_H
#include "tessera/apt_train.h"

/* out (h,w): the coarse product of truth (u8 0/1/255) on the same grid */
void tsr_apt_coarse_product(uint8_t *out, const uint8_t *truth, int h, int w, int factor, float noise,
                            uint64_t seed);

typedef struct {
    const tsr_sam *model;        /* the promptable segmenter */
    const tsr_sam *supervised;   /* baseline from scratch (NULL: skipped) */
    const tsr_sam *finetuned;    /* baseline fine-tuned from the promptable one (NULL: skipped) */
    const char *dir, *images;    /* iSAID folder, comma-separated names */
    int mode, points, iters;
    int factor;                  /* block size of the coarse product */
    float noise;                 /* boundary flip probability */
    int min_area;                /* post-processing */
    int shrink;                  /* image pixels per model pixel */
    bool tiled;
    uint64_t seed;
    int region[4];               /* x, y, w, h scored in each image (native pixels); w = 0: all */
    float threshold;             /* APT's mask logit threshold (0: SAM's) */
    bool tile_prompts;           /* prompts drawn per tile (tiled models) instead of per image */
    bool no_feedback;            /* APT without the low-res logits fed back as the mask input */
    int truth;                   /* TSR_APT_TRUTH_ISAID (masks) or TSR_APT_TRUTH_DOTA (filled oriented boxes) */
    int gate;                    /* APT's mask kept within this many pixels of the coarse class (tsr_apt_gate); -1 off */
    bool breakdown;              /* also count where APT's missed pixels are (tsr_apt_breakdown) */
} tsr_apt_eval_opts;
tsr_apt_eval_opts tsr_apt_default_eval_opts(void);

/* Where APT's missed class pixels (false negatives of the final mask) are,
 * pooled over the images. Each missed pixel is in exactly one of the fn_*
 * groups, taken in this order: farther than the gate from the coarse class
 * (beyond_gate; beyond_gate_had: of them, pixels the segmenter had, which
 * the gate cut); removed by post-processing (the segmenter had them); in no
 * prompted tile; in an object (instance) without a positive point in it
 * (unprompted); else the segmenter's logit was below the threshold by at
 * most 1 (low_1), by 1 to 3 (low_3) or by more (low_more). Objects: truth
 * instances; in_coarse: with a pixel in the coarse class; prompted: with a
 * positive point in it; found: at least half of it in the final mask. */
typedef struct {
    int64_t truth, fn, fn_beyond_gate, fn_beyond_gate_had, fn_postprocess, fn_no_tile, fn_unprompted;
    int64_t fn_low_1, fn_low_3, fn_low_more;
    int64_t fp, fp_postprocess; /* false positives; of them, added by post-processing */
    int64_t objects, objects_in_coarse, objects_prompted, objects_found, objects_prompted_found;
    int64_t points_pos, points_pos_on_class, points_neg, points_neg_on_class; /* prompts; on_class: on a class pixel */
} tsr_apt_breakdown;
#define TSR_APT_EVAL_MAX_IMAGES 16
typedef struct {
    char name[64];
    tsr_apt_metrics apt, coarse;
} tsr_apt_eval_image;

typedef struct {
    int images;
    int64_t points, decoder_runs;
    double encode_s, decode_s;
    tsr_apt_metrics apt, coarse, supervised, finetuned; /* pooled over the images' pixels */
    tsr_apt_metrics supervised_gated, finetuned_gated;  /* with o->gate >= 0: the baselines' masks through the same gate */
    bool have_supervised, have_finetuned;
    tsr_apt_breakdown breakdown;                        /* with o->breakdown */
    tsr_apt_eval_image per_image[TSR_APT_EVAL_MAX_IMAGES];
} tsr_apt_eval_result;

/* Where the true class mask comes from. ISAID: <dir>/<name>.png with its
 * iSAID instance masks (large + small vehicle). DOTA: <dir>/<name>.png with
 * the DOTA labelTxt <dir>/<name>.txt; the oriented boxes of the classes
 * large-vehicle and small-vehicle are filled (a pixel is in when its centre
 * is inside the quadrilateral). Vehicles are near rectangles seen from
 * above, so filled boxes are close to their masks; this scores images that
 * have boxes but no masks (a validation set with other looks). */
enum { TSR_APT_TRUTH_ISAID = 0, TSR_APT_TRUTH_DOTA = 1 };
extern const char *const tsr_apt_dota_vehicle_names[2];
/* the labelTxt in buf filled into lab (h x w, 1 inside a vehicle box, else
 * 0) and inst (box number from 1, NULL to skip); header lines imagesource:
 * and gsd: skipped, other classes ignored; *n_objects counts the vehicle
 * boxes. A malformed line is a one-line error naming name and the line. */
tsr_status tsr_apt_dota_truth_parse(const char *buf, size_t len, const char *name, int w, int h, uint8_t *lab,
                                    uint32_t *inst, int *n_objects);
/* the image and its filled vehicle boxes; an error when it has none */
tsr_status tsr_apt_image_load_dota(tsr_apt_image *im, const char *dir, const char *name);

tsr_status tsr_apt_evaluate(const tsr_apt_eval_opts *o, tsr_apt_eval_result *res);

#endif
