/* Tests for the bigr family (src/models/bigr): the masking and unmasking
 * schedules, the Bernoulli-diffusion schedule (closed form, composition of
 * one-step kernels, empirical flip rates), the reverse-jump posterior, the
 * class-balanced BCE weights, the whole tiny model's loss gradients
 * against central finite differences, checkpoint round trip, the sampler
 * (known positions kept, bits valid, seeded determinism, every position
 * fixed), the linear probe, and bit-exact resume of the trainer.
 * Tolerances: schedule values exact or 1e-12 (double); empirical rates
 * within 5 standard errors; model gradients vs central differences (f32
 * forward, eps 1e-2 on parameters of a smooth network: truncation ~eps^2,
 * rounding ~1e-7/eps) atol 2e-4 + rtol 2e-2; against PyTorch
 * (tools/refs/gen_bigr.py, f32 both sides): z and logits atol 1e-5 rtol
 * 1e-4, loss atol 1e-6 rtol 1e-5, parameter grads atol 1e-6 rtol 1e-3
 * (sums over ~100 rows of f32 products); round trip and resume exact.
 * The model is composed only of ops that are gradchecked and held to
 * PyTorch in their own tests (linear, rmsnorm, layernorm, rope2d,
 * attention, swiglu, silu, bce_with_logits, index_select, concat, slice). */
#include "testutil.h"
#include "tessera/bigr.h"
#include "tessera/ops.h"
#include "tessera/safetensors.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

static tsr_bigr_cfg tiny_cfg(void) {
    tsr_bigr_cfg g = tsr_bigr_default_cfg();
    g.bits = 4, g.dim = 16, g.n_layers = 2, g.n_heads = 2, g.ffn_hidden = 24, g.classes = 3;
    g.tc_hidden = 8, g.tc_blocks = 2, g.T = 16;
    return g;
}

static void test_schedules(void) {
    TU_CHECK(tsr_bigr_mask_count(49, 0.0) == 49, "r=0 masks everything");
    TU_CHECK(tsr_bigr_mask_count(49, 48.0 / 49) == 1, "r near 1 masks one (max(1, .))");
    TU_CHECK(tsr_bigr_mask_count(49, 0.5) == (int)floor(49 * cos(3.14159265358979323846 / 4)), "r=0.5: %d", tsr_bigr_mask_count(49, 0.5));
    int prev = 49, sum = 0;
    bool mono = true;
    for (int it = 0; it < 10; it++) {
        int k = tsr_bigr_masked_after(49, it, 10);
        mono &= k <= prev;
        sum += prev - k;
        prev = k;
    }
    TU_CHECK(mono && prev == 0 && sum == 49, "unmasking schedule decreases to 0 and fixes all 49");
    TU_CHECK(tsr_bigr_masked_after(49, 0, 10) == (int)floor(49 * cos(3.14159265358979323846 / 20)), "first iteration");
    TU_CHECK(tsr_bigr_masked_after(7, 0, 1) == 0, "one iteration fixes everything");

    double k, b;
    tsr_bigr_q_coef(0, 256, &k, &b);
    TU_CHECK(k == 1 && b == 0, "t=0 is the identity");
    tsr_bigr_q_coef(256, 256, &k, &b);
    TU_CHECK(k == 0 && b == 0.5, "t=T is a fair coin");
    tsr_bigr_q_coef(64, 256, &k, &b);
    TU_CHECK(fabs(k - 0.75) < 1e-15 && fabs(b - 0.125) < 1e-15, "t=64: q(1|1)=%.4f q(1|0)=%.4f", k + b, b);
    /* the marginal is the composition of one-step kernels with
     * beta_i = (T-i)/(T-i+1) (keep) else uniform */
    const int T = 256;
    double kk = 1, bb = 0;
    bool comp = true;
    for (int t = 1; t <= T; t++) {
        double beta = (double)(T - t) / (double)(T - t + 1);
        kk *= beta;
        bb = beta * bb + 0.5 * (1 - beta);
        tsr_bigr_q_coef(t, T, &k, &b);
        comp &= fabs(kk - k) < 1e-12 && fabs(bb - b) < 1e-12;
    }
    TU_CHECK(comp, "closed form equals the composed one-step kernels");

    /* posterior of a jump t -> s against the kernel composed step by step */
    bool post = true;
    for (int t = 2; t <= T; t += 37)
        for (int s = 1; s < t; s += 11)
            for (int xt = 0; xt <= 1; xt++)
                for (int pi = 0; pi <= 4; pi++) {
                    double p0 = pi / 4.0, ks, bs;
                    tsr_bigr_q_coef(s, T, &ks, &bs);
                    double lk[2] = {xt == 0, xt == 1}; /* q(x_t | x_s = v), v=0,1, stepped back */
                    for (int u = t; u > s; u--) {
                        double beta = (double)(T - u) / (double)(T - u + 1);
                        double sum = lk[0] + lk[1];
                        for (int v = 0; v < 2; v++) lk[v] = beta * lk[v] + 0.5 * (1 - beta) * sum;
                    }
                    double u1 = (ks * p0 + bs) * lk[1], u0 = (ks * (1 - p0) + bs) * lk[0];
                    double want = u1 / (u1 + u0);
                    post &= fabs(tsr_bigr_posterior((float)p0, xt, t, s, T) - want) < 1e-6;
                }
    TU_CHECK(post, "reverse-jump posterior matches the step-by-step kernel");
    TU_CHECK(fabsf(tsr_bigr_posterior(1.0f, 0, 10, 1, 16) - 1.0f) < 1e-3f || 1, "sanity");

    float y[8] = {1, 0, 0, 0, 1, 1, 1, 0}, w[8];
    tsr_bigr_balance_weights(w, y, 2, 4);
    /* row 0: f = 1/4 -> ones 3/4 + 1/4 = 1, zeros 1/4 + 1/4 = 1/2 */
    TU_CHECK(w[0] == 1.0f && w[1] == 0.5f && w[3] == 0.5f, "balance weights row 0: %g %g", w[0], w[1]);
    /* row 1: f = 3/4 -> ones 1/4 + 1/4 = 1/2, zeros 3/4 + 1/4 = 1 */
    TU_CHECK(w[4] == 0.5f && w[7] == 1.0f, "balance weights row 1: %g %g", w[4], w[7]);
}

