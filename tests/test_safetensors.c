/* Tests for src/io/safetensors.c and src/io/checkpoint.c: files written by
 * Python (tools/st_check.py write-fixtures) read exactly, including BF16,
 * F16, 64-bit integers, metadata, misaligned foreign layouts; writer round
 * trips; every kind of malformed file rejected with a one-line message
 * naming the file (and every truncation of a valid file); atomic writes;
 * parameter checkpoints with name/shape/dtype checks.
 * Tolerances: none; every comparison is exact (bits), except BF16 saves,
 * which must equal round-to-nearest-even of the f32 weights exactly.
 * `test_safetensors OUT.safetensors` also writes the interop file that
 * `tools/st_check.py check OUT.safetensors` verifies from Python. */
#include "testutil.h"
#include "tessera/safetensors.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[64];

static bool exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void path_in(char *dst, size_t n, const char *name) { snprintf(dst, n, "%s/%s", g_dir, name); }

static void write_file(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    TSR_ASSERT(f);
    TSR_ASSERT(fwrite(b, 1, n, f) == n);
    fclose(f);
}

static bool bits_eq(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }

/* ------------------------------------------------------- Python fixtures */

static void test_python_fixtures(void) {
    tsr_st_file f;
    tsr_status st = tsr_st_read("tests/refs/st_basic.safetensors", &f);
    TU_CHECK(st.code == TSR_OK, "read st_basic: %s", st.msg);
    if (st.code) return;
    TU_CHECK(f.n == 12, "st_basic has %d tensors", f.n);
    TU_CHECK(tsr_st_meta(&f, "format") && strcmp(tsr_st_meta(&f, "format"), "pt") == 0, "meta format");
    TU_CHECK(tsr_st_meta(&f, "note") && strcmp(tsr_st_meta(&f, "note"), "h\xc3\xa9llo \xe2\x9c\x93 \"quoted\"\n") == 0,
             "meta note (utf-8, escapes)");
    TU_CHECK(tsr_st_meta(&f, "absent") == NULL, "absent meta key");
    TU_CHECK(tsr_st_find(&f, "nope") == NULL, "absent tensor");

    const tsr_st_tensor *t = tsr_st_find(&f, "weight");
    float w[6], want[6];
    for (int i = 0; i < 6; i++) want[i] = 0.5f * (float)i - 1.25f;
    TU_CHECK(t && t->dtype == TSR_ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
                 t->nbytes == 24, "weight header");
    if (t) {
        TU_CHECK(((uintptr_t)t->data & 3) == 0, "F32 data aligned");
        tsr_st_to_f32(t, w);
        TU_CHECK(bits_eq(w, want, sizeof w), "weight values");
    }
    t = tsr_st_find(&f, "emb");
    const float ev[4] = {1.0f, -2.5f, 3.14159f, 1e-3f};
    TU_CHECK(t && t->dtype == TSR_ST_BF16 && t->ndim == 1 && t->shape[0] == 4, "emb header");
    if (t) {
        uint16_t h[4];
        memcpy(h, t->data, 8);
        TU_CHECK(h[0] == 0x3f80 && h[1] == 0xc020, "bf16 bits of 1.0 and -2.5: %04x %04x", h[0], h[1]);
        int ok = 0;
        for (int i = 0; i < 4; i++) ok += h[i] == tsr_f32_to_bf16(ev[i]);
        TU_CHECK(ok == 4, "torch's bf16 rounding equals tsr_f32_to_bf16 (%d/4)", ok);
        float g[4];
        tsr_st_to_f32(t, g);
        ok = 0;
        for (int i = 0; i < 4; i++) ok += g[i] == tsr_bf16_to_f32(tsr_f32_to_bf16(ev[i]));
        TU_CHECK(ok == 4, "bf16 to f32 (%d/4)", ok);
    }
    t = tsr_st_find(&f, "half");
    TU_CHECK(t && t->dtype == TSR_ST_F16, "half");
    if (t) {
        float g[3];
        tsr_st_to_f32(t, g);
        TU_CHECK(g[0] == 0.5f && g[1] == -65504.0f && g[2] == 0x1p-24f, "f16 values %g %g %g", g[0], g[1], g[2]);
    }
    t = tsr_st_find(&f, "dbl");
    TU_CHECK(t && t->dtype == TSR_ST_F64, "dbl");
    if (t) {
        float g[2];
        tsr_st_to_f32(t, g);
        TU_CHECK(g[0] == (float)(1.0 / 3.0) && g[1] == 2.5f, "f64 values");
    }
    t = tsr_st_find(&f, "ids");
    TU_CHECK(t && t->dtype == TSR_ST_I64 && t->nbytes == 24, "ids");
    if (t) {
        int64_t v[3];
        memcpy(v, t->data, sizeof v);
        TU_CHECK(v[0] == ((int64_t)1 << 62) + 1 && v[1] == -5 && v[2] == 0, "i64 exact");
    }
    t = tsr_st_find(&f, "i32");
    TU_CHECK(t && t->dtype == TSR_ST_I32 && t->ndim == 2, "i32");
    if (t) {
        int32_t v[4];
        memcpy(v, t->data, sizeof v);
        TU_CHECK(v[0] == 1 && v[1] == -2 && v[2] == INT32_MAX && v[3] == INT32_MIN, "i32 exact");
    }
    t = tsr_st_find(&f, "i16");
    TU_CHECK(t && t->dtype == TSR_ST_I16, "i16");
    if (t) {
        float g[2];
        tsr_st_to_f32(t, g);
        TU_CHECK(g[0] == -32768.0f && g[1] == 7.0f, "i16 values");
    }
    t = tsr_st_find(&f, "i8");
    TU_CHECK(t && t->dtype == TSR_ST_I8, "i8");
    if (t) {
        float g[2];
        tsr_st_to_f32(t, g);
        TU_CHECK(g[0] == -128.0f && g[1] == 127.0f, "i8 values");
    }
    t = tsr_st_find(&f, "mask");
    TU_CHECK(t && t->dtype == TSR_ST_U8 && t->nbytes == 5, "mask");
    if (t)
        TU_CHECK(bits_eq(t->data, "\x00\x01\x02\xfe\xff", 5), "u8 exact");
    t = tsr_st_find(&f, "flag");
    TU_CHECK(t && t->dtype == TSR_ST_BOOL, "flag");
    if (t) {
        float g[2];
        tsr_st_to_f32(t, g);
        TU_CHECK(g[0] == 1.0f && g[1] == 0.0f, "bool values");
    }
    t = tsr_st_find(&f, "scalar");
    TU_CHECK(t && t->ndim == 0 && t->nbytes == 4, "scalar header");
    if (t) {
        float g;
        tsr_st_to_f32(t, &g);
        TU_CHECK(g == 42.0f, "scalar value");
    }
    t = tsr_st_find(&f, "empty");
    TU_CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 3 && t->nbytes == 0, "empty tensor");
    tsr_st_free(&f);

    st = tsr_st_read("tests/refs/st_odd.safetensors", &f);
    TU_CHECK(st.code == TSR_OK, "read st_odd: %s", st.msg);
    if (st.code) return;
    TU_CHECK(f.n == 2 && f.n_meta == 0, "st_odd counts");
    t = tsr_st_find(&f, "na\xc3\xafve");
    TU_CHECK(t && t->dtype == TSR_ST_F32, "utf-8 tensor name");
    if (t) {
        float g[2];
        tsr_st_to_f32(t, g); /* data sits at an odd address here */
        TU_CHECK(g[0] == -1.5f && g[1] == 8.25f, "misaligned f32 values");
    }
    tsr_st_free(&f);
}

