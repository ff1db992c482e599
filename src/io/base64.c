/* tessera io: base64 decode and encode (RFC 4648 section 4) for binary
 * payloads inside JSON (images sent to and returned by `tessera serve`).
 * The decoder is strict about the alphabet and padding but tolerant of
 * whitespace, so the output of `base64` (wrapped at 76 columns) works. */
#include "tessera/base64.h"

#include <string.h>

static const char k_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

tsr_status tsr_base64_decode(const char *s, size_t n, const char *what, uint8_t **out, size_t *out_n) {
    *out = NULL;
    *out_n = 0;
    size_t i = 0;
    if (n >= 5 && memcmp(s, "data:", 5) == 0) {
        /* data:[<media type>][;base64],<data>: only the base64 form */
        const char *comma = memchr(s, ',', n);
        if (!comma || comma - s < 12 || memcmp(comma - 7, ";base64", 7) != 0)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: a data URL must be ';base64,' encoded", what);
        i = (size_t)(comma - s) + 1;
    }
    uint8_t *o = malloc(n / 4 * 3 + 3);
    if (!o) return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", what);
    size_t k = 0;
    uint32_t acc = 0;
    int q = 0;   /* sextets in acc */
    int pad = 0; /* '=' seen */
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_space(c)) continue;
        if (c == '=') {
            /* padding only completes a group of 2 or 3 sextets */
            if (q + pad < 2 || q + pad >= 4) break;
            pad++;
            continue;
        }
        int v = val(c);
        if (v < 0 || pad) break;
        acc = acc << 6 | (uint32_t)v;
        if (++q == 4) {
            o[k++] = (uint8_t)(acc >> 16);
            o[k++] = (uint8_t)(acc >> 8);
            o[k++] = (uint8_t)acc;
            acc = 0;
            q = 0;
        }
    }
    if (i < n) {
        free(o);
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: not base64: '%c' at offset %zu", what, c, i);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not base64: byte 0x%02x at offset %zu", what, c, i);
    }
    if (q == 1 || (pad && q + pad != 4)) {
        free(o);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not base64: the data ends inside a group", what);
    }
    if (q == 2) o[k++] = (uint8_t)(acc >> 4);
    if (q == 3) {
        o[k++] = (uint8_t)(acc >> 10);
        o[k++] = (uint8_t)(acc >> 2);
    }
    *out = o;
    *out_n = k;
    return tsr_ok();
}

char *tsr_base64_encode(const uint8_t *b, size_t n) {
    char *o = malloc((n + 2) / 3 * 4 + 1);
    if (!o) return NULL;
    size_t k = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];
        o[k++] = k_alpha[v >> 18];
        o[k++] = k_alpha[(v >> 12) & 63];
        o[k++] = k_alpha[(v >> 6) & 63];
        o[k++] = k_alpha[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)b[i] << 16;
        o[k++] = k_alpha[v >> 18];
        o[k++] = k_alpha[(v >> 12) & 63];
        o[k++] = '=';
        o[k++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8;
        o[k++] = k_alpha[v >> 18];
        o[k++] = k_alpha[(v >> 12) & 63];
        o[k++] = k_alpha[(v >> 6) & 63];
        o[k++] = '=';
    }
    o[k] = 0;
    return o;
}
