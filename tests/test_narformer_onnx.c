/* Tests for src/io/onnx.c and narformer's whole-network tokenizer: the
 * 70 tokens of the ResNet-18 ONNX file against the Python reference
 * (tools/refs/gen_narformer_tokens.py -> tests/refs/narformer_tokens.tref),
 * the encoding itself, and hostile input: every truncation, byte flips and
 * hand-made malformed messages give a status, never a crash. */
#include "testutil.h"
#include "tessera/fileio.h"
#include "tessera/narformer.h"
#include "tessera/onnx.h"

#include <math.h>
#include <string.h>

#define RESNET "../shared/data/nnlqp/resnet18-v1-7-no-weight.onnx"

static void test_resnet18(void) {
    tsr_onnx_model m;
    tsr_status st = tsr_onnx_load(&m, RESNET);
    TU_CHECK(st.code == TSR_OK, "load: %s", st.msg);
    if (st.code) return;
    TU_CHECK(m.n_nodes == 69, "69 nodes, got %d", m.n_nodes);
    TU_CHECK(m.opset == 8, "opset 8, got %lld", (long long)m.opset);
    tsr_nf_graph g;
    st = tsr_nf_graph_from_onnx(&g, &m, 0);
    TU_CHECK(st.code == TSR_OK, "graph: %s", st.msg);
    tsr_onnx_free(&m);
    if (st.code) return;
    TU_CHECK(g.n == 70, "70 tokens, got %d", g.n);
    tref *r = tref_load("tests/refs/narformer_tokens.tref");
    const tref_entry *ops = tref_get(r, "ops");
    TU_CHECK(ops->numel == g.n, "reference has %lld tokens", (long long)ops->numel);
    if (ops->numel == g.n) {
        int bad = 0;
        for (int i = 0; i < g.n; i++) bad += ((int32_t *)ops->data)[i] != g.nodes[i].op;
        TU_CHECK(bad == 0, "%d op ids differ", bad);
        float *tok = malloc(sizeof(float) * (size_t)g.n * TSR_NF_TOKEN_DIM);
        float *adj = malloc(sizeof(float) * (size_t)g.n * g.n);
        float sf[TSR_NF_STATIC_DIM];
        tsr_nf_tokenize(&g, tok, adj, sf);
        tu_close_ref(r, "tokens", tok, (int64_t)g.n * TSR_NF_TOKEN_DIM, 1e-6, 0);
        tu_close_ref(r, "adj", adj, (int64_t)g.n * g.n, 0, 0);
        tu_close_ref(r, "static", sf, TSR_NF_STATIC_DIM, 1e-6, 0);
        float tot[3] = {(float)(g.flops / 1e9), (float)(g.params / 1e9), (float)(g.mem / 1e9)};
        tu_close_ref(r, "totals_g", tot, 3, 0, 1e-6);
        /* symmetric, no self-loops, token 0 (input) has no op one-hot */
        int asym = 0, self = 0;
        for (int i = 0; i < g.n; i++) {
            self += adj[(size_t)i * g.n + i] != 0;
            for (int j = 0; j < g.n; j++) asym += adj[(size_t)i * g.n + j] != adj[(size_t)j * g.n + i];
        }
        TU_CHECK(asym == 0 && self == 0, "adjacency: %d asymmetric, %d self-loops", asym, self);
        float s = 0;
        for (int k = 0; k < TSR_NF_OPS; k++) s += tok[k];
        TU_CHECK(s == 0, "input token has an op one-hot");
        free(tok);
        free(adj);
    }
    tref_free(r);
    tsr_nf_graph_free(&g);
}

static void test_encoding(void) {
    float e[10];
    tsr_nf_encode_scalar(e, 3.0, 5);
    TU_CHECK(fabsf(e[0] - sinf(3.0f)) < 1e-6 && fabsf(e[1] - cosf(3.0f)) < 1e-6, "f_0 = 1");
    TU_CHECK(fabs(e[8] - sin(3.0 * pow(10000.0, -0.8))) < 1e-6, "f_4 = 10000^-0.8");
}

/* tsr_nf_tokenize encodes each distinct scalar once per call (a memo):
 * its tokens must be bit for bit those of tsr_nf_encode_scalar per field,
 * on generated graphs of every family (hundreds of tokens, many distinct
 * values, memo slots shared) */
