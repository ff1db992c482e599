/* tessera tests: the shared training loop (src/train) on a tiny softmax
 * regression: a straight run vs --stop-after + resume vs SIGTERM + resume
 * (byte-identical weights and state files), refused resumes under a changed
 * config, a kill at every point inside every checkpoint save followed by a
 * resume (always byte-identical to the straight run, no orphan .tmp), the
 * non-finite stop, the JSONL log and the output checks. */
#include "testutil.h"

#include "tessera/ops.h"
#include "tessera/safetensors.h"
#include "tessera/train.h"

#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { N_ITEMS = 96, D_IN = 8, N_CLS = 4 };

typedef struct {
    tsr_params p;
    tsr_tensor *w, *b;
    float x[N_ITEMS * D_IN];
    int32_t y[N_ITEMS];
    int calls;        /* step calls in this process */
    int sigterm_at;   /* raise SIGTERM in this call (0: never) */
    int nan_loss_at;  /* report a NaN loss in this call */
    int nan_grad_at;  /* poison a gradient in this call */
    float poison;     /* ... with this value (0: inf) in two elements */
    int inf_weight_at; /* make a weight inf in this call (as an overflowing update would) */
    char hidden[8];   /* a family config value */
} tiny;

static void tiny_init(tiny *m) {
    memset(m, 0, sizeof *m);
    tsr_params_init(&m->p);
    m->w = tsr_param_new(&m->p, "fc.weight", 0, 2, (int64_t[]){N_CLS, D_IN});
    m->b = tsr_param_new(&m->p, "fc.bias", TSR_PARAM_NO_DECAY, 1, (int64_t[]){N_CLS});
    tsr_rng r;
    tsr_rng_seed(&r, 5);
    tsr_init_normal(m->w, &r, 0.1f);
    float truth[N_CLS * D_IN];
    for (int i = 0; i < N_CLS * D_IN; i++) truth[i] = tsr_rng_normal(&r);
    for (int i = 0; i < N_ITEMS; i++) {
        float best = -1e30f;
        for (int k = 0; k < D_IN; k++) m->x[i * D_IN + k] = tsr_rng_normal(&r);
        for (int c = 0; c < N_CLS; c++) {
            float s = 0;
            for (int k = 0; k < D_IN; k++) s += truth[c * D_IN + k] * m->x[i * D_IN + k];
            if (s > best) best = s, m->y[i] = c;
        }
    }
    snprintf(m->hidden, sizeof m->hidden, "0");
}

static tsr_status step(void *ud, tsr_ctx *c, const int32_t *ids, int64_t n, float *loss_v) {
    tiny *m = ud;
    m->calls++;
    if (m->sigterm_at && m->calls == m->sigterm_at) raise(SIGTERM);
    tsr_tensor *x = tsr_new(c, TSR_F32, TSR_DIMS(n, D_IN));
    tsr_tensor *y = tsr_new(c, TSR_I32, TSR_DIMS(n));
    for (int64_t i = 0; i < n; i++) {
        for (int k = 0; k < D_IN; k++) /* noise from the step rng: its state must survive a resume */
            tsr_f32(x)[i * D_IN + k] = m->x[ids[i] * D_IN + k] + 0.1f * tsr_rng_normal(&c->rng);
        tsr_i32(y)[i] = m->y[ids[i]];
    }
    tsr_tensor *loss = tsr_cross_entropy(c, tsr_linear(c, x, m->w, m->b), y, NULL, -100, 0.0f);
    *loss_v = tsr_f32(loss)[0];
    tsr_backward(c, loss);
    if (m->nan_loss_at == m->calls) *loss_v = NAN;
    if (m->nan_grad_at == m->calls) m->w->grad[3] = m->w->grad[5] = m->poison != 0 ? m->poison : INFINITY;
    if (m->inf_weight_at == m->calls) tsr_f32(m->w)[4] = -INFINITY;
    return tsr_ok();
}

static tsr_status eval(void *ud, tsr_train_metrics *mt) {
    tiny *m = ud;
    int correct = 0;
    for (int i = 0; i < N_ITEMS; i++) {
        int best = 0;
        float bv = -1e30f;
        for (int c = 0; c < N_CLS; c++) {
            float s = tsr_f32(m->b)[c];
            for (int k = 0; k < D_IN; k++) s += tsr_f32(m->w)[c * D_IN + k] * m->x[i * D_IN + k];
            if (s > bv) bv = s, best = c;
        }
        correct += best == m->y[i];
    }
    tsr_train_metric(mt, "accuracy", (double)correct / N_ITEMS);
    return tsr_ok();
}

