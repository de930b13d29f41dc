#!/usr/bin/env python3
"""Library lookups an unstamped program pays when only its libraries are stamped.

A library is stamped with its own DT_NEEDED entries made absolute, nothing lifted (a program
that loads it but is not stamped must load the same files in the same order). This measures
what that costs in probes. The corpus: a few of this machine's programs and their whole
closures (glibc aside, which stays the system's, as the programs' interpreter is), copied into
a fake store of 30 packages, every object with a RUNPATH naming all 30 `lib` directories. For
each program: failed library lookups (ENOENT on a path naming a `.so`, under strace) and
library opens of `PROGRAM --version`, with
  - nothing stamped,
  - the libraries stamped (`fixup` of every package's lib/ only), the programs not,
  - optionally the same with another shrinkwrap build (`--baseline BIN`, e.g. one that lifted
    every library's closure into it), with how many programs then load a different list,
  - half of the packages' libraries stamped (a store where not everything is),
  - everything stamped.

use: bench/probes.py
use: bench/probes.py --baseline /tmp/old/shrinkwrap
"""
import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchlib import patchelf, run_each, shrinkwrap
from fixup import GLIBC, PACKAGES, fresh, store_packages

PROGRAMS = ["git", "curl", "ls", "tar", "gpg", "ssh", "python3.11", "perl", "gdb", "vim.basic", "emacs"]


def build_corpus(dest: Path, pe: str):
    """The programs and their closures in a fake store; returns the programs' paths."""
    pkgs = store_packages(dest)
    placed, progs, libs = [], [], {}
    for i, name in enumerate(PROGRAMS):
        src = shutil.which(name)
        if not src:
            continue
        dst = pkgs[i % PACKAGES] / "bin" / name
        shutil.copy2(src, dst)
        placed.append(dst)
        progs.append(dst)
        for line in listing(Path(src)):
            base = os.path.basename(line)
            if line.startswith("/") and not base.startswith(GLIBC):
                libs.setdefault(base, line)
    for i, (base, src) in enumerate(sorted(libs.items())):
        dst = pkgs[i % PACKAGES] / "lib" / base
        shutil.copy(src, dst)
        placed.append(dst)
    rpath = ":".join(str(p / "lib") for p in pkgs)
    run_each([pe, "--set-rpath", rpath, str(f)] for f in placed)
    print(f"corpus: {len(progs)} programs and {len(libs)} libraries in {PACKAGES} store packages", flush=True)
    return [p.relative_to(dest) for p in progs]


def lookups(prog: Path, tmp: Path):
    """(failed library lookups, library opens) of `prog --version` under strace."""
    trace = tmp / "strace.out"
    subprocess.run(["strace", "-f", "-o", str(trace), "-e", "trace=openat,open,stat,newfstatat,access",
                    str(prog), "--version"], env={}, capture_output=True)
    failed = opened = 0
    for line in trace.read_text().splitlines():
        path = line.split('"')[1] if '"' in line else ""
        if ".so" not in path or path == "/etc/ld.so.preload":
            continue
        if "ENOENT" in line:
            failed += 1
        elif "openat" in line:
            opened += 1
    return failed, opened


def listing(prog: Path):
    out = subprocess.run(["/lib64/ld-linux-x86-64.so.2", "--list", str(prog)], capture_output=True, text=True, env={})
    return [l.split(" (0x")[0].split(" => ")[-1].strip() for l in out.stdout.splitlines()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", help="another shrinkwrap binary to stamp the libraries with")
    opts = ap.parse_args()
    sw = shrinkwrap()
    with tempfile.TemporaryDirectory(prefix="shrinkwrap-probes-") as tmp:
        tmp = Path(tmp)
        # Every state is measured at the same place: the RUNPATHs and stamps name it.
        corpus = tmp / "corpus"
        progs = build_corpus(corpus, patchelf())
        pristine = tmp / "pristine"
        fresh(corpus, pristine)

        def state(name, stamp):
            work = corpus
            fresh(pristine, work)
            wstore = work / "nix" / "store"
            if stamp:
                stamp(wstore)
            return {p: (lookups(work / p, tmp), listing(work / p)) for p in progs}, work

        def libs_with(binary, share=1):
            def stamp(wstore):
                # One package at a time, as Nix builds them.
                dirs = sorted(wstore.glob("*/lib"))
                run_each([binary, "fixup", "--quiet", str(d)] for d in dirs[: len(dirs) // share])
            return stamp

        def everything(wstore):
            run_each([sw, "fixup", "--quiet", str(p)] for p in sorted(wstore.iterdir()))

        states = [("nothing stamped", state("none", None)),
                  ("libraries stamped", state("libs", libs_with(sw)))]
        if opts.baseline:
            states.append(("libraries stamped by the baseline", state("base", libs_with(opts.baseline))))
        states.append(("half of the libraries stamped", state("half", libs_with(sw, 2))))
        states.append(("everything stamped", state("all", everything)))

    base_lists = {p: states[0][1][0][p][1] for p in progs}
    print()
    print("| program | " + " | ".join(name for name, _ in states) + " |")
    print("|---|" + "---|" * len(states))
    for p in progs:
        cells = [f"{r[0][p][0][0]} failed / {r[0][p][0][1]} opened" for _, r in states]
        print(f"| {p.name} | " + " | ".join(cells) + " |")
    for name, (r, _) in states[1:]:
        changed = [p.name for p in progs if r[p][1] != base_lists[p]]
        total = sum(r[p][0][0] for p in progs)
        base = sum(states[0][1][0][p][0][0] for p in progs)
        print(f"{name}: {total} failed lookups in all ({total / base:.2f} x nothing stamped); "
              f"programs loading a different list than before: {len(changed)} {changed}")


if __name__ == "__main__":
    main()
