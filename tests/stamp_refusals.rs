//! `shrinkwrap stamp`: every refusal (message, exit code 1, file byte-for-byte unchanged), the
//! options that turn a refusal into a stamp (`--allow-missing`, `--allow-soname-collision`),
//! the files with nothing to do, and the options that shape the result (`--dry-run`, `--keep`,
//! `-o`), hard links, and ELF32 / big-endian programs. Fixtures are compiled at test time into
//! a fake Nix store, every object with a wide RUNPATH.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    all_absolute, have, readelf_needed, run, run_program, s, shrinkwrap, stamp, tree_json, Cc,
    Store,
};
use serde_json::Value;

const BASE: &str = "int base(void) { return 40; }\n";
const MID: &str = "int base(void);\nint mid(void) { return base() + 2; }\n";
const APP: &str =
    "#include <stdio.h>\nint mid(void);\nint main(void) { printf(\"%d\\n\", mid()); return 0; }\n";
const HELLO: &str = "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n";

/// `-Wl,-rpath-link` for `dirs`, so `ld` can check indirect dependencies at link time.
fn rpath_link(dirs: &[&Path]) -> String {
    let joined: Vec<String> = dirs.iter().map(|d| s(d)).collect();
    format!("-Wl,-rpath-link,{}", joined.join(":"))
}

/// The usual three objects: `app` needs `libmid.so.1`, which needs `libbase.so.1`.
struct Chain {
    st: Store,
    base_dir: PathBuf,
    libbase: PathBuf,
    libmid: PathBuf,
    app: PathBuf,
}

fn chain() -> Chain {
    let st = Store::new();
    let base_dir = st.lib_dir("base");
    let mid_dir = st.lib_dir("mid");
    let libbase = Cc::new("cc", BASE, base_dir.join("libbase.so.1"))
        .shared(Some("libbase.so.1"))
        .runpath(&st.runpath(&[]))
        .build();
    let libmid = Cc::new("cc", MID, mid_dir.join("libmid.so.1"))
        .shared(Some("libmid.so.1"))
        .runpath(&st.runpath(&[&s(&base_dir)]))
        .link(&libbase)
        .build();
    let app = Cc::new("cc", APP, st.package("app").join("bin/app"))
        .runpath(&st.runpath(&[&s(&mid_dir)]))
        .link(&libmid)
        .arg(rpath_link(&[&base_dir]))
        .build();
    Chain {
        st,
        base_dir,
        libbase,
        libmid,
        app,
    }
}

