/* libFuzzer target for ctnet's MovieLens loaders (tsr_ctnet_load_movielens,
 * src/models/ctnet/data.c: ml-latest-small's movies.csv, tags.csv and
 * ratings.csv, with quoted titles; RecBole's ml-100k.item, ml-100k.user
 * and ml-100k.inter), then the periods and a batch as fuzz_ctnet_log. The
 * first byte picks the layout; the rest is its three files, separated by
 * the line "#--#". Any input loads or gives a one-line status; a loaded
 * log has consistent rows. Files go through a folder in /dev/shm (or /tmp).
 * Build: see fuzz/README.md. */
#include "fuzz_files.h"

static const char *const LATEST[3] = {"movies.csv", "tags.csv", "ratings.csv"};
static const char *const ML100K[3] = {"ml-100k.item", "ml-100k.user", "ml-100k.inter"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = fuzz_dir("movielens");
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
    if (!fuzz_write_parts(dir, names, 3, p, end)) return 0;
    tsr_ctnet_log g;
    tsr_status s = tsr_ctnet_load_movielens(dir, "Action|Comedy|Drama", "Animation", &g);
    if (s.code != TSR_OK) {
        if (!strstr(s.msg, dir) || strchr(s.msg, '\n')) __builtin_trap();
        return 0;
    }
    fuzz_ctnet_check_log(&g);
    return 0;
}
