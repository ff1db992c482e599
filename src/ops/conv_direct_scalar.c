/* direct 3x3 conv kernels at level 'scalar' (compiled with that level's flags, see CMakeLists.txt) */
#define TSR_KLEVEL scalar
#include "ops/conv_direct_impl.h"
