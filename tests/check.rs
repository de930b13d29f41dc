//! `shrinkwrap check`: passes on stamped fixtures, and fails — naming the problem — for a
//! deleted stamped library, one replaced by a library with another soname, a soname named
//! twice, and drift (a fresh resolution that now finds another file). Unstamped files are said
//! so (exit 0; exit 1 with `--require-stamped`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{have, readelf_needed, run, s, sw, Cc, Store};

const BAR: &str = "int bar(void) { return 1; }\n";
const FOO: &str = "extern int bar(void);\nint foo(void) { return 40 + bar(); }\n";
const APP: &str = "extern int foo(void);\nint main(void) { return foo(); }\n";

struct Fixture {
    st: Store,
    prog: PathBuf,
    libfoo: PathBuf,
    libbar: PathBuf,
}

/// prog → libfoo → libbar, each library in its own store path, 32-directory RUNPATHs.
fn build() -> Fixture {
    let st = Store::new();
    let bar_dir = st.lib_dir("bar");
    let foo_dir = st.lib_dir("foo");
    let rp = st.runpath(&[&s(&foo_dir), &s(&bar_dir)]);
    let libbar = Cc::new("cc", BAR, bar_dir.join("libbar.so.1"))
        .shared(Some("libbar.so.1"))
        .runpath(&rp)
        .build();
    let libfoo = Cc::new("cc", FOO, foo_dir.join("libfoo.so.1"))
        .shared(Some("libfoo.so.1"))
        .runpath(&rp)
        .link(&libbar)
        .build();
    let prog = Cc::new("cc", APP, st.package("app").join("bin/app"))
        .runpath(&rp)
        .arg(format!("-Wl,-rpath-link,{}", s(&bar_dir)))
        .link(&libfoo)
        .build();
    Fixture {
        st,
        prog,
        libfoo,
        libbar,
    }
}

fn stamped() -> Option<Fixture> {
    if !have("cc") {
        return None;
    }
    let f = build();
    let (code, _, err) = sw(&["stamp"], &f.prog);
    assert_eq!(code, 0, "{err}");
    Some(f)
}

#[test]
fn a_stamped_file_checks_and_an_unstamped_one_is_said_so() {
    if !have("readelf") {
        return;
    }
    let Some(f) = stamped() else { return };
    // The stamped entries: every absolute DT_NEEDED (the loader's own bare name aside).
    let n = readelf_needed(&f.prog)
        .iter()
        .filter(|n| n.starts_with('/'))
        .count();
    assert!(n >= 2, "{:?}", readelf_needed(&f.prog));
    let (code, out, err) = sw(&["check"], &f.prog);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("{}: ok, {n} stamped entries hold\n", s(&f.prog))
    );
    assert_eq!(err, "");

    let (code, out, _) = sw(&["check"], &f.libbar);
    assert_eq!(code, 0);
    assert!(out.contains("not stamped"), "{out}");
    let (code, _, err) = sw(&["check", "--require-stamped"], &f.libbar);
    assert_eq!(code, 1);
    assert!(err.contains("not stamped"), "{err}");
}

#[test]
fn a_stamped_file_stripped_afterwards_is_named() {
    if !have("strip") {
        return;
    }
    let Some(f) = stamped() else { return };
    let o = run(Command::new("strip").arg(&f.prog));
    assert!(o.status.success(), "strip: {o:?}");
    let (code, out, err) = sw(&["check"], &f.prog);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("shrinkwrap: {}: ", s(&f.prog)))
            && err.contains("changed after it was stamped"),
        "{err}"
    );
}

#[test]
fn a_library_of_another_elf_class_is_named() {
    // The cross compiler the other architecture tests use (tests/elf_classes.rs).
    const I686_GCC: &str = "i686-linux-gnu-gcc";
    if !have(I686_GCC) {
        return;
    }
    let Some(f) = stamped() else { return };
    // libbar's file replaced by an i686 build with the same soname.
    Cc::new(I686_GCC, BAR, &f.libbar)
        .shared(Some("libbar.so.1"))
        .build();
    let (code, _, err) = sw(&["check"], &f.prog);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.lines().any(|l| l.starts_with(&format!(
            "shrinkwrap: {}: {}: ",
            s(&f.prog),
            s(&f.libbar)
        )) && l.contains("wrong ELF class or machine")),
        "{err}"
    );
}

#[test]
fn a_deleted_stamped_library_is_named() {
    let Some(f) = stamped() else { return };
    std::fs::remove_file(&f.libbar).unwrap();
    let (code, _, err) = sw(&["check"], &f.prog);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains(&s(&f.libbar)) && l.contains("No such file")),
        "{err}"
    );
}

#[test]
fn a_library_replaced_by_another_soname_is_named() {
    let Some(f) = stamped() else { return };
    Cc::new("cc", FOO, &f.libfoo)
        .shared(Some("libother.so.1"))
        .link(&f.libbar)
        .build();
    let (code, _, err) = sw(&["check"], &f.prog);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("has soname libother.so.1, but the file asked for libfoo.so.1"),
        "{err}"
    );
}

#[test]
fn a_soname_named_twice_is_named() {
    let Some(f) = stamped() else { return };
    // libbar's file replaced by a library that calls itself libfoo.so.1: two stamped entries
    // with one soname.
    Cc::new("cc", BAR, &f.libbar)
        .shared(Some("libfoo.so.1"))
        .build();
    let (code, _, err) = sw(&["check"], &f.prog);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "soname libfoo.so.1 is named twice: {} and {}",
            s(&f.libfoo),
            s(&f.libbar)
        )),
        "{err}"
    );
}

#[test]
fn drift_is_named_with_the_entry_that_moved() {
    let Some(f) = stamped() else { return };
    // A libfoo.so.1 appears in a directory earlier on the RUNPATH (a store path replaced).
    let early = &f.st.pads[0];
    let moved = Cc::new("cc", FOO, early.join("libfoo.so.1"))
        .shared(Some("libfoo.so.1"))
        .runpath(&s(f.libbar.parent().unwrap()))
        .link(&f.libbar)
        .build();
    let (code, _, err) = sw(&["check"], &f.prog);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("drift"), "{err}");
    assert!(
        err.contains(&format!(
            "entry 1: stamped {}, now {}",
            s(&f.libfoo),
            s(&moved)
        )),
        "{err}"
    );
    // Restamped, it holds again.
    assert_eq!(sw(&["stamp"], &f.prog).0, 0);
    assert_eq!(sw(&["check"], &f.prog).0, 0);
}

#[test]
fn json_lists_each_file_with_its_status_and_problems() {
    let Some(f) = stamped() else { return };
    std::fs::remove_file(&f.libbar).unwrap();
    let o = run(common::shrinkwrap()
        .args(["check", "--json"])
        .arg(&f.prog)
        .arg(&f.libfoo));
    assert_eq!(o.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["file"], s(&f.prog));
    assert_eq!(files[0]["status"], "problems");
    let problems: Vec<&str> = files[0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        problems.iter().any(|p| p.contains(&s(&f.libbar))),
        "{problems:?}"
    );
    // Problems go to stderr too, one line each.
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), problems.len(), "{err}");
    assert_eq!(files[1]["status"], "not-stamped");
    assert!(files[1]["entries"].is_null());
}
