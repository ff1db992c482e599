/* Tests for src/io/idx.c: IDX parsing (plain and gzip), every rejection
 * path on hand-made bad files in /tmp, the Fashion-MNIST loader when the
 * data set is installed, and the batcher's determinism and exact resume. */
#include "testutil.h"
#include "tessera/data.h"

#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char g_dir[256];

static void write_file(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    TSR_ASSERT(f);
    TSR_ASSERT(fwrite(buf, 1, n, f) == n);
    fclose(f);
}

static void write_gz(const char *path, const void *buf, size_t n) {
    gzFile f = gzopen(path, "wb");
    TSR_ASSERT(f);
    TSR_ASSERT(gzwrite(f, buf, (unsigned)n) == (int)n);
    gzclose(f);
}

/* IDX u8 image with dims (a,b,c) and payload i%251 */
static size_t make_idx3(uint8_t *buf, int a, int b, int c) {
    size_t k = 0;
    buf[k++] = 0, buf[k++] = 0, buf[k++] = 8, buf[k++] = 3;
    int d[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        buf[k++] = (uint8_t)(d[i] >> 24), buf[k++] = (uint8_t)(d[i] >> 16);
        buf[k++] = (uint8_t)(d[i] >> 8), buf[k++] = (uint8_t)d[i];
    }
    for (int i = 0; i < a * b * c; i++) buf[k++] = (uint8_t)(i % 251);
    return k;
}

static void expect_err(const char *path, const char *needle) {
    tsr_idx x;
    tsr_status st = tsr_idx_read(path, &x);
    TU_CHECK(st.code != TSR_OK, "%s: expected an error", path);
    TU_CHECK(strstr(st.msg, path) != NULL, "error does not name the file: %s", st.msg);
    TU_CHECK(strstr(st.msg, needle) != NULL, "error '%s' lacks '%s'", st.msg, needle);
    TU_CHECK(x.data == NULL, "data left allocated on error");
}

static void test_parse(void) {
    uint8_t buf[4096];
    size_t n = make_idx3(buf, 3, 4, 5);
    char p[512], pg[512];
    snprintf(p, sizeof p, "%s/ok.idx", g_dir);
    snprintf(pg, sizeof pg, "%s/ok.idx.gz", g_dir);
    write_file(p, buf, n);
    write_gz(pg, buf, n);
    for (int g = 0; g < 2; g++) {
        tsr_idx x;
        tsr_status st = tsr_idx_read(g ? pg : p, &x);
        TU_CHECK(st.code == TSR_OK, "read: %s", st.msg);
        if (st.code) continue;
        TU_CHECK(x.ndim == 3 && x.shape[0] == 3 && x.shape[1] == 4 && x.shape[2] == 5, "shape");
        bool same = true;
        for (int i = 0; i < 60; i++) same &= x.data[i] == (uint8_t)(i % 251);
        TU_CHECK(same, "payload");
        tsr_idx_free(&x);
    }

    char q[512];
    snprintf(q, sizeof q, "%s/missing.idx", g_dir);
    expect_err(q, "cannot open");

    /* truncated payload, plain and gzip */
    snprintf(q, sizeof q, "%s/trunc.idx", g_dir);
    write_file(q, buf, n - 7);
    expect_err(q, "truncated");
    snprintf(q, sizeof q, "%s/trunc.idx.gz", g_dir);
    write_gz(q, buf, n - 7);
    expect_err(q, "truncated");
    /* truncated header */
    snprintf(q, sizeof q, "%s/trunchdr.idx", g_dir);
    write_file(q, buf, 9);
    expect_err(q, "truncated");
    snprintf(q, sizeof q, "%s/empty.idx", g_dir);
    write_file(q, buf, 0);
    expect_err(q, "truncated");
    /* garbage */
    uint8_t junk[300];
    for (int i = 0; i < 300; i++) junk[i] = (uint8_t)(i * 37 + 11);
    snprintf(q, sizeof q, "%s/garbage.idx", g_dir);
    write_file(q, junk, sizeof junk);
    expect_err(q, "bad magic");
    /* a gzip stream cut in the middle */
    {
        char full[512];
        snprintf(full, sizeof full, "%s/full.idx.gz", g_dir);
        static uint8_t img[16 + 40 * 28 * 28 + 16];
        size_t ni = make_idx3(img, 40, 28, 28);
        for (size_t i = 16; i < ni; i++) img[i] = (uint8_t)((i * 2654435761u) >> 13);
        write_gz(full, img, ni);
        FILE *f = fopen(full, "rb");
        static uint8_t gzbuf[65536];
        size_t gl = fread(gzbuf, 1, sizeof gzbuf, f);
        fclose(f);
        snprintf(q, sizeof q, "%s/cut.idx.gz", g_dir);
        write_file(q, gzbuf, gl / 2);
        tsr_idx x;
        tsr_status st = tsr_idx_read(q, &x);
        TU_CHECK(st.code != TSR_OK && strstr(st.msg, q), "cut gzip: %s", st.msg);
        /* flip bytes inside the deflate stream */
        for (size_t i = 40; i < 60 && i < gl; i++) gzbuf[i] ^= 0xA5;
        snprintf(q, sizeof q, "%s/corrupt.idx.gz", g_dir);
        write_file(q, gzbuf, gl);
        st = tsr_idx_read(q, &x);
        TU_CHECK(st.code != TSR_OK && strstr(st.msg, q), "corrupt gzip: %s", st.msg);
    }
    /* wrong element type (float) */
    uint8_t fl[8 + 4];
    memcpy(fl, buf, 8);
    fl[2] = 0x0D, fl[3] = 1;
    fl[4] = 0, fl[5] = 0, fl[6] = 0, fl[7] = 1;
    snprintf(q, sizeof q, "%s/float.idx", g_dir);
    write_file(q, fl, 12);
    expect_err(q, "unsupported");
    /* zero and too many dims */
    uint8_t z[8] = {0, 0, 8, 0};
    snprintf(q, sizeof q, "%s/zerodim.idx", g_dir);
    write_file(q, z, 4);
    expect_err(q, "dimensions");
    uint8_t zd[8] = {0, 0, 8, 1, 0, 0, 0, 0};
    snprintf(q, sizeof q, "%s/zerosize.idx", g_dir);
    write_file(q, zd, 8);
    expect_err(q, "dimension 0");
    /* huge claimed size */
    uint8_t hz[16] = {0, 0, 8, 3, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 2};
    snprintf(q, sizeof q, "%s/huge.idx", g_dir);
    write_file(q, hz, 16);
    expect_err(q, "too large");
    /* trailing bytes */
    buf[n] = 1;
    snprintf(q, sizeof q, "%s/trail.idx", g_dir);
    write_file(q, buf, n + 1);
    expect_err(q, "trailing");
}

