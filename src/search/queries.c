/* tessera search: query-set constructions over a catalog, each with known
 * relevant items, and the split by query text. docs/search.md describes
 * each construction, the field its labels come from and the fields hidden
 * from item text for its queries. */
#include "search_internal.h"

#include <string.h>

const char *const tsr_qc_names[TSR_QC_COUNT] = {"appstream", "virtual", "debtags",       "known-item",
                                                 "movielens", "file",    "i2i-recommends", "i2i-source"};
_Static_assert(TSR_QC_COUNT == 8, "tsr_qc_names out of date");

bool tsr_qc_is_i2i(int construction) {
    return construction == TSR_QC_I2I_RECOMMENDS || construction == TSR_QC_I2I_SOURCE;
}
const char *const tsr_split_names[TSR_SPLIT_COUNT] = {"train", "valid", "test"};

int tsr_qc_from_name(const char *name) {
    for (int i = 0; i < TSR_QC_COUNT; i++)
        if (strcmp(name, tsr_qc_names[i]) == 0) return i;
    return -1;
}

int tsr_split_from_name(const char *name) {
    for (int i = 0; i < TSR_SPLIT_COUNT; i++)
        if (strcmp(name, tsr_split_names[i]) == 0) return i;
    return -1;
}

unsigned tsr_qc_hidden(int construction) {
    /* AppStream keywords and `provides` are never item text; debtags queries
     * are phrased from tags, so the tags are hidden for them. The I2I labels
     * (recommends, suggests, source) are never item text either. */
    return construction == TSR_QC_DEBTAGS ? TSR_F_TAGS : 0u;
}

uint64_t tsr_query_hash(const char *text, uint64_t basis) {
    uint64_t h = basis;
    bool space = false, any = false;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        unsigned char c = *p;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            space = any;
            continue;
        }
        if (space) h = (h ^ ' ') * 1099511628211ull;
        space = false;
        any = true;
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        h = (h ^ c) * 1099511628211ull;
    }
    return h;
}

int tsr_query_split(const char *text) {
    uint64_t h = tsr_query_hash(text, 1469598103934665603ull);
    int b = (int)(h % 20);
    return b < 16 ? TSR_SPLIT_TRAIN : b < 18 ? TSR_SPLIT_VALID : TSR_SPLIT_TEST;
}

bool tsr_query_is_tune(const char *text) {
    if (tsr_query_split(text) != TSR_SPLIT_TRAIN) return false;
    uint64_t h = tsr_query_hash(text, 0x84222325cbf29ce4ull);
    h ^= h >> 29;
    return h % 8 == 0;
}

const char *tsr_query_split_key(const tsr_catalog *cat, const tsr_query *q) {
    return q->trigger >= 0 && q->trigger < cat->n_items ? cat->items[q->trigger].id : q->text;
}

void tsr_queryset_add_i2i(tsr_queryset *qs, const char *text, int32_t trigger, const int32_t *rel, int n_rel,
                          int construction, int split) {
    tsr_queryset_add(qs, text, -1, rel, n_rel, construction, split);
    qs->q[qs->n - 1].trigger = trigger;
}

void tsr_queryset_add(tsr_queryset *qs, const char *text, int64_t user, const int32_t *rel,
                      int n_rel, int construction, int split) {
    if (qs->n == qs->cap) {
        qs->cap = qs->cap ? 2 * qs->cap : 256;
        qs->q = realloc(qs->q, (size_t)qs->cap * sizeof *qs->q);
        TSR_ASSERT(qs->q);
    }
    tsr_query *q = &qs->q[qs->n++];
    q->text = srch_strdup(text);
    q->user = user;
    q->n_rel = n_rel;
    q->rel = malloc((size_t)(n_rel ? n_rel : 1) * sizeof *q->rel);
    TSR_ASSERT(q->rel);
    memcpy(q->rel, rel, (size_t)n_rel * sizeof *rel);
    q->construction = construction;
    q->split = split;
    q->trigger = -1;
}

void tsr_queryset_free(tsr_queryset *qs) {
    for (int32_t i = 0; i < qs->n; i++) {
        free(qs->q[i].text);
        free(qs->q[i].rel);
    }
    free(qs->q);
    memset(qs, 0, sizeof *qs);
}

/* ------------------------------------------------ grouping text -> items */

typedef struct {
    tsr_strmap idx; /* key -> group */
    char **text;
    int64_t *user;
    int32_t **items;
    int *n, *cap;
    int32_t n_groups;
} groups;

