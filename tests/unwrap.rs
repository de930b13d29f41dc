//! `shrinkwrap unwrap`: stamp → unwrap gives back the original bytes (both layouts, programs
//! and libraries), so the loader lists it as before and `LD_LIBRARY_PATH` swaps work again; a
//! file that is not stamped is left alone; `-o OUT` leaves the input stamped. A stamped file
//! stripped afterwards (every strip and objcopy variant) gets the original's DT_NEEDED list and
//! `vn_file` names back: the loader lists it as the original, it runs, follows
//! `LD_LIBRARY_PATH` again and stamps again; one whose DT_NEEDED list was changed after
//! stamping, or that has another hard link, is refused, untouched.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    all_absolute, exporting, have, have_loader, ld_so_list, readelf_needed, readelf_vn_files, run,
    run_program, sw, Cc, Store, LOADER,
};

/// `libbaz` (version BAZ_1) ← `libfoo` (version FOO_1, which calls into libc) ← the programs:
/// each object finds the next through its RUNPATH (behind the padding directories), so the
/// original's entries need searching, and a program's stamp lifts `libbaz` and the loader
/// after its own entries. Both libraries version their symbols, so `vn_file` names a store
/// library (not only libc) in the programs and in `libfoo`.
const BAZ: &str = "int baz(void) { return 1; }\n";
const FOO: &str =
    "#include <unistd.h>\nint baz(void);\nint foo(void) { return getpid() > 0 ? 40 + baz() : 0; }\n";
const APP: &str = "#include <stdio.h>\nextern int foo(void);\n\
    int main(void) { int r = foo(); printf(\"foo %d\\n\", r); return r; }\n";
/// Another libfoo, for `LD_LIBRARY_PATH` to find instead.
const FOO_ALT: &str = "int foo(void) { return 2; }\n";

struct Fixture {
    st: Store,
    /// A PIE program, a non-PIE one that takes the shifted layout, and `libfoo`, the library.
    pie: PathBuf,
    nonpie: PathBuf,
    libfoo: PathBuf,
    /// A directory holding another libfoo.so.1 (foo returns 2 there, version FOO_1 too).
    alt: PathBuf,
}

/// The linker flag for a version script giving `symbol` the version `name`.
fn version_script(st: &Store, name: &str, symbol: &str) -> String {
    let path = st.scratch().join(format!("{name}.map"));
    std::fs::write(
        &path,
        format!("{name} {{ global: {symbol}; local: *; }};\n"),
    )
    .unwrap();
    format!("-Wl,--version-script={}", path.display())
}

fn build() -> Fixture {
    let st = Store::new();
    let baz_dir = st.lib_dir("baz");
    let foo_dir = st.lib_dir("foo");
    let libbaz = Cc::new("cc", BAZ, baz_dir.join("libbaz.so.1"))
        .shared(Some("libbaz.so.1"))
        .arg(version_script(&st, "BAZ_1", "baz"))
        .build();
    let libfoo = Cc::new("cc", FOO, foo_dir.join("libfoo.so.1"))
        .shared(Some("libfoo.so.1"))
        .arg(version_script(&st, "FOO_1", "foo"))
        .runpath(&st.runpath(&[&baz_dir.display().to_string()]))
        .link(&libbaz)
        .build();
    let alt = st.lib_dir("foo-alt");
    Cc::new("cc", FOO_ALT, alt.join("libfoo.so.1"))
        .shared(Some("libfoo.so.1"))
        .arg(version_script(&st, "FOO_1", "foo"))
        .build();
    let rp = st.runpath(&[&foo_dir.display().to_string()]);
    let bin = st.package("chain").join("bin");
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
        pie,
        nonpie,
        libfoo,
        alt,
    }
}

