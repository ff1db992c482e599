/* tessera tokenizer: the llama2.c byte-fallback BPE tokenizer (tokenizer.bin,
 * a sentencepiece vocabulary exported with scores), encoding and decoding
 * exactly as llama2.c's run.c does.
 *
 * File: int32 max_token_length, then per token: f32 score, int32 len,
 * len bytes. Ids 0, 1, 2 are <unk>, <s> (BOS), </s> (EOS); ids 3..258 are
 * the byte tokens <0x00>..<0xFF> used for byte fallback.
 */
#ifndef TESSERA_TOKENIZER_H
#define TESSERA_TOKENIZER_H

#include "tessera/core.h"

enum { TSR_TOK_UNK = 0, TSR_TOK_BOS = 1, TSR_TOK_EOS = 2, TSR_TOK_BYTE0 = 3 };

typedef struct tsr_tokenizer {
    int vocab_size;
    int max_token_length;  /* as declared in the file */
    int longest;           /* longest piece actually present (bytes) */
    char **vocab;          /* NUL-terminated pieces (a piece ends at its first NUL) */
    float *scores;
    int *sorted;           /* ids ordered by (strcmp(piece), id) for lookups */
    int16_t *byte_of;      /* (vocab) raw byte a "<0xXX>" piece stands for, or -1 */
    int space_id;          /* id of " " or -1 */
    char byte_pieces[512]; /* "\xNN\0" for every byte */
    char *blob;            /* owned storage for the pieces */
} tsr_tokenizer;

/* vocab_size > 0: read that many tokens (as run.c, from the model config;
 * trailing bytes are ignored); 0: read tokens until the end of the file. */
tsr_status tsr_tokenizer_load(tsr_tokenizer *t, const char *path, int vocab_size);
tsr_status tsr_tokenizer_parse(tsr_tokenizer *t, const void *buf, size_t len, int vocab_size,
                               const char *name);
void tsr_tokenizer_free(tsr_tokenizer *t);

/* id of an exact piece, or -1 */
int tsr_tokenizer_lookup(const tsr_tokenizer *t, const char *piece);
/* Capacity encode needs for text: strlen(text) + 3 tokens. */
size_t tsr_tokenizer_max_tokens(const char *text);
/* run.c's encode: optional BOS, the dummy-prefix " " (when text is not
 * empty), one token per UTF-8 code point found in the vocabulary else one
 * byte token per byte, then repeatedly merge the adjacent pair whose
 * concatenation is the best-scoring piece (leftmost on ties); optional EOS.
 * tokens must hold tsr_tokenizer_max_tokens(text). Returns the count. */
int tsr_tokenizer_encode(const tsr_tokenizer *t, const char *text, bool bos, bool eos,
                         int *tokens);
/* run.c's decode: the piece of `token`, without its leading space when
 * prev is BOS, and a raw byte for a "<0xXX>" piece. Never NULL. */
const char *tsr_tokenizer_decode(const tsr_tokenizer *t, int prev, int token);
/* run.c prints a piece unless it is a single byte that is neither
 * printable nor whitespace. */
bool tsr_tokenizer_printable(const char *piece);

#endif
