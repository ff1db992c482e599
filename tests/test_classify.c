/* Tests for src/models/classify: a short training run on a subset whose loss
 * falls, exact resume (stop + resume == straight, bitwise), checkpoint
 * round trip, feature/logit shapes and consistency between the batched
 * inference path, the autograd forward and different chunkings, rejection
 * of malformed checkpoints, and the shipped model's test accuracy
 * (>= 0.915 on the 10k test set) when models/fmnist_cnn.safetensors exists.
 * Tolerances vs PyTorch (tiny config, one training step): logits and eval
 * features atol 1e-5 rtol 1e-4, loss 1e-5, parameter grads atol 1e-5
 * rtol 1e-3 (batch-norm backward over 4 images subtracts nearly equal
 * sums), running stats 1e-6/1e-5. Inference paths that differ only in batch size agree within
 * 1e-4 abs + 1e-4 rel (sgemm blocking changes the summation order); saved
 * and reloaded weights give bit-identical logits. */
#include "testutil.h"
#include "tessera/classify.h"
#include "tessera/ops.h"
#include "tessera/safetensors.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#define FM_DIR "/usr/share/datasets/fashion-mnist"
#define SHIPPED "models/fmnist_cnn.safetensors"

static char g_tmp[256];
static float g_losses[256];
static int g_nloss;

static void on_progress(const tsr_train_progress *p, void *ud) {
    (void)ud;
    if (!p->eval && g_nloss < 256) g_losses[g_nloss++] = p->loss;
}

static tsr_classify_train_opts small_opts(const char *out) {
    tsr_classify_train_opts o = tsr_classify_default_train_opts();
    o.cfg = (tsr_classify_cfg){.c1 = 8, .c2 = 16, .fc = 32, .dropout = 0.1f};
    o.train.out = out;
    o.train.epochs = 3;
    o.batch = 64;
    o.train.lr = 3e-3f;
    o.train.warmup = 5;
    o.train_limit = 640;
    o.test_limit = 500;
    o.train.ckpt_every = 0;
    o.train.seed = 7;
    o.train.progress = on_progress;
    o.train.log_every = 1;
    return o;
}

static bool files_equal(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool eq = fa && fb;
    while (eq) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) eq = false;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return eq;
}

static void test_train_and_resume(void) {
    char a[512], b[512], sa[600], sb[600];
    snprintf(a, sizeof a, "%s/a.safetensors", g_tmp);
    snprintf(b, sizeof b, "%s/b.safetensors", g_tmp);
    tsr_train_state_path(a, sa, sizeof sa);
    tsr_train_state_path(b, sb, sizeof sb);
    TU_CHECK(strstr(sa, "a.state.safetensors") != NULL, "state path %s", sa);

    tsr_classify_train_opts o = small_opts(a);
    tsr_classify_train_result r;
    g_nloss = 0;
    tsr_status st = tsr_classify_train(&o, &r);
    TU_CHECK(st.code == TSR_OK, "train: %s", st.msg);
    TU_CHECK(r.finished && r.steps == 30 && g_nloss == 30, "30 steps (%lld, %d logged)",
             (long long)r.steps, g_nloss);
    if (g_nloss >= 30) {
        float first = (g_losses[0] + g_losses[1] + g_losses[2]) / 3;
        float last = (g_losses[27] + g_losses[28] + g_losses[29]) / 3;
        TU_CHECK(last < 0.7f * first, "loss falls: first %.4f last %.4f", first, last);
        fprintf(stderr, "short run: loss %.4f -> %.4f, test acc %.3f on %lld\n", first, last,
                r.test.accuracy, (long long)r.test.n);
    }
    TU_CHECK(r.test.n == 500 && r.test.accuracy > 0.4, "short-run accuracy %.3f", r.test.accuracy);

    /* the same run stopped at step 13 and resumed */
    o = small_opts(b);
    o.train.stop_after = 13;
    st = tsr_classify_train(&o, &r);
    TU_CHECK(st.code == TSR_OK && !r.finished && r.steps == 13, "stopped run: %s", st.msg);
    o.train.stop_after = 0;
    o.train.resume = true;
    st = tsr_classify_train(&o, &r);
    TU_CHECK(st.code == TSR_OK && r.finished && r.steps == 30, "resumed run: %s", st.msg);
    TU_CHECK(files_equal(a, b), "resumed checkpoint is byte-identical to the straight one");
    TU_CHECK(files_equal(sa, sb), "resumed state is byte-identical to the straight one");

    /* resume under different settings is refused */
    o.train.lr = 1e-3f;
    st = tsr_classify_train(&o, &r);
    TU_CHECK(st.code == TSR_ERR_ARG && strstr(st.msg, "train.lr"), "changed lr refused: %s", st.msg);
}

