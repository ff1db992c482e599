/* fixed-order sgemm block at level 'scalar' (compiled with that level's flags, see CMakeLists.txt) */
#define TSR_KLEVEL scalar
#include "core/sgemm_fixed_impl.h"
