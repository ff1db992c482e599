/* tessera nn: image-generation metrics over feature vectors and class
 * probabilities from a fixed extractor (for Fashion-MNIST: the penultimate
 * layer and logits of models/fmnist_cnn.safetensors, see classify.h).
 * Shared by the image families (elm, bigr, ...). src/nn/imgmetrics.c.
 * All statistics are accumulated in double. */
#ifndef TESSERA_IMGMETRICS_H
#define TESSERA_IMGMETRICS_H

#include "tessera/core.h"

/* Symmetric eigendecomposition by cyclic Jacobi rotations: a (n,n) is
 * destroyed; eval (n) ascending, evec (n,n) column j = eigenvector j
 * (may be NULL). Returns the sweeps used. */
int tsr_sym_eig(double *a, int n, double *eval, double *evec);

/* Mean (d) and unbiased covariance (d,d) of x (n,d) f32 rows, n >= 2. */
void tsr_feat_stats(const float *x, int64_t n, int d, double *mean, double *cov);

/* Fréchet distance between Gaussians N(m1,C1), N(m2,C2):
 * |m1-m2|^2 + tr C1 + tr C2 - 2 tr (C1^1/2 C2 C1^1/2)^1/2, matrix square
 * roots by tsr_sym_eig (negative eigenvalues from rounding clamp to 0). */
double tsr_frechet_from_stats(const double *m1, const double *c1, const double *m2,
                              const double *c2, int d);
/* the same from two feature sets a (na,d), b (nb,d) */
double tsr_frechet_distance(const float *a, int64_t na, const float *b, int64_t nb, int d);

/* Inception-Score analogue: exp(E_x KL(p(y|x) || p(y))), p(y) the mean of
 * p(y|x) over the set. logits (n,C) are soft-maxed in double. */
double tsr_inception_score(const float *logits, int64_t n, int C);

/* fraction of rows whose argmax matches labels (n) */
double tsr_class_accuracy(const float *logits, const int32_t *labels, int64_t n, int C);

/* Improved precision and recall (Kynkäänniemi et al. 2019): each set's
 * k-NN balls (radius = distance to the k-th nearest other member) form its
 * manifold; precision = share of fake rows inside the real manifold,
 * recall = share of real rows inside the fake manifold. Distances by
 * sgemm blocks (f32 dot products, squared norms added in double). */
typedef struct {
    double precision, recall;
} tsr_prdc;
tsr_prdc tsr_precision_recall(const float *real, int64_t nr, const float *fake, int64_t nf,
                              int d, int k);
/* squared radius of the k-th nearest neighbour of every row of x (n,d)
 * within x itself (self excluded); the piece precision/recall builds on */
void tsr_knn_radii(float *r2, const float *x, int64_t n, int d, int k);

/* PSNR in dB of images in [0,1]: 10 log10(1 / mse) per image, averaged
 * over the n images of `pix` pixels each (mse floored at 1e-10). */
double tsr_psnr(const float *a, const float *b, int64_t n, int64_t pix);

#endif
