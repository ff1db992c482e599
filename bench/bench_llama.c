/* Benchmark: training throughput of the Llama-style decoder in src/nn/
 * (d 256, 6 layers, 8 heads, SwiGLU hidden 688, vocab 4096, T 256, B 8):
 * forward + backward + AdamW per step. Validates first (step-0 loss ~
 * ln V, loss falls), then times; prints one JSON line with tokens/s, the
 * sustained GFLOPS of the counted matmul + attention work, and the fraction
 * of this machine's sgemm peak measured in the same run (2048^3).
 * bench/bench_llama.sh runs it beside bench/llama_torch.py.
 * Env: TESSERA_THREADS, BENCH_STEPS (timed steps, default 6). */
#include "bench_common.h"
#include "tessera/nn.h"
#include "tessera/ops.h"
#include "tessera/optim.h"

#include <math.h>
#include <string.h>

int main(void) {
    tsr_threads_set(0);
    const char *se = getenv("BENCH_STEPS");
    int steps = se && atoi(se) > 0 ? atoi(se) : 6;
    const int B = 8, T = 256;
    tsr_nn_llama_cfg cfg = {.dim = 256, .n_layers = 6, .n_heads = 8, .n_kv_heads = 8,
                            .hidden_dim = 688, .vocab = 4096, .max_seq = T,
                            .norm_eps = 1e-5f, .rope_theta = 10000.0f, .tied = false};
    tsr_params p;
    tsr_params_init(&p);
    tsr_nn_llama m;
    tsr_status st = tsr_nn_llama_init(&m, &p, &cfg);
    if (st.code) {
        fprintf(stderr, "bench_llama: %s\n", st.msg);
        return 1;
    }
    tsr_rng rng;
    tsr_rng_seed(&rng, 42);
    tsr_nn_llama_init_weights(&m, &rng);
    tsr_adamw opt;
    tsr_adamw_init(&opt, &p, (tsr_adamw_cfg){.lr = 3e-4f, .beta1 = 0.9f, .beta2 = 0.95f,
                                             .eps = 1e-8f, .weight_decay = 0.1f});
    tsr_ctx c;
    tsr_ctx_init(&c, (size_t)64 << 20);
    int32_t *seqs = malloc(sizeof(int32_t) * B * (T + 1));
    for (int i = 0; i < B * (T + 1); i++) seqs[i] = (int32_t)tsr_rng_below(&rng, (uint32_t)cfg.vocab);

    int total = steps + 2; /* 2 untimed: validation + warm-up of the arena */
    double *times = malloc(sizeof(double) * (size_t)total);
    double *ph = calloc((size_t)total * 3, sizeof(double)); /* fwd, bwd, opt per step */
    float loss0 = 0, loss_last = 0;
    for (int s = 0; s < total; s++) {
        double t0 = tsr_time();
        tsr_ctx_reset(&c);
        tsr_tensor *in = tsr_new(&c, TSR_I32, TSR_DIMS(B, T)), *tg = tsr_new(&c, TSR_I32, TSR_DIMS(B, T));
        for (int b = 0; b < B; b++) {
            memcpy(tsr_i32(in) + b * T, seqs + b * (T + 1), sizeof(int32_t) * T);
            memcpy(tsr_i32(tg) + b * T, seqs + b * (T + 1) + 1, sizeof(int32_t) * T);
        }
        tsr_params_zero_grad(&p);
        double t1 = tsr_time();
        tsr_tensor *loss = tsr_nn_llama_loss(&c, &m, in, tg, -1, NULL, NULL);
        double t2 = tsr_time();
        tsr_backward(&c, loss);
        double t3 = tsr_time();
        tsr_adamw_step(&opt, 3e-4f);
        double t4 = tsr_time();
        times[s] = t4 - t0;
        ph[3 * s] = t2 - t1;
        ph[3 * s + 1] = t3 - t2;
        ph[3 * s + 2] = t4 - t3;
        float lv = tsr_f32(loss)[0];
        if (s == 0) loss0 = lv;
        loss_last = lv;
        if (!isfinite(lv)) {
            fprintf(stderr, "bench_llama: loss not finite at step %d\n", s);
            return 1;
        }
    }
    if (fabsf(loss0 - logf((float)cfg.vocab)) > 0.1f) {
        fprintf(stderr, "bench_llama: step-0 loss %g, want ~ln %d = %g\n", loss0, cfg.vocab,
                logf((float)cfg.vocab));
        return 1;
    }
    if (!(loss_last < loss0)) {
        fprintf(stderr, "bench_llama: loss did not fall (%g -> %g)\n", loss0, loss_last);
        return 1;
    }
    /* phase split of the median step (before sorting loses the pairing) */
    double *order = malloc(sizeof(double) * (size_t)steps);
    memcpy(order, times + 2, sizeof(double) * (size_t)steps);
    qsort(order, (size_t)steps, sizeof(double), bench_cmp_double);
    double med = order[steps / 2], best = order[0];
    int mi = 2;
    for (int s = 2; s < total; s++)
        if (times[s] == med) mi = s;
    free(order);
    double flops = 3.0 * tsr_nn_llama_flops_fwd(&cfg, B, T); /* fwd + 2x for bwd */
    double peak = bench_sgemm_peak(2048);
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    printf("{\"bench\":\"llama_train\",\"impl\":\"tessera\",\"cpu\":\"%s\",\"threads\":%d,"
           "\"build\":\"%s%s\",\"B\":%d,\"T\":%d,\"dim\":%d,\"layers\":%d,\"heads\":%d,"
           "\"hidden\":%d,\"vocab\":%d,\"params\":%lld,\"steps\":%d,\"loss0\":%.4f,\"loss_last\":%.4f,"
           "\"step_ms_median\":%.1f,\"step_ms_best\":%.1f,\"fwd_ms\":%.1f,\"bwd_ms\":%.1f,\"adamw_ms\":%.1f,\"tokens_per_s\":%.1f,"
           "\"gflop_per_step\":%.2f,\"gflops\":%.2f,\"sgemm_peak_gflops\":%.2f,\"frac_of_peak\":%.3f,"
           "\"arena_peak_mb\":%.1f}\n",
           cpu, tsr_threads_get(), bench_build_flags(), "",
           B, T, cfg.dim, cfg.n_layers, cfg.n_heads, cfg.hidden_dim, cfg.vocab,
           (long long)tsr_params_count(&p), steps, loss0, loss_last, med * 1e3, best * 1e3, ph[3 * mi] * 1e3,
           ph[3 * mi + 1] * 1e3, ph[3 * mi + 2] * 1e3,
           B * T / med, flops * 1e-9, flops / med * 1e-9, peak, flops / med * 1e-9 / peak,
           (double)c.arena.peak / (1 << 20));
    free(times);
    free(ph);
    free(seqs);
    tsr_adamw_free(&opt);
    tsr_ctx_free(&c);
    tsr_nn_llama_free(&m);
    tsr_params_free(&p);
    return 0;
}
