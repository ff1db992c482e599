/* tessera search: the Debian catalog loader (packages, AppStream
 * components, Policy's virtual package names), reverse-dependency counts,
 * the efficiency (popularity) signal and category paths. The item fields
 * feed both higen's docIDs and ebrm's entities; docs/search.md says why
 * the signal and the paths are built this way. */
#include "search_internal.h"

#include <cJSON.h>
#include <math.h>
#include <string.h>
#include <zlib.h>

/* ------------------------------------------------------------- line reader */

tsr_status srch_read_lines(const char *path, srch_line_fn fn, void *ud) {
    gzFile f = gzopen(path, "rb");
    if (!f) return tsr_errorf(TSR_ERR_IO, "cannot open %s", path);
    size_t cap = 1 << 16, n = 0;
    char *line = malloc(cap);
    TSR_ASSERT(line);
    int lineno = 0;
    tsr_status st = tsr_ok();
    for (;;) {
        if (!gzgets(f, line + n, (int)(cap - n))) {
            int err;
            const char *m = gzerror(f, &err);
            if (err != Z_OK && err != Z_STREAM_END) {
                st = tsr_errorf(TSR_ERR_FORMAT, "%s: read error after line %d (%s)", path, lineno,
                                m);
                break;
            }
            if (n == 0) break;
        } else {
            n += strlen(line + n);
            if (n == cap - 1 && line[n - 1] != '\n') { /* longer than the buffer: grow */
                cap *= 2;
                line = realloc(line, cap);
                TSR_ASSERT(line);
                continue;
            }
        }
        lineno++;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        st = fn(line, lineno, ud);
        n = 0;
        line[0] = 0;
        if (st.code != TSR_OK) break;
    }
    free(line);
    gzclose(f);
    return st;
}

/* ------------------------------------------------------------- helpers */

char *srch_strdup(const char *s) {
    char *d = strdup(s ? s : "");
    TSR_ASSERT(d);
    return d;
}

void srch_strv_push(char ***v, int *n, const char *s) {
    for (int i = 0; i < *n; i++)
        if (strcmp((*v)[i], s) == 0) return; /* sets: deduplicate */
    *v = realloc(*v, (size_t)(*n + 1) * sizeof **v);
    TSR_ASSERT(*v);
    (*v)[(*n)++] = srch_strdup(s);
}

void srch_strv_free(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(x) && x->valuestring ? x->valuestring : "";
}

static void jstrv(const cJSON *o, const char *k, char ***v, int *n, bool lower) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k), *e;
    if (!cJSON_IsArray(a)) return;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsString(e) || !e->valuestring || !e->valuestring[0]) continue;
        char *s = srch_strdup(e->valuestring);
        if (lower)
            for (char *p = s; *p; p++)
                if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
        srch_strv_push(v, n, s);
        free(s);
    }
}

int32_t srch_cat_node(tsr_catalog *cat, tsr_strmap *m, int level, const char *name) {
    int32_t id = tsr_strmap_get(m, name);
    if (id >= 0) return id;
    id = cat->n_cat[level]++;
    cat->cat_names[level] = realloc(cat->cat_names[level], (size_t)cat->n_cat[level] * sizeof(char *));
    TSR_ASSERT(cat->cat_names[level]);
    cat->cat_names[level][id] = srch_strdup(name);
    tsr_strmap_put(m, name, id);
    return id;
}

/* Efficiency = rank percentile of raw (ties share their mean rank), in [0,1]. */
void srch_rank_normalise(tsr_catalog *cat, const double *raw) {
    int32_t n = cat->n_items;
    int32_t *ord = malloc((size_t)n * sizeof *ord);
    TSR_ASSERT(ord);
    for (int32_t i = 0; i < n; i++) ord[i] = i;
    /* stable bottom-up merge sort of the indices by raw */
    int32_t *tmp = malloc((size_t)n * sizeof *tmp);
    TSR_ASSERT(tmp);
    for (int32_t w = 1; w < n; w *= 2) {
        for (int32_t lo = 0; lo < n; lo += 2 * w) {
            int32_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int32_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = raw[ord[j]] < raw[ord[i]] ? ord[j++] : ord[i++];
            while (i < mid) tmp[k++] = ord[i++];
            while (j < hi) tmp[k++] = ord[j++];
        }
        memcpy(ord, tmp, (size_t)n * sizeof *ord);
    }
    for (int32_t i = 0; i < n;) {
        int32_t j = i;
        while (j + 1 < n && raw[ord[j + 1]] == raw[ord[i]]) j++;
        float r = n > 1 ? (float)(0.5 * (i + j) / (n - 1)) : 0.f;
        for (int32_t t = i; t <= j; t++) cat->items[ord[t]].efficiency = r;
        i = j + 1;
    }
    free(tmp);
    free(ord);
}

