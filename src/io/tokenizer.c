/* llama2.c tokenizer.bin reader and its BPE encode/decode, for the lm
 * family (prompt encoding and streaming decode in generation). Behaviour
 * follows llama2.c's run.c so greedy outputs match its reference runs;
 * where run.c would index out of range on odd vocabularies (no " " piece,
 * fewer than 259 tokens) we skip the prefix or fall back to <unk> instead. */
#include "tessera/tokenizer.h"
#include "tessera/fileio.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define TOK_MAX_VOCAB (1 << 22)
#define TOK_MAX_PIECE (1 << 16)

static int32_t rd_i32(const unsigned char *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}
static float rd_f32(const unsigned char *p) {
    float v;
    memcpy(&v, p, 4);
    return v;
}

typedef struct {
    const char *s;
    int id;
} tok_key;

static int cmp_key(const void *a, const void *b) {
    const tok_key *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    if (c) return c;
    return (x->id > y->id) - (x->id < y->id);
}

void tsr_tokenizer_free(tsr_tokenizer *t) {
    if (!t) return;
    free(t->vocab);
    free(t->scores);
    free(t->sorted);
    free(t->byte_of);
    free(t->blob);
    memset(t, 0, sizeof *t);
}

tsr_status tsr_tokenizer_parse(tsr_tokenizer *t, const void *buf, size_t len, int vocab_size,
                               const char *name) {
    memset(t, 0, sizeof *t);
    const unsigned char *p = buf;
    if (!name) name = "<memory>";
    if (vocab_size < 0 || vocab_size > TOK_MAX_VOCAB)
        return tsr_errorf(TSR_ERR_ARG, "%s: requested vocabulary size %d out of range", name,
                          vocab_size);
    if (len < 4)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not a llama2.c tokenizer (file of %zu bytes is too short for the header)",
                          name, len);
    int32_t mtl = rd_i32(p);
    if (mtl < 0 || mtl > TOK_MAX_PIECE)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not a llama2.c tokenizer (max_token_length %d)", name,
                          (int)mtl);
    /* first pass: count tokens and bytes, checking every length */
    size_t off = 4, blob_bytes = 0;
    int n = 0;
    while (vocab_size ? n < vocab_size : off < len) {
        if (len - off < 8)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: truncated at token %d (offset %zu of %zu bytes)%s",
                              name, n, off, len,
                              vocab_size ? "; does the tokenizer match the model's vocabulary?" : "");
        int32_t l = rd_i32(p + off + 4);
        if (l < 0 || l > TOK_MAX_PIECE)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: token %d has invalid length %d (offset %zu)", name,
                              n, (int)l, off + 4);
        if ((size_t)l > len - off - 8)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: truncated inside token %d (needs %d bytes at offset %zu of %zu)",
                              name, n, (int)l, off + 8, len);
        off += 8 + (size_t)l;
        blob_bytes += (size_t)l + 1;
        if (++n > TOK_MAX_VOCAB)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: more than %d tokens", name, TOK_MAX_VOCAB);
    }
    if (n < 3)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: only %d tokens (needs at least <unk>, <s>, </s>)", name, n);

    t->vocab_size = n;
    t->max_token_length = mtl;
    t->vocab = malloc(sizeof(char *) * (size_t)n);
    t->scores = malloc(sizeof(float) * (size_t)n);
    t->sorted = malloc(sizeof(int) * (size_t)n);
    t->byte_of = malloc(sizeof(int16_t) * (size_t)n);
    t->blob = malloc(blob_bytes);
    tok_key *keys = malloc(sizeof(tok_key) * (size_t)n);
    if (!t->vocab || !t->scores || !t->sorted || !t->byte_of || !t->blob || !keys) {
        free(keys);
        tsr_tokenizer_free(t);
        return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory for %d tokens", name, n);
    }
    off = 4;
    char *dst = t->blob;
    t->longest = 0;
    for (int i = 0; i < n; i++) {
        t->scores[i] = rd_f32(p + off);
        int32_t l = rd_i32(p + off + 4);
        memcpy(dst, p + off + 8, (size_t)l);
        dst[l] = 0;
        t->vocab[i] = dst;
        int sl = (int)strlen(dst); /* a piece ends at its first NUL, as in run.c */
        if (sl > t->longest) t->longest = sl;
        dst += l + 1;
        off += 8 + (size_t)l;
        unsigned char b;
        t->byte_of[i] = sscanf(t->vocab[i], "<0x%02hhX>", &b) == 1 ? (int16_t)b : -1;
        keys[i].s = t->vocab[i];
        keys[i].id = i;
    }
    qsort(keys, (size_t)n, sizeof *keys, cmp_key);
    for (int i = 0; i < n; i++) t->sorted[i] = keys[i].id;
    free(keys);
    for (int b = 0; b < 256; b++) {
        t->byte_pieces[2 * b] = (char)b;
        t->byte_pieces[2 * b + 1] = 0;
    }
    t->space_id = tsr_tokenizer_lookup(t, " ");
    return tsr_ok();
}

