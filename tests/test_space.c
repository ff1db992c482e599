/* Tests for SPACE (src/models/space): the SAR example builder, the step
 * layout (tree, mask, positions), and auto-correct decoding being
 * token-identical to plain greedy decoding for fixed and auto k, on a
 * random model and (when shipped) on models/pycode-space with held-out
 * prompts, where drafts must also be accepted.
 * Tolerances: none; everything here is exact. */
#include "testutil.h"
#include "tessera/bpe.h"
#include "tessera/cpu.h"
#include "tessera/space.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_sar_batch(void) {
    enum { N = 5000, B = 64, T = 40, K = 4 };
    int32_t *stream = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) stream[i] = i; /* token = its offset */
    tsr_space_sar s = {K, 0.5f, 9999, 6};
    int32_t x[B * T], y[B * T];
    tsr_rng r;
    tsr_rng_seed(&r, 3);
    int n_sar = 0, cut_lo = T, cut_hi = 0;
    bool ok = true;
    for (int rep = 0; rep < 20; rep++) {
        tsr_space_sar_batch(&s, x, y, B, T, stream, N, &r);
        for (int b = 0; b < B; b++) {
            const int32_t *xb = x + b * T, *yb = y + b * T;
            int w0 = xb[0], p = -1;
            for (int t = 0; t < T && p < 0; t++)
                if (xb[t] == s.mask_id) p = t;
            if (p < 0) { /* plain window */
                for (int t = 0; t < T; t++) ok &= xb[t] == w0 + t && yb[t] == w0 + t + 1;
                continue;
            }
            n_sar++;
            if (p < cut_lo) cut_lo = p;
            if (p > cut_hi) cut_hi = p;
            for (int t = 0; t < p; t++) ok &= xb[t] == w0 + t && yb[t] == w0 + t + 1; /* incl. y[p-1] = w[p] */
            for (int i = 0; i <= K; i++) ok &= xb[p + i] == s.mask_id;
            for (int i = 0; i < K; i++) ok &= yb[p + i] == w0 + p + 1 + i;
            for (int t = p + K; t < T; t++) ok &= yb[t] == -100;
        }
    }
    TU_CHECK(ok, "SAR examples follow the rules (inputs, mask targets, no loss after)");
    TU_CHECK(n_sar > 20 * B * 0.4 && n_sar < 20 * B * 0.6, "about half are SAR examples (%d of %d)", n_sar, 20 * B);
    TU_CHECK(cut_lo == s.min_prefix && cut_hi == T - K - 1, "cuts span [%d, %d] (got [%d, %d])", s.min_prefix,
             T - K - 1, cut_lo, cut_hi);
    free(stream);
}

static void test_layout(void) {
    int tok[32], par[32], grp[8], pos[32];
    uint8_t msk[32], mask[32 * 32];
    const int cand[2] = {7, 8}, M = 99;
    int n = tsr_space_layout(tok, par, msk, grp, 5, cand, 2, 2, M);
    /* root, G0 (2), C0, G1 (2), C1, G2 (2) */
    const int want_tok[9] = {5, M, M, 7, M, M, 8, M, M};
    const int want_par[9] = {-1, 0, 1, 0, 3, 4, 3, 6, 7};
    TU_CHECK(n == 9 && n == tsr_space_rows(2, 2), "rows %d", n);
    TU_CHECK(memcmp(tok, want_tok, sizeof want_tok) == 0 && memcmp(par, want_par, sizeof want_par) == 0,
             "layout tokens and parents");
    TU_CHECK(grp[0] == 1 && grp[1] == 4 && grp[2] == 7, "group starts %d %d %d", grp[0], grp[1], grp[2]);
    tsr_decode_tree_mask(mask, par, n);
    tsr_decode_positions(pos, mask, n, 10, n);
    /* G1's second mask sees the root, C0, G1's first mask and itself */
    const uint8_t row5[9] = {1, 0, 0, 1, 1, 1, 0, 0, 0};
    TU_CHECK(memcmp(mask + 5 * 9, row5, 9) == 0, "mask row of G1[1]");
    bool no_mask_seen = true; /* no candidate sees a mask */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (!msk[i] && msk[j] && mask[i * n + j]) no_mask_seen = false;
    TU_CHECK(no_mask_seen, "candidates and the root never see a mask row");
    const int want_pos[9] = {10, 11, 12, 11, 12, 13, 12, 13, 14};
    TU_CHECK(memcmp(pos, want_pos, sizeof want_pos) == 0, "positions = visible keys - 1");
}

