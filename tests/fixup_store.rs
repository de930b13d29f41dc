//! `fixup` against the real loader on a tree shaped like a Nix store, built from this machine's
//! own ELF files: output packages (programs, libraries, and one output holding its own copy of
//! glibc) whose every RUNPATH and interpreter point into a separate store of inputs.
//!
//! Checked, each against the loader or against one uninterrupted run:
//! - after `fixup`, every file lists under the loader exactly as before (same files, same
//!   order), and programs print the same `--version`;
//! - a second run writes nothing (bytes and mtimes);
//! - runs killed at 20 moments spread over the write phase, then completed, give the bytes of
//!   the uninterrupted run;
//! - with the inputs stamped first (a whole package set stamped), the outputs get the same
//!   bytes, and still list as before;
//! - a closure taking glibc's parts from two directories is refused, naming both.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{
    cp_a, differences, have, ld_so_list, run, s, shrinkwrap, Entry, Store, LOADER, SYSTEM_ROOTS,
};

/// glibc's parts that go into the glibc input (and into one output, as its own copy). No
/// part of glibc (`shrinkwrap::resolve::is_glibc_part`) is copied into an output as an
/// ordinary library: stamping one against the glibc input is refused, rightly (two glibc
/// builds).
const GLIBC: &[&str] = &[
    "ld-linux-x86-64.so.2",
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libresolv.so.2",
];
/// How many system programs and libraries the outputs get.
const PROGRAMS: usize = 48;
const LIBRARIES: usize = 24;
/// Programs whose `--version` is compared before and after, when they are in the tree.
const RUNNABLE: &[&str] = &["ls", "cat", "sort", "grep", "tar", "git", "gzip", "find"];
const KILLS: usize = 20;

/// The store, its inputs and outputs, and where pristine copies of the outputs are kept.
struct Layout {
    st: Store,
    /// The glibc input's loader: every program's interpreter, and the loader the tests ask.
    loader: String,
    /// Input packages (their roots).
    inputs: Vec<PathBuf>,
    /// Output packages (their roots), in the order fixup gets them.
    outputs: Vec<PathBuf>,
    /// Every ELF file of the outputs (real paths), with the status fixup must report for it.
    elf: BTreeMap<PathBuf, &'static str>,
    /// Programs to run with `--version`.
    runnable: Vec<PathBuf>,
    pristine: PathBuf,
}

fn soname_of(file: &Path) -> Option<String> {
    let out = run(Command::new("readelf").arg("-dW").arg(file));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains("(SONAME)"))
        .and_then(|l| Some(l.split_once('[')?.1.rsplit_once(']')?.0.to_string()))
}

fn patchelf(args: &[&str], file: &Path) {
    let o = run(Command::new("patchelf").args(args).arg(file));
    assert!(o.status.success(), "patchelf {args:?} {}: {o:?}", s(file));
}

/// About `want` files spread evenly over `files` (plus the programs to run), each dynamically
/// linked, resolved completely by the system loader, not set-uid, below 2 MiB (a small tree),
/// and passing `keep`.
fn usable(files: Vec<PathBuf>, want: usize, keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let fits = |f: &Path| {
        let m = std::fs::metadata(f).unwrap();
        m.len() < 2 << 20
            && m.mode() & 0o6000 == 0
            && keep(f)
            && ld_so_list(LOADER, f).is_ok_and(|l| l.missing.is_empty() && !l.paths.is_empty())
    };
    let step = (files.len() / (want * 2)).max(1);
    let mut chosen: Vec<PathBuf> = files
        .iter()
        .step_by(step)
        .filter(|f| fits(f))
        .take(want)
        .cloned()
        .collect();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if RUNNABLE.contains(&name.as_str()) && !chosen.contains(f) && fits(f) {
            chosen.push(f.clone());
        }
    }
    chosen
}

