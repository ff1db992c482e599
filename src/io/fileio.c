/* tessera io: whole-file reading (see include/tessera/fileio.h). */
#include "tessera/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <unistd.h>

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

tsr_status tsr_write_file_atomic(const char *path, const void *a, size_t la, const void *b, size_t lb) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    TSR_ASSERT(tmp);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    tsr_status st = tsr_ok();
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st = tsr_errorf(TSR_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return st;
    }
    bool ok = fwrite(a, 1, la, f) == la && (lb == 0 || fwrite(b, 1, lb, f) == lb) && fflush(f) == 0;
    int e = errno;
    if (ok && fsync(fileno(f)) != 0) ok = false, e = errno;
    if (fclose(f) != 0 && ok) ok = false, e = errno;
    if (!ok) {
        unlink(tmp);
        st = tsr_errorf(TSR_ERR_IO, "%s: write failed: %s", path, strerror(e));
    } else if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        st = tsr_errorf(TSR_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(e));
    } else {
        char *dcopy = strdup(path);
        TSR_ASSERT(dcopy);
        int dfd = open(dirname(dcopy), O_RDONLY);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dcopy);
    }
    free(tmp);
    return st;
}
