/* Tests for src/io/base64.c: RFC 4648's test vectors both ways, every
 * length 0..64 of random bytes round-tripped, whitespace and data URL
 * headers accepted, and malformed input (bad characters, misplaced or
 * partial padding, a dangling character, a data URL that is not base64)
 * refused with a message naming the input. */
#include "testutil.h"
#include "tessera/base64.h"

#include <string.h>

static void dec_ok(const char *in, const char *want) {
    uint8_t *out = NULL;
    size_t n = 0;
    tsr_status st = tsr_base64_decode(in, strlen(in), "x", &out, &n);
    TU_CHECK(st.code == TSR_OK && n == strlen(want) && memcmp(out, want, n) == 0, "decode '%s': %s", in, st.msg);
    free(out);
}

static void dec_bad(const char *in, const char *why) {
    uint8_t *out = NULL;
    size_t n = 0;
    tsr_status st = tsr_base64_decode(in, strlen(in), "field", &out, &n);
    TU_CHECK(st.code == TSR_ERR_FORMAT && out == NULL && strncmp(st.msg, "field: ", 7) == 0 && !strchr(st.msg, '\n') &&
                 strstr(st.msg, why),
             "'%s' refused (%s): %s", in, why, st.msg);
}

int main(void) {
    static const char *const vec[][2] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                         {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                         {"foobar", "Zm9vYmFy"}};
    for (int i = 0; i < 7; i++) {
        char *e = tsr_base64_encode((const uint8_t *)vec[i][0], strlen(vec[i][0]));
        TU_CHECK(e && strcmp(e, vec[i][1]) == 0, "encode '%s': '%s'", vec[i][0], e ? e : "(null)");
        free(e);
        dec_ok(vec[i][1], vec[i][0]);
    }
    /* padding optional, whitespace and line breaks ignored, data URLs */
    dec_ok("Zm9vYg", "foob");
    dec_ok("Zm9vYmE", "fooba");
    dec_ok(" Zm9v\r\nYmFy\n", "foobar");
    dec_ok("Zm9vYg=\n=", "foob");
    dec_ok("data:image/png;base64,Zm9vYmFy", "foobar");
    /* random bytes of every length up to 64 */
    uint64_t r = 0x9E3779B97F4A7C15ull;
    for (int len = 0; len <= 64; len++) {
        uint8_t b[64];
        for (int i = 0; i < len; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            b[i] = (uint8_t)(r >> 56);
        }
        char *e = tsr_base64_encode(b, (size_t)len);
        uint8_t *d = NULL;
        size_t n = 0;
        tsr_status st = tsr_base64_decode(e, strlen(e), "x", &d, &n);
        TU_CHECK(st.code == TSR_OK && n == (size_t)len && (len == 0 || memcmp(d, b, n) == 0), "round trip of %d bytes", len);
        TU_CHECK(strlen(e) == (size_t)(len + 2) / 3 * 4, "encoded length for %d", len);
        free(e), free(d);
    }
    char *e = tsr_base64_encode((const uint8_t *)"\xfb\xff\xbf", 3);
    TU_CHECK(e && strcmp(e, "+/+/") == 0, "'+' and '/': %s", e);
    free(e);
    dec_bad("Zm9v!mFy", "'!' at offset 4");
    dec_bad("Zm9v\x01", "byte 0x01 at offset 4");
    dec_bad("Zm9-", "'-'");                /* the URL-safe alphabet is not this one */
    dec_bad("Z", "ends inside a group");   /* 6 bits: no byte */
    dec_bad("Zm9vY", "ends inside a group");
    dec_bad("Zg=", "ends inside a group"); /* partial padding */
    dec_bad("Zg==Zg==", "'Z' at offset 4");
    dec_bad("=Zg=", "'=' at offset 0");
    dec_bad("Zm9v=", "'=' at offset 4");
    dec_bad("Zg===", "'=' at offset 4");
    dec_bad("data:image/png,Zm9v", "data URL");
    dec_bad("data:Zm9v", "data URL");
    return tu_finish("base64");
}
