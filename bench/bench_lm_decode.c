/* tessera bench: where a decode step's time goes. For a model file (any
 * format `tessera lm` reads, weights as stored), after a 16-token prompt,
 * each step times one full forward of one token (tsr_lm_forward, logits
 * included), then the same matrix products alone with the forward's shapes
 * and weights: the attention projections (q, k, v, o), the MLP's gate and
 * up (w1, w3), its down projection (w2) and the classifier. "other" is the
 * forward minus the products: norms, RoPE, attention, SwiGLU, the
 * activations' conversion and the threads' start and end of each product.
 * Prints one JSON line of medians over every step: wall time, and with one
 * thread also the thread's CPU time (which a loaded machine disturbs less).
 * The kernel level is the one in use (TESSERA_CPU forces one). With more
 * threads, set GOMP_SPINCOUNT=10000 as the tessera binary does.
 * usage: bench_lm_decode MODEL [STEPS] [REPS] */
#include "bench_common.h"
#include "tessera/cpu.h"
#include "tessera/lm.h"

#include <stdio.h>
#include <stdlib.h>

enum { G_FWD, G_ATT, G_MLP, G_DOWN, G_CLS, NG };
static const char *const g_name[NG] = {"forward", "qkvo", "w1w3", "w2", "classifier"};

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_lm_decode MODEL [STEPS] [REPS]\n");
        return 2;
    }
    const int steps = argc > 2 ? atoi(argv[2]) : 48, reps = argc > 3 ? atoi(argv[3]) : 3;
    if (!bench_start("bench_lm_decode")) return 2;
    tsr_status st = tsr_ok();
    tsr_lm_model m;
    if (steps < 1 || reps < 1 || (st = tsr_lm_load(&m, argv[1], -1, 0)).code) {
        fprintf(stderr, "bench_lm_decode: %s\n", st.code ? st.msg : "STEPS and REPS must be positive");
        return 2;
    }
    const tsr_lm_config *c = &m.cfg;
    const int V = c->vocab_size, C = c->dim, Hd = c->hidden_dim, kv = C / c->n_heads * c->n_kv_heads;
    const int prompt = 16;
    tsr_lm_cache cache;
    if (prompt + steps > c->seq_len || (st = tsr_lm_cache_init(&cache, c, 0)).code) {
        fprintf(stderr, "bench_lm_decode: %s\n", st.code ? st.msg : "STEPS + 16 exceed the model's context");
        return 2;
    }
    /* scratch and activations for the products alone */
    size_t sb = tsr_lm_matmul_scratch(&m.wcls, 1);
    for (int l = 0; l < c->n_layers; l++) {
        const tsr_lm_layer *L = &m.layers[l];
        const tsr_lm_mat *ms[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w3, &L->w2};
        for (int i = 0; i < 7; i++)
            if (tsr_lm_matmul_scratch(ms[i], 1) > sb) sb = tsr_lm_matmul_scratch(ms[i], 1);
    }
    void *scr = NULL;
    TSR_ASSERT(posix_memalign(&scr, 64, sb + 64) == 0);
    float *xb = malloc(sizeof(float) * (size_t)Hd), *o = malloc(sizeof(float) * (size_t)(V > Hd ? V : Hd));
    float *logits = malloc(sizeof(float) * (size_t)V);
    int *toks = malloc(sizeof(int) * prompt);
    const int total = steps * reps;
    double *tw[NG], *tc[NG];
    for (int g = 0; g < NG; g++) {
        tw[g] = calloc((size_t)total, sizeof(double));
        tc[g] = calloc((size_t)total, sizeof(double));
    }
    TSR_ASSERT(xb && o && logits && toks && tw[NG - 1] && tc[NG - 1]);
    bench_fill(xb, Hd, 1);
    for (int i = 0; i < prompt; i++) toks[i] = (int)((i * 7919u + 13u) % (unsigned)V);
    int k = 0;
    for (int r = 0; r < reps; r++) {
        TSR_ASSERT(tsr_lm_forward(&m, &cache, toks, prompt, 0, NULL).code == TSR_OK);
        int tok = toks[prompt - 1];
        for (int i = 0; i < steps; i++, k++) {
            double w0 = tsr_time(), c0 = tsr_thread_time();
            TSR_ASSERT(tsr_lm_forward(&m, &cache, &tok, 1, prompt + i, logits).code == TSR_OK);
            tw[G_FWD][k] = tsr_time() - w0, tc[G_FWD][k] = tsr_thread_time() - c0;
            tok = tsr_lm_argmax(logits, V);
            for (int l = 0; l < c->n_layers; l++) {
                const tsr_lm_layer *L = &m.layers[l];
                w0 = tsr_time(), c0 = tsr_thread_time();
                tsr_lm_matmul(o, C, xb, C, &L->wq, 1, scr);
                tsr_lm_matmul(o, kv, xb, C, &L->wk, 1, scr);
                tsr_lm_matmul(o, kv, xb, C, &L->wv, 1, scr);
                tsr_lm_matmul(o, C, xb, C, &L->wo, 1, scr);
                double w1 = tsr_time(), c1 = tsr_thread_time();
                tsr_lm_matmul(o, Hd, xb, C, &L->w1, 1, scr);
                tsr_lm_matmul(o, Hd, xb, C, &L->w3, 1, scr);
                double w2 = tsr_time(), c2 = tsr_thread_time();
                tsr_lm_matmul(o, C, xb, Hd, &L->w2, 1, scr);
                double w3 = tsr_time(), c3 = tsr_thread_time();
                tw[G_ATT][k] += w1 - w0, tc[G_ATT][k] += c1 - c0;
                tw[G_MLP][k] += w2 - w1, tc[G_MLP][k] += c2 - c1;
                tw[G_DOWN][k] += w3 - w2, tc[G_DOWN][k] += c3 - c2;
            }
            w0 = tsr_time(), c0 = tsr_thread_time();
            tsr_lm_matmul(o, V, xb, C, &m.wcls, 1, scr);
            tw[G_CLS][k] = tsr_time() - w0, tc[G_CLS][k] = tsr_thread_time() - c0;
        }
    }
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    const int one = tsr_threads_get() == 1;
    printf("{\"bench\":\"lm_decode\",\"model\":\"%s\",\"dtype\":\"%s\",\"cpu\":\"%s\",\"kernels\":\"%s\",\"threads\":%d,"
           "\"steps\":%d,\"weight_mb\":%.1f",
           argv[1], tsr_lm_wtype_name(m.wtype), cpu, tsr_cpu_level_name(tsr_cpu_level()), tsr_threads_get(), total,
           (double)tsr_lm_model_decode_bytes(&m) / 1e6);
    /* per-step sums of the products, then their medians */
    double *mw = malloc(sizeof(double) * (size_t)total), *mc = malloc(sizeof(double) * (size_t)total);
    double *ow = malloc(sizeof(double) * (size_t)total), *oc = malloc(sizeof(double) * (size_t)total);
    TSR_ASSERT(mw && mc && ow && oc);
    for (int i = 0; i < total; i++) {
        mw[i] = mc[i] = 0;
        for (int g = G_ATT; g < NG; g++) mw[i] += tw[g][i], mc[i] += tc[g][i];
        ow[i] = tw[G_FWD][i] - mw[i], oc[i] = tc[G_FWD][i] - mc[i];
    }
    printf(",\"wall_ms\":{\"products\":%.3f,\"other\":%.3f", bench_median(mw, total) * 1e3, bench_median(ow, total) * 1e3);
    for (int g = 0; g < NG; g++) printf(",\"%s\":%.3f", g_name[g], bench_median(tw[g], total) * 1e3);
    printf("}");
    if (one) {
        printf(",\"cpu_ms\":{\"products\":%.3f,\"other\":%.3f", bench_median(mc, total) * 1e3, bench_median(oc, total) * 1e3);
        for (int g = 0; g < NG; g++) printf(",\"%s\":%.3f", g_name[g], bench_median(tc[g], total) * 1e3);
        printf("}");
    }
    printf("}\n");
    return 0;
}