fn build() -> Option<Layout> {
    for tool in ["patchelf", "readelf"] {
        if !have(tool) {
            return None;
        }
    }
    if !common::have_loader() {
        return None;
    }
    let st = Store::new();
    let x86_64_dyn = |h: &[u8; 20]| h[4] == 2 && h[5] == 1 && h[18] == 62 && h[16] == 3;
    let x86_64_exe = |h: &[u8; 20]| h[4] == 2 && h[5] == 1 && h[18] == 62 && h[16] == 2;
    let glibc_names: BTreeSet<String> = GLIBC.iter().map(|g| g.to_string()).collect();
    // Programs: PIE (ET_DYN with an interpreter) and non-PIE from /usr/bin.
    let has_interp = |f: &Path| {
        let o = run(Command::new("readelf").arg("-lW").arg(f));
        String::from_utf8_lossy(&o.stdout).contains("INTERP")
    };
    let progs = common::elf_files_under(&["/usr/bin"], |h| x86_64_dyn(h) || x86_64_exe(h));
    let progs = usable(progs, PROGRAMS, has_interp);
    let libs: Vec<PathBuf> = common::elf_files_under(&[SYSTEM_ROOTS[2]], x86_64_dyn)
        .into_iter()
        .filter(|f| f.to_string_lossy().contains(".so"))
        .collect();
    let libs = usable(libs, LIBRARIES, |f| {
        soname_of(f).is_some_and(|so| !shrinkwrap::resolve::is_glibc_part(&so))
    });

    // The inputs: every library the chosen files load, glibc's parts in a glibc package, the
    // others spread over four packages.
    let mut needed: BTreeMap<String, PathBuf> = BTreeMap::new();
    for f in progs.iter().chain(&libs) {
        for p in ld_so_list(LOADER, f).unwrap().paths {
            let name = Path::new(&p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            needed.entry(name).or_insert_with(|| PathBuf::from(p));
        }
    }
    for g in GLIBC {
        needed
            .entry(g.to_string())
            .or_insert_with(|| PathBuf::from(format!("/lib/x86_64-linux-gnu/{g}")));
    }
    let glibc_in = st.lib_dir("glibc-2.36");
    let others: Vec<PathBuf> = (0..4).map(|i| st.lib_dir(&format!("input-{i}"))).collect();
    let mut input_dirs = vec![glibc_in.clone()];
    input_dirs.extend(others.iter().cloned());
    let input_path: String = input_dirs
        .iter()
        .map(|d| s(d))
        .collect::<Vec<_>>()
        .join(":");
    let loader = s(&glibc_in.join("ld-linux-x86-64.so.2"));
    let mut placed_inputs = Vec::new();
    for (i, (name, src)) in needed.iter().enumerate() {
        let dir = if glibc_names.contains(name) {
            &glibc_in
        } else {
            &others[i % others.len()]
        };
        let dst = dir.join(name);
        std::fs::copy(src, &dst).unwrap();
        placed_inputs.push(dst);
    }
    for f in &placed_inputs {
        let name = f.file_name().unwrap().to_string_lossy();
        if name.starts_with("ld-linux") {
            continue;
        }
        if glibc_names.contains(name.as_ref()) {
            // As a glibc package is built: its libraries find each other beside them, and
            // libc.so.6 (which can be run) names its own loader.
            patchelf(&["--set-rpath", "$ORIGIN"], f);
            if name == "libc.so.6" {
                patchelf(&["--set-interpreter", &loader], f);
            }
        } else {
            patchelf(&["--set-rpath", &input_path], f);
        }
    }

    // The outputs: programs in two, libraries in one, and an output with its own glibc copy.
    let out_a = st.package("out-a");
    let out_b = st.package("out-b");
    let out_glibc = st.package("out-glibc");
    let outputs: Vec<PathBuf> = [&out_a, &out_b, &out_glibc]
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap())
        .collect();
    let mut elf = BTreeMap::new();
    let mut runnable = Vec::new();
    for (i, src) in progs.iter().enumerate() {
        let out = &outputs[i % 3];
        let bin = out.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let dst = bin.join(src.file_name().unwrap());
        std::fs::copy(src, &dst).unwrap();
        patchelf(
            &["--set-interpreter", &loader, "--set-rpath", &input_path],
            &dst,
        );
        let name = dst.file_name().unwrap().to_string_lossy().into_owned();
        if RUNNABLE.contains(&name.as_str()) {
            runnable.push(dst.clone());
        }
        elf.insert(dst, "stamped");
    }
    let lib_b = outputs[1].join("lib");
    std::fs::create_dir_all(&lib_b).unwrap();
    for src in &libs {
        let dst = lib_b.join(src.file_name().unwrap());
        std::fs::copy(src, &dst).unwrap();
        patchelf(&["--set-rpath", &input_path], &dst);
        if let Some(so) = soname_of(&dst) {
            if !lib_b.join(&so).exists() {
                std::os::unix::fs::symlink(dst.file_name().unwrap(), lib_b.join(&so)).unwrap();
            }
        }
        elf.insert(dst, "stamped");
    }
    // The output's own glibc: found by soname in the tree, but named by no RUNPATH, so the
    // loader never loads it for the other files, and fixup must not either.
    let lib_g = outputs[2].join("lib");
    std::fs::create_dir_all(&lib_g).unwrap();
    let own_loader = s(&lib_g.join("ld-linux-x86-64.so.2"));
    for g in GLIBC {
        let dst = lib_g.join(g);
        std::fs::copy(glibc_in.join(g), &dst).unwrap();
        if *g == "libc.so.6" {
            patchelf(&["--set-interpreter", &own_loader], &dst);
        }
        // The loader itself needs nothing: passed over. libc.so.6 needs only the loader,
        // which a library names by its soname: nothing to stamp, so passed over too (it was
        // never stamped: not "unchanged").
        let status = match *g {
            "libc.so.6" => "skipped",
            _ if g.starts_with("ld-linux") => "skipped",
            _ => "stamped",
        };
        elf.insert(dst, status);
    }
    let pristine = st.tmp.path().join("pristine");
    std::fs::create_dir_all(&pristine).unwrap();
    for o in &outputs {
        cp_a(o, &pristine.join(o.file_name().unwrap()));
    }
    println!(
        "store tree: {} programs, {} libraries, {} glibc files in 3 outputs; {} input libraries",
        progs.len(),
        libs.len(),
        GLIBC.len(),
        placed_inputs.len()
    );
    Some(Layout {
        st,
        loader,
        inputs: std::iter::once(glibc_in.parent().unwrap().to_path_buf())
            .chain(others.iter().map(|d| d.parent().unwrap().to_path_buf()))
            .collect(),
        outputs,
        elf,
        runnable,
        pristine,
    })
}