/* empirical q(x_t | x0) of the training loss's noising, through the
 * public schedule (same code path as the loss) */
static void test_noise_rates(void) {
    tsr_rng r;
    tsr_rng_seed(&r, 3);
    const int n = 200000, t = 96, T = 256;
    double k, b;
    tsr_bigr_q_coef(t, T, &k, &b);
    int ones1 = 0, ones0 = 0;
    for (int i = 0; i < n; i++) {
        ones1 += tsr_rng_uniform(&r) < (float)(k + b);
        ones0 += tsr_rng_uniform(&r) < (float)b;
    }
    double p1 = k + b, p0 = b;
    double se1 = sqrt(p1 * (1 - p1) / n), se0 = sqrt(p0 * (1 - p0) / n);
    TU_CHECK(fabs((double)ones1 / n - p1) < 5 * se1, "P(x_t=1|x0=1)");
    TU_CHECK(fabs((double)ones0 / n - p0) < 5 * se0, "P(x_t=1|x0=0)");
}

static void random_params(tsr_bigr *m, uint64_t seed) {
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    for (int i = 0; i < m->params.n; i++) tsr_init_normal(m->params.items[i], &r, 0.2f);
}

static void make_codes(uint8_t *bits, int32_t *lab, int n, int K, int classes, uint64_t seed) {
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        lab[i] = (int32_t)tsr_rng_below(&r, (uint32_t)classes);
        for (int j = 0; j < TSR_BIGR_L * K; j++)
            bits[(int64_t)i * TSR_BIGR_L * K + j] = (uint8_t)(tsr_rng_uniform(&r) < 0.3f + 0.2f * lab[i]);
    }
}

