/* Exact resume: a small MLP trained N steps straight (AdamW, warmup +
 * cosine schedule, grad clipping, rng-driven batch sampling) must end with
 * the same bits as N/2 steps, save params + training state, free
 * everything, reload into fresh objects, N/2 more. Also: damaged or
 * mismatched checkpoint files fail with a message naming the file and leave
 * the model untouched, and failed saves leave no file behind.
 * Tolerances: none, all comparisons are memcmp. */
#include "testutil.h"
#include "tessera/ops.h"
#include "tessera/optim.h"
#include "tessera/safetensors.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { D = 6, H = 16, O = 3, NDATA = 64, B = 8, NSTEPS = 24 };

static float X[NDATA * D], Y[NDATA * O];
static char g_dir[64];

typedef struct {
    tsr_params p;
    tsr_adamw o;
    tsr_train_meta m;
    tsr_ctx c;
} trainer;

static const tsr_lr_sched sched = {TSR_LR_COSINE, 2e-2f, 1e-3f, 3, NSTEPS};

static void trainer_init(trainer *t, uint64_t seed) {
    tsr_params_init(&t->p);
    tsr_rng g;
    tsr_rng_seed(&g, seed);
    tsr_init_normal(tsr_param_new(&t->p, "l1.weight", 0, 2, TSR_SHAPE(H, D)), &g, 0.4f);
    tsr_init_normal(tsr_param_new(&t->p, "l1.bias", TSR_PARAM_NO_DECAY, 1, TSR_SHAPE(H)), &g, 0.1f);
    tsr_init_normal(tsr_param_new(&t->p, "l2.weight", 0, 2, TSR_SHAPE(O, H)), &g, 0.3f);
    tsr_init_normal(tsr_param_new(&t->p, "l2.bias", TSR_PARAM_NO_DECAY, 1, TSR_SHAPE(O)), &g, 0.1f);
    tsr_param_new(&t->p, "stats.seen", TSR_PARAM_BUFFER, 1, TSR_SHAPE(1));
    tsr_adamw_init(&t->o, &t->p, (tsr_adamw_cfg){2e-2f, 0.9f, 0.999f, 1e-8f, 0.05f});
    memset(&t->m, 0, sizeof t->m);
    tsr_rng_seed(&t->m.rng, seed * 31 + 1);
    tsr_ctx_init(&t->c, 1 << 20);
}

static void trainer_free(trainer *t) {
    tsr_adamw_free(&t->o);
    tsr_params_free(&t->p);
    tsr_ctx_free(&t->c);
    memset(t, 0, sizeof *t);
}

/* one step; returns the loss. Layer 1 runs through the tape (tsr_linear),
 * relu, layer 2 and the squared error are differentiated by hand here. */
static float train_step(trainer *t) {
    tsr_ctx *c = &t->c;
    tsr_ctx_reset(c);
    tsr_params_zero_grad(&t->p);
    tsr_tensor *w1 = t->p.items[0], *b1 = t->p.items[1], *w2 = t->p.items[2], *b2 = t->p.items[3];
    float xb[B * D], yb[B * O];
    for (int b = 0; b < B; b++) {
        uint32_t i = tsr_rng_below(&t->m.rng, NDATA);
        memcpy(xb + b * D, X + i * D, sizeof(float) * D);
        memcpy(yb + b * O, Y + i * O, sizeof(float) * O);
        t->m.cursor[1] = i;
    }
    tsr_tensor *x = tsr_from_f32(c, TSR_DIMS(B, D), xb);
    tsr_tensor *h = tsr_linear(c, x, w1, b1);
    const float *hv = tsr_f32(h), *W2 = tsr_f32(w2), *B2 = tsr_f32(b2);
    float a[B * H], dy[B * O], dh[B * H];
    double loss = 0;
    for (int k = 0; k < B * H; k++) a[k] = hv[k] > 0 ? hv[k] : 0;
    for (int b = 0; b < B; b++)
        for (int o = 0; o < O; o++) {
            float y = B2[o];
            for (int j = 0; j < H; j++) y += a[b * H + j] * W2[o * H + j];
            float e = y - yb[b * O + o];
            loss += (double)e * e;
            dy[b * O + o] = 2.0f * e / (float)(B * O);
        }
    memset(dh, 0, sizeof dh);
    for (int b = 0; b < B; b++)
        for (int o = 0; o < O; o++) {
            float g = dy[b * O + o];
            b2->grad[o] += g;
            for (int j = 0; j < H; j++) {
                w2->grad[o * H + j] += g * a[b * H + j];
                dh[b * H + j] += g * W2[o * H + j];
            }
        }
    for (int k = 0; k < B * H; k++)
        if (hv[k] <= 0) dh[k] = 0;
    tsr_backward_with(c, h, dh);
    tsr_clip_grad_norm(&t->p, 1.0f);
    tsr_adamw_step(&t->o, tsr_lr_at(&sched, t->m.step));
    t->m.step++;
    t->m.cursor[0] += B;
    tsr_f32(t->p.items[4])[0] += (float)B;
    return (float)(loss / (B * O));
}

