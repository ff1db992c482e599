/* bita: the adapter (k mask embeddings + per-layer prompt K/V prefixes,
 * BiTA sec. 3.2) as plain arrays, its safetensors file, a checksum of the
 * base weights (the base must stay byte-for-byte unchanged), and the
 * extended model view the decoder runs mask rows through. */
#include "tessera/bita.h"
#include "tessera/fileio.h"
#include "tessera/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

tsr_status tsr_bita_adapter_alloc(tsr_bita_adapter *a, const tsr_lm_config *cfg, int k, int n_prefix) {
    memset(a, 0, sizeof *a);
    if (k < 1 || k > TSR_BITA_MAX_K)
        return tsr_errorf(TSR_ERR_ARG, "bita: k = %d mask tokens outside [1, %d]", k, TSR_BITA_MAX_K);
    if (n_prefix < 1 || n_prefix > 1024)
        return tsr_errorf(TSR_ERR_ARG, "bita: %d prompt tokens outside [1, 1024]", n_prefix);
    a->k = k;
    a->n_prefix = n_prefix;
    a->dim = cfg->dim;
    a->n_layers = cfg->n_layers;
    a->kv_dim = cfg->dim / cfg->n_heads * cfg->n_kv_heads;
    a->vocab = cfg->vocab_size;
    size_t pre = (size_t)a->n_layers * (size_t)n_prefix * (size_t)a->kv_dim;
    a->mask_emb = calloc((size_t)k * (size_t)a->dim, sizeof(float));
    a->prefix_k = calloc(pre, sizeof(float));
    a->prefix_v = calloc(pre, sizeof(float));
    if (!a->mask_emb || !a->prefix_k || !a->prefix_v) {
        tsr_bita_adapter_free(a);
        return tsr_errorf(TSR_ERR_NOMEM, "bita: out of memory for the adapter");
    }
    return tsr_ok();
}

void tsr_bita_adapter_free(tsr_bita_adapter *a) {
    free(a->mask_emb);
    free(a->prefix_k);
    free(a->prefix_v);
    a->mask_emb = a->prefix_k = a->prefix_v = NULL;
}

tsr_status tsr_bita_adapter_check(const tsr_bita_adapter *a, const tsr_lm_config *cfg) {
    int kv = cfg->dim / cfg->n_heads * cfg->n_kv_heads;
    if (a->dim != cfg->dim || a->n_layers != cfg->n_layers || a->kv_dim != kv || a->vocab != cfg->vocab_size)
        return tsr_errorf(TSR_ERR_SHAPE,
                          "bita: the adapter was made for dim %d, %d layers, kv dim %d, vocab %d; the model has "
                          "dim %d, %d layers, kv dim %d, vocab %d",
                          a->dim, a->n_layers, a->kv_dim, a->vocab, cfg->dim, cfg->n_layers, kv, cfg->vocab_size);
    return tsr_ok();
}

tsr_status tsr_bita_adapter_load(tsr_bita_adapter *a, const char *path) {
    memset(a, 0, sizeof *a);
    tsr_st_file f;
    tsr_status s = tsr_st_read(path, &f);
    if (s.code) return s;
    tsr_lm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    int k = 0, P = 0, kv = 0, dim = 0, L = 0, V = 0;
    const long M = 1 << 24;
    if (!tsr_st_meta_int(&f, "k", 0, M, &k) || !tsr_st_meta_int(&f, "n_prefix", 0, M, &P) ||
        !tsr_st_meta_int(&f, "dim", 0, M, &dim) || !tsr_st_meta_int(&f, "n_layers", 0, M, &L) ||
        !tsr_st_meta_int(&f, "kv_dim", 0, M, &kv) || !tsr_st_meta_int(&f, "vocab", 0, M, &V) || dim < 1 ||
        L < 1 || kv < 1 || L > 1024 || V < 1) {
        tsr_st_free(&f);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not a bita adapter (metadata k, n_prefix, dim, n_layers, kv_dim, vocab)",
                          path);
    }
    /* alloc through a config with heads = kv heads = 1 so kv_dim = dim; fixed below */
    cfg.dim = dim;
    cfg.n_layers = L;
    cfg.n_heads = cfg.n_kv_heads = 1;
    cfg.vocab_size = V;
    s = tsr_bita_adapter_alloc(a, &cfg, k, P);
    if (s.code) {
        tsr_st_free(&f);
        return s;
    }
    a->kv_dim = kv;
    size_t pre = (size_t)L * (size_t)P * (size_t)kv;
    free(a->prefix_k);
    free(a->prefix_v);
    a->prefix_k = calloc(pre, sizeof(float));
    a->prefix_v = calloc(pre, sizeof(float));
    if (!a->prefix_k || !a->prefix_v) {
        tsr_st_free(&f);
        tsr_bita_adapter_free(a);
        return tsr_errorf(TSR_ERR_NOMEM, "bita: out of memory for the adapter");
    }
    char nm[96];
    for (int i = -1; i < 2 * L; i++) {
        const char *name = "bita.mask_embed";
        float *dst = a->mask_emb;
        size_t want = (size_t)k * (size_t)dim;
        if (i >= 0) {
            snprintf(nm, sizeof nm, "bita.prefix.%d.%s", i / 2, i % 2 ? "value" : "key");
            name = nm;
            dst = (i % 2 ? a->prefix_v : a->prefix_k) + (size_t)(i / 2) * P * kv;
            want = (size_t)P * (size_t)kv;
        }
        const tsr_st_tensor *t = tsr_st_find(&f, name);
        size_t numel = 1;
        if (t)
            for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
        if (!t || t->dtype != TSR_ST_F32 || numel != want) {
            tsr_st_free(&f);
            tsr_bita_adapter_free(a);
            return tsr_errorf(TSR_ERR_FORMAT, "%s: tensor %s missing or not F32 with %zu elements", path, name, want);
        }
        tsr_st_to_f32(t, dst);
    }
    const char *h = tsr_st_meta(&f, "base_hash");
    if (h && strlen(h) == 16) memcpy(a->base_hash, h, 17);
    const char *acc = tsr_st_meta(&f, "acc");
    if (acc) {
        char *p = (char *)acc;
        for (int j = 0; j < k; j++)
            for (int r = 0; r < TSR_BITA_MAX_TOP; r++) {
                char *end;
                float v = strtof(p, &end);
                if (end == p) goto acc_done;
                a->acc[j][r] = v >= 0 && v <= 1 ? v : 0;
                p = end;
                while (*p == ',' || *p == ' ') p++;
            }
    }
