/* libFuzzer target for the llama2.c tokenizer parser and its encoder
 * (src/io/tokenizer.c): any file parses or gives a status; a tokenizer that
 * parses encodes arbitrary text (here: the input's own bytes) to ids in
 * range and decodes every id.
 * Build: cmake -S . -B build-fuzz -DTSR_FUZZ=ON -DCMAKE_C_COMPILER=clang */
#include "tessera/tokenizer.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    /* first byte: read to the end of the file, or a fixed small vocabulary */
    int vocab = data[0] & 1 ? 0 : 3 + data[0] / 2;
    tsr_tokenizer t;
    tsr_status s = tsr_tokenizer_parse(&t, data + 1, size - 1, vocab, "fuzz");
    if (s.code != TSR_OK) {
        if (!strstr(s.msg, "fuzz")) __builtin_trap();
        return 0;
    }
    size_t tl = size - 1 < 200 ? size - 1 : 200;
    char *text = malloc(tl + 1);
    memcpy(text, data + 1 + (size - 1 - tl), tl);
    text[tl] = 0;
    int *tok = malloc(sizeof(int) * tsr_tokenizer_max_tokens(text));
    int n = tsr_tokenizer_encode(&t, text, true, true, tok);
    if (n < 2 || (size_t)n > tsr_tokenizer_max_tokens(text)) __builtin_trap();
    for (int i = 0; i < n; i++) {
        if (tok[i] < 0 || tok[i] >= t.vocab_size) __builtin_trap();
        const char *p = tsr_tokenizer_decode(&t, i ? tok[i - 1] : TSR_TOK_BOS, tok[i]);
        (void)tsr_tokenizer_printable(p);
    }
    for (int id = 0; id < t.vocab_size && id < 600; id++) (void)strlen(tsr_tokenizer_decode(&t, TSR_TOK_BOS, id));
    free(tok);
    free(text);
    tsr_tokenizer_free(&t);
    return 0;
}
