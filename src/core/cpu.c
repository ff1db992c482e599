/* tessera core: cpuid detection of the kernel level and TESSERA_CPU. */
#include "tessera/cpu.h"

#include <string.h>

static const char *const g_names[TSR_CPU_LEVELS] = {"scalar", "avx2", "avx512", "avx512bf16"};
static int g_level = -1;

const char *tsr_cpu_level_name(int level) {
    return level >= 0 && level < TSR_CPU_LEVELS ? g_names[level] : "unknown";
}

int tsr_cpu_best_level(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    /* libgcc's checks include the OS's register-state support (xgetbv) */
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return TSR_CPU_SCALAR;
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl") ||
        !__builtin_cpu_supports("avx512cd"))
        return TSR_CPU_AVX2;
    if (!__builtin_cpu_supports("avx512bf16") || !__builtin_cpu_supports("avx512vnni")) return TSR_CPU_AVX512;
    return TSR_CPU_AVX512BF16;
#else
    return TSR_CPU_SCALAR;
#endif
}

tsr_status tsr_cpu_init(void) {
    int best = tsr_cpu_best_level();
    g_level = best;
    const char *e = getenv("TESSERA_CPU");
    if (!e || !*e) return tsr_ok();
    for (int l = 0; l < TSR_CPU_LEVELS; l++)
        if (strcmp(e, g_names[l]) == 0) {
            if (l > best)
                return tsr_errorf(TSR_ERR_ARG,
                                  "TESSERA_CPU=%s: this CPU supports only up to '%s'; unset it or pick a lower level",
                                  e, g_names[best]);
            g_level = l;
            return tsr_ok();
        }
    return tsr_errorf(TSR_ERR_ARG, "TESSERA_CPU=%s: unknown kernel level; use scalar, avx2, avx512 or avx512bf16", e);
}

int tsr_cpu_level(void) {
    if (g_level < 0) (void)tsr_cpu_init();
    return g_level;
}

tsr_status tsr_cpu_set_level(int level) {
    if (level < 0 || level >= TSR_CPU_LEVELS)
        return tsr_errorf(TSR_ERR_ARG, "kernel level %d out of range", level);
    if (level > tsr_cpu_best_level())
        return tsr_errorf(TSR_ERR_ARG, "kernel level '%s' is not supported by this CPU (best: '%s')",
                          g_names[level], g_names[tsr_cpu_best_level()]);
    g_level = level;
    return tsr_ok();
}
