/* tessera ops: image ops over (B,C,Hh,Ww) maps — conv2d and its transpose,
 * pooling, upsampling, group norm and batch norm. Kernels in src/ops/conv.c
 * (im2col + sgemm, naive _ref twins), src/ops/pool.c, src/ops/chnorm.c. */
#ifndef TESSERA_OPS_CONV_H
#define TESSERA_OPS_CONV_H

#include "tessera/core.h"

typedef struct {
    int stride[2], pad[2], dil[2]; /* (h, w); zero entries mean 1,0,1 */
    int groups;                    /* 0 means 1 */
    int out_pad[2];                /* transpose only */
} tsr_conv_opts;

/* x (B,Cin,Hh,Ww), w (Cout,Cin/G,kh,kw), bias (Cout) or NULL */
tsr_tensor *tsr_conv2d(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *bias,
                       const tsr_conv_opts *o);
/* x (B,Cin,Hh,Ww), w (Cin,Cout/G,kh,kw) as torch.nn.ConvTranspose2d */
tsr_tensor *tsr_conv_transpose2d(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *bias,
                                 const tsr_conv_opts *o);

/* pooling: kernel k, stride s, padding p (h,w); avg counts padding as torch's
 * default count_include_pad=True */
tsr_tensor *tsr_maxpool2d(tsr_ctx *c, tsr_tensor *x, const int k[2], const int s[2], const int p[2]);
tsr_tensor *tsr_avgpool2d(tsr_ctx *c, tsr_tensor *x, const int k[2], const int s[2], const int p[2]);

tsr_tensor *tsr_upsample_nearest(tsr_ctx *c, tsr_tensor *x, int scale_h, int scale_w);
/* to (out_h, out_w), as torch F.interpolate(mode="bilinear") */
tsr_tensor *tsr_upsample_bilinear(tsr_ctx *c, tsr_tensor *x, int out_h, int out_w,
                                  bool align_corners);

/* x (B,C,...) */
tsr_tensor *tsr_groupnorm(tsr_ctx *c, tsr_tensor *x, int groups, tsr_tensor *w, tsr_tensor *b,
                          float eps);
/* training (c->training): batch statistics (biased var for normalising),
 * running stats updated in place with momentum (unbiased var), as torch.
 * eval: running stats. running_* are f32 (C) buffers. */
tsr_tensor *tsr_batchnorm(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b,
                          tsr_tensor *running_mean, tsr_tensor *running_var, float momentum,
                          float eps);
/* relu(batchnorm(...)) as one node: the classifier's conv blocks; same
 * arithmetic as tsr_relu(c, tsr_batchnorm(...)) without the intermediate */
tsr_tensor *tsr_batchnorm_relu(tsr_ctx *c, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b,
                               tsr_tensor *running_mean, tsr_tensor *running_var, float momentum,
                               float eps);

/* ---- kernels (src/ops/conv.c). A conv maps an image (B,Cin,Hh,Ww) to a
 * map (B,Cout,Ho,Wo) with w (Cout,Cin/G,kh,kw); a transposed conv runs the
 * same geometry backwards (its output is the "image"). Chunks of nb images
 * go through im2col + one sgemm per group, chunks spread over `threads`
 * OpenMP threads (nb = 1 writes the sgemm result in place; larger nb
 * gathers/scatters through scratch). Scratch depends on nb and threads. */
typedef struct {
    int B, cin, h, w;        /* image side */
    int cout, ho, wo;        /* map side */
    int kh, kw, sh, sw, ph, pw, dh, dw, groups;
    int nb;                  /* images per sgemm chunk, 1..B */
    int threads;             /* OpenMP threads (scratch slots) */
} tsr_conv_geom;

/* geometry for conv x (B,cin,h,w) -> (B,cout,.,.): fills ho/wo and a chunk size */
tsr_conv_geom tsr_conv_geom_make(int B, int cin, int h, int w, int cout, int kh, int kw,
                                 const tsr_conv_opts *o);
/* floats of scratch the fast kernels need for g (the weight grad needs all
 * of it; forward and input grad only the per-thread part at the front) */
int64_t tsr_conv_scratch_floats(const tsr_conv_geom *g);

/* out (B,cout,ho,wo) = conv(x) [+ bias]; accumulate adds into out instead */
void tsr_conv2d_fwd(const tsr_backend *be, float *out, const float *x, const float *w,
                    const float *bias, const tsr_conv_geom *g, float *scratch, bool accumulate);
/* dx (B,cin,h,w) += conv^T(dout) */
void tsr_conv2d_bwd_data(const tsr_backend *be, float *dx, const float *dout, const float *w,
                         const tsr_conv_geom *g, float *scratch);
/* dw (cout,cin/G,kh,kw) += dout (x) x; dbias (cout) += sum dout; either may be NULL */
void tsr_conv2d_bwd_weight(const tsr_backend *be, float *dw, float *dbias, const float *dout,
                           const float *x, const tsr_conv_geom *g, float *scratch);
/* naive direct-loop twins (double accumulation) */
void tsr_conv2d_fwd_ref(float *out, const float *x, const float *w, const float *bias,
                        const tsr_conv_geom *g);
void tsr_conv2d_bwd_ref(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                        const float *w, const tsr_conv_geom *g);

#endif
