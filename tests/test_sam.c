/* Tests for the SAM-family segmenter (src/models/apt/sam.c) against the
 * PyTorch reference tools/refs/sam_ref.py (official module tree), reduced
 * sizes, random weights. The weights come through tools/convert_sam.py from
 * a torch.save'd state dict (tests/refs/sam_{tinyvit,vit}.safetensors), so
 * this also checks the converter's round trip end to end.
 * Tolerances (f32 on both sides, different summation orders): image
 * embedding atol 2e-4 rtol 1e-3 (|emb| <= 4, after LayerNorm2d); masks and
 * IoU atol 5e-4 rtol 2e-3; parameter gradients of a fixed scalar of the
 * outputs rtol 2e-3, atol 1e-4 + 2e-3 * max|grad| (sums over thousands of
 * outputs). Also: one embedding serves several prompt sets (cached) with
 * results identical to a fresh encoder pass, and files without SAM
 * metadata are refused. */
#include "testutil.h"
#include "tessera/ops.h"
#include "tessera/safetensors.h"
#include "tessera/sam.h"
#include "tessera/apt_train.h"

#include <math.h>
#include <string.h>

static tsr_tensor *ref(tsr_ctx *c, const tref *r, const char *n) { return tref_tensor(c, r, n, false); }

static void check_kind(const char *kind) {
    char path[256], tpath[256];
    snprintf(path, sizeof path, "tests/refs/sam_%s.safetensors", kind);
    snprintf(tpath, sizeof tpath, "tests/refs/sam_%s.tref", kind);
    tsr_sam m;
    tsr_status st = tsr_sam_load(&m, path);
    TU_CHECK(st.code == TSR_OK, "load %s: %s", path, st.msg);
    if (st.code) return;
    tref *r = tref_load(tpath);
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 24);
    c.grad_enabled = false;
    c.training = false;
    double t0 = tsr_time();
    tsr_tensor *emb = tsr_sam_encode(&c, &m, ref(&c, r, "img"));
    double t1 = tsr_time();
    tu_close_ref(r, "emb", tsr_f32(emb), emb->numel, 2e-4, 1e-3);
    /* a: two prompt sets of three points, multimask */
    tsr_sam_prompts a = {.coords = ref(&c, r, "coords"), .labels = ref(&c, r, "labels"), .n = 2};
    tsr_tensor *mk, *iou;
    tsr_sam_predict(&c, &m, emb, &a, true, &mk, &iou);
    TU_CHECK(mk->ndim == 4 && mk->shape[0] == 2 && mk->shape[1] == 3 && mk->shape[2] == 4 * m.grid,
             "masks_a shape");
    tu_close_ref(r, "masks_a", tsr_f32(mk), mk->numel, 5e-4, 2e-3);
    tu_close_ref(r, "iou_a", tsr_f32(iou), iou->numel, 5e-4, 2e-3);
    float first = tsr_f32(mk)[5];
    /* b: one point + a box + a low-res mask, single mask */
    tsr_tensor *c1 = tsr_slice(&c, tsr_slice(&c, a.coords, 0, 0, 1), 1, 0, 1);
    tsr_tensor *l1 = tsr_slice(&c, tsr_slice(&c, a.labels, 0, 0, 1), 1, 0, 1);
    tsr_sam_prompts b = {.coords = c1, .labels = l1, .boxes = ref(&c, r, "box"),
                         .mask_in = ref(&c, r, "mask_in"), .n = 1};
    tsr_sam_predict(&c, &m, emb, &b, false, &mk, &iou);
    TU_CHECK(mk->shape[1] == 1, "single-mask output");
    tu_close_ref(r, "masks_b", tsr_f32(mk), mk->numel, 5e-4, 2e-3);
    tu_close_ref(r, "iou_b", tsr_f32(iou), iou->numel, 5e-4, 2e-3);
    /* c: a box alone */
    tsr_sam_prompts bx = {.boxes = ref(&c, r, "box"), .n = 1};
    tsr_sam_predict(&c, &m, emb, &bx, true, &mk, &iou);
    tu_close_ref(r, "masks_c", tsr_f32(mk), mk->numel, 5e-4, 2e-3);
    tu_close_ref(r, "iou_c", tsr_f32(iou), iou->numel, 5e-4, 2e-3);
    /* the cached embedding gives what a fresh pass gives, bit for bit */
    tsr_tensor *emb2 = tsr_sam_encode(&c, &m, ref(&c, r, "img"));
    tsr_sam_predict(&c, &m, emb2, &a, true, &mk, &iou);
    TU_CHECK(tsr_f32(mk)[5] == first, "cached embedding reused: %g vs %g", tsr_f32(mk)[5], first);
    fprintf(stderr, "  %s: encoder %.1f ms, %lld params\n", kind, 1e3 * (t1 - t0),
            (long long)tsr_params_count(&m.params));
    /* gradients of loss = sum(masks_a * R) + 3 sum(iou_a) + mean(masks_b)
     * against PyTorch's (eval mode: BatchNorm on running statistics) */
    tsr_ctx_reset(&c);
    c.grad_enabled = true;
    c.training = false;
    tsr_params_zero_grad(&m.params);
    emb = tsr_sam_encode(&c, &m, ref(&c, r, "img"));
    tsr_sam_prompts a2 = {.coords = ref(&c, r, "coords"), .labels = ref(&c, r, "labels"), .n = 2};
    tsr_sam_predict(&c, &m, emb, &a2, true, &mk, &iou);
    tsr_tensor *loss = tsr_add(&c, tsr_sum_all(&c, tsr_mul(&c, mk, ref(&c, r, "R"))),
                               tsr_scale(&c, tsr_sum_all(&c, iou), 3.0f));
    tsr_tensor *c2 = tsr_slice(&c, tsr_slice(&c, a2.coords, 0, 0, 1), 1, 0, 1);
    tsr_tensor *l2 = tsr_slice(&c, tsr_slice(&c, a2.labels, 0, 0, 1), 1, 0, 1);
    tsr_sam_prompts b2 = {.coords = c2, .labels = l2, .boxes = ref(&c, r, "box"), .mask_in = ref(&c, r, "mask_in"), .n = 1};
    tsr_sam_predict(&c, &m, emb, &b2, false, &mk, &iou);
    loss = tsr_add(&c, loss, tsr_mean_all(&c, mk));
    tu_close_ref(r, "loss", tsr_f32(loss), 1, 1e-3, 1e-4);
    tsr_backward(&c, loss);
    int checked = 0, bad = 0;
    for (int i = 0; i < m.params.n; i++) {
        const tsr_tensor *p = m.params.items[i];
        char key[160];
        snprintf(key, sizeof key, "grad.%s", p->name);
        const tref_entry *e = tref_find(r, key);
        if (!e) continue;
        /* grads are sums over up to 3*2*32*32 outputs: atol scaled by the largest */
        double mx = 0;
        for (int64_t k = 0; k < e->numel; k++) mx = fmax(mx, fabs(((const float *)e->data)[k]));
        bool ok = p->grad && tu_close_ref(r, key, p->grad, p->numel, 1e-4 + 2e-3 * mx, 2e-3);
        checked++;
        bad += !ok;
    }
    TU_CHECK(checked > m.params.n / 2 && bad == 0, "%s: %d parameter grads checked, %d off", kind, checked, bad);
    tsr_ctx_free(&c);
    tref_free(r);
    tsr_sam_free(&m);
}

