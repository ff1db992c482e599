/* tessera io: whole-file reading, atomic writing, output-path checks and
 * the shipped-model lookup (see include/tessera/fileio.h). */
#include "tessera/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

tsr_status tsr_read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
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
    if (!is_stdin) fclose(f);
    if (err) {
        free(buf);
        return tsr_errorf(TSR_ERR_IO, "%s: read error: %s", is_stdin ? "stdin" : path, strerror(e));
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return tsr_ok();
}

/* ------------------------------------------------------------ outputs */

static const char *kind_name(mode_t m);

tsr_status tsr_input_check(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || S_ISREG(sb.st_mode)) return tsr_ok();
    return tsr_errorf(TSR_ERR_IO, "%s: not a regular file (%s)", path, kind_name(sb.st_mode));
}

static const char *kind_name(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISLNK(m)) return "a symbolic link";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

/* an existing target must be a regular file (lstat: a symlink is refused,
 * since the rename would replace the link, not what it points at) */
static tsr_status check_target(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT) return tsr_ok();
        return tsr_errorf(TSR_ERR_IO, "%s: cannot check the output path: %s", path, strerror(errno));
    }
    if (!S_ISREG(sb.st_mode))
        return tsr_errorf(TSR_ERR_IO,
                          "%s: the output exists and is %s, not a regular file; refusing to replace "
                          "it (name a new or regular file)",
                          path, kind_name(sb.st_mode));
    return tsr_ok();
}

tsr_status tsr_output_check(const char *path) {
    if (strcmp(path, "-") == 0) return tsr_ok();
    if (!path[0]) return tsr_errorf(TSR_ERR_ARG, "empty output path");
    tsr_status st = check_target(path);
    if (st.code) return st;
    char *dcopy = strdup(path);
    TSR_ASSERT(dcopy);
    const char *dir = dirname(dcopy);
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        st = tsr_errorf(TSR_ERR_IO, "%s: the output directory %s does not exist (create it first)",
                        path, dir);
    } else {
        size_t n = strlen(dir) + 32;
        char *probe = malloc(n);
        TSR_ASSERT(probe);
        snprintf(probe, n, "%s/.tessera-probe-XXXXXX", dir);
        int fd = mkstemp(probe);
        if (fd < 0) {
            st = tsr_errorf(TSR_ERR_IO, "%s: cannot write in the output directory %s: %s", path, dir,
                            strerror(errno));
        } else {
            close(fd);
            unlink(probe);
        }
        free(probe);
    }
    free(dcopy);
    return st;
}

tsr_status tsr_atomic_open(tsr_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    af->path = strdup(path);
    TSR_ASSERT(af->path);
    if (strcmp(path, "-") == 0) {
        af->f = stdout;
        return tsr_ok();
    }
    tsr_status st = check_target(path);
    if (st.code) {
        free(af->path);
        af->path = NULL;
        return st;
    }
    size_t plen = strlen(path);
    af->tmp = malloc(plen + 5);
    TSR_ASSERT(af->tmp);
    memcpy(af->tmp, path, plen);
    memcpy(af->tmp + plen, ".tmp", 5);
    /* a stale regular tmp from a killed run is replaced; anything else
     * there (a link, a FIFO) is refused rather than followed or opened */
    struct stat sb;
    if (lstat(af->tmp, &sb) == 0) {
        if (!S_ISREG(sb.st_mode))
            st = tsr_errorf(TSR_ERR_IO, "%s: %s exists and is %s; remove it", path, af->tmp,
                            kind_name(sb.st_mode));
        else (void)unlink(af->tmp);
    }
    int fd = -1;
    if (!st.code) {
        fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0) st = tsr_errorf(TSR_ERR_IO, "%s: cannot create %s: %s", path, af->tmp, strerror(errno));
    }
    if (!st.code) {
        af->f = fdopen(fd, "wb");
        if (!af->f) {
            st = tsr_errorf(TSR_ERR_IO, "%s: cannot open %s: %s", path, af->tmp, strerror(errno));
            close(fd);
            unlink(af->tmp);
        }
    }
    if (st.code) {
        free(af->path);
        free(af->tmp);
        memset(af, 0, sizeof *af);
    }
    return st;
}

static void atomic_free(tsr_atomic_file *af) {
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
}

void tsr_atomic_abort(tsr_atomic_file *af) {
    if (af->tmp) {
        if (af->f) fclose(af->f);
        unlink(af->tmp);
    }
    atomic_free(af);
}

tsr_status tsr_atomic_commit(tsr_atomic_file *af, bool ok) {
    int e = ok ? 0 : errno;
    tsr_status st = tsr_ok();
    if (!af->tmp) { /* stdout */
        if (!ok || fflush(af->f) != 0)
            st = tsr_errorf(TSR_ERR_IO, "stdout: write failed: %s", strerror(ok ? errno : e ? e : EIO));
        atomic_free(af);
        return st;
    }
    if (ok && fflush(af->f) != 0) ok = false, e = errno;
    if (ok && fsync(fileno(af->f)) != 0) ok = false, e = errno;
    if (fclose(af->f) != 0 && ok) ok = false, e = errno;
    af->f = NULL;
    if (ok && tsr_fault_hook) tsr_fault_hook("tmp-written"); /* crash tests: complete tmp, no rename yet */
    if (!ok) {
        unlink(af->tmp);
        st = tsr_errorf(TSR_ERR_IO, "%s: write failed: %s", af->path, strerror(e ? e : EIO));
    } else if ((st = check_target(af->path)).code) {
        unlink(af->tmp); /* something not regular appeared at the target meanwhile */
    } else if (rename(af->tmp, af->path) != 0) {
        e = errno;
        unlink(af->tmp);
        st = tsr_errorf(TSR_ERR_IO, "%s: cannot rename %s into place: %s", af->path, af->tmp, strerror(e));
    } else {
        /* make the rename itself durable; failure here cannot undo the write */
        char *dcopy = strdup(af->path);
        TSR_ASSERT(dcopy);
        int dfd = open(dirname(dcopy), O_RDONLY);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dcopy);
    }
    atomic_free(af);
    return st;
}