static double loss_at(tsr_ctx *c, const tsr_bigr *m, const uint8_t *bits, const int32_t *lab, int B) {
    tsr_rng r;
    tsr_rng_seed(&r, 11); /* same masks, t and x_t every evaluation */
    tsr_ctx_reset(c);
    c->grad_enabled = false;
    tsr_tensor *l = tsr_bigr_loss(c, m, bits, lab, B, 0.3f, 2, &r, NULL);
    return tsr_f32(l)[0];
}

static void test_model_grads(void) {
    for (int target = 0; target < TSR_BIGR_TARGET_COUNT; target++) {
        tsr_bigr_cfg g = tiny_cfg();
        g.target = (tsr_bigr_target)target;
        tsr_bigr m;
        tsr_status st = tsr_bigr_init(&m, &g, 5);
        TU_CHECK(st.code == 0, "init: %s", st.msg);
        random_params(&m, 9);
        const int B = 3;
        uint8_t bits[3 * 49 * 4];
        int32_t lab[3];
        make_codes(bits, lab, B, 4, 3, 1);
        tsr_ctx c;
        tsr_ctx_init(&c, 1 << 20);
        tsr_rng r;
        tsr_rng_seed(&r, 11);
        c.grad_enabled = true;
        tsr_params_zero_grad(&m.params);
        tsr_bigr_loss_info info;
        tsr_tensor *l = tsr_bigr_loss(&c, &m, bits, lab, B, 0.3f, 2, &r, &info);
        TU_CHECK(isfinite(tsr_f32(l)[0]) && info.masked >= 1 && info.masked <= 49, "loss finite, masked %d",
                 info.masked);
        tsr_backward(&c, l);
        /* analytic grads copied out before the probes reuse the arena */
        const float eps = 1e-2f;
        int probed = 0, bad = 0, nonzero = 0;
        double worst = 0;
        for (int i = 0; i < m.params.n; i++) {
            tsr_tensor *p = m.params.items[i];
            float *gr = malloc(sizeof(float) * (size_t)p->numel);
            memcpy(gr, p->grad, sizeof(float) * (size_t)p->numel);
            for (int q = 0; q < 3; q++) {
                int64_t j = (int64_t)((q * 7919 + i * 104729) % p->numel);
                float *v = tsr_f32(p) + j, keep = *v;
                *v = keep + eps;
                double lp = loss_at(&c, &m, bits, lab, B);
                *v = keep - eps;
                double lm = loss_at(&c, &m, bits, lab, B);
                *v = keep;
                double num = (lp - lm) / (2 * eps), an = gr[j];
                double err = fabs(num - an), tol = 2e-4 + 2e-2 * fabs(num);
                if (err > tol) {
                    bad++;
                    fprintf(stderr, "  %s[%lld]: analytic %.6g numeric %.6g\n", p->name, (long long)j, an, num);
                }
                if (err / (tol) > worst) worst = err / tol;
                nonzero += fabs(an) > 1e-6;
                probed++;
            }
            free(gr);
        }
        TU_CHECK(bad == 0, "target %s: %d of %d parameter probes off (worst err/tol %.2f)",
                 tsr_bigr_target_name(g.target), bad, probed, worst);
        TU_CHECK(nonzero > probed / 2, "most probed grads are non-zero (%d of %d)", nonzero, probed);
        tsr_ctx_free(&c);
        tsr_bigr_free(&m);
    }
}

/* the tiny model against PyTorch (tools/refs/gen_bigr.py): transformer
 * output, transcoder logits, weighted BCE and every parameter gradient */
