/* tessera io: Llama-family models in safetensors for the lm inference
 * model: Hugging Face directories (config.json + model.safetensors) and
 * single tessera files whose __metadata__ carries the config (what the
 * trainer and `tessera lm convert` write). Tensor names are HF
 * LlamaForCausalLM's; F32/BF16/F16 tensors are converted to the requested
 * weight type, Q8 tensors ("<name>" I8 + "<name>_scale" F32) are copied
 * when the group size matches and dequantised otherwise. Every problem is a
 * status naming the file (and the tensor or key). */
#include "tessera/lm.h"
#include "tessera/fileio.h"
#include "tessera/safetensors.h"
#include "tessera/gguf.h"
#include "io/lm_st.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ config */

/* A source of config values: config.json (cJSON) or __metadata__ strings. */
typedef struct {
    const cJSON *json;
    const tsr_st_file *st;
    const char *name;
} cfg_src;

/* 1: found (*v set), 0: absent, -1: present but not a number/bool */
static int get_value(const cfg_src *s, const char *key, double *v) {
    if (s->json) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(s->json, key);
        if (!e || cJSON_IsNull(e)) return 0;
        if (cJSON_IsBool(e)) {
            *v = cJSON_IsTrue(e) ? 1 : 0;
            return 1;
        }
        if (!cJSON_IsNumber(e)) return -1;
        *v = e->valuedouble;
        return 1;
    }
    const char *str = tsr_st_meta(s->st, key);
    if (!str) return 0;
    if (strcmp(str, "true") == 0 || strcmp(str, "True") == 0) {
        *v = 1;
        return 1;
    }
    if (strcmp(str, "false") == 0 || strcmp(str, "False") == 0) {
        *v = 0;
        return 1;
    }
    char *end = NULL;
    errno = 0;
    *v = strtod(str, &end);
    if (end == str || *end || errno) return -1;
    return 1;
}

/* first of the names present; 0 if none */
static tsr_status get_any(const cfg_src *s, const char *const *keys, double *v, int *found) {
    *found = 0;
    for (int i = 0; keys[i]; i++) {
        int r = get_value(s, keys[i], v);
        if (r < 0) return tsr_errorf(TSR_ERR_FORMAT, "%s: config key \"%s\" is not a number", s->name, keys[i]);
        if (r > 0) {
            if (!isfinite(*v))
                return tsr_errorf(TSR_ERR_FORMAT, "%s: config key \"%s\" is not finite", s->name, keys[i]);
            *found = 1;
            return tsr_ok();
        }
    }
    return tsr_ok();
}

static tsr_status get_int(const cfg_src *s, const char *const *keys, int *out, bool required, int dflt) {
    double v = 0;
    int found;
    tsr_status st = get_any(s, keys, &v, &found);
    if (st.code) return st;
    if (!found) {
        if (required) return tsr_errorf(TSR_ERR_FORMAT, "%s: config lacks \"%s\"", s->name, keys[0]);
        *out = dflt;
        return tsr_ok();
    }
    if (v != floor(v) || v < -2e9 || v > 2e9)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: config key \"%s\" = %g is not an integer in range", s->name, keys[0], v);
    *out = (int)v;
    return tsr_ok();
}

static tsr_status get_float(const cfg_src *s, const char *const *keys, float *out, float dflt) {
    double v = 0;
    int found;
    tsr_status st = get_any(s, keys, &v, &found);
    if (st.code) return st;
    *out = found ? (float)v : dflt;
    return tsr_ok();
}

