/* tessera ebrm: the QE cache (bounded LRU keyed by query text and entity)
 * and item scoring through it: distinct missing entities are scored in
 * one call, every item then costs one aggregation. */
#include "tessera/ebrm.h"

#include <stdlib.h>
#include <string.h>

/* second, independent hash of the query text (FNV-1a 64 with a salt) */
static uint64_t hash2(const char *s) {
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) h = (h ^ *p) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint32_t bucket_of(const tsr_ebrm_cache *k, uint64_t h1, int32_t e) {
    uint64_t x = h1 ^ ((uint64_t)(uint32_t)e * 0x9e3779b97f4a7c15ull);
    x ^= x >> 31;
    return (uint32_t)(x % (uint64_t)k->n_buckets);
}

void tsr_ebrm_cache_init(tsr_ebrm_cache *k, int32_t cap) {
    TSR_ASSERT(cap >= 1);
    memset(k, 0, sizeof *k);
    k->cap = cap;
    k->n_buckets = cap < (1 << 29) ? 2 * cap : cap;
    k->slot = calloc((size_t)cap, sizeof *k->slot);
    k->bucket = malloc((size_t)k->n_buckets * sizeof *k->bucket);
    TSR_ASSERT(k->slot && k->bucket);
    tsr_ebrm_cache_clear(k);
}

void tsr_ebrm_cache_free(tsr_ebrm_cache *k) {
    free(k->slot);
    free(k->bucket);
    memset(k, 0, sizeof *k);
}

void tsr_ebrm_cache_clear(tsr_ebrm_cache *k) {
    for (int32_t b = 0; b < k->n_buckets; b++) k->bucket[b] = -1;
    memset(k->slot, 0, (size_t)k->cap * sizeof *k->slot);
    k->n = 0;
    k->head = k->tail = -1;
    k->hits = k->misses = 0;
}

static void lru_unlink(tsr_ebrm_cache *k, int32_t s) {
    tsr_ebrm_cache_slot *x = &k->slot[s];
    if (x->prev >= 0) k->slot[x->prev].next = x->next; else k->head = x->next;
    if (x->next >= 0) k->slot[x->next].prev = x->prev; else k->tail = x->prev;
}

static void lru_front(tsr_ebrm_cache *k, int32_t s) {
    tsr_ebrm_cache_slot *x = &k->slot[s];
    x->prev = -1;
    x->next = k->head;
    if (k->head >= 0) k->slot[k->head].prev = s;
    k->head = s;
    if (k->tail < 0) k->tail = s;
}

static int32_t find(const tsr_ebrm_cache *k, uint64_t h1, uint64_t h2, int32_t e) {
    for (int32_t s = k->bucket[bucket_of(k, h1, e)]; s >= 0; s = k->slot[s].chain)
        if (k->slot[s].h1 == h1 && k->slot[s].h2 == h2 && k->slot[s].entity == e) return s;
    return -1;
}

bool tsr_ebrm_cache_get(tsr_ebrm_cache *k, const char *query, int32_t entity, float *r, float *c) {
    int32_t s = find(k, tsr_str_hash(query), hash2(query), entity);
    if (s < 0) {
        k->misses++;
        return false;
    }
    k->hits++;
    *r = k->slot[s].r;
    *c = k->slot[s].c;
    if (k->head != s) lru_unlink(k, s), lru_front(k, s);
    return true;
}

void tsr_ebrm_cache_put(tsr_ebrm_cache *k, const char *query, int32_t entity, float r, float c) {
    uint64_t h1 = tsr_str_hash(query), h2 = hash2(query);
    int32_t s = find(k, h1, h2, entity);
    if (s < 0) {
        if (k->n < k->cap) {
            s = k->n++;
        } else { /* evict the least recently used: unlink from LRU and its chain */
            s = k->tail;
            lru_unlink(k, s);
            int32_t *pp = &k->bucket[bucket_of(k, k->slot[s].h1, k->slot[s].entity)];
            while (*pp != s) pp = &k->slot[*pp].chain;
            *pp = k->slot[s].chain;
        }
        tsr_ebrm_cache_slot *x = &k->slot[s];
        x->h1 = h1;
        x->h2 = h2;
        x->entity = entity;
        x->used = true;
        uint32_t b = bucket_of(k, h1, entity);
        x->chain = k->bucket[b];
        k->bucket[b] = s;
    } else {
        lru_unlink(k, s);
    }
    k->slot[s].r = r;
    k->slot[s].c = c;
    lru_front(k, s);
}

