/* libFuzzer target for apt's true masks from DOTA oriented boxes
 * (tsr_apt_dota_truth_parse, src/models/apt/eval.c: eval --truth dota):
 * two size bytes, then a labelTxt. An accepted file must give a binary
 * mask whose instance keys sit on the class pixels and count no more boxes
 * than it reports; a refused one a one-line message naming the file.
 * Build: see fuzz/README.md. */
#include "tessera/apt_eval.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int w = 1 + data[0] % 96, h = 1 + data[1] % 96;
    int64_t n = (int64_t)w * h;
    uint8_t *lab = malloc((size_t)n);
    uint32_t *inst = malloc(sizeof(uint32_t) * (size_t)n);
    if (!lab || !inst) return 0;
    int nobj = -1;
    tsr_status st = tsr_apt_dota_truth_parse((const char *)data + 2, size - 2, "fuzz.txt", w, h, lab, inst, &nobj);
    if (st.code == TSR_OK) {
        if (nobj < 0) __builtin_trap();
        for (int64_t i = 0; i < n; i++)
            if (lab[i] > 1 || (inst[i] != 0) != (lab[i] == 1) || inst[i] > (uint32_t)nobj) __builtin_trap();
    } else if (!strstr(st.msg, "fuzz.txt") || strchr(st.msg, '\n'))
        __builtin_trap();
    free(lab);
    free(inst);
    return 0;
}