/* tied: 1/0, or -1 when the config does not say */
static tsr_status config_from(tsr_lm_config *c, int *tied, const cfg_src *s) {
    static const char *const k_dim[] = {"dim", "hidden_size", NULL};
    static const char *const k_layers[] = {"n_layers", "num_hidden_layers", NULL};
    static const char *const k_heads[] = {"n_heads", "num_attention_heads", NULL};
    static const char *const k_kv[] = {"n_kv_heads", "num_key_value_heads", NULL};
    static const char *const k_hidden[] = {"hidden_dim", "intermediate_size", NULL};
    static const char *const k_vocab[] = {"vocab", "vocab_size", NULL};
    static const char *const k_seq[] = {"max_seq", "context", "max_position_embeddings", "seq_len", NULL};
    static const char *const k_theta[] = {"rope_theta", NULL};
    static const char *const k_eps[] = {"norm_eps", "rms_norm_eps", NULL};
    static const char *const k_tied[] = {"tied", "tie_word_embeddings", NULL};
    static const char *const k_head_dim[] = {"head_dim", NULL};
    memset(c, 0, sizeof *c);
    tsr_status st;
    if ((st = get_int(s, k_dim, &c->dim, true, 0)).code) return st;
    if ((st = get_int(s, k_layers, &c->n_layers, true, 0)).code) return st;
    if ((st = get_int(s, k_heads, &c->n_heads, true, 0)).code) return st;
    if ((st = get_int(s, k_kv, &c->n_kv_heads, false, c->n_heads)).code) return st;
    if ((st = get_int(s, k_hidden, &c->hidden_dim, true, 0)).code) return st;
    if ((st = get_int(s, k_vocab, &c->vocab_size, true, 0)).code) return st;
    if ((st = get_int(s, k_seq, &c->seq_len, true, 0)).code) return st;
    if ((st = get_float(s, k_theta, &c->rope_theta, 10000.0f)).code) return st;
    if ((st = get_float(s, k_eps, &c->norm_eps, 1e-5f)).code) return st;
    if ((st = get_int(s, k_tied, tied, false, -1)).code) return st;
    if (*tied > 1 || *tied < -1) return tsr_errorf(TSR_ERR_FORMAT, "%s: config \"tied\" must be a boolean", s->name);
    int hd = 0;
    if ((st = get_int(s, k_head_dim, &hd, false, 0)).code) return st;
    if (hd && c->n_heads > 0 && hd * c->n_heads != c->dim)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: head_dim %d times %d heads differs from hidden size %d (unsupported)",
                          s->name, hd, c->n_heads, c->dim);
    if (s->json) {
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(s->json, "rope_scaling");
        if (rs && !cJSON_IsNull(rs))
            return tsr_errorf(TSR_ERR_FORMAT, "%s: rope_scaling is not supported", s->name);
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(s->json, "hidden_act");
        if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0))
            return tsr_errorf(TSR_ERR_FORMAT, "%s: hidden_act must be \"silu\"", s->name);
    }
    c->shared_classifier = *tied == 1;
    c->rope_layout = TSR_LM_ROPE_HALF;
    return tsr_lm_config_check(c, s->name);
}

tsr_status tsr_lm_config_from_json(tsr_lm_config *c, const char *json, size_t len, const char *name) {
    if (!name) name = "config.json";
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!j) return tsr_errorf(TSR_ERR_FORMAT, "%s: not valid JSON", name);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not a JSON object", name);
    }
    cfg_src s = {j, NULL, name};
    int tied;
    tsr_status st = config_from(c, &tied, &s);
    cJSON_Delete(j);
    return st;
}

/* ------------------------------------------------------------ tensors */

typedef struct {
    const tsr_st_file *f;
    const char *path;
    int file_gs; /* Q8 group size the file declares, 0 if none */
} loader;

/* src must be (rows, cols) F32/BF16/F16, or I8 with a matching _scale */
static tsr_status find_mat(const loader *L, const char *name, int rows, int cols, const tsr_st_tensor **t,
                           const tsr_st_tensor **scale) {
    *t = tsr_st_find(L->f, name);
    *scale = NULL;
    if (!*t) return tsr_errorf(TSR_ERR_FORMAT, "%s: missing tensor '%s'", L->path, name);
    const tsr_st_tensor *x = *t;
    if (x->ndim != 2 || x->shape[0] != rows || x->shape[1] != cols)
        return tsr_errorf(TSR_ERR_SHAPE, "%s: tensor '%s' should be (%d, %d)", L->path, name, rows, cols);
    if (x->dtype == TSR_ST_F32 || x->dtype == TSR_ST_BF16 || x->dtype == TSR_ST_F16) return tsr_ok();
    if (x->dtype != TSR_ST_I8)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: tensor '%s' has dtype %s (want F32, BF16, F16 or Q8 I8)", L->path,
                          name, tsr_st_dtype_name(x->dtype));
    if (!L->file_gs)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: tensor '%s' is I8 but the file has no \"group_size\" metadata",
                          L->path, name);
    char sn[300];
    snprintf(sn, sizeof sn, "%s_scale", name);
    const tsr_st_tensor *s = tsr_st_find(L->f, sn);
    int ng = (cols + L->file_gs - 1) / L->file_gs;
    if (!s || s->dtype != TSR_ST_F32 || s->ndim != 2 || s->shape[0] != rows || s->shape[1] != ng)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: I8 tensor '%s' needs '%s' F32 (%d, %d)", L->path, name, sn, rows, ng);
    *scale = s;
    return tsr_ok();
}

