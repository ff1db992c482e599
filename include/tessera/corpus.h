/* tessera text corpora for the LM family: list the source files under a
 * root, split them by FILE into train/validation, tokenise each split with
 * a byte-level BPE into one i32 stream (documents separated by an
 * end-of-text id), and cache streams in a small binary file.
 *
 * Split rule. The held-out set is a committed list of relative paths
 * (data/python_val_files.txt for the Python stdlib corpus): a file is in
 * validation iff its path is on the list, so the split never moves when
 * files are added or removed. The list was made once with
 * tsr_corpus_hash_is_val(path, TSR_CORPUS_VAL_SEED, TSR_CORPUS_VAL_PERMILLE)
 * over every file then present; the function stays here so the list can be
 * checked and so corpora without a list can use the same rule.
 *
 * Bits per byte. Each split reports its source bytes (file contents only;
 * separators add no bytes) and its tokens (separators included), so
 *   bpb = mean_loss_nats * tokens / bytes / ln 2.
 *
 * Token file (little-endian): a 64-byte header
 *   0  char[8] "TSRTOKS1"     8  u32 version (1)   12 u32 header bytes (64)
 *   16 u64 tokenizer hash (tsr_bpe_hash)           24 u64 tokens
 *   32 u64 source bytes       40 u32 documents     44 u32 vocab size
 *   48 i32 separator id (-1 none)                  52..63 zero
 * then `tokens` int32 ids.
 */
#ifndef TESSERA_CORPUS_H
#define TESSERA_CORPUS_H

#include "tessera/bpe.h"
#include "tessera/core.h"

enum { TSR_SPLIT_TRAIN = 0, TSR_SPLIT_VAL = 1 };

#define TSR_CORPUS_VAL_SEED 0x7e55e7a5eedull
#define TSR_CORPUS_VAL_PERMILLE 70

typedef struct {
    char *root;
    int n_files;
    char **rel;      /* relative paths, '/'-separated, sorted by bytes (strcmp) */
    int64_t *size;   /* bytes when listed */
    uint8_t *split;  /* TSR_SPLIT_* per file; all TRAIN until a split is applied */
} tsr_corpus;

/* Regular files under root whose name ends with ext (e.g. ".py"). Skips
 * hidden entries, __pycache__, site-packages and dist-packages (third-party
 * code), and does not follow directory symlinks. Fails when root is not a
 * readable directory or holds no such file. */
tsr_status tsr_corpus_list(tsr_corpus *c, const char *root, const char *ext);
void tsr_corpus_free(tsr_corpus *c);

/* Validation = the paths in the list file (one per line, '#' comments and
 * blank lines ignored). *n_missing (may be NULL) gets the number of listed
 * paths absent from this corpus. */
tsr_status tsr_corpus_split_from_list(tsr_corpus *c, const char *list_path, int *n_missing);
/* The rule that made the list: seeded 64-bit hash of the relative path. */
bool tsr_corpus_hash_is_val(const char *rel, uint64_t seed, int permille);
void tsr_corpus_split_by_hash(tsr_corpus *c, uint64_t seed, int permille);
/* Write the validation paths as a list file (atomic), with a header. */
tsr_status tsr_corpus_write_val_list(const tsr_corpus *c, const char *path);

/* Files and listed bytes in a split. */
int tsr_corpus_count(const tsr_corpus *c, int split, int64_t *bytes);
/* Full paths (root + "/" + rel) of a split's files, malloc'd array of
 * malloc'd strings; free with tsr_corpus_paths_free. */
char **tsr_corpus_paths(const tsr_corpus *c, int split, int *n);
void tsr_corpus_paths_free(char **p, int n);

typedef struct {
    int32_t *ids;
    size_t n;          /* tokens, separators included */
    uint64_t bytes;    /* source bytes, separators excluded */
    uint32_t n_docs;
    uint32_t vocab_size;
    int32_t sep_id;    /* -1: none */
    uint64_t tok_hash; /* tsr_bpe_hash of the tokenizer */
} tsr_corpus_tokens;

/* Encode each file of the split in order, appending sep_id (if >= 0) after
 * each one. */
tsr_status tsr_corpus_tokenize(const tsr_corpus *c, int split, tsr_bpe *b, int sep_id,
                               tsr_corpus_tokens *out);
/* Atomic write (path.tmp, fsync, rename). */
tsr_status tsr_corpus_tokens_save(const tsr_corpus_tokens *t, const char *path);
/* expect_hash != 0: fail unless the file was made by that tokenizer. Ids
 * are checked against the stored vocab size. */
tsr_status tsr_corpus_tokens_load(tsr_corpus_tokens *t, const char *path, uint64_t expect_hash);
/* Load path when it holds this tokenizer's tokens, else tokenise and save. */
tsr_status tsr_corpus_tokens_cached(const tsr_corpus *c, int split, tsr_bpe *b, int sep_id,
                                    const char *path, tsr_corpus_tokens *out);
void tsr_corpus_tokens_free(tsr_corpus_tokens *t);

#endif
