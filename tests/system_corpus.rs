//! Differential test against the real loader over this machine's own files: for every
//! dynamically linked x86_64 ELF under /usr/bin, /usr/sbin and /usr/lib/x86_64-linux-gnu, the
//! closure `shrinkwrap tree` computes must list the same paths, in the same order, as
//! `ld.so --list`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use common::{elf_files_under, ld_so_list, paths, tree_json, SYSTEM_ROOTS};

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
                let (compared, refused, hwcaps, mismatches) = (compared_r, refused_r, hwcaps_r, mismatches_r);
                for (file, ours) in chunk {
                    let our_missing: BTreeSet<String> = ours["missing"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|m| m["name"].as_str().unwrap().to_string())
                        .collect();
                    let theirs = match ld_so_list(LOADER, file) {
                        Ok(l) => l,
                        // The loader gives up on a missing indirect dependency instead of
                        // listing it; it must be one we report missing too.
                        Err(stopped_at) => {
                            if !our_missing.contains(&stopped_at) {
                                mismatches.lock().unwrap().push(format!(
                                    "{}: ld.so stopped at missing {stopped_at}; shrinkwrap missing {our_missing:?}",
                                    file.display()
                                ));
                            }
                            refused.lock().unwrap().push(file.clone());
                            continue;
                        }
                    };
                    let our_paths = paths(ours);
                    let their_missing: BTreeSet<String> = theirs.missing.iter().cloned().collect();
                    *compared.lock().unwrap() += 1;
                    if our_paths == theirs.paths && our_missing == their_missing {
                        continue;
                    }
                    // Where the loader picked a CPU-specific glibc-hwcaps variant, we
                    // deliberately chose the portable file: it must exist and be in the same
                    // position.
                    let hw_ok = our_paths.len() == theirs.paths.len()
                        && our_missing == their_missing
                        && our_paths.iter().zip(&theirs.paths).all(|(a, b)| {
                            a == b || (b.contains("/glibc-hwcaps/") && Path::new(a).exists())
                        });
                    if hw_ok {
                        *hwcaps.lock().unwrap() += 1;
                        continue;
                    }
                    mismatches.lock().unwrap().push(format!(
                        "{}\n  shrinkwrap: {:?} missing {:?}\n  ld.so:      {:?} missing {:?}",
                        file.display(),
                        our_paths,
                        our_missing,
                        theirs.paths,
                        their_missing
                    ));
                }
            });
        }
    });
    let compared = compared.into_inner().unwrap();
    let mismatches = mismatches.into_inner().unwrap();
    let refused = refused.into_inner().unwrap();
    println!(
        "{compared} files compared, {} mismatches ({} differ only by a glibc-hwcaps variant; {} of {} ELF files not comparable, {} refused by ld.so, with a missing library)",
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
