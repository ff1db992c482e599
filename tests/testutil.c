/* tessera tests: shared helpers (see testutil.h). */
#include "testutil.h"
#include "tessera/cpu.h"
#include "tessera/fileio.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <string.h>
#include <unistd.h>

int tu_pass = 0, tu_fail = 0;

int tu_finish(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, tu_pass, tu_fail);
    return tu_fail ? 1 : 0;
}

bool tu_close(const char *what, const float *got, const float *want, int64_t n, double atol,
              double rtol) {
    int64_t worst = -1;
    double worst_excess = 0, max_abs = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double lim = atol + rtol * fabs((double)want[i]);
        if (d > max_abs || isnan(d)) max_abs = isnan(d) ? INFINITY : d;
        if (!(d <= lim) && (worst < 0 || d - lim > worst_excess || isnan(d))) {
            worst = i;
            worst_excess = isnan(d) ? INFINITY : d - lim;
        }
    }
    if (worst >= 0) {
        tu_fail++;
        fprintf(stderr, "FAIL %s: element %lld got %.8g want %.8g (max abs err %.3g, atol %.1e rtol %.1e)\n",
                what, (long long)worst, got[worst], want[worst], max_abs, atol, rtol);
        return false;
    }
    tu_pass++;
    return true;
}

static void die(const char *path, const char *why) {
    fprintf(stderr, "FAIL fixture %s: %s (regenerate with tools/refs/*.py)\n", path, why);
    exit(1);
}

tref *tref_load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path, "cannot open");
    char magic[4];
    uint32_t ver, count;
    if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "TREF", 4) != 0) die(path, "bad magic");
    if (fread(&ver, 4, 1, f) != 1 || ver != 1) die(path, "bad version");
    if (fread(&count, 4, 1, f) != 1 || count > 100000) die(path, "bad count");
    tref *r = calloc(1, sizeof *r);
    r->e = calloc(count ? count : 1, sizeof(tref_entry));
    r->n = (int)count;
    snprintf(r->path, sizeof r->path, "%s", path);
    for (uint32_t i = 0; i < count; i++) {
        tref_entry *e = &r->e[i];
        uint32_t nl, dt, nd;
        if (fread(&nl, 4, 1, f) != 1 || nl >= sizeof e->name) die(path, "bad name length");
        if (fread(e->name, 1, nl, f) != nl) die(path, "truncated name");
        e->name[nl] = 0;
        if (fread(&dt, 4, 1, f) != 1 || (dt != 0 && dt != 2)) die(path, "bad dtype");
        if (fread(&nd, 4, 1, f) != 1 || nd > TSR_MAX_DIMS) die(path, "bad ndim");
        e->dtype = (int)dt;
        e->ndim = (int)nd;
        if (nd && fread(e->shape, 8, nd, f) != nd) die(path, "truncated shape");
        e->numel = tsr_shape_numel((int)nd, e->shape);
        e->data = malloc((size_t)(e->numel ? e->numel : 1) * 4);
        if (e->numel && fread(e->data, 4, (size_t)e->numel, f) != (size_t)e->numel) die(path, "truncated data");
    }
    fclose(f);
    return r;
}

void tref_free(tref *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) free(r->e[i].data);
    free(r->e);
    free(r);
}

const tref_entry *tref_find(const tref *r, const char *name) {
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->e[i].name, name) == 0) return &r->e[i];
    return NULL;
}

const tref_entry *tref_get(const tref *r, const char *name) {
    const tref_entry *e = tref_find(r, name);
    if (!e) {
        fprintf(stderr, "FAIL fixture %s: no tensor named '%s'\n", r->path, name);
        exit(1);
    }
    return e;
}

tsr_tensor *tref_tensor(tsr_ctx *c, const tref *r, const char *name, bool requires_grad) {
    const tref_entry *e = tref_get(r, name);
    tsr_tensor *t = tsr_new(c, (tsr_dtype)e->dtype, e->ndim, e->shape);
    memcpy(t->data, e->data, (size_t)e->numel * 4);
    t->requires_grad = requires_grad && e->dtype == 0;
    return t;
}

