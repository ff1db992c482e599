/* libFuzzer target for the PNG reader (src/io/png.c, libpng): any file
 * reads or gives a one-line status naming it; a decoded image has every
 * pixel readable. Inputs go through a file in /dev/shm (or /tmp).
 * Build: see fuzz/README.md. */
#include "tessera/png.h"

#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "%s/tsr_fuzz_png.%d", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    uint8_t *px = NULL;
    int w = 0, h = 0, ch = 0;
    tsr_status s = tsr_png_read(path, &px, &w, &h, &ch);
    if (s.code != TSR_OK) {
        if (!strstr(s.msg, path) || strchr(s.msg, '\n')) __builtin_trap();
        return 0;
    }
    volatile uint8_t sink = 0;
    for (int64_t i = 0; i < (int64_t)w * h * ch; i++) sink ^= px[i];
    (void)sink;
    free(px);
    return 0;
}
