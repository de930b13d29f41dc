//! `stamp --set-interpreter PATH` (`write::stamp_file_to` with a new interpreter): a program
//! built with plain `cc` (PT_INTERP `/lib64/ld-linux-x86-64.so.2`) that needs a small library
//! is given this machine's loader and libc copied into a store-like `<store>/<hash>-glibc/lib`,
//! in the same stamp that writes its DT_NEEDED list. It then names that loader in PT_INTERP and
//! `.interp`, runs, and its own `/proc/self/maps` shows the loader mapped from the store (not
//! the system's); the loader lists the same libraries in the same order, libc now from the
//! store. Stamping again writes nothing; another interpreter restamps it exactly as a fresh
//! stamp of the original would; a stamp without the flag gives it back its original
//! interpreter; `unwrap` gives back the original bytes; strip keeps it running. A library is
//! refused, untouched; naming the current interpreter is no change. x86_64 PIE and non-PIE
//! (also one the shifted layout takes for a plain stamp: it declines a new interpreter, which
//! is written in place), and i686 under qemu.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have, ld_so_list, run, s, section_size, sw, Cc, Store, LOADER};

/// Prints the file behind every mapping of a dynamic loader, then returns `small()`'s 7.
const APP: &str = r#"#include <stdio.h>
#include <string.h>
int small(void);
int main(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    while (f && fgets(line, sizeof line, f)) {
        char *path = strchr(line, '/');
        if (path && strstr(path, "/ld-linux")) fputs(path, stdout);
    }
    return small();
}
"#;
const SMALL: &str = "int small(void) { return 7; }\n";

struct Arch {
    gcc: &'static str,
    /// The system loader and libc to copy into the store (symlinks resolved).
    loader: PathBuf,
    libc: PathBuf,
    /// qemu-user and its `-L` prefix, for a program this host does not run natively.
    qemu: Option<(&'static str, &'static str)>,
    /// Where a stamp without a new interpreter finds libc (`--search`): the cross toolchain's
    /// directory, the original's own loader not being on this host.
    libc_dir: Option<&'static str>,
}

fn x86_64() -> Option<Arch> {
    if !have("cc") || !common::have_loader() {
        return None;
    }
    Some(Arch {
        gcc: "cc",
        loader: std::fs::canonicalize(LOADER).unwrap(),
        libc: std::fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6").unwrap(),
        qemu: None,
        libc_dir: None,
    })
}

fn i686() -> Option<Arch> {
    if !have("i686-linux-gnu-gcc") || !have("qemu-i386") {
        return None;
    }
    let lib = Path::new("/usr/i686-linux-gnu/lib");
    Some(Arch {
        gcc: "i686-linux-gnu-gcc",
        loader: lib.join("ld-linux.so.2"),
        libc: lib.join("libc.so.6"),
        qemu: Some(("qemu-i386", "/usr/i686-linux-gnu")),
        libc_dir: Some("/usr/i686-linux-gnu/lib"),
    })
}

struct Fixture {
    st: Store,
    /// The program as built, and the library it needs.
    app: PathBuf,
    libsmall: PathBuf,
    /// Two glibc copies: `<store>/<hash>-<name>/lib`, each with the loader and libc.
    glibc: [PathBuf; 2],
    loader_name: String,
    libc_dir: Option<&'static str>,
}

impl Fixture {
    /// The loader in the `i`th glibc copy: the new interpreter.
    fn interp(&self, i: usize) -> String {
        s(&self.glibc[i].join(&self.loader_name))
    }

    /// `shrinkwrap stamp` on `file` against the fake store, with `--set-interpreter` the
    /// `i`th copy's loader (and its directory searched, as a Nix glibc's RUNPATH would be).
    fn stamp(&self, file: &Path, i: Option<usize>) -> (i32, String, String) {
        let store = s(&self.st.store);
        let mut args = vec!["stamp".to_string(), "--store-dir".into(), store];
        match i {
            Some(i) => args.extend([
                "--set-interpreter".into(),
                self.interp(i),
                "--search".into(),
                s(&self.glibc[i]),
            ]),
            None => args.extend(self.libc_dir.map(|d| format!("--search={d}"))),
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sw(&args, file)
    }

    /// A copy of the program as built, beside it.
    fn copy(&self, name: &str) -> PathBuf {
        let to = self.app.with_file_name(name);
        std::fs::copy(&self.app, &to).unwrap();
        to
    }
}

fn build(a: &Arch, src: &str, extra: &[&str]) -> Fixture {
    let st = Store::new();
    let loader_name = a.loader.file_name().unwrap().to_string_lossy().into_owned();
    let glibc = ["glibc", "glibc-other"].map(|name| {
        let dir = st.lib_dir(name);
        std::fs::copy(&a.loader, dir.join(&loader_name)).unwrap();
        std::fs::copy(&a.libc, dir.join("libc.so.6")).unwrap();
        dir
    });
    let small_dir = st.lib_dir("small");
    let libsmall = Cc::new(a.gcc, SMALL, small_dir.join("libsmall.so.1"))
        .shared(Some("libsmall.so.1"))
        .build();
    let mut cc = Cc::new(a.gcc, src, st.package("app").join("bin/app"))
        .runpath(&s(&small_dir))
        .link(&libsmall);
    for e in extra {
        cc = cc.arg(e);
    }
    let app = cc.build();
    Fixture {
        st,
        app,
        libsmall,
        glibc,
        loader_name,
        libc_dir: a.libc_dir,
    }
}

/// Runs `prog` (natively or under qemu) with an empty environment: exit code, and the files
/// its loader was mapped from.
fn run_prog(a: &Arch, prog: &Path) -> (Option<i32>, Vec<String>) {
    let mut cmd = match a.qemu {
        None => Command::new(prog),
        Some((qemu, prefix)) => {
            let mut c = Command::new(qemu);
            c.arg("-L").arg(prefix).arg(prog);
            c
        }
    };
    let out = run(cmd.env_clear());
    let mut mapped: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    mapped.dedup();
    (out.status.code(), mapped)
}

/// PT_INTERP as `readelf -l` reports it.
fn readelf_interp(file: &Path) -> String {
    let out = run(Command::new("readelf").arg("-lW").arg(file));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("[Requesting program interpreter: "))
        .and_then(|l| l.strip_suffix(']'))
        .unwrap_or_else(|| panic!("no PT_INTERP in {}:\n{text}", file.display()))
        .to_string()
}

