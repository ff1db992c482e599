/* tessera io: base64 (RFC 4648, standard alphabet), for binary payloads in
 * JSON request and reply bodies (images sent to `tessera serve`).
 * src/io/base64.c. */
#ifndef TESSERA_BASE64_H
#define TESSERA_BASE64_H

#include "tessera/core.h"

/* Decodes s[0..n): the standard alphabet ('+', '/'), '=' padding optional,
 * ASCII whitespace ignored (wrapped lines), and a leading data URL header
 * ("data:image/png;base64,") skipped. *out is malloc'd (*out_n bytes; at
 * least one byte is allocated). A character outside the alphabet, a
 * misplaced '=' or a dangling final character is TSR_ERR_FORMAT naming
 * `what` and the offset. */
tsr_status tsr_base64_decode(const char *s, size_t n, const char *what, uint8_t **out, size_t *out_n);

/* b[0..n) -> a malloc'd NUL-terminated string with padding; NULL when out
 * of memory */
char *tsr_base64_encode(const uint8_t *b, size_t n);

#endif
