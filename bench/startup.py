#!/usr/bin/env python3
"""Start-up cost of an emacs-shaped program: as built, stamped by `shrinkwrap fixup`, and the floor.

Generates, in a fake Nix store, a program needing about 100 shared libraries spread over 40
store paths, every object with a RUNPATH naming all 40 `lib` directories in its own shuffled
order (as a large Nix package looks). Three variants, each its own copy of the tree:
  - as built;
  - stamped: `shrinkwrap fixup` over every store path (program and libraries);
  - the program alone stamped (`shrinkwrap fixup --programs-only`), its libraries not;
  - the libraries stamped (`fixup` of every library's store path), the program not: what a
    program built without the hook sees;
  - the floor: the same files with one library directory (every library in one `lib`, every
    RUNPATH naming only it) — the best a search can do.
For each: the loader's library probes as `shrinkwrap explain` computes them (calls, failed),
file-system calls under `strace -f -c` (calls, failed), failed library lookups
(ENOENT on a path naming a `.so`), `mmap` calls, minor page faults and the loader's own
relocation time (`LD_DEBUG=statistics`, cycles, median of 9), then wall time of start-up (the
program exits at once), median and 10th percentile over interleaved runs, also net of the
cost of starting a static do-nothing program in the same loop. Targets: stamped has 0 failed
library lookups; stamped start-up <= 1.03 x the floor.

use: bench/startup.py               # 100 libraries, 40 store paths, 300 runs of each
use: bench/startup.py --runs 500
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import patchelf, run_each, shrinkwrap
from fixup import store_name

LIBS = 100
DIRS = 40


def cc(args):
    subprocess.run(["cc", *args], check=True, capture_output=True)


def build(root: Path, rng: random.Random):
    """The as-built tree under root/nix/store; returns the program's path."""
    store = root / "nix" / "store"
    dirs = [store / store_name(i, "lib", rng) / "lib" for i in range(DIRS)]
    for d in dirs:
        d.mkdir(parents=True)
    src = root / "src"
    src.mkdir()
    where = [dirs[rng.randrange(DIRS)] for _ in range(LIBS)]
    # Library i needs up to three of the libraries after it (a DAG, deeper at the top).
    deps = [sorted(rng.sample(range(i + 1, LIBS), min(3, LIBS - i - 1))) for i in range(LIBS)]

    def runpath():
        order = [str(d) for d in dirs]
        rng.shuffle(order)
        return ":".join(order)

    for i in reversed(range(LIBS)):
        body = "".join(f"int f{j}(void);\n" for j in deps[i])
        body += f"int f{i}(void) {{ return 1{''.join(f' + f{j}()' for j in deps[i])}; }}\n"
        (src / f"l{i}.c").write_text(body)
        cc(["-shared", "-fPIC", "-O1", "-o", str(where[i] / f"libb{i}.so.1"), str(src / f"l{i}.c"),
            f"-Wl,-soname,libb{i}.so.1", "-Wl,--enable-new-dtags", f"-Wl,-rpath,{runpath()}",
            *[str(where[j] / f"libb{j}.so.1") for j in deps[i]]])
    top = list(range(20))
    (src / "main.c").write_text("".join(f"int f{i}(void);\n" for i in top) +
                                "int main(void) { return (0" + "".join(f" + f{i}()" for i in top) + ") == 0; }\n")
    prog_dir = store / store_name(0, "emacs-like", rng) / "bin"
    prog_dir.mkdir(parents=True)
    prog = prog_dir / "emacs-like"
    cc(["-O1", "-o", str(prog), str(src / "main.c"), "-Wl,--enable-new-dtags", f"-Wl,-rpath,{runpath()}",
        "-Wl,-rpath-link," + ":".join(str(d) for d in dirs), *[str(where[i] / f"libb{i}.so.1") for i in top]])
    shutil.rmtree(src)
    return prog


