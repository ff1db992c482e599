/* Tests for speculative verification (src/decode/, tsr_lm_forward_masked
 * and tsr_lm_cache_compact in src/decode/).
 *
 * Tolerances: none. Everything here is exact.
 * - Masks, positions, acceptance and the n-gram drafters against
 *   hand-worked cases.
 * - Masked forward: every row of a draft tree (compact and full masks)
 *   has logits memcmp-identical to a plain causal run over the prefix and
 *   the row's ancestors, for f32, bf16 and Q8 weights; after compacting an
 *   accepted path, the next plain step is memcmp-identical to a fully
 *   plain run.
 * - Speculative greedy generation (chain and tree drafts) is
 *   token-identical to plain greedy decoding: a random model with
 *   repetitive prompts (where drafts must be accepted) and stories260K over
 *   several prompts and 200 tokens (skipped when ../shared/data is absent).
 * - Exact speculative sampling: a statistical test. Over 20000 seeded
 *   trials of a tiny random model with a fixed draft tree, the joint
 *   frequencies of the first two emitted tokens must pass a chi-square
 *   test (p = 0.001) against the model's exact distribution, computed by
 *   enumeration; the same test must REJECT the rule of the public SPACE
 *   code (on rejection, draw from p instead of the residual), so it has
 *   power. The target distribution equals what tsr_lm_sample draws from
 *   (chi-square over 20000 draws with top-k / top-p / min-p). */
#include "testutil.h"
#include "tessera/decode.h"
#include "tessera/lm.h"
#include "tessera/tokenizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DATA "../shared/data/llama2c/"

/* ------------------------------------------------------------ trees */

static void test_tree(void) {
    /*      0
     *    1   2
     *   3 4   5
     *   6          */
    int parent[] = {-1, 0, 0, 1, 1, 2, 3};
    const int n = 7;
    TU_CHECK(tsr_decode_tree_check(parent, n).code == TSR_OK, "valid tree accepted");
    int bad1[] = {0, 0}, bad2[] = {-1, 1}, bad3[] = {-1, 0, 5};
    TU_CHECK(tsr_decode_tree_check(bad1, 2).code != TSR_OK, "root with a parent rejected");
    TU_CHECK(tsr_decode_tree_check(bad2, 2).code != TSR_OK, "self parent rejected");
    TU_CHECK(tsr_decode_tree_check(bad3, 3).code != TSR_OK, "later parent rejected");
    int depth[7], want_depth[] = {0, 1, 1, 2, 2, 2, 3};
    tsr_decode_tree_depth(depth, parent, n);
    TU_CHECK(memcmp(depth, want_depth, sizeof depth) == 0, "depths");
    uint8_t mask[49];
    tsr_decode_tree_mask(mask, parent, n);
    static const char *want[] = {"1000000", "1100000", "1010000", "1101000", "1100100", "1010010", "1101001"};
    bool ok = true;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) ok &= mask[i * n + j] == (want[i][j] == '1');
    TU_CHECK(ok, "compact tree mask");
    const int nc = 5, ld = nc + n;
    uint8_t full[7 * 12];
    tsr_decode_tree_mask_full(full, parent, n, nc);
    ok = true;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < ld; j++) ok &= full[i * ld + j] == (j < nc ? 1 : want[i][j - nc] == '1');
    TU_CHECK(ok, "full tree mask");
    int pos[7], pos2[7];
    tsr_decode_positions(pos, mask, n, nc, n);
    tsr_decode_positions(pos2, full, n, nc, ld);
    ok = true;
    for (int i = 0; i < n; i++) ok &= pos[i] == nc + want_depth[i] && pos2[i] == pos[i];
    TU_CHECK(ok, "positions = visible keys - 1 = n_ctx + depth");

    /* acceptance: V = 4, argmax per row chosen by hand */
    int tokens[] = {9, 2, 3, 1, 2, 0, 3};
    float logits[7 * 4] = {0};
    int am[] = {3, 0, 1, 1, 3, 0, 2}; /* row 0 -> 3: row 2; row 2 -> 1: none (row 5 holds 0) */
    for (int i = 0; i < n; i++) logits[i * 4 + am[i]] = 1.0f;
    int path[7], bonus = -1;
    int len = tsr_decode_accept_greedy(path, &bonus, tokens, parent, n, logits, 4);
    TU_CHECK(len == 2 && path[0] == 0 && path[1] == 2 && bonus == 1, "accept root->2, bonus 1 (len %d bonus %d)", len,
             bonus);
    am[0] = 2;
    am[1] = 1;
    am[3] = 3;
    am[6] = 0;
    memset(logits, 0, sizeof logits);
    for (int i = 0; i < n; i++) logits[i * 4 + am[i]] = 1.0f;
    len = tsr_decode_accept_greedy(path, &bonus, tokens, parent, n, logits, 4);
    TU_CHECK(len == 4 && path[1] == 1 && path[2] == 3 && path[3] == 6 && bonus == 0, "accept the deepest path 0-1-3-6");
    am[0] = 0;
    memset(logits, 0, sizeof logits);
    for (int i = 0; i < n; i++) logits[i * 4 + am[i]] = 1.0f;
    len = tsr_decode_accept_greedy(path, &bonus, tokens, parent, n, logits, 4);
    TU_CHECK(len == 1 && bonus == 0, "nothing accepted");
}

