/* bita: tuning the adapter (BiTA sec. 3.2 and 4.1) on a frozen lm.
 *
 * Forward. tsr_bita_rows_forward runs rows through the decoder built from
 * a tsr_nn_llama's (frozen) weights and the ops, with keys = [P prompt
 * K/V | context K/V | the rows' own K/V] and an explicit (rows, keys)
 * mask, so ordinary tokens (causal, prompt hidden) and mask groups (prompt
 * + response prefix + own group) go through one code path. An example's
 * ordinary rows run first without grad (nothing they compute depends on
 * the adapter); then all its mask groups run in one forward with grad.
 *
 * Data (self-distillation, sec. 4.1): windows of the training split of the
 * code corpus as prompts, the base model's own greedy continuations as
 * responses (bf16 inference model, as decoding uses). Groups: G start
 * indices s drawn per example and step; mask j of group s sees the
 * sequence before s and is labelled seq[s + 1 + j].
 *
 * Files, for --out A.safetensors: A.safetensors (the adapter, also the
 * checkpoint), A.state.safetensors (AdamW moments, step, rng),
 * A.data.bin (the generated examples, so a resume skips generation). */
#include "tessera/bita.h"
#include "tessera/corpus.h"
#include "tessera/decode.h"
#include "tessera/fileio.h"
#include "tessera/lm_train.h"
#include "tessera/ops.h"
#include "tessera/optim.h"
#include "tessera/safetensors.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ adapter params */

void tsr_bita_train_adapter_init(tsr_bita_train_adapter *a, const tsr_nn_llama_cfg *cfg, int k, int n_prefix,
                                 uint64_t seed) {
    memset(a, 0, sizeof *a);
    tsr_params_init(&a->params);
    const int D = cfg->dim / cfg->n_heads;
    a->k = k;
    a->n_prefix = n_prefix;
    a->n_layers = cfg->n_layers;
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    a->mask_emb = tsr_param_new(&a->params, "bita.mask_embed", TSR_PARAM_NO_DECAY, TSR_DIMS(k, cfg->dim));
    tsr_init_normal(a->mask_emb, &r, 0.02f);
    a->prefix_k = calloc((size_t)cfg->n_layers, sizeof(tsr_tensor *));
    a->prefix_v = calloc((size_t)cfg->n_layers, sizeof(tsr_tensor *));
    TSR_ASSERT(a->prefix_k && a->prefix_v);
    char nm[96];
    for (int l = 0; l < cfg->n_layers; l++) {
        snprintf(nm, sizeof nm, "bita.prefix.%d.key", l);
        a->prefix_k[l] = tsr_param_new(&a->params, nm, TSR_PARAM_NO_DECAY, TSR_DIMS(1, n_prefix, cfg->n_kv_heads, D));
        tsr_init_normal(a->prefix_k[l], &r, 0.02f);
        snprintf(nm, sizeof nm, "bita.prefix.%d.value", l);
        a->prefix_v[l] = tsr_param_new(&a->params, nm, TSR_PARAM_NO_DECAY, TSR_DIMS(1, n_prefix, cfg->n_kv_heads, D));
        tsr_init_normal(a->prefix_v[l], &r, 0.02f);
    }
}

void tsr_bita_train_adapter_free(tsr_bita_train_adapter *a) {
    tsr_params_free(&a->params);
    free(a->prefix_k);
    free(a->prefix_v);
    a->prefix_k = a->prefix_v = NULL;
}

void tsr_bita_train_adapter_export(const tsr_bita_train_adapter *a, tsr_bita_adapter *out) {
    memcpy(out->mask_emb, tsr_f32(a->mask_emb), sizeof(float) * (size_t)a->mask_emb->numel);
    for (int l = 0; l < a->n_layers; l++) {
        size_t n = (size_t)a->prefix_k[l]->numel;
        memcpy(out->prefix_k + (size_t)l * n, tsr_f32(a->prefix_k[l]), sizeof(float) * n);
        memcpy(out->prefix_v + (size_t)l * n, tsr_f32(a->prefix_v[l]), sizeof(float) * n);
    }
}


