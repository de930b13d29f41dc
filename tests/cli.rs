//! What the README promises about `tree`'s options and the command line in general: where
//! `--search` and `--ld-library-path` come in the search order, that the environment's own
//! `LD_LIBRARY_PATH` is never read, `--interpreter` (and that it must name a loader), a closed
//! output pipe on stdout and on stderr, and the commands that are not implemented yet. Also
//! what `stamp` and `fixup` say: nothing to stamp is not "already stamped", counts in the
//! singular, a start line that agrees with the summary, `--report` checked before anything
//! is written.

mod common;

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
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
    // Another loader: a copy of this one, elsewhere.
    let st = Store::new();
    let other = st.lib_dir("other-glibc").join("ld-linux-x86-64.so.2");
    std::fs::copy(LOADER, &other).unwrap();
    let other = other.display().to_string();
    let doc = tree_json(&[ls], &["--interpreter", &other], 0);
    let f = &doc["files"][0];
    assert_eq!(f["interpreter"], other, "{f:#}");
    // It is the interpreter that is loaded.
    assert!(paths(f).contains(&other), "{f:#}");
    let plain = tree_json(&[ls], &[], 0);
    assert!(!paths(&plain["files"][0]).contains(&other));
}

const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

#[test]
fn an_interpreter_that_is_not_a_loader_is_refused_before_anything_is_written() {
    // Once, a path that did not exist was resolved as the loader and stamped into the
    // program as a library: exit 0, and the program died at its first instruction.
    let st = Store::new();
    let dir = st.package("app").join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let app = dir.join("ls");
    std::fs::copy("/usr/bin/ls", &app).unwrap();
    let before = std::fs::read(&app).unwrap();
    let store = st.store.display().to_string();
    let missing = "/nonexistent/ld-linux-x86-64.so.2";
    let libz = "/usr/lib/x86_64-linux-gnu/libz.so.1";
    let cases: [(&str, &str); 4] = [
        (missing, "No such file or directory"),
        (
            "/usr/bin/ls",
            "not a dynamic loader (a pie-executable that is loaded by",
        ),
        (
            libz,
            "not a dynamic loader (a shared-library that needs libc.so.6)",
        ),
        ("/etc/passwd", "not a dynamic loader: "),
    ];
    for (interp, why) in cases {
        if !Path::new(interp).exists() && interp != missing {
            common::skip(&format!("{interp} does not exist: its --interpreter case"));
            continue;
        }
        for cmd in ["tree", "stamp", "fixup"] {
            let target = if cmd == "fixup" {
                dir.clone()
            } else {
                app.clone()
            };
            let out = run(shrinkwrap()
                .args([cmd, "--store-dir", &store, "--interpreter", interp])
                .arg(&target));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd} {interp}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{cmd} {interp}: {stderr}");
            let prefix = format!("shrinkwrap: --interpreter {interp}: ");
            assert!(stderr.starts_with(&prefix), "{cmd} {interp}: {stderr}");
            assert!(
                stderr.contains(why),
                "{cmd} {interp}: {why:?} not in {stderr}"
            );
            assert!(out.stdout.is_empty(), "{cmd} {interp}: printed something");
            assert!(
                std::fs::read(&app).unwrap() == before,
                "{cmd} {interp}: wrote"
            );
        }
    }
    // The real loader is accepted, and stamps as the file's own PT_INTERP would.
    let out = run(shrinkwrap()
        .args(["stamp", "--store-dir", &store, "--interpreter", LOADER])
        .arg(&app));
    assert!(out.status.success(), "{out:?}");
    assert!(std::fs::read(&app).unwrap() != before, "not stamped");
    let ran = run(std::process::Command::new(&app).arg("--version"));
    assert!(ran.status.success(), "{ran:?}");
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
fn no_command_is_a_stub() {
    let help = run(shrinkwrap().arg("--help"));
    let help = String::from_utf8_lossy(&help.stdout);
    let lines: Vec<&str> = help
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("check") || l.starts_with("unwrap") || l.starts_with("explain")
        })
        .collect();
    // All three are listed (else the loop below would check nothing).
    assert_eq!(
        lines.len(),
        3,
        "check, unwrap and explain in --help: {help}"
    );
    for line in lines {
        assert!(!line.contains("not implemented"), "{line}");
    }
    assert!(!help.contains("not implemented"), "{help}");
}

