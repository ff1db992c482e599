#!/usr/bin/python3
"""Check tessera's byte-level BPE against independent encoders.

Reads a tokenizer.json written by `tessera lm tokenizer-train` and a token
file written by `tessera lm tokenize` (one split), re-encodes some of that
split's files here and compares the ids document by document.

Encoders used here:
  1. Pure Python (always): the split is GPT-2's regex run by Python's `re`
     on an ASCII "shadow" of the text (each character replaced by a stand-in
     of its class, following the rule documented in include/tessera/bpe.h:
     White_Space, a small table of digit and punctuation blocks, letters
     otherwise; bytes that are not well-formed UTF-8 are letters), and BPE
     is GPT-2's original
     loop (lowest-rank bigram, merge all its occurrences, repeat) over the
     merges of the JSON file.
  2. Hugging Face `tokenizers` (Python), when importable.
  3. Hugging Face tokenizers.js (`@huggingface/tokenizers`, npm) under node,
     with --hf-js DIR (a directory whose node_modules holds the package).
For 2 and 3 only files that are valid UTF-8 are compared; files that are
pure ASCII must agree exactly, others are reported (HF classifies non-ASCII
characters by the full Unicode tables, tessera by a small table).

Usage:
  tools/bpe_check.py --tokenizer tok.json --tokens val.bin \
      [--data /usr/lib/python3.11] [--val-list data/python_val_files.txt] \
      [--split val] [--files 40] [--hf-js /tmp/hftok]
Exit status 0 when every compared file agrees.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

# ---------------------------------------------------------------- byte map


def bytes_to_unicode():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cps = {}
    extra = 0
    for b in range(256):
        if b in keep:
            cps[b] = b
        else:
            cps[b] = 256 + extra
            extra += 1
    return {b: chr(c) for b, c in cps.items()}


B2U = bytes_to_unicode()

# ---------------------------------------------------------------- splitter

GPT2_ASCII = re.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""", re.ASCII
)
UNIT = re.compile(
    rb"[\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}|[\x80-\xff]",
    re.S,
)
WHITE_SPACE = {0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000} | set(range(0x2000, 0x200B))
P_RANGES = [(0x2000, 0x206F), (0x20A0, 0x20CF), (0x2190, 0x23FF), (0x2500, 0x26FF), (0x3001, 0x3004),
            (0x3008, 0x3020), (0x1F300, 0x1FAFF)]
N_RANGES = [(0x0660, 0x0669), (0x06F0, 0x06F9), (0x0966, 0x096F), (0xFF10, 0xFF19)]


def shadow_of(cp):
    """stand-in ASCII character for a non-ASCII code point (tessera's table)"""
    if cp in WHITE_SPACE:
        return "\t"  # whitespace that is not " "
    if cp < 0x100:
        if cp < 0xA0 or cp in (0xD7, 0xF7):
            return "#"
        if cp >= 0xC0 or cp in (0xAA, 0xB5, 0xBA):
            return "a"
        return "0" if cp in (0xB2, 0xB3, 0xB9, 0xBC, 0xBD, 0xBE) else "#"
    if any(lo <= cp <= hi for lo, hi in N_RANGES):
        return "0"
    if any(lo <= cp <= hi for lo, hi in P_RANGES):
        return "#"
    if 0xFF01 <= cp <= 0xFF5E:
        return "a" if (0xFF21 <= cp <= 0xFF3A or 0xFF41 <= cp <= 0xFF5A) else "#"
    return "a"


def pretokenize(data: bytes):
    units = UNIT.findall(data)
    shadow = []
    for u in units:
        if len(u) == 1 and u[0] < 0x80:
            shadow.append(chr(u[0]))
        elif len(u) > 1:
            shadow.append(shadow_of(ord(u.decode("utf-8"))))
        else:
            shadow.append("a")  # a byte outside well-formed UTF-8: a letter
    starts = [0]
    for u in units:
        starts.append(starts[-1] + len(u))
    return [data[starts[m.start()]:starts[m.end()]] for m in GPT2_ASCII.finditer("".join(shadow))]