static void test_ngram(void) {
    int ctx[] = {5, 6, 7, 8, 9, 1, 5, 6, 7, 2, 3, 6, 7};
    const int n = (int)(sizeof ctx / sizeof *ctx);
    int out[8];
    /* last 3 = 3 6 7: no match; last 2 = 6 7 matches at 7 (most recent) */
    int c = tsr_decode_ngram_draft(out, ctx, n, 3, 4);
    TU_CHECK(c == 4 && out[0] == 2 && out[1] == 3 && out[2] == 6 && out[3] == 7, "bigram, most recent (%d)", c);
    int ctx2[] = {1, 2, 3, 4, 2, 3, 9, 1, 2, 3};
    c = tsr_decode_ngram_draft(out, ctx2, 10, 3, 5);
    TU_CHECK(c == 5 && out[0] == 4 && out[1] == 2 && out[4] == 1, "trigram wins over a more recent bigram");
    int big[20];
    c = tsr_decode_ngram_draft(big, ctx2, 10, 3, 20);
    TU_CHECK(c == 20 && big[6] == 3 && big[7] == 4 && big[14] == 4 && big[19] == 2,
             "past the end of the context the draft repeats the match's period (%d)", c);
    int ctx3[] = {1, 2, 3, 4};
    TU_CHECK(tsr_decode_ngram_draft(out, ctx3, 4, 3, 5) == 0, "no match");
    int ctx4[] = {7, 7};
    c = tsr_decode_ngram_draft(out, ctx4, 2, 3, 5);
    TU_CHECK(c == 5 && out[0] == 7 && out[4] == 7, "unigram self overlap drafts a run");

    /* tree: candidates after "2 3": 9 1 2 (recent, trigram-free), 4 2 3 */
    int tok[32], par[32];
    int rows = tsr_decode_ngram_tree(tok, par, 3, ctx2, 10, 3, 3, 3);
    /* trigram 1 2 3 -> "4 2 3"; bigram 2 3 -> "9 1 2" then "4 2 3" (dup);
     * unigram 3 -> "9 1 2" (dup), "4 2 3" (dup) */
    TU_CHECK(rows == 7 && tok[0] == 3 && par[0] == -1 && tok[1] == 4 && par[2] == 1 && tok[4] == 9 && par[4] == 0 &&
                 par[6] == 5,
             "ngram tree rows %d", rows);
    TU_CHECK(tsr_decode_tree_check(par, rows).code == TSR_OK, "ngram tree is a valid tree");
}

/* ------------------------------------------------------------ masked forward */

static bool plain_logits(const tsr_lm_model *m, const int *seq, int n, float *logits) {
    tsr_lm_cache c;
    if (tsr_lm_cache_init(&c, &m->cfg, 0).code) return false;
    tsr_status s = tsr_lm_forward_last(m, &c, seq, n, 0, logits);
    tsr_lm_cache_free(&c);
    return s.code == TSR_OK;
}

