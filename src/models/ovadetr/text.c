/* ovadetr text side: the vocabulary of class names with frozen CLIP rows
 * (Detic's cached CLIP ViT-B/32 features of "a {name}"), the aliases of
 * aerial class names, user embedding files, and the vocabulary's place in
 * the model file (tensor "vocab.rows", metadata "ovadetr.vocab"). */
#include "tessera/ovadetr.h"
#include "tessera/fileio.h"
#include "tessera/npy.h"
#include "tessera/safetensors.h"

#include <cJSON.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

static const char *const coco_names[80] = {
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush"};

/* aerial names -> vocabulary names (see include/tessera/ovadetr.h) */
static const char *const aliases[][2] = {
    {"small vehicle", "car"},      {"large vehicle", "truck"}, {"plane", "airplane"},
    {"vehicle", "car"},            {"minibus", "minivan"},     {"storage tank", "storage tank"},
    {"boat", "boat"}};

/* lower-case, '_' and '-' -> ' ', drop a trailing " (...)" / "(...)", trim */
static void norm_name(char *out, size_t n, const char *in) {
    size_t k = 0;
    for (const char *p = in; *p && k + 1 < n; p++) {
        char ch = (char)tolower((unsigned char)*p);
        if (ch == '_' || ch == '-') ch = ' ';
        out[k++] = ch;
    }
    out[k] = '\0';
    char *par = strchr(out, '(');
    if (par && par != out) *par = '\0';
    k = strlen(out);
    while (k && out[k - 1] == ' ') out[--k] = '\0';
    char *s = out;
    while (*s == ' ') s++;
    memmove(out, s, strlen(s) + 1);
}

void tsr_ovd_vocab_free(tsr_ovd_vocab *v) {
    for (int i = 0; i < v->n; i++) free(v->names[i]);
    free(v->names), free(v->row), free(v->rows);
    memset(v, 0, sizeof *v);
}

static int find_exact(const tsr_ovd_vocab *v, const char *nm) {
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->names[i], nm)) return i;
    return -1;
}

/* adds name -> row unless the name is already there (the first source wins) */
static bool add_name(tsr_ovd_vocab *v, const char *name, int row, int *cap) {
    char nm[128];
    norm_name(nm, sizeof nm, name);
    if (!nm[0] || find_exact(v, nm) >= 0) return true;
    if (v->n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        char **a = realloc(v->names, sizeof(char *) * (size_t)*cap);
        if (!a) return false;
        v->names = a;
        int *b = realloc(v->row, sizeof(int) * (size_t)*cap);
        if (!b) return false;
        v->row = b;
    }
    v->names[v->n] = strdup(nm);
    if (!v->names[v->n]) return false;
    v->row[v->n++] = row;
    return true;
}

tsr_status tsr_ovd_vocab_build(tsr_ovd_vocab *v, const char *dir) {
    memset(v, 0, sizeof *v);
    char p[1024];
    tsr_npy a[3];
    const char *files[3] = {"coco_clip_a+cname.npy", "o365_clip_a+cnamefix.npy", "lvis_v1_clip_a+cname.npy"};
    const int expect[3] = {80, 365, 1203};
    tsr_status st = tsr_ok();
    int got = 0;
    for (; got < 3; got++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[got]);
        st = tsr_npy_read(&a[got], p);
        if (st.code) break;
        if (a[got].ndim != 2 || a[got].shape[0] != expect[got] || a[got].shape[1] != TSR_OVD_TEXT_DIM) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: expected (%d, %d) CLIP rows", p, expect[got], TSR_OVD_TEXT_DIM);
            tsr_npy_free(&a[got]);
            break;
        }
    }
    if (st.code) {
        for (int i = 0; i < got; i++) tsr_npy_free(&a[i]);
        return st;
    }
    v->n_rows = 80 + 365 + 1203;
    v->rows = malloc(sizeof(float) * (size_t)v->n_rows * TSR_OVD_TEXT_DIM);
    int off = 0;
    for (int i = 0; i < 3; i++) {
        memcpy(v->rows + (size_t)off * TSR_OVD_TEXT_DIM, a[i].data, sizeof(float) * (size_t)expect[i] * TSR_OVD_TEXT_DIM);
        off += expect[i];
        tsr_npy_free(&a[i]);
    }
    int cap = 0;
    for (int i = 0; i < 80; i++) add_name(v, coco_names[i], i, &cap);
    /* Objects365: "id,raw name,fixed name" per line */
    char *buf;
    size_t len;
    snprintf(p, sizeof p, "%s/Objects365_names_fix.csv", dir);
    st = tsr_read_file(p, &buf, &len);
    if (st.code) goto fail;
    {
        int k = 0;
        for (char *line = strtok(buf, "\n"); line && k < 365; line = strtok(NULL, "\n"), k++) {
            char *c2 = strrchr(line, ',');
            if (!c2) continue;
            char *r = strchr(c2, '\r');
            if (r) *r = '\0';
            add_name(v, c2 + 1, 80 + k, &cap);
        }
    }
    free(buf);
    snprintf(p, sizeof p, "%s/lvis_v1_train_cat_info.json", dir);
    st = tsr_read_file(p, &buf, &len);
    if (st.code) goto fail;
    {
        cJSON *j = cJSON_ParseWithLength(buf, len);
        free(buf);
        if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != 1203) {
            cJSON_Delete(j);
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: expected a list of 1203 LVIS categories", p);
            goto fail;
        }
        /* rows follow category id order */
        const cJSON *e;
        cJSON_ArrayForEach(e, j) {
            const cJSON *id = cJSON_GetObjectItem(e, "id"), *nm = cJSON_GetObjectItem(e, "name");
            if (!cJSON_IsNumber(id) || id->valueint < 1 || id->valueint > 1203 || !cJSON_IsString(nm)) continue;
            int row = 80 + 365 + id->valueint - 1;
            add_name(v, nm->valuestring, row, &cap);
            const cJSON *syn = cJSON_GetObjectItem(e, "synonyms"), *s;
            if (cJSON_IsArray(syn))
                cJSON_ArrayForEach(s, syn) if (cJSON_IsString(s)) add_name(v, s->valuestring, row, &cap);
        }
        cJSON_Delete(j);
    }
    return tsr_ok();
