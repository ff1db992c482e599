/* tessera bench: the lm matmul kernels alone (tsr_lm_matmul) at the kernel
 * level in use (TESSERA_CPU forces one), for one weight type and shape:
 * MATS matrices of ROWS x COLS, each multiplied by N tokens, one pass over
 * all of them per repeat. Weights are 64-byte aligned, as the model lays
 * them out. With one matrix of a few hundred KB the weights stay in L2
 * and the figure is the kernel's own rate; with many (e.g. 48 of 1024 x
 * 2816, 277 MB in bf16) they stream from memory as in decoding. Prints one
 * JSON line: the median over REPS of the wall time and, with one thread,
 * of the thread's CPU time (which a loaded machine disturbs less), and the
 * weight bytes read per second of each.
 * usage: bench_lm_matmul [f32|bf16|q8] [ROWS] [COLS] [MATS] [N] [REPS] */
#include "bench_common.h"
#include "tessera/cpu.h"
#include "tessera/lm.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    const char *dt = argc > 1 ? argv[1] : "bf16";
    const int rows = argc > 2 ? atoi(argv[2]) : 512, cols = argc > 3 ? atoi(argv[3]) : 1024;
    const int mats = argc > 4 ? atoi(argv[4]) : 1, n = argc > 5 ? atoi(argv[5]) : 1;
    const int reps = argc > 6 ? atoi(argv[6]) : 21;
    if (!bench_start("bench_lm_matmul")) return 2;
    tsr_lm_wtype wt;
    if (!tsr_lm_wtype_parse(dt, &wt) || rows < 1 || cols < 1 || mats < 1 || n < 1 || reps < 1) {
        fprintf(stderr, "usage: bench_lm_matmul [f32|bf16|q8] [ROWS] [COLS] [MATS] [N] [REPS]\n");
        return 2;
    }
    const int gs = 32;
    const size_t ne = (size_t)rows * (size_t)cols;
    const double wbytes = wt == TSR_LM_W_F32 ? 4.0 : wt == TSR_LM_W_BF16 ? 2.0 : 1.0 + 4.0 / gs;
    tsr_lm_mat *W = calloc((size_t)mats, sizeof *W);
    float *src = malloc(sizeof(float) * ne), *x = malloc(sizeof(float) * (size_t)cols * (size_t)n);
    float *out = malloc(sizeof(float) * (size_t)rows * (size_t)n);
    TSR_ASSERT(W && src && x && out);
    bench_fill(x, (int64_t)cols * n, 1);
    for (int m = 0; m < mats; m++) {
        W[m] = (tsr_lm_mat){wt, rows, cols, NULL, NULL, wt == TSR_LM_W_Q8 ? gs : 0};
        void *data = NULL;
        TSR_ASSERT(posix_memalign(&data, 64, ne * 4) == 0);
        W[m].data = data;
        if (wt == TSR_LM_W_Q8) W[m].scales = malloc(sizeof(float) * (size_t)rows * (size_t)tsr_lm_mat_groups(&W[m]));
        bench_fill(src, (int64_t)ne, 2 + (uint64_t)m);
        tsr_lm_mat_store(&W[m], src);
    }
    void *scratch = NULL;
    TSR_ASSERT(posix_memalign(&scratch, 64, tsr_lm_matmul_scratch(&W[0], n) + 64) == 0);
    double *tw = malloc(sizeof(double) * (size_t)reps), *tc = malloc(sizeof(double) * (size_t)reps);
    for (int m = 0; m < mats; m++) tsr_lm_matmul(out, rows, x, cols, &W[m], n, scratch); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double w0 = tsr_time(), c0 = tsr_thread_time();
        for (int m = 0; m < mats; m++) tsr_lm_matmul(out, rows, x, cols, &W[m], n, scratch);
        tc[r] = tsr_thread_time() - c0;
        tw[r] = tsr_time() - w0;
    }
    const double bytes = wbytes * (double)ne * mats, mw = bench_median(tw, reps), mc = bench_median(tc, reps);
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    printf("{\"bench\":\"lm_matmul\",\"cpu\":\"%s\",\"kernels\":\"%s\",\"threads\":%d,\"dtype\":\"%s\",\"rows\":%d,"
           "\"cols\":%d,\"mats\":%d,\"tokens\":%d,\"reps\":%d,\"weight_mb\":%.1f,\"wall_ms\":%.4f,\"wall_gbs\":%.2f",
           cpu, tsr_cpu_level_name(tsr_cpu_level()), tsr_threads_get(), dt, rows, cols, mats, n, reps, bytes / 1e6,
           mw * 1e3, bytes / mw / 1e9);
    if (tsr_threads_get() == 1) printf(",\"cpu_ms\":%.4f,\"cpu_gbs\":%.2f", mc * 1e3, bytes / mc / 1e9);
    printf("}\n");
    return 0;
}
