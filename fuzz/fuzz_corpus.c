/* libFuzzer target for the LM corpus files (src/io/corpus.c): the token
 * cache (tsr_corpus_tokens_load: the "TSRTOKS1" header, then int32 ids)
 * and the validation list (tsr_corpus_split_from_list, over a corpus of
 * four small .py files made once). The first byte picks which: even, the
 * input is a token file; odd, a list file. Any input loads or gives a
 * one-line status naming the file; loaded tokens are inside the vocab;
 * after a list every file is in one split and the missing count is in
 * range. Files go through /dev/shm (or /tmp). Build: see fuzz/README.md. */
#include "tessera/corpus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const FILES[4] = {"a.py", "b/c.py", "b/d e.py", "z.py"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char dir[96], path[128];
    static tsr_corpus c;
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/tsr_fuzz_corpus.%d", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm", (int)getpid());
        char p[160];
        snprintf(p, sizeof p, "%s/b", dir);
        mkdir(dir, 0700);
        mkdir(p, 0700);
        for (int i = 0; i < 4; i++) {
            snprintf(p, sizeof p, "%s/%s", dir, FILES[i]);
            FILE *f = fopen(p, "wb");
            if (!f) abort();
            fputs("x = 1\n", f);
            fclose(f);
        }
        if (tsr_corpus_list(&c, dir, ".py").code || c.n_files != 4) abort();
        snprintf(path, sizeof path, "%s.in", dir);
    }
    if (size < 1) return 0;
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);
    tsr_status st;
    if (!(data[0] & 1)) {
        tsr_corpus_tokens t;
        st = tsr_corpus_tokens_load(&t, path, 0);
        if (st.code == TSR_OK) {
            if (t.vocab_size < 1 || (t.n && !t.ids)) __builtin_trap();
            for (size_t i = 0; i < t.n; i++)
                if (t.ids[i] < 0 || (uint32_t)t.ids[i] >= t.vocab_size) __builtin_trap();
            tsr_corpus_tokens_free(&t);
        }
    } else {
        int missing = -1;
        st = tsr_corpus_split_from_list(&c, path, &missing);
        if (st.code == TSR_OK) {
            int64_t bytes;
            if (missing < 0 || tsr_corpus_count(&c, TSR_SPLIT_TRAIN, &bytes) + tsr_corpus_count(&c, TSR_SPLIT_VAL, &bytes) != 4)
                __builtin_trap();
        }
    }
    if (st.code != TSR_OK && (!strstr(st.msg, path) || strchr(st.msg, '\n'))) __builtin_trap();
    return 0;
}
