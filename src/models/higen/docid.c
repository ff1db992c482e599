/* tessera higen: docIDs and their trie. Hi-Gen (arXiv 2404.15675, sec. 3.2)
 * builds docIDs by category-guided hierarchical clustering: the item's
 * category path first, then recursive k-means codes of its embedding
 * within the leaf category (as NCI, Wang et al. 2022, does over the whole
 * corpus), here optionally with an efficiency bucket after the path. The
 * NCI-style baseline is the same recursion without the path and bucket;
 * the DSI-style baseline gives each item one atomic token. */
#include "tessera/higen.h"

#include <math.h>
#include <string.h>

tsr_higen_docid_opts tsr_higen_docid_default_opts(void) {
    return (tsr_higen_docid_opts){.category = true, .eff_buckets = 4, .k = 32, .leaf_size = 32,
                                  .iters = 8, .atomic = false, .seed = 18};
}

/* ---------------------------------------------------------------- k-means */

static float dot(const float *a, const float *b, int d) {
    float s = 0;
    for (int i = 0; i < d; i++) s += a[i] * b[i];
    return s;
}

void tsr_kmeans(int32_t *assign, const float *x, int dim, const int32_t *rows, int n, int k, int iters,
                uint64_t seed) {
    TSR_ASSERT(n >= 1 && k >= 1);
    if (k > n) k = n;
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    float *cent = malloc((size_t)k * dim * sizeof *cent), *best = malloc((size_t)n * sizeof *best);
    double *acc = malloc((size_t)k * dim * sizeof *acc);
    int32_t *cnt = malloc((size_t)k * sizeof *cnt);
    TSR_ASSERT(cent && best && acc && cnt);
    /* k-means++ on the distance 1 - cos */
    int first = (int)tsr_rng_below(&r, (uint32_t)n);
    memcpy(cent, x + (size_t)rows[first] * dim, (size_t)dim * sizeof *cent);
    for (int i = 0; i < n; i++) best[i] = 1.0f - dot(x + (size_t)rows[i] * dim, cent, dim);
    for (int c = 1; c < k; c++) {
        double tot = 0;
        for (int i = 0; i < n; i++) tot += best[i] > 0 ? best[i] : 0;
        int pick = 0;
        if (tot > 0) {
            double u = tsr_rng_uniform(&r) * tot;
            for (pick = 0; pick < n - 1; pick++) {
                u -= best[pick] > 0 ? best[pick] : 0;
                if (u < 0) break;
            }
        } else {
            pick = (int)tsr_rng_below(&r, (uint32_t)n);
        }
        memcpy(cent + (size_t)c * dim, x + (size_t)rows[pick] * dim, (size_t)dim * sizeof *cent);
        for (int i = 0; i < n; i++) {
            float d = 1.0f - dot(x + (size_t)rows[i] * dim, cent + (size_t)c * dim, dim);
            if (d < best[i]) best[i] = d;
        }
    }
    for (int it = 0; it <= iters; it++) {
        /* assign (ties to the lower centroid) */
        for (int i = 0; i < n; i++) {
            const float *p = x + (size_t)rows[i] * dim;
            int bc = 0;
            float bs = -INFINITY;
            for (int c = 0; c < k; c++) {
                float s = dot(p, cent + (size_t)c * dim, dim);
                if (s > bs) bs = s, bc = c;
            }
            assign[i] = bc;
            best[i] = 1.0f - bs;
        }
        if (it == iters) break;
        memset(acc, 0, (size_t)k * dim * sizeof *acc);
        memset(cnt, 0, (size_t)k * sizeof *cnt);
        for (int i = 0; i < n; i++) {
            const float *p = x + (size_t)rows[i] * dim;
            cnt[assign[i]]++;
            for (int j = 0; j < dim; j++) acc[(size_t)assign[i] * dim + j] += p[j];
        }
        for (int c = 0; c < k; c++) {
            float *ce = cent + (size_t)c * dim;
            if (cnt[c] == 0) { /* reseed with the worst-served point */
                int w = 0;
                for (int i = 1; i < n; i++)
                    if (best[i] > best[w]) w = i;
                memcpy(ce, x + (size_t)rows[w] * dim, (size_t)dim * sizeof *ce);
                best[w] = -1;
                continue;
            }
            double nn = 0;
            for (int j = 0; j < dim; j++) nn += acc[(size_t)c * dim + j] * acc[(size_t)c * dim + j];
            float inv = nn > 0 ? (float)(1.0 / sqrt(nn)) : 0.f;
            for (int j = 0; j < dim; j++) ce[j] = (float)acc[(size_t)c * dim + j] * inv;
        }
    }
    free(cent);
    free(best);
    free(acc);
    free(cnt);
}

