/* tessera corpora (see include/tessera/corpus.h): file listing, the fixed
 * train/validation split by file, tokenisation into one id stream per
 * split and the token cache file. Feeds the LM family's training data. */
#include "tessera/corpus.h"
#include "tessera/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char **rel;
    int64_t *size;
    int n, cap;
} flist;

static void flist_add(flist *l, const char *rel, int64_t size) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->rel = realloc(l->rel, (size_t)l->cap * sizeof *l->rel);
        l->size = realloc(l->size, (size_t)l->cap * sizeof *l->size);
        TSR_ASSERT(l->rel && l->size);
    }
    l->rel[l->n] = strdup(rel);
    TSR_ASSERT(l->rel[l->n]);
    l->size[l->n++] = size;
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && memcmp(s + a - b, suf, b) == 0;
}

static tsr_status walk(flist *l, const char *root, const char *rel, const char *ext, int depth) {
    if (depth > 64) return tsr_errorf(TSR_ERR_IO, "%s/%s: directories nested too deep", root, rel);
    size_t lr = strlen(root), lrel = strlen(rel);
    char *dir = malloc(lr + lrel + 2);
    TSR_ASSERT(dir);
    memcpy(dir, root, lr);
    if (lrel) {
        dir[lr] = '/';
        memcpy(dir + lr + 1, rel, lrel + 1);
    } else dir[lr] = 0;
    DIR *d = opendir(dir);
    if (!d) {
        tsr_status st = tsr_errorf(TSR_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
        free(dir);
        return st;
    }
    tsr_status st = tsr_ok();
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        if (nm[0] == '.') continue;
        size_t ln = strlen(nm);
        char *crel = malloc(lrel + ln + 2), *full = malloc(lr + lrel + ln + 3);
        TSR_ASSERT(crel && full);
        if (lrel) snprintf(crel, lrel + ln + 2, "%s/%s", rel, nm);
        else memcpy(crel, nm, ln + 1);
        snprintf(full, lr + lrel + ln + 3, "%s/%s", root, crel);
        struct stat sl, sf;
        if (lstat(full, &sl) == 0) {
            if (S_ISDIR(sl.st_mode)) {
                if (strcmp(nm, "__pycache__") && strcmp(nm, "site-packages") && strcmp(nm, "dist-packages"))
                    st = walk(l, root, crel, ext, depth + 1);
            } else if (ends_with(nm, ext) && stat(full, &sf) == 0 && S_ISREG(sf.st_mode)) {
                flist_add(l, crel, (int64_t)sf.st_size);
            }
        }
        free(crel);
        free(full);
        if (st.code) break;
    }
    closedir(d);
    free(dir);
    return st;
}

typedef struct {
    char *rel;
    int64_t size;
} fent;

static int cmp_fent(const void *a, const void *b) {
    return strcmp(((const fent *)a)->rel, ((const fent *)b)->rel);
}

void tsr_corpus_free(tsr_corpus *c) {
    if (!c) return;
    for (int i = 0; i < c->n_files; i++) free(c->rel[i]);
    free(c->rel);
    free(c->size);
    free(c->split);
    free(c->root);
    memset(c, 0, sizeof *c);
}