impl Layout {
    /// Puts the pristine outputs back in place.
    fn reset(&self) {
        for o in &self.outputs {
            std::fs::remove_dir_all(o).unwrap();
            cp_a(&self.pristine.join(o.file_name().unwrap()), o);
        }
    }

    fn fixup_cmd(&self, dirs: &[PathBuf], jobs: &str) -> Command {
        let mut c = shrinkwrap();
        c.arg("fixup")
            .args(dirs)
            .args(["-j", jobs, "--report"])
            .arg(self.st.scratch().join("report.json"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// One complete `fixup` of the outputs; its stderr.
    fn fixup(&self, jobs: &str) -> String {
        let o = run(&mut self.fixup_cmd(&self.outputs, jobs));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "fixup failed:\n{err}");
        err
    }

    /// What the loader lists for every ELF file of the outputs.
    fn lists(&self) -> BTreeMap<PathBuf, Result<Vec<String>, String>> {
        self.elf
            .keys()
            .map(|f| {
                let l = ld_so_list(&self.loader, f).map(|l| {
                    let mut v = l.paths;
                    v.extend(l.missing.iter().map(|m| format!("{m} => not found")));
                    v
                });
                (f.clone(), l)
            })
            .collect()
    }

    fn versions(&self) -> Vec<(PathBuf, Option<i32>, String)> {
        self.runnable
            .iter()
            .map(|p| {
                let o = run(Command::new(p).arg("--version").env_clear());
                (
                    p.clone(),
                    o.status.code(),
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                )
            })
            .collect()
    }
}

/// Everything under the outputs (`common::snapshot`), by absolute path.
fn snapshot(roots: &[PathBuf]) -> BTreeMap<PathBuf, Entry> {
    roots
        .iter()
        .flat_map(|r| {
            common::snapshot(r)
                .into_iter()
                .map(|(rel, e)| (r.join(rel), e))
        })
        .collect()
}

/// The mtimes of every file under the outputs, by absolute path.
fn mtimes(roots: &[PathBuf]) -> BTreeMap<PathBuf, (i64, i64)> {
    roots
        .iter()
        .flat_map(|r| {
            common::mtimes(r)
                .into_iter()
                .map(|(rel, t)| (r.join(rel), t))
        })
        .collect()
}

fn mismatches(
    want: &BTreeMap<PathBuf, Result<Vec<String>, String>>,
    got: &BTreeMap<PathBuf, Result<Vec<String>, String>>,
) -> Vec<String> {
    want.iter()
        .filter(|(f, w)| got.get(*f) != Some(w))
        .map(|(f, w)| format!("{}:\n  before {w:?}\n  after  {:?}", s(f), got.get(f)))
        .collect()
}

/// A small deterministic generator (the kill moments), seeded from the clock and printed, so
/// a failing round can be replayed with `SHRINKWRAP_TEST_SEED`.
struct Rng(u64);
impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("SHRINKWRAP_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("kill moments: SHRINKWRAP_TEST_SEED={seed}");
        Rng(seed | 1)
    }
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// How far a run has got: the number of output ELF files whose inode, size or mtime differs
/// from `before`.
fn written(files: &[PathBuf], before: &[(u64, u64, i64, i64)]) -> usize {
    files
        .iter()
        .zip(before)
        .filter(|(f, b)| {
            std::fs::metadata(f)
                .map(|m| (m.ino(), m.size(), m.mtime(), m.mtime_nsec()) != **b)
                .unwrap_or(true)
        })
        .count()
}

fn stat_all(files: &[PathBuf]) -> Vec<(u64, u64, i64, i64)> {
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).unwrap();
            (m.ino(), m.size(), m.mtime(), m.mtime_nsec())
        })
        .collect()
}

