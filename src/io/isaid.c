/* iSAID masks: the palette of the iSAID devkit (RGB; the devkit lists it in
 * BGR order), colour PNG -> class ids, id PNG -> instance keys, and the
 * instances' boxes with a majority-vote class. */
#include "tessera/isaid.h"
#include "tessera/png.h"

#include <ctype.h>
#include <string.h>

const char *const tsr_isaid_names[TSR_ISAID_CLASSES] = {
    "background",       "ship",         "storage tank",  "baseball diamond",
    "tennis court",     "basketball court", "ground track field", "bridge",
    "large vehicle",    "small vehicle", "helicopter",   "swimming pool",
    "roundabout",       "soccer ball field", "plane",    "harbor"};

const uint8_t tsr_isaid_palette[TSR_ISAID_CLASSES][3] = {
    {0, 0, 0},     {0, 0, 63},    {0, 63, 63},   {0, 63, 255}, {0, 63, 127}, {0, 63, 191},
    {0, 63, 0},    {0, 127, 63},  {0, 127, 127}, {0, 0, 127},  {0, 0, 191},  {0, 0, 255},
    {0, 191, 127}, {0, 127, 191}, {0, 127, 255}, {0, 100, 155}};

int tsr_isaid_class_of_rgb(uint8_t r, uint8_t g, uint8_t b) {
    if (r != 0) return TSR_ISAID_IGNORE; /* every palette colour has red 0 */
    for (int k = 0; k < TSR_ISAID_CLASSES; k++)
        if (tsr_isaid_palette[k][1] == g && tsr_isaid_palette[k][2] == b) return k;
    return TSR_ISAID_IGNORE;
}

int tsr_isaid_class_of_name(const char *name) {
    for (int k = 1; k < TSR_ISAID_CLASSES; k++) {
        const char *a = tsr_isaid_names[k], *b = name;
        while (*a && *b) {
            char cb = *b == '_' || *b == '-' ? ' ' : (char)tolower((unsigned char)*b);
            if (cb != *a) break;
            a++, b++;
        }
        if (!*a && !*b) return k;
    }
    return -1;
}

int64_t tsr_isaid_classes_from_rgb(uint8_t *cls, const uint8_t *rgb, int64_t npix) {
    /* lookup on (g,b) with r == 0; a 64 KiB table beats 16 compares per pixel */
    static uint8_t lut[256 * 256];
    static int ready;
    if (!ready) { /* benign race: every thread writes the same bytes */
        memset(lut, TSR_ISAID_IGNORE, sizeof lut);
        for (int k = 0; k < TSR_ISAID_CLASSES; k++)
            lut[tsr_isaid_palette[k][1] * 256 + tsr_isaid_palette[k][2]] = (uint8_t)k;
        ready = 1;
    }
    int64_t bad = 0;
    for (int64_t i = 0; i < npix; i++) {
        const uint8_t *p = rgb + 3 * i;
        uint8_t c = p[0] ? TSR_ISAID_IGNORE : lut[p[1] * 256 + p[2]];
        bad += c == TSR_ISAID_IGNORE;
        cls[i] = c;
    }
    return bad;
}

static tsr_status read_rgb(const char *path, uint8_t **px, int *w, int *h) {
    int ch;
    tsr_status st = tsr_png_read(path, px, w, h, &ch);
    if (st.code) return st;
    if (ch != 3) {
        free(*px);
        *px = NULL;
        return tsr_errorf(TSR_ERR_FORMAT, "%s: an iSAID mask must be an RGB PNG (it has %d channel%s)", path, ch, ch == 1 ? "" : "s");
    }
    return tsr_ok();
}

tsr_status tsr_isaid_read_classes(const char *path, uint8_t **cls, int *w, int *h) {
    uint8_t *px;
    *cls = NULL;
    tsr_status st = read_rgb(path, &px, w, h);
    if (st.code) return st;
    int64_t n = (int64_t)*w * *h;
    *cls = malloc((size_t)n);
    if (!*cls) {
        free(px);
        return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", path);
    }
    tsr_isaid_classes_from_rgb(*cls, px, n);
    free(px);
    return tsr_ok();
}

