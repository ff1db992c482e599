/* Detection label files: DOTA labelTxt, YOLO txt, VOC/DIOR XML and COCO
 * detection JSON into one tsr_det_set, and COCO JSON out. The text readers
 * work line by line on a copy of each line, so a buffer need not be
 * NUL-terminated (the fuzz targets hand in raw bytes). VOC is read with a
 * small tag scanner: the files hold a fixed, flat set of tags, and a full
 * XML library would be a dependency for six field names. */
#include "tessera/detlabels.h"
#include "tessera/fileio.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <string.h>

void tsr_det_set_init(tsr_det_set *s) { memset(s, 0, sizeof *s); }

void tsr_det_set_free(tsr_det_set *s) {
    for (int i = 0; i < s->n_cls; i++) free(s->names[i]);
    for (int i = 0; i < s->n_img; i++) free(s->img[i].file);
    free(s->names);
    free(s->cat_id);
    free(s->img);
    free(s->box);
    memset(s, 0, sizeof *s);
}

static bool grow(void **p, int *cap, int need, size_t esize) {
    if (need <= *cap) return true;
    int nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * esize);
    if (!q) return false;
    *p = q;
    *cap = nc;
    return true;
}

int tsr_det_class_find(const tsr_det_set *s, const char *name) {
    for (int i = 0; i < s->n_cls; i++)
        if (!strcmp(s->names[i], name)) return i;
    return -1;
}

static int add_class_id(tsr_det_set *s, const char *name, int64_t cat_id) {
    int old = s->cap_cls;
    if (!grow((void **)&s->names, &s->cap_cls, s->n_cls + 1, sizeof(char *))) return -1;
    if (s->cap_cls != old) {
        int64_t *c = realloc(s->cat_id, (size_t)s->cap_cls * sizeof(int64_t));
        if (!c) return -1;
        s->cat_id = c;
    }
    char *d = strdup(name);
    if (!d) return -1;
    s->names[s->n_cls] = d;
    s->cat_id[s->n_cls] = cat_id;
    return s->n_cls++;
}

int tsr_det_class(tsr_det_set *s, const char *name) {
    int k = tsr_det_class_find(s, name);
    return k >= 0 ? k : add_class_id(s, name, s->n_cls + 1);
}

int tsr_det_add_image(tsr_det_set *s, const char *file, int w, int h) {
    if (!grow((void **)&s->img, &s->cap_img, s->n_img + 1, sizeof(tsr_det_image))) return -1;
    char *d = strdup(file ? file : "");
    if (!d) return -1;
    s->img[s->n_img] = (tsr_det_image){d, w, h, s->n_img + 1};
    return s->n_img++;
}

bool tsr_det_add_box(tsr_det_set *s, const tsr_det_box *b) {
    if (!grow((void **)&s->box, &s->cap_box, s->n_box + 1, sizeof(tsr_det_box))) return false;
    s->box[s->n_box++] = *b;
    return true;
}

/* --------------------------------------------------------------- lines */

/* Rolls the set back to a mark when a file fails half way. */
typedef struct { int n_box, n_cls, n_img; } mark;
static mark mark_of(const tsr_det_set *s) { return (mark){s->n_box, s->n_cls, s->n_img}; }
static void rollback(tsr_det_set *s, mark m) {
    for (int i = m.n_cls; i < s->n_cls; i++) free(s->names[i]);
    for (int i = m.n_img; i < s->n_img; i++) free(s->img[i].file);
    s->n_box = m.n_box;
    s->n_cls = m.n_cls;
    s->n_img = m.n_img;
}

enum { LINE_MAX_LEN = 4096 };

/* Next line of buf into out (NUL-terminated, '\r' and trailing spaces
 * dropped). Returns 0 at the end, -1 for a line too long or holding a NUL
 * byte, 1 otherwise. */
