/* tessera nn: image tokenizers for 28x28 grey images (Fashion-MNIST), shared
 * by the image families that model discrete codes (elm, bigr):
 *   BAE  binary autoencoder: K Bernoulli bits per latent position, sampled
 *        with a straight-through estimator while training, thresholded at
 *        p > 0.5 for encoding (Binary Latent Diffusion / ELM's tokenizer);
 *   VQ   vector-quantized autoencoder: one of N codebook vectors (dim D) per
 *        position, EMA codebook, commitment loss, dead-code restarts
 *        (van den Oord et al. 2017, appendix A.1 for EMA).
 * Both map an image to a 7x7 grid (two stride-2 downsamplings) and back.
 *
 * Network (ch = cfg.ch, h = ch/2):
 *   enc.conv1 3x3 1->h, relu       28x28
 *   enc.conv2 4x4/2 h->ch, relu    14x14
 *   enc.conv3 4x4/2 ch->ch, relu    7x7
 *   enc.conv4 3x3 ch->ch, relu      7x7
 *   quant.proj 1x1 ch->K            (bit logits, or the vector to quantize)
 *   dec.proj 1x1 K->ch, relu        (linear map of the bits / code vector)
 *   dec.conv1 3x3 ch->ch, relu
 *   dec.up1 convT 4x4/2 ch->ch, relu 14x14
 *   dec.up2 convT 4x4/2 ch->h, relu  28x28
 *   dec.conv_out 3x3 h->1, sigmoid
 *   (VQ adds buffers vq.codebook (N,D), vq.cluster_size (N), vq.embed_sum (N,D))
 * Tensor names follow a PyTorch module with those attribute names; the
 * config sits in the checkpoint's __metadata__. src/nn/imgtok.c. */
#ifndef TESSERA_IMGTOK_H
#define TESSERA_IMGTOK_H

#include "tessera/core.h"

#define TSR_IMGTOK_GRID 7 /* latent grid side */
#define TSR_IMGTOK_SIDE 28

typedef enum { TSR_IMGTOK_BAE, TSR_IMGTOK_VQ, TSR_IMGTOK_KIND_COUNT } tsr_imgtok_kind;
const char *tsr_imgtok_kind_name(tsr_imgtok_kind k); /* "bae", "vq" */

typedef struct {
    tsr_imgtok_kind kind;
    int bits;        /* BAE: K bits per position; VQ: code vector dim D */
    int codebook;    /* VQ: entries N (ignored by BAE) */
    int ch;          /* conv width (even) */
    float commit;    /* VQ: commitment weight beta */
    float ema_decay; /* VQ: codebook EMA decay */
} tsr_imgtok_cfg;

tsr_imgtok_cfg tsr_imgtok_default_cfg(tsr_imgtok_kind kind);

typedef struct {
    tsr_imgtok_cfg cfg;
    tsr_params params;
    tsr_tensor *enc_w[4], *enc_b[4], *qproj_w, *qproj_b;
    tsr_tensor *dproj_w, *dproj_b, *dconv1_w, *dconv1_b, *up1_w, *up1_b, *up2_w, *up2_b,
        *out_w, *out_b;
    tsr_tensor *codebook, *cluster_size, *embed_sum; /* VQ buffers, else NULL */
} tsr_imgtok;

/* checks the config (user input) and draws fresh weights */
tsr_status tsr_imgtok_init(tsr_imgtok *m, const tsr_imgtok_cfg *cfg, uint64_t seed);
tsr_status tsr_imgtok_load(tsr_imgtok *m, const char *path);
/* meta: extra NULL-terminated key, value, ... pairs (or NULL) */
tsr_status tsr_imgtok_save(const tsr_imgtok *m, const char *path, const char *const *meta);
void tsr_imgtok_free(tsr_imgtok *m);
/* reads only the config from a checkpoint's metadata */
tsr_status tsr_imgtok_read_cfg(const char *path, tsr_imgtok_cfg *cfg);