/* ------------------------------------------------------------- packages */

typedef struct {
    tsr_catalog *cat;
    int32_t cap;
    const char *path;
    /* per item: deduplicated depends / recommends / suggests names */
    char ***deps[3];
    int *n_deps[3];
} pkg_ctx;

static tsr_status pkg_line(const char *line, int lineno, void *ud) {
    pkg_ctx *c = ud;
    if (!line[0]) return tsr_ok();
    cJSON *o = cJSON_Parse(line);
    if (!cJSON_IsObject(o) || !jstr(o, "package")[0]) {
        cJSON_Delete(o);
        return tsr_errorf(TSR_ERR_FORMAT, "%s:%d: not a package object with a \"package\" name",
                          c->path, lineno);
    }
    tsr_catalog *cat = c->cat;
    if (tsr_strmap_get(&cat->by_id, jstr(o, "package")) >= 0) {
        cJSON_Delete(o); /* one item per name; the snapshot has none twice */
        return tsr_ok();
    }
    if (cat->n_items == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        cat->items = realloc(cat->items, (size_t)c->cap * sizeof *cat->items);
        TSR_ASSERT(cat->items);
        for (int k = 0; k < 3; k++) {
            c->deps[k] = realloc(c->deps[k], (size_t)c->cap * sizeof *c->deps[k]);
            c->n_deps[k] = realloc(c->n_deps[k], (size_t)c->cap * sizeof *c->n_deps[k]);
            TSR_ASSERT(c->deps[k] && c->n_deps[k]);
        }
    }
    int32_t i = cat->n_items++;
    tsr_item *it = &cat->items[i];
    memset(it, 0, sizeof *it);
    it->id = srch_strdup(jstr(o, "package"));
    it->title = srch_strdup(it->id);
    it->summary = srch_strdup(jstr(o, "summary"));
    it->description = srch_strdup(jstr(o, "description"));
    it->section = srch_strdup(jstr(o, "section"));
    it->priority = srch_strdup(jstr(o, "priority"));
    it->appstream = srch_strdup("");
    it->source = srch_strdup(jstr(o, "source")[0] ? jstr(o, "source") : it->id);
    it->essential = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "essential"));
    jstrv(o, "tags", &it->tags, &it->n_tags, false);
    jstrv(o, "provides", &it->provides, &it->n_provides, false);
    static const char *const dk[3] = {"depends", "recommends", "suggests"};
    for (int k = 0; k < 3; k++) {
        c->deps[k][i] = NULL;
        c->n_deps[k][i] = 0;
        jstrv(o, dk[k], &c->deps[k][i], &c->n_deps[k][i], false);
    }
    tsr_strmap_put(&cat->by_id, it->id, i);
    cJSON_Delete(o);
    return tsr_ok();
}

/* ------------------------------------------------------------- appstream */

typedef struct {
    tsr_catalog *cat;
    const char *path;
} as_ctx;

static void append_text(char **dst, const char *s) {
    if (!s || !*s) return;
    size_t a = strlen(*dst), b = strlen(s);
    *dst = realloc(*dst, a + b + 2);
    TSR_ASSERT(*dst);
    if (a) (*dst)[a++] = '\n';
    memcpy(*dst + a, s, b + 1);
}

static tsr_status as_line(const char *line, int lineno, void *ud) {
    as_ctx *c = ud;
    if (!line[0]) return tsr_ok();
    cJSON *o = cJSON_Parse(line);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return tsr_errorf(TSR_ERR_FORMAT, "%s:%d: not a JSON object", c->path, lineno);
    }
    int32_t i = tsr_strmap_get(&c->cat->by_id, jstr(o, "package"));
    if (i >= 0) { /* components of packages outside the snapshot are dropped */
        tsr_item *it = &c->cat->items[i];
        append_text(&it->appstream, jstr(o, "name"));
        append_text(&it->appstream, jstr(o, "summary"));
        append_text(&it->appstream, jstr(o, "description"));
        jstrv(o, "categories", &it->as_categories, &it->n_as_categories, false);
        jstrv(o, "keywords", &it->keywords, &it->n_keywords, true);
    }
    cJSON_Delete(o);
    return tsr_ok();
}

/* ------------------------------------------------ virtual package names */

/* Policy's list is YAML with one fixed shape (" - name: X" followed by
 * "   description: Y"); two keys do not justify a YAML library. */
typedef struct {
    tsr_catalog *cat;
} virt_ctx;

static const char *after_key(const char *line, const char *key) {
    while (*line == ' ' || *line == '-') line++;
    size_t n = strlen(key);
    if (strncmp(line, key, n) != 0 || line[n] != ':') return NULL;
    line += n + 1;
    while (*line == ' ') line++;
    return line;
}

