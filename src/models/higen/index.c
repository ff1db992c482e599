/* tessera higen: item and query embeddings with the encoder, and the saved
 * index (docIDs + item ids and summaries, safetensors) that `higen index`
 * writes and `higen search` reads without the catalog. */
#include "tessera/higen.h"

#include "tessera/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void tsr_higen_embed_items(float *with_eff, float *plain, const tsr_higen_data *d, const tsr_benc *m, int view) {
    int32_t n = d->cat->n_items;
    int ti = d->ti, C = m->cfg.dim;
    enum { BS = 256 };
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 24);
    c.grad_enabled = false;
    c.training = false;
    for (int32_t a = 0; a < n; a += BS) {
        int B = n - a < BS ? n - a : BS, T = 1;
        for (int b = 0; b < B; b++) T = d->item_len[view][a + b] > T ? d->item_len[view][a + b] : T;
        tsr_ctx_reset(&c);
        tsr_tensor *tok = tsr_new(&c, TSR_I32, TSR_DIMS(B, T)), *eff = tsr_new(&c, TSR_F32, TSR_DIMS(B)), *pl = NULL;
        for (int b = 0; b < B; b++) {
            memcpy(tsr_i32(tok) + (size_t)b * T, d->item_tok[view] + (size_t)(a + b) * ti, (size_t)T * 4);
            tsr_f32(eff)[b] = d->cat->items[a + b].efficiency;
        }
        tsr_tensor *e = tsr_benc_encode(&c, m, tok, d->item_len[view] + a, eff, &pl);
        if (with_eff) memcpy(with_eff + (size_t)a * C, tsr_f32(e), (size_t)B * C * sizeof *with_eff);
        if (plain) memcpy(plain + (size_t)a * C, tsr_f32(pl), (size_t)B * C * sizeof *plain);
    }
    tsr_ctx_free(&c);
}

void tsr_higen_embed_query(float *out, tsr_bpe *bpe, const tsr_benc *m, const char *text) {
    int32_t tok[TSR_HIGEN_TQ];
    int32_t len = tsr_higen_encode(bpe, text, tok, TSR_HIGEN_TQ);
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    c.grad_enabled = false;
    c.training = false;
    tsr_tensor *t = tsr_wrap(&c, TSR_I32, TSR_DIMS(1, len), tok);
    tsr_tensor *e = tsr_benc_encode(&c, m, t, &len, NULL, NULL);
    memcpy(out, tsr_f32(e), (size_t)m->cfg.dim * sizeof *out);
    tsr_ctx_free(&c);
}

tsr_status tsr_higen_emb_save(const char *path, const float *with_eff, const float *plain, int32_t n, int dim,
                              const char *encoder) {
    tsr_st_writer *w = tsr_st_writer_new();
    tsr_st_add(w, "with_eff", TSR_ST_F32, 2, TSR_SHAPE(n, dim), with_eff);
    tsr_st_add(w, "plain", TSR_ST_F32, 2, TSR_SHAPE(n, dim), plain);
    tsr_st_set_meta(w, "format", "tessera.higen.embeddings.v1");
    tsr_st_set_meta(w, "encoder.fnv1a64", encoder);
    tsr_status st = tsr_st_write(w, path);
    tsr_st_writer_free(w);
    return st;
}

tsr_status tsr_higen_emb_load(const char *path, float *with_eff, float *plain, int32_t n, int dim, const char *encoder,
                              bool *stale) {
    *stale = false;
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code != TSR_OK) return st;
    const char *by = tsr_st_meta(&f, "encoder.fnv1a64");
    if (!by || strcmp(by, encoder) != 0) { /* written by another encoder (or before the digest was kept) */
        tsr_st_free(&f);
        *stale = true;
        return tsr_ok();
    }
    const tsr_st_tensor *a = tsr_st_find(&f, "with_eff"), *b = tsr_st_find(&f, "plain");
    if (!a || !b || a->dtype != TSR_ST_F32 || b->dtype != TSR_ST_F32 || a->ndim != 2 || b->ndim != 2 ||
        a->shape[0] != n || a->shape[1] != dim || b->shape[0] != n || b->shape[1] != dim) {
        tsr_st_free(&f);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not %d x %d item embeddings (with_eff, plain)", path, n, dim);
    }
    memcpy(with_eff, a->data, (size_t)n * dim * sizeof *with_eff);
    memcpy(plain, b->data, (size_t)n * dim * sizeof *plain);
    tsr_st_free(&f);
    return tsr_ok();
}

