/* tessera ovadetr: OVA-DETR, an open-vocabulary detector for aerial images
 * (Wei et al. 2024), CPU-sized, on the RT-DETR skeleton:
 *   image:  a small CNN backbone (C3-C5), AIFI (one transformer encoder
 *           layer) on S5, a CCFM-lite pyramid (top-down + bottom-up fusion);
 *   text:   one frozen CLIP embedding per class name (cached), a learned
 *           projection;
 *   Bi-VLF: per pyramid level, Vision-aug-Text (text attends to the level's
 *           tokens) and TextGuideVTFusion (tokens attend to text, each head
 *           gated by sigmoid(max_t q.k_t / sqrt(dh)));
 *   queries: the top-Q encoder positions by region-text similarity;
 *   decoder: layers of multi-level text cross-attention (the three levels'
 *           text features), self-attention, cross-attention to the encoder
 *           memory and an FFN, with iterative box refinement. Plain
 *           attention over all memory tokens replaces RT-DETR's deformable
 *           attention (at <= 800 px the memory is a few thousand tokens);
 *   head:   logit = exp(s) <v/|v|, t/|t|> + b (or a linear classifier: the
 *           closed-set twin);
 *   loss:   Hungarian matching (cost: focal 2, L1 5, GIoU 2), varifocal loss
 *           + 5 L1 + 2 GIoU on the encoder's top-Q and every decoder layer.
 * src/models/ovadetr/. */
#ifndef TESSERA_OVADETR_H
#define TESSERA_OVADETR_H

#include "tessera/core.h"
#include "tessera/nn.h"

#define TSR_OVD_TEXT_DIM 512 /* CLIP ViT-B/32 text features */
#define TSR_OVD_MAX_DEC 6

typedef struct {
    int ch[5];      /* backbone widths: stem, s4, C3 (s8), C4 (s16), C5 (s32) */
    int d;          /* hidden width */
    int heads;      /* attention heads */
    int ffn;        /* FFN width */
    int queries;    /* Q decoder queries */
    int dec_layers; /* decoder layers */
    int closed;     /* > 0: closed-set twin with this many classes (linear head) */
    bool tgvt;      /* TextGuideVTFusion on (ablation: off) */
    bool vat;       /* Vision-aug-Text on (ablation: off) */
} tsr_ovd_cfg;

tsr_ovd_cfg tsr_ovd_default_cfg(void);
/* "d=64,heads=4,..." -> cfg (keys: ch0..ch4 d heads ffn queries dec closed
 * tgvt vat); TSR_ERR_ARG naming the bad key */
tsr_status tsr_ovd_cfg_parse(tsr_ovd_cfg *cfg, const char *s);
/* the metadata form of a cfg: "ch=16,32,64,96,128 d=64 ..." into buf */
void tsr_ovd_cfg_str(const tsr_ovd_cfg *cfg, char *buf, size_t n);

typedef struct { tsr_tensor *w, *b, *gw, *gb; int k, s; } tsr_ovd_conv; /* conv + GroupNorm + ReLU */
typedef struct { tsr_nn_linear q, k, v, o; } tsr_ovd_mha;
typedef struct { tsr_nn_linear l[3]; int n; } tsr_ovd_mlp;

typedef struct {
    tsr_ovd_mha vat;           /* text <- image tokens */
    tsr_nn_layernorm vat_ln;
    tsr_ovd_mha tg;            /* image tokens <- text, gated */
    tsr_nn_layernorm tg_ln;
} tsr_ovd_fusion;

typedef struct {
    tsr_ovd_mha txt, self, cross;
    tsr_nn_layernorm ln[4];
    tsr_nn_linear ff1, ff2;
    tsr_ovd_mlp box;
    tsr_nn_linear region;      /* contrastive head: region embedding */
    tsr_tensor *s, *bias;      /* contrastive head scale and bias */
    tsr_nn_linear cls;         /* closed-set head */
} tsr_ovd_dec;

