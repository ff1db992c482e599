/* tessera io: safetensors read/write (interoperable with Python's
 * safetensors and PyTorch), parameter checkpoints, and training state.
 * src/io/safetensors.c, src/io/checkpoint.c. Every write is atomic
 * (path.tmp, fsync, rename); every read validates the header fully and
 * returns a tsr_status naming the file and the problem. */
#ifndef TESSERA_SAFETENSORS_H
#define TESSERA_SAFETENSORS_H

#include "tessera/core.h"

/* dtypes as spelled in safetensors headers that we read; we write F32,
 * BF16, I32, U8 (and I64 for counters) */
typedef enum { TSR_ST_F32, TSR_ST_BF16, TSR_ST_F16, TSR_ST_F64, TSR_ST_I64, TSR_ST_I32,
               TSR_ST_I16, TSR_ST_I8, TSR_ST_U8, TSR_ST_BOOL, TSR_ST_DTYPE_COUNT } tsr_st_dtype;

typedef struct {
    char *name;
    tsr_st_dtype dtype;
    int ndim;              /* <= 8 accepted on read */
    int64_t shape[8];
    const void *data;      /* into the file buffer */
    size_t nbytes;
} tsr_st_tensor;

typedef struct {
    tsr_st_tensor *t;
    int n;
    char **meta_keys, **meta_vals; /* __metadata__ (string -> string) */
    int n_meta;
    void *buf;             /* whole file; the data section starts 64-byte aligned */
    size_t len;
    void *block;           /* allocation holding buf (private) */
} tsr_st_file;

/* "F32", "BF16", ... and bytes per element */
const char *tsr_st_dtype_name(tsr_st_dtype dt);
size_t tsr_st_dtype_size(tsr_st_dtype dt);

/* parse a whole file image (buf is copied; used by the fuzz target too) */
tsr_status tsr_st_parse(const void *buf, size_t len, const char *what, tsr_st_file *out);
tsr_status tsr_st_read(const char *path, tsr_st_file *out);
void tsr_st_free(tsr_st_file *f);
const tsr_st_tensor *tsr_st_find(const tsr_st_file *f, const char *name);
const char *tsr_st_meta(const tsr_st_file *f, const char *key); /* NULL if absent */
/* a metadata value read whole as a decimal integer in [lo, hi], or as a finite
 * float; false (out untouched) when absent, empty, malformed or out of range */
bool tsr_st_meta_int(const tsr_st_file *f, const char *key, long lo, long hi, int *out);
bool tsr_st_meta_float(const tsr_st_file *f, const char *key, float *out);
/* copy a tensor into f32 (from F32, BF16, F16, F64, integer types) */
void tsr_st_to_f32(const tsr_st_tensor *t, float *dst);

typedef struct tsr_st_writer tsr_st_writer;
tsr_st_writer *tsr_st_writer_new(void);
/* data is copied at add time; name copied */
void tsr_st_add(tsr_st_writer *w, const char *name, tsr_st_dtype dt, int ndim,
                const int64_t *shape, const void *data);
void tsr_st_set_meta(tsr_st_writer *w, const char *key, const char *val);
tsr_status tsr_st_write(tsr_st_writer *w, const char *path); /* atomic */
void tsr_st_writer_free(tsr_st_writer *w);

/* Parameters (buffers included) by name. dtype F32 or BF16 on disk.
 * meta: NULL-terminated key, value, key, value, ... list (or NULL). */
tsr_status tsr_params_save(const tsr_params *p, const char *path, tsr_st_dtype dt,
                           const char *const *meta);
/* Every registered name must be present with the same shape (error names
 * the tensor); extra tensors in the file are an error unless allow_extra. */
tsr_status tsr_params_load(tsr_params *p, const char *path, bool allow_extra);
/* The same for starting a fine-tune from another model's weights: a 2-D
 * parameter may have more rows than the file's tensor (same columns), e.g.
 * an embedding whose vocabulary grew by added tokens; the file's rows are
 * copied and every new row gets their mean. *grown (may be NULL) counts
 * the parameters that grew. Extra tensors in the file are an error. */
tsr_status tsr_params_load_grow(tsr_params *p, const char *path, int *grown);

/* Before resuming from the checkpoint at path: its metadata must hold
 * vals[i] under keys[i] for every i < n (the settings that shape the
 * trajectory), else TSR_ERR_ARG naming the key, the checkpoint's value and
 * this run's. *ckpt_step gets its "train.step" (-1 when absent). */
tsr_status tsr_ckpt_check_meta(const char *path, const char *const *keys, const char *const *vals, int n,
                               int64_t *ckpt_step);

/* Training state: optimizer moments ("adamw.m.<name>", "adamw.v.<name>"),
 * step, rng state and a data cursor, in a second safetensors file, so that
 * N steps straight == N/2, stop, resume, N/2 (bit-identical). */
struct tsr_adamw;
typedef struct {
    int64_t step;
    tsr_rng rng;          /* the trainer's rng (dropout, shuffling) */
    int64_t cursor[4];    /* data position, trainer-defined (epoch, index, ...) */
} tsr_train_meta;
tsr_status tsr_trainstate_save(const char *path, const struct tsr_adamw *o,
                               const tsr_train_meta *m);
/* The same plus, in one file, the weights (under their registry names)
 * and metadata pairs (NULL-terminated key, value, ...): everything a
 * resume needs, committed by a single rename. Either may be NULL. */
tsr_status tsr_trainstate_write(const char *path, const struct tsr_adamw *o, const tsr_train_meta *m,
                                const tsr_params *weights, const char *const *meta);
tsr_status tsr_trainstate_load(const char *path, struct tsr_adamw *o, tsr_train_meta *m);
/* For a resume: load the state and check it belongs to the checkpoint it
 * resumes (ckpt_path, whose metadata said step ckpt_step): 0 <= step <=
 * total, step == ckpt_step, and when n_items >= 0 a data cursor
 * (epoch >= 0, 0 <= index <= n_items). Errors name the files. */
tsr_status tsr_trainstate_resume(const char *path, const char *ckpt_path, int64_t ckpt_step,
                                 int64_t total, int64_t n_items, struct tsr_adamw *o,
                                 tsr_train_meta *m);

#endif