double tsr_ebrm_cache_hit_rate(const tsr_ebrm_cache *k) {
    int64_t t = k->hits + k->misses;
    return t ? (double)k->hits / (double)t : 0.0;
}

tsr_status tsr_ebrm_score_items(float *p, const tsr_ebrm_entities *E, const int32_t *items,
                                int32_t n, int construction, const char *query,
                                tsr_ebrm_qe_fn qe, void *qe_ud, tsr_ebrm_cache *cache,
                                const float *theta) {
    /* slots: the visible entities of every item */
    int64_t *off = malloc(((size_t)n + 1) * sizeof *off), total = 0;
    TSR_ASSERT(off);
    off[0] = 0;
    for (int32_t i = 0; i < n; i++) {
        total += tsr_ebrm_item_entities(E, items[i], construction, NULL, 0);
        off[i + 1] = total;
    }
    int32_t *ent = malloc(((size_t)total + 1) * sizeof *ent);
    float *r = malloc(((size_t)total + 1) * sizeof *r), *c = malloc(((size_t)total + 1) * sizeof *c);
    uint8_t *type = malloc((size_t)total + 1);
    int32_t *miss = malloc(((size_t)total + 1) * sizeof *miss);
    float *mr = malloc(((size_t)total + 1) * sizeof *mr), *mc = malloc(((size_t)total + 1) * sizeof *mc);
    TSR_ASSERT(ent && r && c && type && miss && mr && mc);
    for (int32_t i = 0; i < n; i++)
        tsr_ebrm_item_entities(E, items[i], construction, ent + off[i], (int)(off[i + 1] - off[i]));
    tsr_status st = tsr_ok();
    if (!cache) {
        st = qe(qe_ud, query, ent, (int)total, r, c);
    } else {
        /* slot lookups: an entity already seen in this call is served from
         * the call (a hit: no forward), else from the cache, else it joins
         * the distinct misses scored in one call */
        int32_t *seen = malloc(((size_t)E->n + 1) * sizeof *seen); /* entity -> 1 + slot or miss */
        TSR_ASSERT(seen);
        for (int32_t e = 0; e < E->n; e++) seen[e] = 0;
        int nm = 0;
        for (int64_t j = 0; j < total; j++) {
            int32_t e = ent[j];
            if (seen[e] > 0) {
                cache->hits++;
                continue;
            }
            if (tsr_ebrm_cache_get(cache, query, e, &r[j], &c[j])) {
                seen[e] = 1;
                continue;
            }
            seen[e] = 1;
            miss[nm++] = e;
        }
        if (nm > 0) st = qe(qe_ud, query, miss, nm, mr, mc);
        if (st.code == TSR_OK) {
            for (int q = 0; q < nm; q++) {
                tsr_ebrm_cache_put(cache, query, miss[q], mr[q], mc[q]);
                seen[miss[q]] = -1 - q;
            }
            /* every slot takes its entity's score: from this call's misses,
             * or the value the cache gave at the entity's first slot */
            for (int32_t e = 0; e < E->n; e++) if (seen[e] == 1) seen[e] = 0;
            for (int64_t j = 0; j < total; j++) {
                int32_t e = ent[j];
                if (seen[e] < 0) {
                    r[j] = mr[-1 - seen[e]], c[j] = mc[-1 - seen[e]];
                } else if (seen[e] == 0) {
                    seen[e] = 1 + (int32_t)j;
                } else {
                    r[j] = r[seen[e] - 1], c[j] = c[seen[e] - 1];
                }
            }
        }
        free(seen);
    }
    if (st.code == TSR_OK) {
        for (int64_t j = 0; j < total; j++) type[j] = E->type[ent[j]];
        tsr_ebrm_agg_forward(p, r, c, type, off, n, theta);
    }
    free(off), free(ent), free(r), free(c), free(type), free(miss), free(mr), free(mc);
    return st;
}
