//! Fixtures compiled at test time into a fake Nix store, each object with 32+ RUNPATH
//! directories: every loader rule the resolver models, checked against `ld.so --list` and
//! against what the rule says should happen.

// Fixtures read best as a sequence of build steps.
#![allow(clippy::vec_init_then_push)]

mod common;

use std::path::{Path, PathBuf};

use common::{
    all_absolute, compare_with_loader, have, loader_paths, paths, readelf_needed, run, run_program,
    s, stamp, strip_variants, tree_json, Cc, Compared, Store,
};
use serde_json::Value;

const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

const BASE: &str = "int base(void) { return 1; }\n";
const MID: &str = "int base(void);\nint mid(void) { return base() + 1; }\n";
const APP_MID: &str =
    "#include <stdio.h>\nint mid(void);\nint main(void) { printf(\"%d\\n\", mid()); return 0; }\n";

/// Every fixture program, by name.
struct Fixtures {
    store: Store,
    programs: Vec<(&'static str, PathBuf)>,
    dirs: Dirs,
}

/// Directories the targeted assertions refer to.
struct Dirs {
    base: PathBuf,
    mid: PathBuf,
    origin_pkg: PathBuf,
    dup1: PathBuf,
    dup2: PathBuf,
    wa64: PathBuf,
    wa32: Option<PathBuf>,
    hwcaps: PathBuf,
}

impl Fixtures {
    fn program(&self, name: &str) -> &Path {
        &self
            .programs
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no fixture {name}"))
            .1
    }
}

/// `-Wl,-rpath-link` for every fixture directory, so `ld` can check indirect dependencies.
fn rpath_link(dirs: &[&Path]) -> String {
    let joined: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    format!("-Wl,-rpath-link,{}", joined.join(":"))
}

fn build() -> Fixtures {
    let st = Store::new();
    let cc = "cc";
    let base = st.lib_dir("base");
    let mid = st.lib_dir("mid");
    let mid2 = st.lib_dir("mid-no-paths");
    let mid3 = st.lib_dir("mid-runpath-without-base");
    let bin = st.package("apps").join("bin");
    let link = rpath_link(&[&base, &mid, &mid2, &mid3]);

    let libbase = Cc::new(cc, BASE, base.join("libbase.so.1"))
        .shared(Some("libbase.so.1"))
        .runpath(&st.runpath(&[]))
        .build();
    // libmid finds libbase through its own RUNPATH.
    let libmid = Cc::new(cc, MID, mid.join("libmid.so.1"))
        .shared(Some("libmid.so.1"))
        .runpath(&st.runpath(&[&s(&base)]))
        .link(&libbase)
        .build();
    // libmid2 has neither RPATH nor RUNPATH: it relies on its loader chain's RPATH.
    let libmid2 = Cc::new(cc, MID, mid2.join("libmid.so.1"))
        .shared(Some("libmid.so.1"))
        .link(&libbase)
        .build();
    // libmid3 has a RUNPATH without libbase's directory: its loaders' RPATH is not used.
    let libmid3 = Cc::new(cc, MID, mid3.join("libmid.so.1"))
        .shared(Some("libmid.so.1"))
        .runpath(&st.runpath(&[]))
        .link(&libbase)
        .build();

    let mut programs = Vec::new();
    programs.push((
        "wide-runpath",
        Cc::new(cc, APP_MID, bin.join("wide-runpath"))
            .runpath(&st.runpath(&[&s(&mid)]))
            .link(&libmid)
            .arg(&link)
            .build(),
    ));
    programs.push((
        "runpath-not-inherited",
        Cc::new(cc, APP_MID, bin.join("runpath-not-inherited"))
            .runpath(&st.runpath(&[&s(&mid2), &s(&base)]))
            .link(&libmid2)
            .arg(&link)
            .build(),
    ));
    programs.push((
        "rpath-inherited",
        Cc::new(cc, APP_MID, bin.join("rpath-inherited"))
            .rpath(&st.runpath(&[&s(&mid2), &s(&base)]))
            .link(&libmid2)
            .arg(&link)
            .build(),
    ));
    programs.push((
        "rpath-stops-at-runpath",
        Cc::new(cc, APP_MID, bin.join("rpath-stops-at-runpath"))
            .rpath(&st.runpath(&[&s(&mid3), &s(&base)]))
            .link(&libmid3)
            .arg(&link)
            .build(),
    ));

    // $ORIGIN: bin/app finds ../lib/liborigin.so.1, which finds its sibling through $ORIGIN.
    let origin_pkg = st.package("origin");
    let olib = origin_pkg.join("lib");
    let liboleaf = Cc::new(cc, BASE, olib.join("libbase.so.1"))
        .shared(Some("libbase.so.1"))
        .runpath(&st.runpath(&[]))
        .build();
    let liborigin = Cc::new(cc, MID, olib.join("libmid.so.1"))
        .shared(Some("libmid.so.1"))
        .runpath(&st.runpath(&["$ORIGIN"]))
        .link(&liboleaf)
        .build();
    programs.push((
        "origin",
        Cc::new(cc, APP_MID, origin_pkg.join("bin/origin"))
            .runpath(&st.runpath(&["$ORIGIN/../lib"]))
            .link(&liborigin)
            .arg(rpath_link(&[&olib]))
            .build(),
    ));

    // DF_1_NODEFLIB (only honoured on libraries): libnodef's own needs skip the system cache
    // and default directories, so libm.so.6 is missing for it; libc.so.6 is already loaded.
    let nodef = st.lib_dir("nodeflib");
    let libnodef = Cc::new(
        cc,
        "#include <math.h>\nint nodef(int c) { return (int)sqrt((double)c); }\n",
        nodef.join("libnodef.so.1"),
    )
    .shared(Some("libnodef.so.1"))
    .runpath(&st.runpath(&[]))
    .arg("-Wl,-z,nodefaultlib")
    .arg("-Wl,--no-as-needed")
    .arg("-lm")
    .build();
    programs.push((
        "nodeflib",
        Cc::new(
            cc,
            "int nodef(int);\nint main(int c, char **v) { return nodef(c) - 1; }\n",
            bin.join("nodeflib"),
        )
        .runpath(&st.runpath(&[&s(&nodef)]))
        .link(&libnodef)
        .build(),
    ));

    // A library without DT_SONAME (linked as -lnoso, so DT_NEEDED is "libnoso.so").
    let noso = st.lib_dir("noso");
    Cc::new(cc, BASE, noso.join("libnoso.so"))
        .shared(None)
        .build();
    programs.push((
        "no-soname",
        Cc::new(
            cc,
            "int base(void);\nint main(void) { return base() - 1; }\n",
            bin.join("no-soname"),
        )
        .runpath(&st.runpath(&[&s(&noso)]))
        .arg(format!("-L{}", s(&noso)))
        .arg("-lnoso")
        .build(),
    ));

    // One soname in two directories: the second request is satisfied by the loaded one.
    let dup1 = st.lib_dir("dup-one");
    let dup3 = st.lib_dir("dup-three");
    let user = st.lib_dir("dup-user");
    let dsrc = |v: u8| format!("int dup(void) {{ return {v}; }}\n");
    let (d1, d3) = (dsrc(1), dsrc(3));
    let libdup1 = Cc::new(cc, &d1, dup1.join("libdup.so.1"))
        .shared(Some("libdup.so.1"))
        .build();
    let libdup3 = Cc::new(cc, &d3, dup3.join("libdup.so.1"))
        .shared(Some("libdup.so.1"))
        .build();
    let libuser = Cc::new(
        cc,
        "int dup(void);\nint user(void) { return dup(); }\n",
        user.join("libuser.so.1"),
    )
    .shared(Some("libuser.so.1"))
    .runpath(&st.runpath(&[&s(&dup3)]))
    .link(&libdup3)
    .build();
    let dup_main =
        "int dup(void); int user(void);\nint main(void) { return dup() + user() - 2; }\n";
    programs.push((
        "same-soname-two-dirs",
        Cc::new(cc, dup_main, bin.join("same-soname-two-dirs"))
            .runpath(&st.runpath(&[&s(&dup1), &s(&user)]))
            .link(&libdup1)
            .link(&libuser)
            .build(),
    ));

    // A real collision: libcoll asks for libdup.so.2, whose file carries soname libdup.so.1.
    let dup2 = st.lib_dir("dup-two");
    let coll = st.lib_dir("collider");
    let stub = Cc::new(cc, &dsrc(2), st.scratch().join("libdup.so.2"))
        .shared(Some("libdup.so.2"))
        .build();
    Cc::new(cc, &dsrc(2), dup2.join("libdup.so.2"))
        .shared(Some("libdup.so.1"))
        .build();
    let libcoll = Cc::new(
        cc,
        "int dup(void);\nint coll(void) { return dup(); }\n",
        coll.join("libcoll.so.1"),
    )
    .shared(Some("libcoll.so.1"))
    .runpath(&st.runpath(&[&s(&dup2)]))
    .link(&stub)
    .build();
    programs.push((
        "soname-collision",
        Cc::new(
            cc,
            "int dup(void); int coll(void);\nint main(void) { return dup() + coll() - 2; }\n",
            bin.join("soname-collision"),
        )
        .runpath(&st.runpath(&[&s(&dup1), &s(&coll)]))
        .link(&libdup1)
        .link(&libcoll)
        .arg(rpath_link(&[&dup2]))
        .build(),
    ));

    // Wrong architecture first in the path: an i686 libwa.so.1 before the x86_64 one.
    let wa64 = st.lib_dir("wa-x86_64");
    let libwa = Cc::new(cc, BASE, wa64.join("libwa.so.1"))
        .shared(Some("libwa.so.1"))
        .build();
    let wa32 = have("i686-linux-gnu-gcc").then(|| {
        let d = st.lib_dir("wa-i686");
        Cc::new("i686-linux-gnu-gcc", BASE, d.join("libwa.so.1"))
            .shared(Some("libwa.so.1"))
            .build();
        d
    });
    let mut wa_dirs = Vec::new();
    wa_dirs.extend(wa32.as_deref().map(s));
    wa_dirs.push(s(&wa64));
    let wa_refs: Vec<&str> = wa_dirs.iter().map(String::as_str).collect();
    programs.push((
        "wrong-arch-first",
        Cc::new(
            cc,
            "int base(void);\nint main(void) { return base() - 1; }\n",
            bin.join("wrong-arch-first"),
        )
        .runpath(&st.runpath(&wa_refs))
        .link(&libwa)
        .build(),
    ));

    // Symbol versioning: the program needs VER_1 from libver.so.1.
    let ver = st.lib_dir("ver");
    let script = st.scratch().join("ver.map");
    std::fs::write(&script, "VER_1 { global: ver; local: *; };\n").unwrap();
    let libver = Cc::new(cc, "int ver(void) { return 0; }\n", ver.join("libver.so.1"))
        .shared(Some("libver.so.1"))
        .arg(format!("-Wl,--version-script={}", s(&script)))
        .build();
    programs.push((
        "versioned",
        Cc::new(
            cc,
            "int ver(void);\nint main(void) { return ver(); }\n",
            bin.join("versioned"),
        )
        .runpath(&st.runpath(&[&s(&ver)]))
        .link(&libver)
        .build(),
    ));

    // A glibc-hwcaps variant beside the portable file: never chosen (it depends on the CPU).
    let hw = st.lib_dir("hwcaps");
    let libhw = Cc::new(cc, BASE, hw.join("libhw.so.1"))
        .shared(Some("libhw.so.1"))
        .build();
    Cc::new(cc, BASE, hw.join("glibc-hwcaps/x86-64-v2/libhw.so.1"))
        .shared(Some("libhw.so.1"))
        .build();
    programs.push((
        "hwcaps",
        Cc::new(
            cc,
            "int base(void);\nint main(void) { return base() - 1; }\n",
            bin.join("hwcaps"),
        )
        .runpath(&st.runpath(&[&s(&hw)]))
        .link(&libhw)
        .build(),
    ));

    // A missing library: linked against libgone.so.1, which is then deleted.
    let gone = st.lib_dir("gone");
    let libgone = Cc::new(cc, BASE, gone.join("libgone.so.1"))
        .shared(Some("libgone.so.1"))
        .build();
    programs.push((
        "missing",
        Cc::new(
            cc,
            "int base(void);\nint main(void) { return base() - 1; }\n",
            bin.join("missing"),
        )
        .runpath(&st.runpath(&[&s(&gone)]))
        .link(&libgone)
        .build(),
    ));
    std::fs::remove_file(&libgone).unwrap();

    Fixtures {
        store: st,
        programs,
        dirs: Dirs {
            base,
            mid,
            origin_pkg,
            dup1,
            dup2,
            wa64,
            wa32,
            hwcaps: hw,
        },
    }
}

/// The single file entry of `tree --json` for `file`.
fn tree(f: &Fixtures, file: &Path) -> Value {
    let doc = tree_json(&[file], &["--store-dir", &s(&f.store.store)], 0);
    doc["files"][0].clone()
}

fn lib<'a>(t: &'a Value, name: &str) -> &'a Value {
    t["libraries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in closure: {t:#}"))
}

