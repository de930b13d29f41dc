//! The spare layout (`src/write/spare.rs`): a library stamped with its own entries gets its new
//! string table in the zero padding after a read-only segment. Checked here: the file keeps
//! its size and its program headers but one PT_LOAD's size (no segment added, so the loader
//! maps what it mapped before), that segment is not executable, the new file replaced the old
//! (a new inode), programs list and run as before, and unwrap gives back the original bytes.
//! Where the layout cannot be used the in-place one is, and says so by growing: a library with
//! another hard link (a new file would break the link) and one whose table does not fit.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have, have_loader, ld_so_list, readelf_needed, run, s, sw, Store, LOADER};

const BAR: &str = "#include <unistd.h>\nint bar(void) { return getpid() > 0; }\n";
/// A program header as `readelf -lW` shows it: type, file size, memory size, flags.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Phdr {
    kind: String,
    filesz: u64,
    memsz: u64,
    flags: String,
}

fn phdrs(file: &Path) -> Vec<Phdr> {
    let out = run(Command::new("readelf").arg("-lW").arg(file));
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = |v: &str| u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap();
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("Type"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| !l.contains("[Requesting"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Type Offset VirtAddr PhysAddr FileSiz MemSiz Flg... Align
            Phdr {
                kind: f[0].to_string(),
                filesz: hex(f[4]),
                memsz: hex(f[5]),
                flags: f[6..f.len() - 1].join(""),
            }
        })
        .collect()
}

struct Fixture {
    st: Store,
    prog: PathBuf,
    libfoo: PathBuf,
}

/// prog → libfoo → libbar (`common::Chain`); libfoo's RUNPATH has `pads` extra directories
/// of about 60 characters each (its string table grows with them).
fn build(pads: usize) -> Fixture {
    let st = Store::new();
    let extra: Vec<String> = (0..pads)
        .map(|i| s(&st.lib_dir(&format!("more-{i}"))))
        .collect();
    let c = st.chain(BAR, &extra);
    Fixture {
        st,
        prog: c.prog,
        libfoo: c.libfoo,
    }
}

fn ready() -> bool {
    have("cc") && have("readelf") && have_loader()
}

#[test]
fn a_library_is_stamped_into_its_padding() {
    if !ready() {
        return;
    }
    let f = build(0);
    let original = std::fs::read(&f.libfoo).unwrap();
    let before = phdrs(&f.libfoo);
    let inode = std::fs::metadata(&f.libfoo).unwrap().ino();
    let listed = ld_so_list(LOADER, &f.prog).unwrap();
    let (code, _, err) = sw(&["stamp"], &f.libfoo);
    assert_eq!(code, 0, "{err}");
    let needed = readelf_needed(&f.libfoo);
    assert!(needed[0].starts_with('/'), "stamped: {needed:?}");

    let after = phdrs(&f.libfoo);
    assert_eq!(
        std::fs::metadata(&f.libfoo).unwrap().len(),
        original.len() as u64
    );
    assert_eq!(
        after.len(),
        before.len(),
        "no program header added: {after:#?}"
    );
    let changed: Vec<(&Phdr, &Phdr)> = before.iter().zip(&after).filter(|(a, b)| a != b).collect();
    assert_eq!(
        changed.len(),
        1,
        "one segment grew, nothing else: {changed:#?}"
    );
    let (old, new) = changed[0];
    assert_eq!(new.kind, "LOAD");
    assert!(
        new.filesz > old.filesz && new.memsz == new.filesz,
        "{new:?}"
    );
    assert_eq!(
        new.flags, "R",
        "the table is not mapped writable or executable"
    );
    assert_ne!(
        std::fs::metadata(&f.libfoo).unwrap().ino(),
        inode,
        "written as a new file"
    );

    assert_eq!(ld_so_list(LOADER, &f.prog).unwrap(), listed);
    assert_eq!(run(&mut Command::new(&f.prog)).status.code(), Some(41));
    // The stamp is ours: check passes, and unwrap gives back the original bytes.
    let (code, _, err) = sw(&["check"], &f.libfoo);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = sw(&["unwrap"], &f.libfoo);
    assert_eq!(code, 0, "{err}");
    assert!(
        std::fs::read(&f.libfoo).unwrap() == original,
        "unwrap: not the original bytes"
    );
}

