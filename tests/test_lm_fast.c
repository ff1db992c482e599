/* Tests for the lm family's bf16 / Q8 weights and the HF / safetensors
 * loaders (src/decode/lm_kernels.c, src/decode/lm_model.c,
 * src/io/hf_llama.c, tsr_lm_generate_bpe).
 *
 * Tolerances
 * - bf16 and Q8 matmul vs their naive twins (same rounded / quantised
 *   products, sequential sum): atol 1e-4, rtol 1e-4 (f32 sums of <= 200
 *   products of O(1) values in a different order).
 * - Bit-identity (memcmp) of every output element whatever n (1..64), the
 *   chunking of a sequence and the thread count, for bf16 and Q8 (group 32
 *   and 64), exactly as for f32 in test_lm_infer.c, at every kernel level
 *   the CPU supports (or the one TESSERA_CPU forces).
 * - Across levels: the SIMD levels bit-identical to each other, the scalar
 *   level within atol 1e-4, rtol 1e-4 (f32 sums without FMA).
 * - Loader: logits of a tsr_nn_llama (training side, HF names, rotate-half
 *   RoPE) saved with tsr_params_save + metadata (or as an HF directory with
 *   config.json) and run by tsr_lm_forward: atol 1e-5, rtol 1e-5 (two f32
 *   implementations, 2 layers, logits O(1)).
 * - Save/load round trips of f32, bf16 and Q8 models: logits bit-identical.
 * - Accuracy of bf16 / Q8 against f32 on stories260K over the golden text
 *   (not a tolerance of a kernel but of the number formats): argmax agreement
 *   >= 95% (bf16) and >= 90% (Q8) of positions, max |logit error| printed.
 * - Malformed configs and tensors give a status naming the file. */
#include "testutil.h"
#include "tessera/bpe.h"
#include "tessera/cpu.h"
#include "tessera/lm.h"
#include "tessera/nn.h"
#include "tessera/safetensors.h"
#include "tessera/tokenizer.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DATA "../shared/data/llama2c/"

static char g_tmp[256];

/* ------------------------------------------------------------ kernels */

static void test_kernels(tsr_lm_wtype wt, int gs) {
    tsr_rng r;
    tsr_rng_seed(&r, 3);
    int shapes[][2] = {{1, 1}, {3, 7}, {5, 20}, {9, 33}, {13, 100}, {8, 64}, {37, 172}, {4, 200}};
    const int N = 66;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int rows = shapes[si][0], k = shapes[si][1];
        /* a typed matrix in a buffer of its own */
        tsr_lm_mat m = {wt, rows, k, NULL, NULL, wt == TSR_LM_W_Q8 ? gs : 0};
        void *data = calloc((size_t)rows * k * 4 + 64, 1);
        float *sc = calloc((size_t)rows * (k / 32 + 2), sizeof(float));
        m.data = data;
        m.scales = wt == TSR_LM_W_Q8 ? sc : NULL;
        float *w = malloc(sizeof(float) * rows * k), *x = malloc(sizeof(float) * N * k);
        for (int i = 0; i < rows * k; i++) w[i] = tsr_rng_normal(&r);
        for (int i = 0; i < N * k; i++) x[i] = tsr_rng_normal(&r);
        tsr_lm_mat_store(&m, w);
        float *o = malloc(sizeof(float) * N * rows), *ref = malloc(sizeof(float) * N * rows);
        float *one = malloc(sizeof(float) * rows);
        void *scr = NULL;
        TSR_ASSERT(posix_memalign(&scr, 64, tsr_lm_matmul_scratch(&m, N) + 64) == 0);
        tsr_lm_matmul_ref(ref, rows, x, k, &m, N);
        int bad = 0;
        for (int nn = 1; nn <= N; nn += (nn < 10 ? 1 : 7)) {
            for (int th = 1; th <= 2; th++) {
                tsr_threads_set(th);
                tsr_lm_matmul(o, rows, x, k, &m, nn, scr);
                for (int t = 0; t < nn; t++) {
                    tsr_lm_matmul(one, rows, x + (size_t)t * k, k, &m, 1, scr);
                    if (memcmp(one, o + (size_t)t * rows, sizeof(float) * rows)) bad++;
                }
            }
            tu_close("typed matmul vs ref", o, ref, (int64_t)nn * rows, 1e-4, 1e-4);
        }
        tsr_threads_set(0);
        TU_CHECK(bad == 0, "%s/%d %dx%d: %d tokens differ from their single-token product",
                 tsr_lm_wtype_name(wt), gs, rows, k, bad);
        /* row readback: bf16 exact rounding, Q8 within half a step */
        float *row = malloc(sizeof(float) * k);
        double worst = 0;
        for (int i = 0; i < rows; i++) {
            tsr_lm_mat_row(&m, i, row);
            for (int j = 0; j < k; j++) {
                double want = wt == TSR_LM_W_BF16 ? tsr_bf16_to_f32(tsr_f32_to_bf16(w[i * k + j])) : w[i * k + j];
                double tol = wt == TSR_LM_W_Q8 ? 0.5001 * m.scales[i * tsr_lm_mat_groups(&m) + j / gs] + 1e-7 : 0;
                double e = fabs(row[j] - want) - tol;
                if (e > worst) worst = e;
            }
        }
        TU_CHECK(worst <= 0, "%s: dequantised rows off by %g beyond half a step", tsr_lm_wtype_name(wt), worst);
        free(row);
        free(data), free(sc), free(w), free(x), free(o), free(ref), free(one), free(scr);
    }
}

