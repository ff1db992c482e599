/* tessera io: safetensors reader and writer. Every checkpoint, training
 * state and imported Hugging Face model goes through here, so the reader
 * treats the file as hostile: the header is validated completely (JSON
 * shape, dtypes, dims, offsets contiguous and inside the data section, no
 * duplicates) before any tensor is exposed, and every problem comes back as
 * a one-line tsr_status naming the file. The writer is atomic (path.tmp,
 * fsync, rename), so a crash never leaves a half-written file at path.
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 *  "__metadata__": {"k": "v"}}, then the data section; offsets are relative
 * to the data section. */
#include "tessera/safetensors.h"

#include "tessera/fileio.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Python's safetensors refuses headers above 100 MB; so do we */
#define ST_MAX_HEADER ((uint64_t)100 << 20)
#define ST_MAX_DIMS 8
/* offsets and dims beyond 2^53 cannot come through a JSON double exactly */
#define ST_MAX_INT 9007199254740992.0
#define ST_ALIGN 64

static const char *const dt_names[] = {"F32", "BF16", "F16", "F64", "I64",
                                       "I32", "I16",  "I8",  "U8",  "BOOL"};
static const size_t dt_sizes[] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};
_Static_assert(sizeof dt_names / sizeof *dt_names == TSR_ST_DTYPE_COUNT, "dtype name table");
_Static_assert(sizeof dt_sizes / sizeof *dt_sizes == TSR_ST_DTYPE_COUNT, "dtype size table");

const char *tsr_st_dtype_name(tsr_st_dtype dt) {
    TSR_ASSERT((unsigned)dt < TSR_ST_DTYPE_COUNT);
    return dt_names[dt];
}

size_t tsr_st_dtype_size(tsr_st_dtype dt) {
    TSR_ASSERT((unsigned)dt < TSR_ST_DTYPE_COUNT);
    return dt_sizes[dt];
}

/* ------------------------------------------------------------------ reader */

static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* names from a hostile file go into one-line messages: printable ASCII only */
static const char *safe_name(char *dst, size_t n, const char *s) {
    size_t j = 0;
    for (size_t i = 0; s[i] && j + 4 < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[j++] = (ch >= 0x20 && ch < 0x7f && ch != '\'') ? (char)ch : '?';
        if (i >= 60) {
            memcpy(dst + j, "...", 3);
            j += 3;
            break;
        }
    }
    dst[j] = 0;
    return dst;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    TSR_ASSERT(d);
    memcpy(d, s, n);
    return d;
}

void tsr_st_free(tsr_st_file *f) {
    if (f->t)
        for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->block);
    memset(f, 0, sizeof *f);
}

/* a JSON number that is an integer in [0, 2^53] */
static bool json_count(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0.0 && d <= ST_MAX_INT) || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

