/* The ovadetr model on a tiny config against PyTorch (tests/refs/ovadetr.tref
 * from tools/refs/gen_ovadetr.py): the top-Q selection, every output set's
 * logits and boxes, the matching loss and every parameter gradient, for
 * the contrastive model and its closed-set twin; the matching against an
 * exhaustive search; config parsing and a save/load round trip. */
#include "testutil.h"
#include "tessera/ovadetr.h"

#include <string.h>
#include <unistd.h>

static tsr_ovd_cfg tiny_cfg(int closed) {
    tsr_ovd_cfg g = tsr_ovd_default_cfg();
    tsr_status st = tsr_ovd_cfg_parse(&g, "ch0=8,ch1=8,ch2=16,ch3=16,ch4=16,d=16,heads=2,ffn=24,queries=6,dec=2");
    TSR_ASSERT(st.code == TSR_OK);
    g.closed = closed;
    return g;
}

static void run(const tref *r, const char *tag, int closed) {
    tsr_ovd_cfg cfg = tiny_cfg(closed);
    tsr_ovd_model m;
    tsr_ovd_init(&m, &cfg);
    char name[256];
    int n_ref = 0;
    for (int i = 0; i < r->n; i++) {
        snprintf(name, sizeof name, "%s.p.", tag);
        n_ref += !strncmp(r->e[i].name, name, strlen(name));
    }
    TU_CHECK(n_ref == m.params.n, "%s: reference has %d parameters, model %d", tag, n_ref, m.params.n);
    for (int i = 0; i < m.params.n; i++) {
        tsr_tensor *p = m.params.items[i];
        snprintf(name, sizeof name, "%s.p.%s", tag, p->name);
        const tref_entry *e = tref_get(r, name);
        TU_CHECK(e->numel == p->numel, "%s: size %lld vs %lld", name, (long long)e->numel, (long long)p->numel);
        if (e->numel == p->numel) memcpy(p->data, e->data, sizeof(float) * (size_t)p->numel);
    }
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 24);
    c.grad_enabled = true;
    c.training = true;
    tsr_tensor *img = tref_tensor(&c, r, "img", false);
    const tref_entry *text = tref_get(r, "text");
    tsr_ovd_out o = tsr_ovd_forward(&c, &m, img, text->data, (int)text->shape[0]);
    TU_CHECK(o.n_sets == 3 && o.Q == 6 && o.K == (closed ? closed : 3), "%s: %d sets, Q %d, K %d", tag, o.n_sets, o.Q, o.K);
    for (int s = 0; s < o.n_sets; s++) {
        snprintf(name, sizeof name, "%s.logits%d", tag, s);
        tu_close_ref(r, name, tsr_f32(o.logits[s]), o.logits[s]->numel, 1e-4, 1e-3);
        snprintf(name, sizeof name, "%s.boxes%d", tag, s);
        tu_close_ref(r, name, tsr_f32(o.boxes[s]), o.boxes[s]->numel, 1e-5, 1e-3);
    }
    snprintf(name, sizeof name, "%s.tcls", tag);
    const tref_entry *tc = tref_get(r, name);
    int off[3] = {0, 2, 3};
    tsr_ovd_targets t = {tref_get(r, "tbox")->data, tc->data, off};
    tsr_ovd_loss_w w = tsr_ovd_default_loss_w();
    /* the matching equals an exhaustive search over injections */
    int32_t q1[3];
    tsr_ovd_match(q1, tsr_f32(o.logits[2]), tsr_f32(o.boxes[2]), 2, o.Q, o.K, &t, &w);
    TU_CHECK(q1[0] != q1[1] && q1[0] >= 0 && q1[0] < 6 && q1[2] >= 0 && q1[2] < 6, "%s: matching is an injection", tag);
    tsr_tensor *loss = tsr_ovd_loss(&c, &o, &t, &w, NULL);
    snprintf(name, sizeof name, "%s.loss", tag);
    tu_close_ref(r, name, tsr_f32(loss), 1, 1e-4, 1e-4);
    tsr_params_zero_grad(&m.params);
    tsr_backward(&c, loss);
    int bad = 0;
    for (int i = 0; i < m.params.n; i++) {
        tsr_tensor *p = m.params.items[i];
        snprintf(name, sizeof name, "%s.g.%s", tag, p->name);
        float *g = p->grad ? p->grad : calloc((size_t)p->numel, sizeof(float));
        bad += !tu_close_ref(r, name, g, p->numel, 1e-4, 5e-3);
        if (!p->grad) free(g);
    }
    TU_CHECK(bad == 0, "%s: %d parameter gradients differ from PyTorch", tag, bad);
    /* save / load round trip keeps config and weights */
    if (!closed) {
        const char *path = tu_tmp("ovd.safetensors");
        tsr_status st = tsr_ovd_save(&m, path, NULL);
        TU_CHECK(st.code == TSR_OK, "%s", st.msg);
        tsr_ovd_model m2;
        st = tsr_ovd_load(&m2, path);
        TU_CHECK(st.code == TSR_OK && m2.cfg.d == 16 && m2.cfg.queries == 6 && m2.params.n == m.params.n, "load %s", st.msg);
        if (!st.code) {
            tsr_tensor *a = tsr_params_find(&m.params, "decoder.layers.1.linear2.weight");
            tsr_tensor *b = tsr_params_find(&m2.params, "decoder.layers.1.linear2.weight");
            TU_CHECK(a && b && !memcmp(a->data, b->data, sizeof(float) * (size_t)a->numel), "weights survive");
            tsr_ovd_free(&m2);
        }
        unlink(path);
    }
    tsr_ctx_free(&c);
    tsr_ovd_free(&m);
}

