/* tessera io: Llama-family models and byte-level BPE tokenizers in GGUF,
 * with llama.cpp's names (see include/tessera/gguf.h). Reading presents the
 * GGUF tensors under HF names to the safetensors model loader (so every
 * shape, type and value check is the same), with q/k rows permuted back to
 * the rotate-half layout and Q8_0 blocks split into int8 values and f32
 * scales; writing goes the other way. */
#include "tessera/gguf.h"
#include "tessera/bpe.h"
#include "tessera/lm.h"
#include "io/lm_st.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ rope layout */

/* llama.cpp's "llama" graph rotates rows (2i, 2i+1) of each head; HF's
 * rotate-half rows (i, i + D/2). Row g = h*D + 2i + j of the GGUF tensor is
 * row h*D + j*D/2 + i of ours. */
static int gguf_row_of(int r, int D) {
    int h = r / D, k = r % D, half = D / 2;
    return h * D + (k < half ? 2 * k : 2 * (k - half) + 1);
}

/* ------------------------------------------------------------ read */

typedef struct {
    tsr_st_file f;
    int cap_t, cap_m;
    void **bufs;
    int n_bufs, cap_bufs;
} synth;

static void *keep(synth *s, size_t n) {
    if (s->n_bufs == s->cap_bufs) {
        s->cap_bufs = s->cap_bufs ? s->cap_bufs * 2 : 64;
        s->bufs = realloc(s->bufs, sizeof *s->bufs * (size_t)s->cap_bufs);
        TSR_ASSERT(s->bufs);
    }
    void *p = malloc(n ? n : 1);
    TSR_ASSERT(p);
    return s->bufs[s->n_bufs++] = p;
}

static void synth_free(synth *s) {
    for (int i = 0; i < s->n_bufs; i++) free(s->bufs[i]);
    free(s->bufs);
    tsr_st_free(&s->f);
}

static void add_meta(synth *s, const char *k, const char *v) {
    if (s->f.n_meta == s->cap_m) {
        s->cap_m = s->cap_m ? s->cap_m * 2 : 16;
        s->f.meta_keys = realloc(s->f.meta_keys, sizeof(char *) * (size_t)s->cap_m);
        s->f.meta_vals = realloc(s->f.meta_vals, sizeof(char *) * (size_t)s->cap_m);
        TSR_ASSERT(s->f.meta_keys && s->f.meta_vals);
    }
    s->f.meta_keys[s->f.n_meta] = strdup(k);
    s->f.meta_vals[s->f.n_meta] = strdup(v);
    TSR_ASSERT(s->f.meta_keys[s->f.n_meta] && s->f.meta_vals[s->f.n_meta]);
    s->f.n_meta++;
}

static tsr_st_tensor *add_tensor(synth *s, const char *name, tsr_st_dtype dt, int ndim, const int64_t *shape,
                                 const void *data, size_t nbytes) {
    if (s->f.n == s->cap_t) {
        s->cap_t = s->cap_t ? s->cap_t * 2 : 64;
        s->f.t = realloc(s->f.t, sizeof *s->f.t * (size_t)s->cap_t);
        TSR_ASSERT(s->f.t);
    }
    tsr_st_tensor *t = &s->f.t[s->f.n++];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    TSR_ASSERT(t->name);
    t->dtype = dt;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->data = data;
    t->nbytes = nbytes;
    return t;
}

