//! The shifted layout: a non-PIE executable exporting a large dynamic symbol table (built with
//! `-no-pie -rdynamic`) is stamped by inserting whole pages after `.dynstr`, written to a new
//! file and renamed over the old one, instead of growing by a copy of its string table. Checked
//! against the loader, by running it, through the strip tools, by restamping; and the cases
//! that must keep the in-place layout (hard links, extended attributes) keep it.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    all_absolute, exporting, first_load, have, loader_paths, readelf_needed, run, run_program,
    section_size, stamp, strip_variants, Cc, Store,
};

const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
const BASE: &str = "int base(void) { return 42; }\n";
struct Built {
    st: Store,
    /// The unstamped program; tests stamp copies of it.
    app: PathBuf,
}

fn build() -> Built {
    let st = Store::new();
    let base_dir = st.lib_dir("base");
    let libbase = Cc::new("gcc", BASE, base_dir.join("libbase.so.1"))
        .shared(Some("libbase.so.1"))
        .runpath(&st.runpath(&[]))
        .build();
    let source = exporting(
        "#include <stdio.h>\nint base(void);\nint main(void) { printf(\"%d\\n\", base()); return 0; }\n",
    );
    let app = Cc::new("gcc", &source, st.package("app").join("bin/app"))
        .arg("-no-pie")
        .arg("-rdynamic")
        .runpath(&st.runpath(&[&base_dir.display().to_string()]))
        .link(&libbase)
        .build();
    Built { st, app }
}

/// A fresh copy of the unstamped program under `name`.
fn copy(b: &Built, name: &str) -> PathBuf {
    let p = b.app.with_file_name(name);
    std::fs::copy(&b.app, &p).unwrap();
    p
}

