/* llama2.c checkpoint reader for the lm family.
 *
 * Formats (llama2.c export.py):
 * - v0 (legacy): 7 int32 {dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 *   vocab_size, seq_len}, vocab_size < 0 meaning a separate classifier; f32
 *   tok_emb, rms_att[L], wq[L], wk[L], wv[L], wo[L], rms_ffn[L], w1[L],
 *   w2[L], w3[L], rms_final, two unused RoPE tables (seq_len * D/2 each),
 *   then the classifier if not shared.
 * - v1: uint32 magic "ak42", int32 version 1, the 7 int32, uint8 shared
 *   flag, zero padding to 256 bytes; f32 rms_att[L], rms_ffn[L], rms_final,
 *   tok_emb, wq..w3 per kind and layer as above, classifier if not shared.
 * - v2: as v1 with int32 group_size after the flag; f32 norms as v1, then
 *   int8 values of tok_emb, wq[L]..w3[L] (classifier), then every tensor's
 *   f32 group scales in the same order. Dequantised to f32 here.
 * The whole expected size is computed in 64 bits from a validated header
 * and must equal the file length, so no read can run past the end. */
#include "tessera/fileio.h"
#include "tessera/lm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define AK42_MAGIC 0x616b3432u
#define AK42_HEADER 256