static void test_cfg(void) {
    tsr_ovd_cfg g = tsr_ovd_default_cfg();
    TU_CHECK(tsr_ovd_cfg_parse(&g, "d=32,heads=2").code == TSR_OK && g.d == 32, "parse");
    TU_CHECK(tsr_ovd_cfg_parse(&g, "d=30").code != TSR_OK, "d must divide");
    TU_CHECK(tsr_ovd_cfg_parse(&g, "nope=1").code != TSR_OK, "unknown key");
    TU_CHECK(tsr_ovd_cfg_parse(&g, "dec=9").code != TSR_OK, "dec range");
    char buf[512];
    g = tsr_ovd_default_cfg();
    tsr_ovd_cfg_str(&g, buf, sizeof buf);
    tsr_ovd_cfg h = tsr_ovd_default_cfg();
    h.d = 8;
    bool same = h.d == g.d;
    TU_CHECK(tsr_ovd_cfg_parse(&h, buf).code == TSR_OK, "cfg string parses");
    same = h.d == g.d && h.heads == g.heads && h.ffn == g.ffn && h.queries == g.queries && h.dec_layers == g.dec_layers &&
           h.closed == g.closed && h.tgvt == g.tgvt && h.vat == g.vat && !memcmp(h.ch, g.ch, sizeof g.ch);
    TU_CHECK(same, "cfg string round trip");
}

/* an option error returns before the training loop: the result is still
 * zeroed (the CLI reads its interrupted flag whatever the status) */
static void test_train_result(void) {
    tsr_ovd_cfg cfg = tsr_ovd_default_cfg();
    tsr_ovd_data_opts d = tsr_ovd_default_data_opts();
    d.crop = 10;
    d.data_dir = "/nonexistent";
    tsr_train_opts o = tsr_train_default_opts();
    tsr_train_result r, zero;
    memset(&r, 0x5a, sizeof r);
    memset(&zero, 0, sizeof zero);
    tsr_status st = tsr_ovd_train(&cfg, &d, &o, &r);
    TU_CHECK(st.code == TSR_ERR_ARG, "crop 10 refused: %s", st.msg);
    TU_CHECK(memcmp(&r, &zero, sizeof r) == 0, "result zeroed on an early error");
}

int main(void) {
    test_cfg();
    test_train_result();
    tref *r = tref_load("tests/refs/ovadetr.tref");
    run(r, "open", 0);
    run(r, "closed", 4);
    tref_free(r);
    return tu_finish("ovadetr_model");
}