static void test_masked(tsr_lm_wtype wt) {
    tsr_lm_config cfg = {48, 96, 2, 6, 2, 67, 96, 10000.0f, 1e-5f, false, TSR_LM_ROPE_INTERLEAVED};
    if (wt == TSR_LM_W_BF16) cfg.rope_layout = TSR_LM_ROPE_HALF;
    tsr_lm_model f, m;
    TSR_ASSERT(tsr_lm_model_alloc(&f, &cfg).code == TSR_OK);
    tsr_lm_model_randomize(&f, 21, 0.3f);
    TSR_ASSERT(tsr_lm_model_convert(&m, &f, wt, 32).code == TSR_OK);
    const int V = cfg.vocab_size, P = 11;
    int prefix[11];
    for (int i = 0; i < P; i++) prefix[i] = (i * 17 + 3) % V;
    int parent[] = {-1, 0, 0, 1, 1, 2, 3, 6, 3};
    int tokens[] = {4, 9, 9, 30, 12, 5, 66, 0, 1};
    const int n = 9;
    tsr_lm_cache c;
    TSR_ASSERT(tsr_lm_cache_init(&c, &cfg, 0).code == TSR_OK);
    TSR_ASSERT(tsr_lm_forward(&m, &c, prefix, P, 0, NULL).code == TSR_OK);
    uint8_t mask[9 * 9], full[9 * 20];
    int pos[9];
    tsr_decode_tree_mask(mask, parent, n);
    tsr_decode_tree_mask_full(full, parent, n, P);
    tsr_decode_positions(pos, mask, n, P, n);
    float *lg = malloc(sizeof(float) * n * V), *lg2 = malloc(sizeof(float) * n * V), *ref = malloc(sizeof(float) * V);
    tsr_status s = tsr_lm_forward_masked(&m, &c, tokens, n, P, pos, full, P + n, lg2);
    TU_CHECK(s.code == TSR_OK, "masked forward (full mask): %s", s.msg);
    s = tsr_lm_forward_masked(&m, &c, tokens, n, P, pos, mask, n, lg);
    TU_CHECK(s.code == TSR_OK, "masked forward (compact mask): %s", s.msg);
    TU_CHECK(memcmp(lg, lg2, sizeof(float) * n * V) == 0, "%s: compact and full masks agree", tsr_lm_wtype_name(wt));
    int same = 0;
    for (int i = 0; i < n; i++) {
        int seq[32], d = 0, chain[16];
        for (int r = i; r >= 0; r = parent[r]) chain[d++] = tokens[r];
        memcpy(seq, prefix, sizeof(int) * P);
        for (int j = 0; j < d; j++) seq[P + j] = chain[d - 1 - j];
        TSR_ASSERT(plain_logits(&m, seq, P + d, ref));
        same += memcmp(ref, lg + (size_t)i * V, sizeof(float) * V) == 0;
    }
    TU_CHECK(same == n, "%s: %d of %d tree rows bit-identical to plain runs", tsr_lm_wtype_name(wt), same, n);

    /* accept 0-1-3-6-7, compact, then one plain step on top */
    int keep[] = {0, 1, 3, 6, 7};
    s = tsr_lm_cache_compact(&c, P, keep, 5);
    TU_CHECK(s.code == TSR_OK, "compact: %s", s.msg);
    int nxt = 42;
    TSR_ASSERT(tsr_lm_forward(&m, &c, &nxt, 1, P + 5, lg).code == TSR_OK);
    int seq[32];
    memcpy(seq, prefix, sizeof(int) * P);
    for (int j = 0; j < 5; j++) seq[P + j] = tokens[keep[j]];
    seq[P + 5] = nxt;
    TSR_ASSERT(plain_logits(&m, seq, P + 6, ref));
    TU_CHECK(memcmp(ref, lg, sizeof(float) * V) == 0, "%s: step after compaction bit-identical",
             tsr_lm_wtype_name(wt));

    /* misuse */
    int bad_keep[] = {2, 1};
    TU_CHECK(tsr_lm_cache_compact(&c, P, bad_keep, 2).code != TSR_OK, "compact rejects decreasing rows");
    uint8_t zero[9 * 9] = {0};
    TU_CHECK(tsr_lm_forward_masked(&m, &c, tokens, n, 0, pos, zero, n, lg).code != TSR_OK,
             "a row that sees nothing is rejected");
    TU_CHECK(tsr_lm_forward_masked(&m, &c, tokens, n, P, pos, mask, n + 1, lg).code != TSR_OK,
             "a bad mask width is rejected");
    int badpos[9];
    memcpy(badpos, pos, sizeof pos);
    badpos[3] = cfg.seq_len;
    TU_CHECK(tsr_lm_forward_masked(&m, &c, tokens, n, P, badpos, mask, n, lg).code != TSR_OK,
             "a position outside the cache is rejected");
    tsr_lm_cache_free(&c);
    free(lg);
    free(lg2);
    free(ref);
    tsr_lm_model_free(&m);
    tsr_lm_model_free(&f);
}

/* ------------------------------------------------------------ generation */

