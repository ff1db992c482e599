/* tessera ebrm: the entities of an item, the leakage rule, the QI
 * candidate sets (BM25 top-k with labels) and the weak QE pretraining
 * pairs generated from AppStream keywords, from the train split's
 * virtual-package descriptions and from the packages' own summaries.
 * docs/ebrm.md. */
#include "tessera/ebrm.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const tsr_ebrm_type_names[TSR_EBRM_TYPES] = {"tag", "section", "category", "provides"};

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    TSR_ASSERT(d);
    memcpy(d, s, n);
    return d;
}

/* "works-with::pdf" -> "works with pdf" (the item text's spelling of tags) */
static void tag_words(char *dst, size_t cap, const char *tag) {
    size_t o = 0;
    for (const char *p = tag; *p && o + 1 < cap; p++) {
        char ch = *p == '-' || *p == '_' || *p == ':' ? ' ' : *p;
        if (ch == ' ' && (o == 0 || dst[o - 1] == ' ')) continue;
        dst[o++] = ch;
    }
    while (o > 0 && dst[o - 1] == ' ') o--;
    dst[o] = 0;
}

/* "TextEditor" -> "text editor" (freedesktop categories are CamelCase) */
static void camel_words(char *dst, size_t cap, const char *s) {
    size_t o = 0;
    for (const char *p = s; *p && o + 2 < cap; p++) {
        if (isupper((unsigned char)*p) && p != s && islower((unsigned char)p[-1])) dst[o++] = ' ';
        dst[o++] = (char)tolower((unsigned char)*p);
    }
    dst[o] = 0;
}

typedef struct {
    tsr_ebrm_entities *E;
    int32_t cap;
} ebuild;

