#!/usr/bin/env python3
"""File growth of `shrinkwrap stamp` against patchelf 0.19 making the same edits.

Over a copy of every dynamically linked x86_64 ELF under /usr/bin, /usr/sbin and
/usr/lib/x86_64-linux-gnu: shrinkwrap plans the stamp (--dry-run --json); patchelf then gets
the same edits in one invocation (--replace-needed for each original slot, --add-needed for
each lifted library), and shrinkwrap stamps its own copy. Prints the growth of each tool and
the ratio shrinkwrap/patchelf (median, worst), and how many patchelf results the loader
still lists identically.

use: bench/growth.py             # whole corpus
use: bench/growth.py --limit 200 # the first 200 files
"""
import argparse
import concurrent.futures as cf
import json
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from benchlib import edits, elf_kind, is_file, patchelf, shrinkwrap

ROOTS = ["/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu"]
LOADER = "/lib64/ld-linux-x86-64.so.2"


def corpus():
    seen = set()
    for r in ROOTS:
        for dirpath, _, names in os.walk(r):
            for n in names:
                p = os.path.join(dirpath, n)
                if is_file(p) and elf_kind(p):
                    real = os.path.realpath(p)
                    if real not in seen:
                        seen.add(real)
                        yield real


def listing(path):
    r = subprocess.run([LOADER, "--list", path], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    out = []
    for line in r.stdout.splitlines():
        line = line.strip().split(" (0x")[0]
        if "=>" in line:
            out.append(line.split("=> ", 1)[1])
        elif line.startswith("/"):
            out.append(line)
    return out


def one(src, tmp, sw, pe):
    work = Path(tempfile.mkdtemp(dir=tmp))
    try:
        a, b = work / "a", work / "b"
        shutil.copy2(src, a)
        shutil.copy2(src, b)
        size = os.path.getsize(src)
        before = listing(str(a))
        # One stamp gives both the edits for patchelf and shrinkwrap's own growth.
        out = subprocess.run([sw, "stamp", "--json", str(a)], capture_output=True, text=True)
        if out.returncode != 0:
            return None
        entry = json.loads(out.stdout)["files"][0]
        if entry["status"] != "stamped":
            return None
        args = edits(entry)
        if not args:
            return None
        pe_run = subprocess.run([pe, *args, str(b)], capture_output=True)
        if pe_run.returncode != 0:
            return (src, os.path.getsize(a) - size, None, None)
        return (src, os.path.getsize(a) - size, os.path.getsize(b) - size, listing(str(b)) == before)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0)
    opts = ap.parse_args()
    sw = shrinkwrap()
    pe = patchelf()
    files = sorted(corpus())
    if opts.limit:
        files = files[: opts.limit]
    with tempfile.TemporaryDirectory() as tmp, cf.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        results = [r for r in pool.map(lambda f: one(f, tmp, sw, pe), files) if r]
    both = [r for r in results if r[2] is not None]
    ratios = sorted((r[1] / r[2], r[0]) for r in both if r[2] > 0)
    pe_fail = len(results) - len(both)
    pe_same = sum(1 for r in both if r[3])
    print(f"files: {len(results)} stamped by shrinkwrap; patchelf failed on {pe_fail}, "
          f"and {pe_same} of its {len(both)} results list the same libraries in the same "
          f"order under ld.so (shrinkwrap's: tests/stamp_corpus.rs)")
    print(f"growth, median bytes: shrinkwrap {statistics.median(r[1] for r in both):.0f}, "
          f"patchelf {statistics.median(r[2] for r in both):.0f}")
    print(f"ratio shrinkwrap/patchelf: median {statistics.median(x for x, _ in ratios):.3f}, "
          f"worst {ratios[-1][0]:.3f} ({ratios[-1][1]}), best {ratios[0][0]:.3f}")
    larger = sorted((r[1] - r[2], r[0]) for r in both if r[1] > r[2])
    print(f"files where shrinkwrap grew more than patchelf: {len(larger)}")
    for extra, f in larger:
        print(f"  +{extra} bytes  {f}")


if __name__ == "__main__":
    main()
