/* tessera ops: elem (placeholder, filled by its family). */
#ifndef TESSERA_OPS_ELEM_H
#define TESSERA_OPS_ELEM_H
#include "tessera/core.h"
#endif
