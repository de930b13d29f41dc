//! The Nix setup hook (`hooks/shrinkwrap-hook.sh`) driven through the stdenv stand-in
//! (`tests/nix/stdenv-standin.sh`), with and without `__structuredAttrs`: C fixtures in a fake
//! store with outputs `out`, `lib` and `debug` and an input store path that the programs find
//! only through the hook's gathered `--search` directories. Checks what gets stamped (and what
//! must keep its bytes), every option, the `shrinkwrap` shell function, the autoPatchelfHook
//! order check and the refusal of stamps that would make two outputs refer to each other.
//!
//! These tests caught a hook that stamped nothing: a local named `outputs` hid stdenv's from
//! `getAllOutputNames` (bash scoping is dynamic).

mod common;

use common::repo;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{have, readelf_needed, run, s, Cc, Store};

/// The one bare DT_NEEDED a stamped library (which names no interpreter) may keep.
const LOADER_SONAME: &str = "ld-linux-x86-64.so.2";

/// The input store path's library.
const DEP: &str = "int dep(void) { return 40; }\n";
/// `$lib/lib/libfoo.so.1`, which needs the input's library.
const FOO: &str = "int dep(void);\nint foo(void) { return dep() + 1; }\n";
/// `$out/bin/hello`, which needs `$lib/lib/libfoo.so.1`.
const HELLO: &str =
    "#include <stdio.h>\nint foo(void);\nint main(void) { printf(\"foo=%d\\n\", foo()); return 0; }\n";
/// `$lib/bin/tool`, which needs the input's library directly.
const TOOL: &str =
    "#include <stdio.h>\nint dep(void);\nint main(void) { printf(\"dep=%d\\n\", dep()); return 0; }\n";
const GONE: &str = "int gone(void) { return 0; }\n";
const APP_GONE: &str = "int gone(void);\nint main(void) { return gone(); }\n";
const NV: &str = "int nv(void) { return 7; }\n";
const APP_NV: &str =
    "#include <stdio.h>\nint nv(void);\nint main(void) { printf(\"nv=%d\\n\", nv()); return 0; }\n";
const EXTRA: &str = "int extra(void) { return 3; }\n";
const APP_EXTRA: &str = "#include <stdio.h>\nint extra(void);\nint main(void) { printf(\"extra=%d\\n\", extra()); return 0; }\n";
const LIBB: &str = "int b(void) { return 2; }\n";
const LIBA: &str = "int b(void);\nint a(void) { return b() + 1; }\n";
const APP_P: &str =
    "#include <stdio.h>\nint a(void);\nint main(void) { printf(\"a=%d\\n\", a()); return 0; }\n";

/// A single-quoted shell word.
fn q(x: &str) -> String {
    format!("'{}'", x.replace('\'', r"'\''"))
}

/// Whether the tools these tests need are here (each missing one is reported by `have`).
fn tools() -> bool {
    let mut ok = true;
    for t in ["bash", "cc", "readelf"] {
        ok &= have(t);
    }
    ok
}

/// Optional parts of a fixture.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// `$out/bin/needs-gone`, linked against a library that is then deleted.
    Gone,
    /// `$out/bin/uses-nv`, needing the input's `libnvidia-test.so.1` (on the default keep list).
    Nvidia,
    /// `$out/bin/uses-extra`, needing `libextra.so.1` from a store path that is neither an
    /// input nor on any RUNPATH.
    Extra,
}

/// A fake store with the outputs `out`, `lib`, `debug` and the inputs.
struct Fx {
    st: Store,
    /// The store directory (a real path).
    store: PathBuf,
    out: PathBuf,
    lib: PathBuf,
    debug: PathBuf,
    /// The input store path with `lib/libdep.so.1`.
    dep: PathBuf,
    /// An input store path without a `lib` directory.
    nolib: PathBuf,
    /// The directory of `libextra.so.1` (with `Part::Extra`).
    extra: PathBuf,
}

impl Fx {
    fn hello(&self) -> PathBuf {
        self.out.join("bin/hello")
    }
    fn libfoo(&self) -> PathBuf {
        self.lib.join("lib/libfoo.so.1")
    }
    fn tool(&self) -> PathBuf {
        self.lib.join("bin/tool")
    }
    fn libdep(&self) -> PathBuf {
        self.dep.join("lib/libdep.so.1")
    }
    fn debug_files(&self) -> [PathBuf; 2] {
        [
            self.debug.join("lib/debug/.build-id/ab/cdef0123.debug"),
            self.debug.join("bin/x"),
        ]
    }
}

/// The fake store with empty outputs `out`, `lib`, `debug`, the input `dep` with
/// `lib/libdep.so.1`, and the input `nolib` without a `lib` directory.
fn base() -> Fx {
    base_in("nix/store")
}

/// `base()` with the store at `<tmp>/<dir>`.
fn base_in(dir: &str) -> Fx {
    let st = Store::at(dir);
    let store = std::fs::canonicalize(&st.store).unwrap();
    let pkg = |name: &str| std::fs::canonicalize(st.package(name)).unwrap();
    let (out, lib, debug) = (pkg("out"), pkg("lib"), pkg("debug"));
    let dep = pkg("dep");
    let nolib = pkg("nolib");
    std::fs::create_dir_all(nolib.join("bin")).unwrap();
    Cc::new("cc", DEP, dep.join("lib/libdep.so.1"))
        .shared(Some("libdep.so.1"))
        .runpath(&st.runpath(&[]))
        .build();
    Fx {
        st,
        store,
        out,
        lib,
        debug,
        dep,
        nolib,
        extra: PathBuf::new(),
    }
}

/// Builds the fixture: `base()`, then `$lib/lib/libfoo.so.1` needing the input's libdep;
/// `$out/bin/hello` needing libfoo; `$lib/bin/tool` needing libdep; copies of the unstamped
/// `hello` in `$debug`. No RUNPATH names the input's lib directory.
fn fixture(parts: &[Part]) -> Fx {
    fixture_in("nix/store", parts)
}

