#!/usr/bin/env python3
"""Write the shipped copy of the Debian catalog (models/debian-catalog/).

It keeps only the fields the catalog loader reads (src/search/catalog.c),
so `tessera ebrm` and `tessera higen` load the same items, texts, tags and
links from it as from the full snapshot, with no ../shared at run time.

    python3 tools/pack_debian_catalog.py ../shared/data/debian-catalog models/debian-catalog
"""
import gzip
import json
import os
import shutil
import sys

PKG_KEYS = ("package", "section", "priority", "essential", "summary", "description",
            "tags", "provides", "depends", "recommends", "suggests", "source")
AS_KEYS = ("package", "name", "summary", "description", "keywords", "categories")


def pack(src, dst, keys):
    tmp = dst + ".tmp"
    n = 0
    # mtime 0: the same input gives the same bytes
    with gzip.open(src, "rt", encoding="utf-8") as fi, \
            open(tmp, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as fo:
        for line in fi:
            if not line.strip():
                continue
            o = json.loads(line)
            fo.write((json.dumps({k: o[k] for k in keys if k in o}, ensure_ascii=False) + "\n").encode("utf-8"))
            n += 1
    os.replace(tmp, dst)
    return n


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    src, dst = sys.argv[1], sys.argv[2]
    os.makedirs(dst, exist_ok=True)
    n = pack(os.path.join(src, "packages.jsonl.gz"), os.path.join(dst, "packages.jsonl.gz"), PKG_KEYS)
    m = pack(os.path.join(src, "appstream.jsonl.gz"), os.path.join(dst, "appstream.jsonl.gz"), AS_KEYS)
    shutil.copyfile(os.path.join(src, "virtual-package-names-list.yaml.gz"),
                    os.path.join(dst, "virtual-package-names-list.yaml.gz"))
    print(f"{dst}: {n} packages, {m} AppStream components")


if __name__ == "__main__":
    main()
