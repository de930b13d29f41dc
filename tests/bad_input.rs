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
    // Only a regular file's bytes are read to compare (reading a FIFO would wait forever).
    let regular = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file());
    let before = regular(path).then(|| std::fs::read(path).ok()).flatten();
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
    let after = regular(path).then(|| std::fs::read(path).ok()).flatten();
    assert_eq!(after, before, "{what}: file changed");
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

/// Not regular files: a FIFO (opening one to read would wait for a writer forever), a socket,
/// a device. Each is one line naming what it is, exit 1, and nothing hangs.
#[test]
fn fifos_sockets_and_devices_are_refused_without_waiting() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo");
    let made = run(std::process::Command::new("mkfifo").arg(&fifo));
    assert!(made.status.success(), "{made:?}");
    assert_rejected(&fifo, "FIFO", &["FIFO"]);
    let socket = tmp.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    assert_rejected(&socket, "socket", &["socket", "No such device"]);
    for command in ["tree", "stamp"] {
        let out = run(shrinkwrap().arg(command).arg("/dev/null"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(
            stderr,
            "shrinkwrap: /dev/null: is a device, not a regular file\n"
        );
    }
}

/// Counts and sizes no file can back: 2^32 − 1 program headers through extended numbering
/// (PN_XNUM), DT_STRSZ of 4 GiB, a DT_NEEDED string that is not UTF-8: refused, one line.
#[test]
fn huge_claims_and_bad_strings_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read(sample(tmp.path())).unwrap();
    let shoff = u64_at(&good, 40) as usize;
    let mut xnum = good.clone();
    xnum[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
    xnum[shoff + 44..shoff + 48].copy_from_slice(&u32::MAX.to_le_bytes());
    let p = tmp.path().join("xnum");
    std::fs::write(&p, &xnum).unwrap();
    assert_rejected(&p, "PN_XNUM", &["PN_XNUM"]);

    let dynamic = phdrs(&good).into_iter().find(|p| p.0 == 2).unwrap();
    let strsz = (0..dynamic.2 as usize / 16)
        .map(|i| dynamic.1 as usize + i * 16)
        .find(|&o| u64_at(&good, o) == 10)
        .unwrap()
        + 8;
    let mut big = good.clone();
    big[strsz..strsz + 8].copy_from_slice(&(4u64 << 30).to_le_bytes());
    let p = tmp.path().join("strsz-4g");
    std::fs::write(&p, &big).unwrap();
    assert_rejected(&p, "DT_STRSZ 4 GiB", &["DT_STRTAB"]);

    let mut bad = good.clone();
    let at = bad.windows(10).position(|w| w == b"libc.so.6\0").unwrap();
    bad[at + 3] = 0xff;
    let p = tmp.path().join("not-utf8");
    std::fs::write(&p, &bad).unwrap();
    assert_rejected(&p, "non-UTF-8 DT_NEEDED", &["not valid UTF-8"]);
}

/// Peak memory of `shrinkwrap ARGS` in KiB (the child's `ru_maxrss`), and its exit code.
/// The child is reaped by `wait4` itself (std's `wait` cannot give its resource usage).
#[allow(clippy::zombie_processes)]
fn peak_kib(args: &[&std::ffi::OsStr]) -> (i64, Option<i32>) {
    let child = shrinkwrap()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data, filled in by wait4 for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (usage.ru_maxrss, code)
}

/// A 10 GB sparse file (a program followed by a hole) and a section header past the end of
/// the file: resolved and stamped like any other, in bounded memory (under 64 MiB: nothing
/// reads the whole file), the hole kept, and the stamped program runs.
#[test]
fn a_sparse_10_gb_file_and_a_section_past_the_end_are_stamped_in_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read(sample(tmp.path())).unwrap();
    let sparse = tmp.path().join("sparse");
    std::fs::write(&sparse, &good).unwrap();
    std::fs::set_permissions(&sparse, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&sparse)
        .unwrap()
        .set_len(10 << 30)
        .unwrap();
    let mut past = good.clone();
    let shoff = u64_at(&good, 40) as usize;
    // Section 5's sh_offset far past the end of the file.
    past[shoff + 5 * 64 + 24..shoff + 5 * 64 + 32].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let past_end = tmp.path().join("section-past-end");
    std::fs::write(&past_end, &past).unwrap();
    std::fs::set_permissions(
        &past_end,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    for file in [&sparse, &past_end] {
        for command in ["tree", "stamp"] {
            let (kib, code) = peak_kib(&[command.as_ref(), file.as_os_str()]);
            assert_eq!(code, Some(0), "{command} {}", file.display());
            assert!(kib < 64 * 1024, "{command} {}: {kib} KiB", file.display());
        }
        let ran = run(&mut std::process::Command::new(file));
        assert_eq!(
            String::from_utf8_lossy(&ran.stdout),
            "hi\n",
            "{}",
            file.display()
        );
    }
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&sparse).unwrap();
    assert!(meta.len() > 10 << 30, "stamped at the end");
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "the hole is kept: {} blocks",
        meta.blocks()
    );
}

