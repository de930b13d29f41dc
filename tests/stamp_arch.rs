//! Other architectures, stamped and run: for i686 and aarch64, a program needing libmid (which
//! needs libbase) is built into a fake store with wide RUNPATHs, run under qemu-user, stamped
//! with `--search` pointing at the cross toolchain's libc, and run again: same output, same
//! exit code, every DT_NEEDED absolute, libbase lifted, and the loader listed under its
//! PT_INTERP name only. Stripped by the toolchain's `strip` and unwrapped, it has the
//! original's DT_NEEDED and `vn_file` names again, resolves and runs as before.
//!
//! Each architecture is built twice: with its PT_INTERP inside the cross toolchain's directory
//! (a loader that exists on this host, as a Nix store glibc does), and with the toolchain's
//! default PT_INTERP (`/lib/ld-linux….so.*`), which does not exist on an x86_64 host and
//! which only qemu's `-L` prefix supplies at run time.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    all_absolute, exporting, first_load, have, paths, run, s, section_size, stamp, sw, tree_json,
    Cc, Store,
};
use serde_json::Value;

const BASE: &str = "int base(void) { return 40; }\n";
const MID: &str = "int base(void);\nint mid(void) { return base() + 2; }\n";
const APP: &str =
    "#include <stdio.h>\nint mid(void);\nint main(void) { printf(\"%d\\n\", mid()); return 0; }\n";

struct Arch {
    gcc: &'static str,
    qemu: &'static str,
    /// The cross toolchain's root: qemu's `-L` prefix; its libc is in `lib/` below it.
    sysroot: &'static str,
    /// The loader's file name (and soname).
    loader: &'static str,
    machine: &'static str,
}

const I686: Arch = Arch {
    gcc: "i686-linux-gnu-gcc",
    qemu: "qemu-i386",
    sysroot: "/usr/i686-linux-gnu",
    loader: "ld-linux.so.2",
    machine: "i386",
};

const AARCH64: Arch = Arch {
    gcc: "aarch64-linux-gnu-gcc",
    qemu: "qemu-aarch64",
    sysroot: "/usr/aarch64-linux-gnu",
    loader: "ld-linux-aarch64.so.1",
    machine: "aarch64",
};

/// Big-endian, 32-bit.
const POWERPC: Arch = Arch {
    gcc: "powerpc-linux-gnu-gcc",
    qemu: "qemu-ppc",
    sysroot: "/usr/powerpc-linux-gnu",
    loader: "ld.so.1",
    machine: "powerpc",
};

/// Big-endian, 64-bit.
const S390X: Arch = Arch {
    gcc: "s390x-linux-gnu-gcc",
    qemu: "qemu-s390x",
    sysroot: "/usr/s390x-linux-gnu",
    loader: "ld64.so.1",
    machine: "s390",
};

/// How the program is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// The toolchain's default (PIE where it defaults to it): stamped in place.
    Default,
    /// Non-PIE, exporting thousands of long names: stamped by the shifted layout (whole pages
    /// inserted after `.dynstr`, so the file grows by less than that table).
    NonPieExporting,
}

/// Where the program's PT_INTERP points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Interp {
    /// `<sysroot>/lib/<loader>`: a file on this host.
    InSysroot,
    /// The toolchain's default, `/lib/<loader>`: absent on this host.
    Default,
}