typedef struct {
    tsr_ovd_cfg cfg;
    tsr_params params;
    tsr_ovd_conv bb[8];        /* stem, s4, c3a, c3b, c4a, c4b, c5a, c5b */
    tsr_ovd_conv proj[3];      /* C3..C5 -> d */
    /* AIFI */
    tsr_ovd_mha aifi;
    tsr_nn_layernorm aifi_ln[2];
    tsr_nn_linear aifi_ff1, aifi_ff2;
    /* CCFM-lite */
    tsr_ovd_conv lat5, lat4, fuse4[2], fuse3[2], down3, down4, fusen4[2], fusen5[2];
    /* text */
    tsr_nn_linear text_proj, text_head;
    tsr_ovd_fusion fus[3];
    /* query selection */
    tsr_nn_linear enc_lin;
    tsr_nn_layernorm enc_ln;
    tsr_ovd_mlp enc_box;
    tsr_nn_linear enc_region, enc_cls;
    tsr_tensor *enc_s, *enc_bias;
    tsr_ovd_mlp qpos;
    tsr_ovd_dec dec[TSR_OVD_MAX_DEC];
    tsr_tensor *closed_rows;   /* closed-set twin: CLIP rows of its class names (buffer) */
    /* the training crop side (metadata data.crop): boxes are regressed in
     * units of the input, so inference tiles are this size (tile 0) */
    int train_crop;
} tsr_ovd_model;

tsr_status tsr_ovd_init(tsr_ovd_model *m, const tsr_ovd_cfg *cfg);
void tsr_ovd_init_weights(tsr_ovd_model *m, uint64_t seed);
void tsr_ovd_free(tsr_ovd_model *m);

/* One forward. img (B,3,H,W) normalised pixels, H and W multiples of 32.
 * text (K, 512) CLIP rows (unnormalised; normalised inside) for the
 * contrastive model; the closed-set twin ignores it and fuses its own
 * class names' rows (the buffer text.closed_rows; K = cfg.closed).
 * Outputs: set 0 is the encoder's top-Q, sets 1..dec_layers the decoder
 * layers (the last is the prediction). logits (B*Q, K), boxes (B*Q, 4)
 * cxcywh in [0,1] of the input. */
typedef struct {
    int n_sets, B, Q, K;
    tsr_tensor *logits[TSR_OVD_MAX_DEC + 1], *boxes[TSR_OVD_MAX_DEC + 1];
    tsr_tensor *text_head; /* (K, d): the head's text rows (NULL for the closed-set twin) */
} tsr_ovd_out;

tsr_ovd_out tsr_ovd_forward(tsr_ctx *c, const tsr_ovd_model *m, tsr_tensor *img, const float *text,
                            int K);

/* targets of one batch: per image b, boxes [off[b], off[b+1]) */
typedef struct {
    const float *box;   /* (n, 4) cxcywh normalised */
    const int32_t *cls; /* (n) text slot / class index */
    const int *off;     /* B+1 */
} tsr_ovd_targets;

/* loss weights (RT-DETR's): matching costs and loss terms */
typedef struct { float cost_cls, cost_l1, cost_giou, w_vfl, w_l1, w_giou; } tsr_ovd_loss_w;
tsr_ovd_loss_w tsr_ovd_default_loss_w(void);

/* total loss (a scalar); parts (may be NULL) gets vfl, l1, giou summed
 * over the sets (weighted). */
tsr_tensor *tsr_ovd_loss(tsr_ctx *c, const tsr_ovd_out *o, const tsr_ovd_targets *t,
                         const tsr_ovd_loss_w *w, float parts[3]);

/* The matching alone (for tests): per image the Hungarian assignment of
 * targets to queries under the cost above, on logits/boxes of one set.
 * qidx[j] gets the query (within the image) of target j (global order). */
void tsr_ovd_match(int32_t *qidx, const float *logits, const float *boxes, int B, int Q, int K,
                   const tsr_ovd_targets *t, const tsr_ovd_loss_w *w);

/* save / load: weights + cfg (+ extra metadata pairs) */
tsr_status tsr_ovd_save(const tsr_ovd_model *m, const char *path, const char *const *meta);
tsr_status tsr_ovd_load(tsr_ovd_model *m, const char *path);

#endif

