/* libFuzzer target for the HF / tessera safetensors model loader
 * (src/io/hf_llama.c). The first byte picks the input kind: even, a
 * config.json text (tsr_lm_config_from_json); odd, a whole .safetensors
 * image with the config in __metadata__ (tsr_lm_parse_safetensors), loaded
 * as f32, bf16 or Q8 by the second byte. Any input must give a config /
 * model or a one-line status naming the input; a model that loads must run
 * a short forward. Build: cmake -S . -B build-fuzz -DTSR_FUZZ=ON
 * -DCMAKE_C_COMPILER=clang */
#include "tessera/lm.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    tsr_status s;
    if ((data[0] & 1) == 0) {
        tsr_lm_config c;
        s = tsr_lm_config_from_json(&c, (const char *)data + 1, size - 1, "fuzz");
        if (s.code != TSR_OK && (!strstr(s.msg, "fuzz") || strchr(s.msg, '\n'))) __builtin_trap();
        return 0;
    }
    int wt = data[1] % 4 == 3 ? -1 : data[1] % 4;
    tsr_lm_model m;
    s = tsr_lm_parse_safetensors(&m, data + 2, size - 2, "fuzz", wt, data[1] & 4 ? 64 : 32);
    if (s.code != TSR_OK) {
        if (!strstr(s.msg, "fuzz") || strchr(s.msg, '\n')) __builtin_trap();
        return 0;
    }
    tsr_lm_cache c;
    if (tsr_lm_cache_init(&c, &m.cfg, 2).code == TSR_OK) {
        int V = m.cfg.vocab_size, toks[2] = {0, V - 1};
        int n = c.max_len < 2 ? c.max_len : 2;
        float *logits = malloc(sizeof(float) * (size_t)V * 2);
        if (logits) {
            if (tsr_lm_forward(&m, &c, toks, n, 0, logits).code != TSR_OK) __builtin_trap();
            free(logits);
        }
        tsr_lm_cache_free(&c);
    }
    tsr_lm_model_free(&m);
    return 0;
}
