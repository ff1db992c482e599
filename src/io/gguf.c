/* tessera io: GGUF v3 reader and writer (llama.cpp's model format). The
 * reader walks the image once with a cursor that never reads past the end
 * and bounds every count by the bytes left, so hostile files cost at most
 * about their own size in allocations; see include/tessera/gguf.h. */
#include "tessera/gguf.h"
#include "tessera/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ ggml types */

typedef struct {
    const char *name;
    uint32_t blck, size;
} ggml_traits;

/* indexed by ggml type id; names and sizes as llama.cpp's ggml defines them */
static const ggml_traits k_types[] = {
    [0] = {"F32", 1, 4},         [1] = {"F16", 1, 2},       [2] = {"Q4_0", 32, 18},    [3] = {"Q4_1", 32, 20},
    [6] = {"Q5_0", 32, 22},      [7] = {"Q5_1", 32, 24},    [8] = {"Q8_0", 32, 34},    [9] = {"Q8_1", 32, 36},
    [10] = {"Q2_K", 256, 84},    [11] = {"Q3_K", 256, 110}, [12] = {"Q4_K", 256, 144}, [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},   [15] = {"Q8_K", 256, 292}, [16] = {"IQ2_XXS", 256, 66}, [17] = {"IQ2_XS", 256, 74},
    [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50}, [20] = {"IQ4_NL", 32, 18}, [21] = {"IQ3_S", 256, 110},
    [22] = {"IQ2_S", 256, 82},   [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},     [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},        [27] = {"I64", 1, 8},      [28] = {"F64", 1, 8},      [29] = {"IQ1_M", 256, 56},
    [30] = {"BF16", 1, 2},       [34] = {"TQ1_0", 256, 54}, [35] = {"TQ2_0", 256, 66},
};
#define N_TYPES (sizeof k_types / sizeof *k_types)

const char *tsr_ggml_type_name(uint32_t type) {
    return type < N_TYPES && k_types[type].name ? k_types[type].name : "?";
}

size_t tsr_ggml_nbytes(uint32_t type, uint64_t n) {
    if (type >= N_TYPES || !k_types[type].name || n % k_types[type].blck) return 0;
    uint64_t blocks = n / k_types[type].blck;
    if (blocks > SIZE_MAX / k_types[type].size) return 0;
    return (size_t)(blocks * k_types[type].size);
}

