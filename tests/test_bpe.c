/* Tests for src/io/bpe.c (byte-level BPE, HF tokenizer.json):
 * - GPT-2's byte map is a bijection onto printable code points;
 * - the pre-tokeniser splits as GPT-2's regex on hand-checked strings
 *   (code indentation, contractions, digits, punctuation runs, Unicode);
 * - decode(encode(x)) == x exactly on random bytes (NULs, invalid UTF-8),
 *   the empty string, long whitespace runs and very long words;
 * - encode agrees with a naive twin written here (per word, rescan all
 *   merges for the lowest-rank adjacent pair, merge it, repeat), with the
 *   word cache cold and warm;
 * - training is deterministic and learns the hand-computed merges of a
 *   tiny corpus; the trainer's result on a larger text matches a naive
 *   trainer (full recount of every pair after each merge);
 * - save/load/save gives identical JSON; "[a, b]" merges load too;
 * - malformed tokenizer.json (hand-made cases, every truncation, random
 *   byte flips) gives a status, never a crash (run under ASan too).
 * All comparisons are exact. */
#include "testutil.h"
#include "tessera/bpe.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* ------------------------------------------------------------ splitter */

typedef struct {
    char buf[4096];
    size_t n;
    int words;
} join_ctx;

static void join_cb(const char *w, size_t len, void *u) {
    join_ctx *j = u;
    if (j->words) j->buf[j->n++] = '|';
    memcpy(j->buf + j->n, w, len);
    j->n += len;
    j->buf[j->n] = 0;
    j->words++;
}

static void check_split(const char *text, const char *want) {
    join_ctx j = {{0}, 0, 0};
    tsr_bpe_pretokenize(text, strlen(text), join_cb, &j);
    TU_CHECK(strcmp(j.buf, want) == 0, "split of \"%s\": got \"%s\" want \"%s\"", text, j.buf, want);
}

static void test_split(void) {
    check_split("def f(x):\n    return x's 12+3\n\n", "def| f|(|x|):|\n   | return| x|'s| 12|+|3|\n\n");
    check_split("a  b", "a| | b");
    check_split("x\ty", "x|\t|y");
    check_split("x \n", "x| \n");
    check_split("  (a)", " | (|a|)");
    check_split("they're I'll we've 'd", "they|'re| I|'ll| we|'ve| '|d");
    check_split("x='s'", "x|='|s|'");
    check_split("h\xc3\xa9llo w\xc3\xb6rld", "h\xc3\xa9llo| w\xc3\xb6rld");
    check_split("a\xc2\xa0" "b", "a|\xc2\xa0|b");                 /* NBSP is whitespace */
    check_split("module\xe2\x80\x99s \xe2\x80\x9cq\xe2\x80\x9d", /* ’ “ ” are punctuation */
                "module|\xe2\x80\x99|s| \xe2\x80\x9c|q|\xe2\x80\x9d");
    check_split("caf\xc3\xa9\xc3\x97x\xc2\xb2 \xe2\x82\xac" "5", /* × is P, ² is N, € is P */
                "caf\xc3\xa9|\xc3\x97|x|\xc2\xb2| \xe2\x82\xac|5");
    check_split("a\xff\xfe" "b c", "a\xff\xfe" "b| c");           /* invalid bytes are letters */
    check_split("if x:\n\tpass\n", "if| x|:|\n|\t|pass|\n"); /* only " " joins a word */
    check_split("x = [1, 2]  # c", "x| =| [|1|,| 2|]| | #| c");
    check_split("", "");
    check_split("   ", "   ");
}

static void test_byte_map(void) {
    int seen[324] = {0}, ok = 1;
    for (int b = 0; b < 256; b++) {
        int cp = tsr_bpe_byte_to_cp(b);
        if (cp < 33 || cp >= 324 || cp == 127 || (cp >= 128 && cp <= 160) || cp == 173 || seen[cp]++) ok = 0;
        if (tsr_bpe_cp_to_byte(cp) != b) ok = 0;
    }
    TU_CHECK(ok, "byte map is not a bijection onto printable code points");
    TU_CHECK(tsr_bpe_byte_to_cp(' ') == 0x120 && tsr_bpe_byte_to_cp('\n') == 0x10A &&
                 tsr_bpe_byte_to_cp('a') == 'a',
             "byte map: space -> U+0120, newline -> U+010A, 'a' stays");
}

