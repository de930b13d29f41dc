//! Real Nix builds in the real /nix/store (Debian's Nix 2.8, as root, no daemon, the sandbox
//! off) of the derivations in `tests/nix/real/default.nix`: a chain of libraries built with the
//! host's gcc (liba -> libb -> libc3, each its own store path with a wide RUNPATH) and a
//! program with outputs `out` and `lib` that needs liba, built through the stdenv stand-in
//! (`tests/nix/stdenv-standin.sh`) and the setup hook, with this build's shrinkwrap binary
//! copied into the store. Checks what Nix and the loader see: the stamps make every library a
//! runtime reference, a GC root on the program keeps them all, and the stamped program looks
//! for no library, while the same program built with `dontShrinkwrap` looks in many places.

mod common;

use common::{repo, NIX_CONFIG};

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{all_absolute, have, loader_paths, lookups, readelf_needed, run, s};

const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
/// What every variant of the program prints (a = 10 * b + 1, b = 10 * c + 2, c = 3,
/// p = a + 1000).
const OUTPUT: &str = "a=321 p=1321\n";
/// The fewest failed library lookups the unstamped program must make: its RUNPATH and the
/// libraries' have four missing directories and an empty one each in front of the real ones.
const MANY: usize = 20;

/// Whether every tool the tests need is there (each missing one said loudly, or a failure
/// under CI).
fn tools() -> bool {
    let found: Vec<bool> = ["nix-build", "nix-store", "strace", "readelf", "gcc"]
        .iter()
        .map(|t| have(t))
        .collect();
    found.iter().all(|&f| f)
}

/// `nix-store ARGS...`; panics unless it succeeds. Returns stdout.
fn nix_store(args: &[&str]) -> String {
    let out = run(Command::new("nix-store")
        .args(args)
        .env("NIX_CONFIG", NIX_CONFIG));
    assert!(
        out.status.success(),
        "nix-store {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The direct runtime references Nix registered for a store path.
fn references(path: &Path) -> BTreeSet<String> {
    nix_store(&["-q", "--references", &s(path)])
        .lines()
        .map(str::to_string)
        .collect()
}

/// One derivation's outputs.
#[derive(Debug)]
struct Outputs {
    out: PathBuf,
    /// The program's `lib` output (the libraries have none).
    lib: Option<PathBuf>,
    /// What `nix-build` printed on stderr: the build log, among other things.
    log: String,
}

impl Outputs {
    fn lib(&self) -> &Path {
        self.lib.as_deref().expect("a lib output")
    }
    fn prog(&self) -> PathBuf {
        self.out.join("bin/prog")
    }
    fn libp(&self) -> PathBuf {
        self.lib().join("lib/libp.so.1")
    }
}

/// One test's builds: their own derivation names (a nonce), GC roots in a temporary directory,
/// and the store paths to delete at the end.
struct Builds {
    tmp: tempfile::TempDir,
    nonce: String,
    /// A directory with `bin/shrinkwrap`, for `builtins.path`.
    bin: PathBuf,
    /// Every output built, and its derivation.
    built: RefCell<Vec<PathBuf>>,
}

impl Builds {
    fn new() -> Builds {
        let tmp = tempfile::Builder::new()
            .prefix("shrinkwrap-nix-")
            .tempdir()
            .unwrap();
        // The temporary directory's random part, and the time: new store paths every run.
        let name = tmp
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let nonce = format!("{}-{secs}", name.trim_start_matches("shrinkwrap-nix-"));
        let bin = tmp.path().join("shrinkwrap");
        std::fs::create_dir_all(bin.join("bin")).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_shrinkwrap"), bin.join("bin/shrinkwrap")).unwrap();
        std::fs::create_dir(tmp.path().join("roots")).unwrap();
        Builds {
            tmp,
            nonce,
            bin,
            built: RefCell::new(Vec::new()),
        }
    }

    /// `roots/NAME`: the GC root `nix-build -o` makes for a derivation's `out`
    /// (`roots/NAME-lib` for its `lib`).
    fn root(&self, name: &str) -> PathBuf {
        self.tmp.path().join("roots").join(name)
    }

    /// Builds one attribute of `default.nix` (the program's `out` and `lib`, if `lib`), its
    /// outputs rooted in `roots/` at once (so a collection running meanwhile cannot take them).
    fn build(&self, attr: &str, lib: bool) -> Outputs {
        // `-A attr` alone builds and links `out` only (no outputsToInstall on a raw
        // derivation); each output asked for by name gets its own link, `NAME-OUTPUT`.
        let mut attrs = vec![format!("{attr}.out")];
        if lib {
            attrs.push(format!("{attr}.lib"));
        }
        let mut cmd = Command::new("nix-build");
        cmd.arg(repo().join("tests/nix/real/default.nix"))
            .args(["--argstr", "nonce", &self.nonce])
            .args(["--argstr", "bin", &s(&self.bin)]);
        for a in &attrs {
            cmd.args(["-A", a]);
        }
        let out = run(cmd
            .arg("-o")
            .arg(self.root(attr))
            .env("NIX_CONFIG", NIX_CONFIG));
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "nix-build -A {attr}: {log}");
        let link = |name: &str| {
            std::fs::read_link(self.root(name))
                .unwrap_or_else(|e| panic!("{name}: {e}; nix-build said: {log}"))
        };
        let outputs = Outputs {
            out: link(attr),
            lib: lib.then(|| link(&format!("{attr}-lib"))),
            log: log.clone(),
        };
        let mut built = self.built.borrow_mut();
        built.push(outputs.out.clone());
        built.extend(outputs.lib.clone());
        built.push(PathBuf::from(
            nix_store(&["-q", "--deriver", &s(&outputs.out)]).trim(),
        ));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            attrs.len(),
            "nix-build -A {attr} printed one path per output: {log}"
        );
        outputs
    }

    /// Builds `attr.out`, which must fail; returns what nix-build said.
    fn build_fails(&self, attr: &str) -> String {
        let out = run(Command::new("nix-build")
            .arg(repo().join("tests/nix/real/default.nix"))
            .args(["--argstr", "nonce", &self.nonce])
            .args(["--argstr", "bin", &s(&self.bin)])
            .args(["-A", &format!("{attr}.out")])
            .arg("-o")
            .arg(self.root(attr))
            .env("NIX_CONFIG", NIX_CONFIG));
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "nix-build -A {attr} succeeded: {log}"
        );
        log
    }

    /// Removes the GC root `roots/NAME`.
    fn unroot(&self, name: &str) {
        std::fs::remove_file(self.root(name)).unwrap();
    }
}

