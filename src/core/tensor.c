/* tessera core: step tensors and the define-by-run autograd tape. */
#include "tessera/core.h"

#include <string.h>

size_t tsr_dtype_size(tsr_dtype dt) {
    static const size_t sz[] = {4, 2, 4, 1};
    _Static_assert(sizeof sz / sizeof sz[0] == TSR_DTYPE_COUNT, "dtype table");
    TSR_ASSERT(dt >= 0 && dt < TSR_DTYPE_COUNT);
    return sz[dt];
}

const char *tsr_dtype_name(tsr_dtype dt) {
    static const char *nm[] = {"F32", "BF16", "I32", "U8"};
    _Static_assert(sizeof nm / sizeof nm[0] == TSR_DTYPE_COUNT, "dtype table");
    TSR_ASSERT(dt >= 0 && dt < TSR_DTYPE_COUNT);
    return nm[dt];
}

int64_t tsr_shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

bool tsr_same_shape(const tsr_tensor *a, const tsr_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *tsr_shape_str(const tsr_tensor *t, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "(");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, ")");
    return buf;
}

void tsr_ctx_init(tsr_ctx *c, size_t arena_block) {
    memset(c, 0, sizeof *c);
    tsr_arena_init(&c->arena, arena_block);
    c->tape_cap = 1024;
    c->tape = malloc(sizeof(tsr_node *) * (size_t)c->tape_cap);
    TSR_ASSERT(c->tape);
    c->grad_enabled = true;
    c->training = true;
    tsr_rng_seed(&c->rng, 1234);
    c->be = &tsr_backend_cpu;
}

void tsr_ctx_free(tsr_ctx *c) {
    tsr_arena_free(&c->arena);
    free(c->tape);
    memset(c, 0, sizeof *c);
}

void tsr_ctx_reset(tsr_ctx *c) {
    tsr_arena_reset(&c->arena);
    c->tape_len = 0;
}

static tsr_tensor *tensor_header(tsr_ctx *c, tsr_dtype dt, int ndim, const int64_t *shape) {
    TSR_ASSERT(ndim >= 0 && ndim <= TSR_MAX_DIMS);
    tsr_tensor *t = tsr_arena_calloc(&c->arena, sizeof *t);
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        TSR_ASSERT(shape[i] >= 0);
        t->shape[i] = shape[i];
    }
    t->numel = tsr_shape_numel(ndim, shape);
    return t;
}

tsr_tensor *tsr_new(tsr_ctx *c, tsr_dtype dt, int ndim, const int64_t *shape) {
    tsr_tensor *t = tensor_header(c, dt, ndim, shape);
    t->data = tsr_arena_alloc(&c->arena, (size_t)t->numel * tsr_dtype_size(dt));
    return t;
}

tsr_tensor *tsr_zeros(tsr_ctx *c, tsr_dtype dt, int ndim, const int64_t *shape) {
    tsr_tensor *t = tensor_header(c, dt, ndim, shape);
    t->data = tsr_arena_calloc(&c->arena, (size_t)t->numel * tsr_dtype_size(dt));
    return t;
}

tsr_tensor *tsr_new_like(tsr_ctx *c, const tsr_tensor *t) {
    return tsr_new(c, t->dtype, t->ndim, t->shape);
}

tsr_tensor *tsr_wrap(tsr_ctx *c, tsr_dtype dt, int ndim, const int64_t *shape, void *data) {
    tsr_tensor *t = tensor_header(c, dt, ndim, shape);
    t->data = data;
    return t;
}

tsr_tensor *tsr_from_f32(tsr_ctx *c, int ndim, const int64_t *shape, const float *src) {
    tsr_tensor *t = tsr_new(c, TSR_F32, ndim, shape);
    memcpy(t->data, src, sizeof(float) * (size_t)t->numel);
    return t;
}

float *tsr_grad(tsr_ctx *c, tsr_tensor *t) {
    TSR_ASSERT(t->dtype == TSR_F32);
    if (!t->grad) t->grad = tsr_arena_calloc(&c->arena, sizeof(float) * (size_t)t->numel);
    if (t->grad_rows) t->grad_rows_all = true; /* the writer may touch any row */
    return t->grad;
}

float *tsr_grad_rows(tsr_ctx *c, tsr_tensor *t, const int32_t *ids, int64_t n) {
    if (!t->grad_rows || t->grad_rows_all) return tsr_grad(c, t);
    for (int64_t i = 0; i < n; i++) t->grad_rows[ids[i]] = 1;
    return t->grad;
}

tsr_node *tsr_record(tsr_ctx *c, const char *op, tsr_backward_fn bw, tsr_tensor *out, int n_in,
                     tsr_tensor *const *in) {
    if (!c->grad_enabled) return NULL;
    bool any = false;
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->requires_grad) any = true;
    if (!any) return NULL;
    tsr_node *n = tsr_arena_calloc(&c->arena, sizeof *n);
    n->op = op;
    n->backward = bw;
    n->out = out;
    n->n_in = n_in;
    n->in = tsr_arena_alloc(&c->arena, sizeof(tsr_tensor *) * (size_t)(n_in > 0 ? n_in : 1));
    for (int i = 0; i < n_in; i++) n->in[i] = in[i];
    out->requires_grad = true;
    out->node = n;
    if (c->tape_len == c->tape_cap) {
        c->tape_cap *= 2;
        c->tape = realloc(c->tape, sizeof(tsr_node *) * (size_t)c->tape_cap);
        TSR_ASSERT(c->tape);
    }
    c->tape[c->tape_len++] = n;
    return n;
}

static void run_tape(tsr_ctx *c) {
    for (int64_t i = c->tape_len - 1; i >= 0; i--) {
        tsr_node *n = c->tape[i];
        if (n->out->grad) n->backward(c, n);
    }
}

void tsr_backward_with(tsr_ctx *c, tsr_tensor *out, const float *gout) {
    if (!out->requires_grad) return;
    float *g = tsr_grad(c, out);
    for (int64_t i = 0; i < out->numel; i++) g[i] += gout[i];
    run_tape(c);
}

void tsr_backward(tsr_ctx *c, tsr_tensor *loss) {
    TSR_ASSERT(loss->numel == 1 && loss->dtype == TSR_F32);
    if (!loss->requires_grad) return;
    tsr_grad(c, loss)[0] += 1.0f;
    run_tape(c);
}