/* ------------------------------------------------------ writer round trip */

static void fill_interop(tsr_st_writer *w) {
    float f32[12];
    for (int i = 0; i < 12; i++) f32[i] = 0.25f * (float)i - 1.0f;
    const float bv[5] = {1.0f, -2.5f, 3.14159f, 1e-3f, 65504.0f};
    uint16_t bf[5];
    for (int i = 0; i < 5; i++) bf[i] = tsr_f32_to_bf16(bv[i]);
    const int64_t i64[2] = {((int64_t)1 << 62) + 3, -7};
    const int32_t i32[3] = {5, -6, INT32_MAX};
    const uint8_t u8[4] = {0, 1, 128, 255};
    const float sc = -0.75f;
    /* u8 first: the writer must still lay larger dtypes out first */
    tsr_st_add(w, "u8", TSR_ST_U8, 1, TSR_SHAPE(4), u8);
    tsr_st_add(w, "f32", TSR_ST_F32, 2, TSR_SHAPE(3, 4), f32);
    tsr_st_add(w, "bf16", TSR_ST_BF16, 1, TSR_SHAPE(5), bf);
    tsr_st_add(w, "i64", TSR_ST_I64, 1, TSR_SHAPE(2), i64);
    tsr_st_add(w, "i32", TSR_ST_I32, 2, TSR_SHAPE(1, 3), i32);
    tsr_st_add(w, "scalar", TSR_ST_F32, 0, NULL, &sc);
    tsr_st_set_meta(w, "author", "nobody");
    tsr_st_set_meta(w, "author", "tessera"); /* replaces */
    tsr_st_set_meta(w, "unicode", "h\xc3\xa9llo \xe2\x9c\x93");
    tsr_st_set_meta(w, "quote", "a\"b\\c\n");
}