/* One GGUF tensor under an HF name; q/k (heads > 0) rows permuted back. */
static tsr_status map_tensor(synth *s, const tsr_gguf_tensor *g, const char *hf, int heads, int D,
                             const char *path) {
    int64_t shape[4];
    for (int d = 0; d < g->ndim; d++) shape[d] = g->ne[g->ndim - 1 - d];
    bool perm = heads > 0 && g->ndim == 2 && g->ne[1] == (int64_t)heads * D;
    int64_t rows = g->ndim == 2 ? g->ne[1] : 1, cols = g->ne[0];
    if (g->type == TSR_GGML_F32 || g->type == TSR_GGML_F16 || g->type == TSR_GGML_BF16) {
        tsr_st_dtype dt = g->type == TSR_GGML_F32 ? TSR_ST_F32 : g->type == TSR_GGML_F16 ? TSR_ST_F16 : TSR_ST_BF16;
        const void *data = g->data;
        if (perm) {
            size_t rb = g->nbytes / (size_t)rows;
            char *d = keep(s, g->nbytes);
            for (int64_t r = 0; r < rows; r++)
                memcpy(d + (size_t)r * rb, (const char *)g->data + (size_t)gguf_row_of((int)r, D) * rb, rb);
            data = d;
        }
        add_tensor(s, hf, dt, g->ndim, shape, data, g->nbytes);
        return tsr_ok();
    }
    if (g->type != TSR_GGML_Q8_0)
        return tsr_errorf(TSR_ERR_FORMAT,
                          "%s: tensor '%s' has type %s; tessera reads F32, F16, BF16 and Q8_0 (requantise it, e.g. "
                          "llama-quantize --allow-requantize MODEL OUT Q8_0)",
                          path, g->name, tsr_ggml_type_name(g->type));
    if (g->ndim != 2) return tsr_errorf(TSR_ERR_SHAPE, "%s: Q8_0 tensor '%s' is not 2-D", path, g->name);
    /* blocks (f16 d, 32 int8) -> int8 (rows, cols) + f32 scales (rows, cols/32) */
    int64_t nb = cols / TSR_GGML_Q8_0_BLOCK;
    int8_t *q = keep(s, (size_t)(rows * cols));
    float *sc = keep(s, sizeof(float) * (size_t)(rows * nb));
    const unsigned char *src = g->data;
    for (int64_t r = 0; r < rows; r++) {
        int64_t sr = perm ? gguf_row_of((int)r, D) : r;
        for (int64_t b = 0; b < nb; b++) {
            const unsigned char *blk = src + ((size_t)sr * (size_t)nb + (size_t)b) * 34;
            uint16_t h;
            memcpy(&h, blk, 2);
            sc[r * nb + b] = tsr_f16_to_f32(h);
            memcpy(q + r * cols + b * TSR_GGML_Q8_0_BLOCK, blk + 2, TSR_GGML_Q8_0_BLOCK);
        }
    }
    add_tensor(s, hf, TSR_ST_I8, 2, shape, q, (size_t)(rows * cols));
    char sn[300];
    snprintf(sn, sizeof sn, "%s_scale", hf);
    int64_t ss[2] = {rows, nb};
    add_tensor(s, sn, TSR_ST_F32, 2, ss, sc, sizeof(float) * (size_t)(rows * nb));
    return tsr_ok();
}

/* an integer hyper-parameter in [lo, hi] */
static tsr_status get_hp(const tsr_gguf_file *f, const char *key, int *out, bool required, int dflt, int lo, int hi,
                         const char *path) {
    int64_t v;
    int r = tsr_gguf_get_int(f, key, &v);
    if (r == 0) {
        if (required) return tsr_errorf(TSR_ERR_FORMAT, "%s: GGUF metadata lacks '%s'", path, key);
        *out = dflt;
        return tsr_ok();
    }
    if (r < 0) return tsr_errorf(TSR_ERR_FORMAT, "%s: GGUF metadata '%s' is not an integer", path, key);
    if (v < lo || v > hi)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: GGUF metadata '%s' = %lld is out of range [%d, %d]", path, key,
                          (long long)v, lo, hi);
    *out = (int)v;
    return tsr_ok();
}

static tsr_status get_fp(const tsr_gguf_file *f, const char *key, float *out, float dflt, const char *path) {
    double v;
    int r = tsr_gguf_get_float(f, key, &v);
    if (r < 0) return tsr_errorf(TSR_ERR_FORMAT, "%s: GGUF metadata '%s' is not a number", path, key);
    if (r > 0 && !isfinite(v)) return tsr_errorf(TSR_ERR_FORMAT, "%s: GGUF metadata '%s' is not finite", path, key);
    *out = r ? (float)v : dflt;
    return tsr_ok();
}

static bool str_is(const tsr_gguf_str *s, const char *v) { return s->len == strlen(v) && !memcmp(s->s, v, s->len); }

