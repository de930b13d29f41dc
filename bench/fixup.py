#!/usr/bin/env python3
"""Speed of `shrinkwrap fixup` on a tree of real ELF files, against cp -a and patchelf.

Builds a tree corpus in a fake Nix store from this machine's own ELF files (executables from
/usr/bin, libraries from /usr/lib/x86_64-linux-gnu), grouped into 30 store packages whose
`lib` dirs form every object's RUNPATH, plus non-ELF files and symlinks. Then, in one run and
each on a fresh copy, measures: `cp -a` of the tree (the I/O floor), `shrinkwrap fixup` at
-j1 and -j2 (wall time and peak RSS), and a patchelf 0.19 baseline making the same edits (one
invocation per file, two at a time). Each measurement is the median of three runs on fresh
copies (fixup's: of five, -j1 and -j2 interleaved). Prints the table and the ratios against the targets.

use: bench/fixup.py              # about 1500 files
use: bench/fixup.py --files 300  # a quicker run
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import edits, elf_kind, is_file, patchelf, run_each, shrinkwrap

PACKAGES = 30
GLIBC = ("libc.so", "libc_malloc_debug.so", "libm.so", "libmvec.so", "libpthread.so", "libdl.so", "librt.so",
         "libresolv.so", "libutil.so", "libanl.so", "libnsl.so", "libBrokenLocale.so", "libthread_db.so", "ld-linux")
ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"


def store_name(i, name, rng):
    return "".join(rng.choice(ALPHABET) for _ in range(32)) + f"-{name}-{i}"


def store_packages(dest: Path):
    """PACKAGES store paths under dest/nix/store, the same names every time, each with an
    empty bin/, lib/ and share/."""
    rng = random.Random(42)
    store = dest / "nix" / "store"
    pkgs = [store / store_name(i, "pkg", rng) for i in range(PACKAGES)]
    for p in pkgs:
        for sub in ("bin", "lib", "share"):
            (p / sub).mkdir(parents=True)
    return pkgs


def build_corpus(dest: Path, nfiles: int, pe: str) -> None:
    pkgs = store_packages(dest)
    libs, bins = [], []

    def walk(root):
        for dirpath, _, names in os.walk(root):
            for n in sorted(names):
                p = os.path.join(dirpath, n)
                if is_file(p) and os.path.getsize(p) < 40 << 20:
                    yield p, n

    for p, n in walk("/usr/lib/x86_64-linux-gnu"):
        # glibc stays the system's, as the programs' interpreter is: a copy in a package
        # would mix two glibc directories in one process, which fixup refuses.
        if ".so" in n and elf_kind(p) == "dyn" and not n.startswith(GLIBC):
            libs.append(p)
    for root in ["/usr/bin", "/usr/sbin", "/usr/libexec"]:
        for p, n in walk(root):
            if elf_kind(p):
                bins.append(p)
    libs.sort()
    bins.sort()
    chosen_libs = libs[: max(nfiles // 2, nfiles - len(bins))]
    chosen_bins = bins[: nfiles - len(chosen_libs)]
    placed = []
    for i, src in enumerate(chosen_libs):
        pkg = pkgs[i % PACKAGES]
        real = subprocess.run(["readelf", "-dW", src], capture_output=True, text=True).stdout
        soname = None
        for line in real.splitlines():
            if "(SONAME)" in line:
                soname = line.split("[", 1)[1].rsplit("]", 1)[0]
        dst = pkg / "lib" / os.path.basename(src)
        if dst.exists():
            dst = pkg / "lib" / f"{i}-{os.path.basename(src)}"
        shutil.copy2(src, dst)
        placed.append(dst)
        if soname and soname != dst.name and not (pkg / "lib" / soname).exists():
            os.symlink(dst.name, pkg / "lib" / soname)
    for i, src in enumerate(chosen_bins):
        dst = pkgs[i % PACKAGES] / "bin" / os.path.basename(src)
        if dst.exists():
            dst = dst.with_name(f"{i}-{dst.name}")
        shutil.copy2(src, dst)
        placed.append(dst)
    for p in pkgs:
        (p / "share" / "README").write_text("not ELF\n" * 20)
        (p / "bin" / "hello.sh").write_text("#!/bin/sh\necho hi\n")
        os.chmod(p / "bin" / "hello.sh", 0o755)
    rpath = ":".join(str(p / "lib") for p in pkgs)
    # Give every object the wide RUNPATH (corpus set-up, not measured).
    # Some copies cannot take a RUNPATH (static programs): they stay as they are, and are
    # passed over by fixup too.
    unset = run_each(([pe, "--set-rpath", rpath, str(f)] for f in placed), check=False)
    print(f"corpus: {len(placed)} ELF files ({len(chosen_libs)} libraries, {len(chosen_bins)} executables) "
          f"in {PACKAGES} store packages, {sum(f.stat().st_size for f in placed) >> 20} MiB; "
          f"{unset} without a RUNPATH", flush=True)


def timed(cmd, **kw):
    """Wall seconds and peak RSS (KiB) of one command."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, **kw)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t, ru.ru_maxrss, p.returncode