fn missing_names(t: &Value) -> Vec<String> {
    t["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect()
}

fn warning_kinds(t: &Value) -> Vec<String> {
    t["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_fixture_resolves_like_ld_so() {
    let f = build();
    let mut mismatches = Vec::new();
    for (name, program) in &f.programs {
        match compare_with_loader(LOADER, program, &tree(&f, program)) {
            Compared::Same | Compared::Hwcaps => {}
            other => mismatches.push(format!("{name}: {other:?}")),
        }
    }
    println!(
        "{} fixtures compared, {} mismatches",
        f.programs.len(),
        mismatches.len()
    );
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    assert!(mismatches.is_empty());
}

#[test]
fn every_fixture_object_has_a_wide_runpath() {
    let f = build();
    let t = tree(&f, f.program("wide-runpath"));
    let dirs = t["runpath"].as_str().unwrap().split(':').count();
    assert!(dirs > 30, "only {dirs} RUNPATH directories");
    let mid = lib(&t, "libmid.so.1");
    let base = lib(&t, "libbase.so.1");
    assert_eq!(mid["path"], s(&f.dirs.mid.join("libmid.so.1")));
    assert_eq!(mid["via"], "runpath");
    assert_eq!(base["path"], s(&f.dirs.base.join("libbase.so.1")));
    assert_eq!(base["needed_by"], mid["path"]);
    assert_eq!(base["depth"], 2);
    // The program runs with what was resolved.
    let out = run(&mut std::process::Command::new(f.program("wide-runpath")));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n");
}

#[test]
fn rpath_is_inherited_runpath_is_not() {
    let f = build();
    // RUNPATH of the program does not help its library find libbase.
    let t = tree(&f, f.program("runpath-not-inherited"));
    assert_eq!(missing_names(&t), vec!["libbase.so.1"]);
    // RPATH of the program does.
    let t = tree(&f, f.program("rpath-inherited"));
    assert!(missing_names(&t).is_empty(), "{t:#}");
    let base = lib(&t, "libbase.so.1");
    assert_eq!(base["via"], "rpath");
    assert_eq!(base["path"], s(&f.dirs.base.join("libbase.so.1")));
    // A library with a RUNPATH does not use its loaders' RPATH.
    let t = tree(&f, f.program("rpath-stops-at-runpath"));
    assert_eq!(missing_names(&t), vec!["libbase.so.1"]);
}

#[test]
fn origin_expands_to_the_requesters_directory() {
    let f = build();
    let t = tree(&f, f.program("origin"));
    let pkg = s(&f.dirs.origin_pkg);
    assert_eq!(
        lib(&t, "libmid.so.1")["path"],
        format!("{pkg}/bin/../lib/libmid.so.1")
    );
    assert_eq!(
        lib(&t, "libbase.so.1")["path"],
        format!("{pkg}/bin/../lib/libbase.so.1")
    );
}

#[test]
fn nodeflib_skips_cache_and_default_dirs() {
    let f = build();
    let t = tree(&f, f.program("nodeflib"));
    assert_eq!(
        lib(&t, "libnodef.so.1")["path"]
            .as_str()
            .map(|p| p.contains("-nodeflib/lib/")),
        Some(true)
    );
    let missing = t["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{t:#}");
    assert_eq!(missing[0]["name"], "libm.so.6");
    assert!(missing[0]["needed_by"]
        .as_str()
        .unwrap()
        .ends_with("libnodef.so.1"));
    // Without the flag the same search finds libm in the system directories.
    let plain = tree(&f, f.program("wide-runpath"));
    assert!(missing_names(&plain).is_empty());
}

#[test]
fn library_without_soname_is_warned_about() {
    let f = build();
    let t = tree(&f, f.program("no-soname"));
    assert!(lib(&t, "libnoso.so")["soname"].is_null());
    assert!(
        warning_kinds(&t).contains(&"no-soname".to_string()),
        "{t:#}"
    );
}

#[test]
fn one_soname_two_directories() {
    let f = build();
    let t = tree(&f, f.program("same-soname-two-dirs"));
    let dups: Vec<String> = paths(&t)
        .into_iter()
        .filter(|p| p.contains("libdup"))
        .collect();
    assert_eq!(dups, vec![s(&f.dirs.dup1.join("libdup.so.1"))]);
    assert!(!warning_kinds(&t).contains(&"soname-collision".to_string()));

    let t = tree(&f, f.program("soname-collision"));
    let dups: Vec<String> = paths(&t)
        .into_iter()
        .filter(|p| p.contains("libdup"))
        .collect();
    assert_eq!(
        dups,
        vec![
            s(&f.dirs.dup1.join("libdup.so.1")),
            s(&f.dirs.dup2.join("libdup.so.2"))
        ]
    );
    assert!(
        warning_kinds(&t).contains(&"soname-collision".to_string()),
        "{t:#}"
    );
}

#[test]
fn wrong_architecture_is_skipped() {
    let f = build();
    let Some(wa32) = &f.dirs.wa32 else { return };
    let t = tree(&f, f.program("wrong-arch-first"));
    assert_eq!(
        lib(&t, "libwa.so.1")["path"],
        s(&f.dirs.wa64.join("libwa.so.1"))
    );
    let skipped: Vec<&Value> = t["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == "wrong-arch-skipped")
        .collect();
    assert_eq!(skipped.len(), 1, "{t:#}");
    assert!(skipped[0]["message"].as_str().unwrap().contains(&s(wa32)));
}

#[test]
fn version_needs_are_read() {
    let f = build();
    let t = tree(&f, f.program("versioned"));
    let needs = t["version_needs"].as_array().unwrap();
    let ver = needs
        .iter()
        .find(|v| v["file"] == "libver.so.1")
        .unwrap_or_else(|| panic!("no libver.so.1 in {needs:?}"));
    assert_eq!(ver["versions"], serde_json::json!(["VER_1"]));
    assert!(needs.iter().any(|v| v["file"] == "libc.so.6"));
}

#[test]
fn missing_library_is_reported_with_its_requester() {
    let f = build();
    let program = f.program("missing");
    let t = tree(&f, program);
    let missing = t["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["name"], "libgone.so.1");
    assert_eq!(missing[0]["needed_by"], s(program));
    // The human form says so too, and `tree` still succeeds: it reports, it does not judge.
    let out = run(common::shrinkwrap().arg("tree").arg(program));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("libgone.so.1 => not found"), "{text}");
}

#[test]
fn store_paths_outside_the_store_are_flagged() {
    let f = build();
    // libc comes from the system, not the fake store: that must be called out.
    let t = tree(&f, f.program("wide-runpath"));
    let outside: Vec<&Value> = t["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == "outside-store")
        .collect();
    assert!(outside
        .iter()
        .any(|w| w["message"].as_str().unwrap().contains("libc.so.6")));
    assert!(!outside
        .iter()
        .any(|w| w["message"].as_str().unwrap().contains("libmid")));
}

#[test]
fn hwcaps_variants_are_never_chosen() {
    let f = build();
    let t = tree(&f, f.program("hwcaps"));
    let portable = s(&f.dirs.hwcaps.join("libhw.so.1"));
    assert_eq!(lib(&t, "libhw.so.1")["path"], portable);
    let w: Vec<&Value> = t["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == "hwcaps-skipped")
        .collect();
    assert_eq!(w.len(), 1, "{t:#}");
    let msg = w[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("glibc-hwcaps/x86-64-v2/libhw.so.1") && msg.contains(&portable),
        "{msg}"
    );
}

#[test]
fn every_fixture_stamps_runs_and_lists_the_same() {
    let f = build();
    let store_arg = ["--store-dir", &s(&f.store.store)];
    let (mut stamped, mut refused, mut failures) = (0, Vec::new(), Vec::new());
    for (name, program) in &f.programs {
        let before_bytes = std::fs::read(program).unwrap();
        let before = loader_paths(LOADER, program);
        let (code, _out, err) = stamp(program, &store_arg);
        if *name == "soname-collision" || before.is_err() {
            // Refusals: a collision, or libraries the loader cannot find either.
            assert_eq!(code, 1, "{name}: {err}");
            assert_eq!(err.lines().count(), 1, "{name}: {err}");
            assert_eq!(
                std::fs::read(program).unwrap(),
                before_bytes,
                "{name} changed"
            );
            refused.push(*name);
            continue;
        }
        let before = before.unwrap();
        if code != 0 {
            failures.push(format!("{name}: stamp failed: {err}"));
            continue;
        }
        stamped += 1;
        // Run the unstamped original (kept aside) and the stamped file.
        let orig = f.store.scratch().join(format!("orig-{name}"));
        std::fs::write(&orig, &before_bytes).unwrap();
        std::fs::set_permissions(&orig, std::fs::metadata(program).unwrap().permissions()).unwrap();
        let after = loader_paths(LOADER, program).unwrap();
        if after != before {
            failures.push(format!(
                "{name}: ld.so --list\n  before {before:?}\n  after  {after:?}"
            ));
        }
        let needed = readelf_needed(program);
        if let Some(bare) = needed.iter().find(|n| !n.starts_with('/')) {
            failures.push(format!("{name}: DT_NEEDED {bare} is not absolute"));
        }
        // $ORIGIN fixtures run from their own place; the copy aside is only for the others.
        let ran_before = if *name == "origin" {
            None
        } else {
            Some(run_program(&orig))
        };
        let ran_after = run_program(program);
        if let Some(rb) = ran_before {
            if rb != ran_after {
                failures.push(format!("{name}: ran {rb:?} before, {ran_after:?} after"));
            }
        }
        if ran_after.0 != Some(0) {
            failures.push(format!("{name}: exit {:?} after stamping", ran_after.0));
        }
        // Stamping again changes nothing.
        let once = std::fs::read(program).unwrap();
        let (code, out, _) = stamp(program, &store_arg);
        if code != 0 || std::fs::read(program).unwrap() != once {
            failures.push(format!("{name}: second stamp was not a no-op: {out}"));
        }
        // Strip tools succeed and keep the stamp working.
        for (tool, mut cmd) in
            strip_variants(program, &f.store.scratch().join(format!("{name}.stripped")))
        {
            let out = run(&mut cmd);
            let stripped = f.store.scratch().join(format!("{name}.stripped"));
            if !out.status.success() {
                failures.push(format!(
                    "{name}: {tool} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            } else if loader_paths(LOADER, &stripped).as_ref() != Ok(&after) {
                failures.push(format!(
                    "{name}: after {tool} the loader lists something else"
                ));
            }
        }
        let dbg = run(std::process::Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(program)
            .arg(f.store.scratch().join(format!("{name}.debug"))));
        if !dbg.status.success() || !dbg.stderr.is_empty() {
            failures.push(format!(
                "{name}: objcopy --only-keep-debug: {}",
                String::from_utf8_lossy(&dbg.stderr)
            ));
        }
    }
    println!(
        "{stamped} fixtures stamped, {} refused as expected, {} failures",
        refused.len(),
        failures.len()
    );
    for m in &failures {
        println!("FAILURE {m}");
    }
    assert!(failures.is_empty());
    assert!(stamped >= 8);
    // Exactly these are refused: a soname collision, and the ones the loader cannot load
    // either (a library it does not find).
    refused.sort();
    assert_eq!(
        refused,
        [
            "missing",
            "nodeflib",
            "rpath-stops-at-runpath",
            "runpath-not-inherited",
            "soname-collision"
        ],
        "refused"
    );
}

#[test]
fn stamped_fixture_makes_no_failed_library_lookups() {
    if !have("strace") {
        return;
    }
    let f = build();
    let program = f.program("wide-runpath");
    let trace = |p: &Path| common::lookups(&f.store.scratch(), p).1;
    // Unstamped, the 32 RUNPATH directories cost failed probes; stamped, none.
    let before = trace(program);
    assert!(
        before.len() >= 32,
        "expected many failed probes before stamping, got {}",
        before.len()
    );
    let (code, _, err) = stamp(program, &[]);
    assert_eq!(code, 0, "{err}");
    let after = trace(program);
    assert!(
        after.is_empty(),
        "failed lookups after stamping:\n{}",
        after.join("\n")
    );
    println!(
        "failed library lookups: {} before stamping, {} after",
        before.len(),
        after.len()
    );
}

#[test]
fn restamp_with_a_new_plan_starts_from_the_original() {
    let f = build();
    let p = f.program("wide-runpath");
    let original = std::fs::read(p).unwrap();
    let direct = f.store.scratch().join("direct");
    std::fs::copy(p, &direct).unwrap();
    assert_eq!(stamp(&direct, &[]).0, 0);
    let direct_bytes = std::fs::read(&direct).unwrap();

    // Plan A keeps libbase as a bare name; plan B lifts it. B over A equals B alone.
    let (code, _, err) = stamp(p, &["--keep", "libbase*"]);
    assert_eq!(code, 0, "{err}");
    let a = std::fs::read(p).unwrap();
    assert_ne!(a, direct_bytes);
    // libbase is transitive: kept means not lifted at all.
    assert!(!readelf_needed(p).iter().any(|n| n.contains("libbase")));
    assert_eq!(stamp(p, &[]).0, 0);
    assert!(
        std::fs::read(p).unwrap() == direct_bytes,
        "restamp differs from a direct stamp"
    );

    // A run killed after appending its segment but before the commit write: the file still
    // loads as the original did, and the next run trims the tail and stamps normally.
    let killed = f.store.scratch().join("killed");
    let mut bytes = original.clone();
    let tail_start = original.len().div_ceil(64) * 64;
    bytes.resize(tail_start, 0);
    bytes.extend_from_slice(&direct_bytes[tail_start..]);
    std::fs::write(&killed, &bytes).unwrap();
    std::fs::set_permissions(&killed, std::fs::metadata(p).unwrap().permissions()).unwrap();
    let orig_copy = f.store.scratch().join("orig");
    std::fs::write(&orig_copy, &original).unwrap();
    assert_eq!(
        loader_paths(LOADER, &killed).unwrap(),
        loader_paths(LOADER, &orig_copy).unwrap()
    );
    assert_eq!(stamp(&killed, &[]).0, 0);
    assert!(
        std::fs::read(&killed).unwrap() == direct_bytes,
        "recovery differs"
    );
}

#[test]
fn stamps_a_file_without_section_headers() {
    let f = build();
    let p = f.program("wide-runpath");
    let before = loader_paths(LOADER, p).unwrap();
    // Drop the section header table: e_shoff, e_shnum, e_shstrndx (ELF64 little-endian).
    let mut b = std::fs::read(p).unwrap();
    b[40..48].fill(0);
    b[60..64].fill(0);
    std::fs::write(p, &b).unwrap();
    assert_eq!(
        readelf_needed(p).len(),
        2,
        "still readable without section headers"
    );
    let (code, _, err) = stamp(p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(loader_paths(LOADER, p).unwrap(), before);
    assert!(all_absolute(&readelf_needed(p)));
    let out = run(&mut std::process::Command::new(p));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n");
    let once = std::fs::read(p).unwrap();
    assert_eq!(stamp(p, &[]).0, 0);
    assert!(std::fs::read(p).unwrap() == once);
}

#[test]
fn stamps_files_already_rewritten_by_patchelf() {
    // Every Nix-built file has been through patchelf (--shrink-rpath, autoPatchelfHook),
    // which moves .interp and the notes away from the program header table.
    if !have("patchelf") {
        return;
    }
    let f = build();
    let p = f.program("wide-runpath");
    let rpath = f.store.runpath(&[&s(&f.dirs.mid)]);
    let out = run(std::process::Command::new("patchelf")
        .args(["--set-rpath", &format!("{rpath}:/patchelf/was/here")])
        .arg(p));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = loader_paths(LOADER, p).unwrap();
    let (code, _, err) = stamp(p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(loader_paths(LOADER, p).unwrap(), before);
    let ran = run(&mut std::process::Command::new(p));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "2\n");
    for (tool, mut cmd) in strip_variants(p, &f.store.scratch().join("stripped")) {
        assert!(run(&mut cmd).status.success(), "{tool}");
        assert_eq!(
            loader_paths(LOADER, &f.store.scratch().join("stripped")).unwrap(),
            before,
            "{tool}"
        );
    }
}

#[test]
fn a_stripped_stamp_is_kept_or_refused_never_stacked() {
    let f = build();
    let p = f.program("wide-runpath");
    assert_eq!(stamp(p, &["--keep", "libbase*"]).0, 0);
    for (tool, mut cmd) in strip_variants(p, &f.store.scratch().join("stripped")) {
        let stripped = f.store.scratch().join("stripped");
        assert!(run(&mut cmd).status.success(), "{tool}");
        let bytes = std::fs::read(&stripped).unwrap();
        // The same plan: nothing to do.
        let (code, out, err) = stamp(&stripped, &["--keep", "libbase*"]);
        assert_eq!(code, 0, "{tool}: {err}");
        assert!(out.contains("unchanged"), "{tool}: {out}");
        // A new plan: the saved original no longer fits the stripped file, so it is refused
        // rather than stamped a second time on top.
        let (code, _, err) = stamp(&stripped, &[]);
        assert_eq!(code, 1, "{tool}: {err}");
        assert!(err.contains("stripped?"), "{tool}: {err}");
        assert!(
            std::fs::read(&stripped).unwrap() == bytes,
            "{tool}: changed"
        );
    }
}