/* The GGUF Llama hyper-parameters as HF config metadata, and *tied. */
static tsr_status gguf_config(synth *s, const tsr_gguf_file *f, const char *path, tsr_lm_config *c) {
    tsr_gguf_str arch;
    int r = tsr_gguf_get_str(f, "general.architecture", &arch);
    if (r <= 0) return tsr_errorf(TSR_ERR_FORMAT, "%s: GGUF metadata lacks 'general.architecture'", path);
    if (!str_is(&arch, "llama"))
        return tsr_errorf(TSR_ERR_FORMAT, "%s: architecture '%.*s' is not supported (tessera reads 'llama')", path,
                          (int)(arch.len > 40 ? 40 : arch.len), arch.s);
    tsr_status st;
    const int BIG = 1 << 30;
    memset(c, 0, sizeof *c);
    if ((st = get_hp(f, "llama.embedding_length", &c->dim, true, 0, 1, BIG, path)).code) return st;
    if ((st = get_hp(f, "llama.block_count", &c->n_layers, true, 0, 1, BIG, path)).code) return st;
    if ((st = get_hp(f, "llama.feed_forward_length", &c->hidden_dim, true, 0, 1, BIG, path)).code) return st;
    if ((st = get_hp(f, "llama.attention.head_count", &c->n_heads, true, 0, 1, BIG, path)).code) return st;
    if ((st = get_hp(f, "llama.attention.head_count_kv", &c->n_kv_heads, false, c->n_heads, 1, BIG, path)).code)
        return st;
    if ((st = get_hp(f, "llama.context_length", &c->seq_len, true, 0, 1, BIG, path)).code) return st;
    const tsr_gguf_tensor *emb = tsr_gguf_find_tensor(f, "token_embd.weight");
    if (!emb) return tsr_errorf(TSR_ERR_FORMAT, "%s: missing tensor 'token_embd.weight'", path);
    int dv = emb->ndim == 2 && emb->ne[1] < BIG ? (int)emb->ne[1] : 0;
    if ((st = get_hp(f, "llama.vocab_size", &c->vocab_size, false, dv, 1, BIG, path)).code) return st;
    if ((st = get_fp(f, "llama.rope.freq_base", &c->rope_theta, 10000.0f, path)).code) return st;
    if ((st = get_fp(f, "llama.attention.layer_norm_rms_epsilon", &c->norm_eps, 1e-5f, path)).code) return st;
    c->shared_classifier = tsr_gguf_find_tensor(f, "output.weight") == NULL;
    c->rope_layout = TSR_LM_ROPE_HALF;
    if ((st = tsr_lm_config_check(c, path)).code) return st;
    int D = c->dim / c->n_heads, rd, kl, vl;
    if ((st = get_hp(f, "llama.rope.dimension_count", &rd, false, D, 0, BIG, path)).code) return st;
    if ((st = get_hp(f, "llama.attention.key_length", &kl, false, D, 0, BIG, path)).code) return st;
    if ((st = get_hp(f, "llama.attention.value_length", &vl, false, D, 0, BIG, path)).code) return st;
    if (rd != D || kl != D || vl != D)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: rope/key/value dimensions %d/%d/%d differ from the head size %d "
                          "(unsupported)", path, rd, kl, vl, D);
    tsr_gguf_str sc;
    if (tsr_gguf_get_str(f, "llama.rope.scaling.type", &sc) == 1 && !str_is(&sc, "none"))
        return tsr_errorf(TSR_ERR_FORMAT, "%s: RoPE scaling '%.*s' is not supported", path,
                          (int)(sc.len > 20 ? 20 : sc.len), sc.s);
    if (tsr_gguf_find_tensor(f, "rope_freqs.weight"))
        return tsr_errorf(TSR_ERR_FORMAT, "%s: RoPE frequency factors (rope_freqs) are not supported", path);
    char v[64];
#define META_I(k, x) (snprintf(v, sizeof v, "%d", (x)), add_meta(s, k, v))
#define META_F(k, x) (snprintf(v, sizeof v, "%.9g", (double)(x)), add_meta(s, k, v))
    META_I("hidden_size", c->dim);
    META_I("num_hidden_layers", c->n_layers);
    META_I("num_attention_heads", c->n_heads);
    META_I("num_key_value_heads", c->n_kv_heads);
    META_I("intermediate_size", c->hidden_dim);
    META_I("vocab_size", c->vocab_size);
    META_I("max_position_embeddings", c->seq_len);
    META_F("rope_theta", c->rope_theta);
    META_F("rms_norm_eps", c->norm_eps);
#undef META_I
#undef META_F
    add_meta(s, "tie_word_embeddings", c->shared_classifier ? "true" : "false");
    return tsr_ok();
}