/// `fixture()` with the store at `<tmp>/<dir>`.
fn fixture_in(dir: &str, parts: &[Part]) -> Fx {
    let mut fx = base_in(dir);
    let cc = "cc";
    let (st, out, lib) = (&fx.st, fx.out.clone(), fx.lib.clone());
    let dep_lib = fx.dep.join("lib");
    let libdep = fx.libdep();
    let pads = st.runpath(&[]);
    let rpath_link = format!("-Wl,-rpath-link,{}", s(&dep_lib));

    let libfoo = Cc::new(cc, FOO, lib.join("lib/libfoo.so.1"))
        .shared(Some("libfoo.so.1"))
        .runpath(&pads)
        .link(&libdep)
        .build();
    let hello = Cc::new(cc, HELLO, out.join("bin/hello"))
        .runpath(&st.runpath(&[&s(&lib.join("lib"))]))
        .link(&libfoo)
        .arg(&rpath_link)
        .build();
    Cc::new(cc, TOOL, lib.join("bin/tool"))
        .runpath(&pads)
        .link(&libdep)
        .build();
    let mut extra = PathBuf::new();
    for part in parts {
        match part {
            Part::Gone => {
                let gone = std::fs::canonicalize(st.lib_dir("gone")).unwrap();
                let libgone = Cc::new(cc, GONE, gone.join("libgone.so.1"))
                    .shared(Some("libgone.so.1"))
                    .build();
                Cc::new(cc, APP_GONE, out.join("bin/needs-gone"))
                    .runpath(&st.runpath(&[&s(&gone)]))
                    .link(&libgone)
                    .build();
                std::fs::remove_file(&libgone).unwrap();
            }
            Part::Nvidia => {
                let nv = Cc::new(cc, NV, dep_lib.join("libnvidia-test.so.1"))
                    .shared(Some("libnvidia-test.so.1"))
                    .build();
                Cc::new(cc, APP_NV, out.join("bin/uses-nv"))
                    .runpath(&pads)
                    .link(&nv)
                    .build();
            }
            Part::Extra => {
                extra = std::fs::canonicalize(st.lib_dir("extra")).unwrap();
                let libextra = Cc::new(cc, EXTRA, extra.join("libextra.so.1"))
                    .shared(Some("libextra.so.1"))
                    .build();
                Cc::new(cc, APP_EXTRA, out.join("bin/uses-extra"))
                    .runpath(&pads)
                    .link(&libextra)
                    .build();
            }
        }
    }
    fx.extra = extra;
    for d in fx.debug_files() {
        std::fs::create_dir_all(d.parent().unwrap()).unwrap();
        std::fs::copy(&hello, &d).unwrap();
    }
    fx
}

/// What a script sets and does around the hook.
#[derive(Default)]
struct Opts<'a> {
    /// List options: a bash array under `__structuredAttrs`, a space-separated string else.
    lists: Vec<(&'a str, Vec<&'a str>)>,
    /// Plain string variables (`dontShrinkwrap`, `preFixup`, …), set before the hook.
    strings: Vec<(&'a str, String)>,
    /// Shell code run after the outputs are declared, before the hook is sourced.
    before_hook: String,
    /// Shell code run after the hook is sourced.
    after_hook: String,
    /// Leave out `standinInputs`.
    no_inputs: bool,
    /// Shell code run after `fixupPhase`.
    after_fixup: String,
}

/// The script: stand-in, outputs, options, hook, inputs, `fixupPhase`.
fn script(fx: &Fx, mode: Mode, o: &Opts) -> String {
    let structured = mode.structured;
    let mut t = String::new();
    if mode.helpers {
        // Newer stdenv's helpers, its messages on stdout (to tell them from the fallbacks').
        t += "standinHelpers=1\nNIX_LOG_FD=1\n";
    }
    t += &format!(
        "source {}\n",
        q(&s(&repo().join("tests/nix/stdenv-standin.sh")))
    );
    if structured {
        t += "__structuredAttrs=1\n";
    }
    t += &format!(
        "standinOutputs out={} lib={} debug={}\n",
        q(&s(&fx.out)),
        q(&s(&fx.lib)),
        q(&s(&fx.debug))
    );
    for (name, value) in &o.strings {
        t += &format!("{name}={}\n", q(value));
    }
    for (name, items) in &o.lists {
        if structured {
            let items: Vec<String> = items.iter().map(|i| q(i)).collect();
            t += &format!("{name}=({})\n", items.join(" "));
        } else {
            t += &format!("{name}={}\n", q(&items.join(" ")));
        }
    }
    t += &o.before_hook;
    t += "\n";
    t += &format!(
        "source {}\n",
        q(&s(&repo().join("hooks/shrinkwrap-hook.sh")))
    );
    t += &o.after_hook;
    t += "\n";
    if !o.no_inputs {
        t += &format!("standinInputs {} {}\n", q(&s(&fx.dep)), q(&s(&fx.nolib)));
    }
    t += "fixupPhase\n";
    t += &o.after_fixup;
    t += "\n";
    t
}

/// What a script did.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
    text: String,
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- script ---\n{}--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.text, self.stdout, self.stderr
        )
    }
}