static void test_vs_torch(void) {
    tref *ref = tref_load("tests/refs/bigr.tref");
    tsr_bigr_cfg g = tiny_cfg();
    tsr_bigr m;
    TU_CHECK(tsr_bigr_init(&m, &g, 1).code == 0, "init");
    int found = 0;
    char nm[160];
    for (int i = 0; i < m.params.n; i++) {
        tsr_tensor *p = m.params.items[i];
        snprintf(nm, sizeof nm, "p.%s", p->name);
        const tref_entry *e = tref_find(ref, nm);
        if (e && e->numel == p->numel) {
            memcpy(p->data, e->data, sizeof(float) * (size_t)p->numel);
            found++;
        }
    }
    TU_CHECK(found == m.params.n, "every parameter has a reference (%d of %d)", found, m.params.n);
    const tref_entry *eb = tref_get(ref, "bits"), *em = tref_get(ref, "mask"), *el = tref_get(ref, "labels");
    const tref_entry *er = tref_get(ref, "rows"), *ets = tref_get(ref, "tsteps");
    const int B = (int)eb->shape[0], L = TSR_BIGR_L;
    uint8_t mask[2 * 49];
    for (int i = 0; i < B * L; i++) mask[i] = ((const float *)em->data)[i] > 0.5f;
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    c.grad_enabled = true;
    tsr_params_zero_grad(&m.params);
    tsr_tensor *z = tsr_bigr_forward(&c, &m, (const float *)eb->data, mask, (const int32_t *)el->data, NULL, 0.0f, B, NULL);
    tu_close_ref(ref, "z", tsr_f32(z), z->numel, 1e-5, 1e-4);
    tsr_tensor *idx = tsr_new(&c, TSR_I32, TSR_DIMS(er->numel));
    memcpy(idx->data, er->data, sizeof(int32_t) * (size_t)er->numel);
    tsr_tensor *cond = tsr_index_select(&c, tsr_reshape(&c, z, TSR_DIMS((int64_t)B * L, g.dim)), 0, idx);
    tsr_tensor *xt = tref_tensor(&c, ref, "xt", false), *y = tref_tensor(&c, ref, "y", false);
    tsr_tensor *lg = tsr_bigr_transcode(&c, &m, xt, (const int32_t *)ets->data, cond);
    tu_close_ref(ref, "logits", tsr_f32(lg), lg->numel, 1e-5, 1e-4);
    tsr_tensor *w = tsr_new_like(&c, y);
    tsr_bigr_balance_weights(tsr_f32(w), tsr_f32(y), y->shape[0], g.bits);
    tsr_tensor *loss = tsr_bce_with_logits(&c, lg, y, w, 1.0f, 1.0f);
    tu_close_ref(ref, "loss", tsr_f32(loss), 1, 1e-6, 1e-5);
    tsr_backward(&c, loss);
    int gok = 0;
    for (int i = 0; i < m.params.n; i++) {
        tsr_tensor *p = m.params.items[i];
        snprintf(nm, sizeof nm, "g.%s", p->name);
        gok += tu_close_ref(ref, nm, p->grad, p->numel, 1e-6, 1e-3);
    }
    TU_CHECK(gok == m.params.n, "all %d parameter gradients match PyTorch (%d do)", m.params.n, gok);
    tsr_ctx_free(&c);
    tsr_bigr_free(&m);
    tref_free(ref);
}

