//! Helpers shared by the integration tests: running shrinkwrap, asking the real loader, and
//! building fixture libraries into a fake Nix store with the C compiler.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The x86_64 glibc loader the tests compare against.
pub const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

/// Whether [`LOADER`] exists. When it does not, says so loudly; under CI (`CI=true`) that is a
/// failure, not a skip.
pub fn have_loader() -> bool {
    let found = Path::new(LOADER).exists();
    if !found {
        skip(&format!(
            "{LOADER} does not exist (an x86_64 glibc system is needed)"
        ));
    }
    found
}

/// The shrinkwrap binary under test.
pub fn shrinkwrap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shrinkwrap"))
}

/// Whether an external program is available. When it is not, says so loudly; under CI
/// (`CI=true`) a missing program is a failure, not a skip.
pub fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        skip(&format!(
            "{program} is not installed (run ./scripts/test.sh to install it)"
        ));
    }
    found
}

/// A check that cannot run here: says so loudly, and under CI (`CI=true`) fails, as a missing
/// tool does.
pub fn skip(why: &str) {
    let msg = format!("*** {why}: this check is SKIPPED ***");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg} — under CI a skipped check is a failure");
    }
    eprintln!("{msg}");
}

/// Runs a command, panicking with its output if it fails to start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// `shrinkwrap tree --json FILE... ARGS...`, parsed. Panics unless the exit code is `code`.
pub fn tree_json(files: &[&Path], args: &[&str], code: i32) -> Value {
    let out = run(shrinkwrap()
        .arg("tree")
        .arg("--json")
        .args(files)
        .args(args));
    assert_eq!(
        out.status.code(),
        Some(code),
        "shrinkwrap tree exit code; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("tree --json prints JSON")
}

/// The ordered library paths of one file in `tree --json` output.
pub fn paths(file: &Value) -> Vec<String> {
    file["libraries"]
        .as_array()
        .unwrap_or_else(|| panic!("no libraries in {file}"))
        .iter()
        .map(|l| l["path"].as_str().unwrap().to_string())
        .collect()
}

/// The library paths of one file as glibc's loader reports them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoaderList {
    /// Paths, in load order (the vDSO left out).
    pub paths: Vec<String>,
    /// Names the loader could not find.
    pub missing: Vec<String>,
}

/// Asks the loader what it would load for FILE: `INTERP FILE` in trace mode
/// (`LD_TRACE_LOADED_OBJECTS=1`, what `--list` and `ldd` use), which lists a library it cannot
/// find as "not found" and goes on. `Err` holds the loader's message when it cannot load the
/// file at all.
pub fn ld_so_list(interp: &str, file: &Path) -> Result<LoaderList, String> {
    let out = Command::new(interp)
        .arg(file)
        .env_clear()
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {interp}: {e}"));
    if out.status.success() {
        return Ok(parse_ld_so_list(&String::from_utf8_lossy(&out.stdout)));
    }
    Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
}

/// How shrinkwrap's closure of a file (its `tree --json` entry) compares with the loader's.
#[derive(Debug, PartialEq, Eq)]
pub enum Compared {
    /// Same paths in the same order, same missing names.
    Same,
    /// The same, but for glibc-hwcaps variants the loader took where shrinkwrap took the
    /// portable file beside them, on purpose.
    Hwcaps,
    /// The loader could not load the file at all (its message).
    Refused(String),
    /// Anything else, described.
    Differs(String),
}