/* ----------------------------------------------------------- save / load */

tsr_status tsr_higen_index_save(const tsr_higen_trie *t, const tsr_catalog *cat, const tsr_higen_docid_opts *o,
                                double build_seconds, const char *path) {
    int32_t n = t->n_items, D = t->max_depth;
    int32_t *doc = calloc((size_t)n * D, sizeof *doc), *len = malloc((size_t)n * sizeof *len);
    TSR_ASSERT(doc && len);
    int32_t tmp[TSR_HIGEN_MAX_DEPTH];
    for (int32_t i = 0; i < n; i++) {
        len[i] = tsr_higen_docid(t, i, tmp);
        memcpy(doc + (size_t)i * D, tmp, (size_t)len[i] * sizeof *doc);
    }
    /* "id\tsummary\n" per item */
    size_t cap = 1 << 20, at = 0;
    char *blob = malloc(cap);
    TSR_ASSERT(blob);
    for (int32_t i = 0; i < n; i++) {
        const tsr_item *it = &cat->items[i];
        size_t need = strlen(it->id) + strlen(it->summary) + 3;
        if (at + need > cap) {
            cap = (at + need) * 2;
            blob = realloc(blob, cap);
            TSR_ASSERT(blob);
        }
        for (const char *s = it->id; *s; s++) blob[at++] = (*s == '\t' || *s == '\n') ? ' ' : *s;
        blob[at++] = '\t';
        for (const char *s = it->summary; *s; s++) blob[at++] = (*s == '\t' || *s == '\n') ? ' ' : *s;
        blob[at++] = '\n';
    }
    tsr_st_writer *w = tsr_st_writer_new();
    tsr_st_add(w, "docids", TSR_ST_I32, 2, TSR_SHAPE(n, D), doc);
    tsr_st_add(w, "docid_len", TSR_ST_I32, 1, TSR_SHAPE(n), len);
    tsr_st_add(w, "items", TSR_ST_U8, 1, TSR_SHAPE((int64_t)at), blob);
    char v[64];
    tsr_st_set_meta(w, "format", "tessera.higen.index.v1");
    snprintf(v, sizeof v, "%d", o->category);
    tsr_st_set_meta(w, "docid.category", v);
    snprintf(v, sizeof v, "%d", o->eff_buckets);
    tsr_st_set_meta(w, "docid.eff_buckets", v);
    snprintf(v, sizeof v, "%d", o->k);
    tsr_st_set_meta(w, "docid.k", v);
    snprintf(v, sizeof v, "%d", o->leaf_size);
    tsr_st_set_meta(w, "docid.leaf_size", v);
    snprintf(v, sizeof v, "%d", o->atomic);
    tsr_st_set_meta(w, "docid.atomic", v);
    snprintf(v, sizeof v, "%.3f", build_seconds);
    tsr_st_set_meta(w, "build_seconds", v);
    tsr_status st = tsr_st_write(w, path);
    tsr_st_writer_free(w);
    free(doc);
    free(len);
    free(blob);
    return st;
}