fail:
    tsr_ovd_vocab_free(v);
    return st;
}

int tsr_ovd_vocab_find(const tsr_ovd_vocab *v, const char *name) {
    char nm[128];
    norm_name(nm, sizeof nm, name);
    int i = find_exact(v, nm);
    if (i >= 0) return v->row[i];
    for (size_t a = 0; a < sizeof aliases / sizeof aliases[0]; a++)
        if (!strcmp(nm, aliases[a][0])) {
            i = find_exact(v, aliases[a][1]);
            return i >= 0 ? v->row[i] : -1;
        }
    return -1;
}

void tsr_ovd_names_free(char **names, int K) {
    for (int i = 0; i < K; i++) free(names[i]);
    free(names);
}

bool tsr_ovd_names_repeat(const char *const *names, int n, int *i, int *j) {
    for (*i = 1; *i < n; ++*i)
        for (*j = 0; *j < *i; ++*j)
            if (!strcasecmp(names[*i], names[*j])) return true;
    return false;
}

tsr_status tsr_ovd_text_for(const tsr_ovd_vocab *v, const char *classes, const char *emb_path,
                            char ***names, int *K, float **rows) {
    *names = NULL, *K = 0, *rows = NULL;
    char *cl = strdup(classes);
    int n = 0, cap = 8;
    char **nm = malloc(sizeof(char *) * (size_t)cap);
    for (char *t = strtok(cl, ","); t; t = strtok(NULL, ",")) {
        while (*t == ' ') t++;
        size_t l = strlen(t);
        while (l && t[l - 1] == ' ') t[--l] = '\0';
        if (!*t) continue;
        if (n == cap) nm = realloc(nm, sizeof(char *) * (size_t)(cap *= 2));
        nm[n++] = strdup(t);
    }
    free(cl);
    if (!n) {
        free(nm);
        return tsr_errorf(TSR_ERR_ARG, "--classes: no class names given (e.g. \"ship,harbor,car\")");
    }
    int ri, rj;
    if (tsr_ovd_names_repeat((const char *const *)nm, n, &ri, &rj)) {
        tsr_status d = tsr_errorf(TSR_ERR_ARG, "--classes: name %d ('%s') repeats name %d ('%s'); give each class once",
                                  ri + 1, nm[ri], rj + 1, nm[rj]);
        tsr_ovd_names_free(nm, n);
        return d;
    }
    float *r = malloc(sizeof(float) * (size_t)n * TSR_OVD_TEXT_DIM);
    tsr_status st = tsr_ok();
    if (emb_path) {
        tsr_npy a;
        st = tsr_npy_read(&a, emb_path);
        if (!st.code) {
            if (a.ndim != 2 || a.shape[1] != TSR_OVD_TEXT_DIM || a.shape[0] != n)
                st = tsr_errorf(TSR_ERR_SHAPE, "--embeddings %s: expected %d rows of %d (one per --classes name), got %s%lld x %lld",
                                emb_path, n, TSR_OVD_TEXT_DIM, a.ndim != 2 ? "a non-matrix " : "",
                                (long long)a.shape[0], (long long)(a.ndim > 1 ? a.shape[1] : 0));
            else memcpy(r, a.data, sizeof(float) * (size_t)n * TSR_OVD_TEXT_DIM);
            tsr_npy_free(&a);
            /* a row is L2-normalised before use: an all-zero row has no
             * direction and would score nothing (the reader refuses
             * non-finite values) */
            for (int i = 0; i < n && !st.code; i++) {
                const float *x = r + (size_t)i * TSR_OVD_TEXT_DIM;
                bool zero = true;
                for (int k = 0; k < TSR_OVD_TEXT_DIM; k++) zero &= x[k] == 0.0f;
                if (zero)
                    st = tsr_errorf(TSR_ERR_ARG, "--embeddings %s: row %d (class '%s') is all zeros; a class with no "
                                    "direction cannot be scored", emb_path, i, nm[i]);
            }
        }
    } else {
        for (int i = 0; i < n && !st.code; i++) {
            int row = tsr_ovd_vocab_find(v, nm[i]);
            if (row < 0)
                st = tsr_errorf(TSR_ERR_ARG, "class '%s' has no text embedding in the model's vocabulary; pass --embeddings FILE.npy with one CLIP row per name", nm[i]);
            else memcpy(r + (size_t)i * TSR_OVD_TEXT_DIM, v->rows + (size_t)row * TSR_OVD_TEXT_DIM, sizeof(float) * TSR_OVD_TEXT_DIM);
        }
    }
    if (st.code) {
        tsr_ovd_names_free(nm, n);
        free(r);
        return st;
    }
    *names = nm, *K = n, *rows = r;
    return tsr_ok();
}

