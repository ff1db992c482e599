/* tessera core: the named parameter registry (long-lived weights + grads). */
#include "tessera/core.h"

#include <math.h>
#include <string.h>

void tsr_params_init(tsr_params *p) {
    memset(p, 0, sizeof *p);
    tsr_arena_init(&p->arena, (size_t)8 << 20);
}

void tsr_params_free(tsr_params *p) {
    free(p->items);
    free(p->flags);
    tsr_arena_free(&p->arena);
    memset(p, 0, sizeof *p);
}

/* a row of a parameter's grad: its last dimension */
static int64_t grad_row_width(const tsr_tensor *t) {
    return t->ndim > 1 && t->numel > 0 ? t->shape[t->ndim - 1] : (t->numel > 0 ? t->numel : 1);
}

tsr_tensor *tsr_param_new(tsr_params *p, const char *name, int flags, int ndim,
                          const int64_t *shape) {
    TSR_ASSERT(ndim >= 0 && ndim <= TSR_MAX_DIMS);
    TSR_ASSERT(!tsr_params_find(p, name));
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->items = realloc(p->items, sizeof(tsr_tensor *) * (size_t)p->cap);
        p->flags = realloc(p->flags, sizeof(int) * (size_t)p->cap);
        TSR_ASSERT(p->items && p->flags);
    }
    tsr_tensor *t = tsr_arena_calloc(&p->arena, sizeof *t);
    t->dtype = TSR_F32;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = tsr_shape_numel(ndim, shape);
    t->data = tsr_arena_calloc(&p->arena, sizeof(float) * (size_t)t->numel);
    t->is_param = true;
    if (!(flags & TSR_PARAM_BUFFER)) {
        t->grad = tsr_arena_calloc(&p->arena, sizeof(float) * (size_t)t->numel);
        t->requires_grad = true;
        if ((flags & TSR_PARAM_SPARSE_ROWS) && t->numel > 0) {
            /* marks start unknown: the first tsr_params_zero_grad sets them */
            t->grad_rows = tsr_arena_calloc(&p->arena, (size_t)(t->numel / grad_row_width(t)));
            t->grad_rows_all = true;
        }
    }
    size_t len = strlen(name) + 1;
    char *nm = tsr_arena_alloc(&p->arena, len);
    memcpy(nm, name, len);
    t->name = nm;
    p->items[p->n] = t;
    p->flags[p->n] = flags;
    p->n++;
    return t;
}

tsr_tensor *tsr_params_find(const tsr_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->items[i]->name, name) == 0) return p->items[i];
    return NULL;
}

int64_t tsr_params_count(const tsr_params *p) {
    int64_t n = 0;
    for (int i = 0; i < p->n; i++)
        if (!(p->flags[i] & TSR_PARAM_BUFFER)) n += p->items[i]->numel;
    return n;
}

void tsr_params_zero_grad(tsr_params *p) {
    for (int i = 0; i < p->n; i++) {
        tsr_tensor *t = p->items[i];
        if (!t->grad) continue;
        if (!t->grad_rows) {
            memset(t->grad, 0, sizeof(float) * (size_t)t->numel);
            continue;
        }
        const int64_t d = grad_row_width(t), rows = t->numel / d;
        if (t->grad_rows_all) {
            memset(t->grad, 0, sizeof(float) * (size_t)t->numel);
            memset(t->grad_rows, 0, (size_t)rows);
            t->grad_rows_all = false;
            continue;
        }
        for (int64_t r = 0; r < rows; r++) /* unmarked rows are +0 already */
            if (t->grad_rows[r]) {
                memset(t->grad + r * d, 0, sizeof(float) * (size_t)d);
                t->grad_rows[r] = 0;
            }
    }
}

void tsr_init_normal(tsr_tensor *t, tsr_rng *r, float std) {
    float *d = tsr_f32(t);
    for (int64_t i = 0; i < t->numel; i++) d[i] = std * tsr_rng_normal(r);
}

void tsr_init_uniform(tsr_tensor *t, tsr_rng *r, float lo, float hi) {
    float *d = tsr_f32(t);
    for (int64_t i = 0; i < t->numel; i++) d[i] = lo + (hi - lo) * tsr_rng_uniform(r);
}

void tsr_init_const(tsr_tensor *t, float v) {
    float *d = tsr_f32(t);
    for (int64_t i = 0; i < t->numel; i++) d[i] = v;
}

tsr_status tsr_params_check_finite(const tsr_params *p, const char *what) {
    for (int i = 0; i < p->n; i++) {
        const tsr_tensor *t = p->items[i];
        const float *d = tsr_f32(t);
        for (int64_t k = 0; k < t->numel; k++)
            if (!isfinite(d[k]))
                return tsr_errorf(TSR_ERR_NUMERIC,
                                  "%s: tensor '%s' holds a non-finite value (%g at element %lld): "
                                  "the weights diverged",
                                  what, t->name, (double)d[k], (long long)k);
    }
    return tsr_ok();
}