def fresh(src: Path, dst: Path):
    if dst.exists():
        shutil.rmtree(dst)
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    subprocess.run(["sync"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1500)
    opts = ap.parse_args()
    sw = shrinkwrap()
    pe = patchelf()
    with tempfile.TemporaryDirectory(prefix="shrinkwrap-bench-") as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus"
        build_corpus(corpus, opts.files, pe)
        # Warm the page cache once, so every measurement starts alike.
        subprocess.run(["cp", "-a", str(corpus), str(tmp / "warm")], check=True)
        shutil.rmtree(tmp / "warm")

        # Each measurement three times on a fresh copy; the median counts.
        cps = []
        for _ in range(3):
            cps.append(timed(["cp", "-a", str(corpus), str(tmp / "cp")])[0])
            shutil.rmtree(tmp / "cp")
        t_cp = sorted(cps)[1]

        # fixup at -j1 and -j2, interleaved so drift in the machine's speed hits both alike;
        # the median of five each.
        runs = {1: [], 2: []}
        report = tmp / "report.json"
        for k in range(5):
            for j in (1, 2):
                work = tmp / f"j{j}"
                fresh(corpus, work)
                wstore = work / "nix" / "store"
                log = tmp / f"fixup-j{j}.log"
                with open(log, "w") as err:
                    runs[j].append(timed([sw, "fixup", "-j", str(j), "--store-dir", str(wstore),
                                          "--allow-missing", "*", "--report", str(report), str(wstore)],
                                         stderr=err))
                summary = log.read_text().strip().splitlines()
                if k == 0:
                    print(f"fixup -j{j}: {summary[-1] if summary else ''}", flush=True)
        results = {}
        for j, rs in runs.items():
            rs.sort()
            results[j] = (rs[len(rs) // 2][0], max(r[1] for r in rs), max(r[2] for r in rs))
        # What fixup stamped (it skips set-uid files, for one), relative to its store.
        stamped = {os.path.relpath(f["file"], wstore)
                   for f in json.loads(report.read_text())["files"] if f["status"] == "stamped"}

        # patchelf baseline: the same edits, from shrinkwrap's plan of a fresh copy, one
        # invocation per file, two at a time; the median of three, each on a fresh copy.
        pe_runs = []
        for k in range(3):
            work = tmp / "pe"
            fresh(corpus, work)
            wstore = work / "nix" / "store"
            files = [str(wstore / rel) for rel in sorted(stamped)]
            plan = subprocess.run([sw, "stamp", "--dry-run", "--json", "--allow-missing", "*",
                                   "--store-dir", str(wstore)] + files, capture_output=True, text=True)
            commands = [[pe, *edits(f), f["file"]]
                        for f in json.loads(plan.stdout)["files"] if f["status"] == "planned" and edits(f)]
            t = time.perf_counter()
            run_each(commands)
            pe_runs.append(time.perf_counter() - t)
        t_pe = sorted(pe_runs)[1]

    (s1, rss1, c1), (s2, rss2, c2) = results[1], results[2]
    print()
    print("| measurement | seconds | ratio |")
    print("|---|---|---|")
    print(f"| `cp -a` of the tree (I/O floor) | {t_cp:.2f} | 1 |")
    print(f"| `shrinkwrap fixup -j1` | {s1:.2f} | {s1 / t_cp:.2f} × cp |")
    print(f"| `shrinkwrap fixup -j2` | {s2:.2f} | {s2 / t_cp:.2f} × cp |")
    print(f"| patchelf 0.19, same edits, 2 at a time ({len(commands)} files) | {t_pe:.2f} | {t_pe / s2:.1f} × fixup -j2 |")
    print()
    print(f"peak RSS of fixup: -j1 {rss1 / 1024:.1f} MiB, -j2 {rss2 / 1024:.1f} MiB (exit codes {c1}, {c2})")
    print(f"targets: fixup -j2 <= 0.5 x cp -a: {s2 / t_cp:.2f} {'OK' if s2 <= 0.5 * t_cp else 'MISSED'}; "
          f">= 10x faster than patchelf: {t_pe / s2:.1f} {'OK' if t_pe >= 10 * s2 else 'MISSED'}; "
          f"-j2 >= 1.7x -j1: {s1 / s2:.2f} {'OK' if s1 >= 1.7 * s2 else 'MISSED'}; "
          f"RSS <= 64 MiB: {max(rss1, rss2) / 1024:.1f} {'OK' if max(rss1, rss2) <= 64 * 1024 else 'MISSED'}")


if __name__ == "__main__":
    main()
