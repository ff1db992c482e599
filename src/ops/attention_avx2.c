/* attention kernels at level 'avx2' (compiled with that level's flags, see CMakeLists.txt)
 */
#define TSR_KLEVEL avx2
#include "ops/attention_impl.h"