/* Values at the edges of f32 (denormal weights and activations, products
 * and sums that fall below the normal range, zeros of both signs, an
 * infinity, a NaN): each token's outputs bit-identical to its
 * single-token product whatever n, as for ordinary values. At the AVX-512
 * BF16 level one token goes through vdpbf16ps and several through FMA,
 * which must follow its denormal rule exactly. */
static void test_kernels_edge(void) {
    tsr_rng r;
    tsr_rng_seed(&r, 17);
    const int rows = 11, k = 100, N = 9;
    tsr_lm_mat m = {TSR_LM_W_BF16, rows, k, NULL, NULL, 0};
    void *data = calloc((size_t)rows * k * 2 + 64, 1);
    m.data = data;
    float *w = malloc(sizeof(float) * rows * k), *x = malloc(sizeof(float) * N * k);
    const float scale[] = {1.0f, 1e-19f, 1e-38f, 3e-39f, 0.0f, -0.0f};
    for (int i = 0; i < rows * k; i++) w[i] = tsr_rng_normal(&r) * scale[(i / 7 + i / k) % 6];
    for (int i = 0; i < N * k; i++) x[i] = tsr_rng_normal(&r) * scale[(i / 5 + i / k) % 6];
    x[3 * k + 11] = INFINITY;
    x[5 * k + 50] = NAN;
    tsr_lm_mat_store(&m, w);
    float *o = malloc(sizeof(float) * N * rows), *one = malloc(sizeof(float) * rows);
    void *scr = NULL;
    TSR_ASSERT(posix_memalign(&scr, 64, tsr_lm_matmul_scratch(&m, N) + 64) == 0);
    int bad = 0;
    for (int nn = 2; nn <= N; nn++) {
        tsr_lm_matmul(o, rows, x, k, &m, nn, scr);
        for (int t = 0; t < nn; t++) {
            tsr_lm_matmul(one, rows, x + (size_t)t * k, k, &m, 1, scr);
            if (memcmp(one, o + (size_t)t * rows, sizeof(float) * rows)) bad++;
        }
    }
    TU_CHECK(bad == 0, "bf16 edge values: %d tokens differ from their single-token product", bad);
    free(data), free(w), free(x), free(o), free(one), free(scr);
}

/* ------------------------------------------------------------ kernel levels */

/* The same products at every kernel level the CPU supports: the SIMD
 * levels (avx2, avx512, avx512bf16) compute the same lanes in the same
 * order with exact products (bf16) or exact integers (Q8), so they agree
 * bit for bit; the scalar level (no FMA) within atol 1e-4, rtol 1e-4. */
static void test_levels(void) {
    int lv[TSR_CPU_LEVELS];
    int nl = tu_levels(lv);
    const int types[][2] = {{TSR_LM_W_F32, 0}, {TSR_LM_W_BF16, 0}, {TSR_LM_W_Q8, 32}, {TSR_LM_W_Q8, 64}};
    /* 523 x 1040: over 1 MiB in bf16, so one token takes the 8-row decode
     * blocks (4 for the smaller shapes), with a tail of 3 rows and 16 columns */
    const int shapes[][2] = {{5, 20}, {37, 172}, {16, 1024}, {523, 1040}};
    const int N = 9;
    tsr_rng r;
    tsr_rng_seed(&r, 5);
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            tsr_lm_wtype wt = (tsr_lm_wtype)types[ti][0];
            int gs = types[ti][1], rows = shapes[si][0], k = shapes[si][1];
            tsr_lm_mat m = {wt, rows, k, NULL, NULL, gs};
            void *data = calloc((size_t)rows * k * 4 + 64, 1);
            float *sc = calloc((size_t)rows * (k / 32 + 2), sizeof(float));
            m.data = data;
            m.scales = wt == TSR_LM_W_Q8 ? sc : NULL;
            float *w = malloc(sizeof(float) * rows * k), *x = malloc(sizeof(float) * N * k);
            for (int i = 0; i < rows * k; i++) w[i] = tsr_rng_normal(&r);
            for (int i = 0; i < N * k; i++) x[i] = tsr_rng_normal(&r);
            tsr_lm_mat_store(&m, w);
            float *o[TSR_CPU_LEVELS], *o1 = malloc(sizeof(float) * rows);
            void *scr = NULL;
            TSR_ASSERT(posix_memalign(&scr, 64, tsr_lm_matmul_scratch(&m, N) + 64) == 0);
            for (int i = 0; i < nl; i++) {
                o[i] = malloc(sizeof(float) * N * rows);
                TSR_ASSERT(tsr_cpu_set_level(lv[i]).code == TSR_OK);
                tsr_lm_matmul(o[i], rows, x, k, &m, N, scr);
                /* each token alone (the one-token kernels) gives its row bit for bit */
                for (int t = 0; t < N; t++) {
                    tsr_lm_matmul(o1, rows, x + (size_t)t * k, k, &m, 1, scr);
                    TU_CHECK(memcmp(o1, o[i] + (size_t)t * rows, sizeof(float) * rows) == 0,
                             "%s/%d %dx%d at %s: token %d alone differs from the batch", tsr_lm_wtype_name(wt), gs,
                             rows, k, tsr_cpu_level_name(lv[i]), t);
                }
            }
            tu_level_restore();
            /* compare each level to the highest one */
            for (int i = 0; i + 1 < nl; i++) {
                char what[96];
                snprintf(what, sizeof what, "%s/%d %dx%d at %s vs %s", tsr_lm_wtype_name(wt), gs, rows, k,
                         tsr_cpu_level_name(lv[i]), tsr_cpu_level_name(lv[nl - 1]));
                if (lv[i] == TSR_CPU_SCALAR)
                    tu_close(what, o[i], o[nl - 1], (int64_t)N * rows, 1e-4, 1e-4);
                else
                    TU_CHECK(memcmp(o[i], o[nl - 1], sizeof(float) * N * rows) == 0, "%s: not bit-identical", what);
            }
            for (int i = 0; i < nl; i++) free(o[i]);
            free(data), free(sc), free(w), free(x), free(scr), free(o1);
        }
}