tsr_status tsr_lm_gguf_model(tsr_lm_model *m, const tsr_gguf_file *f, const char *path, int wtype, int group_size) {
    memset(m, 0, sizeof *m);
    synth s;
    memset(&s, 0, sizeof s);
    tsr_lm_config c;
    memset(&c, 0, sizeof c);
    tsr_status st = gguf_config(&s, f, path, &c);
    const int D = c.dim / (c.n_heads ? c.n_heads : 1);
    bool q8 = false;
    for (int i = 0; i < f->n_tensors && !st.code; i++) {
        const tsr_gguf_tensor *g = &f->t[i];
        char hf[160];
        int l = -1, used = 0, heads = 0;
        char leaf[64];
        if (strcmp(g->name, "token_embd.weight") == 0) snprintf(hf, sizeof hf, "model.embed_tokens.weight");
        else if (strcmp(g->name, "output_norm.weight") == 0) snprintf(hf, sizeof hf, "model.norm.weight");
        else if (strcmp(g->name, "output.weight") == 0) snprintf(hf, sizeof hf, "lm_head.weight");
        else if (sscanf(g->name, "blk.%d.%63[a-z_].weight%n", &l, leaf, &used) == 2 && !g->name[used] && l >= 0 &&
                 l < c.n_layers) {
            static const char *const map[][2] = {
                {"attn_norm", "input_layernorm"}, {"ffn_norm", "post_attention_layernorm"},
                {"attn_q", "self_attn.q_proj"},   {"attn_k", "self_attn.k_proj"},
                {"attn_v", "self_attn.v_proj"},   {"attn_output", "self_attn.o_proj"},
                {"ffn_gate", "mlp.gate_proj"},    {"ffn_up", "mlp.up_proj"},
                {"ffn_down", "mlp.down_proj"}};
            const char *to = NULL;
            for (size_t k = 0; k < sizeof map / sizeof *map; k++)
                if (strcmp(leaf, map[k][0]) == 0) to = map[k][1];
            if (!to) continue; /* a tensor the llama graph does not use */
            snprintf(hf, sizeof hf, "model.layers.%d.%s.weight", l, to);
            if (strcmp(leaf, "attn_q") == 0) heads = c.n_heads;
            if (strcmp(leaf, "attn_k") == 0) heads = c.n_kv_heads;
        } else {
            size_t nl = strlen(g->name);
            if (nl > 5 && strcmp(g->name + nl - 5, ".bias") == 0)
                st = tsr_errorf(TSR_ERR_FORMAT, "%s: tensor '%s': biases are not part of the Llama graph tessera runs",
                                path, g->name);
            continue;
        }
        q8 |= g->type == TSR_GGML_Q8_0;
        st = map_tensor(&s, g, hf, heads, D, path);
    }
    if (!st.code && q8) {
        add_meta(&s, "quant", "q8");
        add_meta(&s, "group_size", "32");
    }
    if (!st.code) st = tsr_lm_load_st_file(m, &s.f, path, wtype, group_size);
    synth_free(&s);
    return st;
}

tsr_status tsr_lm_load_gguf(tsr_lm_model *m, const char *path, int wtype, int group_size) {
    memset(m, 0, sizeof *m);
    tsr_gguf_file f;
    tsr_status st = tsr_gguf_read(path, &f);
    if (st.code) return st;
    st = tsr_lm_gguf_model(m, &f, path, wtype, group_size);
    tsr_gguf_free(&f);
    return st;
}

/* ------------------------------------------------------------ tokenizer */

enum { TOKTYPE_NORMAL = 1, TOKTYPE_CONTROL = 3, TOKTYPE_USER_DEFINED = 4 };

/* NUL-terminated copies of a string array (NULL with *bad set when an
 * entry holds a NUL) */
static char **str_list(const tsr_gguf_kv *kv, uint64_t *bad) {
    char **out = calloc((size_t)kv->n + 1, sizeof *out);
    TSR_ASSERT(out);
    for (uint64_t i = 0; i < kv->n; i++) {
        const tsr_gguf_str *s = &kv->strs[i];
        if (memchr(s->s, 0, s->len)) {
            *bad = i;
            for (uint64_t j = 0; j < i; j++) free(out[j]);
            free(out);
            return NULL;
        }
        out[i] = malloc(s->len + 1);
        TSR_ASSERT(out[i]);
        memcpy(out[i], s->s, s->len);
        out[i][s->len] = 0;
    }
    return out;
}

static void free_list(char **l, uint64_t n) {
    if (!l) return;
    for (uint64_t i = 0; i < n; i++) free(l[i]);
    free(l);
}

