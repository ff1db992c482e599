/* tessera io: ONNX model reader over the protobuf wire format, written for
 * narformer's graph tokenizer (which needs structure, not weights). See
 * include/tessera/onnx.h for what is kept and the bounds.
 *
 * Each message is read in two passes over its bytes: the first counts the
 * repeated fields, the second fills arrays of exactly that size in the
 * model's arena. Field numbers are those of onnx/onnx.proto (IR v3+). */
#include "tessera/onnx.h"
#include "tessera/fileio.h"

#include <string.h>

typedef struct {
    const uint8_t *p, *end, *base; /* base: start of the file, for offsets */
} pb;

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

#define PB_ERR(r, ...) tsr_errorf(TSR_ERR_FORMAT, __VA_ARGS__)

static size_t pb_off(const pb *r) { return (size_t)(r->p - r->base); }

static tsr_status pb_varint(pb *r, uint64_t *v) {
    uint64_t x = 0;
    *v = 0;
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end) return PB_ERR(r, "ONNX: truncated varint at byte %zu", pb_off(r));
        uint8_t c = *r->p++;
        if (i == 9 && c > 1) return PB_ERR(r, "ONNX: varint overflow at byte %zu", pb_off(r));
        x |= (uint64_t)(c & 0x7f) << (7 * i);
        if (c < 0x80) {
            *v = x;
            return tsr_ok();
        }
    }
    return PB_ERR(r, "ONNX: varint longer than 10 bytes at byte %zu", pb_off(r));
}

/* next field key; *done when the message is exhausted */
static tsr_status pb_key(pb *r, int *field, int *wt, bool *done) {
    *done = r->p >= r->end;
    if (*done) return tsr_ok();
    uint64_t k;
    tsr_status st = pb_varint(r, &k);
    if (st.code) return st;
    *field = (int)(k >> 3 > 0x1fffffff ? 0 : k >> 3);
    *wt = (int)(k & 7);
    if (*field == 0) return PB_ERR(r, "ONNX: field number 0 at byte %zu", pb_off(r));
    return tsr_ok();
}

/* a length-delimited payload as a sub-reader */
static tsr_status pb_sub(pb *r, pb *sub) {
    uint64_t n;
    sub->p = sub->end = r->p;
    sub->base = r->base;
    tsr_status st = pb_varint(r, &n);
    if (st.code) return st;
    if (n > (uint64_t)(r->end - r->p))
        return PB_ERR(r, "ONNX: length %llu at byte %zu runs past the end of its message",
                      (unsigned long long)n, pb_off(r));
    sub->p = r->p;
    sub->end = r->p + n;
    sub->base = r->base;
    r->p += n;
    return tsr_ok();
}

static tsr_status pb_skip(pb *r, int wt) {
    uint64_t v;
    pb sub;
    switch (wt) {
    case WT_VARINT: return pb_varint(r, &v);
    case WT_I64:
        if (r->end - r->p < 8) return PB_ERR(r, "ONNX: truncated fixed64 at byte %zu", pb_off(r));
        r->p += 8;
        return tsr_ok();
    case WT_I32:
        if (r->end - r->p < 4) return PB_ERR(r, "ONNX: truncated fixed32 at byte %zu", pb_off(r));
        r->p += 4;
        return tsr_ok();
    case WT_LEN: return pb_sub(r, &sub);
    default: return PB_ERR(r, "ONNX: unsupported wire type %d at byte %zu", wt, pb_off(r));
    }
}

static tsr_status pb_expect(pb *r, int wt, int want, const char *what) {
    if (wt != want)
        return PB_ERR(r, "ONNX: %s has wire type %d (expected %d) at byte %zu", what, wt, want,
                      pb_off(r));
    return tsr_ok();
}

static tsr_status pb_string(pb *r, tsr_arena *a, char **out, int *len_out, const char *what) {
    pb sub;
    tsr_status st = pb_sub(r, &sub);
    if (st.code) return st;
    size_t n = (size_t)(sub.end - sub.p);
    if (n > TSR_ONNX_MAX_NAME)
        return PB_ERR(r, "ONNX: %s of %zu bytes at byte %zu (limit %d)", what, n, pb_off(r),
                      TSR_ONNX_MAX_NAME);
    char *s = tsr_arena_alloc(a, n + 1);
    memcpy(s, sub.p, n);
    s[n] = 0;
    *out = s;
    if (len_out) *len_out = (int)n;
    return tsr_ok();
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        tsr_status st_ = (x);                                                                      \
        if (st_.code) return st_;                                                                  \
    } while (0)