static int next_line(const char *buf, size_t len, size_t *pos, char *out) {
    if (*pos >= len) return 0;
    size_t i = *pos, n = 0;
    bool bad = false;
    while (i < len && buf[i] != '\n') {
        if (buf[i] == '\0') bad = true;
        if (n < LINE_MAX_LEN - 1) out[n] = buf[i];
        n++;
        i++;
    }
    *pos = i < len ? i + 1 : i;
    if (n >= LINE_MAX_LEN - 1) return -1;
    while (n > 0 && isspace((unsigned char)out[n - 1])) n--;
    out[n] = '\0';
    return bad ? -1 : 1;
}

static bool is_blank(const char *l) {
    while (*l && isspace((unsigned char)*l)) l++;
    return *l == '\0';
}

/* reads a finite float token; advances *p */
static bool read_num(char **p, float *v) {
    char *e;
    errno = 0;
    double d = strtod(*p, &e);
    if (e == *p || errno == ERANGE || !isfinite(d) || fabs(d) > 1e9) return false;
    if (*e && !isspace((unsigned char)*e)) return false;
    *v = (float)d;
    *p = e;
    return true;
}

static bool image_ok(const tsr_det_set *s, int image) { return image >= 0 && image < s->n_img; }

tsr_status tsr_det_names_parse(tsr_det_set *s, const char *buf, size_t len, const char *name) {
    mark m = mark_of(s);
    char line[LINE_MAX_LEN];
    size_t pos = 0;
    int r, ln = 0;
    while ((r = next_line(buf, len, &pos, line)) != 0) {
        ln++;
        if (r < 0) {
            rollback(s, m);
            return tsr_errorf(TSR_ERR_FORMAT, "%s:%d: line too long or not text", name, ln);
        }
        char *l = line;
        while (isspace((unsigned char)*l)) l++;
        if (!*l) continue;
        if (add_class_id(s, l, s->n_cls + 1) < 0) {
            rollback(s, m);
            return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", name);
        }
    }
    return tsr_ok();
}

