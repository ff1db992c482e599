/* tessera core: status, dtypes, tensors, arenas, the autograd tape, the
 * parameter registry, rng and threads. Every family builds on this header.
 *
 * Contracts
 * - A tensor is contiguous, ndim <= 4, owned by an arena (never freed alone).
 * - Step tensors live in ctx->arena and die at tsr_ctx_reset(); parameters
 *   live in a tsr_params registry and survive across steps.
 * - Only f32 tensors carry gradients. Gradients are f32, same shape.
 * - Backward accumulates (+=) into grads; zeroing is explicit
 *   (tsr_params_zero_grad for parameters; step grads start at zero).
 */
#ifndef TESSERA_CORE_H
#define TESSERA_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- status */

enum { TSR_OK = 0, TSR_ERR_IO = 1, TSR_ERR_FORMAT = 2, TSR_ERR_SHAPE = 3,
       TSR_ERR_ARG = 4, TSR_ERR_NOMEM = 5,
       TSR_ERR_NUMERIC = 6 /* a non-finite loss, gradient or weight */ };

/* What the library returns for anything a user can cause. Only src/cli
 * prints it. code == TSR_OK means success and msg is empty. */
typedef struct {
    int code;
    char msg[256];
} tsr_status;

tsr_status tsr_ok(void);
tsr_status tsr_errorf(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Invariant broken (a bug, not bad input): print file:line, abort. */
#define TSR_ASSERT(x)                                                        \
    do {                                                                     \
        if (!(x)) tsr_assert_fail(#x, __FILE__, __LINE__);                   \
    } while (0)
_Noreturn void tsr_assert_fail(const char *expr, const char *file, int line);

void tsr_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ----------------------------------------------------------------- dtypes */

typedef enum { TSR_F32, TSR_BF16, TSR_I32, TSR_U8, TSR_DTYPE_COUNT } tsr_dtype;

size_t tsr_dtype_size(tsr_dtype dt);
const char *tsr_dtype_name(tsr_dtype dt); /* "F32", "BF16", ... as safetensors */

static inline float tsr_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)h << 16;
    return v.f;
}
/* round to nearest even; NaN stays NaN */
static inline uint16_t tsr_f32_to_bf16(float f) {
    union { uint32_t u; float f; } v;
    v.f = f;
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
    uint32_t r = 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)((v.u + r) >> 16);
}

/* IEEE half precision (ggml's and safetensors' F16): exact widening */
static inline float tsr_f16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v;
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        v.f = (float)m * 0x1p-24f; /* zero and subnormals */
        v.u |= sign;
    } else if (e == 31) {
        v.u = sign | 0x7f800000u | (m << 13);
    } else {
        v.u = sign | ((e + 112u) << 23) | (m << 13);
    }
    return v.f;
}
/* round to nearest even; overflow gives infinity, NaN stays NaN */
static inline uint16_t tsr_f32_to_f16(float f) {
    union { uint32_t u; float f; } v;
    v.f = f;
    uint32_t sign = (v.u >> 16) & 0x8000u, a = v.u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {                                   /* below 2^-14: subnormal half */
        union { uint32_t u; float f; } s;
        s.u = a;
        /* adding 0.5 shifts the value's bits so that the float adder's
         * round-to-nearest-even gives the subnormal half's mantissa */
        s.f += 0.5f;
        return (uint16_t)(sign | (s.u - 0x3f000000u));
    }
    uint32_t mant_odd = (a >> 13) & 1u;
    a += 0xc8000fffu + mant_odd; /* rebias exponent (-112 << 23) and round */
    return (uint16_t)(sign | (a >> 13));
}

/* ------------------------------------------------------------------ arena */

/* Bump allocator over a chain of blocks; 64-byte aligned; reset keeps the
 * first block and frees the rest, so a steady-state step allocates nothing
 * once the first block has grown to the step's peak. */
typedef struct tsr_arena_block tsr_arena_block;
typedef struct {
    tsr_arena_block *head;     /* current block */
    tsr_arena_block *first;
    size_t block_size;         /* default size of new blocks */
    size_t used_total, peak;   /* bytes handed out since reset, high mark */
} tsr_arena;

