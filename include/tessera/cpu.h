/* tessera core: the kernel level, chosen once at start-up.
 *
 * One binary carries every kernel variant; each kernel file keeps a table
 * with one entry per level and calls through the entry of tsr_cpu_level().
 * The level is the best the CPU supports (cpuid), or the one forced with
 * TESSERA_CPU=scalar|avx2|avx512|avx512bf16 (for tests and benches).
 *
 * Contract: at a given level, results do not depend on the batch size, the
 * batch split or the thread count. Across levels they agree within the
 * tolerances documented in docs/lm.md ("Speed on AVX2 and AVX-512"). */
#ifndef TESSERA_CPU_H
#define TESSERA_CPU_H

#include "tessera/core.h"

typedef enum {
    TSR_CPU_SCALAR = 0,     /* any x86-64-v2 CPU: portable C */
    TSR_CPU_AVX2 = 1,       /* x86-64-v3: AVX2 + FMA */
    TSR_CPU_AVX512 = 2,     /* x86-64-v4: AVX-512 F/BW/DQ/VL */
    TSR_CPU_AVX512BF16 = 3, /* plus AVX-512 BF16 and VNNI */
    TSR_CPU_LEVELS = 4
} tsr_cpu_level_t;

/* "scalar", "avx2", "avx512", "avx512bf16" */
const char *tsr_cpu_level_name(int level);
/* best level this CPU (and OS) supports */
int tsr_cpu_best_level(void);
/* the level in use; the first call settles it (TESSERA_CPU if valid) */
int tsr_cpu_level(void);
/* Settles the level from TESSERA_CPU (or the best one): an unknown or
 * unsupported value is an error naming it; the level then stays the best.
 * The CLI calls this first so a bad value is reported, not ignored. */
tsr_status tsr_cpu_init(void);
/* switch levels (tests loop over them); error if the CPU lacks it */
tsr_status tsr_cpu_set_level(int level);

#endif
