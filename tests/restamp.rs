//! Restamping with a new plan goes through the original (restore, then stamp afresh). When the
//! new plan then fails, the file must be left as the run found it: stamped with the previous
//! plan, byte for byte — not restored to its original, nor half written.
//!
//! The failure is a real one: a file size limit (`ulimit -f`, with SIGXFSZ ignored so the
//! write fails with EFBIG instead of killing the process) between the sizes the two plans need.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have, readelf_needed, run, run_program, Cc, Store};

const LIBS: usize = 12;

/// A program needing LIBS libraries, each in the fake store; the libraries' sonames.
fn build(st: &Store) -> (PathBuf, Vec<String>) {
    let lib = st.lib_dir("many-libraries-with-a-long-store-path-name");
    let rp = st.runpath(&[&lib.display().to_string()]);
    let mut prog = Cc::new(
        "cc",
        "int main(void) { return 7; }\n",
        st.package("app").join("bin/app"),
    )
    .runpath(&rp)
    .arg("-Wl,--no-as-needed");
    let mut sonames = Vec::new();
    for i in 0..LIBS {
        let so = format!("libmany{i:02}.so.1");
        let src = format!("int many{i}(void) {{ return {i}; }}\n");
        let path = Cc::new("cc", &src, lib.join(&so))
            .shared(Some(&so))
            .runpath(&rp)
            .build();
        prog = prog.link(&path);
        sonames.push(so);
    }
    (prog.build(), sonames)
}

/// `shrinkwrap stamp FILE ARGS...` with a file size limit of `blocks` 512-byte blocks (`sh`'s
/// `ulimit -f` unit, as POSIX has it); (exit code, stderr).
fn stamp_limited(file: &Path, args: &[String], blocks: Option<u64>) -> (i32, String) {
    let limit = blocks.map_or("unlimited".to_string(), |b| b.to_string());
    let o = run(Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f \"$1\"; shift; exec \"$@\"")
        .arg("sh")
        .arg(limit)
        .arg(env!("CARGO_BIN_EXE_shrinkwrap"))
        .arg("stamp")
        .arg(file)
        .args(args));
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_restamp_that_fails_leaves_the_previous_stamp() {
    if !have("cc") || !have("readelf") {
        return;
    }
    let st = Store::new();
    let (prog, sonames) = build(&st);
    // Plan A keeps all but the first library bare; plan B makes every one absolute.
    let keep_most: Vec<String> = sonames[1..]
        .iter()
        .flat_map(|s| ["--keep".to_string(), s.clone()])
        .collect();
    let pristine = std::fs::read(&prog).unwrap();

    // How large each plan makes the file, on copies.
    let size_of = |args: &[String]| {
        let copy = st.scratch().join("copy");
        std::fs::write(&copy, &pristine).unwrap();
        std::fs::set_permissions(&copy, std::fs::metadata(&prog).unwrap().permissions()).unwrap();
        let (code, err) = stamp_limited(&copy, args, None);
        assert_eq!(code, 0, "{err}");
        std::fs::metadata(&copy).unwrap().len()
    };
    let (a, b) = (size_of(&keep_most), size_of(&[]));
    // A limit (in 512-byte blocks) that plan A's file fits under and plan B's does not.
    let limit = a / 512 + 1;
    println!(
        "plan A: {a} bytes, plan B: {b} bytes, limit {} bytes",
        limit * 512
    );
    assert!(
        limit * 512 < b,
        "the plans' sizes {a} and {b} are too close for the test"
    );

    let (code, err) = stamp_limited(&prog, &keep_most, Some(limit));
    assert_eq!(code, 0, "plan A under the limit: {err}");
    let stamped_a = std::fs::read(&prog).unwrap();
    assert_ne!(stamped_a, pristine);
    let needed_a = readelf_needed(&prog);

    // Plan B cannot be written under the limit: refused, one line, and the file is plan A's.
    let (code, err) = stamp_limited(&prog, &[], Some(limit));
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&prog.display().to_string()), "{err}");
    assert!(
        std::fs::read(&prog).unwrap() == stamped_a,
        "a failed restamp changed the file"
    );
    assert_eq!(readelf_needed(&prog), needed_a);
    assert_eq!(run_program(&prog), (Some(7), String::new()));

    // Without the limit it goes through, and equals stamping the original with plan B.
    let (code, err) = stamp_limited(&prog, &[], None);
    assert_eq!(code, 0, "{err}");
    let fresh = st.scratch().join("fresh");
    std::fs::write(&fresh, &pristine).unwrap();
    std::fs::set_permissions(&fresh, std::fs::metadata(&prog).unwrap().permissions()).unwrap();
    assert_eq!(stamp_limited(&fresh, &[], None).0, 0);
    assert!(std::fs::read(&prog).unwrap() == std::fs::read(&fresh).unwrap());
}
