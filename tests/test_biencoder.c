/* Tests for the search bi-encoder (src/search/biencoder.c): embeddings,
 * InfoNCE loss and every parameter gradient against the PyTorch reference
 * of tools/refs/gen_biencoder.py on a tiny config (padding mask, pooling,
 * efficiency MLP, in-batch + extra negatives); padding invariance; unit
 * norms. */
#include "testutil.h"
#include "tessera/search.h"

#include <math.h>
#include <string.h>

static tsr_tensor *ref_i32(tsr_ctx *c, const tref *r, const char *name) {
    const tref_entry *e = tref_get(r, name);
    TSR_ASSERT(e->dtype == TSR_I32);
    tsr_tensor *t = tsr_new(c, TSR_I32, e->ndim, e->shape);
    memcpy(t->data, e->data, 4 * (size_t)e->numel);
    return t;
}

int main(void) {
    tref *r = tref_load("tests/refs/biencoder.tref");
    tsr_benc_cfg cfg = {.dim = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = 24,
                        .vocab = 30, .max_seq = 8, .eff_hidden = 8};
    tsr_benc m;
    tsr_status st = tsr_benc_init(&m, &cfg);
    TU_CHECK(st.code == TSR_OK, "init: %s", st.msg);
    int n_w = tu_ref_load_params(r, &m.params, "w.", NULL);
    int n_ref = 0;
    for (int i = 0; i < r->n; i++) n_ref += strncmp(r->e[i].name, "w.", 2) == 0;
    TU_CHECK(n_w == n_ref && n_w == m.params.n, "%d params, reference has %d", m.params.n, n_ref);

    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    c.grad_enabled = true;
    tsr_tensor *qt = ref_i32(&c, r, "q_tokens"), *dt = ref_i32(&c, r, "d_tokens");
    const int32_t *ql = (const int32_t *)tref_get(r, "q_lens")->data, *dl = (const int32_t *)tref_get(r, "d_lens")->data;
    tsr_tensor *eff = tref_tensor(&c, r, "eff", false);
    tsr_tensor *qe = tsr_benc_encode(&c, &m, qt, ql, NULL, NULL);
    tsr_tensor *de = tsr_benc_encode(&c, &m, dt, dl, eff, NULL);
    tsr_tensor *loss = tsr_benc_infonce(&c, qe, de, 0.1f, NULL);
    tu_close_ref(r, "q_emb", tsr_f32(qe), qe->numel, 1e-5, 1e-4);
    tu_close_ref(r, "d_emb", tsr_f32(de), de->numel, 1e-5, 1e-4);
    tu_close_ref(r, "loss", tsr_f32(loss), 1, 1e-5, 1e-5);
    for (int b = 0; b < 5; b++) {
        double n2 = 0;
        for (int j = 0; j < 16; j++) n2 += (double)tsr_f32(de)[b * 16 + j] * tsr_f32(de)[b * 16 + j];
        TU_CHECK(fabs(n2 - 1) < 1e-5, "item %d norm^2 %g", b, n2);
    }
    tsr_params_zero_grad(&m.params);
    tsr_backward(&c, loss);
    tu_close_ref_grads(r, &m.params, "grad.", 1e-5, 1e-4);
    /* what lies past a row's length changes nothing */
    tsr_ctx_reset(&c);
    c.grad_enabled = false;
    qt = ref_i32(&c, r, "q_tokens");
    for (int b = 0; b < 3; b++)
        for (int t = ql[b]; t < 5; t++) tsr_i32(qt)[b * 5 + t] = (tsr_i32(qt)[b * 5 + t] + 7) % 30;
    qe = tsr_benc_encode(&c, &m, qt, ql, NULL, NULL);
    tu_close_ref(r, "q_emb", tsr_f32(qe), qe->numel, 1e-5, 1e-4);
    /* the text-only output of an item forward is the forward without eff */
    dt = ref_i32(&c, r, "d_tokens");
    tsr_tensor *plain = NULL, *alone = tsr_benc_encode(&c, &m, dt, dl, NULL, NULL);
    tsr_benc_encode(&c, &m, dt, dl, eff, &plain);
    TU_CHECK(plain && memcmp(tsr_f32(plain), tsr_f32(alone), sizeof(float) * (size_t)alone->numel) == 0,
             "plain embedding == encode without efficiency");
    /* a masked-out negative is no negative: loss == CE over the rest */
    tsr_tensor *mask = tsr_zeros(&c, TSR_F32, TSR_DIMS(3, 5));
    tsr_f32(mask)[0 * 5 + 4] = -1e9f;
    const float *qv = (const float *)tref_get(r, "q_emb")->data, *dv = (const float *)tref_get(r, "d_emb")->data;
    tsr_tensor *qq = tsr_from_f32(&c, TSR_DIMS(3, 16), qv), *dd = tsr_from_f32(&c, TSR_DIMS(5, 16), dv);
    float lm = tsr_f32(tsr_benc_infonce(&c, qq, dd, 0.1f, mask))[0];
    double want = 0;
    for (int i = 0; i < 3; i++) {
        double z = 0, pos = 0;
        for (int j = 0; j < 5; j++) {
            if (i == 0 && j == 4) continue;
            double s = 0;
            for (int k = 0; k < 16; k++) s += (double)qv[i * 16 + k] * dv[j * 16 + k];
            z += exp(s / 0.1);
            if (j == i) pos = s / 0.1;
        }
        want += (log(z) - pos) / 3;
    }
    TU_CHECK(fabs(lm - want) < 1e-4, "masked InfoNCE %.6f, want %.6f", lm, want);
    tsr_ctx_free(&c);
    tsr_benc_free(&m);
    tref_free(r);
    return tu_finish("biencoder");
}
