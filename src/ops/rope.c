/* tessera ops: rotary position embeddings (RoPE, Su et al. 2021, eq. 34)
 * for the attention of the LM families, in both pair layouts found in
 * checkpoints (interleaved pairs as Meta/llama2.c, rotate-half as HF
 * Llama), with positions per token or per row (tree / grouped decoding),
 * and a 2-D variant for image grids (rows in the first half of each head,
 * columns in the second).
 *
 * cos/sin tables are built once per op call (one entry per position and
 * frequency, shared over heads) with the angle in double, and saved for
 * the backward, which is the inverse rotation. */
#include "tessera/ops.h"

#include <math.h>

#define PAR_MIN (1 << 15)

void tsr_rope_table(float *cosb, float *sinb, const int32_t *pos, int64_t rows, int64_t d,
                    float theta) {
    int64_t half = d / 2;
    for (int64_t q = 0; q < rows; q++)
        for (int64_t i = 0; i < half; i++) {
            double a = (double)pos[q] * pow((double)theta, -2.0 * (double)i / (double)d);
            cosb[q * half + i] = (float)cos(a);
            sinb[q * half + i] = (float)sin(a);
        }
}

void tsr_rope_apply(float *y, const float *x, const float *cosb, const float *sinb,
                    int64_t tab_rows, int64_t R, int64_t H, int64_t D, int64_t off, int64_t d,
                    bool interleaved, float dir, bool acc) {
    const int64_t half = d / 2;
    /* stride between the two members of a pair and between pairs */
    const int64_t pair = interleaved ? 1 : half, step = interleaved ? 2 : 1;
#pragma omp parallel for schedule(static) if (R * H * d >= PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *cr = cosb + (r % tab_rows) * half, *sr = sinb + (r % tab_rows) * half;
        for (int64_t h = 0; h < H; h++) {
            const float *xv = x + (r * H + h) * D + off;
            float *yv = y + (r * H + h) * D + off;
#pragma omp simd
            for (int64_t i = 0; i < half; i++) {
                float c = cr[i], s = dir * sr[i];
                float a = xv[i * step], b = xv[i * step + pair];
                float ya = a * c - b * s, yb = a * s + b * c;
                if (acc) {
                    yv[i * step] += ya;
                    yv[i * step + pair] += yb;
                } else {
                    yv[i * step] = ya;
                    yv[i * step + pair] = yb;
                }
            }
        }
    }
}

void tsr_rope_apply_ref(float *y, const float *x, const int32_t *pos, int64_t tab_rows, int64_t R,
                        int64_t H, int64_t D, int64_t off, int64_t d, float theta, bool interleaved) {
    for (int64_t r = 0; r < R; r++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < d / 2; i++) {
                double a = pos[r % tab_rows] * pow((double)theta, -2.0 * (double)i / (double)d);
                int64_t j0 = interleaved ? 2 * i : i, j1 = interleaved ? 2 * i + 1 : i + d / 2;
                const float *xv = x + (r * H + h) * D + off;
                float *yv = y + (r * H + h) * D + off;
                double u = xv[j0], v = xv[j1];
                yv[j0] = (float)(u * cos(a) - v * sin(a));
                yv[j1] = (float)(u * sin(a) + v * cos(a));
            }
}

/* one rotated channel block: [off, off+d) */
typedef struct {
    float *cosb, *sinb;
    int64_t tab_rows, off, d;
} rope_block;

typedef struct {
    rope_block blk[2];
    int nblk;
    bool interleaved;
} rope_saved;

static void rope_backward(tsr_ctx *c, tsr_node *n) {
    tsr_tensor *x = n->in[0];
    rope_saved *s = n->saved;
    int64_t B = x->shape[0], T = x->shape[1], H = x->shape[2], D = x->shape[3];
    float *dx = tsr_grad(c, x);
    for (int k = 0; k < s->nblk; k++) {
        rope_block *b = &s->blk[k];
        tsr_rope_apply(dx, n->out->grad, b->cosb, b->sinb, b->tab_rows, B * T, H, D, b->off, b->d,
                       s->interleaved, -1.0f, true);
    }
}

static int64_t check_pos(const tsr_tensor *x, const tsr_tensor *pos) {
    TSR_ASSERT(pos->dtype == TSR_I32);
    int64_t B = x->shape[0], T = x->shape[1];
    TSR_ASSERT(pos->numel == T || pos->numel == B * T);
    return pos->numel;
}

static void make_block(tsr_ctx *c, rope_block *b, const tsr_tensor *x, const tsr_tensor *pos,
                       int64_t off, int64_t d, float theta) {
    b->tab_rows = check_pos(x, pos);
    b->off = off;
    b->d = d;
    size_t bytes = sizeof(float) * (size_t)(b->tab_rows * (d / 2));
    b->cosb = tsr_arena_alloc(&c->arena, bytes ? bytes : 1);
    b->sinb = tsr_arena_alloc(&c->arena, bytes ? bytes : 1);
    tsr_rope_table(b->cosb, b->sinb, tsr_i32(pos), b->tab_rows, d, theta);
}

static tsr_tensor *rope_run(tsr_ctx *c, tsr_tensor *x, rope_saved *s, const char *name) {
    int64_t B = x->shape[0], T = x->shape[1], H = x->shape[2], D = x->shape[3];
    tsr_tensor *y = tsr_new_like(c, x);
    for (int k = 0; k < s->nblk; k++) {
        rope_block *b = &s->blk[k];
        tsr_rope_apply(tsr_f32(y), tsr_f32(x), b->cosb, b->sinb, b->tab_rows, B * T, H, D, b->off,
                       b->d, s->interleaved, 1.0f, false);
    }
    tsr_node *n = tsr_record(c, name, rope_backward, y, 1, &x);
    if (n) n->saved = s;
    return y;
}

tsr_tensor *tsr_rope(tsr_ctx *c, tsr_tensor *x, const tsr_tensor *pos, float theta,
                     bool interleaved) {
    TSR_ASSERT(x->dtype == TSR_F32 && x->ndim == 4 && x->shape[3] % 2 == 0);
    rope_saved *s = tsr_arena_alloc(&c->arena, sizeof *s);
    s->nblk = 1;
    s->interleaved = interleaved;
    make_block(c, &s->blk[0], x, pos, 0, x->shape[3], theta);
    return rope_run(c, x, s, "rope");
}

tsr_tensor *tsr_rope2d(tsr_ctx *c, tsr_tensor *x, const tsr_tensor *pos_h,
                       const tsr_tensor *pos_w, float theta) {
    TSR_ASSERT(x->dtype == TSR_F32 && x->ndim == 4 && x->shape[3] % 4 == 0);
    int64_t D = x->shape[3];
    rope_saved *s = tsr_arena_alloc(&c->arena, sizeof *s);
    s->nblk = 2;
    s->interleaved = false;
    make_block(c, &s->blk[0], x, pos_h, 0, D / 2, theta);
    make_block(c, &s->blk[1], x, pos_w, D / 2, D / 2, theta);
    return rope_run(c, x, s, "rope2d");
}
