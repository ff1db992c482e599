/* Tests for src/io/corpus.c (file listing, train/validation split by file,
 * tokenisation into id streams, the token cache file):
 * - listing of a made-up tree: sorted, skips hidden/__pycache__/
 *   dist-packages and directory symlinks, keeps file symlinks;
 * - the hash split is deterministic and holds out about 7% (>= 5%);
 * - the committed data/python_val_files.txt agrees with the hash rule and,
 *   where /usr/lib/python3.11 exists, holds out >= 5% of its .py files;
 * - tokenised splits decode back to the files (separators between them),
 *   report the right byte counts, and survive a save/load;
 * - bad token files (magic, size, ids, tokenizer hash) give a status.
 * All comparisons are exact. */
#include "testutil.h"
#include "tessera/corpus.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VAL_LIST "data/python_val_files.txt"

static char g_dir[] = "/tmp/tsr_test_corpus_XXXXXX";

static void put_file(const char *rel, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_dir, rel);
    /* make parent directories */
    for (char *q = p + strlen(g_dir) + 1; *q; q++)
        if (*q == '/') {
            *q = 0;
            mkdir(p, 0755);
            *q = '/';
        }
    FILE *f = fopen(p, "wb");
    TSR_ASSERT(f);
    fputs(text, f);
    fclose(f);
}

static const char *FILES[][2] = {
    {"zeta.py", "import os\n\ndef main():\n    return os.getcwd()\n"},
    {"alpha.py", "class A:\n    x = 1\n    def f(self):\n        return self.x\n"},
    {"pkg/__init__.py", ""},
    {"pkg/mod.py", "# caf\xc3\xa9\nvalue = 'it''s'\n"},
    {"pkg/sub/deep.py", "for i in range(10):\n    print(i)\n"},
    {"pkg/__pycache__/mod.py", "skipped\n"},
    {".hidden/h.py", "skipped\n"},
    {"lib/dist-packages/third.py", "skipped\n"},
    {"notes.txt", "not python\n"},
    {"B.py", "x = 1\n"},
};

static void test_listing(tsr_corpus *c) {
    for (size_t i = 0; i < sizeof FILES / sizeof *FILES; i++) put_file(FILES[i][0], FILES[i][1]);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/pkg", g_dir);
    snprintf(b, sizeof b, "%s/linkdir", g_dir);
    TSR_ASSERT(symlink(a, b) == 0);                 /* not followed */
    snprintf(a, sizeof a, "%s/alpha.py", g_dir);
    snprintf(b, sizeof b, "%s/linked.py", g_dir);
    TSR_ASSERT(symlink(a, b) == 0);                 /* kept */
    char root[512];
    snprintf(root, sizeof root, "%s///", g_dir);
    tsr_status st = tsr_corpus_list(c, root, ".py");
    TU_CHECK(st.code == 0, "list: %s", st.msg);
    const char *want[] = {"B.py", "alpha.py", "linked.py", "pkg/__init__.py", "pkg/mod.py",
                          "pkg/sub/deep.py", "zeta.py"};
    bool ok = c->n_files == 7;
    for (int i = 0; ok && i < 7; i++) ok = strcmp(c->rel[i], want[i]) == 0;
    TU_CHECK(ok, "listing: %d files, first %s", c->n_files, c->n_files ? c->rel[0] : "-");
    TU_CHECK(strcmp(c->root, g_dir) == 0, "root keeps no trailing slash: %s", c->root);
    TU_CHECK(c->n_files == 7 && c->size[1] == (int64_t)strlen(FILES[1][1]), "sizes");

    tsr_corpus e;
    st = tsr_corpus_list(&e, "/nonexistent/dir", ".py");
    TU_CHECK(st.code == TSR_ERR_IO && strstr(st.msg, "/nonexistent/dir"), "missing root: %s", st.msg);
    st = tsr_corpus_list(&e, root, ".nothing");
    TU_CHECK(st.code != 0 && strstr(st.msg, "no *.nothing"), "no files: %s", st.msg);
    snprintf(a, sizeof a, "%s/alpha.py", g_dir);
    st = tsr_corpus_list(&e, a, ".py");
    TU_CHECK(st.code != 0 && strstr(st.msg, "not a directory"), "file as root: %s", st.msg);
}

