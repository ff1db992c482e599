/* tessera io: GGUF v3, llama.cpp's model file format, read and written
 * (src/io/gguf.c), and Llama-family models and byte-level BPE tokenizers in
 * it (src/io/gguf_llama.c), so a model trained or converted here runs in
 * llama.cpp and a GGUF model a user holds runs here.
 *
 * Format (little-endian): "GGUF", u32 version (2 or 3 read, 3 written),
 * u64 tensor count, u64 metadata count; metadata as (string key, u32 value
 * type, value), strings as u64 length + bytes (no NUL), arrays as u32
 * element type + u64 count + elements; tensor infos as (string name, u32
 * n_dims <= 4, u64 ne[n_dims] innermost first, u32 ggml type, u64 offset);
 * padding to general.alignment (default 32); the data section, each
 * tensor at its offset (a multiple of the alignment) from its start.
 *
 * Reading is defensive: every count, length, dimension and offset is
 * bounded by the bytes the file has before anything is allocated (so a
 * lying header cannot cause a huge allocation), duplicate keys and tensor
 * names, nested arrays, unknown value or tensor types, overlapping or
 * out-of-file tensor data are errors, and every error is one line naming
 * the file. Strings are not NUL-terminated in the file: keys and tensor
 * names are copied (a NUL inside one is an error); string values point
 * into the image with their length. */
#ifndef TESSERA_GGUF_H
#define TESSERA_GGUF_H

#include "tessera/bpe.h"
#include "tessera/core.h"
#include "tessera/lm.h"

/* metadata value types (the file's numbering) */
typedef enum {
    TSR_GGUF_U8 = 0, TSR_GGUF_I8 = 1, TSR_GGUF_U16 = 2, TSR_GGUF_I16 = 3, TSR_GGUF_U32 = 4,
    TSR_GGUF_I32 = 5, TSR_GGUF_F32 = 6, TSR_GGUF_BOOL = 7, TSR_GGUF_STR = 8, TSR_GGUF_ARR = 9,
    TSR_GGUF_U64 = 10, TSR_GGUF_I64 = 11, TSR_GGUF_F64 = 12, TSR_GGUF_VTYPE_COUNT
} tsr_gguf_vtype;

/* ggml tensor types tessera computes with (every type llama.cpp defines
 * is recognised for sizes; see tsr_ggml_type_name) */
enum { TSR_GGML_F32 = 0, TSR_GGML_F16 = 1, TSR_GGML_Q8_0 = 8, TSR_GGML_BF16 = 30 };
#define TSR_GGML_Q8_0_BLOCK 32 /* Q8_0 block: f16 scale d, then 32 int8; w = q * d */

typedef struct {
    const char *s; /* into the file image, not NUL-terminated */
    size_t len;
} tsr_gguf_str;

typedef struct {
    char *key;               /* NUL-terminated copy */
    tsr_gguf_vtype type;
    tsr_gguf_vtype arr_type; /* TSR_GGUF_ARR only */
    uint64_t n;              /* TSR_GGUF_ARR: element count; else 1 */
    const unsigned char *data; /* scalar value or array elements (scalar types), in the image */
    tsr_gguf_str *strs;      /* TSR_GGUF_STR: one; array of strings: n */
} tsr_gguf_kv;

typedef struct {
    char *name;         /* NUL-terminated copy */
    uint32_t type;      /* ggml type */
    int ndim;           /* 1..4 */
    int64_t ne[4];      /* ne[0] innermost (a row-major (rows, cols) matrix is ne = {cols, rows}) */
    uint64_t offset;    /* from the start of the data section */
    const void *data;   /* in the image (aligned to the file's alignment from its start) */
    size_t nbytes;
} tsr_gguf_tensor;

typedef struct {
    uint32_t version;
    uint32_t alignment;
    tsr_gguf_kv *kv;
    int n_kv;
    tsr_gguf_tensor *t;
    int n_tensors;
    const unsigned char *buf; /* the image */
    size_t len;
    void *map;                /* tsr_gguf_read's mapping (private) */
    size_t map_len;
} tsr_gguf_file;

/* "F32", "Q8_0", ... ("?" for an unknown id) */
const char *tsr_ggml_type_name(uint32_t type);
/* bytes of n elements of a type (n a multiple of its block size); 0 when
 * the type is unknown or n is not a multiple */
size_t tsr_ggml_nbytes(uint32_t type, uint64_t n);

/* Parse a file image; buf is not copied and must outlive *out. name labels
 * messages. */
tsr_status tsr_gguf_parse(const void *buf, size_t len, const char *name, tsr_gguf_file *out);
/* Map the file read-only and parse it. */
tsr_status tsr_gguf_read(const char *path, tsr_gguf_file *out);
void tsr_gguf_free(tsr_gguf_file *f);

const tsr_gguf_kv *tsr_gguf_find(const tsr_gguf_file *f, const char *key);
const tsr_gguf_tensor *tsr_gguf_find_tensor(const tsr_gguf_file *f, const char *name);
/* Typed lookups: 1 found (*v set), 0 absent, -1 present with another type.
 * get_int takes any integer type (and bool), get_float also F32/F64. */
