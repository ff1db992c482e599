/* libFuzzer target for the llama2.c checkpoint parser (src/io/llama2c.c):
 * any byte string must parse to a model or give a status; a model that
 * parses must run a short forward without touching memory it does not own.
 * Build: cmake -S . -B build-fuzz -DTSR_FUZZ=ON -DCMAKE_C_COMPILER=clang */
#include "tessera/lm.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_lm_model m;
    tsr_status s = tsr_llama2c_parse(&m, data, size, "fuzz");
    if (s.code != TSR_OK) {
        if (!strstr(s.msg, "fuzz")) __builtin_trap(); /* messages name the input */
        return 0;
    }
    tsr_lm_cache c;
    if (tsr_lm_cache_init(&c, &m.cfg, 3).code == TSR_OK) {
        int V = m.cfg.vocab_size, toks[2] = {0, V - 1};
        int n = c.max_len < 2 ? c.max_len : 2;
        float *logits = malloc(sizeof(float) * (size_t)V * 2);
        if (logits) {
            if (tsr_lm_forward(&m, &c, toks, n, 0, logits).code != TSR_OK) __builtin_trap();
            int bad = V; /* out of range must be refused */
            if (tsr_lm_forward(&m, &c, &bad, 1, 0, logits).code == TSR_OK) __builtin_trap();
            free(logits);
        }
        tsr_lm_cache_free(&c);
    }
    tsr_lm_model_free(&m);
    return 0;
}