/* tsr_lm_exp_sum and tsr_lm_silu_mul: every element with the bits of the
 * scalar expressions they replace (expf(x - mx) and the SwiGLU gate) and
 * the sum added in index order, at every kernel level, for lengths that
 * leave vector tails, over a sweep from -110 to 110 with the special cases
 * (overflow, underflow to a denormal and to zero, infinities, NaN, signed
 * zeros). The SIMD levels compute expf's own operations in their lanes,
 * which are GNU libc's expf on FMA machines: elsewhere the lanes are only
 * compared with each other. All 2^32 inputs were compared once (docs/serve.md). */
static void test_exp(void) {
    enum { N = 4099 };
    float *x = malloc(sizeof(float) * N), *p = malloc(sizeof(float) * N), *r = malloc(sizeof(float) * N);
    float *h2 = malloc(sizeof(float) * N), *first = malloc(sizeof(float) * N);
    tsr_rng g;
    tsr_rng_seed(&g, 11);
    for (int i = 0; i < N; i++) {
        x[i] = i % 3 ? -110.0f + 220.0f * (float)i / N : 8.0f * tsr_rng_normal(&g);
        h2[i] = tsr_rng_normal(&g);
    }
    const float special[] = {-INFINITY, INFINITY, NAN, -NAN, 0.0f, -0.0f, 88.0f, -88.0f, 88.72283f, 88.7229f,
                             -87.5f, -103.0f, -103.5f, -104.0f, 1e-40f, -1e-40f, 0x1.fffffep127f, -0x1.fffffep127f};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++) x[N / 2 - 9 + (int)i] = special[i];
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 28))
    const bool libm = true;
#else
    const bool libm = false;
#endif
    int lv[TSR_CPU_LEVELS];
    int nl = tu_levels(lv);
    const int lens[] = {1, 7, 8, 15, 16, 17, 33, 688, N};
    const float mxs[] = {0.0f, 3.25f, -2.0f};
    for (int li = 0; li < nl; li++) {
        tu_level_set(lv[li]);
        for (size_t a = 0; a < sizeof lens / sizeof *lens; a++)
            for (size_t b = 0; b < sizeof mxs / sizeof *mxs; b++) {
                const int n = lens[a];
                const float mx = mxs[b];
                const float *xs = x + (N - n) / 2; /* the specials sit in the middle */
                memcpy(p, xs, sizeof(float) * n);
                float sum = tsr_lm_exp_sum(p, n, mx), rs = 0.0f;
                for (int i = 0; i < n; i++) {
                    r[i] = expf(xs[i] - mx);
                    rs += r[i];
                }
                /* a sum that met NaN is NaN; which NaN (sign) follows the operand order the compiler picked */
                const bool same_sum = memcmp(&sum, &rs, sizeof sum) == 0 || (isnan(sum) && isnan(rs));
                int diff = 0;
                for (int i = 0; i < n; i++) diff += memcmp(&p[i], &r[i], sizeof(float)) != 0 && !(isnan(p[i]) && isnan(r[i]));
                if (libm || lv[li] == TSR_CPU_SCALAR)
                    TU_CHECK(diff == 0 && same_sum, "exp_sum at %s, n %d, mx %g: %d elements not expf's bits",
                             tsr_cpu_level_name(lv[li]), n, mx, diff);
                memcpy(p, xs, sizeof(float) * n);
                tsr_lm_silu_mul(p, h2, n);
                for (int i = 0; i < n; i++) r[i] = xs[i] * (1.0f / (1.0f + expf(-xs[i]))) * h2[i];
                /* NaN in, NaN out: which NaN (sign) follows the operand order of the compiled multiply */
                int dsilu = 0;
                for (int i = 0; i < n; i++) dsilu += memcmp(&p[i], &r[i], sizeof(float)) != 0 && !(isnan(p[i]) && isnan(r[i]));
                if (libm || lv[li] == TSR_CPU_SCALAR)
                    TU_CHECK(dsilu == 0, "silu_mul at %s, n %d: %d elements not the expression's bits",
                             tsr_cpu_level_name(lv[li]), n, dsilu);
            }
        /* the SIMD levels agree with each other whatever the C library */
        memcpy(p, x, sizeof(float) * N);
        tsr_lm_exp_sum(p, N, 1.5f);
        if (li == 0 || lv[li - 1] == TSR_CPU_SCALAR) memcpy(first, p, sizeof(float) * N);
        else if (lv[li] != TSR_CPU_SCALAR)
            TU_CHECK(memcmp(first, p, sizeof(float) * N) == 0, "exp_sum at %s differs from the lower SIMD level",
                     tsr_cpu_level_name(lv[li]));
    }
    tu_level_restore();
    free(x), free(p), free(r), free(h2), free(first);
}