static void test_inference(void) {
    char a[512];
    snprintf(a, sizeof a, "%s/a.safetensors", g_tmp);
    tsr_classifier m;
    tsr_status st = tsr_classify_load(&m, a);
    TU_CHECK(st.code == TSR_OK, "load: %s", st.msg);
    if (st.code) return;
    TU_CHECK(tsr_classify_feature_dim(&m) == 32 && m.cfg.c1 == 8 && m.cfg.c2 == 16, "config from metadata");
    tsr_mnist d;
    st = tsr_mnist_load(NULL, false, &d);
    TSR_ASSERT(st.code == TSR_OK);
    enum { N = 300 };
    static float f1[N * 32], f2[N * 32], l1[N * 10], l2[N * 10], xf[N * 784];
    tsr_classify_run_u8(&m, d.images.data, N, f1, l1);
    bool ok = true;
    for (int i = 0; i < N * 32; i++) ok &= isfinite(f1[i]) && f1[i] >= 0.0f;
    TU_CHECK(ok, "features finite and post-ReLU");
    /* f32 input path and a different chunking (first 37 images alone) */
    for (int i = 0; i < N * 784; i++) xf[i] = (float)d.images.data[i] * (1.0f / 255.0f);
    tsr_classify_run_f32(&m, xf, N, f2, l2);
    tu_close("f32 vs u8 features", f2, f1, N * 32, 1e-6, 1e-6);
    tsr_classify_run_u8(&m, d.images.data, 37, f2, l2);
    tu_close("37-image batch features", f2, f1, 37 * 32, 1e-4, 1e-4);
    tu_close("37-image batch logits", l2, l1, 37 * 10, 1e-4, 1e-4);
    /* the autograd forward in eval mode matches */
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 24);
    c.training = false;
    tsr_tensor *x = tsr_from_f32(&c, TSR_DIMS(5, 1, 28, 28), xf);
    tsr_tensor *ft = NULL;
    tsr_tensor *lg = tsr_classify_forward(&c, &m, x, &ft);
    TU_CHECK(lg->ndim == 2 && lg->shape[0] == 5 && lg->shape[1] == 10, "logits shape");
    TU_CHECK(ft->ndim == 2 && ft->shape[0] == 5 && ft->shape[1] == 32, "features shape");
    tu_close("forward logits", tsr_f32(lg), l1, 50, 1e-4, 1e-4);
    tsr_ctx_free(&c);
    /* save + reload gives identical logits */
    char p[512];
    snprintf(p, sizeof p, "%s/copy.safetensors", g_tmp);
    const char *meta[] = {"note", "copy", NULL};
    st = tsr_classify_save(&m, p, meta);
    TU_CHECK(st.code == TSR_OK, "save: %s", st.msg);
    tsr_classifier m2;
    st = tsr_classify_load(&m2, p);
    TU_CHECK(st.code == TSR_OK, "reload: %s", st.msg);
    if (!st.code) {
        tsr_classify_run_u8(&m, d.images.data, 20, NULL, l1);
        tsr_classify_run_u8(&m2, d.images.data, 20, NULL, l2);
        TU_CHECK(memcmp(l1, l2, sizeof(float) * 200) == 0, "reloaded logits bit-identical");
        tsr_classify_free(&m2);
    }
    tsr_mnist_free(&d);
    tsr_classify_free(&m);
}

