"""Reference tokenizer for narformer's whole-network tokens (NAR-Former V2,
sec. 3.2), written from the paper's definitions, independent of the C code:
its own protobuf reader, shape inference for the operators of the fixture,
FLOPs/params as NNLQP counts them, and the 152-d token layout.

    /usr/bin/python3 tools/refs/gen_narformer_tokens.py
writes tests/refs/narformer_tokens.tref from
../shared/data/nnlqp/resnet18-v1-7-no-weight.onnx (tokens, adj, static,
flops/params/mem totals, op ids)."""
import math
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tref  # noqa: E402

OPS = ["Conv", "Relu", "Add", "Sigmoid", "Reshape", "MaxPool", "Split", "GlobalAveragePool",
       "Gemm", "Transpose", "Upsample", "BatchNormalization", "Mul", "Concat", "Flatten",
       "AveragePool", "Cast", "MatMul", "ReduceMean", "Pow", "Slice", "Div", "Sub", "Sqrt",
       "Clip", "Softmax", "Tanh", "ConvTranspose", "HardSigmoid", "HardSwish", "Identity", "Other"]


# ---------------------------------------------------------------- protobuf
def varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def fields(b):
    i, out = 0, []
    while i < len(b):
        k, i = varint(b, i)
        f, wt = k >> 3, k & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.append((f, wt, v))
    return out


def ints_of(entries):
    out = []
    for wt, v in entries:
        if wt == 0:
            out.append(v)
        else:
            j = 0
            while j < len(v):
                x, j = varint(v, j)
                out.append(x)
    return out


def parse_attr(b):
    name, val = None, None
    ints = []
    for f, wt, v in fields(b):
        if f == 1:
            name = v.decode()
        elif f == 2:
            val = struct.unpack("<f", v)[0]
        elif f == 3:
            val = v
        elif f == 4:
            val = v.decode()
        elif f == 8:
            ints.append((wt, v))
    if ints:
        val = ints_of(ints)
    return name, val


def load(path):
    m = fields(open(path, "rb").read())
    g = fields([v for f, _, v in m if f == 7][0])
    nodes, inits, inputs = [], {}, []
    for f, _, v in g:
        if f == 1:
            nd = {"in": [], "out": [], "attr": {}}
            for ff, _, vv in fields(v):
                if ff == 1:
                    nd["in"].append(vv.decode())
                elif ff == 2:
                    nd["out"].append(vv.decode())
                elif ff == 4:
                    nd["op"] = vv.decode()
                elif ff == 5:
                    k, a = parse_attr(vv)
                    nd["attr"][k] = a
            nodes.append(nd)
        elif f == 5:
            dims, name = [], None
            for ff, wt, vv in fields(v):
                if ff == 1:
                    dims += ints_of([(wt, vv)])
                elif ff == 8:
                    name = vv.decode()
            inits[name] = dims
        elif f == 11:
            name, dims = None, []
            for ff, _, vv in fields(v):
                if ff == 1:
                    name = vv.decode()
                elif ff == 2:
                    tt = [x for fx, _, x in fields(vv) if fx == 1][0]
                    sh = [x for fx, _, x in fields(tt) if fx == 2][0]
                    for fd, _, d in fields(sh):
                        dv = [x for fx, _, x in fields(d) if fx == 1]
                        dims.append(dv[0] if dv else 1)
            inputs.append((name, dims))
    return nodes, inits, inputs


# ---------------------------------------------------------------- encoding
def enc(x, nf=5):
    out = []
    for j in range(nf):
        f = 10000.0 ** (-j / nf)
        out += [math.sin(x * f), math.cos(x * f)]
    return out


def conv_out(i, k, s, p0, p1, d=1):
    return (i + p0 + p1 - d * (k - 1) - 1) // s + 1


