//! Runs at the same time on one tree: two and three `fixup`s, and `stamp` racing `fixup`, 20
//! rounds each on a fresh copy of a store-shaped tree (a chain of libraries, programs, a
//! non-PIE program that takes the shifted layout, a read-only program, a copy of a large
//! system program); and three `stamp -o` into one OUT.
//! Every run must exit 0 and every file must end with the bytes and mode a single
//! uninterrupted run gives — never half of one stamp and half of another, never a tail one run
//! trimmed while another was writing it, no leftover temporary file.
//!
//! The runs are started together and nothing waits on a timer: each round is as much of a
//! race as the scheduler makes it, and twenty rounds of several runs make it likely that
//! every window (read, plan, append, commit, swap) is hit. Without the locks (`flock` in
//! `src/lock.rs` made a no-op) 2 to 16 rounds of 20 fail in each race, 2 to 7 of the
//! `stamp -o` one's.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{cp_a, exporting, have, run, s, snapshot, Cc, Entry, Store};

const ROUNDS: usize = 20;

const DEP: &str = "int dep(void) { return 40; }\n";
const FOO: &str = "int dep(void);\nint foo(void) { return dep() + 1; }\n";
const BAR: &str = "int foo(void);\nint bar(void) { return foo() + 1; }\n";
/// A deeper chain, so stamped libraries list more than their own entries: plans must not
/// depend on which of them another run has stamped already.
const BAZ: &str = "int bar(void);\nint baz(void) { return bar() + 1; }\n";
const DEEP: &str = "#include <stdio.h>\nint baz(void);\nint dep(void);\nint main(void) { printf(\"%d\\n\", baz() + dep()); return 0; }\n";
const APP: &str = "#include <stdio.h>\nint foo(void);\nint bar(void);\nint main(void) { printf(\"%d\\n\", foo() + bar()); return 0; }\n";

/// A tree to race on, and what one uninterrupted `fixup` makes of it.
struct Race {
    st: Store,
    /// The output tree (a real path, which ends up in DT_NEEDED): every round works here.
    out: PathBuf,
    /// The unstamped tree, copied to `out` before each round.
    template: PathBuf,
    /// The files `fixup` stamps, relative to `out`.
    stamped: Vec<PathBuf>,
    /// Everything under `out` after one uninterrupted `fixup`.
    reference: BTreeMap<PathBuf, Entry>,
}

impl Race {
    fn fixup(&self, jobs: &str) -> Command {
        let mut c = common::shrinkwrap();
        c.args(["fixup", "--quiet", "-j", jobs, "--store-dir"])
            .arg(&self.st.store)
            .arg(&self.out);
        c
    }

    /// The files `stamp` is given: what `fixup` stamps, but for the read-only program where
    /// `stamp` refuses it (not root).
    fn stampable(&self) -> Vec<PathBuf> {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let mut files = self.stamped.clone();
        files.retain(|f| root || f != Path::new("bin/readonly"));
        files
    }

    fn stamp(&self, files: &[PathBuf]) -> Command {
        let mut c = common::shrinkwrap();
        c.args(["stamp", "--store-dir"])
            .arg(&self.st.store)
            .args(files.iter().map(|f| self.out.join(f)));
        c
    }

    /// The files that differ from the reference, each with how.
    fn differences(&self) -> Vec<String> {
        let now = snapshot(&self.out);
        common::differences(&now, &self.reference)
            .into_iter()
            .map(|name| {
                let k = PathBuf::from(&name);
                let how = match (now.get(&k), self.reference.get(&k)) {
                    (None, _) => "missing".to_string(),
                    (_, None) => "left behind".to_string(),
                    (
                        Some(Entry::File { mode: a, bytes: x }),
                        Some(Entry::File { mode: b, bytes: y }),
                    ) => {
                        let readelf = run(Command::new("readelf").arg("-d").arg(self.out.join(&k)));
                        let complaint = String::from_utf8_lossy(&readelf.stderr)
                            .lines()
                            .next()
                            .unwrap_or("")
                            .to_string();
                        format!(
                            "mode {a:o} (want {b:o}), {} bytes (want {}){}",
                            x.len(),
                            y.len(),
                            if complaint.is_empty() {
                                String::new()
                            } else {
                                format!(", readelf: {complaint}")
                            }
                        )
                    }
                    _ => "changed kind".to_string(),
                };
                format!("{name}: {how}")
            })
            .collect()
    }

