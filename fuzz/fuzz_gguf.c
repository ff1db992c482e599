/* libFuzzer target for the GGUF reader (src/io/gguf.c) and the Llama
 * model / tokenizer loaders over it (src/io/gguf_llama.c). The first byte
 * picks the weight type the model is loaded as (f32, bf16, q8, as stored);
 * the rest is a whole .gguf image. Any input must give a file or a
 * one-line status naming the input; an accepted tensor's data must lie in
 * the image; a model that loads must run a short forward; a tokenizer that
 * loads must round-trip a text. Build: cmake -S . -B build-fuzz
 * -DTSR_FUZZ=ON -DCMAKE_C_COMPILER=clang */
#include "tessera/bpe.h"
#include "tessera/gguf.h"
#include "tessera/lm.h"

#include <string.h>

static void check_msg(const tsr_status *s) {
    if (!strstr(s->msg, "fuzz") || strchr(s->msg, '\n')) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t *img = data + 1;
    size_t len = size - 1;
    tsr_gguf_file f;
    tsr_status s = tsr_gguf_parse(img, len, "fuzz", &f);
    if (s.code != TSR_OK) {
        check_msg(&s);
        return 0;
    }
    for (int i = 0; i < f.n_tensors; i++) {
        const uint8_t *p = f.t[i].data;
        if (p < img || p > img + len || f.t[i].nbytes > (size_t)(img + len - p)) __builtin_trap();
    }
    int wt = data[0] % 4 == 3 ? -1 : data[0] % 4;
    tsr_lm_model m;
    s = tsr_lm_gguf_model(&m, &f, "fuzz", wt, 32);
    if (s.code != TSR_OK) {
        check_msg(&s);
    } else {
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
    }
    tsr_bpe b;
    s = tsr_bpe_from_gguf(&b, &f, "fuzz");
    if (s.code != TSR_OK) {
        check_msg(&s);
    } else {
        static const char text[] = "def f(x):\n    return x + 1  # \xc3\xa9\n";
        int32_t ids[sizeof text];
        size_t n = tsr_bpe_encode(&b, text, sizeof text - 1, ids);
        char out[sizeof text + 1];
        if (tsr_bpe_decode(&b, ids, n, out, sizeof out) != sizeof text - 1 || memcmp(out, text, sizeof text - 1))
            __builtin_trap();
        tsr_bpe_free(&b);
    }
    tsr_gguf_free(&f);
    return 0;
}