/// Runs the script with the shrinkwrap binary first on PATH, `NIX_BUILD_CORES=2` and
/// `NIX_STORE_DIR` set to the fake store, and none of the hook's options in the environment.
fn run_script(fx: &Fx, text: String) -> Ran {
    let dir = fx.st.scratch();
    let file = dir.join("hook-test.sh");
    std::fs::write(&file, &text).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_shrinkwrap"))
        .parent()
        .unwrap();
    let path = match std::env::var("PATH") {
        Ok(p) if !p.is_empty() => format!("{}:{p}", s(bin)),
        _ => s(bin),
    };
    let mut cmd = Command::new("bash");
    cmd.arg(&file)
        .current_dir(&dir)
        .env("PATH", path)
        .env("NIX_BUILD_CORES", "2")
        .env("NIX_STORE_DIR", &fx.store)
        .stdin(Stdio::null());
    for var in [
        "LD_LIBRARY_PATH",
        "__structuredAttrs",
        "standinHelpers",
        "NIX_LOG_FD",
        "NIX_STORE",
        "shrinkwrapHookSourced",
        "shrinkwrapStoreDir",
        "dontShrinkwrap",
        "shrinkwrapKeep",
        "shrinkwrapAllowMissing",
        "shrinkwrapFlags",
        "outputs",
        "out",
        "lib",
        "debug",
        "preFixup",
        "postFixup",
    ] {
        cmd.env_remove(var);
    }
    let o = run(&mut cmd);
    Ran {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        text,
    }
}

/// Every file and symlink under `dir`: its mode and bytes (a symlink's target).
type Snapshot = BTreeMap<PathBuf, (u32, Vec<u8>)>;

fn snapshot(dir: &Path) -> Snapshot {
    fn walk(dir: &Path, out: &mut Snapshot) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(p, (0, t.into_os_string().into_encoded_bytes()));
            } else if meta.is_dir() {
                walk(&p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(p, (meta.permissions().mode() & 0o7777, bytes));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

/// The paths whose entries differ between two snapshots.
fn changed(a: &Snapshot, b: &Snapshot) -> Vec<PathBuf> {
    let mut keys: Vec<&PathBuf> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// Puts back the bytes and modes of regular files (the tests change nothing else).
fn restore(snap: &Snapshot) {
    for (p, (mode, bytes)) in snap {
        let meta = std::fs::symlink_metadata(p).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        if std::fs::read(p).unwrap() != *bytes {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
}

/// How the stand-in stdenv is set up.
#[derive(Clone, Copy)]
struct Mode {
    /// `__structuredAttrs`: list options are bash arrays.
    structured: bool,
    /// A newer stdenv, with `concatTo`, `nixLog` and `nixErrorLog` (`$NIX_LOG_FD` is stdout);
    /// else an older one, and the hook's fallbacks (on stderr).
    helpers: bool,
}

const MODES: [Mode; 4] = [
    Mode {
        structured: false,
        helpers: false,
    },
    Mode {
        structured: true,
        helpers: false,
    },
    Mode {
        structured: false,
        helpers: true,
    },
    Mode {
        structured: true,
        helpers: true,
    },
];

impl Mode {
    fn name(&self) -> String {
        format!(
            "{} __structuredAttrs, {} stdenv's helpers",
            if self.structured { "with" } else { "without" },
            if self.helpers { "with" } else { "without" }
        )
    }
    /// Where `nixLog` writes: stdout with stdenv's helpers, stderr with the hook's fallbacks.
    fn log<'r>(&self, ran: &'r Ran) -> &'r str {
        if self.helpers {
            &ran.stdout
        } else {
            &ran.stderr
        }
    }
}

/// Runs a program with no LD_LIBRARY_PATH; (exit code, stdout, stderr).
fn run_program(p: &Path) -> (Option<i32>, String, String) {
    let o = run(Command::new(p).env_remove("LD_LIBRARY_PATH"));
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Asserts the program runs and prints `want`.
fn assert_runs(p: &Path, want: &str, ctx: &str) {
    let (code, stdout, stderr) = run_program(p);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), want),
        "{ctx}: running {}: {stderr}",
        p.display()
    );
}

/// Asserts every DT_NEEDED of `file` is an absolute path (a library may keep the loader's
/// soname) and returns them.
fn assert_stamped(file: &Path, library: bool, ctx: &str) -> Vec<String> {
    let needed = readelf_needed(file);
    assert!(
        !needed.is_empty(),
        "{ctx}: {} has no DT_NEEDED",
        file.display()
    );
    for n in &needed {
        assert!(
            n.starts_with('/') || (library && n == LOADER_SONAME),
            "{ctx}: {} keeps the bare name {n}: {needed:?}",
            file.display()
        );
    }
    needed
}

/// Asserts `file`'s DT_NEEDED holds `bare` as it is and every other entry is absolute.
fn assert_bare(file: &Path, bare: &str, ctx: &str) -> Vec<String> {
    let needed = readelf_needed(file);
    assert!(
        needed.iter().any(|n| n == bare),
        "{ctx}: {} should keep {bare} bare: {needed:?}",
        file.display()
    );
    for n in needed.iter().filter(|n| *n != bare) {
        assert!(
            n.starts_with('/'),
            "{ctx}: {} keeps the bare name {n} too: {needed:?}",
            file.display()
        );
    }
    needed
}

fn assert_unchanged(before: &Snapshot, after: &Snapshot, ctx: &str, ran: &Ran) {
    let diff = changed(before, after);
    assert!(diff.is_empty(), "{ctx}: files changed: {diff:?}\n{ran}");
}

#[test]
fn stamps_out_and_lib_but_not_debug() {
    if !tools() {
        return;
    }
    let fx = fixture(&[]);
    let pristine = snapshot(&fx.store);
    // Before: nothing but the hook could find the input's library.
    let (code, _, stderr) = run_program(&fx.hello());
    assert_ne!(code, Some(0), "hello runs before stamping: {stderr}");
    assert!(stderr.contains("libdep.so.1"), "{stderr}");
    for file in [fx.hello(), fx.libfoo(), fx.tool()] {
        assert!(
            readelf_needed(&file).iter().all(|n| !n.starts_with('/')),
            "{} is stamped already",
            file.display()
        );
    }
    for mode in MODES {
        let ctx = &mode.name();
        restore(&pristine);
        let opts = Opts {
            // What `dontShrinkwrap = false;` becomes in either mode.
            strings: vec![("dontShrinkwrap", String::new())],
            ..Opts::default()
        };
        let ran = run_script(&fx, script(&fx, mode, &opts));
        assert_eq!(ran.code, 0, "{ctx}: {ran}");
        let after = snapshot(&fx.store);

        // Exactly out's and lib's stampable files changed.
        let mut diff = changed(&pristine, &after);
        diff.sort();
        let mut want = vec![fx.hello(), fx.libfoo(), fx.tool()];
        want.sort();
        assert_eq!(diff, want, "{ctx}: changed files\n{ran}");
        for d in fx.debug_files() {
            assert_eq!(
                std::fs::read(&d).unwrap(),
                pristine[&d].1,
                "{ctx}: {} changed",
                d.display()
            );
        }
        // The hook passed out and lib (not debug) and NIX_BUILD_CORES.
        assert!(
            ran.stderr.contains(&format!(
                "shrinkwrap: fixing up 3 ELF files in {} {} with 2 jobs",
                s(&fx.out),
                s(&fx.lib)
            )) || ran.stderr.contains(&format!(
                "shrinkwrap: fixing up 3 ELF files in {} {} with 2 jobs",
                s(&fx.lib),
                s(&fx.out)
            )),
            "{ctx}: start line\n{ran}"
        );
        assert!(!ran.stderr.contains(&s(&fx.debug)), "{ctx}: {ran}");

        // Stamped, with the input's library found through the gathered search directory.
        let libdep = s(&fx.libdep());
        let libfoo = s(&fx.libfoo());
        let hello = assert_stamped(&fx.hello(), false, ctx);
        assert!(hello.contains(&libfoo), "{ctx}: hello {hello:?}");
        assert!(hello.contains(&libdep), "{ctx}: hello {hello:?}");
        let foo = assert_stamped(&fx.libfoo(), true, ctx);
        assert!(foo.contains(&libdep), "{ctx}: libfoo {foo:?}");
        let tool = assert_stamped(&fx.tool(), false, ctx);
        assert!(tool.contains(&libdep), "{ctx}: tool {tool:?}");
        assert_runs(&fx.hello(), "foo=41\n", ctx);
        assert_runs(&fx.tool(), "dep=40\n", ctx);
    }
}

/// A stand-in `shrinkwrap` (in the returned directory, to put first on PATH) that appends each
/// command line to the returned file, one word a line, then `--end--`.
fn recording_stub(fx: &Fx) -> (PathBuf, PathBuf) {
    let stub_dir = fx.st.scratch().join("stub");
    std::fs::create_dir_all(&stub_dir).unwrap();
    let argv = fx.st.scratch().join("argv");
    let stub = stub_dir.join("shrinkwrap");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >>{}\necho --end-- >>{}\n",
            q(&s(&argv)),
            q(&s(&argv))
        ),
    )
    .unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    (stub_dir, argv)
}