fn store_args(st: &Store) -> Vec<String> {
    vec!["--store-dir".into(), s(&st.store)]
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The `tree --json` entry of one file.
fn tree(file: &Path, args: &[&str]) -> Value {
    tree_json(&[file], args, 0)["files"][0].clone()
}

/// The DT_NEEDED strings of `file`, as `tree --json` reads them.
fn needed(file: &Path, args: &[&str]) -> Vec<String> {
    tree(file, args)["needed"]
        .as_array()
        .unwrap_or_else(|| panic!("no needed for {}", file.display()))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Runs `stamp ARGS FILE` and checks the refusal contract: exit 1, exactly one stderr line
/// `shrinkwrap: FILE: …` containing every one of `wants`, no panic, and the file byte-for-byte
/// as it was. Returns that line.
fn assert_refused(file: &Path, args: &[&str], wants: &[&str]) -> String {
    let before = std::fs::read(file).unwrap();
    let (code, out, err) = stamp(file, args);
    assert_eq!(code, 1, "exit code; stdout {out:?} stderr {err:?}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "want one stderr line, got {err:?}");
    let prefix = format!("shrinkwrap: {}: ", file.display());
    assert!(
        lines[0].starts_with(&prefix),
        "the message must name the file: {err:?}"
    );
    for w in wants {
        assert!(lines[0].contains(w), "{w:?} not in {err:?}");
    }
    assert!(
        std::fs::read(file).unwrap() == before,
        "{} changed although stamping was refused",
        file.display()
    );
    lines[0].to_string()
}

/// Runs `stamp ARGS FILE`, expecting success; returns stdout.
fn assert_stamped(file: &Path, args: &[&str]) -> String {
    let (code, out, err) = stamp(file, args);
    assert_eq!(
        code,
        0,
        "stamp {}: stdout {out:?} stderr {err:?}",
        file.display()
    );
    assert!(err.is_empty(), "stderr on success: {err:?}");
    out
}

#[test]
fn missing_libraries_are_all_named_with_their_requesters() {
    let st = Store::new();
    let gone_dir = st.lib_dir("gone");
    let mid_dir = st.lib_dir("mid");
    let gone_a = Cc::new("cc", BASE, gone_dir.join("libgoneA.so.1"))
        .shared(Some("libgoneA.so.1"))
        .runpath(&st.runpath(&[]))
        .build();
    let gone_b = Cc::new(
        "cc",
        "int gone_b(void) { return 2; }\n",
        gone_dir.join("libgoneB.so.1"),
    )
    .shared(Some("libgoneB.so.1"))
    .runpath(&st.runpath(&[]))
    .build();
    // libmid needs libgoneB: the indirect one.
    let libmid = Cc::new(
        "cc",
        "int gone_b(void);\nint mid(void) { return gone_b(); }\n",
        mid_dir.join("libmid.so.1"),
    )
    .shared(Some("libmid.so.1"))
    .runpath(&st.runpath(&[&s(&gone_dir)]))
    .link(&gone_b)
    .build();
    // The program needs libgoneA (direct) and libmid.
    let app = Cc::new(
        "cc",
        "int base(void); int mid(void);\nint main(void) { return base() + mid(); }\n",
        st.package("app").join("bin/app"),
    )
    .runpath(&st.runpath(&[&s(&gone_dir), &s(&mid_dir)]))
    .link(&gone_a)
    .link(&libmid)
    .build();
    std::fs::remove_file(&gone_a).unwrap();
    std::fs::remove_file(&gone_b).unwrap();
    let sa = store_args(&st);
    let sa = refs(&sa);

    let line = assert_refused(
        &app,
        &sa,
        &[
            "missing",
            &format!("libgoneA.so.1 (needed by {})", s(&app)),
            &format!("libgoneB.so.1 (needed by {})", s(&libmid)),
        ],
    );
    println!("refused: {line}");

    // Allowing only one of them still refuses, naming the other only.
    let mut only_a = sa.clone();
    only_a.extend(["--allow-missing", "libgoneA*"]);
    let line = assert_refused(&app, &only_a, &["libgoneB.so.1"]);
    assert!(!line.contains("libgoneA"), "{line}");

    // A glob covering both: stamped, with a warning for each, the missing names left bare.
    let mut both = sa.clone();
    both.extend(["--allow-missing", "libgone*"]);
    let before = std::fs::read(&app).unwrap();
    let out = assert_stamped(&app, &both);
    assert!(std::fs::read(&app).unwrap() != before, "nothing written");
    let warnings: Vec<&str> = out.lines().filter(|l| l.contains("warning")).collect();
    for name in ["libgoneA.so.1", "libgoneB.so.1"] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(name) && w.contains("missing")),
            "no warning about {name}: {out}"
        );
    }
    let n = needed(&app, &sa);
    assert_eq!(n[0], "libgoneA.so.1", "{n:?}");
    assert_eq!(n[1], s(&libmid), "{n:?}");
    assert!(all_absolute(&n[1..]), "{n:?}");
    assert!(
        !n.iter().any(|x| x.contains("libgoneB")),
        "a missing library cannot be lifted: {n:?}"
    );
    // libmid is not touched: its request for libgoneB stays a bare name.
    assert_eq!(needed(&libmid, &sa)[0], "libgoneB.so.1");
    if have("readelf") {
        assert_eq!(readelf_needed(&app), n, "readelf and tree --json disagree");
    }
}