static tsr_status virt_line(const char *line, int lineno, void *ud) {
    (void)lineno;
    tsr_catalog *cat = ((virt_ctx *)ud)->cat;
    if (line[0] == '#') return tsr_ok();
    const char *v;
    if (strncmp(line, " - name:", 8) == 0 && (v = after_key(line, "name"))) {
        cat->virt_names = realloc(cat->virt_names, (size_t)(cat->n_virt + 1) * sizeof(char *));
        cat->virt_desc = realloc(cat->virt_desc, (size_t)(cat->n_virt + 1) * sizeof(char *));
        TSR_ASSERT(cat->virt_names && cat->virt_desc);
        cat->virt_names[cat->n_virt] = srch_strdup(v);
        cat->virt_desc[cat->n_virt] = srch_strdup("");
        cat->n_virt++;
    } else if (cat->n_virt && (v = after_key(line, "description")) && line[0] == ' ') {
        free(cat->virt_desc[cat->n_virt - 1]);
        cat->virt_desc[cat->n_virt - 1] = srch_strdup(v);
    }
    return tsr_ok();
}

/* ---------------------------------------------------- efficiency, paths */

static double priority_bonus(const char *p) {
    if (strcmp(p, "required") == 0) return 3;
    if (strcmp(p, "important") == 0) return 2;
    if (strcmp(p, "standard") == 0) return 1;
    return 0;
}

/* Generic toolkit / desktop categories say how an app is built, not what
 * it is for: they are skipped when picking a path's second level. */
static bool as_generic(const char *c) {
    static const char *const g[] = {"GTK", "Qt", "KDE", "GNOME", "XFCE", "Java", "ConsoleOnly",
                                    "X-GNOME-Utilities", "Application", "Motif", "LXQt", "MATE"};
    for (size_t i = 0; i < sizeof g / sizeof *g; i++)
        if (strcmp(c, g[i]) == 0) return true;
    return false;
}

/* The second path level: what the package is for. AppStream's curated main
 * category first, then the debtags facets that name a purpose, in this
 * order; "-" when none applies. */
static void second_level(const tsr_item *it, char *out, size_t n) {
    for (int i = 0; i < it->n_as_categories; i++)
        if (!as_generic(it->as_categories[i])) {
            snprintf(out, n, "app::%s", it->as_categories[i]);
            return;
        }
    static const char *const facets[] = {"use::", "game::", "field::", "works-with::", "devel::",
                                         "role::"};
    for (size_t f = 0; f < sizeof facets / sizeof *facets; f++) {
        const char *best = NULL;
        for (int i = 0; i < it->n_tags; i++)
            if (strncmp(it->tags[i], facets[f], strlen(facets[f])) == 0 &&
                !strstr(it->tags[i], "TODO") && (!best || strcmp(it->tags[i], best) < 0))
                best = it->tags[i];
        if (best) {
            snprintf(out, n, "%s", best);
            return;
        }
    }
    snprintf(out, n, "-");
}

static void debian_paths(tsr_catalog *cat) {
    tsr_strmap m[2];
    tsr_strmap_init(&m[0], 128);
    tsr_strmap_init(&m[1], 4096);
    cat->n_levels = 2;
    char sec[96], lvl2[160], full[256];
    for (int32_t i = 0; i < cat->n_items; i++) {
        tsr_item *it = &cat->items[i];
        const char *s = strrchr(it->section, '/'); /* "contrib/net" -> "net" */
        snprintf(sec, sizeof sec, "%s", s ? s + 1 : (it->section[0] ? it->section : "-"));
        second_level(it, lvl2, sizeof lvl2);
        snprintf(full, sizeof full, "%s/%s", sec, lvl2);
        it->path[0] = srch_cat_node(cat, &m[0], 0, sec);
        it->path[1] = srch_cat_node(cat, &m[1], 1, full);
        it->path[2] = -1;
    }
    tsr_strmap_free(&m[0]);
    tsr_strmap_free(&m[1]);
}

