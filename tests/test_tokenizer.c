/* Tests for src/io/tokenizer.c (llama2.c tokenizer.bin, BPE encode/decode):
 * - encode against a naive twin written here the way run.c does it (linear
 *   lookups, full rescan of every pair each merge) on fixed and random
 *   strings, including bytes that need byte fallback and invalid UTF-8;
 * - decode(encode(s)) == s (exact bytes; the format allows it for any
 *   NUL-free string since every byte has a <0xXX> token);
 * - run.c's decode details: leading space dropped after BOS, raw bytes for
 *   <0xXX>, the printable filter;
 * - malformed files (every truncation of the header region, bad lengths,
 *   random garbage) give a status, never a crash (run under ASan too).
 * All comparisons are exact. */
#include "testutil.h"
#include "tessera/tokenizer.h"

#include <string.h>

#define TOK_PATH "../shared/data/llama2c/tok512.bin"

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* run.c's algorithm, naively */
static int naive_lookup(const tsr_tokenizer *t, const char *s) {
    for (int i = 0; i < t->vocab_size; i++)
        if (strcmp(t->vocab[i], s) == 0) return i;
    return -1;
}
static int naive_encode(const tsr_tokenizer *t, const char *text, int *tok) {
    char buf[512];
    int n = 0;
    tok[n++] = 1;
    if (text[0]) tok[n++] = naive_lookup(t, " ");
    size_t sl = 0;
    for (const char *c = text; *c; c++) {
        if ((*c & 0xC0) != 0x80) sl = 0;
        buf[sl++] = *c;
        buf[sl] = 0;
        if ((c[1] & 0xC0) == 0x80 && sl < 4) continue;
        int id = naive_lookup(t, buf);
        if (id != -1) tok[n++] = id;
        else
            for (size_t i = 0; i < sl; i++) tok[n++] = (unsigned char)buf[i] + 3;
        sl = 0;
    }
    for (;;) {
        float best = -1e10f;
        int best_id = -1, best_i = -1;
        for (int i = 0; i < n - 1; i++) {
            snprintf(buf, sizeof buf, "%s%s", t->vocab[tok[i]], t->vocab[tok[i + 1]]);
            int id = naive_lookup(t, buf);
            if (id != -1 && t->scores[id] > best) {
                best = t->scores[id];
                best_id = id;
                best_i = i;
            }
        }
        if (best_i < 0) break;
        tok[best_i] = best_id;
        for (int i = best_i + 1; i < n - 1; i++) tok[i] = tok[i + 1];
        n--;
    }
    return n;
}

static void check_string(const tsr_tokenizer *t, const char *s, const char *label) {
    size_t cap = tsr_tokenizer_max_tokens(s);
    int *a = malloc(sizeof(int) * cap), *b = malloc(sizeof(int) * cap);
    int na = tsr_tokenizer_encode(t, s, true, false, a);
    int nb = naive_encode(t, s, b);
    TU_CHECK(na == nb && memcmp(a, b, sizeof(int) * (size_t)na) == 0, "encode %s: %d vs naive %d tokens", label,
             na, nb);
    TU_CHECK(na >= 1 && a[0] == TSR_TOK_BOS && (size_t)na <= cap, "encode %s: BOS first, within capacity", label);
    /* decode concatenation restores the bytes */
    size_t sl = strlen(s);
    char *out = malloc(sl * 4 + 64);
    size_t ol = 0;
    bool ok_ids = true;
    for (int i = 1; i < na; i++) {
        if (a[i] < 0 || a[i] >= t->vocab_size) ok_ids = false;
        const char *p = tsr_tokenizer_decode(t, a[i - 1], a[i]);
        size_t pl = strlen(p);
        if (ol + pl < sl * 4 + 64) memcpy(out + ol, p, pl);
        ol += pl;
    }
    TU_CHECK(ok_ids, "encode %s: ids in range", label);
    TU_CHECK(ol == sl && memcmp(out, s, sl) == 0, "decode(encode(%s)) round trip (%zu vs %zu bytes)", label, ol, sl);
    /* with EOS */
    int nc = tsr_tokenizer_encode(t, s, true, true, a);
    TU_CHECK(nc == na + 1 && a[nc - 1] == TSR_TOK_EOS, "encode %s with EOS", label);
    free(out);
    free(a);
    free(b);
}

static void check_bad(const void *buf, size_t len, int vocab, const char *label) {
    tsr_tokenizer t;
    tsr_status s = tsr_tokenizer_parse(&t, buf, len, vocab, label);
    TU_CHECK(s.code != TSR_OK && strstr(s.msg, label) != NULL, "%s: rejected with a message naming it (got %d '%s')",
             label, s.code, s.msg);
    tsr_tokenizer_free(&t);
}

