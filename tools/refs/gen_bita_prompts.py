#!/usr/bin/env python3
"""Held-out Python prompts for the speculative-decoding benchmarks (BiTA,
SPACE): for each file of data/python_val_files.txt (the lm's validation
split of the Python standard library), the first top-level or method
`def`s (up to three) whose body opens with a docstring, each cut after the docstring's
closing quotes and newline (method indent removed). Deterministic: every
file's first prompt in list order, then second ones, then third ones;
prompts of 2..12 lines and <= 480
bytes. Writes JSON lines {"prompt", "file", "line"} to
bench/prompts_pyval.jsonl.

usage: python3 tools/refs/gen_bita_prompts.py [--root /usr/lib/python3.11]
       [--max 64] [--out bench/prompts_pyval.jsonl]
Needs no torch; any python3.
"""
import argparse
import json
import os
import re

PER_FILE = 3
DEF = re.compile(r'^(\s*)def [A-Za-z_][A-Za-z0-9_]*\(')


def prompts(text):
    lines = text.split('\n')
    for i, line in enumerate(lines):
        m = DEF.match(line)
        if not m:
            continue
        indent = m.group(1)
        # signature may span lines: up to the line ending in ':'
        j = i
        while j < len(lines) and not lines[j].rstrip().endswith(':'):
            j += 1
        if j >= len(lines) or j - i > 4:
            continue
        k = j + 1
        if k >= len(lines):
            continue
        body = lines[k]
        s = body.strip()
        q = None
        for quote in ('"""', "'''"):
            if s.startswith(quote) or s.startswith('r' + quote):
                q = quote
        if not q:
            continue
        body_indent = body[:len(body) - len(body.lstrip())]
        if len(body_indent) <= len(indent):
            continue
        # closing quotes: same line (after the opening) or a later line
        end = None
        rest = s[s.index(q) + 3:]
        if q in rest:
            end = k
        else:
            for e in range(k + 1, min(len(lines), k + 12)):
                if q in lines[e]:
                    end = e
                    break
        if end is None:
            continue
        if not lines[end].rstrip().endswith(q):
            continue
        chunk = '\n'.join(lines[i:end + 1]) + '\n'
        # drop the common indent of methods so every prompt starts at column 0
        if indent:
            out = []
            for ln in chunk.split('\n'):
                out.append(ln[len(indent):] if ln.startswith(indent) else ln)
            chunk = '\n'.join(out)
        nl = chunk.count('\n')
        if 2 <= nl <= 12 and len(chunk.encode()) <= 480 and '\t' not in chunk:
            yield chunk, i + 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--root', default='/usr/lib/python3.11')
    ap.add_argument('--list', default='data/python_val_files.txt')
    ap.add_argument('--max', type=int, default=64)
    ap.add_argument('--out', default='bench/prompts_pyval.jsonl')
    a = ap.parse_args()
    files = [ln.strip() for ln in open(a.list) if ln.strip() and not ln.startswith('#')]
    per_file = []
    for rel in files:
        path = os.path.join(a.root, rel)
        try:
            text = open(path, encoding='utf-8').read()
        except (OSError, UnicodeDecodeError):
            continue
        per_file.append((rel, list(prompts(text))[:PER_FILE]))
    # round robin: every file's first prompt, then second ones, ...
    rows = []
    for r in range(PER_FILE):
        for rel, ps in per_file:
            if r < len(ps) and len(rows) < a.max:
                rows.append({'prompt': ps[r][0], 'file': rel, 'line': ps[r][1]})
    tmp = a.out + '.tmp'
    with open(tmp, 'w') as f:
        for r in rows:
            f.write(json.dumps(r) + '\n')
    os.replace(tmp, a.out)
    print('%d prompts from %d files -> %s' % (len(rows), len(files), a.out))


if __name__ == '__main__':
    main()