/* ------------------------------------------------------------------ trie */

typedef struct {
    tsr_higen_trie *t;
    const tsr_catalog *cat;
    const float *emb;
    int dim;
    const tsr_higen_docid_opts *o;
    int32_t cap;
} builder;

static int32_t new_nodes(builder *b, int32_t n, int depth, int32_t parent) {
    tsr_higen_trie *t = b->t;
    if (t->n_nodes + n > b->cap) {
        while (t->n_nodes + n > b->cap) b->cap = b->cap ? 2 * b->cap : 1024;
        t->nodes = realloc(t->nodes, (size_t)b->cap * sizeof *t->nodes);
        TSR_ASSERT(t->nodes);
    }
    int32_t first = t->n_nodes;
    for (int32_t i = 0; i < n; i++)
        t->nodes[first + i] = (tsr_higen_node){.first_child = -1, .n_children = 0, .item = -1, .depth = depth, .parent = parent};
    t->n_nodes += n;
    if (depth > t->max_depth) t->max_depth = depth;
    if (n > t->max_fanout) t->max_fanout = n;
    return first;
}

/* levels: 0 = section, 1 = purpose, 2 = efficiency bucket, 3 = k-means */
enum { LV_SECTION, LV_PURPOSE, LV_EFF, LV_KMEANS };

static int key_of(const builder *b, int level, int32_t item) {
    const tsr_item *it = &b->cat->items[item];
    if (level == LV_SECTION) return it->path[0];
    if (level == LV_PURPOSE) return it->path[1];
    int nb = b->o->eff_buckets; /* bucket 0 = most popular */
    int q = (int)((1.0f - it->efficiency) * nb);
    return q < 0 ? 0 : q >= nb ? nb - 1 : q;
}

static int next_level(const builder *b, int level) {
    level++;
    if (level == LV_SECTION || level == LV_PURPOSE) return b->o->category ? level : LV_EFF + (b->o->eff_buckets <= 0);
    if (level == LV_EFF && b->o->eff_buckets <= 0) return LV_KMEANS;
    return level < LV_KMEANS ? level : LV_KMEANS;
}

static int cmp_eff_desc(const void *a, const void *b, void *ud) {
    const tsr_catalog *cat = ud;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    float ex = cat->items[x].efficiency, ey = cat->items[y].efficiency;
    if (ex != ey) return ex > ey ? -1 : 1;
    return (x > y) - (x < y);
}