    /// Runs `commands` at once on a fresh copy of the tree, `ROUNDS` times; panics with every
    /// round that went wrong.
    fn race(&self, what: &str, commands: impl Fn() -> Vec<Command>) {
        let mut failures = Vec::new();
        for round in 0..ROUNDS {
            cp_a(&self.template, &self.out);
            let children: Vec<Child> = commands()
                .iter_mut()
                .map(|c| {
                    c.stdin(Stdio::null())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            let mut problems = Vec::new();
            for (i, child) in children.into_iter().enumerate() {
                let o = child.wait_with_output().unwrap();
                if !o.status.success() {
                    problems.push(format!(
                        "run {i} exited {:?}: {}",
                        o.status.code(),
                        String::from_utf8_lossy(&o.stderr).trim()
                    ));
                }
            }
            problems.extend(self.differences());
            if !problems.is_empty() {
                failures.push(format!("round {round}:\n    {}", problems.join("\n    ")));
            }
        }
        assert!(
            failures.is_empty(),
            "{what}: {} of {ROUNDS} rounds went wrong\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

/// Builds the tree and its reference result; `None` when there is no compiler.
fn build() -> Option<Race> {
    if !have("gcc") || !have("readelf") {
        return None;
    }
    let st = Store::new();
    let cc = "gcc";
    let dep = st.lib_dir("dep");
    let out = std::fs::canonicalize(st.package("out")).unwrap();
    let (bin, lib) = (out.join("bin"), out.join("lib"));
    let libdep = Cc::new(cc, DEP, dep.join("libdep.so.1"))
        .shared(Some("libdep.so.1"))
        .runpath(&st.runpath(&[]))
        .build();
    let libfoo = Cc::new(cc, FOO, lib.join("libfoo.so.1.0.0"))
        .shared(Some("libfoo.so.1"))
        .runpath(&st.runpath(&[&s(&dep)]))
        .link(&libdep)
        .build();
    std::os::unix::fs::symlink("libfoo.so.1.0.0", lib.join("libfoo.so.1")).unwrap();
    let rpath_link = format!("-Wl,-rpath-link,{}", s(&dep));
    let libbar = Cc::new(cc, BAR, lib.join("libbar.so.1"))
        .shared(Some("libbar.so.1"))
        .runpath(&st.runpath(&[&s(&lib)]))
        .link(&libfoo)
        .arg(&rpath_link)
        .build();
    let libbaz = Cc::new(cc, BAZ, lib.join("libbaz.so.1"))
        .shared(Some("libbaz.so.1"))
        .runpath(&st.runpath(&[&s(&lib)]))
        .link(&libbar)
        .arg(&rpath_link)
        .arg(format!("-Wl,-rpath-link,{}", s(&lib)))
        .build();
    let deep = Cc::new(cc, DEEP, bin.join("deep"))
        .runpath(&st.runpath(&[&s(&lib), &s(&dep)]))
        .link(&libbaz)
        .link(&libdep)
        .arg(format!("-Wl,-rpath-link,{}", s(&lib)))
        .build();
    let app = |name: &str, source: &str, extra: &[&str]| {
        let mut c = Cc::new(cc, source, bin.join(name))
            .runpath(&st.runpath(&[&s(&lib)]))
            .link(&libbar)
            .link(&libfoo)
            .arg(&rpath_link);
        for a in extra {
            c = c.arg(a);
        }
        c.build()
    };
    for i in 0..6 {
        app(&format!("app{i}"), APP, &[]);
    }
    // Takes the shifted layout: a new file swapped in for the old.
    let shifted = app("shifted", &exporting(APP), &["-no-pie", "-rdynamic"]);
    let readonly = app("readonly", APP, &[]);
    std::fs::set_permissions(&readonly, std::fs::Permissions::from_mode(0o555)).unwrap();
    // A large file, so a stamp takes long enough for others to run into it.
    if Path::new("/usr/bin/git").exists() {
        std::fs::copy("/usr/bin/git", bin.join("git")).unwrap();
    } else {
        common::skip("/usr/bin/git does not exist: the large file of the concurrency tree");
    }

    let template = st.tmp.path().join("template");
    cp_a(&out, &template);
    let before = snapshot(&out);
    let shifted_inode = std::fs::metadata(&shifted).unwrap().ino();

    // The reference: one run on its own.
    let mut race = Race {
        st,
        out,
        template,
        stamped: Vec::new(),
        reference: BTreeMap::new(),
    };
    let o = run(&mut race.fixup("2"));
    assert!(o.status.success(), "fixup alone: {o:?}");
    race.reference = snapshot(&race.out);
    race.stamped = race
        .reference
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    // The test means something only if the reference stamped what it should.
    let mut expect: Vec<String> = (0..6).map(|i| format!("bin/app{i}")).collect();
    expect.extend(
        [
            "bin/deep",
            "bin/shifted",
            "bin/readonly",
            "lib/libbar.so.1",
            "lib/libbaz.so.1",
            "lib/libfoo.so.1.0.0",
        ]
        .map(String::from),
    );
    if race.out.join("bin/git").exists() {
        expect.push("bin/git".into());
    }
    expect.sort();
    let mut got: Vec<String> = race.stamped.iter().map(|p| s(p)).collect();
    got.sort();
    assert_eq!(got, expect, "what one fixup stamps");
    assert_ne!(
        std::fs::metadata(&shifted).unwrap().ino(),
        shifted_inode,
        "bin/shifted did not take the shifted layout"
    );
    assert_eq!(std::fs::metadata(&readonly).unwrap().mode() & 0o7777, 0o555);
    let ran = run(Command::new(&readonly).env_clear());
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "83\n", "{ran:?}");
    let ran = run(Command::new(&deep).env_clear());
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "83\n", "{ran:?}");
    // Premises of the races: a second run writes nothing, and `stamp` writes what `fixup`
    // writes, so any other result is the race's doing.
    let o = run(&mut race.fixup("1"));
    assert!(o.status.success(), "fixup again: {o:?}");
    assert_eq!(
        race.differences(),
        Vec::<String>::new(),
        "a second fixup changed files"
    );
    cp_a(&race.template, &race.out);
    let o = run(&mut race.stamp(&race.stampable()));
    assert!(o.status.success(), "stamp alone: {o:?}");
    // Every file stamp was given is already what one uninterrupted fixup makes of it, before
    // fixup runs again (which would otherwise hide a stamp that did nothing).
    let now = snapshot(&race.out);
    let stamp_differs: Vec<String> = race
        .stampable()
        .iter()
        .filter(|f| now.get(*f) != race.reference.get(*f))
        .map(|f| s(f))
        .collect();
    assert_eq!(
        stamp_differs,
        Vec::<String>::new(),
        "stamp alone left these unlike one fixup run"
    );
    // (Only the read-only program, when not root, is left for this to stamp.)
    let o = run(&mut race.fixup("1"));
    assert!(o.status.success(), "fixup after stamp: {o:?}");
    assert_eq!(
        race.differences(),
        Vec::<String>::new(),
        "stamp and fixup differ"
    );
    Some(race)
}

#[test]
fn two_fixups_at_once_leave_every_file_as_one_run_does() {
    let Some(r) = build() else { return };
    r.race("two fixups", || vec![r.fixup("2"), r.fixup("1")]);
}

#[test]
fn three_fixups_at_once_leave_every_file_as_one_run_does() {
    let Some(r) = build() else { return };
    r.race("three fixups", || {
        vec![r.fixup("2"), r.fixup("1"), r.fixup("2")]
    });
}

#[test]
fn stamp_racing_fixup_leaves_every_file_as_one_run_does() {
    let Some(r) = build() else { return };
    // `stamp` takes the files in reverse order, so the two meet in the middle as well as at
    // the ends.
    let mut files = r.stampable();
    files.reverse();
    r.race("stamp and fixup", || vec![r.stamp(&files), r.fixup("2")]);
}

#[test]
fn stamps_into_one_output_at_once_leave_it_as_one_run_does() {
    let st = Store::new();
    let src = st.package("src").join("ls");
    std::fs::copy("/usr/bin/ls", &src).unwrap();
    let dir = st.package("o");
    let out = dir.join("ls");
    let stamp = || {
        let mut c = common::shrinkwrap();
        c.arg("stamp").arg(&src).arg("-o").arg(&out);
        c
    };
    let o = run(&mut stamp());
    assert!(o.status.success(), "{o:?}");
    let reference = std::fs::read(&out).unwrap();
    assert!(reference != std::fs::read(&src).unwrap(), "not stamped");
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        std::fs::remove_file(&out).unwrap();
        let children: Vec<Child> = (0..3)
            .map(|_| {
                stamp()
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let o = child.wait_with_output().unwrap();
            if !o.status.success() {
                failures.push(format!(
                    "round {round}: exited {:?}: {}",
                    o.status.code(),
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
        }
        if std::fs::read(&out).ok() != Some(reference.clone()) {
            failures.push(format!("round {round}: OUT differs from one run's"));
        }
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        if names.len() != 1 {
            failures.push(format!("round {round}: left {names:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
