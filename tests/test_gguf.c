/* tessera tests: GGUF (src/io/gguf.c, src/io/gguf_llama.c) — metadata and
 * tensor round trips, hostile headers (truncations, lying counts and
 * sizes, overlaps, duplicates), Llama models in and out (F32 and BF16 bit
 * identical, Q8_0 within the error our own Q8 has, F16 read), llama.cpp's
 * q/k row layout checked against our interleaved-RoPE forward, the gpt2
 * tokenizer round trip, and the f16 conversions. */
#define _GNU_SOURCE
#include "testutil.h"
#include "tessera/bpe.h"
#include "tessera/gguf.h"
#include "tessera/lm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_tmp[256];

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    TSR_ASSERT(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    TSR_ASSERT(b && fread(b, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* ------------------------------------------------------------ f16 */

static void test_f16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = tsr_f16_to_f32((uint16_t)h);
        if (isnan(f)) {
            bad += !isnan(tsr_f16_to_f32(tsr_f32_to_f16(f)));
            continue;
        }
        bad += tsr_f32_to_f16(f) != h;
    }
    TU_CHECK(bad == 0, "f16 -> f32 -> f16 changes %d values", bad);
    /* ties go to even; overflow to infinity; tiny values to subnormals */
    TU_CHECK(tsr_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00, "1 + 2^-11 rounds to 1 (even)");
    TU_CHECK(tsr_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02, "1 + 3*2^-11 rounds up to even");
    TU_CHECK(tsr_f32_to_f16(65520.0f) == 0x7c00 && tsr_f32_to_f16(65519.0f) == 0x7bff, "overflow edge");
    TU_CHECK(tsr_f32_to_f16(0x1p-25f) == 0 && tsr_f32_to_f16(0x1.8p-25f) == 1 && tsr_f32_to_f16(-0x1p-24f) == 0x8001,
             "subnormal rounding");
}

/* ------------------------------------------------------------ container */

static void write_small(const char *path) {
    tsr_gguf_writer *w = tsr_gguf_writer_new();
    tsr_gguf_set_str(w, "general.architecture", "test");
    tsr_gguf_set_u32(w, "a.u32", 123456u);
    tsr_gguf_set_f32(w, "a.f32", -2.5f);
    tsr_gguf_set_bool(w, "a.bool", true);
    const char *strs[] = {"x", "", "hello world"};
    tsr_gguf_set_arr_str(w, "a.strs", strs, NULL, 3);
    int32_t ints[4] = {1, -2, 3, -4};
    tsr_gguf_set_arr(w, "a.ints", TSR_GGUF_I32, ints, 4);
    float v[6] = {1, 2, 3, 4, 5, 6};
    int64_t ne2[2] = {3, 2}, ne1[1] = {5};
    tsr_gguf_add_tensor(w, "m", TSR_GGML_F32, 2, ne2, v);
    tsr_gguf_add_tensor(w, "v", TSR_GGML_F32, 1, ne1, v);
    TSR_ASSERT(tsr_gguf_write(w, path).code == TSR_OK);
    tsr_gguf_writer_free(w);
}

static void expect_bad(const void *buf, size_t len, const char *label) {
    tsr_gguf_file f;
    tsr_status s = tsr_gguf_parse(buf, len, "bad.gguf", &f);
    TU_CHECK(s.code != TSR_OK, "%s: accepted", label);
    if (s.code == TSR_OK) tsr_gguf_free(&f);
    else TU_CHECK(strstr(s.msg, "bad.gguf") && !strchr(s.msg, '\n'), "%s: message '%s'", label, s.msg);
}

/* little-endian patch */
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }

