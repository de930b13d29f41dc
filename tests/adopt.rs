//! `shrinkwrap adopt`: "foreign" programs (plain `cc`: no RUNPATH, the system interpreter path)
//! given their libraries from a pool of store-like directories holding the needed libraries,
//! two versions of one of them, a copy for another OS, an i686 copy, one library only in a
//! nearer version, and two glibc copies (this machine's, copied) whose dependants disagree.

mod common;

use common::NIX_CONFIG;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fake_hash, have, have_loader, run, s, shrinkwrap, Cc};
use serde_json::Value;

const BAR: &str = "int bar(void) { return 1; }\n";
const BAR2: &str = "int bar(void) { return 2; }\n";
const FOO: &str = "int bar(void);\nint foo(void) { return 40 + bar(); }\n";
const APP: &str =
    "#include <stdio.h>\nint foo(void);\nint main(void) { printf(\"%d\\n\", foo()); return 0; }\n";
const OLD: &str = "int old(void) { return 7; }\n";
const APP_OLD: &str = "int old(void);\nint main(void) { return old(); }\n";
const I686_GCC: &str = "i686-linux-gnu-gcc";

/// The pool and the programs.
struct Pool {
    _tmp: tempfile::TempDir,
    pool: PathBuf,
    glibc: PathBuf,
    bar: PathBuf,
    bar2: PathBuf,
    /// Needs libfoo.so.1 → libbar.so.1 (two versions in the pool).
    app: PathBuf,
    /// Needs libold.so.1; the pool has only libold.so.2.
    app_old: PathBuf,
}