static double sd_of(const tsr_tensor *t, double *maxabs) {
    double s = 0, s2 = 0, mx = 0;
    const float *v = tsr_f32(t);
    for (int64_t i = 0; i < t->numel; i++) {
        s += v[i];
        s2 += (double)v[i] * v[i];
        if (fabs(v[i]) > mx) mx = fabs(v[i]);
    }
    *maxabs = mx;
    double m = s / (double)t->numel;
    return sqrt(s2 / (double)t->numel - m * m);
}

/* from-scratch initialisation: N(0, 1) for the embedding tables only;
 * fan-in scaling for the patch-embedding convolutions and the decoder's
 * token-to-image attention (whose N(0, 1) start stalled training), zero
 * biases */
static void check_init(void) {
    tsr_sam_cfg g = tsr_apt_small_cfg();
    tsr_sam m;
    tsr_status st = tsr_sam_init(&m, &g);
    TU_CHECK(st.code == TSR_OK, "init: %s", st.msg);
    if (st.code) return;
    tsr_sam_init_weights(&m, 5);
    struct { const char *name; double sd; } want[] = {
        {"mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight", 1.0 / 8.0},
        {"mask_decoder.transformer.final_attn_token_to_image.v_proj.weight", 1.0 / 8.0},
        {"image_encoder.patch_embed.seq.0.c.weight", 1.0 / sqrt(27.0)},
        {"mask_decoder.mask_tokens.weight", 1.0},
        {"prompt_encoder.point_embeddings.1.weight", 1.0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        tsr_tensor *t = tsr_params_find(&m.params, want[i].name);
        TU_CHECK(t != NULL, "init: %s present", want[i].name);
        if (!t) continue;
        double mx, sd = sd_of(t, &mx);
        double lo = t->numel >= 200 ? 0.75 : 0.4, hi = t->numel >= 200 ? 1.25 : 1.8;
        TU_CHECK(sd > lo * want[i].sd && sd < hi * want[i].sd, "init: %s sd %.4f, want about %.4f", want[i].name, sd,
                 want[i].sd);
    }
    tsr_tensor *b = tsr_params_find(&m.params, "mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.bias");
    double mx = 1;
    if (b) sd_of(b, &mx);
    TU_CHECK(b && mx == 0.0, "init: attention biases start at 0 (max |b| %g)", mx);
    tsr_sam_free(&m);
}

int main(void) {
    check_init();
    check_kind("tinyvit");
    check_kind("vit");
    /* a safetensors file that is not a SAM checkpoint is refused with a message */
    tsr_sam m;
    tsr_status st = tsr_sam_load(&m, "tests/refs/st_basic.safetensors");
    TU_CHECK(st.code != TSR_OK && strstr(st.msg, "SAM"), "non-SAM file refused: %s", st.msg);
    st = tsr_sam_load(&m, "tests/refs/no_such_file.safetensors");
    TU_CHECK(st.code != TSR_OK, "missing file refused");
    /* the released shapes pass the config check */
    tsr_sam_cfg cf[4] = {tsr_sam_cfg_mobile(), tsr_sam_cfg_vit_b(), tsr_sam_cfg_vit_l(), tsr_sam_cfg_vit_h()};
    for (int i = 0; i < 4; i++) {
        st = tsr_sam_cfg_check(&cf[i]);
        TU_CHECK(st.code == TSR_OK, "config %d: %s", i, st.msg);
    }
    tsr_sam_cfg bad = tsr_sam_cfg_mobile();
    bad.dec_heads = 7;
    TU_CHECK(tsr_sam_cfg_check(&bad).code != TSR_OK, "bad decoder heads refused");
    return tu_finish("sam");
}
