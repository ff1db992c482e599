/* Tests for src/ops/rope.c: 1-D RoPE in both layouts, positions per token
 * and per row, 2-D RoPE. Kernel vs naive twin, layout relation, per-row
 * positions vs running each row alone, gradient checks, PyTorch fixtures
 * (tools/refs/gen_norm.py computes the references in float64).
 * Tolerances:
 * - kernel vs double ref: atol 1e-6 rtol 1e-5 (one f32 rotation).
 * - vs PyTorch: atol 1e-5 rtol 1e-5 (f32 cos/sin of double angles, then
 *   two f32 products; positions up to 1500).
 * - interleaved == permute(halves(permute(x))): exact (same arithmetic).
 * - gradcheck: eps 1e-2, atol 1e-3 rtol 1e-2 (RoPE is linear in x). */
#include "testutil.h"
#include "tessera/ops.h"

#include <math.h>
#include <string.h>

typedef struct {
    float theta;
    int mode; /* 0 interleaved, 1 halves, 2 2-D */
} gc_ud;

static tsr_tensor *rope_fn(tsr_ctx *c, tsr_tensor **in, void *ud) {
    gc_ud *u = ud;
    if (u->mode == 2) return tsr_rope2d(c, in[0], in[1], in[2], u->theta);
    return tsr_rope(c, in[0], in[1], u->theta, u->mode == 0);
}

enum { B = 2, T = 4, H = 3, D = 8 };
#define NX (B * T * H * D)

static void test_kernel_vs_ref(void) {
    float x[NX], y[NX], yr[NX], cb[B * T * D / 2], sb[B * T * D / 2];
    int32_t pos[B * T] = {0, 5, 9, 1000, 3, 3, 70, 2};
    tu_randn(x, NX, 51, 1);
    for (int il = 0; il < 2; il++)
        for (int per_row = 0; per_row < 2; per_row++) {
            int64_t rows = per_row ? B * T : T;
            tsr_rope_table(cb, sb, pos, rows, D, 10000.0f);
            tsr_rope_apply(y, x, cb, sb, rows, B * T, H, D, 0, D, il, 1.0f, false);
            tsr_rope_apply_ref(yr, x, pos, rows, B * T, H, D, 0, D, 10000.0f, il);
            tu_close("rope apply vs ref", y, yr, NX, 1e-6, 1e-5);
            /* the inverse rotation (backward) undoes the forward */
            memset(yr, 0, sizeof yr);
            tsr_rope_apply(yr, y, cb, sb, rows, B * T, H, D, 0, D, il, -1.0f, true);
            tu_close("rope inverse", yr, x, NX, 1e-6, 1e-5);
        }
}

/* Interleaved pairs (2i, 2i+1) are the halves pairs (i, i+D/2) after a
 * channel permutation; and on the same input the two layouts differ. */
static void test_layouts(void) {
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 16);
    float x[NX], xp[NX];
    tu_randn(x, NX, 52, 1);
    for (int64_t r = 0; r < B * T * H; r++)
        for (int i = 0; i < D / 2; i++) {
            xp[r * D + i] = x[r * D + 2 * i];
            xp[r * D + i + D / 2] = x[r * D + 2 * i + 1];
        }
    tsr_tensor *pos = tsr_new(&c, TSR_I32, TSR_DIMS(T));
    for (int t = 0; t < T; t++) tsr_i32(pos)[t] = 3 * t + 1;
    tsr_tensor *yi = tsr_rope(&c, tsr_from_f32(&c, TSR_DIMS(B, T, H, D), x), pos, 10000.0f, true);
    tsr_tensor *yh = tsr_rope(&c, tsr_from_f32(&c, TSR_DIMS(B, T, H, D), xp), pos, 10000.0f, false);
    tsr_tensor *yh2 = tsr_rope(&c, tsr_from_f32(&c, TSR_DIMS(B, T, H, D), x), pos, 10000.0f, false);
    float back[NX];
    double maxdiff = 0;
    for (int64_t r = 0; r < B * T * H; r++)
        for (int i = 0; i < D / 2; i++) {
            back[r * D + 2 * i] = tsr_f32(yh)[r * D + i];
            back[r * D + 2 * i + 1] = tsr_f32(yh)[r * D + i + D / 2];
        }
    for (int64_t k = 0; k < NX; k++) maxdiff = fmax(maxdiff, fabs(tsr_f32(yi)[k] - tsr_f32(yh2)[k]));
    tu_close("interleaved == permuted halves", tsr_f32(yi), back, NX, 0, 0);
    TU_CHECK(maxdiff > 0.1, "interleaved and halves layouts agree (max diff %g)", maxdiff);
    tsr_ctx_free(&c);
}

