/* tessera bench: fused attention (src/ops/attention.c) forward and
 * backward GFLOPS on the LM bench shape (B=8, T=S=256, H=8, D=32, causal)
 * and a bidirectional case, as a fraction of this machine's sgemm peak
 * measured in the same run. One JSON line per figure; validates first.
 * Flop convention (FlashAttention's): forward 4*D per visible (query, key)
 * pair and head, backward 10*D (2.5x forward, recompute included). */
#include "bench_common.h"
#include "tessera/ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static char g_cpu[256];

static void json_head(const char *what) {
    printf("{\"bench\":\"attention\",\"what\":\"%s\",\"cpu\":\"%s\",\"threads\":%d,\"build\":\"%s\"",
           what, g_cpu, tsr_threads_get(), bench_build_flags());
}

static double max_err(const float *a, const float *b, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (1e-3 + fabs(b[i]));
        worst = d > worst || isnan(d) ? (isnan(d) ? INFINITY : d) : worst;
    }
    return worst;
}

typedef struct {
    const char *label;
    int B, T, S, H, Hkv, D;
    bool causal;
    double ms_fwd, ms_bwd, gf_fwd, gf_bwd; /* medians */
    double best_gf_fwd, best_gf_bwd;      /* fastest rep: the machine is shared */
} result;

static int bench_case(result *res) {
    const char *label = res->label;
    int B = res->B, T = res->T, S = res->S, H = res->H, Hkv = res->Hkv, D = res->D;
    bool causal = res->causal;
    tsr_ctx keep, c;
    tsr_ctx_init(&keep, 1 << 20);
    tsr_ctx_init(&c, 256 << 20);
    tsr_tensor *q = tsr_new(&keep, TSR_F32, TSR_DIMS(B, T, H, D));
    tsr_tensor *k = tsr_new(&keep, TSR_F32, TSR_DIMS(B, S, Hkv, D));
    tsr_tensor *v = tsr_new(&keep, TSR_F32, TSR_DIMS(B, S, Hkv, D));
    bench_fill(tsr_f32(q), q->numel, 1);
    bench_fill(tsr_f32(k), k->numel, 2);
    bench_fill(tsr_f32(v), v->numel, 3);
    q->requires_grad = k->requires_grad = v->requires_grad = true;
    float *dy = malloc(sizeof(float) * (size_t)q->numel);
    bench_fill(dy, q->numel, 4);
    tsr_attn_opts o = {causal, NULL, NULL, 0.f};

    /* validate batch 0 against the naive double twin */
    q->grad = k->grad = v->grad = NULL;
    tsr_tensor *y = tsr_attention(&c, q, k, v, &o);
    tsr_backward_with(&c, y, dy);
    int64_t nq = (int64_t)T * H * D, nk = (int64_t)S * Hkv * D;
    float *ry = malloc(4 * nq), *rq = calloc(nq, 4), *rk = calloc(nk, 4), *rv = calloc(nk, 4);
    tsr_attention_ref(ry, tsr_f32(q), tsr_f32(k), tsr_f32(v), NULL, 0, NULL, 0, 1, T, S, H, Hkv, D, causal, 0.f);
    tsr_attention_bwd_ref(rq, rk, rv, NULL, dy, tsr_f32(q), tsr_f32(k), tsr_f32(v), NULL, 0, NULL, 0, 1, T,
                          S, H, Hkv, D, causal, 0.f);
    double e = fmax(fmax(max_err(tsr_f32(y), ry, nq), max_err(q->grad, rq, nq)),
                    fmax(max_err(k->grad, rk, nk), max_err(v->grad, rv, nk)));
    free(ry), free(rq), free(rk), free(rv);
    if (e > 1e-3) {
        fprintf(stderr, "bench_attention: %s: fast path differs from reference (max rel err %.3g)\n", label, e);
        return 1;
    }

    double pairs = 0;
    for (int t = 0; t < T; t++) {
        int lim = causal ? t + S - T : S - 1;
        pairs += lim < 0 ? 0 : (lim >= S ? S : lim + 1);
    }
    pairs *= (double)B * H;
    double ff = 4.0 * D * pairs, fb = 10.0 * D * pairs;
    enum { REPS = 15 };
    double tf[REPS], tb[REPS];
    for (int i = 0; i < REPS; i++) {
        tsr_ctx_reset(&c);
        q->grad = k->grad = v->grad = NULL;
        double t0 = tsr_time();
        y = tsr_attention(&c, q, k, v, &o);
        double t1 = tsr_time();
        memcpy(tsr_grad(&c, y), dy, sizeof(float) * (size_t)y->numel);
        double t2 = tsr_time();
        y->node->backward(&c, y->node);
        double t3 = tsr_time();
        tf[i] = t1 - t0, tb[i] = t3 - t2;
    }
    qsort(tf, REPS, sizeof(double), bench_cmp_double);
    qsort(tb, REPS, sizeof(double), bench_cmp_double);
    res->ms_fwd = tf[REPS / 2] * 1e3, res->ms_bwd = tb[REPS / 2] * 1e3;
    res->gf_fwd = ff / tf[REPS / 2] * 1e-9, res->gf_bwd = fb / tb[REPS / 2] * 1e-9;
    res->best_gf_fwd = ff / tf[0] * 1e-9, res->best_gf_bwd = fb / tb[0] * 1e-9;
    free(dy);
    tsr_ctx_free(&c);
    tsr_ctx_free(&keep);
    return 0;
}

static void print_result(const result *r, bool bwd, double peak) {
    json_head(bwd ? "backward" : "forward");
    double gf = bwd ? r->gf_bwd : r->gf_fwd;
    printf(",\"case\":\"%s\",\"B\":%d,\"T\":%d,\"S\":%d,\"H\":%d,\"Hkv\":%d,\"D\":%d,\"causal\":%s,"
           "\"ms\":%.2f,\"gflops\":%.1f,\"frac_sgemm_peak\":%.3f,\"best_gflops\":%.1f,"
           "\"flops\":\"fwd 4*D, bwd 10*D per visible pair and head\"}\n",
           r->label, r->B, r->T, r->S, r->H, r->Hkv, r->D, r->causal ? "true" : "false",
           bwd ? r->ms_bwd : r->ms_fwd, gf, gf / peak, bwd ? r->best_gf_bwd : r->best_gf_fwd);
}

int main(void) {
    tsr_threads_set(0);
    bench_cpu_model(g_cpu, sizeof g_cpu);
    result cases[] = {
        {"lm_causal", 8, 256, 256, 8, 8, 32, true, 0, 0, 0, 0, 0, 0},
        {"bidirectional", 8, 256, 256, 8, 8, 32, false, 0, 0, 0, 0, 0, 0},
        {"gqa_causal_d64", 4, 256, 256, 8, 2, 64, true, 0, 0, 0, 0, 0, 0},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    /* attention first, the sgemm peak last: OpenBLAS's worker threads keep
     * spinning for a while after a call and would steal the cores */
    for (int i = 0; i < n; i++)
        if (bench_case(&cases[i])) return 1;
    double peak = bench_sgemm_peak(2048);
    json_head("sgemm_peak");
    printf(",\"shape\":\"2048^3\",\"gflops\":%.1f}\n", peak);
    for (int i = 0; i < n; i++) {
        print_result(&cases[i], false, peak);
        print_result(&cases[i], true, peak);
    }
    return 0;
}
