/* tessera byte-level BPE: the GPT-2 / Hugging Face `tokenizers` ByteLevel
 * scheme, for the LM family's own tokenizers (trained here on code) and for
 * reading HF tokenizer.json files of that kind.
 *
 * Pipeline
 * - Pre-tokenisation splits the bytes into words with GPT-2's pattern
 *     's|'t|'re|'ve|'m|'ll|'d| ?L+| ?N+| ?[^\sLN]+|\s+(?!\S)|\s+
 *   (L letters, N digits, \s Unicode White_Space), written as a hand-made
 *   scanner. Classes: ASCII exactly as the regex; a well-formed non-ASCII
 *   UTF-8 code point is whitespace when in Unicode's White_Space set, a
 *   digit or punctuation for a small table of blocks (Latin-1, General
 *   Punctuation, currency, arrows/maths, box drawing/shapes, CJK
 *   punctuation, fullwidth ASCII, emoji; see cp_class in src/io/bpe.c),
 *   and a letter otherwise; a byte that is not part of well-formed UTF-8
 *   is a one-byte letter. On ASCII text this gives exactly HF's
 *   ByteLevel(use_regex=true) words, and on non-ASCII text nearly always.
 *   For code this keeps an indentation run as its own word minus its last
 *   space, which starts the next word (" return"), and "\n" runs apart.
 * - Each word is encoded independently: bytes -> base tokens, then the
 *   lowest-rank merge among adjacent pairs is applied (leftmost first)
 *   until none applies. Every byte has a base token, so any byte string,
 *   invalid UTF-8 and NULs included, round-trips: decode(encode(x)) == x.
 * - Special tokens (added_tokens) are never produced by encode; callers
 *   insert them (e.g. <|endoftext|> between documents). Decode writes their
 *   content.
 *
 * Files: HF tokenizer.json (model.type "BPE", vocab, merges, added_tokens,
 * ByteLevel pre_tokenizer and decoder). Token strings use GPT-2's map of
 * the 256 bytes to printable code points ("Ġ" for a space). Ids must be
 * dense 0..V-1. Saving is atomic (path.tmp, fsync, rename).
 *
 * Thread safety: encode updates a word cache inside tsr_bpe, so one tsr_bpe
 * must not encode from two threads at once; decode and lookups are const.
 */
#ifndef TESSERA_BPE_H
#define TESSERA_BPE_H

#include "tessera/core.h"

typedef struct tsr_bpe_cache tsr_bpe_cache;
typedef struct tsr_bpe_pairmap tsr_bpe_pairmap;

typedef struct tsr_bpe {
    int vocab_size;          /* V: ids are 0..V-1 */
    int n_merges;
    int byte_id[256];        /* base token of each byte */
    /* per id: raw bytes (not the GPT-2 printable form), NUL-terminated for
     * convenience though a piece may contain NULs; len in piece_len */
    char **piece;
    int *piece_len;
    uint8_t *special;        /* 1 for added (special) tokens */
    int32_t (*merges)[3];    /* rank r: left id, right id, merged id */
    tsr_bpe_pairmap *pairs;  /* (left,right) -> rank */
    tsr_bpe_cache *cache;    /* word -> ids, for encode */
    uint64_t hash;           /* tsr_bpe_hash, computed at build */
} tsr_bpe;

/* Training options. Specials get ids 0..n_specials-1, the 256 bytes the
 * next ids in byte order, merges the rest in the order learned. */
typedef struct {
    int vocab_size;              /* total, specials and 256 bytes included */
    const char *const *specials; /* e.g. {"<|endoftext|>"} */
    int n_specials;
    int64_t min_count;           /* stop when the best pair is rarer (>= 1; 0 means 2) */
    bool verbose;                /* progress on stderr */
} tsr_bpe_train_opts;

/* Learn merges from files (each read whole; words never cross files).
 * The most frequent adjacent pair (counted over word occurrences) is
 * merged each step; ties go to the smaller (left id, right id). Stops at
 * vocab_size or when no pair reaches min_count, so V may come out smaller. */
tsr_status tsr_bpe_train(tsr_bpe *b, const char *const *files, int n_files,
                         const tsr_bpe_train_opts *o);
/* Same over in-memory texts (text i has lens[i] bytes). */
tsr_status tsr_bpe_train_texts(tsr_bpe *b, const char *const *texts, const size_t *lens,
                               int n_texts, const tsr_bpe_train_opts *o);

/* HF tokenizer.json. name labels messages (a path). */
tsr_status tsr_bpe_load(tsr_bpe *b, const char *path);
tsr_status tsr_bpe_parse(tsr_bpe *b, const char *json, size_t len, const char *name);
/* From lists (GGUF's tokenizer.ggml.tokens / merges): tokens[i] is id i in
 * GPT-2 printable form, or a special's content where special[i] (special
 * may be NULL); merges "left right" in rank order. The same checks as a
 * tokenizer.json. */
tsr_status tsr_bpe_from_lists(tsr_bpe *b, const char *const *tokens, const uint8_t *special, int n_tokens,
                              const char *const *merges, int n_merges, const char *name);
/* Token id's text as tokenizer.json spells it (GPT-2 printable form; a
 * special's content), malloc'd; NULL for an id out of range. */
char *tsr_bpe_token_text(const tsr_bpe *b, int id);
tsr_status tsr_bpe_save(const tsr_bpe *b, const char *path);
/* The JSON text save writes (malloc'd, NUL-terminated), or NULL on OOM. */
char *tsr_bpe_to_json(const tsr_bpe *b);
void tsr_bpe_free(tsr_bpe *b);

/* Encode len bytes; out must hold len ids (a token covers >= 1 byte).
 * Returns the number of ids written. */
size_t tsr_bpe_encode(tsr_bpe *b, const void *text, size_t len, int32_t *out);
/* Decode n ids into out (cap bytes; writes at most cap). Returns the number
 * of bytes the whole decode needs; ids outside 0..V-1 decode to nothing. */
size_t tsr_bpe_decode(const tsr_bpe *b, const int32_t *ids, size_t n, char *out, size_t cap);
/* The raw bytes of one id (len in *len), or NULL for an id out of range. */
const char *tsr_bpe_piece(const tsr_bpe *b, int id, int *len);
/* Append a special (added) token with this content; *id gets its id, the
 * old vocab_size. TSR_ERR_ARG if it is empty or already a special. The
 * merges and the ids of every other token are unchanged. */
tsr_status tsr_bpe_add_special(tsr_bpe *b, const char *content, int *id);
/* Id of the special token with this content, or -1. */
int tsr_bpe_special_id(const tsr_bpe *b, const char *content);

/* Split into pre-tokenisation words: calls fn(word, len, user) in order. */
void tsr_bpe_pretokenize(const void *text, size_t len,
                         void (*fn)(const char *word, size_t len, void *user), void *user);

/* 64-bit FNV-1a over the vocab (bytes and special flags, by id) and the
 * merges: the identity of a tokenizer for token caches. */
uint64_t tsr_bpe_hash(const tsr_bpe *b);

/* GPT-2's byte -> printable code point map and its inverse (-1 if none). */
int tsr_bpe_byte_to_cp(int byte);
int tsr_bpe_cp_to_byte(int cp);

#endif