static tsr_status save(void *ud, const char *path, const char *const *meta, const tsr_train_metrics *ev, bool final) {
    (void)ev, (void)final;
    return tsr_params_save(&((tiny *)ud)->p, path, TSR_ST_F32, meta);
}

static char g_dir[256];

static tsr_train_opts opts(const char *name) {
    static char out[8][512];
    static int k;
    char *o = out[k++ % 8];
    snprintf(o, 512, "%s/%s.safetensors", g_dir, name);
    tsr_train_opts t = tsr_train_default_opts();
    t.out = o;
    t.epochs = 6; /* 96 / 16 = 6 steps per epoch: 36 steps */
    t.lr = 0.05f, t.min_lr = 0.005f, t.warmup = 4, t.weight_decay = 0.01f;
    t.ckpt_every = 5, t.eval_every = 10, t.log_every = 3, t.seed = 11;
    return t;
}

static tsr_status run(tiny *m, const tsr_train_opts *o, tsr_train_result *r) {
    const char *cfg[] = {"tiny.hidden", m->hidden, NULL};
    tsr_train_family f = {.name = "tiny", .params = &m->p, .config = cfg, .n_items = N_ITEMS, .batch = 16,
                          .unit = "ex", .arena_bytes = 1 << 20, .ud = m, .step = step, .eval = eval,
                          .save = save};
    return tsr_train_run(&f, o, r);
}

static bool same_file(const char *a, const char *b) {
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

static bool same_run(const char *a, const char *b) {
    char sa[600], sb[600];
    tsr_train_state_path(a, sa, sizeof sa);
    tsr_train_state_path(b, sb, sizeof sb);
    return same_file(a, b) && same_file(sa, sb);
}

static bool exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static volatile sig_atomic_t g_stop;
static void on_term(int sig) {
    (void)sig;
    g_stop = 1;
}

static const char *g_straight;

/* a metrics log's records less their timings ("time", "ex_per_s"), one string */
static size_t log_core(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    size_t n = 0;
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        for (char *p = line; *p && n + 1 < cap;) {
            const bool t = strncmp(p, "\"time\":", 7) == 0, e = strncmp(p, ",\"ex_per_s\":", 12) == 0;
            if (t || e) { /* "time":X, goes with its comma; ,"ex_per_s":X with the one before */
                p += t ? 7 : 12;
                while (*p && *p != ',' && *p != '}') p++;
                if (t && *p == ',') p++;
                continue;
            }
            buf[n++] = *p++;
        }
    }
    if (f) fclose(f);
    buf[n] = 0;
    return n;
}