#[test]
fn fixup_on_a_store_tree_keeps_what_loads_and_is_idempotent() {
    let Some(t) = build() else { return };
    let before = t.lists();
    let broken: Vec<String> = before
        .iter()
        .filter(|(_, l)| l.is_err())
        .map(|(f, l)| format!("{}: {l:?}", s(f)))
        .collect();
    assert!(broken.is_empty(), "the loader refuses: {broken:?}");
    let ran = t.versions();
    assert!(!ran.is_empty(), "no program to run");
    let pristine = snapshot(&t.outputs);

    // One run: the loader sees the same files in the same order.
    let err = t.fixup("2");
    println!("{err}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.st.scratch().join("report.json")).unwrap())
            .unwrap();
    let status: BTreeMap<PathBuf, String> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                PathBuf::from(f["file"].as_str().unwrap()),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (f, want) in &t.elf {
        assert_eq!(status.get(f).map(String::as_str), Some(*want), "{}", s(f));
    }
    // Nothing was found only in the tree (every RUNPATH names the inputs).
    assert!(!err.contains("found only in the tree"), "{err}");
    let after = t.lists();
    let wrong = mismatches(&before, &after);
    println!(
        "{} files listed by the loader before and after fixup, {} mismatches",
        before.len(),
        wrong.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(t.versions(), ran, "programs print something else");
    // No file of the outputs loads the output's own glibc copy.
    let own_glibc = s(&t.outputs[2].join("lib"));
    for (f, l) in &after {
        if !f.starts_with(&t.outputs[2]) {
            let l = l.as_ref().unwrap();
            assert!(
                !l.iter().any(|p| p.starts_with(&own_glibc)),
                "{}: {l:?}",
                s(f)
            );
        }
    }
    let once = snapshot(&t.outputs);
    assert_ne!(once, pristine, "fixup wrote nothing");

    // A second run writes nothing: bytes and mtimes.
    let times = mtimes(&t.outputs);
    let err = t.fixup("2");
    assert!(err.contains("stamped 0 files"), "{err}");
    let d = differences(&once, &snapshot(&t.outputs));
    assert!(d.is_empty(), "a second run changed {d:?}");
    let d = differences(&times, &mtimes(&t.outputs));
    assert!(d.is_empty(), "a second run touched {d:?}");

    // Killed runs, completed: the bytes of one run. Each kill comes once a random number of
    // files have been written (polled, not timed), so the moments spread over the write phase.
    let files: Vec<PathBuf> = t
        .elf
        .iter()
        .filter(|(_, w)| **w == "stamped")
        .map(|(f, _)| f.clone())
        .collect();
    let mut rng = Rng::new();
    let mut interrupted = 0;
    for round in 0..KILLS {
        t.reset();
        let stats = stat_all(&files);
        let k = 1 + rng.below(files.len() - 1);
        let jobs = if round % 2 == 0 { "1" } else { "2" };
        let mut child = t.fixup_cmd(&t.outputs, jobs).spawn().unwrap();
        let killed = loop {
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            if written(&files, &stats) >= k {
                let _ = child.kill();
                let _ = child.wait();
                break true;
            }
            std::thread::yield_now();
        };
        let partial = snapshot(&t.outputs);
        if killed && partial != once && partial != pristine {
            interrupted += 1;
        }
        t.fixup(jobs);
        let d = differences(&once, &snapshot(&t.outputs));
        assert!(
            d.is_empty(),
            "round {round} (killed after {k} files written, -j{jobs}): completed run differs in {d:?}"
        );
    }
    println!("{KILLS} killed runs completed, {interrupted} of them killed mid-way: all identical to one run");
    assert!(interrupted > 0, "no kill landed in the middle of a run");

    // Inputs stamped first (a whole package set): the outputs' bytes are those of one run
    // on the original inputs, and still list as before.
    let inputs_before = snapshot(&t.inputs);
    let o = run(&mut t.fixup_cmd(&t.inputs, "2"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "fixup of the inputs: {err}");
    // The inputs really were stamped, or this would be the first case over again.
    assert!(
        !differences(&inputs_before, &snapshot(&t.inputs)).is_empty(),
        "fixup of the inputs changed nothing: {err}"
    );
    assert!(
        !err.contains("stamped 0 files"),
        "fixup of the inputs stamped nothing: {err}"
    );
    t.reset();
    t.fixup("2");
    let d = differences(&once, &snapshot(&t.outputs));
    assert!(
        d.is_empty(),
        "against stamped inputs the outputs differ in {d:?}"
    );
    let wrong = mismatches(&before, &t.lists());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(t.versions(), ran, "programs print something else");
}

/// The least a mixed-glibc refusal needs (not the whole store tree, which the other test
/// resets and stamps as it goes, so it cannot be shared while both run): a glibc input whose
/// loader a program names, an output with its own glibc copy, and that program.
struct Mixed {
    st: Store,
    /// The glibc input's loader: the program's interpreter.
    loader: String,
    /// The output's own glibc copy.
    own_lib: PathBuf,
    /// The glibc input's directory.
    input_lib: PathBuf,
    /// A program naming libc.so.6, unstamped.
    prog: PathBuf,
}

fn build_mixed() -> Option<Mixed> {
    for tool in ["cc", "patchelf", "readelf"] {
        if !have(tool) {
            return None;
        }
    }
    if !common::have_loader() {
        return None;
    }
    let st = Store::new();
    let glibc = ["ld-linux-x86-64.so.2", "libc.so.6"];
    // As build() makes the glibc input: its libraries find each other beside them, and
    // libc.so.6 names its own loader; the output's copy names the copy's loader.
    let input_lib = st.lib_dir("glibc-2.36");
    let loader = s(&input_lib.join(glibc[0]));
    let own_lib = std::fs::canonicalize(st.package("out-glibc"))
        .unwrap()
        .join("lib");
    std::fs::create_dir_all(&own_lib).unwrap();
    let own_loader = s(&own_lib.join(glibc[0]));
    for g in glibc {
        let src = PathBuf::from(format!("/lib/x86_64-linux-gnu/{g}"));
        let (input, own) = (input_lib.join(g), own_lib.join(g));
        std::fs::copy(&src, &input).unwrap();
        if g == "libc.so.6" {
            patchelf(
                &["--set-rpath", "$ORIGIN", "--set-interpreter", &loader],
                &input,
            );
        }
        std::fs::copy(&input, &own).unwrap();
        if g == "libc.so.6" {
            patchelf(&["--set-interpreter", &own_loader], &own);
        }
    }
    let prog = common::Cc::new(
        "cc",
        "int main(void) { return 0; }\n",
        st.package("out-a").join("bin/prog"),
    )
    .build();
    patchelf(
        &["--set-interpreter", &loader, "--set-rpath", &s(&input_lib)],
        &prog,
    );
    Some(Mixed {
        st,
        loader,
        own_lib,
        input_lib,
        prog,
    })
}

#[test]
fn a_closure_taking_glibc_from_two_directories_is_refused() {
    let Some(t) = build_mixed() else { return };
    // The program's RUNPATH names the output's own glibc copy first, while its interpreter is
    // the glibc input's: libc.so.6 from one, ld.so from the other.
    let mixed = t.st.scratch().join("mixed");
    std::fs::copy(&t.prog, &mixed).unwrap();
    assert_eq!(
        common::readelf_needed(&mixed),
        ["libc.so.6"],
        "the program must need libc.so.6 by name"
    );
    let rpath = format!("{}:{}", s(&t.own_lib), s(&t.input_lib));
    patchelf(&["--set-rpath", &rpath], &mixed);
    let bytes = std::fs::read(&mixed).unwrap();
    let o = run(shrinkwrap().arg("stamp").arg(&mixed));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("parts of glibc from two directories"), "{err}");
    assert!(err.contains(&t.loader), "{err}");
    assert!(err.contains(&s(&t.own_lib)), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(std::fs::read(&mixed).unwrap(), bytes, "the file changed");
    // `tree` describes it, with the warning.
    let doc = common::tree_json(&[&mixed], &[], 0);
    let kinds: Vec<&str> = doc["files"][0]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"mixed-glibc"), "{kinds:?}");
    // The same program with only the glibc input on its RUNPATH is stamped: the refusal is
    // about the mix, not about this fixture.
    let (code, _, err) = common::stamp(&t.prog, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(common::all_absolute(&common::readelf_needed(&t.prog)));
}
