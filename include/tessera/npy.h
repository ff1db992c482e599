/* tessera io: NumPy .npy arrays (format 1.0-3.0; little-endian f2, f4, f8;
 * C order; up to 4 dimensions) read as f32. src/io/npy.c. Used for cached
 * text embeddings (ovadetr's CLIP class-name features). */
#ifndef TESSERA_NPY_H
#define TESSERA_NPY_H

#include "tessera/core.h"

typedef struct {
    int ndim;
    int64_t shape[4];
    float *data; /* malloc'd, numel floats */
} tsr_npy;

/* Parses a whole .npy image; `name` is used in messages. A bad magic,
 * header, dtype, Fortran order, a size that disagrees with the data, or a
 * non-finite value is a one-line status naming the file. */
tsr_status tsr_npy_parse(tsr_npy *out, const uint8_t *buf, size_t len, const char *name);
tsr_status tsr_npy_read(tsr_npy *out, const char *path);
void tsr_npy_free(tsr_npy *a);

#endif
