#!/usr/bin/env python3
"""How long `shrinkwrap adopt` takes on a store of many paths: indexing it (cold, with no
cache, then warm, from the cache) and adopting one program.

Builds a fake store of one path per shared library found under this machine's /usr/lib
(each in `<store>/<hash>-<name>/lib/`), plus this machine's glibc in one path, and adopts a copy of a system program (`--print-env`, so nothing is edited) with
`--prefer` on the glibc path. Prints the number of store paths and libraries, and the wall
time of each run (median of 5; the cold runs remove the cache first).

use: bench/adopt.py
use: bench/adopt.py --program /usr/bin/git
"""
import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import shrinkwrap

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"


def store_name(name: str) -> str:
    h = hashlib.sha256(name.encode()).digest()
    return "".join(ALPHABET[b % 32] for b in h[:32]) + "-" + name


def build(store: Path):
    """The fake store; returns (paths, libraries, the glibc path's lib dir)."""
    src = Path("/usr/lib/x86_64-linux-gnu")
    glibc = store / store_name("glibc") / "lib"
    glibc.mkdir(parents=True)
    for f in ["libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libresolv.so.2"]:
        if (src / f).exists():
            shutil.copy(src / f, glibc / f)
    shutil.copy(os.path.realpath("/lib64/ld-linux-x86-64.so.2"), glibc / "ld-linux-x86-64.so.2")
    paths, libs = 1, 6
    for f in sorted(Path("/usr/lib").rglob("*.so*")):
        if f.is_symlink() or not f.is_file() or f.name in os.listdir(glibc):
            continue
        with open(f, "rb") as fh:
            if fh.read(4) != b"\x7fELF":
                continue
        d = store / store_name(str(f).replace("/", "_").replace("+", "p")) / "lib"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, d / f.name)
        paths += 1
        libs += 1
    return paths, libs, glibc


def timed(cmd, env):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    return dt, r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--program", default="/usr/bin/curl")
    opts = ap.parse_args()
    sw = shrinkwrap()
    with tempfile.TemporaryDirectory(prefix="swadopt") as tmp:
        tmp = Path(tmp)
        store = tmp / "store"
        paths, libs, glibc = build(store)
        prog = tmp / Path(opts.program).name
        shutil.copy(opts.program, prog)
        cache = tmp / "cache"
        env = dict(os.environ, XDG_CACHE_HOME=str(cache))
        cmd = [sw, "adopt", "--print-env", str(prog), "--from", str(store), "--prefer", str(glibc)]
        cold, warm = [], []
        for _ in range(5):
            shutil.rmtree(cache, ignore_errors=True)
            dt, r = timed(cmd, env)
            if r.returncode != 0:
                raise SystemExit(f"adopt failed: {r.stderr}")
            cold.append(dt)
            dt, r = timed(cmd, env)
            warm.append(dt)
        out = r.stdout.strip().splitlines()
        print(f"store: {paths} paths, {libs} libraries ({sum(f.stat().st_size for f in store.rglob('*') if f.is_file()) >> 20} MiB)")
        print(f"adopt {prog.name} (--print-env): cold index {statistics.median(cold):.2f} s, "
              f"from the cache {statistics.median(warm):.2f} s (median of 5)")
        print(f"library directories chosen: {out[-1].count(':') + 1}")


if __name__ == "__main__":
    main()