void tsr_arena_init(tsr_arena *a, size_t block_size);
void *tsr_arena_alloc(tsr_arena *a, size_t bytes);  /* uninitialised */
void *tsr_arena_calloc(tsr_arena *a, size_t bytes); /* zeroed */
void tsr_arena_reset(tsr_arena *a);
void tsr_arena_free(tsr_arena *a);
/* A point to rewind to: tsr_arena_rewind(a, m) hands everything allocated
 * after tsr_arena_mark(a) back for reuse (its blocks stay chained), so a
 * tape-free pass that copies out what it keeps can run stage after stage
 * in the same memory (fewer fresh pages, warmer cache). Anything allocated
 * after the mark is invalid afterwards; a reset invalidates the mark. */
typedef struct {
    tsr_arena_block *head;
    size_t used, used_total;
} tsr_arena_pos;
tsr_arena_pos tsr_arena_mark(const tsr_arena *a);
void tsr_arena_rewind(tsr_arena *a, tsr_arena_pos m);

/* ----------------------------------------------------------------- tensor */

#define TSR_MAX_DIMS 4

typedef struct tsr_node tsr_node;
typedef struct tsr_ctx tsr_ctx;
typedef struct tsr_tensor tsr_tensor;

struct tsr_tensor {
    tsr_dtype dtype;
    int ndim;
    int64_t shape[TSR_MAX_DIMS];
    int64_t numel;
    void *data;
    float *grad;          /* NULL until needed; f32, numel elements */
    /* TSR_PARAM_SPARSE_ROWS parameters: one mark per row (the last
     * dimension) of grad; while grad_rows_all is false, an unmarked row's
     * grad is all +0 (see tsr_grad_rows and tsr_params_zero_grad) */
    uint8_t *grad_rows;
    bool grad_rows_all;
    bool requires_grad;
    bool is_param;        /* grad storage is owned by a tsr_params */
    tsr_node *node;       /* op that made it; NULL for leaves */
    const char *name;     /* parameters: HF-style dotted name */
};

static inline float *tsr_f32(const tsr_tensor *t) { return (float *)t->data; }
static inline int32_t *tsr_i32(const tsr_tensor *t) { return (int32_t *)t->data; }
static inline uint8_t *tsr_u8(const tsr_tensor *t) { return (uint8_t *)t->data; }
static inline uint16_t *tsr_bf16(const tsr_tensor *t) { return (uint16_t *)t->data; }

int64_t tsr_shape_numel(int ndim, const int64_t *shape);
bool tsr_same_shape(const tsr_tensor *a, const tsr_tensor *b);
/* "(2,3,4)" into buf */
const char *tsr_shape_str(const tsr_tensor *t, char *buf, size_t n);

/* ------------------------------------------------------- backend seam */

/* Kernels that a device backend provides. Ops call through ctx->be so a
 * CUDA backend (or an all-reduce for data-parallel training) can replace
 * them without touching model code. The CPU table wraps OpenBLAS. */
typedef struct {
    const char *name;
    /* row-major C(M,N) = alpha * op(A)(M,K) op(B)(K,N) + beta * C */
    void (*sgemm)(bool ta, bool tb, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta,
                  float *C, int ldc);
} tsr_backend;

extern const tsr_backend tsr_backend_cpu;
/* the same product with a fixed reduction order per element (k ascending,
 * one float sum): a row's result is independent of M, of its position and
 * of the thread count; slower than OpenBLAS */
extern const tsr_backend tsr_backend_cpu_fixed;

/* -------------------------------------------------------------------- rng */

/* xoshiro256** seeded by splitmix64. State is 4 words so it can be saved
 * in a training-state file and resumed exactly. */
typedef struct { uint64_t s[4]; } tsr_rng;

void tsr_rng_seed(tsr_rng *r, uint64_t seed);
uint64_t tsr_rng_u64(tsr_rng *r);
float tsr_rng_uniform(tsr_rng *r);                   /* [0,1) */
float tsr_rng_normal(tsr_rng *r);                    /* N(0,1) */
uint32_t tsr_rng_below(tsr_rng *r, uint32_t n);      /* [0,n) unbiased */
void tsr_rng_shuffle_i32(tsr_rng *r, int32_t *a, int64_t n);

/* -------------------------------------------------------- autograd tape */

#define TSR_NODE_IARGS 8
#define TSR_NODE_FARGS 4

typedef void (*tsr_backward_fn)(tsr_ctx *c, tsr_node *n);

