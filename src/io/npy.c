/* NumPy .npy reader: the magic, a version byte pair, a little-endian header
 * length, then a Python dict literal with 'descr', 'fortran_order' and
 * 'shape'. The dict is scanned for those three keys only; anything else in
 * it is ignored, as NumPy itself writes nothing else. */
#include "tessera/npy.h"
#include "tessera/fileio.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

void tsr_npy_free(tsr_npy *a) {
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* value text after 'key': in the header h (NUL-terminated); NULL if absent */
static const char *dict_value(const char *h, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(h, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p && isspace((unsigned char)*p)) p++;
    if (*p != ':') return NULL;
    p++;
    while (*p && isspace((unsigned char)*p)) p++;
    return p;
}

tsr_status tsr_npy_parse(tsr_npy *out, const uint8_t *buf, size_t len, const char *name) {
    memset(out, 0, sizeof *out);
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not a .npy file (bad magic)", name);
    int major = buf[6];
    size_t hl, off;
    if (major == 1) {
        hl = (size_t)buf[8] | (size_t)buf[9] << 8;
        off = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) return tsr_errorf(TSR_ERR_FORMAT, "%s: truncated .npy header", name);
        hl = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        off = 12;
    } else {
        return tsr_errorf(TSR_ERR_FORMAT, "%s: unsupported .npy version %d", name, major);
    }
    if (hl > len - off || hl > 65536) return tsr_errorf(TSR_ERR_FORMAT, "%s: truncated .npy header", name);
    char h[65537];
    memcpy(h, buf + off, hl);
    h[hl] = '\0';
    if (strlen(h) != hl) return tsr_errorf(TSR_ERR_FORMAT, "%s: .npy header holds a NUL byte", name);
    const char *d = dict_value(h, "descr"), *fo = dict_value(h, "fortran_order"), *sh = dict_value(h, "shape");
    if (!d || !fo || !sh) return tsr_errorf(TSR_ERR_FORMAT, "%s: .npy header lacks descr, fortran_order or shape", name);
    int esize;
    if (!strncmp(d, "'<f2'", 5)) esize = 2;
    else if (!strncmp(d, "'<f4'", 5)) esize = 4;
    else if (!strncmp(d, "'<f8'", 5)) esize = 8;
    else return tsr_errorf(TSR_ERR_FORMAT, "%s: unsupported .npy dtype (want little-endian float16/32/64, '<f2' '<f4' '<f8')", name);
    if (strncmp(fo, "False", 5) != 0)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: Fortran-order .npy arrays are not supported (save with np.ascontiguousarray)", name);
    if (*sh != '(') return tsr_errorf(TSR_ERR_FORMAT, "%s: .npy shape is not a tuple", name);
    const char *p = sh + 1;
    int64_t numel = 1;
    for (;;) {
        while (*p && isspace((unsigned char)*p)) p++;
        if (*p == ')') break;
        if (!isdigit((unsigned char)*p) || out->ndim == 4)
            return tsr_errorf(TSR_ERR_FORMAT, "%s: .npy shape must be up to 4 non-negative integers", name);
        int64_t v = 0;
        while (isdigit((unsigned char)*p)) {
            v = v * 10 + (*p++ - '0');
            if (v > ((int64_t)1 << 40)) return tsr_errorf(TSR_ERR_FORMAT, "%s: .npy shape too large", name);
        }
        out->shape[out->ndim++] = v;
        /* checked before multiplying: two 2^40 dimensions wrapped to 0 elements and passed */
        if (v && numel > ((int64_t)1 << 40) / v) return tsr_errorf(TSR_ERR_FORMAT, "%s: .npy shape too large", name);
        numel *= v;
        while (*p && isspace((unsigned char)*p)) p++;
        if (*p == ',') p++;
        else if (*p != ')') return tsr_errorf(TSR_ERR_FORMAT, "%s: malformed .npy shape", name);
    }
    size_t need = (size_t)numel * (size_t)esize, have = len - off - hl;
    if (have != need)
        return tsr_errorf(TSR_ERR_FORMAT, "%s: .npy data is %zu bytes, the header's shape needs %zu", name, have, need);
    out->data = malloc((size_t)numel * sizeof(float) + 1);
    if (!out->data) return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", name);
    const uint8_t *q = buf + off + hl;
    for (int64_t i = 0; i < numel; i++) {
        float v;
        if (esize == 2) {
            uint16_t u;
            memcpy(&u, q + 2 * i, 2);
            v = tsr_f16_to_f32(u);
        } else if (esize == 4) {
            memcpy(&v, q + 4 * i, 4);
        } else {
            double dv;
            memcpy(&dv, q + 8 * i, 8);
            v = fabs(dv) < 3e38 ? (float)dv : NAN;
        }
        if (!isfinite(v)) {
            tsr_npy_free(out);
            return tsr_errorf(TSR_ERR_FORMAT, "%s: .npy element %lld is not finite", name, (long long)i);
        }
        out->data[i] = v;
    }
    return tsr_ok();
}

tsr_status tsr_npy_read(tsr_npy *out, const char *path) {
    char *buf;
    size_t len;
    memset(out, 0, sizeof *out);
    tsr_status st = tsr_read_file(path, &buf, &len);
    if (st.code) return st;
    st = tsr_npy_parse(out, (const uint8_t *)buf, len, path);
    free(buf);
    return st;
}