#[test]
fn passes_options_and_existing_outputs_to_fixup() {
    if !tools() {
        return;
    }
    let fx = base();
    let (stub_dir, argv) = recording_stub(&fx);
    let extra = s(&fx.st.pads[1]);
    // An output that was never created: left out.
    let doc = fx.store.join(format!("{}-doc", common::fake_hash("doc")));
    for mode in MODES {
        let ctx = &mode.name();
        std::fs::remove_file(&argv).ok();
        let opts = Opts {
            lists: vec![
                ("shrinkwrapKeep", vec!["libzzz*", "libfo*"]),
                ("shrinkwrapAllowMissing", vec!["libgone.so.*"]),
                (
                    "shrinkwrapFlags",
                    vec!["--no-default-keep", "--quiet", "-j", "3"],
                ),
            ],
            strings: vec![("preFixup", format!("addShrinkwrapSearchPath {}", q(&extra)))],
            before_hook: format!(
                "standinOutputs out={} lib={} debug={} doc={}\nPATH={}:$PATH",
                q(&s(&fx.out)),
                q(&s(&fx.lib)),
                q(&s(&fx.debug)),
                q(&s(&doc)),
                q(&s(&stub_dir))
            ),
            after_fixup: "echo \"standin-concatTo=${standinConcatToCalls-none}\"".into(),
            ..Opts::default()
        };
        let ran = run_script(&fx, script(&fx, mode, &opts));
        assert_eq!(ran.code, 0, "{ctx}: {ran}");
        // The lists were read by stdenv's concatTo where it has one.
        let calls = if mode.helpers { "3" } else { "none" };
        assert!(
            ran.stdout.contains(&format!("standin-concatTo={calls}\n")),
            "{ctx}: {ran}"
        );
        let text = std::fs::read_to_string(&argv)
            .unwrap_or_else(|e| panic!("{ctx}: shrinkwrap never ran ({e})\n{ran}"));
        let calls: Vec<&str> = text.split("--end--\n").filter(|c| !c.is_empty()).collect();
        assert_eq!(calls.len(), 1, "{ctx}: calls {calls:?}\n{ran}");
        let words: Vec<&str> = calls[0].lines().collect();
        let dep_lib = s(&fx.dep.join("lib"));
        // No -j of the hook's own (fixup reads $NIX_BUILD_CORES), so the user's goes through.
        let store = s(&fx.store);
        let want = [
            "fixup",
            "--store-dir",
            &store,
            "--search",
            &dep_lib,
            "--search",
            &extra,
            "--keep",
            "libzzz*",
            "--keep",
            "libfo*",
            "--allow-missing",
            "libgone.so.*",
            "--no-default-keep",
            "--quiet",
            "-j",
            "3",
        ];
        assert!(words.len() == want.len() + 2, "{ctx}: {words:?}");
        assert_eq!(words[..want.len()], want, "{ctx}: {words:?}");
        let mut outs = words[want.len()..].to_vec();
        outs.sort();
        let mut want_outs = vec![s(&fx.out), s(&fx.lib)];
        want_outs.sort();
        assert_eq!(outs, want_outs, "{ctx}: outputs {words:?}");
    }
}

