//! Replays what the fuzzers found (`tests/fuzz/<target>/`: each file an input that once broke
//! an invariant, named for what it broke) and their seed corpora (`fuzz/corpus/<target>/`)
//! through the same checks the fuzz targets make (`fuzz/src/checks.rs`, included here), so a
//! fix stays fixed without libFuzzer. `scripts/fuzz.sh` runs the fuzzers themselves.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::path::Path;

/// The files of `dir`, sorted; a missing directory has none.
fn inputs(dir: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Runs `check` on every input of the target's regressions and seeds; fails naming each
/// input whose invariant broke.
fn replay(target: &str, mut check: impl FnMut(&[u8]) -> Result<(), String>) {
    let files: Vec<_> = inputs(&format!("tests/fuzz/{target}"))
        .into_iter()
        .chain(inputs(&format!("fuzz/corpus/{target}")))
        .collect();
    assert!(!files.is_empty(), "no inputs for {target}");
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let data = std::fs::read(f).unwrap();
            check(&data).err().map(|e| format!("{}: {e}", f.display()))
        })
        .collect();
    println!("{target}: {} inputs replayed", files.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn resolve_regressions() {
    let mut store = checks::Store::new();
    replay("resolve", |d| store.resolve(d));
}

#[test]
fn stamp_regressions() {
    let mut store = checks::Store::new();
    replay("stamp", |d| store.stamp(d));
}

#[test]
fn parsers_regressions() {
    replay("parsers", checks::parsers);
}