static void test_roundtrip(void) {
    char p[128];
    path_in(p, sizeof p, "rt.safetensors");
    tsr_st_writer *w = tsr_st_writer_new();
    fill_interop(w);
    const int64_t empty_shape[2] = {0, 5};
    tsr_st_add(w, "empty", TSR_ST_F32, 2, empty_shape, NULL);
    tsr_status st = tsr_st_write(w, p);
    tsr_st_writer_free(w);
    TU_CHECK(st.code == TSR_OK, "write: %s", st.msg);
    char tmp[140];
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    TU_CHECK(!exists(tmp), "no tmp file left after a write");
    tsr_st_file f;
    st = tsr_st_read(p, &f);
    TU_CHECK(st.code == TSR_OK, "read back: %s", st.msg);
    if (st.code) return;
    TU_CHECK(f.n == 7 && f.n_meta == 3, "counts %d %d", f.n, f.n_meta);
    TU_CHECK(((8 + *(uint64_t *)f.buf) % 8) == 0, "header padded to 8 bytes");
    for (int i = 0; i < f.n; i++)
        TU_CHECK(((uintptr_t)f.t[i].data % tsr_st_dtype_size(f.t[i].dtype)) == 0, "tensor %s aligned",
                 f.t[i].name);
    const tsr_st_tensor *t = tsr_st_find(&f, "f32");
    float g[12];
    TU_CHECK(t && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 4, "f32 shape");
    if (t) {
        tsr_st_to_f32(t, g);
        int ok = 0;
        for (int i = 0; i < 12; i++) ok += g[i] == 0.25f * (float)i - 1.0f;
        TU_CHECK(ok == 12, "f32 values");
    }
    t = tsr_st_find(&f, "i64");
    TU_CHECK(t && t->dtype == TSR_ST_I64, "i64");
    if (t) {
        int64_t v[2];
        memcpy(v, t->data, 16);
        TU_CHECK(v[0] == ((int64_t)1 << 62) + 3 && v[1] == -7, "i64 exact");
    }
    t = tsr_st_find(&f, "bf16");
    TU_CHECK(t && t->dtype == TSR_ST_BF16, "bf16");
    if (t) {
        uint16_t h[5];
        memcpy(h, t->data, 10);
        TU_CHECK(h[0] == 0x3f80 && h[4] == tsr_f32_to_bf16(65504.0f), "bf16 bits");
    }
    t = tsr_st_find(&f, "empty");
    TU_CHECK(t && t->nbytes == 0 && t->shape[1] == 5, "empty tensor round trip");
    TU_CHECK(strcmp(tsr_st_meta(&f, "author"), "tessera") == 0, "meta replaced");
    TU_CHECK(strcmp(tsr_st_meta(&f, "quote"), "a\"b\\c\n") == 0, "meta escapes");
    TU_CHECK(strcmp(tsr_st_meta(&f, "unicode"), "h\xc3\xa9llo \xe2\x9c\x93") == 0, "meta utf-8");
    /* every strict prefix of a valid file is rejected, none crashes */
    int rejected = 0;
    for (size_t n = 0; n < f.len; n++) {
        tsr_st_file g2;
        tsr_status s2 = tsr_st_parse(f.buf, n, "prefix", &g2);
        if (s2.code != TSR_OK && strstr(s2.msg, "prefix")) rejected++;
        else if (s2.code == TSR_OK) tsr_st_free(&g2);
    }
    TU_CHECK(rejected == (int)f.len, "truncations rejected: %d of %zu", rejected, f.len);
    tsr_st_free(&f);
    unlink(p);
}

