/* tessera io: whole-file reading (see include/tessera/fileio.h). */
#include "tessera/fileio.h"

#include <errno.h>
#include <string.h>

tsr_status tsr_read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return tsr_errorf(TSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    TSR_ASSERT(buf);
    for (;;) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        cap *= 2;
        buf = realloc(buf, cap + 1);
        TSR_ASSERT(buf);
    }
    bool err = ferror(f);
    int e = errno;
    fclose(f);
    if (err) {
        free(buf);
        return tsr_errorf(TSR_ERR_IO, "%s: read error: %s", path, strerror(e));
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return tsr_ok();
}