/// `<pool>/<hash>-<name>/lib`, created.
fn lib_dir(pool: &Path, name: &str) -> PathBuf {
    let d = pool.join(format!("{}-{name}", fake_hash(name))).join("lib");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// This machine's glibc (libc.so.6 and its loader) copied into a store-like directory; each
/// copy's libc.so.6 gets its name appended (bytes past the end the loader never reads), so two
/// copies are two builds, not one file twice.
fn copy_glibc(pool: &Path, name: &str) -> PathBuf {
    let d = lib_dir(pool, name);
    for f in ["/lib/x86_64-linux-gnu/libc.so.6", common::LOADER] {
        let real = std::fs::canonicalize(f).unwrap();
        let base = Path::new(f).file_name().unwrap();
        std::fs::copy(real, d.join(base)).unwrap();
    }
    let libc = d.join("libc.so.6");
    let mut bytes = std::fs::read(&libc).unwrap();
    bytes.extend_from_slice(name.as_bytes());
    std::fs::write(&libc, bytes).unwrap();
    d
}

fn build() -> Option<Pool> {
    if !have("cc") || !have("readelf") || !have_loader() {
        return None;
    }
    let tmp = tempfile::Builder::new()
        .prefix("shrinkwrap-adopt-")
        .tempdir()
        .unwrap();
    let pool = tmp.path().join("pool");
    let glibc = copy_glibc(&pool, "glibc-2.36");
    let bar = lib_dir(&pool, "bar-1");
    let bar2 = lib_dir(&pool, "bar-2");
    let libbar = Cc::new("cc", BAR, bar.join("libbar.so.1"))
        .shared(Some("libbar.so.1"))
        .build();
    Cc::new("cc", BAR2, bar2.join("libbar.so.1"))
        .shared(Some("libbar.so.1"))
        .build();
    // The same libbar twice more: an identical copy in another path, and a development link
    // beside it; each counts once.
    let copy = lib_dir(&pool, "bar-1-copy");
    std::fs::copy(&libbar, copy.join("libbar.so.1")).unwrap();
    std::os::unix::fs::symlink("libbar.so.1", bar.join("libbar.so")).unwrap();
    // A third libbar, for another OS (FreeBSD's OS ABI): never a candidate.
    let mut bsd = std::fs::read(&libbar).unwrap();
    bsd[7] = 9;
    std::fs::write(lib_dir(&pool, "bar-freebsd").join("libbar.so.1"), bsd).unwrap();
    let foo_dir = lib_dir(&pool, "foo");
    let libfoo = Cc::new("cc", FOO, foo_dir.join("libfoo.so.1"))
        .shared(Some("libfoo.so.1"))
        .link(&libbar)
        .build();
    // The nearest version only.
    let old = lib_dir(&pool, "old");
    let libold1 = Cc::new("cc", OLD, tmp.path().join("build/libold.so.1"))
        .shared(Some("libold.so.1"))
        .build();
    Cc::new("cc", OLD, old.join("libold.so.2"))
        .shared(Some("libold.so.2"))
        .build();
    if have(I686_GCC) {
        let wrong = lib_dir(&pool, "foo-i686");
        Cc::new(I686_GCC, FOO, wrong.join("libfoo.so.1"))
            .shared(Some("libfoo.so.1"))
            .arg("-nostdlib")
            .build();
    }
    let bin = tmp.path().join("foreign");
    let app = Cc::new("cc", APP, bin.join("app"))
        .link(&libfoo)
        .arg(format!("-Wl,-rpath-link,{}", s(&bar)))
        .build();
    let app_old = Cc::new("cc", APP_OLD, bin.join("app-old"))
        .link(&libold1)
        .build();
    Some(Pool {
        _tmp: tmp,
        pool,
        glibc,
        bar,
        bar2,
        app,
        app_old,
    })
}

/// `adopt ARGS... FILE --from POOL`: (exit code, stdout, stderr).
fn adopt(p: &Pool, args: &[&str], file: &Path) -> (i32, String, String) {
    let o = run(shrinkwrap()
        .arg("adopt")
        .args(args)
        .arg(file)
        .arg("--from")
        .arg(&p.pool)
        .env("XDG_CACHE_HOME", p.pool.parent().unwrap().join("cache")));
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn two_versions_fail_listing_both_and_prefer_chooses() {
    let Some(p) = build() else { return };
    let before = std::fs::read(&p.app).unwrap();
    let (code, out, err) = adopt(&p, &["--dry-run"], &p.app);
    assert_eq!(code, 1, "{out}{err}");
    let line = format!("shrinkwrap: {}: libbar.so.1 (needed by ", p.app.display());
    assert!(err.starts_with(&line), "{err}");
    // Two builds: bar-1 (with its identical copy and its development link, each counted
    // once; either path may stand for it), and bar-2. The FreeBSD and i686 ones do not fit.
    assert!(err.contains("2 candidates"), "{err}");
    assert!(err.contains("-bar-1"), "{err}");
    assert!(err.contains(&s(&p.bar2.join("libbar.so.1"))), "{err}");
    assert!(
        !err.contains("freebsd") && !err.contains("/libbar.so,"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&p.app).unwrap(),
        before,
        "the file is untouched"
    );

    let bar2 = s(&p.bar2);
    let (code, out, err) = adopt(
        &p,
        &[
            "--dry-run",
            "--json",
            "--prefer",
            &bar2,
            "--interpreter",
            "/opt/ld.so",
        ],
        &p.app,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["files"][0]["interpreter"],
        "/opt/ld.so"
    );
    let (code, out, err) = adopt(&p, &["--dry-run", "--json", "--prefer", &bar2], &p.app);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let libs = &v["files"][0]["libraries"];
    let path_of = |name: &str| {
        libs.as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .map(|l| l["path"].as_str().unwrap().to_string())
    };
    assert_eq!(path_of("libbar.so.1"), Some(s(&p.bar2.join("libbar.so.1"))));
    // The i686 libfoo is never a candidate; the x86_64 one is the only fit.
    assert!(
        path_of("libfoo.so.1").unwrap().contains("-foo/lib/"),
        "{out}"
    );
    assert_eq!(path_of("libc.so.6"), Some(s(&p.glibc.join("libc.so.6"))));
    assert_eq!(
        v["files"][0]["interpreter"],
        s(&p.glibc.join("ld-linux-x86-64.so.2"))
    );
}

#[test]
fn print_env_runs_the_unmodified_program_under_the_pool_loader() {
    let Some(p) = build() else { return };
    let before = std::fs::read(&p.app).unwrap();
    let bar1 = s(&p.bar);
    let (code, out, err) = adopt(&p, &["--print-env", "--prefer", &bar1], &p.app);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(&p.app).unwrap(),
        before,
        "--print-env edits nothing"
    );
    let var = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} in {out}"))
            .trim_matches('\'')
            .to_string()
    };
    let (ld, path) = (var("NIX_LD"), var("NIX_LD_LIBRARY_PATH"));
    assert_eq!(ld, s(&p.glibc.join("ld-linux-x86-64.so.2")));
    // nix-ld's stand-in: the pool's loader run directly with the library path.
    let ran = run(Command::new(&ld)
        .arg("--library-path")
        .arg(&path)
        .arg(&p.app)
        .env_clear());
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "41\n", "{ran:?}");
}