/* ------------------------------------------------------------ forward */

tsr_tensor *tsr_bita_rows_forward(tsr_ctx *c, const tsr_nn_llama *m, const tsr_bita_train_adapter *a,
                                  tsr_tensor *x, const tsr_tensor *pos, const tsr_tensor *mask, int n_ctx,
                                  tsr_tensor *const *ctx_k, tsr_tensor *const *ctx_v, tsr_tensor **k_out,
                                  tsr_tensor **v_out) {
    const tsr_nn_llama_cfg *g = &m->cfg;
    const int64_t n = x->shape[1];
    const int H = g->n_heads, Hkv = g->n_kv_heads, D = g->dim / g->n_heads;
    const int P = a ? a->n_prefix : 0;
    TSR_ASSERT(x->ndim == 3 && x->shape[0] == 1 && x->shape[2] == g->dim);
    TSR_ASSERT(pos->numel == n && mask->dtype == TSR_U8 && mask->numel == n * (P + n_ctx + n));
    for (int l = 0; l < g->n_layers; l++) {
        const tsr_nn_llama_block *b = &m->layers[l];
        tsr_tensor *h = tsr_nn_rmsnorm_forward(c, &b->input_layernorm, x);
        tsr_tensor *q = tsr_reshape(c, tsr_nn_linear_forward(c, &b->q_proj, h), TSR_DIMS(1, n, H, D));
        tsr_tensor *k = tsr_reshape(c, tsr_nn_linear_forward(c, &b->k_proj, h), TSR_DIMS(1, n, Hkv, D));
        tsr_tensor *v = tsr_reshape(c, tsr_nn_linear_forward(c, &b->v_proj, h), TSR_DIMS(1, n, Hkv, D));
        q = tsr_rope(c, q, pos, g->rope_theta, false);
        k = tsr_rope(c, k, pos, g->rope_theta, false);
        if (k_out) k_out[l] = k;
        if (v_out) v_out[l] = v;
        tsr_tensor *ks[3], *vs[3];
        int nk = 0;
        if (P) {
            ks[nk] = a->prefix_k[l];
            vs[nk++] = a->prefix_v[l];
        }
        if (n_ctx) {
            ks[nk] = ctx_k[l];
            vs[nk++] = ctx_v[l];
        }
        ks[nk] = k;
        vs[nk++] = v;
        tsr_tensor *K = nk > 1 ? tsr_concat(c, ks, nk, 1) : k;
        tsr_tensor *Vv = nk > 1 ? tsr_concat(c, vs, nk, 1) : v;
        tsr_attn_opts o = {.causal = false, .mask = mask};
        tsr_tensor *att = tsr_reshape(c, tsr_attention(c, q, K, Vv, &o), TSR_DIMS(1, n, (int64_t)H * D));
        x = tsr_add(c, x, tsr_nn_linear_forward(c, &b->o_proj, att));
        h = tsr_nn_rmsnorm_forward(c, &b->post_attention_layernorm, x);
        tsr_tensor *mm = tsr_swiglu(c, tsr_nn_linear_forward(c, &b->gate_proj, h),
                                    tsr_nn_linear_forward(c, &b->up_proj, h));
        x = tsr_add(c, x, tsr_nn_linear_forward(c, &b->down_proj, mm));
    }
    return tsr_nn_rmsnorm_forward(c, &m->norm, x);
}

