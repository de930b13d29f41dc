#!/usr/bin/env python3
"""Library lookups an unstamped program pays when only its libraries are stamped.

A library is stamped with its own DT_NEEDED entries made absolute, nothing lifted (a program
that loads it but is not stamped must load the same files in the same order). This measures
what that costs in probes, on the tree corpus of bench/fixup.py (every object with a
30-directory RUNPATH): for a few programs, failed library lookups (ENOENT on a path naming a
`.so`, under strace) and library opens, with
  - nothing stamped,
  - the libraries stamped (`fixup` of every package's lib/ only), the programs not,
  - optionally the same with another shrinkwrap build (`--baseline BIN`, e.g. one that lifted
    every library's closure), with how many programs then load a different list,
  - everything stamped.

use: bench/probes.py                          # 600-file corpus
use: bench/probes.py --baseline /tmp/old/shrinkwrap
"""
import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchlib import patchelf, shrinkwrap
from fixup import build_corpus, fresh

PROGRAMS = ["git", "curl", "ls", "tar", "gpg", "ssh", "python3.11", "perl", "gdb", "vim.basic"]


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
    ap.add_argument("--files", type=int, default=600)
    ap.add_argument("--baseline", help="another shrinkwrap binary to stamp the libraries with")
    opts = ap.parse_args()
    sw = shrinkwrap()
    with tempfile.TemporaryDirectory(prefix="shrinkwrap-probes-") as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus"
        build_corpus(corpus, opts.files, patchelf())
        store = corpus / "nix" / "store"
        progs = sorted(p.relative_to(corpus) for p in store.glob("*/bin/*") if p.name in PROGRAMS)
        if not progs:
            raise SystemExit("none of the programs is in the corpus; try a larger --files")

        def state(name, stamp):
            work = tmp / name
            fresh(corpus, work)
            wstore = work / "nix" / "store"
            if stamp:
                stamp(wstore)
            return {p: (lookups(work / p, tmp), listing(work / p)) for p in progs}, work

        def libs_with(binary):
            def stamp(wstore):
                subprocess.run([binary, "fixup", "--allow-missing", "*", "--quiet",
                                *map(str, sorted(wstore.glob("*/lib")))], check=False)
            return stamp

        def everything(wstore):
            subprocess.run([sw, "fixup", "--allow-missing", "*", "--quiet", str(wstore)], check=False)

        states = [("nothing stamped", state("none", None)),
                  ("libraries stamped", state("libs", libs_with(sw)))]
        if opts.baseline:
            states.append(("libraries stamped by the baseline", state("base", libs_with(opts.baseline))))
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