acc_done:
    tsr_st_free(&f);
    return tsr_ok();
}

tsr_status tsr_bita_adapter_save(const tsr_bita_adapter *a, const char *path) {
    tsr_st_writer *w = tsr_st_writer_new();
    int D = 0;
    /* store prefixes as (1, P, Hkv, D) with Hkv unknown here: D = kv_dim, Hkv = 1
     * keeps the file self-describing without the head split */
    D = a->kv_dim;
    tsr_st_add(w, "bita.mask_embed", TSR_ST_F32, 2, (const int64_t[]){a->k, a->dim}, a->mask_emb);
    char nm[96];
    for (int l = 0; l < a->n_layers; l++) {
        size_t off = (size_t)l * a->n_prefix * a->kv_dim;
        snprintf(nm, sizeof nm, "bita.prefix.%d.key", l);
        tsr_st_add(w, nm, TSR_ST_F32, 4, (const int64_t[]){1, a->n_prefix, 1, D}, a->prefix_k + off);
        snprintf(nm, sizeof nm, "bita.prefix.%d.value", l);
        tsr_st_add(w, nm, TSR_ST_F32, 4, (const int64_t[]){1, a->n_prefix, 1, D}, a->prefix_v + off);
    }
    char buf[64];
#define META_INT(key, v) (snprintf(buf, sizeof buf, "%d", (v)), tsr_st_set_meta(w, key, buf))
    tsr_st_set_meta(w, "format", "bita-adapter");
    META_INT("k", a->k);
    META_INT("n_prefix", a->n_prefix);
    META_INT("dim", a->dim);
    META_INT("n_layers", a->n_layers);
    META_INT("kv_dim", a->kv_dim);
    META_INT("vocab", a->vocab);
#undef META_INT
    tsr_st_set_meta(w, "base_hash", a->base_hash);
    char acc[TSR_BITA_MAX_K * TSR_BITA_MAX_TOP * 12];
    size_t n = 0;
    for (int j = 0; j < a->k; j++)
        for (int r = 0; r < TSR_BITA_MAX_TOP; r++)
            n += (size_t)snprintf(acc + n, sizeof acc - n, "%s%.4f", n ? "," : "", (double)a->acc[j][r]);
    tsr_st_set_meta(w, "acc", acc);
    tsr_status s = tsr_st_write(w, path);
    tsr_st_writer_free(w);
    return s;
}

tsr_status tsr_bita_file_hash(const char *path, char out[17]) {
    char buf[4096];
    struct stat sb;
    const char *p = path;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(buf, sizeof buf, "%s/model.safetensors", path);
        p = buf;
    }
    return tsr_file_fnv1a64(p, out);
}

tsr_status tsr_bita_model_init(tsr_bita_model *bm, const tsr_lm_model *base, const tsr_bita_adapter *a) {
    memset(bm, 0, sizeof *bm);
    tsr_status s = tsr_bita_adapter_check(a, &base->cfg);
    if (s.code) return s;
    const size_t V = (size_t)base->cfg.vocab_size, C = (size_t)base->cfg.dim;
    bm->emb = malloc(sizeof(float) * (V + (size_t)a->k) * C);
    if (!bm->emb) return tsr_errorf(TSR_ERR_NOMEM, "bita: out of memory for the embedding view");
    memcpy(bm->emb, base->tok_emb, sizeof(float) * V * C);
    memcpy(bm->emb + V * C, a->mask_emb, sizeof(float) * (size_t)a->k * C);
    bm->view = *base;
    bm->view.tok_emb = bm->emb;
    bm->view.cfg.vocab_size = (int)V + a->k;
    /* the classifier keeps its V rows: an f32 tied one still points at the
     * base's table, so logits never include the mask rows */
    bm->base = base;
    bm->ad = a;
    return tsr_ok();
}

void tsr_bita_model_free(tsr_bita_model *bm) {
    free(bm->emb);
    bm->emb = NULL;
}
