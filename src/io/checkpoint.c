/* tessera io: parameter checkpoints and training state on top of
 * safetensors. Parameters are stored under their registry names (so files
 * map 1:1 to PyTorch state dicts); the training state (AdamW moments, step,
 * rng words, data cursor) goes to a second file with 64-bit values as I64
 * tensors, so a run resumed from it is bit-identical to one that never
 * stopped. Loads validate everything before touching the model, so a bad
 * file leaves the parameters as they were. */
#include "tessera/optim.h"
#include "tessera/safetensors.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#define TRAINSTATE_FORMAT "tessera.trainstate.v1"

static const char *shape_str(char *b, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(b, n, "(");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(b + k, n - k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(b + k, n - k, ")");
    return b;
}

static bool same_shape(const tsr_st_tensor *s, const tsr_tensor *t) {
    if (s->ndim != t->ndim) return false;
    for (int i = 0; i < t->ndim; i++)
        if (s->shape[i] != t->shape[i]) return false;
    return true;
}

static bool is_float(tsr_st_dtype dt) {
    return dt == TSR_ST_F32 || dt == TSR_ST_BF16 || dt == TSR_ST_F16 || dt == TSR_ST_F64;
}

/* file names in messages: printable ASCII, bounded */
static const char *printable(char *dst, size_t n, const char *s) {
    size_t j = 0;
    for (size_t i = 0; s[i] && j + 1 < n; i++)
        dst[j++] = ((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f) ? s[i] : '?';
    dst[j] = 0;
    return dst;
}

tsr_status tsr_params_save(const tsr_params *p, const char *path, tsr_st_dtype dt,
                           const char *const *meta) {
    if (dt != TSR_ST_F32 && dt != TSR_ST_BF16)
        return tsr_errorf(TSR_ERR_ARG, "%s: parameters are saved as F32 or BF16, not %s", path,
                          tsr_st_dtype_name(dt));
    tsr_st_writer *w = tsr_st_writer_new();
    uint16_t *tmp = NULL;
    size_t tmp_cap = 0;
    for (int i = 0; i < p->n; i++) {
        const tsr_tensor *t = p->items[i];
        if (dt == TSR_ST_F32) {
            tsr_st_add(w, t->name, dt, t->ndim, t->shape, t->data);
            continue;
        }
        if ((size_t)t->numel > tmp_cap) {
            tmp_cap = (size_t)t->numel;
            tmp = realloc(tmp, sizeof *tmp * tmp_cap);
            TSR_ASSERT(tmp);
        }
        const float *src = tsr_f32(t);
        for (int64_t k = 0; k < t->numel; k++) tmp[k] = tsr_f32_to_bf16(src[k]);
        tsr_st_add(w, t->name, dt, t->ndim, t->shape, tmp);
    }
    free(tmp);
    for (int i = 0; meta && meta[i] && meta[i + 1]; i += 2) tsr_st_set_meta(w, meta[i], meta[i + 1]);
    tsr_status st = tsr_st_write(w, path);
    tsr_st_writer_free(w);
    return st;
}

tsr_status tsr_params_load(tsr_params *p, const char *path, bool allow_extra) {
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    char a[64], b[64], nm[128];
    const tsr_st_tensor **src = calloc((size_t)p->n + 1, sizeof *src);
    TSR_ASSERT(src);
    for (int i = 0; i < p->n && !st.code; i++) {
        const tsr_tensor *t = p->items[i];
        const tsr_st_tensor *s = tsr_st_find(&f, t->name);
        if (!s)
            st = tsr_errorf(TSR_ERR_SHAPE, "%s: tensor '%s' is missing", path, t->name);
        else if (!is_float(s->dtype))
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected a float dtype", path,
                            t->name, tsr_st_dtype_name(s->dtype));
        else if (!same_shape(s, t))
            st = tsr_errorf(TSR_ERR_SHAPE, "%s: tensor '%s' has shape %s in the file, the model expects %s",
                            path, t->name, shape_str(a, sizeof a, s->ndim, s->shape),
                            shape_str(b, sizeof b, t->ndim, t->shape));
        src[i] = s;
    }
    for (int i = 0; i < f.n && !st.code && !allow_extra; i++)
        if (!tsr_params_find(p, f.t[i].name))
            st = tsr_errorf(TSR_ERR_SHAPE, "%s: unexpected tensor '%s' (not a parameter of this model)", path,
                            printable(nm, sizeof nm, f.t[i].name));
    /* a diverged checkpoint is refused by every reader, not only by eval;
     * values are checked before any is copied, so a refused load leaves
     * the model untouched */
    int64_t most = 0;
    for (int i = 0; i < p->n && !st.code; i++)
        if (p->items[i]->numel > most) most = p->items[i]->numel;
    float *tmp = st.code ? NULL : malloc(sizeof(float) * (size_t)(most > 0 ? most : 1));
    TSR_ASSERT(st.code || tmp);
    for (int i = 0; i < p->n && !st.code; i++) {
        const tsr_tensor *t = p->items[i];
        tsr_st_to_f32(src[i], tmp);
        for (int64_t k = 0; k < t->numel; k++)
            if (!isfinite(tmp[k])) {
                st = tsr_errorf(TSR_ERR_NUMERIC,
                                "%s: tensor '%s' holds a non-finite value (%g at element %lld): "
                                "the weights diverged; use an earlier checkpoint",
                                path, t->name, (double)tmp[k], (long long)k);
                break;
            }
    }
    if (!st.code)
        for (int i = 0; i < p->n; i++) tsr_st_to_f32(src[i], tsr_f32(p->items[i]));
    free(tmp);
    free(src);
    tsr_st_free(&f);
    return st;
}

tsr_status tsr_params_load_grow(tsr_params *p, const char *path, int *grown) {
    if (grown) *grown = 0;
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    char a[64], b[64], nm[128];
    for (int i = 0; i < p->n && !st.code; i++) {
        tsr_tensor *t = p->items[i];
        const tsr_st_tensor *s = tsr_st_find(&f, t->name);
        if (!s) {
            st = tsr_errorf(TSR_ERR_SHAPE, "%s: tensor '%s' is missing", path, t->name);
            break;
        }
        if (!is_float(s->dtype)) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected a float dtype", path,
                            t->name, tsr_st_dtype_name(s->dtype));
            break;
        }
        if (same_shape(s, t)) {
            tsr_st_to_f32(s, tsr_f32(t));
            continue;
        }
        if (t->ndim != 2 || s->ndim != 2 || s->shape[1] != t->shape[1] || s->shape[0] < 1 ||
            s->shape[0] > t->shape[0]) {
            st = tsr_errorf(TSR_ERR_SHAPE, "%s: tensor '%s' has shape %s in the file, the model expects %s", path,
                            t->name, shape_str(a, sizeof a, s->ndim, s->shape), shape_str(b, sizeof b, t->ndim, t->shape));
            break;
        }
        /* more rows: copy the file's, fill the rest with their mean */
        const int64_t rows = s->shape[0], cols = s->shape[1];
        float *d = tsr_f32(t);
        tsr_st_to_f32(s, d);
        for (int64_t c = 0; c < cols; c++) {
            double m = 0;
            for (int64_t r = 0; r < rows; r++) m += d[r * cols + c];
            m /= (double)rows;
            for (int64_t r = rows; r < t->shape[0]; r++) d[r * cols + c] = (float)m;
        }
        if (grown) (*grown)++;
    }
    for (int i = 0; i < f.n && !st.code; i++)
        if (!tsr_params_find(p, f.t[i].name))
            st = tsr_errorf(TSR_ERR_SHAPE, "%s: unexpected tensor '%s' (not a parameter of this model)", path,
                            printable(nm, sizeof nm, f.t[i].name));
    tsr_st_free(&f);
    if (!st.code) st = tsr_params_check_finite(p, path);
    return st;
}

