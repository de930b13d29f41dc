//! Differential test against the real loader over this machine's own files: for every
//! dynamically linked x86_64 ELF under /usr/bin, /usr/sbin and /usr/lib/x86_64-linux-gnu, the
//! closure `shrinkwrap tree` computes must list the same paths, in the same order, as
//! `ld.so --list`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use common::{compare_with_loader, elf_files_under, tree_json, Compared, SYSTEM_ROOTS};

const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

#[test]
fn system_files_resolve_like_ld_so() {
    if !Path::new(LOADER).exists() {
        panic!("{LOADER} is missing: this test needs an x86_64 glibc system");
    }
    let files = elf_files_under(SYSTEM_ROOTS, |_| true);
    assert!(files.len() > 100, "only {} ELF files found", files.len());
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let doc = tree_json(&refs, &[], 0);
    let results = doc["files"].as_array().unwrap();
    assert_eq!(results.len(), files.len());

    // Only x86_64 executables and libraries loaded by the system loader can be compared.
    let comparable: Vec<(PathBuf, &serde_json::Value)> = files
        .iter()
        .cloned()
        .zip(results)
        .filter(|(_, r)| {
            r["error"].is_null()
                && r["machine"] == "x86_64"
                && matches!(
                    r["kind"].as_str(),
                    Some("executable" | "pie-executable" | "shared-library")
                )
                && r["interpreter"] == LOADER
        })
        .collect();

    let compared = Mutex::new(0usize);
    let refused = Mutex::new(Vec::new());
    let hwcaps = Mutex::new(0usize);
    let mismatches = Mutex::new(Vec::new());
    let chunks: Vec<_> = comparable
        .chunks(comparable.len().div_ceil(4).max(1))
        .collect();
    let (compared_r, refused_r, hwcaps_r, mismatches_r) =
        (&compared, &refused, &hwcaps, &mismatches);
    std::thread::scope(|s| {
        for chunk in chunks {
            s.spawn(move || {
                let (compared, refused, hwcaps, mismatches) =
                    (compared_r, refused_r, hwcaps_r, mismatches_r);
                for (file, ours) in chunk {
                    match compare_with_loader(LOADER, file, ours) {
                        Compared::Same => {}
                        Compared::Hwcaps => *hwcaps.lock().unwrap() += 1,
                        // The loader cannot load it at all: shrinkwrap must have said why.
                        Compared::Refused(msg) => {
                            if ours["missing"].as_array().is_none_or(|m| m.is_empty()) {
                                mismatches
                                    .lock()
                                    .unwrap()
                                    .push(format!("{}: ld.so refused: {msg}", file.display()));
                            }
                            refused.lock().unwrap().push(file.clone());
                            continue;
                        }
                        Compared::Differs(d) => mismatches
                            .lock()
                            .unwrap()
                            .push(format!("{}{d}", file.display())),
                    }
                    *compared.lock().unwrap() += 1;
                }
            });
        }
    });
    let compared = compared.into_inner().unwrap();
    let mismatches = mismatches.into_inner().unwrap();
    let refused = refused.into_inner().unwrap();
    println!(
        "{compared} files compared, {} mismatches ({} differ only by a glibc-hwcaps variant; {} of {} ELF files not comparable, {} refused by ld.so)",
        mismatches.len(),
        hwcaps.into_inner().unwrap(),
        files.len() - comparable.len(),
        files.len(),
        refused.len(),
    );
    for f in &refused {
        println!("REFUSED by ld.so: {}", f.display());
    }
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    assert!(compared > 100, "only {compared} files could be compared");
    assert!(mismatches.is_empty(), "{} mismatches", mismatches.len());
}