/* B*T positions: row b must equal the T-shared op run on row b alone */
static void test_per_row(void) {
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 16);
    float x[NX];
    int32_t pos[B * T] = {0, 1, 2, 3, 9, 4, 4, 300};
    tu_randn(x, NX, 53, 1);
    for (int il = 0; il < 2; il++) {
        tsr_ctx_reset(&c);
        tsr_tensor *p = tsr_wrap(&c, TSR_I32, TSR_DIMS(B * T), pos);
        tsr_tensor *y = tsr_rope(&c, tsr_from_f32(&c, TSR_DIMS(B, T, H, D), x), p, 10000.0f, il);
        for (int b = 0; b < B; b++) {
            tsr_tensor *pb = tsr_wrap(&c, TSR_I32, TSR_DIMS(T), pos + b * T);
            tsr_tensor *xb = tsr_from_f32(&c, TSR_DIMS(1, T, H, D), x + b * T * H * D);
            tsr_tensor *yb = tsr_rope(&c, xb, pb, 10000.0f, il);
            tu_close("rope per-row positions", tsr_f32(y) + b * T * H * D, tsr_f32(yb), T * H * D, 0, 0);
        }
    }
    tsr_ctx_free(&c);
}

static void test_gradcheck(void) {
    float x[NX];
    int32_t pos_t[T] = {2, 0, 7, 11}, pos_bt[B * T] = {0, 1, 2, 3, 40, 41, 5, 6};
    tu_randn(x, NX, 54, 1);
    gc_ud u = {10000.0f, 0};
    for (int m = 0; m < 2; m++) {
        u.mode = m;
        gc_input in[2] = {{TSR_F32, 4, {B, T, H, D}, x, true}, {TSR_I32, 1, {T}, pos_t, false}};
        tu_gradcheck(m ? "rope halves" : "rope interleaved", rope_fn, &u, 2, in, 1e-2, 1e-3, 1e-2, 1000);
        gc_input inr[2] = {{TSR_F32, 4, {B, T, H, D}, x, true}, {TSR_I32, 1, {B * T}, pos_bt, false}};
        tu_gradcheck(m ? "rope halves per row" : "rope interleaved per row", rope_fn, &u, 2, inr, 1e-2, 1e-3,
                     1e-2, 1000);
    }
    u.mode = 2;
    u.theta = 100.0f;
    gc_input in2[3] = {{TSR_F32, 4, {B, T, H, D}, x, true}, {TSR_I32, 1, {T}, pos_t, false},
                       {TSR_I32, 1, {B * T}, pos_bt, false}};
    tu_gradcheck("rope2d", rope_fn, &u, 3, in2, 1e-2, 1e-3, 1e-2, 1000);
}

static void fixture(tref *r, tsr_ctx *c, const char *name, bool il, float theta) {
    char k[5][64];
    const char *sfx[5] = {"x", "pos", "y", "gy", "gx"};
    for (int i = 0; i < 5; i++) snprintf(k[i], sizeof k[i], "rope_%s_%s", name, sfx[i]);
    tsr_ctx_reset(c);
    tsr_tensor *x = tref_tensor(c, r, k[0], true), *pos = tref_tensor(c, r, k[1], false);
    tsr_tensor *y = tsr_rope(c, x, pos, theta, il);
    tu_close_ref(r, k[2], tsr_f32(y), y->numel, 1e-5, 1e-5);
    tsr_backward_with(c, y, tref_get(r, k[3])->data);
    tu_close_ref(r, k[4], x->grad, x->numel, 1e-5, 1e-5);
}

int main(void) {
    tsr_threads_set(0);
    test_kernel_vs_ref();
    test_layouts();
    test_per_row();
    test_gradcheck();
    tref *r = tref_load("tests/refs/rope.tref");
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    fixture(r, &c, "i", true, 10000.0f);
    fixture(r, &c, "h", false, 10000.0f);
    fixture(r, &c, "ri", true, 10000.0f);
    fixture(r, &c, "rh", false, 500.0f);
    tsr_ctx_reset(&c);
    tsr_tensor *x = tref_tensor(&c, r, "rope2d_x", true);
    tsr_tensor *y = tsr_rope2d(&c, x, tref_tensor(&c, r, "rope2d_ph", false), tref_tensor(&c, r, "rope2d_pw", false),
                               100.0f);
    tu_close_ref(r, "rope2d_y", tsr_f32(y), y->numel, 1e-5, 1e-5);
    tsr_backward_with(&c, y, tref_get(r, "rope2d_gy")->data);
    tu_close_ref(r, "rope2d_gx", x->grad, x->numel, 1e-5, 1e-5);
    tsr_ctx_free(&c);
    tref_free(r);
    return tu_finish("ops_rope");
}