static void check_gen(const tsr_lm_model *m, const int *prompt, int np, int max_new, int stop, const char *what,
                      int *accepted) {
    int *a = malloc(sizeof(int) * max_new), *b = malloc(sizeof(int) * max_new);
    int na = 0, nb = 0;
    tsr_decode_stats sa, sb;
    tsr_status s = tsr_decode_greedy_generate(m, prompt, np, max_new, stop, 0, a, &na, &sa);
    TU_CHECK(s.code == TSR_OK, "%s greedy: %s", what, s.msg);
    for (int v = 0; v < 3; v++) {
        int cand = v == 2 ? 3 : 1;
        tsr_decode_ngram_opts o;
        tsr_decode_ngram_defaults(&o);
        o.n_cand = cand;
        o.adaptive = v != 1;
        o.stop_token = stop;
        s = tsr_decode_ngram_generate(m, prompt, np, max_new, &o, b, &nb, &sb);
        TU_CHECK(s.code == TSR_OK, "%s ngram: %s", what, s.msg);
        TU_CHECK(na == nb && memcmp(a, b, sizeof(int) * na) == 0,
                 "%s (%d candidates, adaptive %d): speculative output equals greedy (%d vs %d tokens)", what, cand,
                 o.adaptive, nb, na);
        if (accepted) *accepted += sb.accepted;
        if (getenv("TSR_DECODE_VERBOSE"))
            printf("%s cand %d adaptive %d: %d tokens, %d forwards (greedy %d), %d/%d drafts accepted\n", what, cand, o.adaptive, nb,
                   sb.forwards, sa.forwards, sb.accepted, sb.drafted);
    }
    free(a);
    free(b);
}

static void test_generate_random(void) {
    tsr_lm_config cfg = {32, 64, 2, 4, 2, 40, 128, 10000.0f, 1e-5f, true, TSR_LM_ROPE_INTERLEAVED};
    tsr_lm_model m;
    TSR_ASSERT(tsr_lm_model_alloc(&m, &cfg).code == TSR_OK);
    tsr_lm_model_randomize(&m, 5, 0.5f);
    int prompt[40];
    for (int i = 0; i < 40; i++) prompt[i] = (i % 7) * 3 + 1;
    int acc = 0;
    check_gen(&m, prompt, 40, 60, -1, "random repetitive", &acc);
    check_gen(&m, prompt + 3, 2, 100, -1, "random short prompt", &acc);
    check_gen(&m, prompt, 21, 200, -1, "random up to the cache end", &acc);
    /* a stop token the greedy run actually meets mid-way */
    int g[60], ng = 0;
    TSR_ASSERT(tsr_decode_greedy_generate(&m, prompt + 3, 2, 60, -1, 0, g, &ng, NULL).code == TSR_OK);
    int stop = g[40], first = 0;
    while (g[first] != stop) first++;
    int nstop = 0;
    TSR_ASSERT(tsr_decode_greedy_generate(&m, prompt + 3, 2, 60, stop, 0, g, &nstop, NULL).code == TSR_OK);
    TU_CHECK(nstop == first + 1, "greedy stops after the stop token (%d, %d)", nstop, first + 1);
    check_gen(&m, prompt + 3, 2, 60, stop, "random with a stop token", NULL);
    TU_CHECK(acc > 20, "drafts were accepted (%d)", acc);
    tsr_lm_model_free(&m);
}

static void test_generate_stories(void) {
    if (access(DATA "stories260K.bin", R_OK) != 0 || access(DATA "tok512.bin", R_OK) != 0) {
        printf("skip: %s not found\n", DATA "stories260K.bin");
        return;
    }
    tsr_lm_model m;
    tsr_tokenizer tok;
    TSR_ASSERT(tsr_llama2c_load(&m, DATA "stories260K.bin").code == TSR_OK);
    TSR_ASSERT(tsr_tokenizer_load(&tok, DATA "tok512.bin", m.cfg.vocab_size).code == TSR_OK);
    const char *prompts[] = {"Once upon a time", "Lily and Tom went to the park. Lily and Tom", "The cat sat",
                             "One day, a little girl named Sue"};
    int acc = 0;
    for (int i = 0; i < 4; i++) {
        int *p = malloc(sizeof(int) * tsr_tokenizer_max_tokens(prompts[i]));
        int np = tsr_tokenizer_encode(&tok, prompts[i], true, false, p);
        check_gen(&m, p, np, 200, -1, prompts[i], &acc);
        free(p);
    }
    TU_CHECK(acc > 0, "stories260K drafts accepted (%d)", acc);
    tsr_tokenizer_free(&tok);
    tsr_lm_model_free(&m);
}