pub fn compare_with_loader(interp: &str, file: &Path, ours: &Value) -> Compared {
    let theirs = match ld_so_list(interp, file) {
        Ok(l) => l,
        Err(msg) => return Compared::Refused(msg),
    };
    let our_missing: std::collections::BTreeSet<String> = ours["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    let their_missing: std::collections::BTreeSet<String> =
        theirs.missing.iter().cloned().collect();
    let our_paths = paths(ours);
    if our_missing == their_missing && our_paths == theirs.paths {
        return Compared::Same;
    }
    let portable: Vec<String> = theirs.paths.iter().map(|p| portable_path(p)).collect();
    if our_missing == their_missing && our_paths == portable {
        return Compared::Hwcaps;
    }
    Compared::Differs(format!(
        "\n  shrinkwrap: {our_paths:?} missing {our_missing:?}\n  ld.so:      {:?} missing {their_missing:?}",
        theirs.paths
    ))
}

/// A glibc-hwcaps variant's path as the portable file beside it (`dir/glibc-hwcaps/x86-64-v3/
/// libz.so.1` → `dir/libz.so.1`); any other path as it is.
pub fn portable_path(p: &str) -> String {
    match p.split_once("/glibc-hwcaps/") {
        Some((dir, rest)) => format!("{dir}/{}", rest.rsplit('/').next().unwrap_or(rest)),
        None => p.to_string(),
    }
}

pub fn parse_ld_so_list(text: &str) -> LoaderList {
    let mut l = LoaderList::default();
    for line in text.lines() {
        let line = line.trim();
        // Drop the load address: "… (0x00007f…)".
        let line = match line.rfind(" (0x") {
            Some(i) => &line[..i],
            None => line,
        };
        if let Some((name, target)) = line.split_once(" => ") {
            if target == "not found" {
                l.missing.push(name.to_string());
            } else {
                l.paths.push(target.to_string());
            }
        } else if line.starts_with('/') {
            l.paths.push(line.to_string());
        }
        // Anything else is the vDSO ("linux-vdso.so.1") or a statically linked note.
    }
    l
}

/// A fake Nix store under a temporary directory, for fixtures built with `cc`.
pub struct Store {
    pub tmp: tempfile::TempDir,
    pub store: PathBuf,
    /// The padding directories every fixture object gets in its RUNPATH.
    pub pads: Vec<PathBuf>,
}

/// Number of empty store `lib` directories put in front of every fixture's RUNPATH.
pub const PADS: usize = 32;

impl Store {
    pub fn new() -> Store {
        Store::at("nix/store")
    }

    /// A store at `<tmp>/<dir>` (`gnu/store` for a Guix-shaped one), with the same names.
    pub fn at(dir: &str) -> Store {
        let tmp = tempfile::Builder::new()
            .prefix("shrinkwrap-test-")
            .tempdir()
            .unwrap();
        let store = tmp.path().join(dir);
        std::fs::create_dir_all(&store).unwrap();
        let mut s = Store {
            tmp,
            store,
            pads: Vec::new(),
        };
        s.pads = (0..PADS).map(|i| s.lib_dir(&format!("pad-{i}"))).collect();
        s
    }

    /// `<store>/<hash>-<name>`, created.
    pub fn package(&self, name: &str) -> PathBuf {
        let p = self.store.join(format!("{}-{name}", fake_hash(name)));
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// `<store>/<hash>-<name>/lib`, created.
    pub fn lib_dir(&self, name: &str) -> PathBuf {
        let p = self.package(name).join("lib");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// A scratch directory outside the store (link-time stubs and sources).
    pub fn scratch(&self) -> PathBuf {
        let p = self.tmp.path().join("scratch");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// The padding directories followed by `dirs`, as a RUNPATH string.
    pub fn runpath(&self, dirs: &[&str]) -> String {
        let mut all: Vec<String> = self.pads.iter().map(|p| p.display().to_string()).collect();
        all.extend(dirs.iter().map(|s| s.to_string()));
        all.join(":")
    }
}

/// 32 characters of Nix base32 derived from `name` (stable, not a real hash).
pub fn fake_hash(name: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    (0..32)
        .map(|i| {
            for b in name.bytes().chain([i as u8]) {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
            ALPHABET[(h >> 59) as usize] as char
        })
        .collect()
}

/// One C compilation: `compiler` with `args`, from `source` written to a scratch file.
pub struct Cc<'a> {
    pub compiler: &'a str,
    pub source: &'a str,
    pub out: PathBuf,
    pub args: Vec<String>,
}

impl<'a> Cc<'a> {
    pub fn new(compiler: &'a str, source: &'a str, out: impl Into<PathBuf>) -> Self {
        Cc {
            compiler,
            source,
            out: out.into(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl AsRef<str>) -> Self {
        self.args.push(a.as_ref().to_string());
        self
    }

    /// A shared library with this soname (none if `None`).
    pub fn shared(self, soname: Option<&str>) -> Self {
        let s = self.arg("-shared").arg("-fPIC");
        match soname {
            Some(n) => s.arg(format!("-Wl,-soname,{n}")),
            None => s,
        }
    }

    pub fn runpath(self, rp: &str) -> Self {
        self.arg("-Wl,--enable-new-dtags")
            .arg(format!("-Wl,-rpath,{rp}"))
    }

    pub fn rpath(self, rp: &str) -> Self {
        self.arg("-Wl,--disable-new-dtags")
            .arg(format!("-Wl,-rpath,{rp}"))
    }

    /// Link against a library file by path (the DT_NEEDED becomes its soname).
    pub fn link(self, lib: &Path) -> Self {
        self.arg(lib.display().to_string())
    }

    pub fn build(self) -> PathBuf {
        std::fs::create_dir_all(self.out.parent().unwrap()).unwrap();
        let src = self.out.with_extension("src.c");
        let src = src
            .parent()
            .unwrap()
            .join(format!(".{}", src.file_name().unwrap().to_string_lossy()));
        std::fs::write(&src, self.source).unwrap();
        let out = run(Command::new(self.compiler)
            .arg("-o")
            .arg(&self.out)
            .arg(&src)
            .args(&self.args));
        std::fs::remove_file(&src).ok();
        assert!(
            out.status.success(),
            "{} failed building {}: {}",
            self.compiler,
            self.out.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        self.out
    }
}

/// The loader's view of a file, normalised for comparison: paths in order, glibc-hwcaps
/// variants replaced by the portable file beside them (which shrinkwrap chooses on purpose).
/// `Err` when the loader cannot load the file or finds a library missing.
pub fn loader_paths(interp: &str, file: &Path) -> Result<Vec<String>, String> {
    let l = ld_so_list(interp, file)?;
    if !l.missing.is_empty() {
        return Err(format!("not found: {}", l.missing.join(", ")));
    }
    Ok(l.paths.iter().map(|p| portable_path(p)).collect())
}

/// Runs `shrinkwrap ARGS... FILE`; returns (exit code, stdout, stderr).
pub fn sw(args: &[&str], file: &Path) -> (i32, String, String) {
    let out = run(shrinkwrap().args(args).arg(file));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `shrinkwrap stamp ARGS... FILE`; returns (exit code, stdout, stderr).
pub fn stamp(file: &Path, args: &[&str]) -> (i32, String, String) {
    let all: Vec<&str> = std::iter::once("stamp")
        .chain(args.iter().copied())
        .collect();
    sw(&all, file)
}

/// The little-endian field of `width` bytes (at most 8) at offset `at` of `b`, for tests that
/// read or edit ELF64 little-endian headers by hand.
pub fn le_at(b: &[u8], at: usize, width: usize) -> u64 {
    let mut v = [0u8; 8];
    v[..width].copy_from_slice(&b[at..at + width]);
    u64::from_le_bytes(v)
}

/// A path as text, for command lines and messages.
pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `rm -rf DST; cp -a SRC DST`: DST becomes a copy of SRC, never a copy inside an old DST.
pub fn cp_a(src: &Path, dst: &Path) {
    if let Ok(meta) = std::fs::symlink_metadata(dst) {
        if meta.is_dir() {
            std::fs::remove_dir_all(dst).unwrap();
        } else {
            std::fs::remove_file(dst).unwrap();
        }
    }
    let o = run(Command::new("cp").arg("-a").arg(src).arg(dst));
    assert!(o.status.success(), "cp -a: {o:?}");
}

/// Runs a program with an empty environment; (exit code, stdout).
pub fn run_program(p: &Path) -> (Option<i32>, String) {
    let out = run(Command::new(p).env_clear());
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Exported functions `exporting` adds: enough long names for a `.dynstr` far larger than a
/// page (with `-rdynamic`).
pub const EXPORTS: usize = 3000;

/// C source: `EXPORTS` functions with long names, then `program`.
pub fn exporting(program: &str) -> String {
    let mut s = String::new();
    for i in 0..EXPORTS {
        s.push_str(&format!(
            "int shrinkwrap_exported_function_with_a_long_name_{i:05}(void) {{ return {i}; }}\n"
        ));
    }
    s + program
}

/// The size of a section, from `readelf -S`.
pub fn section_size(file: &Path, name: &str) -> u64 {
    let out = run(Command::new("readelf").arg("-SW").arg(file));
    let text = String::from_utf8_lossy(&out.stdout);
    let rest = text
        .lines()
        .find_map(|l| l.split_once(&format!(" {name} ")))
        .unwrap_or_else(|| panic!("no {name} in {}", file.display()))
        .1;
    // Name Type Address Off Size …: the size is the fourth field after the name.
    u64::from_str_radix(rest.split_whitespace().nth(3).unwrap(), 16).unwrap()
}

/// The address and flags (`R`, `R E`, `RW`) of the lowest PT_LOAD, from `readelf -l`.
pub fn first_load(file: &Path) -> (u64, String) {
    let out = run(Command::new("readelf").arg("-lW").arg(file));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with("LOAD"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let vaddr = u64::from_str_radix(w[2].trim_start_matches("0x"), 16).unwrap();
            (vaddr, w[6..w.len() - 1].join(" "))
        })
        .min()
        .unwrap()
}

/// The `vn_file` names of the version-needs table, as `readelf -V` shows them.
pub fn readelf_vn_files(file: &Path) -> Vec<String> {
    let out = run(Command::new("readelf").arg("-VW").arg(file));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(" File: "))
        .map(|(_, rest)| rest.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

/// The DT_RUNPATH string, as `readelf -d` shows it.
pub fn readelf_runpath(file: &Path) -> Option<String> {
    let out = run(Command::new("readelf").arg("-dW").arg(file));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains("(RUNPATH)"))
        .and_then(|l| l.split_once('[').and_then(|(_, r)| r.rsplit_once(']')))
        .map(|(v, _)| v.to_string())
}

/// Runs `prog` under strace, with an empty environment; returns what it printed and every
/// library lookup that failed (ENOENT on a path naming a `.so`, /etc/ld.so.preload aside).
pub fn lookups(tmp: &Path, prog: &Path) -> (String, Vec<String>) {
    let trace = tmp.join("strace.out");
    let out = run(Command::new("strace")
        .args(["-f", "-o"])
        .arg(&trace)
        .args(["-e", "trace=openat,open,stat,newfstatat,access"])
        .arg(prog)
        .env_clear());
    assert!(
        out.status.success(),
        "{} under strace: {}",
        prog.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    let failed = text
        .lines()
        .filter(|l| l.contains("ENOENT"))
        .filter(|l| {
            let path = l.split('"').nth(1).unwrap_or("");
            path.contains(".so") && path != "/etc/ld.so.preload"
        })
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), failed)
}

/// Whether a DT_NEEDED list is non-empty and all absolute paths.
pub fn all_absolute(v: &[String]) -> bool {
    !v.is_empty() && v.iter().all(|n| n.starts_with('/'))
}

/// DT_NEEDED entries as `readelf -d` shows them.
pub fn readelf_needed(file: &Path) -> Vec<String> {
    let out = run(Command::new("readelf").arg("-dW").arg(file));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            l.split_once('[')
                .and_then(|(_, r)| r.rsplit_once(']'))
                .map(|(n, _)| n.to_string())
        })
        .collect()
}

/// The strip tools a stamped file must survive, each as (name, command line builder).
pub fn strip_variants(file: &Path, out: &Path) -> Vec<(&'static str, Command)> {
    let mut v = Vec::new();
    for (name, args) in [
        ("strip", vec!["-o"]),
        ("strip -S", vec!["-S", "-o"]),
        ("eu-strip", vec!["-o"]),
    ] {
        let prog = name.split(' ').next().unwrap();
        let mut c = Command::new(prog);
        c.args(args).arg(out).arg(file);
        v.push((name, c));
    }
    v
}

/// The system directories both corpus tests cover.
pub const SYSTEM_ROOTS: &[&str] = &["/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu"];

/// Every ELF file under `roots`, recursively, by real path, each once, sorted: the first 20
/// bytes of each are passed to `keep` (the ELF identification and `e_machine`).
pub fn elf_files_under(roots: &[&str], keep: impl Fn(&[u8; 20]) -> bool) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(&e.path(), out),
                Ok(_) => out.push(e.path()),
                Err(_) => {}
            }
        }
    }
    let mut files = Vec::new();
    for r in roots {
        walk(Path::new(r), &mut files);
    }
    let set: std::collections::BTreeSet<PathBuf> = files
        .into_iter()
        .filter_map(|f| std::fs::canonicalize(f).ok())
        .filter(|f| f.is_file())
        .filter(|f| {
            let mut head = [0u8; 20];
            std::fs::File::open(f)
                .and_then(|mut h| std::io::Read::read_exact(&mut h, &mut head))
                .is_ok()
                && &head[..4] == b"\x7fELF"
                && keep(&head)
        })
        .collect();
    set.into_iter().collect()
}

/// One entry of a [`snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory, with its mode.
    Dir(u32),
    /// A symlink, with its target.
    Link(PathBuf),
    File {
        mode: u32,
        bytes: Vec<u8>,
    },
}

