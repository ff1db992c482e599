/* tessera ops: norm (placeholder, filled by its family). */
#ifndef TESSERA_OPS_NORM_H
#define TESSERA_OPS_NORM_H
#include "tessera/core.h"
#endif