/* ------------------------------------------------------- test corpora */

static const char *WORDS[] = {"def", "return", "self", "if", "else", "for", "in", "import",
                              "class", "None", "True", "x", "y", "value", "values", "item",
                              "items", "(", ")", ":", "=", "==", ",", ".", "[", "]", "0", "1",
                              "42", "'s'", "\"\"\"", "#", "lambda", "\xc3\xa9t\xc3\xa9"};

/* python-ish text of about n bytes from a fixed word list */
static char *make_text(size_t n, size_t *len) {
    char *t = malloc(n + 64);
    size_t k = 0;
    int indent = 0;
    while (k < n) {
        uint32_t r = rnd() % 100;
        if (r < 12) {
            t[k++] = '\n';
            indent = (int)(rnd() % 3) * 4;
            for (int i = 0; i < indent && k < n; i++) t[k++] = ' ';
        } else {
            const char *w = WORDS[rnd() % (sizeof WORDS / sizeof *WORDS)];
            if (r < 70 && k && t[k - 1] != ' ' && t[k - 1] != '\n') t[k++] = ' ';
            size_t l = strlen(w);
            memcpy(t + k, w, l);
            k += l;
        }
    }
    *len = k;
    return t;
}

static const char *SPECIALS[] = {"<|endoftext|>", "<s>"};

static tsr_bpe *train_small(int vocab, const char *text, size_t len) {
    tsr_bpe *b = calloc(1, sizeof *b);
    tsr_bpe_train_opts o = {vocab, SPECIALS, 2, 0, false};
    const char *texts[1] = {text};
    tsr_status st = tsr_bpe_train_texts(b, texts, &len, 1, &o);
    TU_CHECK(st.code == 0, "train: %s", st.msg);
    return b;
}

/* --------------------------------------------------------- naive twins */

typedef struct {
    const tsr_bpe *b;
    int32_t *out;
    size_t n;
} naive_ctx;

static void naive_word(const char *w, size_t len, void *u) {
    naive_ctx *c = u;
    const tsr_bpe *b = c->b;
    int32_t *s = malloc(len * sizeof *s);
    size_t n = len;
    for (size_t i = 0; i < len; i++) s[i] = b->byte_id[(unsigned char)w[i]];
    for (;;) {
        int best = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < n; i++)
            for (int r = 0; r < b->n_merges && (best < 0 || r < best); r++)
                if (b->merges[r][0] == s[i] && b->merges[r][1] == s[i + 1]) {
                    best = r;
                    at = i;
                    break;
                }
        if (best < 0) break;
        s[at] = b->merges[best][2];
        memmove(s + at + 1, s + at + 2, (n - at - 2) * sizeof *s);
        n--;
    }
    memcpy(c->out + c->n, s, n * sizeof *s);
    c->n += n;
    free(s);
}

static size_t naive_encode(const tsr_bpe *b, const char *t, size_t len, int32_t *out) {
    naive_ctx c = {b, out, 0};
    tsr_bpe_pretokenize(t, len, naive_word, &c);
    return c.n;
}

/* ------------------------------------------------------------ round trip */

static bool roundtrip(tsr_bpe *b, const char *t, size_t len, const char *what) {
    int32_t *ids = malloc((len + 1) * sizeof *ids);
    char *back = malloc(len + 1);
    size_t n = tsr_bpe_encode(b, t, len, ids);
    size_t m = tsr_bpe_decode(b, ids, n, back, len);
    bool ok = n <= len && m == len && memcmp(back, t, len) == 0;
    for (size_t i = 0; i < n; i++) ok = ok && ids[i] >= 0 && ids[i] < b->vocab_size && !b->special[ids[i]];
    TU_CHECK(ok, "round trip %s (%zu bytes -> %zu ids -> %zu bytes)", what, len, n, m);
    free(ids);
    free(back);
    return ok;
}