struct tsr_node {
    const char *op;        /* op name, for debugging */
    tsr_backward_fn backward;
    tsr_tensor *out;
    tsr_tensor **in;
    int n_in;
    void *saved;           /* op-specific data in the step arena */
    int64_t iarg[TSR_NODE_IARGS];
    float farg[TSR_NODE_FARGS];
};

struct tsr_ctx {
    tsr_arena arena;       /* per-step: tensors, nodes, saved data, grads */
    tsr_node **tape;
    int64_t tape_len, tape_cap;
    bool grad_enabled;     /* record nodes at all */
    bool training;         /* dropout on, batchnorm uses batch stats */
    tsr_rng rng;           /* dropout and other stochastic ops */
    const tsr_backend *be;
};

void tsr_ctx_init(tsr_ctx *c, size_t arena_block);
void tsr_ctx_free(tsr_ctx *c);
/* drop all step tensors and the tape */
void tsr_ctx_reset(tsr_ctx *c);

/* new step tensor; data uninitialised (tsr_zeros for zeroed) */
tsr_tensor *tsr_new(tsr_ctx *c, tsr_dtype dt, int ndim, const int64_t *shape);
tsr_tensor *tsr_zeros(tsr_ctx *c, tsr_dtype dt, int ndim, const int64_t *shape);
/* step tensor with the same dtype/shape as t */
tsr_tensor *tsr_new_like(tsr_ctx *c, const tsr_tensor *t);
/* wrap caller-owned memory (not copied); no grad */
tsr_tensor *tsr_wrap(tsr_ctx *c, tsr_dtype dt, int ndim, const int64_t *shape, void *data);
/* copy from f32 host array */
tsr_tensor *tsr_from_f32(tsr_ctx *c, int ndim, const int64_t *shape, const float *src);

#define TSR_SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define TSR_NDIM(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
/* tsr_new(c, TSR_F32, TSR_DIMS(B, T, C)) */
#define TSR_DIMS(...) TSR_NDIM(__VA_ARGS__), TSR_SHAPE(__VA_ARGS__)

/* Gradient of t, allocated zeroed in the step arena on first use. */
float *tsr_grad(tsr_ctx *c, tsr_tensor *t);
/* t's grad for a writer that adds only to the rows ids[0..n) (an
 * embedding's backward): a TSR_PARAM_SPARSE_ROWS parameter marks just
 * these rows, where tsr_grad marks them all */
float *tsr_grad_rows(tsr_ctx *c, tsr_tensor *t, const int32_t *ids, int64_t n);

/* Called by an op after computing `out` from `in`: if grad is enabled and
 * any input requires grad, mark out as requiring grad and push a node onto
 * the tape. Returns the node (to fill iarg/farg/saved) or NULL. */
tsr_node *tsr_record(tsr_ctx *c, const char *op, tsr_backward_fn bw,
                     tsr_tensor *out, int n_in, tsr_tensor *const *in);

/* Seed d(loss)/d(loss) = 1 (loss must have numel 1) and run the tape in
 * reverse. Gradients of parameters accumulate into their registry grads. */
void tsr_backward(tsr_ctx *c, tsr_tensor *loss);
/* Same, seeding d(loss)/d(out) = gout (out->numel floats). */
void tsr_backward_with(tsr_ctx *c, tsr_tensor *out, const float *gout);

/* ------------------------------------------------------- parameter registry */

/* TSR_PARAM_SPARSE_ROWS: an embedding table, of which a step's gradient
 * touches few rows (rows = the last dimension); AdamW and the trainer's
 * gradient norm then skip the rows that cannot change (see optim.h).
 * Its grad also carries row marks: after tsr_params_zero_grad, the ops
 * mark the rows they write (tsr_grad_rows; tsr_grad marks every row), so
 * the next zeroing, gradient norm and AdamW step visit only marked rows.
 * Code that writes such a grad directly, not through tsr_grad, must set
 * grad_rows_all. */
enum { TSR_PARAM_NO_DECAY = 1, TSR_PARAM_BUFFER = 2 /* no grad, saved */, TSR_PARAM_SPARSE_ROWS = 4 };

typedef struct {
    tsr_tensor **items;
    int *flags;
    int n, cap;
    tsr_arena arena; /* long-lived: tensor structs, data, grads */
} tsr_params;

void tsr_params_init(tsr_params *p);
void tsr_params_free(tsr_params *p);
/* zero-initialised f32 parameter; name is copied */
tsr_tensor *tsr_param_new(tsr_params *p, const char *name, int flags, int ndim,
                          const int64_t *shape);
