/* libFuzzer target for the ctnet interaction-log parser (CSV/TSV,
 * src/models/ctnet/data.c): any input parses or gives a one-line status
 * naming it; a parsed log has consistent rows (domains, history, tokens)
 * and makes a batch. Build: see fuzz/README.md. */
#include "tessera/ctnet.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_ctnet_log g;
    tsr_status s = tsr_ctnet_parse_csv((const char *)data, size, "fuzz.csv", "source", "target", size & 1, &g);
    if (s.code != TSR_OK) {
        if (!strstr(s.msg, "fuzz.csv") || strchr(s.msg, '\n')) __builtin_trap();
        return 0;
    }
    if (g.n < 1 || g.n_fields < 2 || g.n_fields > TSR_CTNET_MAX_FIELDS || !g.sorted) __builtin_trap();
    for (int64_t i = 0; i < g.n; i++) {
        if (g.domain[i] > TSR_CTNET_OTHER || g.label[i] > 1 || !g.user[i] || !g.item[i]) __builtin_trap();
        if (i && g.ts[i] < g.ts[i - 1]) __builtin_trap();
    }
    if (tsr_ctnet_log_periods(&g, "week").code) __builtin_trap();
    tsr_ctnet_cfg cfg = tsr_ctnet_default_cfg();
    cfg.n_fields = g.n_fields;
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    int64_t rows[4];
    int64_t B = g.n < 4 ? g.n : 4;
    for (int64_t i = 0; i < B; i++) rows[i] = g.n - 1 - i;
    tsr_ctnet_make_batch(&c, &g, rows, B, &cfg, NULL);
    tsr_ctx_free(&c);
    tsr_ctnet_log_free(&g);
    return 0;
}