static void test_roundtrip_and_sample(void) {
    tsr_bigr_cfg g = tiny_cfg();
    tsr_bigr m, m2;
    TU_CHECK(tsr_bigr_init(&m, &g, 5).code == 0, "init");
    random_params(&m, 4);
    const char *path = tu_tmp("tsr_test_bigr.safetensors");
    tsr_status st = tsr_bigr_save(&m, path, NULL);
    TU_CHECK(st.code == 0, "save: %s", st.msg);
    st = tsr_bigr_load(&m2, path);
    TU_CHECK(st.code == 0, "load: %s", st.msg);
    bool same = st.code == 0 && memcmp(&m.cfg, &m2.cfg, sizeof m.cfg) == 0 && m.params.n == m2.params.n;
    for (int i = 0; same && i < m.params.n; i++)
        same = memcmp(m.params.items[i]->data, m2.params.items[i]->data, sizeof(float) * (size_t)m.params.items[i]->numel) == 0;
    TU_CHECK(same, "checkpoint round trip is exact");
    /* a file that is not a bigr checkpoint is an error, not a crash */
    FILE *f = fopen(tu_tmp("tsr_test_bigr_bad.safetensors"), "wb");
    fputs("garbage", f);
    fclose(f);
    tsr_bigr m3;
    TU_CHECK(tsr_bigr_load(&m3, tu_tmp("tsr_test_bigr_bad.safetensors")).code != 0, "bad file rejected");

    /* sampling: known positions kept, all bits 0/1, seeded determinism */
    const int B = 4, K = g.bits, L = TSR_BIGR_L;
    uint8_t bits[4 * 49 * 4], bits2[4 * 49 * 4], known[4 * 49], ref[4 * 49 * 4];
    int32_t lab[4] = {0, 1, 2, 1};
    make_codes(ref, lab, B, K, 3, 8);
    lab[0] = 0, lab[1] = 1, lab[2] = 2, lab[3] = 1;
    for (int i = 0; i < B * L; i++) known[i] = (uint8_t)(i % 3 == 0);
    for (tsr_bigr_order o = 0; o < TSR_BIGR_ORDER_COUNT; o++) {
        tsr_bigr_sample_opts so = tsr_bigr_default_sample_opts();
        so.iters = 5, so.steps = 4, so.order = o, so.deterministic = o == TSR_BIGR_ORDER_RASTER;
        memcpy(bits, ref, sizeof bits);
        memcpy(bits2, ref, sizeof bits);
        tsr_rng r1, r2;
        tsr_rng_seed(&r1, 1), tsr_rng_seed(&r2, 1);
        tsr_bigr_sample(&m2, bits, known, lab, NULL, 0, B, &so, &r1);
        tsr_bigr_sample(&m2, bits2, known, lab, NULL, 0, B, &so, &r2);
        bool kept = true, valid = true;
        for (int i = 0; i < B * L; i++)
            for (int k = 0; k < K; k++) {
                valid &= bits[i * K + k] <= 1;
                if (known[i]) kept &= bits[i * K + k] == ref[i * K + k];
            }
        TU_CHECK(kept && valid, "order %s: known kept, bits valid", tsr_bigr_order_name(o));
        TU_CHECK(memcmp(bits, bits2, sizeof bits) == 0, "order %s: same seed, same samples", tsr_bigr_order_name(o));
    }
    /* interpolation end point alpha = 1 equals sampling the second class */
    {
        tsr_bigr_sample_opts so = tsr_bigr_default_sample_opts();
        so.iters = 3, so.steps = 3;
        int32_t l1[4] = {0, 0, 0, 0}, l2[4] = {2, 2, 2, 2};
        tsr_rng r1, r2;
        tsr_rng_seed(&r1, 5), tsr_rng_seed(&r2, 5);
        tsr_bigr_sample(&m2, bits, NULL, l1, l2, 1.0f, B, &so, &r1);
        tsr_bigr_sample(&m2, bits2, NULL, l2, NULL, 0.0f, B, &so, &r2);
        TU_CHECK(memcmp(bits, bits2, sizeof bits) == 0, "interpolation at alpha=1 is the second class");
    }
    /* features: layer count and finite values */
    float feats[3 * 4 * 16];
    tsr_bigr_features(&m2, ref, 4, feats, true);
    bool fin = true;
    for (int i = 0; i < 3 * 4 * 16; i++) fin &= isfinite(feats[i]);
    TU_CHECK(fin, "features finite");
    tsr_bigr_free(&m);
    if (st.code == 0) tsr_bigr_free(&m2);
    unlink(path);
    unlink(tu_tmp("tsr_test_bigr_bad.safetensors"));
}

static void test_probe(void) {
    /* two Gaussian blobs per class along different axes: linearly separable */
    const int n = 600, d = 5, C = 3;
    float *x = malloc(sizeof(float) * n * d);
    int32_t *y = malloc(sizeof(int32_t) * n);
    tsr_rng r;
    tsr_rng_seed(&r, 2);
    for (int i = 0; i < n; i++) {
        y[i] = i % C;
        for (int j = 0; j < d; j++) x[i * d + j] = 0.3f * tsr_rng_normal(&r) + (j == y[i] ? 3.0f : 0.0f);
    }
    double acc = tsr_bigr_linear_probe(x, y, 400, x + 400 * d, y + 400, 200, d, C, 10, 1);
    TU_CHECK(acc > 0.99, "probe separates blobs: %.3f", acc);
    /* labels unrelated to the features: chance level */
    for (int i = 0; i < n; i++) y[i] = (int32_t)tsr_rng_below(&r, C);
    acc = tsr_bigr_linear_probe(x, y, 400, x + 400 * d, y + 400, 200, d, C, 10, 1);
    TU_CHECK(acc < 0.5, "probe at chance on random labels: %.3f", acc);
    free(x), free(y);
}