tsr_status tsr_isaid_read_instances(const char *path, uint32_t **inst, int *w, int *h) {
    uint8_t *px;
    *inst = NULL;
    tsr_status st = read_rgb(path, &px, w, h);
    if (st.code) return st;
    int64_t n = (int64_t)*w * *h;
    *inst = malloc((size_t)n * sizeof(uint32_t));
    if (!*inst) {
        free(px);
        return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int64_t i = 0; i < n; i++)
        (*inst)[i] = (uint32_t)px[3 * i] | (uint32_t)px[3 * i + 1] << 8 | (uint32_t)px[3 * i + 2] << 16;
    free(px);
    return tsr_ok();
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int find_key(const uint32_t *keys, int n, uint32_t k) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (keys[mid] == k) return mid;
        if (keys[mid] < k) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int tsr_isaid_instances(tsr_isaid_instance **out, const uint32_t *inst, const uint8_t *cls, int w,
                        int h) {
    *out = NULL;
    int64_t npix = (int64_t)w * h;
    /* distinct keys: collect, sort, unique */
    int cap = 64, n = 0;
    uint32_t *keys = malloc((size_t)cap * sizeof *keys), last = 0;
    if (!keys) return -1;
    for (int64_t i = 0; i < npix; i++) {
        uint32_t k = inst[i];
        if (!k || k == last) continue;
        last = k;
        if (n == cap) {
            /* dedupe before growing: keys repeat along rows */
            qsort(keys, (size_t)n, sizeof *keys, cmp_u32);
            int u = 0;
            for (int j = 0; j < n; j++)
                if (!u || keys[u - 1] != keys[j]) keys[u++] = keys[j];
            n = u;
            if (n > cap / 2) {
                uint32_t *q = realloc(keys, (size_t)cap * 2 * sizeof *keys);
                if (!q) { free(keys); return -1; }
                keys = q;
                cap *= 2;
            }
        }
        keys[n++] = k;
    }
    qsort(keys, (size_t)n, sizeof *keys, cmp_u32);
    int u = 0;
    for (int j = 0; j < n; j++)
        if (!u || keys[u - 1] != keys[j]) keys[u++] = keys[j];
    n = u;
    tsr_isaid_instance *r = calloc((size_t)n + 1, sizeof *r);
    int32_t *votes = calloc((size_t)n * TSR_ISAID_CLASSES + 1, sizeof *votes);
    if (!r || !votes) {
        free(keys), free(r), free(votes);
        return -1;
    }
    for (int j = 0; j < n; j++) r[j] = (tsr_isaid_instance){keys[j], 0, w, h, 0, 0, 0};
    int j = -1;
    last = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int64_t i = (int64_t)y * w + x;
            uint32_t k = inst[i];
            if (!k) continue;
            if (k != last) j = find_key(keys, n, k), last = k;
            tsr_isaid_instance *e = &r[j];
            if (x < e->x0) e->x0 = x;
            if (y < e->y0) e->y0 = y;
            if (x + 1 > e->x1) e->x1 = x + 1;
            if (y + 1 > e->y1) e->y1 = y + 1;
            e->area++;
            if (cls[i] > 0 && cls[i] < TSR_ISAID_CLASSES) votes[(int64_t)j * TSR_ISAID_CLASSES + cls[i]]++;
        }
    int m = 0;
    for (j = 0; j < n; j++) {
        int best = 0;
        for (int k = 1; k < TSR_ISAID_CLASSES; k++)
            if (votes[(int64_t)j * TSR_ISAID_CLASSES + k] > votes[(int64_t)j * TSR_ISAID_CLASSES + best]) best = k;
        if (!best) continue;
        r[j].cls = best;
        r[m++] = r[j];
    }
    free(keys), free(votes);
    *out = r;
    return m;
}

tsr_status tsr_isaid_read_boxes(const char *color_path, const char *id_path,
                                tsr_isaid_instance **out, int *n, int *w, int *h) {
    uint8_t *cls;
    uint32_t *inst;
    int w2, h2;
    *out = NULL;
    *n = 0;
    tsr_status st = tsr_isaid_read_classes(color_path, &cls, w, h);
    if (st.code) return st;
    st = tsr_isaid_read_instances(id_path, &inst, &w2, &h2);
    if (st.code) {
        free(cls);
        return st;
    }
    if (w2 != *w || h2 != *h) {
        st = tsr_errorf(TSR_ERR_SHAPE, "%s: instance mask is %dx%d but the colour mask %s is %dx%d", id_path, w2, h2, color_path, *w, *h);
    } else {
        *n = tsr_isaid_instances(out, inst, cls, *w, *h);
        if (*n < 0) {
            *n = 0;
            st = tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", id_path);
        }
    }
    free(cls), free(inst);
    return st;
}
