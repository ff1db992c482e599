/* libFuzzer target for the /v1/completions request parser
 * (tsr_serve_parse_completion, src/serve/request.c): any bytes must give a
 * request or a one-line message, never read past the given length (the
 * input is copied into a buffer of exactly its size, without a NUL), and
 * an accepted request must hold what the contract promises (a prompt, at
 * most TSR_SERVE_MAX_STOP non-empty stop strings, sane numbers). Build:
 * cmake -S . -B build-fuzz -DTSR_FUZZ=ON -DCMAKE_C_COMPILER=clang */
#include "tessera/serve.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    tsr_serve_completion c;
    char param[64];
    tsr_status s = tsr_serve_parse_completion(&c, buf, size, param);
    if (s.code != TSR_OK) {
        if (!s.msg[0] || strchr(s.msg, '\n') || strlen(param) >= 64) __builtin_trap();
    } else {
        if (!c.prompt || c.n_stop < 0 || c.n_stop > TSR_SERVE_MAX_STOP || c.max_tokens < 1 ||
            !(c.temperature >= 0 && c.temperature <= 2) || !(c.top_p > 0 && c.top_p <= 1) || c.top_k < 0 ||
            c.decoder < -1 || c.decoder >= TSR_DEC_COUNT)
            __builtin_trap();
        for (int i = 0; i < c.n_stop; i++)
            if (!c.stop[i] || !c.stop[i][0]) __builtin_trap();
        tsr_serve_completion_free(&c);
    }
    free(buf);
    return 0;
}
