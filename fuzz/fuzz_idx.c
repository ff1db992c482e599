/* libFuzzer target for the IDX reader (src/io/idx.c, Fashion-MNIST files,
 * plain or gzip through zlib): any file reads or gives a one-line status
 * naming it. The reader takes a path, so each input goes through a file
 * in /dev/shm (or /tmp). Build: see fuzz/README.md. */
#include "tessera/data.h"

#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "%s/tsr_fuzz_idx.%d", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    tsr_idx x;
    tsr_status s = tsr_idx_read(path, &x);
    if (s.code != TSR_OK) {
        if (!strstr(s.msg, path) || strchr(s.msg, '\n')) __builtin_trap();
        return 0;
    }
    int64_t n = 1;
    for (int i = 0; i < x.ndim; i++) n *= x.shape[i];
    volatile uint8_t sink = 0;
    for (int64_t i = 0; i < n; i++) sink ^= x.data[i]; /* every byte readable */
    (void)sink;
    tsr_idx_free(&x);
    return 0;
}