tsr_status tsr_catalog_load_debian(tsr_catalog *cat, const char *dir) {
    memset(cat, 0, sizeof *cat);
    cat->kind = TSR_CATALOG_DEBIAN;
    tsr_strmap_init(&cat->by_id, 1 << 17);
    char path[1024];
    pkg_ctx pc = {.cat = cat, .path = path};
    snprintf(path, sizeof path, "%s/packages.jsonl.gz", dir);
    tsr_status st = srch_read_lines(path, pkg_line, &pc);
    if (st.code == TSR_OK && cat->n_items == 0)
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: no packages", path);
    if (st.code == TSR_OK) {
        /* reverse counts: each package counted once per dependant */
        for (int32_t i = 0; i < cat->n_items; i++) {
            bool task = strncmp(cat->items[i].id, "task-", 5) == 0;
            for (int k = 0; k < 3; k++)
                for (int d = 0; d < pc.n_deps[k][i]; d++) {
                    int32_t j = tsr_strmap_get(&cat->by_id, pc.deps[k][i][d]);
                    if (j < 0 || j == i) continue;
                    tsr_item *t = &cat->items[j];
                    if (k == 0) t->n_rdepends++;
                    else if (k == 1) t->n_rrecommends++;
                    else t->n_rsuggests++;
                    if (task && k < 2) t->n_tasks++;
                }
        }
    }
    if (st.code == TSR_OK) /* recommends and suggests stay with the items (the I2I constructions) */
        for (int32_t i = 0; i < cat->n_items; i++) {
            tsr_item *it = &cat->items[i];
            it->recommends = pc.deps[1][i], it->n_recommends = pc.n_deps[1][i];
            it->suggests = pc.deps[2][i], it->n_suggests = pc.n_deps[2][i];
            pc.deps[1][i] = pc.deps[2][i] = NULL;
            pc.n_deps[1][i] = pc.n_deps[2][i] = 0;
        }
    for (int k = 0; k < 3; k++) {
        for (int32_t i = 0; i < cat->n_items; i++) srch_strv_free(pc.deps[k][i], pc.n_deps[k][i]);
        free(pc.deps[k]);
        free(pc.n_deps[k]);
    }
    if (st.code == TSR_OK) {
        as_ctx ac = {.cat = cat, .path = path};
        snprintf(path, sizeof path, "%s/appstream.jsonl.gz", dir);
        st = srch_read_lines(path, as_line, &ac);
    }
    if (st.code == TSR_OK) {
        virt_ctx vc = {.cat = cat};
        snprintf(path, sizeof path, "%s/virtual-package-names-list.yaml.gz", dir);
        st = srch_read_lines(path, virt_line, &vc);
        if (st.code == TSR_OK && cat->n_virt == 0)
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: no virtual package names", path);
    }
    if (st.code != TSR_OK) {
        tsr_catalog_free(cat);
        return st;
    }
    double *raw = malloc((size_t)cat->n_items * sizeof *raw);
    TSR_ASSERT(raw);
    for (int32_t i = 0; i < cat->n_items; i++) {
        const tsr_item *it = &cat->items[i];
        raw[i] = log1p(it->n_rdepends + 0.5 * it->n_rrecommends + 0.25 * it->n_rsuggests) +
                 (it->n_tasks < 3 ? it->n_tasks : 3) + priority_bonus(it->priority) +
                 (it->essential ? 2 : 0);
    }
    srch_rank_normalise(cat, raw);
    free(raw);
    debian_paths(cat);
    return tsr_ok();
}

void tsr_catalog_free(tsr_catalog *cat) {
    for (int32_t i = 0; i < cat->n_items; i++) {
        tsr_item *it = &cat->items[i];
        free(it->id);
        free(it->title);
        free(it->summary);
        free(it->description);
        free(it->section);
        free(it->priority);
        free(it->appstream);
        srch_strv_free(it->tags, it->n_tags);
        srch_strv_free(it->as_categories, it->n_as_categories);
        srch_strv_free(it->keywords, it->n_keywords);
        srch_strv_free(it->provides, it->n_provides);
        free(it->source);
        srch_strv_free(it->recommends, it->n_recommends);
        srch_strv_free(it->suggests, it->n_suggests);
    }
    free(cat->items);
    tsr_strmap_free(&cat->by_id);
    for (int l = 0; l < TSR_CAT_LEVELS; l++) srch_strv_free(cat->cat_names[l], cat->n_cat[l]);
    srch_strv_free(cat->virt_names, cat->n_virt);
    srch_strv_free(cat->virt_desc, cat->n_virt);
    for (int32_t u = 0; u < cat->n_users; u++) {
        free(cat->users[u].items);
        free(cat->users[u].ratings);
        free(cat->users[u].times);
    }
    free(cat->users);
    tsr_strmap_free(&cat->user_by_id);
    free(cat->tag_user);
    free(cat->tag_item);
    srch_strv_free(cat->tag_text, cat->n_tag_apps);
    memset(cat, 0, sizeof *cat);
}

int32_t tsr_catalog_find(const tsr_catalog *cat, const char *id) {
    return tsr_strmap_get(&cat->by_id, id);
}

int32_t tsr_catalog_find_user(const tsr_catalog *cat, int64_t user_id) {
    char b[32];
    snprintf(b, sizeof b, "%lld", (long long)user_id);
    return tsr_strmap_get(&cat->user_by_id, b);
}