tsr_tensor *tsr_params_find(const tsr_params *p, const char *name);
int64_t tsr_params_count(const tsr_params *p); /* trainable elements */
/* zeroes every grad (a TSR_PARAM_SPARSE_ROWS grad: its marked rows, or
 * all when grad_rows_all; then its marks are cleared and kept from here) */
void tsr_params_zero_grad(tsr_params *p);
/* TSR_ERR_NUMERIC naming the first tensor of p with a non-finite value
 * (what: the file or model, for the message), else ok: evals and loads of
 * trained weights refuse a diverged model with it. */
tsr_status tsr_params_check_finite(const tsr_params *p, const char *what);
/* init helpers */
void tsr_init_normal(tsr_tensor *t, tsr_rng *r, float std);
void tsr_init_uniform(tsr_tensor *t, tsr_rng *r, float lo, float hi);
void tsr_init_const(tsr_tensor *t, float v);

/* ---------------------------------------------------------------- threads */

/* n <= 0: take TESSERA_THREADS, else all cores. Sets OpenMP and OpenBLAS. */
void tsr_threads_set(int n);
int tsr_threads_get(void);
/* Applies the process's thread count to the calling thread. OpenMP keeps
 * the count per thread: a thread started after tsr_threads_set (a server's
 * scheduler or connection threads) would otherwise run its parallel
 * regions on every core whatever --threads says. */
void tsr_threads_adopt(void);
/* Team size of short, repeated steps (one-token decode), chosen by timing
 * them. On a machine where another program keeps a core busy, a team of 2
 * on 2 cores waits at every barrier for its descheduled thread and runs
 * several times slower than one thread; idle, the team is faster. With the
 * tuning on (generation and serving turn it on; benchmarks and training
 * keep a fixed team) and the thread count left to tessera
 * (tsr_threads_set(0) with no TESSERA_THREADS), a probe times 3 steps at
 * the kept team size and 3 at a neighbour (half or double it, within 1..the
 * thread count), interleaved, and keeps the neighbour only if its median
 * step is under 0.9x; as soon as one team's median is 1.5x the other's,
 * the probe ends there. A kept choice doubles the steps to the next probe (16 up
 * to 1,024); a change brings it back to 16. Per calling thread. Results do
 * not depend on it: the kernels give the same bits at every thread count.
 * begin/end bracket one step (no-ops with the tuning off, an explicit
 * thread count, one thread, or inside a parallel region). */
void tsr_step_team_tuning(bool on);
/* share of the calling thread's tuned steps that ran on a team smaller
 * than the thread count because the timing chose it (probe steps, which
 * try a smaller team on an idle machine too, are not counted) */
double tsr_step_team_reduced_share(void);
typedef struct {
    int used, prev; /* this step's team (0: not tuned) and the count to restore */
    bool probe;     /* a probe's step */
    double t0;
} tsr_step_team;
void tsr_step_team_begin(tsr_step_team *s);
void tsr_step_team_end(tsr_step_team *s);
/* The tuner's decision step, for tests: feed a step's team and seconds,
 * get the team of the next step (0 < team <= threads). */
typedef struct {
    int threads, choice, alt; /* thread count, kept team, neighbour probed */
    int probe, left, period;  /* probe steps left (0: not probing), steps to the next probe, its period */
    int n_c, n_a, last_dir;
    double t_c[3], t_a[3];
} tsr_team_tuner;
void tsr_team_tuner_init(tsr_team_tuner *u, int threads);
int tsr_team_tuner_next_team(const tsr_team_tuner *u);
void tsr_team_tuner_record(tsr_team_tuner *u, int team, double seconds);
/* The calling thread's OpenMP team limit and its index in the running
 * team (1 and 0 without OpenMP), for per-thread scratch. */
int tsr_omp_max_threads(void);
int tsr_omp_thread_num(void);

/* Test hook for crash tests: called at named points of multi-file saves
 * (the atomic writer after its tmp file is complete, the trainer between
 * its files) so a test can kill the process there. NULL normally. */
extern void (*tsr_fault_hook)(const char *point);

/* monotonic seconds */
double tsr_time(void);
/* CPU seconds used by the calling thread (user + system): a cost that a
 * loaded machine's other jobs do not inflate, unlike tsr_time's wall clock */
double tsr_thread_time(void);

#endif