/// Runs `program` under qemu-user with the cross sysroot as prefix; (exit code, stdout,
/// stderr). The environment is emptied, so no `LD_LIBRARY_PATH` (or `QEMU_*`) leaks in.
fn run_under_qemu(a: &Arch, program: &Path) -> (Option<i32>, String, String) {
    let out = run(Command::new(a.qemu)
        .env_clear()
        .arg("-L")
        .arg(a.sysroot)
        .arg(program));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

struct Built {
    _st: Store,
    store_dir: String,
    libbase: PathBuf,
    libmid: PathBuf,
    app: PathBuf,
}

fn build(a: &Arch, interp: Interp, shape: Shape) -> Built {
    let st = Store::new();
    let base_dir = st.lib_dir("base");
    let mid_dir = st.lib_dir("mid");
    let libbase = Cc::new(a.gcc, BASE, base_dir.join("libbase.so.1"))
        .shared(Some("libbase.so.1"))
        .runpath(&st.runpath(&[]))
        .build();
    let libmid = Cc::new(a.gcc, MID, mid_dir.join("libmid.so.1"))
        .shared(Some("libmid.so.1"))
        .runpath(&st.runpath(&[&s(&base_dir)]))
        .link(&libbase)
        .build();
    let source = match shape {
        Shape::Default => APP.to_string(),
        Shape::NonPieExporting => exporting(APP),
    };
    let mut app = Cc::new(a.gcc, &source, st.package("app").join("bin/app"))
        .runpath(&st.runpath(&[&s(&mid_dir)]))
        .link(&libmid)
        .arg(format!("-Wl,-rpath-link,{}", s(&base_dir)));
    if shape == Shape::NonPieExporting {
        app = app.arg("-no-pie").arg("-rdynamic");
    }
    if interp == Interp::InSysroot {
        app = app.arg(format!(
            "-Wl,--dynamic-linker={}/lib/{}",
            a.sysroot, a.loader
        ));
    }
    let app = app.build();
    Built {
        store_dir: s(&st.store),
        _st: st,
        libbase,
        libmid,
        app,
    }
}

fn stamp_and_run(a: &Arch, interp: Interp, shape: Shape) {
    if !have(a.gcc) || !have(a.qemu) || !have("readelf") {
        return;
    }
    let b = build(a, interp, shape);
    let app = &b.app;
    let sysroot_lib = format!("{}/lib", a.sysroot);
    let args = ["--store-dir", &b.store_dir, "--search", &sysroot_lib];
    let what = format!("{} ({interp:?} PT_INTERP, {shape:?})", a.machine);
    let size = std::fs::metadata(app).unwrap().len();
    let (dynstr, base) = (section_size(app, ".dynstr"), first_load(app).0);

    let before = tree_json(&[app], &args, 0)["files"][0].clone();
    let pt_interp = before["interpreter"].as_str().unwrap().to_string();
    match interp {
        Interp::InSysroot => assert_eq!(pt_interp, format!("{sysroot_lib}/{}", a.loader)),
        Interp::Default => assert_eq!(pt_interp, format!("/lib/{}", a.loader)),
    }
    assert_eq!(before["machine"], a.machine, "{what}: {before:#}");
    assert_eq!(
        strings(&before["needed"]),
        ["libmid.so.1", "libc.so.6"],
        "{what}"
    );
    assert!(
        before["missing"].as_array().unwrap().is_empty(),
        "{what}: {before:#}"
    );
    let ran_before = run_under_qemu(a, app);
    assert_eq!(
        (ran_before.0, ran_before.1.as_str()),
        (Some(0), "42\n"),
        "{what}: the unstamped program under {}: {}",
        a.qemu,
        ran_before.2
    );

    let (code, out, err) = stamp(app, &args);
    assert_eq!(code, 0, "{what}: stamp: {out} {err}");
    assert!(out.contains("stamped"), "{what}: {out}");
    let growth = std::fs::metadata(app).unwrap().len() - size;
    if shape == Shape::NonPieExporting {
        assert!(
            growth < dynstr && first_load(app).0 == base - growth,
            "{what}: grew by {growth} (.dynstr is {dynstr}), first segment at {:#x} (was {base:#x}): not shifted",
            first_load(app).0
        );
    }

    let after = tree_json(&[app], &args, 0)["files"][0].clone();
    let needed = strings(&after["needed"]);
    println!("{what}: stamped DT_NEEDED {needed:?}");

    // It runs as before: same output, same exit code, nothing on stderr.
    let ran_after = run_under_qemu(a, app);
    assert_eq!(
        ran_after, ran_before,
        "{what}: the stamped program behaves differently under {} (DT_NEEDED {needed:?})",
        a.qemu
    );

    assert!(
        all_absolute(&needed),
        "{what}: not all absolute: {needed:?}"
    );
    assert_eq!(needed[0], s(&b.libmid), "{what}");
    assert!(
        needed.contains(&s(&b.libbase)),
        "{what}: libbase not lifted: {needed:?}"
    );
    assert!(
        needed.contains(&format!("{sysroot_lib}/libc.so.6")),
        "{what}: libc is not the cross toolchain's: {needed:?}"
    );
    // The loader is already mapped under its PT_INTERP name: any other path for it is a
    // second copy of ld.so.
    let loaders: Vec<&String> = needed
        .iter()
        .filter(|n| n.rsplit('/').next() == Some(a.loader))
        .collect();
    assert_eq!(
        loaders,
        [&pt_interp],
        "{what}: the loader must be listed once, by its PT_INTERP {pt_interp}: {needed:?}"
    );
    let loader_lib = before["libraries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == a.loader)
        .unwrap_or_else(|| panic!("{what}: no {} in {before:#}", a.loader));
    assert_eq!(loader_lib["via"], "interpreter", "{what}: {loader_lib}");
    assert_eq!(paths(&after), paths(&before), "{what}: the closure changed");

    // Stamping again is a no-op.
    let once = std::fs::read(app).unwrap();
    let (code, out, err) = stamp(app, &args);
    assert_eq!(code, 0, "{what}: {err}");
    assert!(out.contains("unchanged"), "{what}: {out}");
    assert!(std::fs::read(app).unwrap() == once, "{what}: restamp wrote");

    // Stripped by the toolchain's own strip, then unwrapped: the original's names come back
    // (this class and byte order, this layout), and it runs as before.
    let strip = a.gcc.replace("-gcc", "-strip");
    if have(&strip) {
        // The stamp renamed libc in `vn_file` too: there is something to put back.
        assert_ne!(
            after["version_needs"], before["version_needs"],
            "{what}: vn_file not stamped"
        );
        let o = run(Command::new(&strip).arg(app));
        assert!(o.status.success(), "{what}: {strip}: {o:?}");
        let (code, out, err) = sw(&["unwrap"], app);
        assert_eq!(code, 0, "{what}: unwrap after {strip}: {out} {err}");
        assert!(out.contains("unwrapped its names"), "{what}: {out}");
        let unwrapped = tree_json(&[app], &args, 0)["files"][0].clone();
        assert_eq!(unwrapped["needed"], before["needed"], "{what}: after strip");
        assert_eq!(
            unwrapped["version_needs"], before["version_needs"],
            "{what}: after strip"
        );
        assert_eq!(paths(&unwrapped), paths(&before), "{what}: after strip");
        assert_eq!(run_under_qemu(a, app), ran_before, "{what}: after strip");
    }
}

#[test]
fn i686_program_stamps_and_runs() {
    stamp_and_run(&I686, Interp::InSysroot, Shape::Default);
}

#[test]
fn aarch64_program_stamps_and_runs() {
    stamp_and_run(&AARCH64, Interp::InSysroot, Shape::Default);
}

#[test]
fn i686_program_with_absent_interpreter_stamps_and_runs() {
    stamp_and_run(&I686, Interp::Default, Shape::Default);
}

#[test]
fn aarch64_program_with_absent_interpreter_stamps_and_runs() {
    stamp_and_run(&AARCH64, Interp::Default, Shape::Default);
}

#[test]
fn big_endian_powerpc_program_stamps_and_runs() {
    stamp_and_run(&POWERPC, Interp::InSysroot, Shape::Default);
}

#[test]
fn big_endian_s390x_program_stamps_and_runs() {
    stamp_and_run(&S390X, Interp::InSysroot, Shape::Default);
}

#[test]
fn i686_non_pie_program_is_shifted_and_runs() {
    stamp_and_run(&I686, Interp::InSysroot, Shape::NonPieExporting);
}

#[test]
fn aarch64_non_pie_program_is_shifted_and_runs() {
    stamp_and_run(&AARCH64, Interp::InSysroot, Shape::NonPieExporting);
}

#[test]
fn big_endian_powerpc_non_pie_program_is_shifted_and_runs() {
    stamp_and_run(&POWERPC, Interp::InSysroot, Shape::NonPieExporting);
}

#[test]
fn big_endian_s390x_non_pie_program_is_shifted_and_runs() {
    stamp_and_run(&S390X, Interp::InSysroot, Shape::NonPieExporting);
}