tsr_tensor *tsr_bita_example_loss(tsr_ctx *c, const tsr_nn_llama *m, const tsr_bita_train_adapter *a,
                                  const tsr_bita_example *ex, const int *starts, int n_groups,
                                  tsr_tensor **logits_out) {
    const int L = m->cfg.n_layers, k = a->k, P = a->n_prefix;
    int T0 = 0;
    for (int g = 0; g < n_groups; g++) {
        TSR_ASSERT(starts[g] >= 1 && starts[g] + k < ex->n_seq);
        if (starts[g] > T0) T0 = starts[g];
    }
    /* 1. ordinary rows 0..T0-1: causal, no prompt, no grad */
    tsr_tensor **ck = tsr_arena_alloc(&c->arena, sizeof(tsr_tensor *) * 2 * (size_t)L), **cv = ck + L;
    {
        tsr_tensor *ids = tsr_new(c, TSR_I32, TSR_DIMS(1, T0));
        tsr_tensor *pos = tsr_new(c, TSR_I32, TSR_DIMS(T0));
        tsr_tensor *mask = tsr_zeros(c, TSR_U8, TSR_DIMS(T0, T0));
        for (int t = 0; t < T0; t++) {
            tsr_i32(ids)[t] = ex->seq[t];
            tsr_i32(pos)[t] = t;
            memset(tsr_u8(mask) + (size_t)t * T0, 1, (size_t)t + 1);
        }
        tsr_tensor *x = tsr_embedding(c, m->embed_tokens.weight, ids);
        (void)tsr_bita_rows_forward(c, m, NULL, x, pos, mask, 0, NULL, NULL, ck, cv);
    }
    /* 2. every group's masks in one forward */
    const int n = n_groups * k, ld = P + T0 + n;
    tsr_tensor *ids = tsr_new(c, TSR_I32, TSR_DIMS(1, n));
    tsr_tensor *pos = tsr_new(c, TSR_I32, TSR_DIMS(n));
    tsr_tensor *tgt = tsr_new(c, TSR_I32, TSR_DIMS(1, n));
    tsr_tensor *mask = tsr_zeros(c, TSR_U8, TSR_DIMS(n, ld));
    for (int g = 0; g < n_groups; g++)
        for (int j = 0; j < k; j++) {
            int t = g * k + j, s = starts[g];
            tsr_i32(ids)[t] = j;
            tsr_i32(pos)[t] = s + j;
            tsr_i32(tgt)[t] = ex->seq[s + 1 + j];
            uint8_t *row = tsr_u8(mask) + (size_t)t * ld;
            memset(row, 1, (size_t)P + (size_t)s);
            memset(row + P + T0 + g * k, 1, (size_t)j + 1);
        }
    tsr_tensor *x = tsr_embedding(c, a->mask_emb, ids);
    tsr_tensor *h = tsr_bita_rows_forward(c, m, a, x, pos, mask, T0, ck, cv, NULL, NULL);
    tsr_tensor *logits = tsr_linear(c, h, m->lm_head, NULL);
    if (logits_out) *logits_out = logits;
    return tsr_cross_entropy(c, logits, tgt, NULL, -1, 0.0f);
}

/* ------------------------------------------------------------ data */

typedef struct {
    tsr_bita_example *ex;
    int n;
    int32_t *pool; /* every example's tokens */
} example_set;

static void set_free(example_set *s) {
    free(s->ex);
    free(s->pool);
    memset(s, 0, sizeof *s);
}

/* file: "BITAEX01", u32 count, then per example u32 n_seq, u32 n_prompt, ids */
static tsr_status set_save(const example_set *s, const char *path) {
    size_t bytes = 12;
    for (int i = 0; i < s->n; i++) bytes += 8 + 4 * (size_t)s->ex[i].n_seq;
    unsigned char *buf = malloc(bytes), *p = buf;
    if (!buf) return tsr_errorf(TSR_ERR_NOMEM, "bita: out of memory");
    memcpy(p, "BITAEX01", 8);
    uint32_t n = (uint32_t)s->n;
    memcpy(p + 8, &n, 4);
    p += 12;
    for (int i = 0; i < s->n; i++) {
        uint32_t h[2] = {(uint32_t)s->ex[i].n_seq, (uint32_t)s->ex[i].n_prompt};
        memcpy(p, h, 8);
        memcpy(p + 8, s->ex[i].seq, 4 * (size_t)s->ex[i].n_seq);
        p += 8 + 4 * (size_t)s->ex[i].n_seq;
    }
    tsr_status st = tsr_write_file_atomic(path, buf, bytes, NULL, 0);
    free(buf);
    return st;
}

