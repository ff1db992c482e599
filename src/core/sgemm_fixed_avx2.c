/* fixed-order sgemm block at level 'avx2' (compiled with that level's flags, see CMakeLists.txt) */
#define TSR_KLEVEL avx2
#include "core/sgemm_fixed_impl.h"