tsr_status tsr_tokenizer_load(tsr_tokenizer *t, const char *path, int vocab_size) {
    memset(t, 0, sizeof *t);
    tsr_status chk = tsr_input_check(path);
    if (chk.code) return chk;
    FILE *f = fopen(path, "rb");
    if (!f) return tsr_errorf(TSR_ERR_IO, "%s: cannot open tokenizer: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return tsr_errorf(TSR_ERR_IO, "%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) {
        fclose(f);
        return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, len);
    }
    size_t got = fread(buf, 1, len, f);
    fclose(f);
    if (got != len) {
        free(buf);
        return tsr_errorf(TSR_ERR_IO, "%s: read %zu of %zu bytes", path, got, len);
    }
    tsr_status s = tsr_tokenizer_parse(t, buf, len, vocab_size, path);
    free(buf);
    return s;
}

int tsr_tokenizer_lookup(const tsr_tokenizer *t, const char *piece) {
    /* lower bound over (piece, id): the lowest id among equal pieces */
    int lo = 0, hi = t->vocab_size;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(t->vocab[t->sorted[mid]], piece) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < t->vocab_size && strcmp(t->vocab[t->sorted[lo]], piece) == 0) return t->sorted[lo];
    return -1;
}

size_t tsr_tokenizer_max_tokens(const char *text) { return strlen(text) + 3; }

/* id of the merged piece a+b, or -1 */
static int pair_lookup(const tsr_tokenizer *t, char *buf, int a, int b) {
    size_t la = strlen(t->vocab[a]), lb = strlen(t->vocab[b]);
    memcpy(buf, t->vocab[a], la);
    memcpy(buf + la, t->vocab[b], lb + 1);
    return tsr_tokenizer_lookup(t, buf);
}

int tsr_tokenizer_encode(const tsr_tokenizer *t, const char *text, bool bos, bool eos,
                         int *tokens) {
    size_t cap = 2 * (size_t)t->longest + 8;
    size_t tlen = strlen(text);
    char *buf = malloc(cap);
    int *pair = malloc(sizeof(int) * (tlen + 3));
    if (!buf || !pair) {
        free(buf);
        free(pair);
        return -1;
    }
    int n = 0;
    if (bos) tokens[n++] = TSR_TOK_BOS;
    if (text[0] != 0 && t->space_id >= 0) tokens[n++] = t->space_id;

    /* one token per UTF-8 code point present in the vocabulary, else its bytes */
    size_t sl = 0;
    for (const char *c = text; *c; c++) {
        if (((unsigned char)*c & 0xC0) != 0x80) sl = 0;
        buf[sl++] = *c;
        buf[sl] = 0;
        if (((unsigned char)c[1] & 0xC0) == 0x80 && sl < 4) continue;
        int id = tsr_tokenizer_lookup(t, buf);
        if (id >= 0) {
            tokens[n++] = id;
        } else {
            for (size_t i = 0; i < sl; i++) {
                int b = (unsigned char)buf[i] + TSR_TOK_BYTE0;
                tokens[n++] = b < t->vocab_size ? b : TSR_TOK_UNK;
            }
        }
        sl = 0;
    }

    /* merge the best-scoring adjacent pair until none is a piece; the pair
     * ids are cached and only the merged neighbourhood is looked up again */
    for (int i = 0; i + 1 < n; i++) pair[i] = pair_lookup(t, buf, tokens[i], tokens[i + 1]);
    for (;;) {
        float best = -1e10f;
        int best_i = -1;
        for (int i = 0; i + 1 < n; i++) {
            if (pair[i] >= 0 && t->scores[pair[i]] > best) {
                best = t->scores[pair[i]];
                best_i = i;
            }
        }
        if (best_i < 0) break;
        tokens[best_i] = pair[best_i];
        for (int i = best_i + 1; i + 1 < n; i++) tokens[i] = tokens[i + 1];
        for (int i = best_i + 1; i + 2 < n; i++) pair[i] = pair[i + 1];
        n--;
        if (best_i > 0) pair[best_i - 1] = pair_lookup(t, buf, tokens[best_i - 1], tokens[best_i]);
        if (best_i + 1 < n) pair[best_i] = pair_lookup(t, buf, tokens[best_i], tokens[best_i + 1]);
    }
    if (eos) tokens[n++] = TSR_TOK_EOS;
    free(buf);
    free(pair);
    return n;
}

const char *tsr_tokenizer_decode(const tsr_tokenizer *t, int prev, int token) {
    if (token < 0 || token >= t->vocab_size) return "";
    const char *piece = t->vocab[token];
    if (prev == TSR_TOK_BOS && piece[0] == ' ') {
        piece++;
        unsigned char b;
        if (sscanf(piece, "<0x%02hhX>", &b) == 1) piece = t->byte_pieces + 2 * b;
        return piece;
    }
    if (t->byte_of[token] >= 0) return t->byte_pieces + 2 * t->byte_of[token];
    return piece;
}

bool tsr_tokenizer_printable(const char *piece) {
    if (!piece || !piece[0]) return false;
    if (piece[1] == 0) {
        unsigned char c = (unsigned char)piece[0];
        if (!(isprint(c) || isspace(c))) return false;
    }
    return true;
}