static void test_mnist_dir(void) {
    /* a data dir with wrong image dims */
    char d[512], p[600];
    snprintf(d, sizeof d, "%s/fm_bad", g_dir);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", d);
    TSR_ASSERT(system(cmd) == 0);
    uint8_t buf[4096];
    size_t n = make_idx3(buf, 2, 27, 28);
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", d);
    write_file(p, buf, n);
    tsr_mnist m;
    tsr_status st = tsr_mnist_load(d, false, &m);
    TU_CHECK(st.code == TSR_ERR_SHAPE && strstr(st.msg, "(N,28,28)"), "bad dims: %s", st.msg);
    n = make_idx3(buf, 2, 28, 28);
    write_file(p, buf, n);
    st = tsr_mnist_load(d, false, &m);
    TU_CHECK(st.code == TSR_ERR_IO && strstr(st.msg, "labels"), "missing labels: %s", st.msg);
    uint8_t lab[8 + 3] = {0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3};
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", d);
    write_gz(p, lab, sizeof lab);
    st = tsr_mnist_load(d, false, &m);
    TU_CHECK(st.code == TSR_ERR_SHAPE && strstr(st.msg, "3 labels for 2 images"), "count: %s", st.msg);
    uint8_t lab2[8 + 2] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 12};
    write_gz(p, lab2, sizeof lab2);
    st = tsr_mnist_load(d, false, &m);
    TU_CHECK(st.code == TSR_ERR_FORMAT && strstr(st.msg, "label 12"), "label range: %s", st.msg);
    lab2[9] = 9;
    write_gz(p, lab2, sizeof lab2);
    st = tsr_mnist_load(d, false, &m);
    TU_CHECK(st.code == TSR_OK && m.n == 2 && m.labels.data[1] == 9, "small set: %s", st.msg);
    if (!st.code) tsr_mnist_free(&m);
    st = tsr_mnist_load("/nonexistent/fm", true, &m);
    TU_CHECK(st.code == TSR_ERR_IO && strstr(st.msg, "/nonexistent/fm"), "no dir: %s", st.msg);

    /* the installed data set, when present */
    if (access("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", R_OK) == 0) {
        st = tsr_mnist_load(NULL, false, &m);
        TU_CHECK(st.code == TSR_OK && m.n == 10000, "fashion-mnist test: %s", st.msg);
        if (!st.code) {
            int hist[10] = {0};
            for (int64_t i = 0; i < m.n; i++) hist[m.labels.data[i]]++;
            bool bal = true;
            for (int k = 0; k < 10; k++) bal &= hist[k] == 1000;
            TU_CHECK(bal, "fashion-mnist test labels are 1000 per class");
            /* first test label of Fashion-MNIST is 9 (ankle boot) */
            TU_CHECK(m.labels.data[0] == 9, "first label %d", m.labels.data[0]);
            tsr_mnist_free(&m);
        }
    } else {
        fprintf(stderr, "note: Fashion-MNIST not installed; skipping the real-data check\n");
    }
}