static void test_bad_checkpoints(void) {
    tsr_classifier m;
    char p[512];
    snprintf(p, sizeof p, "%s/missing.safetensors", g_tmp);
    tsr_status st = tsr_classify_load(&m, p);
    TU_CHECK(st.code != TSR_OK && strstr(st.msg, p), "missing file: %s", st.msg);
    snprintf(p, sizeof p, "%s/garbage.safetensors", g_tmp);
    FILE *f = fopen(p, "wb");
    for (int i = 0; i < 200; i++) fputc((i * 97) & 0xff, f);
    fclose(f);
    st = tsr_classify_load(&m, p);
    TU_CHECK(st.code != TSR_OK && strstr(st.msg, p), "garbage file: %s", st.msg);
    /* a valid safetensors file that is not a classifier */
    snprintf(p, sizeof p, "%s/other.safetensors", g_tmp);
    tsr_st_writer *w = tsr_st_writer_new();
    float v[4] = {1, 2, 3, 4};
    tsr_st_add(w, "x", TSR_ST_F32, 1, (int64_t[]){4}, v);
    st = tsr_st_write(w, p);
    tsr_st_writer_free(w);
    TSR_ASSERT(st.code == TSR_OK);
    st = tsr_classify_load(&m, p);
    TU_CHECK(st.code == TSR_ERR_FORMAT && strstr(st.msg, "not a tessera classify"), "foreign file: %s", st.msg);
    /* right metadata, a tensor of the wrong shape */
    tsr_classify_cfg g = {.c1 = 4, .c2 = 8, .fc = 16, .dropout = 0};
    tsr_classifier a;
    TSR_ASSERT(tsr_classify_init(&a, &g, 1).code == TSR_OK);
    snprintf(p, sizeof p, "%s/small.safetensors", g_tmp);
    TSR_ASSERT(tsr_classify_save(&a, p, NULL).code == TSR_OK);
    tsr_classify_free(&a);
    tsr_st_file sf;
    TSR_ASSERT(tsr_st_read(p, &sf).code == TSR_OK);
    w = tsr_st_writer_new();
    for (int i = 0; i < sf.n_meta; i++)
        tsr_st_set_meta(w, sf.meta_keys[i], strcmp(sf.meta_keys[i], "fc") == 0 ? "17" : sf.meta_vals[i]);
    for (int i = 0; i < sf.n; i++)
        tsr_st_add(w, sf.t[i].name, sf.t[i].dtype, sf.t[i].ndim, sf.t[i].shape, sf.t[i].data);
    tsr_st_free(&sf);
    snprintf(p, sizeof p, "%s/wrongshape.safetensors", g_tmp);
    TSR_ASSERT(tsr_st_write(w, p).code == TSR_OK);
    tsr_st_writer_free(w);
    st = tsr_classify_load(&m, p);
    TU_CHECK(st.code != TSR_OK && strstr(st.msg, "fc1"), "wrong shape: %s", st.msg);
}