bool tu_close_ref(const tref *r, const char *name, const float *got, int64_t n, double atol,
                  double rtol) {
    const tref_entry *e = tref_get(r, name);
    if (e->numel != n) {
        tu_fail++;
        fprintf(stderr, "FAIL %s: size %lld, reference has %lld\n", name, (long long)n, (long long)e->numel);
        return false;
    }
    char what[300];
    snprintf(what, sizeof what, "%s vs PyTorch (%s)", name, r->path);
    return tu_close(what, got, (const float *)e->data, n, atol, rtol);
}

int tu_ref_load_params(const tref *r, tsr_params *ps, const char *prefix, const tsr_tensor *skip) {
    char name[256];
    int n = 0;
    for (int k = 0; k < ps->n; k++) {
        tsr_tensor *t = ps->items[k];
        if (t == skip) continue;
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        const tref_entry *e = tref_find(r, name);
        TU_CHECK(e && e->numel == t->numel, "no reference weight %s", name);
        if (e && e->numel == t->numel) memcpy(t->data, e->data, 4 * (size_t)t->numel), n++;
    }
    return n;
}

void tu_close_ref_grads(const tref *r, const tsr_params *ps, const char *prefix, double atol,
                        double rtol) {
    char name[256];
    for (int k = 0; k < ps->n; k++) {
        const tsr_tensor *p = ps->items[k];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        const tref_entry *e = tref_find(r, name);
        TU_CHECK(e && e->numel == p->numel, "no reference gradient %s", name);
        if (e && e->numel == p->numel) tu_close_ref(r, name, p->grad, p->numel, atol, rtol);
    }
}

void tu_randn(float *x, int64_t n, uint64_t seed, float std) {
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = std * tsr_rng_normal(&r);
}

/* one forward with grad recording off; returns sum(out*R) in double */
static double gc_eval(tsr_ctx *c, gc_fn fn, void *ud, int n_in, gc_input *ins, const float *R,
                      int64_t nout) {
    tsr_ctx_reset(c);
    tsr_rng_seed(&c->rng, 4242);
    c->grad_enabled = false;
    tsr_tensor *in[16];
    for (int i = 0; i < n_in; i++) in[i] = tsr_wrap(c, ins[i].dtype, ins[i].ndim, ins[i].shape, ins[i].data);
    tsr_tensor *out = fn(c, in, ud);
    TSR_ASSERT(out->numel == nout);
    const float *o = tsr_f32(out);
    double s = 0;
    for (int64_t k = 0; k < nout; k++) s += (double)o[k] * (double)R[k];
    c->grad_enabled = true;
    return s;
}