static int32_t rd_i32(const unsigned char *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

typedef struct {
    const unsigned char *p;
    size_t off;
    size_t nonfinite; /* weights (or Q8 scales) that are inf or NaN */
} cursor;

static void take_f32(cursor *c, const float *dst, size_t n) {
    float *d = (float *)dst;
    memcpy(d, c->p + c->off, n * sizeof(float));
    for (size_t i = 0; i < n; i++) c->nonfinite += !isfinite(d[i]);
    c->off += n * sizeof(float);
}

/* Q8_0: int8 values from q, f32 scales (one per group) from sc */
static void take_q8(cursor *q, cursor *sc, const float *dst, size_t n, size_t gs) {
    float *d = (float *)dst;
    const signed char *v = (const signed char *)(q->p + q->off);
    for (size_t g = 0; g < n / gs; g++) {
        float s;
        memcpy(&s, sc->p + sc->off + g * sizeof(float), sizeof(float));
        q->nonfinite += !isfinite(s);
        for (size_t i = 0; i < gs; i++) d[g * gs + i] = (float)v[g * gs + i] * s;
    }
    q->off += n;
    sc->off += n / gs * sizeof(float);
}

static size_t mat_n(const tsr_lm_mat *w) { return (size_t)w->rows * (size_t)w->cols; }

tsr_status tsr_llama2c_parse(tsr_lm_model *m, const void *buf, size_t len, const char *name) {
    memset(m, 0, sizeof *m);
    const unsigned char *p = buf;
    if (!name) name = "<memory>";
    int version = 0;
    size_t hdr = 28;
    const unsigned char *cp = p;
    uint32_t magic = 0;
    if (len >= 4) memcpy(&magic, p, 4);
    if (magic == AK42_MAGIC) {
        if (len < AK42_HEADER)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: truncated llama2.c header (%zu of %d bytes)", name, len,
                              AK42_HEADER);
        version = rd_i32(p + 4);
        if (version != 1 && version != 2)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: llama2.c checkpoint version %d is not supported (1 or 2)",
                              name, version);
        hdr = AK42_HEADER;
        cp = p + 8;
    } else if (len < 28) {
        return tsr_errorf(TSR_ERR_FORMAT, "%s: too short for a llama2.c checkpoint (%zu bytes)", name, len);
    }

    tsr_lm_config cfg = {0};
    cfg.dim = rd_i32(cp);
    cfg.hidden_dim = rd_i32(cp + 4);
    cfg.n_layers = rd_i32(cp + 8);
    cfg.n_heads = rd_i32(cp + 12);
    cfg.n_kv_heads = rd_i32(cp + 16);
    int32_t vocab = rd_i32(cp + 20);
    cfg.seq_len = rd_i32(cp + 24);
    cfg.rope_theta = 10000.0f;
    cfg.norm_eps = 1e-5f;
    cfg.rope_layout = TSR_LM_ROPE_INTERLEAVED;
    size_t gs = 0;
    if (version == 0) {
        if (vocab == INT32_MIN)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: not a llama2.c checkpoint (vocab_size %d)", name, (int)vocab);
        cfg.shared_classifier = vocab > 0;
        cfg.vocab_size = vocab < 0 ? -vocab : vocab;
    } else {
        cfg.vocab_size = vocab;
        uint8_t flag = p[36];
        if (flag > 1)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: shared-classifier flag %u is not 0 or 1", name, flag);
        cfg.shared_classifier = flag;
        if (version == 2) {
            int32_t g = rd_i32(p + 37);
            if (g < 1 || g > (1 << 20))
                return tsr_errorf(TSR_ERR_FORMAT, "%s: quantisation group size %d out of range", name, (int)g);
            gs = (size_t)g;
        }
    }
    char what[300];
    snprintf(what, sizeof what, "%s: llama2.c v%d header", name, version);
    tsr_status s = tsr_lm_config_check(&cfg, what);
    if (s.code) return s;

    uint64_t C = (uint64_t)cfg.dim, Hd = (uint64_t)cfg.hidden_dim, L = (uint64_t)cfg.n_layers;
    uint64_t V = (uint64_t)cfg.vocab_size, D = C / (uint64_t)cfg.n_heads;
    uint64_t kv = D * (uint64_t)cfg.n_kv_heads;
    uint64_t norms = 2 * L * C + C;
    uint64_t mats = L * (2 * C * C + 2 * kv * C + 3 * Hd * C); /* wq, wo; wk, wv; w1, w2, w3 */
    uint64_t cls = cfg.shared_classifier ? 0 : V * C;
    uint64_t expect;
    if (version == 0) {
        expect = hdr + 4 * (norms + V * C + mats + (uint64_t)cfg.seq_len * D + cls);
    } else if (version == 1) {
        expect = hdr + 4 * (norms + V * C + mats + cls);
    } else {
        /* every quantised tensor must be whole groups */
        uint64_t sizes[] = {V * C, C * C, kv * C, Hd * C};
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
            if (sizes[i] % gs)
                return tsr_errorf(TSR_ERR_FORMAT, "%s: a weight of %llu values is not a multiple of the group size %zu",
                                  name, (unsigned long long)sizes[i], gs);
        uint64_t q = V * C + mats + cls;
        expect = hdr + 4 * norms + q + 4 * (q / gs);
    }
    if (expect != (uint64_t)len)
        return tsr_errorf(TSR_ERR_FORMAT,
                          "%s: size mismatch: the header (dim %d, hidden %d, layers %d, heads %d/%d, vocab %d, seq_len %d) needs %llu bytes, the file has %zu%s",
                          name, cfg.dim, cfg.hidden_dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.vocab_size,
                          cfg.seq_len, (unsigned long long)expect, len,
                          (uint64_t)len < expect ? " (truncated?)" : "");

    s = tsr_lm_model_alloc(m, &cfg);
    if (s.code) return s;
    cursor c = {p, hdr, 0};
    const int nl = cfg.n_layers;