/* The file's tensor as a (possibly Q8) matrix; scales copied to an aligned
 * buffer the caller frees. Float tensors come back as f32 in *f32buf. */
static tsr_status file_mat(const loader *L, const char *name, int rows, int cols, tsr_lm_mat *out, float **f32buf,
                           float **scbuf) {
    const tsr_st_tensor *t, *s;
    *f32buf = NULL;
    *scbuf = NULL;
    tsr_status st = find_mat(L, name, rows, cols, &t, &s);
    if (st.code) return st;
    size_t n = (size_t)rows * (size_t)cols;
    if (!s) {
        *f32buf = malloc(sizeof(float) * (n ? n : 1));
        if (!*f32buf) return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory for '%s'", L->path, name);
        tsr_st_to_f32(t, *f32buf);
        for (size_t i = 0; i < n; i++)
            if (!isfinite((*f32buf)[i])) {
                free(*f32buf);
                *f32buf = NULL;
                return tsr_errorf(TSR_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value", L->path, name);
            }
        *out = (tsr_lm_mat){TSR_LM_W_F32, rows, cols, *f32buf, NULL, 0};
        return tsr_ok();
    }
    size_t ns = s->nbytes / sizeof(float);
    *scbuf = malloc(s->nbytes ? s->nbytes : 4);
    if (!*scbuf) return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory for '%s'", L->path, name);
    memcpy(*scbuf, s->data, s->nbytes);
    for (size_t i = 0; i < ns; i++)
        if (!isfinite((*scbuf)[i])) {
            free(*scbuf);
            *scbuf = NULL;
            return tsr_errorf(TSR_ERR_FORMAT, "%s: scales of '%s' hold a non-finite value", L->path, name);
        }
    const int8_t *q = t->data;
    for (size_t i = 0; i < n; i++)
        if (q[i] == -128) {
            free(*scbuf);
            *scbuf = NULL;
            return tsr_errorf(TSR_ERR_FORMAT, "%s: Q8 tensor '%s' holds -128 (values must be in [-127, 127])",
                              L->path, name);
        }
    *out = (tsr_lm_mat){TSR_LM_W_Q8, rows, cols, t->data, *scbuf, L->file_gs};
    return tsr_ok();
}

static tsr_status load_mat(const loader *L, const char *name, const tsr_lm_mat *dst) {
    tsr_lm_mat src;
    float *fb, *sb;
    tsr_status st = file_mat(L, name, dst->rows, dst->cols, &src, &fb, &sb);
    if (st.code) return st;
    float *row = malloc(sizeof(float) * (size_t)dst->cols);
    if (!row) st = tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", L->path);
    else tsr_lm_mat_copy(dst, &src, row);
    free(row);
    free(fb);
    free(sb);
    return st;
}

/* a (rows, cols) tensor into f32 (norms: rows == 1 accepts shape (cols)) */
static tsr_status load_f32(const loader *L, const char *name, float *dst, int rows, int cols) {
    const tsr_st_tensor *t = tsr_st_find(L->f, name);
    if (!t) return tsr_errorf(TSR_ERR_FORMAT, "%s: missing tensor '%s'", L->path, name);
    if (rows == 1 && t->ndim == 1) {
        if (t->shape[0] != cols)
            return tsr_errorf(TSR_ERR_SHAPE, "%s: tensor '%s' should be (%d)", L->path, name, cols);
        if (t->dtype != TSR_ST_F32 && t->dtype != TSR_ST_BF16 && t->dtype != TSR_ST_F16)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: tensor '%s' has dtype %s (want F32, BF16 or F16)", L->path, name,
                              tsr_st_dtype_name(t->dtype));
        tsr_st_to_f32(t, dst);
        for (int i = 0; i < cols; i++)
            if (!isfinite(dst[i]))
                return tsr_errorf(TSR_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value", L->path, name);
        return tsr_ok();
    }
    if (rows == 1) return tsr_errorf(TSR_ERR_SHAPE, "%s: tensor '%s' should be (%d)", L->path, name, cols);
    tsr_lm_mat dm = {TSR_LM_W_F32, rows, cols, dst, NULL, 0};
    return load_mat(L, name, &dm);
}

static tsr_status fill_model(tsr_lm_model *m, const loader *L) {
    const tsr_lm_config *c = &m->cfg;
    const int C = c->dim;
    char nm[128];
    tsr_status st;
    if ((st = load_f32(L, "model.embed_tokens.weight", (float *)m->tok_emb, c->vocab_size, C)).code) return st;
    for (int l = 0; l < c->n_layers; l++) {
        const tsr_lm_layer *Ly = &m->layers[l];
        struct {
            const char *leaf;
            const tsr_lm_mat *w;
        } mats[] = {{"self_attn.q_proj", &Ly->wq}, {"self_attn.k_proj", &Ly->wk}, {"self_attn.v_proj", &Ly->wv},
                    {"self_attn.o_proj", &Ly->wo}, {"mlp.gate_proj", &Ly->w1},    {"mlp.up_proj", &Ly->w3},
                    {"mlp.down_proj", &Ly->w2}};
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, mats[i].leaf);
            if ((st = load_mat(L, nm, mats[i].w)).code) return st;
        }
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        if ((st = load_f32(L, nm, (float *)Ly->rms_att, 1, C)).code) return st;
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
        if ((st = load_f32(L, nm, (float *)Ly->rms_ffn, 1, C)).code) return st;
    }
    if ((st = load_f32(L, "model.norm.weight", (float *)m->rms_final, 1, C)).code) return st;
    if (!c->shared_classifier) {
        if ((st = load_mat(L, "lm_head.weight", &m->wcls)).code) return st;
    } else if (m->wcls.data != (const void *)m->tok_emb) {
        /* tied, typed: the classifier from the file's table itself (a Q8
         * table is copied, not quantised twice) and the table as its values */
        if ((st = load_mat(L, "model.embed_tokens.weight", &m->wcls)).code) return st;
        for (int r = 0; r < c->vocab_size; r++) tsr_lm_mat_row(&m->wcls, r, (float *)m->tok_emb + (size_t)r * C);
        return tsr_ok();
    }
    /* an untied table already in the model's type stays as read */
    const tsr_st_tensor *e = tsr_st_find(L->f, "model.embed_tokens.weight");
    bool same = (m->wtype == TSR_LM_W_BF16 && e->dtype == TSR_ST_BF16) ||
                (m->wtype == TSR_LM_W_Q8 && e->dtype == TSR_ST_I8 && L->file_gs == m->group_size);
    if (!same) tsr_lm_model_round_embedding(m);
    return tsr_ok();
}

