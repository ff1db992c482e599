/* tessera io: iSAID masks — the iSAID palette (15 object classes on a black
 * background), semantic colour PNGs -> per-pixel class ids, instance-id
 * PNGs -> per-pixel instance keys, and the boxes of the instances with
 * their classes. src/io/isaid.c. Used by ovadetr (boxes, copy-paste chips)
 * and by semantic segmentation (per-pixel classes).
 *
 * Class ids: 0 background, 1 ship, 2 storage tank, 3 baseball diamond,
 * 4 tennis court, 5 basketball court, 6 ground track field, 7 bridge,
 * 8 large vehicle, 9 small vehicle, 10 helicopter, 11 swimming pool,
 * 12 roundabout, 13 soccer ball field, 14 plane, 15 harbor (the devkit's
 * order). A colour outside the palette maps to TSR_ISAID_IGNORE. */
#ifndef TESSERA_ISAID_H
#define TESSERA_ISAID_H

#include "tessera/core.h"

enum { TSR_ISAID_CLASSES = 16, TSR_ISAID_IGNORE = 255 };

/* names in DOTA's spelling ("small vehicle"), index = class id */
extern const char *const tsr_isaid_names[TSR_ISAID_CLASSES];
/* palette colours (RGB), index = class id */
extern const uint8_t tsr_isaid_palette[TSR_ISAID_CLASSES][3];

/* class id of one RGB colour, TSR_ISAID_IGNORE when not in the palette */
int tsr_isaid_class_of_rgb(uint8_t r, uint8_t g, uint8_t b);
/* class id of a name (DOTA spelling, case and '_' vs ' ' ignored); -1 */
int tsr_isaid_class_of_name(const char *name);

/* RGB pixels (w*h*3) -> class ids (w*h), returns the count of pixels whose
 * colour is not in the palette (they get TSR_ISAID_IGNORE). */
int64_t tsr_isaid_classes_from_rgb(uint8_t *cls, const uint8_t *rgb, int64_t npix);

/* Semantic colour PNG (`*_instance_color_RGB.png`) -> malloc'd class ids */
tsr_status tsr_isaid_read_classes(const char *path, uint8_t **cls, int *w, int *h);
/* Instance PNG (`*_instance_id_RGB.png`) -> malloc'd per-pixel instance key
 * r | g<<8 | b<<16 (0 = no instance). */
tsr_status tsr_isaid_read_instances(const char *path, uint32_t **inst, int *w, int *h);

typedef struct {
    uint32_t key;     /* instance key as in the id PNG */
    int cls;          /* majority class over its pixels (1..15) */
    int x0, y0, x1, y1; /* pixel box, inclusive-exclusive: [x0,x1) x [y0,y1) */
    int64_t area;     /* pixels */
} tsr_isaid_instance;

/* Instances of an id map with the classes from a class map of the same
 * size: one entry per key, sorted by key; instances whose pixels are all
 * background/ignore in cls are dropped. *out malloc'd; returns the count,
 * -1 on OOM. */
int tsr_isaid_instances(tsr_isaid_instance **out, const uint32_t *inst, const uint8_t *cls, int w,
                        int h);

/* Both PNGs of one image -> instances (sizes must agree). */
tsr_status tsr_isaid_read_boxes(const char *color_path, const char *id_path,
                                tsr_isaid_instance **out, int *n, int *w, int *h);

#endif
