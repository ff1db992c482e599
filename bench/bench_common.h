/* tessera bench: what every benchmark prints about the machine and build,
 * and the machine's measured sgemm peak (the physical limit ratios refer
 * to). Header-only: each benchmark is one executable. */
#ifndef TSR_BENCH_COMMON_H
#define TSR_BENCH_COMMON_H

#include "tessera/core.h"
#include "tessera/cpu.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#ifndef TSR_BUILD_FLAGS
#define TSR_BUILD_FLAGS "unknown"
#endif

/* "model name" of the first CPU in /proc/cpuinfo */
static inline void bench_cpu_model(char *buf, size_t n) {
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        char *p = strchr(line, ':');
        if (p) {
            p++;
            while (*p == ' ') p++;
            p[strcspn(p, "\n")] = 0;
            snprintf(buf, n, "%s", p);
        }
        break;
    }
    fclose(f);
}

/* compiler and flags of this build (CMake passes TSR_BUILD_FLAGS) */
static inline const char *bench_build_flags(void) { return "cc " __VERSION__ " " TSR_BUILD_FLAGS; }

static inline void bench_fill(float *x, int64_t n, uint64_t seed) {
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = tsr_rng_normal(&r);
}

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* the kernels for this CPU and the default thread count ($TESSERA_THREADS,
 * else all cores), as the CLI picks them; false after printing why not */
static inline bool bench_start(const char *name) {
    tsr_status st = tsr_cpu_init();
    if (st.code) {
        fprintf(stderr, "%s: %s\n", name, st.msg);
        return false;
    }
    tsr_threads_set(0);
    return true;
}

/* the median of v[0..n) (sorts v in place) */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return v[n / 2];
}

/* best of 5 timed n^3 sgemm calls after a warm-up call, in GFLOPS */
static inline double bench_sgemm_peak(int n) {
    size_t sz = sizeof(float) * (size_t)n * (size_t)n;
    float *a = malloc(sz), *b = malloc(sz), *c = malloc(sz);
    TSR_ASSERT(a && b && c);
    bench_fill(a, (int64_t)n * n, 4);
    bench_fill(b, (int64_t)n * n, 5);
    double best = 1e30;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
    for (int i = 0; i < 5; i++) {
        double t0 = tsr_time();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
        best = fmin(best, tsr_time() - t0);
    }
    free(a), free(b), free(c);
    return 2.0 * n * n * n / best * 1e-9;
}

#endif