static bool same_state(const trainer *a, const trainer *b, bool report) {
    bool ok = a->p.n == b->p.n && a->o.step == b->o.step && a->m.step == b->m.step &&
              memcmp(&a->m.rng, &b->m.rng, sizeof a->m.rng) == 0 &&
              memcmp(a->m.cursor, b->m.cursor, sizeof a->m.cursor) == 0;
    for (int i = 0; ok && i < a->p.n; i++) {
        size_t n = sizeof(float) * (size_t)a->p.items[i]->numel;
        bool eq = memcmp(a->p.items[i]->data, b->p.items[i]->data, n) == 0;
        if (a->o.m[i]) eq = eq && !memcmp(a->o.m[i], b->o.m[i], n) && !memcmp(a->o.v[i], b->o.v[i], n);
        if (!eq && report) fprintf(stderr, "  differs: %s\n", a->p.items[i]->name);
        ok = ok && eq;
    }
    return ok;
}

static bool exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void copy_prefix(const char *src, const char *dst, long keep) {
    FILE *f = fopen(src, "rb");
    TSR_ASSERT(f);
    char *buf = malloc(1 << 16);
    size_t n = fread(buf, 1, 1 << 16, f);
    fclose(f);
    if (keep < 0) keep = (long)n + keep;
    f = fopen(dst, "wb");
    TSR_ASSERT(f && fwrite(buf, 1, (size_t)keep, f) == (size_t)keep);
    fclose(f);
    free(buf);
}

