/* libFuzzer target for the HF tokenizer.json reader (src/io/bpe.c): any
 * input parses or gives a one-line status naming it; a tokenizer that
 * parses encodes arbitrary bytes (the input's tail) to ids in range and
 * decodes them back to the same bytes.
 * Build: see fuzz/README.md (-DTSR_FUZZ=ON with clang). */
#include "tessera/bpe.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_bpe b;
    tsr_status s = tsr_bpe_parse(&b, (const char *)data, size, "fuzz");
    if (s.code != TSR_OK) {
        if (!strstr(s.msg, "fuzz") || strchr(s.msg, '\n')) __builtin_trap();
        return 0;
    }
    size_t tl = size < 256 ? size : 256;
    const uint8_t *text = data + size - tl;
    int32_t *ids = malloc(sizeof(int32_t) * (tl ? tl : 1));
    size_t n = tsr_bpe_encode(&b, text, tl, ids);
    if (n > tl) __builtin_trap();
    char *back = malloc(tl + 1);
    size_t need = tsr_bpe_decode(&b, ids, n, back, tl + 1);
    /* lossless on bytes: the decode of the encode is the input */
    if (need != tl || memcmp(back, text, tl) != 0) __builtin_trap();
    free(back);
    free(ids);
    tsr_bpe_free(&b);
    return 0;
}