#[test]
fn soname_collision_is_refused_unless_allowed() {
    // The "soname-collision" fixture of tests/fixtures.rs: libcoll asks for libdup.so.2 (a
    // link-time stub's soname), whose file in the store carries soname libdup.so.1, and the
    // program also loads another libdup.so.1.
    let st = Store::new();
    let dsrc = |v: u8| format!("int dup(void) {{ return {v}; }}\n");
    let dup1 = st.lib_dir("dup-one");
    let dup2 = st.lib_dir("dup-two");
    let coll = st.lib_dir("collider");
    let (d1, d2) = (dsrc(1), dsrc(2));
    let libdup1 = Cc::new("cc", &d1, dup1.join("libdup.so.1"))
        .shared(Some("libdup.so.1"))
        .runpath(&st.runpath(&[]))
        .build();
    let stub = Cc::new("cc", &d2, st.scratch().join("libdup.so.2"))
        .shared(Some("libdup.so.2"))
        .build();
    let libdup2 = Cc::new("cc", &d2, dup2.join("libdup.so.2"))
        .shared(Some("libdup.so.1"))
        .runpath(&st.runpath(&[]))
        .build();
    let libcoll = Cc::new(
        "cc",
        "int dup(void);\nint coll(void) { return dup(); }\n",
        coll.join("libcoll.so.1"),
    )
    .shared(Some("libcoll.so.1"))
    .runpath(&st.runpath(&[&s(&dup2)]))
    .link(&stub)
    .build();
    let app = Cc::new(
        "cc",
        "int dup(void); int coll(void);\nint main(void) { return dup() + coll() - 2; }\n",
        st.package("app").join("bin/soname-collision"),
    )
    .runpath(&st.runpath(&[&s(&dup1), &s(&coll)]))
    .link(&libdup1)
    .link(&libcoll)
    .arg(rpath_link(&[&dup2]))
    .build();
    let sa = store_args(&st);
    let sa = refs(&sa);
    assert_eq!(run_program(&app).0, Some(0), "the fixture runs before");

    assert_refused(
        &app,
        &sa,
        &["soname libdup.so.1", &s(&libdup1), &s(&libdup2)],
    );

    let mut allow = sa.clone();
    allow.push("--allow-soname-collision");
    assert_stamped(&app, &allow);
    let n = needed(&app, &sa);
    assert!(all_absolute(&n), "{n:?}");
    assert!(
        n.contains(&s(&libdup1)) && n.contains(&s(&libdup2)),
        "{n:?}"
    );
    assert_eq!(run_program(&app).0, Some(0), "the stamped program runs");
}

#[test]
fn musl_interpreter_is_refused() {
    let st = Store::new();
    let prog = Cc::new("cc", HELLO, st.package("app").join("bin/musl"))
        .arg("-Wl,--dynamic-linker=/lib/ld-musl-x86_64.so.1")
        .runpath(&st.runpath(&[]))
        .build();
    let sa = store_args(&st);
    assert_refused(&prog, &refs(&sa), &["musl", "/lib/ld-musl-x86_64.so.1"]);
    // Even allowing everything else does not change that.
    let mut all = refs(&sa);
    all.extend([
        "--allow-soname-collision",
        "--allow-missing",
        "*",
        "--keep",
        "*",
    ]);
    assert_refused(&prog, &all, &["musl"]);
}