/* bytes of one element of a scalar value type; 0 for STR/ARR/unknown */
static size_t vsize(uint32_t t) {
    static const size_t sz[TSR_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < TSR_GGUF_VTYPE_COUNT ? sz[t] : 0;
}

/* ------------------------------------------------------------ reader */

typedef struct {
    const unsigned char *p;
    size_t len, off;
    const char *name;
    tsr_status st;
} cursor;

static bool fail(cursor *c, const char *what) {
    if (!c->st.code)
        c->st = tsr_errorf(TSR_ERR_FORMAT, "%s: not a valid GGUF file: %s (at byte %zu of %zu)", c->name, what,
                           c->off, c->len);
    return false;
}

static bool take(cursor *c, size_t n, const unsigned char **out) {
    if (n > c->len - c->off) return fail(c, "truncated");
    *out = c->p + c->off;
    c->off += n;
    return true;
}

static bool rd_u32(cursor *c, uint32_t *v) {
    const unsigned char *q;
    if (!take(c, 4, &q)) return false;
    memcpy(v, q, 4);
    return true;
}

static bool rd_u64(cursor *c, uint64_t *v) {
    const unsigned char *q;
    if (!take(c, 8, &q)) return false;
    memcpy(v, q, 8);
    return true;
}

static bool rd_str(cursor *c, tsr_gguf_str *s) {
    uint64_t n;
    if (!rd_u64(c, &n)) return false;
    if (n > c->len - c->off) return fail(c, "string longer than the file");
    const unsigned char *q = NULL;
    if (!take(c, (size_t)n, &q)) return false;
    s->s = (const char *)q;
    s->len = (size_t)n;
    return true;
}

/* a copied, NUL-terminated key or name (no control characters, so it can
 * be quoted in a one-line message; at most 64 KiB) */
static char *dup_name(cursor *c, const tsr_gguf_str *s, const char *what) {
    bool ok = s->len > 0 && s->len <= 65535;
    for (size_t i = 0; ok && i < s->len; i++) ok = (unsigned char)s->s[i] >= 0x20 && s->s[i] != 0x7f;
    if (!ok) {
        fail(c, what);
        return NULL;
    }
    char *d = malloc(s->len + 1);
    if (!d) {
        c->st = tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", c->name);
        return NULL;
    }
    memcpy(d, s->s, s->len);
    d[s->len] = 0;
    return d;
}

/* name lookups: a small open-addressing set over the copied names */
static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* true when name is new; table has cap (power of 2) int slots, -1 empty */
static bool set_insert(int *table, size_t cap, char *const *names, size_t stride, int idx) {
    const char *nm = *(char *const *)((const char *)names + stride * (size_t)idx);
    for (size_t i = hash_str(nm) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (table[i] < 0) {
            table[i] = idx;
            return true;
        }
        if (strcmp(*(char *const *)((const char *)names + stride * (size_t)table[i]), nm) == 0) return false;
    }
}

static bool unique_names(cursor *c, char *const *first, size_t stride, int n, const char *what) {
    if (n < 2) return true;
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap *= 2;
    int *table = malloc(sizeof(int) * cap);
    if (!table) {
        c->st = tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", c->name);
        return false;
    }
    memset(table, 0xff, sizeof(int) * cap);
    bool ok = true;
    for (int i = 0; i < n && ok; i++)
        if (!set_insert(table, cap, first, stride, i)) {
            const char *nm = *(char *const *)((const char *)first + stride * (size_t)i);
            c->st = tsr_errorf(TSR_ERR_FORMAT, "%s: not a valid GGUF file: %s '%.80s' appears twice", c->name, what,
                               nm);
            ok = false;
        }
    free(table);
    return ok;
}

static bool read_value(cursor *c, tsr_gguf_kv *kv) {
    uint32_t t;
    if (!rd_u32(c, &t)) return false;
    if (t >= TSR_GGUF_VTYPE_COUNT) return fail(c, "unknown metadata value type");
    kv->type = (tsr_gguf_vtype)t;
    kv->n = 1;
    if (t == TSR_GGUF_STR) {
        kv->strs = malloc(sizeof *kv->strs);
        if (!kv->strs) return c->st = tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", c->name), false;
        return rd_str(c, kv->strs);
    }
    if (t != TSR_GGUF_ARR) {
        const unsigned char *q;
        if (!take(c, vsize(t), &q)) return false;
        kv->data = q;
        if (t == TSR_GGUF_BOOL && q[0] > 1) return fail(c, "a bool is neither 0 nor 1");
        return true;
    }
    uint32_t at;
    uint64_t n;
    if (!rd_u32(c, &at) || !rd_u64(c, &n)) return false;
    if (at >= TSR_GGUF_VTYPE_COUNT) return fail(c, "unknown array element type");
    if (at == TSR_GGUF_ARR) return fail(c, "nested arrays are not supported");
    kv->arr_type = (tsr_gguf_vtype)at;
    kv->n = n;
    size_t left = c->len - c->off;
    if (at != TSR_GGUF_STR) {
        size_t es = vsize(at);
        if (n > left / es) return fail(c, "array longer than the file");
        const unsigned char *q = NULL;
        if (!take(c, (size_t)n * es, &q)) return false;
        kv->data = q;
        if (at == TSR_GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (q[i] > 1) return fail(c, "a bool is neither 0 nor 1");
        return true;
    }
    if (n > left / 8) return fail(c, "string array longer than the file");
    kv->strs = malloc(sizeof *kv->strs * (size_t)(n ? n : 1));
    if (!kv->strs) return c->st = tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", c->name), false;
    kv->data = c->p + c->off;
    for (uint64_t i = 0; i < n; i++)
        if (!rd_str(c, &kv->strs[i])) return false;
    return true;
}

void tsr_gguf_free(tsr_gguf_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n_kv; i++) {
        free(f->kv[i].key);
        free(f->kv[i].strs);
    }
    free(f->kv);
    for (int i = 0; i < f->n_tensors; i++) free(f->t[i].name);
    free(f->t);
    if (f->map) munmap(f->map, f->map_len);
    memset(f, 0, sizeof *f);
}

static int cmp_off(const void *a, const void *b) {
    const tsr_gguf_tensor *x = *(tsr_gguf_tensor *const *)a, *y = *(tsr_gguf_tensor *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static bool read_tensor_info(cursor *c, tsr_gguf_tensor *t) {
    tsr_gguf_str s;
    uint32_t nd, type;
    if (!rd_str(c, &s) || !(t->name = dup_name(c, &s, "a tensor name is empty, too long or holds a control character")))
        return false;
    if (!rd_u32(c, &nd)) return false;
    if (nd < 1 || nd > 4) return fail(c, "a tensor has not 1 to 4 dimensions");
    t->ndim = (int)nd;
    uint64_t count = 1;
    for (int d = 0; d < 4; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t v;
        if (!rd_u64(c, &v)) return false;
        if (v == 0 || v > (uint64_t)c->len * 8) return fail(c, "a tensor dimension is 0 or larger than the file");
        if (count > UINT64_MAX / v) return fail(c, "a tensor's element count overflows");
        count *= v;
        t->ne[d] = (int64_t)v;
    }
    if (!rd_u32(c, &type)) return false;
    t->type = type;
    if (type >= N_TYPES || !k_types[type].name) return fail(c, "unknown tensor type");
    if (t->ne[0] % k_types[type].blck) return fail(c, "a tensor's row is not a whole number of blocks");
    if (count / k_types[type].blck > (uint64_t)c->len) return fail(c, "a tensor is larger than the file");
    t->nbytes = tsr_ggml_nbytes(type, count);
    return rd_u64(c, &t->offset);
}

tsr_status tsr_gguf_parse(const void *buf, size_t len, const char *name, tsr_gguf_file *f) {
    memset(f, 0, sizeof *f);
    if (!name) name = "gguf";
    cursor c = {buf, len, 0, name, tsr_ok()};
    f->buf = buf;
    f->len = len;
    const unsigned char *magic;
    uint64_t nt, nkv;
    if (len < 4 || memcmp(buf, "GGUF", 4) != 0)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not a GGUF file (no \"GGUF\" magic)", name);
    take(&c, 4, &magic);
    if (!rd_u32(&c, &f->version) || !rd_u64(&c, &nt) || !rd_u64(&c, &nkv)) return c.st;
    if (f->version != 2 && f->version != 3)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: GGUF version %u is not supported (2 and 3 are)", name, f->version);
    /* a metadata entry takes >= 13 bytes (key length, type, a byte), a tensor info >= 32 */
    if (nkv > (len - c.off) / 13 || nt > (len - c.off) / 32) {
        fail(&c, "more metadata entries or tensors than the file can hold");
        return c.st;
    }
    f->kv = calloc((size_t)nkv + 1, sizeof *f->kv);
    f->t = calloc((size_t)nt + 1, sizeof *f->t);
    if (!f->kv || !f->t) {
        tsr_gguf_free(f);
        return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", name);
    }
    for (uint64_t i = 0; i < nkv; i++) {
        tsr_gguf_kv *kv = &f->kv[i];
        f->n_kv = (int)i + 1;
        tsr_gguf_str s;
        if (!rd_str(&c, &s) || !(kv->key = dup_name(&c, &s, "a metadata key is empty, too long or holds a control character")) ||
            !read_value(&c, kv))
            goto bad;
    }
    if (!unique_names(&c, &f->kv[0].key, sizeof *f->kv, f->n_kv, "metadata key")) goto bad;
    f->alignment = 32;
    const tsr_gguf_kv *al = tsr_gguf_find(f, "general.alignment");
    if (al) {
        int64_t a;
        if (tsr_gguf_get_int(f, "general.alignment", &a) != 1 || a < 1 || a > 65536 || (a & (a - 1))) {
            fail(&c, "general.alignment is not a power of 2 up to 65536");
            goto bad;
        }
        f->alignment = (uint32_t)a;
    }
    for (uint64_t i = 0; i < nt; i++) {
        f->n_tensors = (int)i + 1;
        if (!read_tensor_info(&c, &f->t[i])) goto bad;
    }
    if (!unique_names(&c, &f->t[0].name, sizeof *f->t, f->n_tensors, "tensor name")) goto bad;
    size_t data0 = (c.off + f->alignment - 1) / f->alignment * f->alignment;
    if (f->n_tensors > 0 && data0 > len) {
        fail(&c, "no data section");
        goto bad;
    }
    size_t dlen = data0 <= len ? len - data0 : 0;
    /* every tensor aligned, inside the data section, none overlapping */
    tsr_gguf_tensor **order = malloc(sizeof *order * (size_t)(f->n_tensors + 1));
    if (!order) {
        c.st = tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", name);
        goto bad;
    }
    for (int i = 0; i < f->n_tensors; i++) {
        tsr_gguf_tensor *t = &f->t[i];
        order[i] = t;
        if (t->offset % f->alignment || t->offset > dlen || t->nbytes > dlen - t->offset) {
            c.st = tsr_errorf(TSR_ERR_FORMAT, "%s: not a valid GGUF file: tensor '%.80s' (%zu bytes at offset %llu) "
                              "is misaligned or lies outside the data section (%zu bytes)",
                              name, t->name, t->nbytes, (unsigned long long)t->offset, dlen);
            free(order);
            goto bad;
        }
        t->data = (const unsigned char *)buf + data0 + t->offset;
    }
    qsort(order, (size_t)f->n_tensors, sizeof *order, cmp_off);
    for (int i = 1; i < f->n_tensors; i++)
        if (order[i - 1]->offset + order[i - 1]->nbytes > order[i]->offset) {
            c.st = tsr_errorf(TSR_ERR_FORMAT, "%s: not a valid GGUF file: tensors '%.60s' and '%.60s' overlap", name,
                              order[i - 1]->name, order[i]->name);
            free(order);
            goto bad;
        }
    free(order);
    return tsr_ok();
bad:
    tsr_gguf_free(f);
    return c.st.code ? c.st : tsr_errorf(TSR_ERR_FORMAT, "%s: not a valid GGUF file", name);
}

tsr_status tsr_gguf_read(const char *path, tsr_gguf_file *f) {
    memset(f, 0, sizeof *f);
    tsr_status chk = tsr_input_check(path);
    if (chk.code) return chk;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return tsr_errorf(TSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return tsr_errorf(TSR_ERR_IO, "%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return tsr_errorf(TSR_ERR_IO, "%s: cannot map: %s", path, strerror(e));
        }
    }
    close(fd);
    tsr_status st = tsr_gguf_parse(map ? map : "", len, path, f);
    if (st.code) {
        if (map) munmap(map, len);
        return st;
    }
    f->map = map;
    f->map_len = len;
    return st;
}

const tsr_gguf_kv *tsr_gguf_find(const tsr_gguf_file *f, const char *key) {
    for (int i = 0; i < f->n_kv; i++)
        if (strcmp(f->kv[i].key, key) == 0) return &f->kv[i];
    return NULL;
}

const tsr_gguf_tensor *tsr_gguf_find_tensor(const tsr_gguf_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

/* integer value of a scalar of integer type t at q */
static bool int_at(uint32_t t, const unsigned char *q, int64_t *v) {
    switch (t) {
    case TSR_GGUF_U8: case TSR_GGUF_BOOL: *v = q[0]; return true;
    case TSR_GGUF_I8: *v = (int8_t)q[0]; return true;
    case TSR_GGUF_U16: { uint16_t x; memcpy(&x, q, 2); *v = x; return true; }
    case TSR_GGUF_I16: { int16_t x; memcpy(&x, q, 2); *v = x; return true; }
    case TSR_GGUF_U32: { uint32_t x; memcpy(&x, q, 4); *v = x; return true; }
    case TSR_GGUF_I32: { int32_t x; memcpy(&x, q, 4); *v = x; return true; }
    case TSR_GGUF_I64: { int64_t x; memcpy(&x, q, 8); *v = x; return true; }
    case TSR_GGUF_U64: {
        uint64_t x;
        memcpy(&x, q, 8);
        if (x > INT64_MAX) return false;
        *v = (int64_t)x;
        return true;
    }
    default: return false;
    }
}

int tsr_gguf_get_int(const tsr_gguf_file *f, const char *key, int64_t *v) {
    const tsr_gguf_kv *kv = tsr_gguf_find(f, key);
    if (!kv) return 0;
    return kv->type != TSR_GGUF_ARR && kv->type != TSR_GGUF_STR && int_at(kv->type, kv->data, v) ? 1 : -1;
}

int tsr_gguf_get_float(const tsr_gguf_file *f, const char *key, double *v) {
    const tsr_gguf_kv *kv = tsr_gguf_find(f, key);
    if (!kv) return 0;
    if (kv->type == TSR_GGUF_F32) {
        float x;
        memcpy(&x, kv->data, 4);
        *v = x;
        return 1;
    }
    if (kv->type == TSR_GGUF_F64) {
        memcpy(v, kv->data, 8);
        return 1;
    }
    int64_t i;
    if (tsr_gguf_get_int(f, key, &i) != 1) return -1;
    *v = (double)i;
    return 1;
}

int tsr_gguf_get_str(const tsr_gguf_file *f, const char *key, tsr_gguf_str *v) {
    const tsr_gguf_kv *kv = tsr_gguf_find(f, key);
    if (!kv) return 0;
    if (kv->type != TSR_GGUF_STR) return -1;
    *v = kv->strs[0];
    return 1;
}

bool tsr_gguf_arr_int(const tsr_gguf_kv *kv, uint64_t i, int64_t *v) {
    if (kv->type != TSR_GGUF_ARR || i >= kv->n || kv->arr_type == TSR_GGUF_STR) return false;
    return int_at(kv->arr_type, kv->data + i * vsize(kv->arr_type), v);
}

/* ------------------------------------------------------------ writer */

typedef struct {
    char *name;
    uint32_t type;
    int ndim;
    int64_t ne[4];
    void *data;
    size_t nbytes;
} wtensor;

struct tsr_gguf_writer {
    unsigned char *kv; /* serialised metadata */
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    wtensor *t;
    int n_t, cap_t;
};

#define ALIGN 32

tsr_gguf_writer *tsr_gguf_writer_new(void) {
    tsr_gguf_writer *w = calloc(1, sizeof *w);
    TSR_ASSERT(w);
    return w;
}

void tsr_gguf_writer_free(tsr_gguf_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    free(w->kv);
    free(w);
}

static void put(tsr_gguf_writer *w, const void *p, size_t n) {
    if (n == 0) return;
    if (w->kv_len + n > w->kv_cap) {
        w->kv_cap = (w->kv_len + n) * 2 + 256;
        w->kv = realloc(w->kv, w->kv_cap);
        TSR_ASSERT(w->kv);
    }
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
}

static void put_u32(tsr_gguf_writer *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(tsr_gguf_writer *w, uint64_t v) { put(w, &v, 8); }
static void put_str(tsr_gguf_writer *w, const char *s, size_t n) {
    put_u64(w, n);
    put(w, s, n);
}

static void put_key(tsr_gguf_writer *w, const char *key, tsr_gguf_vtype t) {
    put_str(w, key, strlen(key));
    put_u32(w, (uint32_t)t);
    w->n_kv++;
}

void tsr_gguf_set_u32(tsr_gguf_writer *w, const char *key, uint32_t v) {
    put_key(w, key, TSR_GGUF_U32);
    put_u32(w, v);
}

void tsr_gguf_set_f32(tsr_gguf_writer *w, const char *key, float v) {
    put_key(w, key, TSR_GGUF_F32);
    put(w, &v, 4);
}

void tsr_gguf_set_bool(tsr_gguf_writer *w, const char *key, bool v) {
    unsigned char b = v ? 1 : 0;
    put_key(w, key, TSR_GGUF_BOOL);
    put(w, &b, 1);
}

void tsr_gguf_set_str(tsr_gguf_writer *w, const char *key, const char *v) {
    put_key(w, key, TSR_GGUF_STR);
    put_str(w, v, strlen(v));
}

void tsr_gguf_set_arr_str(tsr_gguf_writer *w, const char *key, const char *const *s, const size_t *lens,
                          size_t n) {
    put_key(w, key, TSR_GGUF_ARR);
    put_u32(w, TSR_GGUF_STR);
    put_u64(w, n);
    for (size_t i = 0; i < n; i++) put_str(w, s[i], lens ? lens[i] : strlen(s[i]));
}

void tsr_gguf_set_arr(tsr_gguf_writer *w, const char *key, tsr_gguf_vtype t, const void *data, size_t n) {
    TSR_ASSERT(vsize(t) > 0);
    put_key(w, key, TSR_GGUF_ARR);
    put_u32(w, (uint32_t)t);
    put_u64(w, n);
    put(w, data, n * vsize(t));
}

void tsr_gguf_add_tensor(tsr_gguf_writer *w, const char *name, uint32_t type, int ndim, const int64_t *ne,
                         const void *data) {
    TSR_ASSERT(ndim >= 1 && ndim <= 4);
    uint64_t count = 1;
    for (int d = 0; d < ndim; d++) count *= (uint64_t)ne[d];
    size_t nb = tsr_ggml_nbytes(type, count);
    TSR_ASSERT(nb > 0);
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? w->cap_t * 2 : 64;
        w->t = realloc(w->t, sizeof *w->t * (size_t)w->cap_t);
        TSR_ASSERT(w->t);
    }
    wtensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->type = type;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->ne[d] = ne[d];
    t->data = malloc(nb);
    TSR_ASSERT(t->name && t->data);
    memcpy(t->data, data, nb);
    t->nbytes = nb;
}

static size_t pad_to(size_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

tsr_status tsr_gguf_write(tsr_gguf_writer *w, const char *path) {
    /* header + metadata + tensor infos, padded; then the data section */
    tsr_gguf_writer h = {0};
    put(&h, "GGUF", 4);
    put_u32(&h, 3);
    put_u64(&h, (uint64_t)w->n_t);
    put_u64(&h, w->n_kv);
    put(&h, w->kv, w->kv_len);
    size_t off = 0;
    for (int i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(&h, t->name, strlen(t->name));
        put_u32(&h, (uint32_t)t->ndim);
        for (int d = 0; d < t->ndim; d++) put_u64(&h, (uint64_t)t->ne[d]);
        put_u32(&h, t->type);
        put_u64(&h, off);
        off = pad_to(off + t->nbytes);
    }
    static const unsigned char zeros[ALIGN];
    put(&h, zeros, pad_to(h.kv_len) - h.kv_len);
    unsigned char *data = calloc(1, off ? off : 1);
    if (!data) {
        free(h.kv);
        return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", path);
    }
    off = 0;
    for (int i = 0; i < w->n_t; i++) {
        memcpy(data + off, w->t[i].data, w->t[i].nbytes);
        off = pad_to(off + w->t[i].nbytes);
    }
    tsr_status st = tsr_write_file_atomic(path, h.kv, h.kv_len, data, off);
    free(data);
    free(h.kv);
    return st;
}