static void check_identity(const tsr_lm_model *m, const int *prompt, int np, int max_new, int mask_id, int stop,
                           const char *what, int64_t *accepted) {
    int *a = malloc(sizeof(int) * max_new), *b = malloc(sizeof(int) * max_new);
    int na = 0, nb = 0;
    TSR_ASSERT(tsr_decode_greedy_generate(m, prompt, np, max_new, stop, 0, a, &na, NULL).code == TSR_OK);
    for (int k = 0; k <= 3; k++) {
        tsr_space_opts o;
        tsr_space_default_opts(&o);
        o.k = k;
        o.k_max = 3;
        o.mask_id = mask_id;
        o.stop_token = stop;
        tsr_space_stats st;
        tsr_status s = tsr_space_generate(m, prompt, np, max_new, &o, b, &nb, &st);
        TU_CHECK(s.code == TSR_OK, "%s k %d: %s", what, k, s.msg);
        TU_CHECK(na == nb && memcmp(a, b, sizeof(int) * na) == 0, "%s k %d: SPACE output equals greedy (%d vs %d tokens)",
                 what, k, nb, na);
        if (accepted) *accepted += st.d.accepted;
        if (getenv("TSR_SPACE_VERBOSE"))
            printf("%s k %d: %d tokens in %d forwards, %d accepted\n", what, k, nb, st.d.forwards, st.d.accepted);
    }
    free(a);
    free(b);
}

static void test_random_model(void) {
    tsr_lm_config cfg = {32, 64, 2, 4, 2, 40, 96, 10000.0f, 1e-5f, true, TSR_LM_ROPE_HALF};
    tsr_lm_model m;
    TSR_ASSERT(tsr_lm_model_alloc(&m, &cfg).code == TSR_OK);
    tsr_lm_model_randomize(&m, 5, 0.5f);
    int prompt[40];
    for (int i = 0; i < 40; i++) prompt[i] = (i % 7) * 3 + 1;
    check_identity(&m, prompt, 30, 50, 39, -1, "random", NULL);
    check_identity(&m, prompt, 2, 200, 39, -1, "random to the cache end", NULL);
    /* bad input */
    tsr_space_opts o;
    tsr_space_default_opts(&o);
    int out[4], n;
    o.mask_id = 40;
    TU_CHECK(tsr_space_generate(&m, prompt, 3, 4, &o, out, &n, NULL).code == TSR_ERR_ARG, "mask id outside the vocab");
    o.mask_id = 39;
    o.sampler.temperature = 1.0f;
    o.sampler.rep_penalty = 1.2f;
    TU_CHECK(tsr_space_generate(&m, prompt, 3, 4, &o, out, &n, NULL).code == TSR_ERR_ARG,
             "exact sampling refuses a repetition penalty");
    o.sampler.rep_penalty = 1.0f;
    TU_CHECK(tsr_space_generate(&m, prompt, 3, 4, &o, out, &n, NULL).code == TSR_OK && n == 4,
             "sampling runs (%d tokens)", n);
    tsr_lm_model_free(&m);
}

#define SAR_MODEL "models/pycode-space"

static void test_shipped(void) {
    if (access(SAR_MODEL "/model.safetensors", R_OK) != 0) {
        printf("skip: %s not found\n", SAR_MODEL);
        return;
    }
    tsr_lm_model m;
    tsr_bpe bpe;
    TSR_ASSERT(tsr_lm_load(&m, SAR_MODEL, -1, 0).code == TSR_OK);
    TSR_ASSERT(tsr_bpe_load(&bpe, SAR_MODEL "/tokenizer.json").code == TSR_OK);
    int mask_id = tsr_bpe_special_id(&bpe, TSR_SPACE_MASK), eot = tsr_bpe_special_id(&bpe, "<|endoftext|>");
    TU_CHECK(mask_id == m.cfg.vocab_size - 1 && eot >= 0, "the SAR tokenizer has the mask token (%d)", mask_id);
    const char *prompts[] = {
        "def read_lines(path):\n    \"\"\"Return the lines of the file at path.\"\"\"\n",
        "class Stack:\n    \"\"\"A last-in first-out container.\"\"\"\n\n    def __init__(self):\n",
        "def parse_header(line):\n    \"\"\"Split an HTTP header line into name and value.\"\"\"\n",
    };
    int64_t acc = 0;
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(prompts[i]);
        int32_t ids[256];
        int p[257];
        size_t k = tsr_bpe_encode(&bpe, prompts[i], len, ids);
        p[0] = eot;
        for (size_t j = 0; j < k; j++) p[j + 1] = ids[j];
        check_identity(&m, p, (int)k + 1, 128, mask_id, eot, "pycode-space", &acc);
    }
    TU_CHECK(acc > 50, "the SAR model's drafts are accepted (%lld)", (long long)acc);
    tsr_bpe_free(&bpe);
    tsr_lm_model_free(&m);
}

int main(void) {
    tsr_threads_set(1);
    test_sar_batch();
    test_layout();
    /* identity at every kernel level on the random model; the shipped one
     * at the start-up level */
    int lv[TSR_CPU_LEVELS];
    int nl = tu_levels(lv);
    for (int i = 0; i < nl; i++) {
        tu_level_set(lv[i]);
        test_random_model();
    }
    tu_level_restore();
    test_shipped();
    return tu_finish("space");
}