/* ------------------------------------------------------------ exact sampling */

/* chi-square of counts against probabilities (n draws); cells with an
 * expected count below 5 are pooled into one; *df gets cells - 1 */
static double chi2(const int64_t *cnt, const double *p, int cells, int64_t n, int *df) {
    double x = 0, pool_e = 0, pool_o = 0;
    int k = 0;
    for (int i = 0; i < cells; i++) {
        double e = p[i] * (double)n;
        if (e < 5) {
            pool_e += e, pool_o += (double)cnt[i];
            continue;
        }
        x += ((double)cnt[i] - e) * ((double)cnt[i] - e) / e;
        k++;
    }
    if (pool_e > 0) {
        x += (pool_o - pool_e) * (pool_o - pool_e) / (pool_e > 1e-9 ? pool_e : 1e-9);
        k++;
    }
    *df = k - 1;
    return x;
}

/* chi-square critical value at p = 0.001 (Wilson-Hilferty) */
static double chi2_crit(int df) {
    const double z = 3.0902;
    double a = 2.0 / (9.0 * df);
    return df * pow(1 - a + z * sqrt(a), 3);
}

static void test_target_probs(void) {
    enum { V = 12 };
    float logits[V], work[V], probs[V];
    tsr_lm_prob scratch[V];
    tu_randn(logits, V, 7, 1.5f);
    tsr_lm_sampler_opts cases[3];
    for (int c = 0; c < 3; c++) {
        tsr_lm_sampler_defaults(&cases[c]);
        cases[c].top_p = 0;
    }
    cases[0].temperature = 0.8f, cases[0].top_k = 5;
    cases[1].temperature = 1.2f, cases[1].top_p = 0.8f;
    cases[2].temperature = 1.0f, cases[2].min_p = 0.1f;
    for (int c = 0; c < 3; c++) {
        tsr_lm_sample_probs(probs, logits, V, &cases[c], scratch);
        tsr_lm_sampler smp;
        TSR_ASSERT(tsr_lm_sampler_init(&smp, &cases[c], V).code == TSR_OK);
        int64_t cnt[V] = {0};
        const int64_t n = 20000;
        for (int64_t i = 0; i < n; i++) {
            memcpy(work, logits, sizeof logits);
            cnt[tsr_lm_sample(&smp, work, NULL, 0)]++;
        }
        double p[V], sum = 0;
        bool support = true;
        for (int i = 0; i < V; i++) {
            p[i] = probs[i], sum += p[i];
            if (probs[i] == 0 && cnt[i] > 0) support = false;
        }
        int df;
        double x = chi2(cnt, p, V, n, &df);
        TU_CHECK(fabs(sum - 1) < 1e-5, "target probs sum to 1 (case %d: %g)", c, sum);
        TU_CHECK(support, "case %d: the sampler never draws a token of probability 0", c);
        TU_CHECK(df >= 1 && x < chi2_crit(df), "case %d: sampler frequencies match the target (chi2 %.1f, df %d, crit %.1f)",
                 c, x, df, chi2_crit(df));
        tsr_lm_sampler_free(&smp);
    }
}

/* the rule of the public code: accept a draft with p(x), else draw from p */
static int naive_first(const float *logits, int V, int draft, const tsr_lm_sampler_opts *o, tsr_rng *r) {
    float p[64];
    tsr_lm_prob sc[64];
    tsr_lm_sample_probs(p, logits, V, o, sc);
    if (tsr_rng_uniform(r) < p[draft]) return draft;
    float u = tsr_rng_uniform(r), cdf = 0;
    for (int i = 0; i < V; i++) {
        cdf += p[i];
        if (u < cdf) return i;
    }
    return V - 1;
}

