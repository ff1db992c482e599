/* lm kernels at level 'scalar' (compiled with that level's flags, see CMakeLists.txt) */
#define TSR_KLEVEL scalar
#include "models/lm/kernels_impl.h"
