//! `shrinkwrap explain`: the calls it computes from the loader's rules equal what strace
//! counts, for a program unstamped, stamped, and with its libraries stamped too — checked both
//! against `--measure` and against a strace run of this test's own.
//!
//! The fixture exercises every rule the count depends on: 32 empty store directories before
//! the libraries in every RUNPATH (each first met costs an open and a stat per capability
//! subdirectory, later ones an open), a RUNPATH directory that does not exist, one with a
//! `glibc-hwcaps` subdirectory that exists, an old-style DT_RPATH, `$ORIGIN`, a library of the
//! wrong class met first (i686, opened and skipped), and libc from `ld.so.cache`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have, have_loader, run, s, shrinkwrap, sw, Cc, Store};
use serde_json::Value;

const BAZ: &str = "int baz(void) { return 2; }\n";
const BAR: &str = "extern int baz(void);\nint bar(void) { return 1 + baz(); }\n";
const FOO: &str = "extern int bar(void);\nint foo(void) { return 39 + bar(); }\n";
const APP: &str = "extern int foo(void);\nint main(void) { return foo() == 42 ? 0 : 1; }\n";
const I686_GCC: &str = "i686-linux-gnu-gcc";

struct Fixture {
    st: Store,
    prog: PathBuf,
    libfoo: PathBuf,
}

/// prog → libfoo → libbar → libbaz, each library in its own store path.
fn build() -> Option<Fixture> {
    if !have("cc") || !have("strace") || !have(I686_GCC) || !have_loader() {
        return None;
    }
    let st = Store::new();
    let baz_dir = st.lib_dir("baz");
    let bar_dir = st.lib_dir("bar");
    let foo_dir = st.lib_dir("foo");
    // An i686 libbar in a directory searched before the real one: opened, read, skipped.
    let wrong_dir = st.lib_dir("wrong");
    Cc::new(I686_GCC, BAZ, wrong_dir.join("libbar.so.1"))
        .shared(Some("libbar.so.1"))
        .build();
    // A capability subdirectory that exists: the loader keeps opening in it, never stats it.
    std::fs::create_dir_all(foo_dir.join("glibc-hwcaps/x86-64-v2")).unwrap();
    let gone = st.tmp.path().join("nix/store/not-there/lib");
    let libbaz = Cc::new("cc", BAZ, baz_dir.join("libbaz.so.1"))
        .shared(Some("libbaz.so.1"))
        .build();
    // Old-style DT_RPATH: searched for libbar's own needs (and inherited by nothing here).
    let libbar = Cc::new("cc", BAR, bar_dir.join("libbar.so.1"))
        .shared(Some("libbar.so.1"))
        .rpath(&st.runpath(&[&s(&gone), &s(&baz_dir)]))
        .link(&libbaz)
        .build();
    let bar_pkg = bar_dir
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let libfoo = Cc::new("cc", FOO, foo_dir.join("libfoo.so.1"))
        .shared(Some("libfoo.so.1"))
        .runpath(&st.runpath(&[&s(&wrong_dir), &format!("$ORIGIN/../../{bar_pkg}/lib")]))
        .link(&libbar)
        .build();
    let prog = Cc::new("cc", APP, st.package("app").join("bin/app"))
        .runpath(&st.runpath(&[&s(&gone), &s(&foo_dir), &s(&wrong_dir), &s(&bar_dir)]))
        .arg(format!("-Wl,-rpath-link,{}:{}", s(&bar_dir), s(&baz_dir)))
        .link(&libfoo)
        .build();
    assert!(
        run(&mut Command::new(&prog)).status.success(),
        "the fixture runs"
    );
    Some(Fixture { st, prog, libfoo })
}

/// `explain --json --measure FILE`: the file's entry.
fn explain(file: &Path) -> Value {
    let out = run(shrinkwrap()
        .args(["explain", "--json", "--measure"])
        .arg(file));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], 1);
    v["files"][0].clone()
}

/// (calls, failed) of one state of an entry: `"unstamped"`/`"stamped"`, computed or measured.
fn calls(entry: &Value, state: &str, measured: bool) -> (u64, u64) {
    let v = match measured {
        true => &entry["measured"][state],
        false => &entry[state],
    };
    (
        v["calls"]
            .as_u64()
            .unwrap_or_else(|| panic!("{state}: {entry}")),
        v["failed"].as_u64().unwrap(),
    )
}

