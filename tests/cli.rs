//! What the README promises about `tree`'s options and the command line in general: where
//! `--search` and `--ld-library-path` come in the search order, that the environment's own
//! `LD_LIBRARY_PATH` is never read, `--interpreter`, a closed output pipe, and the commands
//! that are not implemented yet.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{paths, run, shrinkwrap, tree_json, Cc, Store};

const LIB: &str = "int lib(void) { return 1; }\n";

/// A program needing libsame.so.1 with RUNPATH `runpath_dir`, and copies of that library in
/// each of `dirs` (store directories named by `dirs`).
struct Setup {
    st: Store,
    app: PathBuf,
    dirs: Vec<PathBuf>,
}

fn setup(names: &[&str], runpath: &str) -> Setup {
    let st = Store::new();
    let dirs: Vec<PathBuf> = names.iter().map(|n| st.lib_dir(n)).collect();
    let mut lib = None;
    for d in &dirs {
        lib = Some(
            Cc::new("cc", LIB, d.join("libsame.so.1"))
                .shared(Some("libsame.so.1"))
                .build(),
        );
    }
    let runpath_dir = st.lib_dir(runpath);
    let app = Cc::new(
        "cc",
        "int lib(void);\nint main(void) { return lib() - 1; }\n",
        st.package("app").join("bin/app"),
    )
    .runpath(&runpath_dir.display().to_string())
    .link(lib.as_ref().unwrap())
    .build();
    Setup { st, app, dirs }
}

fn found(s: &Setup, args: &[&str], env: Option<(&str, &Path)>) -> Vec<String> {
    let store = s.st.store.display().to_string();
    let mut all = vec!["tree", "--json", "--store-dir", store.as_str()];
    all.extend(args);
    let mut cmd = shrinkwrap();
    cmd.args(&all).arg(&s.app);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    paths(&doc["files"][0])
}

fn lib_in(dir: &Path) -> String {
    dir.join("libsame.so.1").display().to_string()
}

#[test]
fn search_comes_after_runpath_and_before_the_system() {
    // The library is in the RUNPATH directory and in a --search directory: RUNPATH wins.
    let s = setup(&["rp", "extra"], "rp");
    let extra = s.dirs[1].display().to_string();
    let got = found(&s, &["--search", &extra], None);
    assert!(got.contains(&lib_in(&s.dirs[0])), "{got:?}");
    // Only in the --search directory: found there.
    std::fs::remove_file(s.dirs[0].join("libsame.so.1")).unwrap();
    let got = found(&s, &["--search", &extra], None);
    assert!(got.contains(&lib_in(&s.dirs[1])), "{got:?}");
    // And without it: missing.
    assert!(!found(&s, &[], None).iter().any(|p| p.contains("libsame")));
}

#[test]
fn a_search_directory_wins_over_the_system_cache() {
    // A libz.so.1 of our own in a --search directory, against the system's.
    let st = Store::new();
    let dir = st.lib_dir("z");
    Cc::new("cc", LIB, dir.join("libz.so.1"))
        .shared(Some("libz.so.1"))
        .build();
    let app = Cc::new(
        "cc",
        "int main(void) { return 0; }\n",
        st.package("app").join("bin/app"),
    )
    .arg("-Wl,--no-as-needed")
    .arg("-lz")
    .build();
    let store = st.store.display().to_string();
    let with = tree_json(
        &[&app],
        &[
            "--store-dir",
            &store,
            "--search",
            &dir.display().to_string(),
        ],
        0,
    );
    let without = tree_json(&[&app], &["--store-dir", &store], 0);
    let ours = dir.join("libz.so.1").display().to_string();
    assert!(paths(&with["files"][0]).contains(&ours), "{with:#}");
    assert!(!paths(&without["files"][0]).contains(&ours), "{without:#}");
}

#[test]
fn ld_library_path_option_comes_before_runpath_and_the_environment_is_never_read() {
    let s = setup(&["rp", "llp"], "rp");
    let llp = s.dirs[1].display().to_string();
    // --ld-library-path is searched before the requester's RUNPATH.
    let got = found(&s, &["--ld-library-path", &llp], None);
    assert!(got.contains(&lib_in(&s.dirs[1])), "{got:?}");
    // The same directory in the environment changes nothing.
    let got = found(&s, &[], Some(("LD_LIBRARY_PATH", &s.dirs[1])));
    assert!(got.contains(&lib_in(&s.dirs[0])), "{got:?}");
}

#[test]
fn interpreter_option_replaces_pt_interp() {
    let ls = Path::new("/usr/bin/ls");
    let other = "/nonexistent/ld-linux-x86-64.so.2";
    let doc = tree_json(&[ls], &["--interpreter", other], 0);
    let f = &doc["files"][0];
    assert_eq!(f["interpreter"], other, "{f:#}");
    // It is the interpreter that is loaded, and, since it cannot be asked, its defaults
    // are guessed and the report says so.
    assert!(paths(f).contains(&other.to_string()), "{f:#}");
    let kinds: Vec<&str> = f["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"loader-guessed"), "{kinds:?}");
    let plain = tree_json(&[ls], &[], 0);
    assert!(!paths(&plain["files"][0]).contains(&other.to_string()));
}

#[test]
fn a_closed_output_pipe_ends_quietly() {
    // Enough output that writing outlives the reader.
    let files: Vec<PathBuf> = std::fs::read_dir("/usr/bin")
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .take(400)
        .collect();
    let mut child = shrinkwrap()
        .arg("tree")
        .args(&files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The read end is closed here (dropped above).
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert!(
        out.status.code().is_some(),
        "killed by a signal: {:?}",
        out.status
    );
}

#[test]
fn commands_not_implemented_yet_say_so_with_exit_2() {
    for cmd in ["check", "unwrap", "explain"] {
        let out = run(shrinkwrap().arg(cmd).arg("/usr/bin/ls"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {stderr}");
        assert!(stderr.contains("not implemented yet"), "{cmd}: {stderr}");
    }
}