static void test_straight_stop_signal(void) {
    tiny m;
    tiny_init(&m);
    tsr_train_opts o = opts("a");
    char log[600];
    snprintf(log, sizeof log, "%s/a.jsonl", g_dir);
    o.log_path = log;
    tsr_train_result r;
    tsr_status st = run(&m, &o, &r);
    TU_CHECK(st.code == TSR_OK && r.finished && r.step == 36 && r.total == 36, "straight run: %s", st.msg);
    double acc = tsr_train_metric_get(&r.eval, "accuracy");
    TU_CHECK(acc > 0.6, "tiny model learns: accuracy %.3f", acc);
    g_straight = o.out;
    /* the log: 12 step records (every 3 steps), evaluations at 10, 20, 30 and the end */
    FILE *f = fopen(log, "r");
    int n_train = 0, n_eval = 0;
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        n_train += strstr(line, "\"kind\":\"train\"") && strstr(line, "\"loss\":") && strstr(line, "\"lr\":") &&
                   strstr(line, "\"ex_per_s\":") && strstr(line, "\"time\":");
        n_eval += strstr(line, "\"kind\":\"eval\"") && strstr(line, "\"accuracy\":") != NULL;
    }
    if (f) fclose(f);
    TU_CHECK(n_train == 12 && n_eval == 4, "log: %d step lines, %d eval lines", n_train, n_eval);
    tsr_params_free(&m.p);

    /* --stop-after 15 (a logged step: a stop logs its step), then resume */
    tiny_init(&m);
    o = opts("b");
    char logb[600];
    snprintf(logb, sizeof logb, "%s/b.jsonl", g_dir);
    o.log_path = logb;
    o.stop_after = 15;
    st = run(&m, &o, &r);
    TU_CHECK(st.code == TSR_OK && !r.finished && r.step == 15, "stopped run: %s", st.msg);
    tsr_params_free(&m.p);
    /* as if killed after logging steps past the checkpoint, the last line torn */
    f = fopen(logb, "a");
    if (f) fputs("{\"kind\":\"train\",\"step\":18,\"time\":1,\"epoch\":2,\"loss\":1}\n{\"kind\":\"tr", f), fclose(f);
    tiny_init(&m);
    o.stop_after = 0, o.resume = true;
    st = run(&m, &o, &r);
    TU_CHECK(st.code == TSR_OK && r.finished && r.step == 36, "resumed run: %s", st.msg);
    TU_CHECK(same_run(g_straight, o.out), "stop-after + resume == straight (weights and state)");
    static char la[16384], lb[16384];
    log_core(log, la, sizeof la);
    log_core(logb, lb, sizeof lb);
    TU_CHECK(la[0] && strcmp(la, lb) == 0, "the resumed log holds the straight run's records:\n%s---\n%s", la, lb);
    /* resuming a finished run evaluates and saves again, unchanged */
    st = run(&m, &o, &r);
    TU_CHECK(st.code == TSR_OK && r.finished && r.step == 36 && same_run(g_straight, o.out),
             "resume of a finished run: %s", st.msg);
    log_core(logb, lb, sizeof lb);
    TU_CHECK(strcmp(la, lb) == 0, "a finished run resumed logs its final evaluation once:\n%s", lb);
    tsr_params_free(&m.p);

    /* SIGTERM inside step 17: the step finishes, a checkpoint, then resume */
    tiny_init(&m);
    o = opts("c");
    g_stop = 0;
    o.stop = &g_stop;
    void (*prev)(int) = signal(SIGTERM, on_term);
    m.sigterm_at = 17;
    st = run(&m, &o, &r);
    signal(SIGTERM, prev);
    TU_CHECK(st.code == TSR_OK && r.interrupted && !r.finished && r.step == 17, "SIGTERM run: %s (step %lld)",
             st.msg, (long long)r.step);
    tsr_params_free(&m.p);
    tiny_init(&m);
    o.stop = NULL, o.resume = true;
    st = run(&m, &o, &r);
    TU_CHECK(st.code == TSR_OK && r.finished, "resume after SIGTERM: %s", st.msg);
    TU_CHECK(same_run(g_straight, o.out), "SIGTERM + resume == straight (weights and state)");

    /* a changed setting is refused, naming it */
    o = opts("c");
    o.resume = true;
    o.lr = 0.04f;
    st = run(&m, &o, &r);
    TU_CHECK(st.code == TSR_ERR_ARG && strstr(st.msg, "train.lr") && strstr(st.msg, "cannot resume"),
             "changed lr refused: %s", st.msg);
    o.lr = 0.05f;
    o.clip = 1.0f;
    st = run(&m, &o, &r);
    TU_CHECK(st.code == TSR_ERR_ARG && strstr(st.msg, "train.clip"), "changed clip refused: %s", st.msg);
    o.clip = 0;
    snprintf(m.hidden, sizeof m.hidden, "1");
    st = run(&m, &o, &r);
    TU_CHECK(st.code == TSR_ERR_ARG && strstr(st.msg, "tiny.hidden"), "changed family config refused: %s",
             st.msg);
    tsr_params_free(&m.p);
}

/* ---- kill -9 inside a save, at every hook point of every save */
static int g_kill_at, g_points;
static void kill_hook(const char *point) {
    (void)point;
    if (++g_points == g_kill_at) _exit(77);
}

static int child_run(const char *out, bool resume, int kill_at) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        tiny m;
        tiny_init(&m);
        tsr_train_opts o = opts("k");
        o.out = out, o.resume = resume;
        o.ckpt_every = 12, o.log_path = NULL;
        g_kill_at = kill_at, g_points = 0;
        tsr_fault_hook = kill_hook;
        tsr_train_result r;
        tsr_status st = run(&m, &o, &r);
        if (st.code) fprintf(stderr, "child: %s\n", st.msg);
        _exit(st.code ? 1 : 0);
    }
    int ws = 0;
    waitpid(pid, &ws, 0);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128;
}