/// A pipe whose reading end is already closed: every write to it fails with EPIPE, as
/// `… 2>&1 | head -1` makes them once head has its line.
fn closed_pipe() -> OwnedFd {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors, each owned once below.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and belong to nothing else.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    writer
}

#[test]
fn a_closed_stderr_ends_quietly_with_the_true_exit_code() {
    // tree: every message goes to stderr, every one fails.
    let out = run(shrinkwrap()
        .args(["tree", "/nonexistent/a", "/nonexistent/b"])
        .stdout(closed_pipe())
        .stderr(closed_pipe()));
    assert_eq!(out.status.code(), Some(1), "{:?}", out.status);

    // fixup, output and errors both into the closed pipe (`2>&1`): the run goes on, stamps
    // what it can, and its exit code still says one file failed.
    let st = Store::new();
    let dir = st.package("out");
    let good = dir.join("ls");
    std::fs::copy("/usr/bin/ls", &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(dir.join("corrupt"), &bytes[..bytes.len() / 2]).unwrap();
    let pipe = closed_pipe();
    let out = run(shrinkwrap()
        .arg("fixup")
        .arg(&dir)
        .stdout(pipe.try_clone().unwrap())
        .stderr(pipe));
    assert_eq!(out.status.code(), Some(1), "{:?}", out.status);
    assert!(
        std::fs::read(&good).unwrap() != bytes,
        "the good file was not stamped"
    );
}

/// `stamp ARGS FILE` with `--json`; the file's entry.
fn stamp_json(file: &Path, args: &[&str]) -> serde_json::Value {
    let out = run(shrinkwrap().arg("stamp").arg("--json").args(args).arg(file));
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["files"][0].clone()
}

#[test]
fn nothing_to_stamp_is_not_called_already_stamped() {
    let st = Store::new();
    let store = st.store.display().to_string();
    let dir = st.package("out").join("lib");
    let lib = Cc::new("cc", LIB, dir.join("libnodeps.so"))
        .shared(Some("libnodeps.so"))
        .build();
    let app = Cc::new(
        "cc",
        "int lib(void);\nint main(void) { return lib() - 1; }\n",
        dir.join("app"),
    )
    .runpath(&dir.display().to_string())
    .link(&lib)
    .build();
    assert!(common::readelf_needed(&lib).is_empty());
    let (lib_before, app_before) = (std::fs::read(&lib).unwrap(), std::fs::read(&app).unwrap());
    let sd = ["--store-dir", store.as_str()];

    // A library that needs nothing.
    let (code, out, _) = common::stamp(&lib, &sd);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!("{}: nothing to stamp: no dependencies\n", lib.display())
    );
    assert_eq!(stamp_json(&lib, &sd)["reason"], "no dependencies");
    // Every dependency kept.
    let keep_all = ["--store-dir", store.as_str(), "--keep", "*"];
    let (code, out, _) = common::stamp(&app, &keep_all);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "{}: nothing to stamp: all dependencies kept\n",
            app.display()
        )
    );
    let f = stamp_json(&app, &keep_all);
    assert_eq!(
        (&f["status"], &f["reason"]),
        (&"unchanged".into(), &"all dependencies kept".into())
    );
    assert!(
        std::fs::read(&lib).unwrap() == lib_before && std::fs::read(&app).unwrap() == app_before
    );
    // fixup counts those as skipped, not as already stamped.
    let out = run(shrinkwrap().arg("fixup").args(keep_all).arg(&dir));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("stamped 0 files (0 already stamped; 2 skipped: 1 all dependencies kept, 1 no dependencies; 0 failed)"),
        "{stderr}"
    );
    assert!(std::fs::read(&app).unwrap() == app_before);

    // What is true of a stamped file is still said of it.
    let (code, _, _) = common::stamp(&app, &sd);
    assert_eq!(code, 0);
    let (code, out, _) = common::stamp(&app, &sd);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!("{}: already stamped, unchanged\n", app.display())
    );
    assert_eq!(stamp_json(&app, &sd)["reason"], "already stamped");
    // And a stamped file whose new plan changes nothing goes back to its original bytes, as
    // one run on the original leaves it, not to a segment that changes nothing.
    let (code, out, _) = common::stamp(&app, &keep_all);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "{}: restored its original, which has nothing to stamp\n",
            app.display()
        )
    );
    assert!(
        std::fs::read(&app).unwrap() == app_before,
        "not the original"
    );
}