static tsr_status set_load(example_set *s, const char *path, int V) {
    memset(s, 0, sizeof *s);
    char *buf;
    size_t len;
    tsr_status st = tsr_read_file(path, &buf, &len);
    if (st.code) return st;
    uint32_t n = 0;
    if (len < 12 || memcmp(buf, "BITAEX01", 8) != 0) goto bad;
    memcpy(&n, buf + 8, 4);
    if (n > (1u << 24)) goto bad;
    s->ex = calloc(n ? n : 1, sizeof *s->ex);
    s->pool = malloc(len);
    if (!s->ex || !s->pool) {
        free(buf);
        set_free(s);
        return tsr_errorf(TSR_ERR_NOMEM, "bita: out of memory");
    }
    size_t off = 12, used = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t h[2];
        if (len - off < 8) goto bad;
        memcpy(h, buf + off, 8);
        off += 8;
        if (h[0] < 2 || h[1] < 1 || h[1] >= h[0] || (len - off) / 4 < h[0]) goto bad;
        s->ex[i].seq = s->pool + used;
        memcpy(s->ex[i].seq, buf + off, 4 * (size_t)h[0]);
        for (uint32_t t = 0; t < h[0]; t++)
            if (s->ex[i].seq[t] < 0 || s->ex[i].seq[t] >= V) goto bad;
        s->ex[i].n_seq = (int)h[0];
        s->ex[i].n_prompt = (int)h[1];
        used += h[0];
        off += 4 * (size_t)h[0];
    }
    s->n = (int)n;
    free(buf);
    return tsr_ok();
bad:
    free(buf);
    set_free(s);
    return tsr_errorf(TSR_ERR_FORMAT, "%s: not a bita example file (delete it to regenerate)", path);
}

/* Prompts: windows of random training files (after a BOS), lengths in
 * [pmin, pmax]; responses: the base model's greedy continuation. */
