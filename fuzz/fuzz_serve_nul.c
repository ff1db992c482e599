/* libFuzzer target for the server's scan of a POST body for NUL characters
 * (tsr_serve_body_has_nul, src/serve/request.c), which every endpoint's
 * body passes before its handler: any bytes must give the same answer as a
 * plain string-state scan written here (a raw 0 byte anywhere after the
 * opening '{' or '[', or a \u0000 escape inside a string), never read past
 * the given length (the input is copied into a buffer of exactly its size)
 * and, when true, a member name of printable ASCII and at most 63 bytes.
 * Build: see fuzz/README.md. */
#include "tessera/serve.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool oracle(const char *b, size_t n) {
    size_t i = 0;
    while (i < n && strchr(" \t\n\r", b[i]) && b[i]) i++;
    if (i == n || (b[i] != '{' && b[i] != '[')) return false;
    bool in_str = false;
    for (; i < n; i++) {
        if (b[i] == 0) return true;
        if (!in_str) {
            in_str = b[i] == '"';
        } else if (b[i] == '"') {
            in_str = false;
        } else if (b[i] == '\\' && i + 1 < n) {
            if (n - i >= 6 && memcmp(b + i + 1, "u0000", 5) == 0) return true;
            if (b[i + 1] == 0) return true; /* a raw NUL after a backslash */
            i++;
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    char field[64];
    memset(field, 'X', sizeof field);
    const bool got = tsr_serve_body_has_nul(buf, size, field);
    if (got != oracle(buf, size)) __builtin_trap();
    if (got) {
        const char *end = memchr(field, 0, sizeof field);
        if (!end) __builtin_trap();
        for (const char *c = field; c < end; c++)
            if (*c < 0x20 || *c >= 0x7f) __builtin_trap();
    }
    free(buf);
    return 0;
}
