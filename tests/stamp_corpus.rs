//! Stamping copies of every dynamically linked x86_64 ELF under /usr/bin, /usr/sbin and
//! /usr/lib/x86_64-linux-gnu: the loader must list the same paths in the same order before
//! and after, every DT_NEEDED must be absolute, stamping again must be a no-op, the strip
//! tools must work on the result, and harmless programs must behave the same.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use common::{
    elf_files_under, have, loader_paths, readelf_needed, run, stamp, strip_variants, SYSTEM_ROOTS,
};

const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
/// Programs that print a version and exit, touching nothing.
const HARMLESS: &[&str] = &[
    "ls",
    "cat",
    "cp",
    "grep",
    "sed",
    "tar",
    "gzip",
    "find",
    "sort",
    "date",
    "diff",
    "git",
    "python3.11",
    "perl",
    "bash",
    "readelf",
    "objdump",
    "strace",
    "make",
    "gdb",
];

#[test]
fn system_files_stamp_and_still_load_the_same() {
    for tool in ["readelf", "strip", "eu-strip", "objcopy"] {
        assert!(have(tool), "{tool} is needed");
    }
    // 64-bit x86_64 only: the ones the system loader can list.
    let files = elf_files_under(SYSTEM_ROOTS, |h| h[4] == 2 && h[18] == 62);
    assert!(files.len() > 100);
    let tmp = tempfile::tempdir().unwrap();
    let stamped = Mutex::new(0usize);
    let refused = Mutex::new(Vec::new());
    let skipped = Mutex::new(0usize);
    let failures = Mutex::new(Vec::new());
    let growth = Mutex::new(Vec::new());
    let ran = Mutex::new(0usize);
    let chunks: Vec<_> = files.chunks(files.len().div_ceil(4)).enumerate().collect();
    let (stamped_r, refused_r, skipped_r, failures_r, growth_r, ran_r, dir) = (
        &stamped,
        &refused,
        &skipped,
        &failures,
        &growth,
        &ran,
        tmp.path(),
    );
    std::thread::scope(|s| {
        for (ci, chunk) in chunks {
            s.spawn(move || {
                for (i, src) in chunk.iter().enumerate() {
                    let work = dir.join(format!("{ci}-{i}"));
                    std::fs::create_dir_all(&work).unwrap();
                    let name = src.file_name().unwrap();
                    let copy = work.join(name);
                    std::fs::copy(src, &copy).unwrap();
                    let fail = |m: String| {
                        failures_r
                            .lock()
                            .unwrap()
                            .push(format!("{}: {m}", src.display()))
                    };
                    let original = std::fs::read(&copy).unwrap();
                    let (code, out, err) = stamp(&copy, &[]);
                    if out.contains("nothing to do") {
                        if code != 0 || std::fs::read(&copy).unwrap() != original {
                            fail(format!("nothing to do, yet exit {code} or bytes changed"));
                        }
                        *skipped_r.lock().unwrap() += 1;
                        std::fs::remove_dir_all(&work).ok();
                        continue;
                    }
                    let before = loader_paths(LOADER, &copy);
                    if code != 0 {
                        // Only a file the loader cannot load either may be refused.
                        if std::fs::read(&copy).unwrap() != original {
                            fail("refused but changed".into());
                        }
                        match &before {
                            Err(_) => refused_r.lock().unwrap().push(src.clone()),
                            Ok(_) => fail(format!("stamp failed: {}", err.trim())),
                        }
                        std::fs::remove_dir_all(&work).ok();
                        continue;
                    }
                    // The loader's view of the unstamped copy, from the saved bytes.
                    // Same file name, so programs that print their name print the same.
                    std::fs::create_dir_all(work.join("orig")).unwrap();
                    let orig_copy = work.join("orig").join(name);
                    std::fs::copy(src, &orig_copy).unwrap();
                    let before = loader_paths(LOADER, &orig_copy);
                    let after = loader_paths(LOADER, &copy);
                    match (&before, &after) {
                        (Ok(b), Ok(a)) if a == b => {}
                        _ => fail(format!(
                            "ld.so --list\n  before {before:?}\n  after  {after:?}"
                        )),
                    }
                    let stamped_bytes = std::fs::read(&copy).unwrap();
                    growth_r.lock().unwrap().push(
                        (stamped_bytes.len() - original.len()) as f64 / original.len() as f64,
                    );
                    for n in readelf_needed(&copy) {
                        // Libraries that name no interpreter keep the loader's own soname.
                        if !n.starts_with('/') && !n.starts_with("ld-linux") {
                            fail(format!("DT_NEEDED {n} is not absolute"));
                        }
                    }
                    let (code, _, err) = stamp(&copy, &[]);
                    if code != 0 || std::fs::read(&copy).unwrap() != stamped_bytes {
                        fail(format!("second stamp not a no-op: {err}"));
                    }
                    let stripped = work.join("stripped");
                    for (tool, mut cmd) in strip_variants(&copy, &stripped) {
                        let out = run(&mut cmd);
                        if !out.status.success() {
                            fail(format!(
                                "{tool}: {}",
                                String::from_utf8_lossy(&out.stderr).trim()
                            ));
                        } else if loader_paths(LOADER, &stripped).ok() != after.clone().ok() {
                            fail(format!("after {tool} the loader lists something else"));
                        }
                    }
                    let dbg = run(Command::new("objcopy")
                        .arg("--only-keep-debug")
                        .arg(&copy)
                        .arg(work.join("debug")));
                    if !dbg.status.success() {
                        fail(format!(
                            "objcopy --only-keep-debug: {}",
                            String::from_utf8_lossy(&dbg.stderr).trim()
                        ));
                    }
                    if HARMLESS.iter().any(|h| name == *h) {
                        // Run as ./NAME from its directory: some print argv[0].
                        let version = |p: &Path| {
                            let o = run(Command::new(Path::new(".").join(name))
                                .current_dir(p.parent().unwrap())
                                .arg("--version")
                                .env_clear());
                            (o.status.code(), o.stdout)
                        };
                        if version(&orig_copy) != version(&copy) {
                            fail("--version differs after stamping".into());
                        }
                        *ran_r.lock().unwrap() += 1;
                    }
                    *stamped_r.lock().unwrap() += 1;
                    std::fs::remove_dir_all(&work).ok();
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let mut growth = growth.into_inner().unwrap();
    growth.sort_by(f64::total_cmp);
    let median = growth.get(growth.len() / 2).copied().unwrap_or(0.0);
    let stamped = stamped.into_inner().unwrap();
    let ran = ran.into_inner().unwrap();
    println!(
        "{stamped} files stamped, {} failures ({} refused with a missing library, as the loader refuses them; {} not dynamic; median growth {:.1}%, worst {:.1}%; {ran} run with --version before and after)",
        failures.len(),
        refused.into_inner().unwrap().len(),
        skipped.into_inner().unwrap(),
        median * 100.0,
        growth.last().copied().unwrap_or(0.0) * 100.0,
    );
    for f in &failures {
        println!("FAILURE {f}");
    }
    assert!(failures.is_empty(), "{} failures", failures.len());
    assert!(stamped > 100, "only {stamped} files stamped");
    assert!(ran > 0, "no program was run before and after stamping");
}