/* Every tensor present with its shape before anything is allocated, so
 * the allocation is bounded by what the file holds. */
static tsr_status check_shapes(const loader *L, const tsr_lm_config *c) {
    const int C = c->dim, kv = c->dim / c->n_heads * c->n_kv_heads, Hd = c->hidden_dim;
    const tsr_st_tensor *t, *s;
    char nm[128];
    tsr_status st;
    if ((st = find_mat(L, "model.embed_tokens.weight", c->vocab_size, C, &t, &s)).code) return st;
    for (int l = 0; l < c->n_layers; l++) {
        struct {
            const char *leaf;
            int r, k;
        } mats[] = {{"self_attn.q_proj", C, C},   {"self_attn.k_proj", kv, C}, {"self_attn.v_proj", kv, C},
                    {"self_attn.o_proj", C, C},   {"mlp.gate_proj", Hd, C},    {"mlp.up_proj", Hd, C},
                    {"mlp.down_proj", C, Hd}};
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, mats[i].leaf);
            if ((st = find_mat(L, nm, mats[i].r, mats[i].k, &t, &s)).code) return st;
        }
    }
    if (!c->shared_classifier && (st = find_mat(L, "lm_head.weight", c->vocab_size, C, &t, &s)).code) return st;
    return tsr_ok();
}

