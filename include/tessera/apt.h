/* tessera apt: APT ("auto-prompting", Wang et al.) — segment a land-cover
 * class on fine imagery by prompting a SAM-family segmenter with points
 * drawn from a coarse land-cover product. src/models/apt/.
 *
 *   prompts.c   point prompts from a label map in three modes (union grid,
 *               random, SLIC superpixel centroids), split into iterations
 *   apt.c       the iterative prompting loop (one point at a time, the
 *               previous low-res logits fed back as the mask input),
 *               post-processing, binary metrics
 *   sam.c       the segmenter itself (tessera/sam.h)
 *   train.c     training a small promptable segmenter on real masks
 *   raster.c    rasters in and out (GDAL when built with it, PNG always)
 *
 * Label maps are u8 (h,w) with 1 = the class, 0 = other; 255 = no data
 * (never prompted, not scored). */
#ifndef TESSERA_APT_H
#define TESSERA_APT_H
#include "tessera/core.h"
#include "tessera/sam.h"

typedef enum { TSR_APT_GRID = 0, TSR_APT_RANDOM = 1, TSR_APT_SUPERPIXEL = 2, TSR_APT_MODE_COUNT } tsr_apt_mode;
extern const char *const tsr_apt_mode_names[TSR_APT_MODE_COUNT]; /* "grid", "random", "superpixel" */
/* -1 when unknown */
int tsr_apt_mode_parse(const char *s);

typedef struct {
    int n, cap;
    float *x, *y;   /* pixel centres in the label map's grid (x right, y down) */
    int *label;     /* 1 positive, 0 negative */
    int *group;     /* iteration the point belongs to, 0..iters-1 */
} tsr_apt_points;

void tsr_apt_points_free(tsr_apt_points *p);

/* Point prompts for the class pixels (lab == 1) and the others (lab == 0):
 *  grid:       the official "union" mode: a near-square N x M grid of cell
 *              centres over the whole map, dense enough that about
 *              points*iters centres fall in each class (at most 256 per
 *              class); the centres on the class are kept; a class with none
 *              gets the centres of its components' bounding boxes
 *  random:     points*iters pixels of each class drawn without replacement
 *  superpixel: centroids of our own SLIC superpixels of rgb (Achanta et al.
 *              2012), k chosen so about points*iters fall in each class,
 *              snapped onto the class; the largest are kept
 * Points are split into iters groups by stride (the official
 * split_array_with_skip), each group positives first. rgb (h,w,3) is needed
 * only for superpixel. Errors: no class pixel at all (TSR_ERR_ARG). */
tsr_status tsr_apt_prompts(tsr_apt_points *out, const uint8_t *lab, const uint8_t *rgb, int h, int w,
                           int mode, int points, int iters, uint64_t seed);

/* The same, drawn tile by tile: the map is cut into the tiles
 * tsr_apt_segment walks when tiled (tile x tile pixels of the image shrunk
 * by `shrink`, the last row and column flush with the edge) and each tile with class pixels gets its own
 * prompts, as the official code prompts each image patch; tiles without
 * the class get none. Errors: no class pixel at all (TSR_ERR_ARG). */
tsr_status tsr_apt_prompts_tiled(tsr_apt_points *out, const uint8_t *lab, const uint8_t *rgb, int h, int w,
                                 int tile, int shrink, int mode, int points, int iters, uint64_t seed);

/* SLIC superpixels (RGB distance, compactness m, 10 iterations, orphan
 * pixels merged into a neighbour): seg (h,w) gets ids 0..*n-1 */
void tsr_apt_slic(int32_t *seg, int *n, const uint8_t *rgb, int h, int w, int k, float m);

/* The segmentation loop. The image embedding is computed once (cached in
 * the state); every prompt run is a decoder pass. */
typedef struct {
    const tsr_sam *model;
    tsr_ctx ctx;            /* holds the embedding; prompt passes reset above it */
    tsr_tensor *emb;
    int h, w;               /* the original image */
    float scale;            /* encoder pixels per image pixel */
    double encode_s, decode_s;
    int64_t decoder_runs;
    float threshold;        /* mask logit threshold of tsr_apt_upscale (0 after begin: SAM's) */
    bool no_feedback;       /* tsr_apt_run without the low-res logits fed back (false after begin) */
    double deadline;        /* tsr_time() after which tsr_apt_run stops early (0 after begin: none) */
    bool late;              /* tsr_apt_run stopped at the deadline: lowres is unfinished */
} tsr_apt_state;