#define EACH_LAYER(stmt)                                                                          \
    for (int l = 0; l < nl; l++) {                                                                \
        tsr_lm_layer *ly = &m->layers[l];                                                         \
        (void)ly;                                                                                 \
        stmt;                                                                                     \
    }
    if (version == 0) {
        take_f32(&c, m->tok_emb, V * C);
        EACH_LAYER(take_f32(&c, ly->rms_att, C));
        EACH_LAYER(take_f32(&c, ly->wq.data, mat_n(&ly->wq)));
        EACH_LAYER(take_f32(&c, ly->wk.data, mat_n(&ly->wk)));
        EACH_LAYER(take_f32(&c, ly->wv.data, mat_n(&ly->wv)));
        EACH_LAYER(take_f32(&c, ly->wo.data, mat_n(&ly->wo)));
        EACH_LAYER(take_f32(&c, ly->rms_ffn, C));
        EACH_LAYER(take_f32(&c, ly->w1.data, mat_n(&ly->w1)));
        EACH_LAYER(take_f32(&c, ly->w2.data, mat_n(&ly->w2)));
        EACH_LAYER(take_f32(&c, ly->w3.data, mat_n(&ly->w3)));
        take_f32(&c, m->rms_final, C);
        c.off += 4 * (size_t)cfg.seq_len * (size_t)D; /* RoPE tables: recomputed */
        if (!cfg.shared_classifier) take_f32(&c, m->wcls.data, V * C);
    } else {
        EACH_LAYER(take_f32(&c, ly->rms_att, C));
        EACH_LAYER(take_f32(&c, ly->rms_ffn, C));
        take_f32(&c, m->rms_final, C);
        if (version == 1) {
            take_f32(&c, m->tok_emb, V * C);
            EACH_LAYER(take_f32(&c, ly->wq.data, mat_n(&ly->wq)));
            EACH_LAYER(take_f32(&c, ly->wk.data, mat_n(&ly->wk)));
            EACH_LAYER(take_f32(&c, ly->wv.data, mat_n(&ly->wv)));
            EACH_LAYER(take_f32(&c, ly->wo.data, mat_n(&ly->wo)));
            EACH_LAYER(take_f32(&c, ly->w1.data, mat_n(&ly->w1)));
            EACH_LAYER(take_f32(&c, ly->w2.data, mat_n(&ly->w2)));
            EACH_LAYER(take_f32(&c, ly->w3.data, mat_n(&ly->w3)));
            if (!cfg.shared_classifier) take_f32(&c, m->wcls.data, V * C);
        } else {
            cursor sc = {p, c.off + (size_t)(V * C + mats + cls), 0};
            take_q8(&c, &sc, m->tok_emb, V * C, gs);
            EACH_LAYER(take_q8(&c, &sc, ly->wq.data, mat_n(&ly->wq), gs));
            EACH_LAYER(take_q8(&c, &sc, ly->wk.data, mat_n(&ly->wk), gs));
            EACH_LAYER(take_q8(&c, &sc, ly->wv.data, mat_n(&ly->wv), gs));
            EACH_LAYER(take_q8(&c, &sc, ly->wo.data, mat_n(&ly->wo), gs));
            EACH_LAYER(take_q8(&c, &sc, ly->w1.data, mat_n(&ly->w1), gs));
            EACH_LAYER(take_q8(&c, &sc, ly->w2.data, mat_n(&ly->w2), gs));
            EACH_LAYER(take_q8(&c, &sc, ly->w3.data, mat_n(&ly->w3), gs));
            if (!cfg.shared_classifier) take_q8(&c, &sc, m->wcls.data, V * C, gs);
            c.off = sc.off;
        }
    }
#undef EACH_LAYER
    TSR_ASSERT(c.off == len);
    if (c.nonfinite) {
        tsr_lm_model_free(m);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: %zu weights are not finite (inf or NaN): a corrupt checkpoint", name,
                          c.nonfinite);
    }
    return tsr_ok();
}

tsr_status tsr_llama2c_load(tsr_lm_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    tsr_status chk = tsr_input_check(path);
    if (chk.code) return chk;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return tsr_errorf(TSR_ERR_IO, "%s: cannot open checkpoint: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return tsr_errorf(TSR_ERR_IO, "%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    if (len == 0) {
        close(fd);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: empty file, not a llama2.c checkpoint", path);
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return tsr_errorf(TSR_ERR_IO, "%s: cannot map checkpoint: %s", path, strerror(errno));
    tsr_status s = tsr_llama2c_parse(m, map, len, path);
    munmap(map, len);
    return s;
}