static void test_hash_split(void) {
    /* on many made-up paths: deterministic, about 7% */
    int val = 0, n = 5000, again = 0;
    char p[64];
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "pkg%d/module_%d.py", i % 37, i);
        bool v = tsr_corpus_hash_is_val(p, TSR_CORPUS_VAL_SEED, TSR_CORPUS_VAL_PERMILLE);
        val += v;
        again += v == tsr_corpus_hash_is_val(p, TSR_CORPUS_VAL_SEED, TSR_CORPUS_VAL_PERMILLE);
    }
    TU_CHECK(again == n, "hash split is not deterministic");
    TU_CHECK(val >= n * 6 / 100 && val <= n * 8 / 100, "hash split holds out %d of %d", val, n);
    /* fixed values: the rule must never change, or the list and the rule part */
    TU_CHECK(tsr_corpus_hash_is_val("ast.py", TSR_CORPUS_VAL_SEED, TSR_CORPUS_VAL_PERMILLE) &&
                 tsr_corpus_hash_is_val("asyncio/tasks.py", TSR_CORPUS_VAL_SEED, TSR_CORPUS_VAL_PERMILLE) &&
                 !tsr_corpus_hash_is_val("os.py", TSR_CORPUS_VAL_SEED, TSR_CORPUS_VAL_PERMILLE),
             "hash rule changed (ast.py and asyncio/tasks.py are held out, os.py is not)");
}

static void test_committed_list(void) {
    FILE *f = fopen(VAL_LIST, "r");
    TU_CHECK(f != NULL, "%s is missing", VAL_LIST);
    if (!f) return;
    char line[1024];
    int n = 0, agree = 0, total = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (sscanf(line, "# Held-out validation files (%*d of %d)", &total) == 1) continue;
        if (!line[0] || line[0] == '#') continue;
        n++;
        agree += tsr_corpus_hash_is_val(line, TSR_CORPUS_VAL_SEED, TSR_CORPUS_VAL_PERMILLE);
    }
    fclose(f);
    TU_CHECK(n > 0 && agree == n, "%s: %d of %d entries follow the hash rule", VAL_LIST, agree, n);
    TU_CHECK(total > 0 && n * 100 >= total * 5, "%s: %d of %d files held out (< 5%%)", VAL_LIST, n, total);

    struct stat sb;
    if (stat("/usr/lib/python3.11/os.py", &sb) != 0) {
        fprintf(stderr, "note: /usr/lib/python3.11 absent, stdlib split not checked\n");
        return;
    }
    tsr_corpus c;
    tsr_status st = tsr_corpus_list(&c, "/usr/lib/python3.11", ".py");
    TU_CHECK(st.code == 0, "list stdlib: %s", st.msg);
    if (st.code) return;
    int missing = -1;
    st = tsr_corpus_split_from_list(&c, VAL_LIST, &missing);
    TU_CHECK(st.code == 0, "split: %s", st.msg);
    int nv = tsr_corpus_count(&c, TSR_SPLIT_VAL, NULL);
    TU_CHECK(nv * 100 >= c.n_files * 5, "stdlib: %d of %d files held out (< 5%%)", nv, c.n_files);
    TU_CHECK(nv + missing == n, "listed %d = present %d + missing %d", n, nv, missing);
    /* same split twice, and the same as the rule on the listed files */
    uint8_t *first = malloc((size_t)c.n_files);
    memcpy(first, c.split, (size_t)c.n_files);
    st = tsr_corpus_split_from_list(&c, VAL_LIST, NULL);
    TU_CHECK(memcmp(first, c.split, (size_t)c.n_files) == 0, "split from the list is not deterministic");
    free(first);
    tsr_corpus_free(&c);
}