/* rgb (h,w,3) -> embedding (one encoder pass) */
void tsr_apt_begin(tsr_apt_state *s, const tsr_sam *m, const uint8_t *rgb, int h, int w);
void tsr_apt_end(tsr_apt_state *s);
/* One decoder pass: points (image pixels) + optional low-res mask logits
 * (4g x 4g, NULL for none); single-mask output. lowres_out gets the new
 * low-res logits (4g x 4g). Returns the predicted IoU. */
float tsr_apt_predict(tsr_apt_state *s, const float *x, const float *y, const int *label, int n,
                      const float *mask_in, float *lowres_out);
/* APT's prompting (the official "point_model"): points are added one at a
 * time; after each addition the decoder runs iters+1 times (iters for the
 * first point after an initial pass without a mask), each time fed the
 * previous low-res logits. lowres (4g x 4g) gets the final logits. With
 * s->no_feedback there is no mask input, so the passes before the last
 * cannot change it: one pass with every point. */
void tsr_apt_run(tsr_apt_state *s, const tsr_apt_points *p, int iters, float *lowres);
/* low-res logits -> probability-free binary mask (h,w) at the original
 * size (bilinear to the encoder input, crop, bilinear to (h,w), > s->threshold) */
void tsr_apt_upscale(const tsr_apt_state *s, const float *lowres, uint8_t *mask);
/* the same up to the threshold: out (h,w) gets the upscaled logits */
void tsr_apt_upscale_logits(const tsr_apt_state *s, const float *lowres, float *out);

/* Post-processing (the official postprocess): closing with a 3x3 square
 * (two dilations, two erosions; pixels outside the image do not count),
 * then holes and objects (4-connected) smaller than min_area removed. */
void tsr_apt_postprocess(uint8_t *mask, int h, int w, int min_area);

/* The coarse-class gate: mask pixels farther than dist pixels (chessboard
 * distance) from every class pixel of lab (lab == 1) are cleared; dist 0
 * keeps the mask inside the class. Not part of the official method: an
 * option that limits a segmenter's spill to the land-cover class's area. */
void tsr_apt_gate(uint8_t *mask, const uint8_t *lab, int h, int w, int dist);

/* A whole image: optionally shrunk by an integer factor (the resolution a
 * small model was trained at), then either one pass at the encoder's input
 * size (SAM's way: longest side resized) or, tiled, S x S tiles at that
 * resolution, each prompted with the points that fall in it (a tile with no
 * positive point stays empty); the mask comes back to the image grid, is
 * gated (when o->gate_map is set) and post-processed. Points are in image
 * pixels. */
typedef struct {
    int shrink;          /* 1 or 2, ... */
    bool tiled;
    int iters;
    bool postprocess;
    int min_area;
    float threshold;     /* mask logit threshold (0: SAM's) */
    bool no_feedback;    /* no low-res logits fed back (tsr_apt_state.no_feedback) */
    const uint8_t *gate_map; /* (h,w) land-cover label map (1 = the class), or NULL: no gate */
    int gate;            /* with gate_map: the mask is kept only within this many pixels of the class (tsr_apt_gate) */
    float *logits;       /* NULL, or (h,w) out: the mask logits before the threshold on the image grid (the
                          * larger where tiles overlap; TSR_APT_NO_LOGIT where no tile was prompted) */
    double deadline;     /* tsr_time() after which the work stops early and stats->late is set (0: none;
                          * the mask is then unfinished: a server's per-request --timeout) */
} tsr_apt_seg_opts;
#define TSR_APT_NO_LOGIT (-1e30f)
typedef struct {
    double encode_s, decode_s;
    int64_t decoder_runs;
    int tiles;
    bool late;           /* stopped at o->deadline */
} tsr_apt_seg_stats;
void tsr_apt_segment(const tsr_sam *m, const tsr_apt_seg_opts *o, const uint8_t *rgb, int h, int w,
                     const tsr_apt_points *p, uint8_t *mask, tsr_apt_seg_stats *stats);

/* Binary metrics of pred against truth (u8 0/1; truth 255 = not scored). */
typedef struct {
    int64_t tp, fp, fn, tn;
} tsr_apt_conf;
void tsr_apt_conf_add(tsr_apt_conf *c, const uint8_t *pred, const uint8_t *truth, int64_t n);
typedef struct {
    double iou, miou, oa, precision, recall, f1;
} tsr_apt_metrics;
/* iou of the class; miou the mean of the class's and the background's
 * IoU; oa overall accuracy; precision/recall/F1 of the class (0 when the
 * denominator is 0) */
tsr_apt_metrics tsr_apt_metrics_of(const tsr_apt_conf *c);

/* `POST /v1/segment` for `tessera serve` (src/models/apt/serve.c) */
struct tsr_serve_endpoint;
extern const struct tsr_serve_endpoint tsr_apt_serve_endpoint;

#endif
