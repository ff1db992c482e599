/* libFuzzer target for the raster reader (src/io/raster.c): any file is
 * read as an image and as a land-cover map on a small georeferenced grid
 * (GDAL's drivers, our checks and the warp), or gives a one-line status
 * naming it. Without GDAL only PNG goes through. Inputs go through a file
 * in /dev/shm (or /tmp). Build: see fuzz/README.md. */
#include "tessera/raster.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "%s/tsr_fuzz_raster.%d.tif", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    tsr_raster r;
    tsr_status s = tsr_raster_read_rgb(path, &r);
    if (s.code != TSR_OK) {
        if (!strstr(s.msg, path) || strchr(s.msg, '\n')) __builtin_trap();
    } else {
        volatile uint8_t sink = 0;
        for (int64_t i = 0; i < (int64_t)r.w * r.h * 3; i++) sink ^= r.px[i];
        (void)sink;
        tsr_raster_free(&r);
    }
    tsr_raster grid = {.w = 16, .h = 16, .georef = true, .gt = {6.5, 0.001, 0, 0.3, 0, -0.001}};
    grid.wkt = (char *)"EPSG:4326";
    uint8_t *cls = NULL;
    s = tsr_raster_classes_on_grid(path, &grid, &cls);
    if (s.code != TSR_OK && (!strstr(s.msg, path) || strchr(s.msg, '\n'))) __builtin_trap();
    free(cls);
    return 0;
}