static void test_kill_inside_save(void) {
    char out[600], sp[700], tmp[800];
    snprintf(out, sizeof out, "%s/k.safetensors", g_dir);
    tsr_train_state_path(out, sp, sizeof sp);
    int killed = 0, resumed_ok = 0, k;
    for (k = 1; k < 200; k++) {
        remove(out), remove(sp);
        int rc = child_run(out, false, k);
        if (rc == 0) break; /* past the last hook point: the run finished */
        if (rc != 77) {
            TU_CHECK(false, "kill point %d: child exit %d", k, rc);
            break;
        }
        killed++;
        /* resume from whatever is on disk (a fresh start before the first commit) */
        rc = child_run(out, exists(sp), 0);
        bool tmp_left = false;
        snprintf(tmp, sizeof tmp, "%s.tmp", out), tmp_left |= exists(tmp);
        snprintf(tmp, sizeof tmp, "%s.tmp", sp), tmp_left |= exists(tmp);
        bool same = rc == 0 && same_run(g_straight, out) && !tmp_left;
        resumed_ok += same;
        if (!same) TU_CHECK(false, "kill at save point %d: resume rc %d, identical %d, tmp left %d", k, rc,
                            same_run(g_straight, out), tmp_left);
    }
    /* 3 saves (steps 12, 24 and the end) x 5 points: state, tmp, weights, tmp, done */
    TU_CHECK(killed == 15 && resumed_ok == killed, "killed at %d points inside saves, %d resumed identically",
             killed, resumed_ok);
}

static void test_nonfinite(void) {
    char sp[700];
    /* kind 0: NaN loss; 1: inf gradient; 2: finite gradients whose norm
     * overflows a float (3e38 twice), with and without logging (without,
     * the trainer only tests the gradients unless they are huge) */
    for (int kind = 0; kind < 6; kind++) {
        tiny m;
        tiny_init(&m);
        static const char *const names[6] = {"nl", "ng", "nf", "nl0", "ng0", "nf0"};
        tsr_train_opts o = opts(names[kind]);
        if (kind >= 3) o.log_every = 0;
        remove(o.out);
        if (kind % 3) m.nan_grad_at = 8;
        else m.nan_loss_at = 7;
        if (kind % 3 == 2) m.poison = 3e38f;
        tsr_train_result r;
        tsr_status st = run(&m, &o, &r);
        const char *want = kind % 3 ? "at step 8: gradient norm is inf" : "at step 7: loss is nan";
        TU_CHECK(st.code == TSR_ERR_NUMERIC && strstr(st.msg, want) && strstr(st.msg, "keeps step 5"),
                 "non-finite stop (case %s): %s", names[kind], st.msg);
        TU_CHECK(r.step == (kind % 3 ? 7 : 6) && !r.finished, "no update after the bad step (%lld)", (long long)r.step);
        tsr_train_state_path(o.out, sp, sizeof sp);
        int64_t at = -1;
        tsr_ckpt_check_meta(sp, NULL, NULL, 0, &at);
        TU_CHECK(at == 5, "the state on disk is the last good checkpoint (step %lld)", (long long)at);
        tsr_params_free(&m.p);
    }
    /* finite loss and gradients, but the weights non-finite after step 10's
     * update: its checkpoint is refused, the one of step 5 stays */
    {
        tiny m;
        tiny_init(&m);
        tsr_train_opts o = opts("nw");
        remove(o.out);
        m.inf_weight_at = 10;
        tsr_train_result r;
        tsr_status st = run(&m, &o, &r);
        TU_CHECK(st.code == TSR_ERR_NUMERIC && strstr(st.msg, "diverged at step 10") && strstr(st.msg, "fc.weight") &&
                     strstr(st.msg, "keeps step 5"),
                 "non-finite weights are not checkpointed: %s", st.msg);
        tsr_train_state_path(o.out, sp, sizeof sp);
        int64_t at = -1;
        tsr_ckpt_check_meta(sp, NULL, NULL, 0, &at);
        TU_CHECK(at == 5, "the state on disk is step 5's (%lld)", (long long)at);
        tsr_params_free(&m.p);
    }
    /* a real divergence: lr 1e30 */
    tiny m;
    tiny_init(&m);
    tsr_train_opts o = opts("nd");
    o.lr = 1e30f, o.min_lr = 0, o.warmup = 0, o.ckpt_every = 1;
    tsr_train_result r;
    tsr_status st = run(&m, &o, &r);
    TU_CHECK(st.code == TSR_ERR_NUMERIC && strstr(st.msg, "diverged at step"), "lr 1e30: %s", st.msg);
    tsr_params_free(&m.p);
    /* the shared finite check on a registry */
    tiny_init(&m);
    TU_CHECK(tsr_params_check_finite(&m.p, "x").code == TSR_OK, "finite weights pass");
    tsr_f32(m.b)[2] = NAN;
    st = tsr_params_check_finite(&m.p, "m.safetensors");
    TU_CHECK(st.code == TSR_ERR_NUMERIC && strstr(st.msg, "fc.bias") && strstr(st.msg, "m.safetensors"),
             "non-finite weights refused: %s", st.msg);
    tsr_params_free(&m.p);
}

