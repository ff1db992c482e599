/* libFuzzer target for the ONNX reader (src/io/onnx.c) and narformer's
 * graph builder on top of it: any bytes parse or give a one-line status;
 * a parsed model either tokenizes or gives a one-line status. The reader
 * takes a buffer, so no temporary file is needed. Build: fuzz/README.md.
 * Seed corpus: ../shared/data/nnlqp/resnet18-v1-7-no-weight.onnx. */
#include "tessera/narformer.h"
#include "tessera/onnx.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_onnx_model m;
    tsr_status s = tsr_onnx_parse(&m, data, size);
    if (s.code != TSR_OK) {
        if (!s.msg[0] || strchr(s.msg, '\n')) __builtin_trap();
        tsr_onnx_free(&m);
        return 0;
    }
    tsr_nf_graph g;
    s = tsr_nf_graph_from_onnx(&g, &m, 0);
    if (s.code != TSR_OK) {
        if (!s.msg[0] || strchr(s.msg, '\n')) __builtin_trap();
    } else {
        float *tok = malloc(sizeof(float) * (size_t)g.n * TSR_NF_TOKEN_DIM);
        float *adj = malloc(sizeof(float) * (size_t)g.n * g.n);
        float st[TSR_NF_STATIC_DIM];
        tsr_nf_tokenize(&g, tok, adj, st);
        free(tok);
        free(adj);
        tsr_nf_graph_free(&g);
    }
    tsr_onnx_free(&m);
    return 0;
}