/// This test's own count: `prog` run to its end under strace, every `open`/`stat` of a path
/// (the tiny fixture program makes none of its own; `execve` and the loader's
/// `/etc/ld.so.preload` check are not traced).
fn strace_calls(prog: &Path) -> (u64, u64) {
    let out = run(Command::new("strace")
        .args(["-f", "-e", "trace=open,openat,stat,newfstatat,lstat,statx"])
        .arg(prog)
        .env_clear());
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains('"') && !l.contains("AT_EMPTY_PATH"))
        .collect();
    let failed = lines.iter().filter(|l| l.contains(" = -1 ")).count();
    (lines.len() as u64, failed as u64)
}

/// Computed equals measured in both states, and equals this test's own strace of the file
/// as it is.
fn assert_exact(entry: &Value, prog: &Path) {
    for state in ["unstamped", "stamped"] {
        assert_eq!(
            calls(entry, state, false),
            calls(entry, state, true),
            "{state}: computed vs --measure: {entry:#}"
        );
    }
    let as_is = match entry["is_stamped"].as_bool().unwrap() {
        true => "stamped",
        false => "unstamped",
    };
    assert_eq!(
        calls(entry, as_is, false),
        strace_calls(prog),
        "{as_is}: computed vs strace of the program run to its end: {entry:#}"
    );
}

#[test]
fn computed_calls_equal_strace_before_and_after_stamping() {
    let Some(f) = build() else { return };
    let before = explain(&f.prog);
    assert_eq!(before["is_stamped"], false);
    assert_exact(&before, &f.prog);
    let (calls_before, failed_before) = calls(&before, "unstamped", false);
    // 32 empty directories first met, then one open per directory for every later name.
    assert!(failed_before > 300, "{before:#}");
    assert!(calls_before > failed_before);
    let (calls_after, failed_after) = calls(&before, "stamped", false);
    assert_eq!(failed_after, 0, "stamped: no failed probe: {before:#}");
    // One open per library: libfoo, libbar, libbaz, libc.
    assert_eq!(calls_after, 4, "{before:#}");
    // The wrong-class libbar was met, and the search went on past it.
    let searches = before["unstamped"]["searches"].as_array().unwrap();
    let bar = searches
        .iter()
        .find(|s| s["name"] == "libbar.so.1")
        .unwrap();
    assert!(
        bar["found"].as_str().unwrap().contains("-bar/lib/"),
        "{bar}"
    );
    assert!(
        bar["tried"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().contains("-wrong/lib")),
        "{bar}"
    );

    // Stamped for real: the same two states, now seen from the other side.
    let (code, _, err) = sw(&["stamp"], &f.prog);
    assert_eq!(code, 0, "{err}");
    let stamped = explain(&f.prog);
    assert_eq!(stamped["is_stamped"], true);
    assert_exact(&stamped, &f.prog);
    for state in ["unstamped", "stamped"] {
        assert_eq!(
            calls(&stamped, state, false),
            calls(&before, state, false),
            "{state}"
        );
    }

    // Every library stamped too (`fixup` of the whole store): the program's unstamped state
    // now meets stamped libraries, which name their own needs by path.
    let (code, _, err) = sw(&["fixup", "--quiet"], &f.st.store);
    assert_eq!(code, 0, "{err}");
    let all = explain(&f.prog);
    assert_exact(&all, &f.prog);
    let (all_unstamped, _) = calls(&all, "unstamped", false);
    assert!(all_unstamped < calls_before, "{all:#}");
}

#[test]
fn text_output_ends_with_the_total_line() {
    let Some(f) = build() else { return };
    let entry = explain(&f.prog);
    let out = run(shrinkwrap().arg("explain").arg(&f.prog));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let (c0, f0) = calls(&entry, "unstamped", false);
    let (c1, f1) = calls(&entry, "stamped", false);
    let total = format!("  {c0} probes ({f0} failed) → {c1} probes ({f1} failed)");
    assert_eq!(text.lines().last(), Some(total.as_str()), "{text}");
    // One row per library, by name.
    for lib in ["libfoo.so.1", "libbar.so.1", "libbaz.so.1", "libc.so.6"] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(lib)),
            "{lib}: {text}"
        );
    }
}

#[test]
fn a_library_is_explained_but_not_run() {
    let Some(f) = build() else { return };
    let entry = explain(&f.libfoo);
    let (c, failed) = calls(&entry, "unstamped", false);
    assert!(c > 0 && failed > 0, "{entry:#}");
    assert!(entry["measured"]["unstamped"].is_null(), "{entry:#}");
    let notes = entry["measured"]["notes"].to_string();
    assert!(notes.contains("only programs are run"), "{notes}");
}

#[test]
fn unreadable_input_is_one_line_and_exit_1() {
    let st = Store::new();
    let junk = st.scratch().join("junk");
    std::fs::write(&junk, b"not an ELF file").unwrap();
    let out = run(shrinkwrap().arg("explain").arg(&junk));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&s(&junk)), "{stderr}");
}