static void test_outputs(void) {
    tiny m;
    tiny_init(&m);
    tsr_train_opts o = opts("x");
    char bad[600];
    snprintf(bad, sizeof bad, "%s/nodir/x.safetensors", g_dir);
    o.out = bad;
    tsr_train_result r;
    tsr_status st = run(&m, &o, &r);
    TU_CHECK(st.code == TSR_ERR_IO && strstr(st.msg, bad) && m.calls == 0, "missing directory before any step: %s",
             st.msg);
    o = opts("x");
    snprintf(bad, sizeof bad, "%s/nodir/log.jsonl", g_dir);
    o.log_path = bad;
    st = run(&m, &o, &r);
    TU_CHECK(st.code == TSR_ERR_IO && strstr(st.msg, bad) && m.calls == 0, "bad --log before any step: %s", st.msg);
    /* orphan tmp files of a killed save are removed at the next start */
    o = opts("x");
    o.epochs = 1;
    char t1[700], t2[800], sp[700];
    tsr_train_state_path(o.out, sp, sizeof sp);
    snprintf(t1, sizeof t1, "%s.tmp", o.out);
    snprintf(t2, sizeof t2, "%s.tmp", sp);
    fclose(fopen(t1, "w")), fclose(fopen(t2, "w"));
    o.stop_after = 2;
    st = run(&m, &o, &r);
    TU_CHECK(st.code == TSR_OK && !exists(t1) && !exists(t2), "orphan .tmp removed: %s", st.msg);
    /* resume without a state file */
    remove(sp);
    o.resume = true;
    st = run(&m, &o, &r);
    TU_CHECK(st.code == TSR_ERR_IO && strstr(st.msg, sp), "resume without a state: %s", st.msg);
    tsr_params_free(&m.p);
}

static float g_lrs[64];
static int g_nlr;
static void collect_lr(const tsr_train_progress *p, void *ud) {
    (void)ud;
    if (!p->eval && g_nlr < 64) g_lrs[g_nlr++] = p->lr;
}

static void test_schedule(void) {
    /* linear: warmup to lr over 4 steps, then straight down to min_lr */
    tiny m;
    tiny_init(&m);
    tsr_train_opts o = opts("s");
    o.sched = TSR_SCHED_LINEAR, o.ckpt_every = 0, o.eval_every = 0, o.log_every = 1;
    o.progress = collect_lr;
    g_nlr = 0;
    tsr_train_result r;
    tsr_status st = run(&m, &o, &r);
    TU_CHECK(st.code == TSR_OK && g_nlr == 36, "linear run: %s (%d steps)", st.msg, g_nlr);
    float want[36];
    for (int s = 0; s < 36; s++)
        want[s] = s < 4 ? 0.05f * (float)(s + 1) / 4 : 0.05f + (0.005f - 0.05f) * (float)(s - 4) / 32;
    tu_close("linear schedule", g_lrs, want, 36, 1e-7, 1e-5);
    /* constant after the warmup */
    o.sched = TSR_SCHED_CONSTANT;
    g_nlr = 0;
    st = run(&m, &o, &r);
    TU_CHECK(st.code == TSR_OK && g_nlr == 36 && g_lrs[3] == 0.05f && g_lrs[35] == 0.05f, "constant: %s", st.msg);
    tsr_params_free(&m.p);
}