/* tokenise the made-up corpus, check everything decodes back */
static void test_tokenize(tsr_corpus *c) {
    /* validation: alpha.py and pkg/mod.py, by a list with a missing entry */
    char list[512];
    snprintf(list, sizeof list, "%s/val.txt", g_dir);
    FILE *f = fopen(list, "w");
    fputs("# comment\n\nalpha.py\r\npkg/mod.py  \ngone.py\n", f);
    fclose(f);
    int missing = -1;
    tsr_status st = tsr_corpus_split_from_list(c, list, &missing);
    TU_CHECK(st.code == 0 && missing == 1, "split from list: %s (missing %d)", st.msg, missing);
    int64_t bv, bt;
    int nv = tsr_corpus_count(c, TSR_SPLIT_VAL, &bv), nt = tsr_corpus_count(c, TSR_SPLIT_TRAIN, &bt);
    TU_CHECK(nv == 2 && nt == 5 && c->split[1] == TSR_SPLIT_VAL && c->split[4] == TSR_SPLIT_VAL,
             "val %d train %d", nv, nt);

    int np;
    char **paths = tsr_corpus_paths(c, TSR_SPLIT_TRAIN, &np);
    const char *sp[] = {"<|endoftext|>"};
    tsr_bpe_train_opts o = {300, sp, 1, 0, false};
    tsr_bpe b;
    st = tsr_bpe_train(&b, (const char *const *)paths, np, &o);
    TU_CHECK(st.code == 0, "train: %s", st.msg);
    tsr_corpus_paths_free(paths, np);
    if (st.code) return;
    int eot = tsr_bpe_special_id(&b, "<|endoftext|>");
    for (int split = 0; split < 2; split++) {
        tsr_corpus_tokens t;
        st = tsr_corpus_tokenize(c, split, &b, eot, &t);
        TU_CHECK(st.code == 0, "tokenize: %s", st.msg);
        if (st.code) continue;
        int64_t bytes;
        int docs = tsr_corpus_count(c, split, &bytes);
        TU_CHECK(t.bytes == (uint64_t)bytes && t.n_docs == (uint32_t)docs, "split %d: %llu bytes %u docs",
                 split, (unsigned long long)t.bytes, t.n_docs);
        /* walk the documents */
        size_t at = 0;
        bool ok = true;
        for (int i = 0; i < c->n_files; i++) {
            if (c->split[i] != split) continue;
            size_t e = at;
            while (e < t.n && t.ids[e] != eot) e++;
            char *buf = malloc(4096);
            size_t m = tsr_bpe_decode(&b, t.ids + at, e - at, buf, 4096);
            const char *want = NULL;
            for (size_t k = 0; k < sizeof FILES / sizeof *FILES; k++)
                if (strcmp(FILES[k][0], c->rel[i]) == 0 || (strcmp(c->rel[i], "linked.py") == 0 && k == 1))
                    want = FILES[k][1];
            ok = ok && want && m == strlen(want) && memcmp(buf, want, m) == 0 && e < t.n;
            free(buf);
            at = e + 1;
        }
        TU_CHECK(ok && at == t.n, "split %d does not decode back to its files", split);

        /* save, load, and the ways a load must fail */
        char path[512];
        snprintf(path, sizeof path, "%s/tok%d.bin", g_dir, split);
        st = tsr_corpus_tokens_save(&t, path);
        TU_CHECK(st.code == 0, "save tokens: %s", st.msg);
        tsr_corpus_tokens l;
        st = tsr_corpus_tokens_load(&l, path, b.hash);
        TU_CHECK(st.code == 0 && l.n == t.n && memcmp(l.ids, t.ids, t.n * 4) == 0 && l.bytes == t.bytes &&
                     l.n_docs == t.n_docs && l.sep_id == eot && l.vocab_size == (uint32_t)b.vocab_size,
                 "load tokens: %s", st.msg);
        tsr_corpus_tokens_free(&l);
        st = tsr_corpus_tokens_load(&l, path, b.hash ^ 1);
        TU_CHECK(st.code == TSR_ERR_FORMAT && strstr(st.msg, "different tokenizer"), "wrong hash: %s", st.msg);

        FILE *fp = fopen(path, "r+b");
        fseek(fp, 64, SEEK_SET);
        int32_t bad = 1 << 30;
        fwrite(&bad, 4, 1, fp);
        fclose(fp);
        st = tsr_corpus_tokens_load(&l, path, 0);
        TU_CHECK(st.code == TSR_ERR_FORMAT && strstr(st.msg, "outside the vocab"), "bad id: %s", st.msg);
        TU_CHECK(truncate(path, 64 + 4 * (off_t)t.n - 2) == 0, "truncate");
        st = tsr_corpus_tokens_load(&l, path, 0);
        TU_CHECK(st.code == TSR_ERR_FORMAT && strstr(st.msg, "header says"), "short file: %s", st.msg);
        TU_CHECK(truncate(path, 10) == 0, "truncate");
        st = tsr_corpus_tokens_load(&l, path, 0);
        TU_CHECK(st.code == TSR_ERR_FORMAT, "tiny file: %s", st.msg);
        fp = fopen(path, "wb");
        fputs("NOTTOKS1 and some more bytes to pass the header length check..........", fp);
        fclose(fp);
        st = tsr_corpus_tokens_load(&l, path, 0);
        TU_CHECK(st.code == TSR_ERR_FORMAT && strstr(st.msg, "magic"), "bad magic: %s", st.msg);

        /* the cache: a stale file is replaced, a good one is read back */
        tsr_corpus_tokens cc;
        st = tsr_corpus_tokens_cached(c, split, &b, eot, path, &cc);
        TU_CHECK(st.code == 0 && cc.n == t.n && memcmp(cc.ids, t.ids, t.n * 4) == 0, "cache rebuild: %s", st.msg);
        tsr_corpus_tokens_free(&cc);
        st = tsr_corpus_tokens_load(&cc, path, b.hash);
        TU_CHECK(st.code == 0 && cc.n == t.n, "cache file written: %s", st.msg);
        tsr_corpus_tokens_free(&cc);
        st = tsr_corpus_tokens_cached(c, split, &b, eot, path, &cc);
        TU_CHECK(st.code == 0 && cc.n == t.n && memcmp(cc.ids, t.ids, t.n * 4) == 0, "cache hit: %s", st.msg);
        tsr_corpus_tokens_free(&cc);
        remove(path);
        tsr_corpus_tokens_free(&t);
    }
    tsr_bpe_free(&b);
}

int main(void) {
    TSR_ASSERT(mkdtemp(g_dir));
    tsr_corpus c;
    test_listing(&c);
    test_hash_split();
    test_committed_list();
    if (c.n_files == 7) test_tokenize(&c);
    tsr_corpus_free(&c);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", g_dir);
    return tu_finish("corpus");
}
