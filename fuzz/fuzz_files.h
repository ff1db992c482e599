/* Shared by the fuzz targets whose reader takes several files: a folder of
 * this process (in /dev/shm, else /tmp), and one input cut into the files
 * at each line "#--#". Also the invariants of a loaded CTNet log, shared by
 * the CSV and MovieLens targets. */
#ifndef TSR_FUZZ_FILES_H
#define TSR_FUZZ_FILES_H

#include "tessera/ctnet.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "/dev/shm/tsr_fuzz_NAME.PID" (or /tmp), made once */
static inline const char *fuzz_dir(const char *name) {
    static char dir[96];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/tsr_fuzz_%s.%d", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm", name,
                 (int)getpid());
        mkdir(dir, 0700);
    }
    return dir;
}

/* writes [p, end) as the files DIR/names[0..n-1]: part k runs up to the
 * next "\n#--#\n" (the last to the end); false if a file cannot be written */
static inline bool fuzz_write_parts(const char *dir, const char *const *names, int n, const uint8_t *p,
                                    const uint8_t *end) {
    for (int k = 0; k < n; k++) {
        const uint8_t *stop = end;
        for (const uint8_t *q = p; k < n - 1 && q + 6 <= end; q++)
            if (!memcmp(q, "\n#--#\n", 6)) {
                stop = q + 1;
                break;
            }
        char path[200];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        FILE *f = fopen(path, "wb");
        if (!f) return false;
        fwrite(p, 1, (size_t)(stop - p), f);
        fclose(f);
        p = stop < end ? stop + 5 : end;
    }
    return true;
}

/* a loaded log: consistent rows, weekly periods, a batch of its last rows; frees it */
static inline void fuzz_ctnet_check_log(tsr_ctnet_log *g) {
    if (g->n < 1 || g->n_fields < 2 || g->n_fields > TSR_CTNET_MAX_FIELDS || !g->sorted) __builtin_trap();
    for (int64_t i = 0; i < g->n; i++) {
        if (g->domain[i] > TSR_CTNET_OTHER || g->label[i] > 1 || !g->user[i] || !g->item[i]) __builtin_trap();
        if (i && g->ts[i] < g->ts[i - 1]) __builtin_trap();
    }
    if (tsr_ctnet_log_periods(g, "week").code) __builtin_trap();
    tsr_ctnet_cfg cfg = tsr_ctnet_default_cfg();
    cfg.n_fields = g->n_fields;
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 20);
    int64_t rows[4];
    int64_t B = g->n < 4 ? g->n : 4;
    for (int64_t i = 0; i < B; i++) rows[i] = g->n - 1 - i;
    tsr_ctnet_make_batch(&c, g, rows, B, &cfg, NULL);
    tsr_ctx_free(&c);
    tsr_ctnet_log_free(g);
}

#endif