/* ------------------------------------------------------------ batch invariance */

static void feed(const tsr_lm_model *m, tsr_lm_cache *c, const int *tok, int S, const int *chunks, int nchunks,
                 float *logits) {
    int pos = 0;
    for (int i = 0; pos < S; i++) {
        int b = chunks[i % nchunks];
        if (b > S - pos) b = S - pos;
        tsr_status s = tsr_lm_forward(m, c, tok + pos, b, pos, logits + (size_t)pos * m->cfg.vocab_size);
        TSR_ASSERT(s.code == TSR_OK);
        pos += b;
    }
}

static void test_invariance(const tsr_lm_config *cfg, tsr_lm_wtype wt, int gs) {
    tsr_lm_model m;
    tsr_status s = tsr_lm_model_alloc_typed(&m, cfg, wt, gs);
    TU_CHECK(s.code == TSR_OK, "alloc: %s", s.msg);
    if (s.code) return;
    tsr_lm_model_randomize(&m, 5, 0.3f);
    const int S = 70, V = cfg->vocab_size;
    int tok[70];
    tsr_rng r;
    tsr_rng_seed(&r, 9);
    for (int i = 0; i < S; i++) tok[i] = (int)tsr_rng_below(&r, (uint32_t)V);
    float *ref = malloc(sizeof(float) * S * V), *got = malloc(sizeof(float) * S * V);
    tsr_lm_cache c;
    TSR_ASSERT(tsr_lm_cache_init(&c, cfg, 0).code == TSR_OK);
    int one = 1;
    tsr_threads_set(1);
    feed(&m, &c, tok, S, &one, 1, ref);
    int bad = 0;
    for (int th = 1; th <= 2; th++) {
        tsr_threads_set(th);
        for (int b = th; b <= TSR_LM_MAX_BATCH; b += 2) {
            feed(&m, &c, tok, S, &b, 1, got);
            if (memcmp(got, ref, sizeof(float) * S * V)) bad++;
        }
        int chunks[8];
        for (int i = 0; i < 8; i++) chunks[i] = 1 + (int)tsr_rng_below(&r, 64);
        feed(&m, &c, tok, S, chunks, 8, got);
        if (memcmp(got, ref, sizeof(float) * S * V)) bad++;
    }
    tsr_threads_set(0);
    TU_CHECK(bad == 0, "%s/%d: %d chunkings change logits bits", tsr_lm_wtype_name(wt), gs, bad);
    free(ref), free(got);
    tsr_lm_cache_free(&c);
    tsr_lm_model_free(&m);
}

/* ------------------------------------------------------------ accuracy */

static void test_accuracy(void) {
    tsr_lm_model m;
    tsr_status s = tsr_llama2c_load(&m, DATA "stories260K.bin");
    if (s.code) {
        printf("SKIP accuracy: %s\n", s.msg);
        return;
    }
    tsr_tokenizer t;
    TSR_ASSERT(tsr_tokenizer_load(&t, DATA "tok512.bin", m.cfg.vocab_size).code == TSR_OK);
    FILE *f = fopen(DATA "golden_once_upon_a_time.txt", "rb");
    char text[4096];
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    text[n] = 0;
    int *tok = malloc(sizeof(int) * tsr_tokenizer_max_tokens(text));
    int nt = tsr_tokenizer_encode(&t, text, true, false, tok);
    if (nt > m.cfg.seq_len) nt = m.cfg.seq_len;
    const int V = m.cfg.vocab_size;
    float *lf = malloc(sizeof(float) * nt * V), *lq = malloc(sizeof(float) * nt * V);
    tsr_lm_cache c;
    TSR_ASSERT(tsr_lm_cache_init(&c, &m.cfg, 0).code == TSR_OK);
    int chunk = 64;
    feed(&m, &c, tok, nt, &chunk, 1, lf);
    struct {
        tsr_lm_wtype wt;
        int gs;
        double min_agree;
    } cases[] = {{TSR_LM_W_BF16, 0, 0.95}, {TSR_LM_W_Q8, 32, 0.90}, {TSR_LM_W_Q8, 64, 0.90}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tsr_lm_model q;
        s = tsr_lm_model_convert(&q, &m, cases[i].wt, cases[i].gs);
        TU_CHECK(s.code == TSR_OK, "convert: %s", s.msg);
        if (s.code) continue;
        feed(&q, &c, tok, nt, &chunk, 1, lq);
        double maxe = 0, maxl = 0;
        int agree = 0;
        for (int p = 0; p < nt; p++) {
            agree += tsr_lm_argmax(lf + (size_t)p * V, V) == tsr_lm_argmax(lq + (size_t)p * V, V);
            for (int v = 0; v < V; v++) {
                maxe = fmax(maxe, fabs(lf[(size_t)p * V + v] - lq[(size_t)p * V + v]));
                maxl = fmax(maxl, fabs(lf[(size_t)p * V + v]));
            }
        }
        double rate = (double)agree / nt;
        printf("accuracy stories260K %s g%d vs f32 over %d positions: max |dlogit| %.4f (max |logit| %.2f), "
               "argmax agreement %.1f%%\n",
               tsr_lm_wtype_name(cases[i].wt), cases[i].gs, nt, maxe, maxl, 100 * rate);
        TU_CHECK(rate >= cases[i].min_agree, "%s argmax agreement %.3f below %.2f", tsr_lm_wtype_name(cases[i].wt),
                 rate, cases[i].min_agree);
        tsr_lm_model_free(&q);
    }
    free(lf), free(lq), free(tok);
    tsr_lm_cache_free(&c);
    tsr_tokenizer_free(&t);
    tsr_lm_model_free(&m);
}

