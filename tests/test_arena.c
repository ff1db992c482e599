/* Tests for the step arena's mark and rewind (tsr_arena_mark /
 * tsr_arena_rewind): memory after a mark is handed out again, memory
 * before it is untouched, blocks chained past the mark are reused rather
 * than grown, a mark taken on an empty arena rewinds to its start, and
 * the peak counts what was live at once. */
#include "testutil.h"

#include <string.h>

static void test_same_block(void) {
    tsr_arena a;
    tsr_arena_init(&a, 1 << 16);
    unsigned char *keep = tsr_arena_alloc(&a, 1000);
    memset(keep, 7, 1000);
    tsr_arena_pos m = tsr_arena_mark(&a);
    size_t before = a.used_total;
    void *p1 = tsr_arena_alloc(&a, 4096);
    memset(p1, 1, 4096);
    TU_CHECK(a.used_total > before, "allocation after the mark counted");
    tsr_arena_rewind(&a, m);
    TU_CHECK(a.used_total == before, "used_total back to the mark: %zu vs %zu", a.used_total, before);
    void *p2 = tsr_arena_alloc(&a, 4096);
    TU_CHECK(p2 == p1, "the rewound memory is handed out again");
    int intact = 1;
    for (int i = 0; i < 1000; i++) intact &= keep[i] == 7;
    TU_CHECK(intact, "memory before the mark untouched");
    tsr_arena_free(&a);
}

/* stages that overflow the first block: after a rewind the chained block is
 * reused (the same memory each time) and the peak is one stage */
static void test_blocks(void) {
    tsr_arena a;
    tsr_arena_init(&a, 1 << 12);
    tsr_arena_alloc(&a, 1024);
    tsr_arena_pos m = tsr_arena_mark(&a);
    void *first_big = NULL;
    for (int stage = 0; stage < 3; stage++) {
        void *big = tsr_arena_alloc(&a, 3 << 12); /* bigger than the block size: its own block */
        memset(big, stage, 3 << 12);
        if (stage == 0) first_big = big;
        TU_CHECK(big == first_big, "stage %d reuses the chained block", stage);
        tsr_arena_rewind(&a, m);
    }
    TU_CHECK(a.peak == 1024 + (3 << 12), "peak is one stage: %zu", a.peak);
    /* a reset after rewinds folds the chain into one block of the peak:
     * a whole stage then fits in one block, contiguous after the kept part */
    tsr_arena_reset(&a);
    unsigned char *k = tsr_arena_alloc(&a, 1024), *q = tsr_arena_alloc(&a, 3 << 12);
    TU_CHECK(q == k + 1024, "after reset the stage follows in the same block");
    tsr_arena_free(&a);
}

static void test_empty_mark(void) {
    tsr_arena a;
    tsr_arena_init(&a, 1 << 12);
    tsr_arena_pos m = tsr_arena_mark(&a); /* no block yet */
    void *p1 = tsr_arena_alloc(&a, 100);
    tsr_arena_rewind(&a, m);
    TU_CHECK(a.used_total == 0, "rewound to empty");
    void *p2 = tsr_arena_alloc(&a, 100);
    TU_CHECK(p1 == p2, "the first block's start again");
    tsr_arena_free(&a);
}

int main(void) {
    test_same_block();
    test_blocks();
    test_empty_mark();
    return tu_finish("arena");
}