static void test_roundtrip(tsr_bpe *b) {
    roundtrip(b, "", 0, "empty");
    char buf[5000];
    int fails = 0;
    for (int it = 0; it < 300 && fails < 3; it++) {
        size_t len = rnd() % 300;
        int mode = it % 3;
        for (size_t i = 0; i < len; i++) {
            if (mode == 0) buf[i] = (char)(rnd() & 0xff);                 /* any byte */
            else if (mode == 1) buf[i] = " \n\t'a0(\xc3\xa9\x80\x00"[rnd() % 11]; /* skewed */
            else buf[i] = (char)(rnd() % 2 ? 0 : 0xff);                    /* NUL/0xff */
        }
        if (!roundtrip(b, buf, len, "random bytes")) fails++;
    }
    const char *inval[] = {"\xc3", "\xc3\x28", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                           "\xc0\xaf", "\xf0\x9f\x98\x80 ok \xf0\x9f", ("a\x00" "b\x00\x00 c")};
    size_t inval_len[] = {1, 2, 2, 3, 4, 2, 10, 8};
    for (int i = 0; i < 8; i++) roundtrip(b, inval[i], inval_len[i], "invalid UTF-8");
    size_t big = 20000;
    char *ws = malloc(big);
    memset(ws, ' ', big);
    roundtrip(b, ws, big, "20000 spaces");
    for (size_t i = 0; i < big; i++) ws[i] = "\n\n  \t \r"[i % 7];
    roundtrip(b, ws, big, "mixed whitespace run");
    for (size_t i = 0; i < big; i++) ws[i] = "ab"[i % 2 ? 1 : (i / 7) % 2];
    roundtrip(b, ws, big, "one 20000-byte word");
    free(ws);
}

static void test_vs_naive(tsr_bpe *b) {
    size_t len;
    char *t = make_text(20000, &len);
    /* sprinkle odd bytes */
    for (int k = 0; k < 50; k++) t[rnd() % len] = (char)(rnd() & 0xff);
    int32_t *a = malloc(len * sizeof *a), *c = malloc(len * sizeof *c), *d = malloc(len * sizeof *d);
    size_t na = tsr_bpe_encode(b, t, len, a);  /* cold cache */
    size_t nd = tsr_bpe_encode(b, t, len, d);  /* warm cache */
    size_t nc = naive_encode(b, t, len, c);
    TU_CHECK(na == nc && memcmp(a, c, na * sizeof *a) == 0, "encode vs naive twin (%zu vs %zu ids)", na, nc);
    TU_CHECK(nd == na && memcmp(a, d, na * sizeof *a) == 0, "encode with a warm cache differs");
    TU_CHECK(na * 2 < len, "trained merges should compress the text (%zu bytes -> %zu ids)", len, na);
    free(a);
    free(c);
    free(d);
    free(t);
}

/* ------------------------------------------------------------- training */

