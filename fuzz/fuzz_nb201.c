/* libFuzzer target for NAR-Former's NAS-Bench-201 tables (tsr_nb201_load,
 * src/models/narformer/nb201.c: nats_bench.csv's accuracies, arch strings
 * and isomorphism classes; the per-device latency CSV, plain or gzip) and
 * tsr_nb201_parse_arch. The first byte picks the file: even, the input is
 * the accuracy table; odd, the input is the latency table, read after the
 * real accuracy table (the file TSR_NB201_CSV names, else
 * ../shared/data/nas-bench-201/nats_bench.csv from the repository root or
 * build-fuzz/; without it the odd inputs are skipped), since a latency row
 * must match the accuracy table's cell. Any input loads or gives a
 * one-line status naming the file; a loaded table's cells hold ops in
 * range. Files go through /dev/shm (or /tmp). Build: see fuzz/README.md. */
#include "tessera/narformer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *acc_table(void) {
    static const char *found;
    static bool looked;
    if (!looked) {
        looked = true;
        const char *env = getenv("TSR_NB201_CSV");
        const char *cand[] = {env, "../shared/data/nas-bench-201/nats_bench.csv",
                              "../../shared/data/nas-bench-201/nats_bench.csv"};
        for (size_t i = 0; i < sizeof cand / sizeof *cand && !found; i++)
            if (cand[i] && access(cand[i], R_OK) == 0) found = cand[i];
    }
    return found;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[96];
    if (!path[0])
        snprintf(path, sizeof path, "%s/tsr_fuzz_nb201.%d", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm", (int)getpid());
    if (size < 1) return 0;
    const bool lat = data[0] & 1;
    const char *acc = lat ? acc_table() : path;
    if (!acc) return 0;
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);
    /* the arch parser on the input as one string too */
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
    uint8_t ops[6];
    if (tsr_nb201_parse_arch(s, ops))
        for (int k = 0; k < 6; k++)
            if (ops[k] < TSR_NB201_CONV1 || ops[k] > TSR_NB201_NONE) __builtin_trap();
    free(s);
    tsr_nb201 t;
    tsr_status st = tsr_nb201_load(&t, acc, lat ? path : NULL);
    if (st.code != TSR_OK) {
        if (!strstr(st.msg, lat ? path : acc) || strchr(st.msg, '\n')) __builtin_trap();
        return 0;
    }
    if (t.n != TSR_NB201_N || t.n_iso < 1 || t.n_iso > t.n) __builtin_trap();
    for (int i = 0; i < t.n; i++) {
        for (int k = 0; k < 6; k++)
            if (t.ops[i][k] < TSR_NB201_CONV1 || t.ops[i][k] > TSR_NB201_NONE) __builtin_trap();
        if (t.iso[i] < 0 || t.iso[i] >= t.n_iso) __builtin_trap();
    }
    tsr_nb201_free(&t);
    return 0;
}
