/* tessera ops: conv (placeholder, filled by its family). */
#ifndef TESSERA_OPS_CONV_H
#define TESSERA_OPS_CONV_H
#include "tessera/core.h"
#endif