impl Fixture {
    /// The PIE program, the non-PIE one and the library.
    fn files(&self) -> [&PathBuf; 3] {
        [&self.pie, &self.nonpie, &self.libfoo]
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
    for file in f.files() {
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
        if file == &f.nonpie {
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
    for prog in &f.files()[..2] {
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
    let prog = &f.pie;
    let original = std::fs::read(prog).unwrap();
    let needed_before = readelf_needed(prog);
    let listed_before = ld_so_list(LOADER, prog).unwrap();
    let ran_before = run_program(prog);
    assert_eq!(sw(&["stamp"], prog).0, 0);
    let stamped = std::fs::read(prog).unwrap();

    // -o OUT: OUT is the original, the input stays stamped.
    let out = f.st.scratch().join("unwrapped");
    let (code, _, err) = sw(&["unwrap", "-o", &out.display().to_string()], prog);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read(&out).unwrap() == original);
    assert!(std::fs::read(prog).unwrap() == stamped);

    // Stripped after stamping, with another hard link: unwrapping it means a new file put in
    // its place, which would break the link; refused, one line naming the file, both names
    // untouched. `-o OUT` unwraps it.
    let o = run(Command::new("strip").arg(prog));
    assert!(o.status.success(), "{o:?}");
    let link = prog.with_file_name("app-link");
    std::fs::hard_link(prog, &link).unwrap();
    let stripped = std::fs::read(prog).unwrap();
    let (code, _, err) = sw(&["unwrap"], prog);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&prog.display().to_string()), "{err}");
    assert!(
        err.contains("other hard links") && err.contains("-o OUT"),
        "{err}"
    );
    assert!(std::fs::read(prog).unwrap() == stripped);
    assert!(std::fs::read(&link).unwrap() == stripped);
    let out = f.st.scratch().join("unwrapped-stripped");
    let (code, msg, err) = sw(&["unwrap", "-o", &out.display().to_string()], prog);
    assert_eq!(code, 0, "{err}");
    assert!(msg.contains("unwrapped its names"), "{msg}");
    assert_eq!(readelf_needed(&out), needed_before);
    assert_eq!(ld_so_list(LOADER, &out).unwrap(), listed_before);
    assert_eq!(run_program(&out), ran_before);
    assert!(std::fs::read(prog).unwrap() == stripped);
    std::fs::remove_file(&link).unwrap();

    // Not ELF: one line, exit 1.
    let text = f.st.scratch().join("notes.txt");
    std::fs::write(&text, "not ELF\n").unwrap();
    let (code, _, err) = sw(&["unwrap"], &text);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// The tools a stamped file is stripped with before it is unwrapped: (name, program,
/// arguments before the file). Plain `strip` is `--strip-all`.
const STRIP_TOOLS: &[(&str, &str, &[&str])] = &[
    ("strip", "strip", &[]),
    ("strip -g", "strip", &["-g"]),
    ("strip --strip-unneeded", "strip", &["--strip-unneeded"]),
    ("eu-strip", "eu-strip", &[]),
    ("objcopy --strip-debug", "objcopy", &["--strip-debug"]),
    ("objcopy --strip-all", "objcopy", &["--strip-all"]),
];

/// What must come back after stamp → strip → unwrap: the original's DT_NEEDED list and
/// `vn_file` names exactly, the loader's list, and what it prints (for the library, what the
/// program that loads it prints).
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    needed: Vec<String>,
    vn_files: Vec<String>,
    listed: common::LoaderList,
    ran: (Option<i32>, String),
}

fn seen(file: &Path, runner: &Path) -> Seen {
    Seen {
        needed: readelf_needed(file),
        vn_files: readelf_vn_files(file),
        listed: ld_so_list(LOADER, file)
            .unwrap_or_else(|e| panic!("{}: the loader refuses it: {e}", file.display())),
        ran: run_program(runner),
    }
}

#[test]
fn unwrap_after_strip_lists_and_runs_as_the_original() {
    if !ready() {
        return;
    }
    let tools: Vec<_> = STRIP_TOOLS.iter().filter(|(_, p, _)| have(p)).collect();
    let c = build();
    // Every subject works on a copy beside its original (same RUNPATHs, so the same
    // libraries); the library in its own place, where the program loads it from.
    let subjects = [(&c.pie, false), (&c.nonpie, false), (&c.libfoo, true)];
    let mut cases = 0;
    for &(original, library) in &subjects {
        let work = if library {
            original.clone()
        } else {
            original.with_file_name(format!(
                "{}-work",
                original.file_name().unwrap().to_string_lossy()
            ))
        };
        let keep = c.st.scratch().join("original-bytes");
        std::fs::copy(original, &keep).unwrap();
        let runner = if library { &c.pie } else { &work };
        std::fs::copy(&keep, &work).unwrap();
        let before = seen(&work, runner);
        assert_eq!(
            before.ran,
            (Some(41), "foo 41\n".into()),
            "{}",
            work.display()
        );
        // Not vacuous: the original needs a search for a store library, and names one in
        // `vn_file`.
        assert!(before.needed.contains(&"libfoo.so.1".to_string()) || library);
        assert!(
            before.needed.iter().all(|n| !n.starts_with('/')),
            "{before:?}"
        );
        let store_vn = if library {
            "libbaz.so.1"
        } else {
            "libfoo.so.1"
        };
        assert!(before.vn_files.iter().any(|v| v == store_vn), "{before:?}");
        for &&(tool, program, args) in &tools {
            let what = format!("{} after {tool}", work.display());
            std::fs::copy(&keep, &work).unwrap();
            let (code, _, err) = sw(&["stamp"], &work);
            assert_eq!(code, 0, "{what}: {err}");
            let stamped_needed = readelf_needed(&work);
            assert!(all_absolute(&stamped_needed), "{what}: {stamped_needed:?}");
            if !library {
                // A program lifts its closure: there are entries to take out again.
                assert!(
                    stamped_needed.len() > before.needed.len(),
                    "{what}: {stamped_needed:?}"
                );
            }
            // The stamp renamed the store library in `vn_file` too: there is one to put back.
            assert!(
                readelf_vn_files(&work)
                    .iter()
                    .any(|v| v.starts_with('/') && v.ends_with(&format!("/{store_vn}"))),
                "{what}: {:?}",
                readelf_vn_files(&work)
            );
            // Both layouts: the non-PIE program is the shifted one (its first PT_LOAD moved
            // down), the others are stamped in place.
            let shifted = common::first_load(&work).0 < common::first_load(&keep).0;
            assert_eq!(shifted, original == &c.nonpie, "{what}: layout");
            let o = run(Command::new(program).args(args).arg(&work));
            assert!(o.status.success(), "{what}: {o:?}");
            let stripped = std::fs::read(&work).unwrap();

            let (code, out, err) = sw(&["unwrap"], &work);
            assert_eq!(code, 0, "{what}: {err}");
            assert!(out.contains("unwrapped its names"), "{what}: {out}");
            assert!(
                std::fs::read(&work).unwrap() != stripped,
                "{what}: nothing written"
            );
            assert_eq!(seen(&work, runner), before, "{what}");
            // Not stamped any more, and a program's `LD_LIBRARY_PATH` reaches libfoo again.
            let (code, out, _) = sw(&["unwrap"], &work);
            assert_eq!(code, 0, "{what}");
            assert!(out.contains("not stamped"), "{what}: {out}");
            if !library {
                assert_eq!(exit_with_llp(runner, &c.alt), Some(2), "{what}");
            }

            // Stamped again: the same absolute list, the same loader list, and it runs; and
            // that stamp unwraps byte for byte.
            let unwrapped = std::fs::read(&work).unwrap();
            let (code, _, err) = sw(&["stamp"], &work);
            assert_eq!(code, 0, "{what}: restamp: {err}");
            assert_eq!(readelf_needed(&work), stamped_needed, "{what}: restamp");
            let again = seen(&work, runner);
            assert_eq!(again.listed, before.listed, "{what}: restamp");
            assert_eq!(again.ran, before.ran, "{what}: restamp");
            if !library {
                assert_eq!(exit_with_llp(runner, &c.alt), Some(41), "{what}: restamp");
            }
            let (code, out, err) = sw(&["unwrap"], &work);
            assert_eq!(code, 0, "{what}: {err}");
            assert!(out.contains("unwrapped (-"), "{what}: {out}");
            assert!(
                std::fs::read(&work).unwrap() == unwrapped,
                "{what}: the restamp did not unwrap to the bytes it was made from"
            );
            cases += 1;
        }
        std::fs::copy(&keep, &work).unwrap();
        if !library {
            std::fs::remove_file(&work).unwrap();
        }
    }
    assert_eq!(cases, tools.len() * subjects.len());
}

#[test]
fn unwrap_refuses_a_stripped_stamp_whose_list_was_changed() {
    if !ready() || !have("strip") || !have("patchelf") {
        return;
    }
    let c = build();
    let prog = &c.pie;
    assert_eq!(sw(&["stamp"], prog).0, 0);
    let o = run(Command::new("strip").arg(prog));
    assert!(o.status.success(), "{o:?}");
    // Take out a lifted entry: the list left is no longer the stamp's, and which entries are
    // the original's cannot be told by position.
    let lifted = readelf_needed(prog)
        .into_iter()
        .find(|n| n.ends_with("/libbaz.so.1"))
        .unwrap();
    let o = run(Command::new("patchelf")
        .arg("--remove-needed")
        .arg(&lifted)
        .arg(prog));
    assert!(o.status.success(), "{o:?}");
    assert!(!readelf_needed(prog).contains(&lifted));
    let changed = std::fs::read(prog).unwrap();
    let (code, _, err) = sw(&["unwrap"], prog);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&prog.display().to_string()), "{err}");
    assert!(err.contains("no longer the one the stamp wrote"), "{err}");
    assert!(std::fs::read(prog).unwrap() == changed);
}