static void test_tiny_merges(void) {
    /* words: hug, " hug" x2, " pug", " pun", " bun", " hugs"
     * pair counts: ug 5, hu 4, " h" 3, " p" 2, pu 2, un 2, ... -> "u g";
     * then h+ug 4; then " "+hug 3; then " "+p and u+n tie at 2 and the
     * smaller ids win (" " is byte 32, "u" 117); then nothing reaches 2 */
    const char *t = "hug hug hug pug pun bun hugs";
    tsr_bpe *b = train_small(300, t, strlen(t));
    const char *want[] = {"u g", "h ug", "\xc4\xa0 hug", "\xc4\xa0 p", "u n"};
    TU_CHECK(b->n_merges == 5 && b->vocab_size == 2 + 256 + 5, "tiny corpus: %d merges, vocab %d",
             b->n_merges, b->vocab_size);
    char *json = tsr_bpe_to_json(b);
    cJSON *root = cJSON_Parse(json);
    cJSON *model = cJSON_GetObjectItem(root, "model");
    cJSON *merges = cJSON_GetObjectItem(model, "merges");
    for (int i = 0; i < 5 && i < cJSON_GetArraySize(merges); i++) {
        const char *m = cJSON_GetArrayItem(merges, i)->valuestring;
        TU_CHECK(strcmp(m, want[i]) == 0, "merge %d is \"%s\", want \"%s\"", i, m, want[i]);
    }
    TU_CHECK(strcmp(cJSON_GetObjectItem(model, "type")->valuestring, "BPE") == 0, "model.type");
    cJSON *vocab = cJSON_GetObjectItem(model, "vocab");
    cJSON *hug = cJSON_GetObjectItem(vocab, "\xc4\xa0hug");
    TU_CHECK(hug && hug->valueint == 2 + 256 + 2, "vocab[\"Ghug\"] is the third merge");
    cJSON *sp = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "added_tokens"), 1);
    TU_CHECK(sp && cJSON_GetObjectItem(sp, "id")->valueint == 1 &&
                 strcmp(cJSON_GetObjectItem(sp, "content")->valuestring, "<s>") == 0,
             "added_tokens[1] is <s> with id 1");
    TU_CHECK(strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "pre_tokenizer"), "type")->valuestring,
                    "ByteLevel") == 0, "pre_tokenizer ByteLevel");
    cJSON_Delete(root);
    free(json);
    TU_CHECK(tsr_bpe_special_id(b, "<|endoftext|>") == 0 && tsr_bpe_special_id(b, "<s>") == 1 &&
                 tsr_bpe_special_id(b, "<pad>") == -1, "special ids");
    int32_t ids[3] = {1, 2 + 256 + 2, 9999};
    char out[32];
    size_t n = tsr_bpe_decode(b, ids, 3, out, sizeof out);
    TU_CHECK(n == 7 && memcmp(out, "<s> hug", 7) == 0, "decode of a special and a bad id");
    n = tsr_bpe_decode(b, ids, 3, out, 2);
    TU_CHECK(n == 7 && memcmp(out, "<s", 2) == 0, "decode into a short buffer reports the full size");
    tsr_bpe_free(b);
    free(b);
}

/* naive trainer: every word occurrence kept apart, every pair recounted
 * from scratch after each merge; same tie rule (count, then smaller ids)
 * and same reuse of an existing token's id */
typedef struct {
    int32_t **s;
    int *n;
    int nw, cap;
    int ns;
} occ_list;

static void occ_cb(const char *w, size_t len, void *u) {
    occ_list *o = u;
    if (o->nw == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 1024;
        o->s = realloc(o->s, (size_t)o->cap * sizeof *o->s);
        o->n = realloc(o->n, (size_t)o->cap * sizeof *o->n);
    }
    o->s[o->nw] = malloc(len * sizeof(int32_t));
    for (size_t i = 0; i < len; i++) o->s[o->nw][i] = o->ns + (unsigned char)w[i];
    o->n[o->nw++] = (int)len;
}

