/* lm kernels at level 'avx512' (compiled with that level's flags, see CMakeLists.txt) */
#define TSR_KLEVEL avx512
#include "decode/lm_kernels_impl.h"