tsr_status tsr_corpus_list(tsr_corpus *c, const char *root, const char *ext) {
    memset(c, 0, sizeof *c);
    struct stat sr;
    if (stat(root, &sr) != 0)
        return tsr_errorf(TSR_ERR_IO, "%s: %s", root, strerror(errno));
    if (!S_ISDIR(sr.st_mode)) return tsr_errorf(TSR_ERR_IO, "%s: not a directory", root);
    /* no trailing slashes, so that root + "/" + rel is clean */
    char *r = strdup(root);
    TSR_ASSERT(r);
    size_t lr = strlen(r);
    while (lr > 1 && r[lr - 1] == '/') r[--lr] = 0;
    flist l = {0};
    tsr_status st = walk(&l, r, "", ext, 0);
    if (!st.code && l.n == 0) st = tsr_errorf(TSR_ERR_IO, "%s: no *%s files found", r, ext);
    if (st.code) {
        for (int i = 0; i < l.n; i++) free(l.rel[i]);
        free(l.rel);
        free(l.size);
        free(r);
        return st;
    }
    fent *fe = malloc((size_t)l.n * sizeof *fe);
    TSR_ASSERT(fe);
    for (int i = 0; i < l.n; i++) fe[i] = (fent){l.rel[i], l.size[i]};
    qsort(fe, (size_t)l.n, sizeof *fe, cmp_fent);
    c->root = r;
    c->n_files = l.n;
    c->rel = malloc((size_t)l.n * sizeof *c->rel);
    c->size = malloc((size_t)l.n * sizeof *c->size);
    c->split = calloc((size_t)l.n, 1);
    TSR_ASSERT(c->rel && c->size && c->split);
    for (int i = 0; i < l.n; i++) {
        c->rel[i] = fe[i].rel;
        c->size[i] = fe[i].size;
    }
    free(fe);
    free(l.rel);
    free(l.size);
    return tsr_ok();
}

bool tsr_corpus_hash_is_val(const char *rel, uint64_t seed, int permille) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int k = 0; k < 8; k++) h = (h ^ ((seed >> (8 * k)) & 0xff)) * 0x100000001b3ull;
    for (const unsigned char *p = (const unsigned char *)rel; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    /* finalise so that the low digits depend on every byte */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return (int)(h % 1000) < permille;
}

void tsr_corpus_split_by_hash(tsr_corpus *c, uint64_t seed, int permille) {
    for (int i = 0; i < c->n_files; i++)
        c->split[i] = tsr_corpus_hash_is_val(c->rel[i], seed, permille) ? TSR_SPLIT_VAL : TSR_SPLIT_TRAIN;
}

