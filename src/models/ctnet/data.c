/* tessera ctnet: interaction logs (see include/tessera/ctnet.h): the
 * generic CSV/TSV loader, the MovieLens constructions (ml-latest-small and
 * RecBole's ml-100k), history features, time periods and their counts. */
#include "tessera/ctnet.h"

#include "tessera/fileio.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define F_K (TSR_CTNET_MAX_FIELDS * TSR_CTNET_FIELD_TOKS)

void tsr_ctnet_log_init(tsr_ctnet_log *g) { memset(g, 0, sizeof *g); }

void tsr_ctnet_log_free(tsr_ctnet_log *g) {
    free(g->ts);
    free(g->label);
    free(g->domain);
    free(g->period);
    free(g->src_row);
    free(g->user);
    free(g->item);
    free(g->hist);
    free(g->tok);
    memset(g, 0, sizeof *g);
}

uint32_t tsr_ctnet_hash(const char *field, const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;
    if (field) {
        for (const char *p = field; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
        h = (h ^ 0x1f) * 1099511628211ull; /* separator: "ab"+"c" != "a"+"bc" */
    }
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    uint32_t x = (uint32_t)(h ^ (h >> 32));
    return x ? x : 1u;
}

static void grow(tsr_ctnet_log *g) {
    if (g->n < g->cap) return;
    int64_t cap = g->cap ? g->cap * 2 : 1024;
    g->ts = realloc(g->ts, sizeof(int64_t) * (size_t)cap);
    g->label = realloc(g->label, (size_t)cap);
    g->domain = realloc(g->domain, (size_t)cap);
    g->period = realloc(g->period, sizeof(int32_t) * (size_t)cap);
    g->src_row = realloc(g->src_row, sizeof(int64_t) * (size_t)cap);
    g->user = realloc(g->user, sizeof(uint32_t) * (size_t)cap);
    g->item = realloc(g->item, sizeof(uint32_t) * (size_t)cap);
    g->hist = realloc(g->hist, sizeof(uint32_t) * (size_t)(cap * TSR_CTNET_HIST));
    g->tok = realloc(g->tok, sizeof(uint32_t) * (size_t)(cap * F_K));
    TSR_ASSERT(g->ts && g->label && g->domain && g->period && g->src_row && g->user && g->item && g->hist &&
               g->tok);
    g->cap = cap;
}

/* index of field name, registering it; -1 when the table is full */
static int field_index(tsr_ctnet_log *g, const char *name, size_t len) {
    if (len >= sizeof g->field[0]) len = sizeof g->field[0] - 1;
    for (int f = 0; f < g->n_fields; f++)
        if (strlen(g->field[f]) == len && memcmp(g->field[f], name, len) == 0) return f;
    if (g->n_fields == TSR_CTNET_MAX_FIELDS) return -1;
    memcpy(g->field[g->n_fields], name, len);
    g->field[g->n_fields][len] = 0;
    return g->n_fields++;
}

/* new row (features cleared) */
static int64_t add_row(tsr_ctnet_log *g, uint32_t user, uint32_t item, int dom, int64_t ts,
                       int label) {
    grow(g);
    int64_t i = g->n++;
    g->user[i] = user;
    g->item[i] = item;
    g->domain[i] = (uint8_t)dom;
    g->ts[i] = ts;
    g->label[i] = (uint8_t)label;
    g->period[i] = 0;
    g->src_row[i] = i;
    memset(g->hist + i * TSR_CTNET_HIST, 0, sizeof(uint32_t) * TSR_CTNET_HIST);
    memset(g->tok + i * F_K, 0, sizeof(uint32_t) * F_K);
    return i;
}

/* adds token s[0..len) to field f of row i (dropped when the field is full
 * or the token repeats) */
static void add_tok(tsr_ctnet_log *g, int64_t i, int f, const char *s, size_t len) {
    if (f < 0 || len == 0) return;
    uint32_t h = tsr_ctnet_hash(g->field[f], s, len);
    uint32_t *t = g->tok + i * F_K + f * TSR_CTNET_FIELD_TOKS;
    for (int k = 0; k < TSR_CTNET_FIELD_TOKS; k++) {
        if (t[k] == h) return;
        if (t[k] == 0) {
            t[k] = h;
            return;
        }
    }
}

/* '|'-separated tokens */
static void add_toks(tsr_ctnet_log *g, int64_t i, int f, const char *s, size_t len) {
    size_t a = 0;
    for (size_t j = 0; j <= len; j++)
        if (j == len || s[j] == '|') {
            add_tok(g, i, f, s + a, j - a);
            a = j + 1;
        }
}

static const char *DOMAIN_NAMES[3] = {"source", "target", "other"};

/* stable sort by timestamp, then the time/domain fields and the history of
 * clicks strictly before each row */
static int64_t *g_sort_ts;
static int cmp_rows(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    if (g_sort_ts[x] != g_sort_ts[y]) return g_sort_ts[x] < g_sort_ts[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

#define PERMUTE(arr, T, w)                                                        \
    do {                                                                          \
        T *nv = malloc(sizeof(T) * (size_t)(n + 1) * (size_t)(w));                \
        TSR_ASSERT(nv);                                                           \
        for (int64_t i = 0; i < n; i++)                                           \
            memcpy(nv + i * (w), (arr) + ord[i] * (w), sizeof(T) * (size_t)(w));  \
        free(arr);                                                                \
        (arr) = nv;                                                               \
    } while (0)

typedef struct {
    uint32_t key;
    int32_t slot;
} user_slot;

static void finalize(tsr_ctnet_log *g) {
    const int64_t n = g->n;
    int64_t *ord = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    TSR_ASSERT(ord);
    for (int64_t i = 0; i < n; i++) ord[i] = i;
    g_sort_ts = g->ts;
    qsort(ord, (size_t)n, sizeof *ord, cmp_rows);
    PERMUTE(g->ts, int64_t, 1);
    PERMUTE(g->label, uint8_t, 1);
    PERMUTE(g->domain, uint8_t, 1);
    PERMUTE(g->period, int32_t, 1);
    PERMUTE(g->src_row, int64_t, 1);
    PERMUTE(g->user, uint32_t, 1);
    PERMUTE(g->item, uint32_t, 1);
    PERMUTE(g->hist, uint32_t, TSR_CTNET_HIST);
    PERMUTE(g->tok, uint32_t, F_K);
    free(ord);
    g->cap = n;
    /* time and domain fields */
    int ft = field_index(g, "time", 4), fd = field_index(g, "domain", 6);
    for (int64_t i = 0; i < n; i++) {
        time_t t = (time_t)g->ts[i];
        struct tm tm;
        char buf[16];
        if (gmtime_r(&t, &tm)) {
            int l = snprintf(buf, sizeof buf, "h%d", tm.tm_hour / 3);
            add_tok(g, i, ft, buf, (size_t)l);
            l = snprintf(buf, sizeof buf, "d%d", tm.tm_wday);
            add_tok(g, i, ft, buf, (size_t)l);
        }
        const char *d = DOMAIN_NAMES[g->domain[i]];
        add_tok(g, i, fd, d, strlen(d));
    }
    if (!g->has_history_col) {
        /* per-user ring of the last HIST clicks; open addressing on the hash */
        int64_t cap = 64;
        while (cap < 2 * n + 2) cap *= 2;
        user_slot *tab = calloc((size_t)cap, sizeof *tab);
        uint32_t *ring = calloc((size_t)(n ? n : 1) * TSR_CTNET_HIST, sizeof(uint32_t));
        int32_t *len = calloc((size_t)(n ? n : 1), sizeof(int32_t));
        TSR_ASSERT(tab && ring && len);
        int32_t n_users = 0;
        int64_t a = 0;
        while (a < n) {
            int64_t b = a;
            while (b < n && g->ts[b] == g->ts[a]) b++;
            for (int pass = 0; pass < 2; pass++)
                for (int64_t i = a; i < b; i++) {
                    uint64_t pos = (g->user[i] * 2654435761u) & (uint64_t)(cap - 1);
                    while (tab[pos].key && tab[pos].key != g->user[i]) pos = (pos + 1) & (uint64_t)(cap - 1);
                    if (!tab[pos].key) {
                        tab[pos].key = g->user[i];
                        tab[pos].slot = n_users++;
                    }
                    uint32_t *r = ring + (int64_t)tab[pos].slot * TSR_CTNET_HIST;
                    int32_t *l = len + tab[pos].slot;
                    if (pass == 0) { /* history of row i: most recent first */
                        for (int k = 0; k < *l; k++) g->hist[i * TSR_CTNET_HIST + k] = r[k];
                    } else if (g->label[i]) { /* then rows of this instant join it */
                        memmove(r + 1, r, sizeof(uint32_t) * (TSR_CTNET_HIST - 1));
                        r[0] = g->item[i];
                        if (*l < TSR_CTNET_HIST) (*l)++;
                    }
                }
            a = b;
        }
        free(tab);
        free(ring);
        free(len);
    }
    g->sorted = true;
}

/* ------------------------------------------------------------ CSV / TSV */

typedef struct {
    const char *s;
    size_t len;
} span;

/* splits line into at most max cells; returns the count (max+1 when more) */
static int split(const char *line, size_t len, char sep, span *cells, int max) {
    int n = 0;
    size_t a = 0;
    for (size_t j = 0; j <= len; j++)
        if (j == len || line[j] == sep) {
            if (n == max) return max + 1;
            size_t e = j;
            if (e > a && line[e - 1] == '\r') e--;
            cells[n].s = line + a;
            cells[n].len = e - a;
            n++;
            a = j + 1;
        }
    return n;
}

static bool span_eq(span c, const char *s) { return c.len == strlen(s) && memcmp(c.s, s, c.len) == 0; }

static bool parse_i64(span c, int64_t *out) {
    char buf[32];
    if (c.len == 0 || c.len >= sizeof buf) return false;
    memcpy(buf, c.s, c.len);
    buf[c.len] = 0;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end || errno) return false;
    *out = v;
    return true;
}

#define MAX_COLS 32

tsr_status tsr_ctnet_parse_csv(const char *buf, size_t len, const char *what,
                               const char *source_name, const char *target_name,
                               bool need_label, tsr_ctnet_log *out) {
    tsr_ctnet_log_init(out);
    size_t p = 0, line_no = 0;
    /* header */
    size_t e = p;
    while (e < len && buf[e] != '\n') e++;
    if (e == 0 || len == 0)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: empty file (expected a header line: user,item,domain,timestamp,label,...)", what);
    char sep = memchr(buf, '\t', e) ? '\t' : ',';
    span hdr[MAX_COLS + 1];
    int nc = split(buf, e, sep, hdr, MAX_COLS);
    if (nc > MAX_COLS)
        return tsr_errorf(TSR_ERR_FORMAT, "%s:1: more than %d columns", what, MAX_COLS);
    int c_user = -1, c_item = -1, c_dom = -1, c_ts = -1, c_lab = -1, c_hist = -1;
    int fmap[MAX_COLS];
    for (int j = 0; j < nc; j++) {
        fmap[j] = -2;
        for (size_t k = 0; k < hdr[j].len; k++)
            if (hdr[j].s[k] == '"' || (unsigned char)hdr[j].s[k] < 0x20)
                return tsr_errorf(TSR_ERR_FORMAT, "%s:1: column name %d has a quote or control character (quoting is not supported)", what, j + 1);
        int *slot = span_eq(hdr[j], "user") ? &c_user : span_eq(hdr[j], "item") ? &c_item
                  : span_eq(hdr[j], "domain") ? &c_dom : span_eq(hdr[j], "timestamp") ? &c_ts
                  : span_eq(hdr[j], "label") ? &c_lab : span_eq(hdr[j], "history") ? &c_hist : NULL;
        if (slot) {
            if (*slot >= 0)
                return tsr_errorf(TSR_ERR_FORMAT, "%s:1: column '%.*s' appears twice", what, (int)hdr[j].len, hdr[j].s);
            *slot = j;
        } else if (hdr[j].len == 0 || span_eq(hdr[j], "time")) {
            return tsr_errorf(TSR_ERR_FORMAT, "%s:1: column %d has %s name", what, j + 1,
                              hdr[j].len ? "a reserved ('time')" : "an empty");
        } else {
            fmap[j] = field_index(out, hdr[j].s, hdr[j].len);
            if (fmap[j] < 0 || out->n_fields > TSR_CTNET_MAX_FIELDS - 2) {
                tsr_ctnet_log_free(out);
                return tsr_errorf(TSR_ERR_FORMAT, "%s:1: more than %d feature columns", what, TSR_CTNET_MAX_FIELDS - 2);
            }
        }
    }
    const char *missing = c_user < 0 ? "user" : c_item < 0 ? "item" : c_ts < 0 ? "timestamp"
                        : need_label && c_lab < 0 ? "label" : need_label && c_dom < 0 ? "domain" : NULL;
    if (missing) {
        tsr_ctnet_log_free(out);
        return tsr_errorf(TSR_ERR_FORMAT, "%s:1: no '%s' column (the header must name user, item, domain, timestamp, label)", what, missing);
    }
    out->has_history_col = c_hist >= 0;
    p = e < len ? e + 1 : len;
    line_no = 1;
    span cells[MAX_COLS + 1];
    while (p < len) {
        line_no++;
        e = p;
        while (e < len && buf[e] != '\n') e++;
        size_t ll = e - p;
        if (ll == 0 || (ll == 1 && buf[p] == '\r')) {
            p = e + 1;
            continue;
        }
        int n = split(buf + p, ll, sep, cells, MAX_COLS);
        if (n != nc) {
            tsr_ctnet_log_free(out);
            return tsr_errorf(TSR_ERR_FORMAT, "%s:%zu: %d columns, the header has %d", what, line_no, n > MAX_COLS ? MAX_COLS + 1 : n, nc);
        }
        for (int j = 0; j < n; j++)
            for (size_t k = 0; k < cells[j].len; k++)
                if (cells[j].s[k] == '"' || cells[j].s[k] == 0) {
                    tsr_ctnet_log_free(out);
                    return tsr_errorf(TSR_ERR_FORMAT, "%s:%zu: column %d has a quote or NUL byte (quoting is not supported)", what, line_no, j + 1);
                }
        int64_t ts;
        if (!parse_i64(cells[c_ts], &ts) || ts < 0 || ts > (int64_t)1 << 40) {
            tsr_ctnet_log_free(out);
            return tsr_errorf(TSR_ERR_FORMAT, "%s:%zu: timestamp '%.*s' is not integer unix seconds", what, line_no, (int)(cells[c_ts].len > 40 ? 40 : cells[c_ts].len), cells[c_ts].s);
        }
        int label = 0;
        if (c_lab >= 0) {
            if (span_eq(cells[c_lab], "1")) label = 1;
            else if (!span_eq(cells[c_lab], "0")) {
                tsr_ctnet_log_free(out);
                return tsr_errorf(TSR_ERR_FORMAT, "%s:%zu: label '%.*s' is not 0 or 1", what, line_no, (int)(cells[c_lab].len > 40 ? 40 : cells[c_lab].len), cells[c_lab].s);
            }
        }
        if (cells[c_user].len == 0 || cells[c_item].len == 0) {
            tsr_ctnet_log_free(out);
            return tsr_errorf(TSR_ERR_FORMAT, "%s:%zu: empty %s", what, line_no, cells[c_user].len ? "item" : "user");
        }
        int dom = TSR_CTNET_OTHER;
        if (c_dom < 0) dom = TSR_CTNET_TARGET;
        else if (span_eq(cells[c_dom], target_name)) dom = TSR_CTNET_TARGET;
        else if (span_eq(cells[c_dom], source_name)) dom = TSR_CTNET_SOURCE;
        int64_t i = add_row(out, tsr_ctnet_hash(NULL, cells[c_user].s, cells[c_user].len),
                            tsr_ctnet_hash(NULL, cells[c_item].s, cells[c_item].len), dom, ts, label);
        for (int j = 0; j < n; j++)
            if (fmap[j] >= 0) add_toks(out, i, fmap[j], cells[j].s, cells[j].len);
        if (c_hist >= 0) {
            span h = cells[c_hist];
            size_t a = 0;
            int k = 0;
            for (size_t q = 0; q <= h.len && k < TSR_CTNET_HIST; q++)
                if (q == h.len || h.s[q] == '|') {
                    if (q > a) out->hist[i * TSR_CTNET_HIST + k++] = tsr_ctnet_hash(NULL, h.s + a, q - a);
                    a = q + 1;
                }
        }
        p = e + 1;
    }
    if (out->n == 0) {
        tsr_ctnet_log_free(out);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: no rows after the header", what);
    }
    finalize(out);
    return tsr_ok();
}

tsr_status tsr_ctnet_load_csv(const char *path, const char *source_name, const char *target_name,
                              bool need_label, tsr_ctnet_log *out) {
    char *buf;
    size_t len;
    tsr_status st = tsr_read_file(path, &buf, &len);
    if (st.code) return st;
    st = tsr_ctnet_parse_csv(buf, len, path, source_name, target_name, need_label, out);
    free(buf);
    return st;
}

/* ------------------------------------------------------------ MovieLens */

typedef struct {
    int64_t id;
    char genres[160]; /* '|'-separated */
    int decade;       /* release year / 10 * 10, 0 unknown */
    int32_t tag0, ntag; /* into the sorted tag list */
} ml_item;

typedef struct {
    int64_t item, ts;
    char tag[48];
} ml_tag;

typedef struct {
    int64_t id;
    char feats[96]; /* '|'-separated user tokens (100k) */
} ml_user;

static int cmp_item(const void *a, const void *b) {
    int64_t x = ((const ml_item *)a)->id, y = ((const ml_item *)b)->id;
    return (x > y) - (x < y);
}
static int cmp_user(const void *a, const void *b) {
    int64_t x = ((const ml_user *)a)->id, y = ((const ml_user *)b)->id;
    return (x > y) - (x < y);
}
static int cmp_tag(const void *a, const void *b) {
    const ml_tag *x = a, *y = b;
    if (x->item != y->item) return (x->item > y->item) - (x->item < y->item);
    return (x->ts > y->ts) - (x->ts < y->ts);
}

typedef struct {
    const char *buf;
    size_t len, pos, line;
} lines;
static bool next_line(lines *L, const char **s, size_t *n) {
    while (L->pos < L->len) {
        size_t a = L->pos, e = a;
        while (e < L->len && L->buf[e] != '\n') e++;
        L->pos = e + 1;
        L->line++;
        if (e > a && L->buf[e - 1] == '\r') e--;
        if (e == a) continue;
        *s = L->buf + a;
        *n = e - a;
        return true;
    }
    return false;
}

/* the domain of a primary genre */
static int genre_domain(const char *g, size_t len, const char *sources, const char *target) {
    if (strlen(target) == len && memcmp(g, target, len) == 0) return TSR_CTNET_TARGET;
    size_t a = 0, n = strlen(sources);
    for (size_t j = 0; j <= n; j++)
        if (j == n || sources[j] == '|') {
            if (j - a == len && memcmp(sources + a, g, len) == 0) return TSR_CTNET_SOURCE;
            a = j + 1;
        }
    return TSR_CTNET_OTHER;
}

static ml_item *find_item(ml_item *it, int64_t n, int64_t id) {
    ml_item key = {.id = id};
    return bsearch(&key, it, (size_t)n, sizeof *it, cmp_item);
}

static tsr_status bad_line(const char *path, size_t line, const char *what) {
    return tsr_errorf(TSR_ERR_FORMAT, "%s:%zu: %s", path, line, what);
}

/* last cell of a line whose middle cells may be quoted */
static span last_cell(const char *s, size_t n, char sep) {
    size_t j = n;
    while (j > 0 && s[j - 1] != sep) j--;
    return (span){s + j, n - j};
}

static void add_item_rows_feats(tsr_ctnet_log *g, int64_t i, const ml_item *it, const ml_tag *tags,
                                int fg, int fy, int ftag) {
    add_toks(g, i, fg, it->genres, strlen(it->genres));
    if (it->decade) {
        char b[16];
        int l = snprintf(b, sizeof b, "%d", it->decade);
        add_tok(g, i, fy, b, (size_t)l);
    }
    /* tags written strictly before the row, most recent first */
    for (int32_t k = it->ntag - 1; k >= 0; k--) {
        const ml_tag *t = tags + it->tag0 + k;
        if (t->ts < g->ts[i]) add_tok(g, i, ftag, t->tag, strlen(t->tag));
    }
}

static tsr_status load_latest(const char *dir, const char *sources, const char *target,
                              tsr_ctnet_log *out) {
    char path[1024];
    char *mb = NULL, *rb = NULL, *tb = NULL;
    size_t ml, rl, tl = 0;
    ml_item *items = NULL;
    ml_tag *tags = NULL;
    int64_t n_items = 0, n_tags = 0;
    tsr_status st;
    snprintf(path, sizeof path, "%s/movies.csv", dir);
    st = tsr_read_file(path, &mb, &ml);
    if (st.code) return st;
    lines L = {mb, ml, 0, 0};
    const char *s;
    size_t n;
    int64_t cap = 1024;
    items = malloc(sizeof *items * (size_t)cap);
    TSR_ASSERT(items);
    next_line(&L, &s, &n); /* header */
    while (next_line(&L, &s, &n)) {
        int64_t id;
        span c0 = {s, 0};
        while (c0.len < n && s[c0.len] != ',') c0.len++;
        span gcell = last_cell(s, n, ',');
        if (!parse_i64(c0, &id) || gcell.s <= s + c0.len || gcell.len >= sizeof items->genres) {
            st = bad_line(path, L.line, "expected movieId,title,genres");
            goto done;
        }
        if (n_items == cap) {
            cap *= 2;
            items = realloc(items, sizeof *items * (size_t)cap);
            TSR_ASSERT(items);
        }
        ml_item *it = items + n_items++;
        memset(it, 0, sizeof *it);
        it->id = id;
        memcpy(it->genres, gcell.s, gcell.len);
        /* release year: the last "(yyyy)" in the title */
        for (const char *q = gcell.s - 2; q > s + c0.len + 5; q--)
            if (*q == ')' && q[-5] == '(' && isdigit((unsigned char)q[-4]) && isdigit((unsigned char)q[-1])) {
                it->decade = atoi(q - 4) / 10 * 10;
                break;
            }
    }
    qsort(items, (size_t)n_items, sizeof *items, cmp_item);
    /* tags (optional file) */
    snprintf(path, sizeof path, "%s/tags.csv", dir);
    if (tsr_read_file(path, &tb, &tl).code == 0) {
        L = (lines){tb, tl, 0, 0};
        int64_t tcap = 1024;
        tags = malloc(sizeof *tags * (size_t)tcap);
        TSR_ASSERT(tags);
        next_line(&L, &s, &n);
        while (next_line(&L, &s, &n)) {
            span c[4];
            /* userId,movieId,tag,timestamp: the tag may hold commas (quoted) */
            int k = split(s, n, ',', c, 3);
            span last = last_cell(s, n, ',');
            int64_t item, ts;
            if (k < 3 || !parse_i64(c[1], &item) || !parse_i64(last, &ts)) {
                st = bad_line(path, L.line, "expected userId,movieId,tag,timestamp");
                goto done;
            }
            const char *a = c[2].s, *b = last.s - 1;
            while (a < b && (*a == '"' || *a == ' ')) a++;
            while (b > a && (b[-1] == '"' || b[-1] == ' ')) b--;
            if (n_tags == tcap) {
                tcap *= 2;
                tags = realloc(tags, sizeof *tags * (size_t)tcap);
                TSR_ASSERT(tags);
            }
            ml_tag *t = tags + n_tags++;
            t->item = item;
            t->ts = ts;
            size_t tl2 = (size_t)(b - a) < sizeof t->tag - 1 ? (size_t)(b - a) : sizeof t->tag - 1;
            for (size_t q = 0; q < tl2; q++) t->tag[q] = (char)tolower((unsigned char)a[q]);
            t->tag[tl2] = 0;
        }
        qsort(tags, (size_t)n_tags, sizeof *tags, cmp_tag);
        for (int64_t k = 0; k < n_tags;) {
            int64_t e2 = k;
            while (e2 < n_tags && tags[e2].item == tags[k].item) e2++;
            ml_item *it = find_item(items, n_items, tags[k].item);
            if (it) {
                it->tag0 = (int32_t)k;
                it->ntag = (int32_t)(e2 - k);
            }
            k = e2;
        }
    }
    snprintf(path, sizeof path, "%s/ratings.csv", dir);
    st = tsr_read_file(path, &rb, &rl);
    if (st.code) goto done;
    L = (lines){rb, rl, 0, 0};
    next_line(&L, &s, &n);
    int fg = field_index(out, "genre", 5), ftag = field_index(out, "tag", 3), fy = field_index(out, "year", 4);
    while (next_line(&L, &s, &n)) {
        span c[5];
        int64_t user, item, ts;
        double rating;
        char rbuf[16];
        if (split(s, n, ',', c, 4) != 4 || !parse_i64(c[0], &user) || !parse_i64(c[1], &item) ||
            !parse_i64(c[3], &ts) || c[2].len == 0 || c[2].len >= sizeof rbuf) {
            st = bad_line(path, L.line, "expected userId,movieId,rating,timestamp");
            goto done;
        }
        memcpy(rbuf, c[2].s, c[2].len);
        rbuf[c[2].len] = 0;
        rating = atof(rbuf);
        ml_item *it = find_item(items, n_items, item);
        if (!it) {
            st = bad_line(path, L.line, "movieId not in movies.csv");
            goto done;
        }
        size_t pl = 0;
        while (it->genres[pl] && it->genres[pl] != '|') pl++;
        int dom = genre_domain(it->genres, pl, sources, target);
        int64_t i = add_row(out, tsr_ctnet_hash(NULL, c[0].s, c[0].len),
                            tsr_ctnet_hash(NULL, c[1].s, c[1].len), dom, ts, rating >= 4.0);
        add_item_rows_feats(out, i, it, tags, fg, fy, ftag);
    }
    if (out->n == 0) st = tsr_errorf(TSR_ERR_FORMAT, "%s: no ratings", path);
done:
    free(mb);
    free(rb);
    free(tb);
    free(items);
    free(tags);
    return st;
}

static tsr_status load_100k(const char *dir, const char *sources, const char *target,
                            tsr_ctnet_log *out) {
    char path[1024];
    char *ib = NULL, *ub = NULL, *rb = NULL;
    size_t il, ul, rl;
    ml_item *items = NULL;
    ml_user *users = NULL;
    int64_t n_items = 0, n_users = 0;
    tsr_status st;
    const char *s;
    size_t n;
    snprintf(path, sizeof path, "%s/ml-100k.item", dir);
    st = tsr_read_file(path, &ib, &il);
    if (st.code) return st;
    lines L = {ib, il, 0, 0};
    int64_t cap = 2048;
    items = malloc(sizeof *items * (size_t)cap);
    TSR_ASSERT(items);
    next_line(&L, &s, &n);
    while (next_line(&L, &s, &n)) {
        span c[5];
        int64_t id, year = 0;
        if (split(s, n, '\t', c, 4) != 4 || !parse_i64(c[0], &id) || c[3].len >= sizeof items->genres) {
            st = bad_line(path, L.line, "expected item_id, movie_title, release_year, class (tab-separated)");
            goto done;
        }
        parse_i64(c[2], &year);
        if (n_items == cap) {
            cap *= 2;
            items = realloc(items, sizeof *items * (size_t)cap);
            TSR_ASSERT(items);
        }
        ml_item *it = items + n_items++;
        memset(it, 0, sizeof *it);
        it->id = id;
        it->decade = (int)(year / 10 * 10);
        for (size_t q = 0; q < c[3].len; q++) it->genres[q] = c[3].s[q] == ' ' ? '|' : c[3].s[q];
    }
    qsort(items, (size_t)n_items, sizeof *items, cmp_item);
    snprintf(path, sizeof path, "%s/ml-100k.user", dir);
    st = tsr_read_file(path, &ub, &ul);
    if (st.code) goto done;
    L = (lines){ub, ul, 0, 0};
    cap = 1024;
    users = malloc(sizeof *users * (size_t)cap);
    TSR_ASSERT(users);
    next_line(&L, &s, &n);
    while (next_line(&L, &s, &n)) {
        span c[6];
        int64_t id, age;
        if (split(s, n, '\t', c, 5) != 5 || !parse_i64(c[0], &id) || !parse_i64(c[1], &age) ||
            c[2].len > 8 || c[3].len > 40) {
            st = bad_line(path, L.line, "expected user_id, age, gender, occupation, zip_code (tab-separated)");
            goto done;
        }
        if (n_users == cap) {
            cap *= 2;
            users = realloc(users, sizeof *users * (size_t)cap);
            TSR_ASSERT(users);
        }
        ml_user *u = users + n_users++;
        u->id = id;
        snprintf(u->feats, sizeof u->feats, "a%d|%.*s|%.*s", (int)(age < 18 ? 0 : age < 25 ? 1 : age < 35 ? 2 : age < 45 ? 3 : age < 56 ? 4 : 5),
                 (int)c[2].len, c[2].s, (int)c[3].len, c[3].s);
    }
    qsort(users, (size_t)n_users, sizeof *users, cmp_user);
    snprintf(path, sizeof path, "%s/ml-100k.inter", dir);
    st = tsr_read_file(path, &rb, &rl);
    if (st.code) goto done;
    L = (lines){rb, rl, 0, 0};
    next_line(&L, &s, &n);
    int fg = field_index(out, "genre", 5), fy = field_index(out, "year", 4), fu = field_index(out, "user", 4);
    while (next_line(&L, &s, &n)) {
        span c[5];
        int64_t user, item, rating, ts;
        if (split(s, n, '\t', c, 4) != 4 || !parse_i64(c[0], &user) || !parse_i64(c[1], &item) ||
            !parse_i64(c[2], &rating) || !parse_i64(c[3], &ts)) {
            st = bad_line(path, L.line, "expected user_id, item_id, rating, timestamp (tab-separated integers)");
            goto done;
        }
        ml_item *it = find_item(items, n_items, item);
        ml_user key = {.id = user};
        ml_user *u = bsearch(&key, users, (size_t)n_users, sizeof *users, cmp_user);
        if (!it || !u) {
            st = bad_line(path, L.line, it ? "user_id not in ml-100k.user" : "item_id not in ml-100k.item");
            goto done;
        }
        size_t pl = 0;
        while (it->genres[pl] && it->genres[pl] != '|') pl++;
        int dom = genre_domain(it->genres, pl, sources, target);
        int64_t i = add_row(out, tsr_ctnet_hash(NULL, c[0].s, c[0].len),
                            tsr_ctnet_hash(NULL, c[1].s, c[1].len), dom, ts, rating >= 4);
        add_item_rows_feats(out, i, it, NULL, fg, fy, -1);
        add_toks(out, i, fu, u->feats, strlen(u->feats));
    }
    if (out->n == 0) st = tsr_errorf(TSR_ERR_FORMAT, "%s: no ratings", path);
done:
    free(ib);
    free(ub);
    free(rb);
    free(items);
    free(users);
    return st;
}

tsr_status tsr_ctnet_load_movielens(const char *dir, const char *sources, const char *target,
                                    tsr_ctnet_log *out) {
    tsr_ctnet_log_init(out);
    char path[1024];
    snprintf(path, sizeof path, "%s/ratings.csv", dir);
    FILE *f = fopen(path, "rb");
    tsr_status st;
    if (f) {
        fclose(f);
        st = load_latest(dir, sources, target, out);
    } else {
        snprintf(path, sizeof path, "%s/ml-100k.inter", dir);
        f = fopen(path, "rb");
        if (!f)
            return tsr_errorf(TSR_ERR_IO, "%s: neither ratings.csv (ml-latest-small) nor ml-100k.inter (RecBole ml-100k) found", dir);
        fclose(f);
        st = load_100k(dir, sources, target, out);
    }
    if (st.code) {
        tsr_ctnet_log_free(out);
        return st;
    }
    finalize(out);
    return tsr_ok();
}

/* -------------------------------------------------------------- periods */

tsr_status tsr_ctnet_log_periods(tsr_ctnet_log *g, const char *unit) {
    int kind = !strcmp(unit, "year") ? 0 : !strcmp(unit, "month") ? 1 : !strcmp(unit, "week") ? 2 : -1;
    if (kind < 0)
        return tsr_errorf(TSR_ERR_ARG, "period unit '%s' is not one of year, month, week", unit);
    int64_t t0 = INT64_MAX;
    for (int64_t i = 0; i < g->n; i++)
        if (g->ts[i] < t0) t0 = g->ts[i];
    t0 -= t0 % 86400;
    for (int64_t i = 0; i < g->n; i++) {
        time_t t = (time_t)g->ts[i];
        struct tm tm;
        if (kind == 2) {
            g->period[i] = (int32_t)((g->ts[i] - t0) / (7 * 86400));
        } else if (gmtime_r(&t, &tm)) {
            g->period[i] = kind == 0 ? tm.tm_year + 1900 : (tm.tm_year + 1900) * 12 + tm.tm_mon;
        } else {
            g->period[i] = 0;
    g->src_row[i] = i;
        }
    }
    return tsr_ok();
}

int tsr_ctnet_period_counts(const tsr_ctnet_log *g, tsr_ctnet_period_count **out) {
    int n = 0, cap = 16;
    tsr_ctnet_period_count *c = calloc((size_t)cap, sizeof *c);
    TSR_ASSERT(c);
    for (int64_t i = 0; i < g->n; i++) {
        int j = 0;
        while (j < n && c[j].key != g->period[i]) j++;
        if (j == n) {
            if (n == cap) {
                cap *= 2;
                c = realloc(c, sizeof *c * (size_t)cap);
                TSR_ASSERT(c);
            }
            memset(c + n, 0, sizeof *c);
            c[n++].key = g->period[i];
        }
        c[j].rows[g->domain[i]]++;
        c[j].clicks[g->domain[i]] += g->label[i];
    }
    /* insertion sort by key (few periods) */
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && c[b - 1].key > c[b].key; b--) {
            tsr_ctnet_period_count t = c[b];
            c[b] = c[b - 1];
            c[b - 1] = t;
        }
    *out = c;
    return n;
}