#[test]
fn a_hard_linked_library_is_stamped_in_place() {
    if !ready() {
        return;
    }
    let f = build(0);
    let link = f.st.scratch().join("libfoo-link.so.1");
    std::fs::hard_link(&f.libfoo, &link).unwrap();
    let size = std::fs::metadata(&f.libfoo).unwrap().len();
    let loads = phdrs(&f.libfoo).iter().filter(|p| p.kind == "LOAD").count();
    let (code, _, err) = sw(&["stamp"], &f.libfoo);
    assert_eq!(code, 0, "{err}");
    // The link still shares the file, which now has a segment more.
    let (a, b) = (
        std::fs::metadata(&f.libfoo).unwrap(),
        std::fs::metadata(&link).unwrap(),
    );
    assert_eq!(
        (a.dev(), a.ino()),
        (b.dev(), b.ino()),
        "the hard link is kept"
    );
    assert!(a.len() > size);
    assert_eq!(
        phdrs(&f.libfoo).iter().filter(|p| p.kind == "LOAD").count(),
        loads + 1
    );
    assert_eq!(run(&mut Command::new(&f.prog)).status.code(), Some(41));
}

#[test]
fn a_table_that_does_not_fit_takes_the_in_place_layout() {
    if !ready() {
        return;
    }
    // About 200 directories of 60-odd characters: a RUNPATH of 13 KB, more than any padding
    // of a page.
    let f = build(200);
    let size = std::fs::metadata(&f.libfoo).unwrap().len();
    let listed = ld_so_list(LOADER, &f.prog).unwrap();
    let (code, _, err) = sw(&["stamp"], &f.libfoo);
    assert_eq!(code, 0, "{err}");
    assert!(
        std::fs::metadata(&f.libfoo).unwrap().len() > size,
        "grew: in place"
    );
    assert!(readelf_needed(&f.libfoo)[0].starts_with('/'));
    assert_eq!(ld_so_list(LOADER, &f.prog).unwrap(), listed);
    assert_eq!(run(&mut Command::new(&f.prog)).status.code(), Some(41));
}

/// Stamping twice writes nothing. A stamped library rewritten at the same size — `strip` on
/// one already stripped, or a plain `objcopy` — has its old tables zeroed (no section claims
/// them any more): its record's saved bytes no longer fit, which must be noticed (the size
/// alone does not show it). `unwrap` then gives back its names, and the program runs.
#[test]
fn same_size_rewrites_after_a_spare_stamp_are_noticed() {
    if !ready() || !have("strip") || !have("objcopy") {
        return;
    }
    for tool in [&["strip"][..], &["objcopy"][..]] {
        let f = build(0);
        let strip = run(Command::new("strip").arg(&f.libfoo));
        assert!(strip.status.success());
        let original_needed = readelf_needed(&f.libfoo);
        let (code, _, err) = sw(&["stamp"], &f.libfoo);
        assert_eq!(code, 0, "{err}");
        let stamped = std::fs::read(&f.libfoo).unwrap();
        let (code, out, err) = sw(&["stamp"], &f.libfoo);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("already stamped"), "{out}");
        assert!(
            std::fs::read(&f.libfoo).unwrap() == stamped,
            "stamping twice wrote bytes"
        );

        let size = stamped.len() as u64;
        let o = run(Command::new(tool[0]).arg(&f.libfoo));
        assert!(o.status.success(), "{o:?}");
        assert_eq!(
            std::fs::metadata(&f.libfoo).unwrap().len(),
            size,
            "{tool:?} kept the size"
        );
        let (code, out, err) = sw(&["unwrap"], &f.libfoo);
        assert_eq!(code, 0, "{tool:?}: {err}");
        assert!(out.contains("unwrapped its names"), "{tool:?}: {out}");
        assert_eq!(readelf_needed(&f.libfoo), original_needed, "{tool:?}");
        assert_eq!(
            run(&mut Command::new(&f.prog)).status.code(),
            Some(41),
            "{tool:?}"
        );
    }
}