/* ------------------------------------------------------- text vocabulary
 * Class names and their frozen CLIP rows. Built from the cached CLIP
 * features (COCO 80, Objects365 365, LVIS 1203 with synonyms; names
 * lower-cased, '_' -> ' ', a trailing "(...)" dropped) and stored inside the
 * model file, so detect needs no data folder. DOTA / iSAID names without a
 * row of their own are aliases of the nearest vocabulary name: small
 * vehicle -> car, large vehicle -> truck, plane -> airplane, storage tank ->
 * storage tank (LVIS), minibus -> minivan, swimming pool -> pool table is
 * NOT made up: a name with no row and no alias is an error. */
typedef struct {
    int n;
    char **names;  /* normalised */
    int *row;      /* names[i] -> rows[row[i]] */
    int n_rows;
    float *rows;   /* (n_rows, 512) */
} tsr_ovd_vocab;

/* from ../shared/data/clip-text-embeddings (dir) */
tsr_status tsr_ovd_vocab_build(tsr_ovd_vocab *v, const char *dir);
void tsr_ovd_vocab_free(tsr_ovd_vocab *v);
/* row index of a class name (aliases applied), -1 when absent */
int tsr_ovd_vocab_find(const tsr_ovd_vocab *v, const char *name);
/* "ship,harbor,car" -> K names and their (K,512) rows (malloc'd). With
 * emb_path (a .npy of K rows, one per name in order) the file's rows are
 * used instead. An unknown name is a status naming it. */
tsr_status tsr_ovd_text_for(const tsr_ovd_vocab *v, const char *classes, const char *emb_path,
                            char ***names, int *K, float **rows);
void tsr_ovd_names_free(char **names, int K);
/* Whether a class name repeats an earlier one, case aside (it would be one
 * category twice): true with *i the repeat and *j the earlier name. */
bool tsr_ovd_names_repeat(const char *const *names, int n, int *i, int *j);
/* vocabulary <-> model file metadata / tensor */
tsr_status tsr_ovd_vocab_save(const tsr_ovd_vocab *v, const tsr_ovd_model *m, const char *path,
                              const char *const *meta);
tsr_status tsr_ovd_vocab_load(tsr_ovd_vocab *v, const char *path);

/* ----------------------------------------------------- data, train, eval
 * The zero-shot protocol on the real images in ../shared/data (docs/
 * ovadetr.md): seen names car (KIT AIS), ship, plane, storage tank, small
 * vehicle, large vehicle (DOTA / iSAID); unseen names bus and minibus. Train:
 * KIT sequence MOS74-MOS91 (no bus or minibus in it) and the DOTA / iSAID /
 * mmrotate images (harbor boxes dropped: no CLIP row). Validation (during
 * training): MOS92, MOS93. Test: KIT sequences MOS155-MOS179 and
 * MunichStreet02 (every bus and minibus is there), never used in training
 * or for choosing settings. Two protocols share the test images: "names"
 * (the default; DOTA P1888's and iSAID P0003/P0005's large vehicles are
 * school buses, so bus is unseen as a name, not as a picture) and "strict"
 * (those three images left out of training: no training box shows a bus). */
#include "tessera/train.h"

typedef struct {
    const char *data_dir; /* ../shared/data */
    int crop;             /* training crop side (multiple of 32) */
    int slots;            /* text slots per step (positives + negatives) */
    float copy_paste;     /* probability of pasting iSAID chips into a crop */
    const char *only;     /* NULL, or one KIT image stem (e.g. MOS74): train and
                             validate on that image alone (a fitting check) */
    int name_pool;        /* > 0: a positive name's row is, half of the time, one
                             of its up to name_pool nearest vocabulary rows that
                             lie nearer to it than to any other seen or unseen
                             name (more seen-class vocabulary); 0: off */
    float text_geo;       /* > 0: weight of a loss that keeps the cosines of the
                             head's text rows of a step's names near their CLIP
                             cosines (mean squared difference); 0: off */
    const char *split;    /* the zero-shot protocol: "names" (bus and minibus
                             unseen as names; the default) or "strict" (also no
                             training image whose boxes show a bus under another
                             name: DOTA P1888, iSAID P0003 and P0005 left out) */
    float lv_paste;       /* probability of pasting, into a DOTA/iSAID crop, a
                             parking row of 2-4 large-vehicle chips scaled by
                             U[0.45, 1] at one angle (class-agnostic long-vehicle
                             shapes of bus size from trucks); 0: off */
} tsr_ovd_data_opts;