static void test_batcher(void) {
    const int64_t n = 103, bs = 10;
    tsr_batcher a, b;
    tsr_batcher_init(&a, n, bs, 42);
    tsr_batcher_init(&b, n, bs, 42);
    int32_t ia[16], ib[16];
    /* one epoch without drop_last covers every sample exactly once */
    int seen[103] = {0};
    int64_t tot = 0, k;
    int batches = 0;
    while (a.epoch == 0 && (k = tsr_batcher_next(&a, ia, false)) > 0) {
        for (int64_t i = 0; i < k; i++) seen[ia[i]]++;
        tot += k;
        batches++;
        if (a.index == n) break;
    }
    bool once = tot == n;
    for (int i = 0; i < n; i++) once &= seen[i] == 1;
    TU_CHECK(once && batches == 11, "epoch covers each sample once (%lld, %d batches)", (long long)tot, batches);
    /* next call starts epoch 1 with a different order */
    k = tsr_batcher_next(&a, ia, false);
    TU_CHECK(a.epoch == 1 && k == bs, "epoch advance");
    int32_t e0[10];
    tsr_batcher_seek(&b, 0, 0);
    tsr_batcher_next(&b, e0, false);
    TU_CHECK(memcmp(e0, ia, sizeof e0) != 0, "epochs reshuffle");
    /* drop_last: 10 full batches per epoch, then the next epoch */
    tsr_batcher_seek(&a, 0, 0);
    for (int i = 0; i < 10; i++) TU_CHECK(tsr_batcher_next(&a, ia, true) == bs, "full batch");
    k = tsr_batcher_next(&a, ia, true);
    TU_CHECK(k == bs && a.epoch == 1 && a.index == bs, "drop_last skips remainder");
    /* resume: a cursor saved mid-stream reproduces the remaining batches */
    tsr_batcher_seek(&a, 0, 0);
    for (int i = 0; i < 17; i++) tsr_batcher_next(&a, ia, true);
    int64_t ep = a.epoch, ix = a.index;
    tsr_batcher c;
    tsr_batcher_init(&c, n, bs, 42);
    tsr_batcher_seek(&c, ep, ix);
    bool same = true;
    for (int i = 0; i < 25; i++) {
        int64_t ka = tsr_batcher_next(&a, ia, true), kc = tsr_batcher_next(&c, ib, true);
        same &= ka == kc && memcmp(ia, ib, sizeof(int32_t) * (size_t)ka) == 0;
    }
    TU_CHECK(same, "resume from cursor is exact");
    /* different seed, different order */
    tsr_batcher d;
    tsr_batcher_init(&d, n, bs, 43);
    tsr_batcher_next(&d, ib, false);
    TU_CHECK(memcmp(e0, ib, sizeof e0) != 0, "seed changes order");
    /* batch larger than the set */
    tsr_batcher e;
    tsr_batcher_init(&e, 5, 8, 1);
    TU_CHECK(tsr_batcher_next(&e, ib, false) == 5, "short batch");
    TU_CHECK(tsr_batcher_next(&e, ib, true) == 0, "drop_last with batch > n gives 0");
    tsr_batcher_free(&a), tsr_batcher_free(&b), tsr_batcher_free(&c), tsr_batcher_free(&d),
        tsr_batcher_free(&e);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/tsr_test_idx_%d", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", g_dir);
    TSR_ASSERT(system(cmd) == 0);
    test_parse();
    test_mnist_dir();
    test_batcher();
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", g_dir);
    return tu_finish("idx");
}