static tsr_status make_examples(const tsr_bita_tune_opts *o, const tsr_lm_model *lm, tsr_bpe *bpe, int n_total,
                                tsr_rng *r, example_set *out) {
    memset(out, 0, sizeof *out);
    tsr_corpus corp;
    tsr_status s = tsr_corpus_list(&corp, o->data_dir, ".py");
    if (s.code) return s;
    /* "none": no held-out files, every file may give training prompts */
    char vbuf[PATH_MAX];
    if (!o->val_list || strcmp(o->val_list, "none") != 0)
        s = tsr_corpus_split_from_list(
            &corp, o->val_list ? o->val_list : tsr_find_shipped_or("data/python_val_files.txt", vbuf, sizeof vbuf),
            NULL);
    if (s.code) {
        tsr_corpus_free(&corp);
        return s;
    }
    int nf = 0;
    char **paths = tsr_corpus_paths(&corp, TSR_SPLIT_TRAIN, &nf);
    tsr_corpus_free(&corp);
    if (nf < 1) {
        tsr_corpus_paths_free(paths, nf);
        return tsr_errorf(TSR_ERR_ARG, "bita: %s has no training files", o->data_dir);
    }
    const int bos = tsr_bpe_special_id(bpe, "<|endoftext|>");
    const int per = o->prompt_max + o->response + 1;
    out->ex = calloc((size_t)n_total, sizeof *out->ex);
    out->pool = malloc(sizeof(int32_t) * (size_t)n_total * (size_t)per);
    int *gen = malloc(sizeof(int) * (size_t)o->response);
    int *prompt = malloc(sizeof(int) * (size_t)per);
    if (!out->ex || !out->pool || !gen || !prompt) {
        s = tsr_errorf(TSR_ERR_NOMEM, "bita: out of memory");
        goto done;
    }
    size_t used = 0;
    int tries = 0;
    while (out->n < n_total && tries < 20 * n_total) {
        tries++;
        const char *path = paths[tsr_rng_below(r, (uint32_t)nf)];
        char *text;
        size_t len;
        if (tsr_read_file(path, &text, &len).code) continue;
        int32_t *ids = malloc(sizeof(int32_t) * (len + 1));
        if (!ids) {
            free(text);
            continue;
        }
        size_t nt = tsr_bpe_encode(bpe, text, len, ids);
        free(text);
        int plen = o->prompt_min + (int)tsr_rng_below(r, (uint32_t)(o->prompt_max - o->prompt_min + 1));
        int body = bos >= 0 ? plen - 1 : plen;
        if (nt < (size_t)body + 8) {
            free(ids);
            continue;
        }
        size_t at = tsr_rng_below(r, (uint32_t)(nt - (size_t)body));
        int np = 0;
        if (bos >= 0) prompt[np++] = bos;
        for (int i = 0; i < body; i++) prompt[np++] = ids[at + (size_t)i];
        free(ids);
        int ng = 0;
        s = tsr_decode_greedy_generate(lm, prompt, np, o->response, bos, 0, gen, &ng, NULL);
        if (s.code) goto done;
        if (ng < o->k + 2) continue;
        tsr_bita_example *e = &out->ex[out->n++];
        e->seq = out->pool + used;
        memcpy(e->seq, prompt, sizeof(int) * (size_t)np);
        memcpy(e->seq + np, gen, sizeof(int) * (size_t)ng);
        e->n_prompt = np;
        e->n_seq = np + ng;
        used += (size_t)e->n_seq;
    }
    if (out->n < n_total) s = tsr_errorf(TSR_ERR_ARG, "bita: only %d of %d examples could be made", out->n, n_total);
done:
    tsr_corpus_paths_free(paths, nf);
    free(gen);
    free(prompt);
    if (s.code) set_free(out);
    return s;
}

/* up to G distinct starts in [n_prompt, n_seq - k - 1], sorted */
static int draw_starts(int *starts, const tsr_bita_example *e, int k, int G, tsr_rng *r) {
    int lo = e->n_prompt, hi = e->n_seq - k - 1;
    if (hi < lo) return 0;
    int span = hi - lo + 1, n = 0;
    if (span <= G) {
        for (int s = lo; s <= hi; s++) starts[n++] = s;
        return n;
    }
    while (n < G) {
        int s = lo + (int)tsr_rng_below(r, (uint32_t)span), dup = 0;
        for (int i = 0; i < n; i++) dup |= starts[i] == s;
        if (!dup) starts[n++] = s;
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && starts[j] < starts[j - 1]; j--) {
            int t = starts[j];
            starts[j] = starts[j - 1];
            starts[j - 1] = t;
        }
    return n;
}