int main(void) {
    tsr_threads_set(0);
    snprintf(g_dir, sizeof g_dir, "/tmp/tsr_resume_XXXXXX");
    TSR_ASSERT(mkdtemp(g_dir));
    char pp[128], sp[128], bad[128];
    snprintf(pp, sizeof pp, "%s/model.safetensors", g_dir);
    snprintf(sp, sizeof sp, "%s/train.safetensors", g_dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", g_dir);
    /* a fixed regression task: y = tanh-ish mix of x */
    tu_randn(X, NDATA * D, 99, 1.0f);
    for (int i = 0; i < NDATA; i++)
        for (int o = 0; o < O; o++) {
            float s = 0;
            for (int d = 0; d < D; d++) s += X[i * D + d] * (float)((d + o) % 3 - 1);
            Y[i * O + o] = s > 0 ? s : 0.3f * s;
        }

    trainer a, b;
    trainer_init(&a, 7);
    float first = 0, last = 0;
    for (int s = 0; s < NSTEPS; s++) {
        float l = train_step(&a);
        if (s == 0) first = l;
        last = l;
    }
    TU_CHECK(last < 0.5f * first, "training reduces the loss (%g -> %g)", first, last);

    trainer_init(&b, 7);
    for (int s = 0; s < NSTEPS / 2; s++) train_step(&b);
    const char *meta[] = {"note", "half way", NULL};
    tsr_status st = tsr_params_save(&b.p, pp, TSR_ST_F32, meta);
    TU_CHECK(st.code == TSR_OK, "params save: %s", st.msg);
    st = tsr_trainstate_save(sp, &b.o, &b.m);
    TU_CHECK(st.code == TSR_OK, "trainstate save: %s", st.msg);
    trainer_free(&b);

    /* fresh objects from another seed: everything must come from the files */
    trainer_init(&b, 12345);
    st = tsr_params_load(&b.p, pp, false);
    TU_CHECK(st.code == TSR_OK, "params load: %s", st.msg);
    st = tsr_trainstate_load(sp, &b.o, &b.m);
    TU_CHECK(st.code == TSR_OK, "trainstate load: %s", st.msg);
    for (int s = 0; s < NSTEPS / 2; s++) train_step(&b);
    TU_CHECK(same_state(&a, &b, true), "N straight == N/2 + save/load + N/2 (bit-identical)");
    trainer_free(&b);

    /* the check can fail: resuming without the optimizer state diverges */
    trainer_init(&b, 12345);
    tsr_params_load(&b.p, pp, false);
    tsr_train_meta keep;
    tsr_trainstate_load(sp, NULL, &keep); /* rng/cursor/step only */
    b.m = keep;
    for (int s = 0; s < NSTEPS / 2; s++) train_step(&b);
    TU_CHECK(!same_state(&a, &b, false), "resume without AdamW moments must differ");
    trainer_free(&b);

    /* damaged and mismatched files: clear errors naming the file, model untouched */
    trainer_init(&b, 5);
    float before[H * D];
    memcpy(before, b.p.items[0]->data, sizeof before);
    tsr_train_meta m0 = b.m;
    st = tsr_trainstate_load(pp, &b.o, &b.m);
    TU_CHECK(st.code == TSR_ERR_FORMAT && strstr(st.msg, pp) && strstr(st.msg, "training-state"),
             "params file as training state: %s", st.msg);
    copy_prefix(sp, bad, -5);
    st = tsr_trainstate_load(bad, &b.o, &b.m);
    TU_CHECK(st.code != TSR_OK && strstr(st.msg, bad), "truncated training state: %s", st.msg);
    copy_prefix(pp, bad, 7);
    st = tsr_params_load(&b.p, bad, false);
    TU_CHECK(st.code != TSR_OK && strstr(st.msg, bad), "truncated params: %s", st.msg);
    TU_CHECK(memcmp(before, b.p.items[0]->data, sizeof before) == 0 && b.o.step == 0 &&
                 memcmp(&m0, &b.m, sizeof m0) == 0, "failed loads change nothing");
    tsr_params q;
    tsr_params_init(&q);
    tsr_param_new(&q, "l1.weight", 0, 2, TSR_SHAPE(H, D));
    tsr_param_new(&q, "extra.weight", 0, 1, TSR_SHAPE(4));
    tsr_adamw oq;
    tsr_adamw_init(&oq, &q, a.o.cfg);
    st = tsr_trainstate_load(sp, &oq, &b.m);
    TU_CHECK(st.code == TSR_ERR_SHAPE && strstr(st.msg, sp) && strstr(st.msg, "adamw.m.extra.weight"),
             "training state of another model: %s", st.msg);
    tsr_adamw_free(&oq);
    tsr_params_free(&q);

    /* failed saves leave nothing behind */
    char nodir[192];
    snprintf(nodir, sizeof nodir, "%s/model.safetensors/x.safetensors", g_dir); /* parent is a file */
    st = tsr_params_save(&b.p, nodir, TSR_ST_BF16, NULL);
    TU_CHECK(st.code == TSR_ERR_IO && strstr(st.msg, nodir), "params save to bad path: %s", st.msg);
    st = tsr_trainstate_save(nodir, &b.o, &b.m);
    TU_CHECK(st.code == TSR_ERR_IO && strstr(st.msg, nodir), "trainstate save to bad path: %s", st.msg);
    TU_CHECK(!exists(nodir), "no file after failed saves");
    trainer_free(&b);
    trainer_free(&a);
    unlink(pp);
    unlink(sp);
    unlink(bad);
    rmdir(g_dir);
    return tu_finish("resume");
}