/// The file names of `paths`, in order.
fn names(paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.rsplit('/').next().unwrap().to_string())
        .collect()
}

/// Everything the module documentation promises, for one architecture and link shape.
fn check(a: &Arch, src: &str, extra: &[&str]) {
    let f = build(a, src, extra);
    let what = format!("{} {extra:?}", a.gcc);
    let original = std::fs::read(&f.app).unwrap();
    let original_interp = readelf_interp(&f.app);
    assert_ne!(original_interp, f.interp(0), "{what}");
    let (code, mapped) = run_prog(a, &f.app);
    assert_eq!(code, Some(7), "{what}: the program as built");
    assert!(
        !mapped.is_empty() && !mapped.contains(&f.interp(0)),
        "{what}: as built, the loader is mapped from {mapped:?}"
    );
    let listed_before = (a.qemu.is_none()).then(|| ld_so_list(LOADER, &f.app).unwrap());

    // Stamped with the store's loader: PT_INTERP and `.interp` name it, and it is the loader
    // the program runs under.
    let (code, out, err) = f.stamp(&f.app, Some(0));
    assert_eq!(code, 0, "{what}: {out}{err}");
    assert!(
        out.contains(&format!("interpreter {}", f.interp(0))),
        "{what}: {out}"
    );
    assert_eq!(readelf_interp(&f.app), f.interp(0), "{what}");
    assert_eq!(
        section_size(&f.app, ".interp"),
        f.interp(0).len() as u64 + 1,
        "{what}: the .interp section header"
    );
    let (code, mapped) = run_prog(a, &f.app);
    assert_eq!(code, Some(7), "{what}: stamped");
    assert_eq!(mapped, vec![f.interp(0)], "{what}: the loader mapped");
    let needed = common::readelf_needed(&f.app);
    assert!(
        needed.contains(&s(&f.glibc[0].join("libc.so.6"))) && needed.contains(&f.interp(0)),
        "{what}: libc and the loader come from the store copy: {needed:?}"
    );
    if let Some(before) = &listed_before {
        // Same libraries in the same order, libc and the loader now the store's.
        let after = ld_so_list(&f.interp(0), &f.app).unwrap();
        assert_eq!(names(&after.paths), names(&before.paths), "{what}");
        assert!(after.missing.is_empty(), "{what}: {after:?}");
        assert!(
            after
                .paths
                .iter()
                .filter(|p| p.contains("libc.so") || p.contains("ld-linux"))
                .all(|p| p.starts_with(&s(&f.glibc[0]))),
            "{what}: {after:?}"
        );
    }

    // Again with the same target: nothing written.
    let stamped = std::fs::read(&f.app).unwrap();
    let (code, out, err) = f.stamp(&f.app, Some(0));
    assert_eq!(code, 0, "{what}: {err}");
    assert!(out.contains("already stamped, unchanged"), "{what}: {out}");
    assert_eq!(
        std::fs::read(&f.app).unwrap(),
        stamped,
        "{what}: second run"
    );

    // Another interpreter: the original restamped, as a fresh stamp of it gives.
    let (code, _, err) = f.stamp(&f.app, Some(1));
    assert_eq!(code, 0, "{what}: {err}");
    assert_eq!(readelf_interp(&f.app), f.interp(1), "{what}");
    let (code, mapped) = run_prog(a, &f.app);
    assert_eq!(
        (code, mapped),
        (Some(7), vec![f.interp(1)]),
        "{what}: restamped"
    );
    let fresh = f.copy("fresh");
    let (code, _, err) = f.stamp(&fresh, Some(1));
    assert_eq!(code, 0, "{what}: {err}");
    assert_eq!(
        std::fs::read(&f.app).unwrap(),
        std::fs::read(&fresh).unwrap(),
        "{what}: a restamp gives the bytes of one stamp of the original"
    );

    // Without --set-interpreter: the original's interpreter, as a plain stamp of it has.
    let (code, _, err) = f.stamp(&f.app, None);
    assert_eq!(code, 0, "{what}: {err}");
    assert_eq!(readelf_interp(&f.app), original_interp, "{what}");
    let plain = f.copy("plain");
    let (code, _, err) = f.stamp(&plain, None);
    assert_eq!(code, 0, "{what}: {err}");
    assert_eq!(
        std::fs::read(&f.app).unwrap(),
        std::fs::read(&plain).unwrap(),
        "{what}: a stamp without the flag"
    );

    // Unwrap: the original bytes, its interpreter included.
    let (code, _, err) = f.stamp(&f.app, Some(0));
    assert_eq!(code, 0, "{what}: {err}");
    let (code, _, err) = sw(&["unwrap"], &f.app);
    assert_eq!(code, 0, "{what}: {err}");
    assert!(
        std::fs::read(&f.app).unwrap() == original,
        "{what}: unwrap gives back the original"
    );

    // strip keeps the new interpreter, and the program running under it.
    let stripped = f.copy("stripped");
    let (code, _, err) = f.stamp(&stripped, Some(0));
    assert_eq!(code, 0, "{what}: {err}");
    let strip = match a.qemu {
        None => "strip",
        Some(_) => "i686-linux-gnu-strip",
    };
    if have(strip) {
        let o = run(Command::new(strip).arg(&stripped));
        assert!(o.status.success(), "{what}: {o:?}");
        assert_eq!(readelf_interp(&stripped), f.interp(0), "{what}: stripped");
        assert_eq!(
            run_prog(a, &stripped),
            (Some(7), vec![f.interp(0)]),
            "{what}: stripped"
        );
    }

    // A library has no PT_INTERP to set: refused in one line, untouched.
    let lib_before = std::fs::read(&f.libsmall).unwrap();
    let (code, out, err) = f.stamp(&f.libsmall, Some(0));
    assert_eq!(code, 1, "{what}: {out}{err}");
    assert_eq!(err.lines().count(), 1, "{what}: {err}");
    assert!(
        err.contains(&s(&f.libsmall)) && err.contains("no PT_INTERP"),
        "{what}: {err}"
    );
    assert_eq!(std::fs::read(&f.libsmall).unwrap(), lib_before, "{what}");
}

