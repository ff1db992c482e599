/* decode: the one prompt-length rule every decoder (lm, SPACE, BiTA and the
 * families after them) applies before its first forward. */
#include "tessera/decode.h"

#include <string.h>

tsr_status tsr_prompt_fit(int *tok, int *n, int ctx, bool keep_last, int reserve) {
    int allow = ctx - 1;
    if (allow < 1) return tsr_errorf(TSR_ERR_ARG, "the model's context (%d) leaves no room for a prompt", ctx);
    if (*n <= allow) return tsr_ok();
    if (!keep_last)
        return tsr_errorf(TSR_ERR_ARG,
                          "the prompt has %d tokens; the model's context of %d positions allows at "
                          "most %d prompt tokens",
                          *n, ctx, allow);
    int keep = ctx - (reserve < 1 ? 1 : reserve > ctx / 2 ? ctx / 2 : reserve);
    if (keep < 1) keep = 1;
    memmove(tok, tok + (*n - keep), sizeof *tok * (size_t)keep);
    *n = keep;
    return tsr_ok();
}
