/* tessera io: IDX files (the MNIST / Fashion-MNIST container), read through
 * zlib so gzip-compressed and plain files both work, the Fashion-MNIST
 * loader, and the seeded, resumable shuffled batcher used by trainers.
 * Every user-visible failure returns a tsr_status naming the file. */
#include "tessera/data.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define IDX_TYPE_U8 0x08
/* Far above any real IDX file; a corrupt header cannot make us allocate
 * absurd amounts before the payload proves short. */
#define IDX_MAX_BYTES ((int64_t)1 << 32)

/* Reads exactly n bytes; returns how many were read, or -1 on a zlib error
 * (corrupt gzip stream) with the message in *err. */
static int64_t gz_read_all(gzFile f, void *dst, int64_t n, const char **err) {
    int64_t got = 0;
    uint8_t *p = dst;
    while (got < n) {
        int64_t want = n - got;
        unsigned chunk = want > (1 << 30) ? (1u << 30) : (unsigned)want;
        int r = gzread(f, p + got, chunk);
        if (r < 0) {
            int zerr = 0;
            *err = gzerror(f, &zerr);
            return -1;
        }
        if (r == 0) break;
        got += r;
    }
    return got;
}

static const char *type_name(int t) {
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown";
    }
}

tsr_status tsr_idx_read(const char *path, tsr_idx *out) {
    memset(out, 0, sizeof *out);
    FILE *probe = fopen(path, "rb");
    if (!probe) return tsr_errorf(TSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fclose(probe);
    gzFile f = gzopen(path, "rb");
    if (!f) return tsr_errorf(TSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    const char *zerr = NULL;
    tsr_status st = tsr_ok();
    uint8_t hdr[4];
    int64_t r = gz_read_all(f, hdr, 4, &zerr);
    if (r < 0) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: corrupt compressed data: %s", path, zerr);
        goto done;
    }
    if (r < 4) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: truncated IDX header (%lld of 4 bytes)", path,
                        (long long)r);
        goto done;
    }
    if (hdr[0] != 0 || hdr[1] != 0) {
        st = tsr_errorf(TSR_ERR_FORMAT,
                        "%s: bad magic %02x %02x %02x %02x (not an IDX file)", path, hdr[0],
                        hdr[1], hdr[2], hdr[3]);
        goto done;
    }
    if (hdr[2] != IDX_TYPE_U8) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: IDX element type 0x%02x (%s) unsupported; need unsigned byte",
                        path, hdr[2], type_name(hdr[2]));
        goto done;
    }
    int ndim = hdr[3];
    if (ndim < 1 || ndim > 4) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: IDX has %d dimensions; 1 to 4 supported", path, ndim);
        goto done;
    }
    uint8_t dims[16];
    r = gz_read_all(f, dims, 4 * ndim, &zerr);
    if (r < 0) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: corrupt compressed data: %s", path, zerr);
        goto done;
    }
    if (r < 4 * ndim) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: truncated IDX header (dimensions)", path);
        goto done;
    }
    int64_t total = 1;
    for (int i = 0; i < ndim; i++) {
        const uint8_t *d = dims + 4 * i;
        int64_t v = ((int64_t)d[0] << 24) | ((int64_t)d[1] << 16) | ((int64_t)d[2] << 8) | d[3];
        if (v <= 0) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: IDX dimension %d is %lld", path, i, (long long)v);
            goto done;
        }
        out->shape[i] = v;
        if (v > IDX_MAX_BYTES / total) { /* checked before multiplying: no overflow */
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: IDX payload too large", path);
            goto done;
        }
        total *= v;
    }
    out->ndim = ndim;
    /* grow the buffer as data arrives, so a small file that claims a huge
     * payload costs memory in proportion to what it holds, not its header */
    int64_t cap = total < ((int64_t)1 << 20) ? total : ((int64_t)1 << 20);
    out->data = malloc((size_t)cap);
    r = 0;
    while (out->data) {
        int64_t got = gz_read_all(f, out->data + r, cap - r, &zerr);
        if (got < 0) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: corrupt compressed data: %s", path, zerr);
            goto done;
        }
        r += got;
        if (r < cap || cap == total) break;
        cap = cap * 2 < total ? cap * 2 : total;
        uint8_t *grown = realloc(out->data, (size_t)cap);
        if (!grown) {
            free(out->data);
            out->data = NULL;
        } else {
            out->data = grown;
        }
    }
    if (!out->data) {
        st = tsr_errorf(TSR_ERR_NOMEM, "%s: cannot allocate %lld bytes", path, (long long)cap);
        goto done;
    }
    if (r < total) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: truncated IDX payload (%lld of %lld bytes)", path,
                        (long long)r, (long long)total);
        goto done;
    }
    uint8_t extra;
    r = gz_read_all(f, &extra, 1, &zerr);
    if (r != 0) {
        st = r < 0 ? tsr_errorf(TSR_ERR_FORMAT, "%s: corrupt compressed data: %s", path, zerr)
                   : tsr_errorf(TSR_ERR_FORMAT, "%s: trailing bytes after the IDX payload", path);
        goto done;
    }
done:
    gzclose(f);
    if (st.code != TSR_OK) tsr_idx_free(out);
    return st;
}

void tsr_idx_free(tsr_idx *x) {
    free(x->data);
    memset(x, 0, sizeof *x);
}