/* insertion sort with a comparator and context (groups are small or sorted once) */
static void sort_items(int32_t *v, int n, int (*cmp)(const void *, const void *, void *), void *ud) {
    for (int i = 1; i < n; i++) {
        int32_t x = v[i];
        int j = i - 1;
        while (j >= 0 && cmp(&v[j], &x, ud) > 0) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
}

static void build_node(builder *b, int32_t node, int32_t *items, int n, int level, int depth, uint64_t seed) {
    tsr_higen_trie *t = b->t;
    TSR_ASSERT(depth < TSR_HIGEN_MAX_DEPTH);
    if (level == LV_KMEANS && (n <= b->o->leaf_size || b->o->atomic)) {
        /* one leaf per item, most popular first */
        if (!b->o->atomic) sort_items(items, n, cmp_eff_desc, (void *)b->cat);
        int32_t first = new_nodes(b, n, depth + 1, node);
        t->nodes[node].first_child = first;
        t->nodes[node].n_children = n;
        for (int i = 0; i < n; i++) {
            t->nodes[first + i].item = items[i];
            t->item_leaf[items[i]] = first + i;
        }
        return;
    }
    int32_t *key = malloc((size_t)n * sizeof *key);
    TSR_ASSERT(key);
    if (level == LV_KMEANS) {
        tsr_kmeans(key, b->emb, b->dim, items, n, b->o->k, b->o->iters, seed);
    } else {
        for (int i = 0; i < n; i++) key[i] = key_of(b, level, items[i]);
    }
    /* dense child ids in order of first key value (ascending), stable */
    int32_t kmax = 0;
    for (int i = 0; i < n; i++) kmax = key[i] > kmax ? key[i] : kmax;
    int32_t *cnt = calloc((size_t)kmax + 2, sizeof *cnt);
    TSR_ASSERT(cnt);
    for (int i = 0; i < n; i++) cnt[key[i] + 1]++;
    int32_t n_child = 0;
    for (int32_t v = 1; v <= kmax + 1; v++) n_child += cnt[v] > 0;
    if (level == LV_KMEANS && n_child == 1) { /* identical points: split in chunks of leaf_size */
        for (int i = 0; i < n; i++) key[i] = i / b->o->leaf_size;
        free(cnt);
        kmax = (n - 1) / b->o->leaf_size;
        cnt = calloc((size_t)kmax + 2, sizeof *cnt);
        TSR_ASSERT(cnt);
        for (int i = 0; i < n; i++) cnt[key[i] + 1]++;
        n_child = kmax + 1;
    }
    int32_t *child_of = malloc((size_t)(kmax + 1) * sizeof *child_of), *off = malloc((size_t)(n_child + 1) * sizeof *off);
    TSR_ASSERT(child_of && off);
    int32_t c = 0;
    off[0] = 0;
    for (int32_t v = 0; v <= kmax; v++) {
        child_of[v] = cnt[v + 1] ? c : -1;
        if (cnt[v + 1]) {
            off[c + 1] = off[c] + cnt[v + 1];
            c++;
        }
    }
    int32_t *sorted = malloc((size_t)n * sizeof *sorted), *fill = malloc((size_t)n_child * sizeof *fill);
    TSR_ASSERT(sorted && fill);
    memcpy(fill, off, (size_t)n_child * sizeof *fill);
    for (int i = 0; i < n; i++) sorted[fill[child_of[key[i]]]++] = items[i];
    memcpy(items, sorted, (size_t)n * sizeof *items);
    free(sorted);
    free(fill);
    free(key);
    free(cnt);
    free(child_of);
    int32_t first = new_nodes(b, n_child, depth + 1, node);
    t->nodes[node].first_child = first;
    t->nodes[node].n_children = n_child;
    int nl = next_level(b, level);
    for (int32_t ch = 0; ch < n_child; ch++)
        build_node(b, first + ch, items + off[ch], off[ch + 1] - off[ch], level == LV_KMEANS ? LV_KMEANS : nl,
                   depth + 1, seed * 6364136223846793005ull + (uint64_t)ch + 1);
    free(off);
}

tsr_status tsr_higen_build(tsr_higen_trie *t, const tsr_catalog *cat, const float *emb, int dim,
                           const tsr_higen_docid_opts *o) {
    memset(t, 0, sizeof *t);
    if (!o->atomic && (!emb || dim < 1))
        return tsr_errorf(TSR_ERR_ARG, "higen docIDs: item embeddings are needed (or atomic ids)");
    if (o->k < 2 || o->k > 4096 || o->leaf_size < 1 || o->leaf_size > 65536 || o->eff_buckets < 0 ||
        o->eff_buckets > 64 || o->iters < 0)
        return tsr_errorf(TSR_ERR_ARG, "higen docIDs: k must be in 2..4096, leaf size in 1..65536, "
                                       "efficiency buckets in 0..64");
    if (cat->n_items < 1) return tsr_errorf(TSR_ERR_ARG, "higen docIDs: empty catalog");
    builder b = {.t = t, .cat = cat, .emb = emb, .dim = dim, .o = o};
    t->n_items = cat->n_items;
    t->item_leaf = malloc((size_t)cat->n_items * sizeof *t->item_leaf);
    int32_t *items = malloc((size_t)cat->n_items * sizeof *items);
    TSR_ASSERT(t->item_leaf && items);
    for (int32_t i = 0; i < cat->n_items; i++) items[i] = i;
    int32_t root = new_nodes(&b, 1, 0, -1);
    int level = o->atomic ? LV_KMEANS : o->category ? LV_SECTION : o->eff_buckets > 0 ? LV_EFF : LV_KMEANS;
    build_node(&b, root, items, cat->n_items, level, 0, o->seed);
    free(items);
    return tsr_ok();
}

void tsr_higen_trie_free(tsr_higen_trie *t) {
    free(t->nodes);
    free(t->item_leaf);
    memset(t, 0, sizeof *t);
}

int tsr_higen_docid(const tsr_higen_trie *t, int32_t item, int32_t *out) {
    TSR_ASSERT(item >= 0 && item < t->n_items);
    int32_t node = t->item_leaf[item];
    int n = t->nodes[node].depth;
    for (int i = n - 1; i >= 0; i--) {
        int32_t par = t->nodes[node].parent;
        out[i] = node - t->nodes[par].first_child;
        node = par;
    }
    return n;
}

int32_t tsr_higen_walk(const tsr_higen_trie *t, const int32_t *tokens, int n) {
    int32_t node = 0;
    for (int i = 0; i < n; i++) {
        const tsr_higen_node *p = &t->nodes[node];
        if (tokens[i] < 0 || tokens[i] >= p->n_children) return -1;
        node = p->first_child + tokens[i];
    }
    return node;
}

/* ------------------------------------------------- trie from stored docIDs */

typedef struct {
    const int32_t *d;
    const uint8_t *len;
    int stride;
} docid_view;

static int cmp_docid(const void *a, const void *b, void *ud) {
    const docid_view *v = ud;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    int lx = v->len[x], ly = v->len[y], n = lx < ly ? lx : ly;
    for (int i = 0; i < n; i++) {
        int32_t p = v->d[(size_t)x * v->stride + i], q = v->d[(size_t)y * v->stride + i];
        if (p != q) return p < q ? -1 : 1;
    }
    return lx != ly ? (lx < ly ? -1 : 1) : (x > y) - (x < y);
}

static void merge_sort(int32_t *v, int32_t *tmp, int32_t n, const docid_view *dv) {
    if (n < 2) return;
    int32_t h = n / 2;
    merge_sort(v, tmp, h, dv);
    merge_sort(v + h, tmp, n - h, dv);
    int32_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = cmp_docid(&v[j], &v[i], (void *)dv) < 0 ? v[j++] : v[i++];
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, (size_t)n * sizeof *v);
}