static void test_exact_sampling(void) {
    enum { V = 6 };
    tsr_lm_config cfg = {16, 32, 1, 2, 2, V, 32, 10000.0f, 1e-5f, true, TSR_LM_ROPE_HALF};
    tsr_lm_model m;
    TSR_ASSERT(tsr_lm_model_alloc(&m, &cfg).code == TSR_OK);
    tsr_lm_model_randomize(&m, 11, 0.6f);
    tsr_lm_sampler_opts so;
    tsr_lm_sampler_defaults(&so);
    so.temperature = 1.0f, so.top_p = 0, so.top_k = 5;
    const int prefix[2] = {1, 2}, root = 3;
    /* exact joint of the first two tokens after prefix + root */
    double pj[V * V];
    float lg[V], p1[V], p2[V];
    tsr_lm_prob sc[V];
    int seq[4] = {1, 2, 3, 0};
    TSR_ASSERT(plain_logits(&m, seq, 3, lg));
    tsr_lm_sample_probs(p1, lg, V, &so, sc);
    for (int a = 0; a < V; a++) {
        seq[3] = a;
        TSR_ASSERT(plain_logits(&m, seq, 4, lg));
        tsr_lm_sample_probs(p2, lg, V, &so, sc);
        for (int b = 0; b < V; b++) pj[a * V + b] = (double)p1[a] * p2[b];
    }
    int d1 = 0;
    for (int i = 1; i < V; i++)
        if (p1[i] > p1[d1]) d1 = i;
    /* draft tree: root, children d1 and (d1 + 1) % V, a grandchild under d1 */
    const int tokens[4] = {root, d1, (d1 + 1) % V, 2}, parent[4] = {-1, 0, 0, 1};
    uint8_t mask[16];
    int pos[4];
    tsr_decode_tree_mask(mask, parent, 4);
    tsr_decode_positions(pos, mask, 4, 2, 4);
    float logits[4 * V], scratch[3 * V];
    int64_t cnt[V * V] = {0}, cnt1[V] = {0}, naive1[V] = {0};
    const int64_t n = 20000;
    tsr_rng r, rn;
    tsr_rng_seed(&r, 99);
    tsr_rng_seed(&rn, 98);
    tsr_lm_cache c;
    TSR_ASSERT(tsr_lm_cache_init(&c, &cfg, 16).code == TSR_OK);
    TSR_ASSERT(tsr_lm_forward(&m, &c, prefix, 2, 0, NULL).code == TSR_OK);
    /* the prefix's K/V stay in slots 0..1; each trial overwrites 2.. */
    for (int64_t t = 0; t < n; t++) {
        TSR_ASSERT(tsr_lm_forward_masked(&m, &c, tokens, 4, 2, pos, mask, 4, logits).code == TSR_OK);
        int path[4], bonus;
        int len = tsr_decode_accept_sample(path, &bonus, tokens, parent, 4, logits, V, &so, &r, scratch);
        int emitted[5], ne = 0;
        for (int i = 1; i < len; i++) emitted[ne++] = tokens[path[i]];
        emitted[ne++] = bonus;
        if (ne < 2) {
            /* one more step after the bonus: root + first token in the cache */
            TSR_ASSERT(tsr_lm_cache_compact(&c, 2, path, len).code == TSR_OK);
            float l2[V];
            TSR_ASSERT(tsr_lm_forward(&m, &c, &emitted[0], 1, 3, l2).code == TSR_OK);
            int only[1] = {-1}, p0[1], b2;
            tsr_decode_accept_sample(p0, &b2, only, only, 1, l2, V, &so, &r, scratch);
            emitted[ne++] = b2;
        }
        cnt[emitted[0] * V + emitted[1]]++;
        cnt1[emitted[0]]++;
        naive1[naive_first(logits, V, d1, &so, &rn)]++;
    }
    tsr_lm_cache_free(&c);
    int df;
    double x = chi2(cnt, pj, V * V, n, &df);
    TU_CHECK(df >= 3 && x < chi2_crit(df), "exact sampling: joint of two tokens matches the model (chi2 %.1f, df %d, crit %.1f)",
             x, df, chi2_crit(df));
    double pm[V];
    for (int i = 0; i < V; i++) pm[i] = p1[i];
    x = chi2(cnt1, pm, V, n, &df);
    TU_CHECK(x < chi2_crit(df), "exact sampling: first token matches (chi2 %.1f, df %d)", x, df);
    double xn = chi2(naive1, pm, V, n, &df);
    TU_CHECK(xn > chi2_crit(df), "the test has power: resampling from p is rejected (chi2 %.1f, crit %.1f)", xn,
             chi2_crit(df));
    tsr_lm_model_free(&m);
}

int main(void) {
    tsr_threads_set(0);
    test_tree();
    test_ngram();
    test_masked(TSR_LM_W_F32);
    test_masked(TSR_LM_W_BF16);
    test_masked(TSR_LM_W_Q8);
    tsr_threads_set(1); /* generation: many tiny forwards, cheaper on one thread */
    test_generate_random();
    test_generate_stories();
    test_target_probs();
    test_exact_sampling();
    return tu_finish("decode");
}
