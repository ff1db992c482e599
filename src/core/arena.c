/* tessera core: bump arena over a chain of 64-byte aligned blocks. */
#include "tessera/core.h"

#include <string.h>

struct tsr_arena_block {
    tsr_arena_block *next;
    size_t size, used;
    unsigned char *mem;
};

static tsr_arena_block *block_new(size_t size) {
    tsr_arena_block *b = malloc(sizeof *b);
    TSR_ASSERT(b);
    size = (size + 63) & ~(size_t)63;
    b->mem = aligned_alloc(64, size);
    TSR_ASSERT(b->mem);
    b->size = size;
    b->used = 0;
    b->next = NULL;
    return b;
}

void tsr_arena_init(tsr_arena *a, size_t block_size) {
    memset(a, 0, sizeof *a);
    a->block_size = block_size ? block_size : ((size_t)16 << 20);
}

void *tsr_arena_alloc(tsr_arena *a, size_t bytes) {
    size_t need = (bytes + 63) & ~(size_t)63;
    if (need == 0) need = 64;
    if (!a->head || a->head->used + need > a->head->size) {
        tsr_arena_block *nb = NULL;
        /* reuse a block already chained after head (kept from before reset) */
        if (a->head && a->head->next && a->head->next->size >= need) {
            nb = a->head->next;
            nb->used = 0;
        } else {
            size_t sz = need > a->block_size ? need : a->block_size;
            nb = block_new(sz);
            if (a->head) {
                nb->next = a->head->next;
                a->head->next = nb;
            }
        }
        if (!a->first) a->first = nb;
        a->head = nb;
    }
    void *p = a->head->mem + a->head->used;
    a->head->used += need;
    a->used_total += need;
    if (a->used_total > a->peak) a->peak = a->used_total;
    return p;
}

void *tsr_arena_calloc(tsr_arena *a, size_t bytes) {
    void *p = tsr_arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}

void tsr_arena_reset(tsr_arena *a) {
    if (!a->first) return;
    /* If the step needed several blocks, replace them by one block big
     * enough for the peak, so the next step runs in a single block. */
    if (a->first->next) {
        size_t peak = a->peak;
        tsr_arena_block *b = a->first;
        while (b) {
            tsr_arena_block *n = b->next;
            free(b->mem);
            free(b);
            b = n;
        }
        size_t sz = peak > a->block_size ? peak + peak / 8 : a->block_size;
        a->first = block_new(sz);
    }
    a->first->used = 0;
    a->head = a->first;
    a->used_total = 0;
}

tsr_arena_pos tsr_arena_mark(const tsr_arena *a) {
    tsr_arena_pos m = {a->head, a->head ? a->head->used : 0, a->used_total};
    return m;
}

void tsr_arena_rewind(tsr_arena *a, tsr_arena_pos m) {
    if (!m.head) { /* marked before the first block: rewind to its start */
        if (a->first) a->first->used = 0;
        a->head = a->first;
    } else {
        a->head = m.head;
        a->head->used = m.used;
    }
    a->used_total = m.used_total;
}

void tsr_arena_free(tsr_arena *a) {
    tsr_arena_block *b = a->first;
    while (b) {
        tsr_arena_block *n = b->next;
        free(b->mem);
        free(b);
        b = n;
    }
    memset(a, 0, sizeof *a);
}
