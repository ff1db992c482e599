/* tessera tests: shared helpers — checks with counters, PyTorch reference
 * fixtures (.tref files written by tools/refs/tref.py), and the central
 * finite-difference gradient check. */
#ifndef TSR_TESTUTIL_H
#define TSR_TESTUTIL_H

#include "tessera/core.h"

extern int tu_pass, tu_fail;

#define TU_CHECK(cond, ...)                                                  \
    do {                                                                     \
        if (cond) tu_pass++;                                                 \
        else {                                                               \
            tu_fail++;                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);             \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n");                                           \
        }                                                                    \
    } while (0)

/* "/tmp/tsr_<pid>_<name>": a scratch file name of this process, stable for
 * the process's life (several checkouts run the suite at once). */
const char *tu_tmp(const char *name);

/* Runs the CLI (TSR_BIN, set by ctest) with ARGS, stdin from /dev/null,
 * stdout dropped, under `timeout 120`; LeakSanitizer's report in the
 * sanitizer build gets exit code 86. Returns the exit code (-1: not an
 * exit, or no TSR_BIN) and sets *err to stderr's text (free it). */
int tu_run_cli(const char *args, char **err);

/* prints "N passed, N failed" and returns the exit code for main */
int tu_finish(const char *suite);

/* |got-want| <= atol + rtol*|want| elementwise; counts one check; prints the
 * worst element on failure. Returns true on pass. */
bool tu_close(const char *what, const float *got, const float *want, int64_t n, double atol,
              double rtol);

/* ---- kernel levels (tessera/cpu.h)
 * The levels a test runs at: every level this CPU supports, lowest first,
 * or only the one forced with TESSERA_CPU. tu_level_set switches to one
 * and prints it; tu_level_restore returns to the start-up level. */
int tu_levels(int *levels);
void tu_level_set(int level);
void tu_level_restore(void);

/* ---- reference fixtures: tests/refs/<name>.tref */
typedef struct {
    char name[128];
    int dtype; /* 0 f32, 2 i32 (as tsr_dtype) */
    int ndim;
    int64_t shape[TSR_MAX_DIMS];
    int64_t numel;
    void *data;
} tref_entry;

typedef struct {
    tref_entry *e;
    int n;
    char path[256];
} tref;

/* aborts the test (exit 1) with a message if the file is missing/bad */
tref *tref_load(const char *path);
void tref_free(tref *r);
const tref_entry *tref_get(const tref *r, const char *name);     /* exits if missing */
const tref_entry *tref_find(const tref *r, const char *name);    /* NULL if missing */
/* step tensor holding a copy of the entry; requires_grad as asked (f32 only) */
tsr_tensor *tref_tensor(tsr_ctx *c, const tref *r, const char *name, bool requires_grad);
/* compare a buffer to an entry (shape by numel) */
bool tu_close_ref(const tref *r, const char *name, const float *got, int64_t n, double atol,
                  double rtol);
/* copies every parameter but skip (may be NULL) from the entry
 * "<prefix><param name>"; a missing or wrongly sized entry is a failure.
 * Returns how many were copied. */
int tu_ref_load_params(const tref *r, tsr_params *ps, const char *prefix, const tsr_tensor *skip);
/* every parameter's gradient against the entry "<prefix><param name>"; a
 * missing or wrongly sized entry is a failure */
void tu_close_ref_grads(const tref *r, const tsr_params *ps, const char *prefix, double atol,
                        double rtol);

/* ---- gradient check
 * fn builds the op's output from leaf inputs in[i] (step tensors). The
 * check seeds d(out) = R (fixed random), compares the analytic input grads
 * with central differences of sum(out*R) accumulated in double. */
typedef tsr_tensor *(*gc_fn)(tsr_ctx *c, tsr_tensor **in, void *ud);

typedef struct {
    tsr_dtype dtype;       /* F32 inputs may be checked; I32 are passed through */
    int ndim;
    int64_t shape[TSR_MAX_DIMS];
    void *data;            /* caller-owned; perturbed in place and restored */
    bool check;            /* check this input's gradient */
} gc_input;

/* Returns true when every checked element passes |a-n| <= atol + rtol*|n|.
 * At most max_elems elements per input are probed (a fixed random subset). */
bool tu_gradcheck(const char *name, gc_fn fn, void *ud, int n_in, gc_input *ins, double eps,
                  double atol, double rtol, int max_elems);

/* fill with N(0, std) from a seeded rng */
void tu_randn(float *x, int64_t n, uint64_t seed, float std);

#endif