/* items[0..n) sorted, all sharing the first `depth` tokens; node is theirs */
static tsr_status from_sorted(builder *b, const docid_view *v, int32_t node, const int32_t *items, int32_t n,
                              int depth, const char *what) {
    tsr_higen_trie *t = b->t;
    if (v->len[items[0]] == depth) {
        if (n != 1)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: item %d's docID is a prefix of, or equal to, another's", what,
                              items[0]);
        t->nodes[node].item = items[0];
        t->item_leaf[items[0]] = node;
        return tsr_ok();
    }
    if (depth >= TSR_HIGEN_MAX_DEPTH) return tsr_errorf(TSR_ERR_FORMAT, "%s: docID longer than %d", what, TSR_HIGEN_MAX_DEPTH);
    int32_t n_child = v->d[(size_t)items[n - 1] * v->stride + depth] + 1;
    if (v->d[(size_t)items[0] * v->stride + depth] != 0 || n_child > n)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: docID codes under a node are not 0..n-1 (depth %d)", what, depth);
    int32_t first = new_nodes(b, n_child, depth + 1, node);
    t->nodes[node].first_child = first;
    t->nodes[node].n_children = n_child;
    int32_t a = 0;
    for (int32_t ch = 0; ch < n_child; ch++) {
        int32_t e = a;
        while (e < n && v->d[(size_t)items[e] * v->stride + depth] == ch) e++;
        if (e == a)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: docID codes under a node are not 0..n-1 (depth %d)", what, depth);
        tsr_status st = from_sorted(b, v, first + ch, items + a, e - a, depth + 1, what);
        if (st.code != TSR_OK) return st;
        a = e;
    }
    return tsr_ok();
}

tsr_status tsr_higen_trie_from_docids(tsr_higen_trie *t, const int32_t *docids, const uint8_t *lens, int stride,
                                      int32_t n_items, const char *what) {
    memset(t, 0, sizeof *t);
    if (n_items < 1) return tsr_errorf(TSR_ERR_FORMAT, "%s: no items", what);
    for (int32_t i = 0; i < n_items; i++) {
        if (lens[i] < 1 || lens[i] > stride || lens[i] > TSR_HIGEN_MAX_DEPTH)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: item %d has a docID of length %d", what, i, lens[i]);
        for (int j = 0; j < lens[i]; j++)
            if (docids[(size_t)i * stride + j] < 0 || docids[(size_t)i * stride + j] > 1 << 24)
                return tsr_errorf(TSR_ERR_FORMAT, "%s: item %d has a negative or huge docID code", what, i);
    }
    docid_view v = {docids, lens, stride};
    int32_t *items = malloc((size_t)n_items * sizeof *items), *tmp = malloc((size_t)n_items * sizeof *tmp);
    TSR_ASSERT(items && tmp);
    for (int32_t i = 0; i < n_items; i++) items[i] = i;
    merge_sort(items, tmp, n_items, &v);
    free(tmp);
    builder b = {.t = t};
    t->n_items = n_items;
    t->item_leaf = malloc((size_t)n_items * sizeof *t->item_leaf);
    TSR_ASSERT(t->item_leaf);
    int32_t root = new_nodes(&b, 1, 0, -1);
    tsr_status st = from_sorted(&b, &v, root, items, n_items, 0, what);
    free(items);
    if (st.code != TSR_OK) tsr_higen_trie_free(t);
    return st;
}
