/* Tests for src/models/lm/train.c (the LM trainer): bits-per-byte
 * arithmetic on a hand example, byte counting of tokens (special tokens
 * count nothing), the fixed validation offsets, the loss falling on a tiny
 * config over a patterned token stream, exact resume (N steps straight ==
 * N/2, stop, resume, N/2, file for file), refusal to resume under other
 * settings, and the config in the BF16 copy's metadata.
 *
 * Tolerances: bpb within 1e-12 of the hand value (double arithmetic);
 * loss must fall below 40% of ln(V) on a stream a bigram model predicts;
 * resume must be bit-identical (cmp of whole files). */
#include "testutil.h"
#include "tessera/bpe.h"
#include "tessera/lm_train.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

static void test_bpb(void) {
    /* 10 target tokens, mean 2.0 nats, covering 25 bytes: 20 nats total =
     * 20 / ln 2 bits over 25 bytes */
    double want = 20.0 / log(2.0) / 25.0;
    double got = tsr_lm_bpb(2.0, 10, 25);
    TU_CHECK(fabs(got - want) < 1e-12, "bpb %.15f want %.15f", got, want);
    TU_CHECK(fabs(got - 1.1541560327111707) < 1e-12, "bpb %.15f", got);
    TU_CHECK(tsr_lm_bpb(3.0, 5, 0) == 0.0, "zero bytes gives 0");
    /* one byte per token (no tokenizer): bpb = loss / ln 2 */
    int32_t ids[4] = {1, 2, 3, 4};
    TU_CHECK(tsr_lm_token_bytes(NULL, ids, 4) == 4, "null tokenizer counts tokens");
}

static void test_token_bytes(void) {
    const char *text = "def f(x):\n    return x + 1\n";
    const char *specials[] = {"<|endoftext|>"};
    tsr_bpe_train_opts o = {300, specials, 1, 1, false};
    size_t len = strlen(text);
    tsr_bpe b;
    tsr_status st = tsr_bpe_train_texts(&b, &text, &len, 1, &o);
    TU_CHECK(st.code == 0, "bpe train: %s", st.msg);
    if (st.code) return;
    int32_t ids[64];
    size_t n = tsr_bpe_encode(&b, text, len, ids);
    int sep = tsr_bpe_special_id(&b, "<|endoftext|>");
    TU_CHECK(sep >= 0, "separator id");
    ids[n] = sep; /* the file separator adds a token but no byte */
    TU_CHECK(tsr_lm_token_bytes(&b, ids, n + 1) == (int64_t)len, "bytes %lld want %zu",
             (long long)tsr_lm_token_bytes(&b, ids, n + 1), len);
    TU_CHECK(n < len, "merges shorten the text (%zu tokens for %zu bytes)", n, len);
    tsr_bpe_free(&b);
}

static void test_eval_offsets(void) {
    /* N = 100 tokens, windows of T + 1 = 11, 5 windows: span 89 */
    size_t want[5] = {0, 22, 44, 66, 89};
    for (int i = 0; i < 5; i++) {
        size_t o = tsr_lm_eval_offset(100, 10, i, 5);
        TU_CHECK(o == want[i], "offset %d: %zu want %zu", i, o, want[i]);
    }
    TU_CHECK(tsr_lm_eval_offset(100, 10, 0, 1) == 0, "single window at 0");
    /* the most windows the trainer takes, (N-1)/T, never overlap */
    size_t N = 1000;
    int T = 16;
    int64_t n = (int64_t)(N - 1) / T;
    bool ok = true;
    for (int64_t i = 1; i < n; i++)
        ok &= tsr_lm_eval_offset(N, T, i, n) >= tsr_lm_eval_offset(N, T, i - 1, n) + (size_t)T;
    ok &= tsr_lm_eval_offset(N, T, n - 1, n) + (size_t)T + 1 <= N;
    TU_CHECK(ok, "windows overlap or run past the end");
}

/* a stream where the next token is mostly a function of the current one */
static int32_t *pattern_stream(size_t n, int V, uint64_t seed) {
    int32_t *s = malloc(sizeof(int32_t) * n);
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    s[0] = 0;
    for (size_t i = 1; i < n; i++)
        s[i] = tsr_rng_below(&r, 16) == 0 ? (int32_t)tsr_rng_below(&r, (uint32_t)V)
                                          : (int32_t)((s[i - 1] * 5 + 3) % V);
    return s;
}

typedef struct {
    double first, last;
    int n;
} evals;

static void record_eval(const tsr_lm_train_eval *e, void *ud) {
    evals *ev = ud;
    if (ev->n++ == 0) ev->first = e->val_loss;
    ev->last = e->val_loss;
}

static tsr_lm_train_opts tiny_opts(const char *out) {
    tsr_lm_train_opts o = tsr_lm_train_default_opts();
    o.cfg = (tsr_nn_llama_cfg){.dim = 32, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1,
                               .hidden_dim = 64, .vocab = 32, .max_seq = 16,
                               .norm_eps = 1e-5f, .rope_theta = 10000.0f, .tied = true};
    o.train.out = out;
    o.batch = 8;
    o.train.steps = 60;
    o.train.warmup = 5;
    o.train.lr = 1e-2f;
    o.train.min_lr = 1e-3f;
    o.train.eval_every = 10;
    o.eval_tokens = 512;
    o.train.ckpt_every = 0;
    o.train.log_every = 0;
    return o;
}