def floor(root: Path, pe: str):
    """Every library moved into one `lib` directory and every RUNPATH naming only it."""
    store = root / "nix" / "store"
    one = store / "00000000000000000000000000000000-all" / "lib"
    one.mkdir(parents=True)
    objs = []
    for d in sorted(store.glob("*-lib-*/lib")):
        for f in d.iterdir():
            shutil.move(str(f), one / f.name)
            objs.append(one / f.name)
    objs += list(store.glob("*/bin/*"))
    run_each([pe, "--set-rpath", str(one), str(f)] for f in objs)


def strace_counts(prog: Path, tmp: Path):
    """(file-system calls, failed ones, failed library lookups) of one start."""
    summary = tmp / "summary.txt"
    subprocess.run(["strace", "-f", "-c", "-o", str(summary), "-e", "trace=%file", str(prog)],
                   env={}, capture_output=True)
    calls = errors = 0
    for line in summary.read_text().splitlines():
        parts = line.split()
        if parts and parts[-1] == "total":
            # % time, seconds, usecs/call, calls, [errors,] total
            nums = parts[:-1]
            calls = int(nums[3])
            errors = int(nums[4]) if len(nums) > 4 else 0
    trace = tmp / "trace.txt"
    subprocess.run(["strace", "-f", "-o", str(trace), "-e", "trace=%file", str(prog)], env={}, capture_output=True)
    paths = [(l, l.split('"')[1]) for l in trace.read_text().splitlines() if '"' in l]
    failed_libs = sum(1 for l, p in paths if "ENOENT" in l and ".so" in p and p != "/etc/ld.so.preload")
    mmaps = subprocess.run(["strace", "-f", "-c", "-e", "trace=mmap", str(prog)], env={},
                           capture_output=True, text=True).stderr
    mmap_calls = next((int(l.split()[3]) for l in mmaps.splitlines() if l.split()[-1:] == ["mmap"]), 0)
    return calls, errors, failed_libs, mmap_calls


def explained(sw: str, prog: Path):
    """(calls, failed) the loader makes to load the libraries, as `shrinkwrap explain` computes
    them from its rules for the file as it is."""
    out = subprocess.run([sw, "explain", "--json", str(prog)], capture_output=True, text=True, check=True)
    entry = json.loads(out.stdout)["files"][0]
    state = entry["stamped" if entry["is_stamped"] else "unstamped"]
    return state["calls"], state["failed"]


def minor_faults(prog: Path):
    """Minor page faults of one start (the median of 9)."""
    faults = []
    for _ in range(9):
        p = subprocess.Popen([str(prog)], env={})
        _, _, ru = os.wait4(p.pid, 0)
        faults.append(ru.ru_minflt)
    return statistics.median(faults)


