/* lm kernels at level 'avx512bf16' (compiled with that level's flags, see CMakeLists.txt) */
#define TSR_KLEVEL avx512bf16
#include "decode/lm_kernels_impl.h"