static void test_container(void) {
    char path[400];
    snprintf(path, sizeof path, "%s/small.gguf", g_tmp);
    write_small(path);
    size_t len;
    unsigned char *b = read_all(path, &len);
    tsr_gguf_file f;
    tsr_status s = tsr_gguf_read(path, &f);
    TU_CHECK(s.code == TSR_OK, "read: %s", s.msg);
    size_t end = len; /* the last tensor's end; only padding follows */
    if (s.code == TSR_OK) {
        int64_t i;
        double d;
        tsr_gguf_str str;
        TU_CHECK(f.version == 3 && f.n_kv == 6 && f.n_tensors == 2 && f.alignment == 32, "header");
        TU_CHECK(tsr_gguf_get_int(&f, "a.u32", &i) == 1 && i == 123456, "u32");
        TU_CHECK(tsr_gguf_get_float(&f, "a.f32", &d) == 1 && d == -2.5, "f32");
        TU_CHECK(tsr_gguf_get_int(&f, "a.bool", &i) == 1 && i == 1, "bool");
        TU_CHECK(tsr_gguf_get_str(&f, "general.architecture", &str) == 1 && str.len == 4 && !memcmp(str.s, "test", 4),
                 "string");
        TU_CHECK(tsr_gguf_get_int(&f, "general.architecture", &i) == -1 && tsr_gguf_get_int(&f, "nope", &i) == 0,
                 "typed lookups");
        const tsr_gguf_kv *kv = tsr_gguf_find(&f, "a.strs");
        TU_CHECK(kv && kv->n == 3 && kv->strs[1].len == 0 && kv->strs[2].len == 11 &&
                     !memcmp(kv->strs[2].s, "hello world", 11), "string array");
        kv = tsr_gguf_find(&f, "a.ints");
        TU_CHECK(kv && tsr_gguf_arr_int(kv, 3, &i) && i == -4 && !tsr_gguf_arr_int(kv, 4, &i), "int array");
        const tsr_gguf_tensor *t = tsr_gguf_find_tensor(&f, "m");
        float got[6];
        if (t) memcpy(got, t->data, sizeof got);
        TU_CHECK(t && t->ndim == 2 && t->ne[0] == 3 && t->ne[1] == 2 && t->nbytes == 24 && got[5] == 6.0f &&
                     ((const unsigned char *)t->data - f.buf) % 32 == 0, "tensor m");
        t = tsr_gguf_find_tensor(&f, "v");
        TU_CHECK(t && t->ne[0] == 5 && t->offset == 32, "tensor v aligned at 32");
        if (t) end = (size_t)((const unsigned char *)t->data - f.buf) + t->nbytes;
        tsr_gguf_free(&f);
    }
    /* every truncation before the last tensor's end is an error (the
     * trailing padding is not needed) */
    int ok_trunc = 0;
    for (size_t n = 0; n < len; n++) {
        tsr_gguf_file g;
        tsr_status e = tsr_gguf_parse(b, n, "bad.gguf", &g);
        if (e.code == TSR_OK) {
            ok_trunc += n < end;
            tsr_gguf_free(&g);
        } else if (n >= end || !strstr(e.msg, "bad.gguf") || strchr(e.msg, '\n')) {
            ok_trunc++;
        }
    }
    TU_CHECK(ok_trunc == 0 && end < len, "%d truncations misjudged", ok_trunc);
    /* every single byte of the header set to 0xff: no crash, one-line errors */
    size_t hdr = len - 64;
    for (size_t k = 0; k < hdr; k++) {
        unsigned char *c = malloc(len);
        memcpy(c, b, len);
        c[k] = 0xff;
        tsr_gguf_file g;
        tsr_status e = tsr_gguf_parse(c, len, "bad.gguf", &g);
        if (e.code == TSR_OK) tsr_gguf_free(&g);
        else if (!strstr(e.msg, "bad.gguf") || strchr(e.msg, '\n')) TU_CHECK(0, "byte %zu: message '%s'", k, e.msg);
        free(c);
    }
    /* lying header fields (offsets from the layout write_small produces) */
    unsigned char *c = malloc(len);
#define CASE(label, patch)                                                                                             \
    do {                                                                                                               \
        memcpy(c, b, len);                                                                                             \
        patch;                                                                                                         \
        expect_bad(c, len, label);                                                                                     \
    } while (0)
    CASE("bad magic", c[0] = 'X');
    CASE("version 1", put32(c + 4, 1));
    CASE("2^60 tensors", put64(c + 8, 1ull << 60));
    CASE("2^60 metadata entries", put64(c + 16, 1ull << 60));
    CASE("key length 2^62", put64(c + 24, 1ull << 62));
    /* first kv: key "general.architecture" (20), type at 52, string length at 56 */
    CASE("unknown value type", put32(c + 52, 13));
    CASE("string length past the end", put64(c + 56, len));
    CASE("value type array of arrays", (put32(c + 52, TSR_GGUF_ARR), put32(c + 56, TSR_GGUF_ARR)));
    CASE("array of 2^61 u64", (put32(c + 52, TSR_GGUF_ARR), put32(c + 56, TSR_GGUF_U64), put64(c + 60, 1ull << 61)));
    CASE("control character in a key", c[33] = '\n');
    free(c);
#undef CASE
    free(b);

    /* crafted files through the writer: duplicate names, bad alignment, overlaps, bad types */
    struct {
        const char *label;
        int kind;
    } cases[] = {{"duplicate key", 0}, {"duplicate tensor", 1}, {"alignment 3", 2}, {"alignment as string", 3}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        tsr_gguf_writer *w = tsr_gguf_writer_new();
        float v[8] = {0};
        int64_t ne[1] = {8};
        if (cases[k].kind == 0) tsr_gguf_set_u32(w, "x", 1), tsr_gguf_set_u32(w, "x", 2);
        if (cases[k].kind == 1) tsr_gguf_add_tensor(w, "t", TSR_GGML_F32, 1, ne, v);
        if (cases[k].kind == 2) tsr_gguf_set_u32(w, "general.alignment", 3);
        if (cases[k].kind == 3) tsr_gguf_set_str(w, "general.alignment", "32");
        tsr_gguf_add_tensor(w, "t", TSR_GGML_F32, 1, ne, v);
        snprintf(path, sizeof path, "%s/case%zu.gguf", g_tmp, k);
        TSR_ASSERT(tsr_gguf_write(w, path).code == TSR_OK);
        tsr_gguf_writer_free(w);
        size_t n;
        unsigned char *d = read_all(path, &n);
        expect_bad(d, n, cases[k].label);
        free(d);
    }
    /* tensor info patches on a one-tensor file: name "t" (8+1), n_dims, ne, type, offset */
    {
        tsr_gguf_writer *w = tsr_gguf_writer_new();
        float v[64] = {0};
        int64_t ne[2] = {8, 8};
        tsr_gguf_add_tensor(w, "t", TSR_GGML_F32, 2, ne, v);
        snprintf(path, sizeof path, "%s/one.gguf", g_tmp);
        TSR_ASSERT(tsr_gguf_write(w, path).code == TSR_OK);
        tsr_gguf_writer_free(w);
        size_t n;
        unsigned char *d = read_all(path, &n), *e = malloc(n);
        const size_t ti = 24 + 9; /* after the header and the name */
        struct {
            const char *label;
            size_t at;
            uint64_t v;
            int w;
        } p[] = {{"5 dimensions", ti, 5, 4},
                 {"0 dimensions", ti, 0, 4},
                 {"dimension 0", ti + 4, 0, 8},
                 {"dimension 2^40", ti + 4, 1ull << 40, 8},
                 {"element count overflow", ti + 4, 1ull << 33, 8},
                 {"unknown tensor type", ti + 20, 5, 4},
                 {"Q8_0 row of 8", ti + 20, TSR_GGML_Q8_0, 4},
                 {"misaligned offset", ti + 24, 4, 8},
                 {"offset past the end", ti + 24, 1ull << 40, 8}};
        for (size_t k = 0; k < sizeof p / sizeof *p; k++) {
            memcpy(e, d, n);
            if (p[k].w == 4) put32(e + p[k].at, (uint32_t)p[k].v);
            else put64(e + p[k].at, p[k].v);
            if (k == 4) put64(e + p[k].at + 8, 1ull << 33);
            expect_bad(e, n, p[k].label);
        }
        /* the data section cut short */
        expect_bad(d, n - 1, "data cut short");
        free(d);
        free(e);
    }
    /* two tensors sharing bytes */
    {
        tsr_gguf_writer *w = tsr_gguf_writer_new();
        float v[16] = {0};
        int64_t ne[1] = {16};
        tsr_gguf_add_tensor(w, "a", TSR_GGML_F32, 1, ne, v);
        tsr_gguf_add_tensor(w, "b", TSR_GGML_F32, 1, ne, v);
        snprintf(path, sizeof path, "%s/two.gguf", g_tmp);
        TSR_ASSERT(tsr_gguf_write(w, path).code == TSR_OK);
        tsr_gguf_writer_free(w);
        size_t n;
        unsigned char *d = read_all(path, &n);
        /* second info: after header (24) + first info (8+1+4+8+4+8 = 33), name "b" 9, n_dims 4, ne 8, type 4 */
        put64(d + 24 + 33 + 9 + 4 + 8 + 4, 32);
        expect_bad(d, n, "overlapping tensors");
        free(d);
    }
}