static void groups_add(groups *g, const char *key, const char *text, int64_t user, int32_t item) {
    int32_t k = tsr_strmap_get(&g->idx, key);
    if (k < 0) {
        k = g->n_groups++;
        size_t m = (size_t)g->n_groups;
        g->text = realloc(g->text, m * sizeof *g->text);
        g->user = realloc(g->user, m * sizeof *g->user);
        g->items = realloc(g->items, m * sizeof *g->items);
        g->n = realloc(g->n, m * sizeof *g->n);
        g->cap = realloc(g->cap, m * sizeof *g->cap);
        TSR_ASSERT(g->text && g->user && g->items && g->n && g->cap);
        g->text[k] = srch_strdup(text);
        g->user[k] = user;
        g->items[k] = NULL;
        g->n[k] = g->cap[k] = 0;
        tsr_strmap_put(&g->idx, key, k);
    }
    for (int i = 0; i < g->n[k]; i++)
        if (g->items[k][i] == item) return;
    if (g->n[k] == g->cap[k]) {
        g->cap[k] = g->cap[k] ? 2 * g->cap[k] : 4;
        g->items[k] = realloc(g->items[k], (size_t)g->cap[k] * sizeof **g->items);
        TSR_ASSERT(g->items[k]);
    }
    g->items[k][g->n[k]++] = item;
}

static void sort_i32(int32_t *v, int n) {
    for (int i = 1; i < n; i++) {
        int32_t x = v[i];
        int j = i - 1;
        while (j >= 0 && v[j] > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
}

/* Emits groups with min_rel..max_rel items as queries (group order = first
 * appearance, items sorted), then frees the groups. */
static void groups_emit(groups *g, tsr_queryset *qs, int construction, int min_rel, int max_rel) {
    for (int32_t k = 0; k < g->n_groups; k++) {
        if (g->n[k] >= min_rel && g->n[k] <= max_rel && g->text[k][0]) {
            sort_i32(g->items[k], g->n[k]);
            tsr_queryset_add(qs, g->text[k], g->user[k], g->items[k], g->n[k], construction,
                             tsr_query_split(g->text[k]));
        }
        free(g->text[k]);
        free(g->items[k]);
    }
    free(g->text);
    free(g->user);
    free(g->items);
    free(g->n);
    free(g->cap);
    tsr_strmap_free(&g->idx);
}

/* ------------------------------------------------------- constructions */

/* The most relevant items a construction's query may name: beyond this a
 * "query" is a browse category, not a search (recall@k is then tiny by
 * construction). */
enum { MAX_REL = TSR_QC_MAX_REL };

static void build_appstream(groups *g, const tsr_catalog *cat) {
    for (int32_t i = 0; i < cat->n_items; i++)
        for (int k = 0; k < cat->items[i].n_keywords; k++)
            groups_add(g, cat->items[i].keywords[k], cat->items[i].keywords[k], -1, i);
}

static void build_virtual(groups *g, const tsr_catalog *cat) {
    tsr_strmap vi;
    tsr_strmap_init(&vi, cat->n_virt);
    for (int v = 0; v < cat->n_virt; v++) tsr_strmap_put(&vi, cat->virt_names[v], v);
    for (int32_t i = 0; i < cat->n_items; i++)
        for (int k = 0; k < cat->items[i].n_provides; k++) {
            int32_t v = tsr_strmap_get(&vi, cat->items[i].provides[k]);
            if (v >= 0 && cat->virt_desc[v][0]) groups_add(g, cat->virt_desc[v], cat->virt_desc[v], -1, i);
        }
    tsr_strmap_free(&vi);
}

/* A debtags tag phrased as a search: the value's words, with a facet word
 * where the value alone is ambiguous. Facets that describe packaging
 * rather than what a package does are not queries. */
static bool debtag_phrase(const char *tag, char *out, size_t n) {
    static const char *const skip[] = {"role", "special", "suite", "made-of", "scope", "x11",
                                       "interface", "uitoolkit", "implemented-in"};
    static const char *const fmt[][2] = {
        {"works-with-format", "%s files"}, {"works-with", "%s"},       {"use", "%s"},
        {"game", "%s game"},               {"devel", "%s development"}, {"field", "%s"},
        {"hardware", "%s hardware"},       {"protocol", "%s protocol"}, {"admin", "%s administration"},
    };
    const char *sep = strstr(tag, "::");
    if (!sep) return false;
    char facet[64], value[128];
    snprintf(facet, sizeof facet, "%.*s", (int)(sep - tag) < 63 ? (int)(sep - tag) : 63, tag);
    const char *v = strrchr(sep + 2, ':'); /* "lang:python" -> "python" */
    snprintf(value, sizeof value, "%s", v ? v + 1 : sep + 2);
    for (char *p = value; *p; p++)
        if (*p == '-' || *p == '_' || *p == '.') *p = ' ';
    if (!value[0] || strcmp(value, "TODO") == 0 || strcmp(value, "other") == 0) return false;
    for (size_t i = 0; i < sizeof skip / sizeof *skip; i++)
        if (strcmp(facet, skip[i]) == 0) return false;
    for (size_t i = 0; i < sizeof fmt / sizeof *fmt; i++)
        if (strcmp(facet, fmt[i][0]) == 0) {
            snprintf(out, n, fmt[i][1], value);
            return true;
        }
    snprintf(out, n, "%s %s", facet, value);
    return true;
}

static void build_debtags(groups *g, const tsr_catalog *cat) {
    char q[256];
    for (int32_t i = 0; i < cat->n_items; i++)
        for (int k = 0; k < cat->items[i].n_tags; k++)
            if (debtag_phrase(cat->items[i].tags[k], q, sizeof q)) groups_add(g, q, q, -1, i);
}

typedef struct {
    char words[8][64];
    uint64_t key[8];
    int n;
    const char *name;
    uint64_t seed;
} ki_ctx;

static void ki_tok(const char *tok, int len, void *ud) {
    ki_ctx *c = ud;
    (void)len;
    if (strstr(c->name, tok)) return; /* words of the package name make it trivial */
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->words[i], tok) == 0) return;
    if (c->n == 8) return;
    snprintf(c->words[c->n], sizeof c->words[0], "%s", tok);
    c->key[c->n] = tsr_str_hash(tok) ^ c->seed;
    c->n++;
}