static int cmp_name(const void *a, const void *b) {
    const tsr_st_tensor *x = *(const tsr_st_tensor *const *)a, *y = *(const tsr_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

typedef struct {
    const tsr_st_tensor *t;
    uint64_t begin, end;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

#define FAIL(code, ...)                                                      \
    do {                                                                     \
        st = tsr_errorf(code, __VA_ARGS__);                                  \
        goto done;                                                           \
    } while (0)

/* one tensor entry of the header; fills t (name already set) */
static tsr_status parse_entry(const cJSON *e, const char *what, const char *nm,
                              const unsigned char *data, uint64_t data_len, tsr_st_tensor *t,
                              span *sp) {
    tsr_status st = tsr_ok();
    if (!cJSON_IsObject(e)) FAIL(TSR_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", what, nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !dt->valuestring)
        FAIL(TSR_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", what, nm);
    int k = 0;
    while (k < TSR_ST_DTYPE_COUNT && strcmp(dt_names[k], dt->valuestring) != 0) k++;
    if (k == TSR_ST_DTYPE_COUNT) {
        char b[80];
        FAIL(TSR_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", what, nm,
             safe_name(b, sizeof b, dt->valuestring));
    }
    t->dtype = (tsr_st_dtype)k;
    if (!cJSON_IsArray(sh)) FAIL(TSR_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", what, nm);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS) FAIL(TSR_ERR_FORMAT, "%s: tensor '%s': %d dims (at most %d)", what, nm, nd, ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    bool overflow = false;
    int d = 0;
    for (const cJSON *it = sh->child; it; it = it->next, d++) {
        uint64_t v;
        if (!json_count(it, &v))
            FAIL(TSR_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", what, nm, d);
        t->shape[d] = (int64_t)v;
        if (__builtin_mul_overflow(numel, v, &numel)) overflow = true;
    }
    uint64_t nbytes = 0;
    if (overflow || __builtin_mul_overflow(numel, (uint64_t)dt_sizes[k], &nbytes))
        FAIL(TSR_ERR_FORMAT, "%s: tensor '%s': shape overflows the element count", what, nm);
    uint64_t b, en;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !json_count(off->child, &b) ||
        !json_count(off->child->next, &en))
        FAIL(TSR_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" must be two non-negative integers", what, nm);
    if (b > en) FAIL(TSR_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] are reversed", what, nm,
                     (unsigned long long)b, (unsigned long long)en);
    if (en > data_len)
        FAIL(TSR_ERR_FORMAT, "%s: tensor '%s': data_offsets end %llu is past the data section (%llu bytes)",
             what, nm, (unsigned long long)en, (unsigned long long)data_len);
    if (en - b != nbytes)
        FAIL(TSR_ERR_FORMAT, "%s: tensor '%s': data_offsets span %llu bytes but %s shape needs %llu", what, nm,
             (unsigned long long)(en - b), dt_names[k], (unsigned long long)nbytes);
    t->nbytes = (size_t)nbytes;
    t->data = data + b;
    sp->t = t;
    sp->begin = b;
    sp->end = en;
done:
    return st;
}

/* takes ownership of block; img (inside block) holds len bytes */
static tsr_status parse_owned(void *block, const unsigned char *img, size_t len, const char *what,
                              tsr_st_file *f) {
    tsr_status st = tsr_ok();
    cJSON *root = NULL;
    span *spans = NULL;
    tsr_st_tensor **by_name = NULL;
    char *hcopy = NULL;
    memset(f, 0, sizeof *f);
    f->block = block;
    f->buf = (void *)img;
    f->len = len;
    if (len < 8) FAIL(TSR_ERR_FORMAT, "%s: file is %zu bytes, too short for a safetensors header", what, len);
    uint64_t hlen = le64(img);
    if (hlen > ST_MAX_HEADER)
        FAIL(TSR_ERR_FORMAT, "%s: header length %llu is absurd (limit %llu)", what, (unsigned long long)hlen,
             (unsigned long long)ST_MAX_HEADER);
    if (hlen > len - 8)
        FAIL(TSR_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", what,
             (unsigned long long)hlen, len);
    const char *hdr = (const char *)img + 8;
    uint64_t data_len = len - 8 - hlen;
    const unsigned char *data = img + 8 + hlen;
    if (hlen == 0 || hdr[0] != '{') FAIL(TSR_ERR_FORMAT, "%s: header is not a JSON object", what);
    /* cJSON gets its own NUL-terminated copy: no scan can run past it */
    hcopy = malloc((size_t)hlen + 1);
    TSR_ASSERT(hcopy);
    memcpy(hcopy, hdr, (size_t)hlen);
    hcopy[hlen] = 0;
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(hcopy, (size_t)hlen + 1, &end, 0);
    if (!root) {
        size_t at = (end && end >= hcopy && end <= hcopy + hlen) ? (size_t)(end - hcopy) : 0;
        FAIL(TSR_ERR_FORMAT, "%s: header is not valid JSON (near byte %zu)", what, at);
    }
    for (const char *q = end; q < hcopy + hlen; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r')
            FAIL(TSR_ERR_FORMAT, "%s: header has trailing bytes after the JSON object", what);
    if (!cJSON_IsObject(root)) FAIL(TSR_ERR_FORMAT, "%s: header is not a JSON object", what);

    int n_ent = 0;
    const cJSON *meta = NULL;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string) FAIL(TSR_ERR_FORMAT, "%s: header entry without a name", what);
        if (strcmp(e->string, "__metadata__") == 0) {
            if (meta) FAIL(TSR_ERR_FORMAT, "%s: duplicate \"__metadata__\"", what);
            meta = e;
        } else
            n_ent++;
    }
    if (meta) {
        if (!cJSON_IsObject(meta)) FAIL(TSR_ERR_FORMAT, "%s: \"__metadata__\" is not a JSON object", what);
        int nm = cJSON_GetArraySize(meta);
        f->meta_keys = calloc((size_t)nm + 1, sizeof(char *));
        f->meta_vals = calloc((size_t)nm + 1, sizeof(char *));
        TSR_ASSERT(f->meta_keys && f->meta_vals);
        for (const cJSON *m = meta->child; m; m = m->next) {
            char b[80];
            if (!m->string || !cJSON_IsString(m) || !m->valuestring)
                FAIL(TSR_ERR_FORMAT, "%s: metadata '%s' is not a string", what,
                     safe_name(b, sizeof b, m->string ? m->string : ""));
            for (int i = 0; i < f->n_meta; i++)
                if (strcmp(f->meta_keys[i], m->string) == 0)
                    FAIL(TSR_ERR_FORMAT, "%s: duplicate metadata key '%s'", what, safe_name(b, sizeof b, m->string));
            f->meta_keys[f->n_meta] = dup_str(m->string);
            f->meta_vals[f->n_meta] = dup_str(m->valuestring);
            f->n_meta++;
        }
    }
    f->t = calloc((size_t)n_ent + 1, sizeof *f->t);
    spans = calloc((size_t)n_ent + 1, sizeof *spans);
    by_name = calloc((size_t)n_ent + 1, sizeof *by_name);
    TSR_ASSERT(f->t && spans && by_name);
    for (const cJSON *e = root->child; e; e = e->next) {
        if (e == meta) continue;
        tsr_st_tensor *t = &f->t[f->n];
        t->name = dup_str(e->string);
        by_name[f->n] = t;
        f->n++;
        char nm[80];
        safe_name(nm, sizeof nm, t->name);
        st = parse_entry(e, what, nm, data, data_len, t, &spans[f->n - 1]);
        if (st.code) goto done;
    }
    qsort(by_name, (size_t)f->n, sizeof *by_name, cmp_name);
    for (int i = 1; i < f->n; i++)
        if (strcmp(by_name[i - 1]->name, by_name[i]->name) == 0) {
            char nm[80];
            FAIL(TSR_ERR_FORMAT, "%s: duplicate tensor name '%s'", what, safe_name(nm, sizeof nm, by_name[i]->name));
        }
    /* the data section must be tiled exactly: no overlap, no gap, no tail */
    qsort(spans, (size_t)f->n, sizeof *spans, cmp_span);
    uint64_t pos = 0;
    for (int i = 0; i < f->n; i++) {
        char nm[80];
        safe_name(nm, sizeof nm, spans[i].t->name);
        if (spans[i].begin < pos) FAIL(TSR_ERR_FORMAT, "%s: tensor '%s' overlaps another tensor's data", what, nm);
        if (spans[i].begin > pos)
            FAIL(TSR_ERR_FORMAT, "%s: gap of %llu bytes in the data section before tensor '%s'", what,
                 (unsigned long long)(spans[i].begin - pos), nm);
        pos = spans[i].end;
    }
    if (pos != data_len)
        FAIL(TSR_ERR_FORMAT, "%s: data section has %llu bytes but the tensors cover %llu", what,
             (unsigned long long)data_len, (unsigned long long)pos);
done:
    cJSON_Delete(root);
    free(hcopy);
    free(spans);
    free(by_name);
    if (st.code) tsr_st_free(f);
    return st;
}

/* data section 64-byte aligned inside the allocation */
static size_t align_pad(const unsigned char *img, size_t len) {
    if (len < 8) return 0;
    uint64_t hlen = le64(img);
    if (hlen > ST_MAX_HEADER) return 0;
    return (size_t)((ST_ALIGN - (8 + hlen) % ST_ALIGN) % ST_ALIGN);
}

static void *alloc_block(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, ST_ALIGN, bytes ? bytes : 1) != 0) return NULL;
    return p;
}

tsr_status tsr_st_parse(const void *buf, size_t len, const char *what, tsr_st_file *out) {
    size_t pad = align_pad(buf, len);
    unsigned char *block = alloc_block(len + pad);
    if (!block) {
        memset(out, 0, sizeof *out);
        return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory for %zu bytes", what, len);
    }
    if (len) memcpy(block + pad, buf, len);
    return parse_owned(block, block + pad, len, what, out);
}

tsr_status tsr_st_read(const char *path, tsr_st_file *out) {
    memset(out, 0, sizeof *out);
    tsr_status chk = tsr_input_check(path);
    if (chk.code) return chk;
    FILE *fp = fopen(path, "rb");
    if (!fp) return tsr_errorf(TSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return tsr_errorf(TSR_ERR_IO, "%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    unsigned char head[8] = {0};
    size_t got = fread(head, 1, len < 8 ? len : 8, fp);
    size_t pad = align_pad(head, got);
    unsigned char *block = alloc_block(len + pad);
    if (!block) {
        fclose(fp);
        return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory for %zu bytes", path, len);
    }
    memcpy(block + pad, head, got);
    while (got < len) {
        size_t r = fread(block + pad + got, 1, len - got, fp);
        if (r == 0) break;
        got += r;
    }
    bool err = ferror(fp) != 0;
    fclose(fp);
    if (err || got != len) {
        free(block);
        return tsr_errorf(TSR_ERR_IO, "%s: read %zu of %zu bytes", path, got, len);
    }
    return parse_owned(block, block + pad, len, path, out);
}

const tsr_st_tensor *tsr_st_find(const tsr_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

const char *tsr_st_meta(const tsr_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

bool tsr_st_meta_int(const tsr_st_file *f, const char *key, long lo, long hi, int *out) {
    const char *v = tsr_st_meta(f, key);
    if (!v || !*v || isspace((unsigned char)*v)) return false;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (*end || errno || x < lo || x > hi || x < INT_MIN || x > INT_MAX) return false;
    *out = (int)x;
    return true;
}

bool tsr_st_meta_float(const tsr_st_file *f, const char *key, float *out) {
    const char *v = tsr_st_meta(f, key);
    if (!v || !*v || isspace((unsigned char)*v)) return false;
    char *end;
    float x = strtof(v, &end);
    if (*end || !isfinite(x)) return false;
    *out = x;
    return true;
}

void tsr_st_to_f32(const tsr_st_tensor *t, float *dst) {
    size_t es = dt_sizes[t->dtype], n = t->nbytes / es;
    const unsigned char *s = t->data;
    /* element loads go through memcpy: a foreign file need not align tensors */
    for (size_t i = 0; i < n; i++, s += es) {
        switch (t->dtype) {
        case TSR_ST_F32: memcpy(&dst[i], s, 4); break;
        case TSR_ST_BF16: { uint16_t h; memcpy(&h, s, 2); dst[i] = tsr_bf16_to_f32(h); } break;
        case TSR_ST_F16: { uint16_t h; memcpy(&h, s, 2); dst[i] = tsr_f16_to_f32(h); } break;
        case TSR_ST_F64: { double v; memcpy(&v, s, 8); dst[i] = (float)v; } break;
        case TSR_ST_I64: { int64_t v; memcpy(&v, s, 8); dst[i] = (float)v; } break;
        case TSR_ST_I32: { int32_t v; memcpy(&v, s, 4); dst[i] = (float)v; } break;
        case TSR_ST_I16: { int16_t v; memcpy(&v, s, 2); dst[i] = (float)v; } break;
        case TSR_ST_I8: dst[i] = (float)(int8_t)s[0]; break;
        case TSR_ST_U8: dst[i] = (float)s[0]; break;
        case TSR_ST_BOOL: dst[i] = s[0] ? 1.0f : 0.0f; break;
        default: TSR_ASSERT(0);
        }
    }
}

/* ------------------------------------------------------------------ writer */

typedef struct {
    char *name;
    tsr_st_dtype dt;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    void *data;
    size_t nbytes;
} wtensor;

struct tsr_st_writer {
    wtensor *t;
    int n, cap;
    char **mk, **mv;
    int nm, mcap;
    tsr_status err; /* first misuse, reported by tsr_st_write */
};

tsr_st_writer *tsr_st_writer_new(void) {
    tsr_st_writer *w = calloc(1, sizeof *w);
    TSR_ASSERT(w);
    w->err = tsr_ok();
    return w;
}

void tsr_st_add(tsr_st_writer *w, const char *name, tsr_st_dtype dt, int ndim,
                const int64_t *shape, const void *data) {
    TSR_ASSERT((unsigned)dt < TSR_ST_DTYPE_COUNT && ndim >= 0 && ndim <= ST_MAX_DIMS);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0) {
            if (!w->err.code) w->err = tsr_errorf(TSR_ERR_ARG, "duplicate tensor name '%s'", name);
            return;
        }
    if (strcmp(name, "__metadata__") == 0) {
        if (!w->err.code) w->err = tsr_errorf(TSR_ERR_ARG, "'__metadata__' is reserved as a tensor name");
        return;
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->t = realloc(w->t, sizeof *w->t * (size_t)w->cap);
        TSR_ASSERT(w->t);
    }
    wtensor *t = &w->t[w->n++];
    t->name = dup_str(name);
    t->dt = dt;
    t->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        TSR_ASSERT(shape[i] >= 0);
        t->shape[i] = shape[i];
        numel *= (size_t)shape[i];
    }
    t->nbytes = numel * dt_sizes[dt];
    t->data = malloc(t->nbytes ? t->nbytes : 1);
    TSR_ASSERT(t->data);
    if (t->nbytes) memcpy(t->data, data, t->nbytes);
}

void tsr_st_set_meta(tsr_st_writer *w, const char *key, const char *val) {
    for (int i = 0; i < w->nm; i++)
        if (strcmp(w->mk[i], key) == 0) {
            free(w->mv[i]);
            w->mv[i] = dup_str(val);
            return;
        }
    if (w->nm == w->mcap) {
        w->mcap = w->mcap ? 2 * w->mcap : 8;
        w->mk = realloc(w->mk, sizeof(char *) * (size_t)w->mcap);
        w->mv = realloc(w->mv, sizeof(char *) * (size_t)w->mcap);
        TSR_ASSERT(w->mk && w->mv);
    }
    w->mk[w->nm] = dup_str(key);
    w->mv[w->nm] = dup_str(val);
    w->nm++;
}

void tsr_st_writer_free(tsr_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    for (int i = 0; i < w->nm; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->t);
    free(w->mk);
    free(w->mv);
    free(w);
}

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : 1024;
        b->s = realloc(b->s, b->cap);
        TSR_ASSERT(b->s);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[8];
        if (*p == '"' || *p == '\\') {
            e[0] = '\\', e[1] = (char)*p;
            sb_put(b, e, 2);
        } else if (*p < 0x20) {
            snprintf(e, sizeof e, "\\u%04x", *p);
            sb_put(b, e, 6);
        } else
            sb_put(b, (const char *)p, 1);
    }
    sb_put(b, "\"", 1);
}

/* data layout: larger elements first so every tensor is aligned to its
 * element size (the data section itself starts 8-aligned); ties keep the
 * order of tsr_st_add */
static void data_order(const tsr_st_writer *w, int *ord) {
    int k = 0;
    for (size_t sz = 8; sz >= 1; sz /= 2)
        for (int i = 0; i < w->n; i++)
            if (dt_sizes[w->t[i].dt] == sz) ord[k++] = i;
    TSR_ASSERT(k == w->n);
}

static bool write_all(FILE *fp, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, fp) == n; }

tsr_status tsr_st_write(tsr_st_writer *w, const char *path) {
    if (w->err.code) return tsr_errorf(w->err.code, "%s: %s", path, w->err.msg);
    int *ord = malloc(sizeof(int) * (size_t)(w->n + 1));
    uint64_t *off = malloc(sizeof(uint64_t) * (size_t)(w->n + 1));
    TSR_ASSERT(ord && off);
    data_order(w, ord);
    uint64_t pos = 0;
    for (int k = 0; k < w->n; k++) {
        off[ord[k]] = pos;
        pos += w->t[ord[k]].nbytes;
    }
    sbuf h = {0};
    sb_str(&h, "{");
    if (w->nm) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->nm; i++) {
            if (i) sb_str(&h, ",");
            sb_json_str(&h, w->mk[i]);
            sb_str(&h, ":");
            sb_json_str(&h, w->mv[i]);
        }
        sb_str(&h, "}");
    }
    for (int i = 0; i < w->n; i++) {
        const wtensor *t = &w->t[i];
        char num[64];
        if (i || w->nm) sb_str(&h, ",");
        sb_json_str(&h, t->name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, dt_names[t->dt]);
        sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->shape[d]);
            sb_str(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off[i],
                 (unsigned long long)(off[i] + t->nbytes));
        sb_str(&h, num);
    }
    sb_str(&h, "}");
    while ((8 + h.n) % 8) sb_str(&h, " "); /* as Python does: data starts 8-aligned */
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)h.n >> (8 * i));

    tsr_atomic_file af;
    tsr_status st = tsr_atomic_open(&af, path);
    if (st.code) goto out;
    errno = 0;
    bool ok = write_all(af.f, lenb, 8) && write_all(af.f, h.s, h.n);
    for (int k = 0; ok && k < w->n; k++) ok = write_all(af.f, w->t[ord[k]].data, w->t[ord[k]].nbytes);
    st = tsr_atomic_commit(&af, ok);
out:
    free(h.s);
    free(ord);
    free(off);
    return st;
}