tsr_status tsr_write_file_atomic(const char *path, const void *a, size_t la, const void *b, size_t lb) {
    tsr_atomic_file af;
    tsr_status st = tsr_atomic_open(&af, path);
    if (st.code) return st;
    errno = 0;
    bool ok = fwrite(a, 1, la, af.f) == la && (lb == 0 || fwrite(b, 1, lb, af.f) == lb);
    return tsr_atomic_commit(&af, ok);
}

/* ------------------------------------------------------ shipped models */

#ifndef TSR_MODELS_INSTALL_DIR
#define TSR_MODELS_INSTALL_DIR ""
#endif
#ifndef TSR_MODELS_SOURCE_DIR
#define TSR_MODELS_SOURCE_DIR ""
#endif
#ifndef TSR_SHARE_INSTALL_DIR
#define TSR_SHARE_INSTALL_DIR ""
#endif
#ifndef TSR_SOURCE_DIR
#define TSR_SOURCE_DIR ""
#endif

static bool exists_at(char *out, size_t n, const char *dir, const char *sub, const char *name) {
    if (!dir || !dir[0]) return false;
    int w = snprintf(out, n, "%s%s/%s", dir, sub, name);
    if (w < 0 || (size_t)w >= n) return false;
    struct stat sb;
    return stat(out, &sb) == 0;
}

/* the binary's folder and its parent (the prefix of an installed bin/) */
static void binary_dirs(char *bindir, char *parent) {
    ssize_t len = readlink("/proc/self/exe", bindir, PATH_MAX - 1);
    bindir[len > 0 ? len : 0] = 0;
    char *slash = strrchr(bindir, '/');
    if (slash) *slash = 0;
    else bindir[0] = 0;
    snprintf(parent, PATH_MAX, "%s", bindir);
    slash = strrchr(parent, '/');
    if (slash) *slash = 0;
    else parent[0] = 0;
}

bool tsr_find_model(const char *name, char *out, size_t n) {
    if (n == 0) return false;
    if (strncmp(name, "models/", 7) == 0) name += 7;
    char bindir[PATH_MAX], parent[PATH_MAX];
    binary_dirs(bindir, parent);
    if (exists_at(out, n, getenv("TESSERA_MODELS"), "", name) ||
        exists_at(out, n, parent, "/share/tessera/models", name) ||
        exists_at(out, n, TSR_MODELS_INSTALL_DIR, "", name) ||
        exists_at(out, n, bindir, "/models", name) || exists_at(out, n, parent, "/models", name) ||
        exists_at(out, n, TSR_MODELS_SOURCE_DIR, "", name) || exists_at(out, n, "models", "", name))
        return true;
    out[0] = 0;
    return false;
}

const char *tsr_find_model_or(const char *name, char *buf, size_t n) {
    return tsr_find_model(name, buf, n) ? buf : name;
}

bool tsr_find_shipped(const char *rel, char *out, size_t n) {
    if (n == 0) return false;
    char bindir[PATH_MAX], parent[PATH_MAX];
    binary_dirs(bindir, parent);
    if (exists_at(out, n, parent, "/share/tessera", rel) || exists_at(out, n, TSR_SHARE_INSTALL_DIR, "", rel) ||
        exists_at(out, n, TSR_SOURCE_DIR, "", rel) || exists_at(out, n, ".", "", rel))
        return true;
    out[0] = 0;
    return false;
}

const char *tsr_find_shipped_or(const char *rel, char *buf, size_t n) {
    return tsr_find_shipped(rel, buf, n) ? buf : rel;
}

bool tsr_resolve_recorded(const char *owner, const char *rec, char *out, size_t n) {
    struct stat sb;
    if (n == 0) return false;
    if (rec[0] == '/') {
        snprintf(out, n, "%s", rec);
        return stat(out, &sb) == 0;
    }
    char *dcopy = strdup(owner);
    TSR_ASSERT(dcopy);
    const char *dir = dirname(dcopy);
    const char *base = strrchr(rec, '/') ? strrchr(rec, '/') + 1 : rec;
    bool found = exists_at(out, n, dir, "", rec) || exists_at(out, n, dir, "", base) ||
                 tsr_find_model(rec, out, n);
    free(dcopy);
    if (!found) snprintf(out, n, "%s", rec);
    return found;
}

tsr_status tsr_file_fnv1a64(const char *path, char out[17]) {
    FILE *f = fopen(path, "rb");
    if (!f) return tsr_errorf(TSR_ERR_IO, "%s: cannot open", path);
    uint64_t h = 0xcbf29ce484222325ull;
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < n; i++) h = (h ^ buf[i]) * 0x100000001b3ull;
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad) return tsr_errorf(TSR_ERR_IO, "%s: read error", path);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    return tsr_ok();
}