/* Known-item queries: for one package in 16 (by a hash of its name), three
 * words of its summary (by a hash of package and word; in summary order),
 * never words of its name. Relevant: that package, plus any other package
 * whose query came out the same. */
static void build_known_item(groups *g, const tsr_catalog *cat) {
    for (int32_t i = 0; i < cat->n_items; i++) {
        const tsr_item *it = &cat->items[i];
        uint64_t h = tsr_str_hash(it->id);
        if (h % 16 != 7) continue;
        ki_ctx c = {.name = it->id, .seed = h};
        tsr_search_tokenize(it->summary, ki_tok, &c);
        if (c.n < 3) continue;
        bool pick[8] = {false};
        for (int r = 0; r < 3; r++) { /* the three smallest keys */
            int best = -1;
            for (int j = 0; j < c.n; j++)
                if (!pick[j] && (best < 0 || c.key[j] < c.key[best])) best = j;
            pick[best] = true;
        }
        char q[256] = "";
        size_t at = 0;
        for (int j = 0; j < c.n; j++)
            if (pick[j]) at += (size_t)snprintf(q + at, sizeof q - at, "%s%s", at ? " " : "", c.words[j]);
        groups_add(g, q, q, -1, i);
    }
}

static void build_movielens(groups *g, const tsr_catalog *cat) {
    char key[320];
    for (int32_t t = 0; t < cat->n_tag_apps; t++) {
        int64_t uid = cat->users[cat->tag_user[t]].id;
        snprintf(key, sizeof key, "%lld\t%s", (long long)uid, cat->tag_text[t]);
        groups_add(g, key, cat->tag_text[t], uid, cat->tag_item[t]);
    }
}

/* ----------------------------------------------- item-to-item (I2I) */

char *tsr_i2i_text(const tsr_catalog *cat, int32_t item) {
    const tsr_item *it = &cat->items[item];
    size_t n = strlen(it->id) + strlen(it->summary) + 2;
    char *s = malloc(n);
    TSR_ASSERT(s);
    snprintf(s, n, "%s\n%s", it->id, it->summary);
    return s;
}

/* per-item sets of related items */
typedef struct {
    int32_t **v;
    int *n, *cap;
} relsets;

static void rel_add(relsets *r, int32_t i, int32_t j) {
    for (int k = 0; k < r->n[i]; k++)
        if (r->v[i][k] == j) return;
    if (r->n[i] == r->cap[i]) {
        r->cap[i] = r->cap[i] ? 2 * r->cap[i] : 4;
        r->v[i] = realloc(r->v[i], (size_t)r->cap[i] * sizeof **r->v);
        TSR_ASSERT(r->v[i]);
    }
    r->v[i][r->n[i]++] = j;
}

/* i2i-recommends: j is related to i when i recommends or suggests j, or j
 * recommends or suggests i. Names are matched as the reverse counts match
 * them: a name that is not a catalog item (a virtual package, a package
 * outside the snapshot) is dropped; the snapshot lists each alternative as
 * a name of its own. */
