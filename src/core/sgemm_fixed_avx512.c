/* fixed-order sgemm block at level 'avx512' (compiled with that level's flags, see CMakeLists.txt) */
#define TSR_KLEVEL avx512
#include "core/sgemm_fixed_impl.h"
