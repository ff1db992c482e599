/* libFuzzer target for the JSONL query-file parser (src/search/qfile.c,
 * the input of `higen eval` / `ebrm eval`): any buffer parses or gives a
 * one-line status naming the file; an accepted file has a non-empty query
 * and relevant list on every line. Build: see fuzz/README.md. */
#include "tessera/search.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_qfile qf;
    tsr_status s = tsr_qfile_parse(&qf, (const char *)data, size, "fuzz.jsonl");
    if (s.code != TSR_OK) {
        if (!strstr(s.msg, "fuzz.jsonl") || strchr(s.msg, '\n')) __builtin_trap();
        return 0;
    }
    for (int i = 0; i < qf.n; i++) {
        if (!qf.l[i].query[0] || qf.l[i].n_relevant < 1) __builtin_trap();
        for (int j = 0; j < qf.l[i].n_relevant; j++)
            if (!qf.l[i].relevant[j][0]) __builtin_trap();
    }
    tsr_qfile_free(&qf);
    return 0;
}