static void test_train_vs_naive(const tsr_bpe *b, const char *t, size_t len, int vocab) {
    int ns = 2, V = vocab;
    occ_list o = {NULL, NULL, 0, 0, ns};
    tsr_bpe_pretokenize(t, len, occ_cb, &o);
    int64_t *cnt = malloc((size_t)V * (size_t)V * sizeof *cnt);
    char **piece = calloc((size_t)V, sizeof *piece);
    int *plen = calloc((size_t)V, sizeof *plen);
    uint8_t *done = calloc((size_t)V * (size_t)V, 1);
    for (int i = 0; i < 256; i++) {
        piece[ns + i] = malloc(1);
        piece[ns + i][0] = (char)i;
        plen[ns + i] = 1;
    }
    int nt = ns + 256, nm = 0;
    bool same = true;
    while (nt < V) {
        memset(cnt, 0, (size_t)V * (size_t)V * sizeof *cnt);
        for (int k = 0; k < o.nw; k++)
            for (int i = 0; i + 1 < o.n[k]; i++) cnt[(size_t)o.s[k][i] * (size_t)V + (size_t)o.s[k][i + 1]]++;
        size_t best = 0;
        for (size_t q = 1; q < (size_t)V * (size_t)V; q++)
            if (cnt[q] > cnt[best]) best = q;
        if (cnt[best] < 2) break;
        int32_t a = (int32_t)(best / (size_t)V), bb = (int32_t)(best % (size_t)V);
        int l = plen[a] + plen[bb];
        char *cat = malloc((size_t)l);
        memcpy(cat, piece[a], (size_t)plen[a]);
        memcpy(cat + plen[a], piece[bb], (size_t)plen[bb]);
        int32_t c = -1;
        for (int i = ns; i < nt; i++)
            if (plen[i] == l && memcmp(piece[i], cat, (size_t)l) == 0) c = i;
        if (c < 0) {
            c = nt++;
            piece[c] = cat;
            plen[c] = l;
        } else free(cat);
        if (!done[best]) {
            done[best] = 1;
            if (nm >= b->n_merges || b->merges[nm][0] != a || b->merges[nm][1] != bb || b->merges[nm][2] != c) {
                if (same)
                    fprintf(stderr, "first difference at merge %d: naive (%d,%d)->%d\n", nm, a, bb, c);
                same = false;
            }
            nm++;
        }
        for (int k = 0; k < o.nw; k++) {
            int w = 0;
            for (int r = 0; r < o.n[k];) {
                if (r + 1 < o.n[k] && o.s[k][r] == a && o.s[k][r + 1] == bb) {
                    o.s[k][w++] = c;
                    r += 2;
                } else o.s[k][w++] = o.s[k][r++];
            }
            o.n[k] = w;
        }
    }
    TU_CHECK(same && nm == b->n_merges && nt == b->vocab_size,
             "trainer vs naive trainer: %d vs %d merges, vocab %d vs %d", b->n_merges, nm, b->vocab_size, nt);
    for (int k = 0; k < o.nw; k++) free(o.s[k]);
    free(o.s);
    free(o.n);
    for (int i = 0; i < V; i++) free(piece[i]);
    free(piece);
    free(plen);
    free(cnt);
    free(done);
}

/* ------------------------------------------------------------ file I/O */

static void test_save_load(tsr_bpe *b) {
    char dir[] = "/tmp/tsr_test_bpe_XXXXXX";
    TU_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[64], bad[80];
    snprintf(path, sizeof path, "%s/tok.json", dir);
    snprintf(bad, sizeof bad, "%s/no/such/dir/t.json", dir);
    tsr_status st = tsr_bpe_save(b, path);
    TU_CHECK(st.code == 0, "save: %s", st.msg);
    tsr_bpe l;
    st = tsr_bpe_load(&l, path);
    TU_CHECK(st.code == 0, "load: %s", st.msg);
    if (st.code) return;
    char *j1 = tsr_bpe_to_json(b), *j2 = tsr_bpe_to_json(&l);
    TU_CHECK(strcmp(j1, j2) == 0, "save/load/save JSON differs");
    TU_CHECK(l.hash == b->hash && l.vocab_size == b->vocab_size && l.n_merges == b->n_merges,
             "loaded tokenizer differs (hash, vocab, merges)");
    size_t len;
    char *t = make_text(5000, &len);
    int32_t *x = malloc(len * sizeof *x), *y = malloc(len * sizeof *y);
    size_t nx = tsr_bpe_encode(b, t, len, x), ny = tsr_bpe_encode(&l, t, len, y);
    TU_CHECK(nx == ny && memcmp(x, y, nx * sizeof *x) == 0, "loaded tokenizer encodes differently");

    /* the newer HF layout: merges as [left, right] pairs */
    cJSON *root = cJSON_Parse(j1);
    cJSON *merges = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "merges");
    cJSON *arr = cJSON_CreateArray();
    cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        char *sp = strchr(m->valuestring, ' ');
        *sp = 0;
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(m->valuestring));
        cJSON_AddItemToArray(pair, cJSON_CreateString(sp + 1));
        cJSON_AddItemToArray(arr, pair);
    }
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(root, "model"), "merges", arr);
    char *j3 = cJSON_PrintUnformatted(root);
    tsr_bpe l2;
    st = tsr_bpe_parse(&l2, j3, strlen(j3), "pairs");
    TU_CHECK(st.code == 0 && l2.hash == b->hash, "merges as pairs: %s", st.msg);
    if (!st.code) tsr_bpe_free(&l2);
    cJSON_Delete(root);
    free(j3);
    free(x);
    free(y);
    free(t);
    free(j1);
    free(j2);
    tsr_bpe_free(&l);
    st = tsr_bpe_load(&l, bad);
    TU_CHECK(st.code == TSR_ERR_IO && strstr(st.msg, "no/such"), "missing file: %s", st.msg);
    st = tsr_bpe_save(b, bad);
    TU_CHECK(st.code == TSR_ERR_IO, "save into a missing directory must fail");
    remove(path);
    remove(dir);
}