/* ---------------------------------------------------------------- autograd */

/* Straight-through Bernoulli: p (any shape) probabilities in [0,1].
 * sample: out = 1[u < p] with u ~ U[0,1) from c->rng (24-bit draws, in
 * element order); else out = 1[p > 0.5]. Backward: dp += dout (the
 * estimator of Bengio et al. 2013 as used by Binary Latent Diffusion). */
tsr_tensor *tsr_bernoulli_st(tsr_ctx *c, tsr_tensor *p, bool sample);

/* Nearest-codebook quantization of z (B,D,Hh,Ww) against codebook (N,D)
 * (no grad): out (B,D,Hh,Ww) = codebook[id] per position, *ids i32
 * (B,Hh,Ww). Backward: dz += dout (straight through). */
tsr_tensor *tsr_vq_st(tsr_ctx *c, tsr_tensor *z, const tsr_tensor *codebook, tsr_tensor **ids);

/* x (B,1,28,28) in [0,1] -> z (B,K,7,7): bit logits (BAE) or vectors (VQ) */
tsr_tensor *tsr_imgtok_encode_pre(tsr_ctx *c, const tsr_imgtok *m, tsr_tensor *x);
/* q (B,K,7,7) (bits in {0,1}, or code vectors) -> (B,1,28,28) in (0,1) */
tsr_tensor *tsr_imgtok_decode(tsr_ctx *c, const tsr_imgtok *m, tsr_tensor *q);

typedef struct {
    tsr_tensor *recon;  /* (B,1,28,28) */
    tsr_tensor *z;      /* pre-quantization (B,K,7,7) */
    tsr_tensor *q;      /* quantized (B,K,7,7) */
    tsr_tensor *ids;    /* VQ: i32 (B,7,7); BAE: NULL */
    tsr_tensor *commit; /* VQ: scalar mean (z - sg(q))^2; BAE: NULL */
} tsr_imgtok_out;
/* encode, quantize (BAE: sample bits when `sample`, else threshold), decode */
void tsr_imgtok_forward(tsr_ctx *c, const tsr_imgtok *m, tsr_tensor *x, bool sample,
                        tsr_imgtok_out *o);

/* VQ codebook EMA step from one batch (z data (B,D,7,7), ids (B,7,7)):
 * cluster_size and embed_sum decay toward the batch counts/sums, the
 * codebook becomes embed_sum / Laplace-smoothed cluster_size, and every
 * entry whose cluster_size fell below `dead` is restarted at a random
 * batch vector (cluster_size 1). Returns the number restarted. */
int tsr_imgtok_vq_update(tsr_imgtok *m, const tsr_tensor *z, const tsr_tensor *ids, float dead,
                         tsr_rng *rng);

/* --------------------------------------------------------------- inference */

/* n images (784 f32 in [0,1] each) -> codes. BAE: bits u8 (n,7,7,K);
 * VQ: ids i32 (n,7,7). The other pointer is ignored (may be NULL). */
void tsr_imgtok_encode_images(const tsr_imgtok *m, const float *img, int64_t n, uint8_t *bits,
                              int32_t *ids);
/* codes -> n images (784 f32 each). Bits must be 0/1, ids in [0,N) (checked
 * by the caller; see tsr_imgtok_check_codes). */
void tsr_imgtok_decode_codes(const tsr_imgtok *m, const uint8_t *bits, const int32_t *ids,
                             int64_t n, float *img);
/* user-supplied codes: every bit 0/1, every id in [0,N) */
tsr_status tsr_imgtok_check_codes(const tsr_imgtok *m, const uint8_t *bits, const int32_t *ids,
                                  int64_t n);
/* encode + decode (deterministic) */
void tsr_imgtok_reconstruct(const tsr_imgtok *m, const float *img, int64_t n, float *out);

#endif