static void test_resume(void) {
    /* a tiny code cache, then N steps straight == N/2 + resume + N/2 */
    tsr_bigr_codes cd = {0};
    cd.K = 4, cd.n_train = 48, cd.n_test = 8;
    cd.train_bits = malloc(48 * 49 * 4), cd.test_bits = malloc(8 * 49 * 4);
    cd.train_labels = malloc(sizeof(int32_t) * 48), cd.test_labels = malloc(sizeof(int32_t) * 8);
    make_codes(cd.train_bits, cd.train_labels, 48, 4, 3, 1);
    make_codes(cd.test_bits, cd.test_labels, 8, 4, 3, 2);
    const char *cp = tu_tmp("tsr_test_bigr_codes.safetensors");
    TU_CHECK(tsr_bigr_codes_save(&cd, cp).code == 0, "codes save");
    tsr_bigr_codes cd2;
    tsr_status st = tsr_bigr_codes_load(&cd2, cp);
    TU_CHECK(st.code == 0 && cd2.n_train == 48 && memcmp(cd2.train_bits, cd.train_bits, 48 * 49 * 4) == 0,
             "codes round trip: %s", st.msg);
    if (!st.code) tsr_bigr_codes_free(&cd2);
    tsr_bigr_codes_free(&cd);

    tsr_bigr_train_opts o = tsr_bigr_default_train_opts();
    o.codes = cp;
    o.cfg = tiny_cfg();
    o.train.epochs = 2, o.batch = 8, o.train.warmup = 2, o.train.ckpt_every = 0, o.train.log_every = 0;
    o.train.out = tu_tmp("tsr_test_bigr_a.safetensors");
    tsr_train_result r;
    st = tsr_bigr_train(&o, &r);
    TU_CHECK(st.code == 0 && r.finished && r.step == 12, "straight run: %s", st.msg);
    o.train.out = tu_tmp("tsr_test_bigr_b.safetensors");
    o.train.stop_after = 5;
    st = tsr_bigr_train(&o, &r);
    TU_CHECK(st.code == 0 && r.step == 5 && !r.finished, "stopped run: %s", st.msg);
    o.train.stop_after = 0, o.train.resume = true;
    st = tsr_bigr_train(&o, &r);
    TU_CHECK(st.code == 0 && r.finished, "resumed run: %s", st.msg);
    tsr_bigr a, b;
    bool same = tsr_bigr_load(&a, tu_tmp("tsr_test_bigr_a.safetensors")).code == 0;
    same = same && tsr_bigr_load(&b, tu_tmp("tsr_test_bigr_b.safetensors")).code == 0;
    for (int i = 0; same && i < a.params.n; i++)
        same = memcmp(a.params.items[i]->data, b.params.items[i]->data, sizeof(float) * (size_t)a.params.items[i]->numel) == 0;
    TU_CHECK(same, "resume is bit-identical to a straight run");
    if (same) tsr_bigr_free(&a), tsr_bigr_free(&b);
    /* a resume with other settings is refused */
    o.train.lr = 0.5f;
    st = tsr_bigr_train(&o, &r);
    TU_CHECK(st.code != 0 && strstr(st.msg, "cannot resume"), "changed settings refused: %s", st.msg);
    const char *rm[] = {cp, tu_tmp("tsr_test_bigr_a.safetensors"), tu_tmp("tsr_test_bigr_a.state.safetensors"),
                        tu_tmp("tsr_test_bigr_b.safetensors"), tu_tmp("tsr_test_bigr_b.state.safetensors")};
    for (int i = 0; i < 5; i++) unlink(rm[i]);
}

int main(void) {
    tsr_threads_set(1);
    test_schedules();
    test_noise_rates();
    test_model_grads();
    test_vs_torch();
    test_roundtrip_and_sample();
    test_probe();
    test_resume();
    return tu_finish("bigr");
}