tsr_status tsr_bpe_from_gguf(tsr_bpe *b, const tsr_gguf_file *f, const char *path) {
    memset(b, 0, sizeof *b);
    tsr_gguf_str model;
    if (tsr_gguf_get_str(f, "tokenizer.ggml.model", &model) != 1)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: no tokenizer in the file (tokenizer.ggml.model); pass --tokenizer",
                          path);
    if (!str_is(&model, "gpt2"))
        return tsr_errorf(TSR_ERR_FORMAT, "%s: tokenizer model '%.*s' is not supported (tessera reads byte-level BPE, "
                          "'gpt2'); pass --tokenizer", path, (int)(model.len > 20 ? 20 : model.len), model.s);
    const tsr_gguf_kv *tk = tsr_gguf_find(f, "tokenizer.ggml.tokens");
    const tsr_gguf_kv *ty = tsr_gguf_find(f, "tokenizer.ggml.token_type");
    const tsr_gguf_kv *mg = tsr_gguf_find(f, "tokenizer.ggml.merges");
    if (!tk || tk->type != TSR_GGUF_ARR || tk->arr_type != TSR_GGUF_STR)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: tokenizer.ggml.tokens is missing or not a string array", path);
    if (mg && (mg->type != TSR_GGUF_ARR || mg->arr_type != TSR_GGUF_STR))
        return tsr_errorf(TSR_ERR_FORMAT, "%s: tokenizer.ggml.merges is not a string array", path);
    if (ty && (ty->type != TSR_GGUF_ARR || ty->n != tk->n || ty->arr_type == TSR_GGUF_STR ||
               ty->arr_type == TSR_GGUF_F32 || ty->arr_type == TSR_GGUF_F64))
        return tsr_errorf(TSR_ERR_FORMAT, "%s: tokenizer.ggml.token_type is not an integer array of one entry per "
                          "token", path);
    if (tk->n > (1u << 22) || (mg && mg->n >= tk->n))
        return tsr_errorf(TSR_ERR_FORMAT, "%s: %llu tokens and %llu merges: too many", path,
                          (unsigned long long)tk->n, (unsigned long long)(mg ? mg->n : 0));
    uint64_t bad = 0;
    char **toks = str_list(tk, &bad);
    if (!toks) return tsr_errorf(TSR_ERR_FORMAT, "%s: token %llu holds a NUL byte", path, (unsigned long long)bad);
    char **merges = mg ? str_list(mg, &bad) : NULL;
    if (mg && !merges) {
        free_list(toks, tk->n);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: merge %llu holds a NUL byte", path, (unsigned long long)bad);
    }
    uint8_t *special = calloc((size_t)tk->n + 1, 1);
    TSR_ASSERT(special);
    for (uint64_t i = 0; ty && i < tk->n; i++) {
        int64_t t = 0;
        tsr_gguf_arr_int(ty, i, &t);
        special[i] = t == TOKTYPE_CONTROL || t == TOKTYPE_USER_DEFINED;
    }
    tsr_status st = tsr_bpe_from_lists(b, (const char *const *)toks, special, (int)tk->n,
                                       (const char *const *)merges, mg ? (int)mg->n : 0, path);
    free(special);
    free_list(toks, tk->n);
    free_list(merges, mg ? mg->n : 0);
    return st;
}

tsr_status tsr_bpe_load_gguf(tsr_bpe *b, const char *path, char *pre, size_t pre_cap) {
    memset(b, 0, sizeof *b);
    if (pre && pre_cap) pre[0] = 0;
    tsr_gguf_file f;
    tsr_status st = tsr_gguf_read(path, &f);
    if (st.code) return st;
    tsr_gguf_str p;
    if (pre && pre_cap && tsr_gguf_get_str(&f, "tokenizer.ggml.pre", &p) == 1)
        snprintf(pre, pre_cap, "%.*s", (int)(p.len < pre_cap ? p.len : pre_cap - 1), p.s);
    st = tsr_bpe_from_gguf(b, &f, path);
    tsr_gguf_free(&f);
    return st;
}

/* ------------------------------------------------------------ write */

/* llama.cpp's reference Q8_0 quantiser (quantize_row_q8_0_ref): per block
 * d = max|x| / 127, q = round(x / d) computed as x * (1/d), d stored f16 */