/* ------------------------------------------------------------ attributes */

/* number of elements of a repeated scalar field (packed or not) */
static tsr_status count_scalars(pb *r, int wt, int elem_wt, int *count) {
    if (wt == elem_wt) {
        TRY(pb_skip(r, wt));
        (*count)++;
        return tsr_ok();
    }
    if (wt != WT_LEN) return PB_ERR(r, "ONNX: repeated field with wire type %d at byte %zu", wt, pb_off(r));
    pb sub;
    TRY(pb_sub(r, &sub));
    if (elem_wt == WT_I32) {
        if ((sub.end - sub.p) % 4) return PB_ERR(r, "ONNX: packed floats not a multiple of 4 bytes at byte %zu", pb_off(r));
        *count += (int)((sub.end - sub.p) / 4 > TSR_ONNX_MAX_INTS + 1 ? TSR_ONNX_MAX_INTS + 1 : (sub.end - sub.p) / 4);
        return tsr_ok();
    }
    while (sub.p < sub.end && *count <= TSR_ONNX_MAX_INTS) {
        uint64_t v;
        TRY(pb_varint(&sub, &v));
        (*count)++;
    }
    return tsr_ok();
}

static float f32_le(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static tsr_status read_scalars(pb *r, int wt, int elem_wt, int64_t *ints, float *floats, int *k, int cap) {
    if (wt == elem_wt) {
        if (*k >= cap) return tsr_ok();
        if (elem_wt == WT_I32) {
            if (r->end - r->p < 4) return PB_ERR(r, "ONNX: truncated float at byte %zu", pb_off(r));
            floats[(*k)++] = f32_le(r->p);
            r->p += 4;
        } else {
            uint64_t v;
            TRY(pb_varint(r, &v));
            ints[(*k)++] = (int64_t)v;
        }
        return tsr_ok();
    }
    pb sub;
    TRY(pb_sub(r, &sub));
    while (sub.p < sub.end && *k < cap) {
        if (elem_wt == WT_I32) {
            floats[(*k)++] = f32_le(sub.p);
            sub.p += 4;
        } else {
            uint64_t v;
            TRY(pb_varint(&sub, &v));
            ints[(*k)++] = (int64_t)v;
        }
    }
    return tsr_ok();
}

/* AttributeProto: name 1, f 2, i 3, s 4, t 5, g 6, floats 7, ints 8, type 20 */
static tsr_status parse_attr(pb r, tsr_arena *a, tsr_onnx_attr *at) {
    pb r0 = r;
    int n_ints = 0, n_floats = 0, field, wt;
    bool done;
    memset(at, 0, sizeof *at);
    for (;;) {
        TRY(pb_key(&r, &field, &wt, &done));
        if (done) break;
        if (field == 7) TRY(count_scalars(&r, wt, WT_I32, &n_floats));
        else if (field == 8) TRY(count_scalars(&r, wt, WT_VARINT, &n_ints));
        else TRY(pb_skip(&r, wt));
    }
    if (n_ints > TSR_ONNX_MAX_INTS || n_floats > TSR_ONNX_MAX_INTS)
        return PB_ERR(&r, "ONNX: attribute with more than %d values at byte %zu", TSR_ONNX_MAX_INTS,
                      pb_off(&r0));
    if (n_ints) at->ints = tsr_arena_alloc(a, sizeof(int64_t) * (size_t)n_ints);
    if (n_floats) at->floats = tsr_arena_alloc(a, sizeof(float) * (size_t)n_floats);
    int ki = 0, kf = 0, type = 0;
    r = r0;
    for (;;) {
        TRY(pb_key(&r, &field, &wt, &done));
        if (done) break;
        uint64_t v;
        switch (field) {
        case 1:
            TRY(pb_expect(&r, wt, WT_LEN, "attribute name"));
            TRY(pb_string(&r, a, &at->name, NULL, "attribute name"));
            break;
        case 2:
            TRY(pb_expect(&r, wt, WT_I32, "attribute f"));
            if (r.end - r.p < 4) return PB_ERR(&r, "ONNX: truncated float at byte %zu", pb_off(&r));
            at->f = f32_le(r.p);
            r.p += 4;
            if (!type) type = TSR_ONNX_ATTR_FLOAT;
            break;
        case 3:
            TRY(pb_expect(&r, wt, WT_VARINT, "attribute i"));
            TRY(pb_varint(&r, &v));
            at->i = (int64_t)v;
            if (!type) type = TSR_ONNX_ATTR_INT;
            break;
        case 4:
            TRY(pb_expect(&r, wt, WT_LEN, "attribute s"));
            TRY(pb_string(&r, a, &at->s, &at->s_len, "attribute string"));
            if (!type) type = TSR_ONNX_ATTR_STRING;
            break;
        case 7:
            TRY(read_scalars(&r, wt, WT_I32, NULL, at->floats, &kf, n_floats));
            if (!type) type = TSR_ONNX_ATTR_FLOATS;
            break;
        case 8:
            TRY(read_scalars(&r, wt, WT_VARINT, at->ints, NULL, &ki, n_ints));
            if (!type) type = TSR_ONNX_ATTR_INTS;
            break;
        case 20:
            TRY(pb_expect(&r, wt, WT_VARINT, "attribute type"));
            TRY(pb_varint(&r, &v));
            at->type = (int)(v > 100 ? 0 : v);
            break;
        default: TRY(pb_skip(&r, wt));
        }
    }
    if (at->type == 0) at->type = type; /* IR < 3 files omit the type */
    if (at->type != TSR_ONNX_ATTR_FLOAT && at->type != TSR_ONNX_ATTR_INT &&
        at->type != TSR_ONNX_ATTR_STRING && at->type != TSR_ONNX_ATTR_FLOATS &&
        at->type != TSR_ONNX_ATTR_INTS)
        at->type = TSR_ONNX_ATTR_OTHER;
    at->n = at->type == TSR_ONNX_ATTR_INTS ? ki : at->type == TSR_ONNX_ATTR_FLOATS ? kf : 0;
    if (!at->name) return PB_ERR(&r, "ONNX: attribute without a name at byte %zu", pb_off(&r0));
    return tsr_ok();
}

/* ------------------------------------------------------------ nodes */

/* NodeProto: input 1, output 2, name 3, op_type 4, attribute 5, domain 7 */
static tsr_status parse_node(pb r, tsr_arena *a, tsr_onnx_node *nd) {
    pb r0 = r;
    int field, wt;
    bool done;
    memset(nd, 0, sizeof *nd);
    int ni = 0, no = 0, na = 0;
    for (;;) {
        TRY(pb_key(&r, &field, &wt, &done));
        if (done) break;
        if (field == 1) ni++;
        else if (field == 2) no++;
        else if (field == 5) na++;
        TRY(pb_skip(&r, wt));
    }
    if (ni > TSR_ONNX_MAX_IO || no > TSR_ONNX_MAX_IO || na > TSR_ONNX_MAX_ATTRS)
        return PB_ERR(&r, "ONNX: node at byte %zu has %d inputs, %d outputs, %d attributes (limits %d, %d, %d)",
                      pb_off(&r0), ni, no, na, TSR_ONNX_MAX_IO, TSR_ONNX_MAX_IO, TSR_ONNX_MAX_ATTRS);
    nd->in = tsr_arena_calloc(a, sizeof(char *) * (size_t)(ni + 1));
    nd->out = tsr_arena_calloc(a, sizeof(char *) * (size_t)(no + 1));
    nd->attr = tsr_arena_calloc(a, sizeof(tsr_onnx_attr) * (size_t)(na + 1));
    r = r0;
    for (;;) {
        TRY(pb_key(&r, &field, &wt, &done));
        if (done) break;
        pb sub;
        switch (field) {
        case 1:
            TRY(pb_expect(&r, wt, WT_LEN, "node input"));
            TRY(pb_string(&r, a, &nd->in[nd->n_in++], NULL, "node input name"));
            break;
        case 2:
            TRY(pb_expect(&r, wt, WT_LEN, "node output"));
            TRY(pb_string(&r, a, &nd->out[nd->n_out++], NULL, "node output name"));
            break;
        case 3:
            TRY(pb_expect(&r, wt, WT_LEN, "node name"));
            TRY(pb_string(&r, a, &nd->name, NULL, "node name"));
            break;
        case 4:
            TRY(pb_expect(&r, wt, WT_LEN, "node op_type"));
            TRY(pb_string(&r, a, &nd->op_type, NULL, "node op_type"));
            break;
        case 5:
            TRY(pb_expect(&r, wt, WT_LEN, "node attribute"));
            TRY(pb_sub(&r, &sub));
            TRY(parse_attr(sub, a, &nd->attr[nd->n_attr++]));
            break;
        case 7:
            TRY(pb_expect(&r, wt, WT_LEN, "node domain"));
            TRY(pb_string(&r, a, &nd->domain, NULL, "node domain"));
            break;
        default: TRY(pb_skip(&r, wt));
        }
    }
    if (!nd->op_type) return PB_ERR(&r, "ONNX: node at byte %zu has no op_type", pb_off(&r0));
    if (!nd->name) nd->name = nd->n_out ? nd->out[0] : "";
    if (!nd->domain) nd->domain = "";
    return tsr_ok();
}

/* ------------------------------------------------------------ values */

static tsr_status push_dim(pb *r, tsr_onnx_value *v, int64_t d) {
    if (v->ndim >= TSR_ONNX_MAX_DIMS)
        return PB_ERR(r, "ONNX: tensor '%s' has more than %d dims at byte %zu", v->name ? v->name : "?",
                      TSR_ONNX_MAX_DIMS, pb_off(r));
    v->dims[v->ndim++] = d;
    return tsr_ok();
}

/* TensorProto: dims 1 (packed or not), data_type 2, name 8; data skipped */
static tsr_status parse_tensor(pb r, tsr_arena *a, tsr_onnx_value *v) {
    int field, wt;
    bool done;
    memset(v, 0, sizeof *v);
    for (;;) {
        TRY(pb_key(&r, &field, &wt, &done));
        if (done) break;
        uint64_t x;
        if (field == 1 && wt == WT_VARINT) {
            TRY(pb_varint(&r, &x));
            TRY(push_dim(&r, v, (int64_t)x));
        } else if (field == 1 && wt == WT_LEN) {
            pb sub;
            TRY(pb_sub(&r, &sub));
            while (sub.p < sub.end) {
                TRY(pb_varint(&sub, &x));
                TRY(push_dim(&r, v, (int64_t)x));
            }
        } else if (field == 2 && wt == WT_VARINT) {
            TRY(pb_varint(&r, &x));
            v->elem_type = (int)(x > 1000 ? 0 : x);
        } else if (field == 8 && wt == WT_LEN) {
            TRY(pb_string(&r, a, &v->name, NULL, "tensor name"));
        } else TRY(pb_skip(&r, wt));
    }
    for (int i = 0; i < v->ndim; i++)
        if (v->dims[i] < 0 || v->dims[i] > ((int64_t)1 << 40))
            return PB_ERR(&r, "ONNX: initializer '%s' has dim %lld out of range",
                          v->name ? v->name : "?", (long long)v->dims[i]);
    if (!v->name) v->name = "";
    return tsr_ok();
}

/* ValueInfoProto: name 1, type 2 -> TypeProto: tensor_type 1 -> elem_type 1,
 * shape 2 -> TensorShapeProto: dim 1 -> dim_value 1 | dim_param 2 */
static tsr_status parse_shape(pb r, tsr_onnx_value *v) {
    int field, wt;
    bool done;
    v->ndim = 0;
    for (;;) {
        TRY(pb_key(&r, &field, &wt, &done));
        if (done) break;
        if (field != 1 || wt != WT_LEN) {
            TRY(pb_skip(&r, wt));
            continue;
        }
        pb dim;
        TRY(pb_sub(&r, &dim));
        int64_t d = -1;
        int f2, w2;
        bool dn;
        for (;;) {
            TRY(pb_key(&dim, &f2, &w2, &dn));
            if (dn) break;
            uint64_t x;
            if (f2 == 1 && w2 == WT_VARINT) {
                TRY(pb_varint(&dim, &x));
                d = (int64_t)x >= 0 && (int64_t)x <= ((int64_t)1 << 40) ? (int64_t)x : -1;
            } else TRY(pb_skip(&dim, w2));
        }
        TRY(push_dim(&r, v, d));
    }
    return tsr_ok();
}

static tsr_status parse_value_info(pb r, tsr_arena *a, tsr_onnx_value *v) {
    int field, wt;
    bool done;
    memset(v, 0, sizeof *v);
    v->ndim = -1;
    for (;;) {
        TRY(pb_key(&r, &field, &wt, &done));
        if (done) break;
        if (field == 1 && wt == WT_LEN) {
            TRY(pb_string(&r, a, &v->name, NULL, "value name"));
        } else if (field == 2 && wt == WT_LEN) {
            pb type;
            TRY(pb_sub(&r, &type));
            int f2, w2;
            bool d2;
            for (;;) {
                TRY(pb_key(&type, &f2, &w2, &d2));
                if (d2) break;
                if (f2 != 1 || w2 != WT_LEN) {
                    TRY(pb_skip(&type, w2));
                    continue;
                }
                pb tt;
                TRY(pb_sub(&type, &tt));
                int f3, w3;
                bool d3;
                for (;;) {
                    TRY(pb_key(&tt, &f3, &w3, &d3));
                    if (d3) break;
                    uint64_t x;
                    if (f3 == 1 && w3 == WT_VARINT) {
                        TRY(pb_varint(&tt, &x));
                        v->elem_type = (int)(x > 1000 ? 0 : x);
                    } else if (f3 == 2 && w3 == WT_LEN) {
                        pb sh;
                        TRY(pb_sub(&tt, &sh));
                        TRY(parse_shape(sh, v));
                    } else TRY(pb_skip(&tt, w3));
                }
            }
        } else TRY(pb_skip(&r, wt));
    }
    if (!v->name) v->name = "";
    return tsr_ok();
}

/* ------------------------------------------------------------ graph, model */

/* GraphProto: node 1, initializer 5, input 11, output 12 */
static tsr_status parse_graph(pb r, tsr_onnx_model *m) {
    pb r0 = r;
    int field, wt;
    bool done;
    int nn = 0, ni = 0, nin = 0, nout = 0;
    for (;;) {
        TRY(pb_key(&r, &field, &wt, &done));
        if (done) break;
        if (field == 1) nn++;
        else if (field == 5) ni++;
        else if (field == 11) nin++;
        else if (field == 12) nout++;
        TRY(pb_skip(&r, wt));
    }
    if (nn > TSR_ONNX_MAX_NODES || ni > TSR_ONNX_MAX_NODES || nin > TSR_ONNX_MAX_NODES ||
        nout > TSR_ONNX_MAX_NODES)
        return PB_ERR(&r, "ONNX: graph with more than %d nodes or values", TSR_ONNX_MAX_NODES);
    tsr_arena *a = &m->arena;
    m->nodes = tsr_arena_calloc(a, sizeof(tsr_onnx_node) * (size_t)(nn + 1));
    m->inits = tsr_arena_calloc(a, sizeof(tsr_onnx_value) * (size_t)(ni + 1));
    m->inputs = tsr_arena_calloc(a, sizeof(tsr_onnx_value) * (size_t)(nin + 1));
    m->outputs = tsr_arena_calloc(a, sizeof(tsr_onnx_value) * (size_t)(nout + 1));
    r = r0;
    for (;;) {
        TRY(pb_key(&r, &field, &wt, &done));
        if (done) break;
        pb sub;
        if (field == 1 || field == 5 || field == 11 || field == 12) {
            TRY(pb_expect(&r, wt, WT_LEN, "graph entry"));
            TRY(pb_sub(&r, &sub));
        }
        switch (field) {
        case 1: TRY(parse_node(sub, a, &m->nodes[m->n_nodes++])); break;
        case 5: TRY(parse_tensor(sub, a, &m->inits[m->n_inits++])); break;
        case 11: TRY(parse_value_info(sub, a, &m->inputs[m->n_inputs++])); break;
        case 12: TRY(parse_value_info(sub, a, &m->outputs[m->n_outputs++])); break;
        default: TRY(pb_skip(&r, wt));
        }
    }
    return tsr_ok();
}

/* OperatorSetIdProto: domain 1, version 2 */
static tsr_status parse_opset(pb r, tsr_onnx_model *m) {
    int field, wt;
    bool done;
    int64_t version = 0;
    bool default_domain = true;
    for (;;) {
        TRY(pb_key(&r, &field, &wt, &done));
        if (done) break;
        uint64_t x;
        if (field == 1 && wt == WT_LEN) {
            pb s;
            TRY(pb_sub(&r, &s));
            size_t n = (size_t)(s.end - s.p);
            default_domain = n == 0 || (n == 7 && !memcmp(s.p, "ai.onnx", 7));
        } else if (field == 2 && wt == WT_VARINT) {
            TRY(pb_varint(&r, &x));
            version = (int64_t)(x > 100000 ? 0 : x);
        } else TRY(pb_skip(&r, wt));
    }
    if (default_domain) m->opset = version;
    return tsr_ok();
}

/* ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8 */
tsr_status tsr_onnx_parse(tsr_onnx_model *m, const uint8_t *buf, size_t n) {
    memset(m, 0, sizeof *m);
    tsr_arena_init(&m->arena, 1 << 16);
    pb r = {buf, buf + n, buf};
    int field, wt, n_graph = 0;
    bool done;
    tsr_status st = tsr_ok();
    for (;;) {
        if ((st = pb_key(&r, &field, &wt, &done)).code || done) break;
        uint64_t x;
        pb sub;
        if (field == 1 && wt == WT_VARINT) {
            if ((st = pb_varint(&r, &x)).code) break;
            m->ir_version = (int64_t)(x > 1000 ? 0 : x);
        } else if (field == 2 && wt == WT_LEN) {
            if ((st = pb_string(&r, &m->arena, &m->producer, NULL, "producer name")).code) break;
        } else if (field == 7 && wt == WT_LEN) {
            if (n_graph++) {
                st = PB_ERR(&r, "ONNX: more than one graph in the model");
                break;
            }
            if ((st = pb_sub(&r, &sub)).code || (st = parse_graph(sub, m)).code) break;
        } else if (field == 8 && wt == WT_LEN) {
            if ((st = pb_sub(&r, &sub)).code || (st = parse_opset(sub, m)).code) break;
        } else if ((st = pb_skip(&r, wt)).code) break;
    }
    if (!st.code && !n_graph) st = tsr_errorf(TSR_ERR_FORMAT, "ONNX: no graph in the file (not an ONNX model?)");
    if (!st.code && m->n_nodes == 0) st = tsr_errorf(TSR_ERR_FORMAT, "ONNX: the graph has no nodes");
    if (st.code) {
        tsr_onnx_free(m);
        memset(m, 0, sizeof *m);
        tsr_arena_init(&m->arena, 1 << 12);
    }
    return st;
}

tsr_status tsr_onnx_load(tsr_onnx_model *m, const char *path) {
    char *data = NULL;
    size_t len = 0;
    memset(m, 0, sizeof *m);
    tsr_arena_init(&m->arena, 1 << 12);
    tsr_status st = tsr_read_file(path, &data, &len);
    if (st.code) return st;
    tsr_arena_free(&m->arena);
    st = tsr_onnx_parse(m, (const uint8_t *)data, len);
    free(data);
    if (st.code) {
        tsr_status e = tsr_errorf(st.code, "%s: %s", path, st.msg);
        return e;
    }
    return st;
}

void tsr_onnx_free(tsr_onnx_model *m) {
    tsr_arena_free(&m->arena);
    memset(m, 0, sizeof *m);
}

const tsr_onnx_attr *tsr_onnx_node_attr(const tsr_onnx_node *nd, const char *name) {
    for (int i = 0; i < nd->n_attr; i++)
        if (nd->attr[i].name && !strcmp(nd->attr[i].name, name)) return &nd->attr[i];
    return NULL;
}

const tsr_onnx_value *tsr_onnx_find_init(const tsr_onnx_model *m, const char *name) {
    for (int i = 0; i < m->n_inits; i++)
        if (!strcmp(m->inits[i].name, name)) return &m->inits[i];
    return NULL;
}