def tokenize(path):
    nodes, inits, inputs = load(path)
    shapes = {k: list(v) for k, v in inits.items()}
    toks = []  # (op index or -1, attrs, shape, flops, params)
    producer = {}
    for name, dims in inputs:
        if name in inits:
            continue
        shapes[name] = dims
        producer[name] = len(toks)
        toks.append((-1, [], dims, 0.0, 0.0))
    edges = []
    # the file lists nodes in topological order (ONNX requires it)
    for nd in nodes:
        x = shapes[nd["in"][0]]
        a = nd["attr"]
        op = nd["op"]
        fl = pa = 0.0
        attrs = []
        if op == "Conv":
            w = shapes[nd["in"][1]]
            k = a.get("kernel_shape", w[2:])
            s = a.get("strides", [1, 1])
            p = a.get("pads", [0, 0, 0, 0])
            dl = a.get("dilations", [1, 1])
            g = a.get("group", 1)
            bias = 1 if len(nd["in"]) > 2 else 0
            out = [x[0], w[0], conv_out(x[2], k[0], s[0], p[0], p[2], dl[0]),
                   conv_out(x[3], k[1], s[1], p[1], p[3], dl[1])]
            ck = w[1] * k[0] * k[1]
            fl = out[0] * out[1] * out[2] * out[3] * (2 * ck - 1 + bias)
            pa = w[0] * (ck + bias)
            attrs = [k[0], s[0], p[0], dl[0], g, bias]
        elif op in ("MaxPool", "AveragePool"):
            k, s = a["kernel_shape"], a.get("strides", [1, 1])
            p = a.get("pads", [0, 0, 0, 0])
            out = [x[0], x[1], conv_out(x[2], k[0], s[0], p[0], p[2]), conv_out(x[3], k[1], s[1], p[1], p[3])]
            if op == "AveragePool":
                fl = float(np.prod(out)) * k[0] * k[1]
            attrs = [k[0], s[0], p[0]]
        elif op == "BatchNormalization":
            out = list(x)
            fl, pa = 4.0 * float(np.prod(x)), 4.0 * x[1]
        elif op == "Relu":
            out = list(x)
        elif op == "Add":
            out = list(x)
            fl = float(np.prod(out))
        elif op == "GlobalAveragePool":
            out = [x[0], x[1], 1, 1]
            fl = float(np.prod(x))
        elif op == "Flatten":
            out = [x[0], int(np.prod(x[1:]))]
        elif op == "Gemm":
            w = shapes[nd["in"][1]]
            n_out = w[0] if a.get("transB", 0) else w[1]
            bias = 1 if len(nd["in"]) > 2 else 0
            out = [x[0], n_out]
            fl = x[0] * n_out * (2.0 * x[1] - 1 + bias)
            pa = n_out * (x[1] + bias)
            attrs = [bias]
        else:
            raise SystemExit("reference tokenizer: op %s not covered" % op)
        idx = len(toks)
        for i in nd["in"]:
            if i in producer:
                edges.append((producer[i], idx))
        for o in nd["out"]:
            shapes[o] = out
            producer[o] = idx
        toks.append((OPS.index(op), attrs, out, fl, pa))
    n = len(toks)
    T = np.zeros((n, 152), dtype=np.float64)
    A = np.zeros((n, n), dtype=np.float64)
    tf = tp = tm = 0.0
    for i, (op, attrs, shape, fl, pa) in enumerate(toks):
        if op >= 0:
            T[i, op] = 1
            for j, v in enumerate(attrs):
                T[i, 32 + 10 * j: 42 + 10 * j] = enc(v)
        sh = (list(shape) + [0, 0, 0, 0])[:4]
        for j, v in enumerate(sh):
            T[i, 112 + 10 * j: 122 + 10 * j] = enc(v)
        tf += fl
        tp += pa
        if op >= 0:
            tm += float(np.prod(shape)) + pa
    for s, d in edges:
        if s != d:
            A[s, d] = A[d, s] = 1
    batch = toks[0][2][0]
    S = np.array(enc(batch) + enc(tf / 1e9) + enc(tp / 1e9) + enc(tm / 1e9))
    ops = np.array([t[0] for t in toks])
    return T, A, S, np.array([tf, tp, tm]), ops


if __name__ == "__main__":
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    path = os.path.join(root, "..", "shared", "data", "nnlqp", "resnet18-v1-7-no-weight.onnx")
    T, A, S, tot, ops = tokenize(path)
    print("tokens", T.shape, "edges", int(A.sum()) // 2, "GFLOPs %.4f Gparams %.6f Gmem %.6f" % tuple(tot / 1e9))
    tref.save("narformer_tokens", {
        "tokens": torch.tensor(T), "adj": torch.tensor(A), "static": torch.tensor(S),
        "totals_g": torch.tensor(tot / 1e9), "ops": torch.tensor(ops, dtype=torch.int32)})
