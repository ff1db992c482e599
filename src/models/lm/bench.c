/* lm family: the physical limits `tessera lm bench` compares against,
 * measured in the same run: memory read bandwidth (a streaming sum over an
 * array much larger than the caches, on every worker thread) and sgemm
 * throughput (OpenBLAS). */
#include "tessera/lm.h"

#include <cblas.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* The machine's streaming-read peak, the ceiling for any decode: every
 * processor reads its own contiguous share (OpenMP's static split) of a
 * buffer four times the last-level cache (at least 512 MiB, at most a
 * quarter of the memory). It always uses all processors and the widest
 * vectors the CPU has, whatever the thread count and kernel level of the
 * run it bounds: a decode on fewer threads may draw more than their share
 * of the machine's bandwidth, so a per-thread probe is no ceiling, and
 * narrow loads leave a core short of its peak. Each share is read as one
 * stream and as 8 streams taken 4 KB at a time (a matrix-vector product
 * reads several rows at once, which some memory systems serve faster),
 * summed in 32 independent lanes; the best of reps runs of each form. */
size_t tsr_lm_bench_read_bw_bytes(void) {
    size_t mib = (size_t)1 << 20, bytes = 512 * mib;
    long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (llc <= 0) llc = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (llc > 0 && (size_t)llc * 4 > bytes) bytes = (size_t)llc * 4;
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psz > 0) {
        size_t cap = (size_t)pages * (size_t)psz / 4;
        if (bytes > cap) bytes = cap < 64 * mib ? 64 * mib : cap;
    }
    return bytes;
}

int tsr_lm_bench_read_bw_threads(void) {
#ifdef _OPENMP
    return omp_get_num_procs();
#else
    return 1;
#endif
}

#define PROBE_CHUNK 1024 /* floats: 4 KB */
/* sum of p[0..n) (n a multiple of streams * PROBE_CHUNK) read as `streams`
 * interleaved streams; one body, compiled for three vector widths */
#define DEFINE_PROBE_SUM(name, attr)                                                        \
    attr static float name(const float *p, size_t n, int streams) {                      \
        float acc[32] = {0};                                                              \
        size_t part = n / (size_t)streams;                                                \
        for (size_t off = 0; off < part; off += PROBE_CHUNK)                              \
            for (int k = 0; k < streams; k++) {                                           \
                const float *q = p + (size_t)k * part + off;                              \
                for (int j = 0; j < PROBE_CHUNK; j += 32)                                 \
                    for (int l = 0; l < 32; l++) acc[l] += q[j + l];                      \
            }                                                                             \
        float s = 0;                                                                      \
        for (int l = 0; l < 32; l++) s += acc[l];                                         \
        return s;                                                                         \
    }
DEFINE_PROBE_SUM(probe_sum, )
#if defined(__x86_64__) && defined(__GNUC__)
DEFINE_PROBE_SUM(probe_sum_avx2, __attribute__((target("avx2"))))
DEFINE_PROBE_SUM(probe_sum_avx512, __attribute__((target("avx512f"))))
#endif

static float probe_share(const float *p, size_t n, int streams) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f")) return probe_sum_avx512(p, n, streams);
    if (__builtin_cpu_supports("avx2")) return probe_sum_avx2(p, n, streams);
#endif
    return probe_sum(p, n, streams);
}

double tsr_lm_bench_read_bw(size_t bytes, int reps, double *checksum) {
    if (bytes == 0) bytes = tsr_lm_bench_read_bw_bytes();
    int nt = tsr_lm_bench_read_bw_threads();
    size_t unit = (size_t)nt * 8 * PROBE_CHUNK; /* every share splits into 8 whole chunks */
    size_t n = bytes / sizeof(float) / unit * unit;
    float *a = NULL;
    if (n == 0 || posix_memalign((void **)&a, 64, n * sizeof(float)) != 0) return 0;
    size_t per = n / (size_t)nt;
    /* touch every page with the thread that will read it (first touch) */
#pragma omp parallel for schedule(static, 1) num_threads(nt)
    for (int t = 0; t < nt; t++)
        for (size_t i = 0; i < per; i++) a[(size_t)t * per + i] = (float)(i & 7);
    double best = 1e30, sum = 0;
    for (int r = 0; r < 2 * (reps > 0 ? reps : 1); r++) {
        int streams = r % 2 ? 8 : 1;
        double t0 = tsr_time(), s = 0;
#pragma omp parallel for schedule(static, 1) reduction(+ : s) num_threads(nt)
        for (int t = 0; t < nt; t++) s += probe_share(a + (size_t)t * per, per, streams);
        double dt = tsr_time() - t0;
        if (dt < best) best = dt;
        sum = s;
    }
    free(a);
    if (checksum) *checksum = sum;
    return (double)n * sizeof(float) / best / 1e9;
}

double tsr_lm_bench_sgemm_gflops(int N, int reps) {
    size_t nn = (size_t)N * (size_t)N;
    float *a = malloc(nn * sizeof(float)), *b = malloc(nn * sizeof(float)), *c = malloc(nn * sizeof(float));
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return 0;
    }
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)((i * 7) % 13) * 0.01f;
        b[i] = (float)((i * 5) % 11) * 0.01f;
    }
    double best = 1e30;
    for (int r = 0; r < (reps > 0 ? reps : 1); r++) {
        double t0 = tsr_time();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a, N, b, N, 0.0f, c, N);
        double dt = tsr_time() - t0;
        if (dt < best) best = dt;
    }
    free(a), free(b), free(c);
    return 2.0 * (double)N * N * N / best / 1e9;
}

double tsr_lm_forward_flops(const tsr_lm_config *c, int n, int pos0) {
    double C = c->dim, D = (double)c->dim / c->n_heads, kv = D * c->n_kv_heads;
    double per_tok = c->n_layers * 2.0 * (C * C + 2 * kv * C + C * C + 3.0 * C * c->hidden_dim) +
                     2.0 * C * c->vocab_size;
    double keys = 0; /* token t attends to pos0 + t + 1 keys: scores and weighted sum */
    for (int t = 0; t < n; t++) keys += pos0 + t + 1;
    return per_tok * n + c->n_layers * 4.0 * C * keys;
}