/* ------------------------------------------------------------ nn parity */

static void randomize_params(tsr_params *p, uint64_t seed) {
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    for (int i = 0; i < p->n; i++) {
        tsr_tensor *t = p->items[i];
        bool norm = strstr(t->name, "norm") != NULL;
        for (int64_t j = 0; j < t->numel; j++) tsr_f32(t)[j] = (norm ? 1.0f : 0.0f) + (norm ? 0.1f : 0.25f) * tsr_rng_normal(&r);
    }
}

static void write_text(const char *path, const char *txt) {
    FILE *f = fopen(path, "wb");
    TSR_ASSERT(f);
    fputs(txt, f);
    fclose(f);
}

/* logits (T, V) of the training-side model */
static void nn_logits(const tsr_nn_llama *m, const int *tok, int T, float *out) {
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    tsr_tensor *ids = tsr_new(&c, TSR_I32, TSR_DIMS(1, T));
    for (int t = 0; t < T; t++) tsr_i32(ids)[t] = tok[t];
    tsr_tensor *l = tsr_nn_llama_forward(&c, m, ids, NULL);
    memcpy(out, tsr_f32(l), sizeof(float) * (size_t)l->numel);
    tsr_ctx_free(&c);
}

static void check_against(const char *what, const tsr_lm_model *lm, const float *want, const int *tok, int T) {
    int V = lm->cfg.vocab_size;
    float *got = malloc(sizeof(float) * T * V);
    tsr_lm_cache c;
    TSR_ASSERT(tsr_lm_cache_init(&c, &lm->cfg, 0).code == TSR_OK);
    int chunks[3] = {3, 1, 5};
    feed(lm, &c, tok, T, chunks, 3, got);
    tu_close(what, got, want, (int64_t)T * V, 1e-5, 1e-5);
    tsr_lm_cache_free(&c);
    free(got);
}

static void logits_of(const tsr_lm_model *lm, const int *tok, int T, float *out) {
    tsr_lm_cache c;
    TSR_ASSERT(tsr_lm_cache_init(&c, &lm->cfg, 0).code == TSR_OK);
    feed(lm, &c, tok, T, &T, 1, out);
    tsr_lm_cache_free(&c);
}