tsr_status tsr_dota_parse(tsr_det_set *s, int image, const char *buf, size_t len,
                          const char *name) {
    if (!image_ok(s, image)) return tsr_errorf(TSR_ERR_ARG, "%s: no image %d in the set", name, image);
    mark m = mark_of(s);
    char line[LINE_MAX_LEN];
    size_t pos = 0;
    int r, ln = 0;
    tsr_status st = tsr_ok();
    while ((r = next_line(buf, len, &pos, line)) != 0) {
        ln++;
        if (r < 0) { st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: line too long or not text", name, ln); break; }
        if (is_blank(line) || !strncmp(line, "imagesource:", 12) || !strncmp(line, "gsd:", 4)) continue;
        char *p = line;
        float c[8];
        int k = 0;
        for (; k < 8; k++)
            if (!read_num(&p, &c[k])) break;
        while (isspace((unsigned char)*p)) p++;
        char *cls = p;
        while (*p && !isspace((unsigned char)*p)) p++;
        bool had_sep = *p != '\0';
        if (had_sep) *p++ = '\0';
        while (isspace((unsigned char)*p)) p++;
        int diff = 0;
        if (*p) {
            char *e;
            long d = strtol(p, &e, 10);
            if (e == p || *e || d < 0 || d > 1) k = -1;
            diff = (int)d;
        }
        if (k != 8 || !*cls) {
            st = tsr_errorf(TSR_ERR_FORMAT,
                            "%s:%d: expected 'x1 y1 x2 y2 x3 y3 x4 y4 class [difficult 0|1]'", name, ln);
            break;
        }
        tsr_det_box b = {c[0], c[1], c[0], c[1], 1.f, 0, image, (uint8_t)diff, 0};
        for (int i = 1; i < 4; i++) {
            b.x0 = fminf(b.x0, c[2 * i]), b.x1 = fmaxf(b.x1, c[2 * i]);
            b.y0 = fminf(b.y0, c[2 * i + 1]), b.y1 = fmaxf(b.y1, c[2 * i + 1]);
        }
        b.cls = tsr_det_class(s, cls);
        if (b.cls < 0 || !tsr_det_add_box(s, &b)) { st = tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", name); break; }
    }
    if (st.code) rollback(s, m);
    return st;
}

tsr_status tsr_yolo_parse(tsr_det_set *s, int image, int img_w, int img_h, const char *buf,
                          size_t len, const char *name) {
    if (!image_ok(s, image)) return tsr_errorf(TSR_ERR_ARG, "%s: no image %d in the set", name, image);
    if (img_w <= 0 || img_h <= 0)
        return tsr_errorf(TSR_ERR_ARG, "%s: YOLO labels need the image size (got %dx%d)", name, img_w, img_h);
    mark m = mark_of(s);
    char line[LINE_MAX_LEN];
    size_t pos = 0;
    int r, ln = 0;
    tsr_status st = tsr_ok();
    while ((r = next_line(buf, len, &pos, line)) != 0) {
        ln++;
        if (r < 0) { st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: line too long or not text", name, ln); break; }
        if (is_blank(line)) continue;
        char *p = line, *e;
        while (isspace((unsigned char)*p)) p++;
        long cls = strtol(p, &e, 10);
        float v[4];
        int k = 0;
        if (e != p && isspace((unsigned char)*e)) {
            p = e;
            for (; k < 4; k++)
                if (!read_num(&p, &v[k])) break;
            while (isspace((unsigned char)*p)) p++;
        }
        if (k != 4 || *p) { st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: expected 'class cx cy w h'", name, ln); break; }
        if (cls < 0 || cls >= s->n_cls) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: class %ld has no name (%d names loaded)", name, ln, cls, s->n_cls);
            break;
        }
        if (v[2] < 0 || v[3] < 0 || v[0] < -0.5f || v[0] > 1.5f || v[1] < -0.5f || v[1] > 1.5f || v[2] > 2 || v[3] > 2) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: box is not normalised to the image (cx cy in [0,1], w h >= 0)", name, ln);
            break;
        }
        tsr_det_box b = {(v[0] - v[2] / 2) * img_w, (v[1] - v[3] / 2) * img_h, (v[0] + v[2] / 2) * img_w,
                         (v[1] + v[3] / 2) * img_h, 1.f, (int32_t)cls, image, 0, 0};
        if (!tsr_det_add_box(s, &b)) { st = tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", name); break; }
    }
    if (st.code) rollback(s, m);
    return st;
}

/* ----------------------------------------------------------------- VOC */

/* Finds "<tag>" in [p, end); returns the start of its content and sets
 * *cend to the matching "</tag>" (no nesting of the same tag in VOC). */
static const char *xml_find(const char *p, const char *end, const char *tag, const char **cend) {
    size_t tl = strlen(tag);
    for (const char *q = p; q + tl + 2 <= end; q++) {
        if (q[0] != '<' || memcmp(q + 1, tag, tl) != 0) continue;
        const char *a = q + 1 + tl;
        if (a >= end || (*a != '>' && !isspace((unsigned char)*a))) continue;
        while (a < end && *a != '>') a++;
        if (a >= end) return NULL;
        const char *c = a + 1;
        for (const char *z = c; z + tl + 3 <= end; z++)
            if (z[0] == '<' && z[1] == '/' && !memcmp(z + 2, tag, tl) && z[2 + tl] == '>') {
                *cend = z;
                return c;
            }
        return NULL;
    }
    return NULL;
}

/* text content of <tag> inside [p,end), trimmed, into out; false if absent */
static bool xml_text(const char *p, const char *end, const char *tag, char *out, size_t n) {
    const char *ce, *c = xml_find(p, end, tag, &ce);
    if (!c) return false;
    while (c < ce && isspace((unsigned char)*c)) c++;
    while (ce > c && isspace((unsigned char)ce[-1])) ce--;
    size_t l = (size_t)(ce - c);
    if (l >= n || memchr(c, '<', l) || memchr(c, '\0', l)) return false;
    memcpy(out, c, l);
    out[l] = '\0';
    return true;
}

static bool xml_num(const char *p, const char *end, const char *tag, float *v) {
    char t[64];
    if (!xml_text(p, end, tag, t, sizeof t)) return false;
    char *q = t;
    return read_num(&q, v) && *q == '\0';
}

tsr_status tsr_voc_parse(tsr_det_set *s, int image, const char *buf, size_t len, const char *name) {
    if (!image_ok(s, image)) return tsr_errorf(TSR_ERR_ARG, "%s: no image %d in the set", name, image);
    const char *end = buf + len;
    if (!xml_find(buf, end, "annotation", &(const char *){NULL}))
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not a VOC annotation (no <annotation> element)", name);
    mark m = mark_of(s);
    const char *se, *sz = xml_find(buf, end, "size", &se);
    float w, h;
    if (sz && xml_num(sz, se, "width", &w) && xml_num(sz, se, "height", &h) && w >= 1 && h >= 1 &&
        w <= 1e6 && h <= 1e6)
        s->img[image].w = (int)w, s->img[image].h = (int)h;
    const char *p = buf, *oe;
    int nobj = 0;
    tsr_status st = tsr_ok();
    for (const char *o; (o = xml_find(p, end, "object", &oe)) != NULL; p = oe + 1) {
        nobj++;
        char cls[256];
        if (!xml_text(o, oe, "name", cls, sizeof cls) || !cls[0]) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: object %d has no <name>", name, nobj);
            break;
        }
        float diff = 0;
        char t[64];
        if (xml_text(o, oe, "difficult", t, sizeof t)) {
            char *q = t;
            if (!read_num(&q, &diff) || *q || (diff != 0 && diff != 1)) {
                st = tsr_errorf(TSR_ERR_FORMAT, "%s: object %d: <difficult> is not 0 or 1", name, nobj);
                break;
            }
        }
        tsr_det_box b = {0, 0, 0, 0, 1.f, 0, image, (uint8_t)diff, 0};
        const char *be, *bb = xml_find(o, oe, "bndbox", &be);
        if (bb) {
            if (!xml_num(bb, be, "xmin", &b.x0) || !xml_num(bb, be, "ymin", &b.y0) ||
                !xml_num(bb, be, "xmax", &b.x1) || !xml_num(bb, be, "ymax", &b.y1) || b.x1 < b.x0 ||
                b.y1 < b.y0) {
                st = tsr_errorf(TSR_ERR_FORMAT, "%s: object %d: <bndbox> needs xmin <= xmax, ymin <= ymax", name, nobj);
                break;
            }
        } else if ((bb = xml_find(o, oe, "robndbox", &be)) != NULL) {
            static const char *k[8] = {"x_left_top",     "y_left_top",     "x_right_top",
                                       "y_right_top",    "x_right_bottom", "y_right_bottom",
                                       "x_left_bottom",  "y_left_bottom"};
            float c[8];
            int i = 0;
            for (; i < 8; i++)
                if (!xml_num(bb, be, k[i], &c[i])) break;
            if (i < 8) {
                st = tsr_errorf(TSR_ERR_FORMAT, "%s: object %d: <robndbox> lacks <%s>", name, nobj, k[i]);
                break;
            }
            b.x0 = b.x1 = c[0], b.y0 = b.y1 = c[1];
            for (i = 1; i < 4; i++) {
                b.x0 = fminf(b.x0, c[2 * i]), b.x1 = fmaxf(b.x1, c[2 * i]);
                b.y0 = fminf(b.y0, c[2 * i + 1]), b.y1 = fmaxf(b.y1, c[2 * i + 1]);
            }
        } else {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: object %d has neither <bndbox> nor <robndbox>", name, nobj);
            break;
        }
        b.cls = tsr_det_class(s, cls);
        if (b.cls < 0 || !tsr_det_add_box(s, &b)) { st = tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", name); break; }
    }
    if (st.code) rollback(s, m);
    return st;
}

/* ---------------------------------------------------------------- COCO */

static bool json_int(const cJSON *o, const char *k, int64_t *v) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || fabs(e->valuedouble) > 9e15 ||
        e->valuedouble != floor(e->valuedouble))
        return false;
    *v = (int64_t)e->valuedouble;
    return true;
}

tsr_status tsr_coco_parse(tsr_det_set *s, const char *buf, size_t len, const char *name) {
    cJSON *root = cJSON_ParseWithLength(buf, len);
    if (!root) return tsr_errorf(TSR_ERR_FORMAT, "%s: not valid JSON", name);
    if (cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: a bare results list has no images or categories; give the COCO file with \"images\", \"categories\", \"annotations\"", name);
    }
    const cJSON *imgs = cJSON_GetObjectItemCaseSensitive(root, "images");
    const cJSON *cats = cJSON_GetObjectItemCaseSensitive(root, "categories");
    const cJSON *anns = cJSON_GetObjectItemCaseSensitive(root, "annotations");
    if (!cJSON_IsArray(imgs) || !cJSON_IsArray(cats) || (anns && !cJSON_IsArray(anns))) {
        cJSON_Delete(root);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: expected an object with arrays \"images\", \"categories\" and \"annotations\"", name);
    }
    mark m = mark_of(s);
    tsr_status st = tsr_ok();
    int n_img = cJSON_GetArraySize(imgs), n_cat = cJSON_GetArraySize(cats);
    int64_t *img_ids = calloc((size_t)n_img + 1, sizeof(int64_t));
    int64_t *cat_ids = calloc((size_t)n_cat + 1, sizeof(int64_t));
    int *cat_cls = calloc((size_t)n_cat + 1, sizeof(int));
    if (!img_ids || !cat_ids || !cat_cls) { st = tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", name); goto done; }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, imgs) {
        int64_t id, w = 0, h = 0;
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(e, "file_name");
        if (!json_int(e, "id", &id)) { st = tsr_errorf(TSR_ERR_FORMAT, "%s: images[%d] has no integer \"id\"", name, i); goto done; }
        if ((cJSON_GetObjectItemCaseSensitive(e, "width") && !json_int(e, "width", &w)) ||
            (cJSON_GetObjectItemCaseSensitive(e, "height") && !json_int(e, "height", &h)) || w < 0 ||
            h < 0 || w > 1000000 || h > 1000000) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: images[%d]: width/height must be integers in [0, 1e6]", name, i);
            goto done;
        }
        int k = tsr_det_add_image(s, cJSON_IsString(fn) ? fn->valuestring : NULL, (int)w, (int)h);
        if (k < 0) { st = tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", name); goto done; }
        s->img[k].id = id;
        img_ids[i++] = id;
    }
    i = 0;
    cJSON_ArrayForEach(e, cats) {
        int64_t id;
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
        if (!json_int(e, "id", &id) || !cJSON_IsString(nm) || !nm->valuestring[0]) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: categories[%d] needs an integer \"id\" and a \"name\"", name, i);
            goto done;
        }
        int k = tsr_det_class_find(s, nm->valuestring);
        if (k < 0) k = add_class_id(s, nm->valuestring, id);
        if (k < 0) { st = tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", name); goto done; }
        cat_ids[i] = id;
        cat_cls[i++] = k;
    }
    i = 0;
    if (anns) cJSON_ArrayForEach(e, anns) {
        int64_t iid, cid, crowd = 0;
        const cJSON *bb = cJSON_GetObjectItemCaseSensitive(e, "bbox");
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(e, "score");
        float v[4];
        int k = 0;
        if (cJSON_IsArray(bb) && cJSON_GetArraySize(bb) == 4)
            for (; k < 4; k++) {
                const cJSON *x = cJSON_GetArrayItem(bb, k);
                if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || fabs(x->valuedouble) > 1e9) break;
                v[k] = (float)x->valuedouble;
            }
        if (!json_int(e, "image_id", &iid) || !json_int(e, "category_id", &cid) || k != 4 || v[2] < 0 ||
            v[3] < 0 || (sc && (!cJSON_IsNumber(sc) || !isfinite(sc->valuedouble))) ||
            (cJSON_GetObjectItemCaseSensitive(e, "iscrowd") && !json_int(e, "iscrowd", &crowd))) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: annotations[%d] needs integer image_id and category_id and bbox [x,y,w,h] with w,h >= 0", name, i);
            goto done;
        }
        int im = -1, cl = -1;
        for (int j = 0; j < n_img && im < 0; j++)
            if (img_ids[j] == iid) im = m.n_img + j;
        for (int j = 0; j < n_cat && cl < 0; j++)
            if (cat_ids[j] == cid) cl = cat_cls[j];
        if (im < 0 || cl < 0) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: annotations[%d] names image %lld or category %lld that is not listed", name, i, (long long)iid, (long long)cid);
            goto done;
        }
        tsr_det_box b = {v[0], v[1], v[0] + v[2], v[1] + v[3], sc ? (float)sc->valuedouble : 1.f, cl, im, 0, (uint8_t)(crowd != 0)};
        if (!tsr_det_add_box(s, &b)) { st = tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory", name); goto done; }
        i++;
    }
