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

#endif