/// Everything under `dir`, by path relative to it: directories with their mode, symlinks with
/// their target, files with their mode and bytes.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Entry> {
    use std::os::unix::fs::MetadataExt;
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<PathBuf, Entry>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let entry = if meta.file_type().is_symlink() {
                Entry::Link(std::fs::read_link(&p).unwrap())
            } else if meta.is_dir() {
                walk(root, &p, out);
                Entry::Dir(meta.mode() & 0o7777)
            } else {
                Entry::File {
                    mode: meta.mode() & 0o7777,
                    bytes: std::fs::read(&p).unwrap(),
                }
            };
            out.insert(rel, entry);
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The keys whose values differ between two maps (one missing counts), in order.
pub fn differences<V: PartialEq>(
    a: &std::collections::BTreeMap<PathBuf, V>,
    b: &std::collections::BTreeMap<PathBuf, V>,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<&PathBuf> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| k.display().to_string())
        .collect()
}

/// Modification times (seconds, nanoseconds) of every regular file under `dir`, by path
/// relative to it.
pub fn mtimes(dir: &Path) -> std::collections::BTreeMap<PathBuf, (i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    snapshot(dir)
        .into_iter()
        .filter(|(_, e)| matches!(e, Entry::File { .. }))
        .map(|(rel, _)| {
            let m = std::fs::symlink_metadata(dir.join(&rel)).unwrap();
            (rel, (m.mtime(), m.mtime_nsec()))
        })
        .collect()
}

