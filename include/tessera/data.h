/* tessera io: IDX files (MNIST / Fashion-MNIST; gzip or plain through zlib)
 * and seeded, deterministic, resumable shuffled batching. src/io/idx.c. */
#ifndef TESSERA_DATA_H
#define TESSERA_DATA_H

#include "tessera/core.h"

typedef struct {
    int ndim;
    int64_t shape[4];
    uint8_t *data; /* u8 payload (types other than unsigned byte rejected) */
} tsr_idx;

tsr_status tsr_idx_read(const char *path, tsr_idx *out);
void tsr_idx_free(tsr_idx *x);

/* Fashion-MNIST from `dir` (default /usr/share/datasets/fashion-mnist if
 * NULL): train or test images (N,28,28) and labels (N). */
typedef struct {
    tsr_idx images, labels;
    int64_t n;
} tsr_mnist;
tsr_status tsr_mnist_load(const char *dir, bool train, tsr_mnist *out);
void tsr_mnist_free(tsr_mnist *m);

/* Fashion-MNIST's class names as the data set names them (0 "T-shirt/top",
 * 1 "Trouser", ..., 7 "Sneaker", 9 "Ankle boot"); NULL outside 0..9. */
const char *tsr_fmnist_class_name(int c);
/* The class of a name, matched case-insensitively; -1 when none. */
int tsr_fmnist_class_find(const char *name);

/* Epoch-wise shuffled order from (seed, epoch) alone, so a cursor
 * (epoch, index) resumes exactly. */
typedef struct {
    int64_t n, batch;
    uint64_t seed;
    int64_t epoch, index; /* cursor: next sample is order[index] of epoch */
    int32_t *order;
} tsr_batcher;
void tsr_batcher_init(tsr_batcher *b, int64_t n, int64_t batch, uint64_t seed);
/* fills idx with up to batch sample ids; returns the count (the last batch
 * of an epoch may be short when drop_last is false; with drop_last the
 * remainder is skipped). Moves to the next epoch automatically. */
int64_t tsr_batcher_next(tsr_batcher *b, int32_t *idx, bool drop_last);
void tsr_batcher_seek(tsr_batcher *b, int64_t epoch, int64_t index);
void tsr_batcher_free(tsr_batcher *b);

#endif
