//! `shrinkwrap unwrap`: stamp → unwrap gives back the original bytes (both layouts, programs
//! and libraries), so the loader lists it as before and `LD_LIBRARY_PATH` swaps work again; a
//! file that is not stamped is left alone; a stamped file changed afterwards (stripped) is
//! refused, untouched; `-o OUT` leaves the input stamped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{exporting, have, have_loader, ld_so_list, run, sw, Cc, Store, LOADER};

/// It calls into libc, so it has a DT_NEEDED to stamp.
const FOO: &str = "#include <unistd.h>\nint foo(void) { return getpid() > 0 ? 41 : 0; }\n";
const FOO_ALT: &str = "int foo(void) { return 2; }\n";
const APP: &str = "extern int foo(void);\nint main(void) { return foo(); }\n";

struct Fixture {
    st: Store,
    /// A PIE program, a non-PIE one exporting many names (the shifted layout), and the
    /// library they need.
    files: Vec<PathBuf>,
    /// A directory holding another libfoo.so.1 (foo returns 2 there).
    alt: PathBuf,
}

fn build() -> Fixture {
    let st = Store::new();
    let lib = st.lib_dir("foo");
    let rp = st.runpath(&[&lib.display().to_string()]);
    let libfoo = Cc::new("cc", FOO, lib.join("libfoo.so.1"))
        .shared(Some("libfoo.so.1"))
        .runpath(&rp)
        .build();
    let alt = st.lib_dir("foo-alt");
    Cc::new("cc", FOO_ALT, alt.join("libfoo.so.1"))
        .shared(Some("libfoo.so.1"))
        .build();
    let bin = st.package("app").join("bin");
    let pie = Cc::new("cc", APP, bin.join("app"))
        .runpath(&rp)
        .link(&libfoo)
        .build();
    let src = exporting(APP);
    let nonpie = Cc::new("cc", &src, bin.join("app-nonpie"))
        .arg("-no-pie")
        .arg("-rdynamic")
        .runpath(&rp)
        .link(&libfoo)
        .build();
    Fixture {
        st,
        files: vec![pie, nonpie, libfoo],
        alt,
    }
}

/// The program's exit code with `LD_LIBRARY_PATH` set to `dir`.
fn exit_with_llp(prog: &Path, dir: &Path) -> Option<i32> {
    run(Command::new(prog).env_clear().env("LD_LIBRARY_PATH", dir))
        .status
        .code()
}

fn ready() -> bool {
    have("cc") && have("readelf") && have_loader()
}

#[test]
fn stamp_then_unwrap_gives_back_the_original() {
    if !ready() {
        return;
    }
    let f = build();
    for file in &f.files {
        let original = std::fs::read(file).unwrap();
        let listed = ld_so_list(LOADER, file).unwrap();
        let load_before = common::first_load(file).0;
        let (code, _, err) = sw(&["stamp"], file);
        assert_eq!(code, 0, "{err}");
        assert!(
            std::fs::read(file).unwrap() != original,
            "{}: not stamped",
            file.display()
        );
        // The non-PIE program is the shifted-layout case: its first PT_LOAD moved down, so
        // unwrap below has that layout to undo, not only the in-place one.
        if file.ends_with("app-nonpie") {
            let load_after = common::first_load(file).0;
            assert!(
                load_after < load_before,
                "{}: not the shifted layout (first PT_LOAD {load_after:#x}, was {load_before:#x})",
                file.display()
            );
        }

        let (code, out, err) = sw(&["unwrap"], file);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("unwrapped"), "{out}");
        assert!(
            std::fs::read(file).unwrap() == original,
            "{}: unwrap did not give back the original bytes",
            file.display()
        );
        assert_eq!(ld_so_list(LOADER, file).unwrap(), listed);

        // Not stamped now: said so, exit 0, nothing written.
        let (code, out, err) = sw(&["unwrap"], file);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("not stamped, nothing to unwrap"), "{out}");
        assert!(std::fs::read(file).unwrap() == original);
    }
}

#[test]
fn unwrapped_programs_follow_ld_library_path_again() {
    if !ready() {
        return;
    }
    let f = build();
    for prog in &f.files[..2] {
        assert_eq!(exit_with_llp(prog, &f.alt), Some(2), "{}", prog.display());
        assert_eq!(sw(&["stamp"], prog).0, 0);
        // The price of a stamp: the swap is ignored.
        assert_eq!(exit_with_llp(prog, &f.alt), Some(41), "{}", prog.display());
        assert_eq!(sw(&["unwrap"], prog).0, 0);
        assert_eq!(exit_with_llp(prog, &f.alt), Some(2), "{}", prog.display());
    }
}

#[test]
fn unwrap_to_another_file_and_refusals() {
    if !ready() || !have("strip") {
        return;
    }
    let f = build();
    let prog = &f.files[0];
    let original = std::fs::read(prog).unwrap();
    assert_eq!(sw(&["stamp"], prog).0, 0);
    let stamped = std::fs::read(prog).unwrap();

    // -o OUT: OUT is the original, the input stays stamped.
    let out = f.st.scratch().join("unwrapped");
    let (code, _, err) = sw(&["unwrap", "-o", &out.display().to_string()], prog);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read(&out).unwrap() == original);
    assert!(std::fs::read(prog).unwrap() == stamped);

    // Stripped after stamping: refused, one line naming the file, untouched.
    let o = run(Command::new("strip").arg(prog));
    assert!(o.status.success(), "{o:?}");
    let stripped = std::fs::read(prog).unwrap();
    let (code, _, err) = sw(&["unwrap"], prog);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&prog.display().to_string()), "{err}");
    assert!(err.contains("changed after it was stamped"), "{err}");
    assert!(std::fs::read(prog).unwrap() == stripped);

    // Not ELF: one line, exit 1.
    let text = f.st.scratch().join("notes.txt");
    std::fs::write(&text, "not ELF\n").unwrap();
    let (code, _, err) = sw(&["unwrap"], &text);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