static void quant_q8_0(unsigned char *dst, const float *x, int n) {
    for (int b = 0; b < n / TSR_GGML_Q8_0_BLOCK; b++, x += TSR_GGML_Q8_0_BLOCK, dst += 34) {
        float amax = 0;
        for (int j = 0; j < TSR_GGML_Q8_0_BLOCK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t h = tsr_f32_to_f16(d);
        memcpy(dst, &h, 2);
        for (int j = 0; j < TSR_GGML_Q8_0_BLOCK; j++) dst[2 + j] = (unsigned char)(int8_t)roundf(x[j] * id);
    }
}

/* rows of w (dequantised; q/k rows reordered when perm_D > 0) as a GGUF tensor of type */
static tsr_status put_mat(tsr_gguf_writer *w, const char *name, const tsr_lm_mat *m, const float *f32rows,
                          int perm_D, uint32_t type) {
    /* rows that are not whole Q8_0 blocks go to F16, as llama.cpp's converter does */
    if (type == TSR_GGML_Q8_0 && m->cols % TSR_GGML_Q8_0_BLOCK) type = TSR_GGML_F16;
    size_t rb = tsr_ggml_nbytes(type, (uint64_t)m->cols);
    unsigned char *d = malloc(rb * (size_t)m->rows + 1);
    float *row = malloc(sizeof(float) * (size_t)m->cols);
    if (!d || !row) {
        free(d);
        free(row);
        return tsr_errorf(TSR_ERR_NOMEM, "out of memory writing '%s'", name);
    }
    for (int r = 0; r < m->rows; r++) {
        int src = r;
        if (perm_D) { /* GGUF row h*D + 2i + j holds our row h*D + j*D/2 + i */
            int h = r / perm_D, k = r % perm_D, half = perm_D / 2;
            src = h * perm_D + (k % 2) * half + k / 2;
        }
        if (f32rows) memcpy(row, f32rows + (size_t)src * (size_t)m->cols, sizeof(float) * (size_t)m->cols);
        else tsr_lm_mat_row(m, src, row);
        unsigned char *o = d + (size_t)r * rb;
        if (type == TSR_GGML_F32) memcpy(o, row, rb);
        else if (type == TSR_GGML_BF16 || type == TSR_GGML_F16)
            for (int i = 0; i < m->cols; i++) {
                uint16_t h = type == TSR_GGML_BF16 ? tsr_f32_to_bf16(row[i]) : tsr_f32_to_f16(row[i]);
                memcpy(o + 2 * (size_t)i, &h, 2);
            }
        else quant_q8_0(o, row, m->cols);
    }
    int64_t ne[2] = {m->cols, m->rows};
    tsr_gguf_add_tensor(w, name, type, 2, ne, d);
    free(d);
    free(row);
    return tsr_ok();
}

static void put_vec(tsr_gguf_writer *w, const char *name, const float *v, int n) {
    int64_t ne[1] = {n};
    tsr_gguf_add_tensor(w, name, TSR_GGML_F32, 1, ne, v);
}

static tsr_status put_tokenizer(tsr_gguf_writer *w, const tsr_bpe *tok, int bos, int eos, int V) {
    if (tok->vocab_size > V)
        return tsr_errorf(TSR_ERR_ARG, "the tokenizer has %d tokens but the model's vocabulary is %d", tok->vocab_size,
                          V);
    char **toks = calloc((size_t)V, sizeof *toks);
    int32_t *types = malloc(sizeof(int32_t) * (size_t)V);
    char **merges = calloc((size_t)tok->n_merges + 1, sizeof *merges);
    TSR_ASSERT(toks && types && merges);
    for (int i = 0; i < V; i++) {
        if (i < tok->vocab_size) {
            toks[i] = tsr_bpe_token_text(tok, i);
            types[i] = tok->special[i] ? TOKTYPE_CONTROL : TOKTYPE_NORMAL;
        } else {
            toks[i] = malloc(32);
            TSR_ASSERT(toks[i]);
            snprintf(toks[i], 32, "[PAD%d]", i);
            types[i] = TOKTYPE_CONTROL;
        }
    }
    for (int r = 0; r < tok->n_merges; r++) {
        char *a = tsr_bpe_token_text(tok, tok->merges[r][0]), *b = tsr_bpe_token_text(tok, tok->merges[r][1]);
        size_t la = strlen(a), lb = strlen(b);
        merges[r] = malloc(la + lb + 2);
        TSR_ASSERT(merges[r]);
        memcpy(merges[r], a, la);
        merges[r][la] = ' ';
        memcpy(merges[r] + la + 1, b, lb + 1);
        free(a);
        free(b);
    }
    tsr_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    /* llama.cpp's "gpt-2" pre-tokenizer is GPT-2's regex, which src/io/bpe.c implements */
    tsr_gguf_set_str(w, "tokenizer.ggml.pre", "gpt-2");
    tsr_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, (size_t)V);
    tsr_gguf_set_arr(w, "tokenizer.ggml.token_type", TSR_GGUF_I32, types, (size_t)V);
    tsr_gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, NULL, (size_t)tok->n_merges);
    if (bos >= 0) tsr_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    if (eos >= 0) tsr_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    /* the BOS goes in front of every prompt (as tsr_lm_generate_bpe does) */
    tsr_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", bos >= 0);
    tsr_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    for (int i = 0; i < V; i++) free(toks[i]);
    for (int r = 0; r < tok->n_merges; r++) free(merges[r]);
    free(toks);
    free(types);
    free(merges);
    return tsr_ok();
}