/* acceptance table on held-out examples: rank of each label in its mask's logits */
static void eval_acc(tsr_ctx *c, const tsr_nn_llama *m, const tsr_bita_train_adapter *a, const example_set *s,
                     int from, int G, float acc[TSR_BITA_MAX_K][TSR_BITA_MAX_TOP], float *loss) {
    double hits[TSR_BITA_MAX_K][TSR_BITA_MAX_TOP] = {{0}}, cnt[TSR_BITA_MAX_K] = {0}, lsum = 0;
    int nl = 0;
    const int k = a->k, V = m->cfg.vocab;
    int starts[256];
    tsr_rng r;
    tsr_rng_seed(&r, 12345);
    bool ge = c->grad_enabled;
    c->grad_enabled = false;
    for (int i = from; i < s->n; i++) {
        int ng = draw_starts(starts, &s->ex[i], k, G, &r);
        if (!ng) continue;
        tsr_tensor *lg;
        tsr_tensor *l = tsr_bita_example_loss(c, m, a, &s->ex[i], starts, ng, &lg);
        lsum += tsr_f32(l)[0];
        nl++;
        for (int g = 0; g < ng; g++)
            for (int j = 0; j < k; j++) {
                const float *row = tsr_f32(lg) + (size_t)(g * k + j) * V;
                int label = s->ex[i].seq[starts[g] + 1 + j];
                int rank = 0;
                for (int v = 0; v < V; v++) rank += row[v] > row[label] || (row[v] == row[label] && v < label);
                cnt[j]++;
                for (int rr = rank; rr < TSR_BITA_MAX_TOP; rr++) hits[j][rr]++;
            }
        tsr_ctx_reset(c);
    }
    c->grad_enabled = ge;
    for (int j = 0; j < k; j++)
        for (int rr = 0; rr < TSR_BITA_MAX_TOP; rr++) acc[j][rr] = cnt[j] > 0 ? (float)(hits[j][rr] / cnt[j]) : 0;
    *loss = nl ? (float)(lsum / nl) : 0;
}

/* ------------------------------------------------------------ tuning loop */

void tsr_bita_tune_defaults(tsr_bita_tune_opts *o) {
    memset(o, 0, sizeof *o);
    static char model[4096]; /* the shipped base, from any working directory */
    o->model = tsr_find_model_or("models/pycode", model, sizeof model);
    o->data_dir = "/usr/lib/python3.11";
    o->k = 4;
    o->n_prefix = 16;
    o->groups = 8;
    o->examples = 2400;
    o->prompt_min = 16;
    o->prompt_max = 64;
    o->response = 96;
    o->eval_examples = 100;
    o->batch = 16;
    o->train = tsr_train_default_opts();
    o->train.out = NULL;
    o->train.steps = 1200;
    o->train.lr = 3e-2f;
    o->train.min_lr = 3e-4f;
    o->train.weight_decay = 0.0f;
    o->train.clip = 1.0f;
    o->train.warmup = 50;
    o->train.ckpt_every = 100;
    o->train.log_every = 10;
    o->train.reschedule = true; /* a resume may extend --steps (the cosine is re-spread) */
    o->train.seed = 1;
}

static void sibling(char *buf, size_t n, const char *out, const char *tag) {
    size_t len = strlen(out);
    const char *ext = ".safetensors";
    size_t el = strlen(ext);
    if (len > el && strcmp(out + len - el, ext) == 0) len -= el;
    snprintf(buf, n, "%.*s.%s", (int)len, out, tag);
}

static tsr_status load_base(const char *path, tsr_lm_model *lm, tsr_nn_llama *nn, tsr_params *p) {
    tsr_status s = tsr_lm_load(lm, path, -1, 0);
    if (s.code) return s;
    const tsr_lm_config *c = &lm->cfg;
    tsr_nn_llama_cfg g = {c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim, c->vocab_size,
                          c->seq_len, c->norm_eps, c->rope_theta, c->shared_classifier};
    tsr_params_init(p);
    s = tsr_nn_llama_init(nn, p, &g);
    if (s.code) {
        tsr_lm_model_free(lm);
        tsr_params_free(p);
        return s;
    }
    char buf[4096];
    struct stat sb;
    const char *file = path;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(buf, sizeof buf, "%s/model.safetensors", path);
        file = buf;
    }
    s = tsr_params_load(p, file, true);
    if (s.code) {
        tsr_nn_llama_free(nn);
        tsr_params_free(p);
        tsr_lm_model_free(lm);
        return s;
    }
    /* frozen: no weight grads are computed, no tape nodes for ordinary rows */
    for (int i = 0; i < p->n; i++) p->items[i]->requires_grad = false;
    return tsr_ok();
}

typedef struct {
    const tsr_bita_tune_opts *o;
    tsr_nn_llama *nn;
    tsr_bita_train_adapter *ta;
    tsr_bita_adapter *ad;
    example_set *set;
    tsr_bita_tune_result *res;
} run;

