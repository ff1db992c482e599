/* libFuzzer target for ctnet's MovieLens loaders (tsr_ctnet_load_movielens,
 * src/models/ctnet/data.c: ml-latest-small's movies.csv, tags.csv and
 * ratings.csv, with quoted titles; RecBole's ml-100k.item, ml-100k.user
 * and ml-100k.inter), then the periods and a batch as fuzz_ctnet_log. The
 * first byte picks the layout; the rest is its three files, separated by
 * the line "#--#". Any input loads or gives a one-line status; a loaded
 * log has consistent rows. Files go through a folder in /dev/shm (or /tmp).
 * Build: see fuzz/README.md. */
#include "tessera/ctnet.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const LATEST[3] = {"movies.csv", "tags.csv", "ratings.csv"};
static const char *const ML100K[3] = {"ml-100k.item", "ml-100k.user", "ml-100k.inter"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/tsr_fuzz_movielens.%d", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm",
                 (int)getpid());
        mkdir(dir, 0700);
    }
    if (size < 1) return 0;
    const bool latest = !(data[0] & 1);
    const char *const *names = latest ? LATEST : ML100K;
    const char *const *other = latest ? ML100K : LATEST;
    for (int k = 0; k < 3; k++) { /* the other layout's files must not be there */
        char path[160];
        snprintf(path, sizeof path, "%s/%s", dir, other[k]);
        unlink(path);
    }
    const uint8_t *p = data + 1, *end = data + size;
    for (int k = 0; k < 3; k++) { /* part k up to the next "\n#--#\n" (the last: to the end) */
        const uint8_t *stop = end;
        for (const uint8_t *q = p; k < 2 && q + 6 <= end; q++)
            if (!memcmp(q, "\n#--#\n", 6)) {
                stop = q + 1;
                break;
            }
        char path[160];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        FILE *f = fopen(path, "wb");
        if (!f) return 0;
        fwrite(p, 1, (size_t)(stop - p), f);
        fclose(f);
        p = stop < end ? stop + 5 : end;
    }
    tsr_ctnet_log g;
    tsr_status s = tsr_ctnet_load_movielens(dir, "Action|Comedy|Drama", "Animation", &g);
    if (s.code != TSR_OK) {
        if (!strstr(s.msg, dir) || strchr(s.msg, '\n')) __builtin_trap();
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
