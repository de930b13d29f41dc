//! `shrinkwrap fixup` over a generated output tree in a fake Nix store: C fixtures with wide
//! RUNPATHs, copies of system ELF files, and every kind of file the walk must pass over,
//! refuse or keep intact (symlink, hard link, script, static binary, read-only, set-uid,
//! corrupt, missing dependency, object file, debug file). Checks the exit code, stderr, the
//! JSON report, the bytes of every untouched file, the loader's view of every stamped file,
//! determinism across `-j`, idempotence and `--quiet`.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{
    all_absolute, cp_a, differences, have, ld_so_list, loader_paths, mtimes, readelf_needed, run,
    s, snapshot, Cc, Entry, Store, LOADER,
};
use serde_json::Value;

/// The one bare DT_NEEDED a stamped library (which names no interpreter) may keep.
const LOADER_SONAME: &str = "ld-linux-x86-64.so.2";

/// The input store path's library, needed by the tree's own `libfoo.so.1`.
const DEP: &str = "int dep(void) { return 40; }\n";
/// The tree's `lib/libfoo.so.1`: 41.
const FOO_TREE: &str = "int dep(void);\nint foo(void) { return dep() + 1; }\n";
/// Another store path's `libfoo.so.1`, earlier on `shadowed`'s RUNPATH: 2.
const FOO_OTHER: &str = "int foo(void) { return 2; }\n";
/// Prints which `foo` it got; exits with a code that depends on it, too.
const APP_FOO: &str = "#include <stdio.h>\nint foo(void);\nint main(void) { printf(\"foo=%d\\n\", foo()); return foo() % 7; }\n";
const NOSO: &str = "int noso(void) { return 5; }\n";
const APP_NOSO: &str = "#include <stdio.h>\nint noso(void);\nint main(void) { printf(\"noso=%d\\n\", noso()); return 0; }\n";
const GONE: &str = "int gone(void) { return 0; }\n";
const APP_GONE: &str = "int gone(void);\nint main(void) { return gone(); }\n";
const STATIC: &str = "int main(void) { return 5; }\n";
const APP_PLAIN: &str = "#include <stdio.h>\nint main(void) { puts(\"plain\"); return 0; }\n";

