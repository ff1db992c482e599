/* tessera core: thread count for OpenMP and OpenBLAS, and a clock. */
#include "tessera/core.h"

#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <unistd.h>

void openblas_set_num_threads(int n);

static int g_threads = 0;

void tsr_threads_set(int n) {
    if (n <= 0) {
        const char *e = getenv("TESSERA_THREADS");
        if (e && atoi(e) > 0) n = atoi(e);
    }
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    g_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
}

void tsr_threads_adopt(void) {
#ifdef _OPENMP
    omp_set_num_threads(tsr_threads_get());
#endif
}

int tsr_omp_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int tsr_omp_thread_num(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

int tsr_threads_get(void) {
    if (g_threads == 0) tsr_threads_set(0);
    return g_threads;
}

double tsr_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double tsr_thread_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