#[test]
fn static_binary_and_object_file_have_nothing_to_do() {
    let st = Store::new();
    let dir = st.package("app").join("bin");
    let stat = Cc::new("cc", HELLO, dir.join("static"))
        .arg("-static")
        .build();
    let obj = Cc::new("cc", HELLO, dir.join("hello.o")).arg("-c").build();
    for (file, kind) in [(&stat, "static"), (&obj, "relocatable")] {
        let before = std::fs::read(file).unwrap();
        let (code, out, err) = stamp(file, &[]);
        assert_eq!(code, 0, "{}: {err}", file.display());
        assert!(err.is_empty(), "{err}");
        assert!(out.contains("nothing to do"), "{out}");
        assert!(out.contains(kind), "{out}");
        assert!(out.contains(&s(file)), "{out}");
        assert!(
            std::fs::read(file).unwrap() == before,
            "{} changed",
            file.display()
        );
        // The JSON report says the same.
        let (code, out, _) = stamp(file, &["--json"]);
        assert_eq!(code, 0);
        let doc: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["files"][0]["status"], "nothing-to-do", "{doc:#}");
        assert!(std::fs::read(file).unwrap() == before);
    }
}

#[test]
fn not_elf_and_truncated_files_are_refused() {
    let c = chain();
    let dir = c.st.scratch();
    let text = dir.join("script.sh");
    std::fs::write(&text, "#!/bin/sh\necho hi\n").unwrap();
    assert_refused(&text, &[], &["not an ELF file"]);

    let empty = dir.join("empty");
    std::fs::write(&empty, "").unwrap();
    assert_refused(&empty, &[], &["not an ELF file"]);

    // The first half of a real program: its segments run past the end.
    let bytes = std::fs::read(&c.app).unwrap();
    let cut = dir.join("truncated");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(
        &cut,
        &store_args(&c.st)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &["truncated"],
    );

    // A file that does not exist.
    let nowhere = dir.join("no-such-file");
    let (code, _, err) = stamp(&nowhere, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("shrinkwrap: {}: ", nowhere.display())),
        "{err}"
    );
    assert!(!nowhere.exists());

    // One bad file among good ones: the good one is stamped, the exit code is still 1.
    let out = run(shrinkwrap()
        .arg("stamp")
        .args(store_args(&c.st))
        .arg(&text)
        .arg(&c.app));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&s(&text)), "{err}");
    assert!(all_absolute(&needed(&c.app, &refs(&store_args(&c.st)))));
}

/// A file whose immutable attribute is removed again when the test ends, however it ends.
struct Immutable<'a>(&'a Path);

impl Drop for Immutable<'_> {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(self.0).status();
    }
}

#[test]
fn unwritable_file_and_unwritable_output_are_refused() {
    let c = chain();
    let sa = store_args(&c.st);
    let sa = refs(&sa);
    let dir = c.st.package("ro").join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let ro = dir.join("app");
    std::fs::copy(&c.app, &ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();

    // Can this process write a mode 0444 file? Root can (CAP_DAC_OVERRIDE), and so can
    // shrinkwrap run by it: then chmod does not make a file unwritable.
    let writable = std::fs::OpenOptions::new().write(true).open(&ro).is_ok();
    if writable {
        println!("mode 0444 does not stop this user from writing: stamping it succeeds");
        let before = std::fs::read(&ro).unwrap();
        assert_stamped(&ro, &sa);
        assert!(std::fs::read(&ro).unwrap() != before, "not stamped");
        let mode = std::fs::metadata(&ro).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o444, "stamping changed the mode");
    } else {
        assert_refused(&ro, &sa, &["ermission denied"]);
    }

    // `-o` into a directory that does not exist: refused, naming OUT (the error is about
    // writing there), the source untouched, nothing left.
    let src = dir.join("src");
    std::fs::copy(&c.app, &src).unwrap();
    let out = c.st.tmp.path().join("no-such-dir/app");
    let mut args = sa.clone();
    let out_s = s(&out);
    args.extend(["-o", &out_s]);
    let before = std::fs::read(&src).unwrap();
    let (code, stdout, err) = stamp(&src, &args);
    assert_eq!(code, 1, "{stdout} {err}");
    assert_eq!(
        err,
        format!("shrinkwrap: {out_s}: No such file or directory (os error 2)\n")
    );
    assert!(std::fs::read(&src).unwrap() == before);
    assert!(!out.parent().unwrap().exists());
    // An error about the input still names the input.
    let not_elf = dir.join("not-elf");
    std::fs::write(&not_elf, "#!/bin/sh\n").unwrap();
    let (code, _, err) = stamp(&not_elf, &args);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!("shrinkwrap: {}: ", s(&not_elf))),
        "{err}"
    );

    // An immutable file (chattr +i) is unwritable even for root.
    if !have("chattr") {
        return;
    }
    let imm = dir.join("immutable");
    std::fs::copy(&c.app, &imm).unwrap();
    let set = run(Command::new("chattr").arg("+i").arg(&imm));
    if !set.status.success() {
        common::skip(&format!(
            "chattr +i is not permitted here ({}): the immutable-file check",
            String::from_utf8_lossy(&set.stderr).trim()
        ));
        return;
    }
    let _guard = Immutable(&imm);
    assert_refused(&imm, &sa, &["Operation not permitted"]);
}