static void test_tokenize_memo(void) {
    const int E = 2 * TSR_NF_FREQS;
    for (int f = 0; f < TSR_NF_FAMILIES; f++)
        for (uint64_t seed = 8; seed < 10; seed++) {
            tsr_nf_graph g;
            tsr_status st = tsr_nf_netgen(&g, f, seed);
            TU_CHECK(st.code == 0, "netgen: %s", st.msg);
            if (st.code) continue;
            float *tok = malloc(sizeof(float) * (size_t)g.n * TSR_NF_TOKEN_DIM);
            float *ref = calloc((size_t)g.n * TSR_NF_TOKEN_DIM, sizeof(float));
            tsr_nf_tokenize(&g, tok, NULL, NULL);
            for (int i = 0; i < g.n; i++) {
                const tsr_nf_node *nd = &g.nodes[i];
                float *t = ref + (size_t)i * TSR_NF_TOKEN_DIM;
                if (nd->op >= 0) {
                    t[nd->op] = 1.0f;
                    for (int a = 0; a < nd->n_attr && a < TSR_NF_ATTRS; a++)
                        tsr_nf_encode_scalar(t + TSR_NF_OPS + a * E, nd->attr[a], TSR_NF_FREQS);
                }
                for (int d = 0; d < 4; d++)
                    tsr_nf_encode_scalar(t + TSR_NF_OPS + TSR_NF_ATTRS * E + d * E,
                                         d < nd->ndim ? (double)nd->shape[d] : 0.0, TSR_NF_FREQS);
            }
            TU_CHECK(!memcmp(tok, ref, sizeof(float) * (size_t)g.n * TSR_NF_TOKEN_DIM),
                     "%s seed %llu: tokens differ from the per-field encoding", tsr_nf_family_name(f),
                     (unsigned long long)seed);
            free(tok);
            free(ref);
            tsr_nf_graph_free(&g);
        }
}

static int try_parse(const uint8_t *b, size_t n) {
    tsr_onnx_model m;
    tsr_status st = tsr_onnx_parse(&m, b, n);
    int ok = st.code == TSR_OK;
    if (!ok && (!st.msg[0] || strchr(st.msg, '\n'))) {
        TU_CHECK(0, "status without a one-line message");
    }
    if (ok) {
        tsr_nf_graph g;
        tsr_status s2 = tsr_nf_graph_from_onnx(&g, &m, 0);
        if (!s2.code) tsr_nf_graph_free(&g);
        else if (!s2.msg[0] || strchr(s2.msg, '\n')) TU_CHECK(0, "graph status without a message");
    }
    tsr_onnx_free(&m);
    return ok;
}

static void test_hostile(void) {
    char *data;
    size_t len;
    tsr_status st = tsr_read_file(RESNET, &data, &len);
    TU_CHECK(st.code == 0, "%s", st.msg);
    if (st.code) return;
    const uint8_t *b = (const uint8_t *)data;
    /* truncations: the model's graph is one field, so most prefixes cut it */
    int accepted = 0;
    for (size_t n = 0; n < len; n += 97) accepted += try_parse(b, n);
    TU_CHECK(accepted < 3, "%d truncated files parsed", accepted);
    /* byte flips: anything may happen except a crash */
    uint8_t *c = malloc(len);
    tsr_rng rng;
    tsr_rng_seed(&rng, 7);
    for (int t = 0; t < 300; t++) {
        memcpy(c, b, len);
        for (int k = 0; k < 4; k++) c[tsr_rng_below(&rng, (uint32_t)len)] = (uint8_t)tsr_rng_u64(&rng);
        try_parse(c, len);
    }
    free(c);
    free(data);
    /* hand-made: length past the end, 11-byte varint, group wire type, empty */
    const uint8_t past[] = {0x3a, 0x7f, 0x0a, 0x00};
    const uint8_t longv[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    const uint8_t group[] = {0x0b, 0x00};
    TU_CHECK(!try_parse(past, sizeof past), "length past the end accepted");
    TU_CHECK(!try_parse(longv, sizeof longv), "11-byte varint accepted");
    TU_CHECK(!try_parse(group, sizeof group), "group wire type accepted");
    TU_CHECK(!try_parse(NULL, 0), "empty file accepted");
    /* a graph whose node reads a tensor nobody produces */
    const uint8_t dangling[] = {0x3a, 0x0c, 0x0a, 0x0a, 0x0a, 0x01, 'x', 0x12, 0x01, 'y', 0x22, 0x02, 'R', 'e'};
    tsr_onnx_model m;
    st = tsr_onnx_parse(&m, dangling, sizeof dangling);
    TU_CHECK(st.code == 0, "dangling parses: %s", st.msg);
    if (!st.code) {
        tsr_nf_graph g;
        st = tsr_nf_graph_from_onnx(&g, &m, 0);
        TU_CHECK(st.code != 0, "graph with no input accepted");
    }
    tsr_onnx_free(&m);
    st = tsr_onnx_load(&m, "/nonexistent/x.onnx");
    TU_CHECK(st.code != 0 && strstr(st.msg, "/nonexistent/x.onnx"), "missing file names the path: %s", st.msg);
    tsr_onnx_free(&m);
}

int main(void) {
    test_encoding();
    test_tokenize_memo();
    test_resnet18();
    test_hostile();
    return tu_finish("narformer_onnx");
}