/// The numbers in fixup's summary line, added up.
fn summary_total(stderr: &str) -> usize {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("shrinkwrap: stamped "))
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    let head = line.split(" in ").next().unwrap();
    // stamped N …(N already stamped; N skipped…; N failed): the reasons repeat the skipped.
    let main = head.split(':').take(2).collect::<Vec<_>>().join(":");
    let failed = head.rsplit("; ").next().unwrap();
    [main.as_str(), failed]
        .iter()
        .flat_map(|p| p.split(|c: char| !c.is_ascii_digit()))
        .filter_map(|n| n.parse::<usize>().ok())
        .sum()
}

#[test]
fn fixup_counts_in_the_singular_and_its_start_line_agrees_with_its_summary() {
    let st = Store::new();
    let dir = std::fs::canonicalize(st.package("out")).unwrap();
    std::fs::copy("/usr/bin/ls", dir.join("ls")).unwrap();
    let out = run(shrinkwrap().args(["fixup", "-j", "1"]).arg(&dir));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "shrinkwrap: fixing up 1 ELF file in {} with 1 job",
            dir.display()
        )
    );
    assert!(
        lines[1]
            .starts_with("shrinkwrap: stamped 1 file (0 already stamped; 0 skipped; 0 failed) in "),
        "{stderr}"
    );

    // Files the walk passes over without reading them are counted on both lines.
    std::fs::copy("/usr/bin/ls", dir.join(".cp.shrinkwrap-new")).unwrap();
    std::fs::copy("/usr/bin/ls", dir.join("cp")).unwrap();
    let out = run(shrinkwrap().args(["fixup", "-j", "2"]).arg(&dir));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.starts_with("shrinkwrap: fixing up 3 ELF files in "),
        "{stderr}"
    );
    assert!(stderr.contains("with 2 jobs"), "{stderr}");
    assert!(stderr.contains("stamped 1 file (1 already stamped; 1 skipped: 1 left by a killed shrinkwrap run; 0 failed)"), "{stderr}");
    assert_eq!(summary_total(&stderr), 3, "{stderr}");
}

#[test]
fn fixup_refuses_a_report_it_cannot_write_before_stamping_anything() {
    let st = Store::new();
    let dir = st.package("out");
    let app = dir.join("ls");
    std::fs::copy("/usr/bin/ls", &app).unwrap();
    let before = std::fs::read(&app).unwrap();
    let no_dir = st.tmp.path().join("no-such-dir/report.json");
    let is_dir = st.tmp.path().to_path_buf();
    for report in [&no_dir, &is_dir] {
        let out = run(shrinkwrap()
            .arg("fixup")
            .arg(&dir)
            .arg("--report")
            .arg(report));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        let prefix = format!("shrinkwrap: --report {}: ", report.display());
        assert!(stderr.starts_with(&prefix), "{stderr}");
        assert!(
            stderr.trim_end().ends_with("nothing was stamped"),
            "{stderr}"
        );
        assert!(
            std::fs::read(&app).unwrap() == before,
            "stamped although the report failed"
        );
    }
    assert!(!no_dir.parent().unwrap().exists());
    // A report that can be written is, and checking it first left nothing else behind.
    let ok = st.tmp.path().join("report.json");
    let out = run(shrinkwrap().arg("fixup").arg(&dir).arg("--report").arg(&ok));
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&ok).unwrap()).unwrap();
    assert_eq!(doc["summary"]["stamped"], 1);
}