tsr_status tsr_higen_index_load(tsr_higen_index *ix, const char *path) {
    memset(ix, 0, sizeof *ix);
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code != TSR_OK) return st;
    const char *fmt = tsr_st_meta(&f, "format");
    const tsr_st_tensor *doc = tsr_st_find(&f, "docids"), *len = tsr_st_find(&f, "docid_len"),
                        *items = tsr_st_find(&f, "items");
    if (!fmt || strcmp(fmt, "tessera.higen.index.v1") != 0 || !doc || !len || !items || doc->dtype != TSR_ST_I32 ||
        len->dtype != TSR_ST_I32 || items->dtype != TSR_ST_U8 || doc->ndim != 2 || len->ndim != 1 ||
        doc->shape[0] != len->shape[0] || doc->shape[1] < 1 || doc->shape[1] > TSR_HIGEN_MAX_DEPTH ||
        doc->shape[0] < 1 || doc->shape[0] > (1 << 26)) {
        tsr_st_free(&f);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not a higen index (docids, docid_len, items tensors and format "
                                          "tessera.higen.index.v1 expected)",
                          path);
    }
    int32_t n = (int32_t)doc->shape[0];
    int D = (int)doc->shape[1];
    uint8_t *lens = malloc((size_t)n);
    TSR_ASSERT(lens);
    const int32_t *lv = len->data;
    for (int32_t i = 0; i < n && !st.code; i++) {
        if (lv[i] < 1 || lv[i] > D) /* named as stored, not as the byte it would clamp to */
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: item %d has a docID of length %d (1..%d)", path, (int)i, (int)lv[i], D);
        lens[i] = (uint8_t)(st.code ? 0 : lv[i]);
    }
    if (!st.code) st = tsr_higen_trie_from_docids(&ix->trie, doc->data, lens, D, n, path);
    free(lens);
    if (st.code == TSR_OK) {
        /* n lines "id\tsummary\n" */
        ix->ids = calloc((size_t)n, sizeof *ix->ids);
        ix->summaries = calloc((size_t)n, sizeof *ix->summaries);
        TSR_ASSERT(ix->ids && ix->summaries);
        const char *p = items->data, *end = p + items->nbytes;
        int32_t i = 0;
        ix->n_items = n; /* for the free on failure */
        for (; i < n && p < end; i++) {
            const char *tab = memchr(p, '\t', (size_t)(end - p));
            const char *nl = tab ? memchr(tab, '\n', (size_t)(end - tab)) : NULL;
            if (!nl) break;
            ix->ids[i] = strndup(p, (size_t)(tab - p));
            ix->summaries[i] = strndup(tab + 1, (size_t)(nl - tab - 1));
            TSR_ASSERT(ix->ids[i] && ix->summaries[i]);
            p = nl + 1;
        }
        if (i != n || p != end) st = tsr_errorf(TSR_ERR_FORMAT, "%s: the item list does not hold %d items", path, n);
    }
    if (st.code == TSR_OK) {
        /* how the docIDs were built (reported, not used to search); an absent key reads as its default */
        ix->opts = tsr_higen_docid_default_opts();
        const char *keys[] = {"docid.category", "docid.eff_buckets", "docid.k", "docid.leaf_size", "docid.atomic"};
        int v[5] = {1, 0, 0, 0, 0};
        for (int i = 0; i < 5 && st.code == TSR_OK; i++)
            if (tsr_st_meta(&f, keys[i]) && !tsr_st_meta_int(&f, keys[i], 0, 1 << 24, &v[i]))
                st = tsr_errorf(TSR_ERR_FORMAT, "%s: metadata %s is not a count", path, keys[i]);
        ix->opts.category = v[0] != 0, ix->opts.eff_buckets = v[1], ix->opts.k = v[2];
        ix->opts.leaf_size = v[3], ix->opts.atomic = v[4] != 0;
        float bs = 0;
        ix->build_seconds = tsr_st_meta_float(&f, "build_seconds", &bs) ? bs : 0;
    }
    tsr_st_free(&f);
    if (st.code != TSR_OK) tsr_higen_index_free(ix);
    return st;
}

void tsr_higen_index_free(tsr_higen_index *ix) {
    tsr_higen_trie_free(&ix->trie);
    for (int32_t i = 0; i < ix->n_items; i++) {
        if (ix->ids) free(ix->ids[i]);
        if (ix->summaries) free(ix->summaries[i]);
    }
    free(ix->ids);
    free(ix->summaries);
    memset(ix, 0, sizeof *ix);
}
