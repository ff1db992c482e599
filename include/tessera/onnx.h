/* tessera io: a bounded reader of ONNX model files (protobuf wire format,
 * no protobuf library), enough to take a network's structure: the graph's
 * nodes (op type, inputs, outputs, attributes), its initializers (names and
 * dims only; weight data is skipped), its inputs and outputs with their
 * static shapes, and the default-domain opset. src/io/onnx.c.
 *
 * Hostile input: every length is checked against the bytes left, varints
 * are at most 10 bytes, nesting is fixed by the schema (subgraphs inside
 * attributes are skipped, not parsed), and counts are capped (nodes, names,
 * dims, ints per attribute). A malformed file gives a status naming the
 * offset and the field; nothing is read outside the buffer. */
#ifndef TESSERA_ONNX_H
#define TESSERA_ONNX_H

#include "tessera/core.h"

#define TSR_ONNX_MAX_DIMS 8        /* tensor rank we keep */
#define TSR_ONNX_MAX_NODES 200000
#define TSR_ONNX_MAX_IO 64         /* inputs / outputs per node */
#define TSR_ONNX_MAX_ATTRS 64      /* attributes per node */
#define TSR_ONNX_MAX_INTS 256      /* ints / floats per attribute */
#define TSR_ONNX_MAX_NAME 4096     /* bytes in a name or string */

typedef enum {
    TSR_ONNX_ATTR_OTHER = 0, /* tensor, graph, strings, ...: kept by name only */
    TSR_ONNX_ATTR_FLOAT = 1,
    TSR_ONNX_ATTR_INT = 2,
    TSR_ONNX_ATTR_STRING = 3,
    TSR_ONNX_ATTR_FLOATS = 6,
    TSR_ONNX_ATTR_INTS = 7,
} tsr_onnx_attr_type;

typedef struct {
    char *name;
    int type;        /* tsr_onnx_attr_type (ONNX AttributeProto.type values) */
    float f;
    int64_t i;
    char *s;         /* STRING, NUL-terminated (may hold NULs inside: s_len) */
    int s_len;
    int n;           /* INTS / FLOATS count */
    int64_t *ints;
    float *floats;
} tsr_onnx_attr;

typedef struct {
    char *name, *op_type, *domain;
    int n_in, n_out, n_attr;
    char **in, **out;   /* an empty input name means "absent optional input" */
    tsr_onnx_attr *attr;
} tsr_onnx_node;

/* An initializer, or a graph input/output with a static shape. dims of -1
 * are symbolic (dim_param) or unknown. */
typedef struct {
    char *name;
    int ndim;           /* -1: no shape given */
    int64_t dims[TSR_ONNX_MAX_DIMS];
    int elem_type;      /* TensorProto.DataType, 0 if unknown */
} tsr_onnx_value;

typedef struct {
    int64_t ir_version, opset;   /* opset of the default domain; 0 if absent */
    char *producer;
    tsr_onnx_node *nodes;
    int n_nodes;
    tsr_onnx_value *inits, *inputs, *outputs;
    int n_inits, n_inputs, n_outputs;
    tsr_arena arena;             /* every string and array above */
} tsr_onnx_model;

/* Parses a ModelProto held in buf (not kept). On error m is left empty
 * (free is still safe). */
tsr_status tsr_onnx_parse(tsr_onnx_model *m, const uint8_t *buf, size_t n);
tsr_status tsr_onnx_load(tsr_onnx_model *m, const char *path);
void tsr_onnx_free(tsr_onnx_model *m);

/* lookups (NULL when absent) */
const tsr_onnx_attr *tsr_onnx_node_attr(const tsr_onnx_node *nd, const char *name);
const tsr_onnx_value *tsr_onnx_find_init(const tsr_onnx_model *m, const char *name);

#endif