int tsr_gguf_get_int(const tsr_gguf_file *f, const char *key, int64_t *v);
int tsr_gguf_get_float(const tsr_gguf_file *f, const char *key, double *v);
int tsr_gguf_get_str(const tsr_gguf_file *f, const char *key, tsr_gguf_str *v);
/* element i of an integer array (any integer type); false when out of range */
bool tsr_gguf_arr_int(const tsr_gguf_kv *kv, uint64_t i, int64_t *v);

/* ------------------------------------------------------------ writer */

typedef struct tsr_gguf_writer tsr_gguf_writer;
tsr_gguf_writer *tsr_gguf_writer_new(void);
void tsr_gguf_set_u32(tsr_gguf_writer *w, const char *key, uint32_t v);
void tsr_gguf_set_f32(tsr_gguf_writer *w, const char *key, float v);
void tsr_gguf_set_bool(tsr_gguf_writer *w, const char *key, bool v);
void tsr_gguf_set_str(tsr_gguf_writer *w, const char *key, const char *v);
/* array of n strings (lens[i] bytes each; lens NULL: NUL-terminated) */
void tsr_gguf_set_arr_str(tsr_gguf_writer *w, const char *key, const char *const *s, const size_t *lens,
                          size_t n);
/* array of n scalars of type t (I32, F32, ...) */
void tsr_gguf_set_arr(tsr_gguf_writer *w, const char *key, tsr_gguf_vtype t, const void *data, size_t n);
/* data (tsr_ggml_nbytes(type, product of ne)) is copied */
void tsr_gguf_add_tensor(tsr_gguf_writer *w, const char *name, uint32_t type, int ndim, const int64_t *ne,
                         const void *data);
/* Version 3, alignment 32; atomic (path.tmp, fsync, rename). */
tsr_status tsr_gguf_write(tsr_gguf_writer *w, const char *path);
void tsr_gguf_writer_free(tsr_gguf_writer *w);

/* ------------------------------------------------------------ Llama models
 * src/io/gguf_llama.c. llama.cpp's names: general.architecture "llama",
 * llama.{context_length, embedding_length, block_count,
 * feed_forward_length, attention.head_count, attention.head_count_kv,
 * attention.layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count,
 * vocab_size}; tensors token_embd, blk.N.{attn_norm, attn_q, attn_k,
 * attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}, output_norm,
 * output (absent: tied to token_embd). llama.cpp's "llama" graph rotates
 * pairs (2i, 2i+1) of each head (its converter permutes HF's q/k rows to
 * that layout); reading permutes them back to tessera's rotate-half layout
 * and writing a rotate-half model permutes them forward, so q.k, and the
 * logits, are unchanged. */


/* F32, F16, BF16 and Q8_0 tensors (norms F32/F16/BF16). wtype < 0: the
 * type attn_q is stored in (F32/F16 -> f32, BF16 -> bf16, Q8_0 -> q8 with
 * group 32: the blocks are used as they are, their f16 scales widened to
 * f32, exactly); otherwise converted as tsr_lm_load does. */
tsr_status tsr_lm_load_gguf(tsr_lm_model *m, const char *path, int wtype, int group_size);
tsr_status tsr_lm_gguf_model(tsr_lm_model *m, const tsr_gguf_file *f, const char *name, int wtype,
                             int group_size);
/* The file's byte-level BPE tokenizer (tokenizer.ggml.model "gpt2":
 * tokens, token_type, merges); CONTROL and USER_DEFINED tokens become
 * specials. Other tokenizer models are an error naming the model. */
/* pre (may be NULL) gets tokenizer.ggml.pre ("" when absent): callers warn
 * when it is not "gpt-2", the pre-tokenisation src/io/bpe.c implements. */
tsr_status tsr_bpe_load_gguf(tsr_bpe *b, const char *path, char *pre, size_t pre_cap);
tsr_status tsr_bpe_from_gguf(tsr_bpe *b, const tsr_gguf_file *f, const char *name);

/* Write m as a llama.cpp GGUF with matrices (token_embd and output
 * included) in `type` (TSR_GGML_F32, TSR_GGML_BF16 or TSR_GGML_Q8_0,
 * quantised from the model's f32 values as llama.cpp does; Q8_0 matrices
 * whose rows are not whole 32-blocks are written F16, as llama.cpp's
 * converter does), norms in F32,
 * and tok (may be NULL: no tokenizer metadata) as gpt2-style BPE metadata
 * with pre-tokenizer "gpt-2" (the same pre-tokenisation as src/io/bpe.c),
 * bos/eos the ids of its BOS and end tokens (-1: none; a BOS is added in
 * front of every prompt, as tsr_lm_generate_bpe does).
 * A tokenizer with fewer tokens than the model's vocabulary is padded with
 * CONTROL tokens "[PAD<id>]". Atomic. */
tsr_status tsr_lm_save_gguf(const tsr_lm_model *m, const tsr_bpe *tok, int bos, int eos, uint32_t type,
                            const char *path);

#endif
