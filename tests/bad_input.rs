//! Bad input never panics: each case gives one line on stderr naming the file and the
//! reason, exit code 1, and the file untouched.

mod common;

use std::path::{Path, PathBuf};

use common::{run, shrinkwrap, Cc};

/// A small dynamically linked x86_64 program, compiled for the test.
fn sample(dir: &Path) -> PathBuf {
    Cc::new(
        "cc",
        "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n",
        dir.join("sample"),
    )
    .build()
}

fn u16_at(b: &[u8], o: usize) -> u64 {
    u64::from(u16::from_le_bytes(b[o..o + 2].try_into().unwrap()))
}
fn u32_at(b: &[u8], o: usize) -> u64 {
    u64::from(u32::from_le_bytes(b[o..o + 4].try_into().unwrap()))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Program headers of an ELF64 little-endian file: (type, offset, filesz, file offset of the
/// header itself).
fn phdrs(b: &[u8]) -> Vec<(u64, u64, u64, usize)> {
    let (phoff, phnum) = (u64_at(b, 32) as usize, u16_at(b, 56) as usize);
    (0..phnum)
        .map(|i| {
            let h = phoff + i * 56;
            (u32_at(b, h), u64_at(b, h + 8), u64_at(b, h + 32), h)
        })
        .collect()
}

/// Runs `shrinkwrap tree` and `shrinkwrap stamp` on `path` and checks the failure contract
/// for both; each message must name one of `wants` (case aside).
fn assert_rejected(path: &Path, what: &str, wants: &[&str]) {
    for command in ["tree", "stamp"] {
        let line = rejected_by(path, command, what).to_lowercase();
        assert!(
            wants.iter().any(|w| line.contains(&w.to_lowercase())),
            "{command} {what}: want one of {wants:?} in {line:?}"
        );
    }
}

fn rejected_by(path: &Path, command: &str, what: &str) -> String {
    let what = format!("{command} {what}");
    let before = std::fs::read(path).ok();
    let out = run(shrinkwrap().arg(command).arg(path));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: exit code; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what}: panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: want one line, got {stderr:?}");
    assert!(
        lines[0].starts_with(&format!("shrinkwrap: {}: ", path.display())),
        "{what}: the message must name the file: {stderr:?}"
    );
    assert_eq!(std::fs::read(path).ok(), before, "{what}: file changed");
    lines[0].to_string()
}

#[test]
fn not_elf_empty_and_missing_files() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[u8], &str)] = &[
        ("empty", b"", "not an ELF file"),
        ("text", b"#!/bin/sh\necho hi\n", "not an ELF file"),
        ("short-magic", b"\x7fEL", "not an ELF file"),
        (
            "wrong-magic",
            b"\x7fELG\x02\x01\x01\0\0\0\0\0\0\0\0\0",
            "not an ELF file",
        ),
        (
            "ident-only",
            b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0",
            "truncated",
        ),
        (
            "bad-class",
            b"\x7fELF\x07\x01\x01\0\0\0\0\0\0\0\0\0",
            "unknown ELF class",
        ),
    ];
    for (name, bytes, reason) in cases {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        assert_rejected(&p, name, &[reason]);
    }
    assert_rejected(
        &tmp.path().join("does-not-exist"),
        "missing file",
        &["No such file"],
    );
    assert_rejected(tmp.path(), "directory", &["directory"]);
}

#[test]
fn truncated_at_every_header_boundary() {
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read(sample(tmp.path())).unwrap();
    // The intact file is accepted: the cuts below are what make it fail.
    let intact = tmp.path().join("intact");
    std::fs::write(&intact, &good).unwrap();
    assert!(run(shrinkwrap().arg("tree").arg(&intact)).status.success());

    let mut cuts: Vec<u64> = vec![1, 4, 5, 16, 17, 40, 63, 64];
    let phoff = u64_at(&good, 32);
    for (i, (_, off, filesz, _)) in phdrs(&good).into_iter().enumerate() {
        cuts.extend([phoff + i as u64 * 56, phoff + i as u64 * 56 + 30]);
        if filesz > 0 {
            cuts.extend([off + 1, off + filesz / 2, off + filesz - 1]);
        }
    }
    let (shoff, shnum) = (u64_at(&good, 40), u16_at(&good, 60));
    cuts.extend([shoff, shoff + 1, shoff + shnum * 64 - 1]);
    cuts.sort();
    cuts.dedup();
    cuts.retain(|&c| c > 0 && c < good.len() as u64);
    assert!(cuts.len() > 20);
    for cut in cuts {
        let p = tmp.path().join(format!("cut-{cut}"));
        std::fs::write(&p, &good[..cut as usize]).unwrap();
        assert_rejected(
            &p,
            &format!("cut at {cut}"),
            &["truncated", "not an ELF file"],
        );
    }
}