bool tu_gradcheck(const char *name, gc_fn fn, void *ud, int n_in, gc_input *ins, double eps,
                  double atol, double rtol, int max_elems) {
    TSR_ASSERT(n_in <= 16);
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    tsr_rng_seed(&c.rng, 4242);
    tsr_tensor *in[16];
    for (int i = 0; i < n_in; i++) {
        int64_t n = tsr_shape_numel(ins[i].ndim, ins[i].shape);
        in[i] = tsr_new(&c, ins[i].dtype, ins[i].ndim, ins[i].shape);
        memcpy(in[i]->data, ins[i].data, (size_t)n * tsr_dtype_size(ins[i].dtype));
        in[i]->requires_grad = ins[i].check;
    }
    tsr_tensor *out = fn(&c, in, ud);
    int64_t nout = out->numel;
    float *R = malloc(sizeof(float) * (size_t)nout);
    tu_randn(R, nout, 777, 1.0f);
    tsr_backward_with(&c, out, R);
    float *ana[16] = {0};
    for (int i = 0; i < n_in; i++) {
        if (!ins[i].check) continue;
        int64_t n = in[i]->numel;
        ana[i] = calloc((size_t)n, sizeof(float));
        if (in[i]->grad) memcpy(ana[i], in[i]->grad, sizeof(float) * (size_t)n);
    }
    bool ok = true;
    tsr_rng pick;
    tsr_rng_seed(&pick, 99);
    for (int i = 0; i < n_in && ok; i++) {
        if (!ins[i].check) continue;
        float *x = ins[i].data;
        int64_t n = tsr_shape_numel(ins[i].ndim, ins[i].shape);
        int64_t probes = n < max_elems ? n : max_elems;
        for (int64_t p = 0; p < probes; p++) {
            int64_t k = n <= max_elems ? p : (int64_t)(tsr_rng_u64(&pick) % (uint64_t)n);
            float x0 = x[k];
            x[k] = (float)(x0 + eps);
            double fp = gc_eval(&c, fn, ud, n_in, ins, R, nout);
            x[k] = (float)(x0 - eps);
            double fm = gc_eval(&c, fn, ud, n_in, ins, R, nout);
            x[k] = x0;
            double num = (fp - fm) / (2 * eps);
            double a = ana[i][k];
            if (!(fabs(a - num) <= atol + rtol * fabs(num))) {
                fprintf(stderr, "FAIL gradcheck %s: input %d element %lld analytic %.6g numeric %.6g\n",
                        name, i, (long long)k, a, num);
                ok = false;
                break;
            }
        }
    }
    for (int i = 0; i < n_in; i++) free(ana[i]);
    free(R);
    tsr_ctx_free(&c);
    if (ok) tu_pass++;
    else tu_fail++;
    return ok;
}

const char *tu_tmp(const char *name) {
    static struct {
        char name[64];
        char path[128];
    } tab[64];
    static int n;
    for (int i = 0; i < n; i++)
        if (strcmp(tab[i].name, name) == 0) return tab[i].path;
    TSR_ASSERT(n < 64 && strlen(name) < sizeof tab[0].name);
    snprintf(tab[n].name, sizeof tab[n].name, "%s", name);
    snprintf(tab[n].path, sizeof tab[n].path, "/tmp/tsr_%d_%s", (int)getpid(), name);
    return tab[n++].path;
}

/* ---- kernel levels */

static int g_start_level = -1;

int tu_levels(int *levels) {
    if (g_start_level < 0) g_start_level = tsr_cpu_level();
    const char *e = getenv("TESSERA_CPU");
    if (e && *e) {
        levels[0] = g_start_level;
        return 1;
    }
    int n = 0;
    for (int l = 0; l <= tsr_cpu_best_level(); l++) levels[n++] = l;
    return n;
}

void tu_level_set(int level) {
    if (g_start_level < 0) g_start_level = tsr_cpu_level();
    tsr_status s = tsr_cpu_set_level(level);
    if (s.code != TSR_OK) {
        fprintf(stderr, "tu_level_set: %s\n", s.msg);
        exit(1);
    }
    printf("-- kernel level %s\n", tsr_cpu_level_name(level));
}

void tu_level_restore(void) {
    if (g_start_level >= 0) (void)tsr_cpu_set_level(g_start_level);
}

int tu_run_cli(const char *args, char **err) {
    *err = NULL;
    const char *bin = getenv("TSR_BIN");
    TU_CHECK(bin != NULL, "TSR_BIN names the CLI (set by ctest)");
    if (!bin) return -1;
    char path[64] = "/tmp/tsr_cli_err.XXXXXX", cmd[2048];
    int fd = mkstemp(path);
    TSR_ASSERT(fd >= 0);
    close(fd);
    snprintf(cmd, sizeof cmd, "ASAN_OPTIONS=detect_leaks=1:exitcode=86 timeout 120 %s %s >/dev/null 2>%s </dev/null",
             bin, args, path);
    int rc = system(cmd);
    size_t n = 0;
    TSR_ASSERT(tsr_read_file(path, err, &n).code == TSR_OK);
    unlink(path);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}