tsr_status tsr_ovd_vocab_save(const tsr_ovd_vocab *v, const tsr_ovd_model *m, const char *path,
                              const char *const *meta) {
    tsr_st_writer *w = tsr_st_writer_new();
    const tsr_params *p = &m->params;
    for (int i = 0; i < p->n; i++) {
        const tsr_tensor *t = p->items[i];
        tsr_st_add(w, t->name, TSR_ST_F32, t->ndim, t->shape, t->data);
    }
    /* vocabulary rows as F16: they are F16 in the cache already */
    size_t nr = (size_t)v->n_rows * TSR_OVD_TEXT_DIM;
    uint16_t *h = malloc(sizeof(uint16_t) * (nr + 1));
    for (size_t i = 0; i < nr; i++) h[i] = tsr_f32_to_f16(v->rows[i]); /* exact: F16 at the source */
    tsr_st_add(w, "vocab.rows", TSR_ST_F16, 2, TSR_SHAPE(v->n_rows, TSR_OVD_TEXT_DIM), h);
    free(h);
    /* names: "name\trow\n" */
    size_t cap = 64, len = 0;
    char *s = malloc(cap);
    s[0] = '\0';
    for (int i = 0; i < v->n; i++) {
        char line[160];
        int l = snprintf(line, sizeof line, "%s\t%d\n", v->names[i], v->row[i]);
        while (len + (size_t)l + 1 > cap) s = realloc(s, cap *= 2);
        memcpy(s + len, line, (size_t)l + 1);
        len += (size_t)l;
    }
    tsr_st_set_meta(w, "ovadetr.vocab", s);
    free(s);
    char cfg[512];
    tsr_ovd_cfg_str(&m->cfg, cfg, sizeof cfg);
    tsr_st_set_meta(w, "ovadetr.config", cfg);
    for (int i = 0; meta && meta[i]; i += 2) tsr_st_set_meta(w, meta[i], meta[i + 1]);
    tsr_status st = tsr_st_write(w, path);
    tsr_st_writer_free(w);
    return st;
}

tsr_status tsr_ovd_vocab_load(tsr_ovd_vocab *v, const char *path) {
    memset(v, 0, sizeof *v);
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    const tsr_st_tensor *t = tsr_st_find(&f, "vocab.rows");
    const char *names = tsr_st_meta(&f, "ovadetr.vocab");
    if (!t || !names || t->ndim != 2 || t->shape[1] != TSR_OVD_TEXT_DIM || t->shape[0] < 1 || t->shape[0] > 100000) {
        tsr_st_free(&f);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: no class-name vocabulary (vocab.rows, ovadetr.vocab) in this model", path);
    }
    v->n_rows = (int)t->shape[0];
    v->rows = malloc(sizeof(float) * (size_t)v->n_rows * TSR_OVD_TEXT_DIM);
    tsr_st_to_f32(t, v->rows);
    int cap = 0;
    char *cp = strdup(names);
    for (char *line = strtok(cp, "\n"); line; line = strtok(NULL, "\n")) {
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = '\0';
        int row = atoi(tab + 1);
        if (row < 0 || row >= v->n_rows) continue;
        add_name(v, line, row, &cap);
    }
    free(cp);
    tsr_st_free(&f);
    return tsr_ok();
}