/* a minimal valid byte-level file: 256 byte tokens, optional extras */
static char *base_json(const char *extra_vocab, const char *merges, const char *extra_top) {
    size_t cap = 16384;
    char *j = malloc(cap);
    size_t k = (size_t)snprintf(j, cap, "{%s\"model\":{\"type\":\"BPE\",\"vocab\":{", extra_top);
    for (int bt = 0; bt < 256; bt++) {
        int cp = tsr_bpe_byte_to_cp(bt);
        char u[8];
        if (cp == '"' || cp == '\\') snprintf(u, sizeof u, "\\%c", cp);
        else if (cp < 0x80) snprintf(u, sizeof u, "%c", cp);
        else snprintf(u, sizeof u, "%c%c", 0xC0 | (cp >> 6), 0x80 | (cp & 0x3F));
        k += (size_t)snprintf(j + k, cap - k, "%s\"%s\":%d", bt ? "," : "", u, bt);
    }
    k += (size_t)snprintf(j + k, cap - k, "%s},\"merges\":[%s]}}", extra_vocab, merges);
    return j;
}

static void expect_bad(const char *json, const char *what, const char *needle) {
    tsr_bpe b;
    tsr_status st = tsr_bpe_parse(&b, json, strlen(json), "t.json");
    TU_CHECK(st.code != 0 && st.msg[0] && (!needle || strstr(st.msg, needle)),
             "malformed (%s) should fail%s%s; got code %d \"%s\"", what, needle ? " mentioning " : "",
             needle ? needle : "", st.code, st.msg);
    if (!st.code) tsr_bpe_free(&b);
}