static int find_rel(const tsr_corpus *c, const char *rel) {
    int lo = 0, hi = c->n_files - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, k = strcmp(c->rel[mid], rel);
        if (k == 0) return mid;
        if (k < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

tsr_status tsr_corpus_split_from_list(tsr_corpus *c, const char *list_path, int *n_missing) {
    char *d;
    size_t n;
    tsr_status st = tsr_read_file(list_path, &d, &n);
    if (st.code) return st;
    if (memchr(d, 0, n)) {
        free(d);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not a text file", list_path);
    }
    memset(c->split, TSR_SPLIT_TRAIN, (size_t)c->n_files);
    int missing = 0;
    char *line = d;
    while (line < d + n) {
        char *nl = strchr(line, '\n');
        char *end = nl ? nl : d + n;
        char *next = nl ? nl + 1 : d + n;
        while (end > line && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t')) end--;
        *end = 0;
        if (line[0] && line[0] != '#') {
            int k = find_rel(c, line);
            if (k >= 0) c->split[k] = TSR_SPLIT_VAL;
            else missing++;
        }
        line = next;
    }
    free(d);
    if (n_missing) *n_missing = missing;
    return tsr_ok();
}

tsr_status tsr_corpus_write_val_list(const tsr_corpus *c, const char *path) {
    size_t cap = 1024, n = 0;
    char *buf = malloc(cap);
    TSR_ASSERT(buf);
    int nv = tsr_corpus_count(c, TSR_SPLIT_VAL, NULL);
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "# Held-out validation files (%d of %d), paths relative to the corpus root.\n"
                      "# Chosen once by tsr_corpus_hash_is_val(path, seed 0x%llx, %d per mille);\n"
                      "# fixed from then on: a file is in validation iff it is listed here.\n",
                      nv, c->n_files, (unsigned long long)TSR_CORPUS_VAL_SEED, TSR_CORPUS_VAL_PERMILLE);
    for (int i = -1; i < c->n_files; i++) {
        const char *s = i < 0 ? head : c->rel[i];
        if (i >= 0 && c->split[i] != TSR_SPLIT_VAL) continue;
        size_t l = i < 0 ? (size_t)hl : strlen(s);
        while (n + l + 2 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            TSR_ASSERT(buf);
        }
        memcpy(buf + n, s, l);
        n += l;
        if (i >= 0) buf[n++] = '\n';
    }
    tsr_status st = tsr_write_file_atomic(path, buf, n, NULL, 0);
    free(buf);
    return st;
}

int tsr_corpus_count(const tsr_corpus *c, int split, int64_t *bytes) {
    int k = 0;
    int64_t b = 0;
    for (int i = 0; i < c->n_files; i++)
        if (c->split[i] == split) k++, b += c->size[i];
    if (bytes) *bytes = b;
    return k;
}

char **tsr_corpus_paths(const tsr_corpus *c, int split, int *n) {
    int k = tsr_corpus_count(c, split, NULL);
    char **p = malloc(((size_t)k + 1) * sizeof *p);
    TSR_ASSERT(p);
    size_t lr = strlen(c->root);
    k = 0;
    for (int i = 0; i < c->n_files; i++) {
        if (c->split[i] != split) continue;
        size_t l = lr + strlen(c->rel[i]) + 2;
        p[k] = malloc(l);
        TSR_ASSERT(p[k]);
        snprintf(p[k], l, "%s/%s", c->root, c->rel[i]);
        k++;
    }
    *n = k;
    return p;
}

void tsr_corpus_paths_free(char **p, int n) {
    if (!p) return;
    for (int i = 0; i < n; i++) free(p[i]);
    free(p);
}

void tsr_corpus_tokens_free(tsr_corpus_tokens *t) {
    if (!t) return;
    free(t->ids);
    memset(t, 0, sizeof *t);
}

tsr_status tsr_corpus_tokenize(const tsr_corpus *c, int split, tsr_bpe *b, int sep_id,
                               tsr_corpus_tokens *out) {
    memset(out, 0, sizeof *out);
    if (sep_id >= b->vocab_size)
        return tsr_errorf(TSR_ERR_ARG, "separator id %d is outside the vocab (%d)", sep_id, b->vocab_size);
    out->sep_id = sep_id < 0 ? -1 : sep_id;
    out->vocab_size = (uint32_t)b->vocab_size;
    out->tok_hash = b->hash;
    size_t cap = 0;
    size_t lr = strlen(c->root);
    for (int i = 0; i < c->n_files; i++) {
        if (c->split[i] != split) continue;
        size_t l = lr + strlen(c->rel[i]) + 2;
        char *path = malloc(l);
        TSR_ASSERT(path);
        snprintf(path, l, "%s/%s", c->root, c->rel[i]);
        char *d;
        size_t n;
        tsr_status st = tsr_read_file(path, &d, &n);
        free(path);
        if (st.code) {
            tsr_corpus_tokens_free(out);
            return st;
        }
        if (out->n + n + 1 > cap) {
            size_t nc = cap ? cap : 1 << 16;
            while (nc < out->n + n + 1) nc *= 2;
            out->ids = realloc(out->ids, nc * sizeof *out->ids);
            TSR_ASSERT(out->ids);
            cap = nc;
        }
        out->n += tsr_bpe_encode(b, d, n, out->ids + out->n);
        if (sep_id >= 0) out->ids[out->n++] = sep_id;
        out->bytes += n;
        out->n_docs++;
        free(d);
    }
    return tsr_ok();
}

static void put_u32(unsigned char *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(v >> (8 * k));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int k = 0; k < 8; k++) p[k] = (unsigned char)(v >> (8 * k));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) v |= (uint32_t)p[k] << (8 * k);
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int k = 0; k < 8; k++) v |= (uint64_t)p[k] << (8 * k);
    return v;
}

#define TOK_MAGIC "TSRTOKS1"
#define TOK_HEADER 64

static bool little_endian(void) {
    uint16_t x = 1;
    return *(unsigned char *)&x == 1;
}

