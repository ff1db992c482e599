/* tessera search: the MovieLens loader for the personalised set. Items are
 * movies (title, genres), users carry their ratings in time order (the
 * history a personalised model reads), and the tag applications become
 * (user, tag) -> movies queries (src/search/queries.c). The data is read
 * from ../shared/data at run time only; it is never shipped. */
#include "search_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Splits one CSV record in place (RFC 4180 quoting, no embedded newlines);
 * returns the number of fields or -1 on a broken quote. */
static int csv_split(char *line, char **f, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == max) return -1;
        if (*p == '"') {
            char *w = ++p;
            f[n++] = w;
            for (;;) {
                if (!*p) return -1;
                if (*p == '"') {
                    if (p[1] == '"') {
                        *w++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                *w++ = *p++;
            }
            *w = 0;
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p) return -1;
            return n;
        }
        f[n++] = p;
        char *c = strchr(p, ',');
        if (!c) return n;
        *c = 0;
        p = c + 1;
    }
}

static bool parse_i64(const char *s, int64_t *v) {
    char *e;
    long long x = strtoll(s, &e, 10);
    if (e == s || *e) return false;
    *v = x;
    return true;
}

typedef struct {
    tsr_catalog *cat;
    const char *path;
    int32_t cap;
} ml_ctx;

static tsr_status movie_line(const char *line, int lineno, void *ud) {
    ml_ctx *c = ud;
    if (lineno == 1 || !line[0]) return tsr_ok(); /* header */
    char *l = srch_strdup(line), *f[4];
    int64_t id;
    if (csv_split(l, f, 4) != 3 || !parse_i64(f[0], &id)) {
        free(l);
        return tsr_errorf(TSR_ERR_FORMAT, "%s:%d: expected movieId,title,genres", c->path, lineno);
    }
    tsr_catalog *cat = c->cat;
    if (cat->n_items == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        cat->items = realloc(cat->items, (size_t)c->cap * sizeof *cat->items);
        TSR_ASSERT(cat->items);
    }
    int32_t i = cat->n_items++;
    tsr_item *it = &cat->items[i];
    memset(it, 0, sizeof *it);
    it->id = srch_strdup(f[0]);
    it->title = srch_strdup(f[1]);
    it->summary = srch_strdup(f[1]);
    it->description = srch_strdup("");
    it->section = srch_strdup("");
    it->priority = srch_strdup("");
    it->appstream = srch_strdup("");
    if (strcmp(f[2], "(no genres listed)") != 0)
        for (char *g = strtok(f[2], "|"); g; g = strtok(NULL, "|")) srch_strv_push(&it->tags, &it->n_tags, g);
    tsr_strmap_put(&cat->by_id, it->id, i);
    free(l);
    return tsr_ok();
}

static int32_t user_index(tsr_catalog *cat, int64_t uid) {
    int32_t u = tsr_catalog_find_user(cat, uid);
    if (u >= 0) return u;
    u = cat->n_users++;
    cat->users = realloc(cat->users, (size_t)cat->n_users * sizeof *cat->users);
    TSR_ASSERT(cat->users);
    memset(&cat->users[u], 0, sizeof cat->users[u]);
    cat->users[u].id = uid;
    char b[32];
    snprintf(b, sizeof b, "%lld", (long long)uid);
    tsr_strmap_put(&cat->user_by_id, b, u);
    return u;
}

typedef struct {
    ml_ctx base;
    double *sum;
} rating_ctx;

static tsr_status rating_line(const char *line, int lineno, void *ud) {
    rating_ctx *c = ud;
    if (lineno == 1 || !line[0]) return tsr_ok();
    char *l = srch_strdup(line), *f[5];
    int64_t uid, ts;
    int nf = csv_split(l, f, 5);
    char *e = NULL;
    double r = nf == 4 ? strtod(f[2], &e) : 0;
    int32_t item = nf == 4 ? tsr_catalog_find(c->base.cat, f[1]) : -1;
    if (nf != 4 || !parse_i64(f[0], &uid) || !parse_i64(f[3], &ts) || !e || *e || item < 0 ||
        !(r >= 0 && r <= 5)) {
        free(l);
        return tsr_errorf(TSR_ERR_FORMAT,
                          "%s:%d: expected userId,movieId,rating,timestamp with a known movie",
                          c->base.path, lineno);
    }
    free(l);
    tsr_catalog *cat = c->base.cat;
    int32_t ui = user_index(cat, uid); /* may move cat->users */
    tsr_user *u = &cat->users[ui];
    if ((u->n & (u->n - 1)) == 0) { /* grow at powers of two */
        int cap = u->n ? 2 * u->n : 1;
        u->items = realloc(u->items, (size_t)cap * sizeof *u->items);
        u->ratings = realloc(u->ratings, (size_t)cap * sizeof *u->ratings);
        u->times = realloc(u->times, (size_t)cap * sizeof *u->times);
        TSR_ASSERT(u->items && u->ratings && u->times);
    }
    u->items[u->n] = item;
    u->ratings[u->n] = (float)r;
    u->times[u->n] = ts;
    u->n++;
    cat->items[item].n_ratings++;
    c->sum[item] += r;
    return tsr_ok();
}