/* tools/refs/gen_classify.py: one training-mode step of a tiny config */
static void test_pytorch_ref(void) {
    tref *r = tref_load("tests/refs/classify.tref");
    tsr_classify_cfg g = {.c1 = 2, .c2 = 3, .fc = 5, .dropout = 0.0f};
    tsr_classifier m;
    TSR_ASSERT(tsr_classify_init(&m, &g, 1).code == TSR_OK);
    char k[128];
    for (int i = 0; i < m.params.n; i++) {
        tsr_tensor *t = m.params.items[i];
        snprintf(k, sizeof k, "p.%s", t->name);
        const tref_entry *e = tref_get(r, k);
        TU_CHECK(e->numel == t->numel, "%s numel", k);
        if (e->numel == t->numel) memcpy(t->data, e->data, sizeof(float) * (size_t)t->numel);
    }
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 22);
    c.training = true;
    tsr_tensor *x = tref_tensor(&c, r, "x", false);
    tsr_tensor *y = tref_tensor(&c, r, "y", false);
    tsr_tensor *lg = tsr_classify_forward(&c, &m, x, NULL);
    tu_close_ref(r, "logits", tsr_f32(lg), lg->numel, 1e-5, 1e-4);
    tsr_tensor *loss = tsr_cross_entropy(&c, lg, y, NULL, -100, 0.0f);
    tu_close_ref(r, "loss", tsr_f32(loss), 1, 1e-5, 1e-5);
    tsr_params_zero_grad(&m.params);
    tsr_backward(&c, loss);
    for (int i = 0; i < m.params.n; i++) {
        tsr_tensor *t = m.params.items[i];
        if (!t->grad) continue;
        snprintf(k, sizeof k, "g.%s", t->name);
        tu_close_ref(r, k, t->grad, t->numel, 1e-5, 1e-3);
    }
    for (int i = 0; i < 4; i++) {
        snprintf(k, sizeof k, "after.bn%d.running_mean", i + 1);
        tu_close_ref(r, k, tsr_f32(m.bn_mean[i]), m.bn_mean[i]->numel, 1e-6, 1e-5);
        snprintf(k, sizeof k, "after.bn%d.running_var", i + 1);
        tu_close_ref(r, k, tsr_f32(m.bn_var[i]), m.bn_var[i]->numel, 1e-6, 1e-5);
    }
    float feats[4 * 5], logits[4 * 10];
    tsr_classify_run_f32(&m, tsr_f32(x), 4, feats, logits);
    tu_close_ref(r, "eval_features", feats, 20, 1e-5, 1e-4);
    tu_close_ref(r, "eval_logits", logits, 40, 1e-5, 1e-4);
    tsr_ctx_free(&c);
    tsr_classify_free(&m);
    tref_free(r);
}

static void test_shipped(void) {
    if (access(SHIPPED, R_OK) != 0) {
        fprintf(stderr, "note: %s not present; skipping its accuracy check\n", SHIPPED);
        return;
    }
    tsr_classifier m;
    tsr_status st = tsr_classify_load(&m, SHIPPED);
    TU_CHECK(st.code == TSR_OK, "shipped model: %s", st.msg);
    if (st.code) return;
    tsr_mnist d;
    TSR_ASSERT(tsr_mnist_load(NULL, false, &d).code == TSR_OK);
    double t0 = tsr_time();
    tsr_classify_eval_result r = tsr_classify_evaluate(&m, &d, 0);
    fprintf(stderr, "shipped model: accuracy %.4f loss %.4f on %lld (%.1f s)\n", r.accuracy, r.loss,
            (long long)r.n, tsr_time() - t0);
    TU_CHECK(r.n == 10000 && r.accuracy >= 0.915, "shipped accuracy %.4f < 0.915", r.accuracy);
    tsr_mnist_free(&d);
    tsr_classify_free(&m);
}

int main(void) {
    tsr_threads_set(0);
    if (access(FM_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0) {
        fprintf(stderr, "Fashion-MNIST is not installed at %s (Debian package dataset-fashion-mnist)\n", FM_DIR);
        return 1;
    }
    snprintf(g_tmp, sizeof g_tmp, "/tmp/tsr_test_classify_%d", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", g_tmp);
    TSR_ASSERT(system(cmd) == 0);
    test_pytorch_ref();
    test_train_and_resume();
    test_inference();
    test_bad_checkpoints();
    test_shipped();
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", g_tmp);
    return tu_finish("classify");
}