#[test]
fn dry_run_writes_nothing_and_prints_the_plan() {
    let c = chain();
    let sa = store_args(&c.st);
    let mut args = refs(&sa);
    args.push("--dry-run");
    let before = std::fs::read(&c.app).unwrap();
    let meta = std::fs::metadata(&c.app).unwrap();
    let out = assert_stamped(&c.app, &args);
    assert!(std::fs::read(&c.app).unwrap() == before, "--dry-run wrote");
    assert_eq!(std::fs::metadata(&c.app).unwrap().mtime(), meta.mtime());
    // Nothing was created beside it either.
    let siblings: Vec<_> = std::fs::read_dir(c.app.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(siblings.len(), 1, "{siblings:?}");

    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("would write"), "{out}");
    let replace = format!("replace libmid.so.1 => {}", s(&c.libmid));
    assert!(
        lines.iter().any(|l| l.trim() == replace),
        "no {replace:?} in {out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.trim().starts_with("replace libc.so.6 => /")),
        "{out}"
    );
    let add = format!("add     {}", s(&c.libbase));
    assert!(lines.iter().any(|l| l.trim() == add), "no {add:?} in {out}");

    // The JSON plan says the same, with status "planned".
    args.push("--json");
    let (code, out, _) = stamp(&c.app, &args);
    assert_eq!(code, 0);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let f = &doc["files"][0];
    assert_eq!(f["status"], "planned");
    assert_eq!(f["needed"][0]["value"], s(&c.libmid));
    assert_eq!(f["needed"][0]["original"], "libmid.so.1");
    assert!(f["needed"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["value"] == s(&c.libbase) && n["original"].is_null()));
    assert!(
        std::fs::read(&c.app).unwrap() == before,
        "--dry-run --json wrote"
    );
}

#[test]
fn stamped_needed_is_the_closure_in_load_order() {
    let c = chain();
    let sa = store_args(&c.st);
    let sa = refs(&sa);
    let order = common::paths(&tree(&c.app, &sa));
    assert_eq!(run_program(&c.app), (Some(0), "42\n".into()));
    let runpath = common::readelf_runpath(&c.app);
    assert!(runpath.is_some());
    let vn_files = common::readelf_vn_files(&c.app);
    assert!(vn_files.contains(&"libc.so.6".to_string()), "{vn_files:?}");
    assert_stamped(&c.app, &sa);
    assert_eq!(needed(&c.app, &sa), order);
    assert_eq!(run_program(&c.app), (Some(0), "42\n".into()));
    // DT_RUNPATH is kept (dlopen of bare names still uses it); each `vn_file` names its
    // library as the new DT_NEEDED entry does (glibc matches the two).
    assert_eq!(common::readelf_runpath(&c.app), runpath);
    let stamped = readelf_needed(&c.app);
    let vn_after = common::readelf_vn_files(&c.app);
    assert_eq!(vn_after.len(), vn_files.len(), "{vn_after:?}");
    assert!(
        vn_after
            .iter()
            .all(|f| f.starts_with('/') && stamped.contains(f)),
        "{vn_after:?} vs DT_NEEDED {stamped:?}"
    );
}

