/* lm kernels at level 'scalar' (compiled with that level's flags, see CMakeLists.txt) */
#define TSR_KLEVEL scalar
#include "decode/lm_kernels_impl.h"