#[test]
fn dont_shrinkwrap_changes_nothing() {
    if !tools() {
        return;
    }
    let fx = fixture(&[]);
    let before = snapshot(&fx.store);
    for mode in MODES {
        let ctx = &mode.name();
        let opts = Opts {
            strings: vec![("dontShrinkwrap", "1".into())],
            ..Opts::default()
        };
        let ran = run_script(&fx, script(&fx, mode, &opts));
        assert_eq!(ran.code, 0, "{ctx}: {ran}");
        assert!(
            mode.log(&ran)
                .contains("shrinkwrapPostFixup: dontShrinkwrap is set, not stamping"),
            "{ctx}: {ran}"
        );
        assert!(!ran.stderr.contains("fixing up"), "{ctx}: {ran}");
        assert_unchanged(&before, &snapshot(&fx.store), ctx, &ran);
    }
}

#[test]
fn keep_allow_missing_and_flags() {
    if !tools() {
        return;
    }
    let fx = fixture(&[Part::Gone, Part::Nvidia]);
    let pristine = snapshot(&fx.store);
    let needs_gone = fx.out.join("bin/needs-gone");
    let uses_nv = fx.out.join("bin/uses-nv");
    let nv = s(&fx.dep.join("lib/libnvidia-test.so.1"));
    for mode in MODES {
        let ctx = &mode.name();

        // No options: the missing library fails the build and its file keeps its bytes;
        // the rest is stamped as usual (libfoo lifted, the NVIDIA-named library kept).
        restore(&pristine);
        let ran = run_script(&fx, script(&fx, mode, &Opts::default()));
        assert_ne!(ran.code, 0, "{ctx}: a missing library must fail\n{ran}");
        assert!(
            ran.stderr.contains(&format!(
                "shrinkwrap: missing libgone.so.1, needed by {}",
                s(&needs_gone)
            )),
            "{ctx}: {ran}"
        );
        assert_eq!(
            std::fs::read(&needs_gone).unwrap(),
            pristine[&needs_gone].1,
            "{ctx}: needs-gone changed though it failed"
        );
        let hello = assert_stamped(&fx.hello(), false, ctx);
        assert!(hello.contains(&s(&fx.libfoo())), "{ctx}: {hello:?}");
        assert_bare(&uses_nv, "libnvidia-test.so.1", ctx);

        // With the options.
        restore(&pristine);
        let opts = Opts {
            lists: vec![
                ("shrinkwrapKeep", vec!["libzzz*", "libfo*"]),
                (
                    "shrinkwrapAllowMissing",
                    vec!["libnothere.so.1", "libgone.so.*"],
                ),
                ("shrinkwrapFlags", vec!["--no-default-keep", "--quiet"]),
            ],
            ..Opts::default()
        };
        let ran = run_script(&fx, script(&fx, mode, &opts));
        assert_eq!(ran.code, 0, "{ctx}: {ran}");
        assert_eq!(ran.stderr, "", "{ctx}: --quiet must silence fixup\n{ran}");
        let hello = assert_bare(&fx.hello(), "libfoo.so.1", ctx);
        assert!(!hello.contains(&s(&fx.libfoo())), "{ctx}: {hello:?}");
        assert_ne!(
            std::fs::read(fx.hello()).unwrap(),
            pristine[&fx.hello()].1,
            "{ctx}: hello not stamped"
        );
        assert_runs(&fx.hello(), "foo=41\n", ctx);
        assert_bare(&needs_gone, "libgone.so.1", ctx);
        assert_ne!(
            std::fs::read(&needs_gone).unwrap(),
            pristine[&needs_gone].1,
            "{ctx}: needs-gone not stamped"
        );
        let nv_needed = assert_stamped(&uses_nv, false, ctx);
        assert!(nv_needed.contains(&nv), "{ctx}: {nv_needed:?}");
        assert_runs(&uses_nv, "nv=7\n", ctx);
    }
}

#[test]
fn add_shrinkwrap_search_path() {
    if !tools() {
        return;
    }
    let fx = fixture(&[Part::Extra]);
    let pristine = snapshot(&fx.store);
    let uses_extra = fx.out.join("bin/uses-extra");
    let empty = s(&fx.st.pads[0]);
    for mode in MODES {
        let ctx = &mode.name();

        // Without it, libextra.so.1 is missing.
        restore(&pristine);
        let ran = run_script(&fx, script(&fx, mode, &Opts::default()));
        assert_ne!(ran.code, 0, "{ctx}: {ran}");
        assert!(
            ran.stderr.contains("shrinkwrap: missing libextra.so.1"),
            "{ctx}: {ran}"
        );
        assert_eq!(
            std::fs::read(&uses_extra).unwrap(),
            pristine[&uses_extra].1,
            "{ctx}: uses-extra changed though it failed"
        );

        // With it: from preFixup, as documented, and by a direct call.
        for how in ["preFixup", "direct"] {
            let ctx = format!("{ctx}, {how}");
            restore(&pristine);
            let call = format!("addShrinkwrapSearchPath {} {}", q(&empty), q(&s(&fx.extra)));
            let opts = if how == "preFixup" {
                Opts {
                    strings: vec![("preFixup", call)],
                    ..Opts::default()
                }
            } else {
                Opts {
                    after_hook: call,
                    ..Opts::default()
                }
            };
            let ran = run_script(&fx, script(&fx, mode, &opts));
            assert_eq!(ran.code, 0, "{ctx}: {ran}");
            let needed = assert_stamped(&uses_extra, false, &ctx);
            assert!(
                needed.contains(&s(&fx.extra.join("libextra.so.1"))),
                "{ctx}: {needed:?}"
            );
            assert_runs(&uses_extra, "extra=3\n", &ctx);
            // The input's directory is still searched.
            assert_stamped(&fx.hello(), false, &ctx);
        }
    }
}

