/* libFuzzer target for the search module's catalog loaders (src/search/
 * catalog.c: the Debian catalog's packages.jsonl, appstream.jsonl and
 * virtual-package-names-list.yaml, plain or gzip; src/search/movielens.c:
 * movies.csv, ratings.csv and tags.csv), then what every family builds on
 * a loaded catalog: the query constructions (the item-to-item ones too: a
 * trigger is an item and never among its own relevant ones), BM25 over
 * every field, a search, and EBRM's entities. The first byte picks the loader; the rest
 * is the three files, separated by the line "#--#". Any input loads or
 * gives a one-line status; a loaded catalog's items, paths and queries
 * stay in range. Files go through a folder in /dev/shm (or /tmp). Build:
 * see fuzz/README.md. */
#include "tessera/ebrm.h"
#include "tessera/search.h"

#include "fuzz_files.h"

static const char *const DEB[3] = {"packages.jsonl.gz", "appstream.jsonl.gz", "virtual-package-names-list.yaml.gz"};
static const char *const ML[3] = {"movies.csv", "ratings.csv", "tags.csv"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = fuzz_dir("catalog");
    if (size < 1) return 0;
    const bool ml = data[0] & 1;
    const char *const *names = ml ? ML : DEB;
    const uint8_t *p = data + 1, *end = data + size;
    if (!fuzz_write_parts(dir, names, 3, p, end)) return 0;
    tsr_catalog cat;
    tsr_status st = ml ? tsr_catalog_load_movielens(&cat, dir) : tsr_catalog_load_debian(&cat, dir);
    if (st.code != TSR_OK) {
        if (!strstr(st.msg, dir) || strchr(st.msg, '\n')) __builtin_trap();
        return 0;
    }
    for (int32_t i = 0; i < cat.n_items; i++) {
        const tsr_item *it = &cat.items[i];
        if (!it->id || tsr_catalog_find(&cat, it->id) < 0) __builtin_trap();
        for (int l = 0; l < cat.n_levels; l++)
            if (it->path[l] < 0 || it->path[l] >= cat.n_cat[l]) __builtin_trap();
    }
    for (int c = 0; c < TSR_QC_COUNT; c++) { /* every construction, the item-to-item ones too */
        if (c == TSR_QC_FILE || (c == TSR_QC_MOVIELENS) != ml) continue;
        tsr_queryset qs = {0};
        if (tsr_queries_build(&qs, &cat, c).code == TSR_OK)
            for (int32_t q = 0; q < qs.n; q++) {
                const int32_t t = qs.q[q].trigger;
                if (t < -1 || t >= cat.n_items || (tsr_qc_is_i2i(c) && t < 0)) __builtin_trap();
                for (int32_t r = 0; r < qs.q[q].n_rel; r++)
                    if (qs.q[q].rel[r] < 0 || qs.q[q].rel[r] >= cat.n_items || qs.q[q].rel[r] == t) __builtin_trap();
            }
        tsr_queryset_free(&qs);
    }
    tsr_bm25 ix;
    tsr_bm25_build_catalog(&ix, &cat, TSR_F_ALL, 1.2f, 0.75f);
    int32_t docs[10];
    float sc[10];
    const char *query = cat.n_items ? cat.items[0].summary : "x";
    int n = tsr_bm25_search(&ix, query ? query : "x", 10, docs, sc, NULL);
    for (int i = 0; i < n; i++)
        if (docs[i] < 0 || docs[i] >= cat.n_items) __builtin_trap();
    tsr_bm25_free(&ix);
    if (!ml) {
        tsr_ebrm_entities E;
        if (tsr_ebrm_entities_build(&E, &cat).code == TSR_OK) tsr_ebrm_entities_free(&E);
    }
    tsr_catalog_free(&cat);
    return 0;
}