/// libfoo's source in a [`Chain`].
pub const CHAIN_FOO: &str = "extern int bar(void);\nint foo(void) { return 40 + bar(); }\n";

/// `prog → libfoo.so.1 → libbar.so.1`, each in its own store path with 32-directory RUNPATHs
/// (libfoo's followed by `foo_extra` more directories): the small chain several tests stamp.
/// libfoo's `foo()` is `40 + bar()`, and the program exits with `foo()`.
pub struct Chain {
    pub prog: PathBuf,
    pub libfoo: PathBuf,
    pub libbar: PathBuf,
}

impl Store {
    /// Builds a [`Chain`] in this store with libbar compiled from `bar` (defining `bar()`).
    pub fn chain(&self, bar: &str, foo_extra: &[String]) -> Chain {
        const APP: &str = "extern int foo(void);\nint main(void) { return foo(); }\n";
        let bar_dir = self.lib_dir("bar");
        let foo_dir = self.lib_dir("foo");
        let rp = self.runpath(&[&s(&foo_dir), &s(&bar_dir)]);
        let libbar = Cc::new("cc", bar, bar_dir.join("libbar.so.1"))
            .shared(Some("libbar.so.1"))
            .runpath(&rp)
            .build();
        let foo_rp: Vec<String> = std::iter::once(rp.clone())
            .chain(foo_extra.iter().cloned())
            .collect();
        let libfoo = Cc::new("cc", CHAIN_FOO, foo_dir.join("libfoo.so.1"))
            .shared(Some("libfoo.so.1"))
            .runpath(&foo_rp.join(":"))
            .link(&libbar)
            .build();
        let prog = Cc::new("cc", APP, self.package("app").join("bin/app"))
            .runpath(&rp)
            .arg(format!("-Wl,-rpath-link,{}", s(&bar_dir)))
            .link(&libfoo)
            .build();
        Chain {
            prog,
            libfoo,
            libbar,
        }
    }
}

/// Settings that let Debian's Nix 2.8 work here offline, as root, without a daemon
/// (`../shared/design/nix.md`).
pub const NIX_CONFIG: &str =
    "substituters =\nsandbox = false\nbuild-users-group =\nexperimental-features = nix-command flakes";

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The stand-in nixpkgs flake, as a `path:` reference.
pub fn nixpkgs_standin() -> String {
    format!(
        "path:{}",
        repo().join("tests/nix/nixpkgs-standin").display()
    )
}

/// The flake's files in a temporary directory, as a `path:` flake (the work tree may hold
/// untracked files and a large `target/`).
pub fn flake_copy() -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    for item in [
        "flake.nix",
        "nix",
        "hooks",
        "Cargo.toml",
        "Cargo.lock",
        "src",
    ] {
        let out = run(Command::new("cp")
            .arg("-r")
            .arg(repo().join(item))
            .arg(tmp.path()));
        assert!(out.status.success(), "copying {item}");
    }
    let url = format!("path:{}", tmp.path().display());
    (tmp, url)
}