static int32_t entity_add(ebuild *b, int type, const char *key, const char *text) {
    tsr_ebrm_entities *E = b->E;
    int32_t id = tsr_strmap_get(&E->by_key, key);
    if (id >= 0) return id;
    if (E->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 1024;
        E->key = realloc(E->key, (size_t)b->cap * sizeof *E->key);
        E->text = realloc(E->text, (size_t)b->cap * sizeof *E->text);
        E->type = realloc(E->type, (size_t)b->cap);
        TSR_ASSERT(E->key && E->text && E->type);
    }
    id = E->n++;
    E->key[id] = xstrdup(key);
    E->text[id] = xstrdup(text);
    E->type[id] = (uint8_t)type;
    tsr_strmap_put(&E->by_key, key, id);
    return id;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* a new query of out with the given text, room for 2 * nt more pairs (its
 * positives and their negatives), and its nt positive entities sorted
 * ascending (deterministic pair order); returns the query's id */
static int32_t qe_new_query(tsr_ebrm_qe_data *out, const char *text, int32_t *touched, int nt, int64_t *cap) {
    int32_t qid = out->n_queries++;
    out->queries = realloc(out->queries, (size_t)out->n_queries * sizeof *out->queries);
    TSR_ASSERT(out->queries);
    out->queries[qid] = xstrdup(text);
    if (out->n + 2 * nt > *cap) {
        *cap = *cap ? 2 * *cap : 1 << 14;
        while (*cap < out->n + 2 * nt) *cap *= 2;
        out->pairs = realloc(out->pairs, (size_t)*cap * sizeof *out->pairs);
        TSR_ASSERT(out->pairs);
    }
    qsort(touched, (size_t)nt, sizeof *touched, cmp_i32);
    return qid;
}

/* one negative pair (target 0) per positive entity of query qid: an entity
 * of the same type that is not one of the query's positives (count 0),
 * drawn uniformly, at most 64 tries; none when the type has no more
 * entities than the query has positives */
static void add_negatives(tsr_ebrm_qe_data *out, int32_t qid, const tsr_ebrm_entities *E, int32_t *const *by_type,
                          const int32_t *n_type, const int32_t *count, const int32_t *touched, int nt, tsr_rng *rng) {
    for (int j = 0; j < nt; j++) {
        int t = E->type[touched[j]];
        if (n_type[t] <= nt) continue;
        for (int tries = 0; tries < 64; tries++) {
            int32_t e = by_type[t][tsr_rng_below(rng, (uint32_t)n_type[t])];
            if (count[e]) continue;
            out->pairs[out->n++] = (tsr_ebrm_qe_pair){qid, e, 0.f};
            break;
        }
    }
}

tsr_status tsr_ebrm_entities_build(tsr_ebrm_entities *E, const tsr_catalog *cat) {
    memset(E, 0, sizeof *E);
    if (cat->kind != TSR_CATALOG_DEBIAN)
        return tsr_errorf(TSR_ERR_ARG, "ebrm: entities need the Debian catalog");
    tsr_strmap_init(&E->by_key, 4096);
    ebuild b = {E, 0};
    E->n_items = cat->n_items;
    E->item_off = calloc((size_t)cat->n_items + 1, sizeof *E->item_off);
    TSR_ASSERT(E->item_off);
    /* provides: only virtual packages Policy lists or two packages share;
     * a name one package provides (an ABI name, ...) only restates the item */
    tsr_strmap prov;
    tsr_strmap_init(&prov, 4096);
    for (int v = 0; v < cat->n_virt; v++) tsr_strmap_put(&prov, cat->virt_names[v], 2);
    for (int32_t i = 0; i < cat->n_items; i++)
        for (int t = 0; t < cat->items[i].n_provides; t++) {
            int32_t c = tsr_strmap_get(&prov, cat->items[i].provides[t]);
            tsr_strmap_put(&prov, cat->items[i].provides[t], c < 0 ? 1 : c + 1);
        }
    int64_t cap = 0, n = 0;
    char key[1024], text[2048], w[1024];
    for (int32_t i = 0; i < cat->n_items; i++) {
        const tsr_item *it = &cat->items[i];
        int32_t local[512];
        int m = 0;
        for (int t = 0; t < it->n_tags && m < 512; t++) {
            tag_words(text, sizeof text, it->tags[t]);
            local[m++] = entity_add(&b, TSR_EBRM_TAG, it->tags[t], text);
        }
        if (it->section[0] && m < 512) {
            snprintf(key, sizeof key, "section::%s", it->section);
            const char *sl = strrchr(it->section, '/');
            tag_words(w, sizeof w, sl ? sl + 1 : it->section);
            snprintf(text, sizeof text, "section %s", w);
            local[m++] = entity_add(&b, TSR_EBRM_SECTION, key, text);
        }
        for (int t = 0; t < it->n_as_categories && m < 512; t++) {
            snprintf(key, sizeof key, "category::%s", it->as_categories[t]);
            camel_words(w, sizeof w, it->as_categories[t]);
            snprintf(text, sizeof text, "category %s", w);
            local[m++] = entity_add(&b, TSR_EBRM_CATEGORY, key, text);
        }
        for (int t = 0; t < it->n_provides && m < 512; t++) {
            if (tsr_strmap_get(&prov, it->provides[t]) < 2) continue;
            snprintf(key, sizeof key, "provides::%s", it->provides[t]);
            const char *desc = NULL;
            for (int v = 0; v < cat->n_virt; v++)
                if (strcmp(cat->virt_names[v], it->provides[t]) == 0) desc = cat->virt_desc[v];
            tag_words(w, sizeof w, it->provides[t]);
            if (desc)
                snprintf(text, sizeof text, "provides %s: %s", w, desc);
            else
                snprintf(text, sizeof text, "provides %s", w);
            local[m++] = entity_add(&b, TSR_EBRM_PROVIDES, key, text);
        }
        qsort(local, (size_t)m, sizeof *local, cmp_i32);
        int u = 0;
        for (int j = 0; j < m; j++)
            if (u == 0 || local[u - 1] != local[j]) local[u++] = local[j];
        if (n + u > cap) {
            cap = cap ? 2 * cap : 1 << 16;
            while (cap < n + u) cap *= 2;
            E->item_ent = realloc(E->item_ent, (size_t)cap * sizeof *E->item_ent);
            TSR_ASSERT(E->item_ent);
        }
        memcpy(E->item_ent + n, local, (size_t)u * sizeof *local);
        n += u;
        E->item_off[i + 1] = n;
    }
    tsr_strmap_free(&prov);
    return tsr_ok();
}

void tsr_ebrm_entities_free(tsr_ebrm_entities *E) {
    for (int32_t i = 0; i < E->n; i++) free(E->key[i]), free(E->text[i]);
    free(E->key);
    free(E->text);
    free(E->type);
    free(E->item_off);
    free(E->item_ent);
    if (E->by_key.keys) tsr_strmap_free(&E->by_key);
    memset(E, 0, sizeof *E);
}

int32_t tsr_ebrm_entity_find(const tsr_ebrm_entities *E, const char *key) {
    return tsr_strmap_get(&E->by_key, key);
}

unsigned tsr_ebrm_hidden_types(int construction) {
    unsigned h = 0, f = tsr_qc_hidden(construction);
    if (f & TSR_F_TAGS) h |= 1u << TSR_EBRM_TAG;
    if (f & TSR_F_SECTION) h |= 1u << TSR_EBRM_SECTION;
    if (f & TSR_F_APPSTREAM) h |= 1u << TSR_EBRM_CATEGORY;
    if (construction == TSR_QC_VIRTUAL) h |= 1u << TSR_EBRM_PROVIDES;
    if (construction == TSR_QC_DEBTAGS) h |= 1u << TSR_EBRM_TAG;
    return h;
}

int tsr_ebrm_item_entities(const tsr_ebrm_entities *E, int32_t item, int construction,
                           int32_t *out, int cap) {
    TSR_ASSERT(item >= 0 && item < E->n_items);
    unsigned hide = tsr_ebrm_hidden_types(construction);
    int m = 0;
    for (int64_t j = E->item_off[item]; j < E->item_off[item + 1]; j++) {
        int32_t e = E->item_ent[j];
        if (hide & (1u << E->type[e])) continue;
        if (m < cap) out[m] = e;
        m++;
    }
    return m;
}

/* ------------------------------------------------------------ QI sets */

tsr_status tsr_ebrm_qi_build(tsr_ebrm_qiset *out, const tsr_queryset *qs, int split,
                             const tsr_bm25 *const *ix, int k) {
    memset(out, 0, sizeof *out);
    if (k < 1) return tsr_errorf(TSR_ERR_ARG, "ebrm: candidate count %d must be >= 1", k);
    out->q = calloc((size_t)qs->n + 1, sizeof *out->q);
    TSR_ASSERT(out->q);
    for (int32_t i = 0; i < qs->n; i++) {
        const tsr_query *q = &qs->q[i];
        if (split >= 0 && q->split != split) continue;
        const tsr_bm25 *x = ix[q->construction];
        if (!x) return tsr_errorf(TSR_ERR_ARG, "ebrm: no BM25 index for construction %s", tsr_qc_names[q->construction]);
        tsr_ebrm_qi *s = &out->q[out->n++];
        s->query = i;
        s->cand = malloc((size_t)k * sizeof *s->cand);
        s->bm25 = malloc((size_t)k * sizeof *s->bm25);
        s->label = malloc((size_t)k);
        TSR_ASSERT(s->cand && s->bm25 && s->label);
        s->n = tsr_bm25_search(x, q->text, k, s->cand, s->bm25, NULL);
        s->bm25_max = tsr_bm25_max_score(x, q->text);
        for (int j = 0; j < s->n; j++) {
            s->label[j] = 0;
            for (int r = 0; r < q->n_rel; r++)
                if (q->rel[r] == s->cand[j]) s->label[j] = 1;
            s->n_pos += s->label[j];
        }
    }
    return tsr_ok();
}

void tsr_ebrm_qiset_free(tsr_ebrm_qiset *s) {
    for (int32_t i = 0; i < s->n; i++) free(s->q[i].cand), free(s->q[i].bm25), free(s->q[i].label);
    free(s->q);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------- QE pretraining */

bool tsr_ebrm_is_tune(const char *text) {
    if (tsr_query_split(text) != TSR_SPLIT_TRAIN) return false;
    /* the same normalised FNV-1a as tsr_query_split, from another offset
     * basis, so the tune subset is independent of the split */
    uint64_t h = tsr_query_hash(text, 0x84222325cbf29ce4ull);
    h ^= h >> 29;
    return h % 8 == 0;
}

int32_t tsr_ebrm_mark_tune(tsr_queryset *qs) {
    int32_t n = 0;
    for (int32_t i = 0; i < qs->n; i++)
        if (qs->q[i].split == TSR_SPLIT_TRAIN && tsr_ebrm_is_tune(qs->q[i].text)) qs->q[i].split = TSR_EBRM_SPLIT_TUNE, n++;
    return n;
}

tsr_status tsr_ebrm_qe_pairs(tsr_ebrm_qe_data *out, const tsr_catalog *cat,
                             const tsr_ebrm_entities *E, int min_pkgs, uint64_t seed) {
    return tsr_ebrm_qe_pairs_ex(out, cat, E, min_pkgs, seed, false, TSR_EBRM_QE_SHARE);
}

tsr_status tsr_ebrm_qe_pairs_ex(tsr_ebrm_qe_data *out, const tsr_catalog *cat, const tsr_ebrm_entities *E,
                                int min_pkgs, uint64_t seed, bool hold_tune, int target) {
    memset(out, 0, sizeof *out);
    if (E->n_items != cat->n_items) return tsr_errorf(TSR_ERR_ARG, "ebrm: entities do not match the catalog");
    if (min_pkgs < 1) min_pkgs = 1;
    /* keyword -> its packages (CSR through a first pass of counts) */
    tsr_strmap kw;
    tsr_strmap_init(&kw, 4096);
    char **kws = NULL;
    int32_t n_kw = 0, cap_kw = 0;
    int32_t *cnt = NULL;
    for (int32_t i = 0; i < cat->n_items; i++)
        for (int t = 0; t < cat->items[i].n_keywords; t++) {
            const char *w = cat->items[i].keywords[t];
            int32_t id = tsr_strmap_get(&kw, w);
            if (id < 0) {
                if (n_kw == cap_kw) {
                    cap_kw = cap_kw ? 2 * cap_kw : 1024;
                    kws = realloc(kws, (size_t)cap_kw * sizeof *kws);
                    cnt = realloc(cnt, (size_t)cap_kw * sizeof *cnt);
                    TSR_ASSERT(kws && cnt);
                }
                id = n_kw++;
                kws[id] = (char *)w;
                cnt[id] = 0;
                tsr_strmap_put(&kw, w, id);
            }
            cnt[id]++;
        }
    int64_t *off = calloc((size_t)n_kw + 1, sizeof *off);
    TSR_ASSERT(off);
    for (int32_t k = 0; k < n_kw; k++) off[k + 1] = off[k] + cnt[k];
    int32_t *pk = malloc((size_t)(off[n_kw] + 1) * sizeof *pk);
    TSR_ASSERT(pk);
    for (int32_t k = 0; k < n_kw; k++) cnt[k] = 0;
    for (int32_t i = 0; i < cat->n_items; i++)
        for (int t = 0; t < cat->items[i].n_keywords; t++) {
            int32_t id = tsr_strmap_get(&kw, cat->items[i].keywords[t]);
            pk[off[id] + cnt[id]++] = i;
        }
    /* lift targets: each entity's base rate among the packages that list
     * any keyword (the population the keywords' packages come from) */
    double *base = calloc((size_t)E->n + 1, sizeof *base);
    TSR_ASSERT(base);
    int64_t n_listing = 0;
    for (int32_t i = 0; i < cat->n_items; i++) {
        if (!cat->items[i].n_keywords) continue;
        n_listing++;
        for (int64_t s = E->item_off[i]; s < E->item_off[i + 1]; s++) base[E->item_ent[s]] += 1;
    }
    for (int32_t e = 0; e < E->n; e++) base[e] = n_listing ? base[e] / (double)n_listing : 0;
    /* entities per type, for negatives */
    int32_t *by_type[TSR_EBRM_TYPES], n_type[TSR_EBRM_TYPES] = {0};
    for (int t = 0; t < TSR_EBRM_TYPES; t++) by_type[t] = malloc(((size_t)E->n + 1) * sizeof(int32_t));
    for (int32_t e = 0; e < E->n; e++) by_type[E->type[e]][n_type[E->type[e]]++] = e;
    int32_t *count = calloc((size_t)E->n + 1, sizeof *count); /* per entity, within one keyword */
    int32_t *touched = malloc(((size_t)E->n + 1) * sizeof *touched);
    TSR_ASSERT(count && touched);
    tsr_rng rng;
    tsr_rng_seed(&rng, seed);
    int64_t cap = 0;
    for (int32_t k = 0; k < n_kw; k++) {
        int np = (int)(off[k + 1] - off[k]);
        if (np < min_pkgs || tsr_query_split(kws[k]) != TSR_SPLIT_TRAIN || (hold_tune && tsr_ebrm_is_tune(kws[k])))
            continue;
        int nt = 0;
        for (int64_t j = off[k]; j < off[k + 1]; j++) {
            int32_t it = pk[j];
            for (int64_t s = E->item_off[it]; s < E->item_off[it + 1]; s++) {
                int32_t e = E->item_ent[s];
                if (E->type[e] == TSR_EBRM_PROVIDES) continue;
                if (count[e]++ == 0) touched[nt++] = e;
            }
        }
        if (nt == 0) continue;
        int32_t qid = qe_new_query(out, kws[k], touched, nt, &cap);
        for (int j = 0; j < nt; j++) {
            int32_t e = touched[j];
            double share = (double)count[e] / (double)np, y = share;
            if (target == TSR_EBRM_QE_LIFT) y = base[e] < 1 && share > base[e] ? (share - base[e]) / (1 - base[e]) : 0;
            out->pairs[out->n++] = (tsr_ebrm_qe_pair){qid, e, (float)y};
        }
        add_negatives(out, qid, E, by_type, n_type, count, touched, nt, &rng);
        for (int j = 0; j < nt; j++) count[touched[j]] = 0;
    }
    for (int t = 0; t < TSR_EBRM_TYPES; t++) free(by_type[t]);
    free(base);
    free(count);
    free(touched);
    free(off);
    free(pk);
    free(cnt);
    free(kws);
    tsr_strmap_free(&kw);
    return tsr_ok();
}

tsr_status tsr_ebrm_qe_pairs_virtual(tsr_ebrm_qe_data *out, const tsr_catalog *cat, const tsr_ebrm_entities *E,
                                     uint64_t seed, bool hold_tune) {
    if (E->n_items != cat->n_items) return tsr_errorf(TSR_ERR_ARG, "ebrm: entities do not match the catalog");
    /* the virtual construction itself: Policy's description -> providers */
    tsr_queryset qs = {0};
    tsr_status st = tsr_queries_build(&qs, cat, TSR_QC_VIRTUAL);
    if (st.code != TSR_OK) return st;
    unsigned hide = tsr_ebrm_hidden_types(TSR_QC_VIRTUAL); /* the leakage rule: provides */
    int32_t *by_type[TSR_EBRM_TYPES], n_type[TSR_EBRM_TYPES] = {0};
    for (int t = 0; t < TSR_EBRM_TYPES; t++) by_type[t] = malloc(((size_t)E->n + 1) * sizeof(int32_t));
    for (int32_t e = 0; e < E->n; e++) by_type[E->type[e]][n_type[E->type[e]]++] = e;
    int32_t *count = calloc((size_t)E->n + 1, sizeof *count);
    int32_t *touched = malloc(((size_t)E->n + 1) * sizeof *touched);
    TSR_ASSERT(count && touched);
    tsr_rng rng;
    tsr_rng_seed(&rng, seed ^ 0x7669727475616cull); /* not the keyword pairs' stream */
    int64_t cap = out->n;
    for (int32_t q = 0; q < qs.n; q++) {
        const tsr_query *Q = &qs.q[q];
        if (Q->split != TSR_SPLIT_TRAIN || (hold_tune && tsr_ebrm_is_tune(Q->text))) continue;
        int nt = 0;
        for (int j = 0; j < Q->n_rel; j++)
            for (int64_t s = E->item_off[Q->rel[j]]; s < E->item_off[Q->rel[j] + 1]; s++) {
                int32_t e = E->item_ent[s];
                if (hide & (1u << E->type[e])) continue;
                if (count[e]++ == 0) touched[nt++] = e;
            }
        if (nt == 0) continue;
        int32_t qid = qe_new_query(out, Q->text, touched, nt, &cap);
        for (int j = 0; j < nt; j++)
            out->pairs[out->n++] = (tsr_ebrm_qe_pair){qid, touched[j], (float)((double)count[touched[j]] / Q->n_rel)};
        add_negatives(out, qid, E, by_type, n_type, count, touched, nt, &rng);
        for (int j = 0; j < nt; j++) count[touched[j]] = 0;
    }
    for (int t = 0; t < TSR_EBRM_TYPES; t++) free(by_type[t]);
    free(count);
    free(touched);
    tsr_queryset_free(&qs);
    return tsr_ok();
}

tsr_status tsr_ebrm_qe_pairs_items(tsr_ebrm_qe_data *out, const tsr_catalog *cat, const tsr_ebrm_entities *E,
                                   int32_t n_pkgs, uint64_t seed, bool hold_tune, int neg) {
    if (E->n_items != cat->n_items) return tsr_errorf(TSR_ERR_ARG, "ebrm: entities do not match the catalog");
    if (n_pkgs < 0) return tsr_errorf(TSR_ERR_ARG, "ebrm: item-text package count %d must be >= 0", (int)n_pkgs);
    if (neg != TSR_EBRM_NEG_UNIFORM && neg != TSR_EBRM_NEG_FREQ) return tsr_errorf(TSR_ERR_ARG, "ebrm: unknown negatives %d", neg);
    /* eligible: a summary in the train split (not the tuning split when held
     * out) and at least one tag or category entity */
    int32_t *pick = malloc(((size_t)cat->n_items + 1) * sizeof *pick), n_el = 0;
    TSR_ASSERT(pick);
    for (int32_t i = 0; i < cat->n_items; i++) {
        const char *s = cat->items[i].summary;
        if (!s || !s[0] || tsr_query_split(s) != TSR_SPLIT_TRAIN || (hold_tune && tsr_ebrm_is_tune(s))) continue;
        bool rich = false;
        for (int64_t j = E->item_off[i]; j < E->item_off[i + 1]; j++)
            rich |= E->type[E->item_ent[j]] == TSR_EBRM_TAG || E->type[E->item_ent[j]] == TSR_EBRM_CATEGORY;
        if (rich) pick[n_el++] = i;
    }
    tsr_rng rng;
    tsr_rng_seed(&rng, seed ^ 0x6974656d73ull); /* not the other pairs' streams */
    int32_t n = n_pkgs < n_el ? n_pkgs : n_el;
    for (int32_t k = 0; k < n; k++) { /* the first n of a seeded shuffle */
        int32_t j = k + (int32_t)tsr_rng_below(&rng, (uint32_t)(n_el - k)), t = pick[k];
        pick[k] = pick[j], pick[j] = t;
    }
    qsort(pick, (size_t)n, sizeof *pick, cmp_i32); /* catalog order */
    unsigned hide = 1u << TSR_EBRM_PROVIDES;
    int32_t *by_type[TSR_EBRM_TYPES], n_type[TSR_EBRM_TYPES] = {0};
    for (int t = 0; t < TSR_EBRM_TYPES; t++) by_type[t] = malloc(((size_t)E->n + 1) * sizeof(int32_t));
    for (int32_t e = 0; e < E->n; e++) by_type[E->type[e]][n_type[E->type[e]]++] = e;
    int32_t *count = calloc((size_t)E->n + 1, sizeof *count);
    int32_t *touched = malloc(((size_t)E->n + 1) * sizeof *touched);
    TSR_ASSERT(count && touched);
    int64_t cap = out->n;
    for (int32_t k = 0; k < n; k++) {
        int32_t it = pick[k];
        int nt = 0;
        for (int64_t s = E->item_off[it]; s < E->item_off[it + 1]; s++) {
            int32_t e = E->item_ent[s];
            if (hide & (1u << E->type[e])) continue;
            if (count[e]++ == 0) touched[nt++] = e;
        }
        if (nt == 0) continue;
        int32_t qid = qe_new_query(out, cat->items[it].summary, touched, nt, &cap);
        for (int j = 0; j < nt; j++) out->pairs[out->n++] = (tsr_ebrm_qe_pair){qid, touched[j], 1.f};
        if (neg == TSR_EBRM_NEG_UNIFORM) add_negatives(out, qid, E, by_type, n_type, count, touched, nt, &rng);
        else /* an entity of the same type held by another drawn package: as often as it is held */
            for (int j = 0; j < nt; j++) {
                int t = E->type[touched[j]];
                for (int tries = 0; tries < 64; tries++) {
                    int32_t o = pick[tsr_rng_below(&rng, (uint32_t)n_el)], m = 0, cand[512];
                    for (int64_t s = E->item_off[o]; s < E->item_off[o + 1] && m < 512; s++)
                        if (E->type[E->item_ent[s]] == t) cand[m++] = E->item_ent[s];
                    if (m == 0) continue;
                    int32_t e = cand[tsr_rng_below(&rng, (uint32_t)m)];
                    if (count[e]) continue;
                    out->pairs[out->n++] = (tsr_ebrm_qe_pair){qid, e, 0.f};
                    break;
                }
            }
        for (int j = 0; j < nt; j++) count[touched[j]] = 0;
    }
    for (int t = 0; t < TSR_EBRM_TYPES; t++) free(by_type[t]);
    free(count);
    free(touched);
    free(pick);
    return tsr_ok();
}

void tsr_ebrm_qe_data_free(tsr_ebrm_qe_data *d) {
    for (int32_t i = 0; i < d->n_queries; i++) free(d->queries[i]);
    free(d->queries);
    free(d->pairs);
    memset(d, 0, sizeof *d);
}