tsr_status tsr_lm_save_gguf(const tsr_lm_model *m, const tsr_bpe *tok, int bos, int eos, uint32_t type,
                            const char *path) {
    const tsr_lm_config *c = &m->cfg;
    const int C = c->dim, D = C / c->n_heads;
    if (type != TSR_GGML_F32 && type != TSR_GGML_BF16 && type != TSR_GGML_Q8_0)
        return tsr_errorf(TSR_ERR_ARG, "%s: GGUF type %s is not written (F32, BF16 or Q8_0)", path,
                          tsr_ggml_type_name(type));
    const int perm = c->rope_layout == TSR_LM_ROPE_HALF ? D : 0;
    tsr_gguf_writer *w = tsr_gguf_writer_new();
    tsr_gguf_set_str(w, "general.architecture", "llama");
    tsr_gguf_set_str(w, "general.name", "tessera");
    /* llama_ftype: ALL_F32 0, MOSTLY_Q8_0 7, MOSTLY_BF16 32 */
    tsr_gguf_set_u32(w, "general.file_type", type == TSR_GGML_F32 ? 0 : type == TSR_GGML_Q8_0 ? 7 : 32);
    if (type == TSR_GGML_Q8_0) tsr_gguf_set_u32(w, "general.quantization_version", 2);
    tsr_gguf_set_u32(w, "llama.context_length", (uint32_t)c->seq_len);
    tsr_gguf_set_u32(w, "llama.embedding_length", (uint32_t)C);
    tsr_gguf_set_u32(w, "llama.block_count", (uint32_t)c->n_layers);
    tsr_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    tsr_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)D);
    tsr_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads);
    tsr_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    tsr_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
    tsr_gguf_set_f32(w, "llama.rope.freq_base", c->rope_theta);
    tsr_gguf_set_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size);
    tsr_status st = tok ? put_tokenizer(w, tok, bos, eos, c->vocab_size) : tsr_ok();
    tsr_lm_mat emb = {TSR_LM_W_F32, c->vocab_size, C, m->tok_emb, NULL, 0};
    if (!st.code) st = put_mat(w, "token_embd.weight", &emb, m->tok_emb, 0, type);
    char nm[96];
    for (int l = 0; l < c->n_layers && !st.code; l++) {
        const tsr_lm_layer *L = &m->layers[l];
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        put_vec(w, nm, L->rms_att, C);
        struct {
            const char *leaf;
            const tsr_lm_mat *w;
            int perm;
        } mats[] = {{"attn_q", &L->wq, perm},   {"attn_k", &L->wk, perm}, {"attn_v", &L->wv, 0},
                    {"attn_output", &L->wo, 0}, {"ffn_gate", &L->w1, 0},  {"ffn_up", &L->w3, 0},
                    {"ffn_down", &L->w2, 0}};
        for (size_t i = 0; i < sizeof mats / sizeof *mats && !st.code; i++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, mats[i].leaf);
            st = put_mat(w, nm, mats[i].w, NULL, mats[i].perm, type);
        }
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        put_vec(w, nm, L->rms_ffn, C);
    }
    if (!st.code) put_vec(w, "output_norm.weight", m->rms_final, C);
    if (!st.code && !c->shared_classifier) st = put_mat(w, "output.weight", &m->wcls, NULL, 0, type);
    if (!st.code) st = tsr_gguf_write(w, path);
    tsr_gguf_writer_free(w);
    return st;
}