#[test]
fn a_name_the_loader_matches_by_inode_is_stamped_too() {
    // The program needs libbar.so.1 and libbar.so, a symlink to the same file: the loader
    // finds the second by search, sees the same inode, and loads nothing new. Both slots get
    // the path, not only the first.
    let st = Store::new();
    let dir = st.lib_dir("bar");
    let bar = Cc::new("cc", BASE, dir.join("libbar.so.1"))
        .shared(Some("libbar.so.1"))
        .runpath(&st.runpath(&[]))
        .build();
    std::os::unix::fs::symlink("libbar.so.1", dir.join("libbar.so")).unwrap();
    // A link-time stand-in whose soname is the unversioned name.
    let stub = Cc::new("cc", BASE, st.scratch().join("libbar.so"))
        .shared(Some("libbar.so"))
        .build();
    let app = Cc::new(
        "cc",
        "int base(void);\nint main(void) { return base() == 40 ? 0 : 1; }\n",
        st.package("app").join("bin/app"),
    )
    .arg("-Wl,--no-as-needed")
    .runpath(&st.runpath(&[&s(&dir)]))
    .link(&bar)
    .link(&stub)
    .build();
    assert_eq!(
        readelf_needed(&app)[..2],
        ["libbar.so.1".to_string(), "libbar.so".to_string()]
    );
    let sa = store_args(&st);
    let sa = refs(&sa);
    let order = common::paths(&tree(&app, &sa));
    assert_stamped(&app, &sa);
    let n = readelf_needed(&app);
    assert!(all_absolute(&n), "{n:?}");
    assert_eq!(n[0], n[1], "{n:?}");
    assert_eq!(common::paths(&tree(&app, &sa)), order);
    assert_eq!(run_program(&app), (Some(0), String::new()));
}

#[test]
fn keep_leaves_the_soname_and_does_not_lift_what_only_it_brought_in() {
    let c = chain();
    let sa = store_args(&c.st);
    let mut args = refs(&sa);
    args.extend(["--keep", "libmid*"]);
    assert_stamped(&c.app, &args);
    let n = needed(&c.app, &refs(&sa));
    assert_eq!(n[0], "libmid.so.1", "{n:?}");
    assert!(all_absolute(&n[1..]), "{n:?}");
    assert!(
        !n.iter().any(|x| x.contains("libbase")),
        "libbase came only with the kept libmid, it must not be lifted: {n:?}"
    );
    assert!(n.iter().any(|x| x.ends_with("/libc.so.6")), "{n:?}");
    // The program still finds both at run time.
    assert_eq!(run_program(&c.app), (Some(0), "42\n".into()));
}

#[test]
fn keep_still_lifts_what_another_library_needs_too() {
    // app needs libmid (kept) then libother; both need libbase. libbase is not brought in
    // only by the kept library, so it is lifted, as it is when libother comes first.
    let c = chain();
    let other_dir = c.st.lib_dir("other");
    let libother = Cc::new(
        "cc",
        "int base(void);\nint other(void) { return base(); }\n",
        other_dir.join("libother.so.1"),
    )
    .shared(Some("libother.so.1"))
    .runpath(&c.st.runpath(&[&s(&c.base_dir)]))
    .link(&c.libbase)
    .build();
    let mid_dir = c.libmid.parent().unwrap();
    let src = "int mid(void); int other(void);\nint main(void) { return mid() + other() - 82; }\n";
    let build = |name: &str, first: &Path, second: &Path| {
        Cc::new("cc", src, c.st.package("app2").join(format!("bin/{name}")))
            .runpath(&c.st.runpath(&[&s(mid_dir), &s(&other_dir)]))
            .link(first)
            .link(second)
            .arg(rpath_link(&[&c.base_dir]))
            .build()
    };
    let mid_first = build("mid-first", &c.libmid, &libother);
    let other_first = build("other-first", &libother, &c.libmid);
    let sa = store_args(&c.st);
    let mut args = refs(&sa);
    args.extend(["--keep", "libmid*"]);
    for app in [&other_first, &mid_first] {
        assert_stamped(app, &args);
        let n = needed(app, &refs(&sa));
        assert!(n.contains(&"libmid.so.1".to_string()), "{n:?}");
        assert!(
            n.contains(&s(&c.libbase)),
            "{}: libbase is needed by libother too, it must be lifted: {n:?}",
            app.display()
        );
        assert_eq!(run_program(app).0, Some(0));
    }
}