impl Drop for Builds {
    /// Removes every GC root, then deletes what the test built and their derivations (what is
    /// left of them: a collection may have taken some). Best effort: a failure here must not
    /// hide the test's own.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.tmp.path().join("roots"));
        let built: Vec<String> = self
            .built
            .borrow()
            .iter()
            .filter(|p| p.exists())
            .map(|p| s(p))
            .collect();
        if !built.is_empty() {
            let _ = Command::new("nix-store")
                .arg("--delete")
                .args(&built)
                .env("NIX_CONFIG", NIX_CONFIG)
                .output();
        }
    }
}

/// Runs `prog`; returns what it printed.
fn output_of(prog: &Path) -> String {
    let out = run(Command::new(prog).env_clear());
    assert!(
        out.status.success(),
        "{}: {}",
        prog.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// File names of the libraries the loader loads for `file`, in its order.
fn loader_names(file: &Path) -> Vec<String> {
    loader_paths(LOADER, file)
        .unwrap_or_else(|e| panic!("{} --list {}: {e}", LOADER, file.display()))
        .iter()
        .map(|p| p.rsplit('/').next().unwrap().to_string())
        .collect()
}

/// The three libraries, built (and rooted) by themselves.
struct Libs {
    a: PathBuf,
    b: PathBuf,
    c3: PathBuf,
}

impl Libs {
    fn build(b: &Builds) -> Libs {
        Libs {
            c3: b.build("libc3", false).out,
            b: b.build("libb", false).out,
            a: b.build("liba", false).out,
        }
    }
    /// Each library's store path with the file a stamp names in it.
    fn files(&self) -> [(&Path, String); 3] {
        [
            (&self.a, format!("{}/lib/liba.so.1", s(&self.a))),
            (&self.b, format!("{}/lib/libb.so.1", s(&self.b))),
            (&self.c3, format!("{}/lib/libc3.so.1", s(&self.c3))),
        ]
    }
}

/// Checks one stamped variant of the program: its references, its stamps, its output, and
/// that it looks for no library; the loader loads what it loads for `plain`, in that order.
fn check_stamped(b: &Builds, what: &str, v: &Outputs, libs: &Libs, plain: &Outputs) {
    // (1) Every library of the closure, and the program's own `lib`, is a reference of `out`
    // (the program's stamp names them); `lib` (libp, a library, stamped with its own entries
    // only) refers to liba, which it needs, and not back to `out`.
    let out_refs = references(&v.out);
    let lib_refs = references(v.lib());
    for (path, _) in libs.files() {
        assert!(
            out_refs.contains(&s(path)),
            "{what}: {} is not a reference of {}: {out_refs:?}",
            path.display(),
            v.out.display()
        );
    }
    assert!(
        lib_refs.contains(&s(&libs.a)),
        "{what}: {} is not a reference of {}: {lib_refs:?}",
        libs.a.display(),
        v.lib().display()
    );
    assert!(out_refs.contains(&s(v.lib())), "{what}: {out_refs:?}");
    assert!(!lib_refs.contains(&s(&v.out)), "{what}: {lib_refs:?}");

    // The stamps: absolute DT_NEEDED into those store paths.
    let needed = readelf_needed(&v.prog());
    let libp_needed = readelf_needed(&v.libp());
    for (file, list) in [(v.prog(), &needed), (v.libp(), &libp_needed)] {
        assert!(
            all_absolute(list),
            "{what}: {} has a bare DT_NEEDED: {list:?}",
            file.display()
        );
    }
    for (_, lib) in libs.files() {
        assert!(
            needed.contains(&lib),
            "{what}: prog does not name {lib}: {needed:?}"
        );
    }
    // libp lists its own entry (liba), nothing lifted.
    assert_eq!(libp_needed, [libs.files()[0].1.clone()], "{what}");
    assert!(needed.contains(&s(&v.libp())), "{what}: {needed:?}");
    assert_eq!(
        loader_names(&v.prog()),
        loader_names(&plain.prog()),
        "{what}: the loader loads what it loads for the unstamped program"
    );

    // (3) It runs, and looks for nothing.
    let (printed, failed) = lookups(b.tmp.path(), &v.prog());
    assert_eq!(printed, OUTPUT, "{what}");
    assert!(
        failed.is_empty(),
        "{what}: {} failed library lookups:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn hook_stamps_real_builds_that_nix_keeps_and_that_search_nothing() {
    if !tools() {
        return;
    }
    let b = Builds::new();
    let libs = Libs::build(&b);
    let plain = b.build("plain", true);
    let prog = b.build("prog", true);
    let direct = b.build("direct", true);
    for v in [&prog, &direct] {
        assert!(v.log.contains("shrinkwrap: stamped 2 files"), "{}", v.log);
    }
    assert!(
        plain.log.contains("dontShrinkwrap is set, not stamping"),
        "{}",
        plain.log
    );

    // The unstamped program: bare names, found through RUNPATH; only liba (on its RUNPATH)
    // is a reference, so the stamps are what make libb and libc3 references below.
    let plain_refs = references(&plain.out);
    assert!(plain_refs.contains(&s(&libs.a)), "{plain_refs:?}");
    for lib in [&libs.b, &libs.c3] {
        assert!(!plain_refs.contains(&s(lib)), "{plain_refs:?}");
    }
    assert!(
        readelf_needed(&plain.prog())
            .iter()
            .all(|n| !n.starts_with('/')),
        "{:?}",
        readelf_needed(&plain.prog())
    );
    let (printed, failed) = lookups(b.tmp.path(), &plain.prog());
    assert_eq!(printed, OUTPUT);
    assert!(
        failed.len() >= MANY,
        "the unstamped program should search its RUNPATH: only {} failed lookups:\n{}",
        failed.len(),
        failed.join("\n")
    );

    // Every library as a host dependency, and only liba (libb and libc3 then come from liba's
    // RUNPATH).
    check_stamped(&b, "prog", &prog, &libs, &plain);
    check_stamped(&b, "direct", &direct, &libs, &plain);

    // (2) A GC root on the program's `out` alone keeps its `lib` and every library.
    for name in [
        "libc3",
        "libb",
        "liba",
        "plain",
        "plain-lib",
        "direct",
        "direct-lib",
        "prog-lib",
    ] {
        b.unroot(name);
    }
    let kept = [
        prog.out.clone(),
        prog.lib().to_path_buf(),
        libs.a.clone(),
        libs.b.clone(),
        libs.c3.clone(),
    ];
    let dead: BTreeSet<String> = nix_store(&["--gc", "--print-dead"])
        .lines()
        .map(str::to_string)
        .collect();
    for p in &kept {
        assert!(!dead.contains(&s(p)), "{} would be collected", p.display());
    }
    // And the check means something: what is not reachable from the root is collectable.
    for p in [&plain.out, &direct.out] {
        assert!(
            dead.contains(&s(p)),
            "{} would not be collected",
            p.display()
        );
    }
    nix_store(&["--gc"]);
    for p in &kept {
        assert!(p.exists(), "the collection deleted {}", p.display());
    }
    assert!(
        !plain.out.exists(),
        "{} survived the collection",
        plain.out.display()
    );
    assert_eq!(output_of(&prog.prog()), OUTPUT);
    let (_, failed) = lookups(b.tmp.path(), &prog.prog());
    assert!(failed.is_empty(), "{failed:?}");
}

/// The lines of a build log with something drawn for a terminal in them (a carriage return,
/// an escape sequence, a bar).
fn drawn(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains('\r') || l.contains('\u{1b}') || l.contains('█'))
        .collect()
}

#[test]
fn build_log_gets_a_summary_and_no_progress_bar() {
    if !tools() {
        return;
    }
    let b = Builds::new();
    // Stamped by hand with the hook's `shrinkwrapFixup` function, in postFixup.
    let v = b.build("byhand", true);
    let stored = nix_store(&["--read-log", &s(&v.out)]);
    for log in [&v.log, &stored] {
        assert!(log.contains("shrinkwrap: fixing up 2 ELF files"), "{log}");
        assert!(log.contains("shrinkwrap: stamped 2 files"), "{log}");
        assert!(
            drawn(log).is_empty(),
            "terminal output in the build log: {:?}",
            drawn(log)
        );
    }
    assert!(
        all_absolute(&readelf_needed(&v.prog())),
        "{:?}",
        readelf_needed(&v.prog())
    );
    assert_eq!(output_of(&v.prog()), OUTPUT);
}

/// The autoPatchelfHook stand-in (`tests/nix/real/auto-patchelf-standin.sh`) listed before and
/// after the hook: the program also needs libauto, which only the stand-in's RUNPATH makes
/// findable. Either order builds, with the stand-in first and libauto stamped in (so a
/// reference); without the stand-in the build fails on the missing library, so the stand-in
/// is what both builds relied on.
#[test]
fn auto_patchelf_before_or_after_the_hook_in_a_real_build() {
    if !tools() || !have("patchelf") {
        return;
    }
    let b = Builds::new();
    let libauto = b.build("libauto", false).out;
    let want = "a=321 p=1321 auto=7\n";
    for attr in ["autoBefore", "autoAfter"] {
        let v = b.build(attr, true);
        let patched = v.log.find("autoPatchelf stand-in: patched");
        let stamping = v.log.find("shrinkwrap: fixing up");
        assert!(
            matches!((patched, stamping), (Some(p), Some(s)) if p < s),
            "{attr}: autoPatchelf must run before the stamping: {}",
            v.log
        );
        assert!(
            v.log.contains("shrinkwrap: stamped 2 files"),
            "{attr}: {}",
            v.log
        );
        let lib = format!("{}/lib/libauto.so.1", s(&libauto));
        let needed = readelf_needed(&v.prog());
        assert!(all_absolute(&needed), "{attr}: {needed:?}");
        assert!(needed.contains(&lib), "{attr}: {needed:?}");
        assert!(references(&v.out).contains(&s(&libauto)), "{attr}");
        assert_eq!(output_of(&v.prog()), want, "{attr}");
        let (_, failed) = lookups(b.tmp.path(), &v.prog());
        assert!(failed.is_empty(), "{attr}: {failed:?}");
    }
    let none = b.build_fails("autoNone");
    assert!(none.contains("missing libauto.so.1"), "{none}");
}