/* the file's weight type: its q_proj's dtype */
static tsr_lm_wtype stored_type(const tsr_st_file *f) {
    const tsr_st_tensor *t = tsr_st_find(f, "model.layers.0.self_attn.q_proj.weight");
    if (t && t->dtype == TSR_ST_BF16) return TSR_LM_W_BF16;
    if (t && t->dtype == TSR_ST_I8) return TSR_LM_W_Q8;
    return TSR_LM_W_F32;
}

static tsr_status load_from(tsr_lm_model *m, const tsr_st_file *f, const char *path, const tsr_lm_config *cfg_in,
                            int tied, int wtype, int group_size) {
    memset(m, 0, sizeof *m);
    tsr_lm_config cfg = *cfg_in;
    loader L = {f, path, 0};
    const char *q = tsr_st_meta(f, "quant");
    if (q) {
        if (strcmp(q, "q8") != 0) return tsr_errorf(TSR_ERR_FORMAT, "%s: unknown \"quant\" metadata '%s'", path, q);
        const char *g = tsr_st_meta(f, "group_size");
        if (!g || (strcmp(g, "32") != 0 && strcmp(g, "64") != 0))
            return tsr_errorf(TSR_ERR_FORMAT, "%s: Q8 file needs \"group_size\" 32 or 64", path);
        L.file_gs = atoi(g);
    }
    bool has_head = tsr_st_find(f, "lm_head.weight") != NULL;
    if (tied < 0) cfg.shared_classifier = !has_head;
    if (!cfg.shared_classifier && !has_head)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: missing tensor 'lm_head.weight' (config says untied embeddings)", path);
    tsr_status st = check_shapes(&L, &cfg);
    if (st.code) return st;
    tsr_lm_wtype wt = wtype >= 0 ? (tsr_lm_wtype)wtype : stored_type(f);
    if (group_size <= 0) group_size = L.file_gs ? L.file_gs : TSR_LM_Q8_GROUP;
    st = tsr_lm_model_alloc_typed(m, &cfg, wt, group_size);
    if (st.code) return tsr_errorf(st.code, "%s: %s", path, st.msg);
    st = fill_model(m, &L);
    if (st.code) tsr_lm_model_free(m);
    return st;
}

static bool has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

tsr_status tsr_lm_load_st_file(tsr_lm_model *m, const tsr_st_file *f, const char *name, int wtype,
                               int group_size) {
    memset(m, 0, sizeof *m);
    cfg_src src = {NULL, f, name};
    tsr_lm_config cfg;
    int tied;
    tsr_status st = config_from(&cfg, &tied, &src);
    if (st.code && strstr(st.msg, "config lacks") && !tsr_st_meta(f, "dim") && !tsr_st_meta(f, "hidden_size"))
        st = tsr_errorf(TSR_ERR_FORMAT,
                        "%s: a safetensors file without a language-model config in its metadata (another "
                        "family's checkpoint?), not an lm checkpoint",
                        name);
    if (st.code == TSR_OK) st = load_from(m, f, name, &cfg, tied, wtype, group_size);
    return st;
}

tsr_status tsr_lm_load_safetensors(tsr_lm_model *m, const char *path, int wtype, int group_size) {
    memset(m, 0, sizeof *m);
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    st = tsr_lm_load_st_file(m, &f, path, wtype, group_size);
    tsr_st_free(&f);
    return st;
}

tsr_status tsr_lm_parse_safetensors(tsr_lm_model *m, const void *buf, size_t len, const char *name, int wtype,
                                    int group_size) {
    memset(m, 0, sizeof *m);
    tsr_st_file f;
    tsr_status st = tsr_st_parse(buf, len, name, &f);
    if (st.code) return st;
    st = tsr_lm_load_st_file(m, &f, name, wtype, group_size);
    tsr_st_free(&f);
    return st;
}