#[test]
fn shrinkwrap_fixup_function_by_hand() {
    if !tools() {
        return;
    }
    let fx = fixture(&[]);
    // A directory outside the outputs, with copies of the unstamped programs: tool needs the
    // input's library (found only through the gathered search path), hello needs libfoo.
    let manual = std::fs::canonicalize(fx.st.package("manual")).unwrap();
    let app = manual.join("opt/app");
    std::fs::create_dir_all(&app).unwrap();
    let (m_hello, m_tool) = (app.join("hello"), app.join("tool"));
    std::fs::copy(fx.hello(), &m_hello).unwrap();
    std::fs::copy(fx.tool(), &m_tool).unwrap();
    let pristine = snapshot(&fx.store);
    for mode in MODES {
        let ctx = &mode.name();
        for how in ["postFixup", "after fixupPhase"] {
            let ctx = format!("{ctx}, {how}");
            restore(&pristine);
            let call = format!("shrinkwrapFixup {}", q(&s(&manual)));
            let mut opts = Opts {
                lists: vec![
                    ("shrinkwrapKeep", vec!["libzzz*", "libfo*"]),
                    ("shrinkwrapFlags", vec!["--quiet"]),
                ],
                ..Opts::default()
            };
            if how == "postFixup" {
                opts.strings.push(("postFixup", call));
            } else {
                opts.after_fixup = call;
            }
            let ran = run_script(&fx, script(&fx, mode, &opts));
            assert_eq!(ran.code, 0, "{ctx}: {ran}");
            // shrinkwrapFlags: --quiet, so no start or summary line.
            assert!(
                !ran.stderr.lines().any(|l| l.starts_with("shrinkwrap")),
                "{ctx}: --quiet\n{ran}"
            );
            // shrinkwrapKeep.
            assert_bare(&m_hello, "libfoo.so.1", &ctx);
            assert_ne!(
                std::fs::read(&m_hello).unwrap(),
                pristine[&m_hello].1,
                "{ctx}: {} not stamped",
                m_hello.display()
            );
            // The gathered search path.
            let needed = assert_stamped(&m_tool, false, &ctx);
            assert!(needed.contains(&s(&fx.libdep())), "{ctx}: {needed:?}");
            assert_runs(&m_tool, "dep=40\n", &ctx);
        }
    }
}

/// Shell code defining a stand-in autoPatchelfHook's postFixup function.
const AUTO_PATCHELF: &str = "autoPatchelfPostFixup() { echo autopatchelf-ran >&2; }";

/// Asserts the stand-in autoPatchelf ran, then the stamping, and that the outputs are stamped.
fn assert_auto_patchelf_then_stamped(fx: &Fx, ran: &Ran, ctx: &str) {
    assert_eq!(ran.code, 0, "{ctx}: {ran}");
    let auto = ran.stderr.find("autopatchelf-ran");
    let stamp = ran.stderr.find("shrinkwrap: fixing up");
    assert!(
        matches!((auto, stamp), (Some(a), Some(b)) if a < b),
        "{ctx}: autoPatchelf must run before shrinkwrap\n{ran}"
    );
    assert_eq!(
        ran.stderr.matches("autopatchelf-ran").count(),
        1,
        "{ctx}: {ran}"
    );
    assert_eq!(
        ran.stderr.matches("shrinkwrap: fixing up").count(),
        1,
        "{ctx}: {ran}"
    );
    assert_stamped(&fx.hello(), false, ctx);
    assert_stamped(&fx.libfoo(), true, ctx);
    assert_runs(&fx.hello(), "foo=41\n", ctx);
}

#[test]
fn auto_patchelf_runs_first_whatever_the_order() {
    if !tools() {
        return;
    }
    let fx = fixture(&[]);
    let pristine = snapshot(&fx.store);
    // Another postFixup hook, listed last: it keeps its place after both.
    let other = "otherPostFixup() { echo other-ran >&2; }";
    for mode in MODES {
        for listed in ["before", "after"] {
            let ctx = &format!(
                "{}, autoPatchelfHook listed {listed} shrinkwrapHook",
                mode.name()
            );
            restore(&pristine);
            let register = "postFixupHooks+=(autoPatchelfPostFixup)";
            let (before_hook, after_hook) = if listed == "before" {
                (
                    format!("{AUTO_PATCHELF}\n{other}\n{register}"),
                    String::new(),
                )
            } else {
                (format!("{AUTO_PATCHELF}\n{other}"), register.to_string())
            };
            let opts = Opts {
                before_hook,
                after_hook: format!("{after_hook}\npostFixupHooks+=(otherPostFixup)"),
                ..Opts::default()
            };
            let ran = run_script(&fx, script(&fx, mode, &opts));
            assert_auto_patchelf_then_stamped(&fx, &ran, ctx);
            let stamp = ran.stderr.find("shrinkwrap: stamped");
            let other = ran.stderr.find("other-ran");
            assert!(
                matches!((stamp, other), (Some(a), Some(b)) if a < b),
                "{ctx}: the other hook must keep its place\n{ran}"
            );
        }
    }
}

#[test]
fn auto_patchelf_after_it_without_pre_fixup_hooks_is_refused() {
    if !tools() {
        return;
    }
    let fx = fixture(&[]);
    let pristine = snapshot(&fx.store);
    for mode in MODES {
        let ctx = &mode.name();
        restore(&pristine);
        // A fixupPhase of the derivation's own that runs postFixup only: the hook could not
        // reorder, and must not stamp before autoPatchelf.
        let opts = Opts {
            before_hook: AUTO_PATCHELF.into(),
            after_hook:
                "postFixupHooks+=(autoPatchelfPostFixup)\nfixupPhase() { runHook postFixup; }"
                    .into(),
            ..Opts::default()
        };
        let ran = run_script(&fx, script(&fx, mode, &opts));
        assert_ne!(ran.code, 0, "{ctx}: {ran}");
        assert!(
            mode.log(&ran)
                .contains("autoPatchelfHook would run after it"),
            "{ctx}: {ran}"
        );
        assert!(!ran.stderr.contains("fixing up"), "{ctx}: {ran}");
        assert_unchanged(&pristine, &snapshot(&fx.store), ctx, &ran);
    }
}