tsr_ovd_data_opts tsr_ovd_default_data_opts(void);

/* trains cfg from scratch (or resumes) on the shared loop; o->out is the
 * model file (weights + vocabulary) */
tsr_status tsr_ovd_train(const tsr_ovd_cfg *cfg, const tsr_ovd_data_opts *d, const tsr_train_opts *o,
                         tsr_train_result *res);

/* what the training set of a split holds: per image its stem, its boxes
 * per seen name (car, ship, plane, storage tank, small vehicle, large
 * vehicle) and the copy-paste chips cut from it */
#define TSR_OVD_INFO_MAX 32
typedef struct {
    int n_img;
    char stem[TSR_OVD_INFO_MAX][32];
    int n_box[TSR_OVD_INFO_MAX][6];
    int n_chip[TSR_OVD_INFO_MAX];
} tsr_ovd_train_info;

tsr_status tsr_ovd_train_set(const char *data_dir, const char *split, tsr_ovd_train_info *info);

typedef struct { float x0, y0, x1, y1, score; int cls; } tsr_ovd_det;

/* Detections on one RGB image (w*h*3): tiles of `tile` px (multiple of 32;
 * 0: the model's training crop, overlap -1: a quarter of it) overlapping by `overlap`, class-wise NMS at IoU 0.5 across tiles, the
 * best max_det kept (score order). A closed-set model maps names to its
 * classes (unknown names score 0). *dets malloc'd. */
tsr_status tsr_ovd_detect(const tsr_ovd_model *m, const char *const *model_classes, int n_model_classes,
                          const uint8_t *rgb, int w, int h, const char *const *names, const float *text,
                          int K, int tile, int overlap, int max_det, float min_score, tsr_ovd_det **dets,
                          int *n);
/* tsr_ovd_detect that stops before the next tile once tsr_time() passes
 * deadline (0: none; a server's per-request --timeout): *late is set, and
 * *dets and *n are empty (an unfinished image has no detections to give). */
tsr_status tsr_ovd_detect_until(const tsr_ovd_model *m, const char *const *model_classes, int n_model_classes,
                                const uint8_t *rgb, int w, int h, const char *const *names, const float *text,
                                int K, int tile, int overlap, int max_det, float min_score, double deadline,
                                tsr_ovd_det **dets, int *n, bool *late);

enum { TSR_OVD_METHOD_OVADETR, TSR_OVD_METHOD_CLOSED, TSR_OVD_METHOD_TEXT_NEAREST };

typedef struct {
    const char *method;
    const char *split;
    const char *on; /* "test" (the held-out images) or "val" (strict's validation images) */
    float calib;    /* calibrated stacking: subtracted from the seen names' logits */
    double ap50_seen, ap50_unseen, ap50_car, recall_seen, recall_unseen, hm_recall;
    double recall_car, recall_bus, recall_minibus, ap50_bus, ap50_minibus;
    int images, gt_seen, gt_unseen;
} tsr_ovd_eval_res;

/* The held-out test split above with the model at `model_path` (closed-set
 * twin for TSR_OVD_METHOD_CLOSED), trained on protocol `split` ("names" or
 * "strict"; a model file trained on the other one is an error). on_val:
 * instead of the test images, the validation images of "strict" (DOTA
 * P1888, iSAID P0003 and P0005: neither training nor test images there;
 * large vehicles scored as bus, small vehicles as car). calib: calibrated
 * stacking, subtracted from every seen name's logit before the 100 best
 * detections per image are kept (0: off), for every method alike.
 * tile/overlap as for detect. */
tsr_status tsr_ovd_eval(const char *model_path, int method, const char *split, const char *data_dir, bool on_val,
                        float calib, int tile, int overlap, tsr_ovd_eval_res *r, bool progress);

/* the class names a closed-set model was trained with ("ovadetr.classes") */
tsr_status tsr_ovd_model_classes(const char *path, char ***names, int *n);

/* `POST /v1/detect` for `tessera serve` (src/models/ovadetr/serve.c) */
struct tsr_serve_endpoint;
extern const struct tsr_serve_endpoint tsr_ovadetr_serve_endpoint;