#[test]
fn x86_64_pie_program_gets_the_store_interpreter() {
    if let Some(a) = x86_64() {
        check(&a, APP, &["-pie"]);
    }
}

#[test]
fn x86_64_non_pie_program_gets_the_store_interpreter() {
    if let Some(a) = x86_64() {
        check(&a, APP, &["-no-pie"]);
    }
}

/// A non-PIE program with a `.dynstr` far larger than a page: a plain stamp shifts it (checked
/// here), a stamp with a new interpreter is written in place instead, and every promise holds.
#[test]
fn x86_64_program_the_shifted_layout_would_take_gets_the_store_interpreter() {
    let Some(a) = x86_64() else { return };
    let src = common::exporting(APP);
    let extra = ["-no-pie", "-rdynamic"];
    let f = build(&a, &src, &extra);
    let load_before = common::first_load(&f.app).0;
    let (code, _, err) = f.stamp(&f.app, None);
    assert_eq!(code, 0, "{err}");
    assert!(
        common::first_load(&f.app).0 < load_before,
        "a plain stamp of this program is not the shifted layout"
    );
    check(&a, &src, &extra);
}

/// `--set-interpreter` naming the interpreter the file has already: a plain stamp, byte for
/// byte.
#[test]
fn the_current_interpreter_is_no_change() {
    let Some(a) = x86_64() else { return };
    let f = build(&a, APP, &[]);
    let plain = f.copy("plain");
    let (code, _, err) = f.stamp(&plain, None);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = sw(&["stamp", "--set-interpreter", LOADER], &f.app);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(readelf_interp(&f.app), LOADER);
    assert_eq!(
        std::fs::read(&f.app).unwrap(),
        std::fs::read(&plain).unwrap()
    );
}

#[test]
fn i686_program_gets_the_store_interpreter() {
    if let Some(a) = i686() {
        check(&a, APP, &[]);
    }
}

#[test]
fn bad_interpreters_are_usage_errors() {
    let Some(a) = x86_64() else { return };
    let f = build(&a, APP, &[]);
    let before = std::fs::read(&f.app).unwrap();
    let libc = s(&f.glibc[0].join("libc.so.6"));
    for (args, says) in [
        (vec!["--set-interpreter", "lib/ld.so"], "absolute"),
        (vec!["--set-interpreter", &libc], "not a dynamic loader"),
        (
            vec!["--set-interpreter", LOADER, "--interpreter", &f.interp(0)],
            "disagree",
        ),
    ] {
        let mut all = vec!["stamp"];
        all.extend(&args);
        let (code, out, err) = sw(&all, &f.app);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(
            err.lines().count() == 1 && err.contains(says),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read(&f.app).unwrap(), before, "{args:?}");
    }
}
