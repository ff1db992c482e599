/* tessera io: whole-file reading and atomic whole-file writing shared by
 * the text and token-file readers/writers (tokenizer.json, corpus files,
 * held-out lists, token caches). src/io/fileio.c. */
#ifndef TESSERA_FILEIO_H
#define TESSERA_FILEIO_H

#include "tessera/core.h"

/* Reads the whole file into *data (malloc'd, NUL-terminated, caller frees)
 * and its size into *len. A missing or unreadable file is a status naming
 * the path. */
tsr_status tsr_read_file(const char *path, char **data, size_t *len);

/* Writes a then b (lb may be 0) to path atomically: path.tmp, fsync,
 * rename, fsync of the directory. On failure the tmp is removed and path
 * is untouched. */
tsr_status tsr_write_file_atomic(const char *path, const void *a, size_t la, const void *b,
                                 size_t lb);

#endif