static char *read_text(const char *path, size_t *len, tsr_status *st) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        *st = tsr_errorf(TSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = (n + 4096 + 1) * 2;
            if (cap > ((size_t)64 << 20)) {
                *st = tsr_errorf(TSR_ERR_FORMAT, "%s: larger than 64 MiB", path);
                break;
            }
            char *b = realloc(buf, cap);
            if (!b) {
                *st = tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            buf = b;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, fp);
        n += r;
        if (r == 0) {
            if (ferror(fp)) *st = tsr_errorf(TSR_ERR_IO, "%s: read error", path);
            else {
                fclose(fp);
                buf[n] = 0;
                *len = n;
                return buf;
            }
            break;
        }
    }
    fclose(fp);
    free(buf);
    return NULL;
}

tsr_status tsr_lm_load_hf_dir(tsr_lm_model *m, const char *dir, int wtype, int group_size) {
    memset(m, 0, sizeof *m);
    char cpath[4096], mpath[4096];
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    snprintf(mpath, sizeof mpath, "%s/model.safetensors", dir);
    tsr_status st = tsr_ok();
    size_t len = 0;
    char *txt = read_text(cpath, &len, &st);
    if (!txt) return st;
    cJSON *j = cJSON_ParseWithLength(txt, len);
    free(txt);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not a JSON object", cpath);
    }
    cfg_src src = {j, NULL, cpath};
    tsr_lm_config cfg;
    int tied;
    st = config_from(&cfg, &tied, &src);
    cJSON_Delete(j);
    if (st.code) return st;
    if (tied < 0) tied = 0; /* HF's default */
    struct stat sb;
    if (stat(mpath, &sb) != 0) {
        char ipath[4200];
        snprintf(ipath, sizeof ipath, "%s.index.json", mpath);
        if (stat(ipath, &sb) == 0)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: sharded checkpoints are not supported (merge the shards into "
                              "model.safetensors)", ipath);
    }
    tsr_st_file f;
    if ((st = tsr_st_read(mpath, &f)).code) return st;
    st = load_from(m, &f, mpath, &cfg, tied, wtype, group_size);
    tsr_st_free(&f);
    return st;
}