/// What eu-elflint says of a file (it names sections, not the file).
fn elflint(file: &Path) -> String {
    let out = run(Command::new("eu-elflint").arg("--gnu-ld").arg(file));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn grew(file: &Path, before: u64) -> u64 {
    std::fs::metadata(file).unwrap().len() - before
}

#[test]
fn a_non_pie_executable_grows_by_whole_pages_not_by_its_string_table() {
    if !have("gcc") || !have("readelf") {
        return;
    }
    let b = build();
    let store = b.st.store.display().to_string();
    let args = ["--store-dir", store.as_str()];
    let app = copy(&b, "shifted");
    std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o751)).unwrap();
    // Another owner, where we may give one (CI runs as root).
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        std::os::unix::fs::chown(&app, Some(4242), Some(4343)).unwrap();
    } else {
        common::skip("not root: the owner of a shifted stamp");
    }
    let size = std::fs::metadata(&app).unwrap().len();
    let dynstr = section_size(&app, ".dynstr");
    let (vaddr, flags) = first_load(&app);
    assert!(
        dynstr > 3 * 4096,
        "the fixture's .dynstr is only {dynstr} bytes"
    );
    let before = loader_paths(LOADER, &app).unwrap();
    let ran = run_program(&app);
    assert_eq!(ran, (Some(0), "42\n".to_string()));
    let inode = std::fs::metadata(&app).unwrap().ino();

    let (code, out, err) = stamp(&app, &args);
    assert_eq!(code, 0, "{out}{err}");
    let growth = grew(&app, size);
    println!("shifted stamp: +{growth} bytes; .dynstr is {dynstr} bytes; {out}");
    assert!(
        growth % 4096 == 0 && growth < dynstr,
        "grew by {growth} bytes (its .dynstr is {dynstr})"
    );
    assert!(out.contains(&format!("(+{growth} bytes)")), "{out}");
    assert_eq!(
        first_load(&app),
        (vaddr - growth, flags.clone()),
        "the first segment should start {growth} bytes lower, with the same flags"
    );
    assert!(!flags.contains('W'), "the fixture's first segment: {flags}");
    // Nothing new to complain about: `.symtab` values that pointed into the moved part
    // moved with it (eu-elflint reports "st_value out of bounds" otherwise).
    if have("eu-elflint") {
        assert_eq!(elflint(&app), elflint(&b.app));
    }
    let meta = std::fs::metadata(&app).unwrap();
    assert_ne!(meta.ino(), inode, "a shifted stamp is a new file");
    assert_eq!(meta.mode() & 0o7777, 0o751, "mode not kept");
    if root {
        assert_eq!((meta.uid(), meta.gid()), (4242, 4343), "owner not kept");
    }
    let dir = app.parent().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("shrinkwrap"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");

    // The loader's view and the program's behaviour are the same; every name is absolute.
    assert_eq!(loader_paths(LOADER, &app).unwrap(), before);
    assert_eq!(run_program(&app), ran);
    let needed = readelf_needed(&app);
    assert!(all_absolute(&needed), "{needed:?}");

    // The strip tools keep it working.
    for (name, mut cmd) in strip_variants(&app, &app.with_file_name("stripped")) {
        if !have(name.split(' ').next().unwrap()) {
            continue;
        }
        let o = run(&mut cmd);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let stripped = app.with_file_name("stripped");
        assert_eq!(loader_paths(LOADER, &stripped).unwrap(), before, "{name}");
        assert_eq!(run_program(&stripped), ran, "{name}");
    }
    let o = run(Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(&app)
        .arg(app.with_file_name("debug")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // A stripped stamp: the same plan is kept, a new one refused, never stacked.
    let kept = copy(&b, "kept");
    let keep_base = ["--store-dir", store.as_str(), "--keep", "libbase*"];
    assert_eq!(stamp(&kept, &keep_base).0, 0);
    assert!(grew(&kept, size) % 4096 == 0);
    for (name, mut cmd) in strip_variants(&kept, &app.with_file_name("stripped")) {
        if !have(name.split(' ').next().unwrap()) {
            continue;
        }
        assert!(run(&mut cmd).status.success(), "{name}");
        let stripped = app.with_file_name("stripped");
        let bytes = std::fs::read(&stripped).unwrap();
        let (code, out, err) = stamp(&stripped, &keep_base);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(out.contains("unchanged"), "{name}: {out}");
        let (code, _, err) = stamp(&stripped, &args);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains("stripped?"), "{name}: {err}");
        assert!(
            std::fs::read(&stripped).unwrap() == bytes,
            "{name}: changed"
        );
    }

    // Stamping again writes nothing.
    let once = std::fs::read(&app).unwrap();
    let (code, out, _) = stamp(&app, &args);
    assert_eq!(code, 0);
    assert!(out.contains("unchanged"), "{out}");
    assert!(std::fs::read(&app).unwrap() == once, "restamp wrote");

    // A new plan starts from the original: the same bytes as stamping a fresh copy with it,
    // and going back to the first plan gives the first result again.
    let keep = ["--store-dir", store.as_str(), "--keep", "libc.so.6"];
    let direct = copy(&b, "direct");
    assert_eq!(stamp(&direct, &keep).0, 0);
    let (code, out, err) = stamp(&app, &keep);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        std::fs::read(&app).unwrap() == std::fs::read(&direct).unwrap(),
        "restamping with a new plan differs from stamping the original with it"
    );
    assert!(readelf_needed(&app).contains(&"libc.so.6".to_string()));
    // `-o OUT` gives the same bytes and leaves the input alone.
    let input = copy(&b, "input");
    let out_path = app.with_file_name("output");
    let mut o_args = keep.to_vec();
    o_args.extend(["-o", out_path.to_str().unwrap()]);
    assert_eq!(stamp(&input, &o_args).0, 0);
    assert!(std::fs::read(&out_path).unwrap() == std::fs::read(&direct).unwrap());
    assert!(std::fs::read(&input).unwrap() == std::fs::read(&b.app).unwrap());
    assert_eq!(run_program(&app), ran);
    assert_eq!(stamp(&app, &args).0, 0);
    assert!(
        std::fs::read(&app).unwrap() == once,
        "back to the first plan, the bytes differ from the first stamp"
    );
}

