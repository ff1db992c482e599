/* tessera io: whole-file reading shared by the text readers (tokenizer.json,
 * corpus files, held-out lists). src/io/fileio.c. */
#ifndef TESSERA_FILEIO_H
#define TESSERA_FILEIO_H

#include "tessera/core.h"

/* Reads the whole file into *data (malloc'd, NUL-terminated, caller frees)
 * and its size into *len. A missing or unreadable file is a status naming
 * the path. */
tsr_status tsr_read_file(const char *path, char **data, size_t *len);

#endif