/// What `fixup` must do with one file of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expect {
    Stamped,
    Skipped(&'static str),
    /// Failed; the reason must contain this.
    Failed(&'static str),
}

/// A generated output tree inside a fake store.
struct Built {
    st: Store,
    /// The output tree (a real path: it is what ends up in DT_NEEDED).
    out: PathBuf,
    /// Every file the report must list (relative to `out`), with what must happen to it.
    expect: BTreeMap<String, Expect>,
    /// Files that must keep their bytes (relative to `out`): everything not stamped.
    untouched: Vec<String>,
    /// Programs run before and after, with their arguments (relative to `out`).
    runs: Vec<(String, Vec<String>)>,
}

impl Built {
    fn path(&self, rel: &str) -> PathBuf {
        self.out.join(rel)
    }

    fn stamped(&self) -> Vec<&str> {
        self.expect
            .iter()
            .filter(|(_, e)| **e == Expect::Stamped)
            .map(|(r, _)| r.as_str())
            .collect()
    }
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// Which of the optional parts a tree gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// Everything, including a corrupt file, a missing dependency and a set-uid file.
    Full,
    /// Everything that neither fails nor warns.
    Clean,
}

fn build(variant: Variant) -> Built {
    let st = Store::new();
    let cc = "cc";
    let dep = st.lib_dir("dep");
    let other = st.lib_dir("other-foo");
    let out = std::fs::canonicalize(st.package("out")).unwrap();
    let (bin, lib) = (out.join("bin"), out.join("lib"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&lib).unwrap();
    let mut expect = BTreeMap::new();
    let mut untouched = Vec::new();
    let mut runs = Vec::new();
    let mut stamped = |rel: &str| expect.insert(rel.to_string(), Expect::Stamped);

    // The tree's own library, which needs one from an input store path.
    let libdep = Cc::new(cc, DEP, dep.join("libdep.so.1"))
        .shared(Some("libdep.so.1"))
        .runpath(&st.runpath(&[]))
        .build();
    // As packages install it: the file by its full version, the soname a symlink to it.
    let libfoo = Cc::new(cc, FOO_TREE, lib.join("libfoo.so.1.0.0"))
        .shared(Some("libfoo.so.1"))
        .runpath(&st.runpath(&[&s(&dep)]))
        .link(&libdep)
        .build();
    std::os::unix::fs::symlink("libfoo.so.1.0.0", lib.join("libfoo.so.1")).unwrap();
    stamped("lib/libfoo.so.1.0.0");
    // Another store path with a libfoo.so.1 of its own, earlier on `shadowed`'s RUNPATH.
    Cc::new(cc, FOO_OTHER, other.join("libfoo.so.1"))
        .shared(Some("libfoo.so.1"))
        .runpath(&st.runpath(&[]))
        .build();
    let rpath_link = format!("-Wl,-rpath-link,{}", s(&dep));
    let app = |name: &str, dirs: &[&str]| {
        Cc::new(cc, APP_FOO, bin.join(name))
            .runpath(&st.runpath(dirs))
            .link(&libfoo)
            .arg(&rpath_link)
            .build()
    };
    let hello = app("hello", &[&s(&lib)]);
    stamped("bin/hello");
    runs.push(("bin/hello".to_string(), vec![]));
    app("shadowed", &[&s(&other), &s(&lib)]);
    stamped("bin/shadowed");
    runs.push(("bin/shadowed".to_string(), vec![]));
    // A program whose RUNPATH does not name the tree's lib/: the loader finds no libfoo, so
    // fixup takes the tree's, with a warning.
    app("tree-only", &[]);
    stamped("bin/tree-only");
    let readonly = app("readonly", &[&s(&lib)]);
    set_mode(&readonly, 0o555);
    stamped("bin/readonly");
    runs.push(("bin/readonly".to_string(), vec![]));

    // A library without a soname (and, needing nothing itself, nothing to stamp).
    let libnoso = Cc::new(cc, NOSO, lib.join("libnoso.so"))
        .shared(None)
        .build();
    assert!(!have("readelf") || readelf_needed(&libnoso).is_empty());
    Cc::new(cc, APP_NOSO, bin.join("uses-noso"))
        .runpath(&st.runpath(&[&s(&lib)]))
        .link(&libnoso)
        .build();
    stamped("bin/uses-noso");
    runs.push(("bin/uses-noso".to_string(), vec![]));

    // A symlink and a hard link to `hello`: neither is listed, both see the stamp.
    std::os::unix::fs::symlink("hello", bin.join("hello-link")).unwrap();
    std::fs::hard_link(&hello, bin.join("hello-hard")).unwrap();

    // Copies of system ELF files (git needs libz.so.1, which the tree now has too).
    for (src, rel, args) in [
        ("/usr/bin/ls", "bin/ls", vec!["--version"]),
        ("/usr/bin/git", "bin/git", vec!["--version"]),
        (
            "/usr/lib/x86_64-linux-gnu/libz.so.1",
            "lib/libz.so.1",
            vec![],
        ),
    ] {
        if !Path::new(src).exists() {
            common::skip(&format!("{src} does not exist: its place in the tree"));
            continue;
        }
        std::fs::copy(src, out.join(rel)).unwrap();
        stamped(rel);
        if !args.is_empty() {
            runs.push((
                rel.to_string(),
                args.iter().map(|a| a.to_string()).collect(),
            ));
        }
    }

    // Files the walk or the planner passes over.
    expect.insert("lib/libnoso.so".into(), Expect::Skipped("no dependencies"));
    let script = bin.join("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho script\n").unwrap();
    set_mode(&script, 0o755);
    untouched.push("bin/script.sh".to_string());
    Cc::new(cc, STATIC, bin.join("static"))
        .arg("-static")
        .build();
    expect.insert("bin/static".into(), Expect::Skipped("static"));
    runs.push(("bin/static".to_string(), vec![]));
    Cc::new(cc, FOO_OTHER, lib.join("foo.o")).arg("-c").build();
    expect.insert("lib/foo.o".into(), Expect::Skipped("object file"));
    if have("objcopy") {
        let dbg = lib.join("debug/bin/hello");
        std::fs::create_dir_all(dbg.parent().unwrap()).unwrap();
        let o = run(Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(&hello)
            .arg(&dbg));
        assert!(o.status.success(), "{o:?}");
        expect.insert("lib/debug/bin/hello".into(), Expect::Skipped("debug file"));
        // The same kind of file where no name says so: known by its contents.
        let dbg = out.join("share/hello.dbg");
        std::fs::create_dir_all(dbg.parent().unwrap()).unwrap();
        let o = run(Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(&hello)
            .arg(&dbg));
        assert!(o.status.success(), "{o:?}");
        expect.insert("share/hello.dbg".into(), Expect::Skipped("debug file"));
    }

    if variant == Variant::Full {
        let setuid = app("setuid", &[&s(&lib)]);
        set_mode(&setuid, 0o4755);
        expect.insert("bin/setuid".into(), Expect::Skipped("set-uid/set-gid"));
        // A real ELF cut in the middle.
        let bytes = std::fs::read(&hello).unwrap();
        let corrupt = bin.join("corrupt");
        std::fs::write(&corrupt, &bytes[..bytes.len() / 2]).unwrap();
        set_mode(&corrupt, 0o755);
        expect.insert("bin/corrupt".into(), Expect::Failed("truncated"));
        // Linked against a library that is then deleted.
        let gone = st.lib_dir("gone");
        let libgone = Cc::new(cc, GONE, gone.join("libgone.so.1"))
            .shared(Some("libgone.so.1"))
            .build();
        Cc::new(cc, APP_GONE, bin.join("needs-gone"))
            .runpath(&st.runpath(&[&s(&gone)]))
            .link(&libgone)
            .build();
        std::fs::remove_file(&libgone).unwrap();
        expect.insert(
            "bin/needs-gone".into(),
            Expect::Failed("not stamped: 1 missing (listed below)"),
        );
    }
    untouched.extend(
        expect
            .iter()
            .filter(|(_, e)| **e != Expect::Stamped)
            .map(|(r, _)| r.clone()),
    );
    Built {
        st,
        out,
        expect,
        untouched,
        runs,
    }
}

/// `shrinkwrap fixup ARGS...` with no terminal anywhere; (exit code, stdout, stderr).
fn fixup(args: &[&str]) -> (i32, String, String) {
    let o = run(common::shrinkwrap()
        .arg("fixup")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped()));
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs fixup on `b`'s tree with `--store-dir`, `--report REPORT` and `extra`.
fn fixup_tree(b: &Built, report: &Path, extra: &[&str]) -> (i32, String, String) {
    let (out, store, report) = (s(&b.out), s(&b.st.store), s(report));
    let mut args = vec![out.as_str(), "--store-dir", &store, "--report", &report];
    args.extend_from_slice(extra);
    fixup(&args)
}

/// Runs a program; (exit code, stdout).
fn run_program(p: &Path, args: &[String]) -> (Option<i32>, String) {
    let o = run(Command::new(p).args(args).env_remove("LD_LIBRARY_PATH"));
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// The report's files by path relative to `out`.
fn report_files(report: &Value, out: &Path) -> BTreeMap<String, Value> {
    assert_eq!(report["version"], 1, "{report:#}");
    report["files"]
        .as_array()
        .unwrap_or_else(|| panic!("no files in {report:#}"))
        .iter()
        .map(|f| {
            let path = f["file"].as_str().unwrap();
            let rel = Path::new(path)
                .strip_prefix(out)
                .unwrap_or_else(|_| panic!("{path} is outside {}", out.display()));
            (s(rel), f.clone())
        })
        .collect()
}

fn read_report(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).expect("--report writes JSON")
}

/// The summary line with its timing cut off; panics unless the timing is `in N.NNs`.
fn summary_of(stderr: &str) -> String {
    let line = stderr
        .lines()
        .rfind(|l| l.starts_with("shrinkwrap: stamped "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
    let (head, secs) = line
        .rsplit_once(" in ")
        .unwrap_or_else(|| panic!("summary without timing: {line}"));
    let secs = secs
        .strip_suffix('s')
        .unwrap_or_else(|| panic!("timing without unit: {line}"));
    let (whole, frac) = secs.split_once('.').unwrap_or(("", ""));
    assert!(
        !whole.is_empty()
            && whole.bytes().all(|c| c.is_ascii_digit())
            && frac.len() == 2
            && frac.bytes().all(|c| c.is_ascii_digit()),
        "timing is not N.NNs: {line}"
    );
    head.to_string()
}

/// The summary line `b`'s expectations call for (without its timing), with `unchanged`
/// already-stamped files instead of stamped ones when `again`.
fn expected_summary(b: &Built, again: bool) -> String {
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut stamped, mut failed) = (0, 0);
    for e in b.expect.values() {
        match e {
            Expect::Stamped => stamped += 1,
            Expect::Skipped(why) => *reasons.entry(why).or_default() += 1,
            Expect::Failed(_) => failed += 1,
        }
    }
    let skipped: usize = reasons.values().sum();
    let reasons: Vec<String> = reasons.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let reasons = if reasons.is_empty() {
        String::new()
    } else {
        format!(": {}", reasons.join(", "))
    };
    let (new, old) = if again { (0, stamped) } else { (stamped, 0) };
    let files = if new == 1 { "file" } else { "files" };
    format!("shrinkwrap: stamped {new} {files} ({old} already stamped; {skipped} skipped{reasons}; {failed} failed)")
}

#[test]
fn fixup_stamps_a_whole_tree() {
    let b = build(Variant::Full);
    let have_readelf = have("readelf");
    let out = &b.out;
    let report = b.st.scratch().join("report.json");

    // Before: the bytes of everything, what the loader lists, what the programs do.
    let before = snapshot(out);
    let lists: BTreeMap<&str, Vec<String>> = b
        .stamped()
        .into_iter()
        .filter(|rel| *rel != "bin/tree-only")
        .map(|rel| {
            let l = loader_paths(LOADER, &b.path(rel))
                .unwrap_or_else(|e| panic!("{rel}: ld.so --list fails before fixup: {e}"));
            (rel, l)
        })
        .collect();
    let ran: Vec<(Option<i32>, String)> = b
        .runs
        .iter()
        .map(|(rel, args)| run_program(&b.path(rel), args))
        .collect();
    assert_eq!(ran[0], (Some(6), "foo=41\n".into()), "bin/hello before");
    assert_eq!(
        ran[1],
        (Some(2), "foo=2\n".into()),
        "bin/shadowed finds the other store path's libfoo before fixup"
    );
    let tree_only = b.path("bin/tree-only");
    let missing_before = ld_so_list(LOADER, &tree_only).unwrap().missing;
    assert_eq!(missing_before, vec!["libfoo.so.1".to_string()]);
    let hello_ino = std::fs::metadata(b.path("bin/hello")).unwrap().ino();

    let (code, _stdout, stderr) = fixup_tree(&b, &report, &["-j", "2"]);
    println!("{stderr}");

    // Exit code and stderr: exactly the start line, one line per failure, one per missing
    // library, the set-uid warning, and the summary.
    assert_eq!(code, 1, "{stderr}");
    let doc = read_report(&report);
    let files = report_files(&doc, out);
    let corrupt = s(&b.path("bin/corrupt"));
    let needs_gone = s(&b.path("bin/needs-gone"));
    let corrupt_reason = files["bin/corrupt"]["reason"].as_str().unwrap_or_default();
    // Every ELF file, as the summary counts them: those the walk passes over without parsing
    // them (set-uid files, files under lib/debug/) too.
    let found = b.expect.len();
    let mut want = vec![
        format!(
            "shrinkwrap: fixing up {found} ELF files in {} with 2 jobs",
            s(out)
        ),
        format!("shrinkwrap: {corrupt}: {corrupt_reason}"),
        format!("shrinkwrap: {needs_gone}: not stamped: 1 missing (listed below)"),
        format!("shrinkwrap: missing libgone.so.1, needed by {needs_gone}"),
        format!(
            "shrinkwrap: warning: {}: set-uid/set-gid, not stamped",
            s(&b.path("bin/setuid"))
        ),
        format!(
            "shrinkwrap: warning: {} has no soname: requests for it by name still search",
            s(&b.path("lib/libnoso.so"))
        ),
        format!(
            "shrinkwrap: warning: libfoo.so.1 (needed by {}) is found only in the tree being stamped, at {}: the loader would not find it there",
            s(&tree_only),
            s(&b.path("lib/libfoo.so.1"))
        ),
        expected_summary(&b, false),
    ];
    let mut got: Vec<String> = stderr.lines().map(str::to_string).collect();
    if let Some(last) = got.last_mut() {
        *last = summary_of(&stderr);
    }
    want.sort();
    got.sort();
    assert_eq!(got, want, "stderr:\n{stderr}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("shrinkwrap: missing "))
            .count(),
        1,
        "{stderr}"
    );

    // The report: every file listed once with the right status and reason.
    let listed: Vec<&String> = files.keys().collect();
    let wanted: Vec<&String> = b.expect.keys().collect();
    assert_eq!(listed, wanted, "files in the report: {doc:#}");
    for (rel, e) in &b.expect {
        let f = &files[rel];
        match e {
            Expect::Stamped => {
                assert_eq!(f["status"], "stamped", "{rel}: {f:#}");
                assert!(f["reason"].is_null(), "{rel}: {f:#}");
                assert!(f["needed"].is_array(), "{rel}: {f:#}");
                if have_readelf {
                    let needed: Vec<String> = f["needed"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|n| n.as_str().unwrap().to_string())
                        .collect();
                    assert_eq!(
                        needed,
                        readelf_needed(&b.path(rel)),
                        "{rel}: report vs file"
                    );
                }
            }
            Expect::Skipped(why) => {
                assert_eq!(f["status"], "skipped", "{rel}: {f:#}");
                assert_eq!(f["reason"], *why, "{rel}: {f:#}");
                assert!(f["needed"].is_null(), "{rel}: {f:#}");
            }
            Expect::Failed(why) => {
                assert_eq!(f["status"], "failed", "{rel}: {f:#}");
                let reason = f["reason"].as_str().unwrap_or_default();
                assert!(
                    reason.contains(why),
                    "{rel}: reason {reason:?}, want {why:?}"
                );
                assert!(f["needed"].is_null(), "{rel}: {f:#}");
            }
        }
        assert!(f["warnings"].is_array(), "{rel}: {f:#}");
    }
    // Only the programs using the soname-less library are warned about it, and only the
    // program that finds libfoo nowhere but in the tree about that.
    let warned = |f: &Value, what: &str| {
        f["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap_or_default().contains(what))
    };
    for (rel, f) in &files {
        assert_eq!(
            warned(f, "libnoso.so has no soname"),
            rel == "bin/uses-noso",
            "{rel}: {f:#}"
        );
        assert_eq!(
            warned(f, "found only in the tree"),
            rel == "bin/tree-only",
            "{rel}: {f:#}"
        );
        // The closure, with how each library was found; "tree" only where the loader's own
        // search found nothing.
        if let Some(libs) = f["libraries"].as_array() {
            let from_tree: Vec<&str> = libs
                .iter()
                .filter(|l| l["via"] == "tree")
                .map(|l| l["name"].as_str().unwrap())
                .collect();
            let want: &[&str] = if rel == "bin/tree-only" {
                &["libfoo.so.1"]
            } else {
                &[]
            };
            assert_eq!(from_tree, want, "{rel}: {f:#}");
        }
    }
    let stamped = b.stamped().len();
    let skipped = b
        .expect
        .values()
        .filter(|e| matches!(e, Expect::Skipped(_)))
        .count();
    assert_eq!(
        doc["summary"],
        serde_json::json!({"stamped": stamped, "unchanged": 0, "skipped": skipped, "failed": 2}),
    );
    assert_eq!(
        doc["missing"],
        serde_json::json!([{"name": "libgone.so.1", "needed_by": [needs_gone]}]),
    );

    // Untouched files keep their bytes (and mode).
    let after = snapshot(out);
    for rel in &b.untouched {
        let rel = PathBuf::from(rel);
        assert!(before[&rel] == after[&rel], "{} changed", rel.display());
    }
    assert_eq!(mode(&b.path("bin/setuid")), 0o4755);
    // Stamped files changed.
    for rel in b.stamped() {
        let rel = PathBuf::from(rel);
        assert!(before[&rel] != after[&rel], "{} not written", rel.display());
    }

    // The loader sees exactly what it saw before: a library of the tree never takes the place
    // of the file a RUNPATH (or the system) names — `shadowed` keeps the other store path's
    // libfoo, git the system's libz.
    let mut mismatches = Vec::new();
    for (rel, before) in &lists {
        let got = loader_paths(LOADER, &b.path(rel));
        if got.as_ref() != Ok(before) {
            mismatches.push(format!("{rel}:\n  want {before:?}\n  got  {got:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    let other_foo = b.st.lib_dir("other-foo").join("libfoo.so.1");
    assert!(lists["bin/shadowed"].contains(&s(&other_foo)));
    assert!(!lists["bin/hello"].contains(&s(&other_foo)));
    if lists.contains_key("bin/git") && lists.contains_key("lib/libz.so.1") {
        let git = loader_paths(LOADER, &b.path("bin/git")).unwrap();
        assert!(!git.contains(&s(&b.path("lib/libz.so.1"))), "{git:?}");
    }
    // Where the loader found nothing, the tree's library is now loaded, and the program runs.
    let tree_only_list = loader_paths(LOADER, &tree_only).unwrap();
    assert!(
        tree_only_list.contains(&s(&b.path("lib/libfoo.so.1"))),
        "{tree_only_list:?}"
    );
    assert_eq!(run_program(&tree_only, &[]), (Some(6), "foo=41\n".into()));

    // Every DT_NEEDED is absolute; only a library may keep the loader's soname.
    if have_readelf {
        for rel in b.stamped() {
            let needed = readelf_needed(&b.path(rel));
            assert!(!needed.is_empty(), "{rel}");
            for n in &needed {
                let ok = n.starts_with('/') || (rel.starts_with("lib/") && n == LOADER_SONAME);
                assert!(ok, "{rel}: DT_NEEDED {n} in {needed:?}");
            }
        }
        let shadowed = readelf_needed(&b.path("bin/shadowed"));
        assert_eq!(shadowed[0], s(&other_foo), "{shadowed:?}");
        // The hard link is the same stamped inode.
        assert_eq!(
            readelf_needed(&b.path("bin/hello-hard")),
            readelf_needed(&b.path("bin/hello"))
        );
    }

    // The programs run as before.
    for ((rel, args), was) in b.runs.iter().zip(&ran) {
        let now = run_program(&b.path(rel), args);
        assert_eq!(&now, was, "{rel} {args:?}");
    }

    // Read-only: stamped, mode back. Hard link: one inode, stamped. Symlink: still one.
    assert_eq!(mode(&b.path("bin/readonly")), 0o555);
    let hard = std::fs::metadata(b.path("bin/hello-hard")).unwrap();
    let hello = std::fs::metadata(b.path("bin/hello")).unwrap();
    assert_eq!((hard.ino(), hello.ino()), (hello_ino, hello_ino));
    assert_eq!(hard.nlink(), 2);
    assert!(
        before[Path::new("bin/hello-hard")] != after[Path::new("bin/hello-hard")],
        "the hard link does not see the stamp"
    );
    for (link, target) in [
        ("bin/hello-link", "hello"),
        ("lib/libfoo.so.1", "libfoo.so.1.0.0"),
    ] {
        assert_eq!(
            after[Path::new(link)],
            Entry::Link(target.into()),
            "{link} is no longer the same symlink"
        );
    }
}

#[test]
fn fixup_is_deterministic_across_jobs() {
    let b = build(Variant::Full);
    let scratch = b.st.scratch();
    let (orig, j1) = (scratch.join("orig"), scratch.join("j1"));
    cp_a(&b.out, &orig);

    // -j 1, result kept aside; the original put back at the same path; -j 4.
    let (r1, r4) = (scratch.join("r1.json"), scratch.join("r4.json"));
    let (code1, _, err1) = fixup_tree(&b, &r1, &["-j", "1"]);
    cp_a(&b.out, &j1);
    std::fs::remove_dir_all(&b.out).unwrap();
    cp_a(&orig, &b.out);
    assert!(
        snapshot(&b.out) == snapshot(&orig),
        "the tree was not put back"
    );
    let (code4, _, err4) = fixup_tree(&b, &r4, &["-j", "4"]);

    assert_eq!((code1, code4), (1, 1), "{err1}\n{err4}");
    assert!(err1.contains("with 1 job\n") && err4.contains("with 4 jobs\n"));
    let changed = differences(&snapshot(&orig), &snapshot(&j1));
    assert_eq!(changed.len(), b.stamped().len() + 1, "{changed:?}"); // + the hard link
    let diff = differences(&snapshot(&j1), &snapshot(&b.out));
    assert!(diff.is_empty(), "-j 1 and -j 4 differ in {diff:?}");
    assert_eq!(read_report(&r1), read_report(&r4));
    let rest = |e: &str| -> Vec<String> {
        e.lines()
            .filter(|l| !l.contains(" job") && !l.starts_with("shrinkwrap: stamped "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(rest(&err1), rest(&err4));
    assert_eq!(summary_of(&err1), summary_of(&err4));
}

#[test]
fn fixup_again_writes_nothing() {
    let b = build(Variant::Full);
    let (r1, r2) = (
        b.st.scratch().join("r1.json"),
        b.st.scratch().join("r2.json"),
    );
    let (code1, _, err1) = fixup_tree(&b, &r1, &["-j", "2"]);
    assert_eq!(code1, 1, "{err1}");
    let (bytes, times) = (snapshot(&b.out), mtimes(&b.out));

    let (code2, _, err2) = fixup_tree(&b, &r2, &["-j", "2"]);
    println!("{err2}");
    assert_eq!(code2, code1, "{err2}");
    let diff = differences(&bytes, &snapshot(&b.out));
    assert!(diff.is_empty(), "second run changed {diff:?}");
    assert_eq!(times, mtimes(&b.out), "second run wrote to files");
    assert_eq!(summary_of(&err2), expected_summary(&b, true), "{err2}");

    // The report says the same, with the stamped files now unchanged.
    let (first, second) = (read_report(&r1), read_report(&r2));
    let (f1, f2) = (report_files(&first, &b.out), report_files(&second, &b.out));
    assert_eq!(f1.keys().collect::<Vec<_>>(), f2.keys().collect::<Vec<_>>());
    for (rel, one) in &f1 {
        let two = &f2[rel];
        let want = if one["status"] == "stamped" {
            "unchanged"
        } else {
            one["status"].as_str().unwrap()
        };
        assert_eq!(two["status"], want, "{rel}: {two:#}");
        for k in ["reason", "needed", "warnings"] {
            assert_eq!(one[k], two[k], "{rel}: {k}");
        }
    }
    let stamped = b.stamped().len();
    assert_eq!(first["summary"]["stamped"], stamped);
    assert_eq!(second["summary"]["stamped"], 0);
    assert_eq!(second["summary"]["unchanged"], stamped);
    assert_eq!(first["missing"], second["missing"]);
}

#[test]
fn quiet_prints_nothing_when_nothing_fails() {
    let b = build(Variant::Clean);
    let report = b.st.scratch().join("report.json");
    let (code, stdout, stderr) = fixup_tree(&b, &report, &["-j", "2", "--quiet"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, "");
    assert_eq!(stdout, "");
    // It did its work all the same.
    let doc = read_report(&report);
    assert_eq!(doc["summary"]["stamped"], b.stamped().len());
    assert_eq!(doc["summary"]["failed"], 0);
    if have("readelf") {
        let needed = readelf_needed(&b.path("bin/hello"));
        assert!(all_absolute(&needed), "{needed:?}");
    }
    // The same tree without --quiet still prints its start and summary lines.
    let (code, _, stderr) = fixup_tree(&b, &report, &["-j", "2"]);
    assert_eq!(code, 0, "{stderr}");
    // (and the warnings: libnoso has no soname, tree-only's libfoo is the tree's)
    assert_eq!(stderr.lines().count(), 4, "{stderr}");
    assert_eq!(summary_of(&stderr), expected_summary(&b, true));
}

/// The user id the tests run as.
fn uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

#[test]
fn read_only_file_is_stamped_for_its_non_root_owner() {
    // Root may write any file, so the read-only file's mode only matters to its owner: as root,
    // fixup runs as `nobody` on a tree `nobody` owns.
    const NOBODY: u32 = 65534;
    let b = build(Variant::Clean);
    let mut prefix: Vec<String> = Vec::new();
    if uid() == 0 {
        if !have("setpriv") {
            return;
        }
        prefix = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]
        .map(String::from)
        .to_vec();
        set_mode(b.st.tmp.path(), 0o755);
        let o = run(Command::new("chown")
            .arg("-hR")
            .arg(format!("{NOBODY}:{NOBODY}"))
            .arg(&b.out));
        assert!(o.status.success(), "{o:?}");
    }
    let as_owner = |program: &str| {
        let mut c = Command::new(prefix.first().map_or(program, String::as_str));
        c.args(prefix.iter().skip(1));
        if !prefix.is_empty() {
            c.arg(program);
        }
        c
    };
    let readonly = b.path("bin/readonly");
    let owner = std::fs::metadata(&readonly).unwrap().uid();
    assert_eq!(mode(&readonly), 0o555);
    // The owner cannot write it as it is.
    let writable = run(as_owner("test").arg("-w").arg(&readonly));
    assert!(!writable.status.success(), "read-only file is writable");
    let before = std::fs::read(&readonly).unwrap();

    let o = run(as_owner(env!("CARGO_BIN_EXE_shrinkwrap"))
        .arg("fixup")
        .arg(&b.out)
        .arg("--store-dir")
        .arg(&b.st.store)
        .args(["-j", "2"])
        .stdin(Stdio::null()));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert_eq!(summary_of(&stderr), expected_summary(&b, false), "{stderr}");
    assert_ne!(std::fs::read(&readonly).unwrap(), before, "not stamped");
    let meta = std::fs::metadata(&readonly).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o555);
    assert_eq!(meta.uid(), owner);
    if have("readelf") {
        let needed = readelf_needed(&readonly);
        assert!(all_absolute(&needed), "{needed:?}");
    }
    let ran = run_program(&readonly, &[]);
    assert_eq!(ran, (Some(6), "foo=41\n".to_string()));
}

/// A tree where several files miss libraries: `bin/a` and `bin/b` need `libgone.so.1`, `bin/b`
/// also `libgone2.so.1`; the tree's `libmid` needs `libgone.so.1` and `bin/c` needs `libmid`;
/// `bin/d` misses nothing. With `soname_link`, libmid is installed as `libmid.so.1.0.0` with
/// its soname as a symlink; otherwise as `libmid.so.1`. Returns (store, tree, libmid's file).
fn missing_tree(soname_link: bool) -> (Store, PathBuf, String) {
    let st = Store::new();
    let cc = "cc";
    let out = std::fs::canonicalize(st.package("out")).unwrap();
    let (bin, lib) = (out.join("bin"), out.join("lib"));
    let gone = st.lib_dir("gone");
    let libgone = Cc::new(cc, GONE, gone.join("libgone.so.1"))
        .shared(Some("libgone.so.1"))
        .build();
    let libgone2 = Cc::new(
        cc,
        "int gone2(void) { return 0; }\n",
        gone.join("libgone2.so.1"),
    )
    .shared(Some("libgone2.so.1"))
    .build();
    let mid_rel = if soname_link {
        "lib/libmid.so.1.0.0"
    } else {
        "lib/libmid.so.1"
    };
    let libmid = Cc::new(
        cc,
        "int gone(void);\nint mid(void) { return gone(); }\n",
        out.join(mid_rel),
    )
    .shared(Some("libmid.so.1"))
    .runpath(&st.runpath(&[&s(&gone)]))
    .link(&libgone)
    .build();
    if soname_link {
        std::os::unix::fs::symlink("libmid.so.1.0.0", lib.join("libmid.so.1")).unwrap();
    }
    let rp = st.runpath(&[&s(&gone), &s(&lib)]);
    Cc::new(cc, APP_GONE, bin.join("a"))
        .runpath(&rp)
        .link(&libgone)
        .build();
    Cc::new(
        cc,
        "int gone(void); int gone2(void);\nint main(void) { return gone() + gone2(); }\n",
        bin.join("b"),
    )
    .runpath(&rp)
    .link(&libgone)
    .link(&libgone2)
    .build();
    Cc::new(
        cc,
        "int mid(void);\nint main(void) { return mid(); }\n",
        bin.join("c"),
    )
    .runpath(&rp)
    .link(&libmid)
    .arg(format!("-Wl,-rpath-link,{}", s(&gone)))
    .build();
    Cc::new(cc, APP_PLAIN, bin.join("d")).runpath(&rp).build();
    std::fs::remove_file(&libgone).unwrap();
    std::fs::remove_file(&libgone2).unwrap();
    (st, out, mid_rel.to_string())
}

/// Runs fixup on a `missing_tree` and checks that every missing library is listed once, with
/// every file that needs it named once (whatever path it is named by), on stderr and in the
/// report; that each failing file gets its one line; and that only `bin/d` is written.
fn check_missing_lists(soname_link: bool) {
    let (st, out, mid) = missing_tree(soname_link);
    let before = snapshot(&out);
    let report = st.scratch().join("report.json");
    let (code, _, stderr) = fixup(&[
        &s(&out),
        "--store-dir",
        &s(&st.store),
        "--report",
        &s(&report),
        "-j",
        "4",
    ]);
    println!("{stderr}");
    assert_eq!(code, 1, "{stderr}");
    let p = |rel: &str| s(&out.join(rel));
    // Requesters as real paths, in the order listed.
    let real = |by: &[&str]| -> Vec<String> {
        by.iter()
            .map(|b| s(&std::fs::canonicalize(b).unwrap_or_else(|e| panic!("{b}: {e}"))))
            .collect()
    };
    let want = [
        ("libgone.so.1", vec![p("bin/a"), p("bin/b"), p(&mid)]),
        ("libgone2.so.1", vec![p("bin/b")]),
    ];

    let lines: Vec<(&str, Vec<&str>)> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("shrinkwrap: missing "))
        .map(|l| {
            let (name, by) = l
                .split_once(", needed by ")
                .unwrap_or_else(|| panic!("{l}"));
            (name, by.split(", ").collect())
        })
        .collect();
    let got: Vec<(&str, Vec<String>)> = lines.iter().map(|(n, by)| (*n, real(by))).collect();
    assert_eq!(got, want, "missing lines on stderr:\n{stderr}");

    let doc = read_report(&report);
    let got: Vec<(&str, Vec<String>)> = doc["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let by: Vec<&str> = m["needed_by"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_str().unwrap())
                .collect();
            (m["name"].as_str().unwrap(), real(&by))
        })
        .collect();
    assert_eq!(got, want, "missing in the report: {doc:#}");

    for (rel, n) in [("bin/a", 1), ("bin/b", 2), ("bin/c", 1), (mid.as_str(), 1)] {
        let line = format!(
            "shrinkwrap: {}: not stamped: {n} missing (listed below)",
            p(rel)
        );
        assert_eq!(
            stderr.lines().filter(|l| *l == line).count(),
            1,
            "{line}\n{stderr}"
        );
    }
    assert_eq!(
        summary_of(&stderr),
        "shrinkwrap: stamped 1 file (0 already stamped; 0 skipped; 4 failed)"
    );
    assert_eq!(differences(&before, &snapshot(&out)), vec!["bin/d"]);
}

#[test]
fn missing_libraries_are_listed_once_with_every_requester() {
    check_missing_lists(false);
}

#[test]
fn missing_library_requesters_are_listed_once_through_soname_links() {
    check_missing_lists(true);
}

#[test]
fn report_names_a_file_whose_name_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let st = Store::new();
    let out = std::fs::canonicalize(st.package("out")).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9");
    let program = Cc::new("cc", APP_PLAIN, out.join("bin").join(name))
        .runpath(&st.runpath(&[]))
        .build();
    let report = st.scratch().join("report.json");
    let (code, _, stderr) = fixup(&[
        &s(&out),
        "--store-dir",
        &s(&st.store),
        "--report",
        &s(&report),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        summary_of(&stderr),
        "shrinkwrap: stamped 1 file (0 already stamped; 0 skipped; 0 failed)"
    );
    let doc = read_report(&report);
    assert_eq!(doc["files"].as_array().map(Vec::len), Some(1), "{doc:#}");
    assert_eq!(doc["files"][0]["status"], "stamped", "{doc:#}");
    if have("readelf") {
        assert!(all_absolute(&readelf_needed(&program)));
    }
}

#[test]
fn a_cycle_closed_by_an_existing_runpath_is_refused_one_already_there_is_not_ours() {
    // $lib/lib/liba.so already refers to $out (its RUNPATH). Stamping $out/bin/p with liba's
    // path adds $out -> $lib: a cycle, refused before anything is written.
    let st = Store::new();
    let out = st.package("out");
    let lib = st.package("lib");
    let liba = Cc::new("cc", "int a(void) { return 1; }\n", lib.join("lib/liba.so"))
        .shared(Some("liba.so"))
        .runpath(&out.join("lib").display().to_string())
        .build();
    let src = "int a(void);\nint main(void) { return a() - 1; }\n";
    let p = Cc::new("cc", src, out.join("bin/p")).link(&liba).build();
    let before = std::fs::read(&p).unwrap();
    let store = st.store.display().to_string();
    let fixup = |dirs: &[&Path]| {
        let o = run(common::shrinkwrap()
            .args(["fixup", "--quiet", "--store-dir", &store])
            .args(dirs));
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = fixup(&[&out, &lib]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("refer to each other"), "{err}");
    assert!(
        err.contains(&format!("{} would need {}", p.display(), liba.display())),
        "{err}"
    );
    assert!(err.contains("nothing was stamped"), "{err}");
    assert_eq!(std::fs::read(&p).unwrap(), before, "p was written");

    // When p already refers to $lib (its own RUNPATH), the cycle is there before stamping:
    // not ours to refuse, and stamping adds nothing to it.
    let p = Cc::new("cc", src, out.join("bin/p"))
        .runpath(&lib.join("lib").display().to_string())
        .link(&liba)
        .build();
    let (code, err) = fixup(&[&out, &lib]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        all_absolute(&readelf_needed(&p)),
        "{:?}",
        readelf_needed(&p)
    );
}

/// `--programs-only`: the program is stamped with its whole closure; every library keeps its
/// bytes, and is reported as skipped; the loader lists the program as before and it runs.
#[test]
fn programs_only_leaves_libraries_alone() {
    if !have("cc") || !common::have_loader() {
        return;
    }
    let st = Store::new();
    // libbar needs libc (getpid), so it has a DT_NEEDED to leave alone.
    const BAR: &str = "#include <unistd.h>\nint bar(void) { return getpid() > 0; }\n";
    let common::Chain {
        prog,
        libfoo,
        libbar,
    } = st.chain(BAR, &[]);
    let listed = loader_paths(LOADER, &prog).unwrap();
    let libs_before = [
        std::fs::read(&libfoo).unwrap(),
        std::fs::read(&libbar).unwrap(),
    ];
    let report = st.scratch().join("report.json");
    let (code, _, err) = fixup(&["--programs-only", "--report", &s(&report), &s(&st.store)]);
    assert_eq!(code, 0, "{err}");
    let needed = readelf_needed(&prog);
    assert!(
        all_absolute(&needed[..2]),
        "the program is stamped: {needed:?}"
    );
    assert_eq!(
        [
            std::fs::read(&libfoo).unwrap(),
            std::fs::read(&libbar).unwrap()
        ],
        libs_before,
        "the libraries keep their bytes"
    );
    assert_eq!(loader_paths(LOADER, &prog).unwrap(), listed);
    assert_eq!(run(&mut Command::new(&prog)).status.code(), Some(41));
    let report = read_report(&report);
    let skipped: Vec<&Value> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["reason"] == "library (--programs-only)")
        .collect();
    assert_eq!(skipped.len(), 2, "{report:#}");
}
