/* tessera apt: training a small promptable segmenter from scratch on the
 * real iSAID masks (src/models/apt/train.c), and the images the apt
 * evaluation reads. */
#ifndef TESSERA_APT_TRAIN_H
#define TESSERA_APT_TRAIN_H
#include "tessera/apt.h"
#include "tessera/train.h"

/* one image with its class-region label (1 class, 0 other, 255 unlabelled)
 * and instance keys of the class pixels (0 elsewhere) */
typedef struct {
    uint8_t *rgb, *lab;
    uint32_t *inst;
    int w, h;
    char name[64];
} tsr_apt_image;

/* the RGB image <dir>/<name>.png (an error unless it has 3 channels) */
tsr_status tsr_apt_rgb_read(const char *dir, const char *name, uint8_t **px, int *w, int *h);
/* iSAID image <dir>/<name>.png with its two mask PNGs; the class region is
 * the union of the listed iSAID class ids */
tsr_status tsr_apt_image_load_isaid(tsr_apt_image *im, const char *dir, const char *name,
                                    const int *classes, int n_classes);
void tsr_apt_image_free(tsr_apt_image *im);
/* keep the rectangle (x, y, w, h) of the image (native pixels); an error
 * when it is empty or leaves the image */
tsr_status tsr_apt_image_crop(tsr_apt_image *im, const int region[4]);
/* half the resolution: RGB 2x2 means, the class where >= 2 of 4 pixels
 * have it (the training and evaluation resolution of the small model) */
void tsr_apt_image_halve(tsr_apt_image *im);
/* iSAID large vehicle (8) and small vehicle (9): the area class the
 * protocol uses (the shared images hold no sports fields) */
extern const int tsr_apt_vehicle_classes[2];

/* the CPU-sized TinyViT-like segmenter trained here: 128 px input (8x8
 * embedding) on half-resolution iSAID crops, widths 24/48/64/96, depths 1/1/2/1, decoder dim 64 */
tsr_sam_cfg tsr_apt_small_cfg(void);

typedef struct {
    tsr_train_opts train;
    tsr_sam_cfg cfg;
    int batch;              /* crops per step */
    const char *data_dir;   /* iSAID folder with the training image */
    const char *image;      /* its name (P0005) */
    const char *init;       /* start from this checkpoint (fine-tuning), or NULL */
    bool supervised;        /* prompts off: the supervised baseline */
    int region[4];          /* x, y, w, h of the image to draw crops from (native pixels); w = 0: all */
    float focal_weight;     /* focal : dice weight (1; SAM's is 20) */
    float focal_alpha;      /* focal weight of the positives (0.5 balanced; SAM's 0.25) */
    bool color_jitter;      /* per-crop saturation, contrast, brightness and channel-order jitter */
    bool scale_jitter;      /* per-crop scale: 1/2 to 2 image pixels per crop pixel (log-uniform, nearest) */
    const char *dota_dir;   /* folder with more training images and their DOTA labelTxt vehicle boxes, or NULL */
    const char *dota_images; /* their names, comma-separated (boxes filled as the class masks) */
    float dota_share;       /* share of crops drawn from the DOTA-labelled images (uniformly among them), the rest
                             * from the iSAID image; < 0: every image equally likely */
    float hard_negatives;   /* share of class-region samples whose crop is drawn anywhere (often empty) and
                             * whose positive points lie off the class (0: none) */
} tsr_apt_train_opts;

/* The mask loss of a training round: fw * focal + dice for logits x
 * against a 0/1 target y (same shape), built from autograd ops. focal: the
 * mean over pixels of alpha_t (1 - p_t)^2 BCE (gamma 2; alpha_t = alpha for
 * positives, 1 - alpha for negatives), dice: 1 - (2 sum(p y) + 1) /
 * (sum p + sum y + 1), p = sigmoid(x). *focal_out and *dice_out get the
 * two terms. */
tsr_tensor *tsr_apt_mask_loss(tsr_ctx *c, tsr_tensor *x, tsr_tensor *y, float alpha, float fw, float *focal_out,
                              float *dice_out);

/* the most training images (the iSAID one and the DOTA-labelled ones) */
#define TSR_APT_TRAIN_MAX_IMAGES 32

tsr_apt_train_opts tsr_apt_default_train_opts(void);
tsr_status tsr_apt_train(const tsr_apt_train_opts *o, tsr_train_result *res);

#endif