#[test]
fn the_binary_keeps_its_name_after_the_hook_is_sourced() {
    if !tools() {
        return;
    }
    let fx = fixture(&[]);
    let pristine = snapshot(&fx.store);
    let hello = s(&fx.hello());
    for mode in MODES {
        let ctx = &mode.name();
        restore(&pristine);
        // In a phase: an install check's, after fixup (so on the stamped file), and in
        // postFixup before the hook's own run (on the unstamped one, whose library only the
        // gathered search path finds). `set -e` fails the script if any of them fails.
        let opts = Opts {
            strings: vec![(
                "postFixup",
                format!(
                    "shrinkwrap tree {h} --search {d} >before.txt",
                    h = q(&hello),
                    d = q(&s(&fx.dep.join("lib")))
                ),
            )],
            after_fixup: format!(
                "installCheckPhase() {{\n\
                 shrinkwrap tree --json {h} >tree.json\n\
                 shrinkwrap check {h} --search {d} >check.txt\n\
                 shrinkwrap --version >version.txt\n}}\n\
                 installCheckPhase\n\
                 cat before.txt tree.json check.txt version.txt\n\
                 echo \"type=$(type -t shrinkwrap)\"",
                h = q(&hello),
                d = q(&s(&fx.dep.join("lib")))
            ),
            ..Opts::default()
        };
        let ran = run_script(&fx, script(&fx, mode, &opts));
        assert_eq!(ran.code, 0, "{ctx}: {ran}");
        assert!(
            ran.stdout.contains(&format!("\"file\": \"{hello}\""))
                || ran.stdout.contains(&format!("\"file\":\"{hello}\"")),
            "{ctx}: tree --json\n{ran}"
        );
        assert!(ran.stdout.contains(&s(&fx.libdep())), "{ctx}: {ran}");
        assert!(ran.stdout.contains("shrinkwrap 0.1.0"), "{ctx}: {ran}");
        assert!(
            !ran.stderr.contains("No such file or directory"),
            "{ctx}: {ran}"
        );
        assert!(ran.stdout.contains("type=file\n"), "{ctx}: {ran}");
    }
}

#[test]
fn the_old_by_hand_call_fails_with_the_new_name_and_changes_nothing() {
    if !tools() {
        return;
    }
    let fx = fixture(&[]);
    let pristine = snapshot(&fx.store);
    for mode in MODES {
        let ctx = &mode.name();
        restore(&pristine);
        // `shrinkwrap PATH` was the hook's function before it was named shrinkwrapFixup.
        let opts = Opts {
            strings: vec![
                ("dontShrinkwrap", "1".into()),
                ("postFixup", format!("shrinkwrap {}", q(&s(&fx.out)))),
            ],
            ..Opts::default()
        };
        let ran = run_script(&fx, script(&fx, mode, &opts));
        assert_ne!(ran.code, 0, "{ctx}: {ran}");
        assert!(ran.stderr.contains("shrinkwrapFixup"), "{ctx}: {ran}");
        assert_unchanged(&pristine, &snapshot(&fx.store), ctx, &ran);
    }
}

#[test]
fn refuses_a_reference_cycle_between_outputs() {
    if !tools() {
        return;
    }
    // $out/bin/p needs $lib/lib/liba.so, which needs $out/lib/libb.so (found in the outputs,
    // not on liba's RUNPATH: no cycle exists before stamping). Nothing else in the outputs, so
    // p and liba are the files the message must name.
    for layout in ["nix/store", "gnu/store"] {
        refuses_a_reference_cycle_in(layout);
    }
}

fn refuses_a_reference_cycle_in(layout: &str) {
    let fx = base_in(layout);
    let cc = "cc";
    let pads = fx.st.runpath(&[]);
    let libb = Cc::new(cc, LIBB, fx.out.join("lib/libb.so"))
        .shared(Some("libb.so"))
        .runpath(&pads)
        .build();
    let liba = Cc::new(cc, LIBA, fx.lib.join("lib/liba.so"))
        .shared(Some("liba.so"))
        .runpath(&pads)
        .link(&libb)
        .build();
    let p = Cc::new(cc, APP_P, fx.out.join("bin/p"))
        .runpath(&fx.st.runpath(&[&s(&fx.lib.join("lib"))]))
        .link(&liba)
        .arg(format!("-Wl,-rpath-link,{}", s(&fx.out.join("lib"))))
        .build();
    for d in fx.debug_files() {
        std::fs::create_dir_all(d.parent().unwrap()).unwrap();
        std::fs::copy(&p, &d).unwrap();
    }
    let pristine = snapshot(&fx.store);
    for mode in MODES {
        let ctx = &format!("{}, a {layout}", mode.name());
        restore(&pristine);
        let ran = run_script(&fx, script(&fx, mode, &Opts::default()));
        assert_ne!(ran.code, 0, "{ctx}: {ran}");
        assert!(ran.stderr.contains("fixing up 3 ELF files"), "{ctx}: {ran}");
        for want in [
            format!("{} would need {}", s(&p), s(&liba)),
            format!("{} would need {}", s(&liba), s(&libb)),
            "refer to each other".to_string(),
            "shrinkwrap: nothing was stamped".to_string(),
        ] {
            assert!(ran.stderr.contains(&want), "{ctx}: want {want:?}\n{ran}");
        }
        // Not even libb, which needs nothing from the other output.
        assert_unchanged(&pristine, &snapshot(&fx.store), ctx, &ran);
    }
}

