/* tessera core: status values, assertions and logging. */
#include "tessera/core.h"

#include <string.h>

tsr_status tsr_ok(void) {
    tsr_status s;
    s.code = TSR_OK;
    s.msg[0] = 0;
    return s;
}

tsr_status tsr_errorf(int code, const char *fmt, ...) {
    tsr_status s;
    s.code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s.msg, sizeof s.msg, fmt, ap);
    va_end(ap);
    /* a status is one line: control bytes quoted from bad input (names,
     * tokens) become '?' so they cannot break or forge output lines */
    for (char *p = s.msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return s;
}

_Noreturn void tsr_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "tessera: internal error: %s:%d: assertion failed: %s\n", file, line, expr);
    fflush(stderr);
    abort();
}

void tsr_log(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

void (*tsr_fault_hook)(const char *point) = NULL;