static void build_i2i_recommends(relsets *r, const tsr_catalog *cat) {
    for (int32_t i = 0; i < cat->n_items; i++) {
        const tsr_item *it = &cat->items[i];
        for (int k = 0; k < it->n_recommends + it->n_suggests; k++) {
            const char *name = k < it->n_recommends ? it->recommends[k] : it->suggests[k - it->n_recommends];
            int32_t j = tsr_catalog_find(cat, name);
            if (j < 0 || j == i) continue;
            rel_add(r, i, j);
            rel_add(r, j, i);
        }
    }
}

/* i2i-source: the other binaries of the trigger's source package; families
 * above TSR_I2I_MAX_FAMILY binaries are skipped. */
static void build_i2i_source(relsets *r, const tsr_catalog *cat) {
    tsr_strmap fam;
    tsr_strmap_init(&fam, cat->n_items);
    int32_t *head = malloc((size_t)cat->n_items * sizeof *head), *next = malloc((size_t)cat->n_items * sizeof *next),
            *size = calloc((size_t)cat->n_items, sizeof *size);
    TSR_ASSERT(head && next && size);
    int32_t n_fam = 0;
    for (int32_t i = cat->n_items - 1; i >= 0; i--) { /* lists in item order */
        const char *src = cat->items[i].source ? cat->items[i].source : cat->items[i].id;
        int32_t f = tsr_strmap_get(&fam, src);
        if (f < 0) {
            f = n_fam++;
            head[f] = -1;
            tsr_strmap_put(&fam, src, f);
        }
        next[i] = head[f];
        head[f] = i;
        size[f]++;
    }
    for (int32_t f = 0; f < n_fam; f++) {
        if (size[f] < 2 || size[f] > TSR_I2I_MAX_FAMILY) continue;
        for (int32_t i = head[f]; i >= 0; i = next[i])
            for (int32_t j = head[f]; j >= 0; j = next[j])
                if (j != i) rel_add(r, i, j);
    }
    tsr_strmap_free(&fam);
    free(head);
    free(next);
    free(size);
}

/* one query per trigger with 1..TSR_QC_MAX_REL related items, in item
 * order, related items sorted; split by the trigger's id */
static void build_i2i(tsr_queryset *qs, const tsr_catalog *cat, int construction) {
    relsets r;
    r.v = calloc((size_t)cat->n_items, sizeof *r.v);
    r.n = calloc((size_t)cat->n_items, sizeof *r.n);
    r.cap = calloc((size_t)cat->n_items, sizeof *r.cap);
    TSR_ASSERT(r.v && r.n && r.cap);
    if (construction == TSR_QC_I2I_RECOMMENDS) build_i2i_recommends(&r, cat);
    else build_i2i_source(&r, cat);
    for (int32_t i = 0; i < cat->n_items; i++) {
        if (r.n[i] >= 1 && r.n[i] <= MAX_REL) {
            sort_i32(r.v[i], r.n[i]);
            char *text = tsr_i2i_text(cat, i);
            tsr_queryset_add_i2i(qs, text, i, r.v[i], r.n[i], construction, tsr_query_split(cat->items[i].id));
            free(text);
        }
        free(r.v[i]);
    }
    free(r.v);
    free(r.n);
    free(r.cap);
}

tsr_status tsr_queries_build(tsr_queryset *qs, const tsr_catalog *cat, int construction) {
    bool deb = cat->kind == TSR_CATALOG_DEBIAN;
    if (construction < 0 || construction >= TSR_QC_COUNT || construction == TSR_QC_FILE)
        return tsr_errorf(TSR_ERR_ARG, "unknown query construction %d", construction);
    if (deb == (construction == TSR_QC_MOVIELENS))
        return tsr_errorf(TSR_ERR_ARG, "the %s construction needs the %s catalog",
                          tsr_qc_names[construction], deb ? "MovieLens" : "Debian");
    if (tsr_qc_is_i2i(construction)) {
        build_i2i(qs, cat, construction);
        return tsr_ok();
    }
    groups g = {0};
    tsr_strmap_init(&g.idx, 4096);
    int min_rel = 1;
    switch (construction) {
    case TSR_QC_APPSTREAM: build_appstream(&g, cat); break;
    case TSR_QC_VIRTUAL: build_virtual(&g, cat); break;
    case TSR_QC_DEBTAGS:
        build_debtags(&g, cat);
        min_rel = 2;
        break;
    case TSR_QC_KNOWN_ITEM: build_known_item(&g, cat); break;
    default: build_movielens(&g, cat); break;
    }
    groups_emit(&g, qs, construction, min_rel, MAX_REL);
    return tsr_ok();
}
