/* libFuzzer target for narformer's latency data set reader
 * (src/models/narformer/latency.c, tsr_nf_latset_parse): any bytes load or
 * give a one-line status; a loaded set tokenizes. Build: fuzz/README.md.
 * Seed corpus: a few lines of a file written by `tessera narformer dataset`. */
#include "tessera/narformer.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_nf_latset s;
    tsr_status st = tsr_nf_latset_parse(&s, (const char *)data, size, "fuzz");
    if (st.code != TSR_OK) {
        if (!st.msg[0] || strchr(st.msg, '\n')) __builtin_trap();
        return 0;
    }
    for (int i = 0; i < s.n; i++) {
        const tsr_nf_graph *g = &s.nets[i].g;
        float *tok = malloc(sizeof(float) * (size_t)g->n * TSR_NF_TOKEN_DIM);
        float *adj = malloc(sizeof(float) * (size_t)g->n * g->n);
        float sf[TSR_NF_STATIC_DIM];
        tsr_nf_tokenize(g, tok, adj, sf);
        free(tok);
        free(adj);
    }
    tsr_nf_latset_free(&s);
    return 0;
}