static bool has_gguf_magic(const char *path) {
    char b[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    bool yes = fread(b, 1, 4, f) == 4 && memcmp(b, "GGUF", 4) == 0;
    fclose(f);
    return yes;
}

/* What a file that is not a llama2.c checkpoint looks like, so the error
 * names its type rather than a nonsense header field: NULL when unknown. */
static const char *sniff_other(const char *path) {
    unsigned char b[16] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    size_t i = 0;
    while (i < n && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t')) i++;
    if (i < n && (b[i] == '{' || b[i] == '[')) return "a JSON file (tokenizer.json or config.json?)";
    if (n >= 8 && memcmp(b, "\x89PNG", 4) == 0) return "a PNG image";
    if (n >= 9 && b[8] == '{' && b[6] == 0 && b[7] == 0) return "a safetensors file without the .safetensors suffix";
    bool text = n > 0;
    for (size_t k = 0; k < n; k++) text &= b[k] >= 0x20 || b[k] == '\n' || b[k] == '\r' || b[k] == '\t';
    return text ? "a text file" : NULL;
}

tsr_status tsr_lm_probe(const char *path, bool *is_gguf) {
    *is_gguf = false;
    struct stat sb;
    if (stat(path, &sb) != 0) return tsr_errorf(TSR_ERR_IO, "%s: cannot open checkpoint: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return tsr_ok();
    tsr_status st = tsr_input_check(path);
    if (st.code) return st;
    *is_gguf = has_suffix(path, ".gguf") || has_gguf_magic(path);
    if (*is_gguf || has_suffix(path, ".safetensors")) return tsr_ok();
    const char *other = sniff_other(path);
    if (other)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: %s, not a model checkpoint (llama2.c .bin, GGUF, HF directory or .safetensors)",
                          path, other);
    return tsr_ok();
}

tsr_status tsr_lm_load(tsr_lm_model *m, const char *path, int wtype, int group_size) {
    memset(m, 0, sizeof *m);
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return tsr_lm_load_hf_dir(m, path, wtype, group_size);
    tsr_status chk = tsr_input_check(path); /* a FIFO would block the sniffing below */
    if (chk.code) return chk;
    if (has_suffix(path, ".safetensors")) return tsr_lm_load_safetensors(m, path, wtype, group_size);
    if (has_suffix(path, ".gguf") || has_gguf_magic(path)) return tsr_lm_load_gguf(m, path, wtype, group_size);
    const char *other = sniff_other(path);
    if (other)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: %s, not a model checkpoint (llama2.c .bin, GGUF, HF directory or .safetensors)",
                          path, other);
    tsr_status st = tsr_llama2c_load(m, path);
    if (st.code || wtype < 0 || wtype == TSR_LM_W_F32) return st;
    tsr_lm_model f32 = *m;
    st = tsr_lm_model_convert(m, &f32, (tsr_lm_wtype)wtype, group_size);
    tsr_lm_model_free(&f32);
    return st;
}

/* ------------------------------------------------------------ save */

/* rows of a matrix into a file tensor; interleaved-RoPE q/k rows are
 * reordered per head to the rotate-half layout (pairs (2i, 2i+1) become
 * (i, i + D/2)), which leaves q.k and so the model unchanged */
static void add_mat(tsr_st_writer *w, const char *name, const tsr_lm_mat *m, int head_dim) {
    size_t rb = (size_t)m->cols * (m->type == TSR_LM_W_F32 ? 4 : m->type == TSR_LM_W_BF16 ? 2 : 1);
    int ng = tsr_lm_mat_groups(m);
    char *d = calloc(1, rb * (size_t)m->rows + 1);
    float *sc = m->type == TSR_LM_W_Q8 ? malloc(sizeof(float) * (size_t)m->rows * (size_t)ng + 1) : NULL;
    TSR_ASSERT(d && (sc || m->type != TSR_LM_W_Q8));
    for (int r = 0; r < m->rows; r++) {
        int src = r;
        if (head_dim) {
            int h = r / head_dim, i = r % head_dim, half = head_dim / 2;
            src = h * head_dim + (i < half ? 2 * i : 2 * (i - half) + 1);
        }
        memcpy(d + (size_t)r * rb, (const char *)m->data + (size_t)src * rb, rb);
        if (sc) memcpy(sc + (size_t)r * ng, m->scales + (size_t)src * ng, sizeof(float) * (size_t)ng);
    }
    int64_t shape[2] = {m->rows, m->cols};
    tsr_st_dtype dt = m->type == TSR_LM_W_F32 ? TSR_ST_F32 : m->type == TSR_LM_W_BF16 ? TSR_ST_BF16 : TSR_ST_I8;
    tsr_st_add(w, name, dt, 2, shape, d);
    if (sc) {
        char sn[300];
        snprintf(sn, sizeof sn, "%s_scale", name);
        int64_t ss[2] = {m->rows, ng};
        tsr_st_add(w, sn, TSR_ST_F32, 2, ss, sc);
    }
    free(d);
    free(sc);
}

tsr_status tsr_lm_save(const tsr_lm_model *m, const char *path) {
    const tsr_lm_config *c = &m->cfg;
    const int C = c->dim, D = C / c->n_heads;
    const int perm = c->rope_layout == TSR_LM_ROPE_INTERLEAVED ? D : 0;
    tsr_st_writer *w = tsr_st_writer_new();
    char nm[128], v[64];
#define META_I(k, x) (snprintf(v, sizeof v, "%d", (x)), tsr_st_set_meta(w, k, v))
#define META_F(k, x) (snprintf(v, sizeof v, "%.9g", (double)(x)), tsr_st_set_meta(w, k, v))
    /* the trainer's spelling (HF config.json names), so either side reads the other's files */
    tsr_st_set_meta(w, "model_type", "llama");
    META_I("hidden_size", c->dim);
    META_I("num_hidden_layers", c->n_layers);
    META_I("num_attention_heads", c->n_heads);
    META_I("num_key_value_heads", c->n_kv_heads);
    META_I("intermediate_size", c->hidden_dim);
    META_I("vocab_size", c->vocab_size);
    META_I("max_position_embeddings", c->seq_len);
    META_F("rope_theta", c->rope_theta);
    META_F("rms_norm_eps", c->norm_eps);
    tsr_st_set_meta(w, "tie_word_embeddings", c->shared_classifier ? "true" : "false");
    tsr_st_set_meta(w, "format", "tessera-lm");
    if (m->wtype == TSR_LM_W_Q8) {
        tsr_st_set_meta(w, "quant", "q8");
        META_I("group_size", m->group_size);
    }
#undef META_I
#undef META_F
    /* the table in the model's type: the tied classifier itself, else each
     * row stored as the model stores matrices */
    if (m->wcls.data != (const void *)m->tok_emb && c->shared_classifier) {
        add_mat(w, "model.embed_tokens.weight", &m->wcls, 0);
    } else if (m->wtype == TSR_LM_W_F32) {
        tsr_lm_mat e = {TSR_LM_W_F32, c->vocab_size, C, m->tok_emb, NULL, 0};
        add_mat(w, "model.embed_tokens.weight", &e, 0);
    } else {
        /* untied table: each row stored in the model's type */
        tsr_lm_mat e = {m->wtype, c->vocab_size, C, NULL, NULL, m->group_size};
        size_t nb = (size_t)c->vocab_size * (size_t)C * 2;
        void *d = malloc(nb);
        float *sc = malloc(sizeof(float) * ((size_t)c->vocab_size * (size_t)tsr_lm_mat_groups(&e) + 1));
        if (!d || !sc) {
            free(d);
            free(sc);
            tsr_st_writer_free(w);
            return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", path);
        }
        e.data = d;
        e.scales = m->wtype == TSR_LM_W_Q8 ? sc : NULL;
        tsr_lm_mat_store(&e, m->tok_emb);
        add_mat(w, "model.embed_tokens.weight", &e, 0);
        free(d);
        free(sc);
    }
    int64_t cs[1] = {C};
    for (int l = 0; l < c->n_layers; l++) {
        const tsr_lm_layer *L = &m->layers[l];
        struct {
            const char *leaf;
            const tsr_lm_mat *w;
            int perm;
        } mats[] = {{"self_attn.q_proj", &L->wq, perm}, {"self_attn.k_proj", &L->wk, perm},
                    {"self_attn.v_proj", &L->wv, 0},    {"self_attn.o_proj", &L->wo, 0},
                    {"mlp.gate_proj", &L->w1, 0},       {"mlp.up_proj", &L->w3, 0},
                    {"mlp.down_proj", &L->w2, 0}};
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, mats[i].leaf);
            add_mat(w, nm, mats[i].w, mats[i].perm);
        }
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        tsr_st_add(w, nm, TSR_ST_F32, 1, cs, L->rms_att);
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
        tsr_st_add(w, nm, TSR_ST_F32, 1, cs, L->rms_ffn);
    }
    tsr_st_add(w, "model.norm.weight", TSR_ST_F32, 1, cs, m->rms_final);
    if (!c->shared_classifier) add_mat(w, "lm_head.weight", &m->wcls, 0);
    tsr_status st = tsr_st_write(w, path);
    tsr_st_writer_free(w);
    return st;
}

tsr_status tsr_lm_save_hf_config(const tsr_lm_config *c, const char *torch_dtype, const char *extra,
                                 const char *path) {
    char buf[4096];
    int n = snprintf(buf, sizeof buf,
                     "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
                     "  \"hidden_size\": %d,\n  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
                     "  \"num_key_value_heads\": %d,\n  \"intermediate_size\": %d,\n  \"vocab_size\": %d,\n"
                     "  \"max_position_embeddings\": %d,\n  \"rope_theta\": %.9g,\n  \"rms_norm_eps\": %.9g,\n"
                     "  \"tie_word_embeddings\": %s,\n  \"hidden_act\": \"silu\",\n  \"torch_dtype\": \"%s\"%s%s\n}\n",
                     c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim, c->vocab_size, c->seq_len,
                     (double)c->rope_theta, (double)c->norm_eps, c->shared_classifier ? "true" : "false",
                     torch_dtype ? torch_dtype : "float32", extra ? ",\n  " : "", extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof buf) return tsr_errorf(TSR_ERR_ARG, "%s: config too long", path);
    return tsr_write_file_atomic(path, buf, (size_t)n, NULL, 0);
}