tsr_status tsr_ckpt_check_meta(const char *path, const char *const *keys, const char *const *vals, int n,
                               int64_t *ckpt_step) {
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    for (int i = 0; i < n; i++) {
        const char *v = tsr_st_meta(&f, keys[i]);
        if (!v || strcmp(v, vals[i]) != 0) {
            st = tsr_errorf(TSR_ERR_ARG, "%s: cannot resume: it was trained with %s=%s, this run has %s", path,
                            keys[i], v ? v : "(missing)", vals[i]);
            break;
        }
    }
    const char *s = tsr_st_meta(&f, "train.step");
    char *end = NULL;
    long long v = s ? strtoll(s, &end, 10) : -1;
    *ckpt_step = s && end != s && *end == 0 && v >= 0 ? v : -1;
    tsr_st_free(&f);
    return st;
}

/* ------------------------------------------------------------ train state */

static void add_i64(tsr_st_writer *w, const char *name, const int64_t *v, int64_t n) {
    tsr_st_add(w, name, TSR_ST_I64, 1, &n, v);
}

tsr_status tsr_trainstate_save(const char *path, const struct tsr_adamw *o, const tsr_train_meta *m) {
    return tsr_trainstate_write(path, o, m, NULL, NULL);
}

tsr_status tsr_trainstate_write(const char *path, const struct tsr_adamw *o, const tsr_train_meta *m,
                                const tsr_params *weights, const char *const *meta) {
    tsr_st_writer *w = tsr_st_writer_new();
    char buf[96];
    for (int i = 0; meta && meta[i] && meta[i + 1]; i += 2) tsr_st_set_meta(w, meta[i], meta[i + 1]);
    tsr_st_set_meta(w, "format", TRAINSTATE_FORMAT);
    for (int i = 0; weights && i < weights->n; i++) {
        const tsr_tensor *t = weights->items[i];
        tsr_st_add(w, t->name, TSR_ST_F32, t->ndim, t->shape, t->data);
    }
    snprintf(buf, sizeof buf, "%" PRId64, m->step);
    tsr_st_set_meta(w, "step", buf); /* for people; the I64 tensors are authoritative */
    add_i64(w, "train.step", &m->step, 1);
    int64_t rng[4];
    memcpy(rng, m->rng.s, sizeof rng); /* u64 words kept bit for bit */
    add_i64(w, "train.rng", rng, 4);
    add_i64(w, "train.cursor", m->cursor, 4);
    if (o) {
        add_i64(w, "adamw.step", &o->step, 1);
        if (o->param_step) add_i64(w, "adamw.param_step", o->param_step, o->p->n);
        const tsr_params *p = o->p;
        for (int i = 0; i < p->n; i++) {
            if (!o->m[i]) continue;
            const tsr_tensor *t = p->items[i];
            char *mn = malloc(strlen(t->name) + 10);
            TSR_ASSERT(mn);
            sprintf(mn, "adamw.m.%s", t->name);
            tsr_st_add(w, mn, TSR_ST_F32, t->ndim, t->shape, o->m[i]);
            sprintf(mn, "adamw.v.%s", t->name);
            tsr_st_add(w, mn, TSR_ST_F32, t->ndim, t->shape, o->v[i]);
            free(mn);
        }
    }
    tsr_status st = tsr_st_write(w, path);
    tsr_st_writer_free(w);
    return st;
}