static void test_nn_parity(bool tied, int kv_heads) {
    tsr_nn_llama_cfg cfg = {32, 2, 4, kv_heads, 48, 50, 24, 1e-5f, 10000.0f, tied};
    tsr_params p;
    tsr_params_init(&p);
    tsr_nn_llama nn;
    TSR_ASSERT(tsr_nn_llama_init(&nn, &p, &cfg).code == TSR_OK);
    randomize_params(&p, 21 + (uint64_t)tied);
    const int T = 12;
    int tok[12];
    for (int i = 0; i < T; i++) tok[i] = (i * 17 + 3) % cfg.vocab;
    float *want = malloc(sizeof(float) * T * cfg.vocab);
    nn_logits(&nn, tok, T, want);

    /* (b) one tessera file, config in the metadata */
    char path[700], dir[512];
    snprintf(path, sizeof path, "%s/m_%d_%d.safetensors", g_tmp, tied, kv_heads);
    const char *meta[] = {"dim", "32", "n_layers", "2", "n_heads", "4", "n_kv_heads", kv_heads == 2 ? "2" : "4",
                          "hidden_dim", "48", "vocab", "50", "max_seq", "24", "rope_theta", "10000",
                          "norm_eps", "1e-05", "tied", tied ? "true" : "false", NULL};
    tsr_status s = tsr_params_save(&p, path, TSR_ST_F32, meta);
    TU_CHECK(s.code == TSR_OK, "params save: %s", s.msg);
    tsr_lm_model lm;
    s = tsr_lm_load(&lm, path, -1, 0);
    TU_CHECK(s.code == TSR_OK, "load tessera file: %s", s.msg);
    if (s.code == TSR_OK) {
        TU_CHECK(lm.cfg.shared_classifier == tied && lm.cfg.n_kv_heads == kv_heads && lm.wtype == TSR_LM_W_F32,
                 "config from metadata");
        check_against(tied ? "nn vs lm (file, tied)" : "nn vs lm (file, untied)", &lm, want, tok, T);

        /* save/load round trips, every type: logits bit-identical */
        float *a = malloc(sizeof(float) * T * cfg.vocab), *b = malloc(sizeof(float) * T * cfg.vocab);
        for (int wt = 0; wt < TSR_LM_W_COUNT; wt++) {
            tsr_lm_model q, q2;
            s = tsr_lm_model_convert(&q, &lm, (tsr_lm_wtype)wt, 32);
            TSR_ASSERT(s.code == TSR_OK);
            char p2[512];
            snprintf(p2, sizeof p2, "%s/rt_%d.safetensors", g_tmp, wt);
            s = tsr_lm_save(&q, p2);
            TU_CHECK(s.code == TSR_OK, "save %s: %s", tsr_lm_wtype_name((tsr_lm_wtype)wt), s.msg);
            s = tsr_lm_load(&q2, p2, -1, 0);
            TU_CHECK(s.code == TSR_OK && q2.wtype == (tsr_lm_wtype)wt, "reload %s: %s",
                     tsr_lm_wtype_name((tsr_lm_wtype)wt), s.msg);
            if (s.code == TSR_OK) {
                logits_of(&q, tok, T, a);
                logits_of(&q2, tok, T, b);
                TU_CHECK(memcmp(a, b, sizeof(float) * T * cfg.vocab) == 0, "%s round trip changes logits",
                         tsr_lm_wtype_name((tsr_lm_wtype)wt));
                /* loading with a type conversion equals converting in memory */
                tsr_lm_model q3;
                if (wt != TSR_LM_W_F32 && tsr_lm_load(&q3, path, wt, 32).code == TSR_OK) {
                    logits_of(&q3, tok, T, b);
                    TU_CHECK(memcmp(a, b, sizeof(float) * T * cfg.vocab) == 0, "--dtype %s at load vs convert",
                             tsr_lm_wtype_name((tsr_lm_wtype)wt));
                    tsr_lm_model_free(&q3);
                }
                tsr_lm_model_free(&q2);
            }
            tsr_lm_model_free(&q);
        }
        free(a), free(b);
        tsr_lm_model_free(&lm);
    }

    /* (a) an HF directory: config.json + model.safetensors (no metadata) */
    snprintf(dir, sizeof dir, "%s/hf_%d_%d", g_tmp, tied, kv_heads);
    mkdir(dir, 0755);
    char cj[1024];
    snprintf(cj, sizeof cj,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 32, "
             "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": %d, "
             "\"intermediate_size\": 48, \"vocab_size\": 50, \"max_position_embeddings\": 24, "
             "\"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"tie_word_embeddings\": %s, "
             "\"hidden_act\": \"silu\", \"rope_scaling\": null, \"torch_dtype\": \"float32\"}",
             kv_heads, tied ? "true" : "false");
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, cj);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    TSR_ASSERT(tsr_params_save(&p, path, TSR_ST_F32, NULL).code == TSR_OK);
    s = tsr_lm_load(&lm, dir, -1, 0);
    TU_CHECK(s.code == TSR_OK, "load HF dir: %s", s.msg);
    if (s.code == TSR_OK) {
        check_against("nn vs lm (HF dir)", &lm, want, tok, T);
        tsr_lm_model_free(&lm);
    }
    /* BF16 on disk loads as a bf16 model */
    TSR_ASSERT(tsr_params_save(&p, path, TSR_ST_BF16, NULL).code == TSR_OK);
    s = tsr_lm_load(&lm, dir, -1, 0);
    TU_CHECK(s.code == TSR_OK && lm.wtype == TSR_LM_W_BF16, "load BF16 HF dir: %s", s.msg);
    if (s.code == TSR_OK) tsr_lm_model_free(&lm);
    free(want);
    tsr_nn_llama_free(&nn);
    tsr_params_free(&p);
}

/* ------------------------------------------------------------ malformed */

static void expect_fail(const char *path, const char *label, const char *needle) {
    tsr_lm_model m;
    tsr_status s = tsr_lm_load(&m, path, -1, 0);
    TU_CHECK(s.code != TSR_OK, "%s: loaded", label);
    if (s.code == TSR_OK) {
        tsr_lm_model_free(&m);
        return;
    }
    TU_CHECK(strstr(s.msg, needle) != NULL, "%s: message '%s' lacks '%s'", label, s.msg, needle);
}

