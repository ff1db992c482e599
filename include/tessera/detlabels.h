/* tessera io: object-detection label files — DOTA labelTxt (oriented boxes
 * reduced to horizontal ones, `difficult` kept), YOLO txt, VOC / DIOR XML
 * (bndbox and robndbox), and COCO detection JSON in and out (pycocotools
 * layout: images, categories, annotations with bbox [x,y,w,h]; results add
 * `score`). src/io/detlabels.c. Used by ovadetr; any detector can reuse it.
 *
 * Every reader appends to one tsr_det_set: a class table (names, index =
 * class id), an image table and a flat box list whose boxes name their
 * image and class by index. Boxes are corners in pixels, x0 <= x1, y0 <= y1.
 * The *_parse functions read a memory buffer (`name` is used in messages);
 * the *_read ones read a file. A malformed file is a one-line status naming
 * the file and the line (or field) at fault; the set is left as it was. */
#ifndef TESSERA_DETLABELS_H
#define TESSERA_DETLABELS_H

#include "tessera/core.h"

typedef struct {
    float x0, y0, x1, y1;
    float score;       /* 1 for ground truth */
    int32_t cls;       /* index into set->names */
    int32_t image;     /* index into set->img */
    uint8_t difficult; /* DOTA / VOC flag */
    uint8_t iscrowd;
} tsr_det_box;

typedef struct {
    char *file;  /* as written in the label file (may be empty) */
    int w, h;    /* 0 when unknown */
    int64_t id;  /* COCO image id */
} tsr_det_image;

typedef struct {
    tsr_det_box *box;
    int n_box, cap_box;
    char **names;     /* class names, index = class id */
    int64_t *cat_id;  /* COCO category id per class */
    int n_cls, cap_cls;
    tsr_det_image *img;
    int n_img, cap_img;
} tsr_det_set;

void tsr_det_set_init(tsr_det_set *s);
void tsr_det_set_free(tsr_det_set *s);
/* class index of name, added (with category id n_cls+1) when absent; -1 on OOM */
int tsr_det_class(tsr_det_set *s, const char *name);
int tsr_det_class_find(const tsr_det_set *s, const char *name); /* -1 when absent */
/* appends an image (file may be NULL); returns its index or -1 on OOM */
int tsr_det_add_image(tsr_det_set *s, const char *file, int w, int h);
/* appends a box; false on OOM */
bool tsr_det_add_box(tsr_det_set *s, const tsr_det_box *b);

/* One name per line (YOLO's *.names); blank lines end nothing, they are
 * skipped. Adds classes in file order. */
tsr_status tsr_det_names_parse(tsr_det_set *s, const char *buf, size_t len, const char *name);
tsr_status tsr_det_names_read(tsr_det_set *s, const char *path);

/* DOTA labelTxt: lines "x1 y1 x2 y2 x3 y3 x4 y4 class difficult" (difficult
 * optional), header lines "imagesource:..." and "gsd:..." skipped. The box
 * is the axis-aligned hull of the four corners. Class names are added. */
tsr_status tsr_dota_parse(tsr_det_set *s, int image, const char *buf, size_t len,
                          const char *name);
tsr_status tsr_dota_read(tsr_det_set *s, int image, const char *path);

/* YOLO txt: lines "cls cx cy w h", normalised to [0,1] by the image size
 * (img_w, img_h > 0). cls must be < s->n_cls (load the names first). */
tsr_status tsr_yolo_parse(tsr_det_set *s, int image, int img_w, int img_h, const char *buf,
                          size_t len, const char *name);
tsr_status tsr_yolo_read(tsr_det_set *s, int image, int img_w, int img_h, const char *path);

/* VOC / DIOR XML: <size><width>/<height> set the image's size when given;
 * each <object> has <name>, optional <difficult>, and either <bndbox>
 * (xmin ymin xmax ymax) or DIOR's <robndbox> (four corners; hull). */
tsr_status tsr_voc_parse(tsr_det_set *s, int image, const char *buf, size_t len, const char *name);
tsr_status tsr_voc_read(tsr_det_set *s, int image, const char *path);

/* COCO detection JSON: images (id, file_name, width, height), categories
 * (id, name), annotations (image_id, category_id, bbox, iscrowd, score).
 * Appends to s (classes matched by name). A bare results list (pycocotools
 * loadRes input) is refused: it has no image table. */
tsr_status tsr_coco_parse(tsr_det_set *s, const char *buf, size_t len, const char *name);
tsr_status tsr_coco_read(tsr_det_set *s, const char *path);
/* Writes s as COCO detection JSON (atomically; "-" is stdout). Boxes whose
 * score < 1 or `with_score` get a "score" field, so the file loads both as
 * ground truth and, through its "annotations", as pycocotools results. */
tsr_status tsr_coco_write(const tsr_det_set *s, const char *path, bool with_score);

#endif