/// The store directory setting: the attribute `shrinkwrapStoreDir` first, then
/// `$NIX_STORE_DIR`, then `$NIX_STORE` (which Nix sets in every build), else none (the binary's
/// default, `/nix/store`), as the hook passes it on. Then end to end on a Guix-shaped store
/// (`<tmp>/gnu/store`): the hook stamps it (the cycle check on it is in
/// `refuses_a_reference_cycle_between_outputs`), and the binary, given that store, calls the
/// system's libc outside it, which under the default store it does not.
#[test]
fn store_directory_setting_on_a_gnu_store() {
    if !tools() {
        return;
    }
    let fx = fixture_in("gnu/store", &[]);
    assert!(fx.store.ends_with("gnu/store"), "{}", fx.store.display());
    let gnu = s(&fx.store);
    let pristine = snapshot(&fx.store);
    let (stub_dir, argv) = recording_stub(&fx);
    let cases: [(&str, String, Option<&str>); 5] = [
        ("NIX_STORE_DIR", String::new(), Some(&gnu)),
        ("nothing set", "unset NIX_STORE_DIR".into(), None),
        (
            "shrinkwrapStoreDir",
            format!("unset NIX_STORE_DIR\nshrinkwrapStoreDir={}", q(&gnu)),
            Some(&gnu),
        ),
        (
            "NIX_STORE",
            format!("unset NIX_STORE_DIR\nexport NIX_STORE={}", q(&gnu)),
            Some(&gnu),
        ),
        (
            "shrinkwrapStoreDir over NIX_STORE_DIR",
            format!(
                "export NIX_STORE_DIR=/nix/store\nshrinkwrapStoreDir={}",
                q(&gnu)
            ),
            Some(&gnu),
        ),
    ];
    for mode in MODES {
        for (what, setup, want) in &cases {
            let ctx = &format!("{}, {what}", mode.name());
            // What the hook passes.
            std::fs::remove_file(&argv).ok();
            let opts = Opts {
                before_hook: format!("{setup}\nPATH={}:$PATH", q(&s(&stub_dir))),
                ..Opts::default()
            };
            let ran = run_script(&fx, script(&fx, mode, &opts));
            assert_eq!(ran.code, 0, "{ctx}: {ran}");
            let text = std::fs::read_to_string(&argv).unwrap();
            let words: Vec<&str> = text.lines().collect();
            let passed = words
                .iter()
                .position(|w| *w == "--store-dir")
                .map(|i| words[i + 1]);
            assert_eq!(passed, *want, "{ctx}: {words:?}");
            assert_eq!(
                words.iter().filter(|w| **w == "--store-dir").count(),
                usize::from(want.is_some())
            );

            // And with the real binary: stamped, and the programs run.
            restore(&pristine);
            let ran = run_script(
                &fx,
                script(
                    &fx,
                    mode,
                    &Opts {
                        before_hook: setup.clone(),
                        ..Opts::default()
                    },
                ),
            );
            assert_eq!(ran.code, 0, "{ctx}: {ran}");
            let hello = assert_stamped(&fx.hello(), false, ctx);
            assert!(hello.contains(&s(&fx.libdep())), "{ctx}: {hello:?}");
            assert_runs(&fx.hello(), "foo=41\n", ctx);
            assert_runs(&fx.tool(), "dep=40\n", ctx);
        }
    }
    // The binary honours the store it is given: libc is outside the Guix-shaped store.
    for (store, outside) in [(gnu.as_str(), true), ("/nix/store", false)] {
        let o = run(Command::new(env!("CARGO_BIN_EXE_shrinkwrap"))
            .args(["tree", "--json", "--store-dir", store])
            .arg(fx.hello()));
        let json = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{json}");
        assert_eq!(
            json.contains("\"outside-store\""),
            outside,
            "{store}: {json}"
        );
    }
}

/// Where the README and the hook tell users to run `shrinkwrap` by hand: `postFixup`. Once it
/// said `postInstall`, which runs before the fixup phase, whose `patchelf --shrink-rpath`
/// then empties the RUNPATH of the stamped file (no bare DT_NEEDED is left to need it). Shown
/// with the real patchelf: stamped first, the RUNPATH is lost; shrunk first (the order
/// `postFixup` gives), it is kept and the stamp holds.
#[test]
fn by_hand_runs_are_documented_where_shrink_rpath_has_run() {
    let readme = include_str!("../README.md");
    let hook = include_str!("../hooks/shrinkwrap-hook.sh");
    for (what, text) in [("README.md", readme), ("the hook", hook)] {
        assert!(!text.contains("postInstall = \"shrinkwrap"), "{what}");
        assert!(
            text.contains("postFixup = \"shrinkwrapFixup $out/opt/app\""),
            "{what}"
        );
    }
    if !have("patchelf") || !have("readelf") {
        return;
    }
    let st = Store::new();
    let dep = st.lib_dir("dep");
    let unused = st.lib_dir("unused");
    let lib = Cc::new(
        "cc",
        "int dep(void) { return 40; }\n",
        dep.join("libdep.so.1"),
    )
    .shared(Some("libdep.so.1"))
    .build();
    let prog = Cc::new(
        "cc",
        "int dep(void);\nint main(void) { return dep() - 40; }\n",
        st.package("app").join("bin/prog"),
    )
    .runpath(&format!("{}:{}", s(&dep), s(&unused)))
    .link(&lib)
    .build();
    let store = s(&st.store);
    let copy = |name: &str| {
        let p = prog.with_file_name(name);
        std::fs::copy(&prog, &p).unwrap();
        p
    };
    let stamp = |p: &Path| {
        let (code, out, err) = common::stamp(p, &["--store-dir", &store]);
        assert_eq!(code, 0, "{out}{err}");
    };
    let shrink = |p: &Path| {
        let o = run(Command::new("patchelf").arg("--shrink-rpath").arg(p));
        assert!(o.status.success(), "{o:?}");
    };
    let (early, late) = (copy("early"), copy("late"));
    // postInstall: stamped, then the fixup phase shrinks.
    stamp(&early);
    shrink(&early);
    assert_eq!(common::readelf_runpath(&early).as_deref(), Some(""));
    // postFixup: shrunk, then stamped.
    shrink(&late);
    stamp(&late);
    assert_eq!(common::readelf_runpath(&late), Some(s(&dep)));
    assert!(readelf_needed(&late).contains(&s(&lib.canonicalize().unwrap())));
    assert!(run(&mut Command::new(&late)).status.success());
}
