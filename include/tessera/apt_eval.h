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
} tsr_apt_eval_opts;
tsr_apt_eval_opts tsr_apt_default_eval_opts(void);

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
    bool have_supervised, have_finetuned;
    tsr_apt_eval_image per_image[TSR_APT_EVAL_MAX_IMAGES];
} tsr_apt_eval_result;

tsr_status tsr_apt_evaluate(const tsr_apt_eval_opts *o, tsr_apt_eval_result *res);

#endif