#[test]
fn a_lock_pins_the_choices_and_a_changed_pinned_library_fails() {
    let Some(p) = build() else { return };
    let lock = p.pool.parent().unwrap().join("app.lock.json");
    let bar2 = s(&p.bar2);
    let lock_s = s(&lock);
    // --dry-run writes no lock; a real choice (--print-env) does.
    let (code, _, err) = adopt(
        &p,
        &["--dry-run", "--json", "--lock", &lock_s, "--prefer", &bar2],
        &p.app,
    );
    assert_eq!(code, 0, "{err}");
    assert!(!lock.exists(), "--dry-run wrote the lock");
    let (code, first, err) = adopt(
        &p,
        &["--print-env", "--lock", &lock_s, "--prefer", &bar2],
        &p.app,
    );
    assert_eq!(code, 0, "{err}");
    let pins: Value = serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    assert_eq!(pins["version"], 1);
    let bar = &pins["libraries"]["libbar.so.1"];
    assert_eq!(bar["path"], s(&p.bar2.join("libbar.so.1")));
    assert_eq!(bar["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(bar["exact"], true);
    // With the lock, nothing is asked and nothing needs preferring: the same choices.
    let (code, again, err) = adopt(&p, &["--print-env", "--lock", &lock_s], &p.app);
    assert_eq!(code, 0, "{err}");
    assert_eq!(again, first);
    // The pinned library changes: a clear failure, unless --update-lock.
    Cc::new("cc", BAR, p.bar2.join("libbar.so.1"))
        .shared(Some("libbar.so.1"))
        .arg("-DCHANGED=1")
        .arg("-O2")
        .build();
    let (code, _, err) = adopt(&p, &["--print-env", "--lock", &lock_s], &p.app);
    assert_eq!(code, 1);
    assert!(
        err.contains("libbar.so.1 is pinned to") && err.contains("its content changed"),
        "{err}"
    );
    let (code, _, err) = adopt(
        &p,
        &[
            "--print-env",
            "--lock",
            &lock_s,
            "--update-lock",
            "--prefer",
            &bar2,
        ],
        &p.app,
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_nearest_version_is_offered_never_taken() {
    let Some(p) = build() else { return };
    let (code, _, err) = adopt(&p, &["--dry-run"], &p.app_old);
    assert_eq!(code, 1);
    assert!(err.contains("libold.so.1"), "{err}");
    assert!(err.contains("no exact match"), "{err}");
    assert!(err.contains("libold.so.2"), "{err}");
}

#[test]
fn of_two_glibc_copies_the_one_the_closure_agrees_with_is_taken_or_none_is() {
    // Both ways round: the glibc libbar agrees with sorts first, then last (the copies share an
    // identical loader, which must not stand for the other copy's).
    for (agreed, other) in [("glibc-a", "glibc-b"), ("glibc-b", "glibc-a")] {
        let Some(p) = build() else { return };
        let b = copy_glibc(&p.pool, agreed);
        let a = copy_glibc(&p.pool, other);
        std::fs::remove_dir_all(p.glibc.parent().unwrap()).unwrap();
        std::fs::remove_dir_all(p.bar2.parent().unwrap()).unwrap();
        std::fs::remove_dir_all(
            p.pool
                .join(format!("{}-bar-1-copy", fake_hash("bar-1-copy"))),
        )
        .unwrap();
        let libbar = Cc::new("cc", BAR, p.bar.join("libbar.so.1"))
            .shared(Some("libbar.so.1"))
            .runpath(&s(&b))
            .build();
        let (code, out, err) = adopt(&p, &["--dry-run", "--json"], &p.app);
        assert_eq!(
            code, 0,
            "{agreed}: the one glibc libbar agrees with is taken: {err}"
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["files"][0]["interpreter"],
            s(&b.join("ld-linux-x86-64.so.2")),
            "{out}"
        );
        // Preferring the other glibc's libbar... there is none; preferring the other glibc
        // itself is refused, named, rather than ignored.
        let (code, _, err) = adopt(&p, &["--dry-run", "--prefer", &s(&a)], &p.app);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("was built against the glibc in"), "{err}");
        // Now libfoo names the other glibc: no glibc fits both, and nothing is mixed.
        let foo_dir = p.pool.join(format!("{}-foo", fake_hash("foo"))).join("lib");
        Cc::new("cc", FOO, foo_dir.join("libfoo.so.1"))
            .shared(Some("libfoo.so.1"))
            .runpath(&format!("{}:{}", s(&a), s(&p.bar)))
            .link(&libbar)
            .build();
        let (code, _, err) = adopt(&p, &["--dry-run"], &p.app);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("was built against the glibc in"), "{err}");
        assert!(err.contains("one process cannot mix them"), "{err}");
    }
}

/// A library that asks for a name only a library without a soname has as its file name: the
/// loader would search for it, not match it; refused, naming it. From the program itself the
/// file name is enough (it names the file by path once adopted).
#[test]
fn a_library_without_soname_serves_the_program_only() {
    let Some(p) = build() else { return };
    let build_dir = p.pool.parent().unwrap().join("build");
    let nos = lib_dir(&p.pool, "nos");
    let libnos = Cc::new("cc", OLD, nos.join("libnos.so"))
        .shared(None)
        .build();
    let qux = lib_dir(&p.pool, "qux");
    // Linked as `-lnos`: a library without a soname is then named by its file name (by the
    // path given, were it linked by path).
    let _ = &libnos;
    let libqux = Cc::new(
        "cc",
        "int old(void);\nint qux(void) { return old(); }\n",
        qux.join("libqux.so.1"),
    )
    .shared(Some("libqux.so.1"))
    .arg(format!("-L{}", s(&nos)))
    .arg("-lnos")
    .build();
    let direct = Cc::new("cc", APP_OLD, build_dir.join("direct"))
        .arg(format!("-L{}", s(&nos)))
        .arg("-lnos")
        .build();
    let (code, _, err) = adopt(&p, &["--dry-run"], &direct);
    assert_eq!(code, 0, "the program's own request: {err}");
    let through = Cc::new(
        "cc",
        "int qux(void);\nint main(void) { return qux(); }\n",
        build_dir.join("through"),
    )
    .link(&libqux)
    .arg(format!("-Wl,-rpath-link,{}", s(&nos)))
    .build();
    let (code, _, err) = adopt(&p, &["--dry-run"], &through);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("libnos.so (needed by"), "{err}");
    assert!(err.contains("it has no soname"), "{err}");
}

/// Relative pool and preference paths still give absolute paths in the file.
#[test]
fn relative_paths_are_made_absolute() {
    let Some(p) = build() else { return };
    let parent = p.pool.parent().unwrap();
    let bar2 = p.bar2.strip_prefix(parent).unwrap();
    let o = run(shrinkwrap()
        .current_dir(parent)
        .args(["adopt", "--dry-run", "--json", "--from", "pool", "--prefer"])
        .arg(bar2)
        .arg(&p.app)
        .env("XDG_CACHE_HOME", parent.join("cache")));
    assert!(o.status.success(), "{o:?}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = &v["files"][0];
    assert!(f["interpreter"].as_str().unwrap().starts_with('/'), "{f}");
    for l in f["libraries"].as_array().unwrap() {
        assert!(l["path"].as_str().unwrap().starts_with(&s(&p.pool)), "{l}");
    }
    let o = run(shrinkwrap()
        .args(["adopt", "--dry-run", "--interpreter", "ld.so", "--from"])
        .arg(&p.pool)
        .arg(&p.app));
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

/// Polls `ready` every 50 ms for up to 20 s (a condition, not a guess at how long to wait).
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `adopt ARGS FILE --from POOL` run in a real terminal (tmux): once `question` is on the
/// screen, `keys(screen)` gives the keys to send; (exit code, stdout, the screen asked on).
fn on_terminal(
    p: &Pool,
    args: &str,
    file: &Path,
    question: &str,
    keys: impl FnOnce(&str) -> Vec<&'static str>,
) -> (i32, String, String) {
    let dir = p.pool.parent().unwrap();
    let (out, done) = (dir.join("out.txt"), dir.join("done"));
    let _ = std::fs::remove_file(&done);
    let session = format!("shrinkwrap-adopt-{}", std::process::id());
    let socket = dir.join("tmux.sock");
    let script = format!(
        "XDG_CACHE_HOME={} {} adopt {args} {} --from {} > {} ; echo $? > {}",
        s(&dir.join("cache")),
        env!("CARGO_BIN_EXE_shrinkwrap"),
        s(file),
        s(&p.pool),
        s(&out),
        s(&done)
    );
    let tmux = |args: &[&str]| {
        run(Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args(args)
            .env_remove("TMUX"))
    };
    let size = ["-x", "200", "-y", "40"];
    let mut start = vec!["new-session", "-d", "-s", &session];
    start.extend(size);
    start.push(&script);
    let started = tmux(&start);
    assert!(started.status.success(), "{started:?}");
    // Keep the pane once the run ends (it waits for our keys first), to read what it said.
    tmux(&["set-option", "-t", &session, "remain-on-exit", "on"]);
    let screen = || {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout).into_owned()
    };
    wait_until("the question", || screen().contains(question));
    let shown = screen();
    let mut send = vec!["send-keys", "-t", &session];
    send.extend(keys(&shown));
    tmux(&send);
    wait_until("the run to end", || {
        std::fs::read_to_string(&done).is_ok_and(|s| s.ends_with('\n'))
    });
    // What the terminal showed, then what it shows at the end (stderr went there).
    let shown = format!("{shown}\n--- at the end ---\n{}", screen());
    let _ = tmux(&["kill-server"]);
    let code = std::fs::read_to_string(&done)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (code, std::fs::read_to_string(&out).unwrap(), shown)
}

/// On a real terminal (tmux), the two libbar candidates are offered and the second listed is
/// taken with Down, Enter; what the run prints is that choice.
#[test]
fn the_choice_is_asked_on_a_terminal() {
    let Some(p) = build() else { return };
    if !have("tmux") {
        return;
    }
    let mut listed = Vec::new();
    let (code, out, shown) = on_terminal(
        &p,
        "--dry-run --json",
        &p.app,
        "which libbar.so.1?",
        |shown| {
            listed = shown
                .lines()
                .filter_map(|l| {
                    l.trim_start_matches(['>', ' '])
                        .strip_suffix("/libbar.so.1")
                })
                .map(|d| format!("{d}/libbar.so.1"))
                .collect();
            vec!["Down", "Enter"]
        },
    );
    // Two builds of libbar: bar-1 (or its identical copy, counted once) and bar-2.
    assert_eq!(listed.len(), 2, "{shown}");
    assert!(listed.iter().any(|l| l.contains("-bar-1")), "{shown}");
    assert!(listed.contains(&s(&p.bar2.join("libbar.so.1"))), "{shown}");
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    let bar = v["files"][0]["libraries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "libbar.so.1")
        .unwrap()
        .clone();
    assert_eq!(bar["path"], listed[1]);
}

/// No exact match: on a terminal the nearest version is offered, marked inexact; taken, the
/// program's DT_NEEDED entry names that file, and the adopted program runs.
#[test]
fn an_inexact_version_is_taken_only_when_chosen() {
    let Some(p) = build() else { return };
    if !have("tmux") {
        return;
    }
    let question = "libold.so.1 is not in the pool; use another version instead?";
    let (code, out, shown) = on_terminal(&p, "", &p.app_old, question, |_| vec!["Enter"]);
    assert!(shown.contains("(inexact: libold.so.2)"), "{shown}");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("libold.so.1 => ") && out.contains("libold.so.2  (inexact)"),
        "{out}"
    );
    assert!(common::readelf_needed(&p.app_old)[0].ends_with("/lib/libold.so.2"));
    assert_eq!(run(&mut Command::new(&p.app_old)).status.code(), Some(7));
}

/// The index cache is written, and a library changed after it was cached is seen as it is now:
/// libbar in bar-1 replaced by a file that is not a library leaves bar-2's the only one, taken
/// without a question.
#[test]
fn the_index_cache_notices_a_changed_file() {
    let Some(p) = build() else { return };
    let (code, _, err) = adopt(&p, &["--dry-run"], &p.app);
    assert_eq!(code, 1, "two libbar: {err}");
    let cache = p
        .pool
        .parent()
        .unwrap()
        .join("cache/shrinkwrap/pool-index.json");
    assert!(cache.exists(), "no cache at {}", cache.display());
    std::fs::write(p.bar.join("libbar.so.1"), b"not a library any more").unwrap();
    std::fs::remove_dir_all(
        p.pool
            .join(format!("{}-bar-1-copy", fake_hash("bar-1-copy"))),
    )
    .unwrap();
    let (code, out, err) = adopt(&p, &["--dry-run"], &p.app);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&s(&p.bar2.join("libbar.so.1"))), "{out}");
    // --no-cache keeps none.
    std::fs::remove_file(&cache).unwrap();
    let (code, _, err) = adopt(&p, &["--dry-run", "--no-cache"], &p.app);
    assert_eq!(code, 0, "{err}");
    assert!(!cache.exists(), "--no-cache wrote the cache");
}