/* Carried optimizer state (opts.carry): full-batch steps with no noise,
 * so that a run's steps depend on nothing but the weights and AdamW's
 * state. 6 steps, carry out, 6 steps carried in == 12 straight steps (bit
 * for bit: per-parameter step counts give the same bias corrections); a
 * fresh AdamW for the second run differs; a carried run stopped and
 * resumed from its state file (which holds the per-parameter steps)
 * equals the carried run; a parameter whose carried step count is 0
 * restarts its bias correction alone. */
static tsr_status step_full(void *ud, tsr_ctx *c, const int32_t *ids, int64_t n, float *loss_v) {
    (void)ids, (void)n;
    tiny *m = ud;
    tsr_tensor *x = tsr_new(c, TSR_F32, TSR_DIMS(N_ITEMS, D_IN));
    tsr_tensor *y = tsr_new(c, TSR_I32, TSR_DIMS(N_ITEMS));
    memcpy(tsr_f32(x), m->x, sizeof m->x);
    memcpy(tsr_i32(y), m->y, sizeof m->y);
    tsr_tensor *loss = tsr_cross_entropy(c, tsr_linear(c, x, m->w, m->b), y, NULL, -100, 0.0f);
    *loss_v = tsr_f32(loss)[0];
    tsr_backward(c, loss);
    return tsr_ok();
}

static tsr_status run_full(tiny *m, const char *name, int64_t steps, tsr_train_carry *carry, int64_t stop_after,
                           bool resume) {
    tsr_train_opts o = opts(name);
    o.steps = steps, o.sched = TSR_SCHED_CONSTANT, o.warmup = 0, o.eval_every = 0, o.eval_at_end = false;
    o.ckpt_every = 0, o.log_every = 0, o.carry = carry, o.stop_after = stop_after, o.resume = resume;
    tsr_train_family f = {.name = "tiny", .params = &m->p, .n_items = 0, .batch = N_ITEMS, .ud = m,
                          .arena_bytes = 1 << 20, .step = step_full, .save = save};
    tsr_train_result r;
    return tsr_train_run(&f, &o, &r);
}

static bool same_weights(const tiny *a, const tiny *b) {
    return memcmp(tsr_f32(a->w), tsr_f32(b->w), sizeof(float) * N_CLS * D_IN) == 0 &&
           memcmp(tsr_f32(a->b), tsr_f32(b->b), sizeof(float) * N_CLS) == 0;
}

