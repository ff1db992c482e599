/* direct 3x3 conv kernels at level 'avx512' (compiled with that level's flags, see CMakeLists.txt) */
#define TSR_KLEVEL avx512
#include "ops/conv_direct_impl.h"