/// The loader's `--list` of `prog` under `loader`, paths only, in order (with `library_path`
/// for an unmodified program).
fn listed(loader: &str, prog: &Path, library_path: Option<&str>) -> Vec<String> {
    let mut c = Command::new(loader);
    if let Some(p) = library_path {
        c.arg("--library-path").arg(p);
    }
    let out = run(c.arg("--list").arg(prog).env_clear());
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = l.split_once(" => ").map_or(l, |(_, p)| p);
            path.split(" (").next().map(str::to_string)
        })
        .filter(|p| p.starts_with('/'))
        .collect()
}

/// Adopted in place: the program gets the pool's loader as its interpreter, runs, lists under
/// that loader as the unmodified program does under nix-ld's stand-in, probes nothing that
/// fails; the same lock gives another copy the same bytes; unwrap gives the original back.
#[test]
fn an_adopted_program_runs_on_the_pool_alone() {
    let Some(p) = build() else { return };
    if !have("strace") {
        return;
    }
    let original = std::fs::read(&p.app).unwrap();
    let copy = p.app.with_file_name("app-copy");
    std::fs::copy(&p.app, &copy).unwrap();
    let lock = p.pool.parent().unwrap().join("adopt.lock");
    let (lock_s, bar1) = (s(&lock), s(&p.bar));
    let (code, env, err) = adopt(&p, &["--print-env", "--prefer", &bar1], &p.app);
    assert_eq!(code, 0, "{err}");
    let var = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .trim_matches('\'')
            .to_string()
    };
    let (loader, path) = (var("NIX_LD"), var("NIX_LD_LIBRARY_PATH"));
    let before = listed(&loader, &p.app, Some(&path));

    let (code, out, err) = adopt(&p, &["--lock", &lock_s, "--prefer", &bar1], &p.app);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("{}: edited", p.app.display())),
        "{out}"
    );
    assert!(lock.exists(), "the lock is written");
    let interp = run(Command::new("readelf").arg("-lW").arg(&p.app));
    assert!(
        String::from_utf8_lossy(&interp.stdout)
            .contains(&format!("[Requesting program interpreter: {loader}]")),
        "{interp:?}"
    );
    let ran = run(Command::new(&p.app).env_clear());
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "41\n", "{ran:?}");
    assert_eq!(listed(&loader, &p.app, None), before);
    let (_, failed) = common::lookups(p.pool.parent().unwrap(), &p.app);
    assert_eq!(failed, Vec::<String>::new(), "no failed library lookups");

    // Again: nothing to do. With the lock and no preference, another copy: the same bytes.
    let adopted = std::fs::read(&p.app).unwrap();
    let (code, out, err) = adopt(&p, &["--lock", &lock_s], &p.app);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": unchanged"), "{out}");
    assert_eq!(std::fs::read(&p.app).unwrap(), adopted);
    let (code, _, err) = adopt(&p, &["--lock", &lock_s], &copy);
    assert_eq!(code, 0, "{err}");
    // The copy's path differs only in its name, which is not in the file.
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        adopted,
        "the lock gives the same bytes"
    );

    let (code, _, err) = common::sw(&["unwrap"], &p.app);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(&p.app).unwrap(),
        original,
        "unwrap gives the original back"
    );
}

