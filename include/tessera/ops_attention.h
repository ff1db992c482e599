/* tessera ops: attention (placeholder, filled by its family). */
#ifndef TESSERA_OPS_ATTENTION_H
#define TESSERA_OPS_ATTENTION_H
#include "tessera/core.h"
#endif