static tsr_status tag_line(const char *line, int lineno, void *ud) {
    ml_ctx *c = ud;
    if (lineno == 1 || !line[0]) return tsr_ok();
    char *l = srch_strdup(line), *f[5];
    int64_t uid;
    int nf = csv_split(l, f, 5);
    int32_t item = nf == 4 ? tsr_catalog_find(c->cat, f[1]) : -1;
    if (nf != 4 || !parse_i64(f[0], &uid) || item < 0) {
        free(l);
        return tsr_errorf(TSR_ERR_FORMAT, "%s:%d: expected userId,movieId,tag,timestamp with a known movie",
                          c->path, lineno);
    }
    tsr_catalog *cat = c->cat;
    int32_t n = cat->n_tag_apps++;
    cat->tag_user = realloc(cat->tag_user, (size_t)(n + 1) * sizeof *cat->tag_user);
    cat->tag_item = realloc(cat->tag_item, (size_t)(n + 1) * sizeof *cat->tag_item);
    cat->tag_text = realloc(cat->tag_text, (size_t)(n + 1) * sizeof *cat->tag_text);
    TSR_ASSERT(cat->tag_user && cat->tag_item && cat->tag_text);
    cat->tag_user[n] = user_index(cat, uid);
    cat->tag_item[n] = item;
    char *t = f[2];
    while (*t == ' ') t++;
    char *s = srch_strdup(t);
    for (char *p = s; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    for (size_t k = strlen(s); k && s[k - 1] == ' '; k--) s[k - 1] = 0;
    cat->tag_text[n] = s;
    free(l);
    return tsr_ok();
}

/* sorts one user's ratings by time (ties by item), insertion sort per run */
static void user_sort(tsr_user *u) {
    for (int i = 1; i < u->n; i++) {
        int32_t it = u->items[i];
        float r = u->ratings[i];
        int64_t t = u->times[i];
        int j = i - 1;
        while (j >= 0 && (u->times[j] > t || (u->times[j] == t && u->items[j] > it))) {
            u->items[j + 1] = u->items[j];
            u->ratings[j + 1] = u->ratings[j];
            u->times[j + 1] = u->times[j];
            j--;
        }
        u->items[j + 1] = it;
        u->ratings[j + 1] = r;
        u->times[j + 1] = t;
    }
}

tsr_status tsr_catalog_load_movielens(tsr_catalog *cat, const char *dir) {
    memset(cat, 0, sizeof *cat);
    cat->kind = TSR_CATALOG_MOVIELENS;
    tsr_strmap_init(&cat->by_id, 1 << 15);
    tsr_strmap_init(&cat->user_by_id, 1 << 11);
    char path[1024];
    ml_ctx mc = {.cat = cat, .path = path};
    snprintf(path, sizeof path, "%s/movies.csv", dir);
    tsr_status st = srch_read_lines(path, movie_line, &mc);
    if (st.code == TSR_OK && cat->n_items == 0) st = tsr_errorf(TSR_ERR_FORMAT, "%s: no movies", path);
    double *sum = NULL;
    if (st.code == TSR_OK) {
        sum = calloc((size_t)cat->n_items, sizeof *sum);
        TSR_ASSERT(sum);
        rating_ctx rc = {.base = {.cat = cat, .path = path}, .sum = sum};
        snprintf(path, sizeof path, "%s/ratings.csv", dir);
        st = srch_read_lines(path, rating_line, &rc);
    }
    if (st.code == TSR_OK) {
        snprintf(path, sizeof path, "%s/tags.csv", dir);
        st = srch_read_lines(path, tag_line, &mc);
    }
    if (st.code != TSR_OK) {
        free(sum);
        tsr_catalog_free(cat);
        return st;
    }
    double *raw = malloc((size_t)cat->n_items * sizeof *raw);
    TSR_ASSERT(raw);
    for (int32_t i = 0; i < cat->n_items; i++) {
        tsr_item *it = &cat->items[i];
        it->rating_mean = it->n_ratings ? (float)(sum[i] / it->n_ratings) : 0.f;
        /* how often a movie is watched, nudged by how well it is liked */
        raw[i] = log1p(it->n_ratings) + (it->n_ratings ? 0.5 * (it->rating_mean - 3.5) : 0);
    }
    srch_rank_normalise(cat, raw);
    free(raw);
    free(sum);
    for (int32_t u = 0; u < cat->n_users; u++) user_sort(&cat->users[u]);
    /* category path: first genre, then the whole genre set */
    tsr_strmap m[2];
    tsr_strmap_init(&m[0], 64);
    tsr_strmap_init(&m[1], 2048);
    cat->n_levels = 2;
    for (int32_t i = 0; i < cat->n_items; i++) {
        tsr_item *it = &cat->items[i];
        char full[512] = "";
        size_t at = 0;
        for (int g = 0; g < it->n_tags && at < sizeof full - 1; g++)
            at += (size_t)snprintf(full + at, sizeof full - at, "%s%s", g ? "|" : "", it->tags[g]);
        it->path[0] = srch_cat_node(cat, &m[0], 0, it->n_tags ? it->tags[0] : "-");
        it->path[1] = srch_cat_node(cat, &m[1], 1, it->n_tags ? full : "-");
        it->path[2] = -1;
    }
    tsr_strmap_free(&m[0]);
    tsr_strmap_free(&m[1]);
    return tsr_ok();
}