#[test]
fn library_without_soname_is_stamped_with_a_warning() {
    let st = Store::new();
    let noso = st.lib_dir("noso");
    let lib = Cc::new("cc", BASE, noso.join("libnoso.so"))
        .shared(None)
        .runpath(&st.runpath(&[]))
        .build();
    let app = Cc::new(
        "cc",
        "int base(void);\nint main(void) { return base() - 40; }\n",
        st.package("app").join("bin/no-soname"),
    )
    .runpath(&st.runpath(&[&s(&noso)]))
    .arg(format!("-L{}", s(&noso)))
    .arg("-lnoso")
    .build();
    let sa = store_args(&st);
    let sa = refs(&sa);
    let out = assert_stamped(&app, &sa);
    let warning = out
        .lines()
        .find(|l| l.contains("warning") && l.contains("no soname"))
        .unwrap_or_else(|| panic!("no warning about the missing soname: {out}"));
    assert!(warning.contains(&s(&lib)), "{warning}");
    let n = needed(&app, &sa);
    assert_eq!(n[0], s(&lib), "{n:?}");
    assert!(all_absolute(&n), "{n:?}");
    assert_eq!(run_program(&app).0, Some(0));
}

#[test]
fn output_file_gets_the_stamp_and_the_mode_the_input_is_left_alone() {
    let c = chain();
    let sa = store_args(&c.st);
    // An unusual mode, so that a default one cannot pass by chance.
    std::fs::set_permissions(&c.app, std::fs::Permissions::from_mode(0o710)).unwrap();
    let before = std::fs::read(&c.app).unwrap();
    let out = c.st.package("out").join("bin/app-stamped");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let out_s = s(&out);
    let mut args = refs(&sa);
    args.extend(["-o", &out_s]);
    let printed = assert_stamped(&c.app, &args);
    assert!(printed.contains(&out_s), "{printed}");
    assert!(
        std::fs::read(&c.app).unwrap() == before,
        "the input changed"
    );
    assert_eq!(
        needed(&c.app, &refs(&sa)),
        vec!["libmid.so.1".to_string(), "libc.so.6".to_string()]
    );
    let n = needed(&out, &refs(&sa));
    assert!(all_absolute(&n), "{n:?}");
    assert!(n.contains(&s(&c.libbase)), "{n:?}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&out), mode(&c.app));
    assert_eq!(mode(&out), 0o710);
    assert_eq!(run_program(&out), (Some(0), "42\n".into()));
    // No temporary file is left beside the output.
    let siblings: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(siblings.len(), 1, "{siblings:?}");
    // `-o` with two inputs is a usage error.
    let out2 = run(shrinkwrap()
        .arg("stamp")
        .arg("-o")
        .arg(&out)
        .arg(&c.app)
        .arg(&c.libmid));
    assert_eq!(out2.status.code(), Some(2));
}

#[test]
fn stamping_in_place_keeps_hard_links() {
    let c = chain();
    let sa = store_args(&c.st);
    let link = c.app.with_file_name("app-link");
    std::fs::hard_link(&c.app, &link).unwrap();
    let ino = std::fs::metadata(&c.app).unwrap().ino();
    let before = std::fs::read(&c.app).unwrap();
    assert_stamped(&link, &refs(&sa));
    let stamped = std::fs::read(&link).unwrap();
    assert!(stamped != before, "not stamped");
    assert!(
        std::fs::read(&c.app).unwrap() == stamped,
        "the other name differs"
    );
    for p in [&c.app, &link] {
        let m = std::fs::metadata(p).unwrap();
        assert_eq!(m.ino(), ino, "{} has a new inode", p.display());
        assert_eq!(m.nlink(), 2);
    }
    assert!(all_absolute(&needed(&c.app, &refs(&sa))));
}

/// A cross target for the ELF32 / big-endian checks.
struct Cross {
    gcc: &'static str,
    sysroot_lib: &'static str,
    class: &'static str,
    endian: &'static str,
}

const CROSS: &[Cross] = &[
    Cross {
        gcc: "powerpc-linux-gnu-gcc",
        sysroot_lib: "/usr/powerpc-linux-gnu/lib",
        class: "elf32",
        endian: "big",
    },
    Cross {
        gcc: "i686-linux-gnu-gcc",
        sysroot_lib: "/usr/i686-linux-gnu/lib",
        class: "elf32",
        endian: "little",
    },
];

#[test]
fn elf32_and_big_endian_programs_stamp_and_restamp_as_no_op() {
    let mut checked = 0;
    for t in CROSS {
        if !have(t.gcc) {
            continue;
        }
        let st = Store::new();
        let base_dir = st.lib_dir("base");
        let mid_dir = st.lib_dir("mid");
        let libbase = Cc::new(t.gcc, BASE, base_dir.join("libbase.so.1"))
            .shared(Some("libbase.so.1"))
            .runpath(&st.runpath(&[]))
            .build();
        let libmid = Cc::new(t.gcc, MID, mid_dir.join("libmid.so.1"))
            .shared(Some("libmid.so.1"))
            .runpath(&st.runpath(&[&s(&base_dir)]))
            .link(&libbase)
            .build();
        let app = Cc::new(t.gcc, APP, st.package("app").join("bin/app"))
            .runpath(&st.runpath(&[&s(&mid_dir)]))
            .link(&libmid)
            .arg(rpath_link(&[&base_dir]))
            .build();
        let mut args = store_args(&st);
        args.extend(["--search".into(), t.sysroot_lib.into()]);
        let args = refs(&args);
        let what = t.gcc;

        let before = tree(&app, &args);
        assert_eq!(before["class"], t.class, "{what}");
        assert_eq!(before["endian"], t.endian, "{what}");
        assert!(
            before["missing"].as_array().unwrap().is_empty(),
            "{what}: {before:#}"
        );
        let order = common::paths(&before);

        let out = assert_stamped(&app, &args);
        assert!(out.contains("stamped"), "{what}: {out}");
        let after = tree(&app, &args);
        let n: Vec<String> = after["needed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert!(all_absolute(&n), "{what}: {n:?}");
        assert_eq!(n[0], s(&libmid), "{what}");
        assert!(
            n.contains(&s(&libbase)),
            "{what}: libbase not lifted: {n:?}"
        );
        assert!(
            n.iter()
                .any(|p| p == &format!("{}/libc.so.6", t.sysroot_lib)),
            "{what}: {n:?}"
        );
        assert_eq!(common::paths(&after), order, "{what}: closure changed");
        assert_eq!(after["class"], t.class, "{what}");
        assert_eq!(after["endian"], t.endian, "{what}");

        let once = std::fs::read(&app).unwrap();
        let out = assert_stamped(&app, &args);
        assert!(out.contains("unchanged"), "{what}: {out}");
        assert!(
            std::fs::read(&app).unwrap() == once,
            "{what}: stamping again changed the file"
        );
        checked += 1;
    }
    println!("{checked} of {} cross targets checked", CROSS.len());
    assert!(checked >= 1);
}
