/* tessera: the Segment Anything family of promptable segmenters (SAM,
 * Kirillov et al. 2023; MobileSAM, Zhang et al. 2023), used by the apt
 * family and trained from scratch by it. src/models/apt/sam.c.
 *
 * The module tree and every parameter name are those of the official
 * PyTorch code (segment_anything/modeling, mobile_sam/modeling), so an
 * official checkpoint converted by tools/convert_sam.py loads 1:1:
 *
 *   image_encoder.*   ViT (SAM B/L/H: patch_embed.proj, pos_embed,
 *                     blocks.{i}.{norm1,attn.{qkv,proj,rel_pos_h,rel_pos_w},
 *                     norm2,mlp.{lin1,lin2}}, neck.{0..3})
 *                     or TinyViT (MobileSAM: patch_embed.seq.{0,2}.{c,bn},
 *                     layers.0.blocks.{i}.conv{1,2,3}, layers.{i}.downsample,
 *                     layers.{1..3}.blocks.{i}.{attn.{norm,qkv,proj,
 *                     attention_biases},local_conv,mlp.{norm,fc1,fc2}},
 *                     neck.{0..3})
 *   prompt_encoder.*  pe_layer.positional_encoding_gaussian_matrix,
 *                     point_embeddings.{0..3}, not_a_point_embed,
 *                     mask_downscaling.{0,1,3,4,6}, no_mask_embed
 *   mask_decoder.*    transformer.layers.{0,1}.{self_attn,norm1,
 *                     cross_attn_token_to_image,norm2,mlp.{lin1,lin2},norm3,
 *                     norm4,cross_attn_image_to_token},
 *                     transformer.final_attn_token_to_image,
 *                     transformer.norm_final_attn, iou_token, mask_tokens,
 *                     output_upscaling.{0,1,3},
 *                     output_hypernetworks_mlps.{i}.layers.{j},
 *                     iou_prediction_head.layers.{j}
 *
 * Every forward is built from autograd ops, so the same code runs
 * inference (grad off) and training. BatchNorm buffers are f32
 * (num_batches_tracked is dropped by the converter). The image embedding
 * is computed once per image (tsr_sam_encode) and then serves any number
 * of prompts (tsr_sam_predict). */
#ifndef TESSERA_SAM_H
#define TESSERA_SAM_H
#include "tessera/core.h"

typedef enum { TSR_SAM_VIT = 0, TSR_SAM_TINYVIT = 1 } tsr_sam_encoder_kind;

typedef struct {
    int encoder;        /* tsr_sam_encoder_kind */
    int img_size;       /* square encoder input (1024); embedding grid img_size / 16 */
    /* ViT (SAM): patch 16 */
    int vit_dim, vit_depth, vit_heads, vit_window, vit_mlp_ratio;
    int vit_n_global, vit_global[8]; /* blocks with global attention */
    /* TinyViT (MobileSAM): four stages, stage 0 MBConv, the rest attention.
     * The last PatchMerging keeps the resolution (stride 1), as the official
     * rule does for every released TinyViT (out dims 320, 448, 576). */
    int tv_dims[4], tv_depths[4], tv_heads[4], tv_windows[4];
    int tv_mlp_ratio, tv_expand, tv_local_conv;
    /* prompt encoder + mask decoder */
    int dim;            /* transformer dim (256) */
    int mask_in_chans;  /* 16 */
    int dec_depth, dec_heads, dec_mlp; /* 2, 8, 2048 */
    int n_multimask;    /* 3 */
    int iou_hidden, iou_depth; /* 256, 3 */
} tsr_sam_cfg;