int main(void) {
    tsr_tokenizer t;
    tsr_status s = tsr_tokenizer_load(&t, TOK_PATH, 512);
    TU_CHECK(s.code == TSR_OK, "load %s: %s", TOK_PATH, s.msg);
    if (s.code) return tu_finish("tokenizer");
    TU_CHECK(t.vocab_size == 512, "vocab size %d", t.vocab_size);
    TU_CHECK(strcmp(t.vocab[3], "<0x00>") == 0 && t.byte_of[3] == 0 && t.byte_of[3 + 0x41] == 0x41,
             "byte tokens at +3");
    TU_CHECK(t.space_id >= 0 && strcmp(t.vocab[t.space_id], " ") == 0, "space piece");
    {
        tsr_tokenizer t2;
        s = tsr_tokenizer_load(&t2, TOK_PATH, 0);
        TU_CHECK(s.code == TSR_OK && t2.vocab_size == 512, "load to end of file: %d tokens", t2.vocab_size);
        tsr_tokenizer_free(&t2);
    }

    /* fixed strings: ASCII, UTF-8 not in the vocab (byte fallback), invalid UTF-8 */
    const char *cases[] = {
        "Once upon a time",
        "",
        "a",
        " ",
        "  leading spaces and trailing  ",
        "Lily's mom said, \"Lily, let's go to the park.\"\nThe end.",
        "caf\xc3\xa9 na\xc3\xafve \xe2\x82\xac 5 \xf0\x9f\x98\x80!",     /* é ï € 😀 */
        "\xff\xfe bad \x80\x80\x80\x80\x80 lead\xc3 trunc \xe2\x82",    /* invalid UTF-8 */
        "\x01\x02\x7f tabs\tand\rcontrol",
        "<s> </s> <unk> <0x41>",
        "aaa eee ooo lll   sss !!! ...", /* equal-score pairs: the leftmost merges first */
        "aaaaaaa helllo appple cooool",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char label[32];
        snprintf(label, sizeof label, "case %zu", i);
        check_string(&t, cases[i], label);
    }
    /* random strings: printable ASCII-heavy, and arbitrary bytes */
    tsr_rng r;
    tsr_rng_seed(&r, 7);
    for (int it = 0; it < 300; it++) {
        char buf[80];
        int n = (int)tsr_rng_below(&r, 79);
        for (int i = 0; i < n; i++) {
            unsigned v = it % 2 ? 1 + tsr_rng_below(&r, 255) : 32 + tsr_rng_below(&r, 95);
            buf[i] = (char)v;
        }
        buf[n] = 0;
        char label[32];
        snprintf(label, sizeof label, "random %d", it);
        check_string(&t, buf, label);
    }

    /* decode rules */
    int bos_piece = tsr_tokenizer_lookup(&t, " Once");
    if (bos_piece >= 0) {
        TU_CHECK(strcmp(tsr_tokenizer_decode(&t, TSR_TOK_BOS, bos_piece), "Once") == 0, "space dropped after BOS");
        TU_CHECK(strcmp(tsr_tokenizer_decode(&t, 100, bos_piece), " Once") == 0, "space kept otherwise");
    }
    TU_CHECK(strcmp(tsr_tokenizer_decode(&t, 5, 3 + '\n'), "\n") == 0, "<0x0A> decodes to a newline byte");
    TU_CHECK(tsr_tokenizer_decode(&t, 5, -1)[0] == 0 && tsr_tokenizer_decode(&t, 5, 512)[0] == 0,
             "out-of-range ids decode to nothing");
    TU_CHECK(!tsr_tokenizer_printable("\x01") && !tsr_tokenizer_printable("") && tsr_tokenizer_printable("\n") &&
                 tsr_tokenizer_printable("a") && tsr_tokenizer_printable("\x01\x02"),
             "printable filter");

    /* malformed files */
    size_t len = 0;
    unsigned char *file = read_all(TOK_PATH, &len);
    TU_CHECK(file && len > 100, "read %s", TOK_PATH);
    for (size_t cut = 0; cut < 200; cut++) check_bad(file, cut, 512, "truncated-tok");
    for (size_t cut = len - 40; cut < len; cut++) check_bad(file, cut, 512, "truncated-tok-end");
    check_bad(file, len, 513, "tok-more-than-file");
    {
        unsigned char *b = malloc(len);
        memcpy(b, file, len);
        int32_t v = -5;
        memcpy(b, &v, 4);
        check_bad(b, len, 512, "neg-max-len");
        memcpy(b, file, len);
        memcpy(b + 8, &v, 4); /* first token's length */
        check_bad(b, len, 512, "neg-token-len");
        v = 0x7fffffff;
        memcpy(b + 8, &v, 4);
        check_bad(b, len, 512, "huge-token-len");
        memcpy(b, file, len);
        b[len - 1] = 0;
        check_bad(b, len - 3, 0, "partial-last-token");
        free(b);
    }
    check_bad(file, 4 + 8 + 5, 0, "two-few-tokens");
    /* garbage: must not crash; whatever parses must encode safely */
    for (int it = 0; it < 200; it++) {
        unsigned char g[256];
        size_t gl = 1 + tsr_rng_below(&r, 255);
        for (size_t i = 0; i < gl; i++) g[i] = (unsigned char)tsr_rng_below(&r, it % 2 ? 256 : 8);
        tsr_tokenizer gt;
        s = tsr_tokenizer_parse(&gt, g, gl, 0, "garbage");
        if (s.code == TSR_OK) {
            int toks[64];
            int n = tsr_tokenizer_encode(&gt, "hello \xff", true, true, toks);
            bool ok = n > 0;
            for (int i = 0; i < n; i++) ok = ok && toks[i] >= 0 && toks[i] < gt.vocab_size;
            TU_CHECK(ok, "garbage tokenizer encodes in range");
            tsr_tokenizer_free(&gt);
        }
    }
    tsr_tokenizer t3;
    s = tsr_tokenizer_load(&t3, "/nonexistent/tok.bin", 0);
    TU_CHECK(s.code == TSR_ERR_IO && strstr(s.msg, "/nonexistent/tok.bin"), "missing file: %s", s.msg);
    s = tsr_tokenizer_load(&t3, "tests", 0);
    TU_CHECK(s.code == TSR_ERR_IO, "directory: %s", s.msg);
    free(file);
    tsr_tokenizer_free(&t);
    return tu_finish("tokenizer");
}