def relocation_cycles(prog: Path):
    """The loader's own relocation time, in cycles (LD_DEBUG=statistics; the median of 9)."""
    cycles = []
    for _ in range(9):
        err = subprocess.run([str(prog)], env={"LD_DEBUG": "statistics"}, capture_output=True, text=True).stderr
        for line in err.splitlines():
            if "time needed for relocation:" in line:
                cycles.append(int(line.split(":")[-1].split()[0]))
    return statistics.median(cycles) if cycles else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=300)
    opts = ap.parse_args()
    sw = shrinkwrap()
    pe = patchelf()
    # Short roots: the loader compares each requested name with every loaded object's path
    # (strcmp), and real store paths differ right after `/nix/store/<hash>`; a long common
    # prefix would overstate that cost.
    with tempfile.TemporaryDirectory(prefix="sw", dir="/tmp") as tmp:
        tmp = Path(tmp)
        # Each variant is built afresh in its own place from the same seed (RUNPATHs and
        # stamps name absolute paths, so a copy would point into the original).
        built = tmp / "b"
        prog = build(built, random.Random(7))
        rel = prog.relative_to(built)
        variants = {"as built": built}
        stamped = tmp / "s"
        build(stamped, random.Random(7))
        variants["stamped"] = stamped
        out = subprocess.run([sw, "fixup", "--quiet", *map(str, sorted((stamped / "nix" / "store").iterdir()))],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"fixup failed: {out.stderr}")
        alone = tmp / "p"
        build(alone, random.Random(7))
        out = subprocess.run([sw, "fixup", "--quiet", "--programs-only",
                              *map(str, sorted((alone / "nix" / "store").iterdir()))],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"fixup --programs-only failed: {out.stderr}")
        variants["fixup --programs-only"] = alone
        libs = tmp / "l"
        build(libs, random.Random(7))
        lib_paths = [str(d) for d in sorted((libs / "nix" / "store").iterdir()) if (d / "lib").is_dir()]
        out = subprocess.run([sw, "fixup", "--quiet", *lib_paths], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"fixup of the libraries failed: {out.stderr}")
        variants["libraries stamped, program not"] = libs
        low = tmp / "f"
        build(low, random.Random(7))
        floor(low, pe)
        variants["floor (one library directory)"] = low

        progs = {name: root / rel for name, root in variants.items()}
        for name, p in progs.items():
            r = subprocess.run([str(p)], env={})
            if r.returncode != 0:
                raise SystemExit(f"{name}: the program fails ({r.returncode})")
        counts = {name: strace_counts(p, tmp) for name, p in progs.items()}
        explain = {name: explained(sw, p) for name, p in progs.items()}
        faults = {name: minor_faults(p) for name, p in progs.items()}
        reloc = {name: relocation_cycles(p) for name, p in progs.items()}
        # What starting any process costs here, timed in the same loop.
        (tmp / "nothing.c").write_text("int main(void) { return 0; }\n")
        nothing = tmp / "nothing"
        cc(["-static", "-O1", "-o", str(nothing), str(tmp / "nothing.c")])
        times = {name: [] for name in [*progs, "spawn"]}
        for _ in range(opts.runs):
            for name, p in [*progs.items(), ("spawn", nothing)]:
                t = time.perf_counter()
                subprocess.run([str(p)], env={})
                times[name].append(time.perf_counter() - t)

    spawn = statistics.median(times.pop("spawn"))
    floor_name = "floor (one library directory)"
    print(f"{LIBS} libraries in {DIRS} store paths, {DIRS}-entry RUNPATHs; {opts.runs} interleaved runs each; "
          f"starting a static do-nothing program: {spawn * 1000:.2f} ms")
    print()
    print("| variant | explain: probes (failed) | file-system calls | failed | failed library lookups | mmap "
          "| minor faults | relocation (cycles) | start-up median | p10 | median net of spawn |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    med = {}
    for name in progs:
        c, e, fl, mm = counts[name]
        ts = sorted(times[name])
        med[name] = statistics.median(ts)
        ec, ef = explain[name]
        print(f"| {name} | {ec} ({ef}) | {c} | {e} | {fl} | {mm} | {faults[name]:.0f} | {reloc[name]:.0f} "
              f"| {med[name] * 1000:.2f} ms | {ts[len(ts) // 10] * 1000:.2f} ms | {(med[name] - spawn) * 1000:.2f} ms |")
    for name in ["stamped", "fixup --programs-only"]:
        ratio = med[name] / med[floor_name]
        net = (med[name] - spawn) / (med[floor_name] - spawn)
        print(f"{name}: {counts[name][2]} failed library lookups; start-up {ratio:.3f} x the floor "
              f"({net:.3f} x net of spawn)")
    ratio = med["stamped"] / med[floor_name]
    print(f"targets (stamped): 0 failed library lookups: {'OK' if counts['stamped'][2] == 0 else 'MISSED'}; "
          f"<= 1.03 x the floor: {'OK' if ratio <= 1.03 else 'MISSED'}; "
          f"as built is {med['as built'] / med['stamped']:.2f} x stamped")


if __name__ == "__main__":
    main()