/* ------------------------------------------------------------ Fashion-MNIST */

#define MNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

/* The canonical names, gzip first; a decompressed copy works as well. */
static tsr_status read_one(const char *dir, const char *stem, tsr_idx *out) {
    char gz[1024], plain[1024];
    int n1 = snprintf(gz, sizeof gz, "%s/%s.gz", dir, stem);
    int n2 = snprintf(plain, sizeof plain, "%s/%s", dir, stem);
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof gz)
        return tsr_errorf(TSR_ERR_ARG, "data directory path too long");
    FILE *f = fopen(gz, "rb");
    if (f) {
        fclose(f);
        return tsr_idx_read(gz, out);
    }
    f = fopen(plain, "rb");
    if (f) {
        fclose(f);
        return tsr_idx_read(plain, out);
    }
    return tsr_errorf(TSR_ERR_IO, "%s: not found (nor %s)", gz, stem);
}

tsr_status tsr_mnist_load(const char *dir, bool train, tsr_mnist *out) {
    memset(out, 0, sizeof *out);
    if (!dir) dir = MNIST_DEFAULT_DIR;
    FILE *d = fopen(dir, "r");
    if (!d) return tsr_errorf(TSR_ERR_IO, "%s: cannot open data directory: %s", dir, strerror(errno));
    fclose(d);
    const char *pre = train ? "train" : "t10k";
    char stem[64];
    snprintf(stem, sizeof stem, "%s-images-idx3-ubyte", pre);
    tsr_status st = read_one(dir, stem, &out->images);
    if (st.code) return st;
    if (out->images.ndim != 3 || out->images.shape[1] != 28 || out->images.shape[2] != 28) {
        st = tsr_errorf(TSR_ERR_SHAPE, "%s/%s: images must be (N,28,28), got %d dims (%lld,%lld,...)",
                        dir, stem, out->images.ndim, (long long)out->images.shape[0],
                        (long long)out->images.shape[1]);
        tsr_mnist_free(out);
        return st;
    }
    snprintf(stem, sizeof stem, "%s-labels-idx1-ubyte", pre);
    st = read_one(dir, stem, &out->labels);
    if (st.code) {
        tsr_mnist_free(out);
        return st;
    }
    if (out->labels.ndim != 1 || out->labels.shape[0] != out->images.shape[0]) {
        st = tsr_errorf(TSR_ERR_SHAPE, "%s/%s: %lld labels for %lld images", dir, stem,
                        (long long)out->labels.shape[0], (long long)out->images.shape[0]);
        tsr_mnist_free(out);
        return st;
    }
    for (int64_t i = 0; i < out->labels.shape[0]; i++)
        if (out->labels.data[i] > 9) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s/%s: label %d at index %lld is outside 0..9", dir,
                            stem, out->labels.data[i], (long long)i);
            tsr_mnist_free(out);
            return st;
        }
    out->n = out->images.shape[0];
    return tsr_ok();
}

void tsr_mnist_free(tsr_mnist *m) {
    tsr_idx_free(&m->images);
    tsr_idx_free(&m->labels);
    m->n = 0;
}

/* ----------------------------------------------------------------- batcher */

/* The permutation of an epoch depends on (seed, epoch) only: a run that
 * stops anywhere can rebuild it from the saved cursor. */
static void batcher_shuffle(tsr_batcher *b) {
    tsr_rng r;
    tsr_rng_seed(&r, b->seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(b->epoch + 1)));
    for (int64_t i = 0; i < b->n; i++) b->order[i] = (int32_t)i;
    tsr_rng_shuffle_i32(&r, b->order, b->n);
}

void tsr_batcher_init(tsr_batcher *b, int64_t n, int64_t batch, uint64_t seed) {
    TSR_ASSERT(n > 0 && n <= INT32_MAX && batch > 0);
    memset(b, 0, sizeof *b);
    b->n = n;
    b->batch = batch;
    b->seed = seed;
    b->order = malloc(sizeof(int32_t) * (size_t)n);
    TSR_ASSERT(b->order);
    batcher_shuffle(b);
}

int64_t tsr_batcher_next(tsr_batcher *b, int32_t *idx, bool drop_last) {
    int64_t left = b->n - b->index;
    if (left <= 0 || (drop_last && left < b->batch)) {
        b->epoch++;
        b->index = 0;
        batcher_shuffle(b);
        left = b->n;
    }
    int64_t k = left < b->batch ? left : b->batch;
    if (drop_last && k < b->batch) k = 0; /* batch larger than the data set */
    memcpy(idx, b->order + b->index, sizeof(int32_t) * (size_t)k);
    b->index += k;
    return k;
}

void tsr_batcher_seek(tsr_batcher *b, int64_t epoch, int64_t index) {
    TSR_ASSERT(epoch >= 0 && index >= 0 && index <= b->n);
    b->epoch = epoch;
    b->index = index;
    batcher_shuffle(b);
}

void tsr_batcher_free(tsr_batcher *b) {
    free(b->order);
    memset(b, 0, sizeof *b);
}

static const char *const k_fmnist_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

const char *tsr_fmnist_class_name(int c) { return c >= 0 && c < 10 ? k_fmnist_names[c] : NULL; }

int tsr_fmnist_class_find(const char *name) {
    for (int c = 0; name && c < 10; c++)
        if (strcasecmp(name, k_fmnist_names[c]) == 0) return c;
    return -1;
}