/* a batch of examples drawn with the step rng, each with its mask groups;
 * the grads are the mean over the batch. A batch without any group (too
 * short responses) is drawn again. */
static tsr_status step(void *ud, tsr_ctx *c, const int32_t *ids, int64_t n, float *loss_v) {
    (void)ids, (void)n;
    run *r = ud;
    const tsr_bita_tune_opts *o = r->o;
    int starts[64], nb = 0;
    float lsum = 0;
    while (nb == 0) {
        tsr_params_zero_grad(&r->ta->params);
        lsum = 0;
        for (int b = 0; b < o->batch; b++) {
            const tsr_bita_example *e = &r->set->ex[tsr_rng_below(&c->rng, (uint32_t)o->examples)];
            int ng = draw_starts(starts, e, o->k, o->groups, &c->rng);
            if (!ng) continue;
            tsr_tensor *l = tsr_bita_example_loss(c, r->nn, r->ta, e, starts, ng, NULL);
            lsum += tsr_f32(l)[0];
            nb++;
            tsr_backward(c, l);
            tsr_rng keep = c->rng; /* the reset must not rewind the draws */
            tsr_ctx_reset(c);
            c->rng = keep;
            c->training = true, c->grad_enabled = true;
        }
    }
    for (int i = 0; i < r->ta->params.n; i++) {
        tsr_tensor *p = r->ta->params.items[i];
        if (!p->grad) continue;
        for (int64_t j = 0; j < p->numel; j++) p->grad[j] /= (float)nb;
    }
    *loss_v = lsum / nb;
    return tsr_ok();
}

/* the acceptance table on the held-back examples, stored in the adapter */
static tsr_status eval(void *ud, tsr_train_metrics *m) {
    run *r = ud;
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 24);
    float el;
    eval_acc(&c, r->nn, r->ta, r->set, r->o->examples, r->o->groups, r->ad->acc, &el);
    tsr_ctx_free(&c);
    memcpy(r->res->acc, r->ad->acc, sizeof r->ad->acc);
    char nm[32];
    for (int j = 0; j < r->o->k; j++) {
        snprintf(nm, sizeof nm, "top1_mask%d", j);
        tsr_train_metric(m, nm, r->ad->acc[j][0]);
    }
    return tsr_ok();
}

static tsr_status save(void *ud, const char *path, const char *const *meta, const tsr_train_metrics *ev,
                       bool final) {
    (void)meta, (void)ev, (void)final;
    run *r = ud;
    tsr_bita_train_adapter_export(r->ta, r->ad);
    return tsr_bita_adapter_save(r->ad, path);
}