static tsr_status get_i64(const tsr_st_file *f, const char *path, const char *name, int64_t n,
                          int64_t *dst) {
    const tsr_st_tensor *t = tsr_st_find(f, name);
    if (!t) return tsr_errorf(TSR_ERR_FORMAT, "%s: training state lacks '%s'", path, name);
    if (t->dtype != TSR_ST_I64 || t->ndim != 1 || t->shape[0] != n)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: '%s' must be I64 of shape (%lld)", path, name, (long long)n);
    if (dst) memcpy(dst, t->data, sizeof(int64_t) * (size_t)n);
    return tsr_ok();
}

tsr_status tsr_trainstate_load(const char *path, struct tsr_adamw *o, tsr_train_meta *m) {
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    const char *fmt = tsr_st_meta(&f, "format");
    const tsr_st_tensor **ms = NULL, **vs = NULL;
    char nm[128], a[64], b[64];
    if (!fmt || strcmp(fmt, TRAINSTATE_FORMAT) != 0) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: not a tessera training-state file (format '%s')", path,
                        fmt ? printable(nm, sizeof nm, fmt) : "none");
        goto out;
    }
    /* validate all before changing anything */
    if ((st = get_i64(&f, path, "train.step", 1, NULL)).code || (st = get_i64(&f, path, "train.rng", 4, NULL)).code ||
        (st = get_i64(&f, path, "train.cursor", 4, NULL)).code)
        goto out;
    if (o) {
        if ((st = get_i64(&f, path, "adamw.step", 1, NULL)).code) goto out;
        /* per-parameter step counts: in the file exactly when the optimizer keeps them */
        if (o->param_step && (st = get_i64(&f, path, "adamw.param_step", o->p->n, NULL)).code) goto out;
        if (!o->param_step && tsr_st_find(&f, "adamw.param_step")) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: has per-parameter step counts this run does not keep", path);
            goto out;
        }
        const tsr_params *p = o->p;
        ms = calloc((size_t)p->n + 1, sizeof *ms);
        vs = calloc((size_t)p->n + 1, sizeof *vs);
        TSR_ASSERT(ms && vs);
        for (int i = 0; i < p->n; i++) {
            if (!o->m[i]) continue;
            const tsr_tensor *t = p->items[i];
            for (int k = 0; k < 2; k++) {
                snprintf(nm, sizeof nm, "adamw.%c.%s", k ? 'v' : 'm', t->name);
                const tsr_st_tensor *s = tsr_st_find(&f, nm);
                if (!s) {
                    st = tsr_errorf(TSR_ERR_SHAPE, "%s: optimizer state '%s' is missing", path, nm);
                    goto out;
                }
                if (s->dtype != TSR_ST_F32 || !same_shape(s, t)) {
                    st = tsr_errorf(TSR_ERR_SHAPE, "%s: '%s' is %s %s, expected F32 %s", path, nm,
                                    tsr_st_dtype_name(s->dtype), shape_str(a, sizeof a, s->ndim, s->shape),
                                    shape_str(b, sizeof b, t->ndim, t->shape));
                    goto out;
                }
                (k ? vs : ms)[i] = s;
            }
        }
        /* moments for a parameter this model lacks mean a different model */
        for (int i = 0; i < f.n; i++) {
            const char *n = f.t[i].name;
            if (strncmp(n, "adamw.m.", 8) && strncmp(n, "adamw.v.", 8)) continue;
            const tsr_tensor *t = tsr_params_find(p, n + 8);
            int idx = -1;
            for (int j = 0; t && j < p->n; j++)
                if (p->items[j] == t) idx = j;
            if (idx < 0 || !o->m[idx]) {
                st = tsr_errorf(TSR_ERR_SHAPE, "%s: optimizer state for unknown parameter '%s'", path,
                                printable(nm, sizeof nm, n + 8));
                goto out;
            }
        }
    }
    get_i64(&f, path, "train.step", 1, &m->step);
    int64_t rng[4];
    get_i64(&f, path, "train.rng", 4, rng);
    memcpy(m->rng.s, rng, sizeof rng);
    get_i64(&f, path, "train.cursor", 4, m->cursor);
    if (o) {
        get_i64(&f, path, "adamw.step", 1, &o->step);
        if (o->param_step) get_i64(&f, path, "adamw.param_step", o->p->n, o->param_step);
        for (int i = 0; i < o->p->n; i++) {
            if (!o->m[i]) continue;
            memcpy(o->m[i], ms[i]->data, ms[i]->nbytes);
            memcpy(o->v[i], vs[i]->data, vs[i]->nbytes);
        }
        o->zero_rows_step = -1; /* AdamW's cache of zero moment rows: rebuild */
    }
out:
    free(ms);
    free(vs);
    tsr_st_free(&f);
    return st;
}

tsr_status tsr_trainstate_resume(const char *path, const char *ckpt_path, int64_t ckpt_step,
                                 int64_t total, int64_t n_items, struct tsr_adamw *o,
                                 tsr_train_meta *m) {
    tsr_status st = tsr_trainstate_load(path, o, m);
    if (st.code) return st;
    if (m->step < 0 || m->step > total ||
        (n_items >= 0 && (m->cursor[0] < 0 || m->cursor[1] < 0 || m->cursor[1] > n_items)))
        return tsr_errorf(TSR_ERR_FORMAT, "%s: training state out of range", path);
    if (ckpt_step != m->step)
        return tsr_errorf(TSR_ERR_FORMAT, "%s is at step %lld but %s at step %lld; cannot resume",
                          ckpt_path, (long long)ckpt_step, path, (long long)m->step);
    return tsr_ok();
}
