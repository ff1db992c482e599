/* libFuzzer target for the safetensors reader (src/io/safetensors.c):
 * any byte string must parse or fail with a status, never crash, leak or
 * read out of bounds; what parses is walked completely (every tensor
 * converted, every name and metadata key looked up). See fuzz/README.md. */
#include "tessera/safetensors.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_st_file f;
    tsr_status st = tsr_st_parse(data, size, "fuzz", &f);
    if (st.code != TSR_OK) {
        /* the message is one line and names the input */
        if (!strstr(st.msg, "fuzz") || strchr(st.msg, '\n')) __builtin_trap();
        if (f.t || f.block) __builtin_trap();
        return 0;
    }
    for (int i = 0; i < f.n; i++) {
        const tsr_st_tensor *t = &f.t[i];
        size_t es = tsr_st_dtype_size(t->dtype);
        /* data must lie inside the file image */
        const uint8_t *b = f.buf, *d = t->data;
        if (d < b || d + t->nbytes > b + f.len || t->nbytes % es) __builtin_trap();
        float *tmp = malloc(t->nbytes / es * sizeof(float) + 1);
        if (tmp) {
            tsr_st_to_f32(t, tmp);
            free(tmp);
        }
        if (tsr_st_find(&f, t->name) == NULL) __builtin_trap();
    }
    for (int i = 0; i < f.n_meta; i++)
        if (tsr_st_meta(&f, f.meta_keys[i]) == NULL) __builtin_trap();
    tsr_st_free(&f);
    return 0;
}