/// A tree holding a FIFO, a socket, a symlink loop, a symlink to its parent and a file name
/// that is not UTF-8: `fixup` walks past them all (bounded by `timeout`: no hang) and stamps
/// the program.
#[test]
fn fixup_walks_past_what_is_not_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("out");
    let bin = tree.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let prog = sample(&bin);
    assert!(
        run(std::process::Command::new("mkfifo").arg(bin.join("fifo")))
            .status
            .success()
    );
    assert!(
        run(std::process::Command::new("mkfifo").arg(bin.join("libfifo.so.1")))
            .status
            .success()
    );
    let _listener = std::os::unix::net::UnixListener::bind(bin.join("socket")).unwrap();
    std::os::unix::fs::symlink("loop-b", bin.join("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", bin.join("loop-b")).unwrap();
    std::os::unix::fs::symlink("..", bin.join("up")).unwrap();
    use std::os::unix::ffi::OsStrExt;
    std::fs::write(
        bin.join(std::ffi::OsStr::from_bytes(b"caf\xe9")),
        b"not ELF",
    )
    .unwrap();
    let out = run(std::process::Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_shrinkwrap"))
        .arg("fixup")
        .arg(&tree));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stamped 1 file"), "{stderr}");
    let ran = run(&mut std::process::Command::new(&prog));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "hi\n");
}

/// As a user who cannot read them (as root: `nobody`, through setpriv): an unreadable file is
/// one line and exit 1 for `tree`; in a `fixup` tree it is skipped as "unreadable" and
/// counted; an unreadable directory stops `fixup` before anything is written (the walk must
/// see the whole tree before planning), one line naming it, exit 1.
#[test]
fn unreadable_files_and_directories() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root && !common::have("setpriv") {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("shrinkwrap-unreadable-")
        .tempdir()
        .unwrap();
    let tree = tmp.path().join("out");
    let (bin, locked) = (tree.join("bin"), tree.join("locked"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&locked).unwrap();
    let ok = sample(&bin);
    let secret = bin.join("secret");
    std::fs::copy(&ok, &secret).unwrap();
    let as_user = |args: &[&std::ffi::OsStr]| {
        let mut c = if root {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_shrinkwrap"));
            c
        } else {
            shrinkwrap()
        };
        run(c.args(args))
    };
    if root {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let o = run(std::process::Command::new("chown")
            .arg("-R")
            .arg("65534:65534")
            .arg(&tree));
        assert!(o.status.success(), "{o:?}");
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let o = as_user(&["tree".as_ref(), secret.as_os_str()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "shrinkwrap: {}: Permission denied (os error 13)\n",
            secret.display()
        )
    );

    let o = as_user(&["fixup".as_ref(), tree.as_os_str()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("1 skipped: 1 unreadable"), "{stderr}");

    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    // A fresh, unstamped program (`ok` was stamped by the run above).
    let unstamped = sample(&tree.join("fresh"));
    if root {
        let o = run(std::process::Command::new("chown")
            .arg("65534:65534")
            .arg(&unstamped));
        assert!(o.status.success());
    }
    let again = std::fs::read(&unstamped).unwrap();
    let o = as_user(&["fixup".as_ref(), tree.as_os_str()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "shrinkwrap: {}: Permission denied (os error 13)\n",
            locked.display()
        )
    );
    assert_eq!(std::fs::read(&unstamped).unwrap(), again, "nothing written");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
}