static void test_carry(void) {
    tiny s, a, f, k;
    tiny_init(&s), tiny_init(&a), tiny_init(&f), tiny_init(&k);
    float mw[N_CLS * D_IN] = {0}, vw[N_CLS * D_IN] = {0}, mb[N_CLS] = {0}, vb[N_CLS] = {0};
    float *ms[2] = {mw, mb}, *vs[2] = {vw, vb};
    int64_t st[2] = {0, 0};
    tsr_train_carry carry = {2, ms, vs, st};
    TU_CHECK(run_full(&s, "c_straight", 12, NULL, 0, false).code == 0, "straight 12 steps");
    TU_CHECK(run_full(&a, "c_a1", 6, &carry, 0, false).code == 0, "carried run 1");
    TU_CHECK(st[0] == 6 && st[1] == 6, "carried step counts %lld %lld", (long long)st[0], (long long)st[1]);
    float mw1[N_CLS * D_IN], vw1[N_CLS * D_IN], mb1[N_CLS], vb1[N_CLS];
    memcpy(mw1, mw, sizeof mw), memcpy(vw1, vw, sizeof vw), memcpy(mb1, mb, sizeof mb), memcpy(vb1, vb, sizeof vb);
    /* the fresh reference and the stopped + resumed run start from the same weights */
    memcpy(tsr_f32(f.w), tsr_f32(a.w), sizeof mw), memcpy(tsr_f32(f.b), tsr_f32(a.b), sizeof mb);
    memcpy(tsr_f32(k.w), tsr_f32(a.w), sizeof mw), memcpy(tsr_f32(k.b), tsr_f32(a.b), sizeof mb);
    TU_CHECK(run_full(&a, "c_a2", 6, &carry, 0, false).code == 0, "carried run 2");
    TU_CHECK(same_weights(&a, &s), "6 + carried 6 steps differ from 12 straight steps");
    TU_CHECK(st[0] == 12 && st[1] == 12, "carried step counts %lld %lld", (long long)st[0], (long long)st[1]);
    TU_CHECK(run_full(&f, "c_f2", 6, NULL, 0, false).code == 0, "fresh run 2");
    TU_CHECK(!same_weights(&f, &s), "a fresh AdamW gives the carried run's weights");
    /* stop after 2 of 6 carried steps, resume (the carry in is ignored: the state file has it) */
    int64_t sk[2] = {6, 6};
    tsr_train_carry ck = {2, (float *[]){mw1, mb1}, (float *[]){vw1, vb1}, sk};
    TU_CHECK(run_full(&k, "c_k2", 6, &ck, 2, false).code == 0, "carried run stopped");
    TU_CHECK(sk[0] == 6, "a stopped run wrote its carry out");
    tsr_tensor *fw = k.w;
    memset(tsr_f32(fw), 0, sizeof mw); /* the resume must load the weights */
    float jmw[N_CLS * D_IN], jvw[N_CLS * D_IN], jmb[N_CLS], jvb[N_CLS];
    for (int i = 0; i < N_CLS * D_IN; i++) jmw[i] = jvw[i] = 1.0f;
    for (int i = 0; i < N_CLS; i++) jmb[i] = jvb[i] = 1.0f;
    tsr_train_carry cj = {2, (float *[]){jmw, jmb}, (float *[]){jvw, jvb}, (int64_t[]){99, 99}};
    TU_CHECK(run_full(&k, "c_k2", 6, &cj, 0, true).code == 0, "carried run resumed");
    TU_CHECK(same_weights(&k, &s), "a stopped and resumed carried run differs");
    TU_CHECK(cj.step[0] == 12 && cj.step[1] == 12 && !memcmp(jmw, mw, sizeof mw) && !memcmp(jvb, vb, sizeof vb),
             "the resumed run's carry out");
    /* resuming the carried state file without a carry is refused */
    tsr_params_free(&k.p);
    tiny_init(&k);
    TU_CHECK(run_full(&k, "c_k2", 6, NULL, 0, true).code != 0, "resuming a carried state without a carry");
    /* a parameter at step 0 (fresh moments) next to one at step 6 */
    tiny p, q;
    tiny_init(&p), tiny_init(&q);
    float m2[N_CLS * D_IN] = {0}, v2[N_CLS * D_IN] = {0}, m3[N_CLS] = {0}, v3[N_CLS] = {0};
    tsr_train_carry cp = {2, (float *[]){m2, m3}, (float *[]){v2, v3}, (int64_t[]){0, 0}};
    TU_CHECK(run_full(&p, "c_p1", 6, &cp, 0, false).code == 0, "mixed run 1");
    memcpy(tsr_f32(q.w), tsr_f32(p.w), sizeof mw), memcpy(tsr_f32(q.b), tsr_f32(p.b), sizeof mb);
    memset(m3, 0, sizeof m3), memset(v3, 0, sizeof v3), cp.step[1] = 0; /* the bias starts afresh */
    TU_CHECK(run_full(&p, "c_p2", 1, &cp, 0, false).code == 0, "mixed run 2");
    TU_CHECK(cp.step[0] == 7 && cp.step[1] == 1, "mixed step counts %lld %lld", (long long)cp.step[0],
             (long long)cp.step[1]);
    /* the bias's first step from fresh moments: -lr * sign(g) to rounding (weight decay off for it) */
    const float lr = opts("x").lr;
    float bb[N_CLS];
    memcpy(bb, tsr_f32(q.b), sizeof bb);
    bool first = true;
    for (int c = 0; c < N_CLS; c++) {
        const float d = tsr_f32(p.b)[c] - bb[c];
        first = first && fabsf(fabsf(d) - lr) < 1e-3f * lr;
    }
    TU_CHECK(first, "a parameter at step 0 does not take a first AdamW step of size lr");
    tsr_params_free(&s.p), tsr_params_free(&a.p), tsr_params_free(&f.p), tsr_params_free(&k.p);
    tsr_params_free(&p.p), tsr_params_free(&q.p);
}

int main(void) {
    tsr_threads_set(1);
    snprintf(g_dir, sizeof g_dir, "/tmp/tsr_test_train_%d", (int)getpid());
    mkdir(g_dir, 0755);
    test_straight_stop_signal();
    test_kill_inside_save();
    test_nonfinite();
    test_outputs();
    test_schedule();
    test_carry();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return tu_finish("train");
}