# --------------------------------------------------------------------- BPE


class PyBPE:
    def __init__(self, tj):
        model = tj["model"]
        self.vocab = model["vocab"]
        self.ranks = {}
        for i, m in enumerate(model["merges"]):
            pair = tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
            self.ranks.setdefault(pair, i)
        self.inv = {v: k for k, v in self.vocab.items()}
        self.specials = {t["id"]: t["content"] for t in tj.get("added_tokens") or []}
        self.cache = {}

    def bpe(self, word: str):
        if word in self.cache:
            return self.cache[word]
        syms = list(word)
        while len(syms) > 1:
            pairs = set(zip(syms, syms[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == best[0] and syms[i + 1] == best[1]:
                    out.append(syms[i] + syms[i + 1])
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            syms = out
        ids = [self.vocab[s] for s in syms]
        self.cache[word] = ids
        return ids

    def encode(self, data: bytes):
        ids = []
        for w in pretokenize(data):
            ids.extend(self.bpe("".join(B2U[b] for b in w)))
        return ids

    def decode(self, ids):
        u2b = {v: k for k, v in B2U.items()}
        out = bytearray()
        for i in ids:
            if i in self.specials:
                out += self.specials[i].encode()
            else:
                out += bytes(u2b[c] for c in self.inv[i])
        return bytes(out)


# ------------------------------------------------------------- token files


def read_tokens(path):
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:8] != b"TSRTOKS1":
            sys.exit(f"{path}: not a tessera token file")
        _ver, _hl, _hash, n, nbytes, ndocs, vocab, sep = struct.unpack("<IIQQQIIi", head[8:52])
        data = f.read()
    if len(data) != 4 * n:
        sys.exit(f"{path}: size does not match the header")
    ids = list(struct.unpack(f"<{n}i", data))
    return ids, nbytes, ndocs, vocab, sep


def split_docs(ids, sep):
    docs, cur = [], []
    for i in ids:
        if i == sep:
            docs.append(cur)
            cur = []
        else:
            cur.append(i)
    if cur:
        docs.append(cur)
    return docs


def list_split(root, val_list, split, ext):
    listed = set()
    with open(val_list, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n").rstrip(" \t")
            if line and not line.startswith("#"):
                listed.add(line)
    rels = []
    skip = {"__pycache__", "site-packages", "dist-packages"}
    rootb = os.fsencode(root)

    def walk(rel):
        d = os.path.join(rootb, rel) if rel else rootb
        for e in os.scandir(d):
            if e.name.startswith(b"."):
                continue
            r = os.path.join(rel, e.name) if rel else e.name
            if e.is_dir(follow_symlinks=False):
                if os.fsdecode(e.name) not in skip:
                    walk(r)
            elif e.name.endswith(os.fsencode(ext)) and os.path.isfile(os.path.join(rootb, r)):
                rels.append(r)

    walk(b"")
    rels.sort()  # bytes order, as strcmp
    want_val = split == "val"
    return [os.fsdecode(r) for r in rels if (os.fsdecode(r) in listed) == want_val]


# ------------------------------------------------------------------ HF side

JS = r"""
import fs from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";
const [tokPath, listPath] = process.argv.slice(2);
const tok = new Tokenizer(JSON.parse(fs.readFileSync(tokPath, "utf8")), {});
const out = [];
for (const p of fs.readFileSync(listPath, "utf8").split("\n").filter(Boolean)) {
  const text = fs.readFileSync(p, "utf8");
  out.push(tok.encode(text, { add_special_tokens: false }).ids);
}
process.stdout.write(JSON.stringify(out));
"""


def hf_js_encode(js_dir, tok_path, paths):
    with tempfile.TemporaryDirectory() as td:
        script = os.path.join(js_dir, "_bpe_check_tmp.mjs")
        lst = os.path.join(td, "files.txt")
        with open(lst, "w", encoding="utf-8") as f:
            f.write("\n".join(paths) + "\n")
        with open(script, "w") as f:
            f.write(JS)
        try:
            r = subprocess.run(["node", script, tok_path, lst], capture_output=True, text=True, check=False)
        finally:
            os.unlink(script)
    if r.returncode != 0:
        sys.exit(f"node failed: {r.stderr.strip()[:2000]}")
    return json.loads(r.stdout)


def hf_py_encode(tok_path, texts):
    try:
        from tokenizers import Tokenizer  # type: ignore
    except ImportError:
        return None
    t = Tokenizer.from_file(tok_path)
    return [t.encode(x, add_special_tokens=False).ids for x in texts]


# --------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--tokens", required=True, help="token file of the split (tessera lm tokenize)")
    ap.add_argument("--data", default="/usr/lib/python3.11")
    ap.add_argument("--val-list", default="data/python_val_files.txt")
    ap.add_argument("--split", choices=["train", "val"], default="val")
    ap.add_argument("--ext", default=".py")
    ap.add_argument("--files", type=int, default=40, help="files to compare, spread over the split (0: all)")
    ap.add_argument("--hf-js", help="directory with node_modules/@huggingface/tokenizers")
    a = ap.parse_args()

    with open(a.tokenizer, encoding="utf-8") as f:
        tj = json.load(f)
    py = PyBPE(tj)
    ids, nbytes, ndocs, vocab, sep = read_tokens(a.tokens)
    rels = list_split(a.data, a.val_list, a.split, a.ext)
    docs = split_docs(ids, sep) if sep >= 0 else None
    if docs is None or len(docs) != len(rels) or ndocs != len(rels):
        sys.exit(f"token file has {ndocs} documents, the {a.split} split {len(rels)} files (or no separator)")
    if vocab != len(py.inv) + len([i for i in py.specials if i not in py.inv]):
        print(f"note: vocab size {vocab} in the token file vs {len(py.inv)} in the JSON")
    step = 1 if a.files <= 0 or a.files >= len(rels) else len(rels) / a.files
    pick = sorted({int(k * step) for k in range(len(rels) if step == 1 else a.files)})
    total = 0
    bad_py = 0
    texts, paths, ascii_only, picked = [], [], [], []
    for k in pick:
        path = os.path.join(a.data, rels[k])
        with open(path, "rb") as f:
            data = f.read()
        total += len(data)
        mine = docs[k]
        ref = py.encode(data)
        if ref != mine or py.decode(mine) != data:
            bad_py += 1
            first = next((i for i, (x, y) in enumerate(zip(ref, mine)) if x != y), min(len(ref), len(mine)))
            print(f"DIFF python  {rels[k]}: {len(mine)} vs {len(ref)} ids, first difference at {first}")
        try:
            texts.append(data.decode("utf-8"))
            paths.append(path)
            ascii_only.append(data.isascii())
            picked.append(k)
        except UnicodeDecodeError:
            pass
    print(f"pure Python BPE: {len(pick) - bad_py}/{len(pick)} files agree ({total} bytes)")
    ok = bad_py == 0

    for name, enc in (("HF tokenizers (Python)", lambda: hf_py_encode(a.tokenizer, texts)),
                      ("HF tokenizers.js", lambda: hf_js_encode(a.hf_js, a.tokenizer, paths) if a.hf_js else None)):
        got = enc()
        if got is None:
            print(f"{name}: not available, skipped")
            continue
        agree = agree_ascii = n_ascii = 0
        for k, g, asc in zip(picked, got, ascii_only):
            same = g == docs[k]
            agree += same
            n_ascii += asc
            agree_ascii += same and asc
            if not same:
                print(f"DIFF {'ascii' if asc else 'utf-8'} {name}: {rels[k]}")
        print(f"{name}: {agree}/{len(got)} UTF-8 files agree; ASCII files {agree_ascii}/{n_ascii}")
        ok = ok and agree_ascii == n_ascii
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