static void test_malformed(void) {
    char *ok = base_json(",\"ab\":256,\"abc\":257", "\"a b\",\"ab c\"", "");
    tsr_bpe b;
    tsr_status st = tsr_bpe_parse(&b, ok, strlen(ok), "ok");
    TU_CHECK(st.code == 0 && b.vocab_size == 258 && b.n_merges == 2, "minimal valid file: %s", st.msg);
    if (!st.code) {
        int32_t ids[8];
        size_t n = tsr_bpe_encode(&b, "abcab", 5, ids);
        TU_CHECK(n == 2 && ids[0] == 257 && ids[1] == 256, "encode with a hand-made vocab");
        tsr_bpe_free(&b);
    }
    expect_bad("", "empty", "invalid JSON");
    expect_bad("{\"model\":", "cut", "invalid JSON");
    expect_bad("[]", "array", "not a JSON object");
    expect_bad("{}", "no model", "model");
    expect_bad("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{},\"merges\":[]}}", "WordPiece", "BPE");
    expect_bad("{\"model\":{\"type\":\"BPE\",\"merges\":[]}}", "no vocab", "vocab");
    expect_bad("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}}", "no merges", "merges");
    expect_bad("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}", "one token", "byte");
    const char *cases[][4] = {
        /* extra vocab, merges, extra top, expected words */
        {",\"ab\":-1", "", "", "bad id"},
        {",\"ab\":2.5", "", "", "bad id"},
        {",\"ab\":\"x\"", "", "", "bad id"},
        {",\"ab\":99999999", "", "", "bad id"},
        {",\"ab\":300", "", "", "missing"},
        {",\"ab\":5", "", "", "twice"},
        {",\"a b\":256", "", "", "not a byte-level"},
        {",\"\":256", "", "", "not a byte-level"},
        {",\"ab\":256", "\"a c\"", "", "not in the vocab"},
        {",\"ab\":256", "\"a b c\"", "", "two tokens"},
        {",\"ab\":256", "\"ab\"", "", "two tokens"},
        {",\"ab\":256", "7", "", "neither"},
        {",\"ab\":256", "[\"a\"]", "", "neither"},
        {",\"ab\":256", "\"b a\"", "", "not in the vocab"},
        {",\"ab\":256", "\"a b\"", "\"normalizer\":{\"type\":\"NFC\"},", "normalizer"},
        {",\"ab\":256", "\"a b\"", "\"pre_tokenizer\":{\"type\":\"Metaspace\"},", "ByteLevel"},
        {",\"ab\":256", "\"a b\"", "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true},", "add_prefix_space"},
        {",\"ab\":256", "\"a b\"", "\"added_tokens\":{},", "added_tokens"},
        {",\"ab\":256", "\"a b\"", "\"added_tokens\":[{\"id\":3}],", "added_tokens"},
        {",\"ab\":256", "\"a b\"", "\"added_tokens\":[{\"id\":256,\"content\":\"<s>\"}],", "added_tokens"},
        {",\"ab\":256", "\"a b\"", "\"added_tokens\":[{\"id\":258,\"content\":\"<s>\"},{\"id\":258,\"content\":\"<t>\"}],", "twice"},
        {",\"ab\":256", "\"a b\"", "\"added_tokens\":[{\"id\":258,\"content\":\"<s>\"}],", "missing"},
        {",\"ab\":256", "\"a b\"", "\"added_tokens\":[{\"id\":257,\"content\":\"\"}],", "added_tokens"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *j = base_json(cases[i][0], cases[i][1], cases[i][2]);
        char what[64];
        snprintf(what, sizeof what, "case %zu", i);
        expect_bad(j, what, cases[i][3]);
        free(j);
    }
    /* special token both in vocab and added_tokens, same id: fine */
    char *j = base_json(",\"<s>\":256", "", "\"added_tokens\":[{\"id\":256,\"content\":\"<s>\",\"special\":true}],");
    st = tsr_bpe_parse(&b, j, strlen(j), "sp");
    TU_CHECK(st.code == 0 && tsr_bpe_special_id(&b, "<s>") == 256, "special in vocab and added_tokens: %s", st.msg);
    if (!st.code) tsr_bpe_free(&b);
    free(j);

    /* every truncation and random byte flips: a status or a valid tokenizer */
    size_t n = strlen(ok);
    int crashes_would_show = 0, accepted = 0;
    for (size_t cut = 0; cut < n; cut += 3) {
        st = tsr_bpe_parse(&b, ok, cut, "cut");
        if (!st.code) tsr_bpe_free(&b), accepted++;
        else if (!st.msg[0]) crashes_would_show++;
    }
    TU_CHECK(accepted == 0 && crashes_would_show == 0, "truncated files: %d accepted, %d without message",
             accepted, crashes_would_show);
    char *mut = malloc(n + 1);
    int valid = 0;
    for (int it = 0; it < 400; it++) {
        memcpy(mut, ok, n + 1);
        int flips = 1 + (int)(rnd() % 4);
        for (int f = 0; f < flips; f++) mut[rnd() % n] = (char)(rnd() & 0xff);
        st = tsr_bpe_parse(&b, mut, n, "mut");
        if (!st.code) {
            valid++;
            /* whatever was accepted must still round-trip any bytes */
            char r[64];
            for (int q = 0; q < 64; q++) r[q] = (char)(rnd() & 0xff);
            roundtrip(&b, r, 64, "mutated file");
            tsr_bpe_free(&b);
        } else TU_CHECK(st.msg[0], "status without a message");
    }
    free(mut);
    free(ok);
}

int main(void) {
    test_byte_map();
    test_split();
    test_tiny_merges();
    size_t len;
    char *t = make_text(60000, &len);
    tsr_bpe *b = train_small(600, t, len);
    tsr_bpe *b2 = train_small(600, t, len);
    TU_CHECK(b->hash == b2->hash && b->vocab_size == 600, "training twice gives the same tokenizer");
    tsr_bpe_free(b2);
    free(b2);
    test_train_vs_naive(b, t, len, 600);
    test_roundtrip(b);
    test_vs_naive(b);
    test_save_load(b);
    test_malformed();
    tsr_bpe_free(b);
    free(b);
    free(t);
    return tu_finish("bpe");
}