/// `nix-store ARGS...` with the settings that work here: (success, stdout, stderr).
fn nix_store(args: &[&str]) -> (bool, String, String) {
    let o = run(Command::new("nix-store")
        .args(args)
        .env("NIX_CONFIG", NIX_CONFIG));
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// With Debian's Nix and the real `/nix/store` as the pool: a library and a glibc copy added
/// to the store, a program adopted from the whole store with `--gc-root`, and every store path
/// it uses is then kept alive (`nix-store --delete` refuses each), and the program runs.
#[test]
fn gc_roots_keep_the_chosen_store_paths_alive() {
    if !have("nix-store") || !have("cc") || !have_loader() {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("shrinkwrap-adopt-nix-")
        .tempdir()
        .unwrap();
    // Sonames no other test uses, so the store holds one candidate for each.
    let lib_src = tmp.path().join("shrinkwrap-adopt-gc-lib/lib");
    std::fs::create_dir_all(&lib_src).unwrap();
    let lib = Cc::new(
        "cc",
        "#include <unistd.h>\nint adoptgc(void) { return getpid() > 0 ? 41 : 0; }\n",
        lib_src.join("libshrinkwrapadoptgc.so.1"),
    )
    .shared(Some("libshrinkwrapadoptgc.so.1"))
    .build();
    let prog = Cc::new(
        "cc",
        "int adoptgc(void);\nint main(void) { return adoptgc(); }\n",
        tmp.path().join("bin/prog"),
    )
    .link(&lib)
    .build();
    let glibc_src = tmp.path().join("shrinkwrap-adopt-gc-glibc");
    let glibc_lib = glibc_src.join("lib");
    std::fs::create_dir_all(&glibc_lib).unwrap();
    for f in ["/lib/x86_64-linux-gnu/libc.so.6", common::LOADER] {
        let base = Path::new(f).file_name().unwrap();
        std::fs::copy(std::fs::canonicalize(f).unwrap(), glibc_lib.join(base)).unwrap();
    }
    let add = |dir: &Path| {
        let (ok, path, err) = nix_store(&["--add", &s(dir)]);
        assert!(ok, "nix-store --add: {err}");
        PathBuf::from(path)
    };
    let lib_path = add(lib_src.parent().unwrap());
    let glibc_path = add(&glibc_src);
    let roots = tmp.path().join("roots");
    let o = run(shrinkwrap()
        .args(["adopt", "--from", "/nix/store", "--store-dir", "/nix/store"])
        .arg("--prefer")
        .arg(&glibc_path)
        .arg("--gc-root")
        .arg(&roots)
        .arg(&prog)
        .env("XDG_CACHE_HOME", tmp.path().join("cache")));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(run(&mut Command::new(&prog)).status.code(), Some(41));
    for path in [&lib_path, &glibc_path] {
        let link = roots.join(path.file_name().unwrap());
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            *path,
            "a root for {}",
            path.display()
        );
        let (deleted, _, why) = nix_store(&["--delete", &s(path)]);
        assert!(!deleted, "{} is not kept alive", path.display());
        assert!(why.contains("alive"), "{why}");
    }
    // Leave the store as it was: without the roots the paths go.
    std::fs::remove_dir_all(&roots).unwrap();
    for path in [&lib_path, &glibc_path] {
        let (deleted, _, why) = nix_store(&["--delete", &s(path)]);
        assert!(deleted, "{why}");
    }
}

/// A program nobody here built — Debian's own `curl` (or `git`), copied — adopted against a
/// pool of this machine's libraries laid out as store paths (glibc's parts in one): it runs
/// with the pool's loader, prints what the original prints, loads every library from the pool,
/// and searches for nothing.
#[test]
fn a_prebuilt_debian_program_is_adopted() {
    if !have("readelf") || !have("strace") || !have_loader() {
        return;
    }
    let Some(system) = ["/usr/bin/curl", "/usr/bin/git"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        common::skip("neither /usr/bin/curl nor /usr/bin/git exists");
        return;
    };
    let tmp = tempfile::Builder::new()
        .prefix("shrinkwrap-adopt-deb-")
        .tempdir()
        .unwrap();
    let pool = tmp.path().join("pool");
    let glibc = lib_dir(&pool, "glibc");
    for path in common::loader_paths(common::LOADER, &system).unwrap() {
        let real = std::fs::canonicalize(&path).unwrap();
        let base = Path::new(&path)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // glibc's parts, by the project's own list, go into one directory.
        let is_glibc = shrinkwrap::resolve::is_glibc_part(&base);
        let dir = if is_glibc {
            glibc.clone()
        } else {
            lib_dir(&pool, &base.replace('+', "p"))
        };
        std::fs::copy(real, dir.join(&base)).unwrap();
    }
    let prog = tmp.path().join(system.file_name().unwrap());
    std::fs::copy(&system, &prog).unwrap();
    let o = run(shrinkwrap()
        .arg("adopt")
        .arg(&prog)
        .arg("--from")
        .arg(&pool)
        .env("XDG_CACHE_HOME", tmp.path().join("cache")));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let version = |p: &Path| {
        let o = run(Command::new(p).arg("--version").env_clear());
        assert!(o.status.success(), "{}: {o:?}", p.display());
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(version(&prog), version(&system));
    let loader = s(&glibc.join("ld-linux-x86-64.so.2"));
    let libs = listed(&loader, &prog, None);
    assert!(!libs.is_empty());
    for l in &libs {
        assert!(
            l.starts_with(&s(&pool)),
            "{l} is not from the pool: {libs:?}"
        );
    }
    // No failed probe, measured (`explain --measure`: strace, stopped before main).
    let o = run(shrinkwrap()
        .args(["explain", "--json", "--measure"])
        .arg(&prog));
    assert!(o.status.success(), "{o:?}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let measured = &v["files"][0]["measured"]["stamped"];
    assert_eq!(measured["failed"], 0, "{v:#}");
    assert_eq!(
        measured["calls"], v["files"][0]["stamped"]["calls"],
        "{v:#}"
    );
}

/// An inexact choice serves the program's own entry only: when a library of the closure asks
/// for the same missing name, the run fails saying the loader would not take it there.
#[test]
fn an_inexact_version_a_library_also_needs_is_refused() {
    let Some(p) = build() else { return };
    if !have("tmux") {
        return;
    }
    let build_dir = p.pool.parent().unwrap().join("build");
    let libold1 = build_dir.join("libold.so.1");
    let user_dir = lib_dir(&p.pool, "user");
    let libuser = Cc::new(
        "cc",
        "int old(void);\nint user(void) { return old(); }\n",
        user_dir.join("libuser.so.1"),
    )
    .shared(Some("libuser.so.1"))
    .link(&libold1)
    .build();
    let prog = Cc::new(
        "cc",
        "int old(void);\nint user(void);\nint main(void) { return old() + user(); }\n",
        build_dir.join("both"),
    )
    .link(&libold1)
    .link(&libuser)
    .build();
    let before = std::fs::read(&prog).unwrap();
    let question = "libold.so.1 is not in the pool; use another version instead?";
    let (code, out, screen) = on_terminal(&p, "", &prog, question, |_| vec!["Enter"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(std::fs::read(&prog).unwrap(), before, "untouched");
    let end = screen.split("--- at the end ---").nth(1).unwrap();
    assert!(
        end.replace('\n', "")
            .contains("the loader would not take it for a library's request by name"),
        "{end}"
    );
}

/// A DT_NEEDED that is a path (a library without a soname, linked by its path) outside the
/// pool is named as not there, not passed over.
#[test]
fn a_needed_path_outside_the_pool_is_named() {
    let Some(p) = build() else { return };
    let build_dir = p.pool.parent().unwrap().join("build");
    let libpath = Cc::new("cc", OLD, build_dir.join("libbypath.so"))
        .shared(None)
        .build();
    let prog = Cc::new("cc", APP_OLD, build_dir.join("bypath"))
        .link(&libpath)
        .build();
    assert!(common::readelf_needed(&prog).contains(&s(&libpath)));
    let (code, _, err) = adopt(&p, &["--dry-run"], &prog);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{} (needed by", s(&libpath))) && err.contains("not in the pool"),
        "{err}"
    );
}