#[test]
fn hard_links_and_extended_attributes_keep_the_in_place_layout() {
    if !have("gcc") || !have("readelf") {
        return;
    }
    let b = build();
    let store = b.st.store.display().to_string();
    let args = ["--store-dir", store.as_str()];
    let dynstr = section_size(&b.app, ".dynstr");
    let size = std::fs::metadata(&b.app).unwrap().len();
    let ran = run_program(&b.app);

    // Hard-linked: stamped in place, so both names see the stamp.
    let linked = copy(&b, "linked");
    let other = linked.with_file_name("other-name");
    std::fs::hard_link(&linked, &other).unwrap();
    let inode = std::fs::metadata(&linked).unwrap().ino();
    let (code, out, err) = stamp(&linked, &args);
    assert_eq!(code, 0, "{out}{err}");
    let growth = grew(&linked, size);
    assert!(growth > dynstr, "grew by {growth}: not the in-place layout");
    let meta = std::fs::metadata(&other).unwrap();
    assert_eq!(
        (meta.ino(), meta.nlink()),
        (inode, 2),
        "the hard link was broken"
    );
    assert_eq!(run_program(&other), ran);

    // Extended attributes (capabilities, ACLs, labels) would not survive a new file.
    let tagged = copy(&b, "tagged");
    let c_path = std::ffi::CString::new(tagged.display().to_string()).unwrap();
    let value = b"kept";
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let r = unsafe {
        libc::setxattr(
            c_path.as_ptr(),
            c"user.shrinkwrap-test".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r != 0 {
        common::skip(&format!(
            "this file system takes no user extended attributes ({}): the xattr case",
            std::io::Error::last_os_error()
        ));
        return;
    }
    let inode = std::fs::metadata(&tagged).unwrap().ino();
    let (code, out, err) = stamp(&tagged, &args);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::metadata(&tagged).unwrap().ino(), inode);
    assert!(grew(&tagged, size) > dynstr);
    let mut buf = [0u8; 16];
    // SAFETY: as above, with a writable buffer of the given length.
    let n = unsafe {
        libc::getxattr(
            c_path.as_ptr(),
            c"user.shrinkwrap-test".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(&buf[..n.max(0) as usize], value, "the attribute was lost");
    assert_eq!(run_program(&tagged), ran);
}

#[test]
fn a_killed_runs_new_file_is_cleared_and_never_walked() {
    if !have("gcc") || !have("readelf") {
        return;
    }
    let b = build();
    let store = b.st.store.display().to_string();
    let app = copy(&b, "prog");
    // What a run killed between writing the new file and renaming it leaves: the original
    // untouched, and the new file beside it.
    let leftover = app.with_file_name(".prog.shrinkwrap-new");
    std::fs::copy(&b.app, &leftover).unwrap();

    // fixup passes such a file over (a stamp would change its bytes).
    let walked = b.st.package("walked");
    let alone = walked.join(".prog.shrinkwrap-new");
    std::fs::copy(&b.app, &alone).unwrap();
    let report = walked.join("report.json");
    let out = run(common::shrinkwrap()
        .args(["fixup", "--store-dir", &store, "--report"])
        .arg(&report)
        .arg(&walked));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let entry = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == alone.display().to_string())
        .unwrap_or_else(|| panic!("the leftover is not in the report: {report:#}"));
    assert_eq!(entry["status"], "skipped", "{entry}");
    assert_eq!(
        entry["reason"], "left by a killed shrinkwrap run",
        "{entry}"
    );
    assert!(
        std::fs::read(&alone).unwrap() == std::fs::read(&b.app).unwrap(),
        "fixup stamped a killed run's leftover"
    );

    let (code, out, err) = stamp(&app, &["--store-dir", &store]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !leftover.exists(),
        "the killed run's new file is still there"
    );
    assert_eq!(run_program(&app), (Some(0), "42\n".to_string()));

    // Killed after the swap: the stamp is in place, the old file under the temporary name.
    // The next run has nothing to stamp, and still clears it.
    std::fs::copy(&b.app, &leftover).unwrap();
    let (code, out, err) = stamp(&app, &["--store-dir", &store]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("unchanged"), "{out}");
    assert!(
        !leftover.exists(),
        "the old file a killed run left is still there"
    );
}

#[test]
fn fixup_shifts_a_read_only_program_the_same_whatever_the_jobs() {
    if !have("gcc") || !have("readelf") {
        return;
    }
    let b = build();
    let store = b.st.store.display().to_string();
    let size = std::fs::metadata(&b.app).unwrap().len();
    let dynstr = section_size(&b.app, ".dynstr");
    let ran = run_program(&b.app);
    let mut results = Vec::new();
    for jobs in ["1", "2"] {
        let out_dir = b.st.package(&format!("out-j{jobs}")).join("bin");
        std::fs::create_dir_all(&out_dir).unwrap();
        let prog = out_dir.join("prog");
        std::fs::copy(&b.app, &prog).unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o555)).unwrap();
        let inode = std::fs::metadata(&prog).unwrap().ino();
        let out = run(common::shrinkwrap()
            .args(["fixup", "--quiet", "--store-dir", &store, "-j", jobs])
            .arg(out_dir.parent().unwrap()));
        assert!(
            out.status.success(),
            "-j{jobs}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta = std::fs::metadata(&prog).unwrap();
        assert_ne!(meta.ino(), inode, "-j{jobs}: not the shifted layout");
        assert_eq!(meta.mode() & 0o7777, 0o555, "-j{jobs}: mode not given back");
        let growth = meta.len() - size;
        assert!(
            growth % 4096 == 0 && growth < dynstr,
            "-j{jobs}: grew {growth}"
        );
        assert_eq!(run_program(&prog), ran, "-j{jobs}");
        results.push(std::fs::read(&prog).unwrap());
    }
    assert!(results[0] == results[1], "-j1 and -j2 differ");
}