/* the released shapes */
tsr_sam_cfg tsr_sam_cfg_mobile(void);   /* MobileSAM TinyViT-5M */
tsr_sam_cfg tsr_sam_cfg_vit_b(void);    /* SAM ViT-B */
tsr_sam_cfg tsr_sam_cfg_vit_l(void);
tsr_sam_cfg tsr_sam_cfg_vit_h(void);
/* user input: returns an error naming the bad setting */
tsr_status tsr_sam_cfg_check(const tsr_sam_cfg *g);
/* config <-> NULL-terminated metadata pairs ("sam.encoder", "tinyvit", ...):
 * buf holds the strings (>= 2048 bytes); kv gets at most 64 entries */
void tsr_sam_cfg_to_meta(const tsr_sam_cfg *g, char *buf, size_t n, const char **kv, int max_kv);
/* reads "sam.*" keys with defaults from a base shape: absent keys keep *g */
tsr_status tsr_sam_cfg_from_meta(tsr_sam_cfg *g, const char *const *keys, const char *const *vals,
                                 int n);

typedef struct tsr_sam tsr_sam;
struct tsr_sam {
    tsr_sam_cfg cfg;
    tsr_params params;
    void *priv;         /* module pointers (sam.c) */
    int grid;           /* img_size / 16 */
    /* "apt.pixel_scale" metadata of a model trained here (0.5: it sees
     * images at half resolution, in img_size tiles); 0 for official weights
     * (whole images resized to img_size, SAM's way) */
    float pixel_scale;
};

/* registers every parameter (zeros; norms 1; BN var 1) */
tsr_status tsr_sam_init(tsr_sam *m, const tsr_sam_cfg *cfg);
void tsr_sam_free(tsr_sam *m);
/* training initialisation from scratch (truncated-normal-like linear and
 * conv weights, Gaussian PE matrix N(0,1) as the official scale 1) */
void tsr_sam_init_weights(tsr_sam *m, uint64_t seed);

/* img (B,3,S,S) already normalised and padded -> embedding (B,dim,g,g) */
tsr_tensor *tsr_sam_encode(tsr_ctx *c, const tsr_sam *m, tsr_tensor *img);

/* Prompts of N queries against one image embedding. coords f32 (N,P,2) in
 * encoder-input pixels (x, y), labels i32 (N,P): 1 foreground, 0
 * background, -1 padding; P may be 0 (coords NULL). boxes f32 (N,4)
 * x0,y0,x1,y1 or NULL. mask_in f32 (N,1,4g,4g) logits or NULL. */
typedef struct {
    tsr_tensor *coords, *labels, *boxes, *mask_in;
    int n;
} tsr_sam_prompts;

/* sparse (N,P',dim) and dense (N,dim,g,g) prompt embeddings */
void tsr_sam_prompt_encode(tsr_ctx *c, const tsr_sam *m, const tsr_sam_prompts *pr,
                           tsr_tensor **sparse, tsr_tensor **dense);
/* dense positional encoding of the grid (1,dim,g,g) */
tsr_tensor *tsr_sam_dense_pe(tsr_ctx *c, const tsr_sam *m);
/* emb (1,dim,g,g) -> low-res mask logits (N,k,4g,4g) and IoU (N,k);
 * k = n_multimask when multimask, else 1 */
void tsr_sam_predict(tsr_ctx *c, const tsr_sam *m, tsr_tensor *emb, const tsr_sam_prompts *pr,
                     bool multimask, tsr_tensor **masks, tsr_tensor **iou);

/* SAM's pixel statistics (RGB, 0..255) */
extern const float tsr_sam_pixel_mean[3], tsr_sam_pixel_std[3];
/* u8 RGB image (h,w,3) -> normalised (3,S,S) encoder input: resized so the
 * longest side is S (bilinear, half-pixel centres), zero-padded at the
 * bottom/right. *scale gets S / max(h,w). out holds 3*S*S floats. */
void tsr_sam_preprocess(float *out, const uint8_t *rgb, int h, int w, int S, float *scale);

/* load / save (safetensors; the config in "sam.*" metadata) */
tsr_status tsr_sam_load(tsr_sam *m, const char *path);
tsr_status tsr_sam_save(const tsr_sam *m, const char *path, const char *const *extra_meta);

#endif