#[test]
fn absurd_counts_and_offsets() {
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read(sample(tmp.path())).unwrap();
    let dynamic = phdrs(&good)
        .into_iter()
        .find(|p| p.0 == 2)
        .expect("PT_DYNAMIC");
    // Offset of the value of the first dynamic entry with this tag.
    let dyn_val = |tag: u64| -> usize {
        let start = dynamic.1 as usize;
        (0..dynamic.2 as usize / 16)
            .map(|i| start + i * 16)
            .find(|&o| u64_at(&good, o) == tag)
            .map(|o| o + 8)
            .unwrap_or_else(|| panic!("no dynamic tag {tag:#x}"))
    };
    let cases: Vec<(&str, usize, Vec<u8>, &str)> = vec![
        (
            "phnum",
            56,
            0xfff0u16.to_le_bytes().to_vec(),
            "program header table",
        ),
        ("phentsize", 54, 12u16.to_le_bytes().to_vec(), "entry size"),
        (
            "phoff",
            32,
            (1u64 << 62).to_le_bytes().to_vec(),
            "program header table",
        ),
        (
            "shnum",
            60,
            0xffffu16.to_le_bytes().to_vec(),
            "section header table",
        ),
        (
            "dynamic-size",
            dynamic.3 + 32,
            (1u64 << 40).to_le_bytes().to_vec(),
            "truncated",
        ),
        (
            "dynamic-offset",
            dynamic.3 + 8,
            u64::MAX.to_le_bytes().to_vec(),
            "PT_DYNAMIC",
        ),
        (
            "strsz",
            dyn_val(10),
            (1u64 << 40).to_le_bytes().to_vec(),
            "DT_STRTAB",
        ),
        (
            "strtab",
            dyn_val(5),
            (1u64 << 50).to_le_bytes().to_vec(),
            "DT_STRTAB",
        ),
        (
            "needed",
            dyn_val(1),
            (1u64 << 32).to_le_bytes().to_vec(),
            "DT_NEEDED",
        ),
        (
            "note-size",
            phdrs(&good).iter().find(|p| p.0 == 4).expect("PT_NOTE").3 + 32,
            (0x5e_0000_0020u64).to_le_bytes().to_vec(),
            "truncated",
        ),
        (
            "verneed",
            dyn_val(0x6fff_fffe),
            (1u64 << 50).to_le_bytes().to_vec(),
            "DT_VERNEED",
        ),
    ];
    for (name, at, bytes, reason) in cases {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(&bytes);
        let p = tmp.path().join(name);
        std::fs::write(&p, &b).unwrap();
        assert_rejected(&p, name, &[reason]);
    }
}

#[test]
fn files_that_are_not_dynamic_are_not_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let obj = Cc::new("cc", "int f(void) { return 0; }\n", tmp.path().join("f.o"))
        .arg("-c")
        .build();
    let stat = Cc::new(
        "cc",
        "int main(void) { return 0; }\n",
        tmp.path().join("static"),
    )
    .arg("-static")
    .build();
    let debug = tmp.path().join("sample.debug");
    let objcopy = run(std::process::Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(sample(tmp.path()))
        .arg(&debug));
    assert!(objcopy.status.success());
    for (file, kind) in [
        (&obj, "relocatable"),
        (&stat, "static"),
        (&debug, "debug-file"),
    ] {
        let out = run(shrinkwrap().arg("tree").arg(file));
        assert_eq!(out.status.code(), Some(0), "{kind}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("{kind}, not dynamically linked")),
            "{kind}: {text}"
        );
    }
}

#[test]
fn one_bad_file_does_not_stop_fixup() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("out");
    std::fs::create_dir(&tree).unwrap();
    let good = sample(&tree);
    let mut b = std::fs::read(&good).unwrap();
    let note = phdrs(&b).into_iter().find(|p| p.0 == 4).expect("PT_NOTE");
    b[note.3 + 32..note.3 + 40].copy_from_slice(&0x5e_0000_0020u64.to_le_bytes());
    let bad = tree.join("bad");
    std::fs::write(&bad, &b).unwrap();
    let good_before = std::fs::read(&good).unwrap();
    let out = run(shrinkwrap().args(["fixup", "--quiet"]).arg(&tree));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(&format!("shrinkwrap: {}: truncated", bad.display())),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&bad).unwrap(), b, "the bad file changed");
    assert_ne!(
        std::fs::read(&good).unwrap(),
        good_before,
        "the good file was not stamped"
    );
}
