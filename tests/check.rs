//! `shrinkwrap check`: passes on stamped fixtures, and fails — naming the problem — for a
//! deleted stamped library, one replaced by a library with another soname, a soname named
//! twice, a `vn_file` edited to a string no DT_NEEDED entry holds, and drift (a fresh
//! resolution that now finds another file). Unstamped files are said so (exit 0; exit 1 with
//! `--require-stamped`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{have, le_at, readelf_needed, run, run_program, s, sw, Cc, Store};

const BAR: &str = "int bar(void) { return 1; }\n";
use common::CHAIN_FOO as FOO;

struct Fixture {
    st: Store,
    prog: PathBuf,
    libfoo: PathBuf,
    libbar: PathBuf,
}

/// prog → libfoo → libbar, each library in its own store path, 32-directory RUNPATHs.
fn build() -> Fixture {
    let st = Store::new();
    let common::Chain {
        prog,
        libfoo,
        libbar,
    } = st.chain(BAR, &[]);
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

/// The NUL-terminated string at `at` in a string table.
fn cstr(table: &[u8], at: usize) -> String {
    let end = table[at..].iter().position(|&c| c == 0).unwrap();
    String::from_utf8(table[at..at + end].to_vec()).unwrap()
}

/// What the test reads of an ELF64 little-endian file the way the loader does (program
/// headers, PT_DYNAMIC, addresses through PT_LOAD), independently of shrinkwrap's reader.
struct Dynamic {
    dynstr: Vec<u8>,
    needed: Vec<String>,
    /// File offset of the first `Elf_Verneed` entry.
    verneed: usize,
}

fn read_dynamic(b: &[u8]) -> Dynamic {
    assert_eq!(
        &b[..6],
        b"\x7fELF\x02\x01",
        "an ELF64 little-endian fixture"
    );
    let (phoff, phnum) = (le_at(b, 32, 8) as usize, le_at(b, 56, 2) as usize);
    let phdrs: Vec<usize> = (0..phnum).map(|i| phoff + i * 56).collect();
    let to_offset = |addr: u64| -> usize {
        let h = *phdrs
            .iter()
            .find(|&&h| {
                let (vaddr, filesz) = (le_at(b, h + 16, 8), le_at(b, h + 32, 8));
                le_at(b, h, 4) == 1 && (vaddr..vaddr + filesz).contains(&addr)
            })
            .unwrap_or_else(|| panic!("{addr:#x} is in no PT_LOAD"));
        (addr - le_at(b, h + 16, 8) + le_at(b, h + 8, 8)) as usize
    };
    let d = *phdrs
        .iter()
        .find(|&&h| le_at(b, h, 4) == 2)
        .expect("PT_DYNAMIC");
    let entries: Vec<(u64, u64)> = (le_at(b, d + 8, 8) as usize..)
        .step_by(16)
        .map(|e| (le_at(b, e, 8), le_at(b, e + 8, 8)))
        .take_while(|&(tag, _)| tag != 0)
        .collect();
    let tag = |t: u64| entries.iter().find(|e| e.0 == t).map(|e| e.1);
    let strtab = to_offset(tag(5).expect("DT_STRTAB"));
    let dynstr = b[strtab..strtab + tag(10).expect("DT_STRSZ") as usize].to_vec();
    let needed = entries
        .iter()
        .filter(|e| e.0 == 1)
        .map(|e| cstr(&dynstr, e.1 as usize))
        .collect();
    Dynamic {
        dynstr,
        needed,
        verneed: to_offset(tag(0x6fff_fffe).expect("DT_VERNEED")),
    }
}

#[test]
fn a_vn_file_that_no_dt_needed_names_is_named() {
    let Some(f) = stamped() else { return };
    let mut b = std::fs::read(&f.prog).unwrap();
    let d = read_dynamic(&b);
    // Untouched, the stamp holds and the program runs (foo() is 41).
    let stamped_entries = d.needed.iter().filter(|n| n.starts_with('/')).count();
    assert_eq!(
        sw(&["check"], &f.prog),
        (
            0,
            format!(
                "{}: ok, {stamped_entries} stamped entries hold\n",
                s(&f.prog)
            ),
            String::new()
        )
    );
    assert_eq!(run_program(&f.prog).0, Some(41));

    // The first Elf_Verneed entry (the program's libc versions): vn_file at 4, vn_aux at 8;
    // each Elf_Vernaux has vna_name at 8, vna_next at 12.
    let vn_file = d.verneed + 4;
    let was = cstr(&d.dynstr, le_at(&b, vn_file, 4) as usize);
    assert!(d.needed.contains(&was), "{was} in {:?}", d.needed);
    let mut versions = Vec::new();
    let mut aux = d.verneed + le_at(&b, d.verneed + 8, 4) as usize;
    for _ in 0..le_at(&b, d.verneed + 2, 2) {
        versions.push(cstr(&d.dynstr, le_at(&b, aux + 8, 4) as usize));
        match le_at(&b, aux + 12, 4) {
            0 => break,
            next => aux += next as usize,
        }
    }
    assert!(!versions.is_empty());
    // Pointed at the symbol name "foo", a string of .dynstr that names no library.
    let foo = d.dynstr.windows(5).position(|w| w == b"\0foo\0").unwrap() + 1;
    assert!(!d.needed.iter().any(|n| n == "foo"), "{:?}", d.needed);
    b[vn_file..vn_file + 4].copy_from_slice(&(foo as u32).to_le_bytes());
    std::fs::write(&f.prog, &b).unwrap();

    // The loader refuses it: glibc asserts when a vn_file names no loaded object.
    let o = run(Command::new(&f.prog).env_clear());
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("ld.so"),
        "the corrupted program ran: {o:?}"
    );
    let (code, out, err) = sw(&["check"], &f.prog);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert_eq!(
        err,
        format!(
            "shrinkwrap: {}: .gnu.version_r entry 1 (for {}): vn_file \"foo\" is not one of the DT_NEEDED strings\n",
            s(&f.prog),
            versions.join(", ")
        )
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
