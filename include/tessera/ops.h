/* tessera ops: the differentiable operations every family builds on.
 *
 * Dimension letters used in shape comments throughout:
 *   B batch, T time (sequence), C channels / model width, V vocabulary,
 *   H heads, D head dim, K bits (binary codes), N rows, M columns,
 *   G groups, Hh/Ww image height/width, S source/key length.
 *
 * Each op family lives in src/ops/<family>.c: raw-pointer kernels
 * (outputs first, then inputs, then sizes; `_fwd`, `_bwd` accumulating with
 * +=, and a naive `_ref` twin for every optimised kernel) followed by the
 * autograd wrapper `tsr_<op>(ctx, ...)` that allocates the output in the
 * step arena and records a tape node. Wrappers assert on shape errors
 * (model code is responsible for shapes; user input is validated earlier).
 */
#ifndef TESSERA_OPS_H
#define TESSERA_OPS_H

#include "tessera/core.h"
#include "tessera/ops_matmul.h"
#include "tessera/ops_elem.h"
#include "tessera/ops_norm.h"
#include "tessera/ops_attention.h"
#include "tessera/ops_conv.h"

#endif