/* ------------------------------------------------------- malformed files */

typedef struct {
    const char *label;
    const char *header;  /* JSON text */
    int data_len;        /* zero bytes after the header */
    uint64_t hlen;       /* 0: strlen(header) */
    int file_len;        /* >0: cut the file to this length */
} bad_case;

static const bad_case bad_cases[] = {
    {"short", "{}", 0, 0, 5},
    {"hlen_past_eof", "{}", 0, 1000, 0},
    {"hlen_absurd", "{}", 0, UINT64_MAX, 0},
    {"hlen_zero", "{}", 0, (uint64_t)-2, 0}, /* patched to 0 below */
    {"not_json", "{\"a\": {\"dtype\": \"F32\",", 4, 0, 0},
    {"root_array", "[1, 2]", 0, 0, 0},
    {"trailing_bytes", "{} x", 0, 0, 0},
    {"nul_padding", "{}\0\0\0\0", 0, 6, 0},
    {"entry_not_object", "{\"a\": 5}", 0, 0, 0},
    {"missing_dtype", "{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, 0, 0},
    {"unknown_dtype", "{\"a\": {\"dtype\": \"F8_E4M3\", \"shape\": [1], \"data_offsets\": [0, 1]}}", 1, 0, 0},
    {"shape_not_array", "{\"a\": {\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 4]}}", 4, 0, 0},
    {"shape_mismatch", "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 4, 0, 0},
    {"negative_dim", "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4, 0, 0},
    {"fractional_dim", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 4, 0, 0},
    {"string_dim", "{\"a\": {\"dtype\": \"F32\", \"shape\": [\"1\"], \"data_offsets\": [0, 4]}}", 4, 0, 0},
    {"overflow_dims",
     "{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4294967296], \"data_offsets\": [0, 4]}}", 4,
     0, 0},
    {"overflow_bytes", "{\"a\": {\"dtype\": \"F64\", \"shape\": [4503599627370496, 1024], \"data_offsets\": [0, 8]}}",
     8, 0, 0},
    {"too_many_dims",
     "{\"a\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 1]}}", 1, 0, 0},
    {"offsets_one", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4, 0, 0},
    {"offsets_reversed", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", 4, 0, 0},
    {"offsets_out_of_range", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 2, 0, 0},
    {"offsets_huge", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 1e300]}}", 4, 0, 0},
    {"overlap",
     "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
     " \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [2, 6]}}", 6, 0, 0},
    {"gap",
     "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
     " \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}", 12, 0, 0},
    {"data_tail", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 8, 0, 0},
    {"duplicate_names",
     "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
     " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8, 0, 0},
    {"meta_not_object", "{\"__metadata__\": [1]}", 0, 0, 0},
    {"meta_not_string", "{\"__metadata__\": {\"k\": 1}}", 0, 0, 0},
    {"meta_duplicate", "{\"__metadata__\": {}, \"__metadata__\": {}}", 0, 0, 0},
};
#define N_BAD ((int)(sizeof bad_cases / sizeof *bad_cases))

/* the file image of a bad case; returns its length */
static size_t bad_image(const bad_case *c, unsigned char *img, size_t cap) {
    size_t hl = strlen(c->header);
    if (strcmp(c->label, "nul_padding") == 0) hl = 6;
    uint64_t hv = c->hlen == (uint64_t)-2 ? 0 : c->hlen ? c->hlen : hl;
    size_t n = 8 + hl + (size_t)c->data_len;
    TSR_ASSERT(n <= cap);
    for (int i = 0; i < 8; i++) img[i] = (unsigned char)(hv >> (8 * i));
    memcpy(img + 8, c->header, hl);
    memset(img + 8 + hl, 0, (size_t)c->data_len);
    if (c->file_len > 0) n = (size_t)c->file_len;
    return n;
}

static void test_malformed(void) {
    unsigned char img[1024];
    for (int i = 0; i < N_BAD; i++) {
        const bad_case *c = &bad_cases[i];
        size_t n = bad_image(c, img, sizeof img);
        char p[128];
        snprintf(p, sizeof p, "%s/bad_%s.safetensors", g_dir, c->label);
        write_file(p, img, n);
        tsr_st_file f;
        tsr_status st = tsr_st_read(p, &f);
        TU_CHECK(st.code != TSR_OK, "%s: accepted", c->label);
        TU_CHECK(strstr(st.msg, p) != NULL && strchr(st.msg, '\n') == NULL,
                 "%s: message must name the file on one line: %s", c->label, st.msg);
        TU_CHECK(f.t == NULL && f.block == NULL, "%s: nothing left allocated", c->label);
        if (getenv("TSR_VERBOSE")) fprintf(stderr, "%-22s %s\n", c->label, st.msg);
        tsr_status s2 = tsr_st_parse(img, n, c->label, &f);
        TU_CHECK(s2.code == st.code, "%s: parse and read agree", c->label);
        unlink(p);
    }
    tsr_st_file f;
    char p[128];
    path_in(p, sizeof p, "does_not_exist.safetensors");
    tsr_status st = tsr_st_read(p, &f);
    TU_CHECK(st.code == TSR_ERR_IO && strstr(st.msg, p), "missing file: %s", st.msg);
    st = tsr_st_read(g_dir, &f);
    TU_CHECK(st.code == TSR_ERR_IO && strstr(st.msg, g_dir), "directory: %s", st.msg);
    /* a name with control characters still yields a one-line message */
    const char *hdr = "{\"a\\nb\": {\"dtype\": \"X\", \"shape\": [], \"data_offsets\": [0, 0]}}";
    size_t hl = strlen(hdr);
    for (int i = 0; i < 8; i++) img[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(img + 8, hdr, hl);
    st = tsr_st_parse(img, 8 + hl, "ctl", &f);
    TU_CHECK(st.code != TSR_OK && !strchr(st.msg, '\n'), "control chars in names: %s", st.msg);
}

/* metadata values read as numbers: whole, in range, finite */
static void test_meta_numbers(void) {
    const char *hdr = "{\"__metadata__\": {\"n\": \"42\", \"neg\": \"-3\", \"empty\": \"\", \"tail\": \"12x\", "
                      "\"space\": \" 7\", \"huge\": \"99999999999999999999\", \"big\": \"3000000000\", "
                      "\"f\": \"1e-3\", \"nan\": \"nan\", \"inf\": \"-inf\", \"ftail\": \"0.5 \"}}";
    unsigned char img[512];
    size_t hl = strlen(hdr);
    TSR_ASSERT(8 + hl <= sizeof img);
    for (int i = 0; i < 8; i++) img[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(img + 8, hdr, hl);
    tsr_st_file f;
    tsr_status st = tsr_st_parse(img, 8 + hl, "meta", &f);
    TU_CHECK(st.code == TSR_OK, "metadata-only file: %s", st.msg);
    if (st.code) return;
    int v = -7;
    TU_CHECK(tsr_st_meta_int(&f, "n", 0, 100, &v) && v == 42, "int 42 read (%d)", v);
    TU_CHECK(tsr_st_meta_int(&f, "n", 0, 42, &v) && !tsr_st_meta_int(&f, "n", 0, 41, &v), "upper bound inclusive");
    TU_CHECK(tsr_st_meta_int(&f, "neg", -3, 0, &v) && v == -3, "negative in range");
    v = -7;
    TU_CHECK(!tsr_st_meta_int(&f, "neg", 0, 100, &v) && v == -7, "below range refused, out untouched");
    const char *bad[] = {"absent", "empty", "tail", "space", "huge", "big", "f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        TU_CHECK(!tsr_st_meta_int(&f, bad[i], -(1L << 40), 1L << 40, &v) && v == -7, "int '%s' refused", bad[i]);
    float x = 0;
    TU_CHECK(tsr_st_meta_float(&f, "f", &x) && x == 1e-3f, "float 1e-3 read");
    TU_CHECK(tsr_st_meta_float(&f, "n", &x) && x == 42.0f, "an integer is a float");
    const char *badf[] = {"absent", "empty", "nan", "inf", "ftail"};
    for (size_t i = 0; i < sizeof badf / sizeof badf[0]; i++)
        TU_CHECK(!tsr_st_meta_float(&f, badf[i], &x) && x == 42.0f, "float '%s' refused", badf[i]);
    tsr_st_free(&f);
}

/* ---------------------------------------------------------- atomic writes */

static void test_atomic(void) {
    char file[128], p[192], tmp[200];
    tsr_status st;
    float v = 1.0f;
    /* parent is a regular file: fopen of the tmp fails */
    path_in(file, sizeof file, "plainfile");
    write_file(file, "x", 1);
    snprintf(p, sizeof p, "%s/sub.safetensors", file);
    tsr_st_writer *w = tsr_st_writer_new();
    tsr_st_add(w, "v", TSR_ST_F32, 1, TSR_SHAPE(1), &v);
    st = tsr_st_write(w, p);
    TU_CHECK(st.code == TSR_ERR_IO && strstr(st.msg, p), "unwritable path fails: %s", st.msg);
    TU_CHECK(!exists(p), "no file after failed write");
    /* an existing good file survives a failed write (tmp name taken by a dir) */
    path_in(p, sizeof p, "keep.safetensors");
    TU_CHECK(tsr_st_write(w, p).code == TSR_OK, "first write");
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    mkdir(tmp, 0700);
    v = 2.0f;
    tsr_st_writer *w2 = tsr_st_writer_new();
    tsr_st_add(w2, "v", TSR_ST_F32, 1, TSR_SHAPE(1), &v);
    st = tsr_st_write(w2, p);
    TU_CHECK(st.code == TSR_ERR_IO, "write with blocked tmp fails");
    rmdir(tmp);
    tsr_st_file f;
    st = tsr_st_read(p, &f);
    TU_CHECK(st.code == TSR_OK, "old file still readable: %s", st.msg);
    if (!st.code) {
        float g;
        tsr_st_to_f32(&f.t[0], &g);
        TU_CHECK(g == 1.0f, "old contents intact");
        tsr_st_free(&f);
    }
    unlink(p);
    /* rename fails (target is a non-empty directory): tmp is removed */
    path_in(p, sizeof p, "dir.safetensors");
    mkdir(p, 0700);
    snprintf(tmp, sizeof tmp, "%s/inner", p);
    write_file(tmp, "x", 1);
    st = tsr_st_write(w2, p);
    TU_CHECK(st.code == TSR_ERR_IO && strstr(st.msg, p), "rename over a directory fails: %s", st.msg);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    TU_CHECK(!exists(tmp), "tmp removed after failed rename");
    snprintf(tmp, sizeof tmp, "%s/inner", p);
    unlink(tmp);
    rmdir(p);
    /* misuse of the writer is reported by write and touches no file */
    tsr_st_add(w2, "v", TSR_ST_F32, 1, TSR_SHAPE(1), &v);
    path_in(p, sizeof p, "dup.safetensors");
    st = tsr_st_write(w2, p);
    TU_CHECK(st.code == TSR_ERR_ARG && strstr(st.msg, "duplicate"), "duplicate add: %s", st.msg);
    TU_CHECK(!exists(p), "no file after a refused write");
    tsr_st_writer_free(w);
    tsr_st_writer_free(w2);
    unlink(file);
}

/* ---------------------------------------------------- parameter checkpoints */

static void make_model(tsr_params *p, uint64_t seed) {
    tsr_params_init(p);
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    tsr_init_normal(tsr_param_new(p, "enc.weight", 0, 2, TSR_SHAPE(5, 3)), &r, 1.0f);
    tsr_init_normal(tsr_param_new(p, "enc.bias", TSR_PARAM_NO_DECAY, 1, TSR_SHAPE(5)), &r, 1.0f);
    tsr_init_normal(tsr_param_new(p, "bn.running_mean", TSR_PARAM_BUFFER, 1, TSR_SHAPE(5)), &r, 1.0f);
}

static void test_params_ckpt(void) {
    char p[128], q[128];
    path_in(p, sizeof p, "model.safetensors");
    path_in(q, sizeof q, "model_bf16.safetensors");
    tsr_params a, b;
    make_model(&a, 1);
    make_model(&b, 2);
    const char *meta[] = {"config", "{\"dim\": 5}", "tokenizer", "none", NULL};
    TU_CHECK(tsr_params_save(&a, p, TSR_ST_F32, meta).code == TSR_OK, "save f32");
    TU_CHECK(tsr_params_save(&a, q, TSR_ST_BF16, NULL).code == TSR_OK, "save bf16");
    TU_CHECK(tsr_params_save(&a, q, TSR_ST_I32, NULL).code == TSR_ERR_ARG, "save as i32 refused");
    tsr_status st = tsr_params_load(&b, p, false);
    TU_CHECK(st.code == TSR_OK, "load f32: %s", st.msg);
    int same = 0;
    for (int i = 0; i < a.n; i++) same += bits_eq(a.items[i]->data, b.items[i]->data, 4 * (size_t)a.items[i]->numel);
    TU_CHECK(same == a.n, "f32 checkpoint is exact (buffers included)");
    tsr_st_file f;
    if (!tsr_st_read(p, &f).code) {
        TU_CHECK(tsr_st_meta(&f, "config") && !strcmp(tsr_st_meta(&f, "config"), "{\"dim\": 5}"), "params meta");
        tsr_st_free(&f);
    }
    st = tsr_params_load(&b, q, false);
    TU_CHECK(st.code == TSR_OK, "load bf16: %s", st.msg);
    int ok = 0, tot = 0;
    for (int i = 0; i < a.n; i++)
        for (int64_t k = 0; k < a.items[i]->numel; k++, tot++)
            ok += tsr_f32(b.items[i])[k] == tsr_bf16_to_f32(tsr_f32_to_bf16(tsr_f32(a.items[i])[k]));
    TU_CHECK(ok == tot, "bf16 checkpoint = rounded weights (%d/%d)", ok, tot);

    /* a model with a different shape, an extra parameter, a missing one */
    tsr_params c;
    tsr_params_init(&c);
    tsr_param_new(&c, "enc.weight", 0, 2, TSR_SHAPE(3, 5));
    tsr_param_new(&c, "enc.bias", 0, 1, TSR_SHAPE(5));
    tsr_param_new(&c, "bn.running_mean", 0, 1, TSR_SHAPE(5));
    st = tsr_params_load(&c, p, false);
    TU_CHECK(st.code == TSR_ERR_SHAPE && strstr(st.msg, p) && strstr(st.msg, "enc.weight") &&
                 strstr(st.msg, "(5,3)") && strstr(st.msg, "(3,5)"), "shape mismatch: %s", st.msg);
    TU_CHECK(tsr_f32(c.items[1])[0] == 0.0f, "failed load leaves the model untouched");
    tsr_params_free(&c);
    tsr_params_init(&c);
    tsr_param_new(&c, "enc.weight", 0, 2, TSR_SHAPE(5, 3));
    tsr_param_new(&c, "head.weight", 0, 1, TSR_SHAPE(2));
    st = tsr_params_load(&c, p, true);
    TU_CHECK(st.code != TSR_OK && strstr(st.msg, "head.weight") && strstr(st.msg, "missing"), "missing: %s", st.msg);
    tsr_params_free(&c);
    tsr_params_init(&c);
    tsr_param_new(&c, "enc.weight", 0, 2, TSR_SHAPE(5, 3));
    st = tsr_params_load(&c, p, false);
    TU_CHECK(st.code != TSR_OK && strstr(st.msg, "unexpected") && strstr(st.msg, p), "extra: %s", st.msg);
    st = tsr_params_load(&c, p, true);
    TU_CHECK(st.code == TSR_OK && bits_eq(c.items[0]->data, a.items[0]->data, 60), "allow_extra: %s", st.msg);
    tsr_params_free(&c);
    /* a diverged checkpoint: refused by the loader, the model untouched */
    tsr_f32(a.items[1])[2] = NAN;
    TU_CHECK(tsr_params_save(&a, q, TSR_ST_BF16, NULL).code == TSR_OK, "save a NaN model");
    make_model(&c, 3);
    float before = tsr_f32(c.items[0])[0];
    st = tsr_params_load(&c, q, false);
    TU_CHECK(st.code == TSR_ERR_NUMERIC && strstr(st.msg, q) && strstr(st.msg, "enc.bias") &&
                 strstr(st.msg, "non-finite"), "NaN weights refused: %s", st.msg);
    TU_CHECK(tsr_f32(c.items[0])[0] == before, "a refused NaN load leaves the model untouched");
    tsr_params_free(&c);
    /* an integer tensor where a weight is expected */
    tsr_params_init(&c);
    tsr_param_new(&c, "i32", 0, 2, TSR_SHAPE(2, 2));
    st = tsr_params_load(&c, "tests/refs/st_basic.safetensors", true);
    TU_CHECK(st.code == TSR_ERR_FORMAT && strstr(st.msg, "I32"), "integer dtype: %s", st.msg);
    tsr_params_free(&c);
    tsr_params_free(&a);
    tsr_params_free(&b);
    unlink(p);
    unlink(q);
}

int main(int argc, char **argv) {
    tsr_threads_set(0);
    snprintf(g_dir, sizeof g_dir, "/tmp/tsr_st_XXXXXX");
    TSR_ASSERT(mkdtemp(g_dir));
    test_python_fixtures();
    test_roundtrip();
    test_malformed();
    test_meta_numbers();
    test_atomic();
    test_params_ckpt();
    if (argc > 1) { /* interop file for tools/st_check.py */
        tsr_st_writer *w = tsr_st_writer_new();
        fill_interop(w);
        tsr_status st = tsr_st_write(w, argv[1]);
        TU_CHECK(st.code == TSR_OK, "interop write: %s", st.msg);
        tsr_st_writer_free(w);
    }
    rmdir(g_dir);
    return tu_finish("safetensors");
}
