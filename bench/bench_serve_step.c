/* tessera bench: the cost of one continuous-batching step of `tessera
 * serve` by its parts, per number of decoding sequences n (1, 2, 4, 8):
 * the batched forward (tsr_lm_forward_batch, one row per sequence, each
 * sequence's cache holding `ctx` positions), and sampling each row with the
 * server's sampler settings (greedy; temperature 0.8 + top-p 0.95, the
 * bench_serve mix). Timed by thread CPU time (the machine is shared:
 * wall time measures the neighbours), minimum and median of R repetitions,
 * one thread (THREADS > 1: that many, timed by wall clock, since the
 * other threads' time is not the caller's; use it on an idle machine).
 * Sampling is timed one row at a time. One JSON line per n, with the cost per row relative to n = 1:
 * the ceiling batching alone puts on the n-client / 1-client throughput
 * ratio is n * t(1) / t(n).
 *
 *   build/bench_serve_step [MODEL_DIR (models/pycode)] [CTX (100)] [REPS (300)] [ROWS (0: all of 1, 2, 4, 8)] [THREADS (1)]
 * (one ROWS value: only that size, e.g. under perf record) */
#include "bench_common.h"
#include "tessera/lm.h"

#include <time.h>

static clockid_t g_clock = CLOCK_THREAD_CPUTIME_ID;

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(g_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "models/pycode";
    int ctx = argc > 2 ? atoi(argv[2]) : 100, R = argc > 3 ? atoi(argv[3]) : 300, only = argc > 4 ? atoi(argv[4]) : 0;
    int threads = argc > 5 ? atoi(argv[5]) : 1;
    if (threads < 1 || threads > 256) {
        fprintf(stderr, "bench_serve_step: THREADS must be in 1..256\n");
        return 2;
    }
    tsr_threads_set(threads);
    if (threads > 1) g_clock = CLOCK_MONOTONIC;
    tsr_lm_model m;
    tsr_status st = tsr_lm_load(&m, dir, -1, 0);
    if (st.code) {
        fprintf(stderr, "bench_serve_step: %s\n", st.msg);
        return 1;
    }
    const int V = m.cfg.vocab_size, NMAX = 8;
    if (ctx < 1 || ctx >= m.cfg.seq_len || R < 3 || only < 0 || only > NMAX) {
        fprintf(stderr, "bench_serve_step: CTX must be in [1, %d), REPS >= 3 and ROWS in 1..%d\n", m.cfg.seq_len, NMAX);
        return 2;
    }
    tsr_lm_cache ws, caches[8];
    tsr_lm_cache *rc[8];
    TSR_ASSERT(!tsr_lm_cache_init(&ws, &m.cfg, m.cfg.seq_len).code);
    int tok[8], pos[8], hist[256];
    uint8_t want[8];
    float *logits = malloc(sizeof(float) * (size_t)NMAX * V), *lg = malloc(sizeof(float) * (size_t)V);
    /* each cache holds ctx positions of a different prompt */
    for (int s = 0; s < NMAX; s++) {
        TSR_ASSERT(!tsr_lm_cache_init(&caches[s], &m.cfg, 0).code);
        rc[s] = &caches[s];
        int *p = malloc(sizeof(int) * (size_t)ctx);
        for (int i = 0; i < ctx; i++) p[i] = 1 + (i * 131 + s * 977) % (V - 1);
        TSR_ASSERT(!tsr_lm_forward_last(&m, &caches[s], p, ctx, 0, lg).code);
        free(p);
        tok[s] = 7 + s;
        pos[s] = ctx;
        want[s] = 1;
    }
    for (int i = 0; i < 256; i++) hist[i] = i % V;
    char cpu[128];
    bench_cpu_model(cpu, sizeof cpu);
    double *t = malloc(sizeof(double) * (size_t)R), base_fwd = 0, base_smp = 0;
    for (int n = only ? only : 1; n <= (only ? only : NMAX); n *= 2) {
        for (int r = 0; r < R; r++) {
            double a = cpu_now();
            st = tsr_lm_forward_batch(&m, &ws, rc, tok, pos, n, want, logits);
            t[r] = cpu_now() - a;
            TSR_ASSERT(!st.code);
        }
        double fmin = t[0];
        for (int r = 1; r < R; r++) fmin = t[r] < fmin ? t[r] : fmin;
        double fmed = bench_median(t, R);
        /* sampling: greedy and top-p rows of these logits */
        double smp[2];
        for (int kind = 0; kind < 2; kind++) {
            tsr_lm_sampler_opts so;
            tsr_lm_sampler_defaults(&so);
            so.temperature = kind ? 0.8f : 0.0f;
            so.top_p = kind ? 0.95f : 1.0f;
            so.seed = 1;
            tsr_lm_sampler sm;
            TSR_ASSERT(!tsr_lm_sampler_init(&sm, &so, V).code);
            for (int r = 0; r < R; r++) {
                memcpy(lg, logits + (size_t)(r % n) * V, sizeof(float) * (size_t)V);
                double a = cpu_now();
                (void)tsr_lm_sample(&sm, lg, hist, ctx);
                t[r] = cpu_now() - a;
            }
            smp[kind] = bench_median(t, R);
            tsr_lm_sampler_free(&sm);
        }
        /* a step: the forward + half the rows greedy, half top-p (bench_serve's mix) */
        double step = fmed + n * 0.5 * (smp[0] + smp[1]);
        if (n == (only ? only : 1)) base_fwd = fmed, base_smp = step;
        printf("{\"bench\": \"serve_step\", \"model\": \"%s\", \"cpu\": \"%s\", \"threads\": %d, \"clock\": \"%s\", \"ctx\": %d, \"rows\": %d, "
               "\"forward_us_min\": %.1f, \"forward_us_median\": %.1f, \"forward_per_row_us\": %.1f, "
               "\"sample_greedy_us\": %.1f, \"sample_top_p_us\": %.1f, \"step_us\": %.1f, "
               "\"forward_ratio_vs_1\": %.2f, \"batching_ceiling\": %.2f, \"build\": \"%s\"}\n",
               dir, cpu, threads, threads > 1 ? "wall" : "thread_cpu", ctx, n, 1e6 * fmin, 1e6 * fmed, 1e6 * fmed / n, 1e6 * smp[0], 1e6 * smp[1], 1e6 * step,
               fmed / base_fwd, n * base_smp / step, bench_build_flags());
        fflush(stdout);
    }
    for (int s = 0; s < NMAX; s++) tsr_lm_cache_free(&caches[s]);
    tsr_lm_cache_free(&ws);
    free(logits), free(lg), free(t);
    tsr_lm_model_free(&m);
    return 0;
}