done:
    free(img_ids);
    free(cat_ids);
    free(cat_cls);
    cJSON_Delete(root);
    if (st.code) rollback(s, m);
    return st;
}

tsr_status tsr_coco_write(const tsr_det_set *s, const char *path, bool with_score) {
    cJSON *root = cJSON_CreateObject(), *imgs = cJSON_AddArrayToObject(root, "images");
    cJSON *cats = cJSON_AddArrayToObject(root, "categories"), *anns = cJSON_AddArrayToObject(root, "annotations");
    for (int i = 0; i < s->n_img; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)s->img[i].id);
        cJSON_AddStringToObject(o, "file_name", s->img[i].file ? s->img[i].file : "");
        cJSON_AddNumberToObject(o, "width", s->img[i].w);
        cJSON_AddNumberToObject(o, "height", s->img[i].h);
        cJSON_AddItemToArray(imgs, o);
    }
    for (int i = 0; i < s->n_cls; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)s->cat_id[i]);
        cJSON_AddStringToObject(o, "name", s->names[i]);
        cJSON_AddItemToArray(cats, o);
    }
    for (int i = 0; i < s->n_box; i++) {
        const tsr_det_box *b = &s->box[i];
        cJSON *o = cJSON_CreateObject();
        /* rounded to 1/100 px so the file stays readable */
        double v[4] = {round(b->x0 * 100) / 100, round(b->y0 * 100) / 100,
                       round((b->x1 - b->x0) * 100) / 100, round((b->y1 - b->y0) * 100) / 100};
        cJSON_AddNumberToObject(o, "id", i + 1);
        cJSON_AddNumberToObject(o, "image_id", (double)s->img[b->image].id);
        cJSON_AddNumberToObject(o, "category_id", (double)s->cat_id[b->cls]);
        cJSON_AddItemToObject(o, "bbox", cJSON_CreateDoubleArray(v, 4));
        cJSON_AddNumberToObject(o, "area", v[2] * v[3]);
        cJSON_AddNumberToObject(o, "iscrowd", b->iscrowd);
        if (with_score || b->score < 1.f) cJSON_AddNumberToObject(o, "score", round(b->score * 1e5) / 1e5);
        cJSON_AddItemToArray(anns, o);
    }
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!txt) return tsr_errorf(TSR_ERR_NOMEM, "%s: out of memory writing COCO JSON", path);
    tsr_status st = tsr_write_file_atomic(path, txt, strlen(txt), "\n", 1);
    free(txt);
    return st;
}

/* ----------------------------------------------------------- from files */

#define READ_WRAP(call)                                                      \
    char *buf;                                                               \
    size_t len;                                                              \
    tsr_status st = tsr_read_file(path, &buf, &len);                         \
    if (st.code) return st;                                                  \
    st = call;                                                               \
    free(buf);                                                               \
    return st

tsr_status tsr_det_names_read(tsr_det_set *s, const char *path) { READ_WRAP(tsr_det_names_parse(s, buf, len, path)); }
tsr_status tsr_dota_read(tsr_det_set *s, int image, const char *path) { READ_WRAP(tsr_dota_parse(s, image, buf, len, path)); }
tsr_status tsr_yolo_read(tsr_det_set *s, int image, int img_w, int img_h, const char *path) {
    READ_WRAP(tsr_yolo_parse(s, image, img_w, img_h, buf, len, path));
}
tsr_status tsr_voc_read(tsr_det_set *s, int image, const char *path) { READ_WRAP(tsr_voc_parse(s, image, buf, len, path)); }
tsr_status tsr_coco_read(tsr_det_set *s, const char *path) { READ_WRAP(tsr_coco_parse(s, buf, len, path)); }