static bool same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = false;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void test_train(const char *dir) {
    const int V = 32;
    size_t nt = 20000, nv = 2000;
    int32_t *tr = pattern_stream(nt, V, 1), *va = pattern_stream(nv, V, 2);
    char out_a[512], out_b[512], st_a[600], st_b[600], bf[1200];
    snprintf(out_a, sizeof out_a, "%s/a.safetensors", dir);
    snprintf(out_b, sizeof out_b, "%s/b.safetensors", dir);
    tsr_lm_sibling_path(out_a, "state", st_a, sizeof st_a);
    tsr_lm_sibling_path(out_b, "state", st_b, sizeof st_b);

    /* loss falls: a bigram rule with 1/16 noise is learnable well below ln V */
    evals ev = {0, 0, 0};
    tsr_lm_train_opts o = tiny_opts(out_a);
    o.on_eval = record_eval;
    o.ud = &ev;
    tsr_lm_train_result r;
    tsr_status st = tsr_lm_train_tokens(&o, tr, nt, va, nv, NULL, "none", 0, &r);
    TU_CHECK(st.code == 0, "train: %s", st.msg);
    TU_CHECK(r.finished && r.steps == 60, "finished %d steps %lld", r.finished, (long long)r.steps);
    TU_CHECK(ev.n == 6, "%d evaluations, want 6", ev.n);
    TU_CHECK(ev.last < 0.4 * log((double)V) && ev.last < ev.first,
             "val loss %.4f -> %.4f, want below %.4f", ev.first, ev.last, 0.4 * log((double)V));
    TU_CHECK(fabs(r.eval.val_bpb - r.eval.val_loss / log(2.0)) < 1e-9,
             "one byte per token: bpb %.6f loss/ln2 %.6f", r.eval.val_bpb, r.eval.val_loss / log(2.0));
    TU_CHECK(r.eval.tokens == 512 && r.eval.bytes == 512, "eval covers %lld tokens", (long long)r.eval.tokens);

    /* the BF16 copy carries the config */
    tsr_st_file f;
    st = tsr_st_read(r.bf16_path, &f);
    TU_CHECK(st.code == 0, "read bf16: %s", st.msg);
    if (!st.code) {
        tsr_nn_llama_cfg g;
        st = tsr_lm_ckpt_config(&f, &g);
        TU_CHECK(st.code == 0, "config: %s", st.msg);
        TU_CHECK(g.dim == 32 && g.n_layers == 2 && g.n_heads == 2 && g.n_kv_heads == 1 &&
                     g.hidden_dim == 64 && g.vocab == 32 && g.max_seq == 16 && g.tied &&
                     g.rope_theta == 10000.0f && g.norm_eps == 1e-5f,
                 "config does not round-trip");
        const tsr_st_tensor *t = tsr_st_find(&f, "model.embed_tokens.weight");
        TU_CHECK(t && t->dtype == TSR_ST_BF16, "embedding stored as BF16");
        TU_CHECK(!tsr_st_find(&f, "lm_head.weight"), "tied: no lm_head");
        tsr_st_free(&f);
    }
    snprintf(bf, sizeof bf, "%s", r.bf16_path);

    /* exact resume: 30 straight vs 15 + stop + resume 15, same files */
    o = tiny_opts(out_a);
    o.train.steps = 30;
    o.train.ckpt_every = 7;
    st = tsr_lm_train_tokens(&o, tr, nt, va, nv, NULL, "none", 0, &r);
    TU_CHECK(st.code == 0 && r.finished, "straight: %s", st.msg);
    o = tiny_opts(out_b);
    o.train.steps = 30;
    o.train.ckpt_every = 7;
    o.train.stop_after = 15;
    st = tsr_lm_train_tokens(&o, tr, nt, va, nv, NULL, "none", 0, &r);
    TU_CHECK(st.code == 0 && !r.finished && r.steps == 15, "first half: %s", st.msg);
    o.train.stop_after = 0;
    o.train.resume = true;
    st = tsr_lm_train_tokens(&o, tr, nt, va, nv, NULL, "none", 0, &r);
    TU_CHECK(st.code == 0 && r.finished && r.steps == 30, "resume: %s", st.msg);
    TU_CHECK(same_file(out_a, out_b), "resumed checkpoint differs from the straight one");
    TU_CHECK(same_file(st_a, st_b), "resumed training state differs from the straight one");

    /* a resume under other settings is refused */
    o.train.lr = 2e-2f;
    st = tsr_lm_train_tokens(&o, tr, nt, va, nv, NULL, "none", 0, &r);
    TU_CHECK(st.code == TSR_ERR_ARG && strstr(st.msg, "train.lr"), "changed lr: %s", st.msg);
    /* tokens outside the vocab are an error, not a crash */
    tr[5] = V;
    o = tiny_opts(out_b);
    st = tsr_lm_train_tokens(&o, tr, nt, va, nv, NULL, "none", 0, &r);
    TU_CHECK(st.code == TSR_ERR_ARG, "token out of range accepted");

    char sb[600];
    tsr_lm_sibling_path(out_b, "bf16", sb, sizeof sb);
    remove(out_a), remove(out_b), remove(st_a), remove(st_b), remove(bf), remove(sb);
    free(tr);
    free(va);
}

int main(void) {
    tsr_threads_set(0);
    char dir[] = "/tmp/tsr_lm_train_XXXXXX";
    TSR_ASSERT(mkdtemp(dir));
    test_bpb();
    test_token_bytes();
    test_eval_offsets();
    test_train(dir);
    rmdir(dir);
    return tu_finish("lm_train");
}
