/* lm kernels at level 'avx2' (compiled with that level's flags, see CMakeLists.txt) */
#define TSR_KLEVEL avx2
#include "decode/lm_kernels_impl.h"