tsr_status tsr_bita_tune(const tsr_bita_tune_opts *o, tsr_bita_tune_result *res) {
    memset(res, 0, sizeof *res);
    const char *out = o->train.out;
    if (o->k < 1 || o->k > TSR_BITA_MAX_K || o->n_prefix < 1 || o->groups < 1 || o->groups > 64 || o->batch < 1 ||
        o->train.steps < 1 || o->examples < 1 || o->eval_examples < 0 || o->prompt_min < 2 ||
        o->prompt_max < o->prompt_min || o->response < o->k + 2 || !(o->train.lr > 0) || !out)
        return tsr_errorf(TSR_ERR_ARG, "bita tune: bad options (k 1..%d, groups 1..64, prompt_min >= 2, "
                                       "response >= k + 2, positive sizes and lr)",
                          TSR_BITA_MAX_K);
    tsr_status s = tsr_output_check(out);
    if (s.code) return s;
    s = tsr_bita_file_hash(o->model, res->base_hash_before);
    if (s.code) return s;
    tsr_lm_model lm;
    tsr_nn_llama nn;
    tsr_params base;
    s = load_base(o->model, &lm, &nn, &base);
    if (s.code) return s;
    if (o->prompt_max + o->response > lm.cfg.seq_len) {
        s = tsr_errorf(TSR_ERR_ARG, "bita tune: prompt_max + response = %d exceeds the context of %d",
                       o->prompt_max + o->response, lm.cfg.seq_len);
        tsr_nn_llama_free(&nn);
        tsr_params_free(&base);
        tsr_lm_model_free(&lm);
        return s;
    }
    char data_path[4096], tok_path[4096];
    sibling(data_path, sizeof data_path, out, "data.bin");
    tsr_bita_train_adapter ta;
    tsr_bita_train_adapter_init(&ta, &nn.cfg, o->k, o->n_prefix, o->train.seed);
    tsr_bita_adapter ad;
    memset(&ad, 0, sizeof ad);
    example_set set;
    memset(&set, 0, sizeof set);
    tsr_bpe bpe;
    memset(&bpe, 0, sizeof bpe);
    s = tsr_bita_adapter_alloc(&ad, &lm.cfg, o->k, o->n_prefix);
    if (s.code) goto done;
    memcpy(ad.base_hash, res->base_hash_before, 17);

    /* data: cached next to the adapter */
    double t0 = tsr_time();
    const int n_total = o->examples + o->eval_examples;
    struct stat sb;
    if (o->train.resume && stat(data_path, &sb) == 0) {
        s = set_load(&set, data_path, lm.cfg.vocab_size);
        if (!s.code && set.n != n_total)
            s = tsr_errorf(TSR_ERR_ARG, "%s holds %d examples, the options ask for %d", data_path, set.n, n_total);
        if (s.code) goto done;
    } else {
        struct stat ds;
        if (stat(o->model, &ds) == 0 && S_ISDIR(ds.st_mode)) snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", o->model);
        else sibling(tok_path, sizeof tok_path, o->model, "tokenizer.json");
        s = tsr_bpe_load(&bpe, tok_path);
        if (s.code) goto done;
        tsr_rng dr;
        tsr_rng_seed(&dr, o->train.seed * 7919 + 17);
        s = make_examples(o, &lm, &bpe, n_total, &dr, &set);
        if (s.code) goto done;
        s = set_save(&set, data_path);
        if (s.code) goto done;
    }
    res->n_examples = set.n;
    res->data_s = tsr_time() - t0;

    char v[8][40];
    snprintf(v[0], 40, "%d", o->k);
    snprintf(v[1], 40, "%d", o->n_prefix);
    snprintf(v[2], 40, "%d", o->groups);
    snprintf(v[3], 40, "%d", o->examples);
    snprintf(v[4], 40, "%d", o->batch);
    snprintf(v[5], 40, "%s", res->base_hash_before);
    const char *cfg[] = {"bita.k", v[0], "bita.prompt_tokens", v[1], "train.groups", v[2], "train.examples", v[3],
                         "train.batch", v[4], "bita.base_hash", v[5], NULL};
    run r = {o, &nn, &ta, &ad, &set, res};
    tsr_train_family f = {.name = "bita", .params = &ta.params, .config = cfg, .items_per_step = o->batch,
                          .unit = "ex", .arena_bytes = 1 << 24, .rng_salt = 0xb17a, .ud = &r, .step = step,
                          .eval = eval, .save = save};
    tsr_train_result tr;
    s = tsr_train_run(&f, &o->train, &tr);
    res->train = tr;
    res->steps_done = tr.step;
    res->final_loss = tr.last_loss;
    res->train_s = tr.seconds;
    res->stopped = !tr.finished;
    if (s.code) goto done;
    s = tsr_bita_file_hash(o->model, res->base_hash_after);
done:
    set_free(&set);
    tsr_bpe_free(&bpe);
    tsr_bita_adapter_free(&ad);
    tsr_bita_train_adapter_free(&ta);
    tsr_nn_llama_free(&nn);
    tsr_params_free(&base);
    tsr_lm_model_free(&lm);
    return s;
}
