/* libFuzzer target for the ctnet interaction-log parser (CSV/TSV,
 * src/models/ctnet/data.c): any input parses or gives a one-line status
 * naming it; a parsed log has consistent rows (domains, history, tokens)
 * and makes a batch. Build: see fuzz/README.md. */
#include "fuzz_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_ctnet_log g;
    tsr_status s = tsr_ctnet_parse_csv((const char *)data, size, "fuzz.csv", "source", "target", size & 1, &g);
    if (s.code != TSR_OK) {
        if (!strstr(s.msg, "fuzz.csv") || strchr(s.msg, '\n')) __builtin_trap();
        return 0;
    }
    fuzz_ctnet_check_log(&g);
    return 0;
}