/* ------------------------------------------------------------ models */

static void logits_of(const tsr_lm_model *m, const int *tok, int T, float *out) {
    tsr_lm_cache c;
    TSR_ASSERT(tsr_lm_cache_init(&c, &m->cfg, 0).code == TSR_OK);
    TSR_ASSERT(tsr_lm_forward(m, &c, tok, T, 0, out).code == TSR_OK);
    tsr_lm_cache_free(&c);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static void test_model(const tsr_lm_config *cfg, uint64_t seed) {
    tsr_lm_model f32;
    TSR_ASSERT(tsr_lm_model_alloc(&f32, cfg).code == TSR_OK);
    tsr_lm_model_randomize(&f32, seed, 0.1f);
    const int T = 10, V = cfg->vocab_size;
    int tok[10];
    for (int i = 0; i < T; i++) tok[i] = (i * 31 + 7) % V;
    size_t nl = (size_t)T * (size_t)V;
    float *a = malloc(sizeof(float) * nl), *b = malloc(sizeof(float) * nl), *ref = malloc(sizeof(float) * nl);
    logits_of(&f32, tok, T, ref);
    char path[400];
    /* F32 and BF16: bit-identical logits after the round trip */
    const struct {
        tsr_lm_wtype wt;
        uint32_t gt;
    } exact[] = {{TSR_LM_W_F32, TSR_GGML_F32}, {TSR_LM_W_BF16, TSR_GGML_BF16}};
    for (int k = 0; k < 2; k++) {
        tsr_lm_model m, back;
        TSR_ASSERT(tsr_lm_model_convert(&m, &f32, exact[k].wt, 32).code == TSR_OK);
        snprintf(path, sizeof path, "%s/m%d.gguf", g_tmp, k);
        tsr_status s = tsr_lm_save_gguf(&m, NULL, -1, -1, exact[k].gt, path);
        TU_CHECK(s.code == TSR_OK, "save %s: %s", tsr_ggml_type_name(exact[k].gt), s.msg);
        s = tsr_lm_load(&back, path, -1, 0);
        TU_CHECK(s.code == TSR_OK, "load %s: %s", tsr_ggml_type_name(exact[k].gt), s.msg);
        if (s.code == TSR_OK) {
            TU_CHECK(back.wtype == exact[k].wt && back.cfg.shared_classifier == cfg->shared_classifier &&
                         back.cfg.n_kv_heads == cfg->n_kv_heads && back.cfg.rope_theta == cfg->rope_theta &&
                         back.cfg.norm_eps == cfg->norm_eps && back.cfg.seq_len == cfg->seq_len,
                     "%s: config and type survive", tsr_ggml_type_name(exact[k].gt));
            logits_of(&m, tok, T, a);
            logits_of(&back, tok, T, b);
            TU_CHECK(memcmp(a, b, sizeof(float) * nl) == 0, "%s round trip: logits differ by %g",
                     tsr_ggml_type_name(exact[k].gt), max_abs_diff(a, b, nl));
            tsr_lm_model_free(&back);
        }
        tsr_lm_model_free(&m);
    }
    /* the file holds llama.cpp's layout: its q/k rows, read as an
     * interleaved-RoPE model without permuting back, give the same model */
    {
        snprintf(path, sizeof path, "%s/m0.gguf", g_tmp);
        tsr_gguf_file f;
        TSR_ASSERT(tsr_gguf_read(path, &f).code == TSR_OK);
        tsr_lm_model im;
        TSR_ASSERT(tsr_lm_model_convert(&im, &f32, TSR_LM_W_F32, 0).code == TSR_OK); /* same weights... */
        im.cfg.rope_layout = TSR_LM_ROPE_INTERLEAVED;
        for (int l = 0; l < cfg->n_layers; l++) {
            const tsr_lm_mat *qk[2] = {&im.layers[l].wq, &im.layers[l].wk};
            const char *nm[2] = {"attn_q", "attn_k"};
            for (int j = 0; j < 2; j++) {
                char tn[64];
                snprintf(tn, sizeof tn, "blk.%d.%s.weight", l, nm[j]);
                const tsr_gguf_tensor *t = tsr_gguf_find_tensor(&f, tn);
                TSR_ASSERT(t && t->type == TSR_GGML_F32);
                memcpy((void *)qk[j]->data, t->data, t->nbytes); /* ...but q/k exactly as the file has them */
            }
        }
        logits_of(&im, tok, T, a);
        TU_CHECK(tu_close("GGUF q/k as interleaved RoPE", a, ref, (int64_t)nl, 1e-4, 1e-4), "llama.cpp layout");
        tsr_lm_model_free(&im);
        tsr_gguf_free(&f);
    }
    /* Q8_0: llama.cpp's quantiser (f16 block scales); the error against f32
     * stays within 1.5x of what our own Q8 (f32 scales) costs, plus 1e-3 */
    {
        tsr_lm_model q, back;
        TSR_ASSERT(tsr_lm_model_convert(&q, &f32, TSR_LM_W_Q8, 32).code == TSR_OK);
        logits_of(&q, tok, T, a);
        double e_ours = max_abs_diff(a, ref, nl);
        snprintf(path, sizeof path, "%s/q.gguf", g_tmp);
        tsr_status s = tsr_lm_save_gguf(&f32, NULL, -1, -1, TSR_GGML_Q8_0, path);
        TU_CHECK(s.code == TSR_OK, "save Q8_0: %s", s.msg);
        s = tsr_lm_load(&back, path, -1, 0);
        TU_CHECK(s.code == TSR_OK && back.wtype == TSR_LM_W_Q8 && back.group_size == 32, "load Q8_0: %s", s.msg);
        if (s.code == TSR_OK) {
            logits_of(&back, tok, T, b);
            double e_gguf = max_abs_diff(b, ref, nl);
            printf("Q8 max |logit - f32|: ours %.3g, GGUF Q8_0 %.3g\n", e_ours, e_gguf);
            TU_CHECK(e_gguf <= 1.5 * e_ours + 1e-3, "Q8_0 error %g vs ours %g", e_gguf, e_ours);
            /* the blocks are used as stored: loading again as f32 gives q*d exactly */
            tsr_lm_model deq;
            TSR_ASSERT(tsr_lm_load(&deq, path, TSR_LM_W_F32, 0).code == TSR_OK);
            float *r1 = malloc(sizeof(float) * (size_t)cfg->dim), *r2 = malloc(sizeof(float) * (size_t)cfg->dim);
            tsr_lm_mat_row(&back.layers[0].wv, 1, r1);
            tsr_lm_mat_row(&deq.layers[0].wv, 1, r2);
            TU_CHECK(memcmp(r1, r2, sizeof(float) * (size_t)cfg->dim) == 0, "Q8_0 blocks kept as stored");
            free(r1);
            free(r2);
            tsr_lm_model_free(&deq);
            tsr_lm_model_free(&back);
        }
        tsr_lm_model_free(&q);
    }
    tsr_lm_model_free(&f32);
    free(a);
    free(b);
    free(ref);
}

/* a model file must name its problems: missing tensors, unsupported types */
static void test_model_errors(void) {
    tsr_lm_config c = {32, 64, 1, 2, 2, 40, 16, 10000.0f, 1e-5f, true, TSR_LM_ROPE_HALF};
    tsr_lm_model m, back;
    TSR_ASSERT(tsr_lm_model_alloc(&m, &c).code == TSR_OK);
    tsr_lm_model_randomize(&m, 3, 0.1f);
    char path[400];
    snprintf(path, sizeof path, "%s/e.gguf", g_tmp);
    TSR_ASSERT(tsr_lm_save_gguf(&m, NULL, -1, -1, TSR_GGML_F32, path).code == TSR_OK);
    size_t n;
    unsigned char *d = read_all(path, &n);
    tsr_gguf_file f;
    TSR_ASSERT(tsr_gguf_parse(d, n, "e.gguf", &f).code == TSR_OK);
    /* rename a tensor in place: blk.0.ffn_up -> blk.0.ffn_uq */
    const tsr_gguf_tensor *t = tsr_gguf_find_tensor(&f, "blk.0.ffn_up.weight");
    TSR_ASSERT(t);
    tsr_gguf_free(&f);
    unsigned char *at = memmem(d, n, "blk.0.ffn_up.weight", 19);
    TSR_ASSERT(at);
    at[11] = 'q';
    TSR_ASSERT(tsr_gguf_parse(d, n, "e.gguf", &f).code == TSR_OK);
    tsr_status s = tsr_lm_gguf_model(&back, &f, "e.gguf", -1, 0);
    TU_CHECK(s.code != TSR_OK && strstr(s.msg, "e.gguf") && strstr(s.msg, "up_proj"), "missing tensor: '%s'", s.msg);
    tsr_gguf_free(&f);
    at[11] = 'p';
    /* an unsupported tensor type: relabel attn_v as Q4_0 (same bytes: 8 x 32 floats = 1024 B, Q4_0 needs 32 x 18) */
    TSR_ASSERT(tsr_gguf_parse(d, n, "e.gguf", &f).code == TSR_OK);
    t = tsr_gguf_find_tensor(&f, "blk.0.attn_v.weight");
    size_t type_at = (size_t)((const unsigned char *)memmem(d, n, "blk.0.attn_v.weight", 19) - d) + 19 + 4 + 16;
    tsr_gguf_free(&f);
    put32(d + type_at, 2);
    s = tsr_gguf_parse(d, n, "e.gguf", &f);
    if (s.code == TSR_OK) {
        s = tsr_lm_gguf_model(&back, &f, "e.gguf", -1, 0);
        TU_CHECK(s.code != TSR_OK && strstr(s.msg, "Q4_0") && strstr(s.msg, "attn_v"), "Q4_0: '%s'", s.msg);
        tsr_gguf_free(&f);
    }
    put32(d + type_at, 0);
    /* a bias the Llama graph has no place for */
    unsigned char *vw = memmem(d, n, "blk.0.attn_v.weight", 19);
    TSR_ASSERT(vw);
    memcpy(vw, "blk.0.attn_vvv.bias", 19);
    TSR_ASSERT(tsr_gguf_parse(d, n, "e.gguf", &f).code == TSR_OK);
    s = tsr_lm_gguf_model(&back, &f, "e.gguf", -1, 0);
    TU_CHECK(s.code != TSR_OK && strstr(s.msg, "bias"), "bias: '%s'", s.msg);
    tsr_gguf_free(&f);
    memcpy(vw, "blk.0.attn_v.weight", 19);
    /* found by its magic without the .gguf suffix */
    char plain[420];
    snprintf(plain, sizeof plain, "%s/model_without_suffix", g_tmp);
    FILE *pf = fopen(plain, "wb");
    TSR_ASSERT(pf && fwrite(d, 1, n, pf) == n);
    fclose(pf);
    s = tsr_lm_load(&back, plain, -1, 0);
    TU_CHECK(s.code == TSR_OK, "GGUF without the suffix: %s", s.msg);
    if (s.code == TSR_OK) tsr_lm_model_free(&back);
    /* another architecture */
    unsigned char *arch = memmem(d, n, "llama", 5);
    TSR_ASSERT(arch);
    arch[0] = 'L';
    TSR_ASSERT(tsr_gguf_parse(d, n, "e.gguf", &f).code == TSR_OK);
    s = tsr_lm_gguf_model(&back, &f, "e.gguf", -1, 0);
    TU_CHECK(s.code != TSR_OK && strstr(s.msg, "Llama"), "architecture: '%s'", s.msg);
    tsr_gguf_free(&f);
    free(d);
    tsr_lm_model_free(&m);
}

/* ------------------------------------------------------------ tokenizer */

static void test_tokenizer(void) {
    const char *texts[] = {"def add(a, b):\n    return a + b\n\nprint(add(1, 2))  # three\n",
                           "for i in range(10):\n    if i % 2 == 0:\n        print('even', i)\n"};
    size_t lens[2] = {strlen(texts[0]), strlen(texts[1])};
    const char *specials[] = {"<|endoftext|>"};
    tsr_bpe_train_opts o = {300, specials, 1, 1, false};
    tsr_bpe b;
    TSR_ASSERT(tsr_bpe_train_texts(&b, texts, lens, 2, &o).code == TSR_OK);
    tsr_lm_config c = {32, 64, 1, 2, 2, b.vocab_size + 5, 16, 10000.0f, 1e-5f, true, TSR_LM_ROPE_HALF};
    tsr_lm_model m;
    TSR_ASSERT(tsr_lm_model_alloc(&m, &c).code == TSR_OK);
    char path[400];
    snprintf(path, sizeof path, "%s/tok.gguf", g_tmp);
    int bos, eos;
    tsr_lm_bpe_specials(&b, &bos, &eos);
    tsr_status s = tsr_lm_save_gguf(&m, &b, bos, eos, TSR_GGML_F32, path);
    TU_CHECK(s.code == TSR_OK, "save with tokenizer: %s", s.msg);
    tsr_bpe r;
    char pre[32];
    s = tsr_bpe_load_gguf(&r, path, pre, sizeof pre);
    TU_CHECK(s.code == TSR_OK && strcmp(pre, "gpt-2") == 0, "tokenizer back: %s", s.msg);
    if (s.code == TSR_OK) {
        TU_CHECK(r.vocab_size == c.vocab_size && r.n_merges == b.n_merges, "vocab padded to the model's (%d)",
                 r.vocab_size);
        int same = 1;
        for (int i = 0; i < b.vocab_size; i++)
            same &= r.piece_len[i] == b.piece_len[i] && !memcmp(r.piece[i], b.piece[i], (size_t)b.piece_len[i]) &&
                    r.special[i] == b.special[i];
        for (int i = b.vocab_size; i < r.vocab_size; i++) same &= r.special[i];
        TU_CHECK(same, "tokens and specials survive; padding is special");
        const char *t = "def sub(x, y):\n    return x - y  # \xc3\xa9t\xc3\xa9\n";
        int32_t e1[128], e2[128];
        size_t n1 = tsr_bpe_encode(&b, t, strlen(t), e1), n2 = tsr_bpe_encode(&r, t, strlen(t), e2);
        TU_CHECK(n1 == n2 && !memcmp(e1, e2, n1 * sizeof(int32_t)), "same encoding");
        tsr_bpe_free(&r);
    }
    tsr_gguf_file f;
    TSR_ASSERT(tsr_gguf_read(path, &f).code == TSR_OK);
    int64_t v;
    TU_CHECK(tsr_gguf_get_int(&f, "tokenizer.ggml.bos_token_id", &v) == 1 && v == bos &&
                 tsr_gguf_get_int(&f, "tokenizer.ggml.add_bos_token", &v) == 1 && v == 1,
             "bos metadata");
    tsr_gguf_free(&f);
    /* a file without a tokenizer says so */
    snprintf(path, sizeof path, "%s/m0.gguf", g_tmp);
    s = tsr_bpe_load_gguf(&r, path, NULL, 0);
    TU_CHECK(s.code != TSR_OK && strstr(s.msg, "tokenizer"), "no tokenizer: '%s'", s.msg);
    tsr_lm_model_free(&m);
    tsr_bpe_free(&b);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/tessera_gguf.XXXXXX");
    TSR_ASSERT(mkdtemp(g_tmp));
    tsr_threads_set(0);
    test_f16();
    test_container();
    /* GQA, untied, hidden a multiple of 32 (every matrix Q8_0) */
    tsr_lm_config a = {64, 96, 2, 4, 2, 97, 32, 10000.0f, 1e-5f, false, TSR_LM_ROPE_HALF};
    /* tied, hidden 100: the Q8_0 file keeps ffn_down in F16 (read path for F16) */
    tsr_lm_config b = {64, 100, 1, 2, 2, 61, 32, 500.0f, 1e-6f, true, TSR_LM_ROPE_HALF};
    test_model(&a, 11);
    test_model(&b, 12);
    test_model_errors();
    test_tokenizer();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) printf("could not remove %s\n", g_tmp);
    return tu_finish("gguf");
}
