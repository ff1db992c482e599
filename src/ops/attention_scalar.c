/* attention kernels at level 'scalar' (compiled with that level's flags, see CMakeLists.txt)
 * and, once, the scratch sizes, naive twins and autograd op */
#define TSR_KLEVEL scalar
#define TSR_KPRIMARY 1
#include "ops/attention_impl.h"