tsr_status tsr_corpus_tokens_save(const tsr_corpus_tokens *t, const char *path) {
    unsigned char h[TOK_HEADER] = {0};
    memcpy(h, TOK_MAGIC, 8);
    put_u32(h + 8, 1);
    put_u32(h + 12, TOK_HEADER);
    put_u64(h + 16, t->tok_hash);
    put_u64(h + 24, (uint64_t)t->n);
    put_u64(h + 32, t->bytes);
    put_u32(h + 40, t->n_docs);
    put_u32(h + 44, t->vocab_size);
    put_u32(h + 48, (uint32_t)t->sep_id);
    TSR_ASSERT(little_endian()); /* ids are written as they sit in memory */
    return tsr_write_file_atomic(path, h, TOK_HEADER, t->ids, t->n * sizeof *t->ids);
}

tsr_status tsr_corpus_tokens_load(tsr_corpus_tokens *t, const char *path, uint64_t expect_hash) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) return tsr_errorf(TSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char h[TOK_HEADER];
    tsr_status st = tsr_ok();
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || fread(h, 1, TOK_HEADER, f) != TOK_HEADER) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: too short for a token file header", path);
        goto out;
    }
    if (memcmp(h, TOK_MAGIC, 8) != 0) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: not a tessera token file (bad magic)", path);
        goto out;
    }
    if (get_u32(h + 8) != 1 || get_u32(h + 12) != TOK_HEADER) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: unsupported token file version %u", path, get_u32(h + 8));
        goto out;
    }
    t->tok_hash = get_u64(h + 16);
    uint64_t n = get_u64(h + 24);
    t->bytes = get_u64(h + 32);
    t->n_docs = get_u32(h + 40);
    t->vocab_size = get_u32(h + 44);
    t->sep_id = (int32_t)get_u32(h + 48);
    if (expect_hash && t->tok_hash != expect_hash) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: made with a different tokenizer (hash %016llx, expected %016llx)",
                        path, (unsigned long long)t->tok_hash, (unsigned long long)expect_hash);
        goto out;
    }
    if (n > ((uint64_t)1 << 40) || (uint64_t)sb.st_size != TOK_HEADER + 4 * n) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: header says %llu tokens but the file has %lld bytes", path,
                        (unsigned long long)n, (long long)sb.st_size);
        goto out;
    }
    if (t->vocab_size == 0 || t->vocab_size > (1u << 24) ||
        (t->sep_id != -1 && (t->sep_id < 0 || (uint32_t)t->sep_id >= t->vocab_size))) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: bad vocab size %u or separator %d", path, t->vocab_size, t->sep_id);
        goto out;
    }
    t->n = (size_t)n;
    t->ids = malloc((t->n + 1) * sizeof *t->ids);
    if (!t->ids) {
        st = tsr_errorf(TSR_ERR_NOMEM, "%s: cannot allocate %llu tokens", path, (unsigned long long)n);
        goto out;
    }
    TSR_ASSERT(little_endian());
    if (fread(t->ids, sizeof *t->ids, t->n, f) != t->n) {
        st = tsr_errorf(TSR_ERR_IO, "%s: short read", path);
        goto out;
    }
    for (size_t i = 0; i < t->n; i++)
        if (t->ids[i] < 0 || (uint32_t)t->ids[i] >= t->vocab_size) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: token %zu is %d, outside the vocab (%u)", path, i, t->ids[i],
                            t->vocab_size);
            goto out;
        }
out:
    fclose(f);
    if (st.code) tsr_corpus_tokens_free(t);
    return st;
}

tsr_status tsr_corpus_tokens_cached(const tsr_corpus *c, int split, tsr_bpe *b, int sep_id,
                                    const char *path, tsr_corpus_tokens *out) {
    int64_t bytes;
    int docs = tsr_corpus_count(c, split, &bytes);
    tsr_status st = tsr_corpus_tokens_load(out, path, b->hash);
    if (!st.code && out->n_docs == (uint32_t)docs && out->bytes == (uint64_t)bytes &&
        out->sep_id == (sep_id < 0 ? -1 : sep_id))
        return st;
    tsr_corpus_tokens_free(out);
    st = tsr_corpus_tokenize(c, split, b, sep_id, out);
    if (st.code) return st;
    st = tsr_corpus_tokens_save(out, path);
    if (st.code) tsr_corpus_tokens_free(out);
    return st;
}
