/* tessera classify: a small CNN for Fashion-MNIST (28x28 grey images, 10
 * classes) with training, evaluation, and its penultimate layer as a fixed
 * feature extractor that image-generation families use for their metrics.
 * src/models/classify/.
 *
 * Network (VGG-style, Simonyan & Zisserman 2015, with batch norm, Ioffe &
 * Szegedy 2015):
 *   conv1 3x3 1->c1, bn1, relu; conv2 3x3 c1->c1, bn2, relu; maxpool 2
 *   conv3 3x3 c1->c2, bn3, relu; conv4 3x3 c2->c2, bn4, relu; maxpool 2
 *   flatten (c2*7*7), dropout, fc1 -> fc, relu  (= the features)
 *   dropout, fc2 -> 10 (logits)
 * Parameter names follow the PyTorch module (conv1.weight, bn1.running_mean,
 * fc1.bias, ...); the config sits in the checkpoint's __metadata__.
 * Input convention: pixels in [0,1] (u8/255), normalised inside the model
 * with the Fashion-MNIST mean/std. */
#ifndef TESSERA_CLASSIFY_H
#define TESSERA_CLASSIFY_H

#include "tessera/core.h"
#include "tessera/data.h"
#include "tessera/train.h"

#define TSR_CLASSIFY_CLASSES 10
#define TSR_CLASSIFY_MEAN 0.2860f
#define TSR_CLASSIFY_STD 0.3530f

typedef struct {
    int c1, c2;    /* channels of the two conv blocks */
    int fc;        /* feature width (penultimate layer) */
    float dropout; /* before fc1 and fc2 during training */
} tsr_classify_cfg;

typedef struct {
    tsr_classify_cfg cfg;
    tsr_params params;
    tsr_tensor *conv_w[4];
    tsr_tensor *bn_w[4], *bn_b[4], *bn_mean[4], *bn_var[4];
    tsr_tensor *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} tsr_classifier;

tsr_classify_cfg tsr_classify_default_cfg(void);
/* fresh weights (Kaiming-normal convs, torch-default linears) */
tsr_status tsr_classify_init(tsr_classifier *m, const tsr_classify_cfg *cfg, uint64_t seed);
/* reads the config from the file's metadata, then the weights */
tsr_status tsr_classify_load(tsr_classifier *m, const char *path);
/* meta: extra NULL-terminated key, value, ... pairs (or NULL) */
tsr_status tsr_classify_save(const tsr_classifier *m, const char *path, const char *const *meta);
void tsr_classify_free(tsr_classifier *m);
int tsr_classify_feature_dim(const tsr_classifier *m);

/* Autograd graph. x (B,1,28,28) in [0,1]; returns logits (B,10); *features
 * (B,fc) when features != NULL. c->training selects dropout and batch
 * statistics. */
tsr_tensor *tsr_classify_forward(tsr_ctx *c, tsr_classifier *m, tsr_tensor *x,
                                 tsr_tensor **features);

/* Inference on n images (28*28 each, row-major), in chunks, eval mode, no
 * tape. feats (n, fc) and/or logits (n, 10) may be NULL. */
void tsr_classify_run_u8(tsr_classifier *m, const uint8_t *img, int64_t n, float *feats,
                         float *logits);
void tsr_classify_run_f32(tsr_classifier *m, const float *img, int64_t n, float *feats,
                          float *logits);

/* Accuracy and mean cross-entropy over the first `limit` images of d (all
 * when limit <= 0). */
typedef struct {
    double accuracy, loss;
    int64_t n, correct;
} tsr_classify_eval_result;
tsr_classify_eval_result tsr_classify_evaluate(tsr_classifier *m, const tsr_mnist *d,
                                               int64_t limit);

/* ----------------------------------------------------------------- training */

typedef struct {
    const char *data_dir;     /* NULL: the installed Fashion-MNIST */
    tsr_classify_cfg cfg;
    int batch;
    float label_smoothing;
    int64_t train_limit;      /* use the first N training images (0: all) */
    int64_t test_limit;       /* evaluate on the first N test images (0: all, <0: skip) */
    bool flip;                /* random horizontal flips */
    /* out (checkpoint; state beside it), epochs, lr, schedule, checkpoints,
     * resume, seed, progress, log: the shared trainer's options */
    tsr_train_opts train;
} tsr_classify_train_opts;

tsr_classify_train_opts tsr_classify_default_train_opts(void);

typedef struct {
    int64_t steps, total;     /* global step reached, of total */
    bool finished;            /* all epochs done (false when stopped early) */
    bool interrupted;         /* stopped by train.stop (a signal) */
    float last_loss;
    double images_per_s;      /* training throughput of this invocation */
    double seconds;
    tsr_classify_eval_result test; /* n == 0 when not evaluated */
} tsr_classify_train_result;

tsr_status tsr_classify_train(const tsr_classify_train_opts *o, tsr_classify_train_result *r);


#endif