static void test_malformed(void) {
    tsr_nn_llama_cfg cfg = {16, 1, 2, 2, 24, 20, 8, 1e-5f, 10000.0f, false};
    tsr_params p;
    tsr_params_init(&p);
    tsr_nn_llama nn;
    TSR_ASSERT(tsr_nn_llama_init(&nn, &p, &cfg).code == TSR_OK);
    randomize_params(&p, 4);
    char path[512];
    const char *good[] = {"dim", "16", "n_layers", "1", "n_heads", "2", "hidden_dim", "24", "vocab", "20",
                          "max_seq", "8", NULL};
    snprintf(path, sizeof path, "%s/ok.safetensors", g_tmp);
    TSR_ASSERT(tsr_params_save(&p, path, TSR_ST_F32, good).code == TSR_OK);
    tsr_lm_model m;
    tsr_status s = tsr_lm_load(&m, path, -1, 0);
    TU_CHECK(s.code == TSR_OK && !m.cfg.shared_classifier, "minimal metadata loads (untied inferred): %s", s.msg);
    if (s.code == TSR_OK) tsr_lm_model_free(&m);

    /* the trainer's spelling: HF config names in the metadata */
    const char *hf_names[] = {"model_type", "llama", "hidden_size", "16", "num_hidden_layers", "1",
                              "num_attention_heads", "2", "num_key_value_heads", "2", "intermediate_size", "24",
                              "vocab_size", "20", "max_position_embeddings", "8", "rope_theta", "10000",
                              "rms_norm_eps", "1e-06", "tie_word_embeddings", "false", NULL};
    snprintf(path, sizeof path, "%s/hfnames.safetensors", g_tmp);
    TSR_ASSERT(tsr_params_save(&p, path, TSR_ST_F32, hf_names).code == TSR_OK);
    s = tsr_lm_load(&m, path, -1, 0);
    TU_CHECK(s.code == TSR_OK && m.cfg.norm_eps == 1e-6f && m.cfg.seq_len == 8, "HF names in metadata: %s", s.msg);
    if (s.code == TSR_OK) tsr_lm_model_free(&m);

    const char *no_vocab[] = {"dim", "16", "n_layers", "1", "n_heads", "2", "hidden_dim", "24", "max_seq", "8", NULL};
    snprintf(path, sizeof path, "%s/novocab.safetensors", g_tmp);
    TSR_ASSERT(tsr_params_save(&p, path, TSR_ST_F32, no_vocab).code == TSR_OK);
    expect_fail(path, "missing vocab", "novocab.safetensors");
    expect_fail(path, "missing vocab key named", "vocab");

    const char *bad_num[] = {"dim", "16x", "n_layers", "1", "n_heads", "2", "hidden_dim", "24", "vocab", "20",
                             "max_seq", "8", NULL};
    snprintf(path, sizeof path, "%s/badnum.safetensors", g_tmp);
    TSR_ASSERT(tsr_params_save(&p, path, TSR_ST_F32, bad_num).code == TSR_OK);
    expect_fail(path, "non-numeric dim", "badnum.safetensors");

    const char *wrong_dim[] = {"dim", "18", "n_layers", "1", "n_heads", "2", "hidden_dim", "24", "vocab", "20",
                               "max_seq", "8", NULL};
    snprintf(path, sizeof path, "%s/wrongdim.safetensors", g_tmp);
    TSR_ASSERT(tsr_params_save(&p, path, TSR_ST_F32, wrong_dim).code == TSR_OK);
    expect_fail(path, "shape mismatch", "wrongdim.safetensors");

    const char *more_layers[] = {"dim", "16", "n_layers", "2", "n_heads", "2", "hidden_dim", "24", "vocab", "20",
                                 "max_seq", "8", NULL};
    snprintf(path, sizeof path, "%s/layers.safetensors", g_tmp);
    TSR_ASSERT(tsr_params_save(&p, path, TSR_ST_F32, more_layers).code == TSR_OK);
    expect_fail(path, "missing layer", "model.layers.1.");

    const char *heads[] = {"dim", "16", "n_layers", "1", "n_heads", "3", "hidden_dim", "24", "vocab", "20",
                           "max_seq", "8", NULL};
    snprintf(path, sizeof path, "%s/heads.safetensors", g_tmp);
    TSR_ASSERT(tsr_params_save(&p, path, TSR_ST_F32, heads).code == TSR_OK);
    expect_fail(path, "bad heads", "heads.safetensors");

    snprintf(path, sizeof path, "%s/absent.safetensors", g_tmp);
    expect_fail(path, "missing file", "absent.safetensors");
    snprintf(path, sizeof path, "%s/nodir", g_tmp);
    mkdir(path, 0755);
    expect_fail(path, "HF dir without config.json", "config.json");
    char cpath[600];
    snprintf(cpath, sizeof cpath, "%s/config.json", path);
    write_text(cpath, "{\"hidden_size\": 16, \"num_hidden_layers\": 1}");
    expect_fail(path, "HF config lacking keys", "config.json");
    write_text(cpath, "[1, 2]");
    expect_fail(path, "HF config not an object", "config.json");
    write_text(cpath, "{\"hidden_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
                      "\"intermediate_size\": 24, \"vocab_size\": 20, \"max_position_embeddings\": 8}");
    expect_fail(path, "HF dir without weights", "model.safetensors");
    write_text(cpath, "{\"hidden_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
                      "\"intermediate_size\": 24, \"vocab_size\": 20, \"max_position_embeddings\": 8, "
                      "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}}");
    expect_fail(path, "rope scaling", "rope_scaling");
    /* config helper directly */
    tsr_lm_config c;
    const char *js = "{\"hidden_size\": 1e300, \"num_hidden_layers\": 1}";
    s = tsr_lm_config_from_json(&c, js, strlen(js), "cfg.json");
    TU_CHECK(s.code != TSR_OK && strstr(s.msg, "cfg.json"), "absurd hidden_size: %s", s.msg);
    tsr_nn_llama_free(&nn);
    tsr_params_free(&p);
}

/* ------------------------------------------------------------ BPE generation */

typedef struct {
    char buf[4096];
    size_t len;
} sink;
static int to_sink(void *ud, const char *s, size_t n) {
    sink *k = ud;
    if (k->len + n < sizeof k->buf) memcpy(k->buf + k->len, s, n), k->len += n;
    k->buf[k->len] = 0;
    return 0;
}

static void test_bpe_generate(void) {
    const char *texts[] = {"def f(x):\n    return x + 1\n\ndef g(y):\n    return y * 2\n"};
    size_t lens[] = {strlen(texts[0])};
    const char *specials[] = {"<|endoftext|>"};
    tsr_bpe_train_opts o = {300, specials, 1, 1, false};
    tsr_bpe b;
    TSR_ASSERT(tsr_bpe_train_texts(&b, texts, lens, 1, &o).code == TSR_OK);
    tsr_lm_config cfg = {32, 48, 2, 4, 2, b.vocab_size, 64, 10000.0f, 1e-5f, true, TSR_LM_ROPE_HALF};
    tsr_lm_model m;
    TSR_ASSERT(tsr_lm_model_alloc(&m, &cfg).code == TSR_OK);
    tsr_lm_model_randomize(&m, 8, 0.3f);
    tsr_lm_sampler_opts so;
    tsr_lm_sampler_defaults(&so);
    so.temperature = 0;
    tsr_lm_sampler smp;
    TSR_ASSERT(tsr_lm_sampler_init(&smp, &so, cfg.vocab_size).code == TSR_OK);
    tsr_lm_gen_opts go = {0, 12, NULL, 0, 0, false};
    sink k1 = {{0}, 0}, k2 = {{0}, 0};
    tsr_lm_gen_stats st;
    const char *prompt = "def f(x):\n    return";
    tsr_status s = tsr_lm_generate_bpe(&m, &b, &smp, prompt, &go, to_sink, &k1, &st);
    TU_CHECK(s.code == TSR_OK, "bpe generate: %s", s.msg);
    TU_CHECK(strncmp(k1.buf, prompt, strlen(prompt)) == 0, "output starts with the prompt: '%s'", k1.buf);
    TU_CHECK(st.new_tokens <= 12 && (st.new_tokens == 12 || st.stopped_bos), "new tokens %d", st.new_tokens);
    /* one token per prefill forward: same text */
    go.prefill_batch = 1;
    s = tsr_lm_generate_bpe(&m, &b, &smp, prompt, &go, to_sink, &k2, NULL);
    TU_CHECK(s.code == TSR_OK && strcmp(k1.buf, k2.buf) == 0, "prefill batch 1 gives the same text");

    /* the CLI on an HF directory with tokenizer.json next to the model */
    const char *bin = getenv("TSR_BIN");
    if (bin) {
        char dir[512], path[700], cmd[2048];
        snprintf(dir, sizeof dir, "%s/bpe_model", g_tmp);
        mkdir(dir, 0755);
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        TSR_ASSERT(tsr_bpe_save(&b, path).code == TSR_OK);
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        TSR_ASSERT(tsr_lm_save(&m, path).code == TSR_OK);
        snprintf(cmd, sizeof cmd,
                 "%s lm generate --model %s --prompt 'def f(x):' --max-tokens 12 --temperature 0 --prefill-batch 3 "
                 "> %s/cli_out.txt 2>/dev/null",
                 bin, path, g_tmp);
        int rc = system(cmd);
        snprintf(path, sizeof path, "%s/cli_out.txt", g_tmp);
        FILE *f = fopen(path, "rb");
        char out[4096] = {0};
        size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
        if (f) fclose(f);
        sink k3 = {{0}, 0};
        go.prefill_batch = 0;
        tsr_lm_generate_bpe(&m, &b, &smp, "def f(x):", &go, to_sink, &k3, NULL);
        TU_CHECK(rc == 0 && n == k3.len + 1 && memcmp(out, k3.buf, k3.len) == 0,
                 "CLI on a .safetensors + tokenizer.json: rc %d, '%s' vs '%s'", rc, out, k3.buf);
    }
    tsr_lm_sampler_free(&smp);
    tsr_lm_model_free(&m);
    tsr_bpe_free(&b);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/tessera_lm_fast.XXXXXX");
    TSR_ASSERT(mkdtemp(g_tmp));
    tsr_threads_set(0);
    /* the kernels and the batch-invariance contract at every kernel level */
    int lv[TSR_CPU_LEVELS];
    int nl = tu_levels(lv);
    for (int i = 0; i < nl; i++) {
        tu_level_set(lv[i]);
        test_kernels(TSR_LM_W_BF16, 0);
        test_kernels_edge();
        test_kernels(TSR_LM_W_Q8, 32);
        test_kernels(TSR_LM_W_Q8, 64);
        tsr_lm_config a = {40, 100, 2, 4, 2, 97, 80, 10000.0f, 1e-5f, false, TSR_LM_ROPE_HALF};
        tsr_lm_config b = {64, 172, 1, 8, 4, 61, 80, 500.0f, 1e-6f, true, TSR_LM_ROPE_INTERLEAVED};
        test_invariance(&a, TSR_LM_W_BF16, 0);
        test_invariance(&a, TSR_LM_W_Q8, 32);
        test_invariance(&b, TSR_LM_W_Q8, 64);
        test_invariance(&b, TSR_LM_W_BF16, 0);
    }
    tu_level_restore();
    test_levels();
    test_exp();
    test_accuracy();
    test_nn_parity(false, 2);
    test_nn_parity(true, 4);
    test_malformed();
    test_bpe_generate();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) printf("could not remove %s\n", g_tmp);
    return tu_finish("lm_fast");
}
